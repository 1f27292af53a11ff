"""Quality control inside En4DVar: the background check.

The observation sets' own screening (NaN values, unknown variables, outside the grid or the
window, copies of an observation) lives in
:func:`xfuxi.observations.sets.screen_observations`; this module adds what needs the
background: the check of each innovation against the ensemble spread.
"""

from __future__ import annotations

import numpy as np
import torch

from .cost import ObsSlot

__all__ = ["background_check"]


def background_check(
    slot: ObsSlot, hx: torch.Tensor, anomalies: torch.Tensor, threshold: float | None
) -> np.ndarray:
    """Reject ``|y − H x_b| > k √(σo² + σb²)``, σb from the t0 ensemble; bool mask per obs.

    ``threshold`` ``k`` None: nothing is rejected.
    """
    if threshold is None:
        return np.zeros(slot.value.shape[0], dtype=bool)
    sb2 = (slot.operator(anomalies) ** 2).sum(0)
    bound = threshold * torch.sqrt(slot.error**2 + sb2)
    return ((slot.value - hx).abs() > bound).numpy()
