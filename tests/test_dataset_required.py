"""Functions that need a Dataset say so when given a DataArray (they raised a bare
``AttributeError: 'DataArray' object has no attribute 'data_vars'``, or, for ``ensemble``,
a channel mismatch of its perturbation module)."""

from __future__ import annotations

import pytest

import xfuxi
from tests import tiny


@pytest.fixture(scope="module")
def case():
    ds = tiny.dataset(4)
    return ds, ds["temperature"], tiny.model()


CALLS = {
    "ensemble": lambda ds, da, m: xfuxi.ensemble(da, model=m, n=2, steps=1, progress=False),
    "perlin_ensemble": lambda ds, da, m: xfuxi.perlin_ensemble(da, n=2, seed=0),
    "random_observations": lambda ds, da, m: xfuxi.random_observations(
        da, n=2, variables=["temperature"], error=1.0
    ),
    "single_observation": lambda ds, da, m: xfuxi.single_observation(
        da,
        variable="temperature",
        latitude=0.0,
        longitude=0.0,
        time=ds.time.values[0],
        error=1.0,
        level=500,
    ),  # fmt: skip
    "radiosonde_observations": lambda ds, da, m: xfuxi.radiosonde_observations(
        da, error=1.0, n_sites=2
    ),
    "region_observations": lambda ds, da, m: xfuxi.region_observations(
        da, latitude=(0, 30), longitude=(0, 90), variables=["temperature"], error=1.0
    ),
    "background_error_std": lambda ds, da, m: xfuxi.background_error_std(
        da, model=m, n_samples=2, lead_steps=1
    ),
    "forecast_error_samples": lambda ds, da, m: xfuxi.forecast_error_samples(
        da, model=m, n_samples=2
    ),
    "world_background": lambda ds, da, m: xfuxi.world_background(
        da, model=m, time=ds.time.values[-1], lead_steps=2
    ),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_dataarray_is_refused_with_the_way_to_make_a_dataset(case, name):
    with pytest.raises(TypeError, match=r"must be an xarray\.Dataset .*to_dataset"):
        CALLS[name](*case)
