"""What a learner's run meets when something goes wrong: one clear message, the right exit code,
no traceback, and nothing of theirs lost."""
import contextlib
import gzip
import hashlib
import io
import math
import os
import signal
import socket
import subprocess
import time
import urllib.request
import weakref
import zipfile

import pytest
import torch

import data
import train_inception
import train_resnet
from conftest import CPU, run_script, script_call
from data import FILES
from helpers import figures, flags, folders

MODULES = [train_inception, train_resnet]
# Tests that train: the machinery is the same for both, so InceptionNet (three times the work) runs with the slow tests.
TRAINING = [pytest.param(train_inception, marks=pytest.mark.slow), train_resnet]


def run_main(module, *args):
    """Call a script's main() as `python script.py ARGS` would: returns (exit code, stdout, stderr). A training
    script runs on the CPU unless args name another --device."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    pinned = CPU if hasattr(module, "NET") else ()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            module.main([*pinned, *map(str, args)])
        except SystemExit as e:  # what the interpreter does with it: a message goes to stderr, exit 1
            code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
            if isinstance(e.code, str):
                print(e.code, file=err)
    return code, out.getvalue(), err.getvalue()


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# --- data ------------------------------------------------------------------------------------------


OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}


def use_proxy(monkeypatch, proxy):
    """Send this process's downloads through proxy (urllib reads the variables when it builds its opener)."""
    for name, value in [("http_proxy", proxy), ("https_proxy", proxy), ("no_proxy", ""), ("NO_PROXY", "")]:
        monkeypatch.setenv(name, value)
    # urlopen() keeps the opener it built first; a new one reads the variables. Undone after the test.
    monkeypatch.setattr(urllib.request, "_opener", urllib.request.build_opener())


@pytest.mark.parametrize("module", MODULES)
def test_failed_download_says_where_the_files_go(module, tmp_path, monkeypatch):
    use_proxy(monkeypatch, OFFLINE["http_proxy"])  # a closed local port: every download is refused at once
    data_dir = tmp_path / "data"
    code, out, err = run_main(module, "--data-dir", data_dir, "--out-dir", tmp_path / "out", "--no-show")
    assert code == 1
    assert f"MNIST is not in {data_dir / 'MNIST' / 'raw'}/ and could not be downloaded" in err
    assert all(name in err for name, _, _ in FILES)
    error_lines = [line for line in err.splitlines() if "download error:" in line]
    assert len(error_lines) == 1 and "refused" in error_lines[0].lower()
    assert "--data-dir" in err
    assert "epoch" not in out and not (tmp_path / "out" / "metrics.csv").exists()


@pytest.mark.slow
def test_failed_download_from_the_command_line(tmp_path):
    result = run_script("train_resnet.py", "--data-dir", tmp_path / "data", "--out-dir", tmp_path / "out", "--no-show", env=OFFLINE)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: MNIST is not in ")


def test_silent_network_gives_up_within_seconds(tmp_path, monkeypatch):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    proxy = f"http://127.0.0.1:{silent.getsockname()[1]}"
    use_proxy(monkeypatch, proxy)
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT", 0.2)
    start = time.monotonic()
    try:
        with pytest.raises(data.DataError, match=r"download error: .*timed out"):
            data.mnist_loaders(tmp_path, 64, torch.device("cpu"))
    finally:
        silent.close()
    # torchvision tries a second mirror, and start-up takes a moment: seconds, not the minutes of no timeout.
    assert time.monotonic() - start < 10


def truncate(path):
    path.write_bytes(path.read_bytes()[:5000])


def wrong_magic(path):
    path.write_bytes(b"\x1f\x8b\x08\x00" + path.read_bytes()[4:])


def one_label_short(path):
    raw = path.read_bytes()
    count = int.from_bytes(raw[4:8], "big") - 1
    path.write_bytes(raw[:4] + count.to_bytes(4, "big") + raw[8:-1])


@pytest.mark.parametrize(
    "name, damage, words",
    [
        ("train-images-idx3-ubyte", truncate, ["is truncated", "promises 2000 x 28 x 28 bytes", "5000 bytes"]),
        ("t10k-labels-idx1-ubyte", wrong_magic, ["magic number 0x1f8b0800, not 0x00000801", "not an MNIST label file"]),
        ("train-labels-idx1-ubyte", one_label_short, ["has 2000 images but train-labels-idx1-ubyte has 1999 labels"]),
    ],
)
def test_bad_data_file_is_named_and_left_alone(name, damage, words, own_mnist, tmp_path):
    raw = own_mnist / "MNIST" / "raw"
    damage(raw / name)
    before = digest(raw)
    code, out, err = run_main(train_resnet, "--data-dir", own_mnist, "--out-dir", tmp_path / "out", "--no-show")
    assert code == 1
    assert name in err and "Replace" in err
    for word in words:
        assert word in err
    assert digest(raw) == before  # not deleted, not rewritten, nothing added
    assert "epoch" not in out


def gz_only(raw):
    """Replace each file in raw by a .gz copy compressed here, as another mirror would: not torchvision's checksums."""
    for name, _, _ in FILES:
        (raw / f"{name}.gz").write_bytes(gzip.compress((raw / name).read_bytes(), mtime=0))
        (raw / name).unlink()


def test_gz_copies_are_unpacked_next_to_themselves_and_train(own_mnist, mnist_dir, tmp_path):
    raw = own_mnist / "MNIST" / "raw"
    gz_only(raw)
    packed = digest(raw)
    code, out, err = run_main(train_resnet, "--epochs", 1, "--data-dir", own_mnist, "--out-dir", tmp_path / "out", "--no-show")
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("unpacked ")] == [
        f"unpacked {raw / name}.gz (the .gz is kept)" for name, _, _ in FILES]
    assert "epoch 1: test accuracy" in out
    after = digest(raw)
    assert {name: after[name] for name in packed} == packed  # the .gz files are as they were
    assert {name: after[name] for name, _, _ in FILES} == {name: digest(mnist_dir / "MNIST" / "raw")[name] for name, _, _ in FILES}


@pytest.mark.parametrize("damage", ["truncated", "not gzip"])
def test_damaged_gz_is_named_and_left_alone(damage, own_mnist, tmp_path):
    raw = own_mnist / "MNIST" / "raw"
    gz_only(raw)
    gz = raw / "train-images-idx3-ubyte.gz"
    whole = gz.read_bytes()
    gz.write_bytes(whole[: len(whole) // 2] if damage == "truncated" else b"\x1f\x8b\x08\x00" + b"\xff" * 500)
    before = digest(raw)
    code, out, err = run_main(train_inception, "--data-dir", own_mnist, "--out-dir", tmp_path / "out", "--no-show")
    assert code == 1
    assert err.startswith(f"error: {gz} is damaged and cannot be unpacked (") and "Replace the file." in err
    assert digest(raw) == before  # no half-unpacked file, nothing changed
    assert "epoch" not in out


def test_data_file_that_cannot_be_read_is_named(own_mnist, tmp_path, monkeypatch):
    labels = own_mnist / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    real_getsize = os.path.getsize

    def getsize(path):  # tests run as root here, so take the permission away where the check asks for it
        if str(path) == str(labels):
            raise PermissionError(13, "Permission denied", str(path))
        return real_getsize(path)

    monkeypatch.setattr(os.path, "getsize", getsize)
    code, out, err = run_main(train_inception, "--data-dir", own_mnist, "--out-dir", tmp_path / "out", "--no-show")
    assert code == 1
    assert f"error: cannot read {labels}: Permission denied. Check the file and its permissions." in err


@pytest.mark.slow
def test_bad_data_file_from_the_command_line(own_mnist, tmp_path):
    truncate(own_mnist / "MNIST" / "raw" / "t10k-images-idx3-ubyte")
    result = run_script("train_inception.py", "--data-dir", own_mnist, "--out-dir", tmp_path / "out", "--no-show")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "t10k-images-idx3-ubyte is truncated" in result.stderr


# --- hyperparameters -------------------------------------------------------------------------------


def missing_device():
    """A device type this machine does not have."""
    have = torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else None
    return "xpu" if have == "cuda" else "cuda"


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


# --- divergence ------------------------------------------------------------------------------------


def test_divergence_stops_with_advice(mnist_dir, tmp_path):
    code, out, err = run_main(train_resnet, "--lr", 100, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1
    assert "the training loss became nan in epoch 1" in err
    assert "the loss is checked at the end of each epoch" in err
    assert "try a smaller learning rate than --lr 100;" in err
    assert err.rstrip().endswith("; nothing was saved.")
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("module", TRAINING)
def test_divergence_keeps_the_finished_epochs(module, mnist_dir, tmp_path, monkeypatch):
    real_train = module.train

    def train_then_blow_up(model, device, loader, optimizer, criterion, epoch, log_every):
        if epoch == 2:  # what a too-large step does: the weights turn to inf and the loss to nan
            with torch.no_grad():
                model.l1.weight.fill_(math.inf)
        return real_train(model, device, loader, optimizer, criterion, epoch, log_every)

    monkeypatch.setattr(module, "train", train_then_blow_up)
    code, out, err = run_main(module, "--epochs", 3, "--log-every", 10, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1
    assert "the training loss became nan in epoch 2" in err
    assert f"the results of epoch 1 are in {tmp_path}/" in err
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    assert len(rows) == 1 and f"epoch 1: test accuracy {rows[0].split(',')[2]}%" in out
    weights = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(torch.isfinite(w).all() for w in weights.values())  # epoch 1's weights, not the broken ones
    assert sorted(os.listdir(tmp_path)) == ["accuracy.png", "checkpoint.pt", "metrics.csv", "mistakes.png", "model.pt", "settings.json"]


OUT_OF_MEMORY = {
    "cuda": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "mps": lambda: RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.2 GB)"),
}


@pytest.mark.parametrize("module, kind", [pytest.param(train_inception, "cuda", marks=pytest.mark.slow), (train_resnet, "mps"),
                                          (train_resnet, "cuda")])
def test_out_of_memory_frees_the_failed_step_and_keeps_the_finished_epochs(module, kind, mnist_dir, tmp_path, monkeypatch):
    real_train, step = module.train, []

    def train_out_of_memory(model, device, loader, optimizer, criterion, epoch, log_every):
        if epoch == 2:  # what a batch too large for the GPU does, in the middle of a step
            activations = torch.zeros(1000, 1000)
            step.append(weakref.ref(activations))
            raise OUT_OF_MEMORY[kind]()
        return real_train(model, device, loader, optimizer, criterion, epoch, log_every)

    real_find, freed = figures.find_mistakes, []

    def find_mistakes(model, loader, device):
        freed.append(step[0]() is None and all(p.grad is None for p in model.parameters()))
        return real_find(model, loader, device)

    monkeypatch.setattr(module, "train", train_out_of_memory)
    monkeypatch.setattr(figures, "find_mistakes", find_mistakes)
    code, out, err = run_main(module, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1 and "Traceback" not in err
    assert "error: out of memory on cpu with --batch-size 64: try a smaller batch" in err
    assert f"the results of epoch 1 are in {tmp_path}{os.sep}" in err
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2
    assert freed == [True]  # the failed step's tensors and the gradients were let go before mistakes.png
    assert "mistakes: " in out and (tmp_path / "mistakes.png").exists()


def test_out_of_memory_again_while_drawing_the_mistakes_skips_them(mnist_dir, tmp_path, monkeypatch):
    real_train = train_resnet.train

    def train_out_of_memory(model, device, loader, optimizer, criterion, epoch, log_every):
        if epoch == 2:
            raise OUT_OF_MEMORY["cuda"]()
        return real_train(model, device, loader, optimizer, criterion, epoch, log_every)

    def find_mistakes(model, loader, device):
        raise OUT_OF_MEMORY["mps"]()

    monkeypatch.setattr(train_resnet, "train", train_out_of_memory)
    monkeypatch.setattr(figures, "find_mistakes", find_mistakes)
    code, out, err = run_main(train_resnet, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("mistakes.png skipped: MPS backend out of memory") and len(lines) == 2
    assert lines[1].startswith("error: out of memory on cpu") and not (tmp_path / "mistakes.png").exists()


def fail_writing(monkeypatch, name, error, times=1):
    """The second writing of name (epoch 2's) and the next times - 1 fail with error."""
    real_save, calls = folders.save_atomic, []

    def save_atomic(path, write):
        if os.path.basename(path) == name:
            calls.append(path)
            if 2 <= len(calls) < 2 + times:
                raise error
        real_save(path, write)

    monkeypatch.setattr(folders, "save_atomic", save_atomic)


@pytest.mark.parametrize("module", TRAINING)
def test_a_failed_save_keeps_the_earlier_results(module, mnist_dir, tmp_path, monkeypatch):
    fail_writing(monkeypatch, "model.pt", OSError(28, "No space left on device"))
    code, out, err = run_main(module, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1
    assert f"error: could not write the results of epoch 2 to {tmp_path}: model.pt: No space left on device;" in err
    assert f"the results of epoch 1 are in {tmp_path}{os.sep}" in err
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2
    assert "epoch 3:" not in out


def test_a_failed_checkpoint_says_which_epoch_each_file_holds(mnist_dir, tmp_path, monkeypatch):
    fail_writing(monkeypatch, "checkpoint.pt", PermissionError(13, "Permission denied"))
    code, out, err = run_main(train_resnet, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1
    assert f"could not write the results of epoch 2 to {tmp_path}: checkpoint.pt: Permission denied;" in err
    assert (f"{tmp_path}{os.sep} holds model.pt of epoch 2; checkpoint.pt, metrics.csv, accuracy.png of epoch 1"
            " (--resume goes on from epoch 1)") in err
    assert len(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["history"]) == 1
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2


@pytest.mark.parametrize("name", ["metrics.csv", "accuracy.png"])
def test_a_results_file_held_open_by_another_program_is_a_warning(name, mnist_dir, tmp_path, monkeypatch):
    # On Windows, replacing metrics.csv while Excel has it open fails with "Permission denied".
    fail_writing(monkeypatch, name, PermissionError(13, "Permission denied"))
    code, out, err = run_main(train_resnet, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 0, err
    assert err == (f"warning: could not replace {tmp_path / name} (Permission denied; open in another program?);"
                   " it still holds epoch 1, and is written again after the next epoch\n")
    assert "epoch 3: test accuracy" in out
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 4  # written again: all three epochs


# --- Ctrl-C ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_epochs(mnist_dir, tmp_path):
    out = tmp_path / "out"
    args = ["--epochs", "1000", "--log-every", "10", "--data-dir", mnist_dir, "--out-dir", out, "--no-show"]
    process = subprocess.Popen(
        **script_call("train_resnet.py", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # As in a terminal: a runner that started the tests in the background may have left SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    printed = []
    for line in process.stdout:  # wait until two epochs are done, then press Ctrl-C
        printed.append(line)
        if line.startswith("epoch 2:"):
            process.send_signal(signal.SIGINT)
            break
    rest, err = process.communicate(timeout=60)
    printed += rest.splitlines(keepends=True)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert "interrupted: the results of epochs 1-" in err and f" are in {out}{os.sep}" in err
    finished = [line for line in printed if line.startswith("epoch ")]
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert len(rows) == len(finished) >= 2
    assert f"the results of epochs 1-{len(finished)} are in" in err
    model = train_resnet.NET()
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    files = ["accuracy.png", "checkpoint.pt", "metrics.csv", "mistakes.png", "model.pt", "settings.json"]
    assert sorted(os.listdir(out)) == files  # no temporary files


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
        folders.save_atomic(str(target), write_half)
    assert target.read_text() == "old results\n"
    assert os.listdir(tmp_path) == ["metrics.csv"]
    folders.save_atomic(str(target), lambda f: f.write(b"new results\n"))
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
