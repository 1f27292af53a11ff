"""Tests of campaigns on dask.distributed (xfuxi.campaign, issue 26)."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tests import tiny

distributed = pytest.importorskip("distributed")

campaign_module = importlib.import_module("xfuxi.campaigns")
from xfuxi.campaigns import CampaignConfig, CampaignError, campaign, campaign_scorecard, completed  # noqa: E402
from xfuxi.forecasting.deterministic import forecast  # noqa: E402
from xfuxi.forecasting.ensemble import GaussianNoise, ensemble  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client():
    """Two single-threaded in-process workers (fast to start), reachable over TCP."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
        protocol="tcp", host="127.0.0.1",
    )  # fmt: skip
    cl = distributed.Client(cluster)
    yield cl
    cl.close()
    cluster.close()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path, fm = tiny.fuxi_checkpoint(tmp_path_factory.mktemp("model"))
    return str(path), fm


def _data(n: int = 6) -> xr.Dataset:
    return tiny.dataset(n)


def _marker_files(store: Path) -> int:
    """Chunk files of the ``done`` marker (cheap to poll; a file exists as soon as its write
    starts, so this can run ahead of :func:`completed` by one initial time)."""
    marker = Path(store) / "done"
    if not marker.exists():
        return 0
    return sum(1 for p in marker.rglob("*") if p.is_file() and not p.name.startswith(("zarr", ".")))


def _written_markers(store: Path) -> int:
    """Initial times marked done, read as :func:`completed` reads them (0 while the store or a
    marker is still being written: a chunk file exists before its bytes are in it)."""
    if not (Path(store) / "done").exists():
        return 0
    try:
        return int(completed(store).size)
    except Exception:  # noqa: BLE001 - a half-written chunk or metadata: not done yet
        return 0


def _loaded(store) -> xr.Dataset:
    with xr.open_zarr(store, consolidated=False) as ds:
        return ds.load()


def test_forecast_campaign_equals_one_forecast_per_initial_time(client, checkpoint, tmp_path):
    path, fm = checkpoint
    ds = _data()
    store = tmp_path / "fc.zarr"
    out = campaign(
        ds, store, model=path, config=CampaignConfig(steps=3), client=client, progress=False
    )
    assert out["temperature"].dims == (
        "time", "prediction_timedelta", "level", "latitude", "longitude",
    )  # fmt: skip
    assert out["temperature"].encoding["chunks"][0] == 1  # one chunk per initial time
    assert bool(out["done"].all())
    assert out.attrs["xfuxi_layout"] == "weatherbench2"  # xfuxi.data.writers' layout
    assert (store / ".zmetadata").is_file() and not (store / "zarr.json").exists()  # format 2
    assert out["level"].attrs["units"] == "hPa"
    np.testing.assert_array_equal(out["time"].values, ds["time"].values[1:])
    got = out.load()
    for t in ds["time"].values[1:]:
        ref = forecast(ds, model=fm, steps=3, init_times=[t], progress=False)
        np.testing.assert_allclose(
            got["temperature"].sel(time=[t]).values, ref["temperature"].values, rtol=1e-6
        )
    assert client.status == "running"  # a Client passed in is left open


def test_ensemble_members_do_not_depend_on_workers_or_task_order(client, checkpoint, tmp_path):
    """Member m of time t is seeded by (seed, t, m): 1 or 2 workers, any order, same store."""
    path, fm = checkpoint
    ds = _data()
    cfg = CampaignConfig(kind="ensemble", steps=2, members=3, seed=5)
    kw = dict(model=path, perturbation=GaussianNoise(std_fraction=0.1), progress=False)
    campaign(ds, tmp_path / "a.zarr", config=cfg, client=client, **kw)
    two = _loaded(tmp_path / "a.zarr")
    one_worker = distributed.Client(
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                 dashboard_address=None)
    )  # fmt: skip
    try:
        times = list(ds["time"].values[1:][::-1])  # reversed order of the tasks
        one = campaign(ds, tmp_path / "b.zarr", client=one_worker,
                       config=cfg.replace(init_times=times), **kw)  # fmt: skip
    finally:
        one_worker.close()
    xr.testing.assert_identical(two, one.load())
    assert float(two["temperature"].std("number").min()) > 0
    t = ds["time"].values[3]
    ref = ensemble(ds, model=fm, n=3, steps=2, seed=5, init_times=[t], progress=False,
                   perturbation=GaussianNoise(std_fraction=0.1))  # fmt: skip
    np.testing.assert_allclose(
        two["temperature"].sel(time=[t]).values, ref["temperature"].values, rtol=1e-6
    )


def test_failed_initial_time_is_named_others_kept_and_rerun_completes_the_rest(
    client, checkpoint, tmp_path
):
    path, _ = checkpoint
    ds = _data()
    bad = ds.copy(deep=True)
    bad["temperature"][5, 0, 0, 0] = np.nan  # breaks the initial time ds.time[5] only
    store = tmp_path / "fc.zarr"
    with pytest.raises(CampaignError, match="2001-03-02T06:00:00") as info:
        campaign(
            bad, store, model=path, config=CampaignConfig(steps=2), client=client, progress=False
        )
    assert list(info.value.failures) == ["2001-03-02T06:00:00"]
    assert "NaN" in info.value.failures["2001-03-02T06:00:00"]
    assert "the others are complete in" in str(info.value)
    # when every initial time failed it does not say the others are complete
    broken = ds.copy(deep=True)
    broken["temperature"][:, 0, 0, 0] = np.nan
    with pytest.raises(CampaignError, match="none was written in"):
        campaign(broken, tmp_path / "none.zarr", model=path, config=CampaignConfig(steps=2),
                 client=client, progress=False)  # fmt: skip
    np.testing.assert_array_equal(completed(store), ds["time"].values[1:5])
    # the rerun runs only the missing time: data that break every other time do not matter
    # (the data differ from those the store was started from: said with a warning)
    only_last = ds.copy(deep=True)
    only_last["temperature"][:3, 0, 0, 0] = np.nan
    with pytest.warns(UserWarning, match="started from other source"):
        campaign(only_last, store, model=path, config=CampaignConfig(steps=2), client=client,
                 progress=False)  # fmt: skip
    whole = campaign(
        ds,
        tmp_path / "whole.zarr",
        model=path,
        config=CampaignConfig(steps=2),
        client=client,
        progress=False,
    )
    a, b = _loaded(store), whole.load()
    settings = [json.loads(x.attrs.pop("xfuxi_campaign")) for x in (a, b)]
    assert [x.pop("source_sha256") for x in settings] != [None, None]  # the bad data's, the good
    assert settings[0] == settings[1]
    xr.testing.assert_identical(a, b)


def test_a_failed_write_leaves_only_complete_initial_times_marked(
    client, checkpoint, tmp_path, monkeypatch
):
    """A write that fails (a full disk) before the marker leaves the time unmarked."""
    path, _ = checkpoint
    ds = _data(4)
    real = campaign_module._write_region
    target = ds["time"].values[2]

    def failing(result, store, index):
        if "done" in result and target in result["time"].values:
            raise OSError(28, "No space left on device")
        real(result, store, index)

    monkeypatch.setattr(campaign_module, "_write_region", failing)
    store = tmp_path / "fc.zarr"
    with pytest.raises(CampaignError, match="No space left on device"):
        campaign(
            ds, store, model=path, config=CampaignConfig(steps=2), client=client, progress=False
        )
    assert target not in completed(store)
    assert completed(store).size == 2
    monkeypatch.setattr(campaign_module, "_write_region", real)
    campaign(ds, store, model=path, config=CampaignConfig(steps=2), client=client, progress=False)
    whole = campaign(
        ds,
        tmp_path / "whole.zarr",
        model=path,
        config=CampaignConfig(steps=2),
        client=client,
        progress=False,
    )
    xr.testing.assert_identical(_loaded(store), whole.load())


def test_store_with_other_settings_is_refused_by_name(client, checkpoint, tmp_path):
    path, _ = checkpoint
    ds = _data(3)
    store = tmp_path / "fc.zarr"
    kw = dict(model=path, client=client, progress=False)
    campaign(ds, store, config=CampaignConfig(steps=2), **kw)
    before = _loaded(store)
    with pytest.raises(ValueError, match="steps: store has 2, this call 3"):
        campaign(ds, store, config=CampaignConfig(steps=3), **kw)
    with pytest.raises(ValueError, match="kind: store has 'forecast'.*members"):
        campaign(ds, store, config=CampaignConfig(steps=2, kind="ensemble", members=2),
                 perturbation=GaussianNoise(), **kw)  # fmt: skip
    other, _ = tiny.fuxi_checkpoint(tmp_path / "other")
    import torch

    from xfuxi.models.checkpoint import save_model
    from xfuxi.models.registry import load_model

    changed = load_model(other)
    with torch.no_grad():
        next(changed.parameters()).add_(1.0)
    retrained = save_model(changed, tmp_path / "retrained")  # same name, other weights
    with pytest.raises(ValueError, match="model_sha256"):
        campaign(
            ds,
            store,
            config=CampaignConfig(steps=2),
            model=str(retrained),
            client=client,
            progress=False,
        )
    with pytest.raises(ValueError, match="init_times"):
        campaign(_data(4), store, config=CampaignConfig(steps=2), **kw)
    xr.testing.assert_identical(_loaded(store), before)  # nothing mixed in
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an xfuxi campaign store"):
        campaign(ds, foreign, config=CampaignConfig(steps=2), **kw)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_bad_arguments_are_named(checkpoint, tmp_path):
    path, _ = checkpoint
    ds = _data(3)
    with pytest.raises(ValueError, match="kind must be one of"):
        campaign(ds, tmp_path / "x", config={"kind": "reanalysis"}, model=path)
    with pytest.raises(ValueError, match="needs members"):
        campaign(ds, tmp_path / "x", config={"kind": "ensemble"}, model=path)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        campaign(ds, tmp_path / "x", model=path, config={"steps": 0})
    with pytest.raises(ValueError, match="needs observations"):
        campaign(ds, tmp_path / "x", config=CampaignConfig(kind="assimilate"), model=path)
    with pytest.raises(ValueError, match=r"2001-03-01T00:00:00 needs the source times"):
        campaign(ds, tmp_path / "x", model=path,
                 config=CampaignConfig(init_times=[ds["time"].values[0]]))  # fmt: skip
    with pytest.raises(ValueError, match="more than once"):
        CampaignConfig(init_times=[ds["time"].values[1]] * 2)
    with pytest.raises(ValueError, match="unknown CampaignConfig option"):
        campaign(ds, tmp_path / "x", model=path, config={"step": 2})
    with pytest.raises(TypeError, match="unexpected keyword"):
        campaign(ds, tmp_path / "x", model=path, step=2)
    assert not (tmp_path / "x").exists()


def test_the_public_name_is_the_function_after_the_module_is_imported():
    import xfuxi

    assert campaign_module.__name__ == "xfuxi.campaigns"
    assert xfuxi.campaign is campaign and xfuxi.campaign_scorecard is campaign_scorecard


def test_unknown_cluster_address_fails_fast(checkpoint, tmp_path):
    path, _ = checkpoint
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="tcp://127.0.0.1:9"):
        campaign(
            _data(3),
            tmp_path / "fc.zarr",
            model=path,
            config=CampaignConfig(steps=1, connect_timeout=2),
            client="tcp://127.0.0.1:9",
            progress=False,
        )
    assert time.monotonic() - start < 30


def test_source_store_is_read_by_the_workers(client, checkpoint, tmp_path):
    path, _ = checkpoint
    ds = _data(4)
    ds.to_zarr(tmp_path / "source.zarr")
    a = campaign(
        str(tmp_path / "source.zarr"),
        tmp_path / "a.zarr",
        model=path,
        config=CampaignConfig(steps=2),
        client=client,
        progress=False,
    )
    b = campaign(
        ds,
        tmp_path / "b.zarr",
        model=path,
        config=CampaignConfig(steps=2),
        client=client,
        progress=False,
    )
    xr.testing.assert_identical(a.load(), b.load())


def test_scorecard_of_a_stored_ensemble(client, checkpoint, tmp_path):
    from xfuxi.verify import crps, ensemble_mean_rmse, spread_skill_ratio

    path, _ = checkpoint
    truth = _data(8)
    store = tmp_path / "ens.zarr"
    campaign(
        truth.isel(time=slice(0, 5)),
        store,
        config=CampaignConfig(kind="ensemble", members=3, steps=2),
        model=path,
        perturbation=GaussianNoise(std_fraction=0.1),
        client=client,
        progress=False,
    )
    clim = xr.Dataset(
        {v: truth[v].mean("time").expand_dims(hour=[0, 6, 12, 18]) for v in truth.data_vars}
    )
    card = campaign_scorecard(store, truth, climatology=clim, client=client,
                              out=tmp_path / "card.nc", plot=tmp_path / "card.png")  # fmt: skip
    fc = _loaded(store).drop_vars("done")
    dims = ["time", "latitude", "longitude"]
    np.testing.assert_allclose(card["crps_temperature"],
                               crps(fc, truth, dim=dims)["temperature"])  # fmt: skip
    ssr = spread_skill_ratio(fc, truth, dim=dims)
    np.testing.assert_allclose(card["ssr_passive_tracer"], ssr["passive_tracer"])
    np.testing.assert_allclose(card["rmse_temperature"],
                               ensemble_mean_rmse(fc, truth, dim=dims)["temperature"])  # fmt: skip
    assert card["acc_temperature"].dims == ("prediction_timedelta", "level")
    assert card.attrs["init_times_scored"] == 4
    xr.testing.assert_allclose(xr.open_dataset(tmp_path / "card.nc").load(), card)
    assert (tmp_path / "card.png").stat().st_size > 1000
    # its own outputs are replaced only with overwrite=True; a user's file never
    with pytest.raises(FileExistsError, match="overwrite=True"):
        campaign_scorecard(store, truth, client=client, out=tmp_path / "card.nc")
    card2 = campaign_scorecard(store, truth, client=client, out=tmp_path / "card.nc",
                               plot=tmp_path / "card.png", overwrite=True)  # fmt: skip
    assert "acc_temperature" not in card2  # the new scorecard (no climatology) is there
    assert "acc_temperature" not in xr.open_dataset(tmp_path / "card.nc")
    user = tmp_path / "user.png"
    user.write_bytes(b"a user's figure")
    with pytest.raises(FileExistsError, match="not written by xfuxi.campaign_scorecard"):
        campaign_scorecard(store, truth, client=client, plot=user, overwrite=True)
    assert user.read_bytes() == b"a user's figure"
    # the score's own units where it has them (the forecast's: the test truth has none),
    # none for ratios
    assert "units" not in truth["temperature"].attrs
    assert card["rmse_temperature"].attrs["units"] == "K"
    assert card["crps_temperature"].attrs["units"] == "K"
    assert "units" not in card["ssr_temperature"].attrs
    # a missing directory is named before the scores are computed, nothing written
    with pytest.raises(FileNotFoundError, match="does not exist"):
        campaign_scorecard(store, truth, client=client, out=tmp_path / "c2.nc",
                           plot=tmp_path / "none" / "c2.png")  # fmt: skip
    assert not (tmp_path / "c2.nc").exists()


def test_assimilate_and_forecast_campaign(client, tmp_path):
    from xfuxi.assimilation.en4dvar import assimilate_4dvar

    model, bg, obs, options = _da_case(max_iter=5)
    times = pd.DatetimeIndex(bg["time"].values)
    out = campaign(bg, tmp_path / "da.zarr", config=CampaignConfig(kind="assimilate", steps=2),
                   model=model, observations=obs, assimilation=options, client=client,
                   progress=False).load()  # fmt: skip
    np.testing.assert_array_equal(out["time"].values, times.values[2:])
    t0 = times.values[3]
    window = obs.isel(obs=np.flatnonzero(
        (obs["time"].values >= t0 - np.timedelta64(3, "h"))
        & (obs["time"].values <= t0 + np.timedelta64(9, "h"))))  # fmt: skip
    res = assimilate_4dvar(bg.sel(time=times.values[1:]), window, model=model, progress=False,
                           **options)  # fmt: skip
    pair = xr.concat([bg.sel(time=[times.values[2]]), res.analysis[list(bg.data_vars)]], "time")
    ref = forecast(pair, model=model, steps=2, init_times=[t0], progress=False)
    np.testing.assert_allclose(out["temperature"].sel(time=[t0]).values,
                               ref["temperature"].values, rtol=1e-6)  # fmt: skip
    assert not np.allclose(out["temperature"].sel(time=[t0]).values,
                           forecast(bg, model=model, steps=2, init_times=[t0],
                                    progress=False)["temperature"].values)  # fmt: skip


def _da_case(max_iter: int = 3):
    """A tiny assimilate campaign: a model, a background of 4 times, 12 observations and
    the assimilation options (``max_iter`` iterations)."""
    from xfuxi.assimilation.config import BackgroundError, Minimiser
    from xfuxi.observations.sets import random_observations

    model = tiny.da_model(tiny.TinyNonlinear())
    rng = np.random.default_rng(0)
    times = pd.date_range("2001-01-01", periods=4, freq="6h")
    dims = ("time", "level", "latitude", "longitude")
    shape = (4, 1, tiny.DA_LAT.size, tiny.DA_LON.size)
    bg = xr.Dataset(
        {"temperature": (dims, 250 + rng.normal(size=shape)),
         "geopotential": (dims, 5.5e4 + 50 * rng.normal(size=shape))},
        coords={"time": times, "level": [500.0], "latitude": tiny.DA_LAT,
                "longitude": tiny.DA_LON},
    )  # fmt: skip
    obs = random_observations(bg + 1.0, n=12, variables=["temperature"], error=0.5, seed=1)
    options = {"background_error": BackgroundError(n_members=8, perturbation_std=(2.0, 100.0),
                                                   amplitude=0.5, wavelength=1, seed=3),
               "minimiser": Minimiser(max_iter=max_iter)}  # fmt: skip
    return model, bg, obs, options


def test_assimilate_campaign_takes_the_source_and_observations_as_dataset_or_path(client, tmp_path):
    # observations given as a path with the source in memory failed every initial time
    # (the task carried no observations and the worker did not read them)
    model, bg, obs, options = _da_case()
    bg.to_netcdf(tmp_path / "bg.nc")
    obs.to_netcdf(tmp_path / "obs.nc")
    cfg = CampaignConfig(kind="assimilate", steps=1)
    outs = {}
    for name, source, observations in (
        ("both", bg, obs),
        ("obs_path", bg, str(tmp_path / "obs.nc")),
        ("source_path", str(tmp_path / "bg.nc"), obs),
        ("both_paths", str(tmp_path / "bg.nc"), tmp_path / "obs.nc"),
    ):
        outs[name] = campaign(source, tmp_path / f"{name}.zarr", config=cfg, model=model,
                              observations=observations, assimilation=options, client=client,
                              progress=False).load()  # fmt: skip
        assert outs[name]["done"].values.all(), name
    for out in outs.values():
        xr.testing.assert_identical(out, outs["both"])


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"minimizer": 3}, TypeError, "'minimizer' \\(did you mean 'minimiser'\\?\\)"),
        ({"slots": 0}, ValueError, "slots .* integer >= 1; got 0"),
        ({"slots": "x"}, ValueError, "slots .* integer >= 1; got 'x'"),
        ({"slots": True}, ValueError, "slots .* integer >= 1"),
        ({"window": None}, ValueError, "the campaign sets 'window'"),
        ({"minimiser": 3}, TypeError, "minimiser must be a Minimiser"),
        ("no time", ValueError, "observations must have .* 'time'"),
    ],
)
def test_bad_assimilation_settings_are_refused_before_the_store_is_made(
    client, tmp_path, change, error, match
):
    # they failed every initial time after the store was written, and the store then
    # refused the corrected call (its settings differ)
    model, bg, obs, options = _da_case()
    cfg = CampaignConfig(kind="assimilate", steps=1)
    store = tmp_path / "da.zarr"
    if change == "no time":
        bad_obs, bad_options = obs.drop_vars("time"), options
    else:
        bad_obs, bad_options = obs, {**options, **change}
    with pytest.raises(error, match=match):
        campaign(bg, store, config=cfg, model=model, observations=bad_obs,
                 assimilation=bad_options, client=client, progress=False)  # fmt: skip
    assert not store.exists()
    out = campaign(bg, store, config=cfg, model=model, observations=obs, assimilation=options,
                   client=client, progress=False)  # fmt: skip
    assert out["done"].values.all()


_CLIENT_SCRIPT = """
import sys, distributed
from tests import tiny
from xfuxi.campaigns import CampaignConfig, campaign
if __name__ == "__main__":
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                       dashboard_address=None)
    with distributed.Client(cluster) as cl:
        campaign(tiny.dataset(int(sys.argv[3])), sys.argv[2], model=sys.argv[1],
                 config=CampaignConfig(steps=60), client=cl, progress=False)
"""


def test_killed_client_resumes_to_the_uninterrupted_store(client, checkpoint, tmp_path):
    """SIGKILL the process running the campaign midway; a rerun completes it exactly."""
    path, _ = checkpoint
    n = 10
    store = tmp_path / "fc.zarr"
    script = tmp_path / "run.py"
    script.write_text(_CLIENT_SCRIPT)
    import torch

    # the same torch threads as this process, whose workers redo the missing times
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen([sys.executable, str(script), path, str(store), str(n)], env=env,
                            cwd=ROOT, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if _written_markers(store) >= 1:
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    finished = completed(store).size
    assert 1 <= finished < n - 1
    campaign(
        _data(n), store, model=path, config=CampaignConfig(steps=60), client=client, progress=False
    )
    whole = campaign(
        _data(n),
        tmp_path / "whole.zarr",
        model=path,
        config=CampaignConfig(steps=60),
        client=client,
        progress=False,
    )
    xr.testing.assert_identical(_loaded(store), whole.load())


def test_killing_one_worker_midway_still_completes_the_same_store(client, checkpoint, tmp_path):
    """Two worker processes; one is SIGKILLed by PID midway; the store equals the reference."""
    path, _ = checkpoint
    n = 10
    ds = _data(n)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)  # fmt: skip
    store = tmp_path / "fc.zarr"
    killed: dict[str, int] = {}
    try:
        with distributed.Client(cluster) as cl:
            whole = campaign(
                ds,
                tmp_path / "whole.zarr",
                model=path,
                config=CampaignConfig(steps=60),
                client=cl,
                progress=False,
            ).load()
            pids = cl.run(os.getpid)

            def killer():
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline:
                    if _marker_files(store) >= 1:
                        break
                    time.sleep(0.01)
                killed["done_before"] = _marker_files(store)
                pid = sorted(pids.values())[0]
                os.kill(pid, signal.SIGKILL)
                killed["pid"] = pid

            thread = threading.Thread(target=killer)
            thread.start()
            campaign(
                ds, store, model=path, config=CampaignConfig(steps=60), client=cl, progress=False
            )
            thread.join()
            assert killed["pid"] not in cl.run(os.getpid).values()
    finally:
        cluster.close()
    assert killed["done_before"] < n - 1
    xr.testing.assert_identical(_loaded(store), whole)


def test_cli_campaign_on_a_scheduler_address(client, checkpoint, tmp_path, capsys):
    from xfuxi.cli import main

    path, _ = checkpoint
    ds = _data(4)
    ds.to_netcdf(tmp_path / "source.nc")
    args = ["--no-progress", "campaign", str(tmp_path / "source.nc"), "--store",
            str(tmp_path / "ens.zarr"), "--kind", "ensemble", "--members", "2", "--method",
            "gaussian", "--amplitude", "0.1", "--model", path, "--steps", "2",
            "--scheduler", client.scheduler.address]  # fmt: skip
    assert main(args) == 0
    assert "campaign complete: 3 initial times" in capsys.readouterr().out
    ref = campaign(ds, tmp_path / "ref.zarr", model=path,
                   config=CampaignConfig(kind="ensemble", members=2, steps=2),
                   perturbation=GaussianNoise(std_fraction=0.1), client=client,
                   progress=False)  # fmt: skip
    xr.testing.assert_identical(_loaded(tmp_path / "ens.zarr"), ref.load())
    assert main(args) == 0  # complete already: nothing to run
    assert "campaign complete: 3 initial times" in capsys.readouterr().out
    args[4] = str(tmp_path / "new.zarr")
    assert main(args[:-1] + ["tcp://127.0.0.1:9"]) == 1
    assert "no dask scheduler answered at client='tcp://127.0.0.1:9'" in capsys.readouterr().err


def test_old_keywords_still_work_with_a_deprecation_warning(client, checkpoint, tmp_path):
    """Issue 19 item 3: the run options are one CampaignConfig; the old keywords warn."""
    path, _ = checkpoint
    ds = _data(3)
    with pytest.warns(DeprecationWarning, match=r"pass config=CampaignConfig\(steps=..."):
        old = campaign(ds, tmp_path / "old.zarr", model=path, steps=2, seed=1, client=client,
                       progress=False)  # fmt: skip
    new = campaign(ds, tmp_path / "new.zarr", model=path, config=CampaignConfig(steps=2, seed=1),
                   client=client, progress=False)  # fmt: skip
    xr.testing.assert_identical(old.load(), new.load())
    # a keyword on top of a config: the keyword wins (and warns)
    with pytest.warns(DeprecationWarning, match="campaign"):
        again = campaign(ds, tmp_path / "old.zarr", model=path, config=CampaignConfig(steps=9),
                         steps=2, seed=1, client=client, progress=False)  # fmt: skip
    xr.testing.assert_identical(again.load(), new.load())


def test_the_config_is_saved_with_the_store_and_a_store_without_it_resumes(
    client, checkpoint, tmp_path
):
    import json

    import zarr

    path, _ = checkpoint
    ds = _data(4)
    cfg = CampaignConfig(steps=2, init_times=ds["time"].values[2:], torch_threads=1)
    store = tmp_path / "fc.zarr"
    out = campaign(ds, store, model=path, config=cfg, client=client, progress=False)
    saved = CampaignConfig.from_dict(json.loads(out.attrs[campaign_module.CONFIG_ATTR]))
    assert saved == cfg and saved.init_times == ("2001-03-01T12:00:00", "2001-03-01T18:00:00")
    settings = json.loads(out.attrs[campaign_module.SETTINGS_ATTR])  # the format kept
    assert settings["steps"] == 2 and settings["init_times"] == list(cfg.init_times)
    # a store written before the config was saved (settings only) is still resumed
    group = zarr.open_group(str(store), mode="r+")
    del group.attrs[campaign_module.CONFIG_ATTR]
    before = _loaded(store)
    campaign(ds, store, model=path, config=cfg, client=client, progress=False)
    xr.testing.assert_identical(_loaded(store), before)


def test_campaign_config_checks_and_normalises_its_fields():
    import torch

    cfg = CampaignConfig(device=torch.device("cpu"), dtype=torch.float32)
    assert (cfg.device, cfg.dtype) == ("cpu", "float32")  # JSON-able names
    assert CampaignConfig.from_dict(json_round_trip(cfg)) == cfg
    with pytest.raises(ValueError, match="CampaignConfig.members must be an integer >= 1"):
        CampaignConfig(kind="ensemble", members=0)
    with pytest.raises(ValueError, match="kind='forecast' takes no members"):
        CampaignConfig(members=2)
    with pytest.raises(ValueError, match="not the string"):
        CampaignConfig(init_times="2000-01-01")
    with pytest.raises(ValueError, match="connect_timeout must be a number > 0"):
        CampaignConfig(connect_timeout=0)


def json_round_trip(cfg):
    import json

    return json.loads(cfg.to_json())


def test_a_resumed_store_refuses_another_precision_chunking_or_module(client, checkpoint, tmp_path):
    # dtype was not recorded, chunk_size recorded but not compared, a perturbation module
    # given by path only by its path: each was mixed into a resumed store
    path, fm = checkpoint
    ds = _data(3)
    kw = dict(model=path, client=client, progress=False)
    campaign(ds, tmp_path / "fc.zarr", config=CampaignConfig(steps=2), **kw)
    with pytest.raises(ValueError, match="dtype: store has None, this call 'float64'"):
        campaign(ds, tmp_path / "fc.zarr", config=CampaignConfig(steps=2, dtype="float64"), **kw)
    with pytest.warns(UserWarning, match="started from other source"):  # said, not silent
        campaign(tiny.dataset(3, seed=9), tmp_path / "fc.zarr", config=CampaignConfig(steps=2),
                 **kw)  # fmt: skip
    ens = CampaignConfig(steps=2, kind="ensemble", members=2, chunk_size=2)
    with pytest.raises(ValueError, match="dtype applies to kind='forecast'"):
        campaign(ds, tmp_path / "e0.zarr", config=ens.replace(dtype="float64"),
                 perturbation=GaussianNoise(), **kw)  # fmt: skip
    campaign(ds, tmp_path / "e.zarr", config=ens, perturbation=GaussianNoise(), **kw)
    with pytest.raises(ValueError, match="chunk_size: store has 2, this call 1"):
        campaign(ds, tmp_path / "e.zarr", config=ens.replace(chunk_size=1),
                 perturbation=GaussianNoise(), **kw)  # fmt: skip
    import torch

    from xfuxi.models.ens import save_perturbation

    vae = tiny.vae(fm)
    module = save_perturbation(vae, tmp_path / "vae")
    campaign(ds, tmp_path / "v.zarr", config=ens, perturbation=str(module), **kw)
    with torch.no_grad():
        next(vae.parameters()).add_(0.5)
    save_perturbation(vae, tmp_path / "vae", overwrite=True)  # retrained at the same path
    with pytest.raises(ValueError, match="perturbation: store has"):
        campaign(ds, tmp_path / "v.zarr", config=ens, perturbation=str(module), **kw)


def test_a_campaign_killed_while_writing_its_metadata_leaves_no_store(
    checkpoint, tmp_path, monkeypatch
):
    path, _ = checkpoint

    real = xr.Dataset.to_zarr

    def dying(self, *args, **kwargs):  # killed once the metadata are (partly) written
        real(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_zarr", dying)
    with pytest.raises(KeyboardInterrupt):
        campaign(_data(3), tmp_path / "fc.zarr", model=path, config=CampaignConfig(steps=2),
                 client="127.0.0.1:1", progress=False)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no half-made store, no temporary


# --- audit 46 ----------------------------------------------------------------------------


def test_a_store_in_or_around_an_input_is_refused_before_any_work(client, checkpoint, tmp_path):
    """The store was written into the source zarr store and into the model's folder."""
    import shutil

    from xfuxi.files import OutputExistsError

    path, _ = checkpoint
    model = tmp_path / "model"
    shutil.copytree(path, model)
    src = tmp_path / "src.zarr"
    _data(3).to_zarr(src, consolidated=False)
    listing = {p: sorted(os.listdir(p)) for p in (src, model)}
    kw = dict(model=str(model), config=CampaignConfig(steps=1), client=client, progress=False)
    for store, match in ((src / "fc.zarr", "lies inside the input"),
                         (model / "fc.zarr", "lies inside the input"),
                         (src, "is or holds the input"),
                         (tmp_path, "is or holds the input")):  # fmt: skip
        with pytest.raises(OutputExistsError, match=match):
            campaign(str(src), store, **kw)
    # the perturbation module's checkpoint too (refused before it is loaded)
    vae_dir = tmp_path / "vae"
    vae_dir.mkdir()
    ens = CampaignConfig(kind="ensemble", members=2, steps=1)
    with pytest.raises(OutputExistsError, match="lies inside the input"):
        campaign(_data(3), vae_dir / "fc.zarr", model=str(model), config=ens,
                 perturbation=str(vae_dir), client=client, progress=False)  # fmt: skip
    assert {p: sorted(os.listdir(p)) for p in (src, model)} == listing
    assert os.listdir(vae_dir) == []


def test_an_invalid_dtype_or_device_is_refused_by_the_config():
    """CampaignConfig(dtype="float99") made a store whose every task failed."""
    for dtype in ("float99", "int32"):
        with pytest.raises(ValueError, match="CampaignConfig.dtype"):
            CampaignConfig(dtype=dtype)
    with pytest.raises(ValueError, match="CampaignConfig.device"):
        CampaignConfig(device="gpu9")
    assert CampaignConfig(dtype="float64", device="cuda:1").dtype == "float64"  # not run here


def test_assimilate_with_members_refuses_a_dtype(checkpoint, tmp_path):
    """The dtype was silently dropped (the ensemble runs in the model's precision)."""
    path, _ = checkpoint
    obs = xr.Dataset({"value": ("obs", [1.0])})
    cfg = CampaignConfig(kind="assimilate", members=2, steps=1, dtype="float64")
    with pytest.raises(ValueError, match="without members; an ensemble"):
        campaign(_data(3), tmp_path / "fc.zarr", config=cfg, model=path, observations=obs,
                 client="127.0.0.1:1", progress=False)  # fmt: skip
    assert not (tmp_path / "fc.zarr").exists()


def test_a_store_path_with_a_tilde_is_in_the_home_directory(
    client, checkpoint, tmp_path, monkeypatch
):
    """A store "~/fc.zarr" made a literal ./~ folder and left a temporary in $HOME."""
    path, _ = checkpoint
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    ds = _data(3)
    out = campaign(ds, "~/fc.zarr", model=path, config=CampaignConfig(steps=1), client=client,
                   progress=False)  # fmt: skip
    assert out["done"].values.all()
    assert os.listdir(cwd) == [] and os.listdir(home) == ["fc.zarr"]
    assert completed("~/fc.zarr").size == 2
    card = campaign_scorecard("~/fc.zarr", _data(4))
    assert card.attrs["init_times_scored"] == 2


def test_cli_ensemble_flags_without_an_ensemble_are_usage_errors(
    client, checkpoint, tmp_path, capsys
):
    """--perturbation, --amplitude and --method were silently ignored without an ensemble."""
    from xfuxi.cli import main

    path, _ = checkpoint
    _data(3).to_netcdf(tmp_path / "source.nc")
    base = ["--no-progress", "campaign", str(tmp_path / "source.nc"), "--store",
            str(tmp_path / "fc.zarr"), "--model", path, "--steps", "1",
            "--scheduler", client.scheduler.address]  # fmt: skip
    for extra, flag in ((["--method", "gaussian"], "--method"),
                        (["--amplitude", "0.1"], "--amplitude"),
                        (["--perturbation", "fuxi-ens"], "--perturbation"),
                        (["--kind", "assimilate", "--observations", "o.nc", "--method",
                          "perlin"], "--method")):  # fmt: skip
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert flag in err and "no ensemble" in err
    assert not (tmp_path / "fc.zarr").exists()


def test_two_clients_creating_one_store_at_once_both_finish(
    client, checkpoint, tmp_path, monkeypatch
):
    """The client whose rename lost died with OSError ENOTEMPTY."""
    path, _ = checkpoint
    ds = _data(3)
    real = campaign_module._weatherbench2
    state = {"store": None}

    def racing(template):  # the other client (steps=1) creates the store first
        store, state["store"] = state["store"], None
        if store is not None:
            campaign(ds, store, model=path, config=CampaignConfig(steps=1), client=client,
                     progress=False)  # fmt: skip
        return real(template)

    monkeypatch.setattr(campaign_module, "_weatherbench2", racing)
    state["store"] = tmp_path / "fc.zarr"
    out = campaign(ds, tmp_path / "fc.zarr", model=path, config=CampaignConfig(steps=1),
                   client=client, progress=False)  # fmt: skip
    assert state["store"] is None and out["done"].values.all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc.zarr"]  # no temporary left
    # a loser with other settings is refused (its temporary removed), not mixed in
    state["store"] = tmp_path / "other.zarr"
    with pytest.raises(ValueError, match="steps: store has 1, this call 2"):
        campaign(ds, tmp_path / "other.zarr", model=path, config=CampaignConfig(steps=2),
                 client=client, progress=False)  # fmt: skip
    assert state["store"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc.zarr", "other.zarr"]


def test_a_store_with_other_initial_times_names_them(client, checkpoint, tmp_path):
    """The message said "store has '2 initial times', this call '2 initial times'"."""
    path, _ = checkpoint
    ds = _data(4)
    kw = dict(model=path, client=client, progress=False)
    t = [str(x)[:19] for x in ds["time"].values]
    campaign(ds, tmp_path / "fc.zarr", config=CampaignConfig(steps=1, init_times=t[1:3]), **kw)
    with pytest.raises(ValueError) as err:
        campaign(ds, tmp_path / "fc.zarr", config=CampaignConfig(steps=1, init_times=t[2:4]),
                 **kw)  # fmt: skip
    msg = str(err.value)
    assert f"only in the store: ['{t[1]}']" in msg and f"only in this call: ['{t[3]}']" in msg


def test_an_xfuxi_output_of_another_kind_is_not_resumed_as_a_campaign(client, checkpoint, tmp_path):
    """A store is a campaign's by its settings attribute (it has no marker file, see
    docs/safety.md); one that carries the marker of another xfuxi output is refused."""
    from xfuxi.files import MARKER, read_marker

    path, _ = checkpoint
    ds = _data(3)
    kw = dict(model=path, config=CampaignConfig(steps=1), client=client, progress=False)
    store = tmp_path / "fc.zarr"
    before = campaign(ds, store, **kw).load()
    assert read_marker(store) is None  # as docs/safety.md says
    (store / MARKER).write_text(json.dumps({"kind": "forecast"}))
    with pytest.raises(FileExistsError, match="'forecast' output, not a campaign store"):
        campaign(ds, store, **kw)
    (store / MARKER).unlink()
    xr.testing.assert_identical(campaign(ds, store, **kw).load(), before)


def test_initial_times_that_are_none_or_empty_are_refused():
    with pytest.raises(ValueError, match=r"init_times holds None.*not a time"):
        CampaignConfig(init_times=[None])
    with pytest.raises(ValueError, match=r"init_times holds .*not a time"):
        CampaignConfig(init_times=["2000-01-01T06", pd.NaT])
    with pytest.raises(ValueError, match="init_times is empty"):
        CampaignConfig(init_times=())


def test_scorecard_plot_with_a_score_all_nan_draws_the_others(tmp_path):
    """A panel whose every line is NaN (the ACC of a constant field) says so; the other
    panels are drawn (plot_scores refuses all-NaN scores: the plot failed after the
    scorecard's netCDF was written)."""
    import matplotlib.pyplot as plt

    from xfuxi.campaigns import _plot_scorecard

    lead = {"prediction_timedelta": np.arange(1, 4) * np.timedelta64(6, "h")}
    card = xr.Dataset(
        {
            "rmse_temperature": ("prediction_timedelta", [1.0, 2.0, 3.0], {"units": "K"}),
            "acc_temperature": ("prediction_timedelta", [np.nan] * 3),
            "acc_surface_pressure": ("prediction_timedelta", [np.nan, 0.9, 0.8]),
        },
        coords=lead,
        attrs={"scores": "rmse,acc"},
    )
    before = plt.get_fignums()
    _plot_scorecard(card, tmp_path / "card.png")
    assert (tmp_path / "card.png").stat().st_size > 1000
    _plot_scorecard(card.drop_vars("acc_surface_pressure"), tmp_path / "card2.png")
    assert (tmp_path / "card2.png").stat().st_size > 1000
    assert plt.get_fignums() == before


def test_scorecard_plot_leaves_the_callers_backend(tmp_path):
    """The scorecard's PNG is drawn without pyplot: a caller's backend (an interactive one
    in a notebook or a GUI; svg here) is not switched to Agg (it was, by matplotlib.use)."""
    import matplotlib
    import matplotlib.pyplot as plt

    from xfuxi.campaigns import SCORECARD_WRITER, _plot_scorecard, _png_written_by

    lead = {"prediction_timedelta": np.arange(1, 4) * np.timedelta64(6, "h")}
    card = xr.Dataset(
        {"rmse_temperature": ("prediction_timedelta", [1.0, 2.0, 3.0], {"units": "K"})},
        coords=lead,
        attrs={"scores": "rmse"},
    )
    original = matplotlib.get_backend()
    try:
        matplotlib.use("svg")
        before = plt.get_fignums()
        _plot_scorecard(card, tmp_path / "card.png")
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == before
    finally:
        matplotlib.use(original)
    assert _png_written_by(tmp_path / "card.png", SCORECARD_WRITER)


def test_an_assimilate_campaign_refuses_a_cascade_before_the_store_is_made(tmp_path):
    """The default model (a cascade) failed in every worker after the store was written,
    and the rerun with a single-step model was then refused as other settings."""
    from xfuxi.models.cascade import Cascade

    model, bg, obs, options = _da_case()
    cascade = Cascade([model, model], switch_steps=[1], name="two")
    store = tmp_path / "da.zarr"
    with pytest.raises(TypeError, match="runs forecasts and ensembles only"):
        campaign(bg, store, config=CampaignConfig(kind="assimilate", steps=1), model=cascade,
                 observations=obs, assimilation=options, progress=False)  # fmt: skip
    assert not store.exists()


def test_an_owned_local_cluster_leaves_the_process_as_it_found_it(
    checkpoint, tmp_path, monkeypatch
):
    """client=None started a LocalCluster whose nannies set OMP_NUM_THREADS=1 (and more) in
    os.environ, so every later subprocess ran on one thread; each call also added a handler
    to the 'distributed.scheduler' logger."""
    import logging

    path, _ = checkpoint
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    before = dict(os.environ)
    logger = logging.getLogger("distributed.scheduler")
    handlers = list(logger.handlers)
    for i in range(2):
        campaign(_data(3), tmp_path / f"fc{i}.zarr", model=path, config=CampaignConfig(steps=1),
                 n_workers=1, progress=False).close()  # fmt: skip
        assert dict(os.environ) == before
        assert logger.handlers == handlers
