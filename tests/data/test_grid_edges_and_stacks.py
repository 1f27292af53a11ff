"""Regridding refuses several missing longitude columns and coordinates along the
grid, normalization statistics difference integer and float16 data without wrapping,
channel stacks carry no single variable's attributes, area weights of a latitude band."""

from __future__ import annotations

import json
import types
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xfuxi.data.channels import stack, unstack
from xfuxi.data.regrid import equiangular_grid, gaussian_grid, regrid
from xfuxi.data.schema import SchemaError
from xfuxi.data.stats import normalization_stats
from xfuxi.grid import area_weights

pytest.importorskip("xarray_regrid")

G = equiangular_grid(64, 32, poles=False)
LAT, LON = G.latitude.values, G.longitude.values


def _field(lon: np.ndarray, **coords) -> xr.Dataset:
    return xr.Dataset(
        {"temperature": (("latitude", "longitude"), np.ones((LAT.size, lon.size)))},
        coords={"latitude": LAT, "longitude": lon, **coords},
    )


# 1. longitude gaps -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bilinear", "conservative"])
@pytest.mark.parametrize("drop", [[10, 40], [0, 20, 63], [5, 6, 30]])
def test_several_missing_longitude_columns_are_refused_and_named(method, drop):
    # the widest gap was compared with the second widest, itself a missing-column gap, and
    # the holes were silently filled
    ds = _field(np.delete(LON, drop))
    with pytest.raises(SchemaError, match="regrid needs global data") as err:
        regrid(ds, "T21", method=method)
    message = str(err.value)
    assert "the most common gap, is 5.625°" in message
    first = LON[drop[0] - 1] if drop[0] else LON[-2]  # the longitude before the first hole
    assert f"between {first:g} and" in message


def test_every_wide_gap_is_named():
    ds = _field(np.delete(LON, [10, 40]))
    with pytest.raises(SchemaError) as err:
        regrid(ds, "T21", method="conservative")
    assert "gap of 11.25° between 50.625 and 61.875" in str(err.value)
    assert "gap of 11.25° between 219.375 and 230.625" in str(err.value)


def test_global_grids_and_coarse_ones_stay_global():
    for lon in (LON, np.roll(LON, 7), np.array([0.0, 180.0]), np.arange(0.0, 360.0, 120.0)):
        lat = np.linspace(-60.0, 60.0, 3)
        ds = xr.Dataset(
            {"temperature": (("latitude", "longitude"), np.ones((3, lon.size)))},
            coords={"latitude": lat, "longitude": lon},
        )
        out = regrid(ds, {"latitude": lat, "longitude": lon}, method="conservative")
        np.testing.assert_allclose(out.temperature.values, 1.0)
    # two longitudes 90° apart leave 270° of the circle empty: not global
    with pytest.raises(SchemaError, match="gap of 270°"):
        regrid(_field(np.array([0.0, 90.0])), "T21", method="conservative")


# 3. coordinates along latitude or longitude --------------------------------------------------


@pytest.mark.parametrize("method", ["bilinear", "conservative"])
def test_coordinates_along_the_grid_are_refused_by_name(method):
    # conservative regridding dropped them, bilinear failed inside xarray-regrid
    for extra in (
        {"lsm": (("latitude", "longitude"), np.ones((LAT.size, LON.size)))},
        {"zonal": ("latitude", np.ones(LAT.size))},
        {"meridian": ("longitude", np.ones(LON.size))},
    ):
        ds = _field(LON, **extra)
        name = next(iter(extra))
        with pytest.raises(SchemaError, match=rf"coordinate\(s\) \['{name}'\] lie along"):
            regrid(ds, "T21", method=method)
        with pytest.raises(SchemaError, match="drop them"):
            regrid(ds["temperature"], "T21", method=method)
        assert name in ds.coords  # the input is not changed


@pytest.mark.parametrize("method", ["bilinear", "conservative"])
def test_other_coordinates_are_carried_along(method):
    t = pd.date_range("2000", periods=2, freq="6h")
    ds = xr.Dataset(
        {"temperature": (("time", "latitude", "longitude"), np.ones((2, LAT.size, LON.size)))},
        coords={"time": t, "latitude": LAT, "longitude": LON, "number": 3, "vt": ("time", t)},
    )
    out = regrid(ds, "T21", method=method)
    assert int(out["number"]) == 3
    np.testing.assert_array_equal(out["vt"].values, t.values)
    # a mask as a data variable is regridded with the others
    mask = ds.assign_coords(mask=(("latitude", "longitude"), np.ones((LAT.size, LON.size))))
    back = regrid(mask.reset_coords(["mask"]), "T21", method=method)
    np.testing.assert_allclose(back["mask"].values, 1.0)


# 2. differences of integer and float16 data --------------------------------------------------


def _series(values, dtype: str) -> xr.DataArray:
    return xr.DataArray(
        np.array(values, dtype=dtype).reshape(3, 1, 1),
        dims=("time", "latitude", "longitude"),
        coords={"time": pd.date_range("2000", periods=3, freq="6h"), "latitude": [0.0],
                "longitude": [0.0]},
        name="x",
    )  # fmt: skip


@pytest.mark.parametrize(
    "values, dtype",
    [([10, 5, 10], "uint8"), ([-30000, 30000, -30000], "int16"),
     ([-40000, 40000, -40000], "float16"), ([0, 2**40, 0], "int64")],
)  # fmt: skip
def test_diff_std_does_not_wrap_or_overflow(values, dtype):
    # the differences were taken in the input type: uint8 wrapped (5 - 10 = 251), int16
    # overflowed, float16 reached inf
    got = normalization_stats(_series(values, dtype)).x.sel(statistic="diff_std").item()
    want = float(np.std(np.diff(np.array(values, dtype=dtype).astype("float64"))))
    assert got == want


def test_float32_statistics_keep_their_float32_differences():
    # the recorded statistics of the shipped models: differences in float32, then float64
    rng = np.random.default_rng(1)
    values = (250.0 + 40.0 * rng.standard_normal((9, 4, 8))).astype("float32")
    da = xr.DataArray(
        values, dims=("time", "latitude", "longitude"), name="temperature",
        coords={"time": pd.date_range("2000", periods=9, freq="6h"),
                "latitude": np.linspace(-60, 60, 4), "longitude": np.arange(8) * 45.0},
    )  # fmt: skip
    for weighted in (False, True):
        got = normalization_stats(da, weighted=weighted).temperature.sel(statistic="diff_std")
        dx = da.diff("time").astype("float64")
        if weighted:
            w = area_weights(da.latitude)
            dims = ["time", "latitude", "longitude"]
            mean = dx.weighted(w).mean(dims)
            want = np.sqrt(((dx - mean) ** 2).weighted(w).mean(dims))
        else:
            want = dx.std()
        assert got.item() == want.item()


# 6. channel stacks and their attributes ------------------------------------------------------


@pytest.fixture
def mixed():
    t = pd.date_range("2000", periods=2, freq="6h")
    shape = (2, 2, 3, 4)
    dims = ("time", "level", "latitude", "longitude")
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {
            "temperature": (dims, rng.normal(size=shape), {"units": "K", "source": "a"}),
            "specific_humidity": (dims, rng.normal(size=shape),
                                  {"units": "kg kg**-1", "source": "a"}),
            "surface_pressure": (dims[:1] + dims[2:], rng.normal(size=(2, 3, 4)),
                                 {"units": "Pa", "source": "a"}),
        },
        coords={"time": t, "level": [500.0, 850.0], "latitude": [-30.0, 0.0, 30.0],
                "longitude": [0.0, 90.0, 180.0, 270.0], "number": 0, "vt": ("time", t),
                "level_name": ("level", ["a", "b"])},
    )  # fmt: skip


CH = [("temperature", 500.0), ("temperature", 850.0), ("specific_humidity", 850.0),
      ("surface_pressure", None)]  # fmt: skip


@pytest.mark.parametrize("lazy", [False, True])
def test_stack_carries_only_shared_attributes_and_keeps_coordinates(mixed, lazy):
    before = mixed.copy(deep=True)
    st = stack(mixed.chunk() if lazy else mixed, CH)
    # the first variable's (units K) labelled every channel
    assert st.attrs == {"source": "a"} and st.name is None
    # scalar coordinates and those along the stack's other dims were dropped
    assert int(st["number"]) == 0
    np.testing.assert_array_equal(st["vt"].values, mixed["time"].values)
    assert "level_name" not in st.coords  # along level, which the channels replace
    xr.testing.assert_identical(mixed, before)
    one = stack(mixed, [("temperature", 850.0), ("temperature", 500.0)])
    assert one.name == "temperature" and one.attrs == {"units": "K", "source": "a"}


@pytest.mark.parametrize("lazy", [False, True])
def test_unstack_does_not_stamp_one_set_of_attributes_on_every_variable(mixed, lazy):
    st = stack(mixed, CH).assign_attrs(units="K")
    st = st.chunk() if lazy else st
    back = unstack(st, CH)
    # surface_pressure came back claiming units K
    assert all(back[v].attrs == {} for v in back.data_vars)
    assert back.attrs == {"units": "K", "source": "a"}  # the stack's, as a whole
    assert st.attrs == {"units": "K", "source": "a"}  # not changed
    assert int(back["number"]) == 0  # the scalar coordinate survives the round trip
    # one variable: the array's attributes are that variable's
    chans = [("temperature", 500.0), ("temperature", 850.0)]
    one = unstack(stack(mixed, chans), chans)
    assert one["temperature"].attrs == {"units": "K", "source": "a"} and one.attrs == {}


def test_forecast_outputs_keep_their_own_units():
    from xfuxi.forecasting.edge import forecast_dataset

    model = types.SimpleNamespace(channels=CH, latitude=np.array([-30.0, 0.0, 30.0]),
                                  longitude=np.array([0.0, 90.0, 180.0, 270.0]))  # fmt: skip
    states = np.zeros((1, 1, len(CH), 3, 4), dtype="float32")
    ds = forecast_dataset(states, model=model, init_times=np.array(["2000-01-01"], "M8[ns]"),
                          leads=np.array([0], "m8[h]"), attrs={"note": json.dumps(1)})  # fmt: skip
    assert ds["temperature"].attrs["units"] == "K"
    assert ds["surface_pressure"].attrs["units"] == "Pa"
    assert ds.attrs == {"note": "1"}


# 7. area weights of a latitude band ----------------------------------------------------------


def _wb2(lat: np.ndarray) -> np.ndarray:
    """WeatherBench2's get_lat_weights: bounds at the midpoints and at the poles."""
    bounds = np.concatenate([[-90.0], (lat[1:] + lat[:-1]) / 2.0, [90.0]])
    area = np.diff(np.sin(np.deg2rad(bounds)))
    return area / area.mean()


def test_area_weights_of_a_band_do_not_take_the_polar_caps():
    # the 40° row of a 40–50° band took 84 % of the weight (the cap south of it)
    w = area_weights([40.0, 45.0, 50.0]).values
    cells = np.diff(np.sin(np.deg2rad([37.5, 42.5, 47.5, 52.5])))
    np.testing.assert_allclose(w, cells / cells.mean(), rtol=1e-14)
    # a band's weights are its rows' within the global grid of the same spacing
    full = np.arange(-87.5, 90.0, 5.0)
    band = (full >= -20.0) & (full <= 30.0)
    within = _wb2(full)[band]
    np.testing.assert_allclose(area_weights(full[band]).values, within / within.mean(),
                               rtol=1e-13)  # fmt: skip
    # descending, and one side only (a band reaching the north pole)
    np.testing.assert_array_equal(area_weights([50.0, 45.0, 40.0]).values, w[::-1])
    north = np.array([60.0, 75.0, 90.0])
    cells = np.diff(np.sin(np.deg2rad([52.5, 67.5, 82.5, 90.0])))
    np.testing.assert_allclose(area_weights(north).values, cells / cells.mean(), rtol=1e-14)


def test_area_weights_of_global_grids_are_weatherbench2s_bit_for_bit():
    grids = [gaussian_grid(n).latitude.values for n in (2, 8, 32, 64)]
    grids += [equiangular_grid(2 * n, n, poles=p).latitude.values
              for n in (3, 32, 121) for p in (True, False)]  # fmt: skip
    grids += [np.array([-45.0, 0.0, 45.0]), np.array([-30.0, 30.0]), np.array([10.0])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for lat in grids:
            np.testing.assert_array_equal(area_weights(lat).values, _wb2(lat))
