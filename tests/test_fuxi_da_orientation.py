"""FuXi-DA takes a background in another order of the model's grid (ERA5's north-to-south
latitudes, longitudes in -180..180 or rolled), as assimilate_4dvar and the forecasts do:
it was refused (the radiances in the same orientation were accepted)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xfuxi


@pytest.mark.parametrize(
    "orient",
    [
        lambda b: b.isel(latitude=slice(None, None, -1)),
        lambda b: b.assign_coords(longitude=(b.longitude + 180) % 360 - 180).sortby("longitude"),
        lambda b: b.roll(longitude=3, roll_coords=True),
        lambda b: b.isel(latitude=slice(None, None, -1)).assign_coords(
            longitude=(b.longitude + 180) % 360 - 180
        ),
    ],
    ids=["north-to-south", "-180..180", "rolled", "both, unsorted"],
)
def test_a_background_in_another_grid_order_gives_the_canonical_analysis(fuxi_da_case, orient):
    background, radiances, model = fuxi_da_case
    base = xfuxi.assimilate_da(background, radiances, model=model)
    other = orient(background)
    kept = other.copy(deep=True)
    got = xfuxi.assimilate_da(other, radiances, model=model)
    for name in ("analysis", "increment"):
        a, b = getattr(base, name), getattr(got, name)
        xr.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(b["latitude"].values, a["latitude"].values)
        np.testing.assert_array_equal(b["longitude"].values, a["longitude"].values)
    xr.testing.assert_identical(other, kept)  # the background is not changed


def test_another_grid_is_still_refused(fuxi_da_case):
    background, radiances, model = fuxi_da_case
    shifted = background.assign_coords(longitude=background.longitude + 1.0)
    with pytest.raises(ValueError, match="is not the model's grid"):
        xfuxi.assimilate_da(shifted, radiances, model=model)
