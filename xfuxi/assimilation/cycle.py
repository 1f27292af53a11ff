"""The cycling driver: analysis → 6-hour forecast → background → next analysis, for any method.

:func:`cycle` runs a twin experiment on a truth run: each cycle, an observation network
draws the observations of the window from the truth, a *method* analyses them into its
background, and the method's state (background pair, members, inflation) is run one model
step forward to the next cycle. Every method has the same interface (:class:`CycleMethod`):

* :class:`En4DVarMethod` — FuXi-En4DVar with fresh Perlin members each cycle (the published
  scheme, ``members="perlin"``), or with a cycled ensemble (``members="cycled"``: B from
  the members of the previous cycle run forward, the members updated by the LETKF and
  recentred on the 4DVar analysis), optionally hybrid with a static B;
* :func:`static_var` — 3D-Var (one slot) or 4D-Var with a static B alone;
* :class:`LETKFMethod` — the LETKF of :mod:`.letkf`, members carried between cycles.

With a ``store`` each cycle is written to ``store/cycles/NNNNNN.zarr`` atomically (a
temporary directory renamed into place, through :mod:`xfuxi.files`), with the method's
state and the random generator's state, so that an interrupted run resumes from its last
complete cycle with identical results (on the same number of torch threads: another is
warned of); a resumed run whose settings differ is refused. See the documentation
(docs/cycling.md).
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import time as _time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..config import config_with_legacy, is_integer, user_stacklevel
from ..data.schema import parse_time
from ..docstrings import docstring_parts
from ..files import (
    MARKER,
    OutputExistsError,
    OutputInUseError,
    OutputLock,
    atomic_write_json,
    lock_output,
    read_marker,
    remove_stale_temporaries,
    replace_directory,
    set_aside,
)
from ..grid import area_weights
from ..models.base import channels_without_statistics
from ..models.rollout import model_device, model_dtype
from ..observations.sets import (
    ObservationsRejectedError,
    radiosonde_observations,
    screen_observations,
)
from .calibration import spread_values, wind_pairs
from .config import (
    BackgroundError,
    LocalizationOptions,
    Minimiser,
    QualityControl,
    _fields_html,
)
from .cycle_config import CycleConfig
from .en4dvar import en4dvar_analysis
from .inputs import build_localization, observation_slots, states_tensor
from .letkf import LETKFOptions, forecast_members, innovation_inflation, letkf_analysis
from .members import background_anomalies, perlin_state_perturbations

__all__ = [
    "CycleAnalysis",
    "CycleConfig",
    "CycleDivergedError",
    "CycleMethod",
    "CycleRun",
    "En4DVarMethod",
    "HybridGainMethod",
    "LETKFMethod",
    "RadiosondeNetwork",
    "additive_inflation",
    "cycle",
    "cycle_initial_conditions",
    "open_cycle",
    "spread_modulation",
    "static_inflation_estimate",
    "static_var",
]

log = logging.getLogger(__name__)

#: the forecast model a cycle runs by default: fine-tuned so that its climate does not drift
#: over weeks (docs/cycling.md, "A forecast model that does not drift" and the sections on
#: the second to fifth cycling models)
CYCLING_MODEL = "fuxi-hs-t21-cycling-v6"

#: docstring parts: a 10-member LETKF on a Lorenz-96 twin, for the examples
_doc = docstring_parts(
    {
        "example_letkf": """\
>>> from xfuxi.experiments.lorenz96 import Lorenz96Network, lorenz96_truth
>>> from xfuxi.models.lorenz96 import lorenz96_model
>>> method = LETKFMethod(options=LETKFOptions(n_members=10, qc_threshold=None),
...                      localization=LocalizationOptions(length_scale=4.0, n_points=40),
...                      initial=BackgroundError(amplitude=1.0, wavelength=1, octaves=1,
...                                              perturbation_std=(1.0,)))""",
    }
)

#: the kind recorded in the marker of a cycling store (see docs/safety.md)
STORE_KIND = "cycle-run"
CYCLE_KIND = "cycle"
#: the lock file in a cycling store: a run holds it (``fcntl.flock``) for as long as it runs,
#: so that a second run on the store fails at once (docs/safety.md); readers do not need it
STORE_LOCK = ".xfuxi-lock"


class CycleDivergedError(RuntimeError):
    """A cycle produced NaN or an analysis error beyond the divergence bound."""


@dataclass
class CycleAnalysis:
    """What a method's analysis returns to the driver.

    Attributes
    ----------
    analysis : Tensor (C, H, W)
        The analysis at t0 (the ensemble mean for the LETKF).
    state : dict of Tensor
        The method's state after the analysis (``"pair"``: the analysed input pair
        ``(t0 − Δ, t0)``; ``"members"``: analysed member pairs, ...).
    diagnostics : dict of float
        ``cost_initial``, ``cost_final``, ``iterations``, ``inflation``, ... (NaN: not
        applicable).
    spread : Tensor (C, H, W), optional
        Ensemble spread (std) of the analysis; None for methods without members.
    background_spread : Tensor (C, H, W), optional
    omb, oma : Tensor (m,), optional
        Innovations and residuals of the used observations (all slots).
    error : Tensor (m,), optional
        Their observation-error std.
    extra : xarray.Dataset, optional
        Further per-cycle diagnostics of the method (no ``time`` dim; e.g. FuXi-DA's
        radiance O−B and O−A), written with the scores under their own names.
    n_obs : int, optional
        The number of observations used, for methods without ``omb`` (default its size).
    rejected : str
        Non-empty when the method used none of the observations it was given (e.g. every
        radiance failed the cloud screen) and ``analysis`` is the background: why. The
        driver then warns and flags the cycle (``no_observations``), as for a cycle without
        observations, and keeps the method's state and ``extra`` diagnostics.
    """

    analysis: torch.Tensor
    state: dict[str, torch.Tensor]
    diagnostics: dict[str, float] = field(default_factory=dict)
    spread: torch.Tensor | None = None
    background_spread: torch.Tensor | None = None
    omb: torch.Tensor | None = None
    oma: torch.Tensor | None = None
    error: torch.Tensor | None = None
    extra: xr.Dataset | None = None
    n_obs: int | None = None
    rejected: str = ""


class CycleMethod:
    """Interface of a cycling method (subclass it to plug a new one into :func:`cycle`).

    A method's state is a dict of tensors; ``"background"`` ``(3, C, H, W)`` holds the
    background at t0 − 2Δ, t0 − Δ and t0. The driver calls :meth:`start` once, at the
    first cycle of a run, then per cycle :meth:`observe` (the window's observations, a
    tuple ``(slots, n_given, rejected)``), :meth:`analyse` (observations as
    :class:`~xfuxi.assimilation.cost.ObsSlot`) and :meth:`forecast`. A run resumed from a
    store does not call :meth:`start`: it reads the state of the last complete cycle back
    and runs :meth:`forecast` on it, so whatever a method needs from cycle to cycle must
    live in its state (tensors, written with each cycle), not in attributes that
    :meth:`start` sets. All randomness must come from the ``generator`` passed in (its
    state is saved with each cycle, so that a resumed run is identical).

    What :meth:`analyse` (and :meth:`no_observations`) return is checked after each call,
    with or without a store: a :class:`CycleAnalysis` whose ``analysis`` is a tensor
    ``(C, H, W)`` of the model's channels and grid and whose ``state`` is a dict of
    tensors without gradient (``detach()`` them), holding ``"pair"`` ``(2, C, H, W)``;
    anything else raises ``TypeError`` or ``ValueError`` naming the method. So are
    :meth:`settings` that are not a dict ready for JSON (plain numbers, strings, lists).
    """

    #: name written in the store and the tables
    name: str = "method"
    #: observation slots of the window (t0, t0 + Δ, ...)
    n_slots: int = 1

    def _repr_html_(self) -> str:
        """Jupyter's view: the method's public fields as a table (as a configuration's),
        values shortened (a Dataset or tensor by its shape, a model by its name), those
        changed from their defaults in bold."""
        return _fields_html(self)

    def settings(self) -> dict[str, Any]:
        """JSON-ready settings; a resumed run with different settings is refused.

        Every method must define it (``return {}`` for one without settings): the store
        records it, and a resumed run is compared with it.
        """
        raise NotImplementedError(
            f"the cycling method {type(self).__qualname__} (name {self.name!r}) does not "
            "define settings(): a CycleMethod must return its settings as a dict ready for "
            "JSON (plain numbers, strings, lists; {} for none), which a store records and a "
            "resumed run is compared with"
        )

    def fingerprints(self) -> dict[str, str]:
        """Digests of what the settings hold only in summary (samples, weights), by name.

        A resumed run must give the same ones; one a store does not record (a store of an
        earlier release) is not compared. The default: those of the methods this one wraps
        (its public attributes that are methods), their names prefixed by the attribute's.
        """
        out: dict[str, str] = {}
        for name, value in sorted(vars(self).items()):
            if not name.startswith("_") and isinstance(value, CycleMethod):
                out.update({f"{name}.{k}": v for k, v in value.fingerprints().items()})
        return out

    def check_model(self, model: Any) -> None:
        """Refuse, before the run starts, settings that do not fit ``model``: additive
        samples ``(K, C, H, W)`` of other channels or grid, initial perturbation std of
        another number of channels (they failed as tensor shapes inside the first cycle),
        or none where the model's channels have no statistics to default to (a model
        wrapped without ``stats``: its std of 1 is no physical scale). The default checks
        those attributes (``additive``, ``initial``) where the method has them, and the
        methods it wraps; a method with more overrides it."""
        c, (h, w) = len(model.channels), tuple(model.grid_shape)
        additive = getattr(self, "additive", None)
        if torch.is_tensor(additive) and tuple(additive.shape[1:]) != (c, h, w):
            raise ValueError(
                f"{self.name}: the additive samples are (K, C, H, W) = "
                f"{tuple(additive.shape)}; the model {model.name!r} needs (K, {c}, {h}, {w})"
            )
        initial = getattr(self, "initial", None)
        std = getattr(initial, "perturbation_std", None)
        if std is not None and len(std) != c:
            raise ValueError(
                f"{self.name}: initial perturbation_std has {len(std)} value(s); the model "
                f"{model.name!r} has {c} channels (one value each, or None for its "
                "normalization std)"
            )
        if isinstance(initial, BackgroundError) and std is None and self._initial_used():
            _physical_std(
                model,
                what=f"{self.name}: the initial members' Perlin std (initial.perturbation_std)",
                instead=f"give initial=BackgroundError(perturbation_std=(...)), {c} value(s) "
                "in the channels' units",
            )
        for name, value in sorted(vars(self).items()):
            if not name.startswith("_") and isinstance(value, CycleMethod):
                value.check_model(model)

    def _initial_used(self) -> bool:
        """Whether the method draws initial members from its ``initial`` (if it has one)."""
        return True

    def start(
        self, background: torch.Tensor, *, model: Any, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """The initial state from the first background ``(3, C, H, W)``.

        Called once, at the first cycle of a run; not when a run resumes from a store (the
        state is read back from its last complete cycle instead): keep what the method
        needs later in the returned state, not in attributes set here.
        """
        return {"background": background}

    def observe(
        self, network: Any, truth: xr.Dataset, times: Sequence[Any], *, cycle: int, model: Any
    ) -> tuple[list[Any], int, dict[str, int]]:
        """The window's observations for :meth:`analyse`: ``(slots, n_given, rejected)``.

        The default draws them from ``network`` and screens them into
        :class:`~xfuxi.assimilation.cost.ObsSlot` (one per slot time); an empty ``slots``
        makes the cycle's analysis the background.

        Returns
        -------
        tuple
            ``slots`` (a list, given to :meth:`analyse`), ``n_given`` (int: the number of
            observations the network gave, written in the scores' ``n_obs`` for a method
            without ``omb``) and ``rejected`` (dict of str to int: the number screened away
            for each reason, named in the warning of a cycle without observations). An
            override returns the same three.
        """
        obs = network(truth, times, cycle=cycle, model=model)
        used, op, _, counts = screen_observations(
            obs,
            channels=model.channels,
            latitude=model.latitude,
            longitude=model.longitude,
            slot_times=np.array(times, dtype="M8[ns]"),
            duplicates="first",
        )
        slots, _ = observation_slots(used, op, self.n_slots)
        return slots, len(used["value"]), counts

    def analyse(
        self,
        state: dict[str, torch.Tensor],
        slots: Sequence[Any],
        *,
        model: Any,
        generator: torch.Generator,
    ) -> CycleAnalysis:
        """Analyse the slots' observations; the returned state holds ``"pair"``."""
        raise NotImplementedError(
            f"the cycling method {type(self).__qualname__} (name {self.name!r}) does not "
            "define analyse(state, slots, *, model, generator), which returns a CycleAnalysis"
        )

    def forecast(self, state: dict[str, torch.Tensor], *, model: Any) -> dict[str, torch.Tensor]:
        """The next cycle's state: the analysed pair (and members) run one step forward."""
        pair = state["pair"]
        nxt = _step(model, pair[None])[0]
        out = {k: v for k, v in state.items() if k not in ("pair", "background")}
        out["background"] = torch.stack([pair[0], pair[1], nxt])
        if "members" in state:
            out["members"] = forecast_members(model, state["members"], chunk=self._chunk())[0]
        return out

    def _chunk(self) -> int:
        return 50

    def no_observations(self, state: dict[str, torch.Tensor]) -> CycleAnalysis:
        """The analysis of a cycle without observations: the background, unchanged."""
        bg = state["background"]
        new = {k: v for k, v in state.items() if k != "background"}
        new["pair"] = bg[1:].clone()
        if "members" in state:
            new["members"] = state["members"]
        spread = None
        if "members" in state:
            spread = state["members"][:, 1].std(0)
        return CycleAnalysis(analysis=bg[2].clone(), state=new, spread=spread)


def _follow_inner_method(cls: type, suffix: str) -> None:
    """Give a wrapper method class (its inner method in ``method``, checked by ``_check``)
    a ``name`` that is the one given or, if none, the current inner method's with
    ``" + suffix"``, and ``n_slots`` that are the current inner method's: a reused wrapper
    whose inner method was replaced names and runs it as a fresh one would. Set on the class
    after its definition: ``name`` is also a dataclass field (its ``_name``)."""

    def get_name(self: Any) -> str:
        return self._name or f"{self.method.name} + {suffix}"

    def set_name(self: Any, value: str) -> None:
        self._name = value

    def n_slots(self: Any) -> int:
        self._check()  # the driver asks first: the fields are checked here
        return self.method.n_slots

    cls.name = property(  # type: ignore[attr-defined]
        get_name, set_name,
        doc=f"The name given, or (if none) the current inner method's with ' + {suffix}'.",
    )  # fmt: skip
    cls.n_slots = property(n_slots, doc="The current inner method's observation slots.")  # type: ignore[attr-defined]


def _evaluation_mode(*models: Any) -> Callable[[], None]:
    """Put every module of ``models`` (a cascade's stages) in evaluation mode; return the
    function that gives each module back its own mode (as :func:`xfuxi.forecast` does: the
    cycle's forecasts and analyses run without dropout, whatever mode the caller left)."""
    modules: list[torch.nn.Module] = []
    for model in models:
        for part in getattr(model, "stages", (model,)):
            if isinstance(part, torch.nn.Module):
                modules.extend(part.modules())
    modes = [(m, m.training) for m in modules]  # parents before their children
    for m, mode in modes:
        if mode:
            m.eval()

    def restore() -> None:
        for m, mode in modes:
            if m.training != mode:
                m.train(mode)

    return restore


def _step(model: Any, pairs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        x = pairs.to(device=model_device(model), dtype=model_dtype(model))
        return model(x).double().cpu()


def _physical_std(
    model: Any, *, what: str, instead: str, channels: Sequence[int] | None = None
) -> np.ndarray:
    """The model's normalization std ``(C,)`` as the physical scale that ``what`` defaults
    to; a ValueError naming the channels (of ``channels``, indices; default all) that have
    no statistics (:func:`~xfuxi.models.base.channels_without_statistics`: the stand-in of
    a model wrapped without ``stats``, for variables with physical units), with
    ``instead``, what to give."""
    names = _channel_names(model)
    among = set(names if channels is None else [names[i] for i in channels])
    bad = [n for n in channels_without_statistics(model) if n in among]
    if bad:
        raise ValueError(
            f"{what} defaults to the model's normalization std, but the model "
            f"{getattr(model, 'name', type(model).__name__)!r} has no statistics for {bad} "
            "(wrapped without stats: its std is 1 in each channel's own units, 1 K, 1 m s-1 "
            f"and 1 m2 s-2 alike, no physical scale): {instead}; or wrap the model with "
            "stats=xfuxi.models.base.NormStats(...)"
        )
    return np.asarray(model.stats.std, dtype="float64")


def _check_n_slots(n_slots: Any) -> None:
    if not is_integer(n_slots) or n_slots < 1:
        raise ValueError(f"n_slots must be an integer >= 1; got {n_slots!r}")


def _initial_members(
    model: Any,
    background: torch.Tensor,
    initial: BackgroundError,
    generator: torch.Generator,
) -> torch.Tensor:
    """Member pairs: the background pair plus Perlin perturbations (the same on both times)."""
    opts = initial
    if opts.perturbation_std is None:
        std = _physical_std(
            model,
            what="the initial members' Perlin std (initial.perturbation_std)",
            instead="give initial=BackgroundError(perturbation_std=(...)), one value per "
            "channel in its units",
        )
        opts = opts.replace(perturbation_std=tuple(float(s) for s in std))
    pert = perlin_state_perturbations(
        model, background_error=opts, generator=generator, grid=tuple(background.shape[-2:])
    )
    pair = background[1:]
    return pair[None] + pert[:, None]


def _letkf_update(
    state: dict[str, torch.Tensor],
    slots: Sequence[Any],
    model: Any,
    options: LETKFOptions,
    localization: LocalizationOptions,
) -> Any:
    """The LETKF analysis of the members a cycle carries (``state["members"]``, inflation)."""
    return letkf_analysis(
        state["members"],
        slots,
        localization=localization,
        latitude=model.latitude,
        longitude=model.longitude,
        channels=model.channels,
        options=options,
        inflation=float(state["inflation"]),
        model=model,
    )


@_doc
@dataclass
class LETKFMethod(CycleMethod):
    """The LETKF as a cycling method (members carried between cycles).

    Parameters
    ----------
    options : LETKFOptions
        Members, inflation, RTPS, adaptive inflation.
    localization : LocalizationOptions
        Gaspari–Cohn half-width (km; grid points with ``n_points``), vertical localization.
    initial : BackgroundError
        The initial members: the first background plus Perlin perturbations (``amplitude``
        × ``perturbation_std``, default the model's normalization std, else one value per
        model channel, checked before the first cycle; the default is refused for a model
        without statistics, whose std is no physical scale; ``n_members`` is taken from
        ``options``). Its ``seed`` is not used: the run's generator
        (``CycleConfig.seed``) draws them.
    n_slots : int, default 1
        Observation slots (later slots: 4D-LETKF through the members run forward).
    additive : Tensor (K, C, H, W), optional
        Model-error samples for additive inflation (:func:`additive_inflation`): after each
        analysis every member gets ``additive_scale`` × a drawn sample (mean removed), on
        both times. 6-hour forecast errors of the model
        (:func:`~xfuxi.assimilation.calibration.forecast_error_samples` with
        ``lead_steps=1``, from a period apart from the one assimilated) represent the error
        the model adds in one cycle, which no multiplicative inflation can.
    additive_scale : float, default 1.0
    name : str, default ``"LETKF"``
        Name written in the store, the settings and the scores' ``attrs["method"]``.
    update_previous : bool, default True
        The weights of each local analysis update both input times of every member's pair
        (a lag-one smoother: each analysed pair stays a consistent pair). False: only t0 is
        analysed; the earlier time keeps the previous cycle's analysis (every member's and
        the mean's), as after the variational methods of the driver, so the model reads the
        increment as a six-hour change (measured in docs/cycling.md).

    Examples
    --------
    Two cycles of a 10-member LETKF on a Lorenz-96 twin (:func:`cycle`):

    {{example_letkf}}
    >>> run = cycle(lorenz96_truth(n_states=8, seed=1), Lorenz96Network(seed=2),
    ...             method=method, model=lorenz96_model(), progress=False,
    ...             config=CycleConfig(n_cycles=2, lead_steps=2, initial_error=1.0))
    >>> run.scores.attrs["method"], bool(run.scores["spread"].notnull().all())
    ('LETKF', True)
    """

    options: LETKFOptions = field(default_factory=LETKFOptions)
    localization: LocalizationOptions = field(
        default_factory=lambda: LocalizationOptions(length_scale=1500.0)
    )
    initial: BackgroundError = field(default_factory=lambda: BackgroundError(amplitude=0.1))
    n_slots: int = 1
    additive: Any = None
    additive_scale: float = 1.0
    name: str = "LETKF"
    update_previous: bool = True

    def __post_init__(self) -> None:
        self.additive = _check_additive(self.additive, self.additive_scale)
        if not isinstance(self.update_previous, bool):
            raise TypeError(f"update_previous must be True or False; got {self.update_previous!r}")
        _check_n_slots(self.n_slots)

    def settings(self) -> dict[str, Any]:
        out = {
            "method": self.name,
            "options": self.options.to_dict(),
            "localization": self.localization.to_dict(),
            "initial": self.initial.to_dict(),
            "n_slots": self.n_slots,
        }
        if self.additive is not None:  # absent otherwise: older stores stay resumable
            out["additive"] = _additive_settings(self.additive, self.additive_scale)
        if not self.update_previous:  # absent when on: older stores stay resumable
            out["update_previous"] = False
        return out

    def fingerprints(self) -> dict[str, str]:
        out = super().fingerprints()
        if self.additive is not None:
            out["additive"] = _tensor_fingerprint(self.additive)
        return out

    def _chunk(self) -> int:
        return self.options.member_chunk

    def start(self, background, *, model, generator):
        init = self.initial.replace(n_members=self.options.n_members)
        members = _initial_members(model, background, init, generator)
        return {
            "background": background,
            "members": members,
            "inflation": torch.tensor(float(self.options.inflation), dtype=torch.float64),
        }

    def _update(self, state, slots, model):
        """The LETKF update of the state's members; with ``update_previous=False`` the
        earlier time of each pair is put back to the previous cycle's analysis."""
        res = _letkf_update(state, slots, model, self.options, self.localization)
        if not self.update_previous:
            members = res.members.clone()
            members[:, 0] = state["members"][:, 0]
            res = res._replace(members=members)
        return res

    def _pair(self, state, members: torch.Tensor) -> torch.Tensor:
        """The analysed mean pair of ``members``; its earlier time the previous analysis
        when ``update_previous`` is False."""
        pair = members.mean(0)
        if not self.update_previous:
            pair[0] = state["background"][1]
        return pair

    def analyse(self, state, slots, *, model, generator):
        res = self._update(state, slots, model)
        pair = self._pair(state, res.members)
        members = res.members
        if self.additive is not None:
            members = additive_inflation(members, self.additive, self.additive_scale, generator)
        return CycleAnalysis(
            analysis=res.mean,
            state={
                "pair": pair,
                "members": members,
                "inflation": torch.tensor(res.inflation, dtype=torch.float64),
            },
            diagnostics={
                "inflation": res.inflation,
                "inflation_estimate": res.inflation_estimate,
            },
            spread=res.analysis_spread,
            background_spread=res.background_spread,
            omb=torch.cat(res.omb) if res.omb else None,
            oma=torch.cat(res.oma) if res.oma else None,
            error=_used_errors(slots, res.qc_rejected),
        )

    def forecast(self, state, *, model):
        members = forecast_members(model, state["members"], chunk=self._chunk())[0]
        pair = state["pair"]
        bg = torch.stack([pair[0], pair[1], members[:, 1].mean(0)])
        return {"background": bg, "members": members, "inflation": state["inflation"]}


def _check_additive(samples: Any, scale: float) -> Any:
    """Validate additive-inflation samples ``(K, C, H, W)``; returned as a float64 copy."""
    if samples is None:
        return None
    if not torch.is_tensor(samples) or samples.ndim != 4 or samples.shape[0] < 2:
        raise TypeError(
            "additive must be a tensor (K, C, H, W) of K >= 2 model-error samples (e.g. "
            "xfuxi.forecast_error_samples(..., lead_steps=1) through states_tensor)"
        )
    if not bool(torch.isfinite(samples).all()):
        raise ValueError("additive samples contain NaN or infinite values")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"additive_scale must be a positive number; got {scale!r}")
    # a copy, also of float64 samples (.double() would return the caller's tensor itself:
    # editing it afterwards would change the method, its settings and fingerprints)
    return samples.detach().to(dtype=torch.float64, copy=True)


def additive_inflation(
    members: torch.Tensor, samples: torch.Tensor, scale: float, generator: torch.Generator
) -> torch.Tensor:
    """Members ``(N, 2, C, H, W)`` plus ``scale`` × randomly drawn model-error samples.

    Each member gets one sample (drawn with the run's generator), the same on both times of
    its pair; the drawn samples' mean is removed, so the ensemble mean is unchanged and
    only the spread grows (additive inflation, Whitaker et al. 2008: the model error that
    multiplicative inflation cannot represent, in the structures of the model's own errors).
    """
    idx = torch.randint(samples.shape[0], (members.shape[0],), generator=generator)
    pert = samples[idx]
    pert = pert - pert.mean(0, keepdim=True)
    return members + float(scale) * pert[:, None].to(members.dtype)


def _exact_sum(samples: torch.Tensor) -> float:
    """The correctly rounded sum of the samples: the same whatever the thread count (a
    fingerprint of the samples in a store's settings)."""
    return math.fsum(samples.detach().double().cpu().numpy().ravel().tolist())


def _additive_settings(samples: torch.Tensor, scale: float) -> dict[str, Any]:
    return {"shape": list(samples.shape), "sum": _exact_sum(samples), "scale": float(scale)}


def _tensor_fingerprint(x: Any) -> str:
    """sha256 (16 hex digits) of an array's shape and float64 bytes: the same whatever the
    thread count, and different for samples of the same shape and sum in another order (a
    fingerprint in a store's settings, beside the sum that earlier stores recorded)."""
    import hashlib

    a = np.ascontiguousarray(torch.as_tensor(x).detach().cpu().double().numpy())
    h = hashlib.sha256(json.dumps(list(a.shape)).encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


def _used_errors(slots: Sequence[Any], rejected: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.cat(
        [s.error.double()[torch.as_tensor(~r)] for s, r in zip(slots, rejected, strict=True)]
    )


@dataclass
class En4DVarMethod(CycleMethod):
    """FuXi-En4DVar as a cycling method: fresh Perlin members or a cycled ensemble.

    Parameters
    ----------
    background_error : BackgroundError
        ``members="perlin"``: the Perlin members of each cycle (``perturbation_std``
        default: the model's normalization std, refused before the first cycle for the
        channels of a model without statistics that ``spread`` does not calibrate: give
        one value per channel in its units); ``hybrid_weight`` β of the static part (with
        ``static``; 1: static B alone). Its ``seed`` is not used by :func:`cycle`, whose
        generator (``CycleConfig.seed``) draws every cycle's members so that a resumed run
        continues the same draws; it is kept in the settings a resumed run must match.
    localization : LocalizationOptions, default Gaspari–Cohn 1500 km
        As :func:`~xfuxi.assimilation.en4dvar.assimilate_4dvar`'s, without its vertical
        localization by the observations' levels (set ``vertical_length_scale``).
    n_slots : int, default 2
        Observation slots (1: 3D-Var, the analysis at t0 from observations at t0).
    minimiser, quality_control
        As for :func:`~xfuxi.assimilation.en4dvar.assimilate_4dvar`.
    members : {"perlin", "cycled"}
        ``"cycled"``: B from the members of the previous cycle run forward; after the
        4DVar analysis the members are updated by the LETKF (``letkf``) and recentred on
        the 4DVar analysis (both times of each pair).
    letkf : LETKFOptions
        The member update of ``members="cycled"`` (and their number, ``n_members``).
    letkf_localization : LocalizationOptions, optional
        Localization of that update (default: ``localization``).
    initial : BackgroundError
        The initial members of ``members="cycled"`` (Perlin, around the first background;
        drawn by the run's generator, ``CycleConfig.seed``, not by its ``seed``; its
        ``perturbation_std`` as ``background_error``'s, needed for a model without
        statistics).
    static : Tensor (K, C, H, W), optional
        Static background-error samples (hybrid B; see
        :func:`~xfuxi.assimilation.calibration.forecast_error_samples`).
    spread : xarray.Dataset, DataArray, number or array (C,) or (C, H), optional
        Calibrated B standard deviations of the ensemble part, as
        :func:`~xfuxi.assimilation.en4dvar.assimilate_4dvar` takes them: a Dataset per
        variable (``level`` dim where it has levels; with a ``latitude`` dim, e.g.
        :func:`~xfuxi.assimilation.calibration.background_error_std` with
        ``by_latitude=True``, its rows matched to the model's latitudes in any order), a
        DataArray of one such variable (named; along ``level`` and/or ``latitude``), or a
        bare number or array in the model's channel and row order (NaN: that channel keeps
        the ensemble's own spread). Kept as a copy; matched to the model before the first
        cycle (a Dataset lacking a channel, other latitudes or an array of another shape
        are refused then, naming what is wrong).
    static_inflation : float, default 1.0
        Variance factor ρ_s of the static samples (``hybrid_weight=1``: B = ρ_s B_static);
        with ``adaptive_static`` its starting value.
    adaptive_static : float, default 0.0
        Gain ``g`` in ``(0, 1]`` of an adaptive ρ_s (0: fixed): each cycle the innovations
        of the t0 observations against the prior give an estimate ρ̂ =
        ``(dᵀR⁻¹d − m) / Σ_j (H B_static Hᵀ)_jj / σ_o,j²`` (Li et al. 2009, as the LETKF's
        adaptive inflation; rows failing a 5σ background check left out), and
        ``ρ_s ← ρ_s + g (ρ̂ − ρ_s)``, kept in ``[0.1, 10]`` and carried from cycle to cycle,
        so that the static B follows the size of the cycle's background error instead of
        that of the samples. Static B alone (``hybrid_weight=1``) only.
    additive, additive_scale : optional
        Additive inflation of the cycled members after their update, as for
        :class:`LETKFMethod` (``members="cycled"`` only).
    increment_previous : bool, default False
        The analysed pair is ``(x_b(t0 − Δ) + δ, x_a)`` with ``δ = x_a − x_b(t0)``, and the
        4DVar rolls its window from such pairs (``en4dvar_analysis(increment_previous=True)``):
        the pair's difference, the tendency a two-time model reads, stays the background's.
        False: ``(x_b(t0 − Δ), x_a)``, and the model reads the increment as a six-hour change.
    name : str

    Raises
    ------
    TypeError
        A ``spread`` that is no Dataset, DataArray or array of numbers; a ``static`` that
        is no tensor; ``increment_previous`` not a bool.
    ValueError
        Bad options (``members``, ``n_slots``, ``static_inflation``, ...), or a
        ``spread`` DataArray along latitude or level that is not one named variable with
        latitude labels (a spread that does not fit the model, or is not positive, is
        refused by :func:`cycle` before the first cycle).

    Examples
    --------
    One cycle of En4DVar with 10 fresh Perlin members on a Lorenz-96 twin (:func:`cycle`):

    >>> from xfuxi.experiments.lorenz96 import Lorenz96Network, lorenz96_truth
    >>> from xfuxi.models.lorenz96 import lorenz96_model
    >>> method = En4DVarMethod(
    ...     background_error=BackgroundError(n_members=10, perturbation_std=(3.6,),
    ...                                      amplitude=0.1, wavelength=1, octaves=1),
    ...     localization=LocalizationOptions(length_scale=4.0, n_points=40, variance=0.999))
    >>> run = cycle(lorenz96_truth(n_states=8, seed=1), Lorenz96Network(seed=2),
    ...             method=method, model=lorenz96_model(), progress=False,
    ...             config=CycleConfig(n_cycles=1, lead_steps=2, initial_error=1.0))
    >>> s = run.scores
    >>> s.attrs["method"], bool((s.analysis_error < s.background_error).all())
    ('En4DVar', True)
    """

    background_error: BackgroundError = field(default_factory=BackgroundError)
    localization: LocalizationOptions = field(default_factory=LocalizationOptions)
    n_slots: int = 2
    minimiser: Minimiser = field(default_factory=Minimiser)
    quality_control: QualityControl = field(default_factory=QualityControl)
    members: str = "perlin"
    letkf: LETKFOptions = field(default_factory=LETKFOptions)
    letkf_localization: LocalizationOptions | None = None
    initial: BackgroundError = field(default_factory=lambda: BackgroundError(amplitude=0.1))
    static: Any = None
    spread: Any = None
    additive: Any = None
    additive_scale: float = 1.0
    name: str = "En4DVar"
    static_inflation: float = 1.0
    adaptive_static: float = 0.0
    increment_previous: bool = False

    def __post_init__(self) -> None:
        self.additive = _check_additive(self.additive, self.additive_scale)
        if not isinstance(self.increment_previous, bool):
            raise TypeError(
                f"increment_previous must be True or False; got {self.increment_previous!r}"
            )
        rho, gain = self.static_inflation, self.adaptive_static
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 < rho < math.inf:
            raise ValueError(f"static_inflation must be a positive number; got {rho!r}")
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not 0 <= gain <= 1:
            raise ValueError(f"adaptive_static must be a number in [0, 1]; got {gain!r}")
        if (rho != 1.0 or gain > 0) and (
            self.static is None or float(self.background_error.hybrid_weight) != 1.0
        ):
            raise ValueError(
                "static_inflation and adaptive_static scale a static B alone: they need "
                "static samples and background_error.hybrid_weight=1 (e.g. static_var)"
            )
        if self.additive is not None and self.members != "cycled":
            raise ValueError("additive inflation needs members='cycled'")
        if self.members not in ("perlin", "cycled"):
            raise ValueError(f"members must be 'perlin' or 'cycled'; got {self.members!r}")
        _check_n_slots(self.n_slots)
        if self.static is not None and not torch.is_tensor(self.static):
            raise TypeError(
                "static must be a tensor (K, C, H, W) of background-error samples; got "
                f"{type(self.static).__name__}"
            )
        if self.static is not None and (
            self.static.ndim != 4 or not bool(torch.isfinite(self.static).all())
        ):  # found at the first cycle's analysis otherwise, as a NaN analysis or a raw error
            bad = "not finite" if self.static.ndim == 4 else f"of shape {tuple(self.static.shape)}"
            raise ValueError(
                f"static must be finite background-error samples (K, C, H, W); they are {bad}"
            )
        if self.static is not None:  # the method's own: later edits of the caller's leave it
            self.static = self.static.detach().clone()
        self.spread = _spread_argument(self.spread, self.name)
        # the localization built for a run: (key, Localization); the key holds what it was
        # built from (the options, the grid and the channels), so that a reused method whose
        # localization or model changed builds it again instead of using a stale one
        self._loc: Any = None

    def _localization(self, model: Any) -> Any:
        """The localization of ``self.localization`` on ``model``'s grid and channels (None
        when disabled), built once and rebuilt when the options, the grid or the channels
        differ from those it was built for."""
        if not self.localization.enabled:
            return None
        key = (
            json.dumps(self.localization.to_dict(), sort_keys=True, default=repr),
            tuple(np.asarray(model.latitude, dtype="float64").ravel().tolist()),
            tuple(np.asarray(model.longitude, dtype="float64").ravel().tolist()),
            tuple((str(v), None if lv is None else float(lv)) for v, lv in model.channels),
        )
        if self._loc is None or self._loc[0] != key:
            self._loc = (key, build_localization(self.localization, model))
        return self._loc[1]

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.name,
            "background_error": self.background_error.to_dict(),
            "localization": self.localization.to_dict(),
            "n_slots": self.n_slots,
            "minimiser": self.minimiser.to_dict(),
            "quality_control": self.quality_control.to_dict(),
            "members": self.members,
            "static": None if self.static is None else list(self.static.shape),
            "static_sum": None if self.static is None else _exact_sum(self.static),
            "spread": _spread_settings(self._spread()),
        }
        if self.static_inflation != 1.0 or self.adaptive_static > 0:
            # absent otherwise: older stores stay resumable
            out["static_inflation"] = float(self.static_inflation)
            out["adaptive_static"] = float(self.adaptive_static)
        if self.increment_previous:  # absent when off: older stores stay resumable
            out["increment_previous"] = True
        if self.members == "cycled":
            out["letkf"] = self.letkf.to_dict()
            out["letkf_localization"] = (self.letkf_localization or self.localization).to_dict()
            out["initial"] = self.initial.to_dict()
            if self.additive is not None:
                out["additive"] = _additive_settings(self.additive, self.additive_scale)
        return out

    def fingerprints(self) -> dict[str, str]:
        out = super().fingerprints()
        if self.static is not None:
            out["static"] = _tensor_fingerprint(self.static)
        if self.additive is not None:
            out["additive"] = _tensor_fingerprint(self.additive)
        return out

    def _chunk(self) -> int:
        return self.letkf.member_chunk

    def _initial_used(self) -> bool:
        return self.members == "cycled"

    def _draws_perlin(self) -> bool:
        """Whether each cycle's B draws Perlin members (with ``background_error``)."""
        static_only = self.static is not None and float(self.background_error.hybrid_weight) == 1
        return self.members == "perlin" and not static_only

    def _spread(self) -> Any:
        """``spread`` as kept (a field set after construction checked as at it)."""
        if self.spread is None or isinstance(self.spread, (xr.Dataset, np.ndarray)):
            return self.spread
        return _spread_argument(self.spread, self.name)

    def _target_spread(self, model: Any) -> np.ndarray | None:
        """``spread`` as the array ``(C,)`` or ``(C, H)`` of ``model``'s channels and rows
        (a Dataset matched by variable, level and latitude), or None; a ValueError naming
        what does not fit."""
        spread = self._spread()
        if spread is None:
            return None
        what = f"{self.name}: spread"
        if isinstance(spread, xr.Dataset):
            return spread_values(spread, model.channels, model.latitude, name=what)
        c, h = len(model.channels), int(model.grid_shape[0])
        arr = np.asarray(spread, dtype="float64")
        if arr.ndim == 0:
            arr = np.full(c, float(arr))
        if arr.shape not in ((c,), (c, h)):
            raise ValueError(
                f"{what} has shape {arr.shape}; the model "
                f"{getattr(model, 'name', type(model).__name__)!r} needs one value per channel "
                f"({c},) or per channel and latitude row ({c}, {h}), in its channel and row "
                "order (or a Dataset, matched by its labels)"
            )
        bad = np.isinf(arr) | (arr <= 0)  # (NaN: the channel keeps its own spread)
        if bad.any():
            names = _channel_names(model)
            rows = bad.any(-1) if arr.ndim == 2 else bad
            raise ValueError(
                f"{what} must be positive and finite (NaN: that channel keeps the ensemble's "
                f"own spread); it is not for {[n for n, b in zip(names, rows) if b]}"
            )
        return arr

    def _perlin_std(self, model: Any, spread: np.ndarray | None) -> np.ndarray:
        """The default Perlin std (the model's normalization std), refused for channels
        without statistics that ``spread`` leaves at the ensemble's own spread."""
        if spread is None:
            own = list(range(len(model.channels)))
        else:
            lacking = ~np.isfinite(spread)
            own = np.nonzero(lacking.any(-1) if spread.ndim == 2 else lacking)[0].tolist()
        return _physical_std(
            model,
            what=f"{self.name}: the Perlin members' std (background_error.perturbation_std)",
            instead="give background_error=BackgroundError(perturbation_std=(...)), one value "
            "per channel in its units, or a spread (e.g. xfuxi.background_error_std(...)) "
            "that calibrates them",
            channels=own,
        )

    def check_model(self, model: Any) -> None:
        """As :meth:`CycleMethod.check_model`, and the ``spread`` and the default Perlin std
        against ``model`` (its channels, rows and statistics)."""
        super().check_model(model)
        spread = self._target_spread(model)
        if self._draws_perlin() and self.background_error.perturbation_std is None:
            self._perlin_std(model, spread)

    def start(self, background, *, model, generator):
        state: dict[str, torch.Tensor] = {"background": background}
        if self.adaptive_static > 0:
            state["static_inflation"] = torch.tensor(
                float(self.static_inflation), dtype=torch.float64
            )
        if self.members == "cycled":
            init = self.initial.replace(n_members=self.letkf.n_members)
            state["members"] = _initial_members(model, background, init, generator)
            state["inflation"] = torch.tensor(float(self.letkf.inflation), dtype=torch.float64)
        return state

    def _variational(
        self,
        state: dict[str, torch.Tensor],
        slots: Sequence[Any],
        model: Any,
        generator: torch.Generator,
    ) -> tuple[Any, dict[str, float]]:
        """The En4DVar analysis of the slots from ``state["background"]`` (members: Perlin or
        the cycled ones); its result and cost diagnostics."""
        loc = self._localization(model)
        bg = state["background"]
        opts = self.background_error
        spread = self._target_spread(model)
        if opts.perturbation_std is None:
            # Perlin members are drawn: the model's std, refused without statistics;
            # otherwise (cycled members, static B) it is not used
            std = self._perlin_std(model, spread) if self._draws_perlin() else model.stats.std
            opts = opts.replace(perturbation_std=tuple(float(s) for s in std))
        static, static_diag = self._static_part(state, slots)
        anomalies = background_anomalies(
            model,
            bg,
            background_error=opts,
            members=None if self.members == "perlin" else state["members"][:, 1],
            static=static,
            spread=spread,
            spread_groups=wind_pairs(model.channels),
            generator=generator,
            progress=False,  # the cycle has its own bar
        )
        res = en4dvar_analysis(
            model,
            bg,
            slots,
            anomalies=anomalies,
            background_error=opts,
            localization=loc,
            increment_previous=self.increment_previous,
            minimiser=self.minimiser,
            quality_control=self.quality_control,
            generator=generator,
            progress=False,
        )
        costs = res.history.records
        diag = {
            "cost_initial": float(costs[0].cost) if costs else float("nan"),
            "cost_final": float(costs[-1].cost) if costs else float("nan"),
            "iterations": float(len(costs) - 1),
            **static_diag,
        }
        return res, diag

    def _analysed_pair(self, background: torch.Tensor, analysis: torch.Tensor) -> torch.Tensor:
        """The model's next input pair: ``(x_b(t0 − Δ), x_a)``, or with
        ``increment_previous`` ``(x_b(t0 − Δ) + x_a − x_b(t0), x_a)``."""
        previous = background[1]
        if self.increment_previous:
            previous = previous + (analysis - background[2])
        return torch.stack([previous, analysis])

    def _static_part(
        self, state: dict[str, torch.Tensor], slots: Sequence[Any]
    ) -> tuple[Any, dict[str, float]]:
        """The static samples scaled by ρ_s (this cycle's, adaptive: updated from the t0
        innovations against ``state["prior"]``, default the background at t0) and its
        diagnostics; multiplied first by ``state["static_modulation"]`` ``(C, H, W)`` when a
        caller gives one (:class:`HybridGainMethod` ``ensemble_variances``)."""
        modulation = state.get("static_modulation")
        if modulation is not None and self.static is not None:
            static = self.static * modulation[None]
        else:
            static = self.static
        if static is None or (self.static_inflation == 1.0 and self.adaptive_static == 0):
            return static, {}
        rho = float(state.get("static_inflation", self.static_inflation))
        estimate = float("nan")
        if self.adaptive_static > 0:
            prior = state.get("prior", state["background"][2])
            estimate = static_inflation_estimate(static, prior, slots, rho)
            if math.isfinite(estimate):
                rho += float(self.adaptive_static) * (estimate - rho)
            rho = min(max(rho, 0.1), 10.0)
        diag = {"static_inflation": rho, "static_inflation_estimate": estimate}
        return static * math.sqrt(rho), diag

    def _update_members(
        self,
        state: dict[str, torch.Tensor],
        slots: Sequence[Any],
        pair: torch.Tensor,
        new: dict[str, torch.Tensor],
        diag: dict[str, float],
        model: Any,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``members="cycled"``: the members updated by the LETKF with ``slots`` and recentred
        on the analysis ``pair`` (into ``new``); their analysis and background spread."""
        if self.members != "cycled":
            return None, None
        loc = self.letkf_localization or self.localization
        upd = _letkf_update(state, slots, model, self.letkf, loc)
        mem = upd.members
        mem = mem - mem.mean(0, keepdim=True) + pair[None]  # recentred
        if self.additive is not None:
            mem = additive_inflation(mem, self.additive, self.additive_scale, generator)
        new["members"] = mem
        new["inflation"] = torch.tensor(upd.inflation, dtype=torch.float64)
        diag["inflation"] = upd.inflation
        return upd.analysis_spread, upd.background_spread

    def analyse(self, state, slots, *, model, generator):
        res, diag = self._variational(state, slots, model, generator)
        pair = self._analysed_pair(state["background"], res.analysis)
        new: dict[str, torch.Tensor] = {"pair": pair}
        if "static_inflation" in diag and self.adaptive_static > 0:
            new["static_inflation"] = torch.tensor(diag["static_inflation"], dtype=torch.float64)
        spread, bspread = self._update_members(state, slots, pair, new, diag, model, generator)
        return CycleAnalysis(
            analysis=res.analysis,
            state=new,
            diagnostics=diag,
            spread=spread,
            background_spread=bspread,
            omb=torch.cat(res.omb) if res.omb else None,
            oma=torch.cat(res.oma) if res.oma else None,
            error=_used_errors(slots, res.qc_rejected),
        )


def _spread_argument(spread: Any, name: str) -> Any:
    """:class:`En4DVarMethod`'s ``spread`` as the method keeps it: None, a Dataset (a deep
    copy, matched to the model's channels and latitudes at the run by
    :func:`~xfuxi.assimilation.calibration.spread_values`, as ``assimilate_4dvar``'s), or an
    array copy in the model's channel and row order."""
    if spread is None:
        return None
    what = f"{name}: spread"
    if isinstance(spread, xr.DataArray):
        if {"latitude", "level"} & set(spread.dims):  # labels to match: one variable's
            extra = [d for d in spread.dims if d not in ("latitude", "level")]
            if spread.name is None or extra or (
                "latitude" in spread.dims and "latitude" not in spread.coords
            ):  # fmt: skip
                raise ValueError(
                    f"{what}: a DataArray along latitude or level is matched to the model by "
                    "its labels, so it must be one variable, named as such, with dims "
                    "latitude and/or level only and latitude coordinates (e.g. "
                    "xfuxi.background_error_std(..., by_latitude=True)['temperature']); got "
                    f"name {spread.name!r}, dims {tuple(spread.dims)}. Give a Dataset for "
                    "several variables, or a bare array (C,) or (C, H) in the model's "
                    "channel and row order"
                )
            spread = spread.to_dataset()
        else:
            spread = spread.values
    if isinstance(spread, xr.Dataset):
        if not spread.data_vars:
            raise ValueError(f"{what} is a Dataset without variables")
        return spread.copy(deep=True)  # the method's own: later edits of the caller's leave it
    if torch.is_tensor(spread):
        spread = spread.detach().cpu().numpy()
    arr = np.array(spread)  # a copy, its dtype kept (settings: the numbers as given)
    if arr.dtype.kind not in "biuf" or arr.ndim > 2:
        raise TypeError(
            f"{what} must be an xarray.Dataset (e.g. xfuxi.background_error_std(...)), a "
            "DataArray of one variable, a number or an array (C,) or (C, H) of numbers; got "
            f"{type(spread).__name__}"
            + (f" of shape {arr.shape}" if arr.dtype.kind in "biuf" else "")
        )
    return arr


def _spread_settings(spread: Any) -> Any:
    """The JSON form of :class:`En4DVarMethod`'s ``spread``: the array's numbers, or a
    Dataset's variables (dims, coordinates and values, sorted along latitude and level so
    that the same std stored in another order gives the same settings)."""
    if spread is None:
        return None
    if not isinstance(spread, xr.Dataset):
        return np.asarray(spread).tolist()
    out: dict[str, Any] = {}
    for name in sorted(map(str, spread.data_vars)):
        da = spread[name]
        for dim in ("latitude", "level"):
            if dim in da.dims and dim in da.coords:
                da = da.sortby(dim)
        entry: dict[str, Any] = {"dims": [str(d) for d in da.dims]}
        for dim in da.dims:
            if dim in da.coords:
                entry[str(dim)] = np.asarray(da[dim].values, dtype="float64").tolist()
        entry["values"] = np.asarray(da.values, dtype="float64").tolist()
        out[name] = entry
    return {"dataset": out}


def spread_modulation(spread: torch.Tensor, model: Any, *, bounds=(0.25, 4.0)) -> torch.Tensor:
    """``σ(x) / ⟨σ²⟩^½`` per channel: a spread map ``(C, H, W)`` over its area-weighted RMS.

    Clipped to ``bounds``; a channel without spread gets 1 everywhere. Multiplying B's
    square-root columns by it gives B the spread's spatial pattern at the same global
    variance (:class:`HybridGainMethod` ``ensemble_variances``).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> m = spread_modulation(torch.tensor([[[1.0, 3.0]]]), SimpleNamespace(latitude=[0.0]))
    >>> [round(v, 3) for v in m.flatten().tolist()]
    [0.447, 1.342]
    """
    s = spread.double()
    rms = torch.as_tensor(_area_rms(s, _grid_weights(model))).to(s)
    m = torch.where(rms[:, None, None] > 0, s / rms.clamp_min(1e-300)[:, None, None], 1.0)
    return m.clamp(*bounds)


def static_inflation_estimate(
    static: torch.Tensor,
    prior: torch.Tensor,
    slots: Sequence[Any],
    inflation: float = 1.0,
    *,
    qc_threshold: float = 5.0,
) -> float:
    """The variance factor of a static B that the t0 innovations imply (Li et al. 2009).

    ``ρ̂ = (dᵀR⁻¹d − m) / Σ_j σ_s,j² / σ_o,j²`` over the observations of the slots at step 0,
    with ``d = y − H(prior)`` and ``σ_s,j²`` the variance of ``H(prior + s) − H(prior)`` over
    the static samples ``s`` (their sample variance: the static B's variance at observation
    ``j``); rows with ``|d| > qc_threshold · √(σ_o² + inflation · σ_s²)`` are left out. NaN
    without observations at t0. The consistency relation ``E[ddᵀ] = HBHᵀ + R`` solved for
    one factor of B; :class:`En4DVarMethod` ``adaptive_static`` smooths it over cycles.

    Examples
    --------
    Samples of variance 1 at the observed points and innovations of variance 4 against
    σo = 1 imply ρ̂ ≈ 3:

    >>> from xfuxi.assimilation.cost import ObsSlot
    >>> g = torch.Generator().manual_seed(0)
    >>> static = torch.randn(400, 1, 1, 2000, generator=g, dtype=torch.float64)
    >>> d = 2 * torch.randn(2000, generator=g, dtype=torch.float64)
    >>> slot = ObsSlot(0, lambda x: x[..., 0, 0, :], d, torch.ones(2000))
    >>> round(static_inflation_estimate(static, torch.zeros(1, 1, 2000), [slot]), 1)
    2.9
    """
    xs = static.double()
    xs = xs - xs.mean(0, keepdim=True)
    k = xs.shape[0]
    prior = prior.double()
    ds, hs, es = [], [], []
    with torch.no_grad():
        for slot in slots:
            if int(slot.step) != 0:
                continue
            hb = slot.operator(prior[None])[0].double()
            hx = slot.operator(prior[None] + xs).double() - hb[None]  # (K, m)
            d = slot.value.double() - hb
            err = slot.error.double()
            sb2 = (hx**2).sum(0) / (k - 1)
            keep = d.abs() <= qc_threshold * torch.sqrt(err**2 + float(inflation) * sb2)
            ds.append(d[keep])
            hs.append(hx[:, keep])
            es.append(err[keep])
    if not ds or sum(int(d.numel()) for d in ds) == 0:
        return float("nan")
    # the background is not the samples' mean: their spread alone describes its error
    return innovation_inflation(torch.cat(ds), torch.cat(hs, 1), torch.cat(es), ensemble_mean=False)


def static_var(
    samples: Any,
    *,
    model: Any = None,
    n_slots: int = 1,
    localization: LocalizationOptions | None = None,
    minimiser: Minimiser | None = None,
    quality_control: QualityControl | None = None,
    static_inflation: float = 1.0,
    adaptive_static: float = 0.0,
    increment_previous: bool = False,
) -> En4DVarMethod:
    """3D-Var (``n_slots=1``) or 4D-Var with a static B from background-error samples.

    An :class:`En4DVarMethod` with B from the samples alone (``hybrid_weight=1``), named
    ``"3D-Var (static B)"`` or ``"4D-Var (static B)"``.

    Parameters
    ----------
    samples : xarray.Dataset or Tensor (K, C, H, W)
        Background-error samples: a Dataset with a ``sample`` dim (e.g.
        :func:`~xfuxi.assimilation.calibration.forecast_error_samples`; ``model`` then
        needed) or a tensor.
    model : ForecastModel, optional
        Gives the channels and grid a samples Dataset is stacked in; unused for a tensor.
    n_slots : int, default 1
        Observation slots (1: 3D-Var; more: 4D-Var).
    localization : LocalizationOptions, optional
        Default: none (the samples' own correlations; with few samples, localize).
    minimiser : Minimiser, optional
        Default: ``Minimiser()``.
    quality_control : QualityControl, optional
        Default: ``QualityControl()``.
    static_inflation : float, default 1.0
        Fixed variance factor of B (with ``adaptive_static``, its starting value).
    adaptive_static : float, default 0.0
        Gain of an adaptive variance factor of B (0: fixed); as for :class:`En4DVarMethod`.
    increment_previous : bool, default False
        Add the increment to both input times of the analysed pair; as for
        :class:`En4DVarMethod`.

    Returns
    -------
    En4DVarMethod

    Raises
    ------
    ValueError
        A samples Dataset without ``model`` or with fewer than 2 samples, samples that are
        not finite or not ``(K, C, H, W)``, or a bad ``n_slots``, ``static_inflation`` or
        ``adaptive_static``.
    SchemaError
        A samples Dataset that does not fit ``model`` (see
        :meth:`ForecastModel.check_dataset`).

    Examples
    --------
    3D-Var on a Lorenz-96 twin, with 6-hour tendencies of the truth as error samples:

    >>> import torch
    >>> from xfuxi.experiments.lorenz96 import Lorenz96Network, lorenz96_truth
    >>> from xfuxi.models.lorenz96 import lorenz96_model
    >>> truth = lorenz96_truth(n_states=8, seed=1)
    >>> x = torch.as_tensor(truth["x"].values)  # (time, 1, 40)
    >>> method = static_var((x[1:7] - x[:6])[:, None],
    ...                     localization=LocalizationOptions(length_scale=4.0, n_points=40,
    ...                                                      variance=0.999))
    >>> method.name, method.n_slots
    ('3D-Var (static B)', 1)
    >>> run = cycle(truth, Lorenz96Network(seed=2), method=method, model=lorenz96_model(),
    ...             config=CycleConfig(n_cycles=2, lead_steps=2, initial_error=1.0),
    ...             progress=False)
    >>> s = run.scores
    >>> bool((s.analysis_error < s.background_error).all())
    True
    """
    if isinstance(samples, xr.Dataset):
        if model is None:
            raise ValueError("a samples Dataset needs the model (its channels and grid)")
        samples = states_tensor(samples, model, dim="sample", name="samples")
    return En4DVarMethod(
        background_error=BackgroundError(hybrid_weight=1.0),
        localization=localization or LocalizationOptions(length_scale=None),
        n_slots=n_slots,
        minimiser=minimiser or Minimiser(),
        quality_control=quality_control or QualityControl(),
        static=torch.as_tensor(samples).double(),  # En4DVarMethod keeps a copy
        name="3D-Var (static B)" if n_slots == 1 else "4D-Var (static B)",
        static_inflation=static_inflation,
        adaptive_static=adaptive_static,
        increment_previous=increment_previous,
    )


@_doc
@dataclass
class HybridGainMethod(CycleMethod):
    """The LETKF recentred on a static-B analysis of its mean: hybrid gain (Penny 2014).

    Each cycle the LETKF analyses its members (``letkf``: its options, localization,
    inflation and additive samples); then ``variational`` (a one-slot
    :class:`En4DVarMethod`, e.g. :func:`static_var`: 3D-Var with a climatological B)
    analyses the same observations with the LETKF mean as its background, and the analysis
    is ``x̄_a + weight · (x_a^var − x̄_a)``; the members are recentred on it (their values at
    t0; the earlier time of each pair keeps the LETKF's unless ``increment_previous``). The
    static B brings what a small ensemble's covariances miss (docs/cycling.md): the gain is a
    blend of the ensemble's and the static one (Penny 2014, "The hybrid local ensemble
    transform Kalman filter", Mon. Wea. Rev. 142).

    Parameters
    ----------
    letkf : LETKFMethod
        One slot.
    variational : En4DVarMethod
        One slot; the background is the LETKF mean.
    weight : float, default 1.0
        α in ``(0, 1]``; 1: the variational analysis of the LETKF mean.
    name : str, default ``"hybrid-gain LETKF"``
        Name written in the store, the settings and the scores' ``attrs["method"]``.
    ensemble_variances : bool, default False
        Give the static B the spatial pattern of the LETKF's background spread: each
        channel's static samples are multiplied by ``m(x) = σ_e(x) / ⟨σ_e²⟩^½`` (the
        members' spread over its area-weighted RMS, kept in ``[0.25, 4]``), so that B keeps
        its global variance and correlations but is larger where the members spread more
        (between the observing sites) and smaller near them (flow-dependent variances in a
        static B, as operational systems take them from an ensemble of data assimilations).
    increment_previous : bool, default False
        Add the static part's increment to the earlier time of each pair too (the mean's
        and every member's), so that the pair's difference, the tendency a two-time model
        reads from its input, stays the LETKF's. False: only t0 gets it, and the model reads
        the increment as a six-hour change.

    Examples
    --------
    {{example_letkf}}
    >>> import torch
    >>> truth = lorenz96_truth(n_states=8, seed=1)
    >>> x = torch.as_tensor(truth["x"].values)
    >>> var = static_var((x[1:7] - x[:6])[:, None], localization=LocalizationOptions(
    ...     length_scale=4.0, n_points=40, variance=0.999))
    >>> hybrid = HybridGainMethod(letkf=method, variational=var, weight=0.5)
    >>> run = cycle(truth, Lorenz96Network(seed=2), method=hybrid, model=lorenz96_model(),
    ...             config=CycleConfig(n_cycles=2, lead_steps=2, initial_error=1.0),
    ...             progress=False)
    >>> run.scores.attrs["method"], bool(run.scores["spread"].notnull().all())
    ('hybrid-gain LETKF', True)
    """

    letkf: LETKFMethod = field(default_factory=LETKFMethod)
    variational: Any = None
    weight: float = 1.0
    name: str = "hybrid-gain LETKF"
    ensemble_variances: bool = False
    increment_previous: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.letkf, LETKFMethod):
            raise TypeError(f"letkf must be a LETKFMethod; got {type(self.letkf).__name__}")
        if not isinstance(self.variational, En4DVarMethod):
            raise TypeError(
                "variational must be an En4DVarMethod (e.g. static_var(samples, ...)); got "
                f"{type(self.variational).__name__}"
            )
        if self.variational.members == "cycled":
            raise ValueError(
                "the hybrid gain's variational part needs members='perlin' or a static B "
                "(static_var): the LETKF carries the members; got members='cycled'"
            )
        if self.letkf.n_slots != 1 or self.variational.n_slots != 1:
            raise ValueError(
                "hybrid gain needs one observation slot in both methods; got "
                f"{self.letkf.n_slots} and {self.variational.n_slots}"
            )
        w = self.weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w <= 1:
            raise ValueError(f"weight must be a number in (0, 1]; got {w!r}")
        for flag in ("ensemble_variances", "increment_previous"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be True or False; got {getattr(self, flag)!r}")
        self.n_slots = 1

    def settings(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "letkf": self.letkf.settings(),
            "variational": self.variational.settings(),
            "weight": float(self.weight),
            # absent when off: older stores stay resumable
            **({"ensemble_variances": True} if self.ensemble_variances else {}),
            **({"increment_previous": True} if self.increment_previous else {}),
        }

    def _chunk(self) -> int:
        return self.letkf._chunk()

    def analyse(self, state, slots, *, model, generator):
        opts = self.letkf
        res = opts._update(state, slots, model)
        pair = opts._pair(state, res.members)
        bg = torch.stack([state["background"][0], pair[0], pair[1]])
        # the static B's adaptive factor is estimated against the prior (the LETKF's
        # background mean), not against the LETKF analysis that already used the observations
        vstate = {"background": bg, "prior": state["background"][2]}
        if "static_inflation" in state:
            vstate["static_inflation"] = state["static_inflation"]
        if self.ensemble_variances:
            vstate["static_modulation"] = spread_modulation(res.background_spread, model)
        var = self.variational.analyse(vstate, slots, model=model, generator=generator)
        mean = pair[1] + float(self.weight) * (var.analysis - pair[1])
        increment = mean - pair[1]
        members = res.members.clone()
        members[:, 1] += increment[None]
        previous = pair[0]
        if self.increment_previous:  # the pair's difference stays the LETKF's
            previous = previous + increment
            members[:, 0] += increment[None]
        if opts.additive is not None:
            members = additive_inflation(members, opts.additive, opts.additive_scale, generator)
        used = [
            s.value.double()[torch.as_tensor(~r)] - s.operator(mean[None])[0][torch.as_tensor(~r)]
            for s, r in zip(slots, res.qc_rejected, strict=True)
        ]
        diag = {
            "inflation": res.inflation,
            "inflation_estimate": res.inflation_estimate,
            **{
                k: v
                for k, v in var.diagnostics.items()
                if k in ("cost_initial", "cost_final", "iterations")
                or k.startswith("static_inflation")
            },
        }
        new = {
            "pair": torch.stack([previous, mean]),
            "members": members,
            "inflation": torch.tensor(res.inflation, dtype=torch.float64),
        }
        if "static_inflation" in var.state:
            new["static_inflation"] = var.state["static_inflation"]
        return CycleAnalysis(
            analysis=mean,
            state=new,
            diagnostics=diag,
            spread=res.analysis_spread,
            background_spread=res.background_spread,
            omb=torch.cat(res.omb) if res.omb else None,
            oma=torch.cat(used) if used else None,
            error=_used_errors(slots, res.qc_rejected),
        )

    def start(self, background, *, model, generator):
        state = self.letkf.start(background, model=model, generator=generator)
        if self.variational.adaptive_static > 0:
            start = self.variational.static_inflation
            state["static_inflation"] = torch.tensor(float(start), dtype=torch.float64)
        return state

    def forecast(self, state, *, model):
        out = self.letkf.forecast(state, model=model)
        if "static_inflation" in state:
            out["static_inflation"] = state["static_inflation"]
        return out


@dataclass(frozen=True)
class RadiosondeNetwork:
    """Radiosonde-like columns at fixed random sites, observed at every slot of each window.

    Parameters
    ----------
    n_sites : int, default 300
    variables : sequence of str, optional
        Default: every truth variable with levels, and surface pressure if present, that
        the model has a channel of (the truth's other variables are not observed: the
        model analyses none of them). Variables the model has no channel of are refused
        (``ValueError``; :func:`cycle` refuses them before the store is made).
    error_fraction : float, default 0.1
        Observation-error std per variable: this fraction of the model's mean
        normalization std over its levels (as the En4DVar examples). Refused for a
        variable whose channels have no statistics (a model wrapped without ``stats``:
        its std of 1 is no physical scale); give ``error`` for those.
    seed : int, default 0
        Sites and observation noise (cycle ``c`` draws its noise with ``seed + 1 + c``, so
        networks whose seeds differ by ``k`` draw the same noise ``k`` cycles apart: give
        independent runs seeds further apart than their number of cycles).
    error : mapping of str to float, optional
        Observation-error std of these variables, in their units (e.g.
        ``{"temperature": 0.5, "geopotential": 20.0}``), instead of ``error_fraction``;
        the other variables keep ``error_fraction``. Kept as sorted ``(variable, std)``
        pairs.

    Notes
    -----
    Only the truth levels that one of the observed variables' channels can take (a level
    of the model, or one between two of its levels, interpolated in ln p) are observed: a
    truth level above or below every model level is left out, so that it does not shift
    the noise drawn for the others. With a truth on the model's levels and variables (the
    embedded world's with the shipped models) every truth level and variable is observed,
    as before.

    Examples
    --------
    >>> import numpy as np, pandas as pd, torch, xarray as xr, xfuxi
    >>> Last = type("Last", (torch.nn.Module,), {"forward": lambda self, x: x[:, 1]})
    >>> lat, lon = [-45.0, 45.0], [0.0, 90.0, 180.0, 270.0]
    >>> model = xfuxi.wrap_model(Last(), channels=[("temperature", 500.0),
    ...                                            ("temperature", 850.0)],
    ...                          latitude=lat, longitude=lon)
    >>> t = pd.date_range("2000-01-01", periods=2, freq="6h")
    >>> truth = xr.Dataset({"temperature": (("time", "level", "latitude", "longitude"),
    ...                                     np.full((2, 2, 2, 4), 250.0))},
    ...                    coords={"time": t, "level": [500, 850], "latitude": lat,
    ...                            "longitude": lon})
    >>> network = RadiosondeNetwork(n_sites=3, error={"temperature": 0.5})  # (no stats)
    >>> obs = network(truth, t, cycle=0, model=model)
    >>> obs.sizes["obs"], float(obs["error"][0])  # 3 sites × 2 levels × 2 times
    (12, 0.5)
    """

    n_sites: int = 300
    variables: tuple[str, ...] | None = None
    error_fraction: float = 0.1
    seed: int = 0
    error: Any = None

    def __repr__(self) -> str:
        """The fields, ``error`` only where given (the repr of earlier releases otherwise)."""
        shown = [f"{k}={getattr(self, k)!r}" for k in ("n_sites", "variables", "error_fraction")]
        shown.append(f"seed={self.seed!r}")
        if self.error is not None:
            shown.append(f"error={dict(self.error)!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def _repr_html_(self) -> str:
        """Jupyter's view: the fields as a table, those changed from their defaults in bold."""
        return _fields_html(self)

    def __post_init__(self) -> None:
        if not is_integer(self.n_sites) or self.n_sites < 1:
            raise ValueError(
                f"RadiosondeNetwork.n_sites must be an integer >= 1; got {self.n_sites!r}"
            )
        if not is_integer(self.seed) or self.seed < 0:
            raise ValueError(f"RadiosondeNetwork.seed must be an integer >= 0; got {self.seed!r}")
        fraction = self.error_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)) or (
            not np.isfinite(fraction) or fraction <= 0
        ):  # fmt: skip
            raise ValueError(
                f"RadiosondeNetwork.error_fraction must be a number > 0; got {fraction!r}"
            )
        if isinstance(self.variables, str):
            raise TypeError(
                "RadiosondeNetwork.variables must be a sequence of names, not one string: "
                f"write ({self.variables!r},)"
            )
        if self.error is not None:
            object.__setattr__(self, "error", _network_errors(self.error))

    def settings(self) -> dict[str, Any]:
        """JSON-ready settings (a resumed run with other settings is refused).

        Returns
        -------
        dict
            ``network`` (``"radiosonde"``), ``n_sites``, ``variables`` (None or a list),
            ``error_fraction`` and ``seed``.
        """
        out = {
            "network": "radiosonde",
            "n_sites": self.n_sites,
            "variables": None if self.variables is None else list(self.variables),
            "error_fraction": self.error_fraction,
            "seed": self.seed,
        }
        if self.error is not None:  # absent otherwise: older stores stay resumable
            out["error"] = dict(self.error)
        return out

    def errors(self, model: Any, variables: Sequence[str] | None = None) -> dict[str, float]:
        """The observation-error std of each variable: the one given in ``error``, else
        ``error_fraction`` times the mean of the model's normalization std over the
        variable's levels.

        Parameters
        ----------
        model : ForecastModel or Cascade
            Gives the channels and their normalization statistics.
        variables : sequence of str, optional
            The variables observed (default: every variable of the model).

        Returns
        -------
        dict of str to float
            Variable name → error std, in the variable's units.

        Raises
        ------
        ValueError
            ``error`` names a variable the model has no channel of, or a variable without
            an ``error`` has channels without statistics (a model wrapped without
            ``stats``), whose std of 1 is no physical scale: named, with the fix.
        """
        given = dict(self.error or ())
        have = {str(v) for v, _ in model.channels}
        unknown = sorted(set(given) - have)
        if unknown:
            raise ValueError(
                f"RadiosondeNetwork.error names {unknown}, of which the model has no channel "
                f"(its variables: {sorted(have)}): leave them out"
            )
        wanted = None if variables is None else {str(v) for v in variables}
        out: dict[str, list[float]] = {}
        index: dict[str, list[int]] = {}
        for i, ((v, _), s) in enumerate(
            zip(model.channels, np.asarray(model.stats.std), strict=True)
        ):
            v = str(v)
            if wanted is not None and v not in wanted:
                continue
            out.setdefault(v, []).append(float(s))
            index.setdefault(v, []).append(i)
        scaled = [i for v, idx in index.items() if v not in given for i in idx]
        if scaled:
            _physical_std(
                model,
                what="RadiosondeNetwork's observation error (error_fraction × the std)",
                instead="give RadiosondeNetwork(error={variable: std, ...}), the "
                "observation-error std of each such variable in its units",
                channels=scaled,
            )
        return {v: given[v] if v in given else self.error_fraction * float(np.mean(s))
                for v, s in out.items()}  # fmt: skip

    def sites(self) -> list[tuple[float, float]]:
        """The network's ``(latitude, longitude)`` sites, uniform on the sphere (from ``seed``)."""
        rng = np.random.default_rng(self.seed)
        lat = np.degrees(np.arcsin(rng.uniform(-1, 1, self.n_sites)))
        return list(zip(lat.tolist(), rng.uniform(0, 360, self.n_sites).tolist(), strict=True))

    def observed(self, truth: xr.Dataset, model: Any) -> tuple[list[str], list[float] | None]:
        """The variables and levels observed in ``truth`` for ``model`` (levels None: all
        the truth's).

        Parameters
        ----------
        truth : xarray.Dataset
        model : ForecastModel or Cascade
            Gives the channels the observations are screened into.

        Returns
        -------
        tuple
            ``(variables, levels)``: the variables (``variables``, default every truth
            variable with levels, and surface pressure, that the model has a channel of,
            in the model's channel order whatever the truth's) and the truth levels (in its
            order) that one of them can be screened at (a model level, or between two), None
            when that is all of them.

        Raises
        ------
        ValueError
            ``variables`` names a variable the model has no channel of (its observations
            would be screened away, or lack an error).
        """
        from ..observations.interpolation import vertical_weights

        have = {str(v) for v, _ in model.channels}
        if self.variables is None:
            # in the model's channel order, not the truth's: the noise is drawn variable by
            # variable, so a truth with its variables in another order (a resume from a
            # reordered copy) drew other observations
            variables = [
                v
                for v in dict.fromkeys(str(v) for v, _ in model.channels)
                if v in truth.data_vars and ("level" in truth[v].dims or v == "surface_pressure")
            ]
        else:
            variables = [str(v) for v in self.variables]
            lacking = [v for v in variables if v not in have]
            if lacking:
                raise ValueError(
                    f"RadiosondeNetwork.variables names {lacking}, of which the model has no "
                    f"channel (its variables: {sorted(have)}): leave them out"
                )
        if "level" not in truth.dims:
            return variables, None
        levels = [float(lv) for lv in np.asarray(truth["level"].values).ravel()]
        columns = [v for v in variables if v in truth and "level" in truth[v].dims]
        if not columns or not levels:
            return variables, None
        _, _, reason = vertical_weights(
            model.channels,
            np.repeat(np.asarray(columns), len(levels)),
            np.tile(np.asarray(levels, dtype="float64"), len(columns)),
        )
        usable = (reason == "").reshape(len(columns), len(levels)).any(0)
        if usable.all() or not usable.any():  # none: as before (screened away, then warned)
            return variables, None
        return variables, [lv for lv, ok in zip(levels, usable, strict=True) if ok]

    def __call__(self, truth: xr.Dataset, times: Any, *, cycle: int, model: Any) -> xr.Dataset:
        sites = self.sites()
        variables, levels = self.observed(truth, model)
        errors = self.errors(model, variables)  # (those observed: others may lack a scale)
        return radiosonde_observations(
            truth,
            sites=sites,
            variables=variables,
            levels=levels,
            error=errors,
            times=times,
            seed=self.seed + 1 + int(cycle),
        )


def _network_errors(error: Any) -> tuple[tuple[str, float], ...]:
    """RadiosondeNetwork's ``error``: sorted ``(variable, std)`` pairs of positive finite
    numbers (hashable, as the frozen network is), or a clear error."""
    from collections.abc import Mapping

    if not isinstance(error, Mapping):
        try:
            error = dict(error)  # (pairs, as the network keeps them)
        except (TypeError, ValueError):
            raise TypeError(
                "RadiosondeNetwork.error must map variable names to observation-error stds "
                f"(e.g. {{'temperature': 0.5}}); got {type(error).__name__}"
            ) from None
    out = []
    for v, s in error.items():
        if not isinstance(v, str) or not v:
            raise TypeError(f"RadiosondeNetwork.error: variable names must be strings; got {v!r}")
        if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)) or (
            not np.isfinite(s) or s <= 0
        ):  # fmt: skip
            raise ValueError(
                f"RadiosondeNetwork.error[{v!r}] must be a positive finite number; got {s!r}"
            )
        out.append((v, float(s)))
    return tuple(sorted(out))


def _network_settings(network: Any) -> Any:
    if hasattr(network, "settings"):
        return network.settings()
    return getattr(network, "__qualname__", type(network).__name__)


def _stack(ds: xr.Dataset, model: Any, times: Any) -> torch.Tensor:
    from ..data.channels import stack

    arr = stack(ds.sel(time=list(times)), model.channels).transpose(
        "time", "channel", "latitude", "longitude"
    )
    return torch.as_tensor(np.asarray(arr.values, dtype="float64"))


def _dataset(states: torch.Tensor, model: Any, times: Any, like: xr.Dataset) -> xr.Dataset:
    from ..data.channels import unstack

    da = xr.DataArray(
        states.numpy(),
        dims=("time", "channel", "latitude", "longitude"),
        coords={
            "time": np.asarray(times, dtype="M8[ns]"),
            "latitude": like["latitude"].values,
            "longitude": like["longitude"].values,
        },
    )
    return unstack(da, model.channels)


def _with_channel_units(scores: xr.Dataset) -> xr.Dataset:
    """``scores`` with the coordinate ``channel_units``: the units of each channel's
    errors and spread, those of its variable (empty for a variable xfuxi does not know, such
    as the Lorenz-96 state)."""
    from ..data.channels import parse_channel_name
    from ..data.schema import VARIABLES

    scores = _with_grid_units(scores)
    if "channel" not in scores.dims:
        return scores
    units = [
        VARIABLES.get(parse_channel_name(str(c))[0], ("",))[0] for c in scores["channel"].values
    ]
    return scores.assign_coords(channel_units=("channel", units))


def _with_grid_units(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with the units of its ``latitude`` and ``longitude`` (and ``level``), where it
    has them without (the states of a cycle are stored on the model's bare grid)."""
    units = {"latitude": "degrees_north", "longitude": "degrees_east", "level": "hPa"}
    lacking = [c for c in units if c in ds.coords and "units" not in ds[c].attrs]
    if not lacking:
        return ds
    ds = ds.copy()
    for c in lacking:
        ds[c].attrs = {**ds[c].attrs, "units": units[c]}
    return ds


def _channel_names(model: Any) -> list[str]:
    from ..data.channels import channel_name

    return [channel_name(c) for c in model.channels]


def _grid_weights(model: Any) -> torch.Tensor:
    """Area weights ``(H,)`` of the model's latitude rows (mean 1), float64."""
    return torch.as_tensor(np.asarray(area_weights(np.asarray(model.latitude)).values))


def _area_rms(x: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    """Area-weighted root-mean-square over the grid, per channel: ``(C, H, W) → (C,)``."""
    return (x.pow(2) * weights[None, :, None]).mean((-2, -1)).sqrt().numpy()


@dataclass
class CycleRun:
    """The outcome of :func:`cycle`: per-cycle scores and diagnostics, and the store.

    Attributes
    ----------
    scores : xarray.Dataset
        Dim ``time`` (one per cycle) and ``channel``: ``analysis_error``,
        ``background_error``, ``free_error`` (area-weighted RMSE against the truth),
        ``spread`` (area-weighted RMS ensemble spread; NaN without members), and the
        diagnostics ``omb_rms``, ``oma_rms`` (RMS of (O−B)/σo and (O−A)/σo),
        ``desroziers_r``, ``desroziers_hbh`` (Desroziers et al. 2005: the mean of
        (O−A)(O−B)/σo², an estimate of the true R over the assumed one, and of
        (A−B)(O−B)/σo², of H B Hᵀ over it), ``n_obs``, ``cost_initial``, ``cost_final``,
        ``iterations``, ``inflation``, ``no_observations``, ``wall_time_s``. The
        coordinate ``channel_units`` gives the units of each channel's errors and spread
        (those of its variable; empty where the variable is not a known one).
    store : pathlib.Path or None
    """

    scores: xr.Dataset
    store: Path | None = None

    def __repr__(self) -> str:
        s = self.scores
        n = s.sizes.get("time", 0)
        head = f"<CycleRun {s.attrs.get('method', '')!s}: {n} cycle{'s' if n != 1 else ''}"
        if n:
            head += (
                f" from {pd.Timestamp(s['time'].values[0])} to {pd.Timestamp(s['time'].values[-1])}"
            )
        lines = [head + (f", store {self.store}" if self.store else "") + ">"]
        if n:
            third = max(1, n // 3)
            lines.append(
                f"{'channel':32s} {'analysis':>10s} {'background':>10s} {'free':>10s} "
                f"{'spread':>10s}  "
                + ("(the last cycle)" if third == 1 else f"(means over the last {third} cycles)")
            )
            last = s.isel(time=slice(-third, None)).mean("time")
            for ch in s["channel"].values:
                r = last.sel(channel=ch)
                spread = float(r.spread)  # NaN: a method without members has no spread
                lines.append(
                    f"{str(ch):32s} {float(r.analysis_error):10.4g} "
                    f"{float(r.background_error):10.4g} {float(r.free_error):10.4g} "
                    + (f"{spread:10.4g}" if np.isfinite(spread) else f"{'-':>10s}")
                )
            lines.append(
                f"O-B rms {float(last.omb_rms):.3g} σo, O-A rms {float(last.oma_rms):.3g} σo, "
                f"{int(s['no_observations'].sum())} cycle(s) without observations"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Jupyter's view: the summary of :meth:`__repr__` (a table of columns) as it is."""
        return f'<div class="xfuxi-summary"><pre>{html.escape(repr(self))}</pre></div>'

    def plot(self, channels: Sequence[str] | None = None, **kwargs: Any) -> Any:
        """Error and spread against time (:func:`xfuxi.plot.plot_cycle`)."""
        from ..plot import plot_cycle

        return plot_cycle(self.scores, channels=channels, **kwargs)


def _who(method: Any) -> str:
    return f"the cycling method {type(method).__qualname__} (name {getattr(method, 'name', '')!r})"


def _method_settings(method: Any) -> dict[str, Any]:
    """``method.settings()``, refused unless a dict ready for JSON (the store's run.json)."""
    out = method.settings()
    if not isinstance(out, dict):
        raise TypeError(f"{_who(method)}: settings() must return a dict; got {type(out).__name__}")
    try:
        json.dumps(out)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{_who(method)}: settings() must be ready for JSON (the store records them): "
            f"{err}; give plain numbers, strings and lists (float(x), int(n), array.tolist())"
        ) from None
    return out


def _class_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _method_classes(method: Any, prefix: str = "method") -> dict[str, str]:
    """The classes of ``method`` and of the methods it wraps (its public attributes that
    are methods, by attribute), ``module.qualname``: recorded in a store's run.json, so
    that a run resumed with another class (a subclass whose settings are the same) is
    refused."""
    out = {prefix: _class_name(method)}
    for name, value in sorted(vars(method).items()):
        if not name.startswith("_") and isinstance(value, CycleMethod):
            out.update(_method_classes(value, f"{prefix}.{name}"))
    return out


def _same_class(old: Any, new: Any) -> bool:
    """Whether two recorded ``module.qualname`` name the same class; a class of a script
    run as ``__main__`` matches the same qualname imported from its module (the same
    script run or imported)."""
    if old == new:
        return True
    if not isinstance(old, str) or not isinstance(new, str):
        return False
    for a, b in ((old, new), (new, old)):
        if a.startswith("__main__.") and b.endswith("." + a.removeprefix("__main__.")):
            return True
    return False


def _class_differences(old: Any, new: Any) -> list[str]:
    """The methods whose classes differ between a store's record and this run's."""
    if not isinstance(old, dict):
        old = {"method": old}
    keys = sorted(set(old) | set(new))
    return [
        f"{k} (stored {old.get(k)!r}, now {new.get(k)!r})"
        for k in keys
        if not _same_class(old.get(k), new.get(k))
    ]


def _check_scales(model: Any, cfg: CycleConfig) -> None:
    """Refuse the run options that default to the model's normalization std as a
    physical scale where its channels have no statistics (:func:`_physical_std`):
    the divergence bound and the initial error."""
    if math.isfinite(cfg.divergence_factor):
        _physical_std(
            model,
            what=f"the divergence bound (CycleConfig.divergence_factor={cfg.divergence_factor:g}"
            " × each channel's std)",
            instead="switch the bound off with CycleConfig(divergence_factor=math.inf) (a NaN "
            "or infinite analysis still stops the run)",
        )
    if cfg.initial_error > 0:
        _physical_std(
            model,
            what=f"the first background's noise (CycleConfig.initial_error={cfg.initial_error:g}"
            " × each channel's std)",
            instead="give CycleConfig(initial_error=0) (no noise on the first background)",
        )


def _describe(x: Any) -> str:
    if torch.is_tensor(x):
        return f"a tensor of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def _check_state(method: Any, state: Any, call: str, shape: tuple[int, ...]) -> None:
    """Refuse a state from ``method``'s ``call`` (start, forecast) that is no dict holding
    the background ``(3, C, H, W)``, naming the method."""
    if not isinstance(state, dict):
        raise TypeError(
            f"{_who(method)}: {call} must return the state, a dict of tensors; got "
            f"{_describe(state)}"
        )
    bg = state.get("background")
    if not torch.is_tensor(bg) or tuple(bg.shape) != (3, *shape):
        raise ValueError(
            f"{_who(method)}: the state {call} returns must hold 'background', a tensor "
            f"(3, C, H, W) = {(3, *shape)} (the background at t0 - 2Δ, t0 - Δ and t0); got "
            + ("none" if bg is None else _describe(bg))
        )


def _check_analysis(method: Any, res: Any, call: str, shape: tuple[int, ...]) -> None:
    """Refuse what ``method``'s ``call`` (analyse, no_observations) returned unless it
    keeps the interface (:class:`CycleAnalysis`, analysis ``(C, H, W)``, a state of
    detached tensors holding ``"pair"`` ``(2, C, H, W)``), naming the method and what is
    wrong: otherwise it failed as a raw error later, some only when a store is written."""
    who = f"{_who(method)}: {call}"
    if not isinstance(res, CycleAnalysis):
        raise TypeError(f"{who} must return a CycleAnalysis; got {_describe(res)}")
    for name in ("analysis", "spread", "background_spread"):
        x = getattr(res, name)
        if x is None and name != "analysis":
            continue
        if not torch.is_tensor(x) or tuple(x.shape) != shape:
            raise ValueError(
                f"{who} returned {name} as {_describe(x)}; it must be a tensor (C, H, W) = "
                f"{shape}, the model's channels and grid"
            )
        if x.requires_grad:
            raise ValueError(f"{who} returned {name} with requires_grad: detach() it")
    if not isinstance(res.state, dict):
        raise TypeError(f"{who} returned a state that is {_describe(res.state)}; it must be a dict")
    for key, value in res.state.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{who} returned a state key {key!r}; keys must be non-empty strings")
        if not torch.is_tensor(value):
            raise TypeError(
                f"{who} returned state[{key!r}] as {_describe(value)}; the state must hold "
                "tensors only (written with each cycle for a resumed run): e.g. "
                f"torch.tensor({value!r})"[:400]
            )
        if value.requires_grad:
            raise ValueError(
                f"{who} returned state[{key!r}] with requires_grad; the state must hold "
                "tensors without gradient (written with each cycle): detach() it"
            )
    pair = res.state.get("pair")
    if pair is None or tuple(pair.shape) != (2, *shape):
        raise ValueError(
            f"{who} must return a state holding 'pair', a tensor (2, C, H, W) = "
            f"{(2, *shape)}: the analysed input pair (t0 - Δ, t0) that forecast() runs on; "
            + ("it has none" if pair is None else f"got shape {tuple(pair.shape)}")
        )


def _settings(
    method: Any,
    network: Any,
    model: Any,
    start: Any,
    lead_steps: int,
    seed: int,
    initial_error: float,
) -> dict[str, Any]:
    return {
        "method": _method_settings(method),
        "network": _network_settings(network),
        "model": getattr(model, "name", type(model).__name__),
        "start": str(pd.Timestamp(start)),
        "lead_steps": int(lead_steps),
        "seed": int(seed),
        "initial_error": float(initial_error),
    }


def _fingerprints(model: Any, truth: xr.Dataset, t0: pd.Timestamp) -> dict[str, str]:
    """What a resumed run must share with the stored one beyond its settings: the model's
    weights (a model of the same name may hold others), the precision it runs in (the
    digests hash every dtype as float64) and the truth (another run of the world on the
    same times): sha256 of the parameters and of the truth at the first analysis time (a
    longer truth of the same run has the same one)."""
    import hashlib

    from ..models.checkpoint import tensor_digest

    out: dict[str, str] = {}
    module = getattr(model, "net", model)
    if hasattr(module, "state_dict"):
        out["model_weights"] = tensor_digest(module, buffers=False)  # as earlier stores hold
    # what else makes the forecasts: the normalization (buffers outside the network), the
    # residual step, the configuration, the network's plain settings (Lorenz-96's forcing)
    h = hashlib.sha256()
    if hasattr(model, "named_buffers"):  # the statistics' buffers are not in state_dict()
        for name, tensor in sorted(model.named_buffers()):
            if not name.startswith("net."):
                h.update(name.encode())
                h.update(tensor.detach().cpu().double().contiguous().numpy().tobytes())
    for obj in {id(o): o for o in (model, module)}.values():
        plain = {
            k: v
            for k, v in sorted(vars(obj).items())
            if not k.startswith("_")
            and k not in ("training", "grad_checkpointing")  # no effect on the forecasts
            and isinstance(v, bool | int | float | str)
        }
        h.update(json.dumps(plain, sort_keys=True).encode())
    config = {k: v for k, v in dict(getattr(model, "config", {}) or {}).items() if k != "source"}
    h.update(json.dumps(config, sort_keys=True, default=str).encode())  # not where it was read
    out["model_setup"] = h.hexdigest()[:16]
    # a key of its own: model_setup's digest stays that of the stores written before it
    out["model_dtype"] = str(model_dtype(model)).removeprefix("torch.")
    h = hashlib.sha256()
    at = truth.sel(time=t0)
    for name in sorted(map(str, at.data_vars)):
        h.update(name.encode())
        h.update(np.ascontiguousarray(at[name].values, dtype="float64").tobytes())
    out["truth_at_start"] = h.hexdigest()[:16]
    return out


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _differences(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    numbers = (int, float)
    if (
        isinstance(old, numbers) and isinstance(new, numbers)
        and not isinstance(old, bool) and not isinstance(new, bool)
        and math.isclose(old, new, rel_tol=1e-12, abs_tol=0.0)
    ):  # fmt: skip
        return []  # the same number up to rounding (e.g. a sum by another thread count)
    if json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
        return [f"{prefix[:-1]} (stored {old!r}, now {new!r})"]
    return []


def _complete_cycles(store: Path) -> list[int]:
    d = store / "cycles"
    if not d.exists():
        return []
    out = []
    for p in d.iterdir():
        if p.suffix == ".zarr" and p.stem.isdigit() and read_marker(p) is not None:
            out.append(int(p.stem))
    out.sort()
    if out != list(range(len(out))):
        raise RuntimeError(f"the cycles in {d} are not consecutive from 0: {out[:10]}...")
    return out


def _cycling_store(store: str | Path) -> Path:
    """``store`` as a path, refused unless :func:`cycle` wrote it (its marker says so)."""
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store must be a path (str or os.PathLike); got {type(store).__name__}")
    path = Path(store).expanduser()
    marker = read_marker(path) if path.exists() else None
    if marker is None or marker.get("kind") != STORE_KIND:
        raise ValueError(f"{path} is not a cycling store written by xfuxi.cycle")
    return path


def _read_settings(path: Path) -> dict[str, Any]:
    """The settings of the cycling store ``path`` (its ``run.json``), or a ValueError that
    says the file is damaged (a raw JSONDecodeError, or a corrupted file read as text)."""
    try:
        settings = json.loads((path / "run.json").read_text())
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{path}: its settings file run.json cannot be read ({err}); the store is damaged"
        ) from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: its settings file run.json holds no settings; it is damaged")
    return settings


def _readable_cycles(store: Path) -> list[Path]:
    """The complete cycles' directories in order, for readers, while a run may be writing.

    A cycle that a run is rewriting without its members (``keep_members=False``), or that a
    run killed between the two renames left aside, is read from its earlier copy (the
    writer's resume puts it back); the store could not be opened before.
    """
    d = store / "cycles"
    found = {}
    if d.exists():
        for p in d.iterdir():
            if p.suffix == ".zarr" and p.stem.isdigit() and read_marker(p) is not None:
                found[int(p.stem)] = p
        for name, previous in set_aside(d).items():
            stem = name.removesuffix(".zarr")
            if name.endswith(".zarr") and stem.isdigit() and read_marker(previous) is not None:
                found.setdefault(int(stem), previous)
    numbers = sorted(found)
    if numbers != list(range(len(numbers))):
        raise RuntimeError(f"the cycles in {d} are not consecutive from 0: {numbers[:10]}...")
    return [found[c] for c in numbers]


def _read_while_written(read: Callable[[], Any]) -> Any:
    """``read()``, again if a cycle it found moved meanwhile (a run rewriting it)."""
    for attempt in range(3):
        try:
            return read()
        except FileNotFoundError:
            if attempt == 2:
                raise
            _time.sleep(0.2)
    raise AssertionError("unreachable")


def _state_to_vars(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    out = {}
    for k, v in state.items():
        arr = v.detach().cpu().numpy()
        out[f"state__{k}"] = (tuple(f"state__{k}_{i}" for i in range(arr.ndim)), arr)
    return out


def _drop_members(cycle_path: Path) -> None:
    """Rewrite a complete cycle without its ensemble members (``keep_members=False``).

    Atomic: the cycle stays complete, with or without them, whenever the process stops."""
    marker = read_marker(cycle_path)
    if marker is None or marker.get("kind") != CYCLE_KIND or marker.get("members_dropped"):
        return  # (dropped before: its marker says so, nothing to open)
    with xr.open_zarr(cycle_path, chunks=None) as ds:  # read whole: no dask graph to build
        if "state__members" not in ds:
            return
        ds = ds.load()
    ds = ds.drop_vars("state__members")
    replace_directory(
        cycle_path,
        lambda d: ds.to_zarr(d, mode="w", consolidated=True, zarr_format=2),
        kind=CYCLE_KIND,
        overwrite=True,
        metadata={**{k: v for k, v in marker.items() if k != "kind"}, "members_dropped": True},
    )


def _state_from(ds: xr.Dataset) -> dict[str, torch.Tensor]:
    return {
        str(k)[len("state__") :]: torch.as_tensor(np.array(ds[k].values))
        for k in ds.data_vars
        if str(k).startswith("state__")
    }


def cycle(
    truth: xr.Dataset,
    network: Callable[..., xr.Dataset],
    *,
    method: CycleMethod,
    config: CycleConfig | dict | None = None,
    model: Any = None,
    store: str | Path | None = None,
    progress: bool | None = None,
    **legacy: Any,
) -> CycleRun:
    """Cycle a method every model step on a truth run; score it, write it, resume it.

    Parameters
    ----------
    truth : xarray.Dataset
        Truth run (the model's channels and grid) covering ``start − (lead_steps + 1)·Δ``
        to the end of the last window.
    network : callable ``(truth, times, *, cycle, model) -> observations``
        Draws the observations of one window (``times``: its slot times), e.g.
        :class:`RadiosondeNetwork`. Its ``settings()`` (if any) guard a resumed run.
    method : CycleMethod
        :class:`En4DVarMethod`, :class:`LETKFMethod`, :func:`static_var`, or any subclass.
    config : CycleConfig or dict
        The run's options (:class:`CycleConfig`; it must give exactly one of ``days`` and
        ``n_cycles``):

        - ``days``, ``n_cycles``: the run's length (``days`` counts ``24 h / Δ`` cycles a
          day);
        - ``start``: the first analysis time (default: the first truth time that leaves
          room for the first background);
        - ``lead_steps`` (default 8): the first background (and the free run) is a forecast
          of this many steps from the truth;
        - ``seed`` (default 0): seeds the run's generator (perturbations); its state is
          saved with each cycle;
        - ``divergence_factor`` (default 5): stop when a channel's analysis error exceeds
          this many times its climatological std (the model's normalization std), or on
          NaN; ``math.inf``: no bound, only NaN stops the run (a model wrapped without
          statistics has no std to bound by: a finite factor is refused for it);
        - ``initial_error`` (default 0): white noise added to the first background pair
          (the same on both times), as this fraction of the model's normalization std
          (drawn from the run's generator): a perfect-model twin (Lorenz-96) would
          otherwise start from the truth itself (refused for a model without statistics);
        - ``save_states`` (default True): write the analysis, background and spread fields
          of each cycle (not only scores);
        - ``keep_members`` (default True): keep each cycle's ensemble members (the analysed
          input pair of every member, float64: about 90 MB a cycle for 160 members on the
          T21 grid). False: once a cycle is complete, the previous one is rewritten
          (atomically) without them, so that only the last complete cycle has them, which
          is all a resumed run needs; :func:`open_cycle_states` then refuses the cycles
          without them.

        It is saved with the store (the marker of ``store``) and in the scores' attrs
        (``config``).
    model : ForecastModel, str or path, optional
        Default: the shipped ``"fuxi-hs-t21-cycling-v6"`` (``CYCLING_MODEL``):
        ``fuxi-hs-t21`` with its output kept to the world's T21 wavenumbers, fine-tuned
        from perturbed inputs so that its climate does not drift over weeks of cycling
        (the earlier ``"fuxi-hs-t21-cycling"`` and ``"fuxi-hs-t21-cycling-v2"`` to
        ``"-v5"`` are shipped too). Its modules run in evaluation mode during the cycle
        (no dropout, as :func:`xfuxi.forecast`); each gets its own mode back when the
        cycle returns or fails.
    store : path, optional
        Zarr store (a directory) written one cycle at a time; an existing store of the
        same settings is resumed from its last complete cycle (its settings and
        fingerprints, docs/cycling.md "The store"). A store that holds no complete cycle
        and nothing but what xfuxi wrote takes this run's settings.
    progress : bool, optional
    **legacy
        The old keyword arguments (``days=``, ``n_cycles=``, ``start=``, ``lead_steps=``,
        ``seed=``, ``divergence_factor=``, ``initial_error=``, ``save_states=``: each a
        field of :class:`CycleConfig`) still work, with a ``DeprecationWarning``.

    Returns
    -------
    CycleRun

    Raises
    ------
    CycleDivergedError
        NaN or an error beyond the bound; every complete cycle stays in the store.
    TypeError
        A ``method`` that is not a :class:`CycleMethod`, or a ``network`` that cannot be
        called; a method whose ``settings()`` are not a dict ready for JSON (before
        anything is written), or whose ``start``, ``analyse``, ``no_observations`` or
        ``forecast`` return what is not a dict of tensors / a :class:`CycleAnalysis`
        (at the cycle that does, with or without a store; named).
    NotImplementedError
        A method that does not define ``settings()`` or ``analyse()`` (named).
    ValueError
        A store written with different settings (named), by another method class (a
        subclass too; stores of earlier releases, which did not record it, are not
        compared) or without its ``run.json``; a truth that lacks a channel of the model or
        holds NaN or infinite values at a time the run needs (named, with the first such
        time); a :class:`RadiosondeNetwork` (also an ``ImagerSondeNetwork``'s) whose
        ``variables`` or ``error`` name one the model has no channel of (named); a default
        taken from the model's normalization std where the model has none (a model wrapped
        without ``stats``: std 1 in each channel's units, no physical scale; the channels
        named, with the argument to give instead): a finite ``divergence_factor``, an
        ``initial_error`` above 0, a network's observation error
        (``RadiosondeNetwork(error=...)``), the method's Perlin std
        (``perturbation_std`` of ``background_error`` or ``initial``, or a ``spread``). All
        are checked before anything is written. An analysis (``(C, H, W)``) or state
        (``"pair"`` ``(2, C, H, W)``, tensors without gradient) of a custom method that
        breaks the interface, at the cycle that returns it (named).

    Examples
    --------
    Two cycles of a 10-member LETKF on a Lorenz-96 twin:

    >>> from xfuxi.assimilation.config import BackgroundError, LocalizationOptions
    >>> from xfuxi.assimilation.letkf import LETKFOptions
    >>> from xfuxi.experiments.lorenz96 import Lorenz96Network, lorenz96_truth
    >>> from xfuxi.models.lorenz96 import lorenz96_model
    >>> model, truth = lorenz96_model(), lorenz96_truth(n_states=8, seed=1)
    >>> method = LETKFMethod(options=LETKFOptions(n_members=10, qc_threshold=None),
    ...                      localization=LocalizationOptions(length_scale=4.0, n_points=40),
    ...                      initial=BackgroundError(amplitude=1.0, wavelength=1, octaves=1,
    ...                                              perturbation_std=(1.0,)))
    >>> config = CycleConfig(n_cycles=2, lead_steps=2, initial_error=1.0)
    >>> options = dict(method=method, model=model, config=config, progress=False)
    >>> run = cycle(truth, Lorenz96Network(seed=2), **options)
    >>> s = run.scores
    >>> s.sizes["time"], bool((s.analysis_error < s.background_error).all())
    (2, True)
    >>> again = truth.fuxi.cycle(Lorenz96Network(seed=2), **options)  # through the accessor
    >>> bool(again.scores["analysis_error"].equals(s["analysis_error"]))
    True
    """
    from tqdm.auto import tqdm

    from ..data.schema import check_state_dims, require_dataset, validate
    from ..models.registry import resolve_model
    from ..options import progress_enabled

    cfg = config_with_legacy(CycleConfig, config, legacy, "cycle")
    days, n_cycles, start, lead_steps = cfg.days, cfg.n_cycles, cfg.start, cfg.lead_steps
    seed, divergence_factor, initial_error = cfg.seed, cfg.divergence_factor, cfg.initial_error
    save_states = cfg.save_states
    keep_members = cfg.keep_members
    # a name or directory loaded; a cascade, or what is no model (a number), refused by name
    model = resolve_model(CYCLING_MODEL if model is None else model)
    require_dataset(truth, "the truth")  # (a DataArray: a bare AttributeError later)
    if store is not None and not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store must be a path (str or os.PathLike); got {type(store).__name__}")
    if not isinstance(method, CycleMethod):
        raise TypeError(f"method must be a CycleMethod; got {type(method).__name__}")
    if not callable(network):
        raise TypeError(
            "network must be callable as network(truth, times, *, cycle, model) -> "
            f"observations (e.g. RadiosondeNetwork()); got {type(network).__name__}"
        )
    method.check_model(model)
    if (days is None) == (n_cycles is None):
        raise ValueError("give exactly one of days and n_cycles")
    step = pd.Timedelta(model.timestep)
    if n_cycles is None:
        exact = float(days) * pd.Timedelta("1D") / step
        n_cycles = int(round(exact))
        if abs(exact - n_cycles) > 1e-9 * max(1.0, exact):  # 0.3 days ran 1 cycle silently
            whole = max(n_cycles, 1)
            hours = step / pd.Timedelta("1h")
            raise ValueError(
                f"days={days!r} is {exact:g} cycles of {hours:g} h; give a whole number of "
                f"cycles (days={whole * step / pd.Timedelta('1D'):g} for {whole}) or n_cycles"
            )
    if n_cycles < 1:
        raise ValueError(f"the run needs at least one cycle; got n_cycles={n_cycles}")
    truth = validate(truth, require_time=True)
    model_vars = {str(v) for v, _ in model.channels}
    check_state_dims(
        truth[[v for v in truth.data_vars if str(v) in model_vars]],
        "the truth's states",
        "a twin experiment's truth is one state per time: select a member (truth.isel(number=0))",
    )
    times = pd.DatetimeIndex(truth["time"].values)
    t0 = times[0] + (lead_steps + 1) * step if start is None else pd.Timestamp(start)
    last = t0 + (n_cycles - 1 + method.n_slots - 1) * step
    if t0 - (lead_steps + 1) * step < times[0] or last > times[-1]:
        raise ValueError(
            f"truth covers {times[0]} to {times[-1]}; the run needs "
            f"{t0 - (lead_steps + 1) * step} to {last}"
        )
    needed = pd.date_range(t0 - (lead_steps + 1) * step, last, freq=step)
    absent = needed.difference(times)
    if absent.size:
        raise ValueError(
            f"the truth lacks {absent.size} of the {needed.size} times the run needs, every "
            f"{step} from {needed[0]} to {needed[-1]} (first missing: {absent[0]}); "
            + (f"start={t0} is not one of the truth's times on that step"
               if start is not None and t0 not in times else "give a truth on the model's step")
        )  # fmt: skip
    _check_truth(truth, model, needed)  # before the store is made: nothing written for it
    for net in (network, getattr(network, "radiosondes", None)):  # (ImagerSondeNetwork's)
        if isinstance(net, RadiosondeNetwork):
            observed, _ = net.observed(truth, model)  # variables the model lacks: refused
            net.errors(model, observed)  # (before the store) and errors without a scale
    _check_scales(model, cfg)
    settings = _settings(method, network, model, t0, lead_steps, seed, initial_error)
    settings["method_class"] = _method_classes(method)
    if not isinstance(method.name, str) or not method.name.strip():  # written in the store
        raise TypeError(f"the method's name must be a non-empty string; got {method.name!r}")
    settings["fingerprints"] = _fingerprints(model, truth, t0)
    settings["fingerprints"].update({f"method.{k}": v for k, v in method.fingerprints().items()})
    clim_std = np.asarray(model.stats.std, dtype="float64")
    bound = divergence_factor * clim_std  # (inf: no bound)
    shape = (len(model.channels), *(int(n) for n in model.grid_shape))
    weights = _grid_weights(model)
    names = _channel_names(model)
    path = None if store is None else Path(store).expanduser()
    done: list[int] = []
    generator = torch.Generator().manual_seed(int(seed))
    lock = None
    if path is not None:
        lock, done = _open_store(path, settings, method, cfg, n_cycles)
    # the forecasts and analyses in evaluation mode (no dropout: a seeded run is
    # reproducible); each module's own mode is given back at the end, also on an error
    restore_modes = _evaluation_mode(model)
    try:
        rows: list[xr.Dataset] = []
        if done:
            # each cycle read whole (chunks=None: no dask graph per variable, half the time
            # of a resume, whose cost grows with the cycles stored)
            rows = [
                _scores_only(xr.open_zarr(path / "cycles" / f"{c:06d}.zarr", chunks=None))  # type: ignore[operator]
                for c in done
            ]
            first = done[-1] + 1
            if first < n_cycles:  # cycles left to run: the state after the last complete one
                last = path / "cycles" / f"{done[-1]:06d}.zarr"  # type: ignore[operator]
                last_ds = xr.open_zarr(last, chunks=None).load()
                state = method.forecast(_state_from(last_ds), model=model)
                _check_state(method, state, "forecast()", shape)
                free = torch.as_tensor(last_ds["free_pair"].values)
                free = torch.stack([free[1], _step(model, free[None])[0]])
                generator.set_state(torch.as_tensor(last_ds["generator_state"].values))
                log.info("resuming %s at cycle %d", path, first)
        else:
            ta = t0 - lead_steps * step
            pair = _stack(truth, model, [ta - step, ta])
            traj = [pair[0], pair[1]]
            for _ in range(lead_steps):
                traj.append(_step(model, torch.stack(traj[-2:])[None])[0])
            background = torch.stack(traj[-3:])
            if initial_error > 0:
                std = torch.as_tensor(np.asarray(model.stats.std, dtype="float64"))
                noise = torch.randn(
                    background.shape[1:], generator=generator, dtype=torch.float64
                ) * (initial_error * std.view(-1, 1, 1))
                background = background + noise
            state = method.start(background, model=model, generator=generator)
            _check_state(method, state, "start()", shape)
            free = background[1:].clone()
            first = 0
        bar = tqdm(
            range(first, n_cycles),
            desc=f"{method.name} cycles",
            disable=not progress_enabled(progress),
            initial=first,
            total=n_cycles,
        )
        for c in bar:
            tic = _time.perf_counter()
            t = t0 + c * step
            slot_times = [t + k * step for k in range(method.n_slots)]
            kept = f"; the {c} complete cycle(s) are kept in {path}" if path is not None else ""
            _check_forecast(state, names, f"cycle {c} at {t} diverged", kept)
            slots, n_given, counts = method.observe(
                network, truth, slot_times, cycle=c, model=model
            )
            why = f"no usable observation in the window (rejected: {counts})" if not slots else ""
            res: CycleAnalysis | None = None
            made_by = "analyse()"
            if slots:
                try:
                    res = method.analyse(state, slots, model=model, generator=generator)
                except ObservationsRejectedError as error:  # every observation failed the QC
                    # "all N observations failed the background check"
                    why = f"{error}".split(":")[0]
                except Exception as error:
                    # the model may blow up inside the window (4D slots run it): then the failure
                    # is a divergence, named as such; any other error is the error it is
                    with torch.no_grad():
                        ahead = _step(model, state["background"][1:][None])
                    if bool(torch.isfinite(ahead).all()):
                        raise
                    raise CycleDivergedError(
                        f"cycle {c} at {t} diverged: the analysis failed ({type(error).__name__}: "
                        f"{str(error)[:120]}) and the model's forecast from the background holds "
                        f"NaN or infinite values (the forecast model blew up){kept}"
                    ) from error
                if res is not None and res.rejected:  # the method used none of them
                    why = res.rejected
            if why:
                warnings.warn(
                    f"cycle {c} at {t}: {why}; the analysis is the background",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )
                if res is None:
                    res = method.no_observations(state)
                    made_by = "no_observations()"
            _check_analysis(method, res, made_by, shape)
            bg = state["background"][2]
            tr = _stack(truth, model, [t])[0]
            a_err = _area_rms(res.analysis - tr, weights)
            bad = ~np.isfinite(a_err) | (a_err > bound)
            if bad.any():
                i = int(np.nonzero(bad)[0][0])
                raise CycleDivergedError(
                    f"cycle {c} at {t} diverged: the {names[i]} analysis error is {a_err[i]:.4g} "
                    f"(bound {bound[i]:.4g} = {divergence_factor:g} × its climatological std)"
                    + kept
                )
            row = _row(c, t, res, bg, free[1], tr, weights, names, n_given)
            row["wall_time_s"] = ("time", [_time.perf_counter() - tic])
            row["no_observations"] = ("time", [bool(why)])
            if path is not None:
                full = row.copy()
                full["free_pair"] = (
                    ("pair_time", "channel", "latitude", "longitude"),
                    free.numpy(),
                )
                full["generator_state"] = ("generator_byte", generator.get_state().numpy())
                full.update(_state_to_vars(res.state))
                if save_states:
                    states = torch.stack([res.analysis, bg])
                    full["analysis_state"] = (
                        ("time", "channel", "latitude", "longitude"),
                        res.analysis[None].numpy(),
                    )
                    full["background_state"] = (
                        ("time", "channel", "latitude", "longitude"),
                        states[1:].numpy(),
                    )
                    if res.spread is not None:
                        full["spread_state"] = (
                            ("time", "channel", "latitude", "longitude"),
                            res.spread[None].numpy(),
                        )
                    full = full.assign_coords(
                        latitude=np.asarray(model.latitude), longitude=np.asarray(model.longitude)
                    )
                full.attrs["method"] = method.name
                replace_directory(
                    path / "cycles" / f"{c:06d}.zarr",
                    lambda d, ds=full: ds.to_zarr(d, mode="w", consolidated=True, zarr_format=2),
                    kind=CYCLE_KIND,
                    # the model's step: the offset of the input pair (one cycle cannot tell it)
                    metadata={"cycle": c, "time": str(t), "step_hours": step / pd.Timedelta("1h")},
                )
                if not keep_members and c > 0:
                    _drop_members(path / "cycles" / f"{c - 1:06d}.zarr")
            rows.append(row)
            state = method.forecast(res.state, model=model)
            _check_state(method, state, "forecast()", shape)
            free = torch.stack([free[1], _step(model, free[None])[0]])
            # the analysis error in units of each channel's climatological std, averaged
            # (the channels' own units differ: m² s⁻², K, m s⁻¹, Pa)
            scaled = a_err / clim_std
            bar.set_postfix(analysis_error=f"{float(np.nanmean(scaled)):.3g} clim. std")
        out = _with_channel_units(_concat_rows(rows)) if rows else xr.Dataset()
        out.attrs.update(
            method=method.name, settings=json.dumps(settings, sort_keys=True), config=cfg.to_json()
        )
        return CycleRun(scores=out, store=path)
    finally:
        restore_modes()
        if lock is not None:  # the store is another run's to resume now
            lock.release()


def _check_truth(truth: xr.Dataset, model: Any, times: pd.DatetimeIndex) -> None:
    """Refuse a truth that lacks a channel of the model or holds NaN or infinite values at
    a time the run needs, naming the channel and the first such time (otherwise a missing
    value is met as an analysis that diverged, and a missing variable after the store is
    made)."""
    from ..data.channels import stack
    from ..data.schema import SchemaError

    names = _channel_names(model)
    for i in range(0, len(times), 32):  # a few times at once: a long truth is not loaded whole
        chunk = times[i : i + 32]
        try:
            arr = stack(truth.sel(time=list(chunk)), model.channels)
        except SchemaError as err:
            raise ValueError(f"the truth lacks a channel of the model: {err}") from None
        values = np.asarray(arr.transpose("time", "channel", "latitude", "longitude").values)
        finite = np.isfinite(values).reshape(values.shape[0], values.shape[1], -1).all(-1)
        if not finite.all():
            k, j = (int(v) for v in np.argwhere(~finite)[0])
            raise ValueError(
                f"the truth holds missing (NaN) or infinite values in {names[j]!r} at "
                f"{chunk[k]}, a time the run needs ({times[0]} to {times[-1]}): fill "
                "them, or start the run after them"
            )


def _lock_store(path: Path) -> OutputLock:
    """Lock the cycling store at ``path`` for this run: at once, or
    :class:`~xfuxi.files.OutputInUseError` naming the store and the run that holds it.

    Raises ``FileNotFoundError`` where the store is gone meanwhile."""
    for _ in range(10):
        lock = lock_output(path / STORE_LOCK, what=f"the cycling store {path}")
        if lock.holds(path / STORE_LOCK):
            return lock
        lock.release()  # the store was replaced meanwhile (by a run that holds it): again
    raise OutputInUseError(f"the cycling store {path} keeps being replaced by another run")


def _open_store(
    path: Path, settings: dict, method: CycleMethod, cfg: CycleConfig, n_cycles: int
) -> tuple[OutputLock | None, list[int]]:
    """Create the cycling store at ``path`` or check it for resumption, holding its lock
    (for as long as the run lasts: the caller releases it); the complete cycles to resume.

    The lock is taken before the store is judged (a store of no cycle may be another run's
    first cycle under way), and a new store is locked before it is renamed into place, so
    that a second run on the store fails at once, never mixes its settings or cycles in."""
    keep_members = cfg.keep_members
    for _ in range(5):
        marker = read_marker(path) if path.exists() else None
        if marker is not None and marker.get("kind") != STORE_KIND:
            raise ValueError(f"{path} is not a cycling store (its kind is {marker['kind']!r})")
        lock = None
        if marker is not None:
            try:
                lock = _lock_store(path)
            except FileNotFoundError:
                continue  # the store went (was replaced) meanwhile: look again
        try:
            # a store of no cycle (a run that failed before its first one left it) is
            # replaced: nothing in it but what xfuxi wrote, no settings of a cycle to keep
            empty = marker is not None and _holds_no_cycle(path)
            if empty:
                log.info("%s holds no complete cycle: its settings are replaced", path)
            if marker is None or empty:
                new: list[OutputLock] = []

                def write(d: Path, new: list[OutputLock] = new) -> None:
                    # locked before it is renamed into place: no moment without a holder
                    new.append(lock_output(d / STORE_LOCK, what=f"the cycling store {path}"))
                    atomic_write_json(d / "run.json", settings)

                try:
                    replace_directory(
                        path,
                        write,
                        kind=STORE_KIND,
                        overwrite=empty,
                        metadata={
                            "method": method.name,
                            "config": cfg.to_dict(),
                            # (not a setting: a resume on another count is warned of)
                            "torch_threads": torch.get_num_threads(),
                        },
                    )
                except OutputExistsError:
                    for held in new:
                        held.release()
                    appeared = read_marker(path) if marker is None else None
                    if appeared is not None and appeared.get("kind") == STORE_KIND:
                        continue  # another run made the store meanwhile: lock it, or fail
                    raise
                except BaseException:
                    for held in new:
                        held.release()
                    raise
                if lock is not None:
                    lock.release()  # the store it locked was replaced by the new one
                return new[0], []
            run_json = path / "run.json"
            if not run_json.is_file():
                raise ValueError(
                    f"{path} is a cycling store without its settings file {run_json}: its "
                    "cycles cannot be checked against this run's settings, so it is not "
                    "resumed; give another store"
                )
            old = _read_settings(path)
            new_settings = json.loads(json.dumps(settings))
            # the method's class, compared on its own (a script's class run as __main__ is
            # the same class imported); not recorded by earlier releases: not compared
            now_classes = new_settings.pop("method_class", None)
            stored_classes = old.pop("method_class", None)
            if stored_classes is not None and now_classes is not None:
                other = _class_differences(stored_classes, now_classes)
                if other:
                    raise ValueError(
                        f"{path} holds a run of another cycling method class; refusing to mix "
                        "two methods in one store (their settings may agree while they "
                        "observe or analyse differently): "
                        + "; ".join(other)
                        + ". Give another store, or resume with the stored class"
                    )
            if "fingerprints" not in old:  # a store of an earlier release: not recorded
                new_settings.pop("fingerprints")
            else:  # a fingerprint that an earlier release did not record
                for key in set(new_settings["fingerprints"]) - set(old["fingerprints"]):
                    new_settings["fingerprints"].pop(key)
            diff = _differences(old, new_settings)
            if diff:
                raise ValueError(
                    f"{path} holds a run with different settings; refusing to mix them: "
                    + "; ".join(diff)
                    + ". Give another store, or the same settings to resume"
                )
            threads = marker.get("torch_threads")  # (not recorded by earlier releases)
            if threads is not None and threads != torch.get_num_threads():
                warnings.warn(
                    f"{path} was started with {threads} torch thread(s) and is resumed with "
                    f"{torch.get_num_threads()}: its sums round differently, so the resumed "
                    "cycles are not bit for bit those of an uninterrupted run (about 1e-7 "
                    "relative at first); torch.set_num_threads(" + str(threads) + ") resumes "
                    "it identically",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )
            # a killed run may have left a cycle's temporary copy (removed) or, killed while
            # dropping a cycle's members, that cycle aside (put back)
            remove_stale_temporaries(path / "cycles", prefixes=tuple("0123456789"))
            done = _complete_cycles(path)
            if not keep_members:  # members a killed run had not dropped yet
                for c in done[:-1]:
                    _drop_members(path / "cycles" / f"{c:06d}.zarr")
            if len(done) > n_cycles:  # the run asked for fewer: its first n_cycles
                log.info("%s holds %d cycles; returning the first %d", path, len(done), n_cycles)
                done = done[:n_cycles]
            return lock, done
        except BaseException:
            if lock is not None:
                lock.release()
            raise
    raise OutputInUseError(
        f"the cycling store {path} keeps being made or replaced by another run meanwhile"
    )


def _holds_no_cycle(path: Path) -> bool:
    """Whether a cycling store holds nothing but its marker, its settings and no cycle: what
    a run that failed before its first cycle left (a killed writer's temporaries removed)."""
    cycles = path / "cycles"
    if cycles.is_dir():
        remove_stale_temporaries(cycles, prefixes=tuple("0123456789"))
        if any(cycles.iterdir()):
            return False
    elif cycles.exists() or cycles.is_symlink():
        return False
    return {p.name for p in path.iterdir()} <= {MARKER, "run.json", "cycles", STORE_LOCK}


def _check_forecast(state: dict[str, torch.Tensor], names: list[str], what: str, kept: str) -> None:
    """Raise :class:`CycleDivergedError` where the background or a member of a cycle holds
    NaN or inf (a model that blew up), naming the first channel that does."""
    for key, label in (("background", "background"), ("members", "members' forecasts")):
        x = state.get(key)
        if x is None or not torch.is_tensor(x) or x.ndim < 3:
            continue
        finite = torch.isfinite(x)
        if bool(finite.all()):
            continue
        bad = (~finite).movedim(-3, 0).reshape(x.shape[-3], -1).any(1)
        i = int(torch.nonzero(bad)[0])
        raise CycleDivergedError(
            f"{what}: the {label} hold(s) NaN or infinite values in {names[i]} (the forecast "
            f"model blew up){kept}"
        )


def _row(
    c: int,
    t: Any,
    res: CycleAnalysis,
    bg: torch.Tensor,
    free: torch.Tensor,
    truth: torch.Tensor,
    weights: torch.Tensor,
    names: list[str],
    n_obs: int,
) -> xr.Dataset:
    def rms_norm(x: torch.Tensor | None) -> float:
        if x is None or res.error is None or x.numel() == 0:
            return float("nan")
        return float(((x / res.error) ** 2).mean().sqrt())

    def desroziers(kind: str) -> float:
        """Desroziers et al. (2005), relative to the assumed R: E[(o−a)(o−b)] / σo²
        estimates R, E[(a−b)(o−b)] / σo² estimates H B Hᵀ (both 1 and the method's
        HBHᵀ/σo² when the assumed statistics are right)."""
        omb, oma = res.omb, res.oma
        if omb is None or oma is None or res.error is None or omb.numel() == 0:
            return float("nan")
        first = oma if kind == "r" else omb - oma
        return float((first * omb / res.error**2).mean())

    nan = np.full(len(names), np.nan)
    d = res.diagnostics
    n_used = res.n_obs if res.n_obs is not None else 0 if res.omb is None else res.omb.numel()
    row = xr.Dataset(
        {
            "analysis_error": (("time", "channel"), _area_rms(res.analysis - truth, weights)[None]),
            "background_error": (("time", "channel"), _area_rms(bg - truth, weights)[None]),
            "free_error": (("time", "channel"), _area_rms(free - truth, weights)[None]),
            "spread": (
                ("time", "channel"),
                (nan if res.spread is None else _area_rms(res.spread, weights))[None],
            ),
            "omb_rms": ("time", [rms_norm(res.omb)]),
            "oma_rms": ("time", [rms_norm(res.oma)]),
            "desroziers_r": ("time", [desroziers("r")]),
            "desroziers_hbh": ("time", [desroziers("hbh")]),
            "n_obs": ("time", [int(n_used)]),
            "n_obs_given": ("time", [int(n_obs)]),
            "cost_initial": ("time", [d.get("cost_initial", np.nan)]),
            "cost_final": ("time", [d.get("cost_final", np.nan)]),
            "iterations": ("time", [d.get("iterations", np.nan)]),
            "inflation": ("time", [d.get("inflation", np.nan)]),
            "cycle": ("time", [int(c)]),
        },
        coords={"time": [np.datetime64(pd.Timestamp(t), "ns")], "channel": names},
    )
    for name, what in (("omb_rms", "O-B"), ("oma_rms", "O-A")):  # not in physical units
        row[name].attrs = {"long_name": f"RMS of ({what})/σo over the cycle's observations",
                           "units": "1"}  # fmt: skip
    if "static_inflation" in d:  # methods with a scaled static B
        row["static_inflation"] = ("time", [d["static_inflation"]])
        estimate = d.get("static_inflation_estimate", float("nan"))
        row["static_inflation_estimate"] = ("time", [estimate])
    if res.extra is not None:
        row = row.merge(res.extra.expand_dims(time=row["time"].values))
    return row


def _concat_rows(rows: list[xr.Dataset]) -> xr.Dataset:
    """Rows along ``time``; a diagnostic that older cycles of a store lack is NaN there."""
    names = {v: r[v] for r in rows for v in r.data_vars}
    full = []
    for r in rows:
        missing = {
            v: xr.full_like(da.isel(time=[0]), np.nan, dtype="float64").assign_coords(
                time=r["time"].values
            )
            for v, da in names.items()
            if v not in r.data_vars
        }
        full.append(r.assign(missing) if missing else r)
    return xr.concat(full, dim="time")


def _scores_only(ds: xr.Dataset) -> xr.Dataset:
    keep = [
        v
        for v in ds.data_vars
        if "time" in ds[v].dims
        and not str(v).startswith("state__")
        and not str(v).endswith("_state")
    ]
    return ds[keep].drop_vars(["latitude", "longitude"], errors="ignore").load()


@_doc
def open_cycle(store: str | Path) -> xr.Dataset:
    """A cycling store's complete cycles as one Dataset (dim ``time``): scores and fields.

    Parameters
    ----------
    store : str or path
        A store written by :func:`cycle` (possibly still being written: only its complete
        cycles are read).

    Returns
    -------
    xarray.Dataset
        The variables of every complete cycle with a ``time`` dim (the analysis time),
        concatenated along it; ``attrs["settings"]`` holds the run's settings (the store's
        ``run.json``, as JSON text).

    Raises
    ------
    ValueError
        ``store`` is not a cycling store written by :func:`cycle`, or holds no complete
        cycle.

    Examples
    --------
    A one-cycle LETKF run on a Lorenz-96 twin, written to a store and read back:

    >>> import pathlib, tempfile
    >>> from xfuxi.assimilation.config import BackgroundError, LocalizationOptions
    >>> from xfuxi.assimilation.letkf import LETKFOptions
    {{example_letkf}}
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "letkf.zarr"
    >>> run = cycle(lorenz96_truth(n_states=8, seed=1), Lorenz96Network(seed=2),
    ...             method=method, model=lorenz96_model(), store=store, progress=False,
    ...             config=CycleConfig(n_cycles=1, lead_steps=2, initial_error=1.0))
    >>> back = open_cycle(store)
    >>> back.sizes["time"], bool(back["analysis_error"].equals(run.scores["analysis_error"]))
    (1, True)
    """
    path = _cycling_store(store)

    def read() -> list[xr.Dataset]:
        done = _readable_cycles(path)
        if not done:
            raise ValueError(f"{path} holds no complete cycle")
        parts = []
        for k, cycle_path in enumerate(done):
            ds = xr.open_zarr(cycle_path)
            keep = [v for v in ds.data_vars if "time" in ds[v].dims]
            # read now what a run may still rewrite: the last cycle (its members dropped
            # when the next completes) and one read from its set-aside copy
            last = k == len(done) - 1 or cycle_path.name == "previous"
            parts.append(ds[keep].load() if last else ds[keep])
        return parts

    # the store's zarr-v2 codecs are its own: kept, ``out.to_zarr(...)`` in zarr's current
    # format would fail
    out = _with_channel_units(_concat_rows(_read_while_written(read)).drop_encoding())
    _read_settings(path)  # a damaged settings file refused, not returned as text
    out.attrs["settings"] = (path / "run.json").read_text()
    return out


@_doc
def cycle_initial_conditions(
    store: str | Path, time: Any = None, *, member: int | None = None
) -> xr.Dataset:
    """The analysed input pair of one cycle as initial conditions: ready for a forecast.

    Parameters
    ----------
    store : str or path
        A store written by :func:`cycle`.
    time : datetime-like, optional
        The cycle's analysis time ``t`` (default: the last complete cycle's).
    member : int, optional
        One ensemble member (default: the members' mean, the analysis of an ensemble
        method; a method without members keeps its analysis pair).

    Returns
    -------
    xarray.Dataset
        Times ``t − Δ`` and ``t`` (the model's input pair as the cycle analysed it), one
        variable per field on ``level`` (hPa), ``latitude``, ``longitude``, in physical
        units: the analysis layout of :func:`xfuxi.forecast` and :func:`xfuxi.ensemble`
        (``xfuxi.forecast(ic, model=...)`` starts one forecast from it).

    Raises
    ------
    ValueError
        As :func:`open_cycle_states`, a ``time`` that is not a date and time, no cycle at
        ``time``, or no such ``member``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from xfuxi.assimilation.config import BackgroundError, LocalizationOptions
    >>> from xfuxi.assimilation.letkf import LETKFOptions
    {{example_letkf}}
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "letkf.zarr"
    >>> _ = cycle(lorenz96_truth(n_states=8, seed=1), Lorenz96Network(seed=2),
    ...           method=method, model=lorenz96_model(), store=store, progress=False,
    ...           config=CycleConfig(n_cycles=2, lead_steps=2, initial_error=1.0))
    >>> ic = cycle_initial_conditions(store)
    >>> ic.sizes["time"], list(ic.data_vars)
    (2, ['x'])
    """
    from ..data.channels import parse_channel_name, unstack
    from ..data.schema import VARIABLES, canonical_order

    path = _cycling_store(store)
    if member is not None and (not is_integer(member) or int(member) < 0):
        raise ValueError(f"member must be an integer >= 0 or None; got {member!r}")
    if time is not None:  # a cycle's analysis time (parse_times: a number was read as 1970)
        time = parse_time(time, "time", error=ValueError)
    # one cycle read, not the whole run's members (gigabytes for a month of 80 members)
    pair, t, step, names, grid = _read_while_written(lambda: _cycle_pair(path, time, member))
    channels = [parse_channel_name(n) for n in names]
    pair = xr.DataArray(
        pair,
        dims=("time", "channel", "latitude", "longitude"),
        coords={"time": np.array([t - step, t], dtype="M8[ns]"), **grid},
    )
    out = unstack(pair, channels)
    for name in out.data_vars:
        if str(name) in VARIABLES:
            out[name].attrs["units"] = VARIABLES[str(name)][0]
    out.attrs = {"source": "xfuxi.cycle", "store": str(path), "analysis_time": str(t)[:19]}
    return _with_grid_units(out.transpose(*canonical_order(out.dims)))


def _cycle_pair(path: Path, time: Any, member: int | None) -> tuple:
    """The analysed pair ``(2, C, H, W)`` float64 of the cycle at ``time`` (default the
    last), its time, the model's step, the channel names and the grid's coordinates."""
    cycles = _readable_cycles(path)
    if not cycles:
        raise ValueError(f"{path} holds no complete cycle")
    markers = [read_marker(p) or {} for p in cycles]
    times = [pd.Timestamp(m["time"]) for m in markers]
    k = len(cycles) - 1 if time is None else None
    if time is not None:
        wanted = pd.Timestamp(time)
        if wanted not in times:
            raise ValueError(
                f"{path} has no complete cycle at {wanted}; its cycles are {times[0]} .. "
                f"{times[-1]}"
            )
        k = times.index(wanted)
    hours = markers[k].get("step_hours")
    if hours is not None:
        step = pd.Timedelta(hours=float(hours))
    else:  # stores written before cycles recorded it: cycles are one model step apart
        step = times[1] - times[0] if len(times) > 1 else pd.Timedelta(hours=6)
    with xr.open_zarr(cycles[k]) as ds:
        names = [str(n) for n in ds["channel"].values]
        grid = {d: ds[d].values for d in ("latitude", "longitude") if d in ds.coords}
        if member is None and "state__pair" in ds:  # the analysis: the members' mean
            pair = np.asarray(ds["state__pair"].values, dtype="float64")
        elif "state__members" in ds:
            x = ds["state__members"]
            if member is None:
                pair = np.asarray(x.values, dtype="float64").mean(axis=0)
            elif int(member) >= x.shape[0]:
                raise ValueError(f"member must be one of 0 .. {x.shape[0] - 1}; got {member!r}")
            else:
                pair = np.asarray(x[int(member)].values, dtype="float64")
        elif markers[k].get("members_dropped"):
            raise ValueError(
                f"the cycle at {times[k]} of {path} no longer has its members: the run kept "
                "only the last cycle's (CycleConfig(keep_members=False))"
            )
        else:
            raise ValueError(f"the cycle at {times[k]} of {path} holds no member {member!r}")
    return pair, np.datetime64(times[k], "ns"), np.timedelta64(step), names, grid


def open_cycle_states(
    store: str | Path, *, members: int | None = None, skip_days: float = 0.0
) -> xr.DataArray:
    """The analysed input pairs a cycling store carries, one per member and complete cycle.

    Each cycle of an ensemble method keeps its analysed members as model input pairs
    ``(x(t − Δ), x(t))`` (the LETKF's, the cycled-ensemble En4DVar's); a method without
    members keeps its analysis pair, read as a single member. These are the states the
    forecast model is started from in the cycle: the inputs of a model trained on its own
    cycled analyses (:func:`xfuxi.training.forecast.train_forecast`'s ``cycled_states``).

    Parameters
    ----------
    store : str or path
        A store written by :func:`cycle`.
    members : int, optional
        Keep the first ``members`` members of each cycle (default: all); a store's cycle
        with fewer is refused.
    skip_days : float
        Leave out the cycles of the first ``skip_days`` days (the spin-up from the first
        background).

    Returns
    -------
    xarray.DataArray
        ``(time, member, pair, channel, latitude, longitude)`` float32, in the model's
        channel order and physical units; ``time`` the analysis time ``t``, ``pair`` the
        offsets ``[-Δ, 0]`` of the two input times, ``channel`` the channel names,
        ``latitude`` and ``longitude`` the grid's.

    Raises
    ------
    TypeError
        A ``skip_days`` that is not a number.
    ValueError
        Not a cycling store, no complete cycle after ``skip_days``, ``members`` < 1 or
        more than a cycle holds (both counts named; a method without members holds one),
        or a cycle whose members the run did not keep (``CycleConfig(keep_members=False)``).
    """
    path = _cycling_store(store)
    if members is not None and (not is_integer(members) or members < 1):
        raise ValueError(f"members must be a positive integer or None; got {members!r}")
    if isinstance(skip_days, bool) or not isinstance(skip_days, (int, float, np.number)):
        raise TypeError(f"skip_days must be a number (days) >= 0; got {skip_days!r}")
    if not np.isfinite(skip_days) or skip_days < 0:
        raise ValueError(f"skip_days must be a finite number >= 0; got {skip_days!r}")
    return _read_while_written(lambda: _cycle_states(path, members, skip_days))


def _cycle_states(path: Path, members: int | None, skip_days: float) -> xr.DataArray:
    """:func:`open_cycle_states`' reading, once."""
    arrays, times, names, grid, marked_step = [], [], None, {}, None
    first, last = None, (0, None)
    for c, cycle_path in enumerate(_readable_cycles(path)):
        hours = (read_marker(cycle_path) or {}).get("step_hours")
        marked_step = pd.Timedelta(hours=float(hours)) if hours is not None else marked_step
        with xr.open_zarr(cycle_path) as ds:
            t = pd.Timestamp(ds["time"].values[0])
            first = t if first is None else first
            last = (c, t)
            if (t - first) / pd.Timedelta("1D") < skip_days:
                continue
            if "state__members" in ds:
                x = np.asarray(ds["state__members"].values, dtype="float32")
            elif (read_marker(cycle_path) or {}).get("members_dropped"):
                raise ValueError(
                    f"cycle {c} of {path} no longer has its members: the run kept only the "
                    "last cycle's (CycleConfig(keep_members=False))"
                )
            elif "state__pair" in ds:
                x = np.asarray(ds["state__pair"].values, dtype="float32")[None]
            else:
                raise ValueError(f"cycle {c} of {path} holds neither members nor an analysis pair")
            names = [str(n) for n in ds["channel"].values]
            grid = {d: ds[d].values for d in ("latitude", "longitude") if d in ds.coords}
        if members is not None and x.shape[0] < members:
            raise ValueError(
                f"members={members} asks for more members than cycle {c} of {path} holds "
                f"({x.shape[0]}); give members <= {x.shape[0]} or None (all)"
            )
        arrays.append(x if members is None else x[:members])
        times.append(t)
    if not arrays:
        raise ValueError(f"{path} holds no complete cycle after the first {skip_days:g} day(s)")
    n = min(a.shape[0] for a in arrays)
    states = np.stack([a[:n] for a in arrays])
    if states.ndim != 6 or states.shape[2] != 2 or states.shape[3] != len(names):
        raise ValueError(
            f"the states of {path} have shape {states.shape}; expected (time, member, 2, "
            f"{len(names)} channels, latitude, longitude)"
        )
    settings = _read_settings(path)
    # the input pair is one model step long: as the cycle recorded it, or (stores written
    # before it did) the cycles' spacing, one model step (6 h for a store of one cycle)
    if marked_step is not None:
        step = marked_step
    else:
        step = (last[1] - first) / last[0] if last[0] > 0 else pd.Timedelta(hours=6)
    return xr.DataArray(
        states,
        dims=("time", "member", "pair", "channel", "latitude", "longitude"),
        coords={
            "time": np.asarray(times, dtype="M8[ns]"),
            "pair": np.asarray([-step, pd.Timedelta(0)], dtype="m8[ns]"),
            "channel": names,
            **grid,  # the grid's coordinates (they were dropped)
        },
        name="cycled_states",
        attrs={"store": str(path), "method": settings.get("method", {}).get("method", "")},
    )
