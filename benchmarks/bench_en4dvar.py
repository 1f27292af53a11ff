"""Benchmark FuXi-En4DVar on the T21 Held–Suarez world (200 members by default).

Prints: time for member generation and for minimisation, iterations, time per iteration,
the ratio of one gradient (forward + backward through the model) to one cost evaluation,
and peak memory (max RSS of the process).

    python benchmarks/bench_en4dvar.py [--model fuxi-hs-t21] [--members 200] [--sites 100]
    python benchmarks/bench_en4dvar.py --vertical-localization 1.0
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import xfuxi
from xfuxi.assimilation.config import BackgroundError, LocalizationOptions
from xfuxi.assimilation.cycling import world_background
from xfuxi.assimilation.en4dvar import En4DVarProblem, ObsSlot
from xfuxi.assimilation.inputs import build_localization
from xfuxi.observations.sets import radiosonde_observations, screen_observations


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument("--members", type=int, default=200)
    p.add_argument("--sites", type=int, default=100)
    p.add_argument("--localization", type=float, default=2000.0)
    p.add_argument(
        "--vertical-localization",
        type=float,
        default=None,
        help="vertical Gaspari-Cohn half-width in ln p (default none)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave)")
    p.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "en4dvar.json"), help="results"
    )
    a = p.parse_args()
    load_start = os.getloadavg()[0]
    if a.threads:
        torch.set_num_threads(a.threads)
    xfuxi.set_options(progress=False)
    model = xfuxi.load_model(a.model)
    truth = xfuxi.held_suarez_split("test", days=15).load()
    t0 = truth["time"].values[40]
    bg = world_background(truth, model=model, time=t0, lead_steps=8)
    step = pd.Timedelta(model.timestep)
    times = [pd.Timestamp(t0), pd.Timestamp(t0) + step]
    err = {
        v: 0.1
        * float(np.mean([s for (vv, _), s in zip(model.channels, model.stats.std) if vv == v]))
        for v, _ in model.channels
    }
    obs = radiosonde_observations(
        truth,
        n_sites=a.sites,
        error=err,
        times=times,
        seed=0,
        variables=["geopotential", "temperature", "u_component_of_wind", "v_component_of_wind"],
    )
    tic = time.perf_counter()
    options = LocalizationOptions(
        length_scale=a.localization, vertical_length_scale=a.vertical_localization
    )
    loc = build_localization(options, model)
    t_loc = time.perf_counter() - tic
    tic = time.perf_counter()
    cpu0 = time.process_time()
    res = xfuxi.assimilate_4dvar(
        bg,
        obs,
        model=model,
        background_error=BackgroundError(n_members=a.members),
        localization=loc,
        progress=False,
    )
    total = time.perf_counter() - tic
    cpu = time.process_time() - cpu0
    load = os.getloadavg()[0]
    d = res.diagnostics
    iters = int(d.attrs["iterations"])
    # cost vs gradient timing on the same problem
    used, op, _, _ = screen_observations(
        obs,
        channels=model.channels,
        latitude=model.latitude,
        longitude=model.longitude,
        slot_times=np.array(times, dtype="M8[ns]"),
    )
    slots = []
    for k in range(2):
        idx = np.flatnonzero(used["slot"].values == k)
        slots.append(
            ObsSlot(
                k,
                op.subset(idx),
                torch.as_tensor(used["value"].values[idx]),
                torch.as_tensor(used["error"].values[idx]),
            )
        )
    from xfuxi.data.channels import stack

    arr = stack(bg, model.channels).transpose("time", "channel", "latitude", "longitude")
    x = torch.as_tensor(np.asarray(arr.values, dtype="float64"))
    anom = torch.randn(a.members, *x.shape[1:], dtype=torch.float64) * 0.01
    prob = En4DVarProblem(model, x[1], x[2], anom, slots, localization=loc)
    v = torch.zeros(prob.n_control, dtype=torch.float64)
    t_cost, t_grad = [], []
    for _ in range(5):
        tic = time.perf_counter()
        with torch.no_grad():
            prob.cost(v)
        t_cost.append(time.perf_counter() - tic)
        tic = time.perf_counter()
        vr = v.clone().requires_grad_(True)
        j = prob.cost(vr)[0]
        torch.autograd.grad(j, vr)
        t_grad.append(time.perf_counter() - tic)
    c, g = statistics.median(t_cost), statistics.median(t_grad)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"FuXi-En4DVar benchmark: model {model.name}, grid {model.grid_shape}, "
        f"{model.n_channels} channels, {a.members} members, "
        f"{int(d.attrs['n_observations_used'])} observations, torch threads "
        f"{torch.get_num_threads()}"
    )
    rows = [
        ("localization build (cached; once per grid)", f"{t_loc:.2f} s"),
        (
            "localization rank (horizontal x channel) / control size",
            f"{loc.spatial.shape[1]} x {1 if loc.channel is None else loc.channel.shape[1]} / "
            f"{prob.n_control}",
        ),
        ("member generation", f"{d.attrs['member_time_s']:.2f} s"),
        ("minimisation", f"{d.attrs['minimisation_time_s']:.2f} s"),
        ("full analysis (assimilate_4dvar wall time)", f"{total:.2f} s"),
        ("full analysis, CPU time of this process", f"{cpu:.2f} s"),
        ("machine load average (1 min) at the end", f"{load:.1f} on {os.cpu_count()} cores"),
        ("iterations / cost evaluations", f"{iters} / {d.attrs['n_evaluations']}"),
        ("time per iteration", f"{d.attrs['minimisation_time_s'] / max(iters, 1):.3f} s"),
        ("one cost evaluation (2-step window)", f"{c * 1e3:.1f} ms"),
        ("one gradient (forward + backward)", f"{g * 1e3:.1f} ms"),
        ("gradient / cost ratio", f"{g / c:.2f}"),
        ("peak memory (max RSS)", f"{peak:.2f} GB"),
        ("J: start -> end", f"{float(d['cost'][0]):.4g} -> {float(d['cost'][-1]):.4g}"),
    ]
    w = max(len(r[0]) for r in rows)
    for name, val in rows:
        print(f"{name:{w}s}  {val}")
    from xfuxi.files import atomic_write_json

    atomic_write_json(
        a.out,
        {
            "settings": {"members": a.members, "sites": a.sites, "model": model.name,
                         "threads": torch.get_num_threads(), "load_1min_start": load_start},
            "seconds": {"member_generation": float(d.attrs["member_time_s"]),
                        "minimisation": float(d.attrs["minimisation_time_s"]),
                        "analysis_wall": total, "analysis_cpu": cpu,
                        "cost_evaluation": c, "gradient": g},
            "gradient_over_cost": g / c,
            "iterations": iters,
            "peak_rss_gb": peak,
            "rows": [{"quantity": n, "value": v} for n, v in rows],
        },
    )  # fmt: skip
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
