"""The scripts in a real Jupyter kernel (ipykernel, driven by nbclient), as learners run them in a notebook, on
Colab and on Kaggle: `%run`, the script pasted into a cell, its main() called with flags, and `!python`."""

import json
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # a kernel's start and four short trainings


def run_notebook(cells, monkeypatch):
    """Execute cells in a fresh python3 kernel started in the repository root; returns each cell's outputs."""
    import nbclient  # development only, with ipykernel and nbformat (.ci/run installs them); imported here so that
    import nbformat  # the quick run, which leaves this test out, does not need them

    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel picks its own inline backend, as a notebook does
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
        allow_error_names=["SystemExit"],
    ).execute()  # a run that stops ends its cell with its exit code
    return [cell.outputs for cell in nb.cells]


def text_of(outputs):
    return "".join(o.get("text", "") + "".join(o.get("data", {}).get("text/plain", "")) for o in outputs)


def images_in(outputs):
    return sum("image/png" in o.get("data", {}) for o in outputs)


def test_run_pasted_script_main_and_shell_command_in_a_kernel(mnist_dir, tmp_path, monkeypatch):
    flags = ["--epochs", "1", "--data-dir", str(mnist_dir), "--log-every", "10", "--device", "cpu"]
    pasted = (ROOT / "train_resnet.py").read_text(encoding="utf-8")
    for constant, value in (
        ("EPOCHS = 10", "EPOCHS = 1"),
        ('DATA_DIR = "data"', f"DATA_DIR = {json.dumps(str(mnist_dir))}"),
        ('OUT_DIR = "runs/resnet"', f"OUT_DIR = {json.dumps(str(tmp_path / 'pasted'))}"),
    ):
        assert constant in pasted
        pasted = pasted.replace(constant, value)  # the learner's edit at the top of the script
    shell = " ".join([sys.executable, "train_resnet.py", *flags, "--out-dir", str(tmp_path / "shell")])
    outputs = run_notebook(
        [
            "%run train_resnet.py " + " ".join(flags + ["--out-dir", str(tmp_path / "percent_run"), "--lr", "0.05"]),
            pasted,
            f"main({json.dumps(flags + ['--out-dir', str(tmp_path / 'main_call')])})",
            "%env MPLBACKEND=module://matplotlib_inline.backend_inline\n!"
            + shell,  # Colab's and Kaggle's kernels set it so
            f"main({json.dumps(flags + ['--out-dir', str(tmp_path / 'diverged'), '--lr', '100'])})",
        ],
        monkeypatch,
    )
    percent_run, pasted_run, main_call, shell_run, diverged = (text_of(o) for o in outputs)
    # A stop in a cell: its one line and the exit code, no traceback.
    assert "error: the training loss became nan in epoch 1" in diverged and "Traceback" not in diverged, diverged
    assert [o["evalue"] for o in outputs[4] if o["output_type"] == "error"] == ["1"]
    for folder, text, cell in (
        ("percent_run", percent_run, outputs[0]),
        ("pasted", pasted_run, outputs[1]),
        ("main_call", main_call, outputs[2]),
    ):
        assert "final test accuracy" in text, text
        assert (tmp_path / folder / "accuracy.png").is_file() and (tmp_path / folder / "model.pt").is_file()
        assert images_in(cell) == 1, f"{folder}: the accuracy plot is shown inline"
        assert "window" not in text, text
    assert '"lr": 0.05' in (tmp_path / "percent_run" / "settings.json").read_text()  # %run keeps the script's own flags
    assert '"epochs": 1' in (tmp_path / "pasted" / "settings.json").read_text()  # the constants edited in the cell
    assert "final test accuracy" in shell_run and str(tmp_path / "shell" / "accuracy.png") in shell_run
    assert "window" not in shell_run and "Figure(" not in shell_run and images_in(outputs[3]) == 0
    assert (tmp_path / "shell" / "model.pt").is_file()
