"""FuXi-ENS ensembles started from cycled analyses, against ensembles started from the truth.

Issue 22, item 6: from the analysis pairs a cycling run keeps (the per-method stores of
``examples/cycling_world.py --store PREFIX``), one every ``--every`` days from day
``--first``, the shipped FuXi-ENS (``xfuxi.ensemble``: the FuXi cascade with the learned
perturbation module) runs ``--members`` members for ``--days`` days; the same from the true
pair at the same times. Scored against the truth with WeatherBench2's definitions (fair
CRPS, ensemble-mean RMSE, spread–skill ratio, area-weighted, averaged over the start
times) for z500, t850, u250, tracer500 and surface pressure at 1, 3, 5 and 10 days; the
ratio of each method's CRPS to that of the ensembles from the truth says what the analysis
error costs the ensemble forecast.

    python examples/cycling_world.py --split test --days 30 --methods letkf --threads 1 --store run
    python benchmarks/bench_ens_from_analyses.py --split test --stores run --methods letkf,cycled

``--split`` is required (validation for choices, test only to report) and must be the split of
the stores' runs; the recorded run is on the test split.

Writes ``benchmarks/results/ens_from_analyses.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

import xfuxi
from xfuxi.data.channels import unstack
from xfuxi.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
CHANNELS = {
    "geopotential@500": ("geopotential", 500),
    "temperature@850": ("temperature", 850),
    "u_component_of_wind@250": ("u_component_of_wind", 250),
    "passive_tracer@500": ("passive_tracer", 500),
    "surface_pressure": ("surface_pressure", None),
}
LEADS_DAYS = (1, 3, 5, 10)


def _pair_dataset(pair: np.ndarray, time: np.datetime64, model, like: xr.Dataset) -> xr.Dataset:
    """The analysed pair ``(2, C, H, W)`` (model channel order) as two analysis times."""
    step = np.timedelta64(int(model.timestep_hours * 3600), "s")
    da = xr.DataArray(
        pair,
        dims=("time", "channel", "latitude", "longitude"),
        coords={
            "time": np.array([time - step, time], dtype="M8[ns]"),
            "latitude": like["latitude"].values,
            "longitude": like["longitude"].values,
        },
    )
    return unstack(da, model.channels)


def _scores(fc: xr.Dataset, truth: xr.Dataset) -> dict:
    out = {}
    for name, (var, level) in CHANNELS.items():
        f = fc[var] if level is None else fc[var].sel(level=level)
        t = truth[var] if level is None else truth[var].sel(level=level)
        days = [
            d for d in LEADS_DAYS if np.timedelta64(d * 24, "h") <= fc.prediction_timedelta.max()
        ]
        f = f.sel(prediction_timedelta=[np.timedelta64(d * 24, "h") for d in days])
        crps = xfuxi.crps(f, t, dim=["time", "latitude", "longitude"])
        rmse = xfuxi.ensemble_mean_rmse(f, t, dim=["time", "latitude", "longitude"])
        ssr = xfuxi.spread_skill_ratio(f, t, dim=["time", "latitude", "longitude"])
        out[name] = {
            f"{d}d": {
                "crps": float(crps.isel(prediction_timedelta=i)),
                "ensemble_mean_rmse": float(rmse.isel(prediction_timedelta=i)),
                "spread_skill": float(ssr.isel(prediction_timedelta=i)),
            }
            for i, d in enumerate(days)
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stores", required=True, help="prefix of the per-method cycling stores")
    p.add_argument("--methods", default="letkf,cycled,perlin,3dvar")
    p.add_argument(
        "--split",
        required=True,
        choices=("validation", "test"),
        help="validation for choices, test only to report",
    )
    p.add_argument("--first", type=float, default=3.0, help="day of the first start")
    p.add_argument("--every", type=float, default=5.0, help="days between starts")
    p.add_argument("--starts", type=int, default=5)
    p.add_argument("--members", type=int, default=16)
    p.add_argument("--days", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS / "ens_from_analyses.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    xfuxi.set_options(progress=False)
    model = xfuxi.load_model("fuxi-hs-t21")
    steps = 4 * a.days
    out: dict = {
        "split": a.split, "members": a.members, "days": a.days, "stores": a.stores,
        "ensemble": "xfuxi.ensemble defaults (fuxi-hs-t21-cascade + fuxi-ens-hs-t21)",
        "sources": {},
    }  # fmt: skip
    truth = None
    starts: list[np.datetime64] = []
    pairs: dict[str, list[xr.Dataset]] = {}
    for key in a.methods.split(","):
        store = Path(f"{a.stores}-{key}.zarr")
        if not store.exists():
            print(f"no store {store}; skipped")
            continue
        scores = xfuxi.open_cycle(store)
        t0 = pd.Timestamp(scores["time"].values[0])
        wanted = [t0 + pd.Timedelta(days=a.first + i * a.every) for i in range(a.starts)]
        have = set(pd.DatetimeIndex(scores["time"].values))
        if truth is None:
            days = int(np.ceil((wanted[-1] - t0) / pd.Timedelta("1D"))) + a.days + 6
            truth = xfuxi.held_suarez_split(a.split, days=days).load()
            starts = [np.datetime64(t, "ns") for t in wanted]
        missing = [str(t) for t in wanted if t not in have]
        if missing:
            print(f"{store}: no complete cycle at {missing}; skipped")
            continue
        cycles = {pd.Timestamp(t): i for i, t in enumerate(scores["time"].values)}
        pairs[key] = []
        for t in wanted:
            c = int(scores["cycle"].values[cycles[t]])
            with xr.open_zarr(store / "cycles" / f"{c:06d}.zarr") as g:
                pair = np.asarray(g["state__pair"].values, dtype="float32")
            pairs[key].append(_pair_dataset(pair, np.datetime64(t, "ns"), model, truth))
    if truth is None:
        raise SystemExit(f"no store {a.stores}-<method>.zarr found")
    sources = {"truth": [truth.sel(time=[t - np.timedelta64(6, "h"), t]) for t in starts]}
    sources.update(pairs)
    for key, inits in sources.items():
        tic = time.perf_counter()
        fcs = [
            xfuxi.ensemble(ds, n=a.members, steps=steps, seed=0, init_times=[ds["time"].values[1]])
            for ds in inits
        ]
        fc = xr.concat(fcs, dim="time")
        out["sources"][key] = {
            "starts": [str(t)[:16] for t in fc["time"].values],
            "wall_time_s": time.perf_counter() - tic,
            "scores": _scores(fc, truth),
        }
        print(key, json.dumps(out["sources"][key]["scores"]["geopotential@500"]), flush=True)
        atomic_write_json(Path(a.out), out)
    ref = out["sources"]["truth"]["scores"]
    for src in out["sources"].values():
        src["crps_over_from_truth"] = {
            name: {lead: v["crps"] / ref[name][lead]["crps"] for lead, v in ch.items()}
            for name, ch in src["scores"].items()
        }
    out["rows"] = [
        {
            "initial states": key,
            "channel": name,
            **{
                f"CRPS / from truth {lead}": r
                for lead, r in src["crps_over_from_truth"][name].items()
            },
            **{f"spread-skill {lead}": v["spread_skill"] for lead, v in ch.items()},
        }
        for key, src in out["sources"].items()
        for name, ch in src["scores"].items()
    ]
    atomic_write_json(Path(a.out), out)
    print(json.dumps({k: v["crps_over_from_truth"] for k, v in out["sources"].items()}, indent=1))


if __name__ == "__main__":
    main()
