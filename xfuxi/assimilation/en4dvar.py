"""FuXi-En4DVar: ensemble 4DVar through a differentiable forecast model (the front end).

The analysis minimises::

    J(w) = ½ wᵀw + ½ Σ_k (y_k − H_k(M_k(x)))ᵀ R_k⁻¹ (y_k − H_k(M_k(x))),
    x = x_b + X_b w                           (no localization; w has N entries)
    x = x_b + Σ_i X_b,i ∘ (L α_i),  C = L Lᵀ  (localization; one α_i per member)

with ``X_b`` the anomalies of N members made by adding Perlin noise to the background 6 h
before the analysis time and running one model step (:mod:`.members`), ``M_k`` the model
rolled ``k`` steps from the analysis, ``H_k`` the observation operators of slot ``k`` and
``R_k`` diagonal (:mod:`.cost`). Gradients come from autodiff through the model — no adjoint
is written — and ``J`` is minimised with L-BFGS (:mod:`.minimise`). See the definitions in
the documentation (docs/design.md, section En4DVar). Slots with a bias model
(:class:`~xfuxi.assimilation.cost.SlotBias`) add their bias coefficients to the control
vector (variational bias correction, VarBC; :mod:`.cost`).

The options are typed configurations (:mod:`.config`): :class:`BackgroundError`,
:class:`LocalizationOptions`, :class:`Window`, :class:`Minimiser`, :class:`QualityControl`.
The core (:func:`en4dvar_analysis`) works on tensors with any model that follows the
:class:`~xfuxi.models.base.ForecastModel` contract (``(B, 2, C, H, W) → (B, C, H, W)``),
e.g. the FuXi U-Transformer or :func:`~xfuxi.models.lorenz96.lorenz96_model`;
:func:`assimilate_4dvar` is the xarray front end.
"""

from __future__ import annotations

import json
import logging
import secrets
import time as _time
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
import xarray as xr

from .._version import __version__
from ..config import config_with_legacy, user_stacklevel
from ..data.channels import channel_name
from ..data.schema import input_source
from ..models.base import channels_without_statistics
from ..models.registry import resolve_model
from ..observations.sets import ObservationError, screen_observations
from .calibration import (
    channel_values,
    innovation_spread,
    model_background_error,
    spread_values,
    wind_pairs,
)
from .config import (
    DEFAULT_LOCALIZATION,
    LEGACY_KEYWORDS,
    BackgroundError,
    BackgroundErrorData,
    LocalizationOptions,
    Minimiser,
    QualityControl,
    Window,
    legacy_options,
    localization_options,
)
from .cost import En4DVarProblem, ObsSlot, SlotBias
from .inputs import background_tensor, build_localization, observation_slots, states_tensor
from .localization import Localization
from .members import background_anomalies, ensemble_members, resolve_balance
from .minimise import History, minimize_cost
from .quality import background_check, check_not_all_rejected, check_operators, operator_values
from .result import En4DVarResult, result_datasets

__all__ = [
    "DEFAULT_LOCALIZATION",
    "DEFAULT_MODEL",
    "DEFAULT_VERTICAL_LENGTH_SCALE",
    "BackgroundError",
    "En4DVarProblem",
    "En4DVarResult",
    "LocalizationOptions",
    "Minimiser",
    "ObsSlot",
    "QualityControl",
    "SlotBias",
    "TensorAnalysis",
    "Window",
    "assimilate_4dvar",
    "en4dvar_analysis",
    "ensemble_members",
    "minimize_cost",
    "resolve_vertical_localization",
]

log = logging.getLogger(__name__)

#: the model :func:`assimilate_4dvar` uses when none is given: the shipped one-step model
DEFAULT_MODEL = "fuxi-hs-t21"
#: vertical Gaspari–Cohn half-width (ln p) :func:`assimilate_4dvar` uses when
#: ``vertical_length_scale`` is unset and the observations span more than one level
DEFAULT_VERTICAL_LENGTH_SCALE = 1.0

_TENSOR_DATA_KEYWORDS = ("members", "spread", "spread_groups", "static")


class TensorAnalysis(NamedTuple):
    """Result of :func:`en4dvar_analysis` (tensors, float64)."""

    analysis: torch.Tensor  # (C, H, W) at t0
    trajectory: torch.Tensor  # (K, C, H, W): t0, t0+Δ, ...
    background_trajectory: torch.Tensor  # (K, C, H, W)
    increment: torch.Tensor  # (C, H, W)
    control: torch.Tensor
    history: History
    omb: list[torch.Tensor]  # per slot, for the used observations (bias slots: − P β_b)
    oma: list[torch.Tensor]  # (bias slots: − P β_a)
    qc_rejected: list[np.ndarray]  # per slot, bool mask over the slot's input observations
    timings: dict[str, float]
    seed: int | None = None  # the perturbations' seed (None: a generator was given)
    # per slot the analysed VarBC coefficients β_a (G, P) (None for a slot without bias);
    # None when no slot has a bias model
    bias_coefficients: list[torch.Tensor | None] | None = None


def _generator(background_error: BackgroundError) -> tuple[torch.Generator, int]:
    """A generator seeded with ``background_error.seed``, or with a fresh seed if None."""
    seed = background_error.seed
    if seed is None:  # 31 bits: recorded as an attribute, which netCDF3 stores as int32
        seed = secrets.randbits(31)
    return torch.Generator().manual_seed(int(seed)), int(seed)


def en4dvar_analysis(
    model: torch.nn.Module,
    background: torch.Tensor,
    slots: Sequence[ObsSlot],
    *,
    anomalies: torch.Tensor | None = None,
    background_error: BackgroundError | None = None,
    localization: Localization | None = None,
    increment_previous: bool = False,
    minimiser: Minimiser | None = None,
    quality_control: QualityControl | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    progress: bool | None = None,
    trajectory_steps: int | None = None,
    **deprecated: Any,
) -> TensorAnalysis:
    """One En4DVar analysis on tensors (the core behind :func:`assimilate_4dvar`).

    Parameters
    ----------
    model : ForecastModel
        Any differentiable model with the contract ``(B, 2, C, H, W) → (B, C, H, W)``.
    background : Tensor (3, C, H, W)
        Background states at t0 − 2Δ, t0 − Δ and t0.
    slots : sequence of ObsSlot
        Observations per slot (step ``k`` = ``k`` model steps after t0). A slot with a
        ``bias`` (:class:`~xfuxi.assimilation.cost.SlotBias`) has its bias coefficients
        estimated with the state (VarBC): its background check uses the departures
        corrected with the prior coefficients, ``y − H(x_b) − P β_b``.
    anomalies : Tensor (N, C, H, W), optional
        Ready columns of B's square root ``X_b``
        (:func:`~xfuxi.assimilation.members.background_anomalies`: from given members, a
        calibrated spread or a hybrid static B). Default: Perlin members drawn with
        ``background_error`` (its ``perturbation_std`` is then needed).
    background_error : BackgroundError, optional
        Members and Perlin settings (``wavelength ≤ 1``: white noise), and the seed used
        when no ``generator`` is given.
    localization : Localization, optional
        None: control ``w`` of size N.
    increment_previous : bool, default False
        As for :class:`En4DVarProblem`.
    minimiser : Minimiser, optional
        As for :func:`minimize_cost`.
    quality_control : QualityControl, optional
        Its ``qc_threshold`` ``k`` (background check; None disables it).
    generator : torch.Generator, optional
        Draws the perturbations (default: seeded with ``background_error.seed``).
    dtype : torch.dtype, optional
    progress : bool, optional
    trajectory_steps : int, optional
        Model steps of the returned trajectories (t0 to t0 + ``trajectory_steps`` Δ: the
        whole window); at least the last observed slot's, which is the default.
    **deprecated
        The older flat keywords (``n_members``, ``perturbation_std``, ``amplitude``,
        ``qc_threshold``, ``max_iter``, ...; and ``members``, ``spread``,
        ``spread_groups``, ``static``, now arguments of
        :func:`~xfuxi.assimilation.members.background_anomalies`), mapped with a
        ``DeprecationWarning``.

    Returns
    -------
    TensorAnalysis
        ``omb`` and ``oma`` per slot for the observations used; for a slot with a bias they
        are bias-corrected: ``y − H(x_b) − P β_b`` (prior coefficients) and
        ``y − H(x_a) − P β_a`` (analysed coefficients). ``bias_coefficients``: the analysed
        ``β_a`` (G, P) per slot (None for slots without bias; None altogether when no slot
        has one).

    Raises
    ------
    ObservationsRejectedError
        Every observation failed the background check (nothing would be assimilated); a
        subclass of :class:`~xfuxi.observations.sets.ObservationError`.
    TypeError
        An observation operator that is not callable, or without the ``subset`` method the
        background check needs (the contract: :class:`~xfuxi.assimilation.cost.ObsSlot`).
    ValueError
        An operator whose output is not ``(..., m)`` (e.g. one that drops the members' dim)
        or not finite at the background or its members (naming the observations); a
        model or operator that is not differentiable (a slot's observations with no
        autograd path to the analysis, :func:`minimize_cost`); a cost that is not finite
        at the background.

    Examples
    --------
    >>> from xfuxi.models.lorenz96 import lorenz96_model
    >>> from xfuxi.observations.operator import build_operator
    >>> m = lorenz96_model()
    >>> g = torch.Generator().manual_seed(0)
    >>> x = 8.0 + torch.randn(1, 1, 40, generator=g, dtype=torch.float64)
    >>> bg = torch.stack([x, x, m(torch.stack([x, x])[None])[0]])
    >>> op, _ = build_operator([("x", None)], [0.0], np.arange(40) * 9.0,
    ...     obs_variable=["x"], obs_latitude=[0.0], obs_longitude=[90.0], obs_level=[np.nan])
    >>> y = op(bg[2]) + 1.0
    >>> opts = BackgroundError(n_members=20, perturbation_std=(1.0,), amplitude=0.5,
    ...                        wavelength=1)
    >>> res = en4dvar_analysis(m, bg, [ObsSlot(0, op, y, torch.ones(1, dtype=torch.float64))],
    ...     background_error=opts, generator=g, progress=False)
    >>> bool(0 < float(op(res.analysis) - op(bg[2])) < 1.0)
    True
    """
    data = {k: deprecated.pop(k) for k in _TENSOR_DATA_KEYWORDS if k in deprecated}
    if "increment_previous" in deprecated:  # a plain keyword here; allowed as before
        increment_previous = deprecated.pop("increment_previous")
    cfg = legacy_options(
        "en4dvar_analysis",
        {
            "background_error": background_error,
            "minimiser": minimiser,
            "quality_control": quality_control,
        },
        deprecated,
        allowed=(
            "n_members", "perturbation_std", "amplitude", "wavelength", "octaves",
            "persistence", "balance", "hybrid_weight", "member_chunk", "qc_threshold",
            "max_iter", "gtol", "optimizer",
        ),
    )  # fmt: skip
    opts, qc = cfg["background_error"], cfg["quality_control"]
    if background.ndim != 4 or background.shape[0] != 3:
        raise ValueError(
            f"background must be (3, C, H, W) at t0-2Δ, t0-Δ, t0; got {tuple(background.shape)}"
        )
    # the operators: callable, and with subset() where the background check may reject
    check_operators(
        slots,
        {}
        if qc.qc_threshold is None
        else {
            "subset": "the observations that pass the background check (give it, or turn "
            "the check off: QualityControl(qc_threshold=None))"
        },
        "en4dvar_analysis",
    )
    seed = None
    if generator is None:
        generator, seed = _generator(opts)
    t_start = _time.perf_counter()
    background = background.double()
    if data:
        if anomalies is not None:
            raise TypeError("give anomalies, or the deprecated members/spread/static; not both")
        warnings.warn(
            f"en4dvar_analysis({', '.join(sorted(data))}=...) is deprecated; pass "
            "anomalies=xfuxi.assimilation.members.background_anomalies(...)",
            DeprecationWarning,
            stacklevel=user_stacklevel(),
        )
    if anomalies is None:
        anomalies = background_anomalies(
            model,
            background,
            background_error=opts,
            generator=generator,
            dtype=dtype,
            progress=progress,
            **data,
        )
    t_members = _time.perf_counter()
    # background trajectory, background check
    full = En4DVarProblem(
        model,
        background[1],
        background[2],
        anomalies,
        slots,
        localization=localization,
        dtype=dtype,
        increment_previous=increment_previous,
    )
    steps = full.n_steps if trajectory_steps is None else max(full.n_steps, int(trajectory_steps))
    with torch.no_grad():
        bg_traj = full.trajectory(background[2], steps)
    rejected = []
    kept_slots = []
    for s in slots:
        state = bg_traj[s.step]  # H on members, not on anomalies (nonlinear operators)
        checked = s
        if s.bias is not None:  # VarBC: check the departures corrected with β_b
            with torch.no_grad():
                corrected = s.value - s.bias.correction(s.bias.prior).to(s.value.dtype)
            checked = ObsSlot(s.step, s.operator, corrected, s.error)
        # (m,) and finite: NaN passed the check (NaN > bound is False) and made J NaN
        hx = operator_values(s, state, "the background")
        bad = background_check(checked, hx, anomalies, qc.qc_threshold, state=state)
        rejected.append(bad)
        keep = np.nonzero(~bad)[0]
        op = s.operator.subset(keep) if bad.any() else s.operator
        bias = None if s.bias is None else s.bias.subset(keep) if bad.any() else s.bias
        kept = ObsSlot(s.step, op, s.value[keep], s.error[keep], bias)
        if bad.any():  # the subset operator: one value per kept observation
            operator_values(kept, state, "the background (its subset(keep))")
        kept_slots.append(kept)
    check_not_all_rejected(rejected, qc.qc_threshold or 0.0, "QualityControl")
    problem = En4DVarProblem(
        model,
        background[1],
        background[2],
        anomalies,
        kept_slots,
        localization=localization,
        dtype=dtype,
        increment_previous=increment_previous,
    )
    control, hist = minimize_cost(problem, minimiser=cfg["minimiser"], progress=progress)
    t_min = _time.perf_counter()
    with torch.no_grad():
        inc = problem.increment(control)
        xa = background[2] + inc
        an_traj = full.trajectory(xa, steps)
        beta_a = problem.bias_coefficients(control)
    omb = [_departure(s, bg_traj, None if s.bias is None else s.bias.prior) for s in kept_slots]
    oma = [_departure(s, an_traj, b) for s, b in zip(kept_slots, beta_a)]
    return TensorAnalysis(
        analysis=xa,
        trajectory=torch.stack(an_traj),
        background_trajectory=torch.stack(bg_traj),
        increment=inc,
        control=control,
        history=hist,
        omb=omb,
        oma=oma,
        qc_rejected=rejected,
        timings={
            "members_s": t_members - t_start,
            "minimisation_s": t_min - t_members,
            "total_s": _time.perf_counter() - t_start,
        },
        seed=seed,
        bias_coefficients=beta_a if problem.has_bias else None,
    )


def _departure(
    slot: ObsSlot, states: Sequence[torch.Tensor], beta: torch.Tensor | None
) -> torch.Tensor:
    """``y − H(x)`` of a slot, minus its bias ``P β`` when it has a bias model."""
    with torch.no_grad():
        d = slot.value - slot.operator(states[slot.step])
        if slot.bias is not None and beta is not None:
            d = d - slot.bias.correction(beta)
    return d


def assimilate_4dvar(
    background: xr.Dataset,
    observations: xr.Dataset,
    *,
    model: Any = None,
    background_error: BackgroundError | None = None,
    localization: Any = DEFAULT_LOCALIZATION,
    window: Window | None = None,
    minimiser: Minimiser | None = None,
    quality_control: QualityControl | None = None,
    error_data: BackgroundErrorData | None = None,
    progress: bool | None = None,
    **deprecated: Any,
) -> En4DVarResult:
    """Assimilate observations with FuXi-En4DVar (ensemble 4DVar through the model).

    Parameters
    ----------
    background : xarray.Dataset
        Background with a ``time`` dim holding t0 − 12 h, t0 − 6 h and t0 (e.g. the
        previous analysis and its forecast); the model's channels and grid. It is
        canonicalised first (:func:`xfuxi.validate`; a copy): latitude may descend, times
        may be in any order. The results are in the canonical layout (latitude ascending).
    observations : xarray.Dataset
        Observation Dataset (dim ``obs``; see :mod:`xfuxi.observations.sets`).
    model : ForecastModel, str or path, optional
        Any differentiable model following the xfuxi model contract, or a shipped name /
        checkpoint directory for :func:`xfuxi.load_model`. Default: the shipped one-step
        model ``"fuxi-hs-t21"`` (:data:`~xfuxi.assimilation.en4dvar.DEFAULT_MODEL`).
    background_error : BackgroundError, optional
        The ensemble behind B: ``n_members`` (default 200), the Perlin perturbations
        (``amplitude`` 0.05 of ``perturbation_std`` — default the model's normalization
        std, refused for the channels of a model without statistics (wrapped without
        ``stats``) that no ``error_data.spread`` rescales —, ``wavelength`` 8, ``octaves``
        3, ``balance`` ``"auto"``: geostrophic and hydrostatic when the model has
        geopotential and winds), ``hybrid_weight`` β of a static B (with ``static_b``;
        0.25 did better than 0.5 in 10 days of cycling on the embedded world),
        ``member_chunk`` and ``seed`` (default 0; None draws a fresh seed, recorded in
        ``attrs["config"]``).
    localization : LocalizationOptions, float, dict, Localization or None
        Default :data:`DEFAULT_LOCALIZATION`: Gaspari–Cohn with a 1500 km half-width (the
        tuned examples' value). A number is a half-width in km; a dict changes fields of
        the default (``{"vertical_length_scale": 0.5}`` keeps its 1500 km); a
        :class:`LocalizationOptions` is taken as it is (its own ``length_scale`` default
        is the same 1500 km); a ready
        :class:`~xfuxi.assimilation.localization.Localization` is used as it is (build one
        with :func:`~xfuxi.assimilation.inputs.build_localization` to reuse its
        eigendecomposition over a cycle); None: no localization (control of size N).
        Vertical localization: with ``vertical_length_scale`` left unset and observations
        on more than one pressure level (radiosondes), a Gaspari–Cohn half-width of
        :data:`DEFAULT_VERTICAL_LENGTH_SCALE` (1.0 in ln p) is used
        (:func:`resolve_vertical_localization`; it lowered the temperature analysis error at
        every level on the embedded world, at about 1.5× the cost per iteration); on one
        level, none. A value given wins; ``vertical_length_scale=0`` turns it off.
    window : Window, optional
        ``n_slots`` observation slots at t0, t0 + 6 h, ... (default 2; each observation goes
        to the nearest slot; farther than 3 h from every slot: rejected as outside the
        window); ``time``, the analysis time t0 (default: the latest background time);
        ``increment_previous``: roll the model from the pair (background at t0 − 6 h +
        increment, analysis) instead of (background at t0 − 6 h, analysis) — for models
        that read a tendency from their two inputs.
    minimiser : Minimiser, optional
        ``max_iter`` (default 50; 0 does not minimise: the analysis is the background, and
        the diagnostics give its cost and O−B), ``gtol`` (relative gradient-norm tolerance,
        default 1e-3), ``optimizer`` (``"scipy"`` or ``"torch"``).
    quality_control : QualityControl, optional
        ``qc_threshold`` ``k`` (default 5): background check, reject observations with
        ``|y − H x_b| > k √(σo² + σb²)``; ``strict``: raise instead of rejecting bad
        observations; ``duplicates``: repeated observations (the same variable, level,
        position, time, value and error) are refused (``"refuse"``, default) or reduced to
        the first of each group with a warning (``"first"``) — used as independent ones they
        would count several times over. Observations at one place and time with different
        values are used as independent ones.
    error_data : BackgroundErrorData or dict, optional
        The data behind B (:class:`~xfuxi.assimilation.config.BackgroundErrorData`; by
        default none).

        ``spread`` (xarray.Dataset, array (C,) or (C, H), ``"innovations"`` or
        ``"ensemble"``): background-error std per variable and level (e.g. from
        :func:`xfuxi.assimilation.calibration.background_error_std`): the one-step ensemble
        anomalies of each channel are rescaled to it (B variances calibrated, the
        flow-dependent correlations kept). With a ``latitude`` dim (``by_latitude=True``)
        each latitude row is rescaled to its own value. ``"innovations"`` estimates it from
        this analysis' own t0 innovations
        (:func:`~xfuxi.assimilation.calibration.innovation_spread`; adaptive, for cycling);
        ``"ensemble"`` keeps the ensemble's own spread. Default: the background-error std
        the model carries (:func:`~xfuxi.assimilation.calibration.model_background_error`;
        the shipped ``fuxi-hs-t21`` has the per-latitude std of its 24-hour forecast error
        on the train split) for Perlin members when no ``perturbation_std`` is given;
        otherwise (a model without statistics, ``members``, a ``perturbation_std``) the
        ensemble's own spread. Which one was used is recorded in the result's
        ``attrs["background_error_std"]`` and ``attrs["config"]``. It rescales the
        ensemble part only.

        ``members`` (xarray.Dataset): a ready-made ensemble valid at t0 with a ``number``
        dim (the WeatherBench2 layout of :func:`xfuxi.ensemble`'s output, a ``time`` or
        ``prediction_timedelta`` of length one allowed), e.g. a FuXi-ENS forecast or cycled
        members: B comes from it instead of Perlin members (``n_members`` and the Perlin
        settings are then unused).

        ``static_b`` (xarray.Dataset): samples of a static background error with a
        ``sample`` dim (the model's channels and grid), e.g. from
        :func:`xfuxi.assimilation.calibration.forecast_error_samples`: hybrid En4DVar with
        ``B = (1 − β) B_ens + β B_static``, the static part spanning the climatological
        error structures (large scales, systematic model errors) that fresh Perlin
        perturbations do not.
    progress : bool, optional
        Progress bars (default: the global option).
    **deprecated
        The older flat keywords (``n_members``, ``amplitude``, ``wavelength``, ``octaves``,
        ``perturbation_std``, ``hybrid_weight``, ``balance``, ``member_chunk``, ``seed``,
        ``n_slots``, ``time``, ``increment_previous``, ``max_iter``, ``gtol``,
        ``optimizer``, ``qc_threshold``, ``strict``; and ``spread``, ``members``,
        ``static_b``, now fields of ``error_data``) still work: each is mapped onto its
        configuration with a ``DeprecationWarning`` naming the new option.

    Returns
    -------
    En4DVarResult
        ``(analysis, trajectory, increment, diagnostics)``. Each Dataset's
        ``attrs["config"]`` is the configuration used, as JSON (with the seed drawn when
        ``seed`` was None).

    Raises
    ------
    SchemaError
        Background without the needed times, channels or grid, or with another dim than
        time, level, latitude and longitude (an ensemble's ``number``/``member``: one
        background state per time; members for B go in ``error_data.members``).
    ObservationError
        Malformed observations or bad ones with ``strict=True``; duplicated observations
        (``duplicates="refuse"``); every observation rejected by the background check.
    ValueError
        Perlin members with the default ``perturbation_std`` for a model without
        normalization statistics (:func:`~xfuxi.models.base.channels_without_statistics`)
        in channels no ``spread`` rescales: their std 1 is no physical scale (give
        ``perturbation_std``, ``error_data.spread`` or ``error_data.members``); a model
        that is not differentiable, or a cost that is not finite at the background
        (:func:`en4dvar_analysis`).

    Notes
    -----
    FuXi-En4DVar (Li et al. 2024); see the definitions in the documentation
    (docs/design.md, section En4DVar): ``x = x_b + X_b w`` (or ``x_b + Σ X_b,i ∘ L α_i``),
    ``J = ½‖w‖² + ½ Σ_k ‖R_k^{-1/2}(y_k − H_k M_k x)‖²``, autodiff gradients, L-BFGS. σb in
    the background check is the t0 ensemble spread at the observation point (used for
    every slot).

    Examples
    --------
    >>> import xarray as xr, pandas as pd
    >>> from xfuxi.models.lorenz96 import lorenz96_model
    >>> from xfuxi.observations.sets import make_observations
    >>> m = lorenz96_model(n_variables=8)
    >>> t = pd.date_range("2000-01-01", periods=3, freq="6h")
    >>> bg = xr.Dataset({"x": (("time", "latitude", "longitude"),
    ...                  8.0 + np.sin(np.arange(24.0)).reshape(3, 1, 8))},
    ...                 coords={"time": t, "latitude": [0.0], "longitude": m.longitude})
    >>> obs = make_observations([9.0], error=0.5, time=t[-1], latitude=0.0, longitude=90.0,
    ...                         variable="x")
    >>> opts = BackgroundError(n_members=10, perturbation_std=(1.0,), amplitude=0.5,
    ...                        wavelength=1)
    >>> res = assimilate_4dvar(bg, obs, model=m, background_error=opts, localization=None,
    ...                        progress=False)
    >>> res.analysis["x"].dims, int(res.diagnostics["n_used"].sum())
    (('time', 'latitude', 'longitude'), 1)
    >>> res = bg.fuxi.assimilate_4dvar(obs, model=m, background_error=opts,  # accessor
    ...                                localization=None, progress=False)
    >>> int(res.diagnostics["n_used"].sum())
    1
    """
    t_wall = _time.perf_counter()
    # a name or directory loaded; a cascade, or what is no model (a number), refused by name
    model = resolve_model(DEFAULT_MODEL if model is None else model)
    data = config_with_legacy(
        BackgroundErrorData,
        error_data,
        {k: deprecated.pop(k) for k in ("spread", "members", "static_b") if k in deprecated},
        "assimilate_4dvar",
        parameter="error_data",
    )
    spread, members, static_b = data.spread, data.members, data.static_b
    if deprecated.get("perturbation_std") is not None:
        deprecated["perturbation_std"] = channel_values(
            deprecated["perturbation_std"], model.channels, name="perturbation_std"
        )
    cfg = legacy_options(
        "assimilate_4dvar",
        {
            "background_error": background_error,
            "window": window,
            "minimiser": minimiser,
            "quality_control": quality_control,
        },
        deprecated,
        allowed=tuple(LEGACY_KEYWORDS),
    )
    opts, win, qc = cfg["background_error"], cfg["window"], cfg["quality_control"]
    loc_options = localization_options(localization)
    background, t0, bg = background_tensor(background, model, time=win.time)
    step = pd.Timedelta(model.timestep)
    # perturbation std: the model's normalization std by default
    pstd = channel_values(
        model.stats.std if opts.perturbation_std is None else opts.perturbation_std,
        model.channels,
        name="perturbation_std",
    )
    adaptive = isinstance(spread, str) and spread == "innovations"
    shipped = None
    if spread is None and members is None and opts.perturbation_std is None:
        shipped = model_background_error(model)  # None: the model carries no statistics
    given_spread = shipped if shipped is not None else spread
    target_spread = (
        None
        if given_spread is None or isinstance(given_spread, str)
        else spread_values(given_spread, model.channels, model.latitude, name="spread")
    )
    slot_times = np.array([t0 + k * step for k in range(win.n_slots)], dtype="M8[ns]")
    used, op, _, counts = screen_observations(
        observations,
        channels=model.channels,
        latitude=model.latitude,
        longitude=model.longitude,
        slot_times=slot_times,
        strict=qc.strict,
        duplicates=qc.duplicates,
    )
    n_duplicates = counts["duplicate"]
    slots, order = observation_slots(used, op, win.n_slots)
    if not slots:
        raise ObservationError(f"no usable observation in the window; rejected: {counts}")
    loc_options = resolve_vertical_localization(loc_options, used["level"].values)
    if adaptive:
        target_spread = innovation_spread(used, op, bg[2], model.channels)
    static_only = static_b is not None and float(opts.hybrid_weight) == 1.0  # no members
    if opts.perturbation_std is None and members is None and not static_only:
        # the Perlin members' std is the model's normalization std: refused where that is
        # the identity of a model without statistics and no spread rescales the channel
        _check_default_perturbation_std(model, target_spread, adaptive)
    static = (
        None if static_b is None else states_tensor(static_b, model, dim="sample", name="static_b")
    )
    if static is None and opts.hybrid_weight != BackgroundError().hybrid_weight:
        warnings.warn(
            f"background_error.hybrid_weight={opts.hybrid_weight:g} has no effect without "
            "static samples (error_data=BackgroundErrorData(static_b=...)): B is the "
            "ensemble's alone",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    given = (
        None
        if members is None
        else states_tensor(members, model, dim="number", name="members", valid_at=t0)
    )
    loc = build_localization(loc_options, model)
    generator, seed = _generator(opts)
    run_opts = opts.replace(perturbation_std=tuple(float(s) for s in pstd))
    t_members = _time.perf_counter()
    anomalies = background_anomalies(
        model,
        bg,
        background_error=run_opts,
        members=given,
        static=static,
        spread=target_spread,
        spread_groups=wind_pairs(model.channels),
        generator=generator,
        progress=progress,
    )
    anomalies_s = _time.perf_counter() - t_members
    n_given = None if given is None else int(given.shape[0])
    del given  # the given members' own copy: B needs only their anomalies from here
    res = en4dvar_analysis(
        model,
        bg,
        slots,
        anomalies=anomalies,
        background_error=run_opts,
        localization=loc,
        increment_previous=win.increment_previous,
        minimiser=cfg["minimiser"],
        quality_control=qc,
        generator=generator,
        progress=progress,
        trajectory_steps=win.n_slots - 1,  # through the whole window, slots observed or not
    )
    # the members were made before the core (which got ready anomalies)
    members_s = anomalies_s + res.timings["members_s"]
    res = res._replace(timings=dict(res.timings, members_s=members_s))
    n_members = 0 if static_only else int(opts.n_members if n_given is None else n_given)
    config = {
        "model": getattr(model, "name", type(model).__name__),
        "background_error": opts.replace(seed=seed).to_dict(),
        "localization": loc_options.to_dict()
        if isinstance(loc_options, LocalizationOptions)
        else {"given": loc_options.description},
        "window": win.replace(time=str(t0)).to_dict(),
        "minimiser": cfg["minimiser"].to_dict(),
        "quality_control": qc.to_dict(),
        "spread": _spread_provenance(spread, shipped),
        "members": "none (static B only)"
        if static_only
        else "Perlin"
        if n_given is None
        else f"given ({n_members})",
        "static_b": None if static is None else f"given ({static.shape[0]} samples)",
    }  # fmt: skip
    attrs = {
        "model": config["model"],
        # which weights and which release made it, as a forecast records them
        "checkpoint_sha256": str(getattr(model, "config", {}).get("sha256", "none")),
        "xfuxi_version": __version__,
        "background_error_std": config["spread"],
        "method": "FuXi-En4DVar",
        "n_members": n_members,
        "localization": "none" if loc is None else loc.description,
        "perturbations": "none (static B only)"
        if static_only
        else str(resolve_balance(opts.balance, model) or "independent")
        + f" Perlin, amplitude {_amplitude_str(opts.amplitude)}, wavelength {opts.wavelength:g}"
        if n_given is None
        else "given ensemble",
        "background_error": "ensemble"
        if static is None
        else f"static ({static.shape[0]} samples)"
        if static_only
        else f"hybrid: {1 - opts.hybrid_weight:g} ensemble + {opts.hybrid_weight:g} static "
        f"({static.shape[0]} samples)",
        "seed": seed,
        "config": json.dumps(config, sort_keys=True),
    }
    source = input_source(background.attrs)
    if source is not None:
        attrs["background_source"] = source
    out = result_datasets(
        res,
        model=model,
        background=background,
        t0=t0,
        slot_times=slot_times,
        observations={
            "used": used,
            "op": op,
            "order": order,
            "counts": counts,
            "steps": [s.step for s in slots],
            "n_given": observations.sizes["obs"],
        },
        attrs=attrs,
    )
    diag = out.diagnostics
    diag.attrs.update(wall_time_s=_time.perf_counter() - t_wall, n_duplicates_dropped=n_duplicates)
    log.info(
        "En4DVar at %s: %d obs used, %d rejected, %d iterations, J %.4g -> %.4g",
        t0,
        diag.attrs["n_observations_used"],
        int(sum(counts.values())),
        diag.attrs["iterations"],
        float(diag["cost"][0]),
        float(diag["cost"][-1]),
    )
    return out


def _check_default_perturbation_std(model: Any, spread: Any, adaptive: bool) -> None:
    """Refuse the default ``perturbation_std`` (the model's normalization std) for channels
    without statistics that no ``spread`` rescales (NaN in ``spread``: not rescaled)."""
    missing = set(channels_without_statistics(model))
    if not missing:
        return
    names = [channel_name(c) for c in model.channels]
    if spread is None:
        unscaled = [n for n in names if n in missing]
    else:
        rows = np.asarray(spread, dtype="float64").reshape(len(names), -1)
        finite = np.isfinite(rows).all(axis=1)
        unscaled = [n for n, ok in zip(names, finite, strict=True) if n in missing and not ok]
    if not unscaled:
        return
    why = (
        " and too few observations to estimate their spread from the innovations"
        if adaptive
        else ""
    )
    raise ValueError(
        f"assimilate_4dvar: the model {getattr(model, 'name', type(model).__name__)!r} "
        f"carries no normalization statistics for {unscaled} (mean 0, std 1: a model "
        f"wrapped without stats){why}, so the default background_error.perturbation_std "
        "(the model's std) would give B a std of amplitude × 1 in each such channel's own "
        "units (K, m s-1 and m2 s-2 alike). Give the climatological std per channel, "
        "background_error=BackgroundError(perturbation_std=...), or the background-error "
        "std B is rescaled to, error_data=BackgroundErrorData(spread=...) (e.g. "
        "xfuxi.background_error_std(past, model=model)), or ready members "
        "(error_data=BackgroundErrorData(members=...)); or wrap the model with "
        "stats=xfuxi.models.base.NormStats(...)"
    )


def resolve_vertical_localization(options: Any, levels: Any) -> Any:
    """The localization :func:`assimilate_4dvar` applies for observations at ``levels``.

    With ``vertical_length_scale`` left unset (None) and observations on more than one
    pressure level, :data:`DEFAULT_VERTICAL_LENGTH_SCALE` (1.0 ln p); on one level (or
    none), no vertical localization. A value given (0: off) and anything that is not a
    :class:`LocalizationOptions` with a horizontal scale are returned as they are.

    Parameters
    ----------
    options : LocalizationOptions, Localization or None
    levels : array-like of float
        The observations' pressure levels (NaN for single-level variables).

    Returns
    -------
    LocalizationOptions, Localization or None

    Examples
    --------
    >>> opts = LocalizationOptions(length_scale=1500.0)
    >>> resolve_vertical_localization(opts, [500.0, 850.0, np.nan]).vertical_length_scale
    1.0
    >>> resolve_vertical_localization(opts, [500.0, 500.0]).vertical_length_scale is None
    True
    >>> off = LocalizationOptions(length_scale=1500.0, vertical_length_scale=0.0)
    >>> resolve_vertical_localization(off, [500.0, 850.0]).vertical_scale is None
    True
    """
    if not isinstance(options, LocalizationOptions) or not options.enabled:
        return options
    if not options.vertical_unset:
        return options
    lev = np.asarray(levels, dtype="float64")
    if np.unique(lev[np.isfinite(lev)]).size > 1:
        return options.replace(vertical_length_scale=DEFAULT_VERTICAL_LENGTH_SCALE)
    return options


def _spread_provenance(spread: Any, shipped: xr.Dataset | None) -> str:
    """How the B variances were set, for the result's provenance."""
    if shipped is not None:
        a = shipped.attrs
        return (
            f"model statistics ({a.get('source', '?')}: lead {a.get('lead_steps', '?')} steps, "
            f"{a.get('n_samples', '?')} samples, {a.get('split', '?')} split)"
        )
    if spread is None or (isinstance(spread, str) and spread == "ensemble"):
        return "ensemble"
    if isinstance(spread, str):
        return "innovations"
    return "given"


def _amplitude_str(amplitude: Any) -> str:
    if isinstance(amplitude, tuple):
        return str(list(amplitude))
    return f"{amplitude}"
