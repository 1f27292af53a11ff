"""The checkpoint store: every checkpoint xfuxi writes or reads, of every kind, goes through here.

A *checkpoint* is a directory of files (safetensors weights, JSON configs) and a
``manifest.json`` listing the sha256 of every one of them. It is written as one unit: all
files go into a temporary directory beside the target, the manifest is written last, and
the directory is renamed into place (:func:`xfuxi.files.replace_directory`), so a reader sees
the previous checkpoint or the new one, never a mixture. It is read back only after every
file listed in the manifest is present and matches its sha256. See the data-safety policy
in the documentation (docs/safety.md).

Kinds written here and in :mod:`xfuxi.models.ens`:

* ``"forecast-model"`` — ``model.safetensors`` (the network's weights) and ``config.json``
  (the format tag, the architecture and its construction arguments, the channel list as
  ``"variable@level"`` names, the grid, the normalization statistics, ``residual``, the time
  step and free metadata such as training settings and scores);
* ``"perturbation"`` — a FuXi-ENS perturbation module (``weights.safetensors`` and
  ``config.json``);
* ``"forecast-training"`` and ``"perturbation-training"`` — a model's files plus the
  trainer's state, written and read by :mod:`xfuxi.models.training_state`.

Pretrained models ship inside the package under ``xfuxi/_data/models/<name>/``; the
registry (:mod:`xfuxi.models.registry`) resolves names to those directories.
Only JSON and safetensors are read: loading never unpickles or executes code.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.channels import channel_name, parse_channel_name
from ..docstrings import docstring_parts
from ..files import (
    MARKER,
    atomic_write_json,
    read_marker,
    replace_directory,
    sha256_of,
)
from ..options import get_options
from .base import ForecastModel, NormStats, isolated_rng
from .fuxi import FuXiNet

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "MODEL_FORMAT",
    "PRETRAINED_DIR",
    "CheckpointError",
    "ChecksumError",
    "DOC_PARTS",
    "config_entries",
    "fill_doc",
    "json_bytes",
    "json_from_bytes",
    "json_of_format",
    "load_checkpoint",
    "load_weights",
    "model_files",
    "open_checkpoint",
    "read_checkpoint",
    "read_registry",
    "resolve_directory",
    "save_model",
    "safetensors_bytes",
    "seal_checkpoint",
    "shipped_names",
    "tensor_digest",
    "tensors_from_bytes",
    "write_checkpoint",
]

log = logging.getLogger(__name__)

#: format tag written into every forecast-model checkpoint's config.json
MODEL_FORMAT = "xfuxi-forecast-model/1"
#: the file, written last, that lists the sha256 of every file of a checkpoint
MANIFEST = "manifest.json"
#: format tag of the manifest
MANIFEST_FORMAT = "xfuxi-checkpoint/1"
#: where shipped models live
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "_data" / "models"

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
REGISTRY = "registry.json"

#: docstring parts shared by the store's readers and writers (:func:`fill_doc`)
DOC_PARTS = {
    "device_dtype": """\
device : str or torch.device, optional
    Default ``xfuxi.get_options()["device"]``.
dtype : str or torch.dtype, optional
    Parameter dtype; default ``xfuxi.get_options()["dtype"]``.""",
    "loaded_config": """\
In eval mode; ``model.config`` holds the checkpoint config plus ``"sha256"`` of the
weights file and ``"source"`` (the directory).""",
    "save_returns": """\
Returns
-------
pathlib.Path
    The directory.

Raises
------
xfuxi.files.OutputExistsError
    ``path`` exists and may not be replaced.""",
}
#: fill the ``{{name}}`` lines of a docstring from :data:`DOC_PARTS`
fill_doc = docstring_parts(DOC_PARTS)

#: architecture name -> network class (constructed from config["net"] keyword arguments)
ARCHITECTURES: dict[str, type[torch.nn.Module]] = {"fuxi": FuXiNet}


class CheckpointError(ValueError):
    """A checkpoint is incomplete, unreadable or not of the kind expected (the path is named).

    Examples
    --------
    >>> import tempfile, xfuxi
    >>> try:
    ...     xfuxi.load_model(tempfile.mkdtemp())  # an empty directory
    ... except CheckpointError as err:
    ...     print("has no manifest.json" in str(err))
    True
    """


class ChecksumError(CheckpointError):
    """A checkpoint file does not match the sha256 recorded for it.

    Examples
    --------
    A tiny model saved, then one byte of its weights changed:

    >>> import tempfile, numpy as np, xfuxi
    >>> from xfuxi.models.fuxi import build_fuxi
    >>> model = xfuxi.ForecastModel(build_fuxi("tiny", in_channels=1, grid=(8, 16)),
    ...                             channels=[("temperature", 850.0)],
    ...                             latitude=np.linspace(-78.75, 78.75, 8),
    ...                             longitude=np.arange(16) * 22.5)
    >>> weights = save_model(model, tempfile.mkdtemp()) / "model.safetensors"
    >>> data = bytearray(weights.read_bytes())
    >>> data[-1] ^= 1
    >>> _ = weights.write_bytes(bytes(data))
    >>> try:
    ...     xfuxi.load_model(weights.parent)
    ... except ChecksumError as err:
    ...     print("model.safetensors has sha256" in str(err), isinstance(err, CheckpointError))
    True True
    """


# -----------------------------------------------------------------------------------------------
# the store: write a directory as one unit, read it back verified
# -----------------------------------------------------------------------------------------------


@fill_doc
def write_checkpoint(
    path: str | os.PathLike[str],
    files: Mapping[str, bytes],
    *,
    kind: str,
    overwrite: bool = False,
) -> Path:
    """Write a checkpoint directory atomically, with its manifest written last.

    Parameters
    ----------
    path : path-like
        The checkpoint directory. An existing one is replaced only if it is empty, or an
        xfuxi checkpoint of the same ``kind`` and ``overwrite`` is true.
    files : mapping of str to bytes
        File name → content (plain names, no directories).
    kind : str
        What the checkpoint holds (``"forecast-model"``, ``"perturbation"``,
        ``"forecast-training"``, ...), recorded in the manifest and the xfuxi marker.
    overwrite : bool, default False
        Replace an earlier xfuxi checkpoint of the same kind.

    {{save_returns}}
    ValueError
        A file name is not a plain name, or is reserved.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "ck"
    >>> _ = write_checkpoint(d, {"a.json": b"{}"}, kind="demo")
    >>> sorted(read_checkpoint(d))
    ['a.json']
    """
    for name in files:
        if not _plain_name(name):
            raise ValueError(f"checkpoint file names must be plain names; got {name!r}")
        if name in (MANIFEST, MARKER):
            raise ValueError(f"{name!r} is reserved for the checkpoint's manifest")

    def write(tmp: Path) -> None:
        digests = {}
        for name, data in files.items():
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            digests[name] = sha256_of(tmp / name)  # what is on disk, not what was meant
        manifest = {"format": MANIFEST_FORMAT, "kind": kind, "files": digests}
        atomic_write_json(tmp / MANIFEST, manifest)

    out = replace_directory(path, write, kind=kind, overwrite=overwrite)
    log.debug("wrote %s checkpoint %s", kind, out)
    return out


def _plain_name(name: Any) -> bool:
    """A file name :func:`write_checkpoint` writes: no directory part, not hidden, not empty."""
    return (
        isinstance(name, str)
        and bool(name)
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and Path(name).name == name
        and not name.startswith(".")
    )


def _manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    if not file.is_file():
        if not path.is_dir():
            raise FileNotFoundError(f"no checkpoint directory {path}")
        raise CheckpointError(
            f"{path} has no {MANIFEST}: the checkpoint is incomplete (its writer was "
            "interrupted) or was written by an earlier xfuxi that did not record the "
            "sha256 of its files, so it cannot be verified. If you trust its files, add the "
            "manifest with xfuxi.models.checkpoint.seal_checkpoint(path, kind=...)"
        )
    manifest = json_from_bytes(file.read_bytes(), file)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != MANIFEST_FORMAT
        or not isinstance(files, dict)
        or not all(isinstance(v, str) for v in files.values())
    ):
        raise CheckpointError(
            f"{file} is not an xfuxi checkpoint manifest (format "
            f"{manifest.get('format') if isinstance(manifest, dict) else None!r}, expected "
            f"{MANIFEST_FORMAT!r} with a 'files' table)"
        )
    for name in files:  # never a path outside the checkpoint ("../x", "/etc/x")
        if not _plain_name(name) or name in (MANIFEST, MARKER):
            raise CheckpointError(
                f"{file} lists {name!r}, which is not a plain file name of the checkpoint; "
                "a checkpoint's files lie in its directory (the file was not read)"
            )
    return manifest


def read_checkpoint(
    path: str | os.PathLike[str], *, require: Iterable[str] = ()
) -> dict[str, bytes]:
    """Read every file of a checkpoint after checking it against the manifest.

    Parameters
    ----------
    path : path-like
        A directory written by :func:`write_checkpoint`.
    require : iterable of str
        File names the checkpoint must hold (else :class:`CheckpointError`, naming the kind
        the manifest records).

    Returns
    -------
    dict of str to bytes
        Every file listed in the manifest, with the content that was verified (what the
        caller parses is exactly what was checked).

    Raises
    ------
    FileNotFoundError
        ``path`` is not a directory.
    CheckpointError
        No manifest, an unreadable one, a listed file missing, or a required file absent.
    ChecksumError
        A file does not match its recorded sha256 (truncated, corrupt or modified).
    """
    path = Path(path)
    manifest = _manifest(path)
    out = {}
    root = path.resolve()
    for name, expected in manifest["files"].items():
        file = path / name
        if file.is_symlink() or (file.exists() and file.resolve().parent != root):
            raise CheckpointError(
                f"checkpoint {path}: {name}, which its {MANIFEST} lists, is a link or lies "
                "outside the checkpoint directory; it was not read"
            )
        if not file.is_file():
            raise CheckpointError(
                f"checkpoint {path} lacks {name}, which its {MANIFEST} lists; the checkpoint "
                "is incomplete"
            )
        data = file.read_bytes()
        got = _sha256_bytes(data)
        if got != expected:
            raise ChecksumError(
                f"{file} has sha256 {got[:16]}..., the checkpoint's {MANIFEST} records "
                f"{expected[:16]}...; the file is truncated, corrupt or was modified"
            )
        out[name] = data
    missing = [n for n in require if n not in out]
    if missing:
        raise CheckpointError(
            f"{path} holds a {manifest.get('kind')!r} checkpoint without {missing}; it is not "
            "a checkpoint of the kind expected here"
        )
    return out


def seal_checkpoint(path: str | os.PathLike[str], *, kind: str) -> dict[str, Any]:
    """Add a manifest (and xfuxi's marker) to a checkpoint written without one.

    For checkpoints from xfuxi versions that did not record the sha256 of their files (the
    shipped ones were converted this way, by ``scripts/convert_checkpoints.py``). The files
    are not changed; their present content becomes the reference, so seal only files you
    trust.

    Parameters
    ----------
    path : path-like
        The checkpoint directory.
    kind : str
        ``"forecast-model"`` or ``"perturbation"``.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    CheckpointError
        The directory already has a manifest, or holds no files.
    """
    path = Path(path)
    if (path / MANIFEST).exists():
        raise CheckpointError(f"{path} already has a {MANIFEST}")
    names = sorted(p.name for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not names:
        raise CheckpointError(f"{path} holds no checkpoint files")
    manifest = {
        "format": MANIFEST_FORMAT,
        "kind": kind,
        "files": {n: sha256_of(path / n) for n in names},
    }
    atomic_write_json(path / MANIFEST, manifest)
    if read_marker(path) is None:
        atomic_write_json(path / MARKER, {"kind": kind})
    return manifest


def json_from_bytes(data: bytes, path: str | os.PathLike[str]) -> Any:
    """Parse a checkpoint's JSON file; a clear error naming ``path`` if it is not JSON."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None


def json_of_format(
    data: bytes, path: str | os.PathLike[str], *, fmt: str, what: str, where: Any = None
) -> dict[str, Any]:
    """Parse a checkpoint's JSON file that must be a dict tagged ``{"format": fmt}``.

    ``what`` names the expected content in the error (``"a perturbation checkpoint"``),
    ``where`` the place named there (default ``path``).
    """
    obj = json_from_bytes(data, path)
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        got = obj.get("format") if isinstance(obj, dict) else None
        raise CheckpointError(
            f"{path if where is None else where} is not {what} (format {got!r}, expected {fmt!r})"
        )
    return obj


#: the entries of a forecast-model config.json that this xfuxi reads
MODEL_ENTRIES = frozenset({
    "format", "name", "architecture", "preset", "net", "channels", "latitude", "longitude",
    "stats", "residual", "timestep_hours", "metadata", "input_times", "output_filter",
})  # fmt: skip


def check_degrees(**entries: Any) -> None:
    """Each of ``entries`` (a config's ``latitude``, ``longitude``) must be a JSON list of
    numbers, else ValueError naming the entry (``null`` would fail in ``len()``, and strings
    such as ``"1.5"`` would be converted silently).

    Examples
    --------
    >>> check_degrees(latitude=[-45.0, 45], longitude=[0.0, 90.0])
    >>> check_degrees(latitude=["-45.0", "45.0"])
    Traceback (most recent call last):
    ...
    ValueError: entry 'latitude' must be a list of numbers (degrees); got '-45.0' in it
    """
    for key, value in entries.items():
        if not isinstance(value, list):
            raise ValueError(f"entry {key!r} must be a list of degrees; got {value!r}")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(
                    f"entry {key!r} must be a list of numbers (degrees); got {v!r} in it"
                )


def warn_unknown_entries(
    config: Mapping[str, Any], known: Iterable[str], path: str | os.PathLike[str]
) -> None:
    """Warn (``UserWarning``, naming the entry and ``path``) of each entry of a checkpoint's
    config that is not in ``known``: it is not read (an option of a newer xfuxi, or a typo).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_unknown_entries({"name": "m", "scale": 2}, {"name"}, "ck/config.json")
    >>> print(caught[0].message)
    ck/config.json: unknown entry 'scale' is ignored (an option of a newer xfuxi, or a typo)
    """
    for key in sorted(set(config) - set(known), key=str):
        warnings.warn(
            f"{path}: unknown entry {key!r} is ignored (an option of a newer xfuxi, or a typo)",
            UserWarning,
            stacklevel=3,
        )


def tensors_from_bytes(data: bytes, path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Parse a checkpoint's safetensors file; a clear error naming ``path`` if it is corrupt."""
    from safetensors.torch import load

    try:
        return load(data)
    except Exception as err:  # safetensors raises its own SafetensorError and others
        raise CheckpointError(
            f"{path} is not a readable safetensors file (truncated or corrupt: {err})"
        ) from None


def _sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def safetensors_bytes(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """The safetensors serialisation of ``tensors`` (detached, on CPU, contiguous)."""
    from safetensors.torch import save

    return save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})


def json_bytes(obj: Any) -> bytes:
    """``obj`` as indented JSON (with a final newline), encoded."""
    return (json.dumps(obj, indent=1) + "\n").encode()


@contextmanager
def config_entries(
    path: str | os.PathLike[str], errors: tuple[type[Exception], ...] = (ValueError,)
) -> Iterator[None]:
    """Rebuild an object from a checkpoint's config: its failures become CheckpointErrors.

    A missing entry (``KeyError``) and an exception of ``errors`` raised inside the block
    are raised again as a :class:`CheckpointError` naming ``path`` (the config file).

    Examples
    --------
    >>> try:
    ...     with config_entries("ck/config.json"):
    ...         {}["net"]
    ... except CheckpointError as err:
    ...     print(err)
    ck/config.json lacks the entry 'net'
    """
    try:
        yield
    except CheckpointError:  # already names its file
        raise
    except KeyError as err:
        raise CheckpointError(f"{path} lacks the entry {err}") from None
    except errors as err:
        raise CheckpointError(f"{path}: {err}") from None


def load_weights(
    module: torch.nn.Module, files: Mapping[str, bytes], directory: Path, name: str
) -> None:
    """Load the safetensors file ``name`` of a checkpoint's verified ``files`` into ``module``.

    Raises
    ------
    CheckpointError
        The file is not readable safetensors, or its tensors do not fit ``module`` (the
        config and the weights disagree); ``directory`` is named.
    """
    state = tensors_from_bytes(files[name], directory / name)
    check_finite(state, directory / name)
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{directory}: weights do not fit the config: {err}") from None


def check_finite(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Refuse weights holding NaN or infinity (:class:`CheckpointError` naming ``path`` and
    the first such tensor): a model loaded from them would forecast NaN.

    Examples
    --------
    >>> check_finite({"w": torch.ones(2)}, "m.safetensors")
    >>> try:
    ...     check_finite({"w": torch.tensor([1.0, float("nan")])}, "m.safetensors")
    ... except CheckpointError as err:
    ...     print(err)
    m.safetensors: tensor 'w' holds NaN or infinite values; the weights are corrupt
    """
    for key, tensor in tensors.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(
            torch.isfinite(tensor).all()
        ):
            raise CheckpointError(
                f"{path}: tensor {key!r} holds NaN or infinite values; the weights are corrupt"
            )


def weight_shapes(data: bytes, path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape of a safetensors file, from its header only (nothing allocated).

    Raises
    ------
    CheckpointError
        Not a readable safetensors header (``path`` is named).
    """
    bad = CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt)")
    if len(data) < 8:
        raise bad
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise bad
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
        return {
            str(k): tuple(int(d) for d in v["shape"])
            for k, v in header.items()
            if k != "__metadata__"
        }
    except (UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError):
        raise bad from None


def build_for_weights(
    build: Callable[[], torch.nn.Module],
    data: bytes,
    path: str | os.PathLike[str],
    *,
    what: str = "the network",
    config: str | os.PathLike[str] | None = None,
) -> torch.nn.Module:
    """Build a network from a checkpoint's config only if it fits the checkpoint's weights.

    ``build`` is called first on the ``"meta"`` device (no memory allocated), the shapes of
    its state are compared with the safetensors header of ``data`` (the weights file at
    ``path``), and only then is the network built for real. A config declaring sizes the
    weights do not have (``embed_dim: 4096``, ``depth: 10**6``) is so refused at once,
    without allocating or looping over them. Construction stops as soon as it has created
    far more parameters than the file holds tensors.

    Raises
    ------
    CheckpointError
        The network cannot be built from its config (a TypeError, ValueError, RuntimeError
        or MemoryError of its constructor), or its shapes are not the file's; ``path`` (or
        ``config``) is named.
    """
    from torch.nn.modules.module import register_module_parameter_registration_hook

    shapes = weight_shapes(data, path)
    count = [0]

    class _TooMany(Exception):
        pass

    builder = threading.get_ident()  # the hook is process-wide: count this thread's only

    def hook(module: torch.nn.Module, name: str, param: Any) -> None:
        if threading.get_ident() != builder:
            return
        count[0] += 1
        if count[0] > 4 * len(shapes) + 64:  # slack for parameters registered again
            raise _TooMany

    def built(device: str | None) -> torch.nn.Module:
        try:
            if device is None:
                return build()
            with torch.device(device):
                return build()
        except _TooMany:
            raise CheckpointError(
                f"{Path(path).parent}: weights do not fit the config: {what} of the config "
                f"has far more parameters than the {len(shapes)} tensors of {Path(path).name}"
            ) from None
        except (TypeError, ValueError, RuntimeError, MemoryError, OverflowError) as err:
            raise CheckpointError(
                f"{config if config is not None else path}: {what} cannot be built from the "
                f"checkpoint's config ({err})"
            ) from None

    handle = register_module_parameter_registration_hook(hook)
    try:
        meta = built("meta")
    finally:
        handle.remove()
    expected = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    directory, file = Path(path).parent, Path(path).name
    if missing or unexpected:
        raise CheckpointError(
            f"{directory}: weights do not fit the config: {what} has tensors that {file} "
            f"lacks {missing[:5]}, and {file} has tensors it lacks {unexpected[:5]}"
        )
    for key, shape in expected.items():
        if shapes[key] != shape:
            raise CheckpointError(
                f"{directory}: weights do not fit the config: tensor {key!r} has shape "
                f"{list(shapes[key])} in {file}, {list(shape)} in {what} of the config"
            )
    return built(None)


# -----------------------------------------------------------------------------------------------
# shipped checkpoints: names -> verified directories
# -----------------------------------------------------------------------------------------------


def read_registry() -> dict[str, Any]:
    """The registry of shipped checkpoints (``xfuxi/_data/models/registry.json``), or ``{}``.

    Each entry is a single model (``directory`` and the ``sha256`` of its files), a cascade
    (``cascade``: stage names and switch steps) or, with ``"kind": "perturbation"``, a
    FuXi-ENS perturbation module.
    """
    path = PRETRAINED_DIR / REGISTRY
    if not path.is_file():
        return {}
    registry = json_from_bytes(path.read_bytes(), path)
    if not isinstance(registry, dict):
        raise CheckpointError(f"{path} is not a registry (a JSON object of entries)")
    return registry


def entry_kind(entry: dict[str, Any]) -> str:
    """``"cascade"``, ``"perturbation"`` or ``"forecast-model"``: what a registry entry holds."""
    if "cascade" in entry:
        return "cascade"
    return str(entry.get("kind", "forecast-model"))


def resolve_directory(name_or_path: str | os.PathLike[str], *, kind: str) -> Path:
    """The checkpoint directory of a shipped name (its files checked) or of a path.

    The one place where a checkpoint name is turned into a directory, for every kind.

    Parameters
    ----------
    name_or_path : str or path-like
        A shipped name (a ``str`` key of the registry) or a checkpoint directory. A ``str``
        that is a shipped name means the shipped checkpoint, also where a directory of that
        name exists in the working directory (a ``UserWarning`` says so, once per name and
        directory); give such a directory as a ``pathlib.Path`` or as ``"./name"``.
    kind : {"forecast-model", "perturbation"}
        What the caller loads; a shipped name of another kind is a clear error.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        Neither a shipped name nor a directory (the shipped names of ``kind`` are listed).
    CheckpointError
        A shipped name of another kind.
    ChecksumError
        A shipped file does not match the sha256 in the registry.
    """
    registry = read_registry()
    key = str(name_or_path)
    if isinstance(name_or_path, str) and key in registry:
        entry = registry[key]
        got_kind = entry_kind(entry)
        if got_kind != kind:
            hint = {
                "cascade": "load it with xfuxi.load_model",
                "perturbation": "load it with xfuxi.load_perturbation",
                "forecast-model": "load it with xfuxi.load_model",
            }.get(got_kind, "")
            raise CheckpointError(f"{key!r} is a shipped {got_kind}, not a {kind}; {hint}")
        d = PRETRAINED_DIR / entry["directory"]
        _warn_shadowed(key, d)
        for fname, expected in entry["sha256"].items():
            if not (d / fname).is_file():
                raise FileNotFoundError(f"shipped {kind} {key!r} lacks {fname} in {d}")
            got = sha256_of(d / fname)
            if got != expected:
                raise ChecksumError(
                    f"shipped {kind} {key!r}: {d / fname} has sha256 {got[:16]}..., the "
                    f"registry records {expected[:16]}...; the file is corrupt or was modified"
                )
        return d
    d = Path(name_or_path).expanduser()
    if not d.is_dir():
        shipped = sorted(k for k, e in registry.items() if entry_kind(e) == kind)
        noun = {"forecast-model": "model", "perturbation": "perturbation module"}.get(kind, kind)
        # a shipped cascade is a model name too, for xfuxi.load_model and every --model flag
        cascades = sorted(k for k, e in registry.items() if entry_kind(e) == "cascade")
        more = f"; shipped cascades (xfuxi.load_model, --model): {cascades}" if (
            kind == "forecast-model" and cascades
        ) else ""  # fmt: skip
        raise FileNotFoundError(
            f"no {noun} {key!r}: not a checkpoint directory and not a shipped name (shipped: "
            f"{shipped}{more})"
        )
    return d


_SHADOWED_WARNED: set[tuple[str, str]] = set()


def _warn_shadowed(name: str, shipped: Path) -> None:
    """Warn once that a local directory ``name`` is not what the shipped ``name`` loads."""
    local = Path(name).expanduser()
    try:
        if not local.is_dir() or local.resolve() == shipped.resolve():
            return
        seen = (name, str(local.resolve()))
    except OSError:
        return
    if seen not in _SHADOWED_WARNED:
        _SHADOWED_WARNED.add(seen)
        message = (
            f"{name!r} is a shipped name and loads the shipped checkpoint, not the directory "
            f"{local.resolve()}; to load that directory, give it as a path "
            f"(pathlib.Path({name!r}) or './{name}')"
        )
        warnings.warn(message, UserWarning, stacklevel=4)


def open_checkpoint(
    name_or_path: str | os.PathLike[str], *, kind: str, require: Iterable[str]
) -> tuple[Path, dict[str, bytes]]:
    """The directory and the verified files of a checkpoint of ``kind``, by name or path.

    :func:`resolve_directory` then :func:`read_checkpoint`: what every loader starts with.

    Examples
    --------
    >>> directory, files = open_checkpoint("fuxi-hs-t21", kind="forecast-model",
    ...                                    require=(CONFIG, WEIGHTS))
    >>> directory.name, CONFIG in files, WEIGHTS in files
    ('fuxi-hs-t21', True, True)
    """
    directory = resolve_directory(name_or_path, kind=kind)
    return directory, read_checkpoint(directory, require=require)


def shipped_names(kind: str) -> list[str]:
    """Names of the shipped checkpoints of ``kind`` (``"forecast-model"``, ``"cascade"``,
    ``"perturbation"``, ``"da-model"``).

    Examples
    --------
    >>> "fuxi-hs-t21" in shipped_names("forecast-model")
    True
    """
    return sorted(k for k, e in read_registry().items() if entry_kind(e) == kind)


# -----------------------------------------------------------------------------------------------
# forecast models
# -----------------------------------------------------------------------------------------------


def as_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32"`` or ``torch.float32`` → ``torch.float32`` (floating dtypes only).

    float16 is refused: the models take physical states, and its largest value, 65504, is
    below the geopotential of the upper levels (about 2×10⁵ m² s⁻² at 50 hPa), so every
    forecast came out NaN. bfloat16 has float32's range.

    Examples
    --------
    >>> as_dtype("bfloat16")
    torch.bfloat16
    >>> as_dtype("float16")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: dtype float16 cannot hold the physical states a model takes ...
    """
    out = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(out, torch.dtype) or not out.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype or its name; got {dtype!r}")
    if out == torch.float16:
        raise ValueError(
            "dtype float16 cannot hold the physical states a model takes (its largest value "
            "is 65504; geopotential reaches about 2e5 m2 s-2): use 'bfloat16' (float32's "
            "range in 16 bits) or 'float32'"
        )
    return out


def _architecture_of(net: torch.nn.Module) -> str:
    """The name of ``net``'s architecture in :data:`ARCHITECTURES`, or a TypeError saying
    what can be saved and how to keep another network (a module wrapped with
    :func:`~xfuxi.models.base.wrap_model`)."""
    for name, cls in ARCHITECTURES.items():
        if type(net) is cls:
            return name
    known = ", ".join(f"{cls.__module__}.{cls.__name__} ({name!r})" for name, cls in
                      ARCHITECTURES.items())  # fmt: skip
    raise TypeError(
        f"cannot save a network of type {type(net).__name__}: a checkpoint rebuilds the "
        f"network from its config, which xfuxi knows for its own architectures only: "
        f"{known}. Keep a module of your own with torch: torch.save(model.net.state_dict(), "
        "path) and, to load it, build the module, load_state_dict(torch.load(path)) and wrap "
        "it again with xfuxi.wrap_model(module, channels=..., latitude=..., longitude=..., "
        "stats=..., residual=..., timestep_hours=...); or write it to ONNX "
        "(xfuxi.models.onnx.export_onnx, read back with import_onnx)"
    )


def model_files(
    model: ForecastModel, *, metadata: dict[str, Any] | None = None
) -> dict[str, bytes]:
    """The files of a forecast-model checkpoint (``config.json``, ``model.safetensors``).

    Parameters
    ----------
    model : ForecastModel
        A model whose network is a :class:`~xfuxi.models.fuxi.FuXiNet`.
    metadata : dict, optional
        Merged over the model's own ``config["metadata"]``.

    Returns
    -------
    dict of str to bytes
    """
    if not isinstance(model, ForecastModel):
        raise TypeError(f"expected a ForecastModel; got {type(model).__name__}")
    arch = _architecture_of(model.net)
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
    if model.input_times != 2:  # xfuxi.with_single_time_input
        config["input_times"] = model.input_times
    filt = getattr(model, "output_filter", None)
    if filt is not None:  # xfuxi.models.spectral.with_spectral_filter
        from .spectral import SpectralFilter

        if not isinstance(filt, SpectralFilter):  # nothing else can be written and read back
            raise TypeError(
                f"the model's output_filter is a {type(filt).__name__}; a checkpoint holds a "
                "SpectralFilter (xfuxi.with_spectral_filter) only"
            )
        config["output_filter"] = {"kind": "spectral", "truncation": int(filt.truncation)}
        if filt.weights is not None:  # dropped before: the loaded model forecast otherwise
            config["output_filter"]["weights"] = list(filt.weights)
    return {WEIGHTS: safetensors_bytes(model.net.state_dict()), CONFIG: json_bytes(config)}


@fill_doc
def save_model(
    model: ForecastModel,
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Save a forecast model as a checkpoint directory (no pickle).

    The directory holds ``model.safetensors``, ``config.json`` and ``manifest.json`` (the
    sha256 of both, checked on every load); it is written as one unit (see
    :func:`write_checkpoint`).

    Parameters
    ----------
    model : ForecastModel
        A model whose network is a :class:`~xfuxi.models.fuxi.FuXiNet` (a checkpoint
        rebuilds the network from its config). A module of your own wrapped with
        :func:`~xfuxi.models.base.wrap_model` cannot be saved so: keep its weights with
        ``torch.save(model.net.state_dict(), path)`` and wrap the module again after
        loading them, or write it to ONNX (:func:`~xfuxi.models.onnx.export_onnx`).
    path : path-like
        The directory: new, empty, or (with ``overwrite``) an earlier model checkpoint.
    metadata : dict, optional
        JSON-serialisable extra information (training settings, scores); merged over the
        model's own ``config["metadata"]``.
    overwrite : bool, default False
        Replace an earlier xfuxi model checkpoint at ``path``.

    {{save_returns}}
    TypeError
        ``model`` is not a ForecastModel, or its network is not of an architecture xfuxi
        can rebuild (a wrapped module of your own), before anything is written.

    Examples
    --------
    >>> import tempfile
    >>> from xfuxi.models.fuxi import build_fuxi
    >>> net = build_fuxi("tiny", in_channels=1, grid=(8, 16))
    >>> m = ForecastModel(net, channels=[("temperature", 850.0)],
    ...                   latitude=np.linspace(-78.75, 78.75, 8),
    ...                   longitude=np.arange(16) * 22.5, name="demo")
    >>> d = save_model(m, tempfile.mkdtemp())
    >>> sorted(p.name for p in d.iterdir() if not p.name.startswith("."))
    ['config.json', 'manifest.json', 'model.safetensors']
    """
    out = write_checkpoint(
        path, model_files(model, metadata=metadata), kind="forecast-model", overwrite=overwrite
    )
    log.info("saved model %r to %s", model.name, out)
    return out


@fill_doc
def load_checkpoint(
    name_or_path: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> ForecastModel:
    """Load one forecast model (not a cascade), verified, by shipped name or directory.

    :func:`xfuxi.load_model` is the public entry point; it also loads shipped cascades.

    Parameters
    ----------
    name_or_path : str or path-like
        A shipped name (its files checked against the sha256 in the registry, see
        :func:`resolve_directory`) or a directory written by :func:`save_model` (or a
        forecast training checkpoint); either is checked against its manifest. A ``str``
        that is a shipped name loads the shipped model even where a directory of that name
        exists in the working directory (with a ``UserWarning``, once); give such a
        directory as a ``pathlib.Path`` or as ``"./name"``.
    {{device_dtype}}

    Returns
    -------
    ForecastModel
        {{loaded_config}}

    Raises
    ------
    FileNotFoundError
        Neither a shipped name nor a directory.
    CheckpointError
        No manifest, a missing file, a truncated or corrupt file, invalid JSON, not a
        forecast-model checkpoint, or weights that do not fit the config (a ValueError).
    ChecksumError
        A file does not match the sha256 in the manifest.
    """
    directory, files = open_checkpoint(
        name_or_path, kind="forecast-model", require=(CONFIG, WEIGHTS)
    )
    config = json_of_format(
        files[CONFIG], directory / CONFIG, fmt=MODEL_FORMAT, what="a forecast-model checkpoint",
        where=directory,
    )  # fmt: skip
    warn_unknown_entries(config, MODEL_ENTRIES, directory / CONFIG)
    arch = config.get("architecture")
    if arch not in ARCHITECTURES:
        raise CheckpointError(
            f"{directory}: unknown architecture {arch!r}; known {sorted(ARCHITECTURES)}"
        )
    # every entry read where its failure names the checkpoint (a raw TypeError from the
    # network's constructor, say, for an option of a newer xfuxi)
    with config_entries(directory / CONFIG, errors=(ValueError, TypeError)):
        net_kwargs = dict(config["net"])
        in_channels = net_kwargs.pop("in_channels")
        grid = list(net_kwargs.pop("grid"))
        channels = [parse_channel_name(c) for c in config["channels"]]
        latitude, longitude = config["latitude"], config["longitude"]
        check_degrees(latitude=latitude, longitude=longitude)
        stats = NormStats.from_dict(config["stats"], channels=config["channels"])
        residual = config.get("residual", True)
        if not isinstance(residual, bool):  # bool("false") loaded as True
            raise ValueError(f"entry 'residual' must be true or false; got {residual!r}")
    if in_channels != len(channels) or grid != [len(latitude), len(longitude)]:
        raise CheckpointError(f"{directory}: network size does not match the channels or grid")
    unknown = set(net_kwargs) - _keyword_arguments(ARCHITECTURES[arch])
    if unknown:  # an option of a newer xfuxi is refused, not ignored
        raise CheckpointError(
            f"{directory / CONFIG}: the {arch} network has no options {sorted(unknown)}; the "
            "checkpoint may come from a newer xfuxi"
        )
    with isolated_rng():  # the caller's random stream is not consumed by the initial weights
        # built only once its shapes are known to be the weights file's (an absurd size in
        # the config is refused before anything is allocated)
        net = build_for_weights(
            lambda: ARCHITECTURES[arch](in_channels, grid, **net_kwargs),
            files[WEIGHTS],
            directory / WEIGHTS,
            what=f"the {arch} network",
            config=directory / CONFIG,
        )
    load_weights(net, files, directory, WEIGHTS)
    with config_entries(directory / CONFIG):  # e.g. a bad "input_times"
        model = ForecastModel(
            net,
            channels=channels,
            latitude=np.asarray(latitude),
            longitude=np.asarray(longitude),
            stats=stats,
            residual=residual,
            # checked by ForecastModel (a ValueError): float() of null was a raw TypeError
            timestep_hours=config.get("timestep_hours", 6.0),
            name=config.get("name", directory.name),
            config={**config, "sha256": _sha256_bytes(files[WEIGHTS]), "source": str(directory)},
        )
    spec = config.get("output_filter")
    if spec is not None:
        if (
            not isinstance(spec, dict)
            or spec.get("kind") != "spectral"
            or "truncation" not in spec
            or set(spec) - {"kind", "truncation", "weights"}
        ):  # a newer xfuxi's filter is refused, not read in part
            raise CheckpointError(f"{directory}: unknown output_filter {spec!r}")
        from .spectral import SpectralFilter

        try:
            model.output_filter = SpectralFilter(
                latitude, longitude, spec["truncation"], weights=spec.get("weights")
            )
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{directory}: output_filter {spec!r}: {err}") from None
    opts = get_options()
    dev = torch.device(device if device is not None else opts["device"])
    dt = as_dtype(dtype if dtype is not None else opts["dtype"])
    return model.to(device=dev, dtype=dt).eval()


def _keyword_arguments(cls: type) -> set[str]:
    import inspect

    return set(inspect.signature(cls).parameters)


def tensor_digest(module: torch.nn.Module, *, buffers: bool = True, extra: Any = None) -> str:
    """A short sha256 (16 hex digits) of a module's tensors, to tell two modules apart.

    The ``state_dict`` and, with ``buffers``, every buffer (xfuxi keeps normalization
    statistics and gains in buffers that are not persistent), sorted by name, as float64
    bytes (any dtype); ``extra`` (JSON-serialisable, e.g. a configuration) is hashed after.

    Examples
    --------
    >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    >>> _ = b.load_state_dict(a.state_dict())
    >>> tensor_digest(a) == tensor_digest(b)
    True
    >>> with torch.no_grad():
    ...     _ = b.bias.add_(1.0)
    >>> tensor_digest(a) == tensor_digest(b), len(tensor_digest(a))
    (False, 16)
    """
    import hashlib

    tensors = dict(module.named_buffers()) if buffers else {}
    tensors.update(module.state_dict())
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().double().contiguous().numpy().tobytes())
    if extra is not None:
        digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]
