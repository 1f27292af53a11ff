"""FuXi-DA cycling on a split of the world: one satellite, three satellites, CORR, free run.

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
* with ``--en4dvar``, also En4DVar
  (:class:`~xfuxi.assimilation.radiance_cycle.RadianceEn4DVarMethod`: Perlin
  En4DVar from the cycle's 6-hour background, one slot at the analysis time, the
  settings chosen on the validation split by ``examples/fuxi_da_vs_en4dvar.py``: B variances
  of the 6-hour forecast error, clear-sky screening at 4 K, the clear-sky error of the
  corrected departures, the offline bias fit on 16 validation times), each a choice of
  ``--en4dvar-sets``:

  - ``bc``: **En4DVar clear+BC**, the radiances of the satellite at 105° E, offline bias fit;
  - ``varbc``: **En4DVar clear+VarBC**, VarBC from that fit, its coefficients cycled (one
    variant per ``--varbc-std``);
  - ``sondes``: **En4DVar sondes**, 300 radiosonde sites only
    (:class:`~xfuxi.assimilation.cycle.En4DVarMethod`, one slot);
  - ``bc+sondes``: **En4DVar clear+BC+sondes**, both;
  - ``bc3`` and ``bc3+sondes``: the same with the three satellites (0°, 105° E, 240° E);
  - ``bc-cycled``: **En4DVar clear+BC cycled ens.**, ``bc`` with B from 40 members carried
    from cycle to cycle (updated by the LETKF with the same corrected radiances, RTPS
    ``--cycled-rtps``, recentred on the analysis; the first members the first background
    plus Perlin noise of amplitude ``--cycled-initial``; by default the settings of the
    radiosonde runs of ``examples/cycling_world.py``) instead of fresh Perlin members (not
    in the default sets); ``bc-cycled+sondes``, ``bc3-cycled`` and ``bc3-cycled+sondes``
    the same with radiosondes too (the LETKF updates the members with both), with three
    satellites, or both.

  With radiosondes the localization is Gaspari–Cohn 1500 km with vertical localization 1.0
  (ln p), as :func:`~xfuxi.assimilation.radiances.radiance_analysis` sets for them.

The imager's seed is ``12345 + cycle`` (clouds, noise, biases and spectroscopy error on).
The analysis RMSE (area-weighted) of z500, t850, u250 and the tracer at 500 hPa against
the truth is scored inside the 105° E disc (zenith angle ≤ 70°) and globally, each cycle.
The table has means over the first and the last 3 days, and over days 2–5 and 6–11
(``--days`` ≥ 11); ``targets`` in the JSON file has, per variant, the ratio of days 6–11 to
days 2–5 (the issue's steadiness target ≤ 1.15) and of days 6–11 to the free run inside the
disc (≤ 0.75 with one satellite). En4DVar cycling is optional (``--en4dvar``): about 10–30 s
per analysis on this machine; ``--workers 2`` runs two variants at a time.

    python examples/fuxi_da_cycling.py --split test [--days 11] [--en4dvar] [--workers 2]
    python examples/fuxi_da_cycling.py --split test --truncation 21 \
        --out benchmarks/results/fuxi_da_cycling_T21.json \
        --figure examples/figures/fuxi_da_cycling_T21.png   # the model with the T21 filter

``--split`` is required: validation for choices, test only to report.

Writes ``benchmarks/results/fuxi_da_cycling.json`` and ``.md`` and
``examples/figures/fuxi_da_cycling.png`` (with another ``--out``, the figure goes beside it).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from xfuxi.assimilation.config import BackgroundError, LocalizationOptions, Minimiser
from xfuxi.assimilation.cycle import (
    CycleConfig,
    CycleMethod,
    En4DVarMethod,
    RadiosondeNetwork,
    cycle,
)
from xfuxi.assimilation.da import resolve_da_model
from xfuxi.assimilation.da_cycle import FuXiDAMethod, ImagerNetwork
from xfuxi.data.channels import channel_name, stack
from xfuxi.datasets import held_suarez_split
from xfuxi.files import atomic_write_bytes, atomic_write_file, atomic_write_json
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
THREE = (0.0, 105.0, 240.0)
#: the radiosonde network of the ``sondes`` variants
SITES = 300
#: the ``--en4dvar-sets`` choices: (name, bias handling, satellites or None, radiosondes)
EN4DVAR_SETS = {
    "bc": ("En4DVar clear+BC", "bc", (105.0,), False),
    "varbc": ("En4DVar clear+VarBC", "varbc", (105.0,), False),
    "sondes": ("En4DVar sondes", None, None, True),
    "bc+sondes": ("En4DVar clear+BC+sondes", "bc", (105.0,), True),
    "bc3": ("En4DVar clear+BC 3 sats", "bc", THREE, False),
    "bc3+sondes": ("En4DVar clear+BC+sondes 3 sats", "bc", THREE, True),
    "bc-cycled": ("En4DVar clear+BC cycled ens.", "bc", (105.0,), False),
    "bc-cycled+sondes": ("En4DVar clear+BC+sondes cycled ens.", "bc", (105.0,), True),
    "bc3-cycled": ("En4DVar clear+BC 3 sats cycled ens.", "bc", THREE, False),
    "bc3-cycled+sondes": ("En4DVar clear+BC+sondes 3 sats cycled ens.", "bc", THREE, True),
}
#: the sets run by default
DEFAULT_SETS = ["bc", "varbc", "sondes", "bc+sondes", "bc3", "bc3+sondes"]


def scoring(truth, model) -> tuple[list[int], np.ndarray, dict[str, np.ndarray]]:
    """The model's channel indices of :data:`SCORED`, the area weights (H,) and the regions
    (inside the 105° E disc, global) as masks (H, W)."""
    names = [channel_name(c) for c in model.channels]
    idx = [names.index(channel_name(c)) for c in SCORED]
    lat, lon = truth["latitude"].values, truth["longitude"].values
    weights = np.asarray(area_weights(lat).values, dtype="float64")
    zen, _ = zenith_angle(lat, lon, satellites=[105.0])
    regions = {"inside": np.isfinite(np.asarray(zen)), "global": np.ones(zen.shape, bool)}
    return idx, weights, regions


def region_rmse(err: np.ndarray, weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Area-weighted RMSE over the points of ``mask``: ``(T, C, H, W) → (T, C)``."""
    w = weights[:, None] * mask
    return np.sqrt((err**2 * w).sum((-2, -1)) / w.sum())


def en4dvar_methods(model, args) -> list[tuple[str, CycleMethod, tuple, bool]]:
    """The ``--en4dvar`` variants ``(name, method, satellites, radiosondes)``: the offline
    bias fit, its clear-sky errors and the 6-hour forecast-error spread from the validation
    split (as examples/fuxi_da_vs_en4dvar.py)."""
    from fuxi_da_vs_en4dvar import Split, bias_fit

    import xfuxi
    from xfuxi.assimilation.calibration import spread_values
    from xfuxi.assimilation.radiance_cycle import RadianceEn4DVarMethod

    fit = Split(model, "validation", 12, 5, args.fit_times, 54321, 1)
    bc, err, _ = bias_fit(model, fit, THRESHOLD)
    std = xfuxi.background_error_std(fit.truth, model=model, lead_steps=1, by_latitude=True)
    common = {"spread": spread_values(std, model.channels, model.latitude)}
    if args.members is not None:
        common["background_error"] = BackgroundError(n_members=args.members)
    if args.max_iter is not None:
        common["minimiser"] = Minimiser(max_iter=args.max_iter)
    radiance = {"radiance_error": err, "screen_threshold": THRESHOLD}
    vertical = {"localization": LocalizationOptions(length_scale=1500.0, vertical_length_scale=1.0)}
    # radiances alone: 2000 km, the cycling methods' default when the recorded runs were made
    horizontal = {"localization": LocalizationOptions(length_scale=2000.0)}
    out = []
    for key in args.en4dvar_sets:
        name, bias, sats, sondes = EN4DVAR_SETS[key]
        extra = vertical if sondes else horizontal
        if bias is None:  # radiosondes only
            method = En4DVarMethod(n_slots=1, name=name, **common, **extra)
            out.append((name, method, (), True))
        elif "-cycled" in key:  # one variant per initial spread and RTPS
            from xfuxi.assimilation.letkf import LETKFOptions

            for amp in args.cycled_initial:
                for rtps in args.cycled_rtps:
                    vname = name
                    if len(args.cycled_initial) * len(args.cycled_rtps) > 1:
                        vname = f"{name} a={amp:g} rtps={rtps:g}"
                    method = RadianceEn4DVarMethod(
                        bias=bc, name=vname, members="cycled",
                        letkf=LETKFOptions(n_members=40, rtps=rtps, qc_threshold=5.0),
                        initial=BackgroundError(amplitude=amp), **common, **radiance, **extra,
                    )  # fmt: skip
                    out.append((vname, method, sats, sondes))
        elif bias == "bc":
            method = RadianceEn4DVarMethod(bias=bc, name=name, **common, **radiance, **extra)
            out.append((name, method, sats, sondes))
        else:  # one VarBC variant per prior std (K per unit predictor)
            for std in args.varbc_std:
                vname = varbc_name(std, args.varbc_std)
                method = RadianceEn4DVarMethod(
                    varbc=bc, varbc_std=std, name=vname, **common, **radiance, **extra
                )
                out.append((vname, method, sats, sondes))
    return out


def varbc_name(std: float, stds: list[float]) -> str:
    """The VarBC variant's name: its prior std in it when several are run."""
    return "En4DVar clear+VarBC" + ("" if len(stds) == 1 else f" σβ={std:g}")


def network_for(satellites, sondes: bool, frames):
    """The observation network of a variant (no satellites: radiosondes only); ``frames``:
    those the ASSI network was trained with."""
    if not satellites:
        return RadiosondeNetwork(n_sites=SITES)
    imager = ImagerNetwork(satellites=satellites, frames=tuple(frames), seed=SEED)
    if not sondes:
        return imager
    from xfuxi.assimilation.radiance_cycle import ImagerSondeNetwork

    return ImagerSondeNetwork(imager, RadiosondeNetwork(n_sites=SITES))


def load_forecast_model(name: str, truncation: int | None):
    model = load_model(name)
    if truncation is not None:
        from xfuxi.models.spectral import with_spectral_filter

        model = with_spectral_filter(model, truncation)
    return model


def run_variant(
    truth, model_spec, method, satellites, sondes, n_cycles, store, frames, threads=None,
    precision="float32",
):  # fmt: skip
    """One variant's cycle: ``(name, scores, analyses, free-run states, wall time)``; runs
    in a worker process with ``--workers`` (the model is loaded there from ``model_spec``;
    ``precision``: the FuXi-DA variants')."""
    if threads is not None:
        torch.set_num_threads(threads)
    model = load_forecast_model(*model_spec)
    if not isinstance(method, CycleMethod):
        method = FuXiDAMethod(method, allow_new_satellites=len(satellites) > 1, precision=precision)
    tic = time.perf_counter()
    run = cycle(
        truth,
        network_for(satellites, sondes, frames),
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
    return run.scores.load(), analysis, free, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=float, default=11.0)
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument(
        "--truncation", type=int, default=None,
        help="spectral truncation of every forecast step (21: the world's; docs/cycling.md)",
    )  # fmt: skip
    p.add_argument("--split", required=True, choices=("test", "validation"),
                   help="validation for choices, test only to report")  # fmt: skip
    p.add_argument("--assi", default="fuxi-da-hs-t21", help="FuXi-DA model (name or directory)")
    p.add_argument("--corr", default="fuxi-da-hs-t21-corr", help="CORR model (name or directory)")
    p.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                   help="the FuXi-DA variants' precision (FuXiDAMethod)")  # fmt: skip
    p.add_argument("--en4dvar", action="store_true",
                   help="also cycle En4DVar with radiances: offline BC and VarBC")  # fmt: skip
    p.add_argument(
        "--en4dvar-sets",
        type=lambda v: v.split(","),
        default=DEFAULT_SETS,
        help="--en4dvar: which En4DVar variants, comma-separated, of "
        + ", ".join(EN4DVAR_SETS) + " (default " + ",".join(DEFAULT_SETS) + ")",
    )  # fmt: skip
    floats = lambda v: [float(x) for x in v.split(",")]  # noqa: E731
    p.add_argument("--cycled-initial", type=floats, default=[0.1],
                   help="bc-cycled: the first members' Perlin amplitude (fraction of the "
                   "climatological std), one variant per value (default 0.1)")  # fmt: skip
    p.add_argument("--cycled-rtps", type=floats, default=[0.8],
                   help="bc-cycled: the LETKF's relaxation to prior spread, one variant per "
                   "value (default 0.8)")  # fmt: skip
    p.add_argument("--workers", type=int, default=1,
                   help="variants at a time, each in its own process on one thread")  # fmt: skip
    p.add_argument("--fit-times", type=int, default=16, help="--en4dvar: bias-fit times")
    p.add_argument(
        "--varbc-std",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[0.02],
        help="--en4dvar: VarBC prior std of the coefficients (K per unit predictor), one "
        "variant per comma-separated value (default 0.02, chosen on the validation split)",
    )
    p.add_argument("--members", type=int, default=None, help="--en4dvar smoke runs only")
    p.add_argument("--max-iter", type=int, default=None, help="--en4dvar smoke runs only")
    p.add_argument("--out", default="benchmarks/results/fuxi_da_cycling.json")
    p.add_argument(
        "--figure",
        default=None,
        help="the figure (default: examples/figures/fuxi_da_cycling.png with the default --out, "
        "else beside --out with its name and .png, so that a run with its own --out leaves "
        "the other runs' figures alone)",
    )
    args = p.parse_args()
    unknown = sorted(set(args.en4dvar_sets) - set(EN4DVAR_SETS))
    if unknown:
        p.error(f"unknown --en4dvar-sets {unknown}; known: {list(EN4DVAR_SETS)}")
    if args.workers < 1:
        p.error(f"--workers must be >= 1; got {args.workers}")
    models = {"fuxi-da-hs-t21": args.assi, "fuxi-da-hs-t21-corr": args.corr}
    variants = [(n, models[m], sats, False) for n, m, sats in VARIANTS]
    frames = tuple(resolve_da_model(args.assi).frames)  # the imager's frames: the network's
    t_start = time.perf_counter()
    model_spec = (args.model, args.truncation)
    model = load_forecast_model(*model_spec)
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
    idx, weights, regions = scoring(truth, model)
    if args.en4dvar:
        variants += en4dvar_methods(model, args)

    work = Path(tempfile.mkdtemp(prefix="dacycle_"))
    series: dict[str, dict[str, np.ndarray]] = {}
    walls, diagnostics = {}, {}
    free, pool = None, None
    try:
        jobs = {
            name: (truth, model_spec, method, sats, sondes, n_cycles,
                   work / name.replace(" ", "_").replace("+", "_"), frames)
            for name, method, sats, sondes in variants
        }  # fmt: skip
        if args.workers == 1:
            results = (
                (name, run_variant(*job, precision=args.precision)) for name, job in jobs.items()
            )
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(
                args.workers, mp_context=multiprocessing.get_context("spawn")
            )
            # the costliest (the En4DVar variants, listed last) first
            futures = {
                name: pool.submit(run_variant, *jobs[name], threads=1, precision=args.precision)
                for name in reversed(jobs)
            }
            results = ((name, futures[name].result()) for name in jobs)
        for name, (s, analysis, free_states, wall) in results:
            walls[name] = wall
            series[name] = {r: region_rmse(analysis - tr, weights, m) for r, m in regions.items()}
            if free is None:
                free = free_states
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
        if pool is not None:
            pool.shutdown(cancel_futures=True)
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
    if n_cycles >= 11 * per_day:  # the steadiness target: days 6-11 against days 2-5
        periods["days 2-5"] = slice(per_day, 5 * per_day)
        periods["days 6-11"] = slice(5 * per_day, 11 * per_day)
    table = []
    for region in regions:
        for j, c in zip(idx, SCORED, strict=True):
            for period, sl in periods.items():
                row = {"region": region, "channel": channel_name(c), "period": period}
                for v in order:
                    row[v] = float(series[v][region][sl, j].mean())
                table.append(row)
    targets = []
    if "days 6-11" in periods:
        late, early = periods["days 6-11"], periods["days 2-5"]
        for region in regions:
            for j, c in zip(idx, SCORED, strict=True):
                free_late = float(series["free run"][region][late, j].mean())
                for v in order:
                    e = series[v][region][:, j]
                    targets.append({
                        "region": region, "channel": channel_name(c), "variant": v,
                        "days 6-11 / days 2-5": float(e[late].mean() / e[early].mean()),
                        "days 6-11 / free run": float(e[late].mean()) / free_late,
                    })  # fmt: skip
    result = {
        "settings": {
            "days": args.days,
            "n_cycles": n_cycles,
            "start": str(t0),
            "first_background": "2-step (12-hour) forecast of the truth",
            "model": model.name,
            "imager_seed": f"{SEED} + cycle",
            "split": args.split,
            "precision": args.precision,
            "variants": {
                n: {
                    "model": m if isinstance(m, str) else m.settings(),
                    "satellites": list(s),
                    "radiosonde_sites": SITES if sondes else 0,
                }
                for n, m, s, sondes in variants
            },
            "inside": "zenith angle <= 70 deg from the satellite at 105 E",
        },
        "table": table,
        "targets": targets,
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
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    lines = ["| region | channel | period | " + " | ".join(order) + " |"]
    lines.append("|---" * (3 + len(order)) + "|")
    for r in table:
        cells = [f"{r[v]:.4g}" for v in order]
        lines.append(
            f"| {r['region']} | {r['channel']} | {r['period']} | " + " | ".join(cells) + " |"
        )
    atomic_write_bytes(out.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    if args.figure:
        path = Path(args.figure)
    elif out == Path(p.get_default("out")):
        path = Path("examples/figures/fuxi_da_cycling.png")
    else:
        path = out.with_suffix(".png")
    figure(series, order, regions, idx, cycle_times, path, split=args.split)


def figure(series, order, regions, idx, cycle_times, path: Path, split: str = "test") -> None:
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
    fig.suptitle(f"FuXi-DA cycling: analysis RMSE against the truth (world's {split} split)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_file(path, lambda p: fig.savefig(p, format="png", dpi=80))


if __name__ == "__main__":
    main()
