"""Default area weights refuse a latitude named ``lat``; rank-histogram tie-breaking does not
depend on the layout of the data, and dask blocks and variables draw independent streams."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from xfuxi.verify import crps, gaussian_crps, mae, rank_histogram, rmse, scorecard

LAT = np.linspace(-80.0, 80.0, 5)
LON = np.arange(4) * 90.0


def _pair():
    rng = np.random.default_rng(1)
    co = {"time": pd.date_range("2001-03-01", periods=2, freq="6h"), "latitude": LAT,
          "longitude": LON}  # fmt: skip
    truth = xr.DataArray(rng.normal(size=(2, 5, 4)), dims=tuple(co), coords=co, name="t")
    # errors growing towards the poles: weighted and unweighted scores differ
    fc = truth + (1 + np.abs(LAT)[:, None] / 20) * rng.normal(size=(2, 5, 4))
    return fc, truth


def _lat(x):
    return x.rename(
        {k: v for k, v in {"latitude": "lat", "longitude": "lon"}.items() if k in x.dims}
    )


def _ens(fc):
    return fc + xr.DataArray([-0.5, 0.0, 0.7], dims="number")


def _card(fc, truth, **kw):
    lead = fc.rename(time="prediction_timedelta").assign_coords(
        prediction_timedelta=pd.to_timedelta([0, 6], "h")
    )
    lead = lead.expand_dims(time=truth["time"].values[:1]).to_dataset()
    return scorecard(lead, truth.to_dataset(), scores=["rmse"], **kw)["t"]


SCORES = {
    "rmse": lambda f, t, **kw: rmse(f, t, **kw),
    "mae": lambda f, t, **kw: mae(f, t, **kw),
    "crps": lambda f, t, **kw: crps(_ens(f), t, **kw),
    "gaussian_crps": lambda f, t, **kw: gaussian_crps(f, t, std=abs(f) * 0 + 1.0, **kw),
    "scorecard": _card,
}


@pytest.mark.parametrize("name", list(SCORES))
def test_default_area_weights_refuse_a_latitude_named_lat(name):
    score = SCORES[name]
    fc, truth = _pair()
    weighted = score(fc, truth)
    assert not np.allclose(weighted, score(fc, truth, weights=None))
    with pytest.raises(ValueError, match=r"named 'lat'.*xfuxi\.validate.*rename\(lat="):
        score(_lat(fc), _lat(truth))
    # the user's choice stands: unweighted, or their own weights over lat
    np.testing.assert_allclose(
        score(_lat(fc), _lat(truth), weights=None), score(fc, truth, weights=None)
    )
    own = _lat(xfuxi.area_weights(fc["latitude"]))
    np.testing.assert_allclose(score(_lat(fc), _lat(truth), weights=own), weighted)


def test_default_weights_allow_lat_when_it_is_not_reduced():
    fc, truth = _pair()
    got = rmse(_lat(fc), _lat(truth), dim=["time", "lon"])
    np.testing.assert_allclose(got.values, rmse(fc, truth, dim=["time", "longitude"]).values)


def _tied(shape=(30, 8, 5), seed=0):
    """Precipitation-like members and truth: mostly exact ties (zeros and integers)."""
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.normal(size=shape), 0).round(0)
    y = np.maximum(rng.normal(size=shape[:-1]), 0).round(0)
    co = {"latitude": np.linspace(-80, 80, shape[0]), "longitude": np.arange(shape[1]) * 45.0}
    fc = xr.DataArray(x, dims=("latitude", "longitude", "number"), coords=co)
    return fc, xr.DataArray(y, dims=("latitude", "longitude"), coords=co)


def test_rank_histogram_tie_breaks_do_not_depend_on_layout():
    fc, truth = _tied()
    point = rank_histogram(fc, truth, dim=[])  # one count per point: the tie-break itself
    # the canonical layout draws as before: one default_rng(seed) stream over the points
    x, y = fc.values, truth.values
    u = np.random.default_rng(0).random(y.shape)
    r = (x < y[..., None]).sum(-1) + np.floor(u * ((x == y[..., None]).sum(-1) + 1))
    np.testing.assert_array_equal(point.argmax("rank").values, r)
    layouts = {
        "transposed": (fc.transpose("number", "longitude", "latitude"), truth.T),
        "latitude reversed": (fc.isel(latitude=slice(None, None, -1)), truth[::-1]),
        "longitude shuffled": (fc.isel(longitude=[3, 0, 7, 1, 2, 6, 5, 4]),
                               truth.isel(longitude=[3, 0, 7, 1, 2, 6, 5, 4])),
        # the same circle written -180..180 (it drew other tie-breaks)
        "longitude -180..180": (fc.assign_coords(longitude=(fc.longitude + 180) % 360 - 180),
                                truth.assign_coords(longitude=(truth.longitude + 180) % 360 - 180)),
    }  # fmt: skip
    for what, (f, t) in layouts.items():
        got = rank_histogram(f, t, dim=[])
        assert got.dims[1:] == t.dims, what  # the points come back in the given layout
        got = got.assign_coords(longitude=got.longitude % 360)
        xr.testing.assert_equal(got.transpose(*point.dims).sortby(["latitude", "longitude"]),
                                point)  # fmt: skip
        np.testing.assert_array_equal(rank_histogram(f, t).values, rank_histogram(fc, truth).values)


def test_rank_histogram_dask_blocks_and_variables_draw_their_own_streams():
    pytest.importorskip("dask")
    block_f, block_t = _tied(shape=(10, 8, 5))
    f = xr.concat([block_f] * 3, "latitude").assign_coords(latitude=np.arange(30.0))
    t = xr.concat([block_t] * 3, "latitude").assign_coords(latitude=np.arange(30.0))
    lazy = rank_histogram(f.chunk(latitude=10), t.chunk(latitude=10), dim=[])
    ranks = lazy.argmax("rank").values
    assert (np.asarray(block_f.values == block_t.values[..., None]).any(-1)).sum() > 30
    # three identical chunks, three different tie-breaks
    assert not np.array_equal(ranks[:10], ranks[10:20])
    assert not np.array_equal(ranks[10:20], ranks[20:])
    # reproducible, and the first block is drawn as in memory
    xr.testing.assert_equal(
        lazy, rank_histogram(f.chunk(latitude=10), t.chunk(latitude=10), dim=[])
    )
    whole = rank_histogram(f, t, dim=[]).argmax("rank").values
    np.testing.assert_array_equal(ranks[:10], whole[:10])
    # the chunk layout is canonical too: transposed dask input, the same draws
    ft = f.transpose("number", "longitude", "latitude").chunk(latitude=10)
    xr.testing.assert_equal(
        rank_histogram(ft, t.T.chunk(latitude=10), dim=[]).transpose(*lazy.dims), lazy
    )
    # a Dataset's identical variables are tie-broken independently
    ds = rank_histogram(xr.Dataset({"a": f, "b": f}), xr.Dataset({"a": t, "b": t}), dim=[])
    assert not np.array_equal(ds["a"].argmax("rank").values, ds["b"].argmax("rank").values)
    # keyed by name: the same draws for a variable in any subset or order, or on its own
    a = ds["a"].argmax("rank").values
    for fs, ts in (
        ([f.rename("a")], [t.rename("a")]),
        ([f.rename("b"), f.rename("a")], [t.rename("b"), t.rename("a")]),
    ):
        other = rank_histogram(xr.merge(fs), xr.merge(ts), dim=[])
        np.testing.assert_array_equal(other["a"].argmax("rank").values, a)
    alone = rank_histogram(f.rename("a"), t.rename("a"), dim=[]).argmax("rank").values
    np.testing.assert_array_equal(alone, a)


def _persistence(truth):
    """Forecasts of 6 and 12 hours that persist the state at each initial time."""
    leads = pd.to_timedelta([6, 12], "h")
    inits = truth["time"].values[:2]
    return truth.sel(time=inits).expand_dims(prediction_timedelta=leads).transpose("time", ...)


LEAD_SCORES = {
    "rmse": lambda f, t: rmse(f, t),
    "acc": lambda f, t: xfuxi.acc(f, t, climatology=t.mean("time")),
    "crps": lambda f, t: crps(_ens(f), t),
    "spread_skill_ratio": lambda f, t: xfuxi.spread_skill_ratio(_ens(f), t),
}


@pytest.mark.parametrize("name", list(LEAD_SCORES))
@pytest.mark.parametrize("alias", ["lead_time", "step"])
def test_a_lead_named_lead_time_or_step_is_refused(name, alias):
    """A lead dim named 'lead_time' or 'step' was an ordinary dim: the truth was taken at the
    initial times, and a persistence forecast scored an RMSE of 0."""
    rng = np.random.default_rng(4)
    co = {"time": pd.date_range("2001-03-01", periods=4, freq="6h"), "latitude": LAT,
          "longitude": LON}  # fmt: skip
    truth = xr.DataArray(rng.normal(size=(4, 5, 4)), dims=tuple(co), coords=co, name="t")
    fc = _persistence(truth)
    score = LEAD_SCORES[name]
    score(fc, truth)  # the canonical name scores
    assert float(rmse(fc, truth)) > 0.5
    with pytest.raises(ValueError, match=rf"holds its lead as '{alias}'.*prediction_timedelta"):
        score(fc.rename(prediction_timedelta=alias), truth)
    one = fc.isel(prediction_timedelta=0).rename(prediction_timedelta=alias)  # scalar 6 h
    with pytest.raises(ValueError, match=rf"holds its lead as '{alias}'"):
        score(one, truth)
    # cfgrib's analyses carry step = 0 as a scalar coordinate: still a truth
    at0 = truth.assign_coords({alias: np.timedelta64(0, "ns")})
    np.testing.assert_allclose(rmse(fc, at0), rmse(fc, truth))
