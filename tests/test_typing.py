"""Static typing as users see it (xfuxi ships py.typed): the lazy ``xfuxi.<name>`` are typed
through the ``TYPE_CHECKING`` imports of xfuxi/__init__.py, which must follow api.PUBLIC; mypy
accepts the documented usage in tests/typing_usage/usage.py and flags the mistakes in
tests/typing_usage/mistakes.py (each with the error code its line names)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import xfuxi
from xfuxi.api import PUBLIC

ROOT = Path(xfuxi.__file__).resolve().parent.parent
USAGE = Path(__file__).parent / "typing_usage"


def _type_checking_imports() -> dict[str, tuple[str, str]]:
    """name -> (module relative to xfuxi, attribute; "" for a module) of the imports in the
    ``if TYPE_CHECKING:`` block of xfuxi/__init__.py."""
    tree = ast.parse((ROOT / "xfuxi" / "__init__.py").read_text(encoding="utf-8"))
    blocks = [
        n for n in tree.body
        if isinstance(n, ast.If) and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"
    ]  # fmt: skip
    assert len(blocks) == 1, "xfuxi/__init__.py needs one top-level `if TYPE_CHECKING:` block"
    found: dict[str, tuple[str, str]] = {}
    for node in blocks[0].body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        for alias in node.names:
            # ``import x as x``: the explicit re-export form, public for every type checker
            assert alias.asname is not None, f"{ast.unparse(node)}: write `as {alias.name}`"
            assert alias.asname not in found, f"{alias.asname} imported twice"
            if node.module is None:  # from . import datasets as datasets
                found[alias.asname] = (alias.name, "")
            else:
                found[alias.asname] = (node.module, alias.name)
    return found


def test_type_checking_imports_follow_api_public():
    found = _type_checking_imports()
    eager = {"get_options", "set_options"}  # imported at run time, from .options
    expected = {}
    for entry in PUBLIC:
        module, _, attr = entry.target.partition(":")
        if entry.name not in eager:
            expected[entry.name] = (module, attr)
    assert found == expected
    source = (ROOT / "xfuxi" / "__init__.py").read_text(encoding="utf-8")
    assert "from .options import get_options, set_options" in source
    assert all(e.target.startswith("options:") for e in PUBLIC if e.name in eager)


def test_mypy_accepts_documented_usage_and_flags_mistakes(tmp_path):
    pytest.importorskip("mypy")
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--config-file", str(USAGE / "mypy.ini"),
            "--cache-dir", str(tmp_path / "mypy_cache"), "--no-error-summary",
            "--hide-error-context", "--no-pretty", "--show-error-codes",
            str(USAGE / "usage.py"), str(USAGE / "mistakes.py"),
        ],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    errors = re.findall(r"^(.*?):(\d+): error: .*\[([\w-]+)\]$", proc.stdout, re.MULTILINE)
    in_usage = [e for e in errors if Path(e[0]).name == "usage.py"]
    assert not in_usage, proc.stdout
    got = {(int(line), code) for path, line, code in errors if Path(path).name == "mistakes.py"}
    expected = set()
    lines = (USAGE / "mistakes.py").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        match = re.search(r"# error: \[([\w-]+)\]", line)
        if match:
            expected.add((number, match.group(1)))
    assert expected and expected <= got, proc.stdout + proc.stderr
    unexpected = {(n, c) for n, c in got if n not in {m for m, _ in expected}}
    assert not unexpected, proc.stdout
    assert proc.returncode == 1, proc.stdout + proc.stderr  # errors found, mypy did not crash
