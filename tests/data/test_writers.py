"""Writers: forecasts and analyses to a WeatherBench2 zarr store (issue 25, item 4)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from xfuxi.data.readers import from_weatherbench2
from xfuxi.data.schema import SchemaError
from xfuxi.data.writers import (
    WEATHERBENCH2_KIND,
    to_weatherbench2_layout,
    write_netcdf,
    write_weatherbench2,
)
from xfuxi.files import MARKER, OutputExistsError

LAT = np.array([-60.0, 0.0, 60.0])
LON = np.array([0.0, 90.0, 180.0, 270.0])


def _forecast(members: int | None = 2) -> xr.Dataset:
    """An ensemble forecast as xfuxi's forecasting code returns it (member dim before lead)."""
    rng = np.random.default_rng(1)
    time = pd.date_range("2020-01-01", periods=2, freq="12h").values
    lead = (np.arange(1, 4) * np.timedelta64(6, "h")).astype("timedelta64[ns]")
    dims = ["time", "number", "prediction_timedelta", "level", "latitude", "longitude"]
    shape = [2, members or 1, 3, 2, LAT.size, LON.size]
    if members is None:
        dims.pop(1)
        shape.pop(1)
    coords = {
        "time": time,
        "prediction_timedelta": lead,
        "level": [500.0, 850.0],
        "latitude": LAT,
        "longitude": LON,
    }
    if members is not None:
        coords["number"] = np.arange(members)
    t = xr.DataArray(250.0 + rng.normal(size=shape), dims=dims, coords=coords)
    z = xr.DataArray(5e4 + rng.normal(size=shape), dims=dims, coords=coords)
    ds = xr.Dataset({"temperature": t, "geopotential": z})
    ds.attrs["model"] = "tiny"
    return ds


def test_layout_orders_dims_and_sets_attributes():
    ds = _forecast()
    out = to_weatherbench2_layout(ds)
    assert out["temperature"].dims == (
        "time",
        "prediction_timedelta",
        "number",
        "level",
        "latitude",
        "longitude",
    )
    assert out["temperature"].attrs["units"] == "K"
    assert out["geopotential"].attrs["units"] == "m**2 s**-2"
    assert out["latitude"].attrs["units"] == "degrees_north"
    assert out["longitude"].attrs["units"] == "degrees_east"
    assert out["level"].attrs["units"] == "hPa"
    assert out.attrs["xfuxi_layout"] == "weatherbench2" and out.attrs["model"] == "tiny"
    # the input is not modified
    assert "units" not in ds["temperature"].attrs and "xfuxi_layout" not in ds.attrs
    assert ds["temperature"].dims[1] == "number"


def test_layout_renames_short_names_and_flips_latitude():
    ds = _forecast(None).rename(temperature="t", latitude="lat").isel(lat=slice(None, None, -1))
    out = to_weatherbench2_layout(ds)
    assert "temperature" in out and "t" not in out
    assert out["latitude"].values.tolist() == LAT.tolist()
    np.testing.assert_array_equal(out["temperature"].values, _forecast(None)["temperature"].values)


def test_layout_refuses_a_foreign_dimension_by_name():
    ds = _forecast().expand_dims(expver=["0001", "0005"])
    with pytest.raises(SchemaError, match="expver"):
        to_weatherbench2_layout(ds)


@pytest.mark.parametrize("members", [None, 2])
def test_round_trip_through_the_store(tmp_path, members):
    ds = _forecast(members)
    store = write_weatherbench2(ds, tmp_path / "fc.zarr")
    back = from_weatherbench2(store).load()
    expected = to_weatherbench2_layout(ds)
    xr.testing.assert_identical(back.drop_attrs(), expected.drop_attrs())
    assert back["prediction_timedelta"].dtype.kind == "m"
    assert back.attrs["model"] == "tiny"
    # WeatherBench2's tools read it with plain xarray: consolidated zarr v2, time chunks of 1
    group = zarr.open_group(str(store), mode="r")
    assert group["temperature"].chunks[0] == 1
    assert (store / ".zmetadata").exists()
    marker = json.loads((store / MARKER).read_text())
    assert marker["kind"] == WEATHERBENCH2_KIND


def test_never_replaces_what_xfuxi_did_not_write(tmp_path):
    ds = _forecast(None)
    foreign = tmp_path / "user.zarr"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("x")
    with pytest.raises(OutputExistsError):
        write_weatherbench2(ds, foreign, overwrite=True)
    assert (foreign / "precious.txt").read_text() == "x"
    store = write_weatherbench2(ds, tmp_path / "fc.zarr")
    with pytest.raises(OutputExistsError):
        write_weatherbench2(ds, store)
    write_weatherbench2(ds + 1.0, store, overwrite=True)
    back = from_weatherbench2(store)
    np.testing.assert_allclose(back["temperature"].values, ds["temperature"].values + 1.0)


def test_chunks_are_checked_and_applied(tmp_path):
    ds = _forecast(None)
    with pytest.raises(SchemaError, match="member"):
        write_weatherbench2(ds, tmp_path / "a.zarr", chunks={"member": 1})
    store = write_weatherbench2(ds, tmp_path / "b.zarr", chunks={"time": 2, "level": 1})
    group = zarr.open_group(str(store), mode="r")
    assert group["temperature"].chunks[:4] == (2, 3, 1, 3)
    # index coordinates whole, as for dask data (the time coordinate was one chunk per
    # time: a file each, and a long record opened 100 times slower)
    for coord in ("time", "level", "latitude", "longitude"):
        assert group[coord].chunks == group[coord].shape, coord
    lazy = write_weatherbench2(ds.chunk(), tmp_path / "c.zarr", chunks={"time": 2, "level": 1})
    assert zarr.open_group(str(lazy), mode="r")["time"].chunks == group["time"].chunks


def test_netcdf_is_cf_compliant_and_round_trips(tmp_path):
    ds = _forecast(2)
    path = write_netcdf(ds, tmp_path / "fc.nc")
    with xr.open_dataset(path) as back:
        back = back.load()
    assert back.attrs["Conventions"] == "CF-1.8"
    assert back["temperature"].attrs["standard_name"] == "air_temperature"
    assert back["geopotential"].attrs["units"] == "m2 s-2"  # UDUNITS spelling
    assert back["time"].attrs["standard_name"] == "forecast_reference_time"
    assert back["prediction_timedelta"].attrs["standard_name"] == "forecast_period"
    assert back["valid_time"].attrs["standard_name"] == "time"
    np.testing.assert_array_equal(
        back["valid_time"].values,
        (back["time"] + back["prediction_timedelta"]).transpose(*back["valid_time"].dims).values,
    )
    assert back["level"].attrs["axis"] == "Z" and back["latitude"].attrs["axis"] == "Y"
    np.testing.assert_array_equal(
        back["temperature"].values, to_weatherbench2_layout(ds)["temperature"].values
    )
    assert back["temperature"].dims == to_weatherbench2_layout(ds)["temperature"].dims
    # the analysis read back as canonical data equals what was written
    analysis = ds.isel(prediction_timedelta=0, number=0, drop=True)
    p2 = write_netcdf(analysis, tmp_path / "an.nc")
    with xr.open_dataset(p2) as back2:
        np.testing.assert_array_equal(back2["temperature"].values, analysis["temperature"].values)
        assert back2["time"].attrs["axis"] == "T" and "valid_time" not in back2


def test_dask_data_with_uneven_chunks_along_any_dim(tmp_path):
    ds = _forecast(None).chunk({"time": 1, "latitude": (1, LAT.size - 1)})
    store = write_weatherbench2(ds, tmp_path / "uneven.zarr")  # zarr refused uneven chunks
    back = from_weatherbench2(store)
    np.testing.assert_array_equal(back["temperature"].values, ds["temperature"].values)


def test_a_forecast_netcdf_reads_back_through_xfuxi(tmp_path):
    # the writer's valid_time(time, prediction_timedelta) is a derived coordinate, not
    # another name for time: reading the file back was refused ("has both 'valid_time' and
    # 'time'") by validate, regrid and the writers
    import xfuxi
    from xfuxi.data.schema import validate

    ds = _forecast(None)
    path = write_netcdf(ds, tmp_path / "fc.nc")
    with xr.open_dataset(path) as back:
        assert back["valid_time"].dims == ("time", "prediction_timedelta")
        checked = validate(back)
        np.testing.assert_array_equal(checked["temperature"].values,
                                      validate(ds)["temperature"].values)  # fmt: skip
        again = write_netcdf(back, tmp_path / "again.nc")
        assert xfuxi.regrid(back, "T21")["temperature"].sizes["latitude"] == 32
    with xr.open_dataset(again) as twice:
        np.testing.assert_array_equal(twice["temperature"].values, back["temperature"].values)
    # an analysis whose valid_time is another name for time is still renamed
    an = ds.isel(prediction_timedelta=0, drop=True).rename(time="valid_time")
    assert "time" in validate(an).dims


def test_netcdf_never_replaces_a_foreign_file(tmp_path):
    ds = _forecast(None)
    foreign = tmp_path / "user.nc"
    xr.Dataset({"x": ("a", [1.0])}).to_netcdf(foreign)
    before = foreign.read_bytes()
    with pytest.raises(OutputExistsError, match="not written by xfuxi"):
        write_netcdf(ds, foreign, overwrite=True)
    with pytest.raises(OutputExistsError, match="not written by xfuxi"):  # not "overwrite=True"
        write_netcdf(ds, foreign)
    assert foreign.read_bytes() == before
    dangling = tmp_path / "link.nc"
    dangling.symlink_to(tmp_path / "nowhere.nc")
    with pytest.raises(OutputExistsError, match="is a link"):
        write_netcdf(ds, dangling, overwrite=True)
    assert dangling.is_symlink() and not (tmp_path / "nowhere.nc").exists()
    path = write_netcdf(ds, tmp_path / "fc.nc")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_netcdf(ds, path)
    write_netcdf(ds + 1.0, path, overwrite=True)
    with xr.open_dataset(path) as back:
        np.testing.assert_allclose(
            back["temperature"].values, to_weatherbench2_layout(ds)["temperature"].values + 1
        )
    # float16 (a raw netCDF4 TypeError) is written as float32, exactly; a missing folder is
    # made (the error named xfuxi's hidden temporary file)
    with np.errstate(over="ignore"):
        half = (ds.drop_vars("geopotential") - 200.0).astype("float16")
    path16 = write_netcdf(half, tmp_path / "new" / "half.nc")
    with xr.open_dataset(path16) as back:
        assert back["temperature"].dtype == np.float32
        np.testing.assert_array_equal(
            back["temperature"].values,
            to_weatherbench2_layout(half)["temperature"].values.astype("float32"),
        )
    # a user's copy of an xfuxi file, saved by xarray, carries its attributes (it was
    # replaced with overwrite=True): it is not xfuxi's
    with xr.open_dataset(path) as back:
        back.isel(level=[0]).to_netcdf(tmp_path / "mine.nc")
    mine = (tmp_path / "mine.nc").read_bytes()
    with pytest.raises(OutputExistsError, match="not written by xfuxi"):
        write_netcdf(ds, tmp_path / "mine.nc", overwrite=True)
    assert (tmp_path / "mine.nc").read_bytes() == mine
