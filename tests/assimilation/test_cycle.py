"""The cycling driver (issue 22, item 1): store, resume, refusals, empty and diverging cycles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from xfuxi.assimilation.config import BackgroundError, LocalizationOptions, QualityControl
from xfuxi.assimilation.cycle import (
    CycleConfig,
    CycleDivergedError,
    CycleRun,
    En4DVarMethod,
    LETKFMethod,
    RadiosondeNetwork,
    cycle,
    open_cycle,
)
from xfuxi.assimilation.letkf import LETKFOptions
from xfuxi.experiments.lorenz96 import Lorenz96Network, lorenz96_truth
from xfuxi.models.lorenz96 import lorenz96_model

INIT = BackgroundError(amplitude=1.0, wavelength=1, octaves=1, perturbation_std=(1.0,))


@pytest.fixture(scope="module")
def setting():
    return lorenz96_model(), lorenz96_truth(n_states=40, seed=1)


def _letkf(inflation: float = 1.05) -> LETKFMethod:
    return LETKFMethod(
        options=LETKFOptions(n_members=10, inflation=inflation, qc_threshold=None),
        localization=LocalizationOptions(length_scale=4.0, n_points=40),
        initial=INIT,
    )


def _run(setting, n, store=None, method=None, network=None, **kw):
    model, truth = setting
    return cycle(
        truth,
        network or Lorenz96Network(seed=2),
        method=method or _letkf(),
        model=model,
        config=CycleConfig(n_cycles=n, lead_steps=2, initial_error=1.0, **kw),
        store=store,
        progress=False,
    )


def _static_3dvar(truth):
    """3D-Var with a static B of the truth's 6-hour tendencies (Lorenz-96)."""
    import torch

    from xfuxi.assimilation.cycle import static_var

    x = torch.as_tensor(truth["x"].values)
    return static_var(
        (x[1:21] - x[:20])[:, None],
        localization=LocalizationOptions(length_scale=4.0, n_points=40, variance=0.999),
    )


class _Interrupt(Exception):
    pass


class _FailingAt4(Lorenz96Network):
    """A network whose fifth cycle fails: an interrupted run."""

    def __call__(self, truth, times, *, cycle, model):
        if cycle == 4:
            raise _Interrupt
        return super().__call__(truth, times, cycle=cycle, model=model)


def test_letkf_cycles_beat_the_free_run(setting):
    run = _run(setting, 12)
    s = run.scores
    assert s.sizes["time"] == 12
    late = s.isel(time=slice(6, None), channel=0).mean("time")
    assert float(late.analysis_error) < 0.5 * float(late.free_error)
    assert float(late.analysis_error) < 1.0  # the observation error
    assert bool(np.isfinite(s["spread"]).all())
    assert "LETKF" in repr(run) and "x" in repr(run)
    # Jupyter shows the same summary; O-B and O-A are in units of σo, and say so
    assert "LETKF" in run._repr_html_() and run._repr_html_().startswith('<div class="xfuxi')
    assert s["omb_rms"].attrs["units"] == "1" and "σo" in s["oma_rms"].attrs["long_name"]


def test_a_store_read_back_writes_to_zarr_in_either_format(setting, tmp_path):
    _run(setting, 2, store=tmp_path / "run")
    back = open_cycle(tmp_path / "run")
    for fmt in (2, 3):  # not tied to the store's own zarr-v2 codecs
        back.to_zarr(tmp_path / f"copy-v{fmt}.zarr", zarr_format=fmt)
        xr.testing.assert_identical(xr.open_zarr(tmp_path / f"copy-v{fmt}.zarr").load(), back)


def test_summary_shows_no_spread_for_a_method_without_members():
    t = np.array(["2000-01-01T00", "2000-01-01T06"], dtype="datetime64[ns]")
    dims = ("time", "channel")
    one = np.ones((2, 1))
    scores = xr.Dataset(
        {
            **{k: (dims, one) for k in ("analysis_error", "background_error", "free_error")},
            "spread": (dims, np.full((2, 1), np.nan)),
            "omb_rms": ("time", [1.0, 1.0]),
            "oma_rms": ("time", [0.5, 0.5]),
            "no_observations": ("time", [False, False]),
        },
        coords={"time": t, "channel": ["x"]},
        attrs={"method": "En4DVar"},
    )
    lines = repr(CycleRun(scores)).splitlines()
    assert lines[2].split() == ["x", "1", "1", "1", "-"] and "nan" not in repr(CycleRun(scores))
    # counts read as English: "2 cycles", "the last cycle" (not "the last 1 cycles")
    assert ": 2 cycles from" in lines[0] and lines[1].endswith("(the last cycle)")
    one_cycle = repr(CycleRun(scores.isel(time=[0]))).splitlines()[0]
    assert ": 1 cycle from" in one_cycle


def test_an_interrupted_run_resumes_with_identical_results(setting, tmp_path):
    whole = _run(setting, 6, store=tmp_path / "a")

    with pytest.raises(_Interrupt):
        _run(setting, 6, store=tmp_path / "b", network=_FailingAt4(seed=2))
    assert len(list((tmp_path / "b" / "cycles").glob("*.zarr"))) == 4
    resumed = _run(setting, 6, store=tmp_path / "b")
    xr.testing.assert_identical(
        whole.scores.drop_vars("wall_time_s"), resumed.scores.drop_vars("wall_time_s")
    )
    a, b = open_cycle(tmp_path / "a"), open_cycle(tmp_path / "b")
    np.testing.assert_array_equal(a["analysis_state"].values, b["analysis_state"].values)
    np.testing.assert_array_equal(a["spread_state"].values, b["spread_state"].values)


def test_a_resume_on_another_thread_count_is_warned_of(setting, tmp_path):
    """A resume on another torch thread count was accepted silently, though its sums round
    differently (the docs said "identical" without the condition)."""
    import warnings

    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        _run(setting, 2, store=tmp_path / "s")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the same count: no warning
            _run(setting, 3, store=tmp_path / "s")
        torch.set_num_threads(2)
        with pytest.warns(UserWarning, match=r"started with 1 torch thread.*resumed with 2"):
            _run(setting, 4, store=tmp_path / "s")
    finally:
        torch.set_num_threads(before)


def test_a_resumed_run_with_other_settings_is_refused(setting, tmp_path):
    _run(setting, 2, store=tmp_path / "s")
    with pytest.raises(ValueError, match=r"options\.inflation \(stored 1\.05, now 1\.1\)"):
        _run(setting, 3, store=tmp_path / "s", method=_letkf(1.1))
    with pytest.raises(ValueError, match="seed"):
        _run(setting, 3, store=tmp_path / "s", seed=5)
    # another truth on the same times (another run of the world) is refused too: the stored
    # cycles were scored against the first
    model, truth = setting
    other = lorenz96_truth(n_states=40, seed=7)
    assert other.time.equals(truth.time)
    with pytest.raises(ValueError, match=r"fingerprints\.truth_at_start"):
        _run((model, other), 3, store=tmp_path / "s")
    # a longer truth of the same run resumes (the fingerprint is the truth at the start)
    assert _run((model, truth.isel(time=slice(0, 30))), 3, store=tmp_path / "s")


def test_a_store_asked_for_fewer_cycles_and_a_start_off_the_truth(setting, tmp_path):
    whole = _run(setting, 3, store=tmp_path / "s")
    first = _run(setting, 1, store=tmp_path / "s")  # returned all three before
    assert first.scores.sizes["time"] == 1
    xr.testing.assert_equal(  # the same cycle (attrs differ: the config's n_cycles)
        first.scores.drop_vars("wall_time_s"),
        whole.scores.isel(time=[0]).drop_vars("wall_time_s"),
    )
    assert '"n_cycles": 1' in first.scores.attrs["config"]
    model, truth = setting
    start = truth.time.values[5] + np.timedelta64(1, "h")  # not on the truth's 6-hour step
    with pytest.raises(ValueError, match="start=.* is not one of the truth's times"):
        _run(setting, 2, start=start)  # was a bare KeyError from the truth's index


def test_a_cycle_without_observations_keeps_the_background(setting):
    class Gap(Lorenz96Network):
        def __call__(self, truth, times, *, cycle, model):
            obs = super().__call__(truth, times, cycle=cycle, model=model)
            if cycle == 2:
                obs["value"][:] = np.nan  # every observation unusable
            return obs

    with pytest.warns(UserWarning, match="cycle 2 .*no usable observation"):
        run = _run(setting, 4, network=Gap(seed=2))
    s = run.scores
    assert s["no_observations"].values.tolist() == [False, False, True, False]
    np.testing.assert_array_equal(
        s["analysis_error"].isel(time=2), s["background_error"].isel(time=2)
    )
    assert int(s["n_obs"].isel(time=2)) == 0


def test_a_diverging_cycle_stops_and_keeps_the_complete_ones(setting, tmp_path):
    class Wild(Lorenz96Network):
        def __call__(self, truth, times, *, cycle, model):
            obs = super().__call__(truth, times, cycle=cycle, model=model)
            if cycle == 3:
                obs["value"][:] = 1e4
            return obs

    with pytest.raises(CycleDivergedError, match="cycle 3 .*diverged.*x analysis error"):
        _run(setting, 5, store=tmp_path / "d", network=Wild(seed=2))
    assert open_cycle(tmp_path / "d").sizes["time"] == 3


def test_cycled_ensemble_en4dvar_through_the_driver(setting):
    method = En4DVarMethod(
        background_error=BackgroundError(perturbation_std=(1.0,), wavelength=1, octaves=1),
        localization=LocalizationOptions(length_scale=4.0, n_points=40, variance=0.999),
        quality_control=QualityControl(qc_threshold=None),
        members="cycled",
        letkf=LETKFOptions(n_members=10, inflation=1.05, qc_threshold=None),
        initial=INIT,
    )
    s = _run(setting, 6, method=method).scores
    late = s.isel(time=slice(3, None), channel=0).mean("time")
    assert float(late.analysis_error) < 0.5 * float(late.free_error)
    assert bool((s["iterations"] > 0).all())
    assert bool(np.isfinite(s["spread"]).all())


def test_bad_arguments_are_named(setting):
    model, truth = setting
    with pytest.raises(TypeError, match="CycleMethod"):
        cycle(truth, Lorenz96Network(), method="letkf", model=model, config={"n_cycles": 2})
    with pytest.raises(ValueError, match="exactly one of days and n_cycles"):
        cycle(truth, Lorenz96Network(), method=_letkf(), model=model)
    with pytest.raises(ValueError, match="exactly one of days and n_cycles"):
        CycleConfig(days=1.0, n_cycles=4)
    with pytest.raises(ValueError, match="truth covers"):
        cycle(truth, Lorenz96Network(), method=_letkf(), model=model,
              config=CycleConfig(n_cycles=100))  # fmt: skip
    with pytest.raises(ValueError, match="CycleConfig.lead_steps must be an integer >= 2"):
        CycleConfig(n_cycles=2, lead_steps=1)
    with pytest.raises(ValueError, match="unknown CycleConfig option"):
        cycle(truth, Lorenz96Network(), method=_letkf(), model=model, config={"cycles": 2})
    with pytest.raises(TypeError, match="unexpected keyword"):
        cycle(truth, Lorenz96Network(), method=_letkf(), model=model, cycles=2)
    with pytest.raises(ValueError, match="members must be"):
        En4DVarMethod(members="fresh")


def test_static_3dvar_and_perlin_en4dvar_through_the_driver(setting, capsys):
    import torch

    from xfuxi.assimilation.config import Minimiser
    from xfuxi.assimilation.cycle import static_var

    _, truth = setting
    x = torch.as_tensor(truth["x"].values)  # (T, 1, 40)
    samples = (x[1:31] - x[:30])[:, None]  # 6-hour tendencies as error samples (K, 1, 1, 40)
    three = static_var(
        samples,
        localization=LocalizationOptions(length_scale=4.0, n_points=40, variance=0.999),
        minimiser=Minimiser(max_iter=20),
        quality_control=QualityControl(qc_threshold=None),
    )
    assert three.n_slots == 1 and three.name.startswith("3D-Var")
    perlin = En4DVarMethod(
        background_error=BackgroundError(
            n_members=20, perturbation_std=(3.6,), amplitude=0.1, wavelength=1, octaves=1
        ),
        localization=LocalizationOptions(length_scale=4.0, n_points=40, variance=0.999),
        quality_control=QualityControl(qc_threshold=None),
        minimiser=Minimiser(max_iter=20),
    )
    for method in (three, perlin):
        s = _run(setting, 4, method=method).scores.isel(channel=0)
        assert float(s.analysis_error[-1]) < float(s.background_error[-1])
        assert float(s.analysis_error[-1]) < 0.5 * float(s.free_error[-1])
        assert bool(np.isnan(s["spread"]).all())  # no members carried
    assert "ensemble members" not in capsys.readouterr().err  # progress=False is silent


def test_plot_of_a_run(setting):
    import matplotlib

    matplotlib.use("Agg")
    run = _run(setting, 3)
    ax = run.plot()
    assert [line.get_label() for line in ax.get_lines()] == [
        "analysis",
        "background",
        "free run",
        "spread",
    ]
    with pytest.raises(ValueError, match="channel 'y' is not in the scores"):
        run.plot(["y"])
    # a name alone (it was read as a list of its characters), several names (the first was
    # drawn alone, silently), one cycle (an invisible line), a spread without members and
    # cycles without observations
    channel = str(run.scores["channel"].values[0])
    assert run.plot(channel).get_title().endswith(channel)
    with pytest.raises(ValueError, match="draws one channel"):
        run.plot([channel, channel])
    one = run.scores.isel(time=[1]).assign(spread=lambda d: d["spread"] * np.nan)
    one["no_observations"] = ("time", [True])
    ax = one.fuxi.plot_cycle()
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["analysis", "background", "free run", "no observations"]
    assert ax.get_lines()[0].get_marker() == "o"


def test_cli_cycle_refuses_bad_options_before_work(tmp_path, capsys):
    from xfuxi.cli import main

    rc = main(["cycle", str(tmp_path / "none.zarr"), "--store", str(tmp_path / "s"), "--rtps", "2"])
    assert rc == 2
    assert "rtps must be in [0, 1]" in capsys.readouterr().err


def test_old_keywords_still_work_with_a_deprecation_warning(setting, tmp_path):
    """Issue 19 item 3: the run options are one CycleConfig; the old keywords warn."""
    import json

    from xfuxi.files import read_marker

    model, truth = setting
    new = _run(setting, 2, store=tmp_path / "new", seed=3)
    with pytest.warns(DeprecationWarning, match=r"pass config=CycleConfig\(n_cycles=..."):
        old = cycle(truth, Lorenz96Network(seed=2), method=_letkf(), model=model, n_cycles=2,
                    lead_steps=2, initial_error=1.0, seed=3, progress=False)  # fmt: skip
    xr.testing.assert_identical(
        old.scores.drop_vars("wall_time_s"), new.scores.drop_vars("wall_time_s")
    )
    cfg = CycleConfig(n_cycles=2, lead_steps=2, initial_error=1.0, seed=3)
    assert CycleConfig.from_dict(json.loads(new.scores.attrs["config"])) == cfg
    assert CycleConfig.from_dict(read_marker(tmp_path / "new")["config"]) == cfg


def test_cli_cycle_flags_come_from_cycle_config(monkeypatch, tmp_path):
    """Issue 19 item 3: ``xfuxi cycle`` builds its run options from CycleConfig."""
    import xfuxi.assimilation.cycle as cycle_module
    import xfuxi.cli.assimilate as cli_assimilate
    from xfuxi.cli import main

    seen = {}

    def fake_cycle(truth, network, **kwargs):
        seen.update(kwargs, network=network)
        return CycleRun(scores=xr.Dataset())

    monkeypatch.setattr(cycle_module, "cycle", fake_cycle)
    monkeypatch.setattr(cli_assimilate, "open_data", lambda path: xr.Dataset())
    monkeypatch.setattr(cli_assimilate, "load_model", lambda name: "model")
    base = ["cycle", "truth.zarr", "--store", str(tmp_path / "s")]
    assert main(base) == 0
    assert seen["config"] == CycleConfig(days=1.0)  # the command's default length
    args = [
        "--n-cycles",
        "5",
        "--lead-steps",
        "3",
        "--seed",
        "4",
        "--initial-error",
        "0.5",
        "--divergence-factor",
        "7",
        "--no-save-states",
        "--no-keep-members",
        "--start",
        "2001-03-02T06",
    ]
    assert main(base + args) == 0
    assert seen["config"] == CycleConfig(
        n_cycles=5, lead_steps=3, seed=4, initial_error=0.5, divergence_factor=7.0,
        save_states=False, keep_members=False, start="2001-03-02 06:00:00",
    )  # fmt: skip
    assert seen["network"].seed == 4


def test_additive_inflation_keeps_the_mean_and_widens_the_spread():
    import torch

    from xfuxi.assimilation.cycle import additive_inflation

    g = torch.Generator().manual_seed(0)
    members = torch.randn(12, 2, 3, 4, 8, generator=g, dtype=torch.float64)
    samples = torch.randn(30, 3, 4, 8, generator=g, dtype=torch.float64)
    before = members.clone()
    out = additive_inflation(members, samples, 0.5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(members, before)  # the input is not changed
    torch.testing.assert_close(out.mean(0), members.mean(0))
    assert float(out.var(0).mean()) > 1.1 * float(members.var(0).mean())
    added = out - members
    torch.testing.assert_close(added[:, 0], added[:, 1])  # the same on both times
    again = additive_inflation(members, samples, 0.5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, again)  # from the run's generator
    assert not torch.equal(out, additive_inflation(members, samples, 0.5,
                                                   torch.Generator().manual_seed(2)))  # fmt: skip


def test_additive_inflation_in_the_driver(setting, tmp_path):
    """Lorenz-96 with an under-dispersive LETKF (no multiplicative inflation): additive
    inflation from samples of the model's 1-step changes lifts the spread; its settings are
    part of the run's, and a resumed run with another scale is refused."""
    import torch

    model, truth = setting
    x = torch.as_tensor(truth["x"].values[:, 0], dtype=torch.float64)  # (time, 40)
    samples = (x[1:21] - x[:20]).reshape(20, 1, 1, -1)
    plain = _run(setting, 8, method=_letkf(inflation=1.0)).scores
    method = LETKFMethod(
        options=LETKFOptions(n_members=10, inflation=1.0, qc_threshold=None),
        localization=LocalizationOptions(length_scale=4.0, n_points=40),
        initial=INIT,
        additive=samples,
    )
    added = _run(setting, 8, method=method, store=tmp_path / "a").scores
    assert float(added["spread"][-4:].mean()) > 1.2 * float(plain["spread"][-4:].mean())
    other = LETKFMethod(
        options=method.options, localization=method.localization, initial=INIT,
        additive=samples, additive_scale=2.0,
    )  # fmt: skip
    with pytest.raises(ValueError, match="additive"):
        _run(setting, 9, method=other, store=tmp_path / "a")
    with pytest.raises(TypeError, match="additive must be a tensor"):
        LETKFMethod(additive=np.zeros((3, 1, 1, 40)))
    with pytest.raises(ValueError, match="additive_scale"):
        LETKFMethod(additive=samples, additive_scale=0.0)
    with pytest.raises(ValueError, match="members='cycled'"):
        En4DVarMethod(additive=samples)


def test_cli_cycle_truncation_wraps_the_model(monkeypatch, tmp_path, capsys):
    """``--truncation N`` runs the cycle with the model's every step spectrally truncated."""
    import xfuxi.assimilation.cycle as cycle_module
    import xfuxi.cli.assimilate as cli_assimilate
    from tests import tiny
    from xfuxi.assimilation.cycle import CycleRun
    from xfuxi.cli import main

    seen = {}

    def fake_cycle(truth, network, **kwargs):
        seen.update(kwargs)
        return CycleRun(scores=xr.Dataset())

    monkeypatch.setattr(cycle_module, "cycle", fake_cycle)
    monkeypatch.setattr(cli_assimilate, "open_data", lambda path: xr.Dataset())
    monkeypatch.setattr(cli_assimilate, "load_model", lambda name: tiny.fuxi_model())
    base = ["cycle", "truth.zarr", "--store", str(tmp_path / "s")]
    assert main(base) == 0
    assert getattr(seen["model"], "output_filter", None) is None
    assert main([*base, "--truncation", "3"]) == 0
    assert seen["model"].output_filter.truncation == 3
    assert main([*base, "--truncation", "12"]) == 2  # too fine for 16 longitudes
    assert "--truncation" in capsys.readouterr().err


def test_open_cycle_states_reads_the_analysed_member_pairs(setting, tmp_path):
    from xfuxi.assimilation.cycle import open_cycle_states

    _run(setting, 4, store=tmp_path / "s")
    states = open_cycle_states(tmp_path / "s")
    assert states.dims == ("time", "member", "pair", "channel", "latitude", "longitude")
    assert states.sizes["time"] == 4 and states.sizes["member"] == 10
    scores = open_cycle(tmp_path / "s")
    np.testing.assert_array_equal(states["time"].values, scores["time"].values)
    assert list(states["channel"].values) == [str(c) for c in scores["channel"].values]
    step = np.diff(scores["time"].values)[0]
    np.testing.assert_array_equal(states["pair"].values, np.array([-step, 0]).astype("m8[ns]"))
    # the members' mean at t is the LETKF analysis
    np.testing.assert_allclose(
        states.isel(pair=1).mean("member").values,
        scores["analysis_state"].values.astype("float32"),
        rtol=1e-5,
        atol=1e-5,
    )
    assert open_cycle_states(tmp_path / "s", members=3).sizes["member"] == 3
    late = open_cycle_states(tmp_path / "s", skip_days=0.4)
    assert late.sizes["time"] == 2  # cycles 6 h apart: the first two are within 0.4 days
    with pytest.raises(ValueError, match="no complete cycle after"):
        open_cycle_states(tmp_path / "s", skip_days=10)
    with pytest.raises(ValueError, match="members must be"):
        open_cycle_states(tmp_path / "s", members=0)
    with pytest.raises(ValueError, match="not a cycling store"):
        open_cycle_states(tmp_path)


def test_desroziers_diagnostics_match_their_definition(setting, tmp_path):
    """The per-cycle Desroziers estimates are the means of (o−a)(o−b)/σo² and
    (a−b)(o−b)/σo²; their sum is the innovations' mean square (o−b)²/σo²."""
    run = _run(setting, 6)
    s = run.scores
    r, hbh = s["desroziers_r"].values, s["desroziers_hbh"].values
    assert np.isfinite(r).all() and np.isfinite(hbh).all()
    np.testing.assert_allclose(r + hbh, s["omb_rms"].values ** 2, rtol=1e-10)
    # the LETKF with a correct R: the estimate of R is of order one, H B Hᵀ positive
    assert 0.2 < float(np.median(r)) < 2.0 and float(np.median(hbh)) > 0


def test_a_store_written_before_a_diagnostic_existed_still_reads(setting, tmp_path):
    from xfuxi.assimilation.cycle import _concat_rows

    run = _run(setting, 3)
    rows = [run.scores.isel(time=[i]) for i in range(3)]
    rows[0] = rows[0].drop_vars("desroziers_r")
    out = _concat_rows(rows)
    assert np.isnan(out["desroziers_r"].values[0])
    np.testing.assert_array_equal(out["desroziers_r"].values[1:], run.scores["desroziers_r"][1:])


def test_hybrid_gain_blends_the_letkf_mean_with_a_static_b_analysis_of_it(setting):
    import torch

    from xfuxi.assimilation.cycle import HybridGainMethod, _letkf_update, _stack

    model, truth = setting
    var = _static_3dvar(truth)
    hybrid = HybridGainMethod(letkf=_letkf(), variational=var, weight=0.4)
    gen = torch.Generator().manual_seed(0)
    t = truth["time"].values
    bg = _stack(truth, model, t[:3]) + 0.5  # (3, C, H, W): a background off the truth
    state = hybrid.start(bg, model=model, generator=gen)
    slots, _, _ = hybrid.observe(Lorenz96Network(seed=2), truth, [t[2]], cycle=0, model=model)
    out = hybrid.analyse(state, slots, model=model, generator=torch.Generator().manual_seed(1))
    ref = _letkf_update(state, slots, model, hybrid.letkf.options, hybrid.letkf.localization)
    mean = ref.members.mean(0)
    v = var.analyse(
        {"background": torch.stack([bg[0], mean[0], mean[1]])}, slots, model=model,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    expected = mean[1] + 0.4 * (v.analysis - mean[1])
    torch.testing.assert_close(out.analysis, expected)
    members = out.state["members"]
    torch.testing.assert_close(members[:, 1].mean(0), expected)  # recentred on it
    torch.testing.assert_close(members[:, 0], ref.members[:, 0])  # t0 − Δ: the LETKF's
    torch.testing.assert_close(members[:, 1].std(0), ref.members[:, 1].std(0))  # spread kept
    # O − A of the blended analysis, on the LETKF's used observations
    s = slots[0]
    torch.testing.assert_close(out.oma, s.value.double() - s.operator(expected[None])[0])
    # in the driver: the analysis beats the free run, as the LETKF's does
    run = _run(setting, 8, method=hybrid)
    late = run.scores.isel(time=slice(4, None), channel=0).mean("time")
    assert float(late.analysis_error) < 0.5 * float(late.free_error)
    with pytest.raises(ValueError, match="weight must be"):
        HybridGainMethod(letkf=_letkf(), variational=var, weight=0)
    with pytest.raises(TypeError, match="variational must be"):
        HybridGainMethod(letkf=_letkf(), variational=_letkf())
    with pytest.raises(ValueError, match="one observation slot"):
        HybridGainMethod(letkf=LETKFMethod(n_slots=2), variational=var)


def test_settings_fingerprints_do_not_depend_on_the_thread_count():
    """A store's settings hold sums of sample tensors; a resumed run on another thread count
    must match them (a parallel sum rounds differently), while real changes are refused."""
    import torch

    from xfuxi.assimilation.cycle import _differences, _exact_sum

    x = torch.randn(50, 3, 8, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _exact_sum(x)
        torch.set_num_threads(2)
        two = _exact_sum(x)
    finally:
        torch.set_num_threads(threads)
    assert one == two
    assert _differences({"s": -15988562.30037153}, {"s": -15988562.300371531}) == []
    assert _differences({"s": 1.05}, {"s": 1.1}) == ["s (stored 1.05, now 1.1)"]
    assert _differences({"s": True}, {"s": 1}) == ["s (stored True, now 1)"]


def test_cli_cycle_hybrid_gain_and_a_static_b(monkeypatch, tmp_path, capsys):
    """``--method hybrid-gain`` needs ``--static-b`` (refused before any work without it);
    with it, the LETKF is blended with a 3D-Var of those samples, and ``cycled-en4dvar``
    gets them as the static part of its B."""
    import xfuxi.assimilation.cycle as cycle_module
    import xfuxi.cli.assimilate as cli_assimilate
    from tests import tiny
    from xfuxi.assimilation.cycle import CycleRun, HybridGainMethod
    from xfuxi.cli import main

    seen = {}

    def fake_cycle(truth, network, **kwargs):
        seen.update(kwargs)
        return CycleRun(scores=xr.Dataset())

    from xfuxi.data.channels import unstack

    model = tiny.fuxi_model()
    rng = np.random.default_rng(0)
    shape = (6, len(model.channels), len(tiny.LAT), len(tiny.LON))
    dims = ("sample", "channel", "latitude", "longitude")
    coords = {"latitude": tiny.LAT, "longitude": tiny.LON}
    samples = unstack(
        xr.DataArray(rng.standard_normal(shape), dims=dims, coords=coords), model.channels
    )
    monkeypatch.setattr(cycle_module, "cycle", fake_cycle)
    monkeypatch.setattr(cli_assimilate, "open_data", lambda path: samples)
    monkeypatch.setattr(cli_assimilate, "load_model", lambda name: model)
    base = ["cycle", "truth.zarr", "--store", str(tmp_path / "s")]
    assert main([*base, "--method", "hybrid-gain"]) == 2
    assert "needs --static-b" in capsys.readouterr().err
    assert main([*base, "--method", "fuxi-da", "--static-b", "b.nc"]) == 2
    assert "--static-b is not used" in capsys.readouterr().err
    assert (
        main([*base, "--method", "hybrid-gain", "--static-b", "b.nc", "--gain-weight", "0.5"]) == 0
    )
    method = seen["method"]
    assert isinstance(method, HybridGainMethod) and method.weight == 0.5
    assert method.variational.static.shape[0] == 6
    assert method.variational.localization.length_scale == 2000.0
    assert main([*base, "--method", "hybrid-gain", "--static-b", "b.nc", "--gain-weight", "2"]) == 2
    assert "weight must be" in capsys.readouterr().err
    gain = [*base, "--method", "hybrid-gain", "--static-b", "b.nc"]
    assert main([*gain, "--adaptive-static", "0.1", "--ensemble-variances"]) == 0
    assert seen["method"].variational.adaptive_static == 0.1
    assert seen["method"].ensemble_variances is True
    assert main([*gain, "--adaptive-static", "2"]) == 2
    assert "--adaptive-static must be" in capsys.readouterr().err
    assert main([*base, "--method", "letkf", "--ensemble-variances"]) == 2
    assert "need --method hybrid-gain" in capsys.readouterr().err
    assert main([*base, "--method", "cycled-en4dvar", "--static-b", "b.nc"]) == 0
    assert seen["method"].static.shape[0] == 6
    assert seen["method"].background_error.hybrid_weight == 0.25
    assert seen["method"].increment_previous is False
    assert main([*gain, "--increment-previous"]) == 0
    assert seen["method"].increment_previous is True
    for name in ("en4dvar", "cycled-en4dvar"):
        assert main([*base, "--method", name, "--increment-previous"]) == 0
        assert seen["method"].increment_previous is True
    assert main([*base, "--method", "letkf", "--increment-previous"]) == 2
    assert "--increment-previous is not used by --method letkf" in capsys.readouterr().err
    assert main([*gain, "--no-update-previous"]) == 0
    assert seen["method"].letkf.update_previous is False
    assert main([*base, "--method", "letkf"]) == 0
    assert seen["method"].update_previous is True
    assert main([*base, "--method", "letkf", "--no-update-previous"]) == 0
    assert seen["method"].update_previous is False
    assert main([*base, "--method", "en4dvar", "--no-update-previous"]) == 2
    assert "--no-update-previous is not used by --method en4dvar" in capsys.readouterr().err


def test_static_inflation_estimate_recovers_the_factor_of_b():
    """``E[dᵀR⁻¹d] = m + ρ Σ σ_s²/σ_o²``: innovations drawn with ``ρ`` times the samples'
    variance (plus R) give back ``ρ``; a slot after t0 is ignored, gross errors are left
    out, and a nonlinear operator is linearised by differences about the prior."""
    import torch

    from xfuxi.assimilation.cost import ObsSlot
    from xfuxi.assimilation.cycle import static_inflation_estimate

    g = torch.Generator().manual_seed(3)
    m, k = 4000, 300
    sigma_s = 0.5 + torch.rand(m, generator=g, dtype=torch.float64)  # varies by row
    static = torch.randn(k, 1, 1, m, generator=g, dtype=torch.float64) * sigma_s
    err = 0.5 + torch.rand(m, generator=g, dtype=torch.float64)
    rho = 2.5
    d = torch.randn(m, generator=g, dtype=torch.float64) * (err**2 + rho * sigma_s**2).sqrt()
    prior = torch.zeros(1, 1, m, dtype=torch.float64)

    def op(x):
        return x[..., 0, 0, :]

    est = static_inflation_estimate(static, prior, [ObsSlot(0, op, d, err)])
    assert est == pytest.approx(rho, rel=0.08)
    later = ObsSlot(1, op, 100 * d, err)  # not at t0: not used
    assert static_inflation_estimate(static, prior, [ObsSlot(0, op, d, err), later]) == est
    bad = d.clone()
    bad[:20] = 1e6  # gross errors: rejected by the background check
    est_bad = static_inflation_estimate(static, prior, [ObsSlot(0, op, bad, err)], rho)
    assert est_bad == pytest.approx(rho, rel=0.08)
    # a nonlinear operator: H(x) = 3 x + x³ about a prior of 1 behaves as 6 s for small s
    small = 1e-3 * static
    est3 = static_inflation_estimate(
        small, prior + 1, [ObsSlot(0, lambda x: 3 * op(x) + op(x) ** 3, 4 + 6e-3 * d, 6e-3 * err)]
    )
    assert est3 == pytest.approx(rho, rel=0.08)
    assert np.isnan(static_inflation_estimate(static, prior, [later]))


def test_a_fixed_static_inflation_is_the_samples_scaled(setting):
    """``static_inflation=ρ`` gives the analysis of the samples times √ρ; the factor and its
    adaptive update are settings (a resumed run with others is refused) and refused without
    a static B alone."""
    import torch

    from xfuxi.assimilation.cycle import _stack, static_var

    model, truth = setting
    x = torch.as_tensor(truth["x"].values)
    samples = (x[1:21] - x[:20])[:, None]
    loc = LocalizationOptions(length_scale=4.0, n_points=40, variance=0.999)
    t = truth["time"].values
    bg = _stack(truth, model, t[:3]) + 0.5
    scaled = static_var(samples, localization=loc, static_inflation=4.0)
    plain = static_var(2.0 * samples, localization=loc)
    slots, _, _ = plain.observe(Lorenz96Network(seed=2), truth, [t[2]], cycle=0, model=model)
    a = scaled.analyse({"background": bg}, slots, model=model, generator=None)
    b = plain.analyse({"background": bg}, slots, model=model, generator=None)
    torch.testing.assert_close(a.analysis, b.analysis)
    assert a.diagnostics["static_inflation"] == 4.0
    assert scaled.settings()["static_inflation"] == 4.0
    assert "static_inflation" not in plain.settings()  # older stores stay resumable
    with pytest.raises(ValueError, match="static B alone"):
        En4DVarMethod(static_inflation=2.0)
    with pytest.raises(ValueError, match="adaptive_static must be"):
        static_var(samples, adaptive_static=1.5)
    with pytest.raises(ValueError, match="static_inflation must be"):
        static_var(samples, static_inflation=0.0)


def test_adaptive_static_inflation_follows_the_innovations_and_resumes(setting, tmp_path):
    """A 3D-Var whose static samples are too small (0.3 of a 6-hour change): the adaptive
    factor grows from 1 towards the innovations' estimate, is carried through the store (a
    resumed run is identical) and is a diagnostic of every cycle."""
    import torch

    from xfuxi.assimilation.cycle import static_var

    model, truth = setting
    x = torch.as_tensor(truth["x"].values)
    samples = 0.3 * (x[1:21] - x[:20])[:, None]
    loc = LocalizationOptions(length_scale=4.0, n_points=40, variance=0.999)
    method = static_var(samples, localization=loc, adaptive_static=0.2)
    whole = _run(setting, 6, store=tmp_path / "a", method=method)
    rho = whole.scores["static_inflation"].values
    assert 1.0 < rho[0] < rho[-1] and rho[-1] > 3.0, rho  # grows
    fixed = _run(setting, 6, method=static_var(samples, localization=loc))
    assert "static_inflation" not in fixed.scores
    late = slice(3, None)
    assert float(whole.scores["analysis_error"][late].mean()) < float(
        fixed.scores["analysis_error"][late].mean()
    )
    _run(setting, 3, store=tmp_path / "b", method=method)
    resumed = _run(setting, 6, store=tmp_path / "b", method=method)
    xr.testing.assert_identical(
        whole.scores.drop_vars("wall_time_s"), resumed.scores.drop_vars("wall_time_s")
    )
    with pytest.raises(ValueError, match="settings"):
        _run(setting, 7, store=tmp_path / "b", method=static_var(samples, localization=loc))


def test_spread_modulation_keeps_the_global_variance():
    import torch

    from xfuxi.assimilation.cycle import spread_modulation
    from xfuxi.grid import area_weights

    model = type("M", (), {"latitude": np.linspace(-80, 80, 9)})()
    g = torch.Generator().manual_seed(0)
    spread = 1.0 + torch.rand(3, 9, 16, generator=g, dtype=torch.float64)
    spread[2] = 0.0  # a channel without spread: left as it is
    m = spread_modulation(spread, model)
    w = torch.as_tensor(np.asarray(area_weights(model.latitude).values))
    mean_m2 = (m.pow(2) * w[None, :, None]).mean((-2, -1))
    torch.testing.assert_close(mean_m2[:2], torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(m[0] / m[0, 0, 0], spread[0] / spread[0, 0, 0])  # its pattern
    assert bool((m[2] == 1).all())
    spread[1, 0, 0] = 1e3  # one outlier: clipped
    assert float(spread_modulation(spread, model)[1].max()) == 4.0


def test_hybrid_gain_with_ensemble_variances_modulates_the_static_samples(setting):
    """``ensemble_variances=True``: the 3D-Var of the hybrid gain is that of the static
    samples times the modulation of the LETKF's background spread."""
    import torch

    from xfuxi.assimilation.cycle import (
        HybridGainMethod,
        _letkf_update,
        _stack,
        spread_modulation,
        static_var,
    )

    model, truth = setting
    x = torch.as_tensor(truth["x"].values)
    samples = (x[1:21] - x[:20])[:, None]
    loc = LocalizationOptions(length_scale=4.0, n_points=40, variance=0.999)
    hybrid = HybridGainMethod(
        letkf=_letkf(), variational=static_var(samples, localization=loc), ensemble_variances=True
    )
    t = truth["time"].values
    bg = _stack(truth, model, t[:3]) + 0.5
    state = hybrid.start(bg, model=model, generator=torch.Generator().manual_seed(0))
    slots, _, _ = hybrid.observe(Lorenz96Network(seed=2), truth, [t[2]], cycle=0, model=model)
    out = hybrid.analyse(state, slots, model=model, generator=None)
    ref = _letkf_update(state, slots, model, hybrid.letkf.options, hybrid.letkf.localization)
    m = spread_modulation(ref.background_spread, model)
    assert float(m.std()) > 0.05  # the spread is not uniform: the test can tell
    mean = ref.members.mean(0)
    manual = static_var(samples * m[None], localization=loc).analyse(
        {"background": torch.stack([bg[0], mean[0], mean[1]])}, slots, model=model, generator=None
    )
    torch.testing.assert_close(out.analysis, manual.analysis)
    plain = HybridGainMethod(letkf=_letkf(), variational=static_var(samples, localization=loc))
    assert "ensemble_variances" not in plain.settings()  # older stores stay resumable
    assert hybrid.settings()["ensemble_variances"] is True
    with pytest.raises(TypeError, match="ensemble_variances"):
        HybridGainMethod(letkf=_letkf(), variational=plain.variational, ensemble_variances=1)


@pytest.mark.parametrize("kind", ["3d-var", "hybrid gain"])
def test_the_adaptive_static_factor_is_a_running_mean_of_the_estimates(setting, kind):
    """``ρ_t = ρ_{t−1} + g (ρ̂_t − ρ_{t−1})`` from ``ρ_{−1} = static_inflation``: the factor
    is carried from cycle to cycle by both methods (the hybrid gain's LETKF state too)."""
    import torch

    from xfuxi.assimilation.cycle import HybridGainMethod, static_var

    model, truth = setting
    x = torch.as_tensor(truth["x"].values)
    samples = 0.3 * (x[1:21] - x[:20])[:, None]
    loc = LocalizationOptions(length_scale=4.0, n_points=40, variance=0.999)
    var = static_var(samples, localization=loc, adaptive_static=0.3, static_inflation=2.0)
    method = var if kind == "3d-var" else HybridGainMethod(letkf=_letkf(), variational=var)
    s = _run(setting, 5, method=method).scores
    rho, est = s["static_inflation"].values, s["static_inflation_estimate"].values
    assert np.isfinite(est).all() and np.ptp(est) > 0.1
    previous = np.concatenate([[2.0], rho[:-1]])
    np.testing.assert_allclose(rho, np.clip(previous + 0.3 * (est - previous), 0.1, 10.0))


def test_hybrid_gain_increment_previous_keeps_the_letkf_pair_difference(setting):
    """``increment_previous=True``: the static part's increment goes to both times of the
    mean's pair and of every member's, so the pairs' differences stay the LETKF's; the
    analysis at t0 is the same as without it."""
    import torch

    from xfuxi.assimilation.cycle import HybridGainMethod, _letkf_update, _stack

    model, truth = setting
    var = _static_3dvar(truth)
    t = truth["time"].values
    bg = _stack(truth, model, t[:3]) + 0.5
    outs = {}
    for flag in (False, True):
        hybrid = HybridGainMethod(letkf=_letkf(), variational=var, increment_previous=flag)
        state = hybrid.start(bg, model=model, generator=torch.Generator().manual_seed(0))
        slots, _, _ = hybrid.observe(Lorenz96Network(seed=2), truth, [t[2]], cycle=0, model=model)
        outs[flag] = hybrid.analyse(state, slots, model=model, generator=None)
    ref = _letkf_update(state, slots, model, hybrid.letkf.options, hybrid.letkf.localization)
    mean = ref.members.mean(0)
    on, off = outs[True], outs[False]
    torch.testing.assert_close(on.analysis, off.analysis)
    increment = on.analysis - mean[1]
    assert float(increment.abs().max()) > 0.01  # the static part changes something
    torch.testing.assert_close(on.state["pair"][0], mean[0] + increment)
    torch.testing.assert_close(off.state["pair"][0], mean[0])
    torch.testing.assert_close(on.state["members"][:, 0], ref.members[:, 0] + increment)
    torch.testing.assert_close(
        on.state["members"][:, 1] - on.state["members"][:, 0],
        ref.members[:, 1] - ref.members[:, 0],
    )
    assert hybrid.settings()["increment_previous"] is True
    assert "increment_previous" not in HybridGainMethod(letkf=_letkf(), variational=var).settings()
    with pytest.raises(TypeError, match="increment_previous"):
        HybridGainMethod(letkf=_letkf(), variational=var, increment_previous=1)


@pytest.mark.parametrize("n_slots", [1, 2])
def test_en4dvar_increment_previous_moves_the_earlier_time_of_the_pair(setting, n_slots):
    """``En4DVarMethod(increment_previous=True)``: the analysed pair is
    ``(x_b(t0 − Δ) + δ, x_a)``, and the 4DVar is asked for the same pairs in its window."""
    import torch

    from xfuxi.assimilation import cycle as cycle_module
    from xfuxi.assimilation.config import Minimiser
    from xfuxi.assimilation.cycle import _stack, static_var

    model, truth = setting
    x = torch.as_tensor(truth["x"].values)
    t = truth["time"].values
    bg = _stack(truth, model, t[:3]) + 0.5
    seen = []
    real = cycle_module.en4dvar_analysis

    def spy(*args, **kw):
        seen.append(kw["increment_previous"])
        return real(*args, **kw)

    outs = {}
    for flag in (False, True):
        method = static_var(
            (x[1:21] - x[:20])[:, None],
            n_slots=n_slots,
            localization=LocalizationOptions(length_scale=4.0, n_points=40, variance=0.999),
            minimiser=Minimiser(max_iter=15),
            increment_previous=flag,
        )
        state = method.start(bg, model=model, generator=torch.Generator().manual_seed(0))
        slots, _, _ = method.observe(
            Lorenz96Network(seed=2), truth, list(t[2 : 2 + n_slots]), cycle=0, model=model
        )
        mp = pytest.MonkeyPatch()
        mp.setattr(cycle_module, "en4dvar_analysis", spy)
        try:
            outs[flag] = method.analyse(state, slots, model=model, generator=None)
        finally:
            mp.undo()
    assert seen == [False, True]
    on, off = outs[True], outs[False]
    torch.testing.assert_close(off.state["pair"][0], bg[1])
    torch.testing.assert_close(on.state["pair"][0], bg[1] + (on.analysis - bg[2]))
    torch.testing.assert_close(on.state["pair"][1], on.analysis)
    # the same analysis: one slot rolls nothing forward, and Lorenz-96 reads only the later
    # input (the window's use of the flag: test_en4dvar.py::test_increment_previous_...)
    torch.testing.assert_close(on.analysis, off.analysis)
    assert float((on.analysis - bg[2]).abs().max()) > 0.01  # an increment to carry
    assert method.settings()["increment_previous"] is True
    with pytest.raises(TypeError, match="increment_previous"):
        En4DVarMethod(increment_previous="yes")


def test_keep_members_false_keeps_only_the_last_cycles_members_and_resumes(setting, tmp_path):
    """``CycleConfig(keep_members=False)``: every complete cycle but the last is rewritten
    without its members; an interrupted run still resumes identically, and
    ``open_cycle_states`` refuses the cycles without members."""
    import xarray as xr

    from xfuxi.assimilation.cycle import open_cycle_states
    from xfuxi.files import read_marker

    whole = _run(setting, 6, store=tmp_path / "a")

    with pytest.raises(_Interrupt):
        _run(setting, 6, store=tmp_path / "b", network=_FailingAt4(seed=2), keep_members=False)
    cycles = sorted((tmp_path / "b" / "cycles").glob("*.zarr"))
    assert len(cycles) == 4
    for i, p in enumerate(cycles):
        with xr.open_zarr(p) as ds:
            assert ("state__members" in ds) == (i == 3), i
            assert "state__pair" in ds and "analysis_state" in ds
        marker = read_marker(p)
        assert marker["cycle"] == i  # still a complete cycle
        assert bool(marker.get("members_dropped", False)) == (i < 3)
    resumed = _run(setting, 6, store=tmp_path / "b", keep_members=False)
    a, b = whole.scores.drop_vars("wall_time_s"), resumed.scores.drop_vars("wall_time_s")
    assert a.attrs.pop("config") != b.attrs.pop("config")  # keep_members differs
    xr.testing.assert_identical(a, b)
    np.testing.assert_array_equal(
        open_cycle(tmp_path / "a")["analysis_state"].values,
        open_cycle(tmp_path / "b")["analysis_state"].values,
    )
    with xr.open_zarr(tmp_path / "b" / "cycles" / "000005.zarr") as ds:
        assert "state__members" in ds
    assert open_cycle_states(tmp_path / "a").sizes["member"] == 10
    with pytest.raises(ValueError, match="cycle 0 of .* no longer has its members"):
        open_cycle_states(tmp_path / "b")
    with pytest.raises(ValueError, match="keep_members must be True or False"):
        CycleConfig(n_cycles=2, keep_members="no")


@pytest.mark.parametrize("kind", ["letkf", "hybrid gain"])
def test_update_previous_false_keeps_the_earlier_time_of_every_pair(setting, kind):
    """``LETKFMethod(update_previous=False)``: the analysis at t0 is the same, the earlier
    time of every member's pair and of the mean pair keeps the previous analysis (the
    hybrid gain follows its LETKF's setting)."""
    import torch

    from xfuxi.assimilation.cycle import HybridGainMethod, _stack

    model, truth = setting
    var = _static_3dvar(truth)
    t = truth["time"].values
    bg = _stack(truth, model, t[:3]) + 0.5
    outs, states = {}, {}
    for flag in (True, False):
        letkf = _letkf()
        letkf.update_previous = flag
        method = letkf if kind == "letkf" else HybridGainMethod(letkf=letkf, variational=var)
        state = method.start(bg, model=model, generator=torch.Generator().manual_seed(0))
        slots, _, _ = method.observe(Lorenz96Network(seed=2), truth, [t[2]], cycle=0, model=model)
        outs[flag] = method.analyse(state, slots, model=model, generator=None)
        states[flag] = state
    on, off = outs[True], outs[False]
    state = states[False]
    torch.testing.assert_close(off.analysis, on.analysis)
    torch.testing.assert_close(off.state["members"][:, 1], on.state["members"][:, 1])
    torch.testing.assert_close(off.state["members"][:, 0], state["members"][:, 0])
    assert float((on.state["members"][:, 0] - state["members"][:, 0]).abs().max()) > 0.01
    torch.testing.assert_close(off.state["pair"][0], state["background"][1])
    torch.testing.assert_close(off.state["pair"][1], on.state["pair"][1])
    assert method.settings().get("update_previous", method.settings().get("letkf", {}).get(
        "update_previous")) is False  # fmt: skip
    assert "update_previous" not in _letkf().settings()  # older stores stay resumable
    with pytest.raises(TypeError, match="update_previous"):
        LETKFMethod(update_previous=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_sites": 0}, ValueError, "n_sites must be an integer >= 1; got 0"),
        ({"n_sites": 2.5}, ValueError, "n_sites must be an integer"),
        ({"error_fraction": 0.0}, ValueError, "error_fraction must be a number > 0"),
        ({"error_fraction": float("nan")}, ValueError, "error_fraction must be a number > 0"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0"),
        ({"variables": "temperature"}, TypeError, r"not one string: write \('temperature',\)"),
    ],
)
def test_a_radiosonde_network_with_bad_settings_is_refused_when_made(kwargs, error, match):
    # n_sites=0 failed at the first cycle with a message about `sites` pairs
    with pytest.raises(error, match=match):
        RadiosondeNetwork(**kwargs)


class _Outage(Lorenz96Network):
    """Cycle 2's observations are all far off the background: every one fails the check."""

    def __call__(self, truth, times, *, cycle, model):
        obs = super().__call__(truth, times, cycle=cycle, model=model)
        if cycle == 2:
            obs["value"][:] = obs["value"] + 50.0
        return obs


@pytest.mark.parametrize("kind", ["3D-Var", "LETKF"])
def test_a_cycle_whose_observations_all_fail_the_check_keeps_the_background(
    setting, tmp_path, kind
):
    # it stopped the run for good with 3D-Var / En4DVar (an ObservationError the resumed
    # run met again); the LETKF went on with no observation and said nothing
    model, truth = setting
    if kind == "3D-Var":
        method = _static_3dvar(truth)
        method.quality_control = QualityControl(qc_threshold=5.0)
    else:
        method = LETKFMethod(
            options=LETKFOptions(n_members=10, inflation=1.05, qc_threshold=5.0),
            localization=LocalizationOptions(length_scale=4.0, n_points=40),
            initial=INIT,
        )
    with pytest.warns(UserWarning, match="cycle 2 .*failed the background check.*background"):
        run = _run(setting, 4, store=tmp_path / "s", method=method, network=_Outage(seed=2))
    s = run.scores
    assert s["no_observations"].values.tolist() == [False, False, True, False]
    np.testing.assert_array_equal(
        s["analysis_error"].isel(time=2), s["background_error"].isel(time=2)
    )
    assert int(s["n_obs"].isel(time=2)) == 0 and int(s["n_obs"].isel(time=3)) > 0


class _BlowsUp(torch.nn.Module):
    """A Lorenz-96 core whose outputs are NaN from its ``k``-th call on."""

    def __init__(self, core, k):
        super().__init__()
        self.core, self.k, self.calls = core, k, 0

    def forward(self, x):
        self.calls += 1
        y = self.core(x)
        return y * np.nan if self.calls >= self.k else y


@pytest.mark.parametrize("kind", ["LETKF", "cycled En4DVar"])
def test_a_model_that_blows_up_stops_the_cycle_as_diverged(setting, tmp_path, kind):
    # the LETKF raised a bare ValueError on NaN members, cycled En4DVar a LinAlgError
    model, truth = setting
    counting = lorenz96_model()
    counting.net = _BlowsUp(counting.net, 10**9)

    def method():
        if kind == "LETKF":
            return _letkf()
        return En4DVarMethod(
            background_error=BackgroundError(amplitude=1.0, n_members=10, wavelength=1,
                                             octaves=1, perturbation_std=(1.0,)),
            localization=LocalizationOptions(length_scale=4.0, n_points=40),
            members="cycled", letkf=LETKFOptions(n_members=10, inflation=1.05,
                                                 qc_threshold=None), initial=INIT,
        )  # fmt: skip

    _run((counting, truth), 2, method=method())
    blowing = lorenz96_model()
    blowing.net = _BlowsUp(blowing.net, counting.net.calls)
    with pytest.raises(CycleDivergedError, match=r"cycle \d .*diverged.*NaN or infinite"):
        _run((blowing, truth), 5, store=tmp_path / "s", method=method())
    assert 2 <= open_cycle(tmp_path / "s").sizes["time"] < 5


def test_a_resumed_run_with_another_model_set_up_is_refused(setting, tmp_path):
    # the fingerprint held the network's weights only: other normalization statistics or
    # another Lorenz-96 forcing under the same name resumed and mixed two models
    model, truth = setting
    _run(setting, 2, store=tmp_path / "s")
    with pytest.raises(ValueError, match=r"fingerprints\.model_setup"):
        _run((lorenz96_model(forcing=9.0), truth), 3, store=tmp_path / "s")
    assert _run((lorenz96_model(), truth), 3, store=tmp_path / "s")  # the same set-up


def test_keep_members_false_store_asked_for_fewer_cycles(setting, tmp_path):
    whole = _run(setting, 4, store=tmp_path / "s", keep_members=False)
    first = _run(setting, 2, store=tmp_path / "s", keep_members=False)  # was a KeyError
    xr.testing.assert_equal(first.scores.drop_vars("wall_time_s"),
                            whole.scores.isel(time=[0, 1]).drop_vars("wall_time_s"))  # fmt: skip


def test_a_run_killed_while_dropping_members_resumes(setting, tmp_path):
    """A run killed between the two renames of a members-dropping rewrite left a cycle
    aside (a store that no longer resumed) and its temporaries; a run killed after writing
    a cycle left the previous cycle's members. The resumed run puts the cycle back,
    removes the temporaries and drops the members, with identical results."""
    import os
    import socket

    from xfuxi.files import read_marker

    whole = _run(setting, 5, store=tmp_path / "a")
    _run(setting, 3, store=tmp_path / "b")  # every cycle with its members
    cycles = tmp_path / "b" / "cycles"
    dead = 2**22 + 12345  # no such process
    while True:
        try:
            os.kill(dead, 0)
            dead += 1
        except ProcessLookupError:
            break
        except PermissionError:
            dead += 1
    aside = cycles / f".000001.zarr.{dead}@{socket.gethostname()}.abcd1234.old"
    aside.mkdir()
    os.replace(cycles / "000001.zarr", aside / "previous")
    # a reader meanwhile (a run rewriting the cycle, or killed there) reads the cycle from
    # its set-aside copy; it could not open the store ("not consecutive from 0")
    from xfuxi.assimilation.cycle import open_cycle, open_cycle_states

    read = open_cycle(tmp_path / "b")
    assert read.sizes["time"] == 3
    xr.testing.assert_equal(
        read["analysis_error"], whole.scores["analysis_error"].isel(time=[0, 1, 2])
    )
    states = open_cycle_states(tmp_path / "b")
    assert states.sizes["time"] == 3 and {"latitude", "longitude"} <= set(states.coords)
    assert (cycles / "000001.zarr").exists() is False  # reading changed nothing
    temp = cycles / f".000003.zarr.{dead}@{socket.gethostname()}.wxyz5678.tmp"
    temp.mkdir()
    (temp / "half-written").write_text("x")
    resumed = _run(setting, 5, store=tmp_path / "b", keep_members=False)
    assert sorted(p.name for p in cycles.iterdir()) == [f"{c:06d}.zarr" for c in range(5)]
    for c in range(4):
        with xr.open_zarr(cycles / f"{c:06d}.zarr") as ds:
            assert "state__members" not in ds, c
        assert read_marker(cycles / f"{c:06d}.zarr")["cycle"] == c
    a, b = whole.scores.drop_vars("wall_time_s"), resumed.scores.drop_vars("wall_time_s")
    a.attrs.pop("config"), b.attrs.pop("config")
    xr.testing.assert_identical(a, b)


def test_method_options_checked_when_made():
    from xfuxi.assimilation.cycle import HybridGainMethod

    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="n_slots must be an integer >= 1"):
            LETKFMethod(n_slots=bad)
    with pytest.raises(ValueError, match="n_slots must be an integer >= 1"):
        En4DVarMethod(n_slots=1.5)
    with pytest.raises(ValueError, match="needs members='perlin' or a static B"):
        HybridGainMethod(variational=En4DVarMethod(members="cycled", n_slots=1))
    with pytest.raises(ValueError, match="days must be a finite number"):
        CycleConfig(days=float("inf"))


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--method", "letkf", "--gain-weight", "0.3"], "--gain-weight needs --method hybrid-gain"),
        (["--method", "en4dvar", "--static-localization", "500"], "--static-localization needs"),
        (["--method", "en4dvar", "--hybrid-weight", "0.7"], "--hybrid-weight .* needs --static-b"),
        (["--method", "en4dvar", "--rtps", "0.9"], "--rtps: the members' inflation is not used"),
    ],
)
def test_cli_cycle_refuses_options_the_method_does_not_read(tmp_path, capsys, flags, match):
    from xfuxi.cli import main

    rc = main(["cycle", str(tmp_path / "none.zarr"), "--store", str(tmp_path / "s"), *flags])
    assert rc == 2
    assert re_search(match, capsys.readouterr().err)
    assert not (tmp_path / "s").exists()


def re_search(pattern, text):
    import re

    return re.search(pattern, text) is not None


def test_the_model_setup_fingerprint_does_not_depend_on_where_the_model_was_read(tmp_path):
    import pandas as pd

    from tests import tiny
    from xfuxi.assimilation.cycle import _fingerprints
    from xfuxi.models.checkpoint import save_model
    from xfuxi.models.registry import load_model

    model, truth = tiny.fuxi_model(), tiny.dataset(4)
    save_model(model, tmp_path / "a")
    save_model(model, tmp_path / "b")
    t0 = pd.Timestamp(truth["time"].values[0])
    a = _fingerprints(load_model(tmp_path / "a"), truth, t0)
    b = _fingerprints(load_model(tmp_path / "b"), truth, t0)
    assert a == b


def test_open_cycle_states_of_one_cycle_knows_the_models_step(tmp_path):
    """A one-cycle store of a 12-hour model gave the pair offsets [-6 h, 0] (guessed): each
    cycle records its model's step now."""
    import pandas as pd

    from tests import tiny
    from xfuxi.assimilation.config import LocalizationOptions
    from xfuxi.assimilation.cycle import RadiosondeNetwork, open_cycle_states
    from xfuxi.assimilation.letkf import LETKFOptions
    from xfuxi.models.base import ForecastModel

    model = ForecastModel(tiny.TinyNet(3), channels=tiny.CHANNELS, latitude=tiny.LAT,
                          longitude=tiny.LON, stats=tiny.stats(), name="tiny12",
                          timestep_hours=12.0)  # fmt: skip
    truth = tiny.dataset(10, seed=3)
    truth = truth.assign_coords(time=pd.date_range("2001-03-01", periods=10, freq="12h"))
    method = LETKFMethod(options=LETKFOptions(n_members=6, qc_threshold=None),
                         localization=LocalizationOptions(length_scale=3000.0))  # fmt: skip
    cycle(truth, RadiosondeNetwork(n_sites=20, seed=1), method=method, model=model,
          config=CycleConfig(n_cycles=1, lead_steps=2), store=tmp_path / "s",
          progress=False)  # fmt: skip
    pair = open_cycle_states(tmp_path / "s")["pair"].values
    np.testing.assert_array_equal(pair, np.array([-12, 0], dtype="m8[h]").astype("m8[ns]"))


def test_a_forecast_starts_from_a_cycles_analysed_pair(tmp_path):
    """The cycled states did not go into forecast() (channels, no grid coordinates): the
    pair of a cycle is a Dataset in the analysis layout now."""
    from tests import tiny
    from xfuxi.assimilation.config import LocalizationOptions
    from xfuxi.assimilation.cycle import (
        RadiosondeNetwork,
        cycle_initial_conditions,
        open_cycle_states,
    )
    from xfuxi.assimilation.letkf import LETKFOptions
    from xfuxi.forecasting.deterministic import forecast

    model, truth = tiny.model(), tiny.dataset(12, seed=3)
    method = LETKFMethod(options=LETKFOptions(n_members=6, qc_threshold=None),
                         localization=LocalizationOptions(length_scale=3000.0))  # fmt: skip
    cycle(truth, RadiosondeNetwork(n_sites=20, seed=1), method=method, model=model,
          config=CycleConfig(n_cycles=2, lead_steps=2), store=tmp_path / "s",
          progress=False)  # fmt: skip
    states = open_cycle_states(tmp_path / "s")
    ic = cycle_initial_conditions(tmp_path / "s")
    t = states["time"].values[-1]
    assert list(ic["time"].values) == [t + states["pair"].values[0], t]
    mean = states.isel(time=-1).mean("member")
    np.testing.assert_allclose(
        ic["temperature"].sel(level=500.0).isel(time=1).values,
        mean.sel(channel="temperature@500").isel(pair=1).values, rtol=1e-6,
    )  # fmt: skip
    fc = forecast(ic, model=model, steps=2, progress=False)
    assert fc.sizes["prediction_timedelta"] == 2 and fc["time"].values[0] == t
    one = cycle_initial_conditions(tmp_path / "s", states["time"].values[0], member=2)
    np.testing.assert_allclose(
        one["temperature"].sel(level=500.0).isel(time=1).values,
        states.isel(time=0, member=2).sel(channel="temperature@500").isel(pair=1).values,
    )
    with pytest.raises(ValueError, match="no complete cycle at"):
        cycle_initial_conditions(tmp_path / "s", "1990-01-01")
    with pytest.raises(ValueError, match="member must be one of 0 .. 5"):
        cycle_initial_conditions(tmp_path / "s", member=6)
    # a run that kept only the last cycle's members: the earlier analyses still start one
    cycle(truth, RadiosondeNetwork(n_sites=20, seed=1), method=method, model=model,
          config=CycleConfig(n_cycles=2, lead_steps=2, keep_members=False),
          store=tmp_path / "k", progress=False)  # fmt: skip
    first = states["time"].values[0]
    xr.testing.assert_allclose(cycle_initial_conditions(tmp_path / "k", first),
                               cycle_initial_conditions(tmp_path / "s", first).assign_attrs(
                                   store=str(tmp_path / "k")))  # fmt: skip
    with pytest.raises(ValueError, match="no longer has its members"):
        cycle_initial_conditions(tmp_path / "k", first, member=0)


def test_scores_name_the_units_of_each_channel(setting, tmp_path):
    """The scores mix channels of several variables along ``channel``: each carries its
    variable's units (they carried none)."""
    import matplotlib

    from tests import tiny
    from xfuxi.assimilation.config import LocalizationOptions
    from xfuxi.assimilation.cycle import RadiosondeNetwork
    from xfuxi.assimilation.letkf import LETKFOptions

    matplotlib.use("Agg")
    method = LETKFMethod(options=LETKFOptions(n_members=6, qc_threshold=None),
                         localization=LocalizationOptions(length_scale=3000.0))  # fmt: skip
    run = cycle(tiny.dataset(12, seed=3), RadiosondeNetwork(n_sites=20, seed=1), method=method,
                model=tiny.model(), config=CycleConfig(n_cycles=1, lead_steps=2),
                store=tmp_path / "s", progress=False)  # fmt: skip
    want = {"temperature@500": "K", "temperature@850": "K", "passive_tracer": "1"}
    for scores in (run.scores, open_cycle(tmp_path / "s")):
        got = dict(zip(scores["channel"].values, scores["channel_units"].values, strict=True))
        assert got == want
    assert run.plot("temperature@850").get_ylabel().endswith("(K)")
    # a state xfuxi has no units for (Lorenz-96): empty, and no units in the label
    l96 = _run(setting, 1).scores
    assert list(l96["channel_units"].values) == [""]
    assert l96.fuxi.plot_cycle().get_ylabel() == "x: RMSE / spread"


# --- audit 46: fingerprints, truth and store checks, readers' arguments -----------------


def _forget_new_fingerprints(store, *keys):
    """Make ``store`` look written by a release that did not record ``keys``."""
    import json

    path = store / "run.json"
    settings = json.loads(path.read_text())
    for key in keys:
        settings["fingerprints"].pop(key)
    path.write_text(json.dumps(settings))


def test_resume_refuses_other_samples_of_the_same_shape_and_sum(setting, tmp_path):
    """Additive-inflation and static-B samples rolled along the grid have the shape and sum
    of the stored ones: a resumed run with them is refused; a store that does not record
    their digest (an earlier release) still resumes."""
    from xfuxi.assimilation.cycle import static_var

    _, truth = setting
    x = torch.as_tensor(truth["x"].values)
    samples = (x[1:21] - x[:20])[:, None]
    rolled = torch.roll(samples, 7, dims=-1)
    assert float(rolled.sum()) == float(samples.sum())

    def additive(s):
        opts = LETKFOptions(n_members=10, inflation=1.05, qc_threshold=None)
        loc = LocalizationOptions(length_scale=4.0, n_points=40)
        return LETKFMethod(options=opts, localization=loc, initial=INIT, additive=s.clone(),
                           additive_scale=0.5)  # fmt: skip

    def static(s):
        loc = LocalizationOptions(length_scale=4.0, n_points=40, variance=0.999)
        return static_var(s.clone(), localization=loc)

    for name, make in (("additive", additive), ("static", static)):
        store = tmp_path / name
        _run(setting, 2, store=store, method=make(samples))
        with pytest.raises(ValueError, match=f"fingerprints.method.{name}"):
            _run(setting, 3, store=store, method=make(rolled))
        _forget_new_fingerprints(store, f"method.{name}")
        assert _run(setting, 3, store=store, method=make(samples)).scores.sizes["time"] == 3


def test_resume_refuses_the_model_in_another_precision(setting, tmp_path):
    import copy

    model, _ = setting
    _run(setting, 2, store=tmp_path / "s")
    double = copy.deepcopy(model).double()
    with pytest.raises(ValueError, match="model_dtype"):
        cycle(setting[1], Lorenz96Network(seed=2), method=_letkf(), model=double,
              config=CycleConfig(n_cycles=3, lead_steps=2, initial_error=1.0),
              store=tmp_path / "s", progress=False)  # fmt: skip
    _forget_new_fingerprints(tmp_path / "s", "model_dtype")  # an earlier release's store
    assert _run(setting, 3, store=tmp_path / "s").scores.sizes["time"] == 3


def test_a_run_failing_before_its_first_cycle_leaves_no_store_in_the_way(setting, tmp_path):
    """A truth without the model's variable or no network is refused before the store is
    made; a store holding no complete cycle (left by an earlier release) takes the settings
    of the next run."""
    import json

    model, truth = setting
    store = tmp_path / "s"
    with pytest.raises(ValueError, match="'x'"):
        _run((model, truth.rename(x="y")), 2, store=store)
    assert not store.exists()
    with pytest.raises(TypeError, match="network must be callable"):
        config = CycleConfig(n_cycles=1, lead_steps=2)
        cycle(truth, None, method=_letkf(), model=model, config=config, store=store)
    assert not store.exists()
    _run(setting, 1, store=store)
    import shutil

    shutil.rmtree(store / "cycles")  # what a run that failed in its first cycle left
    run = _run(setting, 2, store=store, method=_letkf(1.1))
    assert run.scores.sizes["time"] == 2
    assert json.loads((store / "run.json").read_text())["method"]["options"]["inflation"] == 1.1
    shutil.rmtree(store / "cycles")
    (store / "notes.txt").write_text("mine")  # not xfuxi's: the store is not replaced then
    with pytest.raises(ValueError, match="different settings"):
        _run(setting, 3, store=store)
    assert (store / "notes.txt").read_text() == "mine"


def test_a_store_without_its_run_json_is_named(setting, tmp_path):
    _run(setting, 1, store=tmp_path / "s")
    (tmp_path / "s" / "run.json").unlink()
    with pytest.raises(ValueError, match="run.json"):
        _run(setting, 2, store=tmp_path / "s")


def test_missing_values_in_the_truth_are_named_before_the_run(setting, tmp_path):
    import pandas as pd

    model, truth = setting
    bad = truth.copy(deep=True)
    bad["x"][3, 0, 5] = np.nan
    when = pd.Timestamp(truth.time.values[3])
    with pytest.raises(ValueError, match=f"truth.*missing.*'x'.*{when}"):
        _run((model, bad), 4, store=tmp_path / "s")
    assert not (tmp_path / "s").exists()
    # a time the run does not need may hold NaN
    late = truth.copy(deep=True)
    late["x"][-1, 0, 5] = np.nan
    assert _run((model, late), 2).scores.sizes["time"] == 2


def test_readers_name_bad_arguments(setting, tmp_path):
    from xfuxi.assimilation.cycle import cycle_initial_conditions, open_cycle_states

    _run(setting, 2, store=tmp_path / "s")
    with pytest.raises(TypeError, match="skip_days must be a number"):
        open_cycle_states(tmp_path / "s", skip_days="1")
    with pytest.raises(ValueError, match="time must be a date"):
        cycle_initial_conditions(tmp_path / "s", time="banana")
    # a number was read as 1970, and a time zone kept (then no cycle matched)
    with pytest.raises(ValueError, match="got the number 5, which would be read as nano"):
        cycle_initial_conditions(tmp_path / "s", time=5)
    with pytest.raises(ValueError, match="time carries a time zone"):
        cycle_initial_conditions(tmp_path / "s", time="2000-01-02T06+05:00")


def test_a_lorenz96_network_with_a_bad_error_is_refused():
    for bad in (-1.0, 0.0, float("nan"), "1"):
        with pytest.raises((ValueError, TypeError), match="error"):
            Lorenz96Network(error=bad)
    assert Lorenz96Network(error=0.5).settings()["error"] == 0.5


def test_plot_cycle_refuses_channel_and_other_channels(setting):
    import matplotlib

    matplotlib.use("Agg")
    from xfuxi.plot import plot_cycle

    s = _run(setting, 1).scores
    with pytest.raises(ValueError, match="channel.*channels"):
        plot_cycle(s, channel="x", channels=["y"])
    assert plot_cycle(s, channel="x", channels=["x"]) is not None


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--method", "letkf", "--da-model", "my-da"], "--da-model"),
        (["--method", "letkf", "--da-precision", "bfloat16"], "--da-precision"),
        (["--method", "letkf", "--satellites", "0,120"], "--satellites"),
        (["--method", "en4dvar", "--screen-threshold", "5"], "--screen-threshold"),
        (["--method", "letkf", "--radiance-error", "2"], "--radiance-error"),
        (["--method", "letkf", "--no-clouds"], "--clouds"),
        (["--method", "cycled-en4dvar", "--drift", "1"], "--drift"),
        (["--method", "en4dvar", "--bias-truncation", "5"], "--bias-truncation needs --bias-rate"),
        (["--method", "en4dvar", "--bias-spinup", "2"], "--bias-spinup needs --bias-rate"),
        (["--method", "fuxi-da", "--sites", "50"], "--sites"),
        (["--method", "fuxi-da", "--members", "20"], "--n-members"),
        (["--method", "fuxi-da", "--localization", "500"], "--localization"),
        (["--method", "fuxi-da", "--vertical-localization", "1"], "--vertical-localization"),
        (["--method", "en4dvar", "--qc-threshold", "3"], "--qc-threshold"),
        (["--method", "en4dvar-radiances", "--member-chunk", "3"], "--member-chunk"),
    ],
)
def test_cli_cycle_refuses_every_flag_the_method_does_not_read(tmp_path, capsys, flags, match):
    from xfuxi.cli import main

    rc = main(["cycle", str(tmp_path / "none.zarr"), "--store", str(tmp_path / "s"), *flags])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert match in err
    if "needs" not in match:
        assert "given away from its default" in err and "not read by" in err
    assert not (tmp_path / "s").exists()


def test_sonde_network_draws_do_not_depend_on_the_truths_variable_order(tmp_path):
    """RadiosondeNetwork's default variables followed the truth's order, in which the noise
    is drawn: a resume from a copy of the truth with its variables reordered (accepted, the
    same truth) drew other observations from the resumed cycle on."""
    from tests import tiny_da

    model = tiny_da.forecast_model()
    truth = tiny_da.truth(n_time=8)
    swapped = truth[list(reversed(list(truth.data_vars)))]
    assert list(swapped.data_vars) != list(truth.data_vars)
    method = LETKFMethod(
        options=LETKFOptions(n_members=4, inflation=1.05, qc_threshold=None),
        localization=LocalizationOptions(length_scale=3000.0),
        initial=BackgroundError(amplitude=0.5, wavelength=2, octaves=1),
    )
    network = RadiosondeNetwork(n_sites=10, seed=4)
    t0 = truth.time.values[2:4]
    a = network(truth, t0, cycle=1, model=model)
    b = network(swapped, t0, cycle=1, model=model)
    xr.testing.assert_identical(a, b)

    def run(tr, store):
        return cycle(tr, network, method=method, model=model,
                     config=CycleConfig(n_cycles=3, lead_steps=2, initial_error=1.0),
                     store=store, progress=False)  # fmt: skip

    whole = run(truth, None)
    run(truth.isel(time=slice(0, 6)), tmp_path / "s")  # the first cycles
    resumed = run(swapped, tmp_path / "s")  # resumed from the reordered copy
    np.testing.assert_array_equal(resumed.scores["omb_rms"].values, whole.scores["omb_rms"].values)


def test_cycle_outputs_carry_the_grids_units(tmp_path):
    """The stored states are on the model's bare grid: open_cycle's and
    cycle_initial_conditions' latitude and longitude had no units."""
    from tests import tiny
    from xfuxi.assimilation.cycle import cycle_initial_conditions, open_cycle

    method = LETKFMethod(options=LETKFOptions(n_members=4, qc_threshold=None),
                         localization=LocalizationOptions(length_scale=3000.0))  # fmt: skip
    cycle(tiny.dataset(8, seed=3), RadiosondeNetwork(n_sites=10, seed=1), method=method,
          model=tiny.model(), config=CycleConfig(n_cycles=1, lead_steps=2),
          store=tmp_path / "s", progress=False)  # fmt: skip
    for ds in (open_cycle(tmp_path / "s"), cycle_initial_conditions(tmp_path / "s")):
        assert ds["latitude"].attrs["units"] == "degrees_north"
        assert ds["longitude"].attrs["units"] == "degrees_east"


def test_days_that_are_not_a_whole_number_of_cycles_are_refused(setting):
    """days=0.3 (1.2 cycles of 6 h) ran one cycle silently."""
    model, truth = setting

    def run(days):
        return cycle(truth, Lorenz96Network(seed=2), method=_letkf(), model=model,
                     config=CycleConfig(days=days, lead_steps=2, initial_error=1.0),
                     progress=False)  # fmt: skip

    with pytest.raises(ValueError, match=r"days=0\.3 is 1\.2 cycles of 6 h.*days=0\.25 for 1\)"):
        run(0.3)
    with pytest.raises(ValueError, match=r"days=0\.1 is 0\.4 cycles of 6 h.*days=0\.25 for 1\)"):
        run(0.1)  # (it suggested days=0 for 0, refused in turn)
    assert run(0.5).scores.sizes["time"] == 2  # two cycles of 6 hours
