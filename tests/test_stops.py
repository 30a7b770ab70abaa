"""A run that stops (divergence, out of memory, a failed save, Ctrl-C) says why, keeps the finished epochs and
leaves every file whole."""
import math
import os
import signal
import subprocess
import weakref

import pytest
import torch

import train_inception
import train_resnet
from conftest import run_main, script_call
from helpers import figures, store
from helpers.device import OutOfMemoryError  # torch.OutOfMemoryError from torch 2.5 on
from helpers.run import Stop

MODULES = [train_inception, train_resnet]
KILLS = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]  # Windows has no SIGHUP: collected there too
# Tests that train: the machinery is the same for both, so InceptionNet (three times the work) runs with the slow tests.
TRAINING = [pytest.param(train_inception, marks=pytest.mark.slow), train_resnet]


def test_divergence_stops_with_advice(mnist_dir, tmp_path):
    code, out, err = run_main(train_resnet, "--lr", 100, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1
    assert "the training loss became nan in epoch 1" in err
    assert "the loss is checked at the end of each epoch" in err
    assert "try a smaller learning rate than --lr 100;" in err
    assert err.rstrip().endswith("; nothing was saved.")
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("module", TRAINING)
def test_divergence_keeps_the_finished_epochs(module, mnist_dir, tmp_path, monkeypatch):
    real_train = module.train

    def train_then_blow_up(model, device, loader, optimizer, criterion, epoch, log_every):
        if epoch == 2:  # what a too-large step does: the weights turn to inf and the loss to nan
            with torch.no_grad():
                model.l1.weight.fill_(math.inf)
        return real_train(model, device, loader, optimizer, criterion, epoch, log_every)

    monkeypatch.setattr(module, "train", train_then_blow_up)
    code, out, err = run_main(module, "--epochs", 3, "--log-every", 10, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1
    assert "the training loss became nan in epoch 2" in err
    assert f"the results of epoch 1 are in {tmp_path}{os.sep}" in err
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    assert len(rows) == 1 and f"epoch 1: test accuracy {rows[0].split(',')[2]}%" in out
    weights = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(torch.isfinite(w).all() for w in weights.values())  # epoch 1's weights, not the broken ones
    assert sorted(os.listdir(tmp_path)) == ["accuracy.png", "checkpoint.pt", "metrics.csv", "mistakes.png", "model.pt", "settings.json"]


OUT_OF_MEMORY = {
    "cuda": lambda: OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "mps": lambda: RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.2 GB)"),
    # The CPU: Windows does not overcommit, so a batch too large for the RAM fails here (Linux and macOS say "can't allocate").
    "cpu": lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory:"
                                " you tried to allocate 4294967296 bytes."),
    "cpu-posix": lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory:"
                                      " you tried to allocate 4294967296 bytes. Error code 12 (Cannot allocate memory)"),
}


@pytest.mark.parametrize("module, kind", [pytest.param(train_inception, "cuda", marks=pytest.mark.slow), (train_resnet, "mps"),
                                          (train_resnet, "cuda"), (train_resnet, "cpu"),
                                          pytest.param(train_resnet, "cpu-posix", marks=pytest.mark.slow)])
def test_out_of_memory_frees_the_failed_step_and_keeps_the_finished_epochs(module, kind, mnist_dir, tmp_path, monkeypatch):
    real_train, step = module.train, []

    def train_out_of_memory(model, device, loader, optimizer, criterion, epoch, log_every):
        if epoch == 2:  # what a batch too large for the GPU does, in the middle of a step
            activations = torch.zeros(1000, 1000)
            step.append(weakref.ref(activations))
            raise OUT_OF_MEMORY[kind]()
        return real_train(model, device, loader, optimizer, criterion, epoch, log_every)

    real_find, freed = figures.find_mistakes, []

    def find_mistakes(model, loader, device):
        freed.append(step[0]() is None and all(p.grad is None for p in model.parameters()))
        return real_find(model, loader, device)

    monkeypatch.setattr(module, "train", train_out_of_memory)
    monkeypatch.setattr(figures, "find_mistakes", find_mistakes)
    code, out, err = run_main(module, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1 and "Traceback" not in err
    assert "error: out of memory on cpu with --batch-size 64: try a smaller batch" in err
    assert f"the results of epoch 1 are in {tmp_path}{os.sep}" in err
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2
    assert freed == [True]  # the failed step's tensors and the gradients were let go before mistakes.png
    assert "mistakes: " in out and (tmp_path / "mistakes.png").exists()


def test_out_of_memory_again_while_drawing_the_mistakes_skips_them(mnist_dir, tmp_path, monkeypatch):
    real_train = train_resnet.train

    def train_out_of_memory(model, device, loader, optimizer, criterion, epoch, log_every):
        if epoch == 2:
            raise OUT_OF_MEMORY["cuda"]()
        return real_train(model, device, loader, optimizer, criterion, epoch, log_every)

    def find_mistakes(model, loader, device):
        raise OUT_OF_MEMORY["mps"]()

    monkeypatch.setattr(train_resnet, "train", train_out_of_memory)
    monkeypatch.setattr(figures, "find_mistakes", find_mistakes)
    code, out, err = run_main(train_resnet, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("mistakes.png skipped: MPS backend out of memory") and len(lines) == 2
    assert lines[1].startswith("error: out of memory on cpu") and not (tmp_path / "mistakes.png").exists()


def fail_writing(monkeypatch, name, error, times=1, first=2):
    """The first-th writing of name (by default epoch 2's) and the next times - 1 fail with error."""
    real_save, calls = store.save_atomic, []

    def save_atomic(path, write):
        if os.path.basename(path) == name:
            calls.append(path)
            if first <= len(calls) < first + times:
                raise error
        real_save(path, write)

    monkeypatch.setattr(store, "save_atomic", save_atomic)


@pytest.mark.parametrize("module", TRAINING)
def test_a_failed_save_keeps_the_earlier_results(module, mnist_dir, tmp_path, monkeypatch):
    fail_writing(monkeypatch, "model.pt", OSError(28, "No space left on device"))
    code, out, err = run_main(module, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.strip() == (f"error: could not save epoch 2 to {tmp_path} (model.pt: No space left on device);"
                           f" the results of epoch 1 are in {tmp_path}{os.sep}.")
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2
    assert "epoch 3:" not in out


def test_a_failed_checkpoint_says_which_epoch_each_file_holds(mnist_dir, tmp_path, monkeypatch):
    fail_writing(monkeypatch, "checkpoint.pt", PermissionError(13, "Permission denied"))
    code, out, err = run_main(train_resnet, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1
    assert err.strip() == (f"error: could not save epoch 2 to {tmp_path} (checkpoint.pt: Permission denied); the results of epoch 1"
                           f" are in {tmp_path}{os.sep} (but model.pt holds epoch 2; --resume goes on from epoch 1).")
    assert len(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["history"]) == 1
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2


@pytest.mark.parametrize("name", ["metrics.csv", pytest.param("accuracy.png", marks=pytest.mark.slow)])
def test_a_results_file_held_open_by_another_program_is_a_warning(name, mnist_dir, tmp_path, monkeypatch):
    # On Windows, replacing metrics.csv while Excel has it open fails with "Permission denied".
    fail_writing(monkeypatch, name, PermissionError(13, "Permission denied"))
    code, out, err = run_main(train_resnet, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 0, err
    assert err == (f"warning: could not replace {tmp_path / name} (Permission denied; open in another program?);"
                   " it is written again after the next epoch\n")
    assert "epoch 3: test accuracy" in out
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 4  # written again: all three epochs


@pytest.mark.parametrize("refusals", [2, len(store.RETRIES) + 1])
def test_on_windows_a_rename_refused_for_a_moment_is_tried_again(refusals, tmp_path, monkeypatch):
    real_replace, waits, calls = os.replace, [], []

    def replace(source, target):
        calls.append(target)
        if len(calls) <= refusals:  # a virus scanner holds the new file
            raise PermissionError(13, "Permission denied")
        real_replace(source, target)

    monkeypatch.setattr(store, "WINDOWS", True)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(store.time, "sleep", waits.append)
    path = tmp_path / "checkpoint.pt"
    if refusals > len(store.RETRIES):  # held for good: the error, and no temporary file left
        with pytest.raises(PermissionError):
            store.save_atomic(str(path), lambda f: f.write(b"weights"))
        assert os.listdir(tmp_path) == [] and waits == list(store.RETRIES)
    else:
        store.save_atomic(str(path), lambda f: f.write(b"weights"))
        assert path.read_bytes() == b"weights" and os.listdir(tmp_path) == ["checkpoint.pt"]
        assert waits == list(store.RETRIES[:refusals])


def test_a_results_file_held_open_to_the_end_says_which_epoch_it_holds(mnist_dir, tmp_path, monkeypatch):
    fail_writing(monkeypatch, "metrics.csv", PermissionError(13, "Permission denied"), times=2)  # epochs 2 and 3
    code, out, err = run_main(train_resnet, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 0, err
    warning = f"warning: could not replace {tmp_path / 'metrics.csv'} (Permission denied; open in another program?); "
    # There is no next epoch to write it again: the last warning says what it holds, not a promise.
    assert err == warning + "it is written again after the next epoch\n" + warning + "it holds epoch 1, checkpoint.pt epochs 1-3\n"
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2


def test_a_stop_names_a_results_file_left_at_an_earlier_epoch(mnist_dir, tmp_path, monkeypatch):
    fail_writing(monkeypatch, "metrics.csv", PermissionError(13, "Permission denied"), times=2)  # epochs 2 and 3
    fail_writing(monkeypatch, "checkpoint.pt", OSError(28, "No space left on device"), first=3)
    code, out, err = run_main(train_resnet, "--epochs", 4, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1
    assert err.splitlines()[-1] == (f"error: could not save epoch 3 to {tmp_path} (checkpoint.pt: No space left on device); the results"
                                    f" of epochs 1-2 are in {tmp_path}{os.sep} (but metrics.csv holds epoch 1; model.pt holds epoch 3;"
                                    " --resume goes on from epoch 2).")
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2


# --- Ctrl-C ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_epochs(mnist_dir, tmp_path):
    out = tmp_path / "out"
    args = ["--epochs", "1000", "--log-every", "10", "--data-dir", mnist_dir, "--out-dir", out, "--no-show"]
    process = subprocess.Popen(
        **script_call("train_resnet.py", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # As in a terminal: a runner that started the tests in the background may have left SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    printed = []
    for line in process.stdout:  # wait until two epochs are done, then press Ctrl-C
        printed.append(line)
        if line.startswith("epoch 2:"):
            process.send_signal(signal.SIGINT)
            break
    rest, err = process.communicate(timeout=60)
    printed += rest.splitlines(keepends=True)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert "interrupted: the results of epochs 1-" in err and f" are in {out}{os.sep}" in err
    finished = [line for line in printed if line.startswith("epoch ")]
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert len(rows) == len(finished) >= 2
    assert f"the results of epochs 1-{len(finished)} are in" in err
    model = train_resnet.NET()
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    files = ["accuracy.png", "checkpoint.pt", "metrics.csv", "mistakes.png", "model.pt", "settings.json"]
    assert sorted(os.listdir(out)) == files  # no temporary files


# --- a full disk: torch.save's own error, at the first epoch and later -----------------------------------


def full_disk(monkeypatch, from_epoch):
    """torch.save fails as it does on a full disk, from the from_epoch-th checkpoint on."""
    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) >= 2 * from_epoch - 1:  # model.pt, then checkpoint.pt, each epoch
            raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/3:"
                               " file write failed")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_a_full_disk_at_the_first_epoch_leaves_no_folder(mnist_dir, tmp_path, monkeypatch):
    full_disk(monkeypatch, from_epoch=1)
    code, out, err = run_main(train_resnet, "--epochs", 2, "--data-dir", mnist_dir, "--out-dir", tmp_path / "runs" / "run", "--no-show")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: could not save epoch 1 to {tmp_path / 'runs' / 'run'} (model.pt: [enforce fail at inline_container.cc")
    assert err.rstrip().endswith("file write failed); nothing was saved.")
    assert os.listdir(tmp_path / "runs") == []  # no half-kept folder


@pytest.mark.slow  # the quick run keeps test_a_failed_save_keeps_the_earlier_results
def test_a_full_disk_later_keeps_the_earlier_epochs_resumable(mnist_dir, tmp_path, monkeypatch):
    full_disk(monkeypatch, from_epoch=2)
    code, out, err = run_main(train_resnet, "--epochs", 2, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 1 and err.rstrip().endswith(f"file write failed); the results of epoch 1 are in {tmp_path}{os.sep}.")
    assert sorted(os.listdir(tmp_path)) == ["accuracy.png", "checkpoint.pt", "metrics.csv", "model.pt", "settings.json"]
    monkeypatch.undo()
    code, out, err = run_main(train_resnet, "--resume", "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 0 and "resuming: epoch 1 done" in out and "epoch 2: test accuracy" in out


def test_while_epoch_1_trains_the_folder_does_not_exist_yet(mnist_dir, tmp_path, monkeypatch):
    out, seen = tmp_path / "new" / "run", []
    real_train = train_resnet.train

    def train(model, device, loader, optimizer, criterion, epoch, log_every):
        seen.append((epoch, out.exists()))
        return real_train(model, device, loader, optimizer, criterion, epoch, log_every)

    monkeypatch.setattr(train_resnet, "train", train)
    code, stdout, err = run_main(train_resnet, "--epochs", 2, "--data-dir", mnist_dir, "--out-dir", out, "--no-show")
    assert code == 0, err
    assert stdout.startswith(f"results: {out}{os.sep}\n")  # named up front
    assert seen == [(1, False), (2, True)]


def test_a_kill_while_the_last_figure_is_drawn_ends_as_stopped_with_nothing_to_go_on(mnist_dir, tmp_path, monkeypatch):
    def plot_mistakes(*args):
        raise Stop(signal.SIGTERM)  # what Run's handler raises for a kill

    shown = []
    monkeypatch.setattr(figures, "plot_mistakes", plot_mistakes)
    monkeypatch.setattr(figures, "show", lambda *args, **kwargs: shown.append(args))
    code, out, err = run_main(train_resnet, "--epochs", 1, "--data-dir", mnist_dir, "--out-dir", tmp_path)
    assert code == 128 + signal.SIGTERM
    # Every epoch is done: no command to go on with (it would be refused), no final line, no plot window.
    assert err == f"\nmistakes.png skipped\n\nterminated: the results of epoch 1 are in {tmp_path}{os.sep}\n"
    assert "final test accuracy" not in out and shown == []
    assert sorted(os.listdir(tmp_path)) == ["accuracy.png", "checkpoint.pt", "metrics.csv", "model.pt", "settings.json"]


def test_a_second_ctrl_c_while_mistakes_are_drawn_skips_them_not_the_message(mnist_dir, tmp_path, monkeypatch):
    real_train = train_resnet.train

    def train(model, device, loader, optimizer, criterion, epoch, log_every):
        if epoch == 2:
            raise Stop(signal.SIGTERM)  # a kill in epoch 2
        return real_train(model, device, loader, optimizer, criterion, epoch, log_every)

    def plot_mistakes(*args):
        raise KeyboardInterrupt  # and Ctrl-C while mistakes.png is drawn

    monkeypatch.setattr(train_resnet, "train", train)
    monkeypatch.setattr(figures, "plot_mistakes", plot_mistakes)
    code, out, err = run_main(train_resnet, "--epochs", 3, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 128 + signal.SIGTERM
    assert err.startswith(f"\nmistakes.png skipped\n\nterminated: the results of epoch 1 are in {tmp_path}{os.sep}\n"
                          "  to go on from there: ")


def test_ctrl_c_while_the_last_epoch_is_written_waits_for_its_files_and_offers_no_resume(mnist_dir, tmp_path, monkeypatch):
    real_save = store.save_atomic

    def save_atomic(path, write):
        if os.path.basename(path) == "metrics.csv" and (tmp_path / "checkpoint.pt").exists():
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # Ctrl-C in the middle of the epoch's files, to Run's handler
        real_save(path, write)

    monkeypatch.setattr(store, "save_atomic", save_atomic)
    code, out, err = run_main(train_resnet, "--epochs", 1, "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-show")
    assert code == 130
    assert err == f"\ninterrupted: the results of epoch 1 are in {tmp_path}{os.sep}\n"
    assert "epoch 1: test accuracy" in out and "mistakes: " in out
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2 and (tmp_path / "accuracy.png").stat().st_size > 0


# --- kill, a closed terminal, a pipe ------------------------------------------------------------------


def start(out, mnist_dir, *args, env=None, epochs=2):
    command = script_call("train_resnet.py", "--epochs", epochs, "--log-every", 10, "--data-dir", mnist_dir, "--out-dir", out,
                          "--no-show", *args, env=env)
    return subprocess.Popen(**command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal


@pytest.mark.slow
@pytest.mark.parametrize("how", KILLS)
def test_kill_or_a_closed_terminal_before_epoch_1_leaves_nothing(how, mnist_dir, tmp_path):
    process = start(tmp_path / "run", mnist_dir)
    for line in process.stdout:
        if line.startswith("[1,    10]"):
            process.send_signal(how)
            break
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + how and "Traceback" not in err
    assert err.strip() == f"{'terminated' if how == signal.SIGTERM else 'hung up (the terminal was closed)'}: nothing was saved"
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("how", KILLS)
def test_kill_in_epoch_2_keeps_epoch_1_and_resumes_to_the_end(how, mnist_dir, tmp_path):
    out = tmp_path / "run"
    process = start(out, mnist_dir)
    for line in process.stdout:
        if line.startswith("[2,    10]"):
            process.send_signal(how)
            break
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + how and "Traceback" not in err
    assert f": the results of epoch 1 are in {out}{os.sep}\n  to go on from there: python " in err
    code, stdout, err = run_main(train_resnet, "--resume", "--data-dir", mnist_dir, "--out-dir", out, "--no-show")
    assert code == 0 and "on to epoch 2" in stdout and len((out / "metrics.csv").read_text().splitlines()) == 3


@pytest.mark.slow
@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_ctrl_c_under_tee_says_it_was_interrupted(unbuffered, mnist_dir, tmp_path):
    """The terminal's Ctrl-C stops tee too, so the run's stdout is a closed pipe when it comes to say why it stopped."""
    process = start(tmp_path / "run", mnist_dir, env={"PYTHONUNBUFFERED": unbuffered}, epochs=50)
    for line in process.stdout:
        if line.startswith("epoch 1:"):
            break
    process.stdout.close()  # tee is gone
    process.send_signal(signal.SIGINT)
    err = process.stderr.read()
    process.wait(timeout=60)
    assert process.returncode == 130
    assert "interrupted: the results of epoch" in err and "to go on from there:" in err
    assert "BrokenPipeError" not in err and "Exception ignored" not in err
