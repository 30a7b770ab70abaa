"""Everything around the lesson: one training run, in its own folder.

train_inception.py and train_resnet.py keep what lecture 11 teaches: the constants, train(), test()
and the epoch loop. This module does the rest, once for both: the run's folder (a new one for every run,
see folders.py) and its settings.json, the files written after every epoch, the checkpoint that --resume
goes on from, and the stops: Ctrl-C, divergence, out of memory, bad data, a failed save. The flags live
in flags.py, --resume's checks in resume.py, the figures in figures.py. It never imports a training script.

Run on its own, it compares finished runs (no training; see comparison.py): one line per run in a figure,
labelled by the settings that differ between them, and a table in the terminal:

    python runs.py                                  # every run under runs/; writes runs/comparison.png
    python runs.py runs/resnet runs/resnet-2 -o lr.png
"""
import hashlib
import importlib.metadata
import math
import os
import platform
import sys
import traceback as tracebacks
from datetime import datetime, timezone

import torch

import figures
import flags
import folders
import resume
from comparison import main  # noqa: F401 (python runs.py compares runs)
from data import DataError, one_line
from flags import HYPERPARAMETERS, short
from models import count_parameters

ESSENTIAL = ("model.pt", "checkpoint.pt")  # a run stops if one of these cannot be written
CONVENIENCES = ("metrics.csv", "accuracy.png")  # one of these that cannot be replaced is a warning, and written again
MISTAKES = "mistakes.png"  # written when the run ends or stops


class SaveError(Exception):
    """An essential file of the run could not be written."""


def check_finite(loss, epoch, batch):
    """Return the loss, or raise FloatingPointError if training has diverged."""
    if not math.isfinite(loss):
        raise FloatingPointError(f"the training loss became {loss} by epoch {epoch}, batch {batch}")
    return loss


def is_out_of_memory(error):
    # CUDA raises torch.OutOfMemoryError; Apple's MPS a plain RuntimeError ("MPS backend out of memory").
    return isinstance(error, torch.OutOfMemoryError) or (isinstance(error, RuntimeError) and "out of memory" in str(error))


def environment(device):
    """What decides a run's float rounding: resumed elsewhere, a run is no longer bit-identical."""
    return {"device": str(device), "threads": torch.get_num_threads(), "torch": str(torch.__version__)}


def versions():
    try:
        torchvision = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        torchvision = None
    return {"python": platform.python_version(), "torch": str(torch.__version__), "torchvision": torchvision,
            "system": platform.platform(terse=True)}


def fingerprint(train_loader, test_loader):
    """Which data a run trains on: the image counts and a checksum of the labels (the same MNIST anywhere)."""
    digest = hashlib.sha256()
    for loader in (train_loader, test_loader):
        digest.update(loader.labels.cpu().to(torch.int64).numpy().tobytes())
    return {"train_images": len(train_loader.labels), "test_images": len(test_loader.labels), "labels_sha256": digest.hexdigest()[:16]}


def now():
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


# --- the run ---------------------------------------------------------------------------------------


class Run:
    """One training run: checks the flags, claims a folder, then keeps it up to date after every epoch.

        run = Run(__file__, __doc__, NET, argv, epochs=EPOCHS, ...)  # flags (usage errors exit 2), device, folder
        with run:                               # a stop ends with a message and keeps the finished epochs
            ...                                 # data, model, optimizer
            for epoch in run.epochs(model, optimizer, train_loader, test_loader):  # with --resume: from the checkpoint
                ...                             # train, test
                run.save(epoch, train_loss, accuracy, seconds)  # the files and the checkpoint
        # on leaving: mistakes.png and the final line (also at a stop that keeps epochs: mistakes.png)
    """

    def __init__(self, script, doc, net, argv=None, **defaults):
        self.net_name, self.script = net.__name__, os.path.basename(script)
        self.argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
        self.python = sys.argv[0] if argv is None else flags.script_path(script)  # the script as it was started, for the resume advice
        self.parser, self.args, self.typed = flags.parse_args(self.argv, doc.splitlines()[0], defaults)
        self.device, self.default_out = self.args.device, os.path.normpath(defaults["out_dir"])
        self.made, self.model = [], None
        if self.args.resume:  # the run to go on with, and its settings; a clash is refused, changing nothing
            self.folder = resume.find_run(self.args, self.typed, self.default_out, self.script)
            self.state = resume.load_checkpoint(self.parser, self.folder, self.net_name)
            self.settings, self.notes = resume.reconcile(self.parser, self.args, self.typed, self.folder, self.state, self.script)
        else:
            self.folder, why = self.claim()
            self.state = {"history": []}
        # The last finished epoch as checkpoint.pt holds it: weights, optimizer, shuffle order and the history,
        # one (epoch, train_loss, test_accuracy, epoch_seconds) per finished epoch. Replaced whole, never edited,
        # so a Ctrl-C at any moment leaves it consistent.
        self.written = dict.fromkeys(ESSENTIAL + CONVENIENCES, len(self.history))  # the epoch each file holds
        self.memory_format = flags.prepare(self.device)
        try:
            if not self.args.resume:
                say(f"results: {self.folder}{os.sep}" + (f" ({why}; delete a run's folder to replace it)" if why else ""))
            say(f"device: {self.device}")
        except SystemExit:  # the output went into `head`, which has closed it
            folders.remove_made(self.folder, self.made)
            raise

    @property
    def history(self):
        return self.state["history"]

    @property
    def saved(self):
        """How many epochs checkpoint.pt holds: what --resume would go on from."""
        return self.written["checkpoint.pt"]

    # --- a new run, or the run to resume

    def claim(self):
        try:
            folder, why, self.made = folders.claim(self.args.out_dir)
        except OSError as e:
            raise SystemExit(f"error: cannot write results to {self.args.out_dir}: {e.strerror or e}."
                             " Pick another folder with --out-dir.") from None
        self.settings = {"net": self.net_name, "script": self.script, "started": now(), "command": self.command_line(),
                         **{name: getattr(self.args, name) for name in ("epochs", *HYPERPARAMETERS, "log_every", "data_dir")},
                         "device": str(self.device), "versions": versions(), "environment": environment(self.device)}
        try:
            folders.write_json(os.path.join(folder, folders.SETTINGS), self.settings)
        except OSError as e:
            folders.remove_made(folder, self.made)
            raise SystemExit(f"error: cannot write results to {folder}: {e.strerror or e}. Pick another folder with --out-dir.") from None
        return folder, why

    def command_line(self):
        return flags.shell_join(["python", self.python, *self.argv])

    def resume_command(self):
        words = ["python", self.python, "--resume"]
        if os.path.normpath(self.folder) != self.default_out:
            words += ["--out-dir", self.folder]
        if self.args.resume and "epochs" in self.typed:  # a new run's settings.json has its epochs already
            words += ["--epochs", str(self.args.epochs)]
        if "device" in self.typed:
            words += ["--device", str(self.args.device)]
        if "no_show" in self.typed:
            words += ["--no-show"]
        return flags.shell_join(words)

    # --- the epochs

    def epochs(self, model, optimizer, train_loader, test_loader):
        """The epoch numbers still to train; with --resume, first checks the data and puts back the saved run."""
        self.model, self.optimizer, self.generator, self.test_loader = model, optimizer, train_loader.generator, test_loader
        self.data = fingerprint(train_loader, test_loader)
        print(f"{self.net_name}: {count_parameters(model):,} parameters, {len(train_loader.labels):,} training images")
        if self.args.resume:
            resume.check_data(self.parser, self.folder, self.state.get("data"), self.data, self.settings, self.args.data_dir)
            for note in self.notes + resume.elsewhere(self.state.get("environment"), environment(self.device)):
                print(note)
            self.restore(self.state)
            self.record_resume()
            print(f"resuming: {epoch_range(self.saved)} done in {self.folder}{os.sep}, on to epoch {self.args.epochs}")
        else:
            self.settings["data"] = self.data
            self.write_settings()
        return range(self.saved + 1, self.args.epochs + 1)

    def record_resume(self):
        entry = {"started": now(), "command": self.command_line(), "epochs": self.args.epochs, "device": str(self.device),
                 "versions": versions(), "environment": environment(self.device)}
        if self.settings is None and os.path.exists(os.path.join(self.folder, folders.SETTINGS)):
            return  # one that cannot be read is left as it is (the note said so)
        if self.settings is None:  # a run made before settings files: one is made now from its checkpoint
            self.settings = {"net": self.net_name, "script": self.script, "started": None, "command": None, "epochs": None,
                             **{name: getattr(self.args, name) for name in (*HYPERPARAMETERS, "log_every", "data_dir")},
                             "device": None, "data": self.data}
        self.settings["resumed"] = [*self.settings.get("resumed", []), entry]
        self.write_settings()

    def write_settings(self):
        try:
            folders.write_json(os.path.join(self.folder, folders.SETTINGS), self.settings)
        except OSError as e:
            raise SaveError(f"{folders.SETTINGS}: {e.strerror or e}") from e

    def restore(self, checkpoint):
        try:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])  # the momentum buffers, moved to the device
            self.generator.set_state(checkpoint["generator"])  # the next epoch's shuffle, as it would have been
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            path = os.path.join(self.folder, "checkpoint.pt")
            raise SystemExit(
                f"error: cannot resume: {path} does not fit this script's {self.net_name} ({one_line(e)});"
                " it was left as it is. Leave out --resume to start a new run, or pick another --out-dir."
            ) from None

    def save(self, epoch, train_loss, accuracy, seconds):
        """Record a finished epoch and write the folder's files."""
        self.state = self.snapshot(self.history + [(epoch, train_loss, accuracy, seconds)])
        self.write()

    def snapshot(self, history):
        optimizer = self.optimizer.state_dict()
        optimizer["state"] = {i: cpu_copies(s) for i, s in optimizer["state"].items()}
        return {
            "net": self.net_name,
            "hyperparameters": {name: getattr(self.args, name) for name in HYPERPARAMETERS},
            "data": self.data,
            "environment": environment(self.device),
            "model": cpu_copies(self.model.state_dict()),
            "optimizer": optimizer,
            "generator": self.generator.get_state(),
            "history": history,
        }

    def write(self):
        """Write the folder's files from self.state, each whole or not at all: the weights and the checkpoint first."""
        state, epoch = self.state, len(self.state["history"])
        writers = {
            "model.pt": lambda f: torch.save(state["model"], f),
            "checkpoint.pt": lambda f: torch.save(state, f),
            "metrics.csv": lambda f: f.write(metrics_csv(state["history"]).encode()),
            "accuracy.png": lambda f: self.figure(figures.plot(state["history"], self.net_name), f),
        }
        for name, write in writers.items():
            if self.written[name] == epoch:
                continue
            try:
                folders.save_atomic(os.path.join(self.folder, name), write)
            except OSError as e:
                if name in ESSENTIAL:
                    raise SaveError(f"{name}: {e.strerror or e}") from e
                # On Windows a file open in another program (metrics.csv in Excel) cannot be replaced: not a reason to stop.
                print(f"warning: could not replace {os.path.join(self.folder, name)} ({e.strerror or e}; open in another program?);"
                      f" it still holds {epoch_range(self.written[name])}, and is written again after the next epoch", file=sys.stderr)
                continue
            self.written[name] = epoch

    @staticmethod
    def figure(fig, f):
        try:
            fig.savefig(f, format="png", dpi=100)
        finally:
            figures.plt.close(fig)

    # --- the end, and the stops

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        try:
            if kind is not None and issubclass(kind, BrokenPipeError):
                quiet_exit()
            return self.stop(kind, error, traceback)
        except BrokenPipeError:  # while printing the final lines
            quiet_exit()
        finally:
            if not self.args.resume and self.saved == 0:  # nothing to keep: leave nothing behind
                folders.remove_made(self.folder, self.made)

    def stop(self, kind, error, traceback):
        args = self.args
        if kind is None:
            try:
                self.write_mistakes()
                self.finish()
            except KeyboardInterrupt:
                self.interrupted()
        elif issubclass(kind, KeyboardInterrupt):
            if self.saved < len(self.history):  # stopped while saving: the state is still that epoch's, so save again
                self.write()
            self.write_mistakes()
            self.interrupted()
        elif issubclass(kind, DataError):
            raise SystemExit(f"error: {error}") from None
        elif is_out_of_memory(error):
            self.free(traceback)
            self.write_mistakes()
            raise SystemExit(f"error: out of memory on {self.device} with --batch-size {args.batch_size}: try a smaller batch;"
                             f" {self.kept()}.") from None
        elif issubclass(kind, FloatingPointError):
            self.write_mistakes()
            raise SystemExit(
                f"error: {error} (the loss is checked every {args.log_every} batch{'es' * (args.log_every != 1)}"
                f" and at the end of each epoch).\n"
                f"  Training diverged: try a smaller learning rate than --lr {short(args.lr)}; {self.kept()}."
            ) from None
        elif issubclass(kind, SaveError):
            raise SystemExit(f"error: could not write the results of epoch {len(self.history)} to {self.folder}: {error}; {self.kept()}.") from None
        elif issubclass(kind, OSError):  # not a result file: said for what it is
            raise SystemExit(f"error: {error.strerror or error}{f': {error.filename}' if error.filename else ''}; {self.kept()}.") from None
        return False

    def free(self, traceback):
        """After out of memory: let go of the failed step's tensors, so that mistakes.png has room."""
        tracebacks.clear_frames(traceback)
        if self.model is not None:
            self.optimizer.zero_grad(set_to_none=True)
        if self.device.type in ("cuda", "mps"):
            getattr(torch, self.device.type).empty_cache()

    def kept(self):
        """What the folder holds after a stop, truly, file by file where they differ."""
        if not any(self.written.values()):
            return "nothing was saved"
        epochs = sorted(set(self.written.values()), reverse=True)
        if len(epochs) == 1:
            return f"the results of {epoch_range(self.saved)} are in {self.folder}{os.sep}"
        by_epoch = [f"{', '.join(n for n in self.written if self.written[n] == e)} of epoch {e}" for e in epochs]
        return f"{self.folder}{os.sep} holds " + "; ".join(by_epoch) + f" (--resume goes on from epoch {self.saved})"

    def interrupted(self):
        message = f"\ninterrupted: {self.kept()}"
        if self.saved:
            message += f"\n  to go on from there: {self.resume_command()}"
        print(message, file=sys.stderr)
        raise SystemExit(130)

    def write_mistakes(self):
        """mistakes.png for the saved epoch's weights (at a stop, the live ones may be half an epoch on)."""
        if not self.saved or self.model is None:  # nothing saved, or stopped before the model was made
            return
        path = os.path.join(self.folder, MISTAKES)
        try:
            self.model.load_state_dict(self.state["model"])
            wrong, predicted, confidence = figures.find_mistakes(self.model, self.test_loader)
            fig = figures.plot_mistakes(self.test_loader, wrong, predicted, confidence, self.net_name)
            try:
                figures.save(fig, path)
            finally:
                figures.plt.close(fig)
        except (OSError, RuntimeError) as e:  # out of memory or disk: the other files are saved, say so and go on
            print(f"{MISTAKES} skipped: {one_line(e)}", file=sys.stderr)
            return
        except KeyboardInterrupt:  # a (second) Ctrl-C: skip the extra figure, not the stop's message
            print(f"\n{MISTAKES} skipped", file=sys.stderr)
            return
        print(f"mistakes: {len(wrong)} of {len(self.test_loader.labels):,} test images wrong after epoch {self.saved}; {path}")

    def finish(self):
        best = max(self.history, key=lambda row: row[2])
        plot_path = os.path.join(self.folder, "accuracy.png")
        print(f"final test accuracy {self.history[-1][2]:.2f}% (best {best[2]:.2f}% at epoch {best[0]}); plot: {plot_path}")
        if not self.args.no_show:
            figures.show(figures.plot(self.history, self.net_name), no_show=False)


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


def cpu_copies(state):
    """Copies on the CPU: training goes on in the live tensors, and a CPU checkpoint loads on any machine."""
    return {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else v for k, v in state.items()}


def metrics_csv(history):
    rows = ["epoch,train_loss,test_accuracy,epoch_seconds"] + ["%d,%.6f,%.2f,%.2f" % tuple(row) for row in history]
    return "\n".join(rows + [""])


def epoch_range(n):
    return "no epoch" if n == 0 else "epoch 1" if n == 1 else f"epochs 1-{n}"


if __name__ == "__main__":
    main()
