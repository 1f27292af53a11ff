"""The command line's errors name its flags, not the Python names behind them (a
configuration's field, an option's destination)."""

from __future__ import annotations

import pytest

from xfuxi.cli import main
from xfuxi.cli.common import flag_names


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--n-members", "1"], "--n-members must be an integer >= 2"),
        (["--days", "0"], "--days must be a finite number > 0"),
        (["--rtps", "2"], "--rtps must be in [0, 1]"),
    ],
)
def test_cycle_errors_name_the_flag(tmp_path, capsys, flags, said):
    rc = main(["--no-progress", "cycle", "world:test", "--store", str(tmp_path / "c.zarr"), *flags])
    err = capsys.readouterr().err
    assert rc != 0 and said in err, err
    assert not (tmp_path / "c.zarr").exists()


def test_flags_are_forgotten_when_the_command_ends(tmp_path, capsys):
    main(
        ["--no-progress", "cycle", "world:test", "--store", str(tmp_path / "c.zarr"), "--rtps", "2"]
    )
    capsys.readouterr()
    # main() called in a Python session leaves nothing behind
    assert flag_names("n_members must be >= 2") == "n_members must be >= 2"


def test_code_in_a_message_is_left_as_written():
    import argparse

    from xfuxi.cli.common import set_command_flags

    p = argparse.ArgumentParser()
    p.add_argument("--qc-threshold", type=float)
    p.add_argument("--keep-members", action="store_true")
    set_command_flags(p)
    try:
        text = "use QualityControl(qc_threshold=...) or CycleConfig(keep_members=False)"
        assert flag_names(text) == text
        assert flag_names("qc_threshold must be > 0") == "--qc-threshold must be > 0"
        assert flag_names("Dataset.keep_members") == "Dataset.keep_members"
    finally:
        set_command_flags(None)
