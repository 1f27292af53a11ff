"""Tests of xfuxi.world.tracer_anomalies and training with them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from xfuxi.training.forecast import anomaly_samples
from xfuxi.world.simulator import held_suarez
from xfuxi.world.tracer_anomalies import held_suarez_tracer_anomalies

pytest.importorskip("dinosaur")

KW = {"seed": 4, "start": "2001-01-01", "spinup_days": 60, "progress": False}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("xfuxi-cache")


@pytest.fixture(scope="module")
def anomalies(cache):
    return held_suarez_tracer_anomalies(days=2, members=3, cache_dir=cache, **KW)


def test_layout(anomalies):
    a = anomalies["passive_tracer_anomaly"]
    assert a.dims == ("window", "member", "offset", "level", "latitude", "longitude")
    assert a.sizes["window"] == 4 and a.sizes["member"] == 3 and a.sizes["offset"] == 3
    step = np.timedelta64(6, "h")
    assert anomalies["time"].values[0] == np.datetime64("2001-01-01") - step
    assert np.all(np.diff(anomalies["time"].values) == step)
    assert np.all(np.diff(a["window"].values) == 2 * step)
    assert np.all(np.isfinite(a.values)) and float(abs(a).max()) > 0


def test_base_is_the_world_and_unaffected_by_the_anomalies(anomalies, cache):
    """The extra tracers do not act on the dynamics: the base fields are the plain world."""
    plain = held_suarez(days=2, cache_dir=cache, **KW).load()
    base = anomalies.drop_vars("passive_tracer_anomaly").sel(time=plain["time"])
    for name in plain.data_vars:
        np.testing.assert_allclose(base[name].values, plain[name].values, rtol=1e-4,
                                   atol=1e-4 * float(abs(plain[name]).max()))  # fmt: skip


def _semi_lagrangian(q, u, v, lat, lon, seconds):
    """``q`` at the departure points of a straight 6-hour trajectory (bilinear)."""
    from scipy.ndimage import map_coordinates

    r = 6.371e6
    la = np.deg2rad(lat)[:, None] + 0 * lon[None, :]
    lo = np.deg2rad(lon)[None, :] + 0 * la
    out = np.empty_like(q)
    for k in range(q.shape[0]):
        la_d = np.rad2deg(la - v[k] * seconds / r)
        lo_d = np.rad2deg(lo - u[k] * seconds / (r * np.cos(la))) % 360
        rows = np.interp(la_d, lat, np.arange(lat.size))
        cols = lo_d / (lon[1] - lon[0])
        periodic = np.concatenate([q[k], q[k][:, :1]], axis=1)
        out[k] = map_coordinates(periodic, [rows, cols], order=1, mode="nearest")
    return out


def test_anomalies_are_carried_by_the_wind(anomalies):
    """Moving the anomaly along the world's winds for 6 hours (semi-Lagrangian, bilinear)
    explains its 6-hour change far better than leaving it in place."""
    a = anomalies["passive_tracer_anomaly"]
    lat, lon = anomalies["latitude"].values, anomalies["longitude"].values
    err_adv = err_pers = 0.0
    for w in range(a.sizes["window"]):
        t = a["window"].values[w]
        u = anomalies["u_component_of_wind"].sel(time=t).values
        v = anomalies["v_component_of_wind"].sel(time=t).values
        for m in range(a.sizes["member"]):
            q0 = a.isel(window=w, member=m, offset=0).values
            q1 = a.isel(window=w, member=m, offset=1).values
            adv = _semi_lagrangian(q0, u, v, lat, lon, 6 * 3600.0)
            err_adv += float(((q1 - adv) ** 2).sum())
            err_pers += float(((q1 - q0) ** 2).sum())
    assert err_adv < 0.6 * err_pers


def test_anomaly_samples(anomalies):
    times, windows, offsets = anomaly_samples(anomalies, "both")
    assert len(times) == 4 and np.all(offsets == [0, 1, 2])
    t = anomalies["time"].values
    for row, w in zip(times, windows, strict=True):
        assert t[row[0]] == anomalies["window"].values[w]
        assert np.all(np.diff(t[row]) == np.timedelta64(6, "h"))
    times0, windows0, offsets0 = anomaly_samples(anomalies, "t0")
    assert len(times0) == 4 and np.all(offsets0 == [-1, 0, 1])
    assert np.all(t[times0[:, 1]] == anomalies["window"].values[windows0])
    with pytest.raises(ValueError, match="kind"):
        anomaly_samples(anomalies, "both_times")


def test_bad_arguments():
    with pytest.raises(ValueError, match="members"):
        held_suarez_tracer_anomalies(days=1, members=0)
    with pytest.raises(ValueError, match="radius_km"):
        held_suarez_tracer_anomalies(days=1, radius_km=(900.0, 100.0))


def test_cached_store_is_reused(anomalies, cache, monkeypatch):
    from xfuxi.world import tracer_anomalies

    def no_run(*args, **kwargs):
        raise AssertionError("the world was run again instead of reading the cache")

    monkeypatch.setattr(tracer_anomalies, "_generate", no_run)
    again = held_suarez_tracer_anomalies(days=2, members=3, cache_dir=cache, **KW)
    np.testing.assert_array_equal(again["passive_tracer_anomaly"].values,
                                  anomalies["passive_tracer_anomaly"].values)  # fmt: skip


def test_training_with_anomalies(anomalies):
    from xfuxi.data.schema import SchemaError
    from xfuxi.training.config import TrainConfig
    from xfuxi.training.forecast import train_forecast

    base = anomalies.drop_vars("passive_tracer_anomaly")
    cfg = TrainConfig(preset="tiny", steps=3, batch_size=2, warmup_steps=1,
                      anomaly_batch_size=2, log_every=1)  # fmt: skip
    m = train_forecast(base, config=cfg, tracer_anomalies=anomalies, progress=False)
    hist = m.config["metadata"]["history"]
    assert [h["step"] for h in hist] == [1, 2, 3]
    assert all(np.isfinite(h["anomaly_loss"]) and h["anomaly_loss"] > 0 for h in hist)
    assert m.config["metadata"]["training"]["tracer_anomalies"]["samples"] == 8
    with pytest.raises(SchemaError, match="passive_tracer_anomaly"):
        train_forecast(base, config=cfg.replace(steps=1), tracer_anomalies=base, progress=False)
    with pytest.raises(SchemaError, match="no passive_tracer"):
        train_forecast(base, config=cfg.replace(steps=1, variables=["temperature"]),
                       tracer_anomalies=anomalies, progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="anomaly_weight"):
        train_forecast(base, config=cfg.replace(steps=1, anomaly_weight=-1.0),
                       tracer_anomalies=anomalies, progress=False)  # fmt: skip


class _Persist(torch.nn.Module):
    def forward(self, x):
        return x[:, 1]


class _Trend(torch.nn.Module):
    def forward(self, x):
        return 2 * x[:, 1] - x[:, 0]


def test_anomaly_objective_against_exact_references(anomalies):
    """A persistence model's response is the anomaly at t0, a trend model's is
    2 a(t0) - a(t-6): the objective is their normalised squared error, by hand."""
    from xfuxi.data.channels import channels_of
    from xfuxi.models.base import NormStats, wrap_model
    from xfuxi.training.anomalies import AnomalySamples
    from xfuxi.verify.weights import area_weights

    base = anomalies.drop_vars("passive_tracer_anomaly")
    channels = channels_of(base)
    stats = NormStats(np.zeros(len(channels)), np.full(len(channels), 0.5),
                      np.ones(len(channels)))  # fmt: skip
    w = torch.as_tensor(np.asarray(area_weights(base["latitude"].values), dtype="float32"))
    w = w.view(1, 1, -1, 1)
    for net in (_Persist(), _Trend()):
        fm = wrap_model(net, channels=channels, latitude=base["latitude"].values,
                        longitude=base["longitude"].values, stats=stats)  # fmt: skip
        samples = AnomalySamples(anomalies, fm, torch.device("cpu"))
        value = float(samples.objective(fm, fm, w, seed=0, step=3, size=6))
        _, a = samples.batch(seed=0, step=3, size=6)
        resp = a[:, 1] if isinstance(net, _Persist) else 2 * a[:, 1] - a[:, 0]
        num = (((resp - a[:, 2]) / 0.5) ** 2 * w).sum((1, 2, 3))
        den = ((a[:, 2] / 0.5) ** 2 * w).sum((1, 2, 3))
        np.testing.assert_allclose(value, float((num / den).mean()), rtol=1e-4)
        assert value > 0  # neither reference is the world's transport


def test_world_tracer_transport(cache):
    """The re-run world is the split's own (its tracer equals the split's data at both
    times), a vertically uniform anomaly survives the round trip to sigma levels, and it
    moves and relaxes over 6 hours."""
    from xfuxi.world.simulator import held_suarez_split
    from xfuxi.world.tracer_anomalies import world_tracer_transport

    world = {"spinup_days": 2, "cache_dir": cache}
    split = held_suarez_split("test", days=1, progress=False, **world).load()
    t = split["time"].values[2]
    lat = np.deg2rad(split["latitude"].values)[:, None]
    lon = np.deg2rad(split["longitude"].values)[None, :]
    blob = np.exp(-0.5 * (((lat - 0.7) ** 2 + ((lon - 3.0) * np.cos(0.7)) ** 2) / 0.15**2))
    anomaly = (
        split["passive_tracer"]
        .sel(time=t)
        .copy(data=np.broadcast_to(0.01 * blob, (4, 32, 64)).copy())
    )
    out = world_tracer_transport(anomaly, split="test", time=t, spinup_days=2, progress=False)
    assert out["passive_tracer_anomaly"].dims == (
        "prediction_timedelta", "level", "latitude", "longitude"
    )  # fmt: skip
    for k in range(2):
        own = out["passive_tracer"].isel(prediction_timedelta=k).values
        np.testing.assert_allclose(own, split["passive_tracer"].sel(
            time=t + np.timedelta64(6 * k, "h")).values, atol=1e-4)  # fmt: skip
    # at the time itself, bit for bit (the stored run's compiled chunks and output)
    np.testing.assert_array_equal(
        out["passive_tracer"].isel(prediction_timedelta=0).values,
        split["passive_tracer"].sel(time=t).values,
    )
    a0 = out["passive_tracer_anomaly"].isel(prediction_timedelta=0).values
    a1 = out["passive_tracer_anomaly"].isel(prediction_timedelta=1).values
    np.testing.assert_allclose(a0, anomaly.values, atol=1e-4)
    assert np.abs(a1 - a0).max() > 1e-4  # it moved
    assert 0.8 < a1.sum() / a0.sum() < 1.0  # relaxes (5-day timescale), roughly conserved
    with pytest.raises(ValueError, match="split"):
        world_tracer_transport(anomaly, split="later", time=t)
    with pytest.raises(ValueError, match="not a"):
        world_tracer_transport(anomaly, split="test", time=t + np.timedelta64(1, "h"))
    with pytest.raises(ValueError, match="dims"):
        world_tracer_transport(anomaly.isel(level=0), split="test", time=t)
    with pytest.raises(ValueError, match="NaN"):
        world_tracer_transport(anomaly.where(anomaly > 1e-3), split="test", time=t,
                               spinup_days=2)  # fmt: skip
    with pytest.raises(ValueError, match="not on the world's grid"):
        world_tracer_transport(anomaly.isel(longitude=slice(0, 32)), split="test", time=t,
                               spinup_days=2)  # fmt: skip
    # levels that leave part of the column beyond the interpolation's reach: refused (the
    # anomaly was NaN everywhere within a step, silently)
    for levels in ([700.0], [500.0, 850.0]):
        with pytest.raises(ValueError, match="do not reach every sigma level"):
            world_tracer_transport(anomaly.sel(level=levels), split="test", time=t,
                                   spinup_days=2, progress=False)  # fmt: skip
    with pytest.raises(TypeError, match=r"\['days'\] are the split's own"):
        world_tracer_transport(anomaly, split="test", time=t, days=3, spinup_days=2)


def test_shipped_da_model_carries_anomalies_that_the_forecast_model_amplifies(anomalies):
    """The anomaly at the second input time only (a 4DVar increment): the response of
    ``fuxi-hs-t21-da`` has about the world's amplitude; ``fuxi-hs-t21`` extrapolates it."""
    import xfuxi
    from xfuxi.data.channels import stack

    times, windows, offsets = anomaly_samples(anomalies, "t0")
    gains = {}
    for name in ("fuxi-hs-t21", "fuxi-hs-t21-da"):
        model = xfuxi.load_model(name)
        tracer = [i for i, c in enumerate(model.channels) if c[0] == "passive_tracer"]
        levels = [model.channels[i][1] for i in tracer]
        base = stack(anomalies.drop_vars("passive_tracer_anomaly"), model.channels)
        base = base.transpose("time", "channel", "latitude", "longitude").values
        a = anomalies["passive_tracer_anomaly"].sel(level=levels).values
        clean = base[times[:, :2]].astype("float32")
        pert = clean.copy()
        for b in range(len(times)):
            pert[b, 1, tracer] += a[windows[b], 0, offsets[b, 1]]
        with torch.no_grad():
            out = model(torch.as_tensor(np.concatenate([clean, pert]))).numpy()
        resp = out[len(times) :, tracer] - out[: len(times), tracer]
        world = np.stack([a[windows[b], 0, offsets[b, 2]] for b in range(len(times))])
        gains[name] = float((resp * world).sum() / (world**2).sum())
    assert 0.8 < gains["fuxi-hs-t21-da"] < 1.25, gains
    assert gains["fuxi-hs-t21"] > 1.3, gains


def test_damaged_anomaly_cache_is_generated_again(tmp_path, monkeypatch):
    """The anomalies' cache store is verified as the world's is (issue 20, item 4)."""
    import json

    import xarray as xr

    from xfuxi.files import MARKER, verify_directory
    from xfuxi.world import tracer_anomalies
    from xfuxi.world.simulator import CACHE_KIND

    runs = []

    def fake(config, progress):  # stands in for the run: the cache logic is under test
        runs.append(config)
        data = np.arange(24.0).reshape(2, 12)
        return xr.Dataset(
            {"a": (("x", "y"), data)}, attrs={"config": json.dumps(config, sort_keys=True)}
        )

    monkeypatch.setattr(tracer_anomalies, "_generate", fake)
    kw = dict(days=1, members=1, cache_dir=tmp_path, **KW)
    first = held_suarez_tracer_anomalies(**kw)
    (store,) = [p for p in tmp_path.iterdir() if p.name.startswith("tracer_anomalies-")]
    verify_directory(store, kind=CACHE_KIND)
    held_suarez_tracer_anomalies(**kw)
    assert len(runs) == 1
    (store / "a" / "0.0").write_bytes((store / "a" / "0.0").read_bytes()[:5])
    with pytest.warns(UserWarning) as said:
        again = held_suarez_tracer_anomalies(**kw)
    text = " ".join(str(w.message) for w in said)
    assert len(runs) == 2 and str(store) in text and "truncated" in text
    xr.testing.assert_identical(again, first)
    (store / MARKER).unlink()  # as written by an older xfuxi
    held_suarez_tracer_anomalies(**kw)
    assert len(runs) == 3
    verify_directory(store, kind=CACHE_KIND)


def test_the_anomaly_world_is_a_world_config(anomalies, cache, monkeypatch):
    # issue 19 (one schema for the world's options): the run's world is a WorldConfig (its
    # fields still work as keywords, the cache key is unchanged); output_hours must be 6
    from xfuxi.world import tracer_anomalies
    from xfuxi.world.simulator import WorldConfig

    def no_run(*args, **kwargs):
        raise AssertionError("the same world given as a config was run again")

    monkeypatch.setattr(tracer_anomalies, "_generate", no_run)
    world = WorldConfig(days=2, seed=4, start="2001-01-01", spinup_days=60)
    again = held_suarez_tracer_anomalies(config=world, members=3, cache_dir=cache,
                                         progress=False)  # fmt: skip
    xr.testing.assert_identical(again, anomalies)
    with pytest.raises(ValueError, match="6-hourly"):
        held_suarez_tracer_anomalies(config=world.replace(output_hours=12), cache_dir=cache)
    assert tracer_anomalies.ANOMALY_WORLD.seed == tracer_anomalies.ANOMALY_RUN["seed"]
