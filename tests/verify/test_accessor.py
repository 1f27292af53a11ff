"""Every verification and plot function is on ds.fuxi / da.fuxi with its signature and summary."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import xarray as xr

import xfuxi
from xfuxi.accessor import method_signature
from xfuxi.api import PUBLIC, resolve

ACCESSOR = {e.name: e for e in PUBLIC if e.accessor}

MINE = [
    "rmse", "mse", "mae", "bias", "acc", "align_valid_time", "crps", "spread",
    "ensemble_mean_rmse", "spread_skill_ratio", "brier_score", "rank_histogram", "innovations",
    "innovation_statistics", "geostrophic_wind", "ageostrophic_wind", "balance_summary",
    "plot_map", "plot_increment", "plot_scores", "plot_spread_skill", "plot_rank_histogram",
    "plot_convergence",
]  # fmt: skip


@pytest.mark.parametrize("name", MINE)
def test_registered_with_signature_and_docstring(name):
    target, applies = ACCESSOR[name].target, ACCESSOR[name].accessor
    func = resolve(target)
    assert getattr(xfuxi, name) is func
    objs = {"both": [xr.Dataset(), xr.DataArray(np.zeros(1))], "dataset": [xr.Dataset()],
            "dataarray": [xr.DataArray(np.zeros(1))]}[applies]  # fmt: skip
    params = list(inspect.signature(func).parameters.values())
    # data argument first and positional; the rest keyword-only or positional after it
    assert params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD)
    for obj in objs:
        method = getattr(obj.fuxi, name)
        assert list(inspect.signature(method).parameters.values()) == list(
            method_signature(func).parameters.values()
        )
        assert [p.name for p in inspect.signature(method).parameters.values()] == [
            p.name for p in params[1:]
        ]
        assert inspect.getdoc(method) == inspect.getdoc(func)
        assert "Examples" in inspect.getdoc(func) and "Notes" in inspect.getdoc(func)


def test_accessor_results_equal_function_results():
    rng = np.random.default_rng(0)
    lat, lon = [-30.0, 30.0], [0.0, 120.0, 240.0]
    coords = {"latitude": lat, "longitude": lon}
    fc = xr.DataArray(rng.normal(size=(4, 2, 3)), dims=("number", "latitude", "longitude"),
                      coords=coords)  # fmt: skip
    tr = xr.DataArray(rng.normal(size=(2, 3)), dims=("latitude", "longitude"), coords=coords)
    for name in ("crps", "spread_skill_ratio", "ensemble_mean_rmse"):
        xr.testing.assert_identical(getattr(fc.fuxi, name)(tr), getattr(xfuxi, name)(fc, tr))
    xr.testing.assert_identical(fc.fuxi.spread(dim="latitude"), xfuxi.spread(fc, dim="latitude"))
    xr.testing.assert_identical(tr.fuxi.rmse(tr * 2), xfuxi.rmse(tr, tr * 2))
    xr.testing.assert_identical(
        fc.to_dataset(name="t").fuxi.brier_score(tr.to_dataset(name="t"), threshold=0.0),
        xfuxi.brier_score(fc.to_dataset(name="t"), tr.to_dataset(name="t"), threshold=0.0),
    )


@pytest.mark.parametrize(
    "name", ["rmse", "mse", "mae", "bias", "acc", "align_valid_time", "crps", "spread",
             "ensemble_mean_rmse", "spread_skill_ratio", "brier_score", "rank_histogram"],
)  # fmt: skip
def test_score_docstrings_are_complete_and_point_to_the_docs(name):
    # the shared docstring parts are all filled in, and no docstring names DESIGN.md
    doc = inspect.getdoc(getattr(xfuxi, name))
    assert "{{" not in doc and "}}" not in doc
    assert "DESIGN.md" not in doc
    assert "Parameters" in doc and "Returns" in doc and "Raises" in doc
    assert "DESIGN.md" not in inspect.getdoc(xfuxi.verify.area_weights)
