"""What the imager's radiances can tell a linear analysis: the gains FuXi-DA could reach.

FuXi-DA misses several of its targets against CORR inside the disc (temperature at 500 and
700 hPa, the tracer at 700 hPa, z500 and the 250 hPa winds; docs/fuxi_da.md). Is the
information not in the radiances, or does the network not find it? This script answers
with the best *linear* estimate of the CORR analysis's error from the same radiances,
fitted by ridge regression on the train split and scored on the validation split, beside
the networks on the same times.

For each analysis time, the background is the 6-hour forecast of ``--model`` from the truth
and CORR's correction of it the estimate's background ``x_c``. Its error ``x_t − x_c``
(21 channels, each over its std) is regressed, at every grid point inside the 105° E disc,
on the departures ``O − H(x_c)`` (nominal operator) of the 8 channels in the 3 frames at
that point and its ``--neighbourhood`` × ``--neighbourhood`` neighbours (missing pixels 0,
with a 0/1 indicator per pixel and frame), the analysis-time departures times
``sec θ − 1`` (a zenith-dependent bias) and a constant; one regression per latitude band
(``--bands``), the ridge parameter of each output channel chosen on the last fifth of the
fit times (then refitted on all). Variants, by which pixels the estimate sees:

* ``linear screened``: cloudy pixels removed by the screened network's own test
  (``ir10.8`` departure below −4 K: missing in every channel of that frame);
* ``linear clear (truth flag)``: only the pixels the truth knows to be clear;
* ``linear all-sky``: every pixel the satellite sees;
* ``linear screened frame mean``: the screened departures averaged over the frames that
  see each pixel (one input per channel instead of one per frame and channel);
* ``linear per-channel screened``: each channel screened on its own departure (below
  −4 K: missing in that channel only), so that channels peaking above a low cloud stay;
* ``linear screened + cloudy``: the screened departures, and beside them, as regressors
  of their own, the departures of the pixels the screening removed (with their own 0/1
  indicator): what the cloudy radiances' values (the cloud tops) add to the clear ones when
  they do not spoil them (the all-sky target's question; that a pixel inside the disc is
  missing, i.e. cloudy, the screened estimate already sees);
* ``linear screened + motion``: the screened departures and, at each pixel, what the
  radiances' motion between the first and the last frame says of the wind (a linear
  analysis of single frames cannot see it: "atmospheric motion vectors"): per channel, the
  observed change ``ΔO`` (screened; 0 where a frame misses the pixel) times the gradient of
  the channel's radiance through the nominal operator at ``x_c``, ``ΔO ∇H / (|∇H|² + ε)``
  (the wind along the gradient that would move the radiance field by ``ΔO``; ``ε`` the
  median ``|∇H|²`` of the disc), and the same projection of the background's winds at
  250 and 500 hPa, ``(v_c · ∇H) ∇H / (|∇H|² + ε)``, so that the regression can take their
  difference (the wind error);
* ``linear noise-free clear-sky``: ``H(x_t) − H(x_c)`` at every pixel of the disc at
  analysis time, no clouds, noise or bias (what the channels' weighting functions can
  tell at all, linearly).

A linear estimate is not a bound on what a network can do, but where even the noise-free
one gains little, the radiances do not carry the information; where a realistic linear one
gains more than the network, the network leaves it unused.

``--on NETWORK`` regresses the error of that network's analyses instead of CORR's (what a
linear estimate adds to it), with the departures from CORR's analysis or, with
``--departures-from on``, from the network's own (what the ``linear_update`` option of
FuXi-DA computes); ``--fit-skip-days 365`` then fits on a year of the train split that the
shipped networks did not learn from.

    python examples/fuxi_da_linear_bound.py [--fit-times 1400] [--times 24]

``--errors noise=false,...`` switches the imager's errors (:class:`ImagerErrors`) and
``--frames`` sets its frames, for both the fit and the scored times: which error limits the
estimate, and what more frames would give.

Validation split only (no test times). Writes ``--out`` (JSON, atomically) and prints the
table of RMSE gains over CORR inside the disc.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
from fuxi_da_experiments import (
    HEADLINE,
    block_bootstrap_gain,
    ctrl_backgrounds,
    regions_and_weights,
    truth_tensor,
)
from fuxi_da_variants import write_table

import xfuxi
from xfuxi.assimilation.da import assimilate_da, resolve_da_model
from xfuxi.data.channels import channel_name, stack
from xfuxi.datasets import held_suarez_split
from xfuxi.models.registry import load_model
from xfuxi.observations.imager import CHANNELS as IMAGER_CHANNELS
from xfuxi.observations.imager import ImagerErrors, NominalImager, imager_observations
from xfuxi.training.da import ridge_by_holdout

VARIANTS = (
    "screened",
    "clear",
    "all-sky",
    "noise-free",
    "per-channel",
    "screened-mean",
    "screened-cloudy",
    "screened-motion",
)
LABELS = {
    "screened": "linear screened",
    "clear": "linear clear (truth flag)",
    "all-sky": "linear all-sky",
    "noise-free": "linear noise-free clear-sky",
    "per-channel": "linear per-channel screened",
    "screened-mean": "linear screened frame mean",
    "screened-cloudy": "linear screened + cloudy",
    "screened-motion": "linear screened + motion",
}
#: the background's winds the motion regressors project (hPa)
MOTION_LEVELS = (250.0, 500.0)
#: variants whose departures come in two blocks of the channels (clear, then cloudy pixels)
TWO_BLOCKS = ("screened-cloudy",)
RIDGE = tuple(10.0**k for k in range(-6, 5))  # times the mean diagonal of XᵀX
SCREEN_K = 4.0


def states_of(analysis, model) -> np.ndarray:
    """An analysis Dataset as an array ``(T, C, H, W)`` in the model's channel order."""
    x = stack(analysis, model.channels).transpose("time", "channel", "latitude", "longitude")
    return np.asarray(x.values, dtype="float64")


def prepare(
    split, idx, *, model, corr, seed, days=None, on=None, from_base=False, batch=200, imager=None
):
    """Truth, CORR analyses, departures and masks at the analysis times ``idx``.

    Returns a dict of arrays: ``truth`` and ``corr`` (T, C, H, W), ``dep`` (T, F, S, H, W)
    departures from CORR with NaN where no pixel, ``cloudy`` (T, F, H, W), ``exact``
    (T, S, H, W) the noise-free clear-sky ``H(x_t) − H(x_c)``, ``zenith`` (H, W); with a
    network ``on``, ``base`` (T, C, H, W) its analyses (else CORR's), and with
    ``from_base`` the departures (and ``exact``) are from them instead of CORR's.
    ``imager``: further keywords of :func:`imager_observations` (frames, errors).
    """
    imager = imager or {}
    truth = held_suarez_split(split, days=days).load()
    data = truth_tensor(truth, model)
    out = {k: [] for k in ("truth", "corr", "dep", "cloudy", "exact", "base", "hc")}
    zenith = None
    for start in range(0, len(idx), batch):
        sl = idx[start : start + batch]
        _, background = ctrl_backgrounds(model, truth, data, sl)
        times = truth["time"].values[sl]
        rad = imager_observations(truth, satellites=[105.0], times=times, seed=seed, **imager)
        xc = states_of(assimilate_da(background, model=corr).analysis, model)
        xt = data[sl].double().numpy()
        base = xc
        if on is not None:
            base = states_of(assimilate_da(background, rad, model=on).analysis, model)
        zenith = rad["zenith_angle"].values
        op = NominalImager(model.channels, zenith, channels=list(rad["sensor_channel"].values))
        with torch.no_grad():
            hc = op(torch.as_tensor(base if from_base else xc)).numpy()
            ht = op(torch.as_tensor(xt)).numpy()
        bt = rad["brightness_temperature"].transpose(
            "time", "frame", "sensor_channel", "latitude", "longitude"
        )
        out["dep"].append(bt.values - hc[:, None])
        out["cloudy"].append(
            rad["cloudy"].transpose("time", "frame", "latitude", "longitude").values
        )
        out["exact"].append(ht - hc)
        out["hc"].append(hc)
        out["truth"].append(xt)
        out["corr"].append(xc)
        out["base"].append(base)
        print(f"  {split}: {start + len(sl)}/{len(idx)} times", flush=True)
    res = {
        k: np.concatenate(v).astype("float32" if k != "cloudy" else bool) for k, v in out.items()
    }
    res["zenith"] = zenith
    res["channels"] = [str(c) for c in rad["sensor_channel"].values]
    return res


def imager_errors(text: str) -> ImagerErrors:
    """``ImagerErrors`` from ``"KEY=VALUE,..."`` (``noise=false,bias=false``; ``""``: all on)."""
    defaults = {f.name: f.default for f in dataclasses.fields(ImagerErrors)}
    values: dict = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if key not in defaults or not sep:
            known = list(defaults)
            raise SystemExit(f"--errors: {item!r} is not KEY=VALUE with KEY one of {known}")
        if not isinstance(defaults[key], bool):  # a number (cloud_threshold, drift)
            values[key] = float(value)
        elif value.lower() in ("true", "false"):
            values[key] = value.lower() == "true"
        else:
            raise SystemExit(f"--errors: {key} must be true or false; got {value!r}")
    return ImagerErrors(**values)


def seen_departures(d: dict, variant: str) -> np.ndarray:
    """Departures ``(T, F, S, H, W)`` the estimate sees (NaN: missing) for ``variant``."""
    dep = d["dep"]
    if variant == "noise-free":
        return d["exact"][:, None]
    if variant == "all-sky":
        return dep
    if variant == "clear":
        return np.where(d["cloudy"][:, :, None], np.nan, dep)
    if variant == "per-channel":  # each channel on its own departure: kept above a low cloud
        with np.errstate(invalid="ignore"):
            return np.where(dep < -SCREEN_K, np.nan, dep)
    window = dep[:, :, d["channels"].index("ir10.8")]
    with np.errstate(invalid="ignore"):
        cold = window < -SCREEN_K
    screened = np.where(cold[:, :, None], np.nan, dep)
    if variant == "screened-cloudy":  # the screened-out pixels as regressors of their own
        return np.concatenate([screened, np.where(cold[:, :, None], dep, np.nan)], 2)
    if variant == "screened-mean":  # one "frame": the mean of the frames that see the pixel
        seen = np.isfinite(screened)
        n = seen.sum(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, np.where(seen, screened, 0.0).sum(1, keepdims=True) / n, np.nan)
    return screened


def shift(a: np.ndarray, di: int, dj: int) -> np.ndarray:
    """``a[..., i + di, j + dj]``: periodic in longitude, NaN beyond the poles' rows."""
    a = np.roll(a, -dj, axis=-1)
    if di == 0:
        return a
    out = np.full_like(a, np.nan)
    if di > 0:
        out[..., :-di, :] = a[..., di:, :]
    else:
        out[..., -di:, :] = a[..., :di, :]
    return out


def features(seen: np.ndarray, zenith: np.ndarray, half: int, blocks: int = 1) -> np.ndarray:
    """Regressors ``(T, P, H, W)`` from the departures a variant sees (``blocks``: the
    channel axis holds that many blocks of the channels, each with its own indicator)."""
    t, f, s, h, w = seen.shape
    feats = []
    for di in range(-half, half + 1):
        for dj in range(-half, half + 1):
            a = shift(seen, di, dj)
            ok = np.isfinite(a)
            feats.append(np.where(ok, a, 0.0).reshape(t, f * s, h, w))
            # the pixel is there in that frame (in that block)
            seen_in = ok.reshape(t, f, blocks, s // blocks, h, w).all(3)
            feats.append(seen_in.reshape(t, f * blocks, h, w).astype("float64"))
    sec = 1.0 / np.cos(np.deg2rad(np.where(np.isfinite(zenith), zenith, 0.0))) - 1.0
    centre = seen[:, f // 2] if f > 1 else seen[:, 0]
    feats.append(np.where(np.isfinite(centre), centre, 0.0) * sec)
    feats.append(np.ones((t, 1, h, w)))
    return np.concatenate(feats, 1)


def regressors(d: dict, variant: str, half: int) -> np.ndarray:
    """:func:`features` of the departures ``variant`` sees in ``d`` (and, for
    ``screened-motion``, :func:`motion_features`)."""
    if variant == "screened-motion":
        seen = seen_departures(d, "screened")
        return np.concatenate([features(seen, d["zenith"], half), motion_features(d, seen)], 1)
    blocks = 2 if variant in TWO_BLOCKS else 1
    return features(seen_departures(d, variant), d["zenith"], half, blocks)


def radiance_gradient(hc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zonal and meridional differences of radiances ``(..., H, W)`` per grid step: centred,
    periodic in longitude, one-sided at the poles' rows."""
    hc = np.asarray(hc, dtype="float64")
    return 0.5 * (np.roll(hc, -1, -1) - np.roll(hc, 1, -1)), np.gradient(hc, axis=-2)


def motion_features(d: dict, seen: np.ndarray) -> np.ndarray:
    """Per channel ``ΔO ∇H / (|∇H|² + ε)`` (two components) and ``(v_c · ∇H) ∇H / (|∇H|² +
    ε)`` for the background's winds at each of :data:`MOTION_LEVELS`: ``(T, 2 S (1 + L), H,
    W)``; ``∇H`` by centred differences per grid step (periodic in longitude, one-sided at
    the poles' rows), 0 outside the disc."""
    gx, gy = radiance_gradient(d["hc"])
    norm = gx**2 + gy**2
    inside = np.isfinite(d["zenith"])
    eps = np.median(norm[..., inside], axis=-1)[..., None, None]  # (T, S, 1, 1)
    norm = norm + np.maximum(eps, 1e-12)
    first, last = seen[:, 0], seen[:, -1]
    change = np.where(np.isfinite(first) & np.isfinite(last), last - first, 0.0)  # (T, S, H, W)
    feats = [change * gx / norm, change * gy / norm]
    for level in MOTION_LEVELS:
        u = d["corr"][:, d["wind_rows"][("u", level)], None].astype("float64")
        v = d["corr"][:, d["wind_rows"][("v", level)], None].astype("float64")
        along = u * gx + v * gy
        feats += [along * gx / norm, along * gy / norm]
    out = np.concatenate(feats, 1)
    return np.where(inside & np.isfinite(out), out, 0.0)  # NaN: a neighbour outside the disc


def band_of(lat: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.searchsorted(edges, lat)


def _chunks(n: int, size: int = 50):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def fit(d: dict, variant: str, *, half: int, edges: np.ndarray, holdout: float = 0.2):
    """Ridge regressions per latitude band; ridge chosen per output on the held-out times.

    The normal equations are accumulated over chunks of times (fit part and held-out part
    apart), so the regressors of all times are never held at once.
    """
    inside = np.isfinite(d["zenith"])
    bands = band_of(np.broadcast_to(d["lat"][:, None], inside.shape), edges)
    y_all = d["truth"] - d["base"]
    scale = np.sqrt((y_all.transpose(0, 2, 3, 1)[:, inside] ** 2).mean((0, 1)))
    scale = np.where(scale > 0, scale, 1.0)  # a channel without error: left as it is
    n_t = y_all.shape[0]
    cut = int(round(n_t * (1 - holdout)))
    if not 0 < cut < n_t:
        raise SystemExit(
            f"{n_t} fit time(s) leave no {'held-out' if cut >= n_t else 'fit'} time for the "
            f"ridge choice (a fraction {holdout} is held out): give more --fit-times"
        )
    stats: dict = {}
    for part, (lo, hi) in {"fit": (0, cut), "held": (cut, n_t)}.items():
        for sl in _chunks(hi - lo):
            sl = slice(lo + sl.start, lo + sl.stop)
            x = regressors({k: _take(d, k, sl) for k in d}, variant, half).transpose(0, 2, 3, 1)
            y = (y_all[sl] / scale[None, :, None, None]).transpose(0, 2, 3, 1)
            for b in np.unique(bands[inside]):
                m = inside & (bands == b)
                xa, ya = x[:, m].reshape(-1, x.shape[-1]), y[:, m].reshape(-1, y.shape[-1])
                s = stats.setdefault((part, int(b)), [0.0, 0.0, 0.0, 0])
                s[0] = s[0] + xa.T @ xa
                s[1] = s[1] + xa.T @ ya
                s[2] = s[2] + (ya**2).sum(0)
                s[3] += xa.shape[0]
    coefs, chosen = {}, {}
    t = torch.as_tensor
    for b in sorted({b for _, b in stats}):
        gf, bf, _, _ = stats[("fit", b)]
        gh, bh, yyh, nh = stats[("held", b)]
        w, best, _ = ridge_by_holdout((t(gf), t(bf)), (t(gh), t(bh), t(yyh), nh), RIDGE)
        coefs[b] = w.numpy()
        chosen[b] = [float(RIDGE[int(i)]) for i in best]
    return coefs, scale, chosen


def _take(d: dict, key: str, sl: slice):
    """``d[key]`` for the times ``sl`` (the per-time arrays), else as it is."""
    per_time = ("truth", "corr", "dep", "cloudy", "exact", "base", "hc")
    return d[key][sl] if key in per_time else d[key]


def predict(d: dict, variant: str, coefs, scale, *, half: int, edges: np.ndarray) -> np.ndarray:
    """The linear analysis ``base + increment`` (T, C, H, W); the increment 0 outside the disc."""
    inside = np.isfinite(d["zenith"])
    bands = band_of(np.broadcast_to(d["lat"][:, None], inside.shape), edges)
    inc = np.zeros_like(d["base"])
    for sl in _chunks(inc.shape[0]):
        x = regressors({k: _take(d, k, sl) for k in d}, variant, half).transpose(0, 2, 3, 1)
        part = inc[sl].transpose(0, 2, 3, 1)  # a view: written through
        for b, w in coefs.items():
            m = inside & (bands == b)
            part[:, m] = (x[:, m] @ w) * scale
    return d["base"] + inc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument("--corr", default="fuxi-da-hs-t21-corr")
    p.add_argument(
        "--networks",
        nargs="*",
        default=["ASSI screened=fuxi-da-hs-t21-screened", "ASSI all-sky=fuxi-da-hs-t21"],
        help="LABEL=NETWORK scored on the same times",
    )
    p.add_argument("--fit-times", type=int, default=1400, help="train-split analysis times")
    p.add_argument("--fit-days", type=int, default=365, help="days of the train split used")
    p.add_argument(
        "--fit-skip-days",
        type=int,
        default=0,
        help="use the train split after these days (with --on: days the network did not "
        "learn from)",
    )
    p.add_argument("--times", type=int, default=24, help="validation analysis times")
    p.add_argument("--neighbourhood", type=int, default=5, choices=(1, 3, 5, 7))
    p.add_argument("--bands", type=int, default=4, help="latitude bands (one regression each)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument(
        "--on",
        default=None,
        help="regress the error of this network's analyses instead of CORR's (what a "
        "linear estimate adds to it; departures still from CORR)",
    )
    p.add_argument(
        "--departures-from",
        default="corr",
        choices=("corr", "on"),
        help="the state the departures are computed from: CORR's analysis or --on's",
    )
    p.add_argument(
        "--frames",
        type=float,
        nargs="+",
        default=[-2.0, 0.0, 2.0],
        help="frame offsets (hours) of the imager (the networks scored must take them)",
    )
    p.add_argument(
        "--errors",
        default="",
        help="the imager's errors as KEY=VALUE,... of ImagerErrors (e.g. noise=false,bias=false): "
        "which of them limits the estimate",
    )
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/fuxi_da_linear_bound_validation.json")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    xfuxi.set_options(progress=False)
    variants = a.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    imager = {"frames": a.frames, "errors": imager_errors(a.errors)}
    tic = time.perf_counter()
    model = load_model(a.model)
    corr = resolve_da_model(a.corr)
    half = a.neighbourhood // 2
    lat = np.asarray(model.latitude, dtype="float64")
    edges = np.quantile(lat, np.linspace(0, 1, a.bands + 1)[1:-1])

    first = 4 * a.fit_skip_days + 2
    last = 4 * (a.fit_skip_days + a.fit_days) - 2
    fit_idx = np.unique(np.linspace(first, last, a.fit_times).round().astype(int))
    print(f"fit: {len(fit_idx)} train times; score: {a.times} validation times")
    fit_data = prepare(
        "train",
        fit_idx,
        model=model,
        corr=corr,
        seed=0,
        days=a.fit_skip_days + a.fit_days,
        on=a.on,
        from_base=a.departures_from == "on",
        imager=imager,
    )
    fit_data["lat"] = lat
    wind_rows = {
        (c[0], level): model.channels.index((name, level))
        for c, name in (("u", "u_component_of_wind"), ("v", "v_component_of_wind"))
        for level in MOTION_LEVELS
    }
    fit_data["wind_rows"] = wind_rows
    val_idx = np.arange(2, 2 + a.times)
    val = prepare(
        "validation", val_idx, model=model, corr=corr, seed=12345, days=12, on=a.on,
        from_base=a.departures_from == "on", imager=imager,
    )  # fmt: skip
    val["lat"] = lat
    val["wind_rows"] = wind_rows
    t_prep = time.perf_counter() - tic

    analyses, chosen = {"CORR": val["corr"]}, {}
    for v in variants:
        coefs, scale, lam = fit(fit_data, v, half=half, edges=edges)
        label = LABELS[v] if a.on is None else f"{a.on} + {LABELS[v]}"
        analyses[label] = predict(val, v, coefs, scale, half=half, edges=edges)
        chosen[v] = lam
        print(f"  fitted {v}", flush=True)
    truth = held_suarez_split("validation", days=12).load()
    _, background = ctrl_backgrounds(model, truth, truth_tensor(truth, model), val_idx)
    times = truth["time"].values[val_idx]
    rad = imager_observations(truth, satellites=[105.0], times=times, seed=12345, **imager)
    for item in a.networks:
        label, _, spec = item.partition("=")
        analyses[label] = states_of(assimilate_da(background, rad, model=spec).analysis, model)
    analyses["CTRL"] = states_of(background, model)

    regions, w = regions_and_weights(truth, [105.0])
    rows = []
    for region in ("inside", "outside"):
        ww = w * regions[region]
        for var, level in HEADLINE:
            c = model.channels.index((var, level))
            name = channel_name((var, level))
            mse = {
                k: (((x[:, c] - val["truth"][:, c]) ** 2) * ww).sum((1, 2)) / ww.sum()
                for k, x in analyses.items()
            }
            row = {
                "region": region,
                "channel": name,
                "CORR RMSE": float(f"{np.sqrt(mse['CORR'].mean()):.4g}"),
            }
            for k in analyses:
                if k == "CORR":
                    continue
                g, lo, hi = block_bootstrap_gain(mse[k], mse["CORR"])
                row[f"{k} vs CORR"] = f"{100 * g:+.1f}% [{100 * lo:+.1f}, {100 * hi:+.1f}]"
            rows.append(row)
    result = {
        "settings": vars(a),
        "fit_times": len(fit_idx),
        "latitude_band_edges": edges.tolist(),
        "ridge_chosen": chosen,
        "wall_time_s": {"prepare": t_prep, "total": time.perf_counter() - tic},
        "rows": rows,
    }
    if "screened-motion" in variants:
        result["motion_signal"] = motion_signal(val, a.frames, lat.size, model.longitude.size)
    write_table(a.out, result)


def motion_signal(d: dict, frames, n_lat: int, n_lon: int) -> dict:
    """What the wind error of ``x_c`` can do to the radiances between the first and the last
    frame, against the instrument noise, inside the disc on the scored times: per channel
    the RMS radiance gradient (K per grid step), the radiance change the RMS wind error
    makes (``|v_t − v_c| Δt |∇H| / Δx``, at each of :data:`MOTION_LEVELS`; ``Δx`` the grid
    step at the equator) and the noise of a frame difference (``√2`` × the channel's
    noise)."""
    inside = np.isfinite(d["zenith"])
    gx, gy = radiance_gradient(d["hc"])
    grad = np.sqrt(np.nanmean((gx**2 + gy**2)[..., inside], axis=(0, 2)))  # (S,)
    dt = 3600.0 * (max(frames) - min(frames))
    dx = 2 * np.pi * 6.371e6 / n_lon
    out: dict = {"grid_step_km": dx / 1e3, "frames_apart_h": dt / 3600.0, "channels": {}}
    err = {}
    for level in MOTION_LEVELS:
        du = (
            d["truth"][:, d["wind_rows"][("u", level)]] - d["corr"][:, d["wind_rows"][("u", level)]]
        )
        dv = (
            d["truth"][:, d["wind_rows"][("v", level)]] - d["corr"][:, d["wind_rows"][("v", level)]]
        )
        err[level] = float(np.sqrt((du**2 + dv**2)[:, inside].mean()))
    out["wind_error_rms_m_s"] = {f"{level:g} hPa": e for level, e in err.items()}
    for k, name in enumerate(d["channels"]):
        noise = np.sqrt(2.0) * IMAGER_CHANNELS[name].noise
        row = {"rms_gradient_K_per_step": float(grad[k]), "frame_difference_noise_K": noise}
        for level, e in err.items():
            row[f"change_from_wind_error_{level:g}hPa_K"] = float(e * dt * grad[k] / dx)
        out["channels"][name] = row
    return out


if __name__ == "__main__":
    main()
