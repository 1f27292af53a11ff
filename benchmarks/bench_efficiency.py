"""FLOP efficiency of a FuXi step against this machine's own matmul peak, before and after.

For the shipped model (``fuxi-hs-t21``, preset ``small``) and a wider preset (``small`` with
``embed_dim=192``, 8 heads), at batch 1 and 48, forward (``torch.inference_mode``) and
forward+backward (the gradient with respect to the input, as 4DVar needs it):

* the FLOPs of one step, counted by ``torch.utils.flop_counter`` and by hand from the
  architecture (:func:`flops_by_hand`; the two must agree to 0.1 %);
* the achieved FLOP/s divided by the FLOP/s of a large matrix product (2048² by default,
  ``--matmul-size``) measured in the same run, between the repeats;
* with ``--before FILE`` (``xfuxi/models/fuxi.py`` of an older version, e.g. from
  ``git show main:xfuxi/models/fuxi.py > /tmp/fuxi_before.py``), the same network built from
  that file with the same weights, timed interleaved with the current one (median and
  spread over the repeats), and the largest difference between their outputs.

The machine is shared and noisy: repeats are interleaved (matmul, before, after, ...) and
the median and the min–max spread are reported. Results go to
``benchmarks/results/efficiency.json``.

Usage::

    python benchmarks/bench_efficiency.py --before /tmp/fuxi_before.py --threads 2
    python benchmarks/bench_efficiency.py --device cuda --grid 720,1440 --cases paper  # (GPU)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent


def flops_by_hand(cfg: dict[str, Any], batch: int, *, backward: bool = False) -> int:
    """FLOPs of a FuXiNet step (matrix products and convolutions, 2 per multiply-add).

    Counts what ``torch.utils.flop_counter`` counts: convolutions, linear layers and the
    attention products; elementwise work (norms, activations, softmax) is not counted.
    With ``backward``, the forward pass plus the gradient with respect to the input (each
    product once more; the weights' gradients are not computed).
    """
    c = cfg["in_channels"]
    d = cfg["embed_dim"]
    heads = cfg["num_heads"]
    ph, pw = cfg["patch_size"]
    wh, ww = cfg["window_size"]
    mh, mw = 2 * ph * wh, 2 * pw * ww
    h = -(-cfg["grid"][0] // mh) * mh
    w = -(-cfg["grid"][1] // mw) * mw
    t1 = (h // ph) * (w // pw)  # tokens after the cube embedding
    t2 = t1 // 4  # after the Down Block
    n = wh * ww  # tokens per window
    hidden = int(d * cfg["mlp_ratio"])
    conv3 = 2 * 9 * d * d
    f = 2 * t1 * (2 * c * ph * pw) * d  # cube embedding
    f += t2 * conv3 + 2 * t2 * conv3  # Down Block: strided conv + residual block
    per_block = 2 * t2 * d * 3 * d  # qkv
    per_block += 2 * 2 * t2 * n * d  # QKᵀ and AV (all heads together)
    per_block += 2 * t2 * d * d  # projection
    per_block += 2 * 2 * t2 * d * hidden  # MLP
    # the position-bias MLP (2 -> 512 -> heads) runs on the window's coordinate table,
    # once per block whatever the batch
    table = (2 * wh - 1) * (2 * ww - 1)
    cpb = 2 * table * 2 * 512 + 2 * table * 512 * heads
    f += cfg["depth"] * per_block
    f += 2 * t1 * (2 * d) * d  # Up Block transposed conv (2×2, stride 2): 4 outputs per token
    f += 2 * t1 * conv3  # Up Block residual
    f += 2 * t1 * d * (c * ph * pw)  # head
    return batch * f * (2 if backward else 1) + cfg["depth"] * cpb


def _load_before(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("_fuxi_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: the clock: wall time, or the CPU time of this process (``--clock cpu``; with one thread
#: it is far less sensitive to other processes on a shared machine)
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def _matmul_gflops(a: torch.Tensor, sync: Any) -> float:
    return 2 * a.shape[0] ** 3 / _time(lambda: a @ a, sync) / 1e9


def _time(fn: Any, sync: Any) -> float:
    sync()
    t = _clock()
    fn()
    sync()
    return _clock() - t


def _count(fn: Any) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def bench_case(
    nets: dict[str, torch.nn.Module],
    cfg: dict[str, Any],
    batch: int,
    mode: str,
    *,
    repeat: int,
    device: str,
    dtype: torch.dtype,
    mm: torch.Tensor,
    sync: Any,
) -> dict[str, Any]:
    g = cfg["grid"]
    x = torch.randn(batch, 2, cfg["in_channels"], *g, device=device, dtype=dtype)

    def step(net: torch.nn.Module) -> Any:
        if mode == "forward":

            def f() -> torch.Tensor:
                with torch.inference_mode():
                    return net(x)

        else:

            def f() -> torch.Tensor:
                xr = x.detach().requires_grad_(True)
                net(xr).float().square().sum().backward()  # parameters are frozen: dJ/dx only
                return xr.grad

        return f

    fns = {k: step(n) for k, n in nets.items()}
    counted = _count(fns["after"])
    by_hand = flops_by_hand(cfg, batch, backward=mode != "forward")
    out = {k: f().float() for k, f in fns.items()}  # warm-up, and the outputs compared
    times: dict[str, list[float]] = {k: [] for k in fns}
    peaks = []
    for _ in range(repeat):
        peaks.append(_matmul_gflops(mm, sync))
        for k, f in fns.items():
            times[k].append(_time(f, sync))
    peak = statistics.median(peaks)
    row: dict[str, Any] = {}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        fns["after"]()
        sync()
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    row |= {
        "batch": batch,
        "mode": mode,
        "flops_counted": counted,
        "flops_by_hand": by_hand,
        "matmul_gflops": _stats(peaks),
    }
    for k, ts in times.items():
        med = statistics.median(ts)
        row[k] = {
            "s_per_step": _stats(ts),
            "ms_per_state": 1e3 * med / batch,
            "gflops": counted / med / 1e9,
            "efficiency": counted / med / 1e9 / peak,
        }
    if "before" in times:
        ratios = [b / a for b, a in zip(times["before"], times["after"])]
        row["speedup"] = _stats(ratios)
        row["max_abs_diff"] = float((out["before"] - out["after"]).abs().max())
        row["max_abs_output"] = float(out["after"].abs().max())
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", help="an older xfuxi/models/fuxi.py to time against")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--batches", default="1,48")
    p.add_argument("--modes", default="forward,backward")
    p.add_argument("--cases", default="shipped,wide", help="shipped, wide and/or paper")
    p.add_argument("--grid", default=None, help="H,W for the paper case (default 720,1440)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument(
        "--checkpoint",
        action="store_true",
        help="recompute the transformer blocks in the backward pass (large presets)",
    )
    p.add_argument(
        "--clock", default="wall", choices=sorted(CLOCK), help="cpu: process CPU time (CPU only)"
    )
    p.add_argument("--matmul-size", type=int, default=2048, help="n of the n×n peak matmul")
    p.add_argument("--out", default=str(HERE / "results" / "efficiency.json"))
    args = p.parse_args()
    sys.path.insert(0, str(HERE.parent))
    from xfuxi.files import atomic_write_json
    from xfuxi.models import fuxi
    from xfuxi.models.registry import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    global _clock
    _clock = CLOCK[args.clock]
    dtype = getattr(torch, args.dtype)
    device = args.device
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    before = _load_before(args.before) if args.before else None
    torch.manual_seed(0)
    mm = torch.randn(args.matmul_size, args.matmul_size, device=device, dtype=dtype)
    cases: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}
    shipped = load_model("fuxi-hs-t21")
    ship_cfg = dict(shipped.net.config)
    for name in args.cases.split(","):
        if name == "shipped":
            cases[name] = (ship_cfg, shipped.net.state_dict())
        elif name == "wide":
            cases[name] = ({**ship_cfg, "embed_dim": 192, "num_heads": 8, "num_groups": 16}, None)
        elif name == "paper":
            cfg = {**fuxi.PRESETS["paper"]}
            cfg["in_channels"] = cfg.pop("channels")
            cfg["grid"] = [int(v) for v in (args.grid or "720,1440").split(",")]
            cases[name] = (cfg, None)
        else:
            raise SystemExit(f"unknown case {name!r}: shipped, wide or paper")
    results: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "device": device,
        "dtype": args.dtype,
        "clock": args.clock,
        "cpus": os.cpu_count(),
        "load_1min_start": os.getloadavg()[0],
        "rows": [],
    }
    print(
        f"device {device}, dtype {args.dtype}, torch threads {torch.get_num_threads()}, "
        f"clock {args.clock}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    head = (
        f"{'case':8s} {'batch':>5s} {'mode':9s} {'GFLOP':>8s} {'hand':>8s} {'mm GF/s':>8s} "
        f"{'ms/state':>9s} {'eff':>6s} {'before':>9s} {'eff':>6s} {'speedup (min-max)':>20s} "
        f"{'max|diff|':>9s}"
    )
    print(head)
    for name, (cfg, state) in cases.items():
        kwargs = {k: v for k, v in cfg.items() if k not in ("in_channels", "grid")}
        torch.manual_seed(1)
        nets = {"after": fuxi.FuXiNet(cfg["in_channels"], cfg["grid"], **kwargs)}
        if state is not None:
            nets["after"].load_state_dict(state)
        if before is not None:
            nets["before"] = before.FuXiNet(cfg["in_channels"], cfg["grid"], **kwargs)
            nets["before"].load_state_dict(nets["after"].state_dict())
        nets = {
            k: n.to(device=device, dtype=dtype).eval().requires_grad_(False)
            for k, n in nets.items()
        }
        if args.checkpoint:  # no dropout or batch norm: train mode computes the same values
            for n in nets.values():
                n.grad_checkpointing = True
                n.train()
        for batch in (int(b) for b in args.batches.split(",")):
            for mode in args.modes.split(","):
                row = bench_case(
                    nets, cfg, batch, mode, repeat=args.repeat, device=device, dtype=dtype,
                    mm=mm, sync=sync,
                )  # fmt: skip
                row["case"] = name
                results["rows"].append(row)
                a = row["after"]
                b = row.get("before")
                sp = row.get("speedup")
                print(
                    f"{name:8s} {batch:5d} {mode:9s} {row['flops_counted'] / 1e9:8.2f} "
                    f"{row['flops_by_hand'] / 1e9:8.2f} {row['matmul_gflops']['median']:8.1f} "
                    f"{a['ms_per_state']:9.2f} {a['efficiency']:6.2f} "
                    + (
                        f"{b['ms_per_state']:9.2f} {b['efficiency']:6.2f} "
                        f"{sp['median']:6.2f} ({sp['min']:.2f}-{sp['max']:.2f})      "
                        f"{row['max_abs_diff']:9.2e}"
                        if b
                        else ""
                    ),
                    flush=True,
                )
    results["load_1min_end"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
