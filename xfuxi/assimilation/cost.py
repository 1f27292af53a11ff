"""The En4DVar cost ``J(w)`` as a differentiable function of the control vector.

::

    J(w) = ½ wᵀw + ½ Σ_k (y_k − H_k(M_k(x)))ᵀ R_k⁻¹ (y_k − H_k(M_k(x))),
    x = x_b + X_b w                           (no localization; w has N entries)
    x = x_b + Σ_i X_b,i ∘ (L α_i),  C = L Lᵀ  (localization; one α_i per member)

``M_k`` is the model rolled ``k`` steps from the analysis (its earlier input, at t0 − 6 h,
taken from the background), ``H_k`` the (linear, differentiable) observation operators of
slot ``k`` and ``R_k`` diagonal. See the definitions in the documentation (docs/design.md,
section En4DVar).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..models.rollout import model_device, model_dtype
from .localization import Localization

__all__ = ["En4DVarProblem", "ObsSlot"]


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
        False: the earlier input is the background (docs/design.md, section En4DVar).
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
