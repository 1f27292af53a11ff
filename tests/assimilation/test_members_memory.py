"""The En4DVar background ensemble is held once: members and anomalies formed in place.

The memory is counted by the tensors the aten ops allocate (a dispatch mode, exact and
independent of the allocator), as a multiple of the ensemble's size; the values are checked
against the operations on temporaries that the in-place forms replace (members bit for bit,
anomalies to rounding: their sums of squares are taken channel by channel).
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from xfuxi.assimilation import members as members_module
from xfuxi.assimilation.config import BackgroundError
from xfuxi.assimilation.members import background_anomalies, ensemble_anomalies, ensemble_members
from xfuxi.models.base import ForecastModel

F64 = torch.float64
LEVELS = (250.0, 500.0, 850.0)
CHANNELS = [
    (v, lv)
    for v in ("geopotential", "temperature", "u_component_of_wind", "v_component_of_wind")
    for lv in LEVELS
]
N, C, H, W = 64, len(CHANNELS), 16, 32
CHUNK = 2  # members per model call: the model's temporaries are a small part of B


class _Allocations(TorchDispatchMode):
    """Bytes of the storages aten ops allocate while active: ``now`` and ``peak``.

    A storage counts from the op that makes it until the last tensor an op returned on it
    is gone; views and in-place results of tensors made outside count nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage address -> [bytes, tensors on it]
        self.now = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = {
            t.untyped_storage().data_ptr()
            for t in tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                self._track(t, given)
        return out

    def _track(self, t: torch.Tensor, given: set[int]) -> None:
        storage = t.untyped_storage()
        key, nbytes = storage.data_ptr(), storage.nbytes()
        if key in self.live:
            self.live[key][1] += 1
        elif key in given or nbytes == 0:
            return
        else:
            self.live[key] = [nbytes, 1]
            self.now += nbytes
            self.peak = max(self.peak, self.now)
        weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        entry = self.live[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.now -= entry[0]
            del self.live[key]


class _Step(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(0.9, dtype=F64))

    def forward(self, x):
        return self.weight * x[:, 1] + (1 - self.weight) * torch.tanh(x[:, 0])


def _model() -> ForecastModel:
    return ForecastModel(
        _Step(),
        channels=CHANNELS,
        latitude=np.linspace(-80, 80, H),
        longitude=np.arange(W) * 360.0 / W,
        residual=False,
        name="step",
    )


def _ensemble_bytes() -> int:
    return N * C * H * W * 8


def _perturbations(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = torch.logspace(-3, 3, C, dtype=F64).view(1, C, 1, 1)
    return torch.randn(N, C, H, W, generator=g, dtype=F64) * scale


def _background() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, C, H, W, generator=g, dtype=F64)


def _reference_anomalies(members, spread=None, groups=()):
    """The anomalies formed on temporaries (the formulas the in-place ones replace)."""
    members = members.double()
    n, c, h = members.shape[:3]
    anomalies = (members - members.mean(0, keepdim=True)) / math.sqrt(n - 1)
    if spread is None:
        return anomalies
    target = torch.as_tensor(np.asarray(spread, dtype="float64"))
    by_row = target.ndim == 2
    var = anomalies.pow(2).sum(0).mean(dim=-1 if by_row else (-2, -1))
    factor = torch.where(torch.isnan(target), 1.0, (target.pow(2) / var).sqrt())
    for group in groups:
        g = list(group)
        if bool(torch.isfinite(target[g]).all()):
            factor[g] = (target[g].pow(2).sum(0) / var[g].sum(0)).sqrt()
    return anomalies * (factor.view(1, c, h, 1) if by_row else factor.view(1, c, 1, 1))


def _reference_members(model, before, start, pert, chunk):
    out = torch.empty(pert.shape, dtype=F64)
    with torch.no_grad():
        for i in range(0, pert.shape[0], chunk):
            p = pert[i : i + chunk]
            x = torch.stack([before.double()[None] + p, start.double()[None] + p], dim=1)
            out[i : i + chunk] = model(x).double()
    return out


def _spreads():
    rng = np.random.default_rng(0)
    per_channel = rng.uniform(0.5, 2.0, C)
    per_channel[2] = np.nan
    per_row = rng.uniform(0.5, 2.0, (C, H))
    per_row[4] = np.nan
    return per_channel, per_row


def test_background_anomalies_hold_the_ensemble_once(monkeypatch):
    # the members overwrite the drawn perturbations and become the anomalies in place: past
    # the perturbations, building B allocates a chunk's worth, not more ensemble copies
    # (members beside the perturbations, then two or three temporaries of the anomalies)
    pert = _perturbations()
    drawn = pert.clone()  # made outside the count, as the noise is drawn before the members
    monkeypatch.setattr(members_module, "perlin_state_perturbations", lambda *a, **k: drawn)
    model, bg = _model(), _background()
    opts = BackgroundError(n_members=N, member_chunk=CHUNK, perturbation_std=(1.0,) * C)
    spread = np.full(C, 2.0)
    groups = [(2 * len(LEVELS) + k, 3 * len(LEVELS) + k) for k in range(len(LEVELS))]
    with _Allocations() as count:
        anomalies = background_anomalies(
            model, bg, background_error=opts, spread=spread, spread_groups=groups, progress=False
        )
    assert count.peak < 0.5 * _ensemble_bytes()
    assert anomalies.data_ptr() == drawn.data_ptr()  # the drawn buffer, now the anomalies
    expected = _reference_anomalies(
        _reference_members(model, bg[0], bg[1], pert, CHUNK), spread, groups
    )
    # the sums of squares channel by channel: the same values up to the summation order
    torch.testing.assert_close(anomalies, expected, rtol=1e-14, atol=0)


def test_ensemble_anomalies_one_copy_caller_members_unchanged():
    members = _perturbations(2)
    kept = members.clone()
    per_channel, per_row = _spreads()
    for spread in (None, per_channel, per_row):
        with _Allocations() as count:
            anomalies = ensemble_anomalies(members, spread=spread, spread_groups=[(6, 9)])
        assert count.peak < 1.5 * _ensemble_bytes()  # the result and small temporaries
        assert torch.equal(members, kept)
        reference = _reference_anomalies(members, spread, [(6, 9)])
        torch.testing.assert_close(anomalies, reference, rtol=1e-14, atol=0)
    # float32 members: converted once, as before
    assert torch.equal(ensemble_anomalies(members.float()), _reference_anomalies(members.float()))


def test_ensemble_members_given_perturbations_bitwise_and_unchanged():
    model, bg = _model(), _background()
    pert = _perturbations(3)
    kept = pert.clone()
    opts = BackgroundError(n_members=N, member_chunk=CHUNK)
    for given in (pert, pert.float()):
        with _Allocations() as count:
            out = ensemble_members(
                model, bg[0], bg[1], background_error=opts, perturbations=given, progress=False
            )
        assert count.peak < 1.5 * _ensemble_bytes()  # the members and one chunk
        assert torch.equal(out, _reference_members(model, bg[0], bg[1], given.double(), CHUNK))
    assert torch.equal(pert, kept)


def test_ensemble_members_draw_into_the_perturbations():
    # Perlin members: the same numbers as perturbations drawn first, then members run
    model = _model()
    bg = _background()
    opts = BackgroundError(n_members=6, member_chunk=4, perturbation_std=(1.0,) * C)
    pert = members_module.perlin_state_perturbations(
        model, background_error=opts, generator=torch.Generator().manual_seed(7)
    )
    out = ensemble_members(
        model, bg[0], bg[1], background_error=opts,
        generator=torch.Generator().manual_seed(7), progress=False,
    )  # fmt: skip
    assert torch.equal(out, _reference_members(model, bg[0], bg[1], pert, 4))


@pytest.mark.parametrize(
    "special",
    [None, 0.0, -0.0, 2.0**-511, -(2.0**-511), 2.0**511, 1e-300, 1e300, math.nan, math.inf],
)
def test_sum_of_squares_leaves_x_unchanged(special):
    """x.pow(2).sum(0) channel by channel; x itself unchanged bit for bit (the earlier
    in-place square and square root changed x's last bits on CPUs whose vectorised square
    root is not correctly rounded, an Intel Xeon with AVX-512)."""
    from xfuxi.assimilation.members import _sum_of_squares

    g = torch.Generator().manual_seed(0)
    x = torch.randn(13, 5, 7, 9, generator=g, dtype=F64) * torch.logspace(-150, 150, 9, dtype=F64)
    x[0, 0, 0, 0] = -0.0
    if special is not None:
        x[3, 2, 1, 4] = special
    kept = x.clone()
    expected = x.pow(2).sum(0)
    total = _sum_of_squares(x)
    torch.testing.assert_close(total, expected, rtol=1e-15, atol=0, equal_nan=True)
    assert torch.equal(x.view(torch.int64), kept.view(torch.int64))  # signs of zeros too


def test_sum_of_squares_leaves_a_large_ensemble_unchanged():
    # 64 members of 12 channels: where torch's square root is not correctly rounded, the
    # earlier square-and-restore changed tens of these values in their last bit
    from xfuxi.assimilation.members import _sum_of_squares

    x = torch.randn(64, 12, 16, 32, generator=torch.Generator().manual_seed(0), dtype=F64)
    kept = x.clone()
    torch.testing.assert_close(_sum_of_squares(x), kept.pow(2).sum(0), rtol=1e-15, atol=0)
    assert torch.equal(x.view(torch.int64), kept.view(torch.int64))
