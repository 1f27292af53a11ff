"""Tests of the deterministic forecast API (xfuxi.forecast.forecast / forecast_iter)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.data.schema import SchemaError
from xfuxi.forecasting.deterministic import forecast, forecast_iter
from xfuxi.models.base import ForecastModel, NormStats, wrap_model

LAT, LON = tiny.LAT, tiny.LON
CHANNELS = [
    ("geopotential", 500.0),
    ("temperature", 500.0),
    ("temperature", 850.0),
    ("surface_pressure", None),
]


def _data(n_times: int = 4, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    shape3 = (n_times, 2, LAT.size, LON.size)
    return xr.Dataset(
        {
            "geopotential": (
                ("time", "level", "latitude", "longitude"),
                5.5e4 + 100 * rng.standard_normal(shape3),
            ),
            "temperature": (
                ("time", "level", "latitude", "longitude"),
                260 + 5 * rng.standard_normal(shape3),
            ),
            "surface_pressure": (
                ("time", "latitude", "longitude"),
                1e5 + 500 * rng.standard_normal((n_times, LAT.size, LON.size)),
            ),
        },
        coords={
            "time": pd.date_range("2000-01-01", periods=n_times, freq="6h"),
            "level": [500, 850],
            "latitude": LAT,
            "longitude": LON,
        },
    )


def _fuxi() -> ForecastModel:
    stats = NormStats(
        np.array([5.5e4, 260, 260, 1e5]), np.array([100, 5, 5, 500.0]), np.array([10, 1, 1, 50.0])
    )
    return tiny.fuxi_model(CHANNELS, stats=stats)


class Trend(torch.nn.Module):
    """Linear extrapolation x_{t+1} = 2 x_t - x_{t-1}: an exact, independent reference."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x[:, 1] - x[:, 0]


def test_layout_coords_and_attrs():
    ds = _data(3)
    fc = forecast(ds, model=_fuxi(), steps=5, progress=False)
    assert set(fc.dims) == {"time", "prediction_timedelta", "level", "latitude", "longitude"}
    assert fc["geopotential"].dims == (
        "time", "prediction_timedelta", "level", "latitude", "longitude"
    )  # fmt: skip
    assert fc["surface_pressure"].dims == ("time", "prediction_timedelta", "latitude", "longitude")
    np.testing.assert_array_equal(fc.time.values, ds.time.values[1:])
    np.testing.assert_array_equal(
        fc.prediction_timedelta.values, (np.arange(1, 6) * 6).astype("timedelta64[h]")
    )
    np.testing.assert_array_equal(fc.latitude.values, LAT)
    np.testing.assert_array_equal(fc.level.values, [500.0, 850.0])
    assert fc.geopotential.dtype == np.float32 and fc.temperature.attrs["units"] == "K"
    # named for plots and readers (the long names were the truth's only)
    assert fc.temperature.attrs["long_name"] == "air temperature"
    assert fc.prediction_timedelta.attrs["long_name"] == "lead time"
    ens = xfuxi.ensemble(
        ds, model=_fuxi(), n=2, steps=1, perturbation=xfuxi.GaussianNoise(), progress=False
    )
    assert ens.number.attrs["long_name"] == "ensemble member"
    assert fc.attrs["model"] == "tiny-fuxi" and fc.attrs["steps"] == 5
    assert fc.attrs["xfuxi_version"] == xfuxi.__version__
    assert {"checkpoint_sha256", "created", "source"} <= set(fc.attrs)
    # what it started from, as the initial states' attributes say (title, else source)
    assert "initial_conditions" not in fc.attrs  # the test data have neither
    titled = ds.assign_attrs(title="Held-Suarez world (T21, seed 3)", source="dinosaur")
    fc2 = forecast(titled, model=_fuxi(), steps=1, progress=False)
    assert fc2.attrs["initial_conditions"] == "Held-Suarez world (T21, seed 3)"
    assert fc2.attrs["source"] == "xfuxi.forecast"
    # states that were themselves forecast keep the origin, not "xfuxi.forecast"
    again = ds.assign_attrs(source="xfuxi.forecast", initial_conditions="ERA5")
    fc3 = forecast(again, model=_fuxi(), steps=1, progress=False)
    assert fc3.attrs["initial_conditions"] == "ERA5"
    # geopotential is a channel at 500 hPa only: the 850 hPa slot is NaN (outer join of levels)
    assert bool(np.isfinite(fc.geopotential.sel(level=500)).all())
    assert bool(fc.geopotential.sel(level=850).isnull().all())
    assert bool(np.isfinite(fc.temperature).all() & np.isfinite(fc.surface_pressure).all())


def test_wrapped_model_gives_exact_linear_extrapolation():
    ds = _data(2)
    model = wrap_model(Trend(), channels=CHANNELS, latitude=LAT, longitude=LON)
    fc = forecast(ds, model=model, steps=3, progress=False)
    x0 = ds.temperature.isel(time=0).values
    x1 = ds.temperature.isel(time=1).values
    for k in range(3):
        expect = x1 + (k + 1) * (x1 - x0)
        np.testing.assert_allclose(
            fc.temperature.isel(time=0, prediction_timedelta=k).values, expect, rtol=1e-5
        )
    # a ForecastModel is not wrapped again: every argument was ignored
    with pytest.raises(TypeError, match="is a ForecastModel already"):
        wrap_model(model, channels=CHANNELS[:1], latitude=LAT, longitude=LON, residual=True)


def test_iter_matches_forecast_and_batches_do_not_change_results():
    ds = _data(5)
    model = _fuxi()
    full = forecast(ds, model=model, steps=4, progress=False)
    parts = list(forecast_iter(ds, model=model, steps=4, batch_size=3, progress=False))
    assert len(parts) == 4 and all(p.sizes["prediction_timedelta"] == 1 for p in parts)
    joined = xr.concat(parts, "prediction_timedelta")
    xr.testing.assert_allclose(full, joined, rtol=1e-5, atol=1e-3)
    # each initial time alone equals its row of the batched forecast
    one = forecast(ds, model=model, steps=4, init_times=[ds.time.values[2]], progress=False)
    xr.testing.assert_allclose(one.isel(time=0), full.sel(time=ds.time.values[2]), rtol=1e-5,
                               atol=1e-3)  # fmt: skip


def test_accessor_matches_function_and_inputs_untouched():
    ds = _data(3)
    before = ds.copy(deep=True)
    model = _fuxi()
    params = [p.detach().clone() for p in model.parameters()]
    a = ds.fuxi.forecast(model=model, steps=2, progress=False)
    b = forecast(ds, model=model, steps=2, progress=False)
    xr.testing.assert_equal(a.drop_attrs(), b.drop_attrs())
    xr.testing.assert_identical(ds, before)
    assert model.training  # training flag restored
    assert all(torch.equal(p, q) for p, q in zip(params, model.parameters()))
    assert torch.is_grad_enabled()


def test_dtype_and_device_options_use_a_copy():
    ds = _data(2)
    model = _fuxi()
    f32 = forecast(ds, model=model, steps=2, progress=False)
    f64 = forecast(ds, model=model, steps=2, dtype="float64", device="cpu", progress=False)
    assert next(model.parameters()).dtype == torch.float32  # caller's model unchanged
    xr.testing.assert_allclose(f32, f64, rtol=1e-4, atol=1e-2)
    with pytest.raises(ValueError, match="dtype"):
        forecast(ds, model=model, steps=1, dtype="int32", progress=False)


def test_the_copy_for_another_dtype_keeps_a_model_subclass():
    """The copy was rebuilt as a plain ForecastModel: a subclass's own forward was dropped,
    and asking for float64 changed the forecast itself."""

    class Damped(ForecastModel):
        def forward(self, x):
            return 0.5 * super().forward(x)

    base = _fuxi()
    model = Damped(base.net, channels=base.channels, latitude=base.latitude,
                   longitude=base.longitude, stats=base.stats, residual=base.residual)  # fmt: skip
    ds = _data(2)
    f32 = forecast(ds, model=model, steps=1, progress=False)
    f64 = forecast(ds, model=model, steps=1, dtype="float64", progress=False)
    xr.testing.assert_allclose(f32.drop_attrs(), f64.drop_attrs(), rtol=1e-4, atol=1e-2)


def test_no_autograd_state_in_outputs():
    ds = _data(2)
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append((torch.is_grad_enabled(), torch.is_inference_mode_enabled()))
            return x[:, 1]

    forecast(ds, model=wrap_model(Spy(), channels=CHANNELS, latitude=LAT, longitude=LON),
             steps=2, progress=False)  # fmt: skip
    assert seen == [(False, True), (False, True)]


def test_errors_name_what_is_wrong():
    ds = _data(3)
    model = _fuxi()
    with pytest.raises(SchemaError, match="surface_pressure"):
        forecast(ds.drop_vars("surface_pressure"), model=model, steps=1)
    with pytest.raises(SchemaError, match="grid"):
        forecast(ds.isel(longitude=slice(0, 8)), model=model, steps=1)
    with pytest.raises(SchemaError, match="needs data at"):
        forecast(ds, model=model, steps=1, init_times=[ds.time.values[0]])
    with pytest.raises(ValueError, match="steps"):
        forecast(ds, model=model, steps=0)
    with pytest.raises(ValueError, match="steps must be an integer"):  # a lead, not a count
        forecast(ds, model=model, steps=np.timedelta64(12, "h"))
    with pytest.raises(ValueError, match="batch_size"):
        forecast(ds, model=model, steps=1, batch_size=0)
    with pytest.raises(TypeError, match="wrap_model"):
        forecast(ds, model=Trend(), steps=1)
    bad = ds.copy(deep=True)
    bad["temperature"][0, 0, 0, 0] = np.nan
    with pytest.raises(SchemaError, match="NaN"):
        forecast(bad, model=model, steps=1)


def _like_the_world(model: ForecastModel, n_times: int = 2, seed: int = 1) -> xr.Dataset:
    """Data on the model's grid: its mean plus half its std of noise, every 6 hours."""
    rng = np.random.default_rng(seed)
    mean, std = model.stats.mean, model.stats.std
    chans = model.channels
    shape = (n_times, *model.grid_shape)
    data = {}
    for var in dict.fromkeys(c[0] for c in chans):
        idx = [i for i, c in enumerate(chans) if c[0] == var]
        vals = np.stack([mean[i] + 0.5 * std[i] * rng.standard_normal(shape) for i in idx], axis=1)
        if chans[idx[0]][1] is None:
            data[var] = (("time", "latitude", "longitude"), vals[:, 0])
        else:
            data[var] = (("time", "level", "latitude", "longitude"), vals)
    levels = sorted({c[1] for c in chans if c[1] is not None})
    return xr.Dataset(
        data,
        coords={
            "time": pd.date_range("2001-01-01", periods=n_times, freq="6h"),
            "level": levels,
            "latitude": model.latitude,
            "longitude": model.longitude,
        },
    )


def test_pretrained_model_by_name_runs_and_stays_finite():
    model = xfuxi.load_model("fuxi-hs-t21")
    ds = _like_the_world(model)
    fc = forecast(ds, model="fuxi-hs-t21", steps=4, progress=False)
    assert fc.attrs["checkpoint_sha256"] == model.config["sha256"]
    assert all(bool(np.isfinite(fc[v]).all()) for v in fc.data_vars)


def test_cli_forecast_writes_a_zarr_store(tmp_path):
    from xfuxi.cli import main
    from xfuxi.models.checkpoint import save_model

    ckpt = save_model(_fuxi(), tmp_path / "model")
    ds = _data(3)
    ds.to_netcdf(tmp_path / "init.nc")
    out = tmp_path / "fc.zarr"
    args = ["--no-progress", "forecast", str(tmp_path / "init.nc"), "--model", str(ckpt)]
    assert main([*args, "--steps", "2", "--output", str(out)]) == 0
    got = xr.open_zarr(out)
    ref = forecast(ds, model=ckpt, steps=2, progress=False)
    xr.testing.assert_allclose(got.load().drop_attrs(), ref.drop_attrs())
    assert got.attrs["checkpoint_sha256"] == ref.attrs["checkpoint_sha256"] != "none"


class AddConst(torch.nn.Module):
    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 1] + self.c


def test_cascade_uses_each_stage_over_its_steps():
    from xfuxi.models.cascade import Cascade

    grid = dict(channels=CHANNELS, latitude=LAT, longitude=LON)
    short = wrap_model(AddConst(1.0), name="short", **grid)
    medium = wrap_model(AddConst(10.0), name="medium", **grid)
    long = wrap_model(AddConst(100.0), name="long", **grid)
    cascade = xfuxi.Cascade([short, medium, long], switch_steps=[2, 3])
    assert [cascade.stage_index(k) for k in range(1, 6)] == [0, 0, 1, 2, 2]
    ds = _data(3)
    fc = forecast(ds, model=cascade, steps=5, batch_size=1, progress=False)
    x = ds.temperature.isel(time=-1).values
    for k, add in enumerate([1, 2, 12, 112, 212]):
        np.testing.assert_allclose(
            fc.temperature.isel(time=-1, prediction_timedelta=k).values, x + add, rtol=1e-6
        )
    assert fc.attrs["model"] == "short+medium+long"
    assert fc.attrs["cascade_stages"] == "short,medium,long"
    assert fc.attrs["cascade_switch_steps"] == "2,3"
    items = list(forecast_iter(ds, model=cascade, steps=5, progress=False))
    xr.testing.assert_allclose(xr.concat(items, "prediction_timedelta"), fc)
    # ensembles run through the cascade too: each member's perturbed state, then the stages
    # (the models carry no statistics: the noise's std is given, 1 in every channel)
    noise = xfuxi.GaussianNoise(std_fraction=0.1, perturbation_std=(1.0,) * len(CHANNELS))
    ens = xfuxi.ensemble(
        ds, model=cascade, n=3, steps=5, perturbation=noise, seed=4, chunk_size=2,
        progress=False,
    )  # fmt: skip
    single = xfuxi.ensemble(
        ds,
        model=short,
        n=3,
        steps=1,
        perturbation=noise,
        seed=4,
        progress=False,
    )  # same seed and method: the same initial perturbations, first step by the short stage
    start = single.temperature.isel(prediction_timedelta=0) - 1.0  # perturbed state at t0
    for k, add in enumerate([1, 2, 12, 112, 212]):
        np.testing.assert_allclose(
            ens.temperature.isel(prediction_timedelta=k).values, (start + add).values, rtol=1e-6
        )
    assert ens.attrs["cascade_stages"] == "short,medium,long"
    assert float(ens.temperature.isel(prediction_timedelta=0).std("number").max()) > 0
    # 4DVar needs one one-step model and refuses a cascade by name
    with pytest.raises(TypeError, match="stages\\[0\\]"):
        xfuxi.forecast_error_samples(ds, model=cascade, lead_steps=1, n_samples=1)
    with pytest.raises(ValueError, match="switch step"):
        Cascade([short, medium], switch_steps=[])
    with pytest.raises(ValueError, match="increase strictly"):
        Cascade([short, medium, long], switch_steps=[3, 3])
    other = wrap_model(AddConst(1.0), channels=CHANNELS[:2], latitude=LAT, longitude=LON)
    with pytest.raises(SchemaError, match="different channels"):
        Cascade([short, other], switch_steps=[1])
    with pytest.raises(TypeError, match="stage 1"):
        Cascade([short, AddConst(1.0)], switch_steps=[1])


def test_shipped_cascade_loads_by_name_and_its_first_stage_is_the_short_model():
    cascade = xfuxi.load_model("fuxi-hs-t21-cascade")
    assert isinstance(cascade, xfuxi.Cascade)
    assert [m.name for m in cascade.stages] == ["fuxi-hs-t21", "fuxi-hs-t21-medium"]
    assert cascade.switch_steps == (20,)
    short = xfuxi.load_model("fuxi-hs-t21")
    for a, b in zip(cascade.stages[0].parameters(), short.parameters()):
        assert torch.equal(a, b)
    assert not all(
        torch.equal(a, b) for a, b in zip(cascade.stages[1].parameters(), short.parameters())
    )


# --- issue 19 item 5: ds.fuxi.forecast() runs the shipped cascade for 10 days ---


def test_forecast_without_arguments_runs_the_shipped_cascade_for_10_days():
    assert "fuxi-hs-t21-cascade" in xfuxi.pretrained_models()
    ds = _like_the_world(xfuxi.load_model("fuxi-hs-t21"))
    fc = ds.fuxi.forecast()
    assert fc.attrs["model"] == "fuxi-hs-t21-cascade"
    assert fc.attrs["cascade_stages"] == "fuxi-hs-t21,fuxi-hs-t21-medium"
    assert fc.attrs["steps"] == 40 and fc.sizes["prediction_timedelta"] == 40
    leads = fc.prediction_timedelta.values
    assert leads[0] == np.timedelta64(6, "h") and leads[-1] == np.timedelta64(10, "D")
    assert all(bool(np.isfinite(fc[v]).all()) for v in fc.data_vars)


def test_default_model_is_the_cascade_and_explicit_arguments_win():
    ds = _like_the_world(xfuxi.load_model("fuxi-hs-t21"))
    by_default = ds.fuxi.forecast(steps=2, progress=False)
    explicit = forecast(ds, model="fuxi-hs-t21-cascade", steps=2, progress=False)
    xr.testing.assert_identical(by_default.drop_attrs(), explicit.drop_attrs())
    assert by_default.attrs["model"] == explicit.attrs["model"] == "fuxi-hs-t21-cascade"
    short = forecast(ds, model="fuxi-hs-t21", steps=2, progress=False)
    assert short.attrs["model"] == "fuxi-hs-t21" and "cascade_stages" not in short.attrs
    items = list(forecast_iter(ds, steps=2, progress=False))
    xr.testing.assert_identical(
        xr.concat(items, "prediction_timedelta").drop_attrs(), explicit.drop_attrs()
    )
    # steps default to 10 days of the model's own time step
    wrapped = wrap_model(Trend(), channels=CHANNELS, latitude=LAT, longitude=LON)
    assert forecast(_data(2), model=wrapped, progress=False).sizes["prediction_timedelta"] == 40


# --- issue 20: bad input gets a message that says what to do ---


def test_dataarray_or_ensemble_dim_is_refused_with_a_message():
    ds = _data(3)
    model = _fuxi()
    with pytest.raises(TypeError, match=r"must be an xarray.Dataset.*to_dataset\(name="):
        forecast(ds["temperature"], model=model, steps=1)
    with pytest.raises(SchemaError, match=r"ensemble dim 'number'.*isel\(number=0\)"):
        forecast(ds.expand_dims(number=2), model=model, steps=1)
    with pytest.raises(SchemaError, match=r"dims \['prediction_timedelta'\]"):
        forecast(ds.expand_dims(prediction_timedelta=[np.timedelta64(0, "h")]), model=model,
                 steps=1)  # fmt: skip
    with pytest.raises(SchemaError, match="ensemble dim 'number'"):
        xfuxi.ensemble(ds.expand_dims(number=2), model=model, n=2, steps=1,
                       perturbation=xfuxi.GaussianNoise(std_fraction=0.1), seed=0,
                       progress=False)  # fmt: skip


def test_init_times_duplicates_are_refused_and_order_is_ascending():
    ds = _data(4)
    model = _fuxi()
    t = ds.time.values
    with pytest.raises(SchemaError, match="init_times has duplicated values"):
        forecast(ds, model=model, steps=1, init_times=[t[2], t[2]])
    unsorted = forecast(ds, model=model, steps=2, init_times=[t[3], t[1], t[2]], progress=False)
    np.testing.assert_array_equal(unsorted.time.values, t[1:])
    xr.testing.assert_identical(
        unsorted.drop_attrs(), forecast(ds, model=model, steps=2, progress=False).drop_attrs()
    )


def test_one_init_time_alone_and_a_variable_the_model_does_not_read():
    ds = _data(4)
    model = _fuxi()
    t = ds.time.values[2]

    def run(data, when):  # (the "created" time differs by a second now and then)
        out = forecast(data, model=model, steps=1, init_times=when, progress=False)
        out.attrs.pop("created", None)
        return out

    ref = run(ds, [t])
    # one time given alone: a string was split into its characters, a Timestamp not iterable
    for one in (str(pd.Timestamp(t)), pd.Timestamp(t), t):
        xr.testing.assert_identical(run(ds, one), ref)
    # CF bounds (a variable with a dim the model does not know) were refused as "dims
    # ['bnds']"; the model does not read them
    bounds = xr.DataArray(np.zeros((ds.sizes["latitude"], 2)), dims=("latitude", "bnds"))
    xr.testing.assert_identical(run(ds.assign(latitude_bnds=bounds), [t]), ref)


def test_init_times_validate_and_copy_only_the_times_used(monkeypatch):
    import xfuxi.forecasting.edge as edge

    ds = _data(6)
    model = _fuxi()
    t = ds.time.values
    ref = forecast(ds, model=model, steps=1, progress=False).sel(time=[t[3]])
    seen = []

    def recording(data, **kw):
        seen.append(data.sizes["time"])
        return validate(data, **kw)

    validate = edge.validate
    monkeypatch.setattr(edge, "validate", recording)
    # the record is reversed: the times used are found by value, not by position
    out = forecast(ds.isel(time=slice(None, None, -1)), model=model, steps=1,
                   init_times=[t[3]], progress=False)  # fmt: skip
    assert seen == [2]  # t - 6 h and t; the whole record (6 times) was validated and copied
    xr.testing.assert_allclose(out.drop_attrs(), ref.drop_attrs())
    with pytest.raises(SchemaError, match="needs data at .* not both in the data"):
        forecast(ds.isel(time=[0, 2]), model=model, steps=1, init_times=[t[2]])


def test_forecast_variables_share_one_output_buffer():
    fc = forecast(_data(3), model=_fuxi(), steps=2, progress=False)

    def root(a):
        while a.base is not None:
            a = a.base
        return a

    # the rollout's output buffer is handed over: no second copy of the forecast (it took
    # twice the forecast's memory at its peak); geopotential, at 500 hPa only, is filled
    # out to both levels and so a copy of its own
    assert root(fc["temperature"].values) is root(fc["surface_pressure"].values)
    assert fc["geopotential"].sel(level=850.0).isnull().all()


def test_float16_overflow_names_the_channel():
    ds = _data(2)
    with np.errstate(over="ignore"):
        half = ds.astype("float16")  # surface pressure ~1e5 overflows float16 (max 65504)
    with pytest.raises(SchemaError, match=r"\['surface_pressure'\].*float16.*float32"):
        forecast(half, model=_fuxi(), steps=1)


def test_values_far_from_the_model_statistics_are_refused():
    ds = _data(3)
    model = _fuxi()
    # temperatures in °C
    celsius = ds.assign(temperature=ds.temperature - 273.15)
    with pytest.raises(SchemaError, match=r"temperature@500: mean -1\d.* std .*°C instead of K"):
        forecast(celsius, model=model, steps=1)
    # within the physical range but 20 std from the model's mean (std 5 K)
    with pytest.raises(SchemaError, match=r"temperature@500: mean 36\d.* std from the model"):
        forecast(ds.assign(temperature=ds.temperature + 100), model=model, steps=1)
    # geopotential height (m) instead of geopotential (m2 s-2)
    with pytest.raises(SchemaError, match=r"geopotential@500.*geopotential height in m"):
        forecast(ds.assign(geopotential=ds.geopotential / 9.80665), model=model, steps=1)
    # a single corrupt value
    bad = ds.copy(deep=True)
    bad["surface_pressure"][1, 2, 3] = 1e5 + 100 * 500.0
    with pytest.raises(SchemaError, match=r"surface_pressure: value 150000 is 100 std"):
        forecast(bad, model=model, steps=1)
    # 4DVar checks its background the same way
    t0 = ds.time.values[-1]
    obs = xfuxi.make_observations([260.0], error=1.0, time=t0, latitude=10.0, longitude=45.0,
                                  variable="temperature", level=850.0)  # fmt: skip
    kw = dict(model=model, background_error=xfuxi.BackgroundError(n_members=4), progress=False)
    with pytest.raises(SchemaError, match=r"implausible for model 'tiny-fuxi'.*geopotential@500"):
        xfuxi.assimilate_4dvar(ds.assign(geopotential=ds.geopotential / 9.80665), obs, **kw)
    # layout checks alone accept differences (increments, error samples)
    model.check_dataset(ds - ds.mean("time"))
    # lazily loaded (dask) data are checked too
    with pytest.raises(SchemaError, match="geopotential height"):
        forecast(ds.assign(geopotential=ds.geopotential / 9.80665).chunk({"time": 1}),
                 model=model, steps=1)  # fmt: skip
    # a model without statistics (identity) cannot judge: not checked
    wrapped = wrap_model(Trend(), channels=CHANNELS, latitude=LAT, longitude=LON)
    forecast(celsius, model=wrapped, steps=1, progress=False)
    # only the times that the forecast reads are checked
    far_past = ds.copy(deep=True)
    far_past["geopotential"][0] = 0.0  # the first time is not used by the last initial time
    forecast(far_past, model=model, steps=1, init_times=[ds.time.values[2]], progress=False)


def test_timestep_hours_must_be_positive_and_finite():
    net = torch.nn.Identity()
    for bad in (0, -6.0, float("nan"), float("inf"), True, "6"):
        with pytest.raises(ValueError, match="timestep_hours"):
            ForecastModel(net, channels=CHANNELS, latitude=LAT, longitude=LON,
                          timestep_hours=bad)  # fmt: skip
    assert ForecastModel(net, channels=CHANNELS, latitude=LAT, longitude=LON,
                         timestep_hours=np.float32(3)).timestep_hours == 3.0  # fmt: skip


def test_a_misspelt_keyword_is_named_in_the_users_terms_with_the_closest_name():
    """forecast(n_steps=4) said "_rollout_arrays() got an unexpected keyword argument", the
    name of a private function, and ensemble(n_members=16) proposed nothing."""
    ds, model = _data(3), _fuxi()
    with pytest.raises(TypeError, match=r"^forecast\(\) got an unexpected keyword argument "
                       r"'n_steps' \(did you mean 'steps'\?\)$"):  # fmt: skip
        forecast(ds, model=model, n_steps=1)
    with pytest.raises(TypeError, match=r"^forecast_iter\(\) .* 'steps'\?\)$"):
        forecast_iter(ds, model=model, n_steps=1)  # at the call, not at the first lead
    with pytest.raises(TypeError, match=r"^forecast\(\) .*'init_time' \(did you mean 'init_times'"):
        ds.fuxi.forecast(model=model, steps=1, init_time=ds.time.values[1])
    with pytest.raises(TypeError, match=r"^ensemble\(\) got an unexpected keyword argument "
                       r"'n_members' \(did you mean 'n'\?\)$"):  # fmt: skip
        xfuxi.ensemble(ds, model=model, n_members=2, steps=1)
    with pytest.raises(TypeError, match=r"^ensemble_iter\(\) .*'n_members' \(did you mean 'n'"):
        xfuxi.ensemble_iter(ds, model=model, n_members=2, steps=1)  # at the call


def test_a_float16_model_is_refused():
    """A model in float16 forecast NaN everywhere without an error: the physical states
    overflow it (geopotential about 2e5 at 50 hPa, float16's largest value 65504)."""
    ds = _data(2)
    with pytest.raises(ValueError, match=r"float16 cannot hold.*'bfloat16'"):
        forecast(ds, model=_fuxi(), steps=1, dtype="float16")
    with pytest.raises(ValueError, match=r"float16 cannot hold"):
        forecast(ds, model=_fuxi(), steps=1, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"dtype.*float16 cannot hold"):
        xfuxi.set_options(dtype="float16")
    assert xfuxi.get_options()["dtype"] == "float32"
    bf = forecast(ds, model=_fuxi(), steps=1, dtype="bfloat16")  # float32's range
    assert np.isfinite(bf["temperature"]).all()
