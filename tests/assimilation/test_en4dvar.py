"""En4DVar core: gradients, closed-form solutions, QC, and the xarray front end."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.assimilation.config import Minimiser, QualityControl, Window
from xfuxi.assimilation.en4dvar import (
    BackgroundError,
    En4DVarProblem,
    ObsSlot,
    assimilate_4dvar,
    en4dvar_analysis,
    minimize_cost,
)
from xfuxi.assimilation.localization import localization
from xfuxi.assimilation.members import background_anomalies
from xfuxi.observations.operator import build_operator
from xfuxi.observations.sets import ObservationError, make_observations

LAT, LON, CHANNELS = tiny.DA_LAT, tiny.DA_LON, tiny.DA_CHANNELS
TinyNonlinear = tiny.TinyNonlinear
_model = tiny.da_model
_background_ds = tiny.da_background
C, H, W = 2, 3, 4
P = C * H * W
F64 = torch.float64


class LinearNet(torch.nn.Module):
    """y = A x_t + B x_{t-1} on flattened states."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a = torch.eye(P, dtype=F64) + 0.2 * torch.randn(P, P, generator=g, dtype=F64) / 5
        self.b = 0.1 * torch.randn(P, P, generator=g, dtype=F64) / 5

    def forward(self, x):
        x0 = x[:, 0].reshape(x.shape[0], -1)
        x1 = x[:, 1].reshape(x.shape[0], -1)
        return (x1 @ self.a.T + x0 @ self.b.T).reshape(x.shape[0], C, H, W)


def _slot(step, lats, lons, values, err, var="temperature"):
    n = len(lats)
    op, why = build_operator(
        CHANNELS,
        LAT,
        LON,
        obs_variable=[var] * n,
        obs_latitude=lats,
        obs_longitude=lons,
        obs_level=[500.0] * n,
    )
    assert (why == "").all()
    return ObsSlot(
        step, op, torch.as_tensor(values, dtype=F64), torch.full((n,), float(err), dtype=F64)
    )


def _states(seed=1, n=12):
    g = torch.Generator().manual_seed(seed)
    prev = torch.randn(C, H, W, generator=g, dtype=F64)
    xb = torch.randn(C, H, W, generator=g, dtype=F64)
    members = xb + 0.5 * torch.randn(n, C, H, W, generator=g, dtype=F64)
    return prev, xb, members


def _anoms(members):
    return (members - members.mean(0)) / math.sqrt(members.shape[0] - 1)


@pytest.mark.parametrize("loc", [None, "spatial", "channel"])
def test_taylor_and_finite_differences(loc):
    prev, xb, members = _states()
    model = _model(TinyNonlinear())
    slots = [
        _slot(0, [10.0, -20.0], [30.0, 200.0], [1.0, -0.5], 0.3),
        _slot(1, [40.0], [100.0], [0.7], 0.2),
    ]
    lz = {
        None: None,
        "spatial": localization(LAT, LON, length_scale=4000.0, variance=1.0),
        "channel": localization(
            LAT, LON, length_scale=4000.0, channels=CHANNELS, cross_variable=0.5, variance=1.0
        ),
    }[loc]
    prob = En4DVarProblem(model, prev, xb, _anoms(members), slots, localization=lz, dtype=F64)
    g = torch.Generator().manual_seed(5)
    w = 0.3 * torch.randn(prob.n_control, generator=g, dtype=F64)
    d = torch.randn(prob.n_control, generator=g, dtype=F64)
    wr = w.clone().requires_grad_(True)
    j, _, _ = prob.cost(wr)
    (grad,) = torch.autograd.grad(j, wr)
    gd = float(grad @ d)
    resid = []
    for eps in (1e-1, 1e-2, 1e-3):
        je = float(prob.cost(w + eps * d)[0].detach())
        resid.append(abs(je - float(j.detach()) - eps * gd))
    # Taylor: the remainder shrinks as eps^2 (x100 per decade)
    assert resid[0] / resid[1] == pytest.approx(100.0, rel=0.2)
    assert resid[1] / resid[2] == pytest.approx(100.0, rel=0.2)
    # central finite differences
    h = 1e-5
    fd = (float(prob.cost(w + h * d)[0].detach()) - float(prob.cost(w - h * d)[0].detach())) / (
        2 * h
    )
    assert fd == pytest.approx(gd, rel=1e-6)


@pytest.mark.parametrize("loc", ["spatial", "channel"])
def test_localized_increment_is_the_schur_product_sum_over_members(loc):
    """δx = Σ_n (L^½ v_n) ∘ X_n, with L^½ the horizontal square root and, with channel
    localization, its vertical / cross-variable one: the increment written out in full."""
    prev, xb, members = _states()
    lz = localization(
        LAT, LON, length_scale=4000.0, variance=1.0,
        **({"channels": CHANNELS, "cross_variable": 0.5} if loc == "channel" else {}),
    )  # fmt: skip
    anoms = _anoms(members)
    prob = En4DVarProblem(_model(LinearNet()), prev, xb, anoms, [], localization=lz, dtype=F64)
    v = torch.randn(prob.n_state, generator=torch.Generator().manual_seed(3), dtype=F64)
    n, c, h, w = anoms.shape
    lh = torch.as_tensor(lz.spatial, dtype=F64)
    if loc == "channel":
        lc = torch.as_tensor(lz.channel, dtype=F64)
        weights = torch.einsum("cs,nsr,pr->ncp", lc, v.reshape(n, lc.shape[1], -1), lh)
    else:
        weights = (v.reshape(n, -1) @ lh.T)[:, None, :].expand(n, c, h * w)
    expected = (weights * anoms.double().reshape(n, c, h * w)).sum(0).reshape(c, h, w)
    torch.testing.assert_close(prob.increment(v), expected, rtol=1e-12, atol=1e-12)


def test_linear_model_reaches_closed_form_solution():
    prev, xb, members = _states(n=10)
    net = LinearNet()
    model = _model(net)
    s0 = _slot(0, [10.0, -20.0, 30.0], [30.0, 200.0, 300.0], [1.0, -0.5, 0.2], 0.3)
    s1 = _slot(1, [40.0, -5.0], [100.0, 10.0], [0.7, 1.5], 0.5, var="geopotential")
    xbn = _anoms(members).reshape(10, -1).T.numpy()  # (P, N)
    a, b = net.a.numpy(), net.b.numpy()
    h0, h1 = s0.operator.matrix(), s1.operator.matrix()
    g0, g1 = h0 @ xbn, h1 @ a @ xbn
    d0 = s0.value.numpy() - h0 @ xb.numpy().ravel()
    d1 = s1.value.numpy() - h1 @ (a @ xb.numpy().ravel() + b @ prev.numpy().ravel())
    r0, r1 = 1 / 0.3**2, 1 / 0.5**2
    hess = np.eye(10) + r0 * g0.T @ g0 + r1 * g1.T @ g1
    w_ref = np.linalg.solve(hess, r0 * g0.T @ d0 + r1 * g1.T @ d1)
    for optimizer in ("scipy", "torch"):
        background = torch.stack([prev, prev, xb])
        opts = BackgroundError(perturbation_std=(1.0, 1.0))
        res = en4dvar_analysis(
            model,
            background,
            [s0, s1],
            anomalies=background_anomalies(
                model, background, background_error=opts, members=members, dtype=F64,
                progress=False,
            ),
            background_error=opts,
            quality_control=QualityControl(qc_threshold=None),
            minimiser=Minimiser(gtol=1e-9, max_iter=200, optimizer=optimizer),
            dtype=F64,
            progress=False,
        )  # fmt: skip
        np.testing.assert_allclose(res.increment.numpy().ravel(), xbn @ w_ref, atol=1e-7)
        assert res.history.records[-1].gradient_norm < 1e-5 * res.history.records[0].gradient_norm
    # analysis trajectory is the model run from the analysis
    np.testing.assert_allclose(
        res.trajectory[1].numpy().ravel(),
        a @ res.analysis.numpy().ravel() + b @ prev.numpy().ravel(),
        atol=1e-10,
    )


@pytest.mark.parametrize("use_loc", [False, True, "channel"])
def test_single_observation_analytic_increment(use_loc):
    prev, xb, members = _states(n=8)
    model = _model(TinyNonlinear())  # the model does not matter for a t0-only observation
    innovation, err = 0.8, 0.4
    s0 = _slot(0, [25.0], [45.0], [0.0], err)
    hb = float(s0.operator(xb))
    s0.value = torch.tensor([hb + innovation], dtype=F64)
    xa = _anoms(members).reshape(8, -1).T.numpy()
    bmat = xa @ xa.T
    loc = None
    if use_loc is True:
        loc = localization(LAT, LON, length_scale=3000.0, variance=1.0)
        bmat = bmat * np.kron(np.ones((C, C)), loc.correlation())
    elif use_loc == "channel":  # horizontal times cross-variable: C = C_channel ⊗ C_sphere
        loc = localization(
            LAT, LON, length_scale=3000.0, channels=CHANNELS, cross_variable=0.5, variance=1.0
        )
        spatial = localization(LAT, LON, length_scale=3000.0, variance=1.0).correlation()
        bmat = bmat * np.kron(np.array([[1.0, 0.5], [0.5, 1.0]]), spatial)
    h = s0.operator.matrix()[0]
    expected = bmat @ h * innovation / (h @ bmat @ h + err**2)
    background = torch.stack([prev, prev, xb])
    opts = BackgroundError(perturbation_std=(1.0, 1.0))
    res = en4dvar_analysis(
        model,
        background,
        [s0],
        anomalies=background_anomalies(
            model, background, background_error=opts, members=members, dtype=F64, progress=False
        ),
        background_error=opts,
        localization=loc,
        quality_control=QualityControl(qc_threshold=None),
        minimiser=Minimiser(gtol=1e-10, max_iter=300),
        dtype=F64,
        progress=False,
    )
    np.testing.assert_allclose(res.increment.numpy().ravel(), expected, atol=1e-7)


def test_background_check_rejects_outlier():
    prev, xb, members = _states(n=20)
    model = _model(TinyNonlinear())
    s0 = _slot(0, [10.0, 20.0], [30.0, 60.0], [0.0, 0.0], 0.1)
    hb = s0.operator(xb)
    s0.value = hb + torch.tensor([0.05, 1e3], dtype=F64)
    background = torch.stack([prev, prev, xb])
    opts = BackgroundError(perturbation_std=(1.0, 1.0))
    res = en4dvar_analysis(
        model,
        background,
        [s0],
        anomalies=background_anomalies(
            model, background, background_error=opts, members=members, dtype=F64, progress=False
        ),
        background_error=opts,
        quality_control=QualityControl(qc_threshold=5.0),
        dtype=F64,
        progress=False,
    )
    assert res.qc_rejected[0].tolist() == [False, True]
    assert float(res.increment.abs().max()) < 1.0


def test_minimize_zero_gradient_returns_background():
    prev, xb, members = _states(n=5)
    s0 = _slot(0, [10.0], [30.0], [0.0], 1.0)
    s0.value = s0.operator(xb)
    prob = En4DVarProblem(_model(TinyNonlinear()), prev, xb, _anoms(members), [s0], dtype=F64)
    v, hist = minimize_cost(prob, progress=False)
    assert float(v.abs().max()) == 0.0 and hist.converged


def test_torch_lbfgs_reaches_the_minimum_of_an_ill_scaled_3dvar():
    """The torch L-BFGS line search may shorten a step that raises J: both optimizers reach
    the BLUE's minimum (before, a first trial step that raised J stopped v for good, and the
    run reported "iteration cap reached" far above the minimum)."""
    g = torch.Generator().manual_seed(3)
    c, h, w, k = 2, 3, 4, 6
    prev = torch.randn(c, h, w, generator=g, dtype=F64)
    xb = torch.randn(c, h, w, generator=g, dtype=F64)
    anoms = torch.randn(k, c, h, w, generator=g, dtype=F64) * 0.7
    lats, lons = [-50.0, 0.0, 50.0, 10.0, 0.0], [0.0, 90.0, 180.0, 45.0, 270.0]
    names = ["temperature", "geopotential", "temperature", "temperature", "geopotential"]
    op, why = build_operator(
        tiny.DA_CHANNELS, tiny.DA_LAT, tiny.DA_LON, obs_variable=names, obs_latitude=lats,
        obs_longitude=lons, obs_level=[500.0] * 5,
    )  # fmt: skip
    assert (why == "").all()
    y = torch.randn(5, generator=g, dtype=F64) * 2
    sigma = torch.tensor([0.5, 1.0, 0.3, 0.8, 2.0], dtype=F64)
    prob = En4DVarProblem(tiny.da_model(tiny.TinyNonlinear()), prev, xb, anoms, [
        ObsSlot(0, op, y, sigma)])  # fmt: skip
    hmat = torch.as_tensor(op.matrix(), dtype=F64)
    xf = anoms.reshape(k, -1).T
    gmat = hmat @ xf / sigma[:, None]
    d = (y - hmat @ xb.reshape(-1)) / sigma
    w_ref = torch.linalg.solve(torch.eye(k, dtype=F64) + gmat.T @ gmat, gmat.T @ d)
    j_min = float(prob.cost(w_ref)[0])
    for optimizer in ("scipy", "torch"):
        v, hist = minimize_cost(
            prob, minimiser=Minimiser(max_iter=100, gtol=1e-10, optimizer=optimizer),
            progress=False,
        )  # fmt: skip
        assert float(prob.cost(v)[0]) == pytest.approx(j_min, rel=1e-9), optimizer
        torch.testing.assert_close(v, w_ref, rtol=1e-5, atol=1e-6)
        assert hist.message != "iteration cap reached", (optimizer, hist.message)


def test_lbfgs_runs_with_one_blas_thread_and_restores_the_limit():
    """SciPy's L-BFGS-B runs with one BLAS thread (its threads would compete with torch's
    for the cores); the BLAS thread count outside is unchanged afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"}

    prev, xb, members = _states(n=5)
    s0 = _slot(0, [10.0], [30.0], [1.0], 0.5)
    prob = En4DVarProblem(_model(TinyNonlinear()), prev, xb, _anoms(members), [s0], dtype=F64)
    seen: list[set[int]] = []
    cost = prob.cost

    def recording(v):
        seen.append(blas_threads())
        return cost(v)

    prob.cost = recording
    if not blas_threads():
        pytest.skip("no BLAS library that threadpoolctl controls")
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        if before != {2}:
            pytest.skip(f"this BLAS does not take two threads ({before})")
        v, hist = minimize_cost(prob, progress=False)
        assert blas_threads() == before == {2}
    assert len(seen) > 2 and seen[0] == {2}  # the first evaluation is before L-BFGS-B
    assert all(s == {1} for s in seen[1:]), seen
    assert float(v.abs().max()) > 0


# ---------------------------------------------------------------------------------------------
# xarray front end
# ---------------------------------------------------------------------------------------------


def test_assimilate_4dvar_dataset_counts_and_accessor(tmp_path):
    model = _model(TinyNonlinear())
    bg = _background_ds()
    before = bg.copy(deep=True)
    t0 = bg["time"].values[-1]
    t1 = t0 + np.timedelta64(6, "h")
    tb = float(bg["temperature"].sel(time=t0).interp(latitude=10.0, longitude=45.0)[0])
    zb = float(bg["geopotential"].sel(time=t0).interp(latitude=20.0, longitude=100.0)[0])
    obs = make_observations(
        [tb + 1.0, np.nan, tb, tb, tb, zb + 30.0, tb],
        error=[0.5, 0.5, -1.0, 0.5, 0.5, 20.0, 0.5],
        time=[t0, t0, t0, t0, t0, t1, t0 + np.timedelta64(12, "h")],
        latitude=[10.0, 0, 0, 0, 0, 20.0, 0],
        longitude=[45.0, 0, 0, 0, 0, 100.0, 0],
        variable=[
            "temperature",
            "temperature",
            "temperature",
            "humidity",
            "temperature",
            "geopotential",
            "temperature",
        ],
        level=[500.0, 500, 500, 500, 700, 500, 500],
    )
    kw = dict(
        model=model,
        background_error=BackgroundError(
            n_members=16, perturbation_std=(2.0, 100.0), amplitude=0.5, wavelength=1, seed=3
        ),
        localization=3000.0,
        progress=False,
    )
    res = assimilate_4dvar(bg, obs, **kw)
    xr.testing.assert_identical(bg, before)
    diag = res.diagnostics
    counts = dict(zip(diag["reason"].values.tolist(), diag["n_rejected"].values.tolist()))
    assert counts == {
        "nan_value": 1,
        "bad_error": 1,
        "unknown_variable": 1,
        "unknown_level": 1,
        "outside_grid": 0,
        "outside_window": 1,
        "duplicate": 0,
        "background_check": 0,
    }
    assert int(diag["n_used"].sum()) == 2
    assert sorted(diag["obs_slot"].values.tolist()) == [0, 1]
    assert (np.abs(diag["oma"]) < np.abs(diag["omb"])).all()
    assert diag["cost"][-1] < diag["cost"][0]
    assert res.analysis["temperature"].dims == ("time", "level", "latitude", "longitude")
    assert res.trajectory.sizes["prediction_timedelta"] == 2
    inc = res.analysis - bg.sel(time=[t0])
    xr.testing.assert_allclose(inc, res.increment, atol=1e-5)
    # accessor delegates to the same function
    res2 = bg.fuxi.assimilate_4dvar(obs, **kw)
    xr.testing.assert_allclose(res2.analysis, res.analysis)
    with pytest.raises(ObservationError, match="strict"):
        assimilate_4dvar(bg, obs, quality_control=QualityControl(strict=True), **kw)
    assert xfuxi.assimilate_4dvar is assimilate_4dvar
    # t0 is the latest time whatever the order of the background's times
    rev = assimilate_4dvar(bg.isel(time=slice(None, None, -1)), obs, **kw)
    xr.testing.assert_allclose(rev.analysis, res.analysis)
    # the summary names what a notebook user looks for first
    text = repr(res)
    assert text.startswith("En4DVarResult: FuXi-En4DVar analysis at ")
    assert f"{diag.attrs['iterations']} iterations" in text and "2 used" in text
    assert "'nan_value': 1" in text and "'background_check'" not in text
    # an analysis says what its background came from
    assert "background_source" not in res.analysis.attrs  # the test background has no title
    titled = assimilate_4dvar(bg.assign_attrs(title="Held-Suarez world"), obs, **kw)
    assert titled.analysis.attrs["background_source"] == "Held-Suarez world"
    assert "variable's units" in diag["omb_rms"].attrs["long_name"]
    # and which release and weights made it (as forecasts record them)
    assert res.analysis.attrs["xfuxi_version"] == xfuxi.__version__
    assert res.analysis.attrs["checkpoint_sha256"] == str(kw["model"].config.get("sha256", "none"))
    # saved as the command line writes it: four files, marked, never over another output
    tiny.check_saved_result(res, tmp_path, kind="assimilation")
    assert list(res.datasets()) == ["analysis", "increment", "trajectory", "diagnostics"]
    # max_iter=0: not minimised, the analysis is the background with its diagnostics
    none = assimilate_4dvar(bg, obs, minimiser=Minimiser(max_iter=0), **kw)
    assert none.diagnostics.attrs["iterations"] == 0
    assert float(abs(none.increment).to_array().max()) == 0.0
    np.testing.assert_allclose(none.diagnostics["oma"], none.diagnostics["omb"])
    assert float(none.diagnostics["cost"][0]) == pytest.approx(float(diag["cost"][0]))
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="max_iter"):
            assimilate_4dvar(bg, obs, minimiser=Minimiser(max_iter=bad), **kw)


def test_assimilate_4dvar_bad_background():
    model = _model(TinyNonlinear())
    bg = _background_ds().isel(time=[1, 2])
    obs = make_observations(
        [250.0],
        error=1.0,
        time=bg["time"].values[-1],
        latitude=0.0,
        longitude=0.0,
        variable="temperature",
        level=500.0,
    )
    with pytest.raises(ValueError, match="t0 - 12 h"):
        assimilate_4dvar(
            bg, obs, model=model, background_error=BackgroundError(n_members=4), progress=False
        )
    with pytest.raises(ValueError, match="no usable observation"):
        assimilate_4dvar(
            _background_ds(),
            obs.assign(value=obs["value"] * np.nan),
            model=model,
            background_error=BackgroundError(n_members=4, perturbation_std=(1.0, 1.0)),
            progress=False,
        )
    # a time-zone-aware analysis time: every background time was reported missing
    # (now refused where the window is made: Window reads its time with parse_times); UTC
    # is read as UTC
    t0 = pd.Timestamp(_background_ds()["time"].values[-1])
    with pytest.raises(ValueError, match="time carries a time zone"):
        Window(time=t0.isoformat() + "+05:00")
    assert Window(time=t0.isoformat() + "Z").time == Window(time=t0).time


def test_assimilate_4dvar_hybrid_static_b():
    from xfuxi.data.schema import SchemaError

    model = _model(TinyNonlinear())
    bg = _background_ds()
    t0 = bg["time"].values[-1]
    tb = float(bg["temperature"].sel(time=t0).interp(latitude=10.0, longitude=45.0)[0])
    obs = make_observations(
        [tb + 1.0], error=0.5, time=t0, latitude=10.0, longitude=45.0, variable="temperature",
        level=500.0,
    )  # fmt: skip
    rng = np.random.default_rng(1)
    static_b = xr.Dataset(
        {v: (("sample", "level", "latitude", "longitude"), s * rng.normal(size=(12, 1, H, W)))
         for v, s in (("temperature", 1.0), ("geopotential", 30.0))},
        coords={"level": [500.0], "latitude": LAT, "longitude": LON},
    )  # fmt: skip
    before = static_b.copy(deep=True)
    be = BackgroundError(n_members=8, perturbation_std=(2.0, 100.0), amplitude=0.5,
                         wavelength=1, seed=3)  # fmt: skip
    kw = dict(model=model, localization=None, progress=False,
              quality_control=QualityControl(qc_threshold=None))  # fmt: skip
    ens = assimilate_4dvar(bg, obs, background_error=be, **kw)
    # a hybrid weight without static samples is not used: said, not silently recorded
    with pytest.warns(UserWarning, match="hybrid_weight=0.5 has no effect without static"):
        alone = assimilate_4dvar(bg, obs, background_error=be.replace(hybrid_weight=0.5), **kw)
    xr.testing.assert_equal(alone.increment, ens.increment)  # the config attribute differs
    hyb = assimilate_4dvar(
        bg, obs, background_error=be.replace(hybrid_weight=0.5),
        error_data=xfuxi.BackgroundErrorData(static_b=static_b), **kw,
    )  # fmt: skip
    static = assimilate_4dvar(
        bg, obs, background_error=be.replace(hybrid_weight=1.0),
        error_data=xfuxi.BackgroundErrorData(static_b=static_b), **kw,
    )  # fmt: skip
    xr.testing.assert_identical(static_b, before)
    assert hyb.diagnostics.attrs["background_error"].startswith("hybrid: 0.5 ensemble")
    assert ens.diagnostics.attrs["background_error"] == "ensemble"
    # static B alone draws no members: the provenance says so (it named 8 Perlin members)
    s_attrs = static.diagnostics.attrs
    assert s_attrs["background_error"] == "static (12 samples)"
    assert s_attrs["n_members"] == 0 and s_attrs["perturbations"] == "none (static B only)"
    assert json.loads(s_attrs["config"])["members"] == "none (static B only)"
    assert hyb.diagnostics.attrs["n_members"] == 8
    for res in (ens, hyb, static):
        assert float(np.abs(res.diagnostics["oma"]).max()) < 1.0  # drawn to the observation
    # the hybrid increment is neither the ensemble's nor the static one
    t = [r.increment["temperature"].values for r in (ens, hyb, static)]
    assert not np.allclose(t[1], t[0]) and not np.allclose(t[1], t[2])
    with pytest.raises(SchemaError, match="'sample' dim"):
        assimilate_4dvar(
            bg,
            obs,
            error_data=xfuxi.BackgroundErrorData(static_b=static_b.rename(sample="member")),
            background_error=be,
            **kw,
        )
    with pytest.raises(SchemaError, match="grid"):
        assimilate_4dvar(
            bg,
            obs,
            error_data=xfuxi.BackgroundErrorData(static_b=static_b.isel(longitude=[0, 1, 2])),
            background_error=be,
            **kw,
        )
    with pytest.raises(ValueError, match="hybrid_weight"):
        assimilate_4dvar(
            bg,
            obs,
            background_error=be.replace(hybrid_weight=1.5),
            error_data=xfuxi.BackgroundErrorData(static_b=static_b),
            **kw,
        )


def test_analysis_trajectory_and_increment_spell_units_as_the_background():
    """The trajectory (whose lead 0 is the analysis) keeps the background's spelling of each
    unit, as the analysis and the increment do (it had the catalogue's ``m**2 s**-2``)."""
    model = _model(TinyNonlinear())
    bg = _background_ds()
    bg["geopotential"].attrs["units"] = "m2 s-2"
    bg["temperature"].attrs["units"] = "K"
    t0 = bg["time"].values[-1]
    obs = make_observations(
        [250.0], error=0.5, time=t0, latitude=10.0, longitude=45.0, variable="temperature",
        level=500.0,
    )  # fmt: skip
    res = assimilate_4dvar(
        bg, obs, model=model, progress=False,
        background_error=BackgroundError(n_members=4, perturbation_std=(1.0, 1.0)),
        minimiser=Minimiser(max_iter=0),
    )  # fmt: skip
    for ds in (res.analysis, res.increment, res.trajectory):
        assert ds["geopotential"].attrs["units"] == "m2 s-2"
        assert ds["temperature"].attrs["units"] == "K"


def test_ensemble_members_with_given_perturbations():
    from xfuxi.assimilation.members import ensemble_members, perlin_state_perturbations

    model = _model(TinyNonlinear())
    prev, xb, _ = _states()
    gen = torch.Generator().manual_seed(4)
    opts = BackgroundError(
        n_members=5, perturbation_std=(1.0, 2.0), amplitude=0.3, wavelength=2, balance="none"
    )
    pert = perlin_state_perturbations(model, background_error=opts, generator=gen)
    assert pert.shape == (5, C, H, W) and pert.dtype == F64
    # Perlin members are those perturbations run one step (same generator state)
    perlin = ensemble_members(model, prev, xb, background_error=opts,
                              generator=torch.Generator().manual_seed(4),
                              dtype=F64, progress=False)  # fmt: skip
    given = ensemble_members(model, prev, xb, background_error=opts, perturbations=pert,
                             dtype=F64, progress=False)  # fmt: skip
    torch.testing.assert_close(given, perlin)
    with torch.no_grad():
        direct = model(torch.stack([prev + pert, xb + pert], dim=1))
    torch.testing.assert_close(given, direct)
    with pytest.raises(ValueError, match="perturbations must be"):
        ensemble_members(model, prev, xb, background_error=opts.replace(n_members=4),
                         perturbations=pert, progress=False)  # fmt: skip
    # the older flat keywords still work, with a DeprecationWarning naming the new option
    with pytest.warns(DeprecationWarning, match=r"background_error=BackgroundError\(amplitude"):
        old = ensemble_members(model, prev, xb, n_members=5, std=[1.0, 2.0], amplitude=0.3,
                               wavelength=2, balance=None, dtype=F64, progress=False,
                               generator=torch.Generator().manual_seed(4))  # fmt: skip
    torch.testing.assert_close(old, perlin, rtol=0, atol=0)


def test_balanced_perlin_members_keep_each_channels_amplitude():
    """Balanced perturbations took the mean of per-channel amplitudes (0 and 0.5 gave 0.25
    to both channels)."""
    from xfuxi.assimilation.members import perlin_state_perturbations

    model = _model(TinyNonlinear())  # temperature@500 and geopotential@500: none derived
    for balance in ("none", "geostrophic"):
        opts = BackgroundError(n_members=64, perturbation_std=(2.0, 100.0), amplitude=(0.0, 0.5),
                               wavelength=1, balance=balance)  # fmt: skip
        pert = perlin_state_perturbations(model, background_error=opts)
        assert float(pert[:, 0].abs().max()) == 0.0, balance
        assert float(pert[:, 1].std()) == pytest.approx(50.0, rel=0.05), balance


def test_assimilate_4dvar_with_a_given_ensemble():
    """B from given members (WB2 ``number`` dim): the single-observation increment is its column."""
    from xfuxi.data.schema import SchemaError

    model = _model(TinyNonlinear())
    bg = _background_ds()
    t0 = bg["time"].values[-1]
    rng = np.random.default_rng(2)
    members = xr.Dataset(
        {v: (("number", "level", "latitude", "longitude"),
             bg[v].sel(time=t0).values[None] + s * rng.normal(size=(7, 1, H, W)))
         for v, s in (("temperature", 1.0), ("geopotential", 30.0))},
        coords={"number": np.arange(7), "level": [500.0], "latitude": LAT, "longitude": LON},
    )  # fmt: skip
    tb = float(bg["temperature"].sel(time=t0, level=500.0).sel(latitude=0.0, longitude=90.0))
    innovation, err = 0.8, 0.5
    obs = make_observations([tb + innovation], error=err, time=t0, latitude=0.0, longitude=90.0,
                            variable="temperature", level=500.0)  # fmt: skip
    kw = dict(model=model, localization=None, progress=False,
              quality_control=QualityControl(qc_threshold=None),
              minimiser=Minimiser(gtol=1e-10, max_iter=300))  # fmt: skip
    res = assimilate_4dvar(
        bg, obs, error_data=xfuxi.BackgroundErrorData(members=members.expand_dims(time=[t0])), **kw
    )
    x = np.stack([members[v].values[:, 0] for v, _ in CHANNELS], axis=1).reshape(7, -1)
    xa = (x - x.mean(0)).T / np.sqrt(6)
    bmat = xa @ xa.T
    k = CHANNELS.index(("temperature", 500.0)) * H * W + 1 * W + 1  # the point (0°, 90°E)
    expected = bmat[:, k] * innovation / (bmat[k, k] + err**2)
    got = np.stack([res.increment[v].values[0, 0] for v, _ in CHANNELS]).ravel()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert res.diagnostics.attrs["perturbations"] == "given ensemble"
    assert res.diagnostics.attrs["n_members"] == 7
    with pytest.raises(SchemaError, match="'number' dim"):
        assimilate_4dvar(
            bg,
            obs,
            error_data=xfuxi.BackgroundErrorData(members=members.rename(number="ens")),
            **kw,
        )
    # members read in the canonical layout, as the background is: ``member`` (an alias of
    # ``number``) and north-to-south latitudes (refused with "regrid" before)
    for other in (members.rename(number="member"), members.isel(latitude=slice(None, None, -1))):
        given = xfuxi.BackgroundErrorData(members=other)
        xr.testing.assert_allclose(assimilate_4dvar(bg, obs, error_data=given, **kw).increment,
                                   res.increment)  # fmt: skip
    with pytest.raises(SchemaError, match="one time"):
        assimilate_4dvar(
            bg,
            obs,
            error_data=xfuxi.BackgroundErrorData(
                members=members.expand_dims(time=bg["time"].values)
            ),
            **kw,
        )
    earlier = bg["time"].values[-2]
    with pytest.raises(SchemaError, match="not at the analysis time"):
        assimilate_4dvar(
            bg,
            obs,
            error_data=xfuxi.BackgroundErrorData(members=members.expand_dims(time=[earlier])),
            **kw,
        )
    # the same with time a scalar coordinate (members.isel(time=0)): it was not checked
    with pytest.raises(SchemaError, match="not at the analysis time"):
        assimilate_4dvar(
            bg,
            obs,
            error_data=xfuxi.BackgroundErrorData(members=members.assign_coords(time=earlier)),
            **kw,
        )
    # a forecast layout: initial time + lead = t0 is accepted
    fc = members.expand_dims(time=[earlier], prediction_timedelta=[np.timedelta64(6, "h")])
    given_fc = xfuxi.BackgroundErrorData(members=fc)
    xr.testing.assert_allclose(assimilate_4dvar(bg, obs, error_data=given_fc, **kw).increment,
                               res.increment)  # fmt: skip
    with pytest.raises(ValueError, match="at least 2"):
        assimilate_4dvar(
            bg, obs, error_data=xfuxi.BackgroundErrorData(members=members.isel(number=[0])), **kw
        )


@pytest.mark.parametrize("n_slots", [1, 2])
def test_cycling_on_gridded_twin_beats_free_run(n_slots):
    # with one slot the analysis trajectory holds t0 only; the next background is then a
    # separate forecast from the analysis
    from xfuxi.assimilation.cycling import _to_dataset, cycle_4dvar, rollout
    from xfuxi.observations.sets import region_observations

    model = _model(TinyNonlinear())
    nature = _model(TinyNonlinear())  # the truth comes from a different (imperfect) model
    with torch.no_grad():
        nature.net.conv.weight.mul_(1.5)
    g = torch.Generator().manual_seed(2)
    pair = torch.randn(2, C, H, W, generator=g, dtype=F64).numpy()
    states = np.concatenate([pair, rollout(nature, pair, 16)])
    times = pd.date_range("2001-01-01", periods=states.shape[0], freq="6h")
    like = _background_ds()
    truth = _to_dataset(states, model, times, like)

    def observe(tr, ts):
        return region_observations(
            tr,
            latitude=(-90, 90),
            longitude=(0, 359),
            variables=["temperature", "geopotential"],
            error={"temperature": 0.05, "geopotential": 0.05},
            times=ts,
            seed=0,
        )

    out = cycle_4dvar(
        truth,
        model=model,
        start=times[8],
        n_cycles=4,
        observe=observe,
        lead_steps=6,
        background_error=BackgroundError(
            n_members=30, perturbation_std=(1.0, 1.0), amplitude=0.3, wavelength=1
        ),
        localization=None,
        window=Window(n_slots=n_slots),
        progress=False,
    )
    assert out.sizes["time"] == 4
    corr = out["increment_correlation"]
    assert bool(((corr >= -1) & (corr <= 1)).all())
    # the first increment points toward the truth: it correlates with minus the error
    assert float(corr.isel(time=0).mean()) > 0.8
    a, f = float(out["analysis"].mean()), float(out["free"].mean())
    assert a < 0.5 * f
    assert float(out["analysis"].isel(time=-1).mean()) < float(
        out["background"].isel(time=-1).mean()
    )


def test_increment_previous_shifts_the_earlier_input():
    model = _model(LinearNet())
    prev, xb, members = _states(n=6)
    anoms = _anoms(members)
    slot = _slot(1, [25.0], [45.0], [0.0], 0.5)
    plain = En4DVarProblem(model, prev, xb, anoms, [slot], dtype=F64)
    shifted = En4DVarProblem(model, prev, xb, anoms, [slot], dtype=F64, increment_previous=True)
    inc = 0.3 * torch.ones_like(xb)
    with torch.no_grad():
        a = plain.trajectory(xb + inc)[1]
        b = shifted.trajectory(xb + inc)[1]
        expect_a = model(torch.stack([prev, xb + inc])[None])[0]
        expect_b = model(torch.stack([prev + inc, xb + inc])[None])[0]
        # at the background itself both agree
        same = shifted.trajectory(xb)[1], plain.trajectory(xb)[1]
    torch.testing.assert_close(a, expect_a)
    torch.testing.assert_close(b, expect_b)
    torch.testing.assert_close(*same)
    assert not torch.allclose(a, b)


def test_world_background_with_the_shortest_lead_holds_its_initial_state():
    """lead_steps=2: t0 − 12 h is the forecast's initial state (the truth), then two steps."""
    import pandas as pd
    import torch
    import xarray as xr

    import xfuxi

    truth = xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"),
                         250.0 + np.arange(6.0)[:, None, None, None] * np.ones((6, 1, 2, 4)))},
        coords={"time": pd.date_range("2000-01-01", periods=6, freq="6h"), "level": [500],
                "latitude": [-45.0, 45.0], "longitude": [0.0, 90.0, 180.0, 270.0]},
    )  # fmt: skip

    class Trend(torch.nn.Module):  # x(t+1) = 2 x(t) - x(t-1): the truth's linear trend
        def forward(self, x):
            return 2 * x[:, 1] - x[:, 0]

    model = xfuxi.wrap_model(Trend(), channels=[("temperature", 500.0)],
                             latitude=truth.latitude, longitude=truth.longitude)  # fmt: skip
    for lead in (2, 3):
        bg = xfuxi.world_background(truth, model=model, time="2000-01-02T06", lead_steps=lead)
        assert list(bg.time.values) == list(truth.time.values[-3:])
        xr.testing.assert_allclose(bg.temperature, truth.temperature.isel(time=slice(-3, None)))


def test_world_background_takes_a_model_name_like_every_model_argument(
    tiny_fuxi_checkpoint, tiny_dataset
):
    """model= a shipped name or a checkpoint directory failed with "'str' object has no
    attribute 'timestep'"; it is loaded as by every other model argument."""
    import xarray as xr

    import xfuxi

    directory, model = tiny_fuxi_checkpoint
    truth = tiny_dataset(n_time=6)
    kw = dict(time=truth.time.values[-1], lead_steps=3)
    by_path = xfuxi.world_background(truth, model=str(directory), **kw)
    xr.testing.assert_identical(by_path, xfuxi.world_background(truth, model=model, **kw))
    # with the truth's attributes, as documented (a map then knows the world it shows)
    titled = truth.assign_attrs(title="Held-Suarez world (T21, seed 3)")
    assert xfuxi.world_background(titled, model=model, **kw).attrs == titled.attrs
    with pytest.raises(ValueError, match="lead_steps must be an integer >= 2"):
        xfuxi.world_background(truth, model=model, time=kw["time"], lead_steps=2.5)


def test_world_background_reads_the_truth_in_any_layout(tiny_fuxi_checkpoint, tiny_dataset):
    """A north-to-south truth (ERA5's order) or one in -180..180 was fed to the model as it
    was (0.6 K off after two steps of the tiny model) and labelled with its coordinates."""
    import xarray as xr

    import xfuxi
    from xfuxi.data.schema import SchemaError

    _, model = tiny_fuxi_checkpoint
    truth = tiny_dataset(n_time=6)
    kw = dict(model=model, time=truth.time.values[-1], lead_steps=2)
    ref = xfuxi.world_background(truth, **kw)
    north_to_south = truth.isel(latitude=slice(None, None, -1))
    xr.testing.assert_identical(xfuxi.world_background(north_to_south, **kw), ref)
    west = truth.assign_coords(longitude=(truth.longitude + 180) % 360 - 180).sortby("longitude")
    xr.testing.assert_allclose(xfuxi.world_background(west, **kw), ref)
    with pytest.raises(SchemaError, match="grid"):
        xfuxi.world_background(truth.isel(latitude=slice(1, None)), **kw)


def test_innovations_against_the_trajectory_match_the_analysis_diagnostics():
    """xfuxi.innovations(obs, res.trajectory) crashed with a NumPy shape error (the forecast
    layout's leads were ignored); it matches observations by valid time now."""
    model = _model(TinyNonlinear())
    bg = _background_ds()
    t0 = bg["time"].values[-1]
    t1 = t0 + np.timedelta64(6, "h")
    obs = make_observations([250.5, 251.0], error=0.5, time=[t0, t1], latitude=[10.0, -20.0],
                            longitude=[45.0, 200.0], variable="temperature",
                            level=500.0)  # fmt: skip
    res = assimilate_4dvar(
        bg, obs, model=model, localization=3000.0, progress=False,
        background_error=BackgroundError(n_members=16, perturbation_std=(2.0, 100.0),
                                         amplitude=0.5, wavelength=1, seed=3),
    )  # fmt: skip
    got = xfuxi.innovations(obs, res.trajectory)["innovation"].values
    np.testing.assert_allclose(got, res.diagnostics["oma"].values, rtol=1e-6)
    two_starts = xr.concat([res.trajectory, res.trajectory.assign_coords(time=[t1])], "time")
    with pytest.raises(ValueError, match="forecast of 2 initial times"):
        xfuxi.innovations(obs, two_starts)


@pytest.mark.parametrize("n_slots", [2, 3])
def test_the_trajectory_runs_through_the_whole_window(n_slots):
    """It stopped at the last slot with observations (t0 alone for observations at t0)."""
    model = _model(TinyNonlinear())
    bg = _background_ds()
    t0 = bg["time"].values[-1]
    obs = make_observations([250.5], error=0.5, time=t0, latitude=10.0, longitude=45.0,
                            variable="temperature", level=500.0)  # fmt: skip
    res = assimilate_4dvar(
        bg, obs, model=model, localization=3000.0, progress=False,
        window=Window(n_slots=n_slots),
        background_error=BackgroundError(n_members=16, perturbation_std=(2.0, 100.0),
                                         amplitude=0.5, wavelength=1, seed=3),
    )  # fmt: skip
    leads = res.trajectory["prediction_timedelta"].values
    np.testing.assert_array_equal(leads, np.arange(n_slots) * np.timedelta64(6, "h"))
    # it starts from the analysis, and the model moves it on
    first = res.trajectory["temperature"].isel(prediction_timedelta=0).values.squeeze()
    np.testing.assert_allclose(first, res.analysis["temperature"].values.squeeze())
    last = res.trajectory["temperature"].isel(prediction_timedelta=-1).values.squeeze()
    assert np.isfinite(last).all() and not np.allclose(last, first)


@pytest.mark.parametrize("dim", ["member", "number", "realization"])
def test_a_background_or_state_with_an_ensemble_dim_is_refused_naming_it(dim):
    """assimilate_4dvar failed with xarray's raw transpose error, innovations of the
    assimilation layout with a NumPy "shape mismatch"; both name the dim now."""
    from xfuxi.data.schema import SchemaError

    model = _model(TinyNonlinear())
    bg = _background_ds()
    t0 = bg["time"].values[-1]
    obs = make_observations(
        [251.0],
        error=0.5,
        time=t0,
        latitude=10.0,
        longitude=45.0,
        variable="temperature",
        level=500.0,
    )
    with pytest.raises(
        SchemaError,
        match=rf"the background states have an ensemble dim "
        rf"'{dim}' \(2 members\).*isel\({dim}=0\).*error_data\.members",
    ):
        assimilate_4dvar(
            bg.expand_dims({dim: 2}),
            obs,
            model=model,
            localization=3000.0,
            background_error=BackgroundError(n_members=4, seed=3),
            progress=False,
        )
    with pytest.raises(
        SchemaError,
        match=rf"ensemble dim '{dim}' \(2 members\).*"
        rf"isel\({dim}=0\)",
    ):
        xfuxi.innovations(obs, bg.expand_dims({dim: 2}))
    # a variable the model does not read may have other dims, as before
    extra = bg.assign(flag=bg["temperature"].expand_dims({dim: 2}))
    assert "innovation" in xfuxi.innovations(obs, extra)


def test_innovations_of_observations_without_times_against_several_times_name_the_dim():
    bg = _background_ds()
    obs = make_observations(
        [251.0],
        error=0.5,
        time=bg["time"].values[-1],
        latitude=10.0,
        longitude=45.0,
        variable="temperature",
        level=500.0,
    )
    with pytest.raises(ValueError, match=r"carry no coordinate \['time'\].*isel\(time=0\)"):
        xfuxi.innovations(obs.drop_vars("time"), bg)
    one = xfuxi.innovations(obs.drop_vars("time"), bg.isel(time=-1))["innovation"].values
    np.testing.assert_array_equal(one, xfuxi.innovations(obs, bg)["innovation"].values)


def _open_bars(desc):
    from tqdm import tqdm as std_tqdm

    return [b for b in list(getattr(std_tqdm, "_instances", [])) if b.desc == desc]


def test_progress_bars_are_closed_when_the_work_fails():
    """A bar left open by an exception stayed in tqdm's instances while the traceback lived
    (IPython keeps the last one): the next bar was drawn a line lower."""
    from xfuxi.assimilation.members import ensemble_members

    prev, xb, members = _states(n=5)
    model = _model(TinyNonlinear())

    class Failing(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.calls = model, 0

        def forward(self, x):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("the model failed")
            return self.inner(x)

    failing = tiny.da_model(Failing())
    opts = BackgroundError(n_members=4, perturbation_std=(1.0, 2.0), amplitude=0.3,
                           wavelength=2, balance="none", member_chunk=2)  # fmt: skip
    with pytest.raises(RuntimeError, match="the model failed") as members_error:
        ensemble_members(failing, prev, xb, background_error=opts, dtype=F64, progress=True)
    assert _open_bars("ensemble members") == []
    s0 = _slot(0, [10.0], [30.0], [1.0], 1.0)
    calls = {"n": 0}
    operator = s0.operator

    def failing_operator(x):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("the operator failed")
        return operator(x)

    s0.operator = failing_operator
    prob = En4DVarProblem(model, prev, xb, _anoms(members), [s0], dtype=F64)
    with pytest.raises(RuntimeError, match="the operator failed") as cost_error:
        minimize_cost(prob, progress=True)
    assert _open_bars("4DVar L-BFGS") == []
    del members_error, cost_error
