"""Arguments that are plausible mistakes get an error naming the argument, where NumPy,
xarray or zarr raised their own words from deep inside (each case failed so before)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.data.schema import SchemaError


def _grid_field(n_lat=8, n_lon=16):
    lat = np.linspace(-78.75, 78.75, n_lat)
    lon = np.arange(n_lon) * (360.0 / n_lon)
    values = 250.0 + np.cos(np.deg2rad(lat))[:, None] * np.sin(np.deg2rad(lon))[None, :]
    return xr.Dataset(
        {"temperature": (("latitude", "longitude"), values)},
        coords={"latitude": lat, "longitude": lon},
    )


def test_an_empty_grid_is_refused_naming_the_dim():
    with pytest.raises(SchemaError, match="dimension 'latitude' is empty"):
        xfuxi.validate(_grid_field().isel(latitude=slice(0, 0)))
    with pytest.raises(SchemaError, match="dimension 'longitude' is empty"):
        xfuxi.validate(_grid_field().isel(longitude=slice(0, 0)))


def test_regrid_of_one_latitude_is_refused_and_a_point_target_is_a_one_point_grid():
    ds = _grid_field()
    with pytest.raises(SchemaError, match="at least two latitudes.*hold 1"):
        xfuxi.regrid(ds.isel(latitude=[3]), "T21")
    point = xfuxi.regrid(ds, {"latitude": 10.0, "longitude": 20.0})  # numbers: one point
    assert point["temperature"].shape == (1, 1)
    same = xfuxi.regrid(ds, {"latitude": [10.0], "longitude": [20.0]})
    xr.testing.assert_identical(point, same)
    with pytest.raises(ValueError, match=r"target's latitude must be one sequence.*\(2, 2\)"):
        xfuxi.regrid(ds, {"latitude": [[0.0, 10.0], [20.0, 30.0]], "longitude": [0.0, 90.0]})


def test_member_dim_given_as_a_list_is_refused_naming_it():
    truth = tiny.dataset(n_time=2)["temperature"]
    members = truth.expand_dims(number=3).copy()
    with pytest.raises(TypeError, match=r"member_dim must be one dimension name; got list"):
        xfuxi.crps(members, truth, member_dim=["number"])
    assert np.isfinite(float(xfuxi.crps(members, truth, member_dim="number")))


def test_balance_summary_with_no_band_is_refused():
    rng = np.random.default_rng(0)
    names = ("geopotential", "u_component_of_wind", "v_component_of_wind")
    offset = {"geopotential": 5.5e4}
    ds = xr.Dataset(
        {
            v: (("latitude", "longitude"), rng.normal(size=(8, 16)) + offset.get(v, 0.0))
            for v in names
        },
        coords={"latitude": tiny.LAT, "longitude": tiny.LON},
    )
    assert xfuxi.balance_summary(ds, bands={"mid": (30.0, 70.0)}).sizes["band"] == 1
    with pytest.raises(ValueError, match="bands is empty"):
        xfuxi.balance_summary(ds, bands={})


def test_write_weatherbench2_checks_chunks_and_metadata_before_writing(tmp_path):
    ds = _grid_field().expand_dims(time=np.array(["2000-01-01"], dtype="M8[ns]"))
    for chunks in ({"time": 0}, {"time": -5}, {"time": 1.5}):
        with pytest.raises(ValueError, match="chunks must be positive integers"):
            xfuxi.write_weatherbench2(ds, tmp_path / "a.zarr", chunks=chunks)
    with pytest.raises(TypeError, match="metadata must be JSON-serialisable"):
        xfuxi.write_weatherbench2(ds, tmp_path / "a.zarr", metadata={"k": object()})
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left
    out = xfuxi.write_weatherbench2(ds, tmp_path / "a.zarr", metadata={"k": [1, 2]})
    assert json.loads((out / ".xfuxi-output.json").read_text())["k"] == [1, 2]


def test_area_weights_of_a_latitude_on_another_dim_name():
    lat = xr.DataArray([-45.0, 0.0, 45.0], dims="lat")
    w = xfuxi.area_weights(lat)
    assert w.dims == ("latitude",) and w["latitude"].values.tolist() == [-45.0, 0.0, 45.0]
    np.testing.assert_allclose(w, xfuxi.area_weights([-45.0, 0.0, 45.0]))


def test_assimilate_4dvar_of_what_is_no_model_names_the_argument():
    background = tiny.da_background()
    obs = xfuxi.make_observations(
        [280.0], error=1.0, time=background["time"].values[-1:], latitude=[0.0],
        longitude=[90.0], variable=["temperature"], level=[np.nan],
    )  # fmt: skip
    with pytest.raises(TypeError, match="model must be a ForecastModel.*got int"):
        xfuxi.assimilate_4dvar(background, obs, model=5)


def test_an_equator_band_that_masks_every_latitude_is_refused():
    """equator_band=100 gave an all-NaN geostrophic wind."""
    z = _grid_field()["temperature"].rename("geopotential") * 200.0
    z.attrs["units"] = "m2 s-2"
    for band in (90.0, 100.0):
        with pytest.raises(ValueError, match=r"equator_band must be in \[0, 90\)"):
            xfuxi.geostrophic_wind(z.to_dataset(), equator_band=band)


@pytest.mark.parametrize("value", ["False", "no", 0, None])
def test_switches_are_true_or_false_not_truthy(value):
    """fair="False" gave the fair CRPS, skipna="no" skipped NaN, progress="no" showed bars,
    LETKFOptions(adaptive_inflation="False") switched the inflation on: each a truthy
    value taken as True (None as False where it is no documented default)."""
    from xfuxi.assimilation.letkf import LETKFOptions

    truth = tiny.dataset(n_time=2)["temperature"]
    members = truth.expand_dims(number=3).copy() + np.arange(3.0)[:, None, None, None, None]
    message = "must be True or False"
    with pytest.raises(TypeError, match=f"fair {message}"):
        xfuxi.crps(members, truth, fair=value)
    with pytest.raises(TypeError, match=f"skipna {message}"):
        xfuxi.rmse(truth, truth, skipna=value)
    with pytest.raises(TypeError, match=f"keep_attrs {message}"):
        xfuxi.mse(truth, truth, keep_attrs=value)  # a score made by a factory
    with pytest.raises(TypeError, match=f"LETKFOptions.adaptive_inflation {message}"):
        LETKFOptions(adaptive_inflation=value)
    with pytest.raises(TypeError, match=f"weighted {message}"):
        xfuxi.normalization_stats(tiny.dataset(n_time=4), weighted=value)
    with pytest.raises(TypeError, match=f"correction {message}"):
        xfuxi.plot_spread_skill(
            members.isel(level=0), truth.isel(level=0), dim="time", correction=value
        )
    if value is not None:  # None: the default of these (seasonal: by the data; progress:
        # the global option)
        with pytest.raises(TypeError, match="seasonal must be True, False or None"):
            xfuxi.climatology(tiny.dataset(n_time=4), seasonal=value)
        with pytest.raises(TypeError, match="progress must be True, False or None"):
            xfuxi.forecast(tiny.dataset(n_time=2), model=tiny.model(), steps=1, progress=value)
    xfuxi.forecast(tiny.dataset(n_time=2), model=tiny.model(), steps=1, progress=np.False_)
    # True and False (NumPy's too) as ever
    assert float(xfuxi.crps(members, truth, fair=np.bool_(False))) == float(
        xfuxi.crps(members, truth, fair=False)
    )
    assert LETKFOptions(adaptive_inflation=True).adaptive_inflation is True


def test_climatology_refuses_what_its_grouped_means_would_drop_or_lump():
    """A variable of strings vanished from the climatology; no time failed in xarray's
    groupby; a state at hh:30 was counted as hh:00."""
    ds = tiny.dataset(n_time=4)
    assert sorted(xfuxi.climatology(ds).data_vars) == sorted(ds.data_vars)
    with pytest.raises(SchemaError, match=r"variable\(s\) \['temperature'\] are not numeric"):
        xfuxi.climatology(ds.assign(temperature=ds["temperature"].astype(str)))
    with pytest.raises(ValueError, match="climatology of no time"):
        xfuxi.climatology(ds.isel(time=[]))
    half_past = ds.assign_coords(time=ds["time"] + np.timedelta64(30, "m"))
    assert xfuxi.climatology(half_past).sizes["hour"] == 4  # all at hh:30: each its hour
    mixed = ds.assign_coords(time=ds["time"] + np.array([0, 30, 0, 0], "m8[m]"))
    with pytest.raises(ValueError, match="at 2 different offsets from the hour"):
        xfuxi.climatology(mixed)


def test_innovation_statistics_by_one_name_or_a_misspelt_one():
    """by="level" was iterated as its letters (no statistics by level, no error); a
    misspelt name was ignored; by=None failed raw."""
    state = tiny.dataset(n_time=2)
    obs = xfuxi.random_observations(state + 1.0, n=30, variables=["temperature"], error=1.0)
    by_level = xfuxi.innovation_statistics(obs, state, by=("level",))["temperature"]
    assert "level" in by_level.dims
    xr.testing.assert_identical(xfuxi.innovation_statistics(obs, state, by="level")["temperature"],
                                by_level)  # fmt: skip
    with pytest.raises(ValueError, match=r"by names \['lvl'\], which no innovation has"):
        xfuxi.innovation_statistics(obs, state, by=("lvl",))
    pooled = xfuxi.innovation_statistics(obs, state, by=None)["temperature"]
    assert pooled.dims == ("statistic",)


def test_the_imager_and_fuxi_da_refuse_temperatures_and_radiances_in_celsius(fuxi_da_case):
    """A truth in °C gave radiances of -12 K, a background in °C was analysed as kelvin,
    radiances in °C (or scaled) were assimilated: all without a word."""
    from tests import tiny_da
    from xfuxi.observations.imager import ImagerError

    background, radiances, model = fuxi_da_case
    truth = tiny_da.truth(4)
    celsius = truth.assign(temperature=truth["temperature"] - 273.15)
    with pytest.raises(ImagerError, match=r"truth's variable 'temperature'.*°C instead of K"):
        xfuxi.imager_observations(celsius, satellites=[90.0], channels=["ir10.8"])
    cold = background.assign(temperature=background["temperature"] - 273.15)
    with pytest.raises(ValueError, match=r"background's variable 'temperature'.*°C"):
        xfuxi.assimilate_da(cold, radiances, model=model)
    for wrong in (radiances["brightness_temperature"] - 273.15,
                  radiances["brightness_temperature"] * 1000.0):  # fmt: skip
        with pytest.raises(ImagerError, match="brightness temperatures lie within 100..400 K"):
            xfuxi.assimilate_da(
                background, radiances.assign(brightness_temperature=wrong), model=model
            )
    assert xfuxi.assimilate_da(background, radiances, model=model).analysis.sizes["time"] > 0


def _l96_cycle(truth=None, **kw):
    from xfuxi.experiments.lorenz96 import Lorenz96Network, lorenz96_truth
    from xfuxi.models.lorenz96 import lorenz96_model

    truth = lorenz96_truth(n_states=8, seed=1) if truth is None else truth
    method = kw.pop("method", None) or xfuxi.LETKFMethod(
        options=xfuxi.LETKFOptions(n_members=6, qc_threshold=None),
        localization=xfuxi.LocalizationOptions(length_scale=4.0, n_points=40),
        initial=xfuxi.BackgroundError(amplitude=1.0, wavelength=1, octaves=1,
                                      perturbation_std=kw.pop("std", (1.0,))),
        additive=kw.pop("additive", None),
    )  # fmt: skip
    config = xfuxi.CycleConfig(n_cycles=2, lead_steps=2, initial_error=1.0)
    return xfuxi.cycle(truth, Lorenz96Network(seed=2), method=method, progress=False,
                       model=kw.pop("model", lorenz96_model()), config=config, **kw)  # fmt: skip


def test_cycle_names_what_does_not_fit_before_the_first_cycle(tmp_path):
    """Settings that do not fit the model failed as tensor shapes inside the first cycle;
    a DataArray truth, a truth with members, model=5 and store=5 failed raw."""
    import torch

    from xfuxi.experiments.lorenz96 import lorenz96_truth

    truth = lorenz96_truth(n_states=8, seed=1)
    with pytest.raises(
        ValueError, match=r"additive samples are .* \(3, 1, 1, 20\).*\(K, 1, 1, 40\)"
    ):
        _l96_cycle(additive=torch.randn(3, 1, 1, 20))
    with pytest.raises(ValueError, match=r"additive samples are .* \(3, 2, 1, 40\)"):
        _l96_cycle(additive=torch.randn(3, 2, 1, 40))
    with pytest.raises(ValueError, match="initial perturbation_std has 2 value.*has 1 channels"):
        _l96_cycle(std=(1.0, 2.0))
    with pytest.raises(TypeError, match="the truth must be an xarray.Dataset"):
        _l96_cycle(truth["x"])
    with pytest.raises(SchemaError, match="ensemble dim 'number'.*truth.isel\\(number=0\\)"):
        _l96_cycle(truth.expand_dims(number=[0, 1]))
    with pytest.raises(TypeError, match="model must be a ForecastModel.*got int"):
        _l96_cycle(model=5)
    with pytest.raises(TypeError, match="store must be a path.*got int"):
        _l96_cycle(store=5)
    with pytest.raises(TypeError, match="store must be a path.*got int"):
        xfuxi.open_cycle(5)
    assert list(tmp_path.iterdir()) == []
    assert _l96_cycle(store=tmp_path / "run.zarr").scores.sizes["time"] == 2  # the good one


def test_imager_refuses_odd_satellites_zenith_limits_and_no_time():
    """Satellites "90" (converted silently) or the same twice (modulo 360) were accepted;
    max_zenith="70" and times=[] failed in NumPy."""
    from tests import tiny_da
    from xfuxi.observations.imager import ImagerError

    truth = tiny_da.truth(4)
    kw = {"channels": ["ir10.8"], "frames": (0.0,)}
    for satellites, message in (
        (["90"], "must be sub-satellite longitudes"),
        ([90.0, 90.0], "repeats a longitude"),
        ([-90.0, 270.0], "repeats a longitude"),
    ):
        with pytest.raises(ImagerError, match=message):
            xfuxi.imager_observations(truth, satellites=satellites, **kw)
    with pytest.raises(ImagerError, match="max_zenith must be a number of degrees"):
        xfuxi.imager_observations(truth, satellites=[90.0], max_zenith="70", **kw)
    with pytest.raises(ImagerError, match="times is empty"):
        xfuxi.imager_observations(truth, satellites=[90.0], times=[], **kw)
    two = xfuxi.imager_observations(truth, satellites=np.array([90.0, 270.0]), **kw)
    assert two.sizes["time"] > 0


def test_innovations_name_the_observations_and_the_state_and_a_misspelt_obs_dim():
    """The grid checks of innovations spoke of a forecast and a truth; point observations
    with a misspelt obs_dim were taken as gridded variables named value and error."""
    state = tiny.dataset(n_time=2)
    gridded = state[["temperature"]] + 1.0
    with pytest.raises(ValueError, match="state has dimension 'number' that the observation set"):
        xfuxi.innovations(gridded, state.expand_dims(number=2).copy())
    points = xfuxi.random_observations(state, n=5, variables=["temperature"], error=1.0)
    with pytest.raises(ValueError, match=r"obs_dim='n' is not a dim of the observations"):
        xfuxi.innovations(points, state, obs_dim="n")
    assert xfuxi.innovations(points, state).sizes["obs"] == 5


def test_stats_helpers_name_their_odd_arguments():
    """step=None gave an AttributeError on NaT, step="abc" pandas' words, dim=["time"]
    "unhashable type"; select_climatology of a DatetimeIndex an AttributeError on .dt."""
    import pandas as pd

    from xfuxi.data.stats import select_climatology

    ds = tiny.dataset(n_time=4)
    for step in (None, "abc", "-6h", 0):
        with pytest.raises(ValueError, match="step must be a positive time span"):
            xfuxi.normalization_stats(ds, step=step)
    with pytest.raises(TypeError, match="dim must be the name of the time dim"):
        xfuxi.normalization_stats(ds, dim=["time"])
    clim = xr.DataArray([10.0, 20.0], dims="hour", coords={"hour": [0, 12]})
    index = pd.to_datetime(["2020-01-01T12", "2020-01-02T00"])
    with pytest.raises(TypeError, match="times must be a DataArray of datetime64"):
        select_climatology(clim, index)
    with pytest.raises(TypeError, match="of float64"):
        select_climatology(clim, xr.DataArray([1.0, 2.0], dims="time"))
    picked = select_climatology(clim, xr.DataArray(index, dims="time"))
    assert picked.values.tolist() == [20.0, 10.0]
    with pytest.raises(ValueError, match=r"holds hour \[0, 12\] more than once"):
        select_climatology(xr.concat([clim, clim], "hour"), xr.DataArray(index, dims="time"))


def test_coordinates_that_are_no_degrees_or_no_levels_are_refused():
    """Latitudes as strings failed in NumPy; in radians (values within ±1.57) they passed as
    degrees; a level dim without values was read as level 0 hPa; from_era5([]) said it
    wanted a list of paths."""
    ds = _grid_field()
    with pytest.raises(SchemaError, match="'latitude' must be numbers of degrees"):
        xfuxi.validate(ds.assign_coords(latitude=ds["latitude"].astype(str)))
    radians = ds.assign_coords(latitude=np.deg2rad(ds["latitude"]).assign_attrs(units="radians"))
    with pytest.raises(SchemaError, match="'latitude' is in radians.*np.degrees"):
        xfuxi.validate(radians)
    levels = ds.expand_dims(level=2)
    with pytest.raises(SchemaError, match="'level' has no coordinate values"):
        xfuxi.validate(levels)
    with pytest.raises(ValueError, match="from_era5 of an empty list"):
        xfuxi.from_era5([])


def test_plot_cycle_and_map_overlays_name_their_odd_inputs():
    """plot_cycle of one selected channel failed with "iteration over a 0-d array", drew
    repeated times as a zig-zag; plot_map(observations=5) an AttributeError on coords."""
    import pandas as pd

    t = pd.date_range("2020-01-01", periods=4, freq="6h")
    need = ("analysis_error", "background_error", "free_error", "spread")
    s = xr.Dataset({k: (("time", "channel"), np.ones((4, 1))) for k in need},
                   coords={"time": t, "channel": ["x"]})  # fmt: skip
    with pytest.raises(ValueError, match="scores have no 'channel' dim"):
        xfuxi.plot_cycle(s.isel(channel=0))
    with pytest.raises(ValueError, match="times .* more than once"):
        xfuxi.plot_cycle(xr.concat([s, s.isel(time=[0])], "time"))
    with pytest.raises(TypeError, match="observations must be a Dataset or DataArray"):
        xfuxi.plot_map(_grid_field()["temperature"], observations=5)


def test_a_method_without_a_name_or_a_store_with_damaged_settings_is_refused(tmp_path):
    """LETKFMethod(name=None) was written into the store; a damaged run.json was returned
    by open_cycle as text, and failed a resume with a raw JSONDecodeError."""
    method = xfuxi.LETKFMethod(
        options=xfuxi.LETKFOptions(n_members=6, qc_threshold=None),
        localization=xfuxi.LocalizationOptions(length_scale=4.0, n_points=40),
        initial=xfuxi.BackgroundError(amplitude=1.0, wavelength=1, octaves=1,
                                      perturbation_std=(1.0,)),
        name=None,
    )  # fmt: skip
    with pytest.raises(TypeError, match="the method's name must be a non-empty string"):
        _l96_cycle(method=method)
    store = tmp_path / "run.zarr"
    _l96_cycle(store=store)
    (store / "run.json").write_text('{"method": "LETKF", "opt')  # cut short
    with pytest.raises(ValueError, match="run.json cannot be read.*damaged"):
        xfuxi.open_cycle(store)
    with pytest.raises(ValueError, match="run.json cannot be read.*damaged"):
        _l96_cycle(store=store)


def test_a_configuration_of_ones_own_checks_its_switches_however_annotated():
    """Only the spellings "bool" and "bool | None" were read as switches: a field written
    Optional[bool] (or without ``from __future__ import annotations``) went unchecked."""
    import dataclasses
    from typing import Optional

    from xfuxi.config import Config, FlagError

    @dataclasses.dataclass(frozen=True)
    class Mine(Config):
        a: bool = True
        b: Optional[bool] = None  # noqa: UP045 - the spelling under test
        c: "bool|None" = None  # noqa: UP037

    assert Mine(a=False, b=None, c=True).a is False
    for field in ("a", "b", "c"):
        with pytest.raises(FlagError, match=f"Mine.{field} must be True"):
            Mine(**{field: "no"})
    with pytest.raises(FlagError, match="Mine.a must be True or False;"):
        Mine(a=None)


def test_more_switches_are_true_or_false():
    """validate(allow_nan="no") allowed NaN, single_observation(noise="no") added noise,
    plot_scorecard(annotate="no") annotated: truthy strings taken as True."""
    ds = tiny.dataset(n_time=2)
    with pytest.raises(xfuxi.config.FlagError, match="allow_nan must be True or False"):
        xfuxi.validate(ds, allow_nan="no")
    with pytest.raises(xfuxi.config.FlagError, match="noise must be True or False"):
        xfuxi.single_observation(ds, variable="temperature", latitude=0.0, longitude=0.0,
                                 level=500.0, time=ds["time"].values[0], error=1.0,
                                 noise="no")  # fmt: skip
    assert xfuxi.validate(ds, allow_nan=np.True_).sizes == ds.sizes
