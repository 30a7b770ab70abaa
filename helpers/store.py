"""A run on disk. Its folder's name is chosen when the run starts (OUT_DIR, else the next free OUT_DIR-2, OUT_DIR-3, ...);
the folder itself is made with the first saved epoch, exclusively, so that runs started together never share one.

checkpoint.pt holds everything --resume needs: the weights, the optimizer's momentum, the state of the generator that
orders the next epoch's batches (data.Batches' own, or torch's global one that the lecture's DataLoader draws from),
every epoch's numbers, the settings the run was started with and each resume's. model.pt, metrics.csv, settings.json
and accuracy.png are written from the same state after it. Every file is written whole or not at all."""
import hashlib
import importlib.metadata
import json
import os
import platform
import re
from datetime import datetime, timezone

import torch

from . import figures

ESSENTIAL = ("model.pt", "checkpoint.pt")  # a run stops where one of these cannot be written
VIEWS = ("metrics.csv", "settings.json", "accuracy.png")  # one that cannot be replaced (open in Excel) is a warning


class SaveError(Exception):
    """An essential file of the run could not be written."""


def save_atomic(path, write):
    # A temporary file in the same folder, then a rename: a crash, a kill or Ctrl-C never leaves half a file.
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def clear_temporaries(folder):
    """The temporary files that a save killed in the middle left behind (another process's: this one's are its own)."""
    for name in os.listdir(folder):
        found = re.fullmatch(r"(.+)\.(\d+)\.tmp", name)
        if found and found.group(1) in ESSENTIAL + VIEWS and int(found.group(2)) != os.getpid():
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass


def candidates(folder):
    yield folder
    n = 2
    while True:
        yield f"{folder}-{n}"
        n += 1


def is_free(path):
    return not os.path.exists(path) or (os.path.isdir(path) and not os.listdir(path))


def choose(folder):
    """(the folder a new run will take, why it is not the one asked for or None). Raises OSError where none can be."""
    folder = os.path.normpath(folder)
    above = os.path.dirname(os.path.abspath(folder))
    while not os.path.exists(above):
        above = os.path.dirname(above)
    for path in (folder, above):
        if os.path.exists(path) and not os.path.isdir(path):
            raise NotADirectoryError(f"{path} is a file, not a folder")
    if not os.access(above, os.W_OK):
        raise PermissionError(f"{above} is not writable")
    path = next(path for path in candidates(folder) if is_free(path))
    if path == folder:
        return path, None
    has_run = any(os.path.exists(os.path.join(folder, name)) for name in ("settings.json", "checkpoint.pt", "metrics.csv"))
    return path, f"{folder} holds an earlier run" if has_run else f"{folder} is not empty"


def claim(folder):
    """Make folder, or the next free one where another run took it meanwhile, and own it by creating its settings.json
    exclusively. Returns (the folder, whether this run made it)."""
    os.makedirs(os.path.dirname(folder) or ".", exist_ok=True)  # a parent another run makes at the same instant is fine
    for path in candidates(folder):
        made = False
        try:
            os.mkdir(path)
            made = True
        except FileExistsError:
            if not is_free(path):
                continue
        try:
            open(os.path.join(path, "settings.json"), "x").close()
            return path, made
        except FileExistsError:  # another run claimed it first
            continue


def remove(folder, made):
    """Undo a first save that failed: the run's files, then the folder if the run made it."""
    for name in ESSENTIAL + VIEWS:
        if os.path.isfile(os.path.join(folder, name)):
            os.remove(os.path.join(folder, name))
    if made:
        os.rmdir(folder)


def writers(state):
    """What each file of the run holds, all from one state, in the order they are written: the essential files first."""
    settings = {**state["settings"], "resumed": state["resumed"]}  # the human-readable record, never read back
    return {
        "model.pt": lambda f: torch.save(state["model"], f),
        "checkpoint.pt": lambda f: torch.save(state, f),
        "metrics.csv": lambda f: f.write(metrics_csv(state["history"]).encode()),
        "settings.json": lambda f: f.write((json.dumps(settings, indent=2, ensure_ascii=False) + "\n").encode()),
        "accuracy.png": lambda f: figures.write_png(figures.plot(state["history"], state["net"]), f),
    }


def metrics_csv(history):
    rows = ["epoch,train_loss,test_accuracy,epoch_seconds"] + ["%d,%.6f,%.2f,%.2f" % tuple(row) for row in history]
    return "\n".join(rows + [""])


def epoch_range(n):
    return "no epoch" if n == 0 else "epoch 1" if n == 1 else f"epochs 1-{n}"


def now():
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def environment(device):
    """What decides a run's float rounding: resumed elsewhere, a run is no longer bit-identical."""
    return {"device": str(device), "threads": torch.get_num_threads(), "torch": str(torch.__version__)}


def versions():
    try:
        torchvision = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        torchvision = None
    return {"python": platform.python_version(), "torch": str(torch.__version__), "torchvision": torchvision,
            "system": platform.platform(terse=True)}


def labels_of(loader):
    """All labels of a loader: data.Batches holds them; a DataLoader's MNIST dataset has them as targets."""
    labels = getattr(loader, "labels", None)
    return labels if labels is not None else getattr(getattr(loader, "dataset", None), "targets", None)


def fingerprint(train_loader, test_loader):
    """Which data a run trains on: the image counts and a checksum of the labels (the same MNIST anywhere)."""
    digest, counts = hashlib.sha256(), []
    for loader in (train_loader, test_loader):
        labels = labels_of(loader)
        digest.update(b"?" if labels is None else torch.as_tensor(labels).cpu().to(torch.int64).numpy().tobytes())
        counts.append(len(loader.dataset) if hasattr(loader, "dataset") else len(loader.labels))
    return {"train_images": counts[0], "test_images": counts[1], "labels_sha256": digest.hexdigest()[:16]}


def shuffle_generator(train_loader):
    """The generator that orders the next epoch: data.Batches' own, else torch's global one (a DataLoader's)."""
    return getattr(train_loader, "generator", None) or torch.default_generator


def cpu_copies(state):
    """Copies on the CPU: training goes on in the live tensors, and a CPU checkpoint loads on any machine."""
    return {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else v for k, v in state.items()}
