"""Schema: canonical layout, the ERA5 (CDS) and WeatherBench2 readers, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xfuxi.data.schema import (
    CANONICAL_DIMS,
    SchemaError,
    from_era5,
    from_weatherbench2,
    validate,
)

LEVELS = [500, 850]


def _era5_cds(n_time=3, descending_lat=True) -> xr.Dataset:
    """A tiny file in the layout the CDS delivers since 2024 (netCDF4)."""
    rng = np.random.default_rng(0)
    lat = np.linspace(90, -90, 5) if descending_lat else np.linspace(-90, 90, 5)
    lon = np.arange(0, 360, 90.0)
    time = pd.date_range("2020-01-01", periods=n_time, freq="6h")
    shape3 = (n_time, len(LEVELS), lat.size, lon.size)
    shape2 = (n_time, lat.size, lon.size)
    pl = {"z": "m**2 s**-2", "t": "K", "u": "m s**-1", "v": "m s**-1", "q": "kg kg**-1", "r": "%"}
    sl = {"sp": "Pa", "msl": "Pa", "t2m": "K", "u10": "m s**-1", "v10": "m s**-1"}
    data = {
        k: (
            ("valid_time", "pressure_level", "latitude", "longitude"),
            rng.normal(size=shape3),
            {"units": u, "GRIB_paramId": 1},
        )
        for k, u in pl.items()
    }
    data.update(
        {
            k: (("valid_time", "latitude", "longitude"), rng.normal(size=shape2), {"units": u})
            for k, u in sl.items()
        }
    )
    return xr.Dataset(
        data,
        coords={
            "valid_time": ("valid_time", time),
            "pressure_level": ("pressure_level", np.array(LEVELS, dtype=float), {"units": "hPa"}),
            "latitude": ("latitude", lat, {"units": "degrees_north"}),
            "longitude": ("longitude", lon, {"units": "degrees_east"}),
            "number": 0,
            "expver": ("valid_time", np.array(["0001"] * n_time)),
        },
        attrs={"Conventions": "CF-1.7", "institution": "ECMWF"},
    )  # fmt: skip


def _wb2(forecast=False) -> xr.Dataset:
    rng = np.random.default_rng(1)
    lat = np.linspace(-87.1875, 87.1875, 4)
    lon = np.arange(0, 360, 90.0)
    time = pd.date_range("2020-01-01", periods=2, freq="12h")
    dims = ("time", "level", "latitude", "longitude")
    coords = {"time": time, "level": np.array([500, 850], dtype="int64"),
              "latitude": lat, "longitude": lon}  # fmt: skip
    shape = (2, 2, lat.size, lon.size)
    if forecast:
        dims = ("time", "prediction_timedelta", "level", "latitude", "longitude")
        coords["prediction_timedelta"] = pd.to_timedelta([0, 6, 12], unit="h")
        shape = (2, 3, 2, lat.size, lon.size)
    return xr.Dataset(
        {v: (dims, rng.normal(size=shape).astype("float32"))
         for v in ("geopotential", "temperature")},
        coords=coords,
    )  # fmt: skip


def test_from_era5_netcdf_file(tmp_path):
    raw = _era5_cds()
    path = tmp_path / "era5.nc"
    raw.to_netcdf(path)
    ds = from_era5(path)
    assert set(ds.data_vars) == {
        "geopotential", "temperature", "u_component_of_wind", "v_component_of_wind",
        "specific_humidity", "relative_humidity", "surface_pressure",
        "mean_sea_level_pressure", "2m_temperature", "10m_u_component_of_wind",
        "10m_v_component_of_wind",
    }  # fmt: skip
    assert ds["temperature"].dims == ("time", "level", "latitude", "longitude")
    assert ds["surface_pressure"].dims == ("time", "latitude", "longitude")
    assert np.all(np.diff(ds.latitude.values) > 0)
    assert "number" not in ds.coords and "expver" not in ds.coords
    # values follow their coordinates through the flip
    np.testing.assert_array_equal(
        ds["geopotential"].sel(latitude=90).values, raw["z"].sel(latitude=90).values
    )
    ds.close()


def test_from_weatherbench2_zarr(tmp_path):
    raw = _wb2()
    path = tmp_path / "wb2.zarr"
    raw.to_zarr(path)
    ds = from_weatherbench2(path)
    xr.testing.assert_identical(ds.reset_coords(drop=True), validate(raw).reset_coords(drop=True))
    fc_path = tmp_path / "fc.zarr"
    _wb2(forecast=True).to_zarr(fc_path)
    fc = from_weatherbench2(fc_path)
    assert fc["temperature"].dims == (
        "time", "prediction_timedelta", "level", "latitude", "longitude"
    )  # fmt: skip
    assert fc["prediction_timedelta"].dtype.kind == "m"


def test_input_is_never_modified():
    raw = _era5_cds()
    before = raw.copy(deep=True)
    validate(raw)
    from_era5(raw)
    xr.testing.assert_identical(raw, before)


def test_canonical_dim_order():
    raw = _wb2(forecast=True).transpose(
        "longitude", "latitude", "level", "prediction_timedelta", "time"
    )
    out = validate(raw)
    assert out["temperature"].dims == tuple(d for d in CANONICAL_DIMS if d != "number")


def test_missing_variable_is_named():
    with pytest.raises(SchemaError, match="missing variable.*'specific_humidity'"):
        validate(_wb2(), variables=["temperature", "specific_humidity"])


def test_non_monotonic_latitude_is_an_error():
    ds = _wb2()
    ds = ds.assign_coords(latitude=ds.latitude.values[[0, 2, 1, 3]])
    with pytest.raises(SchemaError, match="'latitude' is not monotonic"):
        validate(ds)


def test_descending_latitude_is_sorted():
    ds = _wb2().isel(latitude=slice(None, None, -1))
    out = validate(ds)
    assert np.all(np.diff(out.latitude.values) > 0)
    xr.testing.assert_equal(out, _wb2())


def test_longitude_minus180_is_wrapped_and_sorted():
    ds = _wb2()
    ds = ds.assign_coords(longitude=[-180.0, -90.0, 0.0, 90.0])
    out = validate(ds)
    np.testing.assert_array_equal(out.longitude.values, [0.0, 90.0, 180.0, 270.0])
    # the value at -90 must now sit at 270
    np.testing.assert_array_equal(
        out["temperature"].sel(longitude=270.0).values,
        ds["temperature"].sel(longitude=-90.0).values,
    )


def test_nan_in_model_input_is_an_error():
    ds = _wb2()
    t = ds["temperature"].values.copy()
    t[0, 0, 0, 0] = np.nan
    ds = ds.assign(temperature=(ds["temperature"].dims, t))
    with pytest.raises(SchemaError, match="'temperature' has 1 NaN"):
        validate(ds, allow_nan=False)
    # allowed by default (e.g. verification data), and nothing is filled in
    assert int(validate(ds)["temperature"].isnull().sum()) == 1


def test_unknown_level_is_an_error():
    ds = _wb2().assign_coords(level=[500, 851])
    with pytest.raises(SchemaError, match=r"unknown pressure level\(s\) \[851.0\]"):
        validate(ds)


def test_level_in_pa_is_an_error():
    ds = _wb2()
    ds = ds.assign_coords(level=("level", [50000.0, 85000.0], {"units": "Pa"}))
    with pytest.raises(SchemaError, match="in Pa"):
        validate(ds)


def test_duplicated_time_is_an_error():
    ds = _wb2()
    ds = ds.assign_coords(time=[ds.time.values[0]] * 2)
    with pytest.raises(SchemaError, match="'time' has duplicated values"):
        validate(ds)


def test_unsorted_time_is_sorted():
    ds = _wb2().isel(time=[1, 0])
    out = validate(ds)
    assert np.all(np.diff(out.time.values) > np.timedelta64(0))


def test_wrong_units_are_an_error():
    ds = _wb2()
    ds["geopotential"].attrs["units"] = "m"
    with pytest.raises(SchemaError, match="'geopotential' has units 'm'"):
        validate(ds)


def test_missing_latitude_dimension():
    ds = xr.Dataset({"temperature": (("y", "x"), np.zeros((2, 2)))})
    with pytest.raises(SchemaError, match="missing dimension 'latitude'"):
        validate(ds)


def test_dataarray_round_trip():
    da = _wb2()["temperature"].isel(latitude=slice(None, None, -1))
    out = validate(da)
    assert isinstance(out, xr.DataArray) and out.name == "temperature"
    assert np.all(np.diff(out.latitude.values) > 0)
