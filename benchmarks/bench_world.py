"""Benchmark the Held–Suarez world: simulated days per second and bytes per simulated day.

Usage::

    python benchmarks/bench_world.py                 # T21 and T42
    python benchmarks/bench_world.py --days 60 --resolutions T21

For each resolution it reports the compile time (first call), the speed of the bare model
(spin-up days, no output), the end-to-end speed of :func:`xfuxi.datasets.held_suarez` with
output every 6 h on 4 pressure levels written to a zarr cache, and the bytes per simulated
day in memory (float32) and on disk (zarr, default compression). It prints the machine load
too: on a shared machine the figures scale with the CPU share the run gets.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def bench(resolution: str, days: int, spin_days: int) -> dict[str, float]:
    from xfuxi.world import simulator as world

    cfg = world.world_config(days=days, spinup_days=0, seed=0, resolution=resolution)
    t0 = time.perf_counter()
    model = world.get_model(cfg)
    state = model.initial_state(0)
    state = model.spin_day(state)
    state.vorticity.block_until_ready()
    state, out = model.run_chunk(state)
    out["temperature"].block_until_ready()
    compile_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for _ in range(spin_days):
        state = model.spin_day(state)
    state.vorticity.block_until_ready()
    model_rate = spin_days / (time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ds = world.held_suarez(
            days=days, spinup_days=0, seed=1, resolution=resolution, cache_dir=tmp, progress=False
        )
        e2e_rate = days / (time.perf_counter() - t0)
        mem = ds.nbytes / days
        disk = _dir_size(Path(tmp)) / days
        t0 = time.perf_counter()
        world.held_suarez(
            days=days, spinup_days=0, seed=1, resolution=resolution, cache_dir=tmp, progress=False
        )
        cached_s = time.perf_counter() - t0
    return {
        "grid": f"{ds.sizes['longitude']}x{ds.sizes['latitude']}",
        "dt_min": cfg["time_step_minutes"],
        "compile_s": compile_s,
        "model_days_per_s": model_rate,
        "e2e_days_per_s": e2e_rate,
        "mem_bytes_per_day": mem,
        "disk_bytes_per_day": disk,
        "cached_open_s": cached_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", nargs="+", default=["T21", "T42"])
    parser.add_argument("--days", type=int, default=None, help="output days (default 30 / 10)")
    parser.add_argument("--spin-days", type=int, default=None, help="bare-model days timed")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "world.json"))
    args = parser.parse_args()
    rows = []
    load = os.getloadavg()[0]
    print(f"cpus={os.cpu_count()} load(1 min)={load:.2f}")
    header = (
        f"{'res':<4} {'grid':>7} {'dt':>5} {'compile s':>9} {'model d/s':>9} {'e2e d/s':>8} "
        f"{'MB/day mem':>10} {'MB/day disk':>11} {'1 year GB':>9} {'cached s':>8}"
    )
    print(header)
    print("-" * len(header))
    for res in args.resolutions:
        days = args.days or (30 if res == "T21" else 10)
        spin = args.spin_days or days
        r = bench(res, days, spin)
        r["resolution"], r["days"] = res, days
        r["e2e_over_model"] = r["e2e_days_per_s"] / r["model_days_per_s"]
        rows.append(r)
        print(
            f"{res:<4} {r['grid']:>7} {r['dt_min']:>5.0f} {r['compile_s']:>9.1f} "
            f"{r['model_days_per_s']:>9.2f} {r['e2e_days_per_s']:>8.2f} "
            f"{r['mem_bytes_per_day'] / 1e6:>10.2f} {r['disk_bytes_per_day'] / 1e6:>11.2f} "
            f"{365 * r['mem_bytes_per_day'] / 1e9:>9.2f} {r['cached_open_s']:>8.2f}",
            flush=True,
        )
    end = os.getloadavg()[0]
    print(f"load(1 min) at the end={end:.2f}")
    for r in rows:
        print(
            f"{r['resolution']}: end-to-end / bare model = {r['e2e_over_model']:.2f}"
            " (target >= 0.85)"
        )
    from xfuxi.files import atomic_write_json

    atomic_write_json(
        args.out,
        {"cpus": os.cpu_count(), "load_1min_start": load, "load_1min_end": end, "rows": rows},
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
