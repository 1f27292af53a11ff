"""Training samples: the data as one array, and where regular runs of states start.

:func:`stacked_states` turns a Dataset into a ``(time, channel, lat, lon)`` float32 array;
:func:`regular_starts` lists where runs of consecutive time steps start, which both the
forecast training (samples of a pair and its targets) and the FuXi-ENS training (sequences)
draw from; :func:`start_states` gives a sample's input pair, from the truth or from a
frozen lead model's forecast (FuXi's cascade); :class:`CycledStarts` gives input pairs that
a cycled assimilation made, with the truth after them as targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from ..data.channels import Channel, stack
from ..data.schema import SchemaError, check_state_dims, require_dataset, validate
from ..models.base import ForecastModel

__all__ = [
    "CycledStarts",
    "check_layout",
    "data_digest",
    "regular_starts",
    "sequences",
    "stacked_states",
    "start_states",
]


def check_layout(ds: xr.Dataset, name: str, variables: Sequence[str] | None = None) -> xr.Dataset:
    """``ds`` validated (:func:`~xfuxi.data.schema.validate`, with a ``time``), or a clear
    error: a DataArray, or an extra dim (an ensemble's ``number``) on a variable trained on.

    Parameters
    ----------
    ds : xarray.Dataset
    name : str
        What the data are, for the messages ("training", "validation").
    variables : sequence of str, optional
        The variables used (default: all); another variable's dims are not checked.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    TypeError
        ``ds`` is not a Dataset.
    SchemaError
        A used variable has a dim besides time, level, latitude and longitude (or the
        data cannot be brought into the canonical layout).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.zeros((2, 3)), dims=("time", "x"), name="t")
    >>> check_layout(da, "training")
    Traceback (most recent call last):
    ...
    TypeError: training data must be an xarray.Dataset with a variable per model variable; \
make one with da.to_dataset(name=...) or pass the Dataset the DataArray came from; got \
<class 'xarray.core.dataarray.DataArray'>
    """
    require_dataset(ds, f"{name} data")
    ds = validate(ds, require_time=True)
    used = [v for v in ds.data_vars if variables is None or str(v) in set(map(str, variables))]
    check_state_dims(
        ds[used],
        f"the {name} data",
        "training takes one state per time: select a member (ds.isel(number=0))",
    )
    return ds


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
    TypeError
        ``ds`` is not a Dataset.
    SchemaError
        NaN or infinite values, an extra dim such as an ensemble's ``number``
        (:func:`check_layout`), or data the model does not fit.
    """
    ds = check_layout(ds, name, [str(c[0]) for c in channels])
    if model is not None:
        model.check_dataset(ds)
    arr = stack(ds, channels).transpose("time", "channel", "latitude", "longitude")
    values = np.asarray(arr.values, dtype="float32")
    if not np.all(np.isfinite(values)):
        raise SchemaError(f"{name} data contain NaN or infinite values")
    return values, ds


def data_digest(times: np.ndarray, values: np.ndarray, *, rows: int = 64) -> str:
    """A short sha256 of training data: every time and the values of about ``rows`` of
    them, evenly spaced (another period, another run of the world or data of another seed
    differ there), for a resumed run to refuse other data.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(4).astype("datetime64[D]")
    >>> v = np.zeros((4, 2), dtype="float32")
    >>> data_digest(t, v) == data_digest(t, v.copy()), data_digest(t, v) == data_digest(t, v + 1)
    (True, False)
    """
    import hashlib

    h = hashlib.sha256(np.asarray(times).astype("datetime64[ns]").astype("int64").tobytes())
    step = max(1, len(values) // rows)
    h.update(np.ascontiguousarray(np.asarray(values)[::step], dtype="float32").tobytes())
    return h.hexdigest()[:16]


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


def sequences(
    ds: xr.Dataset, model: ForecastModel, length: int, name: str = "training"
) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``ds`` to (T, C, H, W) and list start indices of regular runs of ``length``
    (``name`` names the data in errors: "training", "validation")."""
    data, starts, _ = digested_sequences(ds, model, length, name)
    return data, starts


def digested_sequences(
    ds: xr.Dataset, model: ForecastModel, length: int, name: str = "training"
) -> tuple[np.ndarray, np.ndarray, str]:
    """:func:`sequences` and the :func:`data_digest` of the data (for resuming)."""
    data, ds = stacked_states(ds, model.channels, name, model)
    starts = regular_starts(ds["time"].values, model.timestep, length)
    if starts.size == 0:
        raise SchemaError(
            f"{name} data hold no run of {length} consecutive {model.timestep_hours:g}-hour "
            f"times (got {ds.sizes['time']} times)"
        )
    return data, starts, data_digest(ds["time"].values, data)


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


class CycledStarts:
    """Samples that start from the analysed pairs of a cycled assimilation (its members).

    Each entry of ``states`` (:func:`xfuxi.assimilation.cycle.open_cycle_states`: the
    members' analysed input pairs at the analysis times of a cycle run on a period the
    training data hold) is matched to the index ``i`` of its analysis time in the training
    data; the sample's input is the analysed pair, its targets the true states at
    ``i + 1 ..`` — the model learns to forecast the truth from the states assimilation
    gives it, as in a cycle (FengWu-Adas's training on its own cycled backgrounds).

    Parameters
    ----------
    states : xarray.DataArray
        ``(time, member, pair, channel, latitude, longitude)``.
    times : numpy.ndarray
        The training data's times.
    starts : numpy.ndarray
        The training data's valid sample indices (the second input time of each sample).
    channels : sequence of str
        The model's channel names, in order.
    grid : (int, int)
        The training data's grid.
    step : numpy.timedelta64
        The model's time step.
    device : torch.device

    Raises
    ------
    ValueError
        Other channels, another grid, a pair not one step long, NaN, or no analysis time
        that is a valid training sample (the states are from another period).
    """

    def __init__(
        self,
        states: xr.DataArray,
        times: np.ndarray,
        starts: np.ndarray,
        channels: Sequence[str],
        grid: tuple[int, int],
        step: np.timedelta64,
        device: torch.device,
    ) -> None:
        dims = ("time", "member", "pair", "channel", "latitude", "longitude")
        if not isinstance(states, xr.DataArray) or tuple(states.dims) != dims:
            got = tuple(states.dims) if isinstance(states, xr.DataArray) else type(states)
            raise ValueError(f"cycled_states must be a DataArray with dims {dims}; got {got}")
        names = [str(c) for c in states["channel"].values]
        if names != list(channels):
            raise ValueError(f"cycled_states have channels {names}; the model has {list(channels)}")
        if tuple(states.shape[-2:]) != tuple(grid):
            raise ValueError(
                f"cycled_states are on a {tuple(states.shape[-2:])} grid; the data on {grid}"
            )
        offsets = np.asarray(states["pair"].values).astype("timedelta64[ns]")
        want = np.asarray([-np.timedelta64(step, "ns"), np.timedelta64(0, "ns")])
        if states.sizes["pair"] != 2 or not np.array_equal(offsets, want):
            raise ValueError(
                f"cycled_states pairs are at offsets {offsets}; the model's input pair is "
                f"{want} (one time step)"
            )
        values = np.asarray(states.values, dtype="float32")
        if not np.all(np.isfinite(values)):
            raise ValueError("cycled_states contain NaN or infinite values")
        index = {t: i for i, t in enumerate(np.asarray(times).astype("datetime64[ns]"))}
        valid = set(int(i) for i in starts)
        at = [index.get(t, -1) for t in states["time"].values.astype("datetime64[ns]")]
        keep = [k for k, i in enumerate(at) if i in valid]
        if not keep:
            raise ValueError(
                "none of the cycled_states' analysis times "
                f"({states['time'].values[0]} .. {states['time'].values[-1]}) is a sample of "
                "the training data (with its targets after it): the cycle must have run on "
                "the training period"
            )
        self.values = torch.from_numpy(values[keep]).to(device)
        self.index = torch.as_tensor([at[k] for k in keep], device=device)
        self.n_times, self.n_members = self.values.shape[:2]

    def draw(
        self, n: int, seed: int, step: int, rank: int = 0, world: int = 1
    ) -> tuple[torch.Tensor, ...]:
        """``(prev, curr, idx)`` of ``n`` samples drawn reproducibly from the seed and the step.

        In a distributed run (``world`` processes) every process draws the ``n`` samples, as
        one process does, and gets the ``n / world`` of its ``rank``.
        """
        if not 0 <= rank < world or n % world:
            raise ValueError(f"cannot share {n} draws as rank {rank} of {world} processes")
        g = np.random.default_rng([seed, step, 0, 29])  # (0: the single-process run's key)
        mine = slice(rank * (n // world), (rank + 1) * (n // world))
        dev = self.values.device
        k = torch.as_tensor(g.integers(0, self.n_times, size=n)[mine], device=dev)
        m = torch.as_tensor(g.integers(0, self.n_members, size=n)[mine], device=dev)
        pair = self.values[k, m]
        return pair[:, 0], pair[:, 1], self.index[k]

    def digest(self) -> str:
        """A digest of the states and their times, for resuming."""
        import hashlib

        h = hashlib.sha256(self.values.cpu().numpy().tobytes())
        h.update(self.index.cpu().numpy().tobytes())
        return h.hexdigest()
