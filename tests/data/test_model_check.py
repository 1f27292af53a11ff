"""The model's data check names every missing variable, level and the grid difference at
once (issue 25, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.data.regrid import equiangular_grid, regrid
from xfuxi.data.schema import SchemaError


def test_every_problem_is_named_at_once():
    model = tiny.model()
    ds = tiny.dataset(2).drop_vars("passive_tracer").sel(level=[850])
    ds = ds.assign_coords(latitude=ds["latitude"].values * 1.1)
    with pytest.raises(SchemaError) as info:
        model.check_dataset(ds)
    message = str(info.value)
    assert "missing variable(s) ['passive_tracer']" in message
    assert "missing level(s): 'temperature' at 500 hPa" in message
    assert "data grid latitude (8 points, -86.625..86.625) does not match model" in message
    assert "(8 points, -78.75..78.75)" in message and "regrid" in message
    assert "longitude" not in message  # the longitudes match


def test_all_missing_levels_of_a_variable_are_listed():
    ds = tiny.dataset(2)
    ds["temperature"] = ds["temperature"].isel(level=0, drop=True)  # no level at all
    with pytest.raises(SchemaError, match="'temperature' at 500, 850 hPa$"):
        tiny.model().check_dataset(ds.drop_vars("level"))


def test_matching_data_pass():
    assert tiny.model().check_dataset(tiny.dataset(2)) is None


def test_wb2_data_fit_the_shipped_model_once_regridded():
    """The issue's case: WeatherBench2's 64 × 32 grid (±87.19°) against the world's T21
    models (±85.76°); after ``regrid(ds, "T21")`` only the variable real data lack is left."""
    pytest.importorskip("xarray_regrid")
    config = Path(xfuxi.__file__).parent / "_data" / "models" / "fuxi-hs-t21" / "config.json"
    shipped = json.loads(config.read_text())
    channels = [("temperature", 500.0), ("temperature", 850.0), ("passive_tracer", 850.0)]
    model = xfuxi.wrap_model(
        torch.nn.Identity(),
        channels=channels,
        latitude=shipped["latitude"],
        longitude=shipped["longitude"],
        name="t21",
    )
    grid = equiangular_grid(64, 32, poles=False)
    t = 250.0 + 0 * grid.latitude * grid.longitude
    ds = xr.Dataset(
        {
            "temperature": t.expand_dims(
                time=pd.date_range("2020", periods=2, freq="6h"), level=[500.0, 850.0]
            )
        }  # fmt: skip
    )
    with pytest.raises(SchemaError) as before:
        model.check_dataset(ds)
    assert "missing variable(s) ['passive_tracer']" in str(before.value)
    assert "data grid latitude (32 points, -87.1875..87.1875) does not match" in str(before.value)
    with pytest.raises(SchemaError) as after:
        model.check_dataset(regrid(ds, "T21"))
    assert "passive_tracer" in str(after.value) and "grid" not in str(after.value)
    np.testing.assert_allclose(regrid(ds, "T21")["latitude"], shipped["latitude"], atol=1e-12)
