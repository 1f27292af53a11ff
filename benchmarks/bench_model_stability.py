"""Is the forecast model fit for cycling? Stability and perturbation growth from analysis states.

Two measurements of the model the cycling uses (default ``fuxi-hs-t21``), on ``--split``
(required: validation for choices, test only to report; every recorded run is on test):

1. **Perturbed truth.** At ``--starts`` initial times, ``--members`` balanced perturbations
   of analysis-error size (``scale`` × the difference of two other world states, added to
   the world's own model state 6 h before the initial time; the world runs those 6 h, so
   the model gets a consistent perturbed input pair: :func:`xfuxi.world.perturbed.
   world_perturbed_runs`). From each, a ``--days``-day forecast: its RMSE against the truth
   by lead, against the free run's saturation (√2 × the climatological standard deviation:
   the error of a forecast that has lost all skill). And the **perturbation growth**: the
   RMS difference between the perturbed and the unperturbed forecast after 6–24 h, over the
   same for the world re-run from the same perturbed state (target 0.7–1.3 at 24 h).
2. **Cycled analyses** (``--stores PREFIX``, the per-method stores of
   ``examples/cycling_world.py --store PREFIX``): from the analysis pair of one cycle a day
   (from day 2), a ``--days``-day forecast; its RMSE against the truth over that of the
   forecast from the truth pair at the same time (target at 72 h: ≤ 1.25), and whether it
   stays within the saturation error.

Prints the tables and writes ``benchmarks/results/model_stability.json``::

    python benchmarks/bench_model_stability.py --split test            # about 3 minutes
    python benchmarks/bench_model_stability.py --split test --stores /tmp/cyc30/run \\
        --methods letkf,cycled
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

import xfuxi
from xfuxi.data.channels import channel_name, stack
from xfuxi.files import atomic_write_json
from xfuxi.models.rollout import advance_pair, model_dtype
from xfuxi.world.perturbed import world_perturbed_runs

RESULTS = Path(__file__).resolve().parent / "results"
SHOW = [
    "geopotential@500",
    "temperature@850",
    "u_component_of_wind@250",
    "passive_tracer@500",
    "surface_pressure",
]


def _pairs(ds: xr.Dataset, model, dim: str) -> torch.Tensor:
    """Channels of ``ds`` stacked to ``(..., C, H, W)`` float64, ``dim`` kept in front."""
    arr = stack(ds, model.channels)
    order = [d for d in arr.dims if d not in ("channel", "latitude", "longitude")]
    arr = arr.transpose(*order, "channel", "latitude", "longitude")
    return torch.as_tensor(np.asarray(arr.values, dtype="float64"))


def rollout(
    model, pairs: torch.Tensor, steps: int, batch: int = 16, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``(B, 2, C, H, W)`` input pairs → ``(B, steps, C, H, W)`` forecasts (6-hourly).

    ``bias`` ``(B, C, H, W)``: added to every step (a cycle's online bias estimate,
    :class:`xfuxi.assimilation.model_bias.BiasCorrectedMethod`)."""
    outs = []
    with torch.no_grad():
        for i in range(0, pairs.shape[0], batch):
            x = pairs[i : i + batch].to(model_dtype(model))
            seq = []
            for _ in range(steps):
                y = model(x)
                if bias is not None:
                    y = y + bias[i : i + batch].to(y.dtype)
                seq.append(y.double())
                x = advance_pair(x, y)
            outs.append(torch.stack(seq, 1))
    return torch.cat(outs)


def _days(days: int) -> list[int]:
    return sorted({d for d in (1, 3, 5, 10) if d <= days} | {days})


def area_rms(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Area-weighted RMS over the last two dims (latitude, longitude)."""
    return (x.pow(2) * w[:, None]).mean((-2, -1)).sqrt()


def perturbed_truth(model, truth, names, w, sat, *, split, starts, members, scale, days, seed):
    steps = days * 4
    init = truth["time"].values[4 : len(truth["time"]) - steps : max(1, 20)][:starts]
    growth_m, growth_w, err_p, err_c = [], [], [], []
    for k, t0 in enumerate(init):
        runs = world_perturbed_runs(
            split, t0, n_members=members, scale=scale, steps=4, seed=seed + k, progress=False
        )
        pert = _pairs(runs[list(truth.data_vars)], model, "member")  # (M, 6, C, H, W)
        world = _pairs(
            runs[[f"{v}_unperturbed" for v in truth.data_vars]].rename(
                {f"{v}_unperturbed": v for v in truth.data_vars}
            ),
            model,
            "prediction_timedelta",
        )  # (6, C, H, W): the world itself, -6 h .. +24 h
        fc = rollout(model, torch.cat([pert[:, :2], world[None, :2]]), steps)
        fc_p, fc_c = fc[:-1], fc[-1]
        growth_m.append(area_rms(fc_p[:, :4] - fc_c[None, :4], w))  # (M, 4, C): 6..24 h
        growth_w.append(area_rms(pert[:, 2:] - world[None, 2:], w))
        idx = np.searchsorted(truth["time"].values, t0)
        tr = _pairs(truth.isel(time=slice(idx + 1, idx + 1 + steps)), model, "time")
        err_p.append(area_rms(fc_p - tr[None], w))  # (M, steps, C)
        err_c.append(area_rms(fc_c - tr, w)[None])
    gm, gw = torch.cat(growth_m), torch.cat(growth_w)
    ratio = (gm.pow(2).mean(0).sqrt() / gw.pow(2).mean(0).sqrt()).numpy()  # (4, C)
    ep = torch.cat(err_p).pow(2).mean(0).sqrt().numpy()  # (steps, C)
    ec = torch.cat(err_c).pow(2).mean(0).sqrt().numpy()
    worst = torch.cat(err_p).amax(0).numpy()  # the worst member at each lead
    init_size = gw[:, 0].pow(2).mean(0).sqrt().numpy()  # the world's perturbation at +6 h
    out = {
        "initial_times": [str(t)[:16] for t in init],
        "members": members,
        "scale": scale,
        "channels": {},
    }
    for c, name in enumerate(names):
        out["channels"][name] = {
            "perturbation_rms_6h_world": float(init_size[c]),
            "growth_ratio_model_over_world": {
                f"{6 * (i + 1)}h": float(ratio[i, c]) for i in range(4)
            },
            "world_growth_24h_over_6h": float(
                gw[:, 3, c].pow(2).mean().sqrt() / gw[:, 0, c].pow(2).mean().sqrt()
            ),
            "rmse_perturbed": {f"{d}d": float(ep[4 * d - 1, c]) for d in _days(days)},
            "rmse_from_truth": {f"{d}d": float(ec[4 * d - 1, c]) for d in _days(days)},
            "max_over_leads_worst_member_over_saturation": float(worst[:, c].max() / sat[c]),
            "saturation": float(sat[c]),
            "finite": bool(np.isfinite(worst[:, c]).all()),
        }
    return out


def cycled_analyses(model, truth, names, w, sat, *, prefix, methods, days) -> dict:
    from xfuxi.assimilation.cycle import _complete_cycles  # noqa: PLC2701  (store layout)

    steps = days * 4
    out = {}
    for key in methods:
        store = Path(f"{prefix}-{key}.zarr")
        if not store.exists():
            print(f"no store {store}; skipped")
            continue
        done = _complete_cycles(store)
        pairs, times, biases = [], [], []
        for c in done[8::4]:  # one a day from day 2
            g = xr.open_zarr(store / "cycles" / f"{c:06d}.zarr")
            t = g["time"].values[0]
            idx = int(np.searchsorted(truth["time"].values, t))
            if idx + steps >= truth.sizes["time"]:
                break
            pairs.append(torch.as_tensor(np.asarray(g["state__pair"].values, dtype="float64")))
            times.append(idx)
            if "state__model_bias" in g:  # the run's bias estimate after this analysis
                biases.append(torch.as_tensor(np.asarray(g["state__model_bias"].values, "float64")))
        if not pairs:
            continue
        truth_pairs = torch.stack(
            [_pairs(truth.isel(time=[i - 1, i]), model, "time") for i in times]
        )
        ft = rollout(model, truth_pairs, steps)
        tr = torch.stack(
            [_pairs(truth.isel(time=slice(i + 1, i + 1 + steps)), model, "time") for i in times]
        )
        et = area_rms(ft - tr, w).pow(2).mean(0).sqrt().numpy()
        # from the analyses with the plain model; and, for a run that estimated the model's
        # bias, with that estimate added to every step (the model the cycle ran)
        variants = {key: None}
        if biases:
            variants[f"{key} (bias-corrected forecasts)"] = torch.stack(biases)
        for label, bias in variants.items():
            fa = rollout(model, torch.stack(pairs), steps, bias=bias)
            ea = area_rms(fa - tr, w).pow(2).mean(0).sqrt().numpy()  # (steps, C)
            worst = area_rms(fa - tr, w).amax(0).numpy()
            row = {"n_forecasts": len(times), "first": str(truth["time"].values[times[0]])[:16],
                   "channels": {}}  # fmt: skip
            for c, name in enumerate(names):
                row["channels"][name] = {
                    "rmse_from_analyses": {f"{d}d": float(ea[4 * d - 1, c]) for d in _days(days)},
                    "rmse_from_truth": {f"{d}d": float(et[4 * d - 1, c]) for d in _days(days)},
                    "ratio_72h": float(ea[11, c] / et[11, c]),
                    "max_over_leads_worst_over_saturation": float(worst[:, c].max() / sat[c]),
                }
            out[label] = row
    return out


def summary_rows(out: dict) -> list[dict]:
    """One flat record per channel (for the docs' tables)."""
    rows = []
    for name, r in out["perturbed_truth"]["channels"].items():
        days = max(int(k[:-1]) for k in r["rmse_perturbed"])
        row = {
            "channel": name,
            "growth 6 h (model/world)": r["growth_ratio_model_over_world"]["6h"],
            "growth 24 h (model/world)": r["growth_ratio_model_over_world"]["24h"],
            "worst member / saturation": r["max_over_leads_worst_member_over_saturation"],
            f"mean error {days} d / saturation": r["rmse_perturbed"][f"{days}d"] / r["saturation"],
            "RMSE 3 d from truth": r["rmse_from_truth"].get("3d", float("nan")),
        }
        for key, run in out.get("cycled_analyses", {}).items():
            row[f"{key}: 72-h RMSE / from truth"] = run["channels"][name]["ratio_72h"]
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument(
        "--truncation",
        type=int,
        default=None,
        help="spectral truncation of every step's output (21: the world's T21)",
    )
    p.add_argument(
        "--split",
        required=True,
        choices=("validation", "test"),
        help="validation for choices, test only to report",
    )
    p.add_argument("--starts", type=int, default=4)
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--scale", type=float, default=0.2)
    p.add_argument("--days", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stores", default=None, help="prefix of cycling stores (cycled analyses)")
    p.add_argument("--methods", default="letkf,cycled,perlin,3dvar")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS / "model_stability.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    xfuxi.set_options(progress=False)
    tic = time.perf_counter()
    model = xfuxi.load_model(a.model)
    if a.truncation is not None:
        from xfuxi.models.spectral import with_spectral_filter

        model = with_spectral_filter(model, a.truncation)
    truth = xfuxi.held_suarez_split(a.split, days=a.days + 40).load()
    names = [channel_name(c) for c in model.channels]
    lat = np.deg2rad(truth["latitude"].values)
    w = torch.as_tensor(np.cos(lat) / np.cos(lat).mean())
    allt = _pairs(truth, model, "time")
    sat = (np.sqrt(2.0) * area_rms(allt - allt.mean(0), w).pow(2).mean(0).sqrt()).numpy()
    out = {"model": model.name, "split": a.split, "days": a.days}
    out["perturbed_truth"] = perturbed_truth(
        model, truth, names, w, sat,
        split=a.split, starts=a.starts, members=a.members, scale=a.scale, days=a.days, seed=a.seed,
    )  # fmt: skip
    if a.stores:
        out["cycled_analyses"] = cycled_analyses(
            model, truth, names, w, sat, prefix=a.stores, methods=a.methods.split(","),
            days=a.days,
        )  # fmt: skip
    out["wall_time_s"] = time.perf_counter() - tic
    out["table"] = summary_rows(out)
    atomic_write_json(Path(a.out), out)

    pt = out["perturbed_truth"]["channels"]
    print(f"model {model.name}, {a.split} split: perturbed truth, {a.starts} times × "
          f"{a.members} members, scale {a.scale}")  # fmt: skip
    lead = f"{min(3, a.days)}d"
    print("| channel | δ(6 h) world | growth model/world 6 h | 24 h | world growth 24h/6h "
          f"| worst RMSE / saturation ({a.days} d) | RMSE {lead} (from truth) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in SHOW:
        r = pt[name]
        g = r["growth_ratio_model_over_world"]
        print(f"| {name} | {r['perturbation_rms_6h_world']:.3g} | {g['6h']:.2f} | {g['24h']:.2f} "
              f"| {r['world_growth_24h_over_6h']:.2f} "
              f"| {r['max_over_leads_worst_member_over_saturation']:.2f} "
              f"| {r['rmse_perturbed'][lead]:.3g} "
              f"({r['rmse_from_truth'][lead]:.3g}) |")  # fmt: skip
    ratios = [pt[n]["growth_ratio_model_over_world"]["24h"] for n in names]
    print(f"24-h growth ratio over all {len(names)} channels: min {min(ratios):.2f}, "
          f"max {max(ratios):.2f}; in 0.7–1.3: {sum(0.7 <= r <= 1.3 for r in ratios)}")  # fmt: skip
    for key, row in out.get("cycled_analyses", {}).items():
        print(f"\nforecasts from the {key} analyses ({row['n_forecasts']}, daily from "
              f"{row['first']}): RMSE / RMSE from the truth at 72 h; "
              "worst / saturation")  # fmt: skip
        for name in SHOW:
            r = row["channels"][name]
            worst = r["max_over_leads_worst_over_saturation"]
            print(f"| {name} | {r['ratio_72h']:.2f} | {worst:.2f} |")
    print(f"\nwrote {a.out} ({out['wall_time_s']:.0f} s)")


if __name__ == "__main__":
    main()
