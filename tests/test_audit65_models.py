"""Own models (audit65/extend): noise scales of a model without statistics (#1), saving a
wrapped module (#5), the network's output checked (#7), ONNX export of a module without
parameters (#10), the dtype of such a module and wrap_model's time step (#11)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from xfuxi.forecasting.ensemble import GaussianNoise, PerlinNoise, ensemble
from xfuxi.models.base import NormStats, wrap_model
from xfuxi.models.checkpoint import save_model
from xfuxi.models.rollout import model_dtype, rollout

LAT = np.linspace(-78.75, 78.75, 8)
LON = np.arange(16) * 22.5
CHANNELS = [("temperature", 500.0), ("geopotential", 500.0)]


class Advect(torch.nn.Module):
    """Physical units in and out, no parameters: the later state shifted one point east."""

    def forward(self, x):
        return torch.roll(x[:, 1], 1, dims=-1)


def _truth(n_time: int = 3) -> xr.Dataset:
    la, lo = np.meshgrid(np.deg2rad(LAT), np.deg2rad(LON), indexing="ij")
    t = np.stack([250 + 5 * np.cos(la) * np.cos(lo - 0.4 * i) for i in range(n_time)])
    z = np.stack([5.5e4 + 800 * np.cos(la) * np.sin(lo - 0.4 * i) for i in range(n_time)])
    dims = ("time", "level", "latitude", "longitude")
    return xr.Dataset(
        {"temperature": (dims, t[:, None]), "geopotential": (dims, z[:, None])},
        coords={"time": pd.date_range("2001-01-01", periods=n_time, freq="6h"),
                "level": [500.0], "latitude": LAT, "longitude": LON},
    )  # fmt: skip


def _model(net=None, **kw):
    return wrap_model(net if net is not None else Advect(), channels=CHANNELS, latitude=LAT,
                      longitude=LON, **kw)  # fmt: skip


# --- #1: Perlin / Gaussian noise scaled by missing statistics ---------------------------


@pytest.mark.parametrize("spec", [PerlinNoise(), GaussianNoise(std_fraction=0.05)])
def test_noise_refused_for_a_model_without_statistics(spec):
    ds = _truth()
    before = ds.copy(deep=True)
    with pytest.raises(ValueError) as err:
        ensemble(ds, model=_model(), n=2, steps=1, perturbation=spec, progress=False)
    text = str(err.value)
    assert "temperature@500" in text and "geopotential@500" in text
    assert "perturbation_std" in text and "NormStats" in text
    xr.testing.assert_identical(ds, before)  # input not mutated


@pytest.mark.parametrize("kind", [PerlinNoise, GaussianNoise])
def test_explicit_perturbation_std_scales_the_noise(kind):
    ds = _truth()
    spec = kind(std_fraction=0.05, perturbation_std=(5.0, 400.0))
    fc = ensemble(ds, model=_model(), n=8, steps=1, perturbation=spec, progress=False)
    spread = fc.std("number").isel(prediction_timedelta=0).mean()
    assert 0.05 < float(spread.temperature) < 1.0  # ~ 0.05 × 5 K
    assert 5.0 < float(spread.geopotential) < 60.0  # ~ 0.05 × 400 m² s⁻² (0.047 before)
    assert "perturbation_std" in fc.attrs["perturbation"]


def test_perturbation_std_checked():
    with pytest.raises(ValueError, match="one std per channel"):
        ensemble(_truth(), model=_model(), n=2, steps=1, progress=False,
                 perturbation=GaussianNoise(perturbation_std=[5.0]))  # fmt: skip
    for bad in ([1.0, -2.0], [np.nan, 1.0], [[1.0, 2.0]], 3.0, "a"):
        with pytest.raises(ValueError, match="perturbation_std"):
            PerlinNoise(perturbation_std=bad)


def test_noise_with_statistics_or_zero_fraction_unchanged():
    ds = _truth()
    stats = NormStats(np.array([250.0, 5.5e4]), np.array([5.0, 400.0]), np.ones(2))
    # a model with statistics: the default spec as before (its std), spec JSON unchanged
    fc = ensemble(ds, model=_model(stats=stats), n=4, steps=1, progress=False,
                  perturbation=GaussianNoise())  # fmt: skip
    assert fc.attrs["perturbation"] == '{"std_fraction": 0.05}'
    # no noise at all needs no scale
    ensemble(ds, model=_model(), n=2, steps=1, perturbation=GaussianNoise(std_fraction=0.0),
             progress=False)  # fmt: skip
    # Lorenz-96's dimensionless state keeps its unit std as scale
    from xfuxi.models.lorenz96 import lorenz96_model

    m = lorenz96_model(n_variables=8)
    l96 = xr.Dataset(
        {"x": (("time", "latitude", "longitude"), np.full((2, 1, 8), 8.0))},
        coords={"time": pd.date_range("2000", periods=2, freq="6h"), "latitude": [0.0],
                "longitude": m.longitude},
    )  # fmt: skip
    ensemble(l96, model=m, n=2, steps=1, perturbation=GaussianNoise(), progress=False)


def test_perturbation_std_round_trips():
    spec = PerlinNoise(std_fraction=0.1, perturbation_std=[5.0, 400.0])
    assert spec.perturbation_std == (5.0, 400.0)
    assert PerlinNoise.from_dict(spec.to_dict()) == spec
    assert "perturbation_std" not in PerlinNoise().to_dict()


# --- #7: the network's output is checked --------------------------------------------------


class Squeezed(torch.nn.Module):  # x[0] instead of x[:, ...]: (C, H, W)
    def forward(self, x):
        return x[0, 1]


class ExtraDim(torch.nn.Module):  # (B, 1, C, H, W)
    def forward(self, x):
        return x[:, 1:2]


class FewerChannels(torch.nn.Module):
    def forward(self, x):
        return x[:, 1, :1]


class Numpy(torch.nn.Module):
    def forward(self, x):
        return x[:, 1].detach().numpy()


class Integer(torch.nn.Module):
    def forward(self, x):
        return x[:, 1].round().long()


class AllNaN(torch.nn.Module):
    def forward(self, x):
        return x[:, 1] * float("nan")


@pytest.mark.parametrize("net", [Squeezed(), ExtraDim(), FewerChannels()])
def test_output_shape_checked(net):
    m = _model(net, name="mine")
    for batch in (1, 3):  # B = 1 passed a (C, H, W) output silently before
        with pytest.raises(ValueError, match=r"model 'mine'.*returned shape .*expected"):
            m(torch.zeros(batch, 2, 2, 8, 16))
    with pytest.raises(ValueError, match="model 'mine'"):
        xfuxi.forecast(_truth(), model=m, steps=1, progress=False)


@pytest.mark.parametrize("net, what", [(Numpy(), "ndarray"), (Integer(), "int64")])
def test_output_type_checked(net, what):
    with pytest.raises(TypeError, match=f"model 'mine'.*{what}"):
        _model(net, name="mine")(torch.zeros(2, 2, 2, 8, 16))


def test_valid_output_unchanged():
    x = torch.randn(3, 2, 2, 8, 16)
    assert torch.equal(_model()(x), torch.roll(x[:, 1], 1, dims=-1))


def test_first_step_nan_everywhere_refused():
    m = _model(AllNaN(), name="broken")
    with pytest.raises(ValueError, match="model 'broken' returned NaN everywhere"):
        ensemble(_truth(), model=m, n=2, steps=2, progress=False,
                 perturbation=GaussianNoise(perturbation_std=(1.0, 1.0)))  # fmt: skip
    pair = np.stack([_truth().isel(time=i).to_array().values[:, 0] for i in (0, 1)])
    with pytest.raises(ValueError, match="model 'broken' returned NaN everywhere"):
        rollout(m, pair, 2)
    # NaN initial states are not the network's fault
    out = rollout(m, np.full_like(pair, np.nan), 1)
    assert np.isnan(out).all()


# --- #5: save_model of a wrapped module ----------------------------------------------------


def test_save_model_of_an_own_module_says_what_to_do(tmp_path):
    with pytest.raises(TypeError) as err:
        save_model(_model(name="mine"), tmp_path / "m")
    text = str(err.value)
    assert "cannot save a network of type Advect" in text
    assert "FuXiNet" in text and "torch.save" in text and "wrap_model" in text
    assert not (tmp_path / "m").exists()


# --- #10: ONNX export of a module without parameters ---------------------------------------


def test_export_onnx_of_a_module_without_parameters(tmp_path):
    pytest.importorskip("onnx")
    from xfuxi.models.onnx import export_onnx, import_onnx

    m = _model(name="advect")
    path = export_onnx(m, tmp_path / "advect.onnx")  # a bare StopIteration before
    assert path.exists()
    if importlib.util.find_spec("onnx2torch") is not None:
        back = import_onnx(path, channels=CHANNELS, latitude=LAT, longitude=LON)
        x = torch.randn(2, 2, 2, 8, 16) + 250
        assert torch.allclose(back(x), m(x))


# --- #11: dtype of a module without parameters; wrap_model's time step --------------------


def test_module_without_parameters_follows_the_dtype_option():
    m = _model()
    assert model_dtype(m) == torch.float32
    with xfuxi.set_options(dtype="float64"):
        assert model_dtype(m) == torch.float64  # float32 (its statistics' buffers) before
        fc = xfuxi.forecast(_truth(), model=m, steps=1, progress=False)
        assert np.isfinite(fc.temperature.values).all()
    assert model_dtype(m, torch.float32) == torch.float32  # asked for: that
    assert model_dtype(_model().double()) == torch.float64  # cast: that
    with xfuxi.set_options(dtype="float64"):  # a module with parameters: its own dtype
        conv = _model(torch.nn.Conv2d(4, 2, 1))
        assert model_dtype(conv) == torch.float32


def test_wrap_model_takes_a_timestep():
    m = _model(timestep_hours=12)
    assert m.timestep_hours == 12.0 and m.timestep == np.timedelta64(43200, "s")
    ds = _truth(3).assign_coords(time=pd.date_range("2001-01-01", periods=3, freq="12h"))
    fc = xfuxi.forecast(ds, model=m, steps=2, progress=False)
    assert (fc.prediction_timedelta.values == np.array([12, 24], dtype="m8[h]")).all()
    with pytest.raises(ValueError, match="timestep_hours"):
        _model(timestep_hours=0)
