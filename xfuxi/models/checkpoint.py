"""Forecast-model checkpoints: safetensors weights + a JSON config, and the pretrained registry.

A checkpoint is a directory holding

* ``model.safetensors`` — the network's weights (tensors only; loading runs no code), and
* ``config.json`` — everything needed to rebuild the model: the format tag, the
  architecture and its construction arguments (preset included), the channel list as
  ``"variable@level"`` names, the grid (latitude and longitude values), the normalization
  statistics (mean, std, std of 6-hour differences), ``residual``, the time step and free
  metadata (training settings, scores).

Pretrained models ship inside the package under ``xfuxi/_data/models/<name>/``; the registry
``xfuxi/_data/models/registry.json`` records the sha256 of each file, checked every time a
model is loaded by name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.channels import channel_name, parse_channel_name
from ..options import get_options
from .base import ForecastModel, NormStats
from .fuxi import FuXiNet

__all__ = ["MODEL_FORMAT", "PRETRAINED_DIR", "ChecksumError", "load_checkpoint", "save_model"]

log = logging.getLogger(__name__)

#: format tag written into every forecast-model checkpoint's config.json
MODEL_FORMAT = "xfuxi-forecast-model/1"
#: where shipped models live
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "_data" / "models"
_REGISTRY = "registry.json"
_WEIGHTS = "model.safetensors"
_CONFIG = "config.json"

#: architecture name -> network class (constructed from config["net"] keyword arguments)
ARCHITECTURES: dict[str, type[torch.nn.Module]] = {"fuxi": FuXiNet}


class ChecksumError(ValueError):
    """A shipped model file does not match the sha256 recorded in the registry."""


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _as_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32"`` or ``torch.float32`` → ``torch.float32`` (floating dtypes only)."""
    out = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(out, torch.dtype) or not out.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype or its name; got {dtype!r}")
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _architecture_of(net: torch.nn.Module) -> str:
    for name, cls in ARCHITECTURES.items():
        if type(net) is cls:
            return name
    raise TypeError(
        f"cannot save a network of type {type(net).__name__}: checkpoints rebuild the network "
        f"from its config, which is known for {sorted(ARCHITECTURES)} only"
    )


def save_model(
    model: ForecastModel,
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Save a forecast model as ``model.safetensors`` + ``config.json`` (no pickle).

    Parameters
    ----------
    model : ForecastModel
        A model whose network is a :class:`~xfuxi.models.fuxi.FuXiNet`.
    path : path-like
        Directory (created if needed); both files are written atomically.
    metadata : dict, optional
        JSON-serialisable extra information (training settings, scores); merged over the
        model's own ``config["metadata"]``.

    Returns
    -------
    pathlib.Path
        The directory.

    Raises
    ------
    TypeError
        ``model`` is not a ForecastModel, or its network's architecture is unknown.

    Examples
    --------
    >>> import tempfile
    >>> from xfuxi.models.fuxi import build_fuxi
    >>> net = build_fuxi("tiny", in_channels=1, grid=(8, 16))
    >>> m = ForecastModel(net, channels=[("temperature", 850.0)],
    ...                   latitude=np.linspace(-78.75, 78.75, 8),
    ...                   longitude=np.arange(16) * 22.5, name="demo")
    >>> d = save_model(m, tempfile.mkdtemp())
    >>> sorted(p.name for p in d.iterdir())
    ['config.json', 'model.safetensors']
    """
    from safetensors.torch import save as st_save

    if not isinstance(model, ForecastModel):
        raise TypeError(f"expected a ForecastModel; got {type(model).__name__}")
    arch = _architecture_of(model.net)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(model.config.get("metadata", {}))
    meta.update(metadata or {})
    config = {
        "format": MODEL_FORMAT,
        "name": model.name,
        "architecture": arch,
        "preset": model.config.get("preset"),
        "net": dict(model.net.config),
        "channels": [channel_name(c) for c in model.channels],
        "latitude": model.latitude.tolist(),
        "longitude": model.longitude.tolist(),
        "stats": model.stats.to_dict(),
        "residual": model.residual,
        "timestep_hours": model.timestep_hours,
        "metadata": meta,
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.net.state_dict().items()}
    _write_atomic(out / _WEIGHTS, st_save(tensors))
    _write_atomic(out / _CONFIG, json.dumps(config, indent=1).encode())
    log.info("saved model %r to %s", model.name, out)
    return out


def _read_registry() -> dict[str, Any]:
    path = PRETRAINED_DIR / _REGISTRY
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def _resolve(name_or_path: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """Return (directory, sha256 of the weights if it is a registered name)."""
    registry = _read_registry()
    key = str(name_or_path)
    if isinstance(name_or_path, str) and key in registry:
        entry = registry[key]
        d = PRETRAINED_DIR / entry["directory"]
        for fname, expected in entry["sha256"].items():
            if not (d / fname).is_file():
                raise FileNotFoundError(f"shipped model {key!r} lacks {fname} in {d}")
            got = _sha256(d / fname)
            if got != expected:
                raise ChecksumError(
                    f"shipped model {key!r}: {fname} has sha256 {got[:16]}..., the registry "
                    f"records {expected[:16]}...; the file is corrupt or was modified"
                )
        return d, entry["sha256"][_WEIGHTS]
    d = Path(name_or_path).expanduser()
    if not (d / _CONFIG).is_file() or not (d / _WEIGHTS).is_file():
        raise FileNotFoundError(
            f"no model {key!r}: not a checkpoint directory (with {_CONFIG} and {_WEIGHTS}) and "
            f"not a shipped name (shipped: {sorted(registry)})"
        )
    return d, None


def load_checkpoint(
    name_or_path: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> ForecastModel:
    """Load one forecast model (not a cascade) by shipped name or checkpoint directory.

    :func:`xfuxi.load_model` is the public entry point; it also loads shipped cascades.

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
    from safetensors.torch import load_file

    entry = _read_registry().get(name_or_path) if isinstance(name_or_path, str) else None
    if entry is not None and "cascade" in entry:
        raise ValueError(
            f"{name_or_path!r} is a shipped cascade, not a single model; load it with "
            "xfuxi.load_model"
        )
    directory, sha = _resolve(name_or_path)
    config = json.loads((directory / _CONFIG).read_text())
    if config.get("format") != MODEL_FORMAT:
        raise ValueError(
            f"{directory} is not a forecast-model checkpoint (format {config.get('format')!r}, "
            f"expected {MODEL_FORMAT!r})"
        )
    arch = config.get("architecture")
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"{directory}: unknown architecture {arch!r}; known {sorted(ARCHITECTURES)}"
        )
    net_kwargs = dict(config["net"])
    in_channels = net_kwargs.pop("in_channels")
    grid = net_kwargs.pop("grid")
    channels = [parse_channel_name(c) for c in config["channels"]]
    if in_channels != len(channels) or list(grid) != [
        len(config["latitude"]),
        len(config["longitude"]),
    ]:
        raise ValueError(f"{directory}: network size does not match the channels or grid")
    net = ARCHITECTURES[arch](in_channels, grid, **net_kwargs)
    if sha is None:
        sha = _sha256(directory / _WEIGHTS)
    state = load_file(str(directory / _WEIGHTS))
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{directory}: weights do not fit the config: {err}") from None
    model = ForecastModel(
        net,
        channels=channels,
        latitude=np.asarray(config["latitude"]),
        longitude=np.asarray(config["longitude"]),
        stats=NormStats.from_dict(config["stats"]),
        residual=bool(config.get("residual", True)),
        timestep_hours=float(config.get("timestep_hours", 6.0)),
        name=config.get("name", directory.name),
        config={**config, "sha256": sha, "source": str(directory)},
    )
    opts = get_options()
    dev = torch.device(device if device is not None else opts["device"])
    dt = _as_dtype(dtype if dtype is not None else opts["dtype"])
    return model.to(device=dev, dtype=dt).eval()
