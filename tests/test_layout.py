"""The layout the project keeps: data.py is the lesson's data code, helpers/ imports nothing from the lesson, and no
module but the two commands of their own is over 200 lines."""

import ast
import re

from conftest import ROOT

LESSON = {"data", "models", "train_inception", "train_resnet", "compare", "look_inside", "skip_connection"}


def test_data_py_holds_the_lessons_data_code_and_no_downloader():
    source = (ROOT / "data.py").read_text(encoding="utf-8")
    assert len(source.splitlines()) <= 110
    assert "def mnist_loaders(" in source and "def normalize(" in source and "class Batches" in source
    assert not re.search(r"\b(urllib|gzip|socket|threading|ThreadPoolExecutor)\b", source)


def test_helpers_import_nothing_from_the_lesson():
    for path in sorted((ROOT / "helpers").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            assert not {name.split(".")[0] for name in names} & LESSON, (path.name, names)


def test_no_module_is_over_200_lines_but_the_two_commands():
    for path in [*ROOT.glob("*.py"), *(ROOT / "helpers").glob("*.py")]:
        if path.name not in ("look_inside.py", "skip_connection.py"):
            assert len(path.read_text(encoding="utf-8").splitlines()) <= 200, path.name
