"""Audit 62, finding 12: regrid gives each variable its own canonical dim order.

The output was transposed to the input Dataset's dim insertion order (``list(data.dims)``),
which depends on the order of the data variables: with ``passive_tracer`` (no level)
listed first, temperature came back (time, latitude, longitude, level), and a transposed
input came back transposed, although ``validate`` (which regrid applies first) puts every
variable in the canonical order.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xfuxi
from tests import tiny

pytest.importorskip("xarray_regrid", reason="bilinear regridding needs the 'regrid' extra")

TARGET = {"latitude": np.linspace(-60.0, 60.0, 5), "longitude": np.arange(0.0, 360.0, 30.0)}
CANONICAL = ("time", "level", "latitude", "longitude")


def _inputs():
    ds = tiny.dataset(3)
    return {
        "canonical": ds,
        "variables_reordered": ds[["passive_tracer", "temperature"]],
        "dims_transposed": ds.transpose("longitude", "latitude", "level", "time"),
        "tracer_first_transposed": ds[["passive_tracer", "temperature"]].transpose(
            "latitude", "longitude", "time", "level"
        ),
    }


@pytest.mark.parametrize("method", ["bilinear", "conservative", "auto"])
@pytest.mark.parametrize("layout", list(_inputs()))
def test_each_variable_comes_back_in_its_canonical_order(layout, method):
    data = _inputs()[layout]
    base = xfuxi.regrid(tiny.dataset(3), TARGET, method=method)
    out = xfuxi.regrid(data, TARGET, method=method)
    valid = xfuxi.validate(data)
    for name in out.data_vars:
        assert out[name].dims == valid[name].dims
    assert out["temperature"].dims == CANONICAL
    assert out["passive_tracer"].dims == ("time", "latitude", "longitude")
    xr.testing.assert_allclose(out[list(base.data_vars)], base, rtol=1e-12)


def test_a_dataarray_comes_back_in_its_canonical_order():
    da = tiny.dataset(3)["temperature"]
    for d in (da, da.transpose("longitude", "latitude", "level", "time")):
        out = xfuxi.regrid(d, TARGET, method="bilinear")
        assert out.dims == CANONICAL
