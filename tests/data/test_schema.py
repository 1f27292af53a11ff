"""Schema: canonical layout, the ERA5 (CDS) and WeatherBench2 readers, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xfuxi.data.readers import from_era5, from_weatherbench2
from xfuxi.data.schema import (
    CANONICAL_DIMS,
    SchemaError,
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
    # plausible magnitudes: temperatures and pressures are range-checked
    typical = {"t": 250.0, "t2m": 280.0, "sp": 1e5, "msl": 1e5}
    data = {
        k: (
            ("valid_time", "pressure_level", "latitude", "longitude"),
            typical.get(k, 0.0) + rng.normal(size=shape3),
            {"units": u, "GRIB_paramId": 1},
        )
        for k, u in pl.items()
    }
    data.update(
        {
            k: (
                ("valid_time", "latitude", "longitude"),
                typical.get(k, 0.0) + rng.normal(size=shape2),
                {"units": u},
            )
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
        {v: (dims, (base + rng.normal(size=shape)).astype("float32"))
         for v, base in (("geopotential", 5e4), ("temperature", 250.0))},
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
    # without a units attribute, levels that are hPa levels times 100 are named as Pa
    ds = ds.assign_coords(level=("level", [50000.0, 85000.0]))
    with pytest.raises(SchemaError, match=r"they look like Pa: divide the levels by 100"):
        validate(ds)


def test_duplicated_time_is_an_error():
    ds = _wb2()
    ds = ds.assign_coords(time=[ds.time.values[0]] * 2)
    first = str(pd.Timestamp(ds.time.values[0]))
    with pytest.raises(SchemaError, match=f"'time' has duplicated values: \\['{first}'\\]"):
        validate(ds)


def test_unsorted_time_is_sorted():
    ds = _wb2().isel(time=[1, 0])
    out = validate(ds)
    assert np.all(np.diff(out.time.values) > np.timedelta64(0))


def test_wrong_units_are_an_error():
    ds = _wb2()
    ds["geopotential"].attrs["units"] = "m"
    with pytest.raises(SchemaError, match="'geopotential' has units 'm'.*multiply metres by 9.8"):
        validate(ds)


def test_missing_times_coordinates_without_values_and_millibar_levels():
    ds = _wb2()
    times = ds.time.values.copy()
    times[1] = np.datetime64("NaT")
    with pytest.raises(SchemaError, match="'time' holds 1 missing value"):
        validate(ds.assign_coords(time=times))  # a NaT was sorted to the end and accepted
    for dim in ("latitude", "longitude"):
        with pytest.raises(SchemaError, match=f"dimension '{dim}' has no coordinate values"):
            validate(ds.drop_vars(dim))  # positions 0, 1, 2, ... were taken as degrees
    for units in ("millibar", "mb"):  # CF's spelling (NCEP files) and the common one
        lev = ds.level.assign_attrs(units=units)
        assert validate(ds.assign_coords(level=lev)).level.values.tolist() == [500.0, 850.0]


def test_missing_latitude_dimension():
    ds = xr.Dataset({"temperature": (("y", "x"), np.zeros((2, 2)))})
    with pytest.raises(SchemaError, match="missing dimension 'latitude'"):
        validate(ds)


def test_dataarray_round_trip():
    da = _wb2()["temperature"].isel(latitude=slice(None, None, -1))
    out = validate(da)
    assert isinstance(out, xr.DataArray) and out.name == "temperature"
    assert np.all(np.diff(out.latitude.values) > 0)


# --- issue 20 item 2: the result never shares memory with the input ---


def test_result_shares_no_memory_with_numpy_input():
    raw = _wb2()  # canonical already: no sorting or renaming that would copy by chance
    before = raw.copy(deep=True)
    ds = validate(raw)
    ds["temperature"] -= 273.15
    ds["geopotential"].values[...] = 0.0
    xr.testing.assert_identical(raw, before)
    for name in ("temperature", "geopotential", "latitude", "time"):
        assert not np.shares_memory(ds[name].values, raw[name].values), name
    # a DataArray too
    da = validate(raw["temperature"])
    da.values[...] = 0.0
    xr.testing.assert_identical(raw, before)


def test_result_of_dask_input_is_lazy_and_independent():
    dask = pytest.importorskip("dask")
    raw = _wb2().chunk({"time": 1})
    before = raw.compute()
    ds = validate(raw)
    assert ds["temperature"].chunks is not None  # still lazy
    ds["temperature"] -= 273.15
    values = ds["geopotential"].values  # computed
    values[...] = 0.0
    xr.testing.assert_identical(raw.compute(), before)
    assert isinstance(raw["temperature"].data, dask.array.Array)


def test_allow_nan_false_keeps_dask_data_lazy_and_computes_once():
    pytest.importorskip("dask")
    from dask.callbacks import Callback

    class Count(Callback):
        def __init__(self):
            super().__init__()
            self.computes = 0

        def _start(self, dsk):
            self.computes += 1

    raw = _wb2().chunk({"time": 1})
    with Count() as counter:
        out = validate(raw, allow_nan=False)
    assert counter.computes == 1  # one pass for both variables (was one compute per variable)
    assert all(out[v].chunks is not None for v in out.data_vars)
    t = raw["temperature"].copy(data=raw["temperature"].data.copy())
    bad = raw.assign(temperature=t.where(t.time != t.time[0]))  # NaN at the first time, lazily
    with Count() as counter, pytest.raises(SchemaError, match="'temperature' has 32 NaN"):
        validate(bad, allow_nan=False)
    assert counter.computes == 1


# --- issue 20 item 10: physically impossible values ---


def test_temperature_in_celsius_is_refused_with_the_likely_cause():
    ds = _wb2()
    celsius = ds.assign(temperature=ds["temperature"] - 273.15)
    with pytest.raises(SchemaError, match=r"'temperature'.*100\.\.400 K.*°C instead of K"):
        validate(celsius, check_ranges=True)
    hpa = _era5_cds()
    hpa["sp"] = hpa["sp"] / 100
    with pytest.raises(SchemaError, match=r"'surface_pressure'.*hPa instead of Pa"):
        from_era5(hpa, check_ranges=True)
    validate(_era5_cds(), check_ranges=True)  # plausible values pass
    # off by default: anomalies and differences carry the same names
    out = validate(celsius)
    assert float(out["temperature"].mean()) < 0


def test_range_check_of_dask_data_is_lazy():
    pytest.importorskip("dask")
    ds = _wb2()
    celsius = ds.assign(temperature=ds["temperature"] - 273.15).chunk({"time": 1})
    out = validate(celsius, check_ranges=True)  # nothing computed yet
    assert out["temperature"].chunks is not None
    with pytest.raises(SchemaError, match="°C instead of K"):
        out["temperature"].compute()
    checked = validate(ds.chunk({"time": 1}), check_ranges=True).compute()
    xr.testing.assert_identical(checked, validate(ds))


@pytest.mark.parametrize("dim", ["member", "realization"])
def test_ensemble_dim_error_names_the_dim_the_user_gave(dim):
    # validate renames member/realization to number; the error named 'number' and advised
    # ds.isel(number=0), which fails on the user's data
    from xfuxi.data.schema import check_state_dims

    ds = xr.Dataset(
        {"temperature": (("time", "latitude", "longitude"), np.full((1, 2, 3), 250.0))},
        coords={
            "time": pd.date_range("2000-01-01", periods=1),
            "latitude": [-10.0, 10.0],
            "longitude": [0.0, 120.0, 240.0],
        },
    ).expand_dims({dim: 2})
    advice = "select a member (ds.isel(number=0)) or pass the mean (ds.mean('number'))"
    for data in (validate(ds), ds):  # renamed by validate, or as given
        with pytest.raises(SchemaError) as err:
            check_state_dims(data, "the states", advice)
        assert str(err.value) == (
            f"the states have an ensemble dim '{dim}' (2 members); select a member "
            f"(ds.isel({dim}=0)) or pass the mean (ds.mean('{dim}'))"
        )
        ds.isel({dim: 0}).mean()  # the advice works on the user's data
    with pytest.raises(SchemaError, match=r"ensemble dim 'number' .*isel\(number=0\)"):
        check_state_dims(validate(ds.rename({dim: "number"})), "the states", advice)
    # only the ensemble dims with ensemble_only
    check_state_dims(ds.isel({dim: 0}).expand_dims(x=2), "the states", advice, ensemble_only=True)
    with pytest.raises(SchemaError, match=r"dims \['x'\] besides"):
        check_state_dims(ds.isel({dim: 0}).expand_dims(x=2), "the states", advice)


def test_forecast_error_names_a_member_dim_as_given():
    import xfuxi
    from tests import tiny

    ds = tiny.dataset(4).expand_dims(member=2)
    with pytest.raises(
        SchemaError,
        match=r"ensemble dim 'member' \(2 members\).*"
        r"ds\.isel\(member=0\).*ds\.mean\('member'\)",
    ):
        xfuxi.forecast(ds, model=tiny.model(), steps=1, progress=False)


def test_cftime_and_time_zone_aware_times_are_named_with_the_conversion():
    pytest.importorskip("cftime")
    ds = _wb2()
    n = ds.sizes["time"]
    for calendar, align in (("noleap", ""), ("360_day", ", align_on='year'")):
        tc = xr.date_range("2020-01-01", periods=n, freq="6h", calendar=calendar, use_cftime=True)
        with pytest.raises(SchemaError) as err:
            validate(ds.assign_coords(time=tc))
        assert f"cftime dates ({calendar} calendar)" in str(err.value)
        assert f"convert_calendar('standard', use_cftime=False{align})" in str(err.value)
    tz = ds.assign_coords(time=ds.indexes["time"].tz_localize("UTC"))
    with pytest.raises(SchemaError, match=r"'time' carries a time zone \(UTC\).*tz_localize"):
        validate(tz)
    # the conversion named works
    fixed = tz.assign_coords(time=tz.indexes["time"].tz_convert("UTC").tz_localize(None))
    assert validate(fixed).time.dtype.kind == "M"


def test_complex_data_variables_are_refused():
    ds = _wb2()
    name = next(iter(ds.data_vars))
    bad = ds.assign({name: ds[name].astype("complex64")})
    with pytest.raises(SchemaError, match=f"variable '{name}' is complex.*real part"):
        validate(bad)
    with pytest.raises(SchemaError, match="is complex"):
        validate(bad[name])


@pytest.mark.parametrize("dtype", ["object", "str"])
def test_fields_of_objects_or_strings_are_refused_and_regrid_does_not_pick_neighbours(dtype):
    """Numbers held as objects went through validate, and regrid picked the nearest
    neighbours of them (xarray's interpolation of objects) under the label "bilinear"."""
    import xfuxi

    ds = _wb2()
    name = next(iter(ds.data_vars))
    bad = ds.assign({name: ds[name].astype(dtype)})
    message = rf"variable '{name}' holds {bad[name].dtype} data on the grid.*astype"
    with pytest.raises(SchemaError, match=message):
        validate(bad)
    with pytest.raises(SchemaError, match="on the grid"):
        xfuxi.regrid(bad, {"latitude": [0.0, 10.0], "longitude": [0.0, 10.0]})
    # a string variable off the grid (a label) is no field: kept as it is
    labelled = ds.assign(source=xr.DataArray("model run 3"))
    assert validate(labelled)["source"].item() == "model run 3"
