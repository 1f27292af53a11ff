"""Ensemble speed and memory: 48 members batched vs a sequential loop over members.

Throughput is member-steps per second of a FuXi-ENS ensemble (learned perturbation + the
deterministic model at every step) for ``--n`` members of one initial time, run

* batched: ``chunk_size = n`` (all members in one batch per step), and
* sequentially: ``chunk_size = 1`` (one member at a time, the loop a user would write),

with identical members either way (checked). Peak memory is the peak resident set size of
a fresh process that runs ``n`` members × ``--mem-steps`` steps (default 48 × 40) with
:func:`xfuxi.ensemble` (the whole result in memory) and with :func:`xfuxi.ensemble_iter`
(one lead at a time), for a few chunk sizes. Usage::

    python benchmarks/bench_ensemble_speed.py            # CPU: a few minutes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

import xfuxi
from xfuxi.datasets import held_suarez_split
from xfuxi.forecast import ensemble, ensemble_iter
from xfuxi.models.checkpoint import load_model
from xfuxi.models.ens import load_perturbation


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
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"base_mb": base, "peak_mb": peak, "output_mb": nbytes / 2**20,
                      "seconds": time.time() - t0}))  # fmt: skip


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
    p.add_argument("--steps", type=int, default=2, help="steps timed for throughput")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--mem-steps", type=int, default=40)
    p.add_argument("--mem-chunks", default="48")
    p.add_argument("--test-days", type=int, default=None)
    p.add_argument("--child", choices=["ensemble", "iter"], default=None)
    p.add_argument("--chunk", type=int, default=None)
    args = p.parse_args()
    xfuxi.set_options(progress=False)
    if args.child:
        _child(args)
        return

    import torch

    model, vae, ds = _inputs(args)
    print(f"model {model.name} ({sum(q.numel() for q in model.parameters()):,} parameters), "
          f"perturbation {vae.name} ({sum(q.numel() for q in vae.parameters()):,}), "
          f"{model.n_channels} channels on {model.grid_shape}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    _time(ds, model, vae, 2, 1, None, 1)  # warm-up
    t_b, out_b = _time(ds, model, vae, args.n, args.steps, args.n, args.repeats)
    t_s, out_s = _time(ds, model, vae, args.n, args.steps, 1, args.repeats)
    same = all(
        np.allclose(out_b[v], out_s[v], rtol=1e-4, atol=1e-4 * float(abs(out_b[v]).max()))
        for v in out_b.data_vars
    )
    ms = args.n * args.steps
    print(f"\nThroughput, {args.n} members x {args.steps} steps (best of {args.repeats}):")
    print("| mode | seconds | member-steps / s |")
    print("|---|---:|---:|")
    print(f"| batched (chunk_size={args.n}) | {t_b:.2f} | {ms / t_b:.2f} |")
    print(f"| sequential (chunk_size=1) | {t_s:.2f} | {ms / t_s:.2f} |")
    print(f"speed-up {t_s / t_b:.2f}x (target >= 2x); members identical either way: {same}")

    print(f"\nPeak memory, {args.n} members x {args.mem_steps} steps (fresh process each):")
    print("| call | chunk_size | peak RSS (MB) | RSS after loading (MB) | result (MB) | seconds |")
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
            print(f"| {name} | {chunk} | {r['peak_mb']:.0f} | {r['base_mb']:.0f} | "
                  f"{r['output_mb']:.0f} | {r['seconds']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
