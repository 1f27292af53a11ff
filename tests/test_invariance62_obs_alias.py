"""Audit 62, finding 5: observations of a variable named by its ERA5 short name.

Gridded data may name variables by their ERA5 short names (``validate`` renames ``t`` to
``temperature``), but an observation with ``variable="t"`` was not renamed: mixed with
``temperature`` observations it was rejected as ``unknown_variable``, silently, and the
analysis changed. ``validate_observations`` now renames the same aliases.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.assimilation.en4dvar import BackgroundError
from xfuxi.observations.sets import validate_observations


def _obs(names, level=500.0):
    t0 = tiny.da_background().time.values[-1]
    return xfuxi.make_observations(
        [252.0, 248.0], error=0.5, time=t0, latitude=[10.0, -20.0], longitude=[45.0, 100.0],
        variable=names, level=level,
    )  # fmt: skip


def test_validate_observations_renames_the_aliases_validate_renames():
    obs = _obs(["temperature", "temperature"])
    raw = obs.assign_coords(
        variable=("obs", np.array(["t", "u10"])), level=("obs", np.array([500.0, np.nan]))
    )
    before = raw.copy(deep=True)
    out = validate_observations(raw)
    assert out["variable"].values.tolist() == ["temperature", "10m_u_component_of_wind"]
    xr.testing.assert_identical(raw, before)  # the input is not changed
    z = raw.assign_coords(variable=("obs", np.array(["z", "z"])))
    assert validate_observations(z)["variable"].values.tolist() == [
        "geopotential",  # on a level
        "geopotential_at_surface",  # without one, as validate reads a z without level
    ]
    assert list(xfuxi.validate(tiny.da_background().rename(temperature="t")).data_vars) == [
        "temperature",
        "geopotential",
    ]


def test_an_alias_observation_is_used_by_the_assimilation():
    model = tiny.da_model(tiny.TinyNonlinear())
    bg = tiny.da_background()
    results = []
    for names in (["temperature", "temperature"], ["temperature", "t"]):
        error = BackgroundError(n_members=8, perturbation_std=(2.0, 100.0), seed=3)
        results.append(
            xfuxi.assimilate_4dvar(
                bg, _obs(names), model=model, background_error=error, progress=False
            )
        )
    a, b = results
    assert int(b.diagnostics["n_used"].sum()) == 2
    xr.testing.assert_identical(a.analysis, b.analysis)


def test_innovations_of_an_alias_observation():
    bg = tiny.da_background()
    t = xfuxi.innovations(_obs(["t", "t"]), bg)
    want = xfuxi.innovations(_obs(["temperature", "temperature"]), bg)
    np.testing.assert_array_equal(t["innovation"].values, want["innovation"].values)
