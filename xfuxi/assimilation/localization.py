"""Localization of the ensemble covariance, in the control variable (see docs/design.md).

With localization the En4DVar control is one field per member, ``α_i``, and the increment
is ``δx = Σ_i X_b,i ∘ (L α_i)``, so that the implied background covariance is
``(X_b X_bᵀ) ∘ C`` with ``C = L Lᵀ`` a correlation matrix. Here ``C`` is a horizontal
correlation — Gaspari–Cohn (compact support) or Gaussian in distance — on the sphere
(chord distance between grid points, which keeps both functions positive definite) or on a
1-D periodic index grid (Lorenz-96), optionally times a channel correlation: vertical
(Gaspari–Cohn in ln p) and cross-variable (a constant factor between different variables).

``L`` is a truncated eigenbasis: ``C ≈ E_r Λ_r E_rᵀ`` keeping the leading eigenpairs that
explain a fraction ``variance`` of the trace, ``L = E_r Λ_r^{1/2}`` with rows rescaled so
that ``diag(L Lᵀ) = 1`` (a correlation again). The control per member then has ``r``
(times ``r_c`` with channel localization) entries instead of one per grid point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..constants import EARTH_RADIUS

__all__ = [
    "EARTH_RADIUS_KM",
    "MAX_DENSE_POINTS",
    "Localization",
    "PointCorrelation",
    "channel_correlation",
    "correlation_function",
    "index_correlation",
    "localization",
    "sphere_correlation",
    "sphere_sqrt_factor",
    "sqrt_factor",
    "support_radius",
]

#: mean Earth radius (km), :data:`xfuxi.constants.EARTH_RADIUS` in kilometres
EARTH_RADIUS_KM = EARTH_RADIUS / 1000.0

#: the most points of a grid whose localization square root is the eigendecomposition of
#: its dense correlation matrix (:func:`sphere_sqrt_factor` on a regional grid): measured
#: 0.6 GB and 19 s on one core for 4000 points, so about 4 GB and minutes for 10 000
MAX_DENSE_POINTS = 10_000


def correlation_function(distance: Any, *, length_scale: float, kind: str) -> np.ndarray:
    """Correlation as a function of distance.

    ``kind="gaspari_cohn"``: the compactly supported fifth-order piecewise rational
    function of Gaspari & Cohn (1999, eq. 4.10) with half-width ``length_scale`` (zero
    beyond twice it). ``kind="gaussian"``: ``exp(−d² / (2 length_scale²))``.

    Examples
    --------
    >>> correlation_function([0.0, 1.0, 2.0], length_scale=1.0, kind="gaspari_cohn").round(4)
    array([1.    , 0.2083, 0.    ])
    """
    if not length_scale > 0:
        raise ValueError(f"length_scale must be positive, got {length_scale}")
    r = np.abs(np.asarray(distance, dtype="float64")) / float(length_scale)
    if kind == "gaussian":
        return np.exp(-0.5 * r**2)
    if kind != "gaspari_cohn":
        raise ValueError(f"kind must be 'gaspari_cohn' or 'gaussian', got {kind!r}")
    out = np.zeros_like(r)
    a = r <= 1
    b = (r > 1) & (r < 2)
    ra = r[a]
    out[a] = -0.25 * ra**5 + 0.5 * ra**4 + 0.625 * ra**3 - 5.0 / 3.0 * ra**2 + 1.0
    rb = r[b]
    out[b] = (
        rb**5 / 12.0 - 0.5 * rb**4 + 0.625 * rb**3 + 5.0 / 3.0 * rb**2 - 5.0 * rb + 4.0
    ) - 2.0 / (3.0 * rb)
    return out


#: elements of the temporary (rows, columns, 3) coordinate differences per block
_BLOCK_ELEMENTS = 1 << 21


def _unit_xyz(latitude: Any, longitude: Any) -> np.ndarray:
    """Unit vectors ``(H*W, 3)`` of a latitude–longitude grid (degrees), row-major."""
    lat = np.radians(np.asarray(latitude, dtype="float64"))
    lon = np.radians(np.asarray(longitude, dtype="float64"))
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    return np.stack(
        [np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1
    ).reshape(-1, 3)


def _chord_distance_km(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Chord distances (km) ``(len(a), len(b))`` between unit vectors ``a`` and ``b``.

    The one formula of :func:`sphere_correlation` and :class:`PointCorrelation`: each
    entry depends on its two points only, so that blocks of the matrix equal its entries.
    """
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1) * EARTH_RADIUS_KM


def sphere_correlation(
    latitude: Any, longitude: Any, *, length_scale: float, kind: str = "gaspari_cohn"
) -> np.ndarray:
    """Correlation between all points of a latitude–longitude grid (chord distance, km).

    Returns an ``(H*W, H*W)`` matrix, points in row-major (latitude, longitude) order.

    Examples
    --------
    >>> c = sphere_correlation([-30.0, 30.0], [0.0, 120.0, 240.0], length_scale=3000.0)
    >>> c.shape, bool(np.allclose(np.diag(c), 1.0))
    ((6, 6), True)
    """
    xyz = _unit_xyz(latitude, longitude)
    p = xyz.shape[0]
    out = np.empty((p, p))
    # in blocks of rows: the (rows, P, 3) differences stay small (they were (P, P, 3))
    step = max(1, _BLOCK_ELEMENTS // max(1, 3 * p))
    for start in range(0, p, step):
        rows = slice(start, start + step)
        out[rows] = correlation_function(
            _chord_distance_km(xyz[rows], xyz), length_scale=length_scale, kind=kind
        )
    return out


def support_radius(length_scale: float, kind: str) -> float:
    """Distance beyond which :func:`correlation_function` is exactly zero.

    Gaspari–Cohn: ``2 × length_scale``. Gaussian: ``40 × length_scale``, where
    ``exp(−d² / (2 length_scale²)) = exp(−800)`` is below the smallest float64 and rounds
    to 0.

    Examples
    --------
    >>> support_radius(500.0, "gaspari_cohn"), support_radius(500.0, "gaussian")
    (1000.0, 20000.0)
    >>> float(correlation_function(20000.0, length_scale=500.0, kind="gaussian"))
    0.0
    """
    correlation_function(0.0, length_scale=length_scale, kind=kind)  # checks both
    return float(length_scale) * (2.0 if kind == "gaspari_cohn" else 40.0)


class PointCorrelation:
    """Correlations between a few grid points and the whole grid, without the P × P matrix.

    On a latitude–longitude grid (chord distance in km, as :func:`sphere_correlation`) or a
    1-D periodic index grid (as :func:`index_correlation`). :meth:`columns` gives the
    columns of those matrices at a few points, restricted to the rows where they can be
    nonzero (on the sphere: the grid points within :func:`support_radius` of one of them);
    every entry equals the full matrix's, bit for bit. Memory and time per call scale with
    the grid and the support, not the grid squared.

    Parameters
    ----------
    latitude, longitude : array-like, optional
        The grid (degrees); points in row-major (latitude, longitude) order.
    length_scale : float
        Gaspari–Cohn half-width or Gaussian std: km on the sphere, grid points on an index
        grid.
    kind : {"gaspari_cohn", "gaussian"}
    n_points : int, optional
        Instead of a sphere grid: a periodic 1-D grid of this many points.

    Raises
    ------
    ValueError
        Neither ``latitude`` and ``longitude`` nor ``n_points``; a ``length_scale`` that is
        not positive, or an unknown ``kind``.

    Examples
    --------
    >>> lat, lon = np.linspace(-60, 60, 5), np.arange(8) * 45.0
    >>> pc = PointCorrelation(lat, lon, length_scale=1500.0)
    >>> rows, values = pc.columns(np.array([12, 13]))
    >>> full = sphere_correlation(lat, lon, length_scale=1500.0)
    >>> bool(np.array_equal(values, full[rows][:, [12, 13]]))
    True
    >>> bool((np.delete(full[:, [12, 13]], rows, axis=0) == 0).all()), rows.size < 40
    (True, True)
    """

    def __init__(
        self,
        latitude: Any = None,
        longitude: Any = None,
        *,
        length_scale: float,
        kind: str = "gaspari_cohn",
        n_points: int | None = None,
    ) -> None:
        self.length_scale = float(length_scale)
        self.kind = kind
        self.radius = support_radius(self.length_scale, kind)
        if n_points is not None:
            self.n_points = int(n_points)
            self._xyz = None
        else:
            if latitude is None or longitude is None:
                raise ValueError("give latitude and longitude, or n_points for a 1-D grid")
            self._xyz = _unit_xyz(latitude, longitude)
            self._xyz_t = np.ascontiguousarray(self._xyz.T)
            self.n_points = int(self._xyz.shape[0])

    def columns(self, points: Any) -> tuple[np.ndarray, np.ndarray]:
        """The correlations with ``points`` where they may be nonzero.

        Parameters
        ----------
        points : array-like of int (k,)
            Flat grid indices.

        Returns
        -------
        rows : numpy.ndarray of int (n,)
            Ascending grid indices: every point within the support of one of ``points``
            (on an index grid, all points).
        values : numpy.ndarray (n, k)
            The correlation between ``rows`` and ``points``; it is 0 at every other row.
        """
        q = np.asarray(points, dtype=int).reshape(-1)
        if self._xyz is None:  # as index_correlation: periodic index distance
            n = self.n_points
            rows = np.arange(n)
            d = np.abs(rows[:, None] - q[None, :]).astype("float64")
            d = np.minimum(d, n - d)
            return rows, correlation_function(d, length_scale=self.length_scale, kind=self.kind)
        # rows within the support's chord c of a point (|a − b| < c ⇔ a·b > 1 − c²/2), with
        # a margin for rounding: the exact values below decide, the margin only adds rows
        # where they are 0
        chord = self.radius / EARTH_RADIUS_KM * (1.0 + 1e-9)
        if chord >= 2.0 or q.size == 0:
            rows = np.arange(self.n_points)
        else:
            cos = (self._xyz[q] @ self._xyz_t).max(0)  # (P,): the nearest of the points
            rows = np.flatnonzero(cos > 1.0 - 0.5 * chord**2 - 1e-12)
        d = _chord_distance_km(self._xyz[rows], self._xyz[q])
        return rows, correlation_function(d, length_scale=self.length_scale, kind=self.kind)


def index_correlation(
    n: int, *, length_scale: float, kind: str = "gaspari_cohn", periodic: bool = True
) -> np.ndarray:
    """Correlation on a 1-D grid by index distance (periodic by default, as Lorenz-96).

    Examples
    --------
    >>> c = index_correlation(8, length_scale=2.0)
    >>> float(c[0, 7]) == float(c[0, 1])
    True
    """
    i = np.arange(int(n))
    d = np.abs(i[:, None] - i[None, :]).astype("float64")
    if periodic:
        d = np.minimum(d, n - d)
    return correlation_function(d, length_scale=length_scale, kind=kind)


def channel_correlation(
    channels: Sequence[tuple[str, float | None]],
    *,
    vertical_length_scale: float | None = None,
    cross_variable: float = 1.0,
    surface_level: float = 1000.0,
) -> np.ndarray:
    """Correlation between model channels: vertical (ln p) times cross-variable.

    Parameters
    ----------
    channels : sequence of (variable, level)
    vertical_length_scale : float, optional
        Gaspari–Cohn half-width in units of ln p (e.g. 1.0 ≈ a scale height); None: no
        vertical localization.
    cross_variable : float, default 1
        Correlation factor between two different variables (1: none).
    surface_level : float, default 1000
        Pressure (hPa) given to single-level variables.

    Examples
    --------
    >>> c = channel_correlation([("t", 500.0), ("t", 850.0), ("u", 500.0)], cross_variable=0.5)
    >>> c.tolist()
    [[1.0, 1.0, 0.5], [1.0, 1.0, 0.5], [0.5, 0.5, 1.0]]
    """
    if not 0.0 <= cross_variable <= 1.0:
        raise ValueError(f"cross_variable must be in [0, 1], got {cross_variable}")
    names = np.array([str(v) for v, _ in channels])
    p = np.array([surface_level if lv is None else float(lv) for _, lv in channels])
    same = names[:, None] == names[None, :]
    c = np.where(same, 1.0, float(cross_variable))
    if vertical_length_scale is not None:
        lnp = np.log(p)
        c = c * correlation_function(
            lnp[:, None] - lnp[None, :], length_scale=vertical_length_scale, kind="gaspari_cohn"
        )
    return c


def sqrt_factor(correlation: Any, *, variance: float = 0.99, rank: int | None = None) -> np.ndarray:
    """Truncated square root ``L`` (n, r) with ``L Lᵀ ≈ C`` and ``diag(L Lᵀ) = 1``.

    Keeps the leading eigenpairs explaining ``variance`` of the trace (or exactly ``rank``).

    Examples
    --------
    >>> c = index_correlation(40, length_scale=4.0)
    >>> L = sqrt_factor(c, variance=0.999)
    >>> bool(np.allclose(np.diag(L @ L.T), 1.0)), L.shape[1] < 40
    (True, True)
    """
    c = np.asarray(correlation, dtype="float64")
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"correlation must be square, got shape {c.shape}")
    lam, vec = np.linalg.eigh(c)
    order = np.argsort(lam)[::-1]
    lam, vec = np.clip(lam[order], 0.0, None), vec[:, order]
    if rank is None:
        if not 0 < variance <= 1:
            raise ValueError(f"variance must be in (0, 1], got {variance}")
        frac = np.cumsum(lam) / lam.sum()
        rank = int(np.searchsorted(frac, variance - 1e-12) + 1)
    rank = max(1, min(int(rank), lam.size))
    sq = vec[:, :rank] * np.sqrt(lam[:rank])
    norm = np.linalg.norm(sq, axis=1, keepdims=True)
    return sq / np.where(norm > 0, norm, 1.0)


def _chord_km(lat_a: np.ndarray, lat_b: np.ndarray, dlon: np.ndarray) -> np.ndarray:
    """Chord distance (km) between points at latitudes a, b (radians) and longitude gap dlon."""
    c = np.sin(lat_a) * np.sin(lat_b) + np.cos(lat_a) * np.cos(lat_b) * np.cos(dlon)
    return EARTH_RADIUS_KM * np.sqrt(np.clip(2.0 - 2.0 * c, 0.0, None))


def _is_full_circle(longitude: np.ndarray) -> bool:
    lon = np.asarray(longitude, dtype="float64")
    if lon.size < 2:
        return False
    d = np.diff(lon)
    return bool(np.allclose(d, d[0]) and np.isclose(d[0] * lon.size, 360.0))


def sphere_sqrt_factor(
    latitude: Any,
    longitude: Any,
    *,
    length_scale: float,
    kind: str = "gaspari_cohn",
    variance: float = 0.99,
) -> np.ndarray:
    """Truncated square root of :func:`sphere_correlation` by zonal Fourier decomposition.

    On a grid of equally spaced longitudes covering the circle the correlation is
    block-circulant in longitude, so it is diagonalised by zonal Fourier modes times the
    eigenvectors of one ``H × H`` matrix per zonal wavenumber — ``W`` small problems instead
    of one ``(H·W)²`` eigendecomposition. Other grids (regional ones) fall back to
    :func:`sqrt_factor` of the dense :func:`sphere_correlation`, up to
    :data:`MAX_DENSE_POINTS` grid points. Rows are normalised so that ``diag(L Lᵀ) = 1``.

    Raises
    ------
    ValueError
        A grid that is not a full circle of equally spaced longitudes with more than
        :data:`MAX_DENSE_POINTS` points; a ``variance`` outside ``(0, 1]``.

    Examples
    --------
    >>> lat, lon = np.linspace(-60, 60, 5), np.arange(8) * 45.0
    >>> L = sphere_sqrt_factor(lat, lon, length_scale=3000.0, variance=1.0)
    >>> c = sphere_correlation(lat, lon, length_scale=3000.0)
    >>> bool(np.allclose(L @ L.T, c, atol=1e-8))
    True
    """
    lat = np.asarray(latitude, dtype="float64")
    lon = np.asarray(longitude, dtype="float64")
    if not _is_full_circle(lon):
        if lat.size * lon.size > MAX_DENSE_POINTS:
            raise ValueError(
                f"a localization on a grid whose longitudes are not a full circle of equally "
                f"spaced points (a regional grid) takes the dense correlation matrix of its "
                f"{lat.size}x{lon.size} = {lat.size * lon.size} points and its "
                f"eigendecomposition (P x P memory, P³ time): at most {MAX_DENSE_POINTS} "
                "points; use a coarser grid, or build the Localization yourself and pass it"
            )
        return sqrt_factor(
            sphere_correlation(lat, lon, length_scale=length_scale, kind=kind), variance=variance
        )
    h, w = lat.size, lon.size
    phi = np.radians(lat)
    dlon = 2 * np.pi * np.arange(w) / w
    dist = _chord_km(phi[:, None, None], phi[None, :, None], dlon[None, None, :])
    cij = correlation_function(dist, length_scale=length_scale, kind=kind)  # (H, H, W)
    spec = np.fft.rfft(cij, axis=-1).real  # symmetric in d: real spectrum, (H, H, W//2+1)
    l_idx = np.arange(w)
    vals, cols = [], []
    for k in range(spec.shape[-1]):
        lam, vec = np.linalg.eigh(0.5 * (spec[:, :, k] + spec[:, :, k].T))
        lam = np.clip(lam, 0.0, None)
        if k == 0 or (w % 2 == 0 and k == w // 2):
            modes = [np.cos(2 * np.pi * k * l_idx / w) / np.sqrt(w)]
        else:
            modes = [
                np.sqrt(2.0 / w) * np.cos(2 * np.pi * k * l_idx / w),
                np.sqrt(2.0 / w) * np.sin(2 * np.pi * k * l_idx / w),
            ]
        for j in range(h):
            for mode in modes:
                vals.append(lam[j])
                cols.append((vec[:, j], mode))
    vals_arr = np.asarray(vals)
    order = np.argsort(vals_arr)[::-1]
    frac = np.cumsum(vals_arr[order]) / vals_arr.sum()
    if not 0 < variance <= 1:
        raise ValueError(f"variance must be in (0, 1], got {variance}")
    rank = int(min(np.searchsorted(frac, variance - 1e-12) + 1, order.size))
    out = np.empty((h * w, rank))
    for r, i in enumerate(order[:rank]):
        v, mode = cols[i]
        out[:, r] = np.sqrt(vals_arr[i]) * np.outer(v, mode).ravel()
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norm > 0, norm, 1.0)


@dataclass(frozen=True)
class Localization:
    """Square-root factors of a localization correlation ``C = (L_c L_cᵀ) ⊗ (L_h L_hᵀ)``.

    Attributes
    ----------
    spatial : numpy.ndarray (P, r_h)
        Horizontal factor, P = H·W points in row-major (latitude, longitude) order.
    channel : numpy.ndarray (C, r_c) or None
        Channel (vertical / cross-variable) factor; None: the same horizontal localization
        for all channels.
    description : str
        What was built (recorded in the diagnostics).
    """

    spatial: np.ndarray
    channel: np.ndarray | None = None
    description: str = ""

    @property
    def control_shape(self) -> tuple[int, ...]:
        """Shape of one member's control ``α_i``."""
        if self.channel is None:
            return (self.spatial.shape[1],)
        return (self.channel.shape[1], self.spatial.shape[1])

    def correlation(self) -> np.ndarray:
        """The full (C·P or P) correlation matrix (small problems and tests only)."""
        ch = self.spatial @ self.spatial.T
        if self.channel is None:
            return ch
        return np.kron(self.channel @ self.channel.T, ch)


def localization(
    latitude: Any = None,
    longitude: Any = None,
    *,
    length_scale: float,
    kind: str = "gaspari_cohn",
    channels: Sequence[tuple[str, float | None]] | None = None,
    vertical_length_scale: float | None = None,
    cross_variable: float = 1.0,
    variance: float = 0.99,
    n_points: int | None = None,
) -> Localization:
    """Build a :class:`Localization` for a latitude–longitude grid or a 1-D index grid.

    Parameters
    ----------
    latitude, longitude : array-like, optional
        Grid on the sphere; ``length_scale`` is then in km.
    length_scale : float
        Gaspari–Cohn half-width (support ``2 × length_scale``) or Gaussian std; km on the
        sphere, grid points on an index grid.
    kind : {"gaspari_cohn", "gaussian"}
    channels : sequence of (variable, level), optional
        Needed for vertical or cross-variable localization.
    vertical_length_scale : float, optional
        Gaspari–Cohn half-width in ln p.
    cross_variable : float, default 1
        Correlation between different variables.
    variance : float, default 0.99
        Fraction of the correlation's trace kept by the truncated eigenbasis.
    n_points : int, optional
        Instead of a sphere grid: a periodic 1-D grid of this many points (Lorenz-96).

    Returns
    -------
    Localization

    Raises
    ------
    ValueError
        Neither ``latitude`` and ``longitude`` nor ``n_points``; a latitude outside
        [-90, 90] degrees or not finite (longitudes given first, say); vertical or cross-variable
        localization without ``channels``; a ``length_scale`` that is not positive, an
        unknown ``kind``, or ``variance`` outside ``(0, 1]`` or ``cross_variable`` outside
        ``[0, 1]``; a grid that is not a whole circle of equally spaced longitudes (a
        regional grid: its square root is an eigendecomposition of the grid-by-grid
        correlation) of more than :data:`MAX_DENSE_POINTS` points.

    Examples
    --------
    >>> loc = localization(n_points=40, length_scale=4.0)
    >>> loc.spatial.shape[0], loc.channel is None
    (40, True)
    >>> loc2 = localization([-30.0, 30.0], [0.0, 90.0, 180.0, 270.0], length_scale=2000.0)
    >>> loc2.spatial.shape[0]
    8
    """
    if n_points is not None:
        corr = index_correlation(int(n_points), length_scale=length_scale, kind=kind)
        spatial = sqrt_factor(corr, variance=variance)
        what = f"{kind} on index distance, length scale {length_scale:g} points"
    else:
        if latitude is None or longitude is None:
            raise ValueError("give latitude and longitude, or n_points for a 1-D grid")
        lat = np.asarray(latitude, dtype="float64")
        if lat.size and not (np.all(np.isfinite(lat)) and np.abs(lat).max() <= 90.0):
            raise ValueError(
                f"latitude must be finite degrees in [-90, 90]; got values from {np.nanmin(lat):g} "
                f"to {np.nanmax(lat):g} (are latitude and longitude swapped?)"
            )
        spatial = sphere_sqrt_factor(
            latitude, longitude, length_scale=length_scale, kind=kind, variance=variance
        )
        what = f"{kind} on the sphere, length scale {length_scale:g} km"
    channel = None
    if vertical_length_scale is not None or cross_variable != 1.0:
        if channels is None:
            raise ValueError("vertical or cross-variable localization needs channels")
        cc = channel_correlation(
            channels, vertical_length_scale=vertical_length_scale, cross_variable=cross_variable
        )
        channel = sqrt_factor(cc, variance=variance)
        what += f"; vertical {vertical_length_scale}, cross-variable {cross_variable:g}"
    what += f"; rank {spatial.shape[1]}" + ("" if channel is None else f"x{channel.shape[1]}")
    return Localization(spatial=spatial, channel=channel, description=what)
