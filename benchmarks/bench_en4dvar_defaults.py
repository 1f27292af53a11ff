"""En4DVar with its defaults, as a new user calls it (issue 22 item 5).

``xfuxi.assimilate_4dvar(bg, obs, model=...)`` with nothing else set, on 60 radiosonde
columns (z, T, u, v at every level, two slots), against the old defaults and the steps
between them. Backgrounds are ``world_background`` forecasts of ``--lead`` steps; the score
per analysis is the median over variable-levels of the gain ``1 − RMSE(analysis) /
RMSE(background)`` (area-weighted RMSE against the truth at t0).

The variants are scored on the **validation** split; ``--test`` scores the new defaults
(only them) once on the test split. The shipped background-error statistics come from the
train split (``--ship`` recomputes them and writes them into the shipped model's directory).

    python benchmarks/bench_en4dvar_defaults.py                 # validation, all variants
    python benchmarks/bench_en4dvar_defaults.py --test          # the new defaults on test
    python benchmarks/bench_en4dvar_defaults.py --ship          # (re)compute the statistics

Writes ``benchmarks/results/en4dvar_defaults.json`` (atomically; the runs of each split are
kept side by side) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

import xfuxi
from xfuxi.assimilation.calibration import (
    background_error_std,
    model_background_error,
    save_background_error,
)
from xfuxi.assimilation.config import BackgroundError, LocalizationOptions, Minimiser
from xfuxi.assimilation.cycling import world_background
from xfuxi.files import atomic_write_json
from xfuxi.grid import area_weights
from xfuxi.observations.sets import radiosonde_observations

RESULTS = Path(__file__).resolve().parent / "results" / "en4dvar_defaults.json"
VARIABLES = ["geopotential", "temperature", "u_component_of_wind", "v_component_of_wind"]


def variants(model) -> dict[str, dict]:
    """The settings compared (keyword arguments of ``assimilate_4dvar`` besides the data)."""
    old_loc = LocalizationOptions(length_scale=2000.0, vertical_length_scale=0.0)
    shipped = model_background_error(model)
    return {
        # the defaults before issue 22 item 5, spelled out
        "old defaults": {"localization": old_loc, "spread": "ensemble"},
        "+ shipped B std": {"localization": old_loc},
        "+ vertical 1.0": {"localization": LocalizationOptions(length_scale=2000.0)},
        "+ 1500 km": {"localization": LocalizationOptions(length_scale=1500.0)},
        "+ cross-variable 0.5": {
            "localization": LocalizationOptions(length_scale=1500.0, cross_variable=0.5)
        },
        # is the shipped std (24-hour error) the right size for 24-hour backgrounds?
        "B std x 0.67": {"spread": shipped * (2 / 3)},
        "B std x 1.5": {"spread": shipped * 1.5},
        "B std x 0.5": {"spread": shipped * 0.5},
        "+ amplitude 0.15": {"background_error": BackgroundError(amplitude=0.15)},
        "+ 100 iterations": {"minimiser": Minimiser(max_iter=100)},
        "new defaults": {},
    }


def obs_errors(model, fraction: float = 0.1) -> dict[str, float]:
    """σo per variable: ``fraction`` × the model's mean normalization std over levels."""
    out: dict[str, list[float]] = {}
    for (v, _), s in zip(model.channels, np.asarray(model.stats.std)):
        out.setdefault(v, []).append(float(s))
    return {v: fraction * float(np.mean(s)) for v, s in out.items()}


def gains(analysis, background, truth, model) -> dict[str, float]:
    """``1 − RMSE(analysis)/RMSE(background)`` per variable-level (area-weighted)."""
    w = area_weights(truth["latitude"])
    out = {}
    for v, lev in model.channels:
        sel = {} if lev is None else {"level": lev}

        def rmse(ds, v=v, sel=sel):
            d = (ds[v].sel(sel) - truth[v].sel(sel)) ** 2
            return float(np.sqrt(d.weighted(w).mean(("latitude", "longitude"))))

        name = v if lev is None else f"{v}@{lev:g}"
        out[name] = 1.0 - rmse(analysis) / rmse(background)
    return out


def run_split(split: str, names: list[str], a, model) -> dict:
    truth = xfuxi.held_suarez_split(split, days=a.days).load()
    step = pd.Timedelta(model.timestep)
    idx = np.linspace(a.lead + 4, truth.sizes["time"] - 3, a.times).astype(int)
    out: dict = {}
    for i in idx:
        t0 = pd.Timestamp(truth["time"].values[i])
        bg = world_background(truth, model=model, time=t0, lead_steps=a.lead)
        obs = radiosonde_observations(
            truth, n_sites=a.sites, error=obs_errors(model), times=[t0, t0 + step],
            seed=int(i), variables=VARIABLES,
        )  # fmt: skip
        tr = truth.sel(time=t0)
        for name in names:
            kw = dict(variants(model)[name])
            if a.members:
                be = kw.get("background_error", BackgroundError())
                kw["background_error"] = be.replace(n_members=a.members)
            tic = time.perf_counter()
            res = xfuxi.assimilate_4dvar(bg, obs, model=model, progress=False, **kw)
            g = gains(res.analysis.sel(time=t0), bg.sel(time=t0), tr, model)
            row = out.setdefault(name, {"times": [], "median_gain": [], "gains": [], "s": []})
            row["times"].append(str(t0))
            row["median_gain"].append(float(np.median(list(g.values()))))
            row["gains"].append(g)
            row["s"].append(time.perf_counter() - tic)
            row["localization"] = res.analysis.attrs["localization"]
            row["spread"] = json.loads(res.analysis.attrs["config"])["spread"]
            print(
                f"{split} {t0:%Y-%m-%d %H} {name:22s} median gain {row['median_gain'][-1]:6.1%}"
                f"  max {max(g.values()):6.1%}  ({row['s'][-1]:.0f} s)",
                flush=True,
            )
    for row in out.values():
        per_channel = {k: float(np.mean([g[k] for g in row["gains"]])) for k in row["gains"][0]}
        row["mean_gain_per_channel"] = per_channel
        row["median_gain_mean"] = float(np.mean(row["median_gain"]))
        row["channels_over_20pct"] = int(sum(v >= 0.2 for v in per_channel.values()))
        del row["gains"]
    return out


def ship(a, model_name: str) -> None:
    """Compute the background-error std of ``model_name`` on the train split and ship it."""
    from xfuxi.models.registry import register_pretrained

    model = xfuxi.load_model(model_name)
    train = xfuxi.held_suarez_split("train", days=a.ship_days)
    std = background_error_std(
        train, model=model, lead_steps=a.ship_lead, n_samples=a.ship_samples, by_latitude=True
    )
    std.attrs["split"] = "train"
    directory = Path(model.config["source"])
    save_background_error(directory, std)
    register_pretrained(model_name)
    print(f"wrote {directory} background-error statistics (lead {a.ship_lead} steps)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument("--times", type=int, default=4, help="analysis times")
    p.add_argument("--days", type=int, default=30, help="days of the split loaded")
    p.add_argument("--lead", type=int, default=4, help="background lead in model steps")
    p.add_argument("--sites", type=int, default=60)
    p.add_argument("--members", type=int, default=0, help="members (0: the default, 200)")
    p.add_argument("--variants", nargs="*", default=None, help="subset of the variants")
    p.add_argument("--test", action="store_true", help="score the new defaults on test")
    p.add_argument("--ship", action="store_true", help="compute and ship the statistics")
    p.add_argument("--ship-lead", type=int, default=4)
    p.add_argument("--ship-days", type=int, default=120)
    p.add_argument("--ship-samples", type=int, default=64)
    a = p.parse_args()
    xfuxi.set_options(progress=False)
    if a.ship:
        ship(a, a.model)
        return
    model = xfuxi.load_model(a.model)
    split = "test" if a.test else "validation"
    names = ["new defaults"] if a.test else (a.variants or list(variants(model)))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    scored = run_split(split, names, a, model)
    settings = {k: getattr(a, k) for k in ("model", "times", "days", "lead", "sites", "members")}
    results.setdefault(split, {}).update(
        {n: {**r, "settings": settings} for n, r in scored.items()}
    )
    if a.test:
        results[split]["note"] = "only the new defaults are scored on the test split"
    atomic_write_json(RESULTS, results)
    print(f"\n{split}: median gain over variable-levels, mean over {a.times} analysis times")
    print(f"{'variant':24s} {'median gain':>12s} {'ch >= 20%':>10s} {'s/analysis':>11s}")
    for name, r in scored.items():
        print(
            f"{name:24s} {r['median_gain_mean']:12.1%} {r['channels_over_20pct']:10d} "
            f"{np.mean(r['s']):11.0f}"
        )


if __name__ == "__main__":
    main()
