"""FuXi-DA experiments: CTRL, CORR and ASSI analyses and forecasts on a split of the world.

For each of ``--times`` analysis times of ``--split`` (a different run from training, and
imager noise and clouds drawn with another seed), the background is a 6-hour forecast of
``fuxi-hs-t21`` from the truth (CTRL); CORR is the shipped CORR network's correction of it
and ASSI the shipped FuXi-DA analysis with the radiances of one satellite at 105° E.
Forecasts run from each analysis to ``--forecast-steps`` 6-hour steps (the earlier input is
the truth 6 hours before the analysis time, the same for the three). RMSE, bias and ACC
(against the split's own time mean as climatology) are area-weighted, inside the
satellite's disc (zenith angle ≤ 70°), outside it and globally; gains of ASSI over CORR and
over CTRL have 95% block-bootstrap confidence intervals (blocks of 4 consecutive analysis
times, 1000 resamples).

    python examples/fuxi_da_experiments.py --split test [--times 24] [--forecast-steps 12]

``--split`` is required: ``validation`` scores on the validation split, where choices between
networks are made; ``test`` only reports.

Writes ``benchmarks/results/fuxi_da.json`` (atomically) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from xfuxi.assimilation.da import assimilate_da, resolve_da_model
from xfuxi.data.channels import channel_name, stack
from xfuxi.datasets import held_suarez_split
from xfuxi.files import atomic_write_json
from xfuxi.grid import area_weights
from xfuxi.models.registry import load_model
from xfuxi.observations.imager import NominalImager, imager_observations, zenith_angle

HEADLINE = [
    ("geopotential", 500.0),
    ("temperature", 500.0),
    ("temperature", 700.0),
    ("temperature", 850.0),
    ("passive_tracer", 500.0),
    ("passive_tracer", 700.0),
    ("u_component_of_wind", 250.0),
    ("v_component_of_wind", 250.0),
]


def block_bootstrap_gain(
    mse_a: np.ndarray, mse_b: np.ndarray, *, block: int = 4, n: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Gain ``1 − RMSE_a / RMSE_b`` (RMSE over times) and its nominal 95% block-bootstrap
    interval (too narrow for a few correlated times: about 55–80 % coverage for 24 times,
    measured by ``benchmarks/bench_bootstrap_coverage.py``; docs/fuxi_da.md)."""
    rng = np.random.default_rng(seed)
    t = mse_a.size
    starts = np.arange(0, max(t - block + 1, 1))
    n_blocks = int(np.ceil(t / block))
    gains = np.empty(n)
    for i in range(n):
        pick = rng.choice(starts, size=n_blocks)
        idx = (pick[:, None] + np.arange(block)[None, :]).ravel()[:t] % t
        gains[i] = 1.0 - np.sqrt(mse_a[idx].mean() / mse_b[idx].mean())
    gain = 1.0 - np.sqrt(mse_a.mean() / mse_b.mean())
    lo, hi = np.percentile(gains, [2.5, 97.5])
    return float(gain), float(lo), float(hi)


def regions_and_weights(truth, satellites):
    """Masks inside / outside the satellites' discs and global, and the area weights (H, W)."""
    zen, _ = zenith_angle(
        truth["latitude"].values, truth["longitude"].values, satellites=satellites
    )
    w = area_weights(truth["latitude"].values).values[:, None] * np.ones(
        (1, truth.sizes["longitude"])
    )
    regions = {
        "inside": np.isfinite(zen),
        "outside": ~np.isfinite(zen),
        "global": np.ones_like(zen, bool),
    }
    return regions, w


def truth_tensor(truth, model) -> torch.Tensor:
    """The truth's states as a float32 tensor ``(T, C, H, W)`` in the model's channel order."""
    data = stack(truth, model.channels).transpose("time", "channel", "latitude", "longitude")
    return torch.as_tensor(np.asarray(data.values, dtype="float32"))


def departure_signal(model, radiances, background, truth_states) -> dict:
    """How much of the clear-sky departures O − H(x_b) is the background's error.

    Per channel, at the clear pixels of the analysis-time frame: the std of O − H(x_b), of
    O − H(x_t) (noise, bias and spectroscopy error) and of H(x_b) − H(x_t), and the
    correlation of O − H(x_b) with H(x_t) − H(x_b).
    """
    channels = [str(c) for c in radiances["sensor_channel"].values]
    op = NominalImager(model.channels, radiances["zenith_angle"].values, channels=channels)
    with torch.no_grad():
        hb = op(background.double()).numpy()
        ht = op(truth_states.double()).numpy()
    bt = radiances["brightness_temperature"].sel(frame=np.timedelta64(0, "ns"))
    o = bt.transpose("time", "sensor_channel", "latitude", "longitude").values
    clear = ~radiances["cloudy"].sel(frame=np.timedelta64(0, "ns")).values
    out = {}
    for k, c in enumerate(channels):
        ok = np.isfinite(o[:, k]) & clear & np.isfinite(hb[:, k])
        omb, omt, bmt = o[:, k][ok] - hb[:, k][ok], o[:, k][ok] - ht[:, k][ok], (hb - ht)[:, k][ok]
        out[c] = {
            "std_omb": float(omb.std()),
            "std_omt": float(omt.std()),
            "std_hb_minus_ht": float(bmt.std()),
            "corr_omb_ht_minus_hb": float(np.corrcoef(omb, -bmt)[0, 1]),
        }
    return out


def table_rows(results, model, leads, regions, chan) -> list[dict]:
    """One flat row per lead, region and channel: RMSE of CTRL, CORR, ASSI and the gains."""
    rows = []
    for step in leads:
        for r in regions:
            for c in chan:
                name = channel_name(model.channels[c])
                row = {"lead": f"{6 * step}h", "region": r, "channel": name}
                for m in ("CTRL", "CORR", "ASSI"):
                    rmse = results["scores"][f"{m}|{r}|{name}|{6 * step}h"]["rmse"]
                    row[m] = float(f"{rmse:.4g}")
                for ref in ("CORR", "CTRL"):
                    g = results["gains"][f"ASSI/{ref}|{r}|{name}|{6 * step}h"]
                    lo, hi = g["ci95"]
                    row[f"ASSI vs {ref} [95% CI]"] = (
                        f"{100 * g['gain']:+.1f}% [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                    )
                rows.append(row)
    return rows


def ctrl_backgrounds(model, truth, data, idx):
    """CTRL: the model's 6-hour forecasts from the truth, valid at the times ``idx``.

    Returns the tensor ``(T, C, H, W)`` and the Dataset (the truth's layout).
    """
    with torch.no_grad():
        bg = model(torch.stack([data[idx - 2], data[idx - 1]], 1))
    background = truth.isel(time=idx).copy(deep=True)
    for k, (v, lv) in enumerate(model.channels):
        sel = {"level": lv} if lv is not None else {}
        background[v].loc[sel] = bg[:, k].numpy()
    return bg, background


def single_observation_test(background, radiances, *, model_name, channel="wv6.9"):
    """+1 K in one water-vapour channel at one clear and one cloudy pixel near the disc centre.

    The increment's change in the pixel's column (tracer and temperature by level) is compared
    in sign with the nominal operator's autodiff Jacobian there.
    """
    from xfuxi.models.fuxi_da import load_da_model
    from xfuxi.observations.imager import NominalImager

    net = load_da_model(model_name)
    one_b = background.isel(time=[0])
    t0 = one_b["time"].values[0]
    rad = radiances.sel(time=[t0])
    zen = rad["zenith_angle"].values
    cloudy = rad["cloudy"].sel(frame=np.timedelta64(0, "ns")).values[0]
    base = assimilate_da(one_b, rad, model=net).increment
    out = {}
    order = np.argsort(np.nan_to_num(zen, nan=999.0), axis=None)
    for sky in ("clear", "cloudy"):
        flat = [
            k
            for k in order
            if (cloudy.ravel()[k] == (sky == "cloudy")) and np.isfinite(zen.ravel()[k])
        ][0]
        i, j = np.unravel_index(flat, zen.shape)
        bt = rad["brightness_temperature"].copy()
        bt.loc[dict(sensor_channel=channel)] = bt.sel(sensor_channel=channel).where(
            ~((bt["latitude"] == bt["latitude"][i]) & (bt["longitude"] == bt["longitude"][j])),
            bt.sel(sensor_channel=channel) + 1.0,
        )
        inc = assimilate_da(one_b, rad.assign(brightness_temperature=bt), model=net).increment
        x = stack(one_b.isel(time=0), net.channels).values.astype("float64")
        xt = torch.tensor(x, requires_grad=True)
        with torch.enable_grad():
            op = NominalImager(net.channels, zen, channels=[channel])
            op(xt)[0, i, j].backward()
        jac = xt.grad[:, i, j].numpy()
        rows = {}
        for var in ("passive_tracer", "temperature"):
            d = (inc[var] - base[var]).isel(time=0, latitude=i, longitude=j).values
            k = [n for n, (v, _) in enumerate(net.channels) if v == var]
            rows[var] = {
                "levels": [float(net.channels[n][1]) for n in k],
                "increment_change": d.tolist(),
                "jacobian": jac[k].tolist(),
                "sign_agreement": float(np.mean(np.sign(d) == np.sign(jac[k]))),
            }
        out[sky] = {
            "latitude": float(bt["latitude"][i]),
            "longitude": float(bt["longitude"][j]),
            "zenith": float(zen[i, j]),
            **rows,
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument("--assi", default="fuxi-da-hs-t21")
    p.add_argument("--corr", default="fuxi-da-hs-t21-corr")
    p.add_argument(
        "--split",
        required=True,
        choices=("test", "validation"),
        help="validation for choices, test only to report",
    )
    p.add_argument("--test-days", type=int, default=12, help="days of the split to read")
    p.add_argument("--times", type=int, default=24)
    p.add_argument("--forecast-steps", type=int, default=12)
    p.add_argument("--out", default="benchmarks/results/fuxi_da.json")
    p.add_argument(
        "--clear-only",
        action="store_true",
        help="give ASSI only the clear pixels (the truth's cloud flag; for the ablation)",
    )
    p.add_argument(
        "--precision",
        default="float32",
        choices=("float32", "bfloat16"),
        help="the precision of the CORR and ASSI analyses (assimilate_da's precision)",
    )
    args = p.parse_args()
    torch.set_grad_enabled(False)
    t_start = time.perf_counter()

    model = load_model(args.model)
    truth = held_suarez_split(args.split, days=args.test_days)
    truth = truth.load()
    data = truth_tensor(truth, model)
    n = data.shape[0]
    first, last = 2, n - 1 - args.forecast_steps
    if last - first + 1 < args.times:
        raise SystemExit(f"the {args.split} split has too few times for {args.times} analyses")
    idx = np.arange(first, first + args.times)
    times = truth["time"].values[idx]

    bg, background = ctrl_backgrounds(model, truth, data, idx)
    frames = resolve_da_model(args.assi).frames  # the imager's frames: the network's
    radiances = imager_observations(
        truth, satellites=[105.0], times=times, seed=12345, frames=frames
    )
    if args.clear_only:  # a network trained on clear pixels sees only clear pixels
        bt = radiances["brightness_temperature"].where(~radiances["cloudy"])
        radiances = radiances.assign(brightness_temperature=bt)
    t0 = time.perf_counter()
    corr = assimilate_da(background, model=args.corr, precision=args.precision)
    t_corr = time.perf_counter() - t0
    t0 = time.perf_counter()
    assi = assimilate_da(background, radiances, model=args.assi, precision=args.precision)
    t_assi = time.perf_counter() - t0
    states = {
        "CTRL": bg,
        "CORR": torch.as_tensor(
            stack(corr.analysis, model.channels)
            .transpose("time", "channel", "latitude", "longitude")
            .values.astype("float32")
        ),
        "ASSI": torch.as_tensor(
            stack(assi.analysis, model.channels)
            .transpose("time", "channel", "latitude", "longitude")
            .values.astype("float32")
        ),
    }

    # forecasts from each analysis (all methods batched)
    leads = list(range(0, args.forecast_steps + 1))
    traj = {m: [x] for m, x in states.items()}
    prev = torch.cat([data[idx - 1]] * 3)
    cur = torch.cat([states[m] for m in ("CTRL", "CORR", "ASSI")])
    for _ in range(args.forecast_steps):
        with torch.no_grad():
            nxt = torch.cat(
                [
                    model(torch.stack([prev[i : i + 24], cur[i : i + 24]], 1))
                    for i in range(0, cur.shape[0], 24)
                ]
            )
        prev, cur = cur, nxt
        for j, m in enumerate(("CTRL", "CORR", "ASSI")):
            traj[m].append(nxt[j * len(idx) : (j + 1) * len(idx)])

    regions, w = regions_and_weights(truth, [105.0])
    clim = data.mean(0).numpy()
    chan = [model.channels.index(c) for c in HEADLINE]
    results: dict = {
        "settings": vars(args),
        "analysis_times": [str(t) for t in times],
        "scores": {},
        "gains": {},
    }
    for step in leads:
        target = data[idx + step].numpy()
        for m in traj:
            f = traj[m][step].numpy()
            for r, mask in regions.items():
                ww = w * mask
                for c in chan:
                    err = f[:, c] - target[:, c]
                    mse_t = (err**2 * ww).sum((1, 2)) / ww.sum()
                    bias = float((err * ww).sum() / (ww.sum() * len(idx)))
                    fa, ta = f[:, c] - clim[c], target[:, c] - clim[c]
                    acc = float(
                        (fa * ta * ww).sum() / np.sqrt((fa**2 * ww).sum() * (ta**2 * ww).sum())
                    )
                    key = f"{m}|{r}|{channel_name(model.channels[c])}|{6 * step}h"
                    results["scores"][key] = {
                        "rmse": float(np.sqrt(mse_t.mean())),
                        "bias": bias,
                        "acc": acc,
                        "mse_per_time": mse_t.tolist(),
                    }
        for r in regions:
            for c in chan:
                name = channel_name(model.channels[c])
                s = results["scores"]
                a = np.array(s[f"ASSI|{r}|{name}|{6 * step}h"]["mse_per_time"])
                for ref in ("CORR", "CTRL"):
                    b = np.array(s[f"{ref}|{r}|{name}|{6 * step}h"]["mse_per_time"])
                    g, lo, hi = block_bootstrap_gain(a, b)
                    results["gains"][f"ASSI/{ref}|{r}|{name}|{6 * step}h"] = {
                        "gain": g,
                        "ci95": [lo, hi],
                    }
    results["timing_s"] = {
        "corr_analyses": t_corr,
        "assi_analyses": t_assi,
        "per_assi_analysis": t_assi / len(idx),
        "total": time.perf_counter() - t_start,
    }
    results["diagnostics_rms"] = {
        "omb": assi.diagnostics["rms_omb"].mean("time").to_pandas().round(4).to_dict(),
        "oma": assi.diagnostics["rms_oma"].mean("time").to_pandas().round(4).to_dict(),
    }
    # ablation at analysis time: one water-vapour channel missing at inference
    missing = assimilate_da(
        background, radiances.drop_sel(sensor_channel=["wv6.9"]), model=args.assi,
        allow_missing_channels=True, precision=args.precision,
    ).analysis  # fmt: skip
    xm = stack(missing, model.channels).transpose("time", "channel", "latitude", "longitude")
    xm = xm.values.astype("float32")
    target = data[idx].numpy()
    results["missing_wv6.9"] = {}
    for r, mask in regions.items():
        ww = w * mask
        for c in chan:
            name = channel_name(model.channels[c])
            mse_m = (((xm[:, c] - target[:, c]) ** 2) * ww).sum((1, 2)) / ww.sum()
            s = results["scores"]
            a = np.array(s[f"ASSI|{r}|{name}|0h"]["mse_per_time"])
            b = np.array(s[f"CORR|{r}|{name}|0h"]["mse_per_time"])
            full_gain = 1 - np.sqrt(a.mean() / b.mean())
            miss_gain = 1 - np.sqrt(mse_m.mean() / b.mean())
            results["missing_wv6.9"][f"{r}|{name}"] = {
                "gain_full": float(full_gain),
                "gain_missing": float(miss_gain),
                "kept": float(miss_gain / full_gain) if full_gain != 0 else None,
            }
    results["departure_signal"] = departure_signal(model, radiances, bg, data[idx])
    results["single_observation"] = single_observation_test(
        background, radiances, model_name=args.assi
    )
    results["rows"] = table_rows(results, model, leads, regions, chan)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, json.loads(json.dumps(results, default=str)))
    print(
        f"{'lead':>5} {'region':>8} {'channel':>26} {'CTRL':>9} {'CORR':>9} {'ASSI':>9} "
        f"{'ASSI/CORR gain [95% CI]':>28}"
    )
    for step in sorted({0, 4, 8, 12} & set(leads)):
        for r in regions:
            for c in chan:
                name = channel_name(model.channels[c])
                s = results["scores"]
                rm = [s[f"{m}|{r}|{name}|{6 * step}h"]["rmse"] for m in ("CTRL", "CORR", "ASSI")]
                g = results["gains"][f"ASSI/CORR|{r}|{name}|{6 * step}h"]
                lo, hi = g["ci95"]
                print(
                    f"{6 * step:>4}h {r:>8} {name:>26} {rm[0]:9.4g} {rm[1]:9.4g} {rm[2]:9.4g} "
                    f"{100 * g['gain']:8.2f}% [{100 * lo:6.2f}, {100 * hi:6.2f}]"
                )
    for sky, r in results["single_observation"].items():
        print(
            f"single observation (+1 K wv6.9, {sky} pixel at {r['latitude']:.1f}N "
            f"{r['longitude']:.1f}E): sign agreement with the Jacobian: tracer "
            f"{r['passive_tracer']['sign_agreement']:.2f}, temperature "
            f"{r['temperature']['sign_agreement']:.2f}"
        )
    print(f"wrote {args.out}; ASSI analysis {t_assi / len(idx) * 1e3:.0f} ms per time")


if __name__ == "__main__":
    main()
