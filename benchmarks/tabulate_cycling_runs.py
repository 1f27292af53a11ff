"""One table from several cycling stores: the issue-22 figures of each run, side by side.

Each ``LABEL=STORE`` is a store of ``xfuxi.cycle`` (e.g. of ``examples/cycling_world.py
--store``); complete cycles only, so a run that was stopped early is tabulated as far as it
went (its number of cycles is in the table). Per run and channel (z500, t850, u250,
tracer500, surface pressure): the mean analysis error over days 2–10, over the last third
of the run and their ratio, and the spread over the error after day 2; and, so that runs
stopped early compare with the others, the mean over the cycles ``--common`` (default 8 to
18, days 2 to 4.5) that every run has.

    python benchmarks/tabulate_cycling_runs.py --days 10 \\
        --out benchmarks/results/cycling_variants_validation.json \\
        "LETKF (settings of the release)=runs/cycling/val10-base-letkf.zarr" \\
        "additive x1=runs/cycling/val10-add1-letkf.zarr"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from cycling_world import CHANNELS, _table  # noqa: E402  (the example's own table)

from xfuxi.assimilation.cycle import open_cycle  # noqa: E402
from xfuxi.files import atomic_write_json  # noqa: E402

SHORT = {
    "geopotential@500": "z500",
    "temperature@850": "t850",
    "u_component_of_wind@250": "u250",
    "passive_tracer@500": "tracer500",
    "surface_pressure": "ps",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="LABEL=STORE")
    p.add_argument("--days", type=float, required=True, help="the runs' planned length")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--common",
        type=int,
        nargs=2,
        default=(8, 19),
        metavar=("FIRST", "STOP"),
        help="cycles [FIRST, STOP) that every run has",
    )
    a = p.parse_args()
    rows = []
    for item in a.runs:
        label, sep, store = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: expected LABEL=STORE")
        scores = open_cycle(store)
        table = _table(scores, a.days)
        row: dict = {"run": label, "cycles": int(scores.sizes["time"])}
        first, stop = a.common
        if scores.sizes["time"] < stop:
            raise SystemExit(f"{store}: {scores.sizes['time']} cycles, fewer than --common {stop}")
        common = scores["analysis_error"].isel(time=slice(first, stop)).mean("time")
        for ch in CHANNELS:
            row[f"{SHORT[ch]} cycles {first}-{stop - 1}"] = float(common.sel(channel=ch))
        for ch in CHANNELS:
            r = table[ch]
            s = SHORT[ch]
            row[f"{s} days 2-10"] = r["analysis_days_2_10"]
            row[f"{s} last third"] = r["analysis_last_third"]
            row[f"{s} ratio"] = r["steady_ratio"]
        for ch in CHANNELS:  # after day 2
            row[f"spread/error {SHORT[ch]}"] = table[ch]["spread_over_error_after_day_2"]
        rows.append(row)
    out = {"days": a.days, "rows": rows}
    atomic_write_json(Path(a.out), out)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
