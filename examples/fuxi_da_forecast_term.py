"""The forecast term of FuXi-DA's loss: the shipped ASSI trained on with K = 0 and with K = 1.

``train`` continues the shipped ``fuxi-da-hs-t21`` for ``--steps`` AdamW steps (batch 4, peak
learning rate 2.5e-4 with a cosine decay, seed 2, the 365 days of the world's train split,
6-hour backgrounds, frames −2, 0, +2 h, departures, each imager channel dropped with
probability 0.15: the settings of its last training stage) with ``forecast_steps`` K = 0 or
K = 1, the only difference between the two runs, and writes ``OUT/model`` (and the resumable
state ``OUT/latest``). Score each with ``examples/fuxi_da_experiments.py --assi OUT/model``
on the same analysis times; ``compare`` then tabulates the ASSI RMSE of the two runs, by
lead, region and channel, with the gain of K = 1 over K = 0 and its 95% block-bootstrap
interval (blocks of 4 analysis times), and how much of each run's gain over CORR is kept
with ``wv6.9`` missing. ``compare --labels A,B`` compares any two runs the same way (the
channel-dropout variants, the gradient input).

    python examples/fuxi_da_forecast_term.py train --k 0 --out runs/fuxi-da-k0
    python examples/fuxi_da_forecast_term.py train --k 1 --out runs/fuxi-da-k1
    python examples/fuxi_da_experiments.py --split validation --assi runs/fuxi-da-k0/model \\
        --out runs/val_k0.json     # and runs/fuxi-da-k1/model -> runs/val_k1.json
    python examples/fuxi_da_forecast_term.py compare runs/val_k0.json runs/val_k1.json \\
        --out benchmarks/results/fuxi_da_forecast_term_validation.json

Choices are made on the validation split; the test split only reports.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from xfuxi.datasets import held_suarez_split
from xfuxi.files import atomic_write_json
from xfuxi.models.fuxi_da import save_da_model
from xfuxi.models.registry import load_model
from xfuxi.training.da import DAConfig, train_da

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuxi_da_experiments import block_bootstrap_gain  # noqa: E402

CHANNELS = ("geopotential@500", "temperature@850", "u_component_of_wind@250", "passive_tracer@500")
LEADS = ("0h", "24h", "48h", "72h")
REGIONS = ("global", "inside")


def train(k: int, out: Path, steps: int) -> None:
    t = time.time()
    model = load_model("fuxi-hs-t21")
    cfg = DAConfig(
        steps=steps, batch_size=4, lr=2.5e-4, leads=(1,), forecast_steps=k, seed=2,
        satellites=(105.0,), frames=(-2.0, 0.0, 2.0), departure_input=True,
        channel_dropout=0.15, init_from="fuxi-da-hs-t21", checkpoint_every=250, val_every=250,
        log_every=50, name=f"fuxi-da-hs-t21-k{k}", checkpoint_dir=str(out),
    )  # fmt: skip
    net, hist = train_da(
        held_suarez_split("train", days=365), model, config=cfg,
        validation=held_suarez_split("validation", days=10),
    )  # fmt: skip
    path = save_da_model(net, out / "model", overwrite=True)
    print(f"K={k}: {hist['step'][-1]} steps in {time.time() - t:.0f} s; wrote {path}")


def compare(k0_file: Path, k1_file: Path, out: Path, labels: tuple[str, str]) -> None:
    """The ASSI rows of two experiment files (``labels``: the runs' names, the first the
    reference), and how much of each run's gain over CORR survives a missing ``wv6.9``."""
    k0 = json.loads(Path(k0_file).read_text())
    k1 = json.loads(Path(k1_file).read_text())
    first, second = labels
    if k0["analysis_times"] != k1["analysis_times"]:
        raise SystemExit("the two files score different analysis times")
    for path, f in ((k0_file, k0), (k1_file, k1)):
        lacking = sorted({lead for lead in LEADS for region in REGIONS for name in CHANNELS
                          if f"ASSI|{region}|{name}|{lead}" not in f["scores"]})  # fmt: skip
        if lacking:
            raise SystemExit(
                f"{path} has no ASSI scores at lead(s) {lacking}: compare needs experiment "
                f"files scored at {list(LEADS)} (fuxi_da_experiments.py --forecast-steps)"
            )
    rows = []
    for lead in LEADS:
        for region in REGIONS:
            for name in CHANNELS:
                key = f"ASSI|{region}|{name}|{lead}"
                a = np.array(k1["scores"][key]["mse_per_time"])
                b = np.array(k0["scores"][key]["mse_per_time"])
                gain, lo, hi = block_bootstrap_gain(a, b)
                rows.append({
                    "lead": lead, "region": region, "channel": name,
                    f"ASSI {first}": round(float(np.sqrt(b.mean())), 5),
                    f"ASSI {second}": round(float(np.sqrt(a.mean())), 5),
                    f"{second} vs {first} [95% CI]":
                        f"{100 * gain:+.1f}% [{100 * lo:+.1f}, {100 * hi:+.1f}]",
                    "gain": gain,
                })  # fmt: skip
    missing = [
        {"region|channel": key, **{
            f"{label} {what}": None if f["missing_wv6.9"][key][what] is None
            else round(100 * f["missing_wv6.9"][key][what], 1)
            for label, f in ((first, k0), (second, k1))
            for what in ("gain_full", "gain_missing", "kept")}}
        for key in k0["missing_wv6.9"] if key.startswith("inside|")
    ]  # fmt: skip
    result = {
        "k0": str(k0_file), "k1": str(k1_file), "split": k0["settings"].get("split"),
        "analysis_times": len(k0["analysis_times"]), "labels": list(labels), "rows": rows,
        "missing_wv6.9_inside_percent": missing,
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    for r in rows:
        print(f"{r['lead']:>4} {r['region']:>7} {r['channel']:>26} {r[f'ASSI {first}']:>10} "
              f"{r[f'ASSI {second}']:>10} {r[f'{second} vs {first} [95% CI]']}")  # fmt: skip
    for m in missing:
        print(m)
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("train", help="train the shipped ASSI on with K forecast steps")
    t.add_argument("--k", type=int, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--steps", type=int, default=1000)
    c = sub.add_parser("compare", help="tabulate two fuxi_da_experiments.py files (K=0, K=1)")
    c.add_argument("k0", type=Path)
    c.add_argument("k1", type=Path)
    c.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/fuxi_da_forecast_term.json")
    )
    c.add_argument("--labels", default="K=0,K=1", help="names of the two runs (reference first)")
    a = p.parse_args()
    if a.what == "train":
        train(a.k, a.out, a.steps)
    else:
        labels = tuple(a.labels.split(","))
        if len(labels) != 2:
            raise SystemExit(f"--labels needs two names; got {a.labels!r}")
        compare(a.k0, a.k1, a.out, labels)


if __name__ == "__main__":
    main()
