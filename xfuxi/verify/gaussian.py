"""Scores of a Gaussian forecast given by its mean and standard deviation.

WeatherBench2's ``GaussianCRPS``, ``GaussianVariance`` and ``GaussianBrierScore``, and the
continuous logarithmic (ignorance) score (not WeatherBench2's ``GaussianIgnoranceScore``,
which scores the yes/no event of a threshold): the forecast at each point is ``N(μ, σ²)``.
Closed forms,
vectorised (scipy's ``ndtr`` for Φ), lazy on dask arrays. Reductions, regions and missing
data as every other score; definitions in the documentation (docs/verification.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import xarray as xr
from scipy.special import ndtr

from ..data.schema import check_unpacked
from ._docs import score_doc
from .weights import (
    Weights,
    XarrayObj,
    align_valid_time,
    as_float,
    check_variable_keys,
    conform,
    finish_score,
    needs_valid_time,
    prepare_pair,
    reduce_score,
)

__all__ = [
    "gaussian_brier_score",
    "gaussian_crps",
    "gaussian_ignorance",
    "gaussian_log_score",
    "gaussian_variance",
]

Dim = str | Iterable[Hashable] | None
_SQRT_PI = float(np.sqrt(np.pi))
_LOG_2PI = float(np.log(2.0 * np.pi))


def _cdf(z: XarrayObj) -> XarrayObj:
    """Standard normal CDF Φ, lazy on dask arrays."""
    return xr.apply_ufunc(ndtr, z, dask="allowed", keep_attrs=False)


def _pdf(z: XarrayObj) -> XarrayObj:
    return np.exp(-0.5 * z**2) / np.sqrt(2.0 * np.pi)


_NEGATIVE_STD = "std holds negative values; a standard deviation must be >= 0"


def _check_std_block(block: np.ndarray, *, name: str) -> np.ndarray:
    """Raise if (a block of) ``std`` holds a negative value; else return it as it is."""
    negative = np.asarray(block) < 0  # NaN (a missing σ) is not negative
    if negative.any():
        raise ValueError(
            f"{_NEGATIVE_STD} ({name}: {int(negative.sum())} negative value(s), min "
            f"{np.nanmin(block)})"
        )
    return block


def _nonnegative(std: XarrayObj) -> XarrayObj:
    """``std`` checked to be ≥ 0: at once for NumPy data, block by block as it is computed
    for dask data (so that a lazy score stays lazy; the error comes at ``compute``)."""

    def check(da: xr.DataArray, name: str) -> xr.DataArray:
        if da.chunks is None:
            _check_std_block(da.values, name=name)
            return da
        block_check = functools.partial(_check_std_block, name=name)
        return da.copy(deep=False, data=da.data.map_blocks(block_check, dtype=da.dtype))

    if isinstance(std, xr.Dataset):
        return std.assign({v: check(std[v], f"variable {v!r}") for v in std.data_vars})
    return check(std, "std")


def _triple(mean: XarrayObj, std: XarrayObj, truth: XarrayObj | None):
    """Check and align mean, std (and truth): std must cover the mean's grid, be ≥ 0 (checked
    lazily for dask data, :func:`_nonnegative`)."""
    if isinstance(mean, xr.Dataset) != isinstance(std, xr.Dataset):
        raise TypeError(
            "mean and std must both be Datasets or both DataArrays; got "
            f"{type(mean).__name__} and {type(std).__name__}"
        )
    if isinstance(mean, xr.Dataset):
        missing = [v for v in mean.data_vars if v not in std.data_vars]
        if missing:
            raise ValueError(f"std lacks variable(s) {missing} of the mean")
        std = std[list(mean.data_vars)]
    # float16 and integer data in float64, complex refused, as for the pair (prepare_pair)
    check_unpacked(std)  # stored int16 counts are no spread
    std = as_float(conform(std, mean, name="std", reference_name="mean"), "std")
    std = _nonnegative(std)
    if truth is None:
        return as_float(mean, "mean"), std, None
    mean_, tr = prepare_pair(mean, truth, names=("mean", "truth"))
    if "valid_time" in mean_.coords:
        std = std.assign_coords(valid_time=mean_["valid_time"].variable)
    return mean_, std, tr


_MEAN = """mean : Dataset or DataArray
        Mean of the Gaussian forecast."""
_TRUTH = """
    truth : Dataset or DataArray
        Verifying truth, matched as in :func:`~xfuxi.rmse`."""
_STD = """
    std : Dataset or DataArray, keyword-only
        Standard deviation (``σ ≥ 0``) of the Gaussian forecast, the same kind of object as
        the mean on its grid. Keyword-only, so that it cannot take the truth's place (other
        libraries order mean, std and truth differently)."""
_RAISES = """ValueError
        If ``std`` is negative (for dask data when the result is computed) or does not cover
        the mean's grid, or as :func:`~xfuxi.rmse`.
    TypeError
        If mean, std or truth holds complex data, or a ``time`` holds cftime dates or
        carries a time zone (:func:`~xfuxi.verify.weights.prepare_pair`)."""


def _document(func: Callable, *, truth: str, formula: str, **doc: str) -> Callable:
    """Give the Gaussian score ``func`` its docstring (:func:`~xfuxi.verify._docs.score_doc`);
    ``truth`` describes the parameters after ``mean, truth, std``."""
    name = func.__name__
    return score_doc(
        func, name, parameters=f"{_MEAN}{truth}\n    {{{{score_options}}}}",
        returns=f'The mean score over ``dim``; ``attrs["metric"] == "{name}"``.',
        raises=_RAISES, notes=formula, **doc,
    )  # fmt: skip


def _finish(point: XarrayObj, mean, dim, weights, region, skipna, keep_attrs, metric):
    out = reduce_score(point, dim, weights, skipna, region)
    return finish_score(out, mean, keep_attrs, {"metric": metric})


if TYPE_CHECKING:
    from typing import Protocol

    class _PointScore(Protocol):
        """What :func:`_point_score` builds (gaussian_crps, gaussian_ignorance), as type
        checkers see it."""

        @overload
        def __call__(
            self, mean: xr.Dataset, truth: xr.Dataset, /, *, std: XarrayObj, dim: Dim = None,
            weights: Weights = "area", region: Any = None, skipna: bool = False,
            keep_attrs: bool = False,
        ) -> xr.Dataset: ...  # fmt: skip
        @overload
        def __call__(
            self, mean: xr.DataArray, truth: xr.DataArray, /, *, std: XarrayObj, dim: Dim = None,
            weights: Weights = "area", region: Any = None, skipna: bool = False,
            keep_attrs: bool = False,
        ) -> xr.DataArray: ...  # fmt: skip


def _point_score(
    name: str, point: Callable[[XarrayObj, XarrayObj, XarrayObj], XarrayObj], **doc: str
) -> _PointScore:
    """Build the score ``name`` of a Gaussian forecast against a truth: the reduced
    ``point(μ, σ, truth)``. The CRPS and the ignorance share this signature and
    implementation; ``doc`` fills the docstring (:func:`_document`)."""

    def score(
        mean: XarrayObj, truth: XarrayObj, /, *, std: XarrayObj, dim: Dim = None,
        weights: Weights = "area", region: Any = None, skipna: bool = False,
        keep_attrs: bool = False,
    ) -> XarrayObj:  # fmt: skip
        mu, sigma, tr = _triple(mean, std, truth)
        return _finish(point(mu, sigma, tr), mean, dim, weights, region, skipna, keep_attrs, name)

    score.__name__ = name
    return _document(score, truth=_TRUTH + _STD, **doc)  # type: ignore[return-value]


def _crps_point(mu: XarrayObj, sigma: XarrayObj, tr: XarrayObj) -> XarrayObj:
    sigma_safe = sigma.where(sigma > 0, 1.0)
    z = (tr - mu) / sigma_safe
    crps = sigma * (z * (2.0 * _cdf(z) - 1.0) + 2.0 * _pdf(z) - 1.0 / _SQRT_PI)
    # σ = 0: a point forecast, CRPS = |y − μ|; a missing σ stays missing (NaN)
    return crps.where((sigma > 0) | sigma.isnull(), np.abs(tr - mu))


gaussian_crps = _point_score(
    "gaussian_crps",
    _crps_point,
    summary="CRPS of a Gaussian forecast ``N(μ, σ²)`` (closed form).",
    formula="``CRPS = σ [z (2Φ(z) − 1) + 2φ(z) − 1/√π]``, ``z = (y − μ)/σ`` (Gneiting et al. "
    "2005); ``|y − μ|`` where ``σ = 0``.",
    example=""">>> m, s = xr.DataArray([0.0]), xr.DataArray([1.0])
    >>> round(float(gaussian_crps(m, xr.DataArray([0.0]), std=s)), 6)  # (√2 − 1)/√π
    0.233695
    >>> round(float(m.fuxi.gaussian_crps(xr.DataArray([0.0]), std=s)), 6)  # the accessor
    0.233695""",
)


@overload
def gaussian_variance(
    mean: xr.Dataset, /, *, std: XarrayObj, dim: Dim = None, weights: Weights = "area",
    region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.Dataset: ...  # fmt: skip
@overload
def gaussian_variance(
    mean: xr.DataArray, /, *, std: XarrayObj, dim: Dim = None, weights: Weights = "area",
    region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> xr.DataArray: ...  # fmt: skip
def gaussian_variance(
    mean: XarrayObj, /, *, std: XarrayObj, dim: Dim = None, weights: Weights = "area",
    region: Any = None, skipna: bool = False, keep_attrs: bool = False,
) -> XarrayObj:  # fmt: skip
    _, sigma, _ = _triple(mean, std, None)
    return _finish(sigma**2, mean, dim, weights, region, skipna, keep_attrs, "gaussian_variance")


gaussian_variance = _document(
    gaussian_variance,
    summary="Mean variance ``σ²`` of a Gaussian forecast (its spread, squared).",
    truth=_STD,
    formula="The mean of ``σ²``; its square root is comparable with :func:`~xfuxi.spread`.",
    example=""">>> m = xr.DataArray([0.0, 0.0])
    >>> float(gaussian_variance(m, std=xr.DataArray([1.0, 3.0])))
    5.0
    >>> float(m.fuxi.gaussian_variance(std=xr.DataArray([1.0, 3.0])))  # through the accessor
    5.0""",
)


@overload
def gaussian_brier_score(
    mean: xr.Dataset, truth: xr.Dataset, /, *, std: XarrayObj, threshold: Any,
    dim: Dim = None, weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> xr.Dataset: ...  # fmt: skip
@overload
def gaussian_brier_score(
    mean: xr.DataArray, truth: xr.DataArray, /, *, std: XarrayObj, threshold: Any,
    dim: Dim = None, weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> xr.DataArray: ...  # fmt: skip
def gaussian_brier_score(
    mean: XarrayObj, truth: XarrayObj, /, *, std: XarrayObj, threshold: Any,
    dim: Dim = None, weights: Weights = "area", region: Any = None, skipna: bool = False,
    keep_attrs: bool = False,
) -> XarrayObj:  # fmt: skip
    mu, sigma, tr = _triple(mean, std, truth)

    def aligned(t: Any, like: XarrayObj) -> Any:
        if not isinstance(t, xr.DataArray):
            return t
        if needs_valid_time(like, t):  # a threshold on time, as the truth: at valid times
            t = align_valid_time(like, t, name="threshold").drop_vars("valid_time")
        return conform(t, like, name="threshold", reference_name="mean", new_dims=True)

    if isinstance(threshold, Mapping):  # one per variable, as for brier_score
        if not isinstance(mu, xr.Dataset):
            raise TypeError("a mapping of thresholds needs a Dataset forecast")
        check_variable_keys(threshold, mu, "threshold")  # a misspelled name is not ignored
        missing = [str(v) for v in mu.data_vars if v not in threshold]
        if missing:
            raise ValueError(f"no threshold given for variable(s) {missing}")
        thr: Any = xr.Dataset({v: aligned(threshold[v], mu[v]) for v in mu.data_vars})
    else:
        thr = aligned(threshold, mu)
    sigma_safe = sigma.where(sigma > 0, 1.0)
    p = (1.0 - _cdf((thr - mu) / sigma_safe)).where(sigma > 0, (mu > thr) * 1.0)
    o = (tr > thr).where(tr.notnull())
    p = p.where(mu.notnull() & sigma.notnull())
    bs = (p - o) ** 2
    return _finish(bs, mean, dim, weights, region, skipna, keep_attrs, "gaussian_brier_score")


gaussian_brier_score = _document(
    gaussian_brier_score,
    summary='Brier score of a Gaussian forecast for the event "value exceeds ``threshold``".',
    truth=_TRUTH
    + _STD
    + """
    threshold : float, DataArray or mapping
        Event threshold (``value > threshold``), in the units of the data; for a Dataset,
        also a mapping of variable name to threshold (every variable needs one). A
        DataArray may vary in space or time; one on ``time`` (as the truth) is taken at the
        valid times of a forecast with ``prediction_timedelta``, as in
        :func:`~xfuxi.brier_score`.""",
    formula="``(p − o)²`` with ``p = 1 − Φ((t − μ)/σ)`` and ``o = 1`` where the truth "
    "exceeds ``t``.",
    example=""">>> m, s = xr.DataArray([0.0]), xr.DataArray([1.0])
    >>> float(gaussian_brier_score(m, xr.DataArray([1.0]), std=s, threshold=0.0))
    0.25
    >>> float(m.fuxi.gaussian_brier_score(xr.DataArray([1.0]), std=s, threshold=0.0))
    0.25""",
)


def gaussian_log_score(y: XarrayObj, mu: XarrayObj, sigma: XarrayObj) -> XarrayObj:
    """Point-wise ``−log N(y; μ, σ²)`` (natural log).

    Where ``σ = 0`` the forecast is a point mass: ``+inf`` where ``y ≠ μ`` and ``−inf``
    where ``y = μ`` (the limit of the formula as ``σ → 0``), not the ``NaN`` of ``0/0``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 0.5 * _LOG_2PI + np.log(sigma) + 0.5 * ((y - mu) / sigma) ** 2
    point = sigma == 0
    hit, miss = point & (y == mu), point & (abs(y - mu) > 0)  # NaN stays NaN
    if isinstance(score, xr.DataArray | xr.Dataset):
        return score.where(~hit, -np.inf).where(~miss, np.inf)
    return np.where(hit, -np.inf, np.where(miss, np.inf, score))


gaussian_ignorance = _point_score(
    "gaussian_ignorance",
    lambda mu, sigma, tr: gaussian_log_score(tr, mu, sigma),
    summary="Continuous ignorance (logarithmic) score of a Gaussian forecast, in nats.",
    formula="``−log φ_σ(y − μ) = ½ log(2π) + log σ + (y − μ)²/(2σ²)`` (natural log, nats). "
    "Not WeatherBench2's ``GaussianIgnoranceScore``, which scores a threshold's yes/no event.",
    example=""">>> m, s = xr.DataArray([0.0]), xr.DataArray([1.0])
    >>> round(float(gaussian_ignorance(m, xr.DataArray([0.0]), std=s)), 6)  # ½ log 2π
    0.918939
    >>> round(float(m.fuxi.gaussian_ignorance(xr.DataArray([0.0]), std=s)), 6)  # accessor
    0.918939""",
)
