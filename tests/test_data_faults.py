"""Bad data meets one clear message, exit code 1, and the user's files left as they were."""
import gzip
import os
import socket
import time

import pytest
import torch

import data
import train_inception
import train_resnet
from conftest import OFFLINE, digest, run_main, run_script, use_proxy
from data import FILES

MODULES = [train_inception, train_resnet]


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
