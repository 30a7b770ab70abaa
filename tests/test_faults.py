"""What a learner's run meets when a flag or the out folder is wrong, or the shell or machine differs: one
clear message, the right exit code, no traceback, and nothing of theirs lost."""
import io
import os
import subprocess
import zipfile

import pytest
import torch

import train_inception
import train_resnet
from conftest import digest, run_main, run_script, script_call
from helpers import device, flags, store

MODULES = [train_inception, train_resnet]


def missing_device():
    """A device type this machine does not have."""
    have = device.accelerator()
    return "xpu" if have is not None and have.type == "cuda" else "cuda"


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize(
    "args, flag",
    [
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "-3"], "--batch-size"),
        (["--log-every", "0"], "--log-every"),
        (["--lr", "0"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "inf"], "--lr"),
        (["--momentum", "1"], "--momentum"),
        (["--momentum", "-0.1"], "--momentum"),
        (["--epochs", "ten"], "--epochs"),
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**64)], "--seed"),
        (["--device", "gpu0"], "--device"),
        (["--device", missing_device()], "--device"),
        (["--device", "cpu:banana"], "--device"),
    ],
)
def test_impossible_hyperparameters_are_usage_errors(module, args, flag, tmp_path):
    code, out, err = run_main(module, *args, "--data-dir", tmp_path / "data", "--out-dir", tmp_path / "out")
    assert code == 2
    assert err.startswith("usage: ") and (f"error: argument {flag}" in err or f"error: {flag}" in err)
    assert not (tmp_path / "data").exists() and not (tmp_path / "out").exists()  # refused before anything else


@pytest.mark.parametrize("module", MODULES)
def test_impossible_constant_at_the_top_of_the_file_is_refused_too(module, monkeypatch, tmp_path):
    monkeypatch.setattr(module, "MOMENTUM", 1.5)
    code, _, err = run_main(module, "--data-dir", tmp_path / "data")
    assert code == 2 and "--momentum must be in [0, 1), got 1.5" in err


@pytest.mark.slow
def test_usage_error_from_the_command_line(tmp_path):
    result = run_script("train_resnet.py", "--lr", "-1", "--data-dir", tmp_path / "data")
    assert result.returncode == 2
    assert "error: --lr must be a finite number above 0, got -1" in result.stderr
    assert "Traceback" not in result.stderr


# --- the out folder --------------------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("where", ["out-dir is a file", "out-dir is below a file"])
def test_unwritable_out_dir_is_refused_before_training(module, where, mnist_dir, tmp_path):
    in_the_way = tmp_path / "results"
    in_the_way.write_text("my notes\n")
    out_dir = {"out-dir is a file": in_the_way, "out-dir is below a file": in_the_way / "run1"}[where]
    code, out, err = run_main(module, "--data-dir", mnist_dir, "--out-dir", out_dir, "--no-show")
    assert code == 1
    assert f"error: cannot write results to {out_dir}: {in_the_way} is a file, not a folder. Pick another folder with --out-dir." in err
    assert "epoch" not in out and "device" not in out
    assert in_the_way.read_text() == "my notes\n" and os.listdir(tmp_path) == ["results"]


def test_a_folder_that_is_not_empty_is_left_alone(mnist_dir, tmp_path):
    mine = tmp_path / "out"
    mine.mkdir()
    (mine / "model.pt").write_text("my own model\n")  # anything of the user's: never written into
    before = digest(mine)
    code, out, err = run_main(train_resnet, "--epochs", 1, "--data-dir", mnist_dir, "--out-dir", mine, "--no-show")
    assert code == 0, err
    assert out.startswith(f"results: {mine}-2{os.sep} ({mine} is not empty; delete a run's folder to replace it)")
    assert digest(mine) == before and (tmp_path / "out-2" / "model.pt").is_file()


@pytest.mark.slow
def test_unwritable_out_dir_from_the_command_line(mnist_dir, tmp_path):
    (tmp_path / "results").write_text("x")
    result = run_script("train_inception.py", "--data-dir", mnist_dir, "--out-dir", tmp_path / "results", "--no-show")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot write results to" in result.stderr


# --- files are written whole -----------------------------------------------------------------------


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(failure, tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("old results\n")

    def write_half(f):
        f.write(b"new res")
        raise failure

    with pytest.raises(type(failure)):
        store.save_atomic(str(target), write_half)
    assert target.read_text() == "old results\n"
    assert os.listdir(tmp_path) == ["metrics.csv"]
    store.save_atomic(str(target), lambda f: f.write(b"new results\n"))
    assert target.read_text() == "new results\n"


# --- other shells, other machines ------------------------------------------------------------------


@pytest.mark.slow
def test_output_piped_into_head_ends_quietly(mnist_dir, tmp_path):
    out = tmp_path / "out"
    args = ["--epochs", 1, "--log-every", 1, "--data-dir", mnist_dir, "--out-dir", out, "--no-show"]
    process = subprocess.Popen(**script_call("train_resnet.py", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()  # what `| head -1` reads, then it closes the pipe
    process.stdout.close()
    err = process.stderr.read()
    process.wait(timeout=60)
    assert first == f"results: {out}{os.sep}\n"
    assert process.returncode == 1 and err == ""  # no "could not write the results", no traceback
    assert not out.exists()  # nothing was saved, so nothing is left


def test_the_resume_command_is_quoted_for_the_users_shell():
    words = ["python", r"C:\Users\Li Lei\lecture 11\train_resnet.py", "--resume", "--out-dir", r"runs\resnet-2"]
    assert flags.shell_join(words, windows=True) == r'python "C:\Users\Li Lei\lecture 11\train_resnet.py" --resume --out-dir runs\resnet-2'
    assert flags.shell_join(words, windows=False) == r"python 'C:\Users\Li Lei\lecture 11\train_resnet.py' --resume --out-dir 'runs\resnet-2'"


def test_a_script_on_another_drive_is_named_by_its_full_path(monkeypatch):
    def relpath(path, start=None):  # what Windows does for D:\lecture\train_resnet.py seen from C:\Users
        raise ValueError("path is on mount 'D:', start on mount 'C:'")

    monkeypatch.setattr(os.path, "relpath", relpath)
    assert flags.script_path("train_resnet.py") == os.path.abspath("train_resnet.py")


def test_a_checkpoint_that_cannot_be_read_or_is_from_a_newer_torch_is_named(mnist_dir, tmp_path, monkeypatch):
    code, _, err = run_main(train_resnet, "--epochs", 1, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 0, err
    path = tmp_path / "checkpoint.pt"
    whole = path.read_bytes()
    real_load = torch.load

    def load_without_permission(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(torch, "load", load_without_permission)
    code, _, err = run_main(train_resnet, "--resume", "--epochs", 2, "--out-dir", tmp_path)
    assert code == 1 and err.strip() == f"error: cannot resume: {path} cannot be read: Permission denied. Check the file's permissions."
    monkeypatch.setattr(torch, "load", real_load)
    # A newer torch writes a higher format version into the archive.
    with zipfile.ZipFile(io.BytesIO(whole)) as old, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as new:
        for name in old.namelist():
            new.writestr(name, b"99\n" if name.endswith("/version") else old.read(name))
    before = path.read_bytes()
    code, _, err = run_main(train_resnet, "--resume", "--epochs", 2, "--out-dir", tmp_path)
    assert code == 1 and "damaged" not in err
    assert err.startswith(f"error: cannot resume: {path} was written by a newer torch than this one ({torch.__version__}); upgrade torch")
    assert path.read_bytes() == before
