"""Activity of the deterministic forecast by lead: eddy std of forecasts over that of the truth.

An ensemble of a model that grows more active than the truth with lead spreads further
apart than the truth strays from the ensemble mean: its spread-skill ratio rises above 1 at
long leads whatever the perturbations. This prints, for the initial times of
``bench_ensemble_skill.py`` (same selection), the ratio of the area-weighted standard
deviation of the eddies (deviation from the zonal mean) of the forecast to that of the
verifying truth, per variable and lead. Usage::

    python benchmarks/bench_model_activity.py            # CPU: about a minute
"""

from __future__ import annotations

import argparse

import numpy as np
import xarray as xr

import xfuxi
from xfuxi.datasets import held_suarez_split
from xfuxi.forecasting.deterministic import forecast
from xfuxi.training.calibration import verifiable_init_times

CHANNELS = [("geopotential", 500.0), ("temperature", 850.0), ("u_component_of_wind", 250.0)]


def _eddy_variance(x: xr.DataArray) -> xr.DataArray:
    """Area-weighted mean over the globe of the squared deviation from the zonal mean."""
    w = np.cos(np.deg2rad(x["latitude"]))
    eddy = x - x.mean("longitude")
    return ((eddy**2).mean("longitude") * w).sum("latitude") / w.sum()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--inits", type=int, default=16)
    p.add_argument("--leads", default="6,48,120,168,240", help="leads in hours")
    args = p.parse_args()
    xfuxi.set_options(progress=False)
    model = xfuxi.load_model(args.model)
    test = held_suarez_split("test").load()
    tt = verifiable_init_times(test, model=model, steps=args.steps)
    tt = tt[:: max(1, len(tt) // args.inits)][: args.inits]
    fc = forecast(test, model=model, steps=args.steps, init_times=tt)
    leads = [int(h) for h in args.leads.split(",")]
    print(f"model {model.name}, {len(tt)} initial times of the test split")
    print("\nforecast eddy std / truth eddy std (mean eddy variance over initial times)")
    print("| channel | " + " | ".join(f"{h} h" for h in leads) + " |")
    print("|---|" + "---:|" * len(leads))
    for var, lev in CHANNELS:
        cells = []
        for h in leads:
            lt = np.timedelta64(h, "h")
            f = fc[var].sel(level=lev, prediction_timedelta=lt)
            truth = test[var].sel(level=lev, time=f["time"].values + lt)
            vf = float(_eddy_variance(f).mean())
            vt = float(_eddy_variance(truth).mean())
            cells.append(f"{np.sqrt(vf / vt):.3f}")
        print(f"| {var}@{lev:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
