"""python compare.py: runs side by side, each labelled by what differs in its record of what ran (settings.json: the
net, the optimizer as torch held it, the script's constants, the data, the device and the lesson files' code); what
every run shares goes in one line. `--diff A B` prints the lines of code that differ between two runs."""

import argparse
import csv
import difflib
import glob
import json
import os
import re
import sys

from . import figures, flags, record

RUNS = "runs"


def read_metrics(folder):
    """(epoch, train loss, test accuracy) rows from folder/metrics.csv; ValueError saying what is wrong."""
    path = os.path.join(folder, "metrics.csv")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise ValueError("it has no epochs")
        return [(int(row["epoch"]), float(row["train_loss"]), float(row["test_accuracy"])) for row in rows]
    except (OSError, LookupError, TypeError, ValueError) as e:
        raise ValueError(f"cannot read {path} ({getattr(e, 'strerror', None) or e})") from None


def describe(folder):
    """record.describe() of the run in folder; {} where its settings.json cannot be read."""
    path = os.path.join(folder, "settings.json")
    try:
        with open(path, encoding="utf-8") as f:
            return record.describe(json.load(f))
    except (OSError, ValueError, LookupError, TypeError, AttributeError) as e:
        why = getattr(e, "strerror", None) or e
        print(f"warning: {path} cannot be read ({why}); {folder} is compared by its metrics alone", file=sys.stderr)
        return {}


def versions(described):
    """Each lesson file's code as a version of it, "models.py v2", numbered in the order the runs first show each text:
    a learner matches versions, not hashes (those stay in settings.json)."""
    numbers = {}
    for items in described:
        for key in [key for key in items if key.startswith("code ")]:
            seen = numbers.setdefault(key, {})
            items[key] = f"{key[5:]} v{seen.setdefault(items[key], len(seen) + 1)}"
    return described


def differences(described):
    """(the keys whose text differs between the runs whose record is known, the keys they all share). A constant that
    any run's optimizer holds by its name (--lr, --momentum) is left to the optimizer, which says what torch used."""
    known = [items for items in described if items]
    keys = list(dict.fromkeys(k for items in known for k in items))
    keys = [k for k in keys if not (k.startswith("--") and k[2:].replace("-", "_") in keys)]
    differ = [k for k in keys if len({items.get(k) for items in known}) > 1]
    return differ, [k for k in keys if k not in differ]


def diff(folders):
    """Print the lines of the lesson files' code that differ between two runs, from their checkpoint.pt."""
    # Only --diff needs torch: the code itself is kept in checkpoint.pt.
    import torch

    codes = []
    for folder in folders:
        try:
            state = torch.load(os.path.join(folder, "checkpoint.pt"), map_location="cpu", weights_only=True)
            codes.append(state["record"]["code"])
        except Exception as e:
            raise SystemExit(f"error: cannot read the code of {folder} from its checkpoint.pt ({e})") from None
    lines = []
    for name in dict.fromkeys([*codes[0], *codes[1]]):
        if name not in codes[0] or name not in codes[1]:  # the lecture's DataLoader, say, in place of data.py
            lines.append(f"{name}: only {folders[name in codes[1]]} ran it")
            continue
        old, new = (code[name].splitlines() for code in codes)
        lines += difflib.unified_diff(old, new, f"{folders[0]}/{name}", f"{folders[1]}/{name}", lineterm="")
    print("\n".join(lines) or f"{folders[0]} and {folders[1]} ran the same code")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="compare.py", description="Compare runs by what differs between them.")
    parser.add_argument("folders", nargs="*", help=f"run folders (with a metrics.csv); none: every run under {RUNS}/")
    output = os.path.join(RUNS, "comparison.png")
    parser.add_argument("-o", "--output", default=output, help=f"the figure: .png, .svg or .pdf (default: {output})")
    parser.add_argument("--diff", nargs=2, metavar=("RUN_A", "RUN_B"), help="print the lines of code that differ")
    parser.add_argument("--no-show", action="store_true", help="only save the figure, never show it")
    args = parser.parse_args(flags.command_line() if argv is None else [str(word) for word in argv])
    if args.diff:
        return diff(args.diff)
    figures.check_format(parser, "-o", args.output)
    # With no folders named: runs/resnet, runs/resnet-2, runs/resnet-10, numbers in order, not as text.
    found = [os.path.normpath(folder) for folder in args.folders] or sorted(
        (os.path.dirname(path) for path in glob.glob(os.path.join(RUNS, "*", "metrics.csv"))),
        key=lambda folder: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", folder)],
    )
    runs = {}
    for folder in found:
        try:
            runs[folder] = read_metrics(folder)
        except ValueError as e:
            print(f"warning: {e}; {folder} is left out", file=sys.stderr)
    if not runs:
        first = "train one first (python train_resnet.py), or name the run folders"
        where = f"no runs under {RUNS}{os.sep} to compare: {first}"
        raise SystemExit(f"error: {'no run could be read' if found else where}")
    described = versions([describe(folder) for folder in runs])
    differ, shared = differences(described)
    rows = [", ".join(items[k] for k in differ if k in items) for items in described]
    known = next((items for items in described if items), {})
    common = ", ".join(known[k] for k in shared if not k.startswith("code "))
    everyone = f"shared by all runs{'' if all(described) else ' whose settings are known'}: {common}" if common else ""
    width = max(len("run"), *map(len, runs))
    print(f"{'run':<{width}}  {'epochs':>6} {'final':>8} {'best (epoch)':>14}  differs")
    for (folder, history), row in zip(runs.items(), rows):
        epoch, _, best = max(history, key=lambda r: r[2])
        best = f"{best:.2f}% ({epoch})"
        print(f"{folder:<{width}}  {history[-1][0]:>6} {history[-1][2]:>7.2f}% {best:>14}  {row or '-'}")
    if everyone:
        print(everyone)
    names = [os.path.basename(f) for f in runs]
    names = names if len(set(names)) == len(names) else list(runs)
    labels = [f"{name}: {row}" if row else name for name, row in zip(names, rows)]
    labels = [f"{label} ({h[-1][2]:.2f}%)" for label, h in zip(labels, runs.values())]
    fig = figures.plot(dict(zip(labels, runs.values())), "test accuracy per epoch", everyone)
    figures.save(fig, args.output, "-o")
    print(f"{len(runs)} run{'s' * (len(runs) != 1)} compared: {args.output}")
    figures.show(fig, args.no_show)
