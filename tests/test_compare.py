"""python compare.py: runs told apart by their record of what ran (the script's constants, the optimizer as torch held
it, the net, the data, the lesson files' code), as a learner's edits change it; the table, the figure, --diff."""

import json
import os
import re

import matplotlib.pyplot as plt
import pytest
from matplotlib import font_manager

import compare as compare_command
import train_resnet
from conftest import ROOT, edited, load_module, load_script, run_main, says, train
from helpers import comparison, figures, store

SGD = "torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)"
EDITS = {  # the learner's edits of the issue that asked for the record, each run once beside unedited runs
    "weight-decay-constant": [
        (
            "MOMENTUM = 0.5  # SGD momentum\n",
            "MOMENTUM = 0.5  # SGD momentum\nWEIGHT_DECAY = 1e-3  # SGD weight decay\n",
        ),
        ("seed=SEED,", "seed=SEED, weight_decay=WEIGHT_DECAY,"),
        (SGD, SGD[:-1] + ", weight_decay=args.weight_decay)"),
    ],
    "weight-decay-in-sgd": [(SGD, SGD[:-1] + ", weight_decay=1e-3)")],
    "adam": [(SGD, "torch.optim.Adam(model.parameters(), lr=0.001)")],
    "lr-constant": [("LR = 0.01  #", "LR = 0.05  #")],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_dir):
    """One epoch of the unedited script twice, and one of each edit (models.py's ResidualBlock without its skip too)."""
    root = tmp_path_factory.mktemp("edits")
    for name in ("plain", "plain-again"):
        train(train_resnet, root / name, "--epochs", 1, mnist_dir=mnist_dir)
    for name, edits in EDITS.items():
        script = edited(root / "scripts" / name, "train_resnet.py", *edits)
        train(
            load_script(script, name.replace(" ", "_").replace("-", "_")),
            root / name,
            "--epochs",
            1,
            mnist_dir=mnist_dir,
        )
    with pytest.MonkeyPatch.context() as monkeypatch:
        models = edited(root / "scripts" / "no-skip", "models.py", ("return F.relu(x + y)", "return F.relu(y)"))
        script = load_script(train_resnet.__file__, "no_skip", models=models, monkeypatch=monkeypatch)
        train(script, root / "no-skip", "--epochs", 1, mnist_dir=mnist_dir)
    return root


def compare(*args):
    """python compare.py ARGS, the figure kept for the test: (exit code, stdout, stderr, the figure)."""
    shown = []
    real_show = figures.show
    figures.show = lambda fig, no_show=False: shown.append(fig)
    try:
        code, out, err = run_main(compare_command, *args)
    finally:
        figures.show = real_show
    return code, out, err, shown[0] if shown else None


def table(out):
    """{run: what differs} and the shared line, from compare.py's table."""
    lines = out.splitlines()
    rows = {
        line.split()[0]: line.split("  ")[-1].strip()
        for line in lines[1:]
        if not line.startswith(("shared", " ")) and "compared:" not in line
    }
    shared = next((line for line in lines if line.startswith("shared by all runs: ")), "")
    return rows, shared


@pytest.mark.parametrize(
    "edit, names",
    [
        ("weight-decay-constant", ["weight_decay 0.001", "train_resnet.py"]),
        ("weight-decay-in-sgd", ["weight_decay 0.001", "train_resnet.py"]),
        ("adam", ["Adam", "lr 0.001", "train_resnet.py"]),
        ("no-skip", ["models.py"]),
    ],
)
def test_an_edit_is_named_and_the_shared_line_claims_only_what_both_used(runs, edit, names, tmp_path):
    code, out, err, fig = compare(runs / "plain", runs / edit, "-o", tmp_path / "c.png")
    assert code == 0 and err == "", err
    rows, shared = table(out)
    for name in names:
        assert name in rows[str(runs / edit)], (name, rows)
    assert all(name.split()[0] not in shared for name in names)
    if edit == "adam":  # the unedited run's SGD is named on its own row, never as shared
        assert "SGD, lr 0.01, momentum 0.5" in rows[str(runs / "plain")]
        assert "lr 0.01" not in shared and "momentum 0.5" not in shared and "SGD" not in shared
    assert shared.startswith("shared by all runs: ResidualNet, 41,514 parameters") and "320 training images" in shared
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][1].startswith(f"{edit}: ")
    plt.close(fig)


def test_the_readmes_loop_reads_as_versions_and_a_constant_is_not_code(runs, tmp_path):
    """The default run, the LR = 0.05 edit and (LR back) the ResidualBlock edit, compared as the README does."""
    code, out, err, fig = compare(runs / "plain", runs / "lr-constant", runs / "no-skip", "-o", tmp_path / "c.png")
    assert code == 0, err
    rows, shared = table(out)
    assert not re.search(r"\b[0-9a-f]{12}\b", out)  # no hash in the table
    assert rows[str(runs / "lr-constant")] == "lr 0.05, models.py v1"  # the constant, and no version of the script
    assert (
        rows[str(runs / "plain")] == "lr 0.01, models.py v1" and rows[str(runs / "no-skip")] == "lr 0.01, models.py v2"
    )
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[2].startswith("no-skip: lr 0.01, models.py v2 (") and not re.search(r"[0-9a-f]{12}", "".join(labels))
    plt.close(fig)


def test_the_weight_decay_constant_is_a_flag(runs, capsys):
    script = load_script(runs / "scripts" / "weight-decay-constant" / "edited" / "train_resnet.py", "weight_decay_help")
    with pytest.raises(SystemExit):
        script.main(["--help"])
    assert "--weight-decay WEIGHT_DECAY SGD weight decay (default: 0.001)" in " ".join(capsys.readouterr().out.split())
    settings = json.loads((runs / "weight-decay-constant" / "settings.json").read_text(encoding="utf-8"))
    assert (
        settings["flags"]["weight_decay"] == 0.001 and settings["optimizer"]["param_groups"][0]["weight_decay"] == 0.001
    )


def test_two_unedited_runs_differ_in_nothing(runs, tmp_path):
    code, out, err, fig = compare(runs / "plain", runs / "plain-again", "-o", tmp_path / "c.png")
    assert code == 0, err
    rows, shared = table(out)
    assert list(rows.values()) == ["-", "-"]
    assert "SGD, lr 0.01, momentum 0.5" in shared and ".py" not in out  # no file named at all
    plt.close(fig)


def test_diff_prints_the_changed_lines(runs):
    code, out, err = run_main(compare_command, "--diff", runs / "plain", runs / "weight-decay-constant")
    assert code == 0, err
    assert f"--- {runs / 'plain'}/train_resnet.py\n+++ {runs / 'weight-decay-constant'}/train_resnet.py" in out
    assert "\n+WEIGHT_DECAY = 1e-3  # SGD weight decay\n" in out and "models.py" not in out
    code, out, err = run_main(compare_command, "--diff", runs / "plain", runs / "no-skip")
    assert "-        return F.relu(x + y)  # the skip connection\n+        return F.relu(y)" in out
    assert "train_resnet.py" not in out
    code, out, err = run_main(compare_command, "--diff", runs / "plain", runs / "plain-again")
    assert out == f"{runs / 'plain'} and {runs / 'plain-again'} ran the same code\n"


def test_diff_names_a_file_that_only_one_run_ran(tmp_path):
    """The lecture's DataLoader in place of mnist_loaders: that run has no data.py, which is not a deletion."""
    import torch

    for name, code in (
        ("a", {"train_resnet.py": "x = 1\n", "data.py": "y = 2\n"}),
        ("b", {"train_resnet.py": "x = 1\n"}),
    ):
        (tmp_path / name).mkdir()
        torch.save({"record": {"code": code}}, tmp_path / name / "checkpoint.pt")
    code, out, err = run_main(compare_command, "--diff", tmp_path / "a", tmp_path / "b")
    assert code == 0 and out == f"data.py: only {tmp_path / 'a'} ran it\n", out


# --- the table and the figure, from the files alone --------------------------------------------------------------


def write_run(folder, accuracies, **changed):
    """A run folder as a run leaves it: metrics.csv, and (unless settings is None) settings.json."""
    folder.mkdir(parents=True)
    rows = [f"{e},{1 / e:.6f},{a:.2f},1.00" for e, a in enumerate(accuracies, 1)]
    (folder / "metrics.csv").write_text("\n".join(["epoch,train_loss,test_accuracy,train_seconds", *rows, ""]))
    flags = {
        "epochs": 3,
        "batch_size": 64,
        "lr": 0.01,
        "momentum": 0.5,
        "seed": 0,
        "out_dir": str(folder),
        **changed.pop("flags", {}),
    }
    record = {
        "script": "train_resnet.py",
        "net": "ResidualNet",
        "parameters": 41514,
        "flags": flags,
        "optimizer": {"class": "SGD", "param_groups": [{"lr": flags["lr"], "momentum": 0.5, "foreach": None}]},
        "data": {"training_images": 60000, "test_images": 10000},
        "device": "cpu",
        "code": {"train_resnet.py": "0a8531062ced", "models.py": "b26a5b6b66ce"},
        **changed,
    }
    (folder / "settings.json").write_text(json.dumps(record))
    return folder


def test_every_run_under_runs_in_order_and_only_what_differs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, lr in (("resnet", 0.01), ("resnet-10", 0.1), ("resnet-2", 0.05)):
        write_run(tmp_path / "runs" / name, [97.4, 98.3, 98.6 + lr], flags={"lr": lr})
    code, out, err, fig = compare("--no-show")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["run", "epochs", "final", "best", "(epoch)", "differs"]
    assert [line.split() for line in lines[1:4]] == [
        [os.path.join("runs", name), "3", final, final, "(3)", "lr", lr]
        for name, lr, final in (
            ("resnet", "0.01", "98.61%"),
            ("resnet-2", "0.05", "98.65%"),
            ("resnet-10", "0.1", "98.70%"),
        )
    ]
    assert lines[4] == (
        "shared by all runs: ResidualNet, 41,514 parameters, SGD, momentum 0.5, --epochs 3, --batch-size 64,"
        " --seed 0, 60,000 training images, 10,000 test images, cpu"
    )
    assert lines[5] == f"3 runs compared: {os.path.join('runs', 'comparison.png')}"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][0] == "resnet: lr 0.01 (98.61%)"
    assert list(fig.axes[0].lines[0].get_ydata()) == [97.4, 98.3, 98.61]
    assert fig.axes[0].get_legend().get_title().get_text().startswith("shared by all runs: ResidualNet")
    assert (tmp_path / "runs" / "comparison.png").stat().st_size > 1000
    plt.close(fig)


def test_a_run_whose_settings_cannot_be_read_is_compared_by_its_metrics(tmp_path):
    good = write_run(tmp_path / "good", [98.5])
    other = write_run(tmp_path / "other", [98.0], net="InceptionNet")
    broken = write_run(tmp_path / "broken", [95.0])
    (broken / "settings.json").write_text('{"lr": 0.01,')
    code, out, err, fig = compare(good, other, broken, "-o", tmp_path / "c.png")
    assert code == 0 and err.startswith(f"warning: {broken / 'settings.json'} cannot be read (")
    assert f"{broken} is compared by its metrics alone" in err
    rows, _ = table(out)
    assert rows == {str(good): "ResidualNet", str(other): "InceptionNet", str(broken): "-"}
    assert "shared by all runs whose settings are known: 41,514 parameters, SGD" in out
    plt.close(fig)


@pytest.mark.parametrize("blocked", ["a file where a folder must be", "the disk is full"])
def test_a_figure_that_cannot_be_written_is_one_line(blocked, tmp_path, monkeypatch):
    run, target = write_run(tmp_path / "run", [98.5]), tmp_path / "figures" / "c.png"
    if blocked == "the disk is full":

        def full(path, data):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(store, "write", full)
    else:
        (tmp_path / "figures").write_text("not a folder")
    code, out, err, _ = compare(run, "-o", target)
    assert code == 1 and not (target.exists() or (tmp_path / "figures" / "c.png.tmp").exists())
    says(err, f"error: cannot write {target}: ", "; pick another path with -o")
    assert blocked != "the disk is full" or "No space left on device" in err
    assert plt.get_fignums() == []  # the figure let go: a notebook would draw it under the error


def test_what_is_not_a_run_is_left_out_and_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / "runs" / "resnet", [97.0])
    spreadsheet = write_run(tmp_path / "runs" / "resnet-2", [98.0]).relative_to(tmp_path)
    (spreadsheet / "metrics.csv").write_text("epoch;train_loss;test_accuracy\n1;0,5;98,0\n")  # saved again by Excel
    code, out, err, fig = compare("--no-show")
    assert code == 0 and out.splitlines()[-1].startswith("1 run compared:")
    assert err == f"warning: cannot read {spreadsheet / 'metrics.csv'} ('epoch'); {spreadsheet} is left out\n"
    code, out, err, _ = compare(tmp_path / "nowhere", "--no-show")
    assert code == 1 and err.splitlines()[-1] == "error: no run could be read" and out == ""
    plt.close(fig)


def test_no_runs_to_compare(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err, _ = compare("--no-show")
    assert code == 1 and err.startswith(f"error: no runs under runs{os.sep} to compare") and out == ""


def test_the_figure_format_follows_the_file_name(tmp_path):
    run = write_run(tmp_path / "run", [97.0, 98.0])
    code, _, err, fig = compare(run, "-o", tmp_path / "c.svg", "--no-show")
    assert code == 0 and (tmp_path / "c.svg").read_text().startswith("<?xml")
    plt.close(fig)
    code, _, err, _ = compare(run, "-o", tmp_path / "c.docx")
    assert code == 2 and "matplotlib cannot write that kind of file" in err and not (tmp_path / "c.docx").exists()


# 33: an afternoon of edit, run, compare (slow: a second of drawing)
@pytest.mark.parametrize("count", [2, 3, 10, pytest.param(33, marks=pytest.mark.slow)])
def test_the_legend_and_the_shared_line_sit_right_under_the_axes(count, tmp_path):
    folders = [
        write_run(tmp_path / "runs" / f"resnet-{n}", [90 + n / 10, 95 + n / 10], flags={"lr": round(0.01 * n, 2)})
        for n in range(1, count + 1)
    ]
    code, out, err, fig = compare(*folders, "-o", tmp_path / "c.png")
    assert code == 0, err
    fig.canvas.draw()
    ax, inch = fig.axes[0], fig.dpi
    legend = ax.get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert len(texts) == count == len(set(texts))  # every run, each told apart
    assert legend.get_title().get_text().startswith("shared by all runs:")  # at the legend's head
    box, page, label = legend.get_window_extent(), fig.bbox, ax.xaxis.label.get_window_extent()
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1  # nothing cut off
    assert 0 <= (label.y0 - box.y1) / inch < 0.15  # right under the axis' "epoch": no empty band between
    assert (box.y0 - page.y0) / inch < 0.3 and ax.get_window_extent().height / inch > 2.5  # nor below; room for lines
    styles = {(line.get_color(), line.get_linestyle()) for line in ax.lines if line.get_label()[0] != "_"}
    assert len(styles) == count  # after ten colours, another line style
    plt.close(fig)


def test_a_chinese_font_is_put_behind_the_default_one(monkeypatch):
    """Where the system has one (a stand-in here: DejaVu Sans under a Chinese font's name), it comes after the
    default one; where it has none, the default stays alone. The system's own fonts are left out (a Mac has some)."""
    dejavu = font_manager.FontEntry(fname=font_manager.findfont("DejaVu Sans"), name="DejaVu Sans")
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [dejavu])
    assert figures.fonts()["font.family"] == plt.rcParams["font.family"]
    fake = font_manager.FontEntry(fname=dejavu.fname, name="Microsoft YaHei")
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [dejavu, fake])
    assert figures.fonts()["font.family"] == [*plt.rcParams["font.family"], "Microsoft YaHei"]


def test_a_plot_of_one_epoch_has_whole_epochs_and_stays_under_100_percent():
    fig = figures.plot({"best: 99.90% (epoch 1)": [(1, 0.5, 99.9, 1.0)]}, "ResidualNet")
    ax = fig.axes[0]
    fig.canvas.draw()
    assert [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]] == [1.0]
    assert ax.get_ylim()[1] == 100.0 and ax.get_ylim()[0] < 99.9
    plt.close(fig)


@pytest.mark.parametrize("accuracies", [[98.12, 99.05], [12.5, 100.0]])
def test_one_runs_plot_keeps_every_label_inside_the_figure(accuracies):
    fig = figures.plot(
        {"best": [(e, 0.5, a, 1.0) for e, a in enumerate(accuracies, 1)]}, "ResidualNet on MNIST: 99.05%"
    )
    fig.canvas.draw()
    ax, box = fig.axes[0], fig.bbox
    ticks = [t for t in ax.get_yticklabels() if ax.get_ylim()[0] <= t.get_position()[1] <= ax.get_ylim()[1]]
    for text in [ax.yaxis.label, ax.xaxis.label, ax.title, *ticks, ax.get_legend()]:
        extent = text.get_window_extent()
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1, text
    plt.close(fig)


def test_differences_leave_a_constant_to_the_optimizer_that_holds_it():
    sgd = {"optimizer": "SGD", "lr": "lr 0.01", "momentum": "momentum 0.5", "--lr": "--lr 0.01", "--seed": "--seed 0"}
    adam = {
        "optimizer": "Adam",
        "lr": "lr 0.001",
        "--lr": "--lr 0.01",
        "--momentum": "--momentum 0.5",
        "--seed": "--seed 0",
    }
    assert comparison.differences([sgd, adam, {}]) == (["optimizer", "lr", "momentum"], ["--seed"])


def test_the_thirty_epoch_figure_reads_run_folders(tmp_path, capsys):
    thirty = load_module(ROOT / "docs" / "thirty_epochs.py", "thirty_epochs")
    for name, accuracies in [
        ("resnet-s0", [98.0, 99.1, 99.2]),
        ("resnet-s1", [98.5, 98.9, 99.0]),
        ("inception-s0", [97.0, 98.0, 98.5]),
    ]:
        write_run(tmp_path / name, accuracies)
    thirty.main(str(tmp_path), out=str(tmp_path / "thirty.png"))
    out = capsys.readouterr().out
    assert "ResidualNet: seeds resnet-s0, resnet-s1" in out and "best mean 99.10% at epoch 3" in out
    assert "  mean: at or above 99% from epoch 2 on" in out and "InceptionNet: seeds inception-s0" in out
    assert (tmp_path / "thirty.png").stat().st_size > 1000
