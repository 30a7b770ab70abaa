"""The two training scripts: end to end through their command line on the shipped MNIST subset, the lesson's shape,
the device, and where the plot goes."""

import contextlib
import csv
import io
import json
import os
import platform
import re

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

import models
import train_inception
import train_resnet
from conftest import ROOT, run_main, run_script
from data import mnist_loaders
from helpers import device, figures

SCRIPTS = {"train_inception.py": train_inception, "train_resnet.py": train_resnet}


def read_metrics(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, epochs, lr, bar", [("train_inception.py", 2, 0.01, None), ("train_resnet.py", 3, 0.05, 90.0)]
)
def test_script_trains_and_writes_its_results(script, epochs, lr, bar, mnist_full, tmp_path):
    out = tmp_path / "out"
    show = ["--no-show"] if script == "train_resnet.py" else []  # without it, a headless backend: no window, no warning
    args = ["--epochs", epochs, "--lr", lr, "--log-every", 10, "--data-dir", mnist_full, "--out-dir", out, *show]
    result = run_script(script, *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[:2] == ["device: cpu", f"results: {out}{os.sep}"]
    net = lines[2].split(":")[0]
    assert lines[2] in (
        "InceptionNet: 97,298 parameters, 2,000 training images",
        "ResidualNet: 41,514 parameters, 2,000 training images",
    )
    assert "[1,    30] loss: " in result.stdout  # the lecture's loss line
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == epochs
    assert re.fullmatch(r"epoch 1: test accuracy \d+\.\d\d%  \(train \d+\.\d s, \d+ img/s\)", epoch_lines[0])
    final = re.fullmatch(r"final test accuracy (\d+\.\d\d)% \(best \d+\.\d\d% at epoch \d+\); plot: (.+)", lines[-1])
    assert final and final.group(2) == str(out / "accuracy.png")

    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    settings = json.loads((out / "settings.json").read_text(encoding="utf-8"))  # what the run was
    assert settings["script"] == script and settings["net"] == net and settings["device"] == "cpu"
    assert settings["flags"] == {
        "epochs": epochs,
        "batch_size": 64,
        "lr": lr,
        "momentum": 0.5,
        "seed": 0,
        "log_every": 10,
        "data_dir": str(mnist_full),
        "out_dir": str(out),
    }
    assert settings["versions"] == {"python": platform.python_version(), "torch": str(torch.__version__)}
    assert settings["data"] == {"training_images": 2000, "test_images": 500} and settings["epochs_done"] == epochs
    assert list(settings["code"]) == [script, "models.py", "data.py"]
    rows = read_metrics(out / "metrics.csv")
    assert [row["epoch"] for row in rows] == [str(e) for e in range(1, epochs + 1)]
    assert set(rows[0]) == {"epoch", "train_loss", "test_accuracy", "train_seconds"}
    assert rows[-1]["test_accuracy"] == final.group(1)
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])

    # The saved weights load safely and give the printed accuracy again.
    model = getattr(models, net)()
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    _, test_loader = mnist_loaders(mnist_full, batch_size=64, device=torch.device("cpu"))
    assert f"{SCRIPTS[script].test(model, torch.device('cpu'), test_loader):.2f}" == final.group(1)
    if bar is not None:  # 96 SGD steps on 2,000 real digits are plenty for a residual net
        assert float(final.group(1)) >= bar


@pytest.mark.slow  # three runs; the quick run keeps the bit-exact resume of tests/test_resume.py
@pytest.mark.parametrize("module", [train_inception, train_resnet])
def test_same_seed_gives_identical_weights_on_the_cpu(module, mnist_dir, tmp_path):
    weights = []
    for name, seed in (("a", 3), ("b", 3), ("c", 5)):
        code, _, err = run_main(
            module, "--epochs", 1, "--seed", seed, "--data-dir", mnist_dir, "--out-dir", tmp_path / name, "--no-show"
        )
        assert code == 0, err
        weights.append(torch.load(tmp_path / name / "model.pt", weights_only=True))
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])  # bit for bit
    assert not torch.equal(weights[0]["l1.weight"], weights[2]["l1.weight"])  # and the seed matters
    metrics = [read_metrics(tmp_path / name / "metrics.csv") for name in ("a", "b")]
    assert [(r["train_loss"], r["test_accuracy"]) for r in metrics[0]] == [
        (r["train_loss"], r["test_accuracy"]) for r in metrics[1]
    ]


def test_scripts_differ_only_where_the_nets_differ():
    inception, resnet = (
        open(module.__file__, encoding="utf-8").read().splitlines() for module in (train_inception, train_resnet)
    )
    assert len(inception) == len(resnet)
    differing = [i for i, (a, b) in enumerate(zip(inception, resnet)) if a != b]
    assert len(differing) <= 8, [resnet[i] for i in differing]
    assert (train_inception.OUT_DIR, train_resnet.OUT_DIR) == ("runs/inception", "runs/resnet")


def test_the_scripts_read_like_the_lecture():
    source = (ROOT / "train_resnet.py").read_text(encoding="utf-8")
    for line in (
        "criterion = torch.nn.CrossEntropyLoss()",
        "running_loss += loss.item()",
        "loss = criterion(outputs, target)",
        "total += labels.size(0)",
        "correct += (predicted == labels).sum().item()",
        "for epoch in range(first_epoch, args.epochs + 1):",
        "inputs, target = inputs.to(device), target.to(device)",
        "optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)",
    ):
        assert line in source, line
    # 95 lines before ruff format put each constant of helpers.Run(...) on a line of its own
    assert len(train_resnet.__doc__.splitlines()) <= 6 and len(source.splitlines()) <= 105


def test_device_choice(monkeypatch):
    pick = device.pick
    assert pick("cpu") == torch.device("cpu")
    monkeypatch.setattr(device, "available", lambda: "cpu")
    monkeypatch.setattr(device, "gpu_hint", lambda: None)
    assert pick("auto") == torch.device("cpu")
    with pytest.raises(
        ValueError, match=r"'cuda' is not available \(torch finds no GPU here\); use --device auto or cpu"
    ):
        pick("cuda")
    monkeypatch.setattr(device, "available", lambda: "mps")  # a Mac
    assert pick("auto") == torch.device("mps") and pick("mps") == torch.device("mps")
    with pytest.raises(ValueError, match=r"'cuda' is not available \(this machine has mps\)"):
        pick("cuda")
    monkeypatch.setattr(device, "available", lambda: "cuda")  # one NVIDIA GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick("auto") == torch.device("cuda") and pick("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match=r"'cuda:1' is not available \(this machine has 1 CUDA devices\)"):
        pick("cuda:1")
    with pytest.raises(ValueError, match="'gpu' is not a device torch knows"):
        pick("gpu")


WINDOW = "the plot is open in a window: close it to end the script (--no-show skips it)"


def test_the_plot_window_is_announced_because_it_holds_the_script(mnist_dir, tmp_path, monkeypatch):
    shown = []
    plt.close(plt.figure())  # pyplot loads Agg first: with the stand-in below it would refuse to, run on its own
    monkeypatch.setattr(FigureCanvasAgg, "required_interactive_framework", "tk")  # as a laptop's TkAgg window would
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf().axes[0].get_title()))
    code, out, err = run_main(train_resnet, "--epochs", 1, "--data-dir", mnist_dir, "--out-dir", tmp_path / "run")
    assert code == 0, err
    assert out.splitlines()[-1] == WINDOW
    assert len(shown) == 1 and shown[0].startswith("ResidualNet on MNIST: final test accuracy")
    code, out, err = run_main(
        train_resnet, "--epochs", 1, "--data-dir", mnist_dir, "--out-dir", tmp_path / "run", "--no-show"
    )
    assert code == 0 and WINDOW not in out and len(shown) == 1


@pytest.mark.parametrize(
    "backend, in_kernel, goes_to_show",
    [
        ("module://ide_backend", False, True),  # PyCharm's plot pane: plt.show() puts it there, no window to close
        ("module://matplotlib_inline.backend_inline", True, True),  # a notebook: inline
        (
            "module://matplotlib_inline.backend_inline",
            False,
            False,
        ),  # !python in a notebook: it would print Figure(640x420)
        ("agg", False, False),  # no screen: the file is what is left
    ],
)
def test_the_plot_goes_where_it_can_be_seen_and_no_window_is_claimed(backend, in_kernel, goes_to_show, monkeypatch):
    shown = []
    monkeypatch.setattr(plt, "get_backend", lambda: backend)
    monkeypatch.setattr(plt, "show", lambda: shown.append(True))
    monkeypatch.setattr(figures, "in_kernel", lambda: in_kernel)
    with contextlib.redirect_stdout(io.StringIO()) as said:
        figures.show(figures.plot({"best": [(1, 0.5, 97.0, 1.0)]}, "ResidualNet"))
    assert shown == [True] * goes_to_show and said.getvalue() == "" and plt.get_fignums() == []


def test_an_ide_backend_gets_the_plot_through_plt_show():
    import ide_backend

    matplotlib.use("module://ide_backend")
    try:
        fig = figures.plot({"best": [(1, 0.5, 97.0, 1.0)]}, "ResidualNet")
        with contextlib.redirect_stdout(io.StringIO()) as said:
            figures.show(fig)
        assert ide_backend.shown == [fig.number] and said.getvalue() == ""
    finally:
        matplotlib.use("agg")
