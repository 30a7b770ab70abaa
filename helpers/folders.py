"""Run folders: every run in a folder of its own, never overwritten, with a settings.json that says what it was.

A new run takes the folder it is given when that is missing or empty, else the next free one beside it:
runs/resnet, then runs/resnet-2, runs/resnet-3, ... Each folder is claimed atomically, so two runs started
at the same moment never share one. Files are written whole or not at all (a temporary file, then a rename).
"""
import json
import os
import re
import sys
from datetime import datetime, timezone

from . import flags

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
    """folder/settings.json as a dict; raises SettingsError, naming the file, where it cannot be read."""
    path = os.path.join(folder, SETTINGS)
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
    except (OSError, ValueError) as e:
        raise SettingsError(f"{path} cannot be read ({getattr(e, 'strerror', None) or e})") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("net"), str):
        raise SettingsError(f"{path} is not a run's settings (it has no net)")
    resumed = settings.get("resumed", [])
    if not isinstance(resumed, list) or not all(isinstance(entry, dict) for entry in resumed):
        raise SettingsError(f"{path} is not a run's settings (its resumed is not a list of resumes)")
    return settings


def latest(settings, name):
    """A setting as it stands now: the value of the last --resume that recorded it, else the run's own."""
    for entry in reversed([settings, *settings.get("resumed", [])]):
        if entry.get(name) is not None:
            return entry[name]
    return None


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


def now():
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class RunFolder:
    """A run's folder and its settings.json (what the run was): claimed for a new run, or found by --resume.

    settings is None where --resume found a settings.json that cannot be read: it is left as it is."""

    def __init__(self, path, settings, made, script_path, argv, default_out):
        self.path, self.settings, self.made = path, settings, made
        self.script_path, self.argv, self.default_out = script_path, argv, default_out

    @classmethod
    def claim_new(cls, out_dir, settings, script_path, argv, default_out):
        """A new folder (out_dir, else out_dir-2, ...) with settings.json; exits with a message where none can be made."""
        try:
            path, why, made = claim(out_dir)
        except OSError as e:
            raise SystemExit(f"error: cannot write results to {out_dir}: {e.strerror or e}. Pick another folder with --out-dir.") from None
        folder = cls(path, settings, made, script_path, argv, default_out)
        settings["command"] = folder.command_line()
        try:
            write_json(os.path.join(path, SETTINGS), settings)
        except OSError as e:
            folder.remove()
            raise SystemExit(f"error: cannot write results to {path}: {e.strerror or e}. Pick another folder with --out-dir.") from None
        return folder, why

    def command_line(self):
        """The command that started this Python, as typed where it can be known (sys.orig_argv), for settings.json."""
        if self.argv is None:
            return flags.shell_join(getattr(sys, "orig_argv", sys.argv))
        return flags.shell_join(["python", self.script_path, *self.argv])  # main(argv) called from Python

    def resume_command(self, args, typed):
        words = ["python", self.script_path, "--resume"]
        if os.path.normpath(self.path) != self.default_out:
            words += ["--out-dir", self.path]
        if args.resume and "epochs" in typed:  # a new run's settings.json has its epochs already
            words += ["--epochs", str(args.epochs)]
        if "device" in typed:
            words += ["--device", str(args.device)]
        if "no_show" in typed:
            words += ["--no-show"]
        return flags.shell_join(words)

    def update(self, **values):
        """Add values to settings.json and write it again (whole or not at all); a file that could not be read is left alone."""
        if self.settings is None:
            return
        self.settings.update(values)
        write_json(os.path.join(self.path, SETTINGS), self.settings)

    def add_resume(self, entry):
        if self.settings is not None:
            self.update(resumed=[*self.settings.get("resumed", []), {"started": now(), "command": self.command_line(), **entry}])

    def remove(self):
        """A new run that saved nothing leaves nothing behind."""
        remove_made(self.path, self.made)
