"""The lecture's own DataLoader slots into a script: replace the line that calls mnist_loaders() by the
lecture's DataLoaders (ToTensor, Normalize, shuffle=True), change nothing else, and the script trains,
saves, plots and resumes."""
import hashlib
import importlib.util
import re

import pytest
import torch
from torch.utils.data import random_split
from torchvision import datasets

import train_resnet
from conftest import ROOT, assert_same_results, train

LINE = "        train_loader, test_loader = mnist_loaders(args.data_dir, args.batch_size, device, seed=args.seed)\n"
LECTURE = """\
        from torch.utils.data import DataLoader
        from torchvision import datasets, transforms
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        train_dataset = datasets.MNIST(root=args.data_dir, train=True, download=True, transform=transform)
        train_loader = DataLoader(train_dataset, shuffle=True, batch_size=args.batch_size)
        test_dataset = datasets.MNIST(root=args.data_dir, train=False, download=True, transform=transform)
        test_loader = DataLoader(test_dataset, shuffle=False, batch_size=args.batch_size)
"""


# A learner's own variations on it: a validation split cut off with random_split, a Dataset written as in lecture 8.
OWN = """\
        from torch.utils.data import DataLoader, Dataset, random_split
        from torchvision import datasets, transforms
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        full = datasets.MNIST(root=args.data_dir, train=True, download=True, transform=transform)

        class MNISTDataset(Dataset):
            def __init__(self, samples):
                self.samples = samples

            def __len__(self):
                return len(self.samples)

            def __getitem__(self, index):
                return self.samples[index]

        train_dataset = random_split(full, [1500, 500])[0] if SPLIT else MNISTDataset(full)
        train_loader = DataLoader(train_dataset, shuffle=True, batch_size=args.batch_size)
        test_dataset = datasets.MNIST(root=args.data_dir, train=False, download=True, transform=transform)
        test_loader = DataLoader(test_dataset if SPLIT else MNISTDataset(test_dataset), batch_size=args.batch_size)
"""


def with_the_lectures_loaders(tmp_path, code=LECTURE, name="train_resnet_dataloader"):
    """train_resnet.py with that one line replaced, loaded as a module of its own."""
    source = (ROOT / "train_resnet.py").read_text(encoding="utf-8")
    assert source.count(LINE) == 1  # the line a learner replaces is there, as the README shows it
    path = tmp_path / f"{name}.py"
    path.write_text(source.replace(LINE, code), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lectures_dataloader_trains_saves_and_plots(mnist_dir, tmp_path):
    lecture = with_the_lectures_loaders(tmp_path)
    log = train(lecture, tmp_path / "lecture", "--epochs", 1, mnist_dir=mnist_dir)
    assert "ResidualNet: 41,514 parameters, 2,000 training images" in log and "[1,    30] loss: " in log
    accuracy = re.search(r"epoch 1: test accuracy (\d+\.\d\d)%", log).group(1)
    for name in ("accuracy.png", "mistakes.png"):
        assert (tmp_path / "lecture" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "lecture" / "metrics.csv").read_text().splitlines()[1].split(",")[2] == accuracy
    model = train_resnet.NET()
    model.load_state_dict(torch.load(tmp_path / "lecture" / "model.pt", weights_only=True))
    mistakes = int(re.search(r"mistakes: (\d+) of 500 test images wrong after epoch 1", log).group(1))
    assert mistakes == round(500 * (1 - float(accuracy) / 100))
    # The same images and labels as mnist_loaders() gives: the run's data fingerprint is the same.
    train(train_resnet, tmp_path / "ours", "--epochs", 1, mnist_dir=mnist_dir)
    checkpoints = [torch.load(tmp_path / run / "checkpoint.pt", weights_only=True) for run in ("lecture", "ours")]
    assert checkpoints[0]["settings"]["data"] == checkpoints[1]["settings"]["data"]


@pytest.mark.slow
def test_a_dataloader_run_resumes_bit_for_bit(mnist_dir, tmp_path):
    """Its shuffling draws from torch's global generator, which the checkpoint saves."""
    lecture = with_the_lectures_loaders(tmp_path)
    train(lecture, tmp_path / "whole", "--epochs", 2, mnist_dir=mnist_dir)
    train(lecture, tmp_path / "resumed", "--epochs", 1, mnist_dir=mnist_dir)
    log = train(lecture, tmp_path / "resumed", "--epochs", 2, "--resume", mnist_dir=mnist_dir)
    assert "resuming: epoch 1 done" in log
    assert_same_results(tmp_path / "resumed", tmp_path / "whole")


def test_a_split_or_a_dataset_of_ones_own_trains_and_resumes(mnist_dir, tmp_path):
    split = with_the_lectures_loaders(tmp_path, OWN, "train_split")
    split.SPLIT = True
    log = train(split, tmp_path / "split", "--epochs", 1, mnist_dir=mnist_dir)
    assert "1,500 training images" in log and "epoch 1: test accuracy" in log
    data = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["settings"]["data"]
    torch.manual_seed(0)  # random_split's draw, as in the script
    full = datasets.MNIST(mnist_dir, train=True)
    labels = torch.cat([full.targets[random_split(full, [1500, 500])[0].indices], datasets.MNIST(mnist_dir, train=False).targets])
    assert data == {"train_images": 1500, "test_images": 500, "labels_sha256": hashlib.sha256(labels.numpy().tobytes()).hexdigest()[:16]}
    own = with_the_lectures_loaders(tmp_path, OWN, "train_own")
    own.SPLIT = False
    train(own, tmp_path / "own", "--epochs", 1, mnist_dir=mnist_dir)
    data = torch.load(tmp_path / "own" / "checkpoint.pt", weights_only=True)["settings"]["data"]
    assert data == {"train_images": 2000, "test_images": 500, "labels_sha256": None}  # its labels are not read through
    log = train(own, tmp_path / "own", "--epochs", 2, "--resume", mnist_dir=mnist_dir)
    assert "resuming: epoch 1 done" in log and "epoch 2: test accuracy" in log
