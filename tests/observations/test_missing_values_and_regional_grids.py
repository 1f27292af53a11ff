"""A NaN of zero weight, regional grids, slot times, unknown variables, calibration
input order (each test failed on the code before its fix)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.assimilation.calibration import background_error_std, forecast_error_samples
from xfuxi.observations.interpolation import horizontal_weights, observation_weights
from xfuxi.observations.operator import build_operator
from xfuxi.observations.sets import (
    ObservationError,
    make_observations,
    radiosonde_observations,
    random_observations,
    region_observations,
    screen_observations,
)

LAT = np.array([-45.0, 0.0, 45.0])
LON = np.arange(4) * 90.0
CHANNELS = [("sea_surface_temperature", None), ("temperature", 500.0), ("temperature", 850.0)]
T0 = np.datetime64("2000-01-01T00", "ns")


def _truth(field: np.ndarray, name: str = "sea_surface_temperature") -> xr.Dataset:
    return xr.Dataset(
        {name: (("time", "latitude", "longitude"), field[None])},
        coords={"time": [T0], "latitude": LAT, "longitude": LON},
    )


# --- a NaN the operator gives no weight does not reach H(x) --------------------------------


def _land_state() -> np.ndarray:
    x = np.zeros((3, 3, 4))
    x[1], x[2] = 250.0, 270.0
    x[0, 1, 1] = np.nan  # SST missing over land at (0N, 90E)
    return x


OBS = dict(
    obs_variable=["temperature", "temperature"],
    obs_latitude=[0.0, 10.0],
    obs_longitude=[90.0, 200.0],
    obs_level=[500.0, 700.0],
)


def test_zero_weight_nan_does_not_poison_numpy_weights():
    w, why = observation_weights(CHANNELS, LAT, LON, **OBS)
    assert why.tolist() == ["", ""]
    x = _land_state()
    hx = w.apply(x)
    assert np.isfinite(hx).all()
    assert hx[0] == 250.0  # on the 500 hPa grid point; the padding reads SST at land
    clean = x.copy()
    clean[0, 1, 1] = 0.0
    assert hx.tobytes() == w.apply(clean).tobytes()
    assert np.isnan(x).sum() == 1  # the input is not modified


def test_nonzero_weight_nan_still_gives_nan():
    w, _ = observation_weights(CHANNELS, LAT, LON, **OBS)
    x = _land_state()
    x[1, 1, 1] = np.nan  # the 500 hPa value the first observation uses
    assert np.isnan(w.apply(x)[0]) and np.isfinite(w.apply(x)[1])
    op, _ = build_operator(CHANNELS, LAT, LON, **OBS)
    y = op(torch.tensor(x)).numpy()
    assert np.isnan(y[0]) and np.isfinite(y[1])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_zero_weight_nan_does_not_poison_torch_operator_nor_gradient(dtype):
    op, _ = build_operator(CHANNELS, LAT, LON, **OBS)
    x = torch.tensor(_land_state(), dtype=dtype, requires_grad=True)
    y = op(x)
    assert torch.isfinite(y).all() and float(y.detach()[0]) == 250.0
    (y**2).sum().backward()
    assert torch.isfinite(x.grad).all()
    clean = _land_state()
    clean[0, 1, 1] = 0.0
    xc = torch.tensor(clean, dtype=dtype, requires_grad=True)
    yc = op(xc)
    (yc**2).sum().backward()
    assert torch.equal(y.detach(), yc.detach()) and torch.equal(x.grad, xc.grad)
    assert x.grad[0, 1, 1] == 0


def test_region_observations_next_to_a_masked_point_are_finite():
    sst = np.full((3, 4), 290.0)
    sst[2, 1] = np.nan  # one land point at (45N, 90E)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        o = region_observations(
            _truth(sst),
            latitude=(-90, 90),
            longitude=(0, 360),
            variables=["sea_surface_temperature"],
            error=0.5,
            seed=0,
        )
    nan_at = [
        (float(a), float(b))
        for a, b, t in zip(o.latitude.values, o.longitude.values, o["truth"].values)
        if np.isnan(t)
    ]
    assert nan_at == [(45.0, 90.0)]


def test_innovations_next_to_a_masked_point_are_finite():
    sst = np.full((3, 4), 290.0)
    sst[2, 1] = np.nan
    obs = xfuxi.make_observations(
        [290.0, 290.0],
        error=0.5,
        time="2000-01-01",
        latitude=[0.0, 45.0],
        longitude=[90.0, 0.0],
        variable="sea_surface_temperature",
    )
    inn = xfuxi.innovations(obs, _truth(sst))
    assert inn["innovation"].values.tolist() == [0.0, 0.0]
    point = xr.Dataset(
        {"sea_surface_temperature": ("obs", [290.0])},
        coords={"latitude": ("obs", [45.0]), "longitude": ("obs", [0.0]), "time": ("obs", [T0])},
    )
    assert xfuxi.innovations(point, _truth(sst))["sea_surface_temperature"].values.tolist() == [0.0]


# --- a regional grid is not wrapped in longitude nor crossed over the pole -----------------

BOX_LAT = np.arange(30.0, 71.0, 10.0)  # a European box
BOX_LON = np.arange(0.0, 41.0, 10.0)


def test_regional_grid_rejects_what_lies_beyond_its_edges():
    rows, cols, w, inside = horizontal_weights(
        BOX_LAT, BOX_LON, [50.0, 50.0, 85.0, -20.0, 50.0], [200.0, 20.0, 20.0, 20.0, 40.0]
    )
    assert inside.tolist() == [False, True, False, False, True]
    assert (w[~inside] == 0).all()
    np.testing.assert_allclose(w[4].sum(), 1.0)  # on the eastern edge: still inside
    _, why = observation_weights(
        [("temperature", 500.0)],
        BOX_LAT,
        BOX_LON,
        obs_variable=["temperature"] * 3,
        obs_latitude=[50.0, 85.0, -20.0],
        obs_longitude=[200.0, 20.0, 20.0],
        obs_level=[500.0] * 3,
    )
    assert why.tolist() == ["outside_grid"] * 3


def test_regional_grid_across_the_greenwich_meridian():
    lon = np.array([340.0, 350.0, 0.0, 10.0, 20.0])  # modulo 360 the gap is 20..340
    _, cols, w, inside = horizontal_weights(BOX_LAT, lon, [45.0] * 3, [-5.0, 355.0, 180.0])
    assert inside.tolist() == [True, True, False]
    for k in (0, 1):  # halfway between 350 and 0, and between the rows at 40 and 50
        assert sorted(set(cols[k].tolist())) == [1, 2]
        np.testing.assert_allclose(w[k], 0.25)


def test_regional_innovations_refused_with_a_clear_message():
    state = xr.Dataset(
        {"temperature": (("time", "latitude", "longitude"), np.zeros((1, 5, 5)))},
        coords={"time": [T0], "latitude": BOX_LAT, "longitude": BOX_LON},
    )
    obs = xfuxi.make_observations(
        [0.0, 0.0],
        error=1.0,
        time="2000-01-01",
        latitude=[50.0, 50.0],
        longitude=[20.0, 200.0],
        variable="temperature",
    )
    with pytest.raises(ValueError, match="within the grid where it is regional"):
        xfuxi.innovations(obs, state)


def test_band_grid_global_in_longitude_does_not_cross_the_pole():
    lat = np.arange(-30.0, 30.1, 2.5)
    lon = np.arange(0.0, 360.0, 2.5)
    _, _, _, inside = horizontal_weights(lat, lon, [60.0, -60.0, 20.0], [10.0, 10.0, 358.0])
    assert inside.tolist() == [False, False, True]


def test_global_grids_still_wrap_and_cross_the_pole():
    # the normal path: longitude periodic, across the pole beyond the outermost rows
    lat = np.linspace(-80.0, 80.0, 9)
    lon = np.arange(16) * 22.5
    _, cols, w, inside = horizontal_weights(lat, lon, [0.0, 85.0], [350.0, 10.0])
    assert inside.all()
    assert sorted(set(cols[0].tolist())) == [0, 15]
    assert (w[1] > 0).all()  # two columns at longitude 10 and two at 190


def test_screen_observations_rejects_outside_a_regional_grid():
    obs = make_observations(
        [1.0, 2.0],
        error=1.0,
        time=T0,
        latitude=[50.0, 50.0],
        longitude=[20.0, 200.0],
        variable="temperature",
        level=500.0,
    )
    used, op, why, counts = screen_observations(
        obs,
        channels=[("temperature", 500.0)],
        latitude=BOX_LAT,
        longitude=BOX_LON,
        slot_times=np.array([T0]),
    )
    assert why.tolist() == ["", "outside_grid"] and counts["outside_grid"] == 1
    assert used.sizes["obs"] == 1 and op.n_obs == 1


# --- slot times --------------------------------------------------------------------------


def _window_obs() -> xr.Dataset:
    t = np.array(
        ["2000-01-01T03:00", "2000-01-01T09:00", "2000-01-01T03:00:01", "1999-12-31T21:00"],
        dtype="M8[ns]",
    )
    return make_observations(
        [1.0, 2.0, 3.0, 4.0],
        error=1.0,
        time=t,
        latitude=0.0,
        longitude=[0.0, 1.0, 2.0, 3.0],
        variable="temperature",
        level=500.0,
    )


def _screen(slots):
    return screen_observations(
        _window_obs(),
        channels=[("temperature", 500.0)],
        latitude=[-45.0, 45.0],
        longitude=LON,
        slot_times=np.asarray(slots, dtype="M8[ns]"),
    )


@pytest.mark.parametrize(
    "slots, match",
    [
        (["2000-01-01T06", "2000-01-01T00"], "strictly ascending"),
        (["2000-01-01T00", "2000-01-01T00"], "strictly ascending"),
        ([], "non-empty"),
        (["2000-01-01T00", "NaT"], "NaT"),
        (["2000-01-01T00", "2000-01-01T06", "2000-01-01T18"], "equally spaced"),
    ],
)
def test_screen_observations_refuses_bad_slot_times(slots, match):
    with pytest.raises(ValueError, match=match):
        _screen(slots)


def test_single_slot_window_is_three_hours_each_side():
    _, _, why, _ = _screen(["2000-01-01T00"])
    assert why.tolist() == ["", "outside_window", "outside_window", ""]


# --- unknown variables -------------------------------------------------------------------


@pytest.mark.parametrize("network", ["random", "radiosonde", "region"])
def test_unknown_variable_is_an_observation_error(network):
    ds = tiny.dataset(n_time=1)
    make = {
        "random": lambda: random_observations(ds, n=3, variables=["nope"], error=1.0, seed=0),
        "radiosonde": lambda: radiosonde_observations(
            ds, sites=[(10.0, 20.0)], variables=["temperature", "nope"], error=1.0, seed=0
        ),
        "region": lambda: region_observations(
            ds, latitude=(0, 30), longitude=(0, 30), variables=["nope"], error=1.0, seed=0
        ),
    }[network]
    with pytest.raises(ObservationError, match=r"truth lacks variable\(s\) \['nope'\]"):
        make()


# --- background-error statistics take data in any order ----------------------------------


@pytest.mark.parametrize("order", ["north_to_south", "time_reversed", "lon_-180_180"])
def test_forecast_error_statistics_canonicalise_their_input(order):
    model, ds = tiny.model(), tiny.dataset(n_time=6)
    other = {
        "north_to_south": lambda: ds.isel(latitude=slice(None, None, -1)),
        "time_reversed": lambda: ds.isel(time=slice(None, None, -1)),
        "lon_-180_180": lambda: ds.assign_coords(
            longitude=((ds.longitude + 180) % 360) - 180
        ).sortby("longitude"),
    }[order]()
    kept = other.copy(deep=True)
    a = background_error_std(ds, model=model, lead_steps=1, n_samples=3)
    b = background_error_std(other, model=model, lead_steps=1, n_samples=3)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values)
    s = forecast_error_samples(ds, model=model, lead_steps=1, n_samples=2)
    t = forecast_error_samples(other, model=model, lead_steps=1, n_samples=2)
    for v in s.data_vars:
        np.testing.assert_array_equal(s[v].values, t[v].values)
    xr.testing.assert_identical(other, kept)  # the input is not modified
