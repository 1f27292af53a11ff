"""Inputs that were scored wrongly or with a misleading error. A truth holding the
lead 0 as a scalar coordinate (an analysis from a forecast store), a truth or climatology
holding as one value what the forecast has along a dim, a Gaussian Brier threshold on time,
integer leads, the units of the wind vector RMSE, a lazy Gaussian std check, Gaussian
Brier thresholds per variable, duplicated coordinate values, attributes shared with the
inputs and unknown Brier threshold keys. Each test fails on the code before its fix."""

import dask
import dask.array
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.special import ndtr

import xfuxi.verify as V
from xfuxi.verify.weights import align_valid_time, valid_time

LAT = np.array([-60.0, 0.0, 60.0])
LON = np.array([0.0, 180.0])
LEVELS = [500.0, 850.0]
DIMS = ["time", "latitude", "longitude"]
LEADS = pd.to_timedelta([0, 6, 12], "h")


def truth_series(n=6, seed=0, levels=False):
    """A truth on 6-hourly valid times (with a ``level`` dim when ``levels``)."""
    rng = np.random.default_rng(seed)
    t = pd.date_range("2020-01-01", periods=n, freq="6h")
    dims, coords = ["time", "latitude", "longitude"], {"time": t, "latitude": LAT, "longitude": LON}
    if levels:
        dims.insert(1, "level")
        coords["level"] = LEVELS
    shape = [coords[d].size if hasattr(coords[d], "size") else len(coords[d]) for d in dims]
    return xr.DataArray(rng.standard_normal(shape), dims=dims, coords=coords, name="temperature")


def persistence(truth, n_init=3):
    """Persistence forecasts from the first ``n_init`` times, at ``LEADS``, and the store's
    lead-0 slice over all times (an analysis with a scalar ``prediction_timedelta`` of 0)."""
    store = truth.fuxi.persistence_forecast(leads=[0, 6, 12])
    analysis = store.sel(prediction_timedelta=pd.Timedelta(0))
    return store.isel(time=slice(0, n_init)), analysis, store


# --- 1: a truth with a scalar lead --------------------------------------------------------


def test_truth_with_scalar_lead_zero_is_an_analysis_taken_at_valid_times():
    truth = truth_series()
    fc, analysis, _ = persistence(truth)
    assert analysis["prediction_timedelta"].ndim == 0
    expected = V.rmse(fc, truth, dim=DIMS)
    got = V.rmse(fc, analysis, dim=DIMS)
    np.testing.assert_allclose(got.values, expected.values, rtol=1e-12)
    assert float(got[0]) == 0.0 and (got[1:] > 0.5).all()  # persistence is perfect at lead 0
    # one lead selected, against the analysis: at its valid time too
    one = fc.sel(prediction_timedelta=pd.Timedelta("12h"))
    assert float(V.rmse(one, analysis, dim=DIMS)) == pytest.approx(float(expected[2]), rel=1e-12)
    # the ensemble scores and a threshold on time given as the analysis' lead 0
    rng = np.random.default_rng(1)
    ens = xr.concat([fc + 0.01 * rng.standard_normal(fc.shape) for _ in range(4)], "number")
    np.testing.assert_allclose(
        V.crps(ens, analysis, dim=DIMS).values, V.crps(ens, truth, dim=DIMS).values, rtol=1e-12
    )
    thr = analysis * 0 + 0.3
    plain = thr.drop_vars("prediction_timedelta")
    np.testing.assert_allclose(
        V.brier_score(ens, truth, threshold=thr, dim=DIMS).values,
        V.brier_score(ens, truth, threshold=plain, dim=DIMS).values,
    )
    # inputs are not modified
    assert analysis["prediction_timedelta"].ndim == 0 and "valid_time" not in fc.coords


def test_truth_at_a_nonzero_single_lead_is_refused_against_other_leads():
    truth = truth_series()
    fc, _, store = persistence(truth)
    at6 = store.sel(prediction_timedelta=pd.Timedelta("6h"))
    with pytest.raises(ValueError, match=r"single prediction_timedelta 0 days 06:00:00.*0 days 12"):
        V.rmse(fc, at6, dim=DIMS)
    with pytest.raises(ValueError, match="prediction_timedelta.*0 days 12:00:00.*0 days 06:00:00"):
        V.rmse(fc.sel(prediction_timedelta=pd.Timedelta("12h")), at6, dim=DIMS)
    with pytest.raises(ValueError, match="nonzero lead"):
        align_valid_time(fc, at6)
    # two forecasts at the same single lead are compared as they are
    same = at6.isel(time=slice(0, 3))
    one = fc.sel(prediction_timedelta=pd.Timedelta("6h"))
    assert float(V.rmse(one, same, dim=DIMS)) == 0.0
    assert float(V.rmse(fc.isel(prediction_timedelta=[1]), same, dim=DIMS)[0]) == 0.0


# --- 2: a single value held as a scalar coordinate -----------------------------------------


def test_truth_at_one_level_is_not_broadcast_along_the_forecast_levels():
    truth = truth_series(levels=True)
    fc = truth.isel(time=slice(0, 3)) + 0.1
    with pytest.raises(ValueError, match=r"single level 850\.0.*'level'.*\[500\.0, 850\.0\]"):
        V.rmse(fc, truth.sel(level=850.0), dim=DIMS)
    with pytest.raises(ValueError, match=r"'level' differs.*level=500\.0.*level=850\.0"):
        V.rmse(fc.sel(level=500.0), truth.sel(level=850.0))
    with pytest.raises(ValueError, match=r"single level 850\.0.*\[500\.0\]"):
        V.rmse(fc.sel(level=[500.0]), truth.sel(level=850.0), dim=DIMS)
    # the same single level on both, or the forecast's only level: accepted
    assert float(V.rmse(fc.sel(level=500.0), truth.sel(level=500.0))) == pytest.approx(0.1)
    one = V.rmse(fc.sel(level=[850.0]), truth.sel(level=850.0), dim=DIMS)
    assert one.dims == ("level",) and float(one[0]) == pytest.approx(0.1)
    # a Dataset, and a Gaussian mean/std pair, go through the same check
    with pytest.raises(ValueError, match="single level 850.0"):
        V.rmse(fc.to_dataset(), truth.sel(level=850.0).to_dataset(), dim=DIMS)
    with pytest.raises(ValueError, match="std holds the single level"):
        V.gaussian_crps(fc, truth, std=abs(fc).sel(level=850.0) + 1, dim=DIMS)


def test_climatology_at_one_level_is_checked_before_its_scalars_are_dropped():
    truth = truth_series(levels=True)
    days = pd.date_range("2020-01-01", periods=3, freq="D")
    fc = (truth.isel(time=slice(0, 3)) + 0.1).sel(level=[500.0]).assign_coords(time=days)
    tr = truth.isel(time=slice(0, 3)).sel(level=[500.0]).assign_coords(time=days)
    rng = np.random.default_rng(2)
    coords = {"hour": [0], "level": LEVELS, "latitude": LAT, "longitude": LON}
    clim = xr.DataArray(rng.standard_normal((1, 2, 3, 2)), dims=list(coords), coords=coords)
    with pytest.raises(ValueError, match=r"climatology holds the single level 850\.0"):
        V.acc(fc, tr, clim.sel(level=850.0))
    right = float(V.acc(fc, tr, clim.sel(level=[500.0])))
    assert float(V.acc(fc, tr, clim.sel(level=500.0))) == pytest.approx(right, rel=1e-12)


def test_a_forecast_with_leads_at_one_level_is_checked_against_the_truths_level():
    """With a lead dim the truth was taken at valid times with the forecast's coordinates,
    its own scalar level overwritten: 500 hPa was scored against 850 hPa."""
    truth = truth_series(levels=True)
    fc, _, _ = persistence(truth)
    with pytest.raises(ValueError, match=r"'level' differs.*level=500\.0.*level=850\.0"):
        V.rmse(fc.sel(level=500.0), truth.sel(level=850.0), dim=DIMS)
    with pytest.raises(ValueError, match=r"'level' differs"):
        V.rmse(fc.sel(level=500.0).to_dataset(), truth.sel(level=850.0).to_dataset(), dim=DIMS)
    with pytest.raises(ValueError, match=r"single level 850\.0.*'level'.*\[500\.0, 850\.0\]"):
        V.rmse(fc, truth.sel(level=850.0), dim=DIMS)
    right = V.rmse(fc, truth, dim=DIMS).sel(level=500.0)
    got = V.rmse(fc.sel(level=500.0), truth.sel(level=500.0), dim=DIMS)
    np.testing.assert_allclose(got.values, right.values, rtol=1e-12)
    aligned = align_valid_time(fc.sel(level=500.0), truth.sel(level=850.0))
    assert float(aligned["level"]) == 850.0  # the truth's own coordinate is kept


# --- 3: Gaussian Brier threshold on time ----------------------------------------------------


def test_gaussian_brier_threshold_on_time_is_taken_at_valid_times():
    rng = np.random.default_rng(0)
    t = pd.date_range("2020-01-01", periods=4, freq="6h")
    truth = xr.DataArray(rng.standard_normal(4), dims="time", coords={"time": t})
    mu = xr.DataArray(rng.standard_normal((2, 3)), dims=("time", "prediction_timedelta"),
                      coords={"time": t[:2], "prediction_timedelta": LEADS})  # fmt: skip
    sd = xr.ones_like(mu)
    thr = xr.DataArray([0.0, 0.0, 100.0, 100.0], dims="time", coords={"time": t})
    got = V.gaussian_brier_score(mu, truth, std=sd, threshold=thr, dim="time")
    vt = mu.time + mu.prediction_timedelta
    th_v, y_v = thr.sel(time=vt), truth.sel(time=vt)
    hand = ((1 - ndtr((th_v - mu) / sd) - (y_v > th_v)) ** 2).mean("time")
    np.testing.assert_allclose(got.values, hand.values, rtol=1e-12, atol=1e-15)
    assert float(got[2]) == pytest.approx(0.0, abs=1e-12)  # the threshold of 100 is never met
    # one lead selected: at its valid time too
    one = V.gaussian_brier_score(mu.isel(prediction_timedelta=2), truth,
                                 std=sd.isel(prediction_timedelta=2), threshold=thr,
                                 dim="time")  # fmt: skip
    assert float(one) == pytest.approx(float(hand[2]), abs=1e-12)


def test_gaussian_brier_thresholds_per_variable_like_brier_score():
    """A mapping of thresholds worked by accident of xarray, unchecked, and a partial one
    failed with an obscure error; it is read as brier_score reads it."""
    rng = np.random.default_rng(1)
    t = pd.date_range("2020-01-01", periods=4, freq="6h")
    mu = xr.Dataset({v: ("time", rng.standard_normal(4)) for v in ("a", "b")}, coords={"time": t})
    sd = xr.ones_like(mu)
    truth = mu + 0.5
    both = V.gaussian_brier_score(mu, truth, std=sd, threshold={"a": 0.0, "b": 1.0})
    for v, th in (("a", 0.0), ("b", 1.0)):
        alone = V.gaussian_brier_score(mu[v], truth[v], std=sd[v], threshold=th)
        assert float(both[v]) == pytest.approx(float(alone), rel=1e-12)
    per_time = xr.DataArray([0.0, 0.0, 9.0, 9.0], dims="time", coords={"time": t})
    mixed = V.gaussian_brier_score(mu, truth, std=sd, threshold={"a": per_time, "b": 1.0})
    alone = V.gaussian_brier_score(mu["a"], truth["a"], std=sd["a"], threshold=per_time)
    assert float(mixed["a"]) == pytest.approx(float(alone), rel=1e-12)
    with pytest.raises(ValueError, match=r"no threshold given for variable\(s\) \['b'\]"):
        V.gaussian_brier_score(mu, truth, std=sd, threshold={"a": 0.0})
    with pytest.raises(TypeError, match="mapping of thresholds needs a Dataset"):
        V.gaussian_brier_score(mu["a"], truth["a"], std=sd["a"], threshold={"a": 0.0})
    # a misspelled or extra key was ignored
    with pytest.raises(ValueError, match=r"variable\(s\) \['c'\] that the forecast lacks"):
        V.gaussian_brier_score(mu, truth, std=sd, threshold={"a": 0.0, "b": 1.0, "c": 2.0})


# --- 5: integer leads ---------------------------------------------------------------------


def test_integer_leads_raise_a_clear_error():
    t = pd.date_range("2020-01-01", periods=4, freq="6h")
    truth = xr.DataArray(np.arange(4.0), dims="time", coords={"time": t})
    fc = xr.DataArray(np.zeros((2, 2)), dims=("time", "prediction_timedelta"),
                      coords={"time": t[:2], "prediction_timedelta": [6, 12]})  # fmt: skip
    with pytest.raises(TypeError, match=r"prediction_timedelta has dtype int64.*timedelta64"):
        V.rmse(fc, truth, dim="time")
    with pytest.raises(TypeError, match="int64"):
        valid_time(fc)
    hours = fc.assign_coords(prediction_timedelta=pd.to_timedelta([6, 12], "h"))
    np.testing.assert_allclose(V.rmse(hours, truth, dim="time").values, np.sqrt([2.5, 6.5]))
    with pytest.raises(ValueError, match="without coordinate values"):
        valid_time(fc.drop_vars("prediction_timedelta"))


# --- 6: wind vector RMSE attributes ---------------------------------------------------------


def test_wind_vector_rmse_keep_attrs_keeps_the_wind_units():
    units = "m s**-1"
    ds = xr.Dataset(
        {"u_component_of_wind": ("x", [3.0], {"units": units, "long_name": "eastward wind"}),
         "v_component_of_wind": ("x", [4.0], {"units": units, "long_name": "northward wind"})},
        attrs={"title": "t"},
    )  # fmt: skip
    out = V.wind_vector_rmse(ds, ds * 0, keep_attrs=True)
    assert float(out) == 5.0
    assert out.attrs["units"] == units and out.attrs["title"] == "t"
    assert out.attrs["metric"] == "wind_vector_rmse"
    assert "long_name" not in out.attrs  # each component's own name is not the vector's
    # without keep_attrs the score still has its units, but not the Dataset's title
    plain = V.wind_vector_rmse(ds, ds * 0).attrs
    assert plain["units"] == units and "title" not in plain and "long_name" not in plain
    assert ds.u_component_of_wind.attrs["long_name"] == "eastward wind"  # not mutated


# --- 7: a dask std stays lazy ---------------------------------------------------------------


def test_gaussian_scores_check_a_dask_std_lazily():
    truth = truth_series(n=4).chunk({"time": 2})
    mean = truth + 0.1
    std = abs(mean) + 0.1
    calls = {"n": 0}

    def counting(dsk, keys, **kw):
        calls["n"] += 1
        return dask.get(dsk, keys, **kw)

    with dask.config.set(scheduler=counting):
        lazy = {
            "crps": V.gaussian_crps(mean, truth, std=std),
            "brier": V.gaussian_brier_score(mean, truth, std=std, threshold=0.0),
            "ign": V.gaussian_ignorance(mean, truth, std=std),
            "var": V.gaussian_variance(mean.to_dataset(), std=std.to_dataset()),
        }
    assert calls["n"] == 0
    assert all(
        isinstance((r if isinstance(r, xr.DataArray) else r["temperature"]).data, dask.array.Array)
        for r in lazy.values()
    )
    eager = V.gaussian_crps(mean.compute(), truth.compute(), std=std.compute())
    assert float(lazy["crps"].compute()) == pytest.approx(float(eager), rel=1e-12)
    # a negative std raises when the score is computed (NumPy data: at once)
    bad = std.where(std.time != std.time[-1], -1.0)  # negative in the last chunk only
    score = V.gaussian_crps(mean, truth, std=bad)
    with pytest.raises(ValueError, match="std holds negative values"):
        score.compute()
    with pytest.raises(ValueError, match="variable 'temperature'.*negative"):
        V.gaussian_crps(mean.to_dataset(), truth.to_dataset(), std=bad.to_dataset()).compute()
    with pytest.raises(ValueError, match="std holds negative values"):
        V.gaussian_crps(mean.compute(), truth.compute(), std=bad.compute())


# --- 8: duplicated coordinate values --------------------------------------------------------


def _members(fc, n=3, seed=0):
    """An ensemble of ``n`` members around ``fc`` on a ``number`` dim."""
    noise = np.random.default_rng(seed).standard_normal((n, *fc.shape))
    return (fc + xr.DataArray(noise, dims=("number", *fc.dims))).transpose(..., "number")


def test_duplicated_coordinate_values_are_refused_naming_them():
    """A forecast holding an initial time twice was scored with it twice, silently, and a
    truth holding a time twice failed with pandas' InvalidIndexError; both, and a lead or a
    grid point held twice, are refused with the coordinate and the values."""
    truth = truth_series(n=8)
    fc, _, _ = persistence(truth, n_init=4)
    twice_init = xr.concat([fc, fc.isel(time=[1])], "time")
    init = str(pd.Timestamp(fc.time.values[1]))
    msg = rf"coordinate 'time' of the forecast has duplicated values: \['{init}'\]"
    for score in (V.rmse, V.mae, V.bias, V.mse):
        with pytest.raises(ValueError, match=msg):
            score(twice_init, truth)
    with pytest.raises(ValueError, match=msg):
        V.acc(twice_init, truth, truth.mean("time"))
    with pytest.raises(ValueError, match=msg):
        V.crps(_members(twice_init), truth)
    with pytest.raises(ValueError, match=msg):
        V.brier_score(_members(twice_init), truth, threshold=0.0)
    with pytest.raises(ValueError, match=msg):
        align_valid_time(twice_init, truth)
    # a truth holding a time twice: its value there is ambiguous
    twice_valid = xr.concat([truth, truth.isel(time=[2]) + 100.0], "time")
    valid = str(pd.Timestamp(truth.time.values[2]))
    msg = rf"coordinate 'time' of the truth has duplicated values: \['{valid}'\]"
    for call in (lambda: V.rmse(fc, twice_valid), lambda: align_valid_time(fc, twice_valid),
                 lambda: V.crps(_members(fc), twice_valid),
                 lambda: V.rmse(truth, twice_valid)):  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            call()
    # a lead held twice
    twice_lead = xr.concat([fc, fc.isel(prediction_timedelta=[2])], "prediction_timedelta")
    msg = r"coordinate 'prediction_timedelta' of the forecast has duplicated values: \['0 days"
    with pytest.raises(ValueError, match=msg):
        V.rmse(twice_lead, truth)
    with pytest.raises(ValueError, match=msg):
        align_valid_time(twice_lead, truth)
    # a forecast without a lead, on the truth's own times, holding one twice
    with pytest.raises(ValueError, match="coordinate 'time' of the forecast has duplicated"):
        V.rmse(truth.isel(time=[0, 1, 1]), truth)
    # a grid point held twice, by the forecast (even where the truth holds it twice too), the
    # truth, the weights or a climatology
    for d, i, shown in (("latitude", [0, 0, 1, 2], "-60.0"), ("longitude", [0, 1, 1], "180.0")):
        both = truth.isel({d: i})
        with pytest.raises(
            ValueError, match=rf"'{d}' of the forecast has duplicated values: \['{shown}'\]"
        ):
            V.rmse(both, both)
        with pytest.raises(
            ValueError, match=rf"'{d}' of the truth has duplicated values: \['{shown}'\]"
        ):
            V.rmse(truth, both)
    lat_twice = xr.DataArray(np.ones(4), dims="latitude", coords={"latitude": LAT[[0, 0, 1, 2]]})
    with pytest.raises(ValueError, match="'latitude' of the weights has duplicated values"):
        V.rmse(truth, truth, weights=lat_twice)
    clim = truth.mean("time").isel(latitude=[0, 0, 1, 2])
    with pytest.raises(ValueError, match="'latitude' of the climatology has duplicated values"):
        V.acc(truth, truth, clim)
    # distinct values in any order are scored as before
    xr.testing.assert_allclose(V.rmse(fc.isel(time=[2, 0, 1, 3]), truth), V.rmse(fc, truth))


# --- 9: attributes held by outputs ------------------------------------------------------------


def test_outputs_do_not_share_nested_attrs_with_their_inputs():
    """Outputs took the inputs' attrs by a shallow copy: a list held in them was the input's
    own, and appending to it in the output (the score, the aligned truth) changed the input."""
    truth = truth_series(n=8, levels=True)
    truth.attrs["flags"] = [1, 2]
    truth.latitude.attrs["bounds"] = [-90.0, 90.0]
    fc, _, _ = persistence(truth, n_init=4)
    fc = fc.assign_attrs(flags=[1, 2], meta={"runs": ["a"]})
    fc.latitude.attrs["bounds"] = [-90.0, 90.0]
    fc.level.attrs["list"] = [500]
    ens = _members(fc).assign_attrs(flags=[1, 2])
    ens.level.attrs["list"] = [500]
    inputs = [(fc, fc.copy(deep=True)), (truth, truth.copy(deep=True)),
              (ens, ens.copy(deep=True))]  # fmt: skip
    outputs = [
        V.rmse(fc, truth, keep_attrs=True),
        V.rmse(fc, truth, keep_attrs=True, dim=["time", "latitude"]),
        V.rmse(fc.to_dataset(), truth.to_dataset(), keep_attrs=True, dim=["time", "longitude"]),
        V.mse(fc, truth, dim="time"),
        V.acc(fc, truth, truth.mean("time"), keep_attrs=True, dim=["latitude", "longitude"]),
        align_valid_time(fc, truth),
        align_valid_time(fc.to_dataset(), truth.to_dataset()),
        V.crps(ens, truth, keep_attrs=True, dim=["time", "latitude"]),
        V.spread(ens, keep_attrs=True, dim="time"),
        V.rank_histogram(ens, truth, dim=["time", "longitude"]),
    ]
    for out in outputs:
        for var in [*out.variables.values(), out] if isinstance(out, xr.Dataset) else [
            out, *(out.coords[c] for c in out.coords)
        ]:  # fmt: skip
            for value in var.attrs.values():
                if isinstance(value, list):
                    value.append("changed")
                elif isinstance(value, dict):
                    value["changed"] = True
    for obj, before in inputs:
        xr.testing.assert_identical(obj, before)
        assert obj.attrs["flags"] == [1, 2]
    assert fc.latitude.attrs["bounds"] == [-90.0, 90.0] and fc.level.attrs["list"] == [500]
    assert truth.latitude.attrs["bounds"] == [-90.0, 90.0]
    assert fc.attrs["meta"] == {"runs": ["a"]}


# --- 10: thresholds per variable ---------------------------------------------------------------


def test_brier_threshold_mapping_refuses_unknown_variables():
    """A mapping of thresholds with a misspelled or extra key was scored ignoring it; a key
    naming no variable of the forecast is refused, listing the unknown keys and the
    variables."""
    truth = truth_series(n=8).to_dataset()
    truth["humidity"] = truth.temperature * 2
    fc, _, _ = persistence(truth, n_init=4)
    ens = _members(fc.temperature).to_dataset(name="temperature")
    ens["humidity"] = ens.temperature * 2
    good = V.brier_score(ens, truth, threshold={"temperature": 0.0, "humidity": 0.5})
    assert set(good.data_vars) == {"temperature", "humidity"}
    extra = {"temperature": 0.0, "humidity": 0.5, "bogus": 1.0}  # was scored, "bogus" ignored
    msg = (r"threshold given for variable\(s\) \['bogus'\] that the forecast lacks; its "
           r"variables are \['temperature', 'humidity'\]")  # fmt: skip
    with pytest.raises(ValueError, match=msg):
        V.brier_score(ens, truth, threshold=extra)
    msg = (r"variable\(s\) \['temprature', 'bogus'\] that the forecast lacks \(and no "
           r"threshold given for variable\(s\) \['temperature'\]\)")  # fmt: skip
    with pytest.raises(ValueError, match=msg):
        V.brier_score(ens, truth, threshold={"temprature": 0.0, "humidity": 0.5, "bogus": 1.0})
    with pytest.raises(ValueError, match="no threshold given for variable 'humidity'"):
        V.brier_score(ens, truth, threshold={"temperature": 0.0})


def test_a_truth_with_a_dim_the_forecast_lacks_is_refused_not_broadcast():
    """The forecast was compared with every value of the truth along the extra dim (an
    outer product): a perfect forecast scored 1.2 with its time dim named init_time, and
    one level of a two-level truth 0.98 against a forecast with the level dropped."""
    truth = truth_series(levels=True)
    with pytest.raises(ValueError, match=r"truth has dimension 'time' that the forecast lacks"):
        V.rmse(truth.rename(time="init_time"), truth)
    fc = truth.sel(level=500.0, drop=True)
    with pytest.raises(ValueError, match=r"truth has dimension 'level' that the forecast lacks"):
        V.rmse(fc, truth)
    members = fc.expand_dims(number=3).copy()
    with pytest.raises(ValueError, match=r"dimension 'level' that the forecast lacks"):
        V.crps(members, truth)
    with pytest.raises(ValueError, match=r"dimension 'level' that the forecast lacks"):
        V.rmse(fc.to_dataset(), truth.to_dataset())
    # the truth at the forecast's own level is scored as before
    assert float(V.rmse(fc, truth.sel(level=500.0, drop=True))) == 0.0


@pytest.mark.parametrize("where", ["forecast", "truth"])
@pytest.mark.parametrize("dtype", ["object", "str", "datetime64[ns]"])
def test_data_that_are_not_numbers_are_refused_not_left_out(where, dtype):
    """A Dataset's variable of objects (numbers from a pandas column with a None) or
    strings was left out of the scores silently (xarray's reductions skip it); on a
    DataArray the error came raw from NumPy."""
    truth = truth_series().to_dataset()
    truth["geopotential"] = truth["temperature"] * 10
    fc = truth.isel(time=slice(0, 3)) + 0.1
    odd = {"forecast": fc, "truth": truth}[where]
    if dtype == "datetime64[ns]":
        dates = np.full(odd["temperature"].shape, np.datetime64(0, "ns"))
        bad = odd["temperature"].copy(data=dates)
    else:
        bad = odd["temperature"].astype(dtype)
    odd = odd.assign(temperature=bad)
    pair = {"forecast": fc, "truth": truth, where: odd}
    message = rf"the {where} holds data that are not numbers \('temperature'"
    with pytest.raises(TypeError, match=message):
        V.rmse(pair["forecast"], pair["truth"])
    with pytest.raises(TypeError, match="not numbers"):
        V.rmse(pair["forecast"]["temperature"], pair["truth"]["temperature"])
    if where == "forecast":
        with pytest.raises(TypeError, match="not numbers"):
            V.crps(pair["forecast"].expand_dims(number=2).copy(), truth)
