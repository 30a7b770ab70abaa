"""Bad data meets one clear message, exit code 1, and the user's files left as they were."""

import gzip
import io
import os
import socket
import time
import urllib.error
import urllib.request

import pytest
import torch

import train_inception
import train_resnet
from conftest import OFFLINE, digest, run_main, run_script, says, use_proxy
from data import mnist_loaders
from helpers import mnist
from helpers.mnist import FILES, DataError, read_mnist

MODULES = [train_inception, train_resnet]


@pytest.mark.parametrize("module", MODULES)
def test_a_failed_download_names_the_mirrors_to_fetch_the_files_from_by_hand(module, tmp_path, monkeypatch):
    use_proxy(monkeypatch, OFFLINE["http_proxy"])  # a closed local port: every request is refused at once
    asked, real_urlopen = [], urllib.request.urlopen

    def urlopen(request, *args, **kwargs):
        asked.append((getattr(request, "method", None) or "GET", getattr(request, "full_url", request)))
        return real_urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    data_dir = tmp_path / "data"
    code, out, err = run_main(module, "--data-dir", data_dir, "--out-dir", tmp_path / "out", "--no-show")
    assert code == 1 and "Traceback" not in err and out.startswith("device: cpu\n")
    lines = err.splitlines()
    assert (
        lines[0].startswith(
            f"error: MNIST is not in {data_dir / 'MNIST' / 'raw'}{os.sep} nor in {data_dir}{os.sep},"
            " and could not be downloaded ("
        )
        and "refused" in lines[0].lower()
    )
    assert lines[1] == f"  tried, in this order: {', '.join(mnist.MIRRORS)}"  # none answered: the order given
    assert ("GET", "https://dataset.bj.bcebos.com/mnist/train-images-idx3-ubyte.gz") in asked  # Baidu's was tried
    # Each file's full address, not a folder that object storage answers with an XML error in a browser.
    assert all(f"\n         https://dataset.bj.bcebos.com/mnist/{name}.gz\n" in err for name in FILES)
    assert "mainland China" in err and "train-images.idx3-ubyte" in err and "--data-dir" in err
    assert os.listdir(tmp_path) == []  # no data folder, no run folder


def test_the_mirror_that_answers_first_is_tried_first(monkeypatch):
    delays = {
        mnist.MIRRORS[0]: 0.1,
        mnist.BAIDU: 0.0,
        mnist.MIRRORS[2]: None,
    }  # in Beijing, say; the last never answers

    def urlopen(request, timeout):
        mirror = request.full_url.rsplit("/", 1)[0] + "/"
        assert request.method == "HEAD" and timeout == mnist.PROBE_TIMEOUT
        if delays[mirror] is None:
            raise urllib.error.URLError("timed out")
        time.sleep(delays[mirror])
        return io.BytesIO()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    assert mnist.fastest_first(mnist.MIRRORS) == [mnist.BAIDU, mnist.MIRRORS[0], mnist.MIRRORS[2]]
    delays.update({mnist.MIRRORS[0]: 0.0, mnist.BAIDU: 0.1})  # elsewhere
    assert mnist.fastest_first(mnist.MIRRORS) == list(mnist.MIRRORS)
    delays[mnist.BAIDU] = 0.5
    monkeypatch.setattr(mnist, "PROBE_TIMEOUT", 0.05)  # one too slow to wait for: after those that answered
    started = time.monotonic()
    assert mnist.fastest_first(mnist.MIRRORS) == list(mnist.MIRRORS) and time.monotonic() - started < 0.4


def test_an_empty_data_dir_is_the_working_folder(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(mnist_dir)
    (train_images, _), (test_images, _) = read_mnist("")  # DATA_DIR = "" at the top of a script
    assert (len(train_images), len(test_images)) == (320, 80)
    use_proxy(monkeypatch, OFFLINE["http_proxy"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as error:
        read_mnist("")
    assert str(error.value).startswith(
        f"error: MNIST is not in {os.path.join(os.curdir, 'MNIST', 'raw')}{os.sep} nor in {os.curdir}{os.sep},"
    )


@pytest.mark.slow
def test_failed_download_from_the_command_line(tmp_path):
    result = run_script(
        "train_resnet.py", "--data-dir", tmp_path / "data", "--out-dir", tmp_path / "out", "--no-show", env=OFFLINE
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: MNIST is not in ")


@pytest.mark.slow  # three mirrors waited on
def test_silent_network_gives_up_within_seconds(tmp_path, monkeypatch):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    proxy = f"http://127.0.0.1:{silent.getsockname()[1]}"
    use_proxy(monkeypatch, proxy)
    monkeypatch.setattr(mnist, "DOWNLOAD_TIMEOUT", 0.2)
    monkeypatch.setattr(mnist, "PROBE_TIMEOUT", 0.2)
    start = time.monotonic()
    try:
        with pytest.raises(DataError, match=r"could not be downloaded \(.*timed out"):
            mnist_loaders(tmp_path, 64, torch.device("cpu"))
    finally:
        silent.close()
    # torchvision tries three mirrors, and start-up takes a moment: seconds, not the minutes of no timeout.
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
        ("train-images-idx3-ubyte", truncate, ["is truncated", "promises 320 x 28 x 28 bytes", "5000 bytes"]),
        ("t10k-labels-idx1-ubyte", wrong_magic, ["magic number 0x1f8b0800, not 0x00000801", "not an MNIST label file"]),
        (
            "train-labels-idx1-ubyte",
            one_label_short,
            ["has 320 images but", "train-labels-idx1-ubyte has 319 labels"],
        ),
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
    for name in FILES:
        (raw / f"{name}.gz").write_bytes(gzip.compress((raw / name).read_bytes(), compresslevel=1, mtime=0))
        (raw / name).unlink()


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "layout",
    [pytest.param("gz in MNIST/raw", marks=SLOW), pytest.param("dotted names, flat", marks=SLOW), "dotted gz, flat"],
)
def test_files_are_read_where_they_are_under_either_name_and_left_untouched(layout, own_mnist, tmp_path):
    raw = own_mnist / "MNIST" / "raw"
    if layout != "dotted names, flat":
        gz_only(raw)
    if layout != "gz in MNIST/raw":  # as Kaggle and many mirrors have them: train-images.idx3-ubyte, in one folder
        for path in raw.iterdir():
            path.rename(own_mnist / path.name.replace("-idx", ".idx"))
        raw.rmdir()
        (own_mnist / "MNIST").rmdir()
    before = digest(own_mnist if layout != "gz in MNIST/raw" else raw)
    code, out, err = run_main(
        train_resnet, "--epochs", 1, "--data-dir", own_mnist, "--out-dir", tmp_path / "out", "--no-show"
    )
    assert code == 0, err
    assert "ResidualNet: 41,514 parameters, 320 training images" in out and "epoch 1: test accuracy" in out
    assert digest(own_mnist if layout != "gz in MNIST/raw" else raw) == before  # nothing unpacked, added or changed
    assert sorted(p.name for p in own_mnist.iterdir()) == (["MNIST"] if layout == "gz in MNIST/raw" else sorted(before))


def test_an_empty_gz_is_named_and_leaves_nothing_behind(own_mnist, tmp_path):
    raw = own_mnist / "MNIST" / "raw"
    gz_only(raw)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")  # an interrupted download
    before = digest(raw)
    code, out, err = run_main(train_resnet, "--data-dir", own_mnist, "--out-dir", tmp_path / "out", "--no-show")
    assert code == 1
    says(err, f"{raw / 't10k-labels-idx1-ubyte.gz'} is empty", "Replace the file")
    assert digest(raw) == before


@pytest.mark.parametrize("name", ["train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"])
def test_a_label_that_is_not_a_digit_is_named(name, own_mnist, tmp_path):
    path = own_mnist / "MNIST" / "raw" / name
    labels = bytearray(path.read_bytes())
    labels[8 + 17] = 200  # the 18th label
    path.write_bytes(bytes(labels))
    code, out, err = run_main(train_resnet, "--data-dir", own_mnist, "--out-dir", tmp_path / "out", "--no-show")
    assert code == 1
    says(err, f"{path} is damaged", "label 200 at position 17", "Replace the file")


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

    def read_protected(
        path, *args
    ):  # tests run as root here, so take the permission away where helpers/mnist.py opens it
        if str(path) == str(labels):
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args)

    monkeypatch.setattr(mnist, "open", read_protected, raising=False)
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
