"""Training FuXi-DA: backgrounds from FuXi forecasts, radiances from the imager, truth as target.

For each analysis time ``t`` of a truth run and each background lead ``L`` (6-hour steps),
the background is the frozen forecast model's forecast from the truth at ``t − LΔ`` (its
earlier input ``t − (L+1)Δ``), and the radiances are drawn from the truth by the imager
(:func:`xfuxi.observations.imager.imager_observations`, with its clouds, biases and noise).
The network's analysis ``x_a = x_b + δ`` is scored against the truth by

    L = L_0 + (1/K) Σ_{k=1..K} L_k,

``L_0`` the latitude-weighted L1 of ``x_a`` (normalised by the channels' std) and ``L_k`` that
of the ``k``-th 6-hour forecast from ``x_a`` through the FROZEN forecast model (gradients
flow through it, its weights do not change; its earlier input is the background's previous
step). ``K = 0`` trains on the analysis alone. The optimizer is AdamW with a cosine decay.
The CORR variant is the same network without the observation branch.

Training is resumable: ``checkpoint_dir/latest`` holds the network, the optimizer, the
random state and the history as one checkpoint (:mod:`xfuxi.models.checkpoint`). Started by
``torchrun``, the processes share every global batch (``gloo`` on CPU, ``nccl`` on GPU; each
process its ``LOCAL_RANK`` GPU): each computes the loss of its part, the gradients are
averaged over the processes, and one step equals one step of a single process on the whole
batch. See the documentation (docs/fuxi_da.md).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..assimilation.da import _radiances_for, da_inputs, observation_inputs
from ..config import config_with_legacy
from ..data.channels import channel_name
from ..models.base import ForecastModel, isolated_rng
from ..models.checkpoint import tensor_digest
from ..models.fuxi_da import (
    DA_KIND,
    FuXiDA,
    FuXiDANet,
    assi_from_corr,
    da_model_files,
    da_model_from_files,
    load_da_model,
    n_gradient_inputs,
    n_linear_inputs,
    n_observation_inputs,
    with_departure_context,
    with_linear_update,
)
from ..models.precision import autocast
from ..models.training_state import (
    check_run_directory,
    hold_checkpoint_directory,
    load_training_state,
    save_training_state,
)
from ..observations.imager import ImagerError, imager_observations
from ..options import progress_enabled
from ..verify.weights import area_weights
from .da_config import DAConfig
from .forecast import dist_info
from .loop import LoopPlan, average_gradients, freeze, gradient_step, process_share, run_loop
from .samples import CycledStarts, data_digest, stacked_states

__all__ = [
    "DAConfig",
    "DASamples",
    "da_loss",
    "fit_linear_update",
    "initial_da_network",
    "new_da_network",
    "prepare_da_samples",
    "ridge_by_holdout",
    "train_da",
]

log = logging.getLogger(__name__)

_STATE_FORMAT = "xfuxi-da-trainer/1"
_STATE_KIND = "da-training"


def new_da_network(config: DAConfig, model: ForecastModel) -> FuXiDA:
    """A new (untrained) FuXi-DA network for ``model``'s channels, grid and stats."""
    n_obs = n_observation_inputs(
        len(config.frames), len(config.sensor_channels), departure_input=config.departure_input
    )
    if config.gradient_input and config.observations:
        n_obs += n_gradient_inputs(model.channels)
    if config.departure_context and config.observations:
        n_obs += len(config.sensor_channels)
    with isolated_rng(config.seed):  # the initial weights: of the seed, the caller's stream kept
        net = FuXiDANet(
            model.n_channels,
            n_obs if config.observations else 0,
            width=config.width,
            scales=config.scales,
            linear_inputs=(
                n_linear_inputs(len(config.frames), len(config.sensor_channels))
                if config.linear_update and config.observations
                else 0
            ),
        )
    return FuXiDA(
        net,
        channels=model.channels,
        latitude=model.latitude,
        longitude=model.longitude,
        stats=model.stats,
        sensor_channels=config.sensor_channels if config.observations else (),
        frames=config.frames,
        satellites=config.satellites,
        zenith_input=config.zenith_input,
        position_input=config.position_input,
        departure_input=config.departure_input and config.observations,
        gradient_input=config.gradient_input and config.observations,
        screen_threshold=config.screen_threshold if config.observations else None,
        departure_context=config.departure_context and config.observations,
        linear_update=config.linear_update and config.observations,
        name=config.name,
    )


def initial_da_network(config: DAConfig, model: ForecastModel) -> FuXiDA:
    """The network a run starts from: new, or ``config.init_from`` (see :class:`DAConfig`).

    A network of the kind the run trains (ASSI or CORR) is trained further as it is; a CORR
    network for an ASSI run starts it through :func:`~xfuxi.models.fuxi_da.assi_from_corr`;
    an ASSI network without ``departure_context`` or ``linear_update`` for a run with it
    through :func:`~xfuxi.models.fuxi_da.with_departure_context` or
    :func:`~xfuxi.models.fuxi_da.with_linear_update` (it starts as that network).
    """
    if config.init_from is None:
        return new_da_network(config, model)
    start = load_da_model(config.init_from)
    if start.uses_observations and config.observations:
        if config.departure_context and not start.departure_context:
            start = with_departure_context(start)
        if config.linear_update and not start.linear_update:
            start = with_linear_update(start)
        for what in (
            "departure_input", "gradient_input", "screen_threshold", "departure_context",
            "linear_update",
        ):  # fmt: skip
            if getattr(start, what) != getattr(config, what):
                raise ValueError(
                    f"init_from {config.init_from!r} has {what}={getattr(start, what)}; this "
                    f"run has {what}={getattr(config, what)}"
                )
    if start.uses_observations == config.observations:
        return start
    if start.uses_observations:
        raise ValueError(
            f"init_from {config.init_from!r} is an ASSI network; a CORR run cannot start from it"
        )
    return assi_from_corr(start, new_da_network(config, model))


@dataclasses.dataclass
class DASamples:
    """Prepared training samples (tensors on the CPU).

    ``truth`` (T, C, H, W) holds the whole run; sample ``j`` is analysis time index
    ``index[j]`` with background ``background[j]`` (lead ``lead[j]``; 0 for a forecast from
    a cycled analysis), its previous step ``previous[j]`` and observation features
    ``observations[time_slot[j]]``. The samples from cycled analyses come last.
    """

    truth: torch.Tensor
    index: np.ndarray
    lead: np.ndarray
    background: torch.Tensor
    previous: torch.Tensor
    time_slot: np.ndarray
    observations: torch.Tensor | None
    times: np.ndarray
    cycled_digest: str | None = None  # of the cycled states the last samples came from
    truth_digest: str | None = None  # of the truth (xfuxi.training.samples.data_digest)
    radiances_digest: str | None = None  # of the given radiances (None: drawn by the imager)

    def __len__(self) -> int:
        return int(self.index.size)

    @property
    def n_cycled(self) -> int:
        """How many samples (the last ones) have a forecast from a cycled analysis."""
        return int(np.count_nonzero(self.lead == 0))

    def to(self, device: torch.device) -> DASamples:
        """The same samples with their tensors on ``device``."""
        obs = None if self.observations is None else self.observations.to(device)
        return dataclasses.replace(
            self, truth=self.truth.to(device), background=self.background.to(device),
            previous=self.previous.to(device), observations=obs,
        )  # fmt: skip


def prepare_da_samples(
    truth: xr.Dataset,
    model: ForecastModel,
    network: FuXiDA,
    *,
    leads: tuple[int, ...],
    forecast_steps: int,
    radiances: xr.Dataset | None = None,
    clear_only: bool = False,
    seed: int = 0,
    batch_size: int = 16,
    cycled_states: xr.DataArray | None = None,
    name: str = "truth",
) -> DASamples:
    """Backgrounds (forecasts of the frozen model), radiances and targets for training.

    Parameters
    ----------
    truth : xarray.Dataset
        A regular 6-hourly truth run with the model's variables (and those the imager
        reads).
    model : ForecastModel
        The frozen forecast model.
    network : FuXiDA
        The network to train (its channels, frames and satellites).
    leads : tuple of int
        Forecast steps of the frozen model that make the backgrounds (1: 6-hour
        forecasts), each started ``lead`` steps before an analysis time.
    forecast_steps : int
        ``K``: the truth must reach ``K`` steps after each analysis time.
    radiances : xarray.Dataset, optional
        Radiances at the analysis times (default: drawn with the imager from the truth,
        seeded with ``seed``). Checked as :func:`xfuxi.assimilate_da` checks them (the
        network's grid, channels, frames and satellites; at least one pixel) and, where
        their latitudes run north to south or their longitudes over −180..180, put in
        xfuxi's order (ascending, 0..360) on a copy.
    clear_only : bool, default False
        Set cloudy pixels (the radiances' ``cloudy`` flag, the truth's) missing.
    cycled_states : xarray.DataArray, optional
        Analysed input pairs of a cycled assimilation on the truth's period
        (:func:`xfuxi.assimilation.cycle.open_cycle_states`): each pair at ``t`` run one step
        gives a background at ``t + Δ`` (its previous step the analysis at ``t``), added
        after the lead samples with lead 0. Pairs whose ``t + Δ`` is not an analysis time
        of the samples (too near the ends of the truth) are left out.
    seed : int, default 0
        Seeds the imager's draws when ``radiances`` are not given.
    batch_size : int, default 16
        Backgrounds forecast per call of the frozen model (memory, not the result).
    name : str, default "truth"
        What ``truth`` is called in error messages (``"validation truth"``).

    Raises
    ------
    ValueError
        The truth is too short for the leads, frames and forecast steps, not a regular run
        on the model's step, or on another grid; cycled states with other channels, another
        grid or time step, NaN, or from another period. (``name`` names the truth in the
        messages.)
    xfuxi.data.schema.SchemaError
        NaN or infinite values in the truth.
    xfuxi.observations.imager.ImagerError
        Given radiances that :func:`xfuxi.assimilate_da` would refuse for the network
        (another grid, a channel, frame or satellite it was not trained for, every pixel
        missing, an analysis time absent), or without a ``cloudy`` flag with
        ``clear_only``.
    """
    values, truth = stacked_states(truth, model.channels, name, model)  # NaN, grid: refused
    data = torch.as_tensor(values)
    times = truth["time"].values
    n = data.shape[0]
    step_h = model.timestep_hours
    gaps = np.nonzero(
        np.diff(times.astype("datetime64[ns]")) != np.timedelta64(model.timestep, "ns")
    )[0]
    if gaps.size:
        k = int(gaps[0])
        raise ValueError(
            f"the {name} must be a regular {step_h:g}-hourly run (samples are taken by "
            f"position); it steps from {times[k]} to {times[k + 1]}"
        )
    frame_pad = int(math.ceil(max(abs(f) for f in network.frames) / step_h))
    first = max(leads) + 1
    last = n - 1 - max(forecast_steps, frame_pad)
    first = max(first, frame_pad)
    if last < first:
        raise ValueError(
            f"the {name} has {n} times; leads {list(leads)}, {forecast_steps} forecast "
            f"steps of it and frames {list(network.frames)} h need at least "
            f"{max(leads) + 2 + max(forecast_steps, frame_pad)}"
        )
    idx = np.arange(first, last + 1)
    an_times = times[idx]
    obs = None
    rad_digest = None
    if network.uses_observations:
        if radiances is None:
            radiances = imager_observations(
                truth, satellites=network.satellites, channels=network.sensor_channels,
                frames=network.frames, times=an_times, seed=seed,
            )  # fmt: skip
        else:  # checked and put in xfuxi's order (on a copy) as assimilate_da does
            radiances = _radiances_for(
                radiances, network, allow_missing_channels=False, allow_new_satellites=False,
                training=True,
            )  # fmt: skip
            rad_digest = _radiances_digest(radiances)
        if clear_only and "cloudy" not in radiances:
            raise ImagerError(
                "clear_only sets the pixels of the radiances' 'cloudy' flag missing; the "
                "radiances have no 'cloudy' variable (give them with it, as "
                "xfuxi.imager_observations makes them, or train without clear_only)"
            )
        if clear_only:
            bt = radiances["brightness_temperature"].where(~radiances["cloudy"])
            radiances = radiances.assign(brightness_temperature=bt)
        if not network.departure_input:  # the same features for every lead
            _, obs = da_inputs(truth.sel(time=an_times), radiances, network, times=an_times)
    bgs, prevs, index, lead_of, slot = [], [], [], [], []
    dev = next(model.parameters(), data).device  # the forecasts run where the model is
    with torch.no_grad():
        for lead in leads:
            for i in range(0, idx.size, batch_size):
                j = idx[i : i + batch_size]
                prev, cur = data[j - lead - 1].to(dev), data[j - lead].to(dev)
                for _ in range(lead):
                    nxt = model(torch.stack([prev, cur], 1))
                    prev, cur = cur, nxt
                bgs.append(cur.cpu())
                prevs.append(prev.cpu())
                index.append(j)
                lead_of.append(np.full(j.size, lead))
                slot.append(np.arange(i, i + j.size))
        digest = None
        if cycled_states is not None:  # backgrounds: forecasts from the cycled analyses
            cyc = CycledStarts(
                cycled_states, times, idx - 1, [channel_name(c) for c in model.channels],
                tuple(data.shape[-2:]), model.timestep, data.device,
            )  # fmt: skip
            pairs = cyc.values.flatten(0, 1)  # (time x member, 2, C, H, W)
            at = cyc.index.repeat_interleave(cyc.n_members).numpy() + 1
            for i in range(0, at.size, batch_size):
                pair = pairs[i : i + batch_size].to(dev)
                bgs.append(model(pair).cpu())
                prevs.append(pair[:, 1].cpu())
                index.append(at[i : i + batch_size])
                lead_of.append(np.zeros(pair.shape[0], dtype=int))
                slot.append(at[i : i + batch_size] - first)
            digest = cyc.digest()
    background = torch.cat(bgs)
    time_slot = np.concatenate(slot)
    index_all = np.concatenate(index)
    if network.uses_observations and network.departure_input:
        # departures depend on the background: features per sample
        obs = observation_inputs(background, radiances, network, times=times[index_all])
        time_slot = np.arange(index_all.size)
    return DASamples(
        truth=data,
        index=index_all,
        lead=np.concatenate(lead_of),
        background=background,
        previous=torch.cat(prevs),
        time_slot=time_slot,
        observations=obs,
        times=an_times,
        cycled_digest=digest,
        truth_digest=data_digest(times, values),
        radiances_digest=rad_digest,
    )


def _radiances_digest(radiances: xr.Dataset) -> str:
    """A short sha256 of a checked radiances Dataset (:func:`~xfuxi.observations.imager.
    check_radiances`, with a time coordinate), for a resumed run to refuse other radiances:
    their times, frames, channels and zenith angles, and, as
    :func:`~xfuxi.training.samples.data_digest` takes them, the values of about 64 of their
    times' brightness temperatures and cloud flags."""
    import hashlib

    times = np.atleast_1d(radiances["time"].values)
    h = hashlib.sha256()
    for name in ("brightness_temperature", "cloudy"):
        if name not in radiances:
            continue
        field = radiances[name]
        field = field if "time" in field.dims else field.expand_dims("time")
        h.update(data_digest(times, np.asarray(field.transpose("time", ...).values)).encode())
    for name in ("frame", "sensor_channel"):
        if name in radiances.coords:
            h.update(np.atleast_1d(radiances[name].values).astype(str).tobytes())
    h.update(np.ascontiguousarray(radiances["zenith_angle"].values, dtype="float64").tobytes())
    return h.hexdigest()[:16]


def da_loss(
    network: FuXiDA,
    model: ForecastModel,
    samples: DASamples,
    pick: np.ndarray,
    *,
    forecast_steps: int,
    weights: torch.Tensor,
    loss_scale: str = "std",
    drop: torch.Tensor | None = None,
    activity_weight: float = 0.0,
    forecast_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L_0 + w (1/K) Σ L_k`` on the samples ``pick``; the parts as tensors (``l0``, ``lk``).

    ``w`` is ``forecast_weight`` (1: the paper's loss; the part ``lk`` is unweighted).

    The L1 is of fields divided by the channels' std (``loss_scale="std"``) or by the std of
    their 6-hour differences (``"diff_std"``, about the size of a 6-hour background's error).
    ``drop`` (samples, imager channels), boolean: channels made missing for these samples.
    ``activity_weight`` > 0 adds that times ``L_A``, the mean over samples and channels of
    ``|A(x_a) − A(x_t)|``, ``A`` the area-weighted RMS departure from the zonal mean (the
    eddy activity) of a field in the same units: a penalty on analyses smoother (or rougher)
    than the truth, which the L1 alone rewards where the background is far off (part
    ``activity``).
    """
    xb = samples.background[pick]
    obs = None if samples.observations is None else samples.observations[samples.time_slot[pick]]
    if drop is not None and obs is not None:  # whole imager channels missing (training)
        obs = network.drop_channels(obs, drop)
    xa = xb + network(xb, obs)
    std = network._diff_std if loss_scale == "diff_std" else network._std

    def l1(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (((x - target) / std).abs() * weights).mean()

    t_idx = torch.as_tensor(samples.index[pick])
    truth = samples.truth[t_idx]
    loss0 = l1(xa, truth)
    parts = {"l0": loss0.detach()}
    loss = loss0
    if activity_weight > 0:

        def activity(x: torch.Tensor) -> torch.Tensor:  # (B, C)
            eddy = (x - x.mean(-1, keepdim=True)) / std
            return torch.sqrt((eddy**2 * weights).mean((-2, -1)) / weights.mean() + 1e-12)

        la = (activity(xa) - activity(truth)).abs().mean()
        parts["activity"] = la.detach()
        loss = loss + activity_weight * la
    if forecast_steps > 0:
        prev, cur = samples.previous[pick], xa
        lk = xa.new_zeros(())
        for k in range(1, forecast_steps + 1):
            nxt = model(torch.stack([prev, cur], 1))
            lk = lk + l1(nxt, samples.truth[t_idx + k])
            prev, cur = cur, nxt
        lk = lk / forecast_steps
        parts["lk"] = lk.detach()
        loss = loss + forecast_weight * lk
    return loss, parts


#: ridge parameters tried by :func:`fit_linear_update` (times the mean of the normal
#: matrix's diagonal)
LINEAR_FIT_RIDGE = tuple(10.0**k for k in range(-7, 1))


def ridge_by_holdout(
    fit: tuple[torch.Tensor, torch.Tensor],
    held: tuple[torch.Tensor, torch.Tensor, torch.Tensor, int],
    ridges: tuple[float, ...],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ridge regression from normal equations, its parameter chosen per output on held-out rows.

    ``fit`` is ``(XᵀX, XᵀY)`` of the rows fitted on, ``held`` ``(XᵀX, XᵀY, Σ y², n)`` of the
    held-out rows (``Σ y²`` per output). Each ridge ``λ`` (times the mean of the fit part's
    ``XᵀX`` diagonal) is scored by the mean squared error of the held-out rows, computed from
    these sums; then each output is refitted on all rows with its best ``λ`` (times the
    mean of the whole diagonal).

    Returns
    -------
    coef : Tensor (P, C)
    best : Tensor (C,) of int
        Index into ``ridges`` of each output's choice.
    errors : Tensor (len(ridges), C)
        The held-out mean squared errors.

    Examples
    --------
    >>> x = torch.randn(200, 3, dtype=torch.float64)
    >>> y = x @ torch.tensor([[1.0], [2.0], [-1.0]], dtype=torch.float64)
    >>> coef, best, _ = ridge_by_holdout((x[:150].T @ x[:150], x[:150].T @ y[:150]),
    ...     (x[150:].T @ x[150:], x[150:].T @ y[150:], (y[150:] ** 2).sum(0), 50), (1e-6, 1.0))
    >>> coef.squeeze(1).round(decimals=3).tolist(), best.tolist()
    ([1.0, 2.0, -1.0], [0])
    """
    (g_fit, r_fit), (g_held, r_held, yy_held, n_held) = fit, held
    eye = torch.eye(g_fit.shape[0], dtype=g_fit.dtype, device=g_fit.device)
    errors = []
    for lam in ridges:
        coef = torch.linalg.solve(g_fit + lam * g_fit.diagonal().mean() * eye, r_fit)
        quad = torch.einsum("pc,pq,qc->c", coef, g_held, coef)
        errors.append((quad - 2 * (coef * r_held).sum(0) + yy_held) / n_held)
    errors_t = torch.stack(errors)  # (ridge, C)
    best = errors_t.argmin(0)
    g_all, r_all = g_fit + g_held, r_fit + r_held
    scale = g_all.diagonal().mean()
    coef = torch.stack(
        [
            torch.linalg.solve(g_all + ridges[int(b)] * scale * eye, r_all[:, c])
            for c, b in enumerate(best)
        ],
        1,
    )
    return coef, best, errors_t


def fit_linear_update(
    network: FuXiDA,
    samples: DASamples,
    *,
    max_samples: int = 512,
    holdout: float = 0.2,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Set the linear update of ``network`` to the least-squares fit on ``samples`` (in place).

    For up to ``max_samples`` samples spread over ``samples``, the target is the error of the
    network's own analysis ``x_t − (x_b + network_increment)`` in units of the channels'
    6-hour difference std, the regressors are the linear update's inputs around each grid
    point (:meth:`~xfuxi.models.fuxi_da.FuXiDA.update_features`, the convolution's window)
    and a constant, each row weighted by the grid point's area. Per state channel, the
    ridge parameter (of :data:`LINEAR_FIT_RIDGE`) with the lowest error on the last
    ``holdout`` of those samples is chosen and the fit repeated on all of them. The
    convolution then is the best linear map of the departures from the network's analysis
    to its remaining error, the start that gradient steps (bounded in size by AdamW) would
    take thousands of steps to reach.

    Returns
    -------
    dict
        ``ridge`` (per channel), ``mse_before`` and ``mse_after`` (per channel, on the
        held-out samples, normalised units), ``samples``.

    Raises
    ------
    ValueError
        ``network`` has no linear update, or there are too few samples to hold some out.
    """
    if not network.linear_update:
        raise ValueError("fit_linear_update needs a network with linear_update")
    n = len(samples)
    pick = np.unique(np.linspace(0, n - 1, min(n, max_samples)).round().astype(int))
    cut = int(round(len(pick) * (1.0 - holdout)))
    if cut < 1 or cut >= len(pick):
        raise ValueError(f"{len(pick)} samples are too few to hold out {holdout:.0%} of them")
    conv = network.net.linear
    k, pad = conv.kernel_size[0], conv.kernel_size[0] // 2
    dev = conv.weight.device
    w = torch.as_tensor(area_weights(network.latitude).values, dtype=torch.float64, device=dev)
    sw = torch.sqrt(w / w.mean()).repeat_interleave(len(network.longitude))  # (H W,)
    stats = []
    was_training = network.training
    network.eval()
    with torch.no_grad():
        for part in (pick[:cut], pick[cut:]):
            g = r = yy = 0.0
            count = 0
            for i in range(0, len(part), batch_size):
                j = part[i : i + batch_size]
                xb = samples.background[j].to(dev)
                obs = samples.observations[samples.time_slot[j]].to(dev)
                xt = samples.truth[samples.index[j]].to(dev)
                first = network.network_increment(xb, obs)
                y = ((xt - xb - first) / network._diff_std).flatten(2).double()  # (B, C, HW)
                feats = network.update_features(xb + first, obs)
                feats = torch.cat([feats[..., -pad:], feats, feats[..., :pad]], -1)
                x = torch.nn.functional.unfold(
                    torch.nn.functional.pad(feats, (0, 0, pad, pad)), k
                ).double()  # (B, P, HW): the window around each point, the conv's order
                x, y = x.transpose(1, 2).flatten(0, 1), y.transpose(1, 2).flatten(0, 1)
                rw = sw.repeat(len(j))
                seen = x.abs().sum(1) > 0  # rows outside every window: the constant only
                xs = torch.cat([x[seen], torch.ones_like(x[seen, :1])], 1) * rw[seen, None]
                ys = y[seen] * rw[seen, None]
                g = g + xs.T @ xs
                r = r + xs.T @ ys
                g[-1, -1] += (rw[~seen] ** 2).sum()
                r[-1] += ((rw[~seen] ** 2)[:, None] * y[~seen]).sum(0)
                yy = yy + ((y * rw[:, None]) ** 2).sum(0)
                count += y.shape[0]
            stats.append((g, r, yy, count))
    (g_fit, r_fit, _, _), held = stats
    coef, best, errors_t = ridge_by_holdout((g_fit, r_fit), held, LINEAR_FIT_RIDGE)  # (P+1, C)
    yy_held, n_held = held[2], held[3]
    n_state, n_in = conv.weight.shape[:2]
    with torch.no_grad():
        conv.weight.copy_(coef[:-1].T.reshape(n_state, n_in, k, k).to(conv.weight.dtype))
        conv.bias.copy_(coef[-1].to(conv.bias.dtype))
    network.train(was_training)
    return {
        "ridge": [LINEAR_FIT_RIDGE[int(b)] for b in best],
        "mse_before": (yy_held / n_held).tolist(),
        "mse_after": errors_t[best, torch.arange(len(best))].tolist(),
        "samples": len(pick),
    }


def _draw(
    rng: np.random.Generator, n: int, n_cycled: int, batch: int, fraction: float
) -> np.ndarray:
    """A batch of sample indices: ``round(fraction · batch)`` of them from the last
    ``n_cycled`` samples (forecasts from cycled analyses), the others from the rest; without
    cycled samples, ``batch`` of all ``n``."""
    if n_cycled == 0:
        return rng.choice(n, size=batch, replace=n < batch)
    k = int(round(fraction * batch))
    n_lead = n - n_cycled
    cyc = n_lead + rng.choice(n_cycled, size=k, replace=n_cycled < k)
    lead = rng.choice(n_lead, size=batch - k, replace=n_lead < batch - k)
    return np.concatenate([lead, cyc])


def _run_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings a resumed run must share (not the wall-time limit, the logging or where
    the checkpoint is).

    A checkpoint written before ``precision`` existed ran in float32, one written before
    ``departure_input``, ``loss_scale`` and ``init_from`` existed without departures, with
    the std and from a new network.
    """
    settings = {
        "precision": "float32", "departure_input": False, "loss_scale": "std", "init_from": None,
        "channel_dropout": 0.0, "gradient_input": False, "screen_threshold": None,
        "cycled_fraction": 0.5, "departure_context": False, "activity_weight": 0.0,
        "linear_update": False, "fit_linear_update": True, "forecast_weight": 1.0, **config,
    }  # fmt: skip
    free = ("max_minutes", "resume", "log_every", "checkpoint_dir", "device")
    return {k: v for k, v in settings.items() if k not in free}


def train_da(
    truth: xr.Dataset,
    model: ForecastModel,
    *,
    config: DAConfig | dict[str, Any] | None = None,
    network: FuXiDA | None = None,
    radiances: xr.Dataset | None = None,
    validation: xr.Dataset | None = None,
    cycled_states: xr.DataArray | None = None,
    progress: bool | None = None,
    **legacy: Any,
) -> tuple[FuXiDA, dict[str, list[float]]]:
    """Train a FuXi-DA network (or its CORR variant) with the joint loss.

    Parameters
    ----------
    truth : xarray.Dataset
        A regular 6-hourly truth run (the world): backgrounds are forecasts from it,
        radiances are drawn from it, and it is the target.
    model : ForecastModel
        The forecast model; frozen (its weights are not modified).
    config : DAConfig or dict, optional
        The run's settings (default ``DAConfig()``), saved with every checkpoint.
        ``config.checkpoint_dir``: ``checkpoint_dir/latest`` is written every
        ``config.checkpoint_every`` steps and at the end; with ``config.resume`` a run
        continues from it exactly. With
        ``precision="bfloat16"`` the loss (the network and the frozen model's forecast
        steps) runs under :func:`torch.autocast` on the network's device; the backgrounds
        are made in float32 and the weights and optimizer state stay float32
        (:mod:`xfuxi.models.precision`). ``config.device`` (default: the ``device``
        option) holds the network, the frozen model (moved back where it was at the end)
        and the samples; under ``torchrun`` each process takes its share of every batch
        (module docstring).
    network : FuXiDA, optional
        Starting network (default: a new one from the config); trained in place.
    radiances : xarray.Dataset, optional
        Radiances at the analysis times (default: drawn by the imager with ``config.seed``),
        checked as :func:`prepare_da_samples` checks them. A resumed run must be given the
        same radiances (or none, if it drew them).
    validation : xarray.Dataset, optional
        A held-back truth run: the analysis L1 (``L_0``) on up to 16 of its samples is
        logged every ``config.val_every`` steps.
    cycled_states : xarray.DataArray, optional
        Analysed input pairs of a cycled assimilation on the truth's period
        (:func:`xfuxi.assimilation.cycle.open_cycle_states`, ``(time, member, pair, channel,
        latitude, longitude)``): their 6-hour forecasts are backgrounds too, with the errors
        of a cycle (``prepare_da_samples``), and a share ``config.cycled_fraction`` of every
        batch is drawn from them — the network learns to analyse the backgrounds it meets
        when it cycles (FengWu-Adas trains on its own cycled backgrounds; docs/fuxi_da.md).
        A resumed run must be given the same states.
    progress : bool, optional
    **legacy
        ``checkpoint_dir=`` (now a field of :class:`DAConfig`) still works, with a
        ``DeprecationWarning``.

    Returns
    -------
    network : FuXiDA
        In eval mode on the CPU, with its training settings in ``metadata``.
    history : dict
        ``step``, ``loss``, ``l0``, ``lk`` per step; ``val_step``, ``val_l0``.

    Raises
    ------
    ValueError
        Both ``network`` and ``config.init_from``; a network for other channels than
        ``model``'s; a ``batch_size`` larger than the training samples the truth gives;
        or, resuming, a checkpoint of a run with other settings, truth, radiances, forecast
        model or cycled states.
    xfuxi.files.OutputExistsError
        ``config.checkpoint_dir`` holds something other than an xfuxi training checkpoint.
    xfuxi.files.OutputInUseError
        Another run is training into ``config.checkpoint_dir``: it holds the directory's
        lock (``.<name>.lock`` beside it) for as long as it runs.

    Examples
    --------
    Two steps on a tiny random world, with a persistence forecast model and no forecast
    term (``forecast_steps=0``):

    >>> import numpy as np, pandas as pd, torch, xarray as xr, xfuxi
    >>> from xfuxi.models.base import NormStats
    >>> rng = np.random.default_rng(0)
    >>> lat, lon, levels = [-45.0, -15.0, 15.0, 45.0], np.arange(8) * 45.0, [250, 500, 700, 850]
    >>> def column(values, noise):  # a profile plus noise at every time and grid point
    ...     shape = (6, 4, 4, 8)
    ...     return ("time", "level", "latitude", "longitude"), (
    ...         np.array(values)[:, None, None] + noise * rng.standard_normal(shape))
    >>> truth = xr.Dataset(
    ...     {"temperature": column([220.0, 250.0, 270.0, 280.0], 2.0),
    ...      "passive_tracer": column([0.05, 0.2, 0.4, 0.5], 0.01),
    ...      "surface_pressure": (("time", "latitude", "longitude"),
    ...                           1e5 + 500 * rng.standard_normal((6, 4, 8)))},
    ...     coords={"time": pd.date_range("2000-01-01", periods=6, freq="6h"),
    ...             "level": levels, "latitude": lat, "longitude": lon})
    >>> class NoTendency(torch.nn.Module):
    ...     def forward(self, x):
    ...         return torch.zeros_like(x[:, 1])
    >>> channels = [(v, lv) for v in ("temperature", "passive_tracer") for lv in levels]
    >>> channels.append(("surface_pressure", None))
    >>> mean = np.array([220, 250, 270, 280, 0.05, 0.2, 0.4, 0.5, 1e5])
    >>> std = np.array([2, 2, 2, 2, 0.01, 0.01, 0.01, 0.01, 500.0])
    >>> model = xfuxi.ForecastModel(NoTendency(), channels=channels, latitude=lat,
    ...                             longitude=lon, stats=NormStats(mean, std, std))
    >>> cfg = DAConfig(steps=2, batch_size=2, leads=(1,), forecast_steps=0, width=4,
    ...                scales=2, sensor_channels=("wv6.2", "ir10.8"), frames=(0.0,))
    >>> network, history = train_da(truth, model, config=cfg, progress=False)
    >>> history["step"], network.sensor_channels, network.training
    ([1, 2], ('wv6.2', 'ir10.8'), False)
    """
    cfg = config_with_legacy(DAConfig, config, legacy, "train_da")
    # the checkpoint directory is this run's alone from before its first check of it until
    # the run ends: a second run given it meanwhile fails at once (OutputInUseError)
    with hold_checkpoint_directory(cfg.checkpoint_dir, rank=dist_info()[0]):
        return _train_da(
            truth, model, cfg, network=network, radiances=radiances, validation=validation,
            cycled_states=cycled_states, progress=progress,
        )  # fmt: skip


def _train_da(
    truth: xr.Dataset,
    model: ForecastModel,
    cfg: DAConfig,
    *,
    network: FuXiDA | None,
    radiances: xr.Dataset | None,
    validation: xr.Dataset | None,
    cycled_states: xr.DataArray | None,
    progress: bool | None,
) -> tuple[FuXiDA, dict[str, list[float]]]:
    """The run of :func:`train_da` (its checkpoint directory locked by the caller)."""
    from tqdm.auto import tqdm

    rank, world, local, dev = process_share(cfg.batch_size, cfg.device, dist_info())
    if network is not None and cfg.init_from is not None:
        raise ValueError("give either network= or config.init_from, not both")
    net = network if network is not None else initial_da_network(cfg, model)
    if tuple(net.channels) != tuple(model.channels):
        raise ValueError(
            f"the network's channels differ from the forecast model {model.name!r}'s; train a "
            "network for this model"
        )
    ckpt = Path(cfg.checkpoint_dir).expanduser() if cfg.checkpoint_dir is not None else None
    if ckpt is not None:  # before any work: nothing of the user's is written into
        check_run_directory(ckpt, kind=_STATE_KIND, outputs={"model": DA_KIND})
    saved = None
    if cfg.resume and ckpt is not None:
        saved = load_training_state(ckpt / "latest", kind=_STATE_KIND, state_format=_STATE_FORMAT)
    history: dict[str, list[float]] = {
        k: [] for k in ("step", "loss", "l0", "lk", "val_step", "val_l0")
    }
    start = 0
    if saved is not None:
        if _run_settings(saved.state.get("config") or {}) != _run_settings(cfg.to_dict()):
            raise ValueError(
                f"{saved.path} holds a run with other settings; use another checkpoint "
                "directory or the same config"
            )
        net.net.load_state_dict(da_model_from_files(saved.files, saved.path).net.state_dict())
        start = int(saved.state["step"])
        history = saved.state["history"]
        log.info("resumed FuXi-DA training from %s at step %d", saved.path, start)

    home = next(model.parameters(), torch.empty(0)).device
    restore_mode = freeze(model.to(dev))

    def restore() -> None:  # the caller's model as it was: mode, gradients, device
        restore_mode()
        model.to(home)

    net.to(dev)
    t0 = time.monotonic()
    samples = prepare_da_samples(
        truth, model, net, leads=cfg.leads, forecast_steps=cfg.forecast_steps,
        radiances=radiances, clear_only=cfg.clear_only, seed=cfg.seed,
        cycled_states=cycled_states,
    )  # fmt: skip
    n_cyc = samples.n_cycled
    if cfg.batch_size > len(samples) - n_cyc:
        restore()
        raise ValueError(
            f"batch_size {cfg.batch_size} exceeds the {len(samples) - n_cyc} training samples "
            "the truth gives for these leads, frames and forecast steps; give a longer truth "
            "or a smaller batch_size"
        )
    if saved is not None and saved.state.get("cycled_states") != samples.cycled_digest:
        restore()
        raise ValueError(
            f"{saved.path} was trained with other cycled states (or without them); give the "
            "same cycled_states or use another checkpoint directory"
        )
    run_data = {
        "truth": samples.truth_digest,
        "radiances": samples.radiances_digest,  # None: drawn by the imager from the truth
        "forecast_model": tensor_digest(model),
    }
    if saved is not None:  # (checkpoints of earlier releases recorded none of them)
        other = [k for k, v in run_data.items() if saved.state.get(k, v) != v]
        if other:
            restore()
            what = {"radiances": "other radiances (given or drawn by the imager)"}
            raise ValueError(
                f"{saved.path} was trained on "
                f"{' and '.join(what.get(k, f'another {k}') for k in other)} "
                f"({', '.join(other)} differ); give the same or use another checkpoint "
                "directory"
            )
    val = None
    if validation is not None:
        val = prepare_da_samples(
            validation, model, net, leads=cfg.leads[:1], forecast_steps=0,
            clear_only=cfg.clear_only, seed=cfg.seed + 1, name="validation truth",
        )  # fmt: skip
    samples = samples.to(dev)
    val = None if val is None else val.to(dev)
    log.info("prepared %d samples (%d from cycled analyses) in %.0f s", len(samples), n_cyc,
             time.monotonic() - t0)  # fmt: skip
    if (
        saved is None and net.linear_update and cfg.fit_linear_update
        and not any(bool(p.any()) for p in net.net.linear.parameters())  # a new update
    ):  # fmt: skip
        t0 = time.monotonic()
        fit = fit_linear_update(net, samples)
        log.info(
            "linear update fitted by least squares on %d samples in %.0f s: held-out error "
            "%.4f -> %.4f (mean over channels, normalised)", fit["samples"],
            time.monotonic() - t0, np.mean(fit["mse_before"]), np.mean(fit["mse_after"]),
        )  # fmt: skip
    weights = torch.as_tensor(area_weights(model.latitude).values, dtype=torch.float32, device=dev)
    weights = weights.view(1, 1, -1, 1)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(1.0, (start + i) / max(1, cfg.steps))))
    )
    rng = np.random.default_rng([cfg.seed, 7])
    if saved is not None:
        saved.restore_optimizer(opt, param_groups=False)
        rng.bit_generator.state = saved.state["rng"]

    def _validate(step: int) -> None:
        if val is None:
            return
        net.eval()
        pick = np.linspace(0, len(val) - 1, min(16, len(val))).round().astype(int)
        with torch.no_grad(), autocast(dev, cfg.precision):
            _, parts = da_loss(
                net, model, val, pick, forecast_steps=0, weights=weights, loss_scale=cfg.loss_scale
            )
        net.train()
        history["val_step"].append(step)
        history["val_l0"].append(float(parts["l0"]))
        log.info("step %d: validation analysis L1 %.5f", step, float(parts["l0"]))

    def _save(step: int) -> None:
        if ckpt is None:
            return
        if world > 1:  # every process has finished the step; one writes
            import torch.distributed as dist

            dist.barrier()
            if rank != 0:
                return
        ckpt.mkdir(parents=True, exist_ok=True)
        net.metadata = {"step": step, "base_model": model.name, "train_config": cfg.to_dict(),
                        "cycled_states": samples.cycled_digest}  # fmt: skip
        save_training_state(
            ckpt / "latest", da_model_files(net), optimizer=opt,
            state={"step": step, "history": history, "rng": rng.bit_generator.state,
                   "config": cfg.to_dict(), "world_size": world,
                   "cycled_states": samples.cycled_digest, **run_data},
            kind=_STATE_KIND, state_format=_STATE_FORMAT,
        )  # fmt: skip

    def _advance(step: int) -> dict[str, float]:
        # the global batch is drawn alike on every process; each takes its part
        pick = _draw(rng, len(samples), n_cyc, cfg.batch_size, cfg.cycled_fraction)
        drop = None
        if cfg.channel_dropout > 0 and net.uses_observations:
            drop = torch.as_tensor(
                rng.random((len(pick), len(net.sensor_channels))) < cfg.channel_dropout
            )
        mine = slice(rank * local, (rank + 1) * local)
        pick = pick[mine]
        drop = None if drop is None else drop[mine].to(dev)
        with autocast(dev, cfg.precision):
            loss, parts = da_loss(
                net,
                model,
                samples,
                pick,
                forecast_steps=cfg.forecast_steps,
                weights=weights,
                loss_scale=cfg.loss_scale,
                drop=drop,
                activity_weight=cfg.activity_weight,
                forecast_weight=cfg.forecast_weight,
            )
        lk = parts.get("lk", loss.new_full((), math.nan))
        values = torch.stack([loss.detach(), parts["l0"], lk]).float()
        gradient_step(
            loss, net.parameters(), opt, sched, grad_clip=cfg.grad_clip,
            where=f"step {step}: {dict(zip(('loss', 'l0', 'lk'), values.tolist()))}",
            before_clip=(lambda: average_gradients(net, world)) if world > 1 else None,
        )  # fmt: skip
        if world > 1:  # the global batch's losses, as one process would record them
            import torch.distributed as dist

            dist.all_reduce(values)
            values /= world
        return dict(zip(("loss", "l0", "lk"), values.tolist()))

    def _report(step: int, per_step: float) -> None:
        log.info(
            "step %d: loss %.5f, L0 %.5f (means of the last %d), %.2f s/step", step,
            float(np.mean(history["loss"][-cfg.log_every :])),
            float(np.mean(history["l0"][-cfg.log_every :])), cfg.log_every, per_step,
        )  # fmt: skip

    show = progress_enabled(progress) and rank == 0
    bar = tqdm(total=cfg.steps, initial=start, desc="train FuXi-DA", disable=not show)
    plan = LoopPlan(
        "step", cfg.steps, cfg.log_every, cfg.val_every, cfg.checkpoint_every, cfg.max_minutes,
        {"l0": ".4f"},
    )  # fmt: skip
    net.train()
    try:
        step = run_loop(plan, start, history, advance=_advance, validate=_validate, save=_save,
                        report=_report, bar=bar, logger=log)  # fmt: skip
    finally:
        bar.close()
        restore()
        opt.zero_grad(set_to_none=True)  # no gradient buffers left on the returned network
    net.metadata = {
        "step": step, "base_model": model.name, "train_config": cfg.to_dict(),
        "world_size": world, "cycled_states": samples.cycled_digest,
    }  # fmt: skip
    return net.cpu().eval(), history
