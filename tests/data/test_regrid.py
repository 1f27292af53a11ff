"""Regridding against analytic fields (issue 25, item 2): a smooth field is reproduced to a
stated tolerance, a conservative remap keeps the area integral."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xfuxi
from xfuxi.data.regrid import (
    equiangular_grid,
    gaussian_grid,
    is_flux_or_total,
    regrid,
    target_grid,
)
from xfuxi.data.schema import SchemaError
from xfuxi.grid import area_weights

pytest.importorskip("xarray_regrid", reason="bilinear regridding needs the 'regrid' extra")

GRIDS = ["T21", "wb2_64x32", "wb2_240x121"]
PAIRS = [(a, b) for a in GRIDS for b in GRIDS if a != b]


def smooth(grid: xr.Dataset) -> xr.DataArray:
    """A smooth field on the sphere (a polynomial in x, y, z): well defined at the poles."""
    lat, lon = np.deg2rad(grid.latitude), np.deg2rad(grid.longitude)
    x, y, z = np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat) + 0 * lon
    f = 2 + x + 0.5 * y * z + z**2 + 0.3 * z
    return f.transpose("latitude", "longitude").rename("temperature")


def integral(da: xr.DataArray) -> float:
    return float((da * area_weights(da.latitude)).mean(["latitude", "longitude"]))


def test_the_world_grid_is_t21():
    g = target_grid("T21")
    assert g.sizes == {"latitude": 32, "longitude": 64}
    assert round(float(g.latitude.max()), 2) == 85.76  # the model's grid in the issue
    wb2 = equiangular_grid(64, 32, poles=False)
    assert round(float(wb2.latitude.max()), 2) == 87.19
    np.testing.assert_allclose(gaussian_grid(32).latitude, g.latitude)


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_conservative_keeps_the_area_integral(source, target):
    rng = np.random.default_rng(0)
    f = smooth(target_grid(source))
    noisy = f.copy(data=rng.uniform(0, 1, f.shape))
    for field in (f, noisy):
        out = regrid(field, target, method="conservative")
        assert abs(integral(out) - integral(field)) < 1e-12
    # a constant stays exactly constant
    const = regrid(xr.full_like(f, 3.5), target, method="conservative")
    np.testing.assert_allclose(const.values, 3.5, rtol=1e-14)


# the largest error of bilinear interpolation from these grids (the field spans 0.5..4.3):
# 0.007 (0.2 % of the range) from the 5.625° grids, 0.0005 from the 1.5° grid
BILINEAR_TOLERANCE = {"T21": 0.007, "wb2_64x32": 0.007, "wb2_240x121": 0.0005}


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_bilinear_reproduces_a_smooth_field(source, target):
    out = regrid(smooth(target_grid(source)), target, method="bilinear")
    expected = smooth(target_grid(target))
    assert out.dims == ("latitude", "longitude")
    np.testing.assert_array_equal(out.latitude, expected.latitude)
    error = float(abs(out - expected).max())
    assert error < BILINEAR_TOLERANCE[source], error


def flow_across_the_pole(grid: xr.Dataset) -> xr.Dataset:
    """A uniform 10 m/s flow across both poles (along the 0°–180° meridian plane), its
    components in each point's local frame: they turn over at the pole."""
    lat, lon = np.deg2rad(grid.latitude), np.deg2rad(grid.longitude)
    u = 10 * np.sin(lat) * np.cos(lon)
    v = -10 * np.sin(lon) + 0 * lat
    return xr.Dataset(
        {
            "u_component_of_wind": u.transpose("latitude", "longitude"),
            "v_component_of_wind": v.transpose("latitude", "longitude"),
        }
    )


@pytest.mark.parametrize(
    "source",
    [
        target_grid("T21"),
        target_grid("wb2_64x32"),
        # an odd number of longitudes: the meridian across the pole is interpolated
        xr.Dataset(coords={"latitude": np.linspace(-86, 86, 44), "longitude": np.arange(45) * 8.0}),
    ],
    ids=["T21", "wb2_64x32", "odd_longitudes"],
)
def test_bilinear_wind_across_the_pole(source):
    # the rows beyond the source's outermost latitude used to be its zonal mean, about 0 for
    # a wind component: 0 m/s at the pole and 3.5 m/s at 88.5° for this 10 m/s flow
    out = regrid(flow_across_the_pole(source), "wb2_240x121", method="bilinear")
    expected = flow_across_the_pole(target_grid("wb2_240x121"))
    error = np.sqrt(((out - expected) ** 2).to_array().mean("variable"))
    assert float(error.max()) < 0.05, error.max("longitude").values
    # a scalar regridded beside the winds is as regridded alone (zonal-mean pole padding)
    both = flow_across_the_pole(source).assign(temperature=smooth(source))
    alone = regrid(smooth(source), "wb2_240x121", method="bilinear")
    xr.testing.assert_identical(
        regrid(both, "wb2_240x121", method="bilinear")["temperature"], alone
    )


def test_conservative_from_fine_to_coarse_reproduces_a_smooth_field():
    out = regrid(smooth(target_grid("wb2_240x121")), "T21", method="conservative")
    assert float(abs(out - smooth(target_grid("T21"))).max()) < 0.015


def test_auto_is_conservative_for_totals_and_bilinear_for_the_rest():
    src = target_grid("wb2_240x121")
    f = smooth(src)
    ds = xr.Dataset(
        {"temperature": f, "total_precipitation_6hr": (f * 1e-3).assign_attrs(units="m")}
    ).expand_dims(time=np.array(["2020-01-01", "2020-01-01T06"], dtype="datetime64[ns]"))
    out = regrid(ds, "T21")
    assert out["temperature"].attrs["regrid_method"] == "bilinear"
    assert out["total_precipitation_6hr"].attrs["regrid_method"] == "conservative"
    assert out["total_precipitation_6hr"].attrs["units"] == "m"
    assert out["temperature"].dims == ("time", "latitude", "longitude")
    assert "regrid_method" not in ds["temperature"].attrs  # the input is not modified
    tp = ds["total_precipitation_6hr"].isel(time=0)
    assert abs(integral(out["total_precipitation_6hr"].isel(time=0)) - integral(tp)) < 1e-15
    # the accessor and the top-level name
    xr.testing.assert_identical(ds.fuxi.regrid("T21"), out)
    xr.testing.assert_identical(xfuxi.regrid(ds, "T21"), out)


def test_dtypes_and_lazy_data():
    src = target_grid("wb2_64x32")
    f = smooth(src)
    # float32 stays float32 (bilinear came back float64, twice the memory)
    for method in ("bilinear", "conservative"):
        out = regrid(f.astype("float32"), "T21", method=method)
        assert out.dtype == np.float32, method
    # an integer mask regrids to fractions: conservative was cast back to int8, which kept
    # only 0 and 1 and broke the area integral
    mask = (f > 3.0).astype("int8").rename("land_sea_mask")
    out = regrid(mask, "T21", method="conservative")
    assert out.dtype == np.float64 and ((out > 0) & (out < 1)).any()
    assert abs(integral(out) - integral(mask.astype(float))) < 1e-12
    # dask data stay lazy: nothing is read until the result is computed (the conservative
    # scheme asked whether all values were valid, which read every block at the call)
    import dask

    lazy = f.expand_dims(time=np.arange(4).astype("datetime64[D]").astype("datetime64[ns]"))
    lazy = lazy.rename("total_precipitation_6hr").assign_attrs(units="m").chunk(time=1)

    def refuse(dsk, keys, **kwargs):
        raise RuntimeError("a dask array was computed before .compute()")

    with dask.config.set(scheduler=refuse):
        out = regrid(lazy, "T21", method="conservative")
    assert out.chunks is not None
    eager = regrid(lazy.compute(), "T21", method="conservative")
    np.testing.assert_allclose(out.compute().values, eager.values, rtol=1e-14)


def test_a_model_and_data_are_targets():
    class Model:
        latitude = gaussian_grid(32).latitude.values
        longitude = gaussian_grid(32).longitude.values

    f = smooth(target_grid("wb2_64x32"))
    xr.testing.assert_identical(regrid(f, Model()), regrid(f, "T21"))
    xr.testing.assert_identical(regrid(f, smooth(target_grid("T21"))), regrid(f, "T21"))
    # a mapping of the grid's coordinates (long or short names) is a target too
    grid = {"latitude": Model.latitude, "longitude": Model.longitude}
    xr.testing.assert_identical(regrid(f, grid), regrid(f, "T21"))
    short = {"lat": Model.latitude, "lon": Model.longitude}
    xr.testing.assert_identical(regrid(f, short), regrid(f, "T21"))
    with pytest.raises(TypeError, match="gives no latitude and longitude"):
        regrid(f, {"latitude": Model.latitude})


def test_flux_or_total():
    assert is_flux_or_total("toa_incident_solar_radiation_6hr")
    assert is_flux_or_total("x", {"units": "W m**-2"})
    assert not is_flux_or_total("geopotential", {"units": "m**2 s**-2"})


def test_bad_input_is_named():
    f = smooth(target_grid("T21"))
    with pytest.raises(ValueError, match="unknown method 'cubic'"):
        regrid(f, "T21", method="cubic")
    with pytest.raises(ValueError, match="unknown grid 'T99'"):
        regrid(f, "T99")
    with pytest.raises(SchemaError, match="regrid needs global data"):
        regrid(f.isel(longitude=slice(0, 10)), "T21")
    ds = xr.Dataset({"temperature": f, "co2": xr.DataArray(400.0)})
    with pytest.raises(SchemaError, match=r"\['co2'\] lack latitude"):
        regrid(ds, "T21")


# Regional grids (audit 43): the conservative scheme stretched the outermost cells of both
# grids to the poles and wrapped every target round the globe, and a source missing a
# longitude column passed as global.


def on_grid(values: np.ndarray, grid: xr.Dataset, name: str = "total_precipitation_6hr"):
    return xr.DataArray(
        values,
        dims=("latitude", "longitude"),
        coords={"latitude": grid.latitude, "longitude": grid.longitude},
        name=name,
    )


def test_conservative_global_to_global_is_unchanged():
    """A tiny global pair whose weights are exact binary fractions, worked out by hand: the
    target cells [0, 180] and [180, 360] take 1/4, 1/2 and 1/4 of three 90° source cells
    (centred on 0, 90, 180, 270); both grids have the latitude cells [-90, 0] and [0, 90]."""
    src = equiangular_grid(4, 2, poles=False)
    values = np.array([[1.0, 2.0, 3.0, 4.0], [8.0, 0.0, -4.0, 16.0]])
    target = {"latitude": [-45.0, 45.0], "longitude": [90.0, 270.0]}
    out = regrid(on_grid(values, src), target, method="conservative")
    np.testing.assert_array_equal(out.values, [[2.0, 3.0], [1.0, 9.0]])
    # NaN data: the mean over the valid part of the cell, [0, 180] now 1/4 of 1 and 3 each
    values[0, 1] = np.nan
    out = regrid(on_grid(values, src), target, method="conservative")
    np.testing.assert_array_equal(out.values, [[2.0, 3.0], [1.0, 9.0]])


def test_conservative_without_gaps_makes_no_mask_or_filled_copy(monkeypatch):
    """In-memory data without a NaN on a covered target: no mask and no NaN-filled copy of
    the data (each as large as the data: they raised the peak of a 0.25° to 1.5° regrid of
    103 MB from +452 to +581 MB); the same numbers as the masked path."""
    src = equiangular_grid(8, 4, poles=False)
    values = np.arange(32.0).reshape(4, 8) ** 1.5
    target = {"latitude": [-45.0, 45.0], "longitude": [90.0, 270.0]}
    masked = regrid(on_grid(values, src), target, method="conservative")  # the general path
    for name in ("fillna", "notnull"):

        def refuse(self, *args, _name=name, **kwargs):
            raise AssertionError(f"{_name} on data without a gap")

        monkeypatch.setattr(xr.DataArray, name, refuse)
    plain = regrid(on_grid(values, src), target, method="conservative")
    np.testing.assert_allclose(plain.values, masked.values, rtol=1e-14)
    monkeypatch.undo()
    values[1, 2] = np.nan  # a gap still takes the masked path
    assert np.isfinite(regrid(on_grid(values, src), target, method="conservative")).all()


def band_field(grid: xr.Dataset, latitudes: bool, longitudes: bool) -> xr.DataArray:
    """1 mm in the band 30..60°N if ``latitudes`` and 330..30°E if ``longitudes``, 0
    elsewhere."""
    lat, lon = np.meshgrid(grid.latitude.values, grid.longitude.values, indexing="ij")
    inside = np.ones(lat.shape, dtype=bool)
    if latitudes:
        inside &= (lat >= 30) & (lat <= 60)
    if longitudes:
        inside &= (lon <= 30) | (lon >= 330)
    return on_grid(np.where(inside, 1e-3, 0.0), grid).assign_attrs(units="m")


@pytest.mark.parametrize(
    "longitude",
    [np.arange(0.0, 19.0, 3.0), np.array([351.0, 354.0, 357.0, 0.0, 3.0, 6.0])],
    ids=["0..18E", "across 0"],
)
def test_conservative_regional_target_inside_a_band_is_the_constant(longitude):
    # the 3° Europe box of the audit: its edge rows came out 13 and 2.6 times too small
    # (stretched to the poles), its edge columns too small (wrapped round the globe)
    src = target_grid("wb2_240x121")
    box = {"latitude": np.arange(36.0, 55.0, 3.0), "longitude": longitude}
    for latitudes, longitudes in [(True, False), (False, True), (True, True)]:
        field = band_field(src, latitudes=latitudes, longitudes=longitudes)
        out = regrid(field, box)
        assert out.attrs["regrid_method"] == "conservative"
        np.testing.assert_allclose(out.values, 1e-3, rtol=1e-12)
        assert out.sizes == {"latitude": 7, "longitude": longitude.size}


@pytest.mark.parametrize(
    "longitude",
    [np.arange(2.25, 18.0, 3.0), np.array([351.75, 354.75, 357.75, 0.75, 3.75])],
    ids=["0.75..18.75E", "across 0"],
)
def test_conservative_regional_target_keeps_the_area_mean(longitude):
    """A box whose 3° cells are made of whole 1.5° source cells: the area mean over the
    box is the source's over the same region, to rounding."""
    src = target_grid("wb2_240x121")
    f = on_grid(np.random.default_rng(3).uniform(0, 1, (121, 240)), src)
    latitude = np.arange(36.75, 55.0, 3.0)  # cells 35.25..56.25°N
    out = regrid(f, {"latitude": latitude, "longitude": longitude}, method="conservative")
    lat = np.deg2rad(latitude)
    area = np.sin(lat + np.deg2rad(1.5)) - np.sin(lat - np.deg2rad(1.5))  # equal widths
    got = float((out.mean("longitude") * area).sum() / area.sum())
    first, last = longitude[0] - 1.5, longitude[-1] + 1.5
    lon = f.longitude.values
    in_lon = (lon > first) & (lon < last) if first < last else (lon > first) | (lon < last)
    inner = f.sel(latitude=slice(35.25, 56.25)).isel(longitude=in_lon)
    assert inner.sizes == {"latitude": 14, "longitude": 2 * longitude.size}
    slat = np.deg2rad(inner.latitude)
    sarea = np.sin(slat + np.deg2rad(0.75)) - np.sin(slat - np.deg2rad(0.75))
    expected = float((inner.mean("longitude") * sarea).sum() / sarea.sum())
    assert abs(got - expected) < 1e-14, (got, expected)


def test_conservative_band_source_is_nan_outside_its_band():
    # a source on 30°S..30°N used to be copied out to the poles (0.005 at 85.8°N)
    src = target_grid("wb2_240x121")
    rng = np.random.default_rng(4)
    band = on_grid(rng.uniform(0, 1, (121, 240)), src).sel(latitude=slice(-30, 30))
    out = regrid(band, "T21", method="conservative")
    # the T21 cells (bounds at the midpoints and the poles) against the band's (±30.75°)
    lat = target_grid("T21").latitude.values
    bounds = np.concatenate([[-90.0], (lat[:-1] + lat[1:]) / 2, [90.0]])
    outside = (bounds[1:] <= -30.75) | (bounds[:-1] >= 30.75)
    assert outside.sum() == 20 and not outside[10:22].any()
    assert out.isel(latitude=outside).isnull().all()
    assert out.isel(latitude=~outside).notnull().all()
    # a cell partly in the band is the mean over its part in the band: a constant stays
    # constant, and the integral over the covered area is the band's
    const = regrid(xr.full_like(band, 5e-3), "T21", method="conservative")
    np.testing.assert_allclose(const.isel(latitude=~outside), 5e-3, rtol=1e-14)
    s = np.sin(np.deg2rad(np.clip(bounds, -30.75, 30.75)))
    covered = np.diff(s)  # the area of each T21 cell within the band (equal widths)
    got = float(np.nansum(out.mean("longitude").values * covered))
    blat = np.deg2rad(band.latitude.values)
    barea = np.sin(blat + np.deg2rad(0.75)) - np.sin(blat - np.deg2rad(0.75))
    expected = float((band.mean("longitude").values * barea).sum())
    assert abs(got - expected) < 1e-13, (got, expected)
    # NaN data inside the band are treated alike: the mean over the valid part
    holes = band.where(rng.uniform(size=band.shape) > 0.3)
    out = regrid(xr.full_like(band, 2.0).where(holes.notnull()), "T21", method="conservative")
    np.testing.assert_allclose(out.isel(latitude=~outside), 2.0, rtol=1e-14)
    assert out.isel(latitude=outside).isnull().all()


def test_a_longitude_gap_of_one_column_is_not_global():
    g = target_grid("wb2_64x32")
    ones = on_grid(np.ones((32, 64)), g)
    # the last column (354.375°) missing: a gap of two spacings across 360° was filled
    with pytest.raises(SchemaError, match="gap of 11.25° between 348.75 and 0"):
        regrid(ones.isel(longitude=slice(0, 63)), "wb2_64x32", method="conservative")
    # an inner column missing
    with pytest.raises(SchemaError, match="gap of 11.25° between 174.375 and 185.625"):
        regrid(ones.drop_isel(longitude=32), "T21", method="bilinear")
    # the whole grid, or one starting elsewhere, is global
    assert regrid(ones, "T21").notnull().all()
    rolled = ones.assign_coords(longitude=(ones.longitude + 2.0) % 360)
    assert regrid(rolled, "T21").notnull().all()


def test_conservative_needs_two_points_each_way():
    f = smooth(target_grid("T21"))
    with pytest.raises(ValueError, match="at least 2 latitudes .* the target 1"):
        regrid(f, {"latitude": [45.0], "longitude": [0.0, 90.0]}, method="conservative")
    with pytest.raises(ValueError, match="at least 2 longitudes .* the target 1"):
        regrid(f, {"latitude": [0.0, 45.0], "longitude": [10.0]}, method="conservative")


def test_longitude_cells_of_a_regional_source_are_not_periodic():
    """regrid refuses sources not global in longitude, but the weights treat one as its
    cells say: source cells [-5, 5], [5, 15], [15, 25]; target cells [0, 10], [10, 20],
    [20, 32.5], [32.5, 47.5]."""
    from xfuxi.data.regrid import _longitude_weights

    weights, inside = _longitude_weights(np.array([0.0, 10.0, 20.0]), np.array([5.0, 15, 25, 40]))
    np.testing.assert_allclose(
        weights, [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 0.4], [0.0, 0.0, 0.0]]
    )
    np.testing.assert_array_equal(inside, [True, True, False, False])
    # both across 0°: source cells [355, 365], [365, 375], [345, 355]; target cells
    # [360, 370] (5°E) and [350, 360] (355°E)
    weights, inside = _longitude_weights(np.array([0.0, 10.0, 350.0]), np.array([5.0, 355.0]))
    np.testing.assert_allclose(weights, [[0.5, 0.5, 0.0], [0.5, 0.0, 0.5]])
    np.testing.assert_array_equal(inside, [True, True])


@pytest.mark.parametrize("lats", [[-45.0, 45.0], [10.0]])
def test_bilinear_to_one_longitude_is_that_column_of_a_wider_target(lats):
    """A meridian section (one target longitude) failed inside xarray-regrid with a raw
    'zero-size array to reduction operation fmax'."""
    src = smooth(target_grid("T21")).to_dataset(name="temperature")
    got = regrid(src, {"latitude": lats, "longitude": [30.0]})
    wide = regrid(src, {"latitude": lats, "longitude": [30.0, 120.0, 210.0, 300.0]})
    assert got.sizes["longitude"] == 1 and float(got["longitude"][0]) == 30.0
    xr.testing.assert_allclose(got, wide.sel(longitude=[30.0]))
