"""A misspelt keyword of a function that takes old keywords (``**legacy``) is matched against
the function's own parameters too, not only its configuration's fields."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xfuxi


@pytest.fixture
def state():
    da = xr.DataArray(
        np.zeros((3, 4)),
        dims=("latitude", "longitude"),
        coords={"latitude": [-30.0, 0.0, 30.0], "longitude": [0.0, 90.0, 180.0, 270.0]},
        name="temperature",
    )
    return da


@pytest.mark.parametrize(
    ("call", "wrong", "right"),
    [
        (lambda da, **kw: xfuxi.plot_map(da, **kw), "levle", "level"),
        (lambda da, **kw: da.fuxi.plot_map(**kw), "levle", "level"),
        (
            lambda da, **kw: xfuxi.imager_observations(da.to_dataset(), **kw),
            "satelites",
            "satellites",
        ),
        (lambda da, **kw: xfuxi.perlin_ensemble(da.to_dataset(), n=2, **kw), "sead", "seed"),
    ],
)
def test_misspelt_keyword_names_the_parameter(state, call, wrong, right):
    with pytest.raises(TypeError, match=rf"'{wrong}' \(did you mean '{right}'\?\)"):
        call(state, **{wrong: 1})


def test_no_hint_names_a_positional_only_parameter(state):
    # plot_map's data is positional-only: a keyword cannot name it
    with pytest.raises(TypeError) as err:
        xfuxi.plot_map(state, dat=1)
    assert "did you mean 'data'" not in str(err.value)
