"""The run dtype of a model without parameters,
the dtype of the initial conditions, and DataArrays named by an ERA5 short name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.forecasting.edge import initial_conditions
from xfuxi.forecasting.ensemble import GaussianNoise
from xfuxi.models.lorenz96 import lorenz96_model
from xfuxi.models.rollout import rollout

K = 40


def _l96_data() -> tuple[xr.Dataset, np.ndarray]:
    """Two equal Lorenz-96 states (digits below float32's resolution) on the 1 x K grid."""
    x0 = 8.0 + np.random.default_rng(0).normal(size=K)
    ds = xr.Dataset(
        {"x": (("time", "latitude", "longitude"), np.stack([x0, x0])[:, None, :])},
        coords={
            "time": pd.date_range("2000-01-01", periods=2, freq="6h"),
            "latitude": [0.0],
            "longitude": np.arange(K) * 360.0 / K,
        },
    )
    return ds, x0


def _reference(x0: np.ndarray, dtype: torch.dtype, steps: int) -> np.ndarray:
    """``steps`` steps of a Lorenz-96 model cast to ``dtype`` from inputs of that dtype."""
    pair = np.stack([x0, x0])[:, None, None, :].astype(str(dtype).removeprefix("torch."))
    return rollout(lorenz96_model(n_variables=K).to(dtype), pair, steps)[:, 0, 0]


def test_forecast_dtype_float64_runs_a_parameterless_model_in_float64():
    # Lorenz-96 has buffers but no parameters: the dtype came from a parameter or was
    # float32, so dtype=torch.float64 (or a model cast with .double()) ran in float32 from
    # float32-rounded inputs
    ds, x0 = _l96_data()
    f64 = _reference(x0, torch.float64, 20).astype("float32")
    f32 = _reference(x0, torch.float32, 20)
    assert not np.array_equal(f64, f32)  # the two precisions can be told apart
    model = lorenz96_model(n_variables=K)
    for kwargs in ({"model": model, "dtype": torch.float64}, {"model": model.double()}):
        fc = xfuxi.forecast(ds, steps=20, progress=False, **kwargs)
        assert fc.x.dtype == np.float32  # the documented output dtype
        np.testing.assert_array_equal(fc.x.values[0, :, 0, :], f64)
    # the default stays the model's dtype: float32 for a fresh one
    fc = xfuxi.forecast(ds, model=lorenz96_model(n_variables=K), steps=20, progress=False)
    np.testing.assert_array_equal(fc.x.values[0, :, 0, :], f32)


def test_forecast_iter_and_ensemble_run_a_float64_parameterless_model_in_float64():
    ds, x0 = _l96_data()
    f64 = _reference(x0, torch.float64, 5).astype("float32")
    model = lorenz96_model(n_variables=K).double()
    parts = list(xfuxi.forecast_iter(ds, model=model, steps=5, progress=False))
    got = xr.concat(parts, "prediction_timedelta").x.values[0, :, 0, :]
    np.testing.assert_array_equal(got, f64)
    # without noise every member is the float64 forecast
    ens = xfuxi.ensemble(
        ds, model=model, n=2, steps=5, perturbation=GaussianNoise(std_fraction=0.0),
        progress=False,
    )  # fmt: skip
    assert ens.x.dtype == np.float32
    for member in range(2):
        np.testing.assert_array_equal(ens.x.isel(number=member).values[0, :, 0, :], f64)


def test_initial_conditions_dtype():
    ds, x0 = _l96_data()
    model = lorenz96_model(n_variables=K)
    x32, t0 = initial_conditions(ds, model)
    assert x32.dtype == np.float32  # the default, as before
    x64, t64 = initial_conditions(ds, model, dtype="float64")
    assert x64.dtype == np.float64 and np.array_equal(t0, t64)
    np.testing.assert_array_equal(x64[0, 1, 0, 0], x0)  # not rounded to float32
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        initial_conditions(ds, model, dtype="int64")
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        initial_conditions(ds, model, dtype="bogus")


def test_initial_conditions_read_a_lazy_store_once():
    """A dask-backed dataset is computed once for the initial conditions (the plausibility
    check and each of the two input times computed it again: three reads of every chunk),
    and a variable the model does not take is not read."""
    from dask.callbacks import Callback

    ds = tiny.dataset().chunk({"time": 1})
    model = tiny.model()
    ds["unused"] = ds[next(iter(ds.data_vars))] * np.nan  # NaN: refused if it were read
    computes = []

    class Count(Callback):
        def _start(self, dsk):
            computes.append(len(dsk))

    eager = initial_conditions(ds.compute(), model)[0]
    with Count():
        lazy = initial_conditions(ds, model)[0]
    assert len(computes) == 1
    np.testing.assert_array_equal(lazy, eager)


@pytest.mark.parametrize(
    ("short", "long"), [("t", "temperature"), ("z", "geopotential_at_surface")]
)
def test_dataarray_named_by_a_short_name_validates_and_forecasts(short, long):
    # validate() renamed the variable and then looked it up by its old name: a bare KeyError,
    # and persistence_forecast / climatology_forecast crashed on such a DataArray
    t = pd.date_range("2000-01-01", periods=3, freq="6h")
    da = xr.DataArray(
        250 + np.arange(3.0)[:, None, None], name=short, dims=("time", "latitude", "longitude"),
        coords={"time": t, "latitude": [0.0], "longitude": [0.0]},
    )  # fmt: skip
    out = xfuxi.validate(da)
    assert isinstance(out, xr.DataArray) and out.name == long
    np.testing.assert_array_equal(out.values, da.values)
    f = xfuxi.persistence_forecast(da, leads=[6])
    assert f.name == long
    np.testing.assert_array_equal(f.values[:, 0, 0, 0], da.values[:, 0, 0])
    clim = xr.DataArray(
        np.arange(4.0)[:, None, None], name=short, dims=("hour", "latitude", "longitude"),
        coords={"hour": [0, 6, 12, 18], "latitude": [0.0], "longitude": [0.0]},
    )  # fmt: skip
    c = xfuxi.climatology_forecast(clim, init_times=t[:1], leads=[6])
    assert c.name == long and float(c.values.ravel()[0]) == 1.0
    # an unnamed DataArray stays unnamed; a long name is kept
    assert xfuxi.validate(da.rename(None)).name is None
    assert xfuxi.validate(da.rename("temperature")).name == "temperature"


def test_shipped_model_forecast_unchanged_by_the_dtype_fix():
    # a float32 model with parameters: the input pairs are float32 as before (the recorded
    # forecasts of the shipped models are checked bit for bit in the audit's comparison)
    ds = tiny.dataset(3)
    model = tiny.model()
    fc = xfuxi.forecast(ds, model=model, steps=2, progress=False)
    x, _ = initial_conditions(ds, model)
    with torch.no_grad():
        y = model.eval()(torch.from_numpy(x))
    np.testing.assert_array_equal(fc.temperature.isel(prediction_timedelta=0).values,
                                  y[:, :2].numpy())  # fmt: skip
