"""A Dataset's accessor method asked of a DataArray says how to make a Dataset of it."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xfuxi  # noqa: F401 - registers the accessor
from xfuxi.api import accessor_entries


@pytest.mark.parametrize(
    "name",
    sorted(
        {e.name for e in accessor_entries("dataset")}
        - {e.name for e in accessor_entries("dataarray")}
    ),
)
def test_dataset_method_on_a_dataarray_names_the_fix(name):
    da = xr.DataArray(np.zeros(3), dims="x", name="temperature")
    with pytest.raises(AttributeError, match=rf"'{name}' is a method of Dataset\.fuxi.*to_dataset"):
        getattr(da.fuxi, name)
    assert not hasattr(da.fuxi, name)


def test_other_names_are_plain_attribute_errors():
    da = xr.DataArray(np.zeros(3), dims="x")
    with pytest.raises(AttributeError, match="has no attribute 'no_such_method'"):
        da.fuxi.no_such_method  # noqa: B018
    assert callable(da.fuxi.rmse)  # a DataArray method is still there
