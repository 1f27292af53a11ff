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
