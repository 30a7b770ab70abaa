"""The figures beyond the accuracy plot: mistakes.png and runs side by side (python compare.py)."""
import importlib.util
import json
import os
import pathlib

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib import font_manager
from torch import nn

import compare as compare_command
from conftest import ROOT, run_main
from data import MEAN, STD, Batches
from helpers import comparison, figures


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
    wrong, true, predicted, confidence = figures.find_mistakes(Lookup(logits), loader, torch.device("cpu"))
    assert (wrong[:, 0, 0, 0] * STD + MEAN).mul(255).round().long().tolist() == [4, 1, 3]  # the images themselves
    assert true.tolist() == [4, 1, 3] and predicted.tolist() == [9, 7, 8]
    assert confidence.tolist() == sorted(confidence.tolist(), reverse=True)
    assert confidence[0] == logits[4].softmax(0).max()
    fig = figures.plot_mistakes(wrong, true, predicted, confidence, len(labels), "Lookup")
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
    """python compare.py ARGS: returns (exit code, stdout, stderr)."""
    return run_main(compare_command, *args)


def write_settings(folder, **changed):
    settings = {"net": "ResidualNet", "script": "train_resnet.py", "epochs": 3, "batch_size": 64, "lr": 0.01, "momentum": 0.5,
                "seed": 0, "log_every": 300, "data_dir": "data", "device": "cpu", "data": {"train_images": 60000}}
    (folder / "settings.json").write_text(json.dumps({**settings, **changed}))


def labels(fig):
    return [line.get_label() for line in fig.axes[0].lines]


def test_runs_compared_by_what_differs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = write_metrics(tmp_path / "runs" / "resnet", [97.4, 98.3, 98.6])
    b = write_metrics(tmp_path / "runs" / "resnet-2", [98.0, 98.8])
    write_settings(a)
    write_settings(b, lr=0.05, epochs=2)
    figs = []
    monkeypatch.setattr(figures, "show", lambda fig, no_show: figs.append(fig))
    code, stdout, err = compare("--no-show")  # every run under runs/
    assert code == 0, err
    assert labels(figs[0]) == ["resnet: lr 0.01 (98.60%)", "resnet-2: lr 0.05 (98.80%)"]  # only what differs
    assert figs[0].texts[0].get_text() == "all runs: ResidualNet, batch 64, momentum 0.5, seed 0, 60,000 training images, cpu"
    assert list(figs[0].axes[0].lines[0].get_ydata()) == [97.4, 98.3, 98.6]
    assert list(figs[0].axes[1].lines[1].get_ydata()) == [1.0, 0.5]
    lines = stdout.splitlines()
    assert lines[0].split() == ["run", "net", "epochs", "final", "best", "(epoch)", "differs"]
    assert lines[1].split() == [os.path.join("runs", "resnet"), "ResidualNet", "3", "98.60%", "98.60%", "(3)", "lr", "0.01"]
    assert lines[2].split() == [os.path.join("runs", "resnet-2"), "ResidualNet", "2", "98.80%", "98.80%", "(2)", "lr", "0.05"]
    assert lines[-1] == f"2 runs compared: {os.path.join('runs', 'comparison.png')}"
    assert (tmp_path / "runs" / "comparison.png").stat().st_size > 1000 and not (tmp_path / "comparison.png").exists()
    plt.close(figs[0])


def test_runs_whose_settings_cannot_be_read_compare_by_name(tmp_path, monkeypatch):
    bare = write_metrics(tmp_path / "bare", [96.0])  # only metrics.csv: the name alone
    edited = write_metrics(tmp_path / "edited", [95.0])
    (edited / "settings.json").write_text('{"lr": 0.01,')  # hand-edited, broken
    new = write_metrics(tmp_path / "new", [98.5])
    write_settings(new)
    other = write_metrics(tmp_path / "other", [98.0])
    write_settings(other, net="InceptionNet")
    figs = []
    monkeypatch.setattr(figures, "show", lambda fig, no_show: figs.append(fig))
    code, stdout, err = compare(bare, edited, new, other, "-o", tmp_path / "c.png")
    assert code == 0, err
    warnings = err.splitlines()
    assert warnings[0].startswith(f"warning: {bare / 'settings.json'} cannot be read (") and f"comparing {bare} by its metrics.csv alone" in err
    assert warnings[1].startswith(f"warning: {edited / 'settings.json'} cannot be read (") and f"comparing {edited} by its metrics.csv alone" in err
    assert labels(figs[0]) == ["bare (96.00%)", "edited (95.00%)", "new: ResidualNet (98.50%)", "other: InceptionNet (98.00%)"]
    assert figs[0].texts[0].get_text() == ("all runs whose settings are known: batch 64, lr 0.01, momentum 0.5, seed 0,"
                                           " 60,000 training images, cpu")
    assert stdout.splitlines()[1].split()[:2] == [str(bare), "?"]
    plt.close(figs[0])


def test_no_runs_to_compare(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = compare("--no-show")
    assert code == 1 and err.startswith(f"error: no runs under runs{os.sep} to compare") and out == ""


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


def test_a_run_found_under_runs_with_unreadable_metrics_is_left_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_settings(write_metrics(pathlib.Path("runs", "resnet"), [97.0]))
    write_settings(write_metrics(pathlib.Path("runs", "resnet-2"), [98.0]))
    (tmp_path / "runs" / "resnet-2" / "metrics.csv").write_text("epoch;train_loss;test_accuracy\n1;0,5;98,0\n")  # saved by a spreadsheet
    code, out, err = compare("--no-show")
    assert code == 0, err
    bad = os.path.join("runs", "resnet-2")
    assert err == f"warning: {os.path.join(bad, 'metrics.csv')} is not a run's metrics ('epoch'); {bad} is left out\n"
    lines = out.splitlines()
    assert lines[1].split()[0] == os.path.join("runs", "resnet") and lines[-1].startswith("1 run compared:")
    (tmp_path / "runs" / "resnet" / "metrics.csv").write_text("")
    code, out, err = compare("--no-show")
    assert code == 1 and err.splitlines()[-1] == f"error: no run under runs{os.sep} could be read" and out == ""


def test_the_figure_format_follows_the_file_name(tmp_path):
    run = write_metrics(tmp_path / "run", [97.0, 98.0])
    code, _, err = compare(run, "-o", tmp_path / "c.svg", "--no-show")
    assert code == 0, err
    assert (tmp_path / "c.svg").read_text().startswith("<?xml")
    code, _, err = compare(run, "-o", tmp_path / "c.docx", "--no-show")
    assert code == 2 and "matplotlib cannot write .docx files" in err and not (tmp_path / "c.docx").exists()


def test_a_plot_of_one_epoch_has_whole_epochs_and_stays_under_100_percent():
    fig = figures.plot([(1, 0.5, 99.9, 1.0)], "ResidualNet")
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks == [1.0]
    assert ax.get_ylim()[1] == 100.0 and ax.get_ylim()[0] < 99.9
    plt.close(fig)


def test_the_thirty_epoch_figure_reads_run_folders(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("thirty_epochs", ROOT / "docs" / "thirty_epochs.py")
    thirty = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(thirty)
    for name, accuracies in [("resnet-s0", [98.0, 99.1, 99.2]), ("resnet-s1", [98.5, 98.9, 99.0]), ("inception-s0", [97.0, 98.0, 98.5])]:
        write_metrics(tmp_path / name, accuracies)
    thirty.main(str(tmp_path), out=str(tmp_path / "thirty.png"))
    out = capsys.readouterr().out
    assert "ResidualNet: seeds resnet-s0, resnet-s1" in out and "best mean 99.10% at epoch 3" in out
    assert "  mean: at or above 99% from epoch 2 on" in out and "InceptionNet: seeds inception-s0" in out
    assert (tmp_path / "thirty.png").stat().st_size > 1000


def test_thirty_and_more_runs_stay_readable(tmp_path, monkeypatch):
    folders = []
    for n in range(1, 34):  # an afternoon of edit, run, compare
        folder = write_metrics(tmp_path / "runs" / (f"resnet-{n}" if n > 1 else "resnet"), [90 + n / 10, 95 + n / 10])
        if n != 7:  # one run whose settings.json is gone
            write_settings(folder, lr=round(0.01 * n, 2))
        folders.append(folder)
    figs = []
    monkeypatch.setattr(figures, "show", lambda fig, no_show: figs.append(fig))
    code, stdout, err = compare(*folders, "-o", tmp_path / "c.png")
    assert code == 0 and "resnet-7" in err
    assert "shared by all runs whose settings are known: ResidualNet, batch 64" in stdout  # not counting resnet-7
    fig = figs[0]
    fig.canvas.draw()
    legend = fig.legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert len(texts) == 33 == len(set(texts))  # every run, each told apart
    inside = fig.bbox
    box = legend.get_window_extent()
    assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1  # nothing cut off
    footnote = fig.texts[0].get_window_extent()
    assert footnote.y1 <= box.y0 + 1  # the footnote below the legend, not over it
    styles = {(line.get_color(), line.get_linestyle()) for line in fig.axes[0].lines}
    assert len(styles) == 33  # after ten colours, another line style
    plt.close(fig)


def test_chinese_run_names_draw_without_glyph_warnings(tmp_path, monkeypatch, recwarn):
    for name, accuracies in (("实验一", [97.0, 98.0]), ("实验二", [97.5, 98.5])):
        write_settings(write_metrics(tmp_path / "runs" / name, accuracies))
    monkeypatch.chdir(tmp_path)
    code, out, err = compare("--no-show")
    assert code == 0, err
    assert (tmp_path / "runs" / "comparison.png").stat().st_size > 1000
    assert not [w for w in recwarn if "missing from font" in str(w.message)]
    assert "runs/实验一".replace("/", os.sep) in out  # the table keeps the name as it is
    have = {font.name for font in font_manager.fontManager.ttflist}
    rc, texts = comparison.fonts_for(["实验一"])
    if not set(comparison.CJK_FONTS) & have:  # no Chinese font on this system: a readable escape instead of boxes
        assert texts == ["\\u5b9e\\u9a8c\\u4e00"] and rc["font.family"] == plt.rcParams["font.family"]
    else:
        assert texts == ["实验一"] and rc["font.family"][-1] in comparison.CJK_FONTS


def test_a_chinese_font_is_put_behind_the_default_one(monkeypatch):
    """Where the system has one (here a stand-in: DejaVu Sans under a Chinese font's name), it comes after the default."""
    fake = font_manager.FontEntry(fname=font_manager.findfont("DejaVu Sans"), name="Microsoft YaHei")
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [*font_manager.fontManager.ttflist, fake])
    rc, _ = comparison.fonts_for(["x"])
    assert rc["font.family"] == [*plt.rcParams["font.family"], "Microsoft YaHei"]
