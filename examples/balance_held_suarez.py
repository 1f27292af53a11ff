"""Geostrophic balance of the Held–Suarez world, and the plots of xfuxi.plot on it.

Generates (or loads from the cache) a short T21 Held–Suarez world, prints the balance
summary by level and latitude band (correlation of the wind with the geostrophic wind of the
geopotential, and the RMS ageostrophic-to-total wind ratio), and writes a map of
500 hPa geopotential with wind vectors and of the 500 hPa ageostrophic wind speed.

    python examples/balance_held_suarez.py [--days 30] [--out /tmp/xfuxi_balance]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import xfuxi  # noqa: E402
from xfuxi.files import atomic_write_file  # noqa: E402
from xfuxi.world.simulator import held_suarez  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--out", default="/tmp/xfuxi_balance")
    args = p.parse_args()
    ds = held_suarez(days=args.days, progress=False).load()
    print(f"world: {ds.attrs.get('title')}, {ds.sizes['time']} times, levels {ds.level.values}")
    s = ds.fuxi.balance_summary()
    print(f"\n{'level':>6s} {'band':>22s} {'corr(V, Vg)':>12s} {'|Va|/|V|':>9s} "
          f"{'|V| (m/s)':>9s} {'|Vg| (m/s)':>10s}")  # fmt: skip
    for lev in s.level.values:
        for band in s.band.values:
            r = s.sel(level=lev, band=band)
            print(f"{lev:6.0f} {band:>22s} {float(r.correlation):12.3f} "
                  f"{float(r.ageostrophic_ratio):9.3f} {float(r.wind_speed):9.2f} "
                  f"{float(r.geostrophic_wind_speed):10.2f}")  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    snap = ds.isel(time=-1)
    ax = snap.fuxi.plot_map(variable="geopotential", level=500, wind=True,
                            style=xfuxi.MapStyle(title="Z500 and wind"))  # fmt: skip
    fig = ax.figure
    atomic_write_file(out / "z500_wind.png", lambda p: fig.savefig(p, format="png", dpi=80))
    ageo = snap.fuxi.ageostrophic_wind()
    ageo.attrs = dict(ds.attrs)
    ax = ageo.fuxi.plot_map(variable="ageostrophic_wind_speed", level=500,
                            style=xfuxi.MapStyle(cmap="magma"))  # fmt: skip
    fig = ax.figure
    atomic_write_file(out / "ageostrophic_500.png", lambda p: fig.savefig(p, format="png", dpi=80))
    print(f"\nmaps written to {out}")


if __name__ == "__main__":
    main()
