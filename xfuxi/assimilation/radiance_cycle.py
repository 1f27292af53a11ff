"""En4DVar with imager radiances in the cycling driver: clear-sky, offline bias correction or
VarBC cycled from one analysis to the next.

:class:`RadianceEn4DVarMethod` analyses, each cycle, the radiances of an
:class:`~xfuxi.assimilation.da_cycle.ImagerNetwork` at the analysis time (and the radiosondes
of an :class:`ImagerSondeNetwork`, when given one) with FuXi-En4DVar from the cycle's
6-hour background, as :func:`~xfuxi.assimilation.radiances.radiance_analysis` does for one
analysis: Perlin members, one slot at t0, the nominal operator, cloud screening on the
window channel's departure from the background, and the radiances' bias corrected either by
a given offline fit or by VarBC. With VarBC the analysed coefficients are the method's
state (``state["varbc"]``, saved with each cycle) and the next cycle's prior, so that the
coefficients follow a bias that drifts. See the documentation (docs/fuxi_da.md, Cycling in
the driver).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..observations.imager import CHANNELS, ImagerError, radiance_table
from .config import LocalizationOptions, _fields_html
from .cycle import (
    CycleAnalysis,
    CycleMethod,
    En4DVarMethod,
    RadiosondeNetwork,
    _dataset,
    _used_errors,
)
from .da_cycle import ImagerNetwork, _doc
from .en4dvar import DEFAULT_LOCALIZATION
from .radiances import (
    PREDICTORS,
    VARBC_PRIOR_STD,
    RadianceBiasCorrection,
    _radiance_rows,
    _varbc_result,
    _varbc_std,
)

__all__ = ["ImagerSondeNetwork", "RadianceEn4DVarMethod"]

#: the imager's channels, in the order of the rows of ``state["varbc"]``
_CHANNELS: tuple[str, ...] = tuple(CHANNELS)


@_doc
@dataclass(frozen=True)
class ImagerSondeNetwork:
    """The imager's radiances and radiosondes together, the network of a cycling run.

    Each cycle draws both at the analysis time (the imager seeded with its ``seed + cycle``,
    the radiosondes with theirs): ``{"radiances": ..., "conventional": ...}``. For
    :class:`RadianceEn4DVarMethod`.

    Parameters
    ----------
    imager : ImagerNetwork
    radiosondes : RadiosondeNetwork, optional
        None: radiances only (the same as giving the ``ImagerNetwork`` itself).

    Examples
    --------
    {{example_tiny_world}}
    >>> from xfuxi.assimilation.cycle import RadiosondeNetwork
    >>> network = ImagerSondeNetwork(ImagerNetwork(channels=sensors, frames=[0.0]),
    ...                              RadiosondeNetwork(n_sites=3))
    >>> obs = network(truth, [truth.time.values[4]], cycle=0, model=model)
    >>> obs["radiances"]["brightness_temperature"].dims
    ('time', 'frame', 'sensor_channel', 'latitude', 'longitude')
    >>> obs["conventional"].sizes["obs"]  # 3 sites x 7 channels
    21
    """

    imager: ImagerNetwork = field(default_factory=ImagerNetwork)
    radiosondes: RadiosondeNetwork | None = None

    def _repr_html_(self) -> str:
        """Jupyter's view: the fields as a table (each network by its changed fields)."""
        return _fields_html(self)

    def __post_init__(self) -> None:
        if not isinstance(self.imager, ImagerNetwork):
            raise TypeError(f"imager must be an ImagerNetwork; got {type(self.imager).__name__}")
        if self.radiosondes is not None and not isinstance(self.radiosondes, RadiosondeNetwork):
            raise TypeError(
                f"radiosondes must be a RadiosondeNetwork or None; got "
                f"{type(self.radiosondes).__name__}"
            )

    def settings(self) -> dict[str, Any]:
        """JSON-ready settings (a resumed run with other settings is refused)."""
        return {
            "network": "imager+radiosonde",
            "imager": self.imager.settings(),
            "radiosondes": None if self.radiosondes is None else self.radiosondes.settings(),
        }

    def __call__(
        self, truth: xr.Dataset, times: Any, *, cycle: int, model: Any
    ) -> dict[str, xr.Dataset | None]:
        conventional = None
        if self.radiosondes is not None:
            conventional = self.radiosondes(truth, times, cycle=cycle, model=model)
        return {
            "radiances": self.imager(truth, times, cycle=cycle, model=model),
            "conventional": conventional,
        }


@dataclass
class RadianceEn4DVarMethod(En4DVarMethod):
    """FuXi-En4DVar with imager radiances (and radiosondes) as a cycling method.

    Each cycle (one slot at t0; fresh Perlin members as :class:`En4DVarMethod` with
    ``members="perlin"``, or a cycled ensemble with ``members="cycled"``; the options of
    the En4DVar part are its own) the radiances of the
    analysis-time frame enter as rows of
    :func:`~xfuxi.observations.imager.radiance_table` (error ``radiance_error``), screened
    and bias-corrected as by :func:`~xfuxi.assimilation.radiances.radiance_analysis`,
    with the radiosondes (an :class:`ImagerSondeNetwork`) screened as by the other
    methods. Use with an :class:`~xfuxi.assimilation.da_cycle.ImagerNetwork` or an
    :class:`ImagerSondeNetwork`.

    Per cycle, written with the scores: ``radiance_rms_omb``, ``radiance_rms_oma``,
    ``radiance_mean_omb`` (K; of the radiances used, by ``sensor_channel``; with ``bias``,
    of the corrected values, with VarBC, O−B corrected by the prior coefficients and O−A
    by the analysed ones), ``radiance_count`` (rows used), ``radiance_given``,
    ``radiance_cloudy_looking``; with VarBC ``varbc_prior`` and ``varbc_coefficients``
    (dims ``sensor_channel``, ``predictor``) and ``varbc_rms`` (RMS of the analysed
    coefficients, K per unit of the predictors). A cycle whose radiances are all missing
    (an outage) or all screened out, and that has no radiosonde, keeps its background
    (``n_obs`` 0) with a warning, flagged in ``no_observations`` (with VarBC the
    coefficients are carried over it unchanged); with radiosondes it analyses them.

    Parameters
    ----------
    background_error : BackgroundError, optional
        As for :class:`En4DVarMethod` (default ``BackgroundError()``).
    localization : LocalizationOptions
        Default: 1500 km, as :func:`~xfuxi.assimilation.radiances.radiance_analysis`
        (without vertical localization unless given).
    n_slots : int, default 1
        Observation slots; must be 1 (one slot at t0, where the radiances are): any other
        value raises ``ValueError``.
    minimiser, quality_control, members, letkf, letkf_localization, initial, static, spread
        As for :class:`En4DVarMethod`. With ``members="cycled"`` the members are carried
        from cycle to cycle and updated by the LETKF (localized by ``letkf_localization``,
        default ``localization``) with the same screened radiances (with VarBC, corrected
        by the coefficients the variational analysis estimated: the LETKF has no bias
        model) and radiosondes, then recentred on the En4DVar analysis; the scores get
        their spread.
    additive, additive_scale
        As for :class:`En4DVarMethod`: additive inflation of the cycled members after
        their update (``members="cycled"`` only).
    name : str, default ``"En4DVar radiances"``
        Name written in the store and the tables.
    static_inflation, adaptive_static, increment_previous
        As for :class:`En4DVarMethod` (defaults 1.0, 0.0 and False).
    radiance_error : float or mapping channel → float, default 1.0
        Clear-sky observation-error std of the radiances (K).
    bias : RadianceBiasCorrection, optional
        Offline bias correction subtracted from the radiances every cycle (not with VarBC).
    varbc : bool or RadianceBiasCorrection, default False
        VarBC: the coefficients are estimated with the state each cycle, from a prior that
        is the previous cycle's analysed coefficients (``state["varbc"]``). The first
        cycle's prior: zeros (True) or the given correction (e.g. an offline fit; a
        network channel without coefficients in it raises
        :class:`~xfuxi.observations.imager.ImagerError`).
    varbc_std : float or 3 floats, default :data:`~xfuxi.assimilation.radiances.VARBC_PRIOR_STD`
        The prior std of the coefficients, every cycle.
    screen_threshold : float or None, default 3.0
        Clear-sky: the cloudy-looking pixels (window-channel O−B below −threshold) are
        dropped; None: no screening.
    cloudy_error : float, optional
        All-sky: cloudy-looking rows kept with this error (K) instead.
    window_channel : str, default ``"ir10.8"``
        The imager channel whose O−B against the background finds the cloudy-looking
        pixels (``screen_threshold``).

    Examples
    --------
    Three cycles with VarBC from zeros on a tiny world (a persistence model); the
    coefficients analysed in one cycle are the next cycle's prior:

    >>> import numpy as np, pandas as pd, torch, xarray as xr
    >>> import xfuxi
    >>> from xfuxi.assimilation.config import BackgroundError, LocalizationOptions
    >>> from xfuxi.models.base import NormStats
    >>> lat, lon, levels = [-45.0, -15.0, 15.0, 45.0], np.arange(8) * 45.0, [250.0, 500.0, 850.0]
    >>> rng = np.random.default_rng(0)
    >>> dims, shape = ("time", "level", "latitude", "longitude"), (8, 3, 4, 8)
    >>> profile = lambda values: np.array(values)[None, :, None, None]
    >>> truth = xr.Dataset(
    ...     {"temperature": (dims, profile([220.0, 250.0, 280.0]) + rng.normal(0, 1, shape)),
    ...      "passive_tracer": (dims, profile([0.05, 0.2, 0.5]) * (1 + 0.1 * rng.random(shape))),
    ...      "surface_pressure": (("time", "latitude", "longitude"), np.full((8, 4, 8), 1e5))},
    ...     coords={"time": pd.date_range("2000-01-01", periods=8, freq="6h"), "level": levels,
    ...             "latitude": lat, "longitude": lon})
    >>> channels = [(v, lv) for v in ("temperature", "passive_tracer") for lv in levels]
    >>> channels.append(("surface_pressure", None))
    >>> mean = np.array([220.0, 250.0, 280.0, 0.05, 0.2, 0.5, 1e5])
    >>> std = np.array([1.0] * 3 + [0.02] * 3 + [50.0])
    >>> Last = type("Last", (torch.nn.Module,), {"forward": lambda self, x: x[:, 1]})
    >>> model = xfuxi.wrap_model(Last(), channels=channels, latitude=lat, longitude=lon,
    ...                          stats=NormStats(mean, std, std))
    >>> method = RadianceEn4DVarMethod(
    ...     background_error=BackgroundError(n_members=8, amplitude=0.5),
    ...     localization=LocalizationOptions(length_scale=None), varbc=True)
    >>> network = ImagerNetwork(satellites=(90.0,), channels=("wv6.2", "ir10.8"),
    ...                         frames=(0.0,), seed=1)
    >>> run = xfuxi.cycle(truth, network, method=method, model=model, progress=False,
    ...                   config=xfuxi.CycleConfig(n_cycles=3, lead_steps=2))
    >>> s = run.scores
    >>> s["varbc_coefficients"].dims
    ('time', 'sensor_channel', 'predictor')
    >>> bool((s["varbc_prior"][1:].values == s["varbc_coefficients"][:-1].values).all())
    True
    """

    localization: LocalizationOptions = field(default_factory=lambda: DEFAULT_LOCALIZATION)
    n_slots: int = 1
    radiance_error: float | Mapping[str, float] = 1.0
    bias: RadianceBiasCorrection | None = None
    varbc: bool | RadianceBiasCorrection = False
    varbc_std: float | Sequence[float] = VARBC_PRIOR_STD
    screen_threshold: float | None = 3.0
    cloudy_error: float | None = None
    window_channel: str = "ir10.8"
    name: str = "En4DVar radiances"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_slots != 1:
            raise ValueError(
                f"RadianceEn4DVarMethod analyses one slot at t0 (n_slots=1); got {self.n_slots!r}"
            )
        if self.bias is not None and not isinstance(self.bias, RadianceBiasCorrection):
            raise TypeError(
                f"bias must be a RadianceBiasCorrection or None; got {type(self.bias).__name__}"
            )
        if self.varbc is None:
            self.varbc = False
        if not isinstance(self.varbc, (bool, RadianceBiasCorrection)):
            raise TypeError(
                f"varbc must be True, False or a RadianceBiasCorrection (the first prior); got "
                f"{type(self.varbc).__name__}"
            )
        if self.bias is not None and self.varbc is not False:
            raise ValueError(
                "give bias= (an offline correction) or varbc= (coefficients cycled from a "
                "prior), not both; to start VarBC from an offline fit, pass it as varbc="
            )
        self.varbc_std = tuple(float(s) for s in _varbc_std(self.varbc_std))
        if self.screen_threshold is not None and not (
            np.isfinite(self.screen_threshold) and self.screen_threshold > 0
        ):
            raise ValueError(
                f"screen_threshold must be a positive number (K) or None; got "
                f"{self.screen_threshold!r}"
            )
        if self.cloudy_error is not None:
            if self.screen_threshold is None:
                raise ValueError("cloudy_error needs screen_threshold (to find the cloudy rows)")
            if not (np.isfinite(self.cloudy_error) and self.cloudy_error > 0):
                raise ValueError(f"cloudy_error must be positive (K); got {self.cloudy_error!r}")
        if self.window_channel not in CHANNELS:
            raise ValueError(
                f"unknown window_channel {self.window_channel!r}; known: {list(CHANNELS)}"
            )
        errs = (
            list(self.radiance_error.values())
            if isinstance(self.radiance_error, Mapping)
            else [self.radiance_error]
        )
        if not errs or not all(
            not isinstance(e, bool) and np.isfinite(float(e)) and float(e) > 0 for e in errs
        ):
            raise ValueError(
                f"radiance_error must be positive (K), or a mapping channel -> positive; got "
                f"{self.radiance_error!r}"
            )

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        err = self.radiance_error
        varbc: Any = self.varbc
        if isinstance(varbc, RadianceBiasCorrection):
            varbc = {"prior": varbc.to_dict()}
        out["radiances"] = {
            "frames": [0.0],
            "error": {str(k): float(v) for k, v in sorted(err.items())}
            if isinstance(err, Mapping)
            else float(err),
            "bias": None if self.bias is None else self.bias.to_dict(),
            "varbc": varbc,
            "varbc_std": list(self.varbc_std),
            "screen_threshold": self.screen_threshold,
            "cloudy_error": self.cloudy_error,
            "window_channel": self.window_channel,
        }
        return out

    def start(self, background, *, model, generator):
        state = super().start(background, model=model, generator=generator)
        if self.varbc is not False:
            # the coefficients of every imager channel (rows: CHANNELS); NaN: none given
            beta = torch.zeros(len(CHANNELS), len(PREDICTORS), dtype=torch.float64)
            if isinstance(self.varbc, RadianceBiasCorrection):
                beta = _coefficients_tensor(self.varbc, like=torch.full_like(beta, float("nan")))
            state["varbc"] = beta
        return state

    def observe(
        self, network: Any, truth: xr.Dataset, times: Sequence[Any], *, cycle: int, model: Any
    ) -> tuple[list[Any], int, dict[str, int]]:
        """The radiosondes as screened slots, then the radiance rows of the analysis time
        (a table: screened in :meth:`analyse`, against the background).

        An outage (every radiance of the analysis time missing) gives a table of no row
        beside the radiosondes, or, without radiosondes, no slot: the driver then warns and
        keeps the background."""
        if isinstance(network, ImagerNetwork):
            network = ImagerSondeNetwork(network)
        if not isinstance(network, ImagerSondeNetwork):
            raise TypeError(
                f"{self.name} needs an ImagerNetwork or an ImagerSondeNetwork as its network; "
                f"got {type(network).__name__}"
            )
        slots: list[Any] = []
        n_given, counts = 0, {}
        if network.radiosondes is not None:
            slots, n_given, counts = CycleMethod.observe(
                self, network.radiosondes, truth, times, cycle=cycle, model=model
            )
        radiances = network.imager(truth, times, cycle=cycle, model=model)
        missing = _outage(radiances)
        if missing:
            counts = {**counts, "radiance pixels missing (NaN)": missing}
            if not slots:
                return [], n_given, counts
            # no row, but the channels, for the cycle's radiance diagnostics
            names = radiances["sensor_channel"].values.astype(str)
            return [*slots, xr.Dataset(coords={"sensor_channel": names})], n_given, counts
        table = radiance_table(radiances, error=self.radiance_error, frames=(0.0,))
        return [*slots, table], n_given + int(table.sizes["obs"]), counts

    def analyse(self, state, slots, *, model, generator):
        *conventional, table = slots
        if not isinstance(table, xr.Dataset):
            raise TypeError(
                f"{self.name} analyses the slots of its own observe (radiosonde slots, then a "
                "radiance table); use it with an ImagerNetwork or an ImagerSondeNetwork"
            )
        bg = state["background"]
        prior = self._prior(state)
        diag: dict[str, Any] = {}
        rows = None
        if "obs" in table.dims:  # (a table of no row: an outage of the imager)
            t0 = pd.Timestamp(table["time"].values[0])
            grid = xr.Dataset(coords={"latitude": model.latitude, "longitude": model.longitude})
            background = _dataset(bg[2:], model, [t0], like=grid)
            rows = _radiance_rows(
                table, background, model, bias=self.bias, varbc=prior,
                varbc_std=np.asarray(self.varbc_std), screen_threshold=self.screen_threshold,
                cloudy_error=self.cloudy_error, window_channel=self.window_channel, diag=diag,
                empty="none",
            )  # fmt: skip
        used = [*conventional] + ([rows] if rows is not None else [])
        names = _table_channels(table)
        if not used:  # every radiance screened out and no radiosonde: the background
            out = self.no_observations(state)
            out.extra = self._extra(names, diag, None, None, None, state.get("varbc"), state)
            out.rejected = (
                f"all {diag.get('n_radiances', 0)} radiances failed the cloud screen "
                f"(window-channel O-B below -{self.screen_threshold:g} K)"
            )
            return out
        res, cdiag = self._variational(state, used, model, generator)
        pair = self._analysed_pair(bg, res.analysis)
        new: dict[str, torch.Tensor] = {"pair": pair}
        if "static_inflation" in cdiag and self.adaptive_static > 0:
            # carried to the next cycle, as En4DVarMethod does (each cycle started again
            # from the configured factor, so the adaptive one never adapted)
            new["static_inflation"] = torch.tensor(cdiag["static_inflation"], dtype=torch.float64)
        omb = oma = row_names = None
        if rows is not None:
            k = len(used) - 1
            row_names = rows.operator.sensor_channel[~res.qc_rejected[k]]
            omb, oma = res.omb[k].numpy(), res.oma[k].numpy()
        ensemble = list(used)
        if rows is not None and rows.bias is not None and res.bias_coefficients is not None:
            # the LETKF has no bias model: it takes the radiances corrected by the
            # coefficients the variational analysis estimated
            corrected = rows.value - rows.bias.correction(res.bias_coefficients[k])
            ensemble[k] = replace(rows, value=corrected, bias=None)
        spread, bspread = self._update_members(state, ensemble, pair, new, cdiag, model, generator)
        if "varbc" in state:
            beta = state["varbc"]
            if rows is not None and res.bias_coefficients is not None:
                bc = _varbc_result(
                    sorted(set(table["sensor_channel"].values.astype(str).tolist())),
                    res.bias_coefficients[k], row_names, prior=prior,
                )  # fmt: skip
                beta = _coefficients_tensor(bc, like=beta)
            new["varbc"] = beta
        return CycleAnalysis(
            analysis=res.analysis,
            state=new,
            diagnostics=cdiag,
            spread=spread,
            background_spread=bspread,
            omb=torch.cat(res.omb) if res.omb else None,
            oma=torch.cat(res.oma) if res.oma else None,
            error=_used_errors(used, res.qc_rejected),
            extra=self._extra(names, diag, row_names, omb, oma, new.get("varbc"), state),
        )

    def _prior(self, state: dict[str, torch.Tensor]) -> RadianceBiasCorrection | None:
        """VarBC's prior of this cycle: the coefficients the state carries (NaN rows left out)."""
        if "varbc" not in state:
            return None
        beta = state["varbc"].double().numpy()
        coef = {
            c: (float(b[0]), float(b[1]), float(b[2]))
            for c, b in zip(_CHANNELS, beta, strict=True)
            if np.isfinite(b).all()
        }
        return RadianceBiasCorrection(coef, n_rows={c: 0 for c in coef})

    def _extra(
        self,
        names: list[str],
        diag: dict[str, Any],
        row_names: np.ndarray | None,
        omb: np.ndarray | None,
        oma: np.ndarray | None,
        varbc: torch.Tensor | None,
        state: dict[str, torch.Tensor],
    ) -> xr.Dataset:
        """The cycle's radiance diagnostics (and VarBC's coefficients), by channel."""

        def by_channel(d: np.ndarray | None, f: Any) -> np.ndarray:
            if d is None or row_names is None:
                return np.full(len(names), np.nan)
            return np.array([f(d[row_names == c]) if (row_names == c).any() else np.nan
                             for c in names])  # fmt: skip

        def rms(x: np.ndarray) -> float:
            return float(np.sqrt(np.mean(x**2)))

        def mean(x: np.ndarray) -> float:
            return float(np.mean(x))

        count = [0 if row_names is None else int((row_names == c).sum()) for c in names]
        out = xr.Dataset(
            {
                "radiance_rms_omb": ("sensor_channel", by_channel(omb, rms)),
                "radiance_rms_oma": ("sensor_channel", by_channel(oma, rms)),
                "radiance_mean_omb": ("sensor_channel", by_channel(omb, mean)),
                "radiance_count": ("sensor_channel", np.array(count, dtype="int64")),
                "radiance_given": ((), int(diag.get("n_radiances", 0))),
                "radiance_cloudy_looking": ((), int(diag.get("n_cloudy_looking", 0))),
            },
            coords={"sensor_channel": names},
        )
        if "varbc" in state and varbc is not None:
            rows = [_CHANNELS.index(c) for c in names]
            prior = state["varbc"].double().numpy()[rows]
            post = varbc.double().numpy()[rows]
            dims = ("sensor_channel", "predictor")
            out["varbc_prior"] = (dims, prior)
            out["varbc_coefficients"] = (dims, post)
            out["varbc_rms"] = ((), float(np.sqrt(np.nanmean(post**2))))
            out = out.assign_coords(predictor=list(PREDICTORS))
        return out


def _outage(radiances: xr.Dataset) -> int:
    """The number of radiances of the analysis-time frame where every one is missing (NaN),
    else 0 (and 0 where the radiances have no such frame: :func:`radiance_table` names
    that)."""
    if "brightness_temperature" not in radiances:
        return 0
    bt = radiances["brightness_temperature"]
    if "frame" in bt.coords:
        at0 = np.atleast_1d(bt["frame"].values.astype("m8[ns]") == np.timedelta64(0, "ns"))
        if not at0.any():
            return 0
        if "frame" in bt.dims:
            bt = bt.isel(frame=np.flatnonzero(at0))
    values = np.asarray(bt.values)
    return int(values.size) if values.size and bool(np.isnan(values).all()) else 0


def _table_channels(table: xr.Dataset) -> list[str]:
    """The table's channels, in the imager's order."""
    have = set(table["sensor_channel"].values.astype(str).tolist())
    unknown = sorted(have - set(CHANNELS))
    if unknown:
        raise ImagerError(f"unknown imager channel(s) {unknown}")
    return [c for c in _CHANNELS if c in have]


def _coefficients_tensor(bc: RadianceBiasCorrection, *, like: torch.Tensor) -> torch.Tensor:
    """The coefficients as the state's ``(len(CHANNELS), 3)`` tensor (others kept from ``like``)."""
    out = like.clone().double()
    for i, c in enumerate(_CHANNELS):
        if c in bc.coefficients:
            out[i] = torch.as_tensor(bc.coefficients[c], dtype=torch.float64)
    return out
