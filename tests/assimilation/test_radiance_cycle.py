"""En4DVar with imager radiances (and radiosondes) in the cycling driver, VarBC cycled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from xfuxi.assimilation.config import BackgroundError, LocalizationOptions, Minimiser
from xfuxi.assimilation.cycle import CycleConfig, RadiosondeNetwork, cycle, open_cycle
from xfuxi.assimilation.da_cycle import ImagerNetwork
from xfuxi.assimilation.radiance_cycle import ImagerSondeNetwork, RadianceEn4DVarMethod
from xfuxi.assimilation.radiances import RadianceBiasCorrection
from xfuxi.models.base import NormStats
from xfuxi.observations.imager import ImagerError, ImagerErrors

LAT, LON, LEVELS = [-60.0, -20.0, 20.0, 60.0], list(np.arange(8) * 45.0), [250.0, 500.0, 850.0]
CHANNELS = [(v, lv) for v in ("temperature", "passive_tracer") for lv in LEVELS]
CHANNELS.append(("surface_pressure", None))
SENSORS = ("wv6.2", "wv7.4", "ir10.8")
STD = np.array([1.0] * 3 + [0.03] * 3 + [100.0])
#: imager errors: the channel biases (and noise) on, no clouds, no spectroscopy error
BIASED = ImagerErrors(clouds=False, spectroscopy=False)


class Last(torch.nn.Module):
    """Persistence: the next state is the later input state."""

    def forward(self, x):
        return x[:, 1]


@pytest.fixture(scope="module")
def setting():
    """A slowly varying tiny world (a persistence model is a fair forecast of it)."""
    rng = np.random.default_rng(0)
    n_t = 10
    dims = ("time", "level", "latitude", "longitude")
    profile = lambda values: np.array(values)[None, :, None, None]  # noqa: E731
    walk = lambda shape, s: np.cumsum(rng.normal(0, s, shape), axis=0)  # noqa: E731
    truth = xr.Dataset(
        {
            "temperature": (dims, profile([220.0, 250.0, 280.0]) + walk((n_t, 3, 4, 8), 1.0)),
            "passive_tracer": (
                dims,
                profile([0.05, 0.2, 0.5]) * np.exp(walk((n_t, 3, 4, 8), 0.05)),
            ),
            "surface_pressure": (
                ("time", "latitude", "longitude"),
                1e5 + walk((n_t, 4, 8), 50.0),
            ),
        },
        coords={
            "time": pd.date_range("2000-01-01", periods=n_t, freq="6h"),
            "level": LEVELS,
            "latitude": LAT,
            "longitude": LON,
        },
    )
    stats = NormStats(np.array([220.0, 250.0, 280.0, 0.0, 0.0, 0.0, 0.0]), STD, STD)
    model = xfuxi.wrap_model(Last(), channels=CHANNELS, latitude=LAT, longitude=LON, stats=stats)
    return model, truth


def _method(**kw):
    base = dict(
        background_error=BackgroundError(n_members=8, amplitude=1.0),
        localization=LocalizationOptions(length_scale=3000.0),
        minimiser=Minimiser(max_iter=15),
        radiance_error=0.5,
    )
    return RadianceEn4DVarMethod(**{**base, **kw})


def _imager(**kw):
    base = dict(satellites=(90.0, 270.0), channels=SENSORS, frames=(0.0,), errors=BIASED, seed=3)
    return ImagerNetwork(**{**base, **kw})


def _run(setting, n=4, *, method=None, network=None, store=None, lead_steps=2):
    model, truth = setting
    return cycle(
        truth,
        network or _imager(),
        method=method or _method(varbc=True),
        model=model,
        config=CycleConfig(n_cycles=n, lead_steps=lead_steps),
        store=store,
        progress=False,
    )


def test_radiances_and_radiosondes_cycle_better_than_the_free_run(setting):
    network = ImagerSondeNetwork(_imager(), RadiosondeNetwork(n_sites=12, seed=5))
    run = _run(setting, 5, network=network, method=_method(varbc=True))
    s = run.scores
    assert s.attrs["method"] == "En4DVar radiances" and s.sizes["time"] == 5
    assert np.isfinite(s["analysis_error"]).all()
    assert bool((s["analysis_error"] != s["background_error"]).all())
    # the temperatures: every analysis beats its background and the free run (the
    # persistence of the first background)
    t = s.sel(channel=[c for c in s["channel"].values if str(c).startswith("temperature")])
    t = t.mean("channel")
    assert bool((t["analysis_error"] < t["background_error"]).all())
    assert bool((t["analysis_error"] < t["free_error"]).all())
    # radiosondes and radiances are both used; the radiance diagnostics of every cycle
    assert bool((s["n_obs"] > s["radiance_count"].sum("sensor_channel")).all())
    assert list(s["sensor_channel"].values) == ["wv6.2", "wv7.4", "ir10.8"]
    assert bool((s["radiance_rms_oma"] < s["radiance_rms_omb"]).all())
    assert np.isfinite(s["varbc_rms"]).all() and np.isfinite(s["desroziers_r"]).all()


def test_varbc_coefficients_are_carried_from_cycle_to_cycle(setting, tmp_path):
    run = _run(setting, 4, store=tmp_path / "s")
    s = run.scores
    prior, post = s["varbc_prior"].values, s["varbc_coefficients"].values
    assert s["varbc_coefficients"].dims == ("time", "sensor_channel", "predictor")
    assert (prior[0] == 0).all()  # varbc=True: zeros
    # cycle k+1's prior is cycle k's analysed coefficients, exactly
    np.testing.assert_array_equal(prior[1:], post[:-1])
    assert (np.abs(np.diff(post, axis=0)) > 1e-6).any(axis=(1, 2)).all()  # they move
    # the state the driver saves holds them (rows: the imager's channels, others zero)
    back = open_cycle(tmp_path / "s")
    state = xr.open_zarr(tmp_path / "s" / "cycles" / "000002.zarr")["state__varbc"].values
    rows = [list(xfuxi.observations.imager.CHANNELS).index(c) for c in SENSORS]
    np.testing.assert_array_equal(state[rows], post[2])
    assert "varbc_rms" in back
    # the channels' biases (several K) are taken up: O−B with the prior falls over cycles
    omb = np.abs(s["radiance_mean_omb"].values)
    assert omb[-1].mean() < omb[0].mean()


def test_an_adaptive_static_factor_is_carried_from_cycle_to_cycle(setting, tmp_path):
    """With a static B and ``adaptive_static``, each cycle starts from the factor the last
    one reached (it started again from ``static_inflation`` every cycle)."""
    model, truth = setting
    rng = np.random.default_rng(2)
    static = torch.as_tensor(rng.normal(size=(12, len(CHANNELS), len(LAT), len(LON))))
    static = static * torch.as_tensor(STD)[None, :, None, None]
    method = _method(
        background_error=BackgroundError(hybrid_weight=1.0), static=static,
        static_inflation=4.0, adaptive_static=0.5, localization=LocalizationOptions(
            length_scale=None),
    )  # fmt: skip
    _run(setting, 3, method=method, store=tmp_path / "s")
    factors = [
        float(xr.open_zarr(tmp_path / "s" / "cycles" / f"{k:06d}.zarr")["state__static_inflation"])
        for k in range(3)
    ]
    assert factors[0] != 4.0 and len(set(factors)) == 3  # moved, and on from where it was
    # the second cycle started from the first's factor: its estimate pulls it from there
    assert abs(factors[1] - factors[0]) < abs(factors[1] - 4.0) or factors[1] == factors[0]


def test_a_cycled_ensemble_with_radiances_and_varbc(setting):
    """``members="cycled"``: the members are carried (the LETKF sees the radiances corrected
    by the analysed VarBC coefficients), recentred on each analysis, their spread scored;
    the analyses beat the free run and come as close to the truth as the Perlin ones."""
    from xfuxi.assimilation.letkf import LETKFOptions

    cycled = _run(
        setting, 6,
        method=_method(varbc=True, members="cycled",
                       letkf=LETKFOptions(n_members=8, rtps=0.5),
                       initial=BackgroundError(amplitude=1.0)),
    ).scores  # fmt: skip
    perlin = _run(setting, 6, method=_method(varbc=True)).scores
    assert bool(cycled["spread"].notnull().all()) and float(cycled["spread"].min()) > 0
    assert bool(
        (cycled["varbc_prior"][1:].values == cycled["varbc_coefficients"][:-1].values).all()
    )
    # the temperatures (as in the Perlin test above)
    temps = [c for c in cycled["channel"].values if str(c).startswith("temperature")]
    err = cycled["analysis_error"].sel(channel=temps).mean("channel")
    assert bool((err < cycled["free_error"].sel(channel=temps).mean("channel")).all())
    assert bool((err < cycled["background_error"].sel(channel=temps).mean("channel")).all())
    late = perlin["analysis_error"].sel(channel=temps).mean("channel")[2:].mean()
    assert float(err[2:].mean()) < 1.2 * float(late)


def test_offline_bias_and_no_correction_and_a_given_prior(setting):
    bc = RadianceBiasCorrection({c: (1.0, 0.0, 0.0) for c in SENSORS}, {c: 10 for c in SENSORS})
    off = _run(setting, 2, method=_method(bias=bc)).scores
    plain = _run(setting, 2, method=_method()).scores
    assert "varbc_prior" not in off and "varbc_prior" not in plain
    # the offline correction is subtracted: the mean O−B moves by its 1 K
    diff = plain["radiance_mean_omb"][0] - off["radiance_mean_omb"][0]
    np.testing.assert_allclose(diff.values, 1.0, atol=1e-9)
    given = _run(setting, 2, method=_method(varbc=bc)).scores
    np.testing.assert_array_equal(given["varbc_prior"][0].sel(predictor="constant"), 1.0)
    partial = RadianceBiasCorrection({"wv6.2": (0.0, 0.0, 0.0)}, {"wv6.2": 1})
    with pytest.raises(ImagerError, match="no prior bias coefficients"):
        _run(setting, 1, method=_method(varbc=partial))


def test_an_interrupted_run_resumes_with_identical_results(setting, tmp_path):
    network = ImagerSondeNetwork(_imager(), RadiosondeNetwork(n_sites=8, seed=2))
    whole = _run(setting, 4, network=network, store=tmp_path / "a")

    class Interrupt(Exception):
        pass

    class Failing(ImagerNetwork):
        def __call__(self, truth, times, *, cycle, model):
            if cycle == 2:
                raise Interrupt
            return super().__call__(truth, times, cycle=cycle, model=model)

    FIELDS = ("satellites", "channels", "frames", "errors", "seed")
    failing = ImagerSondeNetwork(
        Failing(**{k: getattr(network.imager, k) for k in FIELDS}),
        network.radiosondes,
    )
    with pytest.raises(Interrupt):
        _run(setting, 4, network=failing, store=tmp_path / "b")
    assert len(list((tmp_path / "b" / "cycles").glob("*.zarr"))) == 2
    resumed = _run(setting, 4, network=network, store=tmp_path / "b")
    xr.testing.assert_identical(
        whole.scores.drop_vars("wall_time_s"), resumed.scores.drop_vars("wall_time_s")
    )
    # other settings of the method or the network are refused, named
    for method, match in [
        (_method(varbc=True, varbc_std=0.5), "varbc_std"),
        (_method(), "radiances.varbc"),
        (_method(varbc=True, screen_threshold=2.0), "screen_threshold"),
        (_method(varbc=True, radiance_error=0.7), "radiances.error"),
    ]:
        with pytest.raises(ValueError, match=match):
            _run(setting, 4, network=network, method=method, store=tmp_path / "b")
    with pytest.raises(ValueError, match="radiosondes"):
        _run(setting, 4, network=_imager(), store=tmp_path / "b")


def test_bad_settings_are_named(setting):
    bc = RadianceBiasCorrection({"wv6.2": (0.0, 0.0, 0.0)}, {"wv6.2": 1})
    with pytest.raises(ValueError, match="not both"):
        _method(bias=bc, varbc=True)
    with pytest.raises(TypeError, match="varbc must be"):
        _method(varbc={"wv6.2": (0, 0, 0)})
    with pytest.raises(TypeError, match="bias must be"):
        _method(bias={"wv6.2": (0, 0, 0)})
    with pytest.raises(ValueError, match="varbc_std"):
        _method(varbc=True, varbc_std=(1.0, 2.0))
    with pytest.raises(ValueError, match="members must be"):
        _method(members="carried")
    with pytest.raises(ValueError, match="n_slots=1"):
        _method(n_slots=2)
    with pytest.raises(ValueError, match="screen_threshold"):
        _method(screen_threshold=-1.0)
    with pytest.raises(ValueError, match="cloudy_error needs"):
        _method(screen_threshold=None, cloudy_error=2.0)
    with pytest.raises(ValueError, match="window_channel"):
        _method(window_channel="ir99")
    with pytest.raises(ValueError, match="radiance_error"):
        _method(radiance_error=0.0)
    with pytest.raises(TypeError, match="ImagerNetwork or an ImagerSondeNetwork"):
        _run(setting, 1, network=RadiosondeNetwork(n_sites=5))
    with pytest.raises(TypeError, match="imager must be"):
        ImagerSondeNetwork(RadiosondeNetwork())
    with pytest.raises(ImagerError, match="frame"):  # the analysis-time frame is needed
        _run(setting, 1, network=_imager(frames=(-2.0,)))


def test_cloudy_pixels_are_screened_or_kept_all_sky(setting):
    cloudy = _imager(errors=ImagerErrors(spectroscopy=False))
    clear = _run(setting, 2, network=cloudy, method=_method(varbc=True)).scores
    assert bool((clear["radiance_cloudy_looking"] > 0).all())
    used = clear["radiance_count"].sum("sensor_channel")
    assert bool((used < clear["radiance_given"]).all())
    allsky = _run(setting, 2, network=cloudy, method=_method(varbc=True, cloudy_error=5.0))
    a = allsky.scores
    assert bool((a["radiance_count"].sum("sensor_channel") > used).all())


def test_the_cli_cycles_en4dvar_with_radiances(monkeypatch, capsys):
    """``xfuxi cycle --method en4dvar-radiances [--varbc]``: the imager (analysis-time frame)
    and the radiosondes (``--sites 0``: none) reach the network, the options the method."""
    import xfuxi.assimilation.cycle as cycle_module
    from xfuxi.cli import assimilate as cli_assimilate
    from xfuxi.cli import main

    seen = {}

    def fake_cycle(truth, network, *, method, model, config, store):
        seen.update(network=network, method=method)
        return "a run"

    monkeypatch.setattr(cycle_module, "cycle", fake_cycle)
    monkeypatch.setattr(cli_assimilate, "open_data", lambda path: path)
    monkeypatch.setattr(cli_assimilate, "load_model", lambda name: name)
    base = ["cycle", "truth.zarr", "--store", "s.zarr", "--method", "en4dvar-radiances"]
    flags = ["--satellites", "0,105", "--no-clouds", "--varbc", "--radiance-error", "0.8"]
    assert main(base + [*flags, "--sites", "20", "--seed", "3"]) == 0
    net, method = seen["network"], seen["method"]
    assert isinstance(net, ImagerSondeNetwork) and isinstance(method, RadianceEn4DVarMethod)
    assert net.imager.satellites == (0.0, 105.0) and net.imager.frames == (0.0,)
    assert net.imager.errors == ImagerErrors(clouds=False) and net.imager.seed == 3
    assert net.radiosondes.n_sites == 20
    assert method.varbc is True and method.radiance_error == 0.8
    assert method.screen_threshold == 3.0 and method.members == "perlin"
    # radiosondes span levels: vertical localization on by default (1.0 ln p)
    assert method.localization.vertical_length_scale == 1.0
    assert main(base + ["--sites", "0", "--screen-threshold", "2"]) == 0
    assert seen["network"].radiosondes is None and seen["method"].varbc is False
    # a radiosonde-only method needs sites: one line naming the flag, no run
    seen.clear()
    letkf = ["cycle", "truth.zarr", "--store", "s.zarr", "--method", "letkf", "--sites", "0"]
    assert main(letkf) != 0 and not seen
    assert "--sites: RadiosondeNetwork.n_sites must be an integer >= 1" in capsys.readouterr().err
    assert main(base + ["--sites", "0", "--screen-threshold", "2"]) == 0
    assert seen["method"].localization.vertical_length_scale is None
    assert seen["method"].screen_threshold == 2.0
    assert main(base + ["--vertical-localization", "0"]) == 0
    assert seen["method"].localization.vertical_length_scale is None
    assert main(base + ["--cycled-ensemble", "--members", "12"]) == 0
    assert seen["method"].members == "cycled" and seen["method"].letkf.n_members == 12
    assert main(["cycle", "t.zarr", "--store", "s.zarr", "--cycled-ensemble"]) != 0
    assert "--cycled-ensemble needs" in capsys.readouterr().err
    assert main(base + ["--radiance-error", "-1"]) != 0
    assert "--radiance-error must be positive" in capsys.readouterr().err
    assert main(["cycle", "truth.zarr", "--store", "s.zarr", "--varbc"]) != 0
    assert "--varbc needs" in capsys.readouterr().err


def test_an_offline_fit_from_a_perfect_background_recovers_the_imager_biases(setting):
    """With the truth as background, no clouds and no spectroscopy error, ``O − H(x_b)`` is
    the channel bias plus noise: the fitted bias of every row is the imager's
    ``b0 + b_zenith (sec θ − 1) + b_scene (BT − 250) / 50`` within 0.1 K, its residual std
    is the channel's noise, and the fit survives a JSON round trip."""
    from xfuxi.assimilation.radiances import background_radiances, offline_bias_fit
    from xfuxi.observations.imager import CHANNELS as IMAGER
    from xfuxi.observations.imager import radiance_table

    model, truth = setting
    times = truth.time.values[2:10]
    radiances = xfuxi.imager_observations(
        truth, satellites=(90.0, 270.0), channels=SENSORS, frames=(0.0,), times=times,
        errors=BIASED, seed=5,
    )  # fmt: skip
    fit = offline_bias_fit(truth, radiances, model=model, screen_threshold=50.0)
    assert sorted(fit.correction.coefficients) == sorted(SENSORS)
    table = radiance_table(radiances)
    names, zen = table["sensor_channel"].values.astype(str), table["zenith_angle"].values
    bt = background_radiances(table, truth, channels=model.channels)
    sec = 1.0 / np.cos(np.radians(zen))
    true_bias = np.array(
        [IMAGER[n].bias[0] + IMAGER[n].bias[1] * (s - 1.0) + IMAGER[n].bias[2] * (b - 250.0) / 50.0
         for n, s, b in zip(names, sec, bt, strict=True)]
    )  # fmt: skip
    fitted = fit.correction.predict(names, zen, bt)
    for c in SENSORS:
        k = names == c
        miss = np.sqrt(np.mean((fitted[k] - true_bias[k]) ** 2))
        # within 0.1 K, and far closer than no correction or the mean bias alone
        assert miss < min(0.1, 0.3 * np.sqrt(np.mean(true_bias[k] ** 2))), c
        assert miss < 0.6 * np.std(true_bias[k]), c
        assert fit.error[c] == pytest.approx(IMAGER[c].noise, rel=0.25)
        assert fit.rms_departure[c] > fit.error[c]
        assert fit.n_clear[c] == fit.correction.n_rows[c] > 50
    back = RadianceBiasCorrection.from_dict(fit.to_dict()["coefficients"])
    assert back == fit.correction
    with pytest.raises(ImagerError, match="unknown channel"):
        RadianceBiasCorrection.from_dict({"wv9.9": {"constant": 0.0}})
    with pytest.raises(ImagerError, match="missing"):
        RadianceBiasCorrection.from_dict({"wv6.2": {"constant": 0.0}})
    with pytest.raises(ImagerError, match="background has no state"):
        offline_bias_fit(truth.isel(time=[0]), radiances, model=model)


def test_the_cli_fits_the_bias_offline_and_cycles_with_it(setting, monkeypatch, capsys, tmp_path):
    """``xfuxi fit-radiance-bias`` writes bias.json (coefficients and clear-sky errors) into a
    marked directory; ``xfuxi cycle --radiance-bias DIR`` subtracts it (``--varbc``: the
    first prior), with the fit's errors unless ``--radiance-error`` is given."""
    import json

    import xfuxi.assimilation.cycle as cycle_module
    from xfuxi.cli import assimilate as cli_assimilate
    from xfuxi.cli import main

    _, truth = setting
    # plausible means: the forecast checks its inputs against them
    stats = NormStats(np.array([220.0, 250.0, 280.0, 0.05, 0.2, 0.5, 1e5]), STD, STD)
    model = xfuxi.wrap_model(Last(), channels=CHANNELS, latitude=LAT, longitude=LON, stats=stats)
    monkeypatch.setattr(cli_assimilate, "open_data", lambda path: truth)
    monkeypatch.setattr(cli_assimilate, "load_model", lambda name: model)
    out = tmp_path / "bc"
    fit_cmd = [
        "fit-radiance-bias",
        "truth.zarr",
        "--output",
        str(out),
        "--times",
        "6",
        "--first",
        "2",
        "--satellites",
        "90,270",
        "--no-clouds",
        "--no-spectroscopy",
    ]
    assert main(fit_cmd) == 0, capsys.readouterr().err
    record = json.loads((out / "bias.json").read_text())
    assert set(record) >= {"coefficients", "error", "rms_departure", "n_clear", "settings"}
    assert record["settings"]["satellites"] == [90.0, 270.0]
    assert (out / ".xfuxi-output.json").exists()
    assert main(fit_cmd) != 0  # an existing output is not replaced without --overwrite
    assert main([*fit_cmd, "--overwrite"]) == 0
    assert main([*fit_cmd[:2], "--output", str(tmp_path / "x"), "--first", "1"]) != 0
    assert "--first" in capsys.readouterr().err

    seen = {}

    def fake_cycle(truth, network, *, method, model, config, store):
        seen.update(method=method)
        return "a run"

    monkeypatch.setattr(cycle_module, "cycle", fake_cycle)
    base = ["cycle", "truth.zarr", "--store", "s.zarr", "--method", "en4dvar-radiances",
            "--radiance-bias", str(out)]  # fmt: skip
    assert main(base) == 0
    method = seen["method"]
    assert method.bias == RadianceBiasCorrection.from_dict(record["coefficients"])
    assert method.varbc is False and method.radiance_error == record["error"]
    assert main([*base, "--varbc", "--varbc-std", "0.02", "--radiance-error", "0.7"]) == 0
    method = seen["method"]
    assert method.bias is None and method.varbc == RadianceBiasCorrection.from_dict(
        record["coefficients"]
    )
    assert method.varbc_std == (0.02, 0.02, 0.02) and method.radiance_error == 0.7
    assert main(["cycle", "t.zarr", "--store", "s.zarr", "--radiance-bias", str(out)]) != 0
    assert "--radiance-bias needs" in capsys.readouterr().err
    assert main([*base[:-1], str(tmp_path / "nothing")]) != 0
    assert "no such file" in capsys.readouterr().err
    assert main([*base, "--varbc-std", "0.1"]) != 0
    assert "--varbc-std needs --varbc" in capsys.readouterr().err


class _Outage(ImagerNetwork):
    """Every radiance of cycle 1 missing (an outage)."""

    def __call__(self, truth, times, *, cycle, model):
        r = super().__call__(truth, times, cycle=cycle, model=model)
        if cycle == 1:
            r["brightness_temperature"][:] = np.nan
        return r


class _Overcast(ImagerNetwork):
    """Every pixel of cycle 1 100 K cold: all fail the cloud screen."""

    def __call__(self, truth, times, *, cycle, model):
        r = super().__call__(truth, times, cycle=cycle, model=model)
        if cycle == 1:
            r["brightness_temperature"][:] = r["brightness_temperature"] - 100.0
        return r


@pytest.mark.parametrize("network", [_Outage, _Overcast])
def test_a_cycle_without_a_usable_radiance_keeps_its_background_with_a_warning(setting, network):
    base = dict(satellites=(90.0, 270.0), channels=SENSORS, frames=(0.0,), errors=BIASED, seed=3)
    with pytest.warns(UserWarning, match="cycle 1 .*the analysis is the background"):
        run = _run(setting, 3, network=network(**base))
    s = run.scores
    assert s["no_observations"].values.tolist() == [False, True, False]
    assert int(s["n_obs"][1]) == 0 and int(s["n_obs"][2]) > 0
    assert bool((s["analysis_error"][1] == s["background_error"][1]).all())
    # VarBC's coefficients are carried over the cycle unchanged
    np.testing.assert_array_equal(s["varbc_prior"][2].values, s["varbc_coefficients"][0].values)
    # with radiosondes the cycle analyses them
    sondes = ImagerSondeNetwork(network(**base), RadiosondeNetwork(n_sites=5, seed=1))
    s = _run(setting, 3, network=sondes).scores
    assert s["no_observations"].values.tolist() == [False, False, False]
    assert int(s["n_obs"][1]) > 0
