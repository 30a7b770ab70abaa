"""A run's figures: the accuracy plot and mistakes.png. save() writes a figure whole or not at all; show() shows it
where this Python can: a window, a notebook, an IDE's plot pane."""
import copy
import math
import os
import warnings

import matplotlib
import matplotlib.pyplot as plt
import torch
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.ticker import MaxNLocator

from . import console
from .checkpoint import count

MISTAKES_SHOWN = 48  # the most confident mistakes drawn in mistakes.png


def save(fig, path):
    """Write fig to path in the format its name says (.png, .svg, .pdf, ...), atomically; its folder is made if missing."""
    from .store import save_atomic  # store draws accuracy.png with this module

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


def show(fig, no_show=False, say=console.say):
    """Show fig, then let it go: in a window (plt.show() then waits until it is closed, and say() says so), inline in
    a notebook, or in an IDE's plot pane (PyCharm's, Spyder's: a module:// backend). Nowhere on a machine without a
    screen, nor under `!python` in a notebook, where the inline backend would print the figure's repr."""
    if no_show:
        return plt.close(fig)
    backend = plt.get_backend()
    window = type(fig.canvas).required_interactive_framework is not None
    inline = "inline" in backend.lower()
    if window or ((backend.startswith("module://") or inline) and (not inline or console.in_kernel())):
        if window and not matplotlib.is_interactive():  # only then does plt.show() wait
            say("the plot is open in a window: close it to end the script (--no-show skips it)")
        with warnings.catch_warnings():
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
    confidence), on the CPU. Works with data.Batches and with a DataLoader alike; the model's mode is left as it was."""
    training = model.training
    model.eval()
    found = []
    try:
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            confidence, predicted = model(images).softmax(dim=1).max(dim=1)
            wrong = predicted != labels
            found.append([t[wrong].cpu() for t in (images, labels, predicted, confidence)])
    finally:
        model.train(training)
    images, labels, predicted, confidence = (torch.cat(column) for column in zip(*found))
    order = confidence.argsort(descending=True, stable=True)
    return images[order], labels[order], predicted[order], confidence[order]


def write_mistakes(model, weights, loader, device, net_name, epoch, folder):
    """mistakes.png in folder, for a copy of model that holds weights; said on stdout, or why it was skipped on stderr."""
    path, total = os.path.join(folder, "mistakes.png"), count(loader)
    try:
        model = copy.deepcopy(model)
        model.load_state_dict(weights)
        found = find_mistakes(model, loader, device)
        fig = plot_mistakes(*found, total, net_name)
        try:
            save(fig, path)
        finally:
            plt.close(fig)
    except (OSError, RuntimeError) as e:  # out of memory or disk: the other files are saved, say so and go on
        return console.tell(f"mistakes.png skipped: {console.one_line(e)}")
    except KeyboardInterrupt:  # Ctrl-C or kill while it is drawn: said, and the run ends as stopped
        console.tell("\nmistakes.png skipped")
        raise
    console.say(f"mistakes: {len(found[1])} of {total:,} test images wrong after epoch {epoch}; {path}")


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
