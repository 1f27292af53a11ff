"""Choose a forecast model that does not drift, on the validation split (issue 22, item 0).

For each candidate model (``--models LABEL=MODEL ...``: a shipped name or a checkpoint
directory), on ``--split``:

* **drift**: ``--starts`` free runs of 30 days from the truth; over days 20–30 the variance
  of the forecast's anomaly from the train split's time mean against the truth's (all
  total wavenumbers ``l ≤ 21``, and ``l`` 11–21 alone, where the shipped model drifts
  most), and the forecast error against the saturation error (√2 × the climatological
  standard deviation; a model that keeps the climate stays at or below 1);
* **skill**: ``--skill-starts`` forecasts of 5 days from the truth, the area-weighted RMSE
  at 24 and 72 hours.

One row per model (the channels of ``diagnose_model_drift.CHANNELS``), printed and written
to ``--out`` (default ``benchmarks/results/drift_model_<split>.json``, named by ``--split``:
a model is chosen on validation; ``--split test`` only reports); the docs include the file
(docs/cycling.md, A forecast model that does not drift). A checkpoint that already carries
the T21 filter is given with ``--truncation 0`` or, per model, as ``LABEL=MODEL@0``.

    python benchmarks/tune_drift_model.py --models shipped=fuxi-hs-t21@21 \\
        w0.3=runs/drift/w0.3@0 w1.0=runs/drift/w1.0@0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from diagnose_model_drift import CHANNELS, _array, _Bands, _ms, _starts

import xfuxi
from xfuxi.data.channels import channel_name
from xfuxi.files import atomic_write_json
from xfuxi.grid import area_weights
from xfuxi.models.rollout import rollout

RESULTS = Path(__file__).resolve().parent / "results"


def _model(spec: str, truncation: int):
    path, _, trunc = spec.partition("@")
    model = xfuxi.load_model(path)
    t = int(trunc) if trunc else truncation
    return xfuxi.with_spectral_filter(model, t) if t > 0 else model


def score(model, truth: np.ndarray, starts: int, skill_starts: int, clim, w, bands) -> dict:
    names = [channel_name(c) for c in model.channels]
    ks = [names.index(ch) for ch in CHANNELS]
    sat = {ch: np.sqrt(2.0 * _ms(truth[:, k] - clim[k], w)) for ch, k in zip(CHANNELS, ks)}
    var_all = {ch: [] for ch in CHANNELS}
    var_hi = {ch: [] for ch in CHANNELS}
    err = {ch: [] for ch in CHANNELS}
    for s in _starts(truth, starts, 120):
        fc = rollout(model, truth[s - 1 : s + 1], 120)
        tr = truth[s + 1 : s + 121]
        for ch, k in zip(CHANNELS, ks):
            fv, tv = bands.variances(fc[80:, k] - clim[k]), bands.variances(tr[80:, k] - clim[k])
            var_all[ch].append(sum(fv.values()) / sum(tv.values()))
            var_hi[ch].append(fv["l 11-21"] / tv["l 11-21"])
            err[ch].append(np.sqrt(_ms(fc[80:, k] - tr[80:, k], w)) / sat[ch])
    e24 = {ch: [] for ch in CHANNELS}
    e72 = {ch: [] for ch in CHANNELS}
    for s in _starts(truth, skill_starts, 20):
        fc = rollout(model, truth[s - 1 : s + 1], 12)
        for ch, k in zip(CHANNELS, ks):
            e24[ch].append(_ms(fc[3, k] - truth[s + 4, k], w))
            e72[ch].append(_ms(fc[11, k] - truth[s + 12, k], w))
    row: dict = {}
    for ch in CHANNELS:
        row[f"{ch} 24-h RMSE"] = float(np.sqrt(np.mean(e24[ch])))
        row[f"{ch} 72-h RMSE"] = float(np.sqrt(np.mean(e72[ch])))
        row[f"{ch} var days 20-30 / truth"] = float(np.mean(var_all[ch]))
        row[f"{ch} var l 11-21 days 20-30 / truth"] = float(np.mean(var_hi[ch]))
        row[f"{ch} error days 20-30 / saturation"] = float(np.mean(err[ch]))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--split",
        default="validation",
        choices=("validation", "test"),
        help="validation for choices, test only to report",
    )
    p.add_argument("--models", nargs="+", required=True, help="LABEL=MODEL[@TRUNCATION]")
    p.add_argument("--truncation", type=int, default=21, help="default filter (0: none)")
    p.add_argument("--starts", type=int, default=4, help="30-day free runs")
    p.add_argument("--skill-starts", type=int, default=32, help="3-day forecasts")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--out", default=None, help="default: benchmarks/results/drift_model_<split>.json"
    )
    a = p.parse_args()
    if a.out is None:  # named by the split, so that a test run never reads as a validation file
        a.out = str(RESULTS / f"drift_model_{a.split}.json")
    if a.starts < 1 or a.skill_starts < 1:
        raise SystemExit("--starts and --skill-starts must be at least 1")
    specs = []
    for item in a.models:
        label, sep, spec = item.partition("=")
        if not sep or not label or not spec:
            raise SystemExit(f"--models takes LABEL=MODEL[@TRUNCATION]; got {item!r}")
        specs.append((label, spec))
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    base = xfuxi.load_model("fuxi-hs-t21")
    w = np.asarray(area_weights(base.latitude), dtype="float64")
    bands = _Bands(base, w)
    clim = _array(xfuxi.held_suarez_split("train"), base).mean(0)
    truth = _array(xfuxi.held_suarez_split(a.split, days=40 + 10 * a.starts), base)
    rows = []
    for label, spec in specs:
        model = _model(spec, a.truncation)
        row = {"model": label, "checkpoint": spec}
        row.update(score(model, truth, a.starts, a.skill_starts, clim, w, bands))
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}))
    out = {
        "settings": {k: v for k, v in vars(a).items() if k != "out"},
        "rows": rows,
        "wall_time_s": time.perf_counter() - t0,
    }
    atomic_write_json(a.out, out)
    print(f"wrote {a.out} ({out['wall_time_s']:.0f} s)")


if __name__ == "__main__":
    main()
