"""Skill of the shipped FuXi model on the held-back (test) period of the Held–Suarez world.

Prints, for geopotential 500, temperature 850 and the 250 hPa winds, the area-weighted RMSE
and ACC by lead time of the model, persistence and climatology (the climatology of the
train split), the ratio of the forecast's spatial std to the truth's, and checks of the
targets: model RMSE < persistence at every lead 6 h..5 d, < climatology up to 3 d, RMSE at
10 d <= 1.5 × climatology, std ratio at 10 d within ±20%, and a 15-day rollout finite.

Usage::

    python benchmarks/bench_forecast_skill.py [--model fuxi-hs-t21] [--inits 24] [--days 15]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import xarray as xr

import xfuxi
from xfuxi.data.stats import climatology
from xfuxi.datasets import held_suarez_split
from xfuxi.forecasting.baselines import climatology_forecast, persistence_forecast
from xfuxi.verify.weights import area_weights

FIELDS = [
    ("geopotential", 500.0, "z500"),
    ("temperature", 850.0, "t850"),
    ("u_component_of_wind", 250.0, "u250"),
    ("v_component_of_wind", 250.0, "v250"),
]
REPORT_HOURS = [6, 12, 24, 48, 72, 96, 120, 168, 240, 360]


def _sel(ds: xr.Dataset, var: str, level: float) -> xr.DataArray:
    return ds[var].sel(level=level)


def _spatial_std(da: xr.DataArray) -> xr.DataArray:
    """Area-weighted spatial standard deviation, averaged over initial times (RMS)."""
    w = area_weights(da["latitude"])
    mean = da.weighted(w).mean(["latitude", "longitude"])
    var = ((da - mean) ** 2).weighted(w).mean(["latitude", "longitude"])
    return np.sqrt(var.mean("time"))


def _last_true(hours: np.ndarray, ok: np.ndarray) -> int:
    """The last lead (h) of the leading run of True (0 if the first lead fails)."""
    bad = np.nonzero(~ok)[0]
    n = bad[0] if bad.size else ok.size
    return int(hours[n - 1]) if n else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument("--inits", type=int, default=24, help="initial times (every 7 days)")
    p.add_argument("--days", type=int, default=15, help="forecast length in days")
    args = p.parse_args()

    steps = args.days * 4
    model = xfuxi.load_model(args.model)
    test = held_suarez_split("test").load()
    clim = climatology(held_suarez_split("train")).load()
    times = pd.DatetimeIndex(test.time.values)
    inits = times[1 : 1 + 28 * args.inits : 28][: args.inits]  # every 7 days
    if (inits[-1] + pd.Timedelta(hours=6 * steps)) > times[-1]:
        raise SystemExit("test period too short for these initial times and lead")
    t0 = time.perf_counter()
    fc = xfuxi.forecast(test, model=model, steps=steps, init_times=inits, progress=False)
    elapsed = time.perf_counter() - t0
    leads = fc.prediction_timedelta.values
    pers = persistence_forecast(test, leads=leads, init_times=inits)
    climf = climatology_forecast(clim, init_times=inits, leads=leads)
    print(
        f"model {model.name} (sha256 "
        f"{'+'.join(h[:12] for h in str(model.config.get('sha256', 'none')).split('+'))}), "
        f"{len(inits)} initial times {inits[0]:%Y-%m-%d}..{inits[-1]:%Y-%m-%d} (test split), "
        f"{steps} steps in {elapsed:.1f} s"
    )
    finite = all(bool(np.isfinite(fc[v]).all()) for v in fc.data_vars)
    ratios = []
    for v, lv, _ in FIELDS:
        c = clim[v].sel(level=lv).mean("hour")
        ratios.append(
            float(np.abs(fc[v].sel(level=lv) - c).max() / np.abs(test[v].sel(level=lv) - c).max())
        )
    print(
        f"{args.days}-day rollout finite: {finite}; max |forecast - clim| / max |truth - clim| "
        f"over all leads: {', '.join(f'{s} {r:.2f}' for (_, _, s), r in zip(FIELDS, ratios))}"
    )
    hours = leads.astype("timedelta64[h]").astype(int)
    checks = []
    for var, lev, short in FIELDS:
        f, pr, cl = (_sel(x, var, lev) for x in (fc, pers, climf))
        truth = _sel(test, var, lev)
        dims = ["time", "latitude", "longitude"]
        r_m = xfuxi.rmse(f, truth, dim=dims)
        r_p = xfuxi.rmse(pr, truth, dim=dims)
        r_c = xfuxi.rmse(cl, truth, dim=dims)
        a_m = xfuxi.acc(f, truth, clim[var].sel(level=lev), dim=dims)
        a_p = xfuxi.acc(pr, truth, clim[var].sel(level=lev), dim=dims)
        truth_at = xfuxi.align_valid_time(f, truth)
        ratio = _spatial_std(f) / _spatial_std(truth_at)
        print(f"\n{short} ({var} {lev:g} hPa)")
        print(f"{'lead h':>7} {'RMSE fc':>10} {'RMSE pers':>10} {'RMSE clim':>10} "
              f"{'ACC fc':>7} {'ACC pers':>8} {'std ratio':>9}")  # fmt: skip
        for h in REPORT_HOURS:
            if h not in hours:
                continue
            i = int(np.nonzero(hours == h)[0][0])
            print(f"{h:7d} {float(r_m[i]):10.3f} {float(r_p[i]):10.3f} {float(r_c[i]):10.3f} "
                  f"{float(a_m[i]):7.3f} {float(a_p[i]):8.3f} {float(ratio[i]):9.3f}")  # fmt: skip
        upto = hours <= 24 * 3
        i10 = int(np.nonzero(hours == 240)[0][0]) if 240 in hours else None
        checks.append(
            (
                short,
                bool((r_m < r_p)[hours <= 24 * 5].all()),
                bool((r_m < r_c)[upto].all()),
                _last_true(hours, np.asarray(r_m < r_c)),
                _last_true(hours, np.asarray(a_m) >= 0.6),
                None if i10 is None else float(r_m[i10] / r_c[i10]),
                None if i10 is None else float(ratio[i10]),
            )
        )
    print("\nfield  <pers 6h-5d  <clim to 3d  beats clim to (h)  ACC>=0.6 to (h)  "
          "RMSE/clim 10d  std ratio 10d")  # fmt: skip
    for short, bp, bc, lc, ah, rc10, sr10 in checks:
        rc = "n/a" if rc10 is None else f"{rc10:.2f}"
        sr = "n/a" if sr10 is None else f"{sr10:.2f}"
        print(f"{short:5s}  {bp!s:>11}  {bc!s:>11}  {lc:>17d}  {ah:>15d}  {rc:>13}  {sr:>13}")


if __name__ == "__main__":
    main()
