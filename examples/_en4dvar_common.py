"""Shared set-up of the FuXi-En4DVar world experiments (examples/en4dvar_exp*.py)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import xarray as xr

import xfuxi
from xfuxi.assimilation.config import BackgroundError, LocalizationOptions, Minimiser, Window
from xfuxi.assimilation.cycling import world_background

EARTH_KM = 6371.0


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--model", default="fuxi-hs-t21", help="shipped name or checkpoint dir")
    p.add_argument("--days", type=int, default=20, help="days of the test split to load")
    p.add_argument("--t0-index", type=int, default=40, help="index of t0 in the test split")
    p.add_argument("--lead", type=int, default=4, help="background = forecast of LEAD steps")
    p.add_argument("--members", type=int, default=200)
    p.add_argument("--localization", type=float, default=1500.0, help="GC half-width, km")
    p.add_argument(
        "--vertical-localization",
        type=float,
        default=None,
        help="vertical Gaspari-Cohn half-width in ln p (1.0: about a scale height); "
        "0 or less: none",
    )
    p.add_argument(
        "--amplitude",
        type=float,
        default=0.15,
        help="Perlin perturbation std as a fraction of the climatological std",
    )
    p.add_argument("--wavelength", type=float, default=8.0, help="Perlin wavelength, points")
    p.add_argument("--max-iter", type=int, default=50, help="L-BFGS iteration cap")
    p.add_argument(
        "--increment-previous",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="roll the model from (background(t0-6h) + increment, analysis) instead of "
        "(background(t0-6h), analysis)",
    )
    p.add_argument(
        "--spread",
        choices=["calibrated", "latitude", "innovations", "ensemble"],
        default="calibrated",
        help="B variances: 'calibrated' rescales each channel of the ensemble to the "
        "background-error std measured on the validation split (xfuxi.background_error_std); "
        "'latitude' each channel on each latitude row (by_latitude=True); "
        "'innovations' estimates it from each analysis' own innovations (adaptive); "
        "'ensemble' keeps the Perlin ensemble's own spread",
    )
    p.add_argument("--outdir", default="examples/figures")
    p.add_argument("--seed", type=int, default=0)
    return p


def setup(args: argparse.Namespace):
    logging.basicConfig(level=logging.WARNING)
    xfuxi.set_options(progress=False)
    model = xfuxi.load_model(args.model)
    truth = xfuxi.held_suarez_split("test", days=args.days).load()
    if not 0 <= args.t0_index < truth.sizes["time"]:
        raise SystemExit(
            f"--t0-index {args.t0_index} is outside the {truth.sizes['time']} times of "
            f"--days {args.days}: give more --days or a smaller --t0-index"
        )
    t0 = truth["time"].values[args.t0_index]
    bg = world_background(truth, model=model, time=t0, lead_steps=args.lead)
    args.spread_std = calibrated_spread(args, model, lead_steps=args.lead)
    Path(args.outdir).mkdir(parents=True, exist_ok=True)
    return model, truth, t0, bg


def calibrated_spread(args: argparse.Namespace, model, *, lead_steps: int):
    """``spread=`` for ``--spread``: the background-error std for ``calibrated`` (per
    latitude row too for ``latitude``), ``"innovations"`` (adaptive) or None (``ensemble``).

    Measured on the *validation* split (an independent run), never on the test data that
    is assimilated: forecast-minus-truth RMS at the background's lead.
    """
    if args.spread == "innovations":
        return "innovations"
    if args.spread not in ("calibrated", "latitude"):
        return None
    val = xfuxi.held_suarez_split("validation", days=60)
    return xfuxi.background_error_std(
        val,
        model=model,
        lead_steps=lead_steps,
        n_samples=32,
        by_latitude=args.spread == "latitude",
    )


def obs_errors(model, fraction: float = 0.1) -> dict[str, float]:
    """Observation-error std per variable: ``fraction`` × the model's mean std over levels."""
    out: dict[str, list[float]] = {}
    for (v, _), s in zip(model.channels, np.asarray(model.stats.std)):
        out.setdefault(v, []).append(float(s))
    return {v: fraction * float(np.mean(s)) for v, s in out.items()}


def localization(args: argparse.Namespace) -> LocalizationOptions:
    """``localization=`` from ``--localization``, ``--vertical-localization`` and (where the
    example has it) ``--cross-variable``."""
    vertical = args.vertical_localization
    if vertical is not None and vertical <= 0:
        vertical = None
    return LocalizationOptions(
        length_scale=args.localization,
        vertical_length_scale=vertical,
        cross_variable=getattr(args, "cross_variable", 1.0),
    )


def options(args: argparse.Namespace) -> dict:
    """The En4DVar configurations from the command line (``assimilate_4dvar`` keywords)."""
    return {
        "background_error": BackgroundError(
            n_members=args.members,
            seed=args.seed,
            amplitude=args.amplitude,
            wavelength=args.wavelength,
        ),
        "localization": localization(args),
        "minimiser": Minimiser(max_iter=args.max_iter),
        "window": Window(increment_previous=args.increment_previous),
    }


def run(bg, obs, model, args, **kw):
    tic = time.perf_counter()
    res = xfuxi.assimilate_4dvar(
        bg,
        obs,
        model=model,
        progress=False,
        error_data=xfuxi.BackgroundErrorData(spread=getattr(args, "spread_std", None)),
        **options(args),
        **kw,
    )
    d = res.diagnostics
    print(
        f"analysis: {d.attrs['iterations']} iterations, J {float(d['cost'][0]):.4g} -> "
        f"{float(d['cost'][-1]):.4g}, obs used {d.attrs['n_observations_used']}, "
        f"members {d.attrs['member_time_s']:.1f} s, minimisation "
        f"{d.attrs['minimisation_time_s']:.1f} s, total {time.perf_counter() - tic:.1f} s"
    )
    return res


def local_box(ds: xr.Dataset, lat: float, lon: float, radius_km: float) -> xr.DataArray:
    """Mask of grid points within ``radius_km`` (great circle) of (lat, lon)."""
    la = np.radians(ds["latitude"])
    lo = np.radians(ds["longitude"])
    c = np.sin(la) * np.sin(np.radians(lat)) + np.cos(la) * np.cos(np.radians(lat)) * np.cos(
        lo - np.radians(lon)
    )
    return (EARTH_KM * np.arccos(np.clip(c, -1, 1))) <= radius_km


def centroid(field: xr.DataArray, mask: xr.DataArray) -> tuple[float, float]:
    """Centroid (lat, lon) of ``field²`` inside ``mask`` (longitude unwrapped around the max)."""
    w = (field**2).where(mask, 0.0) * np.cos(np.radians(field["latitude"]))
    lat = float((w * field["latitude"]).sum() / w.sum())
    imax = w.argmax(...)
    lon0 = float(field["longitude"][int(imax["longitude"])])
    dlon = ((field["longitude"] - lon0 + 180.0) % 360.0) - 180.0
    lon = lon0 + float((w * dlon).sum() / w.sum())
    return lat, lon % 360.0


def displacement_km(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """(east, north) displacement from a to b in km (local tangent plane)."""
    mid = np.radians(0.5 * (a[0] + b[0]))
    dlon = ((b[1] - a[1] + 180.0) % 360.0) - 180.0
    return (
        EARTH_KM * np.radians(dlon) * np.cos(mid),
        EARTH_KM * np.radians(b[0] - a[0]),
    )
