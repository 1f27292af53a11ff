"""Training the FuXi-ENS perturbation module: fair CRPS over sampled members + λ·KL.

The deterministic forecast model is frozen (fine-tuning *from* it: its weights do not
change, gradients flow *through* it); only the :class:`~xfuxi.models.ens.PerturbationVAE`
learns. For each training sequence ``x_{t−Δ}, x_t, x_{t+Δ}, …`` and each of ``members``
samples, every rollout step ``k``

1. encodes the current pair, gets the prior ``p(z | x)`` and the posterior
   ``q(z | x, x_{k+1})``,
2. samples ``z`` (from the posterior, as FuXi-ENS trains, or from the prior),
3. perturbs the current state by the decoded ``δ`` and steps the model.

The loss (:func:`~xfuxi.training.losses.ensemble_loss`) is the fair CRPS of the members
against the truth on normalised, area-weighted fields, plus ``kl_weight`` times the KL
divergence ``KL(q ‖ p)`` (see the definitions in the documentation, docs/design.md). The
settings are a :class:`~xfuxi.training.config.PerturbationTrainConfig`; the calibration of a
trained module lives in :mod:`xfuxi.training.calibration` (inflation) and
:mod:`xfuxi.training.gains` (per-channel gains).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..config import user_stacklevel
from ..models.base import ForecastModel, isolated_rng
from ..models.ens import (
    PerturbationVAE,
    perturbation_files,
    perturbation_from_files,
)
from ..models.precision import autocast
from ..models.training_state import (
    check_run_directory,
    hold_checkpoint_directory,
    load_training_state,
    save_training_state,
)
from ..options import progress_enabled
from ..verify.weights import area_weights
from .config import PerturbationTrainConfig, config_with_legacy
from .forecast import dist_info
from .loop import (
    LoopPlan,
    average_gradients,
    freeze,
    gradient_step,
    module_digest,
    process_share,
    run_loop,
)
from .losses import ensemble_loss
from .samples import digested_sequences

__all__ = ["PerturbationTrainConfig", "train_perturbation"]

log = logging.getLogger(__name__)

#: the trainer state of a perturbation training checkpoint (xfuxi.models.checkpoint)
_STATE_FORMAT = "xfuxi-perturbation-trainer/1"
_STATE_KIND = "perturbation-training"

#: names that lived here before the split: now in these modules (reached with a warning)
_MOVED = {
    **dict.fromkeys(("ensemble_loss", "fair_crps", "gaussian_kl"), "losses"),
    **dict.fromkeys(
        ("apply_variable_inflation", "tune_amplitude", "tune_variable_inflation",
         "verifiable_init_times"),
        "calibration",
    ),
    **dict.fromkeys(
        ("apply_early_gain", "apply_model_gain", "apply_spread_growth", "select_spread_growth",
         "tune_early_gain", "tune_model_gain", "tune_spread_growth"),
        "gains",
    ),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"xfuxi.training.ens.{name} moved to xfuxi.training.{module}.{name}",
        DeprecationWarning,
        stacklevel=user_stacklevel(),
    )
    return getattr(importlib.import_module(f"xfuxi.training.{module}"), name)


#: settings a resumed run may change: where and how often it logs, saves and stops, and
#: its length (a run is extended by more iterations; its cosine schedule then follows them)
_RESUME_FREE = frozenset(
    {"max_minutes", "resume", "log_every", "checkpoint_dir", "checkpoint_every", "device",
     "iterations"}
)  # fmt: skip


def _settings_differences(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The settings of ``now`` that differ from those a checkpoint's metadata recorded (a
    setting it did not record, from an earlier release, is not compared)."""
    return [
        f"{key} (stored {stored[key]!r}, now {value!r})"
        for key, value in now.items()
        if key not in _RESUME_FREE
        and key in stored
        and json.dumps(stored[key], sort_keys=True, default=str)
        != json.dumps(value, sort_keys=True, default=str)
    ]


def train_perturbation(
    model: ForecastModel,
    data: xr.Dataset,
    *,
    config: PerturbationTrainConfig | dict[str, Any] | None = None,
    perturbation: PerturbationVAE | None = None,
    validation: xr.Dataset | None = None,
    progress: bool | None = None,
    **legacy: Any,
) -> tuple[PerturbationVAE, dict[str, list[float]]]:
    """Train (fine-tune) a FuXi-ENS perturbation module for a frozen deterministic model.

    Parameters
    ----------
    model : ForecastModel
        Deterministic model; its weights stay frozen (not modified).
    data : xarray.Dataset
        Training states (analysis layout, regular 6-hourly ``time``).
    config : PerturbationTrainConfig or dict, optional
        The run's settings (members, rollout, λ, sampling, iterations, batch size,
        learning rate, seed, intervals, precision, where to checkpoint, the device, and the
        options of a new module; see
        :class:`~xfuxi.training.config.PerturbationTrainConfig`). Default
        ``PerturbationTrainConfig()``. Its :meth:`~xfuxi.config.Config.to_dict` is saved in
        every checkpoint's metadata. The shipped module was trained with
        ``sample="prior"`` (see ``scripts/train_ens_pretrained.sh``).

        ``config.checkpoint_dir``: where the training checkpoint ``latest/`` is written (by
        the first process under ``torchrun``) every ``config.checkpoint_every`` iterations
        and at the end: a loadable perturbation module plus the optimizer, the random
        generators and the history, as one unit with a manifest of their sha256
        (:func:`xfuxi.models.training_state.save_training_state`). With ``config.resume``,
        training starts from ``checkpoint_dir/latest`` if it exists: with the same settings
        the run continues exactly as if never interrupted; an incomplete or corrupt
        checkpoint, or one of other settings (another ``precision``, other data, another
        frozen model, more iterations), is refused
        (:class:`~xfuxi.models.checkpoint.CheckpointError`, ``ValueError``).

        ``config.device``: default the ``device`` option.
    perturbation : PerturbationVAE, optional
        Starting module (default: a new one built for ``model``'s channels, grid and stats
        with the config's module options, its initial weights drawn from ``config.seed``
        without touching torch's global generator). It is trained in place and returned.
    validation : xarray.Dataset, optional
        Held-back states; the fair CRPS of prior-sampled members (as at inference) on a
        fixed set of its sequences is logged every ``config.validate_every`` iterations.
    progress : bool, optional
        tqdm bar (default: the ``progress`` option).
    **legacy
        The old keyword arguments (``members=``, ``iterations=``, ``checkpoint_dir=``,
        ``device=``, ...: each a field of :class:`PerturbationTrainConfig`; ``vae_kwargs``
        with the module fields) still work, with a ``DeprecationWarning``.

    Returns
    -------
    vae : PerturbationVAE
        In eval mode.
    history : dict
        Lists ``iteration``, ``loss``, ``crps``, ``kl`` (per iteration) and
        ``val_iteration``, ``val_crps``.

    Raises
    ------
    TypeError
        ``data`` or ``validation`` is not a Dataset (e.g. a DataArray).
    SchemaError
        Data the model does not fit, with an extra dim (such as an ensemble's ``number``),
        NaN, or no run of consecutive times.
    ValueError
        Bad settings, or a checkpoint in ``config.checkpoint_dir`` that this run may not
        resume: of other settings, another precision, other training data, other validation
        data (compared where both runs have them), another frozen model (its name, its
        weights or its network), or more iterations than ``config.iterations``.
    xfuxi.models.checkpoint.CheckpointError
        An incomplete or corrupt checkpoint.
    xfuxi.files.OutputInUseError
        Another run is training into ``config.checkpoint_dir``: it holds the directory's
        lock (``.<name>.lock`` beside it) for as long as it runs.

    Notes
    -----
    FuXi-ENS (Zhong et al. 2024): loss = fair CRPS over sampled members on normalised,
    area-weighted fields + λ·KL(posterior ‖ prior); see the definitions in the
    documentation (docs/design.md).

    Examples
    --------
    Two iterations of a tiny module for a persistence model on a random-walk world:

    >>> import numpy as np, pandas as pd, torch, xarray as xr, xfuxi
    >>> from xfuxi.training.config import PerturbationTrainConfig
    >>> rng = np.random.default_rng(0)
    >>> ds = xr.Dataset(
    ...     {"temperature": (("time", "level", "latitude", "longitude"),
    ...                      250 + rng.standard_normal((8, 1, 8, 16)).cumsum(0))},
    ...     coords={"time": pd.date_range("2000-01-01", periods=8, freq="6h"),
    ...             "level": [850], "latitude": np.linspace(-78.75, 78.75, 8),
    ...             "longitude": np.arange(16) * 22.5})
    >>> Last = type("Last", (torch.nn.Module,), {"forward": lambda self, x: x[:, 1]})
    >>> model = xfuxi.wrap_model(Last(), channels=[("temperature", 850.0)],
    ...                          latitude=ds.latitude, longitude=ds.longitude)
    >>> cfg = PerturbationTrainConfig(iterations=2, batch_size=2, members=2, hidden=4,
    ...                               latent=2, downsample=2)
    >>> vae, history = train_perturbation(model, ds, config=cfg, progress=False)
    >>> history["iteration"], vae.training
    ([1, 2], False)
    """
    module_options = dict(legacy.pop("vae_kwargs", None) or {})  # its keys are fields too
    legacy.update(module_options)
    cfg = config_with_legacy(PerturbationTrainConfig, config, legacy, "train_perturbation")
    # the checkpoint directory is this run's alone from before its first check of it until
    # the run ends: a second run given it meanwhile fails at once (OutputInUseError)
    with hold_checkpoint_directory(cfg.checkpoint_dir, rank=dist_info()[0]):
        return _train_perturbation(
            model, data, cfg, perturbation=perturbation, validation=validation, progress=progress
        )


def _train_perturbation(
    model: ForecastModel,
    data: xr.Dataset,
    cfg: PerturbationTrainConfig,
    *,
    perturbation: PerturbationVAE | None,
    validation: xr.Dataset | None,
    progress: bool | None,
) -> tuple[PerturbationVAE, dict[str, list[float]]]:
    """The run of :func:`train_perturbation` (its checkpoint directory locked by the caller)."""
    from tqdm.auto import tqdm

    rank, world, local, dev = process_share(cfg.batch_size, cfg.device, dist_info())
    data_arr, starts, data_sha = digested_sequences(data, model, cfg.rollout + 2)
    length = cfg.rollout + 2
    if cfg.batch_size > starts.size:
        raise ValueError(
            f"batch_size {cfg.batch_size} exceeds the {starts.size} training sequences of "
            f"{length} consecutive times the data hold; give more data or a smaller batch_size"
        )
    if perturbation is None:
        with isolated_rng(cfg.seed):  # the initial weights: of the seed, the caller's stream kept
            perturbation = PerturbationVAE(
                model.channels, model.grid_shape, stats=model.stats, **cfg.module_options()
            )
    vae = perturbation
    vae.check_model(model)
    val, val_sha = None, None
    if validation is not None:
        v_arr, v_starts, val_sha = digested_sequences(validation, model, length, "validation")
        pick = np.random.default_rng(cfg.seed + 1).choice(
            v_starts, size=min(16, v_starts.size), replace=False
        )
        val = torch.from_numpy(np.stack([v_arr[s : s + length] for s in np.sort(pick)]))
    # what the run is of besides its settings: its data and its frozen model (kept in the
    # checkpoint's trainer state; a checkpoint of an earlier release lacks them)
    provenance = {
        "data": data_sha,
        "validation": val_sha,
        "base_model_tensors": module_digest(model),
    }
    ckpt = Path(cfg.checkpoint_dir).expanduser() if cfg.checkpoint_dir is not None else None
    start_iter = 0
    history: dict[str, list[float]] = {
        k: [] for k in ("iteration", "loss", "crps", "kl", "val_iteration", "val_crps")
    }
    saved = None
    if ckpt is not None:  # before training: nothing of the user's is written into
        check_run_directory(ckpt, kind=_STATE_KIND)
    if cfg.resume and ckpt is not None:
        saved = load_training_state(ckpt / "latest", kind=_STATE_KIND, state_format=_STATE_FORMAT)
    if saved is not None:
        back = perturbation_from_files(saved.files, saved.path)
        was = back.metadata.get("precision", "float32")  # (older checkpoints: float32)
        if was != cfg.precision:
            raise ValueError(
                f"cannot resume from {saved.path}: it was trained with precision {was!r}, "
                f"this run has precision {cfg.precision!r}; use the same precision, another "
                "checkpoint_dir or resume=False"
            )
        diff = _settings_differences(back.metadata, cfg.to_dict())
        if back.metadata.get("base_model") not in (None, model.name):
            diff.append(f"base_model (stored {back.metadata['base_model']!r}, now {model.name!r})")
        stored = saved.state.get("provenance", {})
        diff += [  # (validation data are compared where both runs have them)
            f"{key} (stored {stored[key]!r}, now {value!r})"
            for key, value in provenance.items()
            if stored.get(key) is not None and value is not None and stored[key] != value
        ]
        if diff:
            raise ValueError(
                f"cannot resume from {saved.path}: it was written by a run with other settings "
                f"({'; '.join(diff)}); use another checkpoint_dir or resume=False"
            )
        start_iter = int(saved.state["iteration"])
        if start_iter > cfg.iterations:
            raise ValueError(
                f"cannot resume from {saved.path}: it has done {start_iter} iterations, more "
                f"than this run asks for ({cfg.iterations}) and a run is not shortened; ask "
                f"for iterations >= {start_iter}, use another checkpoint_dir or resume=False"
            )
        vae.load_state_dict(back.state_dict())
        history = saved.state["history"]
        log.info("resumed from %s at iteration %d", saved.path, start_iter)

    home = next(model.parameters(), torch.empty(0)).device
    restore_mode = freeze(model.to(dev))

    def restore() -> None:  # the caller's model as it was: mode, gradients, device
        restore_mode()
        model.to(home)

    vae.to(dev).train()
    weights = torch.as_tensor(area_weights(model.latitude).values, dtype=torch.float32, device=dev)
    opt = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda i: (
            0.5 * (1 + math.cos(math.pi * min(1.0, (start_iter + i) / max(1, cfg.iterations))))
        ),
    )
    rng = np.random.default_rng([cfg.seed, start_iter])
    gen = torch.Generator().manual_seed(int(cfg.seed) * 1_000_003 + start_iter)
    if saved is not None:  # continue exactly where the interrupted run was
        saved.restore_optimizer(opt, param_groups=False)
        rng.bit_generator.state = saved.state["rng"]
        gen.set_state(saved.tensors["generator"])

    if val is not None:
        val = val.to(dev)

    def _validate(it: int) -> None:
        if val is None:
            return
        vae.eval()
        g = torch.Generator().manual_seed(12345)
        with torch.no_grad(), autocast(dev, cfg.precision):
            tot = 0.0
            for i in range(0, val.shape[0], cfg.batch_size):
                _, parts = ensemble_loss(
                    vae, model, val[i : i + cfg.batch_size], members=cfg.members, kl_weight=0.0,
                    weights=weights, generator=g, sample="prior",
                )  # fmt: skip
                tot += parts["crps"] * val[i : i + cfg.batch_size].shape[0]
        vae.train()
        history["val_iteration"].append(it)
        history["val_crps"].append(tot / val.shape[0])
        log.info("iteration %d: validation fair CRPS (prior) %.5f", it, tot / val.shape[0])

    def _save(it: int) -> None:
        if ckpt is None:
            return
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
            if rank != 0:
                return
        ckpt.mkdir(parents=True, exist_ok=True)
        meta = {"iteration": it, "base_model": model.name, **cfg.to_dict()}
        save_training_state(
            ckpt / "latest", perturbation_files(vae, metadata=meta), optimizer=opt,
            state={"iteration": it, "history": history, "rng": rng.bit_generator.state,
                   "world_size": world, "provenance": provenance},
            tensors={"generator": gen.get_state()}, kind=_STATE_KIND, state_format=_STATE_FORMAT,
        )  # fmt: skip

    def _advance(it: int) -> dict[str, float]:
        idx = rng.choice(starts, size=cfg.batch_size, replace=False)
        if world > 1:  # this process's part of the global batch (same idx on all)
            idx = idx[rank * local : (rank + 1) * local]
        seq = torch.from_numpy(np.stack([data_arr[s : s + length] for s in idx])).to(dev)
        with autocast(dev, cfg.precision):
            loss, parts = ensemble_loss(
                vae, model, seq, members=cfg.members, kl_weight=cfg.kl_weight,
                weights=weights, generator=gen, sample=cfg.sample,
                rows=(rank * local, cfg.batch_size) if world > 1 else None,
            )  # fmt: skip
        gradient_step(
            loss, vae.parameters(), opt, sched, grad_clip=1.0, where=f"iteration {it}: {parts}",
            # the mean gradient over the global batch, as DDP averages
            before_clip=(lambda: average_gradients(vae, world)) if world > 1 else None,
        )  # fmt: skip
        return {"loss": float(loss.detach()), **parts}

    def _report(it: int, per_step: float) -> None:
        log.info(
            "iteration %d: fair CRPS %.5f, KL %.4f (means of the last %d), %.1f s/it",
            it, float(np.mean(history["crps"][-cfg.log_every:])),
            float(np.mean(history["kl"][-cfg.log_every:])), cfg.log_every, per_step,
        )  # fmt: skip

    show = progress_enabled(progress)
    bar = tqdm(total=cfg.iterations, initial=start_iter, desc="train FuXi-ENS", disable=not show)
    plan = LoopPlan(
        "iteration", cfg.iterations, cfg.log_every, cfg.validate_every, cfg.checkpoint_every,
        cfg.max_minutes, {"crps": ".4f", "kl": ".3f"},
    )  # fmt: skip
    try:
        run_loop(plan, start_iter, history, advance=_advance, validate=_validate, save=_save,
                 report=_report, bar=bar, logger=log)  # fmt: skip
    finally:
        bar.close()
        restore()
        opt.zero_grad(set_to_none=True)  # no gradient buffers left on the returned module
    return vae.eval(), history
