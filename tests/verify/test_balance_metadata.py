"""Geostrophic and ageostrophic wind: coordinate attributes and dask chunks (audit 60,
r06 and r07)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi

ATTRS = {
    "latitude": {"units": "degrees_north", "long_name": "latitude"},
    "longitude": {"units": "degrees_east", "long_name": "longitude"},
    "level": {"units": "hPa", "long_name": "pressure level"},
}


def _state():
    rng = np.random.default_rng(0)
    lat = np.linspace(-80.0, 80.0, 9)
    lon = np.arange(16) * 22.5
    shape = (3, 2, lat.size, lon.size)
    dims = ("time", "level", "latitude", "longitude")
    z = 5e4 + 1e3 * np.sin(np.deg2rad(lat))[:, None] * np.cos(np.deg2rad(lon)) + rng.normal(
        size=shape
    )  # fmt: skip
    ds = xr.Dataset(
        {
            "geopotential": (dims, z, {"units": "m**2 s**-2"}),
            "u_component_of_wind": (dims, rng.normal(size=shape), {"units": "m s**-1"}),
            "v_component_of_wind": (dims, rng.normal(size=shape), {"units": "m s**-1"}),
        },
        coords={"time": pd.date_range("2020-01-01", periods=3, freq="6h"),
                "level": [500.0, 850.0], "latitude": lat, "longitude": lon},
    )  # fmt: skip
    for c, a in ATTRS.items():
        ds[c].attrs = dict(a)
    return ds


@pytest.mark.parametrize("name", ["geostrophic_wind", "ageostrophic_wind"])
@pytest.mark.parametrize("lazy", [False, True])
def test_coordinates_keep_their_attrs(name, lazy):
    ds = _state()
    out = getattr(xfuxi, name)(ds.chunk({"time": 1}) if lazy else ds)
    for c, a in ATTRS.items():
        assert out[c].attrs == a, c


@pytest.mark.parametrize("name", ["geostrophic_wind", "ageostrophic_wind"])
@pytest.mark.parametrize("chunks", [{"time": 1}, {"time": 2, "longitude": 8}])
def test_lazy_outputs_are_chunked_as_the_input_and_write_to_zarr(name, chunks, tmp_path):
    ds = _state()
    lazy = ds.chunk(chunks)
    out = getattr(xfuxi, name)(lazy)
    for v in out.data_vars:
        assert out[v].chunks is not None, v  # still lazy
        assert out[v].chunksizes == lazy["geopotential"].chunksizes, v
    out.to_zarr(tmp_path / "out.zarr", consolidated=False)
    xr.testing.assert_allclose(out.compute(), getattr(xfuxi, name)(ds))
    xr.testing.assert_allclose(xr.open_zarr(tmp_path / "out.zarr", consolidated=False).compute(),
                               getattr(xfuxi, name)(ds))  # fmt: skip
