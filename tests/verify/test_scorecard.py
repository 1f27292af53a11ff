"""Scorecard (issue 24 item 4): on the tiny world's forecasts and on a WeatherBench2-layout
store, every cell equal to the score computed alone; the A-vs-B plot renders."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from xfuxi.verify import acc, crps, rmse, scorecard, spread, spread_skill_ratio, wind_vector_rmse

REDUCE = ["time", "latitude", "longitude"]


@pytest.fixture
def world_forecast():
    from tests import tiny
    from xfuxi.forecasting.deterministic import forecast

    ds = tiny.dataset(n_time=8)
    fc = forecast(ds, model=tiny.model(), steps=3, init_times=ds.time.values[1:4],
                  progress=False)  # fmt: skip
    return fc, ds


def test_scorecard_of_a_world_forecast(world_forecast):
    fc, ds = world_forecast
    card = scorecard(fc, ds, region=["global", "tropics"])
    assert set(card.data_vars) == {"temperature", "passive_tracer"}
    assert list(card.score.values) == ["rmse", "mae", "bias"]
    assert card.temperature.dims == ("score", "prediction_timedelta", "level", "region") or set(
        card.temperature.dims
    ) == {"score", "prediction_timedelta", "level", "region"}
    assert "level" not in card.passive_tracer.dims
    ref = rmse(fc, ds, dim=REDUCE, region="tropics")
    xr.testing.assert_allclose(
        card.temperature.sel(score="rmse", region="tropics", drop=True).transpose(
            *ref.temperature.dims),
        ref.temperature.drop_vars("valid_time", errors="ignore"),
    )  # fmt: skip
    assert card.perfect_value.sel(score="bias") == 0.0
    # plus a climatology: acc
    clim = ds.groupby("time.hour").mean()
    card2 = scorecard(fc, ds, climatology=clim)
    assert "acc" in card2.score.values
    expect = acc(fc, ds, clim, dim=REDUCE, region=["global"])
    np.testing.assert_allclose(
        card2.passive_tracer.sel(score="acc").values, expect.passive_tracer.values, rtol=1e-12
    )
    with pytest.raises(ValueError, match="needs a climatology"):
        scorecard(fc, ds, scores=["acc"])
    with pytest.raises(ValueError, match="need an ensemble"):
        scorecard(fc, ds, scores=["crps"])
    with pytest.raises(ValueError, match="unknown score"):
        scorecard(fc, ds, scores=["skill"])


def _wb2_stores(tmp_path, members=None, climatology=True):
    """Tiny stores laid out as WeatherBench2's: forecast, ERA5-like truth, climatology."""
    rng = np.random.default_rng(0)
    lat, lon = np.linspace(-80, 80, 5), np.arange(0.0, 360.0, 45.0)
    lev = np.array([500, 850])
    times = pd.date_range("2020-01-01", periods=12, freq="6h")
    lead = pd.to_timedelta([0, 6, 12], "h")
    names3 = ["geopotential", "temperature", "u_component_of_wind", "v_component_of_wind"]

    def field(shape):
        return rng.normal(size=shape)

    era5 = xr.Dataset(
        {**{v: (("time", "level", "latitude", "longitude"), field((12, 2, 5, 8))) for v in names3},
         "2m_temperature": (("time", "latitude", "longitude"), field((12, 5, 8)))},
        coords={"time": times, "level": lev, "latitude": lat, "longitude": lon},
    )  # fmt: skip
    ens = () if members is None else (members,)
    ens_dim = () if members is None else ("number",)
    fdims = ("time", "prediction_timedelta", *ens_dim)
    fc = xr.Dataset(
        {**{v: ((*fdims, "level", "latitude", "longitude"), field((4, 3, *ens, 2, 5, 8)))
            for v in names3},
         "2m_temperature": ((*fdims, "latitude", "longitude"), field((4, 3, *ens, 5, 8)))},
        coords={"time": times[:4], "prediction_timedelta": lead, "level": lev,
                "latitude": lat, "longitude": lon},
    )  # fmt: skip
    clim = era5.groupby("time.hour").mean().rename({v: f"{v}_mean" for v in era5.data_vars})
    paths = [tmp_path / n for n in ("forecast.zarr", "era5.zarr", "clim.zarr")]
    for obj, p in zip((fc, era5, clim)[: 3 if climatology else 2], paths, strict=False):
        obj.chunk({d: 2 for d in obj.dims if d in ("time", "hour")}).to_zarr(p, zarr_format=2)
    return paths, fc, era5, clim


def test_scorecard_of_a_weatherbench2_store(tmp_path):
    (fpath, tpath, cpath), fc, era5, clim = _wb2_stores(tmp_path)
    card = scorecard(fpath, tpath, climatology=cpath, region=["global", "extra-tropics"])
    assert list(card.score.values) == ["rmse", "mae", "bias", "acc", "wind_vector_rmse"]
    assert isinstance(card.temperature.data, da.Array)  # lazy until computed
    card = card.compute()
    assert set(card.data_vars) == {*fc.data_vars, "wind_vector"}
    assert card["2m_temperature"].dims == ("score", "prediction_timedelta", "region")
    w = wind_vector_rmse(fc, era5, dim=REDUCE, region=["global", "extra-tropics"])
    got_w = card.wind_vector.sel(score="wind_vector_rmse")
    np.testing.assert_allclose(got_w.values, w.transpose(*got_w.dims).values, rtol=1e-12)
    assert bool(card.wind_vector.sel(score="rmse").isnull().all())
    a = acc(fc, era5, clim.rename({f"{v}_mean": v for v in era5.data_vars}), dim=REDUCE,
            region=["global", "extra-tropics"])  # fmt: skip
    got = card.geopotential.sel(score="acc").transpose(*a.geopotential.dims)
    np.testing.assert_allclose(got.values, a.geopotential.values, rtol=1e-12)


def test_scorecard_of_an_ensemble_store_and_plot(tmp_path):
    (fpath, tpath, _), fc, era5, _ = _wb2_stores(tmp_path, members=4, climatology=False)
    card = scorecard(fpath, tpath, region="tropics").compute()
    assert list(card.score.values) == ["crps", "ensemble_mean_rmse", "spread",
                                       "spread_skill_ratio", "wind_vector_rmse"]  # fmt: skip
    assert card.attrs["members"] == 4
    ref = crps(fc, era5, dim=REDUCE, region=["tropics"])
    np.testing.assert_allclose(
        card.temperature.sel(score="crps").transpose(*ref.temperature.dims).values,
        ref.temperature.values, rtol=1e-12,
    )  # fmt: skip
    s = spread(fc, dim=REDUCE, region=["tropics"])
    np.testing.assert_allclose(card["2m_temperature"].sel(score="spread").values,
                               s["2m_temperature"].transpose(*card["2m_temperature"].dims[1:]).values,
                               rtol=1e-12)  # fmt: skip
    assert float(card.perfect_value.sel(score="spread_skill_ratio")) == 1.0
    # the corrected ratio, whose perfect value is 1 at any size (the uncorrected one of a
    # consistent 4-member ensemble is 0.89: an over-dispersive one scored nearer to 1)
    ssr = spread_skill_ratio(fc, era5, dim=REDUCE, region=["tropics"], correction=True)
    got = card.temperature.sel(score="spread_skill_ratio")
    np.testing.assert_allclose(got.values, ssr.temperature.transpose(*got.dims).values,
                               rtol=1e-12)  # fmt: skip

    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    better = card.copy(deep=True)
    better["temperature"] = better["temperature"] * 0.9
    ax = xfuxi.plot_scorecard(better, card, region="tropics", names=("ref", "new"))
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "crps temperature 500" in labels and not any(x.startswith("spread ") for x in labels)
    grid = ax.images[0].get_array()
    row = labels.index("crps temperature 500")
    np.testing.assert_allclose(np.asarray(grid[row]), -10.0, rtol=1e-9)
    ax.figure.savefig(tmp_path / "card.png")
    with pytest.raises(ValueError, match="no region"):
        xfuxi.plot_scorecard(better, card, region="arctic")


def test_scorecard_refusals_name_what_is_wrong(world_forecast):
    fc, ds = world_forecast
    with pytest.raises(ValueError, match="scores is empty"):
        scorecard(fc, ds, scores=[])  # was xarray's "must supply at least one object"
    with pytest.raises(ValueError, match="lists a score twice"):
        scorecard(fc, ds, scores=["rmse", "rmse"])
    with pytest.raises(ValueError, match=r"the forecast lacks \['zz'\]"):
        scorecard(fc, ds, variables=["zz"])  # was a bare KeyError
    card = scorecard(fc, ds)
    later = card.assign_coords(
        prediction_timedelta=card["prediction_timedelta"] + np.timedelta64(6, "h")
    )
    with pytest.raises(ValueError, match="the same leads"):  # cells were drawn under other leads
        xfuxi.plot_scorecard(later, card)
