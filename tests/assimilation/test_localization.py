"""Localization: Gaspari–Cohn/Gaussian, positive definiteness, truncated square root."""

from __future__ import annotations

import numpy as np
import pytest

from xfuxi.assimilation.localization import (
    channel_correlation,
    correlation_function,
    index_correlation,
    localization,
    sphere_correlation,
    sqrt_factor,
)


def _gc_reference(z):
    # Gaspari & Cohn (1999) eq. 4.10 written out directly, c = 1
    z = abs(z)
    if z <= 1:
        return -(z**5) / 4 + z**4 / 2 + 5 * z**3 / 8 - 5 * z**2 / 3 + 1
    if z < 2:
        return z**5 / 12 - z**4 / 2 + 5 * z**3 / 8 + 5 * z**2 / 3 - 5 * z + 4 - 2 / (3 * z)
    return 0.0


def test_gaspari_cohn_matches_reference_and_is_continuous():
    z = np.linspace(0, 3, 301)
    got = correlation_function(z * 500.0, length_scale=500.0, kind="gaspari_cohn")
    np.testing.assert_allclose(got, [_gc_reference(v) for v in z], atol=1e-12)
    eps = 1e-7
    for knot in (1.0, 2.0):
        lo, hi = correlation_function(
            [knot - eps, knot + eps], length_scale=1.0, kind="gaspari_cohn"
        )
        assert abs(lo - hi) < 1e-5
    g = correlation_function([0.0, 1.0], length_scale=1.0, kind="gaussian")
    np.testing.assert_allclose(g, [1.0, np.exp(-0.5)])
    with pytest.raises(ValueError, match="kind"):
        correlation_function([0.0], length_scale=1.0, kind="cosine")


@pytest.mark.parametrize("kind", ["gaspari_cohn", "gaussian"])
def test_sphere_correlation_is_a_correlation(kind):
    lat = np.linspace(-84, 84, 8)
    lon = np.arange(16) * 22.5
    c = sphere_correlation(lat, lon, length_scale=2500.0, kind=kind)
    assert np.allclose(c, c.T) and np.allclose(np.diag(c), 1.0)
    assert np.linalg.eigvalsh(c).min() > -1e-8
    # periodic in longitude: the first and last meridian are neighbours
    i, j = 3 * 16 + 0, 3 * 16 + 15
    assert c[i, j] == pytest.approx(c[i, i + 1])
    if kind == "gaspari_cohn":
        assert c[0, -1] == 0.0  # compact support: opposite ends of the globe


def test_index_correlation_periodic_and_pd():
    c = index_correlation(40, length_scale=4.0)
    assert c[0, 39] == pytest.approx(c[0, 1])
    assert c[0, 20] == 0.0
    assert np.linalg.eigvalsh(c).min() > -1e-10


def test_sqrt_factor_reproduces_correlation():
    c = index_correlation(40, length_scale=4.0)
    full = sqrt_factor(c, variance=1.0)
    np.testing.assert_allclose(full @ full.T, c, atol=1e-10)
    trunc = sqrt_factor(c, variance=0.99)
    assert trunc.shape[1] < 40
    np.testing.assert_allclose(np.diag(trunc @ trunc.T), 1.0)
    assert np.abs(trunc @ trunc.T - c).max() < 0.1
    assert sqrt_factor(c, rank=5).shape == (40, 5)


def test_channel_correlation_vertical_and_cross_variable():
    ch = [("t", 250.0), ("t", 500.0), ("t", 850.0), ("u", 500.0), ("sp", None)]
    c = channel_correlation(ch, vertical_length_scale=0.5, cross_variable=0.3)
    assert np.allclose(np.diag(c), 1.0) and np.linalg.eigvalsh(c).min() > -1e-10
    # ln(500/250) = 0.69 < 1 = 2 * 0.5: correlated; ln(850/250) = 1.22 > 1: zero
    assert 0 < c[0, 1] < 1 and c[0, 2] == 0.0
    assert c[1, 3] == pytest.approx(0.3)


def test_latitudes_outside_the_sphere_are_refused():
    """localization(lon, lat) built a Localization from latitudes up to 337.5 degrees."""
    lat, lon = np.array([-45.0, 0.0, 45.0]), np.arange(8) * 45.0
    with pytest.raises(ValueError, match=r"latitude must be .*-90, 90.*swapped"):
        localization(lon, lat, length_scale=2000.0)
    with pytest.raises(ValueError, match="latitude must be"):
        localization([0.0, np.nan], lon, length_scale=2000.0)
    assert localization(lat, lon, length_scale=2000.0).spatial.shape[0] == 24


def test_localization_object():
    loc = localization(
        [-30.0, 30.0],
        [0.0, 90.0, 180.0, 270.0],
        length_scale=3000.0,
        channels=[("t", 500.0), ("u", 500.0)],
        cross_variable=0.5,
        variance=1.0,
    )
    assert loc.control_shape == (loc.channel.shape[1], loc.spatial.shape[1])
    full = loc.correlation()
    assert full.shape == (16, 16)
    np.testing.assert_allclose(np.diag(full), 1.0)
    with pytest.raises(ValueError, match="channels"):
        localization([0.0], [0.0, 180.0], length_scale=100.0, cross_variable=0.5)


def test_zonal_fourier_sqrt_matches_dense_eigendecomposition():
    from xfuxi.assimilation.localization import sphere_sqrt_factor

    lat = np.linspace(-80, 80, 7)
    lon = np.arange(12) * 30.0
    c = sphere_correlation(lat, lon, length_scale=2500.0)
    fast = sphere_sqrt_factor(lat, lon, length_scale=2500.0, variance=1.0)
    np.testing.assert_allclose(fast @ fast.T, c, atol=1e-10)
    # truncation keeps the same number of modes as the dense eigendecomposition
    dense = sqrt_factor(c, variance=0.95)
    trunc = sphere_sqrt_factor(lat, lon, length_scale=2500.0, variance=0.95)
    assert trunc.shape == dense.shape
    np.testing.assert_allclose(trunc @ trunc.T, dense @ dense.T, atol=1e-8)
    # a grid that is not a full circle falls back to the dense path
    part = sphere_sqrt_factor(lat, lon[:5], length_scale=2500.0, variance=1.0)
    np.testing.assert_allclose(
        part @ part.T, sphere_correlation(lat, lon[:5], length_scale=2500.0), atol=1e-10
    )


def test_sphere_distances_use_the_package_earth_radius():
    # issue 19: the radius was 6371.0 km here, 6371.0088 km in xfuxi.constants (1.4e-6 rel.)
    from xfuxi.constants import EARTH_RADIUS
    from xfuxi.grid import great_circle_distance

    length = 3000.0
    c = sphere_correlation([0.0], [0.0, 90.0, 180.0], length_scale=length, kind="gaussian")
    chord_km = np.array([np.sqrt(2.0), 2.0]) * EARTH_RADIUS / 1e3  # 90 and 180 degrees apart
    np.testing.assert_allclose(c[0, 1:], np.exp(-0.5 * (chord_km / length) ** 2), rtol=1e-12)
    # the chord is 2 R sin(d / 2R) of the great-circle distance d of xfuxi.grid
    d = great_circle_distance(np.array(0.0), np.array(0.0), np.array(0.0), np.array(90.0))
    assert chord_km[0] == pytest.approx(2 * EARTH_RADIUS * np.sin(d / (2 * EARTH_RADIUS)) / 1e3)
