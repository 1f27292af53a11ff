"""Variational bias correction (VarBC): bias coefficients in En4DVar's control vector."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests import tiny, tiny_da
from tests.training.test_da import forecast_model
from xfuxi.assimilation.config import BackgroundError, LocalizationOptions, Minimiser
from xfuxi.assimilation.cost import En4DVarProblem, ObsSlot, SlotBias
from xfuxi.assimilation.en4dvar import QualityControl, en4dvar_analysis
from xfuxi.assimilation.letkf import letkf_analysis
from xfuxi.assimilation.localization import localization
from xfuxi.assimilation.radiances import (
    RadianceBiasCorrection,
    bias_predictors,
    radiance_analysis,
)
from xfuxi.observations.imager import (
    ImagerError,
    ImagerErrors,
    imager_observations,
    radiance_table,
)
from xfuxi.observations.operator import build_operator

F64 = torch.float64
C, H, W = 2, 3, 4
CH = ["wv6.9", "wv7.4", "ir10.8"]
#: the biases the synthetic radiances carry: constant and sec θ − 1 terms per channel (K)
TRUE_BETA = {"wv6.9": (1.0, 0.8, 0.0), "wv7.4": (-0.7, 0.5, 0.0), "ir10.8": (0.5, -0.6, 0.0)}


# --- the tiny En4DVar world (3 x 4, two channels): the cost itself ---


def _slot(step, lats, lons, values, err, bias=None):
    n = len(lats)
    op, why = build_operator(
        tiny.DA_CHANNELS, tiny.DA_LAT, tiny.DA_LON, obs_variable=["temperature"] * n,
        obs_latitude=lats, obs_longitude=lons, obs_level=[500.0] * n,
    )  # fmt: skip
    assert (why == "").all()
    return ObsSlot(
        step, op, torch.as_tensor(values, dtype=F64), torch.full((n,), float(err), dtype=F64),
        bias,
    )  # fmt: skip


def _problem(slots, loc=None, n=8):
    g = torch.Generator().manual_seed(1)
    prev = torch.randn(C, H, W, generator=g, dtype=F64)
    xb = torch.randn(C, H, W, generator=g, dtype=F64)
    members = xb + 0.5 * torch.randn(n, C, H, W, generator=g, dtype=F64)
    anom = (members - members.mean(0)) / math.sqrt(n - 1)
    lz = None
    if loc:
        lz = localization(tiny.DA_LAT, tiny.DA_LON, length_scale=4000.0, variance=1.0)
    model = tiny.da_model(tiny.TinyNonlinear())
    return En4DVarProblem(model, prev, xb, anom, slots, localization=lz, dtype=F64)


def _bias(m, groups=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.cat([torch.ones(m, 1, dtype=F64), torch.rand(m, 2, generator=g, dtype=F64)], 1)
    return SlotBias(
        pred, torch.arange(m) % groups, prior=0.3 * torch.randn(groups, 3, generator=g, dtype=F64),
        prior_std=torch.tensor([[1.0, 0.5, 2.0]] * groups, dtype=F64),
    )  # fmt: skip


LATS, LONS = [10.0, -20.0, 40.0, 0.0], [30.0, 200.0, 100.0, 270.0]
VALUES = [1.0, -0.5, 0.7, 0.2]


@pytest.mark.parametrize("loc", [False, True])
def test_gradient_in_the_bias_directions_matches_finite_differences(loc):
    slots = [_slot(0, LATS, LONS, VALUES, 0.3, _bias(4)), _slot(1, [40.0], [100.0], [0.7], 0.2)]
    prob = _problem(slots, loc)
    assert prob.n_bias == 6 and prob.n_control == prob.n_state + 6 and prob.has_bias
    g = torch.Generator().manual_seed(5)
    v = 0.3 * torch.randn(prob.n_control, generator=g, dtype=F64)
    vr = v.clone().requires_grad_(True)
    j, _, _ = prob.cost(vr)
    (grad,) = torch.autograd.grad(j, vr)
    h = 1e-5

    def cost(x):
        with torch.no_grad():
            return float(prob.cost(x)[0])

    for k in range(prob.n_state, prob.n_control):  # every bias direction
        e = torch.zeros_like(v)
        e[k] = 1.0
        fd = (cost(v + h * e) - cost(v - h * e)) / (2 * h)
        assert fd == pytest.approx(float(grad[k]), rel=1e-6, abs=1e-8)
    # and the closed form: ∂J/∂u = u − σ_β ⊙ Σ_rows P_jᵀ (y − H x − P β)_j / σo²
    s = slots[0]
    with torch.no_grad():
        x = prob.background + prob.increment(v)
        beta = prob.bias_coefficients(v)[0]
        r = (s.value - s.operator(x) - s.bias.correction(beta)) / s.error**2
        u = v[prob.n_state :]
        expect = u - (s.bias.prior_std * torch.zeros(2, 3, dtype=F64).index_add(
            0, s.bias.group, s.bias.predictors * r[:, None])).reshape(-1)  # fmt: skip
    torch.testing.assert_close(grad[prob.n_state :], expect, rtol=1e-10, atol=1e-12)
    # a mixed direction (state and bias): the Taylor remainder shrinks as eps²
    d = torch.randn(prob.n_control, generator=g, dtype=F64)
    gd = float(grad @ d)
    resid = [abs(cost(v + eps * d) - float(j.detach()) - eps * gd) for eps in (1e-2, 1e-3)]
    assert resid[0] / resid[1] == pytest.approx(100.0, rel=0.2)


def test_slots_without_bias_give_exactly_the_old_cost():
    plain = [_slot(0, LATS, LONS, VALUES, 0.3), _slot(1, [40.0], [100.0], [0.7], 0.2)]
    prob = _problem(plain)
    assert prob.n_bias == 0 and prob.n_control == prob.n_state == 8 and not prob.has_bias
    v = 0.3 * torch.randn(prob.n_control, generator=torch.Generator().manual_seed(2), dtype=F64)
    j, jb, jo = prob.cost(v)
    # the cost as written before VarBC
    states = prob.trajectory(prob.background + (v.view(-1, 1, 1, 1) * prob.anomalies).sum(0))
    old_jo = [0.5 * (((s.value - s.operator(states[s.step])) / s.error) ** 2).sum() for s in plain]
    old_jb = 0.5 * (v * v).sum()
    assert torch.equal(jb, old_jb) and all(torch.equal(a, b) for a, b in zip(jo, old_jo))
    assert torch.equal(j, old_jb + old_jo[0] + old_jo[1])
    assert prob.bias_coefficients(v) == [None, None]
    # a bias slot: its departures are those of the corrected values, plus ½ uᵀu
    bias = _bias(4)
    with_bias = [_slot(0, LATS, LONS, VALUES, 0.3, bias), plain[1]]
    pb = _problem(with_bias)
    u = torch.tensor([0.5, -1.0, 0.2, 0.0, 1.5, -0.3], dtype=F64)
    jv, jbv, jov = pb.cost(torch.cat([v, u]))
    beta = bias.prior + bias.prior_std * u.view(2, 3)
    pb_rows = [float(bias.predictors[i] @ beta[bias.group[i]]) for i in range(4)]
    corrected = [_slot(0, LATS, LONS, np.subtract(VALUES, pb_rows), 0.3)]
    _, _, jo_ref = _problem([*corrected, plain[1]]).cost(v)
    torch.testing.assert_close(jov[0], jo_ref[0], rtol=1e-12, atol=0)
    assert torch.equal(jov[1], jo[1])
    torch.testing.assert_close(jbv, jb + 0.5 * (u * u).sum(), rtol=1e-14, atol=0)
    torch.testing.assert_close(jv, jbv + jov[0] + jov[1], rtol=1e-14, atol=0)
    # the increment reads the state part only
    assert torch.equal(pb.increment(torch.cat([v, u])), prob.increment(v))
    assert torch.equal(pb.increment(v), prob.increment(v))
    torch.testing.assert_close(pb.bias_coefficients(torch.cat([v, u]))[0], beta)


def test_shape_and_value_errors_are_named():
    p, g = torch.ones(4, 3, dtype=F64), torch.tensor([0, 1, 0, 1])
    prior, std = torch.zeros(2, 3, dtype=F64), torch.ones(2, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"predictors must be \(m, P\)"):
        SlotBias(torch.ones(4), g, prior, std)
    with pytest.raises(ValueError, match=r"prior must be \(G, P\) with P = 3"):
        SlotBias(p, g, torch.zeros(2, 2), std)
    with pytest.raises(ValueError, match="prior_std .* does not match prior"):
        SlotBias(p, g, prior, torch.ones(3, 3))
    with pytest.raises(ValueError, match="group must be an integer tensor"):
        SlotBias(p, g.double(), prior, std)
    with pytest.raises(ValueError, match="group must be an integer tensor"):
        SlotBias(p, g[:3], prior, std)
    with pytest.raises(ValueError, match=r"group must be in 0 … 1"):
        SlotBias(p, torch.tensor([0, 1, 2, 0]), prior, std)
    with pytest.raises(ValueError, match="prior_std must be positive"):
        SlotBias(p, g, prior, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="predictors has NaN"):
        SlotBias(torch.full((4, 3), math.nan), g, prior, std)
    ok = SlotBias(p, g, prior, std)
    with pytest.raises(ValueError, match="bias has 4 predictor rows for 2 observations"):
        _slot(0, LATS[:2], LONS[:2], VALUES[:2], 0.3, ok)
    with pytest.raises(TypeError, match="must be a SlotBias"):
        _slot(0, LATS, LONS, VALUES, 0.3, bias="constant")
    prob = _problem([_slot(0, LATS, LONS, VALUES, 0.3, ok)])
    with pytest.raises(ValueError, match=r"14 entries \(8 state \+ 6 bias\)"):
        prob.cost(torch.zeros(8, dtype=F64))
    with pytest.raises(ValueError, match="or its 8 state entries"):
        prob.increment(torch.zeros(9, dtype=F64))
    # inputs are not mutated; the subset keeps the prior
    sub = ok.subset(np.array([True, False, False, True]))
    assert sub.group.tolist() == [0, 1] and sub.prior is ok.prior and ok.n_rows == 4
    # the LETKF refuses slots with a bias model
    pairs = torch.zeros(4, 2, C, H, W, dtype=F64) + torch.randn(4, 1, C, H, W, dtype=F64)
    with pytest.raises(ValueError, match="LETKF does not estimate bias"):
        letkf_analysis(
            pairs, [_slot(0, LATS, LONS, VALUES, 0.3, ok)],
            localization=LocalizationOptions(length_scale=2.0, n_points=4),
            latitude=tiny.DA_LAT, longitude=tiny.DA_LON, channels=tiny.DA_CHANNELS,
        )  # fmt: skip


def test_background_check_and_omb_use_the_prior_coefficients():
    # observations 20 K off the background: rejected with a zero prior, kept with a prior
    # that knows the bias; O−B is reported after the prior correction
    g = torch.Generator().manual_seed(3)
    model = tiny.da_model(tiny.TinyNonlinear())
    xb = torch.randn(3, C, H, W, generator=g, dtype=F64)
    anom = 0.3 * torch.randn(8, C, H, W, generator=g, dtype=F64)
    plain = _slot(0, LATS, LONS, VALUES, 0.3)
    with torch.no_grad():
        y = plain.operator(xb[2]) + 20.0
    pred = torch.ones(4, 1, dtype=F64)

    def run(prior):
        b = SlotBias(pred, torch.zeros(4, dtype=torch.long), torch.tensor([[prior]], dtype=F64),
                     torch.ones(1, 1, dtype=F64))  # fmt: skip
        s = ObsSlot(0, plain.operator, y, plain.error, b)
        s2 = _slot(0, [0.0], [0.0], [float(xb[2, 0, 1, 0])], 0.3)  # an unbiased anchor
        return en4dvar_analysis(
            model, xb, [s, s2], anomalies=anom, quality_control=QualityControl(qc_threshold=5.0),
            dtype=F64, progress=False,
        )  # fmt: skip

    kept = run(20.0)
    assert not kept.qc_rejected[0].any()
    torch.testing.assert_close(kept.omb[0], y - plain.operator(xb[2]) - 20.0)
    assert kept.bias_coefficients[1] is None and kept.bias_coefficients[0].shape == (1, 1)
    assert float(kept.bias_coefficients[0]) == pytest.approx(20.0, abs=0.05)
    assert kept.oma[0].abs().max() < 0.1
    rejected = run(0.0)
    assert rejected.qc_rejected[0].all() and rejected.omb[0].numel() == 0
    # no bias slot: no coefficients
    ref = en4dvar_analysis(model, xb, [plain], anomalies=anom, dtype=F64, progress=False)
    assert ref.bias_coefficients is None


# --- imager radiances (8 x 16 world): radiance_analysis(varbc=...) ---


def _biased_radiances():
    """Clear-sky, noise-free radiances of the truth plus the known constant + sec θ bias."""
    truth = tiny_da.truth(4)
    rad = imager_observations(
        truth.isel(time=[3]), satellites=[90.0], channels=CH, frames=(0.0,), seed=3,
        errors=ImagerErrors(clouds=False, bias=False, noise=False, spectroscopy=False),
    )  # fmt: skip
    table = radiance_table(rad, error=0.3)
    names = table["sensor_channel"].values.astype(str)
    sec1 = bias_predictors(table["zenith_angle"].values, np.full(names.size, 250.0))[:, 1]
    bias = np.array([TRUE_BETA[n][0] + TRUE_BETA[n][1] * s for n, s in zip(names, sec1)])
    biased = table.copy(deep=True)
    biased["value"] = ("obs", table["value"].values + bias)
    return truth, table, biased


def _coef_error(bc: RadianceBiasCorrection) -> float:
    return max(float(np.abs(np.subtract(bc.coefficients[c], TRUE_BETA[c])).max()) for c in CH)


def test_varbc_recovers_a_known_bias_and_leaves_a_perfect_state_alone():
    truth, table, biased = _biased_radiances()
    bg = truth.isel(time=[1, 2, 3])  # the background is the truth
    kw = dict(
        model=forecast_model(), localization=None, screen_threshold=None,
        background_error=BackgroundError(n_members=16, amplitude=0.2),
        minimiser=Minimiser(max_iter=20),
    )  # fmt: skip
    given = biased.copy(deep=True)
    var = radiance_analysis(bg, biased, varbc=True, **kw)
    plain = radiance_analysis(bg, biased, **kw)
    assert given.identical(biased)  # the table is not mutated
    d = var.diagnostics
    bc = d["varbc"]
    assert isinstance(bc, RadianceBiasCorrection) and set(bc.coefficients) == set(CH)
    assert d["varbc_prior"].coefficients["wv6.9"] == (0.0, 0.0, 0.0)
    assert sum(bc.n_rows.values()) == d["n_radiances_used"] == table.sizes["obs"]
    # VarBC: the coefficients within 0.3 K (constant), 0.1 K (sec θ − 1) and 0.2 K (per
    # 50 K of BT, a predictor nearly collinear with the constant here) of the truth, the
    # (perfect) state barely moved; without it the bias pulls the state
    tolerance = np.array([0.3, 0.1, 0.2])
    for c in CH:
        b = np.asarray(bc.coefficients[c])
        assert (np.abs(b - TRUE_BETA[c]) < tolerance).all(), (c, b)
        assert d["rms_oma"][c] < 0.1 < d["rms_omb"][c]
    rms_var = float(np.sqrt((var.increment["temperature"] ** 2).mean()))
    rms_plain = float(np.sqrt((plain.increment["temperature"] ** 2).mean()))
    assert rms_var < 0.1 and rms_plain > 0.3 and rms_plain > 5 * rms_var
    # without bias in the observations VarBC finds (nearly) none
    clean = radiance_analysis(bg, table, varbc=True, **kw).diagnostics["varbc"]
    assert max(np.abs(clean.coefficients[c]).max() for c in CH) < 0.15
    # a tight prior keeps the coefficients near the (zero) prior
    tight = radiance_analysis(bg, biased, varbc=True, varbc_std=0.01, **kw).diagnostics["varbc"]
    assert all(np.abs(tight.coefficients[c]).max() < 0.1 for c in CH)


def test_varbc_cycles_the_analysed_coefficients_toward_the_truth():
    truth, _, biased = _biased_radiances()
    bg = truth.isel(time=[1, 2, 3])
    kw = dict(
        model=forecast_model(), localization=None, screen_threshold=None,
        background_error=BackgroundError(n_members=16, amplitude=0.2),
        minimiser=Minimiser(max_iter=20),
    )  # fmt: skip
    first = radiance_analysis(bg, biased, varbc=True, **kw).diagnostics["varbc"]
    extra = RadianceBiasCorrection(
        {**first.coefficients, "ir8.7": (9.0, 9.0, 9.0)}, n_rows={**first.n_rows, "ir8.7": 5}
    )
    second = radiance_analysis(bg, biased, varbc=extra, **kw).diagnostics["varbc"]
    assert _coef_error(second) < 0.8 * _coef_error(first), (first, second)
    assert _coef_error(second) < 0.1
    assert second.coefficients["ir8.7"] == (9.0, 9.0, 9.0)  # not in the table: carried over
    assert second.n_rows["ir8.7"] == 5
    assert extra.coefficients["wv6.9"] == first.coefficients["wv6.9"]  # prior not mutated


def test_varbc_options_are_checked():
    truth, table, _ = _biased_radiances()
    bg = truth.isel(time=[1, 2, 3])
    prior = RadianceBiasCorrection({"wv6.9": (0.0, 0.0, 0.0)}, n_rows={"wv6.9": 1})
    kw = dict(model=forecast_model(), localization=None)
    with pytest.raises(ValueError, match="not both"):
        radiance_analysis(bg, table, bias=prior, varbc=True, **kw)
    with pytest.raises(ValueError, match="varbc_std must be one number or 3"):
        radiance_analysis(bg, table, varbc=True, varbc_std=(1.0, 1.0), **kw)
    with pytest.raises(ValueError, match="varbc_std must be positive"):
        radiance_analysis(bg, table, varbc=True, varbc_std=0.0, **kw)
    with pytest.raises(TypeError, match="varbc must be a RadianceBiasCorrection"):
        radiance_analysis(bg, table, varbc={"wv6.9": (0, 0, 0)}, **kw)
    with pytest.raises(ImagerError, match=r"no prior bias coefficients for channel\(s\) \["):
        radiance_analysis(bg, table, varbc=prior, **kw)


def test_radiance_analysis_takes_a_localization_dict_as_assimilate_4dvar_does(monkeypatch):
    """A dict localized at LocalizationOptions' own 2000 km, not at the default's 1500."""
    import xfuxi.assimilation.radiances as radiances_module
    from xfuxi.assimilation.config import BackgroundError, Minimiser

    seen = {}

    class _Stop(Exception):
        pass

    def capture(options, model):
        seen["options"] = options
        raise _Stop

    monkeypatch.setattr(radiances_module, "build_localization", capture)
    truth, _, biased = _biased_radiances()
    with pytest.raises(_Stop):
        radiances_module.radiance_analysis(
            truth.isel(time=[1, 2, 3]), biased, model=forecast_model(),
            localization={"n_points": 8}, screen_threshold=None,
            background_error=BackgroundError(n_members=4, amplitude=0.2),
            minimiser=Minimiser(max_iter=1),
        )  # fmt: skip
    assert seen["options"].length_scale == 1500.0 and seen["options"].n_points == 8
