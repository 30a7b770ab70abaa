"""MNIST for the lecture-11 scripts: torchvision downloads and parses the files, then each split is
held once, as one uint8 tensor on the training device, and normalized batch by batch.

Why not the lecture's DataLoader + ToTensor() + Normalize()? For 28x28 images that per-image pipeline
(a PIL image, two transforms and a collate for every image) takes about a third of a CPU epoch. Here a
batch is one indexing of a tensor that already sits where the model runs. The numbers are the same:
tests/test_data.py checks the batches against torchvision's own transforms.
"""
import gzip
import math
import os
import shutil
import socket
import zlib

import torch

MEAN, STD = 0.1307, 0.3081  # mean and std of MNIST's training pixels, on ToTensor's 0..1 scale
TEST_BATCH_SIZE = 200  # evaluation: fewer steps than 64; far larger batches fall out of CPU cache (slower, more memory)
DOWNLOAD_TIMEOUT = 10  # seconds a download may wait on a silent network before it gives up

# The four files torchvision reads from <data-dir>/MNIST/raw/: (name, magic number, dimensions).
FILES = (
    ("train-images-idx3-ubyte", 0x803, 3),
    ("train-labels-idx1-ubyte", 0x801, 1),
    ("t10k-images-idx3-ubyte", 0x803, 3),
    ("t10k-labels-idx1-ubyte", 0x801, 1),
)


class DataError(Exception):
    """MNIST could not be downloaded or read. The message says what is wrong and how to fix it."""


def normalize(images):
    """uint8 pixels -> float32, the same numbers as torchvision's ToTensor() then Normalize((MEAN,), (STD,))."""
    return images.float().div_(255).sub_(MEAN).div_(STD)


class Batches:
    """(images, labels) batches cut from two tensors on the device; images are normalized per batch.

    With shuffle=True every pass visits all images once in a new order drawn from its own seeded
    generator; otherwise the order is fixed. The last batch may be smaller.
    """

    def __init__(self, images, labels, batch_size, shuffle=False, seed=0):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.generator = torch.Generator().manual_seed(seed) if shuffle else None

    def __len__(self):
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        # The permutation is drawn on the CPU, so a seed gives the same order on every device.
        order = None if self.generator is None else torch.randperm(n, generator=self.generator).to(self.labels.device)
        for start in range(0, n, self.batch_size):
            index = slice(start, start + self.batch_size) if order is None else order[start : start + self.batch_size]
            yield normalize(self.images[index]), self.labels[index]


def mnist_loaders(data_dir, batch_size, device, seed=0):
    """Train and test batches of MNIST from data_dir (downloaded there first if missing) on device."""
    ensure_downloaded(data_dir)
    check_files(data_dir)
    # Imported here, not at the top: a second of start-up that --help, usage errors and bad files skip.
    from torchvision import datasets

    loaders = []
    for train in (True, False):
        try:
            split = datasets.MNIST(data_dir, train=train, download=False)
        except Exception as e:  # check_files passed, so this is something it does not know of
            raise DataError(f"could not read MNIST in {raw_folder(data_dir)}: {one_line(e)}") from e
        images = split.data.unsqueeze(1).to(device)  # (N, 1, 28, 28) uint8: a quarter of float32's memory
        labels = split.targets.to(device)
        if train:
            loaders.append(Batches(images, labels, batch_size, shuffle=True, seed=seed))
        else:
            loaders.append(Batches(images, labels, TEST_BATCH_SIZE))
    return tuple(loaders)


def raw_folder(data_dir):
    return os.path.join(data_dir, "MNIST", "raw")


def unpack_gz(folder):
    """Unpack each MNIST file that is there only as a .gz copy, next to it; the .gz is left as it is.

    torchvision takes .gz files only with the checksums of its own download, so a copy from another
    mirror (compressed again) would otherwise count as missing.
    """
    for name, _, _ in FILES:
        path, gz = os.path.join(folder, name), os.path.join(folder, name + ".gz")
        if os.path.exists(path) or not os.path.isfile(gz):
            continue
        tmp = f"{path}.{os.getpid()}.tmp"  # a half-unpacked file never takes the real name
        try:
            with gzip.open(gz, "rb") as packed, open(tmp, "wb") as unpacked:
                shutil.copyfileobj(packed, unpacked)
            os.replace(tmp, path)
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise DataError(f"{gz} is damaged and cannot be unpacked ({one_line(e)}). Replace the file.") from e
        except OSError as e:
            raise DataError(f"cannot unpack {gz}: {e.strerror or e}. Check the file and the folder's permissions.") from e
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        print(f"unpacked {gz} (the .gz is kept)")


def ensure_downloaded(data_dir):
    """Use .gz copies where the files are missing, else let torchvision download them, or fail quickly."""
    folder = raw_folder(data_dir)
    unpack_gz(folder)

    def all_there():
        return all(os.path.isfile(os.path.join(folder, name)) for name, _, _ in FILES)

    if all_there():
        return
    from torchvision import datasets

    made, path = [], os.path.abspath(folder)  # the folders the download will make, innermost first
    while not os.path.isdir(path):
        made.append(path)
        path = os.path.dirname(path)
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # urllib waits forever on a silent network otherwise
    try:
        datasets.MNIST(data_dir, train=True, download=True)  # downloads, then parses the training split
    except Exception as e:
        if all_there():  # downloaded but not readable: check_files, next, names the file and what is wrong
            return
        for path in made:  # a failed download leaves no empty folders behind
            try:
                os.rmdir(path)
            except OSError:
                break
        names = ", ".join(name for name, _, _ in FILES)
        raise DataError(
            f"MNIST is not in {folder}/ and could not be downloaded.\n"
            f"  download error: {one_line(e)}\n"
            f"  fix: copy the four MNIST files ({names}, or their .gz copies)\n"
            f"       into {folder}/, or point --data-dir at a folder that has MNIST/raw/ with them."
        ) from e
    finally:
        socket.setdefaulttimeout(previous_timeout)


def check_files(data_dir):
    """Check the four files' headers and sizes, so that a bad file is named instead of failing in torchvision.

    Only reads; the user's files are never changed.
    """
    counts = {}
    for name, magic, ndim in FILES:
        path = os.path.join(raw_folder(data_dir), name)
        try:
            with open(path, "rb") as f:
                header = f.read(4 + 4 * ndim)
            size = os.path.getsize(path)
        except OSError as e:
            raise DataError(f"cannot read {path}: {e.strerror or e}. Check the file and its permissions.") from e
        if len(header) < 4 + 4 * ndim:
            raise DataError(f"{path} is truncated: {size} bytes, too short even for its header. Replace the file.")
        found = int.from_bytes(header[:4], "big")
        if found != magic:
            what = "image" if ndim == 3 else "label"
            raise DataError(
                f"{path} has magic number {found:#010x}, not {magic:#010x}: it is not an MNIST {what} file"
                " (a .gz file that was not unpacked, or a file under the wrong name?). Replace it with the real file."
            )
        dims = [int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        expected = 4 + 4 * ndim + math.prod(dims)
        if size != expected:
            shape = " x ".join(map(str, dims))
            state = "truncated" if size < expected else "too long"
            raise DataError(
                f"{path} is {state}: its header promises {shape} bytes of data ({expected} bytes in all),"
                f" but the file has {size} bytes. Replace the file."
            )
        if ndim == 3 and dims[1:] != [28, 28]:
            raise DataError(f"{path} holds {dims[1]}x{dims[2]} images; these nets need MNIST's 28x28. Replace the file.")
        counts[name] = dims[0]
    for prefix in ("train", "t10k"):
        images, labels = counts[f"{prefix}-images-idx3-ubyte"], counts[f"{prefix}-labels-idx1-ubyte"]
        if images != labels:
            raise DataError(
                f"{raw_folder(data_dir)}: {prefix}-images-idx3-ubyte has {images} images but {prefix}-labels-idx1-ubyte"
                f" has {labels} labels; they must match. Replace the file that belongs to another set."
            )


def one_line(error):
    """The last non-empty line of an exception's message (torchvision's download errors span many)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
