"""Quality control inside En4DVar: the background check and duplicated observations.

The observation sets' own screening (NaN values, unknown variables, outside the grid or the
window) lives in :func:`xfuxi.observations.sets.screen_observations`; this module adds what
needs the background or the whole set: the background check against the ensemble spread,
and observations repeated at the same place and time (used as independent ones, they would
count several times over in the cost).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import xarray as xr

from ..observations.sets import ObservationError
from .cost import ObsSlot

__all__ = ["background_check", "duplicate_groups", "handle_duplicates"]

#: what two reports of one observation share: place, time, variable, value and error
DUPLICATE_KEYS = ("variable", "level", "latitude", "longitude", "time", "value", "error")


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


def duplicate_groups(observations: xr.Dataset) -> list[np.ndarray]:
    """Index groups (two or more) of repeated observations: the same in every ``DUPLICATE_KEYS``.

    A repeated report has the same variable, level, latitude, longitude, time, value and
    error. Levels compare NaN equal to NaN (single-level variables). Two observations at the
    same place and time with different values (two instruments, or draws of independent
    errors) are not duplicates: they are used as independent observations.

    Examples
    --------
    >>> from xfuxi.observations.sets import make_observations
    >>> obs = make_observations([1.0, 2.0, 1.0, 3.0], error=1.0, time="2000-01-01",
    ...                         latitude=[0.0, 10.0, 0.0, 0.0], longitude=0.0, variable="t")
    >>> [g.tolist() for g in duplicate_groups(obs)]
    [[0, 2]]
    """
    n = observations.sizes.get("obs", 0)
    if n < 2:
        return []
    columns = []
    for key in DUPLICATE_KEYS:
        if key not in observations.variables:
            continue
        values = np.asarray(observations[key].values)
        if values.dtype.kind == "f":
            values = np.where(np.isnan(values), np.inf, values)
        elif values.dtype.kind == "M":
            values = values.astype("M8[ns]").astype("int64")
        columns.append(values.astype(str) if values.dtype.kind in "OU" else values)
    order = np.lexsort(columns[::-1])
    same = np.ones(n - 1, dtype=bool)
    for col in columns:
        c = col[order]
        same &= c[1:] == c[:-1]
    groups = []
    i = 0
    while i < n - 1:
        if same[i]:
            j = i
            while j < n - 1 and same[j]:
                j += 1
            groups.append(np.sort(order[i : j + 1]))
            i = j + 1
        else:
            i += 1
    groups.sort(key=lambda g: int(g[0]))
    return groups


def handle_duplicates(observations: xr.Dataset, *, policy: str) -> np.ndarray | None:
    """Refuse duplicated observations (``policy="refuse"``) or keep the first of each group.

    Returns
    -------
    numpy.ndarray or None
        None when there is no duplicate; otherwise (``"first"``, with a warning) the
        indices of the observations to keep.

    Raises
    ------
    ObservationError
        With ``"refuse"``, naming the number of groups and the first one.
    """
    groups = duplicate_groups(observations)
    if not groups:
        return None
    extra = sum(len(g) - 1 for g in groups)
    first = groups[0]
    where = ", ".join(
        f"{k}={observations[k].values[first[0]]}"
        for k in DUPLICATE_KEYS
        if k in observations.variables
    )
    what = (
        f"{extra} observation(s) repeat another (same variable, level, latitude, longitude, "
        f"time, value and error; {len(groups)} group(s); the first: usable obs "
        f"{first.tolist()}: {where})"
    )
    if policy == "refuse":
        raise ObservationError(
            f"{what}; repeated observations would be counted as independent ones. Remove them, "
            "or pass quality_control=QualityControl(duplicates='first') to keep the first of "
            "each group"
        )
    warnings.warn(f"{what}; keeping the first of each group", UserWarning, stacklevel=3)
    drop = np.concatenate([g[1:] for g in groups])
    return np.setdiff1d(np.arange(observations.sizes["obs"]), drop)
