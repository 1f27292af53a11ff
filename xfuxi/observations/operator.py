"""The observation operator H, torch view: model grid → observation points, differentiable.

An :class:`ObservationOperator` maps model states ``(..., C, H, W)`` (channels as the model
stacks them, latitude ascending, longitude ascending in 0..360) to the values at ``m``
observations ``(..., m)``. It is linear, so it is stored as a gather of at most 8 grid values
per observation with fixed weights, and it is differentiable by construction.

The weights are computed once, in NumPy, by :mod:`xfuxi.observations.interpolation` (which
defines the interpolation: bilinear, on a global grid periodic in longitude and across the
pole with the sign of wind components reversed, linear in log-pressure between levels;
nothing beyond the edges of a regional grid); this module is their
torch view, used by assimilation. Verification uses the same weights without torch, so O−B
from an analysis' diagnostics and from :func:`xfuxi.innovations` agree.

Observations that cannot be interpolated are reported with a reason (see
:data:`REJECT_REASONS`); :func:`build_operator` returns the mask of usable ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..docstrings import with_signature_of
from .interpolation import (
    REJECT_REASONS,
    VECTOR_COMPONENTS,
    ObservationWeights,
    fill_doc,
    observation_weights,
)

__all__ = ["REJECT_REASONS", "VECTOR_COMPONENTS", "ObservationOperator", "build_operator"]


class ObservationOperator(torch.nn.Module):
    """Linear interpolation from a model grid to observation points (a fixed gather).

    Built by :func:`build_operator`. ``op(x)`` with ``x`` of shape ``(..., C, H, W)``
    returns ``(..., m)``. :meth:`weights` is the NumPy view of the same operator.

    Parameters
    ----------
    index : array (m, k) of int
        Flat indices into ``C * H * W``.
    weight : array (m, k)
        Interpolation weights (zero for padding).
    state_shape : tuple (C, H, W)

    Notes
    -----
    A value of zero weight does not reach ``op(x)`` nor its gradient: a NaN there (SST over
    land read by the padding of an observation on another channel) leaves them finite.
    """

    def __init__(self, index: Any, weight: Any, state_shape: Sequence[int]) -> None:
        super().__init__()
        numpy_view = ObservationWeights(
            np.asarray(index.cpu() if torch.is_tensor(index) else index),
            np.asarray(weight.cpu() if torch.is_tensor(weight) else weight, dtype="float64"),
            tuple(state_shape),  # type: ignore[arg-type]
        )
        self.state_shape = numpy_view.state_shape
        self.register_buffer("index", torch.as_tensor(numpy_view.index), persistent=False)
        self.register_buffer("weight", torch.as_tensor(numpy_view.weight), persistent=False)

    @classmethod
    def from_weights(cls, weights: ObservationWeights) -> ObservationOperator:
        """The torch view of NumPy :class:`~xfuxi.observations.interpolation.ObservationWeights`."""
        return cls(weights.index, weights.weight, weights.state_shape)

    def weights(self) -> ObservationWeights:
        """The NumPy view of this operator (the same index and weights)."""
        return ObservationWeights(
            self.index.cpu().numpy(), self.weight.cpu().numpy(), self.state_shape
        )

    @property
    def n_obs(self) -> int:
        return int(self.index.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-3:]) != self.state_shape:
            raise ValueError(f"expected states (..., {self.state_shape}); got {tuple(x.shape)}")
        flat = x.reshape(*x.shape[:-3], math.prod(self.state_shape))  # also for 0 states
        vals = flat[..., self.index]
        weight = self.weight.to(vals.dtype)
        # as ObservationWeights.apply: a non-finite value of zero weight (padding reading
        # channel 0, the neighbour of an observation on a grid point) is zeroed *before* the
        # product, since NaN * 0 is NaN and would also make the gradient NaN; every other
        # value is used as it is, so H x of complete states is unchanged
        unused = (weight == 0) & ~torch.isfinite(vals)
        vals = torch.where(unused, vals.new_zeros(()), vals)
        return (vals * weight).sum(-1)

    def matrix(self) -> np.ndarray:
        """The operator as a dense ``(m, C*H*W)`` matrix (for tests and small problems)."""
        return self.weights().matrix()

    def subset(self, keep: Any) -> ObservationOperator:
        """Operator restricted to the observations selected by ``keep`` (bool mask or index)."""
        keep_t = torch.as_tensor(np.asarray(keep))
        return ObservationOperator(self.index[keep_t], self.weight[keep_t], self.state_shape)


@fill_doc
@with_signature_of(observation_weights)
def build_operator(
    channels: Sequence[tuple[str, float | None]], latitude: Any, longitude: Any, /, **obs: Any
) -> tuple[ObservationOperator, np.ndarray]:
    """Build the interpolation operator for observations on a model grid.

    Parameters
    ----------
    {{channels}}
    latitude, longitude : array-like
        Model grid, latitude ascending, longitude ascending (0..360).
    {{observations}}

    Returns
    -------
    operator : ObservationOperator
    {{operator_outputs}}

    Raises
    ------
    ValueError
        If the grid is not ascending, or the observation arrays differ in size.

    Notes
    -----
    The torch view of :func:`xfuxi.observations.interpolation.observation_weights`:
    bilinear in latitude/longitude; on a global grid periodic in longitude and across the
    pole poleward of the outermost rows (wind components change sign across the pole), on a
    regional one ``"outside_grid"`` beyond its edges (see
    :func:`~xfuxi.observations.interpolation.horizontal_weights`); linear in ln p between
    the two model levels that bracket the observation. See docs/design.md.

    Examples
    --------
    >>> lat, lon = np.array([-45.0, 45.0]), np.arange(4) * 90.0
    >>> op, why = build_operator([("temperature", 500.0)], lat, lon, obs_variable=["temperature"],
    ...                          obs_latitude=[0.0], obs_longitude=[315.0], obs_level=[500.0])
    >>> x = torch.arange(8.0).reshape(1, 2, 4)
    >>> float(op(x)[0]), why.tolist()   # mean of 3, 0, 7, 4
    (3.5, [''])
    """
    lat_grid, lon_grid = _model_grid(latitude, longitude)
    weights, reason = observation_weights(channels, lat_grid, lon_grid, **obs)
    return ObservationOperator.from_weights(weights), reason


def _model_grid(latitude: Any, longitude: Any) -> tuple[np.ndarray, np.ndarray]:
    """The model grid as :func:`build_operator` takes it (longitude modulo 360), checked:
    the states it is applied to are stacked in this canonical order."""
    lat_grid = np.asarray(latitude, dtype="float64")
    lon_grid = np.asarray(longitude, dtype="float64") % 360.0
    if lat_grid.ndim != 1 or np.any(np.diff(lat_grid) <= 0):
        raise ValueError("latitude of the model grid must be 1-D and strictly ascending")
    if lon_grid.ndim != 1 or np.any(np.diff(lon_grid) <= 0):
        raise ValueError("longitude of the model grid must be 1-D, ascending within 0..360")
    return lat_grid, lon_grid
