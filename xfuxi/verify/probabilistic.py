"""Probabilistic (ensemble) scores: CRPS, spread, spread–skill, Brier score, rank histogram.

The ensemble dimension is ``number`` by default; ``member`` and ``realization`` are accepted
(``xfuxi.set_options(ensemble_dims=...)``) or named with ``member_dim=``. Point-wise kernels
run through ``xr.apply_ufunc(..., dask="parallelized")`` so dask arrays stay lazy. Reductions
over ``dim`` follow DESIGN.md §4 (area-weighted mean over non-time dims, then time mean).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import numpy as np
import xarray as xr

from ._kernels import crps_ensemble_kernel
from .deterministic import rmse
from .weights import (
    Weights,
    XarrayObj,
    _as_dims,
    _ensemble_dim,
    _finish,
    _prepare_pair,
    _time_split,
    _weighted_mean,
    _weights_for,
)

__all__ = [
    "brier_score",
    "crps",
    "ensemble_mean_rmse",
    "rank_histogram",
    "spread",
    "spread_skill_ratio",
]

Dim = str | Iterable[Hashable] | None


def _reduce(x: XarrayObj, dim: Dim, weights: Weights, skipna: bool) -> XarrayObj:
    dims = _as_dims(x, dim)
    inner, outer = _time_split(dims)
    out = _weighted_mean(x, inner, _weights_for(x, inner, weights), skipna)
    if outer:
        out = out.mean(outer, skipna=skipna)
    return out


def _pair(forecast: XarrayObj, truth: XarrayObj, member_dim: str | None):
    mdim = _ensemble_dim(forecast, member_dim)
    if mdim in truth.dims:
        raise ValueError(f"truth must not have the ensemble dimension {mdim!r}")
    fc, tr = _prepare_pair(forecast, truth)
    return fc, tr, mdim


def _crps_pointwise(fc, tr, mdim, fair):
    def one(f: xr.DataArray, t: xr.DataArray) -> xr.DataArray:
        f, t = xr.broadcast(f, t, exclude=[mdim])
        return xr.apply_ufunc(
            crps_ensemble_kernel,
            f,
            t,
            input_core_dims=[[mdim], []],
            kwargs={"fair": fair},
            dask="parallelized",
            output_dtypes=[np.result_type(f.dtype, np.float32)],
            dask_gufunc_kwargs={"allow_rechunk": True},
        )

    if isinstance(fc, xr.Dataset):
        return xr.Dataset({v: one(fc[v], tr[v]) for v in fc.data_vars}, attrs=fc.attrs)
    return one(fc, tr)


def crps(
    forecast: XarrayObj,
    truth: XarrayObj,
    /,
    *,
    dim: Dim = None,
    member_dim: str | None = None,
    fair: bool = True,
    weights: Weights = "area",
    skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:
    """Continuous ranked probability score of an ensemble, fair estimator by default.

    Parameters
    ----------
    forecast : Dataset or DataArray
        Ensemble forecast with an ensemble dimension (``number``, ``member`` or ``realization``).
    truth : Dataset or DataArray
        Verifying truth without the ensemble dimension (matched as in :func:`~xfuxi.rmse`).
    dim : str or list of str, optional
        Dimensions to average the point-wise CRPS over (not the ensemble dim); ``None``
        (default) averages all.
    member_dim : str, optional
        Name of the ensemble dimension; by default the first of the accepted names present.
    fair : bool, default True
        ``True``: unbiased ("fair") spread term; ``False``: the standard estimator.
    weights : {"area"}, DataArray or None, default "area"
        Latitude area weights by default; ``None`` for none.
    skipna : bool, default False
        Skip NaN in the averaging over ``dim``. A NaN member or truth always gives NaN at
        that point.
    keep_attrs : bool, default False
        Keep the forecast's attributes.

    Returns
    -------
    Dataset or DataArray
        Mean CRPS (units of the data), with ``attrs["metric"]`` ``"crps"`` and
        ``attrs["estimator"]`` ``"fair"`` or ``"standard"``.

    Raises
    ------
    ValueError
        If there is no ensemble dimension, the truth has one, or coordinates differ.

    Notes
    -----
    DESIGN.md §4: ``CRPS = E|X − y| − ½ E|X − X′|``. With members sorted, ``x_(1..M)``,
    ``E|X − X′| = 2 Σ_i (2i − M − 1) x_(i) / D`` where ``D = M(M − 1)`` for the fair
    estimator (Ferro 2014; used by WeatherBench2 and FuXi-ENS) and ``D = M²`` for the
    standard one (Gneiting & Raftery 2007; ``properscoring.crps_ensemble``). This costs
    O(M log M) per point. With one member the spread term is 0 and CRPS equals the MAE.

    Examples
    --------
    >>> fc = xr.DataArray([[0.0, 2.0]], dims=("x", "number"))
    >>> float(crps(fc, xr.DataArray([1.0], dims="x")))
    0.0
    >>> float(crps(fc, xr.DataArray([1.0], dims="x"), fair=False))
    0.5
    """
    fc, tr, mdim = _pair(forecast, truth, member_dim)
    if dim is not None and mdim in ([dim] if isinstance(dim, str) else list(dim)):
        raise ValueError(f"dim must not include the ensemble dimension {mdim!r}")
    point = _crps_pointwise(fc, tr, mdim, fair)
    out = _reduce(point, dim, weights, skipna)
    attrs = {"metric": "crps", "estimator": "fair" if fair else "standard",
             "members": int(fc.sizes[mdim])}  # fmt: skip
    return _finish(out, forecast, keep_attrs, attrs)


def spread(
    forecast: XarrayObj,
    /,
    *,
    dim: Dim = None,
    member_dim: str | None = None,
    weights: Weights = "area",
    skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:
    """Ensemble spread: area-weighted RMS of the member standard deviation (ddof=1).

    Parameters
    ----------
    forecast : Dataset or DataArray
        Ensemble forecast with at least two members.
    dim : str or list of str, optional
        Dimensions to reduce besides the ensemble; ``None`` (default) reduces all.
    member_dim : str, optional
        Name of the ensemble dimension.
    weights : {"area"}, DataArray or None, default "area"
        Latitude area weights by default; ``None`` for none.
    skipna : bool, default False
        Skip NaN in the averaging over ``dim``.
    keep_attrs : bool, default False
        Keep the forecast's attributes.

    Returns
    -------
    Dataset or DataArray
        ``sqrt(mean_t ⟨var⟩)``; ``attrs["metric"] == "spread"``.

    Raises
    ------
    ValueError
        If there is no ensemble dimension or it has fewer than two members.

    Notes
    -----
    DESIGN.md §4: spread = √(time mean of the area-weighted mean of the unbiased member
    variance), the same ordering as :func:`~xfuxi.rmse` so that spread and ensemble-mean
    RMSE are comparable.

    Examples
    --------
    >>> fc = xr.DataArray([[0.0, 2.0], [1.0, 3.0]], dims=("x", "number"))
    >>> float(spread(fc))
    1.4142135623730951
    """
    mdim = _ensemble_dim(forecast, member_dim)
    m = forecast.sizes[mdim]
    if m < 2:
        raise ValueError(f"spread needs at least 2 members along {mdim!r}; got {m}")
    if dim is not None and mdim in ([dim] if isinstance(dim, str) else list(dim)):
        raise ValueError(f"dim must not include the ensemble dimension {mdim!r}")
    var = forecast.var(mdim, ddof=1, skipna=False)
    out = np.sqrt(_reduce(var, dim, weights, skipna))
    return _finish(out, forecast, keep_attrs, {"metric": "spread", "members": int(m)})


def ensemble_mean_rmse(
    forecast: XarrayObj,
    truth: XarrayObj,
    /,
    *,
    dim: Dim = None,
    member_dim: str | None = None,
    weights: Weights = "area",
    skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:
    """RMSE of the ensemble mean.

    Parameters
    ----------
    forecast : Dataset or DataArray
        Ensemble forecast.
    truth : Dataset or DataArray
        Verifying truth without the ensemble dimension.
    dim, member_dim, weights, skipna, keep_attrs
        As :func:`crps`.

    Returns
    -------
    Dataset or DataArray
        RMSE of the member mean; ``attrs["metric"] == "ensemble_mean_rmse"``.

    Raises
    ------
    ValueError
        If there is no ensemble dimension or coordinates differ.

    Notes
    -----
    :func:`~xfuxi.rmse` (DESIGN.md §4) applied to the mean over members.

    Examples
    --------
    >>> fc = xr.DataArray([[0.0, 2.0], [1.0, 3.0]], dims=("x", "number"))
    >>> float(ensemble_mean_rmse(fc, xr.DataArray([1.0, 2.0], dims="x")))
    0.0
    """
    fc, tr, mdim = _pair(forecast, truth, member_dim)
    mean = fc.mean(mdim, skipna=False)
    out = rmse(mean, tr, dim=dim, weights=weights, skipna=skipna)
    attrs = {"metric": "ensemble_mean_rmse", "members": int(fc.sizes[mdim])}
    return _finish(out, forecast, keep_attrs, attrs)


def spread_skill_ratio(
    forecast: XarrayObj,
    truth: XarrayObj,
    /,
    *,
    dim: Dim = None,
    member_dim: str | None = None,
    correction: bool = False,
    weights: Weights = "area",
    skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:
    """Spread–skill ratio: ensemble spread over the RMSE of the ensemble mean.

    Parameters
    ----------
    forecast : Dataset or DataArray
        Ensemble forecast with at least two members.
    truth : Dataset or DataArray
        Verifying truth.
    dim, member_dim, weights, skipna, keep_attrs
        As :func:`crps`.
    correction : bool, default False
        Multiply the spread by ``√((M+1)/M)`` (finite-ensemble correction, GenCast).

    Returns
    -------
    Dataset or DataArray
        The ratio (1 for a statistically consistent ensemble); ``attrs["correction"]`` is
        ``"sqrt((M+1)/M)"`` or ``"none"``.

    Raises
    ------
    ValueError
        If there is no ensemble dimension, fewer than two members, or coordinates differ.

    Notes
    -----
    DESIGN.md §4: :func:`spread` / :func:`ensemble_mean_rmse`, both with the same weighting
    and time ordering. For a perfect ensemble of M members the expected squared error of the
    mean is ``(M+1)/M`` times the expected variance, hence the optional correction.

    Examples
    --------
    >>> fc = xr.DataArray([[0.0, 2.0], [1.0, 3.0]], dims=("x", "number"))
    >>> truth = xr.DataArray([0.0, 1.0], dims="x")
    >>> float(spread_skill_ratio(fc, truth))
    1.4142135623730951
    >>> spread_skill_ratio(fc, truth, correction=True).attrs["correction"]
    'sqrt((M+1)/M)'
    """
    fc, tr, mdim = _pair(forecast, truth, member_dim)
    m = fc.sizes[mdim]
    kw = {"dim": dim, "member_dim": mdim, "weights": weights, "skipna": skipna}
    s = spread(fc, **kw)
    e = ensemble_mean_rmse(fc, tr, **kw)
    out = s / e
    if correction:
        out = out * np.sqrt((m + 1.0) / m)
    attrs = {"metric": "spread_skill_ratio", "members": int(m),
             "correction": "sqrt((M+1)/M)" if correction else "none"}  # fmt: skip
    return _finish(out, forecast, keep_attrs, attrs)


def _check_threshold_units(obj: xr.DataArray, name: str, units: str | None) -> None:
    if units is None:
        return
    from ..data.schema import _same_unit

    have = obj.attrs.get("units")
    if have is None:
        raise ValueError(
            f"threshold is in {units!r} but {name!r} has no 'units' attribute to check against"
        )
    if not (_same_unit(str(have), units) or _same_unit(units, str(have))):
        raise ValueError(
            f"threshold is in {units!r} but {name!r} is in {have!r}; convert the threshold"
        )


def brier_score(
    forecast: XarrayObj,
    truth: XarrayObj,
    /,
    *,
    threshold: float | xr.DataArray | Mapping[Hashable, float | xr.DataArray],
    units: str | None = None,
    dim: Dim = None,
    member_dim: str | None = None,
    fair: bool = False,
    weights: Weights = "area",
    skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:
    """Brier score of the event "value exceeds ``threshold``" from ensemble member fractions.

    Parameters
    ----------
    forecast : Dataset or DataArray
        Ensemble forecast.
    truth : Dataset or DataArray
        Verifying truth.
    threshold : float, DataArray or mapping of variable name to those
        Event threshold (``value > threshold``); a DataArray may vary in space or time;
        a mapping gives one per variable of a Dataset.
    units : str, optional
        Units of the threshold; checked against each variable's ``units`` attribute.
    dim, member_dim, weights, skipna, keep_attrs
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
    ValueError
        If the threshold units do not match the data, a variable lacks a threshold, the
        fair form is asked for one member, or as :func:`crps`.

    Notes
    -----
    DESIGN.md §4: ``BS = (p − o)²`` with ``p`` the fraction of members above the threshold and
    ``o`` 1 where the truth is above it. The debiased form is
    ``(p − o)² − p(1 − p)/(M − 1)`` (Ferro 2014, eq. 8). A NaN member or truth gives NaN.

    Examples
    --------
    >>> fc = xr.DataArray([[0.0, 2.0, 3.0, 4.0]], dims=("x", "number"))
    >>> float(brier_score(fc, xr.DataArray([5.0], dims="x"), threshold=1.0))
    0.0625
    """
    fc, tr, mdim = _pair(forecast, truth, member_dim)
    m = fc.sizes[mdim]
    if fair and m < 2:
        raise ValueError(f"the fair Brier score needs at least 2 members along {mdim!r}")

    def one(f: xr.DataArray, t: xr.DataArray, name: str, thr) -> xr.DataArray:
        _check_threshold_units(f, name, units)
        if isinstance(thr, xr.DataArray) and "units" in thr.attrs:
            _check_threshold_units(f, name, str(thr.attrs["units"]))
        p = (f > thr).where(f.notnull()).mean(mdim, skipna=False)
        o = (t > thr).where(t.notnull())
        bs = (p - o) ** 2
        if fair:
            bs = bs - p * (1 - p) / (m - 1)
        return bs

    if isinstance(fc, xr.Dataset):
        thrs = {}
        for v in fc.data_vars:
            if isinstance(threshold, Mapping):
                if v not in threshold:
                    raise ValueError(f"no threshold given for variable {v!r}")
                thrs[v] = threshold[v]
            else:
                thrs[v] = threshold
        point = xr.Dataset({v: one(fc[v], tr[v], str(v), thrs[v]) for v in fc.data_vars})
    else:
        if isinstance(threshold, Mapping):
            raise TypeError("a mapping of thresholds needs a Dataset forecast")
        point = one(fc, tr, str(fc.name), threshold)
    out = _reduce(point, dim, weights, skipna)
    attrs = {"metric": "brier_score", "estimator": "fair" if fair else "standard",
             "members": int(m)}  # fmt: skip
    return _finish(out, forecast, keep_attrs, attrs)


def rank_histogram(
    forecast: XarrayObj,
    truth: XarrayObj,
    /,
    *,
    dim: Dim = None,
    member_dim: str | None = None,
    seed: int | None = 0,
) -> XarrayObj:
    """Rank histogram (Talagrand diagram): counts of the truth's rank among the members.

    Parameters
    ----------
    forecast : Dataset or DataArray
        Ensemble forecast with M members.
    truth : Dataset or DataArray
        Verifying truth.
    dim : str or list of str, optional
        Dimensions to count over; ``None`` (default) counts over all.
    member_dim : str, optional
        Name of the ensemble dimension.
    seed : int or None, default 0
        Seed for breaking ties at random (reproducible by default; with dask, for the same
        chunking).

    Returns
    -------
    Dataset or DataArray
        Counts on a new dimension ``rank`` = 0..M (rank 0: truth below every member).
        Points where a member or the truth is NaN are not counted.

    Raises
    ------
    ValueError
        If there is no ensemble dimension or coordinates differ.

    Notes
    -----
    The rank is the number of members below the truth; ties between the truth and members
    are broken uniformly at random (Hamill 2001). Unweighted counts.

    Examples
    --------
    >>> fc = xr.DataArray([[0.0, 2.0], [0.0, 2.0], [0.0, 2.0]], dims=("x", "number"))
    >>> rank_histogram(fc, xr.DataArray([-1.0, 1.0, 3.0], dims="x")).values.tolist()
    [1, 1, 1]
    """
    fc, tr, mdim = _pair(forecast, truth, member_dim)
    m = fc.sizes[mdim]

    def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        # a generator per call: thread-safe under dask, reproducible for the same chunks
        rng = np.random.default_rng(seed)
        below = (x < y[..., None]).sum(-1)
        ties = (x == y[..., None]).sum(-1)
        r = below + np.floor(rng.random(below.shape) * (ties + 1)).astype(below.dtype)
        bad = np.isnan(x).any(-1) | np.isnan(y)
        return np.where(bad, -1, r)

    def one(f: xr.DataArray, t: xr.DataArray) -> xr.DataArray:
        f, t = xr.broadcast(f, t, exclude=[mdim])
        r = xr.apply_ufunc(kernel, f, t, input_core_dims=[[mdim], []], dask="parallelized",
                           output_dtypes=[np.int64],
                           dask_gufunc_kwargs={"allow_rechunk": True})  # fmt: skip
        dims = _as_dims(r, dim)
        counts = [(r == k).sum(dims) for k in range(m + 1)]
        out = xr.concat(counts, dim="rank").assign_coords(rank=np.arange(m + 1))
        return out.transpose("rank", ...)

    if isinstance(fc, xr.Dataset):
        out = xr.Dataset({v: one(fc[v], tr[v]) for v in fc.data_vars})
    else:
        out = one(fc, tr)
    out.attrs = {"metric": "rank_histogram", "members": int(m)}
    return out
