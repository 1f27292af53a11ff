"""RMSE of one forecast model relative to another, per channel and lead, on the test split.

Both models forecast from the same initial times of the world's test period (every 7
days); the table gives RMSE(new) / RMSE(old) per channel (every level) and lead, and the
mean over channels. Below 1: the new model is better.

    python benchmarks/bench_compare_models.py OLD NEW [--inits 24] [--steps 20]

OLD and NEW are shipped names or checkpoint directories, e.g. the previous weights of a
shipped model taken from git: ``git show REV:xfuxi/_data/models/fuxi-hs-t21/model.safetensors``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

import xfuxi
from xfuxi.datasets import held_suarez_split

LEADS = (1, 2, 4, 8, 12, 20, 28, 40)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--inits", type=int, default=24, help="initial times (every 7 days)")
    p.add_argument("--steps", type=int, default=20, help="forecast steps (6 h)")
    args = p.parse_args()
    test = held_suarez_split("test").load()
    times = pd.DatetimeIndex(test.time.values)
    inits = times[1 : 1 + 28 * args.inits : 28][: args.inits]
    rmse = {}
    for key in ("old", "new"):
        model = xfuxi.load_model(getattr(args, key))
        fc = xfuxi.forecast(test, model=model, steps=args.steps, init_times=inits,
                            progress=False)  # fmt: skip
        rmse[key] = fc.fuxi.rmse(test, dim=["time", "latitude", "longitude"]).compute()
    leads = [s for s in LEADS if s <= args.steps]
    print(f"RMSE {args.new} / {args.old}, {len(inits)} initial times")
    print(f"{'channel':22s} " + " ".join(f"{6 * s:>5d}h" for s in leads))
    ratios = []
    for var in rmse["old"].data_vars:
        levels = rmse["old"][var]["level"].values if "level" in rmse["old"][var].dims else [None]
        for lv in levels:
            old, new = rmse["old"][var], rmse["new"][var]
            if lv is not None:
                old, new = old.sel(level=lv), new.sel(level=lv)
            r = (new / old).values
            ratios.append(r)
            label = var if lv is None else f"{var} {lv:g}"
            print(f"{label[:22]:22s} " + " ".join(f"{r[s - 1]:6.3f}" for s in leads))
    mean = np.mean(ratios, axis=0)
    print(f"{'mean over channels':22s} " + " ".join(f"{mean[s - 1]:6.3f}" for s in leads))


if __name__ == "__main__":
    main()
