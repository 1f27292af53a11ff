"""Metadata and file handling: packing, CF names, writer records, codecs, paths (audit 60)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from xfuxi.data import readers, writers

LAT = np.array([60.0, 0.0, -60.0])
LON = np.array([0.0, 90.0, 180.0, 270.0])


def _packed_era5(path, start, lo, hi):
    """A CDS netCDF before 2024: t2m packed as int16 with this file's own scale and offset."""
    times = pd.date_range(start, periods=4, freq="6h")
    values = np.linspace(lo, hi, 4 * 3 * 4).reshape(4, 3, 4).astype("float32")
    ds = xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), values, {"units": "K"})},
        coords={
            "time": times,
            "latitude": ("latitude", LAT, {"units": "degrees_north"}),
            "longitude": ("longitude", LON, {"units": "degrees_east"}),
        },
    )
    encoding = {
        "dtype": "int16",
        "scale_factor": (hi - lo) / 65532,
        "add_offset": (hi + lo) / 2,
        "_FillValue": np.int16(-32767),
    }
    ds.to_netcdf(path, encoding={"t2m": encoding})
    return path


# ----------------------------------------------------------------------------- 1. packing


def test_from_era5_of_several_packed_files_writes_every_value(tmp_path):
    jan = _packed_era5(tmp_path / "jan.nc", "2024-01-01", 240.0, 250.0)
    jul = _packed_era5(tmp_path / "jul.nc", "2024-07-01", 290.0, 310.0)
    with xfuxi.from_era5([jan, jul]) as ds:
        t2m = ds["2m_temperature"]
        for key in ("dtype", "scale_factor", "add_offset", "_FillValue", "missing_value"):
            assert key not in t2m.encoding
        ds.to_netcdf(tmp_path / "both.nc")
        with xr.open_dataset(tmp_path / "both.nc") as back:
            # January's packing clipped July's values at 250 K
            assert float(back["2m_temperature"].max()) == pytest.approx(310.0)
            np.testing.assert_allclose(back["2m_temperature"].values, t2m.values, atol=1e-3)


def test_from_era5_of_one_packed_file_drops_the_packing(tmp_path):
    jan = _packed_era5(tmp_path / "jan.nc", "2024-01-01", 240.0, 250.0)
    with xfuxi.from_era5(jan) as ds:
        assert "scale_factor" not in ds["2m_temperature"].encoding
        assert "dtype" not in ds["2m_temperature"].encoding
        warmer = ds.load().copy(deep=True)  # a copy keeps the encoding
        warmer["2m_temperature"].values[:] += 30.0  # outside the range the file was packed for
        warmer.to_netcdf(tmp_path / "warmer.nc")
        with xr.open_dataset(tmp_path / "warmer.nc") as back:
            assert float(back["2m_temperature"].max()) == pytest.approx(280.0)


# ------------------------------------------------------------------ 2-4. CF metadata, time


def _field(name="temperature", units="K", dims=("time", "latitude", "longitude"), **coords):
    shape = tuple(
        {"time": 2, "prediction_timedelta": 2, "latitude": 3, "longitude": 4}[d] for d in dims
    )
    base = {
        "time": pd.date_range("2020-01-01", periods=2, freq="6h"),
        "prediction_timedelta": pd.to_timedelta([6, 12], "h"),
        "latitude": [-45.0, 0.0, 45.0],
        "longitude": [0.0, 90.0, 180.0, 270.0],
    }
    return xr.Dataset(
        {name: (dims, np.full(shape, 0.5), {"units": units})},
        coords={d: base[d] for d in dims} | coords,
    )


@pytest.mark.parametrize(
    ("name", "units", "standard_name"),
    [
        ("total_precipitation_6hr", "m", "lwe_thickness_of_precipitation_amount"),
        ("land_sea_mask", "1", "land_area_fraction"),
    ],
)
def test_cf_standard_names_match_the_units(name, units, standard_name):
    assert writers.CF_STANDARD_NAMES[name] == standard_name
    out = writers.to_cf_layout(_field(name, units))
    assert out[name].attrs["standard_name"] == standard_name


def test_write_netcdf_does_not_label_an_increment_as_the_field(tmp_path):
    inc = _field().assign_attrs(description="analysis minus background at t0")
    path = xfuxi.write_netcdf(inc, tmp_path / "increment.nc")
    with xr.open_dataset(path) as back:
        attrs = back["temperature"].attrs
        assert attrs["units"] == "K"
        assert "standard_name" not in attrs and "long_name" not in attrs


def test_write_netcdf_does_not_label_a_score_as_the_field(tmp_path):
    fc = _field()
    truth = fc + 1.0
    score = xfuxi.bias(fc, truth, dim=["time"])
    named = score.copy()
    named["temperature"].attrs["long_name"] = "my bias"  # the user's own: kept
    for label, obj in (("bias", score), ("named", named)):
        path = xfuxi.write_netcdf(obj, tmp_path / f"{label}.nc")
        with xr.open_dataset(path) as back:
            attrs = back["temperature"].attrs
            assert attrs["metric"] == "bias" and "standard_name" not in attrs
            assert attrs.get("long_name") == ("my bias" if label == "named" else None)


def test_write_netcdf_still_labels_the_field(tmp_path):
    path = xfuxi.write_netcdf(_field(), tmp_path / "field.nc")
    with xr.open_dataset(path) as back:
        assert back["temperature"].attrs["standard_name"] == "air_temperature"
        assert back["temperature"].attrs["long_name"] == "air temperature"


def test_write_netcdf_of_lead_times_without_time(tmp_path):
    ds = _field(dims=("prediction_timedelta", "latitude", "longitude"))
    path = xfuxi.write_netcdf(ds, tmp_path / "bias.nc")
    with xr.open_dataset(path) as back:
        assert "time" not in back.variables and "valid_time" not in back.variables
        assert back["prediction_timedelta"].attrs["standard_name"] == "forecast_period"
        np.testing.assert_array_equal(back["temperature"].values, ds["temperature"].values)


# ------------------------------------------------------------------- 5. writer records


def test_write_weatherbench2_of_a_netcdf_does_not_copy_its_writer_record(tmp_path):
    nc = xfuxi.write_netcdf(_field(), tmp_path / "fc.nc")
    with xr.open_dataset(nc) as ds:
        assert ds.attrs["xfuxi_writer"] == "xfuxi.write_netcdf"
        store = xfuxi.write_weatherbench2(ds, tmp_path / "fc.zarr")
    with xr.open_zarr(store) as back:
        assert "xfuxi_writer" not in back.attrs and "xfuxi_file" not in back.attrs
    # written again as netCDF, the store's data record their new file
    with xfuxi.from_weatherbench2(store) as back:
        again = xfuxi.write_netcdf(back, tmp_path / "again.nc")
    with xr.open_dataset(again) as ds:
        assert ds.attrs["xfuxi_file"] == "again.nc"


# ------------------------------------------------------------------ 6. zarr-v2 codecs


@pytest.fixture
def v2_store(tmp_path):
    """A zarr-v2 store (as WeatherBench2's and write_weatherbench2's), with its codecs."""
    ds = _field(longitude=("longitude", [0.0, 90.0, 180.0, 270.0], {"units": "degrees_east"}))
    ds = ds.assign(temperature=ds["temperature"] + 250.0).assign_attrs()
    return xfuxi.write_weatherbench2(ds, tmp_path / "wb2.zarr")


def _to_zarr(ds, path):
    import warnings

    with warnings.catch_warnings():  # zarr 3 on consolidated metadata of format 3
        warnings.simplefilter("ignore")
        ds.to_zarr(path)
    with xr.open_zarr(path) as back:
        return back.load()


def test_data_read_from_a_v2_store_write_to_zarr(tmp_path, v2_store):
    with xfuxi.from_weatherbench2(v2_store) as ds:
        enc = ds["temperature"].encoding
        assert not {"compressor", "compressors", "filters", "chunks"} & set(enc)
        assert ds["time"].encoding.get("units")  # how times are stored is kept
        back = _to_zarr(ds.isel(time=[0]), tmp_path / "sub.zarr")
        assert float(back["temperature"].mean()) == pytest.approx(250.5)
    with xr.open_zarr(v2_store) as raw:
        assert raw["temperature"].encoding.get("compressors")  # the codecs validate drops
        _to_zarr(xfuxi.validate(raw), tmp_path / "valid.zarr")


def test_regrid_of_a_v2_store_writes_to_zarr(tmp_path, v2_store):
    with xr.open_zarr(v2_store) as raw:
        out = xfuxi.regrid(raw, {"latitude": [-30.0, 30.0], "longitude": [0.0, 180.0]},
                           method="bilinear")  # fmt: skip
        assert all(not out[v].encoding for v in out.variables)
        back = _to_zarr(out, tmp_path / "regridded.zarr")
        assert back.sizes["latitude"] == 2


def test_climatology_of_a_v2_store_writes_to_zarr(tmp_path, v2_store):
    with xr.open_zarr(v2_store) as raw:
        clim = xfuxi.climatology(raw)
        assert all(not clim[v].encoding for v in clim.variables)
        _to_zarr(clim, tmp_path / "clim.zarr")


def test_save_stats_inside_a_file_names_the_file(tmp_path):
    (tmp_path / "notes.txt").write_text("a user's file")
    stats = xr.Dataset({"mean": ("x", [1.0])})
    with pytest.raises(FileExistsError, match="notes.txt, which is a file, not a folder"):
        xfuxi.save_stats(stats, tmp_path / "notes.txt" / "stats.nc")


# ------------------------------------------------------------------- 8. "~" in readers


def test_readers_expand_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path.parent)  # not the home folder
    xfuxi.write_weatherbench2(_field(), "~/wb2.zarr")
    _packed_era5(tmp_path / "a.nc", "2024-01-01", 240.0, 250.0)
    with xfuxi.from_weatherbench2("~/wb2.zarr") as ds:
        assert ds.sizes["time"] == 2
    with xfuxi.from_era5("~/a.nc") as ds, xfuxi.from_era5(["~/a.nc"]) as listed:
        assert ds.sizes["time"] == 4 and listed.sizes["time"] == 4
    assert readers.file_kind("~/a.nc") == "netcdf"
