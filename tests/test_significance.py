"""xfuxi.verify.significance.score_difference: the paired test against scipy's, its
autocorrelation correction written out, the layouts it takes and the input it refuses."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import xfuxi
from xfuxi.config import FlagError
from xfuxi.verify.significance import STATISTICS, score_difference


def _pair(n: int = 20, seed: int = 0) -> tuple[xr.DataArray, xr.DataArray]:
    rng = np.random.default_rng(seed)
    time = np.arange(n) * np.timedelta64(6, "h") + np.datetime64("2020-01-01")
    b = xr.DataArray(5 + rng.normal(size=(3, n)), dims=("level", "time"),
                     coords={"level": [250, 500, 850], "time": time}, name="rmse")  # fmt: skip
    a = b - 0.2 + 0.4 * rng.normal(size=(3, n))
    return a.rename("rmse"), b


def test_without_autocorrelation_it_is_scipys_paired_t_test():
    a, b = _pair()
    res = score_difference(a, b, autocorrelation=False, confidence=0.9)
    for k in range(3):
        ref = stats.ttest_rel(a[k].values, b[k].values)
        ci = ref.confidence_interval(0.9)
        got = res.isel(level=k)
        np.testing.assert_allclose(got.sel(statistic="p_value"), ref.pvalue, rtol=1e-10)
        np.testing.assert_allclose(got.sel(statistic="lower"), ci.low, rtol=1e-10)
        np.testing.assert_allclose(got.sel(statistic="upper"), ci.high, rtol=1e-10)
        np.testing.assert_allclose(got.sel(statistic="effective_sample_size"), 20)
    assert list(res["statistic"].values) == list(STATISTICS)
    assert res.dims == ("level", "statistic")


def test_the_autocorrelation_correction_written_out():
    rng = np.random.default_rng(7)
    n = 30
    d = 0.3 + np.convolve(rng.normal(size=n + 2), np.ones(3) / 3, "valid")
    b = xr.DataArray(np.full(n, 3.0), dims="time")
    res = score_difference(b + d, b)
    m = d.mean()
    dev = d - m
    sample = (dev[1:] * dev[:-1]).sum() / (dev**2).sum()
    r1 = (n * sample + 1) / (n - 3)
    n_eff = n * (1 - r1) / (1 + r1)
    se = np.sqrt(d.var(ddof=1) / n_eff)
    half = stats.t.ppf(0.975, n_eff - 1) * se
    want = {
        "difference": m, "lower": m - half, "upper": m + half, "relative_difference": m / 3.0,
        "p_value": 2 * stats.t.sf(abs(m) / se, n_eff - 1), "effective_sample_size": n_eff,
        "lag1_autocorrelation": r1,
    }  # fmt: skip
    assert 0 < r1 < 1 and 2 < n_eff < n  # the case the correction is for
    for name, value in want.items():
        np.testing.assert_allclose(res.sel(statistic=name), value, rtol=1e-10, err_msg=name)


def test_a_negative_autocorrelation_does_not_narrow_the_interval():
    d = np.array([1.0, -1.0] * 6) + 0.5
    zero = xr.DataArray(np.zeros(12), dims="time")
    res = score_difference(xr.DataArray(d, dims="time"), zero)
    naive = score_difference(xr.DataArray(d, dims="time"), zero, autocorrelation=False)
    assert float(res.sel(statistic="lag1_autocorrelation")) < 0
    xr.testing.assert_allclose(
        res.sel(statistic=["lower", "upper", "p_value"]),
        naive.sel(statistic=["lower", "upper", "p_value"]),
    )


def test_equal_and_constant_differences():
    a, b = _pair()
    same = score_difference(b, b)
    assert (same.sel(statistic="difference") == 0).all()
    assert (same.sel(statistic="p_value") == 1).all()
    shifted = score_difference(b + 0.5, b)
    np.testing.assert_allclose(shifted.sel(statistic=["lower", "upper"]), 0.5, rtol=1e-12)
    assert (shifted.sel(statistic="p_value") < 1e-100).all()  # rounding leaves a variance
    exact = xr.DataArray(np.arange(6.0), dims="time")
    const = score_difference(exact + 0.5, exact)
    assert float(const.sel(statistic="p_value")) == 0.0


def test_datasets_dask_accessor_and_inputs_untouched():
    a, b = _pair()
    da_, db_ = xr.Dataset({"z": a, "t": a * 2}), xr.Dataset({"z": b, "t": b * 2})
    da_.attrs["title"] = "A"
    before = da_.copy(deep=True)
    res = score_difference(da_, db_)
    xr.testing.assert_identical(da_, before)
    assert set(res.data_vars) == {"z", "t"}
    xr.testing.assert_allclose(res["z"], score_difference(a, b))
    lazy = score_difference(da_.chunk({"level": 1}), db_.chunk({"level": 1}))
    assert lazy["z"].chunks is not None
    xr.testing.assert_allclose(lazy.compute(), res)
    xr.testing.assert_allclose(da_.fuxi.score_difference(db_), res)
    xr.testing.assert_allclose(xfuxi.score_difference(a, b, dim="time"), res["z"])


def test_a_clear_difference_is_found_and_noise_is_not():
    rng = np.random.default_rng(3)
    b = xr.DataArray(10 + rng.normal(size=60), dims="time")
    better = score_difference(b - 1.0 + 0.3 * rng.normal(size=60), b)
    noise = score_difference(b + 0.3 * rng.normal(size=60), b)
    assert float(better.sel(statistic="p_value")) < 1e-6
    assert float(better.sel(statistic="upper")) < 0
    assert float(noise.sel(statistic="lower")) < 0 < float(noise.sel(statistic="upper"))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a, b: (a.isel(time=slice(0, 3)), b.isel(time=slice(0, 3))), "at least 4"),
        (lambda a, b: (a, b.isel(time=slice(0, 10))), "differ in shape"),
        (lambda a, b: (a, b.assign_coords(time=b["time"] + np.timedelta64(1, "h"))), "'time'"),
        (lambda a, b: (a.where(a > 5.5), b), "NaN"),
        (lambda a, b: (a.rename(time="t"), b.rename(time="t")), "no dim 'time'"),
        (lambda a, b: (a.to_dataset(name="z"), b.to_dataset(name="t")), "other variables"),
    ],
)
def test_refusals(change, message):
    a, b = change(*_pair())
    with pytest.raises(ValueError, match=message):
        score_difference(a, b)


def test_type_refusals():
    a, b = _pair()
    with pytest.raises(TypeError, match="two Datasets or two DataArrays"):
        score_difference(a, b.to_dataset())
    with pytest.raises(TypeError, match="two Datasets or two DataArrays"):
        score_difference(a.values, b.values)
    with pytest.raises(FlagError, match="autocorrelation"):
        score_difference(a, b, autocorrelation="no")
    with pytest.raises(TypeError, match="confidence"):
        score_difference(a, b, confidence="0.9")
    for bad in (0.0, 1.0, 95):
        with pytest.raises(ValueError, match="confidence"):
            score_difference(a, b, confidence=bad)
    with pytest.raises(TypeError, match="complex"):
        score_difference(a * 1j, b * 1j)
