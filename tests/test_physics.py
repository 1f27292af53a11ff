"""Balance kernels (xfuxi.physics) and the Earth's constants defined once."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

from xfuxi import constants, physics

LAT = np.linspace(-84.0, 84.0, 29)
LON = np.arange(0.0, 360.0, 7.5)
ROOT = pathlib.Path(__file__).resolve().parents[1] / "xfuxi"


def test_zonal_flow_uses_the_package_constants():
    # Phi = -C * phi (radians): u_g = C / (a f) exactly (phi linear: the differences are exact)
    c = 1e4
    z = np.broadcast_to(-c * np.deg2rad(LAT)[:, None], (LAT.size, LON.size))
    u, v = physics.geostrophic_wind(z, LAT, LON, equator_band=10.0)
    f = 2 * constants.OMEGA * np.sin(np.deg2rad(LAT))
    out = np.abs(LAT) >= 10
    np.testing.assert_allclose(u[out, 0], c / (constants.EARTH_RADIUS * f[out]), rtol=1e-12)
    assert np.abs(v).max() == 0.0
    assert physics.coriolis_parameter(30.0) == pytest.approx(constants.OMEGA, rel=1e-12)


def test_meridional_flow_and_axes():
    # Phi = C * lambda-like wave: v_g = (1/(f a cos phi)) dPhi/dlambda; any axis order
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, LAT.size, LON.size)) * 100.0
    u, v = physics.geostrophic_wind(z, LAT, LON)
    zt = np.moveaxis(z, (1, 2), (2, 0))  # (lon, level, lat)
    ut, vt = physics.geostrophic_wind(zt, LAT, LON, latitude_axis=2, longitude_axis=0)
    np.testing.assert_array_equal(np.moveaxis(ut, (2, 0), (1, 2)), u)
    np.testing.assert_array_equal(np.moveaxis(vt, (2, 0), (1, 2)), v)
    # descending latitude gives the same winds, reversed
    ud, vd = physics.geostrophic_wind(z[:, ::-1], LAT[::-1], LON)
    np.testing.assert_allclose(ud[:, ::-1], u, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(vd[:, ::-1], v, rtol=1e-12, atol=1e-12)


def test_equator_handling_is_finite_continuous_and_tapered():
    rng = np.random.default_rng(1)
    lat = np.linspace(-90.0, 90.0, 181)[1:-1]
    z = rng.normal(size=(lat.size, LON.size)) * 100.0
    band = 12.0
    u, v = physics.geostrophic_wind(z, lat, LON, equator_band=band)
    assert np.isfinite(u).all() and np.isfinite(v).all()
    assert np.abs(u[lat == 0]).max() == 0.0 and np.abs(v[lat == 0]).max() == 0.0
    # inside the band: |f| held at the edge and the wind scaled by |lat| / band
    inside = (np.abs(lat) < band) & (lat != 0)
    f_edge = physics.coriolis_parameter(band)
    u_edge, _ = physics.geostrophic_wind(z, lat, LON, equator_band=1e-6)  # unregularised
    la = lat[inside]
    scale = physics.coriolis_parameter(la) / (np.sign(la) * f_edge) * np.abs(la) / band
    expect = u_edge[inside] * scale[:, None]
    np.testing.assert_allclose(u[inside], expect, rtol=1e-10)
    outside = np.abs(lat) >= band
    np.testing.assert_array_equal(u[outside], u_edge[outside])


def test_bad_grids_and_bands():
    z = np.zeros((LAT.size, LON.size))
    with pytest.raises(ValueError, match="cover the globe"):
        physics.geostrophic_wind(z[:, :20], LAT, LON[:20])
    with pytest.raises(ValueError, match="strictly monotonic"):
        physics.geostrophic_wind(z, np.r_[LAT[:-1], LAT[-2]], LON)
    for band in (-1.0, 90.0, 100.0, np.nan):  # 90 or more masked every latitude (all NaN)
        with pytest.raises(ValueError, match=r"equator_band must be in \[0, 90\)"):
            physics.geostrophic_wind(z, LAT, LON, equator_band=band)
    with pytest.raises(ValueError, match="latitude on the equator"):
        physics.geostrophic_wind(z, LAT, LON, equator_band=0.0)
    with pytest.raises(ValueError, match="the grid has 29 and 48"):
        physics.geostrophic_wind(z.T, LAT, LON)


def test_hydrostatic_temperature():
    p = np.array([200.0, 300.0, 500.0, 850.0])
    t0 = 250.0
    z = -constants.R_DRY * t0 * np.log(p)[:, None] + np.zeros((4, 5))
    np.testing.assert_allclose(physics.hydrostatic_temperature(z, p), t0, rtol=1e-12)
    zt = np.moveaxis(z, 0, 1)
    np.testing.assert_allclose(physics.hydrostatic_temperature(zt, p, axis=1), zt * 0 + t0)
    with pytest.raises(ValueError, match="strictly monotonic"):
        physics.hydrostatic_temperature(z, [200.0, 300.0, 300.0, 850.0])


def test_earth_constants_are_defined_once():
    # issue 19: the Earth radius and rotation rate were defined in four modules with
    # different values (6.371e6, 6371008.77, 6371.0 km; 7.292e-5, 7.292115e-5)
    ranges = [(6.36e6, 6.38e6), (6360.0, 6380.0), (7.28e-5, 7.30e-5)]
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "constants.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            value = getattr(node, "value", None) if isinstance(node, ast.Constant) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if any(lo <= value <= hi for lo, hi in ranges):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {value}")
    assert not found, "Earth constants defined outside xfuxi/constants.py: " + ", ".join(found)


def test_pole_rows_and_float32_longitudes():
    # a pole row that varies a little in longitude (as a regridded field's does) gave
    # v ~ 1e13 m/s through 1/cos(90°); v there is now the next row's
    lat = np.linspace(-90.0, 90.0, 25)
    lon = np.arange(0.0, 360.0, 7.5)
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    z = 5e4 - 2e5 * np.sin(la) ** 2 + 3e4 * np.cos(la) * np.sin(la) * np.sin(2 * lo)
    z[-1] += 5.0 * np.cos(lo[-1])  # the pole row is not constant
    u, v = physics.geostrophic_wind(z, lat, lon)
    assert np.isfinite(v).all() and np.abs(v).max() < 200.0
    np.testing.assert_array_equal(v[-1], v[-2])
    np.testing.assert_array_equal(v[0], v[1])
    # float32 longitudes of a 1/3° grid are evenly spaced to float32 precision: accepted
    lon32 = (np.arange(1080) / 3.0).astype("float32")
    lat3 = np.array([30.0, 40.0, 50.0])
    zz = np.zeros((3, lon32.size))
    uu, _ = physics.geostrophic_wind(zz, lat3, lon32)
    assert uu.shape == zz.shape
    with pytest.raises(ValueError, match="evenly spaced"):
        physics.geostrophic_wind(zz, lat3, lon32 * 0.9)  # does not cover the globe


@pytest.mark.parametrize("dtype", ["uint32", "int32", "uint16"])
def test_integer_geopotential_gives_the_winds_of_its_values(dtype):
    """The zonal differences were taken in the input's dtype: unsigned integers wrapped
    around (v_g off by 3e8 m/s for uint32 geopotential)."""
    rng = np.random.default_rng(5)
    z = np.round(30000 + 2000 * rng.random((LAT.size, LON.size)))
    u, v = physics.geostrophic_wind(z, LAT, LON)
    ui, vi = physics.geostrophic_wind(z.astype(dtype), LAT, LON)
    np.testing.assert_allclose(ui, u, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(vi, v, rtol=1e-12, atol=1e-9)
