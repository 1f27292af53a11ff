"""Where a cycle's analysis error grows: the world, the sites, the scales (issue 22).

Reads one store of ``examples/cycling_world.py`` (any method) and compares the first
period of the steadiness target (days 2–10) with the last third of the run:

1. **the world itself**: the RMSE of the model's 6- and 24-hour forecasts started from the
   truth at the cycle times, and the truth's anomaly (from its own mean over the run) — if
   the world became harder to predict, part of the growth would be the world's;
2. **at the sites and away from them**: the RMS of O−B in units of σo (the store's
   ``omb_rms``), and the analysis error near the sites (< 300 km) and far from them
   (≥ 900 km);
3. **by scale**: the analysis error and the analysis increment in bands of total wavenumber
   (``l ≤ 5``, 6–10, 11–21), as RMS;
4. **what the smallest scales of the increments do**: the analyses with their increment
   truncated to ``l ≤ L`` (``x_b + P_L(x_a − x_b)``, after the fact), over the analyses;
5. **how the model carries an increment**: the store's increments ``δ = x_a − x_b`` (one a
   day from day 2) added to the true pair at t0 alone, as the variational methods hand
   their analyses to the model, or to both input times; the RMS of the forecast's departure
   from the forecast of the true pair at 6, 12 and 24 hours, over the RMS of ``δ``.

    python examples/cycling_world.py --split validation --days 20 --methods hgain \\
        --threads 1 --members 80 --rtps 0.7 --store PREFIX
    python benchmarks/diagnose_cycle_growth.py --store PREFIX-hgain.zarr --split validation

Writes ``benchmarks/results/cycle_growth_<split>.json`` (``--out``) and prints its tables.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import xfuxi
from xfuxi.assimilation.cycle import RadiosondeNetwork, open_cycle
from xfuxi.data.channels import stack
from xfuxi.files import atomic_write_json
from xfuxi.grid import area_weights, great_circle_distance
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
TRUNCATIONS = [10, 15, 18]


def _periods(times: pd.DatetimeIndex, days: float) -> dict[str, np.ndarray]:
    age = np.asarray((times - times[0]) / pd.Timedelta("1D"))
    return {"days 2-10": (age >= 2) & (age <= 10), "last third": age >= (2.0 / 3.0) * days}


def _rms_rows(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Area-weighted RMS over (H, W) of ``x`` (time, channel, H, W): (time, channel)."""
    return np.sqrt((x**2 * w[:, None]).mean(axis=(-2, -1)) / w.mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="a store of examples/cycling_world.py")
    p.add_argument("--split", default="validation", choices=["train", "validation", "test"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    xfuxi.set_options(progress=False)

    s = open_cycle(a.store)
    settings = json.loads(s.attrs["settings"])
    model = xfuxi.load_model(settings["model"])
    times = pd.DatetimeIndex(s["time"].values)
    days = len(times) / 4.0
    periods = _periods(times, days)
    empty = [name for name, sel in periods.items() if not sel.any()]
    if empty:  # every figure of that period would be NaN
        raise SystemExit(
            f"{a.store} holds {len(times)} cycles ({days:g} days): no cycle falls in "
            f"{', '.join(empty)}; the comparison needs a run of more than 2 days (days 2-10 "
            "against the last third)"
        )
    names = [str(c) for c in s["channel"].values]
    idx = [names.index(c) for c in CHANNELS]
    truth_ds = xfuxi.held_suarez_split(a.split, days=int(np.ceil(days)) + 6).load()
    if truth_ds["time"].values[0] > times[0] or truth_ds["time"].values[-1] < times[-1]:
        raise SystemExit(f"{a.store} is not a run on the {a.split} split")
    truth = stack(truth_ds.sel(time=times), model.channels)
    truth = np.asarray(truth.transpose("time", "channel", "latitude", "longitude").values, "f8")
    ana = np.asarray(s["analysis_state"].values, "f8")
    bkg = np.asarray(s["background_state"].values, "f8")
    w = area_weights(model.latitude)
    w = np.asarray(w, "f8") / float(np.mean(w))

    # 1. the world: forecasts from the truth at the cycle times, the truth's anomaly
    fc = xfuxi.forecast(truth_ds, model=model, steps=4, init_times=list(times), batch_size=16)
    world: dict[str, dict] = {}
    for lead in (1, 4):
        valid = times + pd.Timedelta(hours=6 * lead)
        f = fc.isel(prediction_timedelta=lead - 1).assign_coords(time=valid)
        f = stack(f, model.channels).transpose("time", "channel", "latitude", "longitude")
        t = stack(truth_ds.sel(time=valid), model.channels)
        t = t.transpose("time", "channel", "latitude", "longitude")
        world[f"{6 * lead}-h forecast from the truth"] = _rms_rows(
            np.asarray(f.values, "f8") - np.asarray(t.values, "f8"), w
        )
    world["truth anomaly"] = _rms_rows(truth - truth.mean(0), w)

    # 2. near and far from the sites
    net = settings["network"]
    if net.get("network") != "radiosonde":
        raise SystemExit(f"{a.store} is not a radiosonde run")
    sites = RadiosondeNetwork(n_sites=net["n_sites"], seed=net["seed"]).sites()
    slat, slon = np.asarray(sites).T
    lat, lon = np.meshgrid(model.latitude, model.longitude, indexing="ij")
    dist = great_circle_distance(lat[..., None], lon[..., None], slat, slon).min(-1) / 1e3
    ww = np.broadcast_to(w[:, None], dist.shape)

    def region_rms(x: np.ndarray, sel: np.ndarray) -> np.ndarray:
        return np.sqrt((x[..., sel] ** 2 * ww[sel]).sum(-1) / ww[sel].sum())

    near, far = dist < 300, dist >= 900

    # 3. by scale
    filters = {top: SpectralFilter(model.latitude, model.longitude, top) for _, top in BANDS}

    def bands(x: np.ndarray) -> dict[str, np.ndarray]:
        out, below = {}, np.zeros_like(x)
        for lo, top in BANDS:
            upto = filters[top](torch.as_tensor(x)).numpy()
            out[f"l {lo}-{top}"] = _rms_rows(upto - below, w)
            below = upto
        return out

    err_bands, inc_bands = bands(ana - truth), bands(ana - bkg)
    # 4. the increments truncated after the fact
    trunc = {}
    for top in TRUNCATIONS:
        f = SpectralFilter(model.latitude, model.longitude, top)
        a_l = bkg + f(torch.as_tensor(ana - bkg)).numpy()
        trunc[f"increment l <= {top}"] = _rms_rows(a_l - truth, w)

    a_err, b_err = _rms_rows(ana - truth, w), _rms_rows(bkg - truth, w)
    rows = []
    for pname, sel in periods.items():
        for k, ch in zip(idx, CHANNELS, strict=True):
            row = {"period": pname, "channel": ch}
            row["analysis error"] = float(a_err[sel, k].mean())
            row["background error"] = float(b_err[sel, k].mean())
            row["gain %"] = 100.0 * (1.0 - row["analysis error"] / row["background error"])
            for label, v in world.items():
                row[label] = float(v[sel, k].mean())
            row["error near sites"] = float(region_rms(ana - truth, near)[sel, k].mean())
            row["error far from sites"] = float(region_rms(ana - truth, far)[sel, k].mean())
            for label, v in err_bands.items():
                row[f"error {label}"] = float(v[sel, k].mean())
            for label, v in inc_bands.items():
                row[f"increment {label}"] = float(v[sel, k].mean())
            rows.append(row)
    ratios = []
    first, last = (r for r in periods)
    for ch in CHANNELS:
        r0 = next(r for r in rows if r["period"] == first and r["channel"] == ch)
        r1 = next(r for r in rows if r["period"] == last and r["channel"] == ch)
        ratios.append({"channel": ch, **{
            key: r1[key] / r0[key] for key in r0 if key not in ("period", "channel", "gain %")
        }})  # fmt: skip
    after2 = np.asarray((times - times[0]) / pd.Timedelta("1D")) >= 2
    truncation_rows = []
    for k, ch in zip(idx, CHANNELS, strict=True):
        row = {"channel": ch, "analysis": float(a_err[after2, k].mean())}
        for label, v in trunc.items():
            row[f"{label} / analysis"] = float(v[after2, k].mean()) / row["analysis"]
        truncation_rows.append(row)
    # 5. an increment at t0 alone or on both input times, carried by the model
    from xfuxi.assimilation.letkf import forecast_members

    pick = np.flatnonzero(after2)[::4]
    previous = stack(truth_ds.sel(time=times[pick] - pd.Timedelta("6h")), model.channels)
    previous = np.asarray(
        previous.transpose("time", "channel", "latitude", "longitude").values, "f8"
    )
    delta = ana[pick] - bkg[pick]
    pairs = {
        "true pair": np.stack([previous, truth[pick]], 1),
        "t0 alone": np.stack([previous, truth[pick] + delta], 1),
        "both times": np.stack([previous + delta, truth[pick] + delta], 1),
    }
    runs = {k: forecast_members(model, torch.as_tensor(v), steps=4) for k, v in pairs.items()}
    size = _rms_rows(delta, w)
    carried = []
    for label in ("t0 alone", "both times"):
        for lead in (1, 2, 4):
            dev = (runs[label][lead - 1][:, 1] - runs["true pair"][lead - 1][:, 1]).numpy()
            ratio = (_rms_rows(dev, w) / size).mean(0)
            carried.append({"increment on": label, "lead h": 6 * lead, **{
                ch: float(ratio[k]) for k, ch in zip(idx, CHANNELS, strict=True)
            }})  # fmt: skip
    omb = np.asarray(s["omb_rms"].values, "f8")
    out = {
        "store": str(a.store),
        "split": a.split,
        "method": s.attrs.get("method", ""),
        "model": settings["model"],
        "n_cycles": len(times),
        "area_fraction_near_sites": float(ww[near].sum() / ww.sum()),
        "area_fraction_far_from_sites": float(ww[far].sum() / ww.sum()),
        "omb_rms_sigma_o": {p: float(omb[sel].mean()) for p, sel in periods.items()},
        "rows": rows,
        "rows_ratio": ratios,
        "rows_truncated_increments": truncation_rows,
        "n_increments_carried": len(pick),
        "rows_increment_carried": carried,
    }
    path = Path(a.out) if a.out else RESULTS / f"cycle_growth_{a.split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, out)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(f"O-B rms (σo): {out['omb_rms_sigma_o']}")
        print(pd.DataFrame(ratios).set_index("channel").round(3).T)
        print(pd.DataFrame(truncation_rows).set_index("channel").round(4))
        print(pd.DataFrame(carried).round(3))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
