"""Audit 62, finding 8: a single level held as a scalar coordinate (``bg.sel(level=500)``).

The model refused it with "missing level(s): 'temperature' at 500 hPa" although the level
is right there. It is still refused (the model reads levels along a ``level`` dimension),
but the message now says what is wrong and how to fix it.
"""

from __future__ import annotations

import pytest
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.data.schema import SchemaError


def test_forecast_names_the_scalar_level_and_the_fix():
    model = tiny.da_model(tiny.TinyNonlinear())
    bg = tiny.da_background()
    scalar = bg.sel(level=500.0)
    with pytest.raises(SchemaError) as err:
        xfuxi.forecast(scalar, model=model, steps=1, progress=False)
    message = str(err.value)
    assert "missing level" not in message  # the level is not missing
    assert "scalar coordinate" in message
    assert "ds.sel(level=[500])" in message
    # the fixes it gives work, and give the forecast of the data with a level dimension
    want = xfuxi.forecast(bg, model=model, steps=1, progress=False)
    for fixed in (bg.sel(level=[500.0]), scalar.expand_dims("level")):
        got = xfuxi.forecast(fixed, model=model, steps=1, progress=False)
        xr.testing.assert_identical(got, want)


def test_check_dataset_names_both_the_scalar_level_and_the_levels_missing():
    model = tiny.model()  # temperature at 500 and 850 hPa
    ds = xfuxi.validate(tiny.dataset(2)).sel(level=500.0)
    with pytest.raises(SchemaError) as err:
        model.check_dataset(ds)
    message = str(err.value)
    assert "['temperature'] hold their level (500 hPa) as a scalar coordinate" in message
    assert "missing level(s): 'temperature' at 850 hPa" in message
    assert "'temperature' at 500" not in message
    other = xfuxi.validate(tiny.dataset(2)).sel(level=850.0)
    with pytest.raises(SchemaError, match="'temperature' at 500 hPa") as err:
        model.check_dataset(other)
    assert "ds.sel(level=[850])" in str(err.value)
    model.check_dataset(xfuxi.validate(tiny.dataset(2)))  # levels along a dim: accepted
