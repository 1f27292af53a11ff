"""FuXi-DA cycling on the world's test split: one satellite, three satellites, CORR, free run.

Each variant runs :func:`xfuxi.cycle` (analysis → 6-hour forecast of ``fuxi-hs-t21`` →
background → next analysis) from the same first background (a 12-hour forecast from the
truth) for ``--days`` days (4 cycles a day):

* **ASSI 1 sat**: the shipped FuXi-DA (``fuxi-da-hs-t21``) with the radiances of one
  satellite at 105° E (its training geometry);
* **ASSI 3 sats**: the same network with three satellites (0°, 105° E, 240° E;
  ``allow_new_satellites=True``: it was trained with one);
* **CORR**: the shipped CORR network (``fuxi-da-hs-t21-corr``), no radiances;
* **free run**: the forecast from the same first background, no assimilation (the
  driver's ``free_error``; the same for every variant).

The imager's seed is ``12345 + cycle`` (clouds, noise, biases and spectroscopy error on).
The analysis RMSE (area-weighted) of z500, t850, u250 and the tracer at 500 hPa against
the truth is scored inside the 105° E disc (zenith angle ≤ 70°) and globally, each cycle.
En4DVar cycling is not included: about 10–20 s per analysis on this machine, 40 cycles
per variant would not fit in the time of this experiment.

    python examples/fuxi_da_cycling.py [--days 10]
    python examples/fuxi_da_cycling.py --truncation 21 \
        --out benchmarks/results/fuxi_da_cycling_T21.json \
        --figure examples/figures/fuxi_da_cycling_T21.png   # the model with the T21 filter

Writes ``benchmarks/results/fuxi_da_cycling.json`` and ``.md`` and
``examples/figures/fuxi_da_cycling.png``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from xfuxi.assimilation.cycle import CycleConfig, cycle
from xfuxi.assimilation.da_cycle import FuXiDAMethod, ImagerNetwork
from xfuxi.data.channels import channel_name, stack
from xfuxi.datasets import held_suarez_split
from xfuxi.files import atomic_write_json
from xfuxi.grid import area_weights
from xfuxi.models.registry import load_model
from xfuxi.observations.imager import zenith_angle

SCORED = [
    ("geopotential", 500.0),
    ("temperature", 850.0),
    ("u_component_of_wind", 250.0),
    ("passive_tracer", 500.0),
]
SEED = 12345
#: (name, FuXi-DA model, satellites)
VARIANTS = [
    ("ASSI 1 sat", "fuxi-da-hs-t21", (105.0,)),
    ("ASSI 3 sats", "fuxi-da-hs-t21", (0.0, 105.0, 240.0)),
    ("CORR", "fuxi-da-hs-t21-corr", (105.0,)),
]


def region_rmse(err: np.ndarray, weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Area-weighted RMSE over the points of ``mask``: ``(T, C, H, W) → (T, C)``."""
    w = weights[:, None] * mask
    return np.sqrt((err**2 * w).sum((-2, -1)) / w.sum())


def run_variant(truth, model, da_model, satellites, n_cycles, store):
    method = FuXiDAMethod(da_model, allow_new_satellites=len(satellites) > 1)
    network = ImagerNetwork(satellites=satellites, seed=SEED)
    tic = time.perf_counter()
    run = cycle(
        truth,
        network,
        method=method,
        model=model,
        config=CycleConfig(n_cycles=n_cycles, lead_steps=2),
        store=store,
        progress=False,
    )
    wall = time.perf_counter() - tic
    parts = [xr.open_zarr(p) for p in sorted((Path(store) / "cycles").glob("*.zarr"))]
    analysis = np.stack([p["analysis_state"].values[0] for p in parts])
    free = np.stack([p["free_pair"].values[1] for p in parts])
    return run, analysis, free, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=float, default=10.0)
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument(
        "--truncation", type=int, default=None,
        help="spectral truncation of every forecast step (21: the world's; docs/cycling.md)",
    )  # fmt: skip
    p.add_argument("--split", default="test", choices=("test", "validation"),
                   help="validation: for choices; test: to report")  # fmt: skip
    p.add_argument("--assi", default="fuxi-da-hs-t21", help="FuXi-DA model (name or directory)")
    p.add_argument("--corr", default="fuxi-da-hs-t21-corr", help="CORR model (name or directory)")
    p.add_argument("--out", default="benchmarks/results/fuxi_da_cycling.json")
    p.add_argument("--figure", default="examples/figures/fuxi_da_cycling.png")
    args = p.parse_args()
    models = {"fuxi-da-hs-t21": args.assi, "fuxi-da-hs-t21-corr": args.corr}
    variants = [(n, models[m], sats) for n, m, sats in VARIANTS]
    t_start = time.perf_counter()
    model = load_model(args.model)
    if args.truncation is not None:
        from xfuxi.models.spectral import with_spectral_filter

        model = with_spectral_filter(model, args.truncation)
    n_cycles = int(round(args.days * 4))
    truth = held_suarez_split(args.split, days=int(np.ceil(args.days)) + 2).load()
    times = pd.DatetimeIndex(truth["time"].values)
    step = pd.Timedelta(model.timestep)
    t0 = times[0] + 3 * step
    cycle_times = pd.date_range(t0, periods=n_cycles, freq=step)
    tr = stack(truth.sel(time=cycle_times), model.channels).transpose(
        "time", "channel", "latitude", "longitude"
    )
    tr = np.asarray(tr.values, dtype="float64")
    names = [channel_name(c) for c in model.channels]
    idx = [names.index(channel_name(c)) for c in SCORED]
    lat, lon = truth["latitude"].values, truth["longitude"].values
    weights = np.asarray(area_weights(lat).values, dtype="float64")
    zen, _ = zenith_angle(lat, lon, satellites=[105.0])
    regions = {"inside": np.isfinite(np.asarray(zen)), "global": np.ones(zen.shape, bool)}

    work = Path(tempfile.mkdtemp(prefix="dacycle_"))
    series: dict[str, dict[str, np.ndarray]] = {}
    walls, diagnostics = {}, {}
    free = None
    try:
        for name, da_model, sats in variants:
            store = work / name.replace(" ", "_")
            run, analysis, free_states, wall = run_variant(
                truth, model, da_model, sats, n_cycles, store
            )
            walls[name] = wall
            series[name] = {r: region_rmse(analysis - tr, weights, m) for r, m in regions.items()}
            if free is None:
                free = free_states
            s = run.scores
            if "radiance_rms_omb" in s:
                clear = s.sel(group="clear")
                diagnostics[name] = {
                    "rms_omb_clear_mean": clear["radiance_rms_omb"].mean("time").to_series(),
                    "rms_oma_clear_mean": clear["radiance_rms_oma"].mean("time").to_series(),
                }
            print(f"{name}: {n_cycles} cycles in {wall:.0f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    series["free run"] = {r: region_rmse(free - tr, weights, m) for r, m in regions.items()}

    order = ["free run", "CORR", "ASSI 1 sat", "ASSI 3 sats"]
    per_day = 4
    n_early = min(3 * per_day, n_cycles)
    periods = {
        "days 1-3": slice(0, n_early),
        f"last 3 days ({max(n_cycles - 3 * per_day, 0) / per_day:g}-{n_cycles / per_day:g})": (
            slice(max(n_cycles - 3 * per_day, 0), n_cycles)
        ),
    }
    table = []
    for region in regions:
        for j, c in zip(idx, SCORED, strict=True):
            for period, sl in periods.items():
                row = {"region": region, "channel": channel_name(c), "period": period}
                for v in order:
                    row[v] = float(series[v][region][sl, j].mean())
                table.append(row)
    result = {
        "settings": {
            "days": args.days,
            "n_cycles": n_cycles,
            "start": str(t0),
            "first_background": "2-step (12-hour) forecast of the truth",
            "model": model.name,
            "imager_seed": f"{SEED} + cycle",
            "split": args.split,
            "variants": {n: {"model": m, "satellites": list(s)} for n, m, s in variants},
            "inside": "zenith angle <= 70 deg from the satellite at 105 E",
        },
        "table": table,
        "rmse_per_cycle": {
            v: {
                r: {channel_name(c): series[v][r][:, j].tolist() for j, c in zip(idx, SCORED)}
                for r in regions
            }
            for v in order
        },  # fmt: skip
        "times": [str(t) for t in cycle_times],
        "radiance_diagnostics": {
            n: {k: {str(a): float(b) for a, b in v.items()} for k, v in d.items()}
            for n, d in diagnostics.items()
        },
        "wall_time_s": {**walls, "total": time.perf_counter() - t_start},
    }
    out = Path(args.out)
    atomic_write_json(out, result)
    lines = ["| region | channel | period | " + " | ".join(order) + " |"]
    lines.append("|---" * (3 + len(order)) + "|")
    for r in table:
        cells = [f"{r[v]:.4g}" for v in order]
        lines.append(
            f"| {r['region']} | {r['channel']} | {r['period']} | " + " | ".join(cells) + " |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    figure(series, order, regions, idx, cycle_times, Path(args.figure))


def figure(series, order, regions, idx, cycle_times, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = (cycle_times - cycle_times[0]) / pd.Timedelta("1D")
    fig, axes = plt.subplots(len(regions), len(SCORED), figsize=(16, 6.5), sharex=True)
    for i, region in enumerate(regions):
        for k, (j, c) in enumerate(zip(idx, SCORED, strict=True)):
            ax = axes[i, k]
            for v in order:
                ax.plot(days, series[v][region][:, j], label=v)
            ax.set_title(f"{channel_name(c)} ({region})", fontsize=9)
            if i == len(regions) - 1:
                ax.set_xlabel("days from the first analysis")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("FuXi-DA cycling: analysis RMSE against the truth (world's test split)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
