"""python skip_connection.py: the lecture's ResidualBlock against the same block without `+ x`, stacked deep."""

import os
import re

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

import skip_connection
from conftest import run_main
from data import mnist_loaders
from models import ResidualBlock
from skip_connection import PlainBlock, Stack


def test_the_plain_block_differs_from_residual_block_only_by_the_skip():
    torch.manual_seed(0)
    residual, plain = ResidualBlock(16), PlainBlock(16)
    plain.load_state_dict(residual.state_dict())  # the same layers, so the same weights fit
    assert [name for name, _ in plain.named_parameters()] == [name for name, _ in residual.named_parameters()]
    x = torch.randn(4, 16, 12, 12)
    inner = residual.conv2(torch.relu(residual.conv1(x)))  # F(x), the part both share
    torch.testing.assert_close(residual(x), torch.relu(x + inner))
    torch.testing.assert_close(plain(x), torch.relu(inner))


def test_both_stacks_start_from_the_same_weights():
    torch.manual_seed(0)
    residual = Stack(ResidualBlock, 3)
    torch.manual_seed(0)
    plain = Stack(PlainBlock, 3)
    assert all(torch.equal(a, b) for a, b in zip(residual.state_dict().values(), plain.state_dict().values()))
    assert residual(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_a_residual_block_edited_into_the_plain_one_is_named(monkeypatch):
    """After the README's ResidualBlock edit, the experiment's two variants would be one: said before it trains."""
    assert not skip_connection.same_blocks()
    monkeypatch.setattr(skip_connection, "ResidualBlock", PlainBlock)
    assert skip_connection.same_blocks()


def test_at_the_first_step_a_deep_plain_stack_starves_its_first_block(mnist_dir):
    """The gradient facts at the first SGD step need no training: 64 test digits through both stacks of 10 blocks."""
    images, labels = (t[:64] for t in next(iter(mnist_loaders(mnist_dir, 64, torch.device("cpu"))[1])))
    norms = {}
    for block in (ResidualBlock, PlainBlock):
        torch.manual_seed(skip_connection.SEED)
        model = Stack(block, 10)
        F.cross_entropy(model(images), labels).backward()
        norms[block] = skip_connection.block_gradient_norms(model)
    residual, plain = norms[ResidualBlock], norms[PlainBlock]
    assert plain[0] < 1e-4 * residual[0] and plain[-1] > 1e-2 * residual[-1]
    assert all(a < b for a, b in zip(plain, plain[1:])) and residual.max() < 10 * residual.min()


@pytest.mark.slow  # 4 nets trained on the 2,000 digits; the gradients at the first step are tested above
def test_deep_plain_stack_starves_its_first_block_of_gradient(mnist_full):
    results = skip_connection.measure(
        [1, 10], epochs=1, device=torch.device("cpu"), data_dir=mnist_full, log=lambda line: None
    )
    residual, plain = results[("residual", 10)], results[("plain", 10)]
    assert len(residual["first_step"]) == len(plain["first_step"]) == 10
    # Orders of magnitude apart at the first block (measured here: 1e-8 against 0.3); at the last, the same order.
    assert plain["first_step"][0] < 1e-4 * residual["first_step"][0]
    assert plain["epoch_mean"][0] < 1e-4 * residual["epoch_mean"][0]
    assert plain["first_step"][-1] > 1e-2 * residual["first_step"][-1]
    # In the plain stack each block gets less than the one after it; the residual one keeps them within 10x.
    assert all(a < b for a, b in zip(plain["first_step"], plain["first_step"][1:]))
    assert max(residual["first_step"]) < 10 * min(residual["first_step"])
    assert residual["accuracy"] > plain["accuracy"] + 30  # on 2,000 images: the plain stack stays near chance
    assert results[("plain", 1)]["accuracy"] > 20  # one block alone learns
    assert residual["losses"][-1][0] == 32 and len(residual["losses"]) == 1  # (steps, mean loss) per 50 batches


@pytest.mark.slow  # four nets trained and drawn
def test_the_command_prints_its_table_and_writes_its_figure(mnist_dir, tmp_path):
    out = tmp_path / "figures" / "skip.svg"
    code, stdout, err = run_main(
        skip_connection, "--depths", "2,1", "--device", "cpu", "--data-dir", mnist_dir, "--out", out, "--no-show"
    )
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[:2] == ["device: cpu", "4 nets, 1 epoch each; batch 64, lr 0.01, momentum 0.5, seed 0"]
    number = r"\d\.\de[+-]\d\d"
    rows = [
        line
        for line in lines
        if re.fullmatch(rf" +\d+ (residual|plain) +( {number} +){{4}} *\d\.\d\d\d +\d+\.\d\d%", line)
    ]
    assert [row.split()[:2] for row in rows] == [["1", "residual"], ["1", "plain"], ["2", "residual"], ["2", "plain"]]
    assert lines[-1] == f"figure: {out}" and out.read_text().startswith("<?xml")


def test_a_second_run_keeps_the_first_figure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(skip_connection, "measure", lambda *args, **kwargs: {})  # the training is tested above
    monkeypatch.setattr(skip_connection, "plot", lambda results, every: plt.figure(figsize=(1, 1)))
    names = []
    for _ in range(3):
        code, stdout, err = run_main(skip_connection, "--device", "cpu", "--no-show")
        assert code == 0, err
        names.append(stdout.splitlines()[-1])
    runs = os.path.join("runs", "skip_connection")
    assert names == [f"figure: {runs}.png", f"figure: {runs}-2.png", f"figure: {runs}-3.png"]
    code, stdout, err = run_main(
        skip_connection, "--device", "cpu", "--no-show", "--out", f"{runs}.png"
    )  # named: replaced
    assert code == 0 and stdout.splitlines()[-1] == f"figure: {runs}.png" and len(os.listdir("runs")) == 3


@pytest.mark.parametrize(
    "error, message",
    [
        (
            RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 4294967296 bytes."),
            "error: out of memory on cpu: try fewer --depths\n",
        ),
        (ValueError("a bug"), None),  # anything else is not called out of memory
    ],
)
def test_out_of_memory_is_one_line(error, message, tmp_path, monkeypatch):
    def measure(*args, **kwargs):
        raise error

    monkeypatch.setattr(skip_connection, "measure", measure)
    if message is None:
        with pytest.raises(ValueError):
            skip_connection.main(["--device", "cpu", "--out", str(tmp_path / "s.png"), "--no-show"])
        return
    code, out, err = run_main(skip_connection, "--device", "cpu", "--out", tmp_path / "s.png", "--no-show")
    assert code == 1 and err == message and not (tmp_path / "s.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--depths", "1,x"], "--depths must be whole numbers separated by commas"),
        (["--depths", "0,5"], "--depths must be 1 or more blocks each"),
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["--device", "gpu0"], "--device: 'gpu0' is not a device torch knows"),
        (["--out", "skip.docx"], "--out skip.docx: matplotlib cannot write that kind of file"),
        (["--dephts", "5"], "unrecognized arguments: --dephts 5"),
    ],
)
def test_its_flags_are_checked_like_the_scripts(args, message, tmp_path):
    code, out, err = run_main(skip_connection, *args, "--data-dir", tmp_path / "data")
    assert code == 2 and err.startswith("usage: ") and message in err
    assert out == "" and not (tmp_path / "data").exists()


def test_missing_data_is_the_scripts_message(tmp_path, monkeypatch):
    from conftest import OFFLINE, use_proxy

    use_proxy(monkeypatch, OFFLINE["http_proxy"])
    code, _, err = run_main(
        skip_connection,
        "--depths",
        "1",
        "--device",
        "cpu",
        "--data-dir",
        tmp_path / "data",
        "--out",
        tmp_path / "s.png",
    )
    assert (
        code == 1
        and err.startswith(f"error: MNIST is not in {tmp_path / 'data' / 'MNIST' / 'raw'}")
        and "Traceback" not in err
    )
    assert not (tmp_path / "s.png").exists()
