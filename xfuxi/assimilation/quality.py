"""Quality control inside En4DVar: the background check.

The observation sets' own screening (NaN values, unknown variables, outside the grid or the
window, copies of an observation) lives in
:func:`xfuxi.observations.sets.screen_observations`; this module adds what needs the
background: the check of each innovation against the ensemble spread.
"""

from __future__ import annotations

import numpy as np
import torch

from ..observations.sets import ObservationsRejectedError
from .cost import ObsSlot

__all__ = ["background_check", "check_not_all_rejected"]


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
    """
    if threshold is None:
        return np.zeros(slot.value.shape[0], dtype=bool)
    if state is None:
        sb2 = (slot.operator(anomalies) ** 2).sum(0)
    else:
        n = anomalies.shape[0]
        scale = max(n - 1, 1) ** 0.5
        members = state.to(anomalies.dtype) + scale * anomalies
        sb2 = ((slot.operator(members) - hx) ** 2).sum(0) / scale**2
    bound = threshold * torch.sqrt(slot.error**2 + sb2)
    return ((slot.value - hx).abs() > bound).numpy()
