"""Training of the FuXi forecast model (FuXi's recipe, sized for a CPU).

:func:`train_forecast` fits a :class:`~xfuxi.models.base.ForecastModel` around a
:class:`~xfuxi.models.fuxi.FuXiNet` to pairs of consecutive 6-hourly states:

* loss: the latitude-weighted L1 error of the normalised fields (FuXi, Chen et al. 2023,
  eq. 1), averaged over channels, grid points and, with ``rollout_steps > 1``, over the
  autoregressive steps (backpropagating through the rollout, FuXi's fine-tuning stage);
* AdamW with linear warm-up and cosine decay to ``min_lr_ratio · lr``, gradient clipping;
* optional gradient checkpointing of the transformer blocks;
* validation loss on a held-out period every ``val_every`` steps;
* checkpoints in ``checkpoint_dir``: a loadable model checkpoint (``model.safetensors`` +
  ``config.json``) plus ``optimizer.safetensors`` and ``trainer.json``, written as one unit
  with a ``manifest.json`` of their sha256 (:func:`xfuxi.models.checkpoint.save_training_state`:
  a run killed while writing leaves the previous checkpoint whole); re-running with the same
  arguments resumes exactly where an interrupted run stopped (the sample order is a
  function of the seed and the step only), and an incomplete or corrupt checkpoint is
  refused, never resumed from;
* DistributedDataParallel when started by ``torchrun`` (``gloo`` on CPU, ``nccl`` on GPU):
  each process takes its share of every global batch.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..data.channels import Channel, channel_name, channels_of, stack
from ..data.schema import SchemaError, validate
from ..models.base import ForecastModel, NormStats
from ..models.checkpoint import (
    WEIGHTS,
    check_training_directory,
    load_training_state,
    model_files,
    save_training_state,
    tensors_from_bytes,
)
from ..models.fuxi import build_fuxi
from ..models.registry import load_model
from ..models.rollout import copy_model

__all__ = ["amse_loss", "train_forecast"]

log = logging.getLogger(__name__)

_STATE_FORMAT = "xfuxi-trainer/1"
_STATE_KIND = "forecast-training"


def _to_array(ds: xr.Dataset, channels: Sequence[Channel], name: str) -> tuple[np.ndarray, Any]:
    ds = validate(ds, require_time=True)
    arr = stack(ds, channels).transpose("time", "channel", "latitude", "longitude")
    values = np.asarray(arr.values, dtype="float32")
    if not np.all(np.isfinite(values)):
        raise SchemaError(f"{name} data contain NaN or infinite values")
    return values, ds


def _sample_starts(times: np.ndarray, step: np.timedelta64, horizon: int) -> np.ndarray:
    """Indices ``i`` such that times ``i-1 .. i+horizon`` are consecutive ``step`` apart."""
    t = pd.DatetimeIndex(times)
    regular = np.asarray(np.diff(t.values) == step)
    n = len(t)
    ok = [
        i
        for i in range(1, n - horizon)
        if regular[i - 1 : i + horizon].all()  # diffs i-1..i+horizon-1
    ]
    return np.asarray(ok, dtype="int64")


def _lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    frac = (step - warmup) / max(total - warmup, 1)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))


LOSSES = ("l1", "amse")


def _loss(
    model: ForecastModel,
    pred: torch.Tensor,
    truth: torch.Tensor,
    w: torch.Tensor,
    kind: str = "l1",
) -> torch.Tensor:
    """Latitude-weighted loss of the normalised fields (weights of mean 1 over latitude)."""
    if kind == "amse":
        return amse_loss(pred / model._std, truth / model._std, w)
    diff = (pred - truth) / model._std
    return (diff.abs() * w).mean()


def amse_loss(
    pred: torch.Tensor, truth: torch.Tensor, weights: torch.Tensor, eps: float = 1e-12
) -> torch.Tensor:
    """Adjusted MSE (Subich et al. 2025) over octave bands of zonal wavenumber.

    Over a group of spectral coefficients with power ``P_f``, ``P_y`` and cross power ``X``,
    MSE splits into an amplitude and a decorrelation term,
    ``(√P_f − √P_y)² + 2√(P_f P_y)(1 − ρ)`` with the coherence ``ρ = X / √(P_f P_y)``;
    where the phases are not predictable (``ρ`` near 0), MSE is lowest for a forecast that
    damps the coefficients: the "double penalty" that blurs long forecasts toward
    climatology. AMSE weighs the decorrelation term with ``max(P_f, P_y)`` instead, so that
    damping no longer pays. Subich et al. group the coefficients by spherical-harmonic
    degree; here (any latitude–longitude grid, no spherical transform) the groups are
    octaves of zonal wavenumber (``m`` = 0, 1, 2–3, 4–7, ...; ``rfft`` along longitude,
    the last axis) over all latitude rows, which are weighted by the area ``weights``
    (broadcast to ``(..., lat, 1)``, mean 1), per sample and channel. A group must hold
    many coefficients: the chance fluctuations of a small group's power make ``max``
    reward damping again. Measured on the T21 world, 8-step fine-tuning from 5-day
    forecasts kept 49% of the 250 hPa meridional wind's spatial std 2 days on with one
    coefficient per group, 71% with a group per wavenumber over all rows, 80% with these
    octaves. Powers are scaled like Parseval's sum, so AMSE equals the area-weighted MSE
    for a forecast with the right phases, and is never below it. The result is summed over
    the groups and averaged over the leading axes (samples, channels).

    Subich, Husain, Separovic & Yang (2025), "Fixing the double penalty in data-driven
    weather forecasting through a modified spherical harmonic loss function", ICML.
    """
    n_lat, n_lon = pred.shape[-2], pred.shape[-1]
    fa = torch.fft.rfft(pred, dim=-1)
    fb = torch.fft.rfft(truth, dim=-1)
    # Parseval weights of a real FFT: the mean and (even n) Nyquist modes once, others twice
    c = torch.full((fa.shape[-1],), 2.0, dtype=pred.dtype, device=pred.device)
    c[0] = 1.0
    if n_lon % 2 == 0:
        c[-1] = 1.0
    scale = weights * c / (n_lat * n_lon**2)  # (..., lat, m)

    def power(x: torch.Tensor) -> torch.Tensor:  # sum over latitude rows -> (..., m)
        return (x * scale).sum(-2)

    # octave of each zonal wavenumber: 0 | 1 | 2-3 | 4-7 | ...
    m = torch.arange(fa.shape[-1], device=pred.device)
    octave = torch.where(m > 0, torch.floor(torch.log2(m.clamp(min=1).double())).long() + 1, 0)
    n_groups = int(octave.max()) + 1

    def grouped(x: torch.Tensor) -> torch.Tensor:  # (..., m) -> (..., groups)
        out = x.new_zeros((*x.shape[:-1], n_groups))
        return out.index_add(-1, octave, x)

    pa = grouped(power(fa.real**2 + fa.imag**2))
    pb = grouped(power(fb.real**2 + fb.imag**2))
    cross = grouped(power(fa.real * fb.real + fa.imag * fb.imag))
    root = torch.sqrt(pa * pb + eps**2)
    term = (torch.sqrt(pa + eps**2) - torch.sqrt(pb + eps**2)) ** 2 + 2.0 * torch.maximum(
        pa, pb
    ) * (1.0 - cross / root)
    return term.sum(-1).mean()


def _start_states(
    data: torch.Tensor, idx: torch.Tensor, lead: ForecastModel | None, lead_steps: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input pair of each sample and the index of its second state.

    Without a lead model: the true states at ``idx - 1`` and ``idx``. With one: its forecast
    from them, ``lead_steps`` steps on (no gradient; FuXi's cascade trains each stage on the
    previous stage's forecasts), valid at ``idx + lead_steps``.
    """
    prev, curr = data[idx - 1], data[idx]
    if lead is None or lead_steps == 0:
        return prev, curr, idx
    with torch.no_grad():
        for _ in range(lead_steps):
            prev, curr = curr, lead(torch.stack([prev, curr], dim=1))
    return prev, curr, idx + lead_steps


def anomaly_samples(
    ds: xr.Dataset, kind: str = "both"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time indices of the inputs and target of each sample, and its anomaly offsets.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`xfuxi.world.tracer_anomalies.held_suarez_tracer_anomalies`.
    kind : {"both", "t0"}
        ``"both"``: the anomaly is in both inputs and the target; ``"t0"``: only
        in the second input and the target.

    Returns
    -------
    (times, windows, offsets) : numpy arrays
        ``times`` (n, 3): indices into ``ds.time`` of the two inputs and the target;
        ``windows`` (n,): the window of each sample; ``offsets`` (n, 3): the anomaly offset
        index at each of the three times, ``-1`` where the state carries no anomaly.
    """
    if kind not in ("both", "t0"):
        raise ValueError(f"kind must be 'both' or 't0'; got {kind!r}")
    t = pd.DatetimeIndex(ds["time"].values)
    pos = {v: i for i, v in enumerate(t.values)}
    step = np.timedelta64(6, "h")
    times, windows, offsets = [], [], []
    for w, s in enumerate(ds["window"].values):
        if kind == "both":
            need, off = (s, s + step, s + 2 * step), (0, 1, 2)
        else:
            need, off = (s - step, s, s + step), (-1, 0, 1)
        if all(n in pos for n in need):
            times.append([pos[n] for n in need])
            windows.append(w)
            offsets.append(off)
    return np.asarray(times), np.asarray(windows), np.asarray(offsets)


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
) -> torch.Tensor:
    prev, curr, idx = _start_states(data, torch.from_numpy(starts), lead, lead_steps)
    total = 0.0
    for s in range(k):
        pred = model(torch.stack([prev, curr], dim=1))
        total = total + _loss(base, pred, data[idx + 1 + s], w, loss)
        prev, curr = curr, pred
    return total / k


class _AnomalySamples:
    """One-step samples of tracer anomalies (``tracer_anomalies`` of :func:`train_forecast`)."""

    def __init__(self, ds: xr.Dataset, fm: ForecastModel, dev: torch.device) -> None:

        if "passive_tracer_anomaly" not in ds:
            raise SchemaError(
                "tracer_anomalies must hold 'passive_tracer_anomaly' (from "
                "xfuxi.world.tracer_anomalies.held_suarez_tracer_anomalies)"
            )
        anomaly = ds["passive_tracer_anomaly"]
        base, base_c = _to_array(ds.drop_vars("passive_tracer_anomaly"), fm.channels,
                                 "tracer_anomalies")  # fmt: skip
        fm.check_dataset(base_c)
        self.tracer_idx, tracer_levels = [], []
        for i, c in enumerate(fm.channels):
            if c[0] == "passive_tracer":
                self.tracer_idx.append(i)
                tracer_levels.append(c[1])
        if not self.tracer_idx:
            raise SchemaError("tracer_anomalies given, but the model has no passive_tracer")
        missing = [lv for lv in tracer_levels if lv not in anomaly["level"].values]
        if missing:
            raise SchemaError(f"tracer_anomalies lack the model's tracer levels {missing}")
        values = (
            anomaly.sel(level=tracer_levels)
            .transpose("window", "member", "offset", "level", "latitude", "longitude")
            .values.astype("float32")
        )
        if not np.all(np.isfinite(values)):
            raise SchemaError("tracer_anomalies contain NaN or infinite values")
        both = anomaly_samples(ds, "both")
        t0 = anomaly_samples(ds, "t0")
        self.times = np.concatenate([both[0], t0[0]])
        self.windows = np.concatenate([both[1], t0[1]])
        self.offsets = np.concatenate([both[2], t0[2]])
        if self.times.size == 0:
            raise SchemaError("tracer_anomalies hold no complete sample")
        self.members = values.shape[1]
        self.base = torch.from_numpy(base).to(dev)
        self.anomaly = torch.from_numpy(values).to(dev)
        self.signature = {
            "samples": int(len(self.times)),
            "members": int(self.members),
            "config": ds.attrs.get("config", ""),
        }

    def objective(
        self,
        net: torch.nn.Module,
        fm: ForecastModel,
        w: torch.Tensor,
        seed: int,
        step: int,
        size: int,
        rank: int = 0,
    ) -> torch.Tensor:
        """Normalised squared error of the model's response to the anomalies.

        The response is ``model(state + anomaly) − model(state)`` on the tracer channels; its
        error against the world's anomaly 6 hours on is summed with the latitude weights over
        each sample, divided by the anomaly's own sum of squares, and averaged over the
        samples: 0 is perfect, and a model that keeps the anomaly unchanged scores about the
        persistence error. Only the response is trained here; the states themselves are the
        main objective's.
        """
        clean, anomaly = self.batch(seed, step, size, rank)
        idx = torch.as_tensor(self.tracer_idx, device=clean.device)
        pert = clean[:, :2].clone()
        pert[:, :, idx] += anomaly[:, :2]
        # both forecasts in one batch, both with gradient: the loss must not move the
        # unperturbed forecast, only the difference
        out = net(torch.cat([clean[:, :2], pert]))[:, idx]
        std = fm._std[:, idx]
        resp = (out[size:] - out[:size]) / std
        target = anomaly[:, 2] / std
        num = ((resp - target) ** 2 * w).sum((1, 2, 3))
        den = (target**2 * w).sum((1, 2, 3)).clamp_min(1e-12)
        return (num / den).mean()

    def batch(
        self, seed: int, step: int, size: int, rank: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's samples: states ``(size, 3, C, H, W)`` (two inputs and the target's
        time) and their anomalies ``(size, 3, L, H, W)`` on the tracer channels (zero where
        a state carries none)."""
        rng = np.random.default_rng([seed, step, 7919, rank])
        rows = rng.integers(0, len(self.times), size)
        members = rng.integers(0, self.members, size)
        clean = self.base[torch.from_numpy(self.times[rows])]
        anomaly = torch.zeros(
            (size, 3, len(self.tracer_idx), *clean.shape[-2:]), dtype=clean.dtype,
            device=clean.device,
        )  # fmt: skip
        for j in range(3):
            off = self.offsets[rows, j]
            for b in np.flatnonzero(off >= 0):
                anomaly[b, j] = self.anomaly[self.windows[rows[b]], members[b], off[b]]
        return clean, anomaly


def _save_state(
    directory: Path, model: ForecastModel, opt: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Write the training checkpoint (model, optimizer, trainer state) as one unit."""
    training = {k: v for k, v in state["signature"].items() if k != "channels"}
    files = model_files(model, metadata={"history": state["history"], "training": training})
    save_training_state(
        directory, files, optimizer=opt, state=state, kind=_STATE_KIND, state_format=_STATE_FORMAT
    )


def _load_state(
    directory: Path, model: ForecastModel, opt: torch.optim.Optimizer, signature: dict[str, Any]
) -> dict[str, Any] | None:
    """Restore model and optimizer from a verified training checkpoint; ``None`` if none yet."""
    saved = load_training_state(directory, kind=_STATE_KIND, state_format=_STATE_FORMAT)
    if saved is None:
        return None
    state = saved.state
    if state.get("signature") != signature:
        old = state.get("signature") or {}
        diff = sorted(k for k in signature if old.get(k) != signature[k])
        raise ValueError(
            f"cannot resume from {directory}: it was written by a run with other settings "
            f"({diff}); use another checkpoint_dir or resume=False"
        )
    weights = tensors_from_bytes(saved.files[WEIGHTS], directory / WEIGHTS)
    model.net.load_state_dict(weights)
    saved.restore_optimizer(opt)
    return state


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


def _dist_info() -> tuple[int, int]:
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
    validation: xr.Dataset | None = None,
    model: ForecastModel | str | os.PathLike[str] | None = None,
    preset: str | dict[str, Any] = "small",
    variables: Sequence[str] | None = None,
    stats: xr.Dataset | NormStats | None = None,
    steps: int = 1000,
    batch_size: int = 16,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    warmup_steps: int = 100,
    min_lr_ratio: float = 0.01,
    rollout_steps: int = 1,
    lead_model: ForecastModel | str | os.PathLike[str] | None = None,
    lead_steps: int = 0,
    loss: str = "l1",
    tracer_anomalies: xr.Dataset | None = None,
    anomaly_batch_size: int = 8,
    anomaly_weight: float = 1.0,
    grad_clip: float | None = 1.0,
    grad_checkpointing: bool = False,
    val_every: int = 200,
    val_samples: int = 64,
    log_every: int = 50,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 200,
    resume: bool = True,
    seed: int = 0,
    name: str = "fuxi",
    device: str | torch.device | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool | None = None,
) -> ForecastModel:
    """Train (or fine-tune) a FuXi forecast model on 6-hourly canonical data.

    Parameters
    ----------
    train : xarray.Dataset
        Training period (canonical layout, regular 6-hourly ``time``; gaps are skipped).
    validation : xarray.Dataset, optional
        Held-out period; its loss is logged every ``val_every`` steps and at the end.
    model : ForecastModel, str or path, optional
        Start from this model (fine-tuning, e.g. ``rollout_steps=4``); its channels, grid and
        statistics are kept. Default: a new :class:`~xfuxi.models.fuxi.FuXiNet` of
        ``preset`` on all channels of ``variables``.
    preset : str or dict, default "small"
        Architecture preset of a new network (see :data:`xfuxi.models.fuxi.PRESETS`).
    variables : sequence of str, optional
        Variables of a new model, in channel order (default: all of ``train``).
    stats : xarray.Dataset or NormStats, optional
        Normalization statistics of a new model; default
        :func:`xfuxi.data.stats.normalization_stats` of ``train``.
    steps : int, default 1000
        Optimizer steps (global batches).
    batch_size : int, default 16
        Global batch size (split over the processes of a distributed run).
    lr, weight_decay : float
        AdamW learning rate (peak) and weight decay.
    warmup_steps : int, default 100
        Linear warm-up; then cosine decay to ``min_lr_ratio · lr`` at ``steps``.
    min_lr_ratio : float, default 0.01
    rollout_steps : int, default 1
        Autoregressive steps per sample; the loss is averaged over them and backpropagated
        through the whole rollout.
    lead_model : ForecastModel, str or path, optional
        With ``lead_steps > 0``: the frozen model whose forecasts start each sample (FuXi's
        cascade: FuXi-Medium is fine-tuned from FuXi-Short on Short's 5-day forecasts).
        Default: a frozen copy of ``model`` as it was before this run. Must have the same
        channels, grid and time step as the trained model.
    lead_steps : int, default 0
        Steps of ``lead_model`` run (without gradient) from the true pair before the trained
        model's rollout; the targets are the true states after them. ``0``: samples start
        from true states.
    loss : {"l1", "amse"}, default "l1"
        ``"l1"``: FuXi's latitude-weighted L1. ``"amse"``: the adjusted MSE of Subich et
        al. (2025) (:func:`amse_loss`), which does not reward damping the modes whose phase
        is lost, so that fine-tuning on long leads keeps the forecast's eddy amplitude
        (FuXi's L1-trained later stages blur toward climatology instead).
    tracer_anomalies : xarray.Dataset, optional
        Passive-tracer anomalies carried by the world's flow
        (:func:`xfuxi.world.tracer_anomalies.held_suarez_tracer_anomalies`). Each step then
        adds the error of the model's response to ``anomaly_batch_size`` of these anomalies
        (about half at both input times, half at the second only, as a 4DVar increment),
        weighted by ``anomaly_weight``, to the objective (``_AnomalySamples.objective``: the
        squared error of ``model(state + anomaly) − model(state)`` against the world's
        anomaly 6 hours on, relative to the anomaly's size). It teaches the model to carry a
        tracer anomaly along the wind rather than extrapolate the tracer in time; it is
        logged as ``anomaly_loss``.
    anomaly_batch_size : int, default 8
    anomaly_weight : float, default 1.0
    grad_clip : float or None, default 1.0
        Clip the gradient norm.
    grad_checkpointing : bool, default False
        Recompute transformer blocks in the backward pass (less memory, more time).
    val_every, val_samples : int
        Validation interval (steps) and number of evenly spaced validation samples.
    log_every : int, default 50
        Interval (steps) of the logged mean training loss.
    checkpoint_dir : path, optional
        Where to save the training state every ``checkpoint_every`` steps and at the end. If
        it holds a state of a run with the same settings and ``resume`` is True, training
        continues from it (bit-for-bit as if never interrupted, on the same hardware). The
        checkpoint is written as one unit, so a run killed while writing it leaves the
        previous one whole; an incomplete or corrupt checkpoint is refused
        (:class:`~xfuxi.models.checkpoint.CheckpointError`), never resumed from. A directory
        that is not an xfuxi training checkpoint is refused before training starts.
    checkpoint_every : int, default 200
    resume : bool, default True
    seed : int, default 0
        Seeds the network's initialisation and the sample order.
    name : str, default "fuxi"
        Model name (provenance).
    device : str or torch.device, optional
        Default ``xfuxi.get_options()["device"]`` (each distributed process uses its
        ``LOCAL_RANK`` GPU when the device is CUDA).
    callback : callable, optional
        ``callback(step, {"loss": ..., "lr": ...})`` after every optimizer step.
    progress : bool, optional
        Progress bar (default: the ``progress`` option).

    Returns
    -------
    ForecastModel
        The trained model in eval mode on the CPU; ``model.config["metadata"]["history"]``
        lists the logged training and validation losses.

    Raises
    ------
    ValueError
        Bad settings, a batch size not divisible by the number of processes, or a
        checkpoint written with other settings, incomplete or corrupt.
    xfuxi.files.OutputExistsError
        ``checkpoint_dir`` holds something other than an xfuxi training checkpoint.
    SchemaError
        Data lacking the model's channels, on another grid, with NaN, or too short.

    Notes
    -----
    FuXi's loss (Chen et al. 2023): ``L = 1/(C·H·W) Σ_c Σ_i Σ_j a_i |X̂_cij − X_cij|`` with
    ``a_i`` the latitude area weights normalised to mean 1 (WeatherBench2's
    ``get_lat_weights``, :func:`xfuxi.verify.weights.area_weights`) and fields normalised
    by each channel's std. The network itself predicts the 6-hour tendency in units of the
    6-hour-difference std (``residual=True``).

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
    >>> m = train_forecast(ds, preset="tiny", steps=3, batch_size=4, warmup_steps=1,
    ...                    progress=False)
    >>> [h["step"] for h in m.config["metadata"]["history"]]
    [3]
    """
    from tqdm.auto import tqdm

    from ..options import get_options
    from ..verify.weights import area_weights

    for label, value, low in (
        ("steps", steps, 1),
        ("batch_size", batch_size, 1),
        ("rollout_steps", rollout_steps, 1),
        ("lead_steps", lead_steps, 0),
        ("warmup_steps", warmup_steps, 0),
        ("val_every", val_every, 1),
        ("val_samples", val_samples, 1),
        ("log_every", log_every, 1),
        ("checkpoint_every", checkpoint_every, 1),
        ("seed", seed, 0),
        ("anomaly_batch_size", anomaly_batch_size, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{label} must be an integer >= {low}; got {value!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}")
    if isinstance(anomaly_weight, bool) or not (
        isinstance(anomaly_weight, (int, float, np.integer, np.floating)) and anomaly_weight >= 0
    ):
        raise ValueError(f"anomaly_weight must be a number >= 0; got {anomaly_weight!r}")
    if not (lr > 0 and 0 <= min_lr_ratio <= 1 and weight_decay >= 0):
        raise ValueError(
            f"need lr > 0, 0 <= min_lr_ratio <= 1, weight_decay >= 0; "
            f"got {lr}, {min_lr_ratio}, {weight_decay}"
        )
    rank, world = _dist_info()
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} is not divisible by {world} processes")
    if tracer_anomalies is not None and anomaly_batch_size % world:
        raise ValueError(
            f"anomaly_batch_size {anomaly_batch_size} is not divisible by {world} processes"
        )
    opts = get_options()
    dev = torch.device(device if device is not None else opts["device"])
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))

    # ---- the model ----------------------------------------------------------------------
    train = validate(train, require_time=True).load()  # read once (a copy; input untouched)
    if model is None:
        canonical = train
        channels = channels_of(canonical, variables)
        if stats is None:
            from ..data.stats import normalization_stats

            stats = normalization_stats(canonical)
        norm = stats if isinstance(stats, NormStats) else NormStats.from_dataset(stats, channels)
        torch.manual_seed(seed)
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
    fm.check_dataset(train)
    lead, lead_sha = _lead_model(lead_model, lead_steps, fm, model)
    if hasattr(fm.net, "grad_checkpointing"):
        fm.net.grad_checkpointing = bool(grad_checkpointing)
    fm.to(dev)
    if lead is not None:
        lead.to(dev)
    horizon = rollout_steps + lead_steps

    data_np, train_c = _to_array(train, fm.channels, "training")
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
        fm.check_dataset(validate(validation, require_time=True))
        v_np, val_c = _to_array(validation, fm.channels, "validation")
        vs = _sample_starts(val_c["time"].values, fm.timestep, horizon)
        if vs.size == 0:
            raise SchemaError("validation data hold no sample of consecutive 6-hourly states")
        pick = np.unique(np.linspace(0, vs.size - 1, min(val_samples, vs.size)).astype(int))
        val_starts = vs[pick]
        val_data = torch.from_numpy(v_np).to(dev)

    anom = None
    if tracer_anomalies is not None:
        anom = _AnomalySamples(tracer_anomalies, fm, dev)

    # ---- optimizer, state ---------------------------------------------------------------
    opt = torch.optim.AdamW(fm.net.parameters(), lr=lr, weight_decay=weight_decay)
    signature = {
        "steps": int(steps), "batch_size": int(batch_size), "lr": float(lr),
        "weight_decay": float(weight_decay), "warmup_steps": int(warmup_steps),
        "min_lr_ratio": float(min_lr_ratio), "rollout_steps": int(rollout_steps),
        "seed": int(seed), "channels": [channel_name(c) for c in channels],
        "samples": int(starts.size), "world_size": int(world),
        "grad_clip": None if grad_clip is None else float(grad_clip),
    }  # fmt: skip
    if lead is not None:
        signature.update(lead_steps=int(lead_steps), lead_model=lead_sha)
    if loss != "l1":  # absent for L1 so that older checkpoints still resume
        signature["loss"] = loss
    if anom is not None:
        signature.update(
            tracer_anomalies=anom.signature,
            anomaly_batch_size=int(anomaly_batch_size),
            anomaly_weight=float(anomaly_weight),
        )
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    history: list[dict[str, Any]] = []
    running: list[float] = []  # training losses since the last logged entry
    running_anom: list[float] = []  # their anomaly part
    start_step = 0
    if ckpt is not None:
        check_training_directory(ckpt, kind=_STATE_KIND)  # before training, not at step N
    if ckpt is not None and resume:
        state = _load_state(ckpt, fm, opt, signature)
        if state is not None:
            start_step, history = int(state["step"]), list(state["history"])
            running = list(state.get("running", []))
            fm.to(dev)
            log.info("resuming training from %s at step %d", ckpt, start_step)
    net: torch.nn.Module = fm
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(fm, device_ids=[dev.index] if dev.type == "cuda" else None)

    per_epoch = starts.size // batch_size
    local = batch_size // world

    def batch_of(step: int) -> np.ndarray:
        epoch, b = divmod(step, per_epoch)
        perm = np.random.default_rng([seed, epoch]).permutation(starts)
        rows = perm[b * batch_size : (b + 1) * batch_size]
        return rows[rank * local : (rank + 1) * local]

    def validate_now() -> float:
        fm.eval()
        losses = []
        with torch.no_grad():
            for i in range(0, val_starts.size, batch_size):
                sl = val_starts[i : i + batch_size]
                value = _rollout_loss(
                    fm, fm, val_data, sl, rollout_steps, w, lead, lead_steps, loss
                )
                losses.append(float(value) * sl.size)
        fm.train()
        return sum(losses) / val_starts.size

    show = (opts["progress"] if progress is None else bool(progress)) and rank == 0
    bar = tqdm(total=steps, initial=start_step, desc=f"train {fm.name}", disable=not show)
    fm.train()
    for step in range(start_step, steps):
        factor = _lr_factor(step, steps, warmup_steps, min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr * factor
        objective = _rollout_loss(
            net, fm, data, batch_of(step), rollout_steps, w, lead, lead_steps, loss
        )
        if anom is not None:
            part = anom.objective(net, fm, w, seed, step, anomaly_batch_size // world, rank)
            running_anom.append(float(part.detach()))
            objective = objective + anomaly_weight * part
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
                {"step": done, "history": history, "running": running, "signature": signature},
            )
        if world > 1 and ckpt is not None and (done % checkpoint_every == 0 or done == steps):
            import torch.distributed as dist

            dist.barrier()
    bar.close()
    fm.config.setdefault("metadata", {})
    fm.config["metadata"] = {
        **fm.config["metadata"],
        "history": history,
        "training": {k: v for k, v in signature.items() if k != "channels"},
    }
    return fm.cpu().eval()
