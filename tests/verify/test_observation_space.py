"""O−B / O−A statistics for gridded and point observations."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xfuxi.verify import observation_space as osp

LAT = np.array([-30.0, 0.0, 30.0])
LON = np.arange(0.0, 360.0, 90.0)


def state(seed=0):
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {
            "temperature": (("level", "latitude", "longitude"), rng.normal(size=(2, 3, 4))),
            "geopotential": (("level", "latitude", "longitude"), rng.normal(size=(2, 3, 4))),
        },
        coords={"level": [500, 850], "latitude": LAT, "longitude": LON},
    )


def test_gridded_statistics_against_numpy():
    bg = state(0)
    obs = state(1)[["temperature"]]
    obs["temperature"][0, 1, 2] = np.nan
    stats = osp.innovation_statistics(obs, bg)
    assert stats["temperature"].dims == ("statistic", "level")
    assert list(stats.statistic.values) == ["mean", "std", "rms", "count"]
    for k in range(2):
        d = (obs - bg)["temperature"].values[k].ravel()
        d = d[np.isfinite(d)]
        np.testing.assert_allclose(
            stats["temperature"].isel(level=k).values,
            [d.mean(), d.std(), np.sqrt((d**2).mean()), d.size],
        )
    assert stats.attrs["kind"] == "omb"
    assert "geopotential" not in stats


def test_point_observations_bilinear_and_periodic():
    bg = state(0)
    lat = np.array([0.0, 15.0, 15.0, 30.0])
    lon = np.array([90.0, 45.0, 315.0, 180.0])
    lev = np.array([500, 850, 500, 850])
    values = np.array([1.0, 2.0, 3.0, 4.0])
    obs = xr.Dataset(
        {"temperature": ("obs", values)},
        coords={"latitude": ("obs", lat), "longitude": ("obs", lon), "level": ("obs", lev)},
    )
    d = osp.innovations(obs, bg)["temperature"].values
    t = bg["temperature"]
    expected_hx = [
        float(t.sel(level=500, latitude=0.0, longitude=90.0)),
        float(t.sel(level=850, latitude=[0.0, 30.0], longitude=[0.0, 90.0]).mean()),
        # between 270 and 360 (= 0): periodic wrap
        float(t.sel(level=500, latitude=[0.0, 30.0], longitude=[270.0, 0.0]).mean()),
        float(t.sel(level=850, latitude=30.0, longitude=180.0)),
    ]
    np.testing.assert_allclose(d, values - np.array(expected_hx), rtol=1e-12)
    stats = osp.innovation_statistics(obs, bg, label="oma")
    assert stats["temperature"].dims == ("level", "statistic")
    assert stats["temperature"].sel(level=500, statistic="count") == 2
    np.testing.assert_allclose(
        float(stats["temperature"].sel(level=850, statistic="mean")), d[[1, 3]].mean()
    )
    assert stats.attrs["kind"] == "oma"


def test_analysis_closer_than_background_reduces_rms():
    truth = state(0)
    bg = truth + 1.0
    an = truth + 0.1
    obs = truth[["temperature"]]
    omb = osp.innovation_statistics(obs, bg)["temperature"].sel(statistic="rms")
    oma = osp.innovation_statistics(obs, an, label="oma")["temperature"].sel(statistic="rms")
    np.testing.assert_allclose(omb.values, 1.0)
    np.testing.assert_allclose(oma.values, 0.1)


def test_errors():
    bg = state(0)
    with pytest.raises(ValueError, match="state lacks observed variable"):
        osp.innovations(xr.Dataset({"specific_humidity": ("obs", [1.0])}), bg)
    obs = xr.Dataset(
        {"temperature": ("obs", [1.0])},
        coords={"latitude": ("obs", [0.0]), "longitude": ("obs", [0.0]), "level": ("obs", [700])},
    )
    with pytest.raises(ValueError, match=r"level \[700\] are not in the state"):
        osp.innovations(obs, bg)
    with pytest.raises(ValueError, match="need a coordinate 'latitude'"):
        osp.innovations(xr.Dataset({"temperature": ("obs", [1.0])}), bg)
    with pytest.raises(ValueError, match="coordinate 'latitude' differs"):
        osp.innovations(state(1)[["temperature"]].assign_coords(latitude=LAT + 1), bg)


def test_assimilation_layout():
    obsmod = pytest.importorskip("xfuxi.observations.sets")
    bg = state(0)
    bg["surface_pressure"] = (("latitude", "longitude"), np.full((3, 4), 1e5))
    t = obsmod.make_observations(
        [1.0, 2.0], error=1.0, time="2000-01-01", latitude=[0, 30], longitude=[90, 180],
        variable="temperature", level=[500, 850],
    )  # fmt: skip
    p = obsmod.make_observations([1.01e5], error=100.0, time="2000-01-01", latitude=[0],
                                 longitude=[0], variable="surface_pressure")  # fmt: skip
    obs = xr.concat([t, p], "obs")
    d = osp.innovations(obs, bg)["innovation"].values
    tt = bg["temperature"]
    expected = [1.0 - float(tt.sel(level=500, latitude=0, longitude=90)),
                2.0 - float(tt.sel(level=850, latitude=30, longitude=180)), 1000.0]  # fmt: skip
    np.testing.assert_allclose(d, expected)
    stats = osp.innovation_statistics(obs, bg)
    assert "level" not in stats["surface_pressure"].dims
    assert float(stats["surface_pressure"].sel(statistic="mean")) == pytest.approx(1000.0)
    assert float(stats["temperature"].sel(level=850, statistic="count")) == 1
