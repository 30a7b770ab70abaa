"""The figures beyond the accuracy plot: mistakes.png and runs side by side (python runs.py)."""
import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

import runs
from data import MEAN, STD, Batches
from test_faults import run_main


class Lookup(nn.Module):
    """A 'net' whose logits for image i are logits[i]: each image carries its index in its first pixel."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, images):
        index = (images[:, 0, 0, 0] * STD + MEAN).mul(255).round().long()
        return self.logits[index]


def test_mistakes_are_the_wrong_predictions_most_confident_first():
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    logits = torch.zeros(6, 10)
    logits[torch.arange(6), labels] = 5.0  # right, except:
    logits[1, 7] = 9.0  # sure it is a 7
    logits[3, 8] = 6.0  # less sure it is an 8
    logits[4, 9] = 12.0  # surest of all
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 1, 28, 28).contiguous()
    loader = Batches(images, labels, batch_size=4)
    wrong, predicted, confidence = runs.find_mistakes(Lookup(logits), loader)
    assert wrong.tolist() == [4, 1, 3] and predicted.tolist() == [9, 7, 8]
    assert confidence.tolist() == sorted(confidence.tolist(), reverse=True)
    assert confidence[0] == logits[4].softmax(0).max()
    fig = runs.plot_mistakes(loader, wrong, predicted, confidence, "Lookup")
    assert fig._suptitle.get_text() == "Lookup: 3 of 6 test images wrong (50.00%); the 3 most confident mistakes"
    captions = [t.get_text() for t in fig.axes[0].texts]
    assert captions[0].startswith("true 4, said 9\n") and len(captions) == 3
    plt.close(fig)


def write_metrics(folder, accuracies):
    folder.mkdir(parents=True)
    rows = [f"{e},{1 / e:.6f},{a:.2f},1.00" for e, a in enumerate(accuracies, 1)]
    (folder / "metrics.csv").write_text("\n".join(["epoch,train_loss,test_accuracy,epoch_seconds", *rows, ""]))
    return folder


def compare(*args):
    """python runs.py ARGS: returns (exit code, stdout, stderr)."""
    return run_main(runs, *args)


def test_runs_side_by_side(tmp_path):
    a = write_metrics(tmp_path / "runs" / "resnet", [97.4, 98.3, 98.6])
    b = write_metrics(tmp_path / "runs" / "lr0.05", [98.0, 98.8])
    out = tmp_path / "figures" / "both.png"
    out.parent.mkdir()
    code, stdout, err = compare(a, b, "-o", out, "--no-show")
    assert code == 0, err
    assert stdout == f"2 runs compared: {out}\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = runs.plot_comparison({str(a): runs.read_metrics(a), str(b): runs.read_metrics(b)})
    accuracy, loss = fig.axes
    assert [line.get_label() for line in accuracy.lines] == [f"{a} (98.60%)", f"{b} (98.80%)"]
    assert list(accuracy.lines[0].get_ydata()) == [97.4, 98.3, 98.6]
    assert list(loss.lines[1].get_ydata()) == [1.0, 0.5]
    plt.close(fig)


def test_runs_side_by_side_writes_comparison_png_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_metrics(tmp_path / "run", [90.0])
    code, stdout, _ = compare("run", "--no-show")
    assert code == 0 and stdout == "1 run compared: comparison.png\n"
    assert (tmp_path / "comparison.png").stat().st_size > 1000


@pytest.mark.parametrize("what", ["no folder", "no metrics", "not metrics"])
def test_a_folder_that_is_not_a_run_is_named(what, tmp_path):
    good = write_metrics(tmp_path / "good", [97.0])
    bad = tmp_path / "bad"
    if what != "no folder":
        bad.mkdir()
    if what == "not metrics":
        (bad / "metrics.csv").write_text("name,score\nme,3\n")
    code, out, err = compare(good, bad, "-o", tmp_path / "c.png", "--no-show")
    assert code == 1 and out == ""
    assert f"{bad / 'metrics.csv'}" in err and f"Is {bad} the out folder of a run?" in err
    assert not (tmp_path / "c.png").exists()


def test_the_figure_format_follows_the_file_name(tmp_path):
    run = write_metrics(tmp_path / "run", [97.0, 98.0])
    code, _, err = compare(run, "-o", tmp_path / "c.svg", "--no-show")
    assert code == 0, err
    assert (tmp_path / "c.svg").read_text().startswith("<?xml")
    code, _, err = compare(run, "-o", tmp_path / "c.docx", "--no-show")
    assert code == 2 and "matplotlib cannot write .docx files" in err and not (tmp_path / "c.docx").exists()


def test_no_folders_is_a_usage_error():
    code, _, err = compare()
    assert code == 2 and err.startswith("usage: ") and "folders" in err
