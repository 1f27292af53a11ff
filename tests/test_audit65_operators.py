"""Own models and observation operators in 4DVar and the LETKF (audit65/extend #1-#4, #9).

* A model or operator that is not differentiable (detaches, NumPy) gave its observations a
  zero gradient: 4DVar returned the background as a "converged" analysis (#2).
* An operator giving NaN passed the background check (NaN > bound is False): En4DVar
  returned the background with J = NaN, the LETKF raised a raw LinAlgError (#3).
* ``subset()`` and ``weights()`` were needed but undocumented: an AttributeError as soon as
  the check rejected one observation, or always in the LETKF (#4).
* An operator dropping the members' dim gave En4DVar one scalar σb for every observation
  and the LETKF an IndexError (#9).
* ``assimilate_4dvar`` drew Perlin members with std 1 in each channel's own units for a
  model wrapped without statistics (#1): the analysis did nothing.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from xfuxi.assimilation.cost import En4DVarProblem, ObsSlot
from xfuxi.assimilation.en4dvar import en4dvar_analysis
from xfuxi.assimilation.letkf import letkf_analysis
from xfuxi.assimilation.minimise import minimize_cost
from xfuxi.assimilation.quality import background_check
from xfuxi.models.base import NormStats
from xfuxi.observations.interpolation import ObservationWeights
from xfuxi.observations.operator import build_operator

LAT = np.linspace(-67.5, 67.5, 4)
LON = np.arange(8) * 45.0
CHANNELS = [("temperature", 500.0), ("u_component_of_wind", 500.0), ("v_component_of_wind", 500.0)]


class Advect(torch.nn.Module):
    """Shift the later state one grid point east per step (differentiable, no parameters)."""

    def forward(self, x):
        return torch.roll(x[:, 1], 1, dims=-1)


class Detached(torch.nn.Module):
    """The same step through ``detach``: no autograd path from the output to the input."""

    def forward(self, x):
        return torch.roll(x[:, 1].detach(), 1, dims=-1)


class DetachedConv(torch.nn.Module):
    """Parameters that require grad, on a detached input: the output has a graph, but not
    to the state."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1).double()

    def forward(self, x):
        return x[:, 1].detach() + 0.0 * self.conv(x[:, 1].detach())


def _model(net=None, stats=True):
    std = np.array([5.0, 8.0, 6.0])
    return xfuxi.wrap_model(
        net if net is not None else Advect(),
        channels=CHANNELS,
        latitude=LAT,
        longitude=LON,
        stats=NormStats(np.array([250.0, 5.0, 0.0]), std, std) if stats else None,
        name="advect",
    )


def _states(n=4):
    """Fields advected one point east per step: ``(n, C, H, W)`` float64."""
    la, lo = np.meshgrid(np.deg2rad(LAT), np.deg2rad(LON), indexing="ij")
    out = []
    for t in range(n):
        lon = lo - np.deg2rad(45.0) * t
        out.append(
            [
                250 + 5 * np.cos(la) * np.cos(lon),
                5 + 4 * np.cos(la) * np.sin(lon + 1),
                3 * np.cos(la) * np.cos(2 * lon),
            ]
        )
    return torch.tensor(np.array(out), dtype=torch.float64)


def _operator(variable="temperature", n=6, seed=0):
    rng = np.random.default_rng(seed)
    op, why = build_operator(
        CHANNELS,
        LAT,
        LON,
        obs_variable=[variable] * n,
        obs_latitude=rng.uniform(-60, 60, n),
        obs_longitude=rng.uniform(0, 360, n),
        obs_level=np.full(n, 500.0),
    )
    assert (why == "").all()
    return op


OPTS = xfuxi.BackgroundError(
    n_members=12, perturbation_std=(1.0, 1.0, 1.0), amplitude=1.0, wavelength=1
)


def _analysis(slots, model=None, background=None, **kw):
    truth = _states()
    bg = truth[:3].clone() + 0.5 if background is None else background
    return en4dvar_analysis(
        model if model is not None else _model(),
        bg,
        slots,
        background_error=OPTS,
        generator=torch.Generator().manual_seed(0),
        progress=False,
        **kw,
    )


def _slot(op, state, step=0, offset=0.0, error=0.3):
    y = op(state).detach() + offset
    return ObsSlot(step, op, y, torch.full_like(y, error))


# --- #2: not differentiable ---


@pytest.mark.parametrize("net", [Detached(), DetachedConv()], ids=["detach", "parameters"])
def test_a_model_that_is_not_differentiable_is_refused_in_4dvar(net):
    """Observations only in slot 1: the background came back as a converged analysis."""
    truth = _states()
    slot = _slot(_operator(), truth[3], step=1)
    with pytest.raises(
        ValueError, match=r"slot at step 1 .* the model 'advect' .* not differentiable"
    ):
        _analysis([slot], model=_model(net))


def test_an_operator_through_numpy_is_refused_in_4dvar():
    h = _operator()

    class NumpyOp(torch.nn.Module):
        def forward(self, x):
            return torch.as_tensor(h(x.detach()).numpy())

        def subset(self, keep):
            return self

    slot = ObsSlot(0, NumpyOp(), h(_states()[2]), torch.full((6,), 0.3, dtype=torch.float64))
    with pytest.raises(
        ValueError, match=r"slot at step 0 .* operator \(NumpyOp\) is not differentiable"
    ):
        _analysis([slot])


def test_one_undifferentiable_slot_is_refused_beside_a_differentiable_one():
    """Slot 0 gives a gradient, so only the per-slot check finds slot 1 ignored."""
    truth = _states()
    slots = [_slot(_operator(), truth[2]), _slot(_operator(seed=1), truth[3], step=1)]
    with pytest.raises(ValueError, match=r"slot at step 1 .* not differentiable"):
        _analysis(slots, model=_model(Detached()))


def test_a_perfect_background_is_still_a_converged_zero_gradient_analysis():
    """A true zero gradient (innovations exactly zero) is not refused, nor warned about."""
    bg = _states()[:3]
    # identity statistics and float64: the model's step is exactly the roll
    model = _model(stats=False)
    slots = [_slot(_operator(), bg[2]), _slot(_operator(seed=1), torch.roll(bg[2], 1, -1), step=1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = _analysis(slots, model=model, background=bg, dtype=torch.float64)
    assert res.history.converged
    assert res.history.message == "zero gradient at the background"
    assert torch.equal(res.analysis, bg[2])


def test_a_zero_gradient_with_observation_cost_warns():
    """Differentiable, but B has no spread where the observations are: Jo > 0 and a zero
    gradient; the background is returned with a warning, not silently."""
    bg = _states()[:3] + 0.5
    op = _operator()
    anomalies = torch.zeros(4, 3, 4, 8, dtype=torch.float64)
    anomalies[:, 2] = torch.randn(4, 4, 8, generator=torch.Generator().manual_seed(0))
    slot = _slot(op, _states()[2])  # temperature observations; B only in v
    with pytest.warns(UserWarning, match=r"gradient of the 4DVar cost is zero .* Jo is"):
        res = _analysis([slot], background=bg, anomalies=anomalies)
    assert torch.equal(res.analysis, bg[2])


def test_minimize_cost_refuses_a_cost_that_is_not_finite():
    """Without the core's checks (a problem built by hand): J = NaN at the start."""
    truth = _states()
    m = _model()
    h = _operator()

    def nan_op(x):
        return h(x) * float("nan")

    slot = ObsSlot(0, nan_op, h(truth[2]), torch.full((6,), 0.3, dtype=torch.float64))
    anomalies = torch.randn(4, 3, 4, 8, generator=torch.Generator().manual_seed(0)).double()
    prob = En4DVarProblem(m, truth[1], truth[2], anomalies, [slot])
    with pytest.raises(ValueError, match=r"cost at the start .* NaN or infinite"):
        minimize_cost(prob, progress=False)


# --- #3: NaN from the operator ---


class LogV(torch.nn.Module):
    """log of v: NaN where v < 0 (a forward-only nonlinear operator, with the methods)."""

    def __init__(self, h):
        super().__init__()
        self.h = h

    def forward(self, x):
        return torch.log(self.h(x))

    def subset(self, keep):
        return LogV(self.h.subset(keep))

    def weights(self):
        return self.h.weights()


def _log_v_slot():
    h = _operator("v_component_of_wind", n=8, seed=3)
    hv = h(_states()[2])
    assert bool((hv < 0).any()) and bool((hv > 0).any())
    y = torch.zeros(8, dtype=torch.float64)
    return ObsSlot(0, LogV(h), y, torch.full((8,), 0.5, dtype=torch.float64)), hv


@pytest.mark.parametrize("threshold", [5.0, None])
def test_nan_from_the_operator_at_the_background_is_refused_in_en4dvar(threshold):
    slot, hv = _log_v_slot()
    bad = np.flatnonzero((hv < 0).numpy()).tolist()
    with pytest.raises(
        ValueError, match=rf"NaN or infinite .* background .* {re.escape(str(bad))}"
    ):
        _analysis(
            [slot],
            background=_states()[:3],
            quality_control=xfuxi.QualityControl(qc_threshold=threshold),
        )


def test_nan_from_the_operator_at_the_members_is_refused_in_the_background_check():
    """Finite at the background, NaN at some members: σb was NaN and passed the check."""
    h = _operator("temperature", n=4, seed=4)

    class Sqrt(LogV):
        def forward(self, x):  # NaN below 250 K: at the background's 250 ± 5 K members
            return torch.sqrt(self.h(x) - 249.0)

    state = _states()[2]
    keep = h(state) > 250.0
    op = Sqrt(h.subset(np.flatnonzero(keep.numpy())))
    slot = _slot(op, state)
    anomalies = 30.0 * torch.randn(10, 3, 4, 8, generator=torch.Generator().manual_seed(0)).double()
    with pytest.raises(ValueError, match=r"NaN or infinite values at the background members"):
        background_check(slot, op(state), anomalies, 5.0, state=state)


def test_background_check_refuses_hx_that_is_not_finite():
    h = _operator()
    state = _states()[2]
    slot = _slot(h, state)
    hx = h(state).clone()
    hx[2] = float("nan")
    anomalies = torch.randn(4, 3, 4, 8, generator=torch.Generator().manual_seed(0)).double()
    with pytest.raises(ValueError, match=r"hx, .* NaN or infinite values at observations \[2\]"):
        background_check(slot, hx, anomalies, 5.0, state=state)


def _members(n=10):
    pair = _states()[1:3]
    noise = torch.randn(n, 2, 3, 4, 8, generator=torch.Generator().manual_seed(1)).double()
    return pair[None] + 0.5 * noise


def _letkf(slots, **kw):
    return letkf_analysis(
        _members(),
        slots,
        localization=xfuxi.LocalizationOptions(length_scale=3000.0),
        latitude=LAT,
        longitude=LON,
        channels=CHANNELS,
        **kw,
    )


def test_nan_from_the_operator_is_refused_in_the_letkf():
    """It raised a raw LinAlgError from the eigensolver."""
    slot, _ = _log_v_slot()
    with pytest.raises(ValueError, match=r"NaN or infinite values at the members"):
        _letkf([slot])


# --- #4: the operator's methods ---


class Forward(torch.nn.Module):
    """A forward-only operator (what ObsSlot used to document)."""

    def __init__(self, h):
        super().__init__()
        self.h = h

    def forward(self, x):
        return self.h(x)


def test_en4dvar_names_a_missing_subset_up_front():
    """It failed with an AttributeError only once the check rejected an observation."""
    truth = _states()
    slot = _slot(Forward(_operator()), truth[2])  # nothing would be rejected
    with pytest.raises(TypeError, match=r"en4dvar_analysis: .* \(Forward\) has no subset method"):
        _analysis([slot])
    # without the background check the operator needs no subset
    res = _analysis([slot], quality_control=xfuxi.QualityControl(qc_threshold=None))
    assert res.history.records[-1].cost < res.history.records[0].cost


def test_the_letkf_names_a_missing_weights_up_front():
    slot = _slot(Forward(_operator()), _states()[2])
    with pytest.raises(TypeError, match=r"letkf_analysis: .* has no weights and no subset method"):
        _letkf([slot])


def test_an_operator_that_is_not_callable_is_refused():
    slot = ObsSlot(0, object(), torch.zeros(2), torch.ones(2))
    with pytest.raises(TypeError, match=r"operator .* must be callable"):
        _analysis([slot])


def test_the_letkf_checks_the_rows_of_weights():
    h = _operator()

    class ShortWeights(LogV):
        def forward(self, x):
            return self.h(x)

        def weights(self):
            w = self.h.weights()
            return ObservationWeights(w.index[:-1], w.weight[:-1], w.state_shape)

    slot = _slot(ShortWeights(h), _states()[2])
    with pytest.raises(ValueError, match=r"weights\(\) .* one row per observation \(m = 6\)"):
        _letkf([slot])


class WindSpeed(torch.nn.Module):
    """The user guide's example (docs/user-guide/assimilation.md)."""

    def __init__(self, uv):
        super().__init__()
        self.uv, self.n = uv, uv.n_obs // 2

    def forward(self, x):
        h = self.uv(x)
        return torch.sqrt(h[..., : self.n] ** 2 + h[..., self.n :] ** 2)

    def subset(self, keep):
        keep = np.asarray(keep)
        return WindSpeed(self.uv.subset(np.r_[keep, keep + self.n]))

    def weights(self):
        w = self.uv.weights()
        return ObservationWeights(w.index[: self.n], w.weight[: self.n], w.state_shape)


def test_the_documented_operator_works_with_a_rejection_and_in_the_letkf():
    rng = np.random.default_rng(0)
    n = 12
    lat, lon = rng.uniform(-60, 60, n), rng.uniform(0, 360, n)
    uv, why = build_operator(
        CHANNELS,
        LAT,
        LON,
        obs_variable=["u_component_of_wind"] * n + ["v_component_of_wind"] * n,
        obs_latitude=np.r_[lat, lat],
        obs_longitude=np.r_[lon, lon],
        obs_level=np.full(2 * n, 500.0),
    )
    assert (why == "").all()
    op = WindSpeed(uv)
    truth = _states()
    y = op(truth[2])
    y[3] += 50.0  # a gross error the background check rejects
    slot = ObsSlot(0, op, y, torch.full((n,), 0.3, dtype=torch.float64))
    res = _analysis([slot])
    assert res.qc_rejected[0].tolist() == [i == 3 for i in range(n)]
    assert float(res.oma[0].abs().mean()) < float(res.omb[0].abs().mean())
    la = _letkf([ObsSlot(0, op, op(truth[2]), torch.full((n,), 0.3, dtype=torch.float64))])
    assert float(la.oma[0].abs().mean()) < float(la.omb[0].abs().mean())


# --- #9: the members' dim ---


class Flat(LogV):
    """Ignores leading dims: ``x.reshape(-1)[index]`` works on one state only."""

    def __init__(self, index):
        super().__init__(None)
        self.index = torch.as_tensor(index)

    def forward(self, x):
        return x.reshape(-1)[self.index]

    def subset(self, keep):
        return Flat(self.index[torch.as_tensor(np.asarray(keep))])

    def weights(self):
        return ObservationWeights(
            self.index.numpy()[:, None], np.ones((len(self.index), 1)), (3, 4, 8)
        )


def test_an_operator_that_drops_the_members_dim_is_refused():
    op = Flat([3, 13, 40])
    slot = _slot(op, _states()[2])
    with pytest.raises(
        ValueError,
        match=r"\(Flat\) maps the background members \(12, 3, 4, 8\) to \(3,\); expected \(12, 3\)",
    ):
        _analysis([slot])
    with pytest.raises(
        ValueError, match=r"maps the members \(10, 3, 4, 8\) to \(3,\); expected \(10, 3\)"
    ):
        _letkf([slot])


# --- #1: a model without statistics, the default perturbation std ---


def _dataset_world():
    truth = _states(4).numpy()
    times = pd.date_range("2001-01-01", periods=4, freq="6h")
    dims = ("time", "latitude", "longitude")
    coords = {"time": times, "latitude": LAT, "longitude": LON}
    ds = xr.Dataset(
        {
            "temperature": (("time", "level", *dims[1:]), truth[:, :1], {"units": "K"}),
            "u_component_of_wind": (("time", "level", *dims[1:]), truth[:, 1:2]),
            "v_component_of_wind": (("time", "level", *dims[1:]), truth[:, 2:3]),
        },
        coords={**coords, "level": [500.0]},
    )
    return ds


def test_assimilate_4dvar_refuses_the_default_perturbation_std_without_statistics():
    truth = _dataset_world()
    bg = truth.isel(time=[0, 1, 2]).copy(deep=True)
    bg["temperature"] = bg["temperature"] + 1.0
    obs = truth.fuxi.random_observations(
        n=30, variables=["temperature"], error={"temperature": 0.3},
        times=[truth.time.values[2]], seed=0,
    )  # fmt: skip
    model = _model(stats=False)
    kw = dict(model=model, window=xfuxi.Window(n_slots=1), localization=None, progress=False)
    with pytest.raises(
        ValueError,
        match=r"no normalization statistics for \['temperature@500', "
        r"'u_component_of_wind@500', 'v_component_of_wind@500'\].*perturbation_std=",
    ):
        bg.fuxi.assimilate_4dvar(obs, background_error=xfuxi.BackgroundError(n_members=12), **kw)
    # "innovations" estimates T only (30 observations): u and v are still unscaled
    with pytest.raises(ValueError, match=r"for \['u_component_of_wind@500', 'v_comp.*innovations"):
        bg.fuxi.assimilate_4dvar(
            obs, background_error=xfuxi.BackgroundError(n_members=12),
            error_data=xfuxi.BackgroundErrorData(spread="innovations"), **kw,
        )  # fmt: skip
    # each way of giving B's scale is accepted, and the analysis fits the observations
    for given in (
        dict(
            background_error=xfuxi.BackgroundError(n_members=12, perturbation_std=(5.0, 8.0, 6.0))
        ),
        dict(
            background_error=xfuxi.BackgroundError(n_members=12),
            error_data=xfuxi.BackgroundErrorData(spread=[1.0, 1.0, 1.0]),
        ),
    ):
        res = bg.fuxi.assimilate_4dvar(obs, **given, **kw)
        err_b = float(abs(bg.temperature.isel(time=-1) - truth.temperature.isel(time=2)).mean())
        err_a = float(
            abs(res.analysis.temperature.isel(time=0) - truth.temperature.isel(time=2)).mean()
        )
        assert err_a < 0.5 * err_b
    # a model with statistics keeps its default
    res = bg.fuxi.assimilate_4dvar(
        obs, **{**kw, "model": _model()}, background_error=xfuxi.BackgroundError(n_members=12)
    )
    assert int(res.diagnostics["n_used"].sum()) == 30
