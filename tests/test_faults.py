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
import urllib.request

import pytest
import torch

import data
import runs
import train_inception
import train_resnet
from conftest import run_script, script_call
from data import FILES

MODULES = [train_inception, train_resnet]


def run_main(module, *args):
    """Call a script's main() as `python script.py ARGS` would: returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            module.main([str(a) for a in args])
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
    try:
        with pytest.raises(data.DataError, match=r"download error: .*timed out"):
            data.mnist_loaders(tmp_path, 64, torch.device("cpu"))
    finally:
        silent.close()


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


def test_usage_error_from_the_command_line(tmp_path):
    result = run_script("train_resnet.py", "--lr", "-1", "--data-dir", tmp_path / "data")
    assert result.returncode == 2
    assert "error: --lr must be a finite number above 0, got -1.0" in result.stderr
    assert "Traceback" not in result.stderr


# --- divergence ------------------------------------------------------------------------------------


def test_divergence_stops_with_advice(mnist_dir, tmp_path):
    code, out, err = run_main(train_resnet, "--lr", 100, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1
    assert "the training loss became nan by epoch 1" in err
    assert "checked every 300 batches and at the end of each epoch" in err
    assert "try a smaller learning rate than --lr 100.0" in err
    assert err.rstrip().endswith("; nothing was saved.")
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("module", MODULES)
def test_divergence_keeps_the_finished_epochs(module, mnist_dir, tmp_path, monkeypatch):
    real_train = module.train

    def train_then_blow_up(model, loader, optimizer, epoch, log_every):
        if epoch == 2:  # what a too-large step does: the weights turn to inf and the loss to nan
            with torch.no_grad():
                model.l1.weight.fill_(math.inf)
        return real_train(model, loader, optimizer, epoch, log_every)

    monkeypatch.setattr(module, "train", train_then_blow_up)
    code, out, err = run_main(module, "--epochs", 3, "--log-every", 10, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1
    assert "the training loss became nan by epoch 2, batch 10" in err
    assert f"the results of epoch 1 are in {tmp_path}/" in err
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    assert len(rows) == 1 and f"epoch 1: test accuracy {rows[0].split(',')[2]}%" in out
    weights = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(torch.isfinite(w).all() for w in weights.values())  # epoch 1's weights, not the broken ones
    assert sorted(os.listdir(tmp_path)) == ["accuracy.png", "checkpoint.pt", "metrics.csv", "mistakes.png", "model.pt"]


@pytest.mark.parametrize("module", MODULES)
def test_out_of_memory_keeps_the_finished_epochs(module, mnist_dir, tmp_path, monkeypatch):
    real_train = module.train

    def train_out_of_memory(model, loader, optimizer, epoch, log_every):
        if epoch == 2:  # what a batch too large for the GPU does
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_train(model, loader, optimizer, epoch, log_every)

    monkeypatch.setattr(module, "train", train_out_of_memory)
    code, out, err = run_main(module, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1
    assert "error: out of memory on cpu with --batch-size 64: try a smaller batch" in err
    assert f"the results of epoch 1 are in {tmp_path}/" in err
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2


@pytest.mark.parametrize("module", MODULES)
def test_a_failed_save_keeps_the_earlier_results(module, mnist_dir, tmp_path, monkeypatch):
    real_save = runs.save_atomic
    calls = []

    def disk_full_in_epoch_2(path, write):
        calls.append(path)
        if len(calls) > len(runs.OUTPUTS):  # epoch 1 wrote its four files; epoch 2 fails on its first
            raise OSError(28, "No space left on device")
        real_save(path, write)

    monkeypatch.setattr(runs, "save_atomic", disk_full_in_epoch_2)
    code, out, err = run_main(module, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1
    assert f"error: could not write the results of epoch 2 to {tmp_path}: No space left on device;" in err
    assert f"the results of epoch 1 are in {tmp_path}/" in err
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2
    assert "epoch 3:" not in out


# --- Ctrl-C ----------------------------------------------------------------------------------------


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
    assert "interrupted: the results of epochs 1-" in err and f" are in {out}/" in err
    finished = [line for line in printed if line.startswith("epoch ")]
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert len(rows) == len(finished) >= 2
    assert f"the results of epochs 1-{len(finished)} are in" in err
    model = train_resnet.NET()
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    assert sorted(os.listdir(out)) == ["accuracy.png", "checkpoint.pt", "metrics.csv", "mistakes.png", "model.pt"]  # no temporary files


# --- the out folder --------------------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("where", ["out-dir is a file", "out-dir is below a file", "model.pt is a folder"])
def test_unwritable_out_dir_is_refused_before_training(module, where, mnist_dir, tmp_path):
    in_the_way = tmp_path / "results"
    in_the_way.write_text("my notes\n")
    out_dir = {"out-dir is a file": in_the_way, "out-dir is below a file": in_the_way / "run1"}.get(where)
    if out_dir is None:
        out_dir = tmp_path / "out"
        (out_dir / "model.pt").mkdir(parents=True)
    code, out, err = run_main(module, "--data-dir", mnist_dir, "--out-dir", out_dir, "--no-show")
    assert code == 1
    assert f"error: cannot write results to {out_dir}" in err and "--out-dir" in err
    reason = {"out-dir is a file": "is a file, not a folder", "out-dir is below a file": "Not a directory"}
    assert reason.get(where, "model.pt is a folder") in err
    assert "epoch" not in out and "device" not in out
    assert in_the_way.read_text() == "my notes\n"


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
        runs.save_atomic(str(target), write_half)
    assert target.read_text() == "old results\n"
    assert os.listdir(tmp_path) == ["metrics.csv"]
    runs.save_atomic(str(target), lambda f: f.write(b"new results\n"))
    assert target.read_text() == "new results\n"
