"""plot_map's default map of a regional box shows the box (one across 0° whole), not the
globe with the box as two slivers at its edges."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

import xfuxi  # noqa: E402

ccrs = pytest.importorskip("cartopy.crs")


def _field(lat, lon):
    data = np.random.default_rng(0).standard_normal((lat.size, lon.size))
    return xr.DataArray(
        data,
        dims=("latitude", "longitude"),
        coords={"latitude": lat, "longitude": lon},
        name="temperature",
        attrs={"units": "K"},
    )


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_box_across_greenwich_is_shown_whole():
    lon = np.r_[np.arange(340.5, 360.0, 1.5), np.arange(0.0, 46.5, 1.5)]
    ax = xfuxi.plot_map(_field(np.arange(35.0, 71.0, 1.5), lon))
    west, east, south, north = ax.get_extent(crs=ccrs.PlateCarree())
    np.testing.assert_allclose([west, east, south, north], [-20.25, 45.75, 34.25, 70.25], atol=0.5)


def test_box_in_the_pacific_and_a_global_grid():
    ax = xfuxi.plot_map(_field(np.arange(-10.0, 21.0, 2.0), np.arange(150.0, 241.0, 2.0)))
    west, east, south, north = ax.get_extent()  # (the map's own, centred on the box)
    assert east - west == pytest.approx(92.0, abs=0.5) and (south, north) == pytest.approx(
        (-11.0, 21.0), abs=0.5
    )
    ax = xfuxi.plot_map(_field(np.linspace(-87.5, 87.5, 36), np.arange(0.0, 360.0, 5.0)))
    west, east, south, north = ax.get_extent(crs=ccrs.PlateCarree())
    assert east - west == pytest.approx(360.0) and south < -89 and north > 89


def test_narrow_box_across_greenwich_and_plain_axes_in_the_west():
    from xfuxi.plot import MapStyle

    lat = np.array([40.0, 45.0, 50.0])
    ax = xfuxi.plot_map(_field(lat, np.array([355.0, 5.0])))
    np.testing.assert_allclose(ax.get_extent(crs=ccrs.PlateCarree()), [-10, 10, 37.5, 52.5])
    # plain axes, longitudes 230..300 in 0..360: the box in the data's own longitudes
    ax = xfuxi.plot_map(
        _field(lat, np.arange(230.0, 301.0, 10.0)), style=MapStyle(projection="plain")
    )
    np.testing.assert_allclose([*ax.get_xlim(), *ax.get_ylim()], [225, 305, 37.5, 52.5])
