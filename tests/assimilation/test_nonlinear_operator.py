"""En4DVar with a nonlinear observation operator: the background check applies H to members."""

from __future__ import annotations

import math

import torch

from tests import tiny
from xfuxi.assimilation.config import QualityControl
from xfuxi.assimilation.cost import ObsSlot
from xfuxi.assimilation.en4dvar import en4dvar_analysis
from xfuxi.assimilation.quality import background_check
from xfuxi.observations.operator import build_operator

F64 = torch.float64


class Squared(torch.nn.Module):
    """A nonlinear operator: the square of a linear one, plus an offset (like radiances)."""

    def __init__(self, linear, offset=250.0):
        super().__init__()
        self.linear, self.offset = linear, offset

    def forward(self, x):
        return self.offset + self.linear(x) ** 2

    def subset(self, keep):
        return Squared(self.linear.subset(keep), self.offset)


def _setup(n=16):
    g = torch.Generator().manual_seed(3)
    c, h, w = 2, 3, 4
    prev = 2.0 + torch.randn(c, h, w, generator=g, dtype=F64)
    xb = 2.0 + torch.randn(c, h, w, generator=g, dtype=F64)
    members = xb + 0.3 * torch.randn(n, c, h, w, generator=g, dtype=F64)
    anomalies = (members - members.mean(0)) / math.sqrt(n - 1)
    lin, _ = build_operator(
        tiny.DA_CHANNELS, tiny.DA_LAT, tiny.DA_LON, obs_variable=["temperature"] * 2,
        obs_latitude=[10.0, -20.0], obs_longitude=[30.0, 200.0], obs_level=[500.0, 500.0],
    )  # fmt: skip
    return prev, xb, anomalies, Squared(lin)


def test_background_check_spread_of_nonlinear_operator_from_members():
    _, xb, anomalies, op = _setup()
    hx = op(xb)
    slot = ObsSlot(0, op, hx + torch.tensor([0.1, 50.0], dtype=F64), torch.ones(2, dtype=F64))
    # σb of H(x) ~ 2 |Hx| σ ~ 1.5: the second innovation (50) fails, the first passes;
    # H applied to the anomalies (250 + small) would have let everything through
    bad = background_check(slot, hx, anomalies, 5.0, state=xb)
    assert bad.tolist() == [False, True]
    n = anomalies.shape[0]
    members = xb + math.sqrt(n - 1) * anomalies
    sb2 = ((op(members) - hx) ** 2).sum(0) / (n - 1)
    assert float(sb2.max()) < 100.0


def test_linear_operator_unchanged_by_member_form():
    _, xb, anomalies, op = _setup()
    lin = op.linear
    hx = lin(xb)
    slot = ObsSlot(
        0, lin, hx + torch.tensor([0.2, 2.0], dtype=F64), torch.full((2,), 0.1, dtype=F64)
    )
    for k in (1.0, 3.0, 10.0):
        assert (
            background_check(slot, hx, anomalies, k).tolist()
            == background_check(slot, hx, anomalies, k, state=xb).tolist()
        )


def test_en4dvar_rejects_outlier_with_nonlinear_operator():
    prev, xb, anomalies, op = _setup()
    model = tiny.da_model(tiny.TinyNonlinear())
    hx = op(xb)
    slot = ObsSlot(0, op, hx + torch.tensor([0.3, 60.0], dtype=F64), torch.ones(2, dtype=F64))
    res = en4dvar_analysis(
        model, torch.stack([prev, prev, xb]), [slot], anomalies=anomalies, dtype=F64,
        progress=False, quality_control=QualityControl(qc_threshold=5.0),
    )  # fmt: skip
    assert res.qc_rejected[0].tolist() == [False, True]
