"""Scores compare the units of forecast, truth and climatology, and do not keep a CF
standard_name (a forecast in K scored against a truth in °C gave an RMSE of 272.8 "K" and
an ACC of 0.99999 against a climatology in °C, silently)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from xfuxi.data.schema import canonical_unit


def _pair(units_f: str | None, units_t: str | None) -> tuple[xr.Dataset, xr.Dataset]:
    rng = np.random.default_rng(0)
    coords = {
        "time": pd.date_range("2020-01-01", periods=3, freq="6h"),
        "latitude": np.linspace(-60, 60, 5),
        "longitude": np.arange(8) * 45.0,
    }
    dims = ("time", "latitude", "longitude")
    t = 280 + rng.normal(size=(3, 5, 8))
    attrs_f = {} if units_f is None else {"units": units_f, "standard_name": "air_temperature"}
    attrs_t = {} if units_t is None else {"units": units_t}
    fc = xr.Dataset({"temperature": (dims, t + 1.0, attrs_f)}, coords=coords)
    tr = xr.Dataset({"temperature": (dims, t - (273.15 if units_t == "degC" else 0), attrs_t)},
                    coords=coords)  # fmt: skip
    return fc, tr


@pytest.mark.parametrize("score", [xfuxi.rmse, xfuxi.bias, xfuxi.mae, xfuxi.mse])
def test_a_truth_in_other_units_is_refused(score):
    fc, tr = _pair("K", "degC")
    with pytest.raises(
        ValueError, match=r"different units.*'temperature' in 'K' and 'degC'.*273\.15"
    ):
        score(fc, tr)


def test_spellings_of_one_unit_and_missing_units_are_scored():
    fc, tr = _pair("K", "kelvin")
    assert float(xfuxi.rmse(fc, tr)["temperature"]) == pytest.approx(1.0)
    fc, tr = _pair("K", None)  # nothing to compare
    assert float(xfuxi.rmse(fc, tr)["temperature"]) == pytest.approx(1.0)
    assert canonical_unit(" m/s ") == "m s**-1" and canonical_unit("furlong") is None


def test_acc_refuses_a_climatology_in_other_units():
    fc, tr = _pair("K", "K")
    clim = xfuxi.climatology(tr)
    clim["temperature"].attrs["units"] = "degC"
    with pytest.raises(ValueError, match="climatology are in different units"):
        xfuxi.acc(fc, tr, clim)


def test_scores_do_not_keep_the_fields_standard_name():
    fc, tr = _pair("K", "K")
    for score in (xfuxi.rmse, xfuxi.mse):
        out = score(fc, tr, keep_attrs=True)["temperature"]
        assert "standard_name" not in out.attrs
    assert xfuxi.mse(fc, tr, keep_attrs=True)["temperature"].attrs["units"] == "K**2"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1", "(0 - 1)"),
        ("1", ""),
        ("kg kg**-1", "1"),
        ("K", "Kelvin"),
        ("degC", "°C"),
        ("hPa", "mbar"),
        ("Pa", "Pascal"),
        ("m**2 s**-2", "m2 s-2"),
    ],  # fmt: skip
)
def test_spellings_of_one_unit_are_scored(a, b):
    """ "1" was read as kg kg**-1 (the first table entry naming it), so a fraction in "1"
    against ERA5's "(0 - 1)" was refused."""
    fc, tr = _pair("K", "K")
    fc["temperature"].attrs["units"], tr["temperature"].attrs["units"] = a, b
    assert float(xfuxi.rmse(fc, tr)["temperature"]) == pytest.approx(1.0)


def test_units_xfuxi_does_not_know_are_scored_with_a_warning():
    fc, tr = _pair("K", "K")
    fc["temperature"].attrs["units"], tr["temperature"].attrs["units"] = "m.s-1", "m s**-1"
    with pytest.warns(UserWarning, match="units xfuxi cannot compare"):
        xfuxi.rmse(fc, tr)
