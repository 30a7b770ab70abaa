"""Time a training script against the lecture's pipeline (bench/baseline.py), as two whole processes.

    python bench/compare.py resnet                # 3 epochs on ./data; or: inception
    python bench/compare.py inception --epochs 5 --data-dir data

Each side runs once, one after the other (never at the same time: they would share the cores), from
start-up to exit. Printed: each side's wall time, peak memory (resident set) and final test accuracy,
then the ratios project / baseline. Below 1 means the project is faster or smaller. Seconds depend on
the machine and on whatever else it is doing; quote the ratios.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


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
    return seconds, usage.ru_maxrss / 1024, output  # ru_maxrss is in KiB on Linux


def final_accuracy(output):
    found = re.findall(r"final test accuracy (\d+\.\d+)%", output)
    return float(found[-1]) if found else float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("net", choices=["inception", "resnet"])
    parser.add_argument("--epochs", type=int, default=3, help="epochs each side trains")
    parser.add_argument("--data-dir", default="data", help="folder that holds MNIST/raw/")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    data_dir = os.path.abspath(args.data_dir)
    if not all(os.path.isfile(os.path.join(data_dir, "MNIST", "raw", name)) for name in MNIST_FILES):
        # Before the clock starts, so that both sides find the same four unpacked files. Imported only
        # here: data.py brings torch, and this process should stay small beside the two it times.
        from data import DataError, check_files, ensure_downloaded

        try:
            ensure_downloaded(data_dir)
            check_files(data_dir)
        except DataError as e:
            raise SystemExit(f"error: {e}") from None

    python, epochs = sys.executable, str(args.epochs)
    with tempfile.TemporaryDirectory() as out:
        sides = {
            "baseline": [python, "bench/baseline.py", "--net", args.net, "--epochs", epochs, "--data-dir", data_dir],
            "project": [python, f"train_{args.net}.py", "--epochs", epochs, "--data-dir", data_dir, "--out-dir", out, "--no-show"],
        }
        print(f"{args.net}, {args.epochs} epoch{'s' * (args.epochs != 1)} each, {data_dir}")
        results = {}
        for name, command in sides.items():
            seconds, peak, output = measure(command)
            results[name] = seconds, peak, final_accuracy(output)
            print(f"{name:<9} {seconds:7.1f} s   peak {peak:6.0f} MiB   final test accuracy {results[name][2]:.2f}%", flush=True)
    (base_s, base_mib, _), (proj_s, proj_mib, _) = results["baseline"], results["project"]
    print(f"project / baseline: {proj_s / base_s:.2f}x the time, {proj_mib / base_mib:.2f}x the peak memory")


if __name__ == "__main__":
    main()
