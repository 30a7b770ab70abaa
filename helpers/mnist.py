"""MNIST's four files for data.py: found where they are, checked, and read as tensors; downloaded where missing.

The files are found in DATA_DIR/MNIST/raw/ (torchvision's layout) or straight in DATA_DIR, under their usual names
(train-images-idx3-ubyte) or the dotted ones of many mirrors and Kaggle (train-images.idx3-ubyte), unpacked or .gz.
They are only read, never changed. A file that is not what it should be ends the script with a DataError naming it.
Where they are missing, torchvision downloads them from the quickest of three mirrors (one of them quick in mainland
China), each file checked against its MD5; where every mirror fails, the DataError says where to fetch them by hand.
"""

import contextlib
import gzip
import io
import math
import os
import socket
import time
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor, wait

import torch

from . import store
from .store import one_line

# Seconds a download may wait on a silent network before it gives up.
DOWNLOAD_TIMEOUT = 10
# Seconds the mirrors are given to answer before the download starts with the quickest (see fastest_first).
PROBE_TIMEOUT = 3
# PaddlePaddle's copy on Baidu's cloud in Beijing: the same four files, with the MD5s torchvision checks.
BAIDU = "https://dataset.bj.bcebos.com/mnist/"
# torchvision's own two mirrors, and Baidu's.
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", BAIDU, "http://yann.lecun.com/exdb/mnist/")
# The four files. Their idx header starts with 0x0803 (unsigned bytes, 3 dimensions: images) or 0x0801 (labels).
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataError(SystemExit):
    """MNIST could not be downloaded or read: the script ends with this message, which says what is wrong and how to
    fix it (exit code 1, no traceback: the fault is in the files, not in the code)."""

    def __init__(self, message):
        super().__init__(f"error: {message}")


def raw_folder(data_dir):
    return os.path.join(data_dir, "MNIST", "raw")


def find(data_dir, name):
    """Where one of the four files is: MNIST/raw/ first, then data_dir itself; either name, packed or not; else None."""
    for folder in (raw_folder(data_dir), data_dir):
        for base in (name, name.replace("-idx", ".idx")):
            for path in (os.path.join(folder, base), os.path.join(folder, base + ".gz")):
                if os.path.isfile(path):
                    return path
    return None


def read_mnist(data_dir):
    """((train images, labels), (test images, labels)): images (N, 1, 28, 28) uint8, labels int64, on the CPU."""
    data_dir = data_dir or os.curdir  # DATA_DIR = "": the working folder
    paths = [find(data_dir, name) for name in FILES]
    if None in paths:
        download(data_dir)
        paths = [find(data_dir, name) for name in FILES]
    tensors = [read_idx(path, 3 if "images" in name else 1) for path, name in zip(paths, FILES)]
    splits = []
    for (images, labels), (image_path, label_path) in zip((tensors[:2], tensors[2:]), (paths[:2], paths[2:])):
        if len(images) != len(labels):
            raise DataError(
                f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels; they must"
                " match. Replace the file that belongs to another set."
            )
        if len(wrong := (labels > 9).nonzero()):
            i = int(wrong[0])
            raise bad_file(label_path, f"is damaged: label {int(labels[i])} at position {i} is not a digit 0-9")
        splits.append((images.unsqueeze(1), labels.long()))
    return splits


def bad_file(path, what):
    """The DataError of a file that is not what it should be: path, what is wrong with it, and the fix."""
    return DataError(f"{path} {what}. Replace the file.")


def read_idx(path, ndim):
    """One file of MNIST's idx format (a .gz one unpacked in memory) as a uint8 tensor, checked on the way."""
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            raw = f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise bad_file(path, f"is damaged and cannot be unpacked ({one_line(e)}): an interrupted download?") from e
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}. Check the file and its permissions.") from e
    header = 4 + 4 * ndim
    if len(raw) < header:
        short = f"truncated: {len(raw)} bytes, too short even for its header"
        raise bad_file(path, f"is {short}" if raw else "is empty (an interrupted download?)")
    if (found := int.from_bytes(raw[:4], "big")) != (magic := 0x800 + ndim):
        what = f"not an MNIST {'image' if ndim == 3 else 'label'} file (a file under the wrong name?)"
        raise bad_file(path, f"has magic number {found:#010x}, not {magic:#010x}: it is {what}")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != (expected := header + math.prod(dims)):
        state = "truncated" if len(raw) < expected else "too long"
        promised = f"{' x '.join(map(str, dims))} bytes of data ({expected} bytes in all)"
        raise bad_file(path, f"is {state}: its header promises {promised}, but it has {len(raw)} bytes")
    if ndim == 3 and dims[1:] != [28, 28]:
        raise bad_file(path, f"holds {dims[1]}x{dims[2]} images; these nets need MNIST's 28x28")
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=header).view(*dims)


def fastest_first(mirrors):
    """The mirrors in the order they answer a request for one small file, all asked at once; a mirror that has not
    answered within PROBE_TIMEOUT seconds comes after, in the order given. In mainland China the first mirror is often
    slow or refused and Baidu's is quick; elsewhere it tends to be the other way round."""

    def ask(mirror):
        request = urllib.request.Request(mirror + "t10k-labels-idx1-ubyte.gz", method="HEAD")
        urllib.request.urlopen(request, timeout=PROBE_TIMEOUT).close()
        return time.perf_counter()

    pool = ThreadPoolExecutor(len(mirrors))
    asked = {pool.submit(ask, mirror): mirror for mirror in mirrors}
    done, _ = wait(asked, timeout=PROBE_TIMEOUT)
    pool.shutdown(wait=False)
    answered = [mirror for _, mirror in sorted((f.result(), asked[f]) for f in done if f.exception() is None)]
    return answered + [mirror for mirror in mirrors if mirror not in answered]


def download(data_dir):
    """torchvision's download into data_dir/MNIST/raw/, from the quickest mirror first, each file checked against its
    MD5; or a DataError that names the mirrors, to fetch the files by hand."""
    from torchvision import datasets

    made = store.missing(os.path.abspath(raw_folder(data_dir)))  # a failed download leaves none of them behind
    # urllib waits forever on a silent network otherwise.
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
    mirrors = fastest_first(MIRRORS)
    # torchvision's lines for each mirror it tries (older versions print them on stdout): the error below says them.
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            type("MNIST", (datasets.MNIST,), {"mirrors": mirrors})(data_dir, train=True, download=True)
        print(said.getvalue(), end="")
    except Exception as e:
        # Downloaded, but torchvision could not read it: read_idx says why.
        if all(find(data_dir, name) for name in FILES):
            return
        store.remove_empty(made)
        # Older torchvision prints each mirror's error on stdout, and raises only "Error downloading ...".
        printed = [line.strip() for line in said.getvalue().splitlines() if "error" in line.lower()]
        why = one_line(e) + (f": {printed[-1]}" if printed and printed[-1] not in one_line(e) else "")
        addresses = "".join(f"         {BAIDU}{name}.gz\n" for name in FILES)
        raise DataError(
            f"MNIST is not in {raw_folder(data_dir)}{os.sep} nor in {data_dir}{os.sep}, and could not be downloaded"
            f" ({why}).\n"
            f"  tried, in this order: {', '.join(mirrors)}\n"
            "  fix: download the four files in a browser, from PaddlePaddle's copy on Baidu's cloud (the quickest in"
            " mainland China; the same names under the other addresses above work too):\n"
            f"{addresses}"
            f"       and put them into {raw_folder(data_dir)}{os.sep} or {data_dir}{os.sep} (unpacked or not; Kaggle's"
            " names with a dot, train-images.idx3-ubyte, work too),\n"
            "       or point --data-dir at the folder that holds them."
        ) from e
    finally:
        socket.setdefaulttimeout(previous_timeout)
