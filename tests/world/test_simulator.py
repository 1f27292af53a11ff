"""Tests of xfuxi.world.simulator / xfuxi.datasets: the Held–Suarez world."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from xfuxi.data.schema import validate
from xfuxi.files import MARKER, OutputExistsError, verify_directory
from xfuxi.world import simulator as world
from xfuxi.world.simulator import held_suarez, held_suarez_split, world_cache_path, world_config

pytest.importorskip("dinosaur")

LEVELS = (250, 500, 700, 850)
G = 9.80665


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("xfuxi-cache")


@pytest.fixture(scope="module")
def spun_up(cache):
    """A T21 world after 80 days of spin-up: 8 days of 6-hourly output (generated once)."""
    return held_suarez(days=8, spinup_days=80, seed=0, cache_dir=cache, progress=False).load()


@pytest.fixture(scope="module")
def tiny(cache):
    return held_suarez(days=2, spinup_days=1, seed=5, cache_dir=cache, progress=False)


# --- layout, units, metadata ------------------------------------------------------------------


def test_layout_is_canonical(tiny):
    assert dict(tiny.sizes) == {"time": 8, "level": 4, "latitude": 32, "longitude": 64}
    assert validate(tiny).identical(tiny)
    for name in ("geopotential", "temperature", "u_component_of_wind", "v_component_of_wind"):
        assert tiny[name].dims == ("time", "level", "latitude", "longitude")
        assert tiny[name].dtype == np.float32
    assert tiny.surface_pressure.dims == ("time", "latitude", "longitude")
    assert tiny.level.values.tolist() == list(LEVELS)
    lat, lon = tiny.latitude.values, tiny.longitude.values
    assert np.all(np.diff(lat) > 0) and -90 < lat[0] < -85 and 85 < lat[-1] < 90
    np.testing.assert_allclose(lon, np.arange(64) * 5.625)
    # Gaussian latitudes are symmetric about the equator
    np.testing.assert_allclose(lat, -lat[::-1], atol=1e-9)


def test_times_are_real_datetimes_every_6_hours(tiny):
    expected = pd.date_range("2000-01-01", periods=8, freq="6h").values
    np.testing.assert_array_equal(tiny.time.values, expected)


def test_units_and_attrs(tiny):
    units = {name: tiny[name].attrs["units"] for name in tiny.data_vars}
    assert units == {
        "geopotential": "m**2 s**-2",
        "temperature": "K",
        "u_component_of_wind": "m s**-1",
        "v_component_of_wind": "m s**-1",
        "passive_tracer": "1",
        "surface_pressure": "Pa",
    }
    attrs = tiny.attrs
    assert "Held-Suarez" in attrs["title"] and "dinosaur" in attrs["source"]
    import dinosaur

    assert attrs["dinosaur_version"] == dinosaur.__version__
    config = json.loads(attrs["config"])
    assert config == world_config(days=2, spinup_days=1, seed=5)
    assert attrs["seasonal_cycle"] == "none"
    tracer = tiny.passive_tracer.attrs
    assert "not humidity" in tracer["description"].lower()
    assert "moisture" in tracer["description"]


def test_physical_ranges(spun_up):
    # global-mean surface pressure stays at the initial 1000 hPa (mass is conserved)
    ps = spun_up.surface_pressure.weighted(xfuxi.area_weights(spun_up.latitude))
    np.testing.assert_allclose(ps.mean(["latitude", "longitude"]), 1e5, rtol=2e-3)
    t = spun_up.temperature
    assert 180 < float(t.min()) and float(t.max()) < 320
    # the equator is warmer than the poles, by tens of kelvin in the troposphere
    tz = t.mean(["time", "longitude"])
    contrast = tz.sel(latitude=slice(-10, 10)).mean("latitude") - tz.isel(latitude=[0, -1]).max(
        "latitude"
    )
    assert np.all(contrast.sel(level=[500, 700, 850]) > 20)
    assert float(contrast.sel(level=250)) > 0


def test_hydrostatic_thickness(spun_up):
    """500–850 hPa thickness against R T ln(p1/p2) with a log-pressure mean temperature."""
    r_dry = 287.0
    z = spun_up.geopotential
    thickness = z.sel(level=500) - z.sel(level=850)
    # temperature averaged in log p over the layer (trapezoid on the three levels)
    lp = np.log([500.0, 700.0, 850.0])
    t = spun_up.temperature
    t_mean = (
        (t.sel(level=500) + t.sel(level=700)) / 2 * (lp[1] - lp[0])
        + (t.sel(level=700) + t.sel(level=850)) / 2 * (lp[2] - lp[1])
    ) / (lp[2] - lp[0])
    expected = r_dry * t_mean * (lp[2] - lp[0])
    rel = np.abs(thickness - expected) / expected
    assert float(rel.mean()) < 0.01
    assert float(rel.max()) < 0.03


# --- the science: balance, eddies, stationarity ----------------------------------------------


def _metpy_geostrophic(z500: xr.DataArray):
    mpcalc = pytest.importorskip("metpy.calc")
    from metpy.units import units

    lat = z500.latitude.values
    lon = z500.longitude.values
    dx, dy = mpcalc.lat_lon_grid_deltas(lon, lat)
    latitude = np.deg2rad(lat)[:, None] * units.radian
    ug, vg = [], []
    for i in range(z500.sizes["time"]):
        height = (z500.isel(time=i).values / G) * units.meter
        u, v = mpcalc.geostrophic_wind(height, dx, dy, latitude)
        ug.append(u.m_as("m/s"))
        vg.append(v.m_as("m/s"))
    return np.stack(ug), np.stack(vg)


def test_geostrophic_balance_at_500hpa(spun_up):
    """MetPy's geostrophic wind from geopotential correlates >= 0.9 with the model wind."""
    w = spun_up.sel(level=500)
    ug, vg = _metpy_geostrophic(w.geopotential)
    lat = w.latitude.values
    for band in ((25, 70), (-70, -25)):
        m = (np.abs(lat) >= 25) & (np.abs(lat) <= 70) & (np.sign(lat) == np.sign(band[0]))
        for model, geo in ((w.u_component_of_wind, ug), (w.v_component_of_wind, vg)):
            a = model.values[:, m, :].ravel()
            b = geo[:, m, :].ravel()
            r = np.corrcoef(a, b)[0, 1]
            assert r >= 0.9, (band, model.name, r)


def test_eddies_exist_after_spinup(spun_up):
    v = spun_up.v_component_of_wind.sel(level=250)
    eddy = v - v.mean("longitude")
    rms = float(np.sqrt((eddy**2).mean()))
    assert 3.0 < rms < 40.0
    # and a westerly jet in each hemisphere at 250 hPa
    u = spun_up.u_component_of_wind.sel(level=250).mean(["time", "longitude"])
    assert float(u.sel(latitude=slice(20, 60)).max()) > 15
    assert float(u.sel(latitude=slice(-60, -20)).max()) > 15


def test_tracer_has_sharp_eddy_stirred_gradients(spun_up):
    q = spun_up.passive_tracer.sel(level=850)
    qz = q.mean(["time", "longitude"])
    tropics = float(qz.sel(latitude=slice(-15, 15)).mean())
    poles = float(qz.sel(latitude=slice(60, 90)).mean())
    assert tropics > 0.3 and poles < 0.1
    # aloft it is lower than near the surface
    assert float(spun_up.passive_tracer.sel(level=250).mean()) < float(q.mean())
    # stirred by the eddies: zonal anomalies in mid-latitudes
    eddy = (q - q.mean("longitude")).sel(latitude=slice(25, 65))
    assert float(eddy.std()) > 0.01


def _jet(u: xr.DataArray, band: slice) -> tuple[float, float]:
    """Jet speed (max of zonal-mean u) and latitude (centroid of westerlies) in a band."""
    ub = u.sel(latitude=band)
    west = ub.clip(min=0)
    return float(ub.max()), float((west * ub.latitude).sum() / west.sum())


def test_jet_has_no_drift(spun_up):
    """Zonal-mean jet of the first and second halves agree (a stationary climate)."""
    u = spun_up.u_component_of_wind.sel(level=250).mean("longitude")
    halves = [u.isel(time=slice(0, 16)).mean("time"), u.isel(time=slice(16, 32)).mean("time")]
    for band in (slice(20, 70), slice(-70, -20)):
        (s1, lat1), (s2, lat2) = (_jet(h, band) for h in halves)
        assert abs(s1 - s2) < 0.2 * s1
        assert abs(lat1 - lat2) < 5.0


@pytest.mark.slow
def test_jet_has_no_drift_over_a_long_run(tmp_path):
    ds = held_suarez(days=240, spinup_days=100, cache_dir=tmp_path, progress=False)
    u = ds.u_component_of_wind.sel(level=250).mean("longitude")
    halves = [u.isel(time=s).mean("time") for s in (slice(0, 480), slice(480, 960))]
    for band in (slice(20, 70), slice(-70, -20)):
        (s1, lat1), (s2, lat2) = (_jet(h, band) for h in halves)
        assert abs(s1 - s2) < 0.1 * s1
        assert abs(lat1 - lat2) < 2.5


# --- determinism and the cache ----------------------------------------------------------------


def test_deterministic_for_a_seed_and_seed_matters():
    kw = dict(days=1, spinup_days=1, use_cache=False, progress=False)
    a = held_suarez(seed=7, **kw)
    b = held_suarez(seed=7, **kw)
    c = held_suarez(seed=8, **kw)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a.v_component_of_wind, c.v_component_of_wind)


def test_cache_is_reused_not_recomputed(tmp_path, monkeypatch):
    calls = []
    real = world._chunks

    def counting(config, progress):
        calls.append(config)
        yield from real(config, progress)

    monkeypatch.setattr(world, "_chunks", counting)
    kw = dict(days=1, spinup_days=0, seed=3, cache_dir=tmp_path, progress=False)
    first = held_suarez(**kw).load()
    assert len(calls) == 1
    path = world_cache_path(world_config(days=1, spinup_days=0, seed=3), tmp_path)
    assert path.is_dir()
    # nothing but the store is left in the cache directory (temp dir removed)
    assert sorted(os.listdir(tmp_path)) == [path.name]
    # the store itself carries the metadata (for readers that open it directly)
    raw = xr.open_zarr(path)
    assert json.loads(raw.attrs["config"])["seed"] == 3 and "title" in raw.attrs
    assert raw.passive_tracer.attrs["units"] == "1"
    second = held_suarez(**kw).load()
    assert len(calls) == 1, "the second call ran the model again instead of reading the cache"
    xr.testing.assert_identical(first, second)
    # another configuration is another store
    held_suarez(**{**kw, "seed": 4})
    assert len(calls) == 2 and len(os.listdir(tmp_path)) == 2


def test_world_from_the_cache_writes_to_zarr_in_either_format(tiny, tmp_path):
    # the cache is zarr v2 with its own codecs; a user's copy must not inherit them
    assert not tiny.temperature.encoding and tiny.temperature.chunks is not None  # still lazy
    for fmt in (2, 3):
        store = tmp_path / f"world-v{fmt}.zarr"
        tiny.to_zarr(store, zarr_format=fmt)
        xr.testing.assert_identical(xr.open_zarr(store).load(), tiny.load())


def test_failed_generation_leaves_no_store(tmp_path, monkeypatch):
    def failing(config, progress):
        raise FloatingPointError("boom")
        yield  # pragma: no cover

    monkeypatch.setattr(world, "_chunks", failing)
    with pytest.raises(FloatingPointError, match="boom"):
        held_suarez(days=1, spinup_days=0, cache_dir=tmp_path, progress=False)
    assert os.listdir(tmp_path) == []


def test_cache_directory_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("XFUXI_CACHE", raising=False)
    with xfuxi.set_options(cache_dir=str(tmp_path / "opt")):
        assert world.cache_directory() == tmp_path / "opt"
        monkeypatch.setenv("XFUXI_CACHE", str(tmp_path / "env"))
        assert world.cache_directory() == tmp_path / "env"
        assert world.cache_directory(tmp_path / "arg") == tmp_path / "arg"


def test_cache_dir_option_takes_a_path(tmp_path, monkeypatch):
    """set_options(cache_dir=Path(...)) is accepted (issue 20, weak items); stored as str."""
    monkeypatch.delenv("XFUXI_CACHE", raising=False)
    with xfuxi.set_options(cache_dir=tmp_path / "opt"):
        assert xfuxi.get_options()["cache_dir"] == str(tmp_path / "opt")
        assert world.cache_directory() == tmp_path / "opt"
    assert xfuxi.get_options()["cache_dir"] is None
    for bad in (3, b"/tmp", ["/tmp"]):
        with pytest.raises(ValueError, match="cache_dir"):
            xfuxi.set_options(cache_dir=bad)


# --- a verified cache (issue 20, item 4) --------------------------------------------------------

TINY = dict(days=1, spinup_days=0, seed=3, progress=False)


@pytest.fixture
def runs(monkeypatch):
    """The configurations the world was run for (the real run, counted)."""
    calls = []
    real = world._chunks

    def counting(config, progress):
        calls.append(config)
        yield from real(config, progress)

    monkeypatch.setattr(world, "_chunks", counting)
    return calls


def _tiny_path(cache_dir):
    return world_cache_path(world_config(days=1, spinup_days=0, seed=3), cache_dir)


def test_cache_store_is_marked_with_checksums(tmp_path):
    ds = held_suarez(cache_dir=tmp_path, **TINY)
    path = _tiny_path(tmp_path)
    marker = verify_directory(path, kind=world.CACHE_KIND)
    assert marker["config"] == json.loads(ds.attrs["config"])
    assert "temperature/0.0.0.0" in marker["files"] and ".zmetadata" in marker["files"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o777 & ~umask


@pytest.mark.parametrize("damage", ["delete", "truncate", "marker"])
def test_damaged_cache_is_generated_again(tmp_path, runs, damage):
    first = held_suarez(cache_dir=tmp_path, **TINY).load()
    path = _tiny_path(tmp_path)
    chunk = path / "temperature" / "0.0.0.0"
    if damage == "delete":  # once a block of NaNs
        chunk.unlink()
    elif damage == "truncate":  # once a raw blosc error
        chunk.write_bytes(chunk.read_bytes()[:100])
    else:  # a store written by an older xfuxi, without the marker
        (path / MARKER).unlink()
    with pytest.warns(UserWarning) as said:
        again = held_suarez(cache_dir=tmp_path, **TINY).load()
    text = " ".join(str(w.message) for w in said)
    assert len(runs) == 2
    xr.testing.assert_identical(again, first)
    assert not np.isnan(again.temperature.values).any()
    expected = {
        "delete": "missing files: temperature/0.0.0.0",
        "truncate": "another size (truncated?): temperature/0.0.0.0",
        "marker": "written by an older xfuxi",
    }[damage]
    assert str(path) in text and expected in text
    verify_directory(path, kind=world.CACHE_KIND)
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_foreign_directory_at_a_cache_path_is_never_deleted(tmp_path, runs):
    path = _tiny_path(tmp_path)
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not an xfuxi cache store") as info:
        held_suarez(cache_dir=tmp_path, **TINY)
    assert str(path) in str(info.value)
    assert runs == [] and (path / "notes.txt").read_text() == "mine"
    # nor a zarr store of another configuration that lacks the marker
    (path / "notes.txt").unlink()
    other = held_suarez(days=1, spinup_days=0, seed=4, cache_dir=tmp_path, progress=False).load()
    other_path = world_cache_path(world_config(days=1, spinup_days=0, seed=4), tmp_path)
    (other_path / MARKER).unlink()
    path.rmdir()
    other_path.rename(path)
    with pytest.raises(OutputExistsError, match="not an xfuxi cache store"):
        held_suarez(cache_dir=tmp_path, **TINY)
    xr.testing.assert_equal(xr.open_zarr(path).load(), other)


def test_stale_temporaries_in_the_cache_are_removed(tmp_path):
    import socket

    long_ago = 1_000_000.0
    names = {
        "stale": ".held_suarez-T21-0123456789abcdef.zarr.k2j3h4g5.tmp",  # an old writer's
        "running": f".held_suarez-T21-0123456789abcdef.zarr.{os.getpid()}@"
        f"{socket.gethostname()}.abcd1234.tmp",
        "foreign": ".notes.k2j3h4g5.tmp",
        "user": "mydata",
    }
    for name in names.values():
        (tmp_path / name / "store.zarr").mkdir(parents=True)
        for p in (tmp_path / name / "store.zarr", tmp_path / name):
            os.utime(p, (long_ago, long_ago))
    held_suarez(cache_dir=tmp_path, **TINY)
    left = set(os.listdir(tmp_path))
    assert left == {_tiny_path(tmp_path).name, *names.values()} - {names["stale"]}


def test_cache_key_covers_config_and_versions(monkeypatch):
    a = world_cache_path(world_config(days=1), "/c")
    assert world_cache_path(world_config(days=1), "/c") == a
    assert world_cache_path(world_config(days=2), "/c") != a
    assert world_cache_path(world_config(days=1, levels=(500,)), "/c") != a
    monkeypatch.setattr(world, "package_versions", lambda: {"xfuxi": "x", "dinosaur": "y"})
    assert world_cache_path(world_config(days=1), "/c") != a


# --- splits ------------------------------------------------------------------------------------


def test_splits_are_distinct_documented_runs():
    seeds = {s["seed"] for s in world.SPLITS.values()}
    starts = [pd.Timestamp(s["start"]) for s in world.SPLITS.values()]
    assert len(seeds) == 3
    assert world.SPLITS["train"]["days"] >= 3 * 365
    # date ranges do not overlap
    spans = sorted(
        (pd.Timestamp(s["start"]), pd.Timestamp(s["start"]) + pd.Timedelta(days=s["days"]))
        for s in world.SPLITS.values()
    )
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert len(set(starts)) == 3


def test_split_is_the_start_of_the_full_split(tmp_path, monkeypatch):
    monkeypatch.setitem(world.SPLITS, "test", {"seed": 3, "start": "2020-01-01", "days": 3})
    kw = dict(spinup_days=1, cache_dir=tmp_path, progress=False)
    short = held_suarez_split("test", days=2, **kw).load()
    assert short.attrs["split"] == "test" and short.attrs["config_seed"] == 3
    assert str(short.time.values[0])[:10] == "2020-01-01" and short.sizes["time"] == 8
    full = held_suarez_split("test", **kw).load()
    assert full.sizes["time"] == 12
    # with the full split cached, a shorter period is sliced from it, and equals the run
    calls = []
    monkeypatch.setattr(world, "_chunks", lambda *a: calls.append(a) or iter(()))
    sliced = held_suarez_split("test", days=2, **kw).load()
    assert calls == []
    xr.testing.assert_equal(sliced, short)
    assert json.loads(sliced.attrs["config"])["days"] == 2


def test_split_errors():
    with pytest.raises(ValueError, match="split must be one of"):
        held_suarez_split("training")
    with pytest.raises(ValueError, match="fixed by the split"):
        held_suarez_split("test", seed=1)


# --- bad configurations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"days": 0}, "days must be a positive integer"),
        ({"seed": -1}, "seed"),
        ({"resolution": "T31"}, "resolution must be one of"),
        ({"levels": (1000,)}, "outside the model's sigma levels"),
        ({"levels": (500, 500)}, "duplicates"),
        ({"levels": (123, 500)}, r"\[123\] hPa are not standard pressure levels"),
        ({"levels": ()}, "at least one"),
        ({"start": "not a date"}, "start must be a date"),
        ({"spinup_days": 1.5}, "whole number"),
        ({"output_hours": 5}, "output_hours"),
        ({"n_sigma_levels": 2}, "n_sigma_levels"),
    ],
)
def test_bad_configuration_is_named(kw, match):
    with pytest.raises(ValueError, match=match):
        held_suarez(**kw, progress=False)


# --- public API, accessor-free entry points, CLI ---------------------------------------------


def test_public_entry_points():
    assert xfuxi.datasets.held_suarez is held_suarez
    assert xfuxi.datasets.held_suarez_split is held_suarez_split
    assert xfuxi.held_suarez is held_suarez


def test_cli_world(tmp_path, capsys):
    from xfuxi.cli import main

    out = tmp_path / "w.nc"
    rc = main(
        [
            "--no-progress",
            "world",
            "--days",
            "1",
            "--spinup-days",
            "0",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "cache:" in text and "wrote" in text
    ds = xr.open_dataset(out)
    assert dict(ds.sizes) == {"time": 4, "level": 4, "latitude": 32, "longitude": 64}
    ds.close()
    assert len(os.listdir(tmp_path / "cache")) == 1
    # replaced with --overwrite; a user's subset of it (xarray keeps its attributes) is not
    again = ["--no-progress", "world", "--days", "1", "--spinup-days", "0", "--cache-dir",
             str(tmp_path / "cache"), "--overwrite", "--output"]  # fmt: skip
    assert main([*again, str(out)]) == 0
    with xr.open_dataset(out) as world:
        world.isel(level=[0]).to_netcdf(tmp_path / "mine.nc")
    mine = (tmp_path / "mine.nc").read_bytes()
    capsys.readouterr()
    assert main([*again, str(tmp_path / "mine.nc")]) == 1
    assert "mine.nc" in capsys.readouterr().err
    assert (tmp_path / "mine.nc").read_bytes() == mine


def test_cli_world_zarr_output(tmp_path, capsys):
    """xfuxi world --output w.zarr (issue 20, item 8: it crashed on the cache's zarr-v2 codec);
    the copy equals the cached world, is marked, and is replaced only with --overwrite."""
    from xfuxi.cli import main
    from xfuxi.files import read_marker

    cache = tmp_path / "cache"
    out = tmp_path / "w.zarr"
    args = ["--no-progress", "world", "--days", "1", "--spinup-days", "0", "--seed", "3",
            "--cache-dir", str(cache), "--output", str(out)]  # fmt: skip
    assert main(args) == 0
    got = xr.open_zarr(out).load()
    cached = xr.open_zarr(_tiny_path(cache)).load()
    xr.testing.assert_identical(got, cached)
    assert read_marker(out)["kind"] == "world"
    capsys.readouterr()
    assert main(args) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    xr.testing.assert_identical(xr.open_zarr(out).load(), cached)
    # and a netCDF copy, replaced with --overwrite since xfuxi wrote it
    nc = tmp_path / "w.nc"
    assert main([*args[:-1], str(nc)]) == 0
    assert main([*args[:-1], str(nc), "--overwrite"]) == 0
    with xr.open_dataset(nc) as ds:  # and the writer's marks (what --overwrite reads)
        assert (ds.attrs["xfuxi_writer"], ds.attrs["xfuxi_file"]) == ("xfuxi world", "w.nc")
        xr.testing.assert_identical(ds.load().drop_attrs(deep=False), cached.drop_attrs(deep=False))
        assert {**cached.attrs, "xfuxi_writer": "xfuxi world", "xfuxi_file": "w.nc"} == ds.attrs
    assert sorted(os.listdir(tmp_path)) == ["cache", "w.nc", "w.zarr"]


def test_world_options_are_one_config_for_the_function_the_splits_and_the_cli(monkeypatch):
    # issue 19 (typed configuration, one schema): held_suarez takes a WorldConfig (its
    # keywords are the same fields), the splits keep a config's model options and fix seed
    # and start, and `xfuxi world` builds its flags from WorldConfig (no defaults restated)
    from xfuxi.cli import main
    from xfuxi.cli import world as cli_world
    from xfuxi.world import simulator
    from xfuxi.world.simulator import WorldConfig

    cfg = WorldConfig(days=2, levels=(850, 250), seed=4)
    assert cfg.normalized() == world_config(days=2, levels=(850, 250), seed=4)
    assert WorldConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="days must be a positive integer"):
        held_suarez(config={"days": 0})
    with pytest.raises(TypeError, match="dayz"):
        held_suarez(config=cfg, dayz=3)
    calls = []

    class _Stop(BaseException):  # not an Exception: the CLI reports those as errors
        pass

    def record(**kw):
        calls.append(kw)
        raise _Stop

    monkeypatch.setattr(simulator, "held_suarez", record)
    with pytest.raises(_Stop):
        held_suarez_split("test", days=3, use_cache=False,
                          config=WorldConfig(seed=9, resolution="T42", levels=(500,)))  # fmt: skip
    kw = calls.pop()
    assert (kw["seed"], kw["start"], kw["days"]) == (3, "2020-01-01", 3)
    assert kw["resolution"] == "T42" and list(kw["levels"]) == [500]
    monkeypatch.setattr(cli_world, "held_suarez", record)
    with pytest.raises(_Stop):
        main(["--no-progress", "world", "--days", "2", "--seed", "4", "--n-sigma-levels", "10"])
    assert calls.pop()["config"] == WorldConfig(days=2, seed=4, n_sigma_levels=10)


class _Generated(Exception):
    """Raised by the stand-in of the dynamics: the world would have been generated."""


def test_a_split_reaching_the_next_split_is_refused(monkeypatch):
    """days=3700 made the train split run into the validation split's dates."""

    def generator(*args):
        raise _Generated

    monkeypatch.setattr(world, "_chunks", generator)
    kw = dict(use_cache=False, levels=(500,), spinup_days=0, progress=False)
    for split, next_start in (("train", "2010-01-01"), ("validation", "2020-01-01")):
        with pytest.raises(ValueError, match=f"{split}.*{next_start}"):
            held_suarez_split(split, days=3700, **kw)
    for days in ("5", 2.5, 0, True):
        with pytest.raises(ValueError, match="days must be a positive integer"):
            held_suarez_split("test", days=days, **kw)
    # periods that end before the next split are generated as before
    for split, days in (("train", 3653), ("test", 3700), ("validation", 365)):
        with pytest.raises(_Generated):
            held_suarez_split(split, days=days, **kw)
