"""--resume RUN: a run goes on from its checkpoint.pt, and from nothing else, with its own settings, weights, optimizer
state and shuffle order. A resume that cannot be right (a typed flag or an optimizer that differs from the run's, other
data, another net, no more epochs) is refused in one line, exit 2, before anything in the folder is touched."""

import os
import sys

import torch

from . import flags, record
from .store import one_line

# Typed with --resume, these apply to the rest of the run; any other flag typed must agree with the run's own.
RESUMABLE = ("resume", "epochs", "device", "data_dir", "no_show")


def refuse(run, why):
    """A resume that cannot be right: one line, exit 2, nothing changed."""
    print(f"{run.parser.prog}: error: --resume {run.folder}: {why}; nothing was changed", file=sys.stderr)
    raise SystemExit(2)


def load(run, typed):
    """(the checkpoint of run.folder, its epochs done); run.args take the run's own values where none was typed."""
    path = os.path.join(run.folder, "checkpoint.pt")
    if not os.path.isfile(path):
        what = "it has no checkpoint.pt to go on from" if os.path.isdir(run.folder) else "there is no such folder"
        refuse(run, f"{what}; name a run's folder (e.g. runs/resnet), or leave out --resume to start a new run")
    try:  # a damaged checkpoint.pt is an error (exit 1), not a refusal
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if missing := {"record", "history", "model", "optimizer", "rng"} - set(saved):
            raise KeyError(f"it has no {', '.join(sorted(missing))}")
    except Exception as e:
        why = f"{path} is damaged or truncated ({one_line(e)})"
        raise SystemExit(f"error: cannot resume: {why}; it was left as is") from None
    own = saved["record"]["flags"]
    for name, value in typed.items():
        if name not in RESUMABLE and value != own.get(name):
            fix = "leave it out to go on with the run's own, or start a new run"
            refuse(run, f"{flags.flag(name)} {value} differs from the run's {own.get(name)}; {fix}")
    vars(run.args).update({name: value for name, value in own.items() if name not in typed})
    done = len(saved["history"])
    if run.args.epochs <= done:
        asked = f"{'' if 'epochs' in typed else 'its own '}--epochs {run.args.epochs}"
        more = f"{asked} asks for no more; to go on, ask for more, e.g. --epochs {done + 10}"
        refuse(run, f"it has done {done} epoch{'s' * (done != 1)}, and {more}")
    return saved, [tuple(row) for row in saved["history"]]


def restore(run):
    """Put the saved weights, optimizer state and random state back into run's model, optimizer and loader; returns
    the record the run goes on with."""
    saved, now = run.saved["record"], run.record
    if now["net"] != saved["net"]:
        refuse(run, f"it is a run of {saved['net']}, but this script trains {now['net']}")
    if now["data"] != saved["data"]:
        held = [
            f"{d['training_images']:,} training and {d['test_images']:,} test images"
            for d in (saved["data"], now["data"])
        ]
        refuse(run, f"it was trained on {held[0]}, but --data-dir {run.args.data_dir} holds {held[1]}")
    # load_state_dict would put the run's own hyperparameters back: an optimizer edited since is refused instead.
    if differs := record.optimizer_changes(saved["optimizer"], now["optimizer"]):
        what = ", ".join(f"{name} {new} in the code, {old} in the run" for name, new, old in differs)
        to_try = differs[0][1] if len(differs) == 1 else "these"
        refuse(run, f"{what}; a resume goes on with the run's own optimizer; start a new run to try {to_try}")
    try:
        run.model.load_state_dict(run.saved["model"])
        run.optimizer.load_state_dict(run.saved["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        refuse(run, f"its checkpoint.pt does not fit this script's model or optimizer ({str(e).splitlines()[0]})")
    torch.set_rng_state(run.saved["rng"]["torch"])
    if getattr(run.train_loader, "generator", None) is not None and run.saved["rng"]["loader"] is not None:
        run.train_loader.generator.set_state(run.saved["rng"]["loader"])
    # The code a resume does run: the net's, the data's and the script's (its constants are the run's own). From here
    # the record holds it: the saved weights are what it trained last (look_inside.py builds the net from it).
    was = record.versioned(saved)
    if changed := [name for name, text in record.versioned(now).items() if was.get(name, text) != text]:
        them = "it" if len(changed) == 1 else "them"
        print(f"note: {', '.join(changed)} changed since the run began; the rest of the run uses {them} as edited")
    done = len(run.history)
    print(f"resuming: {epochs(done)} done in {run.folder}{os.sep}; {epochs(run.args.epochs, done + 1)} to go")
    own = {name: getattr(run.args, name) for name in saved["flags"]}
    return {**saved, "flags": own, **{key: now[key] for key in ("device", "script", "code")}}


def epochs(last, first=1):
    """Epochs first to last, in words: "epoch 1", "epochs 1-6", "epochs 11-30"."""
    return f"epoch {last}" if first == last else f"epochs {first}-{last}"
