"""Missing data (issue 24): ensemble scores with ``skipna=True`` count only valid members."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from xfuxi.verify import (
    _kernels,
    acc,
    brier_score,
    crps,
    ensemble_mean_rmse,
    spread,
    spread_skill_ratio,
)

LAT = np.array([-60.0, -20.0, 20.0, 60.0])
LON = np.arange(0.0, 360.0, 72.0)


def ens_with_nan(m=6, seed=1, frac=0.25):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, m, LAT.size, LON.size))
    x[rng.random(x.shape) < frac] = np.nan
    x[0, :, 0, 0] = np.nan  # a point without any valid member
    x[1, 1:, 0, 1] = np.nan  # a point with exactly one valid member
    x[1, :, 0, 1][0] = 0.3
    coords = {"latitude": LAT, "longitude": LON}
    fc = xr.DataArray(x, dims=("time", "number", "latitude", "longitude"), coords=coords)
    truth = xr.DataArray(rng.normal(size=(2, LAT.size, LON.size)), coords=coords,
                         dims=("time", "latitude", "longitude"))  # fmt: skip
    return fc, truth


def brute_valid(x, y, fair):
    """CRPS of each point over its valid members, by the O(M²) definition."""
    out = np.full(y.shape, np.nan)
    for idx in np.ndindex(y.shape):
        v = x[idx][~np.isnan(x[idx])]
        n = v.size
        if n == 0 or np.isnan(y[idx]):
            continue
        pair = np.abs(v[:, None] - v[None, :]).sum()
        d = n * (n - 1) if fair else n * n
        out[idx] = np.abs(v - y[idx]).mean() - (0.5 * pair / d if n > 1 else 0.0)
    return out


@pytest.mark.parametrize("use_numba", [True, False])
@pytest.mark.parametrize("fair", [True, False])
def test_crps_skipna_counts_valid_members(use_numba, fair, monkeypatch):
    if not use_numba:
        monkeypatch.setenv("XFUXI_DISABLE_NUMBA", "1")
    elif not _kernels.have_numba():
        pytest.skip("numba not installed")
    fc, truth = ens_with_nan()
    got = crps(fc, truth, dim=[], fair=fair, skipna=True)
    ref = brute_valid(np.moveaxis(fc.values, 1, -1), truth.values, fair)
    np.testing.assert_allclose(got.values, ref, rtol=0, atol=1e-12)
    assert np.isnan(got.values[0, 0, 0]) and np.isfinite(got.values[1, 0, 1])
    # shift invariance: adding a constant to everything leaves the CRPS unchanged
    shifted = crps(fc + 1000.0, truth + 1000.0, dim=[], fair=fair, skipna=True)
    np.testing.assert_allclose(shifted.values, got.values, rtol=0, atol=1e-9)
    # the mean over points skips the point without members
    total = crps(fc, truth, weights=None, fair=fair, skipna=True)
    assert float(total) == pytest.approx(np.mean([np.nanmean(r) for r in ref]), rel=1e-12)
    # without skipna any NaN member gives NaN at that point
    assert np.isnan(crps(fc, truth, dim=[], fair=fair).values).sum() > np.isnan(ref).sum()


def test_crps_skipna_agrees_with_scores_package():
    scores = pytest.importorskip("scores")
    fc, truth = ens_with_nan(frac=0.2)
    fc = fc.isel(time=[1])  # scores gives NaN, not an error, for a point without members
    truth = truth.isel(time=[1])
    ours = crps(fc, truth, dim=[], skipna=True)
    ref = scores.probability.crps_for_ensemble(
        fc, truth, ensemble_member_dim="number", method="fair", preserve_dims="all"
    )
    both = np.isfinite(ref.values)
    assert both.sum() > 15
    np.testing.assert_allclose(ours.values[both], ref.values[both], rtol=1e-12, atol=1e-12)


def test_spread_and_mean_skipna_count_valid_members():
    fc, truth = ens_with_nan()
    x = np.moveaxis(fc.values, 1, -1)
    n = (~np.isnan(x)).sum(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        var = np.where(n == 1, 0.0, np.nanvar(x, axis=-1, ddof=1))
        mean = np.nanmean(x, axis=-1)
    var_got = spread(fc, dim=[], skipna=True) ** 2
    np.testing.assert_allclose(var_got.values, var, rtol=1e-12, equal_nan=True)
    assert var_got.values[1, 0, 1] == 0.0
    s = float(spread(fc, weights=None, skipna=True))
    assert s == pytest.approx(np.sqrt(np.mean([np.nanmean(v) for v in var])), rel=1e-12)
    e = ensemble_mean_rmse(fc, truth, dim=[], skipna=True)
    np.testing.assert_allclose(e.values, np.abs(mean - truth.values), rtol=1e-12, equal_nan=True)
    # shift invariance of spread and ensemble-mean error
    s2 = float(spread(fc + 50.0, weights=None, skipna=True))
    assert s2 == pytest.approx(s, rel=1e-9)
    ssr = float(spread_skill_ratio(fc, truth, skipna=True))
    assert ssr == pytest.approx(
        float(spread(fc, skipna=True)) / float(ensemble_mean_rmse(fc, truth, skipna=True)),
        rel=1e-12,
    )


@pytest.mark.parametrize("fair", [False, True])
def test_brier_skipna_counts_valid_members(fair):
    fc, truth = ens_with_nan()
    x = np.moveaxis(fc.values, 1, -1)
    valid = ~np.isnan(x)
    n = valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(valid, x > 0.2, 0).sum(-1) / n
        bs = (p - (truth.values > 0.2)) ** 2
        if fair:
            bs = np.where(n > 1, bs - p * (1 - p) / (n - 1), np.nan)
    got = brier_score(fc, truth, threshold=0.2, dim=[], fair=fair, skipna=True)
    np.testing.assert_allclose(got.values, bs, rtol=1e-12, equal_nan=True)
    shifted = brier_score(fc + 3.0, truth + 3.0, threshold=3.2, dim=[], fair=fair, skipna=True)
    np.testing.assert_allclose(shifted.values, got.values, atol=1e-12, equal_nan=True)


def test_one_member_spread_is_zero_with_a_warning():
    fc, truth = ens_with_nan(frac=0.0)
    one = fc.isel(number=[0]).fillna(0.0)
    with pytest.warns(UserWarning, match="one member"):
        assert float(spread(one)) == 0.0
    with pytest.warns(UserWarning, match="one member"):
        assert float(spread_skill_ratio(one, truth)) == 0.0
    # consistent with the CRPS of one member, which is its MAE (no spread term)
    got = crps(one, truth, weights=None)
    assert float(got) == pytest.approx(float(np.abs(one.isel(number=0) - truth).mean()))


def test_acc_accepts_weatherbench2_mean_names():
    rng = np.random.default_rng(0)
    coords = {"latitude": LAT, "longitude": LON}
    dims = ("latitude", "longitude")
    fc = xr.Dataset({"temperature": (dims, rng.normal(size=(4, 5)))}, coords=coords)
    truth = xr.Dataset({"temperature": (dims, rng.normal(size=(4, 5)))}, coords=coords)
    clim = xr.Dataset({"temperature": (dims, rng.normal(size=(4, 5)))}, coords=coords)
    wb2 = clim.rename(temperature="temperature_mean")
    wb2["temperature_std"] = clim["temperature"] * 0 + 1
    xr.testing.assert_identical(acc(fc, truth, wb2), acc(fc, truth, clim))
    with pytest.raises(ValueError, match="_mean"):
        acc(fc, truth, clim.rename(temperature="t"))
