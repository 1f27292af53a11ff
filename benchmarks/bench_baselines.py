"""Skill of the persistence and climatology baselines on the Held–Suarez test split.

Usage::

    python benchmarks/bench_baselines.py                 # 60 initial times, leads 0.25..10 d
    python benchmarks/bench_baselines.py --n-init 100

The climatology (by hour of day; the world has no seasons) comes from the validation split;
forecasts start every 5 days in the test split and are scored against the test split with
area-weighted RMSE (:func:`xfuxi.rmse`, WeatherBench2 definition). These are the numbers
every model of the world has to beat.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import xfuxi
from xfuxi.datasets import held_suarez_split

VARIABLES = [
    ("geopotential", 500),
    ("temperature", 850),
    ("u_component_of_wind", 250),
    ("passive_tracer", 850),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-init", type=int, default=60)
    parser.add_argument("--spacing-days", type=int, default=5)
    args = parser.parse_args()
    t0 = time.perf_counter()
    test = held_suarez_split("test").load()
    clim = xfuxi.climatology(held_suarez_split("validation")).load()
    leads_days = [0.25, 1, 2, 3, 5, 7, 10]
    leads = np.array([np.timedelta64(int(d * 24), "h") for d in leads_days])
    last = test.time.values[-1] - leads[-1]
    inits = test.time.values[:: args.spacing_days * 4]
    inits = inits[inits <= last][: args.n_init]
    pers = xfuxi.persistence_forecast(test, init_times=inits, leads=leads)
    climf = xfuxi.climatology_forecast(clim, init_times=inits, leads=leads)
    dims = ["time", "latitude", "longitude"]
    scores = {
        name: xfuxi.rmse(f, test, dim=dims).compute()
        for name, f in (("pers", pers), ("clim", climf))
    }
    print(f"test split, {len(inits)} initial times every {args.spacing_days} days; RMSE")
    head = f"{'variable':<26}" + "".join(f"{f'{d:g} d':>16}" for d in leads_days)
    print(head)
    print(f"{'':<26}" + "".join(f"{'pers / clim':>16}" for _ in leads_days))
    for var, level in VARIABLES:
        p = scores["pers"][var].sel(level=level).values
        c = scores["clim"][var].sel(level=level).values
        row = "".join(f"{f'{a:.3g} / {b:.3g}':>16}" for a, b in zip(p, c))
        print(f"{f'{var} {level}':<26}{row}")
    print(f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
