"""Check the climate of the Held–Suarez world: balance, eddies and stationarity.

Usage::

    python examples/held_suarez_climate.py                # the train split (4 x 365 days)
    python examples/held_suarez_climate.py --split test

Prints, for each 365-day block of the split: the 250 hPa zonal-mean jet (speed and latitude
of the westerly centroid, 20–70° in each hemisphere), the rms eddy meridional wind v′ at
250 hPa, the tracer's tropics-to-pole contrast at 850 hPa, and the correlation between the
model wind and MetPy's geostrophic wind from the 500 hPa geopotential (25–70°, both
hemispheres; every 5th day).
"""

from __future__ import annotations

import argparse

import numpy as np
import xarray as xr

from xfuxi.datasets import held_suarez_split

G = 9.80665


def jet(u: xr.DataArray, band: slice) -> tuple[float, float]:
    ub = u.sel(latitude=band)
    west = ub.clip(min=0)
    return float(ub.max()), float((west * ub.latitude).sum() / west.sum())


def geostrophic_correlation(ds: xr.Dataset) -> tuple[float, float]:
    import metpy.calc as mpcalc
    from metpy.units import units

    w = ds.sel(level=500)
    lat, lon = w.latitude.values, w.longitude.values
    dx, dy = mpcalc.lat_lon_grid_deltas(lon, lat)
    latitude = np.deg2rad(lat)[:, None] * units.radian
    m = (np.abs(lat) >= 25) & (np.abs(lat) <= 70)
    ug, vg = [], []
    for i in range(w.sizes["time"]):
        u, v = mpcalc.geostrophic_wind(w.geopotential.values[i] / G * units.meter, dx, dy, latitude)
        ug.append(u.m_as("m/s")[m])
        vg.append(v.m_as("m/s")[m])
    ru = np.corrcoef(np.ravel(ug), w.u_component_of_wind.values[:, m].ravel())[0, 1]
    rv = np.corrcoef(np.ravel(vg), w.v_component_of_wind.values[:, m].ravel())[0, 1]
    return float(ru), float(rv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="train", choices=["train", "validation", "test"])
    args = parser.parse_args()
    ds = held_suarez_split(args.split)
    per_year = 365 * 4
    n_years = ds.sizes["time"] // per_year
    print(f"split={args.split} {dict(ds.sizes)} {ds.attrs['source']}")
    print(
        f"{'year':>4} {'NH jet m/s':>10} {'NH lat':>7} {'SH jet m/s':>10} {'SH lat':>7} "
        f"{'v250 rms':>8} {'tracer eq-pole':>14} {'r(u,ug)':>8} {'r(v,vg)':>8}"
    )
    for y in range(n_years):
        block = ds.isel(time=slice(y * per_year, (y + 1) * per_year)).load()
        u = block.u_component_of_wind.sel(level=250).mean(["time", "longitude"])
        nh, nh_lat = jet(u, slice(20, 70))
        sh, sh_lat = jet(u, slice(-70, -20))
        v = block.v_component_of_wind.sel(level=250)
        v_rms = float(np.sqrt(((v - v.mean("longitude")) ** 2).mean()))
        q = block.passive_tracer.sel(level=850).mean(["time", "longitude"])
        contrast = float(q.sel(latitude=slice(-15, 15)).mean()) - float(
            q.sel(latitude=slice(60, 90)).mean()
        )
        ru, rv = geostrophic_correlation(block.isel(time=slice(0, None, 20)))
        print(
            f"{y + 1:>4} {nh:>10.1f} {nh_lat:>7.1f} {sh:>10.1f} {sh_lat:>7.1f} {v_rms:>8.2f} "
            f"{contrast:>14.3f} {ru:>8.3f} {rv:>8.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
