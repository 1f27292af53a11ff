"""ERA5 of the old CDS layout (int16 packed) is read as float32, as the new layout (audit 63)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi

from . import layouts

LAT_DESC = np.array([60.0, 0.0, -60.0])
LON = np.array([0.0, 90.0, 180.0, 270.0])
LEVELS = np.array([500, 850], dtype="int32")


def _old_cds(path, *, float64_var: bool = False):
    """A CDS netCDF before 2024: ``time``, ``level`` in millibars, t and sp packed as int16
    with a float64 scale and offset (as the CDS wrote them); optionally a float64 field
    stored as float64."""
    rng = np.random.default_rng(11)
    times = pd.date_range("2020-01-01", periods=4, freq="6h")
    t = 250.0 + 20 * rng.standard_normal((4, 2, 3, 4))
    sp = 1e5 + 500 * rng.standard_normal((4, 3, 4))
    data = {
        "t": (("time", "level", "latitude", "longitude"), t, {"units": "K"}),
        "sp": (("time", "latitude", "longitude"), sp, {"units": "Pa"}),
    }
    if float64_var:
        t2m = 280.0 + rng.standard_normal((4, 3, 4)) / 3.0
        data["t2m"] = (("time", "latitude", "longitude"), t2m, {"units": "K"})
    ds = xr.Dataset(
        data,
        coords={
            "time": times,
            "level": ("level", LEVELS, {"units": "millibars"}),
            "latitude": ("latitude", LAT_DESC, {"units": "degrees_north"}),
            "longitude": ("longitude", LON, {"units": "degrees_east"}),
        },
    )

    def packing(values):
        lo, hi = float(values.min()), float(values.max())
        return {
            "dtype": "int16",
            "scale_factor": np.float64((hi - lo) / 65532),
            "add_offset": np.float64((hi + lo) / 2),
            "_FillValue": np.int16(-32767),
        }

    encoding = {"t": packing(t), "sp": packing(sp)}
    if float64_var:
        encoding["t2m"] = {"dtype": "float64"}
    ds.to_netcdf(path, format="NETCDF3_64BIT", encoding=encoding)
    return path


def test_int16_packed_fields_are_read_as_float32(tmp_path):
    path = _old_cds(tmp_path / "era5_old.nc")
    with xr.open_dataset(path) as plain:  # xarray alone: float64
        assert plain["t"].dtype == np.float64 and plain["t"].encoding["dtype"] == "int16"
        expected = {
            "temperature": plain["t"].load().isel(latitude=slice(None, None, -1)),
            "surface_pressure": plain["sp"].load().isel(latitude=slice(None, None, -1)),
        }
    with xfuxi.from_era5(path) as ds:
        for name, want in expected.items():
            assert ds[name].dtype == np.float32, name
            # the float64 decoding, rounded to float32: nothing else changes
            np.testing.assert_array_equal(ds[name].values, want.values.astype("float32"))
            assert not {"dtype", "scale_factor", "add_offset"} & set(ds[name].encoding)
            assert ds[name].attrs["units"] == want.attrs["units"]
        assert ds["temperature"].dims == ("time", "level", "latitude", "longitude")
        assert ds["temperature"].nbytes == ds["temperature"].size * 4


def test_float64_fields_stay_float64(tmp_path):
    path = _old_cds(tmp_path / "era5_old.nc", float64_var=True)
    with xr.open_dataset(path) as plain:
        want = plain["t2m"].load().isel(latitude=slice(None, None, -1))
    with xfuxi.from_era5(path) as ds:
        assert ds["2m_temperature"].dtype == np.float64
        np.testing.assert_array_equal(ds["2m_temperature"].values, want.values)
        assert ds["temperature"].dtype == np.float32


def test_old_and_new_layout_give_the_same_dtype(tmp_path):
    old = _old_cds(tmp_path / "old.nc")
    new = layouts.write_new_cds(tmp_path)
    with xfuxi.from_era5(old) as a, xfuxi.from_era5(new) as b:
        assert a["temperature"].dtype == b["temperature"].dtype == np.float32


def test_the_expver_layout_is_float32_too(tmp_path):
    path, expected = layouts.old_cds_expver(tmp_path)
    with xfuxi.from_era5(path) as ds:
        assert ds["temperature"].dtype == np.float32
        np.testing.assert_array_equal(
            ds["temperature"].values, expected.values[:, :, ::-1].astype("float32")
        )


@pytest.mark.parametrize("files", [1, 2])
def test_several_packed_files_combined_are_float32(tmp_path, files):
    paths = []
    for i in range(files):
        p = _old_cds(tmp_path / f"m{i}.nc")
        if i:  # the next days: another file of the same request
            with xr.open_dataset(p) as d:
                moved = d.load().assign_coords(time=d["time"] + np.timedelta64(1, "D"))
                enc = {v: d[v].encoding for v in ("t", "sp")}
            p.unlink()
            moved.to_netcdf(p, format="NETCDF3_64BIT", encoding={
                v: {k: e[k] for k in ("dtype", "scale_factor", "add_offset", "_FillValue")}
                for v, e in enc.items()
            })  # fmt: skip
        paths.append(p)
    with xfuxi.from_era5(paths) as ds:
        assert ds.sizes["time"] == 4 * files
        assert ds["temperature"].dtype == np.float32
        assert ds["surface_pressure"].dtype == np.float32
