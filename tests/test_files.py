"""xfuxi.files: atomic writes and the rule that xfuxi replaces only its own outputs."""

from __future__ import annotations

import os

import pytest

from xfuxi.files import (
    MARKER,
    OutputExistsError,
    atomic_write_bytes,
    read_marker,
    replace_directory,
)


def _write(text):
    return lambda d: (d / "data.txt").write_text(text)


def test_atomic_write_gives_usual_mode_and_leaves_no_temporary(tmp_path):
    p = atomic_write_bytes(tmp_path / "f.bin", b"abc")
    assert p.read_bytes() == b"abc"
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.bin"]


def test_new_directory_output_is_marked(tmp_path):
    out = replace_directory(tmp_path / "r", _write("1"), kind="forecast", metadata={"n": 3})
    assert (out / "data.txt").read_text() == "1"
    assert read_marker(out) == {"kind": "forecast", "n": 3}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r"]


def test_foreign_directory_is_never_touched(tmp_path):
    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "thesis.txt").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(OutputExistsError, match="not an xfuxi output"):
            replace_directory(precious, _write("x"), kind="forecast", overwrite=overwrite)
    assert (precious / "thesis.txt").read_text() == "precious"
    assert sorted(x.name for x in precious.iterdir()) == ["thesis.txt"]


def test_plain_file_is_never_replaced(tmp_path):
    f = tmp_path / "out.zarr"
    f.write_text("mine")
    with pytest.raises(OutputExistsError, match="not a directory"):
        replace_directory(f, _write("x"), kind="forecast", overwrite=True)
    assert f.read_text() == "mine"


def test_own_output_replaced_only_when_asked_and_of_same_kind(tmp_path):
    out = replace_directory(tmp_path / "r", _write("old"), kind="forecast")
    with pytest.raises(OutputExistsError, match="overwrite"):
        replace_directory(out, _write("new"), kind="forecast")
    with pytest.raises(OutputExistsError, match="'forecast' output, not a 'ensemble'"):
        replace_directory(out, _write("new"), kind="ensemble", overwrite=True)
    assert (out / "data.txt").read_text() == "old"
    replace_directory(out, _write("new"), kind="forecast", overwrite=True)
    assert (out / "data.txt").read_text() == "new"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r"]


def test_failed_write_keeps_previous_output_and_no_leftovers(tmp_path):
    out = replace_directory(tmp_path / "r", _write("old"), kind="forecast")

    def boom(d):
        (d / "data.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        replace_directory(out, boom, kind="forecast", overwrite=True)
    assert (out / "data.txt").read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r"]


def test_empty_directory_may_be_filled(tmp_path):
    (tmp_path / "r").mkdir()
    replace_directory(tmp_path / "r", _write("1"), kind="forecast")
    assert (tmp_path / "r" / MARKER).is_file()
