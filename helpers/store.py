"""A run's folder and files. The folder is made when the run starts, by an exclusive mkdir over OUT_DIR, OUT_DIR-2,
... (runs started together each get their own). Every file is written whole: to a temporary file, then renamed."""

import contextlib
import io
import itertools
import os
import sys

import torch


class SaveError(Exception):
    """checkpoint.pt or model.pt could not be written: the run ends."""


def make_folder(base):
    """(the first of base, base-2, base-3, ... that this call creates, the folders above it that it had to make)."""
    made = missing(os.path.dirname(os.path.abspath(base)))
    os.makedirs(os.path.dirname(base) or os.curdir, exist_ok=True)
    for path in itertools.chain([base], (f"{base}-{n}" for n in itertools.count(2))):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
            return path, made


def missing(path):
    """The folders of an absolute path that do not exist yet, innermost first."""
    made = []
    while not os.path.isdir(path):
        made, path = [*made, path], os.path.dirname(path)
    return made


def remove_empty(folders):
    """Remove each folder in turn, up to the first that holds something (a run's folder, then those made above it)."""
    with contextlib.suppress(OSError):
        for folder in folders:
            os.rmdir(folder)


def write(path, data):
    """Write bytes to path whole, or leave the file as it was."""
    try:
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(path + ".tmp")
        raise


def save(folder, files, essential=False):
    """files: {name: a function that makes its bytes}. An essential file (checkpoint.pt, model.pt) that cannot be
    written ends the run; another (a file for people, open in Excel, say) is a warning."""
    for name, make in files.items():
        path = os.path.join(folder, name)
        try:
            write(path, make())
        except OSError as e:
            if essential:
                raise SaveError(f"could not write {path}: {e.strerror or e}") from None
            why = f"{e.strerror or e}; open in another program?"
            print(f"warning: could not replace {path} ({why}); checkpoint.pt holds every epoch", file=sys.stderr)


def tensors(obj):
    """torch.save to bytes: written to disk afterwards, a full disk says "No space left on device"."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def one_line(error):
    """The last non-empty line of an exception's message (torchvision's download errors span many)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
