"""The lecture's own way to train, kept only as the yardstick for bench/compare.py.

The same nets (models.py) and hyperparameters as train_inception.py and train_resnet.py, fed the way
lecture 11 feeds them: torchvision's MNIST dataset with ToTensor() and Normalize() applied image by
image, a DataLoader that collates batches of 64, loss.item() after every batch, and test batches of
64. It is the comparison point, not a second way to train: use the training scripts for that.

    python bench/baseline.py --net resnet --epochs 3 --data-dir data
"""

import argparse
import os
import sys
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # models.py, from any folder
from models import InceptionNet, ResidualNet  # noqa: E402

NETS = {"inception": InceptionNet, "resnet": ResidualNet}


def train(model, loader, optimizer, criterion, device, epoch):
    running_loss = 0.0
    for batch_idx, (inputs, target) in enumerate(loader):
        inputs, target = inputs.to(device), target.to(device)
        optimizer.zero_grad()
        loss = criterion(model(inputs), target)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        if batch_idx % 300 == 299:
            print("[%d, %5d] loss: %.3f" % (epoch, batch_idx + 1, running_loss / 300))
            running_loss = 0.0


def test(model, loader, device):
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            _, predicted = torch.max(model(images).data, dim=1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return 100 * correct / total


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--net", choices=sorted(NETS), required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data-dir", default="data", help="folder that holds MNIST/raw/ (unpacked)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_set = datasets.MNIST(root=args.data_dir, train=True, download=False, transform=transform)
    test_set = datasets.MNIST(root=args.data_dir, train=False, download=False, transform=transform)
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=64, shuffle=False)

    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    model = NETS[args.net]().to(device)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.train()
        train(model, train_loader, optimizer, criterion, device, epoch)
        model.eval()
        accuracy = test(model, test_loader, device)
        print(f"epoch {epoch}: test accuracy {accuracy:.2f}%  ({time.perf_counter() - start:.1f} s)", flush=True)
    print(f"final test accuracy {accuracy:.2f}%")


if __name__ == "__main__":
    main()
