"""Cycled FuXi-DA runs on the world's train split: the backgrounds a network meets when it cycles.

FuXi-DA networks trained on 6-hour forecasts from the truth meet, once they cycle, backgrounds
that are forecasts from their own analyses, with errors that grow to several times those of
the training backgrounds (docs/fuxi_da.md, Cycling in the driver). Recent ML assimilation
systems (FengWu-Adas) train on their own cycled backgrounds to close that gap. This script
runs ``--runs`` cycles of ``--days`` days each with a FuXi-DA network (``--assi``), the
imager's satellite at 105° E and the 6-hour forecasts of ``--model``, spread over the train
split (each from a 12-hour forecast from the truth, the imager seeded per run), and keeps
every cycle's analysed input pair in a cycling store ``OUT/run-K.zarr``. Training on them:

    python examples/fuxi_da_cycled_backgrounds.py cycles --out runs/da-cycles
    xfuxi train-da --cycled-states runs/da-cycles/run-*.zarr --cycled-fraction 0.5 ...

(``xfuxi.train_da(..., cycled_states=...)``: each analysed pair run 6 hours is a background).
Only the train split is used for training; the networks are judged on the validation split,
also on its cycled backgrounds (``score``): the RMSE of the backgrounds and of each network's
analyses against the truth, and their eddy activity (the area-weighted RMS departure from
the zonal mean, against the truth's), for 6-hour forecasts from the truth and for forecasts
from the stores' analyses after ``--skip-days``:

    python examples/fuxi_da_cycled_backgrounds.py cycles --split validation --split-days 60 \
        --runs 3 --out runs/da-cycles-val
    python examples/fuxi_da_cycled_backgrounds.py score --stores runs/da-cycles-val/run-*.zarr \
        --networks shipped=fuxi-da-hs-t21-screened "cycled=runs/da-cycled/model" \
        --out benchmarks/results/fuxi_da_cycled_backgrounds_validation.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from fuxi_da_variants import CYCLING_CHANNELS as CHANNELS
from fuxi_da_variants import write_table

import xfuxi
from xfuxi.assimilation.cycle import CycleConfig, cycle, open_cycle_states
from xfuxi.assimilation.da_cycle import FuXiDAMethod, ImagerNetwork
from xfuxi.data.channels import channel_name
from xfuxi.models.fuxi_da import load_da_model
from xfuxi.training.da import prepare_da_samples
from xfuxi.verify.weights import area_weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cycles", help="run the cycles, write the stores")
    c.add_argument("--assi", default="fuxi-da-hs-t21-screened", help="FuXi-DA network")
    c.add_argument("--model", default="fuxi-hs-t21", help="forecast model between analyses")
    c.add_argument("--runs", type=int, default=10)
    c.add_argument("--days", type=float, default=11.0)
    c.add_argument("--split", default="train", choices=("train", "validation"))
    c.add_argument("--split-days", type=int, default=365, help="days of the split used")
    c.add_argument("--threads", type=int, default=0, help="torch threads (0: leave)")
    c.add_argument("--out", required=True, help="directory of the stores (new)")
    sc = sub.add_parser("score", help="score networks on the stores' cycled backgrounds")
    sc.add_argument("--stores", nargs="+", required=True)
    sc.add_argument("--networks", nargs="+", required=True, help="LABEL=NAME_OR_DIR")
    sc.add_argument("--model", default="fuxi-hs-t21")
    sc.add_argument("--split", default="validation", choices=("train", "validation"))
    sc.add_argument("--split-days", type=int, default=60)
    sc.add_argument("--skip-days", type=float, default=2.0)
    sc.add_argument("--threads", type=int, default=0)
    sc.add_argument("--out", required=True)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    xfuxi.set_options(progress=False)
    (run_cycles if a.command == "cycles" else score)(a)


def run_cycles(a: argparse.Namespace) -> None:
    """The ``cycles`` command: ``--runs`` cycles spread over the split, one store each."""
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=False)  # a new directory: nothing is overwritten
    truth = xfuxi.held_suarez_split(a.split, days=a.split_days).load()
    model = xfuxi.load_model(a.model)
    times = pd.DatetimeIndex(truth["time"].values)
    step = pd.Timedelta(hours=model.timestep_hours)
    n_cycles = int(round(a.days * 24 / model.timestep_hours))
    # the first analysis 3 steps in (the first background's inputs), the last run's frames
    # and cycles inside the split
    first, last = times[0] + 3 * step, times[-1] - (n_cycles + 1) * step
    starts = pd.date_range(first, last, periods=a.runs).round("6h")
    method = FuXiDAMethod(a.assi)
    for k, start in enumerate(starts):
        tic = time.perf_counter()
        run = cycle(
            truth,  # the imager draws the network's frames
            ImagerNetwork(satellites=[105.0], frames=method.model.frames, seed=1000 * (k + 1)),
            method=method,
            model=model,
            config=CycleConfig(n_cycles=n_cycles, lead_steps=2, start=str(start)),
            store=out / f"run-{k}.zarr",
            progress=False,
        )
        err = run.scores["analysis_error"]
        names = [str(c) for c in err["channel"].values]
        t850 = err.isel(channel=names.index("temperature@850")).values
        print(
            f"run {k}: {start} .. {n_cycles} cycles in {time.perf_counter() - tic:.0f} s, "
            f"t850 analysis error first/last day {np.mean(t850[:4]):.2f}/{np.mean(t850[-4:]):.2f} K"
        )


def score(a: argparse.Namespace) -> None:
    """The ``score`` command (module docstring)."""
    model = xfuxi.load_model(a.model)
    truth = xfuxi.held_suarez_split(a.split, days=a.split_days).load()
    states = xr.concat([open_cycle_states(s, skip_days=a.skip_days) for s in a.stores], "time")
    names = [channel_name(c) for c in model.channels]
    pick = [names.index(c) for c in CHANNELS]
    w = torch.as_tensor(area_weights(model.latitude).values, dtype=torch.float32).view(1, -1, 1)

    def rms(x: torch.Tensor, target: torch.Tensor) -> list[float]:
        d = (x - target)[:, pick]
        return torch.sqrt((d**2 * w).mean((0, 2, 3)) / w.mean()).tolist()

    def activity(x: torch.Tensor) -> list[float]:
        y = x[:, pick] - x[:, pick].mean(-1, keepdim=True)
        return torch.sqrt((y**2 * w).mean((0, 2, 3)) / w.mean()).tolist()

    rows: list[dict[str, str]] = []
    shared: set[tuple[str, str]] = set()
    for item in a.networks:
        label, _, spec = item.partition("=")
        net = load_da_model(spec)
        s = prepare_da_samples(truth, model, net, leads=(1,), forecast_steps=0, seed=1,
                               cycled_states=states)  # fmt: skip
        with torch.no_grad():
            obs = s.observations[s.time_slot]
            xa = torch.cat([
                s.background[i : i + 64] + net(s.background[i : i + 64], obs[i : i + 64])
                for i in range(0, len(s), 64)
            ])  # fmt: skip
        target = s.truth[torch.as_tensor(s.index)]
        n = len(s) - s.n_cycled
        for kind, part in (("6-hour from the truth", slice(0, n)), ("cycled", slice(n, None))):
            for what, x in (("truth", target), ("background", s.background), ("analysis", xa)):
                if what != "analysis" and (kind, what) in shared:
                    continue  # the same truth and backgrounds for every network
                shared.add((kind, what))
                row = {"network": "" if what != "analysis" else label, "samples": kind,
                       "field": what}  # fmt: skip
                err = rms(x[part], target[part]) if what != "truth" else [0.0] * len(CHANNELS)
                act = activity(x[part])
                for ch, e, v in zip(CHANNELS, err, act):
                    row[ch] = f"{e:.4g} (activity {v:.4g})"
                rows.append(row)
        print(f"{label}: {len(s)} samples, {s.n_cycled} cycled")
    result = {
        "stores": list(a.stores), "split": a.split, "skip_days": a.skip_days,
        "note": "area-weighted RMSE against the truth (activity: RMS departure from the "
        "zonal mean); backgrounds of the cycled samples: a 6-hour forecast from each stored "
        "analysis after skip_days",
        "rows": rows,
    }  # fmt: skip
    write_table(a.out, result)


if __name__ == "__main__":
    main()
