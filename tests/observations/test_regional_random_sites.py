"""Random sites and random observations are drawn over the region the observation operator
covers: the sphere on a global grid (the same draws as ever), the box of a regional grid."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xfuxi.observations.interpolation import covered_region
from xfuxi.observations.sets import (
    ObservationError,
    radiosonde_observations,
    random_observations,
)


def _truth(latitude, longitude):
    lat, lon = np.asarray(latitude, float), np.asarray(longitude, float)
    rng = np.random.default_rng(0)
    data = 250 + rng.standard_normal((2, 2, lat.size, lon.size))
    return xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"), data, {"units": "K"})},
        coords={
            "time": np.array(["2000-01-01T00", "2000-01-01T06"], dtype="datetime64[ns]"),
            "level": [500.0, 850.0],
            "latitude": lat,
            "longitude": lon,
        },
    )


EUROPE = _truth(
    np.arange(35.0, 71.0, 1.5), np.r_[np.arange(340.5, 360.0, 1.5), np.arange(0, 46.5, 1.5)]
)


def test_radiosondes_on_a_box_across_greenwich_fall_inside_it():
    obs = radiosonde_observations(EUROPE, n_sites=30, error=1.0, seed=1)
    lat, lon = obs["latitude"].values, obs["longitude"].values
    assert np.all((lat >= 35.0) & (lat <= 69.5))
    assert np.all((lon >= 340.5) | (lon <= 45.0))
    assert np.isfinite(obs["value"].values).all()
    # both sides of 0° are used (the box is one region, not two slivers)
    assert (lon > 300).any() and (lon < 60).any()


def test_random_observations_on_a_box_fall_inside_it():
    obs = random_observations(EUROPE, n=200, variables=["temperature"], error=1.0, seed=2)
    lat, lon = obs["latitude"].values, obs["longitude"].values
    assert np.all((lat >= 35.0) & (lat <= 69.5)) and np.all((lon >= 340.5) | (lon <= 45.0))


def test_global_grid_draws_are_unchanged():
    truth = _truth(np.linspace(-87.5, 87.5, 8), np.arange(0.0, 360.0, 22.5))
    obs = radiosonde_observations(truth, n_sites=5, error=1.0, seed=3)
    rng = np.random.default_rng(3)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, 5)))
    lon = rng.uniform(0.0, 360.0, 5)
    sites = {(round(a, 12), round(b, 12)) for a, b in zip(lat, lon, strict=True)}
    got = {
        (round(a, 12), round(b, 12))
        for a, b in zip(obs["latitude"].values, obs["longitude"].values, strict=True)
    }
    assert got == sites
    assert covered_region(truth.latitude.values, truth.longitude.values) == (
        -90.0,
        90.0,
        0.0,
        360.0,
    )


def test_one_row_grid_asks_for_sites():
    truth = _truth([45.0], np.arange(0.0, 360.0, 30.0))
    with pytest.raises(ObservationError, match="give sites="):
        radiosonde_observations(truth, n_sites=3, error=1.0, seed=0)
