"""Tabulate FuXi-DA variants side by side from ``fuxi_da_experiments.py`` result files.

Each file holds one ASSI network scored against its CORR on the same analysis times
(``fuxi_da_experiments.py --assi DIR --corr DIR --out FILE``); this puts their ASSI RMSE and
ASSI-vs-CORR gains (with the 95% block-bootstrap intervals of those files) at one lead in
one table, by region and headline channel.

    python examples/fuxi_da_variants.py "shipped=runs/val_shipped.json" \\
        "gradient input=runs/val_grad.json" --lead 0h \\
        --out benchmarks/results/fuxi_da_inputs_validation.json
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
    p.add_argument("--regions", default="inside,outside,global")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    variants = {}
    for item in a.files:
        label, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"give LABEL=FILE; got {item!r}")
        variants[label] = json.loads(Path(path).read_text())
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
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(a.out, result)
    for row in rows:
        print(row)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
