"""The ensemble behind B: Perlin-perturbed members, their anomalies, hybrid with a static B.

``X_b = (members − mean) / √(N − 1)`` are the anomalies of N members made by adding Perlin
noise to the background 6 h before the analysis time and running one model step; with
static samples the hybrid ``B = (1 − β) B_ens + β B_static`` stacks both sets of columns.
See the definitions in the documentation (docs/design.md, section En4DVar).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..docstrings import docstring_parts
from ..models.rollout import model_device, model_dtype
from ..options import progress_enabled
from ..perturbations.balanced import balanced_perturbations
from ..perturbations.perlin import perlin_perturbations
from ..perturbations.scales import PerlinScales
from .config import BackgroundError, legacy_options

__all__ = [
    "background_anomalies",
    "ensemble_anomalies",
    "ensemble_members",
    "perlin_state_perturbations",
    "resolve_balance",
]

#: docstring parts: the model, and how members are drawn and run
_doc = docstring_parts(
    {
        "model": """\
model : ForecastModel
    Differentiable model with the contract ``(B, 2, C, H, W) → (B, C, H, W)``.""",
        "run": """\
generator : torch.Generator, optional
    Draws the perturbations (default: seeded with 0).
dtype : torch.dtype, optional
    Model dtype (default: the model's).
progress : bool, optional
    Progress bar over member chunks (default: the global option).""",
    }
)

_PERLIN_KEYWORDS = (
    "n_members",
    "amplitude",
    "wavelength",
    "octaves",
    "persistence",
    "balance",
    "perturbation_std",
    "member_chunk",
)


def resolve_balance(balance: str | None, model: Any) -> str | None:
    """``"geostrophic"`` or None from a balance option (``"auto"`` decided by the channels)."""
    if balance == "none":
        balance = None
    if balance not in (None, "auto", "geostrophic"):
        raise ValueError(f"balance must be None, 'auto' or 'geostrophic', got {balance!r}")
    if balance != "auto":
        return balance
    names = {v for v, _ in getattr(model, "channels", ())}
    need = {"geopotential", "u_component_of_wind", "v_component_of_wind"}
    return "geostrophic" if need <= names else None


def _perturbation_std(background_error: BackgroundError) -> np.ndarray:
    if background_error.perturbation_std is None:
        raise ValueError(
            "background_error.perturbation_std (the climatological std per channel) is "
            "needed to draw Perlin perturbations"
        )
    return np.asarray(background_error.perturbation_std, dtype="float64")


def perlin_state_perturbations(
    model: Any,
    *,
    background_error: BackgroundError,
    generator: torch.Generator | None = None,
    grid: tuple[int, int] | None = None,
) -> torch.Tensor:
    """The Perlin perturbations :func:`ensemble_members` adds, ``(N, C, H, W)`` float64.

    Independent per channel (``C = len(perturbation_std)``), or geostrophically balanced
    (``background_error.balance``); ``N = background_error.n_members``. ``grid`` is
    ``(H, W)`` (default: the model's grid); ``generator`` default: seeded with 0.
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    opts = background_error
    std = _perturbation_std(opts)
    amplitude = np.asarray(opts.amplitude, dtype="float64") if isinstance(
        opts.amplitude, tuple
    ) else opts.amplitude  # fmt: skip
    scales = PerlinScales(opts.wavelength, opts.octaves, opts.persistence)
    if resolve_balance(opts.balance, model) == "geostrophic":
        return balanced_perturbations(
            opts.n_members,
            channels=model.channels,
            latitude=model.latitude,
            longitude=model.longitude,
            std=std,
            amplitude=amplitude,  # one per channel or one for all (its mean was used)
            scales=scales,
            generator=g,
            dtype=torch.float64,
        )
    return perlin_perturbations(
        opts.n_members,
        std=std,
        shape=tuple(grid) if grid is not None else tuple(model.grid_shape),
        amplitude=amplitude,
        scales=scales,
        generator=g,
        dtype=torch.float64,
    )


@_doc
def ensemble_members(
    model: torch.nn.Module,
    before: torch.Tensor,
    start: torch.Tensor,
    *,
    background_error: BackgroundError | None = None,
    perturbations: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    progress: bool | None = None,
    **deprecated: Any,
) -> torch.Tensor:
    """Perlin-perturbed members of the background run one model step (batched in chunks).

    Parameters
    ----------
    {{model}}
    before, start : Tensor (C, H, W)
        Background at t0 − 12 h and t0 − 6 h (the model's input pair). The same
        perturbation is added to both (a perturbation of the state, not of its tendency).
    background_error : BackgroundError
        Members (``n_members``), Perlin settings (``amplitude`` × ``perturbation_std``,
        ``wavelength``, ``octaves``, ``persistence``, ``balance``) and ``member_chunk``
        (members per model call). ``balance="auto"``: geostrophic when the model has
        geopotential and both wind components.
    perturbations : Tensor (N, C, H, W), optional
        Ready-made perturbations (e.g. cycled ones) instead of Perlin noise; the Perlin
        settings are then unused.
    {{run}}
    **deprecated
        The older flat keywords (``n_members``, ``std``, ``amplitude``, ``chunk``, ...),
        mapped onto ``background_error`` with a ``DeprecationWarning``.

    Returns
    -------
    Tensor (N, C, H, W), float64
        Members at t0.

    Examples
    --------
    >>> from xfuxi.models.lorenz96 import lorenz96_model
    >>> m = lorenz96_model()
    >>> x = torch.full((1, 1, 40), 8.0, dtype=torch.float64)
    >>> opts = BackgroundError(n_members=4, perturbation_std=(1.0,), amplitude=0.1, wavelength=1)
    >>> ens = ensemble_members(m, x, x, background_error=opts,
    ...                        generator=torch.Generator().manual_seed(0), progress=False)
    >>> tuple(ens.shape)
    (4, 1, 1, 40)
    """
    renamed = {"std": "perturbation_std", "chunk": "member_chunk"}
    deprecated = {renamed.get(k, k): v for k, v in deprecated.items()}
    opts = legacy_options(
        "ensemble_members",
        {"background_error": background_error},
        deprecated,
        allowed=_PERLIN_KEYWORDS,
    )["background_error"]
    n_members = opts.n_members
    chunk = opts.member_chunk
    mdtype = model_dtype(model, dtype)
    device = model_device(model)
    c, h, w = start.shape
    shape = (n_members, c, h, w)
    if perturbations is None:
        # drawn all at once (the noise is normalised over all members: a chunk drawn on its
        # own would be other numbers); the members overwrite their perturbations chunk by
        # chunk, so the ensemble is held once
        pert = perlin_state_perturbations(
            model, background_error=opts, generator=generator, grid=(h, w)
        )
        out = pert if tuple(pert.shape) == shape else torch.empty(shape, dtype=torch.float64)
    else:
        pert = perturbations  # the caller's: read a chunk at a time, never written
        if tuple(pert.shape) != shape:
            raise ValueError(
                f"perturbations must be ({n_members}, {c}, {h}, {w}); got {tuple(pert.shape)}"
            )
        out = torch.empty(shape, dtype=torch.float64)
    before64, start64 = before.double(), start.double()
    bar = tqdm(total=n_members, desc="ensemble members", disable=not progress_enabled(progress))
    try:
        with torch.no_grad():
            for i in range(0, n_members, chunk):
                p = pert[i : i + chunk].double()
                x = torch.empty((p.shape[0], 2, c, h, w), dtype=mdtype, device=device)
                for j in range(p.shape[0]):  # float64 sums of one member at a time
                    x[j, 0] = before64 + p[j]
                    x[j, 1] = start64 + p[j]
                # p may be a view of out: the members overwrite their perturbations
                out[i : i + chunk] = model(x)
                del x  # before the next chunk's is allocated
                bar.update(p.shape[0])
    finally:
        bar.close()
    return out


def ensemble_anomalies(
    members: torch.Tensor,
    *,
    spread: Any = None,
    spread_groups: Sequence[Sequence[int]] | None = None,
) -> torch.Tensor:
    """``X_b = (members − mean) / √(N − 1)``, rescaled to ``spread`` if given.

    ``spread`` of shape ``(C,)`` rescales each channel (its grid-mean variance), one of
    shape ``(C, H)`` each channel on each latitude row (the row's mean variance over
    longitude); NaN keeps the ensemble's own spread. The channels of a group share one
    factor (per row), e.g. the two wind components of a level, so that wind increments keep
    their direction. ``members`` is left unchanged: the anomalies are one new float64 copy,
    formed in place.
    """
    return _anomalies_in_place(members.to(torch.float64, copy=True), spread, spread_groups)


def _anomalies_in_place(
    x: torch.Tensor, spread: Any, spread_groups: Sequence[Sequence[int]] | None
) -> torch.Tensor:
    """:func:`ensemble_anomalies` of float64 members ``x``, formed in ``x`` (overwritten).

    The same operations as on temporaries, in the same order; the sums of squares are
    taken channel by channel (:func:`_sum_of_squares`), so the result equals the one on
    temporaries to rounding (an ulp on some shapes and CPUs), not always bit for bit.
    """
    n, c, h = x.shape[0], x.shape[1], x.shape[2]
    if n < 2:  # 0 / 0: anomalies of NaN, and an analysis of NaN without an error
        raise ValueError(f"ensemble anomalies need at least 2 members; got {n}")
    x.sub_(x.mean(0, keepdim=True)).div_(math.sqrt(n - 1))
    if spread is None:
        return x
    target = torch.as_tensor(np.asarray(spread, dtype="float64")).to(x)
    if target.shape not in ((c,), (c, h)):
        raise ValueError(
            f"spread must have one value per channel ({c}) or per channel and latitude "
            f"row ({c}, {h}); got shape {tuple(target.shape)}"
        )
    by_row = target.ndim == 2
    var = _sum_of_squares(x).mean(dim=-1 if by_row else (-2, -1))
    # a channel whose target is NaN keeps its own spread, zero or not
    if not bool((var > 0)[torch.isfinite(target)].all()):
        raise ValueError(
            "the ensemble has zero spread in some channel"
            + (" and latitude row" if by_row else "")
            + "; cannot rescale it"
        )
    # NaN in spread: that channel keeps the ensemble's own spread
    factor = torch.where(torch.isnan(target), 1.0, (target.pow(2) / var).sqrt())
    for group in spread_groups or ():
        # one factor for the group (e.g. u and v of a level): the increments' directions
        # are kept, only their magnitude is calibrated
        g = list(group)
        if bool(torch.isfinite(target[g]).all()):
            factor[g] = (target[g].pow(2).sum(0) / var[g].sum(0)).sqrt()
    return x.mul_(factor.view(1, c, h, 1) if by_row else factor.view(1, c, 1, 1))


def _sum_of_squares(x: torch.Tensor) -> torch.Tensor:
    """``x.pow(2).sum(0)`` without a squared copy of the whole of ``x``.

    Channel by channel (temporaries of one channel): each element's sum over the members,
    equal to ``x.pow(2).sum(0)``'s to rounding (bit for bit on most shapes; an ulp apart
    where torch splits the vectorised sum otherwise, measured on an AVX-512 CPU; tested to
    1e-15). ``x`` is not modified. (Squaring ``x`` in place and restoring it by a square
    root, as an earlier release did, is exact only where the square root is correctly
    rounded: on some CPUs torch's vectorised one is not, and ``x`` came back changed in
    its last bits.)
    """
    out = torch.empty(x.shape[1:], dtype=x.dtype, device=x.device)
    for k in range(x.shape[1]):
        torch.sum(x[:, k].pow(2), dim=0, out=out[k])
    return out


def _check_static(static: torch.Tensor, state_shape: tuple[int, ...]) -> None:
    if static.ndim != 4 or tuple(static.shape[1:]) != tuple(state_shape):
        raise ValueError(
            f"static samples must be (K, {', '.join(map(str, state_shape))}); "
            f"got {tuple(static.shape)}"
        )
    if static.shape[0] < 2:
        raise ValueError(f"need at least 2 static samples; got {static.shape[0]}")
    if not bool(torch.isfinite(static).all()):
        raise ValueError("static samples contain NaN or infinite values")


@_doc
def background_anomalies(
    model: torch.nn.Module,
    background: torch.Tensor,
    *,
    background_error: BackgroundError,
    members: torch.Tensor | None = None,
    static: torch.Tensor | None = None,
    spread: Any = None,
    spread_groups: Sequence[Sequence[int]] | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    progress: bool | None = None,
) -> torch.Tensor:
    """The columns of B's square root, ``(N [+ K], C, H, W)`` float64.

    The anomalies of the members (Perlin members drawn here, or ``members`` given), rescaled
    to ``spread`` if given, then those of ``static`` samples for a hybrid B.

    Parameters
    ----------
    {{model}}
    background : Tensor (3, C, H, W)
        Background at t0 − 2Δ, t0 − Δ and t0 (members start from the first two).
    background_error : BackgroundError
        Member generation (:func:`ensemble_members`) and ``hybrid_weight``.
    members : Tensor (N, C, H, W), optional
        Ready-made members at t0 (skips member generation).
    static : Tensor (K, C, H, W), optional
        Samples of a static background error: hybrid B,
        ``B = (1 − β) B_ens + β B_static`` with ``B_static`` their sample covariance; their
        anomalies join the ensemble's as ``K`` more columns. ``β = 1``: static B alone (no
        ensemble is generated).
    spread, spread_groups
        B variance calibration of the ensemble part, as for :func:`ensemble_anomalies`.
    {{run}}
    """
    beta = float(background_error.hybrid_weight)
    if static is not None:
        _check_static(static, tuple(background.shape[1:]))
    static_only = static is not None and beta == 1.0
    anomalies = None
    if not static_only:
        if members is None:
            # the members are this function's own: their anomalies are formed in them
            generated = ensemble_members(
                model,
                background[0],
                background[1],
                background_error=background_error,
                generator=generator,
                dtype=dtype,
                progress=progress,
            )
            anomalies = _anomalies_in_place(generated, spread, spread_groups)
        else:
            anomalies = ensemble_anomalies(members, spread=spread, spread_groups=spread_groups)
    if static is not None:
        xs = static.to(torch.float64, copy=True)
        xs.sub_(xs.mean(0, keepdim=True)).mul_(math.sqrt(beta / (xs.shape[0] - 1)))
        anomalies = (
            xs if anomalies is None else torch.cat([anomalies.mul_(math.sqrt(1 - beta)), xs])
        )
    assert anomalies is not None
    return anomalies
