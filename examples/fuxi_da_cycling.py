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
  driver's ``free_error``; the same for every variant);
* with ``--en4dvar``, also **En4DVar clear+BC** and **En4DVar clear+VarBC**
  (:class:`~xfuxi.assimilation.radiance_cycle.RadianceEn4DVarMethod`: Perlin En4DVar from
  the cycle's 6-hour background with the radiances of the satellite at 105° E at the
  analysis time, clear-sky screening at 4 K; the offline bias fit, or VarBC starting from
  it with the analysed coefficients cycled; the settings chosen on the validation split by
  ``examples/fuxi_da_vs_en4dvar.py``: B variances of the 6-hour forecast error, the
  clear-sky error of the corrected departures, fitted on 16 validation times).

The imager's seed is ``12345 + cycle`` (clouds, noise, biases and spectroscopy error on).
The analysis RMSE (area-weighted) of z500, t850, u250 and the tracer at 500 hPa against
the truth is scored inside the 105° E disc (zenith angle ≤ 70°) and globally, each cycle.
En4DVar cycling is optional (``--en4dvar``): about 10–20 s per analysis on this machine.

    python examples/fuxi_da_cycling.py [--days 10] [--en4dvar]
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

from xfuxi.assimilation.config import BackgroundError, Minimiser
from xfuxi.assimilation.cycle import CycleConfig, CycleMethod, cycle
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
#: the clear-sky screening threshold chosen on the validation split (K; see
#: benchmarks/results/fuxi_da_vs_en4dvar_varbc.json, "chosen")
THRESHOLD = 4.0


def region_rmse(err: np.ndarray, weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Area-weighted RMSE over the points of ``mask``: ``(T, C, H, W) → (T, C)``."""
    w = weights[:, None] * mask
    return np.sqrt((err**2 * w).sum((-2, -1)) / w.sum())


def en4dvar_methods(model, args) -> dict:
    """The ``--en4dvar`` methods: the offline bias fit, its clear-sky errors and the 6-hour
    forecast-error spread from the validation split (as examples/fuxi_da_vs_en4dvar.py)."""
    from fuxi_da_vs_en4dvar import Split, bias_fit

    import xfuxi
    from xfuxi.assimilation.calibration import spread_values
    from xfuxi.assimilation.radiance_cycle import RadianceEn4DVarMethod

    fit = Split(model, "validation", 12, 5, args.fit_times, 54321, 1)
    bc, err, _ = bias_fit(model, fit, THRESHOLD)
    std = xfuxi.background_error_std(fit.truth, model=model, lead_steps=1, by_latitude=True)
    options = {
        "spread": spread_values(std, model.channels, model.latitude),
        "radiance_error": err,
        "screen_threshold": THRESHOLD,
    }
    if args.members is not None:
        options["background_error"] = BackgroundError(n_members=args.members)
    if args.max_iter is not None:
        options["minimiser"] = Minimiser(max_iter=args.max_iter)
    methods = {
        "En4DVar clear+BC": RadianceEn4DVarMethod(bias=bc, name="En4DVar clear+BC", **options)
    }
    for std in args.varbc_std:  # one VarBC variant per prior std (K per unit predictor)
        name = varbc_name(std, args.varbc_std)
        methods[name] = RadianceEn4DVarMethod(varbc=bc, varbc_std=std, name=name, **options)
    return methods


def varbc_name(std: float, stds: list[float]) -> str:
    """The VarBC variant's name: its prior std in it when several are run."""
    return "En4DVar clear+VarBC" + ("" if len(stds) == 1 else f" σβ={std:g}")


def run_variant(truth, model, method, satellites, n_cycles, store):
    if not isinstance(method, CycleMethod):
        method = FuXiDAMethod(method, allow_new_satellites=len(satellites) > 1)
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
    p.add_argument("--en4dvar", action="store_true",
                   help="also cycle En4DVar with radiances: offline BC and VarBC")  # fmt: skip
    p.add_argument("--fit-times", type=int, default=16, help="--en4dvar: bias-fit times")
    p.add_argument(
        "--varbc-std",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[1.0],
        help="--en4dvar: VarBC prior std of the coefficients (K per unit predictor), one "
        "variant per comma-separated value (default 1)",
    )
    p.add_argument("--members", type=int, default=None, help="--en4dvar smoke runs only")
    p.add_argument("--max-iter", type=int, default=None, help="--en4dvar smoke runs only")
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
    if args.en4dvar:
        methods = en4dvar_methods(model, args)
        variants += [(n, m, (105.0,)) for n, m in methods.items()]

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
                # FuXi-DA: by pixel group; En4DVar: of the (clear-looking) radiances used
                clear = s.sel(group="clear") if "group" in s.dims else s
                diagnostics[name] = {
                    "rms_omb_clear_mean": clear["radiance_rms_omb"].mean("time").to_series(),
                    "rms_oma_clear_mean": clear["radiance_rms_oma"].mean("time").to_series(),
                }
            if "varbc_rms" in s:
                diagnostics[name]["varbc_rms_per_cycle"] = pd.Series(s["varbc_rms"].values)
            print(f"{name}: {n_cycles} cycles in {wall:.0f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    series["free run"] = {r: region_rmse(free - tr, weights, m) for r, m in regions.items()}

    order = ["free run", "CORR", "ASSI 1 sat", "ASSI 3 sats"]
    order += [n for n in series if n.startswith("En4DVar")]
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
            "variants": {
                n: {"model": m if isinstance(m, str) else m.settings(), "satellites": list(s)}
                for n, m, s in variants
            },
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
