"""Why the skip connection: lecture 11's claim about ResidualBlock, measured on MNIST.

    python skip_connection.py                        # 1, 2, 5, 10 and 20 blocks, one epoch each (minutes on a CPU)
    python skip_connection.py --depths 10,20 --epochs 2 --device cuda

The lecture says that a deep stack of plain layers stops learning because the gradient shrinks on its way back
through them, and that the block's `x + F(x)` fixes it: its gradient is 1 + dF/dx, never much below 1. Here the
lecture's first convolution and pooling are followed by DEPTH of its ResidualBlock(16), or of the same block without
`+ x` (PlainBlock), and a linear layer; each pair starts from the same weights and sees the same batches. Printed and
drawn (--out; a new name each run): the gradient norm reaching each block, the training loss and the test accuracy.
"""

import argparse
import itertools
import os
import sys

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator
from torch import nn

from data import mnist_loaders
from helpers import device as devices
from helpers import figures, flags
from models import ResidualBlock
from train_resnet import test  # the lesson's own

# The lecture's hyperparameters; the depths are this experiment's.
DEPTHS = "1,2,5,10,20"  # numbers of blocks stacked, comma-separated
EPOCHS = 1  # passes over the 60,000 training images for each net
BATCH_SIZE, LR, MOMENTUM, SEED = 64, 0.01, 0.5, 0
CHANNELS = 16  # the lecture's first ResidualBlock
LOSS_EVERY = 50  # batches per point of the training-loss curve
DATA_DIR = "data"
OUT = "runs/skip_connection.png"


class PlainBlock(ResidualBlock):
    """ResidualBlock without its skip connection: relu(conv2(relu(conv1(x)))). The same layers, one line changed."""

    def forward(self, x):
        y = F.relu(self.conv1(x))
        y = self.conv2(y)
        return F.relu(y)  # ResidualBlock: F.relu(x + y)


class Stack(nn.Module):
    """The lecture's conv 5x5 -> pool -> relu, then `depth` blocks of 16 channels at 12x12, then linear -> 10."""

    def __init__(self, block, depth):
        super().__init__()
        self.conv1 = nn.Conv2d(1, CHANNELS, kernel_size=5)
        self.mp = nn.MaxPool2d(2)
        self.blocks = nn.Sequential(*(block(CHANNELS) for _ in range(depth)))
        self.l1 = nn.Linear(CHANNELS * 12 * 12, 10)

    def forward(self, x):
        x = F.relu(self.mp(self.conv1(x)))
        return self.l1(torch.flatten(self.blocks(x), 1))


@torch.no_grad()
def same_blocks():
    """Whether ResidualBlock, as models.py has it now, computes what PlainBlock does: its + x edited away."""
    torch.manual_seed(SEED)
    residual, plain = ResidualBlock(CHANNELS), PlainBlock(CHANNELS)
    plain.load_state_dict(residual.state_dict())
    x = torch.randn(2, CHANNELS, 12, 12)
    return torch.equal(residual(x), plain(x))


def block_gradient_norms(model):
    """The norm of the gradient of each block's weights and biases, nearest the input first (a tensor on the device)."""
    return torch.stack([torch.cat([p.grad.flatten() for p in block.parameters()]).norm() for block in model.blocks])


def train(model, loader, optimizer, epochs):
    """SGD as the training scripts do it; returns the block gradient norms of every first-epoch step and the losses."""
    model.train()
    norms = torch.zeros(len(loader), len(model.blocks), device=loader.labels.device)
    losses = []
    for epoch in range(epochs):
        epoch_losses = torch.zeros(len(loader), device=loader.labels.device)  # kept on the device: no wait per batch
        for i, (images, labels) in enumerate(loader):
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            if epoch == 0:
                norms[i] = block_gradient_norms(model)
            optimizer.step()
            epoch_losses[i] = loss.detach()
        done = epoch * len(loader)
        for start, chunk in zip(range(0, len(loader), LOSS_EVERY), epoch_losses.split(LOSS_EVERY)):
            losses.append((done + start + len(chunk), chunk.mean().item()))  # (SGD steps so far, mean loss)
    return norms.cpu(), losses


def measure(depths, epochs, device, data_dir, log=print):
    """results[(variant, depth)] = dict(first_step, epoch_mean, losses, accuracy), each pair from the same start."""
    train_loader, test_loader = mnist_loaders(data_dir, BATCH_SIZE, device, seed=SEED)
    results = {}
    for depth in depths:
        for variant, block in (("residual", ResidualBlock), ("plain", PlainBlock)):
            torch.manual_seed(SEED)  # the same initial weights for both variants: the blocks have the same layers
            train_loader.generator.manual_seed(SEED)  # and the same batches in the same order
            model = Stack(block, depth).to(device, memory_format=devices.memory_format(device))
            optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
            norms, losses = train(model, train_loader, optimizer, epochs)
            results[variant, depth] = result = dict(
                first_step=norms[0].tolist(),
                epoch_mean=norms.mean(dim=0).tolist(),
                losses=losses,
                accuracy=test(model.eval(), device, test_loader),
            )
            log(row(depth, variant, result))
    return results


HEADER = (
    f"{'blocks':>6} {'variant':<9} {'gradient norm, first step':>27} {'mean over epoch 1':>23}"
    f" {'last loss':>10} {'test accuracy':>14}\n{'':>6} {'':<9} {'first block':>13} {'last block':>13}"
    f" {'first block':>11} {'last':>11}"
)


def row(depth, variant, r):
    return (
        f"{depth:>6} {variant:<9} {r['first_step'][0]:>13.1e} {r['first_step'][-1]:>13.1e}"
        f" {r['epoch_mean'][0]:>11.1e} {r['epoch_mean'][-1]:>11.1e} {r['losses'][-1][1]:>10.3f} {r['accuracy']:>13.2f}%"
    )


def plot(results, loss_every):
    """The skip-connection experiment: results[(variant, depth)] = dict(first_step, epoch_mean, losses, accuracy)."""
    depths = sorted({depth for _, depth in results})
    deepest = depths[-1]
    fig, (norms, loss, accuracy) = plt.subplots(1, 3, figsize=(15, 4.4))
    for variant, color in (("residual", "tab:blue"), ("plain", "tab:red")):
        found, blocks = results[variant, deepest], range(1, deepest + 1)
        # A gradient of exactly 0 has no place on a log scale: left out (a gap in the line).
        first, mean = ([g if g > 0 else float("nan") for g in found[key]] for key in ("first_step", "epoch_mean"))
        norms.plot(blocks, first, marker="o", color=color, label=f"{variant}, first step")
        norms.plot(blocks, mean, marker=".", ls="--", color=color, label=f"{variant}, mean over epoch 1")
        loss.plot(*zip(*found["losses"]), color=color, label=f"{variant}, {deepest} blocks")
        accuracy.plot(depths, [results[variant, d]["accuracy"] for d in depths], marker="o", color=color, label=variant)
    norms.set(yscale="log", xlabel="block (1 = nearest the input)", ylabel="gradient norm of the block's weights")
    norms.set_title(f"gradients reaching each of {deepest} blocks")
    norms.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss.set(xlabel="SGD step", ylabel=f"training loss (mean of {loss_every} batches)")
    loss.set_title(f"training loss, {deepest} blocks")
    accuracy.set(xscale="log", xlabel="blocks", ylabel="test accuracy (%)", ylim=(0, 100))
    accuracy.set_title("test accuracy against depth")
    accuracy.set_xticks(depths, [str(d) for d in depths])
    accuracy.minorticks_off()
    for ax in (norms, loss, accuracy):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def free_name(path):
    """path, or the first of STEM-2.EXT, STEM-3.EXT, ... that is not taken: numbered as the run folders are."""
    stem, ending = os.path.splitext(path)
    names = itertools.chain([path], (f"{stem}-{n}{ending}" for n in itertools.count(2)))
    return next(name for name in names if not os.path.exists(name))


def parse_depths(parser, text):
    try:
        depths = sorted({int(word) for word in text.split(",") if word.strip()})
    except ValueError:
        parser.error(f"--depths must be whole numbers separated by commas, such as 1,2,5,10,20; got {text}")
    if not depths or depths[0] < 1:
        parser.error(f"--depths must be 1 or more blocks each, got {text}")
    return depths


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--depths", default=DEPTHS, help="numbers of blocks to stack, comma-separated")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="epochs each net trains")
    parser.add_argument("--device", default="auto", help="auto (CUDA, else Apple's MPS, else the CPU), cpu, cuda, mps")
    parser.add_argument("--data-dir", default=DATA_DIR, help="folder that holds (or receives) MNIST/raw/")
    out = f"the figure (.png, .svg, .pdf); by default {OUT}, or the next free name (skip_connection-2.png, ...)"
    parser.add_argument("--out", default=argparse.SUPPRESS, help=out)
    parser.add_argument("--no-show", action="store_true", help="only save the figure, never open a window")
    args = parser.parse_args(argv)
    # An earlier run's figure is kept: its model may have been edited since.
    args.out = getattr(args, "out", None) or free_name(OUT)
    depths = parse_depths(parser, args.depths)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    flags.check_device(parser, args.device)
    figures.check_format(parser, "--out", args.out)
    # As the training scripts pick it: a GPU that this torch cannot use is named in one line.
    args.device = devices.pick_device(args.device)
    epochs = f"{args.epochs} epoch{'s' * (args.epochs != 1)}"
    print(f"{len(depths) * 2} nets, {epochs} each; batch {BATCH_SIZE}, lr {LR}, momentum {MOMENTUM}, seed {SEED}")
    if same_blocks():
        print("note: ResidualBlock in models.py computes what PlainBlock does (is its + x gone?): both rows will match")
    print(HEADER, flush=True)
    try:
        results = measure(depths, args.epochs, args.device, args.data_dir, log=lambda line: print(line, flush=True))
        fig = plot(results, LOSS_EVERY)
        figures.save(fig, args.out, "--out")
    except (RuntimeError, MemoryError) as e:
        if not devices.is_out_of_memory(e):
            raise
        cpu = "" if args.device.type == "cpu" else ", or --device cpu"
        raise SystemExit(f"error: out of memory on {args.device}: try fewer --depths{cpu}") from None
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"figure: {args.out}")
    figures.show(fig, args.no_show)


if __name__ == "__main__":
    main()
