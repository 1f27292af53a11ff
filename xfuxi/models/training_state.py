"""Training checkpoints: a model's (or module's) files plus the optimizer and trainer state.

A training checkpoint is a checkpoint of the store (:mod:`xfuxi.models.checkpoint`), of kind
``"forecast-training"`` or ``"perturbation-training"``: the model's own files plus
``optimizer.safetensors``, ``trainer.json`` (step, history, settings) and, where needed,
``state.safetensors`` (random-generator states): the whole state a trainer resumes from,
written as one unit and read back verified (see the data-safety policy in the
documentation, docs/safety.md).

A trainer holds the lock of its checkpoint directory (:func:`hold_checkpoint_directory`)
for the whole run, so that a second run given the same directory fails at once instead of
replacing the first run's checkpoints with its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..files import (
    OutputExistsError,
    OutputInUseError,
    OutputLock,
    check_output_folder,
    lock_output,
    read_marker,
)
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
    "checkpoint_lock_path",
    "hold_checkpoint_directory",
    "load_training_state",
    "lock_checkpoint_directory",
    "release_checkpoint_directory",
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
    try:
        return write_checkpoint(path, out, kind=kind, overwrite=True)
    except OutputExistsError:
        # the directory was checked before training, so something else has written there
        # since (a run that took no lock); the message of the store would advise an
        # overwrite option that a trainer does not have
        raise OutputExistsError(
            f"{path} was changed by something other than this run while it trained (another "
            "run writing the same checkpoint directory at once?): it is left as it is, and "
            "this run's checkpoint was not saved there; train again with another checkpoint "
            "directory (or, when the other run has ended, resume from its checkpoint)"
        ) from None


def checkpoint_lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of the checkpoint directory ``path``: ``.<name>.lock`` beside it (not
    in it: a trainer replaces the directory at each checkpoint).

    Examples
    --------
    >>> checkpoint_lock_path("runs/ckpt").as_posix().endswith("runs/.ckpt.lock")
    True
    """
    # one lock file for one directory, however it is named: "~", a relative path, a link
    path = Path(path).expanduser().resolve()
    return path.parent / f".{path.name}.lock"


def lock_checkpoint_directory(path: str | os.PathLike[str]) -> OutputLock:
    """Lock the checkpoint directory ``path`` for a training run: at once, or
    :class:`~xfuxi.files.OutputInUseError` naming the directory and the run that holds it.

    The lock is :func:`xfuxi.files.lock_output` on :func:`checkpoint_lock_path` (the folder
    that holds ``path`` is made if missing). Release it with
    :func:`release_checkpoint_directory` (which also removes the lock file), or use
    :func:`hold_checkpoint_directory`.

    Raises
    ------
    xfuxi.files.OutputInUseError
        Another process holds the lock.
    """
    check_output_folder(Path(path).expanduser())  # a file above it, a read-only folder
    lock_path = checkpoint_lock_path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    what = f"the training checkpoint directory {Path(path)}"
    for _ in range(10):
        lock = lock_output(lock_path, what=what)
        if lock.holds(lock_path):
            return lock
        # the file was removed (by the run that held it, as it ended) between opening and
        # locking it: the lock is on a file no one else will open; take the new one
        lock.release()
    raise OutputInUseError(f"the lock of {what} ({lock_path}) keeps being replaced")


def release_checkpoint_directory(lock: OutputLock) -> None:
    """Release a lock taken by :func:`lock_checkpoint_directory` and remove its lock file.

    The file is removed while still locked, and only if it is the file locked: a run that
    opened it meanwhile then locks a file that is gone, sees so (``holds``) and locks the
    file at the path anew, so that two runs never hold the lock at once. Where the lock
    excludes nothing (no ``flock``: see :func:`xfuxi.files.lock_output`) the file is left.
    """
    try:
        if lock.locked and lock.holds(lock.path):
            try:
                os.unlink(lock.path)
            except OSError:
                pass  # left: the next run locks it as it is
    finally:
        lock.release()


@contextmanager
def hold_checkpoint_directory(
    path: str | os.PathLike[str] | None, *, rank: int = 0
) -> Iterator[OutputLock | None]:
    """Hold the lock of the checkpoint directory ``path`` for the ``with`` block (a training
    run), released at its end however it ends (an exception, an interrupt).

    Nothing is locked where ``path`` is None (no checkpoints) or on the processes of a
    distributed run other than rank 0 (the one that writes the checkpoints).

    Raises
    ------
    xfuxi.files.OutputInUseError
        Another run holds the lock (see :func:`lock_checkpoint_directory`).

    Examples
    --------
    >>> import tempfile
    >>> ckpt = Path(tempfile.mkdtemp()) / "ckpt"
    >>> with hold_checkpoint_directory(ckpt):
    ...     hold_checkpoint_directory(ckpt).__enter__()
    Traceback (most recent call last):
    ...
    xfuxi.files.OutputInUseError: another run (process ...) is writing the training ...
    >>> checkpoint_lock_path(ckpt).exists()  # removed when the run ends
    False
    """
    if path is None or rank != 0:
        yield None
        return
    lock = lock_checkpoint_directory(path)
    try:
        yield lock
    finally:
        release_checkpoint_directory(lock)


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
