"""Shared fixtures: a small real MNIST subset in torchvision's layout, and a way to run a script."""
import gzip
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHIPPED = pathlib.Path(__file__).resolve().parent / "data"  # 2,000 train + 500 test MNIST images, see its README
sys.path.insert(0, str(ROOT))
os.environ["MPLBACKEND"] = "Agg"  # tests never open windows


def write_mnist(root):
    raw = pathlib.Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in sorted(SHIPPED.glob("*.gz")):
        (raw / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    return pathlib.Path(root)


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A data folder with the shipped subset, shared by the tests that only read it."""
    return write_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture
def own_mnist(tmp_path):
    """A private copy of the subset that a test may damage."""
    return write_mnist(tmp_path / "data")


CPU = ("--device", "cpu")  # the tests of what a run does pin the CPU; tests/test_accelerator.py covers the rest


def script_call(script, *args, env=None):
    """The arguments of subprocess.run/Popen that start a script from the repository root; a training script
    runs on the CPU unless args name another --device (the last --device given counts)."""
    pinned = CPU if script.startswith("train_") else ()
    return dict(
        args=[sys.executable, str(ROOT / script), *pinned, *map(str, args)],
        cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})), text=True,
    )


def run_script(script, *args, env=None, timeout=120):
    """Run a training script as a user would; returns the CompletedProcess."""
    return subprocess.run(**script_call(script, *args, env=env), capture_output=True, timeout=timeout)
