"""Probabilistic (ensemble) scores: CRPS, spread, spread–skill, Brier score, rank histogram.

The ensemble dimension is ``number`` by default; ``member`` and ``realization`` are accepted
(``xfuxi.set_options(ensemble_dims=...)``) or named with ``member_dim=``. Point-wise kernels
run through ``xr.apply_ufunc(..., dask="parallelized")`` so dask arrays stay lazy. Reductions
over ``dim`` follow WeatherBench2 (area-weighted mean over non-time dims, then time mean), and
the truth, weights and thresholds must cover the forecast's grid exactly; the definitions are
in the documentation, docs/design.md (Verification).
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pandas as pd
import xarray as xr

from ..config import user_stacklevel
from ..data.stats import own_attrs
from ._docs import fill_doc, score_doc
from ._kernels import crps_ensemble_kernel
from .deterministic import rmse
from .weights import (
    Weights,
    XarrayObj,
    align_valid_time,
    as_float,
    check_unique,
    check_variable_keys,
    conform,
    ensemble_dim,
    finish_score,
    needs_valid_time,
    prepare_pair,
    reduce_score,
    reduced_dims,
    region_weights,
)

__all__ = [
    "brier_score",
    "central_reliability",
    "crps",
    "debiased_ensemble_mean_mse",
    "energy_score",
    "ensemble_ignorance",
    "ensemble_mean_rmse",
    "member_variance",
    "rank_histogram",
    "ranked_probability_score",
    "spread",
    "spread_skill_ratio",
]

Dim = str | Iterable[Hashable] | None


def _pair(forecast: XarrayObj, truth: XarrayObj, member_dim: str | None):
    mdim = ensemble_dim(forecast, member_dim)
    if mdim in truth.dims:
        raise ValueError(f"truth must not have the ensemble dimension {mdim!r}")
    # a member labelled twice is one member counted twice (an ensemble concatenated with
    # itself): it weighs twice in the CRPS, the spread and the rank histogram
    check_unique(forecast, "forecast", [mdim])
    fc, tr = prepare_pair(forecast, truth)
    return fc, tr, mdim


def _check_dim(dim: Dim, mdim: str) -> None:
    """``dim`` reduces after the ensemble is summarised: it must not name the ensemble dim."""
    if dim is not None and mdim in ([dim] if isinstance(dim, str) else list(dim)):
        raise ValueError(f"dim must not include the ensemble dimension {mdim!r}")


@dataclasses.dataclass(frozen=True)
class _Ensemble:
    """An ensemble forecast matched with its truth, and how a score of the two is reduced.

    Built by :func:`_ensemble` from a score's arguments. :meth:`score` applies a point-wise
    score of one variable to each variable, reduces it over ``dim`` and sets the attrs every
    ensemble score has (:meth:`finish`).
    """

    forecast: XarrayObj  # as given: its attrs are kept with ``keep_attrs``
    fc: XarrayObj
    tr: XarrayObj
    mdim: str
    dim: Dim
    weights: Weights
    region: Any
    skipna: bool
    keep_attrs: bool

    @property
    def members(self) -> int:
        return int(self.fc.sizes[self.mdim])

    def need_two(self, what: str) -> None:
        """Raise unless there are two members or more (``what`` names the score)."""
        if self.members < 2:
            raise ValueError(f"{what} needs at least 2 members along {self.mdim!r}")

    def per_variable(self, one: Callable[[xr.DataArray, xr.DataArray, Hashable], xr.DataArray]):
        return _per_variable(one, self.fc, self.tr)

    def finish(self, out: XarrayObj, metric: str, fair: bool | None = None, **extra: Any):
        """``out`` with the attrs: ``metric``, the estimator (unless ``fair`` is None), the
        member count and ``extra``."""
        attrs: dict[str, Any] = {"metric": metric}
        if fair is not None:
            attrs["estimator"] = "fair" if fair else "standard"
        attrs = {**attrs, "members": self.members, **extra}
        return finish_score(out, self.forecast, self.keep_attrs, attrs)

    def score(self, one, metric: str, fair: bool | None = None, **extra: Any) -> XarrayObj:
        """The score ``one(forecast, truth, name)`` per variable, reduced and finished."""
        point = self.per_variable(one)
        out = reduce_score(point, self.dim, self.weights, self.skipna, self.region)
        return self.finish(out, metric, fair, **extra)


def _ensemble(
    forecast: XarrayObj, truth: XarrayObj, member_dim: str | None, dim: Dim, weights: Weights,
    region: Any, skipna: bool, keep_attrs: bool,
) -> _Ensemble:  # fmt: skip
    """Match ``forecast`` with ``truth`` (:func:`_pair`) and check ``dim`` for a score."""
    fc, tr, mdim = _pair(forecast, truth, member_dim)
    _check_dim(dim, mdim)
    return _Ensemble(forecast, fc, tr, mdim, dim, weights, region, skipna, keep_attrs)


def _per_variable(
    one: Callable[[xr.DataArray, xr.DataArray, Hashable], xr.DataArray],
    fc: XarrayObj,
    tr: XarrayObj,
) -> XarrayObj:
    """Apply ``one(forecast, truth, name)`` to each variable of a Dataset, or to a DataArray."""
    if isinstance(fc, xr.Dataset):
        return xr.Dataset({v: one(fc[v], tr[v], v) for v in fc.data_vars})
    return one(fc, tr, fc.name)


def _over_members(
    kernel: Callable[..., np.ndarray],
    f: xr.DataArray,
    t: xr.DataArray,
    mdim: str,
    dtype: np.dtype | type,
    **kwargs,
) -> xr.DataArray:
    """``kernel(members, truth, **kwargs)`` point by point, members on the last axis (lazy on
    dask arrays)."""
    if set(f.dims) - {mdim} != set(t.dims):  # else already on one grid: skip the alignment
        f, t = xr.broadcast(f, t, exclude=[mdim])
    return xr.apply_ufunc(
        kernel,
        f,
        t,
        input_core_dims=[[mdim], []],
        kwargs=kwargs,
        dask="parallelized",
        output_dtypes=[dtype],
        dask_gufunc_kwargs={"allow_rechunk": True},
    )


@overload
def crps(
    forecast: xr.Dataset, truth: xr.Dataset, /, *, dim: Dim = None, member_dim: str | None = None,
    fair: bool = True, weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> xr.Dataset: ...  # fmt: skip
@overload
def crps(
    forecast: xr.DataArray, truth: xr.DataArray, /, *, dim: Dim = None,
    member_dim: str | None = None,
    fair: bool = True, weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> xr.DataArray: ...  # fmt: skip
@fill_doc
def crps(
    forecast: XarrayObj, truth: XarrayObj, /, *, dim: Dim = None, member_dim: str | None = None,
    fair: bool = True, weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:  # fmt: skip
    """Continuous ranked probability score of an ensemble, fair estimator by default.

    Parameters
    ----------
    {{ensemble_truth}}
    dim : str or list of str, optional
        Dimensions to average the point-wise CRPS over (not the ensemble dim); ``None``
        (default) averages all.
    {{member_dim}}
    fair : bool, default True
        ``True``: unbiased ("fair") spread term; ``False``: the standard estimator.
    {{ensemble_reduce_options}}

    Returns
    -------
    Dataset or DataArray
        Mean CRPS (units of the data), with ``attrs["metric"]`` ``"crps"`` and
        ``attrs["estimator"]`` ``"fair"`` or ``"standard"``.

    Raises
    ------
    {{raises_ensemble}}
    {{raises_type}}

    Notes
    -----
    ``CRPS = E|X − y| − ½ E|X − X′|``. With members sorted, ``x_(1..M)``,
    ``E|X − X′| = 2 Σ_i (2i − M − 1) x_(i) / D`` where ``D = M(M − 1)`` for the fair
    estimator (Ferro 2014; used by WeatherBench2 and FuXi-ENS) and ``D = M²`` for the
    standard one (Gneiting & Raftery 2007; ``properscoring.crps_ensemble``). This costs
    O(M log M) per point. With one member the spread term is 0 and CRPS equals the MAE.
    With ``skipna=True``, ``M`` is the number of valid members at each point.
    {{reduction}}

    Examples
    --------
    >>> fc = xr.DataArray([[0.0, 2.0]], dims=("x", "number"))
    >>> float(crps(fc, xr.DataArray([1.0], dims="x")))
    0.0
    >>> float(crps(fc, xr.DataArray([1.0], dims="x"), fair=False))
    0.5
    >>> float(fc.fuxi.crps(xr.DataArray([1.0], dims="x"), fair=False))  # through the accessor
    0.5
    """
    ens = _ensemble(forecast, truth, member_dim, dim, weights, region, skipna, keep_attrs)

    def one(f: xr.DataArray, t: xr.DataArray, name: Hashable) -> xr.DataArray:
        # the common type: a float64 truth is not rounded to a float32 ensemble's
        dtype = np.result_type(f.dtype, t.dtype, np.float32)
        kw = {"fair": fair, "skipna": skipna}
        return _over_members(crps_ensemble_kernel, f, t, ens.mdim, dtype, **kw)

    return ens.score(one, "crps", fair)


def member_variance(forecast: XarrayObj, mdim: str, *, skipna: bool = False) -> XarrayObj:
    """Unbiased (ddof=1) variance over ``mdim``; 0 for one (valid) member, NaN for none.

    With ``skipna`` each point uses its valid members only; warns for a one-member ensemble.
    """
    m = forecast.sizes[mdim]
    if m == 1:
        warnings.warn(
            f"the ensemble has one member along {mdim!r}: its spread is 0", UserWarning,
            stacklevel=user_stacklevel(),
        )  # fmt: skip
        return (forecast - forecast).sum(mdim, skipna=False)
    var = forecast.var(mdim, ddof=1, skipna=skipna)
    if skipna:
        # one valid member: 0 (the ddof=1 variance would be 0/0)
        var = var.where(forecast.count(mdim) != 1, 0.0)
    return var


@overload
def spread(
    forecast: xr.Dataset, /, *, dim: Dim = None, member_dim: str | None = None,
    weights: Weights = "area", region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.Dataset: ...  # fmt: skip
@overload
def spread(
    forecast: xr.DataArray, /, *, dim: Dim = None, member_dim: str | None = None,
    weights: Weights = "area", region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.DataArray: ...  # fmt: skip
@fill_doc
def spread(
    forecast: XarrayObj, /, *, dim: Dim = None, member_dim: str | None = None,
    weights: Weights = "area", region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> XarrayObj:  # fmt: skip
    """Ensemble spread: area-weighted RMS of the member standard deviation (ddof=1).

    Parameters
    ----------
    forecast : Dataset or DataArray
        Ensemble forecast.
    dim : str or list of str, optional
        Dimensions to reduce besides the ensemble; ``None`` (default) reduces all.
    {{member_dim}}
    {{ensemble_reduce_options}}

    Returns
    -------
    Dataset or DataArray
        ``sqrt(mean_t ⟨var⟩)``; ``attrs["metric"] == "spread"``.

    Raises
    ------
    ValueError
        If there is no ensemble dimension, or the weights are invalid.
    TypeError
        If the forecast holds complex data.

    Warns
    -----
    UserWarning
        For a one-member ensemble (its spread is 0).

    Notes
    -----
    spread = √(time mean of the area-weighted mean of the unbiased member variance), the
    same ordering as :func:`~xfuxi.rmse` so that spread and ensemble-mean RMSE are
    comparable. The variance of one (valid) member is 0, as in WeatherBench2 and as the
    spread term of the CRPS (a deterministic forecast has no spread); of none, NaN.
    Defined in the documentation, docs/verification.md.

    Examples
    --------
    >>> fc = xr.DataArray([[0.0, 2.0], [1.0, 3.0]], dims=("x", "number"))
    >>> float(spread(fc))
    1.4142135623730951
    >>> float(fc.fuxi.spread())  # the same through the accessor
    1.4142135623730951
    """
    mdim = ensemble_dim(forecast, member_dim)
    check_unique(forecast, "forecast", [mdim])  # (as _pair: a member counted twice)
    m = forecast.sizes[mdim]
    _check_dim(dim, mdim)
    var = member_variance(as_float(forecast), mdim, skipna=skipna)
    out = np.sqrt(reduce_score(var, dim, weights, skipna, region))
    return finish_score(out, forecast, keep_attrs, {"metric": "spread", "members": int(m)})


@overload
def ensemble_mean_rmse(
    forecast: xr.Dataset, truth: xr.Dataset, /, *, dim: Dim = None, member_dim: str | None = None,
    weights: Weights = "area", region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.Dataset: ...  # fmt: skip
@overload
def ensemble_mean_rmse(
    forecast: xr.DataArray, truth: xr.DataArray, /, *, dim: Dim = None,
    member_dim: str | None = None,
    weights: Weights = "area", region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.DataArray: ...  # fmt: skip
@fill_doc
def ensemble_mean_rmse(
    forecast: XarrayObj, truth: XarrayObj, /, *, dim: Dim = None, member_dim: str | None = None,
    weights: Weights = "area", region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> XarrayObj:  # fmt: skip
    """RMSE of the ensemble mean.

    Parameters
    ----------
    {{ensemble_truth}}
    dim, member_dim, weights, region, skipna, keep_attrs
        As :func:`crps`.

    Returns
    -------
    Dataset or DataArray
        RMSE of the member mean; ``attrs["metric"] == "ensemble_mean_rmse"``.

    Raises
    ------
    {{raises_ensemble}}
    {{raises_type}}

    Notes
    -----
    :func:`~xfuxi.rmse` applied to the mean over members (over the valid members with
    ``skipna=True``). Defined in the documentation, docs/verification.md.

    Examples
    --------
    >>> fc = xr.DataArray([[0.0, 2.0], [1.0, 3.0]], dims=("x", "number"))
    >>> float(ensemble_mean_rmse(fc, xr.DataArray([1.0, 2.0], dims="x")))
    0.0
    >>> float(fc.fuxi.ensemble_mean_rmse(xr.DataArray([1.0, 1.0], dims="x")))  # accessor
    0.7071067811865476
    """
    ens = _ensemble(forecast, truth, member_dim, dim, weights, region, skipna, keep_attrs)
    mean = ens.fc.mean(ens.mdim, skipna=skipna)
    out = rmse(mean, ens.tr, dim=dim, weights=weights, region=region, skipna=skipna)
    return ens.finish(out, "ensemble_mean_rmse")


@overload
def spread_skill_ratio(
    forecast: xr.Dataset, truth: xr.Dataset, /, *, dim: Dim = None, member_dim: str | None = None,
    correction: bool = False, weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> xr.Dataset: ...  # fmt: skip
@overload
def spread_skill_ratio(
    forecast: xr.DataArray, truth: xr.DataArray, /, *, dim: Dim = None,
    member_dim: str | None = None,
    correction: bool = False, weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> xr.DataArray: ...  # fmt: skip
@fill_doc
def spread_skill_ratio(
    forecast: XarrayObj, truth: XarrayObj, /, *, dim: Dim = None, member_dim: str | None = None,
    correction: bool = False, weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:  # fmt: skip
    """Spread–skill ratio: ensemble spread over the RMSE of the ensemble mean.

    Parameters
    ----------
    {{ensemble_truth}}
    dim, member_dim, weights, region, skipna, keep_attrs
        As :func:`crps`.
    correction : bool, default False
        Multiply the spread by ``√((M+1)/M)`` (finite-ensemble correction, GenCast).

    Returns
    -------
    Dataset or DataArray
        The ratio (for a statistically consistent ensemble of M members: 1 with the
        correction, √(M/(M+1)) without it); ``attrs["correction"]`` is
        ``"sqrt((M+1)/M)"`` or ``"none"``.

    Raises
    ------
    {{raises_ensemble}}
    {{raises_type}}

    Notes
    -----
    :func:`spread` / :func:`ensemble_mean_rmse`, both with the same weighting and time
    ordering; with ``skipna=True`` both leave out the points where the truth is missing,
    so that they cover the same points. For a perfect ensemble of M members the expected
    squared error of the mean is ``(M+1)/M`` times the expected variance, hence the
    optional correction. Defined in the documentation, docs/verification.md.

    Examples
    --------
    >>> fc = xr.DataArray([[0.0, 2.0], [1.0, 3.0]], dims=("x", "number"))
    >>> truth = xr.DataArray([0.0, 1.0], dims="x")
    >>> float(spread_skill_ratio(fc, truth))
    1.4142135623730951
    >>> spread_skill_ratio(fc, truth, correction=True).attrs["correction"]
    'sqrt((M+1)/M)'
    >>> float(fc.fuxi.spread_skill_ratio(truth))  # the same through the accessor
    1.4142135623730951
    """
    ens = _ensemble(forecast, truth, member_dim, dim, weights, region, skipna, keep_attrs)
    fc, tr, m = ens.fc, ens.tr, ens.members
    kw = {"dim": dim, "member_dim": ens.mdim, "weights": weights, "region": region,
          "skipna": skipna}  # fmt: skip
    if skipna:
        fc = fc.where(tr.notnull())
    if correction and skipna:
        # M is the number of valid members at each point: each point's member variance is
        # scaled by its own (M+1)/M (the members' deviations from their mean by the root),
        # which leaves the ensemble mean, and so the RMSE, unchanged
        mean = fc.mean(ens.mdim, skipna=True)
        n = fc.count(ens.mdim)
        spread_fc = mean + (fc - mean) * np.sqrt((n + 1.0) / n.where(n > 0))
        out = spread(spread_fc, **kw) / ensemble_mean_rmse(fc, tr, **kw)
    else:
        out = spread(fc, **kw) / ensemble_mean_rmse(fc, tr, **kw)
        if correction:
            out = out * np.sqrt((m + 1.0) / m)
    correct = "sqrt((M+1)/M)" if correction else "none"
    return ens.finish(out, "spread_skill_ratio", correction=correct)


def _check_threshold_units(obj: xr.DataArray, name: str, units: str | None) -> None:
    if units is None:
        return
    from ..data.schema import same_unit

    have = obj.attrs.get("units")
    if have is None:
        raise ValueError(
            f"threshold is in {units!r} but {name!r} has no 'units' attribute to check against"
        )
    if not (same_unit(str(have), units) or same_unit(units, str(have))):
        raise ValueError(
            f"threshold is in {units!r} but {name!r} is in {have!r}; convert the threshold"
        )


@overload
def brier_score(
    forecast: xr.Dataset, truth: xr.Dataset, /, *,
    threshold: float | xr.DataArray | Mapping[Hashable, float | xr.DataArray],
    units: str | None = None, dim: Dim = None, member_dim: str | None = None, fair: bool = False,
    weights: Weights = "area", region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.Dataset: ...  # fmt: skip
@overload
def brier_score(
    forecast: xr.DataArray, truth: xr.DataArray, /, *,
    threshold: float | xr.DataArray | Mapping[Hashable, float | xr.DataArray],
    units: str | None = None, dim: Dim = None, member_dim: str | None = None, fair: bool = False,
    weights: Weights = "area", region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.DataArray: ...  # fmt: skip
@fill_doc
def brier_score(
    forecast: XarrayObj, truth: XarrayObj, /, *,
    threshold: float | xr.DataArray | Mapping[Hashable, float | xr.DataArray],
    units: str | None = None, dim: Dim = None, member_dim: str | None = None, fair: bool = False,
    weights: Weights = "area", region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> XarrayObj:  # fmt: skip
    """Brier score of the event "value exceeds ``threshold``" from ensemble member fractions.

    Parameters
    ----------
    {{ensemble_truth}}
    threshold : float, DataArray or mapping of variable name to those
        Event threshold (``value > threshold``); a DataArray may vary in space or time (it
        must then cover the forecast's grid exactly on its dims); a mapping gives one per
        variable of a Dataset (each variable needs one; a key naming no variable raises).
    units : str, optional
        Units of the threshold; checked against each variable's ``units`` attribute.
    dim, member_dim, weights, region, skipna, keep_attrs
        As :func:`crps`.
    fair : bool, default False
        Use the debiased ensemble Brier score (Ferro 2014) that estimates the score of an
        infinite ensemble.

    Returns
    -------
    Dataset or DataArray
        Brier score in [0, 1] (the fair form may be slightly negative);
        ``attrs["estimator"]`` is ``"fair"`` or ``"standard"``.

    Raises
    ------
    {{raises_ensemble}}
        Also if the threshold units do not match the data, a variable lacks a threshold, a
        mapping names a variable the forecast lacks, a threshold does not cover the grid,
        or the fair form is asked for one member.
    TypeError
        If a mapping of thresholds is given for a DataArray forecast.
        Also if forecast or truth holds complex data, or a ``time`` holds cftime
        dates or carries a time zone (:func:`~xfuxi.verify.weights.prepare_pair`).

    Notes
    -----
    ``BS = (p − o)²`` with ``p`` the fraction of members above the threshold and ``o`` 1
    where the truth is above it. The debiased form is ``(p − o)² − p(1 − p)/(M − 1)``
    (Ferro 2014, eq. 8). A NaN truth gives NaN; a NaN member gives NaN, or with
    ``skipna=True`` ``p`` and ``M`` count the valid members only (the fair form is NaN
    where fewer than two are valid).
    {{reduction}}

    Examples
    --------
    >>> fc = xr.DataArray([[0.0, 2.0, 3.0, 4.0]], dims=("x", "number"))
    >>> float(brier_score(fc, xr.DataArray([5.0], dims="x"), threshold=1.0))
    0.0625
    >>> float(fc.fuxi.brier_score(xr.DataArray([5.0], dims="x"), threshold=1.0))  # accessor
    0.0625
    """
    ens = _ensemble(forecast, truth, member_dim, dim, weights, region, skipna, keep_attrs)
    mdim, m = ens.mdim, ens.members
    if fair:
        ens.need_two("the fair Brier score")
    if isinstance(threshold, Mapping):
        if not isinstance(ens.fc, xr.Dataset):
            raise TypeError("a mapping of thresholds needs a Dataset forecast")
        check_variable_keys(threshold, ens.fc, "threshold")

    def one(f: xr.DataArray, t: xr.DataArray, name: Hashable) -> xr.DataArray:
        thr = threshold
        if isinstance(threshold, Mapping):
            if name not in threshold:
                raise ValueError(f"no threshold given for variable {name!r}")
            thr = threshold[name]
        _check_threshold_units(f, str(name), units)
        if isinstance(thr, xr.DataArray):
            if "units" in thr.attrs:
                _check_threshold_units(f, str(name), str(thr.attrs["units"]))
            if needs_valid_time(f, thr):  # a threshold on time, as the truth: at valid times
                thr = align_valid_time(f, thr, name="threshold").drop_vars("valid_time")
            thr = conform(thr, f, name="threshold", new_dims=True)
        # the fraction from the boolean exceedances (a float64 copy of the whole ensemble
        # was made before: 4.8 times a float32 ensemble's size at the peak)
        above = f > thr
        if skipna:
            n_valid = f.count(mdim)
            p = (above.sum(mdim) / n_valid).where(n_valid > 0)
        else:
            p = above.mean(mdim).where(~f.isnull().any(mdim))
        del above
        o = (t > thr).where(t.notnull())
        bs = (p - o) ** 2
        # no event where the threshold is missing: the score is NaN there, not 0
        bs = bs.where(xr.DataArray(thr).notnull())
        if fair:
            n = f.count(mdim) if skipna else m
            bs = bs - p * (1 - p) / (n - 1)
            if skipna:
                bs = bs.where(n > 1)
        return bs

    return ens.score(one, "brier_score", fair)


def _canonical_layout(
    f: xr.DataArray, t: xr.DataArray, mdim: str
) -> tuple[list[Hashable], dict[Hashable, Any]]:
    """The dims of the point-wise result in a canonical order, and the indexers that sort
    their coordinates, so that random draws do not depend on the layout of the input.

    The order is that of :data:`xfuxi.data.schema.CANONICAL_DIMS` (``time``,
    ``prediction_timedelta``, ``level``, ``latitude``, ``longitude``), after the other dims
    sorted by name. A dim with an index coordinate is put in increasing order (a reversed
    one by a reversed slice, else by a stable argsort; longitudes modulo 360, so that both
    conventions give the same draws); one without keeps its order."""
    from ..data.schema import CANONICAL_DIMS

    dims = [d for d in f.dims if d != mdim] + [d for d in t.dims if d not in f.dims]
    known = {d: i for i, d in enumerate(CANONICAL_DIMS)}
    order = sorted(dims, key=lambda d: (d in known, known.get(d, 0), str(d)))
    indexers: dict[Hashable, Any] = {}
    for d in order:
        idx = f.indexes.get(d, t.indexes.get(d))
        if d == "longitude" and idx is not None and idx.dtype.kind in "fiu":
            # −180..180 and 0..360 are one circle: the points in the order of lon mod 360
            idx = pd.Index(np.mod(np.asarray(idx, dtype="float64"), 360.0))
        if idx is None or idx.is_monotonic_increasing:
            continue
        if idx.is_monotonic_decreasing:
            indexers[d] = slice(None, None, -1)
            continue
        try:
            indexers[d] = np.argsort(np.asarray(idx), kind="stable")
        except TypeError:  # values that cannot be ordered: keep the given order
            continue
    return order, indexers


def _variable_key(name: Hashable) -> int:
    """A variable's part of its tie-break streams' key: 0 for an unnamed DataArray, else
    from its name (not its position, so that a subset of a Dataset's variables, or one
    taken out as a DataArray, gets the same draws)."""
    if name is None:
        return 0
    digest = hashlib.sha256(repr(name).encode()).digest()
    return int.from_bytes(digest[:7], "little") + 1


def _tie_stream(entropy: Any, variable: int, location: tuple[int, ...]) -> np.random.Generator:
    """The generator of the block at chunk ``location`` (canonical order) of the variable
    keyed ``variable`` (:func:`_variable_key`): ``SeedSequence(entropy, spawn_key=(variable,
    *location))``, independent for each; the first block of an unnamed DataArray (all of
    an in-memory one) draws from ``default_rng(entropy)`` itself, as before blocks were
    keyed."""
    key = (int(variable), *(int(i) for i in location))
    if not any(key):
        return np.random.default_rng(entropy)
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=key))


def _draw_block(block: np.ndarray, entropy: Any, variable: int, block_info=None) -> np.ndarray:
    location = block_info[None]["chunk-location"] if block_info else (0,) * block.ndim
    return _tie_stream(entropy, variable, location).random(block.shape)


def _tie_draws(
    f: xr.DataArray, t: xr.DataArray, dims: list[Hashable], entropy: Any, variable: int
) -> xr.DataArray:
    """Uniform draws in [0, 1) over ``dims`` (the canonical layout), one stream per block of
    the point-wise result (:func:`_tie_stream`); lazy when ``f`` or ``t`` is."""
    shape = tuple(f.sizes[d] if d in f.dims else t.sizes[d] for d in dims)
    if f.chunks is None and t.chunks is None:
        return xr.DataArray(
            _tie_stream(entropy, variable, (0,) * len(dims)).random(shape), dims=dims
        )
    import dask.array as da

    sizes = {**t.chunksizes, **f.chunksizes}  # the same on shared dims (unify_chunks)
    chunks = tuple(sizes.get(d, (n,)) for d, n in zip(dims, shape, strict=True))
    template = da.zeros(shape, chunks=chunks, dtype=np.uint8)
    draws = da.map_blocks(
        _draw_block, template, dtype=np.float64, entropy=entropy, variable=variable
    )
    return xr.DataArray(draws, dims=dims)


def _tie_broken(
    kernel: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    f: xr.DataArray,
    t: xr.DataArray,
    mdim: str,
    entropy: Any,
    variable: int,
) -> xr.DataArray:
    """``kernel(members, truth, draws)`` point by point (as :func:`_over_members`), with the
    random draws of :func:`_tie_draws` made on the canonical layout (:func:`_canonical_layout`):
    the result does not depend on the order of the dims or of their coordinate values. It
    comes back in the layout of the input."""
    if set(f.dims) - {mdim} != set(t.dims):
        f, t = xr.broadcast(f, t, exclude=[mdim])
    given = [d for d in f.dims if d != mdim]
    order, indexers = _canonical_layout(f, t, mdim)
    f = f.isel(indexers).transpose(*order, mdim)
    t = t.isel({d: i for d, i in indexers.items() if d in t.dims}).transpose(*order)
    if f.chunks is not None or t.chunks is not None:
        f, t = xr.unify_chunks(f, t)
    u = _tie_draws(f, t, order, entropy, variable)
    r = xr.apply_ufunc(
        kernel,
        f,
        t,
        u,
        input_core_dims=[[mdim], [], []],
        dask="parallelized",
        output_dtypes=[np.int64],
        dask_gufunc_kwargs={"allow_rechunk": True},
    )
    back = {d: i if isinstance(i, slice) else np.argsort(i) for d, i in indexers.items()}
    return r.isel(back).transpose(*given)


@overload
def rank_histogram(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    /,
    *,
    dim: Dim = None,
    member_dim: str | None = None,
    bins: int | None = None,
    region: Any = None,
    skipna: bool = False,
    seed: int | None = 0,
) -> xr.Dataset: ...
@overload
def rank_histogram(
    forecast: xr.DataArray,
    truth: xr.DataArray,
    /,
    *,
    dim: Dim = None,
    member_dim: str | None = None,
    bins: int | None = None,
    region: Any = None,
    skipna: bool = False,
    seed: int | None = 0,
) -> xr.DataArray: ...
@fill_doc
def rank_histogram(
    forecast: XarrayObj,
    truth: XarrayObj,
    /,
    *,
    dim: Dim = None,
    member_dim: str | None = None,
    bins: int | None = None,
    region: Any = None,
    skipna: bool = False,
    seed: int | None = 0,
) -> XarrayObj:
    """Rank histogram (Talagrand diagram): counts of the truth's rank among the members.

    Parameters
    ----------
    {{ensemble_truth}}
    dim : str or list of str, optional
        Dimensions to count over; ``None`` (default) counts over all.
    {{member_dim}}
    bins : int, optional
        Number of bins ``B``, 1 to M + 1; ``None`` (default): M + 1, one per rank. Rank
        ``r`` (of M + 1) falls in bin ``⌊r B / (M + 1)⌋``: equal bins when ``B`` divides
        ``M + 1``.
    {{region}}
    skipna : bool, default False
        ``False``: points where a member or the truth is NaN are not counted. ``True``:
        a point with ``n ≥ 1`` valid members counts its rank ``r`` among them in bin
        ``⌊r B / (n + 1)⌋``; points with a NaN truth or no valid member are not counted.
    seed : int or None, default 0
        Seed for breaking ties at random (reproducible by default). The draws are made on
        the data in a canonical layout (dims in xfuxi's order, coordinates increasing), so
        the counts do not depend on the order of the dims or of the points. With dask
        they depend on the chunking: each block of the point-wise ranks (the chunks of
        forecast and truth, unified) draws its own stream,
        ``SeedSequence(seed, spawn_key=(variable, *block_location))``, as does each
        variable (keyed by its name, so a subset of a Dataset's variables gets the same
        draws); the first block of an unnamed DataArray, all of an in-memory one, draws
        from ``np.random.default_rng(seed)``. ``None``: fresh entropy each call.

    Returns
    -------
    Dataset or DataArray
        Counts on a new dimension ``rank`` = 0..B − 1 (rank 0: truth below every member).

    Raises
    ------
    {{raises_ensemble}}
        Also if ``bins`` is not between 1 and M + 1.
    {{raises_type}}

    Notes
    -----
    The rank is the number of members below the truth; ties between the truth and members
    are broken uniformly at random (Hamill 2001). Unweighted counts (within the region).
    Defined in the documentation, docs/verification.md.

    Examples
    --------
    >>> fc = xr.DataArray([[0.0, 2.0], [0.0, 2.0], [0.0, 2.0]], dims=("x", "number"))
    >>> rank_histogram(fc, xr.DataArray([-1.0, 1.0, 3.0], dims="x")).values.tolist()
    [1, 1, 1]
    >>> fc.fuxi.rank_histogram(xr.DataArray([3.0, 3.0, 1.0], dims="x")).values.tolist()
    [0, 1, 2]
    """
    fc, tr, mdim = _pair(forecast, truth, member_dim)
    m = fc.sizes[mdim]
    nbins = m + 1 if bins is None else int(bins)
    if not 1 <= nbins <= m + 1:
        raise ValueError(f"bins must be between 1 and M + 1 = {m + 1} (members: {m}); got {bins}")

    def kernel(x: np.ndarray, y: np.ndarray, u: np.ndarray) -> np.ndarray:
        # u: the uniform draws of the point (_tie_draws), one per point whether tied or not
        below = (x < y[..., None]).sum(-1)
        ties = (x == y[..., None]).sum(-1)
        r = below + np.floor(u * (ties + 1)).astype(below.dtype)
        n = (~np.isnan(x)).sum(-1)
        bad = ((n == 0) if skipna else (n < m)) | np.isnan(y)
        b = (r * nbins) // np.maximum(n + 1, 1)
        return np.where(bad, -1, b)

    _check_dim(dim, mdim)
    wanted = reduced_dims(fc, dim)  # each a dim of the data (of some variable)
    # seed=None: fresh entropy, drawn once, so that blocks and variables still differ
    entropy = np.random.SeedSequence().entropy if seed is None else seed

    def one(f: xr.DataArray, t: xr.DataArray, name: Hashable) -> xr.DataArray:
        r = _tie_broken(kernel, f, t, mdim, entropy, _variable_key(name))
        # a Dataset's variable over the reduced dims it has (surface pressure has no level)
        dims = [d for d in wanted if d in r.dims] if dim is not None else list(r.dims)
        inside = region_weights(r, dims, None, region)
        counts = [  # as int64: a sum over no dims (dim=[]) kept the booleans
            ((r == k) if inside is None else (r == k) & (inside > 0)).sum(dims).astype("int64")
            for k in range(nbins)
        ]
        out = xr.concat(counts, dim="rank").assign_coords(rank=np.arange(nbins))
        return out.transpose("rank", ...)

    out = own_attrs(_per_variable(one, fc, tr))  # coordinate attrs not the forecast's
    out.attrs = {"metric": "rank_histogram", "members": int(m), "bins": nbins}
    if isinstance(out, xr.Dataset):  # each variable says what it holds: counts
        for name in out.data_vars:
            out[name].attrs = {"metric": "rank_histogram"}
    return out


def _valid_count(f: xr.DataArray, mdim: str, skipna: bool) -> xr.DataArray | int:
    """Members counted at each point: the valid ones with ``skipna``, else all."""
    return f.count(mdim) if skipna else f.sizes[mdim]


if TYPE_CHECKING:
    from typing import Protocol

    class _TwoMemberScore(Protocol):
        """What :func:`_two_member_score` builds (debiased_ensemble_mean_mse,
        ensemble_ignorance), as type checkers see it."""

        @overload
        def __call__(
            self, forecast: xr.Dataset, truth: xr.Dataset, /, *, dim: Dim = None,
            member_dim: str | None = None, weights: Weights = "area", region: Any = None,
            skipna: bool = False, keep_attrs: bool = False,
        ) -> xr.Dataset: ...  # fmt: skip
        @overload
        def __call__(
            self, forecast: xr.DataArray, truth: xr.DataArray, /, *, dim: Dim = None,
            member_dim: str | None = None, weights: Weights = "area", region: Any = None,
            skipna: bool = False, keep_attrs: bool = False,
        ) -> xr.DataArray: ...  # fmt: skip


def _two_member_score(
    name: str,
    point: Callable[[xr.DataArray, xr.DataArray, str, bool], xr.DataArray],
    what: str,
    **doc: str,
) -> _TwoMemberScore:
    """Build the ensemble score ``name``: ``point(members, truth, mdim, skipna)`` per variable,
    reduced; it needs two members or more (``what`` names it in the error).

    The debiased ensemble-mean MSE and the ensemble ignorance both summarise the members by
    their mean and unbiased variance; they share this signature, implementation and
    docstring (``doc`` fills its ``summary``, ``returns``, ``notes`` and ``example``).
    """

    def score(
        forecast: XarrayObj, truth: XarrayObj, /, *, dim: Dim = None,
        member_dim: str | None = None, weights: Weights = "area", region: Any = None,
        skipna: bool = False, keep_attrs: bool = False,
    ) -> XarrayObj:  # fmt: skip
        ens = _ensemble(forecast, truth, member_dim, dim, weights, region, skipna, keep_attrs)
        ens.need_two(what)
        return ens.score(lambda f, t, _: point(f, t, ens.mdim, skipna), name)

    raises = (
        "{{raises_ensemble}}\n        Also if there are fewer than two members.\n"
        "    {{raises_type}}"
    )
    params = "{{ensemble_truth}}\n    {{ensemble_options}}"
    return score_doc(score, name, parameters=params, raises=raises, **doc)  # type: ignore[return-value]


def _debiased_mse_point(f: xr.DataArray, t: xr.DataArray, mdim: str, skipna: bool):
    n = _valid_count(f, mdim, skipna)
    point = (f.mean(mdim, skipna=skipna) - t) ** 2 - f.var(mdim, ddof=1, skipna=skipna) / n
    return point.where(n > 1) if skipna else point


def _ignorance_point(f: xr.DataArray, t: xr.DataArray, mdim: str, skipna: bool):
    from .gaussian import gaussian_log_score

    std = f.std(mdim, ddof=1, skipna=skipna)
    return gaussian_log_score(t, f.mean(mdim, skipna=skipna), std)


debiased_ensemble_mean_mse = _two_member_score(
    "debiased_ensemble_mean_mse",
    _debiased_mse_point,
    "the debiased ensemble-mean MSE",
    summary="MSE of the ensemble mean, debiased to estimate that of an infinite ensemble's mean.",
    returns='``attrs["metric"] == "debiased_ensemble_mean_mse"``; may be slightly negative.',
    notes="""``(x̄ − y)² − s²/M`` with ``x̄`` the member mean and ``s²`` the unbiased member
    variance (WeatherBench2's ``DebiasedEnsembleMeanMSE``): ``E[(x̄ − y)²] = E[(μ − y)²] +
    σ²/M`` for M exchangeable members. With ``skipna=True`` M counts the valid members (a
    point with fewer than two is NaN).""",
    example=""">>> fc = xr.DataArray([[0.0, 2.0]], dims=("x", "number"))
    >>> float(debiased_ensemble_mean_mse(fc, xr.DataArray([0.0], dims="x")))
    0.0
    >>> float(fc.fuxi.debiased_ensemble_mean_mse(xr.DataArray([0.0], dims="x")))  # accessor
    0.0""",
)
ensemble_ignorance = _two_member_score(
    "ensemble_ignorance",
    _ignorance_point,
    "the ensemble ignorance",
    summary="Ignorance (logarithmic) score of the Gaussian fitted to the ensemble, in nats.",
    returns='``attrs["metric"] == "ensemble_ignorance"``.',
    notes="""``−log N(y; x̄, s²)`` with ``x̄`` the member mean and ``s`` the unbiased (ddof=1)
    member standard deviation: :func:`~xfuxi.verify.gaussian.gaussian_ignorance` of
    ``(x̄, s)``. A point whose members all agree and miss the truth scores ``+inf``.""",
    example=""">>> fc = xr.DataArray([[-1.0, 1.0]], dims=("x", "number"))
    >>> round(float(ensemble_ignorance(fc, xr.DataArray([0.0], dims="x"))), 4)
    1.2655
    >>> round(float(fc.fuxi.ensemble_ignorance(xr.DataArray([0.0], dims="x"))), 4)  # accessor
    1.2655""",
)


@overload
def ranked_probability_score(
    forecast: xr.Dataset, truth: xr.Dataset, /, *, thresholds: Iterable[float],
    dim: Dim = None, member_dim: str | None = None, fair: bool = False,
    weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> xr.Dataset: ...  # fmt: skip
@overload
def ranked_probability_score(
    forecast: xr.DataArray, truth: xr.DataArray, /, *, thresholds: Iterable[float],
    dim: Dim = None, member_dim: str | None = None, fair: bool = False,
    weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> xr.DataArray: ...  # fmt: skip
@fill_doc
def ranked_probability_score(
    forecast: XarrayObj, truth: XarrayObj, /, *, thresholds: Iterable[float],
    dim: Dim = None, member_dim: str | None = None, fair: bool = False,
    weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:  # fmt: skip
    """Ranked probability score of the categories cut by ``thresholds``.

    Parameters
    ----------
    {{ensemble_truth}}
    thresholds : sequence of float
        Increasing category edges ``t_1 < … < t_K`` (in the units of the data); they cut
        ``K + 1`` categories.
    fair : bool, default False
        Subtract ``F_k(1 − F_k)/(M − 1)`` per edge (Ferro 2014): the score of an infinite
        ensemble.
    {{ensemble_options}}

    Returns
    -------
    Dataset or DataArray
        ``attrs["metric"] == "ranked_probability_score"``; 0 is perfect.

    Raises
    ------
    {{raises_ensemble}}
        Also if the thresholds are empty or not increasing, or the fair form is asked for
        one member.
    TypeError
        If the thresholds are not a sequence of numbers (a Dataset or DataArray of
        thresholds that vary in space: use :func:`brier_score` per edge).
        Also if forecast or truth holds complex data, or a ``time`` holds cftime
        dates or carries a time zone (:func:`~xfuxi.verify.weights.prepare_pair`).

    Notes
    -----
    ``RPS = Σ_k (F_k − O_k)²`` with ``F_k`` the fraction of members below ``t_k`` and
    ``O_k = 1`` where the truth is below ``t_k`` (xskillscore's ``rps`` with these
    ``category_edges``; not divided by ``K``).
    {{reduction}}

    Examples
    --------
    >>> fc = xr.DataArray([[0.0, 1.0, 2.0, 3.0]], dims=("x", "number"))
    >>> float(ranked_probability_score(fc, xr.DataArray([2.5], dims="x"), thresholds=[1.5]))
    0.25
    >>> float(fc.fuxi.ranked_probability_score(xr.DataArray([2.5], dims="x"), thresholds=[1.5]))
    0.25
    """
    if isinstance(thresholds, (xr.Dataset, xr.DataArray, str)) or not np.iterable(thresholds):
        raise TypeError(
            "thresholds must be a sequence of numbers (the same edges at every point); got "
            f"{type(thresholds).__name__} (for thresholds that vary in space, score each "
            "edge with brier_score)"
        )
    try:
        edges = np.asarray(list(thresholds), dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"thresholds must be numbers; got {list(thresholds)!r}") from err
    if edges.size == 0 or np.any(np.diff(edges) <= 0) or not np.all(np.isfinite(edges)):
        raise ValueError(f"thresholds must be finite and increasing, at least one; got {edges}")
    ens = _ensemble(forecast, truth, member_dim, dim, weights, region, skipna, keep_attrs)
    mdim = ens.mdim
    if fair:
        ens.need_two("the fair RPS")
    t_k = xr.DataArray(edges, dims="threshold")

    def one(f: xr.DataArray, t: xr.DataArray, name: Hashable) -> xr.DataArray:
        n = _valid_count(f, mdim, skipna)
        if skipna:
            cdf = (f < t_k).sum(mdim) / n  # NaN members are never below t_k
        else:
            cdf = (f < t_k).mean(mdim).where(f.notnull().all(mdim))
        obs = (t < t_k).where(t.notnull())
        term = (cdf - obs) ** 2
        if fair:
            term = term - cdf * (1 - cdf) / (n - 1)
        rps = term.sum("threshold", skipna=False)
        return rps.where(n > 1) if (fair and skipna) else rps

    return ens.score(one, "ranked_probability_score", fair, thresholds=edges.tolist())


@overload
def central_reliability(
    forecast: xr.Dataset, truth: xr.Dataset, /, *,
    probabilities: Iterable[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    dim: Dim = None, member_dim: str | None = None, weights: Weights = "area",
    region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.Dataset: ...  # fmt: skip
@overload
def central_reliability(
    forecast: xr.DataArray, truth: xr.DataArray, /, *,
    probabilities: Iterable[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    dim: Dim = None, member_dim: str | None = None, weights: Weights = "area",
    region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.DataArray: ...  # fmt: skip
@fill_doc
def central_reliability(
    forecast: XarrayObj, truth: XarrayObj, /, *,
    probabilities: Iterable[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    dim: Dim = None, member_dim: str | None = None, weights: Weights = "area",
    region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> XarrayObj:  # fmt: skip
    """Central reliability: how often the truth falls in the ensemble's central intervals.

    Parameters
    ----------
    {{ensemble_truth}}
    probabilities : sequence of float, default 0.1, …, 0.9
        Nominal coverages ``p`` in (0, 1) of the central intervals, each once (a
        ``ValueError`` otherwise).
    {{ensemble_options}}

    Returns
    -------
    Dataset or DataArray
        Observed coverage on a new dim ``probability``; a reliable ensemble gives ``p``.

    Raises
    ------
    {{raises_ensemble}}
        Also if a probability is not in (0, 1).
    {{raises_type}}

    Notes
    -----
    A score of the truth's rank among the members (a summary of the rank histogram, as in
    WeatherBench2, and exact for every ``p`` and ``M``): with ``r`` members below the truth
    and ``t`` equal to it, the truth occupies the slot ``[r, r + t + 1]`` of the scale
    ``0 … M + 1`` of the ``M + 1`` possible ranks (ties spread evenly), and a point scores the
    fraction of its slot that lies inside the central interval
    ``[(1 − p)(M + 1)/2, (1 + p)(M + 1)/2]``. A truth exchangeable with the members takes
    each slot with probability ``1/(M + 1)``, so its expected score is exactly ``p``, even for
    coverages no two members bracket (``p`` above ``(M − 1)/(M + 1)``).
    {{reduction}}

    Examples
    --------
    Five members, so the interval of ``p = 0.5`` is ``[1.5, 4.5]`` on the scale 0 … 6; a
    truth between the third and fourth members (slot ``[3, 4]``) scores 1, one between the
    fourth and fifth (``[4, 5]``) 0.5, one above all members (``[5, 6]``) 0:

    >>> fc = xr.DataArray([[0.0, 1.0, 2.0, 3.0, 4.0]] * 3, dims=("x", "number"))
    >>> truth = xr.DataArray([2.5, 3.9, 4.5], dims="x")
    >>> central_reliability(fc, truth, probabilities=[0.5], dim=[]).values.tolist()
    [[1.0], [0.5], [0.0]]
    >>> fc.fuxi.central_reliability(truth, probabilities=[0.5]).values.tolist()  # accessor
    [0.5]
    """
    probs = np.asarray(list(probabilities), dtype=float)
    if probs.size == 0 or not np.all((probs > 0) & (probs < 1)):  # NaN too
        raise ValueError(f"probabilities must lie in (0, 1); got {probs}")
    if np.unique(probs).size < probs.size:  # a repeated coordinate
        raise ValueError(f"probabilities repeats a value; give each once: got {probs}")
    ens = _ensemble(forecast, truth, member_dim, dim, weights, region, skipna, keep_attrs)
    mdim = ens.mdim

    def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        valid = ~np.isnan(x)
        n = valid.sum(-1)[..., None].astype(float)
        below = (valid & (x < y[..., None])).sum(-1)[..., None]
        ties = (valid & (x == y[..., None])).sum(-1)[..., None]
        # the truth's slot [lo, hi] on the rank scale 0..M+1, and the central interval [a, b]
        lo, hi = below, below + ties + 1.0
        a, b = (1 - probs) / 2 * (n + 1), (1 + probs) / 2 * (n + 1)
        cover = np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0.0, None) / (hi - lo)
        bad = (n[..., 0] == 0) if skipna else (n[..., 0] < x.shape[-1])
        return np.where((bad | np.isnan(y))[..., None], np.nan, cover)

    def one(f: xr.DataArray, t: xr.DataArray, name: Hashable) -> xr.DataArray:
        f, t = xr.broadcast(f, t, exclude=[mdim])
        return xr.apply_ufunc(
            kernel, f, t, input_core_dims=[[mdim], []], output_core_dims=[["probability"]],
            dask="parallelized", output_dtypes=[float],
            dask_gufunc_kwargs={"output_sizes": {"probability": probs.size},
                                "allow_rechunk": True},
        ).assign_coords(probability=probs)  # fmt: skip

    dims = [d for d in ens.fc.dims if d != mdim] if dim is None else dim  # keep ``probability``
    out = reduce_score(ens.per_variable(one), dims, weights, skipna, region)
    return ens.finish(out, "central_reliability")


@overload
def energy_score(
    forecast: xr.Dataset, truth: xr.Dataset, /, *,
    vector_dims: Iterable[Hashable] = ("latitude", "longitude"), dim: Dim = None,
    member_dim: str | None = None, fair: bool = True, weights: Weights = "area",
    region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.Dataset: ...  # fmt: skip
@overload
def energy_score(
    forecast: xr.DataArray, truth: xr.DataArray, /, *,
    vector_dims: Iterable[Hashable] = ("latitude", "longitude"), dim: Dim = None,
    member_dim: str | None = None, fair: bool = True, weights: Weights = "area",
    region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.DataArray: ...  # fmt: skip
@fill_doc
def energy_score(
    forecast: XarrayObj, truth: XarrayObj, /, *,
    vector_dims: Iterable[Hashable] = ("latitude", "longitude"), dim: Dim = None,
    member_dim: str | None = None, fair: bool = True, weights: Weights = "area",
    region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> XarrayObj:  # fmt: skip
    """Energy score: the CRPS of whole fields, with an area-weighted L2 norm.

    Parameters
    ----------
    {{ensemble_truth}}
    vector_dims : sequence of str, default ("latitude", "longitude")
        Dims that make up one vector (a field); each must be in the data. A Dataset's
        variable takes those it has (surface pressure has no ``level``).
    dim : str or list of str, optional
        Dims (besides the vector and ensemble dims) to average the energy score over;
        ``None`` (default) averages all the others (time first-last as everywhere).
    {{member_dim}}
    fair : bool, default True
        ``M(M − 1)`` in the spread term (every pair of members); else ``M²``.
        WeatherBench2's ``EnergyScore`` averages the ``M − 1`` neighbouring pairs instead:
        the same expected value, another number for ``M ≥ 3``.
    {{weights}}
        Here they weight the norm over ``vector_dims``.
    {{region}}
        Here it restricts the vectors to the region (the norm over its points).
    skipna : bool, default False
        ``True``: leave out members with a NaN in their field (M counts the rest); a
        NaN in the truth field still gives NaN for that field, skipped in the averaging
        over ``dim``. ``False``: any NaN gives NaN.
    {{keep_attrs}}

    Returns
    -------
    Dataset or DataArray
        Energy score (units of the data); ``attrs["metric"] == "energy_score"``.

    Raises
    ------
    {{raises_ensemble}}
        Also if a vector dim is missing or ``dim`` names a vector dim.
    {{raises_type}}

    Notes
    -----
    ``ES = E‖X − y‖ − ½ E‖X − X′‖`` with ``‖z‖ = √(Σ_v w_v z_v² / Σ_v w_v)`` over the
    vector dims (area weights by default), member pairs over ``M(M − 1)`` (fair) or ``M²``
    (Gneiting & Raftery 2007). For one-point vectors it is the CRPS. Computed with one
    Gram-matrix product per field (:func:`~xfuxi.verify._kernels.energy_score_kernel`).

    Examples
    --------
    >>> fc = xr.DataArray([[[0.0, 0.0], [2.0, 2.0]]], dims=("time", "number", "x"))
    >>> float(energy_score(fc, xr.DataArray([[1.0, 1.0]], dims=("time", "x")),
    ...                    vector_dims=["x"], weights=None))
    0.0
    >>> float(fc.fuxi.energy_score(xr.DataArray([[1.0, 1.0]], dims=("time", "x")),
    ...                            vector_dims=["x"], weights=None))  # through the accessor
    0.0
    """
    from ._kernels import energy_score_kernel

    ens = _ensemble(forecast, truth, member_dim, dim, weights, region, skipna, keep_attrs)
    mdim = ens.mdim
    vdims = list(vector_dims)
    missing = [d for d in vdims if d not in ens.fc.dims]
    if missing or not vdims:
        raise ValueError(
            f"vector_dims {missing or vdims} not in the forecast's dims {list(ens.fc.dims)}"
        )
    if dim is not None and set([dim] if isinstance(dim, str) else dim) & set(vdims):
        raise ValueError(f"dim must not include the vector dims {vdims}")
    all_vdims = vdims

    def one(f: xr.DataArray, t: xr.DataArray, name: Hashable) -> xr.DataArray:
        f, t = xr.broadcast(f, t, exclude=[mdim])
        # a Dataset's variable over the vector dims it has (surface pressure has no level)
        vdims = [d for d in all_vdims if d in f.dims]
        if not vdims:
            raise ValueError(f"{name!r} has none of the vector_dims {all_vdims}")
        template = t.isel({d: 0 for d in t.dims if d not in vdims}, drop=True)
        w = region_weights(template, vdims, weights, region)
        w = xr.ones_like(template, dtype=float) if w is None else w.broadcast_like(template)

        def kernel(x: np.ndarray, y: np.ndarray, wv: np.ndarray) -> np.ndarray:
            p = int(np.prod(x.shape[-len(vdims) :]))
            xs = x.reshape(*x.shape[: -len(vdims) - 1], x.shape[-len(vdims) - 1], p)
            ys = y.reshape(*y.shape[: -len(vdims)], p)
            return energy_score_kernel(xs, ys, wv.reshape(-1), fair=fair, skipna=skipna)

        def per_weight(wv: xr.DataArray) -> xr.DataArray:
            return xr.apply_ufunc(
                kernel, f, t, wv.transpose(*vdims),
                input_core_dims=[[mdim, *vdims], vdims, vdims], dask="parallelized",
                output_dtypes=[np.float64],  # the kernel's: float64 weights enter
                dask_gufunc_kwargs={"allow_rechunk": True},
            )  # fmt: skip

        if "region" in w.dims:
            return xr.concat([per_weight(w.sel(region=r)) for r in w.region.values], "region")
        return per_weight(w)

    es = ens.per_variable(one)
    rest = [d for d in es.dims if d != "region"] if dim is None else dim
    return ens.finish(reduce_score(es, rest, None, skipna), "energy_score", fair)
