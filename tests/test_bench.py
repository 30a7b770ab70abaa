"""The speed comparison, run for a tiny amount of work on the shipped subset so that it cannot rot."""

import os
import re
import types

import pytest

from conftest import OFFLINE, ROOT, load_module, run_main, run_script, use_proxy


@pytest.mark.slow
def test_compare_times_both_sides_and_prints_the_ratios(mnist_full):
    result = run_script("bench/compare.py", "resnet", "--epochs", 1, "--data-dir", mnist_full)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"resnet, 1 epoch each, {mnist_full}"
    side = r"{} +(\d+\.\d) s   peak +(\d+) MiB   final test accuracy (\d+\.\d\d)%"
    baseline, project = (
        re.fullmatch(side.format(name), line) for name, line in zip(["baseline", "project"], lines[1:3])
    )
    assert baseline and project, lines
    for match in (baseline, project):
        assert float(match.group(1)) > 0 and int(match.group(2)) > 100  # torch alone takes more than 100 MiB
        assert 50 < float(match.group(3)) <= 100  # one epoch on 2,000 digits: far better than chance
    ratios = re.fullmatch(r"project / baseline: (\d+\.\d\d)x the time, (\d+\.\d\d)x the peak memory", lines[3])
    assert ratios
    time_ratio = float(project.group(1)) / float(baseline.group(1))
    assert abs(float(ratios.group(1)) - time_ratio) < 0.1  # the ratio is of the two printed times


def load_compare():
    return load_module(ROOT / "bench" / "compare.py", "bench_compare")


def test_peak_memory_units_on_linux_and_macos(monkeypatch):
    compare = load_compare()
    usage = types.SimpleNamespace(ru_maxrss=512 * 1024)
    monkeypatch.setattr(compare.sys, "platform", "linux")
    assert compare.peak_mib(usage) == 512  # KiB
    monkeypatch.setattr(compare.sys, "platform", "darwin")
    usage.ru_maxrss = 512 * 1024 * 1024
    assert compare.peak_mib(usage) == 512  # bytes


def test_compare_on_windows_says_what_it_needs(monkeypatch):
    compare = load_compare()
    monkeypatch.delattr(compare.os, "wait4")
    code, out, err = run_main(compare, "resnet")
    assert code == 1 and err.startswith("error: bench/compare.py needs Linux or macOS")


def test_compare_refuses_a_folder_without_mnist(tmp_path, monkeypatch):
    compare = load_compare()
    monkeypatch.setattr(
        compare.os, "wait4", os.waitpid, raising=False
    )  # Windows has none: it would stop before the data check
    use_proxy(monkeypatch, OFFLINE["http_proxy"])  # no download either
    code, out, err = run_main(compare, "inception", "--data-dir", tmp_path)
    assert code == 1 and out == ""
    assert err.startswith(
        f"error: MNIST is not in {tmp_path / 'MNIST' / 'raw'}{os.sep} nor in {tmp_path}{os.sep},"
        " and could not be downloaded"
    )
