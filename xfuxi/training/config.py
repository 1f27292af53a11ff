"""The configurations of xfuxi's training runs (frozen, saved as JSON, turned into CLI flags).

:class:`TrainConfig` holds the settings of a forecast-model training run
(:func:`xfuxi.training.forecast.train_forecast`, ``xfuxi train``);
:class:`PerturbationTrainConfig` those of a FuXi-ENS perturbation-module run
(:func:`xfuxi.training.ens.train_perturbation`, ``xfuxi train-ens``). Each run saves its
configuration's :meth:`~xfuxi.config.Config.to_dict` with every checkpoint (provenance), and
the command line builds its flags from the fields (:func:`xfuxi.config.add_arguments`).

The data, the models and the monitoring (progress bar, callback) are arguments of the
training functions, not part of a configuration; where a run checkpoints and runs
(``checkpoint_dir``, ``device``) is.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Literal

from ..config import (
    Config,
    check_integers,
    check_number,
    check_run_place,
    check_seed,
    config_with_legacy,
    field,
    user_stacklevel,
)
from ..models.precision import Precision, check_precision, precision_field

__all__ = ["PerturbationTrainConfig", "TrainConfig", "config_with_legacy"]


#: the losses of :func:`~xfuxi.training.forecast.train_forecast`
LOSSES = ("l1", "amse")

#: the scores of the climate term (:class:`~xfuxi.training.climate.FreeRunPool`)
CLIMATE_LOSSES = ("spectrum", "amse")

#: the help texts of the trainers' ``checkpoint_dir`` and ``device``
CHECKPOINT_DIR_HELP = "where the training state is saved (and resumed from); None: nowhere"
DEVICE_HELP = "torch device (default: the 'device' option)"


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """Settings of a FuXi forecast-model training run (see :func:`train_forecast`).

    Every field but ``checkpoint_dir`` (``--out``) is also a flag of ``xfuxi train``
    (``batch_size`` → ``--batch-size``). Invalid values raise ``ValueError`` naming the field.

    Warns
    -----
    UserWarning
        ``warmup_steps`` exceeds ``steps``: the learning rate never reaches its peak ``lr``
        (allowed, as in short test runs, but rarely meant).

    Examples
    --------
    >>> cfg = TrainConfig(steps=3, batch_size=4, warmup_steps=1)
    >>> cfg.steps, cfg.lr
    (3, 0.001)
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> TrainConfig(loss="mse")
    Traceback (most recent call last):
    ...
    ValueError: TrainConfig.loss must be one of ('l1', 'amse'); got 'mse'
    """

    preset: str | dict = field(
        "small",
        help="architecture preset of a new network: paper, small or tiny "
        "(xfuxi.models.fuxi.PRESETS)",
    )
    variables: tuple[str, ...] | None = field(
        None, help="variables of a new model, in channel order (default: all of the data)"
    )
    steps: int = field(1000, help="optimizer steps (global batches)")
    batch_size: int = field(16, help="global batch size (split over distributed processes)")
    lr: float = field(1e-3, help="peak AdamW learning rate")
    weight_decay: float = field(0.01, help="AdamW weight decay")
    warmup_steps: int = field(100, help="linear warm-up steps, then cosine decay")
    min_lr_ratio: float = field(
        0.01, help="the cosine decay goes towards min_lr_ratio * lr (reached after the last step)"
    )
    rollout_steps: int = field(1, help="autoregressive steps per sample")
    lead_steps: int = field(
        0, help="start each sample from the lead model's forecast this many steps on (cascade)"
    )
    loss: Literal["l1", "amse"] = field(
        "l1", help="l1: FuXi's; amse: adjusted MSE that keeps eddy amplitude (Subich et al. 2025)"
    )
    anomaly_batch_size: int = field(8, help="tracer-anomaly samples per step")
    anomaly_weight: float = field(1.0, help="weight of the tracer-anomaly loss")
    input_perturbation: float = field(
        0.0,
        help="balanced perturbations on both input times: this x the difference of two "
        "random training states (0: off)",
    )
    cycled_fraction: float = field(
        0.5,
        help="share of each batch started from cycled analysis states (with cycled_states)",
    )
    climate_runs: int = field(
        0,
        help="free runs of the model carried through training for the climate term "
        "(xfuxi.training.climate; 0: off)",
    )
    climate_min_steps: int = field(
        40, help="steps a free run must be old to enter the climate term"
    )
    climate_max_steps: int = field(120, help="steps after which a free run restarts from the truth")
    climate_rollout_steps: int = field(2, help="steps with gradient in the climate term")
    climate_advance: int = field(1, help="steps each free run advances per optimizer step")
    climate_weight: float = field(1.0, help="weight of the climate term")
    climate_loss: Literal["spectrum", "amse"] = field(
        "spectrum",
        help="spectrum: log power of the free runs by latitude and zonal-wavenumber octave "
        "against the training data's; amse: adjusted MSE against the truth",
    )
    grad_clip: float | None = field(1.0, help="clip the gradient norm to this")
    grad_checkpointing: bool = field(False, help="recompute transformer blocks (less memory)")
    val_every: int = field(200, help="steps between validations")
    val_samples: int = field(64, help="evenly spaced validation samples")
    log_every: int = field(50, help="steps between logged losses")
    checkpoint_dir: str | None = field(None, help=CHECKPOINT_DIR_HELP, cli=False)
    checkpoint_every: int = field(200, help="steps between checkpoints")
    resume: bool = field(True, help="resume from the checkpoint directory if it holds this run")
    seed: int = field(0, help="seeds the initialisation and the sample order")
    precision: Precision = precision_field()
    device: str | None = field(None, help=DEVICE_HELP)
    name: str = field("fuxi", help="model name recorded in forecasts")

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_integers(self, {
            "steps": 1, "batch_size": 1, "rollout_steps": 1, "lead_steps": 0, "warmup_steps": 0,
            "val_every": 1, "val_samples": 1, "log_every": 1, "checkpoint_every": 1, "seed": 0,
            "anomaly_batch_size": 1, "climate_runs": 0, "climate_min_steps": 0,
            "climate_max_steps": 1, "climate_rollout_steps": 1, "climate_advance": 1,
        })  # fmt: skip
        check_seed(self.seed, f"{owner}.seed")  # it seeds torch's generator: 32 bits
        if self.climate_min_steps >= self.climate_max_steps:
            raise ValueError(
                f"{owner}.climate_min_steps must be below climate_max_steps; got "
                f"{self.climate_min_steps} and {self.climate_max_steps}"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"{owner}.loss must be one of {LOSSES}; got {self.loss!r}")
        check_precision(owner, self.precision)
        check_number(self, "anomaly_weight")
        check_number(self, "climate_weight")
        if self.climate_loss not in CLIMATE_LOSSES:
            raise ValueError(
                f"{owner}.climate_loss must be one of {CLIMATE_LOSSES}; got {self.climate_loss!r}"
            )
        check_number(self, "input_perturbation")
        check_number(self, "cycled_fraction")
        if self.cycled_fraction > 1:
            raise ValueError(f"{owner}.cycled_fraction must be <= 1; got {self.cycled_fraction!r}")
        check_number(self, "lr", above=True)
        check_number(self, "weight_decay")
        check_number(self, "min_lr_ratio")
        if self.min_lr_ratio > 1:
            raise ValueError(f"{owner}.min_lr_ratio must be <= 1; got {self.min_lr_ratio!r}")
        check_number(self, "grad_clip", above=True, optional=True)
        if not isinstance(self.preset, (str, dict)):
            raise ValueError(f"{owner}.preset must be a preset name or a dict; got {self.preset!r}")
        if isinstance(self.variables, str):
            raise ValueError(
                f"{owner}.variables must be a sequence of names, not the string {self.variables!r}"
            )
        if self.variables is not None and not isinstance(self.variables, tuple):
            object.__setattr__(self, "variables", tuple(self.variables))
        check_run_place(self)
        if self.warmup_steps > self.steps:
            warnings.warn(
                f"{owner}.warmup_steps {self.warmup_steps} exceeds steps {self.steps}: the "
                f"learning rate rises to only {self.steps / self.warmup_steps:.3g} x lr and "
                "never reaches its peak; set warmup_steps <= steps",
                UserWarning,
                stacklevel=user_stacklevel(),
            )


@dataclasses.dataclass(frozen=True)
class PerturbationTrainConfig(Config):
    """Settings of a FuXi-ENS perturbation-module training run (see :func:`train_perturbation`).

    The last five fields (``hidden`` … ``name``) build a new
    :class:`~xfuxi.models.ens.PerturbationVAE` when no module is given; their defaults are
    the module's own. Every field but ``checkpoint_dir`` is also a flag of ``xfuxi train-ens``.

    Examples
    --------
    >>> cfg = PerturbationTrainConfig(iterations=40, members=4)
    >>> cfg.kl_weight, cfg.sample
    (0.001, 'prior')
    >>> cfg.module_options()["hidden"]
    32
    >>> PerturbationTrainConfig(members=1)
    Traceback (most recent call last):
    ...
    ValueError: PerturbationTrainConfig.members must be an integer >= 2; got 1
    """

    members: int = field(4, help="members per sequence in the fair CRPS (>= 2)")
    rollout: int = field(1, help="steps per training sequence")
    kl_weight: float = field(1e-3, help="lambda of the KL term")
    sample: Literal["prior", "posterior"] = field(
        "prior",
        help="latents of the training members: from the prior (as at inference) or the "
        "posterior (FuXi-ENS)",
    )
    iterations: int = field(500, help="Adam steps")
    batch_size: int = field(4, help="sequences per step")
    lr: float = field(1e-3, help="learning rate (cosine-decayed)")
    max_minutes: float | None = field(None, help="stop training after this wall time")
    seed: int = field(0, help="seeds a new module's weights, the batches and the latents")
    checkpoint_dir: str | None = field(None, help=CHECKPOINT_DIR_HELP, cli=False)
    checkpoint_every: int = field(100, help="iterations between checkpoints")
    resume: bool = field(True, help="resume from checkpoint_dir/latest if it holds this run")
    validate_every: int = field(50, help="iterations between validations")
    log_every: int = field(10, help="iterations between log lines")
    precision: Precision = precision_field()
    device: str | None = field(None, help=DEVICE_HELP)
    hidden: int = field(32, help="width of a new module's convolutional layers")
    latent: int = field(8, help="latent channels per coarse grid point of a new module")
    downsample: int = field(4, help="coarsening factor of a new module's latent grid")
    init_scale: float = field(0.05, help="initial perturbation scale of a new module (in std)")
    centered: bool = field(True, help="antithetic, zero-mean perturbations of a new module")
    name: str = field("fuxi-ens", help="name of a new module")

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_integers(self, {
            "members": 2, "rollout": 1, "iterations": 0, "batch_size": 1, "seed": 0,
            "checkpoint_every": 1, "validate_every": 1, "log_every": 1, "hidden": 1, "latent": 1,
            "downsample": 1,
        })  # fmt: skip
        check_seed(self.seed, f"{owner}.seed")  # it seeds torch's generator: 32 bits
        if self.sample not in ("posterior", "prior"):
            raise ValueError(f"{owner}.sample must be 'posterior' or 'prior'; got {self.sample!r}")
        check_precision(owner, self.precision)
        check_number(self, "kl_weight")
        for label in ("lr", "init_scale"):
            check_number(self, label, above=True)
        check_number(self, "max_minutes", above=True, optional=True)
        check_run_place(self)

    def module_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~xfuxi.models.ens.PerturbationVAE` for a new module."""
        return {
            "hidden": self.hidden, "latent": self.latent, "downsample": self.downsample,
            "init_scale": self.init_scale, "centered": self.centered, "name": self.name,
        }  # fmt: skip
