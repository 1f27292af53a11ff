"""Outputs whose folder cannot hold them: a path inside a file, a read-only folder.

Both are refused before any work, naming the folder (not a hidden temporary file, after the
work)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
import xfuxi.cli.world as world_cli
from xfuxi.files import OutputExistsError, replace_directory

from . import tiny
from .test_cli_output_paths import _fake_world, _world


def _ds():
    return xr.Dataset(
        {"temperature": (("time", "latitude", "longitude"), np.full((2, 3, 4), 250.0))},
        coords={
            "time": pd.date_range("2020-01-01", periods=2, freq="6h"),
            "latitude": [-45.0, 0.0, 45.0],
            "longitude": [0.0, 90.0, 180.0, 270.0],
        },
    )


def _cycle_into(store):
    from xfuxi import BackgroundError, LocalizationOptions
    from xfuxi.assimilation.cycle import CycleConfig, LETKFMethod, cycle
    from xfuxi.assimilation.letkf import LETKFOptions
    from xfuxi.experiments.lorenz96 import Lorenz96Network, lorenz96_truth
    from xfuxi.models.lorenz96 import lorenz96_model

    method = LETKFMethod(
        options=LETKFOptions(n_members=4, inflation=1.05, qc_threshold=None),
        localization=LocalizationOptions(length_scale=4.0, n_points=40),
        initial=BackgroundError(amplitude=1.0, wavelength=1, octaves=1, perturbation_std=(1.0,)),
    )
    config = CycleConfig(n_cycles=1, lead_steps=2, initial_error=1.0)
    truth = lorenz96_truth(n_states=8, seed=1)
    return cycle(truth, Lorenz96Network(seed=2), method=method, model=lorenz96_model(),
                 config=config, store=store, progress=False)  # fmt: skip


WRITERS = {
    "write_netcdf": lambda p: xfuxi.write_netcdf(_ds(), p / "fc.nc"),
    "write_weatherbench2": lambda p: xfuxi.write_weatherbench2(_ds(), p / "fc.zarr"),
    "save_model": lambda p: xfuxi.save_model(tiny.fuxi_model(), p / "model"),
    "cycle": lambda p: _cycle_into(p / "run.zarr"),
}


# ------------------------------------------------------------- a path inside a file


@pytest.mark.parametrize("writer", list(WRITERS))
def test_writer_into_a_path_inside_a_file_names_the_file(tmp_path, writer):
    # a bare FileExistsError: [Errno 17] File exists: '.../notes.txt' (from mkdir)
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    for inside in (notes, notes / "deeper"):
        with pytest.raises(OutputExistsError, match="notes.txt, which is a file, not a folder"):
            WRITERS[writer](inside)
    assert notes.read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


# ------------------------------------------------------------- a read-only folder


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder this process may not write into: as an unprivileged user, its mode; as root
    (who may write anywhere), ``os.access`` says so."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        real = os.access

        def access(path, mode, *args, **kwargs):
            if os.path.abspath(path) == str(folder) and mode & os.W_OK:
                return False
            return real(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    else:
        folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_refused_for_a_user(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=f"cannot write into {folder}"):
            xfuxi.write_netcdf(_ds(), folder / "fc.nc")
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("deeper", [False, True])
def test_writer_into_a_read_only_folder_is_refused_before_the_work(read_only, writer, deeper):
    target = read_only / "sub" if deeper else read_only
    with pytest.raises(PermissionError, match=f"cannot write into {read_only}") as err:
        WRITERS[writer](target)
    assert ".tmp" not in str(err.value)  # the folder, not a hidden temporary file
    assert os.listdir(read_only) == []


def test_replace_directory_does_not_call_write_into_a_read_only_folder(read_only):
    called = []
    with pytest.raises(PermissionError, match="cannot write into"):
        replace_directory(read_only / "out", called.append, kind="demo")
    assert called == []


def test_check_output_folder_accepts_what_can_be_written(tmp_path):
    from xfuxi.files import check_output_folder

    assert check_output_folder(tmp_path / "a" / "b" / "c.nc") == tmp_path / "a" / "b" / "c.nc"
    assert check_output_folder(tmp_path / "c.nc") == tmp_path / "c.nc"
    assert not (tmp_path / "a").exists()  # checked, nothing made


@pytest.mark.parametrize("name", ["w.nc", "w.zarr"])
def test_cli_refuses_a_read_only_output_folder_before_the_run(
    tmp_path, read_only, monkeypatch, capsys, name
):
    # the whole run went first; then a message named the hidden temporary file
    calls = []
    monkeypatch.setattr(world_cli, "held_suarez", _fake_world(calls))
    assert _world(tmp_path, read_only / name) == 1
    err = capsys.readouterr().err
    assert f"cannot write into {read_only}" in err
    assert calls == []


# ------------------------------------------------------------- "~" in the cycle's readers


def test_cycle_readers_expand_the_home_folder(tmp_path, monkeypatch):
    from xfuxi.assimilation.cycle import open_cycle, open_cycle_states

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path.parent)
    _cycle_into("~/run.zarr")
    assert (tmp_path / "run.zarr").is_dir()
    with open_cycle("~/run.zarr") as ds:
        assert ds.sizes
    assert open_cycle_states("~/run.zarr") is not None
    assert xfuxi.cycle_initial_conditions("~/run.zarr") is not None


def _sys_refuses_new_files() -> bool:
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(dir="/sys")
    except OSError:
        return True
    os.close(fd)
    os.unlink(probe)
    return False


@pytest.mark.skipif(not os.path.isdir("/sys") or not _sys_refuses_new_files(),
                    reason="no /sys that refuses new files here")  # fmt: skip
def test_a_folder_whose_bits_allow_writing_but_that_refuses_files_is_refused():
    """/sys passes os.access for root, but no file can be made in it: a writer found out
    only after its work (the probe file finds it before)."""
    from xfuxi.files import check_output_folder

    with pytest.raises(PermissionError, match="cannot write into /sys"):
        check_output_folder("/sys/x.nc")
