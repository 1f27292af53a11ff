"""Training of xfuxi's models (``xfuxi train``, ``xfuxi train-ens``, ``xfuxi calibrate-ens*``).

One concern per module:

* :mod:`~xfuxi.training.config`: :class:`TrainConfig`, :class:`PerturbationTrainConfig`;
* :mod:`~xfuxi.training.losses`: the weighted L1, the adjusted MSE, the fair CRPS, the KL;
* :mod:`~xfuxi.training.samples`: the data as arrays and where regular runs start;
* :mod:`~xfuxi.training.anomalies`: the tracer-anomaly objective;
* :mod:`~xfuxi.training.forecast`: :func:`train_forecast` (the FuXi forecast model);
* :mod:`~xfuxi.training.ens`: :func:`train_perturbation` (the FuXi-ENS module);
* :mod:`~xfuxi.training.calibration`: a trained FuXi-ENS module's inflation (global, per
  variable), and :class:`~xfuxi.training.calibration.TuningRun`, the ensembles every tuning
  function runs;
* :mod:`~xfuxi.training.gains`: its per-channel gains held to a spread–skill band;
* :mod:`~xfuxi.training.loop`: the optimizer loop of the FuXi-ENS and FuXi-DA trainers.

The modules import torch, so this package imports them lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["PerturbationTrainConfig", "TrainConfig", "train_forecast", "train_perturbation"]

_LAZY = {
    "train_forecast": "forecast:train_forecast",
    "train_perturbation": "ens:train_perturbation",
    "TrainConfig": "config:TrainConfig",
    "PerturbationTrainConfig": "config:PerturbationTrainConfig",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'xfuxi.training' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(f".{module_name}", __name__), attr)
