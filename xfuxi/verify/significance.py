"""Is one system's score significantly different from another's? A paired test over time.

Two systems scored at the same times (initial times of forecasts, cycles of an
assimilation) give two series of scores whose difference is autocorrelated: forecasts
started six hours apart make similar errors. A paired t-test that takes the times as
independent then finds differences "significant" that are not. Here the variance of the
mean difference is inflated for the lag-1 autocorrelation of the differences (an AR(1)
model: Wilks, *Statistical Methods in the Atmospheric Sciences*, 3rd ed., §5.2.4; Geer
2016, "Significance of changes in medium-range forecast scores", Tellus A 68, 30229,
which ECMWF uses for its scorecards). The definitions are in the documentation,
docs/verification.md (Significance of a difference).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, TypeVar

import numpy as np
import xarray as xr
from scipy import stats

from ..config import check_flag
from .weights import as_float

__all__ = ["score_difference"]

T = TypeVar("T", xr.Dataset, xr.DataArray)

#: the statistics along the result's ``statistic`` dim, in this order
STATISTICS = (
    "difference",
    "lower",
    "upper",
    "relative_difference",
    "p_value",
    "effective_sample_size",
    "lag1_autocorrelation",
)


def _test(a: np.ndarray, b: np.ndarray, confidence: float, autocorrelation: bool) -> np.ndarray:
    """The statistics (last axis, :data:`STATISTICS`) of the paired series on the last
    axis of ``a`` and ``b``."""
    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    d = a - b
    n = d.shape[-1]
    mean = d.mean(-1)
    dev = d - mean[..., None]
    ss = (dev**2).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sample = np.where(ss > 0, (dev[..., 1:] * dev[..., :-1]).sum(-1) / ss, 0.0)
    # the sample autocorrelation of a short series is biased low, E[r̂] ≈ ρ − (1 + 3ρ)/n:
    # undone, as the intervals then hold the true difference nearer their nominal share
    r1 = (n * sample + 1.0) / (n - 3.0)
    # only a positive autocorrelation inflates the variance; a negative one is not taken
    # to make the times worth more than independent ones
    r = np.clip(r1, 0.0, 0.99) if autocorrelation else np.zeros_like(r1)
    n_eff = n * (1.0 - r) / (1.0 + r)
    dof = np.maximum(n_eff - 1.0, 1.0)
    se = np.sqrt(ss / (n - 1) / n_eff)
    half = stats.t.ppf(0.5 + confidence / 2.0, dof) * se
    with np.errstate(invalid="ignore", divide="ignore"):
        tstat = np.where(se > 0, np.abs(mean) / np.where(se > 0, se, 1.0), np.inf)
        p = np.where(se > 0, 2.0 * stats.t.sf(tstat, dof), np.where(mean == 0, 1.0, 0.0))
        mb = b.mean(-1)
        rel = np.where(mb != 0, mean / np.where(mb != 0, mb, 1.0), np.nan)
    return np.stack([mean, mean - half, mean + half, rel, p, n_eff, r1], axis=-1)


def score_difference(
    score_a: T,
    score_b: T,
    /,
    *,
    dim: Hashable = "time",
    confidence: float = 0.95,
    autocorrelation: bool = True,
) -> T:
    """The mean difference of two systems' scores over ``dim``, its confidence interval and
    p-value, from a paired t-test that allows for the autocorrelation of the differences.

    Parameters
    ----------
    score_a, score_b : Dataset or DataArray
        Scores of systems A and B at the same values of ``dim`` (one per initial time or
        cycle), of the same type and shape: for example ``xfuxi.mse(fc_a, truth,
        dim=["latitude", "longitude"])``, which keeps ``time``. The test is of the mean of
        these values (of the mean MSE for per-time MSEs; for a difference of RMSEs give
        per-time RMSEs, as ECMWF's scorecards do). The values must be evenly spaced along
        ``dim`` for the lag-1 autocorrelation to mean one step.
    dim : str, default "time"
        The dim of the series; at least 4 values, no NaN.
    confidence : float, default 0.95
        Of the interval, in (0, 1).
    autocorrelation : bool, default True
        Inflate the variance for the lag-1 autocorrelation of the differences. False: the
        times are taken as independent (an ordinary paired t-test).

    Returns
    -------
    Dataset or DataArray
        The type of the inputs, ``dim`` replaced by ``statistic``: ``difference`` (mean of
        A − B), ``lower`` and ``upper`` (the interval of the difference),
        ``relative_difference`` (the difference over B's mean), ``p_value`` (two-sided,
        that the mean difference is 0), ``effective_sample_size`` and
        ``lag1_autocorrelation`` (of the differences, the bias-corrected estimate,
        before it is limited to 0..0.99). No ``units``
        attribute: the statistics differ in units (the difference and its interval are in
        the scores' units).

    Raises
    ------
    TypeError
        Inputs that are not xarray objects of one type, hold non-numeric or complex data,
        or an ``autocorrelation`` that is not True or False.
    ValueError
        Inputs whose dims, variables or coordinates differ, ``dim`` missing or shorter than
        4, NaN in either, or ``confidence`` outside (0, 1).

    Notes
    -----
    With the differences ``d_t = a_t − b_t`` (``t = 1 … n``), their mean ``d̄``, variance
    ``s²`` and sample lag-1 autocorrelation ``r̂``, the autocorrelation is estimated as
    ``r₁ = (n r̂ + 1) / (n − 3)`` (undoing the bias ``E[r̂] ≈ ρ − (1 + 3ρ)/n`` of a short
    series; Kendall 1954, Marriott and Pope 1954). With ``r = min(max(r₁, 0), 0.99)`` (0
    when ``autocorrelation=False``), the effective sample size is
    ``n' = n (1 − r) / (1 + r)``,
    the standard error ``s / √n'``, and the interval ``d̄ ± t_{n'−1} s / √n'`` with the
    Student-t quantile of ``n' − 1`` (at least 1) degrees of freedom. Each test is one
    test: over many variables, levels and leads some differences come out significant by
    chance (5 in 100 at 95 %). The interval's coverage, measured on simulated series, is in
    the documentation, docs/verification.md (Significance of a difference).

    Examples
    --------
    System A better than B by 0.3 on average, over 30 times whose differences are
    autocorrelated (as those of forecasts started 6 hours apart are):

    >>> rng = np.random.default_rng(1)
    >>> def smooth():  # noise correlated over neighbouring times
    ...     return np.convolve(rng.normal(size=33), np.ones(4) / 2, "valid")
    >>> b = xr.DataArray(10 + smooth(), dims="time", name="mse")
    >>> a = b - 0.3 + 0.5 * smooth()
    >>> res = score_difference(a, b)
    >>> res.sel(statistic=["difference", "lower", "upper"]).round(2).values
    array([-0.47, -0.81, -0.13])
    >>> res.sel(statistic=["lag1_autocorrelation", "effective_sample_size"]).round(2).values
    array([0.66, 6.15])

    Taken as 30 independent times, the interval would be a third as wide:

    >>> naive = score_difference(a, b, autocorrelation=False)
    >>> naive.sel(statistic=["lower", "upper"]).round(2).values
    array([-0.59, -0.35])
    >>> a.fuxi.score_difference(b).equals(res)  # through the accessor
    True
    """
    if not isinstance(score_a, (xr.Dataset, xr.DataArray)) or type(score_a) is not type(score_b):
        raise TypeError(
            f"score_a and score_b must be two Datasets or two DataArrays; got "
            f"{type(score_a).__name__} and {type(score_b).__name__}"
        )
    autocorrelation = bool(check_flag(autocorrelation, "autocorrelation"))
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.number)):
        raise TypeError(f"confidence must be a number in (0, 1); got {confidence!r}")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), such as 0.95; got {confidence!r}")
    a = as_float(score_a, "score_a")
    b = as_float(score_b, "score_b")
    _check_pair(a, b, dim)

    def one(x: xr.DataArray, y: xr.DataArray) -> xr.DataArray:
        out = xr.apply_ufunc(
            _test,
            x,
            y,
            kwargs={"confidence": float(confidence), "autocorrelation": autocorrelation},
            input_core_dims=[[dim], [dim]],
            output_core_dims=[["statistic"]],
            dask="parallelized",
            output_dtypes=["float64"],
            # (a lazy score is chunked along the series, one time a chunk: joined, as the
            # series is small)
            dask_gufunc_kwargs={
                "output_sizes": {"statistic": len(STATISTICS)},
                "allow_rechunk": True,
            },
            keep_attrs=False,
        )
        out = out.assign_coords(statistic=list(STATISTICS))
        out.attrs = {
            "description": f"paired test of the mean of A − B over {dim!s}",
            "confidence": float(confidence),
            "autocorrelation": int(autocorrelation),
        }
        out.name = x.name
        return out

    if isinstance(a, xr.DataArray):
        return one(a, b)
    out = xr.Dataset({v: one(a[v], b[v]) for v in a.data_vars})
    out.attrs = {"confidence": float(confidence), "autocorrelation": int(autocorrelation)}
    return out


def _check_pair(a: Any, b: Any, dim: Hashable) -> None:
    """Refuse two score objects that cannot be paired value by value along ``dim``."""
    named = isinstance(a, xr.Dataset)
    if named:
        if set(a.data_vars) != set(b.data_vars):
            raise ValueError(
                f"score_a and score_b hold other variables: {sorted(map(str, a.data_vars))} "
                f"and {sorted(map(str, b.data_vars))}"
            )
        if not a.data_vars:
            raise ValueError("score_a holds no variable")
    pairs = [(a[v], b[v]) for v in a.data_vars] if named else [(a, b)]
    for x, y in pairs:
        where = f" (variable {x.name!r})" if named else ""
        if dim not in x.dims:
            raise ValueError(
                f"score_a has no dim {dim!r}{where} (dims {list(x.dims)}); keep it when "
                "scoring (a score's dim= lists the dims it reduces)"
            )
        if x.sizes[dim] < 4:
            raise ValueError(
                f"the series along {dim!r} has {x.sizes[dim]} value(s){where}; the test "
                "needs at least 4 (and gives a wide interval with fewer than about 10)"
            )
        if dict(x.sizes) != dict(y.sizes):
            raise ValueError(
                f"score_a and score_b differ in shape{where}: {dict(x.sizes)} and {dict(y.sizes)}"
            )
        for c in x.dims:
            if c in x.coords or c in y.coords:
                same = c in x.coords and c in y.coords and np.array_equal(x[c].values, y[c].values)
                if not same:
                    raise ValueError(
                        f"score_a and score_b have other {c!r} coordinates{where}: the test "
                        "pairs them value by value (select the common ones first)"
                    )
        for name, z in (("score_a", x), ("score_b", y)):
            if bool(z.isnull().any()):
                raise ValueError(
                    f"{name} holds NaN{where}: the test needs complete series (dropping a "
                    "time would pair its neighbours across the gap as one step apart)"
                )
