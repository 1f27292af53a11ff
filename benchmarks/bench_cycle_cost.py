"""The cost of one world cycle of the cycled-ensemble En4DVar, part by part (issue 22 target).

One 6-hourly cycle on the Held–Suarez world with 300 radiosonde sites, ``--members``
members (default 50), the settings of ``examples/cycling_world.py`` (the shipped model with
the T21 filter, Gaspari–Cohn 1000 km and vertical localization): the wall time of the
observation draw and screening, the 4DVar analysis, the LETKF update of the members, the
member forecast and the rest of the driver (scoring), averaged over ``--cycles`` cycles
(the first included: it also builds the localization), and the process's peak resident
memory. The same for the LETKF alone. Target: ≤ 60 s and ≤ 4 GB a cycle with 50 members.

    python benchmarks/bench_cycle_cost.py --threads 2      # about 3 minutes
    python benchmarks/bench_cycle_cost.py --threads 1      # one core of the machine

Writes ``benchmarks/results/cycle_cost.json``.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from collections import defaultdict
from pathlib import Path

import torch

import xfuxi
import xfuxi.assimilation.cycle as cyc
from xfuxi.assimilation.config import BackgroundError, LocalizationOptions
from xfuxi.assimilation.letkf import LETKFOptions
from xfuxi.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def _timed(parts: dict, name: str, fn):
    def wrapper(*args, **kwargs):
        tic = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            parts[name].append(time.perf_counter() - tic)

    return wrapper


def measure(method_key: str, members: int, cycles: int, model, truth) -> dict:
    parts: dict[str, list[float]] = defaultdict(list)
    loc = LocalizationOptions(length_scale=1000.0, vertical_length_scale=1.0)
    letkf = LETKFOptions(n_members=members, rtps=0.8, qc_threshold=5.0)
    if method_key == "cycled":
        method = cyc.En4DVarMethod(
            background_error=BackgroundError(n_members=members),
            localization=loc,
            members="cycled",
            letkf=letkf,
            name="cycled-ensemble En4DVar",
        )
    else:
        method = cyc.LETKFMethod(options=letkf, localization=loc)
    saved = {k: getattr(cyc, k) for k in ("en4dvar_analysis", "_letkf_update", "forecast_members")}
    cyc.en4dvar_analysis = _timed(parts, "4DVar analysis", saved["en4dvar_analysis"])
    cyc._letkf_update = _timed(parts, "LETKF update of the members", saved["_letkf_update"])
    cyc.forecast_members = _timed(parts, "member forecast", saved["forecast_members"])
    method.observe = _timed(parts, "observations (draw, screen, slots)", method.observe)
    try:
        tic = time.perf_counter()
        run = cyc.cycle(
            truth,
            cyc.RadiosondeNetwork(n_sites=300),
            method=method,
            model=model,
            config=cyc.CycleConfig(n_cycles=cycles),
            progress=False,
        )
        total = time.perf_counter() - tic
    finally:
        for k, v in saved.items():
            setattr(cyc, k, v)
    n = cycles
    out = {
        "members": members,
        "cycles": n,
        "total_per_cycle_s": total / n,
        "first_cycle_analysis_s": float(run.scores["wall_time_s"].values[0]),
        "parts_s": {name: sum(values) / n for name, values in parts.items()},
    }
    out["parts_s"]["rest of the driver (scores, free run)"] = out["total_per_cycle_s"] - sum(
        out["parts_s"].values()
    )
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=50)
    p.add_argument("--cycles", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--methods", default="cycled,letkf")
    p.add_argument("--out", default=str(RESULTS / "cycle_cost.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    xfuxi.set_options(progress=False)
    model = xfuxi.with_spectral_filter(xfuxi.load_model("fuxi-hs-t21"), truncation=21)
    truth = xfuxi.held_suarez_split("test", days=5).load()
    out = {
        "threads": a.threads,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        "torch threads",
        "methods": {},
    }
    for key in a.methods.split(","):
        res = measure(key, a.members, a.cycles, model, truth)
        out["methods"][key] = res
        total, rss = res["total_per_cycle_s"], res["peak_rss_gb"]
        print(f"\n{key}, {a.members} members, {a.threads} thread(s): "
              f"{total:.1f} s a cycle, peak RSS {rss:.2f} GB")  # fmt: skip
        print("| part | s a cycle |\n|---|---:|")
        for name, sec in res["parts_s"].items():
            print(f"| {name} | {sec:.2f} |")
    atomic_write_json(Path(a.out), out)
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
