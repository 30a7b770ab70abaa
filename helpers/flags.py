"""The training scripts' flags (their defaults are the constants at the top of the script) and their checks: a usage
error exits with 2 before anything is loaded. And the command lines a run prints back, quoted for the user's shell."""
import argparse
import difflib
import math
import os
import re
import shlex
import subprocess
import sys

from . import device

TYPED_NOT = object()  # the value of a flag that was not typed on the command line
HYPERPARAMETERS = ("batch_size", "lr", "momentum", "seed")  # what makes the run: a resumed run keeps them
MISTYPED = {"--learning-rate": "--lr", "--learning_rate": "--lr", "--bs": "--batch-size", "--batch": "--batch-size",
            "--epoch": "--epochs", "--out": "--out-dir", "--output": "--out-dir", "--data": "--data-dir", "--gpu": "--device",
            "--cuda": "--device"}


class Parser(argparse.ArgumentParser):
    """argparse, with a hint for a mistyped flag (--learning-rate: did you mean --lr?)."""

    def error(self, message):
        if message.startswith("unrecognized arguments:"):
            known = [option for action in self._actions for option in action.option_strings]
            for word in message.split(":", 1)[1].split():
                flag = word.split("=")[0]
                guess = MISTYPED.get(flag) or next(iter(difflib.get_close_matches(flag, known, n=1, cutoff=0.6)), None)
                if flag.startswith("-") and guess in known:
                    message += f" (did you mean {guess}?)"
                    break
        super().error(message)


def short(value):
    """A number as a person would type it: 0.01, 1e+09, 64."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def command_line_args():
    """sys.argv[1:], except in a process that a Jupyter kernel launched: there they are the kernel's (-f kernel-....json).
    %run script.py --lr 0.05 in a notebook sets sys.argv to the script's own, and keeps them."""
    launched_by_kernel = "ipykernel" in sys.modules and re.search(r"kernel_launcher\.py$|ipykernel[\\/]__main__\.py$", sys.argv[0])
    return [] if launched_by_kernel else sys.argv[1:]


def at_least_one(parser, **values):
    for name, value in values.items():
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def parse_args(argv, description, defaults):
    """(parser, args, typed): the flags with the script's constants as defaults, checked; typed names the flags
    given on the command line (a resumed run keeps its own settings for the others)."""
    parser = Parser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for flag, kind, text in (("--epochs", int, "train until this many epochs are done"), ("--batch-size", int, "images per SGD step"),
                             ("--lr", float, "learning rate"), ("--momentum", float, "SGD momentum, in [0, 1)"), ("--seed", int, "random seed"),
                             ("--log-every", int, "batches between loss lines"),
                             ("--data-dir", str, "folder that holds (or receives) MNIST: in MNIST/raw/ or itself"),
                             ("--out-dir", str, "folder for accuracy.png, metrics.csv, model.pt, checkpoint.pt, mistakes.png and"
                                                " settings.json; if it holds a run already, the next free OUT_DIR-2, OUT_DIR-3, ...")):
        parser.add_argument(flag, type=kind, default=defaults[flag[2:].replace("-", "_")], help=text)
    parser.add_argument("--resume", action="store_true",
                        help="go on from the last finished epoch of the latest run (OUT_DIR, OUT_DIR-2, ...) or of --out-dir")
    add_device_flag(parser)
    parser.add_argument("--no-show", action="store_true", help="only save the plot, never show it")
    # Every flag starts as TYPED_NOT, so that what was typed can be told from a default.
    namespace = argparse.Namespace(**{action.dest: TYPED_NOT for action in parser._actions if action.dest != "help"})
    args = parser.parse_args(command_line_args() if argv is None else [str(a) for a in argv], namespace)
    typed = {name for name, value in vars(args).items() if value is not TYPED_NOT}
    for action in parser._actions:
        if getattr(args, action.dest, None) is TYPED_NOT:
            setattr(args, action.dest, action.default)
    # Checked here rather than by argparse so that values edited at the top of a script are checked too.
    at_least_one(parser, epochs=args.epochs, batch_size=args.batch_size, log_every=args.log_every)
    if not (math.isfinite(args.lr) and args.lr > 0):
        parser.error(f"--lr must be a finite number above 0, got {short(args.lr)}")
    if not 0 <= args.momentum < 1:
        parser.error(f"--momentum must be in [0, 1), got {short(args.momentum)}")
    if not 0 <= args.seed < 2**64:  # what torch.manual_seed takes
        parser.error(f"--seed must be from 0 to 2**64 - 1, got {args.seed}")
    check_device(parser, args.device)
    return parser, args, typed


def add_device_flag(parser):
    parser.add_argument("--device", default="auto", help="auto (CUDA, else another accelerator, else CPU), cpu, cuda, cuda:1, mps, ...")


def check_device(parser, name):
    try:
        return device.pick(name)
    except ValueError as e:
        parser.error(f"--device: {e}")


def script_path(script):
    """The script as the user would type it from here: relative where it can be (not across Windows drives)."""
    try:
        return os.path.relpath(script)
    except ValueError:  # on another drive than the working directory
        return os.path.abspath(script)


def shell_join(words, windows=None):
    """A command line that the user's shell reads back as these words: cmd.exe / PowerShell quoting on Windows."""
    if windows if windows is not None else sys.platform == "win32":
        return subprocess.list2cmdline(words)
    return shlex.join(words)
