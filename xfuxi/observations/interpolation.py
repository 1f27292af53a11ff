"""The observation operator H as interpolation weights: the NumPy view (no torch).

This module computes, once, the weights of the one observation operator of xfuxi; they are
applied either with NumPy (:meth:`ObservationWeights.apply`, used by verification through
:func:`horizontal_weights`) or with torch (:class:`xfuxi.observations.operator.
ObservationOperator`, used by assimilation). The definition (see docs/design.md):

* horizontally, bilinear in latitude and longitude; on a global grid longitude is
  periodic (an observation between the last and the first meridian uses both) and poleward
  of the outermost latitude row the interpolation runs *across the pole* to the same row
  at longitude + 180°, with the sign of wind components reversed there (the local
  east/north axes turn over at the pole); a regional grid is neither wrapped nor crossed
  over the pole: what lies beyond its edges is outside it (see :func:`horizontal_weights`);
* vertically, an observation on a model pressure level uses that level; one between two
  levels of its variable is linear in log-pressure; single-level variables have level NaN;
* observation longitudes are accepted in [-180, 360] (:data:`LONGITUDE_RANGE`) and taken
  modulo 360; a longitude outside that range is never wrapped: it is outside the grid.

Observations that cannot be interpolated are reported with a reason (see
:data:`REJECT_REASONS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.channels import VECTOR_COMPONENTS
from ..docstrings import docstring_parts
from ..grid import longitude_gaps, wide_longitude_gaps

__all__ = [
    "DOC_PARTS",
    "fill_doc",
    "LONGITUDE_RANGE",
    "REJECT_REASONS",
    "VECTOR_COMPONENTS",
    "ObservationWeights",
    "covered_region",
    "horizontal_weights",
    "observation_weights",
    "vertical_weights",
]

#: the observation operator's inputs and outputs, described once (NumPy weights and torch view)
DOC_PARTS = {
    "channels": """\
channels : sequence of (variable, level)
    The model's channel order (level in hPa or None).""",
    "observations": """\
obs_variable, obs_latitude, obs_longitude, obs_level : array-like (m,)
    Observation metadata; ``obs_level`` NaN for single-level variables; longitudes in
    [-180, 360] (any other is ``"outside_grid"``, never wrapped).""",
    "operator_outputs": """\
    For the *usable* observations only (in their original order).
reason : numpy.ndarray of str (m,)
    ``""`` for usable observations, else ``"unknown_variable"``, ``"unknown_level"``
    (no such level, or between none of the variable's levels) or ``"outside_grid"``.""",
}
#: fill the ``{{name}}`` lines of a docstring from :data:`DOC_PARTS`
fill_doc = docstring_parts(DOC_PARTS)

#: reasons for which an observation is not used, in the order they are checked
REJECT_REASONS: tuple[str, ...] = (
    "nan_value",
    "bad_error",
    "unknown_variable",
    "unknown_level",
    "outside_grid",
    "outside_window",
    "duplicate",
    "background_check",
)

#: observation longitudes accepted (degrees, inclusive); they are taken modulo 360
LONGITUDE_RANGE: tuple[float, float] = (-180.0, 360.0)


@dataclass(frozen=True, eq=False)
class ObservationWeights:
    """The observation operator as a fixed gather: the NumPy view.

    ``H x`` for states ``x`` of shape ``(..., C, H, W)`` is ``Σ_k weight[:, k] ·
    x.flat[index[:, k]]``, of shape ``(..., m)``. Built by :func:`observation_weights`;
    :meth:`xfuxi.observations.operator.ObservationOperator.from_weights` gives the torch
    view of the same weights.

    Parameters
    ----------
    index : numpy.ndarray (m, k) of int
        Flat indices into ``C * H * W``.
    weight : numpy.ndarray (m, k)
        Interpolation weights (zero for padding).
    state_shape : tuple (C, H, W)

    Notes
    -----
    A value of zero weight does not reach ``H x``: a NaN there (SST over land read by the
    padding of an observation on another channel, or the neighbour of an observation
    exactly on a grid point) leaves ``H x`` finite. A NaN of non-zero weight gives NaN.

    Examples
    --------
    >>> w = ObservationWeights(np.array([[0, 1]]), np.array([[0.25, 0.75]]), (1, 1, 2))
    >>> w.apply(np.array([[[4.0, 8.0]]])).tolist()
    [7.0]
    """

    index: np.ndarray
    weight: np.ndarray
    state_shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        index = np.asarray(self.index)
        weight = np.asarray(self.weight, dtype="float64")
        if index.shape != weight.shape or index.ndim != 2:
            raise ValueError(f"index {index.shape} and weight {weight.shape} differ")
        if index.size and not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"index must be integer, got dtype {index.dtype}")
        shape = tuple(int(s) for s in self.state_shape)
        if len(shape) != 3:
            raise ValueError(f"state_shape must be (C, H, W), got {self.state_shape}")
        size = int(np.prod(shape))
        if index.size and (int(index.min()) < 0 or int(index.max()) >= size):
            raise ValueError(f"index out of range for a state of shape {shape}")
        object.__setattr__(self, "index", index.astype(np.int64))
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "state_shape", shape)

    @property
    def n_obs(self) -> int:
        """Number of observations ``m``."""
        return int(self.index.shape[0])

    def apply(self, x: Any) -> np.ndarray:
        """``H x`` for states ``x`` of shape ``(..., C, H, W)``; returns ``(..., m)``."""
        x = np.asarray(x)
        if tuple(x.shape[-3:]) != self.state_shape:
            raise ValueError(f"expected states (..., {self.state_shape}); got {x.shape}")
        flat = x.reshape(*x.shape[:-3], -1)
        vals = flat[..., self.index]
        # a NaN the operator gives no weight (a neighbour of an observation exactly on a grid
        # point, the padding that reads channel 0: SST missing over land) must not reach
        # H x, yet NaN * 0 is NaN: only non-finite values of zero weight are zeroed, so
        # every other term (and H x of complete states) is the product it always was
        unused = (self.weight == 0) & ~np.isfinite(vals)
        if unused.any():
            vals = np.where(unused, 0, vals)
        return (vals * self.weight).sum(-1)

    def matrix(self) -> np.ndarray:
        """The operator as a dense ``(m, C*H*W)`` matrix (for tests and small problems)."""
        out = np.zeros((self.n_obs, int(np.prod(self.state_shape))))
        rows = np.repeat(np.arange(self.n_obs), self.index.shape[1])
        np.add.at(out, (rows, self.index.ravel()), self.weight.ravel())
        return out

    def subset(self, keep: Any) -> ObservationWeights:
        """Weights of the observations selected by ``keep`` (bool mask or index)."""
        keep = np.asarray(keep)
        return ObservationWeights(self.index[keep], self.weight[keep], self.state_shape)


def _sorted_grid(latitude: Any, longitude: Any) -> tuple[np.ndarray, np.ndarray, Any, Any]:
    """The grid in ascending order (longitude modulo 360) and the maps back to its order."""
    lat = np.asarray(latitude, dtype="float64")
    lon = np.asarray(longitude, dtype="float64")
    if lat.ndim != 1 or lat.size == 0 or not np.all(np.isfinite(lat)):
        raise ValueError(f"grid latitude must be 1-D, non-empty and finite; got shape {lat.shape}")
    if lat.min() < -90 or lat.max() > 90:
        raise ValueError("grid latitude must lie within [-90, 90] degrees")
    if lon.ndim != 1 or lon.size == 0 or not np.all(np.isfinite(lon)):
        raise ValueError(f"grid longitude must be 1-D, non-empty and finite; got shape {lon.shape}")
    lat_order = np.argsort(lat, kind="stable")
    lon_mod = lon % 360.0
    lon_order = np.argsort(lon_mod, kind="stable")
    lat_s, lon_s = lat[lat_order], lon_mod[lon_order]
    if np.any(np.diff(lat_s) <= 0):
        raise ValueError("grid latitude must be strictly monotonic (no repeated latitude)")
    if np.any(np.diff(lon_s) <= 0):
        raise ValueError("grid longitude must not repeat a meridian (modulo 360 degrees)")
    return lat_s, lon_s, lat_order, lon_order


#: slack (degrees) at the edges of a regional grid's gap in longitude, for rounding
_EDGE_SLACK = 1e-9

#: a periodic grid is crossed over a pole when its outermost row is at most this many row
#: spacings from it: a global grid's is within one (0 with pole rows, about half on offset
#: and Gaussian grids); two also keeps coarse toy grids (three rows at 0, ±30°) global,
#: while a band or cap of any real resolution stops short of the pole by many spacings
_POLE_GAP_FACTOR = 2.0


def _lon_gap(lon_s: np.ndarray) -> tuple[float, float] | None:
    """The longitudes a regional grid leaves out, ``(start, width)`` in degrees east of
    ``start``; None for a grid that covers the circle (no gap wider than 1.5 spacings, the
    rule regridding uses: :func:`xfuxi.grid.wide_longitude_gaps`)."""
    if lon_s.size < 2:
        return None  # one meridian: only observations on it (checked by the caller)
    if wide_longitude_gaps(lon_s)[0].size == 0:
        return None
    gaps = longitude_gaps(lon_s)
    g = int(np.argmax(gaps))
    return float(lon_s[g]), float(gaps[g])


def _crosses_pole(lat_s: np.ndarray, edge: int, near: int, pole: float, periodic: bool) -> bool:
    """Whether interpolation goes on across ``pole`` beyond the outermost row ``edge`` (not
    the pole itself): on a grid periodic in longitude whose row lies within
    :data:`_POLE_GAP_FACTOR` row spacings of the pole."""
    spacing = abs(lat_s[edge] - lat_s[near])
    return periodic and abs(pole - lat_s[edge]) <= _POLE_GAP_FACTOR * spacing * (1 + 1e-9)


def covered_region(latitude: Any, longitude: Any) -> tuple[float, float, float, float]:
    """The region of the sphere that :func:`horizontal_weights` interpolates on a grid:
    ``(south, north, west, width)`` in degrees, the longitudes ``west`` to ``west + width``
    (east, modulo 360).

    A global grid covers the sphere, ``(-90, 90, 0, 360)``; a regional one the box between
    its outermost rows and columns, and a band (periodic in longitude, its outermost rows
    far from the poles) its latitudes all the way round. A pole row, or an outermost row
    whose beyond is crossed over the pole, extends the region to that pole.

    Examples
    --------
    >>> covered_region([-45.0, 0.0, 45.0], [0.0, 90.0, 180.0, 270.0])  # coarse, global
    (-90.0, 90.0, 0.0, 360.0)
    >>> covered_region([30.0, 40.0, 50.0], [340.0, 350.0, 0.0, 10.0])  # a box across 0°
    (30.0, 50.0, 340.0, 30.0)
    """
    lat_s, lon_s, _, _ = _sorted_grid(latitude, longitude)
    h, w = lat_s.size, lon_s.size
    gap = _lon_gap(lon_s)
    if w == 1:
        west, width = float(lon_s[0] % 360.0), 0.0
    elif gap is None:
        west, width = 0.0, 360.0
    else:
        start, gap_width = gap
        west, width = float((start + gap_width) % 360.0), float(360.0 - gap_width)
    bounds = []
    for pole, edge, near in ((-90.0, 0, 1), (90.0, h - 1, h - 2)):
        if np.isclose(lat_s[edge], pole):
            bounds.append(pole)
            continue
        crossed = h > 1 and _crosses_pole(lat_s, edge, near, pole, w > 1 and gap is None)
        bounds.append(pole if crossed else float(lat_s[edge]))
    return float(bounds[0]), float(bounds[1]), west, width


def _lon_stencil(lon_s: np.ndarray, x: np.ndarray) -> tuple[Any, ...]:
    """Periodic linear stencil in longitude: columns i0, i1, weights w0, w1 and ``x`` as used."""
    w = lon_s.size
    if w == 1:
        zeros = np.zeros(x.shape, dtype=np.int64)
        return zeros, zeros, np.ones(x.shape), np.zeros(x.shape), x
    ext = np.append(lon_s, lon_s[0] + 360.0)
    x = np.where(x < ext[0], x + 360.0, x)
    i = np.clip(np.searchsorted(ext, x, side="right") - 1, 0, w - 1)
    t = (x - ext[i]) / (ext[i + 1] - ext[i])
    return i, (i + 1) % w, 1.0 - t, t, x


def horizontal_weights(
    latitude: Any,
    longitude: Any,
    obs_latitude: Any,
    obs_longitude: Any,
    *,
    vector: bool | Any = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal stencil of the observation operator: 4 grid points and weights per point.

    Parameters
    ----------
    latitude, longitude : array-like
        The grid (degrees): latitude strictly monotonic in either order, longitudes distinct
        modulo 360 in any order; the indices returned refer to the order given.
    obs_latitude, obs_longitude : array-like (m,)
        Observation positions (degrees); longitudes in [-180, 360] (:data:`LONGITUDE_RANGE`).
    vector : bool or array-like of bool (m,), default False
        Whether each observation is a wind component: the weights of grid points reached
        across a pole then change sign.

    Returns
    -------
    rows, cols : numpy.ndarray (m, 4) of int
        Latitude and longitude indices of the stencil's grid points.
    weight : numpy.ndarray (m, 4)
        Their weights (zero for padding and for observations outside the grid).
    inside : numpy.ndarray (m,) of bool
        False for an observation that cannot be interpolated: a non-finite position, a
        latitude outside [-90, 90], a longitude outside [-180, 360], a position off a
        one-row or one-column grid, or outside a regional grid (in the longitudes it
        does not cover, or poleward of its outermost row where that is not crossed over the
        pole, see Notes).

    Raises
    ------
    ValueError
        If the grid is not 1-D, finite, within [-90, 90] in latitude, or repeats a
        latitude or (modulo 360) a longitude, or the observation arrays differ in shape.

    Notes
    -----
    Bilinear in latitude and longitude. Longitude is periodic when the grid covers the
    circle: its widest gap between adjacent meridians (across 360° included) is at most
    1.5 times the median of the others. Otherwise the grid is regional and an observation
    in that gap is outside it, never interpolated across it.
    Poleward of the outermost row ``φ_0`` (when it is not the pole itself), on a periodic
    grid whose ``φ_0`` lies within two row spacings of the pole, the value is linear along
    the meridian through the pole between the row at the observation's longitude and the
    same row at longitude + 180°, at fraction ``t = (|φ| − |φ_0|) / (2 (90° − |φ_0|))`` of
    the way; a wind component reached across the pole changes sign. On any other grid (a
    regional box, or one column) an observation poleward of the outermost row is outside
    it. See docs/design.md.

    Examples
    --------
    >>> rows, cols, w, ok = horizontal_weights([-45.0, 45.0], [0, 90, 180, 270.0],
    ...                                        [0.0], [315.0])
    >>> rows.tolist(), cols.tolist(), w.tolist(), ok.tolist()
    ([[0, 0, 1, 1]], [[3, 0, 3, 0]], [[0.25, 0.25, 0.25, 0.25]], [True])
    """
    lat_s, lon_s, lat_order, lon_order = _sorted_grid(latitude, longitude)
    olat = np.atleast_1d(np.asarray(obs_latitude, dtype="float64"))
    olon = np.atleast_1d(np.asarray(obs_longitude, dtype="float64"))
    if olat.ndim != 1 or olat.shape != olon.shape:
        raise ValueError(
            f"obs_latitude {olat.shape} and obs_longitude {olon.shape} must be 1-D, same size"
        )
    m = olat.size
    flip_sign = np.broadcast_to(np.asarray(vector, dtype=bool), (m,))
    lo, hi = LONGITUDE_RANGE
    inside = (
        np.isfinite(olat)
        & np.isfinite(olon)
        & (olat >= -90.0)
        & (olat <= 90.0)
        & (olon >= lo)
        & (olon <= hi)
    )
    lat = np.where(inside, olat, lat_s[0])
    lon = np.where(inside, olon % 360.0, lon_s[0])
    h, w = lat_s.size, lon_s.size
    gap = _lon_gap(lon_s)
    if gap is not None:  # a regional grid: its periodic stencil would bridge the gap
        start, width = gap
        east = (lon - start) % 360.0
        inside &= ~((east > _EDGE_SLACK) & (east < width - _EDGE_SLACK))
    c0, c1, w0, w1, lon_used = _lon_stencil(lon_s, lon)
    if w == 1:
        inside &= np.isclose(lon, lon_s[0] % 360.0)
        a0, a1, aw0, aw1, _ = _lon_stencil(lon_s, lon)
    else:
        a0, a1, aw0, aw1, _ = _lon_stencil(lon_s, (lon_used + 180.0) % 360.0)
    rows = np.zeros((m, 4), dtype=np.int64)
    cols = np.zeros((m, 4), dtype=np.int64)
    weight = np.zeros((m, 4))
    across = np.zeros((m, 4), dtype=bool)

    def put(sel: np.ndarray, r: Any, entries: list[tuple[Any, Any, bool]]) -> None:
        for k, (col, wt, acr) in enumerate(entries):
            rows[sel, k] = r if np.ndim(r) == 0 else r[sel]
            cols[sel, k] = col[sel]
            weight[sel, k] = wt[sel]
            across[sel, k] = acr

    if h == 1:
        inside &= np.isclose(lat, lat_s[0])
        put(inside, 0, [(c0, w0, False), (c1, w1, False)])
    else:
        north = inside & (lat > lat_s[-1])
        south = inside & (lat < lat_s[0])
        middle = inside & ~north & ~south
        for pole, sel, edge, near in ((90.0, north, h - 1, h - 2), (-90.0, south, 0, 1)):
            if not sel.any():
                continue
            if np.isclose(lat_s[edge], pole):
                put(sel, edge, [(c0, w0, False), (c1, w1, False)])
                continue
            if not _crosses_pole(lat_s, edge, near, pole, w > 1 and gap is None):
                # not a global grid: what lies beyond its outermost row is outside it, not
                # across the pole (the row at longitude + 180° is not there, or far away)
                inside &= ~sel
                continue
            t = (lat - lat_s[edge]) / (2.0 * (pole - lat_s[edge]))
            put(
                sel,
                edge,
                [
                    (c0, (1 - t) * w0, False),
                    (c1, (1 - t) * w1, False),
                    (a0, t * aw0, True),
                    (a1, t * aw1, True),
                ],
            )
        j = np.clip(np.searchsorted(lat_s, lat, side="right") - 1, 0, h - 2)
        t = (lat - lat_s[j]) / (lat_s[j + 1] - lat_s[j])
        put(middle, j, [(c0, (1 - t) * w0, False), (c1, (1 - t) * w1, False)])
        rows[middle, 2:] = (j + 1)[middle, None]
        cols[middle, 2], cols[middle, 3] = c0[middle], c1[middle]
        weight[middle, 2], weight[middle, 3] = (t * w0)[middle], (t * w1)[middle]
    weight[across & flip_sign[:, None]] *= -1.0
    weight[~inside] = 0.0
    return lat_order[rows], lon_order[cols], weight, inside


def vertical_weights(
    channels: Sequence[tuple[str, float | None]], var: np.ndarray, olev: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertical stencil per observation: the 2 channels it reads (the levels around it,
    interpolated in ln p), their 2 weights, and why it cannot be used (or "").

    Examples
    --------
    >>> chans = [("temperature", 500.0), ("temperature", 850.0), ("surface_pressure", None)]
    >>> c, w, why = vertical_weights(chans, np.array(["temperature", "surface_pressure", "u"]),
    ...                              np.array([700.0, np.nan, 500.0]))
    >>> c.tolist(), np.round(w, 3).tolist()
    ([[0, 1], [2, 0], [0, 0]], [[0.366, 0.634], [1.0, 0.0], [0.0, 0.0]])
    >>> why.tolist()
    ['', '', 'unknown_variable']
    """
    m = var.size
    chan = np.zeros((m, 2), dtype=np.int64)
    cw = np.zeros((m, 2))
    reason = np.full(m, "", dtype=object)
    levels_of: dict[str, list[tuple[float | None, int]]] = {}
    for c, (v, lv) in enumerate(channels):
        levels_of.setdefault(str(v), []).append((None if lv is None else float(lv), c))
    for name in np.unique(var):
        sel = var == name
        entry = levels_of.get(str(name))
        if entry is None:
            reason[sel] = "unknown_variable"
            continue
        lev = olev[sel]
        ch, wt = np.zeros((lev.size, 2), dtype=np.int64), np.zeros((lev.size, 2))
        bad = np.zeros(lev.size, dtype=bool)
        if entry[0][0] is None:  # a single-level variable: level NaN
            bad = ~np.isnan(lev)
            ch[:, 0], wt[:, 0] = entry[0][1], 1.0
        else:
            levs = sorted(entry)  # ascending pressure
            ps = np.array([lv for lv, _ in levs], dtype="float64")
            chans = np.array([c for _, c in levs])
            with np.errstate(invalid="ignore", divide="ignore"):
                usable = np.isfinite(lev) & (lev > 0)
                close = np.isclose(ps[None, :], lev[:, None], rtol=1e-6, atol=1e-6)
                exact = usable & close.any(axis=1)
                between = usable & ~exact & (ps[0] < lev) & (lev < ps[-1])
                ch[exact, 0], wt[exact, 0] = chans[np.argmax(close[exact], axis=1)], 1.0
                k = np.clip(np.searchsorted(ps, lev) - 1, 0, max(ps.size - 2, 0))[between]
                if k.size:
                    t = (np.log(lev[between]) - np.log(ps[k])) / (np.log(ps[k + 1]) - np.log(ps[k]))
                    ch[between, 0], ch[between, 1] = chans[k], chans[k + 1]
                    wt[between, 0], wt[between, 1] = 1.0 - t, t
            bad = ~(exact | between)
        r = reason[sel]
        r[bad] = "unknown_level"
        reason[sel] = r
        chan[sel], cw[sel] = ch, wt
    return chan, cw, reason


@fill_doc
def observation_weights(
    channels: Sequence[tuple[str, float | None]],
    latitude: Any,
    longitude: Any,
    /,
    *,
    obs_variable: Sequence[str],
    obs_latitude: Any,
    obs_longitude: Any,
    obs_level: Any,
) -> tuple[ObservationWeights, np.ndarray]:
    """The observation operator's weights for observations on a model grid (NumPy).

    Parameters
    ----------
    {{channels}}
    latitude, longitude : array-like
        Model grid (see :func:`horizontal_weights`).
    {{observations}}

    Returns
    -------
    weights : ObservationWeights
    {{operator_outputs}}

    Raises
    ------
    ValueError
        If the grid is malformed or the observation arrays differ in size.

    Examples
    --------
    >>> lat, lon = np.array([-45.0, 45.0]), np.arange(4) * 90.0
    >>> w, why = observation_weights([("temperature", 500.0)], lat, lon,
    ...                              obs_variable=["temperature"], obs_latitude=[0.0],
    ...                              obs_longitude=[315.0], obs_level=[500.0])
    >>> float(w.apply(np.arange(8.0).reshape(1, 2, 4))[0]), why.tolist()   # mean of 3, 0, 7, 4
    (3.5, [''])
    """
    lat_grid = np.asarray(latitude, dtype="float64")
    lon_grid = np.asarray(longitude, dtype="float64")
    var = np.asarray(obs_variable).astype(str)
    olat = np.asarray(obs_latitude, dtype="float64")
    olon = np.asarray(obs_longitude, dtype="float64")
    olev = np.asarray(obs_level, dtype="float64")
    m = var.size
    if not (var.shape == olat.shape == olon.shape == olev.shape == (m,)):
        raise ValueError(
            "obs_variable, obs_latitude, obs_longitude, obs_level must be 1-D, same size"
        )
    stencil, reason = observation_stencils(channels, lat_grid, lon_grid, var, olat, olon, olev)
    keep = np.flatnonzero(reason == "")
    shape = (len(channels), lat_grid.size, lon_grid.size)
    return stencil_weights(*(a[keep] for a in stencil), shape), reason.astype(str)


def observation_stencils(
    channels: Sequence[tuple[str, float | None]],
    lat_grid: np.ndarray,
    lon_grid: np.ndarray,
    var: np.ndarray,
    olat: np.ndarray,
    olon: np.ndarray,
    olev: np.ndarray,
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Each observation's stencil, ``(chan, cw, rows, cols, hw)``: the two channels of its
    levels and their weights (:func:`vertical_weights`), the grid rows and columns of its
    horizontal stencil and their weights (:func:`horizontal_weights`); and why it cannot be
    interpolated (``""`` where it can). :func:`stencil_weights` of the usable ones' is
    :func:`observation_weights`'s result; the screening keeps them to assemble the weights
    of the observations it keeps without making them again."""
    chan, cw, reason = vertical_weights(channels, var, olev)
    rows, cols, hw, inside = horizontal_weights(
        lat_grid, lon_grid, olat, olon, vector=np.isin(var, list(VECTOR_COMPONENTS))
    )
    reason[(reason == "") & ~inside] = "outside_grid"
    return (chan, cw, rows, cols, hw), reason


def stencil_weights(
    chan: np.ndarray,
    cw: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    hw: np.ndarray,
    shape: tuple[int, int, int],
) -> ObservationWeights:
    """The weights of observations from their stencils (:func:`observation_stencils`, of
    usable observations), on states of ``shape`` ``(C, H, W)``: vertical-major, the
    horizontal stencil at the first level then at the second, without the columns that no
    observation uses."""
    _, h, w = shape
    used = np.flatnonzero(np.any(hw != 0, axis=0))  # a one-row grid uses 2 of 4
    rows, cols, hw = (a[:, : int(used.max()) + 1 if used.size else 1] for a in (rows, cols, hw))
    k = 2 * hw.shape[1]
    m = chan.shape[0]
    index = ((chan[:, :, None] * h + rows[:, None, :]) * w + cols[:, None, :]).reshape(m, k)
    weight = (cw[:, :, None] * hw[:, None, :]).reshape(m, k)
    used = np.flatnonzero(np.any(weight != 0, axis=0))  # drop columns unused by all
    width = int(used.max()) + 1 if used.size else 1
    return ObservationWeights(index[:, :width], weight[:, :width], shape)
