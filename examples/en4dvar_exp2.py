"""EXP_2: one passive-tracer observation at t0 + 6 h only.

With the observation at the end of the window, the increment at t0 must sit *upstream* of
the observation, and the analysis trajectory must carry it to the observation along the
background flow. Prints the centroid of the increment at t0 and of the trajectory
difference at t0 + 6 h, their displacement against background wind × 6 h and against the
world's own transport of the same increment (the Held–Suarez world re-run to t0 with the
increment added as a tracer: :func:`xfuxi.world.tracer_anomalies.world_tracer_transport`),
and saves a map.

    python examples/en4dvar_exp2.py [--model fuxi-hs-t21-da] [--members 200]

The default model is ``fuxi-hs-t21-da``, FuXi-Short fine-tuned to carry tracer anomalies
with the wind (``--model fuxi-hs-t21`` for the forecast model, which extrapolates the tracer
in time and amplifies the increment in place).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from _en4dvar_common import centroid, displacement_km, local_box, obs_errors, parser, run, setup

from xfuxi.files import atomic_write_file
from xfuxi.observations.sets import single_observation


def main() -> None:
    p = parser(__doc__)
    p.set_defaults(model="fuxi-hs-t21-da")
    p.add_argument("--level", type=float, default=500.0)
    p.add_argument("--innovation", type=float, default=3.0, help="in units of obs error")
    args = p.parse_args()
    model, truth, t0, bg = setup(args)
    step = pd.Timedelta(model.timestep)
    t1 = pd.Timestamp(t0) + step
    # place the observation where the background wind is strongest in 35-55N
    wind = np.hypot(bg["u_component_of_wind"], bg["v_component_of_wind"]).sel(
        time=t0, level=args.level
    )
    band = wind.where((wind["latitude"] > 35) & (wind["latitude"] < 55), 0.0)
    i = band.argmax(...)
    lat = float(band["latitude"][int(i["latitude"])])
    lon = float(band["longitude"][int(i["longitude"])])
    err = obs_errors(model)["passive_tracer"]
    # the background forecast to t0 + 6 h gives the background value at the observation
    from xfuxi.assimilation.cycling import world_background

    bg1 = world_background(truth, model=model, time=t1, lead_steps=args.lead + 1)
    obs = single_observation(
        bg1,
        variable="passive_tracer",
        level=args.level,
        latitude=lat,
        longitude=lon,
        time=t1,
        error=err,
        noise=False,
    )
    obs["value"] = obs["value"] + args.innovation * err
    print(
        f"EXP_2: tracer observation at {args.level:g} hPa, ({lat:.1f}N, {lon:.1f}E), "
        f"t0 + 6 h = {str(t1)[:16]}; sigma_o = {err:.3g}, innovation +{args.innovation}"
        " sigma_o"
    )
    res = run(bg, obs, model, args)
    inc0 = res.increment["passive_tracer"].isel(time=0).sel(level=args.level)
    traj = res.trajectory["passive_tracer"].isel(time=0).sel(level=args.level)
    bg_traj1 = bg1["passive_tracer"].sel(time=t1, level=args.level)
    inc1 = traj.sel(prediction_timedelta=step) - bg_traj1
    mask = local_box(inc0, lat, lon, 3000.0)
    c0 = centroid(inc0, mask)
    c1 = centroid(inc1, mask)
    u = float(bg["u_component_of_wind"].sel(time=t0, level=args.level, latitude=lat, longitude=lon))
    v = float(bg["v_component_of_wind"].sel(time=t0, level=args.level, latitude=lat, longitude=lon))
    exp_e, exp_n = u * 6 * 3.6, v * 6 * 3.6  # km in 6 h
    d01 = displacement_km(c0, c1)
    d0o = displacement_km(c0, (lat, lon))
    # the truth: the world itself carries the tracer increment for 6 h (the world's own
    # state at t0, not the background's, so its winds are the true ones)
    from xfuxi.world.tracer_anomalies import world_tracer_transport

    inc0_all = res.increment["passive_tracer"].isel(time=0)
    world = world_tracer_transport(inc0_all, split="test", time=t0)["passive_tracer_anomaly"]
    # (measured from the world's own t0 field: the increment after its round trip through
    # the world's sigma levels)
    w0 = world.isel(prediction_timedelta=0).sel(level=args.level)
    w1 = world.isel(prediction_timedelta=1).sel(level=args.level)
    cw = centroid(w1, mask)
    dw = displacement_km(centroid(w0, mask), cw)
    corr = float(np.corrcoef(inc1.values.ravel(), w1.values.ravel())[0, 1])
    print(f"\n{'':34s} {'lat':>7s} {'lon':>7s}")
    print(f"{'observation (t0+6h)':34s} {lat:7.2f} {lon:7.2f}")
    print(f"{'increment centroid at t0':34s} {c0[0]:7.2f} {c0[1]:7.2f}")
    print(f"{'trajectory increment at t0+6h':34s} {c1[0]:7.2f} {c1[1]:7.2f}")
    print(f"{'world carries it to (t0+6h)':34s} {cw[0]:7.2f} {cw[1]:7.2f}")
    print(f"\n{'displacement (km)':34s} {'east':>8s} {'north':>8s}")
    print(f"{'increment t0 -> observation':34s} {d0o[0]:8.0f} {d0o[1]:8.0f}")
    print(f"{'increment t0 -> t0+6h':34s} {d01[0]:8.0f} {d01[1]:8.0f}")
    print(f"{'world: increment t0 -> t0+6h':34s} {dw[0]:8.0f} {dw[1]:8.0f}")
    print(f"{'background wind x 6 h':34s} {exp_e:8.0f} {exp_n:8.0f}")
    up = (d0o[0] * exp_e + d0o[1] * exp_n) > 0
    print(
        f"increment at t0 is {'UPSTREAM' if up else 'NOT upstream'} of the observation; "
        f"max |increment| t0 {float(abs(inc0).max()):.3g}, t0+6h {float(abs(inc1).max()):.3g}"
        f" (world: {float(abs(w0).max()):.3g} -> {float(abs(w1).max()):.3g}); pattern "
        f"correlation of the trajectory's increment at t0+6h with the world's: {corr:.2f}"
    )
    # the model's own transport of a probe: a Gaussian tracer anomaly (e-folding 700 km) at
    # the t0 increment centroid on this level, at t0 only (as an increment) or at both input
    # times, one model step; against the world's transport of the same probe. A model that
    # extrapolates the tracer in time, x(t+6h) ~ 2x(t) - x(t-6h), amplifies a t0-only
    # anomaly in place (gain ~2) and leaves one at both times where it is.
    probe = gaussian_probe(bg, c0, 700.0)
    lev = inc0_all["level"].values
    probe3 = xr.concat([probe * float(lv == args.level) for lv in lev], dim="level")
    probe3 = probe3.assign_coords(level=lev).transpose("level", "latitude", "longitude")
    wp = world_tracer_transport(0.01 * probe3, split="test", time=t0)["passive_tracer_anomaly"]
    wp0 = wp.isel(prediction_timedelta=0).sel(level=args.level)
    wp1 = wp.isel(prediction_timedelta=1).sel(level=args.level)
    moved_w = displacement_km(centroid(wp0, mask), centroid(wp1, mask))
    print(f"\n{'probe: 700 km Gaussian, 6 hours':34s} {'east':>8s} {'north':>8s}")
    print(f"{'world':34s} {moved_w[0]:8.0f} {moved_w[1]:8.0f}   gain "
          f"{float(wp1.max()) / float(wp0.max()):.2f}")  # fmt: skip
    for both, label in ((False, "at t0 only"), (True, "at both input times")):
        moved, gain = model_transport_km(model, bg, t0, args.level, probe, mask, both=both)
        row = f"{'model, ' + label:34s} {moved[0]:8.0f} {moved[1]:8.0f}"
        print(f"{row}   gain {gain:.2f}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, f, title in (
        (axes[0], inc0, "increment at t0"),
        (axes[1], inc1, "analysis - background trajectory at t0+6h"),
    ):
        shifted = ((f["longitude"] - lon + 180.0) % 360.0) - 180.0 + lon  # centre on the obs
        f = f.assign_coords(longitude=shifted).sortby("longitude")
        f.plot.contourf(ax=ax, levels=21, cmap="RdBu_r", center=0.0)
        ax.plot([lon], [lat], "k*", ms=12)
        ax.set_xlim(lon - 60, lon + 60)
        ax.set_ylim(lat - 35, lat + 35)
        ax.set_title(f"EXP_2 tracer {args.level:g} hPa: {title}")
    out = f"{args.outdir}/en4dvar_exp2.png"
    atomic_write_file(out, lambda p: fig.savefig(p, format="png", dpi=100, bbox_inches="tight"))
    print(f"figure: {out}")


def gaussian_probe(ds, centre, efold_km):
    """A Gaussian bump of peak 1 and e-folding ``efold_km`` at ``centre`` (lat, lon)."""
    la, lo = np.radians(ds["latitude"]), np.radians(ds["longitude"])
    lat0, lon0 = np.radians(centre[0]), np.radians(centre[1])
    c = np.sin(la) * np.sin(lat0) + np.cos(la) * np.cos(lat0) * np.cos(lo - lon0)
    dist = 6371.0 * np.arccos(np.clip(c, -1, 1))
    return np.exp(-0.5 * (dist / efold_km) ** 2).transpose("latitude", "longitude")


def model_transport_km(model, bg, t0, level, probe, mask, *, both=True):
    """Displacement (east, north) in km of a tracer anomaly ``probe`` after one model step,
    and the response's peak over the anomaly's (``both``: at both input times)."""
    import torch

    from xfuxi.assimilation.cycling import _stack_times

    step = pd.Timedelta(model.timestep)
    pair = _stack_times(bg, model, [pd.Timestamp(t0) - step, pd.Timestamp(t0)])
    ci = list(model.channels).index(("passive_tracer", float(level)))
    blob = probe.values
    amp = 0.01  # small: the response is the model's tangent-linear one
    pert = pair.copy()
    if both:
        pert[:, ci] += amp * blob
    else:
        pert[1, ci] += amp * blob
    with torch.no_grad():
        y = model(torch.as_tensor(np.stack([pair, pert]), dtype=torch.float32)).double().numpy()
    coords = {"latitude": bg["latitude"].values, "longitude": bg["longitude"].values}
    resp = xr.DataArray(y[1, ci] - y[0, ci], dims=("latitude", "longitude"), coords=coords)
    start = xr.DataArray(blob, dims=("latitude", "longitude"), coords=coords)
    gain = float(resp.max()) / amp
    return displacement_km(centroid(start, mask), centroid(resp, mask)), gain


if __name__ == "__main__":
    main()
