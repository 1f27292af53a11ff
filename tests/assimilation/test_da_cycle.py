"""FuXi-DA in the cycling driver: imager network, FuXi-DA / CORR method, store and resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from xfuxi.assimilation.cycle import CycleConfig, cycle, open_cycle
from xfuxi.assimilation.da_cycle import FuXiDAMethod, ImagerNetwork
from xfuxi.models.base import NormStats
from xfuxi.models.fuxi_da import FuXiDA, FuXiDANet
from xfuxi.observations.imager import ImagerErrors

LAT, LON, LEVELS = [-45.0, -15.0, 15.0, 45.0], list(np.arange(8) * 45.0), [250.0, 500.0, 850.0]
CHANNELS = [(v, lv) for v in ("temperature", "passive_tracer") for lv in LEVELS]
CHANNELS.append(("surface_pressure", None))
SENSORS = ["wv6.2", "ir10.8"]
STATS = NormStats(
    np.array([250.0] * 3 + [0.2] * 3 + [1e5]),
    np.array([5.0] * 3 + [0.05] * 3 + [300.0]),
    np.array([0.2] * 3 + [0.002] * 3 + [20.0]),
)


class Last(torch.nn.Module):
    """Persistence: the next state is the later input state."""

    def forward(self, x):
        return x[:, 1]


@pytest.fixture(scope="module")
def setting():
    rng = np.random.default_rng(0)
    n_t = 14
    shape = (n_t, 3, 4, 8)
    profile = lambda values: np.array(values)[None, :, None, None]  # noqa: E731
    truth = xr.Dataset(
        {
            "temperature": (
                ("time", "level", "latitude", "longitude"),
                profile([220.0, 250.0, 280.0]) + rng.normal(0, 1, shape),
            ),
            "passive_tracer": (
                ("time", "level", "latitude", "longitude"),
                profile([0.05, 0.2, 0.5]) * (1 + 0.2 * rng.random(shape)),
            ),
            "surface_pressure": (
                ("time", "latitude", "longitude"),
                1e5 + rng.normal(0, 100, (n_t, 4, 8)),
            ),
        },
        coords={
            "time": pd.date_range("2000-01-01", periods=n_t, freq="6h"),
            "level": LEVELS,
            "latitude": LAT,
            "longitude": LON,
        },
    )
    model = xfuxi.wrap_model(Last(), channels=CHANNELS, latitude=LAT, longitude=LON, stats=STATS)
    return model, truth


def _da_model(observations: bool = True, seed: int = 1) -> FuXiDA:
    sensors = SENSORS if observations else []
    n = len(CHANNELS)
    obs_in = 3 * (2 * len(SENSORS) + 5) + 3 if observations else 0
    with torch.random.fork_rng():  # the same network each call
        torch.manual_seed(seed)
        net = FuXiDANet(n, obs_in, width=4, scales=2)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a "trained" network: non-zero increments
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return FuXiDA(
        net,
        channels=CHANNELS,
        latitude=LAT,
        longitude=LON,
        stats=STATS,
        sensor_channels=sensors,
        frames=[-2.0, 0.0, 2.0] if observations else [0.0],
        satellites=[90.0] if observations else [],
        name="tiny-da" if observations else "tiny-corr",
    )


def _run(setting, n=4, store=None, network=None, method=None):
    model, truth = setting
    return cycle(
        truth,
        network or ImagerNetwork(satellites=(90.0,), channels=SENSORS, seed=7),
        method=method or FuXiDAMethod(_da_model()),
        model=model,
        config=CycleConfig(n_cycles=n, lead_steps=2),
        store=store,
        progress=False,
    )


def test_each_background_is_the_forecast_of_the_previous_analysis(setting, tmp_path):
    run = _run(setting, store=tmp_path / "s")
    s = run.scores
    assert s.sizes["time"] == 4 and s.attrs["method"] == "FuXi-DA"
    back = open_cycle(tmp_path / "s")
    a, b = back["analysis_state"].values, back["background_state"].values
    assert not np.allclose(a, b)  # the network changes the background
    # the model is persistence: each background is the previous cycle's analysis
    np.testing.assert_allclose(b[1:], a[:-1], rtol=1e-6)  # through the float32 model
    assert bool((s["analysis_error"] != s["background_error"]).any())
    # the radiance diagnostics of every cycle: O−B and O−A differ, pixels counted
    assert s["radiance_rms_omb"].dims == ("time", "sensor_channel", "group")
    assert list(s["sensor_channel"].values) == SENSORS
    assert bool((s["radiance_rms_oma"] != s["radiance_rms_omb"]).any())
    assert bool((s["n_obs"] > 0).all())
    assert int(s["n_obs"][0]) == int(s["radiance_count"].sel(group="all")[0].sum())
    assert "radiance_rms_omb" in back


def test_an_interrupted_run_resumes_with_identical_results(setting, tmp_path):
    whole = _run(setting, 4, store=tmp_path / "a")

    class Interrupt(Exception):
        pass

    class Failing(ImagerNetwork):
        def __call__(self, truth, times, *, cycle, model):
            if cycle == 2:
                raise Interrupt
            return super().__call__(truth, times, cycle=cycle, model=model)

    failing = Failing(satellites=(90.0,), channels=SENSORS, seed=7)
    with pytest.raises(Interrupt):
        _run(setting, 4, store=tmp_path / "b", network=failing)
    assert len(list((tmp_path / "b" / "cycles").glob("*.zarr"))) == 2
    resumed = _run(setting, 4, store=tmp_path / "b")
    xr.testing.assert_identical(
        whole.scores.drop_vars("wall_time_s"), resumed.scores.drop_vars("wall_time_s")
    )
    # other satellites, errors or another network are refused on resume
    other = ImagerNetwork(satellites=(90.0, 270.0), channels=SENSORS, seed=7)
    with pytest.raises(ValueError, match="satellites"):
        _run(setting, 4, store=tmp_path / "b", network=other)
    with pytest.raises(ValueError, match="model"):
        _run(setting, 4, store=tmp_path / "b", method=FuXiDAMethod(_da_model(False)))
    # another precision is refused too; a bfloat16 cycle is close to, not equal to, float32
    half = FuXiDAMethod(_da_model(), precision="bfloat16")
    with pytest.raises(ValueError, match="precision"):
        _run(setting, 4, store=tmp_path / "b", method=half)
    quick = _run(setting, 4, method=half).scores["analysis_error"]
    ref = whole.scores["analysis_error"]
    assert not ref.equals(quick)
    np.testing.assert_allclose(quick, ref, rtol=0.05)
    with pytest.raises(ValueError, match="FuXiDAMethod.precision must be one of"):
        FuXiDAMethod(_da_model(), precision="half")


def test_the_radiances_of_a_cycle_are_seeded_by_the_cycle(setting):
    model, truth = setting
    net = ImagerNetwork(satellites=(90.0,), channels=SENSORS, seed=7)
    t = [truth.time.values[5]]
    first = net(truth, t, cycle=3, model=model)
    xr.testing.assert_identical(first, net(truth, t, cycle=3, model=model))
    other = net(truth, t, cycle=4, model=model)["brightness_temperature"]
    assert not np.allclose(other.fillna(0), first["brightness_temperature"].fillna(0))
    nominal = ImagerErrors(clouds=False, bias=False, noise=False, spectroscopy=False)
    clear = ImagerNetwork(satellites=(90.0,), channels=SENSORS, errors=nominal)
    a = clear(truth, t, cycle=3, model=model)["brightness_temperature"]
    b = clear(truth, t, cycle=4, model=model)["brightness_temperature"]
    xr.testing.assert_identical(a, b)  # no random error left: the seed does not matter
    three = ImagerNetwork(satellites=(0.0, 120.0, 240.0), channels=SENSORS)(
        truth, t, cycle=0, model=model
    )
    assert int(np.isfinite(three["zenith_angle"]).sum()) > int(np.isfinite(a[0, 0, 0]).sum())


def test_corr_cycles_without_radiances(setting):
    run = _run(setting, 2, method=FuXiDAMethod(_da_model(False)))
    s = run.scores
    assert s.attrs["method"] == "FuXi-DA CORR"
    assert "radiance_rms_omb" not in s and int(s["n_obs"].sum()) == 0
    assert bool((s["analysis_error"] != s["background_error"]).any())


def test_a_network_for_other_satellites_or_channels_is_refused(setting):
    with pytest.raises(xfuxi.observations.imager.ImagerError, match="allow_new_satellites"):
        _run(setting, 1, network=ImagerNetwork(satellites=(0.0,), channels=SENSORS))
    run = _run(
        setting,
        1,
        network=ImagerNetwork(satellites=(0.0,), channels=SENSORS),
        method=FuXiDAMethod(_da_model(), allow_new_satellites=True),
    )
    assert run.scores.sizes["time"] == 1
    with pytest.raises(ValueError, match=r"takes frames at \[-2.0, 0.0, 2.0\] h.*\[0.0\] h"):
        _run(setting, 1, network=ImagerNetwork(satellites=(90.0,), channels=SENSORS, frames=[0.0]))
    model, truth = setting
    sub = NormStats(STATS.mean[:-1], STATS.std[:-1], STATS.diff_std[:-1])
    other = xfuxi.wrap_model(Last(), channels=CHANNELS[:-1], latitude=LAT, longitude=LON, stats=sub)
    with pytest.raises(ValueError, match="must be the same"):
        cycle(
            truth.drop_vars("surface_pressure"),
            ImagerNetwork(satellites=(90.0,), channels=SENSORS),
            method=FuXiDAMethod(_da_model()),
            model=other,
            config=CycleConfig(n_cycles=1, lead_steps=2),
            progress=False,
        )
    with pytest.raises(ValueError, match="satellite"):
        ImagerNetwork(satellites=())
    with pytest.raises(TypeError, match="ImagerErrors"):
        ImagerNetwork(errors="none")


def test_a_radiance_outage_keeps_the_background_with_a_warning(setting):
    class Outage(ImagerNetwork):
        def __call__(self, truth, times, *, cycle, model):
            r = super().__call__(truth, times, cycle=cycle, model=model)
            if cycle == 1:
                r["brightness_temperature"][:] = np.nan
            return r

    with pytest.warns(UserWarning, match="cycle 1 .*the analysis is the background"):
        run = _run(setting, 3, network=Outage(satellites=(90.0,), channels=SENSORS, seed=7))
    s = run.scores
    assert s["no_observations"].values.tolist() == [False, True, False]
    assert bool((s["analysis_error"][1] == s["background_error"][1]).all())
    assert int(s["n_obs"][1]) == 0 and bool((s["n_obs"][[0, 2]] > 0).all())


def test_resume_refuses_a_network_of_other_weights_under_the_same_name(setting, tmp_path):
    import json

    _run(setting, 2, store=tmp_path / "s")
    other = _da_model(seed=2)
    assert other.name == _da_model().name
    with pytest.raises(ValueError, match="fingerprints.method.da_model"):
        _run(setting, 3, store=tmp_path / "s", method=FuXiDAMethod(other))
    # a store of an earlier release, without the digest, resumes
    path = tmp_path / "s" / "run.json"
    settings = json.loads(path.read_text())
    settings["fingerprints"].pop("method.da_model")
    path.write_text(json.dumps(settings))
    assert _run(setting, 3, store=tmp_path / "s").scores.sizes["time"] == 3
