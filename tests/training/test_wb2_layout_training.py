"""Training on data in the layout of a WeatherBench2 store: static (time-less) fields and
variables the model does not use beside the ones it does, read lazily; and a grid that is
not global in longitude, which the (periodic) FuXi networks must refuse."""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pytest
import torch
import xarray as xr

from tests import tiny
from xfuxi.data.schema import SchemaError
from xfuxi.data.stats import normalization_stats
from xfuxi.training.config import TrainConfig
from xfuxi.training.forecast import train_forecast

from .test_forecast import _world as _wave

LAT, LON = tiny.LAT, tiny.LON


def _world(n_times: int = 8, seed: int = 0) -> xr.Dataset:
    """test_forecast.py's wave travelling east, 8 times."""
    return _wave(n_times, seed)


def _wb2(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with a WeatherBench2 store's static field and an unused time-varying one."""
    rng = np.random.default_rng(1)
    shape = (ds.sizes["time"], ds.sizes["latitude"], ds.sizes["longitude"])
    return ds.assign(
        geopotential_at_surface=(("latitude", "longitude"),
                                 rng.standard_normal(shape[1:]).astype("float32")),
        mean_sea_level_pressure=(("time", "latitude", "longitude"),
                                 1e5 + rng.standard_normal(shape).astype("float32")),
    )  # fmt: skip


class _Unreadable:
    """An array whose values cannot be read (a variable that must never be loaded)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape, self.dtype, self.ndim = shape, np.dtype("float32"), len(shape)

    def __getitem__(self, key):
        raise RuntimeError("an unused variable was read")


def _train(ds: xr.Dataset, **kw):
    cfg = TrainConfig(preset="tiny", steps=2, batch_size=2, warmup_steps=1, **kw)
    return train_forecast(ds, config=cfg, progress=False)


def _same(a, b) -> None:
    assert [tuple(c) for c in a.channels] == [tuple(c) for c in b.channels]
    assert a.config["metadata"]["history"] == b.config["metadata"]["history"]
    np.testing.assert_array_equal(a.stats.mean, b.stats.mean)
    np.testing.assert_array_equal(a.stats.std, b.stats.std)
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_training_ignores_static_and_unused_variables():
    ds = _world()
    plain = _train(ds)  # statistics computed from the data (stats=None)
    wb2 = _train(_wb2(ds), variables=("temperature",))
    _same(plain, wb2)


def test_lazy_store_reads_only_the_used_variables():
    ds = _world()
    shape = (ds.sizes["time"], ds.sizes["latitude"], ds.sizes["longitude"])
    lazy = ds.chunk({"time": 3}).assign(
        geopotential_at_surface=(("latitude", "longitude"),
                                 dsa.from_array(_Unreadable(shape[1:]), chunks=shape[1:])),
        mean_sea_level_pressure=(("time", "latitude", "longitude"),
                                 dsa.from_array(_Unreadable(shape), chunks=shape)),
    )  # fmt: skip
    _same(_train(ds), _train(lazy, variables=("temperature",)))


def test_default_variables_name_the_static_fields():
    with pytest.raises(SchemaError, match=r"geopotential_at_surface.*drop_vars") as err:
        _train(_wb2(_world()))
    assert "variables" in str(err.value)


def test_a_chosen_static_variable_is_refused_by_name():
    with pytest.raises(SchemaError, match="no time dimension.*geopotential_at_surface|"
                       "geopotential_at_surface.*no time dimension"):  # fmt: skip
        _train(_wb2(_world()), variables=("temperature", "geopotential_at_surface"))


def test_normalization_stats_names_every_static_variable():
    ds = _wb2(_world()).assign(land_sea_mask=(("latitude", "longitude"), np.zeros((8, 16))))
    with pytest.raises(ValueError, match="drop_vars") as err:
        normalization_stats(ds)
    assert "geopotential_at_surface" in str(err.value) and "land_sea_mask" in str(err.value)
    # dropped as the message says, the statistics are those of the data without them
    dropped = normalization_stats(ds.drop_vars(["geopotential_at_surface", "land_sea_mask"]))
    assert dropped.identical(normalization_stats(_world().assign(
        mean_sea_level_pressure=_wb2(_world())["mean_sea_level_pressure"])))  # fmt: skip


def test_regional_box_is_refused():
    ds = _world()
    # a box across 0°: 270°..360° and 0°..90° (validate sorts it to [0..90, 270..337.5])
    box = ds.isel(longitude=[12, 13, 14, 15, 0, 1, 2, 3, 4])
    with pytest.raises(SchemaError, match=r"whole circle.*periodic in longitude"):
        _train(box)


def test_global_grid_in_another_convention_is_accepted():
    ds = _world()
    shifted = ds.assign_coords(longitude=((ds["longitude"] + 180.0) % 360.0) - 180.0)
    model = _train(shifted)
    assert model.grid_shape == (8, 16)
