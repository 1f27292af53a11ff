"""The model's data check names every missing variable, level and the grid difference at
once (issue 25, item 3)."""

from __future__ import annotations

import pytest

from tests import tiny
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
