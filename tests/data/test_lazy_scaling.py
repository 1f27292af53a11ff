"""Large lazy (dask) data: statistics, regridding, netCDF writing and the campaign data
fingerprint stay bounded in memory and match the in-memory results (docs/data.md)."""

from __future__ import annotations

import hashlib
import tracemalloc

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xfuxi import campaigns
from xfuxi.data import regrid as regrid_mod
from xfuxi.data import stats as stats_mod
from xfuxi.data import writers as writers_mod


def _record(n_times: int = 400, nlat: int = 32, nlon: int = 64, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    t = pd.date_range("2000-01-01", periods=n_times, freq="6h")
    lat = np.linspace(-90, 90, nlat + 1)[:-1] + 90.0 / nlat
    lon = np.arange(nlon) * (360.0 / nlon)
    ds = xr.Dataset(coords={"time": t, "level": [500.0, 850.0], "latitude": lat, "longitude": lon})
    ds["temperature"] = (
        ("time", "level", "latitude", "longitude"),
        (250 + 10 * rng.standard_normal((n_times, 2, nlat, nlon))).astype("float32"),
        {"units": "K"},
    )
    ds["surface_pressure"] = (
        ("time", "latitude", "longitude"),
        (1e5 + 1e3 * rng.standard_normal((n_times, nlat, nlon))).astype("float32"),
        {"units": "Pa"},
    )
    return ds


def _peak_bytes(fn, *args, **kwargs) -> int:
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="synchronous"):
            fn(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- normalization_stats -----------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("chunks", [{"time": 1}, {"time": 7, "latitude": 8}])
def test_stats_dask_matches_in_memory(weighted, chunks):
    ds = _record(120, 16, 32)
    ds["i16"] = (ds.surface_pressure - 1e5).astype("int16")
    eager = stats_mod.normalization_stats(ds, weighted=weighted)
    lazy = stats_mod.normalization_stats(ds.chunk(chunks), weighted=weighted)
    assert list(lazy.data_vars) == list(eager.data_vars) and lazy.attrs == eager.attrs
    xr.testing.assert_allclose(lazy, eager, rtol=1e-12, atol=0)
    assert all(lazy[v].dims == eager[v].dims for v in eager.data_vars)


def test_stats_dask_nan_propagates():
    ds = _record(20, 8, 16)
    ds["temperature"] = ds.temperature.copy()
    ds["temperature"][3, 0, 0, 0] = np.nan
    lazy = stats_mod.normalization_stats(ds.chunk({"time": 1}))
    eager = stats_mod.normalization_stats(ds)
    np.testing.assert_array_equal(np.isnan(lazy.temperature), np.isnan(eager.temperature))


@pytest.mark.parametrize("weighted", [False, True])
def test_stats_dask_memory_bounded(monkeypatch, weighted):
    """Streamed in time blocks: the peak does not hold the record (the old code held a
    float64 copy of it until the global mean was done, weighted)."""
    monkeypatch.setattr(stats_mod, "_BLOCK_BYTES", 256 * 1024, raising=False)
    ds = _record(800).chunk({"time": 4})  # 20 MB of float32, 40 MB as float64
    peak = _peak_bytes(stats_mod.normalization_stats, ds, weighted=weighted)
    # measured: ~9 MB (mostly the task graph) against 30 MB / 69 MB before
    assert peak < 0.6 * ds.nbytes, (peak, ds.nbytes)


# --- regrid -----------------------------------------------------------------------------


def test_regrid_dask_keeps_dtype_and_merges_time_chunks():
    ds = _record(48, 32, 64)
    ds["total_precipitation_6hr"] = (ds.surface_pressure * 0 + 1e-3).assign_attrs(units="m")
    lazy = regrid_mod.regrid(ds.chunk({"time": 1}), "T21")
    eager = regrid_mod.regrid(ds, "T21")
    done = lazy.compute()
    for v in eager.data_vars:
        assert eager[v].dtype == np.float32
        assert lazy[v].chunks is not None
        assert done[v].dtype == np.float32, v  # computed, not only declared
        assert len(lazy[v].chunks[0]) < 48  # one-time chunks merged into blocks
        np.testing.assert_allclose(done[v].values, eager[v].values, rtol=2**-23, atol=0)
        assert lazy[v].dims == eager[v].dims and lazy[v].attrs == eager[v].attrs


def test_regrid_task_count_sublinear(monkeypatch):
    """Tasks per time step fall as the record grows (blocks, not one time per chunk)."""
    ds = _record(256, 32, 64)

    def tasks(n):
        out = regrid_mod.regrid(ds.isel(time=slice(0, n)).chunk({"time": 1}), "T21")
        return len(out.temperature.data.__dask_graph__())

    small, large = tasks(32), tasks(256)
    # the input's one-time chunks remain; the regridding itself is per block
    assert large < 8 * small * 0.6, (small, large)


# --- write_netcdf -----------------------------------------------------------------------


def test_write_netcdf_lazy_chunks_one_time_step(tmp_path):
    netCDF4 = pytest.importorskip("netCDF4")
    ds = _record(30, 8, 16)
    eager = writers_mod.write_netcdf(ds, tmp_path / "eager.nc")
    lazy = writers_mod.write_netcdf(ds.chunk({"time": 1}), tmp_path / "lazy.nc")
    with netCDF4.Dataset(lazy) as f:
        assert f["temperature"].chunking() == [1, 2, 8, 16]
        assert f["surface_pressure"].chunking() == [1, 8, 16]
    with xr.open_dataset(eager) as a, xr.open_dataset(lazy) as b:
        for v in ds.data_vars:
            np.testing.assert_array_equal(a[v].values, b[v].values)
            assert a[v].attrs == b[v].attrs


# --- campaign data fingerprint ----------------------------------------------------------


def _old_fingerprint(ds, times=None):
    """The digest as campaign stores have recorded it (all at once)."""
    part = ds if times is None else ds.sel(time=times)
    digest = hashlib.sha256()
    for name in sorted(map(str, part.data_vars)):
        values = np.asarray(part[name].values)
        digest.update(name.encode())
        if values.dtype.kind in "biuf":
            digest.update(np.ascontiguousarray(values, dtype="float64").tobytes())
        else:
            digest.update("\x00".join(map(str, values.ravel())).encode())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("batch", [32 * 2**20, 20_000, 600])
def test_fingerprint_same_digest_in_batches(monkeypatch, batch):
    monkeypatch.setattr(campaigns, "_FINGERPRINT_BATCH_BYTES", batch, raising=False)
    ds = _record(40, 4, 8)
    ds["flag"] = ds.surface_pressure > 1e5
    ds["stamp"] = ("time", ds.time.values + np.timedelta64(1, "h"))
    ds["label"] = ("time", np.array([f"s{i}" for i in range(40)], dtype=object))
    ds["const"] = 3.5
    t0 = ds.time.values[[1, 4, 9, 30, 31]]
    for data in (ds, ds.transpose("latitude", "time", ...), ds.chunk({"time": 3, "latitude": 2})):
        assert campaigns._data_fingerprint(data, t0) == _old_fingerprint(data, t0)
        assert campaigns._data_fingerprint(data) == _old_fingerprint(data)
        assert campaigns._data_fingerprint(data, t0[2]) == _old_fingerprint(data, t0[2])


@pytest.mark.parametrize("lazy", [False, True])
def test_fingerprint_memory_bounded(monkeypatch, lazy):
    monkeypatch.setattr(campaigns, "_FINGERPRINT_BATCH_BYTES", 256 * 1024, raising=False)
    ds = _record(400)
    if lazy:
        ds = ds.chunk({"time": 1})
    t0 = ds.time.values[1::2]
    peak = _peak_bytes(campaigns._data_fingerprint, ds, t0)
    assert peak < 0.2 * ds.nbytes, (peak, ds.nbytes)
