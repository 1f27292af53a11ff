"""Differentiable observation operators: model grid → observation points.

An :class:`ObservationOperator` maps model states ``(..., C, H, W)`` (channels as the model
stacks them, latitude ascending, longitude ascending in 0..360) to the values at ``m``
observations ``(..., m)``. It is linear, so it is stored as a gather of at most 8 grid values
per observation with fixed weights, and it is differentiable by construction:

* horizontally, bilinear in latitude and longitude; longitude is periodic (an observation
  between the last and the first meridian uses both); poleward of the last latitude row the
  interpolation runs *across the pole* to the row at longitude + 180°, with the sign of
  wind components reversed there (the local east/north axes turn over at the pole);
* vertically, an observation on a model pressure level uses that level; one between two
  levels of its variable is linear in log-pressure; single-level variables have level NaN.

Observations that cannot be interpolated are reported with a reason (see
:data:`REJECT_REASONS`); :func:`build_operator` returns the mask of usable ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["REJECT_REASONS", "VECTOR_COMPONENTS", "ObservationOperator", "build_operator"]

#: reasons for which an observation is not used, in the order they are checked
REJECT_REASONS: tuple[str, ...] = (
    "nan_value",
    "bad_error",
    "unknown_variable",
    "unknown_level",
    "outside_grid",
    "outside_window",
    "background_check",
)

#: variables whose sign flips when interpolating across a pole (components in a local frame)
VECTOR_COMPONENTS: frozenset[str] = frozenset(
    {
        "u_component_of_wind",
        "v_component_of_wind",
        "10m_u_component_of_wind",
        "10m_v_component_of_wind",
        "100m_u_component_of_wind",
        "100m_v_component_of_wind",
    }
)


class ObservationOperator(torch.nn.Module):
    """Linear interpolation from a model grid to observation points (a fixed gather).

    Built by :func:`build_operator`. ``op(x)`` with ``x`` of shape ``(..., C, H, W)``
    returns ``(..., m)``.

    Parameters
    ----------
    index : array (m, k) of int
        Flat indices into ``C * H * W``.
    weight : array (m, k)
        Interpolation weights (zero for padding).
    state_shape : tuple (C, H, W)
    """

    def __init__(self, index: Any, weight: Any, state_shape: Sequence[int]) -> None:
        super().__init__()
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        weight = torch.as_tensor(np.asarray(weight, dtype="float64"))
        if index.shape != weight.shape or index.ndim != 2:
            raise ValueError(f"index {tuple(index.shape)} and weight {tuple(weight.shape)} differ")
        self.state_shape = tuple(int(s) for s in state_shape)
        size = int(np.prod(self.state_shape))
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= size):
            raise ValueError(f"index out of range for a state of shape {self.state_shape}")
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("weight", weight, persistent=False)

    @property
    def n_obs(self) -> int:
        return int(self.index.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-3:]) != self.state_shape:
            raise ValueError(f"expected states (..., {self.state_shape}); got {tuple(x.shape)}")
        flat = x.reshape(*x.shape[:-3], -1)
        vals = flat[..., self.index]
        return (vals * self.weight.to(vals.dtype)).sum(-1)

    def matrix(self) -> np.ndarray:
        """The operator as a dense ``(m, C*H*W)`` matrix (for tests and small problems)."""
        size = int(np.prod(self.state_shape))
        out = np.zeros((self.n_obs, size))
        rows = np.repeat(np.arange(self.n_obs), self.index.shape[1])
        np.add.at(out, (rows, self.index.numpy().ravel()), self.weight.numpy().ravel())
        return out

    def subset(self, keep: Any) -> ObservationOperator:
        """Operator restricted to the observations selected by ``keep`` (bool mask or index)."""
        keep_t = torch.as_tensor(np.asarray(keep))
        return ObservationOperator(self.index[keep_t], self.weight[keep_t], self.state_shape)


def _horizontal(
    lat_grid: np.ndarray, lon_grid: np.ndarray, lat: float, lon: float
) -> list[tuple[int, int, float, bool]] | None:
    """Bilinear stencil: list of (row, col, weight, across_pole) or None if outside the grid."""
    h, w = lat_grid.size, lon_grid.size
    if not (np.isfinite(lat) and np.isfinite(lon)) or lat < -90 or lat > 90:
        return None
    lon = float(lon) % 360.0
    # longitude: periodic linear weights
    if w == 1:
        if not np.isclose(lon, lon_grid[0] % 360.0):
            return None
        cols = [(0, 1.0)]
    else:
        ext = np.append(lon_grid, lon_grid[0] + 360.0)
        if lon < ext[0]:
            lon += 360.0
        i = int(np.searchsorted(ext, lon, side="right") - 1)
        i = min(max(i, 0), w - 1)
        t = (lon - ext[i]) / (ext[i + 1] - ext[i])
        cols = [(i, 1.0 - t), ((i + 1) % w, t)]

    def across(col_weights: list[tuple[int, float]], lon_shift: float):
        # the same row at longitude + 180 degrees, interpolated in longitude
        lon2 = (lon + lon_shift) % 360.0
        if w == 1:
            return [(0, 1.0)]
        ext = np.append(lon_grid, lon_grid[0] + 360.0)
        if lon2 < ext[0]:
            lon2 += 360.0
        i = int(np.searchsorted(ext, lon2, side="right") - 1)
        i = min(max(i, 0), w - 1)
        t = (lon2 - ext[i]) / (ext[i + 1] - ext[i])
        return [(i, 1.0 - t), ((i + 1) % w, t)]

    if h == 1:
        if not np.isclose(lat, lat_grid[0]):
            return None
        return [(0, c, cw, False) for c, cw in cols]
    out: list[tuple[int, int, float, bool]] = []
    if lat > lat_grid[-1]:  # across the north pole
        if np.isclose(lat_grid[-1], 90.0):
            return [(h - 1, c, cw, False) for c, cw in cols]
        t = (lat - lat_grid[-1]) / (2.0 * (90.0 - lat_grid[-1]))
        out += [(h - 1, c, (1 - t) * cw, False) for c, cw in cols]
        out += [(h - 1, c, t * cw, True) for c, cw in across(cols, 180.0)]
        return out
    if lat < lat_grid[0]:  # across the south pole
        if np.isclose(lat_grid[0], -90.0):
            return [(0, c, cw, False) for c, cw in cols]
        t = (lat_grid[0] - lat) / (2.0 * (lat_grid[0] + 90.0))
        out += [(0, c, (1 - t) * cw, False) for c, cw in cols]
        out += [(0, c, t * cw, True) for c, cw in across(cols, 180.0)]
        return out
    j = int(np.searchsorted(lat_grid, lat, side="right") - 1)
    j = min(max(j, 0), h - 2)
    t = (lat - lat_grid[j]) / (lat_grid[j + 1] - lat_grid[j])
    out += [(j, c, (1 - t) * cw, False) for c, cw in cols]
    out += [(j + 1, c, t * cw, False) for c, cw in cols]
    return out


def build_operator(
    channels: Sequence[tuple[str, float | None]],
    latitude: Any,
    longitude: Any,
    *,
    obs_variable: Sequence[str],
    obs_latitude: Any,
    obs_longitude: Any,
    obs_level: Any,
) -> tuple[ObservationOperator, np.ndarray]:
    """Build the interpolation operator for observations on a model grid.

    Parameters
    ----------
    channels : sequence of (variable, level)
        The model's channel order (level in hPa or None).
    latitude, longitude : array-like
        Model grid, latitude ascending, longitude ascending (0..360).
    obs_variable, obs_latitude, obs_longitude, obs_level : array-like (m,)
        Observation metadata; ``obs_level`` NaN for single-level variables.

    Returns
    -------
    operator : ObservationOperator
        For the *usable* observations only (in their original order).
    reason : numpy.ndarray of str (m,)
        ``""`` for usable observations, else ``"unknown_variable"``, ``"unknown_level"``
        (no such level, or between none of the variable's levels) or ``"outside_grid"``.

    Notes
    -----
    Bilinear in latitude/longitude, periodic in longitude, across the pole poleward of the
    outermost rows (wind components change sign across the pole); linear in ln p between
    the two model levels that bracket the observation.

    Examples
    --------
    >>> lat, lon = np.array([-45.0, 45.0]), np.arange(4) * 90.0
    >>> op, why = build_operator([("temperature", 500.0)], lat, lon, obs_variable=["temperature"],
    ...                          obs_latitude=[0.0], obs_longitude=[315.0], obs_level=[500.0])
    >>> x = torch.arange(8.0).reshape(1, 2, 4)
    >>> float(op(x)[0]), why.tolist()   # mean of 3, 0, 7, 4
    (3.5, [''])
    """
    lat_grid = np.asarray(latitude, dtype="float64")
    lon_grid = np.asarray(longitude, dtype="float64") % 360.0
    if lat_grid.ndim != 1 or np.any(np.diff(lat_grid) <= 0):
        raise ValueError("latitude of the model grid must be 1-D and strictly ascending")
    if lon_grid.ndim != 1 or np.any(np.diff(lon_grid) <= 0):
        raise ValueError("longitude of the model grid must be 1-D, ascending within 0..360")
    h, w = lat_grid.size, lon_grid.size
    var = np.asarray(obs_variable).astype(str)
    olat = np.asarray(obs_latitude, dtype="float64")
    olon = np.asarray(obs_longitude, dtype="float64")
    olev = np.asarray(obs_level, dtype="float64")
    m = var.size
    if not (olat.shape == olon.shape == olev.shape == (m,)):
        raise ValueError(
            "obs_variable, obs_latitude, obs_longitude, obs_level must be 1-D, same size"
        )
    levels_of: dict[str, list[tuple[float | None, int]]] = {}
    for c, (v, lv) in enumerate(channels):
        levels_of.setdefault(str(v), []).append((None if lv is None else float(lv), c))
    reason = np.full(m, "", dtype=object)
    rows_idx: list[list[int]] = []
    rows_w: list[list[float]] = []
    keep = []
    for i in range(m):
        entry = levels_of.get(var[i])
        if entry is None:
            reason[i] = "unknown_variable"
            continue
        # vertical stencil: list of (channel, weight)
        if entry[0][0] is None:
            if not np.isnan(olev[i]):
                reason[i] = "unknown_level"
                continue
            vert = [(entry[0][1], 1.0)]
        else:
            if not np.isfinite(olev[i]) or olev[i] <= 0:
                reason[i] = "unknown_level"
                continue
            levs = sorted(entry)  # ascending pressure
            ps = np.array([lv for lv, _ in levs], dtype="float64")
            close = np.nonzero(np.isclose(ps, olev[i], rtol=1e-6, atol=1e-6))[0]
            if close.size:
                vert = [(levs[int(close[0])][1], 1.0)]
            elif ps[0] < olev[i] < ps[-1]:
                k = int(np.searchsorted(ps, olev[i]) - 1)
                t = (np.log(olev[i]) - np.log(ps[k])) / (np.log(ps[k + 1]) - np.log(ps[k]))
                vert = [(levs[k][1], 1.0 - t), (levs[k + 1][1], t)]
            else:
                reason[i] = "unknown_level"
                continue
        horiz = _horizontal(lat_grid, lon_grid, olat[i], olon[i])
        if horiz is None:
            reason[i] = "outside_grid"
            continue
        sign = -1.0 if var[i] in VECTOR_COMPONENTS else 1.0
        idx, wts = [], []
        for c, cw in vert:
            for r, col, hw, flip in horiz:
                idx.append((c * h + r) * w + col)
                wts.append(cw * hw * (sign if flip else 1.0))
        rows_idx.append(idx)
        rows_w.append(wts)
        keep.append(i)
    k = max((len(r) for r in rows_idx), default=1)
    index = np.zeros((len(keep), k), dtype=np.int64)
    weight = np.zeros((len(keep), k))
    for r, (idx, wts) in enumerate(zip(rows_idx, rows_w)):
        index[r, : len(idx)] = idx
        weight[r, : len(wts)] = wts
    op = ObservationOperator(index, weight, (len(channels), h, w))
    return op, reason.astype(str)
