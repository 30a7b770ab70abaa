"""Look inside a trained run: which InceptionA branch and which residual path does the work.

    python look_inside.py                     # the newest run under runs/ that has a model.pt
    python look_inside.py runs/inception --index 7 --device cpu

The run's own weights meet its own test images, and parts of the net are knocked out one at a time by forward hooks,
removed afterwards (the lesson's forward() is never changed); each net's probe below says what it knocks out and
measures. inside.png in the run's folder draws the knock-outs and one test digit as each part sees it; mistakes.png,
the test digits the net gets wrong, the most confident first.
"""

import argparse
import contextlib
import glob
import math
import os
import sys
import types

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import models
from data import mnist_loaders, normalize
from helpers import device as devices
from helpers import figures, flags, record
from helpers.store import one_line
from train_resnet import test  # the lesson's own

RUNS = "runs"
MISTAKES_SHOWN = 48  # the most confident mistakes drawn in mistakes.png
CAVEAT = (
    "note: a knock-out measures how much this trained net relies on a part, not what a net trained without it"
    " would reach (that is skip_connection.py's question)"
)


# --- the probes: for each net, what is knocked out, what is measured, its table and its panels --------------------


class Probe:
    """One net's probe: its blocks, and the forward hooks that knock a part out of a block or measure it."""

    LABEL = "{}"  # a knocked-out part's name under its bars

    def __init__(self, model):
        self.model, self.fx = model, {}

    def watch(self):
        """(layer, hook) pairs that the knock-outs and measurements need on while the net runs."""
        return []


class Inception(Probe):
    """InceptionNet: each branch's output set to zero; measured, its share of the block's output energy (the sum of
    squares over the test images) and of the block's multiply-adds."""

    blocks, LABEL = ("incep1", "incep2"), "without {}"
    BRANCHES = {"1x1": "branch1x1", "5x5": "branch5x5", "3x3 -> 3x3": "branch3x3", "pool": "branch_pool"}

    def __init__(self, model):
        super().__init__(model)
        # Each branch's channels in the block's output: torch.cat's order, widths from the branches' last layers.
        self.channels, start, device = {}, 0, next(model.parameters()).device
        for branch, prefix in self.BRANCHES.items():
            width = [layer for name, layer in model.incep1.named_children() if name.startswith(prefix)][-1].out_channels
            self.channels[branch], start = torch.arange(start, start + width, device=device), start + width

    def knockouts(self):
        return {b: lambda block, inputs, output, c=c: output.index_fill(1, c, 0) for b, c in self.channels.items()}

    def measure(self, loader):
        found = collect(self, loader, lambda block, inputs, output: output.float().pow(2).sum((0, 2, 3)))
        energy = {name: sum(rows) for name, rows in found.items()}  # per channel, summed over the test images
        return {
            name: {b: (e[c].sum() / e.sum()).item() for b, c in self.channels.items()} for name, e in energy.items()
        }

    def multiply_adds(self):
        """{block: {branch: its share of the block's multiply-adds per image}}, counted by models.layer_table."""
        table, _ = models.layer_table(type(self.model)(), (1, 28, 28))
        shares = {}
        for block in self.blocks:
            counts = {
                b: sum(m for n, _, _, m in table if n.startswith(f"{block}.{p}")) for b, p in self.BRANCHES.items()
            }
            shares[block] = {b: m / sum(counts.values()) for b, m in counts.items()}
        return shares

    def table(self, knocked, measured):
        shares, wheres, total = self.multiply_adds(), [*self.blocks, "both"], sum(map(len, self.channels.values()))
        head = f"{'branch':<11} {'channels':>8}  {'energy ' + ' / '.join(self.blocks):>22}  {'multiply-adds':>15}"
        lines = [f"{head}  zeroed in: " + "  ".join(f"{w:>7}" for w in wheres)]
        for b, c in self.channels.items():
            energy = " / ".join(f"{100 * measured[block][b]:.1f}%" for block in self.blocks)
            madds = " / ".join(f"{100 * shares[block][b]:.0f}%" for block in self.blocks)
            knocks = "  ".join(f"{knocked[b, w]:>6.2f}%" for w in wheres)
            lines.append(f"{b:<11} {len(c):>5}/{total}  {energy:>22}  {madds:>15}  {'':>10} {knocks}")
        return lines

    def panels(self, digit):
        """One row: the digit as each branch of the first block passes it on."""
        _, out = seen(self, digit)["incep1"]
        return [[(f"incep1 {b}\n{len(c)} channels", out[c]) for b, c in self.channels.items()]]


class Residual(Probe):
    """ResidualNet: each block without its skip, relu(F(x)), and without F, relu(x); measured, |F(x)| / |x| and the
    cosine of F(x) and x, medians over the test images. F(x) is what the block computes before x is added: the
    output of the last layer its forward() calls, as ResidualBlock is written now (conv2 in the lecture's)."""

    blocks = ("res1", "res2")

    def watch(self):
        return [
            (layer, lambda layer, inputs, output, block=block: self.fx.update({block: output}))
            for block in (getattr(self.model, name) for name in self.blocks)
            for layer in block.children()
        ]

    def knockouts(self):
        return {
            "without the skip": lambda block, inputs, output: F.relu(self.fx[block]),
            "without F(x)": lambda block, inputs, output: F.relu(inputs[0]),
        }

    def measure(self, loader):
        def ratio_and_cosine(block, inputs, output):
            x, fx = inputs[0].flatten(1).float(), self.fx[block].flatten(1).float()
            return torch.stack([fx.norm(dim=1) / x.norm(dim=1).clamp_min(1e-12), F.cosine_similarity(fx, x, dim=1)])

        found = collect(self, loader, ratio_and_cosine)
        return {name: torch.cat(rows, dim=1).median(dim=1).values.tolist() for name, rows in found.items()}

    def table(self, knocked, measured):
        lines = [f"{'block':<6} {'|F(x)|/|x|':>10} {'cos(F(x), x)':>13}  {'without the skip':>17} {'without F(x)':>13}"]
        for w in [*self.blocks, "both"]:
            ratio, cosine = (f"{measured[w][0]:.2f}", f"{measured[w][1]:.2f}") if w in measured else ("", "")
            skip, fx = (f"{knocked[part, w]:.2f}%" for part in self.knockouts())
            lines.append(f"{w:<6} {ratio:>10} {cosine:>13}  {skip:>17} {fx:>13}")
        return lines

    def panels(self, digit):
        """A row per block: the digit as x, as F(x) and as the block's output, relu(x + F(x))."""
        inside = seen(self, digit)
        fx = {name: self.fx[getattr(self.model, name)][0] for name in self.blocks}
        return [
            [(f"{name} x", x), (f"{name} F(x)", fx[name]), (f"{name} relu(x + F(x))", out)]
            for name, (x, out) in inside.items()
        ]


PROBES = {"InceptionNet": Inception, "ResidualNet": Residual}


# --- the steps the probes share: hooks, the accuracy count, the knock-outs, what the blocks see ---------------------


def hooked(pairs):
    """Each (module, hook) on the module's forward while inside; the net as it was afterwards, even after an error."""
    hooks = contextlib.ExitStack()
    for module, hook in pairs:
        hooks.enter_context(module.register_forward_hook(hook))
    return hooks


def accuracy(model, loader, pairs=()):
    """Percent of the test images classified correctly, by the scripts' own test(), with the hooks of pairs on."""
    with hooked(pairs):
        return test(model, loader.labels.device, loader)


def look(probe, loader):
    """(intact accuracy, {(part, where): accuracy with part knocked out}, the probe's measurements), where is each
    block, then both; the model is left as it was."""
    model, training = probe.model, probe.model.training
    blocks = {name: [getattr(model, name)] for name in probe.blocks}
    blocks["both"] = [block for chosen in blocks.values() for block in chosen]
    model.eval()
    try:
        knocked = {
            (part, where): accuracy(model, loader, [*probe.watch(), *((block, hook) for block in chosen)])
            for part, hook in probe.knockouts().items()
            for where, chosen in blocks.items()
        }
        return accuracy(model, loader), knocked, probe.measure(loader)
    finally:
        model.train(training)


@torch.no_grad()
def collect(probe, loader, measure):
    """{block: [measure(block, inputs, output) for each batch of the loader's images]}, the probe's watch on."""
    found = {name: [] for name in probe.blocks}
    keep = [(getattr(probe.model, n), lambda *call, n=n: found[n].append(measure(*call))) for n in probe.blocks]
    with hooked([*probe.watch(), *keep]):
        for images, _ in loader:
            probe.model(images)
    return found


def seen(probe, digit):
    """{block: (its input, its output)} for one digit, the probe's watch on."""
    found = collect(probe, [(digit, None)], lambda block, inputs, output: (inputs[0][0], output[0]))
    return {name: rows[0] for name, rows in found.items()}


# --- the run, the figures and the command -----------------------------------------------------------------------------


def newest_run(root=RUNS):
    """The run under root whose model.pt was written last."""
    found = glob.glob(os.path.join(glob.escape(root), "*", "model.pt"))
    if not found:
        first = "train one first (python train_resnet.py), or name a run's folder"
        raise SystemExit(f"error: no run under {root}{os.sep} has a model.pt: {first}")
    return os.path.dirname(max(found, key=os.path.getmtime))


def load_run(folder):
    """(net name, the net with model.pt's weights on the CPU, the run's record of what ran) or a one-line refusal."""
    path = os.path.join(folder, "model.pt")
    if not os.path.isdir(folder):
        what = "is a file, not" if os.path.exists(folder) else "does not exist: name"
        raise SystemExit(f"error: {folder} {what} a run's folder (e.g. runs/resnet)")
    if not os.path.isfile(path):
        what = "it is not a run that finished an epoch. Name another, or train one."
        raise SystemExit(f"error: {folder} has no model.pt: {what}")
    saved = {}  # its data folder, test images and models.py; without a checkpoint.pt, the scripts' and models.py
    with contextlib.suppress(Exception):
        saved = torch.load(os.path.join(folder, "checkpoint.pt"), map_location="cpu", weights_only=True)["record"]
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
        net = "InceptionNet" if "incep1.branch1x1.weight" in weights else "ResidualNet"
        model = getattr(run_models(folder, saved.get("code", {}).get("models.py")), net)()
        model.load_state_dict(weights)
    except Exception as e:
        why = f"{path} is damaged or not the weights of a lecture-11 net ({one_line(e)})"
        raise SystemExit(f"error: {why}. Name another run.") from None
    return net, model, saved


def run_models(folder, code):
    """models.py as the run trained with it (code, from its checkpoint.pt) where the file has changed since, as after
    the README's ResidualBlock edit, said in a note; else models.py as it is."""
    if code is None or code == record.source(models.__file__):
        return models
    print(f"note: models.py changed since {folder} ran; its net is built from the models.py it trained with")
    module = types.ModuleType("models")
    exec(compile(code, f"{folder}/checkpoint.pt: models.py", "exec"), module.__dict__)
    return module


def tiles(maps):
    """(C, H, W) feature maps as one picture: 4 rows of maps, a blank line between them."""
    c, h, w = maps.shape
    columns = -(-c // 4)
    grid = F.pad(maps.float().cpu(), (0, 1, 0, 1, 0, 4 * columns - c), value=float("nan"))
    return grid.view(4, columns, h + 1, w + 1).permute(0, 2, 1, 3).reshape(4 * (h + 1), columns * (w + 1)).numpy()


def draw(probe, digit, label, title, intact, knocked):
    """The knock-out accuracies as bars, and below them the probe's panels: the digit as each part sees it."""
    panels = probe.panels(digit)
    columns, rows = len(panels[0]) + 1, len(panels)
    grid = [["bars"] * columns] + [[f"digit{r}", *(f"{r}.{c}" for c in range(columns - 1))] for r in range(rows)]
    fig, axes = plt.subplot_mosaic(grid, figsize=(2.3 * columns, 3.6 + 2.3 * rows), height_ratios=[1.6] + [1] * rows)
    bars, parts = axes.pop("bars"), list(dict.fromkeys(part for part, _ in knocked))
    for i, where in enumerate([*probe.blocks, "both"]):
        heights, x = [knocked[part, where] for part in parts], [p + (i - 1) * 0.27 for p in range(len(parts))]
        bars.bar_label(bars.bar(x, heights, 0.27, label=f"knocked out in {where}"), fmt="%.2f", fontsize=6)
    bars.axhline(intact, color="0.3", linestyle="--", label=f"intact: {intact:.2f}%")
    low = max(0, 10 * math.floor((min(knocked.values()) - 5) / 10))  # zoomed in where the bars differ
    bars.set(xticks=range(len(parts)), xticklabels=[probe.LABEL.format(part) for part in parts], title=title)
    bars.set(ylabel="test accuracy (%)", ylim=(low, 100 + 0.18 * (100 - low)))
    bars.legend(fontsize=7, loc="upper center", ncol=4)
    axes["digit0"].imshow(digit[0, 0].cpu().numpy(), cmap="gray_r")
    axes["digit0"].set_title(f"test digit: {label}", fontsize=8)
    for r, row in enumerate(panels):
        for c, (name, maps) in enumerate(row):
            axes[f"{r}.{c}"].imshow(tiles(maps), cmap="viridis")
            axes[f"{r}.{c}"].set_title(name, fontsize=8)
    for ax in axes.values():
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
        caption = f"true {labels[i]}, said {predicted[i]}\n{100 * confidence[i]:.0f}% sure"
        ax.text(left + 14, top - 2, caption, ha="center", va="bottom", fontsize=8)
    ax.imshow(mosaic.numpy(), cmap="gray_r")
    ax.axis("off")
    title = f"{title}: {len(labels)} of {total:,} test images wrong ({100 * len(labels) / total:.2f}%);"
    fig.suptitle(f"{title} the {shown} most confident mistakes", fontsize=10, y=1 - 0.1 / fig.get_figheight(), va="top")
    return fig


def main(argv=None):
    what = "Knock parts out of a trained run's net and measure what each part carries; draw the digits it gets wrong."
    parser = argparse.ArgumentParser(prog="look_inside.py", description=what)
    parser.add_argument("folder", nargs="?", help=f"a run's folder (with model.pt); none: the newest run under {RUNS}/")
    parser.add_argument("--index", type=int, default=0, help="the test digit drawn in the figure (default: 0)")
    parser.add_argument("--data-dir", help="where the run's MNIST is; default: the run's own --data-dir")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps, ... (default: auto)")
    parser.add_argument("--no-show", action="store_true", help="only save the figures, never show them")
    args = parser.parse_args(sys.argv[1:] if argv is None else [str(a) for a in argv])
    flags.check_device(parser, args.device)
    folder = os.path.normpath(args.folder) if args.folder else newest_run()
    net, model, saved = load_run(folder)
    device = devices.pick_device(args.device)
    # The run's own data folder, else the scripts' default.
    _, test_loader = mnist_loaders(args.data_dir or saved.get("flags", {}).get("data_dir", "data"), 64, device)
    total = len(test_loader.labels)
    if not 0 <= args.index < total:
        parser.error(f"--index must be from 0 to {total - 1}, got {args.index}")
    if (tested := saved.get("data", {}).get("test_images", total)) != total:
        print(f"note: the run was tested on {tested:,} images; this data has {total:,} (--data-dir)")
    # In the memory format the run tested it in: the counts match the run's own test() to the image.
    probe = PROBES[net](model.to(device, memory_format=devices.memory_format(device)))
    intact, knocked, measured = look(probe, test_loader)
    print(f"{net} of {folder}{os.sep}, on {total:,} test images: intact {intact:.2f}%")
    print(*probe.table(knocked, measured), CAVEAT, sep="\n")
    found = find_mistakes(model.eval(), test_loader)
    with plt.rc_context(figures.fonts()):  # a run folder with a Chinese name
        mistakes = plot_mistakes(*found, total, f"{net} of {folder}")
        digit, label = normalize(test_loader.images[args.index : args.index + 1]), int(test_loader.labels[args.index])
        fig = draw(probe, digit, label, f"{net} of {folder}: knock-outs", intact, knocked)
    try:  # a figure that cannot be written ends the command: neither is left open (a notebook would draw it)
        for figure, name in ((fig, "inside.png"), (mistakes, "mistakes.png")):
            figures.save(figure, os.path.join(folder, name))
    finally:
        plt.close(mistakes)
    print(f"mistakes: {len(found[1])} of {total:,} test images wrong; {os.path.join(folder, 'mistakes.png')}")
    print(f"figure: {os.path.join(folder, 'inside.png')}")
    figures.show(fig, args.no_show)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # each figure is written whole or not at all
        print("\ninterrupted", file=sys.stderr)
        raise SystemExit(130) from None
