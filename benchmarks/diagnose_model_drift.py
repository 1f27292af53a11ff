"""Why the world's cycles grow over weeks: the forecast model's climate drift, measured (issue 22).

Two measurements, written to one JSON file of flat rows for the documentation:

1. **Free runs** (``rows_free``): 30-day forecasts of the cycling model (``fuxi-hs-t21`` with
   the T21 filter) from the truth at ``--starts`` times of ``--split``; for days 0–10 and
   20–30, the variance of the forecast's anomaly from the train split's time mean (the
   climatology) against the truth's, in three bands of total wavenumber (``l ≤ 5``, 6–10,
   11–21; :class:`xfuxi.models.spectral.SpectralFilter`), and the forecast error against
   the saturation error (the RMS difference of two random states of the split, √2 × the
   climatological standard deviation).
2. **Damping the output** (``rows_damping``): the same free runs with every step's output
   damped — a hyperdiffusion ``exp(−r (l(l+1) / (T(T+1)))²)`` of the spherical harmonics
   (``T`` = 21), or a relaxation towards the climatology with an e-folding time of τ days —
   against none: the 72-hour error from the truth and the anomaly variance of days 20–30
   relative to the truth's (all bands);
3. **A cycle's analyses** (``rows_store``, with ``--store``): over the last third of a
   cycling store of ``examples/cycling_world.py``, the analysis error's RMS, the RMS of its
   time mean (the part that does not change from cycle to cycle), its zonal mean, the
   time-mean analysis increment, and the analysis anomaly's variance against the truth's by
   band.

    python benchmarks/diagnose_model_drift.py --split validation
    python benchmarks/diagnose_model_drift.py --split test --no-damping \\
        --store /tmp/cyc30h/run-hgain.zarr --out benchmarks/results/model_drift_hgain_test.json

(the second reads a test run. The rule is that such a diagnosis chooses nothing, but this
one did set the direction of the work on the forecast model that followed: docs/cycling.md,
"Why the cycles still grow", and its Test-split record). Prints the rows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import xfuxi
from xfuxi.assimilation.cycle import open_cycle
from xfuxi.data.channels import channel_name, stack
from xfuxi.files import atomic_write_json
from xfuxi.grid import area_weights
from xfuxi.models.rollout import rollout
from xfuxi.models.spectral import SpectralFilter

RESULTS = Path(__file__).resolve().parent / "results"
CHANNELS = [
    "geopotential@500",
    "temperature@850",
    "u_component_of_wind@250",
    "passive_tracer@500",
    "surface_pressure",
]
BANDS = [(0, 5), (6, 10), (11, 21)]


def _array(ds, model) -> np.ndarray:
    arr = stack(ds, model.channels).transpose("time", "channel", "latitude", "longitude")
    return np.asarray(arr.values, dtype="float64")


class _Bands:
    """Split fields (..., H, W) into bands of total wavenumber; area-weighted variances."""

    def __init__(self, model, w: np.ndarray) -> None:
        self.filters = {hi: SpectralFilter(model.latitude, model.longitude, hi) for _, hi in BANDS}
        self.w = w

    def variances(self, x: np.ndarray) -> dict[str, float]:
        t = torch.as_tensor(x)
        out, below = {}, torch.zeros_like(t)
        for lo, hi in BANDS:
            upto = self.filters[hi](t)
            band = (upto - below).numpy()
            out[f"l {lo}-{hi}"] = float((band**2 * self.w[:, None]).mean(axis=(-2, -1)).mean())
            below = upto
        return out


def _ms(x: np.ndarray, w: np.ndarray) -> float:
    return float((x**2 * w[:, None]).mean(axis=(-2, -1)).mean())


class _Damped(torch.nn.Module):
    """``model`` with every step's output damped (hyperdiffusion and/or relaxation)."""

    def __init__(self, model, clim: np.ndarray, *, r: float = 0.0, tau_days: float = 0.0):
        super().__init__()
        self.model, self.tau = model, float(tau_days)
        t = 21
        ls = np.arange(t + 1)
        damp = np.exp(-float(r) * (ls * (ls + 1) / (t * (t + 1))) ** 2)
        self.hyper = (
            SpectralFilter(model.latitude, model.longitude, t, weights=damp) if r > 0 else None
        )
        self.clim = torch.as_tensor(clim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        if self.hyper is not None:
            y = self.hyper(y)
        if self.tau > 0:
            f = np.exp(-self.model.timestep_hours / 24.0 / self.tau)
            y = (self.clim + (y - self.clim) * f).to(y.dtype)
        return y


DAMPING = [("none", 0.0, 0.0), ("hyperdiffusion r=0.1", 0.1, 0.0),
           ("hyperdiffusion r=0.3", 0.3, 0.0), ("hyperdiffusion r=1", 1.0, 0.0),
           ("relaxation 20 d", 0.0, 20.0), ("relaxation 10 d", 0.0, 10.0)]  # fmt: skip


def _starts(truth: np.ndarray, starts: int, steps: int) -> np.ndarray:
    return np.linspace(8, truth.shape[0] - steps - 2, starts).round().astype(int)


def damping_rows(model, truth: np.ndarray, starts: int, w, bands, clim) -> list[dict]:
    names = [channel_name(c) for c in model.channels]
    rows = []
    for label, r, tau in DAMPING:
        damped = _Damped(model, clim, r=r, tau_days=tau)
        err72 = {ch: [] for ch in CHANNELS}
        ratio = {ch: [] for ch in CHANNELS}
        for s in _starts(truth, starts, 120):
            fc = rollout(damped, truth[s - 1 : s + 1], 120)
            tr = truth[s + 1 : s + 121]
            for ch in CHANNELS:
                k = names.index(ch)
                err72[ch].append(np.sqrt(_ms(fc[11, k] - tr[11, k], w)))
                fv = sum(bands.variances(fc[80:, k] - clim[k]).values())
                ratio[ch].append(fv / sum(bands.variances(tr[80:, k] - clim[k]).values()))
        row = {"output damping": label}
        for ch in CHANNELS:
            row[f"{ch} 72-h error"] = float(np.mean(err72[ch]))
        for ch in CHANNELS:
            row[f"{ch} variance days 20-30 / truth"] = float(np.mean(ratio[ch]))
        rows.append(row)
    return rows


def free_runs(model, truth: np.ndarray, starts: int, w, bands, clim) -> list[dict]:
    steps = 120
    first = _starts(truth, starts, steps)
    names = [channel_name(c) for c in model.channels]
    sat = {ch: np.sqrt(2.0 * _ms(truth[:, names.index(ch)] - clim[names.index(ch)], w))
           for ch in CHANNELS}  # fmt: skip
    acc: dict = {}
    for s in first:
        fc = rollout(model, truth[s - 1 : s + 1], steps)
        tr = truth[s + 1 : s + 1 + steps]
        for ch in CHANNELS:
            k = names.index(ch)
            for label, sl in (("days 0-10", slice(0, 40)), ("days 20-30", slice(80, 120))):
                fv = bands.variances(fc[sl, k] - clim[k])
                tv = bands.variances(tr[sl, k] - clim[k])
                row = acc.setdefault((ch, label), {"ratio": [], "err": []})
                row["ratio"].append([fv[b] / tv[b] for b in fv])
                row["err"].append(np.sqrt(_ms(fc[sl, k] - tr[sl, k], w)))
    rows = []
    for (ch, label), v in acc.items():
        r = np.mean(v["ratio"], axis=0)
        row = {"channel": ch, "period": label}
        for (lo, hi), x in zip(BANDS, r, strict=True):
            row[f"forecast/truth anomaly var l {lo}-{hi}"] = float(x)
        row["forecast error / saturation"] = float(np.mean(v["err"]) / sat[ch])
        rows.append(row)
    return rows


def store_rows(store: str, model, split: str, w, bands, clim) -> list[dict]:
    ds = open_cycle(store)
    times = ds["time"].values
    n = len(times)
    last = slice(2 * n // 3, n)
    truth = _array(xfuxi.held_suarez_split(split, days=40).sel(time=list(times)), model)
    names = [channel_name(c) for c in model.channels]
    stored = [str(c) for c in ds["channel"].values]
    ana = np.asarray(ds["analysis_state"].values, dtype="float64")
    bg = np.asarray(ds["background_state"].values, dtype="float64")
    rows = []
    for ch in CHANNELS:
        k, j = names.index(ch), stored.index(ch)
        err = ana[last, j] - truth[last, k]
        inc = ana[last, j] - bg[last, j]
        row = {
            "channel": ch,
            "analysis error": np.sqrt(_ms(err, w)),
            "its time mean": np.sqrt(_ms(err.mean(0), w)),
            "its zonal mean": np.sqrt(_ms(err.mean(-1, keepdims=True), w)),
            "increment": np.sqrt(_ms(inc, w)),
            "time-mean increment": np.sqrt(_ms(inc.mean(0), w)),
        }
        av = bands.variances(ana[last, j] - clim[k])
        tv = bands.variances(truth[last, k] - clim[k])
        ev = bands.variances(err)
        for lo, hi in BANDS:
            b = f"l {lo}-{hi}"
            row[f"analysis/truth anomaly var {b}"] = av[b] / tv[b]
            row[f"error var / truth anomaly var {b}"] = ev[b] / tv[b]
        rows.append({k2: (float(v) if not isinstance(v, str) else v) for k2, v in row.items()})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", default="validation", choices=("validation", "test"))
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument("--truncation", type=int, default=21)
    p.add_argument("--starts", type=int, default=4, help="free runs (30 days each)")
    p.add_argument("--store", default=None, help="a cycling store of the same split")
    p.add_argument(
        "--damping",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the output dampings (free runs)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "model_drift_validation.json"))
    a = p.parse_args()
    if a.starts < 1:
        raise SystemExit("--starts must be at least 1")
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model = xfuxi.load_model(a.model)
    if a.truncation > 0:
        model = xfuxi.with_spectral_filter(model, a.truncation)
    w = np.asarray(area_weights(model.latitude), dtype="float64")
    bands = _Bands(model, w)
    clim = _array(xfuxi.held_suarez_split("train"), model).mean(0)
    truth = _array(xfuxi.held_suarez_split(a.split, days=40 + 10 * a.starts), model)
    out: dict = {
        "settings": {k: v for k, v in vars(a).items() if k != "out"},
        "model": model.name,
        "rows_free": free_runs(model, truth, a.starts, w, bands, clim),
    }
    if a.damping:
        out["rows_damping"] = damping_rows(model, truth, a.starts, w, bands, clim)
    if a.store:
        out["rows_store"] = store_rows(a.store, model, a.split, w, bands, clim)
    out["wall_time_s"] = time.perf_counter() - t0
    atomic_write_json(a.out, out)
    for key in ("rows_free", "rows_damping", "rows_store"):
        for row in out.get(key, []):
            print(key, json.dumps({k: (round(v, 3) if isinstance(v, float) else v)
                                   for k, v in row.items()}))  # fmt: skip
    print(f"wrote {a.out} ({out['wall_time_s']:.0f} s)")


if __name__ == "__main__":
    main()
