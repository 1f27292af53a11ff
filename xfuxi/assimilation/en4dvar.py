"""FuXi-En4DVar: ensemble 4DVar through a differentiable forecast model.

The analysis minimises (DESIGN.md §4)::

    J(w) = ½ wᵀw + ½ Σ_k (y_k − H_k(M_k(x)))ᵀ R_k⁻¹ (y_k − H_k(M_k(x))),
    x = x_b + X_b w                           (no localization; w has N entries)
    x = x_b + Σ_i X_b,i ∘ (L α_i),  C = L Lᵀ  (localization; one α_i per member)

with ``X_b = (members − mean) / √(N−1)`` the anomalies of N members made by adding Perlin
noise to the background 6 h before the analysis time and running one model step,
``M_k`` the model rolled ``k`` steps from the analysis (its earlier input, at t0 − 6 h,
taken from the background), ``H_k`` the (linear, differentiable) observation operators of
slot ``k`` and ``R_k`` diagonal. Gradients come from autodiff through the model — no adjoint
is written — and ``J`` is minimised with L-BFGS (SciPy's L-BFGS-B or ``torch.optim.LBFGS``)
until the gradient norm falls by a factor ``gtol`` or ``max_iter`` iterations.

The core (:func:`en4dvar_analysis`) works on tensors with any model that follows the
:class:`~xfuxi.models.base.ForecastModel` contract (``(B, 2, C, H, W) → (B, C, H, W)``),
e.g. the FuXi U-Transformer or :func:`~xfuxi.models.lorenz96.lorenz96_model`;
:func:`assimilate_4dvar` is the xarray front end.
"""

from __future__ import annotations

import logging
import math
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..models.base import check_plausible
from ..models.rollout import model_device, model_dtype
from ..observations.operator import REJECT_REASONS
from ..options import progress_enabled
from .localization import Localization

__all__ = [
    "En4DVarResult",
    "En4DVarProblem",
    "ObsSlot",
    "TensorAnalysis",
    "assimilate_4dvar",
    "en4dvar_analysis",
    "ensemble_members",
    "minimize_cost",
]

log = logging.getLogger(__name__)


@dataclass
class ObsSlot:
    """Observations of one slot: ``k`` model steps after the analysis time.

    ``operator`` maps states ``(..., C, H, W)`` to ``(..., m)``; ``value`` and ``error``
    (std) are ``(m,)`` tensors.
    """

    step: int
    operator: Any
    value: torch.Tensor
    error: torch.Tensor


def perlin_state_perturbations(
    model: Any,
    n_members: int,
    *,
    std: Any,
    amplitude: Any = 0.05,
    wavelength: float = 8.0,
    octaves: int = 3,
    persistence: float = 0.5,
    balance: str | None = None,
    generator: torch.Generator | None = None,
    grid: tuple[int, int] | None = None,
) -> torch.Tensor:
    """The Perlin perturbations :func:`ensemble_members` adds, ``(N, C, H, W)`` float64.

    Independent per channel (``C = len(std)``), or geostrophically balanced (``balance``);
    see :func:`ensemble_members` for the arguments. ``grid`` is ``(H, W)`` (default: the
    model's grid).
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    balance = _resolve_balance(balance, model)
    if balance == "geostrophic":
        from ..perturbations.perlin import balanced_perturbations

        return balanced_perturbations(
            n_members,
            channels=model.channels,
            latitude=model.latitude,
            longitude=model.longitude,
            std=np.asarray(std, dtype="float64"),
            amplitude=float(np.mean(amplitude)),
            wavelength=wavelength,
            octaves=octaves,
            persistence=persistence,
            generator=g,
            dtype=torch.float64,
        )
    from ..perturbations.perlin import perlin_perturbations

    return perlin_perturbations(
        n_members,
        std=np.asarray(std, dtype="float64"),
        shape=tuple(grid) if grid is not None else tuple(model.grid_shape),
        amplitude=amplitude,
        wavelength=wavelength,
        octaves=octaves,
        persistence=persistence,
        generator=g,
        dtype=torch.float64,
    )


def ensemble_members(
    model: torch.nn.Module,
    before: torch.Tensor,
    start: torch.Tensor,
    *,
    n_members: int,
    std: Any,
    amplitude: Any = 0.05,
    wavelength: float = 8.0,
    octaves: int = 3,
    persistence: float = 0.5,
    chunk: int = 25,
    balance: str | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    progress: bool | None = None,
    perturbations: torch.Tensor | None = None,
) -> torch.Tensor:
    """Perlin-perturbed members of the background run one model step (batched in chunks).

    Parameters
    ----------
    model : ForecastModel
    before, start : Tensor (C, H, W)
        Background at t0 − 12 h and t0 − 6 h (the model's input pair). The same
        perturbation is added to both (a perturbation of the state, not of its tendency).
    n_members : int
    std : array-like (C,)
        Climatological std per channel; perturbation std is ``amplitude × std``.
    amplitude, wavelength, octaves, persistence
        As for :func:`xfuxi.perturbations.perlin.perlin_perturbations`.
    chunk : int, default 25
        Members per model call (bounds memory).
    balance : {None, "geostrophic", "auto"}
        None: independent Perlin noise per channel. ``"geostrophic"``: multivariate
        balanced perturbations (:func:`~xfuxi.perturbations.perlin.balanced_perturbations`;
        needs ``model.channels`` with geopotential). ``"auto"``: geostrophic when the model
        has geopotential and both wind components, else None.
    generator : torch.Generator, optional
    dtype : torch.dtype, optional
        Model dtype (default: the model's).
    progress : bool, optional
    perturbations : Tensor (N, C, H, W), optional
        Ready-made perturbations (e.g. cycled ones) instead of Perlin noise; the Perlin
        settings are then unused.

    Returns
    -------
    Tensor (N, C, H, W), float64
        Members at t0.

    Examples
    --------
    >>> from xfuxi.models.lorenz96 import lorenz96_model
    >>> m = lorenz96_model()
    >>> x = torch.full((1, 1, 40), 8.0, dtype=torch.float64)
    >>> ens = ensemble_members(m, x, x, n_members=4, std=[1.0], amplitude=0.1, wavelength=1,
    ...                        generator=torch.Generator().manual_seed(0), progress=False)
    >>> tuple(ens.shape)
    (4, 1, 1, 40)
    """
    from tqdm.auto import tqdm

    if n_members < 2:
        raise ValueError(f"n_members must be at least 2, got {n_members}")
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    mdtype = model_dtype(model, dtype)
    device = model_device(model)
    c, h, w = start.shape
    out = torch.empty((n_members, c, h, w), dtype=torch.float64)
    if perturbations is None:
        pert = perlin_state_perturbations(
            model, n_members, std=std, amplitude=amplitude, wavelength=wavelength,
            octaves=octaves, persistence=persistence, balance=balance, generator=generator,
            grid=(h, w),
        )  # fmt: skip
    else:
        pert = perturbations.double()
        if tuple(pert.shape) != (n_members, c, h, w):
            raise ValueError(
                f"perturbations must be ({n_members}, {c}, {h}, {w}); got {tuple(pert.shape)}"
            )
    bar = tqdm(total=n_members, desc="ensemble members", disable=not progress_enabled(progress))
    with torch.no_grad():
        for i in range(0, n_members, chunk):
            p = pert[i : i + chunk]
            x = torch.stack([before.double()[None] + p, start.double()[None] + p], dim=1)
            out[i : i + chunk] = model(x.to(device=device, dtype=mdtype)).double().cpu()
            bar.update(p.shape[0])
    bar.close()
    return out


def _resolve_balance(balance: str | None, model: Any) -> str | None:
    if balance not in (None, "auto", "geostrophic"):
        raise ValueError(f"balance must be None, 'auto' or 'geostrophic', got {balance!r}")
    if balance != "auto":
        return balance
    names = {v for v, _ in getattr(model, "channels", ())}
    need = {"geopotential", "u_component_of_wind", "v_component_of_wind"}
    return "geostrophic" if need <= names else None


class En4DVarProblem:
    """The En4DVar cost as a function of the (flat) control vector.

    Parameters
    ----------
    model : ForecastModel
    previous : Tensor (C, H, W)
        Background at t0 − Δ (the earlier input of the first step from the analysis).
    background : Tensor (C, H, W)
        Background ``x_b`` at t0.
    anomalies : Tensor (N, C, H, W)
        ``X_b = (members − mean) / √(N − 1)``.
    slots : list of ObsSlot
    localization : Localization, optional
    dtype : torch.dtype, optional
        Dtype in which the model runs (the cost is accumulated in float64).
    increment_previous : bool, default False
        Also add the increment to the earlier input ``previous`` when rolling the model from
        an analysis state (the increment changes the state, not its 6-hour tendency).
        False: the earlier input is the background (DESIGN.md §4).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        previous: torch.Tensor,
        background: torch.Tensor,
        anomalies: torch.Tensor,
        slots: Sequence[ObsSlot],
        *,
        localization: Localization | None = None,
        dtype: torch.dtype | None = None,
        increment_previous: bool = False,
    ) -> None:
        self.model = model
        self.increment_previous = bool(increment_previous)
        self.mdtype = model_dtype(model, dtype)
        self.device = model_device(model)
        self.previous = previous.double()
        self.background = background.double()
        self.anomalies = anomalies.double()
        if self.anomalies.shape[1:] != self.background.shape:
            raise ValueError(
                f"anomalies {tuple(anomalies.shape)} do not match the state "
                f"{tuple(background.shape)}"
            )
        self.slots = list(slots)
        self.n_steps = max((s.step for s in self.slots), default=0)
        n, c, h, w = self.anomalies.shape
        self.n_members = n
        self.localization = localization
        if localization is None:
            self.control_shape: tuple[int, ...] = (n,)
        else:
            if localization.spatial.shape[0] != h * w:
                raise ValueError(
                    f"localization has {localization.spatial.shape[0]} points; grid has {h * w}"
                )
            if localization.channel is not None and localization.channel.shape[0] != c:
                raise ValueError(
                    f"channel localization has {localization.channel.shape[0]} channels; "
                    f"state has {c}"
                )
            self._lh = torch.as_tensor(localization.spatial, dtype=torch.float64)
            self._lc = (
                None
                if localization.channel is None
                else torch.as_tensor(localization.channel, dtype=torch.float64)
            )
            self.control_shape = (n, *localization.control_shape)
            self._xb_flat = self.anomalies.reshape(n, c, h * w)

    @property
    def n_control(self) -> int:
        return int(np.prod(self.control_shape))

    def increment(self, v: torch.Tensor) -> torch.Tensor:
        """Increment ``δx`` (C, H, W) of a flat control vector ``v``."""
        v = v.reshape(self.control_shape)
        n, c, h, w = self.anomalies.shape
        if self.localization is None:
            return (v.view(n, 1, 1, 1) * self.anomalies).sum(0)
        if self._lc is None:
            f = v @ self._lh.T  # (N, P)
            return (f[:, None, :] * self._xb_flat).sum(0).reshape(c, h, w)
        f = torch.einsum("cs,nsr,pr->ncp", self._lc, v, self._lh)
        return (f * self._xb_flat).sum(0).reshape(c, h, w)

    def trajectory(self, x0: torch.Tensor, n_steps: int | None = None) -> list[torch.Tensor]:
        """States at t0, t0 + Δ, ... (``n_steps`` steps; default the last slot's)."""
        n_steps = self.n_steps if n_steps is None else n_steps
        states = [x0]
        prev, cur = self.previous, x0
        if self.increment_previous:
            prev = self.previous + (x0 - self.background)
        for _ in range(n_steps):
            x = torch.stack([prev, cur])[None].to(device=self.device, dtype=self.mdtype)
            nxt = self.model(x)[0].to(device="cpu", dtype=torch.float64)
            prev, cur = cur, nxt
            states.append(nxt)
        return states

    def departures(self, states: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Normalised departures ``(y − H M_k x) / σ`` per slot."""
        return [(s.value - s.operator(states[s.step])) / s.error for s in self.slots]

    def cost(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``J, Jb, [Jo_k]`` at the flat control ``v`` (differentiable)."""
        jb = 0.5 * (v * v).sum()
        states = self.trajectory(self.background + self.increment(v))
        jo = [0.5 * (d * d).sum() for d in self.departures(states)]
        total = jb + sum(jo, torch.zeros((), dtype=torch.float64))
        return total, jb, jo


@dataclass
class _Record:
    cost: float
    cost_background: float
    cost_observation: list[float]
    gradient_norm: float


@dataclass
class _History:
    records: list[_Record] = field(default_factory=list)
    n_evaluations: int = 0
    converged: bool = False
    message: str = ""


def minimize_cost(
    problem: En4DVarProblem,
    *,
    max_iter: int = 50,
    gtol: float = 1e-3,
    optimizer: str = "scipy",
    progress: bool | None = None,
    initial: torch.Tensor | None = None,
) -> tuple[torch.Tensor, _History]:
    """Minimise the En4DVar cost with L-BFGS; gradients by autodiff.

    Parameters
    ----------
    problem : En4DVarProblem
    max_iter : int, default 50
        Iteration cap; 0 evaluates the cost at the start and returns it unchanged.
    gtol : float, default 1e-3
        Stop when ``‖∇J‖ ≤ gtol · ‖∇J(w₀)‖``.
    optimizer : {"scipy", "torch"}
        SciPy L-BFGS-B or ``torch.optim.LBFGS`` with strong-Wolfe line search.
    progress : bool, optional
        Progress bar over iterations (default: the global option).
    initial : Tensor, optional
        Starting control (default zero, i.e. the background).

    Returns
    -------
    control : Tensor (n_control,) float64
    history : record of J, Jb, Jo per slot and gradient norm per iteration (0 = start)
    """
    from tqdm.auto import tqdm

    if optimizer not in ("scipy", "torch"):
        raise ValueError(f"optimizer must be 'scipy' or 'torch', got {optimizer!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise ValueError(f"max_iter must be an integer >= 0, got {max_iter!r}")
    if not gtol >= 0:
        raise ValueError(f"gtol must be >= 0, got {gtol!r}")
    n = problem.n_control
    v0 = torch.zeros(n, dtype=torch.float64) if initial is None else initial.double().clone()
    hist = _History()
    last: dict[str, Any] = {}

    def evaluate(v: torch.Tensor) -> tuple[float, torch.Tensor]:
        v = v.detach().clone().requires_grad_(True)
        total, jb, jo = problem.cost(v)
        (grad,) = torch.autograd.grad(total, v)
        hist.n_evaluations += 1
        last["v"] = v.detach()
        last["rec"] = _Record(
            float(total.detach()),
            float(jb.detach()),
            [float(j.detach()) for j in jo],
            float(grad.norm()),
        )
        return float(total.detach()), grad

    bar = tqdm(total=max_iter, desc="4DVar L-BFGS", disable=not progress_enabled(progress))
    j0, g0 = evaluate(v0)
    hist.records.append(last["rec"])
    g0n = max(float(g0.norm()), 1e-300)
    if float(g0.norm()) == 0.0:
        hist.converged, hist.message = True, "zero gradient at the background"
        bar.close()
        return v0, hist
    if max_iter == 0:  # the background's cost and departures only
        hist.message = "max_iter=0: not minimised"
        bar.close()
        return v0, hist

    def record(v: torch.Tensor) -> bool:
        if "v" not in last or not torch.equal(last["v"], v):
            evaluate(v)
        hist.records.append(last["rec"])
        bar.update(1)
        bar.set_postfix(J=f"{last['rec'].cost:.4g}", g=f"{last['rec'].gradient_norm / g0n:.2e}")
        return last["rec"].gradient_norm <= gtol * g0n

    if optimizer == "scipy":
        from scipy.optimize import minimize

        def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            j, g = evaluate(torch.from_numpy(x))
            return j, g.numpy()

        def callback(intermediate_result: Any) -> None:
            if record(torch.from_numpy(np.asarray(intermediate_result.x, dtype="float64"))):
                hist.converged = True
                raise StopIteration

        res = minimize(
            fun,
            v0.numpy(),
            jac=True,
            method="L-BFGS-B",
            callback=callback,
            options={"maxiter": int(max_iter), "gtol": 0.0, "ftol": 1e-15, "maxcor": 20},
        )
        v = torch.from_numpy(np.asarray(res.x, dtype="float64"))
        hist.message = "relative gradient tolerance reached" if hist.converged else str(res.message)
    else:
        v = v0.clone().requires_grad_(True)
        opt = torch.optim.LBFGS(
            [v],
            lr=1.0,
            max_iter=1,
            history_size=20,
            line_search_fn="strong_wolfe",
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            j, g = evaluate(v)
            v.grad = g.clone()
            return torch.tensor(j, dtype=torch.float64)

        for _ in range(int(max_iter)):
            opt.step(closure)
            if record(v.detach()):
                hist.converged = True
                break
        v = v.detach()
        hist.message = (
            "relative gradient tolerance reached" if hist.converged else "iteration cap reached"
        )
    bar.close()
    if not hist.converged and len(hist.records) - 1 >= max_iter:
        hist.message = "iteration cap reached"
    return v.detach(), hist


class TensorAnalysis(NamedTuple):
    """Result of :func:`en4dvar_analysis` (tensors, float64)."""

    analysis: torch.Tensor  # (C, H, W) at t0
    trajectory: torch.Tensor  # (K, C, H, W): t0, t0+Δ, ...
    background_trajectory: torch.Tensor  # (K, C, H, W)
    increment: torch.Tensor  # (C, H, W)
    control: torch.Tensor
    history: Any
    omb: list[torch.Tensor]  # per slot, for the used observations
    oma: list[torch.Tensor]
    qc_rejected: list[np.ndarray]  # per slot, bool mask over the slot's input observations
    timings: dict[str, float]


def _qc(
    slot: ObsSlot, hx: torch.Tensor, anomalies: torch.Tensor, threshold: float | None
) -> np.ndarray:
    """Background check: reject |y − H x_b| > k √(σo² + σb²), σb from the t0 ensemble."""
    if threshold is None:
        return np.zeros(slot.value.shape[0], dtype=bool)
    sb2 = (slot.operator(anomalies) ** 2).sum(0)
    bound = threshold * torch.sqrt(slot.error**2 + sb2)
    return ((slot.value - hx).abs() > bound).numpy()


def _ensemble_anomalies(
    members: torch.Tensor, spread: Any, spread_groups: Sequence[Sequence[int]] | None
) -> torch.Tensor:
    """``X_b = (members − mean) / √(N − 1)``, rescaled to ``spread`` if given.

    ``spread`` of shape ``(C,)`` rescales each channel (its grid-mean variance), one of
    shape ``(C, H)`` each channel on each latitude row (the row's mean variance over
    longitude); NaN keeps the ensemble's own spread. The channels of a group share one
    factor (per row).
    """
    members = members.double()
    n, c, h = members.shape[0], members.shape[1], members.shape[2]
    anomalies = (members - members.mean(0, keepdim=True)) / math.sqrt(n - 1)
    if spread is not None:
        target = torch.as_tensor(np.asarray(spread, dtype="float64")).to(anomalies)
        if target.shape not in ((c,), (c, h)):
            raise ValueError(
                f"spread must have one value per channel ({c}) or per channel and latitude "
                f"row ({c}, {h}); got shape {tuple(target.shape)}"
            )
        by_row = target.ndim == 2
        var = anomalies.pow(2).sum(0).mean(dim=-1 if by_row else (-2, -1))
        if not bool((var > 0).all()):
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
        anomalies = anomalies * (factor.view(1, c, h, 1) if by_row else factor.view(1, c, 1, 1))
    return anomalies


def en4dvar_analysis(
    model: torch.nn.Module,
    background: torch.Tensor,
    slots: Sequence[ObsSlot],
    *,
    n_members: int = 200,
    perturbation_std: Any,
    amplitude: Any = 0.05,
    wavelength: float = 8.0,
    octaves: int = 3,
    persistence: float = 0.5,
    localization: Localization | None = None,
    members: torch.Tensor | None = None,
    spread: Any = None,
    spread_groups: Sequence[Sequence[int]] | None = None,
    static: torch.Tensor | None = None,
    hybrid_weight: float = 0.25,
    increment_previous: bool = False,
    balance: str | None = "auto",
    qc_threshold: float | None = 5.0,
    max_iter: int = 50,
    gtol: float = 1e-3,
    optimizer: str = "scipy",
    member_chunk: int = 25,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    progress: bool | None = None,
) -> TensorAnalysis:
    """One En4DVar analysis on tensors (the core behind :func:`assimilate_4dvar`).

    Parameters
    ----------
    model : ForecastModel
        Any differentiable model with the contract ``(B, 2, C, H, W) → (B, C, H, W)``.
    background : Tensor (3, C, H, W)
        Background states at t0 − 2Δ, t0 − Δ and t0.
    slots : sequence of ObsSlot
        Observations per slot (step ``k`` = ``k`` model steps after t0).
    n_members : int, default 200
    perturbation_std : array-like (C,)
        Climatological std per channel (Perlin amplitude is a fraction of it).
    amplitude, wavelength, octaves, persistence
        Perlin perturbation settings (``wavelength ≤ 1``: white noise).
    localization : Localization, optional
        None: control ``w`` of size N.
    members : Tensor (N, C, H, W), optional
        Ready-made members at t0 (skips member generation).
    spread : array-like (C,) or (C, H), optional
        Target spread per channel (NaN: keep the ensemble's): each channel's anomalies are
        rescaled so that their ensemble std, averaged (as a variance) over grid points,
        equals it — B variance calibration that keeps the ensemble's correlations (see
        :func:`xfuxi.assimilation.calibration.background_error_std`). ``(C, H)``: per
        channel and latitude row (averaged over longitude).
    spread_groups : sequence of sequences of int, optional
        Channel indices rescaled by one common factor (their summed variance matched), e.g.
        the two wind components of a level, so that wind increments keep their direction.
    static : Tensor (K, C, H, W), optional
        Samples of a static (climatological) background error, e.g. forecast-error samples
        (:func:`xfuxi.assimilation.calibration.forecast_error_samples`): hybrid B,
        ``B = (1 − β) B_ens + β B_static`` with ``B_static`` their sample covariance. Their
        anomalies join the ensemble's as ``K`` more columns (localized alike).
    hybrid_weight : float, default 0.25
        ``β`` in (0, 1]; used only with ``static``. ``β = 1``: static B alone (no ensemble
        is generated).
    increment_previous : bool, default False
        As for :class:`En4DVarProblem`.
    balance : {"auto", "geostrophic", None}, default "auto"
        Perturbation structure, as for :func:`ensemble_members`.
    qc_threshold : float or None, default 5
        Background check factor ``k``; None disables it.
    max_iter, gtol, optimizer
        As for :func:`minimize_cost`.
    member_chunk : int, default 25
    generator : torch.Generator, optional
    dtype : torch.dtype, optional
    progress : bool, optional

    Returns
    -------
    TensorAnalysis

    Examples
    --------
    >>> from xfuxi.models.lorenz96 import lorenz96_model
    >>> from xfuxi.observations.operator import build_operator
    >>> m = lorenz96_model()
    >>> g = torch.Generator().manual_seed(0)
    >>> x = 8.0 + torch.randn(1, 1, 40, generator=g, dtype=torch.float64)
    >>> bg = torch.stack([x, x, m(torch.stack([x, x])[None])[0]])
    >>> op, _ = build_operator([("x", None)], [0.0], np.arange(40) * 9.0,
    ...     obs_variable=["x"], obs_latitude=[0.0], obs_longitude=[90.0], obs_level=[np.nan])
    >>> y = op(bg[2]) + 1.0
    >>> res = en4dvar_analysis(m, bg, [ObsSlot(0, op, y, torch.ones(1, dtype=torch.float64))],
    ...     n_members=20, perturbation_std=[1.0], amplitude=0.5, wavelength=1,
    ...     generator=g, progress=False)
    >>> bool(0 < float(op(res.analysis) - op(bg[2])) < 1.0)
    True
    """
    if background.ndim != 4 or background.shape[0] != 3:
        raise ValueError(
            f"background must be (3, C, H, W) at t0-2Δ, t0-Δ, t0; got {tuple(background.shape)}"
        )
    if static is not None:
        if not 0.0 < float(hybrid_weight) <= 1.0:
            raise ValueError(f"hybrid_weight must be in (0, 1]; got {hybrid_weight}")
        if static.ndim != 4 or tuple(static.shape[1:]) != tuple(background.shape[1:]):
            raise ValueError(
                f"static samples must be (K, {', '.join(map(str, background.shape[1:]))}); "
                f"got {tuple(static.shape)}"
            )
        if static.shape[0] < 2:
            raise ValueError(f"need at least 2 static samples; got {static.shape[0]}")
        if not bool(torch.isfinite(static).all()):
            raise ValueError("static samples contain NaN or infinite values")
    t_start = _time.perf_counter()
    background = background.double()
    static_only = static is not None and float(hybrid_weight) == 1.0
    if members is None and not static_only:
        members = ensemble_members(
            model,
            background[0],
            background[1],
            n_members=n_members,
            std=perturbation_std,
            amplitude=amplitude,
            wavelength=wavelength,
            octaves=octaves,
            persistence=persistence,
            chunk=member_chunk,
            balance=balance,
            generator=generator,
            dtype=dtype,
            progress=progress,
        )
    anomalies = None
    if members is not None and not static_only:
        anomalies = _ensemble_anomalies(members, spread, spread_groups)
    if static is not None:
        beta = float(hybrid_weight)
        xs = static.double()
        xs = (xs - xs.mean(0, keepdim=True)) * math.sqrt(beta / (xs.shape[0] - 1))
        anomalies = xs if anomalies is None else torch.cat([anomalies * math.sqrt(1 - beta), xs])
    assert anomalies is not None
    t_members = _time.perf_counter()
    # background trajectory, background check
    full = En4DVarProblem(
        model,
        background[1],
        background[2],
        anomalies,
        slots,
        localization=localization,
        dtype=dtype,
        increment_previous=increment_previous,
    )
    with torch.no_grad():
        bg_traj = full.trajectory(background[2])
    rejected = []
    kept_slots = []
    for s in slots:
        bad = _qc(s, s.operator(bg_traj[s.step]), anomalies, qc_threshold)
        rejected.append(bad)
        keep = np.nonzero(~bad)[0]
        op = s.operator.subset(keep) if bad.any() else s.operator
        kept_slots.append(ObsSlot(s.step, op, s.value[keep], s.error[keep]))
    problem = En4DVarProblem(
        model,
        background[1],
        background[2],
        anomalies,
        kept_slots,
        localization=localization,
        dtype=dtype,
        increment_previous=increment_previous,
    )
    control, hist = minimize_cost(
        problem, max_iter=max_iter, gtol=gtol, optimizer=optimizer, progress=progress
    )
    t_min = _time.perf_counter()
    with torch.no_grad():
        inc = problem.increment(control)
        xa = background[2] + inc
        an_traj = full.trajectory(xa)
    omb = [s.value - s.operator(bg_traj[s.step]) for s in kept_slots]
    oma = [s.value - s.operator(an_traj[s.step]) for s in kept_slots]
    return TensorAnalysis(
        analysis=xa,
        trajectory=torch.stack(an_traj),
        background_trajectory=torch.stack(bg_traj),
        increment=inc,
        control=control,
        history=hist,
        omb=omb,
        oma=oma,
        qc_rejected=rejected,
        timings={
            "members_s": t_members - t_start,
            "minimisation_s": t_min - t_members,
            "total_s": _time.perf_counter() - t_start,
        },
    )


class En4DVarResult(NamedTuple):
    """Result of :func:`assimilate_4dvar`.

    Attributes
    ----------
    analysis : xarray.Dataset
        Analysis at t0 (``time`` of length 1), canonical layout.
    trajectory : xarray.Dataset
        Analysis trajectory over the window (``time`` = t0, ``prediction_timedelta``).
    increment : xarray.Dataset
        Analysis minus background at t0.
    diagnostics : xarray.Dataset
        Cost per iteration, OMB/OMA, observations used and rejected, timings.
    """

    analysis: xr.Dataset
    trajectory: xr.Dataset
    increment: xr.Dataset
    diagnostics: xr.Dataset

    def __repr__(self) -> str:
        """A summary (the four Datasets are the attributes; print them one at a time)."""
        d = self.diagnostics
        a = d.attrs
        cost = d["cost"].values if "cost" in d else np.array([np.nan])
        rejected = {
            str(r): int(n)
            for r, n in zip(d["reason"].values, d["n_rejected"].values)
            if int(n) > 0
        } if "n_rejected" in d else {}  # fmt: skip
        leads = ", ".join(_lead_str(x) for x in self.trajectory["prediction_timedelta"].values)
        lines = [
            f"En4DVarResult: {a.get('method', 'En4DVar')} analysis at "
            f"{str(self.analysis['time'].values[0])[:16]} with {a.get('model', '?')}",
            f"  analysis, increment: {', '.join(map(str, self.analysis.data_vars))}",
            f"  trajectory: leads {leads}",
            f"  B: {a.get('background_error', '?')}, {a.get('n_members', '?')} members; "
            f"localization: {a.get('localization', 'none')}",
            f"  minimisation: {a.get('iterations', '?')} iterations, J {cost[0]:.5g} -> "
            f"{cost[-1]:.5g} ({a.get('message', '')})",
            f"  observations: {a.get('n_observations_used', '?')} used, rejected "
            f"{rejected or 'none'}",
            "  attributes: analysis, trajectory, increment, diagnostics",
        ]
        return "\n".join(lines)


def _lead_str(td: Any) -> str:
    hours = pd.Timedelta(td) / pd.Timedelta("1h")
    return f"+{hours:g} h"


_LOC_CACHE: dict[Any, Localization] = {}


def _states_tensor(
    ds: Any, model: Any, *, dim: str, name: str, valid_at: Any = None
) -> torch.Tensor:
    """A Dataset of states along ``dim`` as a float64 tensor (K, C, H, W), checked.

    With ``valid_at``, a ``time`` (initial time, plus ``prediction_timedelta`` if present)
    of length one must give that valid time."""
    from ..data.channels import stack
    from ..data.schema import SchemaError

    if not isinstance(ds, xr.Dataset) or dim not in ds.dims:
        raise SchemaError(f"{name} must be a Dataset with a {dim!r} dim")
    when: dict[str, Any] = {}
    for d in ("time", "prediction_timedelta"):
        if d in ds.dims:
            if ds.sizes[d] != 1:
                raise SchemaError(f"{name} must be valid at one time; its {d!r} has {ds.sizes[d]}")
            when[d] = ds[d].values[0]
            ds = ds.isel({d: 0})
    if valid_at is not None and "time" in when:
        valid = pd.Timestamp(when["time"]) + pd.Timedelta(when.get("prediction_timedelta", 0))
        if valid != pd.Timestamp(valid_at):
            raise SchemaError(f"{name} is valid at {valid}, not at the analysis time {valid_at}")
    extra = sorted(set(ds.dims) - {dim, "level", "latitude", "longitude"})
    if extra:
        raise SchemaError(f"{name} has unexpected dims {extra}")
    if ds.sizes[dim] < 2:
        raise ValueError(f"{name} needs at least 2 along {dim!r}; got {ds.sizes[dim]}")
    model.check_dataset(ds)
    arr = stack(ds, model.channels).transpose(dim, "channel", "latitude", "longitude")
    out = torch.as_tensor(np.asarray(arr.values, dtype="float64"))
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return out


def _resolve_localization(localization: Any, model: Any) -> Localization | None:
    """Build (or reuse: the eigendecomposition is cached per grid and settings) a Localization."""
    if localization is None or isinstance(localization, Localization):
        return localization
    key = (
        repr(sorted(localization.items())) if isinstance(localization, dict) else localization,
        np.asarray(model.latitude).tobytes(),
        np.asarray(model.longitude).tobytes(),
        tuple(model.channels),
    )
    if key not in _LOC_CACHE:
        if len(_LOC_CACHE) > 8:
            _LOC_CACHE.clear()
        _LOC_CACHE[key] = _build_localization(localization, model)
    return _LOC_CACHE[key]


def _build_localization(localization: Any, model: Any) -> Localization:
    from .localization import localization as build

    if isinstance(localization, (int, float)):
        return build(model.latitude, model.longitude, length_scale=float(localization))
    if isinstance(localization, dict):
        kw = dict(localization)
        if kw.get("vertical_length_scale") is not None or kw.get("cross_variable", 1.0) != 1.0:
            kw.setdefault("channels", model.channels)
        if "n_points" in kw:
            return build(**kw)
        return build(model.latitude, model.longitude, **kw)
    raise TypeError(
        "localization must be None, a length scale in km, a dict of localization() "
        f"arguments or a Localization; got {type(localization).__name__}"
    )


def assimilate_4dvar(
    background: xr.Dataset,
    observations: xr.Dataset,
    *,
    model: Any,
    n_members: int = 200,
    localization: Any = 2000.0,
    n_slots: int = 2,
    time: Any = None,
    amplitude: Any = 0.05,
    wavelength: float = 8.0,
    octaves: int = 3,
    perturbation_std: Any = None,
    spread: Any = None,
    static_b: xr.Dataset | None = None,
    hybrid_weight: float = 0.25,
    members: xr.Dataset | None = None,
    increment_previous: bool = False,
    balance: str | None = "auto",
    qc_threshold: float | None = 5.0,
    strict: bool = False,
    max_iter: int = 50,
    gtol: float = 1e-3,
    optimizer: str = "scipy",
    member_chunk: int = 25,
    seed: int | None = 0,
    progress: bool | None = None,
) -> En4DVarResult:
    """Assimilate observations with FuXi-En4DVar (ensemble 4DVar through the model).

    Parameters
    ----------
    background : xarray.Dataset
        Canonical background with a ``time`` dim holding t0 − 12 h, t0 − 6 h and t0
        (e.g. the previous analysis and its forecast); the model's channels and grid.
    observations : xarray.Dataset
        Observation Dataset (dim ``obs``; see :mod:`xfuxi.observations.sets`).
    model : ForecastModel, str or path
        Any differentiable model following the xfuxi model contract, or a shipped name /
        checkpoint directory for :func:`xfuxi.load_model`.
    n_members : int, default 200
        Ensemble size for the background error.
    localization : float, dict, Localization or None, default 2000.0
        A Gaspari–Cohn half-width in km; a dict of
        :func:`~xfuxi.assimilation.localization.localization` arguments (e.g. with
        ``vertical_length_scale``, ``cross_variable``); a ready Localization; or None
        (no localization, control of size N). For observations at many levels (radiosondes),
        ``{"length_scale": 1500.0, "vertical_length_scale": 1.0}`` did better on the
        embedded world than the horizontal localization alone: the temperature analysis
        error fell at every level (the upper levels' most), at about 1.5× the cost per
        iteration here (see the README).
    n_slots : int, default 2
        Observation slots at t0, t0 + 6 h, ... (each observation goes to the nearest slot;
        farther than 3 h from every slot: rejected as outside the window).
    time : datetime-like, optional
        Analysis time t0 (default: the latest background time).
    amplitude : float or array (C,), default 0.05
        Perlin perturbation std as a fraction of ``perturbation_std`` per channel.
    wavelength, octaves
        Perlin settings (grid points of the coarsest octave).
    perturbation_std : xarray.Dataset or array (C,), optional
        Climatological std per variable and level; default the model's normalization std.
    spread : xarray.Dataset, array (C,) or (C, H), or "innovations", optional
        Background-error std per variable and level (e.g. from
        :func:`xfuxi.assimilation.calibration.background_error_std`): the one-step ensemble
        anomalies of each channel are rescaled to it (B variances calibrated, the
        flow-dependent correlations kept). With a ``latitude`` dim (``by_latitude=True``)
        each latitude row is rescaled to its own value. ``"innovations"`` estimates it from this
        analysis' own t0 innovations (:func:`~xfuxi.assimilation.calibration.innovation_spread`;
        adaptive, for cycling). Default: the ensemble's own spread.
    static_b : xarray.Dataset, optional
        Samples of a static background error with a ``sample`` dim (canonical layout
        otherwise, the model's channels and grid), e.g. from
        :func:`xfuxi.assimilation.calibration.forecast_error_samples`: hybrid En4DVar with
        ``B = (1 − β) B_ens + β B_static``, the static part spanning the climatological
        error structures (large scales, systematic model errors) that fresh Perlin
        perturbations do not (in 10 days of cycling on the embedded world it lowered the
        analysis error of every channel checked; see the README). ``spread`` rescales the
        ensemble part only.
    hybrid_weight : float, default 0.25
        ``β`` in (0, 1]; ``β = 1`` uses the static B alone. 0.25 did better than 0.5 in
        that cycling.
    members : xarray.Dataset, optional
        A ready-made ensemble valid at t0 with a ``number`` dim (the WeatherBench2 layout
        of :func:`xfuxi.ensemble`'s output, a ``time`` or ``prediction_timedelta`` of
        length one allowed), e.g. a FuXi-ENS forecast or cycled members: B comes from it
        instead of Perlin members (``n_members`` and the Perlin settings are then unused).
    increment_previous : bool, default False
        Roll the model from the pair (background at t0 − 6 h + increment, analysis) instead
        of (background at t0 − 6 h, analysis): for models that read a tendency from their
        two inputs, an increment at t0 alone looks like a tendency and is extrapolated.
    balance : {"auto", "geostrophic", None}, default "auto"
        Perturbations in geostrophic/hydrostatic balance (``"auto"``: when the model has
        geopotential and winds) or independent per channel (None); see
        :func:`ensemble_members`.
    qc_threshold : float or None, default 5
        Background check: reject observations with ``|y − H x_b| > k √(σo² + σb²)``.
    strict : bool, default False
        Raise instead of rejecting bad observations.
    max_iter : int, default 50
        L-BFGS iteration cap; 0 does not minimise (the analysis is the background, and the
        diagnostics give its cost and O−B).
    gtol : float, default 1e-3
        Relative gradient-norm tolerance.
    optimizer : {"scipy", "torch"}
    member_chunk : int, default 25
        Members per model call.
    seed : int, optional
        Seed of the perturbations.
    progress : bool, optional
        Progress bars (default: the global option).

    Returns
    -------
    En4DVarResult
        ``(analysis, trajectory, increment, diagnostics)``.

    Raises
    ------
    SchemaError
        Background without the needed times, channels or grid.
    ObservationError
        Malformed observations, or bad ones with ``strict=True``.

    Notes
    -----
    FuXi-En4DVar (Li et al. 2024), DESIGN.md §4: ``x = x_b + X_b w`` (or
    ``x_b + Σ X_b,i ∘ L α_i``), ``J = ½‖w‖² + ½ Σ_k ‖R_k^{-1/2}(y_k − H_k M_k x)‖²``,
    autodiff gradients, L-BFGS. σb in the background check is the t0 ensemble spread at
    the observation point (used for every slot).

    Examples
    --------
    >>> import xarray as xr, pandas as pd
    >>> from xfuxi.models.lorenz96 import lorenz96_model
    >>> from xfuxi.observations.sets import make_observations
    >>> m = lorenz96_model(n_variables=8)
    >>> t = pd.date_range("2000-01-01", periods=3, freq="6h")
    >>> bg = xr.Dataset({"x": (("time", "latitude", "longitude"),
    ...                  8.0 + np.sin(np.arange(24.0)).reshape(3, 1, 8))},
    ...                 coords={"time": t, "latitude": [0.0], "longitude": m.longitude})
    >>> obs = make_observations([9.0], error=0.5, time=t[-1], latitude=0.0, longitude=90.0,
    ...                         variable="x")
    >>> res = assimilate_4dvar(bg, obs, model=m, n_members=10, localization=None,
    ...                        perturbation_std=[1.0], amplitude=0.5, wavelength=1,
    ...                        progress=False)
    >>> res.analysis["x"].dims, int(res.diagnostics["n_used"].sum())
    (('time', 'latitude', 'longitude'), 1)
    """
    from ..data.channels import stack, unstack
    from ..data.schema import SchemaError, canonical_order
    from ..forecasting.edge import forecast_dataset
    from ..observations.sets import screen_observations
    from .calibration import channel_values, innovation_spread, spread_values, wind_pairs

    t_wall = _time.perf_counter()
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        from ..models.registry import load_model

        model = load_model(model)
    from ..models.cascade import reject_cascade

    reject_cascade(model)
    if n_slots < 1:
        raise ValueError(f"n_slots must be >= 1, got {n_slots}")
    if not isinstance(background, xr.Dataset) or "time" not in background.dims:
        raise SchemaError("background must be a Dataset with a 'time' dim")
    model.check_dataset(background)
    check_plausible(background, model)  # a state: its values must fit the model's statistics
    step = pd.Timedelta(model.timestep)
    times = pd.DatetimeIndex(background["time"].values)
    t0 = times.max() if time is None else pd.Timestamp(time)
    need = [t0 - 2 * step, t0 - step, t0]
    missing = [str(t) for t in need if t not in times]
    if missing:
        raise SchemaError(
            f"background needs times {[str(t) for t in need]} (t0 - 12 h, t0 - 6 h, t0); "
            f"missing {missing}"
        )
    arr = stack(background.sel(time=need), model.channels).transpose(
        "time", "channel", "latitude", "longitude"
    )
    bg = torch.as_tensor(np.asarray(arr.values, dtype="float64"))
    if not torch.isfinite(bg).all():
        raise SchemaError("background contains NaN or infinite values")
    # perturbation std
    pstd = channel_values(
        model.stats.std if perturbation_std is None else perturbation_std,
        model.channels,
        name="perturbation_std",
    )
    adaptive = isinstance(spread, str)
    if adaptive and spread != "innovations":
        raise ValueError(f"spread must be a Dataset, an array or 'innovations'; got {spread!r}")
    target_spread = (
        None
        if spread is None or adaptive
        else spread_values(spread, model.channels, model.latitude, name="spread")
    )
    slot_times = np.array([t0 + k * step for k in range(n_slots)], dtype="M8[ns]")
    used, op, reason, counts = screen_observations(
        observations,
        channels=model.channels,
        latitude=model.latitude,
        longitude=model.longitude,
        slot_times=slot_times,
        strict=strict,
    )
    slot_of = used["slot"].values
    slots = []
    order = []
    for k in range(n_slots):
        idx = np.nonzero(slot_of == k)[0]
        if idx.size == 0:
            continue
        order.append(idx)
        slots.append(
            ObsSlot(
                k,
                op.subset(idx),
                torch.as_tensor(used["value"].values[idx]),
                torch.as_tensor(used["error"].values[idx]),
            )
        )
    if not slots:
        raise ValueError(f"no usable observation in the window; rejected: {counts}")
    if adaptive:
        target_spread = innovation_spread(used, op, bg[2], model.channels)
    static = (
        None if static_b is None else _states_tensor(static_b, model, dim="sample", name="static_b")
    )
    given = (
        None
        if members is None
        else _states_tensor(members, model, dim="number", name="members", valid_at=t0)
    )
    loc = _resolve_localization(localization, model)
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    res = en4dvar_analysis(
        model,
        bg,
        slots,
        n_members=n_members,
        perturbation_std=pstd,
        amplitude=amplitude,
        wavelength=wavelength,
        octaves=octaves,
        localization=loc,
        members=given,
        spread=target_spread,
        spread_groups=wind_pairs(model.channels),
        static=static,
        hybrid_weight=hybrid_weight,
        increment_previous=increment_previous,
        balance=balance,
        qc_threshold=qc_threshold,
        max_iter=max_iter,
        gtol=gtol,
        optimizer=optimizer,
        member_chunk=member_chunk,
        generator=gen,
        progress=progress,
    )
    # --- back to xarray ---------------------------------------------------------------------
    t0_64 = np.array([t0], dtype="M8[ns]")
    attrs = {
        "model": getattr(model, "name", type(model).__name__),
        "method": "FuXi-En4DVar",
        "n_members": int(n_members if given is None else given.shape[0]),
        "localization": "none" if loc is None else loc.description,
        "perturbations": str(_resolve_balance(balance, model) or "independent")
        + f" Perlin, amplitude {amplitude}, wavelength {wavelength:g}"
        if given is None
        else "given ensemble",
        "background_error": "ensemble"
        if static is None
        else f"hybrid: {1 - hybrid_weight:g} ensemble + {hybrid_weight:g} static "
        f"({static.shape[0]} samples)",
    }
    traj = forecast_dataset(
        res.trajectory[None],
        model=model,
        init_times=t0_64,
        leads=np.array([k * step for k in range(res.trajectory.shape[0])], dtype="m8[ns]"),
        attrs=attrs,
    )
    analysis = traj.isel(prediction_timedelta=0, drop=True)
    inc_da = xr.DataArray(
        res.increment.numpy()[None],
        dims=("time", "channel", "latitude", "longitude"),
        coords={"time": t0_64, "latitude": model.latitude, "longitude": model.longitude},
    )
    increment = unstack(inc_da, model.channels)
    increment = increment.transpose(*canonical_order(increment.dims))
    increment.attrs = dict(attrs, description="analysis minus background at t0")
    for ds in (analysis, increment):
        for v in ds.data_vars:
            if "units" in background[v].attrs:
                ds[v].attrs["units"] = background[v].attrs["units"]
    # diagnostics
    qc_flags = np.zeros(used.sizes["obs"], dtype=bool)
    for idx, bad in zip(order, res.qc_rejected):
        qc_flags[idx] = bad
    counts["background_check"] = int(qc_flags.sum())
    keep_final = np.nonzero(~qc_flags)[0]
    final = used.isel(obs=keep_final)
    with torch.no_grad():
        hb = op(res.background_trajectory).numpy()  # (K, m_used)
        ha = op(res.trajectory).numpy()
    cols = np.arange(used.sizes["obs"])
    omb = (used["value"].values - hb[slot_of, cols])[keep_final]
    oma = (used["value"].values - ha[slot_of, cols])[keep_final]
    obs_part = final.rename(
        {"value": "observation", "error": "observation_error", "slot": "obs_slot"}
    )
    obs_part["omb"] = ("obs", omb)
    obs_part["oma"] = ("obs", oma)
    groups = [
        f"{v}" if np.isnan(lv) else f"{v}@{lv:g}"
        for v, lv in zip(final["variable"].values, final["level"].values)
    ]
    names = sorted(set(groups))
    gidx = np.array([names.index(g) for g in groups], dtype=int)
    n_used = np.bincount(gidx, minlength=len(names))

    def group_stat(x: np.ndarray, f: Any) -> np.ndarray:
        return np.array([f(x[gidx == i]) for i in range(len(names))])

    hist = res.history
    k_all = list(range(n_slots))
    jo = np.zeros((len(hist.records), n_slots))
    present = [s.step for s in slots]
    for i, r in enumerate(hist.records):
        for s, val in zip(present, r.cost_observation):
            jo[i, s] = val
    diag = xr.Dataset(
        {
            "cost": ("iteration", [r.cost for r in hist.records]),
            "cost_background": ("iteration", [r.cost_background for r in hist.records]),
            "cost_observation": (("iteration", "slot"), jo),
            "gradient_norm": ("iteration", [r.gradient_norm for r in hist.records]),
            "omb_rms": ("group", group_stat(omb, lambda a: np.sqrt(np.mean(a**2)))),
            "oma_rms": ("group", group_stat(oma, lambda a: np.sqrt(np.mean(a**2)))),
            "omb_mean": ("group", group_stat(omb, np.mean)),
            "oma_mean": ("group", group_stat(oma, np.mean)),
            "n_used": ("group", n_used),
            "n_rejected": ("reason", [counts[r] for r in REJECT_REASONS]),
        },
        coords={
            "iteration": np.arange(len(hist.records)),
            "slot": ("slot", k_all),
            "slot_time": ("slot", slot_times),
            "group": names,
            "reason": list(REJECT_REASONS),
        },
    )
    diag = xr.merge([diag, obs_part], compat="override")
    diag.attrs.update(
        attrs,
        analysis_time=str(t0),
        iterations=len(hist.records) - 1,
        n_evaluations=hist.n_evaluations,
        converged=int(hist.converged),
        message=hist.message,
        member_time_s=res.timings["members_s"],
        minimisation_time_s=res.timings["minimisation_s"],
        wall_time_s=_time.perf_counter() - t_wall,
        n_observations=int(observations.sizes["obs"]),
        n_observations_used=int(final.sizes["obs"]),
    )
    log.info(
        "En4DVar at %s: %d obs used, %d rejected, %d iterations, J %.4g -> %.4g",
        t0,
        final.sizes["obs"],
        int(sum(counts.values())),
        len(hist.records) - 1,
        hist.records[0].cost,
        hist.records[-1].cost,
    )
    return En4DVarResult(analysis, traj, increment, diag)
