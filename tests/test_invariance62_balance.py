"""Audit 62, finding 7: the balance diagnostics accept any whole circle of longitudes.

A global, evenly spaced longitude grid that is rolled (starts elsewhere than 0), in
−180..180 unsorted (as a naive conversion leaves it) or descending was refused with "longitude
must be evenly spaced and cover the globe". The winds are now computed on the longitudes
sorted modulo 360 and returned on the input's own longitudes, in its order, with the values
of the canonical grid.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xfuxi import physics
from xfuxi.verify.balance import ageostrophic_wind, balance_summary, geostrophic_wind

LAT = np.linspace(-80.0, 80.0, 17)
LON = np.arange(0.0, 360.0, 15.0)


def _field(seed=0):
    rng = np.random.default_rng(seed)
    la, lo = np.meshgrid(np.deg2rad(LAT), np.deg2rad(LON), indexing="ij")
    z = 5e4 - 3e3 * np.sin(la) ** 2 + 400 * np.cos(2 * lo) * np.cos(la)
    z = np.stack([z, z * 0.8 + 200 * np.sin(3 * lo) * np.cos(la)])
    ds = xr.Dataset(
        {"geopotential": (("level", "latitude", "longitude"), z, {"units": "m**2 s**-2"})},
        coords={"level": [500.0, 850.0], "latitude": LAT, "longitude": LON},
    )
    g = geostrophic_wind(ds, equator_band=0.0)  # no latitude on the equator: nothing masked
    shape = ds["geopotential"].shape
    ds["u_component_of_wind"] = g["u_component_of_geostrophic_wind"].fillna(0.0) + rng.normal(
        size=shape
    )
    ds["v_component_of_wind"] = g["v_component_of_geostrophic_wind"].fillna(0.0) + rng.normal(
        size=shape
    )
    for name in ("u_component_of_wind", "v_component_of_wind"):
        ds[name].attrs = {"units": "m s**-1"}
    return ds


LAYOUTS = {
    "rolled": lambda d: d.roll(longitude=5, roll_coords=True),
    "minus180_unsorted": lambda d: d.assign_coords(longitude=((d.longitude + 180) % 360) - 180),
    "minus180_sorted": lambda d: d.assign_coords(
        longitude=((d.longitude + 180) % 360) - 180
    ).sortby("longitude"),
    "descending": lambda d: d.isel(longitude=slice(None, None, -1)),
}


def _canonical(out):
    return out.assign_coords(longitude=out.longitude % 360).sortby("longitude")


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_geostrophic_and_ageostrophic_wind_on_any_whole_circle(layout):
    ds = _field()
    other = LAYOUTS[layout](ds)
    for fn in (geostrophic_wind, ageostrophic_wind):
        base = fn(ds)
        got = fn(other)
        # on the input's own longitudes, in its order
        np.testing.assert_array_equal(got.longitude.values, other.longitude.values)
        for name in base.data_vars:
            assert got[name].dims == base[name].dims
        xr.testing.assert_identical(_canonical(got), base)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_balance_summary_on_any_whole_circle(layout):
    ds = _field()
    bg = _field(seed=3)
    other, other_bg = LAYOUTS[layout](ds), LAYOUTS[layout](bg)
    bands = {"south": (-80.0, -20.0), "north": (20.0, 80.0)}
    xr.testing.assert_allclose(
        balance_summary(other, bands=bands), balance_summary(ds, bands=bands), rtol=1e-12
    )
    xr.testing.assert_allclose(
        balance_summary(other, other_bg, bands=bands),
        balance_summary(ds, bg, bands=bands),
        rtol=1e-12,
    )


def test_physics_kernel_returns_the_input_order():
    la, lo = np.meshgrid(np.deg2rad(LAT), np.deg2rad(LON), indexing="ij")
    z = 5e4 + 400 * np.cos(2 * lo) * np.cos(la) - 3e3 * np.sin(la) ** 2
    u0, v0 = physics.geostrophic_wind(z, LAT, LON)
    perm = np.random.default_rng(0).permutation(LON.size)
    lon = np.where(LON[perm] >= 180.0, LON[perm] - 360.0, LON[perm])  # shuffled, -180..180
    u, v = physics.geostrophic_wind(z[:, perm], LAT, lon)
    np.testing.assert_array_equal(u, u0[:, perm])
    np.testing.assert_array_equal(v, v0[:, perm])


def test_what_is_not_a_whole_circle_is_still_refused():
    ds = _field()
    with pytest.raises(ValueError, match="cover the globe"):
        geostrophic_wind(ds.isel(longitude=slice(0, 20)))  # a part of the circle
    with pytest.raises(ValueError, match="cover the globe"):
        geostrophic_wind(ds.isel(longitude=[0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]))  # a gap
    doubled = ds.assign_coords(longitude=np.r_[LON[:-1], 360.0])  # 0 and 360: twice one point
    with pytest.raises(ValueError, match="cover the globe"):
        geostrophic_wind(doubled)
