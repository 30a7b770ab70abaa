"""The lecture's own DataLoader slots into a script: replace the line that calls mnist_loaders() by the lecture's
DataLoaders (ToTensor, Normalize, shuffle=True), change nothing else, and the script trains, saves, plots, resumes."""

import re

import pytest
import torch

import models
from conftest import ROOT, assert_same_results, edited, load_script, train

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


@pytest.fixture
def lecture(tmp_path):
    """train_resnet.py with that one line replaced, as the README and docs/performance.md show it."""
    assert (ROOT / "docs" / "performance.md").read_text(encoding="utf-8").count(LECTURE) == 1
    return load_script(edited(tmp_path, "train_resnet.py", (LINE, LECTURE)), "train_resnet_dataloader")


def test_the_lectures_dataloader_trains_saves_and_plots(lecture, mnist_dir, tmp_path):
    log = train(lecture, tmp_path / "lecture", "--epochs", 1, mnist_dir=mnist_dir)
    assert "ResidualNet: 41,514 parameters, 320 training images" in log and "[1,     5] loss: " in log
    accuracy = re.search(r"epoch 1: test accuracy (\d+\.\d\d)%", log).group(1)
    assert (tmp_path / "lecture" / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "lecture" / "metrics.csv").read_text().splitlines()[1].split(",")[2] == accuracy
    model = models.ResidualNet()
    model.load_state_dict(torch.load(tmp_path / "lecture" / "model.pt", weights_only=True))
    record = torch.load(tmp_path / "lecture" / "checkpoint.pt", weights_only=True)["record"]
    # The data the run used, and the lesson files: data.py is not among them (torch's DataLoader fed it).
    assert record["data"] == {"training_images": 320, "test_images": 80}
    assert (
        list(record["code"]) == ["train_resnet.py", "models.py"]
        and "DataLoader(train_dataset" in record["code"]["train_resnet.py"]
    )


@pytest.mark.slow
def test_a_dataloader_run_resumes_bit_for_bit(lecture, mnist_dir, tmp_path):
    """Its shuffling draws from torch's global generator, which the checkpoint saves."""
    train(lecture, tmp_path / "whole", "--epochs", 2, mnist_dir=mnist_dir)
    train(lecture, tmp_path / "resumed", "--epochs", 1, mnist_dir=mnist_dir)
    log = train(lecture, tmp_path / "resumed", "--epochs", 2, "--resume", tmp_path / "resumed", mnist_dir=mnist_dir)
    assert "resuming: epoch 1 done" in log
    assert_same_results(tmp_path / "resumed", tmp_path / "whole")
