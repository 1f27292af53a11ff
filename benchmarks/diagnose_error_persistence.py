"""Does a cycle's analysis error move with the flow? And how the model carries a perturbation
of its two input times (issue 22).

Reads one store of ``examples/cycling_world.py`` (any method) and measures, from day 2:

1. **persistence**: the area-weighted pattern correlation (uncentred) of the analysis error
   ``x_a − x_t`` with itself 1, 4, 8 and 20 cycles later, beside the same for the truth's
   anomaly (from its mean over the same cycles): an error that the flow carries decorrelates
   about as fast as the weather does; and the share of the error's RMS that its mean over
   each block of 20 cycles (5 days) explains;
2. **the model from the cycle's pairs**: from the analysed input pair of one cycle a day
   (the store's ``state__pair``, what the next background was forecast from), the
   departure of a 5-day forecast from the forecast from the true pair, correlated with the
   analysis error at t0 (persistence) and its RMS over that error's, at 24, 48 and 120 h;
3. **a perturbation of the input pair, four ways**: balanced perturbations from the world
   (:func:`xfuxi.world.perturbed.world_perturbed_runs`, ``--starts`` × ``--members``, scale
   0.2, the store's split) put into the true pair as the world has them (*consistent*: its
   own perturbation at t0 − 6 h and at t0), the t0 perturbation on *both* times (as a
   cycle's consecutive analyses share their error), at *t0 alone*, and at t0 with a copy
   *moved upstream* at t0 − 6 h (each field shifted by 6 hours of the t0 wind at its level,
   850 hPa for surface pressure, bilinear, periodic in longitude). For each, the model's
   departure from its forecast from the true pair against the world's own departure at
   6, 24 and 48 h: correlation, RMS of the difference over the world's, size over the
   world's, and persistence (correlation with the t0 perturbation), beside the world's.

    python examples/cycling_world.py --split test --days 30 --methods hgain --threads 1 \\
        --members 160 --rtps 0.7 --store PREFIX
    python benchmarks/diagnose_error_persistence.py --store PREFIX-hgain.zarr --split test

Writes ``benchmarks/results/error_persistence_<split>.json`` (``--out``) and prints its
tables.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from bench_model_stability import rollout  # batched, as that benchmark runs its forecasts
from diagnose_model_drift import CHANNELS  # the five channels of the cycling targets
from scipy.ndimage import map_coordinates

import xfuxi
from xfuxi.assimilation.cycle import _complete_cycles, open_cycle  # noqa: PLC2701  (store layout)
from xfuxi.data.channels import channel_name, stack
from xfuxi.files import atomic_write_json
from xfuxi.grid import area_weights
from xfuxi.world.perturbed import world_perturbed_runs

RESULTS = Path(__file__).resolve().parent / "results"
LAGS = [1, 4, 8, 20]  # cycles
LEADS = [4, 8, 20]  # 6-hour steps: 24, 48, 120 h (part 2)
PAIR_LEADS = [1, 4, 8]  # 6, 24, 48 h (part 3)
EARTH_RADIUS = 6.371e6


def _array(ds: xr.Dataset, model, *dims: str) -> np.ndarray:
    """``ds``'s model channels as ``(*dims, C, H, W)`` float64."""
    arr = stack(ds, model.channels)
    return np.asarray(arr.transpose(*dims, "channel", "latitude", "longitude").values, "f8")


def _rollout(model, pairs: np.ndarray, steps: int) -> np.ndarray:
    """``(B, 2, C, H, W)`` pairs → ``(B, steps, C, H, W)`` 6-hourly forecasts."""
    return rollout(model, torch.as_tensor(pairs), steps).numpy()


class _Weighted:
    """Area-weighted RMS and uncentred pattern correlation over (latitude, longitude)."""

    def __init__(self, latitude) -> None:
        w = np.asarray(area_weights(latitude), "f8")
        self.w = (w / w.mean())[:, None]

    def rms(self, a: np.ndarray) -> float:
        return float(np.sqrt((a * a * self.w).mean()))

    def corr(self, a: np.ndarray, b: np.ndarray) -> float:
        den = np.sqrt((a * a * self.w).sum() * (b * b * self.w).sum())
        return float((a * b * self.w).sum() / den) if den > 0 else float("nan")


def upstream(delta: np.ndarray, state: np.ndarray, model, hours: float = 6.0) -> np.ndarray:
    """``delta`` ``(C, H, W)`` at t0 moved back ``hours`` along the wind of ``state``: at
    each point the value ``hours`` downstream, ``δ(x + u Δt)``."""
    names = [channel_name(c) for c in model.channels]
    lat = np.asarray(model.latitude, "f8")
    lon = np.asarray(model.longitude, "f8")
    dt = hours * 3600.0
    dlat, dlon = np.deg2rad(lat[1] - lat[0]), np.deg2rad(lon[1] - lon[0])
    coslat = np.maximum(np.cos(np.deg2rad(lat)), 0.05)[:, None]
    out = np.empty_like(delta)
    for c, (_, level) in enumerate(model.channels):
        lev = 850 if level is None else int(level)
        u = state[names.index(f"u_component_of_wind@{lev}")]
        v = state[names.index(f"v_component_of_wind@{lev}")]
        rows = np.arange(len(lat))[:, None] + v * dt / EARTH_RADIUS / dlat
        cols = np.arange(len(lon))[None, :] + u * dt / (EARTH_RADIUS * coslat) / dlon
        rows = np.clip(rows, 0, len(lat) - 1)
        out[c] = map_coordinates(delta[c], [rows, cols], order=1, mode="grid-wrap")
    return out


def persistence(s, truth, idx, wt, after) -> dict[str, dict[str, float]]:
    """Part 1: lag correlations of the analysis error and of the truth's anomaly."""
    ana = np.asarray(s["analysis_state"].values, "f8")[after]
    tr = truth[after]
    err, anom = ana - tr, tr - tr.mean(0)
    out = {}
    for name, c in idx.items():
        row = {}
        for lag in LAGS:
            n = len(err) - lag
            row[f"error lag {lag}"] = float(
                np.mean([wt.corr(err[t, c], err[t + lag, c]) for t in range(n)])
            )
            row[f"truth anomaly lag {lag}"] = float(
                np.mean([wt.corr(anom[t, c], anom[t + lag, c]) for t in range(n)])
            )
        blocks = [err[b : b + 20, c] for b in range(0, len(err) - 19, 20)]
        total = np.mean([np.mean([wt.rms(x) for x in blk]) for blk in blocks])
        mean = np.mean([wt.rms(blk.mean(0)) for blk in blocks])
        row["5-day mean share"] = float(mean / total)
        out[name] = row
    return out


def from_cycle_pairs(store, model, truth_ds, truth_times, idx, wt) -> dict:
    """Part 2: the model's departure from its forecast from the truth, from the cycle's pairs."""
    steps = max(LEADS)
    done = _complete_cycles(Path(store))
    pairs, tpairs, errs = [], [], []
    for c in done[8::4]:
        g = xr.open_zarr(Path(store) / "cycles" / f"{c:06d}.zarr")
        t = pd.Timestamp(g["time"].values[0])
        i = truth_times.get_loc(t)
        if i + steps >= len(truth_times):
            break
        tp = _array(truth_ds.isel(time=[i - 1, i]), model, "time")
        pairs.append(np.asarray(g["state__pair"].values, "f8"))
        tpairs.append(tp)
        errs.append(pairs[-1][1] - tp[1])
    if not pairs:
        raise SystemExit(
            f"{store}: part 2 needs a complete cycle from the ninth on, with the truth "
            f"{steps} steps after it; the store has {len(done)} cycle(s)"
        )
    fa = _rollout(model, np.stack(pairs), steps)
    ft = _rollout(model, np.stack(tpairs), steps)
    out = {"n_forecasts": len(pairs), "channels": {}}
    for name, c in idx.items():
        row = {}
        for lead in LEADS:
            dep = fa[:, lead - 1, c] - ft[:, lead - 1, c]
            row[f"persistence {6 * lead} h"] = float(
                np.mean([wt.corr(e[c], d) for e, d in zip(errs, dep, strict=True)])
            )
            row[f"size {6 * lead} h"] = float(
                np.mean([wt.rms(d) / wt.rms(e[c]) for e, d in zip(errs, dep, strict=True)])
            )
        out["channels"][name] = row
    return out


def pair_variants(split, truth_ds, model, idx, wt, *, starts, members) -> dict:
    """Part 3: world perturbations put into the input pair four ways, against the world."""
    steps = max(PAIR_LEADS)
    names = list(truth_ds.data_vars)
    times = truth_ds["time"].values[8 : 8 + 20 * starts : 20]
    kinds = ["consistent", "both times", "t0 alone", "moved upstream"]
    acc: dict = {}
    for k, t0 in enumerate(times):
        runs = world_perturbed_runs(
            split, t0, n_members=members, scale=0.2, steps=steps, seed=k, progress=False
        )
        pert = _array(runs[names], model, "member", "prediction_timedelta")
        plain = runs[[f"{v}_unperturbed" for v in names]]
        world = _array(plain.rename({f"{v}_unperturbed": v for v in names}), model,
                       "prediction_timedelta")  # fmt: skip
        d0 = pert[:, 1] - world[None, 1]  # the perturbation at t0
        moved = np.stack([upstream(d, world[1], model) for d in d0])
        inputs = {
            "consistent": pert[:, :2],
            "both times": np.stack([world[0] + d0, world[1] + d0], 1),
            "t0 alone": np.stack([np.broadcast_to(world[0], d0.shape), world[1] + d0], 1),
            "moved upstream": np.stack([world[0] + moved, world[1] + d0], 1),
        }
        fc = _rollout(model, np.concatenate([*inputs.values(), world[None, :2]]), steps)
        control = fc[-1]
        dw = pert[:, 2:] - world[None, 2:]  # the world's departure at +6 h ...
        for j, kind in enumerate(kinds):
            dm = fc[j * members : (j + 1) * members] - control[None]
            for name, c in idx.items():
                for lead in PAIR_LEADS:
                    r = acc.setdefault((kind, name, lead), {})
                    for m in range(members):
                        a, b = dm[m, lead - 1, c], dw[m, lead - 1, c]
                        for key, v in (
                            ("correlation with the world", wt.corr(a, b)),
                            ("difference / world", wt.rms(a - b) / wt.rms(b)),
                            ("size / world", wt.rms(a) / wt.rms(b)),
                            ("persistence", wt.corr(d0[m, c], a)),
                            ("world persistence", wt.corr(d0[m, c], b)),
                        ):
                            r.setdefault(key, []).append(v)
    rows = []
    for (kind, name, lead), r in acc.items():
        rows.append({"pair": kind, "channel": name, "lead": f"{6 * lead} h",
                     **{key: float(np.mean(v)) for key, v in r.items()}})  # fmt: skip
    return {"initial_times": [str(t)[:16] for t in times], "members": members, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="a store of examples/cycling_world.py")
    p.add_argument("--split", default="validation", choices=["train", "validation", "test"])
    p.add_argument("--starts", type=int, default=4, help="initial times of part 3")
    p.add_argument("--members", type=int, default=4, help="perturbations per time (part 3)")
    p.add_argument("--model", default=None, help="the forecast model (default: the store's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    xfuxi.set_options(progress=False)

    s = open_cycle(a.store)
    model_name = a.model or json.loads(s.attrs["settings"])["model"]
    model = xfuxi.load_model(model_name)
    times = pd.DatetimeIndex(s["time"].values)
    truth_ds = xfuxi.held_suarez_split(a.split, days=int(np.ceil(len(times) / 4)) + 8).load()
    truth_times = pd.DatetimeIndex(truth_ds["time"].values)
    if truth_times[0] > times[0] or truth_times[-1] < times[-1]:
        raise SystemExit(f"{a.store} is not a run on the {a.split} split")
    names = [channel_name(c) for c in model.channels]
    idx = {c: names.index(c) for c in CHANNELS}
    wt = _Weighted(model.latitude)
    truth = _array(truth_ds.sel(time=times), model, "time")
    after = np.asarray((times - times[0]) / pd.Timedelta("1D")) >= 2

    out = {
        "store": str(a.store),
        "split": a.split,
        "model": model_name,
        "cycles_after_day_2": int(after.sum()),
        "persistence": persistence(s, truth, idx, wt, after),
        "from_cycle_pairs": from_cycle_pairs(a.store, model, truth_ds, truth_times, idx, wt),
        "pair_variants": pair_variants(
            a.split, truth_ds, model, idx, wt, starts=a.starts, members=a.members
        ),
    }
    out["rows_persistence"] = [
        {"channel": name, **{k: round(v, 3) for k, v in row.items()}}
        for name, row in out["persistence"].items()
    ]
    out["rows_from_cycle_pairs"] = [
        {"channel": name, **{k: round(v, 3) for k, v in row.items()}}
        for name, row in out["from_cycle_pairs"]["channels"].items()
    ]
    out["rows_pair_variants_24h"] = [
        {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
        for r in out["pair_variants"]["rows"]
        if r["lead"] == "24 h"
    ]
    path = Path(a.out) if a.out else RESULTS / f"error_persistence_{a.split}.json"
    atomic_write_json(path, out)
    for key in ("rows_persistence", "rows_from_cycle_pairs", "rows_pair_variants_24h"):
        print(f"\n{key}")
        print(pd.DataFrame(out[key]).to_string(index=False))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
