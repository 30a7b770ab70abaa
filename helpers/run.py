"""One training run, kept: its flags, its folder, a checkpoint after every epoch, --resume, its stops and its end (see
train_resnet.py's main()). Nothing is written before the first epoch is saved. Ctrl-C, kill (SIGTERM) and a closed
terminal (SIGHUP) stop a run alike, never in the middle of writing an epoch's files, and the message says what is kept
and how to go on from there."""
import math
import os
import signal
import sys
import time
import traceback as tracebacks

import torch

from data import DataError

from . import checkpoint, console, device, figures, flags, store
from .flags import HYPERPARAMETERS, short

STOPPED = {"SIGINT": "interrupted", "SIGBREAK": "interrupted", "SIGTERM": "terminated", "SIGHUP": "hung up (the terminal was closed)"}


class Stop(KeyboardInterrupt):
    """A signal that ends the run as Ctrl-C does; the exit code is 128 + its number."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class Run:
    def __init__(self, net, argv=None, **defaults):
        console.prepare()
        caller = sys._getframe(1)  # the script's main(); a script pasted into a notebook cell has no file of its own
        file = caller.f_globals.get("__file__")
        own = bool(file) and os.path.abspath(file) == os.path.abspath(caller.f_code.co_filename)
        as_typed = argv is None and own and os.path.abspath(sys.argv[0]) == os.path.abspath(file)
        self.script = (sys.argv[0] if as_typed else flags.script_path(file)) if own else None
        self.net_name, self.argv, self.device, self.model, self.handlers, self.saving, self.pending = net.__name__, argv, None, None, {}, False, None
        name = os.path.basename(self.script) if self.script else "the script"
        self.parser, self.args, self.typed = flags.parse_args(
            argv, f"Lecture 11: train {self.net_name} on MNIST with SGD. Each flag overrides the constant at the top of {name}.", defaults)
        self.default_out = os.path.normpath(defaults["out_dir"])
        if self.args.resume:  # the saved run, and its own settings; a clash is refused here (other data in start())
            path = checkpoint.find(self.args, self.typed, self.default_out, name)
            self.state = checkpoint.load(self.parser, path, self.net_name)
            self.notes = checkpoint.reconcile(self.parser, self.args, self.typed, path, self.state, name)
            self.entry = {"started": checkpoint.now(), "command": self.command(), "epochs": self.args.epochs,
                          "log_every": self.args.log_every, "data_dir": self.args.data_dir}
            self.folder = store.Folder(path, path, len(self.state["history"]))
            return
        try:
            path, why = store.choose(self.args.out_dir)
        except OSError as e:
            raise SystemExit(f"error: cannot write results to {self.args.out_dir}: {e.strerror or e}. Pick another folder with --out-dir.") from None
        self.state, self.notes, self.entry = {"net": self.net_name, "resumed": [], "history": []}, [], None
        self.folder = store.Folder(path, store.base(self.args.out_dir))
        if not console.say(f"results: {path}{os.sep}" + (f" ({why}; delete a run's folder to replace it)" if why else "")):
            raise SystemExit(1)  # the output went into `head`, which has closed it

    def say(self, line):
        if not console.say(line):
            raise BrokenPipeError("the output was closed")

    def start(self, model, optimizer, train_loader, test_loader):
        """Take the script's model, optimizer and loaders; with --resume, check the data and put the saved run back.
        Returns the first epoch to train."""
        self.model, self.optimizer, self.train_loader, self.test_loader = model, optimizer, train_loader, test_loader
        data, self.device = checkpoint.fingerprint(train_loader, test_loader), next(model.parameters()).device
        self.say(f"{self.net_name}: {sum(p.numel() for p in model.parameters()):,} parameters, {data['train_images']:,} training images")
        if self.args.resume:
            checkpoint.check_data(self.parser, self.folder.path, self.state, data, self.args.data_dir)
            for note in self.notes + checkpoint.elsewhere(self.state["environment"], checkpoint.environment(self.device)):
                self.say(note)
            checkpoint.restore(self.state, model, optimizer, train_loader, self.folder.path)
            self.say(f"resuming: {store.epochs(self.folder.saved)} done in {self.folder.path}{os.sep}, on to epoch {self.args.epochs}")
        else:
            chosen = {name: getattr(self.args, name) for name in ("epochs", *HYPERPARAMETERS, "log_every", "data_dir", "out_dir", "no_show")}
            self.state["settings"] = {"net": self.net_name, "script": self.script and os.path.basename(self.script),
                                      "started": checkpoint.now(), "command": self.command(), **chosen, "device": str(self.device),
                                      "versions": checkpoint.versions(), "data": data}
        self.clock = time.perf_counter()
        return self.folder.saved + 1

    def save(self, epoch, train_loss, accuracy, train_seconds):
        """Keep a finished epoch: check its loss, write its files (a signal waits until they are whole), print its line."""
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"the training loss became {train_loss} in epoch {epoch}")
        row = (epoch, train_loss, accuracy, time.perf_counter() - self.clock)
        state = checkpoint.snapshot(self.state, row, self.model, self.optimizer, self.train_loader, self.device)
        if self.entry:  # a resume is recorded with its first saved epoch
            state["resumed"] = [*state["resumed"], {**self.entry, "device": str(self.device), "versions": checkpoint.versions()}]
        self.saving = True
        try:
            self.folder.write(state, self.say, last=epoch == self.args.epochs)
        finally:
            self.saving = False
            if self.folder.saved == epoch:
                self.state, self.entry = state, None
        images_per_second = checkpoint.count(self.train_loader) / train_seconds
        self.say(f"epoch {epoch}: test accuracy {accuracy:.2f}%  (train {train_seconds:.1f} s, {images_per_second:.0f} img/s)")
        self.clock = time.perf_counter()
        if self.pending:
            raise Stop(self.pending)

    def command(self, words=None):
        """The command that started this run, or (words) one that goes on with it, as the user would type it there."""
        if words is None:
            if self.argv is None and not console.in_kernel():
                return flags.shell_join(getattr(sys, "orig_argv", sys.argv))
            words = list(map(str, sys.argv[1:] if self.argv is None else self.argv))
        if self.script is None:  # a notebook cell, or the script pasted elsewhere: its main() is there
            return f"main({words!r})"
        return flags.shell_join(["%run" if console.in_kernel() else "python", self.script, *words])

    def __enter__(self):
        for name in STOPPED:
            signum = getattr(signal, name, None)
            if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:  # nohup's SIGHUP stays ignored
                try:
                    self.handlers[signum] = signal.signal(signum, self.on_signal)
                except (ValueError, OSError):  # not the main thread
                    pass
        return self

    def on_signal(self, signum, frame):
        if not self.saving:  # else the epoch's files are written first, whole
            raise Stop(signum)
        self.pending = signum

    def __exit__(self, kind, error, traceback):
        try:
            try:
                sys.stdout.flush()  # a pipe closed meanwhile is silenced now, not found by Python's own flush at exit
            except (OSError, ValueError):
                console.quiet(sys.stdout)
            return self.end(kind, error, traceback)
        finally:
            for signum, handler in self.handlers.items():
                signal.signal(signum, handler)

    def end(self, kind, error, traceback):
        """The run's last lines, or the message of a stop; returns False to let an error in the code through."""
        kept, args, history = self.folder.kept(), self.args, self.state["history"]
        if kind is None or issubclass(kind, KeyboardInterrupt):  # the run's end, or Ctrl-C, kill, the terminal closed
            try:
                self.write_mistakes()
            except KeyboardInterrupt as stop:  # (another) stop while it is drawn: the figure is skipped, not the message
                kind, error = kind or type(stop), error or stop
            if kind is not None:
                signum = getattr(error, "signum", signal.SIGINT)
                self.fail(f"\n{STOPPED.get(signal.Signals(signum).name, 'stopped')}: {kept}", 128 + signum, hint=True)
            best = max(history, key=lambda row: row[2])
            console.say(f"final test accuracy {history[-1][2]:.2f}% (best {best[2]:.2f}% at epoch {best[0]});"
                        f" plot: {os.path.join(self.folder.path, 'accuracy.png')}")
            return False
        if issubclass(kind, BrokenPipeError):  # the output went into `head`, which has read what it wanted
            console.quiet(sys.stdout)
            self.fail(f"stopped: the output was closed; {kept}" if self.folder.saved else None, hint=True)
        if issubclass(kind, DataError):
            self.fail(f"error: {error}")
        if device.is_out_of_memory(error):
            tracebacks.clear_frames(traceback)  # the failed step's tensors go, so that mistakes.png has room
            if self.model is not None:
                self.optimizer.zero_grad(set_to_none=True)
            if self.device is not None and self.device.type in ("cuda", "mps"):
                getattr(torch, self.device.type).empty_cache()
            self.write_mistakes()
            self.fail(f"error: out of memory on {self.device or args.device} with --batch-size {args.batch_size}: try a smaller batch; {kept}.")
        if issubclass(kind, FloatingPointError):
            self.write_mistakes()
            self.fail(f"error: {error} (the loss is checked at the end of each epoch).\n"
                      f"  Training diverged: try a smaller learning rate than --lr {short(args.lr)}; {kept}.")
        if issubclass(kind, (store.SaveError, OSError)):  # an OSError not of the run's files is said for what it is
            what = error if issubclass(kind, store.SaveError) else f"{error.strerror or error}{f': {error.filename}' if error.filename else ''}"
            self.fail(f"error: {what}; {kept}.")
        return False

    def fail(self, message, code=1, hint=False):
        if message and hint and 0 < self.folder.saved < self.args.epochs:  # a stop to go on from: the command that does
            words = ["--resume"] + (["--out-dir", self.folder.path] if os.path.normpath(self.folder.path) != self.default_out else [])
            words += ["--epochs", str(self.args.epochs)] if self.args.resume and "epochs" in self.typed else []
            words += ["--device", str(self.args.device)] if "device" in self.typed else []
            message += f"\n  to go on from there: {self.command(words + (['--no-show'] if 'no_show' in self.typed else []))}"
        if message:
            console.tell(message)
        raise SystemExit(code)

    def write_mistakes(self):
        """mistakes.png: the test digits that the saved weights get wrong (at a stop, the live ones may be half an epoch on)."""
        if self.folder.saved and self.model is not None:
            figures.write_mistakes(self.model, self.state["model"], self.test_loader, self.device, self.net_name, self.folder.saved, self.folder.path)

    def show_plot(self):
        """The finished run's accuracy plot (also in accuracy.png), where this Python can show one: see figures.show."""
        figures.show(figures.plot(self.state["history"], self.net_name), self.args.no_show)
