"""The synthetic geostationary imager: geometry, weighting functions, gradients, clouds, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from tests import tiny_da
from xfuxi.observations.imager import (
    CHANNELS,
    ImagerError,
    ImagerErrors,
    NominalImager,
    brightness_temperature,
    check_radiances,
    imager_observations,
    radiance_operator,
    radiance_table,
    weighting_functions,
    zenith_angle,
)

LEVELS, LAT, LON = tiny_da.LEVELS, tiny_da.LAT, tiny_da.LON
MODEL_CHANNELS = tiny_da.MODEL_CHANNELS
truth = tiny_da.truth


def column(tropical: bool = True):
    t = torch.tensor([220.0, 262.0, 284.0, 298.0] if tropical else [220, 250, 268, 278.0])
    q = torch.tensor([0.08, 0.27, 0.5, 0.68] if tropical else [0.03, 0.11, 0.13, 0.14])
    return t.double().view(4, 1, 1), q.double().view(4, 1, 1), torch.full((1, 1), 1.0e5).double()


# --- geometry ---------------------------------------------------------------------------------


def test_zenith_zero_below_satellite_and_nan_beyond_max():
    lat = np.array([-80.0, -40.0, 0.0, 40.0, 80.0])
    lon = np.arange(0.0, 360.0, 30.0)
    zen, sat = zenith_angle(lat, lon, satellites=[120.0], max_zenith=70.0)
    assert zen[2, 4] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.isnan(zen[[0, 4]]))  # |lat| = 80: beyond 70 degrees everywhere
    assert np.all(np.isnan(zen[2, lon == 300.0]))  # the far side
    seen = np.isfinite(zen)
    assert np.all(zen[seen] <= 70.0) and np.all((sat >= 0) == seen)
    # zenith grows away from the sub-satellite point, and exceeds the central angle
    assert zen[2, 5] > zen[2, 4] and zen[3, 4] > 40.0


def test_overlap_smaller_zenith_wins():
    lon = np.arange(0.0, 360.0, 10.0)
    zen2, sat2 = zenith_angle([0.0], lon, satellites=[0.0, 60.0])
    z_a, _ = zenith_angle([0.0], lon, satellites=[0.0])
    z_b, _ = zenith_angle([0.0], lon, satellites=[60.0])
    both = np.isfinite(z_a) & np.isfinite(z_b)
    assert both.any()
    np.testing.assert_allclose(zen2[both], np.minimum(z_a, z_b)[both])
    assert sat2[0, lon == 20.0][0] == 0 and sat2[0, lon == 40.0][0] == 1


# --- weighting functions ------------------------------------------------------------------------


def _peaks(zenith: float, tropical: bool = True) -> dict[str, float]:
    t, q, ps = column(tropical)
    w, _, p = weighting_functions(t, q, ps, zenith, levels=LEVELS)
    return {n: float(p[w[i].argmax(0)[0, 0], 0, 0]) for i, n in enumerate(CHANNELS)}


def test_weighting_function_peaks_and_limb_effect():
    nadir = _peaks(0.0)
    assert nadir["wv6.2"] < 400.0 < nadir["wv6.9"] < nadir["wv7.4"] < 700.0
    for window in ("ir3.7", "ir10.8", "ir8.5"):
        assert nadir[window] > 900.0
    assert 450.0 < _peaks(0.0, tropical=False)["co2_13.3"] < 750.0
    limb = _peaks(60.0)
    for name in ("wv6.2", "wv6.9", "wv7.4", "co2_13.3"):
        assert limb[name] < nadir[name], name  # peaks move upward with sec(zenith)
    t, q, ps = column()
    w, s, _ = weighting_functions(t, q, ps, 30.0, levels=LEVELS)
    np.testing.assert_allclose((w.sum(1) + s).numpy(), 1.0, atol=1e-12)


def test_moister_column_lifts_water_vapour_peak():
    t, q, ps = column(tropical=False)
    w, _, p = weighting_functions(t, q, ps, 0.0, levels=LEVELS, channels=["wv7.4"])
    w2, _, _ = weighting_functions(t, 3 * q, ps, 0.0, levels=LEVELS, channels=["wv7.4"])
    assert p[w2[0].argmax(0)[0, 0], 0, 0] < p[w[0].argmax(0)[0, 0], 0, 0]


def test_channels_computed_together_equal_each_channel_alone():
    """A channel's radiance and weights do not depend on which other channels are asked for,
    or in which order (batched states and the truth's spectroscopy error too)."""
    rng = torch.Generator().manual_seed(3)
    t = 250.0 + 20.0 * torch.randn(2, 4, 3, 5, generator=rng, dtype=torch.float64)
    q = 0.3 + 0.2 * torch.rand(2, 4, 3, 5, generator=rng, dtype=torch.float64)
    ps = 1.0e5 + 2.0e3 * torch.randn(2, 3, 5, generator=rng, dtype=torch.float64)
    zen = 60.0 * torch.rand(3, 5, generator=rng, dtype=torch.float64)
    names = list(CHANNELS)[::-1]
    for spectroscopy in (False, True):
        together = brightness_temperature(
            t, q, ps, zen, levels=LEVELS, channels=names, spectroscopy=spectroscopy
        )
        assert together.shape == (2, len(names), 3, 5)
        for i, name in enumerate(names):
            alone = brightness_temperature(
                t, q, ps, zen, levels=LEVELS, channels=[name], spectroscopy=spectroscopy
            )
            assert torch.equal(together[:, i], alone[:, 0]), name
    w, s, _ = weighting_functions(t, q, ps, 30.0, levels=LEVELS, channels=names)
    for i, name in enumerate(names):
        w1, s1, _ = weighting_functions(t, q, ps, 30.0, levels=LEVELS, channels=[name])
        assert torch.equal(w[:, i], w1[:, 0]) and torch.equal(s[:, i], s1[:, 0]), name


# --- the nominal operator ---------------------------------------------------------------------


def test_nominal_operator_gradient():
    rng = np.random.default_rng(1)
    grid = (2, 3)
    zen = np.array([[10.0, 40.0, np.nan], [0.0, 65.0, 20.0]])
    op = NominalImager(MODEL_CHANNELS, zen, channels=["wv6.9", "ir10.8", "co2_13.3"])
    x = np.concatenate(
        [
            (np.array(LEVELS)[:, None, None] * 0.1 + 200.0) + rng.normal(size=(4, *grid)),
            0.2 + 0.05 * rng.normal(size=(4, *grid)),
            1.0e5 + 500.0 * rng.normal(size=(1, *grid)),
        ]
    )
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = op(xt)
    assert out.shape == (3, 2, 3) and bool(torch.isnan(out[:, 0, 2]).all())

    def seen(v):
        return op(v)[:, [0, 0, 1, 1, 1], [0, 1, 0, 1, 2]]

    assert torch.autograd.gradcheck(seen, (xt,), eps=1e-6, atol=1e-5)
    g = torch.autograd.grad(seen(xt)[0].sum(), xt)[0]  # the wv channel: T, tracer and ps
    assert g[:4].abs().sum() > 0 and g[4:8].abs().sum() > 0 and g[8].abs().sum() > 0


def test_more_tracer_cools_water_vapour_channel():
    t, q, ps = column()
    z = torch.zeros(1, 1, dtype=torch.float64)
    bt = brightness_temperature(t, q, ps, z, levels=LEVELS, channels=["wv6.9"])
    bt2 = brightness_temperature(t, q * 1.5, ps, z, levels=LEVELS, channels=["wv6.9"])
    assert float(bt2) < float(bt) - 0.5


def test_opaque_cloud_gives_cloud_top_temperature():
    t, q, ps = column()
    z = torch.zeros(1, 1, dtype=torch.float64)
    kw = dict(levels=LEVELS, channels=["ir10.8"])
    clear = brightness_temperature(t, q, ps, z, **kw)
    thick = brightness_temperature(
        t, q, ps, z, cloud_pressure=torch.full((1, 1), 300.0).double(),
        cloud_emissivity=torch.ones(1, 1).double(), **kw,
    )  # fmt: skip
    thin = brightness_temperature(
        t, q, ps, z, cloud_pressure=torch.full((1, 1), 300.0).double(),
        cloud_emissivity=torch.full((1, 1), 0.4).double(), **kw,
    )  # fmt: skip
    assert float(thick) < 240.0 < float(thin) < float(clear)


# --- the imager ---------------------------------------------------------------------------------


def test_imager_layout_clouds_and_missing():
    rad = imager_observations(truth(8), satellites=[90.0], frames=(-3.0, 0.0, 3.0), seed=1)
    bt = rad["brightness_temperature"]
    assert bt.dims == ("time", "frame", "sensor_channel", "latitude", "longitude")
    assert rad.sizes["time"] == 6 and rad.sizes["frame"] == 3
    seen = np.isfinite(rad["zenith_angle"].values)
    assert np.all(np.isnan(bt.values[..., ~seen])) and np.all(np.isfinite(bt.values[..., seen]))
    assert np.nanmax(rad["zenith_angle"].values) <= 70.0
    frac = float(rad["cloudy"].values[..., seen].mean())
    assert 0.25 < frac < 0.6  # about a third to a half (40% on the world)


def test_radiances_carry_the_provenance_of_the_truth():
    # a map of the radiances of the Held-Suarez world was drawn with Earth's coastlines:
    # they said nothing of the world they were drawn from
    world = truth(3).assign_attrs(title="Held-Suarez world (T21, seed 3)",
                                  source="dinosaur ... Held-Suarez (1994) forcing",
                                  history="not provenance")  # fmt: skip
    rad = imager_observations(world, satellites=[90.0], frames=(0.0,), seed=1)
    assert rad.attrs["title"] == "synthetic imager radiances of Held-Suarez world (T21, seed 3)"
    assert rad.attrs["source"] == world.attrs["source"]
    assert "history" not in rad.attrs
    assert rad.attrs["satellite_longitudes"] == [90.0]  # the imager's own attrs stay
    from xfuxi.plot import _is_held_suarez

    assert _is_held_suarez(rad)
    # a truth without provenance: a title naming the radiances alone
    plain = imager_observations(truth(3), satellites=[90.0], frames=(0.0,), seed=1)
    assert plain.attrs["title"] == "synthetic imager radiances" and "source" not in plain.attrs


def test_truth_errors_switch_off_to_nominal():
    ds = truth()
    off = ImagerErrors(clouds=False, bias=False, noise=False, spectroscopy=False)
    clean = imager_observations(ds, satellites=[90.0], frames=(0.0,), errors=off)
    table = radiance_table(clean.isel(time=[0]), frames=None)
    from xfuxi.data.channels import stack

    x = torch.as_tensor(stack(ds.sel(time=clean["time"].values[0]), MODEL_CHANNELS).values)
    op = radiance_operator(table, channels=MODEL_CHANNELS, latitude=LAT, longitude=LON)
    np.testing.assert_allclose(op(x).numpy(), table["value"].values, atol=1e-9)
    noisy = imager_observations(
        ds, satellites=[90.0], frames=(0.0,), errors=ImagerErrors(clouds=False)
    )
    diff = noisy["brightness_temperature"] - clean["brightness_temperature"]
    assert 0.1 < float(diff.std()) < 3.0 and float(abs(diff.mean())) > 0.01
    # the operator on a subset keeps the rows selected
    keep = np.arange(table.sizes["obs"]) % 3 == 0
    np.testing.assert_allclose(op.subset(keep)(x).numpy(), op(x).numpy()[keep])


def test_drift_shifts_later_times():
    ds = truth(n_time=4)
    quiet = ImagerErrors(clouds=False, noise=False)
    kw = dict(satellites=[90.0], frames=(0.0,))
    a = imager_observations(ds, errors=quiet, **kw)["brightness_temperature"]
    b = imager_observations(ds, errors=quiet.replace(drift=3.0), **kw)["brightness_temperature"]
    d = (b - a).mean(("frame", "sensor_channel", "latitude", "longitude")).values
    np.testing.assert_allclose(d, 3.0 * np.arange(4) * 0.25 / 30.0, atol=1e-9)


def test_drift_grows_from_one_origin_call_after_call():
    """A cycling run draws one analysis time a call: the drift counts from the truth's first
    time (it counted from each call's own time, so it never drifted), in any order of
    ``times``, and without the bias too (it was dropped there, yet recorded)."""
    from xfuxi.assimilation.da_cycle import ImagerNetwork

    ds = truth(n_time=4)
    times = ds["time"].values
    quiet = ImagerErrors(clouds=False, noise=False, bias=False, spectroscopy=False)
    kw = dict(satellites=[90.0], frames=(0.0,))
    bt = "brightness_temperature"

    def shift(errors, **call):
        a = imager_observations(ds, errors=quiet, **kw, **call)[bt]
        b = imager_observations(ds, errors=errors, **kw, **call)[bt]
        return (b - a).mean(("frame", "sensor_channel", "latitude", "longitude")).values

    drifting = quiet.replace(drift=3.0)
    per_day = 3.0 / 30.0
    np.testing.assert_allclose(shift(drifting), per_day * 0.25 * np.arange(4), atol=1e-9)
    np.testing.assert_allclose(shift(drifting, times=times[[3, 1]]), per_day * np.array(
        [0.5, 0.0]), atol=1e-9)  # fmt: skip
    np.testing.assert_allclose(
        shift(drifting, times=[times[3]], drift_origin=times[0]), [per_day * 0.75], atol=1e-9
    )
    one = imager_observations(ds, errors=drifting, times=[times[2]], drift_origin=times[0], **kw)
    assert one.attrs["drift_origin"] == str(pd.Timestamp(times[0]))
    with pytest.raises(ImagerError, match="drift_origin must be a date and time"):
        imager_observations(ds, errors=drifting, drift_origin="soon", **kw)
    network = ImagerNetwork(satellites=(90.0,), frames=(0.0,), errors=drifting)
    model = type("M", (), {"timestep": np.timedelta64(6, "h")})()
    for k in (1, 3):
        drawn = network(ds, [times[k]], cycle=k, model=model)[bt]
        clean = imager_observations(ds, errors=quiet, times=[times[k]], seed=k, **kw)[bt]
        np.testing.assert_allclose(float((drawn - clean).mean()), per_day * 0.25 * k, atol=1e-9)


def test_legacy_error_keywords_warn_and_match_errors():
    ds = truth()
    kw = dict(satellites=[90.0], frames=(0.0,), seed=3)
    new = imager_observations(ds, errors=ImagerErrors(noise=False, cloud_threshold=0.5), **kw)
    with pytest.warns(DeprecationWarning, match=r"errors=ImagerErrors\(noise=\.\.\."):
        old = imager_observations(ds, noise=False, cloud_threshold=0.5, **kw)
    assert old.identical(new)
    # a dict works like the config; the config differs from the default
    assert imager_observations(ds, errors={"noise": False, "cloud_threshold": 0.5}, **kw).identical(
        new
    )
    assert not imager_observations(ds, **kw).identical(new)
    with pytest.raises(TypeError, match="unexpected keyword"):
        imager_observations(ds, cloudz=False, **kw)
    with pytest.raises(ImagerError, match="noise must be True or False"):
        ImagerErrors(noise="no")
    with pytest.raises(ImagerError, match="drift must be a finite number"):
        ImagerErrors(drift=float("nan"))


# --- bad input ----------------------------------------------------------------------------------


def test_unknown_channel():
    with pytest.raises(ImagerError, match="unknown imager channel.*'wv9.9'"):
        imager_observations(truth(), channels=["wv6.2", "wv9.9"])


def test_truth_without_tracer():
    with pytest.raises(ImagerError, match="passive_tracer"):
        imager_observations(truth().drop_vars("passive_tracer"))


def test_radiances_on_another_grid():
    rad = imager_observations(truth(), satellites=[90.0], frames=(0.0,))
    with pytest.raises(ImagerError, match="another grid.*latitude"):
        check_radiances(rad, latitude=np.linspace(-80, 80, 9), longitude=LON)
    table = radiance_table(rad)
    with pytest.raises(ImagerError, match="another grid"):
        radiance_operator(table, channels=MODEL_CHANNELS, latitude=LAT + 1.0, longitude=LON)


def test_zenith_angles_in_other_units_than_degrees_are_refused():
    # radians read as degrees gave every pixel a near-nadir path: a silently wrong analysis
    rad = imager_observations(truth(), satellites=[90.0], frames=(0.0,))
    assert rad["zenith_angle"].attrs["units"] == "degree"  # the imager's own output passes
    check_radiances(rad)
    for spelling in ("degrees", "Deg", " degree ", "°"):
        check_radiances(rad.assign(zenith_angle=rad["zenith_angle"].assign_attrs(units=spelling)))
    bare = rad.assign(zenith_angle=rad["zenith_angle"].copy())
    bare["zenith_angle"].attrs = {}
    check_radiances(bare)  # no units: degrees
    radians = rad.assign(zenith_angle=np.radians(rad["zenith_angle"]).assign_attrs(units="radian"))
    with pytest.raises(ImagerError, match=r"zenith_angle is in 'radian'.*degrees"):
        check_radiances(radians)
    with pytest.raises(ImagerError, match=r"zenith_angle is in 'rad'"):
        check_radiances(
            radians.assign(zenith_angle=radians["zenith_angle"].assign_attrs(units="rad"))
        )


def test_all_pixels_missing():
    rad = imager_observations(truth(), satellites=[90.0], frames=(0.0,))
    empty = rad.assign(brightness_temperature=rad["brightness_temperature"] * np.nan)
    with pytest.raises(ImagerError, match="every pixel.*missing"):
        check_radiances(empty)
    far = truth().sel(longitude=[0.0, 22.5]).isel(latitude=[3, 4])  # the far side of 180 E
    with pytest.raises(ImagerError, match="no grid point is seen"):
        imager_observations(far, satellites=[180.0])


def test_operator_needs_state_variables():
    with pytest.raises(ImagerError, match="surface_pressure"):
        NominalImager(MODEL_CHANNELS[:-1], np.zeros((2, 2)))


def test_training_config_names_the_imager_channels():
    from xfuxi.training.da_config import IMAGER_CHANNEL_NAMES

    assert IMAGER_CHANNEL_NAMES == tuple(CHANNELS)


def test_truth_in_another_order_gives_the_same_radiances():
    truth = tiny_da.truth(4)
    kw = dict(satellites=[90.0], channels=["wv6.2", "ir10.8"], frames=(0.0,))
    expected = imager_observations(truth, **kw)
    for turned in (
        truth.isel(level=slice(None, None, -1)),  # top-down levels (a view)
        truth.sortby("level", ascending=False),  # top-down levels (a copy)
        truth.isel(latitude=slice(None, None, -1)),  # north to south
        # longitudes -180..180, as stored and sorted (the clouds' texture was drawn on the
        # grid in the order given: other clouds, and radiances in -180..180)
        truth.assign_coords(longitude=(truth["longitude"] + 180.0) % 360.0 - 180.0),
        truth.assign_coords(longitude=(truth["longitude"] + 180.0) % 360.0 - 180.0).sortby(
            "longitude"
        ),
    ):
        got = imager_observations(turned, **kw)
        xr.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    with pytest.raises(ImagerError, match="levels must be pressures in hPa"):
        imager_observations(truth.assign_coords(level=truth["level"] * 100.0), **kw)
    with pytest.raises(ImagerError, match=r"longitudes must lie in \[-180, 360\]"):
        imager_observations(truth.assign_coords(longitude=truth["longitude"] - 360.0), **kw)
    with pytest.raises(ImagerError, match=r"dim\(s\) \['member'\]"):
        imager_observations(truth.expand_dims(member=2), **kw)
    with pytest.raises(ImagerError, match="seed must be a non-negative integer"):
        imager_observations(truth, seed=-1, **kw)
    with pytest.raises(ImagerError, match="sub-satellite longitudes"):
        imager_observations(truth, **{**kw, "satellites": [True]})


def test_non_finite_truth_at_the_frames_times_is_refused():
    truth = tiny_da.truth(4)
    kw = dict(satellites=[90.0], channels=["wv6.2", "ir10.8"], frames=(-2.0, 0.0))
    holed = truth.copy(deep=True)
    holed["passive_tracer"][1, 1, 4, 5] = np.nan  # 06 h: read by frames of 06 and 12 h
    holed["temperature"][1, 0, 0, 0] = np.inf
    with pytest.raises(ImagerError, match=r"truth\['temperature'\] has 1 non-finite"):
        imager_observations(holed, **kw)
    holed["temperature"][1, 0, 0, 0] = 250.0
    with pytest.raises(ImagerError, match=r"truth\['passive_tracer'\] has 1 non-finite.*06:00"):
        imager_observations(holed, **kw)
    before = truth.copy(deep=True)
    before["passive_tracer"][0, 1, 4, 5] = np.nan  # 00 h: no frame of 18 h reads it
    late = imager_observations(before, times=truth["time"].values[-1:], **kw)
    expected = imager_observations(truth, times=truth["time"].values[-1:], **kw)
    xr.testing.assert_identical(late, expected)


def test_radiance_table_reads_a_scalar_time_or_frame():
    rad = imager_observations(tiny_da.truth(4), satellites=[90.0], channels=["wv6.2", "ir10.8"],
                              frames=(-2.0, 0.0))  # fmt: skip
    full = radiance_table(rad, frames=None)
    for one in (rad.isel(time=1), rad.isel(time=1).drop_vars("cloudy")):
        got = radiance_table(one, frames=None)
        expected = full.isel(obs=np.flatnonzero(np.isin(
            full["time"].values, rad["time"].values[1] + rad["frame"].values)))  # fmt: skip
        np.testing.assert_array_equal(got["time"].values, expected["time"].values)
        np.testing.assert_array_equal(got["value"].values, expected["value"].values)
        if "cloudy" in one:
            np.testing.assert_array_equal(got["cloudy"].values, expected["cloudy"].values)
    early = rad.isel(frame=0)  # the -2 h frame as a scalar: not the analysis time's
    with pytest.raises(ImagerError, match=r"no frame\(s\) \[0.0\]"):
        radiance_table(early)
    got = radiance_table(early, frames=None)
    mine = full.isel(
        obs=np.flatnonzero(
            np.isin(full["time"].values, rad["time"].values - np.timedelta64(2, "h"))
        )
    )
    np.testing.assert_array_equal(got["time"].values, mine["time"].values)
    np.testing.assert_array_equal(got["cloudy"].values, mine["cloudy"].values)
    got = radiance_table(early.drop_vars("frame"), frames=None)  # no frame at all: 0 h
    np.testing.assert_array_equal(np.unique(got["time"].values), rad["time"].values)
    with pytest.raises(ImagerError, match=r"error has no value for channel\(s\) \['ir10.8'\]"):
        radiance_table(rad, error={"wv6.2": 1.0})


def test_radiance_table_refuses_errors_that_are_not_positive():
    rad = imager_observations(tiny_da.truth(4), satellites=[90.0], channels=["wv6.2", "ir10.8"],
                              frames=(0.0,))  # fmt: skip
    cases = [(0.0, "wv6.2: 0, ir10.8: 0"), ({"wv6.2": 1.0, "ir10.8": -1.0}, "ir10.8: -1"),
             ({"wv6.2": np.nan, "ir10.8": 1.0}, "wv6.2: nan")]  # fmt: skip
    for error, shown in cases:
        with pytest.raises(ImagerError, match=f"must be positive and finite; got {shown}$"):
            radiance_table(rad, error=error)
    assert (radiance_table(rad, error={"wv6.2": 1.0, "ir10.8": 2.0})["error"] > 0).all()


def test_repeated_frames_or_times_are_refused():
    truth = tiny_da.truth(4)
    kw = dict(satellites=[90.0], channels=["wv6.2"])
    with pytest.raises(ImagerError, match=r"frames .* repeated"):
        imager_observations(truth, frames=(0.0, 0.0), **kw)
    t = truth["time"].values[1]
    with pytest.raises(ImagerError, match=r"times .* repeated"):
        imager_observations(truth, frames=(0.0,), times=[t, t], **kw)
    rad = imager_observations(truth, frames=(-2.0, 0.0), **kw)
    with pytest.raises(ImagerError, match="the radiances' time has repeated values"):
        check_radiances(rad.isel(time=[0, 0, 1]))
    with pytest.raises(ImagerError, match="the radiances' frame has repeated values"):
        check_radiances(rad.isel(frame=[1, 1]))


def test_radiance_operator_finds_grid_points_in_blocks_of_rows():
    """Each row's grid point is found a block of rows at a time: all rows at once made
    (rows x grid) arrays (3.7 KB a row on the 1.5° grid: 3.8 GB for a million rows); the
    same indices as a direct search."""
    import tracemalloc

    lat, lon = np.linspace(-90, 90, 721), np.arange(1440) * 0.25
    rng = np.random.default_rng(0)
    n = 20000
    i, j = rng.integers(0, lat.size, n), rng.integers(0, lon.size, n)
    table = xr.Dataset(
        {"zenith_angle": ("obs", rng.uniform(0, 60, n))},
        coords={"latitude": ("obs", lat[i]), "longitude": ("obs", lon[j] - 360.0 * (j % 2)),
                "sensor_channel": ("obs", np.full(n, "ir10.8"))},
    )  # fmt: skip
    tracemalloc.start()
    try:
        op = radiance_operator(table, channels=MODEL_CHANNELS, latitude=lat, longitude=lon)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 250 * 2**20  # about 690 MB for each (rows x 1440) float64 array before
    np.testing.assert_array_equal(op.lat_index.numpy(), i)
    np.testing.assert_array_equal(op.lon_index.numpy(), j)


def _torch_peak_bytes(prof) -> int:
    """Peak of the bytes torch's CPU allocator held during a ``torch.profiler.profile(
    profile_memory=True)`` (its allocations and frees in time order); ``tracemalloc`` sees
    only NumPy's."""
    if not hasattr(prof.profiler, "kineto_results"):  # torch's (semi-private) event list
        pytest.skip("this torch's profiler does not expose its memory events")
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    )
    return int(np.cumsum([0] + [n for _, n in events]).max())


def test_imager_holds_a_block_of_columns_not_every_channels_layers():
    """The radiances are made a block of rows and one channel at a time, the clear sky and
    the clouds in one pass: all rows at once held every channel's layer weights of the
    grid, twice over (35 to 75 times the radiances; a 0.25° grid did not fit in 6 GB).
    NumPy's allocations are traced by ``tracemalloc``, torch's by the profiler's memory
    events (one call each: both at once is slow)."""
    import tracemalloc

    from torch.profiler import ProfilerActivity, profile

    # the tiny world's fields, bilinear on a 96 x 192 grid inside it
    fine = truth(3).interp(
        latitude=np.linspace(-78.0, 78.0, 96), longitude=np.linspace(0, 337, 192)
    )
    kw = dict(satellites=[105.0, 225.0], times=fine["time"].values[1:2])
    imager_observations(fine.isel(latitude=[47, 48]), **kw)  # (lazy imports, first calls)
    tracemalloc.start()
    try:
        rad = imager_observations(fine, **kw)
        numpy_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        again = imager_observations(fine, **kw)
    xr.testing.assert_identical(again, rad)
    radiances = rad["brightness_temperature"].nbytes  # 3 frames x 8 channels: 3.4 MB
    # NumPy's about 3.6 and torch's about 5.3 times the radiances (a block of columns);
    # torch's alone were about 32 times
    assert numpy_peak + _torch_peak_bytes(prof) < 15 * radiances
    assert int(rad["cloudy"].sum()) > 0 and np.isfinite(rad["brightness_temperature"]).any()


def test_radiances_keep_the_truths_coordinate_attrs():
    """The radiances' latitude and longitude were bare arrays (their units dropped)."""
    tr = truth(4)
    tr["latitude"].attrs["units"] = "degrees_north"
    tr["longitude"].attrs["units"] = "degrees_east"
    rad = imager_observations(tr, satellites=[105.0], times=tr["time"].values[2:3])
    assert rad["latitude"].attrs["units"] == "degrees_north"
    assert rad["longitude"].attrs["units"] == "degrees_east"
