"""Audit 65 (lazy data at scale): the findings fixed, one test each.

* a lazy forecast scored against a truth, a climatology or a threshold held in memory: the
  truth (climatology, threshold) taken at the valid times stays lazy, one valid time per
  chunk, instead of an in-memory array of the forecast's full size made at build time;
  the scores are unchanged and nothing is computed while they are built;
* ``normalization_stats`` of dask data chunked along ``level`` (a broadcast ValueError).
"""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from xfuxi.verify.deterministic import _climatology_at, _lazy_lookup
from xfuxi.verify.weights import chunk_like_lazy

LAT = np.linspace(-60.0, 60.0, 5)
LON = np.arange(8) * 45.0
LEVELS = [250, 500, 850]
NINIT, NLEAD = 5, 3


def _truth(nt: int = NINIT + NLEAD + 2, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    t = pd.date_range("2020-01-01", periods=nt, freq="6h")
    dims = ("time", "level", "latitude", "longitude")
    shape = (nt, len(LEVELS), LAT.size, LON.size)
    return xr.Dataset(
        {
            "temperature": (dims, 260 + 5 * rng.standard_normal(shape), {"units": "K"}),
            "geopotential": (
                dims,
                5e4 + 1e3 * rng.standard_normal(shape),
                {"units": "m**2 s**-2"},
            ),  # fmt: skip
        },
        coords={"time": t, "level": LEVELS, "latitude": LAT, "longitude": LON},
    )


def _forecast(truth: xr.Dataset, seed: int = 1, members: int | None = None) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    inits = truth.time.values[:NINIT]
    leads = pd.to_timedelta(np.arange(1, NLEAD + 1) * 6, "h")
    out = {}
    for v, x in truth.data_vars.items():
        arr = np.stack([x.sel(time=inits + p).values for p in leads], axis=1)
        dims = ("time", "prediction_timedelta", *x.dims[1:])
        if members:
            arr = arr[:, :, None] + rng.standard_normal(arr.shape[:2] + (members,) + arr.shape[2:])
            dims = ("time", "prediction_timedelta", "number", *x.dims[1:])
        else:
            arr = arr + rng.standard_normal(arr.shape)
        out[v] = (dims, arr, dict(x.attrs))
    coords = {"time": inits, "prediction_timedelta": leads, "level": LEVELS,
              "latitude": LAT, "longitude": LON}  # fmt: skip
    if members:
        coords["number"] = np.arange(members)
    return xr.Dataset(out, coords=coords)


def _lazy(fc: xr.Dataset) -> xr.Dataset:
    return fc.chunk(time=1, prediction_timedelta=1)


def _no_compute(dsk, keys, **kwargs):
    raise AssertionError("a dask compute while the lazy score was built")


def _clim(truth: xr.Dataset, dayofyear: bool) -> xr.Dataset:
    by_hour = truth.groupby("time.hour").mean("time")
    if not dayofyear:
        return by_hour
    days = np.arange(1, 367)
    doy = xr.DataArray(days, dims="dayofyear", coords={"dayofyear": days})
    return (by_hour + 0.01 * doy).transpose("dayofyear", "hour", ...)


# --- 1. a lazy forecast against a truth, climatology or threshold in memory ---


def test_align_valid_time_stays_lazy_against_a_truth_in_memory():
    truth = _truth()
    fc = _forecast(truth)
    before = truth.copy(deep=True)
    eager = xfuxi.align_valid_time(fc, truth)
    with dask.config.set(scheduler=_no_compute):
        lazy = xfuxi.align_valid_time(_lazy(fc), truth)
    for v in truth.data_vars:  # was a numpy array of the forecast's (time, lead, ...) shape
        assert lazy[v].chunks is not None
        assert set(lazy[v].chunks[0]) == {1} and set(lazy[v].chunks[1]) == {1}
    xr.testing.assert_identical(lazy.compute(), eager)
    xr.testing.assert_identical(truth, before)  # not changed
    assert all(truth[v].chunks is None for v in truth.data_vars)
    # a DataArray, and one lead selected (a scalar prediction_timedelta)
    da = xfuxi.align_valid_time(_lazy(fc).temperature, truth.temperature)
    assert da.chunks is not None
    xr.testing.assert_identical(da.compute(), eager.temperature)
    one = _lazy(fc).isel(prediction_timedelta=1)
    got = xfuxi.align_valid_time(one, truth)
    assert got.temperature.chunks is not None
    xr.testing.assert_identical(got.compute(), xfuxi.align_valid_time(one.compute(), truth))


def test_align_valid_time_eager_forecast_unchanged():
    truth = _truth()
    fc = _forecast(truth)
    out = xfuxi.align_valid_time(fc, truth)
    assert all(out[v].chunks is None for v in out.data_vars)
    # a truth of which one variable is dask-backed already keeps its own chunks
    mixed = truth.assign(geopotential=truth.geopotential.chunk(time=4))
    got = xfuxi.align_valid_time(_lazy(fc), mixed)
    assert got.temperature.chunks is not None and got.geopotential.chunks is not None
    xr.testing.assert_identical(got.compute(), out)


def test_chunk_like_lazy_leaves_the_input_alone():
    truth = _truth()
    got = chunk_like_lazy(truth, _lazy(_forecast(truth)), ["time"])
    assert got.temperature.chunks[0] == (1,) * truth.sizes["time"]
    assert got.temperature.chunks[1:] == tuple((n,) for n in truth.temperature.shape[1:])
    assert truth.temperature.chunks is None
    assert all(got[c].chunks is None for c in got.coords)  # coords as they are
    assert chunk_like_lazy(truth, truth, ["time"]) is truth  # an eager forecast: as it is


@pytest.mark.parametrize("score", ["rmse", "mse", "mae", "bias"])
def test_scores_of_a_lazy_forecast_against_a_truth_in_memory(score):
    truth = _truth()
    fc = _forecast(truth)
    f = getattr(xfuxi, score)
    with dask.config.set(scheduler=_no_compute):
        lazy = f(_lazy(fc), truth, dim=["time", "latitude", "longitude"])
    assert all(lazy[v].chunks is not None for v in lazy.data_vars)
    xr.testing.assert_allclose(lazy.compute(), f(fc, truth, dim=["time", "latitude", "longitude"]),
                               rtol=1e-13)  # fmt: skip


@pytest.mark.parametrize("dayofyear", [False, True])
def test_acc_climatology_in_memory_looked_up_lazily(dayofyear):
    truth = _truth()
    fc = _forecast(truth)
    clim = _clim(truth, dayofyear)
    before = clim.copy(deep=True)
    looked_up = _climatology_at(clim, _lazy(fc))
    # the lookup by hour (and day of year) was an in-memory array of the forecast's size
    assert all(looked_up[v].chunks is not None for v in looked_up.data_vars)
    xr.testing.assert_identical(looked_up.compute(), _climatology_at(clim, fc))
    with dask.config.set(scheduler=_no_compute):
        lazy = xfuxi.acc(_lazy(fc), truth, clim, dim=["time", "latitude", "longitude"])
    eager = xfuxi.acc(fc, truth, clim, dim=["time", "latitude", "longitude"])
    xr.testing.assert_allclose(lazy.compute(), eager, rtol=1e-12)
    xr.testing.assert_identical(clim, before)
    assert all(clim[v].chunks is None for v in clim.data_vars)


def test_climatology_lookup_takes_the_span_needed_and_keeps_the_errors():
    truth = _truth()
    fc = _lazy(_forecast(truth))
    clim = _clim(truth, dayofyear=True)
    lookup = _lazy_lookup(clim, fc)  # 2020-01-01T06 .. 2020-01-02T18: 2 days, 4 hours
    assert lookup.sizes["dayofyear"] == 2 and lookup.sizes["hour"] == 4
    assert _lazy_lookup(clim, fc.compute()) is clim
    for bad in (clim.isel(hour=[0, 1, 2]), clim.isel(dayofyear=[0, 0, 1])):
        with pytest.raises(ValueError) as eager:
            xfuxi.acc(fc.compute(), truth, bad)
        with pytest.raises(ValueError) as lazy:
            xfuxi.acc(fc, truth, bad)
        assert str(lazy.value) == str(eager.value)


def test_acc_climatology_on_time_in_memory():
    truth = _truth()
    fc = _forecast(truth)
    clim = truth.rolling(time=3, center=True, min_periods=1).mean()  # a climatology on time
    looked_up = _climatology_at(clim, _lazy(fc))
    assert looked_up.temperature.chunks is not None
    lazy = xfuxi.acc(_lazy(fc), truth, clim)
    xr.testing.assert_allclose(lazy.compute(), xfuxi.acc(fc, truth, clim), rtol=1e-12)


def test_brier_threshold_on_time_in_memory():
    truth = _truth()
    ens = _forecast(truth, members=4)
    thr = truth.temperature.mean(["latitude", "longitude"])  # a threshold on time, per level
    kw = {"threshold": {"temperature": thr, "geopotential": 5e4}}
    eager = xfuxi.brier_score(ens, truth, **kw)
    with dask.config.set(scheduler=_no_compute):
        lazy = xfuxi.brier_score(_lazy(ens), truth, **kw)
    xr.testing.assert_allclose(lazy.compute(), eager, rtol=1e-12)


@pytest.mark.parametrize(
    "chunks",
    [{"level": 1}, {"latitude": 2}, {"time": 2}, {"time": 2, "longitude": 3, "level": 2}],
)
def test_other_chunkings_of_the_forecast(chunks):
    truth = _truth()
    fc = _forecast(truth)
    clim = _clim(truth, dayofyear=True)
    dims = ["time", "latitude", "longitude"]
    for score, args in (("rmse", ()), ("acc", (clim,))):
        f = getattr(xfuxi, score)
        with dask.config.set(scheduler=_no_compute):
            lazy = f(fc.chunk(chunks), truth, *args, dim=dims)
        xr.testing.assert_allclose(lazy.compute(), f(fc, truth, *args, dim=dims), rtol=1e-12)


# --- 3. normalization_stats of dask data chunked along level ---


@pytest.mark.parametrize(
    "chunks",
    [{"level": 1}, {"level": 2}, {"time": 3, "level": 2}, {"level": 1, "latitude": 2}],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_normalization_stats_chunked_along_level(chunks, weighted):
    ds = _truth(12)
    eager = xfuxi.normalization_stats(ds, weighted=weighted)
    lazy = xfuxi.normalization_stats(ds.chunk(chunks), weighted=weighted)  # was a ValueError
    xr.testing.assert_allclose(lazy, eager, rtol=1e-12)
    assert lazy.attrs == eager.attrs
