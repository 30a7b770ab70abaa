"""checkpoint.pt, and --resume. It holds the weights, the momentum, the state of the generator that orders the next
epoch (data.Batches' own, or torch's global one that the lecture's DataLoader draws from), every epoch's numbers, and
the settings of the run (the epochs asked for and its data's fingerprint too) and of each resume: on the same CPU a
resumed run ends bit for bit where an uninterrupted one would. A resume that cannot be right is refused, changing
nothing; a typed --epochs, --log-every, --data-dir, --device or --no-show applies."""
import hashlib
import os
import platform
import re
from datetime import datetime, timezone

import torch

from . import console
from .flags import HYPERPARAMETERS, short

FRESH = "to start a new run instead, leave out --resume"
KEYS = ("net", "settings", "resumed", "history", "model", "optimizer", "generator", "environment")


def now():
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def environment(device):  # what decides a run's float rounding: resumed elsewhere, a run is no longer bit-identical
    return {"device": str(device), "threads": torch.get_num_threads(), "torch": str(torch.__version__)}


def versions():  # torchvision's from its metadata: importing it takes a second
    from importlib.metadata import version

    return {"python": platform.python_version(), "torch": str(torch.__version__), "torchvision": version("torchvision"),
            "system": platform.platform(terse=True)}


def count(loader):  # the images: data.Batches' labels, or a DataLoader's dataset
    return len(loader.labels if hasattr(loader, "labels") else loader.dataset)


def labels_of(loader):
    """data.Batches holds them, torchvision's MNIST as targets (random_split's Subset of it at its indices); None for
    a Dataset of one's own, which is not read through for them."""
    if hasattr(loader, "labels"):
        return loader.labels
    dataset, indices = loader.dataset, slice(None)
    if isinstance(dataset, torch.utils.data.Subset):
        dataset, indices = dataset.dataset, list(dataset.indices)
    return torch.as_tensor(dataset.targets)[indices] if hasattr(dataset, "targets") else None


def fingerprint(train_loader, test_loader):
    """Which data a run trains on: the image counts and a checksum of the labels (the same MNIST anywhere); the
    counts alone for a Dataset of one's own."""
    labels, checksum = [labels_of(loader) for loader in (train_loader, test_loader)], None
    if all(label is not None for label in labels):
        checksum = hashlib.sha256(b"".join(torch.as_tensor(label).cpu().to(torch.int64).numpy().tobytes() for label in labels))
    return {"train_images": count(train_loader), "test_images": count(test_loader),
            "labels_sha256": checksum and checksum.hexdigest()[:16]}


def shuffle_generator(train_loader):  # the generator that orders the next epoch: data.Batches' own, else a DataLoader's
    return getattr(train_loader, "generator", None) or torch.default_generator


def cpu_copies(state):  # copies: training goes on in the live tensors; on the CPU: a checkpoint that loads anywhere
    return {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else v for k, v in state.items()}


def snapshot(state, row, model, optimizer, train_loader, device):
    """The run's state after a finished epoch (row: epoch, train loss, test accuracy, seconds), in copies on the CPU."""
    optimizer_state = optimizer.state_dict()
    optimizer_state["state"] = {i: cpu_copies(s) for i, s in optimizer_state["state"].items()}
    return {**state, "model": cpu_copies(model.state_dict()), "optimizer": optimizer_state, "history": [*state["history"], row],
            "generator": shuffle_generator(train_loader).get_state(), "environment": environment(device)}


def restore(state, model, optimizer, train_loader, folder):
    """Put the saved weights, momentum and shuffle order back into the script's model, optimizer and loader."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])  # the momentum buffers, moved to the device
        shuffle_generator(train_loader).set_state(state["generator"])  # the next epoch's order
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"error: cannot resume: {os.path.join(folder, 'checkpoint.pt')} does not fit this script's model"
                         f" ({console.one_line(e)}); it was left as it is. Leave out --resume to start a new run.") from None


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
        missing = [key for key in KEYS if key not in state]
        if missing:  # not a checkpoint, or one of an earlier version of these scripts
            raise KeyError(f"it has no {', '.join(missing)}")
    except PermissionError as e:
        raise SystemExit(f"error: cannot resume: {path} cannot be read: {e.strerror}. Check the file's permissions.") from None
    except Exception as e:
        if "too old" in str(e) or "maximum supported version" in str(e):
            raise SystemExit(f"error: cannot resume: {path} was written by a newer torch than this one ({torch.__version__});"
                             " upgrade torch (pip install -U torch torchvision), or resume on the machine that wrote it.") from None
        raise SystemExit(f"error: cannot resume: {path} is damaged or truncated ({console.one_line(e)}); it was left as it is.\n"
                         f"  Resume from a whole copy of it; {FRESH}.") from None
    if state["net"] != net_name:
        parser.error(f"--resume: {path} is a run of {state['net']}, but this script trains {net_name};"
                     f" use the script for {state['net']}, or another --out-dir")
    state["history"] = [tuple(row) for row in state["history"]]
    return state


def latest(state, name):  # a setting as it stands now: the value of the last --resume that gave one, else the run's own
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
        script_epochs, args.epochs = args.epochs, latest(state, "epochs")  # the epochs the run was started with, or last resumed to
        if args.epochs <= done:
            parser.error(f"--resume: the run in {folder} has finished the {done} epoch{plural} it was asked for;"
                         f" to go on, ask for more, e.g. --epochs {script_epochs if script_epochs > done else done + 10}")
        if script_epochs != args.epochs:
            notes.append(f"note: EPOCHS is {script_epochs} at the top of {script}, but this run goes on to its own {args.epochs}"
                         + (f"; --epochs {script_epochs} takes it to {script_epochs}" if script_epochs > done else ""))
    elif args.epochs <= done:
        parser.error(f"--resume: --epochs {args.epochs} is not above the {done} epoch{plural} already"
                     f" finished in {folder}; ask for more, e.g. --epochs {done + 10}")
    return notes


def check_data(parser, folder, state, data, data_dir):
    """Refuse (exit 2) to go on with other data than the run's: metrics.csv would mix two data sets."""
    saved = state["settings"]["data"]
    if saved != data:
        def describe(d):
            labels = f" (labels {d['labels_sha256']})" if d["labels_sha256"] else ""
            return f"{d['train_images']:,} training and {d['test_images']:,} test images{labels}"

        console.tell(f"{parser.prog}: error: --resume: the run in {folder} was trained on {describe(saved)} (it used --data-dir"
                     f" {latest(state, 'data_dir')}), but {data_dir} holds {describe(data)}; resume with the run's data, or"
                     " leave out --resume to start a new run")
        raise SystemExit(2)


def elsewhere(was, now):
    changed = ", ".join(f"{key} {was.get(key)} -> {now[key]}" for key in now if was.get(key) != now[key])
    return [f"note: resumed with another {changed}: the run goes on, but is no longer bit-identical to an uninterrupted one"] if changed else []
