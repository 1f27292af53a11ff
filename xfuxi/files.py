"""Files on disk: atomic writes and the rules for what xfuxi may replace.

Every file or store xfuxi writes goes through this module, so the guarantees in the
documentation's data-safety policy (``docs/safety.md``) hold in one place:

* a file is written to a temporary name beside its target and moved into place with
  :func:`os.replace`, so a reader sees the old content or the new, never a torn one;
* a directory output (a zarr store, a checkpoint, a results folder) is written to a
  temporary directory beside its target and renamed into place; it carries a marker file,
  :data:`MARKER`, naming the kind of output that xfuxi wrote there;
* xfuxi replaces an existing directory only if it carries xfuxi's marker of the same kind
  (and, for user outputs, only when asked to overwrite); it never deletes or overwrites
  anything it did not create.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "MARKER",
    "OutputExistsError",
    "atomic_write_bytes",
    "atomic_write_json",
    "read_marker",
    "replace_directory",
    "sha256_of",
]

#: name of the marker file xfuxi writes into every directory output it creates
MARKER = ".xfuxi-output.json"


class OutputExistsError(FileExistsError):
    """An output path exists and is not something xfuxi may replace."""


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _dir_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file beside it, then rename).

    The file gets the usual mode (``0666`` less the umask), not ``mkstemp``'s ``0600``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = atomic_write_bytes(pathlib.Path(tempfile.mkdtemp()) / "a.txt", b"hi")
    >>> p.read_bytes()
    b'hi'
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=indent) + "\n").encode())


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_marker(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The xfuxi marker of directory ``path``, or ``None`` if it has none (or not readable)."""
    marker = Path(path) / MARKER
    if not marker.is_file():
        return None
    try:
        value = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and "kind" in value else None


def _check_replaceable(target: Path, kind: str, overwrite: bool) -> bool:
    """Whether ``target`` exists and may be replaced; raise where it may not."""
    if not os.path.lexists(target):
        return False
    if target.is_symlink() or not target.is_dir():
        raise OutputExistsError(
            f"{target} exists and is not a directory that xfuxi wrote; choose another output "
            "path (xfuxi never replaces files it did not create)"
        )
    marker = read_marker(target)
    if marker is None:
        if not any(target.iterdir()):
            return True  # an empty directory: nothing of the user's is lost
        raise OutputExistsError(
            f"{target} exists and is not an xfuxi output (no {MARKER} inside); xfuxi never "
            "deletes what it did not create: choose another output path"
        )
    if marker.get("kind") != kind:
        raise OutputExistsError(
            f"{target} holds an xfuxi {marker.get('kind')!r} output, not a {kind!r} one; "
            "choose another output path"
        )
    if not overwrite:
        raise OutputExistsError(
            f"{target} holds an earlier xfuxi {kind!r} output; pass overwrite=True "
            "(--overwrite on the command line) to replace it"
        )
    return True


def replace_directory(
    target: str | os.PathLike[str],
    write: Callable[[Path], None],
    *,
    kind: str,
    overwrite: bool = False,
    metadata: dict[str, Any] | None = None,
    keep_existing: bool = False,
) -> Path:
    """Write a directory output atomically and mark it as xfuxi's.

    ``write(tmp)`` fills a fresh temporary directory beside ``target``; the marker
    :data:`MARKER` (``kind`` plus ``metadata``) is written into it last, then the directory
    is renamed into place. An existing ``target`` is replaced only if it is empty or an
    xfuxi output of the same ``kind`` and ``overwrite`` is true; otherwise
    :class:`OutputExistsError` is raised before anything is written.

    Parameters
    ----------
    target : path-like
        The directory to create (or replace).
    write : callable
        Called with the temporary directory (which exists and is empty).
    kind : str
        What the output is (``"forecast"``, ``"world-cache"``, ...), recorded in the marker.
    overwrite : bool
        Replace an earlier xfuxi output of the same kind.
    metadata : dict, optional
        Extra JSON-serialisable entries for the marker (a checksum, a configuration).
    keep_existing : bool
        For caches written by concurrent processes: if ``target`` appears while writing,
        keep it and discard this copy.

    Returns
    -------
    pathlib.Path
        ``target``.

    Raises
    ------
    OutputExistsError
        ``target`` exists and may not be replaced.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "result"
    >>> _ = replace_directory(out, lambda d: (d / "x.txt").write_text("1"), kind="demo")
    >>> sorted(p.name for p in out.iterdir()), read_marker(out)["kind"]
    (['.xfuxi-output.json', 'x.txt'], 'demo')
    """
    target = Path(target)
    exists = _check_replaceable(target, kind, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = None
    try:
        os.chmod(tmp, _dir_mode())
        write(tmp)
        atomic_write_json(tmp / MARKER, {"kind": kind, **(metadata or {})})
        if exists:
            # move the old output aside (same filesystem: a rename), then the new one in
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            os.replace(target, old / "previous")
        try:
            os.replace(tmp, target)
        except BaseException as err:  # an interrupt here too: never lose the old output
            if isinstance(err, OSError) and keep_existing and target.exists():
                if read_marker(target) is not None:
                    return target
            if old is not None:
                os.replace(old / "previous", target)  # put the old output back
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target
