"""The analyses of a cycle blended with the climatology, band by band (issue 22)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from xfuxi.assimilation.climatology_blend import ClimatologyBlendMethod, fit_climatology_blend
from xfuxi.assimilation.config import LocalizationOptions
from xfuxi.assimilation.cycle import (
    CycleAnalysis,
    CycleConfig,
    CycleMethod,
    LETKFMethod,
    RadiosondeNetwork,
    cycle,
    open_cycle,
)
from xfuxi.assimilation.letkf import LETKFOptions
from xfuxi.models.base import NormStats
from xfuxi.models.spectral import SpectralFilter

LAT = np.linspace(-87.5, 87.5, 36)
LON = np.arange(72) * 5.0


class Grid:
    latitude, longitude = LAT, LON


def _field(seed: int, shape=(2, 36, 72)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _bands(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x`` split into l ≤ 5, 6–20 and the rest."""
    low = SpectralFilter(LAT, LON, 5)(x)
    upto = SpectralFilter(LAT, LON, 20)(x)
    return low, upto - low, x - upto


def test_fit_recovers_the_factor_of_each_band():
    clim = 10 * _field(1)
    t = _field(2, (6, 2, 36, 72))  # the truth's anomalies at six times
    low, mid, high = _bands(t)
    analyses = clim + low + 2.0 * mid + high  # the analysis doubles the middle band
    analyses[:, 1] = clim[1] + 0.5 * t[:, 1]  # and halves every band of channel 1
    beta = fit_climatology_blend(
        analyses, clim + t, clim, latitude=LAT, longitude=LON,
        weights=np.cos(np.deg2rad(LAT)), bands=(5, 20),
    )  # fmt: skip
    np.testing.assert_allclose(beta, [[1.0, 0.5], [2.0, 2.0]], rtol=1e-9)


class Fixed(CycleMethod):
    """An inner method whose analysis is given: a pair and members about it."""

    name = "fixed"

    def __init__(self, pair, members):
        self.pair, self.members = pair, members

    def settings(self):
        return {"method": self.name}

    def analyse(self, state, slots, *, model, generator):
        state = {"pair": self.pair.clone(), "members": self.members.clone()}
        return CycleAnalysis(analysis=self.pair[1].clone(), state=state)


def test_the_blend_shrinks_each_band_of_both_times_and_keeps_the_members_spread():
    clim = 10 * _field(1)
    pair = clim + torch.stack([_field(2), _field(3)])
    members = pair + 0.1 * _field(4, (5, 2, 2, 36, 72))
    inner = Fixed(pair, members)
    method = ClimatologyBlendMethod(inner, climatology=clim, factors=[[1.0, 0.0], [0.5, 0.5]],
                                    bands=(5, 20))  # fmt: skip
    res = method.analyse({}, [], model=Grid, generator=torch.Generator())
    low, mid, high = _bands(pair - clim)
    expected = clim + low + high  # channel 0: the middle band removed
    expected[:, 1] = clim[1] + 0.5 * (low + mid)[:, 1] + high[:, 1]  # channel 1: both halved
    torch.testing.assert_close(res.state["pair"], expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(res.analysis, expected[1])
    # the members move with their mean: the same perturbations
    torch.testing.assert_close(res.state["members"] - res.state["pair"], members - pair)
    change = res.extra["climatology_blend_change"].values
    w = np.cos(np.deg2rad(LAT))[:, None]
    diff = (expected[1] - pair[1]).numpy()
    np.testing.assert_allclose(
        change, np.sqrt((diff**2 * w).sum(axis=(1, 2)) / (w.sum() * 72)), rtol=1e-6
    )
    # inputs untouched
    assert torch.equal(inner.pair, pair) and torch.equal(inner.members, members)


def test_factors_of_one_leave_the_analysis_as_it_is():
    clim = _field(1)
    pair = torch.stack([_field(2), _field(3)]).float()
    method = ClimatologyBlendMethod(Fixed(pair, pair[None]), climatology=clim,
                                    factors=np.ones((2, 3)))  # fmt: skip
    res = method.analyse({}, [], model=Grid, generator=torch.Generator())
    assert res.state["pair"].dtype == torch.float32
    torch.testing.assert_close(res.state["pair"], pair, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"factors": np.ones((3, 3))}, r"factors must be \(channel, band\) = \(2, 3\)"),
        ({"factors": np.full((2, 3), 2.0)}, r"factors must lie in \[0, 1.5\]"),
        ({"factors": np.full((2, 3), np.nan)}, "factors has NaN"),
        ({"bands": (10, 5)}, "bands must be increasing"),
        ({"climatology": np.ones((36, 72))}, "climatology must be"),
        ({"climatology": None}, "climatology and factors are required"),
    ],
)
def test_bad_settings_are_named(kwargs, match):
    base = {"climatology": np.zeros((2, 36, 72)), "factors": np.ones((2, 3))}
    with pytest.raises((ValueError, TypeError), match=match):
        ClimatologyBlendMethod(CycleMethod(), **{**base, **kwargs})


def test_a_climatology_on_another_grid_is_refused_before_the_first_cycle():
    method = ClimatologyBlendMethod(CycleMethod(), climatology=np.zeros((2, 36, 72)),
                                    factors=np.ones((2, 3)))  # fmt: skip
    with pytest.raises(ValueError, match=r"the climatology is \(2, 36, 72\).*\(2, 8, 16\)"):
        method.start(torch.zeros(3, 2, 8, 16), model=Grid, generator=torch.Generator())


def test_fit_takes_flipped_numpy_views():
    """NumPy views with negative strides (latitudes flipped north to south, with their
    grid and weights) give the factors of the same data in order, not torch's error."""
    rng = np.random.default_rng(0)
    t = rng.normal(size=(3, 2, 36, 72))
    a = t + 0.3 * rng.normal(size=t.shape)
    clim = rng.normal(size=(2, 36, 72))
    w = np.cos(np.deg2rad(LAT))
    kw = dict(longitude=LON, bands=(5, 10))
    beta = fit_climatology_blend(a, t, clim, latitude=LAT, weights=w, **kw)
    flip = (slice(None), slice(None), slice(None, None, -1))
    assert a[flip].strides[2] < 0  # views, not copies
    flipped = fit_climatology_blend(
        a[flip], t[flip], clim[flip[1:]], latitude=LAT[::-1], weights=w[::-1], **kw
    )
    np.testing.assert_allclose(flipped, beta, rtol=1e-10)
    # and a blend method built from flipped views of (channel, lat, lon) arrays
    method = ClimatologyBlendMethod(
        Fixed(torch.zeros(2, 2, 36, 72), torch.zeros(1, 2, 2, 36, 72)),
        climatology=clim[:, ::-1],
        factors=np.ones((2, 2))[::-1],
        bands=(5, 10),
    )
    torch.testing.assert_close(method.climatology, torch.as_tensor(clim[:, ::-1].copy()))


def test_fit_refuses_mismatched_inputs():
    a = np.zeros((3, 2, 36, 72))
    kw = dict(latitude=LAT, longitude=LON, weights=np.ones(36))
    with pytest.raises(ValueError, match="same shape"):
        fit_climatology_blend(a, a[:2], a[0], **kw)
    with pytest.raises(ValueError, match="no anomaly"):
        fit_climatology_blend(a, a, a[0], **kw)


class Last(torch.nn.Module):
    def forward(self, x):
        return x[:, 1]


def test_a_blended_cycle_runs_resumes_and_refuses_other_factors(tmp_path):
    """Through the driver: the analyses are the blended ones, the store keeps the factors,
    and a resumed run with other factors is refused."""
    lat, lon = np.linspace(-78.75, 78.75, 8), np.arange(16) * 22.5
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(0, 1.0, (12, 1, 8, 16)), axis=0)
    truth = xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"), 250.0 + walk)},
        coords={"time": pd.date_range("2000-01-01", periods=12, freq="6h"), "level": [500.0],
                "latitude": lat, "longitude": lon},
    )  # fmt: skip
    stats = NormStats(np.full(1, 250.0), np.ones(1), np.ones(1))
    model = xfuxi.wrap_model(Last(), channels=[("temperature", 500.0)], latitude=lat,
                             longitude=lon, stats=stats)  # fmt: skip

    def method(factor):
        letkf = LETKFMethod(options=LETKFOptions(n_members=6, qc_threshold=None),
                            localization=LocalizationOptions(length_scale=3000.0))  # fmt: skip
        return ClimatologyBlendMethod(letkf, climatology=np.full((1, 8, 16), 250.0),
                                      factors=[[factor, factor]], bands=(2, 6))  # fmt: skip

    def run(factor, n, store):
        return cycle(truth, RadiosondeNetwork(n_sites=10, seed=1), method=method(factor),
                     model=model, config=CycleConfig(n_cycles=n, lead_steps=2), store=store,
                     progress=False)  # fmt: skip

    plain = run(1.0, 3, None).scores
    blended = run(0.5, 3, tmp_path / "b").scores
    assert blended.attrs["method"] == "LETKF + climatology blend"
    assert bool((blended["climatology_blend_change"] > 0).all())
    assert bool((plain["climatology_blend_change"] == 0).all())
    assert not np.allclose(plain["analysis_error"], blended["analysis_error"])
    with pytest.raises(ValueError, match="blend_factors"):
        run(0.6, 4, tmp_path / "b")
    # another climatology of the same sum (rolled) is refused too
    rolled = method(0.5)
    rolled.climatology = torch.roll(rolled.climatology + torch.arange(16.0), 3, dims=-1)
    assert float(rolled.climatology.sum()) == float(method(0.5).climatology.sum()) + 8 * 120
    rolled.climatology -= 8 * 120 / (8 * 16)
    with pytest.raises(ValueError, match="fingerprints.method.climatology"):
        cycle(truth, RadiosondeNetwork(n_sites=10, seed=1), method=rolled, model=model,
              config=CycleConfig(n_cycles=4, lead_steps=2), store=tmp_path / "b",
              progress=False)  # fmt: skip
    run(0.5, 4, tmp_path / "b")  # resumed: one more cycle
    run(0.5, 4, tmp_path / "a")  # in one go
    a, b = open_cycle(tmp_path / "a"), open_cycle(tmp_path / "b")
    for name in ("analysis_state", "analysis_error", "climatology_blend_change"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def _tiny_states(n: int):
    from tests import tiny
    from xfuxi.data.channels import unstack

    model = tiny.fuxi_model()
    rng = np.random.default_rng(0)
    shape = (n, len(model.channels), len(tiny.LAT), len(tiny.LON))
    dims = ("time", "channel", "latitude", "longitude")
    coords = {"latitude": tiny.LAT, "longitude": tiny.LON,
              "time": pd.date_range("2000-01-01", periods=n, freq="6h")}  # fmt: skip
    arr = xr.DataArray(rng.standard_normal(shape), dims=dims, coords=coords)
    return model, unstack(arr, model.channels), arr


def test_climatology_tensor_is_the_time_mean_in_the_models_channels():
    from xfuxi.assimilation.climatology_blend import climatology_tensor

    model, ds, arr = _tiny_states(4)
    clim = climatology_tensor(ds, model)
    np.testing.assert_allclose(clim.numpy(), arr.mean("time").values, rtol=1e-6, atol=1e-6)
    one = climatology_tensor(ds.isel(time=0), model)  # one state: itself
    np.testing.assert_allclose(one.numpy(), arr.isel(time=0).values, rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="must come from a Dataset"):
        climatology_tensor(arr, model)
    with pytest.raises(ValueError):
        climatology_tensor(ds.drop_vars(list(ds.data_vars)[0]), model)


def test_read_blend_factors_checks_the_channels(tmp_path):
    import json

    from xfuxi.assimilation.climatology_blend import read_blend_factors
    from xfuxi.data.channels import channel_name

    model, _, _ = _tiny_states(2)
    names = [channel_name(c) for c in model.channels]
    good = tmp_path / "f.json"
    good.write_text(json.dumps({"channels": names, "bands": [2, 5],
                                "factors": [[0.9, 0.8]] * len(names)}))  # fmt: skip
    factors, bands = read_blend_factors(good, model)
    assert bands == (2, 5) and factors.shape == (len(names), 2)
    other = tmp_path / "o.json"
    other.write_text(json.dumps({"channels": names[::-1], "bands": [2], "factors": []}))
    with pytest.raises(ValueError, match="other channels"):
        read_blend_factors(other, model)
    bad = tmp_path / "b.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a file of blend factors"):
        read_blend_factors(bad, model)


def test_cli_cycle_blend_wraps_the_method(monkeypatch, tmp_path, capsys):
    import json

    import xfuxi.assimilation.cycle as cycle_module
    import xfuxi.cli.assimilate as cli_assimilate
    from xfuxi.assimilation.cycle import CycleRun
    from xfuxi.cli import main
    from xfuxi.data.channels import channel_name

    model, ds, arr = _tiny_states(3)
    names = [channel_name(c) for c in model.channels]
    fit = tmp_path / "f.json"
    fit.write_text(json.dumps({"channels": names, "bands": [1, 3],
                               "factors": [[0.9, 0.7]] * len(names)}))  # fmt: skip
    seen = {}

    def fake_cycle(truth, network, **kwargs):
        seen.update(kwargs)
        return CycleRun(scores=xr.Dataset())

    monkeypatch.setattr(cycle_module, "cycle", fake_cycle)
    monkeypatch.setattr(cli_assimilate, "open_data", lambda path: ds)
    monkeypatch.setattr(cli_assimilate, "load_model", lambda name: model)
    base = ["cycle", "truth.zarr", "--store", str(tmp_path / "s")]
    assert main([*base, "--blend", str(fit), "--climatology", "clim.zarr"]) == 0
    method = seen["method"]
    assert isinstance(method, ClimatologyBlendMethod) and isinstance(method.method, LETKFMethod)
    assert method.bands == (1, 3) and float(method.factors[0, 1]) == 0.7
    np.testing.assert_allclose(method.climatology.numpy(), arr.mean("time").values, atol=1e-6)
    seen.clear()
    assert main([*base, "--blend", str(fit)]) == 2
    assert "--blend and --climatology go together" in capsys.readouterr().err
    fit.write_text(json.dumps({"channels": names, "bands": [1, 3],
                               "factors": [[0.9, 2.0]] * len(names)}))  # fmt: skip
    assert main([*base, "--blend", str(fit), "--climatology", "c.zarr"]) == 2
    assert "--blend: factors must lie in [0, 1.5]" in capsys.readouterr().err
    assert not seen


def _blend_method(**kwargs):
    base = {"climatology": np.zeros((2, 36, 72)), "factors": np.ones((2, 3)) * 0.5}
    return ClimatologyBlendMethod(LETKFMethod(), **{**base, **kwargs})


@pytest.mark.parametrize(
    ("field", "value", "error", "match"),
    [
        (
            "bands",
            (5, 20),
            ValueError,
            r"factors must be \(channel, band\) = \(2, 2\); got \(2, 3\)",
        ),
        ("bands", (5, 20, 30, 35), ValueError, r"factors must be \(channel, band\) = \(2, 4\)"),
        ("bands", (20, 5, 30), ValueError, "bands must be increasing"),
        ("bands", 5, TypeError, "bands must be a sequence of integers"),
        ("factors", np.full((2, 3), 9.0), ValueError, r"factors must lie in \[0, 1.5\]"),
        ("factors", torch.full((2, 3), -1.0), ValueError, r"factors must lie in \[0, 1.5\]"),
        ("factors", np.ones((2, 2)), ValueError, r"factors must be \(channel, band\)"),
        ("factors", None, ValueError, "climatology and factors are required"),
        ("climatology", np.zeros((36, 72)), ValueError, "climatology must be"),
        ("climatology", np.full((2, 36, 72), np.nan), ValueError, "climatology has NaN"),
        ("method", "letkf", TypeError, "method must be a CycleMethod; got str"),
    ],
)
def test_a_field_changed_to_a_bad_value_is_refused_at_use(field, value, error, match):
    # checked at construction only: shortened bands ran with the first factors, decreasing
    # bands and factors of 9 were used, a list of factors gave a raw TypeError
    method = _blend_method()
    setattr(method, field, value)
    with pytest.raises(error, match=match):
        method.blend(_field(0), Grid)
    with pytest.raises(error, match=match):
        method.settings()
    with pytest.raises(error, match=match):
        method.start(torch.zeros(3, 2, 36, 72), model=Grid, generator=torch.Generator())


@pytest.mark.parametrize("kind", ["list", "ndarray", "tensor"])
def test_factors_and_climatology_changed_after_construction_are_used(kind):
    method = _blend_method()
    factors = [[0.25, 1.0, 0.5], [1.5, 0.0, 1.0]]
    climatology = _field(7)
    as_kind = {"list": lambda x: np.asarray(x).tolist(), "ndarray": np.asarray,
               "tensor": lambda x: torch.as_tensor(np.asarray(x))}[kind]  # fmt: skip
    method.factors = as_kind(factors)
    method.climatology = as_kind(climatology)
    fresh = _blend_method(factors=factors, climatology=climatology)
    torch.testing.assert_close(method.blend(_field(1), Grid), fresh.blend(_field(1), Grid),
                               rtol=0, atol=0)  # fmt: skip
    assert method.settings() == fresh.settings()
