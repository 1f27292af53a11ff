"""Findings of the CLI audit 62: the demo with one initial time, the output checked before
any work (a user's folder for train-da, an unwritable place), no stray log lines, the
``--help`` texts, flags a split or the imager would have dropped or accepted silently."""

from __future__ import annotations

import argparse
import logging
import os
import tempfile

import numpy as np
import pytest

import xfuxi
import xfuxi.cli.assimilate as cli_assimilate
import xfuxi.cli.forecast as cli_forecast
import xfuxi.cli.train as cli_train
import xfuxi.cli.world as cli_world
from tests import tiny_da
from tests.test_cli_refusals import _never, _status
from xfuxi import demo
from xfuxi.cli import _command_logging
from xfuxi.cli.common import COMMANDS, check_output_outside
from xfuxi.demo import DemoResult, run_demo, stage_assimilation
from xfuxi.training.config import TrainConfig


@pytest.fixture
def no_work(monkeypatch):
    """Every expensive step of the commands tested here fails the test if it is reached."""
    from xfuxi.training import da as training_da
    from xfuxi.world import simulator

    monkeypatch.setattr(simulator, "_chunks", _never("the world was run"))
    monkeypatch.setattr(cli_world, "held_suarez", _never("the world was read"))
    monkeypatch.setattr(cli_world, "held_suarez_split", _never("the world was read"))
    monkeypatch.setattr(cli_train, "world_split", _never("the world was read"))
    monkeypatch.setattr(cli_train, "load_model", _never("the model was loaded"))
    monkeypatch.setattr(cli_train, "_cycled_states", _never("the cycled states were read"))
    monkeypatch.setattr(training_da, "train_da", _never("the network was trained"))
    for module in (cli_assimilate, cli_forecast):
        monkeypatch.setattr(module, "load_model", _never("the model was loaded"))
        monkeypatch.setattr(module, "open_data", _never("the data were read"))


# --- finding 1: demo --n-init 1 --------------------------------------------------------


class _Started(Exception):
    """Raised by the stubbed forecast: the stage's background forecast was started."""


def test_demo_en4dvar_stage_starts_its_background_inside_the_truth(monkeypatch, tmp_path):
    """With one initial time (the test period's second time) the En4DVar stage started its
    background 36 hours before it, before the truth begins: a SchemaError after stages 1-3."""
    truth = tiny_da.truth(12)
    times = truth["time"].values
    started = []

    def forecast(data, *, init_times, **kwargs):
        started.extend(np.asarray(init_times, dtype="datetime64[ns]"))
        raise _Started

    monkeypatch.setattr(xfuxi, "forecast", forecast)
    for init in ([1], [1, 5], [0, 11]):
        started.clear()
        with pytest.raises(_Started):
            stage_assimilation(
                DemoResult(output_dir=tmp_path), {"truth": truth, "init_times": times[init]},
                model=None, n_sites=1, n_members=2,
            )  # fmt: skip
        (start,) = started
        step = np.timedelta64(6, "h")
        # the forecast's two input times (start - 6 h, start) lie in the truth
        assert start - step >= times[0] and start + 7 * step <= times[-1], init
    # where the middle initial time works, it is the one analysed (the demo's results)
    started.clear()
    with pytest.raises(_Started):
        stage_assimilation(
            DemoResult(output_dir=tmp_path), {"truth": truth, "init_times": times[[1, 8, 9]]},
            model=None, n_sites=1, n_members=2,
        )  # fmt: skip
    assert started == [times[8] - np.timedelta64(36, "h")]


def test_demo_refuses_times_its_later_stages_cannot_use_before_the_forecasts(monkeypatch, tmp_path):
    """With --n-init 1 no initial time has the truth 12 hours before it, as the FuXi-DA
    stage needs: refused after stage 1, not after the forecasts, ensemble and 4DVar."""
    truth = tiny_da.truth(12)
    base = {"truth": truth, "init_times": truth["time"].values[[1]]}
    monkeypatch.setattr(demo, "stage_baselines", lambda *a, **k: base)
    monkeypatch.setattr(demo, "stage_forecast", _never("the forecasts ran"))
    with pytest.raises(ValueError, match=r"raise n_init \(--n-init\).*--da-times 0"):
        run_demo(tmp_path / "out", n_init=1, n_times_da=8)
    assert not (tmp_path / "out").exists()
    with pytest.raises(AssertionError, match="the forecasts ran"):  # without stage 5: runs
        run_demo(tmp_path / "out", n_init=1, n_times_da=0)


# --- finding 2: train-da --out on a user's folder --------------------------------------


def test_train_da_refuses_a_user_folder_before_any_data(tmp_path, no_work, capsys):
    out = tmp_path / "userdir"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    assert _status(["train-da", "--steps", "1", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "holds 'mine.txt'" in err and "although" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


# --- finding 5: an unwritable output, found before the work ----------------------------


def _read_only_place() -> str | None:
    """/sys where nothing can be made in it (a read-only mount: for root too)."""
    try:
        fd, probe = tempfile.mkstemp(dir="/sys")
    except OSError:
        return "/sys"
    os.close(fd)
    os.unlink(probe)
    return None


@pytest.mark.skipif(_read_only_place() is None, reason="/sys is writable here")
@pytest.mark.parametrize(
    "argv, flag",
    [
        (["forecast", "in.nc", "--steps", "1", "--output", "/sys/fc.zarr"], "--output"),
        (["train-da", "--steps", "1", "--out", "/sys/da"], "--out"),
        (["world", "--days", "1", "--output", "/sys/w.zarr"], "--output"),
        (["world", "--days", "1", "--output", "/sys/deeper/w.nc"], "--output"),
    ],
)
def test_an_unwritable_output_is_refused_before_any_work(argv, flag, tmp_path, no_work,
                                                         monkeypatch, capsys):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.nc").write_text("stub")
    assert _status(argv) == 1
    err = capsys.readouterr().err
    output = argv[-1]
    assert f"{flag} {output} cannot be written: cannot write into /sys" in err, err
    assert ".tmp" not in err and "although" not in err and len(err.splitlines()) == 1, err


def test_the_writability_probe_is_made_where_the_output_goes_and_removed(tmp_path, monkeypatch):
    made = []
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):  # noqa: A002
        made.append(dir)
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    check_output_outside(str(tmp_path / "a" / "b" / "out.zarr"), [])
    assert made == [tmp_path] and not list(tmp_path.iterdir())  # the nearest existing folder

    def refused(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(PermissionError, match=r"--store x.zarr cannot be written: .*Read-only"):
        check_output_outside("x.zarr", [], flag="--store")


# --- finding 7: stray log lines and warnings -------------------------------------------


def test_the_cli_shows_xfuxi_info_lines_but_not_other_libraries(monkeypatch, capsys):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # no caller's logging (pytest's)
    root_level = logging.getLogger().level
    with _command_logging(0):
        logging.getLogger("jax._src.xla_bridge").info("Unable to initialize backend 'tpu'")
        # a logger of its own under "xfuxi": another test's logging set-up (dask's
        # dictConfig) may have disabled the existing ones in this process
        logging.getLogger(f"xfuxi.cli62_probe_{os.getpid()}").info("reading the world")
        logging.getLogger("numba").warning("a real warning")
    err = capsys.readouterr().err
    assert "reading the world" in err and "a real warning" in err
    assert "tpu" not in err, err
    assert logging.getLogger().level == root_level
    assert logging.getLogger("xfuxi").level == logging.NOTSET


def test_a_warmup_longer_than_the_run_is_one_clean_line(tmp_path, no_work, capsys):
    argv = ["train", "--steps", "1", "--out", str(tmp_path / "ckpt")]
    _status(argv)  # the cycled states are reached (stubbed): the flags were accepted
    err = capsys.readouterr().err
    assert "xfuxi train: warning: --warmup-steps 100 exceeds --steps 1" in err, err
    assert "UserWarning" not in err and "<string>" not in err


def test_the_warmup_warning_names_the_line_that_built_the_config():
    with pytest.warns(UserWarning, match="warmup_steps 100 exceeds steps 1") as caught:
        TrainConfig(steps=1)
    assert caught[0].filename == __file__


# --- finding 9: --help ----------------------------------------------------------------


def _help(name: str) -> dict[str, str]:
    """Flag → its help text, as ``xfuxi NAME --help`` shows it."""
    parser = argparse.ArgumentParser()
    COMMANDS[name][0](parser)
    return {f: a.help or "" for a in parser._actions for f in a.option_strings}


def test_top_level_help_is_plain_text(capsys):
    assert _status(["--help"]) == 0
    out = capsys.readouterr().out
    assert "The xfuxi command line: xfuxi demo, xfuxi world" in out and "``" not in out


def test_help_lists_the_presets_and_the_defaults():
    from xfuxi.models.fuxi import PRESETS

    preset = _help("train")["--preset"]
    assert all(name in preset for name in PRESETS), preset
    for name in ("imager", "fit-radiance-bias"):
        assert "(default 0)" in _help(name)["--seed"], name
    campaign = _help("campaign")
    for flag in ("--amplitude", "--chunk-size", "--dtype"):
        assert "default" in campaign[flag], (flag, campaign[flag])


# --- finding 10: flags a split would drop, longitudes out of range ---------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["world", "--split", "test", "--days", "1", "--seed", "5"],
         "--seed: --split test fixes the seed (3) and the start (2020-01-01); leave it out"),
        (["world", "--split", "train", "--start", "2001-01-01", "--seed", "0"],
         "--seed, --start: --split train fixes the seed (1)"),
        (["imager", "truth.nc", "--satellites", "400", "--output", "r"],
         "--satellites must be longitudes in [-180, 360) degrees east; got 400"),
        (["imager", "truth.nc", "--satellites", "105,-200", "--output", "r"], "got -200"),
        (["fit-radiance-bias", "truth.nc", "--satellites", "360", "--output", "r"], "got 360"),
        (["cycle", "truth.nc", "--store", "c.zarr", "--method", "fuxi-da",
          "--satellites", "nan"], "got nan"),
    ],
)  # fmt: skip
def test_flags_a_split_ignores_and_bad_longitudes_are_usage_errors(
    argv, message, tmp_path, no_work, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert _status(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.iterdir())


def test_the_split_and_the_imager_still_take_what_they_read(no_work, capsys):
    # --split alone, and longitudes east or west: past the checks, to the (stubbed) world
    assert _status(["world", "--split", "test", "--days", "1"]) == 1
    assert "the world was read" in capsys.readouterr().err
    assert cli_assimilate._longitudes("-180,0,105,359.5", "--satellites") == (
        -180.0, 0.0, 105.0, 359.5,
    )  # fmt: skip


# --- finding 11: the campaign store carries consolidated metadata ----------------------


def test_a_campaign_store_opens_without_the_consolidated_metadata_warning(tmp_path):
    import warnings

    import xarray as xr

    distributed = pytest.importorskip("distributed")
    from tests import tiny
    from xfuxi.campaigns import CampaignConfig, campaign

    path, _ = tiny.fuxi_checkpoint(tmp_path / "model")
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    with cluster, distributed.Client(cluster) as client:
        store = tmp_path / "fc.zarr"
        ds = tiny.dataset(4)
        campaign(ds, store, model=str(path), config=CampaignConfig(steps=2), client=client,
                 progress=False)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # "Failed to open Zarr store with ..."
        opened = xr.open_zarr(store)
    assert bool(opened["done"].all())  # the region writes kept the metadata true
    ref = xr.open_zarr(store, consolidated=False)
    xr.testing.assert_identical(opened.load(), ref.load())


# --- finding 3: a Ctrl-C on campaign interrupts the client, not every worker -----------


def _sigint_ignored() -> bool:
    import signal

    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_the_local_cluster_workers_ignore_a_ctrl_c_and_the_client_does_not():
    """The terminal sends SIGINT to the whole process group: each worker process of the
    campaign's local cluster printed a KeyboardInterrupt traceback before "interrupted"."""
    import signal

    pytest.importorskip("distributed")
    from xfuxi.campaigns import _connect

    before = signal.getsignal(signal.SIGINT)
    client, owned = _connect(None, 1, 30.0)
    try:
        assert owned
        assert set(client.run(_sigint_ignored).values()) == {True}
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    assert signal.getsignal(signal.SIGINT) == before  # this process: as it was
