"""A run's stops, each turned into one message that says what happened, what the folder holds and what to do:
Ctrl-C, divergence, out of memory, bad data, a file that cannot be written, output closed by `head`.

Which failures get a message: those of the run's surroundings (data, disk, memory, the learning rate, a
Ctrl-C). An error in the code itself (say, in an edited models.py) keeps its traceback: it says where to look."""
import os
import sys
import traceback as tracebacks

import torch

from data import DataError

from . import report
from .checkpoint import SaveError
from .flags import short


def is_out_of_memory(error):
    # CUDA raises torch.OutOfMemoryError; Apple's MPS a plain RuntimeError ("MPS backend out of memory").
    return isinstance(error, torch.OutOfMemoryError) or (isinstance(error, RuntimeError) and "out of memory" in str(error))


def stop(run, kind, error, traceback):
    """What Run.__exit__ does: the end of the run, or the message of a stop; returns False to let an error through."""
    args, saved = run.args, run.checkpoint
    if kind is None:
        try:
            report.write_mistakes(run)
            report.finish(run)
        except KeyboardInterrupt:
            interrupted(run)
    elif issubclass(kind, KeyboardInterrupt):
        if saved.saved < len(saved.history):  # stopped while saving: the state is still that epoch's, so save again
            saved.write()
        report.write_mistakes(run)
        interrupted(run)
    elif issubclass(kind, DataError):
        raise SystemExit(f"error: {error}") from None
    elif is_out_of_memory(error):
        free(run, traceback)
        report.write_mistakes(run)
        raise SystemExit(f"error: out of memory on {run.device} with --batch-size {args.batch_size}: try a smaller batch;"
                         f" {saved.kept()}.") from None
    elif issubclass(kind, FloatingPointError):
        report.write_mistakes(run)
        raise SystemExit(f"error: {error} (the loss is checked at the end of each epoch).\n"
                         f"  Training diverged: try a smaller learning rate than --lr {short(args.lr)}; {saved.kept()}.") from None
    elif issubclass(kind, SaveError):
        raise SystemExit(f"error: could not write the results of epoch {len(saved.history)} to {run.folder.path}: {error};"
                         f" {saved.kept()}.") from None
    elif issubclass(kind, OSError):  # not a result file: said for what it is
        raise SystemExit(f"error: {error.strerror or error}{f': {error.filename}' if error.filename else ''}; {saved.kept()}.") from None
    return False


def free(run, traceback):
    """After out of memory: let go of the failed step's tensors, so that mistakes.png has room."""
    tracebacks.clear_frames(traceback)
    if run.lesson is not None:
        run.lesson.optimizer.zero_grad(set_to_none=True)
    if run.device.type in ("cuda", "mps"):
        getattr(torch, run.device.type).empty_cache()


def interrupted(run):
    message = f"\ninterrupted: {run.checkpoint.kept()}"
    if run.checkpoint.saved:
        message += f"\n  to go on from there: {run.folder.resume_command(run.args, run.typed)}"
    print(message, file=sys.stderr)
    raise SystemExit(130)


def say(line):
    """print(), but output piped into `head` (closed early) ends the run quietly, as `head` meant."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        quiet_exit()


def quiet_exit():
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that Python's last flush finds no broken pipe
    except (OSError, ValueError, AttributeError):  # an output with no file behind it
        pass
    raise SystemExit(1)
