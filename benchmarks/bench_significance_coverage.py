"""How often the intervals of ``xfuxi.score_difference`` hold the true mean difference.

Simulated series of score differences, AR(1) with lag-1 autocorrelation ρ (0 to 0.8: the
recorded experiments' series have 0.1–0.7) and n times (10, 24, 60), true mean 0: the
share of the nominal 95 % intervals that hold 0, with the autocorrelation allowed for
(the default) and without (an ordinary paired t-test), and the share of p-values below
0.05 (the false-alarm rate, nominal 5 %). Usage::

    python benchmarks/bench_significance_coverage.py      # CPU: a few seconds

Prints the table and writes ``benchmarks/results/significance_coverage.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import xarray as xr

from xfuxi.files import atomic_write_json
from xfuxi.verify.significance import score_difference

RESULTS = Path(__file__).resolve().parent / "results"


def ar1(rng: np.random.Generator, n_series: int, n: int, rho: float) -> np.ndarray:
    """``n_series`` stationary AR(1) series of length ``n``, unit variance."""
    x = np.empty((n_series, n))
    x[:, 0] = rng.normal(size=n_series)
    innovation = np.sqrt(1.0 - rho**2)
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + innovation * rng.normal(size=n_series)
    return x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "significance_coverage.json"))
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    rows = []
    started = time.perf_counter()
    for n in (10, 24, 60):
        for rho in (0.0, 0.3, 0.6, 0.8):
            d = xr.DataArray(ar1(rng, a.series, n, rho), dims=("series", "time"))
            zero = xr.zeros_like(d)
            row = {"times": n, "rho": rho}
            for label, auto in (("AR(1)", True), ("independent", False)):
                res = score_difference(d, zero, autocorrelation=auto)
                lo, hi = res.sel(statistic="lower"), res.sel(statistic="upper")
                row[f"coverage {label}"] = round(float(((lo <= 0) & (hi >= 0)).mean()), 3)
                p_value = res.sel(statistic="p_value")
                row[f"p < 0.05 {label}"] = round(float((p_value < 0.05).mean()), 3)
            rows.append(row)
    seconds = time.perf_counter() - started
    head = list(rows[0])
    print(f"nominal 95 % intervals, {a.series} simulated series per row ({seconds:.1f} s)")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in head) + " |")
    atomic_write_json(Path(a.out), {"series": a.series, "seed": a.seed, "rows": rows})
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
