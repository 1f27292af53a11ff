"""EXP_2: one passive-tracer observation at t0 + 6 h only.

With the observation at the end of the window, the increment at t0 must sit *upstream* of
the observation, and the analysis trajectory must carry it to the observation along the
background flow. Prints the centroid of the increment at t0 and of the trajectory
difference at t0 + 6 h, their displacement against background wind × 6 h, and saves a map.

    python examples/en4dvar_exp2.py [--model fuxi-hs-t21] [--members 200]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from _en4dvar_common import centroid, displacement_km, local_box, obs_errors, parser, run, setup

from xfuxi.assimilation.observations import single_observation


def main() -> None:
    p = parser(__doc__)
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
    from xfuxi.experiments.world import world_background

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
    print(f"\n{'':34s} {'lat':>7s} {'lon':>7s}")
    print(f"{'observation (t0+6h)':34s} {lat:7.2f} {lon:7.2f}")
    print(f"{'increment centroid at t0':34s} {c0[0]:7.2f} {c0[1]:7.2f}")
    print(f"{'trajectory increment at t0+6h':34s} {c1[0]:7.2f} {c1[1]:7.2f}")
    print(f"\n{'displacement (km)':34s} {'east':>8s} {'north':>8s}")
    print(f"{'increment t0 -> observation':34s} {d0o[0]:8.0f} {d0o[1]:8.0f}")
    print(f"{'increment t0 -> t0+6h':34s} {d01[0]:8.0f} {d01[1]:8.0f}")
    print(f"{'background wind x 6 h':34s} {exp_e:8.0f} {exp_n:8.0f}")
    up = (d0o[0] * exp_e + d0o[1] * exp_n) > 0
    print(
        f"increment at t0 is {'UPSTREAM' if up else 'NOT upstream'} of the observation; "
        f"max |increment| t0 {float(abs(inc0).max()):.3g}, t0+6h {float(abs(inc1).max()):.3g}"
    )
    # the model's own transport: a tracer anomaly (1000 km disc) put at the t0 increment
    # centroid, at both input times or at t0 only, one model step: centroid and amplitude of
    # the response (a transporting model moves it by about the wind x 6 h at gain ~1; a model
    # that extrapolates the tracer in time, x(t+6h) ~ 2x(t) - x(t-6h), leaves it in place
    # with gain 1 when both inputs carry it, and 2 when only t0 does)
    for both, label in ((True, "both input times"), (False, "t0 only")):
        moved, gain = model_transport_km(model, bg, t0, args.level, c0, radius_km=1000.0,
                                         both=both)  # fmt: skip
        row = f"{'model, anomaly at ' + label:34s} {moved[0]:8.0f} {moved[1]:8.0f}"
        print(f"{row}   gain {gain:.2f}")
    print("(the last two rows: the forecast model's own transport of a tracer anomaly in 6 h)")
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
    fig.savefig(out, dpi=100, bbox_inches="tight")
    print(f"figure: {out}")


def model_transport_km(model, bg, t0, level, centre, *, radius_km, both=True):
    """Displacement (east, north) in km of a tracer anomaly after one model step, and the
    response's peak over the anomaly's (``both``: the anomaly at both input times)."""
    import torch
    import xarray as xr

    from xfuxi.experiments.world import _stack_times

    step = pd.Timedelta(model.timestep)
    pair = _stack_times(bg, model, [pd.Timestamp(t0) - step, pd.Timestamp(t0)])
    ci = list(model.channels).index(("passive_tracer", float(level)))
    disc = local_box(bg, centre[0], centre[1], radius_km).transpose("latitude", "longitude")
    blob = np.where(disc.values, 1.0, 0.0)
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
    mask = local_box(bg, centre[0], centre[1], 3000.0)
    gain = float(resp.max()) / amp
    return displacement_km(centroid(start, mask), centroid(resp, mask)), gain


if __name__ == "__main__":
    main()
