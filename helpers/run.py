"""One training run, kept (see train_resnet.py's main()): the script's constants as flags, the run's folder and its
record of what ran, a checkpoint after every epoch, --resume, and one line for a stop that a learner caused: Ctrl-C or
a kill, a loss that is not finite, out of memory, a save that fails. Any other error is Python's traceback."""

import math
import os
import signal
import sys

import torch

from . import device, figures, flags, record, resume, store


class Stop(KeyboardInterrupt):
    """A kill (SIGTERM): the run ends as with Ctrl-C, with exit code 143."""


def terminate(signum, frame):
    raise Stop


class Run:
    """The keeper of one run. Each keyword is a constant of the script: it becomes a flag and part of the record."""

    def __init__(self, argv=None, **constants):
        for stream in (sys.stdout, sys.stderr):
            # A character the console cannot show (an English Windows, output redirected) is written as \uXXXX.
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="backslashreplace")
        # The script's main() made this Run; a script pasted into a notebook cell has no file of its own.
        caller = sys._getframe(1)
        self.file = caller.f_code.co_filename
        self.script = caller.f_globals.get("__file__") and os.path.basename(self.file)
        self.parser, self.args, typed = flags.parse(argv, self.script or "main()", record.source(self.file), constants)
        self.constants, self.folder, self.made, self.history, self.saved = list(constants), None, [], [], None
        self.device = self.args.device
        if self.args.resume:
            self.folder = os.path.normpath(self.args.resume)
            self.saved, self.history = resume.load(self, typed)

    def start(self, model, optimizer, train_loader, test_loader):
        """Take the script's model, optimizer and loaders; make the run's folder, or with --resume put the saved run
        back into them. Returns the first epoch to train."""
        self.model, self.optimizer, self.train_loader = model, optimizer, train_loader
        self.device = next(model.parameters()).device
        constants = {name: getattr(self.args, name) for name in self.constants}
        self.record = record.build(self.script, self.file, constants, model, optimizer, train_loader, test_loader)
        # A constant that the optimizer holds by name with another value: its line in the script set its own.
        group = self.record["optimizer"]["param_groups"][0]
        for name, value in constants.items():
            if (held := group.get(name, value)) != value:
                print(f"note: the optimizer's {name} is {held}, not {flags.flag(name)} {value}: its line sets its own")
        if self.saved:
            self.record = resume.restore(self)
        else:
            try:
                self.folder, self.made = store.make_folder(os.path.normpath(self.args.out_dir))
            except OSError as e:
                why = f"cannot make a folder for the run at {self.args.out_dir}: {e.strerror or e}"
                raise SystemExit(f"error: {why}; pick another --out-dir") from None
            print(f"results: {self.folder}{os.sep}")
        net, parameters, images = self.record["net"], self.record["parameters"], self.record["data"]["training_images"]
        print(f"{net}: {parameters:,} parameters, {images:,} training images")
        return len(self.history) + 1

    def save(self, epoch, train_loss, accuracy, train_seconds):
        """Keep a finished epoch: checkpoint.pt first, then model.pt and the files for people; print its line."""
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"the training loss became {train_loss} in epoch {epoch}")
        history = [*self.history, (epoch, train_loss, accuracy, train_seconds)]
        generator = getattr(self.train_loader, "generator", None)
        rng = {"torch": torch.get_rng_state(), "loader": None if generator is None else generator.get_state()}
        model, optimizer = self.model.state_dict(), self.optimizer.state_dict()
        state = {"record": self.record, "history": history, "rng": rng, "model": model, "optimizer": optimizer}
        # checkpoint.pt first: a folder with files always has one to go on from.
        store.save(self.folder, {"checkpoint.pt": lambda: store.tensors(state)}, essential=True)
        self.history = history
        store.save(self.folder, {"model.pt": lambda: store.tensors(state["model"])}, essential=True)
        rows = ["epoch,train_loss,test_accuracy,train_seconds", *("%d,%.6f,%.2f,%.2f" % row for row in history), ""]
        store.save(
            self.folder,
            {
                "metrics.csv": lambda: "\n".join(rows).encode(),
                "settings.json": lambda: record.settings_json(self.record, epoch),
                "accuracy.png": lambda: figures.to_bytes(self.plot(), close=True),
            },
        )
        speed = self.record["data"]["training_images"] / train_seconds
        print(f"epoch {epoch}: test accuracy {accuracy:.2f}%  (train {train_seconds:.1f} s, {speed:.0f} img/s)")
        if epoch == self.args.epochs:
            best, plot = max(history, key=lambda row: row[2]), os.path.join(self.folder, "accuracy.png")
            print(f"final test accuracy {accuracy:.2f}% (best {best[2]:.2f}% at epoch {best[0]}); plot: {plot}")

    def __enter__(self):
        self.handler = signal.signal(signal.SIGTERM, terminate)
        return self

    def __exit__(self, kind, error, traceback):
        """The run's last line, or the one line of a stop; an error in the code goes on as Python's traceback."""
        signal.signal(signal.SIGTERM, self.handler)
        done = len(self.history)
        if self.folder and not done:
            store.remove_empty([self.folder, *self.made])
        if kind is None:
            return False
        kept, code = f"{resume.epochs(done)} saved in {self.folder}{os.sep}" if done else "nothing was saved", 1
        if issubclass(kind, KeyboardInterrupt):
            code, what = (143, "terminated") if issubclass(kind, Stop) else (130, "interrupted")
            message = f"\n{what}: {kept}"
            if 0 < done < self.args.epochs:
                words = ["--resume", self.folder, "--epochs", str(self.args.epochs)] + ["--no-show"] * self.args.no_show
                typed = f"python {self.script} {' '.join(map(flags.quoted, words))}"
                message += f"; to go on: {typed if self.script else f'main({words})'}"
        elif device.is_out_of_memory(error):
            batch = f"--batch-size {self.args.batch_size}"
            message = f"error: out of memory on {self.device} with {batch}: try a smaller --batch-size; {kept}"
        elif issubclass(kind, FloatingPointError):
            lr = self.optimizer.param_groups[0]["lr"]
            message = f"error: {error}: training diverged; try a smaller learning rate than {lr} (--lr); {kept}"
        elif issubclass(kind, store.SaveError):
            message = f"error: {error}; {kept}"
        else:
            return False
        print(message, file=sys.stderr)
        raise SystemExit(code) from None

    def plot(self):
        epoch, _, accuracy, _ = max(self.history, key=lambda row: row[2])
        title = f"{self.record['net']} on MNIST: final test accuracy {self.history[-1][2]:.2f}%"
        return figures.plot({f"best: {accuracy:.2f}% (epoch {epoch})": self.history}, title)

    def show_plot(self):
        """The finished run's accuracy plot (also in accuracy.png), where this Python can show one."""
        if not self.args.no_show:
            figures.show(self.plot())
