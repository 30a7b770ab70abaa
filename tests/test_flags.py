"""The flags: one per constant at the top of a script, its default the constant and its help the comment above it. A
value that cannot work, typed or edited into the constant, is a usage error (exit 2) before anything is loaded."""

import pytest

import train_inception
import train_resnet
from conftest import edited, load_script, run_main, run_script, train
from helpers import device

MODULES = [train_inception, train_resnet]


def missing_device():
    """A device type this machine does not have."""
    return "mps" if device.pick("auto").type == "cuda" else "cuda"


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["--batch-size", "-3"], "--batch-size must be at least 1, got -3"),
        (["--log-every", "0"], "--log-every must be at least 1, got 0"),
        (["--lr", "0"], "--lr must be above 0, got 0.0"),
        (["--lr", "nan"], "--lr must be a finite number, got nan"),
        (["--lr", "inf"], "--lr must be a finite number, got inf"),
        (["--momentum", "1"], "--momentum must be 0 or more and below 1, got 1.0"),
        (["--momentum", "-0.1"], "--momentum must be 0 or more and below 1, got -0.1"),
        (["--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
        (["--seed", str(2**64)], "--seed must be 0 or more and below 2**64, got 18446744073709551616"),
        (["--device", "gpu0"], "--device: 'gpu0' is not a device torch knows"),
        (["--device", missing_device()], f"--device: '{missing_device()}' is not available ("),
        (["--device", "cpu:banana"], "--device: 'cpu:banana' is not a device torch knows"),
        (["--learning-rate", "0.1"], "unrecognized arguments: --learning-rate 0.1"),
    ],
)
def test_a_value_that_cannot_work_is_a_usage_error(module, args, message, tmp_path):
    code, out, err = run_main(module, *args, "--data-dir", tmp_path / "data", "--out-dir", tmp_path / "out")
    assert code == 2 and out == ""
    assert err.startswith("usage: ") and f"error: {message}" in err
    assert not (tmp_path / "data").exists() and not (tmp_path / "out").exists()  # refused before anything else


@pytest.mark.parametrize("module", MODULES)
def test_an_impossible_constant_at_the_top_of_the_script_is_refused_too(module, monkeypatch, tmp_path):
    monkeypatch.setattr(module, "MOMENTUM", 1.5)
    code, _, err = run_main(module, "--data-dir", tmp_path / "data")
    assert code == 2 and "error: MOMENTUM must be 0 or more and below 1, got 1.5" in err  # not typed: the constant
    code, _, err = run_main(module, "--momentum", "1.5", "--data-dir", tmp_path / "data")
    assert code == 2 and "error: --momentum must be 0 or more and below 1, got 1.5" in err


def test_a_constant_of_ones_own_is_a_flag_and_checked_like_the_others(tmp_path):
    script = load_script(
        edited(
            tmp_path,
            "train_resnet.py",
            (
                "LR = 0.01  # SGD learning rate\n",
                "LR = 0.01  # SGD learning rate\nWEIGHT_DECAY = 1e-3  # SGD weight decay\n",
            ),
            ("seed=SEED,", "seed=SEED, weight_decay=WEIGHT_DECAY,"),
        ),
        "train_resnet_weight_decay",
    )
    code, _, err = run_main(script, "--weight-decay", "-1", "--data-dir", tmp_path / "data")
    assert code == 2 and "--weight-decay must be 0 or more, got -1.0" in err


def test_a_flag_that_the_optimizer_line_overrides_is_named(tmp_path, mnist_dir):
    """momentum=0.9 written into the SGD line: --momentum 0.7, typed, would do nothing, and the run says so."""
    sgd = "torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)"
    script = load_script(edited(tmp_path, "train_resnet.py", (sgd, sgd.replace("args.momentum", "0.9"))), "sgd_09")
    out = train(script, tmp_path / "run", "--epochs", 1, "--momentum", 0.7, mnist_dir=mnist_dir)
    assert "note: the optimizer's momentum is 0.9, not --momentum 0.7: its line sets its own" in out.splitlines()


@pytest.mark.parametrize("module", MODULES)
def test_help_shows_every_flag_with_its_default_and_the_constants_comment(module, capsys):
    with pytest.raises(SystemExit) as exit:
        module.main(["--help"])
    assert exit.value.code == 0
    options = " ".join(capsys.readouterr().out.split()).split("options:")[1]  # argparse wraps to the terminal
    for flag, default, comment in [
        ("--epochs", 10, "passes over the 60,000 training images"),
        ("--batch-size", 64, "images per SGD step"),
        ("--lr", 0.01, "SGD learning rate"),
        ("--momentum", 0.5, "SGD momentum"),
        ("--seed", 0, "seeds the initial weights"),
        ("--log-every", 300, "print the mean training loss every LOG_EVERY batches"),
        ("--data-dir", "data", "MNIST is read from DATA_DIR/MNIST/raw/"),
        ("--out-dir", module.OUT_DIR, "the run's folder; a new run never replaces an earlier one"),
        ("--device", "auto", "auto (CUDA, else Apple's MPS, else the CPU)"),
    ]:
        described = options.split(f" {flag} ")[1].split(" --")[0]
        assert (
            described.startswith(f"{flag[2:].upper().replace('-', '_')} {comment}")
            and f"(default: {default})" in described
        )
    assert (
        "--resume RUN go on with the run in folder RUN from its last saved epoch" in options and "--no-show" in options
    )


@pytest.mark.slow
def test_a_usage_error_from_the_command_line(tmp_path):
    result = run_script("train_resnet.py", "--lr", "-1", "--data-dir", tmp_path / "data")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: --lr must be above 0, got -1.0" in result.stderr
