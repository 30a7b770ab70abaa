"""The accelerator path (CUDA, or Apple's MPS): runs only where torch finds one, and is reported as skipped,
with the reason, elsewhere. The other tests pin the CPU."""
import pytest
import torch

import train_resnet
from conftest import run_main
from helpers import checkpoint, device

ACCELERATOR = device.accelerator()
pytestmark = pytest.mark.skipif(ACCELERATOR is None, reason="no CUDA or MPS device on this machine: the accelerator path is not tested")


def train(out, *args, mnist_dir):
    code, stdout, err = run_main(train_resnet, "--log-every", 10, "--data-dir", mnist_dir, "--out-dir", out, "--no-show", *args)
    assert code == 0, err
    return stdout


def test_one_epoch_on_the_accelerator(mnist_dir, tmp_path):
    log = train(tmp_path / "run", "--epochs", 1, "--device", "auto", mnist_dir=mnist_dir)
    assert f"device: {ACCELERATOR}" in log and "epoch 1: test accuracy" in log
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    tensors = list(saved["model"].values()) + [s["momentum_buffer"] for s in saved["optimizer"]["state"].values()]
    assert all(t.device.type == "cpu" for t in tensors)  # saved on the CPU, so it loads anywhere
    assert saved["environment"]["device"].startswith(ACCELERATOR.type)


def test_saved_on_the_accelerator_resumed_on_the_cpu_and_back(mnist_dir, tmp_path):
    out = tmp_path / "run"
    train(out, "--epochs", 1, "--device", ACCELERATOR.type, mnist_dir=mnist_dir)
    log = train(out, "--epochs", 2, "--resume", "--device", "cpu", mnist_dir=mnist_dir)
    assert "no longer bit-identical" in log and "epoch 2: test accuracy" in log
    log = train(out, "--epochs", 3, "--resume", "--device", ACCELERATOR.type, mnist_dir=mnist_dir)
    assert "no longer bit-identical" in log and "epoch 3: test accuracy" in log
    assert len(torch.load(out / "checkpoint.pt", weights_only=True)["history"]) == 3


def test_cpu_copies_move_accelerator_tensors_to_the_cpu():
    saved = checkpoint.cpu_copies({"w": torch.ones(3, device=ACCELERATOR)})
    assert saved["w"].device.type == "cpu"
