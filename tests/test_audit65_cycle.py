"""Audit 65 (extension points, time grid): the cycling driver with a model wrapped without
statistics, the method's class recorded in a store, custom methods that break the
interface, and En4DVarMethod's spread as assimilate_4dvar takes it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from xfuxi.assimilation.config import BackgroundError, LocalizationOptions
from xfuxi.assimilation.cycle import (
    CycleAnalysis,
    CycleConfig,
    CycleMethod,
    En4DVarMethod,
    LETKFMethod,
    RadiosondeNetwork,
    cycle,
)
from xfuxi.assimilation.letkf import LETKFOptions
from xfuxi.experiments.lorenz96 import Lorenz96Network, lorenz96_truth
from xfuxi.models.base import NormStats
from xfuxi.models.lorenz96 import lorenz96_model

LAT = np.array([-60.0, -20.0, 20.0, 60.0])
LON = np.arange(8) * 45.0
CHANNELS = [("temperature", 500.0), ("geopotential", 500.0)]


class Advect(torch.nn.Module):
    def forward(self, x):
        return torch.roll(x[:, 1], 1, dims=-1)


def _model(stats: bool = False):
    kw = {}
    if stats:
        kw["stats"] = NormStats(
            mean=np.array([250.0, 5.5e4]),
            std=np.array([5.0, 800.0]),
            diff_std=np.array([1.0, 100.0]),
        )
    return xfuxi.wrap_model(
        Advect(), channels=CHANNELS, latitude=LAT, longitude=LON, name="adv", **kw
    )


def _truth(n: int = 12) -> xr.Dataset:
    times = pd.date_range("2001-01-01", periods=n, freq="6h")
    la, lo = np.meshgrid(np.deg2rad(LAT), np.deg2rad(LON), indexing="ij")
    t = np.stack([250 + 5 * np.cos(la) * np.cos(lo - np.deg2rad(45.0) * i) for i in range(n)])
    z = np.stack([5.5e4 + 800 * np.cos(la) * np.sin(lo - np.deg2rad(45.0) * i) for i in range(n)])
    dims = ("time", "level", "latitude", "longitude")
    return xr.Dataset(
        {"temperature": (dims, t[:, None]), "geopotential": (dims, z[:, None])},
        coords={"time": times, "level": [500.0], "latitude": LAT, "longitude": LON},
    )


ERRORS = {"temperature": 0.5, "geopotential": 20.0}


def _letkf(**initial) -> LETKFMethod:
    return LETKFMethod(
        options=LETKFOptions(n_members=6, qc_threshold=None),
        localization=LocalizationOptions(length_scale=3000.0),
        initial=BackgroundError(amplitude=1.0, wavelength=1, octaves=1, **initial),
    )


# --- extend #1: defaults from the identity std are refused before the first cycle ------------


def test_a_model_without_statistics_refuses_the_divergence_bound_before_anything_is_written(
    tmp_path,
):
    store = tmp_path / "s.zarr"
    net = RadiosondeNetwork(n_sites=10, error=ERRORS)
    method = _letkf(perturbation_std=(0.5, 20.0))
    both = r"\['temperature@500', 'geopotential@500'\]"
    with pytest.raises(ValueError, match=rf"divergence_factor.*{both}.*math\.inf"):
        cycle(_truth(), net, method=method, model=_model(), store=store, progress=False,
              config=CycleConfig(n_cycles=1, lead_steps=2))  # fmt: skip
    assert not store.exists()
    with pytest.raises(ValueError, match=r"initial_error.*geopotential@500.*initial_error=0"):
        cycle(_truth(), net, method=method, model=_model(), store=store, progress=False,
              config=CycleConfig(n_cycles=1, lead_steps=2, divergence_factor=math.inf,
                                 initial_error=0.1))  # fmt: skip
    assert not store.exists()
    # with what they default to given, the run goes, and z gets a z-sized analysis
    cfg = CycleConfig(n_cycles=2, lead_steps=2, divergence_factor=math.inf)
    run = cycle(_truth(), net, method=method, model=_model(), store=store, config=cfg,
                progress=False)  # fmt: skip
    assert run.scores.sizes["time"] == 2
    # the shipped Lorenz-96 model (a dimensionless variable, std 1 its scale) is not refused
    l96 = cycle(lorenz96_truth(n_states=6, seed=1), Lorenz96Network(seed=2),
                model=lorenz96_model(), progress=False,
                method=LETKFMethod(options=LETKFOptions(n_members=6, qc_threshold=None),
                                   localization=LocalizationOptions(length_scale=4.0,
                                                                    n_points=40)),
                config=CycleConfig(n_cycles=1, lead_steps=2, initial_error=1.0))  # fmt: skip
    assert l96.scores.sizes["time"] == 1


def test_a_model_without_statistics_refuses_the_radiosonde_error_fraction():
    net = RadiosondeNetwork(n_sites=10)
    with pytest.raises(ValueError, match=r"geopotential@500.*RadiosondeNetwork\(error="):
        net.errors(_model())
    with pytest.raises(ValueError, match=r"RadiosondeNetwork\(error="):
        cycle(_truth(), net, method=_letkf(perturbation_std=(0.5, 20.0)), model=_model(),
              config=CycleConfig(n_cycles=1, lead_steps=2, divergence_factor=math.inf),
              progress=False)  # fmt: skip
    # given per variable: used; the other variables keep error_fraction (refused without stats)
    assert RadiosondeNetwork(error=ERRORS).errors(_model()) == ERRORS
    with pytest.raises(ValueError, match=r"no statistics for \['geopotential@500'\]"):
        RadiosondeNetwork(error={"temperature": 0.5}).errors(_model())
    assert RadiosondeNetwork(error={"temperature": 0.5}).errors(_model(), ["temperature"]) == {
        "temperature": 0.5
    }
    # with statistics the fraction is as before; an error given is kept in the settings
    assert RadiosondeNetwork().errors(_model(stats=True)) == pytest.approx(
        {"temperature": 0.5, "geopotential": 80.0}
    )
    assert "error" not in RadiosondeNetwork().settings()  # (older stores stay resumable)
    assert RadiosondeNetwork(error=ERRORS).settings()["error"] == ERRORS
    with pytest.raises(ValueError, match="positive finite"):
        RadiosondeNetwork(error={"temperature": -1.0})
    with pytest.raises(ValueError, match="no channel"):
        RadiosondeNetwork(error={"humidity": 1.0}).errors(_model())


def test_a_model_without_statistics_refuses_the_methods_default_perlin_std():
    cfg = CycleConfig(n_cycles=1, lead_steps=2, divergence_factor=math.inf)
    net = RadiosondeNetwork(n_sites=10, error=ERRORS)
    with pytest.raises(ValueError, match=r"initial\.perturbation_std.*temperature@500"):
        cycle(_truth(), net, method=_letkf(), model=_model(), config=cfg, progress=False)
    en4dvar = En4DVarMethod(background_error=BackgroundError(n_members=6), n_slots=1)
    with pytest.raises(ValueError, match=r"background_error\.perturbation_std.*geopotential@500"):
        cycle(_truth(), net, method=en4dvar, model=_model(), config=cfg, progress=False)
    given = BackgroundError(n_members=6, perturbation_std=(0.5, 20.0))
    cycled = En4DVarMethod(background_error=given, members="cycled", n_slots=1)
    with pytest.raises(ValueError, match=r"initial\.perturbation_std"):
        cycled.check_model(_model())
    # a spread that calibrates every channel stands in for the Perlin std; one that leaves
    # z at the ensemble's own spread (NaN) does not
    En4DVarMethod(spread=[0.5, 20.0]).check_model(_model())
    with pytest.raises(ValueError, match=r"no statistics for \['geopotential@500'\]"):
        En4DVarMethod(spread=[0.5, np.nan]).check_model(_model())
    # the use sites refuse too (a method whose check_model is overridden)
    bg = torch.zeros(3, 2, 4, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="initial.perturbation_std"):
        _letkf().start(bg, model=_model(), generator=torch.Generator().manual_seed(0))
    # with statistics nothing is refused
    _letkf().check_model(_model(stats=True))
    En4DVarMethod().check_model(_model(stats=True))


# --- extend #6: the method's class is recorded and compared on resume -------------------------


class _OtherLETKF(LETKFMethod):
    """A user's variant with the same settings."""


def _l96_letkf(cls=LETKFMethod):
    return cls(
        options=LETKFOptions(n_members=6, qc_threshold=None),
        localization=LocalizationOptions(length_scale=4.0, n_points=40),
        initial=BackgroundError(amplitude=1.0, wavelength=1, octaves=1, perturbation_std=(1.0,)),
    )


def _l96(store, n, method):
    return cycle(lorenz96_truth(n_states=8, seed=1), Lorenz96Network(seed=2), method=method,
                 model=lorenz96_model(), store=store, progress=False,
                 config=CycleConfig(n_cycles=n, lead_steps=2, initial_error=1.0))  # fmt: skip


def test_a_store_is_resumed_only_by_the_method_class_that_wrote_it(tmp_path):
    store = tmp_path / "s.zarr"
    _l96(store, 1, _l96_letkf())
    recorded = json.loads((store / "run.json").read_text())["method_class"]
    assert recorded == {"method": "xfuxi.assimilation.cycle.LETKFMethod"}
    with pytest.raises(ValueError, match=r"another cycling method class.*_OtherLETKF"):
        _l96(store, 2, _l96_letkf(_OtherLETKF))
    assert _l96(store, 2, _l96_letkf()).scores.sizes["time"] == 2  # the same class resumes
    # a store of an earlier release (no record) still resumes, with any class
    settings = json.loads((store / "run.json").read_text())
    del settings["method_class"]
    (store / "run.json").write_text(json.dumps(settings))
    assert _l96(store, 3, _l96_letkf(_OtherLETKF)).scores.sizes["time"] == 3


def test_a_scripts_class_run_as_main_is_the_same_class_imported():
    from xfuxi.assimilation.cycle import _same_class

    assert _same_class("__main__.Nudging", "run.Nudging")
    assert _same_class("pkg.run.Nudging", "__main__.Nudging")
    assert not _same_class("xfuxi.assimilation.cycle.LETKFMethod", "tests.OnlyNorth")
    assert not _same_class("__main__.Nudging", "run.OtherNudging")


# --- extend #8: custom methods that break the interface get named errors ----------------------


class _Keep(CycleMethod):
    name = "keep"

    def settings(self):
        return {}

    def analyse(self, state, slots, *, model, generator):
        bg = state["background"]
        return CycleAnalysis(analysis=bg[2].clone(), state={"pair": bg[1:].clone()})


class _NoSettings(_Keep):
    settings = CycleMethod.settings


class _NoAnalyse(_Keep):
    analyse = CycleMethod.analyse


class _NoPair(_Keep):
    def analyse(self, state, slots, *, model, generator):
        return CycleAnalysis(analysis=state["background"][2].clone(), state={})


class _FloatState(_Keep):
    def analyse(self, state, slots, *, model, generator):
        r = super().analyse(state, slots, model=model, generator=generator)
        r.state["alpha"] = 0.5
        return r


class _GradState(_Keep):
    def analyse(self, state, slots, *, model, generator):
        r = super().analyse(state, slots, model=model, generator=generator)
        r.state["w"] = torch.ones(3, requires_grad=True) * 2
        return r


class _Batched(_Keep):
    def analyse(self, state, slots, *, model, generator):
        r = super().analyse(state, slots, model=model, generator=generator)
        r.analysis = r.analysis[None]
        return r


class _NotJSON(_Keep):
    def settings(self):
        return {"f": np.float32(0.5)}


class _StartNoDict(_Keep):
    def start(self, background, *, model, generator):
        return background


def _run_custom(method, store=None):
    return cycle(lorenz96_truth(n_states=6, seed=1), Lorenz96Network(seed=2), method=method,
                 model=lorenz96_model(), store=store, progress=False,
                 config=CycleConfig(n_cycles=1, lead_steps=2, initial_error=1.0))  # fmt: skip


@pytest.mark.parametrize("with_store", [False, True])
@pytest.mark.parametrize(
    ("cls", "error", "match"),
    [
        (_NoSettings, NotImplementedError, r"_NoSettings.*does not define settings\(\)"),
        (_NoAnalyse, NotImplementedError, r"_NoAnalyse.*does not define analyse"),
        (_NoPair, ValueError, r"_NoPair.*analyse\(\) must return a state holding 'pair'"),
        (_FloatState, TypeError, r"_FloatState.*state\['alpha'\] as a float.*tensors only"),
        (_GradState, ValueError, r"_GradState.*state\['w'\] with requires_grad.*detach"),
        (
            _Batched,
            ValueError,
            r"_Batched.*analysis as a tensor of shape \(1, 1, 1, 40\).*\(1, 1, 40\)",
        ),
        (_NotJSON, TypeError, r"_NotJSON.*settings\(\) must be ready for JSON"),
        (_StartNoDict, TypeError, r"_StartNoDict.*start\(\) must return the state, a dict"),
    ],
)
def test_a_custom_method_breaking_the_interface_is_named(tmp_path, with_store, cls, error, match):
    store = tmp_path / "s.zarr" if with_store else None
    with pytest.raises(error, match=match):
        _run_custom(cls(), store)


# --- extend #11: start() is not called on resume; observe() returns a 3-tuple (documented) ----


def test_the_interface_documents_resume_and_observes_return():
    doc = " ".join(CycleMethod.__doc__.split())
    assert "A run resumed from a store does not call :meth:`start`" in doc
    assert "``(slots, n_given, rejected)``" in doc
    assert "``n_given`` (int" in " ".join(CycleMethod.observe.__doc__.split())
    page = " ".join((Path(__file__).parents[1] / "docs" / "cycling.md").read_text().split())
    assert "a resumed run does not call `start`" in page
    assert "`(slots, n_given, rejected)`" in page


# --- time_grid #5: En4DVarMethod's spread as assimilate_4dvar takes it ------------------------


def _std_by_latitude():
    return xr.Dataset(
        {
            "temperature": (("level", "latitude"), [np.linspace(0.5, 2.0, 4)]),
            "geopotential": (("level", "latitude"), [np.linspace(10.0, 40.0, 4)]),
        },
        coords={"level": [500.0], "latitude": LAT},
    )


def test_en4dvar_method_takes_a_spread_dataset_matched_by_its_labels():
    std = _std_by_latitude()
    before = std.copy(deep=True)
    method = En4DVarMethod(spread=std)
    expect = np.stack([np.linspace(0.5, 2.0, 4), np.linspace(10.0, 40.0, 4)])
    np.testing.assert_allclose(method._target_spread(_model()), expect)
    json.dumps(method.settings())  # ready for the store
    # stored north to south: the same rows, the same settings
    flipped = En4DVarMethod(spread=std.isel(latitude=slice(None, None, -1)))
    np.testing.assert_allclose(flipped._target_spread(_model()), expect)
    assert flipped.settings()["spread"] == method.settings()["spread"]
    # a DataArray of one variable, north to south, is oriented too (not kept flipped)
    da = std["temperature"].isel(latitude=slice(None, None, -1))
    one = xfuxi.wrap_model(Advect(), channels=CHANNELS[:1], latitude=LAT, longitude=LON)
    np.testing.assert_allclose(
        En4DVarMethod(spread=da)._target_spread(one), [np.linspace(0.5, 2.0, 4)]
    )
    # the caller's Dataset is the caller's: not changed, and later edits leave the method
    xr.testing.assert_identical(std, before)
    std["temperature"][:] = 99.0
    np.testing.assert_allclose(method._target_spread(_model()), expect)
    # bare arrays as before (the model's order), now copied
    arr = np.array([1.0, 30.0])
    bare = En4DVarMethod(spread=arr)
    arr[0] = 5.0
    assert bare.settings()["spread"] == [1.0, 30.0]


def test_en4dvar_method_refuses_a_spread_it_cannot_match():
    with pytest.raises(ValueError, match=r"DataArray along latitude or level.*named"):
        En4DVarMethod(spread=xr.DataArray(np.ones((1, 4)), dims=("level", "latitude"),
                                          coords={"latitude": LAT}))  # fmt: skip
    with pytest.raises(TypeError, match="must be an xarray.Dataset"):
        En4DVarMethod(spread="innovations")
    with pytest.raises(ValueError, match=r"positive and finite.*\['geopotential@500'\]"):
        En4DVarMethod(spread=[1.0, -2.0]).check_model(_model(stats=True))
    with pytest.raises(ValueError, match=r"has no variable 'geopotential'"):
        En4DVarMethod(spread=_std_by_latitude()[["temperature"]]).check_model(_model(stats=True))
    with pytest.raises(ValueError, match=r"shape \(3,\).*\(2,\)"):
        En4DVarMethod(spread=[1.0, 2.0, 3.0]).check_model(_model(stats=True))
    other_rows = _std_by_latitude().assign_coords(latitude=LAT + 1.0)
    with pytest.raises(ValueError, match="latitudes"):
        En4DVarMethod(spread=other_rows).check_model(_model(stats=True))


def test_en4dvar_method_cycles_with_a_spread_dataset_on_a_model_without_statistics(tmp_path):
    method = En4DVarMethod(background_error=BackgroundError(n_members=8, amplitude=1.0,
                                                            wavelength=1, octaves=1),
                           localization=LocalizationOptions(length_scale=None),
                           n_slots=1, spread=_std_by_latitude())  # fmt: skip
    run = cycle(_truth(), RadiosondeNetwork(n_sites=10, error=ERRORS), method=method,
                model=_model(), store=tmp_path / "s.zarr", progress=False,
                config=CycleConfig(n_cycles=1, lead_steps=2,
                                   divergence_factor=math.inf))  # fmt: skip
    assert json.loads(run.scores.attrs["settings"])["method"]["spread"]["dataset"]
