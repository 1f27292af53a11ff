"""Lorenz-96 model (RK4) and the twin experiment on the En4DVar core."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from xfuxi.experiments.lorenz96 import Lorenz96TwinConfig, lorenz96_twin
from xfuxi.models.lorenz96 import Lorenz96, lorenz96_model, lorenz96_tendency


def _rhs_reference(t, x, f=8.0):
    n = x.size
    return np.array([(x[(j + 1) % n] - x[j - 2]) * x[j - 1] - x[j] + f for j in range(n)])


def test_tendency_matches_written_out_equation():
    x = np.random.default_rng(0).normal(3, 2, 40)
    got = lorenz96_tendency(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, _rhs_reference(0, x), atol=1e-12)


def test_rk4_step_matches_scipy_integration():
    x0 = 8.0 + np.random.default_rng(1).normal(0, 1, 40)
    m = Lorenz96(n_substeps=10)
    x = torch.as_tensor(x0)
    for _ in range(4):
        x = m.step(x)
    ref = solve_ivp(_rhs_reference, (0, 0.2), x0, rtol=1e-11, atol=1e-11).y[:, -1]
    np.testing.assert_allclose(x.numpy(), ref, atol=2e-5)
    # RK4 is 4th order: halving the sub-step cuts the error of one 0.05 step ~16-fold
    ref1 = solve_ivp(_rhs_reference, (0, 0.05), x0, rtol=1e-12, atol=1e-12).y[:, -1]
    e1 = np.abs(Lorenz96().step(torch.as_tensor(x0)).numpy() - ref1).max()
    e2 = np.abs(Lorenz96(n_substeps=2).step(torch.as_tensor(x0)).numpy() - ref1).max()
    assert e1 < 5e-3 and 12 < e1 / e2 < 40


def test_forecast_model_contract_and_chaos():
    m = lorenz96_model()
    assert m.channels == (("x", None),) and m.grid_shape == (1, 40)
    x = 8.0 + torch.randn(3, 2, 1, 1, 40, dtype=torch.float64)
    y = m(x)
    assert y.shape == (3, 1, 1, 40) and y.dtype == torch.float64
    torch.testing.assert_close(y, m.net.step(x[:, 1]))
    # the previous state is ignored (first-order system)
    x2 = x.clone()
    x2[:, 0] = 0.0
    torch.testing.assert_close(m(x2), y)
    with pytest.raises(ValueError):
        lorenz96_model(n_variables=3)


def test_twin_experiment_beats_observations_and_background():
    cfg = Lorenz96TwinConfig(n_cycles=60, burn_in=20, n_members=40, seed=1)
    out = lorenz96_twin(config=cfg, progress=False)
    # with every variable observed (error 1) the analysis must beat the observations
    assert out.attrs["mean_analysis_rmse"] < 0.8
    assert out.attrs["mean_analysis_rmse"] < out.attrs["mean_background_rmse"]
    assert np.isfinite(out["analysis_rmse"]).all()


def test_twin_takes_one_config_and_the_old_keywords_still_work():
    """Issue 19 item 3: the experiment's settings are one Lorenz96TwinConfig (saved in attrs)."""
    import json

    import xarray as xr

    cfg = Lorenz96TwinConfig(n_cycles=4, burn_in=1, n_members=10, seed=2)
    new = lorenz96_twin(config=cfg, progress=False)
    assert Lorenz96TwinConfig.from_dict(json.loads(new.attrs["config"])) == cfg
    with pytest.warns(DeprecationWarning, match=r"pass config=Lorenz96TwinConfig\(n_cycles="):
        old = lorenz96_twin(n_cycles=4, burn_in=1, n_members=10, seed=2, progress=False)
    xr.testing.assert_identical(old.drop_attrs(), new.drop_attrs())
    with pytest.raises(ValueError, match="Lorenz96TwinConfig.n_slots must be an integer >= 1"):
        Lorenz96TwinConfig(n_slots=0)
    with pytest.raises(ValueError, match="unknown Lorenz96TwinConfig option"):
        lorenz96_twin(config={"cycles": 4})
    with pytest.raises(TypeError, match="unexpected keyword"):
        lorenz96_twin(cycles=4)
