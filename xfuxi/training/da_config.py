"""The settings of a FuXi-DA training run (frozen; saved as JSON; the flags of ``xfuxi train-da``).

Kept apart from :mod:`xfuxi.training.da` so that the command line builds its flags without
importing torch. See :func:`xfuxi.training.da.train_da` and the documentation
(docs/fuxi_da.md).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from ..config import (
    Config,
    check_integers,
    check_number,
    check_run_place,
    check_seed,
    field,
    is_integer,
)
from ..models.precision import Precision, check_precision, precision_field
from .config import CHECKPOINT_DIR_HELP, DEVICE_HELP

__all__ = ["IMAGER_CHANNEL_NAMES", "DAConfig"]

#: the imager's channels (xfuxi.observations.imager.CHANNELS, named here without torch)
IMAGER_CHANNEL_NAMES = ("ir3.7", "wv6.2", "wv6.9", "wv7.4", "ir8.5", "ir10.8", "ir12.0", "co2_13.3")


@dataclasses.dataclass(frozen=True)
class DAConfig(Config):
    """Settings of a FuXi-DA training run (see :func:`train_da`; flags of ``xfuxi train-da``).

    Every field but ``checkpoint_dir`` (``--out``) is also a flag of ``xfuxi train-da``.

    Examples
    --------
    >>> cfg = DAConfig(steps=5, forecast_steps=0)
    >>> DAConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> DAConfig(leads=())
    Traceback (most recent call last):
    ...
    ValueError: DAConfig.leads must be positive integers (6-hour steps); got ()
    """

    steps: int = field(500, help="optimizer steps")
    batch_size: int = field(4, help="samples per step")
    lr: float = field(1e-3, help="peak AdamW learning rate (cosine decay)")
    weight_decay: float = field(0.01, help="AdamW weight decay")
    leads: tuple[int, ...] = field((1, 2), help="background leads (6-hour steps)")
    forecast_steps: int = field(
        2, help="K: 6-hour forecast steps through the frozen model in the loss (0: none)"
    )
    observations: bool = field(True, help="assimilate radiances (False: the CORR variant)")
    sensor_channels: tuple[str, ...] = field(IMAGER_CHANNEL_NAMES, help="imager channels")
    frames: tuple[float, ...] = field((-2.0, 0.0, 2.0), help="frame offsets (hours)")
    satellites: tuple[float, ...] = field((105.0,), help="sub-satellite longitudes")
    zenith_input: bool = field(True, help="give the network the zenith angle (ablation)")
    position_input: bool = field(True, help="give the network position and time (ablation)")
    clear_only: bool = field(False, help="drop cloudy pixels (truth cloud flag; ablation)")
    departure_input: bool = field(
        False, help="also give the network O - H(xb) through the nominal imager operator"
    )
    screen_threshold: float | None = field(
        None,
        help="give the network the pixels whose ir10.8 departure is below -THRESHOLD K as "
        "missing (cloud screening; needs --departure-input; default: all-sky)",
    )
    gradient_input: bool = field(
        False,
        help="also give the network H'(xb)^T (O - H(xb)), the departures carried back into "
        "the column by the nominal operator (needs --departure-input)",
    )
    departure_context: bool = field(
        False,
        help="also give the network each imager channel's RMS departure over all the pixels it "
        "sees, as constant planes: how far the background is from the observations "
        "(needs --departure-input)",
    )
    linear_update: bool = field(
        False,
        help="after the network's increment, add a linear map (a 5x5 convolution, zero at "
        "first) of the departures from the network's analysis through the nominal operator",
    )
    fit_linear_update: bool = field(
        True,
        help="start a new linear update from its least-squares fit on the training samples "
        "(else from zero)",
    )
    loss_scale: Literal["std", "diff_std"] = field(
        "std", help="divide the L1's fields by the channels' std or their 6-hour differences' std"
    )
    forecast_weight: float = field(
        1.0, help="weight of the forecast term: L0 + w (1/K) sum Lk (1: the paper's loss)"
    )
    activity_weight: float = field(
        0.0,
        help="weight of a penalty on the difference between the analysis's eddy activity "
        "(RMS departure from the zonal mean) and the truth's, by channel (0: none)",
    )
    channel_dropout: float = field(
        0.0, help="probability that an imager channel is missing from a training sample"
    )
    cycled_fraction: float = field(
        0.5,
        help="with cycled states (--cycled-states): the share of each batch whose background is "
        "a 6-hour forecast from a cycled analysis instead of from the truth",
    )
    init_from: str | None = field(
        None,
        help="start from a trained network (name or directory): the same kind is trained "
        "further; a CORR network starts an ASSI one (xfuxi.models.fuxi_da.assi_from_corr)",
    )
    width: int = field(24, help="feature channels of a new network")
    scales: int = field(3, help="scales of a new network's U-Net")
    grad_clip: float = field(1.0, help="clip the gradient norm to this")
    max_minutes: float | None = field(None, help="stop training after this wall time")
    checkpoint_dir: str | None = field(None, help=CHECKPOINT_DIR_HELP, cli=False)
    checkpoint_every: int = field(50, help="steps between checkpoints")
    val_every: int = field(50, help="steps between validations")
    log_every: int = field(10, help="steps between log lines")
    resume: bool = field(True, help="resume from checkpoint_dir/latest if it holds this run")
    seed: int = field(0, help="seeds the initialisation, the sample order and the imager")
    precision: Precision = precision_field()
    device: str | None = field(None, help=DEVICE_HELP)
    name: str = field("fuxi-da", help="name of a new network")

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_integers(self, {
            "steps": 0, "batch_size": 1, "forecast_steps": 0, "width": 1, "scales": 1,
            "checkpoint_every": 1, "val_every": 1, "log_every": 1, "seed": 0,
        })  # fmt: skip
        check_seed(self.seed, f"{owner}.seed")  # it seeds torch's generator: 32 bits
        for label in ("leads", "sensor_channels", "frames", "satellites"):
            v = getattr(self, label)
            if not isinstance(v, tuple):
                object.__setattr__(self, label, tuple(v))
        if not self.leads or any(not is_integer(v) or v < 1 for v in self.leads):
            raise ValueError(
                f"{owner}.leads must be positive integers (6-hour steps); got {self.leads!r}"
            )
        unknown = [c for c in self.sensor_channels if c not in IMAGER_CHANNEL_NAMES]
        if unknown or not self.sensor_channels:
            raise ValueError(
                f"{owner}.sensor_channels must name imager channels {list(IMAGER_CHANNEL_NAMES)}; "
                f"got {self.sensor_channels!r}"
            )
        if not self.frames or not self.satellites:
            raise ValueError(f"{owner}.frames and {owner}.satellites must not be empty")
        for label in ("lr", "grad_clip"):
            check_number(self, label, above=True)
        check_number(self, "max_minutes", above=True, finite=False, optional=True)
        check_precision(owner, self.precision)
        if not (0.0 <= float(self.channel_dropout) < 1.0):
            raise ValueError(
                f"{owner}.channel_dropout must be in [0, 1); got {self.channel_dropout!r}"
            )
        check_number(self, "activity_weight", above=False)
        check_number(self, "forecast_weight", above=False)
        if not (0.0 <= float(self.cycled_fraction) <= 1.0):
            raise ValueError(
                f"{owner}.cycled_fraction must be in [0, 1]; got {self.cycled_fraction!r}"
            )
        if self.loss_scale not in ("std", "diff_std"):
            raise ValueError(
                f"{owner}.loss_scale must be 'std' or 'diff_std'; got {self.loss_scale!r}"
            )
        check_number(self, "screen_threshold", above=True, optional=True)
        if self.screen_threshold is not None and not (
            self.departure_input and "ir10.8" in self.sensor_channels
        ):
            raise ValueError(f"{owner}.screen_threshold needs departure_input and ir10.8")
        if self.gradient_input and not (self.departure_input and self.zenith_input):
            raise ValueError(f"{owner}.gradient_input needs departure_input and zenith_input")
        if self.departure_context and not self.departure_input:
            raise ValueError(f"{owner}.departure_context needs departure_input")
        if self.linear_update and not (self.observations and self.zenith_input):
            raise ValueError(f"{owner}.linear_update needs observations and zenith_input")
        check_run_place(self)
