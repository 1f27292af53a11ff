"""Running a model forward: the pair shift, rollouts, and where a model lives (device, dtype).

A FuXi model maps an input pair ``(x(t - Δ), x(t))`` to ``x(t + Δ)``; :func:`advance_pair`
is the one place where the pair is shifted forward. :func:`rollout` runs several steps;
:func:`model_on` puts a model (or a cascade's stages) on a device and dtype without touching
the caller's object.
"""

from __future__ import annotations

import copy
import itertools
import logging
from typing import Any

import numpy as np
import torch

from ..options import get_options
from .base import ForecastModel, check_first_step
from .cascade import Cascade
from .checkpoint import as_dtype

__all__ = [
    "advance_pair",
    "copy_model",
    "model_device",
    "model_dtype",
    "model_on",
    "perturb_current",
    "rollout",
]

log = logging.getLogger(__name__)


def advance_pair(pair: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """Shift an input pair ``(B, 2, ...)`` forward by one step: ``(pair[:, 1], new)``.

    Examples
    --------
    >>> p = torch.zeros(1, 2, 3); advance_pair(p, torch.ones(1, 3))[0, :, 0].tolist()
    [0.0, 1.0]
    """
    return torch.stack([pair[:, 1], new], dim=1)


def perturb_current(pair: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Add ``delta`` to the current (second) state of an input pair ``(B, 2, ...)``.

    Examples
    --------
    >>> p = torch.zeros(1, 2, 3); perturb_current(p, torch.ones(1, 3))[0, :, 0].tolist()
    [0.0, 1.0]
    """
    return torch.stack([pair[:, 0], pair[:, 1] + delta], dim=1)


#: the buffers every ForecastModel has (its normalization statistics, float32 when built)
_STATS_BUFFERS = ("_mean", "_std", "_diff_std")


def model_dtype(model: torch.nn.Module, dtype: torch.dtype | None = None) -> torch.dtype:
    """``dtype`` if given, else the dtype of the model's first floating parameter or buffer.

    A model without floating parameters whose only floating tensors are its normalization
    statistics, still float32 as built (a wrapped module without parameters), has no dtype
    of its own: it runs in xfuxi's ``dtype`` option (float32 by default). Statistics cast
    by the user (``model.double()``) give their dtype.

    Examples
    --------
    >>> from xfuxi.models.base import wrap_model
    >>> m = wrap_model(torch.nn.Identity(), channels=[("x", None)], latitude=[0.0],
    ...                longitude=[0.0, 180.0])
    >>> model_dtype(m), model_dtype(m.double()), model_dtype(m, torch.float32)
    (torch.float32, torch.float64, torch.float32)
    """
    if dtype is not None:
        return dtype
    for t in model.parameters():
        if t.is_floating_point():
            return t.dtype
    buffers = [(n, t) for n, t in model.named_buffers() if t.is_floating_point()]
    only_stats = all(n.rpartition(".")[2] in _STATS_BUFFERS for n, _ in buffers)
    if buffers and not (only_stats and buffers[0][1].dtype == torch.float32):
        return buffers[0][1].dtype  # its buffers', or its statistics' cast (model.double())
    return as_dtype(get_options()["dtype"])


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device("cpu")


def rollout(model: Any, pair: np.ndarray, steps: int) -> np.ndarray:
    """Run ``model`` ``steps`` steps from an input pair ``(2, C, H, W)``; returns (steps, C, H, W).

    Examples
    --------
    >>> from xfuxi.models.lorenz96 import lorenz96_model
    >>> m = lorenz96_model(n_variables=8)
    >>> rollout(m, np.full((2, 1, 1, 8), 8.0), 3).shape
    (3, 1, 1, 8)
    """
    dtype = model_dtype(model, None)
    x = torch.as_tensor(np.asarray(pair), dtype=dtype, device=model_device(model))[None]
    out = []
    with torch.no_grad():
        for k in range(int(steps)):
            y = model(x)
            if k == 0:  # a broken network (NaN everywhere), not a forecast
                check_first_step(y, model.name, x)
            out.append(y[0].double().cpu().numpy())
            x = advance_pair(x, y)
    return np.stack(out)


def model_on(model: Any, device: Any, dtype: Any) -> Any:
    """The model on ``device`` / ``dtype``: itself if it is there already, else a copy.

    A Cascade gives a Cascade of its stages, each put there (switch steps and name kept).
    Where the model is: the device and dtype of its parameters, or of its buffers for a
    model without parameters (:func:`model_device`, :func:`model_dtype`); ``dtype=None``
    keeps that dtype (``xfuxi.get_options()["dtype"]`` for a model with no floating tensor,
    or whose only ones are its normalization statistics still float32 as built: a wrapped
    module without parameters).
    """
    if isinstance(model, Cascade):
        stages = [model_on(m, device, dtype) for m in model.stages]
        if all(a is b for a, b in zip(stages, model.stages)):
            return model
        return Cascade(stages, model.switch_steps, name=model.name)

    # the model's device and dtype are those of its parameters, or of its buffers when it
    # has none (Lorenz-96: only the statistics buffers): read from the parameters alone, a
    # float64 parameterless model counted as float32 and ran on float32-rounded inputs
    # (model_dtype: a model without floating tensors, or whose only ones are its statistics
    # as built, takes xfuxi's dtype option; cur_dtype is the dtype its tensors hold)
    cur_dtype = next(
        (
            t.dtype
            for t in itertools.chain(model.parameters(), model.buffers())
            if t.is_floating_point()
        ),
        torch.float32,
    )
    cur_dev = model_device(model)
    dev = cur_dev if device is None else torch.device(device)
    dt = as_dtype(dtype) if dtype is not None else model_dtype(model)
    same_dev = dev.type == cur_dev.type and (dev.index is None or dev.index == cur_dev.index)
    if same_dev and dt == cur_dtype:
        return model
    log.info("forecast: using a copy of model %r on %s (%s)", model.name, dev, dt)
    return copy_model(model).to(device=dev, dtype=dt)


def copy_model(model: ForecastModel) -> ForecastModel:
    """An independent copy of a ForecastModel: network, statistics, configuration and output
    filter (:func:`xfuxi.models.spectral.with_spectral_filter`) copied, its class (a
    subclass with its own ``forward``) and attributes kept.

    >>> from xfuxi.models.base import wrap_model
    >>> m = wrap_model(torch.nn.Identity(), channels=[("x", None)], latitude=[0.0],
    ...                longitude=[0.0, 180.0], residual=False)
    >>> c = copy_model(m)
    >>> c is not m and type(c) is type(m) and c.channels == m.channels
    True
    """
    # a new ForecastModel(...) dropped a subclass's forward (a dtype asked of forecast()
    # then changed the forecast itself) and any attribute set on the model
    return copy.deepcopy(model)
