"""Ensemble speed and memory: 48 members batched vs a sequential loop over members.

Throughput is member-steps per second of a FuXi-ENS ensemble (learned perturbation + the
deterministic model at every step) for ``--n`` members of one initial time, run

* batched with the library's default chunking (batches of 16 on CPU),
* batched in one batch: ``chunk_size = n``, and
* sequentially: ``chunk_size = 1`` (one member at a time, the loop a user would write),

with identical members either way (checked). Peak memory is measured in a fresh process
that runs ``n`` members × ``--mem-steps`` steps (default 48 × 40) with
:func:`xfuxi.ensemble` (the whole result in memory) and with :func:`xfuxi.ensemble_iter`
(one lead at a time), for a few chunk sizes: the peak resident set size of the call
(Linux's VmHWM, reset after the inputs are loaded, so that loading the world does not hide
the call's own peak) above the resident size before it. Usage::

    python benchmarks/bench_ensemble_speed.py            # CPU: a few minutes
    python benchmarks/bench_ensemble_speed.py --memory-only \
        --out benchmarks/results/ensemble_memory.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

import numpy as np

import xfuxi
from xfuxi.datasets import held_suarez_split
from xfuxi.forecasting.ensemble import ensemble, ensemble_iter
from xfuxi.models.ens import load_perturbation
from xfuxi.models.registry import load_model


def _inputs(args):
    model = load_model(args.model)
    vae = load_perturbation(args.perturbation)
    ds = held_suarez_split("test", days=args.test_days).isel(time=slice(0, 2)).load()
    return model, vae, ds


def _child(args) -> None:
    """Run one memory measurement in this (fresh) process and print a JSON line."""
    import torch

    model, vae, ds = _inputs(args)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    gc.collect()
    # the peak of the call alone: ru_maxrss keeps the peak of loading the world, which was
    # higher than the call's (every figure read the same); Linux resets VmHWM on "5"
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_mb("VmRSS")
    t0 = time.time()
    kw = dict(model=model, perturbation=vae, n=args.n, steps=args.mem_steps,
              chunk_size=args.chunk, progress=False)  # fmt: skip
    if args.child == "iter":
        total = 0
        for part in ensemble_iter(ds, **kw):
            total += part.nbytes
        nbytes = total
    else:
        nbytes = ensemble(ds, **kw).nbytes
    peak = _status_mb("VmHWM")
    print(json.dumps({"base_mb": base, "peak_mb": peak, "above_base_mb": peak - base,
                      "output_mb": nbytes / 2**20, "seconds": time.time() - t0}))  # fmt: skip


def _status_mb(key: str) -> float:
    """A size from /proc/self/status (``VmRSS``, ``VmHWM``) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {key}: the memory figures need Linux")


def _time(ds, model, vae, n, steps, chunk, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = ensemble(ds, model=model, perturbation=vae, n=n, steps=steps, chunk_size=chunk,
                       progress=False)  # fmt: skip
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument("--perturbation", default="fuxi-ens-hs-t21")
    p.add_argument("--n", type=int, default=48)
    p.add_argument("--steps", type=int, default=4, help="steps timed for throughput")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--mem-steps", type=int, default=40)
    p.add_argument("--mem-chunks", default="16,48")
    p.add_argument("--test-days", type=int, default=None)
    p.add_argument("--child", choices=["ensemble", "iter"], default=None)
    p.add_argument("--chunk", type=int, default=None)
    p.add_argument("--memory-only", action="store_true", help="skip the throughput part")
    p.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "results", "ensemble_speed.json")
    )
    args = p.parse_args()
    xfuxi.set_options(progress=False)
    if args.child:
        _child(args)
        return

    import torch

    load_start = os.getloadavg()[0]
    model, vae, ds = _inputs(args)
    print(f"model {model.name} ({sum(q.numel() for q in model.parameters()):,} parameters), "
          f"perturbation {vae.name} ({sum(q.numel() for q in vae.parameters()):,}), "
          f"{model.n_channels} channels on {model.grid_shape}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    result: dict = {"load_1min_start": load_start, "members": args.n, "memory": []}
    if not args.memory_only:
        result.update(_throughput(args, ds, model, vae))
    _memory(args, result)
    result["load_1min_end"] = os.getloadavg()[0]
    from xfuxi.files import atomic_write_json

    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


def _throughput(args, ds, model, vae) -> dict:
    """Member-steps per second of the three modes, and whether their members agree."""
    from xfuxi.forecasting.ensemble import _DEFAULT_CHUNK_CPU

    _time(ds, model, vae, 2, 1, None, 1)  # warm-up
    # the three modes interleaved repeat by repeat, so that a busy spell of a shared host
    # does not fall on one of them only
    modes = {
        f"batched, default chunking ({min(_DEFAULT_CHUNK_CPU, args.n)} per batch)": None,
        f"batched, one batch (chunk_size={args.n})": args.n,
        "sequential (chunk_size=1)": 1,
    }
    times = {name: [] for name in modes}
    outs = {}
    for _ in range(args.repeats):
        for name, chunk in modes.items():
            t, outs[name] = _time(ds, model, vae, args.n, args.steps, chunk, 1)
            times[name].append(t)
    ref = outs["sequential (chunk_size=1)"]
    same = all(
        np.allclose(o[v], ref[v], rtol=1e-4, atol=1e-4 * float(abs(ref[v]).max()))
        for o in outs.values()
        for v in ref.data_vars
    )
    ms = args.n * args.steps
    t_seq = np.median(times["sequential (chunk_size=1)"])
    print(f"\nThroughput, {args.n} members x {args.steps} steps (median of {args.repeats}):")
    print("| mode | seconds | member-steps / s | speed-up over sequential |")
    print("|---|---:|---:|---:|")
    for name, ts in times.items():
        t = float(np.median(ts))
        print(f"| {name} | {t:.2f} | {ms / t:.2f} | {t_seq / t:.2f}x |")
    print(f"(target: batched >= 2.5x sequential); members identical in every mode: {same}")
    return {
        "steps": args.steps,
        "repeats": args.repeats,
        "members_identical": bool(same),
        "throughput": [
            {"mode": name, "median_s": float(np.median(ts)), "min_s": float(np.min(ts)),
             "max_s": float(np.max(ts)), "member_steps_per_s": ms / float(np.median(ts)),
             "speedup_over_sequential": t_seq / float(np.median(ts))}
            for name, ts in times.items()
        ],
    }  # fmt: skip


def _memory(args, result: dict) -> None:
    """The peak memory of each call in a fresh process, appended to ``result["memory"]``."""
    print(f"\nPeak memory, {args.n} members x {args.mem_steps} steps (fresh process each):")
    print("| call | chunk_size | peak above base (MB) | base RSS (MB) | result (MB) | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode in ("ensemble", "iter"):
        for chunk in [int(c) for c in args.mem_chunks.split(",")]:
            cmd = [sys.executable, __file__, "--child", mode, "--chunk", str(chunk),
                   "--n", str(args.n), "--mem-steps", str(args.mem_steps),
                   "--model", args.model, "--perturbation", args.perturbation]  # fmt: skip
            if args.test_days is not None:
                cmd += ["--test-days", str(args.test_days)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            name = "xfuxi.ensemble" if mode == "ensemble" else "xfuxi.ensemble_iter"
            print(f"| {name} | {chunk} | {r['above_base_mb']:.0f} | {r['base_mb']:.0f} | "
                  f"{r['output_mb']:.0f} | {r['seconds']:.0f} |")  # fmt: skip
            result["memory"].append({"call": name, "chunk_size": chunk, **r})


if __name__ == "__main__":
    main()
