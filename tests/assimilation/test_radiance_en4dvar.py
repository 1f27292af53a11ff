"""En4DVar assimilates imager radiances through the nominal (nonlinear) operator."""

from __future__ import annotations

import math

import numpy as np
import torch

from tests import tiny_da
from tests.training.test_da import forecast_model
from xfuxi.assimilation.config import QualityControl
from xfuxi.assimilation.cost import ObsSlot
from xfuxi.assimilation.en4dvar import en4dvar_analysis
from xfuxi.data.channels import stack
from xfuxi.observations.imager import (
    ImagerErrors,
    imager_observations,
    radiance_operator,
    radiance_table,
)

F64 = torch.float64


def test_en4dvar_fits_clear_sky_radiances():
    truth = tiny_da.truth(4)
    rad = imager_observations(
        truth, satellites=[90.0], channels=["wv6.9", "wv7.4", "ir10.8"], frames=(0.0,),
        errors=ImagerErrors(clouds=False, bias=False, noise=False, spectroscopy=False),
    ).isel(time=[2])  # fmt: skip
    table = radiance_table(rad, error=0.3)
    op = radiance_operator(
        table, channels=tiny_da.MODEL_CHANNELS, latitude=tiny_da.LAT, longitude=tiny_da.LON
    )
    states = stack(truth, tiny_da.MODEL_CHANNELS).transpose(
        "time", "channel", "latitude", "longitude"
    )
    x = torch.as_tensor(states.values, dtype=F64)
    g = torch.Generator().manual_seed(0)
    n = 16
    scale = torch.tensor([1.0] * 4 + [0.02] * 4 + [100.0], dtype=F64).view(1, -1, 1, 1)
    members = torch.randn(n, *x.shape[1:], generator=g, dtype=F64) * scale
    anomalies = (members - members.mean(0)) / math.sqrt(n - 1)
    background = x[:3].clone()
    background[2] = x[2] + (anomalies * math.sqrt(n - 1))[0]  # an error drawn from B
    value = torch.as_tensor(table["value"].values)
    error = torch.as_tensor(table["error"].values)
    res = en4dvar_analysis(
        forecast_model().double(), background, [ObsSlot(0, op, value, error)],
        anomalies=anomalies, quality_control=QualityControl(qc_threshold=10.0),
        dtype=F64, progress=False,
    )  # fmt: skip
    omb = float(res.omb[0].square().mean().sqrt())
    oma = float(res.oma[0].square().mean().sqrt())
    assert not res.qc_rejected[0].any()
    assert oma < 0.5 * omb
    err_b = float((background[2] - x[2]).div(scale[0]).square().mean())
    err_a = float((res.analysis - x[2]).div(scale[0]).square().mean())
    assert err_a < err_b and np.isfinite(err_a)
