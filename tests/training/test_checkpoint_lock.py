"""One training run at a time per checkpoint directory (audit 60, concurrency F2/F4).

Each trainer (forecast, perturbation, DA) holds the lock ``.<name>.lock`` beside its
checkpoint directory for its whole run: a second run given the directory meanwhile fails at
once with OutputInUseError naming the directory and the holder; the lock is released (and
its file removed) when the run ends, however it ends; a trainer whose checkpoint directory
was changed by someone else is not told to use an overwrite option it does not have.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests import tiny_da
from tests.models.test_ens import _model, _random_walk, _vae
from tests.training.test_forecast import KW, _train, _world
from xfuxi.files import OutputExistsError, OutputInUseError, lock_output
from xfuxi.training import da as da_mod
from xfuxi.training import ens as ens_mod
from xfuxi.training import forecast as forecast_mod
from xfuxi.training.config import PerturbationTrainConfig
from xfuxi.training.da import DAConfig, train_da
from xfuxi.training.ens import train_perturbation

ENS = dict(members=2, iterations=2, batch_size=2, lr=1e-2, checkpoint_every=1, validate_every=100)
DA = dict(
    steps=2, batch_size=2, leads=(1,), forecast_steps=0, sensor_channels=("wv6.9", "ir10.8"),
    frames=(0.0,), satellites=(90.0,), width=4, scales=2, checkpoint_every=1, val_every=100,
    log_every=1, lr=1e-2,
)  # fmt: skip


def _lock_file(ckpt: Path) -> Path:
    """Where the trainers lock ``ckpt`` (documented: ``.<name>.lock`` beside it)."""
    return ckpt.parent / f".{ckpt.name}.lock"


def _run_forecast(ckpt: Path, steps: int = 2, **kw) -> None:
    _train(_world(12), steps=steps, checkpoint_dir=ckpt, checkpoint_every=1, **KW, **kw)


def _run_ens(ckpt: Path, steps: int = 2) -> None:
    cfg = PerturbationTrainConfig(**{**ENS, "iterations": steps}, checkpoint_dir=str(ckpt))
    train_perturbation(_model(), _random_walk(12, 0.3, 0), perturbation=_vae(), config=cfg,
                       progress=False)  # fmt: skip


def _run_da(ckpt: Path, steps: int = 2) -> None:
    cfg = DAConfig(**{**DA, "steps": steps}, checkpoint_dir=ckpt)
    train_da(tiny_da.truth(6), tiny_da.forecast_model(), config=cfg, progress=False)


#: trainer name -> (run it into a checkpoint directory, its module's name of the save)
TRAINERS = {
    "forecast": (_run_forecast, forecast_mod),
    "perturbation": (_run_ens, ens_mod),
    "da": (_run_da, da_mod),
}


def _spy_saves(monkeypatch, module, ckpt: Path, then=None) -> list[bool]:
    """Record, at each checkpoint save of the trainer, whether its lock is held (another
    taker is refused); ``then()`` is called after each save."""
    held: list[bool] = []
    real = module.save_training_state

    def save(*args, **kw):
        try:
            lock_output(_lock_file(ckpt), what="a test").release()
            held.append(False)
        except OutputInUseError:
            held.append(True)
        out = real(*args, **kw)
        if then is not None:
            then()
        return out

    monkeypatch.setattr(module, "save_training_state", save)
    return held


@pytest.mark.parametrize("trainer", TRAINERS)
def test_a_second_run_on_a_locked_checkpoint_directory_fails_at_once(tmp_path, trainer):
    run, _ = TRAINERS[trainer]
    ckpt = tmp_path / "ckpt"
    with lock_output(_lock_file(ckpt), what="the first run"):
        with pytest.raises(OutputInUseError) as err:
            run(ckpt, steps=50)  # (the old code trained them all)
    message = str(err.value)
    assert str(ckpt) in message
    assert re.search(rf"process {os.getpid()}@", message)  # the holder
    assert not ckpt.exists()  # nothing written: it failed before any work


@pytest.mark.parametrize("trainer", TRAINERS)
def test_the_lock_is_held_for_the_run_and_a_resumed_run_after_it_works(
    tmp_path, monkeypatch, trainer
):
    run, module = TRAINERS[trainer]
    ckpt = tmp_path / "ckpt"
    held = _spy_saves(monkeypatch, module, ckpt)
    run(ckpt, steps=2)
    assert held and all(held)  # at every checkpoint the directory was this run's
    assert not _lock_file(ckpt).exists()  # released, its file removed
    lock_output(_lock_file(ckpt), what="a test").release()  # free
    held.clear()
    run(ckpt, steps=2)  # the same run again: resumes from its checkpoint, at its end
    # nothing left to train: whatever it saved again (perturbation, DA) was saved locked
    assert all(held)
    assert trainer == "forecast" or held  # (those two do save again)
    assert not _lock_file(ckpt).exists()


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("trainer", TRAINERS)
def test_the_lock_is_released_when_the_run_fails(tmp_path, monkeypatch, trainer, error):
    run, module = TRAINERS[trainer]
    ckpt = tmp_path / "ckpt"

    def fail():
        raise error("stop")

    held = _spy_saves(monkeypatch, module, ckpt, then=fail)
    with pytest.raises(error, match="stop"):
        run(ckpt, steps=3)
    assert held == [True]  # it held the lock until it failed
    assert not _lock_file(ckpt).exists()
    with lock_output(_lock_file(ckpt), what="a test"):  # free
        pass
    monkeypatch.undo()
    held = _spy_saves(monkeypatch, module, ckpt)
    run(ckpt, steps=3)  # the run again: resumes after step 1, under the lock
    assert held and all(held)
    assert not _lock_file(ckpt).exists()


def test_a_checkpoint_directory_changed_by_another_writer_gets_trainer_advice(tmp_path):
    ckpt = tmp_path / "ckpt"

    def replace_it(step, _):  # another writer puts its own files there after step 1's save
        if step == 2:
            for f in ckpt.iterdir():
                f.unlink()
            (ckpt / "notes.txt").write_text("someone else's")

    with pytest.raises(OutputExistsError) as err:
        _run_forecast(ckpt, steps=3, callback=replace_it)
    message = str(err.value)
    assert str(ckpt) in message and "another checkpoint directory" in message
    assert "overwrite" not in message
    assert (ckpt / "notes.txt").read_text() == "someone else's"  # left as it is
    assert not _lock_file(ckpt).exists()


def test_a_save_losing_a_race_gets_no_overwrite_advice(tmp_path, monkeypatch):
    # the store's message for an output that appeared meanwhile (F4 of audit 60)
    from xfuxi.models import training_state

    def appeared(path, *args, **kw):
        raise OutputExistsError(
            f"{path} appeared while this output was being written (another run writing "
            "the same output at once?); ... or run again with overwrite (--overwrite)"
        )

    monkeypatch.setattr(training_state, "write_checkpoint", appeared)
    with pytest.raises(OutputExistsError) as err:
        _run_forecast(tmp_path / "ckpt", steps=2)
    assert "overwrite" not in str(err.value)
    assert str(tmp_path / "ckpt") in str(err.value)


def test_the_lock_path_helper_is_beside_the_directory(tmp_path):
    from xfuxi.models.training_state import checkpoint_lock_path

    assert checkpoint_lock_path(tmp_path / "ckpt") == _lock_file(tmp_path / "ckpt")
    assert checkpoint_lock_path(str(tmp_path / "ckpt") + "/") == _lock_file(tmp_path / "ckpt")


def test_a_lock_on_a_lock_file_removed_meanwhile_is_taken_again(tmp_path, monkeypatch):
    """The holder removes the lock file as it ends: a run that had opened that file just
    before gets its lock, on a file no longer there; it must lock the file at the path
    anew, else a third run could create and lock a new file too (two holders at once)."""
    from xfuxi.models import training_state

    ckpt = tmp_path / "ckpt"
    real, calls = training_state.lock_output, []

    def opened_before_the_holder_removed_it(path, **kw):
        lock = real(path, **kw)
        calls.append(path)
        if len(calls) == 1:
            os.unlink(path)  # as the ending holder does
        return lock

    monkeypatch.setattr(training_state, "lock_output", opened_before_the_holder_removed_it)
    lock = training_state.lock_checkpoint_directory(ckpt)
    try:
        assert len(calls) == 2 and lock.holds(_lock_file(ckpt))
        with pytest.raises(OutputInUseError, match=re.escape(str(ckpt))):
            real(_lock_file(ckpt), what=f"the training checkpoint directory {ckpt}")
    finally:
        training_state.release_checkpoint_directory(lock)
    assert not _lock_file(ckpt).exists()


def test_one_lock_for_one_directory_however_it_is_named(tmp_path, monkeypatch):
    """A directory reached through a link, or named with "~", got a lock file of its own, so
    two runs on one directory both held "the" lock; a checkpoint directory under a file
    gave a raw FileExistsError and a refused run left empty folders."""
    from xfuxi.files import OutputExistsError, OutputInUseError
    from xfuxi.models.training_state import checkpoint_lock_path, lock_checkpoint_directory

    real = tmp_path / "runs" / "ckpt"
    real.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "runs")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert checkpoint_lock_path(tmp_path / "link" / "ckpt") == checkpoint_lock_path(real)
    assert checkpoint_lock_path("~/runs/ckpt") == checkpoint_lock_path(real)
    lock = lock_checkpoint_directory(real)
    try:
        for other in (tmp_path / "link" / "ckpt", "~/runs/ckpt"):
            with pytest.raises(OutputInUseError):
                lock_checkpoint_directory(other)
    finally:
        lock.release()
    (tmp_path / "notes.txt").write_text("a user's file")
    with pytest.raises(OutputExistsError, match="which is a file, not a folder"):
        lock_checkpoint_directory(tmp_path / "notes.txt" / "exp" / "ckpt")
