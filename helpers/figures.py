"""The figures: a run's accuracy plot and mistakes.png, runs side by side, and the skip-connection experiment.

Each function returns a matplotlib figure; save() writes one whole or not at all, show() opens it."""
import math
import os
import warnings

import matplotlib.pyplot as plt
import torch
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.ticker import MaxNLocator

from .folders import save_atomic

MISTAKES_SHOWN = 48  # the most confident mistakes drawn in mistakes.png


def save(fig, path):
    """Write fig to path in the format its name says (.png, .svg, .pdf, ...), atomically; its folder is made if missing."""
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    save_atomic(path, lambda f: fig.savefig(f, format=file_format(path), dpi=100))


def file_format(path):
    return os.path.splitext(path)[1].lstrip(".").lower() or "png"


def check_format(parser, flag, path):
    """A usage error for a figure file that matplotlib cannot write."""
    if file_format(path) not in FigureCanvasBase.get_supported_filetypes():
        parser.error(f"{flag} {path}: matplotlib cannot write .{file_format(path)} files; use .png, .svg or .pdf")


def write_png(fig, f):
    """Write fig as a PNG into the open file f, and let it go."""
    try:
        fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)


def can_show():
    """Whether plt.show() opens a window here (not on a machine without a screen, nor with MPLBACKEND=Agg)."""
    return plt.get_backend().lower() not in ("agg", "pdf", "ps", "svg", "pgf", "cairo", "template")


def show(fig, no_show):
    if not no_show:
        with warnings.catch_warnings():  # a machine without a display has no window to open: the file is enough
            warnings.simplefilter("ignore", UserWarning)
            try:
                plt.show()
            except KeyboardInterrupt:  # closing the window with Ctrl-C: the file is written already
                pass
    plt.close(fig)


def epoch_axis(ax, last_epoch):
    # Whole epochs only, and room either side: one or two epochs look like ten do, not like 0.945 ... 1.050.
    if last_epoch <= 12:
        ax.set_xticks(range(1, last_epoch + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5, last_epoch + 0.5)


def accuracy_axis(ax, accuracies):
    low, high = min(accuracies), max(accuracies)
    pad = max(0.5, 0.1 * (high - low))
    ax.set_ylim(max(0.0, low - pad), min(100.0, high + pad))  # never above 100%


def plot(history, net_name):
    """Test accuracy per epoch, the best epoch marked. history: (epoch, train_loss, test_accuracy, seconds) rows."""
    epochs = [row[0] for row in history]
    accuracy = [row[2] for row in history]
    best = max(range(len(accuracy)), key=accuracy.__getitem__)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(epochs, accuracy, marker="o", clip_on=False)
    ax.plot(epochs[best], accuracy[best], "r*", markersize=15, clip_on=False, label=f"best: {accuracy[best]:.2f}% (epoch {epochs[best]})")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{net_name} on MNIST: final test accuracy {accuracy[-1]:.2f}%")
    epoch_axis(ax, epochs[-1])
    accuracy_axis(ax, accuracy)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


@torch.inference_mode()
def find_mistakes(model, loader, device):
    """The test images that model gets wrong, the most confident mistakes first: (images, labels, predicted,
    confidence), on the CPU. Works with data.Batches and with a DataLoader alike."""
    model.eval()
    found = []
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        confidence, predicted = model(images).softmax(dim=1).max(dim=1)
        wrong = predicted != labels
        found.append([t[wrong].cpu() for t in (images, labels, predicted, confidence)])
    images, labels, predicted, confidence = (torch.cat(column) for column in zip(*found))
    order = confidence.argsort(descending=True, stable=True)
    return images[order], labels[order], predicted[order], confidence[order]


def plot_mistakes(images, labels, predicted, confidence, total, net_name):
    """The first MISTAKES_SHOWN of find_mistakes' images, each captioned with its true and predicted digit."""
    shown = min(len(labels), MISTAKES_SHOWN)
    columns, rows = 8, max(1, math.ceil(shown / 8))
    # One picture of all the digits, each in a cell with room above it for its caption: far quicker to
    # draw than 48 separate axes. The background takes the darkest pixel's value (white in gray_r).
    cell_w, cell_h = 36, 46
    background = float(images.min()) if shown else 0.0
    mosaic = torch.full((rows * cell_h, columns * cell_w), background)
    fig = plt.figure(figsize=(columns * 1.25, rows * 1.6 + 0.5))
    ax = fig.add_axes((0.01, 0.01, 0.98, 1 - 0.45 / fig.get_figheight()))
    for i in range(shown):
        top, left = (i // columns) * cell_h + cell_h - 32, (i % columns) * cell_w + 4
        mosaic[top : top + 28, left : left + 28] = images[i, 0].float()
        ax.text(left + 14, top - 2, f"true {labels[i]}, said {predicted[i]}\n{100 * confidence[i]:.0f}% sure",
                ha="center", va="bottom", fontsize=8)
    ax.imshow(mosaic.numpy(), cmap="gray_r")
    ax.axis("off")
    fig.suptitle(f"{net_name}: {len(labels)} of {total:,} test images wrong ({100 * len(labels) / total:.2f}%);"
                 f" the {shown} most confident mistakes", fontsize=10, y=1 - 0.1 / fig.get_figheight(), va="top")
    return fig


def plot_comparison(runs, shared=""):
    """runs: {label: (epochs, train losses, test accuracies)} -> accuracy and loss side by side; shared: a footnote."""
    fig, (accuracy, loss) = plt.subplots(1, 2, figsize=(11, 4.4))
    for label, (epochs, losses, accuracies) in runs.items():
        line, = accuracy.plot(epochs, accuracies, marker="o", markersize=3, label=f"{label} ({accuracies[-1]:.2f}%)")
        loss.plot(epochs, losses, marker="o", markersize=3, color=line.get_color(), label=label)
    accuracy.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy per epoch (final in brackets)")
    loss.set(xlabel="epoch", ylabel="mean training loss", yscale="log", title="mean training loss per epoch")
    last = max(int(max(epochs)) for epochs, _, _ in runs.values())
    accuracy_axis(accuracy, [a for _, _, accuracies in runs.values() for a in accuracies])
    for ax in (accuracy, loss):
        epoch_axis(ax, last)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if shared:
        fig.text(0.5, 0.01, shared, ha="center", va="bottom", fontsize=8, color="0.3")
    fig.tight_layout(rect=(0, 0.04 if shared else 0, 1, 1))
    return fig


def plot_skip(results, loss_every):
    """The skip-connection experiment: results[(variant, depth)] = dict(first_step, epoch_mean, losses, accuracy)."""
    depths = sorted({depth for _, depth in results})
    deepest = depths[-1]
    colors = {"residual": "tab:blue", "plain": "tab:red"}
    fig, (norms, loss, accuracy) = plt.subplots(1, 3, figsize=(15, 4.4))
    for variant, color in colors.items():
        found = results.get((variant, deepest))
        if found is None:
            continue
        blocks = range(1, deepest + 1)
        # A gradient of exactly 0 has no place on a log scale: left out (a gap in the line).
        first, mean = ([g if g > 0 else float("nan") for g in found[key]] for key in ("first_step", "epoch_mean"))
        norms.plot(blocks, first, marker="o", color=color, label=f"{variant}, first step")
        norms.plot(blocks, mean, marker=".", ls="--", color=color, label=f"{variant}, mean over epoch 1")
        loss.plot(*zip(*found["losses"]), color=color, label=f"{variant}, {deepest} blocks")
        accuracy.plot(depths, [results[(variant, d)]["accuracy"] for d in depths], marker="o", color=color, label=variant)
    norms.set(yscale="log", xlabel="block (1 = nearest the input)", ylabel="gradient norm of the block's weights",
              title=f"gradients reaching each of {deepest} blocks")
    norms.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss.set(xlabel="SGD step", ylabel=f"training loss (mean of {loss_every} batches)", title=f"training loss, {deepest} blocks")
    accuracy.set(xscale="log", xlabel="blocks", ylabel="test accuracy (%)", title="test accuracy against depth", ylim=(0, 100))
    accuracy.set_xticks(depths, [str(d) for d in depths])
    accuracy.minorticks_off()
    for ax in (norms, loss, accuracy):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
