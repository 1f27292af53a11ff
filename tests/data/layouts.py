"""Tiny files written in exactly the layouts that the CDS, cfgrib and WeatherBench2 deliver.

Each writer takes a directory and returns the path it wrote. The values are known
(``expected``), so a reader's result can be compared exactly.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

LEVELS = [500, 850]
LAT_DESC = np.array([60.0, 0.0, -60.0])  # as the CDS stores it: north to south
LON = np.array([0.0, 90.0, 180.0, 270.0])


def field(n_time: int, offset: float, levels: bool = True, seed: int = 0) -> np.ndarray:
    """Values (time, [level,] lat, lon) around ``offset``, reproducible."""
    rng = np.random.default_rng(seed)
    shape = (n_time, len(LEVELS), LAT_DESC.size, LON.size) if levels else (n_time, 3, 4)
    return (offset + rng.normal(size=shape)).astype("float32")


def times(n: int, freq: str = "6h") -> pd.DatetimeIndex:
    return pd.date_range("2024-05-01", periods=n, freq=freq)


def new_cds(n_time: int = 4, expver: list[str] | None = None, freq: str = "6h") -> xr.Dataset:
    """The CDS netCDF layout since 2024: valid_time, pressure_level, expver along time."""
    dims3 = ("valid_time", "pressure_level", "latitude", "longitude")
    dims2 = ("valid_time", "latitude", "longitude")
    ds = xr.Dataset(
        {
            "t": (dims3, field(n_time, 250.0, seed=1), {"units": "K", "GRIB_paramId": 130}),
            "z": (dims3, field(n_time, 5e4, seed=2), {"units": "m**2 s**-2"}),
            "sp": (dims2, field(n_time, 1e5, levels=False, seed=3), {"units": "Pa"}),
            "d2m": (dims2, field(n_time, 270.0, levels=False, seed=4), {"units": "K"}),
        },
        coords={
            "valid_time": ("valid_time", times(n_time, freq)),
            "pressure_level": ("pressure_level", np.array(LEVELS, float), {"units": "hPa"}),
            "latitude": ("latitude", LAT_DESC, {"units": "degrees_north"}),
            "longitude": ("longitude", LON, {"units": "degrees_east"}),
            "number": 0,
            "expver": ("valid_time", np.array(expver or ["0001"] * n_time)),
        },
        attrs={"Conventions": "CF-1.7", "institution": "European Centre for Medium-Range"},
    )
    return ds


def write_new_cds(directory: Path, **kwargs) -> Path:
    path = Path(directory) / "era5_new.nc"
    new_cds(**kwargs).to_netcdf(path)
    return path


def old_cds_expver(directory: Path) -> tuple[Path, xr.Dataset]:
    """The CDS netCDF layout before 2024 with ERA5 and ERA5T mixed: ``expver`` is a dim.

    Four times: ERA5 (expver 1) has the first two, ERA5T (expver 5) the last two; each is
    NaN where the other holds the data. Packed as short integers, ``level`` in millibars.
    """
    n = 4
    t = field(n, 250.0, seed=5)
    era5 = t.copy()
    era5[2:] = np.nan
    era5t = t.copy()
    era5t[:2] = np.nan
    data = np.stack([era5, era5t], axis=1)  # (time, expver, level, lat, lon)
    ds = xr.Dataset(
        {"t": (("time", "expver", "level", "latitude", "longitude"), data, {"units": "K"})},
        coords={
            "time": times(n),
            "expver": np.array([1, 5], dtype="int32"),
            "level": ("level", np.array(LEVELS, dtype="int32"), {"units": "millibars"}),
            "latitude": ("latitude", LAT_DESC, {"units": "degrees_north"}),
            "longitude": ("longitude", LON, {"units": "degrees_east"}),
        },
    )
    path = Path(directory) / "era5_old_expver.nc"
    scale = float((np.nanmax(t) - np.nanmin(t)) / 60000)
    encoding = {
        "t": {
            "dtype": "int16",
            "scale_factor": scale,
            "add_offset": float(np.nanmean(t)),
            "_FillValue": -32767,
        }
    }
    ds.to_netcdf(path, format="NETCDF3_64BIT", encoding=encoding)
    with xr.open_dataset(path) as packed:  # the values as packed, for comparison
        expected = packed["t"].max("expver").load()
    return path, expected


def write_cds_zip(directory: Path, n_time: int = 8) -> Path:
    """The CDS zip: instantaneous fields in one netCDF, accumulated (hourly tp) in another."""
    directory = Path(directory)
    instant = new_cds(n_time, freq="1h")
    rng = np.random.default_rng(7)
    tp = rng.uniform(0, 1e-3, size=(n_time, 3, 4)).astype("float32")
    accum = xr.Dataset(
        {"tp": (("valid_time", "latitude", "longitude"), tp, {"units": "m"})},
        coords={
            "valid_time": instant["valid_time"],
            "latitude": instant["latitude"],
            "longitude": instant["longitude"],
            "number": 0,
            "expver": instant["expver"],
        },
    )
    a, b = directory / "instant.nc", directory / "accum.nc"
    instant.to_netcdf(a)
    accum.to_netcdf(b)
    path = directory / "download.zip"  # the CDS names it .zip or, confusingly, .nc
    with zipfile.ZipFile(path, "w") as z:
        z.write(a, "data_stream-oper_stepType-instant.nc")
        z.write(b, "data_stream-oper_stepType-accum.nc")
    a.unlink()
    b.unlink()
    return path


def cfgrib_layout(n_time: int = 3) -> xr.Dataset:
    """What cfgrib yields (and writes to netCDF): time, step, valid_time, isobaricInhPa."""
    t = field(n_time, 250.0, seed=8)[:, ::-1]  # cfgrib orders levels 850, 500
    time = times(n_time)
    return xr.Dataset(
        {"t": (("time", "isobaricInhPa", "latitude", "longitude"), t, {"units": "K"})},
        coords={
            "number": 0,
            "time": ("time", time),
            "step": np.timedelta64(0, "ns"),
            "isobaricInhPa": (
                "isobaricInhPa",
                np.array(LEVELS[::-1], float),
                {"units": "hPa", "stored_direction": "decreasing"},
            ),
            "latitude": (
                "latitude",
                LAT_DESC,
                {"units": "degrees_north", "stored_direction": "decreasing"},
            ),
            "longitude": ("longitude", LON, {"units": "degrees_east"}),
            "valid_time": ("time", time),
        },
        attrs={"GRIB_edition": 1, "Conventions": "CF-1.7"},
    )


def write_grib(directory: Path, n_time: int = 2) -> tuple[Path, dict]:
    """A GRIB2 file written with eccodes: t and z on two levels and sp, ``n_time`` times."""
    import eccodes

    path = Path(directory) / "era5.grib"
    expected: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(9)
    grid = {
        "Ni": LON.size,
        "Nj": LAT_DESC.size,
        "latitudeOfFirstGridPointInDegrees": 60.0,
        "latitudeOfLastGridPointInDegrees": -60.0,
        "longitudeOfFirstGridPointInDegrees": 0.0,
        "longitudeOfLastGridPointInDegrees": 270.0,
        "iDirectionIncrementInDegrees": 90.0,
        "jDirectionIncrementInDegrees": 60.0,
    }

    def message(f, sample, short, when, values, level=None):
        h = eccodes.codes_grib_new_from_samples(sample)
        try:
            for key, value in grid.items():
                eccodes.codes_set(h, key, value)
            eccodes.codes_set(h, "dataDate", int(when.strftime("%Y%m%d")))
            eccodes.codes_set(h, "dataTime", int(when.strftime("%H%M")))
            eccodes.codes_set(h, "shortName", short)
            if level is not None:
                eccodes.codes_set(h, "level", level)
            eccodes.codes_set_values(h, values.astype("float64").ravel())
            eccodes.codes_write(h, f)
        finally:
            eccodes.codes_release(h)

    typical = {"t": 250.0, "z": 5e4, "sp": 1e5}
    with open(path, "wb") as f:
        for i, when in enumerate(times(n_time)):
            for short in ("t", "z"):
                for j, level in enumerate(LEVELS):
                    values = typical[short] + rng.normal(size=(3, 4))
                    expected.setdefault(short, np.zeros((n_time, len(LEVELS), 3, 4)))
                    expected[short][i, j] = values
                    message(f, "regular_ll_pl_grib2", short, when, values, level)
            values = typical["sp"] + rng.normal(size=(3, 4))
            expected.setdefault("sp", np.zeros((n_time, 3, 4)))[i] = values
            message(f, "regular_ll_sfc_grib2", "sp", when, values)
    return path, expected


def write_grib_precipitation(directory: Path) -> Path:
    """ERA5's hourly precipitation as GRIB holds it: runs at 06 and 18 UTC, steps 1–12 h,
    each message the accumulation of its last hour (value ``100 * run hour + step``)."""
    import eccodes

    path = Path(directory) / "era5_tp.grib"
    with open(path, "wb") as f:
        for hour in (6, 18):
            for step in range(1, 13):
                h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
                try:
                    for key, value in {
                        "Ni": LON.size,
                        "Nj": LAT_DESC.size,
                        "latitudeOfFirstGridPointInDegrees": 60.0,
                        "latitudeOfLastGridPointInDegrees": -60.0,
                        "longitudeOfFirstGridPointInDegrees": 0.0,
                        "longitudeOfLastGridPointInDegrees": 270.0,
                        "iDirectionIncrementInDegrees": 90.0,
                        "jDirectionIncrementInDegrees": 60.0,
                        "dataDate": 20200101,
                        "dataTime": hour * 100,
                        "shortName": "tp",
                        "stepType": "accum",
                        "startStep": step - 1,
                        "endStep": step,
                    }.items():
                        eccodes.codes_set(h, key, value)
                    eccodes.codes_set_values(h, np.full(12, 100.0 * hour + step))
                    eccodes.codes_write(h, f)
                finally:
                    eccodes.codes_release(h)
    return path
