"""The accelerator path (CUDA, or Apple's MPS): runs only where torch finds one, and is reported as skipped, with the
reason, elsewhere. The other tests pin the CPU."""

import pytest
import torch

import train_resnet
from conftest import run_main, train
from helpers import device

ACCELERATOR = device.available()
pytestmark = pytest.mark.skipif(
    ACCELERATOR == "cpu", reason="no CUDA or MPS device on this machine: the accelerator path is not tested here"
)


def test_one_epoch_on_the_accelerator_saves_a_checkpoint_that_loads_anywhere(mnist_dir, tmp_path):
    code, log, err = run_main(
        train_resnet,
        "--epochs",
        1,
        "--device",
        "auto",
        "--data-dir",
        mnist_dir,
        "--out-dir",
        tmp_path / "run",
        "--no-show",
    )
    assert code == 0, err
    assert f"device: {ACCELERATOR}" in log and "epoch 1: test accuracy" in log
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert saved["record"]["device"].startswith(ACCELERATOR)


def test_saved_on_the_accelerator_resumed_on_the_cpu_and_back(mnist_dir, tmp_path):
    out = tmp_path / "run"
    train(train_resnet, out, "--epochs", 1, "--device", ACCELERATOR, mnist_dir=mnist_dir)
    log = train(train_resnet, out, "--epochs", 2, "--resume", out, "--device", "cpu", mnist_dir=mnist_dir)
    assert "epoch 2: test accuracy" in log
    log = train(train_resnet, out, "--epochs", 3, "--resume", out, "--device", ACCELERATOR, mnist_dir=mnist_dir)
    assert "epoch 3: test accuracy" in log
    assert len(torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["history"]) == 3
