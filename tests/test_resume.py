"""--resume: checkpoint.pt is all it reads, and a resumed run is the same run, bit for bit on a CPU; a resume that
cannot be right is refused in one line and changes nothing."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys

import pytest
import torch

import train_inception
import train_resnet
from conftest import (
    ROOT,
    assert_same_results,
    digest,
    edited,
    load_script,
    results,
    run_main,
    says,
    start,
    stopped_in_epoch_2,
    train,
    write_mnist,
)
from helpers.run import Stop


@pytest.fixture(scope="module")
def resnet_2_epochs(mnist_dir, tmp_path_factory):
    """An uninterrupted 2-epoch ResidualNet run on the shipped subset: what every resumed run must equal."""
    out = tmp_path_factory.mktemp("reference") / "resnet"
    train(train_resnet, out, "--epochs", 2, mnist_dir=mnist_dir)
    return out


@pytest.fixture(scope="module")
def resnet_1_epoch(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "resnet"
    train(train_resnet, out, "--epochs", 1, mnist_dir=mnist_dir)
    return out


@pytest.fixture
def saved_run(resnet_1_epoch, tmp_path):
    """A private copy of a finished 1-epoch ResidualNet run (seed 0, batch 64, lr 0.01, momentum 0.5)."""
    return shutil.copytree(resnet_1_epoch, tmp_path / "run")


# --- a resumed run is the same run -----------------------------------------------------------------


def test_a_finished_run_extended_equals_an_uninterrupted_one(saved_run, resnet_2_epochs, mnist_dir):
    log = train(train_resnet, saved_run, "--epochs", 2, "--resume", saved_run, mnist_dir=mnist_dir)
    assert f"resuming: epoch 1 done in {saved_run}{os.sep}; epoch 2 to go" in log and "epoch 1:" not in log
    assert "note:" not in log  # the same code: nothing to say
    assert_same_results(saved_run, resnet_2_epochs)


@pytest.mark.parametrize(
    "stop, folder, printed",
    [
        (KeyboardInterrupt, "run", "{out}"),
        pytest.param(Stop, "run", "{out}", marks=pytest.mark.slow),
        (KeyboardInterrupt, "my run 实验", '"{out}"'),  # a space or Chinese: in double quotes, one argument
    ],
)
def test_ctrl_c_or_a_kill_in_epoch_2_keeps_epoch_1_and_the_printed_command_finishes_it(
    stop, folder, printed, tmp_path, mnist_dir, resnet_2_epochs, monkeypatch
):
    out = tmp_path / folder
    err = stopped_in_epoch_2(train_resnet, out, mnist_dir, monkeypatch, stop)
    what = "interrupted" if stop is KeyboardInterrupt else "terminated"
    command = f"python train_resnet.py --resume {printed.format(out=out)} --epochs 2 --no-show"  # as it began
    assert err == f"\n{what}: epoch 1 saved in {out}{os.sep}; to go on: {command}\n"
    assert sorted(os.listdir(out)) == ["accuracy.png", "checkpoint.pt", "metrics.csv", "model.pt", "settings.json"]
    code, log, err = run_main(train_resnet, *shlex.split(command)[2:], "--data-dir", mnist_dir, "--log-every", 5)
    assert code == 0, err
    assert_same_results(out, resnet_2_epochs)


@pytest.mark.slow
def test_the_printed_command_runs_as_printed_in_a_shell(tmp_path, mnist_full):
    """Ctrl-C in epoch 2 of a run in a folder named as the course's students name them; the command it prints, pasted
    into a shell (here the system's: sh, or cmd.exe on Windows) with the training Python first on PATH, finishes it."""
    out = tmp_path / "runs" / "my run 实验"
    returncode, stderr = signal_in_epoch_2(out, signal.SIGINT, mnist_full)
    command = stderr.split("; to go on: ")[1].strip()
    assert returncode == 130 and command == f'python train_resnet.py --resume "{out}" --epochs 2 --no-show'
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    done = subprocess.run(
        command,
        shell=True,
        cwd=ROOT,
        env={**os.environ, "PATH": path, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "resuming: epoch 1 done" in done.stdout and "epoch 2: test accuracy" in done.stdout
    assert len((out / "metrics.csv").read_text().splitlines()) == 3  # the header and both epochs


@pytest.mark.slow
def test_inception_resumed_equals_uninterrupted(mnist_dir, tmp_path):
    train(train_inception, tmp_path / "whole", "--epochs", 2, mnist_dir=mnist_dir)
    train(train_inception, tmp_path / "resumed", "--epochs", 1, mnist_dir=mnist_dir)
    train(train_inception, tmp_path / "resumed", "--epochs", 2, "--resume", tmp_path / "resumed", mnist_dir=mnist_dir)
    assert_same_results(tmp_path / "resumed", tmp_path / "whole")


def signal_in_epoch_2(out, how, mnist_dir):
    """Start a 2-epoch run on the 2,000 digits as a user would, and send it `how` in the middle of its second epoch."""
    process = start(
        "train_resnet.py", "--epochs", 2, "--log-every", 5, "--data-dir", mnist_dir, "--out-dir", out, "--no-show"
    )
    for line in process.stdout:
        if line.startswith("[2,    10]"):  # 10 of epoch 2's 32 batches are done
            process.send_signal(how)
            break
    stdout, stderr = process.communicate(timeout=60)
    assert "epoch 2:" not in stdout  # it did stop in the middle of the epoch
    return process.returncode, stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "how, code, what",
    # Windows has no SIGKILL: the list is collected there too.
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
    + [(kill, -kill, None) for kill in [getattr(signal, "SIGKILL", None)] if kill],
)
def test_a_real_signal_in_epoch_2_then_resumed(how, code, what, tmp_path, mnist_full):
    out = tmp_path / "out"
    returncode, stderr = signal_in_epoch_2(out, how, mnist_full)
    assert returncode == code and "Traceback" not in stderr
    if what:
        command = f"python train_resnet.py --resume {out} --epochs 2 --no-show"
        assert stderr.strip() == f"{what}: epoch 1 saved in {out}{os.sep}; to go on: {command}"
    assert len((out / "metrics.csv").read_text().splitlines()) == 2  # the header and epoch 1
    train(train_resnet, out, "--resume", out, mnist_dir=mnist_full)
    train(train_resnet, tmp_path / "whole", "--epochs", 2, mnist_dir=mnist_full)
    assert_same_results(out, tmp_path / "whole")


def test_the_checkpoint_holds_the_run_and_its_record(saved_run):
    state = torch.load(saved_run / "checkpoint.pt", weights_only=True)
    record = state["record"]
    assert record["net"] == "ResidualNet" and record["parameters"] == 41_514 and record["script"] == "train_resnet.py"
    assert {
        name: record["flags"][name] for name in ("epochs", "batch_size", "lr", "momentum", "seed", "log_every")
    } == {"epochs": 1, "batch_size": 64, "lr": 0.01, "momentum": 0.5, "seed": 0, "log_every": 5}
    assert record["optimizer"]["class"] == "SGD"
    assert (
        record["optimizer"]["param_groups"][0]["lr"] == 0.01
        and record["optimizer"]["param_groups"][0]["momentum"] == 0.5
    )
    assert record["data"] == {"training_images": 320, "test_images": 80} and record["device"] == "cpu"
    assert list(record["code"]) == ["train_resnet.py", "models.py", "data.py"]
    assert record["code"]["models.py"] == (ROOT / "models.py").read_text(encoding="utf-8")  # the text itself
    assert [row[0] for row in state["history"]] == [1]
    weights = torch.load(saved_run / "model.pt", weights_only=True)
    assert all(torch.equal(state["model"][name], w) for name, w in weights.items())
    buffers = [s["momentum_buffer"] for s in state["optimizer"]["state"].values()]
    assert len(buffers) == len(weights) and all(b.abs().sum() > 0 for b in buffers)
    assert state["rng"]["torch"].dtype == torch.uint8 and state["rng"]["loader"].dtype == torch.uint8
    settings = json.loads((saved_run / "settings.json").read_text(encoding="utf-8"))  # for people: the record, short
    assert settings == {**record, "code": {name: settings["code"][name] for name in record["code"]}, "epochs_done": 1}
    assert all(len(digest) == 12 for digest in settings["code"].values())


# --- checkpoint.pt is all a resume reads ---------------------------------------------------------------


@pytest.mark.parametrize("settings", [pytest.param("deleted", marks=pytest.mark.slow), "hand-edited"])
def test_settings_json_is_never_read(settings, saved_run, tmp_path, mnist_dir, monkeypatch, resnet_2_epochs):
    """A finished run stays byte for byte as it was under --resume; a stopped one finishes as if never stopped."""
    stopped = tmp_path / "stopped"
    stopped_in_epoch_2(train_resnet, stopped, mnist_dir, monkeypatch)
    for run in (saved_run, stopped):
        if settings == "deleted":
            os.remove(run / "settings.json")
        else:
            (run / "settings.json").write_text('{"flags": {"epochs": 5, "lr": "fast"}, "net": 3,', encoding="utf-8")
    before = digest(saved_run)
    code, _, err = run_main(train_resnet, "--resume", saved_run, "--data-dir", mnist_dir)
    assert (
        code == 2
        and "it has done 1 epoch, and its own --epochs 1 asks for no more" in err
        and digest(saved_run) == before
    )
    log = train(train_resnet, stopped, "--resume", stopped, mnist_dir=mnist_dir)
    assert "epoch 2 to go" in log
    assert_same_results(stopped, resnet_2_epochs)
    assert json.loads((stopped / "settings.json").read_text(encoding="utf-8"))["flags"]["epochs"] == 2  # written again


def test_an_edited_constant_is_not_a_code_change_and_the_run_keeps_its_own(saved_run, tmp_path, mnist_dir):
    script = edited(tmp_path, "train_resnet.py", ("LOG_EVERY = 300", "LOG_EVERY = 20"))
    log = train(
        load_script(script, "train_resnet_edited"), saved_run, "--epochs", 2, "--resume", saved_run, mnist_dir=mnist_dir
    )
    assert "note:" not in log
    assert "epoch 2: test accuracy" in log and "[2,     5] loss" in log  # the run's own LOG_EVERY, not the edited one


@pytest.mark.parametrize(
    "file, edit",
    [
        ("models.py", ("return F.relu(x + y)", "return F.relu(x + 0.5 * y)")),  # still loads: the same weights
        ("train_resnet.py", ("running_loss = 0.0\n    epoch_loss", "running_loss = 0.0  # edited\n    epoch_loss")),
    ],
)
def test_edited_code_that_a_resume_runs_is_one_note(file, edit, saved_run, tmp_path, mnist_dir, monkeypatch):
    path = edited(tmp_path, file, edit)
    if file == "models.py":
        script = load_script(ROOT / "train_resnet.py", "train_resnet_edited", models=path, monkeypatch=monkeypatch)
    else:
        script = load_script(path, "train_resnet_edited")
    log = train(script, saved_run, "--epochs", 2, "--resume", saved_run, mnist_dir=mnist_dir)
    assert f"note: {file} changed since the run began; the rest of the run uses it as edited" in log
    assert "epoch 2: test accuracy" in log
    # From here the record holds the edited code: the saved weights were trained last with it.
    assert torch.load(saved_run / "checkpoint.pt", weights_only=True)["record"]["code"][file] == path.read_text()


# --- refused, and nothing in the folder changes ----------------------------------------------------


def refused(module, folder, *args, data=None):
    """Resume in folder; returns (exit code, stderr) after checking that no file in folder changed."""
    before = digest(folder)
    code, out, err = run_main(module, "--resume", folder, "--data-dir", data or "nowhere", *args)
    assert digest(folder) == before
    assert "Traceback" not in err and "epoch" not in out
    return code, err


@pytest.mark.parametrize(
    "flag, given, saved",
    [("--batch-size", "32", "64"), ("--lr", "0.05", "0.01"), ("--seed", "1", "0"), ("--log-every", "3", "5")],
)
def test_a_typed_flag_that_differs_is_refused(saved_run, flag, given, saved):
    code, err = refused(train_resnet, saved_run, "--epochs", 3, flag, given)
    assert code == 2
    says(err, f"--resume {saved_run}", f"{flag} {given} differs from the run's {saved}", "leave it out", "nothing was")


def test_the_same_value_typed_again_is_fine(saved_run, mnist_dir):
    log = train(
        train_resnet, saved_run, "--resume", saved_run, "--epochs", 2, "--lr", 0.01, "--seed", 0, mnist_dir=mnist_dir
    )
    assert "epoch 2: test accuracy" in log


def test_no_more_epochs_is_refused(saved_run):
    code, err = refused(train_resnet, saved_run, "--epochs", 1)
    assert (
        code == 2
        and "it has done 1 epoch, and --epochs 1 asks for no more; to go on, ask for more, e.g. --epochs 11" in err
    )


def test_no_checkpoint_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    code, err = refused(train_resnet, tmp_path)
    assert code == 2 and f"--resume {tmp_path}: it has no checkpoint.pt to go on from" in err
    code, _, err = run_main(train_resnet, "--resume", tmp_path / "never-made")
    assert code == 2 and not (tmp_path / "never-made").exists()
    says(err, f"--resume {tmp_path / 'never-made'}: there is no such folder", "name a run's folder")


def test_the_other_nets_run_is_refused(saved_run, mnist_dir):
    code, err = refused(train_inception, saved_run, "--epochs", 2, data=mnist_dir)
    assert code == 2 and "it is a run of ResidualNet, but this script trains InceptionNet; nothing was changed" in err


def test_other_data_is_refused_and_a_copy_of_the_same_is_not(saved_run, tmp_path, mnist_dir):
    other = write_mnist(tmp_path / "other")  # the same images, one fewer in each split: other data
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        images = other / "MNIST" / "raw" / name.replace("labels-idx1", "images-idx3")
        for path, size in ((other / "MNIST" / "raw" / name, 1), (images, 784)):
            raw = path.read_bytes()
            path.write_bytes(raw[:4] + (int.from_bytes(raw[4:8], "big") - 1).to_bytes(4, "big") + raw[8:-size])
    code, err = refused(train_resnet, saved_run, "--epochs", 2, data=other)
    assert (
        code == 2
        and (
            f"it was trained on 320 training and 80 test images, but --data-dir {other} holds 319"
            " training and 79 test images; nothing was changed"
        )
        in err
    )
    log = train(train_resnet, saved_run, "--resume", saved_run, "--epochs", 2, mnist_dir=write_mnist(tmp_path / "copy"))
    assert "epoch 2: test accuracy" in log


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not a run"])
def test_a_damaged_checkpoint_is_refused(saved_run, damage):
    path = saved_run / "checkpoint.pt"
    whole = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(whole[: len(whole) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 1000)
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    code, err = refused(train_resnet, saved_run, "--epochs", 3)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"error: cannot resume: {path} is damaged or truncated (") and err.endswith(
        "it was left as is\n"
    )


SGD = "torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)"


@pytest.mark.parametrize(
    "edits, named",
    [
        ([(SGD, SGD.replace("momentum=args.momentum", "momentum=0.9"))], "momentum 0.9 in the code, 0.5 in the run"),
        (
            [
                ("MOMENTUM = 0.5  # SGD momentum\n", "MOMENTUM = 0.5  # SGD momentum\nWEIGHT_DECAY = 1e-3\n"),
                ("momentum=args.momentum)", "momentum=args.momentum, weight_decay=args.weight_decay)"),
                ("out_dir=OUT_DIR,", "out_dir=OUT_DIR,\n        weight_decay=WEIGHT_DECAY,"),
            ],
            "weight_decay 0.001 in the code, 0 in the run",
        ),
        ([(SGD, "torch.optim.Adam(model.parameters(), lr=args.lr)")], "optimizer Adam in the code, SGD in the run"),
    ],
)
def test_an_optimizer_edited_since_the_run_began_is_refused(edits, named, saved_run, tmp_path, mnist_dir):
    script = edited(tmp_path, "train_resnet.py", *edits)
    code, err = refused(load_script(script, "train_resnet_optimizer"), saved_run, "--epochs", 2, data=mnist_dir)
    assert code == 2
    says(
        err,
        f"--resume {saved_run}",
        named,
        "goes on with the run's own optimizer; start a new run",
        "nothing was changed",
    )


def test_the_extension_covers_all_epochs(saved_run, mnist_dir):
    train(train_resnet, saved_run, "--epochs", 3, "--resume", saved_run, mnist_dir=mnist_dir)
    rows, _ = results(saved_run)
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert torch.load(saved_run / "checkpoint.pt", weights_only=True)["record"]["flags"]["epochs"] == 3
