"""Members that cannot make a B: one member (its anomaly is 0 / 0), none, NaN in the
anomalies, and a zero-spread channel whose calibration target is NaN. An analysis of NaN
came out without an error; each test fails on the code before its fix."""

import numpy as np
import pytest
import torch

from tests import tiny
from xfuxi.assimilation.config import BackgroundError
from xfuxi.assimilation.cost import ObsSlot
from xfuxi.assimilation.en4dvar import en4dvar_analysis
from xfuxi.assimilation.members import background_anomalies, ensemble_anomalies
from xfuxi.observations.operator import build_operator

F64 = torch.float64
C, H, W = 2, 3, 4


@pytest.fixture(scope="module")
def problem():
    model = tiny.da_model(tiny.TinyNonlinear())
    bg = torch.randn(3, C, H, W, generator=torch.Generator().manual_seed(1), dtype=F64)
    op, _ = build_operator(tiny.DA_CHANNELS, tiny.DA_LAT, tiny.DA_LON,
                           obs_variable=["temperature"], obs_latitude=[10.0],
                           obs_longitude=[45.0], obs_level=[500.0])  # fmt: skip
    slot = ObsSlot(0, op, op(bg[2]) + 1.0, torch.tensor([0.5], dtype=F64))
    return model, bg, slot


def test_one_member_is_refused(problem):
    model, bg, _ = problem
    with pytest.raises(ValueError, match="at least 2 members; got 1"):
        background_anomalies(model, bg, background_error=BackgroundError(),
                             members=bg[2][None] + 0.1)  # fmt: skip
    with pytest.raises(ValueError, match="at least 2 members; got 1"):
        ensemble_anomalies(bg[2][None])


def test_anomalies_of_no_member_or_with_nan_are_refused(problem):
    model, bg, slot = problem
    with pytest.raises(ValueError, match="no member"):
        en4dvar_analysis(model, bg, [slot], anomalies=torch.zeros(0, C, H, W, dtype=F64),
                         progress=False)  # fmt: skip
    x = 0.3 * torch.randn(5, C, H, W, generator=torch.Generator().manual_seed(2), dtype=F64)
    x[2, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        en4dvar_analysis(model, bg, [slot], anomalies=x, progress=False)
    good = en4dvar_analysis(model, bg, [slot], anomalies=x.nan_to_num(), progress=False)
    assert bool(torch.isfinite(good.analysis).all())
    # the operator takes an empty batch of states
    assert tuple(slot.operator(torch.zeros(0, C, H, W, dtype=F64)).shape) == (0, 1)


def test_a_zero_spread_channel_with_a_nan_target_keeps_its_spread():
    mem = torch.randn(5, 3, 2, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    mem[:, 2] = 7.0  # no spread in channel 2, whose target is NaN: left as it is
    x = ensemble_anomalies(mem, spread=np.array([1.0, 2.0, np.nan]))
    var = x.pow(2).sum(0).mean((-2, -1))
    np.testing.assert_allclose(var.numpy(), [1.0, 4.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="zero spread"):  # a target it cannot reach
        ensemble_anomalies(mem, spread=np.array([1.0, 2.0, 3.0]))
