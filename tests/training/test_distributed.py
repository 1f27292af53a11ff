"""Distributed training: the forecast, FuXi-ENS and FuXi-DA trainers under ``torchrun``.

Two CPU processes (gloo) share each global batch; one step of theirs must equal one step of
a single process on the same global batch (to float32 rounding), and a checkpoint written
by the distributed run must resume to the uninterrupted result (issue 26, item 3).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import xfuxi.training.ens as ens_module
from tests import tiny, tiny_da
from xfuxi.models.ens import load_perturbation
from xfuxi.models.fuxi_da import load_da_model
from xfuxi.models.registry import load_model
from xfuxi.models.training_state import load_training_state
from xfuxi.training.config import PerturbationTrainConfig, TrainConfig
from xfuxi.training.da import DAConfig, train_da
from xfuxi.training.ens import train_perturbation
from xfuxi.training.forecast import train_forecast

ROOT = Path(__file__).resolve().parents[2]

FORECAST = dict(preset="tiny", steps=2, batch_size=4, warmup_steps=1, checkpoint_every=1,
                variables=("temperature", "passive_tracer"))  # fmt: skip
ENS = dict(members=2, rollout=1, iterations=2, batch_size=4, checkpoint_every=1, lr=1e-2,
           validate_every=100, log_every=1)  # fmt: skip
# a global batch of 4 (2 per process), the forecast term and channels dropped at random
DA = dict(steps=2, batch_size=4, leads=(1,), forecast_steps=1, sensor_channels=("wv6.9", "ir10.8"),
          frames=(0.0,), satellites=(90.0,), width=4, scales=2, checkpoint_every=1, val_every=1,
          log_every=1, lr=1e-2, channel_dropout=0.5)  # fmt: skip

# the same script runs both trainers; "interrupt" stops each after its first step's checkpoint
_SCRIPT = """
import sys
import xfuxi.training.ens as ens_module
from tests import tiny, tiny_da
from xfuxi.training.config import PerturbationTrainConfig, TrainConfig
from xfuxi.training.da import DAConfig, train_da
from xfuxi.training.ens import train_perturbation
from xfuxi.training.forecast import train_forecast

FORECAST, ENS, DA = {forecast!r}, {ens!r}, {da!r}
out, mode = sys.argv[1], sys.argv[2]


class Interrupted(Exception):
    pass


def stop_at_two(step, info):
    if mode == "interrupt" and step == 2:
        raise Interrupted


data = tiny.dataset(24)
try:
    train_forecast(data, config=TrainConfig(**FORECAST, checkpoint_dir=out + "/forecast"),
                   callback=stop_at_two, progress=False)
except Interrupted:
    pass
real, calls = ens_module.ensemble_loss, []


def loss_stopping_at_two(*args, **kwargs):
    calls.append(1)
    if mode == "interrupt" and len(calls) == 2:
        raise Interrupted
    return real(*args, **kwargs)


ens_module.ensemble_loss = loss_stopping_at_two
model = tiny.model()
try:
    train_perturbation(model, data,
                       config=PerturbationTrainConfig(**ENS, checkpoint_dir=out + "/ens"),
                       perturbation=tiny.vae(model), progress=False)
except Interrupted:
    pass
# FuXi-DA: "interrupt" stops after the first step (and its checkpoint); each process
# computes the loss of its half of the global batch only
import xfuxi.training.da as da_module

real_da_loss = da_module.da_loss


def half_batch_loss(network, model, samples, pick, **kwargs):
    assert len(pick) == DA["batch_size"] // 2 or kwargs["forecast_steps"] == 0, len(pick)
    return real_da_loss(network, model, samples, pick, **kwargs)


da_module.da_loss = half_batch_loss
stop = 1e-9 if mode == "interrupt" else None
train_da(tiny_da.truth(10), tiny_da.forecast_model(),
         config=DAConfig(**DA, max_minutes=stop, checkpoint_dir=out + "/da"),
         validation=tiny_da.truth(6, seed=5), progress=False)
"""


class _Interrupted(Exception):
    pass


def _torchrun(script: Path, out: Path, mode: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", str(script), str(out), mode]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]


def _single(tmp: Path, interrupt: bool, monkeypatch) -> tuple[Path, Path]:
    """The single-process runs: (forecast checkpoint dir, FuXi-ENS checkpoint dir)."""
    data = tiny.dataset(24)

    def stop_at_two(step, info):
        if interrupt and step == 2:
            raise _Interrupted

    try:
        train_forecast(data, config=TrainConfig(**FORECAST, checkpoint_dir=tmp / "forecast"),
                       callback=stop_at_two, progress=False)  # fmt: skip
    except _Interrupted:
        pass
    real, calls = ens_module.ensemble_loss, []

    def loss_stopping_at_two(*args, **kwargs):
        calls.append(1)
        if interrupt and len(calls) == 2:
            raise _Interrupted
        return real(*args, **kwargs)

    monkeypatch.setattr(ens_module, "ensemble_loss", loss_stopping_at_two)
    model = tiny.model()
    try:
        train_perturbation(model, data,
                           config=PerturbationTrainConfig(**ENS, checkpoint_dir=tmp / "ens"),
                           perturbation=tiny.vae(model), progress=False)  # fmt: skip
    except _Interrupted:
        pass
    monkeypatch.setattr(ens_module, "ensemble_loss", real)
    train_da(tiny_da.truth(10), tiny_da.forecast_model(),
             config=DAConfig(**DA, max_minutes=1e-9 if interrupt else None,
                             checkpoint_dir=tmp / "da"),
             validation=tiny_da.truth(6, seed=5), progress=False)  # fmt: skip
    return tmp / "forecast", tmp / "ens" / "latest"


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, what: str) -> None:
    # float32 rounding: the gradient all-reduce sums in another order than one process, and
    # Adam's normalised update can carry that to ~1e-6 in a weight after two steps; a wrong
    # batch, step or optimizer state moves weights by the learning rate (~1e-3)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        torch.testing.assert_close(sa[name], sb[name], rtol=1e-4, atol=1e-5,
                                   msg=f"{what}: {name}")  # fmt: skip


def test_torchrun_step_equals_single_process_and_ddp_checkpoint_resumes(tmp_path, monkeypatch):
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT.format(forecast=FORECAST, ens=ENS, da=DA))
    ddp = tmp_path / "ddp"
    _torchrun(script, ddp, "interrupt")
    # one step on two processes = one step of one process on the same global batch
    one_fc, one_ens = _single(tmp_path / "single1", True, monkeypatch)
    ddp_fc, ddp_ens = load_model(ddp / "forecast"), load_model(one_fc)
    _assert_same_weights(ddp_fc.net, ddp_ens.net, "forecast step 1")
    assert ddp_fc.config["metadata"]["training"]["world_size"] == 2
    start = tiny.vae(tiny.model())
    step1 = load_perturbation(ddp / "ens" / "latest")
    _assert_same_weights(step1, load_perturbation(one_ens), "FuXi-ENS step 1")
    state = load_training_state(ddp / "ens" / "latest", kind="perturbation-training",
                                state_format="xfuxi-perturbation-trainer/1").state  # fmt: skip
    assert state["world_size"] == 2  # the batch was shared, not run twice
    assert any(
        not torch.equal(p, q)
        for p, q in zip(step1.state_dict().values(), start.state_dict().values())
    )  # fmt: skip  - the step changed the module
    da_step1, da_state = _da_checkpoint(ddp / "da")
    one_da, one_state = _da_checkpoint(tmp_path / "single1" / "da")
    _assert_same_weights(da_step1, one_da, "FuXi-DA step 1")
    assert da_state["world_size"] == 2 and one_state["world_size"] == 1
    assert da_state["history"]["step"] == [1]
    # the losses recorded are the global batch's, as one process records them
    for key in ("loss", "l0", "lk", "val_l0"):
        np.testing.assert_allclose(da_state["history"][key], one_state["history"][key], rtol=1e-5)
    # the DDP checkpoints of step 1 resume (under torchrun) to the uninterrupted result
    _torchrun(script, ddp, "resume")
    whole_fc, whole_ens = _single(tmp_path / "single2", False, monkeypatch)
    _assert_same_weights(load_model(ddp / "forecast").net, load_model(whole_fc).net,
                         "forecast resumed")  # fmt: skip
    _assert_same_weights(load_perturbation(ddp / "ens" / "latest"),
                         load_perturbation(whole_ens), "FuXi-ENS resumed")  # fmt: skip
    assert load_model(ddp / "forecast").config["metadata"]["history"][-1]["step"] == 2
    da_whole, da_state = _da_checkpoint(ddp / "da")
    single_whole, single_state = _da_checkpoint(tmp_path / "single2" / "da")
    _assert_same_weights(da_whole, single_whole, "FuXi-DA resumed")
    assert da_state["history"]["step"] == [1, 2]
    np.testing.assert_allclose(da_state["history"]["loss"], single_state["history"]["loss"],
                               rtol=1e-5)  # fmt: skip


def _da_checkpoint(directory: Path) -> tuple[torch.nn.Module, dict]:
    """The network and the trainer's state in a FuXi-DA checkpoint directory."""
    state = load_training_state(directory / "latest", kind="da-training",
                                state_format="xfuxi-da-trainer/1").state  # fmt: skip
    return load_da_model(directory / "latest").net, state


def test_da_batch_not_divisible_by_processes_is_refused(monkeypatch):
    import xfuxi.training.da as da_module

    monkeypatch.setattr(da_module, "dist_info", lambda: (0, 3))
    with pytest.raises(ValueError, match="batch_size 4 is not divisible by 3 processes"):
        train_da(tiny_da.truth(10), tiny_da.forecast_model(), config=DAConfig(**DA),
                 progress=False)  # fmt: skip


def test_ens_batch_not_divisible_by_processes_is_refused(monkeypatch):
    monkeypatch.setattr(ens_module, "dist_info", lambda: (0, 3))
    model = tiny.model()
    with pytest.raises(ValueError, match="batch_size 4 is not divisible by 3 processes"):
        train_perturbation(model, tiny.dataset(12), config=PerturbationTrainConfig(**ENS),
                           progress=False)  # fmt: skip


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_forecast_training_and_inference_on_cuda_in_bfloat16():
    from xfuxi.forecasting.deterministic import forecast

    data = tiny.dataset(24)
    cfg = TrainConfig(**{**FORECAST, "checkpoint_every": 10})
    gpu = train_forecast(data, config=cfg.replace(device="cuda"), progress=False)
    cpu = train_forecast(data, config=cfg.replace(device="cpu"), progress=False)
    for (name, p), q in zip(gpu.net.state_dict().items(), cpu.net.state_dict().values()):
        torch.testing.assert_close(p.cpu(), q, rtol=1e-3, atol=1e-4, msg=name)
    fc32 = forecast(data, model=gpu, steps=2, device="cuda", progress=False)
    fc16 = forecast(data, model=gpu, steps=2, device="cuda", dtype="bfloat16", progress=False)
    diff = float(abs(fc32["temperature"] - fc16["temperature"]).max())
    assert 0 < diff < 2.0  # bfloat16 rounds (8 bits of mantissa), but stays close


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ens_training_on_cuda_matches_cpu():
    model = tiny.model()
    cfg = PerturbationTrainConfig(**{**ENS, "iterations": 1})
    data = tiny.dataset(24)
    gpu, _ = train_perturbation(model, data, config=cfg.replace(device="cuda"),
                                perturbation=tiny.vae(model), progress=False)  # fmt: skip
    cpu, _ = train_perturbation(tiny.model(), data, config=cfg.replace(device="cpu"),
                                perturbation=tiny.vae(model), progress=False)  # fmt: skip
    for (name, p), q in zip(gpu.state_dict().items(), cpu.state_dict().values()):
        torch.testing.assert_close(p.cpu(), q, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or not torch.cuda.is_bf16_supported(),
    reason="needs a CUDA device with bfloat16",
)
def test_forecast_training_step_on_cuda_in_bfloat16_mixed_precision(tmp_path):
    data = tiny.dataset(24)
    cfg = TrainConfig(**{**FORECAST, "checkpoint_every": 10})
    start = train_forecast(data, config=cfg.replace(steps=1, device="cpu"), progress=False)
    runs = {}
    for precision in ("bfloat16", "float32"):
        seen, losses = set(), []

        def hook(module, args, out, seen=seen):
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                seen.add(out.dtype)

        handle = torch.nn.modules.module.register_module_forward_hook(hook)
        try:
            run = cfg.replace(precision=precision, device="cuda",
                              checkpoint_dir=tmp_path / precision)  # fmt: skip
            fm = train_forecast(data, config=run, model=start,
                                callback=lambda step, info, losses=losses: losses.append(
                                    info["loss"]), progress=False)  # fmt: skip
        finally:
            handle.remove()
        runs[precision] = fm, losses, seen
    (bf, bf_losses, bf_seen), (fp, fp_losses, fp_seen) = runs["bfloat16"], runs["float32"]
    assert bf_seen == {torch.bfloat16} and fp_seen == {torch.float32}
    assert all(math.isfinite(v) for v in bf_losses) and len(bf_losses) == 2
    assert bf_losses[0] != fp_losses[0]
    assert bf_losses[0] == pytest.approx(fp_losses[0], rel=2e-2)
    saved = load_model(tmp_path / "bfloat16")
    assert all(v.dtype == torch.float32 for v in saved.net.state_dict().values())
    assert saved.config["metadata"]["training"]["precision"] == "bfloat16"
    s0, sb, sf = start.net.state_dict(), bf.net.state_dict(), fp.net.state_dict()
    u = torch.cat([(sb[k] - s0[k]).flatten() for k in s0])
    v = torch.cat([(sf[k] - s0[k]).flatten() for k in s0])
    assert u.norm() > 0 and not torch.equal(u, v)
    assert float(torch.nn.functional.cosine_similarity(u, v, dim=0)) > 0.8


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_da_training_on_cuda_matches_cpu():
    runs = {}
    for device in ("cuda", "cpu"):
        model = tiny_da.forecast_model()
        net, hist = train_da(tiny_da.truth(10), model, config=DAConfig(**DA, device=device),
                             progress=False)  # fmt: skip
        assert next(model.parameters()).device.type == "cpu"  # the caller's model stays put
        runs[device] = net, hist
    (gpu, h_gpu), (cpu, h_cpu) = runs["cuda"], runs["cpu"]
    np.testing.assert_allclose(h_gpu["loss"], h_cpu["loss"], rtol=1e-3)
    for (name, p), q in zip(gpu.state_dict().items(), cpu.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4, msg=name)
