"""Why the world's LETKF cycle does not hold: the diagnosis, measured (issue 22).

Reads a LETKF store of ``examples/cycling_world.py`` (validation split by default: the
diagnosis guides choices, so it is made on validation, never on test) and measures

1. **spread against error by scale**: the analysis error of the ensemble mean and the
   members' spread, as variance in three bands of total wavenumber (``l ≤ 5``, 6–10,
   11–21; :class:`xfuxi.models.spectral.SpectralFilter`), early and late in the run;
2. **error and spread by distance to the nearest radiosonde site**, over the last third;
3. **one analysis redone** (the background members of a late cycle, run forward from the
   stored analysis members, and that cycle's observations): the innovation statistics in
   observation space — the innovations' RMS, the ensemble's spread at the observations and
   the true background error there, all in units of σo — the Desroziers et al. (2005)
   estimates of R and H B Hᵀ (relative to σo²), the share of the innovations and of the true
   background error that the local ensemble spans (least squares on the members' values at
   the observations within 1000 km of a site), and the analysis error by distance to the
   nearest site for prior inflations ρ = 1, 4, 16.

    python examples/cycling_world.py --split validation --days 10 --methods letkf \\
        --threads 1 --store runs/cycling/val10-base
    python benchmarks/diagnose_cycling.py --store runs/cycling/val10-base-letkf.zarr

Writes ``benchmarks/results/cycling_diagnosis_validation.json`` and prints it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import xarray as xr

import xfuxi
from xfuxi.assimilation.config import LocalizationOptions
from xfuxi.assimilation.cycle import LETKFMethod, RadiosondeNetwork, open_cycle, static_var
from xfuxi.assimilation.inputs import states_tensor
from xfuxi.assimilation.letkf import LETKFOptions, forecast_members, letkf_analysis
from xfuxi.data.channels import channel_name, stack
from xfuxi.files import atomic_write_json
from xfuxi.grid import area_weights, great_circle_distance
from xfuxi.models.spectral import SpectralFilter

RESULTS = Path(__file__).resolve().parent / "results"
CHANNELS = ["geopotential@500", "temperature@850", "u_component_of_wind@250"]
BANDS = [(0, 5), (6, 10), (11, 21)]
DISTANCES = [(0, 300), (300, 600), (600, 900), (900, 1300), (1300, 5000)]


def _truth(model, split: str, times) -> np.ndarray:
    """The true states at ``times`` (the first 40 days of the split hold every run here)."""
    ds = xfuxi.held_suarez_split(split, days=40).sel(time=list(times))
    arr = stack(ds, model.channels).transpose("time", "channel", "latitude", "longitude")
    return np.asarray(arr.values, dtype="float64")


def _site_distance(model, network: RadiosondeNetwork) -> np.ndarray:
    """Distance (km) of every grid point to the nearest site of ``network``."""
    slat, slon = np.asarray(network.sites()).T
    lat, lon = np.meshgrid(model.latitude, model.longitude, indexing="ij")
    d = great_circle_distance(lat[..., None], lon[..., None], slat, slon) / 1e3
    return d.min(-1)


def _by_distance(field: np.ndarray, dist: np.ndarray, wt: np.ndarray) -> dict[str, float]:
    """Area-weighted RMS of ``field`` (..., H, W) in each band of distance to a site."""
    out = {}
    for lo, hi in DISTANCES:
        sel = (dist >= lo) & (dist < hi)
        ms = (field[..., sel] ** 2 * wt[sel]).sum(-1) / wt[sel].sum()
        out[f"{lo}-{hi} km"] = float(np.sqrt(np.mean(ms)))
    return out


def _rms(field: np.ndarray, w: np.ndarray) -> float:
    return float(np.sqrt((field**2 * w[:, None]).mean()))


def _weighted_ms(x: np.ndarray, w: np.ndarray) -> float:
    """Area-weighted mean square over the last two axes, averaged over the others."""
    return float((x**2 * w[:, None]).mean(axis=(-2, -1)).mean())


def _flat_rows(out: dict) -> dict[str, list[dict]]:
    """The measurements as flat rows, one table each (for the documentation)."""
    scale = []
    for when, block in out["by_scale"].items():
        for ch, bands in block["channels"].items():
            row = {"when": when, "channel": ch}
            for band, v in bands.items():
                row[f"error var {band}"] = v["error_var"]
                row[f"spread var {band}"] = v["spread_var"]
            scale.append(row)
    dist = []
    fractions = out["by_distance_last_third"]["area_fraction"]
    for band, frac in fractions.items():
        row = {"distance to nearest site": band, "area fraction": frac}
        for ch in CHANNELS:
            v = out["by_distance_last_third"][ch]
            row[f"{ch} error"] = v["error"][band]
            row[f"{ch} spread"] = v["spread"][band]
        dist.append(row)
    one = out["one_analysis"]
    infl = [{"analysis": "background", **{
        f"z500 {band}": v for band, v in one["background_error_by_distance_z500"].items()
    }, **{f"{ch} (global)": v for ch, v in one["background_error"].items()}}]  # fmt: skip
    for label, v in one["inflation"].items():
        infl.append({
            "analysis": label, "O-A rms / σo": v.get("oma_rms_sigma_o", float("nan")),
            "Desroziers R / σo²": v.get("desroziers_r", float("nan")),
            "Desroziers HBHᵀ / σo²": v.get("desroziers_hbh", float("nan")),
            **{f"z500 {band}": e for band, e in v["analysis_error_by_distance_z500"].items()},
            **{f"{ch} (global)": e for ch, e in v["analysis_error"].items()},
        })  # fmt: skip
    return {"rows_scale": scale, "rows_distance": dist, "rows_inflation": infl}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default="runs/cycling/val10-base-letkf.zarr")
    p.add_argument("--split", default="validation")
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument("--truncation", type=int, default=21)
    p.add_argument(
        "--cycle", type=int, default=-8, help="the cycle redone (negative: from the end)"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "cycling_diagnosis_validation.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = xfuxi.load_model(a.model)
    if a.truncation > 0:
        model = xfuxi.with_spectral_filter(model, a.truncation)
    names = [channel_name(c) for c in model.channels]
    ks = [names.index(c) for c in CHANNELS]
    w = np.asarray(area_weights(model.latitude), dtype="float64")
    settings = json.loads((Path(a.store) / "run.json").read_text())
    net = settings["network"]
    scores = open_cycle(a.store)
    times = scores["time"].values
    n = len(times)
    truth = _truth(model, a.split, times)
    filters = {hi: SpectralFilter(model.latitude, model.longitude, hi) for _, hi in BANDS}
    out: dict = {"store": str(a.store), "split": a.split, "cycles": n, "model": model.name}

    # 1. spread against error by scale, early and late
    by_scale = {}
    for label, c in (("early (cycle 8)", min(8, n - 1)), ("late (last cycle)", n - 1)):
        with xr.open_zarr(Path(a.store) / "cycles" / f"{c:06d}.zarr") as ds:
            mem = np.asarray(ds["state__members"].values[:, 1], dtype="float64")
        err = mem.mean(0) - truth[c]
        anom = mem - mem.mean(0)
        rows = {}
        for ch, k in zip(CHANNELS, ks, strict=True):
            e, s = torch.as_tensor(err[k]), torch.as_tensor(anom[:, k])
            cum_e = [_weighted_ms(filters[hi](e).numpy(), w) for _, hi in BANDS]
            cum_s = [_weighted_ms(filters[hi](s).numpy(), w) for _, hi in BANDS]
            band_e = np.diff([0.0, *cum_e])
            band_s = np.diff([0.0, *cum_s]) * mem.shape[0] / (mem.shape[0] - 1)
            rows[ch] = {
                f"l {lo}-{hi}": {"error_var": float(be), "spread_var": float(bs)}
                for (lo, hi), be, bs in zip(BANDS, band_e, band_s, strict=True)
            }
        by_scale[label] = {"cycle": int(c), "channels": rows}
    out["by_scale"] = by_scale

    # 2. error and spread by distance to the nearest site, last third
    network = RadiosondeNetwork(
        n_sites=int(net["n_sites"]), error_fraction=float(net["error_fraction"]),
        seed=int(net["seed"]),
    )  # fmt: skip
    dist = _site_distance(model, network)
    late = slice(int(2 * n / 3), n)
    an = scores["analysis_state"].values[late]
    sp = scores["spread_state"].values[late]
    err = an - truth[late]
    wt = np.cos(np.deg2rad(np.asarray(model.latitude)))[:, None] * np.ones_like(dist)
    by_dist: dict = {
        "area_fraction": {
            f"{lo}-{hi} km": float(wt[(dist >= lo) & (dist < hi)].sum() / wt.sum())
            for lo, hi in DISTANCES
        }
    }
    for ch, k in zip(CHANNELS, ks, strict=True):
        by_dist[ch] = {
            "error": _by_distance(err[:, k], dist, wt),
            "spread": _by_distance(sp[:, k], dist, wt),
        }
    out["by_distance_last_third"] = by_dist

    # 3. one analysis redone
    c = a.cycle % n
    with xr.open_zarr(Path(a.store) / "cycles" / f"{c:06d}.zarr") as ds:
        members = torch.as_tensor(np.asarray(ds["state__members"].values, dtype="float64"))
    bg = forecast_members(model, members, chunk=50)[0]
    t = times[c] + (times[1] - times[0])
    truth_ds = xfuxi.held_suarez_split(a.split, days=40).load()
    slots, _, _ = LETKFMethod().observe(network, truth_ds, [t], cycle=c + 1, model=model)
    slot = slots[0]
    tr = torch.as_tensor(_truth(model, a.split, [t])[0])
    hx = slot.operator(bg[:, 1])
    sig = slot.error.double()
    d = (slot.value - hx.mean(0)) / sig
    spread_obs = hx.std(0) / sig
    true_err = (slot.operator(tr[None])[0] - hx.mean(0)) / sig
    # the local span: observations within 1000 km of a site, their members' values
    wts = slot.operator.weights()
    flat = np.asarray(wts.index)[:, 0] % (tr.shape[-2] * tr.shape[-1])
    olat = np.asarray(model.latitude)[flat // tr.shape[-1]]
    olon = np.asarray(model.longitude)[flat % tr.shape[-1]]
    yb = (hx - hx.mean(0)) / sig
    rng = np.random.default_rng(0)
    span_d, span_t, counts = [], [], []
    for j in rng.choice(len(olat), 40, replace=False):
        near = np.nonzero(great_circle_distance(olat[j], olon[j], olat, olon) < 1.0e6)[0]
        y = yb[:, near].T
        counts.append(len(near))
        for vec, acc in ((d[near], span_d), (true_err[near], span_t)):
            coef = torch.linalg.lstsq(y, vec[:, None]).solution
            acc.append(1 - float((vec[:, None] - y @ coef).pow(2).sum() / vec.pow(2).sum()))
    single = {
        "cycle": int(c + 1),
        "n_obs": int(d.numel()),
        "innovation_rms_sigma_o": float(d.pow(2).mean().sqrt()),
        "ensemble_spread_at_obs_rms_sigma_o": float(spread_obs.pow(2).mean().sqrt()),
        "true_background_error_at_obs_rms_sigma_o": float(true_err.pow(2).mean().sqrt()),
        "local_obs_median": int(np.median(counts)),
        "local_span_share_of_innovations": float(np.median(span_d)),
        "local_span_share_of_true_error": float(np.median(span_t)),
        "random_vector_share": float((members.shape[0] - 1) / np.median(counts)),
        "inflation": {},
    }
    horizontal = float(settings["method"]["localization"]["length_scale"])
    loc = LocalizationOptions(length_scale=horizontal, vertical_length_scale=1.0)
    bg_err = (bg[:, 1].mean(0) - tr).numpy()
    single["background_error_by_distance_z500"] = _by_distance(bg_err[ks[0]], dist, wt)
    for rho in (1.0, 4.0, 16.0):
        opts = LETKFOptions(n_members=members.shape[0], rtps=0.8, qc_threshold=None, inflation=rho)
        res = letkf_analysis(
            bg, slots, localization=loc, latitude=model.latitude, longitude=model.longitude,
            channels=model.channels, options=opts, inflation=rho, model=model,
        )  # fmt: skip
        oma = (slot.value - slot.operator(res.members[:, 1]).mean(0)) / sig
        omb = d
        a_err = (res.mean - tr).numpy()
        single["inflation"][f"LETKF, ρ = {rho:g}"] = {
            "oma_rms_sigma_o": float(oma.pow(2).mean().sqrt()),
            "desroziers_r": float((oma * omb).mean()),
            "desroziers_hbh": float(((omb - oma) * omb).mean()),
            "analysis_error_by_distance_z500": _by_distance(a_err[ks[0]], dist, wt),
            "analysis_error": {ch: _rms(a_err[k], w) for ch, k in zip(CHANNELS, ks, strict=True)},
        }
    # a static B (48-hour forecast errors of the train split, Gaspari–Cohn 2000 km): 3D-Var
    # from the background, and hybrid gain (3D-Var of the LETKF mean, blended with it)
    errors = xfuxi.forecast_error_samples(
        xfuxi.held_suarez_split("train", days=200), model=model, lead_steps=8, n_samples=100
    )
    var = static_var(
        states_tensor(errors, model, dim="sample", name="samples"),
        localization=LocalizationOptions(length_scale=2000.0),
    )
    gen = torch.Generator().manual_seed(0)
    opts = LETKFOptions(n_members=members.shape[0], rtps=0.8, qc_threshold=5.0)
    res = letkf_analysis(
        bg, slots, localization=loc, latitude=model.latitude, longitude=model.longitude,
        channels=model.channels, options=opts, inflation=1.0, model=model,
    )  # fmt: skip
    pair = res.members.mean(0)
    prev = bg[:, 0].mean(0)
    from_bg = var.analyse(
        {"background": torch.stack([prev, *bg.mean(0)])}, slots, model=model, generator=gen
    ).analysis
    of_mean = var.analyse(
        {"background": torch.stack([prev, pair[0], pair[1]])}, slots, model=model, generator=gen
    ).analysis
    static_rows = {
        "3D-Var from the background (static B)": from_bg,
        "hybrid gain 0.5": pair[1] + 0.5 * (of_mean - pair[1]),
        "hybrid gain 1": of_mean,
    }
    for label, state in static_rows.items():
        a_err = (state - tr).numpy()
        single["inflation"][label] = {
            "analysis_error_by_distance_z500": _by_distance(a_err[ks[0]], dist, wt),
            "analysis_error": {ch: _rms(a_err[k], w) for ch, k in zip(CHANNELS, ks, strict=True)},
        }
    single["background_error"] = {
        ch: float(np.sqrt((bg_err[k] ** 2 * w[:, None]).mean()))
        for ch, k in zip(CHANNELS, ks, strict=True)
    }
    out["one_analysis"] = single
    out.update(_flat_rows(out))
    atomic_write_json(Path(a.out), out)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
