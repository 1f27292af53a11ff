"""The shipped-model registry and model-name resolution: one place that turns a name into a model.

:func:`load_model` accepts a shipped name (a single model or a cascade) or a checkpoint
directory; :func:`resolve_model` is what every function that takes ``model=`` calls; the
registry (``xfuxi/_data/models/registry.json``) records the sha256 of every shipped file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as _store
from .base import ForecastModel
from .cascade import Cascade
from .checkpoint import (
    _CONFIG,
    _REGISTRY,
    _WEIGHTS,
    MODEL_FORMAT,
    _read_registry,
    _sha256,
    _write_atomic,
    load_checkpoint,
)

__all__ = [
    "load_model",
    "pretrained_models",
    "register_cascade",
    "register_pretrained",
    "resolve_model",
]


def pretrained_models() -> list[str]:
    """Names of the forecast models shipped with xfuxi.

    Examples
    --------
    >>> "fuxi-hs-t21" in pretrained_models()
    True
    """
    return sorted(_read_registry())


def register_pretrained(
    name: str,
    *,
    source: str | os.PathLike[str] | None = None,
    description: str = "",
) -> dict[str, Any]:
    """Record the sha256 of the shipped model ``xfuxi/_data/models/<name>/`` in the registry.

    Used after (re)training a shipped model; files and registry are written atomically.

    Parameters
    ----------
    name : str
        Directory name under ``xfuxi/_data/models``.
    source : path-like, optional
        A checkpoint directory whose ``model.safetensors`` and ``config.json`` are copied
        there first (the config's ``name`` is set to ``name``).
    description : str
        One line describing the model.

    Returns
    -------
    dict
        The registry entry.

    Raises
    ------
    FileNotFoundError
        The directory lacks ``model.safetensors`` or ``config.json``.
    """
    d = _store.PRETRAINED_DIR / name
    if source is not None:
        src = Path(source)
        d.mkdir(parents=True, exist_ok=True)
        config = json.loads((src / _CONFIG).read_text())
        if config.get("format") != MODEL_FORMAT:
            raise ValueError(f"{src} is not a forecast-model checkpoint")
        config["name"] = name
        _write_atomic(d / _WEIGHTS, (src / _WEIGHTS).read_bytes())
        _write_atomic(d / _CONFIG, json.dumps(config, indent=1).encode())
    for f in (_WEIGHTS, _CONFIG):
        if not (d / f).is_file():
            raise FileNotFoundError(f"{d / f} does not exist")
    registry = _read_registry()
    entry = {
        "directory": name,
        "description": description or registry.get(name, {}).get("description", ""),
        "sha256": {f: _sha256(d / f) for f in (_WEIGHTS, _CONFIG)},
    }
    registry[name] = entry
    text = json.dumps(registry, indent=2) + "\n"
    _write_atomic(_store.PRETRAINED_DIR / _REGISTRY, text.encode())
    return entry


def register_cascade(
    name: str, stages: list[str], switch_steps: list[int], *, description: str = ""
) -> dict[str, Any]:
    """Record a shipped cascade (FuXi's Short → Medium → … stages) in the registry.

    ``stages`` are names of shipped models (each checked by its own sha256 when loaded);
    ``switch_steps`` as for :class:`~xfuxi.models.cascade.Cascade`. The registry is written
    atomically. ``load_model(name)`` then returns the :class:`Cascade`.
    """
    registry = _read_registry()
    for stage in stages:
        if stage not in registry or "cascade" in registry[stage]:
            raise ValueError(f"cascade stage {stage!r} is not a shipped single model")
    if len(switch_steps) != len(stages) - 1:
        raise ValueError(f"{len(stages)} stages need {len(stages) - 1} switch step(s)")
    entry = {
        "cascade": {"stages": list(stages), "switch_steps": [int(s) for s in switch_steps]},
        "description": description or registry.get(name, {}).get("description", ""),
    }
    registry[name] = entry
    text = json.dumps(registry, indent=2) + "\n"
    _write_atomic(_store.PRETRAINED_DIR / _REGISTRY, text.encode())
    return entry


def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> ForecastModel | Cascade:
    """Load a forecast model by shipped name (``"fuxi-hs-t21"``) or checkpoint directory.

    Build it once and use it for many forecasts (like a regridder).

    Parameters
    ----------
    name_or_path : str or path-like
        A name from :func:`pretrained_models` (its files are checked against the sha256 in
        the registry) or a directory written by :func:`save_model`.
    device : str or torch.device, optional
        Default ``xfuxi.get_options()["device"]``.
    dtype : str or torch.dtype, optional
        Parameter dtype; default ``xfuxi.get_options()["dtype"]``.

    Returns
    -------
    ForecastModel or Cascade
        In eval mode; ``model.config`` holds the checkpoint config plus ``"sha256"`` of the
        weights file and ``"source"`` (the directory). A shipped cascade's name
        (``"fuxi-hs-t21-cascade"``, see :func:`register_cascade`) gives a
        :class:`~xfuxi.models.cascade.Cascade` of its stages, each loaded and checked.

    Raises
    ------
    FileNotFoundError
        Neither a shipped name nor a checkpoint directory.
    ChecksumError
        A shipped file does not match its registered sha256.
    ValueError
        Not a forecast-model checkpoint, or an inconsistent one (weights that do not fit the
        config).

    Notes
    -----
    Only JSON and safetensors are read: loading never unpickles or executes code.

    Examples
    --------
    >>> import xfuxi
    >>> m = xfuxi.load_model("fuxi-hs-t21")
    >>> m.name, m.grid_shape, m.training
    ('fuxi-hs-t21', (32, 64), False)
    """
    entry = _read_registry().get(name_or_path) if isinstance(name_or_path, str) else None
    if entry is not None and "cascade" in entry:
        spec = entry["cascade"]
        stages = [load_checkpoint(s, device=device, dtype=dtype) for s in spec["stages"]]
        return Cascade(stages, spec["switch_steps"], name=name_or_path)
    return load_checkpoint(name_or_path, device=device, dtype=dtype)


def resolve_model(model: Any, *, allow_cascade: bool = False) -> Any:
    """A ForecastModel (or, where allowed, a Cascade), or a name / directory to load.

    The one place where a ``model=`` argument is turned into a model object.
    """
    from .cascade import reject_cascade

    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if not allow_cascade:
        reject_cascade(model)
    if not isinstance(model, (ForecastModel, Cascade)):
        raise TypeError(
            f"model must be a ForecastModel (see xfuxi.load_model and xfuxi.wrap_model) or the "
            f"name / directory of a checkpoint; got {type(model).__name__}"
        )
    return model
