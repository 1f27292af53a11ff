"""Coverage of the experiments' "95 %" block-bootstrap intervals, measured by simulation.

The FuXi-DA experiments (``examples/fuxi_da_experiments.py`` and the scripts that reuse its
``block_bootstrap_gain``) give each gain ``1 − RMSE_a / RMSE_b`` over T analysis times a
percentile interval from a moving-block bootstrap (blocks of 4 times, 1000 resamples). This
script draws pairs of per-time MSE series with a known gain, as AR(1) processes of lag-1
correlation φ (log-normal, a weather-dependent part shared by both systems and a part of
each), and counts how often the interval holds the true gain. It also reads the lag-1
autocorrelation of the recorded per-time series (``results/fuxi_da.json``: the ASSI − CORR
MSE differences inside the disc at the analysis time), to show where the experiments lie.
Results go to ``benchmarks/results/bootstrap_coverage.json``.

    python benchmarks/bench_bootstrap_coverage.py [--reps 400] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))

from fuxi_da_experiments import block_bootstrap_gain  # noqa: E402

from xfuxi.files import atomic_write_json  # noqa: E402

RESULTS = HERE / "results" / "bootstrap_coverage.json"


def ar1(rng: np.random.Generator, length: int, phi: float) -> np.ndarray:
    """A stationary AR(1) series of unit variance and lag-1 correlation ``phi``."""
    e = rng.standard_normal(length)
    x = np.empty(length)
    x[0] = e[0]
    for t in range(1, length):
        x[t] = phi * x[t - 1] + np.sqrt(1.0 - phi**2) * e[t]
    return x


def mse_pair(rng: np.random.Generator, length: int, phi: float) -> tuple[np.ndarray, ...]:
    """Per-time MSEs of two systems (means 0.9 and 1.0: true gain 1 − √0.9 = 0.0513)."""
    common, own_a, own_b = (ar1(rng, length, phi) for _ in range(3))
    log_a, log_b = 0.4 * common + 0.15 * own_a, 0.4 * common + 0.15 * own_b
    var = 0.4**2 + 0.15**2  # of each log: the means are then exactly 0.9 and 1.0
    return 0.9 * np.exp(log_a - var / 2), np.exp(log_b - var / 2)


def coverage(length: int, phi: float, block: int, reps: int, resamples: int) -> dict:
    true_gain = 1.0 - np.sqrt(0.9)
    rng = np.random.default_rng(1000 * length + int(100 * phi) + block)
    hits, widths = 0, []
    for r in range(reps):
        a, b = mse_pair(rng, length, phi)
        _, lo, hi = block_bootstrap_gain(a, b, block=block, n=resamples, seed=r)
        hits += lo <= true_gain <= hi
        widths.append(hi - lo)
    cov = hits / reps
    return {
        "times": length,
        "lag1_correlation": phi,
        "block": block,
        "coverage": round(cov, 3),
        "monte_carlo_se": round(float(np.sqrt(0.95 * 0.05 / reps)), 3),
        "mean_width": round(float(np.mean(widths)), 4),
    }


def recorded_autocorrelation() -> list[dict]:
    """Lag-1 autocorrelation of the recorded ASSI − CORR per-time MSE differences."""
    d = json.loads((HERE / "results" / "fuxi_da.json").read_text())
    rows = []
    for key, score in d["scores"].items():
        system, region, channel, lead = key.split("|")
        if system != "ASSI" or region != "inside" or lead != "0h":
            continue
        x = np.subtract(
            score["mse_per_time"], d["scores"][f"CORR|{region}|{channel}|{lead}"]["mse_per_time"]
        )
        x = x - x.mean()
        rows.append({
            "channel": channel,
            "times": int(x.size),
            "lag1_correlation": round(float((x[1:] * x[:-1]).sum() / (x * x).sum()), 2),
        })  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=400, help="simulated experiments per case")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args()
    start = time.perf_counter()
    rows = []
    for length in (24, 8):
        for phi in (0.0, 0.5, 0.8):
            for block in (4, 1):
                row = coverage(length, phi, block, a.reps, a.resamples)
                rows.append(row)
                print(
                    f"T={length:2d} phi={phi:.1f} block={block}: coverage {row['coverage']:.3f} "
                    f"(± {row['monte_carlo_se']:.3f}), mean width {row['mean_width']:.4f}",
                    flush=True,
                )
    recorded = recorded_autocorrelation()
    for r in recorded:
        print(f"recorded {r['channel']}: lag-1 correlation {r['lag1_correlation']:+.2f}")
    result = {
        "settings": {
            "reps": a.reps,
            "resamples": a.resamples,
            "true_gain": round(1.0 - float(np.sqrt(0.9)), 4),
            "nominal": 0.95,
            "model": "log-normal AR(1) per-time MSEs, shared part 0.4, own part 0.15",
        },
        "rows": rows,
        "recorded_lag1": recorded,
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_json(a.out, result)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
