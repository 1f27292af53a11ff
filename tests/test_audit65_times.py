"""Audit 65 (time axes, calendars, grid orientation): the findings fixed, one test each.

* a climatology of a forecast with a lead dim (keyed by initial time) is refused, and so is
  such a climatology given to ACC;
* the climatology blend takes a DataArray climatology by its labels;
* tracer-anomaly samples line up with their states whatever the Dataset's order;
* valid times past 2262-04-11 are refused (they wrapped to 1677);
* hourly accumulations stored out of time order are read;
* a threshold or a climatology short of valid times is named, not the truth;
* a forecast with a lead dim given where states are expected is refused in xfuxi's words;
* times marked UTC are read; the hint for cftime dates past 2262 works.
"""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from xfuxi.data.schema import SchemaError, parse_times, validate
from xfuxi.verify.weights import valid_time

from . import tiny, tiny_da

# --- 1. climatology of a forecast of several leads ---


@pytest.fixture(scope="module")
def fc6():
    return xfuxi.forecast(tiny.dataset(10), model=tiny.model(), steps=1, progress=False)


def test_climatology_refuses_a_lead_dim(fc6):
    with pytest.raises(ValueError, match="lead dim 'prediction_timedelta'.*valid time"):
        xfuxi.climatology(fc6)
    with pytest.raises(ValueError, match="lead dim 'prediction_timedelta'"):
        xfuxi.climatology(fc6.temperature)


def test_climatology_of_one_lead_still_by_valid_time(fc6):
    one = xfuxi.climatology(fc6.isel(prediction_timedelta=0))
    states = fc6.isel(prediction_timedelta=0)
    by_hand = states.temperature.assign_coords(time=states.time + np.timedelta64(6, "h"))
    want = by_hand.groupby("time.hour").mean("time")
    np.testing.assert_allclose(one.temperature.values, want.values)


def test_acc_refuses_a_climatology_with_a_lead_dim(fc6):
    tr = tiny.dataset(12)
    ok = xfuxi.climatology(fc6.isel(prediction_timedelta=0))
    assert np.isfinite(xfuxi.acc(fc6, tr, ok).temperature.item())
    # a climatology keyed by initial hour, as climatology() made it of the whole forecast
    by_init = fc6.groupby("time.hour").mean("time")
    with pytest.raises(ValueError, match="lead dim 'prediction_timedelta'"):
        xfuxi.acc(fc6, tr, by_init)
    with pytest.raises(ValueError, match="lead dim"):
        xfuxi.data.stats.select_climatology(by_init.temperature, valid_time(fc6))


# --- 2. the climatology blend takes a DataArray by its labels ---

_LAT = np.linspace(-87.5, 87.5, 36)
_LON = np.arange(72) * 5.0


def _clim_da():
    values = (250 + 30 * np.sin(np.deg2rad(_LAT)))[None, :, None] * np.ones((1, 36, 72))
    values = values + np.cos(np.deg2rad(_LON))[None, None, :]
    return xr.DataArray(
        values,
        dims=("channel", "latitude", "longitude"),
        coords={"latitude": _LAT, "longitude": _LON},
    )


def test_blend_climatology_dataarray_by_labels():
    from xfuxi import ClimatologyBlendMethod, LETKFMethod

    grid = type("Grid", (), {"latitude": _LAT, "longitude": _LON})
    c = _clim_da()
    x = torch.as_tensor(c.values + np.random.default_rng(0).normal(0, 1, (1, 36, 72)))
    kw = dict(factors=[[0.5, 0.5, 0.5]], bands=(5, 10, 21))
    want = ClimatologyBlendMethod(LETKFMethod(), climatology=c.values, **kw).blend(x, grid)
    flipped = c.isel(latitude=slice(None, None, -1))
    east_west = c.assign_coords(longitude=((c.longitude + 180) % 360) - 180).sortby("longitude")
    transposed = c.transpose("latitude", "longitude", "channel")
    for other in (c, flipped, east_west, transposed):
        got = ClimatologyBlendMethod(LETKFMethod(), climatology=other, **kw).blend(x, grid)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    method = ClimatologyBlendMethod(LETKFMethod(), climatology=flipped, **kw)
    other_grid = type("Grid", (), {"latitude": _LAT + 1.0, "longitude": _LON})
    with pytest.raises(ValueError, match="latitude"):
        method.blend(x, other_grid)
    with pytest.raises(TypeError, match="climatology_tensor"):
        ClimatologyBlendMethod(LETKFMethod(), climatology=c.to_dataset(name="t"), **kw)


def test_fit_climatology_blend_dataarrays_by_labels():
    from xfuxi.assimilation.climatology_blend import fit_climatology_blend

    rng = np.random.default_rng(1)
    c = _clim_da()
    t = c.values[None] + rng.normal(size=(3, 1, 36, 72))
    a = c.values[None] + 0.5 * (t - c.values[None]) + 0.1 * rng.normal(size=t.shape)
    kw = dict(latitude=_LAT, longitude=_LON, weights=np.cos(np.deg2rad(_LAT)), bands=(5, 10))
    want = fit_climatology_blend(a, t, c.values, **kw)
    times = pd.date_range("2001-01-01", periods=3, freq="6h")

    def labelled(v):
        return xr.DataArray(
            v,
            dims=("time", "channel", "latitude", "longitude"),
            coords={"time": times, "latitude": _LAT, "longitude": _LON},
        )

    flip = {"latitude": slice(None, None, -1)}
    got = fit_climatology_blend(
        labelled(a).isel(flip),
        labelled(t).isel(time=[2, 0, 1]).isel(flip),
        c.isel(flip),
        **{**kw, "weights": xr.DataArray(kw["weights"], dims="latitude",
                                         coords={"latitude": _LAT}).isel(flip)},
    )  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-12)


# --- 3. tracer-anomaly samples ---


def _anomaly_dataset():
    ds = tiny_da.truth(6)
    for v, u in [("temperature", "K"), ("passive_tracer", "1"), ("surface_pressure", "Pa")]:
        ds[v].attrs["units"] = u
    lat, lon, lev = ds.latitude.values, ds.longitude.values, ds.level.values
    anom = np.random.default_rng(0).normal(size=(2, 2, 3, lev.size, lat.size, lon.size))
    anom = anom * 0.001
    anom[..., lat > 0, :] += 0.05
    dims = ("window", "member", "offset", "level", "latitude", "longitude")
    ds["passive_tracer_anomaly"] = xr.DataArray(
        anom,
        dims=dims,
        coords={"window": ds.time.values[[1, 3]], "member": [0, 1], "offset": [0, 1, 2],
                "level": lev, "latitude": lat, "longitude": lon},
    )  # fmt: skip
    return ds


def test_anomaly_samples_any_order():
    from xfuxi.training.anomalies import AnomalySamples

    ds = _anomaly_dataset()
    m = tiny_da.forecast_model()
    cpu = torch.device("cpu")
    a = AnomalySamples(ds, m, cpu)
    for other in (
        ds.isel(latitude=slice(None, None, -1)),
        ds.isel(time=[5, 4, 3, 2, 1, 0]),
        ds.isel(time=[3, 0, 5, 1, 4, 2], latitude=slice(None, None, -1)),
    ):
        b = AnomalySamples(other, m, cpu)
        assert torch.equal(a.anomaly, b.anomaly)
        assert torch.equal(a.base[torch.as_tensor(a.times)], b.base[torch.as_tensor(b.times)])
        assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.windows, b.windows)


# --- 4. valid times past 2262-04-11 ---


def _doy_clim():
    return xr.DataArray(
        np.arange(1, 367, dtype=float)[:, None, None, None] * np.ones((1, 4, 2, 4)),
        dims=("dayofyear", "hour", "latitude", "longitude"),
        coords={"dayofyear": np.arange(1, 367), "hour": [0, 6, 12, 18],
                "latitude": [-45.0, 45.0], "longitude": [0.0, 90.0, 180.0, 270.0]},
        name="temperature", attrs={"units": "K"},
    )  # fmt: skip


def test_climatology_forecast_refuses_valid_times_past_2262():
    clim = _doy_clim()
    ok = xfuxi.climatology_forecast(clim, init_times=["2262-04-09T00"], leads=["24h", "48h"])
    assert ok.isel(time=0, latitude=0, longitude=0).values.tolist() == [100.0, 101.0]
    with pytest.raises(ValueError, match="past 2262-04-11.*datetime64"):
        xfuxi.climatology_forecast(clim, init_times=["2262-04-09T00"], leads=["24h", "72h"])


def test_forecast_and_valid_time_refuse_past_2262():
    ds = tiny.dataset(2).assign_coords(time=pd.date_range("2262-04-10T00", periods=2, freq="6h"))
    with pytest.raises(ValueError, match="past 2262-04-11"):
        xfuxi.forecast(ds, model=tiny.model(), steps=8, progress=False)
    fc = xr.Dataset(
        coords={"time": pd.to_datetime(["2262-04-10"]),
                "prediction_timedelta": pd.to_timedelta([24, 48], "h")}
    )  # fmt: skip
    with pytest.raises(ValueError, match="past 2262-04-11"):
        valid_time(fc)
    one = fc.isel(prediction_timedelta=0)  # a scalar lead, valid within the range
    assert str(valid_time(one).values.ravel()[0])[:10] == "2262-04-11"
    with pytest.raises(ValueError, match="past 2262-04-11"):
        xfuxi.persistence_forecast(ds, leads=[48])


def test_states_at_valid_times_refuses_past_2262():
    ds = tiny.dataset(2).assign_coords(time=pd.date_range("2262-04-10T00", periods=2, freq="6h"))
    states = ds.assign_coords(prediction_timedelta=np.timedelta64(48, "h"))
    with pytest.raises(SchemaError, match="past 2262-04-11"):
        xfuxi.data.schema.states_at_valid_times(states)
    with pytest.raises(ValueError, match="past 2262-04-11"):
        xfuxi.climatology(states)


# --- 6. hourly accumulations out of time order ---


def test_from_era5_reads_unsorted_hourly_accumulations():
    t = pd.date_range("2001-01-01T00", periods=13, freq="1h")
    tp = np.arange(13.0)[:, None, None] * np.ones((13, 3, 4)) * 1e-4

    def era5(order):
        return xr.Dataset(
            {"tp": (("valid_time", "latitude", "longitude"), tp[order], {"units": "m"})},
            coords={"valid_time": t[order], "latitude": [90.0, 0.0, -90.0],
                    "longitude": [0.0, 90.0, 180.0, 270.0]},
        )  # fmt: skip

    want = xfuxi.from_era5(era5(np.arange(13)))
    shuffled = np.random.default_rng(0).permutation(13)
    for order in (np.arange(13)[::-1], shuffled):
        given = era5(order)
        copy = given.copy(deep=True)
        got = xfuxi.from_era5(given)
        xr.testing.assert_identical(got, want)
        xr.testing.assert_identical(given, copy)  # not mutated


# --- 7. the object short of valid times is named ---


def _prob_pair():
    rng = np.random.default_rng(0)
    lat = np.linspace(-60, 60, 5)
    lon = np.arange(0, 360, 60.0)
    t = pd.date_range("2001-01-01", periods=8, freq="6h")
    lead = pd.to_timedelta([6, 12], "h")
    fc = xr.DataArray(
        250 + rng.normal(size=(3, 2, 5, 6)),
        dims=("time", "prediction_timedelta", "latitude", "longitude"),
        coords={"time": t[:3], "prediction_timedelta": lead, "latitude": lat, "longitude": lon},
        name="temperature", attrs={"units": "K"},
    )  # fmt: skip
    tr = xr.DataArray(
        250 + rng.normal(size=(8, 5, 6)),
        dims=("time", "latitude", "longitude"),
        coords={"time": t, "latitude": lat, "longitude": lon},
        name="temperature", attrs={"units": "K"},
    )  # fmt: skip
    return fc, tr


def test_acc_names_a_climatology_short_of_valid_times():
    fc, tr = _prob_pair()
    clim = tr.isel(time=slice(0, 3)) * 0 + 250.0
    with pytest.raises(ValueError, match="^climatology lacks 2 valid time"):
        xfuxi.acc(fc, tr, clim)
    from xfuxi.verify.weights import align_valid_time

    with pytest.raises(ValueError, match="^threshold lacks 2 valid time"):
        align_valid_time(fc, clim, name="threshold")
    with pytest.raises(ValueError, match="^truth lacks"):  # the default, as before
        align_valid_time(fc, clim)


# --- 8. a forecast of several leads where states are expected ---


def test_lead_dim_refused_where_states_are_expected(fc6):
    with pytest.raises(SchemaError, match="persistence_forecast.*several leads"):
        xfuxi.persistence_forecast(fc6, leads=[6])
    calls = {
        "radiosonde": lambda: xfuxi.radiosonde_observations(
            fc6, error=0.5, n_sites=3, variables=["temperature"], seed=0
        ),
        "random": lambda: xfuxi.random_observations(
            fc6, n=3, variables=["temperature"], error=0.5, seed=0
        ),
        "single": lambda: xfuxi.single_observation(
            fc6, variable="temperature", latitude=10.0, longitude=20.0,
            time=fc6.time.values[0], error=0.5, level=500.0,
        ),
    }  # fmt: skip
    for call in calls.values():
        with pytest.raises(SchemaError, match="truth must be states on 'time'.*several leads"):
            call()


# --- 9. times marked UTC; cftime dates past 2262 ---


def test_times_marked_utc_are_read():
    ds = tiny.dataset(4)
    m = tiny.model()
    want = xfuxi.forecast(ds, model=m, steps=1, progress=False, init_times=["2001-03-01T06"])
    t0 = pd.Timestamp(want.time.values[0])
    naive = t0.strftime("%Y-%m-%dT%H:%M")
    for it in ([naive + "Z"], [naive + "+00:00"], pd.DatetimeIndex([t0]).tz_localize("UTC")):
        got = xfuxi.forecast(ds, model=m, steps=1, progress=False, init_times=it)
        xr.testing.assert_identical(got.assign_attrs(created=""), want.assign_attrs(created=""))
    pers = xfuxi.persistence_forecast(ds, leads=[6], init_times=[naive + "Z"])
    assert pers.time.values[0] == t0.to_datetime64()
    assert parse_times(pd.Timestamp(naive, tz="UTC"), "t")[0] == t0
    # other zones are still refused, named
    with pytest.raises(SchemaError, match=r"time zone \(UTC\+01:00\).*as UTC"):
        parse_times(["2001-01-01T07:00+01:00"], "init_times")
    with pytest.raises(SchemaError, match="Europe/Paris"):
        parse_times(pd.DatetimeIndex([t0]).tz_localize("Europe/Paris"), "init_times")
    with pytest.raises(SchemaError, match="Europe/London"):
        parse_times(pd.DatetimeIndex([t0]).tz_localize("Europe/London"), "init_times")
    # a DataArray of times marked UTC, as parse_times takes it
    utc = xr.DataArray(pd.DatetimeIndex([t0]).tz_localize("UTC"), dims="time")
    assert parse_times(utc, "valid_times")[0] == t0


@pytest.mark.parametrize("calendar", ["noleap", "360_day", "standard"])
def test_cftime_past_2262_hint_works(calendar):
    ds = tiny.dataset(4)
    d = ds.assign_coords(
        time=xr.date_range("2300-03-01", periods=4, freq="6h", calendar=calendar, use_cftime=True)
    )
    with pytest.raises(SchemaError) as err:
        validate(d)
    msg = str(err.value)
    code = msg[msg.index("ds.assign_coords") :].rstrip(".")
    fixed = eval(code, {"ds": d, "datetime": datetime, "np": np})  # the hint, as given
    assert fixed["time"].dtype.kind == "M"
    assert validate(fixed).sizes["time"] == 4
