"""Array kernels for ensemble scores: numba when available, NumPy otherwise.

Kernels take NumPy arrays with the ensemble on the **last** axis and the observation
broadcast against the other axes. The numba CRPS kernel sorts the members of a block of
256 points at once with a Batcher odd–even merge sorting network (O(M log² M)
compare-exchanges, branch-free, vectorised across points) and then forms
``Σ (2i − M − 1) x_(i)``; the NumPy fallback uses ``np.sort`` (O(M log M)). numba is
imported on first use only; set ``XFUXI_DISABLE_NUMBA=1`` (or when numba is missing) to use
the NumPy fallback.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "crps_ensemble_kernel",
    "crps_ensemble_numpy",
    "energy_score_kernel",
    "have_numba",
    "sorting_network",
]

_NUMBA_KERNELS: dict[str, Callable[..., np.ndarray]] | None = None
_NUMBA_FAILED = False


def have_numba() -> bool:
    """Return True when numba kernels can be used."""
    if os.environ.get("XFUXI_DISABLE_NUMBA", "") not in ("", "0"):
        return False
    return _numba_kernels() is not None


@functools.lru_cache(maxsize=64)
def sorting_network(m: int) -> np.ndarray:
    """Comparator pairs ``(i, j)``, ``i < j``, of Batcher's odd–even merge sort for ``m`` items.

    Built for the next power of two and pruned to pairs with ``j < m`` (valid because padding
    with +inf would never move), so applying the pairs in order sorts ``m`` values ascending.

    Examples
    --------
    >>> sorting_network(3).tolist()
    [[0, 1], [0, 2], [1, 2]]
    """
    n = 1
    while n < m:
        n *= 2
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < m:
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _numba_kernels() -> dict[str, Callable[..., np.ndarray]] | None:
    global _NUMBA_KERNELS, _NUMBA_FAILED
    if _NUMBA_KERNELS is not None or _NUMBA_FAILED:
        return _NUMBA_KERNELS
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - exercised when numba is absent
        _NUMBA_FAILED = True
        logger.info("numba not installed; using NumPy kernels")
        return None

    from . import _numba_kernels as nk

    _NUMBA_KERNELS = {"crps": nk.crps_sorted_network, "crps_skipna": nk.crps_sorted_network_skipna}
    return _NUMBA_KERNELS


def crps_ensemble_numpy(
    members: np.ndarray, obs: np.ndarray, fair: bool = True, skipna: bool = False
) -> np.ndarray:
    """CRPS of an ensemble (members on the last axis) by sorting, in NumPy.

    Parameters
    ----------
    members : ndarray
        Ensemble values, members on the last axis.
    obs : ndarray
        Observations, broadcastable to ``members.shape[:-1]``.
    fair : bool, default True
        Use the unbiased ("fair") spread term ``1 / (M(M−1))`` instead of ``1 / M²``.
    skipna : bool, default False
        Score each point over its valid (non-NaN) members only, with ``M`` their number.

    Returns
    -------
    ndarray
        CRPS with shape ``members.shape[:-1]``; NaN where the observation is NaN, where any
        member is NaN (without ``skipna``) or where no member is valid (with it). Of the
        common type of members and observations (float64 when either is).

    Notes
    -----
    ``CRPS = mean_i |x_i − y| − ½ E|X − X′|`` with, for sorted members ``x_(1..M)``,
    ``E|X − X′| = 2 Σ_i (2i − M − 1) x_(i) / D``, ``D = M(M−1)`` (fair) or ``M²``
    (standard). One member gives ``|x − y|``.

    Examples
    --------
    >>> float(crps_ensemble_numpy(np.array([0.0, 2.0]), np.array(1.0)))
    0.0
    """
    x = np.asarray(members)
    m = x.shape[-1]
    y = np.asarray(obs)[..., None]
    if skipna:
        return _crps_valid_members_numpy(x, y, fair)
    dtype = np.result_type(x.dtype, y.dtype, np.float32)  # a float64 truth stays float64
    skill = np.abs(x - y).mean(-1)
    if m == 1:
        return skill.astype(dtype, copy=False)
    s = np.sort(x, axis=-1)
    coef = 2.0 * np.arange(1, m + 1) - m - 1.0
    # summed in float64, as the numba kernel does: in float32 the sum of members ~1e5
    # times coefficients ~M cancels to a spread of ~10 with errors of 1e-3
    spread = np.einsum("...m,m->...", s, coef, dtype=np.float64, casting="safe")
    denom = m * (m - 1.0) if fair else m * float(m)
    out = skill - spread / denom
    # np.sort puts NaN last, which keeps NaN in the sum already; make it explicit
    bad = np.isnan(x).any(-1) | np.isnan(y[..., 0])
    return np.where(bad, np.nan, out).astype(dtype, copy=False)


def _crps_valid_members_numpy(x: np.ndarray, y: np.ndarray, fair: bool) -> np.ndarray:
    """:func:`crps_ensemble_numpy` over the valid members of each point (``y`` has a trailing
    length-1 axis)."""
    valid = ~np.isnan(x)
    n = valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        skill = np.where(valid, np.abs(x - y), 0.0).sum(-1) / n
        s = np.sort(x, axis=-1)  # NaN last: the valid members are the first n
        i = np.arange(1, x.shape[-1] + 1)
        inside = i <= n[..., None]
        coef = 2.0 * i - n[..., None] - 1.0
        spread = np.where(inside, s * coef, 0.0).sum(-1)
        denom = np.where(n > 1, n * (n - 1.0) if fair else n * n * 1.0, 1.0)
        out = skill - spread / denom
    dtype = np.result_type(x.dtype, y.dtype, np.float32)  # a float64 truth stays float64
    return np.where((n == 0) | np.isnan(y[..., 0]), np.nan, out).astype(dtype, copy=False)


def _outer_member_inner(x: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """View ``x`` (..., M) as (outer, M, inner) in memory order, copying only if needed.

    Returns the 3-D array and the order of the non-member axes (outer then inner) that its
    points follow. Arrays whose members sit anywhere in a C-ordered block (the usual case:
    ``apply_ufunc`` moves the member axis last as a view) are not copied.
    """
    nd = x.ndim
    m = x.shape[-1]
    strides = x.strides
    order = sorted(range(nd - 1), key=lambda a: -strides[a])
    outer = [a for a in order if strides[a] > strides[-1]]
    inner = [a for a in order if strides[a] <= strides[-1]]
    v = x.transpose([*outer, nd - 1, *inner])
    n_in = int(np.prod([x.shape[a] for a in inner], dtype=np.int64))
    # no copy when memory allows and the inner run is long enough to vectorise over
    if m > 1 and n_in >= 64 and v.flags.c_contiguous and all(s >= 0 for s in strides):
        return v.reshape(-1, m, n_in), outer + inner
    perm = list(range(nd - 1))
    flat = np.ascontiguousarray(np.moveaxis(x, -1, 0)).reshape(1, m, -1)
    return flat, perm


def crps_ensemble_kernel(
    members: np.ndarray, obs: np.ndarray, fair: bool = True, skipna: bool = False
) -> np.ndarray:
    """Dispatch to the numba kernel when available, else :func:`crps_ensemble_numpy`.

    The result has the common type of ``members`` and ``obs`` (float64 when either is, or
    when they are narrower than float32); float32 members are not copied to float64.
    """
    kernels = _numba_kernels() if have_numba() else None
    x = np.asarray(members)
    if kernels is None:
        return crps_ensemble_numpy(x, obs, fair, skipna)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    obs = np.asarray(obs)
    # the common type of members and truth: a float64 truth is not rounded to float32
    # members (which stay as they are, not copied); the kernel sums in float64 anyway
    dtype = np.result_type(x.dtype, obs.dtype, np.float32)
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float64)
    shape = x.shape[:-1]
    x3, perm = _outer_member_inner(x)
    y = np.broadcast_to(obs.astype(dtype, copy=False), shape).transpose(perm)
    y2 = np.ascontiguousarray(y).reshape(x3.shape[0], x3.shape[2])
    out = np.empty(y2.shape, dtype=dtype)
    kernels["crps_skipna" if skipna else "crps"](
        x3, y2, sorting_network(x.shape[-1]), bool(fair), out
    )
    return out.reshape(y.shape).transpose(np.argsort(perm))


def energy_score_kernel(
    members: np.ndarray, obs: np.ndarray, weights: np.ndarray, fair: bool = True,
    skipna: bool = False,
) -> np.ndarray:  # fmt: skip
    """Energy score of ensemble vectors: ``E‖X − y‖ − ½ E‖X − X′‖``.

    Parameters
    ----------
    members : ndarray
        (..., M, P): M members of P-vectors (the vector axes flattened last).
    obs : ndarray
        (..., P) observed vectors.
    weights : ndarray
        (P,) non-negative weights of the norm ``‖z‖ = √(Σ w z² / Σ w)``.
    fair : bool, default True
        Divide the pair sum by ``M(M − 1)`` (else ``M²``).
    skipna : bool, default False
        Leave out members with a NaN anywhere in their vector (M counts the rest).

    Returns
    -------
    ndarray
        (...,) energy scores; NaN where the observation has a NaN (at a positive weight),
        any member has one (without ``skipna``) or no member is complete (with it).

    Notes
    -----
    The pair distances come from the Gram matrix of the members centred on their mean
    (``‖a − b‖² = ‖a‖² + ‖b‖² − 2⟨a, b⟩``), one matrix product per point: O(M² P) flops
    as BLAS work instead of M² passes. Points of zero weight are set to 0 first, so a NaN
    there does not count.

    Examples
    --------
    >>> x = np.array([[0.0], [2.0]]); y = np.array([1.0]); w = np.ones(1)
    >>> float(energy_score_kernel(x, y, w))  # one-point vectors: the fair CRPS
    0.0
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    keep = w > 0
    x = np.where(keep, members, 0.0)
    y = np.where(keep, obs, 0.0)
    bad_x = np.isnan(x).any(-1)  # (..., M)
    if skipna:
        x = np.where(bad_x[..., None], 0.0, x)
        valid = (~bad_x).astype(np.float64)
    else:
        valid = np.ones(bad_x.shape)
    n = valid.sum(-1)
    sw = np.sqrt(w)
    d = (x - y[..., None, :]) * sw
    skill = (np.sqrt(np.einsum("...mp,...mp->...m", d, d)) * valid).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (x * valid[..., None]).sum(-2, keepdims=True) / n[..., None, None]
        c = (x - mean) * sw * valid[..., None]
        gram = c @ np.swapaxes(c, -1, -2)
        g = np.diagonal(gram, axis1=-2, axis2=-1)
        dist2 = np.maximum(g[..., :, None] + g[..., None, :] - 2.0 * gram, 0.0)
        dist = np.sqrt(dist2) * valid[..., :, None] * valid[..., None, :]
        pair = dist.sum((-1, -2))
        denom = n * (n - 1.0) if fair else n * n
        out = skill / n - 0.5 * np.where(n > 1, pair / np.where(n > 1, denom, 1.0), 0.0)
    bad = np.isnan(y).any(-1) | (n == 0)
    if not skipna:
        bad = bad | bad_x.any(-1)
    return np.where(bad, np.nan, out)
