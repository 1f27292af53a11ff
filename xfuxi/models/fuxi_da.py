"""The FuXi-DA network: learned assimilation of satellite radiances into a FuXi background.

After Xu et al. (2024), "FuXi-DA: a generalized deep learning data assimilation framework
for assimilating satellite observations" (arXiv 2404.08522):

* a **background branch** encodes the normalised background state;
* an **observation branch** encodes, per frame, the normalised brightness temperatures
  (missing pixels set to 0), the missing-data mask, cos(zenith angle) (0 where missing),
  and the time of the frame (cos/sin of the day of year and of the time of day), plus
  sin(latitude) and cos/sin(longitude) once — what a real system knows about each pixel,
  so that the network is not tied to one satellite position; optionally
  (``departure_input``) also the departures of the radiances from the background seen
  through the nominal operator (O − H(xb), as a variational system computes them), and
  (``gradient_input``) those departures carried back into the column by the transpose of
  the operator's Jacobian at the background (H'ᵀ (O − H(xb)), the direction of a
  variational analysis's first step), computed inside the model from the departures it is
  given;
* a **condition branch** encodes both together;
* at every scale of a U-Net-like encoder a **fusion block** takes the three and returns a
  background-increment feature, observation-bias features (subtracted from the observation
  features before the next scale) and the condition of the next scale; a decoder merges
  the increment features of all scales and a **zero-initialised head** gives the increment
  (in units of the background's 6-hour difference std), so that an untrained network
  returns the background;
* every convolution is padded periodically in longitude.

The CORR variant is the same network without the observation branch (a learned correction
of the background). The analysis is ``background + increment``.

Checkpoints go through the one store (:mod:`xfuxi.models.checkpoint`): ``config.json`` and
``model.safetensors`` with its manifest, kind ``"da-model"``. See the documentation
(docs/fuxi_da.md).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from ..config import is_integer
from ..data.channels import Channel, channel_name, parse_channel_name
from ..observations.imager import CHANNELS as IMAGER_CHANNELS
from ..observations.imager import (
    brightness_temperature,
    departure_gradient,
    imager_state_channels,
)
from . import checkpoint as store
from .base import NormStats, isolated_rng, register_stats_buffers
from .checkpoint import CONFIG, WEIGHTS
from .fuxi import PeriodicConv2d, periodic_conv2d

__all__ = [
    "DA_FORMAT",
    "DA_KIND",
    "FuXiDA",
    "FuXiDANet",
    "assi_from_corr",
    "da_model_files",
    "load_da_model",
    "n_gradient_inputs",
    "n_observation_inputs",
    "observation_features",
    "save_da_model",
    "shipped_da_models",
]

#: format tag of a FuXi-DA checkpoint's config.json
DA_FORMAT = "xfuxi-da-model/1"
#: the checkpoint kind of FuXi-DA models
DA_KIND = "da-model"
#: brightness temperatures are normalised as (BT − BT_MEAN) / BT_SCALE
BT_MEAN, BT_SCALE = 250.0, 30.0
#: per-frame extra inputs: cos(zenith), cos/sin(time of day), cos/sin(day of year)
FRAME_EXTRAS = 5
#: inputs shared by all frames: sin(latitude), cos/sin(longitude)
POSITION_INPUTS = 3
#: departures O − H(xb) are given to the network as (O − H(xb)) / DEPARTURE_SCALE
DEPARTURE_SCALE = 10.0
#: kernel (grid points, square) of a network's linear update
LINEAR_KERNEL = 5


def n_observation_inputs(
    frames: int, sensor_channels: int, *, departure_input: bool = False
) -> int:
    """The number of observation-branch input channels (0 without imager channels).

    Per frame: 2 per imager channel (radiance, mask), one more with ``departure_input``
    (the departure), and :data:`FRAME_EXTRAS`; then :data:`POSITION_INPUTS`.

    >>> n_observation_inputs(3, 8), n_observation_inputs(3, 8, departure_input=True)
    (66, 90)
    """
    if not sensor_channels:
        return 0
    per = (3 if departure_input else 2) * sensor_channels + FRAME_EXTRAS
    return frames * per + POSITION_INPUTS


def n_linear_inputs(frames: int, sensor_channels: int) -> int:
    """The number of inputs of the linear update: a departure and a mask per frame and
    imager channel (:meth:`FuXiDA.update_features`).

    >>> n_linear_inputs(3, 8)
    48
    """
    return 2 * frames * sensor_channels


def n_gradient_inputs(channels: Sequence[Channel]) -> int:
    """The number of ``gradient_input`` channels for a model's ``channels``: temperature and
    tracer at each level the imager reads, and surface pressure.

    >>> n_gradient_inputs([("temperature", 500.0), ("passive_tracer", 500.0),
    ...                    ("surface_pressure", None), ("geopotential", 500.0)])
    3
    """
    return len(imager_state_channels(channels))


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        PeriodicConv2d(cin, cout, 3), nn.GELU(), PeriodicConv2d(cout, cout, 3), nn.GELU()
    )


class _Fusion(nn.Module):
    """Fusion block: (background, observation, condition) features → (increment, bias, next)."""

    def __init__(self, width: int, observations: bool) -> None:
        super().__init__()
        self.mix = _block((3 if observations else 2) * width, width)
        self.increment = PeriodicConv2d(width, width, 3)
        self.bias = PeriodicConv2d(width, width, 3) if observations else None
        self.condition = PeriodicConv2d(width, width, 3)

    def forward(
        self, b: torch.Tensor, o: torch.Tensor | None, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        h = self.mix(torch.cat([b, c] if o is None else [b, o, c], 1))
        # the three output convolutions read the same features: one convolution with their
        # weights stacked (the same values, bit for bit on this CPU; fewer, larger operations:
        # docs/fuxi_da.md, "Side by side with En4DVar")
        heads = [self.increment, self.condition]
        if self.bias is not None:
            heads.insert(1, self.bias)
        out = periodic_conv2d(
            h,
            torch.cat([m.weight for m in heads]),
            torch.cat([m.bias for m in heads]),
            self.increment.pad,
        ).split([m.out_channels for m in heads], 1)
        if self.bias is None:
            return out[0], None, out[1]
        return out[0], out[1], out[2]


class FuXiDANet(nn.Module):
    """The FuXi-DA network on normalised tensors.

    Parameters
    ----------
    state_channels : int
        Channels of the background (and of the increment).
    obs_channels : int
        Channels of the observation input (0: the CORR variant, no observation branch).
    width : int, default 32
        Feature channels at every scale.
    scales : int, default 3
        Scales of the U-Net (the grid is halved ``scales − 1`` times; both grid sizes must
        be divisible by ``2 ** (scales − 1)``).
    linear_inputs : int, default 0
        Inputs of the linear update (``linear``: one :data:`LINEAR_KERNEL` ×
        :data:`LINEAR_KERNEL` convolution to the state channels, zero-initialised; 0: none).
        :class:`FuXiDA` applies it to the departures from the network's own analysis
        (``linear_update``); :meth:`forward` returns the network's increment without it.

    Notes
    -----
    The last (coarsest) fusion block's ``bias`` and ``condition`` outputs feed no further
    scale, so their weights get no gradient and only weight decay moves them in training;
    they are kept so that every fusion block has one shape (and saved networks load).

    Examples
    --------
    >>> net = FuXiDANet(3, 7, width=4, scales=2)
    >>> out = net(torch.randn(1, 3, 4, 8), torch.randn(1, 7, 4, 8))
    >>> out.shape, float(out.abs().max())  # zero-initialised head: no increment yet
    (torch.Size([1, 3, 4, 8]), 0.0)
    """

    def __init__(
        self,
        state_channels: int,
        obs_channels: int,
        *,
        width: int = 32,
        scales: int = 3,
        linear_inputs: int = 0,
    ) -> None:
        super().__init__()
        if scales < 1 or width < 1 or state_channels < 1 or obs_channels < 0:
            raise ValueError(
                f"need scales >= 1, width >= 1, state_channels >= 1 and obs_channels >= 0; got "
                f"{scales}, {width}, {state_channels}, {obs_channels}"
            )
        if linear_inputs < 0 or (linear_inputs and obs_channels == 0):
            raise ValueError(
                f"linear_inputs must be >= 0, and 0 without observations (CORR); got "
                f"{linear_inputs} with {obs_channels} observation channels"
            )
        self.config = {
            "state_channels": int(state_channels),
            "obs_channels": int(obs_channels),
            "width": int(width),
            "scales": int(scales),
        }
        if linear_inputs:  # written only when set: files of networks without it are unchanged
            self.config["linear_inputs"] = int(linear_inputs)
        obs = obs_channels > 0
        self.scales = int(scales)
        self.background_in = _block(state_channels, width)
        self.observation_in = _block(obs_channels, width) if obs else None
        self.condition_in = _block(state_channels + obs_channels, width)
        self.background_down = nn.ModuleList(_block(width, width) for _ in range(scales - 1))
        self.observation_down = (
            nn.ModuleList(_block(width, width) for _ in range(scales - 1)) if obs else None
        )
        self.fusion = nn.ModuleList(_Fusion(width, obs) for _ in range(scales))
        self.up = nn.ModuleList(_block(2 * width, width) for _ in range(scales - 1))
        self.head = PeriodicConv2d(width, state_channels, 3)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.linear = None
        if linear_inputs:
            self.linear = PeriodicConv2d(linear_inputs, state_channels, LINEAR_KERNEL)
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)
        # convolution weights in the channels-last layout: on CPU the forward pass of the
        # shipped network takes about a fifth less time (measured by bench_fuxi_da.py,
        # docs/fuxi_da.md "Side by side with En4DVar"); inputs may have either layout,
        # outputs come in the standard one, files are written contiguous as before
        self.to(memory_format=torch.channels_last)

    @property
    def uses_observations(self) -> bool:
        return self.observation_in is not None

    def forward(
        self, background: torch.Tensor, observations: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Increment (normalised) from the background and observation inputs."""
        h, w = background.shape[-2:]
        k = 2 ** (self.scales - 1)
        if h % k or w % k:
            raise ValueError(
                f"the grid {h} x {w} is not divisible by {k} (2 ** (scales - 1) = {k})"
            )
        if self.uses_observations and observations is None:
            raise ValueError("this network assimilates observations; give them")
        if not self.uses_observations:
            observations = None
        # the convolutions' layout (weights and activations channels-last): converted once
        # here instead of inside each first convolution
        background = background.contiguous(memory_format=torch.channels_last)
        if observations is not None:
            observations = observations.contiguous(memory_format=torch.channels_last)
        inputs = background if observations is None else torch.cat([background, observations], 1)
        b = self.background_in(background)
        o = self.observation_in(observations) if self.observation_in is not None else None
        c = self.condition_in(inputs)
        increments = []
        bias = None
        for s in range(self.scales):
            if s > 0:
                b = self.background_down[s - 1](F.avg_pool2d(b, 2))
                c = F.avg_pool2d(c, 2)
                if o is not None and self.observation_down is not None:
                    o = self.observation_down[s - 1](F.avg_pool2d(o - bias, 2))
            inc, bias, c = self.fusion[s](b, o, c)
            increments.append(inc)
        u = increments[-1]
        for s in reversed(range(self.scales - 1)):
            u = F.interpolate(u, size=increments[s].shape[-2:], mode="nearest")
            u = self.up[s](torch.cat([u, increments[s]], 1))
        return self.head(u).contiguous()


def observation_features(
    brightness_temperature: np.ndarray,
    zenith: np.ndarray,
    *,
    latitude: Any,
    longitude: Any,
    time: Any,
    frames: Sequence[float],
    zenith_input: bool = True,
    position_input: bool = True,
    departure: np.ndarray | None = None,
) -> np.ndarray:
    """The observation branch's input for one analysis time.

    Parameters
    ----------
    brightness_temperature : array (F, S, H, W)
        Frames × channels, NaN where missing.
    zenith : array (H, W)
        Zenith angle (degrees, NaN where no satellite sees the pixel).
    latitude, longitude : array-like
    time : datetime-like
        The analysis time.
    frames : sequence of float
        Frame offsets (hours).
    zenith_input, position_input : bool, default True
        Give the zenith angle, and the position and time (False: zeros, for ablations).
    departure : array (F, S, H, W), optional
        The radiances minus the background's through the nominal operator (K); given, they
        follow each frame's mask as ``departure / DEPARTURE_SCALE`` (0 where missing).

    Returns
    -------
    numpy.ndarray (F * (2 S + 5) + 3, H, W), float32 (F * (3 S + 5) + 3 with ``departure``)
        Per frame: normalised radiances (0 where missing), the mask, [the departures,]
        cos(zenith), cos/sin of the time of day and of the day of year; then sin(latitude),
        cos/sin(longitude).

    Examples
    --------
    >>> bt = np.full((1, 2, 2, 4), 250.0); bt[0, 1, 0, 0] = np.nan
    >>> f = observation_features(bt, np.zeros((2, 4)), latitude=[-45, 45],
    ...                          longitude=[0, 90, 180, 270], time="2020-01-01", frames=[0])
    >>> f.shape, float(f[3, 0, 0])  # mask of channel 2 at the missing pixel
    ((12, 2, 4), 0.0)
    >>> dep = np.ones((1, 2, 2, 4))
    >>> g = observation_features(bt, np.zeros((2, 4)), latitude=[-45, 45],
    ...                          longitude=[0, 90, 180, 270], time="2020-01-01", frames=[0],
    ...                          departure=dep)
    >>> g.shape, round(float(g[4, 0, 0]), 6), float(g[5, 0, 0])  # departures: 0 where missing
    ((14, 2, 4), 0.1, 0.0)
    """
    bt = np.asarray(brightness_temperature, dtype="float64")
    n_f, n_s, h, w = bt.shape
    mask = np.isfinite(bt)
    if departure is not None:
        departure = np.asarray(departure, dtype="float64")
        if departure.shape != bt.shape:
            raise ValueError(f"departure has shape {departure.shape}; the radiances {bt.shape}")
        mask &= np.isfinite(departure)
    zen = np.asarray(zenith, dtype="float64")
    cz = np.where(np.isfinite(zen), np.cos(np.radians(np.nan_to_num(zen))), 0.0)
    # the float64 values, stored in float32 (one allocation, no concatenation)
    per = n_s * (3 if departure is not None else 2) + FRAME_EXTRAS
    out = np.zeros((n_f * per + POSITION_INPUTS, h, w), dtype="float32")
    t0 = pd.Timestamp(time)
    for f in range(n_f):
        block = out[f * per : (f + 1) * per]
        np.divide(bt[f] - BT_MEAN, BT_SCALE, out=block[:n_s], where=mask[f])
        block[n_s : 2 * n_s] = mask[f]
        k = 2 * n_s
        if departure is not None:
            np.divide(departure[f], DEPARTURE_SCALE, out=block[k : k + n_s], where=mask[f])
            k += n_s
        if zenith_input:
            block[k] = np.where(mask[f].any(0), cz, 0.0)
        if position_input:
            when = t0 + pd.Timedelta(hours=float(frames[f]))
            tod = 2 * np.pi * (when.hour + when.minute / 60.0) / 24.0
            doy = 2 * np.pi * (when.day_of_year - 1) / 365.25
            for j, v in enumerate([np.cos(tod), np.sin(tod), np.cos(doy), np.sin(doy)]):
                block[k + 1 + j] = v
    if position_input:
        lat = np.radians(np.asarray(latitude, dtype="float64"))[:, None]
        lon = np.radians(np.asarray(longitude, dtype="float64"))[None, :]
        out[-3] = np.sin(lat)
        out[-2] = np.cos(lon)
        out[-1] = np.sin(lon)
    return out


class FuXiDA(nn.Module):
    """A FuXi-DA model: the network with what it was built for (physical units in and out).

    Parameters
    ----------
    net : FuXiDANet
    channels : sequence of (variable, level)
        The background's channels (those of the forecast model).
    latitude, longitude : array-like
        The grid.
    stats : NormStats
        Normalization of the background; the increment is in units of ``diff_std``.
    sensor_channels : sequence of str
        The imager channels it assimilates, in order (empty for CORR).
    frames : sequence of float
        The frame offsets (hours) it takes.
    satellites : sequence of float
        Sub-satellite longitudes of the training radiances (recorded; checked at use).
    zenith_input, position_input : bool
        Whether the zenith angle, and the position and time, were given (ablations).
    departure_input : bool, default False
        Whether the network also takes the departures O − H(xb) through the nominal
        operator (:func:`xfuxi.assimilation.da.da_inputs` computes them).
    gradient_input : bool, default False
        Whether the network also takes ``H'(xb)ᵀ d``, the frames' departures ``d`` summed
        and carried back into the column by the nominal operator
        (:func:`xfuxi.observations.imager.departure_gradient`), in units of the channels'
        6-hour difference std per 10 K of departure and per frame. :meth:`forward` computes
        it from the background and the departure features (so that channels dropped from
        the features are dropped from it too) and compresses it with ``asinh``; needs
        ``departure_input`` and ``zenith_input``. The network takes
        :func:`n_gradient_inputs` more observation channels than the features hold.
    screen_threshold : float, optional
        Screen the inputs for clouds as a variational system does: a pixel whose window
        channel (``ir10.8``) departure O − H(xb) is below ``−screen_threshold`` K is given
        to the network as missing in every channel of that frame
        (:func:`xfuxi.assimilation.da.observation_inputs`). Default None: all-sky, every
        pixel as observed (the paper's choice). Needs ``departure_input`` and ``ir10.8``.
    departure_context : bool, default False
        Whether the network also takes, for each imager channel, the RMS of its departures
        over the pixels it observes in all frames (in units of :data:`DEPARTURE_SCALE`, one
        constant plane per channel, 0 where the channel is missing everywhere):
        :meth:`forward` computes them from the departure features. They tell the network,
        everywhere on the grid, how far the background is from the observations, which a
        background alone does not (a 6-hour forecast from the truth and one from a cycle
        that has drifted call for increments of different sizes; docs/fuxi_da.md). Needs
        ``departure_input``; :attr:`n_context_inputs` more observation channels.
    linear_update : bool, default False
        After the network's increment, compute the departures O − H(x) from the network's
        analysis ``x`` through the nominal operator (clear-sky; the pixels the inputs give,
        screened as they are) and add a linear map of them: the network's ``linear``
        convolution (:data:`LINEAR_KERNEL` × :data:`LINEAR_KERNEL` grid points) of the
        departures and the masks of every frame and channel (:meth:`update_features`), a
        second, linear analysis step from the first one's state. Zero at first
        (:func:`with_linear_update` adds it to a trained network); needs the zenith input
        and temperature, tracer and surface pressure among the channels
        (docs/fuxi_da.md, "What the radiances can tell").
    name : str
    metadata : dict, optional
        Training settings and scores.

    Raises
    ------
    ValueError
        A grid whose sizes are not multiples of ``2 ** (scales − 1)`` (the U-Net halves it
        ``scales − 1`` times); an unknown imager channel; inconsistent options (named).
    """

    def __init__(
        self,
        net: FuXiDANet,
        *,
        channels: Sequence[Channel],
        latitude: Any,
        longitude: Any,
        stats: NormStats,
        sensor_channels: Sequence[str] = (),
        frames: Sequence[float] = (0.0,),
        satellites: Sequence[float] = (),
        zenith_input: bool = True,
        position_input: bool = True,
        departure_input: bool = False,
        gradient_input: bool = False,
        screen_threshold: float | None = None,
        departure_context: bool = False,
        linear_update: bool = False,
        name: str = "fuxi-da",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        # (device type, dtype) -> (the weights' versions, a copy of ``net`` in that dtype):
        # see _autocast_network; a plain dict, so not a submodule (not in the state dict)
        self._autocast_copies: dict[tuple[str, torch.dtype], tuple[Any, FuXiDANet]] = {}
        self.channels = tuple((str(v), None if lv is None else float(lv)) for v, lv in channels)
        self.latitude = np.asarray(latitude, dtype="float64")
        self.longitude = np.asarray(longitude, dtype="float64")
        # the U-Net halves the grid scales − 1 times: refused here, not at the first
        # analysis after the radiances were made (WeatherBench2's 121 x 240 is not)
        k = 2 ** (int(net.scales) - 1)
        if self.latitude.size % k or self.longitude.size % k:
            raise ValueError(
                f"a FuXi-DA network of {net.scales} scales needs a grid whose sizes are "
                f"multiples of {k} (it is halved {net.scales - 1} times); got "
                f"{self.latitude.size} x {self.longitude.size} (WeatherBench2's 121 x 240 "
                f"and 721 x 1440 grids are not: regrid to one that is, e.g. 120 x 240)"
            )
        self.stats = stats
        self.sensor_channels = tuple(str(c) for c in sensor_channels)
        unknown = [c for c in self.sensor_channels if c not in IMAGER_CHANNELS]
        if unknown:
            raise ValueError(f"unknown imager channel(s) {unknown}; known: {list(IMAGER_CHANNELS)}")
        self.frames = tuple(float(f) for f in frames)
        self.satellites = tuple(float(s) for s in satellites)
        self.zenith_input = bool(zenith_input)
        self.position_input = bool(position_input)
        self.departure_input = bool(departure_input) and bool(self.sensor_channels)
        self.gradient_input = bool(gradient_input) and bool(self.sensor_channels)
        if self.gradient_input and not (self.departure_input and self.zenith_input):
            raise ValueError("gradient_input needs departure_input and zenith_input")
        self.screen_threshold = (
            None if screen_threshold is None or not self.sensor_channels
            else float(screen_threshold)
        )  # fmt: skip
        if self.screen_threshold is not None and not (
            self.departure_input and "ir10.8" in self.sensor_channels
            and self.screen_threshold > 0
        ):  # fmt: skip
            raise ValueError(
                "screen_threshold needs departure_input, the ir10.8 channel and a positive "
                f"threshold; got {screen_threshold!r}"
            )
        self.departure_context = bool(departure_context) and bool(self.sensor_channels)
        if self.departure_context and not self.departure_input:
            raise ValueError("departure_context needs departure_input")
        self.linear_update = bool(linear_update) and bool(self.sensor_channels)
        if self.linear_update and not self.zenith_input:
            raise ValueError("linear_update needs zenith_input (the operator needs the angle)")
        n_linear = self.n_linear_inputs
        if net.config.get("linear_inputs", 0) != n_linear:
            raise ValueError(
                f"the network's linear update takes {net.config.get('linear_inputs', 0)} "
                f"inputs; the model needs {n_linear} (linear_update={self.linear_update}, "
                f"{len(self.frames)} frames x {len(self.sensor_channels)} imager channels)"
            )
        # the operator's state channels (temperature, tracer, surface pressure) and levels
        self._operator_rows = imager_state_channels(self.channels) if self.linear_update else []
        self._operator_levels = sorted(
            lv for v, lv in self.channels if v == "temperature" and lv is not None
        )
        self.name = name
        self.metadata = dict(metadata or {})
        rows = imager_state_channels(self.channels) if self.gradient_input else []
        self._gradient_rows = rows
        expected = self.n_obs_channels + len(rows) + self.n_context_inputs
        if net.config["obs_channels"] != expected or net.config["state_channels"] != len(
            self.channels
        ):
            raise ValueError(
                f"the network takes {net.config['state_channels']} state and "
                f"{net.config['obs_channels']} observation channels; the model has "
                f"{len(self.channels)} state channels and needs {expected} observation "
                f"channels ({len(self.frames)} frames x {len(self.sensor_channels)} imager "
                f"channels, departure_input={self.departure_input}, "
                f"gradient_input={self.gradient_input}, "
                f"departure_context={self.departure_context})"
            )
        register_stats_buffers(self, stats, len(self.channels))

    @property
    def uses_observations(self) -> bool:
        return bool(self.sensor_channels)

    @property
    def n_linear_inputs(self) -> int:
        """Inputs of the linear update: a departure and a mask per frame and imager channel
        (0 without ``linear_update``)."""
        if not self.linear_update:
            return 0
        return n_linear_inputs(len(self.frames), len(self.sensor_channels))

    @property
    def n_obs_channels(self) -> int:
        """The observation features the caller gives (without the gradient channels, which
        :meth:`forward` computes)."""
        return n_observation_inputs(
            len(self.frames), len(self.sensor_channels), departure_input=self.departure_input
        )

    @property
    def n_context_inputs(self) -> int:
        """The ``departure_context`` channels :meth:`forward` adds (one per imager channel)."""
        return len(self.sensor_channels) if self.departure_context else 0

    @property
    def grid_shape(self) -> tuple[int, int]:
        return (self.latitude.size, self.longitude.size)

    def forward(
        self, background: torch.Tensor, observations: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Increment (physical units) ``(B, C, H, W)`` from a background in physical units."""
        increment = self.network_increment(background, observations)
        if self.uses_observations and self.linear_update:
            feats = self.update_features(background + increment, observations)
            increment = increment + (self.net.linear(feats) * self._diff_std).contiguous()
        return increment

    def network_increment(
        self, background: torch.Tensor, observations: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The network's increment (physical units) without the linear update (the whole
        increment of a model without one)."""
        if background.ndim != 4 or background.shape[1] != len(self.channels):
            raise ValueError(
                f"expected a background (B, {len(self.channels)}, H, W); got "
                f"{tuple(background.shape)}"
            )
        xn = (background - self._mean) / self._std
        obs = observations if self.uses_observations else None
        extra = []
        if obs is not None and self.gradient_input:
            extra.append(self.gradient_features(background, obs))
        if obs is not None and self.departure_context:
            extra.append(self.context_features(obs))
        if extra:
            obs = torch.cat([obs, *extra], 1)
        low = self._autocast_network(background.device.type)
        if low is not None:
            dtype = torch.get_autocast_dtype(background.device.type)
            xn, obs = xn.to(dtype), None if obs is None else obs.to(dtype)
            # the copy's weights and inputs are in the autocast dtype already: autocast would
            # only add its dispatch to every operation
            with torch.autocast(background.device.type, enabled=False):
                return low(xn, obs) * self._diff_std
        return self.net(xn, obs) * self._diff_std

    def _autocast_network(self, device_type: str) -> FuXiDANet | None:
        """Under :func:`torch.autocast` without gradients, a copy of the network with its
        weights in the autocast dtype (made once, and again when the weights change); None
        otherwise.

        Autocast casts every convolution's weights at each call; the copy casts them once.
        Its convolutions get the same low-precision inputs and weights, and the network has
        no operation that autocast runs in float32, so it gives the same increments, bit for
        bit (tested), in less time (docs/fuxi_da.md, "Side by side with En4DVar"). The
        model keeps the copy (half the float32 weights' memory for bfloat16) until its
        weights change; it is not part of the state dict.
        """
        if torch.is_grad_enabled() or not torch.is_autocast_enabled(device_type):
            return None
        dtype = torch.get_autocast_dtype(device_type)
        try:
            versions = tuple((p.data_ptr(), p._version) for p in self.net.parameters())
        except RuntimeError:  # weights made under torch.inference_mode: no version to follow
            return None
        have = self._autocast_copies.get((device_type, dtype))
        if have is None or have[0] != versions:
            have = (versions, copy.deepcopy(self.net).to(dtype))
            self._autocast_copies[(device_type, dtype)] = have
        return have[1]

    def update_features(self, state: torch.Tensor, observations: torch.Tensor) -> torch.Tensor:
        """The linear update's inputs ``(B, 2 F S, H, W)`` for states in physical units.

        Per frame and imager channel, ``(O − H(x)) / DEPARTURE_SCALE`` with ``O`` the
        radiances of the observation features and ``H`` the nominal operator at the state
        (the zenith angle from the features' cos θ), 0 where the pixel is missing; then the
        masks in the same order. Not differentiable in the state (an input, as the
        departures are).
        """
        n_f, n_s = len(self.frames), len(self.sensor_channels)
        b, _, h, w = state.shape
        parts = [
            torch.stack([observations[:, self._frame_block(f, part)] for f in range(n_f)], 1)
            for part in (0, 1)
        ]  # (B, F, S, H, W): normalised radiances, masks
        bt, mask = parts[0].flatten(-2) * BT_SCALE + BT_MEAN, parts[1].flatten(-2)
        out = state.new_zeros((b, 2, n_f, n_s, h * w))
        out[:, 1] = mask
        cols = torch.nonzero((mask > 0).flatten(0, 2).any(0)).squeeze(1)
        if cols.numel():
            zen = self._feature_zenith(observations).flatten(-2)[:, cols].unsqueeze(-2)
            rows, n = self._operator_rows, len(self._operator_levels)
            x = state.detach().flatten(-2)[:, rows][..., cols].unsqueeze(-2)  # (B, 2n+1, 1, P)
            hx = brightness_temperature(
                x[:, :n], x[:, n : 2 * n], x[:, 2 * n], zen.to(x.dtype),
                levels=self._operator_levels, channels=self.sensor_channels,
            )[..., 0, :]  # fmt: skip
            m = mask[..., cols]
            out[:, 0, ..., cols] = (bt[..., cols] - hx[:, None]) * m / DEPARTURE_SCALE
        return out.flatten(1, 3).unflatten(-1, (h, w)).to(observations.dtype)

    def _feature_zenith(self, observations: torch.Tensor) -> torch.Tensor:
        """Zenith angles (degrees, ``(B, H, W)``) from the features' cos θ: the largest over
        the frames (a frame that misses a pixel has 0 there; ~90° where none sees it)."""
        cos_z = torch.cat(
            [observations[:, self._frame_block(f, 3)] for f in range(len(self.frames))], 1
        )
        return torch.rad2deg(torch.arccos(cos_z.amax(1).clamp(1e-3, 1.0)))

    def _frame_block(self, frame: int, part: int) -> slice:
        """Where frame ``frame``'s radiances (``part`` 0), masks (1) or departures (2) are
        in the observation features (:func:`observation_features`' layout); ``part`` 3 is
        the frame's cos θ (one channel)."""
        s = len(self.sensor_channels)
        per_frame = (3 if self.departure_input else 2) * s + FRAME_EXTRAS
        lo = frame * per_frame + part * s
        return slice(lo, lo + (1 if part == 3 else s))

    def gradient_features(
        self, background: torch.Tensor, observations: torch.Tensor
    ) -> torch.Tensor:
        """The ``gradient_input`` channels ``(B, G, H, W)`` for a background (physical
        units) and its observation features (see the class's ``gradient_input``)."""
        n_f = len(self.frames)
        dep = sum(observations[:, self._frame_block(f, 2)] for f in range(n_f)) * DEPARTURE_SCALE
        zen = self._feature_zenith(observations)
        grad = departure_gradient(
            background, dep, zen, model_channels=self.channels, channels=self.sensor_channels
        )
        scale = self._diff_std[0, self._gradient_rows] / (DEPARTURE_SCALE * n_f)
        # asinh: the cloudy pixels' window departures (tens of K) do not swamp the rest
        return torch.asinh(grad * scale).to(observations.dtype)

    def context_features(self, observations: torch.Tensor) -> torch.Tensor:
        """The ``departure_context`` channels ``(B, S, H, W)`` of observation features: per
        imager channel, the RMS departure (features' units) over the pixels it sees in any
        frame, the same on the whole grid (0 where it sees none)."""
        n_f = len(self.frames)
        sq = sum(observations[:, self._frame_block(f, 2)] ** 2 for f in range(n_f))
        seen = sum(observations[:, self._frame_block(f, 1)] for f in range(n_f))
        # a missing pixel's departure and mask are 0, so the sums hold the seen pixels only
        rms = torch.sqrt(sq.sum((-2, -1)) / seen.sum((-2, -1)).clamp_min(1.0))
        return rms[:, :, None, None].expand(-1, -1, *observations.shape[-2:])

    def drop_channels(self, observations: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """Observation features with whole imager channels made missing (a copy).

        ``drop`` is a boolean ``(B, S)`` (sample, imager channel): the channel's radiances,
        mask and departures are set to 0 in every frame, as for a channel that is absent
        (training with channels dropped at random teaches the network to do without one).

        Examples
        --------
        >>> from xfuxi.models.base import NormStats
        >>> m = FuXiDA(FuXiDANet(1, n_observation_inputs(1, 2), width=2, scales=1),
        ...            channels=[("surface_pressure", None)], latitude=[0.0], longitude=[0, 180],
        ...            stats=NormStats(np.zeros(1), np.ones(1), np.ones(1)),
        ...            sensor_channels=("wv6.2", "ir10.8"), frames=[0.0])
        >>> obs = torch.ones(1, m.n_obs_channels, 1, 2)
        >>> m.drop_channels(obs, torch.tensor([[False, True]]))[0, :, 0, 0].tolist()
        [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        """
        s = len(self.sensor_channels)
        if drop.shape != (observations.shape[0], s):
            raise ValueError(
                f"drop must be (samples, imager channels) = ({observations.shape[0]}, {s}); "
                f"got {tuple(drop.shape)}"
            )
        keep = torch.ones_like(observations[:, :, :1, :1])
        for f in range(len(self.frames)):
            for part in range(3 if self.departure_input else 2):  # radiances, masks, departures
                keep[:, self._frame_block(f, part), 0, 0] = (~drop).to(keep.dtype)
        return observations * keep

    def config_dict(self) -> dict[str, Any]:
        """The JSON configuration saved with the weights."""
        return {
            "format": DA_FORMAT,
            "name": self.name,
            "net": dict(self.net.config),
            "channels": [channel_name(c) for c in self.channels],
            "latitude": self.latitude.tolist(),
            "longitude": self.longitude.tolist(),
            "stats": self.stats.to_dict(),
            "sensor_channels": list(self.sensor_channels),
            "frames": list(self.frames),
            "satellites": list(self.satellites),
            "zenith_input": self.zenith_input,
            "position_input": self.position_input,
            "departure_input": self.departure_input,
            "gradient_input": self.gradient_input,
            "screen_threshold": self.screen_threshold,
            "departure_context": self.departure_context,
            **({"linear_update": True} if self.linear_update else {}),
            "metadata": self.metadata,
        }

    def extra_repr(self) -> str:
        kind = "ASSI" if self.uses_observations else "CORR"
        return (
            f"name={self.name!r}, {kind}, channels={len(self.channels)}, grid={self.grid_shape}, "
            f"sensor_channels={list(self.sensor_channels)}, frames={list(self.frames)}"
            + (", departure_input=True" if self.departure_input else "")
            + (", gradient_input=True" if self.gradient_input else "")
            + (f", screen_threshold={self.screen_threshold:g}" if self.screen_threshold else "")
            + (", linear_update=True" if self.linear_update else "")
            + (", departure_context=True" if self.departure_context else "")
        )


def assi_from_corr(corr: FuXiDA, assi: FuXiDA) -> FuXiDA:
    """A copy of the untrained ``assi`` that starts as the trained CORR network ``corr``.

    Every weight the two networks share is copied from ``corr``; the weights that read the
    observation features in the condition branch's first convolution and in every fusion
    block's first convolution are zero, so the copy returns CORR's increment whatever the
    radiances until training teaches it to use them (the observation branch keeps its
    initialisation). A way to train ASSI without losing what CORR learned about the
    background.

    Raises
    ------
    ValueError
        ``corr`` assimilates observations, ``assi`` does not, or they differ in channels,
        grid, width or scales.

    Examples
    --------
    >>> from xfuxi.models.base import NormStats
    >>> def make(sensors):
    ...     n_obs = n_observation_inputs(1, len(sensors))
    ...     return FuXiDA(FuXiDANet(2, n_obs, width=4, scales=2),
    ...                   channels=[("temperature", 500.0), ("surface_pressure", None)],
    ...                   latitude=[-45, 45], longitude=[0, 90, 180, 270],
    ...                   stats=NormStats(np.zeros(2), np.ones(2), np.ones(2)),
    ...                   sensor_channels=sensors, frames=[0.0])
    >>> corr, assi = make(()), make(("ir10.8",))
    >>> with torch.no_grad():
    ...     _ = corr.net.head.weight.normal_()
    >>> start = assi_from_corr(corr, assi)
    >>> x, obs = torch.randn(1, 2, 2, 4), torch.randn(1, assi.n_obs_channels, 2, 4)
    >>> torch.allclose(start(x, obs), corr(x))
    True
    """
    if corr.uses_observations or not assi.uses_observations:
        raise ValueError("assi_from_corr needs a CORR network and an ASSI network, in that order")
    for what in ("width", "scales", "state_channels"):
        if corr.net.config[what] != assi.net.config[what]:
            raise ValueError(
                f"the networks differ in {what}: CORR {corr.net.config[what]}, "
                f"ASSI {assi.net.config[what]}"
            )
    if tuple(corr.channels) != tuple(assi.channels) or corr.grid_shape != assi.grid_shape:
        raise ValueError("the networks have different channels or grids")
    out = copy.deepcopy(assi)
    src, dst = corr.net.state_dict(), out.net.state_dict()
    n_state, width = assi.net.config["state_channels"], assi.net.config["width"]
    with torch.no_grad():
        for key, value in dst.items():
            if key not in src:
                continue  # the observation branch and the bias convolutions: as initialised
            if src[key].shape == value.shape:
                value.copy_(src[key])
            elif key == "condition_in.0.weight":  # input: [state, observations]
                value.zero_()
                value[:, :n_state] = src[key]
            elif key.startswith("fusion.") and key.endswith(".mix.0.weight"):  # [b, o, c]
                value.zero_()
                value[:, :width] = src[key][:, :width]
                value[:, 2 * width :] = src[key][:, width:]
            else:
                raise ValueError(
                    f"cannot carry {key} over: {tuple(src[key].shape)} → {tuple(value.shape)}"
                )
    out.net.load_state_dict(dst)
    return out


def with_departure_context(model: FuXiDA) -> FuXiDA:
    """A copy of the ASSI network ``model`` with ``departure_context`` inputs that starts as it.

    The new inputs (one plane per imager channel, after the others) are read by the first
    convolutions of the observation and condition branches through new weights set to 0, so
    the copy returns ``model``'s increment until training teaches it to use them.

    Raises
    ------
    ValueError
        ``model`` is CORR, has no ``departure_input``, or already has the inputs.

    Examples
    --------
    >>> from xfuxi.models.base import NormStats
    >>> n_obs = n_observation_inputs(1, 2, departure_input=True)
    >>> m = FuXiDA(FuXiDANet(2, n_obs, width=4, scales=2),
    ...            channels=[("temperature", 500.0), ("surface_pressure", None)],
    ...            latitude=[-45, 45], longitude=[0, 90, 180, 270],
    ...            stats=NormStats(np.zeros(2), np.ones(2), np.ones(2)),
    ...            sensor_channels=("wv6.2", "ir10.8"), frames=[0.0], departure_input=True)
    >>> with torch.no_grad():
    ...     _ = m.net.head.weight.normal_()
    >>> c = with_departure_context(m)
    >>> x, obs = torch.randn(1, 2, 2, 4), torch.randn(1, m.n_obs_channels, 2, 4)
    >>> c.departure_context, torch.allclose(c(x, obs), m(x, obs))
    (True, True)
    """
    if not model.uses_observations or not model.departure_input or model.departure_context:
        raise ValueError(
            "with_departure_context needs an ASSI network with departure_input and without "
            "departure_context"
        )
    n_new = len(model.sensor_channels)
    cfg = dict(model.net.config, obs_channels=model.net.config["obs_channels"] + n_new)
    out = FuXiDA(
        FuXiDANet(**cfg), channels=model.channels, latitude=model.latitude,
        longitude=model.longitude, stats=model.stats, sensor_channels=model.sensor_channels,
        frames=model.frames, satellites=model.satellites, zenith_input=model.zenith_input,
        position_input=model.position_input, departure_input=True,
        gradient_input=model.gradient_input, screen_threshold=model.screen_threshold,
        departure_context=True, linear_update=model.linear_update, name=model.name,
        metadata=copy.deepcopy(model.metadata),
    )  # fmt: skip
    src, dst = model.net.state_dict(), out.net.state_dict()
    with torch.no_grad():
        for key, value in dst.items():
            if src[key].shape == value.shape:
                value.copy_(src[key])
            elif key in ("observation_in.0.weight", "condition_in.0.weight"):  # [..., new]
                value.zero_()
                value[:, : src[key].shape[1]] = src[key]
            else:  # pragma: no cover - the two networks differ only in those inputs
                raise ValueError(f"cannot carry {key} over")
    out.net.load_state_dict(dst)
    return out.train(model.training)


def with_linear_update(model: FuXiDA) -> FuXiDA:
    """A copy of the ASSI network ``model`` with a ``linear_update`` that starts as it.

    The update's convolution is new and zero, so the copy returns ``model``'s increment
    until training teaches it.

    Raises
    ------
    ValueError
        ``model`` is CORR, has no zenith input or already has the update.

    Examples
    --------
    >>> from xfuxi.models.base import NormStats
    >>> _ = torch.manual_seed(0)  # the random "states" below are not physical everywhere
    >>> chans = [("temperature", 500.0), ("passive_tracer", 500.0), ("surface_pressure", None)]
    >>> m = FuXiDA(FuXiDANet(3, n_observation_inputs(1, 2), width=4, scales=2),
    ...            channels=chans, latitude=[-45, 45], longitude=[0, 90, 180, 270],
    ...            stats=NormStats(np.zeros(3), np.ones(3), np.ones(3)),
    ...            sensor_channels=("wv6.2", "ir10.8"), frames=[0.0])
    >>> with torch.no_grad():
    ...     _ = m.net.head.weight.normal_()
    >>> c = with_linear_update(m)
    >>> x, obs = torch.randn(1, 3, 2, 4), torch.rand(1, m.n_obs_channels, 2, 4)
    >>> c.linear_update, c.n_linear_inputs, torch.allclose(c(x, obs), m(x, obs))
    (True, 4, True)
    """
    if not model.uses_observations or model.linear_update or not model.zenith_input:
        raise ValueError(
            "with_linear_update needs an ASSI network with the zenith input and without a "
            "linear update"
        )
    n_linear = n_linear_inputs(len(model.frames), len(model.sensor_channels))
    net = FuXiDANet(**dict(model.net.config, linear_inputs=n_linear))
    state = net.state_dict()
    state.update(model.net.state_dict())  # every weight but the update's
    net.load_state_dict(state)
    out = FuXiDA(
        net.train(model.net.training), channels=model.channels, latitude=model.latitude,
        longitude=model.longitude, stats=model.stats, sensor_channels=model.sensor_channels,
        frames=model.frames, satellites=model.satellites, zenith_input=model.zenith_input,
        position_input=model.position_input, departure_input=model.departure_input,
        gradient_input=model.gradient_input, screen_threshold=model.screen_threshold,
        departure_context=model.departure_context, linear_update=True, name=model.name,
        metadata=copy.deepcopy(model.metadata),
    )  # fmt: skip
    return out.train(model.training)


def da_model_files(model: FuXiDA) -> dict[str, bytes]:
    """The files of a FuXi-DA checkpoint (``config.json``, ``model.safetensors``)."""
    if not isinstance(model, FuXiDA):
        raise TypeError(f"expected a FuXiDA model; got {type(model).__name__}")
    return {
        CONFIG: store.json_bytes(model.config_dict()),
        WEIGHTS: store.safetensors_bytes(model.net.state_dict()),
    }


def save_da_model(model: FuXiDA, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Save a FuXi-DA model as a checkpoint directory (written as one unit, no pickle).

    Raises
    ------
    xfuxi.files.OutputExistsError
        ``path`` exists and may not be replaced.
    """
    return store.write_checkpoint(path, da_model_files(model), kind=DA_KIND, overwrite=overwrite)


#: the entries of a FuXi-DA config.json that this xfuxi reads
DA_ENTRIES = frozenset({
    "format", "name", "net", "channels", "latitude", "longitude", "stats",
    "sensor_channels", "frames", "satellites", "zenith_input", "position_input",
    "departure_input", "gradient_input", "screen_threshold", "departure_context",
    "linear_update", "metadata",
})  # fmt: skip


def da_model_from_files(files: dict[str, bytes], path: Path) -> FuXiDA:
    """Rebuild a FuXi-DA model from the verified files of its checkpoint (CPU, eval)."""
    config = store.json_of_format(
        files[CONFIG], path / CONFIG, fmt=DA_FORMAT, what="a FuXi-DA checkpoint", where=path
    )
    store.warn_unknown_entries(config, DA_ENTRIES, path / CONFIG)
    # the initial weights do not consume the caller's random stream
    with store.config_entries(path / CONFIG, errors=(TypeError, ValueError)), isolated_rng():
        net_kwargs = dict(config["net"])
        for key, value in net_kwargs.items():  # 2.5 or "32" would fail inside torch
            if not is_integer(value):
                raise TypeError(f"entry net[{key!r}] must be an integer; got {value!r}")
        # built only once its shapes are known to be the weights file's (an absurd width
        # or number of scales is refused before anything is allocated)
        switches = ("zenith_input", "position_input", "departure_input", "gradient_input",
                    "departure_context", "linear_update")  # fmt: skip
        for key in switches:  # bool("false") is True: a JSON true or false only
            if key in config and not isinstance(config[key], bool):
                raise TypeError(f"entry {key!r} must be true or false; got {config[key]!r}")
        store.check_degrees(latitude=config["latitude"], longitude=config["longitude"])
        net = store.build_for_weights(
            lambda: FuXiDANet(**net_kwargs), files[WEIGHTS], path / WEIGHTS,
            what="the network", config=path / CONFIG,
        )  # fmt: skip
        model = FuXiDA(
            net,
            channels=[parse_channel_name(c) for c in config["channels"]],
            latitude=config["latitude"],
            longitude=config["longitude"],
            stats=NormStats.from_dict(config["stats"], channels=config["channels"]),
            sensor_channels=config["sensor_channels"],
            frames=config["frames"],
            satellites=config["satellites"],
            zenith_input=config["zenith_input"],
            position_input=config["position_input"],
            departure_input=config.get("departure_input", False),  # absent before 2026-12
            gradient_input=config.get("gradient_input", False),  # absent before 2026-12-05
            screen_threshold=config.get("screen_threshold"),  # absent before 2026-12-05
            departure_context=config.get("departure_context", False),  # absent before 12-05
            linear_update=config.get("linear_update", False),  # written only when set
            name=config.get("name", path.name),
            metadata=config.get("metadata", {}),
        )
    store.load_weights(net, files, path, WEIGHTS)
    return model.eval()


def load_da_model(name_or_path: str | os.PathLike[str]) -> FuXiDA:
    """Load a FuXi-DA model by shipped name (``"fuxi-da-hs-t21"``) or checkpoint directory.

    Parameters
    ----------
    name_or_path : str or path-like
        A shipped FuXi-DA model's name (its files are checked against the sha256 in the
        registry) or a FuXi-DA checkpoint directory.

    Returns
    -------
    FuXiDA
        The model, in eval mode, with the channels, grid, frames and sensor channels it was
        built for (for :func:`xfuxi.assimilate_da`).

    Raises
    ------
    FileNotFoundError
        Neither a directory nor a shipped name.
    xfuxi.models.checkpoint.CheckpointError
        Incomplete, corrupt or not a FuXi-DA checkpoint (the path is named).

    Examples
    --------
    >>> model = load_da_model("fuxi-da-hs-t21")  # the shipped model, checked by sha256
    >>> model.grid_shape, model.frames, len(model.sensor_channels), model.satellites
    ((32, 64), (-2.0, 0.0, 2.0), 8, (105.0,))
    """
    path, files = store.open_checkpoint(name_or_path, kind=DA_KIND, require=(CONFIG, WEIGHTS))
    return da_model_from_files(files, path)


def shipped_da_models() -> list[str]:
    """Names of the FuXi-DA models shipped with xfuxi (in the model registry)."""
    return store.shipped_names(DA_KIND)
