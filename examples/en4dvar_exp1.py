"""EXP_1: one 500 hPa geopotential observation (positive innovation) in the northern mid-latitudes.

The increment should be a height high with anticyclonic (clockwise) winds in geostrophic
balance. Prints the increment's structure, the balance correlation of the wind increment with
the geostrophic wind of the height increment (xfuxi.balance_summary / geostrophic_wind) by
level, and saves a map.

    python examples/en4dvar_exp1.py [--model fuxi-hs-t21] [--members 200]
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from _en4dvar_common import local_box, obs_errors, parser, run, setup

import xfuxi
from xfuxi.files import atomic_write_file
from xfuxi.observations.sets import single_observation


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--lat", type=float, default=47.0)
    p.add_argument("--lon", type=float, default=180.0)
    p.add_argument("--innovation", type=float, default=3.0, help="in units of obs error")
    args = p.parse_args()
    model, truth, t0, bg = setup(args)
    err = obs_errors(model)["geopotential"]
    kw = dict(
        variable="geopotential",
        level=500.0,
        latitude=args.lat,
        longitude=args.lon,
        time=t0,
        error=err,
        noise=False,
    )
    obs = single_observation(bg, **kw)  # background value at the point...
    obs["value"] = obs["value"] + args.innovation * err  # ...plus a positive innovation
    print(
        f"EXP_1: z500 observation at ({args.lat}N, {args.lon}E), t0 = {str(t0)[:16]}, "
        f"sigma_o = {err:.1f} m2 s-2, innovation = +{args.innovation * err:.1f} m2 s-2"
    )
    res = run(bg, obs, model, args)
    inc = res.increment.isel(time=0)
    bgt = bg.sel(time=[t0])
    # structure at 500 hPa
    z = inc["geopotential"].sel(level=500.0)
    imax = z.argmax(...)
    la = float(z["latitude"][int(imax["latitude"])])
    lo = float(z["longitude"][int(imax["longitude"])])
    print(
        f"max z500 increment {float(z.max()):.1f} m2 s-2 at ({la:.1f}N, {lo:.1f}E); "
        f"min {float(z.min()):.1f}"
    )
    # relative vorticity of the wind increment at the centre (anticyclonic: < 0 in the NH)
    u = inc["u_component_of_wind"].sel(level=500.0)
    v = inc["v_component_of_wind"].sel(level=500.0)
    r = 6.371e6
    phi = np.radians(u["latitude"])
    dvdx = v.differentiate("longitude") / (r * np.cos(phi) * np.pi / 180)
    dudy = (u * np.cos(phi)).differentiate("latitude") / (r * np.pi / 180) / np.cos(phi)
    zeta = (dvdx - dudy).sel(latitude=la, longitude=lo)
    print(
        f"relative vorticity of the wind increment at the centre: {float(zeta):.3e} s-1 "
        f"({'anticyclonic' if float(zeta) < 0 else 'CYCLONIC'})"
    )
    # balance: correlation of wind increment with geostrophic wind of the height increment
    summ = xfuxi.balance_summary(res.analysis, bgt)
    mask = local_box(inc, args.lat, args.lon, 3000.0)
    geo = xfuxi.geostrophic_wind(inc)
    rows = []
    for lev in inc["level"].values:
        ug = geo["u_component_of_geostrophic_wind"].sel(level=lev).where(mask)
        vg = geo["v_component_of_geostrophic_wind"].sel(level=lev).where(mask)
        ui = inc["u_component_of_wind"].sel(level=lev).where(mask)
        vi = inc["v_component_of_wind"].sel(level=lev).where(mask)
        a = np.concatenate([ui.values.ravel(), vi.values.ravel()])
        b = np.concatenate([ug.values.ravel(), vg.values.ravel()])
        ok = np.isfinite(a) & np.isfinite(b)
        local = float(np.corrcoef(a[ok], b[ok])[0, 1])
        band = float(summ["correlation"].sel(band=summ["band"].values[-1], level=lev))
        zc = float(inc["geopotential"].sel(level=lev, latitude=la, longitude=lo))
        tc = float(inc["temperature"].sel(level=lev, latitude=la, longitude=lo))
        rows.append((lev, zc, tc, local, band))
    print(
        f"\n{'level':>6} {'dz(centre)':>11} {'dT(centre)':>11} {'corr<3000km':>12} "
        f"{'corr NH band':>13}"
    )
    for lev, zc, tc, local, band in rows:
        print(f"{lev:6.0f} {zc:11.1f} {tc:11.3f} {local:12.3f} {band:13.3f}")
    print("(corr: wind increment vs geostrophic wind of the z increment; target >= 0.8 at 500)")
    # figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    z.plot.contourf(ax=ax, levels=21, cmap="RdBu_r", center=0.0)
    sub = inc.sel(level=500.0).where(mask)
    ax.quiver(
        sub["longitude"],
        sub["latitude"],
        sub["u_component_of_wind"].values,
        sub["v_component_of_wind"].values,
    )
    ax.plot([args.lon], [args.lat], "k*", ms=12)
    ax.set_title("EXP_1: z500 increment and wind increment (500 hPa)")
    out = f"{args.outdir}/en4dvar_exp1.png"
    atomic_write_file(out, lambda p: fig.savefig(p, format="png", dpi=100, bbox_inches="tight"))
    print(f"figure: {out}")
    xr.Dataset.close(res.analysis)


if __name__ == "__main__":
    main()
