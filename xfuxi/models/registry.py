"""The shipped-model registry and model-name resolution: one place that turns a name into a model.

:func:`load_model` accepts a shipped name (a single model or a cascade) or a checkpoint
directory; :func:`resolve_model` is what every function that takes ``model=`` calls; the
registry (``xfuxi/_data/models/registry.json``) records the sha256 of every shipped file
(names become verified directories in :func:`xfuxi.models.checkpoint.resolve_directory`,
for forecast models and perturbation modules alike).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, overload

import torch

from ..config import is_integer
from ..files import atomic_write_bytes, sha256_of
from . import checkpoint as _store
from .base import ForecastModel
from .cascade import Cascade, reject_cascade
from .checkpoint import (
    CONFIG,
    MANIFEST,
    MODEL_FORMAT,
    REGISTRY,
    WEIGHTS,
    CheckpointError,
    entry_kind,
    fill_doc,
    json_bytes,
    json_from_bytes,
    load_checkpoint,
    read_checkpoint,
    read_registry,
    shipped_names,
    write_checkpoint,
)
from .ens import PERTURBATION_FORMAT, PERTURBATION_WEIGHTS
from .fuxi_da import DA_FORMAT, DA_KIND

__all__ = [
    "load_model",
    "pretrained_models",
    "register_cascade",
    "register_pretrained",
    "resolve_model",
    "shipped_names",
]


#: what :func:`pretrained_models` lists for each ``kind``: the registry's kinds of checkpoint
_LISTED = {
    "forecast": ("forecast-model", "cascade"),
    "perturbation": ("perturbation",),
    "assimilation": ("da-model",),
}


def pretrained_models(kind: str = "forecast") -> list[str]:
    """Names of the models shipped with xfuxi.

    Parameters
    ----------
    kind : {"forecast", "perturbation", "assimilation", "all"}, default "forecast"
        Forecast models (single models and cascades; they load with :func:`load_model`),
        FuXi-ENS perturbation modules (:func:`xfuxi.load_perturbation`), FuXi-DA networks
        (:func:`xfuxi.load_da_model`), or all of them.

    Returns
    -------
    list of str
        The names, sorted.

    Raises
    ------
    ValueError
        An unknown ``kind``.

    Examples
    --------
    >>> "fuxi-hs-t21" in pretrained_models()
    True
    >>> pretrained_models("perturbation")
    ['fuxi-ens-hs-t21']
    >>> "fuxi-da-hs-t21" in pretrained_models("assimilation")
    True
    """
    if kind != "all" and kind not in _LISTED:
        raise ValueError(f"kind must be one of {[*_LISTED, 'all']}; got {kind!r}")
    kinds = [k for group in (_LISTED.values() if kind == "all" else [_LISTED[kind]]) for k in group]
    return sorted(name for k in kinds for name in shipped_names(k))


def _write_registry(registry: dict[str, Any]) -> None:
    text = json.dumps(registry, indent=2) + "\n"
    atomic_write_bytes(_store.PRETRAINED_DIR / REGISTRY, text.encode())


def register_pretrained(
    name: str,
    *,
    source: str | os.PathLike[str] | None = None,
    description: str = "",
    kind: str = "forecast-model",
) -> dict[str, Any]:
    """Record the sha256 of the shipped checkpoint ``xfuxi/_data/models/<name>/`` in the registry.

    Used after (re)training a shipped model; the checkpoint and the registry are written
    atomically.

    Parameters
    ----------
    name : str
        Directory name under ``xfuxi/_data/models``.
    source : path-like, optional
        A checkpoint directory of ``kind`` (verified) copied there first, with the config's
        ``name`` set to ``name`` (the weights are copied byte for byte); it replaces an
        earlier shipped checkpoint.
    description : str
        One line describing the model.
    kind : {"forecast-model", "perturbation", "da-model"}
        What the directory holds.

    Returns
    -------
    dict
        The registry entry.

    Raises
    ------
    CheckpointError
        The directory (or ``source``) is not a complete, verified checkpoint.
    """
    formats = {
        "forecast-model": (MODEL_FORMAT, WEIGHTS),
        "perturbation": (PERTURBATION_FORMAT, PERTURBATION_WEIGHTS),
        DA_KIND: (DA_FORMAT, WEIGHTS),
    }
    if kind not in formats:
        raise ValueError(f"kind must be one of {sorted(formats)}; got {kind!r}")
    fmt, weights = formats[kind]
    _check_entry_name(name)
    if entry_kind(read_registry().get(name, {})) == "cascade":
        raise ValueError(f"{name!r} is a shipped cascade; a checkpoint cannot replace it")
    d = _store.PRETRAINED_DIR / name
    if source is not None:
        src = Path(source)
        found = read_checkpoint(src, require=(CONFIG, weights))
        files = {CONFIG: found[CONFIG], weights: found[weights]}  # not a trainer's state
        config = json_from_bytes(files[CONFIG], src / CONFIG)
        if not isinstance(config, dict) or config.get("format") != fmt:
            raise CheckpointError(f"{src} is not a {kind} checkpoint")
        config["name"] = name
        files[CONFIG] = json_bytes(config)  # the weights are copied byte for byte
        write_checkpoint(d, files, kind=kind, overwrite=True)
    files = read_checkpoint(d)  # complete and matching its manifest
    registry = read_registry()
    entry = {
        "directory": name,
        "description": description or registry.get(name, {}).get("description", ""),
        "sha256": {f: sha256_of(d / f) for f in sorted([*files, MANIFEST])},
    }
    if kind != "forecast-model":
        entry = {"kind": kind, **entry}
    registry[name] = entry
    _write_registry(registry)
    return entry


def _check_entry_name(name: str) -> None:
    """A shipped name is one plain folder name under the models folder (an absolute path or
    ``../x`` wrote outside it, over whatever was there)."""
    if (
        not isinstance(name, str)
        or not name
        or Path(name).name != name
        or name.startswith(".")
        or "/" in name
        or "\\" in name
    ):
        raise ValueError(
            f"a shipped model's name must be a plain folder name (no path, not hidden); "
            f"got {name!r}"
        )


def register_cascade(
    name: str, stages: list[str], switch_steps: list[int], *, description: str = ""
) -> dict[str, Any]:
    """Record a shipped cascade (FuXi's Short → Medium → … stages) in the registry.

    ``stages`` are names of shipped models (each checked by its own sha256 when loaded);
    ``switch_steps`` as for :class:`~xfuxi.models.cascade.Cascade`. The registry is written
    atomically. ``load_model(name)`` then returns the :class:`Cascade`.

    Raises
    ------
    ValueError
        ``name`` is not a plain folder name or is already the name of a shipped entry of
        another kind (a single model, a perturbation or a DA module, which a cascade would
        hide from :func:`load_model`); a stage is not a shipped single model; fewer than 2
        stages; ``switch_steps`` are not one integer >= 1 per stage after the first, in
        strictly increasing order. Nothing is written then.
    """
    _check_entry_name(name)
    registry = read_registry()
    if name in registry and entry_kind(registry[name]) != "cascade":
        # (register_pretrained refuses the reverse) the entry replaced was lost: its
        # checkpoint stayed on disk, but load_model(name) then read a cascade
        raise ValueError(
            f"{name!r} is a shipped {entry_kind(registry[name])}; a cascade cannot replace "
            "it (choose another name)"
        )
    if isinstance(stages, (str, bytes)) or not hasattr(stages, "__iter__"):
        raise ValueError(f"stages must be a list of shipped model names; got {stages!r}")
    stages = list(stages)
    if len(stages) < 2:
        raise ValueError(f"a cascade needs at least 2 stages; got {stages}")
    for stage in stages:
        if (
            not isinstance(stage, str)
            or stage not in registry
            or entry_kind(registry[stage]) != "forecast-model"
        ):
            raise ValueError(f"cascade stage {stage!r} is not a shipped single model")
    # checked as Cascade() checks them, before the registry is written: [0], [5, 3] were
    # recorded and the name then failed to load; [2.7] was recorded as 2
    if not hasattr(switch_steps, "__iter__") or isinstance(switch_steps, (str, bytes)):
        raise ValueError(f"switch_steps must be a list of integers; got {switch_steps!r}")
    switch = list(switch_steps)
    if len(switch) != len(stages) - 1:
        raise ValueError(
            f"{len(stages)} stages need {len(stages) - 1} switch step(s); got {switch}"
        )
    if not all(is_integer(s) and s >= 1 for s in switch):
        raise ValueError(f"switch_steps must be integers >= 1; got {switch}")
    if any(b <= a for a, b in zip(switch, switch[1:])):
        raise ValueError(f"switch_steps must increase strictly; got {switch}")
    entry = {
        "cascade": {"stages": stages, "switch_steps": [int(s) for s in switch]},
        "description": description or registry.get(name, {}).get("description", ""),
    }
    registry[name] = entry
    _write_registry(registry)
    return entry


# For type checkers: the name tells the type. The shipped cascade's name gives a Cascade;
# any other name or a directory a ForecastModel (save_model writes single models only; a
# cascade registered under another name with register_cascade is a Cascade at run time,
# which the checkers cannot see: typing.cast(Cascade, load_model(name)) says so).
@overload
def load_model(  # type: ignore[overload-overlap]
    name_or_path: Literal["fuxi-hs-t21-cascade"],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> Cascade: ...
@overload
def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> ForecastModel: ...
@fill_doc
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
        the registry) or a directory written by :func:`save_model`. A shipped name given as
        a string loads the shipped model even where a directory of that name exists in the
        working directory (with a ``UserWarning``): give such a directory as a path
        (``pathlib.Path("fuxi-hs-t21")`` or ``"./fuxi-hs-t21"``).
    {{device_dtype}}

    Returns
    -------
    ForecastModel or Cascade
        {{loaded_config}}
        A shipped cascade's name
        (``"fuxi-hs-t21-cascade"``, see :func:`register_cascade`) gives a
        :class:`~xfuxi.models.cascade.Cascade` of its stages, each loaded and checked.

    Raises
    ------
    FileNotFoundError
        Neither a shipped name nor a checkpoint directory.
    xfuxi.models.checkpoint.ChecksumError
        A file does not match the sha256 recorded for it (in the registry for a shipped
        name, in the checkpoint's ``manifest.json`` for every checkpoint).
    xfuxi.models.checkpoint.CheckpointError
        A ValueError: no manifest, a missing, truncated or corrupt file, invalid JSON, not a
        forecast-model checkpoint, or weights that do not fit the config (the path is
        named).

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
    entry = read_registry().get(name_or_path) if isinstance(name_or_path, str) else None
    if entry is not None and entry_kind(entry) == "cascade":
        spec = entry["cascade"]
        stages = [load_checkpoint(s, device=device, dtype=dtype) for s in spec["stages"]]
        return Cascade(stages, spec["switch_steps"], name=name_or_path)
    return load_checkpoint(name_or_path, device=device, dtype=dtype)


def resolve_model(model: Any, *, allow_cascade: bool = False) -> Any:
    """A ForecastModel (or, where allowed, a Cascade), or a name / directory to load.

    The one place where a ``model=`` argument is turned into a model object.
    """

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
