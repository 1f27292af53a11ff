"""The numerical precision of a training run or an analysis: float32, or bfloat16 mixed precision.

FuXi-DA analyses (:func:`~xfuxi.assimilation.da.assimilate_da`, ``precision=``) run the
network under :func:`autocast` too. Every trainer (:func:`~xfuxi.training.forecast.train_forecast`,
:func:`~xfuxi.training.ens.train_perturbation`, :func:`~xfuxi.training.da.train_da`) takes a
``precision`` setting in its configuration:

* ``"float32"`` (the default): everything in float32, as before the setting existed;
* ``"bfloat16"``: mixed precision. The parameters, their gradients and the optimizer state
  stay float32 (so do the saved checkpoints); the forward pass and the loss run under
  :func:`torch.autocast` with ``dtype=torch.bfloat16``, which runs the matrix products and
  convolutions in bfloat16; on CUDA it keeps the normalizations and reductions in float32,
  on the CPU the norms and element-wise operations on bfloat16 activations stay bfloat16
  (the residual stream is summed in bfloat16 there). bfloat16 has float32's exponent range,
  so no loss scaling is needed. It works on CUDA (Ampere or newer) and on the CPU.

``"float16"`` is refused: its narrow range needs loss scaling (a ``GradScaler``), which the
trainers do not do. See the documentation (docs/scaling.md).

This module imports torch only when :func:`autocast` is called, so that the configurations
(and the command line's flags) can use :func:`check_precision` without torch.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from ..config import field

__all__ = ["PRECISIONS", "Precision", "autocast", "check_precision", "precision_field"]

#: the precisions of the trainers (the first is the default)
PRECISIONS = ("float32", "bfloat16")

#: the type of a configuration's ``precision`` field
Precision = Literal["float32", "bfloat16"]


def precision_field() -> Any:
    """The ``precision`` field of a trainer's configuration (default ``"float32"``).

    Examples
    --------
    >>> import dataclasses
    >>> from xfuxi.config import Config
    >>> @dataclasses.dataclass(frozen=True)
    ... class Run(Config):
    ...     precision: Precision = precision_field()
    >>> Run().precision
    'float32'
    """
    return field(
        PRECISIONS[0],
        help="float32, or bfloat16 mixed precision (autocast forward and loss; float32 "
        "weights and optimizer state)",
    )


def check_precision(owner: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``owner.precision`` unless ``value`` is in :data:`PRECISIONS`.

    ``owner`` is the configuration class's name (``""``: the message names ``precision``).

    Examples
    --------
    >>> check_precision("TrainConfig", "bfloat16")
    >>> check_precision("TrainConfig", "float64")
    Traceback (most recent call last):
    ...
    ValueError: TrainConfig.precision must be one of ('float32', 'bfloat16'); got 'float64'
    """
    label = f"{owner}.precision" if owner else "precision"
    if value == "float16":
        raise ValueError(
            f"{label} 'float16' is not supported: float16 training needs loss "
            "scaling, which xfuxi's trainers do not do; use 'bfloat16' (same exponent range "
            "as float32, no scaling needed) or 'float32'"
        )
    if not isinstance(value, str) or value not in PRECISIONS:
        raise ValueError(f"{label} must be one of {PRECISIONS}; got {value!r}")


def autocast(device: Any, precision: str) -> contextlib.AbstractContextManager:
    """The context in which a trainer runs its forward pass and loss.

    Parameters
    ----------
    device : str or torch.device
        Where the model runs (its type picks the autocast backend: ``"cpu"``, ``"cuda"``, ...).
    precision : {"float32", "bfloat16"}
        ``"float32"``: a context that changes nothing. ``"bfloat16"``:
        ``torch.autocast(device_type, dtype=torch.bfloat16)``.

    Returns
    -------
    context manager

    Raises
    ------
    ValueError
        An unknown precision, or bfloat16 on a CUDA device that does not support it.

    Examples
    --------
    >>> import torch
    >>> lin = torch.nn.Linear(4, 2)
    >>> with autocast("cpu", "bfloat16"):
    ...     lin(torch.ones(1, 4)).dtype
    torch.bfloat16
    >>> with autocast("cpu", "float32"):
    ...     lin(torch.ones(1, 4)).dtype
    torch.float32
    """
    check_precision("", precision)
    if precision == "float32":
        return contextlib.nullcontext()
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(
            f"precision 'bfloat16' is not supported by the CUDA device {dev}; use 'float32'"
        )
    return torch.autocast(dev.type, dtype=torch.bfloat16)
