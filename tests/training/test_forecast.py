"""Tests of FuXi forecast training (xfuxi.training.forecast)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from tests import tiny
from xfuxi.data.schema import SchemaError
from xfuxi.models.base import NormStats
from xfuxi.models.registry import load_model
from xfuxi.training.config import TrainConfig
from xfuxi.training.forecast import _lr_factor, _rollout_loss, _sample_starts, train_forecast
from xfuxi.training.losses import amse_loss, forecast_loss
from xfuxi.training.samples import start_states
from xfuxi.verify.weights import area_weights

LAT, LON = tiny.LAT, tiny.LON


def _world(n_times: int = 24, seed: int = 0) -> xr.Dataset:
    """A wave travelling east by one grid point per 6 h, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_times)[:, None, None, None]
    lat = np.deg2rad(LAT)[None, None, :, None]
    k = np.arange(16)[None, None, None, :]
    lev = np.array([0.0, 1.0])[None, :, None, None]
    temp = 260 + 8 * np.cos(lat) * np.sin(2 * np.pi * (k - t) / 16 + lev)
    temp = temp + 0.1 * rng.standard_normal(temp.shape)
    return xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"), temp.astype("float32"))},
        coords={"time": pd.date_range("2000-01-01", periods=n_times, freq="6h"),
                "level": [500, 850], "latitude": LAT, "longitude": LON},
    )  # fmt: skip


def _stats() -> NormStats:
    return NormStats(np.array([260.0, 260.0]), np.array([5.0, 5.0]), np.array([2.0, 2.0]))


KW = dict(preset="tiny", stats=_stats(), batch_size=4, warmup_steps=2)

#: the arguments of train_forecast that are not fields of its TrainConfig
_ARGS = {
    "validation", "model", "lead_model", "stats", "tracer_anomalies", "cycled_states",
    "callback", "progress",
}  # fmt: skip


def _train(ds, **kw):
    """train_forecast with the TrainConfig fields among ``kw`` gathered into its config."""
    args = {k: kw.pop(k) for k in list(kw) if k in _ARGS}
    args.setdefault("progress", False)
    return train_forecast(ds, config=TrainConfig(**kw), **args)


def test_loss_is_area_weighted_l1_of_normalised_fields():
    ds = _world(6)
    model = _train(ds, steps=1, **KW)
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((3, 2, 8, 16))
    truth = rng.standard_normal((3, 2, 8, 16))
    w = np.asarray(area_weights(LAT)).reshape(1, 1, -1, 1)
    expect = np.mean(w * np.abs(pred - truth) / 5.0)
    got = forecast_loss(model, torch.tensor(pred, dtype=torch.float32),
                torch.tensor(truth, dtype=torch.float32),
                torch.tensor(w, dtype=torch.float32))  # fmt: skip
    assert float(got) == pytest.approx(expect, rel=1e-5)


def test_amse_is_mse_with_right_phases_and_does_not_reward_damping():
    rng = np.random.default_rng(1)
    w = torch.as_tensor(np.asarray(area_weights(LAT))).reshape(1, 1, -1, 1)
    truth = torch.as_tensor(rng.standard_normal((2, 3, 8, 16)))
    mse = lambda a, b: float(((a - b) ** 2 * w).mean())  # noqa: E731
    # every mode in phase (a damped or amplified copy): AMSE equals the weighted MSE
    for scale in (0.5, 1.7):
        assert float(amse_loss(scale * truth, truth, w)) == pytest.approx(
            mse(scale * truth, truth), rel=1e-9
        )
    # a forecast without the modes has no phase: it pays the amplitude and decorrelation
    assert float(amse_loss(0 * truth, truth, w)) == pytest.approx(3 * mse(0, truth), rel=1e-6)
    other = torch.as_tensor(rng.standard_normal((2, 3, 8, 16)))
    assert float(amse_loss(other, truth, w)) > mse(other, truth)  # AMSE >= MSE
    # a wave forecast a quarter wavelength off: MSE prefers no wave at all, AMSE the wave
    lon = torch.arange(16, dtype=torch.float64) * 2 * np.pi / 16
    wave = torch.cos(3 * lon).expand(1, 1, 8, 16)
    shifted = torch.cos(3 * lon + np.pi / 2).expand(1, 1, 8, 16)
    assert mse(0 * wave, wave) < mse(shifted, wave)
    assert float(amse_loss(shifted, wave, w)) < float(amse_loss(0 * wave, wave, w))
    # random phases: the expected AMSE is lowest at the true amplitude, not at zero
    phases = torch.as_tensor(rng.uniform(0, 2 * np.pi, (400, 1, 1, 1)))
    target = torch.cos(3 * lon + 0 * phases).expand(400, 1, 8, 16)
    losses = {s: float(amse_loss(s * torch.cos(3 * lon + phases), target, w)) for s in
              (0.0, 0.5, 1.0, 1.5)}  # fmt: skip
    assert min(losses, key=losses.get) == 1.0
    # finite gradients also where a forecast mode is exactly zero
    x = torch.zeros_like(truth, requires_grad=True)
    amse_loss(x, truth, w).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_amse_training_loss_takes_the_fields_centred_on_the_models_mean():
    """The trainer gave AMSE x/σ: with a mean of 52 σ (these statistics) the zonal-mean group
    acted as MSE and a forecast without the (unpredictable) zonal-mean anomaly scored better
    than one with an anomaly of the right size; on (x − μ)/σ it scores worse, as AMSE means."""
    model = _train(_world(6), steps=1, **KW)
    w = torch.as_tensor(np.asarray(area_weights(LAT))).reshape(1, 1, -1, 1)
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(64, 2, 8, 1, generator=g, dtype=torch.float64).expand(64, 2, 8, 16)
            for _ in range(2))  # fmt: skip
    truth = 260.0 + 5.0 * a  # the model's mean 260 and std 5
    loss = {alpha: float(forecast_loss(model.double(), 260.0 + 5.0 * alpha * b, truth, w, "amse"))
            for alpha in (0.0, 1.0)}  # fmt: skip
    assert loss[1.0] < loss[0.0], loss
    centred = amse_loss((260.0 + 5.0 * b - 260.0) / 5.0, a, w)
    assert loss[1.0] == pytest.approx(float(centred), rel=1e-12)


def test_training_with_amse_loss():
    ds = _world(20)
    losses: dict[str, list[float]] = {"l1": [], "amse": []}
    for kind in losses:
        model = _train(ds, steps=3, loss=kind, callback=lambda s, d, k=kind:
                               losses[k].append(d["loss"]), **KW)  # fmt: skip
    assert model.config["metadata"]["training"]["loss"] == "amse"
    assert losses["amse"] != losses["l1"]  # the optimised objective is the one asked for
    with pytest.raises(ValueError, match="loss must be one of"):
        _train(ds, steps=1, loss="mse", **KW)


def test_lr_schedule_warmup_and_cosine():
    lrs = [_lr_factor(s, 100, 10, 0.01) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.01 + 0.99 * 0.5)
    assert np.all(np.diff(lrs[10:]) <= 0) and lrs[-1] > 0.01


def test_sample_starts_skip_gaps():
    times = pd.date_range("2000-01-01", periods=8, freq="6h").delete(4).values
    starts = _sample_starts(times, np.timedelta64(6, "h"), 1)
    # (i-1, i, i+1) consecutive: i in 1, 2 before the gap; 5 after it
    np.testing.assert_array_equal(starts, [1, 2, 5])
    assert _sample_starts(times, np.timedelta64(6, "h"), 2).tolist() == [1]


def test_training_learns_the_travelling_wave():
    ds = _world(40)
    history = []
    model = _train(ds, validation=_world(12, seed=1), steps=60, lr=3e-3, log_every=10,
                           val_every=60, callback=lambda s, d: history.append(d["loss"]),
                           **KW)  # fmt: skip
    hist = model.config["metadata"]["history"]
    assert [h["step"] for h in hist] == [10, 20, 30, 40, 50, 60]
    assert "val_loss" in hist[-1]
    assert np.mean(history[-10:]) < 0.5 * np.mean(history[:5])
    assert not model.training and model.name == "fuxi"


def test_resume_reproduces_uninterrupted_run(tmp_path):
    ds = _world(20)
    kw = dict(KW, steps=6, checkpoint_every=3, rollout_steps=2, seed=3)
    full = _train(ds, checkpoint_dir=tmp_path / "a", **kw)

    def crash(step, _):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(ds, checkpoint_dir=tmp_path / "b", callback=crash, **kw)
    assert (tmp_path / "b" / "trainer.json").is_file()
    resumed = _train(ds, checkpoint_dir=tmp_path / "b", **kw)
    for (name, p), q in zip(full.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(p, q), name
    assert full.config["metadata"]["history"] == resumed.config["metadata"]["history"]
    # the checkpoint directory is a loadable model
    loaded = load_model(tmp_path / "b")
    x = torch.randn(1, 2, 2, 8, 16) + 260
    with torch.no_grad():
        assert torch.equal(loaded(x), resumed(x))
    with pytest.raises(ValueError, match="other settings"):
        _train(ds, checkpoint_dir=tmp_path / "b", **dict(kw, steps=7))


class _Killed(BaseException):
    """A process killed mid-write (not an Exception: nothing may catch and carry on)."""


def test_kill_while_writing_a_checkpoint_resumes_bit_exactly(tmp_path, monkeypatch):
    """Issue 20 item 5: a run killed between the files of its checkpoint (here at the 2nd and
    4th rename of the step-6 checkpoint) resumes from the previous complete checkpoint and
    ends bit-identical to an uninterrupted run (before, it resumed from a mixture of step-6
    weights and the step-3 trainer state)."""
    ds = _world(20)
    kw = dict(KW, steps=6, checkpoint_every=3, seed=3)
    full = _train(ds, checkpoint_dir=tmp_path / "full", **kw)
    real, real_link = os.replace, os.link  # (a new file is published by a hard link)
    for k in (2, 4):
        armed, calls = [], []

        def dying(a, b, armed=armed, calls=calls, k=k, op=real):
            if armed:
                calls.append(a)
                if len(calls) == k:
                    raise _Killed
            return op(a, b)

        def arm(step, _, armed=armed):
            if step == 6:  # the callback runs before that step's checkpoint is written
                armed.append(True)

        monkeypatch.setattr(os, "replace", dying)
        monkeypatch.setattr(os, "link", lambda a, b, d=dying: d(a, b, op=real_link))
        with pytest.raises(_Killed):
            _train(ds, checkpoint_dir=tmp_path / f"k{k}", callback=arm, **kw)
        monkeypatch.setattr(os, "replace", real)
        monkeypatch.setattr(os, "link", real_link)
        resumed = _train(ds, checkpoint_dir=tmp_path / f"k{k}", **kw)
        for (name, p), q in zip(full.net.state_dict().items(), resumed.net.state_dict().values()):
            assert torch.equal(p, q), (k, name)
        assert full.config["metadata"]["history"] == resumed.config["metadata"]["history"]


def test_incomplete_or_corrupt_training_checkpoints_are_refused(tmp_path):
    """Resume is bit-exact or refused: a corrupt optimizer state, a checkpoint without its
    manifest, or a directory that is not a training checkpoint raise before any step."""
    from xfuxi.files import OutputExistsError
    from xfuxi.models.checkpoint import CheckpointError, ChecksumError

    ds = _world(20)
    kw = dict(KW, steps=2, checkpoint_every=1, seed=3)
    _train(ds, checkpoint_dir=tmp_path / "a", **kw)
    steps = []
    record = lambda step, _: steps.append(step)  # noqa: E731
    opt = tmp_path / "a" / "optimizer.safetensors"
    opt.write_bytes(opt.read_bytes()[:-8])
    with pytest.raises(ChecksumError, match=r"cannot resume from .*a: .*optimizer\.safetensors"):
        _train(ds, checkpoint_dir=tmp_path / "a", callback=record, **kw)
    _train(ds, checkpoint_dir=tmp_path / "b", **kw)
    (tmp_path / "b" / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="cannot resume from .*no manifest"):
        _train(ds, checkpoint_dir=tmp_path / "b", callback=record, **kw)
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not an xfuxi training checkpoint"):
        _train(ds, checkpoint_dir=user, callback=record, resume=False, **kw)
    assert steps == [] and (user / "notes.txt").read_text() == "mine"
    # a model checkpoint is not a training checkpoint, nor replaced by one
    from xfuxi.models.checkpoint import save_model

    model = _train(ds, **dict(kw, steps=1, checkpoint_every=1))
    save_model(model, tmp_path / "model")
    with pytest.raises(OutputExistsError, match="'forecast-model' output"):
        _train(ds, checkpoint_dir=tmp_path / "model", callback=record, **kw)
    assert steps == []


def test_fine_tune_from_model_keeps_caller_model():
    ds = _world(20)
    base = _train(ds, steps=2, **KW)
    before = [p.clone() for p in base.parameters()]
    tuned = _train(ds, model=base, steps=2, rollout_steps=3, batch_size=2,
                   grad_checkpointing=True)  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(before, base.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(before, tuned.parameters()))
    assert tuned.channels == base.channels


def test_fine_tune_of_a_single_time_input_model_stays_single_time(tmp_path):
    from xfuxi.models.base import with_single_time_input

    ds = _world(20)
    one = with_single_time_input(_train(ds, steps=1, **KW))
    tuned = _train(ds, model=one, steps=2, batch_size=2, checkpoint_dir=tmp_path / "ft",
                   checkpoint_every=2)  # fmt: skip
    for m in (tuned, load_model(tmp_path / "ft")):
        assert m.input_times == 1
        x = torch.randn(1, 2, m.n_channels, *m.grid_shape) * m._std + m._mean
        y = x.clone()
        y[:, 0] = x[:, 0] + m._std[0]
        with torch.no_grad():
            torch.testing.assert_close(m(x), m(y), rtol=0, atol=0)


def test_bad_settings_and_data():
    ds = _world(8)
    with pytest.raises(ValueError, match="steps"):
        _train(ds, steps=0, **KW)
    with pytest.raises(SchemaError, match="need at least batch_size"):
        _train(ds.isel(time=slice(0, 4)), steps=1, **KW)
    bad = ds.copy(deep=True)
    bad["temperature"][1, 0, 0, 0] = np.nan
    with pytest.raises(SchemaError, match="NaN"):
        _train(bad, steps=1, **KW)


def test_torchrun_ddp_two_processes_matches_single_process(tmp_path):
    """`xfuxi train` under torchrun (gloo, 2 CPU processes) = one process with the same batch."""
    ds = _world(20)
    path = tmp_path / "train.nc"
    ds.to_netcdf(path)
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "xfuxi.cli", "--no-progress", "train", "--train", str(path), "--validation",
        "none", "--preset", "tiny", "--steps", "3", "--batch-size", "4", "--warmup-steps", "1",
        "--checkpoint-every", "3", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    ddp = load_model(out)
    single = _train(ds, preset="tiny", steps=3, batch_size=4, warmup_steps=1)
    for (name, p), q in zip(single.net.state_dict().items(), ddp.net.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    assert ddp.config["metadata"]["training"]["world_size"] == 2


def test_cascade_stage_samples_start_from_the_lead_models_forecast():
    """FuXi's cascade: a later stage trains on the earlier stage's forecasts, not on truth."""
    from xfuxi.models.base import wrap_model

    class AddOne(torch.nn.Module):
        def forward(self, x):
            return x[:, 1] + 1.0

    lead = wrap_model(AddOne(), channels=[("temperature", 500.0)], latitude=LAT, longitude=LON)
    data = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 1, 8, 16)
    idx = torch.tensor([1, 4])
    prev, curr, at = start_states(data, idx, lead, 3)
    # three steps of +1 from the true state at idx: (idx + 2, idx + 3), valid at idx + 3
    assert torch.equal(curr[:, 0, 0, 0], idx.float() + 3)
    assert torch.equal(prev[:, 0, 0, 0], idx.float() + 2)
    assert at.tolist() == [4, 7]
    assert start_states(data, idx, None, 0)[2].tolist() == [1, 4]
    # a perfect stage after the lead model: loss 0 only if the targets are after the lead steps
    w = torch.ones(1, 1, 8, 1)
    assert float(_rollout_loss(lead, lead, data, np.array([1, 4]), 2, w, lead, 3)) == 0.0
    assert float(_rollout_loss(lead, lead, data, np.array([1, 4]), 2, w)) == 0.0

    # a lead model that adds 2 per step leaves the stage 3 off its targets after 3 steps
    class AddTwo(torch.nn.Module):
        def forward(self, x):
            return x[:, 1] + 2.0

    fast = wrap_model(AddTwo(), channels=[("temperature", 500.0)], latitude=LAT, longitude=LON)
    got = _rollout_loss(lead, lead, data, np.array([1, 4]), 2, w, fast, 3)
    assert float(got) == pytest.approx(3.0)


def test_fine_tune_on_lead_model_forecasts_and_resume_signature(tmp_path):
    ds = _world(30)
    base = _train(ds, steps=2, **KW)
    kw = dict(KW, steps=3, rollout_steps=2, lead_steps=4, checkpoint_every=3)
    kw.pop("stats")
    tuned = _train(ds, model=base, checkpoint_dir=tmp_path / "m", **kw)
    assert not all(torch.equal(a, b) for a, b in zip(base.parameters(), tuned.parameters()))
    training = tuned.config["metadata"]["training"]
    assert training["lead_steps"] == 4 and len(training["lead_model"]) == 64
    # the same run with another lead model is not resumed from this checkpoint
    other = _train(ds, steps=2, **dict(KW, seed=5))
    with pytest.raises(ValueError, match="other settings"):
        _train(ds, model=base, lead_model=other, checkpoint_dir=tmp_path / "m", **kw)
    with pytest.raises(ValueError, match="lead_steps is 0"):
        _train(ds, model=base, lead_model=other, steps=1, **dict(KW, stats=None))
    with pytest.raises(ValueError, match="needs a model to start from"):
        _train(ds, lead_steps=2, steps=1, **KW)
    with pytest.raises(SchemaError, match="samples of 33 consecutive"):
        _train(ds, model=base, lead_steps=30, steps=1, **dict(KW, stats=None))


def test_config_is_saved_with_the_checkpoint_and_the_model(tmp_path):
    """Issue 19 item 3: the configuration used is saved as JSON with every checkpoint."""
    import json

    ds = _world(12)
    cfg = TrainConfig(preset="tiny", steps=2, batch_size=4, warmup_steps=1, lr=2e-3, seed=4)
    cfg = cfg.replace(checkpoint_dir=tmp_path / "c")
    assert cfg.checkpoint_dir == str(tmp_path / "c")  # a path is kept as a string (JSON)
    model = train_forecast(ds, config=cfg, stats=_stats(), progress=False)
    saved = json.loads((tmp_path / "c" / "trainer.json").read_text())["config"]
    assert TrainConfig.from_dict(saved) == cfg
    assert TrainConfig.from_dict(model.config["metadata"]["train_config"]) == cfg
    # a dict is accepted as the configuration too
    again = train_forecast(ds, config=cfg.replace(checkpoint_dir=None).to_dict(), stats=_stats(),
                           progress=False)  # fmt: skip
    for p, q in zip(model.net.state_dict().values(), again.net.state_dict().values()):
        assert torch.equal(p, q)


def test_old_keyword_arguments_still_work_with_a_deprecation_warning(tmp_path):
    ds = _world(12)
    cfg = TrainConfig(preset="tiny", steps=2, batch_size=4, warmup_steps=1, seed=2)
    new = train_forecast(ds, config=cfg, stats=_stats(), progress=False)
    with pytest.warns(DeprecationWarning, match=r"config=TrainConfig\(.*batch_size=\.\.\."):
        old = train_forecast(ds, preset="tiny", steps=2, batch_size=4, warmup_steps=1, seed=2,
                             stats=_stats(), progress=False)  # fmt: skip
    for p, q in zip(new.net.state_dict().values(), old.net.state_dict().values()):
        assert torch.equal(p, q)
    with pytest.raises(TypeError, match="stepz"):
        train_forecast(ds, stepz=2, progress=False)
    # checkpoint_dir and device moved into the configuration
    with pytest.warns(
        DeprecationWarning, match=r"pass config=TrainConfig\(checkpoint_dir=\.\.\., device=\.\.\.\)"
    ):
        moved = train_forecast(ds, config=cfg, stats=_stats(), checkpoint_dir=tmp_path / "old",
                               device=torch.device("cpu"), progress=False)  # fmt: skip
    assert (tmp_path / "old" / "trainer.json").is_file()
    assert moved.config["metadata"]["train_config"]["device"] == "cpu"
    for p, q in zip(new.net.state_dict().values(), moved.net.state_dict().values()):
        assert torch.equal(p, q)


def test_train_config_rejects_bad_values_naming_the_field():
    for bad, match in (
        ({"steps": 0}, "TrainConfig.steps must be an integer >= 1"),
        ({"lr": 0.0}, "TrainConfig.lr"),
        ({"min_lr_ratio": 2.0}, "TrainConfig.min_lr_ratio"),
        ({"anomaly_weight": -1.0}, "TrainConfig.anomaly_weight"),
        ({"grad_clip": float("inf")}, "TrainConfig.grad_clip"),
        ({"variables": "temperature"}, "TrainConfig.variables"),
        ({"loss": "mse"}, "TrainConfig.loss"),
        ({"checkpoint_dir": 3}, "TrainConfig.checkpoint_dir must be a path or None"),
        ({"device": 3}, "TrainConfig.device must be a torch device or None"),
    ):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)
    assert TrainConfig(variables=["temperature"]).variables == ("temperature",)
    assert TrainConfig(device=torch.device("cpu")).device == "cpu"  # kept by name (JSON)


def test_cli_train_flags_come_from_the_config():
    """`xfuxi train` builds its flags from TrainConfig: every field is a flag (but
    checkpoint_dir, which is --out)."""
    import argparse
    import dataclasses

    from xfuxi.cli.common import COMMANDS

    add, _ = COMMANDS["train"]
    parser = argparse.ArgumentParser()
    add(parser)
    flags = {s for a in parser._actions for s in a.option_strings}
    for f in dataclasses.fields(TrainConfig):
        flag = "--out" if f.name == "checkpoint_dir" else "--" + f.name.replace("_", "-")
        assert flag in flags, f.name
    assert "--checkpoint-dir" not in flags
    args = parser.parse_args(["--out", "x", "--steps", "7", "--min-lr-ratio", "0.1",
                              "--no-resume", "--loss", "amse"])  # fmt: skip
    from xfuxi.config import from_arguments

    cfg = from_arguments(TrainConfig, args)
    assert (cfg.steps, cfg.min_lr_ratio, cfg.resume, cfg.loss) == (7, 0.1, False, "amse")
    assert cfg.batch_size == TrainConfig().batch_size


def test_input_perturbations_are_scaled_state_differences_drawn_reproducibly():
    from xfuxi.training.forecast import input_perturbations

    data = torch.randn(30, 2, 8, 16, generator=torch.Generator().manual_seed(0))
    a = input_perturbations(data, 5, 0.2, seed=1, step=7)
    assert a.shape == (5, 2, 8, 16)
    torch.testing.assert_close(a, input_perturbations(data, 5, 0.2, seed=1, step=7))
    assert not torch.equal(a, input_perturbations(data, 5, 0.2, seed=1, step=8))
    # each is 0.2 × the difference of two of the states
    diffs = 0.2 * (data[:, None] - data[None, :])  # (30, 30, ...)
    for k in range(5):
        assert bool((diffs - a[k]).abs().amax((-3, -2, -1)).min() < 1e-6)


def test_training_with_input_perturbations(tmp_path):
    """Perturbed inputs change the optimised objective (the targets stay the truth); the
    setting is part of the resume signature and of the model's metadata."""
    ds = _world(20)
    losses: dict[float, list[float]] = {0.0: [], 0.3: []}
    for scale in losses:
        model = _train(
            ds,
            steps=3,
            input_perturbation=scale,
            checkpoint_dir=tmp_path / str(scale),
            callback=lambda s, d, k=scale: losses[k].append(d["loss"]),
            **KW,
        )
    assert losses[0.3][0] > losses[0.0][0]  # harder: the inputs are off the truth
    assert model.config["metadata"]["training"]["input_perturbation"] == 0.3
    with pytest.raises(ValueError, match="other settings"):
        _train(ds, steps=3, input_perturbation=0.2, checkpoint_dir=tmp_path / "0.3", **KW)
    with pytest.raises(ValueError, match="input_perturbation"):
        TrainConfig(input_perturbation=-0.1)


def _cycled_states(ds, times, noise: float, members: int = 3, seed: int = 0) -> xr.DataArray:
    """Input pairs at ``times`` (second time) as a cycle would store them: truth + noise."""
    from xfuxi.data.channels import channel_name, channels_of, stack

    chans = channels_of(ds)
    arr = stack(ds, chans).transpose("time", "channel", "latitude", "longitude")
    idx = [int(np.nonzero(ds["time"].values == t)[0][0]) for t in times]
    pairs = np.stack([arr.values[[i - 1, i]] for i in idx])[:, None]  # (T, 1, 2, C, H, W)
    rng = np.random.default_rng(seed)
    pairs = pairs + noise * rng.standard_normal((len(idx), members, *pairs.shape[2:]))
    return xr.DataArray(
        pairs.astype("float32"),
        dims=("time", "member", "pair", "channel", "latitude", "longitude"),
        coords={"time": np.asarray(times), "channel": [channel_name(c) for c in chans],
                "pair": np.array([-6, 0], dtype="m8[h]").astype("m8[ns]")},
    )  # fmt: skip


def test_a_sample_from_cycled_states_is_the_sample_from_the_truth_when_they_agree():
    """The cycled input path gives exactly the regular loss when the analysed pairs are the
    true ones (so the targets are matched to the right times), and a larger one with errors."""
    from xfuxi.data.channels import channel_name
    from xfuxi.training.samples import CycledStarts

    ds = _world(20)
    model = _train(ds, steps=1, **KW)
    data = torch.from_numpy(
        np.stack([ds["temperature"].sel(level=lev).values for lev in (500, 850)], axis=1)
    )
    w = torch.as_tensor(np.asarray(area_weights(LAT)), dtype=torch.float32).view(1, 1, -1, 1)
    starts = _sample_starts(ds["time"].values, model.timestep, 2)
    times = ds["time"].values[[5, 9, 12]]
    names = [channel_name(c) for c in model.channels]
    exact = CycledStarts(_cycled_states(ds, times, 0.0), ds["time"].values, starts, names,
                         (len(LAT), len(LON)), model.timestep, torch.device("cpu"))  # fmt: skip
    prev, curr, idx = exact.draw(4, seed=0, step=0)
    with torch.no_grad():
        a = _rollout_loss(model, model, data, None, 2, w, inputs=(prev, curr, idx))
        b = _rollout_loss(model, model, data, idx.numpy(), 2, w)
        noisy = CycledStarts(_cycled_states(ds, times, 3.0), ds["time"].values, starts, names,
                             (len(LAT), len(LON)), model.timestep, torch.device("cpu"))  # fmt: skip
        c = _rollout_loss(model, model, data, None, 2, w, inputs=noisy.draw(4, seed=0, step=0))
    torch.testing.assert_close(a, b)
    assert float(c) > float(a)
    assert set(idx.tolist()) <= {5, 9, 12}


def test_training_from_cycled_states_and_its_refusals(tmp_path):
    ds = _world(20)
    times = ds["time"].values[[4, 6, 8, 10]]
    states = _cycled_states(ds, times, 2.0)
    losses: dict[str, list[float]] = {"truth": [], "cycled": []}
    for key, extra in (("truth", {}), ("cycled", {"cycled_states": states})):
        model = _train(
            ds, steps=3, cycled_fraction=0.5, checkpoint_dir=tmp_path / key,
            callback=lambda s, d, k=key: losses[k].append(d["loss"]), **extra, **KW,
        )  # fmt: skip
    assert losses["cycled"][0] > losses["truth"][0]  # half the batch starts off the truth
    meta = model.config["metadata"]["training"]
    assert meta["cycled_fraction"] == 0.5 and len(meta["cycled_states"]) == 64
    with pytest.raises(ValueError, match="other settings"):  # other states: no resume
        _train(ds, steps=3, cycled_fraction=0.5, checkpoint_dir=tmp_path / "cycled",
               cycled_states=_cycled_states(ds, times, 2.0, seed=1), **KW)  # fmt: skip
    bad = {
        "channels": states.assign_coords(channel=["a", "b"]),
        "grid": states.isel(longitude=slice(0, 8)),
        "offsets": states.assign_coords(pair=np.array([-12, 0], dtype="m8[h]").astype("m8[ns]")),
        "NaN": states.where(states.time != times[0]),
        "training period": states.assign_coords(time=states.time + np.timedelta64(3650, "D")),
        "dims": states.isel(member=0),
    }
    for arr in bad.values():  # each refused, its error naming cycled_states
        with pytest.raises(ValueError, match="cycled_states"):
            _train(ds, steps=1, cycled_states=arr, **KW)
    with pytest.raises(ValueError, match="cycled_fraction"):
        TrainConfig(cycled_fraction=1.5)


def test_cli_train_refuses_a_path_that_is_not_a_cycling_store(tmp_path, capsys):
    from xfuxi.cli import main

    with pytest.raises(SystemExit, match="--cycled-states: .* is not a cycling store"):
        main(["train", "--cycled-states", str(tmp_path), "--out", str(tmp_path / "m")])


def test_resume_on_other_data_of_the_same_length_is_refused(tmp_path):
    # the signature held the number of samples only (the statistics, computed from the
    # data, differ with them)
    ds, other = _world(seed=0), _world(seed=5)
    _train(ds, steps=2, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"other settings \(\['data', 'stats'\]\)"):
        _train(other, steps=2, checkpoint_dir=tmp_path)
    _train(ds, steps=2, checkpoint_dir=tmp_path)  # the same data resume


def test_resume_with_other_validation_settings_is_refused(tmp_path):
    # val_every and val_samples were not in the signature: the history mixed validation
    # losses over other samples and intervals
    ds, val = _world(seed=0), _world(seed=1)
    _train(ds, steps=2, checkpoint_dir=tmp_path, validation=val, val_every=1)
    with pytest.raises(ValueError, match=r"other settings \(\['validation'\]\)"):
        _train(ds, steps=2, checkpoint_dir=tmp_path, validation=val, val_every=2)
    with pytest.raises(ValueError, match=r"other settings \(\['validation'\]\)"):
        _train(ds, steps=2, checkpoint_dir=tmp_path, validation=_world(seed=2), val_every=1)
    _train(ds, steps=2, checkpoint_dir=tmp_path, validation=val, val_every=1)  # the same


def test_an_interrupted_training_closes_its_progress_bar():
    """The bar stayed in tqdm's instances after Ctrl-C while the traceback lived (IPython
    keeps the last one): the next bar of the session was drawn a line lower."""
    from tqdm import tqdm as std_tqdm

    def crash(step, _):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as interrupted:
        _train(_world(12), callback=crash, progress=True, **dict(KW, steps=4, rollout_steps=1))
    open_bars = [b for b in list(getattr(std_tqdm, "_instances", [])) if "train" in str(b.desc)]
    assert open_bars == []
    del interrupted
