"""numba kernels (imported only on first use, by :mod:`xfuxi.verify._kernels`).

Module-level so that numba can cache the compiled code on disk between sessions.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["crps_sorted_network", "crps_sorted_network_skipna"]


@numba.njit(cache=True)
def _sort_block(buf, pairs, n):
    """Sort ``buf[:, :n]`` along axis 0 in place with the comparator ``pairs``.

    Branch-free compare-exchange over a block of points, so it vectorises across points.
    """
    for c in range(pairs.shape[0]):
        a = buf[pairs[c, 0]]
        b = buf[pairs[c, 1]]
        for k in range(n):
            u = a[k]
            w = b[k]
            s = u < w
            a[k] = u if s else w
            b[k] = w if s else u


#: inner points per block: their members are copied and sorted together
_BLOCK = 256


@numba.njit(cache=True)
def _crps_blocks(x, y, pairs, fair, skipna, out):
    """The two CRPS kernels' loop: ``O × I`` points in blocks of :data:`_BLOCK` inner points,
    each block scored by :func:`_crps_block` or, with ``skipna``, :func:`_crps_block_skipna`
    into ``out``; the scratch arrays are allocated once."""
    nouter, m, ninner = x.shape
    buf = np.empty((m, _BLOCK), dtype=x.dtype)
    skill = np.empty(_BLOCK)
    spread = np.empty(_BLOCK)
    count = np.empty(_BLOCK)
    for o in range(nouter):
        for start in range(0, ninner, _BLOCK):
            n = min(_BLOCK, ninner - start)
            for k in range(n):
                skill[k] = 0.0
                spread[k] = 0.0
            if skipna:
                _crps_block_skipna(x, y, pairs, fair, out, o, start, n, buf, skill, spread, count)
            else:
                _crps_block(x, y, pairs, fair, out, o, start, n, buf, skill, spread)


@numba.njit(cache=True, inline="always")  # as if written in the loop: as fast
def _crps_block(x, y, pairs, fair, out, o, start, n, buf, skill, spread):
    """CRPS of the ``n`` points from ``start`` of row ``o``: copy, accumulate ``Σ|x − y|``
    (NaN propagates), sort the block, then ``Σ (2i − M − 1) x_(i)``."""
    m = x.shape[1]
    for i in range(m):
        row = buf[i]
        for k in range(n):
            v = x[o, i, start + k]
            row[k] = v
            skill[k] += abs(v - y[o, start + k])  # NaN member or obs -> NaN
    if m == 1:
        for k in range(n):
            out[o, start + k] = skill[k]
        return
    denom = m * (m - 1.0) if fair else m * float(m)
    _sort_block(buf, pairs, n)
    for i in range(m):
        coef = 2.0 * (i + 1) - m - 1.0
        row = buf[i]
        for k in range(n):
            spread[k] += coef * row[k]
    for k in range(n):
        out[o, start + k] = skill[k] / m - spread[k] / denom


@numba.njit(cache=True, inline="always")  # as if written in the loop: as fast
def _crps_block_skipna(x, y, pairs, fair, out, o, start, n, buf, skill, spread, count):
    """As :func:`_crps_block` over the valid members of each point (NaN copied as +inf,
    so that the sort puts them last; ``count`` holds how many are valid)."""
    m = x.shape[1]
    inf = np.inf
    for k in range(n):
        count[k] = 0.0
    for i in range(m):
        row = buf[i]
        for k in range(n):
            v = x[o, i, start + k]
            ok = v == v
            row[k] = v if ok else inf
            skill[k] += abs(v - y[o, start + k]) if ok else 0.0
            count[k] += 1.0 if ok else 0.0
    if m > 1:
        _sort_block(buf, pairs, n)
    for i in range(m):
        row = buf[i]
        for k in range(n):
            c = count[k]
            spread[k] += (2.0 * (i + 1) - c - 1.0) * row[k] if i < c else 0.0
    for k in range(n):
        c = count[k]
        if c == 0.0 or y[o, start + k] != y[o, start + k]:
            out[o, start + k] = np.nan
        elif c == 1.0:
            out[o, start + k] = skill[k]
        else:
            denom = c * (c - 1.0) if fair else c * c
            out[o, start + k] = skill[k] / c - spread[k] / denom


@numba.njit(cache=True)
def crps_sorted_network(x, y, pairs, fair, out):
    """Ensemble CRPS of ``O × I`` points into ``out``.

    ``x`` is (O, M, I) — outer points × members × inner points, any strides (usually a
    no-copy view of the caller's array with the members in the middle); ``y`` and ``out``
    are (O, I); ``pairs`` the sorting network of
    :func:`xfuxi.verify._kernels.sorting_network`. Inner points are taken in blocks of 256:
    copy, accumulate ``Σ|x − y|`` (NaN propagates), sort the block, then
    ``Σ (2i − M − 1) x_(i)``; ``fair`` selects the ``M(M−1)`` denominator, else ``M²``.
    """
    _crps_blocks(x, y, pairs, fair, False, out)


@numba.njit(cache=True)
def crps_sorted_network_skipna(x, y, pairs, fair, out):
    """As :func:`crps_sorted_network`, over the valid (non-NaN) members of each point only.

    NaN members are copied as +inf so that the sorting network puts them last; with ``n``
    valid members at a point the CRPS is ``Σ|x − y| / n − Σ_{i<n} (2i − n + 1) x_(i) / D``,
    ``D = n(n − 1)`` (fair) or ``n²``; one valid member gives ``|x − y|``, none (or a NaN
    observation) NaN.
    """
    _crps_blocks(x, y, pairs, fair, True, out)
