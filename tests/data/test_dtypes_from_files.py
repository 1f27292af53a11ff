"""The array types and dtypes that real files bring: times beyond datetime64[ns] in a
coarser unit, big-endian values and coordinates, integer and float16 backgrounds, masked
arrays, values still packed, cftime dates (audit of the dtypes real files bring)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from tests import tiny, tiny_da
from xfuxi.assimilation.da import assimilate_da
from xfuxi.data.schema import SchemaError, native_byte_order, time_dtype_problem, validate
from xfuxi.observations.imager import ImagerError, imager_observations
from xfuxi.observations.sets import (
    ObservationError,
    make_observations,
    screen_observations,
    validate_observations,
)

#: from 2001 to 2301 in whole seconds: a scenario run's dates, beyond datetime64[ns]
SHIFT = np.datetime64("2301-01-01", "s") - np.datetime64("2001-01-01", "s")
BEYOND = "outside the years 1678 to 2261"


def in_2301(ds: xr.Dataset, dim: str = "time") -> xr.Dataset:
    """``ds`` 300 years later, its times in datetime64[s] (as xarray ≥ 2025 keeps them)."""
    values = ds[dim].values.astype("datetime64[s]") + SHIFT
    out = ds.assign_coords({dim: (ds[dim].dims, values)})
    if out[dim].dtype != np.dtype("datetime64[s]"):
        pytest.skip("this xarray converts datetime64[s] to ns")
    return out


def big_endian(ds: xr.Dataset, names) -> xr.Dataset:
    """The same values of ``names`` (coordinates or data variables), stored big-endian."""
    out = ds.copy()
    for n in names:
        v = ds[n].variable
        out[n] = xr.Variable(v.dims, v.values.astype(v.dtype.newbyteorder(">")), v.attrs)
    return out


@pytest.fixture
def case(fuxi_da_case):
    return fuxi_da_case


# --- 1. times beyond datetime64[ns] in a coarser unit ---


def test_validate_refuses_times_beyond_ns_and_the_suggested_shift_works():
    ds = in_2301(tiny.dataset())
    with pytest.raises(SchemaError, match=BEYOND) as err:
        validate(ds)
    assert "2301-03-01T00:00:00" in str(err.value) and "146097" in str(err.value)
    assert ds["time"].dtype == np.dtype("datetime64[s]")  # the input is not changed
    # the fix the message gives: whole 400-year cycles keep each day of the year
    shifted = validate(ds.assign_coords(time=ds["time"] - np.timedelta64(146097, "D")))
    assert pd.DatetimeIndex(shifted["time"].values)[0] == pd.Timestamp("1901-03-01")
    early = ds.assign_coords(time=ds["time"] - 3 * SHIFT)  # 2301 - 900 years: 1401
    assert "+ np.timedelta64(146097" in time_dtype_problem(early["time"])
    # within the years of datetime64[ns], a coarser unit is fine
    assert time_dtype_problem(tiny.dataset()["time"].astype("datetime64[s]")) is None


def test_forecasts_refuse_times_beyond_ns_instead_of_wrapping_them():
    model = tiny.model()
    init = in_2301(tiny.dataset(2))
    for run in (
        lambda d: xfuxi.forecast(d, model=model, steps=1, progress=False),
        lambda d: xfuxi.ensemble(
            d, model=model, n=2, steps=1, perturbation=xfuxi.GaussianNoise(), progress=False
        ),
    ):
        with pytest.raises(SchemaError, match=BEYOND):
            run(init)
    # states of a forecast at one lead: their valid times (time + lead) would wrap too
    states = init.assign_coords(prediction_timedelta=np.timedelta64(6, "h"))
    with pytest.raises(SchemaError, match=BEYOND):
        xfuxi.forecast(states, model=model, steps=1, progress=False)


def test_observations_and_imager_refuse_times_beyond_ns():
    obs = make_observations(
        [250.0, 251.0], error=1.0, time="2001-01-01T06", latitude=10.0, longitude=0.0,
        variable="temperature", level=500,
    )  # fmt: skip
    late = obs.assign_coords(time=("obs", obs["time"].values.astype("datetime64[s]") + SHIFT))
    if late["time"].dtype != np.dtype("datetime64[s]"):
        pytest.skip("this xarray converts datetime64[s] to ns")
    with pytest.raises(ObservationError, match=BEYOND) as err:
        validate_observations(late)
    assert "146097" in str(err.value) and "to_datetimeindex" not in str(err.value)
    with pytest.raises(ObservationError, match=BEYOND):
        screen_observations(
            late, channels=[("temperature", 500.0)], latitude=tiny.LAT, longitude=tiny.LON,
            slot_times=np.array(["2001-01-01T06"], dtype="datetime64[ns]"),
        )  # fmt: skip
    truth = in_2301(tiny_da.truth(3))
    with pytest.raises(ImagerError, match=BEYOND):
        imager_observations(truth, satellites=[90.0], channels=["ir10.8"], frames=[0.0])
    truth_obs = in_2301(tiny.dataset())
    with pytest.raises(SchemaError, match=BEYOND):
        xfuxi.random_observations(
            truth_obs, n=3, variables=["temperature"], error={"temperature": 1.0}, seed=0
        )


def test_assimilate_da_refuses_times_beyond_ns(case):
    background, radiances, model = case
    with pytest.raises(ValueError, match=BEYOND):
        assimilate_da(in_2301(background), radiances, model=model)
    with pytest.raises(ImagerError, match=BEYOND):
        assimilate_da(background, in_2301(radiances), model=model)


# --- 2. integer and float16 backgrounds of assimilate_da ---


def test_assimilate_da_gives_a_float_analysis_of_an_integer_or_float16_background(case):
    background, radiances, model = case
    names = ["temperature", "surface_pressure"]
    whole = background.assign({v: background[v].round() for v in names})
    as_int = whole.assign({v: whole[v].astype("int32") for v in names})
    res_int = assimilate_da(as_int, radiances, model=model)
    res_flt = assimilate_da(whole, radiances, model=model)  # the same values, float64
    for v in names:
        assert res_int.analysis[v].dtype.kind == "f"
        assert float(abs(res_flt.increment[v]).max()) > 0.01  # an increment to truncate
        np.testing.assert_allclose(res_int.analysis[v], res_flt.analysis[v], atol=1e-9)
    assert as_int["temperature"].dtype == np.dtype("int32")  # not modified
    half = background.assign(temperature=background["temperature"].astype("float16"))
    single = half.assign(temperature=half["temperature"].astype("float32"))  # same values
    res_half = assimilate_da(half, radiances, model=model)
    res_single = assimilate_da(single, radiances, model=model)
    assert res_half.analysis["temperature"].dtype == np.dtype("float32")
    np.testing.assert_array_equal(
        res_half.analysis["temperature"], res_single.analysis["temperature"]
    )
    # float32 and float64 backgrounds keep their dtype
    assert res_single.analysis["temperature"].dtype == np.dtype("float32")
    assert res_flt.analysis["temperature"].dtype == np.dtype("float64")


# --- 4. and 5. big-endian values and coordinates ---


def test_climatology_of_big_endian_data_spanning_a_year():
    t = pd.date_range("2019-01-01", "2019-12-31T18", freq="6h")
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"temperature": (("time", "latitude", "longitude"), 280 + rng.normal(size=(t.size, 2, 3)))},
        coords={"time": t, "latitude": [-30.0, 30.0], "longitude": [0.0, 120.0, 240.0]},
    ).astype("float32")
    swapped = big_endian(ds, ["temperature", "latitude"])
    for kwargs in ({}, {"window": 5}):
        got = xfuxi.climatology(swapped, **kwargs)
        want = xfuxi.climatology(ds, **kwargs)
        assert got["temperature"].dtype == want["temperature"].dtype
        xr.testing.assert_allclose(got, want)
    da = xfuxi.climatology(swapped["temperature"])  # a DataArray too
    xr.testing.assert_allclose(da, xfuxi.climatology(ds["temperature"]))
    assert not swapped["temperature"].dtype.isnative  # the input is not changed


def test_validate_puts_big_endian_values_and_coordinates_in_native_order():
    ds = tiny.dataset()
    swapped = big_endian(ds, ["temperature", "level", "latitude", "longitude"])
    out = validate(swapped)
    for name in ("temperature", "level", "latitude", "longitude"):
        assert out[name].dtype.isnative and not swapped[name].dtype.isnative
    xr.testing.assert_identical(out, validate(ds))
    assert native_byte_order(ds) is ds  # nothing to convert: the same object


def test_big_endian_coordinates_in_assimilate_da_and_the_scores(case):
    background, radiances, model = case
    swapped = big_endian(background, ["level", "latitude", "longitude"])
    got = assimilate_da(swapped, radiances, model=model)
    want = assimilate_da(background, radiances, model=model)
    xr.testing.assert_allclose(got.analysis, want.analysis)
    assert not swapped["level"].dtype.isnative  # the input is not changed
    truth = tiny.dataset()
    fc = xfuxi.forecast(truth.isel(time=[0, 1]), model=tiny.model(), steps=2, progress=False)
    dims = ["time", "latitude", "longitude"]
    xr.testing.assert_allclose(
        xfuxi.rmse(fc, big_endian(truth, ["level"]), dim=dims), xfuxi.rmse(fc, truth, dim=dims)
    )


# --- 7. numpy masked arrays in make_observations ---


def test_make_observations_reads_masked_values_as_missing():
    raw = np.array([-999.0, 251.0, 252.0, 300.0])
    value = np.ma.masked_where(np.array([1, 0, 0, 1]) > 0, raw)
    error = np.ma.masked_array([1.0, 1.0, -5.0, 1.0], mask=[0, 0, 1, 0])
    latitude = np.ma.masked_array([10.0, 20.0, 30.0, 95.0], mask=[0, 0, 0, 1])
    level = np.ma.masked_array([500.0, 850.0, 500.0, 500.0], mask=[0, 1, 0, 0])
    obs = make_observations(
        value, error=error, time="2001-03-01T06", latitude=latitude, longitude=0.0,
        variable="temperature", level=level,
    )  # fmt: skip
    assert np.isnan(obs["value"].values[[0, 3]]).all() and obs["value"].values[1] == 251.0
    assert np.isnan(obs["error"].values[2]) and np.isnan(obs["latitude"].values[3])
    assert np.isnan(obs["level"].values[1])
    assert raw[0] == -999.0 and value.mask[0]  # the inputs are not changed
    _, _, _, counts = screen_observations(
        obs, channels=[("temperature", 500.0), ("temperature", 850.0)],
        latitude=tiny.LAT, longitude=tiny.LON,
        slot_times=np.array(["2001-03-01T06"], dtype="datetime64[ns]"),
    )  # fmt: skip
    assert counts.get("nan_value") == 2, counts


# --- 8. values still packed ---


def test_validate_refuses_variables_still_packed(tmp_path):
    ds = tiny.dataset(2)
    path = tmp_path / "packed.nc"
    encoding = {
        v: {"dtype": "int16", "scale_factor": 0.01, "add_offset": 250.0, "_FillValue": -32767}
        for v in ("temperature", "passive_tracer")
    }
    ds.to_netcdf(path, encoding=encoding)
    with xr.open_dataset(path, mask_and_scale=False) as raw:
        with pytest.raises(SchemaError, match="variable '.*' is still packed") as err:
            validate(raw)
        assert "decode_cf" in str(err.value) and "scale_factor" in str(err.value)
        unsigned = raw[["temperature"]].copy()
        unsigned["temperature"].attrs = {"_Unsigned": "true"}  # unsigned counts, undecoded
        with pytest.raises(SchemaError, match=r"\['_Unsigned'\]"):
            validate(unsigned)
        # the climatology (which does not validate) refuses them too, by name
        with pytest.raises(SchemaError, match="variable 'temperature' is still packed"):
            xfuxi.climatology(raw[["temperature"]])
        with pytest.raises(SchemaError, match="variable 'temperature' is still packed"):
            xfuxi.climatology(raw["temperature"])
        # and the scores: counts scored as values gave RMSEs of thousands of kelvin
        with pytest.raises(SchemaError, match="variable 'temperature' is still packed"):
            xfuxi.rmse(raw["temperature"], ds["temperature"])
        with pytest.raises(SchemaError, match="variable 'temperature' is still packed"):
            xfuxi.rmse(ds[["temperature"]], raw[["temperature"]])
        # a packed climatology or spread as well
        clim = raw["temperature"].isel(time=0, drop=True)
        with pytest.raises(SchemaError, match="variable 'temperature' is still packed"):
            xfuxi.acc(ds["temperature"], ds["temperature"], clim)
        with pytest.raises(SchemaError, match="variable 'temperature' is still packed"):
            xfuxi.gaussian_crps(ds["temperature"], ds["temperature"], std=clim)
        decoded = validate(xr.decode_cf(raw))  # decoded: the packing is in the encoding
        np.testing.assert_allclose(decoded["temperature"], ds["temperature"], atol=0.01)
    with xr.open_dataset(path) as read:  # read normally: accepted
        assert validate(read)["temperature"].encoding["scale_factor"] == 0.01


def test_what_xfuxi_writes_reads_back_without_packing_attributes(tmp_path):
    fc = xfuxi.forecast(tiny.dataset(2), model=tiny.model(), steps=1, progress=False)
    path = tmp_path / "fc.nc"
    xfuxi.write_netcdf(fc, path)
    with xr.open_dataset(path) as back:
        for v in back.data_vars:
            assert not {"scale_factor", "add_offset", "_Unsigned"} & set(back[v].attrs)
        validate(back)


# --- 9. cftime dates in the imager and assimilate_da ---


def _cftime(ds: xr.Dataset) -> xr.Dataset:
    pytest.importorskip("cftime")
    return ds.convert_calendar("standard", use_cftime=True)


def test_cftime_dates_in_the_imager_and_assimilate_da_are_named(case):
    background, radiances, model = case
    truth = tiny_da.truth(3)
    fix = r"convert_calendar\('standard', use_cftime=False\)"
    with pytest.raises(ImagerError, match=f"the truth's .*cftime dates.*{fix}"):
        imager_observations(_cftime(truth), satellites=[90.0], channels=["ir10.8"], frames=[0.0])
    with pytest.raises(ValueError, match=f"the background's .*cftime dates.*{fix}"):
        assimilate_da(_cftime(background), radiances, model=model)
    with pytest.raises(ImagerError, match=f"the radiances' .*cftime dates.*{fix}"):
        assimilate_da(background, _cftime(radiances), model=model)
