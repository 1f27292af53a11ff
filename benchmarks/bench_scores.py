"""Benchmark xfuxi's ensemble scores against xskillscore on a FuXi-ENS-sized case.

Case: 50 members x 20 leads x 5 variables x 32 x 64 grid (float64 by default). Prints one
table with the best-of-N wall time of each score, xskillscore's ``crps_ensemble`` on the
same data in the same run, the time ratio, and the max abs difference of xfuxi's fair CRPS
from a brute-force O(M^2) estimator (and of the standard CRPS from xskillscore).

    python benchmarks/bench_scores.py [--repeat 3] [--dtype float64] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import xarray as xr

VARS = ["geopotential", "temperature", "u_component_of_wind", "v_component_of_wind",
        "specific_humidity"]  # fmt: skip


def make_case(members=50, leads=20, nlat=32, nlon=64, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    lat = np.linspace(-87.1875, 87.1875, nlat)
    lon = np.arange(nlon) * 360.0 / nlon
    coords = {"prediction_timedelta": np.arange(1, leads + 1) * np.timedelta64(6, "h"),
              "latitude": lat, "longitude": lon}  # fmt: skip
    fc, truth = {}, {}
    for v in VARS:
        fc[v] = (("prediction_timedelta", "number", "latitude", "longitude"),
                 rng.normal(size=(leads, members, nlat, nlon)).astype(dtype))  # fmt: skip
        truth[v] = (("prediction_timedelta", "latitude", "longitude"),
                    rng.normal(size=(leads, nlat, nlon)).astype(dtype))  # fmt: skip
    return xr.Dataset(fc, coords=coords), xr.Dataset(truth, coords=coords)


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        if hasattr(out, "compute"):
            out = out.compute()
        times.append(time.perf_counter() - t0)
    return min(times), out


def brute_fair(x, y, chunk=256):
    """O(M^2) fair CRPS, members on the last axis."""
    m = x.shape[-1]
    out = np.empty(x.shape[:-1])
    flat_x, flat_y, flat_o = x.reshape(-1, m), y.reshape(-1), out.reshape(-1)
    for s in range(0, flat_x.shape[0], chunk):
        xs_, ys_ = flat_x[s : s + chunk].astype("f8"), flat_y[s : s + chunk].astype("f8")
        skill = np.abs(xs_ - ys_[:, None]).mean(-1)
        pair = np.abs(xs_[:, :, None] - xs_[:, None, :]).sum((-1, -2))
        flat_o[s : s + chunk] = skill - 0.5 * pair / (m * (m - 1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--members", type=int, default=50)
    args = p.parse_args()

    import xskillscore as xs

    import xfuxi
    from xfuxi.verify import _kernels

    fc, truth = make_case(members=args.members, dtype=args.dtype)
    m = fc.sizes["number"]
    print(f"case: {m} members x {fc.sizes['prediction_timedelta']} leads x {len(VARS)} variables"
          f" x {fc.sizes['latitude']}x{fc.sizes['longitude']} ({args.dtype}, "
          f"{sum(v.nbytes for v in fc.data_vars.values()) / 1e6:.0f} MB); numba: "
          f"{_kernels.have_numba()}; cores: {os.cpu_count()}")  # fmt: skip
    dims = ["latitude", "longitude"]
    # warm up numba compilation outside the timings
    xfuxi.crps(
        fc.isel(prediction_timedelta=[0], latitude=[0]),
        truth.isel(prediction_timedelta=[0], latitude=[0]),
    )
    rows = []
    t_fair, fair = best_of(lambda: xfuxi.crps(fc, truth, dim=dims, weights=None), args.repeat)
    t_std, std = best_of(
        lambda: xfuxi.crps(fc, truth, dim=dims, weights=None, fair=False), args.repeat
    )
    t_xs, ref = best_of(
        lambda: xs.crps_ensemble(truth, fc, member_dim="number", dim=dims), args.repeat
    )
    t_ssr, _ = best_of(lambda: xfuxi.spread_skill_ratio(fc, truth, dim=dims), args.repeat)
    t_rmse, ours_rmse = best_of(
        lambda: xfuxi.rmse(fc.mean("number"), truth, dim=dims, weights=None), args.repeat
    )
    t_xs_rmse, xs_rmse = best_of(lambda: xs.rmse(fc.mean("number"), truth, dim=dims), args.repeat)
    t_np = None
    os.environ["XFUXI_DISABLE_NUMBA"] = "1"
    try:
        t_np, fair_np = best_of(lambda: xfuxi.crps(fc, truth, dim=dims, weights=None), args.repeat)
    finally:
        del os.environ["XFUXI_DISABLE_NUMBA"]

    # brute force on one variable (all leads and points) for the accuracy column
    v = "temperature"
    x = np.moveaxis(fc[v].values, 1, -1)
    brute = brute_fair(x, truth[v].values).mean((-1, -2))
    err_fair = float(np.abs(fair[v].values - brute).max())
    err_np = float(np.abs(fair_np[v].values - brute).max())
    err_std = max(float(np.abs(std[k] - ref[k]).max()) for k in VARS)
    rows = [
        ("xfuxi crps (fair, numba)", t_fair, t_xs / t_fair, f"{err_fair:.1e} vs brute force"),
        ("xfuxi crps (fair, NumPy fallback)", t_np, t_xs / t_np, f"{err_np:.1e} vs brute force"),
        ("xfuxi crps (standard, numba)", t_std, t_xs / t_std, f"{err_std:.1e} vs xskillscore"),
        ("xskillscore crps_ensemble (standard)", t_xs, 1.0, "reference"),
        ("xfuxi spread_skill_ratio", t_ssr, t_xs / t_ssr, ""),
        (
            "xfuxi rmse (ensemble mean, unweighted)",
            t_rmse,
            t_xs / t_rmse,
            f"{max(float(np.abs(ours_rmse[k] - xs_rmse[k]).max()) for k in VARS):.1e} vs xs.rmse",
        ),
        ("xskillscore rmse (ensemble mean)", t_xs_rmse, t_xs / t_xs_rmse, "reference"),
    ]
    print(f"\n{'score':40s} {'time (s)':>9s} {'xs crps / time':>15s}  max abs diff")
    for name, t, ratio, note in rows:
        print(f"{name:40s} {t:9.3f} {ratio:15.1f}  {note}")


if __name__ == "__main__":
    main()
