"""Tests of xfuxi.forecasting.baselines: persistence and climatology forecasts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from xfuxi.data.stats import climatology
from xfuxi.forecasting.baselines import climatology_forecast, persistence_forecast

LAT = np.array([-45.0, 0.0, 45.0])
LON = np.array([0.0, 120.0, 240.0])


def make_ds(n_time=20, start="2000-01-01"):
    rng = np.random.default_rng(1)
    t = pd.date_range(start, periods=n_time, freq="6h")
    ds = xr.Dataset(
        {
            "geopotential": (
                ("time", "level", "latitude", "longitude"),
                rng.standard_normal((n_time, 2, 3, 3)),
                {"units": "m**2 s**-2"},
            ),
            "surface_pressure": (
                ("time", "latitude", "longitude"),
                rng.standard_normal((n_time, 3, 3)),
                {"units": "Pa"},
            ),
        },
        coords={"time": t, "level": [500, 850], "latitude": LAT, "longitude": LON},
    )
    ds["level"].attrs["units"] = "hPa"
    return ds


def test_persistence_layout_and_values():
    ds = make_ds()
    inits = ds.time.values[[2, 5, 9]]
    f = persistence_forecast(ds, init_times=inits, leads=["6h", "1D", np.timedelta64(48, "h")])
    assert f.geopotential.dims == (
        "time",
        "prediction_timedelta",
        "level",
        "latitude",
        "longitude",
    )
    assert f.surface_pressure.dims == ("time", "prediction_timedelta", "latitude", "longitude")
    np.testing.assert_array_equal(f.time.values, inits)
    np.testing.assert_array_equal(f.prediction_timedelta, pd.to_timedelta([6, 24, 48], "h"))
    for i, t0 in enumerate(inits):
        for j in range(3):
            np.testing.assert_array_equal(
                f.geopotential.values[i, j], ds.geopotential.sel(time=t0).values
            )
    assert f.attrs["baseline"] == "persistence"
    assert xfuxi.validate(f).identical(f)


def test_persistence_error_grows_and_is_zero_at_lead_zero():
    """Verified against the truth at valid times, error is 0 at lead 0 and grows with lead."""
    ds = make_ds()
    ds = ds.cumsum("time")  # a random walk: persistence error grows like sqrt(lead)
    f = persistence_forecast(ds, init_times=ds.time.values[:8], leads=[0, 6, 24])
    err = []
    for lead in f.prediction_timedelta.values:
        valid = f.time.values + lead
        truth = ds.geopotential.sel(time=valid).values
        err.append(
            float(np.sqrt(((f.geopotential.sel(prediction_timedelta=lead) - truth) ** 2).mean()))
        )
    assert err[0] == 0.0 and err[0] < err[1] < err[2]


def test_persistence_defaults_numbers_and_errors():
    ds = make_ds(n_time=4)
    before = ds.copy(deep=True)
    f = persistence_forecast(ds, leads=[6, 12])
    # a forecast's own lead coordinate (a DataArray) was refused as "not timedeltas"
    again = persistence_forecast(ds, leads=f.prediction_timedelta)
    xr.testing.assert_identical(again, f)
    assert f.sizes["time"] == 4
    np.testing.assert_array_equal(f.prediction_timedelta, pd.to_timedelta([6, 12], "h"))
    xr.testing.assert_identical(ds, before)
    with pytest.raises(ValueError, match="not in the data's time coordinate"):
        persistence_forecast(ds, init_times=["1999-01-01"], leads=[6])
    with pytest.raises(ValueError, match="leads must be"):
        persistence_forecast(ds, leads=["soon"])
    with pytest.raises(ValueError, match="non-negative"):
        persistence_forecast(ds, leads=[-6])
    with pytest.raises(ValueError, match="duplicated"):
        persistence_forecast(ds, leads=[6, "6h"])
    # the accessor delegates
    xr.testing.assert_identical(
        ds.fuxi.persistence_forecast(leads=[6]), persistence_forecast(ds, leads=[6])
    )
    xr.testing.assert_equal(
        ds.geopotential.fuxi.persistence_forecast(leads=[6]),
        persistence_forecast(ds, leads=[6]).geopotential,
    )


def test_climatology_forecast_matches_valid_time_hour():
    ds = make_ds(n_time=40)
    clim = climatology(ds)
    inits = pd.to_datetime(["2001-06-01T00", "2001-06-01T18"])
    f = climatology_forecast(clim, init_times=inits, leads=[0, 6, 12, 30])
    assert f.geopotential.dims == (
        "time",
        "prediction_timedelta",
        "level",
        "latitude",
        "longitude",
    )
    for i, t0 in enumerate(inits):
        for j, lead in enumerate(f.prediction_timedelta.values):
            hour = (t0 + pd.Timedelta(lead)).hour
            np.testing.assert_array_equal(
                f.geopotential.values[i, j], clim.geopotential.sel(hour=hour).values
            )
    assert f.attrs["baseline"] == "climatology"
    assert xfuxi.validate(f).identical(f)


def test_climatology_forecast_seasonal_and_missing_hour():
    days = pd.date_range("2001-01-01", periods=2 * 365, freq="D")
    ds = xr.Dataset(
        {"surface_pressure": (("time", "latitude", "longitude"), np.ones((days.size, 3, 3)))},
        coords={"time": days, "latitude": LAT, "longitude": LON},
    )
    ds["surface_pressure"] = ds.surface_pressure * ds.time.dt.dayofyear
    clim = climatology(ds)
    assert "dayofyear" in clim.dims
    f = climatology_forecast(clim, init_times=["2005-02-01"], leads=["0h", "1D", "10D"])
    np.testing.assert_array_equal(f.surface_pressure.values[0, :, 0, 0], [32.0, 33.0, 42.0])
    with pytest.raises(ValueError, match="lacks hour"):
        climatology_forecast(clim, init_times=["2005-02-01"], leads=[6])


def test_climatology_forecast_is_better_than_persistence_at_long_leads():
    """On a noisy stationary series climatology beats persistence at long leads."""
    ds = make_ds(n_time=200)  # white noise around a fixed mean
    clim = climatology(ds)
    inits = ds.time.values[:100]
    lead = np.timedelta64(120, "h")
    truth = ds.geopotential.sel(time=inits + lead).values
    p = persistence_forecast(ds, init_times=inits, leads=[lead]).geopotential.values[:, 0]
    c = climatology_forecast(clim, init_times=inits, leads=[lead]).geopotential.values[:, 0]
    rmse_p = np.sqrt(((p - truth) ** 2).mean())
    rmse_c = np.sqrt(((c - truth) ** 2).mean())
    assert rmse_c < rmse_p
    # for white noise, RMSE(persistence) / RMSE(climatology) is about sqrt(2)
    assert 1.2 < rmse_p / rmse_c < 1.6


@pytest.mark.parametrize(
    ("leads", "advice"),
    [(["6"], "'6h'"), (["6", "12"], "'6h'"), (np.timedelta64(6), "np.timedelta64(6, 'h')"),
     (np.array([6, 12], dtype="timedelta64"), "np.timedelta64(6, 'h')")],
)  # fmt: skip
def test_leads_without_a_unit_are_refused_not_read_as_nanoseconds(leads, advice):
    ds = make_ds(n_time=4)
    with pytest.raises(ValueError, match="without a unit|has no unit") as err:
        persistence_forecast(ds, leads=leads)
    assert advice in str(err.value) and "nanoseconds" in str(err.value)
    clim = climatology(ds)
    with pytest.raises(ValueError, match="nanoseconds"):
        climatology_forecast(clim, init_times=ds.time.values[:1], leads=leads)
    # with the unit, and as plain numbers of hours, they are hours
    for good in (["6h"], [6], np.timedelta64(6, "h")):
        f = persistence_forecast(ds, leads=good)
        assert f.prediction_timedelta.values.tolist() == [pd.Timedelta("6h").value]


@pytest.mark.parametrize(
    "init", [pd.Timestamp("2000-01-01T06", tz="UTC"), "2000-01-01T06:00+00:00"]
)
def test_init_times_marked_utc_are_read_as_utc(init):
    ds = make_ds(n_time=4)
    naive = persistence_forecast(ds, leads=[6], init_times=np.datetime64("2000-01-01T06"))
    xr.testing.assert_identical(persistence_forecast(ds, leads=[6], init_times=init), naive)


@pytest.mark.parametrize(
    "init",
    ["2000-01-01T11:00+05:00", pd.DatetimeIndex(["2000-01-01T01"]).tz_localize("US/Eastern")],
)
def test_time_zone_aware_init_times_are_refused_as_forecast_does(init):
    ds = make_ds(n_time=4)
    with pytest.raises(
        ValueError, match=r"init_times carr(y|ies) a time zone .*give (them|it) as UTC"
    ):
        persistence_forecast(ds, leads=[6], init_times=init)
    with pytest.raises(ValueError, match=r"init_times carr(y|ies) a time zone"):
        climatology_forecast(climatology(ds), init_times=init, leads=[6])
