"""Shared fixtures: a small real MNIST subset in torchvision's layout, and ways to run a script."""

import contextlib
import csv
import gzip
import hashlib
import importlib.util
import io
import os
import pathlib
import signal
import subprocess
import sys
import urllib.request

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHIPPED = pathlib.Path(__file__).resolve().parent / "data"  # 2,000 train + 500 test MNIST images, see its README
os.environ["MPLBACKEND"] = "Agg"  # tests never open windows


def write_mnist(root, train=320, test=80):
    """MNIST's four files in root/MNIST/raw/: the first train and test images of the shipped subset (at most 2,000 and
    500), with their labels. 320 are 5 batches of 64: enough for what a run does, quick enough to run it often."""
    raw = pathlib.Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in sorted(SHIPPED.glob("*.gz")):
        data = gzip.decompress(gz.read_bytes())
        header, size = (16, 28 * 28) if "images" in gz.name else (8, 1)
        count = train if gz.name.startswith("train") else test
        (raw / gz.stem).write_bytes(
            data[:4] + count.to_bytes(4, "big") + data[8:header] + data[header:][: count * size]
        )
    return pathlib.Path(root)


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A data folder with 320 training and 80 test digits, shared by the tests that only read it."""
    return write_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="session")
def mnist_full(tmp_path_factory):
    """The whole shipped subset, 2,000 training and 500 test digits: for the tests of what a net learns."""
    return write_mnist(tmp_path_factory.mktemp("mnist_full"), train=2000, test=500)


@pytest.fixture
def own_mnist(tmp_path):
    """A private copy of the small subset that a test may damage."""
    return write_mnist(tmp_path / "data")


CPU = ("--device", "cpu")  # the tests of what a run does pin the CPU; tests/test_accelerator.py covers the rest


def script_call(script, *args, env=None):
    """The arguments of subprocess.run/Popen that start a script from the repository root; a training script
    runs on the CPU unless args name another --device (the last --device given counts)."""
    pinned = CPU if script.startswith("train_") else ()
    return dict(
        args=[sys.executable, str(ROOT / script), *pinned, *map(str, args)],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        text=True,
    )


def run_script(script, *args, env=None, timeout=120):
    """Run a training script as a user would; returns the CompletedProcess."""
    return subprocess.run(**script_call(script, *args, env=env), capture_output=True, timeout=timeout)


def run_main(module, *args):
    """Call a script's main() as `python script.py ARGS` would: returns (exit code, stdout, stderr). A training
    script runs on the CPU unless args name another --device."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    pinned = CPU if hasattr(module, "OUT_DIR") else ()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            module.main([*pinned, *map(str, args)])
        except SystemExit as e:  # what the interpreter does with it: a message goes to stderr, exit 1
            code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
            if isinstance(e.code, str):
                print(e.code, file=err)
    return code, out.getvalue(), err.getvalue()


def stopped_in_epoch_2(module, out, mnist_dir, monkeypatch, stop=KeyboardInterrupt):
    """A run asked for 2 epochs, stopped (by Ctrl-C, or a kill: helpers.run.Stop) in its second: checkpoint.pt holds
    epoch 1. Returns what the stop printed on stderr."""
    real_train = module.train

    def train_then_stop(model, device, loader, optimizer, criterion, epoch, log_every):
        if epoch == 2:
            raise stop
        return real_train(model, device, loader, optimizer, criterion, epoch, log_every)

    monkeypatch.setattr(module, "train", train_then_stop)
    code, _, err = run_main(
        module, "--epochs", 2, "--log-every", 5, "--data-dir", mnist_dir, "--out-dir", out, "--no-show"
    )
    monkeypatch.setattr(module, "train", real_train)
    assert code == (130 if stop is KeyboardInterrupt else 143) and f"epoch 1 saved in {out}{os.sep}" in err, err
    return err


def says(message, *words):
    """message is one line, no traceback, and holds each of words: what a learner needs of it (the cause, the fix, the
    folder), not every word of it."""
    assert len(message.strip().splitlines()) == 1 and "Traceback" not in message, message
    for word in words:
        assert str(word) in message, (word, message)


def load_script(path, name, models=None, monkeypatch=None):
    """The training script at path, loaded as a module of its own (a learner's edited copy); with models, a models.py
    of its own too (monkeypatch puts it in sys.modules while the test runs)."""
    if models is not None:
        monkeypatch.setitem(sys.modules, "models", load_module(models, "models"))
    return load_module(path, name)


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def edited(tmp_path, file, *edits):
    """A copy of the repository's file under tmp_path/edited/ (the same name), each (old, new) edit made once."""
    text = (ROOT / file).read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "edited" / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}


def use_proxy(monkeypatch, proxy):
    """Send this process's downloads through proxy (urllib reads the variables when it builds its opener)."""
    for name, value in [("http_proxy", proxy), ("https_proxy", proxy), ("no_proxy", ""), ("NO_PROXY", "")]:
        monkeypatch.setenv(name, value)
    # urlopen() keeps the opener it built first; a new one reads the variables. Undone after the test.
    monkeypatch.setattr(urllib.request, "_opener", urllib.request.build_opener())


def train(module, out, *args, mnist_dir):
    """The tests' run: a script's main() on the shipped subset into out (None: the script's OUT_DIR; with --resume, the
    run named there), logging every 10 batches and showing no plot. Returns what it printed; it must succeed."""
    where = [] if "--resume" in args or out is None else ["--out-dir", out]
    code, stdout, stderr = run_main(module, *args, "--log-every", 5, "--data-dir", mnist_dir, *where, "--no-show")
    assert code == 0, stderr
    return stdout


def start(script, *args, env=None):
    """A script started as its own process, as from a terminal (Ctrl-C is Python's KeyboardInterrupt), its output
    piped: for the tests that send a real signal."""
    return subprocess.Popen(
        **script_call(script, *args, env=env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def results(folder):
    """What must not depend on where a run stopped: the metrics' loss and accuracy columns and the weights."""
    with open(folder / "metrics.csv", newline="") as f:
        rows = [(row["epoch"], row["train_loss"], row["test_accuracy"]) for row in csv.DictReader(f)]
    return rows, torch.load(folder / "model.pt", weights_only=True)


def assert_same_results(folder, reference):
    rows, weights = results(folder)
    expected_rows, expected_weights = results(reference)
    assert rows == expected_rows
    assert weights.keys() == expected_weights.keys()
    for name, tensor in weights.items():
        assert torch.equal(tensor, expected_weights[name]), name  # bit for bit
