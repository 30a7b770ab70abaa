"""Run folders: every run in a folder of its own, never overwritten, with a settings.json that says what it was.

A new run takes the folder it is given when that is missing or empty, else the next free one beside it:
runs/resnet, then runs/resnet-2, runs/resnet-3, ... Each folder is claimed atomically, so two runs started
at the same moment never share one. Files are written whole or not at all (a temporary file, then a rename).
"""
import json
import os
import re

SETTINGS = "settings.json"


class SettingsError(Exception):
    """A settings.json that cannot be read, or that is not what a run writes."""


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


def write_json(path, value):
    save_atomic(path, lambda f: f.write((json.dumps(value, indent=2) + "\n").encode()))


def read_settings(folder):
    """folder/settings.json as a dict; None if there is none (a run made before settings files)."""
    path = os.path.join(folder, SETTINGS)
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise SettingsError(f"{path} cannot be read ({getattr(e, 'strerror', None) or e})") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("net"), str):
        raise SettingsError(f"{path} is not a run's settings (it has no net)")
    resumed = settings.get("resumed", [])
    if not isinstance(resumed, list) or not all(isinstance(entry, dict) for entry in resumed):
        raise SettingsError(f"{path} is not a run's settings (its resumed is not a list of resumes)")
    return settings


def latest(settings, name):
    """A setting as it stands now: the last --resume's value where one set it, else the run's own."""
    return (settings.get("resumed") or [settings])[-1].get(name)


def numbered(folder):
    """The numbered folders beside folder that exist (folder-2, folder-3, ...), in order."""
    parent, base = os.path.split(folder)
    try:
        names = os.listdir(parent or ".")
    except OSError:
        return []
    found = sorted((int(m.group(1)), name) for name in names if (m := re.fullmatch(re.escape(base) + r"-(\d+)", name)))
    return [os.path.join(parent, name) for _, name in found]


def latest_run(folder):
    """Of folder and its numbered folders, the one whose checkpoint was written last; None if none has one."""
    runs = [f for f in [folder, *numbered(folder)] if os.path.isfile(os.path.join(f, "checkpoint.pt"))]
    return max(runs, key=lambda f: os.path.getmtime(os.path.join(f, "checkpoint.pt")), default=None)


def claim(folder):
    """(folder used, why not the one asked for or None, the folders made): a folder for a new run, claimed
    by creating its settings.json exclusively. Raises OSError where nothing can be made."""
    folder = os.path.normpath(folder)
    made = make_parents(os.path.dirname(folder))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(f"{folder} is a file, not a folder")
    candidate, n, why = folder, 1, None
    while True:
        try:
            os.mkdir(candidate)
            made.append(candidate)
        except FileExistsError:
            pass
        if os.path.isdir(candidate) and not os.listdir(candidate):
            try:
                open(os.path.join(candidate, SETTINGS), "x").close()  # fails if another run took the folder first
                return candidate, why, made
            except FileExistsError:
                pass
        if why is None:
            has_run = any(os.path.exists(os.path.join(folder, name)) for name in (SETTINGS, "checkpoint.pt", "metrics.csv"))
            why = f"{folder} holds an earlier run" if has_run else f"{folder} is not empty"
        n += 1
        candidate = f"{folder}-{n}"


def make_parents(parent):
    """Make parent and the folders above it that are missing; returns those made, outermost first."""
    missing = []
    while parent and not os.path.isdir(parent):
        if os.path.exists(parent):
            raise NotADirectoryError(f"{parent} is a file, not a folder")
        missing.append(parent)
        parent = os.path.dirname(parent)
    made = []
    for path in reversed(missing):
        os.mkdir(path)
        made.append(path)
    return made


def remove_made(folder, made):
    """Undo claim() for a run that saved nothing: its empty settings.json and the folders it made, if empty."""
    settings = os.path.join(folder, SETTINGS)
    if os.path.isfile(settings):
        os.remove(settings)
    for path in reversed(made):
        try:
            os.rmdir(path)  # only an empty folder
        except OSError:
            break
