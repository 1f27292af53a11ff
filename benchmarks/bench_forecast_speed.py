"""Speed and memory of a FuXi forecast step on this machine.

Prints milliseconds per 6-hour step (inference, ``torch.inference_mode``) for batches of 1
and 48 states, and the peak resident memory of the process (and the CUDA peak on a GPU).

Usage::

    python benchmarks/bench_forecast_speed.py [--model fuxi-hs-t21] [--device cpu] [--repeat 5]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

import xfuxi
from xfuxi.models.fuxi import count_parameters


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batches", default="1,48")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = xfuxi.load_model(args.model, device=args.device)
    c, (h, w) = model.n_channels, model.grid_shape
    print(
        f"model {model.name}: {count_parameters(model):,} parameters, {c} channels, "
        f"grid {h}x{w}, device {args.device}, torch threads {torch.get_num_threads()}"
    )
    print(f"{'batch':>6} {'ms/step':>10} {'ms/state':>10} {'peak RSS MB':>12}")
    mean = torch.as_tensor(model.stats.mean, dtype=torch.float32).view(1, 1, -1, 1, 1)
    for b in (int(v) for v in args.batches.split(",")):
        x = (mean + torch.randn(b, 2, c, h, w)).to(args.device)
        with torch.inference_mode():
            model(x)  # warm-up
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for _ in range(args.repeat):
                y = model(x)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            ms = (time.perf_counter() - t0) / args.repeat * 1e3
        del y
        extra = ""
        if args.device.startswith("cuda"):
            extra = f"  CUDA peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MB"
        print(f"{b:6d} {ms:10.1f} {ms / b:10.2f} {_peak_rss_mb():12.0f}{extra}")


if __name__ == "__main__":
    main()
