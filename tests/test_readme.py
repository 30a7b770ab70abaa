"""The READMEs and docs/ pages: the two READMEs give the same commands, every command line works as typed in
cmd.exe and Windows PowerShell 5.1, the pages they link exist, and the READMEs stay short."""

import os
import re

import pytest

from conftest import ROOT

PAGES = [
    "README.md",
    "README.zh-CN.md",
    *(p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "docs").glob("*.md"))),
]


def code_lines(name):
    """The lines of a page's code: indented blocks and fenced blocks (not tables or prose)."""
    lines, fenced = [], False
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    "):
            lines.append(line.strip())
    return lines


def commands(name):
    """The command lines a page tells its reader to type: code lines that start with pip, python or py."""
    return [line for line in code_lines(name) if re.match(r"(pip|python|py)( |$)", line)]


# Each page a learner reads, and its Chinese twin.
TWINS = [
    ("README.md", "README.zh-CN.md"),
    *(
        (f"docs/{name}.md", f"docs/{name}.zh-CN.md")
        for name in ("setup", "troubleshooting", "runs", "flags", "results", "skip_connection", "multiply_adds")
    ),
]


def test_both_readmes_give_the_same_install_run_and_test_commands():
    english, chinese = commands("README.md"), commands("README.zh-CN.md")
    assert english[:2] == ["python -m pip install -r requirements.txt", "python train_resnet.py"]  # the quick start
    assert english[-2:] == ["python -m pip install -r requirements.txt pytest", "python -m pytest"]  # the tests
    assert chinese == english


def numbers(page):
    """The numbers a page states (in prose, tables and code alike), as written: 98.79, 41,514, 0.26, 2026-12-07."""
    return set(re.findall(r"\d+(?:[.,]\d+)*", (ROOT / page).read_text(encoding="utf-8")))


@pytest.mark.parametrize("english, chinese", TWINS)
def test_each_chinese_twin_links_back_and_says_the_same_commands_and_numbers(english, chinese):
    assert f"[English]({os.path.basename(english)})" in (ROOT / chinese).read_text(encoding="utf-8").splitlines()[2]
    if english != "README.md":
        assert f"[中文]({os.path.basename(chinese)})" in (ROOT / english).read_text(encoding="utf-8").splitlines()[2]
    assert commands(chinese) == commands(english)
    assert numbers(chinese) == numbers(english), numbers(chinese) ^ numbers(english)


@pytest.mark.parametrize("page", PAGES)
def test_every_command_line_works_as_typed_in_cmd_and_powershell(page):
    """cmd.exe passes `#` and what follows to the script; neither shell continues a line after `\\`; VAR=1 python
    is bash's; in cmd there is no diff, and PowerShell's diff compares the two names, not the files."""
    lines = [
        line for line in code_lines(page) if re.match(r"(pip|python|py|diff|git|set|\$env:|[A-Z_]+=\S* )( |\b)", line)
    ]
    for line in lines:
        assert " #" not in line and not line.startswith("#"), f"{page}: a comment on a command line: {line}"
        assert not line.endswith("\\"), f"{page}: a continued line: {line}"
        assert not re.match(r"[A-Z_]+=\S* ", line), f"{page}: a bash-only variable assignment: {line}"
        assert not line.startswith("diff "), f"{page}: diff is not a command in cmd or PowerShell: {line}"
    for line in (ROOT / page).read_text(encoding="utf-8").splitlines():  # prose too: `diff a b` in backquotes
        assert not re.search(r"`diff [^`]*`", line), f"{page}: use git diff --no-index: {line}"
        assert not re.search(r"`[A-Z_]+=\S+ python", line), f"{page}: a bash-only variable assignment: {line}"


@pytest.mark.parametrize("page", PAGES)
def test_no_command_needs_a_shell_that_takes_and_and(page):
    """Windows PowerShell 5.1 (VS Code's, PyCharm's and Anaconda's PowerShell too) rejects `&&`: one command a line."""
    assert not [line for line in code_lines(page) if "&&" in line]
    if page.startswith("README"):
        assert "Windows PowerShell 5.1" in (ROOT / page).read_text(encoding="utf-8")


def test_the_ci_runs_the_readmes_test_command_and_the_slow_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -r requirements.txt pytest" in ci and "\npython -m pytest\n" in ci
    assert "\npython -m pytest -m slow\n" in ci
    assert "check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/" in ci


def test_each_readme_links_to_the_other_at_its_top():
    assert "[中文说明](README.zh-CN.md)" in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[2]
    assert "[English](README.md)" in (ROOT / "README.zh-CN.md").read_text(encoding="utf-8").splitlines()[2]


@pytest.mark.parametrize("page", PAGES)
def test_every_local_link_and_image_exists(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    folder = (ROOT / page).parent
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not target.startswith("http"):
            assert (folder / target.split("#")[0]).exists(), f"{page} links {target}"


def test_the_readmes_put_the_lesson_and_its_first_figure_first_and_link_every_page():
    english = (ROOT / "README.md").read_bytes()
    assert len(english) <= 10_000 and english.index(b"](docs/resnet_accuracy.png)") < 4_000
    assert len((ROOT / "README.zh-CN.md").read_bytes()) <= 12_000
    for readme, pages in (
        ("README.md", [english for english, _ in TWINS[1:]]),
        ("README.zh-CN.md", [chinese for _, chinese in TWINS[1:]]),
    ):
        text = (ROOT / readme).read_text(encoding="utf-8")
        for page in [*pages, "docs/performance.md", "docs/testing.md", "docs/gap_head.md"]:
            assert f"]({page}" in text, (readme, page)


@pytest.mark.parametrize("page", [chinese for _, chinese in TWINS])
def test_chinese_paragraphs_are_not_wrapped_between_two_chinese_characters(page):
    """GitHub shows a space where a line break falls between two Chinese characters."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    han = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
    for line, following in zip(lines, lines[1:]):
        if line and following and not line.startswith(("    ", "|", "#")):
            assert not (han.match(line[-1]) and han.match(following[0])), f"{page}: {line[-20:]} / {following[:20]}"


@pytest.mark.parametrize("page", ["docs/setup.md", "docs/setup.zh-CN.md"])
def test_the_setup_page_takes_a_student_from_nothing_to_a_gpu_run(page):
    """The commands the run's GPU hint prints are the page's, for each generation; a check that runs a kernel."""
    from helpers import device

    typed, text = commands(page), (ROOT / page).read_text(encoding="utf-8")
    assert "--force-reinstall" in device.INSTALL.split()  # pip keeps an installed CPU-only torch otherwise
    for capability in ((12, 0), (6, 1)):  # an RTX 50, a GTX 10: cu130, cu126
        assert device.install(capability).split(" (")[0] in typed
    assert any(row.startswith("| RTX 50") and "sm_120" in row and "`cu130`" in row for row in text.splitlines())
    assert any("torch.ones(2, device='cuda')" in line and "get_device_name" in line for line in typed)
    for words in (
        "git clone",
        "Download ZIP",
        "cd",
        "Set-ExecutionPolicy -Scope CurrentUser RemoteSigned",
        "ipykernel",
        "pypi.tuna.tsinghua.edu.cn",
        "pip config set global.index-url",
        "conda create -n lecture11",
    ):
        assert words in text, words
    for mirror in ("https://dataset.bj.bcebos.com/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"):
        assert all(f"{mirror}{name}.gz" in text for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))


def test_both_readmes_name_the_course_the_python_floor_and_baidus_mirror():
    for readme in ("README.md", "README.zh-CN.md"):
        text = (ROOT / readme).read_text(encoding="utf-8")
        assert "https://www.bilibili.com/video/BV1Y7411d7Ys?p=11" in text and "Python 3.10" in text
        assert "PyCharm" in text and "Anaconda" in text and "docs/setup" in text
    for page in ("docs/setup.md", "docs/setup.zh-CN.md"):
        assert "Anaconda Prompt" in (ROOT / page).read_text(encoding="utf-8")
    for page in ("docs/troubleshooting.md", "docs/troubleshooting.zh-CN.md"):
        assert "https://dataset.bj.bcebos.com/mnist/" in (ROOT / page).read_text(encoding="utf-8")
