"""The free runs carried through training and the climate term (xfuxi.training.climate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training.test_forecast import KW, _train, _world
from xfuxi.training.climate import FreeRunPool
from xfuxi.training.config import TrainConfig
from xfuxi.training.losses import amse_loss, zonal_octave_power


class _Damp(torch.nn.Module):
    """A stand-in forecast model: the next state is a damped mix of the pair."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.7 * x[:, 1] + 0.2 * x[:, 0] + 1.0


class _Base:
    _std = torch.tensor([2.0, 3.0]).view(2, 1, 1)


def _data(n: int = 60) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 2, 4, 8, generator=g)


def _free_run(model, data, start: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    prev, curr = data[start - 1 : start], data[start : start + 1]
    for _ in range(steps):
        prev, curr = curr, model(torch.stack([prev, curr], dim=1))
    return prev[0], curr[0]


def _pool(data, **kw) -> FreeRunPool:
    opts = dict(size=4, min_steps=3, max_steps=8, rollout_steps=2, advance=1, seed=5,
                scale=_Base._std, loss="amse")  # fmt: skip
    opts.update(kw)
    starts = np.arange(1, data.shape[0] - opts["max_steps"] - opts["rollout_steps"])
    return FreeRunPool(data, starts, **opts)


def test_the_runs_are_the_models_own_forecasts_staggered_in_age():
    data, model = _data(), _Damp()
    pool = _pool(data)
    pool.initialise(model)
    assert pool.age.tolist() == [0, 2, 4, 6]
    for j in range(pool.size):
        start = int(pool.index[j] - pool.age[j])
        prev, curr = _free_run(model, data, start, int(pool.age[j]))
        torch.testing.assert_close(pool.curr[j], curr)
        torch.testing.assert_close(pool.prev[j], prev)
    # each optimizer step advances every run; a run past max_steps restarts from the truth
    for step in range(3):
        pool.step(model, step)
    assert pool.age.tolist() == [3, 5, 7, 0]
    i = int(pool.index[3])
    assert torch.equal(pool.curr[3], data[i]) and torch.equal(pool.prev[3], data[i - 1])
    start = int(pool.index[2] - pool.age[2])
    torch.testing.assert_close(pool.curr[2], _free_run(model, data, start, 7)[1])


def test_the_objective_is_the_amse_of_a_rollout_from_the_old_enough_runs():
    data, model = _data(), _Damp()
    pool = _pool(data)
    pool.initialise(model)
    pool.step(model, 0)  # ages 1, 3, 5, 7: three runs count
    w = torch.ones(1, 1, 4, 1)
    rows = [1, 2, 3]
    prev, curr, idx = pool.prev[rows], pool.curr[rows], pool.index[rows]
    want = 0.0
    for s in range(2):
        pred = model(torch.stack([prev, curr], dim=1))
        want = want + amse_loss(pred / _Base._std, data[idx + 1 + s] / _Base._std, w)
        prev, curr = curr, pred
    torch.testing.assert_close(pool.objective(model, w), want / 2)
    # with the channels' mean: the AMSE of the fields centred on it
    mean = torch.tensor([3.0, -2.0]).view(2, 1, 1)
    centred = _pool(data, offset=mean)
    centred.initialise(model)
    centred.step(model, 0)
    prev, curr, idx = centred.prev[rows], centred.curr[rows], centred.index[rows]
    want = 0.0
    for s in range(2):
        pred = model(torch.stack([prev, curr], dim=1))
        truth = data[idx + 1 + s]
        want = want + amse_loss((pred - mean) / _Base._std, (truth - mean) / _Base._std, w)
        prev, curr = curr, pred
    torch.testing.assert_close(centred.objective(model, w), want / 2)
    young = _pool(data, size=1)
    young.initialise(model)
    assert young.objective(model, w) is None  # age 0 < min_steps


def test_the_spectrum_objective_compares_the_runs_mean_power_with_the_datas():
    data = _data(200)
    w = torch.ones(1, 1, 4, 1)
    pool = _pool(data, loss="spectrum", size=6, rollout_steps=1)
    want = zonal_octave_power(data / _Base._std, nyquist=False).mean(0)  # every state of the data
    floor = 0.1 * want.mean(-2, keepdim=True)
    torch.testing.assert_close(pool.log_power, torch.log(want + floor))

    class _Truth(torch.nn.Module):  # the next state: a state of the data itself
        def __init__(self, factor: float) -> None:
            super().__init__()
            self.factor, self.k = factor, 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.k += 1
            return self.factor * data[self.k * 7 % 200 : self.k * 7 % 200 + x.shape[0]]

    losses = {}
    for factor in (1.0, 2.0, 0.5):
        model = _Truth(factor)
        pool.initialise(model)
        n = int((pool.age >= pool.min_steps).sum())
        assert n == 4  # ages 0, 1, 3, 4, 5, 7
        pred = model(torch.zeros(n, 2, 2, 4, 8))
        model.k -= 1  # the objective's own call gives the same states
        got = pool.objective(model, w)
        diff = torch.log(zonal_octave_power(pred / _Base._std, nyquist=False).mean(0) + floor)
        diff = diff - pool.log_power
        torch.testing.assert_close(got, (diff**2).mean())
        losses[factor] = float(got)
    # states of the data score low; twice or half their amplitude much higher
    assert losses[2.0] > 5 * losses[1.0] and losses[0.5] > 5 * losses[1.0]


def test_a_pool_refuses_bad_settings_and_too_short_data():
    data = _data(12)
    with pytest.raises(ValueError, match="min_steps < max_steps"):
        _pool(data, min_steps=8)
    with pytest.raises(ValueError, match="no run of"):
        FreeRunPool(data, np.array([], dtype=int), size=2, min_steps=1, max_steps=20,
                    rollout_steps=1, advance=1, seed=0, scale=_Base._std)  # fmt: skip
    with pytest.raises(ValueError, match="climate_min_steps must be below"):
        TrainConfig(climate_runs=2, climate_min_steps=10, climate_max_steps=10)
    with pytest.raises(ValueError, match="climate_weight"):
        TrainConfig(climate_weight=-1.0)
    with pytest.raises(ValueError, match="climate_loss"):
        TrainConfig(climate_loss="mse")
    with pytest.raises(ValueError, match="climate loss"):
        _pool(data, loss="mse")


@pytest.mark.parametrize("log_every", [1, 3])
def test_training_with_the_climate_term_logs_it_and_resumes_bit_exactly(tmp_path, log_every):
    # log_every 3 (a log entry spanning the resume): the running means of the climate and
    # anomaly parts were not saved, so the first entry after a resume averaged fewer steps
    ds = _world(40)
    kw = dict(
        KW, steps=6, checkpoint_every=2, seed=3, log_every=log_every, climate_runs=3,
        climate_min_steps=2, climate_max_steps=10, climate_rollout_steps=2,
    )  # fmt: skip
    full = _train(ds, checkpoint_dir=tmp_path / "a", **kw)
    history = full.config["metadata"]["history"]
    assert all(np.isfinite(h["climate_loss"]) and h["climate_loss"] > 0 for h in history)
    assert full.config["metadata"]["training"]["climate_runs"] == 3
    plain = _train(ds, checkpoint_dir=tmp_path / "plain", **dict(kw, climate_runs=0))
    assert "climate_loss" not in plain.config["metadata"]["history"][-1]
    assert not torch.equal(
        next(iter(full.net.state_dict().values())), next(iter(plain.net.state_dict().values()))
    )

    def crash(step, _):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(ds, checkpoint_dir=tmp_path / "b", callback=crash, **kw)
    resumed = _train(ds, checkpoint_dir=tmp_path / "b", **kw)  # the free runs come back too
    for (name, p), q in zip(full.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(p, q), name
    assert resumed.config["metadata"]["history"] == history
    with pytest.raises(ValueError, match="other settings"):
        _train(ds, checkpoint_dir=tmp_path / "b", **dict(kw, climate_weight=0.5))
