"""Observation operators: bilinear/periodic/polar horizontal, log-p vertical, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import RegularGridInterpolator

from xfuxi.observations.operator import build_operator

LAT = np.linspace(-80.0, 80.0, 9)  # no pole rows: 10 degrees short of each pole
LON = np.arange(16) * 22.5
LEVELS = [250.0, 500.0, 850.0]
CHANNELS = [("temperature", lv) for lv in LEVELS] + [
    ("u_component_of_wind", 500.0),
    ("v_component_of_wind", 500.0),
    ("surface_pressure", None),
]


def _op(var, lat, lon, lev):
    n = len(var)
    return build_operator(
        CHANNELS,
        LAT,
        LON,
        obs_variable=var,
        obs_latitude=lat,
        obs_longitude=lon,
        obs_level=np.asarray(lev, dtype=float) if lev is not None else np.full(n, np.nan),
    )


def _state(fields):
    return torch.as_tensor(np.stack(fields), dtype=torch.float64)


def test_bilinear_matches_scipy_in_interior():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(LAT.size, LON.size))
    lat = rng.uniform(-79, 79, 50)
    lon = rng.uniform(0, 337.5, 50)
    op, why = _op(["surface_pressure"] * 50, lat, lon, None)
    assert (why == "").all()
    x = _state([np.zeros_like(f)] * 5 + [f])
    ref = RegularGridInterpolator((LAT, LON), f)(np.c_[lat, lon])
    np.testing.assert_allclose(op(x).numpy(), ref, atol=1e-12)


def test_periodic_longitude_wrap_and_negative_longitudes():
    f = np.tile(np.arange(16.0) ** 2, (9, 1))
    op, why = _op(["surface_pressure"] * 3, [0.0] * 3, [348.75, -11.25, 360.0], None)
    assert (why == "").all()
    x = _state([np.zeros_like(f)] * 5 + [f])
    # halfway between the last meridian (337.5, value 225) and the first (0, value 0); 360 is 0
    np.testing.assert_allclose(op(x).numpy(), [112.5, 112.5, 0.0])


def test_longitudes_outside_the_accepted_range_are_not_wrapped():
    # issue 20: 400 or 720.5 were silently taken modulo 360
    lon = [400.0, 720.5, -180.5, 708.75, -180.0, 360.0]
    op, why = _op(["surface_pressure"] * 6, [0.0] * 6, lon, None)
    assert why.tolist() == ["outside_grid"] * 4 + ["", ""]
    assert op.n_obs == 2


def test_across_the_pole_scalar_and_wind():
    # smooth fields in Cartesian terms: T = z-coordinate-like, wind = uniform flow over pole
    lat_r, lon_r = np.radians(LAT)[:, None], np.radians(LON)[None, :]
    t = np.cos(lat_r) * np.cos(lon_r) + 0 * lon_r  # x-coordinate of the unit sphere
    vx, vy = 1.0, 0.5
    u = -np.sin(lon_r) * vx + np.cos(lon_r) * vy + 0 * lat_r
    v = -np.sin(lat_r) * (np.cos(lon_r) * vx + np.sin(lon_r) * vy)
    x = _state([t, t, t, u, v, np.zeros_like(t)])
    lat_o, lon_o = 87.0, 45.0
    op, why = _op(
        ["temperature", "u_component_of_wind", "v_component_of_wind"],
        [lat_o] * 3,
        [lon_o] * 3,
        [500.0] * 3,
    )
    assert (why == "").all()
    la, lo = np.radians(lat_o), np.radians(lon_o)
    exact = [
        np.cos(la) * np.cos(lo),
        -np.sin(lo) * vx + np.cos(lo) * vy,
        -np.sin(la) * (np.cos(lo) * vx + np.sin(lo) * vy),
    ]
    got = op(x).numpy()
    np.testing.assert_allclose(got, exact, atol=0.03)
    # without the sign flip across the pole the wind would be far off: check it matters
    w = op.weight.numpy()
    assert (w[1] < 0).any() and (w[0] >= 0).all()
    # the same at the south pole
    op_s, _ = _op(["temperature"], [-88.0], [200.0], [500.0])
    exact_s = np.cos(np.radians(-88.0)) * np.cos(np.radians(200.0))
    assert float(op_s(x)[0]) == pytest.approx(exact_s, abs=0.02)


def test_vertical_exact_levels_and_log_pressure():
    lnp = np.log(LEVELS)
    fields = [np.full((9, 16), 3.0 * v + 1.0) for v in lnp]  # linear in ln p
    x = _state(fields + [np.zeros((9, 16))] * 3)
    levs = [500.0, 300.0, 700.0, 850.0]
    op, why = _op(["temperature"] * 4, [10.0] * 4, [30.0] * 4, levs)
    assert (why == "").all()
    np.testing.assert_allclose(op(x).numpy(), 3.0 * np.log(levs) + 1.0, atol=1e-12)
    # exact levels use one channel only
    assert np.count_nonzero(op.weight.numpy()[0]) <= 4


def test_reject_reasons():
    op, why = _op(
        [
            "temperature",
            "geopotential",
            "temperature",
            "temperature",
            "surface_pressure",
            "surface_pressure",
            "u_component_of_wind",
        ],
        [0.0, 0.0, 0.0, 95.0, 0.0, np.nan, 0.0],
        [0.0] * 7,
        [500.0, 500.0, 1000.0, 500.0, 500.0, np.nan, 850.0],
    )
    assert why.tolist() == [
        "",
        "unknown_variable",
        "unknown_level",
        "outside_grid",
        "unknown_level",
        "outside_grid",
        "unknown_level",
    ]
    assert op.n_obs == 1


def test_gradient_and_matrix_agree():
    rng = np.random.default_rng(1)
    m = 7
    op, _ = _op(
        ["temperature"] * m,
        rng.uniform(-89, 89, m),
        rng.uniform(0, 360, m),
        rng.uniform(250, 850, m),
    )
    x = torch.randn(6, 9, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x,))
    np.testing.assert_allclose(
        op.matrix() @ x.detach().numpy().ravel(), op(x).detach().numpy(), atol=1e-12
    )
    # batched states
    xb = torch.randn(3, 6, 9, 16, dtype=torch.float64)
    np.testing.assert_allclose(op(xb)[1].numpy(), op(xb[1]).numpy())
    with pytest.raises(ValueError, match="expected states"):
        op(torch.zeros(6, 9, 15))


def test_numpy_view_is_the_same_operator():
    # issue 19: one operator H with a torch and a NumPy view
    from xfuxi.observations.interpolation import ObservationWeights, observation_weights

    rng = np.random.default_rng(3)
    m = 40
    var = rng.choice(["temperature", "u_component_of_wind", "surface_pressure"], m)
    lev = np.where(var == "surface_pressure", np.nan, np.where(var == "temperature", 700.0, 500.0))
    lat, lon = rng.uniform(-90, 90, m), rng.uniform(-180, 360, m)
    op, why = _op(var, lat, lon, lev)
    w, why_np = observation_weights(
        CHANNELS, LAT, LON, obs_variable=var, obs_latitude=lat, obs_longitude=lon, obs_level=lev
    )
    assert why.tolist() == why_np.tolist() and (why == "").all()
    assert isinstance(op.weights(), ObservationWeights)
    np.testing.assert_array_equal(op.weights().index, w.index)
    np.testing.assert_array_equal(op.weights().weight, w.weight)
    x = rng.normal(size=(2, 6, 9, 16))
    np.testing.assert_allclose(w.apply(x), op(torch.as_tensor(x)).numpy(), rtol=0, atol=1e-13)
    np.testing.assert_array_equal(w.matrix(), op.matrix())
    np.testing.assert_array_equal(w.subset([0, 2]).apply(x), w.apply(x)[:, [0, 2]])


def test_horizontal_weights_on_any_grid_order():
    # the NumPy weights accept a descending latitude and longitudes in any order (-180..180)
    from xfuxi.observations.interpolation import horizontal_weights

    rng = np.random.default_rng(4)
    f = rng.normal(size=(LAT.size, LON.size))
    lat_o, lon_o = np.array([89.0, -85.0, 3.0, 50.0]), np.array([45.0, 200.0, 350.0, -170.0])
    r, c, w, ok = horizontal_weights(LAT, LON, lat_o, lon_o, vector=True)
    ref = (f[r, c] * w).sum(-1)
    lon2 = np.where(LON >= 180, LON - 360, LON)
    order = np.argsort(lon2)
    g = f[::-1][:, order]
    r2, c2, w2, ok2 = horizontal_weights(LAT[::-1], lon2[order], lat_o, lon_o, vector=True)
    assert ok.all() and ok2.all()
    np.testing.assert_allclose((g[r2, c2] * w2).sum(-1), ref, atol=1e-12)
    with pytest.raises(ValueError, match="strictly monotonic"):
        horizontal_weights([0.0, 0.0, 10.0], LON, lat_o, lon_o)


def test_no_usable_observation_gives_an_empty_operator():
    op, why = _op(["geopotential", "temperature"], [0.0, 95.0], [0.0, 0.0], [500.0, 500.0])
    assert why.tolist() == ["unknown_variable", "outside_grid"] and op.n_obs == 0
    assert tuple(op(torch.zeros(6, 9, 16)).shape) == (0,)
    op0, why0 = _op([], [], [], [])
    assert op0.n_obs == 0 and why0.size == 0
