"""Observation Datasets, synthetic networks and screening."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xfuxi.observations import sets as xfuxi_obs
from xfuxi.observations.sets import (
    ObservationError,
    make_observations,
    radiosonde_observations,
    random_observations,
    region_observations,
    screen_observations,
    single_observation,
    validate_observations,
)

TIMES = pd.date_range("2005-03-01", periods=2, freq="6h")
LAT = np.linspace(-80, 80, 9)
LON = np.arange(12) * 30.0
LEVELS = [250.0, 500.0, 850.0]


@pytest.fixture
def truth():
    rng = np.random.default_rng(0)
    t = 250 + 0.1 * LAT[None, None, :, None] + 0 * LON + np.zeros((2, 3, 1, 1))
    t = t + np.log(np.array(LEVELS))[None, :, None, None]
    return xr.Dataset(
        {
            "temperature": (("time", "level", "latitude", "longitude"), t),
            "u_component_of_wind": (
                ("time", "level", "latitude", "longitude"),
                rng.normal(size=(2, 3, 9, 12)),
            ),
            "surface_pressure": (
                ("time", "latitude", "longitude"),
                1e5 + rng.normal(size=(2, 9, 12)),
            ),
        },
        coords={"time": TIMES, "level": LEVELS, "latitude": LAT, "longitude": LON},
    )


def test_make_and_validate():
    obs = make_observations(
        [1.0, 2.0],
        error=[0.5, 1.0],
        time=TIMES[0],
        latitude=[0, 10],
        longitude=[5, 6],
        variable=["temperature", "surface_pressure"],
        level=[500.0, None],
    )
    assert obs["level"].values[0] == 500.0 and np.isnan(obs["level"].values[1])
    assert obs["time"].dtype.kind == "M"
    with pytest.raises(ObservationError, match="shape"):
        make_observations(
            [1.0, 2.0],
            error=[1.0, 1.0, 1.0],
            time=TIMES[0],
            latitude=0,
            longitude=0,
            variable="temperature",
        )
    with pytest.raises(ObservationError, match="lack 'error'"):
        validate_observations(obs.drop_vars("error"))
    with pytest.raises(ObservationError, match="dim 'obs'"):
        validate_observations(xr.Dataset({"value": ("x", [1.0])}))


def test_single_observation_noise_free_matches_truth(truth):
    obs = single_observation(
        truth,
        variable="temperature",
        latitude=5.0,
        longitude=45.0,
        level=500.0,
        time=TIMES[1],
        error=0.1,
        noise=False,
    )
    expected = float(
        truth["temperature"].sel(time=TIMES[1], level=500.0).interp(latitude=5.0, longitude=45.0)
    )
    assert float(obs["value"][0]) == pytest.approx(expected)
    noisy = single_observation(
        truth,
        variable="temperature",
        latitude=5.0,
        longitude=45.0,
        level=500.0,
        time=TIMES[1],
        error=0.1,
        seed=1,
    )
    assert float(noisy["value"][0]) != float(obs["value"][0])


def test_random_network_noise_statistics_and_seed(truth):
    obs = random_observations(
        truth,
        n=4000,
        variables=["temperature", "surface_pressure"],
        error={"temperature": 0.5, "surface_pressure": 50.0},
        seed=2,
    )
    again = random_observations(
        truth,
        n=4000,
        variables=["temperature", "surface_pressure"],
        error={"temperature": 0.5, "surface_pressure": 50.0},
        seed=2,
    )
    xr.testing.assert_identical(obs, again)
    noise = (obs["value"] - obs["truth"]) / obs["error"]
    assert float(noise.std()) == pytest.approx(1.0, abs=0.05)
    assert abs(float(noise.mean())) < 0.05
    sp = obs["variable"] == "surface_pressure"
    assert np.isnan(obs["level"].values[sp.values]).all()
    assert set(obs["level"].values[~sp.values]) <= set(LEVELS)
    # uniform in area: about half of the points within 30 degrees of the equator
    frac = float((np.abs(obs["latitude"]) < 30).mean())
    assert frac == pytest.approx(0.5, abs=0.03)
    with pytest.raises(
        ObservationError,
        match=r"no observation error given for variable 'temperature' \(errors given for \['x'\]\)",
    ):
        random_observations(truth, n=5, variables=["temperature"], error={"x": 1.0})
    # one name given as a string was read as its letters ("No variable named 't'")
    for make, kw in (
        (random_observations, {"n": 5}),
        (radiosonde_observations, {"sites": [(10.0, 20.0)]}),
        (region_observations, {"latitude": (0.0, 30.0), "longitude": (0.0, 60.0)}),
    ):
        with pytest.raises(ObservationError, match=r"not one string: variables=\['temperature'\]"):
            make(truth, variables="temperature", error=1.0, **kw)


def test_radiosonde_columns(truth):
    obs = radiosonde_observations(
        truth,
        sites=[(10.0, 20.0), (-30.0, 200.0)],
        error=1.0,
        variables=["temperature", "u_component_of_wind"],
        seed=0,
    )
    assert obs.sizes["obs"] == 2 * 2 * 2 * 3  # times x sites x variables x levels
    col = obs.where(
        (obs["latitude"] == 10.0) & (obs["time"] == TIMES[0]) & (obs["variable"] == "temperature"),
        drop=True,
    )
    assert sorted(col["level"].values.tolist()) == LEVELS
    with pytest.raises(ObservationError, match="exactly one"):
        radiosonde_observations(truth, error=1.0)
    rnd = radiosonde_observations(truth, n_sites=3, error=1.0, times=TIMES[0], seed=0)
    assert rnd.sizes["obs"] == 3 * 2 * 3


def test_region_box_and_wrap(truth):
    obs = region_observations(
        truth,
        latitude=(15, 45),
        longitude=(330, 30),
        variables=["temperature"],
        levels=[500.0],
        error=0.3,
        times=TIMES[0],
        seed=0,
    )
    assert set(obs["longitude"].values.tolist()) == {0.0, 30.0, 330.0}
    assert set(obs["latitude"].values.tolist()) == {20.0, 40.0}
    with pytest.raises(ObservationError, match="no grid point"):
        region_observations(
            truth, latitude=(1, 2), longitude=(0, 10), variables=["temperature"], error=1.0
        )
    # a box around the globe: both ends were one meridian modulo 360, which alone was kept
    kw = dict(latitude=(15, 45), variables=["temperature"], levels=[500.0], error=0.3,
              times=TIMES[0], seed=0)  # fmt: skip
    for box in ((0, 360), (-180, 180), (-10, 400)):
        obs = region_observations(truth, longitude=box, **kw)
        assert set(obs["longitude"].values.tolist()) == set(LON.tolist()), box


def test_screen_counts_every_reason_and_strict_mode():
    t0 = np.datetime64("2005-03-01T06", "ns")
    obs = make_observations(
        [1.0, np.nan, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        error=[1.0, 1.0, 0.0, np.nan, 1.0, 1.0, 1.0, 1.0, 1.0],
        time=[t0] * 7 + [t0 + np.timedelta64(6, "h"), t0 + np.timedelta64(10, "h")],
        latitude=0.0,
        longitude=0.0,
        variable=["temperature"] * 4
        + ["dewpoint", "temperature", "temperature", "temperature", "temperature"],
        level=[500, 500, 500, 500, 500, 1000, 500, 500, 500],
    )
    # make_observations refuses a latitude beyond the pole; one in a Dataset made otherwise
    # (read from a file) is outside the grid
    obs["latitude"] = obs["latitude"].copy(data=[0, 0, 0, 0, 0, 0, 91.0, 0, 0])
    before = obs.copy(deep=True)
    kw = dict(
        channels=[("temperature", 500.0), ("temperature", 850.0)],
        latitude=[-45.0, 45.0],
        longitude=[0.0, 180.0],
        slot_times=np.array([t0, t0 + np.timedelta64(6, "h")]),
    )
    used, op, why, counts = screen_observations(obs, **kw)
    xr.testing.assert_identical(obs, before)
    assert counts == {
        "nan_value": 1,
        "bad_error": 2,
        "unknown_variable": 1,
        "unknown_level": 1,
        "outside_grid": 1,
        "outside_window": 1,
        "duplicate": 0,
        "background_check": 0,
    }
    assert used.sizes["obs"] == 2 and op.n_obs == 2
    assert used["slot"].values.tolist() == [0, 1]
    assert why[0] == "" and why[1] == "nan_value"
    with pytest.raises(ObservationError, match="7 of 9 observations rejected"):
        screen_observations(obs, strict=True, **kw)


def test_longitudes_outside_minus180_360_are_refused_not_wrapped():
    # issue 20: 400 or 720.5 were silently taken modulo 360
    kw = dict(error=1.0, time=TIMES[0], latitude=0.0, variable="temperature", level=500.0)
    for lon in (400.0, 720.5, -180.5):
        with pytest.raises(ObservationError, match=r"longitude\(s\) outside \[-180, 360\]"):
            make_observations([1.0], longitude=lon, **kw)
    obs = make_observations([1.0, 2.0, 3.0], longitude=[-180.0, 360.0, 359.5], **kw)
    assert obs["longitude"].values.tolist() == [-180.0, 360.0, 359.5]  # kept as given
    bad = obs.assign_coords(longitude=("obs", [10.0, 400.0, 20.0]))
    with pytest.raises(ObservationError, match=r"\[400.0\] at obs index \[1\]"):
        screen_observations(
            bad,
            channels=[("temperature", 500.0)],
            latitude=[-45.0, 45.0],
            longitude=[0.0, 180.0],
            slot_times=np.array([TIMES[0]], dtype="M8[ns]"),
        )


def test_bad_site_and_observation_counts_are_clear_errors(truth):
    # issue 20: n_sites=0 or -1 gave unpacking errors
    for n in (0, -1):
        with pytest.raises(ObservationError, match=f"n_sites must be a positive integer.*{n}"):
            radiosonde_observations(truth, n_sites=n, error=1.0)
        with pytest.raises(ObservationError, match="n must be a positive integer"):
            random_observations(truth, n=n, variables=["temperature"], error=1.0)
    for n in (2.5, True, "3"):
        with pytest.raises(ObservationError, match="n_sites must be a positive integer"):
            radiosonde_observations(truth, n_sites=n, error=1.0)
    with pytest.raises(ObservationError, match="sites must be a non-empty sequence"):
        radiosonde_observations(truth, sites=[], error=1.0)
    with pytest.raises(ObservationError, match="levels is empty"):
        radiosonde_observations(truth, sites=[(0.0, 0.0)], levels=[], error=1.0)


def test_repeated_or_empty_levels_and_times_bad_seeds_and_infinite_errors_are_refused(truth):
    """A level or time given twice made each report twice (or weighted the random draw);
    empty ones, a negative or fractional seed failed with NumPy's messages, and an
    infinite error gave an infinite observation."""
    site = [(0.0, 0.0)]
    level = float(truth["level"].values[0])
    time = truth["time"].values[0]
    with pytest.raises(ObservationError, match=rf"levels repeats \[{level}\] hPa"):
        radiosonde_observations(truth, sites=site, levels=[level, level], error=1.0)
    with pytest.raises(ObservationError, match=r"levels repeats"):
        random_observations(truth, n=5, variables=["temperature"], levels=[level, level], error=1.0)
    with pytest.raises(ObservationError, match=r"times repeats \['"):
        radiosonde_observations(truth, sites=site, times=[time, time], error=1.0)
    with pytest.raises(ObservationError, match=r"times repeats"):
        random_observations(truth, n=5, variables=["temperature"], times=[time, time], error=1.0)
    with pytest.raises(ObservationError, match="levels is empty"):
        random_observations(truth, n=5, variables=["temperature"], levels=[], error=1.0)
    with pytest.raises(ObservationError, match="times is empty"):
        random_observations(truth, n=5, variables=["temperature"], times=[], error=1.0)
    for seed in (-1, 1.5, "x", True):
        with pytest.raises(ObservationError, match="seed must be a non-negative integer"):
            random_observations(truth, n=5, variables=["temperature"], error=1.0, seed=seed)
    for error in (np.inf, np.nan):
        with pytest.raises(ObservationError, match="positive and finite"):
            single_observation(
                truth,
                variable="temperature",
                latitude=0.0,
                longitude=0.0,
                level=level,
                time=time,
                error=error,
            )
    # one of each still works, and a seed of None draws fresh noise
    obs = radiosonde_observations(truth, sites=site, levels=[level], times=[time], error=1.0)
    assert obs.sizes["obs"] == sum("level" in truth[v].dims for v in truth.data_vars)
    fresh = random_observations(truth, n=5, variables=["temperature"], error=1.0, seed=None)
    assert fresh.sizes["obs"] == 5


def test_duplicated_observations_detected_and_copies_refused_by_screening():
    # issue 20: a 6-times repeated observation was used as 6 independent ones
    t0 = TIMES[0]
    obs = make_observations(
        [1.0] * 6 + [2.0, 3.0, 4.0, 5.0, 6.0, 5.0],
        error=1.0,
        time=[t0] * 10 + [t0 + np.timedelta64(6, "h"), t0],
        latitude=[10.0] * 6 + [10.0, 10.0, 20.0, 90.0, 10.0, 90.0],
        longitude=[-10.0] + [350.0] * 5 + [350.0, 350.0, 350.0, 0.0, 350.0, 123.0],
        variable=["temperature"] * 7 + ["surface_pressure"] + ["temperature"] * 4,
        level=[500.0] * 6 + [850.0, None, 500.0, 500.0, 500.0, 500.0],
    )
    # copies of obs 0 (-10 is 350), and of obs 9 (the north pole at any longitude)
    dup = xfuxi_obs.duplicated_observations(obs)
    assert np.flatnonzero(dup).tolist() == [1, 2, 3, 4, 5, 11]
    assert (xfuxi_obs.duplicated_observations(obs, copies=True) == dup).all()
    kw = dict(
        channels=[("temperature", 500.0), ("temperature", 850.0), ("surface_pressure", None)],
        latitude=[-45.0, 45.0],
        longitude=[0.0, 180.0],
        slot_times=np.array([t0, t0 + np.timedelta64(6, "h")], dtype="M8[ns]"),
    )
    with pytest.raises(ObservationError, match="6 usable observation.*copies of an earlier one"):
        screen_observations(obs, **kw)
    used, op, why, counts = screen_observations(obs.isel(obs=~dup), **kw)
    assert used.sizes["obs"] == op.n_obs == 6 and sum(counts.values()) == 0
    # a copy that is rejected anyway (NaN value) is not a copy of a usable one
    nan_copy = obs.isel(obs=[0, 1])
    nan_copy["value"][1] = np.nan
    used, _, why, _ = screen_observations(nan_copy, **kw)
    assert why.tolist() == ["", "nan_value"]
    # two different reports at one place and time are used, with a loud warning
    two = obs.isel(obs=[0, 1])
    two["value"][1] = 1.5
    assert xfuxi_obs.duplicated_observations(two).tolist() == [False, True]
    assert xfuxi_obs.duplicated_observations(two, copies=True).tolist() == [False, False]
    with pytest.warns(UserWarning, match="1 usable observation.*independent reports"):
        used, *_ = screen_observations(two, **kw)
    assert used.sizes["obs"] == 2


def test_an_observation_without_a_time_is_outside_the_window():
    """NaT − t is int64's minimum, whose abs stays negative: such an observation was used
    at the first slot."""
    t0 = TIMES[0].to_datetime64()
    obs = make_observations([1.0, 2.0], error=1.0, time=[np.datetime64("NaT"), t0],
                            latitude=0.0, longitude=0.0, variable="temperature",
                            level=500.0)  # fmt: skip
    used, _, why, counts = screen_observations(
        obs, channels=[("temperature", 500.0)], latitude=[-45.0, 45.0],
        longitude=[0.0, 180.0], slot_times=np.array([t0], dtype="M8[ns]"),
    )  # fmt: skip
    assert why.tolist() == ["outside_window", ""]
    assert counts["outside_window"] == 1 and used.sizes["obs"] == 1


def test_latitudes_outside_minus90_90_are_refused():
    kw = dict(error=1.0, time=TIMES[0], longitude=0.0, variable="temperature", level=500.0)
    for lat in (100.0, 90.5, -91.0):
        with pytest.raises(
            ObservationError,
            match=rf"1 observation latitude\(s\) outside "
            rf"\[-90, 90\] degrees, e.g. \[{lat}\] at obs index \[1\]",
        ):
            make_observations([1.0, 1.0], latitude=[0.0, lat], **kw)
    # the poles, and what screening rejects and counts (NaN value, non-positive or NaN
    # error, NaN position: documented as screened) are kept
    obs = make_observations(
        [1.0, np.nan, 1.0, 1.0],
        error=[1.0, 1.0, 0.0, -1.0],
        latitude=[90.0, -90.0, np.nan, 0.0],
        time=TIMES[0],
        longitude=0.0,
        variable="temperature",
        level=500.0,
    )
    assert obs.sizes["obs"] == 4


def test_network_arguments_given_twice_or_misspelt_are_refused(truth):
    kw = dict(n=5, error=1.0, seed=0)
    with pytest.raises(
        ObservationError,
        match=r"variables lists \['temperature'\] more than "
        r"once",
    ):
        random_observations(truth, variables=["temperature", "temperature"], **kw)
    # a misspelt name in the error mapping was ignored
    with pytest.raises(
        ObservationError,
        match=r"error names variable\(s\) \['tempreature'\] "
        r"that truth lacks .*misspelt",
    ):
        random_observations(
            truth,
            n=5,
            variables=["temperature"],
            seed=0,
            error={"temperature": 1.0, "tempreature": 5.0},
        )
    # a table of errors for other variables of the truth is fine, and gives the same draws
    shared = random_observations(
        truth,
        n=5,
        variables=["temperature"],
        seed=0,
        error={"temperature": 1.0, "surface_pressure": 50.0},
    )
    xr.testing.assert_identical(shared, random_observations(truth, variables=["temperature"], **kw))
    # a site given twice (or once more modulo 360) made each sounding twice
    for sites in (
        [(10.0, 20.0), (10.0, 20.0)],
        [(10.0, 20.0), (-5.0, 0.0), (10.0, 380.0)],
        [(90.0, 0.0), (90.0, 45.0)],
    ):
        with pytest.raises(ObservationError, match=r"sites repeats 1 site\(s\)"):
            radiosonde_observations(truth, sites=sites, error=1.0, seed=0)
    with pytest.raises(ObservationError, match="more than once"):
        radiosonde_observations(
            truth, sites=[(10.0, 20.0)], error=1.0, seed=0, variables=["temperature", "temperature"]
        )
    with pytest.raises(ObservationError, match="more than once"):
        region_observations(
            truth,
            latitude=(0, 30),
            longitude=(0, 60),
            error=1.0,
            variables=["temperature", "temperature"],
        )
    # the ends of a region's latitude range in either order, as documented
    a = region_observations(
        truth, latitude=(40, 0), longitude=(0, 60), error=1.0, seed=0, variables=["temperature"]
    )
    b = region_observations(
        truth, latitude=(0, 40), longitude=(0, 60), error=1.0, seed=0, variables=["temperature"]
    )
    xr.testing.assert_identical(a, b)


def test_times_with_a_time_zone_or_cftime_are_refused_with_the_conversion():
    # a time zone gave a raw "TypeError: Cannot interpret 'datetime64[ns, UTC]' as a data
    # type" from the 4DVar; cftime dates were refused only by their dtype ('object')
    obs = make_observations([1.0, 2.0], error=1.0, time=TIMES[0], latitude=[0, 10],
                            longitude=[5, 6], variable="temperature", level=500.0)  # fmt: skip
    tokyo = pd.DatetimeIndex([TIMES[0]] * 2).tz_localize("UTC").tz_convert("Asia/Tokyo")
    zoned = obs.assign_coords(time=("obs", tokyo))
    with pytest.raises(ObservationError, match=r"time zone \(Asia/Tokyo\).*tz_localize\(None\)"):
        validate_observations(zoned)
    # the conversion the message names gives the observations back
    fixed = zoned.assign_coords(
        time=("obs", zoned["time"].to_index().tz_convert("UTC").tz_localize(None))
    )
    assert (validate_observations(fixed)["time"].values == obs["time"].values).all()
    cftime = pytest.importorskip("cftime")
    dates = np.array([cftime.DatetimeNoLeap(2005, 3, 1)] * 2)
    with pytest.raises(
        ObservationError, match=r"cftime dates \(noleap calendar\).*to_datetimeindex"
    ):
        validate_observations(obs.assign_coords(time=("obs", dates)))


def test_screening_makes_the_stencils_and_the_repeats_once(monkeypatch):
    """The interpolation stencils were made for every observation (for the reasons) and
    again for the used ones (for the operator), and the repeats were looked for twice
    (copies, then reports at one position): now once each, with the same operator as
    ``build_operator`` of the used observations, and a lower peak (``tracemalloc``)."""
    import tracemalloc

    from xfuxi.observations import interpolation
    from xfuxi.observations.operator import build_operator

    rng = np.random.default_rng(0)
    m = 40000
    levels = [250.0, 500.0, 700.0, 850.0]
    channels = [(v, lv) for v in ("temperature", "u_component_of_wind") for lv in levels]
    channels.append(("surface_pressure", None))
    variable = rng.choice(["temperature", "u_component_of_wind", "surface_pressure"], m)
    variable[5:8] = "u_component_of_wind"  # (three usable ones, copied below)
    value = rng.standard_normal(m)
    value[::50] = np.nan
    hours = rng.integers(-4, 10, m)
    hours[5:8] = 0
    obs = make_observations(
        value,
        error=1.0,
        time=TIMES[0] + hours * np.timedelta64(1, "h"),
        latitude=rng.uniform(-90, 90, m),
        longitude=rng.uniform(0, 360, m),
        variable=variable,
        level=np.where(variable == "surface_pressure", np.nan, rng.uniform(300, 800, m)),
    )
    copies = obs.isel(obs=np.r_[np.arange(m), 5, 6, 7])  # two copies, and a second report
    copies["value"][-1] = copies["value"][7] + 1.0
    kw = dict(
        channels=channels,
        latitude=np.linspace(-90, 90, 121),
        longitude=np.arange(240) * 1.5,
        slot_times=TIMES[0] + np.arange(3) * np.timedelta64(3, "h"),
        duplicates="first",
    )
    screen_observations(copies.isel(obs=slice(0, 100)), **kw)  # (lazy imports)
    calls = []

    original = interpolation.horizontal_weights

    def counted(*args, **kwargs):
        calls.append(len(args[2]))  # (the observations' latitudes)
        return original(*args, **kwargs)

    monkeypatch.setattr(interpolation, "horizontal_weights", counted)
    monkeypatch.setattr(xfuxi_obs, "horizontal_weights", counted, raising=False)
    tracemalloc.start()
    try:
        with pytest.warns(UserWarning) as caught:
            used, op, why, counts = screen_observations(copies, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert calls == [m + 3]  # every observation's stencil once (it was m + 3, then the used)
    assert [str(w.message)[:40] for w in caught] == [
        "2 usable observation(s) are copies of an",
        "1 usable observation(s) share variable, ",
    ]
    assert counts["duplicate"] == 2 and counts["nan_value"] == m // 50 and used.sizes["obs"] > m / 2
    # the operator of the used observations, bit for bit
    monkeypatch.undo()
    ref, _ = build_operator(
        channels, kw["latitude"], kw["longitude"], **xfuxi_obs._operator_columns(used)
    )
    assert op.state_shape == ref.state_shape
    assert np.array_equal(op.index.numpy(), ref.index.numpy())
    assert np.array_equal(op.weight.numpy(), ref.weight.numpy())
    # about 4.0 times the observations (the stencils of all of them); 5.9 before
    assert peak < 5.3 * obs.nbytes


def test_a_pole_row_is_observed_once(truth):
    """A box reaching a grid's pole row made one observation per longitude there (12 here),
    each with its own noise: the pole weighed as 12 independent reports."""
    polar = truth.interp(latitude=np.linspace(-90, 90, 13))
    obs = region_observations(polar, latitude=(75, 90), longitude=(0, 360),
                              variables=["temperature", "u_component_of_wind"],
                              levels=[500.0], error=0.5, times=TIMES[0], seed=0)  # fmt: skip
    at_pole = obs["latitude"].values == 90.0
    assert int(at_pole.sum()) == 2  # one per variable
    assert obs["longitude"].values[at_pole].tolist() == [0.0, 0.0]
    assert int((obs["latitude"].values == 75.0).sum()) == 2 * LON.size
    # the wrap-around box's first longitude is its western edge
    west = region_observations(polar, latitude=(75, 90), longitude=(300, 30),
                               variables=["temperature"], levels=[500.0], error=0.5,
                               times=TIMES[0], seed=0)  # fmt: skip
    assert west["longitude"].values[west["latitude"].values == 90.0].size == 1


def test_observation_levels_in_pa_are_refused_with_the_fix():
    """Levels in Pa were accepted and every observation rejected as an unknown level, with
    only an INFO line."""
    kw = dict(error=0.5, time="2000-01-01", latitude=0.0, longitude=0.0, variable="temperature")
    with pytest.raises(ObservationError, match=r"above 1100 hPa.*look like Pa: divide them"):
        make_observations([1.0, 2.0], level=[50000.0, 500.0], **kw)
    obs = make_observations([1.0, 2.0], level=[500.0, 850.0], **kw)
    obs["level"].attrs["units"] = "Pa"
    with pytest.raises(ObservationError, match="units 'Pa'.*look like Pa"):
        validate_observations(obs)
    # hPa (and levels in a surface pressure's range, NaN for single-level variables) pass
    fine = make_observations([1.0, 2.0], error=0.5, time="2000-01-01", latitude=0.0,
                             longitude=0.0, variable=["temperature", "surface_pressure"],
                             level=[1050.0, np.nan])  # fmt: skip
    validate_observations(fine)
