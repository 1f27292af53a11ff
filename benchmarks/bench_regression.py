"""Fingerprints of xfuxi's main results on small fixed cases, to compare two versions.

Runs, on a short piece of the embedded world's test split: a deterministic forecast
(shipped model and cascade), a FuXi-ENS ensemble, a Perlin ensemble, an En4DVar analysis
with radiosondes, the scores of the forecast (RMSE, ACC, fair CRPS, SSR) and a short
Lorenz-96 twin. For each it prints and writes (JSON) the max |value|, the mean, and the
sha256 of the float64 bytes, so that two versions of the package (a refactor) can be
compared result by result::

    python benchmarks/bench_regression.py --out before.json     # on the old version
    python benchmarks/bench_regression.py --out after.json      # on the new version
    python benchmarks/bench_regression.py --compare before.json after.json

Only public names (``xfuxi.*``) are used, so the script runs on either version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

import numpy as np


def _fingerprint(obj) -> dict:
    import xarray as xr

    if isinstance(obj, xr.DataArray):
        obj = obj.to_dataset(name="value")
    out = {}
    for name in sorted(obj.data_vars):
        a = np.asarray(obj[name].transpose(*sorted(obj[name].dims)).values, dtype="float64")
        out[str(name)] = {
            "shape": list(a.shape),
            "mean": float(np.nanmean(a)),
            "max_abs": float(np.nanmax(np.abs(a))),
            "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16],
        }
    return out


def run() -> dict:
    import xfuxi

    xfuxi.set_options(progress=False)
    results: dict[str, dict] = {}
    t = time.perf_counter()
    truth = xfuxi.held_suarez_split("test", days=12).load()
    results["truth"] = _fingerprint(truth)
    clim = xfuxi.climatology(truth)
    init = truth.time.values[[4, 12]]
    for name in ("fuxi-hs-t21", "fuxi-hs-t21-cascade"):
        fc = xfuxi.forecast(truth, model=name, steps=8, init_times=init)
        results[f"forecast:{name}"] = _fingerprint(fc)
    fc = xfuxi.forecast(truth, model="fuxi-hs-t21", steps=8, init_times=init)
    dims = ["time", "latitude", "longitude"]
    results["rmse"] = _fingerprint(xfuxi.rmse(fc, truth, dim=dims))
    results["acc"] = _fingerprint(xfuxi.acc(fc, truth, clim, dim=dims))
    ens = xfuxi.ensemble(truth, model="fuxi-hs-t21-cascade", n=8, steps=6,
                         init_times=init[:1], method="vae", seed=0)  # fmt: skip
    results["ensemble:vae"] = _fingerprint(ens)
    results["crps"] = _fingerprint(xfuxi.crps(ens, truth, dim=dims))
    results["spread_skill_ratio"] = _fingerprint(xfuxi.spread_skill_ratio(ens, truth, dim=dims))
    ens_p = xfuxi.ensemble(truth, model="fuxi-hs-t21", n=6, steps=4, init_times=init[:1],
                           method="perlin", seed=1)  # fmt: skip
    results["ensemble:perlin"] = _fingerprint(ens_p)
    step = np.timedelta64(6, "h")
    t0 = truth.time.values[20]
    bg_fc = xfuxi.forecast(truth, model="fuxi-hs-t21", steps=4, init_times=[t0 - 4 * step])
    background = (
        bg_fc.isel(time=0, drop=True)
        .sel(prediction_timedelta=[2 * step, 3 * step, 4 * step])
        .assign_coords(time=("prediction_timedelta", [t0 - 2 * step, t0 - step, t0]))
        .swap_dims(prediction_timedelta="time")
        .drop_vars("prediction_timedelta")
    )
    errors = {"geopotential": 30.0, "temperature": 0.5, "u_component_of_wind": 1.0,
              "v_component_of_wind": 1.0}  # fmt: skip
    obs = xfuxi.radiosonde_observations(truth.sel(time=[t0, t0 + step]), error=errors,
                                        n_sites=60, variables=list(errors), seed=0)  # fmt: skip
    res = xfuxi.assimilate_4dvar(background, obs, model="fuxi-hs-t21", n_members=40,
                                 localization={"length_scale": 1500.0})  # fmt: skip
    results["en4dvar:analysis"] = _fingerprint(res.analysis)
    twin = xfuxi.lorenz96_twin(
        config=xfuxi.Lorenz96TwinConfig(n_cycles=60, burn_in=10, n_members=40), progress=False
    )
    results["lorenz96_twin"] = {
        k: float(twin.attrs[k]) for k in ("mean_analysis_rmse", "mean_background_rmse")
    }
    results["_wall_s"] = {"total": time.perf_counter() - t}
    return results


def compare(a: dict, b: dict) -> int:
    differ = 0
    for key in sorted(set(a) | set(b)):
        if key.startswith("_"):
            continue
        if key not in a or key not in b:
            print(f"{key:32s} only in {'before' if key in a else 'after'}")
            differ += 1
            continue
        for var in sorted(set(a[key]) | set(b[key])):
            x, y = a[key].get(var), b[key].get(var)
            if x == y:
                status = "identical"
            elif isinstance(x, dict) and isinstance(y, dict):
                rel = abs(x["mean"] - y["mean"]) / max(abs(x["mean"]), 1e-300)
                status = (
                    f"DIFFERENT (max_abs {x['max_abs']:.6g} -> {y['max_abs']:.6g}, "
                    f"mean rel {rel:.2e})"
                )
                differ += 1
            else:
                status = f"DIFFERENT ({x} -> {y})"
                differ += 1
            print(f"{key:32s} {var:28s} {status}")
    print(f"{differ} result(s) differ")
    return differ


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="write the fingerprints to this JSON file")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    a = p.parse_args()
    if a.compare:
        before, after = (json.load(open(f)) for f in a.compare)
        sys.exit(1 if compare(before, after) else 0)
    results = run()
    text = json.dumps(results, indent=1, sort_keys=True)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
