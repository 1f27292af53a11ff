"""Balanced perturbations are written into the result as they are made, with the same bits.

The balanced channels were kept in dicts beside the result (geopotential, both winds and the
hydrostatic temperature of every level: most of the channels once more) before being copied
in; now the kernels run a few members at a time into the result. NumPy's allocations are
traced by ``tracemalloc`` (the Perlin noise is torch's, not counted).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from xfuxi import physics
from xfuxi.constants import R_DRY
from xfuxi.perturbations.balanced import balanced_perturbations
from xfuxi.perturbations.perlin import perlin_noise
from xfuxi.perturbations.scales import PerlinScales

LAT = np.linspace(-80.0, 80.0, 17)
LON = np.arange(32) * 11.25
LEVELS = (200.0, 500.0, 850.0, 1000.0)
FULL = [
    (v, lv)
    for v in ("geopotential", "temperature", "u_component_of_wind", "v_component_of_wind")
    for lv in LEVELS
] + [("surface_pressure", None), ("specific_humidity", 850.0)]
MIXED = [
    ("temperature", 850.0),
    ("geopotential", 850.0),
    ("surface_pressure", None),
    ("geopotential", 250.0),
    ("u_component_of_wind", 250.0),
    ("v_component_of_wind", 850.0),
    ("temperature", 250.0),
    ("specific_humidity", 850.0),
    ("temperature", 100.0),
    ("2m_temperature", None),
]
ONE_LEVEL = [
    ("geopotential", 500.0),
    ("u_component_of_wind", 500.0),
    ("v_component_of_wind", 500.0),
    ("temperature", 500.0),
    ("passive_tracer", 500.0),
]


def _reference(n, chans, std, amplitude, rho, seed):
    """The balanced perturbations as they were made: whole dicts of the balanced channels."""
    g = torch.Generator().manual_seed(seed)
    kw = dict(**PerlinScales().to_dict(), dtype=torch.float64)
    h, w = LAT.size, LON.size
    z_levels = sorted(lv for v, lv in chans if v == "geopotential" and lv is not None)
    base = perlin_noise(n, (h, w), generator=g, **kw).numpy()
    phi = {}
    for lv in z_levels:
        own = perlin_noise(n, (h, w), generator=g, **kw).numpy()
        k = chans.index(("geopotential", lv))
        phi[lv] = amplitude * std[k] * (rho * base + np.sqrt(1 - rho**2) * own)
    wind = {lv: physics.geostrophic_wind(p, LAT, LON, equator_band=15.0) for lv, p in phi.items()}
    temperature = (
        dict(zip(z_levels, physics.hydrostatic_temperature(np.stack(list(phi.values())), z_levels)))
        if len(z_levels) > 1
        else {}
    )
    out = np.empty((n, len(chans), h, w))
    for c, (var, lv) in enumerate(chans):
        if var == "geopotential" and lv in phi:
            out[:, c] = phi[lv]
        elif var in ("u_component_of_wind", "v_component_of_wind") and lv in phi:
            out[:, c] = wind[lv][0 if var.startswith("u") else 1]
        elif var == "temperature" and lv in temperature:
            out[:, c] = temperature[lv]
        elif var == "surface_pressure":
            low = z_levels[-1]
            out[:, c] = phi[low] * 100.0 * low / (R_DRY * 280.0)
        else:
            noise = perlin_noise(n, (h, w), generator=g, **kw).numpy()
            out[:, c] = amplitude * std[c] * noise
    return out


@pytest.mark.parametrize("chans", [FULL, MIXED, ONE_LEVEL], ids=["full", "mixed", "one-level"])
@pytest.mark.parametrize("rho", [0.5, 1.0, 0.0])
@pytest.mark.parametrize("n", [1, 7])
def test_balanced_perturbations_same_bits(chans, rho, n):
    std = np.linspace(1.0, 100.0, len(chans))
    got = balanced_perturbations(
        n, channels=chans, latitude=LAT, longitude=LON, std=std, amplitude=0.1,
        vertical_correlation=rho, seed=4, dtype=torch.float64, polar_filter=None,
    )  # fmt: skip
    assert np.array_equal(got.numpy(), _reference(n, chans, std, 0.1, rho, 4))


def test_balanced_perturbations_hold_the_result_once():
    n = 32
    std = np.linspace(1.0, 100.0, len(FULL))
    result_bytes = n * len(FULL) * LAT.size * LON.size * 8
    tracemalloc.start()
    try:
        out = balanced_perturbations(
            n, channels=FULL, latitude=LAT, longitude=LON, std=std, seed=0, dtype=torch.float64
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert tuple(out.shape) == (n, len(FULL), LAT.size, LON.size)
    # the result and a few members' or one level's temporaries (the dicts were ~1.3 more)
    assert peak < 1.5 * result_bytes
