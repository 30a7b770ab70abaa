"""Time a training script against the lecture's pipeline (bench/baseline.py), as two whole processes.

    python bench/compare.py resnet                # 3 epochs on ./data; or: inception
    python bench/compare.py inception --epochs 5 --data-dir data

Each side runs from start-up to exit, one after the other, never at the same time (they would share
the cores). Printed: each run's wall time, peak memory (resident set) and final test accuracy, then the
ratios project / baseline. Below 1 means the project is faster or smaller. Seconds depend on the machine
and on whatever else it is doing; quote the ratios. On a noisy machine, --rounds 3 runs each side three
times, alternating which goes first, and takes the medians.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def peak_mib(usage):
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    return usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def measure(command):
    """Run command to its end; returns (wall seconds, peak resident MiB, its output)."""
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak memory, not the largest child's so far
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    if process.returncode != 0:
        tail = "\n".join(output.splitlines()[-15:])
        raise SystemExit(f"error: {' '.join(command)} exited with {process.returncode}:\n{tail}")
    return seconds, peak_mib(usage), output


def final_accuracy(output):
    found = re.findall(r"final test accuracy (\d+\.\d+)%", output)
    return float(found[-1]) if found else float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("net", choices=["inception", "resnet"])
    parser.add_argument("--epochs", type=int, default=3, help="epochs each side trains")
    parser.add_argument("--data-dir", default="data", help="folder that holds MNIST/raw/")
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of each side; the order alternates, medians are compared"
    )
    args = parser.parse_args(argv)
    if not hasattr(os, "wait4"):  # Windows: no way to read a finished child's peak memory
        raise SystemExit(
            "error: bench/compare.py needs Linux or macOS (it reads each run's peak memory with os.wait4);"
            " on Windows, time the scripts by hand or use WSL"
        )
    for flag, value in (("--epochs", args.epochs), ("--rounds", args.rounds)):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    data_dir = os.path.abspath(args.data_dir)
    if not all(os.path.isfile(os.path.join(data_dir, "MNIST", "raw", name)) for name in MNIST_FILES):
        # Before the clock starts, so that both sides find the same four files. helpers (and its
        # FILES, which MNIST_FILES repeats) is imported only here: it brings torch, a second of start-up
        # that a ready data folder skips.
        from helpers import read_mnist

        read_mnist(data_dir)  # downloads what is missing, and names a bad file (its DataError ends the command)

    python, epochs = sys.executable, str(args.epochs)
    with tempfile.TemporaryDirectory() as out:
        sides = {
            "baseline": [python, "bench/baseline.py", "--net", args.net, "--epochs", epochs, "--data-dir", data_dir],
            "project": [
                python,
                f"train_{args.net}.py",
                "--epochs",
                epochs,
                "--data-dir",
                data_dir,
                "--out-dir",
                out,
                "--no-show",
            ],
        }
        print(f"{args.net}, {args.epochs} epoch{'s' * (args.epochs != 1)} each, {data_dir}")
        results = {name: [] for name in sides}
        for round in range(args.rounds):
            for name in sorted(sides, reverse=round % 2 == 1):  # baseline first, then project first, ...
                seconds, peak, output = measure(sides[name])
                results[name].append((seconds, peak))
                print(
                    f"{name:<9} {seconds:7.1f} s   peak {peak:6.0f} MiB"
                    f"   final test accuracy {final_accuracy(output):.2f}%",
                    flush=True,
                )
    (base_s, base_mib), (proj_s, proj_mib) = (
        [statistics.median(column) for column in zip(*results[name])] for name in sides
    )
    medians = f" (medians of {args.rounds} runs each)" if args.rounds > 1 else ""
    print(f"project / baseline: {proj_s / base_s:.2f}x the time, {proj_mib / base_mib:.2f}x the peak memory{medians}")


if __name__ == "__main__":
    main()
