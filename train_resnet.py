"""Lecture 11, Advanced CNNs: train the small residual network (ResidualNet) on MNIST.

    python train_resnet.py  # 10 epochs; MNIST downloads into ./data on first run
    python train_resnet.py --epochs 2 --lr 0.05 --no-show  # flags override the constants below

Edit the hyperparameters below, or override any of them on the command line (--help lists the flags).
After every epoch the results so far are written to OUT_DIR: accuracy.png, metrics.csv and model.pt.
train_inception.py and train_resnet.py are twins: `diff train_inception.py train_resnet.py` shows what the net changes.
"""
import argparse
import math
import os
import sys
import time
import warnings

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator

from data import DataError, mnist_loaders
from models import ResidualNet, count_parameters

# Hyperparameters: the lecture's values.
EPOCHS = 10  # passes over the 60,000 training images
BATCH_SIZE = 64  # images per SGD step
LR = 0.01  # SGD learning rate
MOMENTUM = 0.5  # SGD momentum
SEED = 0  # seeds the initial weights and the shuffling: on a CPU the same seed repeats a run exactly
LOG_EVERY = 300  # print the mean training loss every LOG_EVERY batches, as the lecture does
DATA_DIR = "data"  # MNIST lives in DATA_DIR/MNIST/raw/
OUT_DIR = "runs/resnet"  # where the plot, the metrics and the weights go

NET = ResidualNet  # the model this script trains
OUTPUTS = ("accuracy.png", "metrics.csv", "model.pt")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="passes over the training set")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="images per SGD step")
    parser.add_argument("--lr", type=float, default=LR, help="learning rate")
    parser.add_argument("--momentum", type=float, default=MOMENTUM, help="SGD momentum, in [0, 1)")
    parser.add_argument("--seed", type=int, default=SEED, help="random seed")
    parser.add_argument("--log-every", type=int, default=LOG_EVERY, help="batches between loss lines")
    parser.add_argument("--data-dir", default=DATA_DIR, help="folder that holds (or receives) MNIST/raw/")
    parser.add_argument("--out-dir", default=OUT_DIR, help="folder for accuracy.png, metrics.csv, model.pt")
    parser.add_argument("--device", default="auto", help="auto (CUDA, else another accelerator, else CPU), cpu, cuda, cuda:1, mps, ...")
    parser.add_argument("--no-show", action="store_true", help="only save the plot, never open a window")
    args = parser.parse_args(argv)
    # Checked here rather than by argparse so that values edited at the top of the file are checked too.
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
    return args


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


def train(model, loader, optimizer, epoch, log_every):
    """One pass over the training set; returns the mean loss. Raises FloatingPointError if the loss blows up."""
    model.train()
    # Losses stay on the device: reading one (.item()) would wait for the GPU on every batch.
    losses = torch.zeros(len(loader), device=loader.labels.device)
    for i, (images, labels) in enumerate(loader):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses[i] = loss.detach()
        if (i + 1) % log_every == 0:
            running = losses[i + 1 - log_every : i + 1].mean().item()
            check_finite(running, epoch, i + 1)
            print("[%d, %5d] loss: %.3f" % (epoch, i + 1, running), flush=True)
    mean_loss = losses.mean().item()
    check_finite(mean_loss, epoch, len(loader))
    return mean_loss


def check_finite(loss, epoch, batch):
    if not math.isfinite(loss):
        raise FloatingPointError(f"the training loss became {loss} by epoch {epoch}, batch {batch}")


@torch.inference_mode()
def test(model, loader):
    """Percent of test images classified correctly."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=loader.labels.device)
    for images, labels in loader:
        correct += (model(images).argmax(dim=1) == labels).sum()
    return 100 * correct.item() / len(loader.labels)


def plot(history):
    epochs = [row[0] for row in history]
    accuracy = [row[2] for row in history]
    best = max(range(len(accuracy)), key=accuracy.__getitem__)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(epochs, accuracy, marker="o")
    ax.plot(epochs[best], accuracy[best], "r*", markersize=15, label=f"best: {accuracy[best]:.2f}% (epoch {epochs[best]})")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{NET.__name__} on MNIST: final test accuracy {accuracy[-1]:.2f}%")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def save_results(out_dir, history, model):
    """Write the plot, the metrics and the weights of the finished epochs, each file whole or not at all."""
    weights = {name: tensor.cpu() for name, tensor in model.state_dict().items()}  # loadable without a GPU
    save_atomic(os.path.join(out_dir, "model.pt"), lambda f: torch.save(weights, f))
    rows = ["epoch,train_loss,test_accuracy,epoch_seconds"] + ["%d,%.6f,%.2f,%.2f" % row for row in history]
    save_atomic(os.path.join(out_dir, "metrics.csv"), lambda f: f.write("\n".join(rows + [""]).encode()))
    fig = plot(history)
    save_atomic(os.path.join(out_dir, "accuracy.png"), lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


def save_atomic(path, write):
    # A temporary file in the same folder, then a rename: a crash or Ctrl-C never leaves half a file.
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
        for name in OUTPUTS:
            if os.path.isdir(os.path.join(out_dir, name)):
                raise IsADirectoryError(f"{os.path.join(out_dir, name)} is a folder")
        probe = os.path.join(out_dir, f".write-test.{os.getpid()}")
        open(probe, "wb").close()
        os.remove(probe)
    except OSError as e:
        raise SystemExit(f"error: cannot write results to {out_dir}: {e.strerror or e}. Pick another folder with --out-dir.")


def kept(saved, out_dir):
    """What out_dir holds after a stop: the results of the first `saved` epochs."""
    if saved == 0:
        return "nothing was saved"
    epochs = "epoch 1" if saved == 1 else f"epochs 1-{saved}"
    return f"the results of {epochs} are in {out_dir}/"


def main(argv=None):
    args = parse_args(argv)
    check_out_dir(args.out_dir)
    torch.manual_seed(args.seed)
    device = args.device
    print(f"device: {device}")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the shapes never change, so let cuDNN time its kernels once
    try:
        train_loader, test_loader = mnist_loaders(args.data_dir, args.batch_size, device, seed=args.seed)
    except DataError as e:
        raise SystemExit(f"error: {e}")
    model = NET().to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)  # faster CPU convolutions (about 1.4x per step here)
    print(f"{NET.__name__}: {count_parameters(model):,} parameters, {len(train_loader.labels):,} training images")
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)

    history = []  # (epoch, train_loss, test_accuracy, epoch_seconds) of each finished epoch
    saved = 0  # how many epochs the files in out_dir hold
    try:
        for epoch in range(1, args.epochs + 1):
            start = time.perf_counter()
            train_loss = train(model, train_loader, optimizer, epoch, args.log_every)
            train_seconds = time.perf_counter() - start
            accuracy = test(model, test_loader)
            history.append((epoch, train_loss, accuracy, time.perf_counter() - start))
            images_per_second = len(train_loader.labels) / train_seconds
            print(f"epoch {epoch}: test accuracy {accuracy:.2f}%  (train {train_seconds:.1f} s, {images_per_second:.0f} img/s)", flush=True)
            save_results(args.out_dir, history, model)
            saved = epoch
    except KeyboardInterrupt:
        if saved < len(history):  # stopped while saving: the model is still that epoch's, so save again
            save_results(args.out_dir, history, model)
            saved = len(history)
        print(f"\ninterrupted: {kept(saved, args.out_dir)}", file=sys.stderr)
        raise SystemExit(130)
    except torch.OutOfMemoryError:
        raise SystemExit(
            f"error: out of memory on {device} with --batch-size {args.batch_size}: try a smaller batch;"
            f" {kept(saved, args.out_dir)}."
        )
    except FloatingPointError as e:
        raise SystemExit(
            f"error: {e} (the loss is checked every {args.log_every} batches and at the end of each epoch).\n"
            f"  Training diverged: try a smaller learning rate than --lr {args.lr}; {kept(saved, args.out_dir)}."
        )
    except OSError as e:  # the disk filled up, the folder went away, ...
        raise SystemExit(
            f"error: could not write the results of epoch {len(history)} to {args.out_dir}: {e.strerror or e};"
            f" {kept(saved, args.out_dir)}."
        )

    best = max(history, key=lambda row: row[2])
    plot_path = os.path.join(args.out_dir, "accuracy.png")
    print(f"final test accuracy {accuracy:.2f}% (best {best[2]:.2f}% at epoch {best[0]}); plot: {plot_path}")
    if not args.no_show:
        fig = plot(history)
        with warnings.catch_warnings():  # a machine without a display has no window to open: the file is enough
            warnings.simplefilter("ignore", UserWarning)
            plt.show()
        plt.close(fig)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # before or after training: nothing half-done to keep
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
