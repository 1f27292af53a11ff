"""Readers on files in exactly the layouts delivered by the CDS, cfgrib and WeatherBench2
(issue 25, item 1): one test per layout, and one clear error per wrong input."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import xarray as xr

from tests.data import layouts
from xfuxi.data.readers import file_kind, from_era5, from_weatherbench2
from xfuxi.data.schema import SchemaError, validate

LAT_UP = layouts.LAT_DESC[::-1]


def _has_eccodes() -> str:
    try:
        import cfgrib  # noqa: F401
        import eccodes

        eccodes.codes_get_api_version()
    except (ImportError, RuntimeError, OSError) as err:
        return f"GRIB needs the 'grib' extra (cfgrib, eccodes with its eccodeslib wheel): {err}"
    return ""


needs_grib = pytest.mark.skipif(bool(_has_eccodes()), reason=_has_eccodes() or "ok")


def test_new_cds_netcdf(tmp_path):
    raw = layouts.new_cds()
    ds = from_era5(layouts.write_new_cds(tmp_path))
    assert set(ds.data_vars) == {
        "temperature",
        "geopotential",
        "surface_pressure",
        "2m_dewpoint_temperature",
    }
    assert ds["temperature"].dims == ("time", "level", "latitude", "longitude")
    np.testing.assert_array_equal(ds["latitude"], LAT_UP)
    np.testing.assert_array_equal(ds["temperature"].values, raw["t"].values[:, :, ::-1])
    np.testing.assert_array_equal(ds["2m_dewpoint_temperature"].values, raw["d2m"].values[:, ::-1])
    assert "number" not in ds.coords and "expver" not in ds.coords
    assert ds.attrs["expver"].startswith("ERA5 (expver 0001) at 4 time(s)")


def test_new_cds_expver_along_time_is_said_in_attrs(tmp_path):
    path = layouts.write_new_cds(tmp_path, expver=["0001", "0001", "0005", "0005"])
    ds = from_era5(path)
    assert "ERA5 (expver 0001) at 2 time(s)" in ds.attrs["expver"]
    assert "ERA5T (expver 0005) at 2 time(s) from 2024-05-01T12:00" in ds.attrs["expver"]
    assert not ds["temperature"].isnull().any()


def test_old_cds_netcdf_with_expver_dimension(tmp_path):
    path, expected = layouts.old_cds_expver(tmp_path)
    ds = from_era5(path)
    assert "expver" not in ds.dims and "expver" not in ds.coords
    assert ds["temperature"].dims == ("time", "level", "latitude", "longitude")
    assert int(ds["temperature"].isnull().sum()) == 0
    # packed int16 decodes to float32 (16 bits of data: nothing lost)
    want = expected.values[:, :, ::-1].astype("float32")
    np.testing.assert_array_equal(ds["temperature"].values, want)
    note = ds.attrs["expver"]
    assert note.startswith("ERA5 (expver 0001) where present, else ERA5T (expver 0005)")
    assert "used at 2 time(s) from 2024-05-01T12:00 to 2024-05-01T18:00" in note
    assert ds["level"].attrs["units"] == "hPa"


def test_cds_zip_of_two_netcdfs_and_hourly_precipitation(tmp_path):
    path = layouts.write_cds_zip(tmp_path, n_time=8)
    assert file_kind(path) == "zip"
    ds = from_era5(path)
    assert "total_precipitation_6hr" in ds and "tp" not in ds and "temperature" in ds
    with zipfile.ZipFile(path) as z:
        hourly_path = z.extract("data_stream-oper_stepType-accum.nc", tmp_path / "x")
    with xr.open_dataset(hourly_path) as raw:
        hourly = raw["tp"].values[:, ::-1]
    np.testing.assert_allclose(
        ds["total_precipitation_6hr"].values[5:],
        [hourly[i - 5 : i + 1].sum(0) for i in (5, 6, 7)],
        rtol=1e-6,
    )
    tp6 = ds["total_precipitation_6hr"]
    assert tp6.attrs["units"] == "m" and "6 hours up to and including" in tp6.attrs["accumulation"]
    assert bool(tp6.isel(time=slice(0, 5)).isnull().all())
    assert not tp6.isel(time=slice(5, None)).isnull().any()


def test_zip_parts_on_different_grids_are_named_by_part(tmp_path):
    """A zip's netCDFs on two grids: the error names each part, not the zip twice."""
    instant = layouts.new_cds(2, freq="1h")
    other = instant[["sp"]].isel(longitude=slice(0, 3))
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    instant.to_netcdf(a)
    other.to_netcdf(b)
    path = tmp_path / "download.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.write(a, "one.nc")
        z.write(b, "two.nc")
    with pytest.raises(SchemaError, match=r"part 1 of 2\).*part 2 of 2\)") as err:
        from_era5(path)
    assert "longitude differs" in str(err.value)


def test_hourly_precipitation_is_summed_over_the_six_hours_up_to_time():
    base = layouts.new_cds(8, freq="1h")
    tp = xr.full_like(base["sp"], 0.0).assign_attrs(units="m")
    tp.values[:] = np.arange(8, dtype="float32")[:, None, None] * 1e-4  # hour i holds i e-4 m
    ds = from_era5(base.assign(tp=tp))
    total = ds["total_precipitation_6hr"]
    # at hour 5: hours 0..5 → 15e-4; at hour 7: hours 2..7 → 27e-4
    np.testing.assert_allclose(total.isel(time=5).values, 15e-4, rtol=1e-6)
    np.testing.assert_allclose(total.isel(time=7).values, 27e-4, rtol=1e-6)
    # instantaneous fields keep their values
    np.testing.assert_array_equal(ds["surface_pressure"].values, base["sp"].values[:, ::-1])
    # given as 6-hour totals: renamed, not summed
    six = from_era5(base.assign(tp=tp), accumulation_period="6h")
    np.testing.assert_array_equal(six["total_precipitation_6hr"].values, tp.values[:, ::-1])


def test_accumulations_in_other_units_are_refused_not_relabelled():
    base = layouts.new_cds(8, freq="1h")
    tp = xr.full_like(base["sp"], 0.5).assign_attrs(units="mm")  # was labelled 'm': x1000
    with pytest.raises(SchemaError, match="'tp'.* has units 'mm'; expected 'm'"):
        from_era5(base.assign(tp=tp))
    tisr = xr.full_like(base["sp"], 1.0).assign_attrs(units="MJ m**-2")
    with pytest.raises(SchemaError, match="'tisr'.* has units 'MJ m\\*\\*-2'"):
        from_era5(base.assign(tisr=tisr))


def test_hourly_precipitation_sampled_six_hourly_is_refused_by_name():
    base = layouts.new_cds(8)  # 6-hourly
    tp = xr.full_like(base["sp"], 1e-4).assign_attrs(units="m")
    with pytest.raises(
        SchemaError, match="'tp'.* 1h accumulations .* 6h apart.*download all hours"
    ):
        from_era5(base.assign(tp=tp))


def test_validate_no_longer_labels_hourly_tp_as_a_six_hour_total():
    base = layouts.new_cds(2)
    out = validate(base.assign(tp=xr.full_like(base["sp"], 1e-4).assign_attrs(units="m")))
    assert "tp" in out and "total_precipitation_6hr" not in out


def test_cfgrib_layout_netcdf(tmp_path):
    raw = layouts.cfgrib_layout()
    path = tmp_path / "cfgrib.nc"
    raw.to_netcdf(path)
    with pytest.raises(SchemaError, match="valid_time.*from_era5"):
        validate(raw)
    ds = from_era5(path)
    np.testing.assert_array_equal(ds["time"].values, raw["valid_time"].values)
    np.testing.assert_array_equal(ds["level"], [500, 850])
    np.testing.assert_array_equal(ds["temperature"].values, raw["t"].values[:, ::-1, ::-1])
    # the directions say what was done
    assert ds["latitude"].attrs["stored_direction"] == "increasing"
    assert ds["level"].attrs["stored_direction"] == "increasing"
    assert raw["latitude"].attrs["stored_direction"] == "decreasing"  # input unchanged


def test_cfgrib_accumulations_with_a_step_dimension():
    """ERA5 accumulations from GRIB: (time 06/18, step 1..12) → the hourly valid times."""
    raw = layouts.cfgrib_layout(2)
    time = raw["time"].values[:1]
    step = np.arange(1, 13) * np.timedelta64(1, "h")
    values = np.arange(12, dtype="float32")[None, :, None, None] * np.ones((1, 12, 3, 4), "f4")
    ds = xr.Dataset(
        {"tp": (("time", "step", "latitude", "longitude"), values, {"units": "m"})},
        coords={
            "time": time,
            "step": step,
            "latitude": raw["latitude"],
            "longitude": raw["longitude"],
            "valid_time": (("time", "step"), time[:, None] + step[None, :]),
            "surface": 0.0,
        },
    )
    out = from_era5(ds)
    assert out.sizes["time"] == 12
    np.testing.assert_array_equal(out["time"].values, time[0] + step)
    # cfgrib's NaN padding (steps of a run that were not delivered) holds no data: left out
    padded = from_era5(ds.where(ds["step"] > np.timedelta64(2, "h")))
    np.testing.assert_array_equal(padded["time"].values, time[0] + step[2:])
    np.testing.assert_allclose(
        out["total_precipitation_6hr"].isel(time=11).values, 6 + 7 + 8 + 9 + 10 + 11
    )


@needs_grib
def test_grib_file(tmp_path):
    path, expected = layouts.write_grib(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    ds = from_era5(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no .idx beside the file
    assert set(ds.data_vars) == {"temperature", "geopotential", "surface_pressure"}
    assert ds.sizes["time"] == 2 and ds["level"].values.tolist() == [500, 850]
    np.testing.assert_allclose(ds["temperature"].values, expected["t"][:, :, ::-1], rtol=1e-5)
    np.testing.assert_allclose(ds["surface_pressure"].values, expected["sp"][:, ::-1], rtol=1e-5)
    assert ds["latitude"].attrs["stored_direction"] == "increasing"


@needs_grib
def test_grib_hourly_precipitation(tmp_path):
    ds = from_era5(layouts.write_grib_precipitation(tmp_path))
    times = np.datetime64("2020-01-01T07") + np.arange(24) * np.timedelta64(1, "h")
    np.testing.assert_array_equal(ds["time"].values, times.astype("datetime64[ns]"))
    total = ds["total_precipitation_6hr"].isel(latitude=0, longitude=0).values
    assert np.isnan(total[:5]).all()
    # 12 UTC: the hours 07..12 of the 06 UTC run; 20 UTC: 15..18 (06 run) and 19..20 (18 run)
    assert total[5] == sum(600 + s for s in range(1, 7))
    assert total[13] == sum(600 + s for s in range(9, 13)) + 1801 + 1802


def test_several_files_are_combined(tmp_path):
    a = tmp_path / "a.nc"
    b = tmp_path / "b.nc"
    full = layouts.new_cds(4)
    full.isel(valid_time=slice(0, 2)).to_netcdf(a)
    full.isel(valid_time=slice(2, 4)).to_netcdf(b)
    ds = from_era5([a, b])
    assert ds.sizes["time"] == 4
    # each file's expver is said
    assert f"from '{a}'" in ds.attrs["expver"] and f"from '{b}'" in ds.attrs["expver"]
    np.testing.assert_array_equal(ds["temperature"].values, full["t"].values[:, :, ::-1])


def test_surface_geopotential_is_not_geopotential(tmp_path):
    base = layouts.new_cds(2)
    orog = base["sp"].isel(valid_time=0, drop=True).rename("z").assign_attrs(units="m**2 s**-2")
    ds = from_era5(base.drop_vars("z").assign(z=orog))
    assert "geopotential_at_surface" in ds and "geopotential" not in ds


def test_weatherbench2_is_lazy_with_storage_options(tmp_path):
    ds = validate(layouts.new_cds(3))
    store = tmp_path / "wb2.zarr"
    ds.to_zarr(store, zarr_format=2, consolidated=True)
    out = from_weatherbench2(store)
    assert out["temperature"].chunks is not None  # dask: nothing loaded yet
    xr.testing.assert_equal(out.load(), ds)
    # a remote store goes through fsspec with the storage options
    remote = from_weatherbench2(f"file://{store}", storage_options={"auto_mkdir": False})
    xr.testing.assert_equal(remote.load(), ds)


@pytest.mark.parametrize(
    ("make", "reader", "message"),
    [
        ("zarr", from_era5, r"is a zarr store; from_era5 reads ERA5 .*from_weatherbench2"),
        ("netcdf", from_weatherbench2, r"is a netcdf file; from_weatherbench2 reads .*from_era5"),
        ("text", from_era5, r"is not GRIB, netCDF or zip \(unknown\); expected ERA5"),
        ("text", from_weatherbench2, r"is a unknown file; from_weatherbench2 reads"),
        ("dir", from_weatherbench2, r"directory without zarr metadata"),
        ("zip_bad", from_era5, r"member 'notes.txt' of the zip file .* is not netCDF or GRIB"),
    ],
)
def test_wrong_input_is_refused_naming_the_file(tmp_path, make, reader, message):
    if make == "zarr":
        path = tmp_path / "store.zarr"
        validate(layouts.new_cds(2)).to_zarr(path, zarr_format=2)
    elif make == "netcdf":
        path = layouts.write_new_cds(tmp_path)
    elif make == "text":
        path = tmp_path / "readme.nc"
        path.write_text("not data")
    elif make == "dir":
        path = tmp_path / "empty"
        path.mkdir()
    else:
        path = tmp_path / "download.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("notes.txt", "hello")
    with pytest.raises(SchemaError, match=message) as info:
        reader(path)
    assert str(path) in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.nc"):
        from_era5(tmp_path / "nothere.nc")


def test_cfgrib_ensemble_members_become_number():
    """ERA5's ensemble (EDA) from GRIB: ``number`` is a dimension and is kept."""
    raw = layouts.cfgrib_layout(2)
    members = xr.concat([raw, raw + 1.0], dim="number").assign_coords(number=[0, 1])
    members["latitude"].attrs = raw["latitude"].attrs
    ds = from_era5(members)
    assert ds["temperature"].dims == ("time", "number", "level", "latitude", "longitude")
    np.testing.assert_array_equal(
        ds["temperature"].sel(number=1).values - ds["temperature"].sel(number=0).values, 1.0
    )
