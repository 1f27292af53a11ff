"""Scores written with xfuxi's writers: RMSE by lead and level, scorecards (audit 63)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from xfuxi.data.schema import SchemaError
from xfuxi.data.writers import write_netcdf, write_weatherbench2
from xfuxi.files import OutputExistsError

LAT = np.array([-60.0, 0.0, 60.0])
LON = np.array([0.0, 90.0, 180.0, 270.0])
DIMS = ["time", "latitude", "longitude"]
UDUNITS = {"K": "K", "m**2 s**-2": "m2 s-2"}


def _forecast_and_truth() -> tuple[xr.Dataset, xr.Dataset]:
    """A forecast (2 initial times, 3 leads, 2 levels) and the truth at its valid times."""
    rng = np.random.default_rng(3)
    init = pd.date_range("2020-01-01", periods=2, freq="12h").values
    lead = (np.arange(1, 4) * np.timedelta64(6, "h")).astype("timedelta64[ns]")
    coords = {
        "time": init,
        "prediction_timedelta": lead,
        "level": [500.0, 850.0],
        "latitude": LAT,
        "longitude": LON,
    }
    dims = ("time", "prediction_timedelta", "level", "latitude", "longitude")
    shape = (2, 3, 2, LAT.size, LON.size)
    fc = xr.Dataset(
        {
            "temperature": (dims, 250.0 + rng.normal(size=shape), {"units": "K"}),
            "geopotential": (dims, 5e4 + rng.normal(size=shape), {"units": "m**2 s**-2"}),
        },
        coords=coords,
    )
    times = pd.date_range("2020-01-01", periods=8, freq="6h").values
    tdims = ("time", "level", "latitude", "longitude")
    tshape = (times.size, 2, LAT.size, LON.size)
    truth = xr.Dataset(
        {
            "temperature": (tdims, 250.0 + rng.normal(size=tshape), {"units": "K"}),
            "geopotential": (tdims, 5e4 + rng.normal(size=tshape), {"units": "m**2 s**-2"}),
        },
        coords={"time": times, "level": [500.0, 850.0], "latitude": LAT, "longitude": LON},
    )
    return fc, truth


@pytest.fixture(scope="module")
def scores():
    fc, truth = _forecast_and_truth()
    rmse = xfuxi.rmse(fc, truth, dim=DIMS)
    card = xfuxi.scorecard(fc, truth)
    return fc, truth, rmse, card


def test_rmse_dataset_round_trips_through_write_netcdf(tmp_path, scores):
    _, _, rmse, _ = scores
    assert set(rmse.dims) == {"prediction_timedelta", "level"}  # no latitude, no longitude
    path = write_netcdf(rmse, tmp_path / "rmse.nc")
    with xr.open_dataset(path) as back:
        assert back.attrs["metric"] == "rmse"
        for name in rmse.data_vars:
            assert back[name].dims == rmse[name].dims
            np.testing.assert_array_equal(back[name].values, rmse[name].values)
            assert back[name].attrs["metric"] == "rmse"
            # the units of the score, in UDUNITS spelling (CF)
            assert back[name].attrs["units"] == UDUNITS[rmse[name].attrs["units"]]
            # a score is not labelled as the field
            assert "standard_name" not in back[name].attrs
            assert "long_name" not in back[name].attrs
            assert back[name].encoding.get("zlib")  # compressed, as other outputs
        np.testing.assert_array_equal(
            back["prediction_timedelta"].values, rmse["prediction_timedelta"].values
        )
        assert back["level"].attrs["units"] == "hPa"
        assert back["prediction_timedelta"].attrs["standard_name"] == "forecast_period"
        assert back.attrs["xfuxi_writer"] == "xfuxi.write_netcdf"
    assert rmse["temperature"].attrs["units"] == "K"  # the input is not modified
    assert [p.name for p in tmp_path.iterdir()] == ["rmse.nc"]  # no temporary left


def test_rmse_dataarray_round_trips_under_its_name_or_metric(tmp_path, scores):
    fc, truth, rmse, _ = scores
    da = xfuxi.rmse(fc["temperature"], truth["temperature"], dim=DIMS)
    named = da.rename("temperature")
    path = write_netcdf(named, tmp_path / "t.nc")
    with xr.open_dataset(path) as back:
        assert list(back.data_vars) == ["temperature"]
        np.testing.assert_array_equal(back["temperature"].values, named.values)
        assert back["temperature"].attrs["metric"] == "rmse"
        assert back["temperature"].attrs["units"] == named.attrs["units"] == "K"
    np.testing.assert_allclose(named.values, rmse["temperature"].values)
    unnamed = da.rename(None)
    with xr.open_dataset(write_netcdf(unnamed, tmp_path / "u.nc")) as back:
        assert list(back.data_vars) == ["rmse"]
        np.testing.assert_array_equal(back["rmse"].values, unnamed.values)


def test_scorecard_round_trips_through_write_netcdf(tmp_path, scores):
    _, _, _, card = scores
    assert {"score", "region"} <= set(card.dims)
    path = write_netcdf(card, tmp_path / "card.nc")
    with xr.open_dataset(path) as back:
        assert back.attrs["metric"] == "scorecard"
        assert list(np.atleast_1d(back.attrs["scores"])) == list(card.attrs["scores"])
        assert back["score"].values.tolist() == card["score"].values.tolist()
        assert back["region"].values.tolist() == card["region"].values.tolist()
        np.testing.assert_array_equal(back["perfect_value"].values, card["perfect_value"].values)
        np.testing.assert_array_equal(
            back["higher_is_better"].values, card["higher_is_better"].values
        )
        for name in card.data_vars:
            assert set(back[name].dims) == set(card[name].dims)
            np.testing.assert_array_equal(
                back[name].transpose(*card[name].dims).values, card[name].values
            )
            assert back[name].attrs["variable_units"] == card[name].attrs["variable_units"]
            assert "standard_name" not in back[name].attrs


@pytest.mark.parametrize("which", ["rmse", "card"])
def test_a_score_file_is_not_replaced_without_overwrite(tmp_path, scores, which):
    _, _, rmse, card = scores
    score = rmse if which == "rmse" else card
    path = write_netcdf(score, tmp_path / "s.nc")
    with pytest.raises(OutputExistsError):
        write_netcdf(score * 2, path)
    with xr.open_dataset(path) as back:  # untouched
        np.testing.assert_array_equal(
            back["temperature"].transpose(*score["temperature"].dims).values,
            score["temperature"].values,
        )
    doubled = (score * 2).assign_attrs(score.attrs)
    write_netcdf(doubled, path, overwrite=True)
    with xr.open_dataset(path) as back:
        np.testing.assert_array_equal(
            back["temperature"].transpose(*score["temperature"].dims).values,
            doubled["temperature"].values,
        )
    foreign = tmp_path / "foreign.nc"
    score.to_netcdf(foreign)  # not written by xfuxi: never replaced
    with pytest.raises(OutputExistsError):
        write_netcdf(score, foreign, overwrite=True)


def test_write_weatherbench2_refuses_a_score_without_the_grid_but_writes_one_on_it(
    tmp_path, scores
):
    fc, truth, rmse, card = scores
    # a WeatherBench2 store holds gridded data; WeatherBench2 writes its results as netCDF
    for score in (rmse, rmse["temperature"], card):
        with pytest.raises(SchemaError) as err:
            write_weatherbench2(score, tmp_path / "s.zarr")
        message = str(err.value)
        assert "write_netcdf" in message and "score" in message
        assert "missing dimension" not in message
        assert not (tmp_path / "s.zarr").exists()
    # a score on the grid (a bias map by lead) is written by both, as before
    bias = xfuxi.bias(fc, truth, dim="time")
    assert {"latitude", "longitude"} <= set(bias.dims)
    with xr.open_dataset(write_netcdf(bias, tmp_path / "bias.nc")) as back:
        np.testing.assert_allclose(
            back["temperature"].transpose(*bias["temperature"].dims).values,
            bias["temperature"].values,
        )
        assert back["temperature"].attrs["metric"] == "bias"
    back = xfuxi.from_weatherbench2(write_weatherbench2(bias, tmp_path / "bias.zarr"))
    np.testing.assert_allclose(
        back["temperature"].transpose(*bias["temperature"].dims).values,
        bias["temperature"].values,
    )


def test_an_unnamed_plain_dataarray_is_refused_with_the_way_to_name_it(tmp_path, scores):
    fc, _, _, _ = scores
    with pytest.raises(TypeError, match="rename"):
        write_netcdf(fc["temperature"].rename(None), tmp_path / "x.nc")
