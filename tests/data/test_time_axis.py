"""The time axis where data and times enter xfuxi (audit 61).

* States picked from a forecast at one lead (``fc.sel(prediction_timedelta="6h")``: ``time``
  the initial time, a scalar lead) are valid at ``time + lead``; every function that takes
  states took them as valid at ``time``, labels off by the lead (F2).
* A forecast written by ``write_netcdf`` and read back, one lead selected, was refused as
  cfgrib's layout (F3); ``write_netcdf`` kept a stale ``valid_time`` (F4).
* Times given as strings were read differently by each function (ISO strings of mixed
  precision refused, raw pandas errors) (F5); numbers were read as nanoseconds after 1970,
  and an accumulation period without a unit too (F6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from tests import tiny, tiny_da
from xfuxi.data.schema import SchemaError, parse_times, states_at_valid_times, validate
from xfuxi.observations.imager import ImagerError
from xfuxi.observations.sets import ObservationError

SIX = np.timedelta64(6, "h")


def _one_lead(
    states: xr.Dataset, lead: np.timedelta64 = SIX, *, valid_time: bool = False
) -> xr.Dataset:
    """``states`` as a forecast of one lead started ``lead`` earlier would give them,
    selected at that lead: ``time`` the initial times, a scalar ``prediction_timedelta``
    (and with ``valid_time``, the coordinate xfuxi's netCDF writer adds)."""
    fc = states.assign_coords(time=states["time"].values - lead)
    fc = fc.expand_dims(prediction_timedelta=[lead], axis=1)
    if valid_time:
        fc = fc.assign_coords(valid_time=fc["time"] + fc["prediction_timedelta"])
    return fc.sel(prediction_timedelta=lead)


# --- F2: the helper ----------------------------------------------------------------------------


def test_states_at_valid_times_shifts_time_and_drops_the_lead():
    ds = tiny.dataset(3)
    one = _one_lead(ds, valid_time=True)
    before = one.copy(deep=True)
    out = states_at_valid_times(one)
    xr.testing.assert_identical(one, before)  # the input is not changed
    np.testing.assert_array_equal(out["time"].values, ds["time"].values)
    assert "prediction_timedelta" not in out.variables and "valid_time" not in out.variables
    xr.testing.assert_identical(out, ds)
    # lead 0: only dropped; a lead per time (along time); a DataArray; lead_time as validate
    zero = states_at_valid_times(_one_lead(ds, np.timedelta64(0, "h")))
    xr.testing.assert_identical(zero, ds)
    along = ds.assign_coords(prediction_timedelta=("time", np.array([0, 6, 12], "m8[h]")))
    shifted = states_at_valid_times(along)["time"].values - ds["time"].values
    assert shifted.astype("m8[h]").astype(int).tolist() == [0, 6, 12]
    da = states_at_valid_times(one["temperature"])
    np.testing.assert_array_equal(da["time"].values, ds["time"].values)
    renamed = one.drop_vars("valid_time").rename(prediction_timedelta="lead_time")
    np.testing.assert_array_equal(states_at_valid_times(renamed)["time"].values, ds["time"].values)
    # a forecast of several leads is the caller's to refuse or take whole
    fc = ds.expand_dims(prediction_timedelta=[np.timedelta64(0, "h"), SIX], axis=1)
    assert states_at_valid_times(fc) is fc
    assert states_at_valid_times(ds) is ds


def test_states_at_valid_times_refuses_a_lead_that_is_no_time_span():
    one = _one_lead(tiny.dataset(2))
    with pytest.raises(SchemaError, match=r"prediction_timedelta must be a time span.*int64"):
        states_at_valid_times(one.assign_coords(prediction_timedelta=6))
    with pytest.raises(TypeError, match="the states: prediction_timedelta must be a time span"):
        states_at_valid_times(one.assign_coords(prediction_timedelta=6.0), error=TypeError)
    lead = ("level", np.array([6, 12], "m8[h]"))
    with pytest.raises(SchemaError, match=r"lies along \['level'\]"):
        states_at_valid_times(one.assign_coords(prediction_timedelta=lead))


# --- F2: where states enter ----------------------------------------------------------------------


def test_forecast_and_ensemble_start_from_the_valid_times_of_one_lead():
    ds = tiny.dataset(4)
    model = tiny.model()
    want = xfuxi.forecast(ds, model=model, steps=1, progress=False)
    got = xfuxi.forecast(_one_lead(ds), model=model, steps=1, progress=False)
    np.testing.assert_array_equal(got["time"].values, want["time"].values)
    np.testing.assert_array_equal(got["temperature"].values, want["temperature"].values)
    got = xfuxi.forecast(_one_lead(ds, valid_time=True), model=model, steps=1, progress=False)
    np.testing.assert_array_equal(got["time"].values, want["time"].values)
    kw = dict(model=model, n=2, steps=1, seed=0, progress=False,
              perturbation=xfuxi.GaussianNoise(std_fraction=0.1))  # fmt: skip
    ens = xfuxi.ensemble(_one_lead(ds), **kw)
    np.testing.assert_array_equal(ens["time"].values, xfuxi.ensemble(ds, **kw)["time"].values)
    # the hint for a lead dim says how states of one lead are taken
    fc = ds.expand_dims(prediction_timedelta=[np.timedelta64(0, "h"), SIX], axis=1)
    with pytest.raises(SchemaError, match=r"dims \['prediction_timedelta'\].*valid times"):
        xfuxi.forecast(fc, model=model, steps=1, progress=False)


def test_persistence_and_climatology_of_one_lead_are_at_its_valid_times():
    ds = tiny.dataset(4)
    one = _one_lead(ds, valid_time=True)
    before = one.copy(deep=True)
    got = xfuxi.persistence_forecast(one, leads=[6])
    want = xfuxi.persistence_forecast(ds, leads=[6])
    np.testing.assert_array_equal(got["time"].values, want["time"].values)
    np.testing.assert_array_equal(got["temperature"].values, want["temperature"].values)
    clim = xfuxi.climatology(one)
    assert clim["hour"].values.tolist() == [0, 6, 12, 18]
    np.testing.assert_array_equal(
        clim["temperature"].values, xfuxi.climatology(ds)["temperature"].values
    )
    da = xfuxi.climatology(one["passive_tracer"])
    np.testing.assert_array_equal(da.values, xfuxi.climatology(ds["passive_tracer"]).values)
    xr.testing.assert_identical(one, before)  # the input is not changed


def test_4dvar_background_of_one_lead_is_at_its_valid_times():
    from xfuxi.assimilation.inputs import background_tensor

    bg = tiny.da_background()
    model = tiny.da_model(tiny.TinyNonlinear())
    want, t0, tensor = background_tensor(bg, model)
    got, t0_one, tensor_one = background_tensor(_one_lead(bg), model)
    assert t0_one == t0 == pd.Timestamp(bg["time"].values[-1])
    np.testing.assert_array_equal(got["time"].values, want["time"].values)
    assert bool((tensor_one == tensor).all())


def test_observations_of_one_lead_are_at_its_valid_times():
    ds = tiny.dataset(2)
    one = _one_lead(ds)
    kw = dict(n=6, variables=["temperature"], error=1.0, seed=0)
    xr.testing.assert_identical(
        xfuxi.random_observations(one, **kw), xfuxi.random_observations(ds, **kw)
    )
    point = dict(variable="temperature", level=500, latitude=10.0, longitude=20.0,
                 time=ds["time"].values[1], error=1.0, seed=0)  # fmt: skip
    xr.testing.assert_identical(
        xfuxi.single_observation(one, **point), xfuxi.single_observation(ds, **point)
    )


def test_imager_sees_one_lead_at_its_valid_times():
    truth = tiny_da.truth(3)
    kw = dict(frames=[-2.0, 0.0, 2.0], seed=0)
    got = xfuxi.imager_observations(_one_lead(truth), **kw)
    want = xfuxi.imager_observations(truth, **kw)
    np.testing.assert_array_equal(got["time"].values, want["time"].values)
    xr.testing.assert_identical(got["brightness_temperature"], want["brightness_temperature"])


# --- F3, F4: a forecast written and read back -------------------------------------------------


@pytest.fixture
def written(tmp_path):
    fc = xfuxi.persistence_forecast(tiny.dataset(4).isel(time=[1, 2]), leads=[6, 12])
    path = xfuxi.write_netcdf(fc, tmp_path / "fc.nc")
    with xr.open_dataset(path) as back:
        yield back.load()


def test_a_forecast_read_back_with_one_lead_selected_is_accepted(written, tmp_path):
    one = written.sel(prediction_timedelta="12h")
    assert one["valid_time"].dims == ("time",)  # the writer's, now along time
    out = validate(one)
    np.testing.assert_array_equal(out["valid_time"].values, one["valid_time"].values)
    back = xr.open_dataset(xfuxi.write_netcdf(written.isel(prediction_timedelta=0),
                                              tmp_path / "one.nc"))  # fmt: skip
    np.testing.assert_array_equal(
        back["valid_time"].values, back["time"].values + np.timedelta64(6, "h")
    )
    back.close()
    xfuxi.write_weatherbench2(one, tmp_path / "one.zarr")
    per = xfuxi.persistence_forecast(one, leads=[6])
    np.testing.assert_array_equal(
        per["time"].values, written["time"].values + np.timedelta64(12, "h")
    )
    # a valid_time that is not time + lead is named as such, not taken for cfgrib's layout
    stale = one.assign_coords(valid_time=one["valid_time"] + SIX)
    with pytest.raises(SchemaError, match=r"'valid_time' is not time \+ prediction_timedelta"):
        validate(stale)


def test_write_netcdf_computes_valid_time_anew(written, tmp_path):
    shifted = written.assign_coords(time=written["time"].values + SIX)  # relabelled
    with xr.open_dataset(xfuxi.write_netcdf(shifted, tmp_path / "shift.nc")) as back:
        want = back["time"] + back["prediction_timedelta"]
        np.testing.assert_array_equal(back["valid_time"].values, want.values)
    cf = xfuxi.data.writers.to_cf_layout(shifted.isel(prediction_timedelta=1))
    np.testing.assert_array_equal(
        cf["valid_time"].values, shifted["time"].values + np.timedelta64(12, "h")
    )
    assert cf["prediction_timedelta"].attrs["standard_name"] == "forecast_period"


# --- F5, F6: times given as strings or numbers ------------------------------------------------


MIXED = ["2001-03-01T06", "2001-03-01T12:00"]


def test_iso_strings_of_mixed_precision_are_read_everywhere():
    ds = tiny.dataset(4)
    want = pd.to_datetime(["2001-03-01T06:00", "2001-03-01T12:00"]).values
    fc = xfuxi.forecast(ds, model=tiny.model(), steps=1, init_times=MIXED, progress=False)
    np.testing.assert_array_equal(fc["time"].values, want)
    per = xfuxi.persistence_forecast(ds, leads=[6], init_times=MIXED)
    np.testing.assert_array_equal(per["time"].values, want)
    clim = xfuxi.climatology_for(xfuxi.climatology(ds), MIXED)
    np.testing.assert_array_equal(clim["time"].values, want)
    obs = xfuxi.make_observations([1.0, 2.0], error=1.0, time=MIXED, latitude=0, longitude=0,
                                  variable="temperature", level=500)  # fmt: skip
    np.testing.assert_array_equal(obs["time"].values, want)
    rad = xfuxi.imager_observations(tiny_da.truth(4), times=["2001-01-01T06", "2001-01-01T12:00"])
    np.testing.assert_array_equal(rad["time"].values, want - np.timedelta64(59, "D"))
    assert parse_times(MIXED, "t").dtype == "datetime64[ns]"


def test_unreadable_times_are_named_with_the_argument():
    ds = tiny.dataset(4)
    point = dict(error=1.0, latitude=0, longitude=0, variable="temperature", level=500)
    cases = [
        (ObservationError, "time", lambda: xfuxi.make_observations([1.0], time="noon", **point)),
        (ObservationError, "time", lambda: xfuxi.single_observation(ds, time="noon", **point)),
        (ObservationError, "times", lambda: xfuxi.random_observations(
            ds, n=2, variables=["temperature"], error=1.0, times=["noon"])),
        (ImagerError, "times", lambda: xfuxi.imager_observations(tiny_da.truth(3),
                                                                 times=["noon"])),
        (ValueError, "valid_times", lambda: xfuxi.climatology_for(xfuxi.climatology(ds),
                                                                  ["noon"])),
        (SchemaError, "init_times", lambda: xfuxi.forecast(ds, model=tiny.model(), steps=1,
                                                           init_times=["noon"])),
        (ValueError, "init_times", lambda: xfuxi.persistence_forecast(ds, leads=[6],
                                                                      init_times=["noon"])),
    ]  # fmt: skip
    for error, name, call in cases:  # (one time given alone: "a date and time")
        must = rf"^{name} must be (a date and time|dates and times) \(e.g. .*\); 'noon' is not one"
        with pytest.raises(error, match=must):
            call()
    with pytest.raises(ImagerError, match=r"frames must be offsets in hours.*'-2h' is not one"):
        xfuxi.imager_observations(tiny_da.truth(3), frames=["-2h", "0h", "2h"])


def test_numbers_are_not_taken_for_times():
    ds = tiny.dataset(4)
    number = r"got the number 5, which would be read as nanoseconds after 1970"
    point = dict(error=1.0, latitude=0, longitude=0, variable="temperature", level=500)
    with pytest.raises(ObservationError, match=rf"^time must be a date and time .*{number}"):
        xfuxi.make_observations([1.0], time=5, **point)
    with pytest.raises(ObservationError, match=rf"^time must be dates and times .*{number}"):
        xfuxi.make_observations([1.0, 2.0], time=[5, 6], **point)
    with pytest.raises(ImagerError, match=rf"^drift_origin must be a date and time .*{number}"):
        xfuxi.imager_observations(tiny_da.truth(3), drift_origin=5)
    obs = xfuxi.make_observations([1.0], time="2001-03-01T06", **point)
    with pytest.raises(ValueError, match=rf"^slot_times must be dates and times .*{number}"):
        xfuxi.screen_observations(obs, channels=[("temperature", 500.0)], latitude=tiny.LAT,
                                  longitude=tiny.LON, slot_times=[5])  # fmt: skip
    with pytest.raises(ValueError, match=rf"^valid_times must be dates and times .*{number}"):
        xfuxi.climatology_for(xfuxi.climatology(ds), [5])
    with pytest.raises(ObservationError, match=rf"^times must be dates and times .*{number}"):
        xfuxi.random_observations(ds, n=2, variables=["temperature"], error=1.0, times=[5])
    with pytest.raises(SchemaError, match=rf"^init_times must be dates and times .*{number}"):
        xfuxi.forecast(ds, model=tiny.model(), steps=1, init_times=[5])
    with pytest.raises(ValueError, match=rf"^init_times must be dates and times .*{number}"):
        xfuxi.persistence_forecast(ds, leads=[6], init_times=[5])
    # a missing time stays a missing observation time (screened), refused elsewhere
    obs = xfuxi.make_observations([1.0], time=None, **point)
    assert np.isnat(obs["time"].values).all()
    with pytest.raises(ValueError, match="valid_times holds a missing time"):
        xfuxi.climatology_for(xfuxi.climatology(ds), ["NaT"])


def _era5_with_precipitation() -> xr.Dataset:
    t = pd.date_range("2020-01-01", periods=13, freq="1h")
    return xr.Dataset(
        {
            "t": (("valid_time", "pressure_level", "latitude", "longitude"),
                  np.full((13, 1, 2, 2), 250.0), {"units": "K"}),
            "tp": (("valid_time", "latitude", "longitude"), np.full((13, 2, 2), 1e-3),
                   {"units": "m"}),
        },
        coords={"valid_time": t, "pressure_level": [500.0], "latitude": [-45.0, 45.0],
                "longitude": [0.0, 180.0]},
    )  # fmt: skip


@pytest.mark.parametrize(
    "period, match",
    [
        ("6", r"accumulation_period '6' has no unit, which would be read as nanoseconds"),
        (1, r"accumulation_period must be a duration; got the number 1"),
        (np.timedelta64(6), r"accumulation_period .* has no unit"),
        ("six hours", r"accumulation_period must be a duration; got 'six hours'"),
    ],
)
def test_accumulation_period_needs_its_unit(period, match):
    with pytest.raises(SchemaError, match=match):
        xfuxi.from_era5(_era5_with_precipitation(), accumulation_period=period)


def test_accumulation_period_with_its_unit_is_read():
    era = _era5_with_precipitation()
    for period in ("1h", pd.Timedelta(1, "h"), np.timedelta64(60, "m")):
        out = xfuxi.from_era5(era, accumulation_period=period)
        assert out["total_precipitation_6hr"].isel(time=-1).values == pytest.approx(6e-3)


def test_persistence_and_climatology_of_a_numpy_array_name_the_type():
    """The lead check ran before the type check: a raw AttributeError ('numpy.ndarray'
    object has no attribute 'coords')."""
    with pytest.raises(TypeError, match="expected an xarray.Dataset or DataArray"):
        xfuxi.persistence_forecast(np.zeros(3), leads=["6h"])
    with pytest.raises(TypeError, match="expected an xarray.Dataset or DataArray"):
        xfuxi.climatology(np.zeros(3))


def test_imager_frames_given_as_timedeltas_are_refused():
    """np.asarray(frames, float64) read timedelta64 frames as counts of nanoseconds
    (±2 h became ±7.2e12 'hours')."""
    truth = tiny_da.truth(4)
    with pytest.raises(ImagerError, match=r"frames must be offsets in hours.*\[1\.0, 2\.0\]"):
        xfuxi.imager_observations(truth, satellites=[90.0], frames=[[1.0, 2.0], [1.0]])
    for frames in (np.array([-2, 0], "m8[h]"), [pd.Timedelta("-2h"), pd.Timedelta(0)]):
        with pytest.raises(ImagerError, match=r"frames must be offsets in hours.*timedelta"):
            xfuxi.imager_observations(truth, satellites=[90.0], frames=frames)
