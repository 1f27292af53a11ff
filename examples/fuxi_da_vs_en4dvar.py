"""FuXi-DA against En4DVar: single analyses from the same 6-hour backgrounds and radiances.

On ``--times`` consecutive analysis times of the test split (the first ones of
``examples/fuxi_da_experiments.py``: the same backgrounds, the same imager radiances of one
satellite at 105° E with seed 12345), from the same 6-hour background (CTRL):

* CORR and ASSI: the shipped FuXi-DA networks (ASSI sees the frames it was trained with);
* En4DVar clear-sky: the analysis-time frame, pixels screened by a window-channel
  departure (``ir10.8`` O−B below −threshold: cloudy-looking, every channel dropped), an
  offline bias correction per channel (least squares of O−B on 1, sec θ − 1 and H(x_b),
  fitted on clear-looking pixels of validation-split times — not VarBC);
* En4DVar all-sky: every pixel, the cloudy-looking ones with a larger error, the same bias
  correction;
* En4DVar radiosondes: ``assimilate_4dvar`` with its defaults and 300 radiosonde sites;
* En4DVar radiances + radiosondes: the clear-sky radiances and the same radiosondes;
* with ``--varbc``, also En4DVar clear-sky + VarBC: the clear-sky variant's settings, but
  the bias coefficients estimated in the minimisation with the state (variational bias
  correction), from the offline fit as prior (``radiance_analysis(..., varbc=fit)``, the
  default prior std); each analysis starts from that prior (single analyses, not cycled).

Every En4DVar analysis has ``assimilate_4dvar``'s default setting (200 Perlin members,
1500 km localization, vertical localization with radiosondes, background check k=5) but
for the B variances (below);
the earlier background times (t0 − 12 h, t0 − 6 h) are the truth, as for the CTRL forecast.
The B variances (the model's own, ``assimilate_4dvar``'s default: 24-hour forecast error;
or the 6-hour forecast error measured on the validation split) of every En4DVar variant and
the settings of the radiance variants (screening threshold, clear-sky error scale,
cloudy-pixel error) are chosen on ``--val-times`` analysis times of the validation split
(imager seed 54321); only the chosen variants run on the test split. Analysis RMSE
(area-weighted) inside the satellite's disc, outside and globally; relative differences
``1 − RMSE_A / RMSE_B`` with 95% block-bootstrap intervals (blocks of 4 times).

    python examples/fuxi_da_vs_en4dvar.py [--times 8] [--val-times 3] [--varbc]

Writes ``benchmarks/results/fuxi_da_vs_en4dvar.json`` and ``.md`` (with ``--varbc``:
``fuxi_da_vs_en4dvar_varbc.json`` and ``.md``) and prints the table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from _en4dvar_common import obs_errors
from fuxi_da_experiments import (
    HEADLINE,
    block_bootstrap_gain,
    ctrl_backgrounds,
    regions_and_weights,
    truth_tensor,
)

import xfuxi
from xfuxi.assimilation.config import BackgroundError, Minimiser
from xfuxi.assimilation.da import assimilate_da, resolve_da_model
from xfuxi.assimilation.radiances import (
    background_radiances,
    cloud_screen,
    offline_bias_fit,
    radiance_analysis,
)
from xfuxi.data.channels import channel_name, stack
from xfuxi.datasets import held_suarez_split
from xfuxi.files import atomic_write_bytes, atomic_write_json
from xfuxi.models.registry import load_model
from xfuxi.observations.imager import (
    imager_observations,
    radiance_table,
)
from xfuxi.observations.sets import radiosonde_observations

SATELLITES = [105.0]
#: En4DVar options other than the defaults (only for a quick smoke run: --members, --max-iter)
OPTIONS: dict = {}
EN4DVAR = ("En4DVar clear+BC", "En4DVar all-sky+BC", "En4DVar sondes", "En4DVar clear+BC+sondes")
#: the VarBC variant (``--varbc``): the clear-sky settings, VarBC from the offline fit
VARBC = "En4DVar clear+VarBC"
SHOWN = [
    ("geopotential", 500.0),
    ("temperature", 500.0),
    ("temperature", 850.0),
    ("passive_tracer", 500.0),
    ("u_component_of_wind", 250.0),
]


class Split:
    """One split's analysis times: truth, CTRL backgrounds, radiances, radiosondes."""

    def __init__(self, model, name, days, first, n, seed, sites, frames=(-2.0, 0.0, 2.0)):
        self.truth = held_suarez_split(name, days=days).load()
        self.data = truth_tensor(self.truth, model)
        self.idx = np.arange(first, first + n)
        self.times = self.truth["time"].values[self.idx]
        self.bg, self.background = ctrl_backgrounds(model, self.truth, self.data, self.idx)
        self.radiances = imager_observations(
            self.truth, satellites=SATELLITES, times=self.times, seed=seed, frames=frames
        )
        self.sondes = radiosonde_observations(
            self.truth, n_sites=sites, error=obs_errors(model), times=self.times, seed=seed
        )

    def en4dvar_background(self, k: int) -> xr.Dataset:
        """t0 − 12 h and t0 − 6 h from the truth, t0 the CTRL forecast."""
        i = self.idx[k]
        prev = self.truth.isel(time=[i - 2, i - 1])
        return xr.concat([prev, self.background.isel(time=[k])], dim="time")

    def table(self, k: int, error) -> xr.Dataset:
        return radiance_table(self.radiances.isel(time=[k]), error=error, frames=(0.0,))

    def sondes_at(self, k: int) -> xr.Dataset:
        keep = self.sondes["time"].values == self.times[k]
        return self.sondes.isel(obs=np.flatnonzero(keep))


def bias_fit(model, split: Split, threshold: float):
    """Offline bias fit on the clear-looking pixels of ``split``'s times (the analysis-time
    frame, CTRL backgrounds), the std of the corrected clear-sky departures per channel (the
    clear-sky error before scaling) and the RMS of the uncorrected ones."""
    fit = offline_bias_fit(
        split.background, split.radiances, model=model, screen_threshold=threshold
    )
    return fit.correction, fit.error, fit.rms_departure


def mse_per_time(states: np.ndarray, target: np.ndarray, w, mask) -> np.ndarray:
    """(T, C) area-weighted MSE inside ``mask``."""
    ww = w * mask
    return ((states - target) ** 2 * ww).sum((-2, -1)) / ww.sum()


def as_array(ds: xr.Dataset, model) -> np.ndarray:
    return stack(ds, model.channels).transpose("time", "channel", "latitude", "longitude").values


def run_en4dvar(model, split: Split, k: int, variant: str, s: dict, bc, err, spreads):
    """One En4DVar analysis of ``variant`` with settings ``s`` at the ``k``-th time."""
    bg = split.en4dvar_background(k)
    spread = spreads[s["spread"]]
    if variant == "En4DVar sondes":
        tic = time.perf_counter()
        res = xfuxi.assimilate_4dvar(
            bg,
            split.sondes_at(k),
            model=model,
            progress=False,
            error_data=xfuxi.BackgroundErrorData(spread=spread),
            **OPTIONS,
        )
        d = res.diagnostics.attrs
        an = res.analysis.isel(time=[-1]) if "time" in res.analysis.dims else res.analysis
        diag = {"iterations": d["iterations"], "n_conventional": d["n_observations_used"],
                "timings_s": {"wall": time.perf_counter() - tic}}  # fmt: skip
        return an, diag
    error = {c: s["error_scale"] * e for c, e in err.items()}
    correction = {"varbc": bc} if variant == VARBC else {"bias": bc}
    res = radiance_analysis(
        bg, split.table(k, error).drop_vars("cloudy"), model=model, **correction,
        screen_threshold=s["threshold"],
        cloudy_error=s["cloudy_error"] if variant == "En4DVar all-sky+BC" else None,
        conventional=split.sondes_at(k) if variant.endswith("sondes") else None,
        spread=spread,
        **OPTIONS,
    )  # fmt: skip
    return res.analysis.expand_dims("time"), res.diagnostics


def score(model, split: Split, analyses: dict[str, np.ndarray], regions, w):
    target = split.data[split.idx].numpy().astype("float64")
    chan = [model.channels.index(c) for c in HEADLINE]
    out = {}
    for m, x in analyses.items():
        for r, mask in regions.items():
            mse = mse_per_time(x[:, chan], target[:, chan], w, mask)
            for j, c in enumerate(chan):
                out[f"{m}|{r}|{channel_name(model.channels[c])}"] = mse[:, j]
    return out


def selection_score(mse: dict, method: str, names) -> float:
    """Mean over the headline channels of RMSE(method) / RMSE(CTRL) inside the disc."""
    return float(np.mean([
        np.sqrt(mse[f"{method}|inside|{n}"].mean() / mse[f"CTRL|inside|{n}"].mean()) for n in names
    ]))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument("--assi", default="fuxi-da-hs-t21")
    p.add_argument("--corr", default="fuxi-da-hs-t21-corr")
    p.add_argument("--times", type=int, default=8)
    p.add_argument("--val-times", type=int, default=3)
    p.add_argument("--fit-times", type=int, default=16, help="validation times for the bias fit")
    p.add_argument("--sites", type=int, default=300)
    p.add_argument("--thresholds", default="2,4", help="screening thresholds tried (K)")
    p.add_argument("--error-scales", default="1,2", help="clear-sky error scales tried")
    p.add_argument("--cloudy-errors", default="15,40", help="all-sky cloudy-pixel errors tried (K)")
    p.add_argument(
        "--out", default=None,
        help="default benchmarks/results/fuxi_da_vs_en4dvar.json (_varbc.json with --varbc)",
    )  # fmt: skip
    p.add_argument(
        "--varbc", action="store_true",
        help="also run clear-sky En4DVar with VarBC (prior: the offline fit) on the test split",
    )  # fmt: skip
    p.add_argument("--members", type=int, default=None, help="smoke runs only (default 200)")
    p.add_argument("--max-iter", type=int, default=None, help="smoke runs only (default 50)")
    args = p.parse_args()
    if args.out is None:
        stem = "fuxi_da_vs_en4dvar_varbc" if args.varbc else "fuxi_da_vs_en4dvar"
        args.out = f"benchmarks/results/{stem}.json"
    if args.members is not None:
        OPTIONS["background_error"] = BackgroundError(n_members=args.members)
    if args.max_iter is not None:
        OPTIONS["minimiser"] = Minimiser(max_iter=args.max_iter)
    t_start = time.perf_counter()
    xfuxi.set_options(progress=False)
    model = load_model(args.model)
    names = [channel_name(c) for c in HEADLINE]
    print("setting up the splits ...", flush=True)
    frames = resolve_da_model(args.assi).frames  # the frames ASSI takes (En4DVar: the one at 0 h)
    test = Split(model, "test", 12, 2, args.times, 12345, args.sites, frames)
    val = Split(model, "validation", 12, 2, args.val_times, 54321, args.sites)
    fit = Split(model, "validation", 12, 2 + args.val_times, args.fit_times, 54321, args.sites)
    regions, w = regions_and_weights(test.truth, SATELLITES)

    # --- tuning on the validation split
    thresholds = [float(x) for x in args.thresholds.split(",")]
    scales = [float(x) for x in args.error_scales.split(",")]
    cloudy_errors = [float(x) for x in args.cloudy_errors.split(",")]
    fits = {th: bias_fit(model, fit, th) for th in thresholds}
    # B variances: the model's own (24-hour forecast error, assimilate_4dvar's default) or
    # the 6-hour forecast error measured on the validation split
    spreads = {
        "model": None,
        "6h": xfuxi.background_error_std(val.truth, model=model, lead_steps=1, by_latitude=True),
    }
    tuning: list[dict] = []
    cache: dict = {}

    def validate(variant: str, s: dict) -> float:
        key = (variant, tuple(sorted(s.items())))
        if key in cache:
            return cache[key]
        bc, err, _ = fits[s.get("threshold", thresholds[0])]
        xs = [run_en4dvar(model, val, k, variant, s, bc, err, spreads)[0]
              for k in range(len(val.idx))]  # fmt: skip
        an = np.concatenate([as_array(x, model) for x in xs])
        mse = score(model, val, {"CTRL": val.bg.numpy().astype("float64"), variant: an}, regions, w)
        cache[key] = r = selection_score(mse, variant, names)
        tuning.append({"variant": variant, **s, "rmse_over_ctrl_inside": r})
        print(f"validation {variant} {s}: RMSE/CTRL inside {r:.4f}", flush=True)
        return r

    best_sondes = min(
        ({"spread": sp} for sp in spreads), key=lambda s: validate("En4DVar sondes", s)
    )
    start = {"threshold": thresholds[0], "error_scale": scales[0], "cloudy_error": None}
    spread = min(spreads, key=lambda sp: validate("En4DVar clear+BC", dict(start, spread=sp)))
    clear_grid = [{"spread": spread, "threshold": th, "error_scale": sc, "cloudy_error": None}
                  for th, sc in itertools.product(thresholds, scales)]  # fmt: skip
    best_clear = min(clear_grid, key=lambda s: validate("En4DVar clear+BC", s))
    allsky_grid = [dict(best_clear, cloudy_error=ce) for ce in cloudy_errors]
    best_allsky = min(allsky_grid, key=lambda s: validate("En4DVar all-sky+BC", s))
    chosen = {
        "En4DVar clear+BC": best_clear,
        "En4DVar all-sky+BC": best_allsky,
        "En4DVar sondes": best_sondes,
        "En4DVar clear+BC+sondes": best_clear,
    }
    variants = EN4DVAR
    if args.varbc:  # not tuned: the clear-sky variant's settings
        chosen[VARBC] = best_clear
        variants = (*EN4DVAR, VARBC)
    t_val = time.perf_counter() - t_start

    # --- the test split: every method once
    print("test split ...", flush=True)
    analyses: dict[str, np.ndarray] = {"CTRL": test.bg.numpy().astype("float64")}
    timing: dict[str, float] = {}
    tic = time.perf_counter()
    corr = assimilate_da(test.background, model=args.corr)
    timing["CORR"] = (time.perf_counter() - tic) / args.times
    tic = time.perf_counter()
    assi = assimilate_da(test.background, test.radiances, model=args.assi)
    timing["ASSI"] = (time.perf_counter() - tic) / args.times
    analyses["CORR"] = as_array(corr.analysis, model)
    analyses["ASSI"] = as_array(assi.analysis, model)
    diagnostics: dict[str, list] = {}
    for v in variants:
        s = chosen[v]
        bc, err, _ = fits[s.get("threshold", thresholds[0])]
        tic = time.perf_counter()
        out = [run_en4dvar(model, test, k, v, s, bc, err, spreads) for k in range(args.times)]
        timing[v] = (time.perf_counter() - tic) / args.times
        analyses[v] = np.concatenate([as_array(x, model) for x, _ in out])
        diagnostics[v] = [d for _, d in out]
        print(f"{v}: {timing[v]:.1f} s per analysis", flush=True)
    mse = score(model, test, analyses, regions, w)

    # screening skill against the truth's flag (evaluation only; never used by the analyses)
    th = best_clear["threshold"]
    tab = test.table(0, 1.0)
    for k in range(1, args.times):
        tab = xr.concat([tab, test.table(k, 1.0)], dim="obs")
    hxb = np.concatenate([
        background_radiances(test.table(k, 1.0), test.background.isel(time=[k]),
                             channels=model.channels)
        for k in range(args.times)
    ])  # fmt: skip
    flag = cloud_screen(tab.drop_vars("cloudy"), hxb, threshold=th)
    truth_cloudy = tab["cloudy"].values.astype(bool)

    table_rows, gains = [], []
    methods = list(analyses)
    for r in regions:
        for c in SHOWN:
            n = channel_name(c)
            row = {"region": r, "channel": n}
            row.update({m: float(np.sqrt(mse[f"{m}|{r}|{n}"].mean())) for m in methods})
            table_rows.append(row)
            for m in methods[1:]:
                for ref in ("CTRL", "ASSI"):
                    if m == ref:
                        continue
                    g, lo, hi = block_bootstrap_gain(mse[f"{m}|{r}|{n}"], mse[f"{ref}|{r}|{n}"])
                    gains.append({"region": r, "channel": n, "A": m, "B": ref,
                                  "gain": g, "ci95": [lo, hi]})  # fmt: skip
    results = {
        "settings": vars(args),
        "analysis_times": [str(t) for t in test.times],
        "chosen": chosen,
        "tuning_on_validation": tuning,
        "variants_scored_on_test": len(methods),
        "table": table_rows,
        "gains": gains,
        "bias_correction": fits[th][0].to_dict(),
        "clear_sky_error_before_scaling": fits[th][1],
        "clear_sky_rms_omb_uncorrected": fits[th][2],
        "screening_vs_truth_flag": {
            "threshold_K": th,
            "cloudy_detected": float(flag[truth_cloudy].mean()),
            "clear_flagged": float(flag[~truth_cloudy].mean()),
            "cloudy_looking_fraction": float(flag.mean()),
            "truth_cloudy_fraction": float(truth_cloudy.mean()),
        },
        "radiance_diagnostics": {
            v: {
                key: pd.DataFrame([d[key] for d in diagnostics[v]]).mean().round(4).to_dict()
                for key in ("rms_omb", "rms_oma")
            }
            for v in variants
            if "rms_omb" in diagnostics[v][0]
        },
        "mean_counts": {
            v: {
                key: float(np.mean([d.get(key, 0) for d in diagnostics[v]]))
                for key in (
                    "n_radiances",
                    "n_cloudy_looking",
                    "n_radiances_used",
                    "n_conventional",
                    "iterations",
                )
            }
            for v in variants
        },  # fmt: skip
        "varbc_analysed": {  # per test time, the analysed coefficients (prior: bias_correction)
            str(t): d["varbc"].to_dict() for t, d in zip(test.times, diagnostics[VARBC])
        }
        if args.varbc
        else None,
        "mse_per_time": {k: v.tolist() for k, v in mse.items()},
        "timing_s": {
            "per_analysis": timing,
            "validation_total": t_val,
            "total": time.perf_counter() - t_start,
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, json.loads(json.dumps(results, default=str)))
    md = markdown(results, methods)
    atomic_write_bytes(out.with_suffix(".md"), md.encode())
    print(md)
    print(f"wrote {out}; {results['timing_s']['total']:.0f} s")


def markdown(results: dict, methods: list[str]) -> str:
    lines = [
        "| region | channel | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for row in results["table"]:
        cells = " | ".join(f"{row[m]:.4g}" for m in methods)
        lines.append(f"| {row['region']} | {row['channel']} | {cells} |")
    lines += [
        "",
        "| region | channel | A | B | 1 − RMSE_A/RMSE_B [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for g in results["gains"]:
        lo, hi = g["ci95"]
        lines.append(
            f"| {g['region']} | {g['channel']} | {g['A']} | {g['B']} | "
            f"{100 * g['gain']:+.1f}% [{100 * lo:+.1f}, {100 * hi:+.1f}] |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
