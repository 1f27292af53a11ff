"""Quality control inside En4DVar: the background check.

The observation sets' own screening (NaN values, unknown variables, outside the grid or the
window, copies of an observation) lives in
:func:`xfuxi.observations.sets.screen_observations`; this module adds what needs the
background: the check of each innovation against the ensemble spread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..observations.sets import ObservationsRejectedError
from .cost import ObsSlot

__all__ = ["background_check", "check_not_all_rejected", "check_operators", "operator_values"]

#: what an observation operator's optional methods do, for the errors that ask for them
OPERATOR_METHODS = {
    "subset": "subset(keep) returns the operator of the rows keep (an integer index array)",
    "weights": (
        "weights() returns an xfuxi.observations.interpolation.ObservationWeights (index "
        "and weight (m, k) of the grid values each row reads: where it is, for the "
        "localization)"
    ),
}


def check_operators(slots: Sequence[ObsSlot], needs: Mapping[str, str], caller: str) -> None:
    """Refuse a slot whose operator is not callable or lacks a method ``caller`` uses.

    ``needs`` maps a method name (``"subset"``, ``"weights"``) to what ``caller`` uses it
    for. The observation-operator contract is in :class:`~xfuxi.assimilation.cost.ObsSlot`.

    Raises
    ------
    TypeError
        An operator that is not callable, or that lacks a needed method (naming it).

    Examples
    --------
    >>> op = lambda x: x.reshape(*x.shape[:-3], -1)[..., :2]
    >>> slot = ObsSlot(0, op, torch.zeros(2), torch.ones(2))
    >>> check_operators([slot], {}, "en4dvar_analysis")
    >>> check_operators([slot], {"subset": "the background check"}, "en4dvar_analysis")
    Traceback (most recent call last):
    ...
    TypeError: en4dvar_analysis: the observation operator ... has no subset method: ...
    """
    for s in slots:
        op = s.operator
        if not callable(op):
            raise TypeError(
                f"{caller}: the observation operator of the slot at step {s.step} must be "
                f"callable, states (..., C, H, W) -> values (..., m); got {type(op).__name__}"
            )
        missing = [name for name in needs if not callable(getattr(op, name, None))]
        if missing:
            raise TypeError(
                f"{caller}: the observation operator of the slot at step {s.step} "
                f"({type(op).__name__}) has no {' and no '.join(missing)} method: "
                + "; ".join(f"{OPERATOR_METHODS[n]}, used for {needs[n]}" for n in missing)
                + " (the operator contract: xfuxi.assimilation.cost.ObsSlot)"
            )


def operator_values(slot: ObsSlot, states: torch.Tensor, what: str) -> torch.Tensor:
    """``slot.operator(states)``, checked: a tensor ``(..., m)`` of finite values.

    ``states`` is ``(..., C, H, W)`` (one state, or members with a leading dim); ``what``
    names them in the errors (e.g. ``"the background"``).

    Raises
    ------
    TypeError
        The operator returned something that is not a tensor.
    ValueError
        Its output is not ``(..., m)`` for the slot's ``m`` observations (an operator that
        drops the leading member dim, for instance), or holds NaN or infinite values (naming
        the observations).

    Examples
    --------
    >>> slot = ObsSlot(0, lambda x: x.reshape(-1)[:2], torch.zeros(2), torch.ones(2))
    >>> operator_values(slot, torch.ones(1, 2, 2), "the background").tolist()
    [1.0, 1.0]
    >>> operator_values(slot, torch.ones(3, 1, 2, 2), "the members")
    Traceback (most recent call last):
    ...
    ValueError: the observation operator of the slot at step 0 (function) maps the members ...
    """
    out = slot.operator(states)
    name = type(slot.operator).__name__
    m = int(slot.value.shape[0])
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"the observation operator of the slot at step {slot.step} ({name}) returned a "
            f"{type(out).__name__} for {what}; it must return a torch tensor (..., m)"
        )
    expected = (*states.shape[:-3], m)
    if tuple(out.shape) != expected:
        raise ValueError(
            f"the observation operator of the slot at step {slot.step} ({name}) maps "
            f"{what} {tuple(states.shape)} to {tuple(out.shape)}; expected {expected}: "
            f"states (..., C, H, W) -> values (..., m) for the slot's m = {m} observations, "
            "keeping the leading (member) dims"
        )
    bad = ~torch.isfinite(out.detach())
    if bool(bad.any()):
        rows = np.flatnonzero(bad.reshape(-1, m).any(0).cpu().numpy())
        shown = rows[:10].tolist()
        state_note = (
            ""
            if bool(torch.isfinite(states.detach()).all())
            else f" ({what} holds NaN or infinite values itself)"
        )
        raise ValueError(
            f"the observation operator of the slot at step {slot.step} ({name}) gives NaN "
            f"or infinite values at {what} for {rows.size} of its {m} observations "
            f"(indices {shown}{' ...' if rows.size > 10 else ''}){state_note}: they can be "
            "neither checked nor assimilated. Remove those observations from the slot, or "
            "make the operator finite there"
        )
    return out


def check_not_all_rejected(rejected: list[np.ndarray], threshold: float, option: str) -> None:
    """Raise :class:`~xfuxi.observations.sets.ObservationsRejectedError` where every
    observation failed the background check (``rejected``: a mask per slot; ``option``
    names the setting that loosens the check).

    >>> check_not_all_rejected([np.array([True, False])], 5.0, "QualityControl")
    >>> check_not_all_rejected([np.array([True, True])], 5.0, "QualityControl")
    Traceback (most recent call last):
    ...
    xfuxi.observations.sets.ObservationsRejectedError: all 2 observations failed ...
    """
    n_in = sum(int(r.size) for r in rejected)
    if n_in > 0 and all(bool(r.all()) for r in rejected):
        raise ObservationsRejectedError(
            f"all {n_in} observations failed the background check "
            f"(|y - H x_b| > {threshold:g} sqrt(σo² + σb²)): nothing would be "
            "assimilated. Check the observations' values, units and errors, or loosen the "
            f"check ({option}(qc_threshold=...); None disables it)"
        )


def background_check(
    slot: ObsSlot,
    hx: torch.Tensor,
    anomalies: torch.Tensor,
    threshold: float | None,
    *,
    state: torch.Tensor | None = None,
) -> np.ndarray:
    """Reject ``|y − H x_b| > k √(σo² + σb²)``, σb from the t0 ensemble; bool mask per obs.

    ``threshold`` ``k`` None: nothing is rejected. With ``state`` (the background at the
    slot's time) the operator is applied to the members ``state + √(N − 1) X_b,i``, not to
    the anomalies, so that a nonlinear operator (radiances) gets the spread of ``H(x)``:
    ``σb² = Σ_i (H(x_b + √(N−1) X_b,i) − H(x_b))² / (N − 1)``, equal to ``Σ_i (H X_b,i)²``
    for a linear ``H``. Without ``state`` the operator is applied to the anomalies (linear
    operators only).

    Raises
    ------
    TypeError, ValueError
        ``hx`` is not ``(m,)`` or not finite, or the operator's output for the members (or
        anomalies) is not ``(N, m)`` or not finite (:func:`operator_values`): NaN compares
        false with the bound, so such observations passed the check.
    """
    m = int(slot.value.shape[0])
    if not isinstance(hx, torch.Tensor) or tuple(hx.shape) != (m,):
        got = tuple(hx.shape) if isinstance(hx, torch.Tensor) else type(hx).__name__
        raise ValueError(
            f"background_check (slot at step {slot.step}): hx must be the operator's values "
            f"at the background, ({m},); got {got}"
        )
    if not bool(torch.isfinite(hx.detach()).all()):
        raise ValueError(
            f"background_check (slot at step {slot.step}): hx, the operator's values at the "
            f"background, holds NaN or infinite values at observations "
            f"{np.flatnonzero(~torch.isfinite(hx.detach()).cpu().numpy())[:10].tolist()}"
        )
    if threshold is None:
        return np.zeros(m, dtype=bool)
    if state is None:
        sb2 = (operator_values(slot, anomalies, "the anomalies") ** 2).sum(0)
    else:
        n = anomalies.shape[0]
        scale = max(n - 1, 1) ** 0.5
        members = state.to(anomalies.dtype) + scale * anomalies
        hm = operator_values(slot, members, "the background members")
        sb2 = ((hm - hx) ** 2).sum(0) / scale**2
    bound = threshold * torch.sqrt(slot.error**2 + sb2)
    return ((slot.value - hx).abs() > bound).numpy()
