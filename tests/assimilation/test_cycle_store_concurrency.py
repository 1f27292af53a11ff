"""A cycling store is written by one run at a time: a second run fails at once (audit 58)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from xfuxi.assimilation.config import BackgroundError, LocalizationOptions
from xfuxi.assimilation.cycle import STORE_LOCK, CycleConfig, LETKFMethod, cycle, open_cycle
from xfuxi.assimilation.letkf import LETKFOptions
from xfuxi.experiments.lorenz96 import Lorenz96Network, lorenz96_truth
from xfuxi.files import MARKER, OutputInUseError
from xfuxi.models.lorenz96 import lorenz96_model

INIT = BackgroundError(amplitude=1.0, wavelength=1, octaves=1, perturbation_std=(1.0,))


@pytest.fixture(scope="module")
def setting():
    return lorenz96_model(), lorenz96_truth(n_states=30, seed=1)


def _letkf(inflation=1.05):
    return LETKFMethod(
        options=LETKFOptions(n_members=10, inflation=inflation, qc_threshold=None),
        localization=LocalizationOptions(length_scale=4.0, n_points=40),
        initial=INIT,
    )


def _run(setting, n, store, inflation=1.05, network=None):
    model, truth = setting
    return cycle(
        truth,
        network or Lorenz96Network(seed=2),
        method=_letkf(inflation),
        model=model,
        config=CycleConfig(n_cycles=n, lead_steps=2, initial_error=1.0),
        store=store,
        progress=False,
    )


def _inflation(store):
    return json.loads((store / "run.json").read_text())["method"]["options"]["inflation"]


def test_a_second_run_on_a_store_in_its_first_cycle_fails_at_once(setting, tmp_path):
    """Run A made the store and is in its first cycle (the store holds no cycle yet) when
    run B, of other settings, starts on it: B took the store for one of no cycle and
    rewrote its settings, and A wrote its cycles under B's settings. Now B fails at once,
    naming the store and A's process, and the store is A's."""
    store = tmp_path / "s"
    seen = []

    class StartsB(Lorenz96Network):
        def __call__(self, truth, times, *, cycle, model):
            if cycle == 0 and not seen:  # A is in cycle 0: its store holds no cycle
                assert not (store / "cycles").exists() or not any((store / "cycles").iterdir())
                with pytest.raises(OutputInUseError) as err:
                    _run(setting, 2, store, inflation=1.30)
                seen.append(str(err.value))
                assert _inflation(store) == 1.05  # B changed nothing
            return super().__call__(truth, times, cycle=cycle, model=model)

    a = _run(setting, 2, store, network=StartsB(seed=2))
    assert seen and str(store) in seen[0] and f"process {os.getpid()}@" in seen[0]
    assert _inflation(store) == 1.05 and a.scores.sizes["time"] == 2
    assert open_cycle(store).sizes["time"] == 2  # readers need no lock
    # the lock goes with the run: B resumes nothing of A's settings, it is refused as before
    with pytest.raises(ValueError, match="different settings"):
        _run(setting, 3, store, inflation=1.30)
    assert _run(setting, 3, store).scores.sizes["time"] == 3  # A's settings resume


def test_a_run_fails_at_once_on_a_store_another_process_holds(setting, tmp_path):
    store = tmp_path / "s"
    _run(setting, 1, store)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys\n"
            f"fd = os.open({str(store / STORE_LOCK)!r}, os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.ftruncate(fd, 0); os.write(fd, f'{os.getpid()}@elsewhere'.encode())\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputInUseError, match=rf"process {holder.pid}@elsewhere"):
            _run(setting, 2, store)
        assert open_cycle(store).sizes["time"] == 1
    finally:
        holder.communicate("")
    assert _run(setting, 2, store).scores.sizes["time"] == 2


def test_a_store_of_an_earlier_release_without_a_lock_file_resumes(setting, tmp_path):
    store = tmp_path / "s"
    whole = _run(setting, 3, tmp_path / "whole")
    _run(setting, 2, store)
    (store / STORE_LOCK).unlink()  # as an earlier release wrote it
    assert sorted(p.name for p in store.iterdir()) == sorted([MARKER, "run.json", "cycles"])
    resumed = _run(setting, 3, store)
    assert (
        resumed.scores["analysis_error"].values.tolist()
        == whole.scores["analysis_error"].values.tolist()
    )
    # the lock file does not make a store of no cycle look like someone's folder
    import shutil

    shutil.rmtree(store / "cycles")
    assert _run(setting, 1, store, inflation=1.1).scores.sizes["time"] == 1
    assert _inflation(store) == 1.1


def test_without_fcntl_a_run_goes_on_unlocked(setting, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fcntl", None)  # as on Windows
    assert _run(setting, 1, tmp_path / "s").scores.sizes["time"] == 1
