"""Background-error statistics and the B-variance calibration (``spread=``) of En4DVar."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from xfuxi.assimilation.calibration import (
    background_error_std,
    channel_values,
    forecast_error_samples,
    spread_values,
    wind_pairs,
)
from xfuxi.assimilation.config import BackgroundError, Minimiser, QualityControl
from xfuxi.assimilation.en4dvar import ObsSlot, en4dvar_analysis
from xfuxi.assimilation.members import background_anomalies
from xfuxi.models.base import ForecastModel
from xfuxi.models.lorenz96 import lorenz96_model
from xfuxi.observations.operator import build_operator

LAT = np.array([-50.0, 0.0, 50.0])
LON = np.arange(4) * 90.0
CHANNELS = [
    ("u_component_of_wind", 500.0),
    ("v_component_of_wind", 500.0),
    ("temperature", 500.0),
]
F64 = torch.float64


class Shift(torch.nn.Module):
    """Deterministic toy dynamics: roll east by one point and damp slightly."""

    def forward(self, x):
        return 0.9 * torch.roll(x[:, 1], 1, dims=-1) + 0.1 * x[:, 0]


def _model():
    return ForecastModel(
        Shift(), channels=CHANNELS, latitude=LAT, longitude=LON, residual=False, name="shift"
    )


def _states(n_times=12, seed=0):
    rng = np.random.default_rng(seed)
    t = pd.date_range("2000-01-01", periods=n_times, freq="6h")
    data = {
        "u_component_of_wind": rng.normal(0, 3.0, (n_times, 1, 3, 4)),
        "v_component_of_wind": rng.normal(0, 1.0, (n_times, 1, 3, 4)),
        "temperature": 250 + rng.normal(0, 2.0, (n_times, 1, 3, 4)),
    }
    dims = ("time", "level", "latitude", "longitude")
    return xr.Dataset(
        {k: (dims, v) for k, v in data.items()},
        coords={"time": t, "level": [500.0], "latitude": LAT, "longitude": LON},
    )


def test_background_error_std_matches_direct_computation():
    model = _model()
    ds = _states()
    before = ds.copy(deep=True)
    out = background_error_std(ds, model=model, lead_steps=2, n_samples=100)
    xr.testing.assert_identical(ds, before)
    assert out.attrs["n_samples"] == 12 - 2 - 1  # every start with a verifying state
    # by hand: run the toy model twice from each (t-1, t) and compare with t+2
    arr = np.stack([ds[v].values[:, 0] for v, _ in CHANNELS], axis=1)  # (T, C, H, W)
    sq = []
    for i in range(1, 12 - 2):
        a, b = arr[i - 1], arr[i]
        for _ in range(2):
            a, b = b, 0.9 * np.roll(b, 1, axis=-1) + 0.1 * a
        sq.append(((b - arr[i + 2]) ** 2).mean(axis=(-2, -1)))
    expected = np.sqrt(np.mean(sq, axis=0))
    got = [float(out[v].sel(level=500.0)) for v, _ in CHANNELS]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # plugs straight into channel_values
    np.testing.assert_allclose(channel_values(out, CHANNELS, name="spread"), expected, rtol=1e-5)
    # by latitude: the RMS over samples and longitude only, per row
    rows = background_error_std(ds, model=model, lead_steps=2, n_samples=100, by_latitude=True)
    assert rows["temperature"].dims == ("level", "latitude")
    sq_rows = []
    for i in range(1, 12 - 2):
        a, b = arr[i - 1], arr[i]
        for _ in range(2):
            a, b = b, 0.9 * np.roll(b, 1, axis=-1) + 0.1 * a
        sq_rows.append(((b - arr[i + 2]) ** 2).mean(axis=-1))
    by_row = np.sqrt(np.mean(sq_rows, axis=0))  # (C, H)
    assert not np.allclose(by_row, by_row.mean(axis=1, keepdims=True))  # rows do differ
    got_rows = spread_values(rows, CHANNELS, LAT)
    np.testing.assert_allclose(got_rows, by_row, rtol=1e-5)
    np.testing.assert_allclose(np.sqrt((got_rows**2).mean(axis=1)), expected, rtol=1e-5)


def test_spread_values_by_latitude():
    rows = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    ds = xr.Dataset(
        {
            "u_component_of_wind": (("level", "latitude"), rows[:1, ::-1]),
            "v_component_of_wind": (("level", "latitude"), rows[1:2, ::-1]),
            "temperature": ("level", [0.5]),  # no latitude: the same on every row
        },
        coords={"level": [500.0], "latitude": LAT[::-1]},  # north to south: reordered
    )
    np.testing.assert_allclose(
        spread_values(ds, CHANNELS, LAT), [rows[0], rows[1], [0.5, 0.5, 0.5]]
    )
    np.testing.assert_allclose(spread_values(rows, CHANNELS, LAT), rows)
    np.testing.assert_allclose(spread_values([1.0, 2.0, 3.0], CHANNELS, LAT), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="latitudes .* are not the model's"):
        spread_values(ds.assign_coords(latitude=[60.0, 0.0, -50.0]), CHANNELS, LAT)
    with pytest.raises(ValueError, match="positive and finite.*v_component_of_wind@500"):
        spread_values(ds.assign(v_component_of_wind=-ds["v_component_of_wind"]), CHANNELS, LAT)
    with pytest.raises(ValueError, match="along latitude only"):
        spread_values(ds.assign(temperature=ds["u_component_of_wind"].expand_dims(x=2)),
                      CHANNELS, LAT)  # fmt: skip
    with pytest.raises(ValueError, match="broadcast"):
        spread_values(np.ones((3, 4)), CHANNELS, LAT)


def test_background_error_std_rejects_bad_input():
    model = _model()
    with pytest.raises(ValueError, match="lead_steps"):
        background_error_std(_states(), model=model, lead_steps=0)
    with pytest.raises(ValueError, match="at least"):
        background_error_std(_states(n_times=3), model=model, lead_steps=2)
    irregular = _states().isel(time=[0, 1, 2, 4, 5, 6, 7])
    with pytest.raises(ValueError, match="regular"):
        background_error_std(irregular, model=model, lead_steps=2)


def test_forecast_error_samples_are_the_forecast_minus_state_differences():
    model = _model()
    ds = _states()
    before = ds.copy(deep=True)
    out = forecast_error_samples(ds, model=model, lead_steps=2, n_samples=5, seed=3)
    xr.testing.assert_identical(ds, before)
    assert out.sizes["sample"] == 5 and out.attrs["lead_steps"] == 2
    assert out["temperature"].dims == ("sample", "level", "latitude", "longitude")
    arr = np.stack([ds[v].values[:, 0] for v, _ in CHANNELS], axis=1)  # (T, C, H, W)
    times = pd.DatetimeIndex(ds["time"].values)
    for k, start in enumerate(pd.DatetimeIndex(out["start_time"].values)):
        i = times.get_loc(start)
        a, b = arr[i - 1], arr[i]
        for _ in range(2):
            a, b = b, 0.9 * np.roll(b, 1, axis=-1) + 0.1 * a
        for c, (v, _) in enumerate(CHANNELS):
            np.testing.assert_allclose(
                out[v].isel(sample=k, level=0).values,
                b[c] - arr[i + 2, c],
                rtol=0,
                atol=1e-5 * np.abs(arr).max(),  # the model runs in float32
            )
    # the same forecasts as background_error_std: their RMS is its std
    std = background_error_std(ds, model=model, lead_steps=2, n_samples=5, seed=3)
    for v, _ in CHANNELS:
        rms = float(np.sqrt((out[v].values.astype("float64") ** 2).mean()))
        assert rms == pytest.approx(float(std[v].sel(level=500.0)), rel=1e-5)
    with pytest.raises(ValueError, match="n_samples"):
        forecast_error_samples(ds, model=model, n_samples=0)


def test_hybrid_b_single_observation_gives_the_hybrid_covariance_column():
    """x_a − x_b = B h d / (hᵀ B h + σo²) with B = (1 − β) B_ens + β B_static."""
    model = _model()
    g = torch.Generator().manual_seed(0)
    c, h, w = len(CHANNELS), LAT.size, LON.size
    xb = torch.randn(c, h, w, generator=g, dtype=F64)
    members = xb + 0.5 * torch.randn(6, c, h, w, generator=g, dtype=F64)
    static = torch.randn(9, c, h, w, generator=g, dtype=F64)
    op, _ = build_operator(
        CHANNELS, LAT, LON, obs_variable=["temperature"], obs_latitude=[20.0],
        obs_longitude=[100.0], obs_level=[500.0],
    )  # fmt: skip
    innovation, err = 0.7, 0.3
    value = op(xb) + innovation
    hvec = op.matrix()[0]

    def anoms(x):
        x = x.reshape(x.shape[0], -1).numpy()
        return (x - x.mean(0)).T / np.sqrt(x.shape[0] - 1)

    xe, xs = anoms(members), anoms(static)
    for beta in (0.3, 1.0):
        bmat = beta * xs @ xs.T + (1 - beta) * xe @ xe.T
        expected = bmat @ hvec * innovation / (hvec @ bmat @ hvec + err**2)
        background = torch.stack([xb, xb, xb])
        opts = BackgroundError(perturbation_std=(1.0,) * c, hybrid_weight=beta)
        res = en4dvar_analysis(
            model, background, [ObsSlot(0, op, value, torch.tensor([err]))],
            anomalies=background_anomalies(model, background, background_error=opts,
                                           members=members, static=static, dtype=F64,
                                           progress=False),
            background_error=opts, quality_control=QualityControl(qc_threshold=None),
            minimiser=Minimiser(gtol=1e-10, max_iter=300), dtype=F64, progress=False,
        )  # fmt: skip
        np.testing.assert_allclose(res.increment.numpy().ravel(), expected, atol=1e-8)
        assert res.control.numel() == (9 if beta == 1.0 else 15)
    slot = [ObsSlot(0, op, value, torch.tensor([err]))]
    opts = BackgroundError(perturbation_std=(1.0,) * c)

    def analysis(background_error, static):
        background = torch.stack([xb] * 3)
        anomalies = background_anomalies(
            model,
            background,
            background_error=background_error,
            members=members,
            static=static,
            progress=False,
        )
        return en4dvar_analysis(
            model,
            background,
            slot,
            anomalies=anomalies,
            background_error=background_error,
            progress=False,
        )

    with pytest.raises(ValueError, match="hybrid_weight"):
        analysis(opts.replace(hybrid_weight=0), static)
    with pytest.raises(ValueError, match="static samples must be"):
        analysis(opts, static[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        analysis(opts, static * float("nan"))  # fmt: skip


def test_channel_values_errors():
    with pytest.raises(ValueError, match="positive and finite.*temperature@500"):
        channel_values([1.0, 1.0, 0.0], CHANNELS, name="spread")
    with pytest.raises(ValueError, match="broadcast"):
        channel_values([1.0, 2.0], CHANNELS, name="spread")
    ds = xr.Dataset({"u_component_of_wind": ("level", [1.0])}, coords={"level": [500.0]})
    with pytest.raises(ValueError, match="no variable 'v_component_of_wind'"):
        channel_values(ds, CHANNELS, name="spread")
    assert wind_pairs(CHANNELS) == [(0, 1)]


def _analysis(spread=None, groups=None):
    model = _model()
    g = torch.Generator().manual_seed(0)
    xb = torch.randn(3, 3, 4, generator=g, dtype=F64)
    members = xb + torch.randn(30, 3, 3, 4, generator=g, dtype=F64) * torch.tensor(
        [1.0, 1.0, 0.5], dtype=F64
    ).view(1, 3, 1, 1)
    op, _ = build_operator(
        CHANNELS, LAT, LON, obs_variable=["temperature"], obs_latitude=[50.0],
        obs_longitude=[90.0], obs_level=[500.0],
    )  # fmt: skip
    y = op(xb) + 1.0
    slot = ObsSlot(0, op, y, torch.full((1,), 0.5, dtype=F64))
    background = torch.stack([xb, xb, xb])
    opts = BackgroundError(perturbation_std=(1.0,) * 3)
    anomalies = background_anomalies(model, background, background_error=opts, members=members,
                                     spread=spread, spread_groups=groups, dtype=F64,
                                     progress=False)  # fmt: skip
    return en4dvar_analysis(
        model, background, [slot], anomalies=anomalies, background_error=opts,
        quality_control=QualityControl(qc_threshold=None),
        minimiser=Minimiser(gtol=1e-10, max_iter=200), dtype=F64, progress=False,
    ), members, xb, op  # fmt: skip


def test_spread_rescales_each_channel_and_keeps_correlations():
    target = np.array([2.0, 0.5, 0.25])
    res, members, xb, op = _analysis(spread=target)
    anom = (members - members.mean(0)) / math.sqrt(members.shape[0] - 1)
    var = anom.pow(2).sum(0).mean(dim=(-2, -1))
    factor = torch.as_tensor(target) / var.sqrt()
    scaled = anom * factor.view(1, -1, 1, 1)
    np.testing.assert_allclose(scaled.pow(2).sum(0).mean(dim=(-2, -1)).sqrt(), target)
    # single observation at t0: increment = B h innovation / (h B h + σo²) with the rescaled B
    xa = scaled.reshape(30, -1).T.numpy()
    bmat = xa @ xa.T
    h = op.matrix()[0]
    innov = 1.0
    expected = bmat @ h * innov / (h @ bmat @ h + 0.25)
    np.testing.assert_allclose(res.increment.numpy().ravel(), expected, atol=1e-7)
    # and it differs from the uncalibrated analysis
    plain, *_ = _analysis()
    assert not torch.allclose(plain.increment, res.increment)


def test_spread_by_latitude_rescales_each_row():
    target = np.array([[2.0, 1.0, 0.5], [0.5, 0.5, 0.5], [0.1, 0.2, 1e-4]])  # (C, H)
    res, members, xb, op = _analysis(spread=target, groups=[(0, 1)])
    anom = (members - members.mean(0)) / math.sqrt(members.shape[0] - 1)
    var = anom.pow(2).sum(0).mean(dim=-1)  # (C, H): over longitude only
    factor = torch.as_tensor(target) / var.sqrt()
    wind = ((torch.as_tensor(target[:2]) ** 2).sum(0) / var[:2].sum(0)).sqrt()  # per row
    factor[0], factor[1] = wind, wind
    scaled = anom * factor.view(1, 3, 3, 1)
    np.testing.assert_allclose(scaled[:, 2].pow(2).sum(0).mean(-1).sqrt(), target[2])
    np.testing.assert_allclose(scaled[:, :2].pow(2).sum(0).sum(0).mean(-1),
                               (target[:2] ** 2).sum(0))  # fmt: skip
    xa = scaled.reshape(30, -1).T.numpy()
    bmat = xa @ xa.T
    h = op.matrix()[0]
    expected = bmat @ h * 1.0 / (h @ bmat @ h + 0.25)
    np.testing.assert_allclose(res.increment.numpy().ravel(), expected, atol=1e-7)
    # the observation is at 50N, where temperature's target is tiny: its increment there is
    # tiny too, while the row-independent calibration to the rows' mean moves it
    assert float(res.increment[2, 2].abs().max()) < 1e-3
    flat, *_ = _analysis(spread=np.sqrt((target**2).mean(axis=1)), groups=[(0, 1)])
    assert float(flat.increment[2, 2].abs().max()) > 0.03
    with pytest.raises(ValueError, match=r"per channel and latitude row \(3, 3\)"):
        _analysis(spread=np.ones((3, 4)))


def test_spread_groups_share_one_factor():
    target = np.array([2.0, 0.5, 0.25])
    res, members, xb, op = _analysis(spread=target, groups=[(0, 1)])
    anom = (members - members.mean(0)) / math.sqrt(members.shape[0] - 1)
    var = anom.pow(2).sum(0).mean(dim=(-2, -1))
    f_wind = math.sqrt((4.0 + 0.25) / float(var[0] + var[1]))
    f_t = 0.25 / float(var[2].sqrt())
    # single t0 observation, no localization: increment = B h k with the rescaled B
    hx = anom.reshape(30, -1) @ torch.as_tensor(op.matrix()[0])  # (N,) obs-space anomalies
    cov = torch.einsum("n,nchw->chw", hx, anom)  # unscaled cov of each point with H x
    inc = res.increment
    k = float(inc[2, 0, 0] / (f_t * f_t * cov[2, 0, 0]))
    np.testing.assert_allclose(inc[0].numpy(), (k * f_wind * f_t * cov[0]).numpy(), rtol=1e-6)
    np.testing.assert_allclose(inc[1].numpy(), (k * f_wind * f_t * cov[1]).numpy(), rtol=1e-6)
    # without the group u and v get their own factors: the wind direction changes
    alone, *_ = _analysis(spread=target)
    assert not np.allclose((alone.increment[0] / alone.increment[1]).numpy(),
                           (inc[0] / inc[1]).numpy(), rtol=1e-3)  # fmt: skip
    with pytest.raises(ValueError, match="one value per channel"):
        _analysis(spread=np.array([1.0, 2.0]))


def _l96_background():
    """An 8-variable Lorenz-96 model and a background at three 6-hourly times."""
    m = lorenz96_model(n_variables=8)
    t = pd.date_range("2000-01-01", periods=3, freq="6h")
    bg = xr.Dataset(
        {"x": (("time", "latitude", "longitude"), 8.0 + np.sin(np.arange(24.0)).reshape(3, 1, 8))},
        coords={"time": t, "latitude": [0.0], "longitude": m.longitude},
    )
    return m, t, bg


def test_assimilate_4dvar_accepts_spread_dataset():
    m, t, bg = _l96_background()
    obs = xfuxi.make_observations(
        [9.0], error=0.5, time=t[-1], latitude=0.0, longitude=m.longitude[2], variable="x"
    )
    kw = dict(model=m, background_error=BackgroundError(n_members=10, amplitude=0.5, wavelength=1),
              localization=None, progress=False)  # fmt: skip
    small = xfuxi.assimilate_4dvar(
        bg, obs, error_data=xfuxi.BackgroundErrorData(spread=xr.Dataset({"x": 0.1})), **kw
    )
    large = xfuxi.assimilate_4dvar(
        bg, obs, error_data=xfuxi.BackgroundErrorData(spread=[2.0]), **kw
    )
    d_small = float(abs(small.increment["x"]).max())
    d_large = float(abs(large.increment["x"]).max())
    assert d_small < 0.1 < d_large  # a small B barely moves the analysis
    with pytest.raises(ValueError, match="spread must be positive"):
        xfuxi.assimilate_4dvar(bg, obs, error_data=xfuxi.BackgroundErrorData(spread=[-1.0]), **kw)


def test_cli_assimilate_writes_outputs(tmp_path, capsys):
    from tests.tiny import dataset as _dataset
    from tests.tiny import fuxi_checkpoint as _tiny_fuxi_checkpoint
    from xfuxi.cli import main

    model_dir, model = _tiny_fuxi_checkpoint(tmp_path)
    bg = _dataset(3)
    bg.to_netcdf(tmp_path / "bg.nc")
    t0 = bg["time"].values[-1]
    t850 = float(bg["temperature"].sel(time=t0, level=850.0).interp(latitude=30.0, longitude=45.0))
    obs = xfuxi.make_observations(
        [t850 + 2.0, np.nan], error=1.0, time=t0, latitude=30.0, longitude=45.0,
        variable="temperature", level=850.0,
    )  # fmt: skip
    obs.to_netcdf(tmp_path / "obs.nc")
    spread = background_error_std(_dataset(8, seed=4), model=model, lead_steps=1)
    spread.to_netcdf(tmp_path / "spread.nc")
    out = tmp_path / "an"
    args = ["--no-progress", "assimilate", str(tmp_path / "bg.nc"), str(tmp_path / "obs.nc"),
            "--model", str(model_dir), "-n", "8", "--localization", "3000", "--spread",
            str(tmp_path / "spread.nc"), "--output", str(out)]  # fmt: skip
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".xfuxi-output.json", "analysis.nc", "diagnostics.nc", "increment.nc", "trajectory.nc"
    ]  # fmt: skip
    an = xr.open_dataset(out / "analysis.nc")
    inc = xr.open_dataset(out / "increment.nc")
    xr.testing.assert_allclose(an - bg.sel(time=[t0]), inc, atol=1e-4)
    assert float(abs(inc["temperature"]).max()) > 0
    text = capsys.readouterr().out
    assert "observations used 1" in text and "'nan_value': 1" in text
    assert not any(p.name.startswith(".xfuxi-assimilate-") for p in tmp_path.iterdir())
    # hybrid B from a file of forecast-error samples
    samples = forecast_error_samples(_dataset(8, seed=4), model=model, lead_steps=1, n_samples=4)
    samples.to_netcdf(tmp_path / "static.nc")
    assert main([*args[:-1], str(tmp_path / "hyb"), "--static-b", str(tmp_path / "static.nc"),
                 "--hybrid-weight", "0.7"]) == 0  # fmt: skip
    diag = xr.open_dataset(tmp_path / "hyb" / "diagnostics.nc")
    assert diag.attrs["background_error"].startswith("hybrid: 0.3 ensemble + 0.7 static")
    # vertical and cross-variable localization: the observation is t850; t500 lies
    # ln(850/500) = 0.53 away (Gaspari-Cohn half-width 0.3: correlation < 0.01) and the tracer
    # is another variable (factor 0.2), so their increments shrink while t850's stays
    assert main([*args[:-1], str(tmp_path / "vert"), "--vertical-localization", "0.3",
                 "--cross-variable", "0.2"]) == 0  # fmt: skip
    vert = xr.open_dataset(tmp_path / "vert" / "increment.nc")
    for name, sel in (("temperature", {"level": 500}), ("passive_tracer", {})):
        a = float(abs(inc[name].sel(sel)).max())
        b = float(abs(vert[name].sel(sel)).max())
        assert 0 < a and b < 0.5 * a, (name, a, b)
    near = float(abs(vert["temperature"].sel(level=850)).max())
    assert near > 0.5 * float(abs(inc["temperature"].sel(level=850)).max())
    # bad arguments are reported, not guessed
    assert main([*args[:-1], str(tmp_path / "an2"), "--localization", "wide"]) == 2
    assert main([*args[:-1], str(tmp_path / "an4"), "--localization", "none",
                 "--vertical-localization", "1"]) == 2  # fmt: skip
    capsys.readouterr()
    assert main([*args[:-1], str(tmp_path / "an3"), "--strict"]) == 1  # one line on stderr
    assert "strict" in capsys.readouterr().err


def test_innovation_spread_recovers_background_error():
    from xfuxi.assimilation.calibration import innovation_spread

    rng = np.random.default_rng(0)
    lat = np.linspace(-80, 80, 9)
    lon = np.arange(18) * 20.0
    chans = [("temperature", 500.0), ("geopotential", 500.0), ("surface_pressure", None)]
    n = 4000
    olat, olon = rng.uniform(-80, 80, n), rng.uniform(0, 340, n)
    var = np.array(["temperature"] * 2000 + ["geopotential"] * 1995 + ["surface_pressure"] * 5)
    lev = np.where(var == "surface_pressure", np.nan, 500.0)
    op, why = build_operator(chans, lat, lon, obs_variable=var, obs_latitude=olat,
                             obs_longitude=olon, obs_level=lev)  # fmt: skip
    assert (why == "").all()
    background = torch.zeros(3, 9, 18, dtype=F64)
    sigma_b = {"temperature": 2.0, "geopotential": 50.0, "surface_pressure": 1.0}
    sigma_o = {"temperature": 1.0, "geopotential": 30.0, "surface_pressure": 1.0}
    sb = np.array([sigma_b[v] for v in var])
    so = np.array([sigma_o[v] for v in var])
    value = sb * rng.normal(size=n) + so * rng.normal(size=n)  # truth - background + noise
    slot = np.zeros(n, dtype=int)
    slot[:100] = 1  # slot-1 observations are not used
    value[:100] = 1e6
    used = xr.Dataset(
        {"value": ("obs", value), "error": ("obs", so), "slot": ("obs", slot),
         "variable": ("obs", var), "level": ("obs", lev)}
    )  # fmt: skip
    out = innovation_spread(used, op, background, chans)
    np.testing.assert_allclose(out[:2], [2.0, 50.0], rtol=0.05)
    assert np.isnan(out[2])  # 5 observations: too few, the ensemble's spread is kept
    # a background better than the observation errors say: floored, never imaginary
    used2 = used.assign(value=0.1 * used["value"].where(used["slot"] == 0, 0.0))
    low = innovation_spread(used2, op, background, chans)
    np.testing.assert_allclose(low[:2], np.sqrt(0.1) * np.array([1.0, 30.0]), rtol=1e-9)


def test_assimilate_4dvar_adaptive_spread_option():
    m, t, bg = _l96_background()
    lons = np.tile(m.longitude, 2)
    truth_minus_bg = np.random.default_rng(1).normal(0, 3.0, lons.size)
    obs = xfuxi.make_observations(
        np.tile(bg["x"].isel(time=-1, latitude=0).values, 2) + truth_minus_bg,
        error=0.5, time=t[-1], latitude=0.0, longitude=lons, variable="x",
    )  # fmt: skip
    kw = dict(model=m, background_error=BackgroundError(n_members=10, amplitude=0.01, wavelength=1,
                                                        perturbation_std=(1.0,)),
              localization=None, progress=False,
              quality_control=QualityControl(qc_threshold=None))  # fmt: skip
    tiny = xfuxi.assimilate_4dvar(bg, obs, **kw)  # the ensemble's spread is tiny: no update
    adaptive = xfuxi.assimilate_4dvar(
        bg, obs, error_data=xfuxi.BackgroundErrorData(spread="innovations"), **kw
    )
    assert float(abs(adaptive.increment["x"]).max()) > 10 * float(abs(tiny.increment["x"]).max())
    with pytest.raises(ValueError, match="'innovations'"):
        xfuxi.assimilate_4dvar(
            bg, obs, error_data=xfuxi.BackgroundErrorData(spread="adaptive"), **kw
        )


@pytest.mark.parametrize("dim", ["member", "number", "realization"])
def test_forecast_error_statistics_refuse_an_ensemble_naming_its_dim(dim):
    # xarray's raw transpose error before ("must be a permuted list of ...")
    from xfuxi.data.schema import SchemaError

    model = _model()
    ens = _states().expand_dims({dim: 2})
    for stat in (background_error_std, forecast_error_samples):
        with pytest.raises(
            SchemaError,
            match=rf"the data have an ensemble dim '{dim}' "
            rf"\(2 members\).*isel\({dim}=0\)",
        ):
            stat(ens, model=model, lead_steps=1, n_samples=2)
    # a variable the model does not read may have other dims
    extra = _states().assign(flag=ens["temperature"])
    xr.testing.assert_identical(
        background_error_std(extra, model=model, lead_steps=1),
        background_error_std(_states(), model=model, lead_steps=1),
    )
