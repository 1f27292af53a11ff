"""Tests of xfuxi.data.stats: normalization statistics, climatology, save/load."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import xfuxi
from xfuxi.data.schema import SchemaError
from xfuxi.data.stats import (
    climatology,
    climatology_for,
    load_stats,
    normalization_stats,
    save_stats,
)

LAT = np.array([-60.0, -20.0, 20.0, 60.0])
LON = np.array([0.0, 90.0, 180.0, 270.0, 315.0])
LEVELS = [500, 850]


def make_ds(n_time=12, freq="6h", start="2000-01-01", seed=0):
    rng = np.random.default_rng(seed)
    t = pd.date_range(start, periods=n_time, freq=freq)
    shape3 = (n_time, len(LEVELS), LAT.size, LON.size)
    coords = {"time": t, "level": LEVELS, "latitude": LAT, "longitude": LON}
    ds = xr.Dataset(
        {
            "temperature": (
                ("time", "level", "latitude", "longitude"),
                250 + 10 * rng.standard_normal(shape3),
                {"units": "K"},
            ),
            "surface_pressure": (
                ("time", "latitude", "longitude"),
                1e5 + 500 * rng.standard_normal((n_time, LAT.size, LON.size)),
                {"units": "Pa"},
            ),
        },
        coords=coords,
    )
    ds["level"].attrs["units"] = "hPa"
    return ds


def _weights_reference(lat):
    """Cell areas between midpoints and the poles (independent of xfuxi.verify)."""
    edges = np.concatenate([[-90.0], (lat[1:] + lat[:-1]) / 2, [90.0]])
    w = np.sin(np.deg2rad(edges[1:])) - np.sin(np.deg2rad(edges[:-1]))
    return w / w.mean()


# --- normalization_stats ----------------------------------------------------------------------


def test_normalization_stats_against_numpy():
    ds = make_ds()
    s = normalization_stats(ds)
    assert s.temperature.dims == ("statistic", "level")
    assert s.surface_pressure.dims == ("statistic",)
    assert s.statistic.values.tolist() == ["mean", "std", "diff_std"]
    t = ds.temperature.values
    for i, lev in enumerate(LEVELS):
        x = t[:, i]
        np.testing.assert_allclose(s.temperature.sel(level=lev, statistic="mean"), x.mean())
        np.testing.assert_allclose(s.temperature.sel(level=lev, statistic="std"), x.std())
        np.testing.assert_allclose(
            s.temperature.sel(level=lev, statistic="diff_std"), np.diff(x, axis=0).std()
        )
    p = ds.surface_pressure.values
    np.testing.assert_allclose(
        s.surface_pressure.values, [p.mean(), p.std(), np.diff(p, axis=0).std()]
    )
    assert s.temperature.attrs["units"] == "K"
    assert s.attrs["n_times"] == 12 and s.attrs["weighted"] == "none"


def test_normalization_stats_weighted():
    ds = make_ds()
    s = normalization_stats(ds, weighted=True)
    w = _weights_reference(LAT)[None, :, None]
    x = ds.surface_pressure.values
    ww = np.broadcast_to(w, x.shape)
    mean = np.average(x, weights=ww)
    std = np.sqrt(np.average((x - mean) ** 2, weights=ww))
    d = np.diff(x, axis=0)
    wd = np.broadcast_to(w, d.shape)
    dstd = np.sqrt(np.average((d - np.average(d, weights=wd)) ** 2, weights=wd))
    np.testing.assert_allclose(s.surface_pressure.values, [mean, std, dstd], rtol=1e-10)


def test_normalization_stats_is_read_by_normstats():
    pytest.importorskip("torch")
    from xfuxi.models.base import NormStats

    ds = make_ds()
    s = normalization_stats(ds)
    ns = NormStats.from_dataset(s, [("temperature", 850), ("surface_pressure", None)])
    np.testing.assert_allclose(ns.mean[0], ds.temperature.sel(level=850).values.mean())
    np.testing.assert_allclose(ns.std[1], ds.surface_pressure.values.std())


def test_normalization_stats_dask_twin_and_no_mutation():
    ds = make_ds()
    before = ds.copy(deep=True)
    eager = normalization_stats(ds)
    lazy = normalization_stats(ds.chunk({"time": 5}))
    xr.testing.assert_allclose(eager, lazy)
    xr.testing.assert_identical(ds, before)


def test_normalization_stats_accepts_latitude_descending_and_dataarray():
    ds = make_ds()
    flipped = ds.isel(latitude=slice(None, None, -1))
    xr.testing.assert_allclose(normalization_stats(flipped), normalization_stats(ds))
    da = normalization_stats(ds.temperature)
    xr.testing.assert_allclose(da.temperature, normalization_stats(ds).temperature)
    with pytest.raises(ValueError, match="needs a name"):
        normalization_stats(ds.temperature.rename(None))


def test_normalization_stats_errors():
    ds = make_ds()
    with pytest.raises(ValueError, match="consecutive and evenly spaced"):
        normalization_stats(ds.isel(time=[0, 1, 3, 4]))
    with pytest.raises(ValueError, match="consecutive and evenly spaced"):
        normalization_stats(make_ds(freq="12h"))
    assert normalization_stats(make_ds(freq="12h"), step="12h").temperature.notnull().all()
    with pytest.raises(ValueError, match="at least two times"):
        normalization_stats(ds.isel(time=[0]))
    with pytest.raises(ValueError, match="dimension 'valid'"):
        normalization_stats(ds, dim="valid")


@settings(max_examples=20, deadline=None)
@given(
    a=st.floats(-100, 100).filter(lambda v: abs(v) > 1e-3),
    b=st.floats(-1e3, 1e3),
)
def test_normalization_stats_affine_property(a, b):
    ds = make_ds(n_time=5)
    s = normalization_stats(ds)
    s2 = normalization_stats(ds * a + b)
    np.testing.assert_allclose(
        s2.temperature.sel(statistic="mean"), a * s.temperature.sel(statistic="mean") + b, rtol=1e-9
    )
    for k in ("std", "diff_std"):
        np.testing.assert_allclose(
            s2.temperature.sel(statistic=k), abs(a) * s.temperature.sel(statistic=k), rtol=1e-9
        )


# --- climatology -------------------------------------------------------------------------------


def test_climatology_by_hour_against_pandas():
    ds = make_ds(n_time=40)
    clim = climatology(ds)
    assert clim.temperature.dims == ("hour", "level", "latitude", "longitude")
    assert clim.hour.values.tolist() == [0, 6, 12, 18]
    df = ds.surface_pressure.isel(latitude=1, longitude=2).to_series()
    ref = df.groupby(df.index.hour).mean()
    np.testing.assert_allclose(clim.surface_pressure.isel(latitude=1, longitude=2), ref.values)
    assert clim.temperature.attrs["units"] == "K"


def test_climatology_seasonal_auto_and_held_suarez_world():
    ds = make_ds(n_time=2 * 366 * 2, freq="12h", start="2001-01-01")  # two years, 12-hourly
    clim = climatology(ds)
    assert clim.temperature.dims[:2] == ("dayofyear", "hour")
    assert clim.hour.values.tolist() == [0, 12]
    assert clim.dayofyear.values[0] == 1 and clim.dayofyear.values[-1] >= 365
    df = ds.surface_pressure.isel(latitude=0, longitude=0).to_series()
    ref = df.groupby([df.index.day_of_year, df.index.hour]).mean()
    np.testing.assert_allclose(
        clim.surface_pressure.isel(latitude=0, longitude=0).sel(dayofyear=40, hour=12),
        ref.loc[(40, 12)],
    )
    # the Held–Suarez world declares no seasonal cycle: hour only
    hs = climatology(ds.assign_attrs(seasonal_cycle="none"))
    assert "dayofyear" not in hs.dims
    assert "dayofyear" not in climatology(ds, seasonal=False).dims
    with pytest.raises(ValueError, match="at least a year"):
        climatology(make_ds(n_time=8), seasonal=True)


def test_climatology_does_not_depend_on_the_order_of_the_times():
    """Descending or shuffled times give the climatology of the ascending ones: the seasonal
    default and seasonal=True's check read the span from the earliest and latest times (they
    read the first and last, so two years backwards were "shorter than a year")."""
    t = pd.date_range("2001-01-01", "2002-12-31 12:00", freq="12h")  # two years
    values = 10 * np.cos(2 * np.pi * t.day_of_year.to_numpy() / 365.25)
    da = xr.DataArray(values, dims="time", coords={"time": t}, name="t")
    ascending = climatology(da)
    assert ascending.dims == ("dayofyear", "hour")
    shuffle = np.random.default_rng(0).permutation(t.size)
    for label, other in {
        "descending": da.isel(time=slice(None, None, -1)),
        "shuffled": da.isel(time=shuffle),
    }.items():
        before = other.copy(deep=True)
        got = climatology(other)
        assert got.dims == ("dayofyear", "hour"), label  # not by hour alone
        xr.testing.assert_allclose(got, ascending, rtol=1e-12)
        assert got.attrs == ascending.attrs, label
        xr.testing.assert_allclose(climatology(other, seasonal=True), ascending, rtol=1e-12)
        xr.testing.assert_allclose(
            climatology(other, window=5), climatology(da, window=5), rtol=1e-12
        )
        xr.testing.assert_identical(other, before)  # the input is not sorted in place
        half = other.isel(time=(other["time"] < np.datetime64("2001-07-01")).values)
        with pytest.raises(ValueError, match="at least a year"):  # half a year, same order
            climatology(half, seasonal=True)


def test_climatology_dataarray_and_no_mutation():
    ds = make_ds(n_time=16)
    before = ds.copy(deep=True)
    da = climatology(ds.temperature)
    assert isinstance(da, xr.DataArray) and da.name == "temperature"
    xr.testing.assert_allclose(da, climatology(ds).temperature)
    xr.testing.assert_identical(ds, before)


def test_climatology_for_matches_hour_and_errors():
    ds = make_ds(n_time=16)
    clim = climatology(ds)
    times = pd.to_datetime(["2005-03-01T18", "2005-03-02T00"])
    out = climatology_for(clim, times)
    assert out.temperature.dims == ("time", "level", "latitude", "longitude")
    xr.testing.assert_equal(
        out.temperature.isel(time=0, drop=True), clim.temperature.sel(hour=18, drop=True)
    )
    with pytest.raises(ValueError, match="lacks hour"):
        climatology_for(clim, ["2005-03-01T03"])
    with pytest.raises(ValueError, match="must have dimension 'hour'"):
        climatology_for(ds.temperature.isel(time=0), ["2005-03-01T00"])


# --- save / load -------------------------------------------------------------------------------


def test_save_load_roundtrip_and_atomic(tmp_path):
    ds = make_ds()
    s = normalization_stats(ds)
    path = save_stats(s, tmp_path / "stats.nc")
    xr.testing.assert_identical(load_stats(path), s)
    clim = climatology(ds)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_stats(clim, tmp_path / "stats.nc")  # an existing file is never replaced silently
    xr.testing.assert_identical(load_stats(path), s)
    save_stats(clim, tmp_path / "stats.nc", overwrite=True)  # replaces
    xr.testing.assert_identical(load_stats(tmp_path / "stats.nc"), clim)
    assert os.listdir(tmp_path) == ["stats.nc"]  # no temp file left
    # a file save_stats did not write is never replaced, not even with overwrite=True
    foreign = tmp_path / "user.nc"
    xr.Dataset({"x": ("a", [1.0])}).to_netcdf(foreign)
    before = foreign.read_bytes()
    with pytest.raises(FileExistsError, match="not written by xfuxi.save_stats"):
        save_stats(s, foreign, overwrite=True)
    assert foreign.read_bytes() == before
    os.remove(foreign)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_stats(s, tmp_path / "missing" / "s.nc")
    with pytest.raises(FileNotFoundError, match="no statistics file"):
        load_stats(tmp_path / "nope.nc")


def test_public_api_and_accessor():
    ds = make_ds()
    xr.testing.assert_identical(ds.fuxi.normalization_stats(), xfuxi.normalization_stats(ds))
    xr.testing.assert_identical(ds.fuxi.climatology(), xfuxi.climatology(ds))
    assert "weighted" in str(__import__("inspect").signature(ds.fuxi.normalization_stats))


def test_climatology_of_a_dataarray_reads_its_own_seasonal_cycle_attr():
    ds = make_ds(n_time=2 * 366 * 2, freq="12h", start="2001-01-01")  # two years
    da = ds.temperature.assign_attrs(seasonal_cycle="none")  # the DataArray declares it
    clim = climatology(da)
    assert clim.dims[:2] == ("hour", "level") and "dayofyear" not in clim.dims
    xr.testing.assert_allclose(
        clim, climatology(ds.assign_attrs(seasonal_cycle="none")).temperature
    )
    assert da.fuxi.climatology().dims == clim.dims  # the same through the accessor
    assert "dayofyear" in climatology(ds.temperature).dims  # without the attr: seasonal
    assert climatology(da, seasonal=True).dims[0] == "dayofyear"  # asked for explicitly


def test_climatology_refuses_duplicated_times_as_validate_does():
    """A time held twice was counted twice in its hour's mean, silently; validate,
    normalization_stats and forecast refuse it, and so does the climatology now."""
    ds = make_ds(n_time=8)
    dup = xr.concat([ds, ds.isel(time=[3]) + 100.0], "time", data_vars="all")
    shown = str(pd.Timestamp(ds.time.values[3]))
    for obj in (dup, dup.temperature):
        with pytest.raises(SchemaError, match=rf"'time' has duplicated values: \['{shown}'\]"):
            climatology(obj)
    with pytest.raises(ValueError, match="'time' has duplicated values"):  # as validate's
        xfuxi.validate(dup)
    # unsorted but distinct times are a climatology as before, over the same period (it was
    # named by the first and last times given: backwards for reversed times)
    back = climatology(ds.isel(time=slice(None, None, -1)))
    xr.testing.assert_allclose(back, climatology(ds))
    assert back.attrs["climatology_period"] == climatology(ds).attrs["climatology_period"]


def test_statistics_do_not_share_nested_attrs_with_their_input():
    """The outputs took the input's attrs by a shallow copy: a list held in them was the
    input's own, and appending to it in the output changed the input."""
    ds = make_ds(n_time=8)
    ds.attrs.update(title="t", source=["era5"], history=["made"])
    ds.temperature.attrs.update(flags=[1, 2], long_name="T")
    ds.latitude.attrs["bounds"] = [-90.0, 90.0]
    before = ds.copy(deep=True)
    for obj in (ds, ds.temperature):
        clim = climatology(obj)
        t = clim if isinstance(clim, xr.DataArray) else clim.temperature
        t.attrs["flags"].append(99)
        clim.latitude.attrs["bounds"].append(0.0)
        if isinstance(clim, xr.Dataset):
            clim.attrs["source"].append("mine")
        at = climatology_for(clim, pd.to_datetime(["2005-03-01T18"]))
        at.latitude.attrs["bounds"].append(1.0)
        (at if isinstance(at, xr.DataArray) else at.temperature).attrs["flags"].append(7)
        assert ds.temperature.attrs["flags"] == [1, 2]
        assert ds.latitude.attrs["bounds"] == [-90.0, 90.0]
        assert ds.attrs["source"] == ["era5"] and ds.attrs["history"] == ["made"]
    stats = normalization_stats(ds)
    stats.level.attrs.setdefault("extra", []).append(1)
    xr.testing.assert_identical(ds, before)
    assert "extra" not in ds.level.attrs


def _windowed_reference(values, times, window):
    """WeatherBench2's smoothed climatology written out point by point: for each day of
    year d and hour, the samples of that hour in the years, at days d + k (on the circle of
    366 days) weighted 1 - |k|/h; a year without 29 February gives day 366 its day 365."""
    h = window // 2
    years = sorted(set(times.year))
    out = {}
    for hour in sorted(set(times.hour)):
        by_year = {}
        for y in years:
            sel = (times.year == y) & (times.hour == hour)
            days = dict(zip(times.day_of_year[sel], values[sel]))
            if 366 not in days and 365 in days:
                days[366] = days[365]
            by_year[y] = days
        for d in range(1, 367):
            num = den = 0.0
            for k in range(-h + 1, h):
                day = (d - 1 + k) % 366 + 1
                for days in by_year.values():
                    if day in days:
                        num += (1 - abs(k) / h) * days[day]
                        den += 1 - abs(k) / h
            out[(d, hour)] = num / den if den else np.nan
    return out


@pytest.mark.parametrize("window", [3, 7, 61])
def test_climatology_window_is_weatherbench2s_smoothed_climatology(window):
    t = pd.date_range("2015-01-01", "2016-12-31T12", freq="12h")  # 2016 has 29 February
    rng = np.random.default_rng(window)
    x = 10 * np.cos(2 * np.pi * t.day_of_year / 365.25) + rng.normal(0, 2, t.size)
    da = xr.DataArray(x, dims="time", coords={"time": t}, name="t")
    before = da.copy(deep=True)
    got = climatology(da, window=window)
    ref = _windowed_reference(x, t, window)
    assert got.dims == ("dayofyear", "hour") and got.sizes["dayofyear"] == 366
    expect = np.array([[ref[(d, hr)] for hr in (0, 12)] for d in range(1, 367)])
    np.testing.assert_allclose(got.values, expect, rtol=1e-12)
    assert got.attrs["window_days"] == window and "triangular window" in got.attrs["description"]
    xr.testing.assert_identical(da, before)
    # smoothing lowers the noise of the plain means of two samples (the seasonal cycle kept)
    plain = climatology(da)
    truth = 10 * np.cos(2 * np.pi * plain.dayofyear / 365.25)
    if window == 61:
        assert float(((got - truth) ** 2).mean()) < 0.2 * float(((plain - truth) ** 2).mean())
    # a Dataset and dask-backed data give the same numbers (lazily)
    ds = da.to_dataset()
    xr.testing.assert_allclose(climatology(ds, window=window)["t"], got)
    lazy = climatology(ds.chunk(time=100), window=window)
    assert lazy["t"].chunks is not None
    xr.testing.assert_allclose(lazy["t"].compute(), got)


def test_climatology_window_refusals_and_missing_values():
    t = pd.date_range("2015-01-01", "2015-12-31T18", freq="6h")
    da = xr.DataArray(np.ones(t.size), dims="time", coords={"time": t}, name="t")
    for bad in (4, 1, 367, 61.0, True, "61"):
        with pytest.raises(ValueError, match="window must be an odd number of days"):
            climatology(da, window=bad)
    with pytest.raises(ValueError, match="by hour alone"):
        climatology(da, window=61, seasonal=False)
    with pytest.raises(ValueError, match="by hour alone"):
        climatology(da.assign_attrs(seasonal_cycle="none"), window=61)
    # a NaN in the data is a gap in the groups whose window holds it, not skipped
    holed = da.copy()
    holed[10] = np.nan  # 3 January, 12 UTC
    out = climatology(holed, window=5)
    assert np.isnan(out.sel(dayofyear=[2, 3, 4], hour=12)).all()
    assert not np.isnan(out.sel(dayofyear=[1, 5], hour=12)).any()
    assert not np.isnan(out.sel(hour=0)).any()
    np.testing.assert_allclose(out.sel(hour=6), 1.0)
    # a missing stretch of days is missing, and far from data the mean is NaN
    part = da.sel(time=slice("2015-01-01", "2015-06-30"))
    part = xr.concat([part, da.sel(time=slice("2015-12-25", None))], "time")
    out = climatology(part, window=5, seasonal=True)
    assert np.isnan(out.sel(dayofyear=200)).all() and not np.isnan(out.sel(dayofyear=100)).any()


def test_climatology_window_keeps_static_variables_and_float32():
    """A variable without time (a land-sea mask) is its own climatology at every day and
    hour, as without a window (it came out divided by the samples' count: 1 → 0.5 with two
    years); float32 data give a float32 climatology, as without a window (float64 before)."""
    t = pd.date_range("2015-01-01", "2016-12-31T18", freq="6h")
    rng = np.random.default_rng(1)
    ds = xr.Dataset(
        {
            "t": ("time", rng.random(t.size).astype("float32")),
            "land_sea_mask": ("x", np.array([1.0, 0.0], dtype="float32")),
            "d": ("time", rng.random(t.size)),
        },
        coords={"time": t},
    )
    out = climatology(ds, window=5)
    plain = climatology(ds)
    assert list(out.data_vars) == ["t", "land_sea_mask", "d"]
    assert out["land_sea_mask"].dims == ("dayofyear", "hour", "x")
    np.testing.assert_array_equal(out["land_sea_mask"].values[..., 0], 1.0)
    np.testing.assert_array_equal(out["land_sea_mask"].values[..., 1], 0.0)
    for v in ("t", "land_sea_mask", "d"):
        assert out[v].dtype == plain[v].dtype == ds[v].dtype
    np.testing.assert_allclose(out["t"], climatology(ds["t"].astype("float64"), window=5),
                               rtol=1e-6)  # fmt: skip


def test_climatology_window_on_dask_is_a_small_graph():
    """The window is one task per block along the year (rolling the dask sums made tens of
    tasks per output chunk for each day of the window: 36 397 tasks here before, 757 000
    for two variables of a 1.5° year); the numbers are those of the in-memory path."""
    t = pd.date_range("2015-01-01", "2018-12-31T18", freq="6h")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, (t.size, 2, 3, 4)).astype("float32")
    ds = xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"), x)},
        coords={"time": t, "level": [500.0, 850.0], "latitude": [-30.0, 0.0, 30.0],
                "longitude": [0.0, 90.0, 180.0, 270.0]},
    )  # fmt: skip
    lazy = climatology(ds.chunk(time=100), window=61)
    assert len(dict(lazy.__dask_graph__())) < 5000
    eager = climatology(ds, window=61)["temperature"]
    np.testing.assert_allclose(lazy["temperature"].compute(), eager, rtol=0, atol=1e-5)


@pytest.mark.parametrize("label", ["std", "diff_std"])
@pytest.mark.parametrize("bad", [-1.0, np.inf])
def test_load_stats_refuses_a_foreign_file_with_a_negative_or_infinite_spread(tmp_path, label, bad):
    values = {"mean": 280.0, "std": 10.0, "diff_std": 1.0}
    values[label] = bad
    foreign = xr.Dataset(
        {
            "temperature": ("statistic", list(values.values())),
            "note": ("statistic", ["a", "b", "c"]),  # not numbers: not checked
        },
        coords={"statistic": list(values)},
    )
    path = tmp_path / "foreign.nc"
    foreign.to_netcdf(path)
    with pytest.raises(ValueError, match=rf"'temperature' has a {label} that is negative"):
        load_stats(path)
    # NaN (a field without a value at some point) and a climatology load as they are
    values[label] = np.nan
    ok = foreign.assign(temperature=("statistic", list(values.values())))
    ok.to_netcdf(tmp_path / "nan.nc")
    assert np.isnan(load_stats(tmp_path / "nan.nc").temperature.sel(statistic=label))
