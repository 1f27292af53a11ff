"""En4DVar results: coordinate attributes and the recorded seed (audit 60, r07 and r13)."""

from __future__ import annotations

import secrets

import numpy as np

from tests import tiny
from xfuxi.assimilation.config import BackgroundError, Minimiser
from xfuxi.assimilation.en4dvar import _generator, assimilate_4dvar
from xfuxi.observations.sets import make_observations

LAT_ATTRS = {"units": "degrees_north", "long_name": "latitude"}
LON_ATTRS = {"units": "degrees_east", "long_name": "longitude"}
LEVEL_ATTRS = {"units": "hPa", "long_name": "pressure level"}


def _run(bg, seed=0):
    obs = make_observations(
        [250.0], error=0.5, time=bg["time"].values[-1], latitude=10.0, longitude=45.0,
        variable="temperature", level=500.0,
    )  # fmt: skip
    return assimilate_4dvar(
        bg, obs, model=tiny.da_model(tiny.TinyNonlinear()), progress=False,
        background_error=BackgroundError(n_members=4, seed=seed, perturbation_std=(1.0, 1.0)),
        minimiser=Minimiser(max_iter=0),
    )  # fmt: skip


def test_analysis_increment_and_trajectory_keep_the_coordinate_attrs():
    bg = tiny.da_background()
    bg["latitude"].attrs = dict(LAT_ATTRS)
    bg["longitude"].attrs = dict(LON_ATTRS)
    bg["level"].attrs = dict(LEVEL_ATTRS)
    res = _run(bg)
    for name, ds in (("analysis", res.analysis), ("increment", res.increment),
                     ("trajectory", res.trajectory)):  # fmt: skip
        assert ds["latitude"].attrs == LAT_ATTRS, name
        assert ds["longitude"].attrs == LON_ATTRS, name
        assert ds["level"].attrs.get("units") == "hPa", name
        assert ds["level"].attrs.get("long_name") == "pressure level", name
    # a background without them still gives the increment the units of its grid
    res = _run(tiny.da_background())
    assert res.increment["latitude"].attrs.get("units") == "degrees_north"
    assert res.increment["longitude"].attrs.get("units") == "degrees_east"


def test_a_fresh_seed_fits_int32_and_the_analysis_writes_as_netcdf3(tmp_path, monkeypatch):
    real = secrets.randbits
    # the largest draw randbits can give: 2**32 - 1 with 32 bits (a netCDF3 int32 overflow)
    monkeypatch.setattr(secrets, "randbits", lambda k: (1 << k) - 1)
    res = _run(tiny.da_background(), seed=None)
    seed = res.analysis.attrs["seed"]
    assert 0 <= seed <= np.iinfo(np.int32).max
    res.analysis.to_netcdf(tmp_path / "analysis.nc", engine="scipy")
    assert f'"seed": {seed}' in res.analysis.attrs["config"]
    monkeypatch.setattr(secrets, "randbits", real)
    seeds = [_generator(BackgroundError(seed=None))[1] for _ in range(200)]  # as they come
    assert all(0 <= s <= np.iinfo(np.int32).max for s in seeds) and len(set(seeds)) > 190
