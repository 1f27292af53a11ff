"""FuXi-DA analyses: a background and imager radiances in, the analysis and diagnostics out.

:func:`assimilate_da` runs a :class:`~xfuxi.models.fuxi_da.FuXiDA` network (or its CORR
variant, which ignores the radiances) on every time of a background Dataset and returns the
analysis, the increment and diagnostics: O−B and O−A of the radiances at the analysis time
through the nominal operator (:class:`~xfuxi.observations.imager.NominalImager`), by
channel, by zenith-angle bin and for clear and cloudy pixels. :class:`DAMethod` wraps it
for a cycling driver (background Dataset in, analysis Dataset out).

See the documentation (docs/fuxi_da.md).
"""

from __future__ import annotations

import copy
import functools
import os
import time as _time
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from .._version import __version__
from ..config import is_integer
from ..data.channels import stack_values, unstack
from ..data.schema import (
    canonical_order,
    input_source,
    native_byte_order,
    physical_range_error,
    states_at_valid_times,
    time_dtype_problem,
)
from ..data.stats import own_attrs
from ..docstrings import docstring_parts
from ..models.fuxi_da import FuXiDA, load_da_model, observation_features
from ..models.precision import autocast, check_precision
from ..models.rollout import model_device
from ..observations.imager import DOC_PARTS as IMAGER_DOC_PARTS
from ..observations.imager import (
    ImagerError,
    NominalImager,
    _canonical_orientation,
    check_radiances,
    zenith_angle,
)
from .result import DAResult

__all__ = [
    "DEFAULT_DA_MODEL",
    "SCREEN_WINDOWS",
    "ZENITH_BINS",
    "DAMethod",
    "DAResult",
    "analysis_dataset",
    "assimilate_da",
    "da_inputs",
    "increment_dataset",
    "observation_inputs",
    "radiance_diagnostics",
    "resolve_da_model",
]

#: the shipped FuXi-DA model used when none is given
DEFAULT_DA_MODEL = "fuxi-da-hs-t21"
#: edges of the zenith-angle bins of the diagnostics (degrees)
ZENITH_BINS = (0.0, 20.0, 40.0, 55.0, 70.0)
#: a pixel counts as cloudy in the diagnostics when its window channel's O−B is below this
CLOUD_SCREEN_K = -3.0


def resolve_da_model(model: FuXiDA | str | os.PathLike[str] | None) -> FuXiDA:
    """A FuXi-DA model from an instance, a shipped name or a checkpoint directory."""
    if model is None:
        model = DEFAULT_DA_MODEL
    if isinstance(model, FuXiDA):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_da_model(model)
    raise TypeError(f"model must be a FuXiDA, a shipped name or a path; got {type(model).__name__}")


def _at_valid_times(background: xr.Dataset) -> xr.Dataset:
    """A forecast of one lead (``prediction_timedelta`` a dim of one value, a scalar, or a
    coordinate along ``time``) on its valid times, the times it is a background for; several
    leads are refused, and so is a lead that is not a time span."""
    if "prediction_timedelta" in background.dims:
        size = background.sizes["prediction_timedelta"]
        if size != 1:
            raise ValueError(
                f"background is a forecast of {size} leads; FuXi-DA analyses one state per "
                "time: select the lead of the background (e.g. "
                "background.isel(prediction_timedelta=0) for the first), which is analysed at "
                "its valid times (initial time + lead)"
            )
        background = background.squeeze("prediction_timedelta")
    # one lead, or one per time (a coordinate along time): the analysis time of a 6-hour
    # forecast is its valid time (the one rule of every function that takes states)
    return states_at_valid_times(background, "background", error=TypeError)


def _levels_ascending(background: xr.Dataset) -> xr.Dataset:
    """The background with its levels in xfuxi's canonical order, ascending (a copy where
    they were not: top-down as ERA5 stores them, or in no order); repeated levels are
    refused. The analysis and the increment are on these levels, each labelled as in the
    background."""
    if "level" not in background.dims or "level" not in background.xindexes:
        return background
    index = background.indexes["level"]
    if index.has_duplicates:
        repeated = sorted({float(v) for v in index[index.duplicated()]})
        raise ValueError(f"background has repeated level(s) {repeated}; give each level once")
    if index.is_monotonic_increasing:
        return background
    return background.sortby("level")  # a copy: the caller's background is not changed


def _check_background(background: xr.Dataset, model: FuXiDA) -> xr.Dataset:
    if not isinstance(background, xr.Dataset):
        raise TypeError(f"background must be an xarray.Dataset; got {type(background).__name__}")
    # big-endian coordinates (h5py, np.fromfile('>f8')): pandas refuses them as an index
    background = native_byte_order(background)
    if "time" in background.coords:  # cftime dates, a time zone, beyond datetime64[ns]
        problem = time_dtype_problem(background["time"], "time")
        if problem is not None:
            raise ValueError(f"the background's {problem}")
    background = _at_valid_times(background)
    if "time" not in background.dims:
        background = background.expand_dims("time") if "time" in background.coords else background
    if "time" not in background.dims:
        raise ValueError("background needs a 'time' coordinate (the analysis time)")
    if background.sizes["time"] == 0:
        raise ValueError("background has no time: there is nothing to analyse")
    times = background.indexes["time"] if "time" in background.indexes else None
    if times is not None and not times.is_unique:  # (radiances at repeated times are refused)
        twice = [str(t) for t in times[times.duplicated()].unique()[:5]]
        raise ValueError(f"the background's time holds {twice} more than once; each analysis "
                         "time may appear only once")  # fmt: skip
    background = _levels_ascending(background)
    # the model's grid in another order (north to south, -180..180, rolled): put in order
    background = _canonical_orientation(background, "background")
    for name, grid in (("latitude", model.latitude), ("longitude", model.longitude)):
        if name not in background.coords:
            raise ValueError(f"background has no {name} coordinate; the model needs its grid")
        have = np.asarray(background[name].values, dtype="float64")
        if have.shape != grid.shape or not np.allclose(have, grid, atol=1e-6):
            # (the model's grid in another order was put in order above)
            raise ValueError(
                f"the background's {name} ({have.size} values) is not the model's grid "
                f"({grid.size} values); regrid the background to the model's grid"
            )
    variables = sorted({v for v, _ in model.channels})
    missing = [v for v in variables if v not in background.data_vars]
    if missing:
        raise ValueError(
            f"background lacks variable(s) {missing} that the model {model.name!r} needs"
        )
    for v in variables:  # only what the model reads: a level it does not use may hold anything
        levels = [lv for name, lv in model.channels if name == v and lv is not None]
        field = background[v]
        extra = [d for d in field.dims if d not in ("time", "level", "latitude", "longitude")]
        if extra:
            raise ValueError(
                f"background[{v!r}] has dim(s) {extra} beside time, level, latitude and "
                f"longitude; FuXi-DA analyses one state per time: select one (e.g. "
                f"background.isel({extra[0]}=0))"
            )
        if levels and "level" in field.dims:
            absent = [lv for lv in levels if not np.isclose(field["level"].values, lv).any()]
            if absent:
                raise ValueError(
                    f"background[{v!r}] lacks level(s) {absent} that the model {model.name!r} needs"
                )
            field = field.sel(level=levels, method="nearest")
        values = np.asarray(field.values)
        n_bad = int((~np.isfinite(values)).sum())
        if n_bad:
            raise ValueError(
                f"background[{v!r}] has {n_bad} non-finite value(s) (NaN or inf) where the "
                "model reads it; a background must be complete"
            )
        # temperatures in °C were analysed as kelvin (an analysis of -17.7 on average)
        problem = physical_range_error(v, float(values.min()), float(values.max()))
        if problem:
            raise ValueError(f"the background's {problem}")
    return background


def _radiances_for(
    radiances: xr.Dataset,
    model: FuXiDA,
    *,
    allow_missing_channels: bool,
    allow_new_satellites: bool,
    training: bool = False,
) -> xr.Dataset:
    """The radiances checked for ``model`` and put in xfuxi's order (a copy where they were
    not); ``training``: for a network to be trained on them (the messages do not offer the
    ``allow_*`` switches of :func:`assimilate_da`)."""
    for flag, value in (
        ("allow_missing_channels", allow_missing_channels),
        ("allow_new_satellites", allow_new_satellites),
    ):
        if not isinstance(value, bool | np.bool_):
            raise TypeError(f"{flag} must be True or False; got {value!r}")
    radiances = check_radiances(radiances, latitude=model.latitude, longitude=model.longitude)
    if "time" not in radiances.coords:
        raise ImagerError(
            "the radiances have no time coordinate, so their analysis time cannot be matched "
            "with the background's; give them with their time (as xfuxi.imager_observations "
            "makes them)"
        )
    have = radiances["sensor_channel"].values.astype(str).tolist()
    absent = [c for c in model.sensor_channels if c not in have]
    if absent and not allow_missing_channels:
        hint = "(pass allow_missing_channels=True to treat them as missing pixels)"
        if training:
            hint = "(give radiances of every channel the network takes)"
        raise ImagerError(
            f"the model {model.name!r} was trained for imager channels "
            f"{list(model.sensor_channels)}; the radiances lack {absent} {hint}"
        )
    extra = [c for c in have if c not in model.sensor_channels]
    if extra and model.uses_observations:
        raise ImagerError(
            f"the radiances have channel(s) {extra} that the model {model.name!r} was not "
            f"trained for (it takes {list(model.sensor_channels)}); select its channels"
        )
    if model.satellites and not allow_new_satellites:
        _check_satellites(radiances, model, training=training)
    else:  # satellites of no matter which longitudes: still their geometry
        _check_zenith_geometry(radiances)
    _check_radiance_frames(radiances, model)
    return radiances


def _check_radiance_frames(radiances: xr.Dataset, model: FuXiDA) -> np.ndarray:
    """The radiances' frame offsets (hours; ``[0]`` without a frame coordinate: the analysis
    time's frame alone), refused where they lack a frame the ``model`` takes."""
    if "frame" in radiances.coords:  # a frame dim or a single frame as a scalar
        hours = np.atleast_1d(radiances["frame"].values / np.timedelta64(1, "h"))
        hours = hours.astype("float64")
        check_frames(model, hours, "the radiances have frames")
        return hours
    hours = np.zeros(1)
    check_frames(
        model,
        hours,
        "the radiances have no frame coordinate, so they hold only the analysis time's frame,",
        "; give them with their frame coordinate (as xfuxi.imager_observations makes them)",
    )
    return hours


def _check_satellites(radiances: xr.Dataset, model: FuXiDA, *, training: bool = False) -> None:
    """Refuse radiances from satellites the ``model`` was not trained with: by their
    ``satellite_longitudes`` attribute (modulo 360, to 10⁻³ degree), or, without it, by their
    zenith angles, each of which must be that of one of the model's satellites (to 0.5°).
    With the attribute, the zenith angles must be those of its satellites
    (:func:`_check_zenith_geometry`)."""
    trained = np.asarray(model.satellites, dtype="float64")
    hint = "(pass allow_new_satellites=True to use it outside its training geometry)"
    if training:
        hint = "(give radiances from the satellites the network is made for)"
    sats = radiances.attrs.get("satellite_longitudes")
    if sats is not None:
        sats = np.atleast_1d(np.asarray(sats, dtype="float64"))
        gap = np.abs((sats[:, None] - trained[None, :] + 180.0) % 360.0 - 180.0)
        if np.any(gap.min(1) > 1e-3):
            raise ImagerError(
                f"the model {model.name!r} was trained with satellites at "
                f"{trained.tolist()} degrees east; the radiances come from {sats.tolist()} " + hint
            )
        _check_zenith_geometry(radiances)
        return
    bad, seen, radians = _zenith_mismatch(radiances, trained)
    if bad.any():
        raise ImagerError(
            f"the radiances have no 'satellite_longitudes' attribute, and the zenith angles of "
            f"{int(bad.sum())} of their {int(seen.sum())} seen pixels are not those of the "
            f"satellites the model {model.name!r} was trained with ({trained.tolist()} degrees "
            "east) " + (_RADIANS_HINT if radians else hint)
        )


_RADIANS_HINT = (
    "(they look like radians: xfuxi reads zenith angles in degrees; convert them with "
    "np.degrees and set units='degree')"
)


def _zenith_mismatch(radiances: xr.Dataset, satellites: Any) -> tuple[Any, Any, bool]:
    """The seen pixels whose zenith angle is not that of one of ``satellites`` (to 0.5°),
    the seen pixels, and whether the angles would all fit as radians turned to degrees."""
    zen = np.asarray(radiances["zenith_angle"].values, dtype="float64")
    seen = np.isfinite(zen)
    lat = np.ascontiguousarray(radiances["latitude"].values, dtype="float64").tobytes()
    lon = np.ascontiguousarray(radiances["longitude"].values, dtype="float64").tobytes()
    sats = np.ascontiguousarray(np.atleast_1d(satellites), dtype="float64").tobytes()
    each = _zenith_of_each(lat, lon, sats)

    def misfit(z: Any) -> Any:
        gap = np.fmin.reduce(np.abs(each - z[None]), axis=0)  # NaN where no satellite fits
        return seen & ~(gap <= 0.5)

    bad = misfit(zen)
    radians = bool(bad.any()) and not misfit(np.degrees(zen)).any()
    return bad, seen, radians


@functools.lru_cache(maxsize=8)
def _zenith_of_each(lat: bytes, lon: bytes, satellites: bytes) -> np.ndarray:
    """The zenith angle of each satellite at each grid point ``(S, H, W)`` (the float64
    coordinates and sub-satellite longitudes given as bytes), kept for the next analysis on
    the same grid (a cycle's: the geometry does not change). Read-only."""
    la, lo = np.frombuffer(lat), np.frombuffer(lon)
    each = np.stack(
        [zenith_angle(la, lo, satellites=[s], max_zenith=89.999)[0]
         for s in np.frombuffer(satellites)]
    )  # fmt: skip
    each.flags.writeable = False
    return each


def _check_zenith_geometry(radiances: xr.Dataset) -> None:
    """Refuse radiances whose zenith angles are not those of the satellites their
    ``satellite_longitudes`` attribute names (to 0.5°; radians read as degrees gave a
    silently wrong analysis); nothing to compare without the attribute."""
    sats = radiances.attrs.get("satellite_longitudes")
    if sats is None:
        return
    sats = np.atleast_1d(np.asarray(sats, dtype="float64"))
    bad, seen, radians = _zenith_mismatch(radiances, sats)
    if bad.any():
        raise ImagerError(
            f"the zenith angles of {int(bad.sum())} of the radiances' {int(seen.sum())} seen "
            f"pixels are not those of the satellites of their 'satellite_longitudes' "
            f"attribute ({sats.tolist()} degrees east) "
            + (_RADIANS_HINT if radians else "(give the zenith angles of their satellites)")
        )


def check_frames(model: FuXiDA, frames: Any, what: str, hint: str = "") -> None:
    """Refuse ``frames`` (hours) that lack a frame the ASSI ``model`` takes (``what`` names
    them in the message, ``hint`` ends it)."""
    have = np.asarray(frames, dtype="float64")
    if model.uses_observations and not all(np.any(np.isclose(have, f)) for f in model.frames):
        raise ImagerError(
            f"the model {model.name!r} takes frames at {list(model.frames)} h; {what} at "
            f"{have.tolist()} h{hint}"
        )


class _Frames:
    """The radiances at each analysis time as ``(F, S, H, W)`` arrays in the model's frame and
    channel order (NaN for a channel the radiances lack); the Dataset is read once."""

    def __init__(self, radiances: xr.Dataset, model: FuXiDA) -> None:
        bt = radiances.variables["brightness_temperature"]  # a Variable: no coordinates built
        # a single frame or time as a scalar coordinate counts as a dim of length one (no
        # frame at all: at the analysis time)
        hours = _check_radiance_frames(radiances, model)
        if "frame" not in bt.dims:
            bt = bt.set_dims({"frame": 1, **bt.sizes})
        self.times = None
        if "time" in radiances.coords:
            self.times = np.atleast_1d(radiances["time"].values).astype("datetime64[ns]")
            if "time" not in bt.dims:
                bt = bt.set_dims({"time": 1, **bt.sizes})
        order = ("time",) if self.times is not None else ()
        self.values = bt.transpose(
            *order, "frame", "sensor_channel", "latitude", "longitude"
        ).values
        self.rows = [int(np.flatnonzero(np.isclose(hours, f))[0]) for f in model.frames]
        have = radiances["sensor_channel"].values.astype(str).tolist()
        self.channels = [
            (k, have.index(c)) for k, c in enumerate(model.sensor_channels) if c in have
        ]
        self.shape = (len(model.frames), len(model.sensor_channels), *model.grid_shape)
        self.model = model

    def __call__(self, t: Any) -> np.ndarray:
        values = self.values
        if self.times is not None:
            where = np.flatnonzero(self.times == np.datetime64(pd.Timestamp(t), "ns"))
            if not where.size:
                have = ", ".join(str(pd.Timestamp(x)) for x in self.times[:4])
                more = ", ..." if self.times.size > 4 else ""
                raise ImagerError(
                    f"the radiances have no analysis time {pd.Timestamp(t)}: every time of "
                    f"the background is an analysis time, and the radiances have {have}{more}; "
                    "select the background's times that have radiances "
                    "(background.sel(time=radiances.time))"
                )
            values = values[where[0]]
        out = np.full(self.shape, np.nan)
        for k, j in self.channels:
            out[:, k] = values[self.rows, j]
        if not np.isfinite(out).any():
            m = self.model
            raise ImagerError(
                f"every pixel of brightness_temperature that the model {m.name!r} reads (frames "
                f"at {list(m.frames)} h, channels {list(m.sensor_channels)}) is missing (NaN) "
                f"at the analysis time {pd.Timestamp(t)}: there is nothing to assimilate then; "
                "leave that time out of the background"
            )
        return out


#: the window channels a screening model reads, in order of preference
SCREEN_WINDOWS = ("ir10.8", "ir12.0", "ir8.5")


def da_inputs(
    background: xr.Dataset,
    radiances: xr.Dataset | None,
    model: FuXiDA,
    *,
    times: Any = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The network's inputs: backgrounds ``(T, C, H, W)`` and observation features.

    Parameters
    ----------
    background : xarray.Dataset
        With a ``time`` dim.
    radiances : xarray.Dataset or None
        From :func:`~xfuxi.observations.imager.imager_observations` (None for CORR).
    model : FuXiDA
    times : sequence of datetime-like, optional
        Default: every background time.

    Returns
    -------
    background : Tensor (T, C, H, W), float32
    observations : Tensor (T, K, H, W), float32, or None (CORR)
    """
    times = background["time"].values if times is None else np.atleast_1d(times)
    x = stack_values(background.sel(time=times), model.channels)
    xb = torch.as_tensor(np.asarray(x, dtype="float32"))
    return xb, observation_inputs(xb, radiances, model, times=times)


def observation_inputs(
    background: torch.Tensor,
    radiances: xr.Dataset | None,
    model: FuXiDA,
    *,
    times: Any,
    operator_dtype: torch.dtype = torch.float64,
) -> torch.Tensor | None:
    """The observation branch's inputs ``(T, K, H, W)`` for backgrounds ``(T, C, H, W)``.

    The backgrounds (physical units, the model's channel order) are used only by a model
    with ``departure_input``: their radiances through the nominal operator are subtracted
    from the observed ones; with ``screen_threshold`` a pixel whose ``ir10.8`` departure is
    below ``−screen_threshold`` is then missing in every channel of its frame (where
    ``ir10.8`` itself is missing, the next of :data:`SCREEN_WINDOWS` the model takes
    decides). The nominal operator runs in ``operator_dtype`` (float32 halves its time and
    moves the departures by about 1e-4 K). None for CORR.
    """
    if not model.uses_observations:
        return None
    if radiances is None:
        raise ValueError(f"the model {model.name!r} assimilates radiances; give them")
    times = np.atleast_1d(times)
    if model.departure_input and background.shape[0] != len(times):
        raise ValueError(f"{background.shape[0]} backgrounds for {len(times)} analysis times")
    zenith = radiances["zenith_angle"].values
    zen = zenith
    if not model.zenith_input:
        zen = np.where(np.isfinite(zen), 90.0, np.nan)  # cos = 0: no zenith information
    seen = None
    if model.departure_input:  # the background through the nominal operator (K)
        operator = NominalImager(model.channels, zenith, channels=model.sensor_channels)
        with torch.no_grad():
            seen = operator(background.to(operator_dtype)).double().numpy()
    # cloud screening on the ir10.8 departure; where ir10.8 is missing (a channel absent at
    # analysis time), on the next window channel the model takes
    windows = [
        model.sensor_channels.index(c)
        for c in SCREEN_WINDOWS
        if model.screen_threshold is not None and c in model.sensor_channels
    ]
    feats = []
    frames_at = _Frames(radiances, model)
    for i, t in enumerate(times):
        frames = frames_at(t)
        if windows:  # cloud screening: cold window departures -> missing pixels
            window_dep = np.full(frames[:, 0].shape, np.nan)
            for k in windows:
                window_dep = np.where(np.isnan(window_dep), frames[:, k] - seen[i][k], window_dep)
            with np.errstate(invalid="ignore"):
                cold = window_dep < -model.screen_threshold
            frames = np.where(cold[:, None], np.nan, frames)
        feats.append(
            observation_features(
                frames,
                zen,
                latitude=model.latitude,
                longitude=model.longitude,
                time=t,
                frames=model.frames,
                zenith_input=model.zenith_input,
                position_input=model.position_input,
                departure=None if seen is None else frames - seen[i][None],
            )
        )
    return torch.as_tensor(np.stack(feats))


def _bin_stats(d: np.ndarray, groups: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Mean, RMS and count of departures ``d`` (S, P) per group mask (P,)."""
    mean, rms, count = [], [], []
    for mask in groups.values():
        sel = d[:, mask]
        n = np.isfinite(sel).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean.append(np.where(n > 0, np.nansum(sel, 1) / np.maximum(n, 1), np.nan))
            rms.append(np.where(n > 0, np.sqrt(np.nansum(sel**2, 1) / np.maximum(n, 1)), np.nan))
        count.append(n)
    return np.stack(mean, 1), np.stack(rms, 1), np.stack(count, 1)


def radiance_diagnostics(
    background: np.ndarray,
    analysis: np.ndarray,
    observed: np.ndarray,
    zenith: np.ndarray,
    *,
    model_channels: Any,
    sensor_channels: Any,
    cloudy: np.ndarray | None = None,
) -> xr.Dataset:
    """O−B and O−A of radiances through the nominal operator, binned.

    Parameters
    ----------
    background, analysis : array (C, H, W)
        States in the model's channels (physical units).
    observed : array (S, H, W)
        Radiances at the analysis time (NaN where missing).
    zenith : array (H, W)
    model_channels, sensor_channels
    cloudy : array of bool (H, W), optional
        The cloud flag; default: a window channel's O−B below ``CLOUD_SCREEN_K`` (a pixel
        without any window value is neither clear nor cloudy; without a window channel no
        pixel is, and both groups are empty).

    Returns
    -------
    xarray.Dataset
        ``mean_omb``, ``rms_omb``, ``mean_oma``, ``rms_oma``, ``count`` on
        (sensor_channel, group) with groups ``all``, the zenith bins and ``clear`` /
        ``cloudy``.
    """
    op = NominalImager(model_channels, zenith, channels=sensor_channels)
    with torch.no_grad():  # both states in one call
        states = np.stack([np.asarray(background, "float64"), np.asarray(analysis, "float64")])
        hb, ha = op(torch.as_tensor(states)).numpy()
    s = len(op.channels)
    omb = (observed - hb).reshape(s, -1)
    oma = (observed - ha).reshape(s, -1)
    zen = np.asarray(zenith, dtype="float64").ravel()
    known = np.ones(zen.size, bool)
    if cloudy is None:
        # a window channel's O−B decides, in the order of SCREEN_WINDOWS: where the first is
        # missing the next; where every window is missing the pixel is neither clear nor cloudy
        windows = [op.channels.index(c) for c in SCREEN_WINDOWS if c in op.channels]
        window_omb = np.full(zen.size, np.nan)
        for i in windows:
            window_omb = np.where(np.isnan(window_omb), omb[i], window_omb)
        # without a window channel nothing tells clear from cloudy: neither group has a pixel
        known = np.isfinite(window_omb) if windows else np.zeros(zen.size, bool)
        with np.errstate(invalid="ignore"):
            cloudy = window_omb < CLOUD_SCREEN_K if windows else np.zeros(zen.size, bool)
        cloud_source = "screened" if windows else "none"
    else:
        cloud_source = "given"
    cloudy = np.asarray(cloudy, dtype=bool).ravel()
    groups = {"all": np.ones(zen.size, bool)}
    edges = list(zip(ZENITH_BINS[:-1], ZENITH_BINS[1:]))
    for lo, hi in edges:  # [lo, hi), the last [lo, hi]: angles beyond it are in "all" only
        upper = zen <= hi if (lo, hi) == edges[-1] else zen < hi
        groups[f"zenith {lo:g}-{hi:g}"] = (zen >= lo) & upper
    groups["clear"] = known & ~cloudy
    groups["cloudy"] = known & cloudy
    mb, rb, nb = _bin_stats(omb, groups)
    ma, ra, _ = _bin_stats(oma, groups)
    dims = ("sensor_channel", "group")
    ds = xr.Dataset(
        {
            "mean_omb": (dims, mb),
            "rms_omb": (dims, rb),
            "mean_oma": (dims, ma),
            "rms_oma": (dims, ra),
            "count": (dims, nb),
        },
        coords={"sensor_channel": list(op.channels), "group": list(groups)},
    )
    for name in ("mean_omb", "rms_omb", "mean_oma", "rms_oma"):
        ds[name].attrs["units"] = "K"  # brightness temperatures
    ds.attrs["cloud_flag"] = cloud_source
    return ds


def increment_dataset(background: xr.Dataset, inc: np.ndarray, channels: Any) -> xr.Dataset:
    """The increments ``inc`` ``(T, C, H, W)`` in the model's ``channels`` as a Dataset on the
    background's coordinates (its time, level, latitude and longitude coordinates and those
    along them or scalar), in the canonical layout, with the background's variable attributes.

    Where every variable with levels has exactly the background's levels (the common case)
    the Dataset is built from NumPy slices; otherwise through :func:`~xfuxi.data.channels.unstack`.
    Both give the same Dataset (tested). Levels are matched by value, never by position:
    the general way labels the increment with the model's levels, ascending, taking the
    background's level coordinate only where it holds those values in that order.
    """
    fast = _increment_in_memory(background, inc, channels)
    return fast if fast is not None else _increment_unstacked(background, inc, channels)


def _increment_unstacked(background: xr.Dataset, inc: np.ndarray, channels: Any) -> xr.Dataset:
    da = xr.DataArray(
        inc,
        dims=("time", "channel", "latitude", "longitude"),
        coords={
            "time": background["time"].values,
            "latitude": background["latitude"].values,
            "longitude": background["longitude"].values,
        },
    )
    increment = unstack(da, channels)
    if "level" in increment.dims and not increment.indexes["level"].is_monotonic_increasing:
        increment = increment.sortby("level")  # the model's levels ascending (canonical)
    increment = increment.assign_coords(  # the background's own, where it has the same values
        {
            c: background[c]
            for c in increment.coords
            if c in background.coords and _same_labels(increment[c], background[c])
        }
    )
    increment = increment.transpose(*canonical_order(increment.dims))
    for v in increment.data_vars:
        increment[v].attrs = _increment_attrs(background[v].attrs)
    return increment


def _increment_attrs(attrs: dict) -> dict:
    """A variable's attributes for its increment: its units only, as En4DVar's increment
    has (the field's names, ``long_name="air temperature"`` or a CF ``standard_name``,
    would label a difference as the field itself)."""
    return {"units": copy.deepcopy(attrs["units"])} if "units" in attrs else {}


def _same_labels(mine: xr.DataArray, theirs: xr.DataArray) -> bool:
    """Whether coordinate ``theirs`` (the background's) has the dims, sizes and, to 1e-6,
    the values of ``mine`` (the increment's), position by position: only then may it
    replace ``mine`` (levels of the same number in another order label other levels)."""
    if mine.dims != theirs.dims or mine.shape != theirs.shape:
        return False
    a, b = np.asarray(mine.values), np.asarray(theirs.values)
    if a.dtype.kind in "fiu" and b.dtype.kind in "fiu":
        return bool(np.allclose(a, b, rtol=0.0, atol=1e-6))
    return bool(np.array_equal(a, b))


def _increment_in_memory(
    background: xr.Dataset, inc: np.ndarray, channels: Any
) -> xr.Dataset | None:
    """:func:`increment_dataset` by NumPy slicing; None where a variable's levels are not
    the background's."""
    levels = background["level"].values.tolist() if "level" in background.dims else None
    by_var: dict[str, list[tuple[Any, int]]] = {}
    for i, (var, level) in enumerate(channels):
        by_var.setdefault(var, []).append((level, i))
    data_vars = {}
    with_levels = False
    for var, items in by_var.items():
        attrs = _increment_attrs(background[var].attrs)
        if items[0][0] is None:
            data_vars[var] = xr.Variable(
                ("time", "latitude", "longitude"), inc[:, items[0][1]], attrs
            )
            continue
        if levels is None or [float(lv) for lv, _ in items] != levels:
            return None
        with_levels = True
        picked = inc[:, [i for _, i in items]]
        data_vars[var] = xr.Variable(("time", "level", "latitude", "longitude"), picked, attrs)
    along = {"time", "latitude", "longitude"} | ({"level"} if with_levels else set())
    names = [
        name
        for name, c in background.variables.items()
        if name in background.coords and (c.ndim == 0 or (c.ndim == 1 and c.dims[0] in along))
    ]
    indexes = {k: i for k, i in background.xindexes.items() if k in names}
    coords = xr.Coordinates({k: background.variables[k] for k in names}, indexes=indexes)
    return xr.Dataset(data_vars, coords=coords)  # each variable in the canonical order


def _analysis_dtype(dtype: Any) -> np.dtype:
    """The dtype of the analysis of a background variable of ``dtype``: float32 or float64
    as given, float32 at least (float16 and integers: an increment of 0.1 K was truncated
    to whole kelvin, or rounded to float16's 0.125 K steps).

    Examples
    --------
    >>> [str(_analysis_dtype(d)) for d in ("float16", "float32", "float64", "int16", "int32")]
    ['float32', 'float32', 'float64', 'float32', 'float64']
    """
    return np.result_type(np.dtype(dtype), np.float32)


def analysis_dataset(background: xr.Dataset, increment: xr.Dataset) -> tuple[xr.Dataset, bool]:
    """``x_a = x_b + δ`` for the increment's variables, and whether the background has the
    increment's levels.

    With the same levels, on the background's own coordinates, layout and attributes
    (NumPy sums); otherwise aligned on the increment's levels. A float32 or float64
    background keeps its dtype; a float16 or integer one gives a float32 analysis at least
    (:func:`_analysis_dtype`): cast back, the increment was truncated.
    """
    names = list(increment.data_vars)
    same_levels = "level" not in increment.dims or np.array_equal(
        background["level"].values, increment["level"].values
    )
    if same_levels:
        values = {}
        for v in names:
            b_v = background.variables[v]
            delta = increment.variables[v].transpose(*b_v.dims).values
            values[v] = (b_v.values + delta).astype(_analysis_dtype(b_v.dtype))
        return own_attrs(background[names].copy(data=values)), True  # attrs its own
    # on the increment's levels (the background's others are not analysed), matched by label
    background = _levels_ascending(background)  # "nearest" needs them in order
    fields = {}
    for v in names:
        b_v = background[v]
        if "level" in increment[v].dims:
            b_v = b_v.sel(level=increment[v]["level"].values, method="nearest")
            b_v = b_v.assign_coords(level=increment[v]["level"].values)
        a_v = (b_v + increment[v].transpose(*b_v.dims)).astype(_analysis_dtype(background[v].dtype))
        a_v.attrs = copy.deepcopy(background[v].attrs)
        fields[v] = a_v
    analysis = xr.Dataset(fields, attrs=copy.deepcopy(background.attrs))
    return analysis.transpose(*canonical_order(analysis.dims)), False


@docstring_parts(IMAGER_DOC_PARTS)
def assimilate_da(
    background: xr.Dataset,
    radiances: xr.Dataset | None = None,
    *,
    model: FuXiDA | str | os.PathLike[str] | None = None,
    allow_missing_channels: bool = False,
    allow_new_satellites: bool = False,
    batch_size: int = 8,
    precision: str = "float32",
    diagnostics: bool = True,
) -> DAResult:
    """Assimilate imager radiances into a background with FuXi-DA.

    Parameters
    ----------
    background : xarray.Dataset
        Background states (a 6-hour forecast) with a ``time`` dim, on the model's grid,
        with every variable the model needs; no NaN. A forecast of one lead (a
        ``prediction_timedelta`` dim of one value, or a scalar one as
        ``fc.isel(prediction_timedelta=0)`` leaves) is analysed at its valid times
        (initial time + lead), the times of the radiances it meets. Its levels, latitudes
        and longitudes may come in any order (top-down and north-to-south as ERA5 stores
        them, longitudes in −180..180 or rolled), as long as they are the model's grid: the
        analysis and the increment are in xfuxi's canonical order (levels and latitudes
        ascending, longitudes in 0..360 ascending), as :func:`xfuxi.validate` would give
        them (the background is not changed).
    radiances : xarray.Dataset, optional
        From :func:`xfuxi.imager_observations`, with the background's times; missing pixels
        are NaN (they are data, not errors). Needed unless the model is a CORR model.
    model : FuXiDA, str or path, optional
        A model, a shipped name or a checkpoint directory; default the shipped
        ``"fuxi-da-hs-t21"`` (all-sky, three frames). The others
        (:func:`~xfuxi.models.fuxi_da.shipped_da_models`): the best analyses here come from
        ``"fuxi-da-hs-t21-screened-5frames"`` (five frames, cloud screening, linear
        update), the best forecasts started from its analyses from
        ``"fuxi-da-hs-t21-screened-5frames-k10"`` (worse analyses; not for cycling); see
        docs/fuxi_da.md, "Shipped models and measured figures".
    allow_missing_channels : bool, default False
        Treat channels the model was trained for but the radiances lack as missing pixels
        (otherwise an error).
    allow_new_satellites : bool, default False
        Accept satellites at other longitudes than in training (otherwise an error).
    batch_size : int, default 8
        Analysis times the network takes in one pass. Another ``batch_size``, or another set
        of analysis times (grouped into other batches), can change the analysis by float32
        rounding (up to 1.2e-6 between 1 and 8 on the tiny test model): bit-identical
        analyses need the same ``batch_size`` and times.
    precision : {"float32", "bfloat16"}, default "float32"
        ``"bfloat16"`` runs the network under :func:`torch.autocast` (its convolutions in
        bfloat16, :mod:`xfuxi.models.precision`); the inputs, the departures and the sum
        ``x_b + δ`` stay in float32 or better, and the departures' nominal operator runs in
        float32 instead of float64 (about 1e-4 K). On a CPU with bfloat16 instructions the
        network takes two thirds (with AMX matrix units) to three quarters (AVX-512 only) of
        its float32 time, and the increment changes by about 1 % of its RMS
        (docs/fuxi_da.md, "Side by side with En4DVar").
    diagnostics : bool, default True
        Compute the radiance diagnostics. ``False`` skips them (the nominal operator on the
        background and the analysis, the binning): ``diagnostics`` then holds only
        ``analysis_seconds``, for cycles or experiments that do not read them.

    Returns
    -------
    DAResult
        ``analysis``, ``increment`` and ``diagnostics`` (O−B, O−A by channel, zenith bin,
        clear / cloudy, through the nominal operator; absent for a CORR model without
        radiances or with ``diagnostics=False``) and ``analysis_seconds`` (the inputs, with
        the departures, and the network). The analysis keeps a float32 or float64
        background's dtype; a float16 or integer background gives float32 or float64
        (NumPy's promotion with float32), as the increment would be truncated in its own.

    Raises
    ------
    ValueError
        Background on another grid, lacking a variable, with NaN, with a level repeated,
        or with a dim beyond time, level, latitude and longitude (e.g. ensemble members);
        background times that are cftime dates, carry a time zone or lie outside the
        years 1678 to 2261 of ``datetime64[ns]`` (named, with the conversion).
    xfuxi.observations.imager.ImagerError
        Radiances on another grid, an unknown channel, every pixel missing (in the whole
        Dataset, or at an analysis time in the frames and channels the model reads), a time
        of the background absent from the radiances, a model trained for other
        channels, frames or satellites (radiances without a frame coordinate hold only the
        analysis time's frame), zenith angles with ``units`` other than degrees, or zenith
        angles that are not those of the satellites (of the ``satellite_longitudes``
        attribute, else of the model's; radians read as degrees are refused so), radiance
        times that are cftime dates, carry a time zone or lie outside the years 1678 to
        2261 of ``datetime64[ns]`` (named, with the conversion).
    TypeError
        A background that is not a Dataset, or a forecast's lead (``prediction_timedelta``)
        that is not a time span or lies along another dim than ``time``.

    Notes
    -----
    The diagnostics are of one frame: the analysis time's (0 h), or, where the radiances
    have none, the frame nearest to it (a single frame as a scalar coordinate is that
    frame). ``diagnostics.attrs["diagnostics_frame_hours"]`` records its offset (hours).

    Examples
    --------
    An untrained network (its output head starts at zero: no increment yet) on a tiny
    column world, with the radiances of :func:`xfuxi.imager_observations`:

    {{example_column_world}}
    >>> import xfuxi
    >>> from xfuxi.models.base import NormStats
    >>> from xfuxi.models.fuxi_da import FuXiDA, FuXiDANet
    >>> lat, lon, levels = [-45.0, -15.0, 15.0, 45.0], np.arange(8) * 45.0, [250, 500, 700, 850]
    >>> background = column_world(lat, lon)
    >>> sensors = ["wv6.2", "ir10.8"]
    >>> radiances = xfuxi.imager_observations(background, channels=sensors, frames=[0.0])
    >>> channels = [(v, lv) for v in ("temperature", "passive_tracer") for lv in levels]
    >>> channels.append(("surface_pressure", None))
    >>> n = len(channels)
    >>> model = FuXiDA(FuXiDANet(n, 2 * len(sensors) + 5 + 3, width=4, scales=2),
    ...                channels=channels, latitude=lat, longitude=lon,
    ...                stats=NormStats(np.full(n, 100.0), np.full(n, 50.0), np.full(n, 2.0)),
    ...                sensor_channels=sensors, frames=[0.0], satellites=[105.0])
    >>> res = assimilate_da(background, radiances, model=model)
    >>> float(abs(res.increment["temperature"]).max())
    0.0
    >>> res.diagnostics["rms_oma"].equals(res.diagnostics["rms_omb"])  # O−A = O−B
    True
    >>> again = background.fuxi.assimilate_da(radiances, model=model)  # through the accessor
    >>> bool(again.analysis.identical(res.analysis))
    True

    With the shipped model (the default, ``"fuxi-da-hs-t21"``), on the T21 embedded world::

        res = background.fuxi.assimilate_da(radiances)
        res.analysis, res.diagnostics["rms_oma"]
    """
    t_start = _time.perf_counter()
    check_precision("", precision)
    if not isinstance(diagnostics, bool | np.bool_):
        raise TypeError(f"diagnostics must be True or False; got {diagnostics!r}")
    if not is_integer(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    net = resolve_da_model(model)
    background = _check_background(background, net)
    if radiances is not None:
        radiances = _radiances_for(
            radiances,
            net,
            allow_missing_channels=allow_missing_channels,
            allow_new_satellites=allow_new_satellites,
        )
    elif net.uses_observations:
        raise ValueError(f"the model {net.name!r} assimilates radiances; give them")
    times = background["time"].values
    x_b = stack_values(background, net.channels)  # (time, channel, latitude, longitude)
    xb = torch.as_tensor(np.asarray(x_b, dtype="float32"))
    fast = precision == "bfloat16"  # the departures' operator in float32 too
    obs = observation_inputs(
        xb, radiances, net, times=times, operator_dtype=torch.float32 if fast else torch.float64
    )
    incs = []
    # evaluation mode while the network computes, each module's own mode given back after
    # (also on an error); a network already in evaluation mode is not touched (the fast
    # path of a cycle's calls, docs/fuxi_da.md)
    modes = [(m, m.training) for m in net.modules()]  # parents before their children
    trained = any(mode for _, mode in modes)
    if trained:
        net.eval()
    try:
        device = model_device(net)
        with torch.no_grad(), autocast(device, precision):
            for i in range(0, len(times), int(batch_size)):
                o = None if obs is None else obs[i : i + batch_size].to(device)
                incs.append(net(xb[i : i + batch_size].to(device), o).float().cpu())
    finally:
        if trained:
            for m, mode in modes:
                if m.training != mode:
                    m.train(mode)
    inc = torch.cat(incs).double().numpy()
    t_net = _time.perf_counter() - t_start
    increment = increment_dataset(background, inc, net.channels)
    names = list(increment.data_vars)
    analysis, same_levels = analysis_dataset(background, increment)
    diags = []
    if diagnostics and radiances is not None and net.uses_observations:
        xb64 = np.asarray(x_b, dtype="float64")
        if same_levels and len({background[v].dtype for v in names}) == 1:
            # the analysis in the model's channels: the same sums, in the same dtype
            xa = (x_b + inc).astype(_analysis_dtype(x_b.dtype)).astype("float64")
        else:
            xa = np.asarray(stack_values(analysis, net.channels), dtype="float64")
        cloud_names = radiances["sensor_channel"].values.astype(str).tolist()
        # the frame nearest the analysis time (the analysis time's where there is one): a
        # scalar frame is its own, radiances without frames hold the analysis time's
        frame_hours = 0.0
        if "frame" in radiances.coords:
            hours = np.atleast_1d(radiances["frame"].values / np.timedelta64(1, "h"))
            frame_hours = float(hours[int(np.argmin(np.abs(hours)))])
        for k, t in enumerate(times):
            bt = radiances["brightness_temperature"]
            bt = bt.sel(time=t) if "time" in bt.dims else bt
            cl = radiances["cloudy"] if "cloudy" in radiances else None
            if cl is not None and "time" in cl.dims:
                cl = cl.sel(time=t)
            if "frame" in bt.dims:
                j = int(np.argmin(np.abs(bt["frame"].values / np.timedelta64(1, "h"))))
                bt = bt.isel(frame=j)
                cl = cl.isel(frame=j) if cl is not None and "frame" in cl.dims else cl
            diags.append(
                radiance_diagnostics(
                    xb64[k],
                    xa[k],
                    bt.transpose("sensor_channel", "latitude", "longitude").values,
                    radiances["zenith_angle"].values,
                    model_channels=net.channels,
                    sensor_channels=cloud_names,
                    cloudy=None if cl is None else cl.values,
                )
            )
    if diags:
        diagnostics = xr.concat(diags, dim=pd.Index(times, name="time"), combine_attrs="override")
        diagnostics["analysis_seconds"] = ((), t_net)
        diagnostics.attrs["diagnostics_frame_hours"] = frame_hours
    else:
        time_coord: Any = {"time": times}
        if "time" in background.xindexes:  # the background's coordinate and index, not rebuilt
            time_coord = xr.Coordinates(
                {"time": background.variables["time"]},
                indexes={"time": background.xindexes["time"]},
            )
        diagnostics = xr.Dataset({"analysis_seconds": ((), t_net)}, coords=time_coord)
    provenance = _provenance_attrs(background, net)
    diagnostics.attrs.update(
        {**provenance, "diagnostics_operator": "nominal clear-sky imager operator"}
    )
    # the analysis and the increment say what made them (the background's own attrs, a
    # world's title and split, would present them as the background): its source is kept
    analysis.attrs = dict(provenance)
    increment.attrs = dict(provenance, description="analysis minus background")
    return DAResult(analysis, increment, diagnostics)


def _provenance_attrs(background: xr.Dataset, net: FuXiDA) -> dict[str, Any]:
    """The attrs of a FuXi-DA analysis, its increment and diagnostics: the ``method``
    (``"FuXi-DA"``, or ``"FuXi-DA CORR"`` for a network without observations), the
    ``model`` (the network's name) and, where the background's attrs say where it came from
    (:func:`xfuxi.data.schema.input_source`), ``background_source``, as an En4DVar
    analysis records them."""
    attrs: dict[str, Any] = {
        "method": "FuXi-DA" if net.uses_observations else "FuXi-DA CORR",
        "model": net.name,
        "xfuxi_version": __version__,
    }
    source = input_source(background.attrs)
    if source is not None:
        attrs["background_source"] = source
    return attrs


class DAMethod:
    """FuXi-DA as a method for a cycling driver: background Dataset in, analysis Dataset out.

    Parameters
    ----------
    model : FuXiDA, str or path, optional
        As for :func:`assimilate_da`.
    **options
        Further keywords of :func:`assimilate_da`.

    Examples
    --------
    >>> method = DAMethod("fuxi-da-hs-t21")  # doctest: +SKIP
    >>> analysis, diagnostics = method.analyse(background, radiances)  # doctest: +SKIP
    """

    name = "fuxi-da"

    def __init__(self, model: FuXiDA | str | os.PathLike[str] | None = None, **options: Any):
        self.model = resolve_da_model(model)
        self.options = options

    def analyse(
        self, background: xr.Dataset, observations: xr.Dataset | None
    ) -> tuple[xr.Dataset, xr.Dataset]:
        """``(analysis, diagnostics)`` at the background's time(s)."""
        res = assimilate_da(background, observations, model=self.model, **self.options)
        return res.analysis, res.diagnostics

    def __call__(self, background: xr.Dataset, observations: xr.Dataset | None) -> xr.Dataset:
        return self.analyse(background, observations)[0]
