"""The LETKF's observation localization scales with the grid, not the grid squared.

It built the dense (P, P) correlation of the grid (and a (P, P, 3) temporary) to use a few
of its columns: 3 GB for a 61 x 120 grid, 51 GB (estimated) for 1.5°. Now only the
correlations of each footprint's points with the grid points within their support are
computed, and the footprints are kept sparse; the weights are the same, bit for bit.
"""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pytest
import torch

import xfuxi.assimilation.letkf as letkf_module
import xfuxi.assimilation.localization as loc_module
from xfuxi.assimilation.config import LocalizationOptions
from xfuxi.assimilation.cost import ObsSlot
from xfuxi.assimilation.letkf import LETKFOptions, letkf_analysis, observation_localization
from xfuxi.assimilation.localization import (
    index_correlation,
    localization,
    sphere_correlation,
    sphere_sqrt_factor,
)
from xfuxi.observations.operator import build_operator


def _random_footprints(rng, p, m, k):
    """Observation gathers (m, k): neighbours, single points, repeats and zero weights."""
    index = rng.integers(0, p, size=(m, k))
    index[: m // 5, 1:] = index[: m // 5, :1]  # at one grid point
    index[m // 5 : m // 4] = index[m // 4 : m // 4 + (m // 4 - m // 5)]  # shared footprints
    weight = rng.random((m, k))
    weight[: m // 10, 1:] = 0.0
    return index, weight


def _dense_reference(index, weight, corr):
    """The weights ``(P, m)`` as the dense code computed them: ``C[:, q] @ w`` per obs."""
    p = corr.shape[0]
    wabs = np.abs(weight)
    wn = wabs / wabs.sum(1, keepdims=True)
    out = np.zeros((p, index.shape[0]))
    for j in range(index.shape[0]):
        q, inv = np.unique(index[j] % p, return_inverse=True)
        ww = np.bincount(inv, weights=wn[j], minlength=q.size)
        keep = ww > 0
        out[:, j] = corr[:, q[keep]] @ np.round(ww[keep], 12)
    return out


GRIDS = {
    "global": (np.linspace(-87.2, 87.2, 16), np.arange(32) * 11.25),
    "descending": (np.linspace(90.0, -90.0, 13), np.arange(24) * 15.0),
    "regional": (np.linspace(20.0, 60.0, 11), np.linspace(100.0, 160.0, 16)),
}


@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize(
    ("length_scale", "kind"),
    [(1500.0, "gaspari_cohn"), (400.0, "gaspari_cohn"), (30000.0, "gaspari_cohn"),
     (300.0, "gaussian"), (2000.0, "gaussian")],
)  # fmt: skip
@pytest.mark.parametrize("k", [1, 4, 9])
def test_weights_equal_the_dense_correlations_bit_for_bit(grid, length_scale, kind, k):
    lat, lon = GRIDS[grid]
    p = lat.size * lon.size
    rng = np.random.default_rng(k)
    index, weight = _random_footprints(rng, p, 60, k)
    opts = LocalizationOptions(length_scale=length_scale, kind=kind)
    loc = observation_localization(
        index, weight, state_shape=(1, lat.size, lon.size), localization=opts,
        latitude=lat, longitude=lon,
    )  # fmt: skip
    got = loc.weights(np.arange(p))
    ref = _dense_reference(index, weight, sphere_correlation(lat, lon, length_scale=length_scale,
                                                             kind=kind))  # fmt: skip
    np.testing.assert_array_equal(got, ref)
    # in batches of columns, as the analysis reads them
    for start in range(0, p, 37):
        pts = np.arange(start, min(start + 37, p))
        np.testing.assert_array_equal(loc.weights(pts), ref[pts])


@pytest.mark.parametrize(("n", "length_scale"), [(40, 4.0), (300, 20.0), (7, 50.0)])
def test_index_grid_weights_equal_the_dense_correlations(n, length_scale):
    rng = np.random.default_rng(n)
    index, weight = _random_footprints(rng, n, 40, 2)
    loc = observation_localization(
        index, weight, state_shape=(1, 1, n),
        localization=LocalizationOptions(length_scale=length_scale, n_points=n),
    )  # fmt: skip
    ref = _dense_reference(index, weight, index_correlation(n, length_scale=length_scale))
    np.testing.assert_array_equal(loc.weights(np.arange(n)), ref)


def test_localization_of_a_grid_never_allocates_a_grid_by_grid_array(monkeypatch):
    """A 32 x 64 grid (P = 2048) with 50 observations: no allocation of P² float64 (33 MB);
    the dense code allocated the (P, P) correlation and a (P, P, 3) temporary."""

    def no_dense(*args, **kwargs):
        raise AssertionError("the grid-by-grid correlation was built")

    monkeypatch.setattr(letkf_module, "sphere_correlation", no_dense, raising=False)
    monkeypatch.setattr(loc_module, "sphere_correlation", no_dense)
    lat, lon = np.linspace(-87.2, 87.2, 32), np.arange(64) * 5.625
    p = lat.size * lon.size
    op, _ = build_operator(
        [("t", 500.0)], lat, lon, obs_variable=["t"] * 50,
        obs_latitude=np.linspace(-80, 80, 50), obs_longitude=np.linspace(0, 350, 50),
        obs_level=np.full(50, 500.0),
    )  # fmt: skip
    wts = op.weights()
    tracemalloc.start()
    try:
        loc = observation_localization(
            wts.index, wts.weight, state_shape=(1, lat.size, lon.size),
            localization=LocalizationOptions(length_scale=1000.0), latitude=lat, longitude=lon,
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * p * p / 4, f"peak {peak / 2**20:.1f} MB for a grid of {p} points"
    # the footprints keep their nonzero weights only: a small part of P x F
    assert loc.footprint.nnz < 0.2 * p * loc.footprint.shape[1]


def test_analysis_with_sparse_footprints_equals_the_dense_one(monkeypatch):
    """``ObservationLocalization.horizontal`` reads a sparse footprint as the dense one."""
    g = torch.Generator().manual_seed(3)
    channels = [("t", 250.0), ("t", 850.0)]
    lat, lon = np.linspace(-80.0, 80.0, 9), np.arange(18) * 20.0
    x = 250 + torch.randn(12, 1, 2, 9, 18, generator=g, dtype=torch.float64)
    pairs = torch.cat([x + 0.1 * torch.randn(x.shape, generator=g, dtype=x.dtype), x], 1)
    rng = np.random.default_rng(3)
    n_obs = 40
    op, _ = build_operator(
        channels, lat, lon, obs_variable=["t"] * n_obs,
        obs_latitude=rng.uniform(-75, 75, n_obs), obs_longitude=rng.uniform(0, 360, n_obs),
        obs_level=rng.choice([250.0, 500.0, 850.0], n_obs),
    )  # fmt: skip
    y = torch.as_tensor(250 + rng.normal(size=n_obs))
    slots = [ObsSlot(0, op, y, torch.ones(n_obs, dtype=torch.float64))]
    kw = dict(
        localization=LocalizationOptions(length_scale=2500.0, vertical_length_scale=1.0),
        latitude=lat, longitude=lon, channels=channels, options=LETKFOptions(point_chunk=16),
    )  # fmt: skip
    sparse_run = letkf_analysis(pairs, slots, **kw)
    original = letkf_module.observation_localization

    def dense(*args, **kwargs):
        loc = original(*args, **kwargs)
        return dataclasses.replace(loc, footprint=loc.footprint.toarray())

    monkeypatch.setattr(letkf_module, "observation_localization", dense)
    dense_run = letkf_analysis(pairs, slots, **kw)
    assert torch.equal(sparse_run.members, dense_run.members)
    assert not torch.allclose(sparse_run.members, pairs)


def test_point_correlation_columns_and_support():
    from xfuxi.assimilation.localization import PointCorrelation, support_radius

    lat, lon = GRIDS["global"]
    full = sphere_correlation(lat, lon, length_scale=800.0)
    pc = PointCorrelation(lat, lon, length_scale=800.0)
    for q in ([0], [5, 6, 37], [lat.size * lon.size - 1, 100]):
        rows, values = pc.columns(np.array(q))
        np.testing.assert_array_equal(values, full[rows][:, q])
        outside = np.setdiff1d(np.arange(full.shape[0]), rows)
        assert (full[outside][:, q] == 0).all() and outside.size > 0
    assert support_radius(800.0, "gaspari_cohn") == 1600.0
    with pytest.raises(ValueError, match="latitude and longitude"):
        PointCorrelation(length_scale=1.0)
    with pytest.raises(ValueError, match="length_scale must be positive"):
        PointCorrelation(lat, lon, length_scale=0.0)


def test_sphere_correlation_in_blocks_equals_the_one_shot_formula(monkeypatch):
    lat, lon = GRIDS["regional"]
    la, lo = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
    xyz = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)
    xyz = xyz.reshape(-1, 3)
    d = np.linalg.norm(xyz[:, None, :] - xyz[None, :, :], axis=-1) * loc_module.EARTH_RADIUS_KM
    ref = loc_module.correlation_function(d, length_scale=700.0, kind="gaspari_cohn")
    monkeypatch.setattr(loc_module, "_BLOCK_ELEMENTS", 3 * xyz.shape[0] * 7)  # 7 rows a block
    np.testing.assert_array_equal(sphere_correlation(lat, lon, length_scale=700.0), ref)


def test_regional_grid_too_large_for_the_dense_square_root_is_refused(monkeypatch):
    lat, lon = GRIDS["regional"]  # 11 x 16: not a full circle of longitudes
    ok = sphere_sqrt_factor(lat, lon, length_scale=500.0, variance=1.0)
    np.testing.assert_allclose(
        ok @ ok.T, sphere_correlation(lat, lon, length_scale=500.0), atol=1e-8
    )
    monkeypatch.setattr(loc_module, "MAX_DENSE_POINTS", 100)
    with pytest.raises(ValueError, match=r"regional grid.*11x16 = 176 points.*at most 100"):
        sphere_sqrt_factor(lat, lon, length_scale=500.0)
    with pytest.raises(ValueError, match="at most 100"):
        localization(lat, lon, length_scale=500.0)
    # a full circle of longitudes takes the zonal Fourier path, whatever its size
    assert localization(*GRIDS["global"], length_scale=2000.0).spatial.shape[0] == 512
