"""The two READMEs give the same commands, so that the Chinese guide cannot drift from the English one."""
import re

from conftest import ROOT


def commands(name):
    """The commands a README tells its reader to type: indented code lines that start with pip or python."""
    text = (ROOT / name).read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.startswith("    ")]
    return [re.sub(r"\s+#.*$", "", line) for line in lines if line.startswith(("pip ", "python "))]


def test_both_readmes_give_the_same_install_run_and_test_commands():
    english, chinese = commands("README.md"), commands("README.zh-CN.md")
    assert "pip install -r requirements.txt pytest && python -m pytest" in english
    assert any(line.startswith("pip install -r requirements.txt && python train_") for line in english)
    assert any(line.endswith("--resume") for line in english)
    assert chinese == english


def test_the_ci_runs_the_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -r requirements.txt pytest" in ci and "\npython -m pytest\n" in ci


def test_each_readme_links_to_the_other_at_its_top():
    assert "[中文说明](README.zh-CN.md)" in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[2]
    assert "[English](README.md)" in (ROOT / "README.zh-CN.md").read_text(encoding="utf-8").splitlines()[2]


def test_the_readme_stays_short_and_links_the_failure_messages():
    english = ROOT / "README.md"
    assert len(english.read_bytes()) < 16_000  # the long tables live in docs/
    for readme, page in (("README.md", "docs/troubleshooting.md"), ("README.zh-CN.md", "docs/troubleshooting.zh-CN.md")):
        assert f"]({page})" in (ROOT / readme).read_text(encoding="utf-8") and (ROOT / page).is_file()
