"""The scores WeatherBench2 has that xfuxi lacked (issue 24 item 2), each against a reference:
brute force, an analytic Gaussian, or an independent package in the same test."""

from __future__ import annotations

import dask.array as da
import numpy as np
import properscoring as ps
import pytest
import xarray as xr
import xskillscore as xs
from scipy import stats

import xfuxi
from xfuxi.verify import (
    area_weights,
    central_reliability,
    crps,
    debiased_ensemble_mean_mse,
    energy_score,
    ensemble_ignorance,
    gaussian_brier_score,
    gaussian_crps,
    gaussian_ignorance,
    gaussian_variance,
    ranked_probability_score,
    wind_vector_rmse,
)

LAT = np.array([-60.0, -20.0, 20.0, 60.0])
LON = np.arange(0.0, 360.0, 72.0)
COORDS = {"latitude": LAT, "longitude": LON}


def ens(m=6, seed=0, nt=3):
    rng = np.random.default_rng(seed)
    fc = xr.DataArray(rng.normal(size=(nt, m, LAT.size, LON.size)), coords=COORDS, name="t",
                      dims=("time", "number", "latitude", "longitude"))  # fmt: skip
    truth = xr.DataArray(rng.normal(size=(nt, LAT.size, LON.size)), coords=COORDS, name="t",
                         dims=("time", "latitude", "longitude"))  # fmt: skip
    return fc, truth


def wmean(point):
    """WeatherBench2's reduction by hand: area-weighted mean per time, then time mean."""
    w = area_weights(LAT).values[:, None] * np.ones(LON.size)
    return np.mean([(p * w).sum() / w.sum() for p in point])


def test_wind_vector_rmse_brute_force():
    rng = np.random.default_rng(1)
    dims = ("time", "latitude", "longitude")
    mk = lambda: xr.Dataset(  # noqa: E731
        {c: (dims, rng.normal(size=(3, 4, 5))) for c in ("u_component_of_wind",
                                                         "v_component_of_wind")},
        coords=COORDS,
    )  # fmt: skip
    fc, tr = mk(), mk()
    e2 = ((fc - tr) ** 2).to_array().sum("variable").values
    got = wind_vector_rmse(fc, tr)
    assert float(got) == pytest.approx(np.sqrt(wmean(e2)), rel=1e-12)
    assert got.name == "wind_vector" and got.attrs["metric"] == "wind_vector_rmse"
    assert float(fc.fuxi.wind_vector_rmse(tr)) == float(got)
    with pytest.raises(ValueError, match="lacks the wind component"):
        wind_vector_rmse(fc[["u_component_of_wind"]], tr)


def test_gaussian_scores_analytic_and_properscoring():
    rng = np.random.default_rng(2)
    mu = xr.DataArray(rng.normal(size=(3, 4, 5)), coords=COORDS,
                      dims=("time", "latitude", "longitude"))  # fmt: skip
    sigma = np.abs(mu * 0 + rng.gamma(2.0, size=mu.shape)) + 0.1
    y = mu * 0 + rng.normal(size=mu.shape)
    point = gaussian_crps(mu, y, std=sigma, dim=[])
    np.testing.assert_allclose(point.values, ps.crps_gaussian(y.values, mu.values, sigma.values),
                               rtol=1e-12, atol=1e-14)  # fmt: skip
    assert float(gaussian_crps(mu, y, std=sigma)) == pytest.approx(wmean(point.values), rel=1e-12)
    ign = gaussian_ignorance(mu, y, std=sigma, dim=[])
    np.testing.assert_allclose(ign.values, -stats.norm.logpdf(y, mu, sigma), rtol=1e-12)
    bs = gaussian_brier_score(mu, y, std=sigma, threshold=0.3, dim=[])
    p = stats.norm.sf(0.3, mu, sigma)
    np.testing.assert_allclose(bs.values, (p - (y.values > 0.3)) ** 2, rtol=1e-10, atol=1e-15)
    assert float(gaussian_variance(mu, std=sigma)) == pytest.approx(
        wmean(sigma.values**2), rel=1e-12
    )
    # σ = 0: a point forecast, CRPS = |y − μ|
    zero = gaussian_crps(mu, y, std=sigma * 0, dim=[])
    np.testing.assert_allclose(zero.values, np.abs(y - mu).values, rtol=1e-14)
    # a large ensemble drawn from N(μ, σ²) has nearly the Gaussian CRPS (independent check)
    draws = mu.values[None] + sigma.values[None] * rng.normal(size=(4000, *mu.shape))
    ens_crps = ps.crps_ensemble(y.values, np.moveaxis(draws, 0, -1))
    assert abs(ens_crps.mean() - point.values.mean()) < 0.02
    with pytest.raises(ValueError, match="negative"):
        gaussian_crps(mu, y, std=-sigma)
    assert float(mu.fuxi.gaussian_crps(y, std=sigma)) == float(gaussian_crps(mu, y, std=sigma))


@pytest.mark.parametrize(
    "score", [gaussian_crps, gaussian_ignorance, gaussian_brier_score, gaussian_variance]
)
def test_the_gaussian_std_is_keyword_only(score):
    """gaussian_crps(mean, std, truth) ran as gaussian_crps(mean, truth, std) too, silently
    (6.2 against 155.2): every other score is (forecast, truth), and other libraries order
    the three differently."""
    mu, sigma = xr.DataArray([0.0, 1.0]), xr.DataArray([1.0, 2.0])
    kw = {"threshold": 0.5} if score is gaussian_brier_score else {}
    args = (mu, sigma) if score is gaussian_variance else (mu, sigma, mu + 1.0)
    with pytest.raises(TypeError, match="positional"):
        score(*args, **kw)
    assert np.isfinite(float(score(*args[::2], std=sigma, **kw)))


@pytest.mark.parametrize("fair", [True, False])
def test_energy_score_brute_force_and_one_point_is_crps(fair):
    fc, truth = ens(m=5)
    x, y = fc.values, truth.values
    w = (area_weights(LAT).values[:, None] * np.ones(LON.size)).ravel()
    w = w / w.sum()
    m = x.shape[1]
    brute = []
    for t in range(x.shape[0]):
        xm = x[t].reshape(m, -1)
        norm = lambda z: np.sqrt((w * z * z).sum())  # noqa: E731
        skill = np.mean([norm(xm[i] - y[t].ravel()) for i in range(m)])
        pair = sum(norm(xm[i] - xm[j]) for i in range(m) for j in range(m))
        brute.append(skill - 0.5 * pair / (m * (m - 1) if fair else m * m))
    got = energy_score(fc, truth, dim=[], fair=fair)
    np.testing.assert_allclose(got.values, brute, rtol=1e-12)
    assert float(energy_score(fc, truth, fair=fair)) == pytest.approx(np.mean(brute), rel=1e-12)
    # shift invariance (the Gram matrix is taken of centred members)
    np.testing.assert_allclose(energy_score(fc + 1e4, truth + 1e4, dim=[], fair=fair).values,
                               brute, rtol=1e-8)  # fmt: skip
    # a vector of one point: the CRPS
    one = energy_score(fc, truth, vector_dims=["longitude"], weights=None, dim=[], fair=fair)
    ref = crps(fc.isel(longitude=[0]), truth.isel(longitude=[0]), dim=[], fair=fair)
    np.testing.assert_allclose(
        energy_score(
            fc.isel(longitude=[0]),
            truth.isel(longitude=[0]),
            vector_dims=["longitude"],
            dim=[],
            fair=fair,
        ).values,  # fmt: skip
        ref.isel(longitude=0).values,
        rtol=1e-12,
    )
    assert one.dims == ("time", "latitude")


def test_energy_score_missing_members_region_and_dask():
    fc, truth = ens(m=5)
    holey = fc.copy()
    holey[0, 2, 1, 1] = np.nan
    assert np.isnan(energy_score(holey, truth, dim=[]).values[0])
    got = energy_score(holey, truth, dim=[], skipna=True)
    ref = energy_score(fc.isel(time=[0], number=[0, 1, 3, 4]), truth.isel(time=[0]), dim=[])
    assert float(got[0]) == pytest.approx(float(ref[0]), rel=1e-12)
    # a region: the norm over its points only
    reg = energy_score(fc, truth, region="tropics", dim=[])
    sub = energy_score(fc.sel(latitude=[-20.0, 20.0]), truth.sel(latitude=[-20.0, 20.0]), dim=[],
                       weights=area_weights(LAT).sel(latitude=[-20.0, 20.0]))  # fmt: skip
    np.testing.assert_allclose(reg.values, sub.values, rtol=1e-12)
    many = energy_score(fc, truth, region=["global", "tropics"])
    assert many.dims == ("region",)
    lazy = energy_score(fc.chunk({"time": 1}), truth)
    assert isinstance(lazy.data, da.Array)
    assert float(lazy.compute()) == pytest.approx(float(energy_score(fc, truth)), rel=1e-12)


def test_ensemble_ignorance_is_gaussian_fit():
    fc, truth = ens(m=8)
    mu, sd = fc.mean("number"), fc.std("number", ddof=1)
    got = ensemble_ignorance(fc, truth, dim=[])
    np.testing.assert_allclose(got.values, -stats.norm.logpdf(truth, mu, sd), rtol=1e-12)
    xr.testing.assert_allclose(ensemble_ignorance(fc, truth), gaussian_ignorance(mu, truth, std=sd))


def test_ignorance_of_a_point_mass_is_its_limit():
    # σ = 0 is a point mass: −log density is −inf where it is hit and +inf where it is missed
    # (the limits of ½ log 2π + log σ + z²/2 as σ → 0), not the NaN of 0/0; NaN stays NaN
    mu = xr.DataArray([1.0, 1.0, 2.0, np.nan], dims="x")
    y = xr.DataArray([1.0, 3.0, 2.0, 2.0], dims="x")
    sigma = xr.DataArray([0.0, 0.0, 1.0, 0.0], dims="x")
    got = gaussian_ignorance(mu, y, std=sigma, dim=[]).values
    assert got[0] == -np.inf and got[1] == np.inf and np.isnan(got[3])
    assert got[2] == pytest.approx(0.5 * np.log(2 * np.pi))
    same = xr.DataArray([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], dims=("x", "number"))
    ens_got = ensemble_ignorance(same, xr.DataArray([1.0, 2.0], dims="x"), dim=[]).values
    assert ens_got[0] == -np.inf and ens_got[1] == np.inf


@pytest.mark.parametrize("fair", [False, True])
def test_rps_matches_xskillscore(fair):
    fc, truth = ens(m=7)
    edges = np.array([-0.5, 0.0, 0.7])
    got = ranked_probability_score(fc, truth, thresholds=edges, dim=[], fair=fair)
    ref = xs.rps(truth, fc, category_edges=edges, dim=[], member_dim="number", fair=fair)
    np.testing.assert_allclose(got.values, ref.transpose(*got.dims).values, rtol=1e-12,
                               atol=1e-15)  # fmt: skip
    with pytest.raises(ValueError, match="increasing"):
        ranked_probability_score(fc, truth, thresholds=[1.0, 0.0])
    # edges that vary in space are brier_score's; the message says so (it was "could not
    # convert string to float" for a Dataset, whose iteration gives its variable names)
    with pytest.raises(TypeError, match="sequence of numbers.*got Dataset.*brier_score"):
        ranked_probability_score(fc, truth, thresholds=truth.to_dataset(name="t"))
    with pytest.raises(TypeError, match="thresholds must be numbers"):
        ranked_probability_score(fc, truth, thresholds=["low", "high"])


def test_rps_one_threshold_is_brier_of_below():
    fc, truth = ens(m=7)
    rps = ranked_probability_score(fc, truth, thresholds=[0.2], dim=[])
    below = xfuxi.brier_score(-fc, -truth, threshold=-0.2, dim=[])  # P(X < t) event
    np.testing.assert_allclose(rps.values, below.values, rtol=1e-12)


def test_debiased_ensemble_mean_mse():
    fc, truth = ens(m=6)
    x = fc.values
    point = (x.mean(1) - truth.values) ** 2 - x.var(1, ddof=1) / 6
    got = debiased_ensemble_mean_mse(fc, truth)
    assert float(got) == pytest.approx(wmean(point), rel=1e-12)
    # unbiased for the infinite ensemble: members and truth from one distribution
    rng = np.random.default_rng(5)
    big = xr.DataArray(rng.normal(size=(4000, 4)), dims=("x", "number"))
    ref = xr.DataArray(rng.normal(size=4000), dims="x")
    assert float(debiased_ensemble_mean_mse(big, ref, weights=None)) == pytest.approx(1.0, abs=0.07)


def test_central_reliability_brute_force():
    fc, truth = ens(m=9)
    fc[0, 0, 0, 0] = truth[0, 0, 0] = 0.25  # a tie, spread over two slots
    probs = [0.2, 0.5, 0.8, 0.95]
    got = central_reliability(fc, truth, probabilities=probs)
    x = np.moveaxis(fc.values, 1, -1).reshape(-1, 9)
    y = truth.values.ravel()
    expect = []
    for p in probs:
        a, b = (1 - p) / 2 * 10, (1 + p) / 2 * 10
        point = []
        for row, v in zip(x, y, strict=True):
            # the truth's slot on the rank scale, averaged over the ranks its ties allow
            r0, t = int((row < v).sum()), int((row == v).sum())
            point.append(np.mean([max(0.0, min(r + 1, b) - max(r, a)) for r in
                                  range(r0, r0 + t + 1)]))  # fmt: skip
        expect.append(wmean(np.array(point).reshape(truth.shape)))
    np.testing.assert_allclose(got.values, expect, rtol=1e-12)
    assert got.dims == ("probability",)
    # a consistent ensemble is reliable at every coverage, also those no two of five
    # members bracket (above (M - 1)/(M + 1) = 2/3), where interpolated member quantiles
    # clamped to the extremes gave 0.67 for 0.7, 0.8 and 0.9
    rng = np.random.default_rng(3)
    for m in (5, 19):
        big = xr.DataArray(rng.normal(size=(40000, m)), dims=("x", "number"))
        truth = xr.DataArray(rng.normal(size=40000), dims="x")
        cov = central_reliability(big, truth, weights=None)
        np.testing.assert_allclose(cov.values, cov.probability.values, atol=0.01)


def test_central_reliability_refuses_nan_or_repeated_probabilities():
    """NaN passed the (0, 1) check (comparisons with NaN are false) and gave NaN; a repeated
    probability gave a repeated coordinate, refused everywhere else."""
    fc, truth = ens(m=5)
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\)"):
        central_reliability(fc, truth, probabilities=[np.nan])
    with pytest.raises(ValueError, match="repeats a value"):
        central_reliability(fc, truth, probabilities=[0.2, 0.5, 0.2])


def test_new_scores_skipna_count_valid_members():
    fc, truth = ens(m=6)
    holey = fc.copy()
    holey[0, 1, 2, 3] = np.nan
    drop = dict(time=0, latitude=2, longitude=3)
    for score, kw in (
        (debiased_ensemble_mean_mse, {}),
        (ensemble_ignorance, {}),
        (ranked_probability_score, {"thresholds": [0.0, 0.5]}),
        (central_reliability, {"probabilities": [0.5]}),
    ):
        point = score(holey, truth, dim=[], skipna=True, **kw)
        ref = score(fc.isel(number=[0, 2, 3, 4, 5])[drop], truth[drop], dim=[], **kw)
        assert np.allclose(point[drop].values, ref.values, rtol=1e-12), score.__name__
        assert np.isnan(score(holey, truth, dim=[], **kw)[drop].values).all()


def _raise_scheduler(dsk, keys, **kwargs):
    raise RuntimeError("a dask array was computed before .compute()")


def test_new_scores_stay_lazy_on_dask():
    import dask

    fc, truth = ens(m=5)
    fcd, trd = fc.chunk({"time": 1, "latitude": 2}), truth.chunk({"time": 1})
    sd = fc.std("number")
    calls = {
        "energy": lambda f, t: energy_score(f, t),
        "ignorance": lambda f, t: ensemble_ignorance(f, t),
        "rps": lambda f, t: ranked_probability_score(f, t, thresholds=[0.0], fair=True),
        "debiased": lambda f, t: debiased_ensemble_mean_mse(f, t),
        "reliability": lambda f, t: central_reliability(f, t, probabilities=[0.5]),
        "gcrps": lambda f, t: gaussian_crps(f.mean("number"), t, std=sd),
        "gbrier": lambda f, t: gaussian_brier_score(f.mean("number"), t, std=sd, threshold=0.1),
        "gign": lambda f, t: gaussian_ignorance(f.mean("number"), t, std=sd),
    }
    with dask.config.set(scheduler=_raise_scheduler):
        lazy = {k: c(fcd, trd) for k, c in calls.items()}
    for k, c in calls.items():
        assert isinstance(lazy[k].data, da.Array), k
        xr.testing.assert_allclose(lazy[k].compute(), c(fc, truth))
