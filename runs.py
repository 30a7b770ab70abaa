"""Everything around the lesson: one training run and its out folder.

train_inception.py and train_resnet.py keep what lecture 11 teaches: the constants, train(), test()
and the epoch loop. This module does the rest, once for both: the flags and their checks, the device,
the out folder, the files written after every epoch (each one whole or not at all), the checkpoint
that --resume goes on from, and the stops: Ctrl-C, divergence, out of memory, bad data, a failed save.
It never imports a training script; a script hands it its net, its constants and its out folder.

Run on its own, it lays finished runs side by side from their metrics.csv files (no training):

    python runs.py runs/inception runs/resnet runs/lr0.05   # writes comparison.png (-o picks another path)
"""
import argparse
import csv
import math
import os
import shlex
import sys
import warnings

import matplotlib.pyplot as plt
import torch
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.ticker import MaxNLocator

from data import DataError, one_line
from models import count_parameters

OUTPUTS = ("accuracy.png", "metrics.csv", "model.pt", "checkpoint.pt")  # written after every epoch
MISTAKES = "mistakes.png"  # written when the run ends or stops
MISTAKES_SHOWN = 48  # the most confident mistakes drawn in it
HYPERPARAMETERS = ("batch_size", "lr", "momentum", "seed")  # what a resumed run must share with the saved one


def check_finite(loss, epoch, batch):
    """Return the loss, or raise FloatingPointError if training has diverged."""
    if not math.isfinite(loss):
        raise FloatingPointError(f"the training loss became {loss} by epoch {epoch}, batch {batch}")
    return loss


# --- flags -----------------------------------------------------------------------------------------


def parse_args(argv, description, defaults):
    """The flags, with the script's constants as their defaults, checked (a usage error exits with 2)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = defaults
    parser.add_argument("--epochs", type=int, default=d["epochs"], help="train until this many epochs are done")
    parser.add_argument("--batch-size", type=int, default=d["batch_size"], help="images per SGD step")
    parser.add_argument("--lr", type=float, default=d["lr"], help="learning rate")
    parser.add_argument("--momentum", type=float, default=d["momentum"], help="SGD momentum, in [0, 1)")
    parser.add_argument("--seed", type=int, default=d["seed"], help="random seed")
    parser.add_argument("--log-every", type=int, default=d["log_every"], help="batches between loss lines")
    parser.add_argument("--data-dir", default=d["data_dir"], help="folder that holds (or receives) MNIST/raw/")
    parser.add_argument("--out-dir", default=d["out_dir"], help="folder for accuracy.png, metrics.csv, model.pt, checkpoint.pt")
    parser.add_argument("--resume", action="store_true", help="go on from the last finished epoch saved in --out-dir")
    parser.add_argument("--device", default="auto", help="auto (CUDA, else another accelerator, else CPU), cpu, cuda, cuda:1, mps, ...")
    parser.add_argument("--no-show", action="store_true", help="only save the plot, never open a window")
    args = parser.parse_args(argv)
    # Checked here rather than by argparse so that values edited at the top of a script are checked too.
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--log-every", args.log_every)):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        parser.error(f"--lr must be a finite number above 0, got {args.lr}")
    if not 0 <= args.momentum < 1:
        parser.error(f"--momentum must be in [0, 1), got {args.momentum}")
    if not 0 <= args.seed < 2**64:  # what torch.manual_seed takes
        parser.error(f"--seed must be from 0 to 2**64 - 1, got {args.seed}")
    try:
        args.device = pick_device(args.device)
    except ValueError as e:
        parser.error(f"--device: {e}")
    return parser, args


def pick_device(name):
    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    if name == "auto":  # torch reports CUDA first when there is a CUDA GPU
        return accelerator or torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"'{name}' is not a device torch knows; use auto, cpu, cuda, mps, ...") from None
    if device.type == "cpu":
        return device
    if accelerator is None or device.type != accelerator.type:
        have = f"this machine has {accelerator.type}" if accelerator else "this machine has no accelerator torch can use"
        raise ValueError(f"'{name}' is not available ({have}); use --device auto or cpu")
    if device.index is not None and device.index >= torch.accelerator.device_count():
        raise ValueError(f"'{name}' is not available (this machine has {torch.accelerator.device_count()} {device.type} devices)")
    return device


# --- the checkpoint --------------------------------------------------------------------------------


def load_checkpoint(parser, args, net_name):
    """The saved run that --resume goes on from; refuses (and changes nothing) where it cannot."""
    path = os.path.join(args.out_dir, "checkpoint.pt")
    fresh = f"to start a new run instead, leave out --resume (it replaces the results in {args.out_dir}) or pick another --out-dir"
    if not os.path.isfile(path):
        parser.error(f"--resume: {args.out_dir} has no checkpoint.pt to resume from; {fresh}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        history = [tuple(row) for row in checkpoint["history"]]
        saved = {name: checkpoint["hyperparameters"][name] for name in HYPERPARAMETERS}
        saved_net = checkpoint["net"]
        missing = [key for key in ("model", "optimizer", "generator") if key not in checkpoint]
        if missing:
            raise KeyError(f"it has no {', '.join(missing)}")
        if not history or [row[0] for row in history] != list(range(1, len(history) + 1)):
            raise ValueError("its list of finished epochs is not 1, 2, 3, ...")
    except Exception as e:
        raise SystemExit(
            f"error: cannot resume: {path} is damaged or truncated ({one_line(e)}); it was left as it is.\n"
            f"  Resume from a whole copy of it; {fresh}."
        ) from None
    if saved_net != net_name:
        parser.error(f"--resume: {path} is a run of {saved_net}, but this script trains {net_name};"
                     f" use the script for {saved_net}, or another --out-dir")
    for name in HYPERPARAMETERS:
        if getattr(args, name) != saved[name]:
            flag = "--" + name.replace("_", "-")
            parser.error(
                f"--resume: {flag} {getattr(args, name)} differs from the saved run's {flag} {saved[name]};"
                f" resume with {flag} {saved[name]}; {fresh}"
            )
    done = len(history)
    if args.epochs <= done:
        parser.error(
            f"--resume: --epochs {args.epochs} is not above the {done} epoch{'s' * (done != 1)} already finished"
            f" in {args.out_dir}; ask for more, e.g. --epochs {done + 10}"
        )
    checkpoint["history"] = history
    return checkpoint


# --- the out folder --------------------------------------------------------------------------------


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


def check_out_dir(out_dir):
    """Fail before training, not after it, if the results could not be written."""
    try:
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise NotADirectoryError(f"{out_dir} is a file, not a folder")
        os.makedirs(out_dir, exist_ok=True)
        for name in OUTPUTS + (MISTAKES,):
            if os.path.isdir(os.path.join(out_dir, name)):
                raise IsADirectoryError(f"{os.path.join(out_dir, name)} is a folder")
        probe = os.path.join(out_dir, f".write-test.{os.getpid()}")
        open(probe, "wb").close()
        os.remove(probe)
    except OSError as e:
        raise SystemExit(f"error: cannot write results to {out_dir}: {e.strerror or e}. Pick another folder with --out-dir.") from None


def plot(history, net_name):
    epochs = [row[0] for row in history]
    accuracy = [row[2] for row in history]
    best = max(range(len(accuracy)), key=accuracy.__getitem__)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(epochs, accuracy, marker="o")
    ax.plot(epochs[best], accuracy[best], "r*", markersize=15, label=f"best: {accuracy[best]:.2f}% (epoch {epochs[best]})")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{net_name} on MNIST: final test accuracy {accuracy[-1]:.2f}%")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


@torch.inference_mode()
def find_mistakes(model, loader):
    """The test images that model gets wrong, the most confident mistakes first: (index, predicted, confidence)."""
    model.eval()
    probabilities = torch.cat([model(images).softmax(dim=1) for images, _ in loader])
    confidence, predicted = probabilities.max(dim=1)
    wrong = (predicted != loader.labels).nonzero().squeeze(1)
    wrong = wrong[confidence[wrong].argsort(descending=True, stable=True)]
    return wrong.cpu(), predicted[wrong].cpu(), confidence[wrong].cpu()


def plot_mistakes(loader, wrong, predicted, confidence, net_name):
    shown = min(len(wrong), MISTAKES_SHOWN)
    columns, rows = 8, max(1, math.ceil(shown / 8))
    # One picture of all the digits, each in a cell with room above it for its caption: far quicker to
    # draw than 48 separate axes.
    cell_w, cell_h = 36, 46
    mosaic = torch.zeros(rows * cell_h, columns * cell_w, dtype=torch.uint8)
    index = wrong[:shown].to(loader.labels.device)
    images, labels = loader.images[index].cpu(), loader.labels[index].cpu()
    fig = plt.figure(figsize=(columns * 1.25, rows * 1.6 + 0.5))
    ax = fig.add_axes((0.01, 0.01, 0.98, 1 - 0.45 / fig.get_figheight()))
    for i in range(shown):
        top, left = (i // columns) * cell_h + cell_h - 32, (i % columns) * cell_w + 4
        mosaic[top : top + 28, left : left + 28] = images[i, 0]
        ax.text(left + 14, top - 2, f"true {labels[i]}, said {predicted[i]}\n{100 * confidence[i]:.0f}% sure",
                ha="center", va="bottom", fontsize=8)
    ax.imshow(mosaic.numpy(), cmap="gray_r", vmin=0, vmax=255)
    ax.axis("off")
    total = len(loader.labels)
    fig.suptitle(f"{net_name}: {len(wrong)} of {total:,} test images wrong ({100 * len(wrong) / total:.2f}%);"
                 f" the {shown} most confident mistakes", fontsize=10, y=1 - 0.1 / fig.get_figheight(), va="top")
    return fig


def kept(saved, out_dir):
    """What out_dir holds after a stop: the results of the first `saved` epochs."""
    if saved == 0:
        return "nothing was saved"
    epochs = "epoch 1" if saved == 1 else f"epochs 1-{saved}"
    return f"the results of {epochs} are in {out_dir}/"


# --- the run ---------------------------------------------------------------------------------------


class Run:
    """One training run: checks the flags, then keeps the out folder up to date after every epoch.

        run = Run(__file__, __doc__, NET, argv, epochs=EPOCHS, ...)  # flags (usage errors exit 2), device, out folder
        with run:                               # a stop ends with a message and keeps the finished epochs
            ...                                 # data, model, optimizer
            for epoch in run.epochs(model, optimizer, train_loader, test_loader):  # with --resume: from the checkpoint
                ...                             # train, test
                run.save(epoch, train_loss, accuracy, seconds)  # the files and the checkpoint
        # on leaving: mistakes.png and the final line (also at a stop that keeps epochs: mistakes.png)
    """

    def __init__(self, script, doc, net, argv=None, **defaults):
        self.net_name = net.__name__
        self.argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
        # The command that ran this script, as typed where there is one, for the resume advice.
        self.command = ["python", sys.argv[0] if argv is None else os.path.relpath(script)] + self.argv
        parser, self.args = parse_args(self.argv, doc.splitlines()[0], defaults)
        self.device = self.args.device
        checkpoint = load_checkpoint(parser, self.args, self.net_name) if self.args.resume else None
        check_out_dir(self.args.out_dir)
        # channels_last makes CPU convolutions faster (about 1.4x per step here); GPUs keep their default.
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.preserve_format
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # the shapes never change, so let cuDNN time its kernels once
        print(f"device: {self.device}")
        # The last finished epoch as checkpoint.pt holds it: weights, optimizer, shuffle order and the history,
        # one (epoch, train_loss, test_accuracy, epoch_seconds) per finished epoch. Replaced whole, never edited,
        # so a Ctrl-C at any moment leaves it consistent.
        self.state = checkpoint or {"history": []}
        self.saved = len(self.history)  # how many epochs the files in the out folder hold
        self.model = None  # set by epochs()

    def epochs(self, model, optimizer, train_loader, test_loader):
        """The epoch numbers still to train; with --resume, first puts back the saved run."""
        self.model, self.optimizer, self.generator, self.test_loader = model, optimizer, train_loader.generator, test_loader
        print(f"{self.net_name}: {count_parameters(model):,} parameters, {len(train_loader.labels):,} training images")
        if self.saved:  # --resume
            self.restore(self.state)
            print(f"resuming: epochs 1-{self.saved} are done in {self.args.out_dir}/, on to epoch {self.args.epochs}")
        return range(self.saved + 1, self.args.epochs + 1)

    def restore(self, checkpoint):
        try:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])  # the momentum buffers, moved to the device
            self.generator.set_state(checkpoint["generator"])  # the next epoch's shuffle, as it would have been
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            path = os.path.join(self.args.out_dir, "checkpoint.pt")
            raise SystemExit(
                f"error: cannot resume: {path} does not fit this script's {self.net_name} ({one_line(e)});"
                " it was left as it is. Leave out --resume to start a new run, or pick another --out-dir."
            ) from None

    def save(self, epoch, train_loss, accuracy, seconds):
        """Record a finished epoch and write the out folder's files."""
        self.state = self.snapshot(self.history + [(epoch, train_loss, accuracy, seconds)])
        self.write()

    @property
    def history(self):
        return self.state["history"]

    def snapshot(self, history):
        def cpu(state):  # copies: training goes on in the live tensors; and a CPU checkpoint loads on any machine
            return {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else v for k, v in state.items()}

        optimizer = self.optimizer.state_dict()
        optimizer["state"] = {i: cpu(s) for i, s in optimizer["state"].items()}
        return {
            "net": self.net_name,
            "hyperparameters": {name: getattr(self.args, name) for name in HYPERPARAMETERS},
            "model": cpu(self.model.state_dict()),
            "optimizer": optimizer,
            "generator": self.generator.get_state(),
            "history": history,
        }

    def write(self):
        """Write the out folder's files from self.state, each whole or not at all."""
        out, state = self.args.out_dir, self.state
        save_atomic(os.path.join(out, "model.pt"), lambda f: torch.save(state["model"], f))
        rows = ["epoch,train_loss,test_accuracy,epoch_seconds"] + ["%d,%.6f,%.2f,%.2f" % row for row in state["history"]]
        save_atomic(os.path.join(out, "metrics.csv"), lambda f: f.write("\n".join(rows + [""]).encode()))
        fig = plot(state["history"], self.net_name)
        try:
            save_atomic(os.path.join(out, "accuracy.png"), lambda f: fig.savefig(f, format="png", dpi=100))
        finally:
            plt.close(fig)
        # Last, so that a checkpoint never runs ahead of the files it stands for.
        save_atomic(os.path.join(out, "checkpoint.pt"), lambda f: torch.save(state, f))
        self.saved = len(state["history"])

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        out, args = self.args.out_dir, self.args
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
        elif issubclass(kind, torch.OutOfMemoryError):
            self.write_mistakes()
            raise SystemExit(
                f"error: out of memory on {self.device} with --batch-size {args.batch_size}: try a smaller batch;"
                f" {kept(self.saved, out)}."
            ) from None
        elif issubclass(kind, FloatingPointError):
            self.write_mistakes()
            raise SystemExit(
                f"error: {error} (the loss is checked every {args.log_every} batches and at the end of each epoch).\n"
                f"  Training diverged: try a smaller learning rate than --lr {args.lr}; {kept(self.saved, out)}."
            ) from None
        elif issubclass(kind, OSError):  # the disk filled up, the folder went away, ...
            raise SystemExit(
                f"error: could not write the results of epoch {len(self.history)} to {out}: {error.strerror or error};"
                f" {kept(self.saved, out)}."
            ) from None
        return False

    def interrupted(self):
        message = f"\ninterrupted: {kept(self.saved, self.args.out_dir)}"
        if self.saved:
            resume = self.command + ([] if self.args.resume else ["--resume"])
            message += f"\n  to go on from there: {shlex.join(resume)}"
        print(message, file=sys.stderr)
        raise SystemExit(130)

    def write_mistakes(self):
        """mistakes.png for the saved epoch's weights (at a stop, the live ones may be half an epoch on)."""
        if not self.saved or self.model is None:  # nothing saved, or stopped before the model was made
            return
        try:
            self.model.load_state_dict(self.state["model"])
            wrong, predicted, confidence = find_mistakes(self.model, self.test_loader)
            fig = plot_mistakes(self.test_loader, wrong, predicted, confidence, self.net_name)
            try:
                path = os.path.join(self.args.out_dir, MISTAKES)
                save_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100))
            finally:
                plt.close(fig)
        except (OSError, RuntimeError) as e:  # out of memory or disk: the other files are saved, say so and go on
            print(f"could not write {MISTAKES}: {one_line(e)}", file=sys.stderr)
            return
        except KeyboardInterrupt:  # a (second) Ctrl-C: skip the extra figure, not the stop's message
            print(f"\n{MISTAKES} skipped", file=sys.stderr)
            return
        print(f"mistakes: {len(wrong)} of {len(self.test_loader.labels):,} test images wrong after epoch {self.saved}; {path}")

    def finish(self):
        best = max(self.history, key=lambda row: row[2])
        plot_path = os.path.join(self.args.out_dir, "accuracy.png")
        print(f"final test accuracy {self.history[-1][2]:.2f}% (best {best[2]:.2f}% at epoch {best[0]}); plot: {plot_path}")
        if not self.args.no_show:
            show(plot(self.history, self.net_name), no_show=False)


# --- runs side by side -----------------------------------------------------------------------------


def read_metrics(folder):
    """(epochs, train losses, test accuracies) from folder/metrics.csv; exits with 1 naming what is wrong."""
    path = os.path.join(folder, "metrics.csv")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        columns = [[float(row[name]) for row in rows] for name in ("epoch", "train_loss", "test_accuracy")]
        if not rows:
            raise ValueError("it has no epochs")
    except OSError as e:
        raise SystemExit(f"error: cannot read {path}: {e.strerror or e}. Is {folder} the out folder of a run?") from None
    except (KeyError, TypeError, ValueError) as e:
        raise SystemExit(f"error: {path} is not a run's metrics ({one_line(e)}). Is {folder} the out folder of a run?") from None
    return columns


def plot_comparison(runs):
    """runs: {label: (epochs, train losses, test accuracies)} -> one figure, accuracy and loss side by side."""
    fig, (accuracy, loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, (epochs, losses, accuracies) in runs.items():
        line, = accuracy.plot(epochs, accuracies, marker="o", markersize=3, label=f"{label} ({accuracies[-1]:.2f}%)")
        loss.plot(epochs, losses, marker="o", markersize=3, color=line.get_color(), label=label)
    accuracy.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy per epoch (final in brackets)")
    loss.set(xlabel="epoch", ylabel="mean training loss", yscale="log", title="mean training loss per epoch")
    for ax in (accuracy, loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def show(fig, no_show):
    if not no_show:
        with warnings.catch_warnings():  # a machine without a display has no window to open: the file is enough
            warnings.simplefilter("ignore", UserWarning)
            try:
                plt.show()
            except KeyboardInterrupt:  # closing the window with Ctrl-C: the file is written already
                pass
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Lay finished runs side by side: test accuracy and training loss per epoch.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("folders", nargs="+", help="out folders of runs (each with a metrics.csv)")
    parser.add_argument("-o", "--output", default="comparison.png", help="where the figure goes")
    parser.add_argument("--no-show", action="store_true", help="only save the figure, never open a window")
    args = parser.parse_args(argv)
    kind = os.path.splitext(args.output)[1].lstrip(".").lower() or "png"  # comparison.svg, .pdf, ... work too
    if kind not in FigureCanvasBase.get_supported_filetypes():
        parser.error(f"-o {args.output}: matplotlib cannot write .{kind} files; use .png, .svg or .pdf")
    runs = {os.path.normpath(folder): read_metrics(folder) for folder in args.folders}
    fig = plot_comparison(runs)
    try:
        save_atomic(args.output, lambda f: fig.savefig(f, format=kind, dpi=100))
    except OSError as e:
        plt.close(fig)
        raise SystemExit(f"error: cannot write {args.output}: {e.strerror or e}. Pick another path with -o.") from None
    print(f"{len(runs)} run{'s' * (len(runs) != 1)} compared: {args.output}")
    show(fig, args.no_show)


if __name__ == "__main__":
    main()
