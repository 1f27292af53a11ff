"""The demo's output folder: never replaces what xfuxi did not write."""

from __future__ import annotations

import pytest

from xfuxi.demo import run_demo
from xfuxi.files import OutputExistsError, replace_directory


def test_demo_refuses_a_foreign_folder_before_any_work(tmp_path):
    out = tmp_path / "demo_output"
    out.mkdir()
    (out / "thesis.txt").write_text("precious")
    with pytest.raises(OutputExistsError, match="not an xfuxi output"):
        run_demo(out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["thesis.txt"]


def test_demo_refuses_an_earlier_demo_without_overwrite(tmp_path):
    out = replace_directory(tmp_path / "d", lambda d: None, kind="demo")
    with pytest.raises(OutputExistsError, match="overwrite"):
        run_demo(out)
