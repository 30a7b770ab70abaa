"""A stop that a learner caused says why in one line and keeps the finished epochs: a loss that is not finite, out of
memory, a save that fails, Ctrl-C or a kill. A stop before epoch 1 is saved leaves no folder. Anything else is
Python's traceback, as in any script."""

import math
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from held import MOMENTS, hold

import train_inception
import train_resnet
from conftest import ROOT, run_main, says, start
from helpers import store
from helpers.device import OutOfMemoryError  # torch.OutOfMemoryError from torch 2.5 on
from helpers.run import Stop

FILES = ["accuracy.png", "checkpoint.pt", "metrics.csv", "model.pt", "settings.json"]
# Tests that train: the machinery is the same for both, so InceptionNet (three times the work) runs with the slow tests.
TRAINING = [pytest.param(train_inception, marks=pytest.mark.slow), train_resnet]


def in_epoch(module, epoch, monkeypatch, do):
    """The script's train() calls do(model) at the start of the given epoch."""
    real_train = module.train

    def train(model, device, loader, optimizer, criterion, this_epoch, log_every):
        if this_epoch == epoch:
            do(model)
        return real_train(model, device, loader, optimizer, criterion, this_epoch, log_every)

    monkeypatch.setattr(module, "train", train)


def run(module, out, mnist_dir, epochs=3, *args):
    """The script's main() into the folder out (which must not exist yet: an existing one is never taken)."""
    return run_main(
        module, "--epochs", epochs, "--log-every", 10, "--data-dir", mnist_dir, "--out-dir", out, "--no-show", *args
    )


def test_divergence_in_epoch_1_says_so_and_leaves_nothing(mnist_dir, tmp_path):
    code, out, err = run(train_resnet, tmp_path / "runs" / "resnet", mnist_dir, 2, "--lr", 100)
    assert code == 1
    says(err, "loss became nan in epoch 1", "diverged", "smaller learning rate than 100.0 (--lr)", "nothing was saved")
    assert os.listdir(tmp_path) == []  # neither the run's folder nor runs/, which it made


@pytest.mark.parametrize("module", TRAINING)
def test_divergence_later_keeps_the_finished_epochs(module, mnist_dir, tmp_path, monkeypatch):
    in_epoch(module, 2, monkeypatch, lambda model: torch.nn.init.constant_(model.l1.weight, math.inf))
    code, out, err = run(module, tmp_path / "run", mnist_dir)
    assert code == 1 and err.startswith("error: the training loss became nan in epoch 2: training diverged;")
    assert err.endswith(f"; epoch 1 saved in {tmp_path / 'run'}{os.sep}\n")
    assert sorted(os.listdir(tmp_path / "run")) == FILES
    weights = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert all(torch.isfinite(w).all() for w in weights.values())  # epoch 1's weights, not the broken ones


OUT_OF_MEMORY = {
    "cuda": OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "mps": RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.2 GB)"),
    # Windows does not overcommit, so a batch too large for the RAM fails here; Linux and macOS say "can't allocate".
    "cpu": RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to"
        " allocate 4294967296 bytes."
    ),
    "cpu-posix": RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory:"
        " you tried to allocate 4294967296 bytes. Error code 12 (Cannot allocate memory)"
    ),
}


@pytest.mark.parametrize(
    "kind", ["cuda", "cpu", *(pytest.param(kind, marks=pytest.mark.slow) for kind in ("mps", "cpu-posix"))]
)
def test_out_of_memory_says_try_a_smaller_batch_and_keeps_the_finished_epochs(kind, mnist_dir, tmp_path, monkeypatch):
    def out_of_memory(model):
        raise OUT_OF_MEMORY[kind]

    in_epoch(train_resnet, 2, monkeypatch, out_of_memory)
    code, out, err = run(train_resnet, tmp_path / "run", mnist_dir)
    assert code == 1
    says(
        err,
        "out of memory on cpu with --batch-size 64",
        "try a smaller --batch-size",
        f"epoch 1 saved in {tmp_path / 'run'}{os.sep}",
    )
    assert sorted(os.listdir(tmp_path / "run")) == FILES


def test_any_other_error_is_a_traceback_and_the_empty_folder_goes(mnist_dir, tmp_path, monkeypatch):
    def mistake(model):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (64x512 and 500x10)")  # an edited model's bug

    in_epoch(train_resnet, 1, monkeypatch, mistake)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        train_resnet.main(["--device", "cpu", "--data-dir", str(mnist_dir), "--out-dir", str(tmp_path / "run")])
    assert os.listdir(tmp_path) == []


def fail_writing(monkeypatch, name, error, times=1, first=1):
    """From the first-th write of name on, times writes fail with error."""
    real_write, calls = store.write, []

    def write(path, data):
        if os.path.basename(path) == name:
            calls.append(path)
            if first <= len(calls) < first + times:
                raise error
        real_write(path, data)

    monkeypatch.setattr(store, "write", write)


FULL = OSError(28, "No space left on device")


def test_a_checkpoint_that_cannot_be_saved_at_epoch_1_leaves_no_folder(mnist_dir, tmp_path, monkeypatch):
    fail_writing(monkeypatch, "checkpoint.pt", FULL)
    code, out, err = run(train_resnet, tmp_path / "run", mnist_dir)
    assert code == 1
    says(err, f"could not write {tmp_path / 'run' / 'checkpoint.pt'}: No space left on device", "nothing was saved")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "name, epoch, kept",
    [("checkpoint.pt", 2, "epoch 1"), pytest.param("model.pt", 2, "epochs 1-2", marks=pytest.mark.slow)],
)
def test_a_failed_save_later_ends_the_run_with_a_checkpoint_to_go_on_from(
    name, epoch, kept, mnist_dir, tmp_path, monkeypatch
):
    fail_writing(monkeypatch, name, FULL, first=epoch)
    out = tmp_path / "run"
    code, log, err = run(train_resnet, out, mnist_dir)
    assert code == 1
    says(err, f"could not write {out / name}: No space left on device", f"{kept} saved in {out}{os.sep}")
    assert "epoch 3:" not in log and len(torch.load(out / "checkpoint.pt", weights_only=True)["history"]) == int(
        kept[-1]
    )


@pytest.mark.parametrize(
    "name", ["metrics.csv", *(pytest.param(n, marks=pytest.mark.slow) for n in ("settings.json", "accuracy.png"))]
)
def test_a_results_file_held_open_by_another_program_is_a_warning(name, mnist_dir, tmp_path, monkeypatch):
    # On Windows, replacing metrics.csv while Excel has it open fails with "Permission denied".
    fail_writing(monkeypatch, name, PermissionError(13, "Permission denied"), first=2)
    out = tmp_path / "run"
    code, log, err = run(train_resnet, out, mnist_dir)
    assert code == 0, err
    says(err, f"could not replace {out / name}", "Permission denied", "open in another program?", "checkpoint.pt")
    # The file is written again after the next epoch: all three epochs.
    assert "epoch 3: test accuracy" in log and len(torch.load(out / "checkpoint.pt")["history"]) == 3
    assert sorted(os.listdir(out)) == FILES and len((out / "metrics.csv").read_text().splitlines()) == 4


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_file_is_written_whole_or_left_as_it_was(failure, tmp_path, monkeypatch):
    target = tmp_path / "metrics.csv"
    target.write_text("old results\n")

    def replace(source, destination):  # the new file is written; then the disk fills, or Ctrl-C comes
        assert open(source, "rb").read() == b"new results\n"
        raise failure

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(type(failure)):
        store.write(str(target), b"new results\n")
    assert target.read_text() == "old results\n" and os.listdir(tmp_path) == ["metrics.csv"]


@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("stop, code, what", [(KeyboardInterrupt, 130, "interrupted"), (Stop, 143, "terminated")])
def test_a_stop_before_epoch_1_is_saved_says_nothing_was_saved(
    moment, stop, code, what, mnist_dir, tmp_path, monkeypatch
):
    def raise_stop():
        raise stop

    hold(moment, raise_stop, monkeypatch.setattr)
    returncode, out, err = run(train_resnet, tmp_path / "new" / "run", mnist_dir)
    assert (returncode, err) == (code, f"\n{what}: nothing was saved\n") and "held" in out
    assert os.listdir(tmp_path) == []


def test_while_epoch_1_trains_the_folder_is_there_and_empty(mnist_dir, tmp_path, monkeypatch):
    seen = []
    in_epoch(train_resnet, 1, monkeypatch, lambda model: seen.append(os.listdir(tmp_path / "run")))
    code, stdout, err = run(train_resnet, tmp_path / "run", mnist_dir, 1)
    assert code == 0, err
    assert stdout.splitlines()[1] == f"results: {tmp_path / 'run'}{os.sep}" and seen == [[]]


@pytest.mark.slow
@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_a_real_signal_before_epoch_1_is_saved_leaves_no_folder(moment, how, mnist_dir, tmp_path):
    """The script started as a user would, held at that moment by tests/held.py until the signal comes."""
    out = tmp_path / "runs" / "resnet"
    args = ["--device", "cpu", "--epochs", 1, "--data-dir", mnist_dir, "--out-dir", out, "--no-show"]
    process = start("tests/held.py", moment, *args, env={"PYTHONPATH": str(ROOT)})
    for line in process.stdout:
        if line == "held\n":
            process.send_signal(how)
            break
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + how and "Traceback" not in err, err
    assert err.strip() == f"{'interrupted' if how == signal.SIGINT else 'terminated'}: nothing was saved"
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
@pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("mount"),
    reason="mounting a small tmpfs needs root on Linux; test_a_checkpoint_that_cannot_be_saved_*"
    " covers the same path with a simulated full disk",
)
@pytest.mark.parametrize("size", ["300k", "700k"])
def test_a_really_full_disk_ends_in_one_line(size, mnist_dir, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)]).returncode:
        pytest.skip("this machine refuses to mount a tmpfs")
    try:
        args = ["--epochs", 3, "--log-every", 10, "--data-dir", mnist_dir, "--out-dir", disk / "run", "--no-show"]
        process = start("train_resnet.py", *args)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 1 and err.count("\n") == 1 and "Traceback" not in err, err
        assert "No space left on device" in err and "enforce fail" not in err
        folders = os.listdir(disk)
        assert all("checkpoint.pt" in os.listdir(disk / folder) for folder in folders)  # none without a checkpoint
        assert err.rstrip().endswith("nothing was saved" if not folders else f"saved in {disk / 'run'}{os.sep}")
        assert not [name for folder in folders for name in os.listdir(disk / folder) if name.endswith(".tmp")]
    finally:
        subprocess.run(["umount", str(disk)])
