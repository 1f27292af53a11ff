"""Reused cycling methods, the callers' objects and modes: what a run leaves as it found it.

A method object run twice (after a change of its options, or on another model's grid) gives
what a fresh one gives; the caller's samples, attrs and module modes are not tied to or
changed by a run; a truth's levels and variables that the model does not use change nothing.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from tests import tiny, tiny_da
from xfuxi.assimilation.climatology_blend import ClimatologyBlendMethod
from xfuxi.assimilation.config import (
    BackgroundError,
    LocalizationOptions,
    Minimiser,
    QualityControl,
)
from xfuxi.assimilation.cycle import (
    CycleConfig,
    En4DVarMethod,
    LETKFMethod,
    RadiosondeNetwork,
    cycle,
    open_cycle_states,
    static_var,
)
from xfuxi.assimilation.letkf import LETKFOptions
from xfuxi.experiments.lorenz96 import Lorenz96Network, lorenz96_truth
from xfuxi.models.base import NormStats
from xfuxi.models.lorenz96 import lorenz96_model

INIT = BackgroundError(amplitude=1.0, wavelength=1, octaves=1, perturbation_std=(1.0,))
L96 = CycleConfig(n_cycles=2, lead_steps=2, initial_error=1.0)


class _Last(torch.nn.Module):
    def forward(self, x):
        return x[:, 1]


class _Dropout(torch.nn.Module):
    """Persistence plus dropout noise: random in train mode, persistence in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = torch.nn.Dropout(0.5)
        self.inner = torch.nn.Sequential(torch.nn.Identity())

    def forward(self, x):
        return self.inner(x[:, 1]) + 0.01 * self.drop(torch.ones_like(x[:, 1]))


def _column_world(nlat=4, nlon=8, levels=(500.0,), net=None, extra=None):
    """A temperature world on ``levels`` and a model of its 500 hPa (or ``levels``) channel."""
    lat = list(np.linspace(-60, 60, nlat))
    lon = list(np.arange(nlon) * 360.0 / nlon)
    rng = np.random.default_rng(0)
    t = pd.date_range("2000-01-01", periods=8, freq="6h")
    dims = ("time", "level", "latitude", "longitude")
    truth = xr.Dataset(
        {"temperature": (dims, 250 + np.cumsum(rng.normal(0, 1, (8, len(levels), nlat, nlon)), 0))},
        coords={"time": t, "level": list(levels), "latitude": lat, "longitude": lon},
    )
    channels = [("temperature", lv) for lv in (extra or levels)]
    n = len(channels)
    model = xfuxi.wrap_model(
        net if net is not None else _Last(),
        channels=channels,
        latitude=lat,
        longitude=lon,
        stats=NormStats(np.full(n, 250.0), np.full(n, 2.0), np.full(n, 1.0)),
    )
    return model, truth


def _small_letkf():
    return LETKFMethod(
        options=LETKFOptions(n_members=8, qc_threshold=None),
        localization=LocalizationOptions(length_scale=3000.0),
        initial=BackgroundError(amplitude=1.0),
    )


# --- 1. localization and band projections follow the options and the grid ------------------


def _l96_en4dvar(length_scale: float) -> En4DVarMethod:
    return En4DVarMethod(
        background_error=BackgroundError(
            n_members=10, perturbation_std=(3.6,), amplitude=0.1, wavelength=1, octaves=1
        ),
        localization=LocalizationOptions(length_scale=length_scale, n_points=40, variance=0.999),
        quality_control=QualityControl(qc_threshold=None),
        minimiser=Minimiser(max_iter=5),
    )


def test_reused_en4dvar_follows_a_changed_localization():
    model, truth = lorenz96_model(), lorenz96_truth(n_states=12, seed=1)

    def run(method):
        return cycle(
            truth, Lorenz96Network(seed=2), method=method, model=model, config=L96, progress=False
        ).scores

    method = _l96_en4dvar(4.0)
    run(method)
    method.localization = LocalizationOptions(length_scale=1.0, n_points=40, variance=0.999)
    reused = run(method)
    assert json.loads(reused.attrs["settings"])["method"]["localization"]["length_scale"] == 1.0
    fresh = run(_l96_en4dvar(1.0))
    np.testing.assert_array_equal(reused.analysis_error.values, fresh.analysis_error.values)
    assert not np.array_equal(
        reused.analysis_error.values, run(_l96_en4dvar(4.0)).analysis_error.values
    )


def test_reused_en4dvar_on_another_grid():
    def make():
        return En4DVarMethod(
            background_error=BackgroundError(n_members=6, amplitude=1.0),
            localization=LocalizationOptions(length_scale=3000.0),
            n_slots=1,
            quality_control=QualityControl(qc_threshold=None),
            minimiser=Minimiser(max_iter=5),
        )

    cfg = CycleConfig(n_cycles=1, lead_steps=2, initial_error=1.0)
    model_a, truth_a = _column_world(4, 8)
    model_b, truth_b = _column_world(6, 12)
    method = make()
    cycle(
        truth_a,
        RadiosondeNetwork(n_sites=20, seed=1),
        method=method,
        model=model_a,
        config=cfg,
        progress=False,
    )
    reused = cycle(
        truth_b,
        RadiosondeNetwork(n_sites=20, seed=1),
        method=method,
        model=model_b,
        config=cfg,
        progress=False,
    ).scores
    fresh = cycle(
        truth_b,
        RadiosondeNetwork(n_sites=20, seed=1),
        method=make(),
        model=model_b,
        config=cfg,
        progress=False,
    ).scores
    np.testing.assert_array_equal(reused.analysis_error.values, fresh.analysis_error.values)


def test_climatology_blend_follows_the_grid_and_bands():
    lat_a = np.linspace(-87.5, 87.5, 36)
    lat_b = np.linspace(-80.0, 80.0, 36)  # the same shape, other latitudes
    lon = np.arange(72) * 5.0
    grid_a = type("Grid", (), {"latitude": lat_a, "longitude": lon})
    grid_b = type("Grid", (), {"latitude": lat_b, "longitude": lon})

    def make(bands=(5, 35)):
        return ClimatologyBlendMethod(
            LETKFMethod(), climatology=np.zeros((1, 36, 72)), factors=[[1.0, 0.5]], bands=bands
        )

    x = torch.as_tensor(np.random.default_rng(0).normal(size=(1, 36, 72)))
    method = make()
    method.blend(x, grid_a)
    torch.testing.assert_close(method.blend(x, grid_b), make().blend(x, grid_b), rtol=0, atol=0)
    method.bands = (3, 35)
    torch.testing.assert_close(
        method.blend(x, grid_b), make((3, 35)).blend(x, grid_b), rtol=0, atol=0
    )


# --- 2, 3. module modes: evaluation mode while computing, the caller's mode given back -------


def _modes(module):
    return [m.training for m in module.modules()]


def test_cycle_runs_a_train_mode_model_in_eval_mode_and_restores_it():
    model, truth = _column_world(net=_Dropout())
    model.train()
    model.net.inner.eval()
    before = _modes(model)
    assert any(before) and not all(before)  # a mix: each module's own mode comes back

    def run():
        return cycle(
            truth,
            RadiosondeNetwork(n_sites=10, seed=1),
            method=_small_letkf(),
            model=model,
            config=CycleConfig(n_cycles=2, lead_steps=2),
            progress=False,
        ).scores

    a, b = run(), run()
    np.testing.assert_array_equal(a.background_error.values, b.background_error.values)
    assert _modes(model) == before
    model.eval()
    c = run()  # the same as a run of the model in evaluation mode
    np.testing.assert_array_equal(a.background_error.values, c.background_error.values)
    model.train()

    def failing(truth, times, *, cycle, model):
        assert not any(_modes(model))  # evaluation mode inside the run
        raise RuntimeError("network down")

    with pytest.raises(RuntimeError, match="network down"):
        cycle(
            truth,
            failing,
            method=_small_letkf(),
            model=model,
            config=CycleConfig(n_cycles=1, lead_steps=2),
            progress=False,
        )
    assert all(_modes(model))  # given back on an error too


def test_assimilate_da_restores_the_networks_mode():
    from tests.models.test_fuxi_da import tiny_da_model
    from xfuxi.observations.imager import imager_observations

    truth = tiny_da.truth(4)
    rad = imager_observations(
        truth, satellites=[90.0], channels=["wv6.2", "ir10.8"], frames=(-2.0, 0.0)
    )
    bg = truth.sel(time=rad["time"].values) + 0.0
    model = tiny_da_model()
    with torch.no_grad():
        model.net.head.weight.normal_(0, 0.05)  # a nonzero increment
    model.eval()
    reference = xfuxi.assimilate_da(bg, rad, model=model).analysis
    assert not any(_modes(model))  # a network in evaluation mode stays so
    model.train()
    first = next(m for m in model.net.modules() if m is not model.net)
    first.eval()
    before = _modes(model)
    res = xfuxi.assimilate_da(bg, rad, model=model)
    assert _modes(model) == before
    xr.testing.assert_identical(res.analysis, reference)


# --- 4, 5. the truth's levels and variables the model does not use --------------------------


def _sonde_scores(truth, model, store=None):
    return cycle(
        truth,
        RadiosondeNetwork(n_sites=10, seed=1),
        method=_small_letkf(),
        model=model,
        store=store,
        progress=False,
        config=CycleConfig(n_cycles=2, lead_steps=2, initial_error=1.0),
    ).scores


def test_a_truth_level_the_model_lacks_changes_nothing():
    model, full = _column_world(levels=(500.0, 850.0), extra=(500.0,))
    a = _sonde_scores(full.sel(level=[500.0]), model)
    b = _sonde_scores(full, model)
    np.testing.assert_array_equal(a.analysis_error.values, b.analysis_error.values)
    np.testing.assert_array_equal(a.n_obs.values, b.n_obs.values)
    # a level between two of the model's is observed (interpolated), as before
    model2, truth2 = _column_world(levels=(500.0, 700.0, 850.0), extra=(500.0, 850.0))
    variables, levels = RadiosondeNetwork().observed(truth2, model2)
    assert variables == ["temperature"] and levels is None
    variables, levels = RadiosondeNetwork().observed(full, model)
    assert levels == [500.0]


def test_a_truth_variable_the_model_lacks_changes_nothing(tmp_path):
    model, truth = _column_world(levels=(500.0, 850.0))
    extra = truth.copy()
    extra["humidity"] = (truth["temperature"].dims, np.random.default_rng(1).random((8, 2, 4, 8)))
    extra = extra[["humidity", "temperature"]]  # first, before the model's variable
    a = _sonde_scores(truth, model)
    b = _sonde_scores(extra, model, store=tmp_path / "s")
    np.testing.assert_array_equal(a.analysis_error.values, b.analysis_error.values)


def test_radiosonde_variables_the_model_lacks_are_refused_before_the_store(tmp_path):
    model, truth = _column_world(levels=(500.0, 850.0))
    extra = truth.assign(humidity=truth["temperature"] * 0.0 + 0.5)
    network = RadiosondeNetwork(n_sites=10, seed=1, variables=("temperature", "humidity"))
    with pytest.raises(ValueError, match=r"RadiosondeNetwork.variables names \['humidity'\]"):
        cycle(
            extra,
            network,
            method=_small_letkf(),
            model=model,
            store=tmp_path / "s",
            config=CycleConfig(n_cycles=1, lead_steps=2),
            progress=False,
        )
    assert not (tmp_path / "s").exists()
    with pytest.raises(ValueError, match="humidity"):
        network(extra, extra.time.values[:1], cycle=0, model=model)


# --- 6. samples are the method's own ---------------------------------------------------------


def test_methods_copy_the_callers_samples():
    s = torch.randn(5, 1, 1, 40, dtype=torch.float64)
    kept = s.clone()
    method = static_var(s)
    before = method.settings()["static_sum"], method.fingerprints()["static"]
    s.zero_()
    assert (method.settings()["static_sum"], method.fingerprints()["static"]) == before
    torch.testing.assert_close(method.static, kept, rtol=0, atol=0)
    direct = En4DVarMethod(static=kept, background_error=BackgroundError(hybrid_weight=1.0))
    assert direct.static.data_ptr() != kept.data_ptr()
    for make in (
        lambda a: LETKFMethod(additive=a),
        lambda a: En4DVarMethod(additive=a, members="cycled"),
    ):
        a = torch.randn(5, 1, 1, 40, dtype=torch.float64)
        m = make(a)
        assert m.additive.data_ptr() != a.data_ptr()
        a.zero_()
        assert bool(m.additive.abs().sum() > 0)


# --- 7. world_background's attrs -------------------------------------------------------------


def test_world_background_attrs_are_its_own():
    ds = tiny.dataset(12)
    ds.attrs["history"] = ["made"]
    ds["temperature"].attrs["flags"] = [1]
    bg = xfuxi.world_background(ds, model=tiny.model(), time=ds.time.values[10], lead_steps=2)
    assert bg.attrs["history"] == ["made"] and bg["temperature"].attrs["flags"] == [1]
    bg.attrs["history"].append("edited")
    bg["temperature"].attrs["flags"].append(99)
    assert ds.attrs["history"] == ["made"]
    assert ds["temperature"].attrs["flags"] == [1]


# --- 8. open_cycle_states(members=) beyond the store's -------------------------------------


def test_open_cycle_states_refuses_more_members_than_stored(tmp_path):
    method = LETKFMethod(
        options=LETKFOptions(n_members=6, qc_threshold=None),
        localization=LocalizationOptions(length_scale=4.0, n_points=40),
        initial=INIT,
    )
    cycle(
        lorenz96_truth(n_states=8, seed=1),
        Lorenz96Network(seed=2),
        method=method,
        model=lorenz96_model(),
        store=tmp_path / "s",
        config=L96,
        progress=False,
    )
    assert open_cycle_states(tmp_path / "s", members=6).sizes["member"] == 6
    with pytest.raises(ValueError, match=r"members=50 .* holds \(6\)"):
        open_cycle_states(tmp_path / "s", members=50)


# --- the wrappers (bias correction, climatology blend) follow their changed fields ----------


def test_reused_bias_correction_follows_a_changed_truncation():
    from xfuxi.assimilation.model_bias import BiasCorrectedMethod

    model, truth = _column_world(nlat=8, nlon=16)

    def run(method):
        return cycle(
            truth,
            RadiosondeNetwork(n_sites=20, seed=1),
            method=method,
            model=model,
            config=CycleConfig(n_cycles=3, lead_steps=2, initial_error=1.0),
            progress=False,
        ).scores

    def make(truncation):
        return BiasCorrectedMethod(_small_letkf(), rate=1.0, truncation=truncation, spinup=0)

    method = make(6)
    run(method)
    method.truncation = 1  # the projection of truncation 6 was kept and used
    reused = run(method)
    assert json.loads(reused.attrs["settings"])["method"]["bias_truncation"] == 1
    fresh = run(make(1))
    for name in ("analysis_error", "model_bias"):
        np.testing.assert_array_equal(reused[name].values, fresh[name].values)
    x = torch.as_tensor(np.random.default_rng(0).normal(size=(1, 8, 16)))
    method.truncation = 6
    torch.testing.assert_close(
        method._project(x, model), make(6)._project(x, model), rtol=0, atol=0
    )
    method.truncation = None
    assert method._project(x, model) is x


@pytest.mark.parametrize("wrapper", ["bias", "blend"])
def test_a_wrapper_follows_its_replaced_inner_method(wrapper):
    from xfuxi.assimilation.model_bias import BiasCorrectedMethod

    model, truth = lorenz96_model(), lorenz96_truth(n_states=12, seed=1)
    letkf = LETKFMethod(
        options=LETKFOptions(n_members=10, qc_threshold=None),
        localization=LocalizationOptions(length_scale=4.0, n_points=40),
        initial=INIT,
    )

    def make(inner, **kw):
        if wrapper == "bias":
            return BiasCorrectedMethod(inner, truncation=None, spinup=0, **kw)
        return ClimatologyBlendMethod(
            inner, climatology=np.zeros((1, 1, 40)), factors=[[1.0]], bands=(0,), **kw
        )

    suffix = " + bias correction" if wrapper == "bias" else " + climatology blend"
    method = make(letkf)
    assert (method.name, method.n_slots) == ("LETKF" + suffix, 1)
    method.method = _l96_en4dvar(4.0)  # a two-slot 4DVar: name and n_slots were kept
    fresh = make(_l96_en4dvar(4.0))
    assert (method.name, method.n_slots) == ("En4DVar" + suffix, 2)
    assert method.settings() == fresh.settings()
    if wrapper == "bias":
        reused = cycle(truth, Lorenz96Network(seed=2), method=method, model=model, config=L96,
                       progress=False).scores  # fmt: skip
        ref = cycle(truth, Lorenz96Network(seed=2), method=fresh, model=model, config=L96,
                    progress=False).scores  # fmt: skip
        assert reused.attrs["method"] == ref.attrs["method"] == "En4DVar" + suffix
        np.testing.assert_array_equal(reused.analysis_error.values, ref.analysis_error.values)
    named = make(letkf, name="mine")
    named.method = _l96_en4dvar(4.0)
    assert (named.name, named.n_slots) == ("mine", 2)
