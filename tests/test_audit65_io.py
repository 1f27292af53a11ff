"""Audit 65 (lazy data, metadata): balance diagnostics of lazy data in one pass, a cheap
geopotential unit check, a lazy ERA5/ERA5T combination, the WeatherBench2 labels of a
forecast's time, and scores in their own units written to netCDF."""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from dask.callbacks import Callback

import xfuxi
from xfuxi.data.readers import from_era5, from_weatherbench2
from xfuxi.data.schema import SchemaError, validate
from xfuxi.data.writers import to_weatherbench2_layout, write_netcdf, write_weatherbench2
from xfuxi.verify.balance import balance_summary, geostrophic_wind
from xfuxi.verify.weights import area_weights

LAT = np.linspace(-84.375, 84.375, 16)
LON = np.arange(32) * 11.25
DIMS = ("time", "level", "latitude", "longitude")


class _Counted:
    """Dask-backed fields on (time, level, latitude, longitude), one time per chunk, that
    count the chunks read (thread-safe)."""

    def __init__(self) -> None:
        self.reads: list[int] = []
        self.lock = threading.Lock()

    def field(self, nt: int, base: float, amp: float, seed: int, name: str) -> da.Array:
        def block(block_info=None):
            info = block_info[None]
            i = info["array-location"][0][0]
            with self.lock:
                self.reads.append(i)
            rng = np.random.default_rng(seed * 100_003 + i)
            return base + amp * rng.standard_normal(info["chunk-shape"])

        return da.map_blocks(
            block, chunks=((1,) * nt, (2,), (LAT.size,), (LON.size,)), dtype="float64", name=name
        )


def _lazy_state(nt: int, counted: _Counted, *, z_units: bool = True) -> xr.Dataset:
    z_attrs = {"units": "m**2 s**-2"} if z_units else {}
    return xr.Dataset(
        {
            "geopotential": (DIMS, counted.field(nt, 5.5e4, 300.0, 1, "src-z"), z_attrs),
            "u_component_of_wind": (DIMS, counted.field(nt, 5.0, 10.0, 2, "src-u")),
            "v_component_of_wind": (DIMS, counted.field(nt, 0.0, 10.0, 3, "src-v")),
        },
        coords={
            "time": pd.date_range("2020", periods=nt, freq="6h"),
            "level": [500, 850],
            "latitude": LAT,
            "longitude": LON,
        },
    )


class _HeldBytes(Callback):
    """The most bytes of arrays that the synchronous scheduler holds at once."""

    def __init__(self) -> None:
        super().__init__()
        self.most = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        held = sum(v.nbytes for v in state["cache"].values() if isinstance(v, np.ndarray))
        self.most = max(self.most, held)


# --- balance_summary: one pass over lazy data (finding 2) ---------------------------------


def test_balance_summary_of_lazy_data_holds_a_few_chunks_not_the_record():
    nt = 48
    ds = _lazy_state(nt, _Counted())
    summary = balance_summary(ds)
    with _HeldBytes() as held:
        summary.compute(scheduler="sync")
    # the centred correlation held every chunk of the winds and the geostrophic wind
    # (about 3x the input) until the means over all times were known
    assert held.most < 0.2 * ds.nbytes, (held.most, ds.nbytes)


def test_balance_summary_single_pass_equals_the_centred_correlation():
    rng = np.random.default_rng(7)
    counted = _Counted()
    ds = _lazy_state(6, counted).compute()
    # a balanced flow with a mean: the raw moments must not lose the correlation near 1
    g = geostrophic_wind(ds)
    for c, factor in (("u", 1.1), ("v", 1.0)):  # a mean of 25 m/s over a std of about 3
        noise = 0.2 * rng.standard_normal(g[f"{c}_component_of_geostrophic_wind"].shape)
        wind = factor * g[f"{c}_component_of_geostrophic_wind"].fillna(0) + 25 + noise
        ds[f"{c}_component_of_wind"] = wind.assign_attrs(units="m s**-1")
    ds["u_component_of_wind"][0, 0, 3:5, 4:9] = np.nan  # NaN left out
    for keep in (("level",), ("level", "time")):
        got = balance_summary(ds, keep=keep)
        lazy = balance_summary(ds.chunk(time=1), keep=keep).compute()
        # the two-pass centred formula, for reference
        for name, (lo, hi) in {"n": (20.0, 90.0), "s": (-90.0, -20.0)}.items():
            gw = geostrophic_wind(ds)
            x = xr.concat([ds["u_component_of_wind"], ds["v_component_of_wind"]], "component")
            y = xr.concat(
                [gw["u_component_of_geostrophic_wind"], gw["v_component_of_geostrophic_wind"]],
                "component",
            )
            ok = x.notnull().all("component") & y.notnull().all("component")
            inside = (ds.latitude >= lo) & (ds.latitude <= hi)
            x, y = x.where(ok).sel(latitude=inside), y.where(ok).sel(latitude=inside)
            w = area_weights(ds["latitude"]).sel(latitude=inside)
            dims = [d for d in x.dims if d not in keep]

            def wm(a, w=w, dims=dims):
                return a.weighted(w).mean(dims)

            xm, ym = wm(x), wm(y)
            corr = wm((x - xm) * (y - ym)) / np.sqrt(wm((x - xm) ** 2) * wm((y - ym) ** 2))
            band = "northern_extratropics" if name == "n" else "southern_extratropics"
            for out in (got, lazy):
                np.testing.assert_allclose(
                    out["correlation"].sel(band=band).transpose(*corr.dims).values,
                    corr.values,
                    rtol=1e-10,
                )
        assert float(got["correlation"].min()) > 0.9
        xr.testing.assert_allclose(got, lazy, rtol=1e-12)


# --- the geopotential unit check of lazy data (finding 4) ---------------------------------


def test_lazy_geopotential_without_units_is_checked_on_one_chunk():
    counted = _Counted()
    ds = _lazy_state(50, counted, z_units=False)
    g = geostrophic_wind(ds)
    assert len(counted.reads) <= 1  # the whole 500 hPa level was read: 50 chunks
    summary = balance_summary(ds)
    assert len(counted.reads) <= 4  # (its geostrophic wind checks again: the same chunk)
    counted.reads.clear()
    g.compute()
    assert sorted(counted.reads) == list(range(50))  # each chunk once
    assert summary["correlation"].chunks is not None


def _lazy_heights(first_nan: bool) -> xr.Dataset:
    counted = _Counted()
    ds = _lazy_state(6, counted, z_units=False)
    heights = ds["geopotential"] / 9.80665  # about 5600 m: heights in metres
    if first_nan:  # the first field tells nothing: the whole level decides
        heights = heights.where(heights["time"] != heights["time"][0])
    return ds.assign(geopotential=heights)


@pytest.mark.parametrize("first_nan", [False, True])
def test_lazy_heights_without_units_are_still_refused(first_nan):
    ds = _lazy_heights(first_nan)
    with pytest.raises(ValueError, match="geopotential height in m"):
        geostrophic_wind(ds)
    with pytest.raises(ValueError, match="geopotential height in m"):
        geostrophic_wind(ds.compute())


def test_lazy_geopotential_whose_first_field_looks_like_heights_is_judged_on_all():
    # the first field alone would be refused; the mean over every time, as in memory, not
    counted = _Counted()
    ds = _lazy_state(8, counted, z_units=False)
    z = ds["geopotential"]
    z = xr.where(z["time"] == z["time"][0], z / 9.80665, z).assign_attrs(z.attrs)
    ds = ds.assign(geopotential=z.transpose(*DIMS))
    eager = geostrophic_wind(ds.compute())
    xr.testing.assert_allclose(geostrophic_wind(ds).compute(), eager)


# --- from_era5 of the old CDS layout stays lazy (finding 5) -------------------------------


def _old_cds(path, *, masked_sample: bool = False, packed: bool = False):
    t = pd.date_range("2024-05-01", periods=8, freq="6h")
    lat, lon = np.linspace(90, -90, 32), np.arange(64) * 5.625
    x = 260 + np.random.default_rng(0).standard_normal((2, 8, 32, 64)).astype("float32")
    x[0, 6:] = np.nan  # ERA5 (expver 1) up to the 7th time, ERA5T (expver 5) after
    x[1, :6] = np.nan
    if masked_sample:  # NaN at every point of the sample (a field NaN over land)
        x[:, :, ::4, ::8] = np.nan
    ds = xr.Dataset(
        {"t2m": (("expver", "time", "latitude", "longitude"), x, {"units": "K"})},
        coords={"expver": [1, 5], "time": t, "latitude": lat, "longitude": lon},
    )
    if packed:  # as the CDS wrote them: int16 with a scale factor, netCDF3
        pack = {"dtype": "int16", "scale_factor": 0.001, "add_offset": 260.0, "_FillValue": -32767}
        ds.to_netcdf(path, format="NETCDF3_64BIT", encoding={"t2m": pack})
    else:
        ds.to_netcdf(path)
    return ds


@pytest.mark.parametrize("packed", [False, True])
def test_from_era5_old_layout_reads_a_sample_while_opening(tmp_path, monkeypatch, packed):
    from xarray.backends import netCDF4_

    _old_cds(tmp_path / "old.nc", packed=packed)
    read: list[int] = []  # the values of t2m read from the file, read by read
    getitem = netCDF4_.NetCDF4ArrayWrapper._getitem

    def spy(self, key):
        out = getitem(self, key)
        if self.variable_name == "t2m":
            read.append(int(np.size(out)))
        return out

    monkeypatch.setattr(netCDF4_.NetCDF4ArrayWrapper, "_getitem", spy)
    ds = from_era5(tmp_path / "old.nc")
    # the whole variable (2 x 8 x 32 x 64 values) was read to name the ERA5T times
    assert sum(read) <= 2 * 8 * 8 * 8, read
    assert ds["2m_temperature"].chunks is not None
    read.clear()
    ds.load()  # (the spy sees the reads)
    assert sum(read) == 2 * 8 * 32 * 64
    assert ds["2m_temperature"].dtype == np.float32
    note = ds.attrs["expver"]
    assert note.startswith("ERA5 (expver 0001) where present, else ERA5T (expver 0005)")
    assert "used at 2 time(s) from 2024-05-02T12:00 to 2024-05-02T18:00" in note
    assert int(ds["2m_temperature"].isnull().sum()) == 0


def test_from_era5_old_layout_sample_all_nan_falls_back_to_every_value(tmp_path):
    raw = _old_cds(tmp_path / "old.nc", masked_sample=True)
    ds = from_era5(tmp_path / "old.nc")
    assert "used at 2 time(s) from 2024-05-02T12:00 to 2024-05-02T18:00" in ds.attrs["expver"]
    want = raw["t2m"].max("expver").isel(latitude=slice(None, None, -1))
    np.testing.assert_array_equal(ds["2m_temperature"].values, want.values)


# --- WeatherBench2 labels of a forecast's time (finding 6) --------------------------------


def _forecast(time_attrs=None) -> xr.Dataset:
    return xr.Dataset(
        {
            "temperature": (
                ("time", "prediction_timedelta", "latitude", "longitude"),
                np.full((2, 2, 4, 8), 260.0),
                {"units": "K"},
            )
        },
        coords={
            "time": ("time", pd.date_range("2020-01-01", periods=2, freq="12h"), time_attrs),
            "prediction_timedelta": pd.to_timedelta([6, 12], "h"),
            "latitude": np.linspace(-67.5, 67.5, 4),
            "longitude": np.arange(8) * 45.0,
        },
    )


@pytest.mark.parametrize("stale", [None, {"standard_name": "time", "long_name": "time"}])
def test_weatherbench2_forecast_time_is_the_forecast_reference_time(tmp_path, stale):
    fc = _forecast(stale)
    store = write_weatherbench2(fc, tmp_path / "fc.zarr")
    z = xr.open_zarr(store)
    assert z["time"].attrs["standard_name"] == "forecast_reference_time"
    assert z["time"].attrs["long_name"] == "initial time of the forecast"
    assert z["prediction_timedelta"].attrs["standard_name"] == "forecast_period"
    assert "valid_time" not in z.variables  # WeatherBench2's layout
    assert fc["time"].attrs == (stale or {})  # the input is not modified
    back = from_weatherbench2(store)
    xr.testing.assert_identical(back["temperature"].reset_coords(drop=True).compute(),
                                z["temperature"].reset_coords(drop=True).compute())  # fmt: skip
    # and the netCDF of the store's data: the same labels, with the valid time
    write_netcdf(back, tmp_path / "fc.nc")
    with xr.open_dataset(tmp_path / "fc.nc") as nc:
        assert nc["time"].attrs["standard_name"] == "forecast_reference_time"
        assert nc["valid_time"].attrs["standard_name"] == "time"
    # one lead selected: still a forecast, time still its initial time
    one = to_weatherbench2_layout(fc.sel(prediction_timedelta="6h"))
    assert one["time"].attrs["standard_name"] == "forecast_reference_time"


def test_weatherbench2_analysis_time_is_still_the_time(tmp_path):
    an = _forecast().isel(prediction_timedelta=0, drop=True)
    out = to_weatherbench2_layout(an)
    assert out["time"].attrs == {"long_name": "time", "standard_name": "time"}
    store = write_weatherbench2(an, tmp_path / "an.zarr")
    assert xr.open_zarr(store)["time"].attrs["standard_name"] == "time"


def test_campaign_store_template_labels_the_initial_time():
    from xfuxi.campaigns import _weatherbench2

    fc = _forecast().assign(done=("time", np.zeros(2, dtype=bool)))
    out = _weatherbench2(fc)
    # (the template's ``done`` put back the template's own time attributes: none)
    assert out["time"].attrs["standard_name"] == "forecast_reference_time"
    assert out["done"].dims == ("time",) and not out["done"].any()
    assert out["prediction_timedelta"].attrs["standard_name"] == "forecast_period"
    assert "done" in out


# --- scores in their own units to netCDF (finding 7) --------------------------------------


def _pair():
    rng = np.random.default_rng(0)
    t = pd.date_range("2020-01-01", periods=4, freq="6h")

    def ds(x):
        return xr.Dataset(
            {"temperature": (("time", "latitude", "longitude"), x, {"units": "K"})},
            coords={"time": t, "latitude": np.linspace(-67.5, 67.5, 4), "longitude": LON[:8] * 4},
        )

    return ds(260 + rng.standard_normal((4, 4, 8))), ds(260 + rng.standard_normal((4, 4, 8)))


@pytest.mark.parametrize("metric", ["mse", "debiased_ensemble_mean_mse", "ensemble_ignorance"])
def test_write_netcdf_writes_scores_in_their_own_units(tmp_path, metric):
    fc, truth = _pair()
    ens = xr.concat([fc + 0.1 * i for i in range(4)], "number")
    score = {
        "mse": lambda: xfuxi.mse(fc, truth),
        "debiased_ensemble_mean_mse": lambda: xfuxi.debiased_ensemble_mean_mse(ens, truth),
        "ensemble_ignorance": lambda: xfuxi.ensemble_ignorance(ens, truth),
    }[metric]()
    units = score["temperature"].attrs["units"]
    assert units in ("K**2", "nat")
    path = write_netcdf(score, tmp_path / f"{metric}.nc")
    with xr.open_dataset(path) as back:
        assert back["temperature"].attrs["units"] == units
        assert back["temperature"].attrs["metric"] == metric
        np.testing.assert_allclose(back["temperature"].values, score["temperature"].values)
    assert "standard_name" not in score["temperature"].attrs  # the input is not modified


def test_a_field_in_wrong_units_is_still_refused(tmp_path):
    fc, _ = _pair()
    wrong = fc.assign(temperature=fc["temperature"].assign_attrs(units="K**2"))
    with pytest.raises(SchemaError, match="has units 'K\\*\\*2'; expected 'K'"):
        write_netcdf(wrong, tmp_path / "wrong.nc")
    with pytest.raises(SchemaError, match="expected 'K'"):
        validate(wrong)
    assert not (tmp_path / "wrong.nc").exists()
    # the same units with a metric: a score of the field
    score = wrong.assign(temperature=wrong["temperature"].assign_attrs(metric="mse"))
    assert validate(score)["temperature"].attrs["units"] == "K**2"
    per_dataset = wrong.assign_attrs(metric="mse")
    assert validate(per_dataset)["temperature"].attrs["units"] == "K**2"
