"""An NVIDIA GPU that torch cannot use (a CPU-only torch, or a driver too old for the CUDA build) is named in one line
at the start of a run, with the fix; without an NVIDIA GPU nothing is said. A stand-in nvidia-smi on PATH plays the
GPU."""

import sys

import pytest
import torch

import train_resnet
from conftest import run_main
from helpers import device

GPU = "GPU 0: NVIDIA GeForce RTX 4060 Laptop GPU (UUID: GPU-6c1ba3f2-0c4e-4e8f-9a55-2f1e0d3b7a11)"


@pytest.fixture
def no_torch_gpu(monkeypatch):
    """torch finds no GPU, as on a laptop whose torch cannot use its own."""
    monkeypatch.setattr(device, "available", lambda: "cpu")


def path_with(tmp_path, monkeypatch, listing):
    """PATH holds only a folder with a stand-in nvidia-smi that prints listing (or no nvidia-smi if None)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    if listing is not None:
        if sys.platform == "win32":
            (folder / "nvidia-smi.bat").write_text(f"@echo {listing}\n")
        else:
            script = folder / "nvidia-smi"
            script.write_text(f"#!/bin/sh\necho '{listing}'\n")
            script.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))


def one_epoch_on_auto(mnist_dir, tmp_path):
    """(stdout, stderr) of one epoch of train_resnet.py with --device auto, which must succeed."""
    code, out, err = run_main(
        train_resnet,
        "--device",
        "auto",
        "--epochs",
        1,
        "--data-dir",
        mnist_dir,
        "--out-dir",
        tmp_path / "run",
        "--no-show",
    )
    assert code == 0, err
    return out, err


@pytest.mark.parametrize("build", ["cpu-only", "cuda"])
def test_auto_on_the_cpu_beside_an_nvidia_gpu_says_why_in_one_line_and_goes_on(
    build, no_torch_gpu, mnist_dir, tmp_path, monkeypatch
):
    path_with(tmp_path, monkeypatch, GPU)
    monkeypatch.setattr(torch.version, "cuda", None if build == "cpu-only" else "12.6")
    out, err = one_epoch_on_auto(mnist_dir, tmp_path)
    lines = out.splitlines()
    assert lines[0] == "device: cpu"
    gpu = "nvidia-smi lists GPU 0: NVIDIA GeForce RTX 4060 Laptop GPU, but torch"
    if build == "cpu-only":
        assert (
            lines[1]
            == f"note: training on the CPU: {gpu} {torch.__version__} is a CPU-only build; fix: {device.INSTALL}"
        )
        assert device.INSTALL.startswith("pip install --force-reinstall torch torchvision --index-url ")
    else:
        assert lines[1] == (
            f"note: training on the CPU: {gpu} {torch.__version__} (built for CUDA 12.6) finds no GPU;"
            " fix: update the NVIDIA driver (README: An NVIDIA GPU)"
        )
    assert lines[2].startswith("results: ") and "epoch 1: test accuracy" in out  # the run goes on, on the CPU


def test_device_cuda_beside_an_unusable_nvidia_gpu_is_a_usage_error_with_the_fix(no_torch_gpu, tmp_path, monkeypatch):
    path_with(tmp_path, monkeypatch, GPU)
    monkeypatch.setattr(torch.version, "cuda", None)
    code, out, err = run_main(
        train_resnet, "--device", "cuda", "--data-dir", tmp_path / "data", "--out-dir", tmp_path / "run"
    )
    assert code == 2 and out == ""
    assert "error: --device: 'cuda' is not available (nvidia-smi lists GPU 0: NVIDIA GeForce RTX 4060 Laptop GPU" in err
    assert f"fix: {device.INSTALL}); use --device auto or cpu" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_without_an_nvidia_gpu_nothing_is_said(no_torch_gpu, mnist_dir, tmp_path, monkeypatch):
    path_with(tmp_path, monkeypatch, None)
    out, err = one_epoch_on_auto(mnist_dir, tmp_path)
    assert out.splitlines()[0] == "device: cpu" and out.splitlines()[1].startswith("results: ")
    assert "note:" not in out and "nvidia-smi" not in out and err == ""
    (tmp_path / "other").mkdir()
    path_with(tmp_path / "other", monkeypatch, "No devices were found")  # a driver without a GPU: nothing either
    assert device.gpu_hint() is None
