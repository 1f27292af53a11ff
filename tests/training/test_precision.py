"""The trainers' ``precision`` setting: float32 (default) or bfloat16 mixed precision.

bfloat16 runs the forward pass and the loss under ``torch.autocast`` (on the CPU here; the
CUDA test is in test_distributed.py); the weights, gradients, optimizer state and saved
checkpoints stay float32 (issue 26, item 3).
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from tests import tiny
from xfuxi.models.ens import load_perturbation
from xfuxi.models.precision import autocast
from xfuxi.models.registry import load_model
from xfuxi.models.training_state import load_training_state
from xfuxi.training.config import PerturbationTrainConfig, TrainConfig
from xfuxi.training.da_config import DAConfig
from xfuxi.training.ens import train_perturbation
from xfuxi.training.forecast import train_forecast

FORECAST = dict(preset="tiny", steps=2, batch_size=4, warmup_steps=1, checkpoint_every=1,
                variables=("temperature", "passive_tracer"), val_every=1,
                val_samples=4)  # fmt: skip
ENS = dict(members=2, rollout=1, iterations=2, batch_size=4, lr=1e-2, validate_every=100,
           log_every=1)  # fmt: skip


@contextlib.contextmanager
def layer_dtypes():
    """Collect the output dtypes of every Linear and Conv2d run inside the block."""
    seen: set[torch.dtype] = set()

    def hook(module, args, output):
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            seen.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def _forecast(start, precision=None, **kw):
    """``start`` fine-tuned for two steps: (model, the step losses, the layers' dtypes)."""
    cfg = {**FORECAST, **kw} if precision is None else {**FORECAST, **kw, "precision": precision}
    losses = []
    with layer_dtypes() as seen:
        fm = train_forecast(tiny.dataset(24), config=TrainConfig(**cfg), model=start,
                            validation=tiny.dataset(8, seed=1),
                            callback=lambda step, info: losses.append(info["loss"]),
                            progress=False)  # fmt: skip
    return fm, losses, seen


@pytest.fixture(scope="module")
def start():
    """A tiny FuXi network after one float32 step (the fine-tuning runs start from it)."""
    cfg = TrainConfig(**{**FORECAST, "steps": 1})
    return train_forecast(tiny.dataset(24), config=cfg, progress=False)


def _same_direction(start: dict, a: dict, b: dict) -> None:
    """The updates ``a - start`` and ``b - start`` differ, but point the same way.

    Adam's first steps move each weight by about ±lr whatever its gradient's size, so where a
    gradient is near zero bfloat16 rounding can flip the sign of that weight's step: the
    updates are compared as whole vectors (cosine similarity and length), not weight by weight.
    """
    assert list(a) == list(b) == list(start)
    u = torch.cat([(a[k] - start[k]).flatten() for k in a])
    v = torch.cat([(b[k] - start[k]).flatten() for k in a])
    assert u.norm() > 0 and not torch.equal(u, v)
    assert float(torch.nn.functional.cosine_similarity(u, v, dim=0)) > 0.8
    assert float(u.norm() / v.norm()) == pytest.approx(1, abs=0.2)


def test_forecast_bfloat16_step_on_cpu_runs_under_autocast_and_stays_near_float32(start):
    bf, bf_losses, bf_dtypes = _forecast(start, "bfloat16")
    fp, fp_losses, fp_dtypes = _forecast(start, "float32")
    assert bf_dtypes == {torch.bfloat16}  # autocast was on for every matmul and convolution
    assert fp_dtypes == {torch.float32}
    assert all(math.isfinite(v) for v in bf_losses) and len(bf_losses) == 2
    # the first loss is the same network's: bfloat16 rounds it (8-bit mantissa) but stays close
    assert bf_losses[0] != fp_losses[0]
    assert bf_losses[0] == pytest.approx(fp_losses[0], rel=2e-2)
    assert all(p.dtype == torch.float32 for p in bf.net.parameters())
    # the weights moved, and as the float32 step moved them (to bfloat16 rounding)
    _same_direction(start.net.state_dict(), bf.net.state_dict(), fp.net.state_dict())
    assert bf.config["metadata"]["train_config"]["precision"] == "bfloat16"
    assert bf.config["metadata"]["training"]["precision"] == "bfloat16"
    assert "val_loss" in bf.config["metadata"]["history"][-1]


def test_forecast_float32_is_the_default_and_unchanged(start):
    default, d_losses, d_dtypes = _forecast(start)
    explicit, e_losses, _ = _forecast(start, "float32")
    assert d_dtypes == {torch.float32}  # no autocast unless asked for
    assert d_losses == e_losses
    for (name, p), q in zip(default.net.state_dict().items(), explicit.net.state_dict().values()):
        assert torch.equal(p, q), name
    assert TrainConfig().precision == "float32"
    assert "precision" not in default.config["metadata"]["training"]  # older checkpoints resume


class _Stop(Exception):
    pass


def test_forecast_bfloat16_checkpoint_is_float32_and_resumes(start, tmp_path):
    whole, _, _ = _forecast(start, "bfloat16")

    def stop(step, info):  # after step 2, before its checkpoint: step 1's is on disk
        if step == 2:
            raise _Stop

    cfg = TrainConfig(**{**FORECAST, "precision": "bfloat16"})
    with pytest.raises(_Stop):
        train_forecast(tiny.dataset(24), config=cfg.replace(checkpoint_dir=tmp_path),
                       model=start, validation=tiny.dataset(8, seed=1), callback=stop,
                       progress=False)  # fmt: skip
    saved = load_model(tmp_path)
    assert all(v.dtype == torch.float32 for v in saved.net.state_dict().values())
    state = load_training_state(tmp_path, kind="forecast-training",
                                state_format="xfuxi-trainer/1").state  # fmt: skip
    assert state["config"]["precision"] == "bfloat16" and state["step"] == 1
    with pytest.raises(ValueError, match=r"other settings \(\['precision'"):
        train_forecast(tiny.dataset(24),
                       config=cfg.replace(precision="float32", checkpoint_dir=tmp_path),
                       model=start, progress=False)  # fmt: skip
    resumed = train_forecast(tiny.dataset(24), config=cfg.replace(checkpoint_dir=tmp_path),
                             model=start, validation=tiny.dataset(8, seed=1),
                             progress=False)  # fmt: skip
    for (name, p), q in zip(resumed.net.state_dict().items(), whole.net.state_dict().values()):
        assert torch.equal(p, q), name


def test_ens_bfloat16_step_on_cpu():
    model, data = tiny.model(), tiny.dataset(24)
    runs = {}
    for precision in ("bfloat16", "float32"):
        vae = tiny.vae(model)  # (made outside: a new module runs a float32 calibration pass)
        with layer_dtypes() as seen:
            vae, hist = train_perturbation(
                model, data, config=PerturbationTrainConfig(**ENS, precision=precision),
                perturbation=vae, validation=tiny.dataset(8, seed=1), progress=False,
            )  # fmt: skip
        runs[precision] = vae, hist, seen
    (bf, bf_hist, bf_dtypes), (fp, fp_hist, fp_dtypes) = runs["bfloat16"], runs["float32"]
    assert bf_dtypes == {torch.bfloat16} and fp_dtypes == {torch.float32}
    assert all(math.isfinite(v) for v in bf_hist["loss"]) and len(bf_hist["loss"]) == 2
    assert bf_hist["crps"][0] != fp_hist["crps"][0]
    assert bf_hist["crps"][0] == pytest.approx(fp_hist["crps"][0], rel=2e-2)
    assert all(p.dtype == torch.float32 for p in bf.parameters())
    _same_direction(tiny.vae(model).state_dict(), bf.state_dict(), fp.state_dict())


def test_autocast_context():
    lin = torch.nn.Linear(3, 2)
    with autocast(torch.device("cpu"), "bfloat16"):
        assert lin(torch.ones(1, 3)).dtype == torch.bfloat16
    with autocast("cpu", "float32"):
        assert lin(torch.ones(1, 3)).dtype == torch.float32
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast("cpu", "half")


@pytest.mark.parametrize("cls", [TrainConfig, PerturbationTrainConfig, DAConfig])
def test_bad_precision_is_refused(cls):
    assert cls().precision == "float32"
    name = cls.__name__
    with pytest.raises(
        ValueError,
        match=rf"{name}\.precision must be one of \('float32', 'bfloat16'\); got 'float64'",
    ):
        cls(precision="float64")
    with pytest.raises(ValueError, match=rf"{name}\.precision must be one of"):
        cls(precision=torch.bfloat16)
    with pytest.raises(
        ValueError, match=rf"{name}\.precision 'float16' is not supported.*bfloat16"
    ):
        cls(precision="float16")
    assert cls.from_dict(cls(precision="bfloat16").to_dict()).precision == "bfloat16"


@pytest.mark.parametrize("command", ["train", "train-ens", "train-da"])
def test_cli_has_a_precision_flag(command, capsys):
    import xfuxi.cli as cli

    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    assert "--precision {float32,bfloat16}" in capsys.readouterr().out


def test_ens_bfloat16_checkpoint_is_float32_and_resumes_only_in_bfloat16(tmp_path):
    model, data = tiny.model(), tiny.dataset(24)
    cfg = PerturbationTrainConfig(**ENS, precision="bfloat16", checkpoint_every=1)
    whole, _ = train_perturbation(model, data, config=cfg, perturbation=tiny.vae(model),
                                  progress=False)  # fmt: skip
    train_perturbation(model, data, config=cfg.replace(iterations=1, checkpoint_dir=tmp_path),
                       perturbation=tiny.vae(model), progress=False)  # fmt: skip
    saved = load_perturbation(tmp_path / "latest")
    assert all(v.dtype == torch.float32 for v in saved.state_dict().values())
    assert saved.metadata["precision"] == "bfloat16"
    with pytest.raises(ValueError, match="trained with precision 'bfloat16'.*'float32'"):
        train_perturbation(model, data,
                           config=cfg.replace(precision="float32", resume=True,
                                              checkpoint_dir=tmp_path),
                           perturbation=tiny.vae(model), progress=False)  # fmt: skip
    resumed, hist = train_perturbation(model, data,
                                       config=cfg.replace(resume=True, checkpoint_dir=tmp_path),
                                       perturbation=tiny.vae(model), progress=False)  # fmt: skip
    assert hist["iteration"] == [1, 2]
    for (name, p), q in zip(resumed.state_dict().items(), whole.state_dict().values()):
        assert torch.equal(p, q), name
