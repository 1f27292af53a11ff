"""The call contract every forecast model in xfuxi follows, and the wrapper that enforces it.

A *forecast model* is a :class:`ForecastModel`: a ``torch.nn.Module`` whose ``forward``
takes a batch of two consecutive states in **physical units** and returns the next state::

    x : Tensor (B, 2, C, H, W)   states at (t - Δ, t), channels in ``model.channels`` order,
                                 latitude ascending (H), longitude 0..360 ascending (W)
    y = model(x) : Tensor (B, C, H, W)   state at t + Δ (Δ = ``model.timestep``, 6 h)

It is differentiable end to end. It knows its channel list, grid and normalization
statistics, so xarray data can be checked against it before any tensor is built.
Forecast, ensembles and 4DVar use nothing else. Any ``torch.nn.Module`` that maps
normalised (or physical) inputs to outputs can be wrapped with :func:`wrap_model`.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..config import summary_html
from ..data.channels import Channel, channel_name
from ..data.schema import VARIABLES, SchemaError, likely_unit_mistake

__all__ = [
    "PLAUSIBLE_MEAN_STDS",
    "PLAUSIBLE_VALUE_STDS",
    "ForecastModel",
    "NormStats",
    "channels_without_statistics",
    "check_first_step",
    "check_input_pair",
    "check_plausible",
    "isolated_rng",
    "register_stats_buffers",
    "with_single_time_input",
    "wrap_model",
]


@contextmanager
def isolated_rng(seed: int | None = None) -> Iterator[None]:
    """Run a block on its own copy of torch's global CPU generator, restored afterwards.

    Building a network draws its initial weights from torch's global generator; xfuxi builds
    networks inside this block, so that loading a model or starting a training run neither
    consumes nor resets the caller's random stream. With ``seed``, the block's generator is
    seeded with it (a trainer's initial weights are a function of its seed alone).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> with isolated_rng(seed=3):
    ...     inside = torch.rand(1)
    >>> after = torch.rand(1)
    >>> _ = torch.manual_seed(0)
    >>> bool(after == torch.rand(1))  # the caller's stream went on as if nothing was drawn
    True
    >>> _ = torch.manual_seed(3)
    >>> bool(inside == torch.rand(1))
    True
    """
    with torch.random.fork_rng(devices=[]):
        if seed is not None:  # the CPU generator only (torch.manual_seed reseeds CUDA's too)
            torch.default_generator.manual_seed(seed)
        yield


#: states whose mean lies further than this many stds from the model's mean are refused
PLAUSIBLE_MEAN_STDS = 10.0
#: states with a value further than this many stds from the model's mean are refused
PLAUSIBLE_VALUE_STDS = 50.0


def _check_stats(values: dict[str, Any], channels: Sequence[Channel | str] | None = None) -> None:
    """Raise ValueError unless the statistics are 1-D, of one length, finite, std's positive.

    ``channels`` (pairs or ``"variable@level"`` names) name the channel at fault; without
    them it is named by its index.
    """
    arrays = {k: np.asarray(v, dtype=float) for k, v in values.items()}
    sizes = {k: a.shape for k, a in arrays.items()}
    n = arrays["mean"].shape
    if any(a.ndim != 1 for a in arrays.values()) or any(s != n for s in sizes.values()):
        raise ValueError(
            f"normalization statistics must be 1-D arrays of one length (one value per "
            f"channel); got shapes {sizes}"
        )
    if channels is not None and len(channels) != n[0]:
        raise ValueError(
            f"normalization statistics have {n[0]} values per statistic for {len(channels)} "
            "channels"
        )

    def label(i: int) -> str:
        if channels is None:
            return f"channel {i}"
        c = channels[i]
        return repr(c if isinstance(c, str) else channel_name(c))

    for key, arr in arrays.items():
        positive = key != "mean"
        bad = ~np.isfinite(arr) | ((arr <= 0) if positive else False)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what = "positive and finite" if positive else "finite"
            raise ValueError(
                f"normalization statistic {key!r} of {label(i)} is {float(arr[i])}; it must be "
                f"{what} (otherwise every forecast would be NaN)"
            )


@dataclass(frozen=True, slots=True)
class NormStats:
    """Per-channel normalization statistics (1-D arrays of length C).

    ``mean`` and ``std`` of each channel, and ``diff_std``, the std of its 6-hour
    differences (the scale of residual targets). Checked on construction: finite, one value
    per channel each, ``std`` and ``diff_std`` positive (else ValueError).
    """

    mean: np.ndarray
    std: np.ndarray
    diff_std: np.ndarray
    #: made by :meth:`identity` for a model given no statistics (not a user's mean 0, std 1)
    stand_in: bool = field(default=False, repr=False, compare=False, kw_only=True)

    def __post_init__(self) -> None:
        _check_stats({k: getattr(self, k) for k in ("mean", "std", "diff_std")})

    @classmethod
    def identity(cls, n_channels: int) -> NormStats:
        """Mean 0 and std 1 in every channel: the stand-in of a model given no statistics
        (``stand_in=True``, which :func:`channels_without_statistics` reads)."""
        one = np.ones(n_channels)
        return cls(np.zeros(n_channels), one, one.copy(), stand_in=True)

    @classmethod
    def from_dataset(cls, stats: xr.Dataset, channels: Sequence[Channel]) -> NormStats:
        """Pick per-channel values from a statistics Dataset.

        ``stats`` has one data variable per model variable with a ``statistic`` dimension
        holding ``"mean"``, ``"std"`` and ``"diff_std"`` (and ``level`` where the variable
        has levels), as :func:`xfuxi.data.stats.normalization_stats` returns.
        """
        out = {k: np.empty(len(channels)) for k in ("mean", "std", "diff_std")}
        for i, (var, level) in enumerate(channels):
            if var not in stats.data_vars:
                raise SchemaError(f"normalization statistics lack variable {var!r}")
            da = stats[var]
            if level is not None:
                da = da.sel(level=level)
            for k in out:
                out[k][i] = float(da.sel(statistic=k))
        try:
            _check_stats(out, channels)
        except ValueError as err:
            raise SchemaError(str(err)) from None
        return cls(**out)

    def to_dict(self) -> dict[str, list[float]]:
        return {k: np.asarray(getattr(self, k), dtype=float).tolist() for k in self.__slots__}

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], *, channels: Sequence[Channel | str] | None = None
    ) -> NormStats:
        """Read :meth:`to_dict`'s output back, checked (``channels`` name any channel at fault).

        Raises
        ------
        ValueError
            A statistic is missing, not one finite value per channel, or a std is not
            positive.
        """
        missing = [k for k in ("mean", "std", "diff_std") if k not in d]
        if missing:
            raise ValueError(f"normalization statistics lack {missing}")
        try:
            values = {k: np.asarray(d[k], dtype=float) for k in ("mean", "std", "diff_std")}
        except (TypeError, ValueError) as err:
            raise ValueError(f"normalization statistics are not numbers: {err}") from None
        _check_stats(values, channels)
        return cls(**values)


def _positive_hours(value: Any) -> float:
    """``value`` as a float number of hours, or a ValueError if not positive and finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"timestep_hours must be a positive number of hours; got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"timestep_hours must be positive and finite; got {value!r}")
    return float(value)


def register_stats_buffers(module: torch.nn.Module, stats: NormStats, n_channels: int) -> None:
    """Give ``module`` the buffers ``_mean``, ``_std`` and ``_diff_std`` of ``stats``.

    Float32, shaped ``(1, C, 1, 1)`` to broadcast over ``(..., C, H, W)`` tensors, and not
    persistent: checkpoints keep the statistics in their config, not with the weights.

    Raises
    ------
    ValueError
        A statistic does not hold ``n_channels`` values.

    Examples
    --------
    >>> m = torch.nn.Module()
    >>> register_stats_buffers(m, NormStats.identity(3), 3)
    >>> m._std.shape, [name for name, _ in m.named_buffers()]
    (torch.Size([1, 3, 1, 1]), ['_mean', '_std', '_diff_std'])
    """
    for key in ("mean", "std", "diff_std"):
        arr = np.asarray(getattr(stats, key), dtype="float32")
        if arr.shape != (n_channels,):
            raise ValueError(f"stats.{key} has shape {arr.shape}; expected ({n_channels},)")
        module.register_buffer(f"_{key}", torch.from_numpy(arr).view(1, -1, 1, 1), persistent=False)


def check_input_pair(x: torch.Tensor, n_channels: int, grid: tuple[int, int]) -> None:
    """Raise ValueError unless ``x`` is a batch of input pairs ``(B, 2, n_channels, *grid)``.

    Examples
    --------
    >>> check_input_pair(torch.zeros(4, 2, 3, 8, 16), 3, (8, 16))
    >>> check_input_pair(torch.zeros(4, 3, 8, 16), 3, (8, 16))
    Traceback (most recent call last):
    ...
    ValueError: expected input (B, 2, 3, H, W); got (4, 3, 8, 16)
    """
    if x.ndim != 5 or x.shape[1] != 2 or x.shape[2] != n_channels:
        raise ValueError(f"expected input (B, 2, {n_channels}, H, W); got {tuple(x.shape)}")
    if tuple(x.shape[-2:]) != grid:
        raise ValueError(f"expected grid {grid}; got {tuple(x.shape[-2:])}")


class ForecastModel(torch.nn.Module):
    """Wrap a network on normalised tensors into a physical-unit 6-hour step model.

    Parameters
    ----------
    net : torch.nn.Module
        Maps normalised input ``(B, 2, C, H, W)`` to an output ``(B, C, H, W)``.
    channels : sequence of (variable, level)
        Channel order of the tensors.
    latitude, longitude : array-like
        The grid (latitude ascending, longitude 0..360 ascending).
    stats : NormStats, optional
        Normalization statistics; identity if omitted.
    residual : bool, default True
        If True, the network predicts the 6-hour tendency in units of ``diff_std``
        (``y = x_t + net(...) * diff_std``); else the normalised next state
        (``y = net(...) * std + mean``).
    timestep_hours : float, default 6
        The time step Δ in hours (positive and finite).
    name : str
        Name recorded in the provenance of forecasts.
    config : dict, optional
        JSON-serialisable construction config (saved with checkpoints). Its
        ``"input_times"`` (1 or 2, default 2) is the number of input times the model reads:
        with 1 the earlier time of each pair is replaced by the later one before the
        network sees it (:func:`with_single_time_input`).

    Raises
    ------
    ValueError
        A latitude that does not ascend strictly (south to north), a longitude outside
        ``[0, 360)``, or a bad ``config["input_times"]``.

    Examples
    --------
    A residual network that predicts no tendency is persistence of the second input:

    >>> class NoTendency(torch.nn.Module):
    ...     def forward(self, x):
    ...         return torch.zeros_like(x[:, 1])
    >>> model = ForecastModel(NoTendency(), channels=[("temperature", 500.0)],
    ...                       latitude=[-45.0, 45.0], longitude=[0.0, 180.0], name="persist")
    >>> x = torch.stack([torch.full((1, 2, 2), 250.0), torch.full((1, 2, 2), 251.0)])[None]
    >>> model(x).shape, model(x).flatten().tolist()
    (torch.Size([1, 1, 2, 2]), [251.0, 251.0, 251.0, 251.0])
    >>> str(model.timestep), model.grid_shape
    ('21600 seconds', (2, 2))

    :func:`xfuxi.wrap_model` builds one from a network on physical units.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        *,
        channels: Sequence[Channel],
        latitude: Any,
        longitude: Any,
        stats: NormStats | None = None,
        residual: bool = True,
        timestep_hours: float = 6.0,
        name: str = "model",
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.channels: tuple[Channel, ...] = tuple(
            (str(v), None if lv is None else float(lv)) for v, lv in channels
        )
        repeated = [c for c, n in Counter(self.channels).items() if n > 1]
        if repeated:  # a forecast would have a non-unique level index and a mislabelled slot
            raise ValueError(
                f"channels must be unique; {sorted({channel_name(c) for c in repeated})} appear "
                "more than once"
            )
        self.latitude = np.asarray(latitude, dtype="float64")
        self.longitude = np.asarray(longitude, dtype="float64")
        _check_grid(self.latitude, self.longitude, name)
        self.residual = bool(residual)
        self.timestep_hours = _positive_hours(timestep_hours)
        self.name = name
        self.config = dict(config or {})
        times = self.config.get("input_times", 2)
        if isinstance(times, bool) or times not in (1, 2):
            raise ValueError(f"config['input_times'] must be 1 or 2; got {times!r}")
        self.input_times = int(times)
        self.stats = stats if stats is not None else NormStats.identity(len(self.channels))
        register_stats_buffers(self, self.stats, len(self.channels))

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def grid_shape(self) -> tuple[int, int]:
        return (self.latitude.size, self.longitude.size)

    @property
    def timestep(self) -> np.timedelta64:
        return np.timedelta64(int(round(self.timestep_hours * 3600)), "s")

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Physical → normalised; ``x`` has the channel axis third from the end."""
        return (x - self._mean) / self._std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised → physical, the inverse of :meth:`normalize`.

        Parameters
        ----------
        x : torch.Tensor
            Normalised values with the channel axis third from the end (``(..., C, H, W)``).

        Returns
        -------
        torch.Tensor
            ``x * std + mean`` per channel, in physical units.
        """
        return x * self._std + self._mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The next state ``(B, C, H, W)`` of each input pair ``x`` ``(B, 2, C, H, W)``.

        Raises
        ------
        ValueError
            ``x`` is not ``(B, 2, C, H, W)`` on the model's grid, or the network's output
            is not ``(B, C, H, W)``.
        TypeError
            The network returned something other than a floating-point tensor.
        """
        check_input_pair(x, self.n_channels, self.grid_shape)
        if self.input_times == 1:  # with_single_time_input: the earlier time is not used
            x = x[:, 1:].expand(-1, 2, -1, -1, -1)
        out = self.net(self.normalize(x))
        _check_output(out, x, self.name)
        y = x[:, 1] + out * self._diff_std if self.residual else self.denormalize(out)
        filt = getattr(self, "output_filter", None)  # xfuxi.models.spectral.with_spectral_filter
        return y if filt is None else filt(y)

    def check_same_layout(self, other: ForecastModel, what: str) -> None:
        """Raise SchemaError unless ``other`` has this model's channels, grid and time step.

        ``what`` names the pair in the message (e.g. ``"cascade stages 'a' and 'b'"``).
        """
        if tuple(other.channels) != tuple(self.channels):
            raise SchemaError(f"{what} have different channels")
        if (
            other.grid_shape != self.grid_shape
            or not np.allclose(other.latitude, self.latitude)
            or not np.allclose(other.longitude, self.longitude)
        ):
            raise SchemaError(f"{what} are on different grids")
        if other.timestep != self.timestep:
            raise SchemaError(f"{what} have different time steps")

    def check_dataset(self, ds: xr.Dataset) -> None:
        """Raise a clear error if ``ds`` (canonical) does not match the model's channels or grid.

        Only the layout is checked, so that states, increments and error samples can all be
        checked; where states enter the model, :func:`check_plausible` checks their values.
        """
        self._check_layout(ds, f"model {self.name!r}")

    def _check_layout(self, ds: xr.Dataset, label: str) -> None:
        """:meth:`check_dataset`, the model named ``label`` in the error (a cascade names
        itself and its stage)."""
        problems = []
        missing = [v for v in dict.fromkeys(c[0] for c in self.channels) if v not in ds.data_vars]
        if missing:
            problems.append(f"missing variable(s) {missing}")
        lacking: dict[str, list[str]] = {}  # variable -> its levels the data lack
        scalar: dict[str, float] = {}  # variable -> the one level it holds as a scalar coord
        for var, level in self.channels:
            if level is not None and var in ds.data_vars:
                da = ds[var]
                if "level" not in da.dims and "level" in da.coords and da["level"].ndim == 0:
                    # ds.sel(level=500): the level is there, but not along a dimension
                    scalar[var] = float(da["level"].values)
                    if not np.isclose(scalar[var], level):
                        lacking.setdefault(var, []).append(f"{level:g}")
                elif "level" not in da.dims or not np.any(np.isclose(ds["level"], level)):
                    lacking.setdefault(var, []).append(f"{level:g}")
        if scalar:
            levels = sorted(set(scalar.values()))
            shown = ", ".join(f"{lv:g}" for lv in levels)
            problems.append(
                f"variable(s) {list(scalar)} hold their level ({shown} hPa) as a scalar "
                f"coordinate, not along a 'level' dimension (as ds.sel(level={levels[0]:g}) "
                f"leaves it); keep the level as a dimension: ds.sel(level=[{shown}]) instead, "
                "or ds.expand_dims('level')"
            )
        if lacking:
            text = "; ".join(f"{v!r} at {', '.join(lv)} hPa" for v, lv in lacking.items())
            problems.append(f"missing level(s): {text}")
        regrid = False
        for dim, ref in (("latitude", self.latitude), ("longitude", self.longitude)):
            if dim not in ds.dims:
                problems.append(f"missing dimension {dim!r}")
                continue
            got = np.asarray(ds[dim].values, dtype="float64")
            if got.shape != ref.shape or not np.allclose(got, ref, atol=1e-4):
                regrid = True
                problems.append(
                    f"data grid {dim} ({got.size} points, {_span(got)}) does not match "
                    f"model ({ref.size} points, {_span(ref)})"
                )
        if problems:
            hint = "; regrid the data to the model's grid first (xfuxi.regrid)" if regrid else ""
            if missing and _is_world_model(self):
                hint += (
                    "; the model was trained on the embedded Held–Suarez world (it forecasts "
                    "that world's variables, not those of real data such as ERA5): to "
                    "forecast these data, train a model on them (xfuxi.train_forecast, or "
                    "`xfuxi train` at the command line; docs/user-guide/training.md)"
                )
            raise SchemaError(f"data do not fit {label}: " + "; ".join(problems) + hint)

    def _repr_html_(self) -> str:
        """Jupyter's view: a short summary instead of the tree of torch modules."""
        return summary_html(f"ForecastModel {self.name!r}", self.summary_rows())

    def summary_rows(self) -> list[tuple[str, str]]:
        """The rows of the model's summary: channels, grid, time step, network, size."""
        n_params = sum(p.numel() for p in self.parameters())
        return [
            ("channels", f"{self.n_channels}: " + ", ".join(map(channel_name, self.channels))),
            ("grid", f"{self.grid_shape[0]} × {self.grid_shape[1]} (latitude × longitude)"),
            ("time step", f"{self.timestep_hours:g} h"),
            ("input times", "2 (t0 − Δ and t0)" if self.input_times == 2 else "1 (t0 alone)"),
            ("network", f"{type(self.net).__name__}, {n_params:,} parameters"),
            ("output", "tendency (residual)" if self.residual else "next state"),
        ]

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, channels={self.n_channels}, grid={self.grid_shape}, "
            f"timestep={self.timestep_hours:g}h, residual={self.residual}"
        )


def _check_output(out: Any, x: torch.Tensor, name: str) -> None:
    """Refuse a network output that is not a floating tensor ``(B, C, H, W)`` of the input
    pairs ``x`` ``(B, 2, C, H, W)``, naming the model (O(1): shapes and dtype only).

    A raw torch error came later otherwise (a failed stack or a size mismatch), or a wrong
    output passed: ``(C, H, W)`` broadcast over the batch, an integer tensor rounded.

    Examples
    --------
    >>> x = torch.zeros(3, 2, 4, 8, 16)
    >>> _check_output(torch.zeros(3, 4, 8, 16), x, "mine")
    >>> _check_output(torch.zeros(4, 8, 16), x, "mine")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: model 'mine': its network returned shape (4, 8, 16); expected ... (3, 4, 8, 16)...
    """
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"model {name!r}: its network returned an object of type {type(out).__name__}; "
            f"expected a torch.Tensor (B, C, H, W) = {(x.shape[0], *x.shape[2:])} (keep the "
            "forward in torch, so that 4DVar can differentiate through it)"
        )
    expected = (x.shape[0], *x.shape[2:])
    if tuple(out.shape) != expected:
        raise ValueError(
            f"model {name!r}: its network returned shape {tuple(out.shape)}; expected "
            f"(B, C, H, W) = {expected} for input pairs {tuple(x.shape)} (the next state of "
            "each of the B pairs)"
        )
    if not out.is_floating_point():
        raise TypeError(
            f"model {name!r}: its network returned a tensor of dtype "
            f"{str(out.dtype).removeprefix('torch.')}; expected a floating-point one (the input's "
            f"{str(x.dtype).removeprefix('torch.')})"
        )


def check_first_step(y: Any, name: str, x: Any = None) -> None:
    """Refuse the first step of a rollout from finite states that is NaN at every point of
    a row: a broken network (NaN weights, a division by zero), not a forecast.

    Called by the rollouts on their first step only (one reduction over one step): a model
    that diverges later along a rollout may grow large or overflow, and its forecast is
    returned as it is.

    Parameters
    ----------
    y : torch.Tensor or numpy.ndarray
        The first step's states ``(B, C, H, W)``.
    name : str
        The model's name, for the message.
    x : torch.Tensor or numpy.ndarray, optional
        The input pairs ``(B, 2, C, H, W)``: only rows whose input is finite are checked
        (default: every row, for inputs checked finite already).

    Raises
    ------
    ValueError
        A row of ``y`` (from a finite input) is NaN everywhere.

    Examples
    --------
    >>> check_first_step(np.zeros((2, 1, 2, 2)), "mine")
    >>> check_first_step(np.full((2, 1, 2, 2), np.nan), "mine")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: model 'mine' returned NaN everywhere at its first step, for 2 of 2 input pairs...
    """
    y = torch.as_tensor(y).detach()
    nan_rows = torch.isnan(y.reshape(y.shape[0], -1)).all(dim=1)
    if x is not None:
        x = torch.as_tensor(x).detach().to(y.device)
        nan_rows &= torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    bad = int(nan_rows.sum())
    if bad:
        raise ValueError(
            f"model {name!r} returned NaN everywhere at its first step, for {bad} of "
            f"{y.shape[0]} input pairs (finite initial states): its network is broken (NaN "
            "weights or a division by zero?); check model(x) on one input pair"
        )


def _check_grid(latitude: np.ndarray, longitude: np.ndarray, name: str) -> None:
    """Refuse a model grid outside xfuxi's canonical layout: latitude ascending (south to
    north), longitude in ``[0, 360)`` (the layout data are brought into, so that a model on
    another order could never forecast)."""
    if latitude.ndim != 1 or longitude.ndim != 1:
        raise ValueError(
            f"model {name!r}: latitude and longitude must be 1-D; got shapes "
            f"{latitude.shape} and {longitude.shape}"
        )
    if latitude.size > 1 and not np.all(np.diff(latitude) > 0):
        raise ValueError(
            f"model {name!r}: its grid's latitude ({latitude.size} points, {_span(latitude)}) "
            "must ascend strictly, south to north, as xfuxi's canonical data do; give the "
            "grid south to north (latitude[::-1]) with a network that reads its rows in "
            "that order"
        )
    if longitude.size and (longitude.min() < 0 or longitude.max() >= 360):
        raise ValueError(
            f"model {name!r}: its grid's longitude ({longitude.size} points, "
            f"{_span(longitude)}) must lie in [0, 360), as xfuxi's canonical data do; give "
            "it as longitude % 360 in ascending order"
        )


#: the variable that only the embedded Held–Suarez world has (no reanalysis holds it)
_WORLD_ONLY_VARIABLE = "passive_tracer"


def _is_world_model(model: Any) -> bool:
    """Whether ``model`` forecasts the embedded Held–Suarez world: its channels hold the
    world's own ``passive_tracer``, which no reanalysis has (every shipped forecast model
    does)."""
    return any(var == _WORLD_ONLY_VARIABLE for var, _ in getattr(model, "channels", ()))


def _span(values: np.ndarray) -> str:
    """``first..last`` of a coordinate, for messages."""
    return f"{values[0]:g}..{values[-1]:g}" if values.size else "empty"


def channels_without_statistics(model: Any) -> list[str]:
    """The names of the model's channels of a variable with physical units that carry no
    normalization statistics: the identity stand-in (mean 0 and std 1) of a model wrapped
    without ``stats``. Statistics the user gave (a :class:`NormStats` of their own, even of
    mean 0 and std 1: a model of anomalies in K) are statistics; an object whose stats are
    not a NormStats is judged by its values. Their std is no physical scale: a default
    taken from it (a background-error spread, an observation error, a divergence bound)
    would be 1 K, 1 m s⁻¹ and 1 m² s⁻² alike, so such defaults are refused for these
    channels. A variable xfuxi has no units for (Lorenz-96's dimensionless ``x``) keeps 1
    as its scale and is not listed.

    Examples
    --------
    >>> m = ForecastModel(torch.nn.Identity(), channels=[("temperature", 850.0)],
    ...                   latitude=[0.0], longitude=[0.0, 180.0])
    >>> channels_without_statistics(m)
    ['temperature@850']
    """
    mean = np.asarray(model.stats.mean, dtype="float64").ravel()
    std = np.asarray(model.stats.std, dtype="float64").ravel()
    if getattr(model.stats, "stand_in", None) is False:  # statistics the user gave
        return []
    missing = ~(std > 0) | ((mean == 0.0) & (std == 1.0))
    return [
        channel_name(c)
        for c, m in zip(model.channels, missing, strict=True)
        if m and str(c[0]) in VARIABLES
    ]


def check_plausible(ds: xr.Dataset, model: Any) -> None:
    """Refuse states far outside a model's normalization statistics (wrong units, corrupt).

    For each channel with statistics, the data are refused if their mean over all times
    and grid points lies more than :data:`PLAUSIBLE_MEAN_STDS` stds from the model's mean,
    or any finite value more than :data:`PLAUSIBLE_VALUE_STDS` stds from it. Such data
    cannot be what the model was trained on: typically temperatures in °C taken as K,
    pressures in hPa or geopotential height in m. Channels without statistics (mean 0 and
    std 1, the identity of a model wrapped without ``stats``) are not checked; for those,
    ``xfuxi.validate(ds, check_ranges=True)`` checks temperatures and pressures against
    their physical ranges. Dask-backed data are reduced in one pass.

    Forecasts, ensembles and 4DVar call this on the states they start from (not on
    increments or error samples, whose values are differences).

    Parameters
    ----------
    ds : xarray.Dataset
        Canonical states holding the model's channels (see
        :meth:`ForecastModel.check_dataset`).
    model : ForecastModel or Cascade
        Gives the channels, the statistics and the name for the message.

    Raises
    ------
    SchemaError
        Naming each implausible channel, its mean or extreme value, the model's mean and
        std, and the likely unit mistake where one explains it.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> m = ForecastModel(torch.nn.Identity(), channels=[("temperature", 850.0)],
    ...                   latitude=[0.0], longitude=[0.0, 180.0],
    ...                   stats=NormStats(np.array([280.0]), np.array([10.0]), np.ones(1)))
    >>> celsius = xr.Dataset({"temperature": (("level", "latitude", "longitude"),
    ...                                       np.full((1, 1, 2), 7.0))},
    ...                      coords={"level": [850.0], "latitude": [0.0],
    ...                              "longitude": [0.0, 180.0]})
    >>> check_plausible(celsius + 273.15, m)
    >>> check_plausible(celsius, m)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xfuxi.data.schema.SchemaError: ... temperature@850: mean 7 is 27.3 std ... °C instead of K?...
    """
    mean = np.asarray(model.stats.mean, dtype="float64")
    std = np.asarray(model.stats.std, dtype="float64")
    has_stats = (std > 0) & ~((mean == 0.0) & (std == 1.0))
    checked, reductions = [], []
    for i, (var, level) in enumerate(model.channels):
        if not has_stats[i]:
            continue
        if var not in ds.data_vars:  # a raw KeyError / IndexError before
            raise SchemaError(f"the data lack the model's variable {var!r}")
        da = ds[var]
        if level is not None:
            levels = ds["level"].values if "level" in ds.coords else np.array([])
            index = np.nonzero(np.isclose(levels, level))[0]
            if index.size == 0:
                raise SchemaError(f"the data lack level {level:g} hPa of {var!r}")
            da = da.isel(level=int(index[0]), drop=True)
        checked.append(i)
        reductions += [da.mean(dtype="float64"), da.min(), da.max()]
    if not checked:
        return
    values = [r.data for r in reductions]
    if any(r.chunks is not None for r in reductions):
        import dask

        values = list(dask.compute(*values))
    found = np.asarray([float(v) for v in values]).reshape(-1, 3)
    problems = []
    for i, (field_mean, lowest, highest) in zip(checked, found):
        far = lowest if abs(lowest - mean[i]) > abs(highest - mean[i]) else highest
        off_mean, off_value = abs(field_mean - mean[i]) / std[i], abs(far - mean[i]) / std[i]
        if np.isfinite(off_mean) and off_mean > PLAUSIBLE_MEAN_STDS:
            what = f"mean {field_mean:.6g} is {off_mean:.3g} std"
        elif np.isfinite(off_value) and off_value > PLAUSIBLE_VALUE_STDS:
            what = f"value {far:.6g} is {off_value:.3g} std"
        else:
            continue
        var = model.channels[i][0]
        cause = likely_unit_mistake(var, field_mean, mean[i], PLAUSIBLE_MEAN_STDS * std[i] / 2)
        problems.append(
            f"{channel_name(model.channels[i])}: {what} from the model's mean {mean[i]:.6g} "
            f"(std {std[i]:.3g})" + (f": {cause}?" if cause else "")
        )
    if problems:
        raise SchemaError(
            f"data are implausible for model {model.name!r} (its normalization statistics): "
            + "; ".join(problems)
            + ". Check the units (xfuxi expects SI units as in xfuxi.data.schema.VARIABLES)"
        )


def wrap_model(
    module: torch.nn.Module,
    *,
    channels: Sequence[Channel],
    latitude: Any,
    longitude: Any,
    stats: NormStats | None = None,
    residual: bool = False,
    timestep_hours: float = 6.0,
    name: str | None = None,
) -> ForecastModel:
    """Bring your own model: wrap any ``torch.nn.Module`` into the xfuxi call contract.

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``(B, 2, C, H, W)`` to ``(B, C, H, W)``: normalised by ``stats`` if given
        (identity otherwise, i.e. physical units in and out).
    channels, latitude, longitude, stats
        As for :class:`ForecastModel`.
    residual : bool, default False
        As for :class:`ForecastModel`, but off by default (there it is on): a wrapped
        module is taken to return the next state itself, as ``module`` above describes.
        Give True if it predicts the tendency over one step in units of ``diff_std``.
    timestep_hours : float, default 6
        The model's time step in hours (positive and finite), as for
        :class:`ForecastModel`: a 12-hour model gives 12 (its forecasts' leads, the input
        pairs it reads and its 4DVar slots are 12 hours apart).
    name : str, optional
        Name recorded in the provenance of forecasts; the module's class name if omitted.

    Returns
    -------
    ForecastModel
        Usable by :func:`xfuxi.forecast`, ensembles and 4DVar.

    Raises
    ------
    TypeError
        ``module`` is not a torch module, or is a ForecastModel already.
    ValueError
        A latitude that does not ascend strictly (south to north), a longitude outside
        ``[0, 360)`` (see :class:`ForecastModel`), or a ``timestep_hours`` that is not
        positive and finite.

    Notes
    -----
    The model runs in the dtype of the module's parameters. A module without parameters
    runs in xfuxi's ``dtype`` option (``xfuxi.set_options(dtype="float64")``; float32 by
    default), in the dtype the wrapped model was cast to (``model.double()``), or in the
    one asked of a function (``dtype=``). Its output is checked to be a floating-point
    tensor ``(B, C, H, W)`` on every call.

    Examples
    --------
    >>> import torch
    >>> class Persist(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x[:, 1]
    >>> m = wrap_model(Persist(), channels=[("temperature", 500.0)],
    ...                latitude=[-45.0, 45.0], longitude=[0.0, 90.0, 180.0, 270.0])
    >>> x = torch.randn(3, 2, 1, 2, 4)
    >>> bool(torch.equal(m(x), x[:, 1]))
    True
    >>> m12 = wrap_model(Persist(), channels=[("temperature", 500.0)], latitude=[-45.0, 45.0],
    ...                  longitude=[0.0, 90.0, 180.0, 270.0], timestep_hours=12)
    >>> str(m12.timestep)
    '43200 seconds'
    """
    if isinstance(module, ForecastModel):  # it was returned as it was, every argument unused
        raise TypeError(
            f"{module.name!r} is a ForecastModel already, with its own channels, grid, "
            "statistics and residual setting; use it as it is, or wrap its network "
            "(wrap_model(model.net, ...)) to give it others"
        )
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")
    return ForecastModel(
        module,
        channels=channels,
        latitude=latitude,
        longitude=longitude,
        stats=stats,
        residual=residual,
        timestep_hours=timestep_hours,
        name=name or type(module).__name__,
    )


def with_single_time_input(model: ForecastModel) -> ForecastModel:
    """A copy of ``model`` that forecasts from the later input time alone.

    The copy keeps the two-time call contract (pairs ``(B, 2, C, H, W)`` in) but replaces
    the earlier time of each pair by the later one before its network sees it, so that a
    forecast depends on the state at t0 only: an error on t0 is carried as the state
    carries it, not read as a six-hour change against the earlier time. The network's
    weights are copied unchanged, so the copy must be fine-tuned in this form before it
    forecasts well (``xfuxi train --from-model DIR`` on the copy saved with
    :func:`~xfuxi.models.checkpoint.save_model`; docs/cycling.md, "A forecast model with
    one input time"). The setting is ``config["input_times"] = 1``, saved with the
    checkpoint and restored by :func:`~xfuxi.models.registry.load_model`.

    Parameters
    ----------
    model : ForecastModel
        Not changed; the copy shares nothing mutable with it (an output filter is kept).

    Returns
    -------
    ForecastModel
        Same channels, grid, statistics and time step; ``name`` gets ``"+1t"`` (unless
        ``model`` reads one time already).

    Raises
    ------
    TypeError
        ``model`` is not a ForecastModel (a :class:`~xfuxi.models.cascade.Cascade`, say).

    Examples
    --------
    >>> import torch, xfuxi
    >>> model = xfuxi.with_single_time_input(xfuxi.load_model("fuxi-hs-t21"))
    >>> model.name, model.input_times
    ('fuxi-hs-t21+1t', 1)
    >>> x = model.denormalize(torch.randn(1, 2, model.n_channels, *model.grid_shape))
    >>> other = x.clone()
    >>> other[:, 0] += 1.0  # another earlier time: the same forecast
    >>> with torch.no_grad():
    ...     bool(torch.equal(model(x), model(other)))
    True
    """
    if not isinstance(model, ForecastModel):
        raise TypeError(f"expected a ForecastModel; got {type(model).__name__}")
    out = copy.deepcopy(model)
    out.config = dict(out.config)
    out.config["input_times"] = 1
    if model.input_times != 1:
        out.input_times = 1
        out.name = f"{model.name}+1t"
    return out
