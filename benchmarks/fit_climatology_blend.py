"""Fit the factors of the climatology blend (``xfuxi.ClimatologyBlendMethod``) on a cycle.

For each channel and band of total wavenumber, the slope of the regression of the truth's
anomaly (from the train split's time mean, the climatology the cycle uses) on the analysis
anomaly of a cycling store of ``examples/cycling_world.py``, over its analyses from
``--start-day`` on; written with the fit's in-sample effect (the analysis error before and
after the blend, five channels) to a JSON file that ``examples/cycling_world.py --blend``
reads. With ``--score STORE``, the fitted blend is also applied, after the fact, to the
analyses of another store (e.g. one of the validation split, for factors fitted on the
train split): the analysis error of the five channels without and with it, out of sample.
Fit on the train or validation split only: the test split reports.

    python benchmarks/fit_climatology_blend.py --store PREFIX-hgain.zarr \\
        --out benchmarks/results/climatology_blend_validation.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import xfuxi
from xfuxi.assimilation.climatology_blend import (
    DEFAULT_BANDS,
    ClimatologyBlendMethod,
    climatology_tensor,
    fit_climatology_blend,
)
from xfuxi.assimilation.cycle import CycleMethod, open_cycle
from xfuxi.data.channels import channel_name
from xfuxi.files import atomic_write_json
from xfuxi.grid import area_weights

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from cycling_world import CHANNELS  # noqa: E402  (the five channels of the world's tables)


def _analyses_and_truth(store: str, split: str, model, start_day: float):
    """A store's analyses from ``start_day`` on and the truth at their times, (T, C, H, W)."""
    ds = open_cycle(store)
    if ds.attrs.get("split") not in (None, split):
        raise SystemExit(f"{store} is of the {ds.attrs['split']} split, not {split}")
    if [str(c) for c in ds["channel"].values] != [channel_name(c) for c in model.channels]:
        raise SystemExit(f"the channels of {store} are not {model.name}'s")
    times = ds["time"].values
    keep = times >= times[0] + np.timedelta64(int(start_day * 86400), "s")
    if keep.sum() < 2:
        raise SystemExit(
            f"{store} holds {keep.sum()} analyses from day {start_day:g} on (of {times.size}): "
            "the fit needs at least 2; give a longer store or a smaller --start-day"
        )
    ana = np.asarray(ds["analysis_state"].values[keep], dtype="float64")
    days = int(np.ceil((times[-1] - times[0]) / np.timedelta64(1, "D"))) + 4
    truth = xfuxi.held_suarez_split(split, days=days).sel(time=times[keep])
    from xfuxi.assimilation.inputs import states_tensor

    t = states_tensor(truth.rename(time="sample"), model, dim="sample", name="truth").numpy()
    return ana, t


def _rows(model, ana, truth, blended, w, labels) -> list[dict]:
    names = [channel_name(c) for c in model.channels]
    rows = []
    for ch in CHANNELS:
        k = names.index(ch)
        row: dict = {"channel": ch}
        for lab, x in zip(labels, (ana, blended), strict=True):
            err = x[:, k] - truth[:, k]
            row[lab] = float(np.sqrt((err**2 * w[:, None]).mean(axis=(-2, -1)).mean() / w.mean()))
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="a cycling store (validation split)")
    p.add_argument("--split", default="validation", choices=("train", "validation"))
    p.add_argument("--model", default="fuxi-hs-t21-cycling")
    p.add_argument("--start-day", type=float, default=2.0)
    p.add_argument("--score", default=None, help="a store to apply the fitted blend to")
    p.add_argument("--score-split", default="validation", choices=("train", "validation"))
    p.add_argument("--bands", default=",".join(map(str, DEFAULT_BANDS)))
    p.add_argument("--out", default=str(RESULTS / "climatology_blend_validation.json"))
    a = p.parse_args()
    t0 = time.perf_counter()
    model = xfuxi.load_model(a.model)
    bands = tuple(int(b) for b in a.bands.split(","))
    ana, truth = _analyses_and_truth(a.store, a.split, model, a.start_day)
    clim = climatology_tensor(xfuxi.held_suarez_split("train", days=200), model).numpy()
    w = np.asarray(area_weights(model.latitude).values, dtype="float64")
    beta = fit_climatology_blend(
        ana, truth, clim, latitude=model.latitude, longitude=model.longitude, weights=w,
        bands=bands,
    )  # fmt: skip
    blend = ClimatologyBlendMethod(CycleMethod(), climatology=clim, factors=beta, bands=bands)
    labels = ("analysis RMSE", "blended RMSE (in sample)")
    rows = _rows(model, ana, truth, blend.blend(torch.as_tensor(ana), model).numpy(), w, labels)
    names = [channel_name(c) for c in model.channels]
    for row in rows:
        for j, b in enumerate(bands):
            row[f"beta l<={b}"] = float(beta[names.index(row["channel"]), j])
    scored = []
    if a.score:
        ana2, truth2 = _analyses_and_truth(a.score, a.score_split, model, a.start_day)
        blended2 = blend.blend(torch.as_tensor(ana2), model).numpy()
        labels = ("analysis RMSE", "blended RMSE (out of sample)")
        scored = _rows(model, ana2, truth2, blended2, w, labels)
    for row in rows + scored:
        print({key: (round(v, 4) if isinstance(v, float) else v) for key, v in row.items()})
    out = {
        "store": a.store,
        "split": a.split,
        "model": a.model,
        "start_day": a.start_day,
        "n_analyses": int(ana.shape[0]),
        "climatology": {"split": "train", "days": 200},
        "bands": list(bands),
        "channels": names,
        "factors": beta.tolist(),
        "rows": rows,
        "score": a.score,
        "score_split": a.score_split if a.score else None,
        "rows_scored": scored,
        "wall_time_s": time.perf_counter() - t0,
    }
    atomic_write_json(a.out, out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
