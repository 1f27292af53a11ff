"""Audit 62, finding 6: a truth in -180..180 against a forecast in 0..360.

Forecasts come back with longitudes in 0..360 whatever the input's convention; scoring one
against the same data in -180..180 is refused ("8 of the 16 longitude values of the forecast
are missing from the truth"). The points compared are not changed (nothing is matched
across conventions silently), but where the two sets of longitudes are the same points
modulo 360 the message now says so and gives the fix, ``xfuxi.validate``.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.verify.weights import conform


def _lon180(obj):
    return obj.assign_coords(longitude=((obj.longitude + 180) % 360) - 180).sortby("longitude")


def test_a_forecast_against_its_own_truth_in_minus180_180_names_the_convention():
    truth = _lon180(tiny.dataset(8))
    fc = xfuxi.persistence_forecast(truth.isel(time=slice(0, 6)), leads=["6h", "12h"])
    assert float(fc.longitude.min()) >= 0.0  # forecasts are on 0..360
    with pytest.raises(ValueError, match="missing from the truth") as err:
        xfuxi.rmse(fc, truth)
    message = str(err.value)
    assert "same points modulo 360" in message
    assert "the truth's in -180..180" in message
    assert "xfuxi.validate(truth) puts them in 0..360" in message
    # the fix it gives works
    assert np.isfinite(float(xfuxi.rmse(fc, xfuxi.validate(truth)).temperature))


def _pair():
    lon = np.arange(0.0, 360.0, 45.0)
    fc = xr.DataArray(np.arange(8.0), dims="longitude", coords={"longitude": lon})
    return fc, _lon180(fc)


def test_the_hint_names_whichever_is_in_the_other_convention():
    on360, on180 = _pair()
    with pytest.raises(ValueError, match=r"xfuxi\.validate\(forecast\) puts them"):
        conform(on360, on180, name="truth")  # a forecast in -180..180
    with pytest.raises(ValueError, match=r"xfuxi\.validate\(truth\) puts them"):
        conform(on180, on360, name="truth")
    with pytest.raises(ValueError, match=r"xfuxi\.validate\(climatology\) puts them"):
        conform(on180, on360, name="climatology")


def test_no_hint_where_the_points_differ_and_nothing_is_matched_silently():
    fc, truth = _pair()
    shifted = truth.assign_coords(longitude=truth.longitude + 1.0)  # other points
    with pytest.raises(ValueError, match="missing from the truth") as err:
        conform(shifted, fc, name="truth")
    assert "modulo 360" not in str(err.value)
    fewer = truth.isel(longitude=slice(1, None))  # a subset: not the same points
    with pytest.raises(ValueError, match="missing from the truth") as err:
        conform(fewer, fc, name="truth")
    assert "modulo 360" not in str(err.value)
