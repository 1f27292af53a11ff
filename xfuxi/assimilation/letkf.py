"""LETKF: the local ensemble transform Kalman filter (Hunt, Kostelich & Szunyogh 2007).

Each *local unit* (a grid column, or one channel of a column with vertical or
cross-variable localization) is analysed on its own, with the observations near it weighted
by the localization (R-localization: ``R⁻¹`` times the Gaspari–Cohn correlation between the
unit and each observation). With ``N`` members, ``X_b`` their anomalies, ``Y_b = H X_b``
their anomalies in observation space and ``d = y − H x̄_b``::

    P̃_a = [(N − 1) I / ρ + Y_bᵀ R_loc⁻¹ Y_b]⁻¹
    w̄   = P̃_a Y_bᵀ R_loc⁻¹ d
    W_a = [(N − 1) P̃_a]^{1/2}                      (symmetric square root)
    x_a^(i) = x̄_b + X_b (w̄ + W_a^(i))

``ρ`` is the multiplicative inflation of the prior covariance (fixed, or estimated from the
innovations each cycle: :func:`innovation_inflation`); relaxation to prior spread (RTPS,
Whitaker & Hamill 2012) then scales the analysis anomalies by
``α (σ_b − σ_a) / σ_a + 1``.

The members are carried as the model's input pairs ``(x(t − Δ), x(t))`` (the
:class:`~xfuxi.models.base.ForecastModel` contract): the weights of each unit are applied
to both times of each member, so that every analysed pair stays a consistent pair; RTPS
uses one factor for both times. The observation operators are those of En4DVar
(:mod:`xfuxi.observations.operator`), and the localization uses the same
:class:`~xfuxi.assimilation.config.LocalizationOptions` and Gaspari–Cohn function
(:mod:`.localization`). Observations of later slots (``step > 0``) are compared with the
members run forward (4D-LETKF). See the definitions in the documentation
(docs/cycling.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy import sparse

from ..config import Config, field
from ..models.rollout import advance_pair, model_device, model_dtype
from .config import LocalizationOptions
from .cost import ObsSlot
from .localization import PointCorrelation, channel_correlation
from .quality import check_not_all_rejected, check_operators, operator_values

__all__ = [
    "LETKFAnalysis",
    "LETKFOptions",
    "ObservationLocalization",
    "forecast_members",
    "innovation_inflation",
    "letkf_analysis",
    "observation_localization",
]


@dataclass(frozen=True)
class LETKFOptions(Config):
    """Options of the LETKF (:func:`letkf_analysis`).

    The defaults are the plain filter: no RTPS and no inflation; ``LETKFMethod``'s
    localization has no vertical part unless given. The command line's ``xfuxi cycle
    --method letkf`` starts from ``rtps=0.5`` and, with radiosondes, a vertical localization
    of 1.0 in ln p, the settings the world's cycling runs used (docs/cycling.md): give them
    here to get the same analyses from Python.

    Examples
    --------
    >>> LETKFOptions(rtps=0.5).inflation
    1.0
    >>> LETKFOptions(rtps=1.5)
    Traceback (most recent call last):
    ...
    ValueError: rtps must be in [0, 1]; got 1.5
    """

    n_members: int = field(40, help="ensemble members")
    inflation: float = field(
        1.0,
        help="multiplicative prior inflation rho of the covariance (> 0, usually >= 1; "
        "adaptive: start)",
    )
    rtps: float = field(0.0, help="relaxation to prior spread alpha in [0, 1] (0: none)")
    adaptive_inflation: bool = field(
        False, help="estimate the inflation from the innovations each cycle"
    )
    adaptive_gain: float = field(
        0.05, help="weight of each cycle's innovation estimate in the running inflation"
    )
    inflation_max: float = field(3.0, help="upper bound of the adaptive inflation")
    qc_threshold: float | None = field(
        5.0,
        help="background check |y - Hx| > k sqrt(so^2 + rho sb^2) rejects, rho the running "
        "inflation (None: off)",
    )
    point_chunk: int = field(
        256,
        help="local analyses per batch (columns; with channel localization, channels); "
        "another value can change the analysis members by rounding (an ulp: 1.8e-15 on "
        "values near 8 in float64), so bit-identical analyses need the same point_chunk",
    )
    member_chunk: int = field(50, help="members per model call")

    def __post_init__(self) -> None:
        if not isinstance(self.n_members, int) or self.n_members < 2:
            raise ValueError(f"n_members must be an integer >= 2; got {self.n_members!r}")
        if not (math.isfinite(self.inflation) and self.inflation > 0):
            raise ValueError(f"inflation must be a positive number; got {self.inflation!r}")
        if not 0.0 <= self.rtps <= 1.0:
            raise ValueError(f"rtps must be in [0, 1]; got {self.rtps!r}")
        if not 0.0 < self.adaptive_gain <= 1.0:
            raise ValueError(f"adaptive_gain must be in (0, 1]; got {self.adaptive_gain!r}")
        if not self.inflation_max >= 1.0:
            raise ValueError(f"inflation_max must be >= 1; got {self.inflation_max!r}")
        if self.qc_threshold is not None and not self.qc_threshold > 0:
            raise ValueError(f"qc_threshold must be positive or None; got {self.qc_threshold!r}")
        for name in ("point_chunk", "member_chunk"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {getattr(self, name)!r}")


@dataclass(frozen=True)
class ObservationLocalization:
    """Localization weights between the analysed units and a set of observations.

    Attributes
    ----------
    footprint : scipy.sparse.csr_array or numpy.ndarray (P, F)
        Horizontal correlation between each grid point and each distinct observation
        footprint (the grid points an observation interpolates from, weighted).
        :func:`observation_localization` gives a sparse array holding the nonzero entries
        only (a footprint's Gaspari–Cohn support is usually a small part of the grid); a
        dense array is accepted as well.
    footprint_of : numpy.ndarray (m,)
        The footprint of each observation.
    channel : numpy.ndarray (C, m) or None
        Vertical / cross-variable correlation between each channel and each observation;
        None: one unit per column (all channels share the weights).
    """

    footprint: sparse.csr_array | np.ndarray
    footprint_of: np.ndarray
    channel: np.ndarray | None = None

    def horizontal(self, points: np.ndarray) -> np.ndarray:
        """Horizontal weights ``(P_c, m)`` of the observations at the columns ``points``."""
        rows = self.footprint[np.asarray(points)]
        if sparse.issparse(rows):
            rows = rows.toarray()
        return rows[:, self.footprint_of]

    def channel_groups(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The distinct rows of :attr:`channel` ``(G, m)`` and each channel's row ``(C,)``
        (None without channel localization).

        Channels whose weights to every observation are equal (without a cross-variable
        factor: every variable at one level) have the same local analysis; it is computed
        once for them.
        """
        if self.channel is None:
            return None
        rows, of = np.unique(self.channel, axis=0, return_inverse=True)
        return rows, of.reshape(-1)

    def weights(self, points: np.ndarray) -> np.ndarray:
        """Weights ``(P_c, m)``, or ``(C, P_c, m)`` with channel localization, for ``points``."""
        h = self.horizontal(points)
        if self.channel is None:
            return h
        return self.channel[:, None, :] * h[None]


def _point_correlation(
    options: LocalizationOptions, latitude: Any, longitude: Any
) -> PointCorrelation | None:
    if not options.enabled:
        return None
    ls, kind = float(options.length_scale), options.kind  # type: ignore[arg-type]
    if options.n_points is not None:
        return PointCorrelation(length_scale=ls, kind=kind, n_points=int(options.n_points))
    if latitude is None or longitude is None:  # an IndexError from the distances before
        raise ValueError(
            f"a localization of {ls:g} km needs the grid: pass latitude= and longitude= (or "
            "n_points= in the LocalizationOptions for a 1-D grid in grid points)"
        )
    return PointCorrelation(latitude, longitude, length_scale=ls, kind=kind)


def _footprints(
    corr: PointCorrelation, rows: Sequence[tuple[np.ndarray, np.ndarray]], p: int
) -> sparse.csr_array:
    """The sparse ``(P, F)`` correlations of the footprints ``rows`` (points, weights).

    Column ``f`` is ``C[:, q] @ w`` with ``C`` the grid's correlation matrix, which is never
    built: only the correlations of the footprint's points with the grid points in their
    support, put into a ``(P, k)`` buffer that is zero elsewhere, so that the product is
    the same (same shape, same layout, same values) as with the full matrix's columns.
    """
    buffers: dict[int, np.ndarray] = {}
    itype = np.int32 if p < 2**31 else np.int64
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    # the columns' nonzeros, joined every 256 footprints (many small pieces would stay in
    # the heap after they are joined)
    pieces: list[tuple[np.ndarray, np.ndarray]] = []
    blocks: list[tuple[np.ndarray, np.ndarray]] = []
    for f, (q, ww) in enumerate(rows):
        near, values = corr.columns(q)
        buf = buffers.get(q.size)
        if buf is None:  # column-major, as the full matrix's columns C[:, q] were
            buf = buffers[q.size] = np.zeros((p, q.size), order="F")
        buf[near] = values
        col = buf @ ww
        buf[near] = 0.0
        nz = np.flatnonzero(col)
        pieces.append((nz.astype(itype), col[nz]))
        indptr[f + 1] = indptr[f] + nz.size
        if len(pieces) == 256 or f == len(rows) - 1:
            blocks.append(tuple(np.concatenate(a) for a in zip(*pieces, strict=True)))
            pieces.clear()
    index = np.concatenate([b[0] for b in blocks] or [np.zeros(0, dtype=itype)])
    value = np.concatenate([b[1] for b in blocks] or [np.zeros(0)])
    blocks.clear()
    out = sparse.csc_array((value, index, indptr), shape=(p, len(rows))).tocsr()
    out.sum_duplicates()  # canonical now (a no-op): the analysis' threads only read it
    return out


def observation_localization(
    index: np.ndarray,
    weight: np.ndarray,
    *,
    state_shape: Sequence[int],
    localization: LocalizationOptions,
    latitude: Any = None,
    longitude: Any = None,
    channels: Sequence[tuple[str, float | None]] | None = None,
) -> ObservationLocalization:
    """The localization weights of observations given by their operator's gather.

    Parameters
    ----------
    index, weight : numpy.ndarray (m, k)
        The observation operator's flat indices into ``C·H·W`` and its weights
        (:meth:`~xfuxi.observations.operator.ObservationOperator.weights`).
    state_shape : (C, H, W)
    localization : LocalizationOptions
        Horizontal half-width (km on the sphere; grid points with ``n_points``),
        ``vertical_length_scale`` (ln p), ``cross_variable``; ``length_scale`` None: every
        observation has weight 1 everywhere.
    latitude, longitude : array-like
        The grid (unused with ``n_points``).
    channels : sequence of (variable, level)
        Needed for vertical or cross-variable localization.

    Returns
    -------
    ObservationLocalization
        The weight of observation ``j`` at point ``p`` is the correlation between ``p`` and
        the grid points ``j`` interpolates from, averaged with the interpolation weights
        (for an observation at a grid point: the correlation with that point). The
        footprints are a sparse ``(P, F)`` array of their nonzero weights, computed from
        the distances of each footprint's points to the grid points within the
        correlation's support (:class:`~.localization.PointCorrelation`): memory grows
        with the footprints times their support, not with the grid squared; time with the
        grid times the number of distinct footprints (each compares its points with every
        grid point: about 0.4 ms a footprint on the 1.5° grid, 20 ms on the 0.25° grid).

    Examples
    --------
    >>> lo = LocalizationOptions(length_scale=2.0, n_points=8)
    >>> idx = np.array([[3, 0], [5, 0]]); w = np.array([[1.0, 0.0], [1.0, 0.0]])
    >>> loc = observation_localization(idx, w, state_shape=(1, 1, 8), localization=lo)
    >>> loc.weights(np.arange(8)).round(3)[:, 0].tolist()
    [0.016, 0.208, 0.685, 1.0, 0.685, 0.208, 0.016, 0.0]
    """
    c, h, w = (int(s) for s in state_shape)
    p = h * w
    index = np.asarray(index)
    wabs = np.abs(np.asarray(weight, dtype="float64"))
    m = index.shape[0]
    total = wabs.sum(1, keepdims=True)
    if m and not bool((total > 0).all()):
        raise ValueError("an observation has all-zero interpolation weights")
    wn = wabs / np.where(total > 0, total, 1.0)
    if localization.n_points is not None and localization.n_points != p:
        raise ValueError(
            f"localization n_points ({localization.n_points}) differs from the grid's {p} points"
        )
    corr = _point_correlation(localization, latitude, longitude)
    point = index % p
    chan = index // p
    if corr is None:
        footprint = sparse.csr_array(np.ones((p, 1)))
        footprint_of = np.zeros(m, dtype=int)
    else:
        # distinct horizontal footprints: a radiosonde's observations share one
        keys: dict[bytes, int] = {}
        footprint_of = np.empty(m, dtype=int)
        rows: list[tuple[np.ndarray, np.ndarray]] = []
        for j in range(m):
            q, inv = np.unique(point[j], return_inverse=True)
            ww = np.bincount(inv, weights=wn[j], minlength=q.size)
            keep = ww > 0
            q, ww = q[keep], np.round(ww[keep], 12)
            key = q.tobytes() + ww.tobytes()
            f = keys.setdefault(key, len(rows))
            if f == len(rows):
                rows.append((q, ww))
            footprint_of[j] = f
        footprint = _footprints(corr, rows, p)
    channel = None
    options = localization
    if options.enabled and (options.vertical_scale is not None or options.cross_variable != 1.0):
        if channels is None or len(channels) != c:
            raise ValueError(f"vertical or cross-variable localization needs the {c} channels")
        cc = channel_correlation(
            channels,
            vertical_length_scale=options.vertical_scale,
            cross_variable=options.cross_variable,
        )
        channel = np.einsum("cjk,jk->cj", cc[:, chan], wn) if m else np.zeros((c, 0))
    return ObservationLocalization(footprint=footprint, footprint_of=footprint_of, channel=channel)


def forecast_members(
    model: torch.nn.Module,
    pairs: torch.Tensor,
    *,
    steps: int = 1,
    chunk: int = 50,
    dtype: torch.dtype | None = None,
) -> list[torch.Tensor]:
    """Run member pairs ``(N, 2, C, H, W)`` forward ``steps`` steps, batched in chunks.

    Returns the pairs after each step (``steps`` tensors, float64): element ``k`` holds
    ``(x(t + kΔ), x(t + (k + 1)Δ))``.

    Examples
    --------
    >>> from xfuxi.models.lorenz96 import lorenz96_model
    >>> pairs = torch.full((3, 2, 1, 1, 40), 8.0, dtype=torch.float64)
    >>> out = forecast_members(lorenz96_model(), pairs, steps=2)
    >>> len(out), tuple(out[-1].shape)
    (2, (3, 2, 1, 1, 40))
    """
    if pairs.ndim != 5 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must be (N, 2, C, H, W); got {tuple(pairs.shape)}")
    mdtype = model_dtype(model, dtype)
    device = model_device(model)
    out = []
    cur = pairs.double()
    with torch.no_grad():
        for _ in range(int(steps)):
            new = torch.empty_like(cur[:, 1])
            for i in range(0, cur.shape[0], int(chunk)):
                x = cur[i : i + chunk].to(device=device, dtype=mdtype)
                new[i : i + chunk] = model(x).double().cpu()
            cur = advance_pair(cur, new)
            out.append(cur)
    return out


def innovation_inflation(
    innovation: torch.Tensor,
    hx_anomalies: torch.Tensor,
    error: torch.Tensor,
    *,
    ensemble_mean: bool = True,
) -> float:
    """Inflation of the prior covariance implied by the innovations (Li et al. 2009).

    ``E[dᵀR⁻¹d] = m + ρ c tr(R^{-1/2} H P_b Hᵀ R^{-1/2})`` gives
    ``ρ = (dᵀR⁻¹d − m) / (c Σ_j σ_b,j² / σ_o,j²)`` with ``σ_b,j²`` the ensemble variance at
    observation ``j``. With ``ensemble_mean`` (the LETKF's case) the innovation is that of
    the mean of the N members, whose error variance is ``c = 1 + 1/N`` times the members'
    spread when the truth is drawn like a member: a well-calibrated ensemble then reads
    ``ρ ≈ 1`` (without the factor it read ``(N + 1)/N``, 1.2 for 5 members). Without it
    (``c = 1``) the innovation is that of a background the samples' spread describes (a
    static B's samples, for instance).

    Examples
    --------
    >>> y = torch.zeros(4, 3); y[0] = 1; y[1] = -1  # variance 2/3 at each observation
    >>> round(innovation_inflation(torch.full((3,), 2.0), y, torch.ones(3),
    ...                            ensemble_mean=False), 3)
    4.5
    >>> round(innovation_inflation(torch.full((3,), 2.0), y, torch.ones(3)), 3)  # / 1.25
    3.6
    """
    n = hx_anomalies.shape[0]
    r = 1.0 / error.double() ** 2
    sb2 = (hx_anomalies.double() ** 2).sum(0) / (n - 1)
    num = float((innovation.double() ** 2 * r).sum()) - innovation.numel()
    den = float((sb2 * r).sum()) * ((1.0 + 1.0 / n) if ensemble_mean else 1.0)
    # a collapsed ensemble's rounding noise is no estimate (it gave ±1e29): none below a
    # spread of 1e-6 observation errors on average
    return num / den if den > 1e-12 * innovation.numel() else float("nan")


class LETKFAnalysis(NamedTuple):
    """Result of :func:`letkf_analysis` (tensors, float64)."""

    members: torch.Tensor  # (N, 2, C, H, W): analysed pairs (t0 - Δ, t0)
    mean: torch.Tensor  # (C, H, W) at t0
    background_mean: torch.Tensor  # (C, H, W) at t0
    omb: list[torch.Tensor]  # per slot, the used observations
    oma: list[torch.Tensor]
    qc_rejected: list[np.ndarray]  # per slot, bool over the slot's observations
    inflation: float  # the ρ used (adaptive: this cycle's updated value)
    inflation_estimate: float  # this cycle's innovation estimate (NaN: not estimated)
    background_spread: torch.Tensor  # (C, H, W) at t0
    analysis_spread: torch.Tensor  # (C, H, W) at t0


def _slot_members(
    model: Any, members: torch.Tensor, slots: Sequence[ObsSlot], options: LETKFOptions
) -> dict[int, torch.Tensor]:
    steps = sorted({int(s.step) for s in slots})
    if steps and steps[0] < 0:
        raise ValueError(f"slot steps must be >= 0; got {steps[0]}")
    states = {0: members[:, 1].double()}
    if steps and steps[-1] > 0:
        if model is None:
            raise ValueError("observations after t0 (slot step > 0) need the model")
        pairs = forecast_members(model, members, steps=steps[-1], chunk=options.member_chunk)
        for k in steps:
            if k > 0:
                states[k] = pairs[k - 1][:, 1]
    return states


def _local_update(
    loc: ObservationLocalization,
    pts: np.ndarray,
    xp: torch.Tensor,
    ybt: torch.Tensor,
    d: torch.Tensor,
    rinv: torch.Tensor,
    rho: float,
    groups: tuple[np.ndarray, np.ndarray] | None = None,
) -> torch.Tensor:
    """The analysis anomalies ``(N, 2, C, Pc)`` of the columns ``pts`` (see docs/cycling.md).

    The observations a column sees are those within its horizontal localization: they are
    selected once per column (all its channel units share them; an observation a channel's
    vertical weight removes enters with weight 0), and each unit's ensemble-space matrix is
    one batched product, its square root one batched eigendecomposition. With channel
    localization, ``groups`` (:meth:`ObservationLocalization.channel_groups`) makes the
    units the distinct channel weights of a column rather than its channels: channels with
    the same weights share one transform.
    """
    n = xp.shape[0]
    hor = torch.as_tensor(loc.horizontal(pts))  # (Pc, m)
    count = int((hor > 0).sum(1).max())
    if count == 0:  # no observation near these columns: the inflated background
        return math.sqrt(rho) * xp
    hsel, sel = torch.topk(hor, count, dim=1)  # (Pc, M)
    r = hsel * rinv[sel]  # (Pc, M)
    if loc.channel is not None:
        rows = loc.channel if groups is None else groups[0]
        r = torch.as_tensor(rows)[:, sel] * r[None]  # (C or G, Pc, M)
    else:
        r = r[None]  # (1, Pc, M): one unit per column
    ysel = ybt[sel]  # (Pc, M, N)
    yrt = (ysel[None] * r[..., None]).transpose(-1, -2)  # (C or 1, Pc, N, M)
    a = (yrt @ ysel).flatten(0, 1)  # (U, N, N), U units
    a.diagonal(dim1=1, dim2=2).add_((n - 1) / rho)
    lam, q = torch.linalg.eigh(a)
    qt = q.transpose(1, 2)
    b = (yrt @ d[sel][..., None]).flatten(0, 1)  # Yᵀ R⁻¹ d, (U, N, 1)
    wbar = q @ ((qt @ b) / lam[..., None])  # P̃a Yᵀ R⁻¹ d
    tr = (q * (math.sqrt(n - 1) / lam.sqrt())[:, None, :]) @ qt + wbar  # column j: member j
    if loc.channel is None:
        return torch.einsum("itcp,pij->jtcp", xp, tr)
    tr = tr.reshape(-1, len(pts), n, n)  # (C or G, Pc, N, N)
    if groups is not None:
        tr = tr[torch.as_tensor(groups[1])]  # each channel its group's transform
    return torch.einsum("itcp,cpij->jtcp", xp, tr)


def _operator_weights(slot: ObsSlot) -> Any:
    """``slot.operator.weights()``, checked: ``index`` and ``weight`` of one row per
    observation of the slot (where each observation is, for the localization)."""
    wts = slot.operator.weights()
    m = int(slot.value.shape[0])
    index, weight = getattr(wts, "index", None), getattr(wts, "weight", None)
    if index is None or weight is None:
        raise TypeError(
            f"letkf_analysis: the weights() of the observation operator of the slot at step "
            f"{slot.step} ({type(slot.operator).__name__}) must return an ObservationWeights "
            f"(index and weight (m, k)); got {type(wts).__name__}"
        )
    shapes = (np.shape(index), np.shape(weight))
    if len(shapes[0]) != 2 or shapes[0] != shapes[1] or shapes[0][0] != m:
        raise ValueError(
            f"letkf_analysis: the weights() of the observation operator of the slot at step "
            f"{slot.step} ({type(slot.operator).__name__}) must give index and weight of "
            f"shape (m, k) with one row per observation (m = {m}); got {shapes[0]} and "
            f"{shapes[1]}"
        )
    return wts


def letkf_analysis(
    members: torch.Tensor,
    slots: Sequence[ObsSlot],
    *,
    localization: LocalizationOptions,
    latitude: Any = None,
    longitude: Any = None,
    channels: Sequence[tuple[str, float | None]] | None = None,
    options: LETKFOptions | None = None,
    inflation: float | None = None,
    model: Any = None,
) -> LETKFAnalysis:
    """One LETKF analysis of member pairs.

    Parameters
    ----------
    members : Tensor (N, 2, C, H, W)
        Background members as the model's input pairs (t0 − Δ, t0).
    slots : sequence of ObsSlot
        Observations per slot (step ``k``: ``k`` model steps after t0).
    localization : LocalizationOptions
        As for En4DVar (Gaspari–Cohn half-width in km, or grid points with ``n_points``).
    latitude, longitude, channels
        The model's grid and channels (for the distances and vertical localization).
    options : LETKFOptions, optional
    inflation : float, optional
        The running inflation (adaptive: last cycle's value); default ``options.inflation``.
    model : ForecastModel, optional
        Needed for slots after t0 (the members are run forward).

    Returns
    -------
    LETKFAnalysis

    Raises
    ------
    xfuxi.observations.sets.ObservationsRejectedError
        Every observation failed the background check (nothing would be assimilated).
    TypeError
        An observation operator that is not callable, or without the ``weights`` and
        ``subset`` methods the LETKF uses (the contract:
        :class:`~xfuxi.assimilation.cost.ObsSlot`).
    ValueError
        Members not ``(N, 2, C, H, W)`` with N ≥ 2 or not finite, a slot with a bias model,
        an inflation not > 0, slots after t0 without a model; an operator whose output for
        the members is not ``(N, m)`` (e.g. one that drops the members' dim) or not finite
        (naming the observations), or whose ``weights()`` has not one row per observation.

    Examples
    --------
    >>> from xfuxi.observations.operator import build_operator
    >>> g = torch.Generator().manual_seed(0)
    >>> x = 8.0 + torch.randn(20, 1, 1, 1, 8, generator=g, dtype=torch.float64)
    >>> pairs = torch.cat([x, x], dim=1)
    >>> op, _ = build_operator([("x", None)], [0.0], np.arange(8) * 45.0,
    ...     obs_variable=["x"] * 8, obs_latitude=np.zeros(8),
    ...     obs_longitude=np.arange(8) * 45.0, obs_level=np.full(8, np.nan))
    >>> y = torch.full((8,), 8.0, dtype=torch.float64)
    >>> res = letkf_analysis(pairs, [ObsSlot(0, op, y, 0.1 * torch.ones(8))],
    ...     localization=LocalizationOptions(length_scale=2.0, n_points=8))
    >>> bool((res.mean - 8.0).abs().max() < (res.background_mean - 8.0).abs().max())
    True
    """
    opts = options if options is not None else LETKFOptions()
    if members.ndim != 5 or members.shape[1] != 2:
        raise ValueError(f"members must be (N, 2, C, H, W); got {tuple(members.shape)}")
    n, _, c, h, w = members.shape
    if n < 2:
        raise ValueError(f"the LETKF needs at least 2 members; got {n}")
    members = members.double()
    if not bool(torch.isfinite(members).all()):
        raise ValueError("members contain NaN or infinite values")
    if any(getattr(s, "bias", None) is not None for s in slots):
        raise ValueError(
            "the LETKF does not estimate bias coefficients: slots with a bias model "
            "(ObsSlot.bias, VarBC) are for En4DVar; correct the values before the LETKF"
        )
    rho = float(opts.inflation if inflation is None else inflation)
    if not (math.isfinite(rho) and rho > 0):  # as LETKFOptions.inflation (NaN members or a
        # raw linear-algebra error otherwise)
        raise ValueError(f"inflation must be a finite number > 0; got {inflation!r}")
    check_operators(
        slots,
        {
            "weights": "placing each observation for the localization",
            "subset": "O-A of the observations used",
        },
        "letkf_analysis",
    )
    states = _slot_members(model, members, slots, opts)
    # observation space: members, innovations, background check
    hx_list, y_list, e_list, idx_list, wt_list, rejected, kept_slots = [], [], [], [], [], [], []
    for s in slots:
        # (N, m_s), finite: NaN passed the background check and broke the eigensolver
        hx = operator_values(s, states[int(s.step)], "the members")
        hmean = hx.mean(0)
        ya = hx - hmean
        d = s.value.double() - hmean
        err = s.error.double()
        if opts.qc_threshold is None:
            bad = np.zeros(d.shape[0], dtype=bool)
        else:
            # against the prior the analysis uses: the members' variance times the running
            # inflation (the uninflated spread rejected what the inflated prior expects)
            sb2 = rho * (ya**2).sum(0) / (n - 1)
            bad = (d.abs() > opts.qc_threshold * torch.sqrt(err**2 + sb2)).numpy()
        rejected.append(bad)
        keep = torch.as_tensor(np.nonzero(~bad)[0])
        hx_list.append(hx[:, keep])
        y_list.append(s.value.double()[keep])
        e_list.append(err[keep])
        wts = _operator_weights(s)
        idx_list.append(wts.index[keep.numpy()])
        wt_list.append(wts.weight[keep.numpy()])
        kept_slots.append((s, keep))
    check_not_all_rejected(rejected, opts.qc_threshold or 0.0, "LETKFOptions")
    k_max = max([a.shape[1] for a in idx_list] + [1])
    index = np.concatenate(
        [np.pad(a, ((0, 0), (0, k_max - a.shape[1]))) for a in idx_list] or [np.zeros((0, 1))]
    ).astype(int)
    weight = np.concatenate(
        [np.pad(a, ((0, 0), (0, k_max - a.shape[1]))) for a in wt_list] or [np.zeros((0, 1))]
    )
    hx_all = torch.cat(hx_list, 1) if hx_list else torch.zeros(n, 0, dtype=torch.float64)
    y = torch.cat(y_list) if y_list else torch.zeros(0, dtype=torch.float64)
    err = torch.cat(e_list) if e_list else torch.zeros(0, dtype=torch.float64)
    hmean = hx_all.mean(0)
    yb = hx_all - hmean  # (N, m)
    d = y - hmean
    m = int(y.numel())
    estimate = float("nan")
    if opts.adaptive_inflation and m > 0:
        estimate = innovation_inflation(d, yb, err)
        if math.isfinite(estimate):
            rho = rho + opts.adaptive_gain * (estimate - rho)
        rho = min(max(rho, 1.0), opts.inflation_max)
    xb = members.reshape(n, 2, c, h * w)
    mean_b = xb.mean(0)
    xanom = xb - mean_b
    out = xb.clone()
    if m > 0:
        loc = observation_localization(
            index,
            weight,
            state_shape=(c, h, w),
            localization=localization,
            latitude=latitude,
            longitude=longitude,
            channels=channels,
        )
        rinv = 1.0 / err**2
        ybt = yb.T.contiguous()  # (m, N)
        groups = loc.channel_groups()
        # thousands of N × N eigendecompositions: threads only wait on each other there
        # (on a busy machine the thread barriers made a T21 analysis take many minutes)
        n_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            # units per batch: point_chunk (a column each, or one per channel of a column)
            chunk = opts.point_chunk if loc.channel is None else max(1, opts.point_chunk // c)

            def batch(start: int) -> None:
                torch.set_num_threads(1)  # OpenMP's thread count is per calling thread
                pts = np.arange(start, min(start + chunk, h * w))
                out[..., pts] = mean_b[..., pts] + _local_update(
                    loc, pts, xanom[..., pts], ybt, d, rinv, rho, groups
                )

            # independent batches on the torch thread budget, each single-threaded: the
            # columns written are disjoint, and the result does not depend on the order
            starts = range(0, h * w, chunk)
            if n_threads > 1 and len(starts) > 1:
                with ThreadPoolExecutor(max_workers=n_threads) as pool:
                    list(pool.map(batch, starts))
            else:
                for start in starts:
                    batch(start)
        finally:
            torch.set_num_threads(n_threads)
    else:
        # no observation: the analysis is the (inflated) background
        out = mean_b + math.sqrt(rho) * xanom
    mean_a = out.mean(0)
    sb = xanom[:, 1].pow(2).sum(0).div(n - 1).sqrt()  # (C, P)
    anom_a = out - mean_a
    sa = anom_a[:, 1].pow(2).sum(0).div(n - 1).sqrt()
    if opts.rtps > 0:
        factor = opts.rtps * (sb - sa) / torch.where(sa > 0, sa, 1.0) + 1.0
        factor = torch.where(sa > 0, factor, 1.0)
        anom_a = anom_a * factor
        out = mean_a + anom_a
        sa = anom_a[:, 1].pow(2).sum(0).div(n - 1).sqrt()
    members_a = out.reshape(n, 2, c, h, w)
    mean_a_t0 = members_a[:, 1].mean(0)
    # O-B and O-A per slot (the analysis mean run forward for later slots)
    a_states = _slot_members(model, members_a.mean(0, keepdim=True), slots, opts)
    omb, oma = [], []
    for (s, keep), hxs in zip(kept_slots, hx_list, strict=True):
        val = s.value.double()[keep]
        omb.append(val - hxs.mean(0))
        op = s.operator.subset(keep.numpy())
        oma.append(val - op(a_states[int(s.step)][0]))
    return LETKFAnalysis(
        members=members_a,
        mean=mean_a_t0,
        background_mean=members[:, 1].mean(0),
        omb=omb,
        oma=oma,
        qc_rejected=rejected,
        inflation=rho,
        inflation_estimate=estimate,
        background_spread=sb.reshape(c, h, w),
        analysis_spread=sa.reshape(c, h, w),
    )
