"""``--output '~/...'`` is the home folder, and ``xfuxi world --output X.nc`` is
checked before the run as the zarr branch is (a missing folder made, the cache refused)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi.cli.world as world_cli
from xfuxi.cli import main
from xfuxi.cli.common import output_path
from xfuxi.files import OutputExistsError


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home folder of its own, and a working directory that is not it."""
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


def test_output_path_expands_the_home_folder(home):
    # --output '~/fc.zarr' became ./~/fc.zarr
    out = output_path("~/fc.zarr", [], kind="forecast", overwrite=False)
    assert out == home / "home" / "fc.zarr"
    assert not (home / "work" / "~").exists()


def test_inputs_given_with_a_tilde_are_compared_as_the_home_folder(home):
    (home / "home" / "in.zarr").mkdir()
    for output, inputs in (
        ("~/in.zarr/fc.zarr", ["~/in.zarr"]),
        (str(home / "home" / "in.zarr" / "fc.zarr"), ["~/in.zarr"]),
        ("~/in.zarr", [str(home / "home" / "in.zarr")]),
        ("~", ["~/in.zarr"]),
    ):
        with pytest.raises(OutputExistsError, match="input"):
            output_path(output, inputs, kind="forecast", overwrite=False)


def _fake_world(calls):
    """A stand-in for held_suarez: a tiny world with the configuration it was asked."""

    def held_suarez(*, config, cache_dir=None):
        calls.append(cache_dir)
        t = pd.date_range("2000-01-01", periods=2, freq="6h")
        return xr.Dataset(
            {"surface_pressure": (("time", "latitude", "longitude"), np.ones((2, 2, 4)))},
            coords={"time": t, "latitude": [-45.0, 45.0], "longitude": [0.0, 90.0, 180.0, 270.0]},
            attrs={"config": json.dumps(config.normalized(), sort_keys=True)},
        )

    return held_suarez


def _world(tmp_path, output, *extra):
    return main(["--no-progress", "world", "--days", "1", "--spinup-days", "0", "--cache-dir",
                 str(tmp_path / "cache"), "--output", str(output), *extra])  # fmt: skip


def test_world_netcdf_output_makes_its_missing_folder(tmp_path, monkeypatch, capsys):
    # the write after the run failed (FileNotFoundError naming a hidden temporary file)
    calls = []
    monkeypatch.setattr(world_cli, "held_suarez", _fake_world(calls))
    out = tmp_path / "new" / "dir" / "w.nc"
    assert _world(tmp_path, out) == 0, capsys.readouterr().err
    assert calls and out.is_file()
    with xr.open_dataset(out) as back:
        assert back.attrs["xfuxi_writer"] == world_cli.WORLD_WRITER
    assert sorted(os.listdir(out.parent)) == ["w.nc"]  # no temporary left


def test_world_netcdf_output_is_checked_before_the_run(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(world_cli, "held_suarez", _fake_world(calls))
    store = tmp_path / "cache" / "held_suarez-T21-abc.zarr"
    store.mkdir(parents=True)
    (tmp_path / "file").write_text("mine")
    for output, why in (
        (store / "w.nc", "lies inside the input"),  # into the cache, as the zarr branch
        (tmp_path / "cache" / "w.nc", "lies inside the input"),
        (tmp_path / "file" / "w.nc", "which is a file, not a folder"),
    ):
        assert _world(tmp_path, output) == 1
        err = capsys.readouterr().err
        assert why in err and str(output) in err
        assert not os.path.lexists(output)
    assert calls == []  # refused before the world was generated
    assert (tmp_path / "file").read_text() == "mine"


def test_world_netcdf_path_defaults_to_the_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XFUXI_CACHE", str(tmp_path / "cache"))
    with pytest.raises(OutputExistsError, match="lies inside the input"):
        world_cli._world_netcdf_path(str(tmp_path / "cache" / "w.nc"), overwrite=False)
    out = world_cli._world_netcdf_path(str(tmp_path / "elsewhere" / "w.nc"), overwrite=False)
    assert out == tmp_path / "elsewhere" / "w.nc"


def test_world_outputs_expand_the_home_folder(home, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(world_cli, "held_suarez", _fake_world(calls))
    for name in ("w.nc", "w.zarr"):
        assert _world(home, f"~/{name}") == 0, capsys.readouterr().err
        assert (home / "home" / name).exists()
    assert not (home / "work" / "~").exists()


@pytest.mark.parametrize("name", ["fc.nc", "fc.NC4", "an.grib"])
def test_a_folder_output_named_as_a_file_is_refused(tmp_path, name):
    """``xfuxi forecast ... --output fc.nc`` wrote a zarr folder named fc.nc, which netCDF
    readers then failed to open ("Unknown file format")."""
    with pytest.raises(ValueError, match=r"writes a folder .* name it e.g. (fc|an)\.zarr"):
        output_path(str(tmp_path / name), [], kind="forecast", overwrite=False)
    assert not (tmp_path / name).exists()
    assert output_path(str(tmp_path / "fc.zarr"), [], kind="forecast", overwrite=False)


def test_world_netcdf_output_keeps_a_file_saved_during_the_run(tmp_path, monkeypatch, capsys):
    """Checked before the run, the file was written after it onto whatever was there: a
    user's file saved at the path meanwhile was replaced."""
    out = tmp_path / "w.nc"
    fake = _fake_world([])

    def saved_meanwhile(**kw):
        out.write_text("a user's notes")
        return fake(**kw)

    monkeypatch.setattr(world_cli, "held_suarez", saved_meanwhile)
    assert _world(tmp_path, out) == 1
    assert "appeared since it was checked" in capsys.readouterr().err
    assert out.read_text() == "a user's notes"
    # any case, and .nc4, is a netCDF file (a folder output named .NC was refused)
    monkeypatch.setattr(world_cli, "held_suarez", _fake_world([]))
    for name in ("W.NC", "w.nc4"):
        assert _world(tmp_path, tmp_path / name) == 0, capsys.readouterr().err
        assert (tmp_path / name).is_file()
