"""Look inside a trained run: which InceptionA branch and which residual path does the work.

    python look_inside.py                     # the newest run under runs/ that has a model.pt
    python look_inside.py runs/inception --index 7 --device cpu

The lecture says InceptionA runs four branches side by side because we do not know which kernel is best, and
that ResidualBlock's x + F(x) lets the signal pass. Here the run's own weights (model.pt) meet its own test
images, and parts of the trained net are knocked out one at a time with forward hooks, removed afterwards:
the lesson's forward() is never changed. InceptionNet: each branch's output set to zero, in each block and
in both, beside its channels, its share of the block's output energy and of the block's multiply-adds.
ResidualNet: each block without its skip (relu(F(x))) and without F (relu(x)), beside |F(x)| / |x| and the
cosine of F(x) and x. The figure (inside.png in the run's folder) shows the knock-outs and one test digit
as each part sees it; mistakes.png beside it, the test digits the net gets wrong, the most confident first.
"""

import argparse
import contextlib
import json
import math
import os
import sys

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import models
from data import mnist_loaders, normalize
from helpers import device as devices
from helpers import figures, flags
from helpers.mnist import one_line

RUNS = "runs"
NETS = {"InceptionNet": ("incep1", "incep2"), "ResidualNet": ("res1", "res2")}  # the blocks looked into
BRANCHES = {
    "1x1": "branch1x1",
    "5x5": "branch5x5",
    "3x3 -> 3x3": "branch3x3",
    "pool": "branch_pool",
}  # layer names, in torch.cat's order
MISTAKES_SHOWN = 48  # the most confident mistakes drawn in mistakes.png
CAVEAT = (
    "note: a knock-out measures how much this trained net relies on a part, not what a net trained without it"
    " would reach (that is skip_connection.py's question)"
)


def branch_slices(block):
    """{branch: its channels in the block's output}: torch.cat's order, widths from the branches' last convolutions."""
    slices, start = {}, 0
    for name, prefix in BRANCHES.items():
        width = [layer for key, layer in block.named_children() if key.startswith(prefix)][-1].out_channels
        slices[name], start = slice(start, start + width), start + width
    return slices


@contextlib.contextmanager
def hooked(blocks, hook):
    """hook on each block's forward while inside; the net is as it was afterwards, even after an error."""
    handles = [block.register_forward_hook(hook) for block in blocks] if hook else []
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def zero(channels):
    def hook(block, inputs, output):
        output = output.clone()
        output[:, channels] = 0
        return output

    return hook


def residual(block, x):  # F(x) of the lecture's ResidualBlock: conv2(relu(conv1(x)))
    return block.conv2(F.relu(block.conv1(x)))


def without_skip(block, inputs, output):
    return F.relu(residual(block, inputs[0]))


def without_residual(block, inputs, output):
    return F.relu(inputs[0])


@torch.no_grad()
def accuracy(model, loader, blocks=(), hook=None):
    """Percent of the test images classified correctly, as the scripts' test() counts, with hook on blocks' forward."""
    with hooked(blocks, hook):
        right = sum((model(images).argmax(dim=1) == labels).sum().item() for images, labels in loader)
    return 100 * right / len(loader.labels)


@torch.no_grad()
def measure(model, net, loader):
    """Per block: Inception, each branch's share of the output energy (sum of squares); ResidualNet, the median over
    the test images of |F(x)| / |x| and of the cosine of F(x) and x."""
    found = {getattr(model, name): [] for name in NETS[net]}

    def hook(block, inputs, output):
        if net == "InceptionNet":
            found[block].append(output.float().pow(2).sum(dim=(0, 2, 3)))
        else:
            x, fx = inputs[0].flatten(1).float(), residual(block, inputs[0]).flatten(1).float()
            found[block].append(
                torch.stack([fx.norm(dim=1) / x.norm(dim=1).clamp_min(1e-12), F.cosine_similarity(fx, x, dim=1)])
            )

    with hooked(found, hook):
        for images, _ in loader:
            model(images)
    named = {name: found[getattr(model, name)] for name in NETS[net]}
    if net == "InceptionNet":
        energy = {name: torch.stack(sums).sum(dim=0) for name, sums in named.items()}
        return {
            name: {b: (e[s].sum() / e.sum()).item() for b, s in branch_slices(getattr(model, name)).items()}
            for name, e in energy.items()
        }
    return {name: torch.cat(rows, dim=1).median(dim=1).values.tolist() for name, rows in named.items()}


def multiply_adds(net):
    """{block: {branch: its share of the block's multiply-adds per image}}, counted by models.layer_table."""
    table, _ = models.layer_table(getattr(models, net)(), (1, 28, 28))
    shares = {}
    for block in NETS[net]:
        per_branch = {
            b: sum(m for name, _, _, m in table if name.startswith(f"{block}.{prefix}"))
            for b, prefix in BRANCHES.items()
        }
        shares[block] = {b: m / sum(per_branch.values()) for b, m in per_branch.items()}
    return shares


def knockouts(model, net):
    """{(part, where): (the blocks, the hook)}, where is each block's name, then 'both'."""
    blocks = [getattr(model, name) for name in NETS[net]]
    parts = (
        {b: zero(s) for b, s in branch_slices(blocks[0]).items()}
        if net == "InceptionNet"  # the same slices in both
        else {"without the skip": without_skip, "without F(x)": without_residual}
    )
    return {
        (part, where): (chosen, hook)
        for part, hook in parts.items()
        for where, chosen in [*((name, [block]) for name, block in zip(NETS[net], blocks)), ("both", blocks)]
    }


def look(model, net, loader):
    """(intact accuracy, {(part, where): accuracy knocked out}, measure()); the model is left as it was."""
    training = model.training
    model.eval()
    try:
        return (
            accuracy(model, loader),
            {key: accuracy(model, loader, *value) for key, value in knockouts(model, net).items()},
            measure(model, net, loader),
        )
    finally:
        model.train(training)


def newest_run(root=RUNS):
    try:
        found = [
            os.path.join(root, name)
            for name in os.listdir(root)
            if os.path.isfile(os.path.join(root, name, "model.pt"))
        ]
    except OSError:
        found = []
    if not found:
        raise SystemExit(
            f"error: no run under {root}{os.sep} has a model.pt: train one first (python train_resnet.py),"
            " or name a run's folder"
        )
    return max(found, key=lambda folder: os.path.getmtime(os.path.join(folder, "model.pt")))


def load_run(folder):
    """(net name, the net with model.pt's weights on the CPU, the run's settings) or a one-line refusal."""
    path = os.path.join(folder, "model.pt")
    if not os.path.isdir(folder):
        what = "is a file, not" if os.path.exists(folder) else "does not exist: name"
        raise SystemExit(f"error: {folder} {what} a run's folder (e.g. runs/resnet)")
    if not os.path.isfile(path):
        raise SystemExit(
            f"error: {folder} has no model.pt: it is not a run that finished an epoch. Name another, or train one."
        )
    try:
        with open(os.path.join(folder, "settings.json"), encoding="utf-8") as f:
            settings = json.load(f)
        settings = settings if isinstance(settings, dict) else {}
    except (OSError, ValueError):  # a record for people: without it the net is told by its weights
        settings = {}
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
        net = (
            settings.get("net")
            if settings.get("net") in NETS
            else "InceptionNet"
            if "incep1.branch1x1.weight" in weights
            else "ResidualNet"
        )
        model = getattr(models, net)()
        model.load_state_dict(weights)
    except Exception as e:
        raise SystemExit(
            f"error: {path} is damaged or not the weights of a lecture-11 net ({one_line(e)}). Name another run."
        ) from None
    return net, model, settings


def run_data_dir(settings):
    """The run's own data folder (settings.json's flags), else the scripts' default."""
    data_dir = settings.get("flags", {}).get("data_dir") if isinstance(settings.get("flags"), dict) else None
    return data_dir if isinstance(data_dir, str) else "data"


def percent(value):
    return f"{value:.2f}%"


def report(net, knocked, measured):
    """The table printed: a row per branch (InceptionNet) or per block (ResidualNet), the knock-outs on the right."""
    blocks = NETS[net]
    wheres = [*blocks, "both"]
    if net == "InceptionNet":
        shares, widths = (
            multiply_adds(net),
            {b: s.stop - s.start for b, s in branch_slices(models.InceptionA(10)).items()},
        )
        lines = [
            f"{'branch':<11} {'channels':>8}  {'energy ' + ' / '.join(blocks):>22}  {'multiply-adds':>15}  zeroed in: "
            + "  ".join(f"{w:>7}" for w in wheres)
        ]
        for b in BRANCHES:
            energy = " / ".join(f"{100 * measured[block][b]:.1f}%" for block in blocks)
            madds = " / ".join(f"{100 * shares[block][b]:.0f}%" for block in blocks)
            lines.append(
                f"{b:<11} {widths[b]:>5}/88  {energy:>22}  {madds:>15}  {'':>10} "
                + "  ".join(f"{percent(knocked[b, w]):>7}" for w in wheres)
            )
        return lines
    lines = [f"{'block':<6} {'|F(x)|/|x|':>10} {'cos(F(x), x)':>13}  {'without the skip':>17} {'without F(x)':>13}"]
    for w in wheres:
        ratio, cosine = (f"{measured[w][0]:.2f}", f"{measured[w][1]:.2f}") if w in measured else ("", "")
        lines.append(
            f"{w:<6} {ratio:>10} {cosine:>13}  {percent(knocked['without the skip', w]):>17}"
            f" {percent(knocked['without F(x)', w]):>13}"
        )
    return lines


def tiles(maps):
    """(C, H, W) feature maps as one picture: 4 rows of maps, a blank line between them."""
    c, h, w = maps.shape
    columns = -(-c // 4)
    grid = torch.full((4 * (h + 1), columns * (w + 1)), float("nan"))
    for i, m in enumerate(maps.float().cpu()):
        top, left = (i // columns) * (h + 1), (i % columns) * (w + 1)
        grid[top : top + h, left : left + w] = m
    return grid.numpy()


@torch.no_grad()
def draw(model, net, digit, label, title, intact, knocked):
    """The knock-out accuracies as bars, and below them the digit as each part of the first block(s) sees it."""
    blocks, seen = NETS[net], {}

    def hook(block, inputs, output):
        seen[block] = (inputs[0][0], output[0])

    with hooked([getattr(model, name) for name in blocks], hook):
        model(digit)
    if net == "InceptionNet":
        out = seen[model.incep1][1]
        panels = [
            [(f"incep1 {b}\n{s.stop - s.start} channels", out[s]) for b, s in branch_slices(model.incep1).items()]
        ]
    else:
        panels = [
            [
                (f"{name} {what}", maps)
                for what, maps in (
                    ("x", seen[getattr(model, name)][0]),
                    ("F(x)", residual(getattr(model, name), seen[getattr(model, name)][0][None])[0]),
                    ("relu(x + F(x))", seen[getattr(model, name)][1]),
                )
            ]
            for name in blocks
        ]
    columns = len(panels[0]) + 1
    fig, axes = plt.subplot_mosaic(
        [["bars"] * columns] + [[f"digit{r}", *(f"{r}.{c}" for c in range(columns - 1))] for r in range(len(panels))],
        figsize=(2.3 * columns, 3.6 + 2.3 * len(panels)),
        height_ratios=[1.6] + [1] * len(panels),
    )
    parts, wheres = list(dict.fromkeys(part for part, _ in knocked)), [*blocks, "both"]
    low = max(0, 10 * math.floor((min(knocked.values()) - 5) / 10))  # zoomed in where the bars differ
    for i, where in enumerate(wheres):
        bars = axes["bars"].bar(
            [p + (i - 1) * 0.27 for p in range(len(parts))],
            [knocked[part, where] for part in parts],
            0.27,
            label=f"knocked out in {where}",
        )
        axes["bars"].bar_label(bars, fmt="%.2f", fontsize=6)
    axes["bars"].axhline(intact, color="0.3", linestyle="--", label=f"intact: {intact:.2f}%")
    axes["bars"].set(
        xticks=range(len(parts)),
        xticklabels=[f"without {p}" if net == "InceptionNet" else p for p in parts],
        ylabel="test accuracy (%)",
        ylim=(low, 100 + 0.18 * (100 - low)),
        title=title,
    )
    axes["bars"].legend(fontsize=7, loc="upper center", ncol=4)
    for r, row in enumerate(panels):
        if r == 0:
            axes["digit0"].imshow(digit[0, 0].cpu().numpy(), cmap="gray_r")
            axes["digit0"].set_title(f"test digit: {label}", fontsize=8)
        for c, (name, maps) in enumerate(row):
            axes[f"{r}.{c}"].imshow(tiles(maps), cmap="viridis")
            axes[f"{r}.{c}"].set_title(name, fontsize=8)
    for key, ax in axes.items():
        if key != "bars":
            ax.axis("off")
    fig.tight_layout()
    return fig


@torch.inference_mode()
def find_mistakes(model, loader):
    """The test images that model gets wrong, the most confident mistakes first: (images, labels, predicted,
    confidence), on the CPU."""
    found = []
    for images, labels in loader:
        confidence, predicted = model(images).softmax(dim=1).max(dim=1)
        wrong = predicted != labels
        found.append([t[wrong].cpu() for t in (images, labels, predicted, confidence)])
    images, labels, predicted, confidence = (torch.cat(column) for column in zip(*found))
    order = confidence.argsort(descending=True, stable=True)
    return images[order], labels[order], predicted[order], confidence[order]


def plot_mistakes(images, labels, predicted, confidence, total, title):
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
        ax.text(
            left + 14,
            top - 2,
            f"true {labels[i]}, said {predicted[i]}\n{100 * confidence[i]:.0f}% sure",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.imshow(mosaic.numpy(), cmap="gray_r")
    ax.axis("off")
    fig.suptitle(
        f"{title}: {len(labels)} of {total:,} test images wrong ({100 * len(labels) / total:.2f}%);"
        f" the {shown} most confident mistakes",
        fontsize=10,
        y=1 - 0.1 / fig.get_figheight(),
        va="top",
    )
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="look_inside.py",
        description="Knock parts out of a trained run's net and"
        " measure what each part carries; draw the digits it gets wrong.",
    )
    parser.add_argument("folder", nargs="?", help=f"a run's folder (with model.pt); none: the newest run under {RUNS}/")
    parser.add_argument("--index", type=int, default=0, help="the test digit drawn in the figure (default: 0)")
    parser.add_argument("--data-dir", help="where the run's MNIST is; default: the run's own --data-dir")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps, ... (default: auto)")
    parser.add_argument("--no-show", action="store_true", help="only save the figures, never show them")
    args = parser.parse_args(sys.argv[1:] if argv is None else [str(a) for a in argv])
    flags.check_device(parser, args.device)
    folder = os.path.normpath(args.folder) if args.folder else newest_run()
    net, model, settings = load_run(folder)
    device = devices.pick_device(args.device)
    _, test_loader = mnist_loaders(args.data_dir or run_data_dir(settings), 64, device)
    if not 0 <= args.index < len(test_loader.labels):
        parser.error(f"--index must be from 0 to {len(test_loader.labels) - 1}, got {args.index}")
    saved = settings.get("data") if isinstance(settings.get("data"), dict) else {}
    if isinstance(saved.get("test_images"), int) and saved["test_images"] != len(test_loader.labels):
        print(
            f"note: the run was tested on {saved['test_images']:,} images;"
            f" this data has {len(test_loader.labels):,} (--data-dir)"
        )
    model.to(device)
    intact, knocked, measured = look(model, net, test_loader)
    print(f"{net} of {folder}{os.sep}, on {len(test_loader.labels):,} test images: intact {percent(intact)}")
    for line in report(net, knocked, measured) + [CAVEAT]:
        print(line)
    model.eval()
    found = find_mistakes(model, test_loader)
    with plt.rc_context(figures.fonts()):  # a run folder with a Chinese name
        mistakes = plot_mistakes(*found, len(test_loader.labels), f"{net} of {folder}")
        digit = normalize(test_loader.images[args.index : args.index + 1])
        fig = draw(
            model, net, digit, int(test_loader.labels[args.index]), f"{net} of {folder}: knock-outs", intact, knocked
        )
    for figure, name in ((fig, "inside.png"), (mistakes, "mistakes.png")):
        try:
            figures.save(figure, os.path.join(folder, name))
        except OSError as e:
            raise SystemExit(f"error: cannot write {os.path.join(folder, name)}: {e.strerror or e}") from None
    plt.close(mistakes)
    print(
        f"mistakes: {len(found[1])} of {len(test_loader.labels):,} test images wrong;"
        f" {os.path.join(folder, 'mistakes.png')}"
    )
    print(f"figure: {os.path.join(folder, 'inside.png')}")
    figures.show(fig, args.no_show)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # each figure is written whole or not at all
        print("\ninterrupted", file=sys.stderr)
        raise SystemExit(130) from None
