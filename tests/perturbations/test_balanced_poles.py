"""Balanced perturbations near the poles: the polar filter of ``Φ′`` keeps the geostrophic
winds bounded.

The Perlin noise is drawn on the grid, so toward a pole its zonal scale shrinks with
``cos φ`` and the geostrophic ``v = ∂Φ′/∂λ / (f a cos φ)`` grew without bound: next to the
pole of the 1.5° grid its spread was 17× that at 60°, and a pole row (one point) held a
``Φ′`` that varied along its longitudes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xfuxi.data.regrid import target_grid
from xfuxi.perturbations.balanced import balanced_perturbations

CHANNELS = [
    ("geopotential", 500.0),
    ("u_component_of_wind", 500.0),
    ("v_component_of_wind", 500.0),
]


def _draw(grid: str, **kw) -> tuple[np.ndarray, np.ndarray]:
    g = target_grid(grid)
    lat = g["latitude"].values
    p = balanced_perturbations(
        4, channels=CHANNELS, latitude=lat, longitude=g["longitude"].values,
        std=[500.0, 10.0, 10.0], seed=0, dtype=torch.float64, **kw,
    )  # fmt: skip
    return p.numpy(), lat


@pytest.mark.parametrize("grid", ["wb2_240x121", "T21"])
def test_winds_near_the_poles_stay_as_strong_as_at_60_degrees(grid):
    p, lat = _draw(grid)
    v_spread = np.sqrt((p[:, 2] ** 2).mean(axis=(0, 2)))  # per latitude row
    at_60 = v_spread[np.argmin(abs(lat - 60.0))]
    # unfiltered: 17× (1.5°) and 7× (T21) next to the north pole; filtered 1.6× and 3.6×
    assert v_spread[-1] < 4.0 * at_60, (v_spread[-1], at_60)
    assert v_spread[0] < 4.0 * v_spread[np.argmin(abs(lat + 60.0))]
    assert np.all(np.isfinite(p))


def test_a_pole_row_is_one_value():
    p, lat = _draw("wb2_240x121")
    assert lat[0] == -90.0 and lat[-1] == 90.0
    for row in (0, -1):  # Φ′ of a pole row does not vary along its longitudes
        np.testing.assert_allclose(p[:, 0, row].std(axis=-1), 0.0, atol=1e-9)


def test_rows_equatorward_of_the_filter_are_untouched():
    p, lat = _draw("wb2_240x121")
    q, _ = _draw("wb2_240x121", polar_filter=None)
    inside = np.abs(lat) <= 60.0
    assert np.array_equal(p[:, 0][:, inside], q[:, 0][:, inside])  # Φ′, bit for bit
    assert not np.allclose(p[:, 0][:, ~inside], q[:, 0][:, ~inside])


@pytest.mark.parametrize("bad", [90.0, -1.0, float("nan")])
def test_polar_filter_must_be_a_latitude(bad):
    with pytest.raises(ValueError, match="polar_filter"):
        _draw("T21", polar_filter=bad)
