"""Scorecard metadata: what differs by score is a coordinate along ``score``, not the
first score's attributes on every variable (audit 60, r04)."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from xfuxi.verify.scorecard import PERFECT_VALUES

matplotlib.use("Agg")


def _card(scores):
    rng = np.random.default_rng(0)
    times = pd.date_range("2020-01-01", periods=6, freq="6h")
    attrs = {"units": "K", "long_name": "air temperature"}
    truth = xr.Dataset(
        {"temperature": (("time", "latitude", "longitude"), 250 + rng.normal(size=(6, 5, 8)),
                         attrs)},
        coords={"time": times, "latitude": np.linspace(-60, 60, 5),
                "longitude": np.arange(8) * 45.0},
    )  # fmt: skip
    fc = truth.isel(time=slice(0, 2)).expand_dims(
        prediction_timedelta=pd.to_timedelta([6, 12], "h")
    ).transpose("time", "prediction_timedelta", ...) + 0.5  # fmt: skip
    fc["temperature"].attrs = dict(attrs)
    return xfuxi.scorecard(fc, truth, climatology=truth.mean("time"), scores=scores)


@pytest.mark.parametrize("scores", [["rmse", "acc", "bias", "mse"], ["acc", "mse", "rmse"]])
def test_rows_do_not_carry_the_first_scores_attrs(scores):
    card = _card(scores)
    for s in scores:
        row = card["temperature"].sel(score=s)
        assert "metric" not in row.attrs and "units" not in row.attrs
        assert "perfect_value" not in row.attrs and "higher_is_better" not in row.attrs
        assert float(row["perfect_value"]) == PERFECT_VALUES[s]
    hib = card["higher_is_better"].to_series()
    assert hib["acc"] == 1.0 and hib["rmse"] == 0.0 and hib["mse"] == 0.0
    if "bias" in scores:
        assert np.isnan(hib["bias"])
    assert card["temperature"].attrs == {"variable_units": "K"}


def test_plot_scores_labels_a_scorecard_row_with_its_score():
    card = _card(["rmse", "acc", "mse"])
    row = card["temperature"].sel(region="global")
    labels = {s: xfuxi.plot_scores(row.sel(score=s)).get_ylabel() for s in ["rmse", "acc", "mse"]}
    import matplotlib.pyplot as plt

    plt.close("all")
    assert labels["acc"] == "acc"
    assert labels["rmse"] == "rmse (K)"
    assert labels["mse"] == "mse (K²)"
    # a plain score (not a row of a card) still labels itself by its attrs
    plain = row.sel(score="rmse").reset_coords(drop=True)
    plain.attrs = {"metric": "rmse", "units": "K"}
    assert xfuxi.plot_scores(plain).get_ylabel() == labels["rmse"]
    plt.close("all")


def test_region_none_is_global_as_in_every_score():
    """scorecard(region=None) was refused, though None is "global" in every score."""
    rng = np.random.default_rng(1)
    times = pd.date_range("2020-01-01", periods=4, freq="6h")
    truth = xr.Dataset(
        {"temperature": (("time", "latitude", "longitude"), rng.normal(size=(4, 3, 4)))},
        coords={"time": times, "latitude": [-30.0, 0.0, 30.0], "longitude": np.arange(4) * 90.0},
    )
    fc = truth.isel(time=[0, 1]).expand_dims(prediction_timedelta=pd.to_timedelta([6], "h"))
    none = xfuxi.scorecard(fc, truth, scores=["rmse"], region=None)
    xr.testing.assert_identical(none, xfuxi.scorecard(fc, truth, scores=["rmse"]))
    assert none["region"].values.tolist() == ["global"]
