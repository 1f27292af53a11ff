"""Tabulate FuXi-DA variants side by side from ``fuxi_da_experiments.py`` result files.

Each file holds one ASSI network scored against its CORR on the same analysis times
(``fuxi_da_experiments.py --assi DIR --corr DIR --out FILE``); this puts their ASSI RMSE and
ASSI-vs-CORR gains (with the 95% block-bootstrap intervals of those files) at one lead in
one table, by region and headline channel.

    python examples/fuxi_da_variants.py "shipped=runs/val_shipped.json" \\
        "gradient input=runs/val_grad.json" --lead 0h \\
        --out benchmarks/results/fuxi_da_inputs_validation.json

With ``--cycling`` the files are ``fuxi_da_cycling.py`` results (one ASSI network each, run
on the same times): the ASSI 1-satellite variant's analysis RMSE over days 1–3, 2–5 and
6–11, the ratio days 6–11 / days 2–5 (the steadiness target ≤ 1.15) and days 6–11 / the
free run (≤ 0.75 inside the disc), by region and headline channel.

With ``--linear`` the files are ``fuxi_da_linear_bound.py`` results (one imager setting or
regression each, on the same validation times): the gain over CORR of the column
``--column`` (default ``linear screened``; a file without it: its only estimate) with its
interval, by region and headline channel, and the setting's imager errors and frames.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xfuxi.files import atomic_write_json

CHANNELS = (
    "geopotential@500", "temperature@500", "temperature@700", "temperature@850",
    "passive_tracer@500", "passive_tracer@700", "u_component_of_wind@250",
)  # fmt: skip
SHORT = {"geopotential": "z", "temperature": "t", "passive_tracer": "tracer",
         "u_component_of_wind": "u"}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="LABEL=FILE, one per variant")
    p.add_argument("--lead", default="0h")
    p.add_argument("--regions", default=None,
                   help="comma-separated (default inside,outside,global; with --linear "
                   "inside,outside, the regions its files have)")  # fmt: skip
    p.add_argument("--cycling", action="store_true", help="fuxi_da_cycling.py result files")
    p.add_argument("--variant", default="ASSI 1 sat", help="--cycling: the variant tabulated")
    p.add_argument("--linear", action="store_true", help="fuxi_da_linear_bound.py result files")
    p.add_argument("--column", default="linear screened", help="--linear: the estimate tabulated")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    if a.regions is None:
        a.regions = "inside,outside" if a.linear else "inside,outside,global"
    variants = {}
    for item in a.files:
        label, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"give LABEL=FILE; got {item!r}")
        variants[label] = json.loads(Path(path).read_text())
    if a.cycling:
        return cycling_table(variants, a)
    if a.linear:
        return linear_table(variants, a)
    times = {json.dumps(v["analysis_times"]) for v in variants.values()}
    if len(times) != 1:
        raise SystemExit("the files score different analysis times")
    rows = []
    for region in a.regions.split(","):
        for label, res in variants.items():
            by = {(r["region"], r["channel"]): r for r in res["rows"] if r["lead"] == a.lead}
            row = {"region": region, "variant": label}
            for name in CHANNELS:
                var, level = name.split("@")
                r = by[(region, name)]
                row[f"{SHORT[var]}{level}"] = f"{r['ASSI']:.4g} ({r['ASSI vs CORR [95% CI]']})"
            rows.append(row)
    result = {
        "lead": a.lead,
        "files": {label: item.partition("=")[2] for label, item in zip(variants, a.files)},
        "split": next(iter(variants.values()))["settings"].get("split"),
        "note": "ASSI RMSE (ASSI vs its own CORR, 95% block-bootstrap interval)",
        "rows": rows,
    }
    write_table(a.out, result)


def write_table(out: Path, result: dict) -> None:
    """Write ``result`` (JSON, atomically) and print its rows."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    for row in result["rows"]:
        print(row)
    print(f"wrote {out}")


def linear_column(label: str, row: dict, wanted: str) -> str:
    """The estimate tabulated from a file: ``wanted`` if it has it, else its only one."""
    have = [k[: -len(" vs CORR")] for k in row if k.startswith("linear") and k.endswith(" vs CORR")]
    if wanted in have:
        return wanted
    if len(have) == 1:
        return have[0]
    raise SystemExit(f"{label}: no {wanted!r} estimate; it has {have}")


def linear_table(variants: dict, a: argparse.Namespace) -> None:
    """The ``--linear`` table (module docstring)."""
    keys = ("times", "fit_times", "fit_days", "fit_skip_days", "neighbourhood", "bands")
    same = {json.dumps([v["settings"][k] for k in keys]) for v in variants.values()}
    if len(same) != 1:
        raise SystemExit(f"the files differ in {keys}: not the same regression and times")
    rows = []
    for region in a.regions.split(","):
        for label, res in variants.items():
            settings = res["settings"]
            row = {
                "region": region,
                "setting": label,
                "imager errors changed": " ".join((settings.get("errors") or "none").split(",")),
                "frames (h)": " ".join(f"{f:g}" for f in settings.get("frames", (-2, 0, 2))),
            }
            by = {(r["region"], r["channel"]): r for r in res["rows"]}
            column = linear_column(label, res["rows"][0], a.column)
            row["estimate"] = column
            for name in CHANNELS:
                var, level = name.split("@")
                r = by.get((region, name))
                if r is None or f"{column} vs CORR" not in r:
                    raise SystemExit(f"{label}: no {column!r} gain for {region} {name}")
                row[f"{SHORT[var]}{level}"] = r[f"{column} vs CORR"]
            rows.append(row)
    result = {
        "files": {label: item.partition("=")[2] for label, item in zip(variants, a.files)},
        "column": a.column,
        "split": "validation",
        "note": "gain in RMSE over CORR of the linear estimate (95% block-bootstrap interval)",
        "rows": rows,
    }
    write_table(a.out, result)


CYCLING_CHANNELS = (
    "geopotential@500", "temperature@850", "u_component_of_wind@250", "passive_tracer@500",
)  # fmt: skip


PERIODS = ("days 1-3", "days 2-5", "days 6-11")


def cycling_table(variants: dict, a: argparse.Namespace) -> None:
    """The ``--cycling`` table (module docstring)."""
    starts = {json.dumps([v["settings"][k] for k in ("start", "split")]) for v in variants.values()}
    if len(starts) != 1:
        raise SystemExit("the files cycle from different starts or splits")
    rows = []
    for region in a.regions.split(","):
        for label, res in variants.items():
            table = {(r["region"], r["channel"], r["period"]): r for r in res["table"]}
            if (region, CYCLING_CHANNELS[0], "days 2-5") not in table:
                continue  # a region the cycling files do not score
            row = {"region": region, "variant": label}
            for name in CYCLING_CHANNELS:
                var, level = name.split("@")
                per = {k: table[(region, name, k)] for k in PERIODS}
                first, mid, late = (per[k][a.variant] for k in PERIODS)
                row[f"{SHORT[var]}{level}"] = (
                    f"{first:.3g} / {mid:.3g} / {late:.3g}; x{late / mid:.2f}; "
                    f"free x{late / per['days 6-11']['free run']:.2f}"
                )
            rows.append(row)
    result = {
        "files": {label: item.partition("=")[2] for label, item in zip(variants, a.files)},
        "split": next(iter(variants.values()))["settings"]["split"],
        "variant": a.variant,
        "note": "analysis RMSE days 1-3 / days 2-5 / days 6-11; x(days 6-11 / days 2-5); "
        "free x(days 6-11 / the free run's days 6-11)",
        "rows": rows,
    }
    write_table(a.out, result)


if __name__ == "__main__":
    main()
