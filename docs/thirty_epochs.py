"""The lecture's 30-epoch question, from run folders: docs/thirty_epochs.png and the numbers in the README.

    for seed in 0 1 2; do
      python train_resnet.py --seed $seed --epochs 30 --out-dir runs/resnet-s$seed --no-show
      python train_inception.py --seed $seed --epochs 30 --out-dir runs/inception-s$seed --no-show
    done
    python docs/thirty_epochs.py runs      # reads runs/{inception,resnet}-s*/metrics.csv

A folder that already holds a 10-epoch run of that seed goes on with `--epochs 30 --resume` instead,
to the same result. The README's numbers come from runs made this way with OMP_NUM_THREADS=1.

For each net: the mean test accuracy per epoch over the seeds, the band from the lowest to the highest
seed, the mean and spread after 10 and 30 epochs, and the first epoch from which every seed, and the
mean, stay at or above 99%.
"""

import glob
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers.comparison import read_metrics  # noqa: E402

NETS = {"inception": "InceptionNet", "resnet": "ResidualNet"}


def first_epoch_staying_above(accuracies, bar=99.0):
    """The first epoch from which every later accuracy is >= bar, or None."""
    for start in range(len(accuracies)):
        if all(a >= bar for a in accuracies[start:]):
            return start + 1
    return None


def main(root, out=None):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (key, name) in zip(axes, NETS.items()):
        folders = sorted(glob.glob(os.path.join(root, f"{key}-s*")))
        runs = {os.path.basename(f): [row[2] for row in read_metrics(f)] for f in folders}
        length = min(len(acc) for acc in runs.values())
        per_epoch = list(zip(*(acc[:length] for acc in runs.values())))
        mean = [sum(a) / len(a) for a in per_epoch]
        epochs = range(1, length + 1)
        ax.fill_between(
            epochs,
            [min(a) for a in per_epoch],
            [max(a) for a in per_epoch],
            alpha=0.25,
            label=f"lowest to highest of {len(runs)} seeds",
        )
        ax.plot(epochs, mean, marker="o", markersize=3, label="mean")
        ax.axhline(99, color="gray", linestyle="--", linewidth=1)
        ax.set(title=f"{name}, {len(runs)} seeds, {length} epochs", xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        print(f"{name}: seeds {', '.join(runs)}")
        for at in (10, 30):
            if at <= length:
                values = per_epoch[at - 1]
                print(
                    f"  after {at} epochs: mean {sum(values) / len(values):.2f}%,"
                    f" lowest {min(values):.2f}%, highest {max(values):.2f}%"
                    f"  ({', '.join(f'{v:.2f}' for v in values)})"
                )
        for label, series in [("mean", mean)] + list(runs.items()):
            first = first_epoch_staying_above(series)
            print(
                f"  {label}: at or above 99% from epoch {first} on"
                if first
                else f"  {label}: never stays at or above 99%"
            )
        best = max(range(length), key=mean.__getitem__)
        print(f"  best mean {mean[best]:.2f}% at epoch {best + 1}")
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_ylim(96.3, 99.5)
    fig.tight_layout()
    out = out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "thirty_epochs.png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"figure: {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs")
