"""Training of the FuXi forecast model (FuXi's recipe, sized for a CPU).

:func:`train_forecast` fits a :class:`~xfuxi.models.base.ForecastModel` around a
:class:`~xfuxi.models.fuxi.FuXiNet` to pairs of consecutive 6-hourly states, with the
settings of a :class:`~xfuxi.training.config.TrainConfig`:

* loss: the latitude-weighted L1 error of the normalised fields (FuXi, Chen et al. 2023,
  eq. 1; :func:`~xfuxi.training.losses.forecast_loss`), averaged over channels, grid points
  and, with ``rollout_steps > 1``, over the autoregressive steps (backpropagating through
  the rollout, FuXi's fine-tuning stage);
* AdamW with linear warm-up and cosine decay to ``min_lr_ratio · lr``, gradient clipping;
* optional gradient checkpointing of the transformer blocks;
* ``precision="bfloat16"``: mixed precision (the forward pass and the loss under
  :func:`torch.autocast`; float32 weights, gradients and optimizer state;
  :mod:`~xfuxi.models.precision`);
* validation loss on a held-out period every ``val_every`` steps;
* checkpoints in ``checkpoint_dir``: a loadable model checkpoint (``model.safetensors`` +
  ``config.json``) plus ``optimizer.safetensors`` and ``trainer.json`` (which also holds the
  run's configuration as JSON), written as one unit with a ``manifest.json`` of their sha256
  (:func:`xfuxi.models.training_state.save_training_state`: a run killed while writing leaves
  the previous checkpoint whole); re-running with the same arguments resumes exactly where
  an interrupted run stopped (the sample order is a function of the seed and the step
  only), and an incomplete or corrupt checkpoint is refused, never resumed from;
* DistributedDataParallel when started by ``torchrun`` (``gloo`` on CPU, ``nccl`` on GPU):
  each process takes its share of every global batch, and of the step's random draws
  (input perturbations, cycled states, tracer anomalies), which every process makes for
  the whole batch as one process does; the free runs of ``climate_runs`` are each
  process's own (docs/scaling.md).

The samples live in :mod:`~xfuxi.training.samples`, the losses in
:mod:`~xfuxi.training.losses`, the tracer-anomaly objective in
:mod:`~xfuxi.training.anomalies`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..data.channels import Channel, channel_name, channels_of
from ..data.schema import SchemaError
from ..data.stats import normalization_stats
from ..grid import is_whole_circle, longitude_gaps
from ..models.base import ForecastModel, NormStats, isolated_rng
from ..models.checkpoint import WEIGHTS, model_files, tensors_from_bytes
from ..models.fuxi import build_fuxi
from ..models.precision import autocast
from ..models.registry import load_model
from ..models.rollout import copy_model
from ..models.training_state import (
    check_training_directory,
    hold_checkpoint_directory,
    load_training_state,
    save_training_state,
)
from ..options import progress_enabled
from ..verify.weights import area_weights
from .anomalies import AnomalySamples, anomaly_samples
from .climate import FreeRunPool
from .config import TrainConfig, config_with_legacy
from .loop import process_share
from .losses import amse_loss, forecast_loss
from .samples import (
    CycledStarts,
    check_layout,
    data_digest,
    regular_starts,
    stacked_states,
    start_states,
)

# amse_loss and anomaly_samples are re-exported (their documented home until this split)
__all__ = ["TrainConfig", "amse_loss", "anomaly_samples", "train_forecast"]

log = logging.getLogger(__name__)


_STATE_FORMAT = "xfuxi-trainer/1"
_STATE_KIND = "forecast-training"


def _lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    frac = (step - warmup) / max(total - warmup, 1)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))


def _sample_starts(times: np.ndarray, step: np.timedelta64, horizon: int) -> np.ndarray:
    """Indices ``i`` such that times ``i-1 .. i+horizon`` are consecutive ``step`` apart."""
    return regular_starts(times, step, horizon + 2) + 1


def _rollout_loss(
    model: torch.nn.Module,
    base: ForecastModel,
    data: torch.Tensor,
    starts: np.ndarray,
    k: int,
    w: torch.Tensor,
    lead: ForecastModel | None = None,
    lead_steps: int = 0,
    loss: str = "l1",
    perturbation: torch.Tensor | None = None,
    inputs: tuple[torch.Tensor, ...] | None = None,
) -> torch.Tensor:
    if inputs is not None:  # pairs a cycled assimilation made, with their true targets
        prev, curr, idx = inputs
    else:
        prev, curr, idx = start_states(data, torch.from_numpy(starts), lead, lead_steps)
    if perturbation is not None:  # the same on both input times; the targets stay true
        prev, curr = prev + perturbation, curr + perturbation
    total = 0.0
    for s in range(k):
        pred = model(torch.stack([prev, curr], dim=1))
        total = total + forecast_loss(base, pred, data[idx + 1 + s], w, loss)
        prev, curr = curr, pred
    return total / k


def input_perturbations(
    data: torch.Tensor,
    n: int,
    scale: float,
    seed: int,
    step: int,
    rank: int = 0,
    world: int = 1,
) -> torch.Tensor:
    """Balanced perturbations ``scale · (x_a − x_b)`` of ``n`` samples: a training step's.

    ``x_a``, ``x_b`` are two states of the training data drawn at random (reproducibly from
    the run's seed and the step, so a resumed run draws the same). ``n`` is the global
    batch's size: in a distributed run every process draws the whole batch's pairs, as one
    process does, and returns the ``n / world`` of its ``rank`` (so the processes together
    perturb the global batch as one process would). The
    difference of two states of the same atmosphere is in its balance, with its scales and
    its vertical structure, like an analysis error; ``scale`` 0.2 gives perturbations of
    about 0.28 climatological standard deviations. A model trained to forecast the truth
    from inputs perturbed so learns to carry analysis-size errors without amplifying them
    (see docs/cycling.md, Stability of the forecast model).
    """
    g = np.random.default_rng([seed, step, 0, 17])  # (0: the single-process run's key)
    pick = g.integers(0, data.shape[0], size=(2, n))
    local = n // world
    pick = torch.as_tensor(pick[:, rank * local : (rank + 1) * local], device=data.device)
    return scale * (data[pick[0]] - data[pick[1]])


def _save_state(
    directory: Path,
    model: ForecastModel,
    opt: torch.optim.Optimizer,
    state: dict[str, Any],
    pool: FreeRunPool | None = None,
) -> None:
    """Write the training checkpoint (model, optimizer, trainer state, free runs) as one unit."""
    training = {k: v for k, v in state["signature"].items() if k != "channels"}
    files = model_files(model, metadata={"history": state["history"], "training": training})
    save_training_state(
        directory, files, optimizer=opt, state=state, kind=_STATE_KIND,
        state_format=_STATE_FORMAT, tensors=None if pool is None else pool.state_tensors(),
    )  # fmt: skip


def _load_state(
    directory: Path,
    model: ForecastModel,
    opt: torch.optim.Optimizer,
    signature: dict[str, Any],
    pool: FreeRunPool | None = None,
) -> dict[str, Any] | None:
    """Restore model and optimizer from a verified training checkpoint; ``None`` if none yet."""
    saved = load_training_state(directory, kind=_STATE_KIND, state_format=_STATE_FORMAT)
    if saved is None:
        return None
    state = saved.state
    old = state.get("signature") or {}
    # a checkpoint of an earlier release lacks them
    for key in ("data", "validation", "stats", "architecture"):
        if key not in old:
            signature = {k: v for k, v in signature.items() if k != key}
    if old != signature:
        diff = sorted(k for k in {*signature, *old} if old.get(k) != signature.get(k))
        counts = ""
        if "steps" in diff:  # (a run is not extended: its schedule depends on its length)
            counts = (
                f"; it is of a run of {old.get('steps')} steps, at step {state.get('step')}, "
                f"this run asks for {signature['steps']}"
            )
        raise ValueError(
            f"cannot resume from {directory}: it was written by a run with other settings "
            f"({diff}){counts}; use another checkpoint_dir or resume=False"
        )
    weights = tensors_from_bytes(saved.files[WEIGHTS], directory / WEIGHTS)
    model.net.load_state_dict(weights)
    saved.restore_optimizer(opt)
    if pool is not None:
        try:
            pool.load_state_tensors(saved.tensors)
        except ValueError as err:
            raise ValueError(f"cannot resume from {directory}: {err}") from None
    return state


def _stats_digest(model: ForecastModel) -> str:
    """A short sha256 of the model's normalization statistics (mean, std, diff_std)."""
    import hashlib

    h = hashlib.sha256()
    for key in ("mean", "std", "diff_std"):
        h.update(np.ascontiguousarray(getattr(model.stats, key), dtype="float64").tobytes())
    return h.hexdigest()[:16]


def _architecture_digest(model: ForecastModel) -> str:
    """A short sha256 of the network's class and construction config, its tensors' names and
    shapes, and the model's channels, grid, time step and form (residual, input times)."""
    import hashlib
    import json

    described = {
        "net": type(model.net).__qualname__,
        "config": getattr(model.net, "config", None),
        "tensors": [[k, list(v.shape)] for k, v in model.net.state_dict().items()],
        "channels": [channel_name(c) for c in model.channels],
        "latitude": model.latitude.tolist(),
        "longitude": model.longitude.tolist(),
        "timestep_hours": model.timestep_hours,
        "residual": model.residual,
        "input_times": model.input_times,
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _anomaly_objective(
    anom: AnomalySamples,
    net: torch.nn.Module,
    fm: ForecastModel,
    w: torch.Tensor,
    seed: int,
    step: int,
    size: int,
    rank: int,
    world: int,
) -> torch.Tensor:
    """The tracer-anomaly objective of this process's share of the step's ``size`` samples.

    In a distributed run each process draws the global batch's samples, as one process does,
    and scores its ``size / world`` of them (their mean; DDP averages the gradients).
    """
    if world == 1:
        return anom.objective(net, fm, w, seed, step, size, rank)
    import copy

    local = size // world
    clean, anomaly = anom.batch(seed, step, size)  # the single-process run's draw
    mine = slice(rank * local, (rank + 1) * local)
    share = copy.copy(anom)  # (shallow: the same tensors; only its batch is this share)
    share.batch = lambda *_: (clean[mine], anomaly[mine])  # type: ignore[method-assign]
    return share.objective(net, fm, w, seed, step, local, rank)


def _lead_model(
    spec: Any, lead_steps: int, fm: ForecastModel, initial: Any
) -> tuple[ForecastModel | None, str | None]:
    """The frozen model that starts cascade samples, and an identifier for resuming."""
    import hashlib

    if lead_steps == 0:
        if spec is not None:
            raise ValueError("lead_model is given but lead_steps is 0; set lead_steps >= 1")
        return None, None
    if spec is None:
        if initial is None:
            raise ValueError("lead_steps > 0 needs a model to start from: pass lead_model or model")
        lead = copy_model(fm)  # fm is still the starting model here
    elif isinstance(spec, ForecastModel):
        lead = copy_model(spec)
    else:
        lead = load_model(spec, device="cpu", dtype="float32")
    lead = lead.float().cpu().eval().requires_grad_(False)
    fm.check_same_layout(lead, f"lead_model {lead.name!r} and the trained model {fm.name!r}")
    digest = hashlib.sha256()
    for key, value in sorted(lead.net.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().numpy().tobytes())
    return lead, digest.hexdigest()


def _check_fine_tuning(
    fm: ForecastModel, stats: xr.Dataset | NormStats | None, variables: Any
) -> None:
    """Refuse ``stats`` or ``variables`` given with a model to fine-tune unless they are the
    model's own (they were dropped silently: a fine-tuned model keeps its channels and
    statistics)."""
    own = list(dict.fromkeys(c[0] for c in fm.channels))
    if variables is not None and list(variables) != own:
        raise ValueError(
            f"variables {tuple(variables)} differ from the model's {tuple(own)}: a fine-tuned "
            f"model keeps its channels; leave TrainConfig.variables None with model="
        )
    if stats is None:
        return
    given = stats if isinstance(stats, NormStats) else NormStats.from_dataset(stats, fm.channels)
    for key in ("mean", "std", "diff_std"):
        a, b = np.asarray(getattr(given, key), "float64"), np.asarray(getattr(fm.stats, key))
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-6, atol=0):
            raise ValueError(
                f"stats ({key} {a.tolist()}) differ from those of the model {fm.name!r} "
                f"({b.tolist()}): a fine-tuned model keeps its normalization statistics; "
                "leave stats None with model="
            )


def _check_periodic_longitude(longitude: np.ndarray) -> None:
    """Refuse longitudes that are not evenly spaced round the whole circle: the FuXi
    networks are global, periodic in longitude (their convolutions pad and their windows
    shift round the circle, :func:`xfuxi.models.fuxi.periodic_conv2d`), so the edges of a
    regional box would be joined as neighbours."""
    if not is_whole_circle(longitude):
        lon = np.sort(np.mod(np.asarray(longitude, dtype="float64"), 360.0))
        gaps = longitude_gaps(lon) if lon.size else np.zeros(0)
        widest = float(gaps.max()) if gaps.size else 360.0
        raise SchemaError(
            f"training data: the {lon.size} longitudes are not evenly spaced round the whole "
            f"circle (gaps of {float(gaps.min()) if gaps.size else 0.0:g} to {widest:g} "
            "degrees); the FuXi networks are global, periodic in longitude (they would join "
            "the edges of a regional box as neighbours): train on a global grid of equally "
            "spaced longitudes (xfuxi.regrid the data to one, e.g. regrid(ds, 'T21'))"
        )


def _model_variables(ds: xr.Dataset, variables: Sequence[str] | None) -> list[str]:
    """The variables a new model forecasts: ``variables``, or by default all of ``ds``'s,
    which must then all have a time (a static field such as a WeatherBench2 store's
    ``geopotential_at_surface`` is no state to forecast: it is named, never dropped
    silently)."""
    names = [str(v) for v in (ds.data_vars if variables is None else variables)]
    static = [v for v in names if v in ds.data_vars and "time" not in ds[v].dims]
    if static:
        raise SchemaError(
            f"training data: variables {static} have no time dimension (static fields) and "
            "cannot be forecast; choose the variables to train on (TrainConfig(variables="
            "[...]), xfuxi train --variables ...) or drop them (ds.drop_vars("
            f"{static!r}))"
        )
    return names


def _used_data(
    ds: xr.Dataset, names: Sequence[str], channels: Sequence[Channel] | None = None
) -> xr.Dataset:
    """``ds`` with only the variables ``names`` (those missing are left for the model's check
    to name) and, given ``channels``, only the levels they use: nothing else is read."""
    keep = [v for v in dict.fromkeys(names) if v in ds.data_vars]
    out = ds[keep]
    if channels is not None and "level" in out.dims:
        wanted = np.array([float(c[1]) for c in channels if c[1] is not None])
        lev = np.asarray(out["level"].values, dtype="float64")
        idx = [i for i, lv in enumerate(lev) if wanted.size and np.isclose(wanted, lv).any()]
        if idx and len(idx) < lev.size:
            out = out.isel(level=idx)
    return out


def dist_info() -> tuple[int, int]:
    """``(rank, world size)``: joins the process group under ``torchrun``, else ``(0, 1)``."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
            dist.init_process_group(backend=backend)
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train_forecast(
    train: xr.Dataset,
    *,
    config: TrainConfig | dict[str, Any] | None = None,
    validation: xr.Dataset | None = None,
    model: ForecastModel | str | os.PathLike[str] | None = None,
    lead_model: ForecastModel | str | os.PathLike[str] | None = None,
    stats: xr.Dataset | NormStats | None = None,
    tracer_anomalies: xr.Dataset | None = None,
    cycled_states: xr.DataArray | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool | None = None,
    **legacy: Any,
) -> ForecastModel:
    """Train (or fine-tune) a FuXi forecast model on 6-hourly canonical data.

    Parameters
    ----------
    train : xarray.Dataset
        Training period (canonical layout, regular 6-hourly ``time``; gaps are skipped).
    config : TrainConfig or dict, optional
        The run's settings (steps, batch size, learning rate, loss, rollout, seed,
        precision, where to checkpoint, the device, ...; see
        :class:`~xfuxi.training.config.TrainConfig`); default ``TrainConfig()``. It is saved
        as JSON with every checkpoint (``trainer.json``) and in the returned model's
        ``config["metadata"]["train_config"]``.

        ``config.checkpoint_dir``: where to save the training state every
        ``config.checkpoint_every`` steps and at the end. If it holds a state of a run with
        the same settings and ``config.resume`` is True, training continues from it
        (bit-for-bit as if never interrupted, on the same hardware). The checkpoint is
        written as one unit, so a run killed while writing it leaves the previous one whole;
        an incomplete or corrupt checkpoint is refused
        (:class:`~xfuxi.models.checkpoint.CheckpointError`), never resumed from. A directory
        that is not an xfuxi training checkpoint is refused before training starts.

        ``config.device``: default ``xfuxi.get_options()["device"]`` (each distributed
        process uses its ``LOCAL_RANK`` GPU when the device is CUDA).
    validation : xarray.Dataset, optional
        Held-out period; its loss is logged every ``config.val_every`` steps and at the end.
    model : ForecastModel, str or path, optional
        Start from this model (fine-tuning, e.g. ``rollout_steps=4``); its channels, grid and
        statistics are kept (``stats`` or ``config.variables`` other than its own are
        refused). Default: a new :class:`~xfuxi.models.fuxi.FuXiNet` of
        ``config.preset`` on all channels of ``config.variables``.
    lead_model : ForecastModel, str or path, optional
        With ``config.lead_steps > 0``: the frozen model whose forecasts start each sample
        (FuXi's cascade: FuXi-Medium is fine-tuned from FuXi-Short on Short's 5-day
        forecasts); ``lead_steps`` steps of it are run (without gradient) from the true pair
        before the trained model's rollout, and the targets are the true states after them.
        Default: a frozen copy of ``model`` as it was before this run. Must have the same
        channels, grid and time step as the trained model.
    stats : xarray.Dataset or NormStats, optional
        Normalization statistics of a new model; default
        :func:`xfuxi.data.stats.normalization_stats` of ``train``.
    tracer_anomalies : xarray.Dataset, optional
        Passive-tracer anomalies carried by the world's flow
        (:func:`xfuxi.world.tracer_anomalies.held_suarez_tracer_anomalies`). Each step then
        adds the error of the model's response to ``config.anomaly_batch_size`` of these
        anomalies (about half at both input times, half at the second only, as a 4DVar
        increment), weighted by ``config.anomaly_weight``, to the objective
        (:meth:`~xfuxi.training.anomalies.AnomalySamples.objective`: the squared error of
        ``model(state + anomaly) − model(state)`` against the world's anomaly 6 hours on,
        relative to the anomaly's size). It teaches the model to carry a tracer anomaly
        along the wind rather than extrapolate the tracer in time; it is logged as
        ``anomaly_loss``.
    cycled_states : xarray.DataArray, optional
        Analysed input pairs of a cycled assimilation run on the training period
        (:func:`xfuxi.assimilation.cycle.open_cycle_states`: the members' pairs at each
        analysis time). A share ``config.cycled_fraction`` of every batch then starts from
        these pairs instead of the true ones, with the true states after them as targets:
        the model learns to forecast the truth from the states a cycle feeds it (training
        on its own cycled analyses, as FengWu-Adas does; docs/cycling.md). Not with
        ``lead_steps``.
    callback : callable, optional
        ``callback(step, {"loss": ..., "lr": ...})`` after every optimizer step.
    progress : bool, optional
        Progress bar (default: the ``progress`` option).
    **legacy
        The old keyword arguments (``steps=``, ``lr=``, ``checkpoint_dir=``, ``device=``,
        ...: each a field of :class:`TrainConfig`) still work, with a ``DeprecationWarning``.

    Returns
    -------
    ForecastModel
        The trained model in eval mode on the CPU; ``model.config["metadata"]["history"]``
        lists the logged training and validation losses.

    Raises
    ------
    TypeError
        ``train`` or ``validation`` is not a Dataset (e.g. a DataArray).
    ValueError
        Bad settings, a batch size not divisible by the number of processes, ``stats`` or
        ``config.variables`` given with ``model`` and differing from the model's, or a
        checkpoint written with other settings (another number of steps, other data,
        normalization statistics or network among them), incomplete or corrupt.
    xfuxi.files.OutputExistsError
        ``config.checkpoint_dir`` holds something other than an xfuxi training checkpoint.
    xfuxi.files.OutputInUseError
        Another run is training into ``config.checkpoint_dir``: it holds the directory's
        lock (``.<name>.lock`` beside it) for as long as it runs.
    SchemaError
        Data lacking the model's channels, on another grid, with an extra dim (such as an
        ensemble's ``number``), with NaN, or too short (an error about ``validation``
        starts with "validation data"); a new model's variables without a time (static
        fields such as ``geopotential_at_surface``: choose ``config.variables`` or drop
        them); longitudes that are not evenly spaced round the whole circle (a regional
        box: the FuXi networks are global, periodic in longitude).

    Notes
    -----
    FuXi's loss (Chen et al. 2023): ``L = 1/(C·H·W) Σ_c Σ_i Σ_j a_i |X̂_cij − X_cij|`` with
    ``a_i`` the latitude area weights normalised to mean 1 (WeatherBench2's
    ``get_lat_weights``, :func:`xfuxi.verify.weights.area_weights`) and fields normalised
    by each channel's std. The network itself predicts the 6-hour tendency in units of the
    6-hour-difference std (``residual=True``). ``config.loss="amse"`` uses the adjusted MSE
    of Subich et al. (2025) (:func:`~xfuxi.training.losses.amse_loss`) instead, which does
    not reward damping the modes whose phase is lost.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> ds = xr.Dataset(
    ...     {"temperature": (("time", "level", "latitude", "longitude"),
    ...                      250 + rng.standard_normal((12, 1, 8, 16)).cumsum(0))},
    ...     coords={"time": pd.date_range("2000-01-01", periods=12, freq="6h"),
    ...             "level": [850], "latitude": np.linspace(-78.75, 78.75, 8),
    ...             "longitude": np.arange(16) * 22.5})
    >>> cfg = TrainConfig(preset="tiny", steps=3, batch_size=4, warmup_steps=1)
    >>> m = train_forecast(ds, config=cfg, progress=False)
    >>> [h["step"] for h in m.config["metadata"]["history"]]
    [3]
    >>> m.config["metadata"]["train_config"]["steps"]
    3
    """
    cfg = config_with_legacy(TrainConfig, config, legacy, "train_forecast")
    # the checkpoint directory is this run's alone from before its first check of it until
    # the run ends: a second run given it meanwhile fails at once (OutputInUseError)
    with hold_checkpoint_directory(cfg.checkpoint_dir, rank=dist_info()[0]):
        return _train_forecast(
            train, cfg, validation=validation, model=model, lead_model=lead_model, stats=stats,
            tracer_anomalies=tracer_anomalies, cycled_states=cycled_states, callback=callback,
            progress=progress,
        )  # fmt: skip


def _train_forecast(
    train: xr.Dataset,
    cfg: TrainConfig,
    *,
    validation: xr.Dataset | None,
    model: ForecastModel | str | os.PathLike[str] | None,
    lead_model: ForecastModel | str | os.PathLike[str] | None,
    stats: xr.Dataset | NormStats | None,
    tracer_anomalies: xr.Dataset | None,
    cycled_states: xr.DataArray | None,
    callback: Callable[[int, dict[str, float]], None] | None,
    progress: bool | None,
) -> ForecastModel:
    """The run of :func:`train_forecast` (its checkpoint directory locked by the caller)."""
    from tqdm.auto import tqdm

    preset, variables, steps, batch_size = cfg.preset, cfg.variables, cfg.steps, cfg.batch_size
    lr, weight_decay, warmup_steps, min_lr_ratio = (
        cfg.lr, cfg.weight_decay, cfg.warmup_steps, cfg.min_lr_ratio
    )  # fmt: skip
    rollout_steps, lead_steps, loss = cfg.rollout_steps, cfg.lead_steps, cfg.loss
    anomaly_batch_size, anomaly_weight = cfg.anomaly_batch_size, cfg.anomaly_weight
    grad_clip, grad_checkpointing = cfg.grad_clip, cfg.grad_checkpointing
    val_every, val_samples, log_every = cfg.val_every, cfg.val_samples, cfg.log_every
    checkpoint_every, resume, seed, name = cfg.checkpoint_every, cfg.resume, cfg.seed, cfg.name
    rank, world, local, dev = process_share(batch_size, cfg.device, dist_info())
    if tracer_anomalies is not None and anomaly_batch_size % world:
        raise ValueError(
            f"anomaly_batch_size {anomaly_batch_size} is not divisible by {world} processes"
        )

    # ---- the model ----------------------------------------------------------------------
    # read once (a copy; input untouched); a DataArray or an extra dim is refused, named
    # (a model's variables are checked where the data are stacked: stacked_states)
    train = check_layout(train, "training", variables if model is None else ())
    _check_periodic_longitude(train["longitude"].values)
    if model is None:
        # the variables (all levels) the new model forecasts, alone read into memory
        train = _used_data(train, _model_variables(train, variables)).load()
        canonical = train
        channels = channels_of(canonical, variables)
        if stats is None:
            stats = normalization_stats(canonical)
        norm = stats if isinstance(stats, NormStats) else NormStats.from_dataset(stats, channels)
        with isolated_rng(seed):  # the initial weights: of the seed, the caller's stream kept
            net = build_fuxi(
                preset, in_channels=len(channels), grid=(canonical.sizes["latitude"],
                                                        canonical.sizes["longitude"]),
            )  # fmt: skip
        fm = ForecastModel(
            net,
            channels=channels,
            latitude=canonical["latitude"].values,
            longitude=canonical["longitude"].values,
            stats=norm,
            residual=True,
            name=name,
            config={"preset": preset if isinstance(preset, str) else "custom"},
        )
    else:
        fm = (
            load_model(model, device="cpu", dtype="float32")
            if not isinstance(model, ForecastModel)
            else model
        )
        if not isinstance(fm, ForecastModel):
            raise TypeError(f"model must be a ForecastModel or a checkpoint; got {type(model)}")
        fm = copy_model(fm).float().cpu()  # never modify the caller's model
        fm.name = name if name != "fuxi" else fm.name
        channels = list(fm.channels)
        _check_fine_tuning(fm, stats, variables)
        train = _used_data(train, [str(c[0]) for c in channels], channels).load()
    fm.check_dataset(train)
    lead, lead_sha = _lead_model(lead_model, lead_steps, fm, model)
    if hasattr(fm.net, "grad_checkpointing"):
        fm.net.grad_checkpointing = bool(grad_checkpointing)
    fm.to(dev)
    if lead is not None:
        lead.to(dev)
    horizon = rollout_steps + lead_steps

    data_np, train_c = stacked_states(train, fm.channels, "training")
    starts = _sample_starts(train_c["time"].values, fm.timestep, horizon)
    if starts.size < batch_size:
        raise SchemaError(
            f"training data give {starts.size} samples of {horizon + 2} consecutive "
            f"6-hourly states; need at least batch_size={batch_size}"
        )
    data = torch.from_numpy(data_np).to(dev)
    del train
    log.info("training data: %d samples, %d channels, grid %s", starts.size, data.shape[1],
             tuple(data.shape[-2:]))  # fmt: skip
    w = torch.as_tensor(
        np.asarray(area_weights(train_c["latitude"].values), dtype="float32"), device=dev
    ).view(1, 1, -1, 1)
    val_data = val_starts = None
    if validation is not None:
        try:
            v_np, val_c = stacked_states(validation, fm.channels, "validation", fm)
        except SchemaError as err:  # (the model's check names the data "data")
            text = str(err)
            raise SchemaError(
                text if text.startswith("validation data") else f"validation data: {text}"
            ) from None
        vs = _sample_starts(val_c["time"].values, fm.timestep, horizon)
        if vs.size == 0:
            raise SchemaError("validation data hold no sample of consecutive 6-hourly states")
        pick = np.unique(np.linspace(0, vs.size - 1, min(val_samples, vs.size)).astype(int))
        val_starts = vs[pick]
        val_data = torch.from_numpy(v_np).to(dev)
        val_digest = data_digest(val_c["time"].values, v_np)

    anom = None
    if tracer_anomalies is not None:
        anom = AnomalySamples(tracer_anomalies, fm, dev)
    cycled = None
    if cycled_states is not None:
        if lead_steps:
            raise ValueError("cycled_states cannot be combined with lead_steps > 0")
        cycled = CycledStarts(
            cycled_states, train_c["time"].values, starts,
            [channel_name(c) for c in channels], tuple(data.shape[-2:]), fm.timestep, dev,
        )  # fmt: skip
        log.info("cycled states: %d analysis times x %d members", cycled.n_times,
                 cycled.n_members)  # fmt: skip

    # ---- optimizer, state ---------------------------------------------------------------
    opt = torch.optim.AdamW(fm.net.parameters(), lr=lr, weight_decay=weight_decay)
    signature = {
        "steps": int(steps), "batch_size": int(batch_size), "lr": float(lr),
        "weight_decay": float(weight_decay), "warmup_steps": int(warmup_steps),
        "min_lr_ratio": float(min_lr_ratio), "rollout_steps": int(rollout_steps),
        "seed": int(seed), "channels": [channel_name(c) for c in channels],
        "samples": int(starts.size), "world_size": int(world),
        "grad_clip": None if grad_clip is None else float(grad_clip),
        # the data themselves (other data of the same length resumed): see _load_state
        "data": data_digest(train_c["time"].values, data_np),
        # the model's statistics and network (absent in older checkpoints: see _load_state)
        "stats": _stats_digest(fm), "architecture": _architecture_digest(fm),
    }  # fmt: skip
    if val_data is not None:  # what the logged validation losses are over (see _load_state)
        signature["validation"] = [int(val_every), int(val_starts.size), val_digest]
    if lead is not None:
        signature.update(lead_steps=int(lead_steps), lead_model=lead_sha)
    if loss != "l1":  # absent for L1 so that older checkpoints still resume
        signature["loss"] = loss
    if cfg.precision != "float32":  # absent for float32, as the loss
        signature["precision"] = cfg.precision
    if cfg.input_perturbation > 0:  # absent when off, so that older checkpoints resume
        signature["input_perturbation"] = float(cfg.input_perturbation)
    if cycled is not None:
        signature.update(cycled_states=cycled.digest(), cycled_fraction=cfg.cycled_fraction)
    pool = None
    if cfg.climate_runs > 0:
        n_rollout = cfg.climate_rollout_steps
        pool = FreeRunPool(
            data,
            _sample_starts(train_c["time"].values, fm.timestep, cfg.climate_max_steps + n_rollout),
            size=cfg.climate_runs, min_steps=cfg.climate_min_steps,
            max_steps=cfg.climate_max_steps, rollout_steps=n_rollout,
            advance=cfg.climate_advance, seed=seed, scale=fm._std, offset=fm._mean, rank=rank,
            loss=cfg.climate_loss,
        )  # fmt: skip
        signature.update(
            climate_runs=int(cfg.climate_runs), climate_min_steps=int(cfg.climate_min_steps),
            climate_max_steps=int(cfg.climate_max_steps), climate_rollout_steps=int(n_rollout),
            climate_advance=int(cfg.climate_advance), climate_weight=float(cfg.climate_weight),
            climate_loss=cfg.climate_loss,
        )  # fmt: skip
    if anom is not None:
        signature.update(
            tracer_anomalies=anom.signature,
            anomaly_batch_size=int(anomaly_batch_size),
            anomaly_weight=float(anomaly_weight),
        )
    ckpt = Path(cfg.checkpoint_dir).expanduser() if cfg.checkpoint_dir is not None else None
    history: list[dict[str, Any]] = []
    running: list[float] = []  # training losses since the last logged entry
    running_anom: list[float] = []  # their anomaly part
    running_climate: list[float] = []  # their climate part
    start_step = 0
    if ckpt is not None:
        check_training_directory(ckpt, kind=_STATE_KIND)  # before training, not at step N
    if ckpt is not None and resume:
        state = _load_state(ckpt, fm, opt, signature, pool)
        if state is not None:
            start_step, history = int(state["step"]), list(state["history"])
            running = list(state.get("running", []))
            running_anom = list(state.get("running_anomaly", []))  # (absent before: none)
            running_climate = list(state.get("running_climate", []))
            fm.to(dev)
            log.info("resuming training from %s at step %d", ckpt, start_step)
    net: torch.nn.Module = fm
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(fm, device_ids=[dev.index] if dev.type == "cuda" else None)

    per_epoch = starts.size // batch_size

    def batch_of(step: int) -> np.ndarray:
        """The step's global batch (every process draws it; each takes its positions)."""
        epoch, b = divmod(step, per_epoch)
        perm = np.random.default_rng([seed, epoch]).permutation(starts)
        return perm[b * batch_size : (b + 1) * batch_size]

    lo, hi = rank * local, (rank + 1) * local  # this process's positions in a global batch

    def validate_now() -> float:
        fm.eval()
        losses = []
        with torch.no_grad(), autocast(dev, cfg.precision):
            for i in range(0, val_starts.size, batch_size):
                sl = val_starts[i : i + batch_size]
                value = _rollout_loss(
                    fm, fm, val_data, sl, rollout_steps, w, lead, lead_steps, loss
                )
                losses.append(float(value) * sl.size)
        fm.train()
        return sum(losses) / val_starts.size

    show = progress_enabled(progress) and rank == 0
    bar = tqdm(total=steps, initial=start_step, desc=f"train {fm.name}", disable=not show)
    try:
        fm.train()
        for step in range(start_step, steps):
            factor = _lr_factor(step, steps, warmup_steps, min_lr_ratio)
            for g in opt.param_groups:
                g["lr"] = lr * factor
            with autocast(dev, cfg.precision):
                batch = batch_of(step)
                rows = batch[lo:hi]
                pert = None
                if cfg.input_perturbation > 0:  # this process's rows of the global batch's
                    pert = input_perturbations(
                        data, batch.size, cfg.input_perturbation, seed, step, rank, world
                    )
                inputs = None
                n_cyc = 0 if cycled is None else int(round(cfg.cycled_fraction * batch.size))
                if n_cyc:  # that many of the batch start from cycled analyses instead (one pass)
                    # the global batch: its first batch.size - n_cyc samples start from the
                    # truth, the others from cycled draws; this process takes positions lo..hi
                    n_true = batch.size - n_cyc
                    rows = batch[lo : max(lo, min(hi, n_true))]
                    prev, curr, idx = start_states(data, torch.from_numpy(rows), None, 0)
                    if pert is not None:
                        prev, curr = prev + pert[: rows.size], curr + pert[: rows.size]
                    c_prev, c_curr, c_idx = cycled.draw(n_cyc, seed, step)
                    if world > 1:
                        mine = slice(max(lo - n_true, 0), max(hi - n_true, 0))
                        c_prev, c_curr, c_idx = c_prev[mine], c_curr[mine], c_idx[mine]
                    inputs = (
                        torch.cat([prev, c_prev]),
                        torch.cat([curr, c_curr]),
                        torch.cat([idx, c_idx.to(idx.device)]),
                    )
                    pert = None
                objective = _rollout_loss(
                    net, fm, data, rows, rollout_steps, w, lead, lead_steps, loss, pert, inputs
                )
                if anom is not None:
                    part = _anomaly_objective(
                        anom, net, fm, w, seed, step, anomaly_batch_size, rank, world
                    )
                    running_anom.append(float(part.detach()))
                    objective = objective + anomaly_weight * part
                if pool is not None:
                    pool.step(fm, step)
                    part = pool.objective(net, w)
                    if part is not None:
                        running_climate.append(float(part.detach()))
                        objective = objective + cfg.climate_weight * part
            opt.zero_grad(set_to_none=True)
            objective.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(fm.net.parameters(), grad_clip)
            opt.step()
            value = float(objective.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at step {step + 1}")
            running.append(value)
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}")
            done = step + 1
            validate_here = val_data is not None and (done % val_every == 0 or done == steps)
            if done % log_every == 0 or done == steps or validate_here:
                entry: dict[str, Any] = {
                    "step": done,
                    "loss": float(np.mean(running)),
                    "lr": lr * factor,
                }
                running = []
                if running_anom:
                    entry["anomaly_loss"] = float(np.mean(running_anom))
                    running_anom = []
                if running_climate:
                    entry["climate_loss"] = float(np.mean(running_climate))
                    entry["climate_mean_age"] = pool.mean_age()
                    running_climate = []
                if validate_here:
                    entry["val_loss"] = validate_now()
                history.append(entry)
                log.info("step %d: %s", done, {k: round(v, 5) for k, v in entry.items()})
            if callback is not None:
                callback(done, {"loss": value, "lr": lr * factor})
            if ckpt is not None and rank == 0 and (done % checkpoint_every == 0 or done == steps):
                _save_state(
                    ckpt,
                    fm,
                    opt,
                    {
                        "step": done,
                        "history": history,
                        "running": running,
                        "running_anomaly": running_anom,
                        "running_climate": running_climate,
                        "signature": signature,
                        "config": cfg.to_dict(),
                    },
                    pool,
                )
            if world > 1 and ckpt is not None and (done % checkpoint_every == 0 or done == steps):
                import torch.distributed as dist

                dist.barrier()
    finally:
        bar.close()
    fm.config.setdefault("metadata", {})
    fm.config["metadata"] = {
        **fm.config["metadata"],
        "history": history,
        "training": {k: v for k, v in signature.items() if k != "channels"},
        "train_config": cfg.to_dict(),
    }
    return fm.cpu().eval()
