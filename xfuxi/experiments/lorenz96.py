"""Cycling (twin) experiments: truth → observations → background → analysis → repeat.

Both experiments use the same En4DVar core (:func:`xfuxi.assimilation.en4dvar.en4dvar_analysis`):
the background of each cycle is the forecast from the previous analysis; its ensemble is
the previous analysis plus fresh Perlin perturbations run one model step.
"""

from __future__ import annotations

import dataclasses
import logging
import time as _time
from typing import Any, Literal

import numpy as np
import xarray as xr

from ..assimilation.en4dvar import (
    BackgroundError,
    Minimiser,
    ObsSlot,
    QualityControl,
    en4dvar_analysis,
)
from ..assimilation.localization import localization
from ..config import Config, check_integers, check_number, config_with_legacy, field
from ..models.lorenz96 import lorenz96_model
from ..observations.operator import build_operator
from ..options import progress_enabled

__all__ = [
    "Lorenz96LETKFConfig",
    "Lorenz96Network",
    "Lorenz96TwinConfig",
    "lorenz96_letkf",
    "lorenz96_truth",
    "lorenz96_twin",
]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Lorenz96Config(Config):
    """What both Lorenz-96 experiments share: the run, the truth and its observations."""

    n_cycles: int = field(3000, help="cycles (one per model step of 0.05), burn-in included")
    burn_in: int = field(200, help="cycles left out of the time means")
    n_variables: int = field(40, help="Lorenz-96 size")
    forcing: float = field(8.0, help="Lorenz-96 forcing F")
    obs_error: float = field(1.0, help="observation-error std (every variable, every step)")
    n_members: int = field(200, help="ensemble size")
    localization_length: float | None = field(
        4.0, help="localization half-width in grid points (None: no localization)"
    )
    seed: int = field(0, help="seeds the truth, the observations and the perturbations")

    def __post_init__(self) -> None:
        check_integers(self, {"n_cycles": 1, "burn_in": 0, "n_variables": 4, "n_members": 2,
                              "seed": 0})  # fmt: skip
        # a zero or infinite error broke the LETKF's eigensolver or read as NaN members
        check_number(self, "obs_error", above=True)
        check_number(self, "forcing", low=-np.inf)
        check_number(self, "localization_length", above=True, finite=False, optional=True)
        if self.n_cycles <= self.burn_in:
            raise ValueError(f"n_cycles ({self.n_cycles}) must exceed burn_in ({self.burn_in})")


@dataclasses.dataclass(frozen=True)
class Lorenz96TwinConfig(_Lorenz96Config):
    """Settings of the Lorenz-96 En4DVar twin experiment (see :func:`lorenz96_twin`).

    Invalid values raise ``ValueError`` naming the field.

    Examples
    --------
    >>> cfg = Lorenz96TwinConfig(n_cycles=60, burn_in=20, n_members=40)
    >>> cfg.n_slots, cfg.amplitude, cfg.localization_kind
    (2, 0.1, 'gaspari_cohn')
    >>> Lorenz96TwinConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> Lorenz96TwinConfig(n_cycles=10, burn_in=10)
    Traceback (most recent call last):
    ...
    ValueError: n_cycles (10) must exceed burn_in (10)
    """

    n_slots: int = field(2, help="observation slots in the window (t0, t0 + 0.05, ...)")
    amplitude: float = field(
        0.1, help="perturbation std as a fraction of the climatological std of the truth"
    )
    wavelength: float = field(
        1.0, help="spatial scale of the perturbations in grid points (<= 1: white in space)"
    )
    localization_kind: Literal["gaspari_cohn", "gaussian"] = field(
        "gaspari_cohn", help="shape of the localization"
    )
    qc_threshold: float | None = field(5.0, help="background check (as for en4dvar_analysis)")
    max_iter: int = field(30, help="minimiser iterations (as for en4dvar_analysis)")
    gtol: float = field(1e-3, help="minimiser gradient tolerance (as for en4dvar_analysis)")

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        check_integers(self, {"n_slots": 1, "max_iter": 1})
        for label in ("amplitude", "wavelength", "gtol"):
            check_number(self, label, finite=False)
        if self.localization_kind not in ("gaspari_cohn", "gaussian"):
            raise ValueError(
                f"{owner}.localization_kind must be 'gaspari_cohn' or 'gaussian'; "
                f"got {self.localization_kind!r}"
            )


@dataclasses.dataclass(frozen=True)
class Lorenz96LETKFConfig(_Lorenz96Config):
    """Settings of the Lorenz-96 LETKF twin experiment (see :func:`lorenz96_letkf`).

    Invalid values raise ``ValueError`` naming the field (the LETKF options themselves are
    checked by :class:`~xfuxi.assimilation.letkf.LETKFOptions` when the run starts).

    Examples
    --------
    >>> cfg = Lorenz96LETKFConfig(inflation=1.03, rtps=0.0)
    >>> cfg.n_cycles, cfg.n_members
    (3200, 40)
    >>> Lorenz96LETKFConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    n_cycles: int = field(3200, help="cycles (one per model step of 0.05), burn-in included")
    n_members: int = field(40, help="ensemble size")
    inflation: float = field(1.0, help="multiplicative prior inflation (start value if adaptive)")
    rtps: float = field(0.5, help="relaxation to prior spread alpha in [0, 1]")
    adaptive_inflation: bool = field(False, help="estimate the inflation each cycle")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number(self, "inflation", above=True)
        if not 0.0 <= float(self.rtps) <= 1.0:  # as LETKFOptions (rtps=2 was accepted)
            raise ValueError(f"Lorenz96LETKFConfig.rtps must be in [0, 1]; got {self.rtps!r}")


def lorenz96_twin(
    *,
    config: Lorenz96TwinConfig | dict | None = None,
    progress: bool | None = None,
    **legacy: Any,
) -> xr.Dataset:
    """Lorenz-96 twin experiment: En4DVar observing every variable every step.

    Parameters
    ----------
    config : Lorenz96TwinConfig or dict, optional
        The experiment's settings (default ``Lorenz96TwinConfig()``):

        - ``n_cycles`` (default 3000): assimilation cycles (one per model step of 0.05 time
          units), burn-in included; ``burn_in`` (default 200): cycles left out of the time
          means;
        - ``n_variables``, ``forcing``: Lorenz-96 size and forcing;
        - ``obs_error`` (default 1): observation-error std (all variables observed at every
          step);
        - ``n_members`` (default 200); ``n_slots`` (default 2): observation slots in the
          window (t0, t0 + 0.05, ...);
        - ``amplitude`` (default 0.1): perturbation std as a fraction of the climatological
          std of the truth; ``wavelength`` (default 1): spatial scale of the perturbations
          in grid points (≤ 1: white in space);
        - ``localization_length`` (default 4): localization half-width in grid points
          (None: no localization); ``localization_kind`` (``"gaspari_cohn"`` or
          ``"gaussian"``);
        - ``qc_threshold``, ``max_iter``, ``gtol``: as for
          :func:`~xfuxi.assimilation.en4dvar.en4dvar_analysis`;
        - ``seed``.

        It is saved in the result's attrs (``config``).
    progress : bool, optional
        Progress bar over cycles.
    **legacy
        The old keyword arguments (``n_cycles=``, ``n_members=``, ...: each a field of
        :class:`Lorenz96TwinConfig`) still work, with a ``DeprecationWarning``.

    Returns
    -------
    xarray.Dataset
        Per cycle: ``analysis_rmse``, ``background_rmse``, ``iterations``; attrs with the
        time means after burn-in (``mean_analysis_rmse``, ``mean_background_rmse``), the
        settings and the wall time.

    Examples
    --------
    >>> cfg = Lorenz96TwinConfig(n_cycles=6, burn_in=2, n_members=20)
    >>> out = lorenz96_twin(config=cfg, progress=False)
    >>> out.sizes["cycle"], bool(out.attrs["mean_analysis_rmse"] > 0)
    (6, True)
    """
    import torch

    cfg = config_with_legacy(Lorenz96TwinConfig, config, legacy, "lorenz96_twin")
    t_start = _time.perf_counter()
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 40-variable state: thread hand-offs cost more than they save
    try:
        return _l96_run(
            cfg,
            progress=progress,
            t_start=t_start,
        )
    finally:
        torch.set_num_threads(n_threads)


def _result(
    cfg: _Lorenz96Config,
    series: dict[str, np.ndarray],
    *,
    experiment: str,
    means: tuple[str, ...],
    climatological_std: float,
    t_start: float,
    **settings: Any,
) -> xr.Dataset:
    """An experiment's result: the per-cycle ``series`` and, in attrs, the time means after
    burn-in of those named in ``means`` (``mean_<name>``), the settings and the wall time."""
    out = xr.Dataset(
        {name: ("cycle", values) for name, values in series.items()},
        coords={"cycle": np.arange(cfg.n_cycles)},
    )
    out.attrs.update(
        experiment=experiment,
        **{f"mean_{name}": float(series[name][cfg.burn_in :].mean()) for name in means},
        climatological_std=climatological_std,
        obs_error=cfg.obs_error,
        n_members=cfg.n_members,
        **settings,
        burn_in=cfg.burn_in,
        wall_time_s=_time.perf_counter() - t_start,
        config=cfg.to_json(),
    )
    return out


def _l96_truth_and_observations(
    model: Any, *, n_states: int, obs_error: float, generator: Any
) -> tuple[Any, Any, Any]:
    """Truth (spun up onto the attractor), observations of every variable, their operator."""
    import torch

    step = model.net.step
    k = len(model.longitude)
    forcing = model.net.forcing
    x = forcing + torch.randn(k, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(2000):
            x = step(x)
        truth = torch.empty(n_states, k, dtype=torch.float64)
        for i in range(n_states):
            truth[i] = x
            x = step(x)
    obs = truth + obs_error * torch.randn(truth.shape, generator=generator, dtype=torch.float64)
    op, _ = build_operator(
        [("x", None)],
        model.latitude,
        model.longitude,
        obs_variable=["x"] * k,
        obs_latitude=np.zeros(k),
        obs_longitude=model.longitude,
        obs_level=np.full(k, np.nan),
    )
    return truth, obs, op


def _l96_run(
    cfg: Lorenz96TwinConfig,
    *,
    progress: bool | None,
    t_start: float,
) -> xr.Dataset:
    import torch
    from tqdm.auto import tqdm

    n_cycles, n_variables = cfg.n_cycles, cfg.n_variables
    obs_error, n_members, n_slots = cfg.obs_error, cfg.n_members, cfg.n_slots
    amplitude, wavelength, localization_length = (
        cfg.amplitude, cfg.wavelength, cfg.localization_length
    )  # fmt: skip
    model = lorenz96_model(n_variables=n_variables, forcing=cfg.forcing)
    step = model.net.step
    g = torch.Generator().manual_seed(int(cfg.seed))
    dt64 = torch.float64
    truth, obs, op = _l96_truth_and_observations(
        model, n_states=n_cycles + n_slots + 1, obs_error=obs_error, generator=g
    )
    clim_std = float(truth.std())
    err = torch.full((n_variables,), float(obs_error), dtype=dt64)
    loc = (
        None
        if localization_length is None
        else localization(
            n_points=n_variables,
            length_scale=localization_length,
            kind=cfg.localization_kind,
            variance=0.999,
        )
    )
    shape = (1, 1, n_variables)
    background_error = BackgroundError(
        n_members=n_members,
        perturbation_std=(clim_std,),
        amplitude=amplitude,
        wavelength=wavelength,
        octaves=1,
    )
    xa_prev2 = truth[0] + obs_error * torch.randn(n_variables, generator=g, dtype=dt64)
    xa_prev = step(xa_prev2)
    a_rmse = np.zeros(n_cycles)
    b_rmse = np.zeros(n_cycles)
    iters = np.zeros(n_cycles, dtype=int)
    bar = tqdm(range(n_cycles), desc="L96 cycles", disable=not progress_enabled(progress))
    for c in bar:
        t = c + 2
        with torch.no_grad():
            xb = step(xa_prev)
        bg = torch.stack([xa_prev2.view(shape), xa_prev.view(shape), xb.view(shape)])
        slots = [ObsSlot(k, op, obs[t + k], err) for k in range(n_slots)]
        res = en4dvar_analysis(
            model,
            bg,
            slots,
            background_error=background_error,
            localization=loc,
            quality_control=QualityControl(qc_threshold=cfg.qc_threshold),
            minimiser=Minimiser(max_iter=cfg.max_iter, gtol=cfg.gtol),
            generator=g,
            dtype=dt64,
            progress=False,
        )
        xa = res.analysis.view(-1)
        a_rmse[c] = float(((xa - truth[t]) ** 2).mean().sqrt())
        b_rmse[c] = float(((xb - truth[t]) ** 2).mean().sqrt())
        iters[c] = len(res.history.records) - 1
        xa_prev2, xa_prev = xa_prev, xa
        if c % 50 == 0:
            bar.set_postfix(a=f"{a_rmse[max(0, c - 200) : c + 1].mean():.3f}")
    return _result(
        cfg,
        {"analysis_rmse": a_rmse, "background_rmse": b_rmse, "iterations": iters},
        experiment="Lorenz-96 twin, FuXi-En4DVar",
        means=("analysis_rmse", "background_rmse", "iterations"),
        climatological_std=clim_std,
        t_start=t_start,
        n_slots=n_slots,
        amplitude=amplitude,
        wavelength=wavelength,
        localization="none" if loc is None else loc.description,
    )


def lorenz96_letkf(
    *,
    config: Lorenz96LETKFConfig | dict | None = None,
    progress: bool | None = None,
    **legacy: Any,
) -> xr.Dataset:
    """Lorenz-96 twin experiment with the LETKF, observing every variable every step.

    The standard setting (Lorenz-96 with 40 variables, ``F = 8``, all observed every 0.05
    time units with ``R = I``). The members start from the truth plus observation-size noise
    and are carried from cycle to cycle as model input pairs; the truth and observations are
    drawn as for :func:`lorenz96_twin` (the same seed gives the same truth).

    Parameters
    ----------
    config : Lorenz96LETKFConfig or dict, optional
        The experiment's settings (default ``Lorenz96LETKFConfig()``):

        - ``n_cycles`` (default 3200): cycles, burn-in included; ``burn_in`` (default 200):
          cycles left out of the time means;
        - ``n_variables``, ``forcing``, ``obs_error``, ``seed``: as for
          :func:`lorenz96_twin`;
        - ``n_members`` (default 40);
        - ``localization_length`` (default 4): Gaspari–Cohn half-width in grid points
          (None: no localization);
        - ``inflation`` (default 1): multiplicative prior inflation (the start value if
          adaptive); ``rtps`` (default 0.5): relaxation to prior spread;
          ``adaptive_inflation`` (default False): estimate the inflation from the
          innovations each cycle.

        The defaults are not the tuned filter: with localization 4 and RTPS 0.5 the
        ensemble is over-dispersive (an analysis RMSE of about 0.27, spread 0.37); the
        0.18 of the benchmark (docs/cycling.md) is ``inflation=1.03, rtps=0.0,
        localization_length=None`` (``benchmarks/bench_cycling.py``).

        It is saved in the result's attrs (``config``).
    progress : bool, optional
    **legacy
        The old keyword arguments (``n_cycles=``, ``inflation=``, ...: each a field of
        :class:`Lorenz96LETKFConfig`) still work, with a ``DeprecationWarning``.

    Returns
    -------
    xarray.Dataset
        Per cycle: ``analysis_rmse``, ``background_rmse``, ``analysis_spread`` (the
        ensemble std, root-mean over the variables) and ``inflation``; attrs with the time
        means after burn-in and the settings.

    Raises
    ------
    FloatingPointError
        The filter diverged: an analysis with NaN (the cycle is named).
    ValueError
        An invalid setting in ``config`` (the field is named).
    TypeError
        A keyword in ``**legacy`` that is no field of :class:`Lorenz96LETKFConfig`.

    Examples
    --------
    >>> out = lorenz96_letkf(config=Lorenz96LETKFConfig(n_cycles=30, burn_in=10), progress=False)
    >>> bool(out.attrs["mean_analysis_rmse"] < 1.0)
    True
    """
    import torch
    from tqdm.auto import tqdm

    from ..assimilation.config import LocalizationOptions
    from ..assimilation.cost import ObsSlot
    from ..assimilation.letkf import LETKFOptions, forecast_members, letkf_analysis
    from ..models.lorenz96 import lorenz96_model
    from ..options import progress_enabled

    cfg = config_with_legacy(Lorenz96LETKFConfig, config, legacy, "lorenz96_letkf")
    n_cycles, n_variables = cfg.n_cycles, cfg.n_variables
    forcing, obs_error, n_members, seed = cfg.forcing, cfg.obs_error, cfg.n_members, cfg.seed
    localization_length, inflation, rtps = cfg.localization_length, cfg.inflation, cfg.rtps
    adaptive_inflation = cfg.adaptive_inflation
    t_start = _time.perf_counter()
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = lorenz96_model(n_variables=n_variables, forcing=forcing)
        g = torch.Generator().manual_seed(int(seed))
        truth, obs, op = _l96_truth_and_observations(
            model, n_states=n_cycles + 2, obs_error=obs_error, generator=g
        )
        options = LETKFOptions(
            n_members=n_members,
            inflation=inflation,
            rtps=rtps,
            adaptive_inflation=adaptive_inflation,
            qc_threshold=None,
        )
        loc = LocalizationOptions(length_scale=localization_length, n_points=n_variables)
        err = torch.full((n_variables,), float(obs_error), dtype=torch.float64)
        x0 = truth[0] + obs_error * torch.randn(
            n_members, n_variables, generator=g, dtype=torch.float64
        )
        shape = (n_members, 1, 1, n_variables)
        pairs = torch.stack([x0.view(shape), x0.view(shape)], dim=1)
        a_rmse = np.zeros(n_cycles)
        b_rmse = np.zeros(n_cycles)
        spread = np.zeros(n_cycles)
        infl = np.zeros(n_cycles)
        rho = inflation
        bar = tqdm(range(n_cycles), desc="LETKF cycles", disable=not progress_enabled(progress))
        for c in bar:
            t = c + 1
            pairs = forecast_members(model, pairs)[0]
            res = letkf_analysis(
                pairs,
                [ObsSlot(0, op, obs[t], err)],
                localization=loc,
                options=options,
                inflation=rho,
            )
            rho = res.inflation
            pairs = res.members
            a_rmse[c] = float(((res.mean.view(-1) - truth[t]) ** 2).mean().sqrt())
            b_rmse[c] = float(((res.background_mean.view(-1) - truth[t]) ** 2).mean().sqrt())
            spread[c] = float(res.analysis_spread.pow(2).mean().sqrt())
            infl[c] = rho
            if not np.isfinite(a_rmse[c]):
                raise FloatingPointError(f"the LETKF diverged at cycle {c} (NaN analysis)")
            if c % 100 == 0:
                bar.set_postfix(a=f"{a_rmse[max(0, c - 200) : c + 1].mean():.3f}")
    finally:
        torch.set_num_threads(n_threads)
    return _result(
        cfg,
        {"analysis_rmse": a_rmse, "background_rmse": b_rmse, "analysis_spread": spread,
         "inflation": infl},
        experiment="Lorenz-96 twin, LETKF",
        means=("analysis_rmse", "background_rmse", "analysis_spread"),
        climatological_std=float(truth.std()),
        t_start=t_start,
        localization="none" if localization_length is None else f"{localization_length:g}",
        inflation=inflation,
        rtps=rtps,
        adaptive_inflation=int(adaptive_inflation),
    )  # fmt: skip


def lorenz96_truth(
    *, n_states: int, n_variables: int = 40, forcing: float = 8.0, seed: int = 0
) -> xr.Dataset:
    """A Lorenz-96 truth run as a Dataset (variable ``x`` on the model's 1 × K grid).

    One state per model step (0.05 time units, stamped 6 hours apart from 2000-01-01), spun
    up onto the attractor; the same seed gives the truth of :func:`lorenz96_twin` and
    :func:`lorenz96_letkf`. For :func:`xfuxi.cycle` with :class:`Lorenz96Network`.

    Examples
    --------
    >>> lorenz96_truth(n_states=4)["x"].shape
    (4, 1, 40)
    """
    import pandas as pd
    import torch

    from ..models.lorenz96 import lorenz96_model

    model = lorenz96_model(n_variables=n_variables, forcing=forcing)
    g = torch.Generator().manual_seed(int(seed))
    truth, _, _ = _l96_truth_and_observations(model, n_states=n_states, obs_error=1.0, generator=g)
    return xr.Dataset(
        {"x": (("time", "latitude", "longitude"), truth.numpy()[:, None, :])},
        coords={
            "time": pd.date_range("2000-01-01", periods=n_states, freq="6h"),
            "latitude": [0.0],
            "longitude": np.asarray(model.longitude, dtype="float64"),
        },
    )


class Lorenz96Network:
    """Every Lorenz-96 variable observed at every slot with error std ``error`` (R = σ² I).

    A network for :func:`xfuxi.cycle`: cycle ``c`` draws its noise with seed ``seed + c``.

    Parameters
    ----------
    error : float, default 1.0
        The observation-error std, a finite number > 0.
    seed : int, default 0

    Raises
    ------
    ValueError
        An ``error`` that is not a finite number > 0.
    """

    def __init__(self, *, error: float = 1.0, seed: int = 0) -> None:
        if (
            isinstance(error, bool)
            or not isinstance(error, (int, float, np.number))
            or not (np.isfinite(error) and error > 0)
        ):
            raise ValueError(f"Lorenz96Network.error must be a finite number > 0; got {error!r}")
        self.error = float(error)
        self.seed = int(seed)

    def settings(self) -> dict[str, Any]:
        return {"network": "lorenz96", "error": self.error, "seed": self.seed}

    def __call__(self, truth: xr.Dataset, times: Any, *, cycle: int, model: Any) -> xr.Dataset:
        from ..observations.sets import make_observations

        rng = np.random.default_rng([self.seed, int(cycle)])
        sel = truth["x"].sel(time=list(times)).isel(latitude=0)
        values = sel.values + self.error * rng.standard_normal(sel.shape)
        tt, lon = np.meshgrid(sel["time"].values, sel["longitude"].values, indexing="ij")
        return make_observations(
            values.ravel(),
            error=self.error,
            time=tt.ravel(),
            latitude=0.0,
            longitude=lon.ravel(),
            variable="x",
        )
