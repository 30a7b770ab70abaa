"""Runs compared by what changed (`python compare.py`, no training): one line per run in a figure, labelled by
its folder and the settings that differ between the runs compared; the settings they share go in a footnote.
A table in the terminal gives each run's net, epochs done, final and best test accuracy, and what differs."""
import argparse
import csv
import json
import math
import os
import re

import matplotlib.pyplot as plt
from matplotlib import font_manager

from . import console, figures, flags
from .flags import HYPERPARAMETERS, short

RUNS = "runs"  # the scripts' out folders are under it; compared when no folder is named
COMPARED = ("net", *HYPERPARAMETERS, "data", "device")  # the settings that can tell runs apart
# Fonts with Chinese glyphs (Windows, macOS, Linux), put behind the default font where the system has one.
CJK_FONTS = ("Microsoft YaHei", "SimHei", "PingFang SC", "Hiragino Sans GB", "Heiti SC", "STHeiti", "Noto Sans CJK SC",
             "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Arial Unicode MS")
SHOWN = {"net": "{}", "batch_size": "batch {}", "lr": "lr {}", "momentum": "momentum {}", "seed": "seed {}",
         "data": "{} training images", "device": "{}"}


def read_metrics(folder):
    """(epochs, train losses, test accuracies) from folder/metrics.csv; ValueError naming what is wrong."""
    path = os.path.join(folder, "metrics.csv")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        columns = [[float(row[name]) for row in rows] for name in ("epoch", "train_loss", "test_accuracy")]
        if not rows:
            raise ValueError("it has no epochs")
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is not a run's metrics ({console.one_line(e)})") from None
    return columns


def read_runs(folders, named):
    """{folder: metrics} of the runs to compare: a named folder that is not a run stops the comparison (exit 1); a run
    found under RUNS whose metrics.csv cannot be read (hand-edited, saved by a spreadsheet) is named and left out."""
    runs = {}
    for folder in folders:
        try:
            runs[folder] = read_metrics(folder)
        except ValueError as e:
            if named:
                raise SystemExit(f"error: {e}. Is {folder} the out folder of a run?") from None
            console.tell(f"warning: {e}; {folder} is left out")
    return runs


def run_settings(folder):
    """The settings of the run in folder that COMPARED names, from its settings.json; one that cannot be read (or was
    edited into something else) is named on stderr, and the run is compared by its metrics.csv and folder name alone."""
    path = os.path.join(folder, "settings.json")
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
        if not isinstance(settings, dict) or not isinstance(settings.get("net"), str):
            raise ValueError("it has no net")
    except (OSError, ValueError) as e:
        console.tell(f"warning: {path} cannot be read ({getattr(e, 'strerror', None) or e}); comparing {folder} by its metrics.csv alone")
        return {}
    resumed = [entry for entry in settings.get("resumed", []) if isinstance(entry, dict) and entry.get("device")]
    found = {**{name: settings.get(name) for name in COMPARED}, **({"device": resumed[-1]["device"]} if resumed else {})}
    if isinstance(found["data"], dict):
        found["data"] = f"{found['data'].get('train_images', 0):,}"
    return {name: value for name, value in found.items() if isinstance(value, (str, int, float))}


def differences(settings):
    """(names that differ between the runs, {name: value} that they share); runs whose settings are unknown
    take no part (a setting that some know and some do not differs)."""
    known = [s for s in settings if s]
    names = [name for name in COMPARED if any(name in s for s in known)]
    differ = [name for name in names if len({repr(s.get(name)) for s in known}) > 1]
    return differ, {name: known[0][name] for name in names if name not in differ}


def describe(settings, names):
    return ", ".join(SHOWN[name].format(short(settings[name])) for name in names if name in settings)


def natural(folder):
    """runs/resnet, runs/resnet-2, runs/resnet-10: numbers in order, not as text."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", folder)]


def find_runs(root):
    try:
        names = [name for name in os.listdir(root) if not name.startswith(".")]
    except OSError:
        names = []
    return sorted((os.path.join(root, n) for n in names if os.path.isfile(os.path.join(root, n, "metrics.csv"))), key=natural)


def main(argv=None):
    console.prepare()
    parser = flags.Parser(prog="compare.py", description="Compare runs by what changed: test accuracy and training loss"
                          " per epoch, labelled by the settings that differ.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("folders", nargs="*", default=argparse.SUPPRESS,
                        help=f"run folders (each with a metrics.csv); none: every run under {RUNS}/")
    parser.add_argument("-o", "--output", default=os.path.join(RUNS, "comparison.png"), help="where the figure goes (.png, .svg, .pdf)")
    parser.add_argument("--no-show", action="store_true", help="only save the figure, never show it")
    args = parser.parse_args(flags.command_line_args() if argv is None else argv)
    figures.check_format(parser, "-o", args.output)
    named = [os.path.normpath(f) for f in getattr(args, "folders", [])]
    found = named or find_runs(RUNS)
    runs = read_runs(found, named)
    if not runs:
        raise SystemExit(f"error: no run under {RUNS}{os.sep} could be read" if found else f"error: no runs under {RUNS}{os.sep}"
                         " to compare: train one first (python train_resnet.py), or name the run folders")
    run_folders, metrics = list(runs), list(runs.values())
    settings = [run_settings(folder) for folder in run_folders]
    differ, shared = differences(settings)
    names = [os.path.basename(f) for f in run_folders]
    names = names if len(set(names)) == len(names) else run_folders
    labels = [f"{name}: {describe(s, differ)}" if describe(s, differ) else name for name, s in zip(names, settings)]
    everyone = f"{'all runs' if all(settings) else 'all runs whose settings are known'}: {describe(shared, shared)}" if shared else ""
    print_table(run_folders, metrics, settings, differ, f"shared by {everyone}" if shared else "")
    fig = plot(dict(zip(labels, metrics)), shared=everyone)
    try:
        figures.save(fig, args.output)
    except OSError as e:
        plt.close(fig)
        raise SystemExit(f"error: cannot write {args.output}: {e.strerror or e}. Pick another path with -o.") from None
    console.say(f"{len(run_folders)} run{'s' * (len(run_folders) != 1)} compared: {args.output}")
    figures.show(fig, args.no_show)


def fonts_for(texts):
    """(rc settings, texts): a CJK font the system has goes behind the default font, for run folders with Chinese names;
    where there is none, a character the fonts cannot draw is written as its \\uXXXX escape (no box, no warning)."""
    have = {font.name for font in font_manager.fontManager.ttflist}
    family = [*plt.rcParams["font.family"], *(name for name in CJK_FONTS if name in have)]
    drawn = set()
    for name in family:
        path = font_manager.findfont(font_manager.FontProperties(family=[name]), fallback_to_default=False)
        drawn.update(font_manager.get_font(path).get_charmap())
    texts = ["".join(c if ord(c) in drawn or c.isspace() else c.encode("ascii", "backslashreplace").decode() for c in text) for text in texts]
    return {"font.family": family}, texts


def plot(runs, shared=""):
    """runs: {label: (epochs, train losses, test accuracies)} -> accuracy and loss side by side, a line per run, and one
    legend below both in as many rows as it needs (the figure grows with it); shared: a footnote. After 10 runs the
    colours come round again, with another line style."""
    rc, texts = fonts_for([*runs, shared])
    labels, shared = texts[:-1], texts[-1]
    columns = 1 if len(runs) <= 3 else 2 if len(runs) <= 12 else 3
    legend, foot = 0.2 * math.ceil(len(runs) / columns) + 0.15, 0.3 if shared else 0.0
    height = 4.2 + legend + foot
    with plt.rc_context(rc):
        fig, (accuracy, loss) = plt.subplots(1, 2, figsize=(11, height))
        for i, (label, (epochs, losses, accuracies)) in enumerate(zip(labels, runs.values())):
            style = dict(marker="o", markersize=3, linestyle=("-", "--", ":", "-.")[i // 10 % 4])
            line, = accuracy.plot(epochs, accuracies, label=f"{label} ({accuracies[-1]:.2f}%)", **style)
            loss.plot(epochs, losses, color=line.get_color(), label=label, **style)
        accuracy.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy per epoch (final in brackets)")
        loss.set(xlabel="epoch", ylabel="mean training loss", yscale="log", title="mean training loss per epoch")
        figures.accuracy_axis(accuracy, [a for _, _, accuracies in runs.values() for a in accuracies])
        for ax in (accuracy, loss):
            figures.epoch_axis(ax, max(int(max(epochs)) for epochs, _, _ in runs.values()))
            ax.grid(alpha=0.3)
        fig.legend(handles=accuracy.lines, loc="lower center", ncol=columns, fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, foot / height))
        if shared:
            fig.text(0.5, 0.01, shared, ha="center", va="bottom", fontsize=8, color="0.3", wrap=True)
        fig.tight_layout(rect=(0, (legend + foot) / height, 1, 1))
    return fig


def print_table(run_folders, metrics, settings, differ, shared):
    width = max(len("run"), *map(len, run_folders))
    lines = [f"{'run':<{width}}  {'net':<12} {'epochs':>6} {'final':>8} {'best (epoch)':>14}  differs"]
    for folder, (epochs, _, accuracies), s in zip(run_folders, metrics, settings):
        best = max(range(len(accuracies)), key=accuracies.__getitem__)
        best_text = f"{accuracies[best]:.2f}% ({int(epochs[best])})"
        lines.append(f"{folder:<{width}}  {s.get('net', '?'):<12} {int(epochs[-1]):>6} {accuracies[-1]:>7.2f}% {best_text:>14}"
                     f"  {describe(s, [n for n in differ if n != 'net']) or '-'}")
    console.say("\n".join(lines + ([shared] if shared else [])))
