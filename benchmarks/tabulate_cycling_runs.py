"""One table from several cycling stores: the issue-22 figures of each run, side by side.

Each ``LABEL=STORE`` is a store of ``xfuxi.cycle`` (e.g. of ``examples/cycling_world.py
--store``); complete cycles only, so a run that was stopped early is tabulated as far as it
went (its number of cycles is in the table). Per run and channel (z500, t850, u250,
tracer500, surface pressure): the mean analysis error over days 2–10, over the last third
of the run and their ratio, and the spread over the error after day 2; and, so that runs
stopped early compare with the others, the mean over the cycles ``--common`` (default 8 to
18, days 2 to 4.5) that every run has. ``rows_channels``: every channel the runs share,
the mean analysis error after day 2 and over the last third of each run (the
``--days`` given), and of each run after the first its change from the first in per cent;
``better_than_first``: in how many of those channels each later run's error after day 2 is
below the first's.

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

import numpy as np
import pandas as pd

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
    runs = []  # (label, scores)
    for item in a.runs:
        label, sep, store = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: expected LABEL=STORE")
        scores = open_cycle(store)
        runs.append((label, scores))
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
    channels, better = channel_rows(runs, a.days)
    out = {"days": a.days, "rows": rows, "rows_channels": channels, "better_than_first": better}
    atomic_write_json(Path(a.out), out)
    print(json.dumps(out, indent=1))


def channel_rows(runs: list, days: float) -> tuple[list[dict], dict[str, int]]:
    """Every shared channel: each run's mean analysis error after day 2 and over the last
    third, the later runs' change from the first (per cent); and in how many channels each
    later run is below the first after day 2."""

    def means(scores, ch) -> tuple[float, float]:
        t = pd.DatetimeIndex(scores["time"].values)
        age = (t - t[0]) / pd.Timedelta("1D")
        err = scores["analysis_error"].sel(channel=ch).values
        after2, late = age >= 2, age >= (2.0 / 3.0) * days
        return (
            float(np.mean(err[after2])) if after2.any() else float("nan"),
            float(np.mean(err[late])) if late.any() else float("nan"),
        )

    shared = [
        c for c in runs[0][1]["channel"].values if all(c in s["channel"].values for _, s in runs)
    ]
    rows, better = [], {label: 0 for label, _ in runs[1:]}
    for ch in shared:
        row: dict = {"channel": str(ch)}
        first = means(runs[0][1], ch)
        for k, (label, scores) in enumerate(runs):
            after2, late = means(scores, ch)
            row[f"{label} after day 2"] = after2
            row[f"{label} last third"] = late
            if k:
                row[f"{label} after day 2 change %"] = 100.0 * (after2 / first[0] - 1.0)
                row[f"{label} last third change %"] = 100.0 * (late / first[1] - 1.0)
                better[label] += int(after2 < first[0])
        rows.append(row)
    return rows, better


if __name__ == "__main__":
    main()
