"""Tracer-anomaly samples: the extra objective that teaches a model to carry an anomaly.

:func:`anomaly_samples` indexes the samples of a tracer-anomaly run
(:func:`xfuxi.world.tracer_anomalies.held_suarez_tracer_anomalies`);
:class:`AnomalySamples` draws them and scores a model's response to them (the
``tracer_anomalies`` option of :func:`xfuxi.training.forecast.train_forecast`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..data.schema import SchemaError
from ..models.base import ForecastModel
from .samples import stacked_states

__all__ = ["AnomalySamples", "anomaly_samples"]


def anomaly_samples(
    ds: xr.Dataset, kind: str = "both"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time indices of the inputs and target of each sample, and its anomaly offsets.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`xfuxi.world.tracer_anomalies.held_suarez_tracer_anomalies`.
    kind : {"both", "t0"}
        ``"both"``: the anomaly is in both inputs and the target; ``"t0"``: only
        in the second input and the target.

    Returns
    -------
    (times, windows, offsets) : numpy arrays
        ``times`` (n, 3): indices into ``ds.time`` of the two inputs and the target;
        ``windows`` (n,): the window of each sample; ``offsets`` (n, 3): the anomaly offset
        index at each of the three times, ``-1`` where the state carries no anomaly.
    """
    if kind not in ("both", "t0"):
        raise ValueError(f"kind must be 'both' or 't0'; got {kind!r}")
    t = pd.DatetimeIndex(ds["time"].values)
    pos = {v: i for i, v in enumerate(t.values)}
    step = np.timedelta64(6, "h")
    times, windows, offsets = [], [], []
    for w, s in enumerate(ds["window"].values):
        if kind == "both":
            need, off = (s, s + step, s + 2 * step), (0, 1, 2)
        else:
            need, off = (s - step, s, s + step), (-1, 0, 1)
        if all(n in pos for n in need):
            times.append([pos[n] for n in need])
            windows.append(w)
            offsets.append(off)
    return np.asarray(times), np.asarray(windows), np.asarray(offsets)


def _on_grid(anomaly: xr.DataArray, states: xr.Dataset) -> xr.DataArray:
    """``anomaly`` with its rows and columns in the order of ``states``' latitudes and
    longitudes (matched by value, longitudes modulo 360)."""
    for coord in ("latitude", "longitude"):
        if coord not in anomaly.dims or coord not in states.coords:
            continue
        have = np.asarray(anomaly[coord].values, dtype="float64")
        want = np.asarray(states[coord].values, dtype="float64")
        diff = want[:, None] - have[None, :]
        if coord == "longitude":
            diff = (diff + 180.0) % 360.0 - 180.0
        close = np.abs(diff) < 1e-6
        if have.size != want.size or (close.sum(axis=1) != 1).any():
            raise SchemaError(
                f"tracer_anomalies: passive_tracer_anomaly's {coord} is not the states' "
                f"({have.size} values against {want.size})"
            )
        anomaly = anomaly.isel({coord: np.argmax(close, axis=1)})
    return anomaly


class AnomalySamples:
    """One-step samples of tracer anomalies (``tracer_anomalies`` of :func:`train_forecast`)."""

    def __init__(self, ds: xr.Dataset, fm: ForecastModel, dev: torch.device) -> None:

        if "passive_tracer_anomaly" not in ds:
            raise SchemaError(
                "tracer_anomalies must hold 'passive_tracer_anomaly' (from "
                "xfuxi.world.tracer_anomalies.held_suarez_tracer_anomalies)"
            )
        anomaly = ds["passive_tracer_anomaly"]
        base, base_c = stacked_states(ds.drop_vars("passive_tracer_anomaly"), fm.channels,
                                 "tracer_anomalies")  # fmt: skip
        fm.check_dataset(base_c)
        self.tracer_idx, tracer_levels = [], []
        for i, c in enumerate(fm.channels):
            if c[0] == "passive_tracer":
                self.tracer_idx.append(i)
                tracer_levels.append(c[1])
        if not self.tracer_idx:
            raise SchemaError("tracer_anomalies given, but the model has no passive_tracer")
        missing = [lv for lv in tracer_levels if lv not in anomaly["level"].values]
        if missing:
            raise SchemaError(f"tracer_anomalies lack the model's tracer levels {missing}")
        # the anomalies on the states' grid: validate turned the states to ascending
        # latitude and longitude 0..360 (stored north to south, the anomalies were read
        # over the other hemisphere)
        anomaly = _on_grid(anomaly, base_c)
        values = (
            anomaly.sel(level=tracer_levels)
            .transpose("window", "member", "offset", "level", "latitude", "longitude")
            .values.astype("float32")
        )
        if not np.all(np.isfinite(values)):
            raise SchemaError("tracer_anomalies contain NaN or infinite values")
        # indices into the states' times, which validate sorted (the stored order of a
        # Dataset with unsorted times would pick other states)
        times = xr.Dataset(coords={"time": base_c["time"].values, "window": ds["window"].values})
        both = anomaly_samples(times, "both")
        t0 = anomaly_samples(times, "t0")
        self.times = np.concatenate([both[0], t0[0]])
        self.windows = np.concatenate([both[1], t0[1]])
        self.offsets = np.concatenate([both[2], t0[2]])
        if self.times.size == 0:
            raise SchemaError("tracer_anomalies hold no complete sample")
        self.members = values.shape[1]
        self.base = torch.from_numpy(base).to(dev)
        self.anomaly = torch.from_numpy(values).to(dev)
        self.signature = {
            "samples": int(len(self.times)),
            "members": int(self.members),
            "config": ds.attrs.get("config", ""),
        }

    def objective(
        self,
        net: torch.nn.Module,
        fm: ForecastModel,
        w: torch.Tensor,
        seed: int,
        step: int,
        size: int,
        rank: int = 0,
    ) -> torch.Tensor:
        """Normalised squared error of the model's response to the anomalies.

        The response is ``model(state + anomaly) − model(state)`` on the tracer channels; its
        error against the world's anomaly 6 hours on is summed with the latitude weights over
        each sample, divided by the anomaly's own sum of squares, and averaged over the
        samples: 0 is perfect, and a model that keeps the anomaly unchanged scores about the
        persistence error. Only the response is trained here; the states themselves are the
        main objective's.
        """
        clean, anomaly = self.batch(seed, step, size, rank)
        idx = torch.as_tensor(self.tracer_idx, device=clean.device)
        pert = clean[:, :2].clone()
        pert[:, :, idx] += anomaly[:, :2]
        # both forecasts in one batch, both with gradient: the loss must not move the
        # unperturbed forecast, only the difference
        out = net(torch.cat([clean[:, :2], pert]))[:, idx]
        std = fm._std[:, idx]
        resp = (out[size:] - out[:size]) / std
        target = anomaly[:, 2] / std
        num = ((resp - target) ** 2 * w).sum((1, 2, 3))
        den = (target**2 * w).sum((1, 2, 3)).clamp_min(1e-12)
        return (num / den).mean()

    def batch(
        self, seed: int, step: int, size: int, rank: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's samples: states ``(size, 3, C, H, W)`` (two inputs and the target's
        time) and their anomalies ``(size, 3, L, H, W)`` on the tracer channels (zero where
        a state carries none)."""
        rng = np.random.default_rng([seed, step, 7919, rank])
        rows = rng.integers(0, len(self.times), size)
        members = rng.integers(0, self.members, size)
        clean = self.base[torch.from_numpy(self.times[rows])]
        anomaly = torch.zeros(
            (size, 3, len(self.tracer_idx), *clean.shape[-2:]), dtype=clean.dtype,
            device=clean.device,
        )  # fmt: skip
        for j in range(3):
            off = self.offsets[rows, j]
            for b in np.flatnonzero(off >= 0):
                anomaly[b, j] = self.anomaly[self.windows[rows[b]], members[b], off[b]]
        return clean, anomaly
