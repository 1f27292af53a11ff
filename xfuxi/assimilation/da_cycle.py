"""FuXi-DA in the cycling driver: the imager as an observation network, FuXi-DA as a method.

:class:`ImagerNetwork` draws each cycle's radiances from the truth with
:func:`~xfuxi.observations.imager.imager_observations` (the seed derived from the cycle, so
a resumed run draws the same radiances); :class:`FuXiDAMethod` analyses them into the
forecast model's 6-hour background with :func:`~xfuxi.assimilation.da.assimilate_da`
(FuXi-DA, or its CORR variant which ignores them) and hands the driver the radiance O−B and
O−A of every cycle. Both plug into :func:`~xfuxi.assimilation.cycle.cycle`; see the
documentation (docs/fuxi_da.md).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..docstrings import docstring_parts
from ..models.fuxi_da import FuXiDA
from ..models.precision import check_precision
from ..observations.imager import CHANNELS, ImagerErrors, imager_observations
from .config import _fields_html
from .cycle import CycleAnalysis, CycleMethod, _dataset, _stack
from .da import assimilate_da, check_frames, resolve_da_model

__all__ = ["FuXiDAMethod", "ImagerNetwork"]

#: docstring parts: a tiny world whose columns change in time, a persistence forecast
#: model and an untrained FuXi-DA network on its grid
_doc = docstring_parts(
    {
        "example_tiny_world": """\
>>> import numpy as np, pandas as pd, torch, xarray as xr
>>> import xfuxi
>>> from xfuxi.models.base import NormStats
>>> from xfuxi.models.fuxi_da import FuXiDA, FuXiDANet
>>> lat, lon, levels = [-45.0, -15.0, 15.0, 45.0], np.arange(8) * 45.0, [250.0, 500.0, 850.0]
>>> rng = np.random.default_rng(0)
>>> dims, shape = ("time", "level", "latitude", "longitude"), (12, 3, 4, 8)
>>> profile = lambda values: np.array(values)[None, :, None, None]
>>> truth = xr.Dataset(
...     {"temperature": (dims, profile([220.0, 250.0, 280.0]) + rng.normal(0, 1, shape)),
...      "passive_tracer": (dims, profile([0.05, 0.2, 0.5]) * (1 + 0.1 * rng.random(shape))),
...      "surface_pressure": (("time", "latitude", "longitude"), np.full((12, 4, 8), 1e5))},
...     coords={"time": pd.date_range("2000-01-01", periods=12, freq="6h"), "level": levels,
...             "latitude": lat, "longitude": lon})
>>> channels = [(v, lv) for v in ("temperature", "passive_tracer") for lv in levels]
>>> channels.append(("surface_pressure", None))
>>> n, stats = len(channels), NormStats(np.full(7, 100.0), np.full(7, 50.0), np.full(7, 2.0))
>>> Last = type("Last", (torch.nn.Module,), {"forward": lambda self, x: x[:, 1]})
>>> mean = np.array([220.0, 250.0, 280.0, 0.05, 0.2, 0.5, 1e5])  # the forecast model's
>>> std = np.array([1.0] * 3 + [0.02] * 3 + [50.0])  # statistics, in physical units
>>> model = xfuxi.wrap_model(Last(), channels=channels, latitude=lat, longitude=lon,
...                          stats=NormStats(mean, std, std))
>>> sensors = ["wv6.2", "ir10.8"]
>>> da_model = FuXiDA(FuXiDANet(n, 2 * len(sensors) + 5 + 3, width=4, scales=2),
...                   channels=channels, latitude=lat, longitude=lon, stats=stats,
...                   sensor_channels=sensors, frames=[0.0], satellites=[105.0])""",
    }
)


@_doc
@dataclass(frozen=True)
class ImagerNetwork:
    """The synthetic geostationary imager as the observation network of a cycling run.

    Each cycle draws the radiances at the cycle's analysis time from the truth with
    :func:`~xfuxi.observations.imager.imager_observations`, seeded with ``seed + cycle``
    (a resumed run draws the same radiances). The truth must cover the frames around each
    analysis time (the driver's last cycle needs the truth one step beyond it when a frame
    is after the analysis time).

    Parameters
    ----------
    satellites : sequence of float, default (105.0,)
        Sub-satellite longitudes (degrees east).
    channels : sequence of str
        Imager channels (default all eight).
    frames : sequence of float, default (-2, 0, 2)
        Frame offsets (hours) around the analysis time.
    errors : ImagerErrors, optional
        Clouds, biases, noise, spectroscopy error and drift of the truth's radiances; the
        drift grows from the first time of the truth the run is given (each cycle's draw
        counted from its own time never drifted).
    seed : int, default 0
        Cycle ``c`` draws its radiances' clouds and noise with ``seed + c``, so networks
        whose seeds differ by ``k`` draw the same ``k`` cycles apart: give independent runs
        seeds further apart than their number of cycles.

    Examples
    --------
    {{example_tiny_world}}
    >>> network = ImagerNetwork(channels=sensors, frames=[0.0], seed=3)
    >>> radiances = network(truth, [truth.time.values[4]], cycle=2, model=model)
    >>> radiances["brightness_temperature"].dims
    ('time', 'frame', 'sensor_channel', 'latitude', 'longitude')
    >>> again = network(truth, [truth.time.values[4]], cycle=2, model=model)
    >>> bool(again.identical(radiances))  # the seed comes from the cycle
    True
    """

    satellites: tuple[float, ...] = (105.0,)
    channels: tuple[str, ...] = tuple(CHANNELS)
    frames: tuple[float, ...] = (-2.0, 0.0, 2.0)
    errors: ImagerErrors = field(default_factory=ImagerErrors)
    seed: int = 0

    def _repr_html_(self) -> str:
        """Jupyter's view: the fields as a table, those changed from their defaults in bold."""
        return _fields_html(self)

    def __post_init__(self) -> None:
        for name in ("satellites", "frames"):
            object.__setattr__(self, name, tuple(float(x) for x in getattr(self, name)))
        object.__setattr__(self, "channels", tuple(str(c) for c in self.channels))
        if not self.satellites:
            raise ValueError("an ImagerNetwork needs at least one satellite longitude")
        if isinstance(self.errors, dict):
            object.__setattr__(self, "errors", ImagerErrors(**self.errors))
        if not isinstance(self.errors, ImagerErrors):
            raise TypeError(f"errors must be ImagerErrors; got {type(self.errors).__name__}")

    def settings(self) -> dict[str, Any]:
        """JSON-ready settings (a resumed run with other settings is refused)."""
        return {
            "network": "imager",
            "satellites": list(self.satellites),
            "channels": list(self.channels),
            "frames": list(self.frames),
            "errors": self.errors.to_dict(),
            "seed": int(self.seed),
            # a store of a drifting imager from before the drift had an origin (it never
            # drifted) is not resumed with drifting radiances
            **({"drift_origin": "first time of the truth"} if self.errors.drift else {}),
        }

    def __call__(self, truth: xr.Dataset, times: Any, *, cycle: int, model: Any) -> xr.Dataset:
        t = pd.Timestamp(np.atleast_1d(np.asarray(times, dtype="M8[ns]"))[0])
        step = pd.Timedelta(getattr(model, "timestep", "6h"))
        reach = max(step, pd.Timedelta(hours=max(abs(f) for f in self.frames)))
        near = truth.sel(time=slice(t - reach, t + reach))
        return imager_observations(
            near,
            satellites=self.satellites,
            channels=self.channels,
            frames=self.frames,
            times=[t],
            errors=self.errors,
            seed=int(self.seed) + int(cycle),
            drift_origin=truth["time"].values.min(),
        )


@_doc
class FuXiDAMethod(CycleMethod):
    """FuXi-DA (or CORR) as a cycling method: 6-hour background + radiances → analysis.

    Each cycle the background is the forecast model's 6-hour forecast from the previous
    analysis pair; :func:`~xfuxi.assimilation.da.assimilate_da` returns the analysis, and
    its radiance diagnostics (nominal operator, analysis-time frame) are written with the
    cycle's scores as ``radiance_mean_omb``, ``radiance_rms_omb``, ``radiance_mean_oma``,
    ``radiance_rms_oma`` and ``radiance_count`` (dims ``sensor_channel``, ``group``). Use
    with :class:`ImagerNetwork`. The method draws nothing at random.

    Parameters
    ----------
    model : FuXiDA, str or path, optional
        The network, a shipped name (default ``"fuxi-da-hs-t21"``; CORR:
        ``"fuxi-da-hs-t21-corr"``) or a checkpoint directory. Its channels must be the
        forecast model's.
    allow_missing_channels, allow_new_satellites : bool, default False
        As for :func:`~xfuxi.assimilation.da.assimilate_da` (``allow_new_satellites=True``
        to use satellites other than those of its training).
    precision : {"float32", "bfloat16"}, default "float32"
        As for :func:`~xfuxi.assimilation.da.assimilate_da`; recorded with the run's
        settings (a resumed run must use the same).

    Notes
    -----
    The store records the network's name and a digest of its weights: a resumed run with
    another network, of the same name or not, is refused. A cycle whose radiances are all
    missing (an outage) keeps its background with a warning, flagged in ``no_observations``
    (CORR, which reads no radiance, analyses it).

    Examples
    --------
    Three cycles on a tiny world with a persistence forecast model and an untrained network
    (its head starts at zero: the analysis is the background):

    {{example_tiny_world}}
    >>> run = xfuxi.cycle(truth, ImagerNetwork(channels=sensors, frames=[0.0]),
    ...                   method=FuXiDAMethod(da_model), model=model, progress=False,
    ...                   config=xfuxi.CycleConfig(n_cycles=3, lead_steps=2))
    >>> s = run.scores
    >>> s.sizes["time"], bool((s.analysis_error == s.background_error).all())
    (3, True)
    >>> s["radiance_rms_omb"].dims
    ('time', 'sensor_channel', 'group')
    """

    n_slots = 1

    def __init__(
        self,
        model: FuXiDA | str | os.PathLike[str] | None = None,
        *,
        allow_missing_channels: bool = False,
        allow_new_satellites: bool = False,
        precision: str = "float32",
    ) -> None:
        check_precision("FuXiDAMethod", precision)
        self.model = resolve_da_model(model)
        self.allow_missing_channels = bool(allow_missing_channels)
        self.allow_new_satellites = bool(allow_new_satellites)
        self.precision = precision
        self.name = "FuXi-DA" if self.model.uses_observations else "FuXi-DA CORR"

    def __repr__(self) -> str:
        return f"FuXiDAMethod({self.model.name!r})"

    def _repr_html_(self) -> str:
        """Jupyter's view: :meth:`__repr__` as the title, then the options (the network by
        its name and size, not its module tree), the options changed from their defaults in
        bold."""
        options = inspect.signature(type(self).__init__).parameters.values()
        defaults = {
            p.name: p.default
            for p in options
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
        }
        return _fields_html(self, title=repr(self), defaults=defaults)

    def settings(self) -> dict[str, Any]:
        out = {
            "method": self.name,
            "model": self.model.name,
            "allow_missing_channels": self.allow_missing_channels,
            "allow_new_satellites": self.allow_new_satellites,
        }
        if self.precision != "float32":  # absent for float32: older stores still resume
            out["precision"] = self.precision
        return out

    def fingerprints(self) -> dict[str, str]:
        """The network's weights (and buffers): another network under the same name is
        refused on resume."""
        from ..models.checkpoint import tensor_digest

        return {**super().fingerprints(), "da_model": tensor_digest(self.model, buffers=True)}

    def observe(
        self, network: Any, truth: xr.Dataset, times: Sequence[Any], *, cycle: int, model: Any
    ) -> tuple[list[Any], int, dict[str, int]]:
        """The radiances of the cycle (one Dataset; CORR gets them for its diagnostics).

        An outage (every radiance missing) gives no slot for a network that uses them: the
        driver then warns and keeps the background (CORR, which reads none, analyses)."""
        if list(self.model.channels) != list(model.channels):
            raise ValueError(
                f"the FuXi-DA model {self.model.name!r} has channels {list(self.model.channels)}"
                f"; the forecast model {getattr(model, 'name', '')!r} has "
                f"{list(model.channels)}: they must be the same"
            )
        frames = getattr(network, "frames", None)  # an ImagerNetwork's; checked before drawing
        if frames is not None:
            check_frames(
                self.model,
                frames,
                "the network draws frames",
                f": give it ImagerNetwork(frames={list(self.model.frames)})",
            )
        radiances = network(truth, times, cycle=cycle, model=model)
        bt = np.asarray(radiances["brightness_temperature"].values)
        if self.model.uses_observations and bt.size and bool(np.isnan(bt).all()):
            return [], 0, {"radiance pixels missing (NaN)": int(bt.size)}
        return [radiances], int(np.isfinite(bt).sum()), {}

    def analyse(self, state, slots, *, model, generator):
        (radiances,) = slots
        t = radiances["time"].values[:1]
        bg = state["background"]
        background = _dataset(bg[2:], model, t, like=radiances)
        res = assimilate_da(
            background,
            radiances if self.model.uses_observations else None,
            model=self.model,
            allow_missing_channels=self.allow_missing_channels,
            allow_new_satellites=self.allow_new_satellites,
            precision=self.precision,
        )
        analysis = _stack(res.analysis, model, t)[0]
        extra = None
        n_obs = 0
        if "rms_omb" in res.diagnostics:
            d = res.diagnostics.isel(time=0).drop_vars(["time", "analysis_seconds"])
            extra = d.rename({v: f"radiance_{v}" for v in d.data_vars})
            extra.attrs = {}
            n_obs = int(d["count"].sel(group="all").sum())
        return CycleAnalysis(
            analysis=analysis,
            state={"pair": torch.stack([bg[1], analysis])},
            diagnostics={"analysis_seconds": float(res.diagnostics["analysis_seconds"])},
            extra=extra,
            n_obs=n_obs,
        )
