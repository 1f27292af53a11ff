"""A tiny world for FuXi-DA tests: 8 × 16 grid, the world's four levels, tracer and ps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import xarray as xr

from xfuxi.models.base import ForecastModel, NormStats

LEVELS = [250.0, 500.0, 700.0, 850.0]
LAT = np.linspace(-78.75, 78.75, 8)
LON = np.arange(16) * 22.5
MODEL_CHANNELS = [("temperature", lv) for lv in LEVELS] + [
    ("passive_tracer", lv) for lv in LEVELS
] + [("surface_pressure", None)]  # fmt: skip


def truth(n_time: int = 3, seed: int = 0) -> xr.Dataset:
    """World-like random 6-hourly states (temperature, passive_tracer, surface_pressure)."""
    rng = np.random.default_rng(seed)
    shape = (n_time, 4, LAT.size, LON.size)
    t_mean = np.array([220.0, 252.0, 270.0, 280.0])[None, :, None, None]
    q_mean = np.array([0.05, 0.15, 0.3, 0.4])[None, :, None, None]
    moist = np.exp(-((LAT / 30.0) ** 2))[None, None, :, None]
    return xr.Dataset(
        {
            "temperature": (
                ("time", "level", "latitude", "longitude"),
                t_mean + 5.0 * rng.standard_normal(shape),
            ),
            "passive_tracer": (
                ("time", "level", "latitude", "longitude"),
                (q_mean * moist * (1 + 0.3 * rng.standard_normal(shape))).clip(0, None),
            ),
            "surface_pressure": (
                ("time", "latitude", "longitude"),
                1.0e5 + 800.0 * rng.standard_normal((n_time, LAT.size, LON.size)),
            ),
        },
        coords={
            "time": pd.date_range("2001-01-01", periods=n_time, freq="6h"),
            "level": LEVELS,
            "latitude": LAT,
            "longitude": LON,
        },
    )


class Persist(torch.nn.Module):
    """A differentiable, nearly-persistent step (a frozen stand-in for FuXi)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        c = len(MODEL_CHANNELS)
        self.conv = torch.nn.Conv2d(2 * c, c, 3, padding=1)

    def forward(self, x):
        return 0.05 * torch.tanh(self.conv(x.flatten(1, 2)))


def forecast_model() -> ForecastModel:
    """The forecast model of the FuXi-DA training tests (:class:`Persist` on this grid)."""
    mean = np.array([220, 252, 270, 280, 0.05, 0.15, 0.3, 0.4, 1.0e5])
    std = np.array([5, 5, 5, 5, 0.05, 0.05, 0.1, 0.1, 800.0])
    return ForecastModel(
        Persist(), channels=MODEL_CHANNELS, latitude=LAT, longitude=LON,
        stats=NormStats(mean, std, std), name="persist",
    )  # fmt: skip
