"""Benchmark every xfuxi score against xskillscore, properscoring and ``scores``, same run.

Case: 50 members x 20 leads x 5 variables x 32 x 64 grid (float64). Each timed call is
repeated ``--repeat`` times, the calls interleaved (one of each, then again), so that the
shared machine's load hits all of them alike; the table gives the median, the spread
(min-max) and the ratio of the reference's median to xfuxi's (> 1: xfuxi faster), and the
largest difference of the values where a reference computes the same number. The fair
CRPS is also checked against a brute-force O(M^2) estimator (to 1e-12) and timed on dask
chunks, with the distributed scheduler when ``distributed`` is installed. WeatherBench2's
metric classes are not compared: ``weatherbench2`` is not installable offline here (not on
the package index this project uses). Results go to benchmarks/results/scores.json.

    python benchmarks/bench_scores.py [--repeat 5] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import operator
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import xarray as xr

VARS = ["geopotential", "temperature", "u_component_of_wind", "v_component_of_wind",
        "specific_humidity"]  # fmt: skip
RESULTS = Path(__file__).parent / "results" / "scores.json"


def make_case(members=50, leads=20, nlat=32, nlon=64, dtype="float64", seed=0):
    """Random ensemble and truth in WeatherBench2 layout (no time dim: one init)."""
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


def _materialise(out):
    if hasattr(out, "compute"):
        out = out.compute()
    return out


def interleaved(calls: dict[str, Callable[[], object]], repeat: int):
    """Median, min, max seconds and last output of each call, repeats interleaved."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    outs: dict[str, object] = {}
    for _ in range(repeat):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            outs[name] = _materialise(fn())
            times[name].append(time.perf_counter() - t0)
    stats = {k: (statistics.median(v), min(v), max(v)) for k, v in times.items()}
    return stats, outs


def _diff(a, b) -> float:
    """Largest absolute difference of two results (Datasets by variable, or arrays)."""
    if isinstance(a, xr.Dataset):
        return max(_diff(a[v], b[v]) for v in a.data_vars)
    if isinstance(a, xr.DataArray) and isinstance(b, xr.DataArray):
        b = b.squeeze([d for d in b.dims if d not in a.dims and b.sizes[d] == 1], drop=True)
        b = b.transpose(*a.dims)
    a = np.asarray(getattr(a, "values", a), dtype=float)
    b = np.asarray(getattr(b, "values", b), dtype=float)
    return float(np.nanmax(np.abs(a - b)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="numba/BLAS threads (default 1)")
    p.add_argument("--quick", action="store_true", help="10 members x 4 leads (a smoke run)")
    args = p.parse_args()
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    import properscoring as ps
    import scores
    import xskillscore as xs

    import xfuxi
    from xfuxi.files import atomic_write_json
    from xfuxi.verify import _kernels

    members, leads = (10, 4) if args.quick else (50, 20)
    fc, truth = make_case(members=members, leads=leads)
    m = fc.sizes["number"]
    dims = ["latitude", "longitude"]
    case = (f"{m} members x {fc.sizes['prediction_timedelta']} leads x {len(VARS)} variables x "
            f"{fc.sizes['latitude']}x{fc.sizes['longitude']} float64 "
            f"({sum(v.nbytes for v in fc.data_vars.values()) / 1e6:.0f} MB)")  # fmt: skip
    print(f"case: {case}; numba: {_kernels.have_numba()}; cores: {os.cpu_count()}; "
          f"threads: {args.threads}; repeats: {args.repeat} (interleaved)")  # fmt: skip

    # warm up numba compilation and the first-call imports outside the timings
    small = {"prediction_timedelta": [0], "latitude": [0, 1]}
    xfuxi.crps(fc.isel(small), truth.isel(small))
    xfuxi.crps(fc.isel(small), truth.isel(small), skipna=True)
    xs.crps_ensemble(truth.isel(small), fc.isel(small), member_dim="number")
    mean = fc.mean("number")
    std = fc.std("number")
    fc_last = {v: np.ascontiguousarray(np.moveaxis(fc[v].values, 1, -1)) for v in VARS}
    thr = 0.5
    edges = np.array([-0.5, 0.0, 0.5])
    wind = fc[["u_component_of_wind", "v_component_of_wind"]].mean("number")
    wind_truth = truth[["u_component_of_wind", "v_component_of_wind"]]

    def ps_layout(fair_std=True):
        # properscoring including the layout change (members last, contiguous)
        return {v: ps.crps_ensemble(truth[v].values,
                                    np.ascontiguousarray(np.moveaxis(fc[v].values, 1, -1))
                                    ).mean((-1, -2)) for v in VARS}  # fmt: skip

    # (group, xfuxi call, {reference name: call}, comparable values?)
    groups: list[tuple[str, Callable, dict[str, Callable], bool]] = [
        (
            "crps fair",
            lambda: xfuxi.crps(fc, truth, dim=dims, weights=None),
            {
                "xskillscore crps_ensemble (standard)": lambda: xs.crps_ensemble(
                    truth, fc, member_dim="number", dim=dims
                ),
                "properscoring crps_ensemble (standard) incl. layout change": ps_layout,
                "properscoring crps_ensemble (standard) own layout": lambda: {
                    v: ps.crps_ensemble(truth[v].values, fc_last[v]).mean((-1, -2)) for v in VARS
                },
                "scores crps_for_ensemble (fair)": lambda: scores.probability.crps_for_ensemble(
                    fc, truth, "number", method="fair", reduce_dims=dims
                ),
            },
            False,
        ),
        (
            "crps standard",
            lambda: xfuxi.crps(fc, truth, dim=dims, weights=None, fair=False),
            {
                "xskillscore crps_ensemble (standard)": lambda: xs.crps_ensemble(
                    truth, fc, member_dim="number", dim=dims
                ),
            },
            True,
        ),
        (
            "crps fair skipna",
            lambda: xfuxi.crps(fc, truth, dim=dims, weights=None, skipna=True),
            {
                "scores crps_for_ensemble (fair)": lambda: scores.probability.crps_for_ensemble(
                    fc, truth, "number", method="fair", reduce_dims=dims
                )
            },
            True,
        ),
        (
            "rmse (ensemble mean)",
            lambda: xfuxi.rmse(mean, truth, dim=dims, weights=None),
            {
                "xskillscore rmse": lambda: xs.rmse(mean, truth, dim=dims),
                "scores rmse": lambda: scores.continuous.rmse(mean, truth, reduce_dims=dims),
            },
            True,
        ),
        (
            "mse",
            lambda: xfuxi.mse(mean, truth, dim=dims, weights=None),
            {
                "xskillscore mse": lambda: xs.mse(mean, truth, dim=dims),
                "scores mse": lambda: scores.continuous.mse(mean, truth, reduce_dims=dims),
            },
            True,
        ),
        (
            "mae",
            lambda: xfuxi.mae(mean, truth, dim=dims, weights=None),
            {
                "xskillscore mae": lambda: xs.mae(mean, truth, dim=dims),
                "scores mae": lambda: scores.continuous.mae(mean, truth, reduce_dims=dims),
            },
            True,
        ),
        (
            "bias",
            lambda: xfuxi.bias(mean, truth, dim=dims, weights=None),
            {
                "xskillscore me": lambda: xs.me(mean, truth, dim=dims),
                "scores additive_bias": lambda: scores.continuous.additive_bias(
                    mean, truth, reduce_dims=dims
                ),
            },
            True,
        ),
        (
            "wind_vector_rmse",
            lambda: xfuxi.wind_vector_rmse(wind, wind_truth, dim=dims, weights=None),
            {},
            False,
        ),
        ("spread", lambda: xfuxi.spread(fc, dim=dims, weights=None), {}, False),
        (
            "ensemble_mean_rmse",
            lambda: xfuxi.ensemble_mean_rmse(fc, truth, dim=dims, weights=None),
            {},
            False,
        ),
        ("spread_skill_ratio", lambda: xfuxi.spread_skill_ratio(fc, truth, dim=dims), {}, False),
        (
            "debiased_ensemble_mean_mse",
            lambda: xfuxi.debiased_ensemble_mean_mse(fc, truth, dim=dims, weights=None),
            {},
            False,
        ),
        (
            "brier_score",
            lambda: xfuxi.brier_score(fc, truth, threshold=thr, dim=dims, weights=None),
            {
                "xskillscore brier_score": lambda: xs.brier_score(
                    truth > thr, (fc > thr).mean("number"), dim=dims
                ),
            },
            True,
        ),
        (
            "brier_score fair",
            lambda: xfuxi.brier_score(fc, truth, threshold=thr, dim=dims, weights=None, fair=True),
            {
                "scores brier_score_for_ensemble (fair)": lambda: (
                    scores.probability.brier_score_for_ensemble(
                        fc,
                        truth,
                        "number",
                        thr,
                        reduce_dims=dims,
                        event_threshold_operator=operator.gt,
                    )
                ),
            },
            True,
        ),
        (
            "ranked_probability_score",
            lambda: xfuxi.ranked_probability_score(
                fc, truth, thresholds=edges, dim=dims, weights=None
            ),
            {
                "xskillscore rps": lambda: xs.rps(
                    truth, fc, category_edges=edges, dim=dims, member_dim="number"
                ),
            },
            True,
        ),
        (
            "rank_histogram",
            lambda: xfuxi.rank_histogram(fc, truth, dim=dims),
            {
                "xskillscore rank_histogram": lambda: xs.rank_histogram(
                    truth, fc, dim=dims, member_dim="number"
                ),
                "scores rank_histogram": lambda: scores.probability.rank_histogram(
                    fc, truth, "number", reduce_dims=dims
                ),
            },
            False,
        ),
        (
            "gaussian_crps",
            lambda: xfuxi.gaussian_crps(mean, truth, std=std, dim=dims, weights=None),
            {
                "xskillscore crps_gaussian": lambda: xs.crps_gaussian(truth, mean, std, dim=dims),
                "properscoring crps_gaussian": lambda: {
                    v: ps.crps_gaussian(truth[v].values, mean[v].values, std[v].values).mean(
                        (-1, -2)
                    )
                    for v in VARS
                },
            },
            True,
        ),
        (
            "gaussian_variance",
            lambda: xfuxi.gaussian_variance(mean, std=std, dim=dims, weights=None),
            {},
            False,
        ),
        (
            "gaussian_brier_score",
            lambda: xfuxi.gaussian_brier_score(
                mean, truth, std=std, threshold=thr, dim=dims, weights=None
            ),
            {},
            False,
        ),
        (
            "gaussian_ignorance",
            lambda: xfuxi.gaussian_ignorance(mean, truth, std=std, dim=dims, weights=None),
            {},
            False,
        ),
        (
            "ensemble_ignorance",
            lambda: xfuxi.ensemble_ignorance(fc, truth, dim=dims, weights=None),
            {},
            False,
        ),
        ("energy_score", lambda: xfuxi.energy_score(fc, truth, dim=[]), {}, False),
        (
            "central_reliability",
            lambda: xfuxi.central_reliability(fc, truth, dim=dims, weights=None),
            {},
            False,
        ),
        (
            "crps fair, region list",
            lambda: xfuxi.crps(fc, truth, dim=dims, region=["global", "tropics", "extra-tropics"]),
            {},
            False,
        ),
    ]
    calls: dict[str, Callable] = {}
    for g, ours, refs, _ in groups:
        calls[f"{g} | xfuxi"] = ours
        for name, ref in refs.items():
            calls[f"{g} | {name}"] = ref
    os.environ.pop("XFUXI_DISABLE_NUMBA", None)

    def numpy_fallback():
        os.environ["XFUXI_DISABLE_NUMBA"] = "1"
        try:
            return xfuxi.crps(fc, truth, dim=dims, weights=None)
        finally:
            del os.environ["XFUXI_DISABLE_NUMBA"]

    calls["crps fair | xfuxi NumPy fallback"] = numpy_fallback
    stats, outs = interleaved(calls, args.repeat)

    # accuracy: fair CRPS against brute force (every variable, lead and point)
    fair = outs["crps fair | xfuxi"]
    err_brute = max(float(np.abs(fair[v].values - brute_fair(fc_last[v], truth[v].values)
                                 .mean((-1, -2))).max()) for v in VARS)  # fmt: skip
    err_np = _diff(outs["crps fair | xfuxi NumPy fallback"], fair)

    rows = []
    for g, _, refs, comparable in groups:
        t_ours = stats[f"{g} | xfuxi"]
        rows.append({"score": g, "implementation": "xfuxi", "median_s": t_ours[0],
                     "min_s": t_ours[1], "max_s": t_ours[2], "ratio": 1.0,
                     "max_abs_diff": err_brute if g == "crps fair" else None})  # fmt: skip
        for name in refs:
            t = stats[f"{g} | {name}"]
            diff = None
            if comparable:
                ref_out = outs[f"{g} | {name}"]
                ours_out = outs[f"{g} | xfuxi"]
                diff = _diff(ours_out, ref_out)
            rows.append(
                {
                    "score": g,
                    "implementation": name,
                    "median_s": t[0],
                    "min_s": t[1],
                    "max_s": t[2],
                    "ratio": t[0] / t_ours[0],
                    "max_abs_diff": diff,
                }
            )
    t = stats["crps fair | xfuxi NumPy fallback"]
    rows.append(
        {
            "score": "crps fair",
            "implementation": "xfuxi NumPy fallback",
            "median_s": t[0],
            "min_s": t[1],
            "max_s": t[2],
            "ratio": t[0] / stats["crps fair | xfuxi"][0],
            "max_abs_diff": err_np,
        }
    )

    rows += _dask_rows(fc, truth, dims, args.repeat, fair)

    print(f"\n{'score':28s} {'implementation':58s} {'median s':>9s} {'min-max s':>15s} "
          f"{'ref/xfuxi':>9s}  max abs diff")  # fmt: skip
    for r in rows:
        d = "" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
        print(f"{r['score']:28s} {r['implementation']:58s} {r['median_s']:9.3f} "
              f"{r['min_s']:7.3f}-{r['max_s']:<7.3f} {r['ratio']:9.2f}  {d}")  # fmt: skip
    print(f"\nfair CRPS vs brute force O(M^2): max abs diff {err_brute:.1e} (target 1e-12)")
    print(
        "WeatherBench2's metric classes: not compared (weatherbench2 is not installable "
        "offline: not on this project's package index)"
    )
    atomic_write_json(RESULTS, {
        "case": case, "numba": _kernels.have_numba(), "threads": args.threads,
        "repeats": args.repeat, "interleaved": True, "python": sys.version.split()[0],
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "fair_crps_vs_brute_force_max_abs_diff": err_brute,
        "ratio_meaning": "reference median time / xfuxi median time (> 1: xfuxi faster)",
        "weatherbench2": "not compared: not installable offline",
        "rows": rows,
    })  # fmt: skip
    print(f"wrote {RESULTS}")


def _dask_rows(fc, truth, dims, repeat, fair_ref) -> list[dict]:
    """Fair CRPS on dask chunks (threaded, and distributed when installed) vs xskillscore."""
    import xskillscore as xs

    import xfuxi

    chunks = {"prediction_timedelta": 4}
    fcd, trd = fc.chunk(chunks), truth.chunk(chunks)
    rows: list[dict] = []
    client = None
    try:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                               dashboard_address=":0")  # fmt: skip
        client = Client(cluster)
        schedulers = {"threads": "threads", "distributed": client}
    except ImportError:
        schedulers = {"threads": "threads"}
    try:
        for label, sched in schedulers.items():
            import dask

            with dask.config.set(scheduler=sched) if label == "threads" else nullcontext():
                calls = {
                    "xfuxi": lambda: xfuxi.crps(fcd, trd, dim=dims, weights=None),
                    "xskillscore crps_ensemble (standard)":
                        lambda: xs.crps_ensemble(trd, fcd, member_dim="number", dim=dims),
                }  # fmt: skip
                stats, outs = interleaved(calls, repeat)
            ours = stats["xfuxi"]
            rows.append({"score": f"crps fair, dask ({label})", "implementation": "xfuxi",
                         "median_s": ours[0], "min_s": ours[1], "max_s": ours[2], "ratio": 1.0,
                         "max_abs_diff": _diff(outs["xfuxi"], fair_ref)})  # fmt: skip
            t = stats["xskillscore crps_ensemble (standard)"]
            rows.append({"score": f"crps fair, dask ({label})",
                         "implementation": "xskillscore crps_ensemble (standard)",
                         "median_s": t[0], "min_s": t[1], "max_s": t[2],
                         "ratio": t[0] / ours[0], "max_abs_diff": None})  # fmt: skip
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return rows


if __name__ == "__main__":
    main()
