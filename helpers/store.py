"""A run's folder. Its name is chosen when the run starts (OUT_DIR, else the next free OUT_DIR-2, OUT_DIR-3, ...);
the folder is made by the first saved epoch, exclusively, so that runs started together never share one. Each epoch
writes model.pt and checkpoint.pt, then metrics.csv, settings.json and accuracy.png, all from one state (see
checkpoint.py), each whole or not at all: a temporary file, then a rename."""
import itertools
import json
import os
import re
import sys
import time

import torch

from . import console, figures

ESSENTIAL = ("model.pt", "checkpoint.pt")  # a run stops where one of these cannot be written
VIEWS = ("metrics.csv", "settings.json", "accuracy.png")  # one that cannot be replaced (open in Excel) is a warning
WINDOWS = sys.platform == "win32"
RETRIES = (0.05, 0.1, 0.2, 0.4, 0.8)  # seconds between the tries of a rename that Windows refuses, 1.55 s in all


class SaveError(Exception):
    """An essential file of the run could not be written."""


def save_atomic(path, write):
    # A temporary file in the same folder, then a rename: a crash, a kill or Ctrl-C never leaves half a file.
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
        for wait in RETRIES if WINDOWS else ():
            try:
                return os.replace(tmp, path)
            except PermissionError:  # a virus scanner or indexer may hold a new file for a moment
                time.sleep(wait)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def numbered(name, ending=""):
    """name, name-2, name-3, ...: the names of the runs' folders, and (with an ending such as .png) of figures that keep
    the earlier ones."""
    return itertools.chain([name + ending], (f"{name}-{n}{ending}" for n in itertools.count(2)))


def is_free(path):
    return not os.path.exists(path) or (os.path.isdir(path) and not os.listdir(path))


def base(folder):
    """The folder that a new run's name starts from: . or .. by its full path, so that the next free one is not .-2."""
    folder = os.path.normpath(folder)
    return os.path.abspath(folder) if os.path.basename(folder) in (os.curdir, os.pardir) else folder


def choose(folder):
    """(the folder a new run will take, why it is not the one asked for, or None); OSError where none can be."""
    folder, above = base(folder), os.path.dirname(os.path.abspath(folder))
    while not os.path.exists(above):
        above = os.path.dirname(above)
    for path in (folder, above):
        if os.path.exists(path) and not os.path.isdir(path):
            raise NotADirectoryError(f"{path} is a file, not a folder")
    if not os.access(above, os.W_OK):
        raise PermissionError(f"{above} is not writable")
    path = next(path for path in numbered(folder) if is_free(path))
    has_run = any(os.path.exists(os.path.join(folder, name)) for name in ("settings.json", "checkpoint.pt", "metrics.csv"))
    return path, None if path == folder else f"{folder} holds an earlier run" if has_run else f"{folder} is not empty"


def claim(folder):
    """Make folder, or the next free one where another run took it meanwhile, and own it by creating its settings.json
    exclusively. Returns (the folder, whether this run made it)."""
    os.makedirs(os.path.dirname(folder) or ".", exist_ok=True)  # a parent that another run makes at the same instant is fine
    for path in numbered(folder):
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


def metrics_csv(history):
    rows = ["epoch,train_loss,test_accuracy,epoch_seconds"] + ["%d,%.6f,%.2f,%.2f" % tuple(row) for row in history]
    return "\n".join(rows + [""])


def epochs(n):
    return "no epoch" if n == 0 else "epoch 1" if n == 1 else f"epochs 1-{n}"


class Folder:
    """A run's folder on disk: which epoch its checkpoint holds (saved), and the files left at another (odd)."""

    def __init__(self, path, base, saved=0):
        self.path, self.base, self.saved, self.odd, self.made = path, base, saved, {}, saved > 0

    def write(self, state, say, last=False):
        """Write the files of the epoch that state ends with (last: the run's final one); SaveError where that epoch
        cannot be kept."""
        epoch = len(state["history"])
        if not self.made:  # the run's first saved epoch: now the folder appears
            try:
                path, self.created = claim(self.base)
            except OSError as e:
                raise SaveError(f"could not save epoch {epoch}: cannot make {self.path}: {e.strerror or e}") from None
            if path != self.path:
                say(f"results: {path}{os.sep} ({self.path} was taken by another run meanwhile)")
            self.path, self.made = path, True
        for name in os.listdir(self.path):  # what a save killed in the middle left behind (this process's own are removed)
            found = re.fullmatch(r"(.+)\.(\d+)\.tmp", name)
            if found and found.group(1) in ESSENTIAL + VIEWS and int(found.group(2)) != os.getpid():
                os.remove(os.path.join(self.path, name))
        settings = json.dumps({**state["settings"], "resumed": state["resumed"]}, indent=2, ensure_ascii=False) + "\n"
        writers = {"model.pt": lambda f: torch.save(state["model"], f), "checkpoint.pt": lambda f: torch.save(state, f),
                   "metrics.csv": lambda f: f.write(metrics_csv(state["history"]).encode()),
                   "settings.json": lambda f: f.write(settings.encode()),  # for people to read: never read back
                   "accuracy.png": lambda f: figures.write_png(figures.plot(state["history"], state["net"]), f)}
        for name, write in writers.items():
            try:
                save_atomic(os.path.join(self.path, name), write)
            except Exception as e:  # OSError, or the RuntimeError of torch.save on a full disk
                why = getattr(e, "strerror", None) or console.one_line(e)
                if name in VIEWS:
                    self.odd.setdefault(name, epoch - 1)  # it holds the epoch before, or an earlier one
                    then = f"it holds {epochs(self.odd[name])}, checkpoint.pt {epochs(epoch)}" if last else "it is written again after the next epoch"
                    console.tell(f"warning: could not replace {os.path.join(self.path, name)} ({why}; open in another program?); {then}")
                    continue
                if name == "checkpoint.pt":
                    self.odd["model.pt"] = epoch
                if not self.saved:  # a folder without a saved epoch is not kept
                    for ours in ESSENTIAL + VIEWS:
                        if os.path.isfile(os.path.join(self.path, ours)):
                            os.remove(os.path.join(self.path, ours))
                    if self.created:
                        os.rmdir(self.path)
                    self.odd, self.made = {}, False
                raise SaveError(f"could not save epoch {epoch} to {self.path} ({name}: {why})") from None
            self.odd.pop(name, None)
            if name == "checkpoint.pt":
                self.saved = epoch

    def kept(self):
        """What the folder holds now, truly."""
        if not self.saved:
            return "nothing was saved"
        odd = "; ".join(f"{name} holds {f'epoch {n}' if n else 'no epoch'}" for name, n in self.odd.items())
        return f"the results of {epochs(self.saved)} are in {self.path}{os.sep}" + (
            f" (but {odd}; --resume goes on from epoch {self.saved})" if odd else "")
