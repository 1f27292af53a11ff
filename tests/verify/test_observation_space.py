"""O−B / O−A statistics for gridded and point observations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
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
        coords={"latitude": ("obs", [0.0]), "longitude": ("obs", [0.0]), "level": ("obs", [1000])},
    )  # below the state's lowest level (one between two levels is interpolated in ln p)
    with pytest.raises(ValueError, match=r"level \[1000\] are not in the state"):
        osp.innovations(obs, bg)
    # times are named as times, not as nanosecond integers
    timed = bg.expand_dims(time=[np.datetime64("2020-01-01T00", "ns")])
    late = obs.assign_coords(level=("obs", [500]), time=("obs", [np.datetime64("2020-01-01T06")]))
    with pytest.raises(ValueError, match=r"time \['2020-01-01 06:00:00'\] are not in the state"):
        osp.innovations(late, timed)
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


def test_innovations_near_the_poles_equal_the_4dvar_operator():
    # issue 19: verify interpolated with xarray (latitudes clipped to the last row, no sign
    # change of the wind across the pole); O-B must equal what the 4DVar operator gives
    torch = pytest.importorskip("torch")
    from xfuxi.data.channels import channels_of, stack
    from xfuxi.observations.operator import build_operator
    from xfuxi.observations.sets import make_observations

    lat, lon = np.linspace(-80.0, 80.0, 9), np.arange(16) * 22.5
    rng = np.random.default_rng(5)
    dims = ("level", "latitude", "longitude")
    bg = xr.Dataset(
        {v: (dims, rng.normal(size=(2, 9, 16))) for v in
         ("temperature", "u_component_of_wind", "v_component_of_wind")}
        | {"surface_pressure": (("latitude", "longitude"), rng.normal(size=(9, 16)))},
        coords={"level": [500.0, 850.0], "latitude": lat, "longitude": lon},
    )  # fmt: skip
    var = ["temperature", "u_component_of_wind", "v_component_of_wind", "u_component_of_wind",
           "temperature", "surface_pressure", "v_component_of_wind", "temperature"]  # fmt: skip
    olat = [89.0, 89.0, 89.0, -87.0, -85.0, 84.0, 85.0, 10.0]  # all but one across a pole
    olon = [45.0, 45.0, 350.0, 200.0, -100.0, 359.0, 170.0, 30.0]
    olev = [500.0, 500.0, 850.0, 850.0, 500.0, None, 500.0, 850.0]
    obs = make_observations(
        rng.normal(size=8), error=1.0, time="2000-01-01", latitude=olat, longitude=olon,
        variable=var, level=olev,
    )  # fmt: skip
    chans = channels_of(bg)
    op, why = build_operator(
        chans, lat, lon, obs_variable=obs["variable"].values, obs_latitude=olat,
        obs_longitude=olon, obs_level=obs["level"].values,
    )  # fmt: skip
    assert (why == "").all()
    x = torch.as_tensor(stack(bg, chans).transpose("channel", "latitude", "longitude").values)
    expected = obs["value"].values - op(x).numpy()
    got = osp.innovations(obs, bg)["innovation"].values
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # the point layout uses the same operator (a wind across the pole changes sign)
    wide = xr.Dataset(
        {"u_component_of_wind": ("obs", [0.0, 0.0])},
        coords={"latitude": ("obs", [89.0, -87.0]), "longitude": ("obs", [45.0, 200.0]),
                "level": ("obs", [500.0, 850.0])},
    )  # fmt: skip
    d = osp.innovations(wide, bg)["u_component_of_wind"].values
    np.testing.assert_allclose(-d, op(x).numpy()[[1, 3]], rtol=0, atol=1e-12)


def test_descending_latitude_state_and_positions_off_the_sphere():
    bg = state(0)
    obs = xr.Dataset(
        {"temperature": ("obs", [1.0, 2.0])},
        coords={"latitude": ("obs", [15.0, 60.0]), "longitude": ("obs", [45.0, 300.0]),
                "level": ("obs", [500, 850])},
    )  # fmt: skip
    d = osp.innovations(obs, bg)["temperature"].values
    flipped = bg.isel(latitude=slice(None, None, -1))
    np.testing.assert_allclose(osp.innovations(obs, flipped)["temperature"].values, d)
    for lat, lon in ((95.0, 0.0), (np.nan, 0.0), (10.0, 400.0)):
        bad = obs.assign_coords(latitude=("obs", [lat, 0.0]), longitude=("obs", [lon, 0.0]))
        with pytest.raises(ValueError, match="cannot be interpolated"):
            osp.innovations(bad, bg)


def _long(variable, level, **kw):
    from xfuxi.observations.sets import make_observations

    n = len(variable)
    return make_observations(np.ones(n), error=1.0, time=kw.pop("time", "2000-01-01"),
                             latitude=kw.pop("latitude", [0.0] * n),
                             longitude=kw.pop("longitude", [90.0] * n),
                             variable=variable, level=level)  # fmt: skip


def test_a_level_given_for_a_single_level_variable_is_refused():
    # the state's surface_pressure was used for an observation at 500 hPa, which the 4DVar
    # rejects as unknown_level
    bg = state(0)
    bg["surface_pressure"] = (("latitude", "longitude"), np.full((3, 4), 1e5))
    obs = _long(["temperature", "surface_pressure"], [500.0, 500.0])
    with pytest.raises(ValueError, match=r"1 observation\(s\) of 'surface_pressure' carry a level"):
        osp.innovations(obs, bg)
    with pytest.raises(ValueError, match="'surface_pressure' carry a level"):
        osp.innovation_statistics(obs, bg)
    ok = _long(["temperature", "surface_pressure"], [500.0, None])
    assert np.isfinite(osp.innovations(ok, bg)["innovation"].values).all()
    wide = xr.Dataset({"surface_pressure": ("obs", [1.0])},
                      coords={"latitude": ("obs", [0.0]), "longitude": ("obs", [0.0]),
                              "level": ("obs", [850.0])})  # fmt: skip
    with pytest.raises(ValueError, match="'surface_pressure' carry a level"):
        osp.innovations(wide, bg)


def test_observation_times_with_a_time_zone_or_not_datetime64_are_refused():
    import pandas as pd

    from xfuxi.observations.sets import ObservationError

    bg = state(0).expand_dims(time=[np.datetime64("2020-01-03T00", "ns")])
    obs = _long(["temperature"], [500.0], time="2020-01-03")
    zoned = obs.assign_coords(time=("obs", pd.DatetimeIndex(obs["time"].values).tz_localize("UTC")))
    with pytest.raises(ObservationError, match=r"time zone \(UTC\)"):  # not [1578009600000000000]
        osp.innovations(zoned, bg)
    wide = xr.Dataset(
        {"temperature": ("obs", [1.0])},
        coords={"latitude": ("obs", [0.0]), "longitude": ("obs", [90.0]),
                "level": ("obs", [500.0]), "time": zoned["time"].variable},
    )  # fmt: skip
    with pytest.raises(ObservationError, match=r"time zone \(UTC\)"):
        osp.innovations(wide, bg)
    text = obs.assign_coords(time=("obs", ["2020-01-03T00:00:00"]))  # the 4DVar refuses it
    with pytest.raises(ObservationError, match="'time' must be datetime64"):
        osp.innovations(text, bg)
    cftime = pytest.importorskip("cftime")
    dates = obs.assign_coords(time=("obs", np.array([cftime.DatetimeGregorian(2020, 1, 3)])))
    with pytest.raises(ObservationError, match="cftime dates"):
        osp.innovations(dates, bg)


def test_innovations_interpolate_levels_and_read_the_layout_as_the_4dvar():
    # 600 hPa lies between the state's 500 and 850: the 4DVar interpolates in ln p, verify
    # refused it; 'variable' as a data variable is taken by the 4DVar, verify refused it
    torch = pytest.importorskip("torch")
    from xfuxi.data.channels import channels_of, stack
    from xfuxi.observations.operator import build_operator

    bg = state(0)
    obs = _long(["temperature", "geopotential", "temperature"], [600.0, 500.0, 850.0],
                latitude=[15.0, 0.0, -30.0], longitude=[45.0, 90.0, 300.0])  # fmt: skip
    chans = channels_of(bg)
    op, why = build_operator(
        chans, LAT, LON, obs_variable=obs["variable"].values, obs_latitude=obs["latitude"].values,
        obs_longitude=obs["longitude"].values, obs_level=obs["level"].values,
    )  # fmt: skip
    assert (why == "").all()
    x = torch.as_tensor(stack(bg, chans).transpose("channel", "latitude", "longitude").values)
    expected = obs["value"].values - op(x).numpy()
    got = osp.innovations(obs, bg)
    np.testing.assert_allclose(got["innovation"].values, expected, rtol=0, atol=1e-12)
    t = (
        bg["temperature"]
        .sel(latitude=[0.0, 30.0], longitude=[0.0, 90.0])
        .mean(["latitude", "longitude"])
    )
    w = np.log(600.0 / 500.0) / np.log(850.0 / 500.0)
    hx = (1 - w) * float(t.sel(level=500)) + w * float(t.sel(level=850))
    assert got["innovation"].values[0] == pytest.approx(1.0 - hx, abs=1e-12)
    as_data = obs.reset_coords("variable")
    assert "variable" in as_data.data_vars
    same = osp.innovations(as_data, bg)
    np.testing.assert_array_equal(same["innovation"].values, got["innovation"].values)
    assert "variable" in same.coords
    stats = osp.innovation_statistics(as_data, bg)
    assert set(stats.data_vars) == {"temperature", "geopotential"}
    # names are printed as names, not as np.str_('temperature')
    far = obs.assign_coords(latitude=("obs", [95.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"of 'temperature' cannot") as info:
        osp.innovations(far, bg)
    assert "np.str_" not in str(info.value)
    with pytest.raises(ValueError, match=r"lacks observed variable\(s\) \['humidity'\]") as info:
        osp.innovations(_long(["humidity"], [500.0]), bg)
    assert "np.str_" not in str(info.value)


def test_point_observations_with_a_scalar_level_or_time_are_each_observations():
    """A level or time held as one scalar coordinate is every observation's (a raw
    IndexError / TypeError before): the same O − B as with the value repeated per row."""
    lat, lon = np.linspace(-80, 80, 9), np.arange(0, 360, 30.0)
    t = pd.date_range("2000-01-01", periods=2, freq="6h")
    rng = np.random.default_rng(1)
    state = xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"),
                         250 + rng.normal(size=(2, 2, 9, 12)))},
        coords={"time": t, "level": [500.0, 850.0], "latitude": lat, "longitude": lon},
    )  # fmt: skip
    rows = {"latitude": ("obs", [10.0, 20.0]), "longitude": ("obs", [15.0, 40.0])}
    obs = xr.Dataset({"temperature": ("obs", [250.0, 251.0])}, coords=rows)
    scalar = obs.assign_coords(level=850.0, time=t[1])
    repeated = obs.assign_coords(level=("obs", [850.0, 850.0]), time=("obs", t[[1, 1]]))
    got = xfuxi.innovations(scalar, state)["temperature"].values
    np.testing.assert_array_equal(got, xfuxi.innovations(repeated, state)["temperature"].values)
    assert np.isfinite(got).all()


def test_a_state_given_first_is_named_as_swapped():
    """state.fuxi.innovations(obs) said "state lacks observed variable(s) [...]" of a state
    that has them: the accessor's object is the observations."""
    bg = state(0)
    obs = xr.Dataset(
        {"temperature": ("obs", [1.5])},
        coords={"latitude": ("obs", [0.0]), "longitude": ("obs", [90.0]), "level": ("obs", [500])},
    )
    with pytest.raises(ValueError, match=r"observations come first.*obs\.fuxi\.innovations"):
        bg.fuxi.innovations(obs)
    with pytest.raises(ValueError, match="observations come first"):
        xfuxi.innovation_statistics(bg, obs)
    assert float(obs.fuxi.innovations(bg)["temperature"][0]) == pytest.approx(
        1.5 - float(bg["temperature"].sel(level=500, latitude=0.0, longitude=90.0))
    )
