"""Scores on inputs a user meets: one lead selected, a climatology or threshold on time,
integer data and coordinates, missing thresholds and spreads, observations grouped by two
coordinates. Each was scored wrongly or refused before (each test fails on that code)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi.verify as V

LAT = np.linspace(-75.0, 75.0, 6)
LON = np.arange(8) * 45.0
DIMS = ["time", "latitude", "longitude"]


def wb2_pair(seed=0, nt=3, nlead=2, ens=None):
    """A WeatherBench2-layout forecast (init ``time`` × ``prediction_timedelta``) and a
    truth on valid times that covers them."""
    rng = np.random.default_rng(seed)
    init = pd.date_range("2020-01-01", periods=nt, freq="12h")
    lead = pd.to_timedelta(np.arange(nlead) * 12, "h")
    valid = pd.date_range("2020-01-01", periods=nt + nlead + 2, freq="12h")
    dims = ["time", "prediction_timedelta", "latitude", "longitude"]
    shape = [nt, nlead, LAT.size, LON.size]
    coords = {"time": init, "prediction_timedelta": lead, "latitude": LAT, "longitude": LON}
    if ens:
        dims, shape = ["number", *dims], [ens, *shape]
    fc = xr.DataArray(rng.standard_normal(shape), dims=dims, coords=coords, name="t")
    coords = {"time": valid, "latitude": LAT, "longitude": LON}
    truth = xr.DataArray(rng.standard_normal((valid.size, LAT.size, LON.size)), dims=DIMS,
                         coords=coords, name="t")  # fmt: skip
    return fc, truth


def test_one_lead_selected_is_scored_at_its_valid_time():
    fc, truth = wb2_pair()
    per_lead = V.rmse(fc, truth, dim=DIMS)
    one = fc.sel(prediction_timedelta="12h")  # the lead becomes a scalar coordinate
    assert float(V.rmse(one, truth, dim=DIMS)) == pytest.approx(float(per_lead[1]), rel=1e-12)
    assert float(V.mae(one.isel(time=0), truth, dim=["latitude", "longitude"])) == pytest.approx(
        float(V.mae(fc.isel(time=0), truth, dim=["latitude", "longitude"])[1]), rel=1e-12
    )
    # the truth must hold the valid times (it held the initial ones: no error before)
    with pytest.raises(ValueError, match="truth lacks 1 valid time"):
        V.rmse(one, truth.isel(time=slice(0, 3)), dim=DIMS)
    # ensembles too
    ens, truth = wb2_pair(ens=4)
    assert float(V.crps(ens.sel(prediction_timedelta="12h"), truth, dim=DIMS)) == pytest.approx(
        float(V.crps(ens, truth, dim=DIMS)[1]), rel=1e-12
    )
    # two forecasts at the same lead are compared as they are
    assert float(V.rmse(one, one, dim=DIMS)) == 0.0
    # so is a truth with a lead dim of its own, even without values on it
    plain = fc.drop_vars("prediction_timedelta")
    assert float(V.rmse(plain, plain * 0, dim=DIMS)[1]) == pytest.approx(
        float(np.sqrt((fc.isel(prediction_timedelta=1) ** 2).weighted(
            V.area_weights(fc.latitude)).mean(["latitude", "longitude"]).mean("time")))
    )  # fmt: skip


def test_a_climatology_or_threshold_on_time_is_taken_at_the_valid_time():
    fc, truth = wb2_pair()
    rng = np.random.default_rng(3)
    clim = truth.copy(data=rng.standard_normal(truth.shape))  # on valid times, as the truth
    got = V.acc(fc, truth, clim, dim=DIMS)
    # by hand: anomalies of forecast and truth against the climatology at the valid time
    at_valid = V.align_valid_time(fc, clim).drop_vars("valid_time")
    f_anom = fc - at_valid
    t_anom = V.align_valid_time(fc, truth).drop_vars("valid_time") - at_valid
    w = V.area_weights(fc.latitude)

    def wm(x):
        return x.weighted(w).mean(["latitude", "longitude"])

    ref = (wm(f_anom * t_anom) / np.sqrt(wm(f_anom**2) * wm(t_anom**2))).mean("time")
    np.testing.assert_allclose(got.values, ref.values, rtol=1e-12)
    assert float(V.acc(fc.sel(prediction_timedelta="12h"), truth, clim, dim=DIMS)) == (
        pytest.approx(float(ref[1]), rel=1e-12)
    )
    # a Brier threshold that varies in time
    ens, truth = wb2_pair(ens=5)
    thr = truth * 0 + np.arange(truth.sizes["time"])[:, None, None] * 0.1
    got = V.brier_score(ens, truth, threshold=thr, dim=[])
    thr_valid = V.align_valid_time(ens, thr).drop_vars("valid_time")
    truth_valid = V.align_valid_time(ens, truth).drop_vars("valid_time")
    p = (ens > thr_valid).mean("number")
    ref = (p - (truth_valid > thr_valid)) ** 2
    np.testing.assert_allclose(got.values, ref.transpose(*got.dims).values, rtol=1e-12)


def test_integer_data_and_nearly_equal_integer_coordinates():
    fc, truth = wb2_pair(nlead=1)
    fc, truth = fc.isel(prediction_timedelta=0, drop=True), truth.sel(time=fc.time)
    big = (fc * 100).round().astype("int16")
    small = big * 0 + 300
    ref = V.mse(big.astype(float), small.astype(float), dim=DIMS)
    assert float(V.mse(big, small.astype("int16"), dim=DIMS)) == pytest.approx(float(ref))
    assert float(V.rmse(big, small.astype("int16"), dim=DIMS)) == pytest.approx(np.sqrt(float(ref)))
    u8 = xr.full_like(big, 5, dtype="uint8")
    assert float(V.bias(u8, u8 * 0 + 80, dim=DIMS)) == pytest.approx(-75.0)
    # an integer level against one 1e-7 away: every level is scored, none dropped
    levels = np.array([500, 700, 850])
    f3 = fc.expand_dims(level=levels).copy()
    t3 = truth.expand_dims(level=levels.astype(float) + [0.0, 1e-7, 0.0]).copy()
    t3 = t3 + xr.DataArray([0.0, 1.0, 2.0], dims="level", coords={"level": t3.level})
    got = V.rmse(f3, t3, dim=DIMS)
    assert got.sizes["level"] == 3 and got.level.values.tolist() == [500, 700, 850]
    exact = V.rmse(f3, t3.assign_coords(level=levels), dim=DIMS)
    np.testing.assert_allclose(got.values, exact.values, rtol=1e-12)


def test_missing_thresholds_and_spreads_give_nan():
    f = xr.DataArray([[0.0, 2.0], [0.0, 2.0]], dims=("x", "number"))
    t = xr.DataArray([5.0, 5.0], dims="x")
    thr = xr.DataArray([1.0, np.nan], dims="x")
    got = V.brier_score(f, t, threshold=thr, dim=[])
    assert got.values[0] == pytest.approx(0.25) and np.isnan(got.values[1])
    assert float(V.brier_score(f, t, threshold=thr, dim=["x"], skipna=True)) == 0.25
    mean, std = xr.DataArray([0.0, 1.0], dims="x"), xr.DataArray([np.nan, 0.0], dims="x")
    got = V.gaussian_crps(mean, t, std=std, dim=[])
    assert np.isnan(got.values[0]) and got.values[1] == pytest.approx(4.0)


def test_spread_skill_correction_counts_valid_members():
    rng = np.random.default_rng(0)
    x = xr.DataArray(rng.standard_normal((4000, 10)), dims=("x", "number"))
    y = xr.DataArray(rng.standard_normal(4000), dims="x")
    holey = x.copy()
    holey[:2000, 5:] = np.nan  # five valid members at half the points, ten at the others
    got = float(V.spread_skill_ratio(holey, y, correction=True, skipna=True, weights=None))
    # by hand: each point's variance scaled by (M+1)/M with its own M
    n = holey.count("number")
    var = holey.var("number", ddof=1) * (n + 1) / n
    rmse = np.sqrt(((holey.mean("number") - y) ** 2).mean())
    assert got == pytest.approx(float(np.sqrt(var.mean()) / rmse), rel=1e-12)


def test_innovations_grouped_by_two_coordinates():
    t = pd.date_range("2020-01-01", periods=2, freq="6h")
    state = xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"), np.zeros((2, 2, 3, 4)))},
        coords={"time": t, "level": [500.0, 850.0], "latitude": [-10.0, 0.0, 10.0],
                "longitude": [0.0, 90.0, 180.0, 270.0]},
    )  # fmt: skip
    obs = xr.Dataset(
        {"temperature": ("obs", [1.0, 2.0, 3.0, 5.0])},
        coords={"latitude": ("obs", [0.0, 0.0, 0.0, 0.0]),
                "longitude": ("obs", [90.0, 90.0, 90.0, 90.0]),
                "level": ("obs", [500.0, 500.0, 500.0, 850.0]),
                "time": ("obs", [t[0], t[1], t[1], t[1]])},
    )  # fmt: skip
    s = V.innovation_statistics(obs, state, by=("level", "time"))["temperature"]
    assert s.sizes == {"level": 2, "time": 2, "statistic": 4}
    mean, count = s.sel(statistic="mean"), s.sel(statistic="count")
    assert mean.sel(level=500.0).values.tolist() == [1.0, 2.5]
    assert count.values.tolist() == [[1.0, 2.0], [0.0, 1.0]]
    assert np.isnan(mean.sel(level=850.0, time=t[0]))


def test_weights_over_time_are_refused_with_the_reason():
    fc, truth = wb2_pair(nlead=1)
    fc = fc.isel(prediction_timedelta=0, drop=True)
    w = xr.ones_like(fc.isel(latitude=0, longitude=0, drop=True))
    with pytest.raises(ValueError, match=r"weights vary along \['time'\].*mean over time"):
        V.rmse(fc, truth.sel(time=fc.time), weights=w)


def _field(seed, nt=4):
    rng = np.random.default_rng(seed)
    coords = {"time": pd.date_range("2020-01-01", periods=nt, freq="6h"), "latitude": LAT,
              "longitude": LON}  # fmt: skip
    return xr.DataArray(rng.standard_normal((nt, LAT.size, LON.size)), dims=DIMS,
                        coords=coords, name="t")  # fmt: skip


def test_acc_over_fewer_than_two_points_per_time_is_refused():
    """A correlation of one value is its sign: dim=['time'] gave the mean of ±1 (0.5 where
    the temporal correlation was 0.85), and one grid point gave ±1 per time."""
    truth, fc = _field(1), _field(2)
    clim = xr.zeros_like(truth.isel(time=0, drop=True))
    with pytest.raises(ValueError, match=r"dim=\['time'\] leaves none \(1 point"):
        V.acc(fc, truth, clim, dim=["time"])
    one = {"latitude": [3], "longitude": [2]}
    with pytest.raises(ValueError, match=r"1 point\(s\) per time"):
        V.acc(fc.isel(one), truth.isel(one), clim.isel(one), dim=["latitude", "longitude"])
    two = {"latitude": [3], "longitude": [2, 3]}  # two points correlate
    assert np.isfinite(V.acc(fc.isel(two), truth.isel(two), clim.isel(two))).all()


def test_rank_histogram_over_no_dims_counts():
    """dim=[] returned the booleans of each point's rank, not counts."""
    truth = _field(3)
    ens = xr.concat([_field(4), _field(5)], "number")
    got = V.rank_histogram(ens, truth, dim=[], seed=0)
    assert got.dtype == np.int64 and int(got.sum()) == truth.size
    assert V.rank_histogram(ens, truth, dim="time", seed=0).dtype == np.int64


@pytest.mark.parametrize(
    "score",
    [V.crps, V.spread, V.spread_skill_ratio, V.rank_histogram, V.central_reliability,
     V.energy_score, V.ensemble_mean_rmse],
)  # fmt: skip
def test_an_ensemble_without_members_is_refused(score):
    """crps raised a raw reshape error, rank_histogram counted every point in one bin and
    central_reliability called no members perfectly reliable."""
    truth = _field(6)
    empty = xr.concat([_field(7)], "number").isel(number=slice(0, 0))
    args = (empty,) if score is V.spread else (empty, truth)
    with pytest.raises(ValueError, match=r"no members: its ensemble dimension 'number' is empty"):
        score(*args)
