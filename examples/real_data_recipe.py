"""Real data all the way: an ERA5 file → regrid → channels and statistics → train a FuXi
model → forecast → verify with WeatherBench2's definitions → write the forecast back out.

Usage::

    python examples/real_data_recipe.py era5.nc --out results/    # a file from the CDS
    python examples/real_data_recipe.py --sample --out results/   # a sample file, made here

The ERA5 file is what the Copernicus CDS delivers for a request of the pressure-level
variables geopotential, temperature, u/v wind and specific humidity at a few levels plus
surface pressure (single levels), 6-hourly: GRIB, netCDF or the CDS zip (see the data page
of the documentation, docs/data.md). ``--sample`` writes a small file in exactly the CDS's
netCDF layout (``valid_time``, ``pressure_level``, latitude north to south, longitudes
−180..180, short names, ``expver``, ``number``) with travelling waves in it, for trying the
recipe without a CDS account; no real ERA5 data are shipped with xfuxi.

Each step is one xfuxi call:

1. ``xfuxi.from_era5``: the canonical layout (long names, ``time``, ``level``, latitude
   ascending, longitudes 0..360);
2. ``xfuxi.regrid``: to the model's grid (default the T21 Gaussian grid, 64 × 32);
3. ``channels_of`` and ``xfuxi.normalization_stats``: the model's channels (every
   variable at every level of the file) and their mean, std and 6-hour-difference std;
4. ``xfuxi.train_forecast``: a new FuXi network on those channels;
5. ``xfuxi.forecast`` from the held-out times, and ``xfuxi.rmse`` (WeatherBench2's RMSE:
   area-weighted, time mean before the square root) against the held-out truth and
   against persistence;
6. ``write_weatherbench2`` and ``write_netcdf``: the forecast as a WeatherBench2 zarr store
   and as a CF netCDF file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import xfuxi
from xfuxi.config import add_arguments, from_arguments
from xfuxi.data.channels import channel_name, channels_of
from xfuxi.data.writers import write_netcdf, write_weatherbench2
from xfuxi.training.config import TrainConfig

#: the levels of the sample file (hPa)
SAMPLE_LEVELS = (250, 500, 850)


def era5_sample(
    *, n_time: int = 40, resolution: float = 10.0, seed: int = 0, start: str = "2021-01-01"
) -> xr.Dataset:
    """A Dataset in exactly the layout of a CDS netCDF (2024 and later) of ERA5.

    Variables ``z``, ``t``, ``u``, ``v``, ``q`` on :data:`SAMPLE_LEVELS` and ``sp``,
    6-hourly, on a global ``resolution``° grid with latitudes from 90 to −90 and longitudes
    from −180; plausible magnitudes, with waves travelling east by 7.5° every 6 hours (so
    that there is something to learn) and a little noise.
    """
    rng = np.random.default_rng(seed)
    lat = np.arange(90.0, -90.0 - 1e-9, -resolution)
    lon = np.arange(-180.0, 180.0 - 1e-9, resolution)
    time = pd.date_range(start, periods=n_time, freq="6h")
    hours = (time - time[0]) / pd.Timedelta("1h")
    phi = np.deg2rad(lat)[None, :, None]
    # the travelling wave, (time, lat, lon)
    phase = np.deg2rad(lon[None, None, :] - 1.25 * np.asarray(hours)[:, None, None])
    wave = np.cos(3 * phase) * np.cos(phi) ** 2 + 0.5 * np.sin(2 * phase) * np.cos(phi) ** 3

    def levels(profile, amplitude, noise):
        out = [
            p + a * wave + noise * rng.standard_normal(wave.shape)
            for p, a in zip(profile, amplitude)
        ]
        return np.stack(out, axis=1).astype("float32")

    cos2 = np.cos(phi) ** 2
    t = levels([220 + 10 * cos2, 250 + 20 * cos2, 270 + 30 * cos2], [3, 4, 5], 0.2)
    z = levels([1.02e5 + 3e3 * cos2, 5.4e4 + 2e3 * cos2, 1.4e4 + 1e3 * cos2], [800, 600, 300], 5)
    u = levels([30 * cos2, 20 * cos2, 8 * cos2], [8, 6, 4], 0.5)
    v = levels([0 * cos2] * 3, [10, 7, 5], 0.5)
    q = np.abs(levels([1e-4 * cos2, 1e-3 * cos2, 6e-3 * cos2], [2e-5, 2e-4, 1e-3], 1e-5))
    sp = (1.0e5 + 800 * wave + 50 * rng.standard_normal(wave.shape)).astype("float32")
    pl = ("valid_time", "pressure_level", "latitude", "longitude")
    sl = ("valid_time", "latitude", "longitude")
    units = {"z": "m**2 s**-2", "t": "K", "u": "m s**-1", "v": "m s**-1", "q": "kg kg**-1"}
    data: dict[str, Any] = {
        k: (pl, arr, {"units": units[k], "GRIB_paramId": pid})
        for (k, arr, pid) in (("z", z, 129), ("t", t, 130), ("u", u, 131), ("v", v, 132),
                              ("q", q, 133))
    }  # fmt: skip
    data["sp"] = (sl, sp, {"units": "Pa", "GRIB_paramId": 134})
    return xr.Dataset(
        data,
        coords={
            "number": 0,
            "valid_time": ("valid_time", time),
            "pressure_level": ("pressure_level", np.array(SAMPLE_LEVELS, float), {"units": "hPa"}),
            "latitude": ("latitude", lat, {"units": "degrees_north"}),
            "longitude": ("longitude", lon, {"units": "degrees_east"}),
            "expver": ("valid_time", np.array(["0001"] * n_time)),
        },
        attrs={"Conventions": "CF-1.7", "institution": "European Centre for Medium-Range "
               "Weather Forecasts (sample in its layout, made by xfuxi)"},
    )  # fmt: skip


def write_era5_sample(path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`era5_sample` as a netCDF file (atomically, never over another's file)."""
    from xfuxi.files import atomic_write_file

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"'{path}' exists; choose another name for the sample")
    ds = era5_sample(**kwargs)
    return atomic_write_file(path, lambda tmp: ds.to_netcdf(tmp))


def run(
    era5: str | Path | list[str | Path],
    out: str | Path,
    *,
    grid: Any = "T21",
    test_times: int = 8,
    forecast_steps: int = 4,
    config: TrainConfig | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """The recipe: read, regrid, build channels and statistics, train, forecast, verify.

    Parameters
    ----------
    era5 : path or list of paths
        ERA5 as the CDS delivers it (6-hourly).
    out : path
        Directory for ``forecast.zarr`` (WeatherBench2), ``forecast.nc`` (CF) and
        ``scores.json``.
    grid : str or xarray.Dataset
        The model's grid (a name of ``xfuxi.data.regrid.GRIDS`` or data on the grid).
    test_times : int
        The last ``test_times`` times are held out for the forecast and its verification.
    forecast_steps : int
        6-hour steps of each forecast.
    config : TrainConfig, optional
        Training settings (default: the CPU-sized ``small`` network, 200 steps).
    overwrite : bool
        Replace the outputs of an earlier run of this recipe.

    Returns
    -------
    dict
        ``channels``, and the RMSE of the model and of persistence by channel and lead.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # 1. read: long names, time, level, latitude ascending, longitudes 0..360
    ds = xfuxi.from_era5(era5)
    # 2. regrid to the model's grid: bilinear for these instantaneous fields
    ds = xfuxi.regrid(ds, grid)
    train, test = ds.isel(time=slice(None, -test_times)), ds.isel(time=slice(-test_times, None))
    # 3. channels and normalization statistics of the training period
    channels = channels_of(train)
    stats = xfuxi.normalization_stats(train)
    # 4. a new FuXi network on those channels
    config = config or TrainConfig(preset="small", steps=200, batch_size=8, warmup_steps=20)
    model = xfuxi.train_forecast(train, config=config, stats=stats, progress=False)
    # 5. forecast from the held-out times, verify (WeatherBench2's RMSE) against persistence
    inits = test["time"].values[1 : test_times - forecast_steps]
    fc = xfuxi.forecast(test, model=model, steps=forecast_steps, init_times=inits, progress=False)
    persistence = xfuxi.persistence_forecast(
        test, leads=fc["prediction_timedelta"].values, init_times=inits
    )
    keep = ["latitude", "longitude", "time"]
    scores = {
        "model": xfuxi.rmse(fc, test, dim=keep),
        "persistence": xfuxi.rmse(persistence[list(fc.data_vars)], test, dim=keep),
    }
    # 6. write the forecast: WeatherBench2 zarr and CF netCDF
    write_weatherbench2(fc, out / "forecast.zarr", overwrite=overwrite)
    write_netcdf(fc, out / "forecast.nc", overwrite=overwrite)
    result = {
        "channels": [channel_name(c) for c in channels],
        "grid": grid if isinstance(grid, str) else f"{model.grid_shape}",
        "leads_hours": (fc["prediction_timedelta"].values / np.timedelta64(1, "h")).tolist(),
        "rmse": {kind: _by_channel(score, channels) for kind, score in scores.items()},
    }
    from xfuxi.files import atomic_write_json

    atomic_write_json(out / "scores.json", result)
    return result


def _by_channel(score: xr.Dataset, channels: list) -> dict[str, list[float]]:
    """RMSE by channel name, each a list over the leads."""
    out = {}
    for var, level in channels:
        da = score[var] if level is None else score[var].sel(level=level)
        out[channel_name((var, level))] = da.transpose("prediction_timedelta").values.tolist()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("era5", nargs="*", help="ERA5 files from the CDS (GRIB, netCDF, zip)")
    parser.add_argument("--sample", action="store_true", help="write and use a sample file")
    parser.add_argument("--out", default="real_data_recipe", help="output directory")
    parser.add_argument("--grid", default="T21", help="the model's grid (default T21)")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier outputs")
    add_arguments(parser, TrainConfig)
    args = parser.parse_args(argv)
    config = from_arguments(TrainConfig, args) if args.steps is not None else None
    if args.sample == bool(args.era5):
        parser.error("give ERA5 files or --sample (not both)")
    files = args.era5
    if args.sample:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        sample = out / "era5_sample.nc"
        files = [sample if sample.exists() else write_era5_sample(sample)]
    result = run(files, args.out, grid=args.grid, config=config, overwrite=args.overwrite)
    print(f"channels: {', '.join(result['channels'])}")
    print(f"{'channel':<28}" + "".join(f"{h:>8.0f}h" for h in result["leads_hours"]))
    for kind in ("model", "persistence"):
        print(f"RMSE of the {kind}")
        for name, values in result["rmse"][kind].items():
            print(f"  {name:<26}" + "".join(f"{v:9.3g}" for v in values))
    print(json.dumps({"out": str(Path(args.out).resolve())}))
    return result


if __name__ == "__main__":
    main()
