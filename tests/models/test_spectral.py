"""Tests of xfuxi.models.spectral: the spectral truncation of model output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y

from tests import tiny
from xfuxi.models.checkpoint import save_model
from xfuxi.models.registry import load_model
from xfuxi.models.spectral import SpectralFilter, with_spectral_filter

# a Gaussian grid (the world's kind): there the truncation is exact
MU, _ = np.polynomial.legendre.leggauss(16)
LAT = np.rad2deg(np.arcsin(MU))
LON = np.arange(32) * 11.25


def _harmonic(ell: int, m: int) -> np.ndarray:
    colat = np.deg2rad(90.0 - LAT)[:, None]
    return (sph_harm_y(ell, m, colat, np.deg2rad(LON)[None, :])).real


def test_kept_harmonics_pass_and_removed_ones_vanish():
    f = SpectralFilter(LAT, LON, truncation=7)
    rng = np.random.default_rng(0)
    low = sum(rng.normal() * _harmonic(ell, m) for ell in range(8) for m in range(ell + 1))
    high = _harmonic(10, 3) + _harmonic(12, 0) + _harmonic(9, 9)
    x = torch.as_tensor(np.stack([low, low + high]))
    y = f(x)
    torch.testing.assert_close(y[0], x[0], atol=1e-10, rtol=0)
    torch.testing.assert_close(y[1], x[0], atol=1e-10, rtol=0)  # the high part removed
    torch.testing.assert_close(f(y), y, atol=1e-10, rtol=0)  # a projection
    assert y.shape == x.shape and y.dtype == x.dtype
    assert f(x.float()).dtype == torch.float32


def test_weights_scale_each_total_wavenumber():
    weights = np.linspace(1.0, 0.3, 8)  # a damping growing with l
    f = SpectralFilter(LAT, LON, truncation=7, weights=weights)
    for ell, m in ((0, 0), (3, 2), (7, 5)):
        x = torch.as_tensor(_harmonic(ell, m))
        torch.testing.assert_close(f(x), weights[ell] * x, atol=1e-10, rtol=0)
    x = torch.as_tensor(_harmonic(9, 1))  # beyond the truncation: still removed
    torch.testing.assert_close(f(x), torch.zeros_like(x), atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="weights must be 8 finite numbers"):
        SpectralFilter(LAT, LON, truncation=7, weights=np.ones(7))
    with pytest.raises(ValueError, match="weights must be 8 finite numbers"):
        SpectralFilter(LAT, LON, truncation=7, weights=[np.nan] * 8)


def test_filter_is_differentiable_and_refuses_bad_input():
    f = SpectralFilter(LAT, LON, truncation=5)
    x = torch.randn(2, 3, 16, 32, dtype=torch.float64, requires_grad=True)
    (f(x) ** 2).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    with pytest.raises(ValueError, match="must end in"):
        f(torch.zeros(16, 30))
    with pytest.raises(ValueError, match="truncation must be an integer"):
        SpectralFilter(LAT, LON, truncation=2.5)
    with pytest.raises(ValueError, match="more than 32 longitudes"):
        SpectralFilter(LAT, LON, truncation=16)
    with pytest.raises(ValueError, match="regularly spaced"):
        SpectralFilter(LAT, LON[:-3], truncation=3)


def test_with_spectral_filter_copies_and_survives_a_checkpoint(tmp_path):
    model = tiny.fuxi_model()
    filtered = with_spectral_filter(model, truncation=3)
    assert getattr(model, "output_filter", None) is None  # the model passed in is unchanged
    assert filtered.name == "tiny-fuxi+T3"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, len(tiny.CHANNELS), 8, 16, generator=g)
    x = model.denormalize(x)
    with torch.no_grad():
        raw, out = model(x), filtered(x)
    f = SpectralFilter(tiny.LAT, tiny.LON, truncation=3)
    torch.testing.assert_close(out, f(raw))
    path = save_model(filtered, tmp_path / "m")
    back = load_model(path)
    assert back.output_filter.truncation == 3
    with torch.no_grad():
        torch.testing.assert_close(back(x), out)
    from xfuxi.models.rollout import copy_model  # a copy (e.g. fine-tuning) keeps the filter

    copied = copy_model(filtered)
    assert copied.output_filter is not filtered.output_filter
    with torch.no_grad():
        torch.testing.assert_close(copied(x), out)
    # a filter with per-wavenumber weights keeps them (they were dropped: another forecast)
    damped = copy_model(filtered)
    damped.output_filter = SpectralFilter(tiny.LAT, tiny.LON, 3, weights=[1.0, 1.0, 0.5, 0.25])
    back = load_model(save_model(damped, tmp_path / "damped"))
    assert back.output_filter.weights == [1.0, 1.0, 0.5, 0.25]
    with torch.no_grad():
        torch.testing.assert_close(back(x), damped(x))
    # any other filter cannot be written and read back
    other = copy_model(filtered)
    other.output_filter = torch.nn.Identity()
    with pytest.raises(TypeError, match="output_filter is a Identity"):
        save_model(other, tmp_path / "other")


def test_with_spectral_filter_filters_every_stage_of_a_cascade():
    from xfuxi.models.cascade import Cascade

    cascade = Cascade([tiny.fuxi_model(seed=0), tiny.fuxi_model(seed=1)], [2], name="c")
    out = with_spectral_filter(cascade, truncation=3)
    assert out.name == "c+T3" and out.switch_steps == (2,)
    assert all(s.output_filter.truncation == 3 for s in out.stages)
    assert all(getattr(s, "output_filter", None) is None for s in cascade.stages)
    with pytest.raises(TypeError, match="ForecastModel or Cascade"):
        with_spectral_filter(torch.nn.Identity(), truncation=3)
