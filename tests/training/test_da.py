"""FuXi-DA training on the tiny world: the loss, K switchable, CORR, resuming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from tests import tiny_da
from xfuxi.models.base import ForecastModel, NormStats
from xfuxi.models.fuxi_da import load_da_model, save_da_model
from xfuxi.training.da import DAConfig, initial_da_network, new_da_network, train_da

C = len(tiny_da.MODEL_CHANNELS)
forecast_model = tiny_da.forecast_model

CFG = dict(
    steps=6, batch_size=2, leads=(1,), forecast_steps=1, sensor_channels=("wv6.9", "ir10.8"),
    frames=(0.0,), satellites=(90.0,), width=4, scales=2, checkpoint_every=3, val_every=3,
    log_every=2, lr=1e-2,
)  # fmt: skip


def test_train_reduces_loss_and_keeps_forecast_model_frozen(tmp_path):
    truth = tiny_da.truth(10)
    model = forecast_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    net, hist = train_da(
        truth, model, config=DAConfig(**{**CFG, "steps": 12}, checkpoint_dir=tmp_path),
        validation=tiny_da.truth(6, seed=5), progress=False,
    )  # fmt: skip
    assert len(hist["loss"]) == 12 and np.isfinite(hist["lk"]).all()
    assert np.mean(hist["l0"][-3:]) < hist["l0"][0]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert all(p.requires_grad for p in model.parameters())
    back = load_da_model(tmp_path / "latest")
    assert back.sensor_channels == ("wv6.9", "ir10.8") and back.metadata["step"] == 12
    assert hist["val_step"] == [0, 3, 6, 9, 12]


def test_k0_and_corr():
    truth = tiny_da.truth(8)
    model = forecast_model()
    net, hist = train_da(truth, model, config=DAConfig(**{**CFG, "forecast_steps": 0}),
                         progress=False)  # fmt: skip
    assert np.isnan(hist["lk"]).all()
    corr, _ = train_da(truth, model, config=DAConfig(**{**CFG, "observations": False}),
                       progress=False)  # fmt: skip
    assert not corr.uses_observations and corr.net.observation_in is None


def test_departure_input_trains_and_resumes_only_with_the_same_setting(tmp_path):
    truth = tiny_da.truth(8)
    model = forecast_model()
    cfg = DAConfig(**{**CFG, "forecast_steps": 0, "steps": 3, "departure_input": True},
                   checkpoint_dir=tmp_path)  # fmt: skip
    net, hist = train_da(truth, model, config=cfg, progress=False)
    assert net.departure_input and net.n_obs_channels == 3 * 2 + 5 + 3
    assert np.isfinite(hist["loss"]).all()
    other = DAConfig(**{**CFG, "forecast_steps": 0, "steps": 6}, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="departure_input"):
        train_da(truth, model, config=other, progress=False)


def test_init_from_corr_starts_assi_at_corr(tmp_path):
    from xfuxi.models.fuxi_da import save_da_model
    from xfuxi.training.da import initial_da_network

    truth = tiny_da.truth(8)
    model = forecast_model()
    base = {**CFG, "forecast_steps": 0, "steps": 4}
    corr, _ = train_da(truth, model, config=DAConfig(**base, observations=False), progress=False)
    path = save_da_model(corr, tmp_path / "corr")
    cfg = DAConfig(**base, departure_input=True, init_from=str(path))
    start = initial_da_network(cfg, model)
    assert start.uses_observations and start.departure_input
    x = 100.0 + torch.randn(2, C, len(tiny_da.LAT), len(tiny_da.LON))
    obs = torch.randn(2, start.n_obs_channels, len(tiny_da.LAT), len(tiny_da.LON))
    assert float(corr(x).detach().abs().max()) > 0
    torch.testing.assert_close(start(x, obs), corr(x))
    # then it learns to use the radiances: its increment no longer equals CORR's
    net, hist = train_da(truth, model, config=cfg, progress=False)
    assert not torch.allclose(net(x, obs), corr(x))
    # the same kind is trained further as it is; an ASSI network cannot start CORR
    again = initial_da_network(DAConfig(**base, observations=False, init_from=str(path)), model)
    torch.testing.assert_close(again(x), corr(x))
    assi_path = save_da_model(net, tmp_path / "assi")
    with pytest.raises(ValueError, match="is an ASSI network"):
        initial_da_network(DAConfig(**base, observations=False, init_from=str(assi_path)), model)
    with pytest.raises(ValueError, match="either network= or config.init_from"):
        train_da(truth, model, config=cfg, network=net, progress=False)


def test_gradient_input_network_starts_from_corr_and_trains(tmp_path):
    truth, model = tiny_da.truth(8), forecast_model()
    base = {**CFG, "forecast_steps": 0, "departure_input": True, "channel_dropout": 0.5}
    corr, _ = train_da(truth, model, config=DAConfig(**base, observations=False), progress=False)
    path = save_da_model(corr, tmp_path / "corr")
    cfg = DAConfig(**base, gradient_input=True, init_from=str(path))
    net, hist = train_da(truth, model, config=cfg, progress=False)
    assert net.gradient_input and np.isfinite(hist["loss"]).all() and len(hist["loss"]) == 6
    from xfuxi.assimilation.da import da_inputs
    from xfuxi.observations.imager import imager_observations

    radiances = imager_observations(truth, satellites=[90.0], channels=net.sensor_channels,
                                    frames=net.frames, times=truth.time.values[2:3])  # fmt: skip
    xb, obs = da_inputs(truth.isel(time=[1]).assign_coords(time=truth.time.values[2:3]),
                        radiances, net)  # fmt: skip
    assert float(net.gradient_features(xb, obs).abs().max()) > 0
    assert not torch.allclose(net(xb, obs), corr(xb))  # trained on from where CORR was
    # an ASSI network with other inputs does not start a run (its inputs would be ignored)
    assi = save_da_model(net, tmp_path / "grad")
    with pytest.raises(ValueError, match="has gradient_input=True; this run has gradient_input"):
        initial_da_network(DAConfig(**base, init_from=str(assi)), model)


def test_assi_from_corr_refuses_mismatched_networks():
    from tests.models.test_fuxi_da import tiny_da_model
    from xfuxi.models.fuxi_da import assi_from_corr

    corr, assi = tiny_da_model(observations=False), tiny_da_model()
    with pytest.raises(ValueError, match="a CORR network and an ASSI network"):
        assi_from_corr(assi, corr)
    wide = new_da_network(DAConfig(**{**CFG, "width": 6}), forecast_model())
    with pytest.raises(ValueError, match="differ in width"):
        assi_from_corr(corr, wide)


def test_channel_dropout_makes_whole_channels_missing_in_training(tmp_path):
    from xfuxi.training.da import da_loss, prepare_da_samples

    truth = tiny_da.truth(8)
    model = forecast_model()
    cfg = DAConfig(**{**CFG, "forecast_steps": 0, "departure_input": True})
    net = new_da_network(cfg, model)
    samples = prepare_da_samples(truth, model, net, leads=(1,), forecast_steps=0)
    obs = samples.observations[:2]
    drop = torch.tensor([[True, False], [False, False]])
    out = net.drop_channels(obs, drop)
    # channel 0 of sample 0: radiances, mask and departures zero; everything else untouched
    s = 2
    for k in (0, s, 2 * s):  # one frame: radiances, masks, departures of channel 0
        assert float(out[0, k].abs().max()) == 0 and float(obs[0, k].abs().max()) > 0
    untouched = [i for i in range(obs.shape[1]) if i not in (0, s, 2 * s)]
    torch.testing.assert_close(out[0, untouched], obs[0, untouched])
    torch.testing.assert_close(out[1], obs[1])
    with pytest.raises(ValueError, match="drop must be"):
        net.drop_channels(obs, drop[:, :1])
    # in the loss: the same as training on features with those channels missing
    import dataclasses

    pick = np.arange(2)
    w = torch.ones(len(tiny_da.LAT), 1)
    with torch.no_grad():
        net.net.head.weight.normal_(0, 1.0)
    every = torch.ones(2, s, dtype=torch.bool)
    dropped, _ = da_loss(net, model, samples, pick, forecast_steps=0, weights=w, drop=every)
    gone = dataclasses.replace(samples, observations=net.drop_channels(obs, every))
    by_hand, _ = da_loss(net, model, gone, pick, forecast_steps=0, weights=w)
    kept, _ = da_loss(net, model, samples, pick, forecast_steps=0, weights=w)
    torch.testing.assert_close(dropped, by_hand)
    assert float(abs(dropped - kept)) > 1e-6
    # a run with dropout trains, is resumable only with the same setting, and is refused
    # outside [0, 1)
    run = DAConfig(**{**CFG, "forecast_steps": 0, "steps": 2, "channel_dropout": 0.5},
                   checkpoint_dir=tmp_path)  # fmt: skip
    train_da(truth, model, config=run, progress=False)
    other = DAConfig(**{**CFG, "forecast_steps": 0, "steps": 4}, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="channel_dropout"):
        train_da(truth, model, config=other, progress=False)
    with pytest.raises(ValueError, match="channel_dropout must be in"):
        DAConfig(channel_dropout=1.0)


def test_loss_scale_divides_by_the_chosen_std():
    from xfuxi.training.da import da_loss, prepare_da_samples

    truth = tiny_da.truth(8)
    model = forecast_model()
    stats = model.stats
    model = ForecastModel(
        model.net, channels=model.channels, latitude=model.latitude, longitude=model.longitude,
        stats=NormStats(stats.mean, stats.std, stats.std / 10), name="persist",
    )  # fmt: skip
    net = new_da_network(DAConfig(**{**CFG, "forecast_steps": 0}), model)
    assert not torch.allclose(net._std, net._diff_std)
    samples = prepare_da_samples(truth, model, net, leads=(1,), forecast_steps=0)
    pick = np.arange(len(samples))
    w = torch.ones(len(tiny_da.LAT), 1)
    err = samples.background - samples.truth[torch.as_tensor(samples.index)]  # untrained: xa = xb
    for scale, std in (("std", net._std), ("diff_std", net._diff_std)):
        loss, _ = da_loss(net, model, samples, pick, forecast_steps=0, weights=w, loss_scale=scale)
        torch.testing.assert_close(loss, (err / std).abs().mean())
    with pytest.raises(ValueError, match="loss_scale"):
        DAConfig(loss_scale="variance")


def test_resume_continues_exactly(tmp_path):
    truth = tiny_da.truth(8)
    val = {"validation": tiny_da.truth(8, seed=3), "progress": False}
    cfg = DAConfig(**CFG)
    full, h_full = train_da(truth, forecast_model(), config=cfg, **val)
    train_da(truth, forecast_model(), config=cfg.replace(max_minutes=1e-9, checkpoint_dir=tmp_path),
             **val)  # fmt: skip
    with pytest.raises(ValueError, match="other settings"):
        train_da(truth, forecast_model(), config=cfg.replace(lr=0.5, checkpoint_dir=tmp_path),
                 **val)  # fmt: skip
    resumed, h_res = train_da(truth, forecast_model(), config=cfg.replace(checkpoint_dir=tmp_path),
                              **val)  # fmt: skip
    assert h_res["step"] == h_full["step"]
    # the run stopped by max_minutes added no validation of its own (it did: [0, 1, 3, 6])
    assert h_res["val_step"] == h_full["val_step"] == [0, 3, 6]
    np.testing.assert_allclose(h_res["loss"], h_full["loss"], rtol=1e-5)
    for a, b in zip(resumed.parameters(), full.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_too_short_truth():
    with pytest.raises(ValueError, match="at least"):
        train_da(tiny_da.truth(3), forecast_model(), config=DAConfig(**CFG), progress=False)


@pytest.mark.parametrize("precision", [None, "bfloat16"])
def test_cli_train_da(tmp_path, monkeypatch, capsys, precision):
    import xfuxi.cli as cli
    import xfuxi.models.registry as registry

    monkeypatch.setattr(cli.train, "world_split", lambda split, days: tiny_da.truth(8))
    monkeypatch.setattr(registry, "load_model", lambda name, **kw: forecast_model())
    rc = cli.main([
        "--no-progress", "train-da", "--steps", "2", "--batch-size", "2", "--leads", "1",
        "--forecast-steps", "1", "--sensor-channels", "wv6.2", "ir10.8", "--frames", "0",
        "--satellites", "90", "--width", "4", "--scales", "2", "--out", str(tmp_path / "run"),
        *(["--precision", precision] if precision else []),
    ])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    back = load_da_model(tmp_path / "run" / "model")
    assert back.sensor_channels == ("wv6.2", "ir10.8") and back.metadata["step"] == 2
    assert back.metadata["train_config"]["precision"] == (precision or "float32")


def _da_run(precision, truth, **kw):
    """Two steps of a new network: (network, history, the dtypes of its layers' outputs)."""
    cfg = DAConfig(**{**CFG, "steps": 2, "precision": precision, **kw})
    model = forecast_model()
    net = new_da_network(cfg, model)
    seen = set()
    hooks = [
        m.register_forward_hook(lambda m, a, out: seen.add(out.dtype))
        for m in net.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    trained, hist = train_da(truth, model, config=cfg, network=net, progress=False)
    for h in hooks:
        h.remove()
    return trained, hist, seen


def test_bfloat16_step_runs_under_autocast_and_stays_near_float32():
    truth = tiny_da.truth(8)
    start = new_da_network(DAConfig(**CFG), forecast_model()).state_dict()
    bf, bf_hist, bf_dtypes = _da_run("bfloat16", truth)
    fp, fp_hist, fp_dtypes = _da_run("float32", truth)
    assert bf_dtypes == {torch.bfloat16} and fp_dtypes == {torch.float32}
    assert np.isfinite(bf_hist["loss"]).all() and len(bf_hist["loss"]) == 2
    assert bf_hist["loss"][0] != fp_hist["loss"][0]
    assert bf_hist["loss"][0] == pytest.approx(fp_hist["loss"][0], rel=2e-2)
    assert all(p.dtype == torch.float32 for p in bf.parameters())
    u = torch.cat([(v - start[k]).flatten() for k, v in bf.state_dict().items()])
    v = torch.cat([(w - start[k]).flatten() for k, w in fp.state_dict().items()])
    assert u.norm() > 0 and not torch.equal(u, v)  # moved, not as float32 exactly
    assert float(torch.nn.functional.cosine_similarity(u, v, dim=0)) > 0.8
    assert bf.metadata["train_config"]["precision"] == "bfloat16"


def test_bfloat16_resumes_and_float32_checkpoints_of_before_still_resume(tmp_path):
    from xfuxi.training.da import _run_settings

    truth = tiny_da.truth(8)
    cfg = DAConfig(**CFG, precision="bfloat16")
    full, h_full = train_da(truth, forecast_model(), config=cfg, progress=False)
    train_da(truth, forecast_model(), config=cfg.replace(max_minutes=1e-9, checkpoint_dir=tmp_path),
             progress=False)  # fmt: skip
    back = load_da_model(tmp_path / "latest")
    assert all(p.dtype == torch.float32 for p in back.parameters())
    assert back.metadata["train_config"]["precision"] == "bfloat16"
    with pytest.raises(ValueError, match="other settings"):
        train_da(truth, forecast_model(),
                 config=cfg.replace(precision="float32", checkpoint_dir=tmp_path),
                 progress=False)  # fmt: skip
    resumed, h_res = train_da(truth, forecast_model(), config=cfg.replace(checkpoint_dir=tmp_path),
                              progress=False)  # fmt: skip
    assert h_res["step"] == h_full["step"]
    np.testing.assert_allclose(h_res["loss"], h_full["loss"], rtol=1e-5)
    for a, b in zip(resumed.parameters(), full.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # a checkpoint's config from before the setting existed is a float32 run's
    old = {k: v for k, v in DAConfig(**CFG).to_dict().items() if k != "precision"}
    assert _run_settings(old) == _run_settings(DAConfig(**CFG).to_dict())
    assert _run_settings(old) != _run_settings(cfg.to_dict())


def test_old_checkpoint_dir_keyword_still_works(tmp_path):
    """checkpoint_dir moved into DAConfig; the keyword warns, the run is the same."""
    truth = tiny_da.truth(8)
    cfg = DAConfig(**{**CFG, "steps": 2})
    new, h_new = train_da(truth, forecast_model(), config=cfg, progress=False)
    with pytest.warns(DeprecationWarning, match=r"pass config=DAConfig\(checkpoint_dir=\.\.\.\)"):
        old, h_old = train_da(truth, forecast_model(), config=cfg, checkpoint_dir=tmp_path,
                              progress=False)  # fmt: skip
    assert (tmp_path / "latest").is_dir() and h_old["loss"] == h_new["loss"]
    with pytest.raises(TypeError, match="stepz"):
        train_da(truth, forecast_model(), stepz=2)


def _pairs(truth, times, noise: float, members: int = 2, seed: int = 0):
    """Analysed input pairs at ``times`` as a cycling store keeps them: the truth + noise."""
    import xarray as xr

    from xfuxi.data.channels import channel_name, stack

    arr = stack(truth, tiny_da.MODEL_CHANNELS).transpose("time", "channel", "latitude", "longitude")
    idx = [int(np.nonzero(truth["time"].values == t)[0][0]) for t in times]
    pairs = np.stack([arr.values[[i - 1, i]] for i in idx])[:, None]
    scale = np.asarray(forecast_model().stats.std)[None, None, None, :, None, None]
    rng = np.random.default_rng(seed)
    pairs = pairs + noise * scale * rng.standard_normal((len(idx), members, *pairs.shape[2:]))
    return xr.DataArray(
        pairs.astype("float32"),
        dims=("time", "member", "pair", "channel", "latitude", "longitude"),
        coords={"time": np.asarray(times),
                "channel": [channel_name(c) for c in tiny_da.MODEL_CHANNELS],
                "pair": np.array([-6, 0], dtype="m8[h]").astype("m8[ns]")},
    )  # fmt: skip


@pytest.mark.parametrize("departures", [False, True])
def test_backgrounds_from_cycled_analyses_are_their_forecasts(departures):
    """Each analysed pair at t gives the sample at t + 6 h: background the model's step from
    it, previous step the analysis at t, target and radiances of t + 6 h; pairs whose t + 6 h
    is not an analysis time of the samples are left out."""
    from xfuxi.training.da import prepare_da_samples

    truth = tiny_da.truth(10)
    model = forecast_model()
    cfg = DAConfig(**{**CFG, "forecast_steps": 1, "departure_input": departures})
    net = new_da_network(cfg, model)
    times = truth["time"].values
    states = _pairs(truth, times[[2, 5, 8]], noise=0.5)  # t + 6 h of 8 is the last time: out
    plain = prepare_da_samples(truth, model, net, leads=(1,), forecast_steps=1)
    got = prepare_da_samples(truth, model, net, leads=(1,), forecast_steps=1, cycled_states=states)
    n = len(plain)
    assert plain.n_cycled == 0 and got.n_cycled == 4 and len(got) == n + 4
    torch.testing.assert_close(got.background[:n], plain.background)
    pairs = torch.as_tensor(states.values[:2]).flatten(0, 1)
    with torch.no_grad():
        torch.testing.assert_close(got.background[n:], model(pairs))
    torch.testing.assert_close(got.previous[n:], pairs[:, 1])
    np.testing.assert_array_equal(got.index[n:], [3, 3, 6, 6])
    assert (got.lead[n:] == 0).all() and (got.lead[:n] == 1).all()
    assert got.cycled_digest is not None and plain.cycled_digest is None
    # the observation features of a cycled sample are those of its analysis time
    obs_cyc = got.observations[got.time_slot[n:]]
    if not departures:  # the same radiance features as the lead sample at that time
        same = [int(np.nonzero(plain.index == i)[0][0]) for i in (3, 6)]
        torch.testing.assert_close(obs_cyc[[0, 2]], plain.observations[plain.time_slot[same]])
    else:  # departures from its own background
        assert not torch.equal(obs_cyc[0], obs_cyc[1])
    with pytest.raises(ValueError, match="cycled_states"):  # another period
        later = states.assign_coords(time=states.time + np.timedelta64(3650, "D"))
        prepare_da_samples(truth, model, net, leads=(1,), forecast_steps=1, cycled_states=later)
    with pytest.raises(ValueError, match="cycled_states"):  # other channels
        bad = states.assign_coords(channel=[f"c{i}" for i in range(C)])
        prepare_da_samples(truth, model, net, leads=(1,), forecast_steps=1, cycled_states=bad)


def test_batches_draw_the_cycled_fraction_from_cycled_backgrounds():
    from xfuxi.training.da import _draw

    rng = np.random.default_rng(0)
    for fraction, want in ((0.5, 2), (0.25, 1), (1.0, 4), (0.0, 0)):
        picks = np.stack([_draw(rng, 20, 6, 4, fraction) for _ in range(200)])
        assert ((picks >= 14).sum(1) == want).all()  # the last 6 of 20 are the cycled ones
        assert picks.min() >= 0 and picks.max() < 20
    assert set(np.concatenate([_draw(rng, 20, 6, 4, 0.5) for _ in range(200)])) == set(range(20))
    plain = np.random.default_rng(1)  # without cycled samples: the draw of before
    np.testing.assert_array_equal(
        _draw(plain, 20, 0, 4, 0.5), np.random.default_rng(1).choice(20, size=4, replace=False)
    )
    with pytest.raises(ValueError, match="cycled_fraction"):
        DAConfig(cycled_fraction=1.5)


def test_training_on_cycled_backgrounds_resumes_only_with_the_same_states(tmp_path):
    truth = tiny_da.truth(10)
    times = truth["time"].values[[2, 4, 5, 6]]
    states = _pairs(truth, times, noise=2.0)
    cfg = DAConfig(**{**CFG, "forecast_steps": 0, "steps": 4, "cycled_fraction": 0.5})
    full, h_full = train_da(truth, forecast_model(), config=cfg, cycled_states=states,
                            progress=False)  # fmt: skip
    plain, h_plain = train_da(truth, forecast_model(), config=cfg, progress=False)
    # half of each batch starts from backgrounds with the cycled analyses' errors
    assert h_full["l0"][0] > 1.5 * h_plain["l0"][0]
    run = cfg.replace(checkpoint_dir=tmp_path)
    train_da(truth, forecast_model(), config=run.replace(max_minutes=1e-9),
             cycled_states=states, progress=False)  # fmt: skip
    for other in (None, _pairs(truth, times, noise=2.0, seed=1)):
        with pytest.raises(ValueError, match="other cycled states"):
            train_da(truth, forecast_model(), config=run, cycled_states=other, progress=False)
    resumed, h_res = train_da(truth, forecast_model(), config=run, cycled_states=states,
                              progress=False)  # fmt: skip
    np.testing.assert_allclose(h_res["loss"], h_full["loss"], rtol=1e-5)


def test_cli_train_da_on_cycled_states(tmp_path, monkeypatch, capsys):
    import xfuxi.assimilation.cycle as cycle_mod
    import xfuxi.cli as cli
    import xfuxi.models.registry as registry

    truth = tiny_da.truth(10)
    states = _pairs(truth, truth["time"].values[[2, 4]], noise=1.0)
    seen = {}

    def fake_open(path, *, members=None, skip_days=0.0):
        seen[path] = (members, skip_days)
        return states.isel(member=slice(0, members))

    monkeypatch.setattr(cycle_mod, "open_cycle_states", fake_open)
    monkeypatch.setattr(cli.train, "world_split", lambda split, days: truth)
    monkeypatch.setattr(registry, "load_model", lambda name, **kw: forecast_model())
    rc = cli.main([
        "--no-progress", "train-da", "--steps", "2", "--batch-size", "2", "--leads", "1",
        "--forecast-steps", "0", "--sensor-channels", "wv6.2", "ir10.8", "--frames", "0",
        "--satellites", "90", "--width", "4", "--scales", "2", "--cycled-states", "a.zarr",
        "b.zarr", "--cycled-members", "1", "--cycled-fraction", "1",
        "--out", str(tmp_path / "run"),
    ])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert seen == {"a.zarr": (1, 2.0), "b.zarr": (1, 2.0)}
    back = load_da_model(tmp_path / "run" / "model")
    assert back.metadata["train_config"]["cycled_fraction"] == 1.0
    assert len(back.metadata["cycled_states"]) == 64  # the states' sha256, for provenance
    with pytest.raises(SystemExit, match="--cycled-states: .* is not a cycling store"):
        monkeypatch.undo()
        cli.main(["train-da", "--cycled-states", str(tmp_path), "--out", str(tmp_path / "m")])


def _trained_start(tmp_path):
    """A tiny world, its forecast model, a 3-step config with departures, the network it
    trains and where that network is saved."""
    truth = tiny_da.truth(8)
    model = forecast_model()
    cfg = DAConfig(**{**CFG, "forecast_steps": 0, "steps": 3, "departure_input": True})
    start, _ = train_da(truth, model, config=cfg, progress=False)
    return truth, model, cfg, start, save_da_model(start, tmp_path / "start")


def test_init_from_a_network_without_departure_context_starts_as_it(tmp_path):
    from xfuxi.training.da import prepare_da_samples

    truth, model, cfg, start, path = _trained_start(tmp_path)
    wider = cfg.replace(departure_context=True, init_from=str(path))
    untrained, _ = train_da(truth, model, config=wider.replace(steps=0), progress=False)
    assert untrained.departure_context and not start.departure_context
    s = prepare_da_samples(truth, model, start, leads=(1,), forecast_steps=0)
    with torch.no_grad():
        torch.testing.assert_close(untrained(s.background, s.observations),
                                   start(s.background, s.observations))  # fmt: skip
    trained, hist = train_da(truth, model, config=wider, progress=False)
    assert trained.departure_context and np.isfinite(hist["loss"]).all()
    assert float(trained.net.observation_in[0].weight[:, -2:].detach().abs().max()) > 0  # learns
    with pytest.raises(ValueError, match="departure_context"):  # no way back
        train_da(truth, model, config=cfg.replace(init_from=str(save_da_model(
            trained, tmp_path / "ctx"))), progress=False)  # fmt: skip


def _loss_case(forecast_steps: int):
    """An untrained network, its samples on the tiny world, area weights and every sample."""
    from xfuxi.training.da import prepare_da_samples
    from xfuxi.verify.weights import area_weights

    model = forecast_model()
    net = new_da_network(DAConfig(**{**CFG, "forecast_steps": forecast_steps}), model)
    s = prepare_da_samples(tiny_da.truth(8), model, net, leads=(1,), forecast_steps=forecast_steps)
    w = torch.as_tensor(area_weights(tiny_da.LAT).values, dtype=torch.float32).view(1, 1, -1, 1)
    return net, model, s, w, np.arange(len(s))


def test_activity_penalty_is_the_eddy_activity_difference():
    """``L_A`` is the mean |A(x_a) − A(x_t)| (A: area-weighted RMS departure from the zonal
    mean in std units), zero for the truth itself, larger for a damped analysis."""
    from xfuxi.training.da import da_loss

    net, model, s, w, pick = _loss_case(forecast_steps=0)
    base, parts0 = da_loss(net, model, s, pick, forecast_steps=0, weights=w)
    loss, parts = da_loss(net, model, s, pick, forecast_steps=0, weights=w, activity_weight=2.0)
    assert "activity" not in parts0  # off by default
    xb, xt = s.background, s.truth[torch.as_tensor(s.index)]  # untrained: x_a = x_b

    def activity(x):  # by hand, in numpy
        e = ((x - x.mean(-1, keepdim=True)) / net._std).numpy() ** 2
        wn = w.numpy()
        return np.sqrt((e * wn).mean((-2, -1)) / wn.mean())

    want = np.abs(activity(xb) - activity(xt)).mean()
    np.testing.assert_allclose(float(parts["activity"]), want, rtol=1e-4)
    torch.testing.assert_close(loss, base + 2.0 * parts["activity"])
    s.background = xt.clone()  # the truth as background: no penalty
    _, exact = da_loss(net, model, s, pick, forecast_steps=0, weights=w, activity_weight=1.0)
    assert float(exact["activity"]) < 1e-4
    s.background = xt.mean(-1, keepdim=True).expand_as(xt).clone()  # zonal means: damped
    _, flat = da_loss(net, model, s, pick, forecast_steps=0, weights=w, activity_weight=1.0)
    np.testing.assert_allclose(float(flat["activity"]), activity(xt).mean(), rtol=1e-3)
    with pytest.raises(ValueError, match="activity_weight"):
        DAConfig(activity_weight=-1.0)


def test_init_from_a_network_without_linear_update_starts_as_it_or_its_fit(tmp_path):
    from xfuxi.training.da import prepare_da_samples

    truth, model, cfg, start, path = _trained_start(tmp_path)
    wider = cfg.replace(linear_update=True, init_from=str(path))
    untrained, _ = train_da(
        truth, model, config=wider.replace(steps=0, fit_linear_update=False), progress=False
    )
    assert untrained.linear_update and not start.linear_update
    s = prepare_da_samples(truth, model, start, leads=(1,), forecast_steps=0)
    with torch.no_grad():
        torch.testing.assert_close(untrained(s.background, s.observations),
                                   start(s.background, s.observations))  # fmt: skip
    fitted, _ = train_da(truth, model, config=wider.replace(steps=0), progress=False)
    assert float(fitted.net.linear.weight.detach().abs().max()) > 0  # the least-squares start
    trained, hist = train_da(truth, model, config=wider, progress=False)
    assert trained.linear_update and np.isfinite(hist["loss"]).all()
    assert not torch.equal(trained.net.linear.weight, fitted.net.linear.weight)  # trained on
    with pytest.raises(ValueError, match="linear_update"):  # no way back
        train_da(truth, model, config=cfg.replace(init_from=str(save_da_model(
            trained, tmp_path / "upd"))), progress=False)  # fmt: skip
    new, _ = train_da(truth, model, config=cfg.replace(linear_update=True, steps=0), progress=False)
    assert new.linear_update  # a new network gets it too


def test_fit_linear_update_is_the_ridge_solution_on_the_update_inputs():
    """Against a plain construction: each regressor is the convolution's output with one
    weight set to 1 (so the padding, the window and the order are the convolution's own),
    the rows weighted by area, the ridge the one the fit chose per channel."""
    from xfuxi.grid import area_weights
    from xfuxi.models.fuxi_da import with_linear_update
    from xfuxi.training.da import LINEAR_FIT_RIDGE, fit_linear_update, prepare_da_samples

    truth = tiny_da.truth(12)
    model = forecast_model()
    cfg = DAConfig(**{**CFG, "forecast_steps": 0, "steps": 4, "departure_input": True})
    start, _ = train_da(truth, model, config=cfg, progress=False)
    net = with_linear_update(start)
    s = prepare_da_samples(truth, model, net, leads=(1,), forecast_steps=0)
    with pytest.raises(ValueError, match="too few"):
        fit_linear_update(net, s, max_samples=1)
    with pytest.raises(ValueError, match="needs a network with linear_update"):
        fit_linear_update(start, s)
    info = fit_linear_update(net, s, holdout=0.25)
    n = len(s)
    assert info["samples"] == n and len(info["ridge"]) == len(net.channels)
    assert all(r in LINEAR_FIT_RIDGE for r in info["ridge"])
    assert np.mean(info["mse_after"]) < np.mean(info["mse_before"])
    with torch.no_grad():
        xb, obs = s.background, s.observations[s.time_slot]
        first = net.network_increment(xb, obs)
        y = ((s.truth[s.index] - xb - first) / net._diff_std).double()
        feats = net.update_features(xb + first, obs)
        conv = net.net.linear
        cols = []
        for i in range(conv.weight.shape[1]):
            for a in range(conv.weight.shape[2]):
                for b in range(conv.weight.shape[3]):
                    probe = type(conv)(conv.weight.shape[1], 1, conv.kernel_size[0])
                    probe.weight.zero_()
                    probe.bias.zero_()
                    probe.weight[0, i, a, b] = 1.0
                    cols.append(probe(feats)[:, 0].double())
        cols.append(torch.ones_like(cols[0]))
        x = torch.stack(cols, -1).flatten(0, 2)  # (rows, P + 1)
        w = torch.as_tensor(area_weights(net.latitude).values)
        w = (w / w.mean())[None, :, None].expand(n, -1, len(net.longitude)).flatten()
        g = x.T @ (w[:, None] * x)
        scale = g.diagonal().mean()
        for c in range(len(net.channels)):
            rhs = x.T @ (w * y[:, c].flatten())
            coef = torch.linalg.solve(g + info["ridge"][c] * scale * torch.eye(len(g)), rhs)
            torch.testing.assert_close(conv.weight[c].flatten().double(), coef[:-1],
                                       rtol=1e-3, atol=1e-5)  # fmt: skip
            torch.testing.assert_close(conv.bias[c].double(), coef[-1], rtol=1e-3, atol=1e-5)


def test_the_forecast_weight_scales_the_forecast_term_only():
    from xfuxi.training.da import da_loss

    net, model, s, w, pick = _loss_case(forecast_steps=2)
    full, parts = da_loss(net, model, s, pick, forecast_steps=2, weights=w)
    quarter, parts_q = da_loss(
        net, model, s, pick, forecast_steps=2, weights=w, forecast_weight=0.25
    )
    assert float(parts["lk"]) > 0  # a forecast term to weigh
    torch.testing.assert_close(full, parts["l0"] + parts["lk"])
    torch.testing.assert_close(quarter, parts["l0"] + 0.25 * parts["lk"])
    torch.testing.assert_close(parts_q["lk"], parts["lk"])  # the part is reported unweighted
    assert DAConfig().forecast_weight == 1.0  # the paper's loss by default
    with pytest.raises(ValueError, match="forecast_weight"):
        DAConfig(forecast_weight=-0.5)


def test_bad_truths_and_directories_refused_before_training(tmp_path):
    truth = tiny_da.truth(8)
    cfg = DAConfig(**CFG)
    gap = truth.isel(time=[0, 1, 2, 4, 5, 6, 7])  # samples were taken by position
    with pytest.raises(ValueError, match="regular 6-hourly run .* steps from"):
        train_da(gap, forecast_model(), config=cfg, progress=False)
    bad = truth.copy(deep=True)
    bad["temperature"][3, 0, 2, 2] = np.nan
    with pytest.raises(Exception, match="truth data contain NaN"):
        train_da(bad, forecast_model(), config=cfg, progress=False)
    with pytest.raises(Exception, match="validation truth data contain NaN"):
        train_da(truth, forecast_model(), config=cfg, validation=bad, progress=False)
    with pytest.raises(ValueError, match="batch_size 64 exceeds"):
        train_da(truth, forecast_model(), config=cfg.replace(batch_size=64), progress=False)
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.txt").write_text("x")
    with pytest.raises(Exception, match="thesis.txt"):
        train_da(truth, forecast_model(), config=cfg.replace(checkpoint_dir=user), progress=False)
    assert sorted(p.name for p in user.iterdir()) == ["thesis.txt"]


def test_resume_on_another_truth_or_forecast_model_is_refused(tmp_path):
    truth = tiny_da.truth(8)
    cfg = DAConfig(**CFG).replace(checkpoint_dir=tmp_path)
    train_da(truth, forecast_model(), config=cfg.replace(max_minutes=1e-9), progress=False)
    other = truth.copy(deep=True)
    other["temperature"] = other["temperature"] + 0.5
    with pytest.raises(ValueError, match="another truth"):
        train_da(other, forecast_model(), config=cfg, progress=False)
    changed = forecast_model()
    with torch.no_grad():
        next(changed.net.parameters()).add_(0.1)
    with pytest.raises(ValueError, match="another forecast_model"):
        train_da(truth, changed, config=cfg, progress=False)
    train_da(truth, forecast_model(), config=cfg, progress=False)  # the same: resumes


def test_given_radiances_are_checked_and_put_in_order():
    from xfuxi.observations.imager import ImagerError, imager_observations
    from xfuxi.training.da import prepare_da_samples

    truth = tiny_da.truth(8)
    model = forecast_model()
    cfg = DAConfig(**{**CFG, "forecast_steps": 0})
    net = initial_da_network(cfg, model)
    kw = dict(satellites=[90.0], channels=["wv6.9", "ir10.8"], frames=(0.0,))
    rad = imager_observations(truth, **kw)
    keep = rad.copy(deep=True)
    args = dict(leads=(1,), forecast_steps=0)
    expected = prepare_da_samples(truth, model, net, radiances=rad, **args)
    lon = ((rad["longitude"] + 180.0) % 360.0) - 180.0
    for turned in (
        rad.isel(latitude=slice(None, None, -1)),  # north to south
        rad.assign_coords(longitude=lon).sortby("longitude"),
    ):  # -180..180
        got = prepare_da_samples(truth, model, net, radiances=turned, **args)
        torch.testing.assert_close(got.observations, expected.observations, rtol=0, atol=0)
    xr.testing.assert_identical(rad, keep)
    bad = {
        r"lack \['wv6.9'\] \(give radiances of every channel": rad.sel(sensor_channel=["ir10.8"]),
        "another grid": rad.isel(latitude=slice(0, 6)),
        "every pixel": rad.assign(brightness_temperature=rad["brightness_temperature"] * np.nan),
        r"come from \[270.0\] \(give radiances from the satellites": imager_observations(
            truth, **{**kw, "satellites": [270.0]}
        ),
    }
    for match, radiances in bad.items():
        with pytest.raises(ImagerError, match=match):
            prepare_da_samples(truth, model, net, radiances=radiances, **args)
    with pytest.raises(ImagerError, match="clear_only .* 'cloudy'"):
        prepare_da_samples(truth, model, net, radiances=rad.drop_vars("cloudy"),
                           clear_only=True, **args)  # fmt: skip
    with pytest.raises(ImagerError, match="another grid"):
        train_da(truth, model, config=cfg, radiances=bad["another grid"], progress=False)


def test_resume_with_other_radiances_is_refused(tmp_path):
    from xfuxi.observations.imager import imager_observations

    truth = tiny_da.truth(8)
    cfg = DAConfig(**{**CFG, "forecast_steps": 0}).replace(checkpoint_dir=tmp_path)
    rad = imager_observations(truth, satellites=[90.0], channels=["wv6.9", "ir10.8"],
                              frames=(0.0,), seed=1)  # fmt: skip
    train_da(truth, forecast_model(), config=cfg.replace(max_minutes=1e-9), radiances=rad,
             progress=False)  # fmt: skip
    warmer = rad.assign(brightness_temperature=rad["brightness_temperature"] + 20.0)
    with pytest.raises(ValueError, match="other radiances"):
        train_da(truth, forecast_model(), config=cfg, radiances=warmer, progress=False)
    with pytest.raises(ValueError, match="other radiances"):  # drawn by the imager instead
        train_da(truth, forecast_model(), config=cfg, progress=False)
    _, hist = train_da(
        truth, forecast_model(), config=cfg, radiances=rad.copy(deep=True), progress=False
    )  # the same: resumes
    assert hist["step"] == list(range(1, 7))


def test_a_too_short_validation_set_is_named_as_such():
    """It was reported as 'the truth has 3 times' (the truth had 8)."""
    with pytest.raises(ValueError, match=r"^the validation truth has 2 times"):
        train_da(tiny_da.truth(8), forecast_model(), config=DAConfig(**{**CFG, "steps": 1}),
                 validation=tiny_da.truth(2, seed=5), progress=False)  # fmt: skip
