"""Resume checks, input checks and distributed draws of the trainers (audit 46, training).

A resumed run must be the run that wrote the checkpoint (statistics, architecture, data,
frozen model, length); bad inputs get an error naming what is wrong; the random draws of a
distributed step are those of the single-process step.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import xarray as xr

from tests import tiny
from tests.models.test_ens import _model, _random_walk, _vae
from tests.training.test_forecast import KW, _stats, _train, _world
from xfuxi.data.schema import SchemaError
from xfuxi.models.base import NormStats
from xfuxi.models.fuxi import PRESETS
from xfuxi.training.config import PerturbationTrainConfig, TrainConfig
from xfuxi.training.ens import train_perturbation

ENS = dict(members=2, iterations=2, batch_size=2, lr=1e-2, checkpoint_every=2, validate_every=100)


# ------------------------------------------------------------------ train_forecast: resuming
def test_forecast_resume_with_other_statistics_is_refused(tmp_path):
    ds = _world(12)
    kw = {k: v for k, v in KW.items() if k != "stats"}
    _train(ds, stats=_stats(), steps=2, checkpoint_dir=tmp_path, **kw)
    other = NormStats(np.array([250.0, 250.0]), np.array([10.0, 10.0]), np.array([2.0, 2.0]))
    with pytest.raises(ValueError, match=r"other settings \(\['stats'\]\)"):
        _train(ds, stats=other, steps=2, checkpoint_dir=tmp_path, **kw)
    _train(ds, stats=_stats(), steps=2, checkpoint_dir=tmp_path, **kw)  # the same: resumes


@pytest.mark.parametrize(
    "change", [{"num_groups": 2}, {"window_size": (1, 1)}, {"embed_dim": 32}], ids=str
)
def test_forecast_resume_into_another_architecture_is_refused(tmp_path, change):
    # same tensor shapes (num_groups, window_size) resumed silently; other shapes failed in
    # torch's load_state_dict
    ds = _world(12)
    kw = {k: v for k, v in KW.items() if k != "preset"}
    _train(ds, preset="tiny", steps=2, checkpoint_dir=tmp_path, **kw)
    other = {**PRESETS["tiny"], **change}
    with pytest.raises(ValueError, match=r"other settings \(\['architecture'\]\)"):
        _train(ds, preset=other, steps=2, checkpoint_dir=tmp_path, **kw)
    _train(ds, preset=dict(PRESETS["tiny"]), steps=2, checkpoint_dir=tmp_path, **kw)


def test_forecast_checkpoint_without_the_new_keys_still_resumes(tmp_path, monkeypatch):
    # a checkpoint of an earlier release has no 'stats' or 'architecture' in its signature
    from xfuxi.training import forecast as fmod

    real = fmod._save_state

    def old_release(directory, model, opt, state, pool=None):
        sig = {k: v for k, v in state["signature"].items() if k not in ("stats", "architecture")}
        real(directory, model, opt, {**state, "signature": sig}, pool)

    ds = _world(12)
    monkeypatch.setattr(fmod, "_save_state", old_release)
    _train(ds, steps=2, checkpoint_dir=tmp_path, **KW)
    monkeypatch.setattr(fmod, "_save_state", real)
    steps = []
    _train(ds, steps=2, checkpoint_dir=tmp_path, callback=lambda s, d: steps.append(s), **KW)
    assert steps == []  # resumed at the end: no step trained again


def test_forecast_rerun_with_fewer_steps_names_both_counts(tmp_path):
    ds = _world(12)
    _train(ds, steps=3, checkpoint_dir=tmp_path, **KW)
    with pytest.raises(ValueError, match=r"3 steps.*this run asks for 2"):
        _train(ds, steps=2, checkpoint_dir=tmp_path, **KW)


# ------------------------------------------------------------------ train_forecast: inputs
def test_fine_tuning_with_other_stats_or_variables_is_refused():
    ds = _world(12)
    base = _train(ds, steps=1, **KW)
    kw = {k: v for k, v in KW.items() if k != "stats"}
    other = NormStats(np.array([0.0, 0.0]), np.array([1.0, 1.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="stats.*differ from those of the model"):
        _train(ds, model=base, stats=other, steps=1, **kw)
    with pytest.raises(ValueError, match=r"variables \('other',\).*model"):
        _train(ds, model=base, variables=("other",), steps=1, **kw)
    # the model's own are accepted
    _train(ds, model=base, stats=base.stats, variables=("temperature",), steps=1, **kw)


def test_training_data_of_a_wrong_layout_get_clear_errors():
    ds, model, data = _world(12), _model(), _random_walk(12, 0.3, 0)
    cfg = dict(iterations=1, batch_size=2)
    with pytest.raises(TypeError, match="training data must be an xarray.Dataset.*to_dataset"):
        _train(ds.temperature, steps=1, **KW)
    with pytest.raises(SchemaError, match="training data have an ensemble dim 'number'"):
        _train(xr.concat([ds, ds], "number"), steps=1, **KW)
    with pytest.raises(TypeError, match="training data must be an xarray.Dataset"):
        train_perturbation(model, data.temperature, config=cfg, progress=False)
    with pytest.raises(SchemaError, match="training data have an ensemble dim 'number'"):
        train_perturbation(model, xr.concat([data, data], "number"), config=cfg, progress=False)
    with pytest.raises(SchemaError, match=r"validation data have dims \['member2'\]"):
        train_perturbation(model, data, config=cfg, progress=False,
                           validation=data.expand_dims(member2=2))  # fmt: skip


def test_validation_data_errors_say_they_are_about_the_validation_data():
    ds = _world(12)
    other_grid = ds.isel(latitude=slice(0, 4))
    with pytest.raises(SchemaError, match="^validation data: .*grid"):
        _train(ds, validation=other_grid, steps=1, **KW)


def test_a_warmup_longer_than_the_run_warns_naming_both():
    with pytest.warns(UserWarning, match="warmup_steps 100 .* steps 5"):
        TrainConfig(steps=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TrainConfig(steps=5, warmup_steps=5)
        TrainConfig()


# ------------------------------------------------------------------ distributed draws
def test_input_perturbations_of_a_rank_are_its_rows_of_the_global_draw():
    from xfuxi.training.forecast import input_perturbations

    data = torch.randn(30, 2, 8, 16, generator=torch.Generator().manual_seed(0))
    whole = input_perturbations(data, 4, 0.2, seed=1, step=7)
    parts = [input_perturbations(data, 4, 0.2, 1, 7, rank=r, world=2) for r in range(2)]
    assert parts[0].shape == (2, 2, 8, 16)
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=0)


def test_cycled_draws_of_a_rank_are_its_rows_of_the_global_draw():
    from tests.training.test_forecast import _cycled_states
    from xfuxi.data.channels import channel_name, channels_of
    from xfuxi.training.samples import CycledStarts

    ds = _world(20)
    times = ds["time"].values[4:12]
    states = _cycled_states(ds, times, noise=0.5)
    starts = np.arange(1, 18)
    names = [channel_name(c) for c in channels_of(ds)]
    cyc = CycledStarts(states, ds["time"].values, starts, names, (8, 16),
                       np.timedelta64(6, "h"), torch.device("cpu"))  # fmt: skip
    whole = cyc.draw(4, 3, 5)
    parts = [cyc.draw(4, 3, 5, rank=r, world=2) for r in range(2)]
    for k in range(3):
        torch.testing.assert_close(torch.cat([p[k] for p in parts]), whole[k], rtol=0, atol=0)


# ------------------------------------------------------------------ train_perturbation
def test_ens_resume_on_other_data_validation_or_frozen_model_is_refused(tmp_path):
    model, data, val = _model(), _random_walk(30, 0.3, 0), _random_walk(20, 0.3, 1)
    cfg = PerturbationTrainConfig(**ENS, checkpoint_dir=str(tmp_path))
    train_perturbation(model, data, perturbation=_vae(), config=cfg, validation=val,
                       progress=False)  # fmt: skip
    run = dict(perturbation=_vae(), config=cfg, progress=False)
    with pytest.raises(ValueError, match=r"other settings \(data "):
        train_perturbation(model, _random_walk(30, 0.3, 7), validation=val, **run)
    with pytest.raises(ValueError, match=r"other settings \(validation "):
        train_perturbation(model, data, validation=_random_walk(20, 0.3, 9), **run)

    class Scaled(torch.nn.Module):
        def forward(self, x):
            return 1.01 * x[:, 1]

    other = tiny.model(Scaled(), residual=False, name=model.name)
    with pytest.raises(ValueError, match=r"other settings \(base_model_tensors "):
        train_perturbation(other, data, validation=val, **run)
    _, history = train_perturbation(model, data, validation=val, **run)  # the same: resumes
    assert history["iteration"] == [1, 2]


def test_ens_rerun_with_fewer_iterations_is_refused(tmp_path):
    model, data = _model(), _random_walk(30, 0.3, 0)
    cfg = PerturbationTrainConfig(**dict(ENS, iterations=4), checkpoint_dir=str(tmp_path))
    train_perturbation(model, data, perturbation=_vae(), config=cfg, progress=False)
    with pytest.raises(ValueError, match=r"4 iterations.*this run asks for \(3\)"):
        train_perturbation(model, data, perturbation=_vae(), config=cfg.replace(iterations=3),
                           progress=False)  # fmt: skip


def test_run_loop_refuses_a_start_past_the_total():
    import logging

    from tqdm import tqdm

    from xfuxi.training.loop import LoopPlan, run_loop

    plan = LoopPlan("step", 2, 1, 1, 1, None, {})
    with pytest.raises(ValueError, match="5 steps .* more than this run's 2"):
        run_loop(plan, 5, {"step": [], "val_step": []}, advance=lambda d: {},
                 validate=lambda d: None, save=lambda d: None, report=lambda d, r: None,
                 bar=tqdm(disable=True), logger=logging.getLogger())  # fmt: skip


def test_torchrun_with_input_perturbations_matches_single_process(tmp_path):
    """Each rank drew its perturbations from its own key: 5e-3 from the single process."""
    import os
    import subprocess
    import sys

    from xfuxi.models.registry import load_model

    ds = _world(20)
    ds.to_netcdf(tmp_path / "train.nc")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "xfuxi.cli", "--no-progress", "train", "--train", str(tmp_path / "train.nc"),
        "--validation", "none", "--preset", "tiny", "--steps", "3", "--batch-size", "4",
        "--warmup-steps", "1", "--checkpoint-every", "3", "--input-perturbation", "0.2",
        "--out", str(tmp_path / "ddp"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    ddp = load_model(tmp_path / "ddp")
    single = _train(ds, preset="tiny", steps=3, batch_size=4, warmup_steps=1,
                    input_perturbation=0.2)  # fmt: skip
    for (name, p), q in zip(single.net.state_dict().items(), ddp.net.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
