"""An NVIDIA GPU that torch cannot use is named in one line before training, with the build that fits it: a CPU-only
torch or a driver too old (told by a stand-in nvidia-smi on PATH), or a CUDA build without kernels for the GPU's
generation (told by stand-ins for torch.cuda's answers: no GPU here). Without an NVIDIA GPU nothing is said."""

import sys

import pytest
import torch

import skip_connection
import train_resnet
from conftest import run_main, says, train
from helpers import device

LAPTOP = "NVIDIA GeForce RTX 4060 Laptop GPU"


@pytest.fixture
def no_torch_gpu(monkeypatch):
    """torch finds no GPU, as on a laptop whose torch cannot use its own."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def path_with(tmp_path, monkeypatch, answers):
    """PATH holds only a folder with a stand-in nvidia-smi: answers maps a --query-gpu field list to what it prints;
    a list it lacks fails, as a driver before 510 fails for compute_cap. None: no nvidia-smi at all."""
    folder = tmp_path / "bin"
    folder.mkdir()
    if answers is not None:
        program = folder / "nvidia_smi.py"
        program.write_text(
            f"import sys\nanswers = {answers!r}\nfields = sys.argv[1].partition('=')[2] if len(sys.argv) > 1 else ''\n"
            "print(answers.get(fields, 'No devices were found'))\nsys.exit(0 if fields in answers else 6)\n"
        )
        if sys.platform == "win32":
            (folder / "nvidia-smi.bat").write_text(f'@"{sys.executable}" "{program}" %*\n')
        else:
            script = folder / "nvidia-smi"
            script.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{program}' \"$@\"\n")
            script.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))


def one_epoch_on_auto(mnist_dir, tmp_path):
    """What one epoch of train_resnet.py with --device auto printed; it must succeed."""
    return train(train_resnet, tmp_path / "run", "--device", "auto", "--epochs", 1, mnist_dir=mnist_dir)


def auto(capsys):
    """The lines that a script's --device auto prints before it loads anything (helpers.pick_device)."""
    assert device.pick_device("auto") == torch.device("cpu")
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
    "answers, build, named",
    [
        ({"name,compute_cap": f"{LAPTOP}, 8.9"}, "cu126", f"{LAPTOP} (sm_89)"),
        (
            {"name,compute_cap": "NVIDIA GeForce RTX 5060 Laptop GPU, 12.0"},
            "cu130",
            "NVIDIA GeForce RTX 5060 Laptop GPU (sm_120)",
        ),
        ({"name": LAPTOP}, "cu126 (cu130 for an RTX 50: the table in docs/setup.md)", LAPTOP),  # an old driver
    ],
)
def test_auto_beside_a_gpu_that_a_cpu_only_torch_cannot_use_names_the_build_for_it(
    answers, build, named, no_torch_gpu, tmp_path, monkeypatch, capsys
):
    path_with(tmp_path, monkeypatch, answers)
    monkeypatch.setattr(torch.version, "cuda", None)
    lines = auto(capsys)
    assert lines[0] == "device: cpu" and len(lines) == 2
    says(lines[1], "note: training on the CPU:", f"nvidia-smi lists {named}", "is a CPU-only build")
    assert f"fix: {device.INSTALL}{build}" in lines[1] and "--force-reinstall" in lines[1]


def test_after_the_note_the_run_goes_on_on_the_cpu(no_torch_gpu, mnist_dir, tmp_path, monkeypatch):
    path_with(tmp_path, monkeypatch, {"name,compute_cap": f"{LAPTOP}, 8.9"})
    monkeypatch.setattr(torch.version, "cuda", None)
    lines = one_epoch_on_auto(mnist_dir, tmp_path).splitlines()
    assert lines[0] == "device: cpu" and lines[1].startswith("note: training on the CPU: nvidia-smi lists")
    assert lines[2].startswith("results: ") and "epoch 1: test accuracy" in lines[-2]


def test_auto_beside_a_gpu_that_a_cuda_build_cannot_find_says_update_the_driver(
    no_torch_gpu, tmp_path, monkeypatch, capsys
):
    path_with(tmp_path, monkeypatch, {"name,compute_cap": f"{LAPTOP}, 8.9"})
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    lines = auto(capsys)
    says(
        lines[1], f"nvidia-smi lists {LAPTOP} (sm_89)", "(built for CUDA 13.0) finds no GPU", "update the NVIDIA driver"
    )


# torch.cuda's answers on three laptops: a GPU torch sees, whose kernels this build may lack.
RTX_5060 = (
    "NVIDIA GeForce RTX 5060 Laptop GPU",
    (12, 0),
    ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"],
)
GTX_1050 = ("NVIDIA GeForce GTX 1050", (6, 1), ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"])
RTX_4060 = (LAPTOP, (8, 9), ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"])  # sm_86's kernels run on sm_89


def stand_in_gpu(monkeypatch, name, capability, archs):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: archs)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)  # set back afterwards


@pytest.mark.parametrize(
    "gpu, sm, build",
    [
        (RTX_5060, "sm_120, and torch", "cu130 (on a driver whose nvidia-smi shows CUDA Version 13.0 or higher)"),
        (GTX_1050, "sm_61, and torch", "cu126"),
    ],
)
def test_a_gpu_this_build_has_no_kernels_for_is_found_before_training(gpu, sm, build, tmp_path, monkeypatch, capsys):
    stand_in_gpu(monkeypatch, *gpu)
    name, _, archs = gpu
    line = (
        f"{name} is {sm} {torch.__version__} has kernels for {archs[0]}-{archs[-1]} only; fix: {device.INSTALL}{build}"
    )
    assert auto(capsys) == ["device: cpu", f"note: training on the CPU: {line}"]  # --device auto: on the CPU
    code, out, err = run_main(
        train_resnet, "--device", "cuda", "--data-dir", tmp_path / "data", "--out-dir", tmp_path / "x"
    )
    assert code == 2 and out == "" and not (tmp_path / "x").exists()  # --device cuda: refused before anything is loaded
    says(err.splitlines()[-1], f"--device: 'cuda' is not available ({line}); use --device auto or cpu")
    code, out, err = run_main(skip_connection, "--device", "cuda", "--depths", "1", "--no-show")  # every command
    assert code == 2 and line in err


def test_a_gpu_this_build_fits_gets_no_note(monkeypatch, capsys):
    stand_in_gpu(monkeypatch, *RTX_4060)
    assert device.pick_device("auto") == torch.device("cuda") and device.gpu_hint() is None
    assert capsys.readouterr().out == "device: cuda\n"


@pytest.mark.parametrize(
    "arch, capability, runs",
    [("sm_86", (8, 9), True), ("sm_90", (8, 9), False), ("sm_90", (12, 0), False), ("compute_90", (12, 0), True)],
)
def test_cudas_rule_for_which_kernels_run_on_which_gpu(arch, capability, runs):
    """sm_XY runs on the same major version with an equal or higher minor; PTX (compute_XY) on anything newer."""
    assert device.runs_on(arch, capability) is runs


def test_without_an_nvidia_gpu_nothing_is_said(no_torch_gpu, tmp_path, monkeypatch, capsys):
    path_with(tmp_path, monkeypatch, None)
    assert auto(capsys) == ["device: cpu"]
    (tmp_path / "other").mkdir()
    path_with(tmp_path / "other", monkeypatch, {})  # a driver without a GPU ("No devices were found"): nothing either
    assert device.gpu_hint() is None
