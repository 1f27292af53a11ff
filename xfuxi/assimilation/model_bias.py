"""Online correction of the forecast model's systematic error in a cycle.

A machine-learned forecast model that drifts from the climate of the atmosphere it learned
puts a systematic error into every background of a cycle, and an analysis with sparse
observations removes only part of it, so the analysis error settles on a quasi-stationary
pattern (docs/cycling.md). :class:`BiasCorrectedMethod` wraps any cycling method and
estimates that error from the analysis increments as the cycle goes, the way Dee and da
Silva (1998, "Data assimilation in the presence of forecast bias", Q. J. R. Meteorol. Soc.
124) and Danforth, Kalnay and Miyoshi (2007, "Estimating and correcting global weather
model error", Mon. Wea. Rev. 135) do: the model step becomes

    x_b(t + Δ) = M(x_a(t − Δ), x_a(t)) + b_k

and after each analysis the estimate takes a fraction ``rate`` of the increment,

    b_{k+1} = b_k + rate · P(x_a − x_b)

where ``P`` keeps the large scales (spherical harmonics ``l ≤ truncation``, or the whole
field), from the ``spinup``-th analysis on. While the mean increment is not zero the
estimate moves, so in a steady state the backgrounds are unbiased where the observations
see them. The same ``b`` is added to every member's step. The estimate uses nothing but the
analyses, so it is legitimate in a real system; it lives in the method's state, is written
with each cycle and resumes with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..config import is_integer
from .cycle import CycleAnalysis, CycleMethod, _area_rms, _follow_inner_method, _grid_weights

__all__ = ["BiasCorrectedMethod"]

#: the keys of the bias estimate and of the number of analyses seen in a method's state
BIAS_KEY = "model_bias"
BIAS_COUNT = "model_bias_analyses"


def _inner_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k not in (BIAS_KEY, BIAS_COUNT)}


def _corrects_bias(method: Any, seen: frozenset[int] = frozenset()) -> bool:
    """Whether ``method`` is or wraps (at any depth) a :class:`BiasCorrectedMethod`."""
    if isinstance(method, BiasCorrectedMethod):
        return True
    if id(method) in seen:
        return False
    seen = seen | {id(method)}
    return any(
        isinstance(v, CycleMethod) and _corrects_bias(v, seen)
        for k, v in vars(method).items()
        if not k.startswith("_")
    )


def _outer(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: state[k] for k in (BIAS_KEY, BIAS_COUNT)}


@dataclass
class BiasCorrectedMethod(CycleMethod):
    """A cycling method whose forecast step carries an online estimate of the model's bias.

    Parameters
    ----------
    method : CycleMethod
        The assimilation (LETKF, hybrid gain, En4DVar, FuXi-DA, ...); it sees the
        corrected backgrounds and members and knows nothing of the correction.
    rate : float, default 0.1
        The fraction of each analysis increment added to the estimate, in ``(0, 1]``:
        ``1 / rate`` cycles is about the memory of the estimate, measured in analyses
        that see the error (docs/cycling.md, Correcting the model's bias in the cycle).
    truncation : int or None, default 10
        Keep the spherical harmonics ``l ≤ truncation`` of each increment (the planetary
        and synoptic scales, where the model's drift lies); None keeps the whole field.
    spinup : int, default 8
        The estimate starts after this many analyses (two days of 6-hour cycles): the
        first increments of a cycle correct the error of its first background, not the
        model's, and an estimate that learned them would carry them for as long as its
        memory.
    name : str, optional
        Name written in the store, the settings and the scores' ``attrs["method"]``;
        default (``""``): ``method``'s name followed by ``" + bias correction"``.

    Notes
    -----
    The per-cycle scores get ``model_bias`` (channel): the area-weighted RMS of the
    estimate after the cycle's analysis. Within a 4DVar window (``n_slots > 1``) the
    correction is not applied to the model run through the window.

    Examples
    --------
    >>> from xfuxi.assimilation.config import BackgroundError, LocalizationOptions
    >>> from xfuxi.assimilation.cycle import CycleConfig, LETKFMethod, cycle
    >>> from xfuxi.assimilation.letkf import LETKFOptions
    >>> from xfuxi.experiments.lorenz96 import Lorenz96Network, lorenz96_truth
    >>> from xfuxi.models.lorenz96 import lorenz96_model
    >>> letkf = LETKFMethod(options=LETKFOptions(n_members=10, qc_threshold=None),
    ...                     localization=LocalizationOptions(length_scale=4.0, n_points=40),
    ...                     initial=BackgroundError(amplitude=1.0, wavelength=1, octaves=1,
    ...                                             perturbation_std=(1.0,)))
    >>> method = BiasCorrectedMethod(letkf, rate=0.2, truncation=None, spinup=0)
    >>> run = cycle(lorenz96_truth(n_states=8, seed=1), Lorenz96Network(seed=2),
    ...             method=method, model=lorenz96_model(), progress=False,
    ...             config=CycleConfig(n_cycles=2, lead_steps=2, initial_error=1.0))
    >>> run.scores.attrs["method"]
    'LETKF + bias correction'
    >>> bool((run.scores["model_bias"] > 0).all())
    True
    """

    method: CycleMethod
    rate: float = 0.1
    truncation: int | None = 10
    spinup: int = 8
    name: str = ""

    def __post_init__(self) -> None:
        self._check()
        self._filters: dict[tuple, Any] = {}

    def _check(self) -> None:
        """Refuse bad settings: at construction and at each use, so that a field changed
        after construction is checked as well."""
        if not isinstance(self.method, CycleMethod):
            raise TypeError(f"method must be a CycleMethod; got {type(self.method).__name__}")
        if _corrects_bias(self.method):
            raise ValueError(
                "method already corrects the model's bias (it is or wraps a "
                "BiasCorrectedMethod); wrap the inner method once"
            )
        r = self.rate
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 1:
            raise ValueError(f"rate must be a number in (0, 1]; got {r!r}")
        t = self.truncation
        if t is not None and (not is_integer(t) or t < 0):
            raise ValueError(f"truncation must be None or an integer >= 0; got {t!r}")
        n = self.spinup
        if not is_integer(n) or n < 0:
            raise ValueError(f"spinup must be an integer >= 0; got {n!r}")
        if self._name is not None and not isinstance(self._name, str):
            raise TypeError(f"name must be a string; got {type(self._name).__name__}")

    def settings(self) -> dict[str, Any]:
        self._check()
        return {
            "method": self.name,
            "inner": self.method.settings(),
            "bias_rate": float(self.rate),
            "bias_truncation": None if self.truncation is None else int(self.truncation),
            "bias_spinup": int(self.spinup),
        }

    def _chunk(self) -> int:
        return self.method._chunk()

    def _project(self, x: torch.Tensor, model: Any) -> torch.Tensor:
        if self.truncation is None:
            return x
        from ..models.spectral import SpectralFilter

        lat = np.asarray(model.latitude, dtype="float64")
        lon = np.asarray(model.longitude, dtype="float64")
        key = (lat.tobytes(), lon.tobytes(), int(self.truncation))
        if key not in self._filters:
            self._filters[key] = SpectralFilter(lat, lon, int(self.truncation))
        return self._filters[key](x)

    def start(self, background, *, model, generator):
        self._check()
        self._remember(model)
        state = self.method.start(background, model=model, generator=generator)
        zero = torch.zeros_like(background[2], dtype=torch.float64)
        return {**state, BIAS_KEY: zero, BIAS_COUNT: torch.tensor(0, dtype=torch.int64)}

    def observe(self, network, truth, times, *, cycle, model):
        return self.method.observe(network, truth, times, cycle=cycle, model=model)

    def no_observations(self, state):
        res = self.method.no_observations(_inner_state(state))
        res.state = {**res.state, **_outer(state)}
        return self._with_diagnostics(res, state[BIAS_KEY])

    def analyse(self, state, slots, *, model, generator):
        self._check()
        self._remember(model)
        res = self.method.analyse(_inner_state(state), slots, model=model, generator=generator)
        seen = int(state[BIAS_COUNT])
        bias = state[BIAS_KEY]
        if seen >= self.spinup:
            increment = res.analysis.double() - state["background"][2].double()
            bias = bias + float(self.rate) * self._project(increment, model)
        count = torch.tensor(seen + 1, dtype=torch.int64)
        res.state = {**res.state, BIAS_KEY: bias, BIAS_COUNT: count}
        return self._with_diagnostics(res, bias)

    def _remember(self, model: Any) -> None:
        """The area weights of the model's grid, for the diagnostics."""
        self._weights = _grid_weights(model)

    def _with_diagnostics(self, res: CycleAnalysis, bias: torch.Tensor) -> CycleAnalysis:
        rms = _area_rms(bias, self._weights)
        extra = xr.Dataset({"model_bias": (("channel",), rms)})
        res.extra = extra if res.extra is None else res.extra.merge(extra)
        return res

    def forecast(self, state, *, model):
        self._check()
        self._remember(model)
        bias = state[BIAS_KEY]
        out = self.method.forecast(_inner_state(state), model=model)
        out = dict(out)
        bg = out["background"].clone()
        bg[2] = bg[2] + bias
        out["background"] = bg
        if "members" in out:
            members = out["members"].clone()
            members[:, 1] = members[:, 1] + bias[None]
            out["members"] = members
        out.update(_outer(state))
        return out


# ``name`` and ``n_slots`` follow the current inner method
_follow_inner_method(BiasCorrectedMethod, "bias correction")
