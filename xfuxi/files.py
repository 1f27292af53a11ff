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
  anything it did not create;
* a directory output may record the size and sha256 of every file in its marker
  (``checksums=True``), so that a reader can check it with :func:`verify_directory` before
  trusting it;
* the temporary directories of a writer that was killed carry the writer's process id and
  host in their names, so :func:`remove_stale_temporaries` can remove them safely.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "MARKER",
    "CorruptedOutputError",
    "OutputExistsError",
    "OutputInUseError",
    "OutputLock",
    "atomic_write_bytes",
    "atomic_write_file",
    "atomic_write_json",
    "check_output_folder",
    "check_replaceable",
    "directory_checksums",
    "lock_output",
    "read_marker",
    "remove_stale_temporaries",
    "replace_directory",
    "set_aside",
    "sha256_of",
    "temporary_path",
    "verify_directory",
]

#: name of the marker file xfuxi writes into every directory output it creates
MARKER = ".xfuxi-output.json"


class OutputExistsError(FileExistsError):
    """An output path exists and is not something xfuxi may replace."""


class CorruptedOutputError(OSError):
    """A directory output does not match the checksums recorded in its marker."""


class OutputInUseError(RuntimeError):
    """Another process holds the lock of an output that it is writing (see
    :func:`lock_output`)."""


class OutputLock:
    """An exclusive advisory lock (``fcntl.flock``) held on an open lock file, released by
    :meth:`release` (or at the end of a ``with`` block, or when the process ends).

    ``locked`` is False where the platform has no ``fcntl`` (Windows) or the lock file could
    not be made (a read-only store): the lock is then only a record, and excludes nothing.
    """

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def holds(self, path: str | os.PathLike[str]) -> bool:
        """Whether the file at ``path`` now is the one locked (not one that replaced it)."""
        if self._fd is None:
            return True
        try:
            st, held = os.stat(path), os.fstat(self._fd)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:  # the record names a holder only while there is one
                os.ftruncate(fd, 0)
            except OSError:
                pass
            os.close(fd)  # closing the file releases its flock

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def lock_output(path: str | os.PathLike[str], *, what: str) -> OutputLock:
    """Take an exclusive lock on the lock file ``path`` (created if missing), at once or not
    at all: a writer holds it for as long as it writes an output that it adds to piece by
    piece (a cycling store), so that a second writer of the same output fails at once
    instead of mixing its pieces in. Readers do not need it.

    The holder's process id and host are written into the file, for the message another
    writer gets. Where the platform has no ``fcntl`` (Windows) there is no lock: the
    returned :class:`OutputLock` is not ``locked``; so too, with a warning in the log, where
    the file cannot be made (a read-only directory).

    Raises
    ------
    OutputInUseError
        Another process holds the lock; the message names ``what`` and that process.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / ".lock"
    >>> with lock_output(f, what="the demo store") as held:
    ...     lock_output(f, what="the demo store")
    Traceback (most recent call last):
    xfuxi.files.OutputInUseError: another run (process ...) is writing the demo store: ...
    >>> lock_output(f, what="the demo store").release()  # free again
    """
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here (docs/safety.md)
        return OutputLock(path, None)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, _file_mode())
    except (PermissionError, OSError) as err:
        if not isinstance(err, PermissionError) and err.errno != errno.EROFS:
            raise  # its directory is gone (FileNotFoundError), ...: the caller's to handle
        log.warning("%s is not locked (%s): do not let two runs write it at once", what, err)
        return OutputLock(path, None)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            # a file system without flock (NFS without lockd: ENOLCK; Lustre noflock: ENOSYS)
            os.close(fd)
            log.warning("%s is not locked (%s): do not let two runs write it at once", what, err)
            return OutputLock(path, None)
        try:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
        except OSError:
            holder = ""
        os.close(fd)
        raise OutputInUseError(
            f"another run (process {holder or 'unknown'}) is writing {what}: it holds its "
            f"lock ({path}); wait for it to end, or give another path"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}@{socket.gethostname()}\n".encode(), 0)
    except OSError:
        pass  # the record is for messages only
    return OutputLock(path, fd)


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _dir_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def _temporary_prefix(target: Path) -> str:
    """Prefix of a temporary name beside ``target``: its name, this process's id and host."""
    return f".{target.name}.{os.getpid()}@{socket.gethostname()}."


def temporary_path(target: str | os.PathLike[str]) -> Path:
    """A fresh path beside ``target`` (not created) named as this module names its
    temporaries, so that :func:`remove_stale_temporaries` recognises it: for writers that
    make a directory themselves (a zarr store) before renaming it onto ``target``.

    >>> p = temporary_path("/data/run.zarr")
    >>> p.parent.as_posix(), p.name.startswith(".run.zarr."), p.suffix
    ('/data', True, '.tmp')
    """
    target = Path(target)
    return target.parent / f"{_temporary_prefix(target)}{secrets.token_hex(4)}.tmp"


#: ``.<target>.<pid>@<host>.<8 random characters>.<tmp|old>``, the temporary names of this
#: module (older xfuxi versions wrote ``.<target>.<8 random characters>.tmp``)
_TEMPORARY = re.compile(
    r"^\.(?P<target>.+?)\.(?:(?P<pid>\d+)@(?P<host>[^/]+?)\.)?[a-z0-9_]{8}\.(?:tmp|old)$"
)


def atomic_write_file(
    path: str | os.PathLike[str],
    write: Callable[[Path], None],
    *,
    replacing: bool | None = None,
) -> Path:
    """Write a file atomically: ``write(tmp)`` fills a temporary file beside ``path``, which
    is then synced and renamed onto ``path``.

    ``path`` is replaced if it exists: the caller decides whether it may be (see
    :func:`check_replaceable` for directories, :func:`check_file_replaceable` for files,
    whose answer is ``replacing``). It is not replaced if it changed while the file was
    written (another run's output, a file saved meanwhile): with ``replacing=False`` (the
    caller found nothing there) nothing may be at ``path`` when the file is published
    (published by a hard link, which fails if anything has appeared); otherwise ``path``
    must still be as it was when this call began. Either way the call then raises
    :class:`OutputExistsError` and leaves ``path`` as it is. The file gets the usual mode
    (``0666`` less the umask), not ``mkstemp``'s ``0600``. If ``write`` fails, nothing is
    left behind; the temporaries of ``path`` that killed writers of this host left are
    removed first.

    Parameters
    ----------
    path : path-like
        The file to write.
    write : callable
        Called with the temporary path (an existing, empty file), e.g.
        ``lambda p: ds.to_netcdf(p)``.
    replacing : bool, optional
        What the caller's check found. False: nothing at ``path`` (nothing may be there
        when the file is published). True or None (default): what is at ``path`` when this
        call begins, a file or nothing, must still be so when the file is published.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> atomic_write_file(p, lambda tmp: tmp.write_text("hi")).read_text()
    'hi'
    """
    path = Path(path).expanduser()
    _clear_stale_temporaries(path)
    # what the caller checked: nothing, or the file it may replace
    before = None if replacing is False else _file_state(path)
    if replacing is False and before is None and os.path.lexists(path):  # (a race, early)
        _publish_refused(path, "appeared since it was checked")
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, _file_mode())
        _publish(tmp, path, before)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _file_state(path: Path) -> tuple[int, ...] | None:
    """What is at ``path``: None if nothing, else its device, inode, size and time of change."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _publish(tmp: Path, path: Path, before: tuple[int, ...] | None) -> None:
    """Rename ``tmp`` onto ``path`` unless something else took ``path`` while ``tmp`` was
    written: another run's output, or a user's file (a later writer replaced the earlier
    one's output, or a user's file saved meanwhile, and both calls returned as if they had
    written it). Where nothing was at ``path``, ``tmp`` is hard-linked there, which fails if
    anything has appeared since (atomically); where a file was (one the caller may replace),
    it must still be that file."""
    if before is None:
        try:
            os.link(tmp, path)
        except FileExistsError:
            _publish_refused(path, "appeared while this output was written")
        except OSError:  # a file system without hard links: the check below, then rename
            if os.path.lexists(path):
                _publish_refused(path, "appeared while this output was written")
            os.replace(tmp, path)
            return
        tmp.unlink()
        return
    if _file_state(path) != before:
        _publish_refused(path, "changed while this output was written")
    os.replace(tmp, path)


def _publish_refused(path: Path, what: str) -> None:
    raise OutputExistsError(
        f"{path} {what} (another run's output, or a file saved there); it is left as it is "
        "and this output was not written: choose another path, or rerun once the other run "
        "has finished"
    )


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
    return atomic_write_file(path, lambda tmp: tmp.write_bytes(data))


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


def check_output_folder(target: str | os.PathLike[str]) -> Path:
    """Check, before any work, that an output can be written at ``target``: the folder that
    holds it exists or can be made, and this process may write into it.

    The nearest existing folder above ``target`` (its folder, or the one where the missing
    folders would be made) must be a folder, not a file, and writable: by its permission
    bits (``os.access``), and by a probe file of xfuxi's own made there and removed at once
    (the superuser passes the bits, not a read-only mount). Without this check a
    writer found out only after the work, with a message naming its hidden temporary.
    :func:`check_replaceable` and :func:`check_file_replaceable` call it first.

    Parameters
    ----------
    target : path-like
        The output file or directory (a leading ``~`` is the home folder).

    Returns
    -------
    pathlib.Path
        The absolute ``target``.

    Raises
    ------
    OutputExistsError
        A path component above ``target`` is a file: "... is a file, not a folder".
    PermissionError
        The folder cannot be written into: "cannot write into <folder>".

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "notes.txt").write_text("a user's file") and None
    >>> check_output_folder(d / "new" / "fc.nc") == d / "new" / "fc.nc"
    True
    >>> check_output_folder(d / "notes.txt" / "fc.nc")
    Traceback (most recent call last):
    ...
    xfuxi.files.OutputExistsError: ... lie inside .../notes.txt, which is a file, not a folder; ...
    """
    target = Path(os.path.abspath(Path(target).expanduser()))
    for folder in target.parents:  # the nearest first
        if not os.path.lexists(folder):
            continue
        if not folder.is_dir():
            raise OutputExistsError(
                f"{target} would lie inside {folder}, which is a file, not a folder; choose "
                "another output path"
            )
        made = "" if folder == target.parent else f" (to make {target.parent})"
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(
                f"cannot write into {folder}{made}: it is read-only for this user or on a "
                f"read-only file system; choose another output path for {target}"
            )
        # os.access answers from the permission bits, and the superuser passes them: a
        # file of xfuxi's own, made and removed at once, finds what they do not (a
        # read-only mount, /sys, a file system that refuses new files)
        try:
            fd, probe = tempfile.mkstemp(prefix=".xfuxi-probe-", suffix=".tmp", dir=folder)
        except OSError as err:
            raise PermissionError(
                f"cannot write into {folder}{made}: {err.strerror or type(err).__name__}; "
                f"choose another output path for {target}"
            ) from None
        os.close(fd)
        os.unlink(probe)  # the probe is xfuxi's own, made just now
        break
    return target


def _check_overwrite(overwrite: Any) -> None:
    """``overwrite`` must be True or False: ``overwrite="no"`` (truthy) replaced the output."""
    numpy_bool = getattr(getattr(overwrite, "dtype", None), "kind", "") == "b" and (
        getattr(overwrite, "ndim", None) == 0
    )
    if not isinstance(overwrite, bool) and not numpy_bool:
        raise TypeError(f"overwrite must be True or False; got {overwrite!r}")


def check_replaceable(
    target: str | os.PathLike[str],
    *,
    kind: str,
    overwrite: bool = False,
    adopt: Callable[[Path], bool] | None = None,
) -> bool:
    """Whether ``target`` exists and may be replaced by an xfuxi output of ``kind``.

    Call it before long work, so that a refusal comes before the work, not after;
    :func:`replace_directory` calls it again. It first puts back an earlier output of
    ``target`` that a writer killed between the two renames of a replacement left aside,
    and removes the temporaries of ``target`` whose writer (on this host) is gone.

    Parameters
    ----------
    target : path-like
        The output directory.
    kind : str
        The kind of output to write there.
    overwrite : bool
        Whether an earlier xfuxi output of the same kind may be replaced.
    adopt : callable, optional
        ``adopt(target)`` tells whether a directory without the marker is an earlier output
        of this kind written by an older xfuxi (before the marker existed).

    Returns
    -------
    bool
        False if ``target`` does not exist, True if it exists and may be replaced (an empty
        directory, or an xfuxi output of ``kind`` with ``overwrite``).

    Raises
    ------
    OutputExistsError
        ``target`` is a file or link, a non-empty directory that xfuxi did not write, an
        xfuxi output of another kind, or one of this kind without ``overwrite``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> check_replaceable(d / "new", kind="forecast"), check_replaceable(d, kind="forecast")
    (False, True)
    """
    _check_overwrite(overwrite)
    target = Path(target).expanduser()
    check_output_folder(target)  # a file above it, a read-only folder: before any work
    # what a writer of this output killed on this host left: its temporaries, and the
    # previous output it had moved aside but not replaced yet (put back first)
    _clear_stale_temporaries(target)
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
        if adopt is None or not adopt(target):
            raise OutputExistsError(
                f"{target} exists and is not an xfuxi output (no {MARKER} inside); xfuxi "
                "never deletes what it did not create: choose another output path"
            )
        marker = {"kind": kind}
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


def check_file_replaceable(
    path: str | os.PathLike[str],
    *,
    overwrite: bool,
    ours: Callable[[Path], bool],
    writer: str,
    flag: str = "overwrite=True",
) -> bool:
    """Whether the file ``path`` exists and may be replaced by an output of ``writer``.

    Parameters
    ----------
    path : path-like
        The output file.
    overwrite : bool
        Whether an earlier output of ``writer`` may be replaced.
    ours : callable
        ``ours(path)`` tells whether the existing file was written by ``writer`` (e.g. an
        attribute it records in the file).
    writer : str
        The function that writes such files, for the messages.
    flag : str, default "overwrite=True"
        How the caller asks for a replacement, for the message (``"--overwrite"`` on the
        command line).

    Returns
    -------
    bool
        False if nothing is at ``path``, True if an earlier output of ``writer`` is there and
        ``overwrite`` is set.

    Raises
    ------
    OutputExistsError
        ``path`` is a link (a dangling one too) or a directory, a file ``writer`` did not
        write (even with ``overwrite``: xfuxi never replaces a file it did not create), or
        an output of ``writer`` without ``overwrite``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> check_file_replaceable(d / "new.nc", overwrite=False, ours=bool, writer="f")
    False
    >>> (d / "mine.txt").write_text("a user's file") and None
    >>> check_file_replaceable(d / "mine.txt", overwrite=True, ours=lambda p: False, writer="f")
    Traceback (most recent call last):
    ...
    xfuxi.files.OutputExistsError: ... was not written by f; xfuxi never replaces a file ...
    """
    _check_overwrite(overwrite)
    path = Path(path).expanduser()
    check_output_folder(path)  # a file above it, a read-only folder: before any work
    if not os.path.lexists(path):
        return False
    if path.is_symlink() or not path.is_file():
        raise OutputExistsError(
            f"{path} exists and is a {'link' if path.is_symlink() else 'directory'}, not a file "
            f"{writer} wrote; choose another path (xfuxi never replaces what it did not create)"
        )
    if not ours(path):
        raise OutputExistsError(
            f"{path} exists and was not written by {writer}; xfuxi never replaces a file it "
            "did not create (docs/safety.md): choose another path"
        )
    if not overwrite:
        raise OutputExistsError(
            f"{path} holds an earlier output of {writer}; pass {flag} to replace it"
        )
    return True


#: the global attributes :func:`atomic_write_netcdf` adds (the writer's record, not data)
WRITER_ATTRS: tuple[str, ...] = ("xfuxi_writer", "xfuxi_file")


def atomic_write_netcdf(
    ds: Any,
    path: str | os.PathLike[str],
    *,
    writer: str,
    replacing: bool | None = None,
    **kwargs: Any,
) -> Path:
    """Write the Dataset ``ds`` to ``path`` as netCDF, atomically, recording ``writer`` in its
    ``xfuxi_writer`` attribute and the file's own name in ``xfuxi_file`` (what
    :func:`netcdf_written_by` reads back); ``ds`` is not modified. ``kwargs`` go to
    ``Dataset.to_netcdf``. Check the path first (:func:`check_file_replaceable`) and pass its
    answer as ``replacing`` (:func:`atomic_write_file`).

    Examples
    --------
    >>> import tempfile, pathlib, xarray as xr
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.nc"
    >>> _ = atomic_write_netcdf(xr.Dataset({"x": ("i", [1.0])}), p, writer="me")
    >>> netcdf_written_by(p, "me")
    True
    """
    marked = ds.copy()
    marked.attrs = {**ds.attrs, "xfuxi_writer": writer, "xfuxi_file": Path(path).name}

    def write(tmp: Path) -> None:
        with _ctrl_c_after_the_file():
            marked.to_netcdf(tmp, **kwargs)

    return atomic_write_file(path, write, replacing=replacing)


@contextmanager
def _ctrl_c_after_the_file() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise ``KeyboardInterrupt``: one
    raised inside xarray's netCDF writer while it holds its file lock left the process
    waiting on that lock for ever (a second Ctrl-C stops at once, as before). Only in the
    main thread with Python's own handler in place (elsewhere signals are not ours)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        if held:  # a second one: stop now
            raise KeyboardInterrupt
        held.append(signum)
        log.warning("interrupted: the file being written is finished first, then removed "
                    "(Ctrl-C again to stop at once)")  # fmt: skip

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    except BaseException as err:
        if held and not isinstance(err, KeyboardInterrupt):  # the write failed meanwhile:
            raise KeyboardInterrupt from err  # the Ctrl-C is not lost in its error
        raise
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if held:
        raise KeyboardInterrupt


def netcdf_written_by(path: Path, writer: str) -> bool:
    """Whether the netCDF file ``path`` records ``xfuxi_writer = writer`` and its own name
    (False for a file that is not netCDF or cannot be read).

    The name tells a file xfuxi wrote from one a user saved from it: xarray carries the
    attributes of data it read into what it writes, so ``xr.open_dataset("fc.nc")``
    ``.isel(...).to_netcdf("mine.nc")`` holds ``xfuxi_writer`` too, with another name.

    Examples
    --------
    >>> import tempfile, pathlib, xarray as xr
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> xr.Dataset(attrs={"xfuxi_writer": "me", "xfuxi_file": "a.nc"}).to_netcdf(d / "a.nc")
    >>> _ = (d / "b.nc").write_text("not netCDF")
    >>> netcdf_written_by(d / "a.nc", "me"), netcdf_written_by(d / "b.nc", "me")
    (True, False)
    >>> xr.open_dataset(d / "a.nc").load().to_netcdf(d / "mine.nc")  # the user's copy
    >>> netcdf_written_by(d / "mine.nc", "me")
    False
    """
    import xarray as xr

    try:
        with xr.open_dataset(path, decode_cf=False) as existing:
            return (
                existing.attrs.get("xfuxi_writer") == writer
                and existing.attrs.get("xfuxi_file") == Path(path).name
            )
    except Exception:  # noqa: BLE001 - anything unreadable is not ours
        return False


def _files_of(path: Path) -> dict[str, int]:
    """Relative POSIX path -> size of every file under ``path``, but the top-level marker."""
    return {rel: st.st_size for rel, st in _stats_of(path).items()}


def _stats_of(path: Path) -> dict[str, os.stat_result]:
    """Relative POSIX path -> ``lstat`` of every file under ``path``, but the top-level
    marker."""
    out = {}
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = Path(root) / name
            rel = full.relative_to(path).as_posix()
            if rel != MARKER:
                out[rel] = full.lstat()
    return out


#: directories verified in this process, by absolute path: what their files' sizes, times
#: and inodes were then (and the marker's text); unchanged, they are not hashed again
_VERIFIED: dict[str, tuple[Any, ...]] = {}
_VERIFIED_MAX = 64


def _fingerprint(path: Path) -> tuple[Any, ...]:
    stats = _stats_of(path)
    try:
        marker_text = (path / MARKER).read_bytes()
    except OSError:
        marker_text = b""
    files = tuple((r, s.st_size, s.st_mtime_ns, s.st_ino) for r, s in sorted(stats.items()))
    return (marker_text, files)


def directory_checksums(path: str | os.PathLike[str]) -> dict[str, list[Any]]:
    """``[size, sha256]`` of every file under directory ``path`` (but the marker), by
    relative POSIX path; what ``replace_directory(checksums=True)`` records.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("hi")
    >>> directory_checksums(d)["a.txt"][0]
    2
    """
    path = Path(path)
    return {rel: [size, sha256_of(path / rel)] for rel, size in _files_of(path).items()}


def _few(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def verify_directory(
    path: str | os.PathLike[str], *, kind: str, remember: bool = False
) -> dict[str, Any]:
    """Check a directory output against the sizes and checksums recorded in its marker.

    Parameters
    ----------
    path : path-like
        A directory written by :func:`replace_directory` with ``checksums=True``.
    kind : str
        The kind of output expected there.
    remember : bool, default False
        Remember the directory, once found intact, for the rest of the process, and skip
        the hashing when it is verified again with ``remember=True`` and no file changed
        (see Notes): for the world's cache, verified at every use. By default every file
        is hashed.

    Returns
    -------
    dict
        The marker.

    Raises
    ------
    CorruptedOutputError
        The marker is missing (the writer never finished, or xfuxi did not write it), of
        another kind or without checksums; or a file is missing, unexpected, of another size
        (truncated) or of other content. The message names the directory and the files.

    Notes
    -----
    With ``remember``, a directory found intact is remembered for the rest of the process:
    verified again (with ``remember``), its files are hashed again only if one of them (or
    the marker) changed size, modification time or inode since, or had been modified in
    the two seconds before it was verified (a later change could keep the same time). A
    change that keeps a file's size, time and inode (a tool restoring the time) is not
    seen then: call without ``remember`` to hash everything.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "result"
    >>> _ = replace_directory(out, lambda d: (d / "x.txt").write_text("1"), kind="demo",
    ...                       checksums=True)
    >>> verify_directory(out, kind="demo")["files"]["x.txt"][0]
    1
    >>> _ = (out / "x.txt").write_text("2")
    >>> verify_directory(out, kind="demo")
    Traceback (most recent call last):
    ...
    xfuxi.files.CorruptedOutputError: ... is damaged: files of other content: x.txt
    """
    path = Path(path)
    marker = read_marker(path)
    if marker is None:
        raise CorruptedOutputError(
            f"{path} has no xfuxi marker ({MARKER}): its writer did not finish, or xfuxi did "
            "not write it"
        )
    if marker.get("kind") != kind:
        raise CorruptedOutputError(
            f"{path} holds an xfuxi {marker.get('kind')!r} output, not a {kind!r} one"
        )
    files = marker.get("files")
    if not isinstance(files, dict):
        raise CorruptedOutputError(f"{path}: its marker records no checksums to verify it with")
    key = str(path.resolve())
    before = _fingerprint(path) if remember else None
    if remember and _VERIFIED.get(key) == before:  # verified here, not a file changed since
        return marker
    found = _files_of(path)
    problems = []
    missing = sorted(set(files) - set(found))
    extra = sorted(set(found) - set(files))
    sized = [r for r in sorted(set(files) & set(found)) if found[r] != files[r][0]]
    if missing:
        problems.append(f"missing files: {_few(missing)}")
    if sized:
        problems.append(f"files of another size (truncated?): {_few(sized)}")
    if extra:
        problems.append(f"files it did not hold: {_few(extra)}")
    if not problems:
        changed = [r for r in sorted(files) if sha256_of(path / r) != files[r][1]]
        if changed:
            problems.append(f"files of other content: {_few(changed)}")
    if problems:
        _VERIFIED.pop(key, None)
        raise CorruptedOutputError(f"{path} is damaged: {'; '.join(problems)}")
    # remembered unless a file changed while it was hashed, or changed so recently that a
    # change within the file system's clock tick would keep its time ("racy" as in git)
    recent = time.time_ns() - 2_000_000_000
    if (
        before is not None
        and _fingerprint(path) == before
        and all(f[2] < recent for f in before[1])
    ):
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.pop(next(iter(_VERIFIED)))
        _VERIFIED[key] = before
    return marker


def replace_directory(
    target: str | os.PathLike[str],
    write: Callable[[Path], None],
    *,
    kind: str,
    overwrite: bool = False,
    metadata: dict[str, Any] | None = None,
    keep_existing: bool = False,
    checksums: bool = False,
    adopt: Callable[[Path], bool] | None = None,
) -> Path:
    """Write a directory output atomically and mark it as xfuxi's.

    ``write(tmp)`` fills a fresh temporary directory beside ``target``; the marker
    :data:`MARKER` (``kind`` plus ``metadata``, and the checksums if asked) is written into
    it last, then the directory is renamed into place. An existing ``target`` is replaced
    only if it is empty or an xfuxi output of the same ``kind`` and ``overwrite`` is true;
    otherwise :class:`OutputExistsError` is raised before anything is written.

    Replacing takes two renames: the old output is moved aside into a hidden
    ``.<name>.<pid>@<host>.<random>.old`` directory, then the new one is renamed into place.
    A writer killed between the two leaves the old output there (and no output at
    ``target``); the next :func:`replace_directory` of ``target`` on this host puts it
    back before anything else, and removes the temporaries of ``target`` that writers now
    gone left (:func:`remove_stale_temporaries`, for this exact name only).

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
        For caches written by concurrent processes: if ``target`` appears while writing (or
        another writer's copy replaces it, or another writer moves it aside first), the
        first rename into place wins: a marked copy found there is kept and this one is
        discarded.
    checksums : bool
        Record ``[size, sha256]`` of every file in the marker (entry ``"files"``), for
        :func:`verify_directory`.
    adopt : callable, optional
        Recognises an earlier output of this kind written before the marker existed (see
        :func:`check_replaceable`).

    Returns
    -------
    pathlib.Path
        ``target``.

    Raises
    ------
    OutputExistsError
        ``target`` exists and may not be replaced; or, without ``keep_existing``, something
        appeared at ``target`` while this output was written (another run writing it at
        once): it is left as it is and this output is discarded.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "result"
    >>> _ = replace_directory(out, lambda d: (d / "x.txt").write_text("1"), kind="demo")
    >>> sorted(p.name for p in out.iterdir()), read_marker(out)["kind"]
    (['.xfuxi-output.json', 'x.txt'], 'demo')
    """
    target = Path(target).expanduser()
    # (first puts back an earlier output that a killed writer of it left aside)
    exists = check_replaceable(target, kind=kind, overwrite=overwrite, adopt=adopt)
    seen = _marker_identity(target) if exists else None
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = _temporary_prefix(target)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
    old = None
    try:
        os.chmod(tmp, _dir_mode())
        write(tmp)
        marker = {"kind": kind, **(metadata or {})}
        if checksums:
            marker["files"] = directory_checksums(tmp)
        atomic_write_json(tmp / MARKER, marker)
        if exists and keep_existing and _replaced_meanwhile(target, seen):
            return target  # another writer's copy replaced it meanwhile: keep that one
        if exists and _marker_identity(target) != seen:
            # something else is there now (another writer's output where an empty folder
            # was): it is moved aside only if it may be replaced
            check_replaceable(target, kind=kind, overwrite=overwrite, adopt=adopt)
        if exists:
            # move the old output aside (same filesystem: a rename), then the new one in
            old = Path(tempfile.mkdtemp(prefix=prefix, suffix=".old", dir=target.parent))
            try:
                os.replace(target, old / "previous")
            except FileNotFoundError:
                # another writer moved it aside first (it is replacing it too): nothing
                # to move aside; the first rename into place wins
                shutil.rmtree(old, ignore_errors=True)
                old = None
        try:
            os.replace(tmp, target)
        except BaseException as err:  # an interrupt here too: never lose the old output
            appeared = isinstance(err, OSError) and os.path.lexists(target)
            if appeared and keep_existing and read_marker(target) is not None:
                return target  # another writer's copy won the race: ours is discarded
            if old is not None:
                try:
                    os.replace(old / "previous", target)  # put the old output back
                except OSError:
                    if not appeared:
                        raise
                    # another writer's output took the place: the old one was to be
                    # replaced anyway (by both writers)
            if appeared:
                raise OutputExistsError(
                    f"{target} appeared while this output was being written (another run "
                    "writing the same output at once?); it is left as it is and this "
                    "output is discarded: choose another output path, or run again with "
                    "overwrite (--overwrite) to replace it"
                ) from err
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


def _marker_identity(target: Path) -> tuple[int, int, int] | None:
    """Device, inode and modification time of ``target``'s marker (None if it has none):
    what tells that another writer renamed its copy into place meanwhile."""
    try:
        st = os.stat(target / MARKER)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


def _replaced_meanwhile(target: Path, seen: tuple[int, int, int] | None) -> bool:
    """Whether a marked output other than the one checked (``seen``) is at ``target`` now."""
    now = _marker_identity(target)
    return now is not None and now != seen and read_marker(target) is not None


def _clear_stale_temporaries(target: Path) -> None:
    """Remove the temporaries of exactly ``target`` whose writer (a process of this host) is
    gone, putting back an output such a writer had moved aside (before a new write of it).
    Never fails the write: a temporary that cannot be removed is left (and logged)."""
    try:
        remove_stale_temporaries(target.parent, names=(target.name,), max_age_s=None)
    except OSError as err:
        log.warning("could not remove the stale temporaries of %s: %s", target, err)


def _pid_alive(pid: int) -> bool | None:
    """Whether process ``pid`` runs on this host (None where that cannot be told)."""
    if os.name != "posix":
        return None  # os.kill would terminate the process on Windows
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (another user's)
    return True


def _newest_change(path: Path) -> float:
    """The latest modification time of ``path`` or anything under it."""
    newest = path.lstat().st_mtime
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            try:
                newest = max(newest, (Path(root) / name).lstat().st_mtime)
            except OSError:
                continue  # removed meanwhile
    return newest


def set_aside(directory: str | os.PathLike[str]) -> dict[str, Path]:
    """The earlier outputs in ``directory`` that a replacement has moved aside, by the name of
    the output they were (its target is missing): :func:`replace_directory` renames the old
    output aside, then the new one into place, so between the two renames (or after a writer
    died there) the old one is the complete output of that name. For readers; nothing is
    changed (:func:`remove_stale_temporaries` puts them back).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / ".a.zarr.12@host.abcd1234.old" / "previous").mkdir(parents=True)
    >>> {name: path.name for name, path in set_aside(d).items()}
    {'a.zarr': 'previous'}
    """
    directory = Path(directory)
    out = {}
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return {}
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None or not entry.name.endswith(".old") or entry.is_symlink():
            continue
        previous = Path(entry.path) / "previous"
        if previous.is_dir() and not (directory / match["target"]).exists():
            out[match["target"]] = previous
    return out


def remove_stale_temporaries(
    directory: str | os.PathLike[str],
    *,
    prefixes: Sequence[str] = (),
    names: Sequence[str] = (),
    max_age_s: float | None = 3600.0,
) -> list[Path]:
    """Remove the temporary files and directories that killed writers left in ``directory``.

    Only entries named as this module names its temporaries
    (``.<target>.<pid>@<host>.<random>.tmp`` or ``.old``, or the older
    ``.<target>.<random>.tmp``) whose target name starts with one of ``prefixes`` or is one
    of ``names`` are considered, and one of them is removed only if it is stale: its
    writer's process is gone (same host), or, where that cannot be told (another host, no
    process id recorded), nothing in it has changed for ``max_age_s`` seconds (never, with
    ``max_age_s=None``). Anything else, and anything whose
    writer still runs, is kept. A stale ``.old`` directory whose target is missing holds the
    only copy of an output that :func:`replace_directory` was replacing when its writer was
    killed (between its two renames): the output is moved back to its place, not removed.

    Parameters
    ----------
    directory : path-like
        A directory that xfuxi writes into (a cache directory); not searched recursively.
    prefixes : sequence of str
        Starts of the names of the outputs whose temporaries may be removed (e.g.
        ``("held_suarez-",)``).
    names : sequence of str
        Exact names of the outputs whose temporaries may be removed (``("fc.zarr",)``: not
        those of ``fc.zarr.bak``). At least one of ``prefixes`` and ``names`` is needed.
    max_age_s : float or None, default 3600
        Age after which a temporary of an unknown writer is stale; None: never.

    Returns
    -------
    list of pathlib.Path
        What was removed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> old = d / ".cache-a.zarr.abcd1234.tmp"  # an older writer's, no pid: judged by age
    >>> old.mkdir()
    >>> os.utime(old, (0, 0))
    >>> (d / ".cache-b.zarr.abcd1234.tmp").mkdir()  # as old, but recently changed: kept
    >>> remove_stale_temporaries(d, prefixes=("cache-",)) == [old]
    True
    """
    for what, value in (("prefixes", prefixes), ("names", names)):
        if isinstance(value, str) or not all(value):
            raise ValueError(f"{what} must be a sequence of non-empty names; got {value!r}")
    if not prefixes and not names:
        raise ValueError("give the prefixes or the names of the outputs to clean up after")
    exact = set(names)
    directory = Path(directory)
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    host = socket.gethostname()
    removed = []
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None or not (
            match["target"] in exact or (prefixes and match["target"].startswith(tuple(prefixes)))
        ):
            continue
        if entry.is_symlink():
            continue
        path = Path(entry.path)
        alive = _pid_alive(int(match["pid"])) if match["pid"] and match["host"] == host else None
        try:
            if alive is not None:
                stale = not alive
            else:
                stale = max_age_s is not None and time.time() - _newest_change(path) > max_age_s
            if not stale:
                continue
            target, previous = directory / match["target"], path / "previous"
            if entry.name.endswith(".old") and previous.is_dir() and not target.exists():
                os.replace(previous, target)  # the writer died between its two renames
                log.warning("restored %s, which an interrupted replacement left aside", target)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue  # removed by another process meanwhile
        removed.append(path)
    return removed
