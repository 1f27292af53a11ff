"""Online correction of the model's bias in a cycle (issue 22): BiasCorrectedMethod."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import xarray as xr

from xfuxi.assimilation.config import BackgroundError, LocalizationOptions
from xfuxi.assimilation.cycle import CycleConfig, LETKFMethod, cycle, open_cycle
from xfuxi.assimilation.letkf import LETKFOptions
from xfuxi.assimilation.model_bias import BiasCorrectedMethod
from xfuxi.experiments.lorenz96 import Lorenz96Network, lorenz96_truth
from xfuxi.models.lorenz96 import lorenz96_model

INIT = BackgroundError(amplitude=1.0, wavelength=1, octaves=1, perturbation_std=(1.0,))
BIAS = 0.2  # added to every step of the model


@pytest.fixture(scope="module")
def biased():
    """Lorenz-96 whose every step adds BIAS to each variable, and a truth run without it."""
    base = lorenz96_model()
    model = copy.copy(base)
    model.forward = lambda x: base(x) + BIAS
    return model, lorenz96_truth(n_states=80, seed=1)


def _letkf() -> LETKFMethod:
    return LETKFMethod(
        options=LETKFOptions(n_members=10, inflation=1.2, qc_threshold=None),
        localization=LocalizationOptions(length_scale=4.0, n_points=40),
        initial=INIT,
    )


def _run(setting, method, n=70, store=None, network=None):
    model, truth = setting
    return cycle(
        truth,
        network or Lorenz96Network(seed=2),
        method=method,
        model=model,
        config=CycleConfig(n_cycles=n, lead_steps=2, initial_error=1.0),
        store=store,
        progress=False,
    )


def test_the_correction_learns_the_bias_and_lowers_the_error(biased, tmp_path):
    plain = _run(biased, _letkf()).scores.isel(channel=0, time=slice(30, None))
    method = BiasCorrectedMethod(_letkf(), rate=0.1, truncation=None, spinup=5)
    run = _run(biased, method, store=tmp_path)
    s = run.scores.isel(channel=0, time=slice(30, None))
    assert float(s.analysis_error.mean()) < 0.75 * float(plain.analysis_error.mean())
    assert float(s.background_error.mean()) < 0.75 * float(plain.background_error.mean())
    # the estimate is the step's bias with the sign that removes it
    bias = open_cycle(tmp_path).isel(time=slice(30, None))
    last = xr.open_zarr(tmp_path / "cycles" / "000069.zarr")["state__model_bias"].values
    assert -1.5 * BIAS < float(np.mean(last)) < -0.5 * BIAS
    assert bool((bias["model_bias"] > 0).all())
    first = run.scores["model_bias"].isel(channel=0).values
    assert (first[:5] == 0).all() and (first[5:] > 0).all()  # no estimate before the spin-up
    assert run.scores.attrs["method"] == "LETKF + bias correction"


def test_settings_with_a_numpy_truncation_go_to_json():
    """The settings a resumed run must match are JSON: a numpy integer truncation (accepted)
    stopped the cycle at its settings check."""
    import json

    method = BiasCorrectedMethod(_letkf(), rate=0.1, truncation=np.int64(10))
    settings = json.loads(json.dumps(method.settings()))
    assert settings["bias_truncation"] == 10


def test_a_resumed_corrected_run_is_identical(biased, tmp_path):
    method = BiasCorrectedMethod(_letkf(), rate=0.1, truncation=None)
    whole = _run(biased, method, n=6, store=tmp_path / "a")

    class Interrupt(Exception):
        pass

    class Failing(Lorenz96Network):
        def __call__(self, truth, times, *, cycle, model):
            if cycle == 4:
                raise Interrupt
            return super().__call__(truth, times, cycle=cycle, model=model)

    with pytest.raises(Interrupt):
        _run(biased, method, n=6, store=tmp_path / "b", network=Failing(seed=2))
    resumed = _run(biased, method, n=6, store=tmp_path / "b")
    xr.testing.assert_identical(
        whole.scores.drop_vars("wall_time_s"), resumed.scores.drop_vars("wall_time_s")
    )
    other = BiasCorrectedMethod(_letkf(), rate=0.2, truncation=None)
    with pytest.raises(ValueError, match=r"bias_rate \(stored 0\.1, now 0\.2\)"):
        _run(biased, other, n=7, store=tmp_path / "b")


def test_the_forecast_adds_the_estimate_to_the_background_and_every_member(biased):
    model, _ = biased
    method = BiasCorrectedMethod(_letkf(), rate=0.1, truncation=None)
    gen = torch.Generator().manual_seed(0)
    background = torch.randn(3, 1, 1, 40, generator=gen, dtype=torch.float64) + 8.0
    state = method.start(background, model=model, generator=gen)
    assert torch.equal(state["model_bias"], torch.zeros(1, 1, 40, dtype=torch.float64))
    state = {k: v for k, v in state.items() if k != "background"}
    state["pair"] = state["members"].mean(0)
    state["model_bias"] = torch.full((1, 1, 40), -0.3, dtype=torch.float64)
    plain = method.method.forecast({k: v for k, v in state.items() if k != "model_bias"},
                                   model=model)  # fmt: skip
    corrected = method.forecast(state, model=model)
    torch.testing.assert_close(corrected["background"][2], plain["background"][2] - 0.3)
    torch.testing.assert_close(corrected["background"][:2], plain["background"][:2])
    torch.testing.assert_close(corrected["members"][:, 1], plain["members"][:, 1] - 0.3)
    torch.testing.assert_close(corrected["members"][:, 0], plain["members"][:, 0])


def test_the_increment_is_truncated_to_large_scales():
    lat = np.linspace(-87.5, 87.5, 36)
    lon = np.arange(72) * 5.0

    class Grid:
        latitude, longitude = lat, lon

    method = BiasCorrectedMethod(_letkf(), rate=1.0, truncation=3)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(2, 36, 72, generator=gen, dtype=torch.float64)
    smooth = torch.as_tensor(np.sin(np.deg2rad(lat))[:, None] * np.cos(np.deg2rad(lon)))
    out = method._project(noise + smooth, Grid)
    assert float((out - smooth).std()) < 0.3 * float(noise.std())
    whole = BiasCorrectedMethod(_letkf(), rate=1.0, truncation=None)
    assert torch.equal(whole._project(noise, Grid), noise)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate": 0.0}, r"rate must be a number in \(0, 1\]; got 0.0"),
        ({"rate": 1.5}, r"rate must be a number in \(0, 1\]"),
        ({"rate": True}, r"rate must be a number"),
        ({"truncation": -1}, "truncation must be None or an integer >= 0; got -1"),
        ({"truncation": 2.5}, "truncation must be None or an integer"),
        ({"spinup": -1}, "spinup must be an integer >= 0; got -1"),
    ],
)
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BiasCorrectedMethod(_letkf(), **kwargs)
    with pytest.raises(TypeError, match="method must be a CycleMethod; got str"):
        BiasCorrectedMethod("letkf")
    with pytest.raises(ValueError, match="already corrects"):
        BiasCorrectedMethod(BiasCorrectedMethod(_letkf()))


def test_cli_cycle_bias_rate_wraps_the_method(monkeypatch, tmp_path, capsys):
    import xfuxi.assimilation.cycle as cycle_module
    import xfuxi.cli.assimilate as cli_assimilate
    from xfuxi.assimilation.cycle import CycleRun
    from xfuxi.cli import main

    seen = {}

    def fake_cycle(truth, network, **kwargs):
        seen.update(kwargs)
        return CycleRun(scores=xr.Dataset())

    monkeypatch.setattr(cycle_module, "cycle", fake_cycle)
    monkeypatch.setattr(cli_assimilate, "open_data", lambda path: xr.Dataset())
    monkeypatch.setattr(cli_assimilate, "load_model", lambda name: "model")
    base = ["cycle", "truth.zarr", "--store", str(tmp_path / "s")]
    assert main(base) == 0
    assert isinstance(seen["method"], LETKFMethod)  # off by default
    assert main([*base, "--bias-rate", "0.2", "--bias-truncation", "8"]) == 0
    method = seen["method"]
    assert isinstance(method, BiasCorrectedMethod)
    assert (method.rate, method.truncation, method.spinup) == (0.2, 8, 8)
    assert type(method.method) is LETKFMethod
    assert main([*base, "--bias-rate", "0.2", "--bias-spinup", "0"]) == 0
    assert seen["method"].spinup == 0
    assert main([*base, "--bias-rate", "0.2", "--bias-truncation", "-1"]) == 0
    assert seen["method"].truncation is None
    seen.clear()
    assert main([*base, "--bias-rate", "1.5"]) == 2
    assert "--bias-rate must be in [0, 1]; got 1.5" in capsys.readouterr().err
    assert main([*base, "--bias-rate", "0.1", "--bias-truncation", "-3"]) == 2
    assert "--bias-truncation must be >= 0, or -1; got -3" in capsys.readouterr().err
    assert main([*base, "--bias-rate", "0.1", "--bias-spinup", "-1"]) == 2
    assert "--bias-spinup must be >= 0; got -1" in capsys.readouterr().err
    assert not seen  # refused before any work


@pytest.mark.parametrize(
    ("field", "value", "error", "match"),
    [
        ("rate", 5.0, ValueError, r"rate must be a number in \(0, 1\]; got 5.0"),
        ("truncation", "x", ValueError, "truncation must be None or an integer >= 0; got 'x'"),
        ("spinup", -3, ValueError, "spinup must be an integer >= 0; got -3"),
        ("method", "letkf", TypeError, "method must be a CycleMethod; got str"),
    ],
)
def test_a_field_changed_to_a_bad_value_is_refused_at_use(field, value, error, match):
    # checked at construction only: a changed rate of 5 ran, amplifying each increment
    method = BiasCorrectedMethod(_letkf(), rate=0.5, truncation=None, spinup=0)
    setattr(method, field, value)
    with pytest.raises(error, match=match):
        method.settings()
    with pytest.raises(error, match=match):
        _run((lorenz96_model(), lorenz96_truth(n_states=8, seed=1)), method, n=2)


def test_a_nested_bias_correction_is_refused_clearly():
    from xfuxi.assimilation.climatology_blend import ClimatologyBlendMethod

    # assigned after construction: a bare KeyError 'model_bias_analyses' in the first cycle
    method = BiasCorrectedMethod(_letkf(), truncation=None, spinup=0)
    method.method = BiasCorrectedMethod(_letkf())
    with pytest.raises(ValueError, match="already corrects the model's bias"):
        _run((lorenz96_model(), lorenz96_truth(n_states=8, seed=1)), method, n=2)
    # wrapped in another wrapper: refused at construction
    blend = ClimatologyBlendMethod(
        BiasCorrectedMethod(_letkf()), climatology=np.zeros((1, 1, 40)), factors=[[1.0]], bands=(0,)
    )
    with pytest.raises(ValueError, match="already corrects the model's bias"):
        BiasCorrectedMethod(blend)
