"""Does the forecast model carry a passive-tracer anomaly along the flow, as the world does?

Held-out anomaly samples (xfuxi.world.tracer_anomalies, seed 12, not used in training): the
world (dinosaur) advects each random anomaly for 6 hours; the model's response is
``model(state + anomaly) − model(state)``. Two kinds (module docstring there): ``both`` (the
anomaly at both input times) and ``t0`` (at the second input only, as a 4DVar increment).
Printed per kind and tracer level, over all samples:

* skill: 1 − RMSE(model response − world anomaly) / RMSE(persistence − world anomaly), where
  persistence keeps the anomaly where it is at t0 (1 is perfect, 0 no better than persistence,
  negative worse);
* gain: the regression of the response on the world's anomaly (1 is right);
* moved: the mean distance (km) between the t0 centroid and the 6-hour centroid of the
  largest blob, for the world and for the model, and their ratio.

    python benchmarks/bench_tracer_transport.py [--model fuxi-hs-t21-da] [--days 10]

(``fuxi-hs-t21-da`` is trained for this; ``fuxi-hs-t21``, the forecast model, is not.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import xfuxi
from xfuxi.training.anomalies import anomaly_samples
from xfuxi.world.tracer_anomalies import held_suarez_tracer_anomalies

R_EARTH = 6371.0


def centroid_km(field: np.ndarray, lat: np.ndarray, lon: np.ndarray, peak: tuple[int, int],
                radius: int = 4) -> np.ndarray:  # fmt: skip
    """Centroid (3-D unit vector × R) of |field| in a box of ± radius cells around ``peak``."""
    i, j = peak
    rows = np.clip(np.arange(i - radius, i + radius + 1), 0, lat.size - 1)
    cols = np.arange(j - radius, j + radius + 1) % lon.size
    sub = np.abs(field[np.ix_(rows, cols)])
    sub = np.where(sub >= 0.2 * sub.max(), sub, 0.0)
    la, lo = np.deg2rad(lat[rows])[:, None], np.deg2rad(lon[cols])[None, :]
    w = sub * np.cos(la)
    xyz = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la) + 0 * lo])
    v = (xyz * w).sum((1, 2))
    return R_EARTH * v / np.linalg.norm(v)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fuxi-hs-t21-da")
    p.add_argument("--days", type=int, default=10)
    args = p.parse_args()
    torch.set_grad_enabled(False)
    model = xfuxi.load_model(args.model)
    t = time.perf_counter()
    ds = held_suarez_tracer_anomalies(days=args.days, seed=12, start="2031-01-01")
    anomaly = ds["passive_tracer_anomaly"]
    tracer = [i for i, c in enumerate(model.channels) if c[0] == "passive_tracer"]
    levels = [model.channels[i][1] for i in tracer]
    base = xfuxi.data.channels.stack(ds.drop_vars("passive_tracer_anomaly"), model.channels)
    base = np.asarray(base.transpose("time", "channel", "latitude", "longitude").values,
                      dtype="float32")  # fmt: skip
    an = anomaly.sel(level=levels).values
    lat, lon = ds["latitude"].values, ds["longitude"].values
    print(f"model {args.model}; held-out anomaly run: {ds.sizes['window']} windows x "
          f"{ds.sizes['member']} members ({time.perf_counter() - t:.0f} s)")  # fmt: skip
    print(f"\n{'kind':5s} {'level':>6s} {'skill':>7s} {'gain':>6s} {'world km':>9s} "
          f"{'model km':>9s} {'ratio':>6s}")  # fmt: skip
    for kind in ("both", "t0"):
        times, windows, offsets = anomaly_samples(ds, kind)
        err = {lv: [0.0, 0.0, 0.0, 0.0] for lv in levels}  # model sse, persist sse, xy, xx
        moved = {lv: ([], []) for lv in levels}
        for m in range(ds.sizes["member"]):
            x = base[times].copy()  # (n, 3, C, H, W)
            clean = x.copy()
            for j in range(2):
                for b in np.flatnonzero(offsets[:, j] >= 0):
                    x[b, j, tracer] += an[windows[b], m, offsets[b, j]]
            pair = torch.as_tensor(np.concatenate([clean[:, :2], x[:, :2]]))
            out = model(pair).numpy()
            n = len(times)
            resp = out[n:, tracer] - out[:n, tracer]  # (n, L, H, W)
            for b in range(n):
                w0 = an[windows[b], m, offsets[b, 1]]  # anomaly at t0
                w1 = an[windows[b], m, offsets[b, 1] + 1]  # world's anomaly 6 h on
                for k, lv in enumerate(levels):
                    e = err[lv]
                    e[0] += float(((resp[b, k] - w1[k]) ** 2).sum())
                    e[1] += float(((w0[k] - w1[k]) ** 2).sum())
                    e[2] += float((resp[b, k] * w1[k]).sum())
                    e[3] += float((w1[k] ** 2).sum())
                    if np.abs(w0[k]).max() < 0.3 * np.abs(w0).max():
                        continue  # this level carries little of the anomaly
                    peak = np.unravel_index(np.argmax(np.abs(w0[k])), w0[k].shape)
                    c0 = centroid_km(w0[k], lat, lon, peak)
                    moved[lv][0].append(np.linalg.norm(centroid_km(w1[k], lat, lon, peak) - c0))
                    moved[lv][1].append(np.linalg.norm(centroid_km(resp[b, k], lat, lon, peak)
                                                       - c0))  # fmt: skip
        for lv in levels:
            e = err[lv]
            skill = 1 - np.sqrt(e[0] / e[1])
            world_km, model_km = np.mean(moved[lv][0]), np.mean(moved[lv][1])
            print(f"{kind:5s} {lv:6g} {skill:7.2f} {e[2] / e[3]:6.2f} {world_km:9.0f} "
                  f"{model_km:9.0f} {model_km / world_km:6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
