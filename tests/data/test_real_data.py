"""Real data all the way (issue 25, item 3): an ERA5-layout file with z, t, u, v, q at a few
levels and surface pressure is read, regridded, turned into channels and statistics, a small
FuXi model is trained on it for a few steps, forecasts and is verified with WeatherBench2's
definitions — through examples/real_data_recipe.py."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from xfuxi.data.readers import from_era5, from_weatherbench2
from xfuxi.data.regrid import gaussian_grid, regrid
from xfuxi.grid import area_weights
from xfuxi.training.config import TrainConfig

pytest.importorskip("xarray_regrid", reason="the recipe regrids (the 'regrid' extra)")

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "real_data_recipe.py"


@pytest.fixture(scope="module")
def recipe():
    return runpy.run_path(str(RECIPE))


def test_the_sample_is_in_the_cds_layout(recipe, tmp_path):
    raw = recipe["era5_sample"](n_time=4, resolution=30.0)
    assert set(raw.data_vars) == {"z", "t", "u", "v", "q", "sp"}
    assert raw["t"].dims == ("valid_time", "pressure_level", "latitude", "longitude")
    assert raw["latitude"].values[0] == 90 and raw["longitude"].values[0] == -180
    ds = from_era5(recipe["write_era5_sample"](tmp_path / "s.nc", n_time=4, resolution=30.0))
    assert "specific_humidity" in ds and ds["longitude"].values.min() == 0
    # the same values, moved: latitude flipped, longitudes −180..−30 moved behind 0..150
    np.testing.assert_array_equal(
        ds["temperature"].sel(latitude=60, longitude=210).values,
        raw["t"].sel(latitude=60, longitude=-150).values,
    )


def test_recipe_runs_end_to_end(recipe, tmp_path):
    path = recipe["write_era5_sample"](tmp_path / "era5.nc", n_time=24, resolution=20.0)
    grid = gaussian_grid(8)  # a tiny Gaussian grid (16 × 8) keeps the test fast
    config = TrainConfig(preset="tiny", steps=3, batch_size=4, warmup_steps=1)
    out = tmp_path / "out"
    result = recipe["run"]([path], out, grid=grid, test_times=8, forecast_steps=2, config=config)
    # channels the world's models do not have (specific humidity, ...) are built from the data
    assert result["channels"][:3] == ["geopotential@250", "geopotential@500", "geopotential@850"]
    assert "specific_humidity@850" in result["channels"]
    assert result["channels"][-1] == "surface_pressure" and len(result["channels"]) == 16
    assert result["leads_hours"] == [6.0, 12.0]
    # the forecast came back as a WeatherBench2 store and a CF netCDF file
    fc = from_weatherbench2(out / "forecast.zarr").load()
    assert fc["temperature"].dims == (
        "time",
        "prediction_timedelta",
        "level",
        "latitude",
        "longitude",
    )
    np.testing.assert_allclose(fc["latitude"], grid["latitude"])
    with xr.open_dataset(out / "forecast.nc") as nc:
        assert nc.attrs["Conventions"] == "CF-1.8"
    scores = json.loads((out / "scores.json").read_text())
    assert scores == json.loads(json.dumps(result))
    # the persistence RMSE is WeatherBench2's: area-weighted spatial mean of squared errors,
    # then the time mean, then the square root — recomputed here by hand
    truth = regrid(from_era5(path), grid).isel(time=slice(-8, None))
    inits = truth["time"].values[1:6]
    lead = np.timedelta64(6, "h")
    w = area_weights(truth["latitude"]).values[:, None]
    sp = truth["surface_pressure"]
    errors = [
        ((sp.sel(time=t + lead).values - sp.sel(time=t).values) ** 2 * w).mean() for t in inits
    ]
    expected = float(np.sqrt(np.mean(errors)))
    np.testing.assert_allclose(result["rmse"]["persistence"]["surface_pressure"][0], expected,
                               rtol=1e-5)  # fmt: skip
    model_rmse = result["rmse"]["model"]
    assert list(model_rmse) == result["channels"]
    assert all(len(v) == 2 and np.all(np.isfinite(v)) for v in model_rmse.values())


def test_main_refuses_files_and_sample_together(recipe, tmp_path):
    with pytest.raises(SystemExit):
        recipe["main"](["x.nc", "--sample", "--out", str(tmp_path)])
