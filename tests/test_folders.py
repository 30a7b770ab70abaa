"""Every run kept: a new run never replaces another, each says what it was, and --resume finds the run."""
import json
import os
import threading

import pytest
import torch

import train_resnet
from conftest import OFFLINE, digest, run_main, stopped_in_epoch_2, use_proxy, write_mnist
from helpers import checkpoint, store


@pytest.fixture
def here(tmp_path, monkeypatch, mnist_dir):
    """A working directory as a learner's: runs/ appears in it, data from the shipped subset."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def train(*args, mnist_dir, module=train_resnet):
    code, out, err = run_main(module, "--log-every", 10, "--data-dir", mnist_dir, "--no-show", *args)
    assert code == 0, err
    return out


def test_two_runs_in_a_row_keep_both_folders(here, mnist_dir):
    first = train("--epochs", 1, mnist_dir=mnist_dir)
    assert first.startswith(f"results: {os.path.join('runs', 'resnet')}{os.sep}\n")
    kept = digest(here / "runs" / "resnet")
    second = train("--epochs", 1, "--lr", 0.05, mnist_dir=mnist_dir)
    assert second.startswith(f"results: {os.path.join('runs', 'resnet-2')}{os.sep} ({os.path.join('runs', 'resnet')} holds an earlier run;")
    assert second.rstrip().endswith(f"plot: {os.path.join('runs', 'resnet-2', 'accuracy.png')}")
    assert digest(here / "runs" / "resnet") == kept  # byte for byte
    assert sorted(os.listdir(here / "runs")) == ["resnet", "resnet-2"]
    assert json.loads((here / "runs" / "resnet-2" / "settings.json").read_text())["lr"] == 0.05


def claim_at_once(base, runs):
    start, claimed = threading.Barrier(runs), []

    def claim():
        start.wait()
        claimed.append(store.claim(base)[0])

    threads = [threading.Thread(target=claim) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted([base] + [f"{base}-{n}" for n in range(2, runs + 1)])  # a folder each, none shared
    assert all(os.listdir(folder) == ["settings.json"] for folder in claimed)


def test_runs_started_at_the_same_moment_get_their_own_folders(tmp_path):
    (tmp_path / "runs" / "resnet").mkdir(parents=True)  # empty: the first to come takes it
    claim_at_once(str(tmp_path / "runs" / "resnet"), 8)
    claim_at_once(str(tmp_path / "new" / "parent" / "resnet"), 6)  # their parent made by all at the same instant


def test_the_working_folder_as_out_dir_is_numbered_by_its_name(tmp_path, monkeypatch):
    work = tmp_path / "lecture11"
    work.mkdir()
    monkeypatch.chdir(work)
    assert store.choose(".") == (str(work), None)  # empty: the run's files go right here
    (work / "notes.txt").write_text("mine\n")
    for given in (".", ""):  # OUT_DIR = "." or "": not a hidden .-2
        assert store.choose(given) == (f"{work}-2", f"{work} is not empty")
    assert store.claim(store.base("."))[0] == f"{work}-2"


def test_a_file_in_the_way_is_not_a_folder(tmp_path):
    (tmp_path / "notes").write_text("mine\n")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        store.choose(str(tmp_path / "notes"))
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        store.choose(str(tmp_path / "notes" / "run"))
    assert (tmp_path / "notes").read_text() == "mine\n"


@pytest.mark.slow  # the quick run keeps test_resume_alone_goes_on_to_the_epochs_the_run_was_started_with
def test_resume_goes_on_with_the_latest_run_and_its_own_settings(here, mnist_dir):
    train("--epochs", 1, mnist_dir=mnist_dir)
    train("--epochs", 2, "--lr", 0.05, "--seed", 3, mnist_dir=mnist_dir)  # runs/resnet-2
    os.remove(here / "runs" / "resnet-2" / "metrics.csv")  # as if stopped: it is written again
    log = train("--resume", "--epochs", 3, mnist_dir=mnist_dir)
    assert log.startswith(f"resuming the latest run of train_resnet.py: {os.path.join('runs', 'resnet-2')}{os.sep}\n")
    assert "note: LR is 0.01 at the top of train_resnet.py, but this run goes on with its own --lr 0.05" in log
    assert "note: SEED is 0 at the top of train_resnet.py, but this run goes on with its own --seed 3" in log
    checkpoint = torch.load(here / "runs" / "resnet-2" / "checkpoint.pt", weights_only=True)
    assert checkpoint["settings"]["lr"] == 0.05 and len(checkpoint["history"]) == 3
    settings = json.loads((here / "runs" / "resnet-2" / "settings.json").read_text())
    assert settings["epochs"] == 2 and [r["epochs"] for r in settings["resumed"]] == [3]  # what was asked, kept
    assert len(torch.load(here / "runs" / "resnet" / "checkpoint.pt", weights_only=True)["history"]) == 1  # untouched
    # With --out-dir, exactly that folder.
    log = train("--resume", "--epochs", 2, "--out-dir", os.path.join("runs", "resnet"), mnist_dir=mnist_dir)
    assert "resuming the latest" not in log and f"done in {os.path.join('runs', 'resnet')}{os.sep}, on to epoch 2" in log


def test_resume_alone_goes_on_to_the_epochs_the_run_was_started_with(here, mnist_dir):
    train("--epochs", 2, mnist_dir=mnist_dir)
    folder = here / "runs" / "resnet"
    before = digest(folder)
    code, _, err = run_main(train_resnet, "--resume", "--no-show")  # a finished run: asks for more epochs
    assert code == 2 and "has finished the 2 epochs it was asked for; to go on, ask for more, e.g. --epochs 10" in err  # EPOCHS
    assert digest(folder) == before
    train("--epochs", 1, "--out-dir", "one", mnist_dir=mnist_dir)
    code, _, err = run_main(train_resnet, "--resume", "--out-dir", "one", "--no-show")
    assert code == 2 and "has finished the 1 epoch it was asked for; to go on, ask for more, e.g. --epochs 10" in err


def test_an_edited_epochs_constant_is_noted_and_offered(here, mnist_dir, monkeypatch):
    train("--epochs", 1, mnist_dir=mnist_dir)
    stopped_in_epoch_2(train_resnet, "two", mnist_dir, monkeypatch)
    monkeypatch.setattr(train_resnet, "EPOCHS", 3)  # then the learner edits EPOCHS = 3 at the top of the script
    code, _, err = run_main(train_resnet, "--resume", "--no-show")
    assert code == 2 and "has finished the 1 epoch it was asked for; to go on, ask for more, e.g. --epochs 3" in err
    log = train("--resume", "--out-dir", "two", mnist_dir=mnist_dir)
    assert "note: EPOCHS is 3 at the top of train_resnet.py, but this run goes on to its own 2; --epochs 3 takes it to 3" in log
    assert "epoch 2: test accuracy" in log and "epoch 3:" not in log


def test_resume_refuses_a_typed_flag_that_differs_and_another_data_set(here, mnist_dir, tmp_path):
    train("--epochs", 1, "--lr", 0.05, mnist_dir=mnist_dir)
    folder = here / "runs" / "resnet"
    before = digest(folder)
    code, _, err = run_main(train_resnet, "--resume", "--epochs", 2, "--lr", 0.01, "--no-show")
    assert code == 2 and "--resume: --lr 0.01 differs from the run's --lr 0.05" in err
    assert digest(folder) == before
    other = write_mnist(tmp_path / "other")  # the same images, one label fewer in each split: other data
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        raw = (other / "MNIST" / "raw" / name).read_bytes()
        images = name.replace("labels-idx1", "images-idx3")
        image_bytes = (other / "MNIST" / "raw" / images).read_bytes()
        count = int.from_bytes(raw[4:8], "big") - 1
        (other / "MNIST" / "raw" / name).write_bytes(raw[:4] + count.to_bytes(4, "big") + raw[8:-1])
        (other / "MNIST" / "raw" / images).write_bytes(image_bytes[:4] + count.to_bytes(4, "big") + image_bytes[8:-784])
    code, out, err = run_main(train_resnet, "--resume", "--epochs", 2, "--data-dir", other, "--no-show")
    assert code == 2 and "Traceback" not in err
    assert f"--resume: the run in {os.path.join('runs', 'resnet')} was trained on 2,000 training and 500 test images" in err
    assert f"but {other} holds 1,999 training and 499 test images" in err and f"(it used --data-dir {mnist_dir})" in err
    assert digest(folder) == before and "epoch 2" not in out
    # The same MNIST in another folder is the same data.
    copy = write_mnist(tmp_path / "copy")
    log = train("--resume", "--epochs", 2, "--data-dir", copy, mnist_dir=copy)
    assert "epoch 2: test accuracy" in log
    assert f"note: --data-dir {copy} from here on (the run had {mnist_dir})" in log  # a typed --data-dir applies, and is said
    assert json.loads((folder / "settings.json").read_text())["resumed"][-1]["data_dir"] == str(copy)


@pytest.mark.slow
def test_resumed_elsewhere_says_it_is_no_longer_bit_identical(here, mnist_dir):
    train("--epochs", 1, mnist_dir=mnist_dir)
    checkpoint_path = here / "runs" / "resnet" / "checkpoint.pt"
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    checkpoint["environment"] = {**checkpoint["environment"], "device": "cuda:0", "threads": 64}
    torch.save(checkpoint, checkpoint_path)
    log = train("--resume", "--epochs", 2, mnist_dir=mnist_dir)
    notes = [line for line in log.splitlines() if "no longer bit-identical" in line]
    assert notes == [f"note: resumed with another device cuda:0 -> cpu, threads 64 -> {torch.get_num_threads()}:"
                     " the run goes on, but is no longer bit-identical to an uninterrupted one"]


def test_a_run_that_fails_before_its_first_epoch_leaves_nothing(here, tmp_path, monkeypatch):
    use_proxy(monkeypatch, OFFLINE["http_proxy"])
    code, _, err = run_main(train_resnet, "--data-dir", tmp_path / "empty" / "data", "--out-dir", tmp_path / "new" / "run", "--no-show")
    assert code == 1 and "MNIST is not in" in err
    assert not (tmp_path / "new").exists() and not (tmp_path / "empty").exists()


@pytest.mark.slow  # the quick run keeps test_resume.py's hand-edited settings.json
def test_a_broken_settings_file_does_not_stop_a_resume_and_is_written_again(here, mnist_dir):
    train("--epochs", 1, mnist_dir=mnist_dir)
    settings = here / "runs" / "resnet" / "settings.json"
    settings.write_text('{"net": "ResidualNet", "lr": 0.01,')  # edited by hand, and broken
    log = train("--resume", "--epochs", 2, mnist_dir=mnist_dir)
    assert "epoch 2: test accuracy" in log and "note:" not in log
    assert json.loads(settings.read_text())["resumed"][0]["epochs"] == 2


def test_a_setting_as_it_stands_is_the_last_resume_that_recorded_it():
    state = {"settings": {"net": "ResidualNet", "epochs": 10, "data_dir": "data", "device": "cpu"},
             "resumed": [{"epochs": 20, "data_dir": "copy", "device": "cuda:0"}, {"epochs": 30, "device": "cpu"}]}
    assert checkpoint.latest(state, "epochs") == 30
    assert checkpoint.latest(state, "data_dir") == "copy"  # the last resume did not record one: the one before did
    assert checkpoint.latest({**state, "resumed": []}, "data_dir") == "data"
    assert checkpoint.latest(state, "log_every") is None
