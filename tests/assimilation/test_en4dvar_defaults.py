"""En4DVar's defaults (issue 22 item 5): a model's own background-error statistics, vertical
localization by the observations' levels, and a model without statistics as before."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.assimilation.calibration import (
    BACKGROUND_ERROR_FILE,
    model_background_error,
    save_background_error,
)
from xfuxi.assimilation.config import BackgroundError, LocalizationOptions, Minimiser
from xfuxi.assimilation.en4dvar import assimilate_4dvar
from xfuxi.models.checkpoint import CheckpointError

OPTS = {
    "background_error": BackgroundError(n_members=6, member_chunk=6),
    "minimiser": Minimiser(max_iter=5),
    "progress": False,
}


def _std() -> xr.Dataset:
    """A background-error std per channel and latitude row for the ensemble world."""
    t = np.stack([np.linspace(0.5, 1.5, tiny.LAT.size), np.linspace(2.0, 1.0, tiny.LAT.size)])
    return xr.Dataset(
        {
            "temperature": (("level", "latitude"), t),
            "passive_tracer": ("latitude", np.full(tiny.LAT.size, 0.02)),
        },
        coords={"level": [500.0, 850.0], "latitude": tiny.LAT},
        attrs={"lead_steps": 4, "n_samples": 8, "split": "train"},
    )


def _obs(levels):
    bg = tiny.dataset(n_time=3)
    t0 = bg["time"].values[-1]
    obs = [
        xfuxi.make_observations(
            [float(bg["temperature"].sel(level=lev).isel(time=-1, latitude=4, longitude=3)) + 1],
            error=0.5,
            time=t0,
            latitude=float(tiny.LAT[4]),
            longitude=float(tiny.LON[3]),
            variable="temperature",
            level=lev,
        )  # fmt: skip
        for lev in levels
    ]
    return bg, xr.concat(obs, dim="obs")


def _config(res) -> dict:
    return json.loads(res.analysis.attrs["config"])


def test_model_statistics_load_and_are_used_by_default(tiny_fuxi_checkpoint):
    directory, _ = tiny_fuxi_checkpoint
    bg, obs = _obs([500.0])
    plain = xfuxi.load_model(directory)
    assert model_background_error(plain) is None  # a checkpoint without statistics
    save_background_error(directory, _std())
    model = xfuxi.load_model(directory)
    std = model_background_error(model)
    np.testing.assert_allclose(std["temperature"].values, _std()["temperature"].values)
    assert std.attrs["lead_steps"] == 4 and std.attrs["split"] == "train"

    default = assimilate_4dvar(bg, obs, model=model, **OPTS)
    assert _config(default)["spread"].startswith("model statistics")
    assert default.analysis.attrs["background_error_std"].startswith("model statistics")
    # the same as giving the statistics explicitly ...
    given = assimilate_4dvar(
        bg, obs, model=model, error_data=xfuxi.BackgroundErrorData(spread=_std()), **OPTS
    )
    assert _config(given)["spread"] == "given"
    xr.testing.assert_allclose(default.increment, given.increment)
    # the older keyword still works, with a DeprecationWarning naming error_data
    with pytest.warns(DeprecationWarning, match=r"error_data=BackgroundErrorData\(spread="):
        legacy = assimilate_4dvar(bg, obs, model=model, spread=_std(), **OPTS)
    xr.testing.assert_identical(legacy.increment, given.increment)
    # ... and not the ensemble's own spread (explicit "ensemble" and other values win)
    own = assimilate_4dvar(
        bg, obs, model=model, error_data=xfuxi.BackgroundErrorData(spread="ensemble"), **OPTS
    )
    assert _config(own)["spread"] == "ensemble"
    assert not np.allclose(own.increment["temperature"], default.increment["temperature"])
    other = assimilate_4dvar(
        bg, obs, model=model, error_data=xfuxi.BackgroundErrorData(spread=[3.0, 3.0, 0.1]), **OPTS
    )
    assert _config(other)["spread"] == "given"
    assert not np.allclose(other.increment["temperature"], default.increment["temperature"])
    # a perturbation_std of the user's own keeps the ensemble's spread, as before
    pstd = BackgroundError(n_members=6, member_chunk=6, perturbation_std=(5.0, 8.0, 0.1))
    mine = assimilate_4dvar(bg, obs, model=model, **{**OPTS, "background_error": pstd})
    assert _config(mine)["spread"] == "ensemble"


def test_a_model_without_statistics_behaves_as_before(tiny_fuxi_checkpoint):
    _, model = tiny_fuxi_checkpoint  # built in memory: no checkpoint, no statistics
    bg, obs = _obs([500.0])
    res = assimilate_4dvar(bg, obs, model=model, **OPTS)
    own = assimilate_4dvar(
        bg, obs, model=model, error_data=xfuxi.BackgroundErrorData(spread="ensemble"), **OPTS
    )
    assert _config(res)["spread"] == "ensemble"
    xr.testing.assert_identical(res.increment, own.increment)


def test_statistics_not_in_the_manifest_are_refused(tiny_fuxi_checkpoint):
    directory, _ = tiny_fuxi_checkpoint
    (directory / BACKGROUND_ERROR_FILE).write_text("{}")
    with pytest.raises(CheckpointError, match="not listed in the checkpoint's manifest"):
        model_background_error(xfuxi.load_model(directory))


def test_the_shipped_model_carries_its_statistics():
    std = model_background_error(xfuxi.load_model("fuxi-hs-t21"))
    assert std is not None and std.attrs["split"] == "train"
    assert std["temperature"].dims == ("level", "latitude")
    assert bool((std["temperature"] > 0).all())


@pytest.mark.parametrize(
    ("levels", "localization", "vertical"),
    [
        ([500.0, 850.0], LocalizationOptions(length_scale=1500.0), "vertical 1.0"),
        ([500.0], LocalizationOptions(length_scale=1500.0), None),
        ([500.0, 850.0], None, None),  # no localization at all
        ([500.0, 850.0], {"length_scale": 1500.0, "vertical_length_scale": 0.0}, None),
        ([500.0], {"length_scale": 1500.0, "vertical_length_scale": 0.5}, "vertical 0.5"),
    ],
)
def test_vertical_localization_follows_the_observation_levels(
    tiny_fuxi_checkpoint, levels, localization, vertical
):
    _, model = tiny_fuxi_checkpoint
    bg, obs = _obs(levels)
    res = assimilate_4dvar(bg, obs, model=model, localization=localization, **OPTS)
    described = res.analysis.attrs["localization"]
    if vertical is None:
        assert "vertical" not in described
    else:
        assert vertical in described


def test_default_localization_is_vertical_for_columns(tiny_fuxi_checkpoint):
    _, model = tiny_fuxi_checkpoint
    bg, obs = _obs([500.0, 850.0])
    res = assimilate_4dvar(bg, obs, model=model, **OPTS)
    loc = _config(res)["localization"]
    assert loc["vertical_length_scale"] == 1.0 and loc["length_scale"] == 1500.0
    one = assimilate_4dvar(bg, obs.isel(obs=[0]), model=model, **OPTS)
    assert _config(one)["localization"]["vertical_length_scale"] is None
