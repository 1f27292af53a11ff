"""A synthetic geostationary infrared imager on the embedded world (FY-4B AGRI-like).

The world is dry, so its passive tracer plays water vapour. Every pixel is a grid point of
the model grid (radiances "averaged onto the model grid", as FuXi-DA takes them).

Geometry
    One or more geostationary satellites at given sub-satellite longitudes (42 164 km from
    the Earth's centre). The satellite zenith angle of a grid point follows from the
    geometry; beyond ``max_zenith`` (70° by default) there is no data; where discs overlap
    the satellite with the smaller zenith angle is used.
Channels
    Brightness temperatures are vertically weighted temperature averages: the column
    between ``TOP_PRESSURE`` and the surface pressure is split into ``N_LAYERS`` layers
    (temperature and tracer interpolated linearly in ln p between the world's levels; the
    temperature extrapolated down to the surface, isothermal above the top level; the
    tracer constant below the lowest level and falling as ``(p / p_top_level)²`` above the
    highest), each layer of optical depth
    ``δ = sec θ · Δp/1000 · p/1000 · (k_dry + k_tracer · max(q, 0))``. Its weight is
    ``τ_above (1 − e^{−δ})``, the surface's the transmittance of the whole column, and the
    weights sum to one. Tracer-absorbing "water-vapour" channels peak in the upper and middle
    troposphere, window channels at the surface, the well-mixed-absorber "CO2" channel in
    the lower-middle troposphere; every peak moves upward with sec θ (the limb effect). The
    operator is differentiable in temperature, tracer and surface pressure.
Clouds (truth only, or any caller that gives a cloud field)
    Where the air is moist for its latitude (tracer above the latitude row's mean) and
    "lifted" (colder than the row's mean at the lower level), plus a random texture that the
    state cannot predict, a cloud fills the pixel. Its top is higher the stronger the
    index; thick clouds are opaque (the column below is replaced by the cold cloud-top
    temperature), thin high cirrus lets part of the column below through. About a third to a
    half of the pixels are cloudy.
Errors (truth only)
    Channel biases that depend on the zenith angle and the scene (the clear-sky brightness
    temperature), a spectroscopy error (absorption coefficients off by a few percent), an
    optional slow bias drift, and Gaussian instrument noise (0.2–0.4 K).

The **nominal** operator (:func:`brightness_temperature` without clouds, bias or noise;
:class:`NominalImager` on model tensors; :class:`RadianceOperator` at observed pixels) is
what assimilation uses: the same for En4DVar and for FuXi-DA's diagnostics.

See the definitions in the documentation (docs/fuxi_da.md).
"""

from __future__ import annotations

import datetime
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..config import Config, config_with_legacy, field, is_integer
from ..constants import EARTH_RADIUS
from ..data.schema import (
    PROVENANCE_KEYS,
    input_source,
    native_byte_order,
    parse_time,
    parse_times,
    physical_range_error,
    states_at_valid_times,
    time_dtype_problem,
)
from ..docstrings import docstring_parts

__all__ = [
    "CHANNELS",
    "DOC_PARTS",
    "GEOSTATIONARY_RADIUS",
    "ImagerChannel",
    "ImagerError",
    "ImagerErrors",
    "NominalImager",
    "RadianceOperator",
    "brightness_temperature",
    "check_radiances",
    "departure_gradient",
    "imager_observations",
    "imager_state_channels",
    "radiance_operator",
    "radiance_table",
    "weighting_functions",
    "zenith_angle",
]

#: docstring parts, here and in the radiance assimilation: a tiny world for the examples,
#: ``column_world(lat, lon)``, with one temperature and tracer profile at every point
DOC_PARTS = {
    "example_column_world": """\
>>> import numpy as np, pandas as pd, xarray as xr
>>> def column_world(lat, lon):  # the same profile at every time and grid point
...     dims, shape = ("time", "level", "latitude", "longitude"), (2, 4, len(lat), len(lon))
...     def column(values):
...         return dims, np.broadcast_to(np.array(values)[:, None, None], shape).copy()
...     return xr.Dataset(
...         {"temperature": column([220.0, 250.0, 270.0, 280.0]),
...          "passive_tracer": column([0.05, 0.2, 0.4, 0.5]),
...          "surface_pressure": (dims[:1] + dims[2:], np.full(shape[:1] + shape[2:], 1e5))},
...         coords={"time": pd.date_range("2000-01-01", periods=2, freq="6h"),
...                 "level": [250.0, 500.0, 700.0, 850.0], "latitude": lat, "longitude": lon})""",
}
_doc = docstring_parts(DOC_PARTS)

#: distance of a geostationary satellite from the Earth's centre (m)
GEOSTATIONARY_RADIUS = 42_164_000.0
#: top of the radiative column (hPa)
TOP_PRESSURE = 50.0
#: number of layers of the column
N_LAYERS = 32
#: the world's variables the imager reads
STATE_VARIABLES = ("temperature", "passive_tracer", "surface_pressure")


class ImagerError(ValueError):
    """Bad input to the imager or its operator (the variable, channel or grid is named)."""


@dataclass(frozen=True)
class ImagerChannel:
    """One infrared channel of the synthetic imager.

    Attributes
    ----------
    wavelength : float
        Central wavelength (µm), for labels.
    k_dry : float
        Absorption by the well-mixed absorber (per (1000 hPa)², times sec θ).
    k_tracer : float
        Absorption by the tracer ("water vapour").
    noise : float
        Instrument noise std (K), truth only.
    bias : tuple of float
        ``(b0, b_zenith, b_scene)``: bias = ``b0 + b_zenith (sec θ − 1) + b_scene (BT − 250)/50``
        (K), truth only.
    spectroscopy : float
        Relative error of the absorption coefficients in the truth (0.04: 4% more absorbing
        than the nominal operator assumes).
    """

    wavelength: float
    k_dry: float
    k_tracer: float
    noise: float
    bias: tuple[float, float, float]
    spectroscopy: float


#: the imager's channels (AGRI-like names), in their default order
CHANNELS: dict[str, ImagerChannel] = {
    "ir3.7": ImagerChannel(3.75, 0.15, 0.6, 0.4, (0.6, 0.3, 0.4), 0.02),
    "wv6.2": ImagerChannel(6.25, 0.3, 180.0, 0.3, (-0.8, 0.6, -0.3), 0.05),
    "wv6.9": ImagerChannel(6.95, 0.3, 60.0, 0.3, (-0.5, 0.4, 0.2), 0.04),
    "wv7.4": ImagerChannel(7.42, 0.3, 20.0, 0.3, (0.4, -0.3, 0.3), 0.04),
    "ir8.5": ImagerChannel(8.55, 0.1, 1.5, 0.2, (0.3, -0.2, 0.2), 0.03),
    "ir10.8": ImagerChannel(10.8, 0.05, 0.8, 0.2, (0.2, -0.2, 0.1), 0.02),
    "ir12.0": ImagerChannel(12.0, 0.1, 3.0, 0.2, (-0.2, 0.2, 0.3), 0.03),
    "co2_13.3": ImagerChannel(13.3, 2.8, 2.0, 0.3, (0.7, 0.5, -0.2), -0.03),
}


@dataclass(frozen=True)
class ImagerErrors(Config):
    """What separates the truth's radiances from the nominal clear-sky operator.

    The clouds and the channel biases, instrument noise, spectroscopy error and bias drift
    that :func:`imager_observations` adds to the truth (a real system knows none of them);
    all off, the radiances are the nominal operator's clear-sky values.

    Examples
    --------
    >>> ImagerErrors().clouds, ImagerErrors().cloud_threshold
    (True, 0.35)
    >>> nominal = ImagerErrors(clouds=False, bias=False, noise=False, spectroscopy=False)
    >>> nominal.replace(drift=1.5).drift
    1.5
    """

    _flag_error = ImagerError  # its switches' errors are ImagerErrors, as its other checks'

    clouds: bool = field(True, help="clouds in the truth")
    cloud_threshold: float = field(
        0.35, help="threshold of the cloud index (higher: fewer; 0.35 gives about 40 percent)"
    )
    bias: bool = field(True, help="channel biases (zenith-angle and scene dependent)")
    noise: bool = field(True, help="Gaussian instrument noise")
    spectroscopy: bool = field(True, help="absorption coefficients off by a few percent")
    drift: float = field(0.0, help="slow bias drift, K per 30 days (one sign for all channels)")

    def __post_init__(self) -> None:
        for name in ("clouds", "bias", "noise", "spectroscopy"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise ImagerError(f"{name} must be True or False; got {value!r}")
            object.__setattr__(self, name, bool(value))
        for name in ("cloud_threshold", "drift"):
            value = getattr(self, name)
            number = isinstance(value, (int, float, np.integer, np.floating))
            if isinstance(value, (bool, np.bool_)) or not number or not math.isfinite(value):
                raise ImagerError(f"{name} must be a finite number; got {value!r}")
            object.__setattr__(self, name, float(value))


def _check_channels(channels: Sequence[str] | str) -> tuple[str, ...]:
    names = (channels,) if isinstance(channels, str) else tuple(str(c) for c in channels)
    if not names:
        raise ImagerError("channels is empty; give at least one of " + ", ".join(CHANNELS))
    unknown = [c for c in names if c not in CHANNELS]
    if unknown:
        raise ImagerError(f"unknown imager channel(s) {unknown}; the imager has {list(CHANNELS)}")
    if len(set(names)) != len(names):
        raise ImagerError(f"channels lists a channel twice: {list(names)}")
    return names


# -----------------------------------------------------------------------------------------------
# geometry
# -----------------------------------------------------------------------------------------------


def zenith_angle(
    latitude: Any,
    longitude: Any,
    *,
    satellites: Sequence[float],
    max_zenith: float = 70.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Satellite zenith angle of every grid point and which satellite sees it.

    Parameters
    ----------
    latitude, longitude : array-like
        The grid (1-D, degrees).
    satellites : sequence of float
        Sub-satellite longitudes (degrees east) of geostationary satellites.
    max_zenith : float, default 70
        No data beyond this zenith angle (degrees, in (0, 90)).

    Returns
    -------
    zenith : numpy.ndarray (lat, lon)
        Degrees; NaN where no satellite sees the point within ``max_zenith``.
    satellite : numpy.ndarray of int (lat, lon)
        Index into ``satellites`` of the satellite used (the smallest zenith angle);
        −1 where none.

    Examples
    --------
    >>> z, s = zenith_angle([0.0, 80.0], [105.0, 285.0], satellites=[105.0])
    >>> round(float(z[0, 0]), 6), bool(np.isnan(z[1, 1])), s.tolist()
    (0.0, True, [[0, -1], [-1, -1]])
    """
    lat = np.radians(np.asarray(latitude, dtype="float64"))[:, None]
    lon = np.asarray(longitude, dtype="float64")[None, :]
    given = np.atleast_1d(np.asarray(satellites, "O")).ravel()
    if any(isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real) for x in given):
        # (a bool is a number to NumPy; a string "90" was converted to 90.0 silently)
        raise ImagerError(f"satellites must be sub-satellite longitudes; got {satellites!r}")
    sats = np.atleast_1d(np.asarray(satellites, dtype="float64"))
    if sats.size == 0 or not np.all(np.isfinite(sats)):
        raise ImagerError(f"satellites must be finite sub-satellite longitudes; got {satellites}")
    wrapped = np.round(np.mod(sats, 360.0), 9)
    if np.unique(wrapped).size != wrapped.size:  # one disc twice (90 and -270 too)
        raise ImagerError(f"satellites repeats a longitude (modulo 360); got {sats.tolist()}")
    number = isinstance(max_zenith, numbers.Real) or (
        np.ndim(max_zenith) == 0 and np.asarray(max_zenith).dtype.kind in "iuf"
    )  # (a 0-d array or a DataArray scalar is one too)
    if isinstance(max_zenith, bool) or not number:
        raise ImagerError(f"max_zenith must be a number of degrees; got {max_zenith!r}")
    if not 0.0 < float(max_zenith) < 90.0:
        raise ImagerError(f"max_zenith must be in (0, 90) degrees; got {max_zenith}")
    max_zenith = float(max_zenith)
    ratio = EARTH_RADIUS / GEOSTATIONARY_RADIUS
    best = np.full((lat.size, lon.size), np.inf)
    which = np.full((lat.size, lon.size), -1, dtype="int64")
    for i, s in enumerate(sats):
        cos_gamma = np.cos(lat) * np.cos(np.radians(lon - s))
        dist = np.sqrt(1.0 + ratio**2 - 2.0 * ratio * cos_gamma)  # in units of r_sat
        cos_z = (cos_gamma - ratio) / dist
        z = np.degrees(np.arccos(np.clip(cos_z, -1.0, 1.0)))
        better = (z <= max_zenith) & (z < best)
        best = np.where(better, z, best)
        which = np.where(better, i, which)
    return np.where(which >= 0, best, np.nan), which


# -----------------------------------------------------------------------------------------------
# the radiative column (torch, differentiable)
# -----------------------------------------------------------------------------------------------


def _interp_weights(x: torch.Tensor, xl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the lower bracketing level and the fraction toward the next (unclamped)."""
    n = xl.numel()
    if n == 1:
        return torch.zeros_like(x, dtype=torch.long), torch.zeros_like(x)
    i = (torch.bucketize(x.detach(), xl.detach()) - 1).clamp(0, n - 2)
    x0, x1 = xl[i], xl[i + 1]
    return i, (x - x0) / (x1 - x0)


def _profiles(
    temperature: torch.Tensor,
    tracer: torch.Tensor,
    surface_pressure: torch.Tensor,
    levels: Sequence[float],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Layer pressures, thicknesses (hPa), temperatures, tracer; surface temperature."""
    lev = torch.as_tensor(np.asarray(levels, dtype="float64"), dtype=temperature.dtype)
    ps = surface_pressure / 100.0  # hPa
    s = (torch.arange(N_LAYERS, dtype=temperature.dtype) + 0.5) / N_LAYERS
    span = (ps - TOP_PRESSURE).unsqueeze(-3)  # (..., 1, H, W)
    p = TOP_PRESSURE + span * s.view(-1, 1, 1)  # (..., N, H, W)
    dp = span / N_LAYERS
    xl = torch.log(lev)

    def at(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if lev.numel() == 1:
            shape = (*temperature.shape[:-3], x.shape[-3], *temperature.shape[-2:])
            return temperature.expand(shape), tracer.expand(shape)
        i, f = _interp_weights(x, xl)
        t0, t1 = torch.gather(temperature, -3, i), torch.gather(temperature, -3, i + 1)
        q0, q1 = torch.gather(tracer, -3, i), torch.gather(tracer, -3, i + 1)
        t = t0 + f.clamp(min=0.0) * (t1 - t0)  # isothermal above the top level, extrapolated
        q = q0 + f.clamp(0.0, 1.0) * (q1 - q0)
        above = (x < xl[0]).to(x.dtype)
        q = q * (1.0 - above + above * torch.exp(2.0 * (x - xl[0]).clamp(max=0.0)))
        return t, q

    x = torch.log(p)
    t, q = at(x)
    t_s, _ = at(torch.log(ps).unsqueeze(-3))
    return p, dp, t, q, t_s[..., 0, :, :]


def _layer_depth(
    p: torch.Tensor,
    dp: torch.Tensor,
    q: torch.Tensor,
    sec: torch.Tensor,
    channel: ImagerChannel,
    scale: float = 1.0,
) -> torch.Tensor:
    k = (channel.k_dry + channel.k_tracer * q.clamp(min=0.0)) * scale
    return sec.unsqueeze(-3) * (dp / 1000.0) * (p / 1000.0) * k


def _column(
    temperature: torch.Tensor,
    tracer: torch.Tensor,
    surface_pressure: torch.Tensor,
    zenith: torch.Tensor,
    *,
    levels: Sequence[float],
    channels: Sequence[str],
    spectroscopy: bool = False,
) -> tuple[
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
]:
    """The column's layer pressures, temperatures, surface temperature, tracer and sec θ,
    and each channel's ``(weight, surface, above)``.

    The channels' parts are made one at a time as the caller iterates (each three
    (..., N, H, W) tensors): a caller that reduces a channel to (..., H, W) before taking
    the next holds one channel's at a time, not all of them (24 layer fields of the grid
    for the eight channels).
    """
    p, dp, t, q, t_s = _profiles(temperature, tracer, surface_pressure, levels)
    sec = 1.0 / torch.cos(torch.deg2rad(zenith.to(t.dtype)))

    def parts() -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for name in channels:  # (made by a function: this frame keeps no channel's tensors)
            yield _channel_parts(p, dp, q, sec, CHANNELS[name], spectroscopy)

    return p, t, t_s, q, sec, parts()


def _channel_parts(
    p: torch.Tensor,
    dp: torch.Tensor,
    q: torch.Tensor,
    sec: torch.Tensor,
    channel: ImagerChannel,
    spectroscopy: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One channel's layer weights, surface weight and transmittance above each layer."""
    scale = 1.0 + channel.spectroscopy if spectroscopy else 1.0
    delta = _layer_depth(p, dp, q, sec, channel, scale)
    above = torch.exp(-(torch.cumsum(delta, -3) - delta))
    weight = above * (1.0 - torch.exp(-delta))
    surface = torch.exp(-delta.sum(-3))
    return weight, surface, above


def weighting_functions(
    temperature: torch.Tensor,
    tracer: torch.Tensor,
    surface_pressure: torch.Tensor,
    zenith: torch.Tensor | float,
    *,
    levels: Sequence[float],
    channels: Sequence[str] = tuple(CHANNELS),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The channels' layer weights, the surface weight and the layer pressures.

    Parameters
    ----------
    temperature, tracer : Tensor (..., L, H, W)
        On the pressure ``levels`` (hPa, ascending).
    surface_pressure : Tensor (..., H, W)
        Pa.
    zenith : Tensor (H, W) or float
        Satellite zenith angle (degrees, finite).
    levels : sequence of float
    channels : sequence of str

    Returns
    -------
    weight : Tensor (..., S, N, H, W)
        Weight of each of the ``N`` layers (top to surface) per channel.
    surface : Tensor (..., S, H, W)
        Weight of the surface; layer and surface weights sum to one.
    pressure : Tensor (..., N, H, W)
        Layer mid-pressures (hPa).

    Examples
    --------
    >>> t = torch.tensor([220.0, 250.0, 270.0, 280.0]).view(4, 1, 1)
    >>> q = torch.tensor([0.05, 0.2, 0.4, 0.5]).view(4, 1, 1)
    >>> w, s, p = weighting_functions(t, q, torch.full((1, 1), 1.0e5), 0.0,
    ...                               levels=[250, 500, 700, 850], channels=["wv6.2", "ir10.8"])
    >>> peak = p[w.argmax(1)[:, 0, 0], 0, 0]
    >>> bool(peak[0] < 500), float((w.sum(1) + s).max().round(decimals=6))
    (True, 1.0)
    """
    names = _check_channels(channels)
    z = torch.as_tensor(zenith, dtype=temperature.dtype).expand(surface_pressure.shape[-2:])
    p, _, _, _, _, parts = _column(
        temperature, tracer, surface_pressure, z, levels=levels, channels=names
    )
    parts = list(parts)
    weight = torch.stack([w for w, _, _ in parts], -4)
    surface = torch.stack([s for _, s, _ in parts], -3)
    return weight, surface, p


def brightness_temperature(
    temperature: torch.Tensor,
    tracer: torch.Tensor,
    surface_pressure: torch.Tensor,
    zenith: torch.Tensor,
    *,
    levels: Sequence[float],
    channels: Sequence[str] = tuple(CHANNELS),
    cloud_pressure: torch.Tensor | None = None,
    cloud_emissivity: torch.Tensor | None = None,
    spectroscopy: bool = False,
) -> torch.Tensor:
    """Brightness temperatures of a column (the nominal operator without clouds).

    Parameters
    ----------
    temperature, tracer : Tensor (..., L, H, W)
        On the pressure ``levels`` (hPa, ascending); temperature in K.
    surface_pressure : Tensor (..., H, W)
        Pa.
    zenith : Tensor (H, W)
        Satellite zenith angle (degrees); give finite values everywhere (mask afterwards).
    levels : sequence of float
    channels : sequence of str
        Names from :data:`CHANNELS`.
    cloud_pressure, cloud_emissivity : Tensor (..., H, W), optional
        Cloud top (hPa; NaN or ``inf`` for clear) and emissivity in [0, 1]: the layers
        below the top are seen through ``1 − emissivity`` and the top emits at the
        temperature of the first model layer below it. The top is placed on the layers:
        the result is piecewise constant in the cloud-top pressure and jumps where the
        top crosses a layer (or where the surface pressure moves a layer across it), so
        it is not differentiable there. Only the synthetic truth uses clouds; the
        assimilation's operators are clear-sky.
    spectroscopy : bool, default False
        Use the truth's perturbed absorption coefficients (the spectroscopy error).

    Returns
    -------
    Tensor (..., S, H, W)
        Brightness temperature (K) per channel.

    Examples
    --------
    >>> t = torch.tensor([220.0, 250.0, 270.0, 280.0]).view(4, 1, 1)
    >>> q = torch.tensor([0.05, 0.2, 0.4, 0.5]).view(4, 1, 1)
    >>> bt = brightness_temperature(t, q, torch.full((1, 1), 1.0e5), torch.zeros(1, 1),
    ...                             levels=[250, 500, 700, 850], channels=["wv6.2", "ir10.8"])
    >>> bool(bt[0] < bt[1] < 290.0)
    True
    """
    names = _check_channels(channels)
    p, t, t_s, _, _, parts = _column(
        temperature, tracer, surface_pressure, zenith,
        levels=levels, channels=names, spectroscopy=spectroscopy,
    )  # fmt: skip
    cloud = None
    if cloud_pressure is not None:  # (what the clouds do is the same for every channel)
        cloud = _cloud_layers(p, t, cloud_pressure, cloud_emissivity)  # type: ignore[arg-type]
    out = []
    for weight, surface, above in parts:
        if cloud is None:
            out.append((weight * t).sum(-3) + surface * t_s)
        else:
            out.append(_through_clouds(weight * t, surface * t_s, above, cloud))
        del weight, surface, above  # (one channel's layers at a time)
    return torch.stack(out, -3)


def _cloud_layers(
    p: torch.Tensor,
    t: torch.Tensor,
    cloud_pressure: torch.Tensor,
    cloud_emissivity: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the clouds do to every channel of the column: how much of each layer is seen
    (``1 − ε`` under the cloud top), the first layer under the top, its temperature, the
    emissivity and whether the column has a cloud top at all (the same for every channel:
    made once, not once per channel)."""
    pc = torch.nan_to_num(cloud_pressure, nan=math.inf).unsqueeze(-3)
    eps = torch.nan_to_num(cloud_emissivity, nan=0.0).unsqueeze(-3)
    below = (p > pc).to(t.dtype)  # layers under the cloud top
    seen = 1.0 - eps * below
    first = below * (torch.cumsum(below, -3) == 1).to(t.dtype)  # first layer below
    cloud_t = (first * t).sum(-3)
    cloudy = below.amax(-3)
    return seen, first, cloud_t, eps[..., 0, :, :], cloudy


def _through_clouds(
    weight_t: torch.Tensor,
    surface_t: torch.Tensor,
    above: torch.Tensor,
    cloud: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """One channel's brightness temperature through the clouds of :func:`_cloud_layers`,
    from its weighted layer temperatures ``weight · t``, its weighted surface temperature
    ``surface · t_s`` and its transmittance above each layer."""
    seen, first, cloud_t, eps, cloudy = cloud
    cloud_tau = (first * above).sum(-3)
    bt = (weight_t * seen).sum(-3) + surface_t * (1.0 - eps * cloudy)
    return bt + eps * cloud_tau * cloud_t


# -----------------------------------------------------------------------------------------------
# clouds (truth)
# -----------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], passes: int = 3) -> np.ndarray:
    """Unit-variance noise smoothed by a 1-2-1 filter (periodic in longitude)."""
    f = rng.standard_normal(shape)
    for _ in range(passes):
        f = 0.25 * (np.roll(f, 1, -1) + 2 * f + np.roll(f, -1, -1))
        f = 0.25 * (np.concatenate([f[:1], f[:-1]]) + 2 * f + np.concatenate([f[1:], f[-1:]]))
    return f / max(float(f.std()), 1e-12)


def _row_zscore(field: np.ndarray) -> np.ndarray:
    mean = field.mean(-1, keepdims=True)
    std = field.std(-1, keepdims=True)
    return (field - mean) / np.maximum(std, 1e-6 * np.abs(mean).max() + 1e-12)


def _clouds(
    temperature: np.ndarray,
    tracer: np.ndarray,
    surface_pressure: np.ndarray,
    levels: np.ndarray,
    texture: np.ndarray,
    thin: np.ndarray,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Cloud-top pressure (hPa, NaN clear) and emissivity of one state (L, H, W)."""
    mid = int(np.argmin(np.abs(levels - 600.0)))
    low = int(np.argmin(np.abs(levels - 800.0)))
    moist = _row_zscore(tracer[mid])
    lifted = -_row_zscore(temperature[low])
    index = 0.6 * moist + 0.4 * lifted + 0.8 * texture
    cloudy = index > threshold
    strength = 1.0 / (1.0 + np.exp(-(index - threshold - 0.8)))
    top = 780.0 - 540.0 * strength  # 780 hPa (low) .. 240 hPa (high)
    top = np.minimum(top, surface_pressure / 100.0 - 30.0)
    emis = np.where(top < 400.0, 0.3 + 0.6 * thin, 1.0)  # thin cirrus partly transparent
    return np.where(cloudy, top, np.nan), np.where(cloudy, emis, 0.0)


# -----------------------------------------------------------------------------------------------
# the synthetic imager (truth → radiances Dataset)
# -----------------------------------------------------------------------------------------------


#: the imager's columns are made a block of latitude rows at a time, of about this many
#: layer values (N_LAYERS x rows x longitudes; 1 MB a float64 layer field): all rows at once
#: held every channel's layer weights of the whole grid, for the clear sky and again for the
#: clouds (60 to 75 times the radiances; a 0.25° grid did not fit in 6 GB). Every column is
#: computed on its own, so the blocks give the same bits as the whole grid.
_BLOCK_VALUES = 2**17


def _frame_radiances(
    temperature: np.ndarray,
    tracer: np.ndarray,
    surface_pressure: np.ndarray,
    zenith: torch.Tensor,
    *,
    levels: np.ndarray,
    channels: Sequence[str],
    spectroscopy: bool,
    cloud_pressure: np.ndarray | None = None,
    cloud_emissivity: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Clear-sky and cloudy brightness temperatures (S, H, W) of one state (L, H, W).

    :func:`brightness_temperature` without and with the clouds (the cloudy values are the
    clear ones without clouds), both from one pass through the columns, a block of rows
    at a time (:data:`_BLOCK_VALUES`) and one channel at a time.
    """
    h, w = surface_pressure.shape
    clear = np.empty((len(channels), h, w))
    cloudy = clear if cloud_pressure is None else np.empty_like(clear)
    rows = max(1, _BLOCK_VALUES // (N_LAYERS * w))
    with torch.no_grad():
        for a in range(0, h, rows):
            b = slice(a, a + rows)
            p, t, t_s, _, _, parts = _column(
                torch.as_tensor(temperature[:, b]), torch.as_tensor(tracer[:, b]),
                torch.as_tensor(surface_pressure[b]), zenith[b],
                levels=levels, channels=channels, spectroscopy=spectroscopy,
            )  # fmt: skip
            cloud = (
                None
                if cloud_pressure is None or cloud_emissivity is None
                else _cloud_layers(
                    p, t, torch.as_tensor(cloud_pressure[b]), torch.as_tensor(cloud_emissivity[b])
                )
            )
            for c, (weight, surface, above) in enumerate(parts):
                weight_t, surface_t = weight * t, surface * t_s
                del weight, surface  # (one channel's layers at a time)
                clear[c, b] = (weight_t.sum(-3) + surface_t).numpy()
                if cloud is not None:
                    cloudy[c, b] = _through_clouds(weight_t, surface_t, above, cloud).numpy()
                del weight_t, above
    return clear, cloudy


def _state_at(truth: xr.Dataset, when: np.datetime64) -> xr.Dataset:
    """The truth at ``when``, linear in time between its two neighbouring states."""
    times = truth["time"].values
    j = int(np.searchsorted(times, when))
    if j < times.size and times[j] == when:
        return truth.isel(time=j)
    if j == 0 or j == times.size:
        raise ImagerError(
            f"frame time {pd.Timestamp(when)} is outside the truth's times "
            f"{pd.Timestamp(times[0])}..{pd.Timestamp(times[-1])}"
        )
    t0, t1 = times[j - 1], times[j]
    a = float((when - t0) / (t1 - t0))
    return truth.isel(time=j - 1) * (1.0 - a) + truth.isel(time=j) * a


def _frame_offsets(frames: Any) -> np.ndarray:
    """``frames`` as float64 hours, or an ImagerError naming the value that is not a number
    (a string such as ``"-2h"`` gave numpy's "could not convert string to float"; a
    timedelta64 was read as its count of nanoseconds)."""
    items = list(frames) if isinstance(frames, (list, tuple, np.ndarray)) else [frames]
    spans = [v for v in items if isinstance(v, (np.timedelta64, pd.Timedelta, datetime.timedelta))]
    kind = getattr(frames, "dtype", np.dtype("O")).kind  # (a ragged list has no one dtype)
    if kind == "m" or spans:
        bad = spans[0] if spans else np.asarray(frames).ravel()[0]
    else:
        try:
            return np.asarray(frames, dtype="float64")
        except (TypeError, ValueError):
            pass
        bad = frames
        for item in items:
            try:
                float(item)
            except (TypeError, ValueError):
                bad = item
                break
    raise ImagerError(
        f"frames must be offsets in hours, as numbers (e.g. [-2.0, 0.0, 2.0]); {bad!r} is not "
        "one (a timedelta: divide it by np.timedelta64(1, 'h'))"
    )


def _check_truth(truth: xr.Dataset) -> xr.Dataset:
    if not isinstance(truth, xr.Dataset):
        raise ImagerError(f"truth must be an xarray.Dataset; got {type(truth).__name__}")
    # states of a forecast at one lead are valid at time + lead (not at their initial times)
    truth = states_at_valid_times(truth, "truth", error=ImagerError)
    if "time" in truth.coords:  # cftime dates, a time zone, beyond datetime64[ns]: named
        problem = time_dtype_problem(truth["time"], "time")
        if problem is not None:
            raise ImagerError(f"the truth's {problem}")
    missing = [v for v in STATE_VARIABLES if v not in truth.data_vars]
    if missing:
        raise ImagerError(
            f"truth lacks {missing}; the imager needs {list(STATE_VARIABLES)} (temperature and "
            "passive_tracer on levels, surface_pressure)"
        )
    for v in ("temperature", "passive_tracer"):
        if "level" not in truth[v].dims:
            raise ImagerError(f"truth[{v!r}] has no 'level' dim; the imager needs its levels")
    if "time" not in truth.dims:
        raise ImagerError("truth needs a 'time' dim")
    truth = truth[list(STATE_VARIABLES)]
    known = ("time", "level", "latitude", "longitude")
    extra = [d for d in truth.dims if d not in known]
    if extra:
        raise ImagerError(
            f"truth has dim(s) {extra} beside {list(known)}; the imager observes one state "
            f"per time: select one (e.g. truth.isel({extra[0]}=0))"
        )
    levels = np.asarray(truth["level"].values, dtype="float64")
    units = str(truth["level"].attrs.get("units", "hPa")).strip()
    if units in ("Pa", "pascal") or levels.max() > 1100.0:
        raise ImagerError(
            f"the truth's levels must be pressures in hPa; they are {levels.tolist()} "
            f"(units {units!r}); divide pressures in Pa by 100"
        )
    # longitudes in [0, 360), as every xfuxi state: the texture of the clouds is drawn on
    # the grid, so a truth in -180..180 would get other clouds, and radiances in another order
    truth = _wrapped_longitudes(truth, "the truth's longitudes")
    # the columns need levels, latitudes and times ascending (a file often stores levels
    # top-down and latitudes north to south): sorted on a copy, the values unchanged
    for name in ("time", "level", "latitude", "longitude"):
        values = truth[name].values
        if values.size > 1 and np.any(values[1:] <= values[:-1]):
            if np.unique(values).size != values.size:
                raise ImagerError(f"the truth's {name} has repeated values")
            truth = truth.sortby(name)
    return truth.transpose(*known)


def _check_finite_truth(truth: xr.Dataset, when: np.ndarray) -> None:
    """Refuse a NaN or infinite value of the truth at the times the frames at ``when`` read
    (a frame between two truth times reads both): NaN radiances would look like missing
    pixels, and a NaN moves the clouds of its whole row. Times outside the truth are left
    to :func:`_state_at`'s error."""
    times = truth["time"].values
    j = np.searchsorted(times, when)  # times[j - 1] < when <= times[j]
    exact = (j < times.size) & (times[np.minimum(j, times.size - 1)] == when)
    between = (j > 0) & (j < times.size) & ~exact
    read = np.unique(np.concatenate([j[exact], j[between], j[between] - 1]))
    if not read.size:
        return
    for v in STATE_VARIABLES:
        field = truth[v].isel(time=read).transpose("time", ...)
        values = np.asarray(field.values)
        per_time = (~np.isfinite(values)).reshape(values.shape[0], -1).sum(axis=1)
        n_bad = int(per_time.sum())
        if n_bad:
            at = [str(pd.Timestamp(times[read[k]])) for k in np.flatnonzero(per_time)]
            raise ImagerError(
                f"truth[{v!r}] has {n_bad} non-finite value(s) (NaN or inf) at the times the "
                f"frames read (at {', '.join(at[:3])}{', ...' if len(at) > 3 else ''}); the "
                "imager needs a complete truth there"
            )
        # temperatures in °C (no units attribute) gave radiances of -12 K without a word
        problem = physical_range_error(v, float(values.min()), float(values.max()))
        if problem:
            raise ImagerError(f"the truth's {problem}")


@_doc
def imager_observations(
    truth: xr.Dataset,
    *,
    satellites: Sequence[float] = (105.0,),
    channels: Sequence[str] = tuple(CHANNELS),
    frames: Sequence[float] = (-2.0, 0.0, 2.0),
    times: Any = None,
    max_zenith: float = 70.0,
    errors: ImagerErrors | dict | None = None,
    seed: int = 0,
    drift_origin: Any = None,
    **legacy: Any,
) -> xr.Dataset:
    """Radiances of a synthetic geostationary infrared imager, drawn from a truth.

    Parameters
    ----------
    truth : xarray.Dataset
        The world: ``temperature`` and ``passive_tracer`` on levels, ``surface_pressure``,
        with a ``time`` dim. States of a forecast at one lead (a scalar
        ``prediction_timedelta``, as ``fc.sel(prediction_timedelta="6h")`` leaves) are
        valid at ``time + lead`` and seen at those times
        (:func:`xfuxi.data.schema.states_at_valid_times`).
    satellites : sequence of float, default (105.0,)
        Sub-satellite longitudes (degrees east).
    channels : sequence of str
        Names from :data:`CHANNELS` (default all eight).
    frames : sequence of float, default (-2, 0, 2)
        Offsets (hours, as numbers) of the frames around each analysis time; the truth is
        linear in time between its states.
    times : datetime-like or sequence, optional
        Analysis times (ISO strings of any precision, datetimes, datetime64; not numbers).
        Default: every truth time whose frames lie within the truth's times.
    max_zenith : float, default 70
        No data beyond this satellite zenith angle (degrees).
    errors : ImagerErrors or dict, optional
        The truth's clouds (``clouds``, ``cloud_threshold``: higher, fewer clouds; the
        default 0.35 gives about 40%), channel biases, instrument noise and spectroscopy
        error (each switched by a bool; all off: the nominal operator's clear-sky values)
        and ``drift``, a slow bias drift (K per 30 days, the same sign for every channel;
        added with or without ``bias``) counted from ``drift_origin``. Default
        :class:`ImagerErrors`: all on, no drift.
    seed : int, default 0
        Seeds the texture of the clouds and the noise, drawn for the times requested
        together, frame after frame, from one generator: the same seed gives other clouds
        and noise at a time requested with other times (a cycling network seeds each cycle's
        call on its own), and, since each frame's noise is drawn for the channels requested,
        other clouds in the later frames (and other noise) when other channels, or the same
        in another order, are requested. To compare channel subsets on one scene, make the
        radiances once with every channel and select from them.
    drift_origin : datetime-like, optional
        When the drift is zero (default: the earliest analysis time; a date and time, not
        a number). Calls that draw one analysis time each, as a cycling run's do, need a
        common origin for the drift to grow from call to call
        (:class:`~xfuxi.assimilation.da_cycle.ImagerNetwork` passes the first time of its
        truth).
    **legacy
        The older keywords ``clouds``, ``bias``, ``noise``, ``spectroscopy``, ``drift`` and
        ``cloud_threshold`` still work, with a ``DeprecationWarning``: each is a field of
        ``errors``.

    Returns
    -------
    xarray.Dataset
        ``brightness_temperature`` (time, frame, sensor_channel, latitude, longitude) in K,
        NaN where no satellite sees the pixel; ``zenith_angle`` and ``satellite`` (the index
        of the satellite used, −1 for none) on (latitude, longitude); ``cloudy`` (truth only:
        a real system does not know it); ``noise_std`` per channel. Coordinates ``frame``
        (timedelta) and ``sensor_channel``; the attribute ``satellite_longitudes``. The
        truth's provenance attributes (``source``, ``initial_conditions``,
        ``background_source``) are kept, and ``title`` names the radiances and the truth
        (``"synthetic imager radiances of <the truth's title>"``), so that a map of them
        knows which world they see.

    Raises
    ------
    ImagerError
        Truth lacking a variable or levels, or with a NaN or infinite value at a time the
        frames read (named with the number of such values), or a scalar lead that is not a
        time span; unknown channel, repeated frames or times, a frame that is not a number
        of hours or a time that is not a date and time (named), no frame time inside the
        truth, no grid point seen by any satellite; truth times that are cftime dates,
        carry a time zone or lie outside the years 1678 to 2261 of ``datetime64[ns]``
        (named, with the conversion).

    Examples
    --------
    Clear-sky radiances, without errors, of a tiny column world seen from 105°E (the pixels
    at 300°E are out of sight):

    {{example_column_world}}
    >>> ds = column_world([-30.0, 0.0, 30.0], [60.0, 105.0, 150.0, 300.0])
    >>> nominal = ImagerErrors(clouds=False, bias=False, noise=False, spectroscopy=False)
    >>> clear = dict(channels=["wv6.2", "ir10.8"], frames=[0.0], errors=nominal)
    >>> rad = imager_observations(ds, **clear)
    >>> rad["brightness_temperature"].dims
    ('time', 'frame', 'sensor_channel', 'latitude', 'longitude')
    >>> rad["satellite"].values[0].tolist()
    [0, 0, 0, -1]
    >>> bt = rad["brightness_temperature"].isel(time=0, frame=0, latitude=1, longitude=1)
    >>> bool(bt.sel(sensor_channel="wv6.2") < bt.sel(sensor_channel="ir10.8"))
    True
    >>> again = ds.fuxi.imager_observations(**clear)  # the same through the accessor
    >>> bool(again["brightness_temperature"].identical(rad["brightness_temperature"]))
    True

    On the embedded world (two satellites, clouds, biases and noise; needs the world)::

        ds = xfuxi.held_suarez_split("validation", days=2)
        rad = ds.fuxi.imager_observations(satellites=[105.0, 225.0])
    """
    err = config_with_legacy(
        ImagerErrors, errors, legacy, "imager_observations", parameter="errors"
    )
    clouds, bias, noise, drift = err.clouds, err.bias, err.noise, err.drift
    truth = _check_truth(truth)
    names = _check_channels(channels)
    if not is_integer(seed) or seed < 0:
        raise ImagerError(f"seed must be a non-negative integer; got {seed!r}")
    offsets = _frame_offsets(frames)
    if offsets.ndim != 1 or offsets.size == 0 or not np.all(np.isfinite(offsets)):
        raise ImagerError(f"frames must be a non-empty sequence of hours; got {frames}")
    deltas = (offsets * 3600e9).round().astype("int64").astype("m8[ns]")
    if np.unique(deltas).size != deltas.size:
        raise ImagerError(f"frames must be distinct; {offsets.tolist()} h has repeated values")
    all_times = np.asarray(truth["time"].values, dtype="M8[ns]")
    if times is None:
        ok = [t for t in all_times if t + deltas.min() >= all_times[0]
              and t + deltas.max() <= all_times[-1]]  # fmt: skip
        if not ok:
            raise ImagerError(
                f"no truth time has all frames {offsets.tolist()} h inside the truth's times"
            )
        an_times = np.asarray(ok, dtype="M8[ns]")
    else:
        an_times = np.atleast_1d(parse_times(times, "times", error=ImagerError).values)
        if an_times.size == 0:
            raise ImagerError("times is empty: give at least one analysis time, or None")
        if np.unique(an_times).size != an_times.size:
            shown = [str(pd.Timestamp(t)) for t in an_times]
            raise ImagerError(f"times must be distinct; {shown} has repeated values")
    _check_finite_truth(truth, (an_times[:, None] + deltas[None, :]).ravel())
    if drift_origin is None:  # the earliest analysis time, whatever the order of ``times``
        origin = an_times.min()
    else:
        origin = parse_time(drift_origin, "drift_origin", error=ImagerError).to_datetime64()
    lat = truth["latitude"].values
    lon = truth["longitude"].values
    levels = truth["level"].values.astype("float64")
    zen, sat = zenith_angle(lat, lon, satellites=satellites, max_zenith=max_zenith)
    seen = sat >= 0
    if not seen.any():
        raise ImagerError(
            f"no grid point is seen by the satellites {np.atleast_1d(satellites).tolist()} within "
            f"{max_zenith} degrees of zenith"
        )
    zen_t = torch.as_tensor(np.where(seen, zen, 0.0))
    rng = np.random.default_rng(seed)
    shape2 = (lat.size, lon.size)
    bt = np.full((an_times.size, offsets.size, len(names), *shape2), np.nan)
    cloudy = np.zeros((an_times.size, offsets.size, *shape2), dtype=bool)
    sec = 1.0 / np.cos(np.radians(np.where(seen, zen, 0.0)))
    for i, t in enumerate(an_times):
        base_texture = _smooth_noise(rng, shape2)
        thin = 1.0 / (1.0 + np.exp(-_smooth_noise(rng, shape2)))
        for f, d in enumerate(deltas):
            state = _state_at(truth, t + d)
            temp = np.ascontiguousarray(state["temperature"].values, dtype="float64")
            trac = np.ascontiguousarray(state["passive_tracer"].values, dtype="float64")
            ps = np.ascontiguousarray(state["surface_pressure"].values, dtype="float64")
            top = emis = None
            if clouds:
                texture = 0.85 * base_texture + 0.5 * _smooth_noise(rng, shape2)
                top, emis = _clouds(temp, trac, ps, levels, texture, thin, err.cloud_threshold)
                cloudy[i, f] = np.isfinite(top) & seen
            # the clear sky (for the scene-dependent bias) and the clouds from one pass
            clear, value = _frame_radiances(
                temp, trac, ps, zen_t, levels=levels, channels=names,
                spectroscopy=err.spectroscopy, cloud_pressure=top, cloud_emissivity=emis,
            )  # fmt: skip
            for c, name in enumerate(names):
                ch = CHANNELS[name]
                v = value[c]
                if bias:
                    b0, bz, bs = ch.bias
                    v = v + b0 + bz * (sec - 1.0) + bs * (clear[c] - 250.0) / 50.0
                if drift:  # (it was added only with the bias, and recorded without it)
                    days = float((t + d - origin) / np.timedelta64(1, "D"))
                    v = v + drift * days / 30.0
                if noise:
                    v = v + ch.noise * rng.standard_normal(shape2)
                bt[i, f, c] = np.where(seen, v, np.nan)
    coords = {
        "time": an_times,
        "frame": deltas,
        "sensor_channel": list(names),
        # the truth's grid, with its attributes (units)
        "latitude": ("latitude", lat, dict(truth["latitude"].attrs)),
        "longitude": ("longitude", lon, dict(truth["longitude"].attrs)),
    }
    ds = xr.Dataset(
        {
            "brightness_temperature": (
                ("time", "frame", "sensor_channel", "latitude", "longitude"),
                bt,
                {"units": "K", "long_name": "brightness temperature"},
            ),
            "zenith_angle": (("latitude", "longitude"), zen, {"units": "degree"}),
            "satellite": (("latitude", "longitude"), sat),
            "cloudy": (
                ("time", "frame", "latitude", "longitude"),
                cloudy,
                {"description": "truth only: a real system does not know where clouds are"},
            ),
            "noise_std": (
                "sensor_channel",
                np.array([CHANNELS[n].noise for n in names]),
                {"units": "K"},
            ),
        },
        coords=coords,
    )
    # what the radiances were drawn from: a map of them knows the world (no continents on
    # the Held-Suarez one)
    provenance = {k: truth.attrs[k] for k in PROVENANCE_KEYS if k in truth.attrs}
    world = input_source({"title": truth.attrs.get("title"), **provenance})
    provenance["title"] = "synthetic imager radiances" + (f" of {world}" if world else "")
    ds.attrs.update(
        {
            **provenance,
            "instrument": "xfuxi synthetic geostationary imager (AGRI-like)",
            "max_zenith": float(max_zenith),
            "clouds": int(clouds),
            "bias": int(bias),
            "noise": int(noise),
            "spectroscopy": int(err.spectroscopy),
            "drift_K_per_30_days": float(drift),
            **({"drift_origin": str(pd.Timestamp(origin))} if drift else {}),
            "seed": int(seed),
            "satellite_longitudes": [float(x) for x in np.atleast_1d(satellites)],
        }
    )
    return ds


#: the dims of a radiances Dataset's variables, in their canonical order
RADIANCE_DIMS = ("time", "frame", "sensor_channel", "latitude", "longitude")
#: the spellings of the zenith angle's ``units`` read as degrees (lower case; no ``units``
#: attribute is read as degrees too)
#: the brightness temperatures an imager can see (K): outside, the radiances are in another
#: unit (°C, scaled counts), which the assimilation would take as kelvin
BT_RANGE = (100.0, 400.0)
ZENITH_UNITS = frozenset({"degree", "degrees", "deg", "degs", "°", "arc_degree"})


def _wrapped_longitudes(ds: xr.Dataset, what: str) -> xr.Dataset:
    """``ds`` with its longitudes wrapped to [0, 360) (a copy of the coordinate where they
    were not; the values unchanged); longitudes outside [-180, 360] are refused."""
    lon = np.asarray(ds["longitude"].values, dtype="float64")
    if lon.size and (lon.min() < 0.0 or lon.max() >= 360.0):
        if lon.min() < -180.0 or lon.max() > 360.0:
            raise ImagerError(
                f"{what} must lie in [-180, 360] degrees; they span [{lon.min():g}, {lon.max():g}]"
            )
        ds = ds.assign_coords(longitude=ds["longitude"].copy(data=np.mod(lon, 360.0)))
    return ds


def _canonical_orientation(radiances: xr.Dataset, what: str = "radiance") -> xr.Dataset:
    """The radiances (or a FuXi-DA background, ``what="background"``) with longitudes
    wrapped to [0, 360) and latitude and longitude ascending (the order of every xfuxi
    state, :func:`xfuxi.validate`), on a copy where they were not; the values are not
    changed. A coordinate that is absent is left for the caller's check to name."""
    owner = "the radiances'" if what == "radiance" else f"the {what}'s"
    if "longitude" in radiances.coords:
        radiances = _wrapped_longitudes(radiances, f"{what} longitudes")
    for name in ("latitude", "longitude"):
        if name not in radiances.dims or name not in radiances.coords:
            continue
        values = radiances[name].values
        if values.size > 1 and np.any(np.diff(values) <= 0):
            if np.unique(values).size != values.size:
                raise ImagerError(f"{owner} {name} has repeated values")
            radiances = radiances.sortby(name)
    return radiances


def check_radiances(
    radiances: xr.Dataset,
    *,
    latitude: Any = None,
    longitude: Any = None,
    channels: Sequence[str] | None = None,
) -> xr.Dataset:
    """Check a radiances Dataset (from :func:`imager_observations`) and return it.

    Latitudes north to south and longitudes in −180..180 are put in xfuxi's order (ascending,
    0..360), and every variable's dims in the order of :data:`RADIANCE_DIMS`, on a copy, as
    :func:`xfuxi.validate` does for states; the values are unchanged.

    Parameters
    ----------
    radiances : xarray.Dataset
    latitude, longitude : array-like, optional
        The model grid the radiances must be on.
    channels : sequence of str, optional
        Channels that must all be present (in any order).

    Raises
    ------
    ImagerError
        Not a radiances Dataset, an unknown channel, radiances on another grid, a required
        channel absent, every pixel missing, an infinite value, a zenith angle outside
        [0, 90) or with ``units`` other than degrees (radians are refused), a dim beyond
        time, frame, sensor_channel, latitude and longitude, a frame coordinate that is not
        a timedelta, or repeated times, frames, latitudes or longitudes; times that are
        cftime dates, carry a time zone or lie outside the years 1678 to 2261 of
        ``datetime64[ns]`` (named, with the conversion).
    """
    if not isinstance(radiances, xr.Dataset) or "brightness_temperature" not in radiances:
        raise ImagerError(
            "radiances must be an xarray.Dataset with 'brightness_temperature' (from "
            "xfuxi.imager_observations)"
        )
    bt = radiances["brightness_temperature"]
    need = {"sensor_channel", "latitude", "longitude"}
    if not need <= set(bt.dims) or "zenith_angle" not in radiances:
        raise ImagerError(
            f"brightness_temperature needs dims {sorted(need)} (has {bt.dims}) and the "
            "Dataset a 'zenith_angle'"
        )
    extra = [d for d in bt.dims if d not in RADIANCE_DIMS]
    if extra:
        raise ImagerError(
            f"brightness_temperature has dim(s) {extra} beside {list(RADIANCE_DIMS)}; select "
            f"one value of each (e.g. radiances.isel({extra[0]}=0))"
        )
    # the variables read beside the radiances, within the dims each may have (a member dim
    # or a zenith angle along time gave raw transpose or broadcast errors)
    for name, allowed in (("zenith_angle", ("latitude", "longitude")),
                          ("satellite", ("latitude", "longitude")),
                          ("cloudy", ("time", "frame", "latitude", "longitude"))):  # fmt: skip
        if name in radiances.data_vars:
            wrong = [d for d in radiances[name].dims if d not in allowed]
            if wrong:
                raise ImagerError(
                    f"the radiances' {name} has dim(s) {wrong}; it may have only {list(allowed)}"
                    + (" (the geometry is fixed)" if "time" not in allowed else "")
                )
    _check_channels(radiances["sensor_channel"].values.tolist())
    if "frame" in radiances.coords or "frame" in bt.dims:
        frame = radiances["frame"]
        if "frame" not in radiances.coords or not np.issubdtype(frame.dtype, np.timedelta64):
            raise ImagerError(
                "the radiances' frame coordinate must hold each frame's offset from the "
                f"analysis time as a timedelta (as xfuxi.imager_observations writes it); got "
                f"{'no coordinate' if 'frame' not in radiances.coords else frame.dtype}"
            )
    if "time" in radiances.coords:  # cftime dates, a time zone, beyond datetime64[ns]
        problem = time_dtype_problem(radiances["time"], "time")
        if problem is not None:
            raise ImagerError(f"the radiances' {problem}")
    radiances = native_byte_order(radiances)  # big-endian coordinates: pandas refuses them
    for name in ("time", "frame"):  # each analysis time and frame is looked up by value
        if name in radiances.dims and name in radiances.coords:
            values = radiances[name].values
            if np.unique(values).size != values.size:
                raise ImagerError(f"the radiances' {name} has repeated values")
    # every variable in the canonical order of its dims, so that values are read by name
    radiances = radiances.transpose(*RADIANCE_DIMS, missing_dims="ignore")
    radiances = _canonical_orientation(radiances)
    for name, grid in (("latitude", latitude), ("longitude", longitude)):
        if grid is None:
            continue
        have = np.asarray(radiances[name].values, dtype="float64")
        want = np.asarray(grid, dtype="float64")
        if have.shape != want.shape or not np.allclose(have, want, atol=1e-6):
            raise ImagerError(
                f"radiances are on another grid: their {name} has {have.size} values "
                f"({have[:3].round(3).tolist()}...), the model's {want.size} "
                f"({want[:3].round(3).tolist()}...); make them on the model grid"
            )
    if channels is not None:
        have_ch = radiances["sensor_channel"].values.tolist()
        absent = [c for c in channels if c not in have_ch]
        if absent:
            raise ImagerError(f"radiances lack channel(s) {absent}; they have {have_ch}")
    values = radiances["brightness_temperature"].values
    if not bool(np.isfinite(values).any()):
        raise ImagerError(
            "every pixel of brightness_temperature is missing (NaN): there is nothing to assimilate"
        )
    n_inf = int(np.isinf(values).sum())
    units = radiances["zenith_angle"].attrs.get("units")
    if units is not None and str(units).strip().lower() not in ZENITH_UNITS:
        # radians read as degrees gave every pixel a near-nadir path and a wrong analysis
        raise ImagerError(
            f"zenith_angle is in {str(units)!r}; xfuxi reads zenith angles in degrees "
            "(units 'degree'): convert them (np.degrees) and set units='degree'"
        )
    zen = np.asarray(radiances["zenith_angle"].values, dtype="float64")
    if n_inf:
        raise ImagerError(
            f"brightness_temperature has {n_inf} infinite value(s); a missing pixel is NaN"
        )
    lowest, highest = float(np.nanmin(values)), float(np.nanmax(values))
    if lowest < BT_RANGE[0] or highest > BT_RANGE[1]:  # °C, or scaled counts: analysed as K
        raise ImagerError(
            f"brightness_temperature ranges from {lowest:.4g} to {highest:.4g}; brightness "
            f"temperatures lie within {BT_RANGE[0]:g}..{BT_RANGE[1]:g} K: give them in "
            "kelvin (°C + 273.15)"
        )
    if (
        np.isinf(zen).any()
        or bool((zen[np.isfinite(zen)] < 0).any())
        or bool((zen[np.isfinite(zen)] >= 90).any())
    ):
        raise ImagerError(
            "zenith_angle must be in [0, 90) degrees where a satellite sees the point and NaN "
            "elsewhere"
        )
    return radiances


# -----------------------------------------------------------------------------------------------
# the nominal operator on model tensors
# -----------------------------------------------------------------------------------------------


def imager_state_channels(model_channels: Sequence[tuple[str, float | None]]) -> list[int]:
    """Indices of the channels the imager reads, in :func:`departure_gradient`'s order:
    temperature at its levels (ascending), the tracer at the same levels, surface pressure.

    >>> imager_state_channels([("passive_tracer", 500.0), ("temperature", 500.0),
    ...                        ("surface_pressure", None)])
    [1, 0, 2]
    """
    ti, qi, pi, _ = _state_indices(model_channels)
    return [*ti, *qi, pi]


def _state_indices(
    model_channels: Sequence[tuple[str, float | None]],
) -> tuple[list[int], list[int], int, list[float]]:
    chans = [(str(v), None if lv is None else float(lv)) for v, lv in model_channels]
    t_lev = sorted(lv for v, lv in chans if v == "temperature" and lv is not None)
    q_lev = sorted(lv for v, lv in chans if v == "passive_tracer" and lv is not None)
    if not t_lev or t_lev != q_lev or ("surface_pressure", None) not in chans:
        raise ImagerError(
            "the imager's operator needs temperature and passive_tracer on the same levels "
            f"and surface_pressure among the model's channels; got temperature {t_lev}, "
            f"passive_tracer {q_lev}, surface_pressure "
            f"{('surface_pressure', None) in chans}"
        )
    ti = [chans.index(("temperature", lv)) for lv in t_lev]
    qi = [chans.index(("passive_tracer", lv)) for lv in t_lev]
    return ti, qi, chans.index(("surface_pressure", None)), t_lev


class NominalImager(torch.nn.Module):
    """The nominal operator on model states: ``(..., C, H, W)`` → ``(..., S, H, W)`` (K).

    Clear-sky, no bias, no noise, nominal absorption; differentiable in the state.

    Parameters
    ----------
    model_channels : sequence of (variable, level)
        The model's channel order (physical units).
    zenith : array-like (H, W)
        Zenith angles (degrees); NaN pixels give NaN.
    channels : sequence of str
        Imager channels.
    """

    def __init__(
        self,
        model_channels: Sequence[tuple[str, float | None]],
        zenith: Any,
        *,
        channels: Sequence[str] = tuple(CHANNELS),
    ) -> None:
        super().__init__()
        self.channels = _check_channels(channels)
        self.t_index, self.q_index, self.ps_index, self.levels = _state_indices(model_channels)
        z = torch.as_tensor(np.asarray(zenith, dtype="float64"))
        self.register_buffer("mask", torch.isfinite(z), persistent=False)
        # the columns are independent: only the seen ones are computed
        seen = torch.nonzero(self.mask.flatten()).squeeze(1)
        self.register_buffer("seen", seen, persistent=False)
        self.register_buffer("seen_zenith", z.flatten()[seen].unsqueeze(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.mask.shape
        cols = x.flatten(-2)[..., self.seen].unsqueeze(-2)  # (..., C, 1, P)
        bt = brightness_temperature(
            cols[..., self.t_index, :, :],
            cols[..., self.q_index, :, :],
            cols[..., self.ps_index, :, :],
            self.seen_zenith.to(x.dtype),
            levels=self.levels,
            channels=self.channels,
        )[..., 0, :]  # (..., S, P)
        out = bt.new_full((*bt.shape[:-1], h * w), float("nan"))
        return out.index_copy(-1, self.seen, bt).unflatten(-1, (h, w))


def departure_gradient(
    state: torch.Tensor,
    departure: torch.Tensor,
    zenith: torch.Tensor,
    *,
    model_channels: Sequence[tuple[str, float | None]],
    channels: Sequence[str],
) -> torch.Tensor:
    """``H'(x)ᵀ d``: departures carried back into the column by the nominal operator.

    For each pixel, the transpose of the nominal operator's Jacobian at the state ``x``
    applied to the departures ``d`` of its imager channels: the direction in which the
    column's temperature, tracer and surface pressure would move the radiances toward the
    observed ones (the gradient of ``½ Σ d²`` at ``x`` with the sign of an increment, as a
    variational analysis computes it with ``R = I``). Columns are independent; only those
    with a non-zero departure are computed. Not differentiable (an input feature).

    Parameters
    ----------
    state : Tensor (B, C, H, W)
        States in ``model_channels`` (physical units).
    departure : Tensor (B, S, H, W)
        ``O − H(x)`` (K) per imager channel, 0 where missing.
    zenith : Tensor (B, H, W) or (H, W)
        Zenith angles (degrees); read where a departure is non-zero (finite there).
    model_channels : sequence of (variable, level)
    channels : sequence of str
        The imager channels of ``departure``.

    Returns
    -------
    Tensor (B, 2 L + 1, H, W)
        Temperature at the ``L`` levels (ascending), tracer at the same levels, surface
        pressure; 0 where every departure is 0.

    Examples
    --------
    A window channel's +1 K pulls the temperature up most at the lowest level (850 hPa), a
    water-vapour channel's at 500 hPa; both pull the tracer down (less absorber, a warmer
    scene):

    >>> chans = [("temperature", lv) for lv in (250.0, 500.0, 700.0, 850.0)]
    >>> chans += [("passive_tracer", lv) for lv in (250.0, 500.0, 700.0, 850.0)]
    >>> chans.append(("surface_pressure", None))
    >>> x = torch.tensor([220.0, 250.0, 270.0, 280.0, 0.05, 0.2, 0.4, 0.5, 1.0e5]).view(1, 9, 1, 1)
    >>> for d in ([1.0, 0.0], [0.0, 1.0]):  # ir10.8, wv6.9
    ...     g = departure_gradient(x, torch.tensor(d).view(1, 2, 1, 1), torch.zeros(1, 1),
    ...                            model_channels=chans, channels=["ir10.8", "wv6.9"])
    ...     print(int(g[0, :4, 0, 0].argmax()), bool(g[0, 4:8].sum() < 0))
    3 True
    1 True
    """
    names = _check_channels(channels)
    ti, qi, pi, levels = _state_indices(model_channels)
    b, _, h, w = state.shape
    if departure.shape != (b, len(names), h, w):
        raise ValueError(
            f"departure must be (B, S, H, W) = {(b, len(names), h, w)}; got "
            f"{tuple(departure.shape)}"
        )
    rows = imager_state_channels(model_channels)
    out = state.new_zeros((b, len(rows), h * w))
    cols = torch.nonzero((departure != 0).any(1).any(0).flatten()).squeeze(1)
    if cols.numel() == 0:
        return out.unflatten(-1, (h, w))
    zen = zenith.expand(b, h, w).flatten(-2)[:, cols]
    zen = torch.where(torch.isfinite(zen), zen, torch.zeros_like(zen)).unsqueeze(-2)
    with torch.enable_grad():
        x = state.detach().flatten(-2)[:, rows][..., cols].unsqueeze(-2).requires_grad_(True)
        n = len(ti)
        bt = brightness_temperature(
            x[:, :n], x[:, n : 2 * n], x[:, 2 * n], zen.to(x.dtype), levels=levels,
            channels=names,
        )  # fmt: skip
        d = departure.detach().flatten(-2)[..., cols].unsqueeze(-2).to(bt.dtype)
        (grad,) = torch.autograd.grad(bt, x, grad_outputs=d)
    return out.index_copy(-1, cols, grad[..., 0, :].to(out.dtype)).unflatten(-1, (h, w))


def radiance_table(
    radiances: xr.Dataset,
    *,
    error: float | Mapping[str, float] = 1.0,
    frames: Sequence[float] | None = (0.0,),
) -> xr.Dataset:
    """The radiances in the observation layout (one row per pixel, channel and frame).

    Missing pixels (NaN) are left out. ``variable`` is ``"brightness_temperature"`` and
    ``level`` NaN; coordinates ``sensor_channel``, ``zenith_angle``, ``satellite`` (and
    ``cloudy`` when the Dataset has it) say what each row is. Build the operator for the
    rows with :func:`radiance_operator` and pass both to En4DVar's core as an ``ObsSlot``.

    Parameters
    ----------
    radiances : xarray.Dataset
        From :func:`imager_observations`.
    error : float or mapping channel → float, default 1.0
        Observation-error std (K) per channel (noise plus the operator's own error).
    frames : sequence of float or None, default (0,)
        Frame offsets (hours) to keep; None for all.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    ImagerError
        What :func:`check_radiances` refuses, a frame of ``frames`` the radiances lack,
        every pixel of those frames missing, an ``error`` mapping without a channel of
        the radiances, or an error that is not positive and finite.

    Notes
    -----
    Radiances of a single time or frame held as a scalar coordinate
    (``radiances.isel(time=0)``) are of that time and frame; without a time coordinate the
    rows' time is NaT, without a frame coordinate the pixels are the analysis time's (0 h).
    """
    from .sets import make_observations

    radiances = check_radiances(radiances)
    bt = _with_time_and_frame(radiances["brightness_temperature"])
    pick = slice(None)
    if frames is not None:
        want = (np.asarray(frames, dtype="float64") * 3600e9).round().astype("int64")
        have = bt["frame"].values.astype("m8[ns]").astype("int64")
        absent = [f for f, w in zip(frames, want) if w not in have]
        if absent:
            raise ImagerError(f"radiances have no frame(s) {absent} h")
        pick = [int(np.flatnonzero(have == w)[0]) for w in want]
        bt = bt.isel(frame=pick)
    bt = bt.transpose("time", "frame", "sensor_channel", "latitude", "longitude")
    names = bt["sensor_channel"].values.astype(str)
    if isinstance(error, Mapping):
        lacking = [str(n) for n in names if n not in error]
        if lacking:
            raise ImagerError(
                f"error has no value for channel(s) {lacking}; give one for each of the "
                f"radiances' channels {names.tolist()}"
            )
    v = bt.values
    it, fr, ch, la, lo = np.nonzero(np.isfinite(v))
    if it.size == 0:
        raise ImagerError("every pixel of the selected frames is missing: nothing to assimilate")
    errs = np.array(
        [float(error[n]) if isinstance(error, Mapping) else float(error) for n in names]
    )
    bad = ~(np.isfinite(errs) & (errs > 0))
    if bad.any():  # a zero error breaks every analysis that divides by it
        raise ImagerError(
            "observation errors must be positive and finite; got "
            + ", ".join(f"{n}: {e:g}" for n, e in zip(names[bad], errs[bad], strict=True))
        )
    when = bt["time"].values[it] + bt["frame"].values[fr]
    table = make_observations(
        v[it, fr, ch, la, lo],
        error=errs[ch],
        time=when,
        latitude=bt["latitude"].values[la],
        longitude=bt["longitude"].values[lo],
        variable="brightness_temperature",
    )
    zen = radiances["zenith_angle"].values
    extra = {
        "sensor_channel": ("obs", names[ch]),
        "zenith_angle": ("obs", zen[la, lo]),
        "pixel_latitude_index": ("obs", la),
        "pixel_longitude_index": ("obs", lo),
    }
    if "satellite" in radiances:
        extra["satellite"] = ("obs", radiances["satellite"].values[la, lo])
    if "cloudy" in radiances:
        cl = _with_time_and_frame(radiances["cloudy"]).isel(frame=pick)
        cl = cl.transpose("time", "frame", "latitude", "longitude")
        extra["cloudy"] = ("obs", cl.values[it, fr, la, lo])
    return table.assign_coords(extra)


def _with_time_and_frame(field: xr.DataArray) -> xr.DataArray:
    """``field`` with ``time`` and ``frame`` dims: a single time or frame held as a scalar
    coordinate is that time or frame (as :func:`xfuxi.assimilate_da` reads it); only where
    there is none, an unknown time (NaT) and the analysis time's frame (0 h)."""
    for name, absent in (("time", np.datetime64("NaT", "ns")), ("frame", np.timedelta64(0, "ns"))):
        if name in field.dims:
            continue
        field = (
            field.expand_dims(name) if name in field.coords else field.expand_dims({name: [absent]})
        )
    return field


class RadianceOperator(torch.nn.Module):
    """The nominal operator at observed pixels: ``(..., C, H, W)`` → ``(..., m)``.

    Nonlinear (clear-sky radiative transfer) and differentiable; usable as the operator of
    an En4DVar observation slot (it has :meth:`subset`). Built by
    :func:`radiance_operator`.
    """

    def __init__(
        self,
        model_channels: Sequence[tuple[str, float | None]],
        grid_shape: tuple[int, int],
        *,
        sensor_channel: Sequence[str],
        lat_index: Any,
        lon_index: Any,
        zenith: Any,
    ) -> None:
        super().__init__()
        self.model_channels = tuple(model_channels)
        self.grid_shape = tuple(int(g) for g in grid_shape)
        self.sensor_channel = np.asarray(sensor_channel, dtype=str)
        self.names = _check_channels(sorted(set(self.sensor_channel.tolist())))
        self.t_index, self.q_index, self.ps_index, self.levels = _state_indices(model_channels)
        self.lat_index = torch.as_tensor(np.asarray(lat_index, dtype="int64"))
        self.lon_index = torch.as_tensor(np.asarray(lon_index, dtype="int64"))
        self.channel_index = torch.as_tensor(
            np.array([self.names.index(c) for c in self.sensor_channel], dtype="int64")
        )
        self.zenith = torch.as_tensor(np.asarray(zenith, dtype="float64"))
        if not torch.isfinite(self.zenith).all():
            raise ImagerError("an observed pixel has no zenith angle (NaN)")

    @property
    def n_obs(self) -> int:
        return int(self.lat_index.numel())

    def weights(self) -> Any:
        """Where each row is, for an ensemble filter's localization: the pixel's column.

        :class:`~xfuxi.observations.interpolation.ObservationWeights` whose index covers
        the temperature, tracer and surface-pressure channels at the row's pixel with equal
        weights: horizontally a radiance sits at its pixel; vertically it is localized like
        an average over the column it senses (the LETKF's ``observation_localization``
        averages the channels' correlations with these weights). Not the operator itself,
        which is nonlinear.

        Examples
        --------
        >>> chans = [("temperature", 500.0), ("passive_tracer", 500.0), ("surface_pressure", None)]
        >>> op = RadianceOperator(chans, (2, 4), sensor_channel=["wv6.9"], lat_index=[1],
        ...                       lon_index=[2], zenith=[10.0])
        >>> w = op.weights()
        >>> w.index.tolist(), w.weight.round(3).tolist()
        ([[6, 14, 22]], [[0.333, 0.333, 0.333]])
        """
        from .interpolation import ObservationWeights

        h, w = self.grid_shape
        chans = np.array([*self.t_index, *self.q_index, self.ps_index], dtype="int64")
        point = self.lat_index.numpy() * w + self.lon_index.numpy()
        index = chans[None, :] * (h * w) + point[:, None]
        weight = np.full(index.shape, 1.0 / chans.size)
        return ObservationWeights(index, weight, (len(self.model_channels), h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = len(self.model_channels)
        if tuple(x.shape[-3:]) != (c, *self.grid_shape):
            raise ValueError(
                f"expected states (..., {(c, *self.grid_shape)}); got {tuple(x.shape)}"
            )
        li, lo = self.lat_index, self.lon_index
        t = x[..., self.t_index, :, :][..., li, lo].unsqueeze(-1)  # (..., L, m, 1)
        q = x[..., self.q_index, :, :][..., li, lo].unsqueeze(-1)
        ps = x[..., self.ps_index, :, :][..., li, lo].unsqueeze(-1)  # (..., m, 1)
        zen = self.zenith.to(x.dtype).unsqueeze(-1)
        bt = brightness_temperature(t, q, ps, zen, levels=self.levels, channels=self.names)
        bt = bt[..., 0]  # (..., S, m)
        idx = self.channel_index.expand(*bt.shape[:-2], 1, -1)
        return torch.gather(bt, -2, idx)[..., 0, :]

    def subset(self, keep: Any) -> RadianceOperator:
        """The operator restricted to the rows selected by ``keep`` (bool mask or index)."""
        k = np.asarray(keep)
        return RadianceOperator(
            self.model_channels,
            self.grid_shape,
            sensor_channel=self.sensor_channel[k],
            lat_index=self.lat_index.numpy()[k],
            lon_index=self.lon_index.numpy()[k],
            zenith=self.zenith.numpy()[k],
        )


def radiance_operator(
    table: xr.Dataset,
    *,
    channels: Sequence[tuple[str, float | None]],
    latitude: Any,
    longitude: Any,
) -> RadianceOperator:
    """The nominal operator for the rows of :func:`radiance_table` on a model grid.

    Parameters
    ----------
    table : xarray.Dataset
        Rows from :func:`radiance_table`.
    channels : sequence of (variable, level)
        The model's channels (temperature and passive_tracer on levels, surface_pressure).
    latitude, longitude : array-like
        The model grid; every row must be at one of its points.

    Raises
    ------
    ImagerError
        A row is not at a grid point (radiances on another grid), or the model lacks the
        variables the operator reads.
    """
    lat = np.asarray(latitude, dtype="float64")
    lon = np.asarray(longitude, dtype="float64") % 360.0
    ola = table["latitude"].values
    olo = table["longitude"].values % 360.0
    # the nearest grid row and column of each row, a block of rows at a time (all rows at
    # once made (rows x grid) arrays: 3.7 KB a row on the 1.5° grid, 3.8 GB for 1M rows)
    li = np.empty(ola.size, dtype=np.intp)
    lo = np.empty(olo.size, dtype=np.intp)
    step = max(1, 2**22 // max(lat.size, lon.size))
    for a in range(0, ola.size, step):
        b = slice(a, a + step)
        li[b] = np.abs(ola[b, None] - lat[None, :]).argmin(1)
        lo[b] = np.abs(((olo[b, None] - lon[None, :]) + 180.0) % 360.0 - 180.0).argmin(1)
    off = (np.abs(lat[li] - ola) > 1e-6) | (np.abs((lon[lo] - olo + 180.0) % 360.0 - 180.0) > 1e-6)
    if off.any():
        j = int(np.flatnonzero(off)[0])
        raise ImagerError(
            f"{int(off.sum())} radiance(s) are not at a point of the model grid (radiances on "
            f"another grid), e.g. latitude {ola[j]:.4f}, longitude {olo[j]:.4f}"
        )
    return RadianceOperator(
        channels,
        (lat.size, lon.size),
        sensor_channel=table["sensor_channel"].values.astype(str),
        lat_index=li,
        lon_index=lo,
        zenith=table["zenith_angle"].values,
    )
