"""Cycled assimilation targets (issue 22): Lorenz-96 and the Held–Suarez world, all methods.

Lorenz-96 (40 variables, F = 8, every variable observed every 0.05 time units, R = I):
the LETKF (40 members) and the cycled-ensemble En4DVar through :func:`xfuxi.cycle` (the
same code as the world), ``--l96-cycles`` cycles with the first ``--l96-burn-in`` left out.
World: the free run, Perlin En4DVar, static-B 3D-Var, LETKF and cycled-ensemble En4DVar
with ``--sites`` radiosondes for ``--days`` days (``--days 0`` skips the world).

    python benchmarks/bench_cycling.py --days 0                  # Lorenz-96 only
    python benchmarks/bench_cycling.py --l96-cycles 0 --days 3   # the world only

Writes ``benchmarks/results/cycling_lorenz96_<methods>.json`` (``_letkf``, ``_en4dvar``,
or ``_letkf_en4dvar`` for the default ``--l96-methods letkf,en4dvar``) and
``cycling_world.json`` (atomically) and prints the target table; the recorded files come
from ``--l96-methods letkf`` and ``--l96-methods en4dvar`` run one at a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def l96_cycled_en4dvar(
    n_cycles: int, burn_in: int, seed: int = 0, store: str | None = None
) -> dict:
    """The cycled-ensemble En4DVar on Lorenz-96 through the generic driver."""
    from xfuxi.assimilation.config import (
        BackgroundError,
        LocalizationOptions,
        QualityControl,
    )
    from xfuxi.assimilation.cycle import CycleConfig, En4DVarMethod, cycle
    from xfuxi.assimilation.letkf import LETKFOptions
    from xfuxi.experiments.lorenz96 import Lorenz96Network, lorenz96_truth
    from xfuxi.models.lorenz96 import lorenz96_model

    model = lorenz96_model()
    truth = lorenz96_truth(n_states=n_cycles + 20, seed=seed)
    method = En4DVarMethod(
        background_error=BackgroundError(
            n_members=40, perturbation_std=(1.0,), wavelength=1, octaves=1
        ),
        localization=LocalizationOptions(length_scale=4.0, n_points=40, variance=0.999),
        quality_control=QualityControl(qc_threshold=None),
        members="cycled",
        letkf=LETKFOptions(n_members=40, inflation=1.03, qc_threshold=None),
        letkf_localization=LocalizationOptions(length_scale=None),
        initial=BackgroundError(amplitude=1.0, wavelength=1, octaves=1, perturbation_std=(1.0,)),
        name="cycled-ensemble En4DVar",
    )
    tic = time.perf_counter()
    run = cycle(
        truth,
        Lorenz96Network(seed=seed),
        method=method,
        model=model,
        config=CycleConfig(
            n_cycles=n_cycles, lead_steps=2, initial_error=1.0, seed=seed, save_states=False
        ),
        store=store,
    )
    s = run.scores.isel(time=slice(burn_in, None))
    return {
        "method": method.name,
        "analysis_rmse": float(s["analysis_error"].mean()),
        "background_rmse": float(s["background_error"].mean()),
        "spread": float(s["spread"].mean()),
        "mean_iterations": float(s["iterations"].mean()),
        "n_cycles": n_cycles,
        "burn_in": burn_in,
        "wall_time_s": time.perf_counter() - tic,
    }


def l96_letkf(n_cycles: int, burn_in: int, seed: int = 0, store: str | None = None) -> dict:
    from xfuxi.experiments.lorenz96 import Lorenz96LETKFConfig, lorenz96_letkf

    config = Lorenz96LETKFConfig(
        n_cycles=n_cycles,
        burn_in=burn_in,
        inflation=1.03,
        rtps=0.0,
        localization_length=None,
        seed=seed,
    )
    out = lorenz96_letkf(config=config)
    a = out.attrs
    return {
        "method": "LETKF",
        "analysis_rmse": a["mean_analysis_rmse"],
        "background_rmse": a["mean_background_rmse"],
        "spread": a["mean_analysis_spread"],
        "n_cycles": n_cycles,
        "burn_in": burn_in,
        "wall_time_s": a["wall_time_s"],
    }


def summarise_l96_store(store: str, burn_in: int) -> dict:
    """The figures of the complete cycles in a driver store (e.g. a run cut short)."""
    from xfuxi.assimilation.cycle import open_cycle

    scores = open_cycle(store)
    s = scores.isel(time=slice(burn_in, None))
    return {
        "method": "cycled-ensemble En4DVar",
        "analysis_rmse": float(s["analysis_error"].mean()),
        "background_rmse": float(s["background_error"].mean()),
        "spread": float(s["spread"].mean()),
        "mean_iterations": float(s["iterations"].mean()),
        "n_cycles": int(scores.sizes["time"]),
        "burn_in": burn_in,
        "complete": False,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--l96-cycles", type=int, default=3200)
    p.add_argument("--l96-burn-in", type=int, default=200)
    p.add_argument("--l96-methods", default="letkf,en4dvar")
    p.add_argument(
        "--l96-store", default=None, help="store of the driver's run (resumable; en4dvar)"
    )
    p.add_argument("--days", type=float, default=0.0, help="world run length (0: skip)")
    p.add_argument("--sites", type=int, default=300)
    p.add_argument("--members", type=int, default=40)
    p.add_argument(
        "--summarise-l96-store", action="store_true", help="only tabulate --l96-store's cycles"
    )
    a = p.parse_args()
    torch.set_num_threads(1)
    from xfuxi.files import atomic_write_json

    if a.summarise_l96_store:
        row = summarise_l96_store(a.l96_store, a.l96_burn_in)
        atomic_write_json(
            RESULTS / "cycling_lorenz96_en4dvar.json",
            {"target": "analysis RMSE <= 0.20", "command": " ".join(sys.argv), "rows": [row]},
        )
        print(json.dumps(row))
        return

    RESULTS.mkdir(exist_ok=True)
    if a.l96_cycles > 0:
        rows = []
        for name in a.l96_methods.split(","):
            fn = {"letkf": l96_letkf, "en4dvar": l96_cycled_en4dvar}[name]
            rows.append(fn(a.l96_cycles, a.l96_burn_in, store=a.l96_store))
            print(json.dumps(rows[-1]), flush=True)
        atomic_write_json(
            RESULTS / f"cycling_lorenz96{'_' + a.l96_methods.replace(',', '_')}.json",
            {"target": "analysis RMSE <= 0.20", "command": " ".join(sys.argv), "rows": rows},
        )
        print(f"\n{'Lorenz-96 method':28s} {'analysis RMSE':>14s} {'target':>8s} {'met':>5s}")
        for r in rows:
            ok = r["analysis_rmse"] <= 0.20
            print(f"{r['method']:28s} {r['analysis_rmse']:14.3f} {'0.20':>8s} {str(ok):>5s}")
    if a.days > 0:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
        from cycling_world import run_world  # type: ignore[import-not-found]

        out = run_world(days=a.days, sites=a.sites, members=a.members)
        atomic_write_json(RESULTS / "cycling_world.json", out)
        print(json.dumps(out["table"], indent=1))
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()
