"""Fixes made by the lead of session 65 beside the helpers' (their tests are in the other
tests/test_audit65_*.py files): an analysis time marked UTC, and the threshold named in the
errors of a score's threshold on time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.assimilation.inputs import background_tensor
from xfuxi.data.schema import SchemaError


def test_an_analysis_time_marked_utc_is_read_as_utc():
    bg = tiny.da_background()
    model = tiny.da_model(tiny.TinyNonlinear())
    t0 = pd.Timestamp(bg["time"].values[-1])
    _, naive, tensor = background_tensor(bg, model, time=t0)
    for marked in (t0.isoformat() + "Z", t0.tz_localize("UTC")):
        _, got, again = background_tensor(bg, model, time=marked)
        assert got == naive and bool((again == tensor).all())
    with pytest.raises(SchemaError, match="time zone"):
        background_tensor(bg, model, time=t0.isoformat() + "+05:00")


def test_a_threshold_on_time_that_misses_a_valid_time_is_named():
    time = pd.date_range("2000-01-01", periods=4, freq="6h")
    lead = pd.to_timedelta([6, 12], "h")
    rng = np.random.default_rng(0)
    fc = xr.DataArray(rng.normal(size=(2, 2, 3, 5)),
                      dims=("time", "prediction_timedelta", "number", "x"),
                      coords={"time": time[:2], "prediction_timedelta": lead})  # fmt: skip
    truth = xr.DataArray(rng.normal(size=(4, 5)), dims=("time", "x"), coords={"time": time})
    threshold = xr.DataArray(np.zeros(2), dims="time", coords={"time": time[:2]})
    with pytest.raises(ValueError, match="threshold lacks") as err:
        xfuxi.brier_score(fc, truth, threshold=threshold)
    assert "truth" not in str(err.value).split("lacks")[0]
    mean, std = fc.mean("number"), fc.std("number") + 0.1
    with pytest.raises(ValueError, match="threshold lacks"):
        xfuxi.gaussian_brier_score(mean, truth, std=std, threshold=threshold)


def test_a_forecast_whose_first_step_is_nan_everywhere_is_refused():
    import torch

    class AllNaN(torch.nn.Module):
        def forward(self, x):
            return x[:, 1] * float("nan")

    bg = tiny.da_background()
    model = tiny.da_model(AllNaN())
    with pytest.raises(ValueError, match="returned NaN everywhere at its first step"):
        xfuxi.forecast(bg, model=model, steps=2, progress=False)
    with pytest.raises(ValueError, match="returned NaN everywhere at its first step"):
        list(xfuxi.forecast_iter(bg, model=model, steps=2, progress=False))
