"""The figures: test accuracy per epoch for one run (accuracy.png) or many (compare.py); show(), which shows a figure
where this Python can (a window, a notebook, an IDE's plot pane); save(), which writes one whole."""

import contextlib
import io
import math
import os
import sys
import textwrap

import matplotlib
import matplotlib.pyplot as plt
from matplotlib import font_manager
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import ScaledTranslation

from . import store

# Fonts with Chinese glyphs (Windows, macOS, Linux), tried after the default font for run folders with Chinese names.
CJK_FONTS = ("Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC", "Noto Sans CJK SC", "WenQuanYi Micro Hei")


def fonts():
    """rc settings: the default font, then each Chinese font this system has."""
    have = {font.name for font in font_manager.fontManager.ttflist}
    return {"font.family": [*plt.rcParams["font.family"], *(name for name in CJK_FONTS if name in have)]}


def to_bytes(fig, kind="png", close=False):
    """The figure as the bytes of a file; with close, the figure is let go."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=kind, dpi=100)
    finally:
        if close:
            plt.close(fig)
    return buffer.getvalue()


def file_format(path):
    return os.path.splitext(path)[1].lstrip(".").lower() or "png"


def check_format(parser, flag, path):
    """A usage error for a figure file that matplotlib cannot write."""
    if file_format(path) not in FigureCanvasBase.get_supported_filetypes():
        parser.error(f"{flag} {path}: matplotlib cannot write that kind of file; use .png, .svg or .pdf")


def save(fig, path, flag=None):
    """Write fig to path (.png, .svg, .pdf, ...), whole; its folder is made if missing. A path that cannot be written
    (a full disk, a folder it may not write in) ends the command in one line, naming the flag that picks another."""
    try:
        os.makedirs(os.path.dirname(path) or os.curdir, exist_ok=True)
        store.write(path, to_bytes(fig, file_format(path)))
    except OSError as e:
        plt.close(fig)  # in a notebook, an open figure would still be drawn under the error
        fix = f"; pick another path with {flag}" if flag else ""
        raise SystemExit(f"error: cannot write {path}: {e.strerror or e}{fix}") from None


def in_kernel():
    """Whether this Python is a Jupyter kernel: a notebook, Colab, Kaggle, VS Code's or PyCharm's notebooks."""
    ipython = sys.modules.get("IPython")
    return hasattr(ipython and ipython.get_ipython(), "kernel")


def show(fig, no_show=False):
    """Show fig: in a window (plt.show() then waits until it is closed, and says so), inline in a notebook, or in an
    IDE's plot pane (a module:// backend); nowhere without a screen, nor under `!python` in a notebook, where the
    inline backend would only print the figure's repr."""
    backend = plt.get_backend()
    window = type(fig.canvas).required_interactive_framework is not None
    inline = "inline" in backend.lower()
    if not no_show and (window or ((backend.startswith("module://") or inline) and (not inline or in_kernel()))):
        if window and not matplotlib.is_interactive():
            print("the plot is open in a window: close it to end the script (--no-show skips it)")
        with contextlib.suppress(KeyboardInterrupt):  # a window closed with Ctrl-C: the figure's file is written
            plt.show()
    plt.close(fig)


def plot(runs, title, footnote=""):
    """runs: {label: (epoch, train_loss, test_accuracy, ...) rows}. A line per run, its best epoch starred; whole epochs
    with room either side, and accuracy never above 100%. One run: its legend inside, lower right. More: the legend
    right under the axes, the footnote (what all runs share) at its head, in as many columns as the runs need (after 10
    runs the colours come round with another line style). Constrained layout gives the axes what the legend leaves."""
    labels, shared = [textwrap.fill(label, 60) for label in runs], textwrap.fill(footnote, 170)
    columns = 1 if len(runs) <= 3 else 2 if len(runs) <= 12 else 3
    rows = max(label.count("\n") + 1 for label in labels) * math.ceil(len(runs) / columns) + shared.count("\n") + 1
    with plt.rc_context(fonts()):
        size = (6.4, 4.2) if len(runs) == 1 else (11, 4.6 + 0.16 * rows)
        # One run's legend sits inside the axes, so fixed margins (below) fit: drawn each epoch, in half the time.
        fig, ax = plt.subplots(figsize=size, layout=None if len(runs) == 1 else "constrained")
        for i, (label, history) in enumerate(zip(labels, runs.values())):
            epochs, accuracy = [row[0] for row in history], [row[2] for row in history]
            best = max(range(len(accuracy)), key=accuracy.__getitem__)
            style = ("-", "--", ":", "-.")[i // 10 % 4]
            (line,) = ax.plot(epochs, accuracy, marker="o", markersize=4, linestyle=style, clip_on=False, label=label)
            ax.plot(epochs[best], accuracy[best], "*", color=line.get_color(), markersize=12, clip_on=False)
        accuracies, last = [row[2] for h in runs.values() for row in h], max(row[0] for h in runs.values() for row in h)
        pad = max(0.5, 0.1 * (max(accuracies) - min(accuracies)))
        ylim = (max(0.0, min(accuracies) - pad), min(100.0, max(accuracies) + pad))
        ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=title, xlim=(0.5, last + 0.5), ylim=ylim)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True, min_n_ticks=1))  # every epoch up to 12 epochs
        ax.grid(alpha=0.3)
        if len(runs) == 1:
            ax.legend(loc="lower right")
            fig.subplots_adjust(left=0.13, bottom=0.12, right=0.97, top=0.92)  # room for "98.25" and the label
        else:
            # Its top half an inch under the axes, below the tick labels and "epoch", whatever the axes' height.
            under = ax.transAxes + ScaledTranslation(0, -0.45, fig.dpi_scale_trans)
            legend = ax.legend(
                loc="upper center",
                bbox_to_anchor=(0.5, 0),
                bbox_transform=under,
                ncol=columns,
                fontsize=8,
                frameon=False,
                title=shared or None,
                title_fontsize=8,
            )
            legend.get_title().set_color("0.3")
    return fig
