"""xfuxi.files: atomic writes and the rule that xfuxi replaces only its own outputs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from xfuxi.files import (
    MARKER,
    CorruptedOutputError,
    OutputExistsError,
    atomic_write_bytes,
    atomic_write_file,
    check_replaceable,
    directory_checksums,
    read_marker,
    remove_stale_temporaries,
    replace_directory,
    sha256_of,
    verify_directory,
)


def _write(text):
    return lambda d: (d / "data.txt").write_text(text)


def test_atomic_write_gives_usual_mode_and_leaves_no_temporary(tmp_path):
    p = atomic_write_bytes(tmp_path / "f.bin", b"abc")
    assert p.read_bytes() == b"abc"
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.bin"]


def test_new_directory_output_is_marked(tmp_path):
    out = replace_directory(tmp_path / "r", _write("1"), kind="forecast", metadata={"n": 3})
    assert (out / "data.txt").read_text() == "1"
    assert read_marker(out) == {"kind": "forecast", "n": 3}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r"]


def test_foreign_directory_is_never_touched(tmp_path):
    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "thesis.txt").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(OutputExistsError, match="not an xfuxi output"):
            replace_directory(precious, _write("x"), kind="forecast", overwrite=overwrite)
    assert (precious / "thesis.txt").read_text() == "precious"
    assert sorted(x.name for x in precious.iterdir()) == ["thesis.txt"]


def test_plain_file_is_never_replaced(tmp_path):
    f = tmp_path / "out.zarr"
    f.write_text("mine")
    with pytest.raises(OutputExistsError, match="not a directory"):
        replace_directory(f, _write("x"), kind="forecast", overwrite=True)
    assert f.read_text() == "mine"


def test_own_output_replaced_only_when_asked_and_of_same_kind(tmp_path):
    out = replace_directory(tmp_path / "r", _write("old"), kind="forecast")
    with pytest.raises(OutputExistsError, match="overwrite"):
        replace_directory(out, _write("new"), kind="forecast")
    with pytest.raises(OutputExistsError, match="'forecast' output, not a 'ensemble'"):
        replace_directory(out, _write("new"), kind="ensemble", overwrite=True)
    assert (out / "data.txt").read_text() == "old"
    replace_directory(out, _write("new"), kind="forecast", overwrite=True)
    assert (out / "data.txt").read_text() == "new"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r"]


def test_failed_write_keeps_previous_output_and_no_leftovers(tmp_path):
    out = replace_directory(tmp_path / "r", _write("old"), kind="forecast")

    def boom(d):
        (d / "data.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        replace_directory(out, boom, kind="forecast", overwrite=True)
    assert (out / "data.txt").read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r"]


def test_empty_directory_may_be_filled(tmp_path):
    (tmp_path / "r").mkdir()
    replace_directory(tmp_path / "r", _write("1"), kind="forecast")
    assert (tmp_path / "r" / MARKER).is_file()


# --- checksums and verification (issue 20, item 4) ---------------------------------------------


def _store(d):
    (d / "a").mkdir()
    (d / "a" / "0").write_bytes(b"chunk zero")
    (d / "a" / "1").write_bytes(b"chunk one")
    (d / ".zattrs").write_text("{}")


def test_checksums_are_recorded_and_verified(tmp_path):
    out = replace_directory(tmp_path / "s", _store, kind="cache", checksums=True)
    marker = verify_directory(out, kind="cache")
    assert sorted(marker["files"]) == [".zattrs", "a/0", "a/1"]
    assert marker["files"]["a/0"] == [10, sha256_of(out / "a" / "0")]
    assert directory_checksums(out) == marker["files"]


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: (d / "a" / "1").unlink(), r"missing files: a/1"),
        (lambda d: (d / "a" / "0").write_bytes(b"chunk"), r"another size \(truncated\?\): a/0"),
        (lambda d: (d / "a" / "0").write_bytes(b"chunk ZERO"), r"other content: a/0"),
        (lambda d: (d / "a" / "2").write_bytes(b"new"), r"files it did not hold: a/2"),
        (lambda d: (d / MARKER).unlink(), r"no xfuxi marker"),
    ],
)
def test_damage_is_named(tmp_path, damage, match):
    out = replace_directory(tmp_path / "s", _store, kind="cache", checksums=True)
    damage(out)
    with pytest.raises(CorruptedOutputError, match=match) as info:
        verify_directory(out, kind="cache")
    assert str(out) in str(info.value)


def test_verification_needs_checksums_and_the_kind(tmp_path):
    out = replace_directory(tmp_path / "s", _store, kind="cache")
    with pytest.raises(CorruptedOutputError, match="no checksums"):
        verify_directory(out, kind="cache")
    with pytest.raises(CorruptedOutputError, match="not a 'forecast' one"):
        verify_directory(out, kind="forecast")


def test_adopt_recognises_an_unmarked_earlier_output(tmp_path):
    old = tmp_path / "s"
    old.mkdir()
    (old / "data.txt").write_text("old")
    with pytest.raises(OutputExistsError, match="not an xfuxi output"):
        replace_directory(old, _write("new"), kind="cache", overwrite=True, adopt=lambda p: False)
    assert (old / "data.txt").read_text() == "old"
    with pytest.raises(OutputExistsError, match="overwrite"):
        check_replaceable(old, kind="cache", adopt=lambda p: True)
    replace_directory(old, _write("new"), kind="cache", overwrite=True, adopt=lambda p: True)
    assert (old / "data.txt").read_text() == "new" and read_marker(old)["kind"] == "cache"


def test_atomic_write_file_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "w.nc"
    target.write_text("before")

    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write_file(target, boom)
    assert target.read_text() == "before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.nc"]


# --- stale temporaries -------------------------------------------------------------------------


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    host = socket.gethostname()
    old = 1_000_000.0  # 1970: long unchanged
    names = {
        # killed writer on this host: its process is gone
        "dead": f".held_suarez-T21-abc.zarr.{_dead_pid()}@{host}.abcd1234.tmp",
        # a writer that still runs (this process), even if unchanged for long
        "alive": f".held_suarez-T21-abc.zarr.{os.getpid()}@{host}.abcd1234.tmp",
        # written by an older xfuxi (no pid): by age
        "legacy_old": ".held_suarez-T21-abc.zarr.k2j3h4g5.tmp",
        "legacy_fresh": ".held_suarez-T21-def.zarr.k2j3h4g5.tmp",
        # another host: by age
        "remote_old": ".tracer_anomalies-T21-abc.zarr.123@elsewhere.abcd1234.old",
        "remote_fresh": ".tracer_anomalies-T21-abc.zarr.123@elsewhere.abcd1235.tmp",
        # not xfuxi's, or not a cache store's
        "foreign": ".my-notes.k2j3h4g5.tmp",
        "other_output": f".forecast.zarr.{_dead_pid()}@{host}.abcd1234.tmp",
        "store": "held_suarez-T21-abc.zarr",
    }
    for key, name in names.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "x").write_text(key)
        if key != "legacy_fresh" and key != "remote_fresh":
            for p in (tmp_path / name / "x", tmp_path / name):
                os.utime(p, (old, old))
    (tmp_path / ".held_suarez-link.zarr.k2j3h4g5.tmp").symlink_to(tmp_path / names["store"])
    removed = remove_stale_temporaries(tmp_path, prefixes=("held_suarez-", "tracer_anomalies-"))
    gone = {"dead", "legacy_old", "remote_old"}
    assert sorted(p.name for p in removed) == sorted(names[k] for k in gone)
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {n for k, n in names.items() if k not in gone} | {
        ".held_suarez-link.zarr.k2j3h4g5.tmp"
    }
    assert (tmp_path / names["store"] / "x").read_text() == "store"


def test_stale_temporaries_need_prefixes(tmp_path):
    with pytest.raises(ValueError, match="prefixes"):
        remove_stale_temporaries(tmp_path, prefixes=())
    with pytest.raises(ValueError, match="prefixes"):
        remove_stale_temporaries(tmp_path, prefixes="held_suarez-")
    assert remove_stale_temporaries(tmp_path / "absent", prefixes=("x",)) == []


def test_temporaries_of_replace_directory_name_their_writer(tmp_path):
    seen = []
    replace_directory(tmp_path / "r", lambda d: seen.append(d.name), kind="demo")
    assert seen[0].startswith(f".r.{os.getpid()}@{socket.gethostname()}.")
    assert seen[0].endswith(".tmp")


def test_a_home_relative_path_is_expanded(tmp_path, monkeypatch):
    # "~/out" made a directory named "~" in the working directory, then failed
    from xfuxi.files import atomic_write_bytes, replace_directory

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    out = replace_directory("~/out", lambda d: (d / "x.txt").write_text("1"), kind="demo")
    assert out == home / "out" and (home / "out" / "x.txt").read_text() == "1"
    assert atomic_write_bytes("~/f.bin", b"1") == home / "f.bin"
    assert list(cwd.iterdir()) == []


# --- concurrent and killed writers (audit 58) --------------------------------------------------


def _cache(tmp_path, text="damaged"):
    """A marked cache store at ``tmp_path / "c.zarr"`` (the caller judged it damaged)."""
    return replace_directory(tmp_path / "c.zarr", _write(text), kind="world-cache", checksums=True)


@pytest.mark.parametrize("other_renames_in", [False, True])
def test_a_cache_moved_aside_by_another_writer_first_is_no_crash(
    tmp_path, monkeypatch, other_renames_in
):
    """Two processes regenerating one damaged cache store: both judged it replaceable; the
    other moved it aside first (and, maybe, renamed its copy in before our rename). Our move
    aside found nothing: it raised FileNotFoundError; now the first rename wins."""
    target = _cache(tmp_path)
    real_replace = os.replace

    def other_moves_it_aside(tmp):  # while we write, the other writer moves it aside
        real_replace(target, tmp_path / "other-aside")
        (tmp / "data.txt").write_text("ours")

    def replace(src, dst):
        if other_renames_in and os.fspath(dst) == os.fspath(target) and not landed:
            landed.append(True)  # the other writer's copy lands just before ours
            replace_directory(target, _write("theirs"), kind="world-cache", checksums=True)
        return real_replace(src, dst)

    landed = []

    monkeypatch.setattr(os, "replace", replace)
    out = replace_directory(
        target, other_moves_it_aside, kind="world-cache", overwrite=True, keep_existing=True,
        checksums=True,
    )  # fmt: skip
    monkeypatch.undo()
    assert out == target
    assert (target / "data.txt").read_text() == ("theirs" if other_renames_in else "ours")
    verify_directory(target, kind="world-cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr", "other-aside"]


def test_a_cache_another_writer_replaced_meanwhile_is_kept(tmp_path):
    """The other writer replaced the damaged store with its complete copy while we wrote:
    that copy is kept (not moved aside for ours)."""
    target = _cache(tmp_path)

    def write(tmp):
        replace_directory(
            target, _write("theirs"), kind="world-cache", overwrite=True, keep_existing=True
        )
        (tmp / "data.txt").write_text("ours")

    replace_directory(target, write, kind="world-cache", overwrite=True, keep_existing=True)
    assert (target / "data.txt").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr"]


def test_an_output_that_appears_while_written_is_named(tmp_path):
    """Two `xfuxi forecast --output same.zarr` to a new path: the loser got a raw
    ``OSError: [Errno 39] Directory not empty``; now an OutputExistsError, and the winner's
    output is left whole."""
    target = tmp_path / "same.zarr"

    def write(tmp):
        replace_directory(target, _write("winner"), kind="forecast")  # the other run
        (tmp / "data.txt").write_text("loser")

    with pytest.raises(OutputExistsError, match="appeared while this output was being written"):
        replace_directory(target, write, kind="forecast")
    assert (target / "data.txt").read_text() == "winner"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.zarr"]
    # so too when the loser was replacing an earlier output (--overwrite)
    replace_directory(target, _write("old"), kind="forecast", overwrite=True)

    def write_over(tmp):
        (tmp / "data.txt").write_text("loser")

    real_replace = os.replace

    def replace(src, dst):
        if os.fspath(dst) == os.fspath(target) and not landed:
            landed.append(True)  # after our move aside, the other run's output lands
            replace_directory(target, _write("winner 2"), kind="forecast")
        return real_replace(src, dst)

    landed = []

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", replace)
        with pytest.raises(OutputExistsError, match="appeared"):
            replace_directory(target, write_over, kind="forecast", overwrite=True)
    assert (target / "data.txt").read_text() == "winner 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.zarr"]


def test_an_output_put_in_place_of_an_empty_folder_meanwhile_is_not_moved_aside(tmp_path):
    target = tmp_path / "out"
    target.mkdir()  # empty: may be filled

    def write(tmp):
        replace_directory(target, _write("other"), kind="forecast")  # another run, first
        (tmp / "data.txt").write_text("mine")

    with pytest.raises(OutputExistsError, match="earlier xfuxi"):
        replace_directory(target, write, kind="forecast")
    assert (target / "data.txt").read_text() == "other"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _killed_between_renames(tmp_path, name="out.zarr", text="previous"):
    """What a writer of ``name`` killed between its two renames left: no output, the previous
    one in its hidden ``.old`` folder, and its complete new copy in its ``.tmp`` one."""
    host, dead = socket.gethostname(), _dead_pid()
    aside = tmp_path / f".{name}.{dead}@{host}.abcd1234.old"
    aside.mkdir()
    replace_directory(aside / "previous", _write(text), kind="forecast")
    new = tmp_path / f".{name}.{dead}@{host}.efgh5678.tmp"
    new.mkdir()
    (new / "data.txt").write_text("complete but never renamed")
    return aside, new


def test_a_writer_killed_between_the_two_renames_is_repaired_by_the_next_write(tmp_path):
    """The next write of the output puts the previous output back first (then refuses to
    replace it without overwrite, as it would have), and removes the dead writer's
    temporaries; those of another output whose name starts the same are kept."""
    _killed_between_renames(tmp_path)
    others = _killed_between_renames(tmp_path, name="out.zarr.bak")
    live = tmp_path / f".out.zarr.{os.getpid()}@{socket.gethostname()}.live1234.tmp"
    live.mkdir()  # a writer that still runs
    with pytest.raises(OutputExistsError, match="earlier xfuxi 'forecast' output"):
        replace_directory(tmp_path / "out.zarr", _write("new"), kind="forecast")
    assert (tmp_path / "out.zarr" / "data.txt").read_text() == "previous"
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"out.zarr", live.name, *(p.name for p in others)}
    replace_directory(tmp_path / "out.zarr", _write("new"), kind="forecast", overwrite=True)
    assert (tmp_path / "out.zarr" / "data.txt").read_text() == "new"
    assert {p.name for p in tmp_path.iterdir()} == left


def test_atomic_write_file_removes_the_stale_temporaries_of_its_file(tmp_path):
    host = socket.gethostname()
    stale = tmp_path / f".a.json.{_dead_pid()}@{host}.abcd1234.tmp"
    stale.write_text("half")
    other = tmp_path / f".a.json.bak.{_dead_pid()}@{host}.abcd1234.tmp"
    other.write_text("half")
    remote = tmp_path / ".a.json.123@elsewhere.abcd1234.tmp"  # cannot be told: kept
    remote.write_text("half")
    os.utime(remote, (1_000_000.0, 1_000_000.0))
    atomic_write_bytes(tmp_path / "a.json", b"{}")
    assert {p.name for p in tmp_path.iterdir()} == {"a.json", other.name, remote.name}


def test_stale_temporaries_by_exact_name(tmp_path):
    host = socket.gethostname()
    mine = tmp_path / f".fc.zarr.{_dead_pid()}@{host}.abcd1234.tmp"
    longer = tmp_path / f".fc.zarr2.{_dead_pid()}@{host}.abcd1234.tmp"
    for p in (mine, longer):
        p.mkdir()
    assert remove_stale_temporaries(tmp_path, names=("fc.zarr",)) == [mine]
    assert longer.exists()
    with pytest.raises(ValueError, match="names"):
        remove_stale_temporaries(tmp_path, names="fc.zarr")


def test_a_lock_is_held_once_and_names_its_holder(tmp_path, monkeypatch):
    from xfuxi.files import OutputInUseError, lock_output

    path = tmp_path / ".lock"
    held = lock_output(path, what="the store s")
    assert held.locked
    with pytest.raises(OutputInUseError, match=rf"process {os.getpid()}@.*the store s"):
        lock_output(path, what="the store s")
    held.release()
    with lock_output(path, what="the store s") as again:
        assert again.locked and again.holds(path)
    assert path.read_text() == ""  # released: it names no holder that has gone
    # a file system without flock (NFS without lockd, Lustre noflock): not locked, with a
    # warning; it was refused as in use by a process long gone
    import errno
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    import xfuxi.files as files_module

    warned = []  # the module's logger, whatever another test made of the logging set-up
    monkeypatch.setattr(files_module.log, "warning", lambda msg, *a: warned.append(msg % a))
    monkeypatch.setattr(fcntl, "flock", no_flock)
    lock = lock_output(path, what="the store s")
    assert not lock.locked and any("the store s is not locked" in w for w in warned), warned
    monkeypatch.undo()
    # where there is no fcntl (Windows), no lock: nothing is refused
    monkeypatch.setitem(sys.modules, "fcntl", None)
    a, b = lock_output(path, what="s"), lock_output(path, what="s")
    assert not a.locked and not b.locked


def test_the_check_before_the_work_puts_the_previous_output_back(tmp_path):
    """`xfuxi forecast` checks its output path before the forecast runs: a refusal there
    costs nothing, also after a writer was killed between the two renames."""
    _killed_between_renames(tmp_path)
    with pytest.raises(OutputExistsError, match="earlier xfuxi 'forecast' output"):
        check_replaceable(tmp_path / "out.zarr", kind="forecast")
    assert (tmp_path / "out.zarr" / "data.txt").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


def test_a_file_that_appears_while_writing_is_not_replaced(tmp_path):
    """The path was checked before the write and replaced unconditionally after it: a
    user's file saved there meanwhile, or another run's output, was overwritten, and both
    writers returned as if their output were there."""
    target = tmp_path / "fc.nc"

    def write_while_a_user_saves(tmp):
        tmp.write_text("ours")
        target.write_text("precious thesis data")  # saved while the output is written

    with pytest.raises(OutputExistsError, match="appeared while this output was written"):
        atomic_write_file(target, write_while_a_user_saves)
    assert target.read_text() == "precious thesis data"
    # the caller found nothing, but a file is there by the time the write begins
    with pytest.raises(OutputExistsError, match="appeared since it was checked"):
        atomic_write_file(target, lambda tmp: tmp.write_text("ours"), replacing=False)
    assert target.read_text() == "precious thesis data"
    # a file that may be replaced, changed by someone else during the write: kept
    own = tmp_path / "own.nc"
    own.write_text("an earlier output")

    def write_while_another_run_writes(tmp):
        tmp.write_text("ours")
        own.write_text("another run's output, written meanwhile")

    with pytest.raises(OutputExistsError, match="changed while this output was written"):
        atomic_write_file(own, write_while_another_run_writes, replacing=True)
    assert own.read_text() == "another run's output, written meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc.nc", "own.nc"]  # no temporary
    # undisturbed: written, and replaced
    assert atomic_write_file(tmp_path / "new.txt", lambda t: t.write_text("a")).read_text() == "a"
    assert atomic_write_file(own, lambda t: t.write_text("b"), replacing=True).read_text() == "b"


def test_write_netcdf_does_not_replace_a_file_saved_during_the_write(tmp_path, monkeypatch):
    import numpy as np
    import xarray as xr

    import xfuxi

    target = tmp_path / "fc.nc"
    real = xr.Dataset.to_netcdf

    def slow_to_netcdf(self, path=None, *args, **kwargs):
        out = real(self, path, *args, **kwargs)
        target.write_text("precious thesis data")  # a user saves meanwhile
        return out

    monkeypatch.setattr(xr.Dataset, "to_netcdf", slow_to_netcdf)
    ds = xr.Dataset(
        {"temperature": (("latitude", "longitude"), np.full((2, 4), 250.0), {"units": "K"})},
        coords={"latitude": [-45.0, 45.0], "longitude": [0.0, 90, 180, 270]},
    )
    with pytest.raises(OutputExistsError):
        xfuxi.write_netcdf(ds, target)
    assert target.read_text() == "precious thesis data"


@pytest.fixture
def python_sigint():
    """Python's own Ctrl-C handler for the test: a process started in the background by a
    non-interactive shell (``cmd &``, nohup) has SIGINT ignored, and xfuxi then leaves it
    so (the tests below failed with 'DID NOT RAISE' there)."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_while_writing_netcdf_stops_after_the_file(tmp_path, monkeypatch, python_sigint):
    """A KeyboardInterrupt raised inside xarray's netCDF writer while it held its file lock
    left the process waiting on that lock for ever: Ctrl-C is held until the file is
    closed, then raised; nothing is published and no temporary is left."""
    import signal

    import numpy as np
    import xarray as xr

    from xfuxi.files import atomic_write_netcdf

    real = xr.Dataset.to_netcdf
    finished = []

    def interrupted(self, path=None, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the write
        out = real(self, path, *args, **kwargs)
        finished.append(path)  # the writer got to close its file
        return out

    monkeypatch.setattr(xr.Dataset, "to_netcdf", interrupted)
    ds = xr.Dataset({"x": ("i", np.arange(3.0))})
    with pytest.raises(KeyboardInterrupt):
        atomic_write_netcdf(ds, tmp_path / "a.nc", writer="me")
    assert len(finished) == 1  # held until the file was closed, then raised
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_held_during_a_write_that_fails_is_not_lost(tmp_path, monkeypatch, python_sigint):
    import signal

    import numpy as np
    import xarray as xr

    from xfuxi.files import atomic_write_netcdf

    def interrupted_then_failing(self, path=None, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, held
        raise OSError("disk full")  # and the write fails

    monkeypatch.setattr(xr.Dataset, "to_netcdf", interrupted_then_failing)
    with pytest.raises(KeyboardInterrupt) as caught:
        atomic_write_netcdf(
            xr.Dataset({"x": ("i", np.arange(3.0))}), tmp_path / "a.nc", writer="me"
        )
    assert isinstance(caught.value.__cause__, OSError)
    assert list(tmp_path.iterdir()) == []


def test_saved_results_write_float16_variables_as_float32(tmp_path):
    """netCDF has no float16: a result of a float16 background failed to save with a raw
    netCDF4 TypeError (write_netcdf converted; result.save did not)."""
    import numpy as np
    import xarray as xr

    from xfuxi.assimilation.result import save_datasets

    half = xr.Dataset(
        {"temperature": ("x", np.array([250.5, 260.25], dtype="float16"))},
        coords={"x": [0, 1], "height": ("x", np.array([0.5, 1.0], dtype="float16"))},
    )
    out = save_datasets({"analysis": half}, tmp_path / "res", kind="assimilation")
    back = xr.open_dataset(out / "analysis.nc").load()
    assert back["temperature"].dtype == np.float32 and back["height"].dtype == np.float32
    np.testing.assert_array_equal(back["temperature"], half["temperature"].astype("float32"))
    assert half["temperature"].dtype == np.float16  # the input is not changed


def test_open_result_refuses_what_is_not_a_whole_saved_analysis(tmp_path):
    """open_result reads the kind from the marker: another output names its reader, a
    directory xfuxi did not write or a saved analysis missing a file is refused."""
    import numpy as np
    import pytest
    import xarray as xr

    import xfuxi
    from xfuxi.assimilation.result import En4DVarResult, save_datasets

    ds = xr.Dataset({"x": ("time", [1.0])}, coords={"time": [np.datetime64("2000-01-01")]})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        xfuxi.open_result(tmp_path / "nothing")
    (tmp_path / "mine").mkdir()
    with pytest.raises(ValueError, match="not an analysis saved by xfuxi"):
        xfuxi.open_result(tmp_path / "mine")
    other = save_datasets({"forecast": ds}, tmp_path / "fc", kind="forecast")
    with pytest.raises(ValueError, match=r"kind 'forecast'.*xarray.open_dataset"):
        xfuxi.open_result(other)
    out = En4DVarResult(ds, ds, ds, ds).save(tmp_path / "res")
    (out / "trajectory.nc").unlink()
    with pytest.raises(FileNotFoundError, match="without trajectory.nc"):
        xfuxi.open_result(out)


def test_a_directory_verified_once_is_hashed_again_only_when_a_file_changed(tmp_path, monkeypatch):
    """The world's cache was hashed whole on every held_suarez_split call (0.2-0.7 s each);
    a directory found intact is remembered while its files' sizes, times and inodes hold."""
    import os

    import pytest

    from xfuxi import files

    out = files.replace_directory(
        tmp_path / "store", lambda d: (d / "x.bin").write_bytes(b"12345"), kind="demo",
        checksums=True,
    )  # fmt: skip
    old = 1_000_000_000  # 2001: long before the two seconds of a file system's clock tick
    for p in (out / "x.bin", out / files.MARKER):
        os.utime(p, (old, old))
    hashed = []
    real = files.sha256_of
    monkeypatch.setattr(files, "sha256_of", lambda p: hashed.append(p) or real(p))
    files.verify_directory(out, kind="demo", remember=True)
    files.verify_directory(out, kind="demo", remember=True)
    assert len(hashed) == 1  # the second time, nothing was read
    (out / "x.bin").write_bytes(b"54321")  # the same size, another time: hashed again
    with pytest.raises(files.CorruptedOutputError, match="other content: x.bin"):
        files.verify_directory(out, kind="demo", remember=True)
    assert len(hashed) == 2
    (out / "x.bin").write_bytes(b"12345")  # just written: verified, but not remembered
    files.verify_directory(out, kind="demo", remember=True)
    files.verify_directory(out, kind="demo", remember=True)
    assert len(hashed) == 4
    for p in (out / "x.bin", out / files.MARKER):
        os.utime(p, (old, old))
    files.verify_directory(out, kind="demo", remember=True)
    files.verify_directory(out, kind="demo")  # without remember: every file hashed
    assert len(hashed) == 6


def test_overwrite_must_be_true_or_false(tmp_path):
    """overwrite="no" (a truthy string) replaced an earlier output."""
    import numpy as np
    import pytest
    import xarray as xr

    import xfuxi

    ds = xr.Dataset(
        {"temperature": (("latitude", "longitude"), np.full((2, 4), 250.0))},
        coords={"latitude": [-45.0, 45.0], "longitude": [0.0, 90.0, 180.0, 270.0]},
    )
    xfuxi.write_netcdf(ds, tmp_path / "a.nc")
    before = (tmp_path / "a.nc").read_bytes()
    for value in ("no", 1, None):
        with pytest.raises(TypeError, match="overwrite must be True or False"):
            xfuxi.write_netcdf(ds + 1.0, tmp_path / "a.nc", overwrite=value)
        with pytest.raises(TypeError, match="overwrite must be True or False"):
            xfuxi.write_weatherbench2(ds, tmp_path / "s.zarr", overwrite=value)
    assert (tmp_path / "a.nc").read_bytes() == before
    xfuxi.write_netcdf(ds + 1.0, tmp_path / "a.nc", overwrite=np.True_)  # NumPy's True too
