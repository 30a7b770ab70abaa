"""--resume: find the run to go on with, load its checkpoint, and set the flags to the run's own settings.

Everything a resume needs is in checkpoint.pt; settings.json beside it is for people to read, and never read back.
A resume that cannot be right is refused before anything changes: exit 2 (1 for a file that cannot be read), with a
message that says why and what to do. A typed --batch-size, --lr, --momentum or --seed must agree with the run; a
constant edited at the top of the script since the run began is noted and does not change it. A typed --log-every,
--data-dir (its data must be the run's), --device or --no-show applies from the resume on; the first two are noted."""
import os
import re

import torch

from . import console, store
from .flags import HYPERPARAMETERS, short

FRESH = "to start a new run instead, leave out --resume"
KEYS = ("net", "settings", "resumed", "history", "model", "optimizer", "generator", "environment")
TYPES = {"epochs": int, "batch_size": int, "lr": float, "momentum": float, "seed": int, "log_every": int, "data_dir": str, "data": dict}


def find(args, typed, default_out, script):
    """With --out-dir, that folder; else the run of OUT_DIR, OUT_DIR-2, ... whose checkpoint was written last."""
    if "out_dir" in typed:
        return os.path.normpath(args.out_dir)
    parent, base = os.path.split(default_out)
    try:
        names = [name for name in os.listdir(parent or ".") if re.fullmatch(re.escape(base) + r"(-\d+)?", name)]
    except OSError:
        names = []
    runs = [os.path.join(parent, name) for name in names if os.path.isfile(os.path.join(parent, name, "checkpoint.pt"))]
    if not runs:
        return default_out  # load() says there is nothing to resume
    latest = max(runs, key=lambda folder: os.path.getmtime(os.path.join(folder, "checkpoint.pt")))
    console.say(f"resuming the latest run of {script}: {latest}{os.sep}")
    return latest


def load(parser, folder, net_name):
    """The saved run that --resume goes on from; refuses (and changes nothing) where it cannot."""
    path = os.path.join(folder, "checkpoint.pt")
    if not os.path.isfile(path):
        parser.error(f"--resume: {folder} has no checkpoint.pt to resume from; {FRESH}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "hyperparameters" in state and "settings" not in state:
            raise SystemExit(f"error: cannot resume: {path} was written by an earlier version of these scripts; {FRESH}.")
        missing = [key for key in KEYS if key not in state]
        if missing:
            raise KeyError(f"it has no {', '.join(missing)}")
        state["history"] = [tuple(row) for row in state["history"]]
        if not state["history"] or [row[0] for row in state["history"]] != list(range(1, len(state["history"]) + 1)):
            raise ValueError("its list of finished epochs is not 1, 2, 3, ...")
        wrong = [name for name, kind in TYPES.items() if not isinstance(state["settings"].get(name), kind)]
        if wrong:
            raise ValueError(f"its settings have no valid {', '.join(wrong)}")
    except PermissionError as e:
        raise SystemExit(f"error: cannot resume: {path} cannot be read: {e.strerror}. Check the file's permissions.") from None
    except SystemExit:
        raise
    except Exception as e:
        if "too old" in str(e) or "maximum supported version" in str(e):
            raise SystemExit(f"error: cannot resume: {path} was written by a newer torch than this one ({torch.__version__});"
                             " upgrade torch (pip install -U torch torchvision), or resume on the machine that wrote it.") from None
        raise SystemExit(f"error: cannot resume: {path} is damaged or truncated ({console.one_line(e)}); it was left as it is.\n"
                         f"  Resume from a whole copy of it; {FRESH}.") from None
    if state["net"] != net_name:
        parser.error(f"--resume: {path} is a run of {state['net']}, but this script trains {net_name};"
                     f" use the script for {state['net']}, or another --out-dir")
    for name in store.ESSENTIAL + store.VIEWS:
        if os.path.isdir(os.path.join(folder, name)):
            raise SystemExit(f"error: cannot write results to {folder}: its {name} is a folder. Move it, or resume a copy of the run.")
    return state


def latest(state, name):
    """A setting as it stands now: the value of the last --resume that gave one, else the run's own."""
    for entry in reversed([state["settings"], *state["resumed"]]):
        if entry.get(name) is not None:
            return entry[name]
    return None


def reconcile(parser, args, typed, folder, state, script):
    """Set args to the run's own settings; returns the notes to print."""
    notes = []
    for name in HYPERPARAMETERS:  # what makes the run: a typed flag must agree, an edited constant is noted
        flag, theirs = "--" + name.replace("_", "-"), state["settings"][name]
        if name in typed and getattr(args, name) != theirs:
            parser.error(f"--resume: {flag} {short(getattr(args, name))} differs from the run's {flag} {short(theirs)}"
                         f" in {folder}; resume with {flag} {short(theirs)} or without it; {FRESH}")
        if getattr(args, name) != theirs:
            notes.append(f"note: {name.upper()} is {short(getattr(args, name))} at the top of {script},"
                         f" but this run goes on with its own {flag} {short(theirs)}")
        setattr(args, name, theirs)
    for name in ("log_every", "data_dir"):  # how it is printed, and where the data is (checked to be the run's): a typed flag wins
        if name not in typed:
            setattr(args, name, latest(state, name))
        elif getattr(args, name) != latest(state, name):
            notes.append(f"note: --{name.replace('_', '-')} {getattr(args, name)} from here on (the run had {latest(state, name)})")
    done, plural = len(state["history"]), "s" * (len(state["history"]) != 1)
    if "epochs" not in typed:
        args.epochs = latest(state, "epochs")  # the epochs the run was started with, or last resumed to
        if args.epochs <= done:
            parser.error(f"--resume: the run in {folder} has finished the {done} epoch{plural} it was asked for;"
                         f" to go on, ask for more, e.g. --epochs {done + 10}")
    elif args.epochs <= done:
        parser.error(f"--resume: --epochs {args.epochs} is not above the {done} epoch{plural} already"
                     f" finished in {folder}; ask for more, e.g. --epochs {done + 10}")
    return notes


def check_data(parser, folder, state, data, data_dir):
    """Refuse (exit 2) to go on with other data than the run's: metrics.csv would mix two data sets."""
    saved = state["settings"]["data"]
    if saved == data:
        return

    def describe(d):
        return f"{d['train_images']:,} training and {d['test_images']:,} test images (labels {d['labels_sha256']})"

    console.tell(f"{parser.prog}: error: --resume: the run in {folder} was trained on {describe(saved)} (it used --data-dir"
                 f" {latest(state, 'data_dir')}), but {data_dir} holds {describe(data)}; resume with the run's data, or leave"
                 " out --resume to start a new run")
    raise SystemExit(2)


def elsewhere(was, now):
    """A note where the run goes on with another device, thread count or torch than it had."""
    if was == now:
        return []
    changed = ", ".join(f"{key} {was.get(key)} -> {now[key]}" for key in now if was.get(key) != now[key])
    return [f"note: resumed with another {changed}: the run goes on, but is no longer bit-identical to an uninterrupted one"]
