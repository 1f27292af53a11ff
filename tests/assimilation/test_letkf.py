"""LETKF (issue 22, item 2): exact Kalman update, both input times, inflation, Lorenz-96."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xfuxi.assimilation.config import LocalizationOptions
from xfuxi.assimilation.cost import ObsSlot
from xfuxi.assimilation.letkf import (
    LETKFOptions,
    innovation_inflation,
    letkf_analysis,
    observation_localization,
)
from xfuxi.experiments.lorenz96 import Lorenz96LETKFConfig, lorenz96_letkf
from xfuxi.models.lorenz96 import lorenz96_model
from xfuxi.observations.operator import build_operator

K = 8
N = 20


def _setup(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    cur = 8 + torch.randn(N, 1, 1, 1, K, generator=g, dtype=torch.float64)
    prev = 8 + torch.randn(N, 1, 1, 1, K, generator=g, dtype=torch.float64)
    pairs = torch.cat([prev, cur], 1)
    lon = np.arange(K) * 360.0 / K
    op, _ = build_operator(
        [("x", None)],
        [0.0],
        lon,
        obs_variable=["x"] * 3,
        obs_latitude=np.zeros(3),
        obs_longitude=lon[[1, 4, 6]],
        obs_level=np.full(3, np.nan),
    )
    y = torch.tensor([7.0, 9.0, 8.5], dtype=torch.float64)
    e = torch.tensor([0.5, 1.0, 0.7], dtype=torch.float64)
    return pairs, op, y, e


def _kalman(x: torch.Tensor, h: torch.Tensor, y, e, rho: float = 1.0):
    xm = x.mean(0)
    a = (x - xm).T / math.sqrt(x.shape[0] - 1)
    pb = rho * a @ a.T
    gain = pb @ h.T @ torch.linalg.inv(h @ pb @ h.T + torch.diag(e**2))
    return xm + gain @ (y - h @ xm), (torch.eye(x.shape[1], dtype=x.dtype) - gain @ h) @ pb


@pytest.mark.parametrize("rho", [1.0, 1.3])
def test_without_localization_the_update_is_the_kalman_filter(rho):
    pairs, op, y, e = _setup()
    res = letkf_analysis(
        pairs,
        [ObsSlot(0, op, y, e)],
        localization=LocalizationOptions(length_scale=None),
        options=LETKFOptions(n_members=N, inflation=rho),
    )
    xa, pa = _kalman(pairs[:, 1].reshape(N, K), torch.as_tensor(op.matrix()), y, e, rho)
    got = res.members[:, 1].reshape(N, K)
    anom = (got - got.mean(0)).T / math.sqrt(N - 1)
    torch.testing.assert_close(got.mean(0), xa)
    torch.testing.assert_close(anom @ anom.T, pa)
    assert res.inflation == rho


def test_the_weights_are_applied_to_both_input_times():
    pairs, op, y, e = _setup()
    res = letkf_analysis(
        pairs,
        [ObsSlot(0, op, y, e)],
        localization=LocalizationOptions(length_scale=2.0, n_points=K),
    )
    # the earlier time moves by the same transform: its analysed anomalies are a
    # combination of its background anomalies with the same weights, per point; a pair
    # whose two times are equal therefore stays equal
    same = torch.cat([pairs[:, 1:], pairs[:, 1:]], 1)
    res2 = letkf_analysis(
        same, [ObsSlot(0, op, y, e)], localization=LocalizationOptions(length_scale=2.0, n_points=K)
    )
    torch.testing.assert_close(res2.members[:, 0], res2.members[:, 1])
    assert not torch.allclose(res.members[:, 0], pairs[:, 0])
    # and the inputs are not mutated
    assert torch.equal(pairs, _setup()[0])


def test_localization_leaves_far_points_alone():
    pairs, op, y, e = _setup()
    one = op.subset([0])  # at point 1
    res = letkf_analysis(
        pairs,
        [ObsSlot(0, one, y[:1], e[:1])],
        localization=LocalizationOptions(length_scale=1.0, n_points=K),
    )
    # points 4..6 are beyond the Gaspari-Cohn support (2 points) of an observation at 1
    torch.testing.assert_close(res.members[..., 4:7], pairs[..., 4:7])
    assert not torch.allclose(res.members[..., 1], pairs[..., 1])


def test_rtps_relaxes_the_spread_towards_the_prior():
    pairs, op, y, e = _setup()
    kw = dict(localization=LocalizationOptions(length_scale=None))
    plain = letkf_analysis(pairs, [ObsSlot(0, op, y, e)], **kw)
    full = letkf_analysis(pairs, [ObsSlot(0, op, y, e)], options=LETKFOptions(rtps=1.0), **kw)
    half = letkf_analysis(pairs, [ObsSlot(0, op, y, e)], options=LETKFOptions(rtps=0.5), **kw)
    torch.testing.assert_close(full.analysis_spread, full.background_spread)
    torch.testing.assert_close(
        half.analysis_spread, 0.5 * (plain.analysis_spread + plain.background_spread)
    )
    torch.testing.assert_close(half.mean, plain.mean)


def test_innovation_inflation_recovers_a_known_factor():
    g = torch.Generator().manual_seed(3)
    n, m, rho = 30, 20000, 2.0
    yb = torch.randn(n, m, generator=g, dtype=torch.float64)
    sb2 = (yb**2).sum(0) / (n - 1)
    d = torch.randn(m, generator=g, dtype=torch.float64) * torch.sqrt(1.0 + rho * sb2)
    estimate = innovation_inflation(d, yb, torch.ones(m, dtype=torch.float64), ensemble_mean=False)
    assert estimate == pytest.approx(rho, rel=0.05)


@pytest.mark.parametrize("n", [5, 10])
def test_innovation_inflation_of_a_calibrated_ensemble_is_one(n):
    """The innovation of the members' mean has (1 + 1/N) times their variance: without that
    factor a well-calibrated ensemble read ρ ≈ (N + 1)/N (1.2 for 5 members)."""
    g = torch.Generator().manual_seed(11)
    m, sb = 100_000, 0.7  # observation error 1
    truth_and_members = sb * torch.randn(n + 1, m, generator=g, dtype=torch.float64)
    members, truth = truth_and_members[:n], truth_and_members[n]
    y = truth + torch.randn(m, generator=g, dtype=torch.float64)
    mean = members.mean(0)
    estimate = innovation_inflation(y - mean, members - mean, torch.ones(m, dtype=torch.float64))
    assert estimate == pytest.approx(1.0, abs=0.05)
    uncorrected = innovation_inflation(
        y - mean, members - mean, torch.ones(m, dtype=torch.float64), ensemble_mean=False
    )
    assert uncorrected == pytest.approx((n + 1) / n, abs=0.05)


def test_a_collapsed_ensemble_gives_no_inflation_estimate():
    """Rounding noise of members that are all one state is no spread: no estimate (it gave
    about ±1e29, which could have sent the inflation to its bound)."""
    m = 50
    yb = torch.full((10, m), 1e-200, dtype=torch.float64)
    yb[0] += 1e-13  # a spread of 3e-14 observation errors
    d = torch.ones(m, dtype=torch.float64) * 2.0
    assert math.isnan(innovation_inflation(d, yb, torch.ones(m, dtype=torch.float64)))
    yb[0] += 1e-3  # a small but real spread still gives one
    assert math.isfinite(innovation_inflation(d, yb, torch.ones(m, dtype=torch.float64)))


def test_adaptive_inflation_moves_towards_the_estimate_within_bounds():
    pairs, op, y, e = _setup()
    opts = LETKFOptions(adaptive_inflation=True, adaptive_gain=0.5, inflation_max=1.4)
    res = letkf_analysis(
        pairs, [ObsSlot(0, op, y, e)], localization=LocalizationOptions(length_scale=None),
        options=opts,
    )  # fmt: skip
    est = res.inflation_estimate
    assert math.isfinite(est)
    assert res.inflation == pytest.approx(min(max(1.0 + 0.5 * (est - 1.0), 1.0), 1.4))


def test_later_slots_use_the_members_run_forward():
    pairs, op, y, e = _setup()
    model = lorenz96_model(n_variables=K)
    kw = dict(localization=LocalizationOptions(length_scale=None))
    with pytest.raises(ValueError, match="need the model"):
        letkf_analysis(pairs, [ObsSlot(1, op, y, e)], **kw)
    res = letkf_analysis(pairs, [ObsSlot(1, op, y, e)], model=model, **kw)
    ahead = model(pairs)
    torch.testing.assert_close(res.omb[0], y - op(ahead).mean(0))


def test_bad_input_is_named():
    pairs, op, y, e = _setup()
    with pytest.raises(ValueError, match="members must be"):
        letkf_analysis(pairs[:, 0], [], localization=LocalizationOptions())
    bad = pairs.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        letkf_analysis(bad, [ObsSlot(0, op, y, e)], localization=LocalizationOptions())
    with pytest.raises(ValueError, match="n_points"):
        observation_localization(
            np.zeros((1, 1), dtype=int), np.ones((1, 1)), state_shape=(1, 1, 8),
            localization=LocalizationOptions(length_scale=1.0, n_points=9),
        )  # fmt: skip
    # a NaN value passed the background check and made the analysis NaN far beyond its
    # localization; a zero error broke the eigensolver; a negative one read as positive
    for value, error, match in (
        (torch.tensor([7.0, float("nan"), 8.5], dtype=torch.float64), e, "1 value.* NaN"),
        (y, torch.tensor([0.5, 0.0, 0.7], dtype=torch.float64), "finite and > 0"),
        (y, torch.tensor([0.5, -1.0, 0.7], dtype=torch.float64), "finite and > 0"),
        (y, e[:2], "of one length"),
    ):
        with pytest.raises(ValueError, match=match):
            ObsSlot(0, op, value, error)
    # a localization in km needs the grid (an IndexError before)
    with pytest.raises(ValueError, match="1500 km needs the grid"):
        letkf_analysis(pairs, [ObsSlot(0, op, y, e)],
                       localization=LocalizationOptions(length_scale=1500.0))  # fmt: skip
    # the inflation given to the call (the cycle methods pass theirs) is checked as the
    # options' is: NaN members, a collapse to the mean or a raw eigh error before
    for rho in (float("nan"), 0.0, -1.0, float("inf")):
        for slots in ([ObsSlot(0, op, y, e)], []):
            with pytest.raises(ValueError, match="inflation must be a finite number > 0"):
                letkf_analysis(pairs, slots, localization=LocalizationOptions(length_scale=None),
                               inflation=rho)  # fmt: skip
    # the Lorenz-96 experiment's settings: a zero error crashed, rtps 2 was accepted
    for bad_setting, match in ((dict(obs_error=0.0), "obs_error"), (dict(rtps=2.0), "rtps"),
                               (dict(inflation=0.0), "inflation")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            Lorenz96LETKFConfig(**bad_setting)


def test_no_observation_returns_the_inflated_background():
    pairs, _, _, _ = _setup()
    res = letkf_analysis(
        pairs, [], localization=LocalizationOptions(), options=LETKFOptions(inflation=1.21)
    )
    torch.testing.assert_close(res.mean, pairs[:, 1].mean(0))
    torch.testing.assert_close(res.analysis_spread, 1.1 * res.background_spread)


def test_lorenz96_short_run_beats_the_free_run_and_the_observations():
    cfg = Lorenz96LETKFConfig(n_cycles=120, burn_in=40, inflation=1.03, rtps=0.0)
    out = lorenz96_letkf(config=cfg, progress=False)
    a = out.attrs["mean_analysis_rmse"]
    # free run: errors saturate near √2 × the climatological std (≈ 5); observations: 1
    assert a < 0.35, a
    assert a < 0.1 * out.attrs["climatological_std"]
    assert out.attrs["mean_background_rmse"] > a


def test_vertical_localization_analyses_each_channel_on_its_own():
    g = torch.Generator().manual_seed(5)
    channels = [("t", 250.0), ("t", 850.0)]
    lat, lon = np.array([-30.0, 30.0]), np.arange(4) * 90.0
    x = 250 + torch.randn(N, 1, 2, 2, 4, generator=g, dtype=torch.float64)
    pairs = torch.cat([x, x], 1)
    op, _ = build_operator(
        channels, lat, lon, obs_variable=["t"], obs_latitude=[-30.0], obs_longitude=[0.0],
        obs_level=[850.0],
    )  # fmt: skip
    y = torch.tensor([252.0], dtype=torch.float64)
    e = torch.ones(1, dtype=torch.float64)
    # ln(850/250) ≈ 1.2: beyond twice a half-width of 0.5, the 250 hPa channel is untouched
    loc = LocalizationOptions(length_scale=5000.0, vertical_length_scale=0.5)
    res = letkf_analysis(
        pairs, [ObsSlot(0, op, y, e)], localization=loc, latitude=lat, longitude=lon,
        channels=channels, options=LETKFOptions(point_chunk=3),
    )  # fmt: skip
    torch.testing.assert_close(res.members[:, :, 0], pairs[:, :, 0])
    assert not torch.allclose(res.members[:, :, 1], pairs[:, :, 1])
    # without vertical localization the 250 hPa channel moves too
    res2 = letkf_analysis(
        pairs, [ObsSlot(0, op, y, e)], localization=LocalizationOptions(length_scale=5000.0),
        latitude=lat, longitude=lon, channels=channels,
    )  # fmt: skip
    assert not torch.allclose(res2.members[:, :, 0], pairs[:, :, 0])


@pytest.mark.parametrize("cross_variable", [1.0, 0.5])
def test_channels_with_the_same_weights_share_one_local_analysis(monkeypatch, cross_variable):
    """Channels whose localization weights are equal (every variable at one level, without a
    cross-variable factor) get one transform; the analysis equals the one with a unit per
    channel, and with a cross-variable factor every channel keeps its own."""
    g = torch.Generator().manual_seed(7)
    channels = [("t", 250.0), ("u", 250.0), ("t", 850.0), ("u", 850.0), ("ps", None)]
    lat, lon = np.array([-30.0, 30.0]), np.arange(4) * 90.0
    x = 250 + torch.randn(N, 1, 5, 2, 4, generator=g, dtype=torch.float64)
    pairs = torch.cat([x + 0.1 * torch.randn(x.shape, generator=g, dtype=x.dtype), x], 1)
    op, _ = build_operator(
        channels, lat, lon, obs_variable=["t", "u", "t"], obs_latitude=[-30.0, 30.0, 30.0],
        obs_longitude=[0.0, 90.0, 180.0], obs_level=[850.0, 250.0, 500.0],
    )  # fmt: skip
    y = torch.tensor([252.0, 249.0, 251.0], dtype=torch.float64)
    slots = [ObsSlot(0, op, y, torch.ones(3, dtype=torch.float64))]
    loc = LocalizationOptions(
        length_scale=8000.0, vertical_length_scale=1.0, cross_variable=cross_variable
    )
    kw = dict(localization=loc, latitude=lat, longitude=lon, channels=channels,
              options=LETKFOptions(point_chunk=10))  # fmt: skip
    wts = op.weights()
    index, weight = wts.index, wts.weight
    lz = observation_localization(
        index, weight, state_shape=(5, 2, 4), localization=loc, latitude=lat, longitude=lon,
        channels=channels,
    )  # fmt: skip
    rows, of = lz.channel_groups()
    assert of.shape == (5,) and np.array_equal(rows[of], lz.channel)
    assert len(rows) == (3 if cross_variable == 1.0 else 5)  # 250, 850 hPa and the surface
    grouped = letkf_analysis(pairs, slots, **kw)
    monkeypatch.setattr(
        "xfuxi.assimilation.letkf.ObservationLocalization.channel_groups", lambda self: None
    )
    per_channel = letkf_analysis(pairs, slots, **kw)
    torch.testing.assert_close(grouped.members, per_channel.members, rtol=1e-12, atol=1e-10)
    assert not torch.allclose(grouped.members, pairs)


def test_lorenz96_letkf_takes_one_config_and_the_old_keywords_still_work():
    """Issue 19 item 3: the experiment's settings are one Lorenz96LETKFConfig (saved in attrs)."""
    import json

    import xarray as xr

    cfg = Lorenz96LETKFConfig(n_cycles=5, burn_in=1, n_members=10, rtps=0.2, seed=3)
    new = lorenz96_letkf(config=cfg, progress=False)
    assert Lorenz96LETKFConfig.from_dict(json.loads(new.attrs["config"])) == cfg
    with pytest.warns(DeprecationWarning, match=r"pass config=Lorenz96LETKFConfig\(n_cycles="):
        old = lorenz96_letkf(n_cycles=5, burn_in=1, n_members=10, rtps=0.2, seed=3,
                             progress=False)  # fmt: skip
    xr.testing.assert_identical(old.drop_attrs(), new.drop_attrs())
    with pytest.raises(ValueError, match=r"n_cycles \(5\) must exceed burn_in \(5\)"):
        Lorenz96LETKFConfig(n_cycles=5, burn_in=5)


def test_the_background_check_uses_the_inflated_prior():
    """The check used the members' spread before the inflation ρ, so it rejected
    observations the inflated prior the analysis uses expects (by √ρ on σ_b)."""
    pairs, op, _, _ = _setup()
    one = op.subset([0])
    hx = one(pairs[:, 1])[:, 0]
    sb = float(hx.std(unbiased=True))
    so, k = 0.1 * sb, 3.0
    # 1.2 times the uninflated bound: beyond it, within the bound with ρ = 2
    d = 1.2 * k * math.sqrt(so**2 + sb**2)
    assert d < k * math.sqrt(so**2 + 2.0 * sb**2)
    slot = ObsSlot(0, one, hx.mean()[None] + d, torch.tensor([so], dtype=torch.float64))
    kw = dict(localization=LocalizationOptions(length_scale=None))
    with pytest.raises(ValueError, match="failed the background check"):  # ρ = 1: rejected
        letkf_analysis(pairs, [slot], options=LETKFOptions(n_members=N, qc_threshold=k), **kw)
    res = letkf_analysis(
        pairs, [slot], options=LETKFOptions(n_members=N, qc_threshold=k, inflation=2.0), **kw
    )
    assert not res.qc_rejected[0].any()
