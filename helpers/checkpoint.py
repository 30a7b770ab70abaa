"""The checkpoint: the last finished epoch (weights, optimizer, shuffle order, the history of every epoch),
and the run folder's files written from it, each whole or not at all. --resume puts it back.

A resumed run is the same run: the optimizer's momentum and the random generator that orders the next
epoch's batches are saved with the weights, so on the same CPU a resumed run ends bit for bit where an
uninterrupted one would. That holds for data.Batches (its own generator) and for the lecture's DataLoader
(torch's global generator, which its shuffling draws from)."""
import hashlib
import importlib.metadata
import os
import platform
import sys

import torch

from data import one_line

from . import figures, folders

ESSENTIAL = ("model.pt", "checkpoint.pt")  # a run stops if one of these cannot be written
CONVENIENCES = ("metrics.csv", "accuracy.png")  # one of these that cannot be replaced is a warning, and written again


class SaveError(Exception):
    """An essential file of the run could not be written."""


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


def image_count(loader):
    return len(loader.dataset) if hasattr(loader, "dataset") else len(loader.labels)


def fingerprint(train_loader, test_loader):
    """Which data a run trains on: the image counts and a checksum of the labels (the same MNIST anywhere)."""
    digest = hashlib.sha256()
    for loader in (train_loader, test_loader):
        labels = labels_of(loader)
        digest.update(b"?" if labels is None else torch.as_tensor(labels).cpu().to(torch.int64).numpy().tobytes())
    return {"train_images": image_count(train_loader), "test_images": image_count(test_loader), "labels_sha256": digest.hexdigest()[:16]}


def shuffle_generator(train_loader):
    """The generator that orders the next epoch: data.Batches' own, else torch's global one (a DataLoader's)."""
    return getattr(train_loader, "generator", None) or torch.default_generator


def cpu_copies(state):
    """Copies on the CPU: training goes on in the live tensors, and a CPU checkpoint loads on any machine."""
    return {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else v for k, v in state.items()}


def metrics_csv(history):
    rows = ["epoch,train_loss,test_accuracy,epoch_seconds"] + ["%d,%.6f,%.2f,%.2f" % tuple(row) for row in history]
    return "\n".join(rows + [""])


def epoch_range(n):
    return "no epoch" if n == 0 else "epoch 1" if n == 1 else f"epochs 1-{n}"


class Checkpoint:
    """The last finished epoch, replaced whole and never edited (so a Ctrl-C at any moment leaves it consistent),
    and which epoch each file of the folder holds."""

    def __init__(self, folder, net_name, state):
        self.folder, self.net_name = folder, net_name
        self.state = state  # {"history": [(epoch, train_loss, test_accuracy, epoch_seconds), ...], "model": ..., ...}
        self.written = dict.fromkeys(ESSENTIAL + CONVENIENCES, len(self.history))  # the epoch each file holds

    @property
    def history(self):
        return self.state["history"]

    @property
    def saved(self):
        """How many epochs checkpoint.pt holds: what --resume would go on from."""
        return self.written["checkpoint.pt"]

    def record(self, lesson, hyperparameters, device, row):
        """Take the finished epoch's state (row: epoch, train_loss, test_accuracy, seconds) and write the files."""
        optimizer = lesson.optimizer.state_dict()
        optimizer["state"] = {i: cpu_copies(s) for i, s in optimizer["state"].items()}
        self.state = {
            "net": self.net_name, "hyperparameters": hyperparameters, "data": lesson.data, "environment": environment(device),
            "model": cpu_copies(lesson.model.state_dict()), "optimizer": optimizer,
            "generator": shuffle_generator(lesson.train_loader).get_state(), "history": self.history + [row],
        }
        self.write()

    def write(self):
        """Write the folder's files from self.state, each whole or not at all: the weights and the checkpoint first."""
        state, epoch = self.state, len(self.history)
        writers = {
            "model.pt": lambda f: torch.save(state["model"], f),
            "checkpoint.pt": lambda f: torch.save(state, f),
            "metrics.csv": lambda f: f.write(metrics_csv(state["history"]).encode()),
            "accuracy.png": lambda f: figures.write_png(figures.plot(state["history"], self.net_name), f),
        }
        for name, write in writers.items():
            if self.written[name] == epoch:
                continue
            try:
                folders.save_atomic(os.path.join(self.folder, name), write)
            except OSError as e:
                if name in ESSENTIAL:
                    raise SaveError(f"{name}: {e.strerror or e}") from e
                # On Windows a file open in another program (metrics.csv in Excel) cannot be replaced: not a reason to stop.
                print(f"warning: could not replace {os.path.join(self.folder, name)} ({e.strerror or e}; open in another program?);"
                      f" it still holds {epoch_range(self.written[name])}, and is written again after the next epoch", file=sys.stderr)
                continue
            self.written[name] = epoch

    def restore(self, lesson):
        """Put the saved weights, momentum and shuffle order back into the script's model, optimizer and loader."""
        try:
            lesson.model.load_state_dict(self.state["model"])
            lesson.optimizer.load_state_dict(self.state["optimizer"])  # the momentum buffers, moved to the device
            shuffle_generator(lesson.train_loader).set_state(self.state["generator"])  # the next epoch's order
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            path = os.path.join(self.folder, "checkpoint.pt")
            raise SystemExit(
                f"error: cannot resume: {path} does not fit this script's {self.net_name} ({one_line(e)});"
                " it was left as it is. Leave out --resume to start a new run, or pick another --out-dir."
            ) from None

    def kept(self):
        """What the folder holds after a stop, truly, file by file where they differ."""
        if not any(self.written.values()):
            return "nothing was saved"
        epochs = sorted(set(self.written.values()), reverse=True)
        if len(epochs) == 1:
            return f"the results of {epoch_range(self.saved)} are in {self.folder}{os.sep}"
        by_epoch = [f"{', '.join(n for n in self.written if self.written[n] == e)} of epoch {e}" for e in epochs]
        return f"{self.folder}{os.sep} holds " + "; ".join(by_epoch) + f" (--resume goes on from epoch {self.saved})"
