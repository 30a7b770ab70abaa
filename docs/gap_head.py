"""The lecture's claim about GoogLeNet's head, measured: global average pooling instead of a big fully connected layer
"reduces the parameters and prevents overfitting". docs/gap_head.md shows the result.

    python docs/gap_head.py                      # 10 epochs of each head, seed 0 (minutes on a CPU)
    python docs/gap_head.py --epochs 3 --device cuda

Both nets are the lecture's InceptionNet; only the head differs. The lecture's flattens the second InceptionA
block's 88 x 4 x 4 output into Linear(1408, 10); the GAP head averages each of the 88 channels over its 4 x 4
positions into Linear(88, 10). Same seed, same batches (the data order's own generator), train_inception.py's
train() and test(). Printed: a markdown table of parameters, test accuracy per epoch and final accuracy, and the
last training loss; drawn: both accuracy curves (--out).
"""

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import helpers  # noqa: E402
from data import mnist_loaders  # noqa: E402
from models import InceptionA, InceptionNet, count_parameters  # noqa: E402
from train_inception import test, train  # noqa: E402


class GapInceptionNet(InceptionNet):
    """InceptionNet with GoogLeNet's head: global average pooling, then Linear(88, 10)."""

    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.Linear(InceptionA.out_channels, 10)

    def forward(self, x):
        x = torch.nn.functional.relu(self.mp(self.conv1(x)))
        x = self.incep1(x)
        x = torch.nn.functional.relu(self.mp(self.conv2(x)))
        x = self.incep2(x)
        return self.l1(x.mean(dim=(2, 3)))  # one number per channel: the average over its 4 x 4 positions


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "gap_head.png"))
    args = parser.parse_args()
    device = helpers.pick_device(args.device)
    results = {}
    for name, net in (("lecture: flatten + Linear(1408, 10)", InceptionNet), ("GAP + Linear(88, 10)", GapInceptionNet)):
        torch.manual_seed(args.seed)
        train_loader, test_loader = mnist_loaders(args.data_dir, 64, device, seed=args.seed)
        model = net().to(device, memory_format=helpers.memory_format(device))
        criterion = torch.nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
        accuracies = []
        for epoch in range(1, args.epochs + 1):
            loss = train(model, device, train_loader, optimizer, criterion, epoch, log_every=10**9)
            accuracies.append(test(model, device, test_loader))
            print(f"{name}, epoch {epoch}: train loss {loss:.4f}, test accuracy {accuracies[-1]:.2f}%", flush=True)
        results[name] = (count_parameters(model), accuracies, loss)
    print(f"\n| head | parameters | {' | '.join(f'epoch {e}' for e in range(1, args.epochs + 1))} | last train loss |")
    print(f"|---|---:|{'---:|' * args.epochs}---:|")
    for name, (params, accuracies, loss) in results.items():
        print(f"| {name} | {params:,} | {' | '.join(f'{a:.2f}%' for a in accuracies)} | {loss:.4f} |")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, (params, accuracies, _) in results.items():
        ax.plot(
            range(1, args.epochs + 1),
            accuracies,
            marker="o",
            label=f"{name}: {params:,} parameters, final {accuracies[-1]:.2f}%",
        )
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"InceptionNet's head on MNIST (seed {args.seed})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
