"""Every run kept: a new run never replaces another; runs started together each get a folder of their own."""

import json
import os
import subprocess
import threading

import pytest

import train_resnet
from conftest import digest, run_main, script_call, train
from helpers import store


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A working directory as a learner's: runs/ appears in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_two_runs_in_a_row_keep_both_folders(here, mnist_dir):
    first = train(train_resnet, None, "--epochs", 1, mnist_dir=mnist_dir)
    assert first.splitlines()[1] == f"results: {os.path.join('runs', 'resnet')}{os.sep}"
    kept = digest(here / "runs" / "resnet")
    second = train(train_resnet, None, "--epochs", 1, "--lr", 0.05, mnist_dir=mnist_dir)
    assert second.splitlines()[1] == f"results: {os.path.join('runs', 'resnet-2')}{os.sep}"
    assert second.rstrip().endswith(f"plot: {os.path.join('runs', 'resnet-2', 'accuracy.png')}")
    assert digest(here / "runs" / "resnet") == kept  # byte for byte
    assert sorted(os.listdir(here / "runs")) == ["resnet", "resnet-2"]
    settings = json.loads((here / "runs" / "resnet-2" / "settings.json").read_text(encoding="utf-8"))
    assert settings["flags"]["lr"] == 0.05 and settings["optimizer"]["param_groups"][0]["lr"] == 0.05


def make_at_once(base, runs):
    """The folders that runs threads, started at the same instant, get from store.make_folder(base)."""
    start, made = threading.Barrier(runs), []

    def make():
        start.wait()
        made.append(store.make_folder(str(base))[0])

    threads = [threading.Thread(target=make) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(made)


def test_runs_started_at_the_same_moment_get_their_own_folders(tmp_path):
    for base, runs in ((tmp_path / "runs" / "resnet", 8), (tmp_path / "new" / "parent" / "resnet", 6)):
        assert make_at_once(base, runs) == sorted([str(base)] + [f"{base}-{n}" for n in range(2, runs + 1)])


@pytest.mark.slow
def test_six_runs_started_at_once_into_a_new_parent(tmp_path, mnist_dir):
    processes = [
        subprocess.Popen(
            **script_call(
                "train_resnet.py",
                "--epochs",
                1,
                "--data-dir",
                mnist_dir,
                "--out-dir",
                tmp_path / "new" / "resnet",
                "--no-show",
            ),
            stdout=subprocess.PIPE,
        )
        for _ in range(6)
    ]
    said = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * 6
    folders = sorted(
        line.split(": ", 1)[1] for out in said for line in out.splitlines() if line.startswith("results: ")
    )
    expected = ["resnet", *(f"resnet-{n}" for n in range(2, 7))]
    assert folders == sorted(f"{tmp_path / 'new' / name}{os.sep}" for name in expected)
    assert sorted(os.listdir(tmp_path / "new")) == sorted(expected)
    assert all(len(os.listdir(tmp_path / "new" / name)) == 5 for name in expected)


def test_what_is_in_the_way_is_left_alone(here, mnist_dir):
    (here / "results").write_text("my notes\n")  # a file under the name asked for
    log = train(train_resnet, "results", "--epochs", 1, mnist_dir=mnist_dir)
    assert log.splitlines()[1] == f"results: results-2{os.sep}" and (here / "results").read_text() == "my notes\n"
    (here / "mine").mkdir()  # a folder of the user's, empty or not: never written into
    train(train_resnet, "mine", "--epochs", 1, mnist_dir=mnist_dir)
    assert os.listdir(here / "mine") == [] and (here / "mine-2" / "checkpoint.pt").is_file()


def test_an_out_dir_that_cannot_be_made_is_one_line(here, mnist_dir):
    (here / "results").write_text("my notes\n")
    code, out, err = run_main(train_resnet, "--data-dir", mnist_dir, "--out-dir", here / "results" / "run", "--no-show")
    assert code == 1 and err.startswith(f"error: cannot make a folder for the run at {here / 'results' / 'run'}: ")
    assert err.rstrip().endswith("; pick another --out-dir") and "epoch" not in out
    assert sorted(os.listdir(here)) == ["results"] and (here / "results").read_text() == "my notes\n"
