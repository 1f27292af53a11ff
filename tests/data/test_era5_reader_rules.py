"""ERA5 reader rules on tiny files in the CDS's layouts: surface geopotential, scalar
pressure levels and members, combining several files, closing what was opened."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tests.data import layouts
from xfuxi.data.readers import from_era5
from xfuxi.data.schema import SchemaError, validate
from xfuxi.data.writers import to_weatherbench2_layout


def _single_level(n_time: int = 2, freq: str = "6h") -> xr.Dataset:
    """A CDS single-level netCDF: ``z`` is the surface geopotential (orography)."""
    base = layouts.new_cds(n_time, freq=freq)
    orog = base["sp"].copy(data=np.full(base["sp"].shape, 3000.0, "float32"))
    return base[["sp", "d2m"]].assign(z=orog.assign_attrs(units="m**2 s**-2"))


# 1. validate: z without a level is the surface geopotential


def test_validate_names_single_level_z_the_surface_geopotential():
    raw = _single_level()
    out = validate(raw)
    assert "geopotential_at_surface" in out and "geopotential" not in out
    np.testing.assert_array_equal(out["geopotential_at_surface"].values, 3000.0)
    layout = to_weatherbench2_layout(raw)
    assert "pressure levels" not in layout["geopotential_at_surface"].attrs["long_name"]
    assert "z" in raw and "geopotential_at_surface" not in raw  # input unchanged
    # z on pressure levels stays geopotential, also at one level given as a scalar coordinate
    assert "geopotential" in validate(layouts.new_cds(2))
    one = validate(layouts.new_cds(2)[["z"]].isel(pressure_level=0))
    assert "geopotential" in one and "geopotential_at_surface" not in one
    with pytest.raises(SchemaError, match="both 'z' and 'geopotential_at_surface'"):
        validate(raw.assign(geopotential_at_surface=raw["z"]))


# 2. a scalar pressure level belongs to the pressure-level variables only


def test_scalar_pressure_level_is_not_spread_onto_surface_fields():
    pl = layouts.new_cds(2)[["t", "z"]].sel(pressure_level=500.0)
    surface = layouts.new_cds(2)[["sp", "d2m"]]
    mixed = xr.merge([pl[["t"]], surface], compat="override", join="exact")
    assert mixed["sp"].coords["pressure_level"].ndim == 0  # xarray's scalar coordinate
    ds = from_era5(mixed)
    assert ds["temperature"].dims == ("time", "level", "latitude", "longitude")
    assert ds["level"].values.tolist() == [500]
    assert ds["surface_pressure"].dims == ("time", "latitude", "longitude")
    assert ds["2m_dewpoint_temperature"].dims == ("time", "latitude", "longitude")
    # a z beside surface fields and a scalar level: at 500 hPa or the orography? refused
    with pytest.raises(SchemaError, match=r"'z'.*500.*surface.*\['d2m', 'sp'\]"):
        from_era5(xr.merge([pl, surface], compat="override", join="exact"))
    # said by cfgrib's attribute: the surface geopotential
    orog = _single_level()["z"].assign_attrs(GRIB_typeOfLevel="surface")
    ds = from_era5(xr.merge([pl[["t"]], surface.assign(z=orog)], compat="override"))
    assert ds["geopotential_at_surface"].dims == ("time", "latitude", "longitude")
    assert "geopotential" not in ds
    # only pressure-level fields (cfgrib's single level): all of them on the level
    only = from_era5(pl)
    assert only["geopotential"].dims == ("time", "level", "latitude", "longitude")


# 3. several files: the same grid and levels, the same times for every variable


def _write(ds: xr.Dataset, path: Path) -> Path:
    ds.to_netcdf(path)
    return path


def test_files_on_other_grids_or_levels_are_refused_naming_them(tmp_path):
    base = layouts.new_cds(2)
    a = _write(base[["t"]], tmp_path / "a.nc")
    fine = base[["sp"]].interp(latitude=[60.0, 30.0, 0.0, -30.0, -60.0])
    b = _write(fine, tmp_path / "b.nc")
    with pytest.raises(SchemaError, match=r"latitude.*'.*a\.nc'.*'.*b\.nc'") as info:
        from_era5([a, b])
    assert "3 points" in str(info.value) and "5 points" in str(info.value)
    # other levels at other times (p8): the levels are named, not "duplicated values"
    c = _write(
        base[["t"]]
        .sel(pressure_level=[500.0])
        .assign_coords(valid_time=base["valid_time"] + pd.Timedelta("12h")),
        tmp_path / "c.nc",
    )
    with pytest.raises(
        SchemaError, match=r"level.*'.*a\.nc'.*\[500.0, 850.0\].*'.*c\.nc'.*\[500.0\]"
    ):
        from_era5([a, c])


def test_files_at_other_times_are_refused_naming_the_variable(tmp_path):
    base = layouts.new_cds(4)
    a = _write(base[["t"]].isel(valid_time=slice(0, 2)), tmp_path / "a.nc")
    b = _write(base[["sp"]], tmp_path / "b.nc")
    with pytest.raises(SchemaError, match=r"variable 't'.*2 of the 4 times"):
        from_era5([a, b])
    # the same times in every file, or consecutive times of the same variables: combined
    c = _write(base[["t"]].isel(valid_time=slice(2, 4)), tmp_path / "c.nc")
    d = _write(base[["sp", "d2m"]].isel(valid_time=slice(0, 2)), tmp_path / "d.nc")
    e = _write(base[["sp", "d2m"]].isel(valid_time=slice(2, 4)), tmp_path / "e.nc")
    ds = from_era5([a, c, d, e])
    assert ds.sizes["time"] == 4 and not ds.to_array().isnull().any()


def test_hourly_accumulations_beside_six_hourly_fields(tmp_path):
    """Hourly tp (all hours, as the 6-hour totals need) beside 6-hourly instantaneous fields:
    the totals are taken at the 6-hourly times, nothing else is padded."""
    instant = layouts.new_cds(3)  # 00, 06, 12
    hourly = layouts.new_cds(13, freq="1h")[["sp"]].rename(sp="tp")
    hourly["tp"] = (
        hourly["tp"].copy(data=np.ones(hourly["tp"].shape, "float32")).assign_attrs(units="m")
    )
    a = _write(instant, tmp_path / "instant.nc")
    b = _write(hourly, tmp_path / "accum.nc")
    ds = from_era5([a, b])
    assert ds.sizes["time"] == 3
    assert not ds["temperature"].isnull().any()
    total = ds["total_precipitation_6hr"].isel(latitude=0, longitude=0).values
    assert np.isnan(total[0]) and total[1:].tolist() == [6.0, 6.0]
    # instantaneous times after the hourly data end would be NaN: refused by name
    short = _write(hourly.isel(valid_time=slice(0, 7)), tmp_path / "short.nc")
    with pytest.raises(SchemaError, match=r"'tp'.*1 of the 3 times"):
        from_era5([a, short])


def test_cfgrib_accumulations_at_their_own_valid_times_beside_instant_fields(tmp_path):
    """cfgrib's (time, step) accumulations give valid times 01..12; the instantaneous fields
    are at 00..12 hourly: the hours the totals need differ, and nothing is padded."""
    raw = layouts.cfgrib_layout(1)
    time = raw["time"].values[:1]
    step = np.arange(1, 13) * np.timedelta64(1, "h")
    tp = xr.Dataset(
        {"tp": (("time", "step", "latitude", "longitude"), np.ones((1, 12, 3, 4), "f4"),
                {"units": "m"})},
        coords={"time": time, "step": step, "latitude": raw["latitude"],
                "longitude": raw["longitude"],
                "valid_time": (("time", "step"), time[:, None] + step[None, :])},
    )  # fmt: skip
    a = _write(tp, tmp_path / "accum.nc")
    instant = layouts.new_cds(13, freq="1h").assign_coords(
        valid_time=pd.date_range(time[0], periods=13, freq="1h")
    )
    b = _write(instant, tmp_path / "instant.nc")
    ds = from_era5([a, b])
    assert ds.sizes["time"] == 13 and not ds["temperature"].isnull().any()
    total = ds["total_precipitation_6hr"].isel(latitude=0, longitude=0).values
    assert np.isnan(total[:6]).all() and (total[6:] == 6.0).all()


# 4. the files opened are closed by ds.close() and `with`


def _open_fds(directory: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_close_releases_the_files(tmp_path):
    path = layouts.write_new_cds(tmp_path)
    ds = from_era5(path)
    assert ds["temperature"].chunks is not None  # dask-backed: nothing read yet
    float(ds["temperature"].mean())
    ds.close()
    assert _open_fds(tmp_path) == []
    with from_era5([path]) as again:
        float(again["temperature"].mean())
    assert _open_fds(tmp_path) == []
    with pytest.raises(SchemaError):
        from_era5(path, variables=["nothere"])
    assert _open_fds(tmp_path) == []  # closed when refused, too


def test_several_netcdf_files_are_combined_lazily(tmp_path):
    """Several files stay dask-backed when combined (they were all loaded into memory by
    the combination: 12 monthly files of 204 MB took 399 MB)."""
    full = layouts.new_cds(8)
    paths = []
    for k in range(2):
        part = full.isel(valid_time=slice(4 * k, 4 * k + 4))
        paths.append(tmp_path / f"part{k}.nc")
        part.to_netcdf(paths[-1])
    with from_era5(paths) as ds, from_era5(full) as whole:
        assert ds.sizes["time"] == 8
        assert all(ds[v].chunks is not None for v in ds.data_vars)
        xr.testing.assert_equal(ds.load(), whole.load())  # (the expver note is per file)


# 5. a single member other than 0 is kept


def test_a_single_member_other_than_zero_is_kept():
    raw = layouts.new_cds(2).assign_coords(number=3)
    ds = from_era5(raw)
    assert ds["number"].values.tolist() == [3]
    assert ds["temperature"].dims == ("time", "number", "level", "latitude", "longitude")
    assert ds["surface_pressure"].dims == ("time", "number", "latitude", "longitude")
    assert "number" not in from_era5(layouts.new_cds(2)).coords  # the deterministic member


def test_files_holding_the_same_variable_at_the_same_time_are_refused_naming_them(tmp_path):
    """Two downloads that overlap failed with xarray's "Could not find any dimension
    coordinates to use to order the Dataset"."""
    base = layouts.new_cds(3)
    a = _write(base[["t"]].isel(valid_time=slice(0, 2)), tmp_path / "a.nc")
    b = _write(base[["t"]].isel(valid_time=slice(1, 3)), tmp_path / "b.nc")
    with pytest.raises(SchemaError, match=r"'.*a\.nc' and '.*b\.nc' hold the same variables at 1"):
        from_era5([a, b])
    c = _write(base[["t"]].isel(valid_time=slice(2, 3)), tmp_path / "c.nc")
    assert from_era5([a, c]).sizes["time"] == 3


def test_weatherbench2_storage_options_must_be_a_mapping(tmp_path):
    from xfuxi.data.readers import from_weatherbench2

    with pytest.raises(TypeError, match="storage_options must be a mapping"):
        from_weatherbench2(str(tmp_path / "x.zarr"), storage_options="anon")
