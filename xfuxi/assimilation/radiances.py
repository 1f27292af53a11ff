"""Imager radiances in En4DVar: cloud screening, an offline bias correction, the analysis.

The imager's radiances (:func:`~xfuxi.observations.imager.imager_observations`) enter
En4DVar's core as one observation slot at the analysis time, through the nominal
(clear-sky, nonlinear) operator :func:`~xfuxi.observations.imager.radiance_operator`. A
real system cannot read the truth's cloud flag, and the truth's radiances are biased, so:

* **Cloud screening** (:func:`cloud_screen`): a pixel looks cloudy when its window-channel
  departure ``O − H(x_b)`` is below ``−threshold`` (clouds are colder than the clear
  column); every channel of a cloudy-looking pixel is flagged.
* **Bias correction**, offline (:class:`RadianceBiasCorrection`, :func:`fit_radiance_bias`):
  per channel a linear model of the departure on the predictors ``1``, ``sec θ − 1`` and
  the background brightness temperature (``(H(x_b) − 250 K) / 50 K``), fitted by least
  squares on clear-looking pixels of other times and subtracted from the observations
  (``radiance_analysis(..., bias=...)``).
* **Variational bias correction** (VarBC; ``radiance_analysis(..., varbc=...)``): the same
  predictors, but the coefficients ``β`` join En4DVar's control vector and are estimated
  with the state, from a prior ``β_b ± σ_β`` (an offline fit, the previous cycle's
  coefficients, or zeros)::

      J(w, β) = ½ wᵀw + ½ (β − β_b)ᵀ B_β⁻¹ (β − β_b) + ½ ‖R^{-1/2} (y − H(x) − P β)‖²

  preconditioned as ``β = β_b + σ_β ⊙ u`` (:class:`~xfuxi.assimilation.cost.SlotBias`).
  The analysed coefficients come back as a :class:`RadianceBiasCorrection`, the next
  cycle's prior.
* **Clear-sky or all-sky** (:func:`radiance_analysis`): clear-sky drops the cloudy-looking
  pixels; all-sky keeps them with a larger observation error (``cloudy_error``).
"""

from __future__ import annotations

import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..data.channels import stack
from ..models.registry import load_model
from ..observations.imager import (
    CHANNELS,
    ImagerError,
    RadianceOperator,
    brightness_temperature,
    radiance_operator,
    radiance_table,
)
from ..observations.sets import screen_observations
from .calibration import model_background_error, spread_values, wind_pairs
from .config import BackgroundError, Minimiser, QualityControl
from .cost import ObsSlot, SlotBias
from .en4dvar import (
    DEFAULT_LOCALIZATION,
    en4dvar_analysis,
    localization_options,
    resolve_vertical_localization,
)
from .inputs import background_tensor, build_localization, observation_slots
from .members import background_anomalies

__all__ = [
    "PREDICTORS",
    "VARBC_PRIOR_STD",
    "PixelRadianceOperator",
    "RadianceAnalysis",
    "OfflineBiasFit",
    "RadianceBiasCorrection",
    "background_radiances",
    "bias_predictors",
    "cloud_screen",
    "fit_radiance_bias",
    "offline_bias_fit",
    "radiance_analysis",
]

#: the bias model's predictors, in the order of the coefficients
PREDICTORS = ("constant", "sec_zenith_minus_1", "background_bt")
#: the background brightness temperature predictor is ``(H(x_b) − BT_REFERENCE) / BT_SCALE``
BT_REFERENCE, BT_SCALE = 250.0, 50.0
#: VarBC's default prior std of the coefficients of :data:`PREDICTORS` (K per unit of the
#: predictor): 1 K for the constant, 1 K per unit of ``sec θ − 1`` (θ = 60°) and 1 K per
#: 50 K of background brightness temperature
VARBC_PRIOR_STD = (1.0, 1.0, 1.0)


def bias_predictors(zenith_angle: Any, background_bt: Any) -> np.ndarray:
    """The predictors ``(1, sec θ − 1, (H(x_b) − 250) / 50)`` of each row: ``(m, 3)``.

    Parameters
    ----------
    zenith_angle : array-like (m,)
        Satellite zenith angle (degrees), finite and below 90.
    background_bt : array-like (m,)
        The background's brightness temperature through the nominal operator (K).

    Examples
    --------
    >>> bias_predictors([0.0, 60.0], [250.0, 300.0]).round(6).tolist()
    [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    """
    zen = np.asarray(zenith_angle, dtype="float64")
    bt = np.asarray(background_bt, dtype="float64")
    if zen.shape != bt.shape or zen.ndim != 1:
        raise ValueError(
            f"zenith_angle and background_bt must be 1-D of one length; got {zen.shape} "
            f"and {bt.shape}"
        )
    if not (np.isfinite(zen).all() and (np.abs(zen) < 90.0).all()):
        raise ValueError("zenith_angle must be finite and below 90 degrees")
    if not np.isfinite(bt).all():
        raise ValueError("background_bt has NaN or infinite values")
    sec = 1.0 / np.cos(np.radians(zen))
    return np.stack([np.ones_like(zen), sec - 1.0, (bt - BT_REFERENCE) / BT_SCALE], axis=1)


@dataclass(frozen=True)
class RadianceBiasCorrection:
    """Per-channel coefficients of the bias model ``b = β · (1, sec θ − 1, BT_b')``.

    Made by :func:`fit_radiance_bias`; :meth:`predict` gives the bias of rows.

    Examples
    --------
    >>> bc = RadianceBiasCorrection({"wv6.9": (0.5, 1.0, 0.0)}, n_rows={"wv6.9": 10})
    >>> bc.predict(["wv6.9"], [60.0], [250.0]).round(6).tolist()
    [1.5]
    """

    coefficients: Mapping[str, tuple[float, float, float]]
    n_rows: Mapping[str, int]

    def predict(self, sensor_channel: Any, zenith_angle: Any, background_bt: Any) -> np.ndarray:
        """The modelled bias (K) of each row; a channel without coefficients raises."""
        names = np.asarray(sensor_channel, dtype=str)
        missing = sorted(set(names.tolist()) - set(self.coefficients))
        if missing:
            raise ImagerError(f"no bias coefficients for channel(s) {missing}")
        p = bias_predictors(zenith_angle, background_bt)
        beta = np.array([self.coefficients[n] for n in names], dtype="float64").reshape(-1, 3)
        return (p * beta).sum(1)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{channel: {predictor: coefficient, "n_rows": rows fitted}}`` (JSON-ready)."""
        return {
            c: {**dict(zip(PREDICTORS, map(float, b))), "n_rows": int(self.n_rows[c])}
            for c, b in self.coefficients.items()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, float]]) -> RadianceBiasCorrection:
        """The inverse of :meth:`to_dict` (e.g. read back from a JSON file).

        Examples
        --------
        >>> bc = RadianceBiasCorrection({"wv6.9": (0.5, 1.0, 0.0)}, n_rows={"wv6.9": 10})
        >>> RadianceBiasCorrection.from_dict(bc.to_dict()) == bc
        True
        """
        if not isinstance(data, Mapping) or not data:
            raise ImagerError(
                f"bias coefficients must be a non-empty mapping channel -> {{predictor: "
                f"value}}; got {type(data).__name__}"
            )
        coef: dict[str, tuple[float, float, float]] = {}
        rows: dict[str, int] = {}
        for channel, entry in data.items():
            if channel not in CHANNELS:
                raise ImagerError(f"unknown channel {channel!r}; known: {list(CHANNELS)}")
            if not isinstance(entry, Mapping):
                raise ImagerError(f"channel {channel!r}: expected a mapping, got {entry!r}")
            missing = [k for k in (*PREDICTORS, "n_rows") if k not in entry]
            unknown = sorted(set(entry) - {*PREDICTORS, "n_rows"})
            if missing or unknown:
                raise ImagerError(
                    f"channel {channel!r}: missing {missing}, unknown {unknown}; expected "
                    f"{[*PREDICTORS, 'n_rows']}"
                )
            beta = tuple(float(entry[k]) for k in PREDICTORS)
            if not np.isfinite(beta).all():
                raise ImagerError(f"channel {channel!r}: coefficients must be finite; got {beta}")
            coef[str(channel)] = beta  # type: ignore[assignment]
            rows[str(channel)] = int(entry["n_rows"])
        return cls(coef, rows)


class OfflineBiasFit(NamedTuple):
    """What :func:`offline_bias_fit` returns (every mapping keyed by channel)."""

    #: the fitted bias model
    correction: RadianceBiasCorrection
    #: std of the corrected clear-sky departures (K): an observation error for En4DVar
    error: dict[str, float]
    #: RMS of the uncorrected clear-sky departures (K)
    rms_departure: dict[str, float]
    #: clear-looking rows fitted
    n_clear: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"coefficients": ..., "error": ..., "rms_departure": ...,
        "n_clear": ...}`` (what ``xfuxi fit-radiance-bias`` writes and ``xfuxi cycle
        --radiance-bias`` reads back)."""
        return {
            "coefficients": self.correction.to_dict(),
            "error": dict(self.error),
            "rms_departure": dict(self.rms_departure),
            "n_clear": dict(self.n_clear),
        }


def offline_bias_fit(
    background: xr.Dataset,
    radiances: xr.Dataset,
    *,
    model: Any = "fuxi-hs-t21",
    screen_threshold: float = 4.0,
    window_channel: str = "ir10.8",
    frames: Sequence[float] | None = (0.0,),
    min_rows: int = 10,
) -> OfflineBiasFit:
    """Fit the radiances' bias offline, from backgrounds at the radiances' times.

    The departures ``O − H(x_b)`` of the clear-looking pixels (:func:`cloud_screen` with
    ``screen_threshold`` on the window channel) of every frame and time of ``radiances``
    are regressed per channel on :data:`PREDICTORS` (:func:`fit_radiance_bias`). The
    residual std is an observation error for the corrected radiances. Fit on times other
    than the ones to be analysed (docs/fuxi_da.md, Side by side with En4DVar).

    Parameters
    ----------
    background : xarray.Dataset
        Background states (e.g. 6-hour forecasts) with a ``time`` dim holding every time
        of ``radiances`` (plus the frames' offsets, when frames other than 0 are used),
        on the model's grid.
    radiances : xarray.Dataset
        From :func:`~xfuxi.observations.imager.imager_observations`.
    model : str or module
        Only its channels are used (to read the background).
    screen_threshold : float, default 4.0
        K; the clear-sky screening of the single analyses' choice.
    window_channel : str, default "ir10.8"
    frames : sequence of float or None, default (0,)
        Frame offsets (hours) used; None for all.
    min_rows : int, default 10
        Fewer clear rows of a channel raise.

    Returns
    -------
    OfflineBiasFit
    """
    if isinstance(model, str):
        model = load_model(model)
    if not (np.isfinite(screen_threshold) and screen_threshold > 0):
        raise ValueError(f"screen_threshold must be positive (K); got {screen_threshold!r}")
    table = radiance_table(radiances, error=1.0, frames=frames)
    if table.sizes["obs"] == 0:
        raise ImagerError("the radiances have no pixel to fit (all missing)")
    if "cloudy" in table.coords:
        table = table.drop_vars("cloudy")  # the truth's flag: a real system does not have it
    hxb = background_radiances(table, background, channels=model.channels)
    clear = ~cloud_screen(table, hxb, threshold=screen_threshold, window_channel=window_channel)
    names = table["sensor_channel"].values.astype(str)
    zen = table["zenith_angle"].values
    omb = table["value"].values - hxb
    correction = fit_radiance_bias(
        omb[clear], sensor_channel=names[clear], zenith_angle=zen[clear],
        background_bt=hxb[clear], min_rows=min_rows,
    )  # fmt: skip
    resid = omb - correction.predict(names, zen, hxb)
    channels = sorted(correction.coefficients)
    pick = {c: clear & (names == c) for c in channels}
    return OfflineBiasFit(
        correction,
        {c: float(np.std(resid[k])) for c, k in pick.items()},
        {c: float(np.sqrt(np.mean(omb[k] ** 2))) for c, k in pick.items()},
        {c: int(k.sum()) for c, k in pick.items()},
    )


def fit_radiance_bias(
    departure: Any,
    *,
    sensor_channel: Any,
    zenith_angle: Any,
    background_bt: Any,
    min_rows: int = 10,
) -> RadianceBiasCorrection:
    """Least-squares fit, per channel, of departures ``O − H(x_b)`` on the predictors.

    Give it clear-looking rows of times other than the ones to be analysed (an offline
    fit). A channel with fewer than ``min_rows`` rows, or predictors that do not vary
    enough to fit (a rank-deficient design), raises :class:`ImagerError`.

    Examples
    --------
    >>> zen = np.linspace(0.0, 65.0, 40); bt = np.linspace(220.0, 290.0, 40)[::-1]
    >>> omb = 0.3 + 0.8 * (1 / np.cos(np.radians(zen)) - 1) - 0.2 * (bt - 250) / 50
    >>> bc = fit_radiance_bias(omb, sensor_channel=["ir10.8"] * 40, zenith_angle=zen,
    ...                        background_bt=bt)
    >>> np.round(bc.coefficients["ir10.8"], 6).tolist()
    [0.3, 0.8, -0.2]
    """
    d = np.asarray(departure, dtype="float64")
    names = np.asarray(sensor_channel, dtype=str)
    if d.ndim != 1 or names.shape != d.shape:
        raise ValueError(f"departure and sensor_channel must be 1-D of one length; got "
                         f"{d.shape} and {names.shape}")  # fmt: skip
    if not np.isfinite(d).all():
        raise ValueError("departure has NaN or infinite values")
    p = bias_predictors(zenith_angle, background_bt)
    if p.shape[0] != d.size:
        raise ValueError("zenith_angle and background_bt must have one value per departure")
    coef: dict[str, tuple[float, float, float]] = {}
    rows: dict[str, int] = {}
    for c in sorted(set(names.tolist())):
        k = names == c
        if int(k.sum()) < min_rows:
            raise ImagerError(f"channel {c!r}: {int(k.sum())} rows, fewer than {min_rows}")
        beta, _, rank, _ = np.linalg.lstsq(p[k], d[k], rcond=None)
        if rank < p.shape[1]:
            raise ImagerError(
                f"channel {c!r}: the predictors do not vary enough to fit the bias "
                f"(rank {rank} of {p.shape[1]})"
            )
        coef[c] = (float(beta[0]), float(beta[1]), float(beta[2]))
        rows[c] = int(k.sum())
    return RadianceBiasCorrection(coef, rows)


def background_radiances(
    table: xr.Dataset,
    background: xr.Dataset,
    *,
    channels: Sequence[tuple[str, float | None]],
) -> np.ndarray:
    """``H(x_b)`` at each row of :func:`~xfuxi.observations.imager.radiance_table` (K).

    Each row is seen through the background state at the row's ``time`` (which must be a
    time of ``background``).
    """
    out = np.full(table.sizes["obs"], np.nan)
    row_times = table["time"].values
    have = pd.DatetimeIndex(background["time"].values)
    for t in np.unique(row_times):
        if pd.Timestamp(t) not in have:
            raise ImagerError(f"the background has no state at {pd.Timestamp(t)} (a row's time)")
        k = np.flatnonzero(row_times == t)
        # each pixel's column once for all its channels (the same values to 6e-14 K; per row,
        # every channel was computed for each row of a pixel: 8 times the work, 8 channels)
        op = PixelRadianceOperator.of(
            radiance_operator(
                table.isel(obs=k),
                channels=channels,
                latitude=background["latitude"].values,
                longitude=background["longitude"].values,
            )
        )
        x = stack(background.sel(time=t), list(channels)).transpose(
            "channel", "latitude", "longitude"
        )
        with torch.no_grad():
            out[k] = op(torch.as_tensor(np.asarray(x.values, dtype="float64"))).numpy()
    return out


def cloud_screen(
    table: xr.Dataset,
    background_bt: Any,
    *,
    threshold: float = 3.0,
    window_channel: str = "ir10.8",
) -> np.ndarray:
    """Rows of cloudy-looking pixels: the window channel's ``O − H(x_b) < −threshold``.

    A pixel (time, position and zenith angle: one satellite's view) is flagged for all its
    channels. Pixels without a window-channel row are flagged too (they cannot be
    screened); radiances without any are refused (:class:`ImagerError`), as nothing of
    them could pass. The truth's ``cloudy`` flag is not read.

    Examples
    --------
    >>> from xfuxi.observations.sets import make_observations
    >>> t = make_observations([280.0, 240.0, 260.0, 250.0], error=1.0, time="2000-01-01",
    ...                       latitude=0.0, longitude=[0, 0, 90, 90],
    ...                       variable="brightness_temperature")
    >>> t = t.assign_coords(sensor_channel=("obs", ["ir10.8", "wv6.9"] * 2))
    >>> cloud_screen(t, [281.0, 241.0, 268.0, 250.0]).tolist()
    [False, False, True, True]
    """
    if window_channel not in CHANNELS:
        raise ImagerError(f"unknown window channel {window_channel!r}; known: {list(CHANNELS)}")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive (K); got {threshold}")
    bt = np.asarray(background_bt, dtype="float64")
    if bt.shape != (table.sizes["obs"],):
        raise ValueError(f"background_bt must have one value per row ({table.sizes['obs']})")
    names = table["sensor_channel"].values.astype(str)
    # a pixel as one satellite sees it (its zenith angle): two satellites' rows at one grid
    # point were one pixel, screened by whichever came first
    keys = [table["time"].values, table["latitude"].values, table["longitude"].values]
    if "zenith_angle" in table.coords:  # radiance_table's rows carry it
        keys.append(table["zenith_angle"].values)
    pixel = pd.MultiIndex.from_arrays(keys)
    win = names == window_channel
    if names.size and not win.any():  # every pixel flagged: nothing would ever be assimilated
        raise ImagerError(
            f"the radiances have no {window_channel!r} rows to screen clouds with (channels "
            f"{sorted(set(names.tolist()))}): add that channel to the imager, name another "
            "window_channel, or assimilate unscreened (screen_threshold=None)"
        )
    cold = pd.Series(table["value"].values[win] - bt[win] < -threshold, index=pixel[win])
    cold = cold[~cold.index.duplicated()]
    flag = cold.reindex(pixel)
    return flag.fillna(True).to_numpy(dtype=bool)


class PixelRadianceOperator(RadianceOperator):
    """:class:`~xfuxi.observations.imager.RadianceOperator` computing each pixel once.

    The same values to rounding (6e-14 K at most on the world's radiances: the channels of
    one pixel are computed in one batch), but the column of a pixel is computed once for
    all its channels (rows of one pixel share it), not once per row: with 8 channels, about
    8 times less work in En4DVar's background check and minimisation, and in
    :func:`background_radiances` (cloud screening, VarBC's set-up).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # a pixel is a grid point seen at one zenith angle: rows of two satellites at one
        # point were given the first row's zenith (15 K off)
        key = np.stack(
            [self.lat_index.numpy(), self.lon_index.numpy(), self.zenith.double().numpy()], 1
        )
        uniq, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        self.pixel_lat = self.lat_index[torch.as_tensor(first)]
        self.pixel_lon = self.lon_index[torch.as_tensor(first)]
        self.pixel_zenith = self.zenith[torch.as_tensor(first)]
        self.pixel_of_row = torch.as_tensor(inverse.reshape(-1))

    @classmethod
    def of(cls, op: RadianceOperator) -> PixelRadianceOperator:
        """The pixel-wise twin of ``op`` (the same rows)."""
        return cls(
            op.model_channels, op.grid_shape, sensor_channel=op.sensor_channel,
            lat_index=op.lat_index.numpy(), lon_index=op.lon_index.numpy(),
            zenith=op.zenith.numpy(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-3:]) != (len(self.model_channels), *self.grid_shape):
            return super().forward(x)  # raises the shape error
        pl, po = self.pixel_lat, self.pixel_lon
        columns = [x[..., i, :, :][..., pl, po].unsqueeze(-1) for i in (self.t_index, self.q_index)]
        ps = x[..., self.ps_index, :, :][..., pl, po].unsqueeze(-1)
        zen = self.pixel_zenith.to(x.dtype).unsqueeze(-1)
        bt = brightness_temperature(*columns, ps, zen, levels=self.levels, channels=self.names)
        return bt[..., 0][..., self.channel_index, self.pixel_of_row]  # (..., m)

    def subset(self, keep: Any) -> PixelRadianceOperator:
        return PixelRadianceOperator.of(super().subset(keep))


class RadianceAnalysis(NamedTuple):
    """Result of :func:`radiance_analysis`."""

    analysis: xr.Dataset  # at t0
    increment: xr.Dataset
    diagnostics: dict[str, Any]


def radiance_analysis(
    background: xr.Dataset,
    table: xr.Dataset | None,
    *,
    model: Any = "fuxi-hs-t21",
    conventional: xr.Dataset | None = None,
    bias: RadianceBiasCorrection | None = None,
    varbc: RadianceBiasCorrection | Literal[True] | None = None,
    varbc_std: float | Sequence[float] = VARBC_PRIOR_STD,
    screen_threshold: float | None = 3.0,
    cloudy_error: float | None = None,
    window_channel: str = "ir10.8",
    background_error: BackgroundError | None = None,
    localization: Any = DEFAULT_LOCALIZATION,
    minimiser: Minimiser | None = None,
    quality_control: QualityControl | None = None,
    spread: Any = None,
) -> RadianceAnalysis:
    """One En4DVar analysis at t0 with imager radiances (and conventional observations).

    The setting is that of :func:`~xfuxi.assimilation.en4dvar.assimilate_4dvar` with its
    defaults (Perlin members rescaled to the model's background-error std, Gaspari–Cohn
    localization of 1500 km, vertical localization when the conventional observations
    span several levels, background check with k = 5); every observation is at t0 (one
    slot, no model step inside the cost).

    Parameters
    ----------
    background : xarray.Dataset
        At t0 − 12 h, t0 − 6 h and t0 (t0 the latest).
    table : xarray.Dataset or None
        Radiance rows at t0 (:func:`~xfuxi.observations.imager.radiance_table`; its
        ``error`` is the clear-sky error); None: conventional observations only.
    model : ForecastModel or str, default "fuxi-hs-t21"
        The forecast model (or a shipped name or checkpoint) that runs the members and
        whose background-error statistics rescale them.
    conventional : xarray.Dataset, optional
        Observations in the layout of :mod:`xfuxi.observations.sets` at t0.
    bias : RadianceBiasCorrection, optional
        Offline bias correction: subtracted from the radiances (predicted with the
        background's ``H(x_b)``). Not with ``varbc`` (refused: give one or the other).
    varbc : RadianceBiasCorrection or True, optional
        Variational bias correction: the coefficients of the bias model (the predictors of
        :func:`bias_predictors`, with the background's ``H(x_b)``) are estimated in the
        minimisation with the state, one set per channel of ``table``. The prior ``β_b``
        is the given correction's coefficients (e.g. an offline fit, or the previous
        cycle's ``diagnostics["varbc"]``: that is how VarBC cycles; a channel of ``table``
        without coefficients raises :class:`ImagerError`), or zeros with True. The
        background check tests the prior-corrected departures ``y − H(x_b) − P β_b``;
        the cloud screening reads the uncorrected window-channel departure, as without
        bias correction. Unused without ``table``.
    varbc_std : float or 3 floats, default :data:`VARBC_PRIOR_STD`
        VarBC prior std ``σ_β`` of the coefficients of :data:`PREDICTORS` (K per unit of
        each predictor; one number for all three), > 0. Larger: the coefficients follow
        this analysis' departures more; smaller: they stay nearer the prior.
    screen_threshold : float or None, default 3.0
        Clear-sky: rows of cloudy-looking pixels (:func:`cloud_screen`) are dropped. None:
        no screening.
    cloudy_error : float, optional
        All-sky: cloudy-looking rows are kept with this observation error (K); give
        ``screen_threshold`` to find them. Default: they are dropped.
    window_channel : str, default "ir10.8"
        The imager channel whose departure the cloud screening reads.
    background_error, localization, minimiser, quality_control : optional
        As for :func:`~xfuxi.assimilation.en4dvar.assimilate_4dvar` (the Perlin members,
        the localization — default :data:`~xfuxi.assimilation.en4dvar.DEFAULT_LOCALIZATION`
        —, the L-BFGS settings and the background check).
    spread : xarray.Dataset or array, optional
        Background-error std per channel (and latitude) the members are rescaled to, as
        for ``assimilate_4dvar``; default: the one the model carries.

    Returns
    -------
    RadianceAnalysis
        ``analysis`` and ``increment`` at t0; ``diagnostics``: counts (radiances given,
        cloudy-looking, used after the background check; conventional used), RMS O−B and
        O−A of the radiances used by channel (``rms_omb``, ``rms_oma``; with ``bias``,
        of the corrected values; with ``varbc``, O−B corrected with the prior ``β_b`` and
        O−A with the analysed ``β_a``), iterations, timings. With ``varbc``:
        ``diagnostics["varbc"]``, the analysed coefficients as a
        :class:`RadianceBiasCorrection` (the channels of ``table``, ``n_rows`` the rows
        used; a channel of the prior absent from ``table`` is carried over unchanged),
        and ``diagnostics["varbc_prior"]``, the prior used.

    Raises
    ------
    ValueError
        ``bias`` and ``varbc`` together; a ``varbc_std`` not positive; nothing to
        assimilate.
    ImagerError
        Every radiance screened out; a channel without prior coefficients in ``varbc``.
    """
    tic = _time.perf_counter()
    if bias is not None and varbc is not None and varbc is not False:
        raise ValueError(
            "give bias= (an offline correction subtracted from the radiances) or varbc= "
            "(coefficients estimated in the minimisation, from a prior), not both; to start "
            "VarBC from an offline fit, pass it as varbc="
        )
    prior_std = _varbc_std(varbc_std)
    if varbc is not None and varbc is not False and varbc is not True:
        if not isinstance(varbc, RadianceBiasCorrection):
            raise TypeError(
                f"varbc must be a RadianceBiasCorrection, True (zero prior) or None; got "
                f"{type(varbc).__name__}"
            )
    if varbc is False:
        varbc = None
    if isinstance(model, str):
        model = load_model(model)
    opts = background_error if background_error is not None else BackgroundError()
    qc = quality_control if quality_control is not None else QualityControl()
    background, t0, bg = background_tensor(background, model)
    slots: list[ObsSlot] = []
    diag: dict[str, Any] = {"n_conventional": 0, "n_radiances": 0}
    loc = localization_options(localization)  # a dict changes the default's fields
    if conventional is not None:
        used, op, _, _ = screen_observations(
            conventional, channels=model.channels, latitude=model.latitude,
            longitude=model.longitude, slot_times=np.array([t0], dtype="M8[ns]"),
        )  # fmt: skip
        conv_slots, _ = observation_slots(used, op, 1)
        slots += conv_slots
        diag["n_conventional"] = int(used.sizes["obs"])
        loc = resolve_vertical_localization(loc, used["level"].values)
    if table is not None:
        rows = _radiance_rows(table, background.sel(time=[t0]), model, bias=bias,
                              varbc=varbc, varbc_std=prior_std,
                              screen_threshold=screen_threshold, cloudy_error=cloudy_error,
                              window_channel=window_channel, diag=diag)  # fmt: skip
        assert rows is not None  # empty="raise"
        slots.append(rows)
    if not slots:
        raise ValueError("nothing to assimilate: give radiances and/or conventional observations")
    pstd = tuple(float(s) for s in np.asarray(model.stats.std))
    if spread is None:
        spread = model_background_error(model)
    generator = torch.Generator().manual_seed(int(opts.seed if opts.seed is not None else 0))
    run_opts = opts.replace(perturbation_std=pstd)
    anomalies = background_anomalies(
        model, bg, background_error=run_opts, generator=generator,
        spread=None if spread is None else spread_values(spread, model.channels,
                                                         model.latitude, name="spread"),
        spread_groups=wind_pairs(model.channels), progress=False,
    )  # fmt: skip
    res = en4dvar_analysis(
        model, bg, slots, anomalies=anomalies, background_error=run_opts,
        localization=build_localization(loc, model), minimiser=minimiser,
        quality_control=qc, generator=generator, progress=False,
    )  # fmt: skip
    analysis = _state_dataset(background.sel(time=t0), res.analysis, model)
    if table is not None:
        k = len(slots) - 1
        names = rows.operator.sensor_channel[~res.qc_rejected[k]]
        diag["n_radiances_used"] = int(names.size)
        diag["rms_omb"] = _rms_by(names, res.omb[k].numpy())
        diag["rms_oma"] = _rms_by(names, res.oma[k].numpy())
        if rows.bias is not None and res.bias_coefficients is not None:
            diag["varbc"] = _varbc_result(
                sorted(set(table["sensor_channel"].values.astype(str).tolist())),
                res.bias_coefficients[k], names, prior=None if varbc is True else varbc,
            )  # fmt: skip
    diag.update(
        iterations=len(res.history.records) - 1,
        n_rejected_background_check=int(sum(int(r.sum()) for r in res.qc_rejected)),
        timings_s={**res.timings, "wall": _time.perf_counter() - tic},
    )
    return RadianceAnalysis(analysis, analysis - background.sel(time=t0), diag)


def _radiance_rows(
    table: xr.Dataset,
    background: xr.Dataset,
    model: Any,
    *,
    bias: RadianceBiasCorrection | None,
    varbc: RadianceBiasCorrection | Literal[True] | None = None,
    varbc_std: np.ndarray | None = None,
    screen_threshold: float | None,
    cloudy_error: float | None,
    window_channel: str,
    diag: dict[str, Any],
    empty: Literal["raise", "none"] = "raise",
) -> ObsSlot | None:
    """The radiance slot: screened or error-inflated rows, bias-corrected values.

    With ``varbc`` the slot carries a :class:`~xfuxi.assimilation.cost.SlotBias` (one group
    per channel of ``table``, sorted by name) and the values are not corrected. Every row
    screened out: :class:`ImagerError`, or None with ``empty="none"`` (a cycle goes on).
    """
    if cloudy_error is not None and screen_threshold is None:
        raise ValueError("cloudy_error needs screen_threshold (to find the cloudy-looking rows)")
    if cloudy_error is not None and not (np.isfinite(cloudy_error) and cloudy_error > 0):
        # it was clamped to 0: a zero error, a non-finite cost and an analysis that did nothing
        raise ValueError(f"cloudy_error must be a finite error > 0 (K); got {cloudy_error!r}")
    hxb = background_radiances(table, background, channels=model.channels)
    value = table["value"].values.astype("float64")
    error = table["error"].values.astype("float64")
    keep = np.ones(value.size, bool)
    diag["n_radiances"] = int(value.size)
    if screen_threshold is not None:
        cloudy = cloud_screen(table, hxb, threshold=screen_threshold, window_channel=window_channel)
        diag["n_cloudy_looking"] = int(cloudy.sum())
        if cloudy_error is None:
            keep = ~cloudy
        else:
            error = np.where(cloudy, float(cloudy_error), error)
    if bias is not None:
        names = table["sensor_channel"].values.astype(str)
        value = value - bias.predict(names, table["zenith_angle"].values, hxb)
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        if empty == "none":
            return None
        raise ImagerError("every radiance was screened out as cloudy-looking")
    slot_bias = None
    if varbc is not None:
        names = table["sensor_channel"].values.astype(str)
        channels = sorted(set(names.tolist()))
        prior = np.zeros((len(channels), len(PREDICTORS)))
        if varbc is not True:
            missing = [c for c in channels if c not in varbc.coefficients]
            if missing:
                raise ImagerError(
                    f"varbc: no prior bias coefficients for channel(s) {missing}; give them "
                    "(e.g. from fit_radiance_bias) or varbc=True to start from zeros"
                )
            prior = np.array([varbc.coefficients[c] for c in channels], dtype="float64")
        std = np.broadcast_to(np.asarray(varbc_std, dtype="float64"), prior.shape)
        pred = bias_predictors(table["zenith_angle"].values, hxb)
        group = np.searchsorted(np.array(channels), names)
        slot_bias = SlotBias(
            torch.as_tensor(pred[idx]), torch.as_tensor(group[idx]),
            prior=torch.as_tensor(prior), prior_std=torch.as_tensor(std.copy()),
        )  # fmt: skip
        diag["varbc_prior"] = RadianceBiasCorrection(
            {c: tuple(map(float, b)) for c, b in zip(channels, prior)},
            n_rows={c: 0 if varbc is True else int(varbc.n_rows.get(c, 0)) for c in channels},
        )
    op = radiance_operator(
        table.isel(obs=idx), channels=model.channels, latitude=model.latitude,
        longitude=model.longitude,
    )  # fmt: skip
    return ObsSlot(
        0, PixelRadianceOperator.of(op), torch.as_tensor(value[idx]), torch.as_tensor(error[idx]),
        slot_bias,
    )  # fmt: skip


def _varbc_std(std: Any) -> np.ndarray:
    """VarBC's prior std per predictor (3,), checked."""
    a = np.asarray(std, dtype="float64")
    if a.ndim == 0:
        a = np.full(len(PREDICTORS), float(a))
    if a.shape != (len(PREDICTORS),):
        raise ValueError(
            f"varbc_std must be one number or {len(PREDICTORS)} (one per predictor "
            f"{PREDICTORS}); got shape {a.shape}"
        )
    if not (np.isfinite(a).all() and (a > 0).all()):
        raise ValueError(f"varbc_std must be positive and finite (K); got {a.tolist()}")
    return a


def _varbc_result(
    channels: Sequence[str],
    beta: torch.Tensor,
    used_names: np.ndarray,
    *,
    prior: RadianceBiasCorrection | None,
) -> RadianceBiasCorrection:
    """The analysed coefficients as a :class:`RadianceBiasCorrection` (prior's others kept)."""
    b = beta.detach().cpu().numpy()
    coef = {} if prior is None else dict(prior.coefficients)
    rows = {} if prior is None else dict(prior.n_rows)
    for c, bc in zip(channels, b):
        coef[c] = (float(bc[0]), float(bc[1]), float(bc[2]))
        rows[c] = int((used_names == c).sum())
    return RadianceBiasCorrection(coef, rows)


def _rms_by(names: np.ndarray, d: np.ndarray) -> dict[str, float]:
    return {c: float(np.sqrt(np.mean(d[names == c] ** 2))) for c in sorted(set(names.tolist()))}


def _state_dataset(like: xr.Dataset, x: torch.Tensor, model: Any) -> xr.Dataset:
    """The state tensor ``(C, H, W)`` in the layout of ``like`` (one time)."""
    out = like.copy(deep=True)
    arr = x.detach().cpu().numpy()
    for k, (v, lv) in enumerate(model.channels):
        sel = {"level": lv} if lv is not None else {}
        out[v].loc[sel] = arr[k]
    return out
