"""One training run, kept: its flags, its folder and files, --resume, its stops and its end. A training script's main():

    run = helpers.Run(NET, argv, epochs=EPOCHS, ...)  # the flags (usage errors exit 2); with --resume, the run's own
    with run:                                   # a stop ends with one message and keeps the finished epochs
        ...                                     # device, data, model, criterion, optimizer
        first_epoch = run.start(model, optimizer, train_loader, test_loader)  # 1, or on from the checkpoint
        for epoch in range(first_epoch, args.epochs + 1):
            ...                                 # train, test
            run.save(epoch, train_loss, accuracy, train_seconds)  # the epoch's line and files (the first makes the folder)
    run.show_plot()                             # the accuracy plot, where this Python can show one

Nothing is written before the first epoch is saved: a run stopped before then leaves nothing behind, and a refused
or interrupted --resume changes nothing. Ctrl-C, kill (SIGTERM) and a closed terminal (SIGHUP) stop a run alike, never
in the middle of writing an epoch's files; what the folder holds is said, with the command that goes on from there."""
import copy
import math
import os
import signal
import sys
import time
import traceback as tracebacks
from collections import namedtuple

import torch

from data import DataError

from . import console, device, figures, flags, resume, store
from .flags import HYPERPARAMETERS, short

STOPPED = {"SIGINT": "interrupted", "SIGBREAK": "interrupted", "SIGTERM": "terminated", "SIGHUP": "hung up (the terminal was closed)"}
Lesson = namedtuple("Lesson", "model optimizer train_loader test_loader")  # what the script built, handed over by start()


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
        own = file and os.path.abspath(file) == os.path.abspath(caller.f_code.co_filename)
        typed_as = sys.argv[0] if argv is None and own and os.path.abspath(sys.argv[0]) == os.path.abspath(file) else None
        self.script, self.net_name, self.argv = (typed_as or flags.script_path(file)) if own else None, net.__name__, argv
        name = os.path.basename(self.script) if self.script else "the script"
        description = f"Lecture 11: train {self.net_name} on MNIST with SGD. Each flag overrides the constant at the top of {name}."
        self.parser, self.args, self.typed = flags.parse_args(argv, description, defaults)
        self.default_out, self.device, self.lesson, self.odd = os.path.normpath(defaults["out_dir"]), None, None, {}
        self.saving, self.pending, self.handlers, self.made_it, self.clock = False, None, {}, False, time.perf_counter()
        if self.args.resume:  # the saved run, and its own settings; a clash is refused here (other data at start())
            self.folder = resume.find(self.args, self.typed, self.default_out, name)
            self.state = resume.load(self.parser, self.folder, self.net_name)
            self.notes = resume.reconcile(self.parser, self.args, self.typed, self.folder, self.state, name)
            self.entry = {"started": store.now(), "command": self.command(), "epochs": self.args.epochs,
                          "log_every": self.args.log_every, "data_dir": self.args.data_dir}
            self.made = True
        else:
            try:
                self.folder, why = store.choose(self.args.out_dir)
            except OSError as e:
                raise SystemExit(f"error: cannot write results to {self.args.out_dir}: {e.strerror or e}. Pick another folder with --out-dir.") from None
            self.state, self.notes, self.entry, self.made = {"net": self.net_name, "resumed": [], "history": []}, [], None, False
            if not console.say(f"results: {self.folder}{os.sep}" + (f" ({why}; delete a run's folder to replace it)" if why else "")):
                raise SystemExit(1)  # the output went into `head`, which has closed it
        self.saved = len(self.state["history"])  # the epochs that checkpoint.pt holds

    def say(self, line):
        if not console.say(line):
            raise BrokenPipeError("the output was closed")

    def start(self, model, optimizer, train_loader, test_loader):
        """Take the script's model, optimizer and loaders; with --resume, check the data and put the saved run back.
        Returns the first epoch to train."""
        data = store.fingerprint(train_loader, test_loader)
        self.lesson, self.device = Lesson(model, optimizer, train_loader, test_loader), next(model.parameters()).device
        self.say(f"{self.net_name}: {sum(p.numel() for p in model.parameters()):,} parameters, {data['train_images']:,} training images")
        if self.args.resume:
            resume.check_data(self.parser, self.folder, self.state, data, self.args.data_dir)
            for note in self.notes + resume.elsewhere(self.state["environment"], store.environment(self.device)):
                self.say(note)
            try:
                model.load_state_dict(self.state["model"])
                optimizer.load_state_dict(self.state["optimizer"])  # the momentum buffers, moved to the device
                store.shuffle_generator(train_loader).set_state(self.state["generator"])  # the next epoch's order
            except (RuntimeError, ValueError, KeyError, TypeError) as e:
                raise SystemExit(f"error: cannot resume: {os.path.join(self.folder, 'checkpoint.pt')} does not fit this script's"
                                 f" {self.net_name} ({console.one_line(e)}); it was left as it is. Leave out --resume to start"
                                 " a new run, or pick another --out-dir.") from None
            self.say(f"resuming: {store.epoch_range(self.saved)} done in {self.folder}{os.sep}, on to epoch {self.args.epochs}")
        else:
            chosen = ("epochs", *HYPERPARAMETERS, "log_every", "data_dir", "out_dir", "no_show")
            self.state["settings"] = {"net": self.net_name, "script": self.script and os.path.basename(self.script), "started": store.now(),
                                      "command": self.command(), **{n: getattr(self.args, n) for n in chosen}, "device": str(self.device),
                                      "versions": store.versions(), "data": data}
        self.clock = time.perf_counter()
        return self.saved + 1

    def save(self, epoch, train_loss, accuracy, train_seconds):
        """Keep a finished epoch: check its loss, write its files (a signal waits until they are whole), print its line."""
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"the training loss became {train_loss} in epoch {epoch}")
        model, optimizer, train_loader, _ = self.lesson
        optimizer_state = optimizer.state_dict()
        optimizer_state["state"] = {i: store.cpu_copies(s) for i, s in optimizer_state["state"].items()}
        state = {**self.state, "model": store.cpu_copies(model.state_dict()), "optimizer": optimizer_state,
                 "generator": store.shuffle_generator(train_loader).get_state(), "environment": store.environment(self.device),
                 "history": [*self.state["history"], (epoch, train_loss, accuracy, time.perf_counter() - self.clock)]}
        if self.entry:  # a resume is recorded with its first saved epoch
            state["resumed"] = [*state["resumed"], {**self.entry, "device": str(self.device), "versions": store.versions()}]
        self.saving = True
        try:
            self.write(state, epoch)
        finally:
            self.saving = False
        self.entry = None
        self.say(f"epoch {epoch}: test accuracy {accuracy:.2f}%  (train {train_seconds:.1f} s,"
                 f" {len(store.labels_of(train_loader)) / train_seconds:.0f} img/s)")
        self.clock = time.perf_counter()
        if self.pending:
            raise Stop(self.pending)

    def write(self, state, epoch):
        if not self.made:  # the run's first saved epoch: now the folder appears
            try:
                folder, self.made_it = store.claim(self.folder)
            except OSError as e:
                raise store.SaveError(f"could not make {self.folder}: {e.strerror or e}") from None
            if folder != self.folder:
                self.say(f"results: {folder}{os.sep} ({self.folder} was taken by another run meanwhile)")
            self.folder, self.made = folder, True
        store.clear_temporaries(self.folder)
        written = []
        for name, write in store.writers(state).items():
            path = os.path.join(self.folder, name)
            try:
                store.save_atomic(path, write)
            except Exception as e:  # OSError, or the RuntimeError of torch.save on a full disk
                why = getattr(e, "strerror", None) or console.one_line(e)
                if name in store.ESSENTIAL:
                    self.odd.update(dict.fromkeys(written, epoch))
                    if not self.saved:  # a folder without a saved epoch is not kept
                        store.remove(self.folder, self.made_it)
                        self.made, self.odd = False, {}
                    raise store.SaveError(f"could not save epoch {epoch} to {self.folder} ({name}: {why})") from None
                self.odd.setdefault(name, self.saved)
                console.tell(f"warning: could not replace {path} ({why}; open in another program?); it is written again after the next epoch")
                continue
            written.append(name)
            self.odd.pop(name, None)
            if name == "checkpoint.pt":
                self.state, self.saved = state, epoch

    def kept(self):
        """What the folder holds now, truly."""
        if not self.saved:
            return "nothing was saved"
        odd = "".join(f", but {name} holds {f'epoch {n}' if n else 'no epoch'}" for name, n in self.odd.items())
        return f"the results of {store.epoch_range(self.saved)} are in {self.folder}{os.sep}" + (
            f" ({odd[2:]}; --resume goes on from epoch {self.saved})" if odd else "")

    def command(self, words=None):
        """The command that started this run, or (words) one that goes on with it, as the user would type it where they are."""
        if words is None:
            if self.argv is None and not console.in_kernel():
                return flags.shell_join(getattr(sys, "orig_argv", sys.argv))
            words = list(map(str, sys.argv[1:] if self.argv is None else self.argv))
        if self.script is None:  # a notebook cell, or the script pasted elsewhere: its main() is there
            return f"main({words!r})"
        return flags.shell_join(["%run" if console.in_kernel() else "python", self.script, *words])

    def resume_command(self):
        words = ["--resume"] + (["--out-dir", self.folder] if os.path.normpath(self.folder) != self.default_out else [])
        words += ["--epochs", str(self.args.epochs)] if self.args.resume and "epochs" in self.typed else []
        words += ["--device", str(self.args.device)] if "device" in self.typed else []
        return self.command(words + (["--no-show"] if "no_show" in self.typed else []))

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
        if self.saving:  # the epoch's files are written first, whole
            self.pending = signum
        else:
            raise Stop(signum)

    def __exit__(self, kind, error, traceback):
        try:
            console.flush()
            return self.end(kind, error, traceback)
        finally:
            for signum, handler in self.handlers.items():
                signal.signal(signum, handler)

    def end(self, kind, error, traceback):
        """The end of the run: its last lines, or the message of a stop. Returns False to let an error through."""
        if kind is None:
            self.write_mistakes()
            best = max(self.state["history"], key=lambda row: row[2])
            console.say(f"final test accuracy {self.state['history'][-1][2]:.2f}% (best {best[2]:.2f}% at epoch {best[0]});"
                        f" plot: {os.path.join(self.folder, 'accuracy.png')}")
            return False
        if issubclass(kind, KeyboardInterrupt):  # Ctrl-C, kill, the terminal closed
            signum = getattr(error, "signum", signal.SIGINT)
            self.write_mistakes()
            self.fail(f"\n{STOPPED.get(signal.Signals(signum).name, 'stopped')}: {self.kept()}", 128 + signum, hint=True)
        if issubclass(kind, BrokenPipeError):  # the output went into `head`, which has read what it wanted
            console.quiet(sys.stdout)
            if self.saved:
                self.fail(f"stopped: the output was closed; {self.kept()}", 1, hint=True)
            raise SystemExit(1)
        if issubclass(kind, DataError):
            self.fail(f"error: {error}")
        if device.is_out_of_memory(error):
            self.free(traceback)
            self.write_mistakes()
            self.fail(f"error: out of memory on {self.device or self.args.device} with --batch-size {self.args.batch_size}:"
                      f" try a smaller batch; {self.kept()}.")
        if issubclass(kind, FloatingPointError):
            self.write_mistakes()
            self.fail(f"error: {error} (the loss is checked at the end of each epoch).\n"
                      f"  Training diverged: try a smaller learning rate than --lr {short(self.args.lr)}; {self.kept()}.")
        if issubclass(kind, store.SaveError):
            self.fail(f"error: {error}; {self.kept()}.")
        if issubclass(kind, OSError):  # not a file of the run: said for what it is
            self.fail(f"error: {error.strerror or error}{f': {error.filename}' if error.filename else ''}; {self.kept()}.")
        return False

    def fail(self, message, code=1, hint=False):
        if hint and self.saved:
            message += f"\n  to go on from there: {self.resume_command()}"
        console.tell(message)
        raise SystemExit(code)

    def free(self, traceback):
        """After out of memory: let go of the failed step's tensors, so that mistakes.png has room."""
        tracebacks.clear_frames(traceback)
        if self.lesson is not None:
            self.lesson.optimizer.zero_grad(set_to_none=True)
        if self.device is not None and self.device.type in ("cuda", "mps"):
            getattr(torch, self.device.type).empty_cache()

    def write_mistakes(self):
        """mistakes.png: the test digits that the saved weights get wrong (at a stop, the live ones may be half an epoch on)."""
        if not self.saved or self.lesson is None:
            return
        path = os.path.join(self.folder, "mistakes.png")
        try:
            model = copy.deepcopy(self.lesson.model)
            model.load_state_dict(self.state["model"])
            images, labels, predicted, confidence = figures.find_mistakes(model, self.lesson.test_loader, self.device)
            total = len(store.labels_of(self.lesson.test_loader))
            fig = figures.plot_mistakes(images, labels, predicted, confidence, total, self.net_name)
            try:
                figures.save(fig, path)
            finally:
                figures.plt.close(fig)
        except (OSError, RuntimeError) as e:  # out of memory or disk: the other files are saved, say so and go on
            return console.tell(f"mistakes.png skipped: {console.one_line(e)}")
        except KeyboardInterrupt:  # a (second) Ctrl-C: skip the extra figure, not the stop's message
            return console.tell("\nmistakes.png skipped")
        console.say(f"mistakes: {len(labels)} of {total:,} test images wrong after epoch {self.saved}; {path}")

    def show_plot(self):
        """The accuracy plot of the finished run (saved as accuracy.png), where this Python can show one: figures.show."""
        if not self.args.no_show:
            figures.show(figures.plot(self.state["history"], self.net_name))
