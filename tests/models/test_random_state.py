"""Loading a model or starting a training run neither consumes nor resets the caller's
random stream (torch's global CPU generator), and a new module's weights follow its seed."""

from __future__ import annotations

import torch

from tests import tiny, tiny_da
from tests.models.test_ens import _model, _random_walk, _vae
from tests.models.test_fuxi_da import tiny_da_model
from tests.training.test_da import CFG
from tests.training.test_forecast import _train, _world
from xfuxi.models.checkpoint import load_checkpoint
from xfuxi.models.ens import load_perturbation, save_perturbation
from xfuxi.models.fuxi_da import load_da_model, save_da_model
from xfuxi.training.config import PerturbationTrainConfig
from xfuxi.training.da import DAConfig, new_da_network
from xfuxi.training.ens import train_perturbation


def _untouched(call) -> None:
    """``call()`` leaves the stream where it was: the next draw is the one it would have been."""
    torch.manual_seed(1234)
    expected = torch.rand(4)
    torch.manual_seed(1234)
    call()
    torch.testing.assert_close(torch.rand(4), expected, rtol=0, atol=0)


def test_loading_checkpoints_does_not_consume_the_callers_stream(tmp_path):
    path, _ = tiny.fuxi_checkpoint(tmp_path)
    _untouched(lambda: load_checkpoint(path))
    vae_path = save_perturbation(tiny.vae(tiny.fuxi_model()), tmp_path / "vae")
    _untouched(lambda: load_perturbation(vae_path))
    da_path = save_da_model(tiny_da_model(), tmp_path / "da")
    _untouched(lambda: load_da_model(da_path))


def test_new_networks_follow_their_seed_and_keep_the_callers_stream(tmp_path):
    model = tiny_da.forecast_model()
    _untouched(lambda: new_da_network(DAConfig(**CFG), model))
    torch.manual_seed(0)
    a = new_da_network(DAConfig(**CFG), model)
    torch.manual_seed(1)  # the caller's stream does not reach the weights
    b = new_da_network(DAConfig(**CFG), model)
    for (name, p), q in zip(a.net.named_parameters(), b.net.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    _untouched(lambda: _train(_world(), preset="tiny", steps=1, batch_size=2, warmup_steps=0,
                              seed=3))  # fmt: skip


def test_a_new_perturbation_module_follows_the_seed_not_the_callers_stream():
    model, data = _model(), _random_walk(12, 0.3, 0)
    cfg = PerturbationTrainConfig(members=2, iterations=1, batch_size=2, seed=5)
    torch.manual_seed(0)
    a, _ = train_perturbation(model, data, config=cfg, progress=False)
    torch.manual_seed(1)
    b, _ = train_perturbation(model, data, config=cfg, progress=False)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    _untouched(lambda: train_perturbation(model, data, config=cfg, progress=False))
    # a module given is trained as it is
    given = _vae(seed=7)
    out, _ = train_perturbation(model, data, config=cfg, perturbation=given, progress=False)
    assert out is given


def test_a_seeded_block_leaves_the_cuda_generators_alone(monkeypatch):
    """torch.manual_seed inside the block also reseeded every CUDA generator, which the fork
    (CPU only) did not restore: a trainer reset a GPU user's stream."""
    from xfuxi.models.base import isolated_rng

    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda s: calls.append(s))
    with isolated_rng(seed=123):
        torch.rand(1)
    assert calls == []
