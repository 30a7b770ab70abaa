"""--resume: find the run to go on with, load its checkpoint, and set the flags to the run's own settings.

A resume that cannot be right is refused before anything changes: exit 2 (or 1 for a file that cannot be
read), with a message that says why and what to do. A typed --batch-size, --lr, --momentum or --seed must
agree with the run; a constant edited at the top of the script since the run began is noted and does not
change it. A typed --log-every, --data-dir (its data must be the run's), --device or --no-show applies from
the resume on, and the first two are noted."""
import os
import sys

import torch

from data import one_line

from . import folders
from .flags import HYPERPARAMETERS, short

FRESH = "to start a new run instead, leave out --resume"


def find_run(args, typed, default_out, script):
    """With --out-dir, that folder; else the latest run of the script's OUT_DIR (OUT_DIR-2, ... included)."""
    if "out_dir" in typed:
        return os.path.normpath(args.out_dir)
    latest = folders.latest_run(default_out)
    if latest is None:
        return default_out  # load_checkpoint says there is nothing to resume
    print(f"resuming the latest run of {script}: {latest}{os.sep}", flush=True)
    return latest


def load_checkpoint(parser, folder, net_name):
    """The saved run that --resume goes on from; refuses (and changes nothing) where it cannot."""
    path = os.path.join(folder, "checkpoint.pt")
    if not os.path.isfile(path):
        parser.error(f"--resume: {folder} has no checkpoint.pt to resume from; {FRESH}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        history = [tuple(row) for row in checkpoint["history"]]
        missing = [key for key in ("net", "model", "optimizer", "generator", "data", "environment") if key not in checkpoint]
        missing += [name for name in HYPERPARAMETERS if name not in checkpoint["hyperparameters"]]
        if missing:
            raise KeyError(f"it has no {', '.join(missing)}")
        if not history or [row[0] for row in history] != list(range(1, len(history) + 1)):
            raise ValueError("its list of finished epochs is not 1, 2, 3, ...")
    except PermissionError as e:
        raise SystemExit(f"error: cannot resume: {path} cannot be read: {e.strerror}. Check the file's permissions.") from None
    except Exception as e:
        if "too old" in str(e) or "maximum supported version" in str(e):
            raise SystemExit(f"error: cannot resume: {path} was written by a newer torch than this one ({torch.__version__});"
                             " upgrade torch (pip install -U torch torchvision), or resume on the machine that wrote it.") from None
        raise SystemExit(
            f"error: cannot resume: {path} is damaged or truncated ({one_line(e)}); it was left as it is.\n"
            f"  Resume from a whole copy of it; {FRESH}."
        ) from None
    if checkpoint["net"] != net_name:
        parser.error(f"--resume: {path} is a run of {checkpoint['net']}, but this script trains {net_name};"
                     f" use the script for {checkpoint['net']}, or another --out-dir")
    checkpoint["history"] = history
    return checkpoint


def reconcile(parser, args, typed, folder, checkpoint, script):
    """Set args to the run's own settings; returns (the run's settings.json or None, notes to print)."""
    notes = []
    try:
        settings = folders.read_settings(folder)
    except folders.SettingsError as e:
        notes.append(f"note: {e}; going on with the checkpoint's settings")
        settings = None
    saved = dict(checkpoint["hyperparameters"])
    if settings:
        saved.update({name: folders.latest(settings, name) for name in ("epochs", "log_every", "data_dir")})
    for name in HYPERPARAMETERS:  # what makes the run: a typed flag must agree, an edited constant is noted
        flag = "--" + name.replace("_", "-")
        if name in typed and getattr(args, name) != saved[name]:
            parser.error(f"--resume: {flag} {short(getattr(args, name))} differs from the run's {flag} {short(saved[name])}"
                         f" in {folder}; resume with {flag} {short(saved[name])} or without it; {FRESH}")
        if getattr(args, name) != saved[name]:
            notes.append(f"note: {name.upper()} is {short(getattr(args, name))} at the top of {script},"
                         f" but this run goes on with its own {flag} {short(saved[name])}")
        setattr(args, name, saved[name])
    for name in ("log_every", "data_dir"):  # how it is printed, and where the data is (checked to be the run's): a typed flag wins
        if saved.get(name) is None:
            continue
        if name not in typed:
            setattr(args, name, saved[name])
        elif getattr(args, name) != saved[name]:
            notes.append(f"note: --{name.replace('_', '-')} {getattr(args, name)} from here on (the run had {saved[name]})")
    done = len(checkpoint["history"])
    if "epochs" not in typed and isinstance(saved.get("epochs"), int):
        args.epochs = saved["epochs"]  # the epochs the run was started with (or last resumed to)
        if args.epochs <= done:
            parser.error(f"--resume: the run in {folder} has finished the {done} epoch{'s' * (done != 1)} it was asked for;"
                         f" to go on, ask for more, e.g. --epochs {done + 10}")
    elif args.epochs <= done:
        parser.error(f"--resume: --epochs {args.epochs} is not above the {done} epoch{'s' * (done != 1)} already"
                     f" finished in {folder}; ask for more, e.g. --epochs {done + 10}")
    if os.path.isdir(os.path.join(folder, "model.pt")):
        raise SystemExit(f"error: cannot write results to {folder}: its model.pt is a folder. Move it, or resume a copy of the run.")
    return settings, notes


def check_data(parser, folder, saved, data, settings, data_dir):
    """Refuse (exit 2) to go on with other data than the run's: metrics.csv would mix two data sets."""
    if saved == data:
        return

    def describe(d):
        return f"{d['train_images']:,} training and {d['test_images']:,} test images (labels {d['labels_sha256']})"

    where = f" (it used --data-dir {settings['data_dir']})" if settings and settings.get("data_dir") else ""
    print(f"{parser.prog}: error: --resume: the run in {folder} was trained on {describe(saved)}{where},"
          f" but {data_dir} holds {describe(data)}; resume with the run's data, or leave out --resume to start a new run",
          file=sys.stderr)
    raise SystemExit(2)


def elsewhere(was, now):
    """A note where the run goes on with another device, thread count or torch than it had."""
    if was == now:
        return []
    changed = ", ".join(f"{key} {was.get(key)} -> {now[key]}" for key in now if was.get(key) != now[key])
    return [f"note: resumed with another {changed}: the run goes on, but is no longer bit-identical to an uninterrupted one"]
