"""Channels: (variable, level) stacking round-trips and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xfuxi.data.channels import (
    channel_name,
    channels_of,
    parse_channel_name,
    stack,
    stack_values,
    unstack,
)
from xfuxi.data.schema import SchemaError


@pytest.fixture
def ds():
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {
            "temperature": (
                ("time", "level", "latitude", "longitude"),
                rng.normal(size=(2, 3, 4, 8)),
            ),
            "surface_pressure": (("time", "latitude", "longitude"), rng.normal(size=(2, 4, 8))),
        },
        coords={"time": np.arange(2), "level": [250.0, 500.0, 850.0],
                "latitude": np.linspace(-60, 60, 4), "longitude": np.arange(0, 360, 45.0)},
    )  # fmt: skip


def test_round_trip_keeps_order_and_values(ds):
    chans = channels_of(ds)
    assert chans == [("temperature", 250.0), ("temperature", 500.0), ("temperature", 850.0),
                     ("surface_pressure", None)]  # fmt: skip
    arr = stack(ds, chans)
    assert arr.dims == ("time", "channel", "latitude", "longitude")
    np.testing.assert_array_equal(arr.isel(channel=1).values, ds.temperature.sel(level=500).values)
    back = unstack(arr, chans)
    xr.testing.assert_equal(back, ds.drop_vars([]))


def _root(a):
    while a.base is not None:
        a = a.base
    return a


def test_unstack_without_copy_gives_views_of_the_buffer(ds):
    chans = channels_of(ds)
    arr = stack(ds, chans).drop_vars("channel")
    buffer = arr.values
    views = unstack(arr, chans, copy=False)
    xr.testing.assert_identical(views, unstack(arr, chans))
    for name in views.data_vars:
        assert _root(views[name].values) is _root(buffer)  # no second copy
        assert not np.shares_memory(unstack(arr, chans)[name].values, buffer)
    # channels of a variable out of order: a copy, in the right order
    swapped = [chans[1], chans[0], chans[2], chans[3]]
    out = unstack(stack(ds, swapped).drop_vars("channel"), swapped, copy=False)
    np.testing.assert_array_equal(out.temperature.sel(level=250.0), ds.temperature.sel(level=250.0))


def test_channel_subset_and_order(ds):
    chans = [("surface_pressure", None), ("temperature", 850.0)]
    arr = stack(ds, chans)
    np.testing.assert_array_equal(arr.isel(channel=0).values, ds.surface_pressure.values)
    assert list(arr.channel.values) == ["surface_pressure", "temperature@850"]


def test_missing_level_is_named(ds):
    with pytest.raises(SchemaError, match="level 700.0 hPa of 'temperature' is missing"):
        stack(ds, [("temperature", 700.0)])


def test_names_round_trip():
    for c in [("geopotential", 500.0), ("surface_pressure", None), ("u_component_of_wind", 1.0)]:
        assert parse_channel_name(channel_name(c)) == c


def test_in_memory_stack_equals_the_general_way(ds):
    """The NumPy path for in-memory data gives what the general (dask-lazy) way gives."""
    import xfuxi.data.channels as channels

    cases = {
        "as is": ds,
        "one time": ds.isel(time=0),
        "members": ds.expand_dims(member=2),
        "float64 and float32": ds.assign(surface_pressure=ds.surface_pressure.astype("float32")),
    }
    chans = [("surface_pressure", None), ("temperature", 850.0), ("temperature", 250.0)]
    for label, case in cases.items():
        fast = channels._stack_in_memory(case, chans)
        assert fast is not None, label
        xr.testing.assert_identical(fast, stack(case.chunk(), chans).compute())
        xr.testing.assert_identical(stack(case, chans), fast)
    # variables whose other dims differ in order go the general way, transposed alike
    mixed = ds.assign(surface_pressure=ds.surface_pressure.transpose("latitude", "time", ...))
    assert channels._stack_in_memory(mixed, chans) is None
    xr.testing.assert_identical(stack(mixed, chans), stack(ds, chans))


def test_stack_values_are_the_stacked_arrays_values(ds):
    chans = [("surface_pressure", None), ("temperature", 850.0), ("temperature", 250.0)]
    order = ("time", "channel", "latitude", "longitude")
    cases = {
        "in memory": ds,
        "dask": ds.chunk(),
        "time last": ds.transpose("level", "latitude", "longitude", "time"),
        "float32": ds.astype("float32"),
    }
    for label, case in cases.items():
        got = stack_values(case, chans)
        want = stack(case, chans).transpose(*order).values
        assert isinstance(got, np.ndarray), label
        assert got.dtype == want.dtype and got.shape == (2, 3, 4, 8), label
        np.testing.assert_array_equal(got, want, err_msg=label)
    np.testing.assert_array_equal(stack_values(ds, chans)[:, 1], ds.temperature.sel(level=850.0))
    with pytest.raises(SchemaError, match="level 300"):
        stack_values(ds, [("temperature", 300.0)])


def test_in_memory_unstack_equals_the_general_way(ds):
    chans = [("surface_pressure", None), ("temperature", 850.0), ("temperature", 250.0)]
    arr = stack(ds.expand_dims(member=2), chans).assign_attrs(units="K")
    for case in (arr, arr.isel(member=0)):
        xr.testing.assert_identical(unstack(case, chans), unstack(case.chunk(), chans).compute())
    # variables on different levels: the general way (aligned on the union of the levels)
    ds2 = ds.assign(passive_tracer=ds.temperature * 0.0 + 1.0)
    mixed = [("temperature", 850.0), ("passive_tracer", 500.0)]
    back = unstack(stack(ds2, mixed), mixed)
    assert back["level"].values.tolist() == [500.0, 850.0]
    assert np.isnan(back["temperature"].sel(level=500.0)).all()
