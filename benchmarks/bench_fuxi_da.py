"""FuXi-DA against En4DVar in one run: analysis time and peak memory; FuXi-DA training speed.

On one analysis time of the test split, from the same background (a 4-step forecast of
``fuxi-hs-t21`` from the truth, at t0 − 12 h, t0 − 6 h and t0):

* FuXi-DA: ``assimilate_da`` with the shipped ``fuxi-da-hs-t21`` and the imager's radiances
  (one satellite at 105° E, frames −2, 0, +2 h), including its O−B / O−A diagnostics (and,
  apart, the median of its own ``analysis_seconds``: the inputs with the departures and the
  network, without the diagnostics and the Datasets);
* FuXi-DA fast: the same call with ``precision="bfloat16"`` and ``diagnostics=False``;
* FuXi-DA, many times: one call for ``--batch-times`` analysis times (backgrounds 12-hour
  forecasts from the truth, the same radiances' draw), ``precision="bfloat16"``,
  ``diagnostics=False``, ``batch_size=8``; its time over the number of analyses (the cost
  of an analysis in a run of many, as in an experiment or a reanalysis);
* En4DVar, radiosondes: ``assimilate_4dvar`` with its defaults (200 members) and 300 sites;
* En4DVar, radiances: :func:`xfuxi.assimilation.radiances.radiance_analysis`, the same
  defaults, the analysis-time frame's clear-looking pixels with a bias correction (fitted on
  this time's clear-looking pixels: a timing case only).

The network's forward pass alone (``network_increment``: the shipped weights, one
background, its observation inputs) is also timed in the channels-last layout the network
keeps its convolution weights in, from a copy of the same weights in the standard layout,
and channels-last under a bfloat16 autocast (50 calls each, interleaved; the median), with
the bfloat16 increment's RMS difference from the float32 one relative to its RMS; and the
parts of the fast call (checks, stacking, observation inputs, network, output Datasets) and
the whole call, each repeated 50 times in a loop (warm; a call made alone, after other work,
takes longer: the rows' figure).

Each case runs ``--repeat`` times, interleaved; the table gives the median wall time and
the min–max (of calls timed alone) and the peak **resident set size above the RSS just
before the call** (of a second call of each repeat)
(sampled every 2 ms from ``/proc/self/statm`` by a thread, after ``malloc_trim`` has handed
freed memory back: a lower bound of the true peak; the largest repeat is reported). Models
are loaded before timing. Training throughput: ``train_da`` samples per second on a tiny
configuration (width 8, 2 scales, 8 channels, 3 frames, 6-hour backgrounds) with K = 0
(batch 4, n = ``--train-steps``) and K = 1 (batch 2, n / 4 steps), and at the shipped
networks' size (width 24, 3 scales, K = 0, batch 4, n steps) in float32 and in bfloat16
mixed precision (``DAConfig(precision=...)``): the optimizer loop's
samples per second, timed from ``train_da``'s "prepared samples" log line to its return
(the set-up — backgrounds, radiances — left out), after a warm-up run.

    python benchmarks/bench_fuxi_da.py [--repeat 5] [--train-steps 40] [--threads 1]
        [--batch-times 24]

Writes ``benchmarks/results/fuxi_da_bench.json`` (atomically; with the CPU's model and its
bfloat16 instructions, on which the bfloat16 figures depend) and prints a table.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import logging
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

import xfuxi
from xfuxi.assimilation import da as da_module
from xfuxi.assimilation.cycling import world_background
from xfuxi.assimilation.da import assimilate_da, da_inputs
from xfuxi.assimilation.radiances import (
    background_radiances,
    cloud_screen,
    fit_radiance_bias,
    radiance_analysis,
)
from xfuxi.data.channels import stack_values
from xfuxi.files import atomic_write_json
from xfuxi.models.fuxi_da import load_da_model
from xfuxi.observations.imager import imager_observations, radiance_table
from xfuxi.observations.sets import radiosonde_observations
from xfuxi.training.da import DAConfig, train_da

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def cpu() -> dict:
    """The CPU the figures come from: its model name and whether it has bfloat16 vector
    (``avx512_bf16``) or matrix (``amx_bf16``) instructions (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return {}
    first = {}  # the first processor's entries
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        first[key.strip()] = value.strip()
    flags = first.get("flags", "").split()
    return {
        "model": first.get("model name", ""),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "cores": os.cpu_count(),
    }


def release() -> None:
    """Hand memory freed earlier back to the system, so that a call's peak RSS above the
    start counts what it needs rather than fitting into blocks freed before it."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def measure(fn) -> tuple[float, float]:
    """(wall seconds, peak RSS above the start in MB) of ``fn``: two calls, one timed alone,
    one with the memory sampler (whose thread would lengthen a call of a few milliseconds)
    after ``malloc_trim`` (which would lengthen the timed one: its memory comes back through
    page faults)."""
    tic = time.perf_counter()
    fn()
    wall = time.perf_counter() - tic
    release()
    start = rss()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.002)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    fn()
    done.set()
    th.join()
    peak[0] = max(peak[0], rss())
    return wall, (peak[0] - start) / 2**20


class _Prepared(logging.Handler):
    """Notes when ``train_da`` has prepared its samples (its log line), i.e. when the
    optimizer loop starts."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.at: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("prepared"):
            self.at = time.perf_counter()


def train_rate(
    truth: Any, model: Any, *, k: int, steps: int, batch: int, width: int = 8, scales: int = 2,
    precision: str = "float32",
) -> dict[str, Any]:  # fmt: skip
    """Samples per second of ``train_da``'s optimizer loop (after the samples are prepared)."""
    cfg = dict(batch_size=batch, leads=(1,), forecast_steps=k, width=width, scales=scales,
               precision=precision, checkpoint_every=10**6, val_every=10**6,
               log_every=10**6)  # fmt: skip
    train_da(truth, model, config=DAConfig(steps=1, **cfg), progress=False)  # warm-up
    logger = logging.getLogger("xfuxi.training.da")
    handler, level = _Prepared(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        tic = time.perf_counter()
        train_da(truth, model, config=DAConfig(steps=steps, **cfg), progress=False)
        end = time.perf_counter()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    if handler.at is None:
        raise RuntimeError("train_da did not log when its samples were prepared")
    return {
        "network": f"width {width}, {scales} scales",
        "precision": precision,
        "forecast_steps_K": k,
        "batch_size": batch,
        "steps_timed": steps,
        "samples_per_s": steps * batch / (end - handler.at),
        "sample_preparation_s": handler.at - tic,
    }


def network_layouts(net: Any, background: Any, radiances: Any, calls: int = 50) -> dict:
    """Median ms of the network's forward pass with its weights channels-last (as it keeps
    them) and, from a copy, in the standard layout; interleaved."""
    xb, obs = da_inputs(background, radiances, net)
    standard = copy.deepcopy(net)
    for p in standard.parameters():
        p.data = p.data.contiguous()

    def bf16(model: Any) -> Any:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model.network_increment(xb, obs)

    cases = {
        "channels_last_ms": net.network_increment,
        "standard_ms": standard.network_increment,
        "channels_last_bfloat16_ms": lambda x, o: bf16(net),
    }
    runs: dict[str, list[float]] = {k: [] for k in cases}
    with torch.no_grad():
        for _ in range(3):  # warm-up
            for fn in cases.values():
                fn(xb, obs)
        for _ in range(calls):
            for key, fn in cases.items():
                tic = time.perf_counter()
                fn(xb, obs)
                runs[key].append(1e3 * (time.perf_counter() - tic))
        full, half = net.network_increment(xb, obs), bf16(net).float()
    out: dict[str, float] = {k: statistics.median(v) for k, v in runs.items()}
    out["bfloat16_relative_rms_difference"] = float(
        (half - full).pow(2).mean().sqrt() / full.pow(2).mean().sqrt()
    )
    return out


def fast_call_parts(background: Any, radiances: Any, net: Any, calls: int = 50) -> dict:
    """Median ms of the parts of one ``assimilate_da(..., precision="bfloat16",
    diagnostics=False)`` call, each repeated ``calls`` times in a loop (warm: a call made
    alone, after other work, takes longer; the rows' figure): the checks of the inputs, the
    stacking of the background, the observation inputs (the radiances' frames, the
    departures through the nominal operator in float32, the features), the network under
    the bfloat16 autocast, the increment and analysis Datasets; and the whole call the same
    way."""
    times = background["time"].values
    xb = torch.as_tensor(np.asarray(stack_values(background, net.channels), dtype="float32"))
    obs = da_module.observation_inputs(
        xb, radiances, net, times=times, operator_dtype=torch.float32
    )
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        inc = net(xb, obs).float().double().numpy()

    def network() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            net(xb, obs).float()

    def outputs() -> None:
        increment = da_module.increment_dataset(background, inc, net.channels)
        da_module.analysis_dataset(background, increment)

    parts = {
        "checks": lambda: (
            da_module._check_background(background, net),
            da_module._radiances_for(
                radiances, net, allow_missing_channels=False, allow_new_satellites=False
            ),
        ),
        "stack the background": lambda: stack_values(background, net.channels),
        "observation inputs": lambda: da_module.observation_inputs(
            xb, radiances, net, times=times, operator_dtype=torch.float32
        ),
        "network (bfloat16)": network,
        "increment and analysis Datasets": outputs,
        "whole call": lambda: assimilate_da(
            background, radiances, model=net, precision="bfloat16", diagnostics=False
        ),
    }
    out = {}
    for key, fn in parts.items():
        for _ in range(3):
            fn()
        walls = []
        for _ in range(calls):
            tic = time.perf_counter()
            fn()
            walls.append(1e3 * (time.perf_counter() - tic))
        out[key] = statistics.median(walls)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--train-steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave)")
    p.add_argument("--sites", type=int, default=300)
    p.add_argument("--batch-times", type=int, default=24,
                   help="analysis times of the many-times FuXi-DA case")  # fmt: skip
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "fuxi_da_bench.json"))
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    load_start = os.getloadavg()[0]
    xfuxi.set_options(progress=False)
    model = xfuxi.load_model("fuxi-hs-t21")
    net = load_da_model("fuxi-da-hs-t21")
    truth = xfuxi.held_suarez_split("test", days=4 + a.batch_times // 4).load()
    t0 = truth["time"].values[10]
    bg = world_background(truth, model=model, time=t0, lead_steps=4)
    bg_t0 = bg.isel(time=[-1])  # FuXi-DA's background: the analysis time (sliced once)
    radiances = imager_observations(truth, satellites=[105.0], times=[t0], seed=12345)
    many_times = truth["time"].values[10 : 10 + a.batch_times]
    many_bg = xr.concat(
        [world_background(truth, model=model, time=t, lead_steps=2).isel(time=[-1])
         for t in many_times], "time",
    )  # fmt: skip
    many_rad = imager_observations(truth, satellites=[105.0], times=many_times, seed=12345)
    err = {
        v: 0.1
        * float(np.mean([s for (vv, _), s in zip(model.channels, model.stats.std) if vv == v]))
        for v, _ in model.channels
    }
    sondes = radiosonde_observations(truth, n_sites=a.sites, error=err, times=[t0], seed=0)
    table = radiance_table(radiances, error=1.0).drop_vars("cloudy")
    hxb = background_radiances(table, bg_t0, channels=model.channels)
    clear = ~cloud_screen(table, hxb)
    names = table["sensor_channel"].values.astype(str)
    bc = fit_radiance_bias(
        table["value"].values[clear] - hxb[clear], sensor_channel=names[clear],
        zenith_angle=table["zenith_angle"].values[clear], background_bt=hxb[clear],
    )  # fmt: skip
    network_s: list[float] = []  # assimilate_da's own "analysis_seconds": inputs + network

    def fuxi_da() -> None:
        res = assimilate_da(bg_t0, radiances, model=net)
        network_s.append(float(res.diagnostics["analysis_seconds"]))

    fast = dict(precision="bfloat16", diagnostics=False)
    cases = {
        "FuXi-DA (assimilate_da)": fuxi_da,
        "FuXi-DA (bfloat16, no diagnostics)": lambda: assimilate_da(
            bg_t0, radiances, model=net, **fast
        ),
        f"FuXi-DA ({a.batch_times} times in one call, bfloat16, no diagnostics)": lambda: (
            assimilate_da(many_bg, many_rad, model=net, batch_size=8, **fast)
        ),
        "En4DVar radiosondes (assimilate_4dvar defaults)": lambda: xfuxi.assimilate_4dvar(
            bg, sondes, model=model, progress=False
        ),
        "En4DVar clear-sky radiances + BC (radiance_analysis)": lambda: radiance_analysis(
            bg, table, model=model, bias=bc
        ),
    }
    runs: dict[str, list[tuple[float, float]]] = {c: [] for c in cases}
    for _ in range(a.repeat):
        for c, fn in cases.items():
            runs[c].append(measure(fn))
    rows = []
    for c, r in runs.items():
        n = a.batch_times if "times in one call" in c else 1
        walls = [w / n for w, _ in r]  # per analysis
        rows.append({
            "case": c if n == 1 else f"{c}, per analysis",
            "analyses_per_call": n,
            "median_s": statistics.median(walls),
            "min_s": min(walls),
            "max_s": max(walls),
            "peak_rss_above_start_mb": max(m for _, m in r),
        })  # fmt: skip
    fuxi_da = rows[0]["median_s"]
    for row in rows:
        row["time_over_fuxi_da"] = row["median_s"] / fuxi_da
    train = xfuxi.held_suarez_split("train", days=3).load()
    training = [
        train_rate(train, model, k=0, steps=a.train_steps, batch=4),
        train_rate(train, model, k=1, steps=max(a.train_steps // 4, 1), batch=2),
        # the shipped networks' size, in both precisions
        *(
            train_rate(
                train,
                model,
                k=0,
                steps=a.train_steps,
                batch=4,
                width=24,
                scales=3,
                precision=precision,
            )  # fmt: skip
            for precision in ("float32", "bfloat16")
        ),
    ]
    analysis_only = statistics.median(network_s)
    en4dvar_rad = next(r["median_s"] for r in rows if r["case"].startswith("En4DVar clear-sky"))
    layouts = network_layouts(net, bg_t0, radiances)
    parts = fast_call_parts(bg_t0, radiances, net)
    result = {
        "rows": rows,
        "fuxi_da_analysis_only_s": analysis_only,
        "fuxi_da_analysis_only": "median of assimilate_da's analysis_seconds: the inputs "
        "(with the departures) and the network, without the diagnostics and the Datasets",
        "en4dvar_radiances_over_fuxi_da_analysis_only": en4dvar_rad / analysis_only,
        "en4dvar_radiances_over_fuxi_da_fast": {
            r["case"]: en4dvar_rad / r["median_s"] for r in rows if r["case"].startswith("FuXi-DA")
        },
        "network_forward": layouts,
        "fast_call_parts_ms": parts,
        "fast_call_parts": "median ms of each part of one bfloat16 call without diagnostics, "
        "each repeated 50 times in a loop (warm)",
        "training": training,
        "n_radiances": int(table.sizes["obs"]),
        "n_radiances_clear_looking": int(clear.sum()),
        "n_radiosonde_obs": int(sondes.sizes["obs"]),
        "repeat": a.repeat,
        "threads": torch.get_num_threads(),
        "memory": "peak RSS above the RSS before the call (after malloc_trim), sampled every "
        "2 ms (max of repeats)",
        "load_average": [load_start, os.getloadavg()[0]],
        "cpu": cpu(),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(a.out, result)
    print(f"{'case':<72} {'median ms':>10} {'min-max ms':>16} {'peak MB':>8} {'x FuXi-DA':>9}")
    for r in rows:
        print(
            f"{r['case']:<72} {1e3 * r['median_s']:10.1f} {1e3 * r['min_s']:7.1f}-"
            f"{1e3 * r['max_s']:<8.1f} {r['peak_rss_above_start_mb']:8.0f} "
            f"{r['time_over_fuxi_da']:9.2f}"
        )
    for case, ratio in result["en4dvar_radiances_over_fuxi_da_fast"].items():
        print(f"En4DVar radiances over {case}: {ratio:.0f}x")
    print(
        f"FuXi-DA inputs + network only: {analysis_only * 1e3:.1f} ms "
        f"(En4DVar radiances {result['en4dvar_radiances_over_fuxi_da_analysis_only']:.0f}x)"
    )
    print(
        f"network forward: {layouts['channels_last_ms']:.1f} ms channels-last, "
        f"{layouts['standard_ms']:.1f} ms standard layout, "
        f"{layouts['channels_last_bfloat16_ms']:.1f} ms bfloat16 (increment off by "
        f"{100 * layouts['bfloat16_relative_rms_difference']:.1f} % RMS)"
    )
    print(
        "one bfloat16 call without diagnostics, parts (warm, ms): "
        + ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
    )
    for t in training:
        print(
            f"train_da {t['network']}, {t['precision']}, K={t['forecast_steps_K']}: "
            f"{t['samples_per_s']:.2f} samples/s"
        )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
