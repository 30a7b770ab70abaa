"""A training script's flags: one per constant that the script hands to Run (its default the constant, its help the
comment beside it), and the keeper's own --resume, --device and --no-show. A value that cannot work, typed or edited
at the top of the script, is a usage error (exit 2) before anything is loaded."""

import argparse
import math
import re
import sys

from . import device

# What a value must be, where a learner can get it wrong; any other number must be 0 or more. Every number is finite.
CHECKS = {
    "epochs": (lambda v: v >= 1, "at least 1"),
    "batch_size": (lambda v: v >= 1, "at least 1"),
    "log_every": (lambda v: v >= 1, "at least 1"),
    "lr": (lambda v: v > 0, "above 0"),
    "momentum": (lambda v: 0 <= v < 1, "0 or more and below 1"),
    "seed": (lambda v: 0 <= v < 2**64, "0 or more and below 2**64"),
}


def flag(name):
    return "--" + name.replace("_", "-")


def command_line():
    """sys.argv[1:], except in a process that a Jupyter kernel started: there they are the kernel's own."""
    kernel = "ipykernel" in sys.modules and re.search(r"kernel_launcher\.py$|ipykernel[\\/]__main__\.py$", sys.argv[0])
    return [] if kernel else sys.argv[1:]


def parse(argv, script, source, constants):
    """(parser, args, typed): the constants as flags, checked; typed holds the flags typed on the command line."""
    helps = {name.lower(): text for name, text in re.findall(r"^([A-Z_]+) = .*?\s# ?(.+)$", source, re.M)}
    what = f"Lecture 11: train a net on MNIST. Each flag overrides its constant at the top of {script}, for one run."
    parser = argparse.ArgumentParser(prog=script, description=what, argument_default=argparse.SUPPRESS)
    for name, value in constants.items():
        how = {"action": argparse.BooleanOptionalAction} if isinstance(value, bool) else {"type": type(value)}
        parser.add_argument(flag(name), help=f"{helps.get(name, '')} (default: {value})", **how)
    resume = "go on with the run in folder RUN from its last saved epoch, with its own settings"
    parser.add_argument("--resume", metavar="RUN", help=resume)
    parser.add_argument(
        "--device", help="auto (CUDA, else Apple's MPS, else the CPU), cpu, cuda, cuda:1, mps (default: auto)"
    )
    parser.add_argument("--no-show", action="store_true", help="never show the plot")
    typed = vars(parser.parse_args(command_line() if argv is None else [str(word) for word in argv]))
    args = argparse.Namespace(**{**constants, "resume": None, "device": "auto", "no_show": False, **typed})
    for name in constants:
        value, (works, what) = getattr(args, name), CHECKS.get(name, (lambda v: v >= 0, "0 or more"))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        who = flag(name) if name in typed else name.upper()  # not typed: the constant at the top of the script
        if not math.isfinite(value):
            parser.error(f"{who} must be a finite number, got {value}")
        if not works(value):
            parser.error(f"{who} must be {what}, got {value}")
    check_device(parser, args.device)
    return parser, args, typed


def check_device(parser, name):
    """The torch.device that --device names, or a usage error that says why this machine has none."""
    try:
        return device.pick(name)
    except ValueError as e:
        parser.error(f"--device: {e}")


def quoted(word):
    """A word of a command as cmd, PowerShell, bash and zsh all read it: in double quotes where it holds a space, a
    Chinese character or anything else but letters, digits and ./\\:_-."""
    return f'"{word}"' if re.search(r"[^\w./\\:-]", word, re.ASCII) else word
