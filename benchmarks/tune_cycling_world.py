"""The choice of the world cycling settings, on the validation split (issue 22).

Three days of 6-hourly LETKF cycles (40 members, 300 radiosonde sites) on the validation
split for each variant below: localization, RTPS and multiplicative inflation, adaptive and
additive inflation, the forecast model (shipped, FuXi-Medium, a fine-tuned one, the T21
output filter). The score is the mean analysis error on day 3 (cycles 8–11). The best one
is what ``examples/cycling_world.py`` runs on the test split; the test split is not used
here.

    python benchmarks/tune_cycling_world.py                       # about 10 minutes
    python benchmarks/tune_cycling_world.py --finetuned runs/cycling/p02   # + that model

Writes ``benchmarks/results/cycling_tuning_validation.json`` and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import xfuxi
from xfuxi.assimilation.config import LocalizationOptions
from xfuxi.assimilation.cycle import CycleConfig, LETKFMethod, RadiosondeNetwork, cycle
from xfuxi.assimilation.inputs import states_tensor
from xfuxi.assimilation.letkf import LETKFOptions
from xfuxi.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
CHANNELS = [
    "geopotential@500",
    "temperature@850",
    "u_component_of_wind@250",
    "passive_tracer@500",
    "surface_pressure",
]
#: (label, model, letkf options, horizontal km, vertical ln p, additive scale, its lead)
VARIANTS = [
    ("GC 1500 km + vertical 1.0, additive ×1 (6-h errors)", "shipped", {}, 1500, 1.0, 1, 1),
    ("GC 1500 km + vertical 1.0", "shipped", {}, 1500, 1.0, None, None),
    ("GC 1500 km", "shipped", {}, 1500, None, None, None),
    ("GC 3000 km", "shipped", {}, 3000, None, None, None),
    ("GC 1500 km, additive ×3", "shipped", {}, 1500, None, 3, 1),
    ("GC 1500 km, additive ×1 (24-h errors)", "shipped", {}, 1500, None, 1, 4),
    ("GC 1500 km, adaptive inflation (gain 0.3)", "shipped",
     {"adaptive_inflation": True, "adaptive_gain": 0.3}, 1500, None, None, None),
    ("GC 1500 km, RTPS 0.95, ρ 1.1", "shipped", {"rtps": 0.95, "inflation": 1.1}, 1500, None,
     None, None),
    ("GC 1500 km; fuxi-hs-t21-medium", "medium", {}, 1500, None, None, None),
    ("GC 1500 km; fine-tuned with input perturbations 0.2", "finetuned", {}, 1500, None,
     None, None),
    ("GC 1500 km; T21 filter", "t21", {}, 1500, None, None, None),
    ("GC 1500 km, RTPS 0.95, ρ 1.05; T21 filter", "t21", {"rtps": 0.95, "inflation": 1.05},
     1500, None, None, None),
    ("GC 1500 km, additive ×1; T21 filter", "t21", {}, 1500, None, 1, 1),
    ("GC 1000 km; T21 filter", "t21", {}, 1000, None, None, None),
    ("GC 1500 km, RTPS 0.5; T21 filter", "t21", {"rtps": 0.5}, 1500, None, None, None),
    ("GC 700 km; T21 filter", "t21", {}, 700, None, None, None),
    ("GC 1000 km, RTPS 0.5; T21 filter", "t21", {"rtps": 0.5}, 1000, None, None, None),
    ("GC 700 km, RTPS 0.5; T21 filter", "t21", {"rtps": 0.5}, 700, None, None, None),
    ("GC 1000 km + vertical 1.0; T21 filter", "t21", {}, 1000, 1.0, None, None),
]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=float, default=3.0)
    p.add_argument("--finetuned", default=None, help="checkpoint of the fine-tuned model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "cycling_tuning_validation.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    xfuxi.set_options(progress=False)
    shipped = xfuxi.load_model("fuxi-hs-t21")
    models = {
        "shipped": shipped,
        "medium": xfuxi.load_model("fuxi-hs-t21-medium"),
        "t21": xfuxi.with_spectral_filter(shipped, truncation=21),
    }
    if a.finetuned:
        models["finetuned"] = xfuxi.load_model(a.finetuned)
    truth = xfuxi.held_suarez_split("validation", days=int(np.ceil(a.days)) + 4).load()
    train = xfuxi.held_suarez_split("train", days=60)  # model-error samples: another period
    samples: dict[tuple[str, int], torch.Tensor] = {}
    rows = []
    for label, key, letkf, hor, vert, add, lead in VARIANTS:
        if key not in models:
            print(f"skipped (no --finetuned): {label}")
            continue
        model = models[key]
        additive = None
        if add:
            if (key, lead) not in samples:
                errors = xfuxi.forecast_error_samples(train, model=model, lead_steps=lead,
                                                      n_samples=200)  # fmt: skip
                samples[key, lead] = states_tensor(errors, model, dim="sample", name="samples")
            additive = samples[key, lead]
        opts = LETKFOptions(**{"n_members": 40, "rtps": 0.8, "qc_threshold": 5.0, **letkf})
        method = LETKFMethod(
            options=opts,
            localization=LocalizationOptions(length_scale=float(hor), vertical_length_scale=vert),
            additive=additive,
            additive_scale=float(add or 1.0),
        )
        run = cycle(truth, RadiosondeNetwork(n_sites=300), method=method, model=model,
                    config=CycleConfig(days=a.days))  # fmt: skip
        s = run.scores
        row = {"variant": f"LETKF 40, {label}"}
        for ch in CHANNELS:
            row[ch] = float(s["analysis_error"].sel(channel=ch).values[8:12].mean())
        rows.append(row)
        print(" | ".join([row["variant"]] + [f"{row[c]:.4g}" for c in CHANNELS]), flush=True)
    atomic_write_json(Path(a.out), {
        "split": "validation", "days": a.days, "sites": 300,
        "score": "mean analysis error on day 3 (cycles 8-11), area-weighted RMSE",
        "rows": rows,
    })  # fmt: skip
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
