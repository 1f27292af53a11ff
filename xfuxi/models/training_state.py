"""Training checkpoints: a model's (or module's) files plus the optimizer and trainer state.

A training checkpoint is a checkpoint of the store (:mod:`xfuxi.models.checkpoint`), of kind
``"forecast-training"`` or ``"perturbation-training"``: the model's own files plus
``optimizer.safetensors``, ``trainer.json`` (step, history, settings) and, where needed,
``state.safetensors`` (random-generator states): the whole state a trainer resumes from,
written as one unit and read back verified (see the data-safety policy in the
documentation, docs/safety.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..files import OutputExistsError, read_marker
from .checkpoint import (
    CheckpointError,
    json_bytes,
    json_of_format,
    read_checkpoint,
    safetensors_bytes,
    tensors_from_bytes,
    write_checkpoint,
)

__all__ = [
    "TrainingState",
    "check_run_directory",
    "check_training_directory",
    "load_training_state",
    "save_training_state",
]

OPTIMIZER = "optimizer.safetensors"
TRAINER = "trainer.json"
STATE_TENSORS = "state.safetensors"


class TrainingState:
    """A training checkpoint read back (verified): the model's files and the trainer's state.

    Attributes
    ----------
    path : pathlib.Path
    files : dict of str to bytes
        Every file of the checkpoint (the model's own ones included).
    state : dict
        ``trainer.json`` less its format tag and the optimizer's ``param_groups``.
    tensors : dict of str to Tensor
        Extra tensors saved with the state (random-generator states).
    """

    def __init__(self, path: Path, files: dict[str, bytes], state: dict[str, Any]) -> None:
        self.path = path
        self.files = files
        self.param_groups = state.pop("param_groups")
        self.state = state
        self.tensors = (
            tensors_from_bytes(files[STATE_TENSORS], path / STATE_TENSORS)
            if STATE_TENSORS in files
            else {}
        )

    def restore_optimizer(
        self, optimizer: torch.optim.Optimizer, *, param_groups: bool = True
    ) -> None:
        """Load the saved optimizer state into ``optimizer`` (in place).

        With ``param_groups=False`` the optimizer keeps its own hyper-parameters (learning
        rate, ...) and takes only the per-parameter state (moments, step counts).
        """
        flat = tensors_from_bytes(self.files[OPTIMIZER], self.path / OPTIMIZER)
        per_param: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in flat.items():
            i, name = key.split(".", 1)
            per_param.setdefault(int(i), {})[name] = value
        groups = self.param_groups if param_groups else optimizer.state_dict()["param_groups"]
        try:
            optimizer.load_state_dict({"state": per_param, "param_groups": groups})
        except (ValueError, KeyError) as err:
            raise CheckpointError(
                f"{self.path / OPTIMIZER} does not fit this optimizer: {err}"
            ) from None


def save_training_state(
    path: str | os.PathLike[str],
    files: Mapping[str, bytes],
    *,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    kind: str,
    state_format: str,
    tensors: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write a training checkpoint as one unit: the model's files, optimizer and trainer state.

    A writer killed at any point leaves the previous checkpoint at ``path`` whole (see
    :func:`write_checkpoint`); :func:`load_training_state` then resumes from it.

    Parameters
    ----------
    path : path-like
        The checkpoint directory: new, empty, or an earlier training checkpoint of ``kind``
        (replaced).
    files : mapping of str to bytes
        The model's own files (:func:`model_files`, or the perturbation module's).
    optimizer : torch.optim.Optimizer
        Its per-parameter tensors go to ``optimizer.safetensors``, its ``param_groups`` to
        ``trainer.json``.
    state : dict
        JSON-serialisable trainer state (step, history, settings), saved in ``trainer.json``.
    kind : str
        ``"forecast-training"`` or ``"perturbation-training"``.
    state_format : str
        Format tag of ``trainer.json``, checked when reading.
    tensors : mapping of str to Tensor, optional
        Extra tensors (random-generator states), saved in ``state.safetensors``.

    Returns
    -------
    pathlib.Path
    """
    sd = optimizer.state_dict()
    flat = {
        f"{i}.{k}": v
        for i, st in sd["state"].items()
        for k, v in st.items()
        if isinstance(v, torch.Tensor)
    }
    out = dict(files)
    out[OPTIMIZER] = safetensors_bytes(flat)
    if tensors:
        out[STATE_TENSORS] = safetensors_bytes(tensors)
    groups = [dict(g) for g in sd["param_groups"]]
    out[TRAINER] = json_bytes({"format": state_format, **state, "param_groups": groups})
    return write_checkpoint(path, out, kind=kind, overwrite=True)


def check_training_directory(path: str | os.PathLike[str], *, kind: str) -> bool:
    """Whether ``path`` holds a training checkpoint; raise if a trainer may not write there.

    A trainer checks its checkpoint directory before training, not at its first checkpoint.

    Returns
    -------
    bool
        False if ``path`` does not exist or is an empty directory (a new run); True if it
        holds an xfuxi training checkpoint of ``kind`` (or one written before the store
        marked its checkpoints: it has a ``trainer.json``).

    Raises
    ------
    xfuxi.files.OutputExistsError
        ``path`` holds something else (xfuxi never replaces what it did not create).
    """
    path = Path(path)
    if not os.path.lexists(path) or (path.is_dir() and not any(path.iterdir())):
        return False
    marker = read_marker(path) if path.is_dir() and not path.is_symlink() else None
    if marker is None and not (path.is_dir() and (path / TRAINER).is_file()):
        raise OutputExistsError(
            f"{path} exists and is not an xfuxi training checkpoint; choose another "
            "checkpoint directory (xfuxi never deletes what it did not create)"
        )
    if marker is not None and marker.get("kind") != kind:
        raise OutputExistsError(
            f"{path} holds an xfuxi {marker.get('kind')!r} output, not a {kind!r} checkpoint; "
            "choose another checkpoint directory"
        )
    return True


def check_run_directory(
    path: str | os.PathLike[str], *, kind: str, outputs: dict[str, str] | None = None
) -> None:
    """Raise unless a trainer may write its run into ``path`` (before training).

    ``path`` may be absent or an empty directory, or hold what such a run writes: its
    checkpoint ``latest`` (of ``kind``), the outputs named in ``outputs`` (entry name to
    xfuxi output kind, e.g. ``{"model": "fuxi-da"}``) and xfuxi's temporaries of them.

    Raises
    ------
    xfuxi.files.OutputExistsError
        ``path`` is a file, or holds something else (xfuxi never replaces what it did not
        create).

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> check_run_directory(d / "new", kind="demo")  # absent: a new run
    >>> _ = (d / "notes.txt").write_text("mine")
    >>> check_run_directory(d, kind="demo")
    Traceback (most recent call last):
    ...
    xfuxi.files.OutputExistsError: ... holds 'notes.txt', which is not what this training run ...
    """
    path = Path(path)
    if not os.path.lexists(path):
        return
    if not path.is_dir() or path.is_symlink():
        raise OutputExistsError(
            f"{path} exists and is not a directory; choose another output directory"
        )
    outputs = dict(outputs or {})
    for entry in sorted(path.iterdir()):
        name = entry.name
        if name == "latest":
            check_training_directory(entry, kind=kind)
            continue
        if name in outputs:
            marker = read_marker(entry) if entry.is_dir() and not entry.is_symlink() else None
            if marker is not None and marker.get("kind") == outputs[name]:
                continue
        elif name.startswith(".") and any(
            name.startswith(f".{own}.") for own in ("latest", *outputs)
        ):
            continue  # a temporary of this run's outputs
        raise OutputExistsError(
            f"{path} holds {name!r}, which is not what this training run writes there; "
            "choose another output directory (xfuxi never deletes what it did not create)"
        )


def load_training_state(
    path: str | os.PathLike[str], *, kind: str, state_format: str
) -> TrainingState | None:
    """Read a training checkpoint to resume from, verified; ``None`` if there is none yet.

    Parameters
    ----------
    path : path-like
        The checkpoint directory given to the trainer.
    kind, state_format : str
        As given to :func:`save_training_state`.

    Returns
    -------
    TrainingState or None
        ``None`` if ``path`` does not exist or is empty.

    Raises
    ------
    xfuxi.files.OutputExistsError
        ``path`` holds something other than an xfuxi training checkpoint of ``kind`` (so a
        run could not write its checkpoints there).
    CheckpointError
        The checkpoint is incomplete, corrupt (:class:`ChecksumError`) or of another format:
        resuming from it could not reproduce the interrupted run, so it is refused.
    """
    path = Path(path)
    if not check_training_directory(path, kind=kind):
        return None
    try:
        files = read_checkpoint(path, require=(TRAINER, OPTIMIZER))
    except CheckpointError as err:
        raise type(err)(
            f"cannot resume from {path}: {err}. Resuming needs the complete state of the "
            "interrupted run; use another checkpoint directory or resume=False"
        ) from None
    state = json_of_format(
        files[TRAINER], path / TRAINER, fmt=state_format, what="an xfuxi trainer state"
    )
    state.pop("format")
    if "param_groups" not in state:
        raise CheckpointError(f"{path / TRAINER} lacks the optimizer's param_groups")
    return TrainingState(path, files, state)
