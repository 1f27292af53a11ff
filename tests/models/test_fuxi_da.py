"""The FuXi-DA network: shapes, zero-initialised head, periodicity, fusion, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests import tiny_da
from xfuxi.models.base import NormStats
from xfuxi.models.checkpoint import CheckpointError
from xfuxi.models.fuxi_da import (
    FuXiDA,
    FuXiDANet,
    load_da_model,
    n_gradient_inputs,
    n_observation_inputs,
    observation_features,
    save_da_model,
)
from xfuxi.observations.imager import NominalImager

C = len(tiny_da.MODEL_CHANNELS)
SENSORS = ("wv6.2", "ir10.8")
FRAMES = (-2.0, 0.0)


def tiny_da_model(
    observations: bool = True, seed: int = 0, departures: bool = False, gradient: bool = False
) -> FuXiDA:
    torch.manual_seed(seed)
    n_obs = n_observation_inputs(len(FRAMES), len(SENSORS), departure_input=departures)
    n_obs += n_gradient_inputs(tiny_da.MODEL_CHANNELS) if gradient else 0
    n_obs = n_obs if observations else 0
    net = FuXiDANet(C, n_obs, width=4, scales=2)
    stats = NormStats(np.full(C, 100.0), np.full(C, 50.0), np.full(C, 2.0))
    return FuXiDA(
        net,
        channels=tiny_da.MODEL_CHANNELS,
        latitude=tiny_da.LAT,
        longitude=tiny_da.LON,
        stats=stats,
        sensor_channels=SENSORS if observations else (),
        frames=FRAMES,
        satellites=(90.0,),
        departure_input=departures,
        gradient_input=gradient,
        name="tiny-da" if observations else "tiny-corr",
    )


def _randomise_head(model):
    with torch.no_grad():
        model.net.head.weight.normal_(0, 0.1)


def test_untrained_network_returns_no_increment():
    model = tiny_da_model()
    x = torch.randn(2, C, 8, 16)
    obs = torch.randn(2, model.n_obs_channels, 8, 16)
    assert float(model(x, obs).detach().abs().max()) == 0.0


def test_longitude_periodic():
    model = tiny_da_model()
    _randomise_head(model)
    x = torch.randn(1, C, 8, 16)
    obs = torch.randn(1, model.n_obs_channels, 8, 16)
    out = model(x, obs)
    shifted = model(torch.roll(x, 4, -1), torch.roll(obs, 4, -1))
    torch.testing.assert_close(torch.roll(out, 4, -1), shifted, atol=1e-5, rtol=1e-4)


def test_observations_change_increment_and_corr_ignores_them():
    model = tiny_da_model()
    _randomise_head(model)
    x = torch.randn(1, C, 8, 16)
    obs = torch.randn(1, model.n_obs_channels, 8, 16)
    a = model(x, obs)
    b = model(x, obs + 1.0)
    assert float((a - b).detach().abs().max()) > 0
    # gradient reaches every branch
    loss = model(x, obs).square().sum()
    loss.backward()
    for name in ("background_in", "observation_in", "condition_in", "fusion"):
        grads = [p.grad for n, p in model.net.named_parameters() if n.startswith(name)]
        assert any(g is not None and float(g.abs().sum()) > 0 for g in grads), name
    corr = tiny_da_model(observations=False)
    assert corr.n_obs_channels == 0 and corr.net.observation_in is None
    assert corr(x).shape == x.shape


def test_observation_features_missing_pixels_are_zero():
    bt = np.full((2, 2, 8, 16), 260.0)
    bt[:, :, :, 8:] = np.nan
    zen = np.where(np.arange(16)[None, :] < 8, 30.0, np.nan) * np.ones((8, 1))
    f = observation_features(
        bt, zen, latitude=tiny_da.LAT, longitude=tiny_da.LON, time="2001-01-01T06",
        frames=FRAMES,
    )  # fmt: skip
    assert f.shape == (2 * (2 * 2 + 5) + 3, 8, 16)
    assert np.all(f[0, :, 8:] == 0) and np.all(f[2, :, 8:] == 0) and np.all(f[2, :, :8] == 1)
    np.testing.assert_allclose(f[4, :, :8], np.cos(np.radians(30.0)), rtol=1e-6)
    assert np.all(f[4, :, 8:] == 0) and np.isfinite(f).all()
    blind = observation_features(
        bt, zen, latitude=tiny_da.LAT, longitude=tiny_da.LON, time="2001-01-01T06",
        frames=FRAMES, zenith_input=False, position_input=False,
    )  # fmt: skip
    assert np.all(blind[4] == 0) and np.all(blind[-3:] == 0)


def test_checkpoint_round_trip(tmp_path):
    model = tiny_da_model()
    _randomise_head(model)
    path = save_da_model(model, tmp_path / "da")
    back = load_da_model(path)
    x = torch.randn(1, C, 8, 16)
    obs = torch.randn(1, model.n_obs_channels, 8, 16)
    torch.testing.assert_close(back(x, obs), model(x, obs))
    assert back.sensor_channels == SENSORS and back.frames == FRAMES
    (path / "model.safetensors").write_bytes(b"broken")
    with pytest.raises(CheckpointError, match="sha256"):
        load_da_model(path)


def test_departure_input_round_trip_and_channel_count(tmp_path):
    model = tiny_da_model(departures=True)
    assert model.departure_input and model.n_obs_channels == len(FRAMES) * (3 * 2 + 5) + 3
    assert "departure_input=True" in repr(model)
    _randomise_head(model)
    back = load_da_model(save_da_model(model, tmp_path / "da"))
    assert back.departure_input
    x = torch.randn(1, C, 8, 16)
    obs = torch.randn(1, model.n_obs_channels, 8, 16)
    torch.testing.assert_close(back(x, obs), model(x, obs))
    # a network built for radiances alone does not fit a model that takes departures
    with pytest.raises(ValueError, match="departure_input=True"):
        FuXiDA(tiny_da_model().net, channels=tiny_da.MODEL_CHANNELS, latitude=tiny_da.LAT,
               longitude=tiny_da.LON, stats=model.stats, sensor_channels=SENSORS,
               frames=FRAMES, departure_input=True)  # fmt: skip
    # CORR has no observation branch, so no departures either
    assert not tiny_da_model(observations=False, departures=True).departure_input


def test_departure_features_follow_the_mask():
    bt = np.full((1, 2, 2, 3), 260.0)
    bt[0, 0, 1, 2] = np.nan
    dep = np.full(bt.shape, 5.0)
    dep[0, 1, 0, 0] = np.nan  # no background equivalent: treated as missing
    f = observation_features(bt, np.zeros((2, 3)), latitude=[-30, 30], longitude=[0, 120, 240],
                             time="2020-01-01", frames=[0.0], departure=dep)  # fmt: skip
    # per frame: 2 radiances, 2 masks, 2 departures, 5 extras; then 3 position inputs
    assert f.shape == (2 * 3 + 5 + 3, 2, 3)
    np.testing.assert_allclose(f[4][0], [0.5, 0.5, 0.5])
    assert f[4, 1, 2] == 0 and f[2, 1, 2] == 0  # missing radiance: no departure, mask 0
    assert f[5, 0, 0] == 0 and f[3, 0, 0] == 0 and f[1, 0, 0] == 0
    with pytest.raises(ValueError, match="departure has shape"):
        observation_features(bt, np.zeros((2, 3)), latitude=[-30, 30], longitude=[0, 120, 240],
                             time="2020-01-01", frames=[0.0], departure=dep[:, :1])  # fmt: skip


def test_configs_that_cannot_rebuild_the_model_name_the_file(tmp_path):
    import json

    from xfuxi.models.checkpoint import write_checkpoint

    path = save_da_model(tiny_da_model(), tmp_path / "da")

    def changed(name, change):
        files = {p.name: p.read_bytes() for p in path.iterdir() if not p.name.startswith(".")}
        files.pop("manifest.json")
        files["config.json"] = json.dumps(change(json.loads(files["config.json"]))).encode()
        return write_checkpoint(tmp_path / name, files, kind="da-model")

    with pytest.raises(CheckpointError, match=r"d1 is not a FuXi-DA checkpoint \(format 'x'"):
        load_da_model(changed("d1", lambda c: {**c, "format": "x"}))
    with pytest.raises(CheckpointError, match=r"d2/config\.json lacks the entry 'frames'"):
        load_da_model(changed("d2", lambda c: {k: v for k, v in c.items() if k != "frames"}))
    with pytest.raises(CheckpointError, match=r"d3/config\.json: .*unexpected keyword"):
        load_da_model(changed("d3", lambda c: {**c, "net": {**c["net"], "colour": 1}}))
    with pytest.raises(CheckpointError, match=r"d4: weights do not fit the config"):
        load_da_model(changed("d4", lambda c: {**c, "net": {**c["net"], "width": 8}}))


def test_network_input_mismatch_is_refused():
    net = FuXiDANet(C, 5, width=4, scales=2)
    with pytest.raises(ValueError, match="observation channels"):
        FuXiDA(net, channels=tiny_da.MODEL_CHANNELS, latitude=tiny_da.LAT,
               longitude=tiny_da.LON, stats=NormStats.identity(C), sensor_channels=SENSORS,
               frames=FRAMES)  # fmt: skip
    with pytest.raises(ValueError, match="unknown imager channel"):
        FuXiDA(net, channels=tiny_da.MODEL_CHANNELS, latitude=tiny_da.LAT,
               longitude=tiny_da.LON, stats=NormStats.identity(C),
               sensor_channels=["x"])  # fmt: skip
    with pytest.raises(ValueError, match="not divisible"):
        FuXiDANet(C, 0, width=4, scales=3)(torch.randn(1, C, 6, 16))
    # a grid the U-Net cannot halve is refused when the model is made (it was refused at
    # the first analysis, after the radiances had been made: WeatherBench2's 121 x 240)
    odd = np.linspace(-80.0, 80.0, 6)  # 6 rows: not a multiple of 4 (3 scales)
    with pytest.raises(ValueError, match=r"multiples of 4 .* got 6 x 16 \(WeatherBench2"):
        FuXiDA(FuXiDANet(C, 0, width=4, scales=3), channels=tiny_da.MODEL_CHANNELS,
               latitude=odd, longitude=tiny_da.LON, stats=NormStats.identity(C))  # fmt: skip


def test_statistics_of_another_channel_count_are_refused():
    net = FuXiDANet(C, 0, width=4, scales=2)
    with pytest.raises(ValueError, match=rf"stats.mean has shape \({C - 1},\); expected \({C},\)"):
        FuXiDA(net, channels=tiny_da.MODEL_CHANNELS, latitude=tiny_da.LAT,
               longitude=tiny_da.LON, stats=NormStats.identity(C - 1))  # fmt: skip


def test_shipped_models_load():
    from xfuxi.models.checkpoint import read_registry
    from xfuxi.models.fuxi_da import shipped_da_models

    assert {
        "fuxi-da-hs-t21", "fuxi-da-hs-t21-corr", "fuxi-da-hs-t21-screened",
        "fuxi-da-hs-t21-screened-update", "fuxi-da-hs-t21-screened-5frames",
        "fuxi-da-hs-t21-screened-5frames-k10",
    } <= set(shipped_da_models())  # fmt: skip
    screened = load_da_model("fuxi-da-hs-t21-screened")
    assert screened.screen_threshold == 4.0 and screened.departure_input
    assert screened.metadata["train_config"]["channel_dropout"] == 0.3
    assi = load_da_model("fuxi-da-hs-t21")
    corr = load_da_model("fuxi-da-hs-t21-corr")
    assert assi.uses_observations and not corr.uses_observations
    assert assi.satellites == (105.0,) and assi.frames == (-2.0, 0.0, 2.0)
    assert assi.metadata["base_model"] == "fuxi-hs-t21" and assi.grid_shape == (32, 64)
    assert read_registry()["fuxi-da-hs-t21"]["kind"] == "da-model"
    assert read_registry()["fuxi-da-hs-t21-screened"]["kind"] == "da-model"
    assert load_da_model("fuxi-da-hs-t21").screen_threshold is None  # all-sky
    update = load_da_model("fuxi-da-hs-t21-screened-update")
    assert update.linear_update and update.screen_threshold == 4.0
    assert update.metadata["train_config"]["init_from"] == "fuxi-da-hs-t21-screened"
    assert float(update.net.linear.weight.abs().max()) > 0  # fitted and trained, not zero
    five = load_da_model("fuxi-da-hs-t21-screened-5frames")
    assert five.frames == (-3.0, -1.5, 0.0, 1.5, 3.0)
    assert five.linear_update and five.screen_threshold == 4.0
    k10 = load_da_model("fuxi-da-hs-t21-screened-5frames-k10")
    assert k10.frames == five.frames and k10.linear_update and k10.screen_threshold == 4.0
    assert k10.metadata["train_config"]["forecast_steps"] == 10
    assert k10.metadata["train_config"]["init_from"] == "fuxi-da-hs-t21-screened-5frames"
    assert any(  # trained on: not the five-frame network's weights
        not torch.equal(a, b) for a, b in zip(k10.net.parameters(), five.net.parameters())
    )


def _gradient_case(model):
    """A background in physical units and observation features with departures."""
    from xfuxi.assimilation.da import da_inputs
    from xfuxi.observations.imager import imager_observations

    truth = tiny_da.truth(4, seed=2)
    radiances = imager_observations(truth, satellites=[90.0], channels=SENSORS, frames=FRAMES,
                                    times=truth.time.values[2:3], seed=0)  # fmt: skip
    background = truth.isel(time=[1]).assign_coords(time=truth.time.values[2:3])  # 6 h wrong
    return da_inputs(background, radiances, model)


def test_gradient_input_is_the_departures_carried_back_by_the_operator(tmp_path):
    from xfuxi.observations.imager import NominalImager, imager_state_channels

    model = tiny_da_model(departures=True, gradient=True)
    assert model.n_obs_channels == len(FRAMES) * (3 * 2 + 5) + 3  # what the caller gives
    assert model.net.config["obs_channels"] == model.n_obs_channels + 9
    assert "gradient_input=True" in repr(model)
    xb, obs = _gradient_case(model)
    g = model.gradient_features(xb, obs)
    # by hand: d/dx of Σ_frames Σ_channels d · H(x) on the full grid (every pixel computed)
    per_frame = 3 * len(SENSORS) + 5
    zen = np.degrees(np.arccos(obs[0, per_frame * np.arange(len(FRAMES)) + 3 * len(SENSORS)]
                               .amax(0).clamp(1e-3, 1).numpy()))  # fmt: skip
    zen = np.where(obs[0, 2 * len(SENSORS)].numpy() != 0, zen, np.nan)
    dep = sum(obs[:, f * per_frame + 4 : f * per_frame + 6] for f in range(len(FRAMES))) * 10.0
    x = xb.double().clone().requires_grad_(True)
    bt = NominalImager(model.channels, zen, channels=SENSORS)(x)
    (full,) = torch.autograd.grad(torch.nansum(bt * dep.double()), x, retain_graph=True)
    rows = imager_state_channels(model.channels)
    scale = model._diff_std[0, rows].double() / (10.0 * len(FRAMES))
    expected = torch.asinh(full[:, rows] * scale).float()
    assert float(expected.abs().max()) > 0.1
    torch.testing.assert_close(g, expected, rtol=1e-4, atol=1e-5)
    # a channel dropped from the features is dropped from the gradient
    dropped = model.drop_channels(obs, torch.tensor([[False, True]]))
    dep_kept = dep.clone()
    dep_kept[:, 1] = 0
    (kept,) = torch.autograd.grad(torch.nansum(bt * dep_kept.double()), x)
    expected = torch.asinh(kept[:, rows] * scale).float()
    torch.testing.assert_close(model.gradient_features(xb, dropped), expected, rtol=1e-4,
                               atol=1e-5)  # fmt: skip
    # the saved model computes the same
    _randomise_head(model)
    back = load_da_model(save_da_model(model, tmp_path / "grad"))
    assert back.gradient_input
    torch.testing.assert_close(back(xb, obs), model(xb, obs))
    assert float(model(xb, obs).abs().max()) > 0


def test_gradient_input_needs_departures_and_zenith():
    with pytest.raises(ValueError, match="gradient_input needs departure_input and zenith_input"):
        tiny_da_model(departures=False, gradient=True)
    from xfuxi.training.da_config import DAConfig

    with pytest.raises(ValueError, match="gradient_input needs departure_input"):
        DAConfig(gradient_input=True)
    with pytest.raises(ValueError, match="screen_threshold needs departure_input"):
        DAConfig(screen_threshold=4.0)
    with pytest.raises(ValueError, match="screen_threshold"):
        DAConfig(screen_threshold=-1.0, departure_input=True)


def test_screen_threshold_makes_cold_window_pixels_missing(tmp_path):
    from xfuxi.assimilation.da import observation_inputs

    plain = tiny_da_model(departures=True)
    n_obs = n_observation_inputs(len(FRAMES), len(SENSORS), departure_input=True)
    screened = FuXiDA(
        FuXiDANet(C, n_obs, width=4, scales=2), channels=tiny_da.MODEL_CHANNELS,
        latitude=tiny_da.LAT, longitude=tiny_da.LON, stats=plain.stats,
        sensor_channels=SENSORS, frames=FRAMES, satellites=(90.0,), departure_input=True,
        screen_threshold=2.0,
    )  # fmt: skip
    assert "screen_threshold=2" in repr(screened)
    xb, obs = _gradient_case(plain)  # a background 6 hours off: departures of several K
    from xfuxi.observations.imager import imager_observations

    truth = tiny_da.truth(4, seed=2)
    radiances = imager_observations(truth, satellites=[90.0], channels=SENSORS, frames=FRAMES,
                                    times=truth.time.values[2:3], seed=0)  # fmt: skip
    t = truth.time.values[2:3]
    got = observation_inputs(xb, radiances, screened, times=t)
    ref = observation_inputs(xb, radiances, plain, times=t)
    per_frame, s = 3 * len(SENSORS) + 5, len(SENSORS)
    for f in range(len(FRAMES)):
        window = ref[0, f * per_frame + 2 * s + 1] * 10.0  # ir10.8's departure (K)
        mask_ref = ref[0, f * per_frame + s : f * per_frame + 2 * s]
        cold = (window < -2.0) & (mask_ref[1] > 0)
        assert 0 < int(cold.sum()) < int((mask_ref[1] > 0).sum())
        mask = got[0, f * per_frame + s : f * per_frame + 2 * s]
        assert torch.equal(mask, mask_ref * (~cold).float())  # every channel of the pixel
    # the setting is saved with the model
    back = load_da_model(save_da_model(screened, tmp_path / "screened"))
    assert back.screen_threshold == 2.0
    with pytest.raises(ValueError, match="screen_threshold needs departure_input"):
        FuXiDA(tiny_da_model().net, channels=tiny_da.MODEL_CHANNELS, latitude=tiny_da.LAT,
               longitude=tiny_da.LON, stats=plain.stats, sensor_channels=SENSORS,
               frames=FRAMES, screen_threshold=2.0)  # fmt: skip


def test_screening_falls_back_to_another_window_channel_when_ir10_8_is_missing():
    from xfuxi.assimilation.da import observation_inputs
    from xfuxi.observations.imager import imager_observations

    sensors = ("wv6.2", "ir10.8", "ir12.0")
    n_obs = n_observation_inputs(1, len(sensors), departure_input=True)

    def model(threshold):
        return FuXiDA(
            FuXiDANet(C, n_obs, width=4, scales=2), channels=tiny_da.MODEL_CHANNELS,
            latitude=tiny_da.LAT, longitude=tiny_da.LON, stats=tiny_da_model().stats,
            sensor_channels=sensors, frames=(0.0,), satellites=(90.0,), departure_input=True,
            screen_threshold=threshold,
        )  # fmt: skip

    truth = tiny_da.truth(4, seed=2)
    t = truth.time.values[2:3]
    radiances = imager_observations(truth, satellites=[90.0], channels=sensors, frames=[0.0],
                                    times=t, seed=0)  # fmt: skip
    xb = torch.as_tensor(
        np.stack(
            [
                truth.isel(time=1)[v].sel(level=lv).values
                if lv is not None
                else truth.isel(time=1)[v].values
                for v, lv in tiny_da.MODEL_CHANNELS
            ]
        ),
        dtype=torch.float32,
    )[None]  # fmt: skip  - a background 6 hours off
    no_ir108 = radiances.drop_sel(sensor_channel=["ir10.8"])
    raw = observation_inputs(xb, no_ir108, model(None), times=t)  # unscreened
    got = observation_inputs(xb, no_ir108, model(2.0), times=t)
    s = len(sensors)
    ir12_dep, ir12_mask = raw[0, 2 * s + 2] * 10.0, raw[0, s + 2]
    cold = (ir12_dep < -2.0) & (ir12_mask > 0)
    assert 0 < int(cold.sum()) < int((ir12_mask > 0).sum())
    expected = raw[0, s : 2 * s] * (~cold).float()  # every channel of the cold pixels
    torch.testing.assert_close(got[0, s : 2 * s], expected)


def test_departure_context_is_each_channels_rms_departure_over_its_seen_pixels(tmp_path):
    from xfuxi.models.fuxi_da import with_departure_context

    base = tiny_da_model(departures=True)
    _randomise_head(base)
    model = with_departure_context(base)
    assert model.departure_context and model.n_context_inputs == len(SENSORS)
    assert model.net.config["obs_channels"] == base.net.config["obs_channels"] + len(SENSORS)
    assert model.n_obs_channels == base.n_obs_channels  # the caller gives the same features
    assert "departure_context=True" in repr(model)
    rng = np.random.default_rng(0)
    bt = 250.0 + 10.0 * rng.standard_normal((len(FRAMES), len(SENSORS), 8, 16))
    bt[0, 0, :4] = np.nan  # channel 0 missing in half of frame 0
    bt[:, 1] = np.where(rng.random((len(FRAMES), 8, 16)) < 0.7, np.nan, bt[:, 1])
    dep = rng.normal(0.0, 3.0, bt.shape)
    dep[1, 1] += 20.0  # a large departure in the second channel's second frame
    feats = observation_features(bt, np.full((8, 16), 30.0), latitude=tiny_da.LAT,
                                 longitude=tiny_da.LON, time="2001-01-01", frames=FRAMES,
                                 departure=dep)  # fmt: skip
    obs = torch.as_tensor(feats)[None]
    ctx = model.context_features(obs)
    assert ctx.shape == (1, len(SENSORS), 8, 16)
    for s in range(len(SENSORS)):  # by hand, in the features' units (departure / 10 K)
        seen = np.isfinite(bt[:, s])
        want = np.sqrt(np.mean((dep[:, s][seen] / 10.0) ** 2))
        np.testing.assert_allclose(ctx[0, s].numpy(), want, rtol=1e-5)
    # a channel missing everywhere gives 0, not NaN
    dropped = model.drop_channels(obs, torch.tensor([[False, True]]))
    assert float(model.context_features(dropped)[0, 1].abs().max()) == 0.0
    # the widened network starts as the one it came from, whatever the departures
    xb = torch.randn(1, C, 8, 16) * 50 + 100
    torch.testing.assert_close(model(xb, obs), base(xb, obs))
    with torch.no_grad():  # once the new weights are trained, the context changes it
        model.net.observation_in[0].weight[:, -len(SENSORS) :] = 1.0
    assert not torch.allclose(model(xb, obs), base(xb, obs))
    back = load_da_model(save_da_model(model, tmp_path / "ctx"))
    assert back.departure_context
    torch.testing.assert_close(back(xb, obs), model(xb, obs))
    with pytest.raises(ValueError, match="with_departure_context needs"):
        with_departure_context(model)
    with pytest.raises(ValueError, match="with_departure_context needs"):
        with_departure_context(tiny_da_model())
    with pytest.raises(ValueError, match="departure_context needs departure_input"):
        FuXiDA(tiny_da_model().net, channels=tiny_da.MODEL_CHANNELS, latitude=tiny_da.LAT,
               longitude=tiny_da.LON, stats=base.stats, sensor_channels=SENSORS,
               frames=FRAMES, departure_context=True)  # fmt: skip
    from xfuxi.training.da_config import DAConfig

    with pytest.raises(ValueError, match="departure_context needs departure_input"):
        DAConfig(departure_context=True)


def test_linear_update_maps_the_departures_from_the_networks_own_analysis(tmp_path):
    from xfuxi.models.fuxi_da import LINEAR_KERNEL, with_linear_update
    from xfuxi.observations.imager import imager_observations, zenith_angle

    base = tiny_da_model(departures=True)
    _randomise_head(base)
    model = with_linear_update(base)
    assert model.linear_update and not base.linear_update and "linear_update=True" in repr(model)
    n_f, n_s = len(FRAMES), len(SENSORS)
    assert model.n_linear_inputs == 2 * n_f * n_s == model.net.config["linear_inputs"]
    assert model.net.linear.weight.shape == (C, 2 * n_f * n_s, LINEAR_KERNEL, LINEAR_KERNEL)
    xb, obs = _gradient_case(model)
    torch.testing.assert_close(model(xb, obs), base(xb, obs))  # starts as the network
    # the inputs: (O − H(x)) / 10 K at the pixels the features give, then their masks
    first = (xb + base(xb, obs)).detach()
    feats = model.update_features(first, obs)
    truth = tiny_da.truth(4, seed=2)
    rad = imager_observations(truth, satellites=[90.0], channels=SENSORS, frames=FRAMES,
                              times=truth.time.values[2:3], seed=0)  # fmt: skip
    o = rad["brightness_temperature"].isel(time=0).transpose("frame", "sensor_channel", ...)
    zen, _ = zenith_angle(tiny_da.LAT, tiny_da.LON, satellites=[90.0])
    hx = NominalImager(model.channels, zen, channels=SENSORS)(first.double())[0].numpy()
    want = (o.values - hx[None]) / 10.0
    seen = np.isfinite(want)
    got = feats[0, : n_f * n_s].reshape(n_f, n_s, 8, 16).numpy()
    mask = feats[0, n_f * n_s :].reshape(n_f, n_s, 8, 16).numpy()
    assert 0 < seen.mean() < 1
    np.testing.assert_array_equal(mask, seen.astype("float32"))
    np.testing.assert_allclose(got[seen], want[seen], rtol=1e-4, atol=1e-4)
    assert float(np.abs(got[~seen]).max()) == 0.0
    # one weight: state channel 1 gets 0.5 x input 3 two latitude rows on and one column
    # west (periodic in longitude), in units of the channel's diff_std (2)
    with torch.no_grad():
        model.net.linear.weight[1, 3, 2 + 2, 2 - 1] = 0.5
    added = (model(xb, obs) - base(xb, obs)).detach()
    want_added = torch.zeros(8, 16)
    want_added[:-2] = 0.5 * 2.0 * torch.roll(feats[0, 3], shifts=1, dims=-1)[2:]
    torch.testing.assert_close(added[0, 1], want_added)
    assert float(added[0, [0, *range(2, C)]].abs().max()) == 0.0
    back = load_da_model(save_da_model(model, tmp_path / "upd"))
    assert back.linear_update
    torch.testing.assert_close(back(xb, obs), model(xb, obs))
    assert "linear_inputs" not in base.net.config  # files of networks without it unchanged
    assert "linear_update" not in base.config_dict()
    with pytest.raises(ValueError, match="with_linear_update needs"):
        with_linear_update(model)
    with pytest.raises(ValueError, match="with_linear_update needs"):
        with_linear_update(tiny_da_model(observations=False))
    with pytest.raises(ValueError, match="linear_inputs must be >= 0, and 0 without obs"):
        FuXiDANet(C, 0, width=4, scales=2, linear_inputs=4)
    with pytest.raises(ValueError, match="the network's linear update takes 0 inputs"):
        FuXiDA(base.net, channels=tiny_da.MODEL_CHANNELS, latitude=tiny_da.LAT,
               longitude=tiny_da.LON, stats=base.stats, sensor_channels=SENSORS,
               frames=FRAMES, departure_input=True, linear_update=True)  # fmt: skip
    from xfuxi.training.da_config import DAConfig

    with pytest.raises(ValueError, match="linear_update needs observations and zenith_input"):
        DAConfig(linear_update=True, observations=False)


def test_network_keeps_channels_last_weights_and_returns_the_standard_layout():
    net = FuXiDANet(3, 7, width=4, scales=2, linear_inputs=2)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    again = FuXiDANet(3, 7, width=4, scales=2, linear_inputs=2)
    again.load_state_dict(net.state_dict())  # loading keeps the layout
    assert all(
        m.weight.is_contiguous(memory_format=torch.channels_last)
        for m in again.modules()
        if isinstance(m, torch.nn.Conv2d)
    )
    with torch.no_grad():
        net.head.weight.normal_()  # a non-zero increment
        out = net(torch.randn(2, 3, 4, 8), torch.randn(2, 7, 4, 8))
    assert out.is_contiguous() and float(out.abs().max()) > 0


@pytest.mark.parametrize("observations", [True, False])
def test_autocast_inference_copy_gives_autocasts_increment_and_follows_the_weights(observations):
    model = tiny_da_model(observations=observations).eval()
    _randomise_head(model)
    x = torch.randn(2, C, 8, 16) * 50.0 + 100.0
    obs = torch.randn(2, model.n_obs_channels, 8, 16) if observations else None

    def under_autocast(grad: bool) -> torch.Tensor:
        with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
            return model.network_increment(x, obs).detach()

    reference = under_autocast(True)  # with gradients: autocast on the model's own weights
    assert not model._autocast_copies
    fast = under_autocast(False)  # without: the bfloat16 copy
    assert list(model._autocast_copies) == [("cpu", torch.bfloat16)]
    assert fast.dtype == reference.dtype == torch.float32
    assert torch.equal(fast, reference)  # bit for bit
    assert float((fast - model.network_increment(x, obs).detach()).abs().max()) > 0  # not fp32
    assert not any("autocast" in k for k in model.state_dict())  # the copy is not saved
    with torch.no_grad():
        model.net.head.bias.add_(1.0)  # an in-place update (as an optimiser's): a new copy
    changed = under_autocast(False)
    assert not torch.equal(changed, fast)
    assert torch.equal(changed, under_autocast(True))


def test_autocast_without_a_copy_for_weights_made_in_inference_mode():
    """Weights created under torch.inference_mode have no version counter to follow: the
    model then runs autocast on its own weights (no copy), with the same result."""
    with torch.inference_mode():
        model = tiny_da_model().eval()
        _randomise_head(model)
    x = torch.randn(1, C, 8, 16) * 50.0 + 100.0
    obs = torch.randn(1, model.n_obs_channels, 8, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.network_increment(x, obs)
        reference = model.net(((x - model._mean) / model._std), obs) * model._diff_std
    assert not model._autocast_copies
    assert torch.equal(out, reference)


@pytest.mark.parametrize("observations", [True, False])
def test_fusion_blocks_output_convolutions_in_one_pass_equal_each_alone(observations):
    """A fusion block runs its increment, bias and condition convolutions as one
    convolution with their weights stacked: the same outputs as each convolution on its
    own, and gradients reach each one's weights."""
    net = FuXiDANet(3, 7 if observations else 0, width=4, scales=2)
    block = net.fusion[0]
    torch.manual_seed(1)
    b, c = torch.randn(2, 4, 4, 8), torch.randn(2, 4, 4, 8)
    o = torch.randn(2, 4, 4, 8) if observations else None
    inc, bias, cond = block(b, o, c)
    h = block.mix(torch.cat([b, c] if o is None else [b, o, c], 1))
    torch.testing.assert_close(inc, block.increment(h), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(cond, block.condition(h), rtol=1e-6, atol=1e-6)
    if observations:
        torch.testing.assert_close(bias, block.bias(h), rtol=1e-6, atol=1e-6)
    else:
        assert bias is None
    heads = [block.increment, block.condition] + ([block.bias] if observations else [])
    (inc.square().sum() + cond.square().sum() + (bias.sum() if observations else 0)).backward()
    assert all(m.weight.grad is not None and float(m.weight.grad.abs().max()) > 0 for m in heads)


def test_network_gives_the_same_increment_from_either_input_layout():
    net = FuXiDANet(3, 7, width=4, scales=2)
    with torch.no_grad():
        net.head.weight.normal_()
        x, o = torch.randn(2, 3, 4, 8), torch.randn(2, 7, 4, 8)
        cl = torch.channels_last
        standard = net(x, o)
        last = net(x.contiguous(memory_format=cl), o.contiguous(memory_format=cl))
    torch.testing.assert_close(standard, last, rtol=1e-6, atol=1e-6)
