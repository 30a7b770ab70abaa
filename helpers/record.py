"""A run's record of what ran, built from the objects it trained with: the script's constants, the optimizer as torch
holds it, the net, the data's size, the device and the code of the lesson files. checkpoint.pt keeps it whole;
settings.json shows it to people and to compare.py, with each file's code as a short hash."""

import datetime
import hashlib
import json
import linecache
import os
import platform
import re
import sys
import sysconfig

import torch

from . import flags

# Where Python's own files and installed packages live: not lesson files.
LIBRARIES = ("site-packages", "dist-packages", sysconfig.get_path("stdlib"))


def source(file):
    """The text of a file of code: a script, a module, or a notebook's cell (IPython keeps those in linecache)."""
    return "".join(linecache.getlines(file))


def count(loader):
    """The images a loader holds: a DataLoader's dataset, or data.Batches' labels."""
    return len(loader.dataset) if hasattr(loader, "dataset") else len(loader.labels)


def build(script, file, constants, model, optimizer, train_loader, test_loader):
    """The record of a run of script (None: a notebook cell) in file, with constants as they are now."""
    # The lesson files: the script, and the files that the net's and the loaders' classes come from.
    files = {script or "notebook cell": file}
    for obj in (model, train_loader, test_loader):
        path = getattr(sys.modules.get(type(obj).__module__), "__file__", None)
        if path and not any(part in path for part in LIBRARIES):
            files.setdefault(os.path.basename(path), path)
    groups = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    return {
        "script": script,
        "net": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "flags": constants,
        "optimizer": {"class": type(optimizer).__name__, "param_groups": groups},
        "data": {"training_images": count(train_loader), "test_images": count(test_loader)},
        "device": str(next(model.parameters()).device),
        "code": {name: source(f) for name, f in files.items()},
        "versions": {"python": platform.python_version(), "torch": str(torch.__version__)},
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def versioned(record):
    """{lesson file: the text its version is told by}: the script without the lines that assign the constants it hands
    the keeper (their values are in the record as flags, and a resume takes the run's own), the others whole."""
    script = re.compile(rf"^({'|'.join(name.upper() for name in record['flags'])}) *=.*\n?", re.M)
    first = record["script"] or "notebook cell"
    return {name: script.sub("", text) if name == first else text for name, text in record["code"].items()}


def optimizer_changes(saved, now):
    """[(hyperparameter, now, saved)] where the optimizer now differs from the record's: its class, else the values of
    its param_groups that both torch versions have."""
    if now["class"] != saved["class"]:
        return [("optimizer", now["class"], saved["class"])]
    pairs = zip(now["param_groups"], saved["param_groups"])
    return [(k, v, old[k]) for new, old in pairs for k, v in new.items() if k in old and v != old[k]]


def settings_json(record, epochs_done):
    """settings.json: the record, each lesson file's code version (versioned()) as 12 digits of its SHA-256."""
    hashes = {name: hashlib.sha256(text.encode()).hexdigest()[:12] for name, text in versioned(record).items()}
    text = json.dumps({**record, "code": hashes, "epochs_done": epochs_done}, indent=2, ensure_ascii=False, default=str)
    return (text + "\n").encode()


def describe(settings):
    """{key: text}: what compare.py tells runs apart by, from a run's settings.json (KeyError where it is not one)."""
    items = {"net": settings["net"], "parameters": f"{settings['parameters']:,} parameters"}
    items["optimizer"] = settings["optimizer"]["class"]
    for i, group in enumerate(settings["optimizer"]["param_groups"]):
        # None and False: torch's switches of how to compute (foreach, fused, ...), or options left off.
        items.update({f"{k}{i or ''}": f"{k} {v}" for k, v in group.items() if v is not None and v is not False})
    # Where a run went and whether its plot was shown is not what it was.
    constants = {flags.flag(k): v for k, v in settings["flags"].items() if k not in ("out_dir", "no_show")}
    items.update({name: f"{name} {value}" for name, value in constants.items()})
    items.update({kind: f"{settings['data'][f'{kind}_images']:,} {kind} images" for kind in ("training", "test")})
    items["device"] = settings["device"]
    # Each lesson file's code by its hash: comparison.versions() numbers them.
    return {**items, **{f"code {name}": digest for name, digest in settings["code"].items()}}
