"""--resume: a resumed run is the same run, bit for bit; a resume that cannot be right is refused and
changes nothing."""
import json
import os
import shlex
import shutil
import signal
import subprocess

import pytest
import torch

import train_inception
import train_resnet
from conftest import ROOT, assert_same_results, digest, results, run_main, script_call, stopped_in_epoch_2, train
from helpers import checkpoint


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


def test_resnet_resumed_equals_uninterrupted(saved_run, resnet_2_epochs, mnist_dir):
    log = train(train_resnet, saved_run, "--epochs", 2, "--resume", mnist_dir=mnist_dir)
    assert f"resuming: epoch 1 done in {saved_run}{os.sep}, on to epoch 2" in log and "epoch 1:" not in log and "epoch 2:" in log
    assert_same_results(saved_run, resnet_2_epochs)


@pytest.mark.slow
def test_inception_resumed_equals_uninterrupted(mnist_dir, tmp_path):
    train(train_inception, tmp_path / "whole", "--epochs", 2, mnist_dir=mnist_dir)
    train(train_inception, tmp_path / "resumed", "--epochs", 1, mnist_dir=mnist_dir)
    train(train_inception, tmp_path / "resumed", "--epochs", 2, "--resume", mnist_dir=mnist_dir)
    assert_same_results(tmp_path / "resumed", tmp_path / "whole")


def test_checkpoint_holds_the_whole_run_and_its_data(saved_run):
    checkpoint = torch.load(saved_run / "checkpoint.pt", weights_only=True)
    assert checkpoint["net"] == "ResidualNet"
    settings = checkpoint["settings"]  # everything a resume needs, the epochs asked for included
    assert {name: settings[name] for name in ("epochs", "batch_size", "lr", "momentum", "seed", "log_every")} == {
        "epochs": 1, "batch_size": 64, "lr": 0.01, "momentum": 0.5, "seed": 0, "log_every": 10}
    assert settings["data"]["train_images"] == 2000 and settings["data"]["test_images"] == 500
    assert json.loads((saved_run / "settings.json").read_text()) == {**settings, "resumed": []}  # written from the checkpoint
    assert checkpoint["environment"] == {"device": "cpu", "threads": torch.get_num_threads(), "torch": str(torch.__version__)}
    assert [row[0] for row in checkpoint["history"]] == [1]
    weights = torch.load(saved_run / "model.pt", weights_only=True)
    assert all(torch.equal(checkpoint["model"][name], w) for name, w in weights.items())
    buffers = [state["momentum_buffer"] for state in checkpoint["optimizer"]["state"].values()]
    assert len(buffers) == len(weights) and all(b.abs().sum() > 0 for b in buffers)
    assert checkpoint["generator"].dtype == torch.uint8  # the shuffle generator's state


def test_checkpoint_tensors_are_copies_not_the_live_ones():
    """What checkpoint.cpu_copies promises: copies (training goes on in the live tensors) on the CPU. The device
    half is checked where an accelerator exists (tests/test_accelerator.py)."""
    live = {"w": torch.ones(3), "step": 4}
    saved = checkpoint.cpu_copies(live)
    live["w"].add_(1)
    assert torch.equal(saved["w"], torch.ones(3)) and saved["step"] == 4
    assert saved["w"].untyped_storage().data_ptr() != live["w"].untyped_storage().data_ptr()


def test_extending_a_finished_run_covers_all_epochs(saved_run, mnist_dir):
    train(train_resnet, saved_run, "--epochs", 3, "--resume", mnist_dir=mnist_dir)
    rows, _ = results(saved_run)
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert torch.load(saved_run / "checkpoint.pt", weights_only=True)["history"][-1][0] == 3


def test_without_resume_a_new_run_never_replaces_a_run(saved_run, mnist_dir):
    before = digest(saved_run)
    log = train(train_resnet, saved_run, "--epochs", 1, "--seed", 7, mnist_dir=mnist_dir)
    assert log.startswith(f"results: {saved_run}-2{os.sep} ({saved_run} holds an earlier run; delete a run's folder to replace it)")
    assert digest(saved_run) == before  # byte for byte
    assert torch.load(f"{saved_run}-2/checkpoint.pt", weights_only=True)["settings"]["seed"] == 7


def interrupt_in_epoch_2(out, how, mnist_dir):
    """Start a 2-epoch run as a user would, and stop it with `how` in the middle of its second epoch."""
    args = ["--epochs", 2, "--log-every", 10, "--data-dir", mnist_dir, "--out-dir", out, "--no-show"]
    process = subprocess.Popen(
        **script_call("train_resnet.py", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )
    for line in process.stdout:
        if line.startswith("[2,    10]"):  # 10 of epoch 2's 32 batches are done
            process.send_signal(how)
            break
    stdout, stderr = process.communicate(timeout=60)
    assert "epoch 2:" not in stdout  # it did stop in the middle of the epoch
    return process.returncode, stderr


@pytest.mark.slow
def test_ctrl_c_in_the_middle_of_an_epoch_then_the_printed_command(tmp_path, resnet_2_epochs, mnist_dir):
    out = tmp_path / "out"
    code, stderr = interrupt_in_epoch_2(out, signal.SIGINT, mnist_dir)
    assert code == 130 and "Traceback" not in stderr
    assert f"interrupted: the results of epoch 1 are in {out}{os.sep}" in stderr
    last = stderr.rstrip().splitlines()[-1]
    assert last == f"  to go on from there: python {ROOT / 'train_resnet.py'} --resume --out-dir {out} --device cpu --no-show"
    command = shlex.split(last.split(": ", 1)[1])
    code, stdout, stderr = run_main(train_resnet, *command[2:])  # the rest of the command, run in this process
    assert code == 0, stderr
    assert "resuming: epoch 1 done" in stdout and "on to epoch 2" in stdout  # the epochs the run was started with
    assert_same_results(out, resnet_2_epochs)


@pytest.mark.slow
def test_killed_in_the_middle_of_an_epoch_then_resumed(tmp_path, resnet_2_epochs, mnist_dir):
    out = tmp_path / "out"
    code, _ = interrupt_in_epoch_2(out, signal.SIGKILL, mnist_dir)
    assert code == -signal.SIGKILL
    assert len((out / "metrics.csv").read_text().splitlines()) == 2  # the header and epoch 1
    train(train_resnet, out, "--epochs", 2, "--resume", mnist_dir=mnist_dir)
    assert_same_results(out, resnet_2_epochs)


# --- refused, and nothing in the folder changes ----------------------------------------------------


def refused(module, folder, *args):
    """Resume in folder; returns (exit code, stderr) after checking that no file in folder changed."""
    before = digest(folder)
    code, out, err = run_main(module, "--resume", "--data-dir", "nowhere", "--out-dir", folder, *args)
    assert digest(folder) == before
    assert "Traceback" not in err and "epoch" not in out
    return code, err


def test_resume_without_a_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    code, err = refused(train_resnet, tmp_path)
    assert code == 2 and f"--resume: {tmp_path} has no checkpoint.pt to resume from" in err
    assert "leave out --resume" in err
    code, err = run_main(train_resnet, "--resume", "--out-dir", tmp_path / "never-made")[::2]
    assert code == 2 and not (tmp_path / "never-made").exists()


def test_resume_with_the_other_nets_checkpoint(saved_run):
    code, err = refused(train_inception, saved_run)
    assert code == 2 and "is a run of ResidualNet, but this script trains InceptionNet" in err


@pytest.mark.parametrize("flag, given, saved", [("--batch-size", "32", "64"), ("--lr", "0.05", "0.01"),
                                                ("--momentum", "0.9", "0.5"), ("--seed", "1", "0")])
def test_resume_with_other_hyperparameters(saved_run, flag, given, saved):
    code, err = refused(train_resnet, saved_run, "--epochs", 3, flag, given)
    assert code == 2
    assert f"--resume: {flag} {given} differs from the run's {flag} {saved} in {saved_run}" in err
    assert "to start a new run instead, leave out --resume" in err


def test_resume_without_more_epochs(saved_run):
    code, err = refused(train_resnet, saved_run, "--epochs", 1)
    assert code == 2 and "--epochs 1 is not above the 1 epoch already finished" in err and "--epochs 11" in err


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not a run"])
def test_resume_from_a_damaged_checkpoint(saved_run, damage):
    path = saved_run / "checkpoint.pt"
    whole = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(whole[: len(whole) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 1000)
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    code, err = refused(train_resnet, saved_run, "--epochs", 3)
    assert code == 1
    assert err.startswith(f"error: cannot resume: {path} is damaged or truncated") and "it was left as it is" in err


def test_ctrl_c_before_a_resumed_run_trains_still_offers_to_resume(saved_run, monkeypatch):
    def interrupted_while_loading(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_resnet, "mnist_loaders", interrupted_while_loading)
    before = digest(saved_run)
    code, out, err = run_main(train_resnet, "--epochs", 3, "--resume", "--out-dir", saved_run, "--no-show")
    assert code == 130 and "Traceback" not in err
    assert f"interrupted: the results of epoch 1 are in {saved_run}{os.sep}" in err
    assert err.rstrip().endswith(f"--resume --out-dir {saved_run} --epochs 3 --device cpu --no-show")
    assert digest(saved_run) == before


# --- settings.json is for people to read: a resume never trips on it ----------------------------------


def test_without_settings_json_a_finished_run_is_still_finished(saved_run):
    os.remove(saved_run / "settings.json")
    code, err = refused(train_resnet, saved_run)  # no --epochs: the checkpoint knows the run was asked for 1
    assert code == 2 and "has finished the 1 epoch it was asked for; to go on, ask for more, e.g. --epochs 10" in err


@pytest.mark.parametrize("edit", [{"log_every": 0, "data_dir": 5},
                                  pytest.param({"log_every": "300", "epochs": 1, "lr": "fast"}, marks=pytest.mark.slow)])
def test_a_hand_edited_settings_json_is_not_read_and_is_written_again(edit, mnist_dir, tmp_path, monkeypatch, resnet_2_epochs):
    out = tmp_path / "run"
    stopped_in_epoch_2(train_resnet, out, mnist_dir, monkeypatch)
    settings = json.loads((out / "settings.json").read_text())
    (out / "settings.json").write_text(json.dumps({**settings, **edit}))
    log = train(train_resnet, out, "--resume", mnist_dir=mnist_dir)
    assert "resuming: epoch 1 done" in log and "on to epoch 2" in log  # the checkpoint's epochs, not the edited file's
    assert_same_results(out, resnet_2_epochs)
    rewritten = json.loads((out / "settings.json").read_text())
    assert {name: rewritten[name] for name in settings if name != "resumed"} == {n: v for n, v in settings.items() if n != "resumed"}
    assert [entry["epochs"] for entry in rewritten["resumed"]] == [2]


def test_a_refused_or_interrupted_resume_records_nothing(saved_run, monkeypatch):
    before = digest(saved_run)
    monkeypatch.setattr(train_resnet, "mnist_loaders", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt))
    code, _, err = run_main(train_resnet, "--resume", "--epochs", 3, "--out-dir", saved_run, "--no-show")
    assert code == 130 and digest(saved_run) == before  # no resume entry for a resume that trained nothing


def test_temporaries_of_a_killed_save_are_cleared_by_the_next(saved_run, mnist_dir):
    for name in ("accuracy.png.99999.tmp", "checkpoint.pt.12.tmp"):
        (saved_run / name).write_bytes(b"")  # what a SIGKILL in the middle of writing leaves
    (saved_run / "notes.99.tmp").write_text("mine\n")  # not a file of the run: left alone
    train(train_resnet, saved_run, "--resume", "--epochs", 2, mnist_dir=mnist_dir)
    assert sorted(p.name for p in saved_run.iterdir() if p.name.endswith(".tmp")) == ["notes.99.tmp"]
