"""Campaign throughput and memory on dask.distributed, and the per-step figures of the cost
model in docs/scaling.md.

* Throughput: a campaign of ``--init-times`` (40) initial times × ``--steps`` (40) steps of
  the shipped ``fuxi-hs-t21`` model from synthetic states on its T21 grid, on a LocalCluster
  of 1 and of 2 single-threaded worker processes, in the same run (the target on a 2-core
  machine is ≥ 1.6× with 2 workers). The stores of both runs must be identical (checked).
* Peak memory per worker (resident set size, ``ru_maxrss``) of a fresh 1-worker cluster
  after 10 and after 40 initial times: streaming one chunk per initial time keeps it flat.
* Per-step figures: CPU seconds per model step (from the 1-worker run), and the floating
  point operations of one step of the T21 model and of the paper's 0.25° FuXi (70 channels,
  720 × 1440, 1.5 × 10⁹ parameters), counted by ``torch.utils.flop_counter`` on the meta
  device (nothing allocated).

Writes ``benchmarks/results/campaign.json`` (atomically) and prints a table. Usage::

    python benchmarks/bench_campaign.py                  # about 10 minutes on 2 cores
    python benchmarks/bench_campaign.py --init-times 8 --steps 8   # quick look
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

RESULTS = Path(__file__).resolve().parent / "results" / "campaign.json"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _warm(model: str) -> None:
    from xfuxi.forecasting.deterministic import forecast  # noqa: F401
    from xfuxi.models.registry import load_model

    load_model(model)


def _run(ds, store: Path, n_workers: int, args) -> dict:
    """One campaign on a fresh LocalCluster; wall time (without cluster start) and memory."""
    from distributed import Client, LocalCluster

    from xfuxi.campaigns import campaign

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)  # fmt: skip
    try:
        with Client(cluster) as client:
            client.run(_warm, args.model)  # imports and model files read: not the campaign's
            before = sorted(client.run(_peak_rss_mib).values())
            start = time.perf_counter()
            campaign(ds, store, model=args.model, steps=args.steps, client=client,
                     progress=False)  # fmt: skip
            wall = time.perf_counter() - start
            peaks = sorted(client.run(_peak_rss_mib).values())
    finally:
        cluster.close()
    n = int(xr.open_zarr(store, consolidated=False).sizes["time"])
    return {"workers": n_workers, "init_times": n, "steps": args.steps, "wall_s": wall,
            "init_times_per_s": n / wall, "model_steps_per_s": n * args.steps / wall,
            "peak_rss_per_worker_mib": peaks, "rss_before_campaign_mib": before}  # fmt: skip


def _flops(net, shape: tuple[int, ...], device: str) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(shape, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x)
    return float(counter.get_total_flops())


def _states(model, n: int) -> xr.Dataset:
    """``n`` 6-hourly states on the model's grid: its means plus noise of half its std (the
    speed of a step does not depend on the values; no world needs to be generated)."""
    import pandas as pd

    from xfuxi.data.channels import unstack

    rng = np.random.default_rng(0)
    c, (h, w) = len(model.channels), model.grid_shape
    mean, std = np.asarray(model.stats.mean), np.asarray(model.stats.std)
    values = mean[None, :, None, None] + 0.5 * std[None, :, None, None] * rng.standard_normal(
        (n, c, h, w)
    )
    da = xr.DataArray(
        values.astype("float32"), dims=("time", "channel", "latitude", "longitude"),
        coords={"time": pd.date_range("2020-01-01", periods=n, freq="6h"),
                "latitude": model.latitude, "longitude": model.longitude},
    )  # fmt: skip
    return unstack(da, model.channels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init-times", type=int, default=40)
    parser.add_argument("--memory-small", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--model", default="fuxi-hs-t21")
    parser.add_argument("--no-paper", action="store_true", help="skip the paper-size FLOPs")
    args = parser.parse_args()

    from xfuxi.files import atomic_write_json
    from xfuxi.models.registry import load_model

    load_start = os.getloadavg()[0]
    world = _states(load_model(args.model), args.init_times + 1)
    ds = world
    small = world.isel(time=slice(0, args.memory_small + 1))
    tmp = Path(tempfile.mkdtemp(prefix="bench_campaign_"))
    try:  # the small run first, while this process holds no result in memory
        mem_small = _run(small, tmp / "small.zarr", 1, args)
        one = _run(ds, tmp / "one.zarr", 1, args)
        two = _run(ds, tmp / "two.zarr", 2, args)
        a = xr.open_zarr(tmp / "one.zarr", consolidated=False).load()
        b = xr.open_zarr(tmp / "two.zarr", consolidated=False).load()
        identical = bool(a.identical(b))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    from xfuxi.models.fuxi import build_fuxi, count_parameters

    model = load_model(args.model)
    t21_flops = _flops(model.net, (1, 2, len(model.channels), *model.grid_shape), "cpu")
    t21_params = int(count_parameters(model.net))
    result = {
        "machine": f"{os.cpu_count()} CPU cores",
        "load_1min_start": load_start,
        "load_1min_end": os.getloadavg()[0],
        "model": args.model,
        "one_worker": one,
        "two_workers": two,
        "speedup_two_vs_one": two["model_steps_per_s"] / one["model_steps_per_s"],
        "stores_identical": identical,
        "memory": {
            f"{args.memory_small}_init_times_peak_rss_mib": mem_small["peak_rss_per_worker_mib"],
            f"{args.init_times}_init_times_peak_rss_mib": one["peak_rss_per_worker_mib"],
            "rss_after_model_load_mib": one["rss_before_campaign_mib"],
        },
        "per_step": {
            "t21_cpu_s_per_step_one_thread": 1.0 / one["model_steps_per_s"],
            "t21_flops_per_step": t21_flops,
            "t21_parameters": t21_params,
        },
    }
    if not args.no_paper:
        paper = build_fuxi("paper", device="meta")
        paper_flops = _flops(paper, (1, 2, 70, 720, 1440), "meta")
        paper_params = int(count_parameters(paper))
        result["per_step"].update(paper_flops_per_step=paper_flops, paper_parameters=paper_params)
    atomic_write_json(RESULTS, result, indent=1)
    print(f"{'run':<28}{'wall s':>10}{'steps/s':>10}{'peak RSS/worker MiB':>24}")
    for label, r in ((f"1 worker, {one['init_times']} times", one),
                     (f"2 workers, {two['init_times']} times", two),
                     (f"1 worker, {mem_small['init_times']} times", mem_small)):  # fmt: skip
        rss = ", ".join(f"{m:.0f}" for m in r["peak_rss_per_worker_mib"])
        print(f"{label:<28}{r['wall_s']:>10.1f}{r['model_steps_per_s']:>10.2f}{rss:>24}")
    print(f"speed-up 2 vs 1 workers: {result['speedup_two_vs_one']:.2f}x (target >= 1.6x); "
          f"stores identical: {identical}")  # fmt: skip
    print(f"FLOPs per step: T21 {t21_flops:.3g}"
          + (f", paper 0.25° {result['per_step']['paper_flops_per_step']:.3g}"
             if not args.no_paper else ""))  # fmt: skip
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
