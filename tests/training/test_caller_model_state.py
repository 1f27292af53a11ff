"""The trainers leave the caller's frozen forecast model as they found it: each submodule's
train/eval mode, its device, and no gradient buffers on the module they return."""

from __future__ import annotations

import torch

import xfuxi
from tests import tiny, tiny_da
from tests.models.test_ens import _random_walk
from xfuxi.models.base import ForecastModel
from xfuxi.training.config import PerturbationTrainConfig
from xfuxi.training.da import DAConfig
from xfuxi.training.loop import freeze


def test_freeze_restores_each_submodule_mode():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    model[1].eval()  # the caller's choice inside a model in train mode
    restore = freeze(model)
    assert not any(m.training for m in model.modules())
    restore()
    assert model.training and model[0].training and not model[1].training


def _recording_to(monkeypatch):
    calls = []
    original = ForecastModel.to

    def to(self, *args, **kwargs):
        calls.append(torch.device(args[0] if args else kwargs["device"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ForecastModel, "to", to)
    return calls


def test_train_perturbation_leaves_the_model_mode_device_and_no_gradients(monkeypatch):
    fm = tiny.model()
    fm.net.eval()  # the network in eval mode inside a model in train mode
    outer = fm.training
    wanted = [p.requires_grad for p in fm.parameters()]
    calls = _recording_to(monkeypatch)
    vae, _ = xfuxi.train_perturbation(
        fm,
        _random_walk(12, 0.3, 0),
        config=PerturbationTrainConfig(members=2, iterations=1, batch_size=2, validate_every=100),
        progress=False,
    )
    assert fm.training == outer and not fm.net.training
    assert [p.requires_grad for p in fm.parameters()] == wanted
    # moved to the training device, then back to where it was
    assert len(calls) >= 2 and calls[-1] == torch.device("cpu")
    assert all(p.grad is None for p in vae.parameters())


def test_train_da_leaves_the_model_mode():
    fm = tiny_da.forecast_model()
    fm.net.eval()
    outer = fm.training
    config = DAConfig(
        steps=1, batch_size=2, leads=(1,), forecast_steps=0, sensor_channels=("wv6.9", "ir10.8"),
        frames=(0.0,), satellites=(90.0,), width=4, scales=2, checkpoint_every=100,
        val_every=100, log_every=1, lr=1e-2,
    )  # fmt: skip
    net, _ = xfuxi.train_da(tiny_da.truth(6), fm, config=config, progress=False)
    assert fm.training == outer and not fm.net.training
    assert all(p.grad is None for p in net.parameters())
