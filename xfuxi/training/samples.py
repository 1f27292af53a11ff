"""Training samples: the data as one array, and where regular runs of states start.

:func:`stacked_states` turns a Dataset into a ``(time, channel, lat, lon)`` float32 array;
:func:`regular_starts` lists where runs of consecutive time steps start, which both the
forecast training (samples of a pair and its targets) and the FuXi-ENS training (sequences)
draw from; :func:`start_states` gives a sample's input pair, from the truth or from a
frozen lead model's forecast (FuXi's cascade).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from ..data.channels import Channel, stack
from ..data.schema import SchemaError, validate
from ..models.base import ForecastModel

__all__ = ["regular_starts", "sequences", "stacked_states", "start_states"]


def stacked_states(
    ds: xr.Dataset, channels: Sequence[Channel], name: str, model: ForecastModel | None = None
) -> tuple[np.ndarray, xr.Dataset]:
    """``ds`` validated and stacked to a float32 ``(time, channel, lat, lon)`` array.

    Parameters
    ----------
    ds : xarray.Dataset
        States with a ``time`` dim (canonical layout).
    channels : sequence of (variable, level)
    name : str
        What the data are, for the error messages ("training", "validation", ...).
    model : ForecastModel, optional
        Checked against the data (channels, grid) before stacking.

    Returns
    -------
    (values, ds) : numpy.ndarray, xarray.Dataset
        The array and the validated Dataset.

    Raises
    ------
    SchemaError
        NaN or infinite values (or data the model does not fit).
    """
    ds = validate(ds, require_time=True)
    if model is not None:
        model.check_dataset(ds)
    arr = stack(ds, channels).transpose("time", "channel", "latitude", "longitude")
    values = np.asarray(arr.values, dtype="float32")
    if not np.all(np.isfinite(values)):
        raise SchemaError(f"{name} data contain NaN or infinite values")
    return values, ds


def regular_starts(times: np.ndarray, step: np.timedelta64, length: int) -> np.ndarray:
    """Indices ``s`` such that times ``s .. s + length - 1`` are consecutive, ``step`` apart.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array([0, 6, 12, 18, 30, 36, 42], dtype="timedelta64[h]") + np.datetime64("2000")
    >>> regular_starts(t, np.timedelta64(6, "h"), 3)
    array([0, 1, 4])
    """
    t = np.asarray(times).astype("datetime64[ns]")
    regular = np.diff(t) == np.timedelta64(step, "ns")
    ok = [s for s in range(t.size - length + 1) if regular[s : s + length - 1].all()]
    return np.asarray(ok, dtype="int64")


def sequences(ds: xr.Dataset, model: ForecastModel, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``ds`` to (T, C, H, W) and list start indices of regular runs of ``length``."""
    data, ds = stacked_states(ds, model.channels, "training", model)
    starts = regular_starts(ds["time"].values, model.timestep, length)
    if starts.size == 0:
        raise SchemaError(
            f"training data hold no run of {length} consecutive {model.timestep_hours:g}-hour "
            f"times (got {ds.sizes['time']} times)"
        )
    return data, starts


def start_states(
    data: torch.Tensor, idx: torch.Tensor, lead: ForecastModel | None, lead_steps: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input pair of each sample and the index of its second state.

    Without a lead model: the true states at ``idx - 1`` and ``idx``. With one: its forecast
    from them, ``lead_steps`` steps on (no gradient; FuXi's cascade trains each stage on the
    previous stage's forecasts), valid at ``idx + lead_steps``.
    """
    prev, curr = data[idx - 1], data[idx]
    if lead is None or lead_steps == 0:
        return prev, curr, idx
    with torch.no_grad():
        for _ in range(lead_steps):
            prev, curr = curr, lead(torch.stack([prev, curr], dim=1))
    return prev, curr, idx + lead_steps
