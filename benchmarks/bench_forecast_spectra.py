"""How much of each scale the shipped forecast models keep, lead by lead: zonal energy spectra.

For each model, 10-day forecasts from initial times of the test split (evenly spread, as
``bench_model_activity.py`` picks them) and the verifying truth; the zonal energy spectrum
(``xfuxi.zonal_energy_spectrum``, WeatherBench2's definition) of each field, averaged over
the latitudes 30–60° of both hemispheres and over the initial times, and then summed over
wavelength bands (the zonal mean left out). A ratio of forecast to truth below 1 is energy
the forecast has lost at those scales (smoothing), above 1 energy it has gained. This
reports; it chooses nothing.
Usage::

    python benchmarks/bench_forecast_spectra.py      # CPU: about a minute

Prints the table and writes ``benchmarks/results/forecast_spectra.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import xfuxi
from xfuxi.datasets import held_suarez_split
from xfuxi.files import atomic_write_json
from xfuxi.training.calibration import verifiable_init_times

RESULTS = Path(__file__).resolve().parent / "results"
CHANNELS = [("geopotential", 500.0), ("temperature", 850.0), ("u_component_of_wind", 250.0)]
#: wavelength bands, km: planetary, synoptic, sub-synoptic, the grid's smallest
BANDS_KM = [(10000.0, np.inf), (5000.0, 10000.0), (2500.0, 5000.0), (0.0, 2500.0)]


def _band_name(lo: float, hi: float) -> str:
    return f"> {lo:g} km" if np.isinf(hi) else f"{lo:g}-{hi:g} km" if lo else f"< {hi:g} km"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="fuxi-hs-t21,fuxi-hs-t21-cascade,fuxi-hs-t21-cycling-v6")
    p.add_argument("--split", default="test", choices=["validation", "test"])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--inits", type=int, default=32)
    p.add_argument("--leads", default="6,24,120,240", help="leads in hours")
    p.add_argument("--band", default="30,60", help="|latitude| band, degrees")
    p.add_argument("--out", default=str(RESULTS / "forecast_spectra.json"))
    a = p.parse_args()
    xfuxi.set_options(progress=False)
    band = tuple(float(x) for x in a.band.split(","))
    leads = [int(h) for h in a.leads.split(",")]
    data = held_suarez_split(a.split).load()
    rows = []
    started = time.perf_counter()
    for name in a.models.split(","):
        model = xfuxi.load_model(name)
        tt = verifiable_init_times(data, model=model, steps=a.steps)
        tt = tt[:: max(1, len(tt) // a.inits)][: a.inits]
        fc = xfuxi.forecast(data, model=model, steps=a.steps, init_times=tt)
        for var, lev in CHANNELS:
            for h in leads:
                lt = np.timedelta64(h, "h")
                f = fc[var].sel(level=lev, prediction_timedelta=lt)
                truth = data[var].sel(level=lev, time=f["time"].values + lt)
                sf = xfuxi.zonal_energy_spectrum(f, latitude_band=band).mean("time")
                st = xfuxi.zonal_energy_spectrum(truth, latitude_band=band).mean("time")
                wavelength_km = sf["wavelength"].values / 1e3
                row = {"model": name, "channel": f"{var}@{lev:g}", "lead_h": h}
                for lo, hi in BANDS_KM:
                    # the zonal mean (wavenumber 0, an infinite wavelength) left out
                    inside = (
                        (wavelength_km > lo) & (wavelength_km <= hi) & np.isfinite(wavelength_km)
                    )
                    ratio = float(sf.values[inside].sum() / st.values[inside].sum())
                    row[_band_name(lo, hi)] = round(ratio, 3)
                rows.append(row)
    seconds = time.perf_counter() - started
    head = list(rows[0])
    print(
        f"forecast / truth zonal energy, |latitude| {band[0]:g}-{band[1]:g}, {a.split} split, "
        f"{len(tt)} initial times ({seconds:.0f} s)"
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in head) + " |")
    out = {
        "split": a.split,
        "initial_times": len(tt),
        "latitude_band": list(band),
        "seconds": round(seconds, 1),
        "rows": rows,
    }
    atomic_write_json(Path(a.out), out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
