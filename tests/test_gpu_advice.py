"""An NVIDIA GPU that torch cannot use (a CPU-only torch, or a driver too old for the CUDA build) is named
at the start of a run, with the fix; without an NVIDIA GPU nothing is said. A stand-in nvidia-smi on PATH
plays the GPU."""
import os
import sys

import pytest
import torch

import train_resnet
from conftest import run_main
from helpers import device

GPU = "GPU 0: NVIDIA GeForce RTX 4060 Laptop GPU (UUID: GPU-6c1ba3f2-0c4e-4e8f-9a55-2f1e0d3b7a11)"


@pytest.fixture
def no_torch_gpu(monkeypatch):
    """torch finds no accelerator, as on a laptop whose torch cannot use its GPU."""
    monkeypatch.setattr(device, "accelerator", lambda: None)


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


@pytest.mark.parametrize("build", ["cpu-only", "cuda"])
def test_auto_on_the_cpu_beside_an_nvidia_gpu_says_why_and_goes_on(build, no_torch_gpu, mnist_dir, tmp_path, monkeypatch):
    path_with(tmp_path, monkeypatch, GPU)
    monkeypatch.setattr(torch.version, "cuda", None if build == "cpu-only" else "12.6")
    code, out, err = run_main(train_resnet, "--device", "auto", "--epochs", 1, "--data-dir", mnist_dir, "--out-dir", tmp_path / "run",
                              "--no-show")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1] == "device: cpu"
    assert lines[2] == ("note: training on the CPU: nvidia-smi lists GPU 0: NVIDIA GeForce RTX 4060 Laptop GPU, but the installed"
                        f" torch {torch.__version__} " + ("is a CPU-only build (pip's default on Windows)." if build == "cpu-only"
                                                          else "is built for CUDA 12.6 and finds no CUDA device."))
    fix = lines[3]
    if build == "cpu-only":
        assert fix == f"  fix: install a CUDA build of torch with the command from {device.SELECTOR}, for CUDA 12.6: {device.INSTALL}"
    else:
        assert fix.startswith("  fix: update the NVIDIA driver") and fix.endswith(f"an older CUDA with the command from {device.SELECTOR}")
    assert lines[4] == f"  then check: {device.CHECK} prints True"
    assert "epoch 1: test accuracy" in out  # the run goes on, on the CPU


def test_device_cuda_beside_an_unusable_nvidia_gpu_is_a_usage_error_with_the_fix(no_torch_gpu, tmp_path, monkeypatch):
    path_with(tmp_path, monkeypatch, GPU)
    monkeypatch.setattr(torch.version, "cuda", None)
    code, out, err = run_main(train_resnet, "--device", "cuda", "--data-dir", tmp_path / "data", "--out-dir", tmp_path / "run")
    assert code == 2 and out == ""
    assert "error: --device: 'cuda' is not available: nvidia-smi lists GPU 0: NVIDIA GeForce RTX 4060 Laptop GPU" in err
    assert f"fix: install a CUDA build of torch with the command from {device.SELECTOR}, for CUDA 12.6: {device.INSTALL}" in err
    assert "this machine has no accelerator" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_without_an_nvidia_gpu_nothing_is_said(no_torch_gpu, mnist_dir, tmp_path, monkeypatch):
    path_with(tmp_path, monkeypatch, None)
    code, out, err = run_main(train_resnet, "--device", "auto", "--epochs", 1, "--data-dir", mnist_dir, "--out-dir", tmp_path / "run",
                              "--no-show")
    assert code == 0, err
    assert out.splitlines()[1:3] == ["device: cpu", "ResidualNet: 41,514 parameters, 2,000 training images"]
    assert "note:" not in out and "nvidia-smi" not in out and err == ""
    code, _, err = run_main(train_resnet, "--device", "cuda", "--data-dir", tmp_path / "data", "--out-dir", tmp_path / "run2")
    assert code == 2 and "'cuda' is not available (this machine has no accelerator torch can use); use --device auto or cpu" in err


def test_an_nvidia_smi_that_fails_or_lists_nothing_is_no_gpu(tmp_path, monkeypatch):
    path_with(tmp_path, monkeypatch, "No devices were found")
    assert device.nvidia_gpus() == []
    assert os.environ["PATH"] == str(tmp_path / "bin")
