"""Balanced perturbations check std and amplitude as Perlin ones do; the noise of
perlin_ensemble does not depend on the order of levels, latitudes or longitudes (each test
failed on the code before its fix)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from tests import tiny
from xfuxi.perturbations.balanced import balanced_perturbations
from xfuxi.perturbations.perlin import perlin_ensemble, perlin_perturbations

CH = [
    ("geopotential", 500.0),
    ("u_component_of_wind", 500.0),
    ("v_component_of_wind", 500.0),
    ("passive_tracer", 500.0),
]
LAT = np.linspace(-80, 80, 9)
LON = np.arange(16) * 22.5


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(std=[500.0, 10, 10, np.nan]), "std must be finite and non-negative"),
        (dict(std=[500.0, 10, 10, np.inf]), "std must be finite and non-negative"),
        (dict(std=[-500.0, 10, 10, 1]), "std must be finite and non-negative"),
        (dict(std=[500.0, 10, 10, 1], amplitude=-0.05), "amplitude must be a non-negative"),
        (dict(std=[500.0, 10, 10, 1], amplitude=np.nan), "amplitude must be a non-negative"),
        (dict(std=[500.0, 10, 10, 1], amplitude=[0.1, 0.1, 0.1, -1.0]), "non-negative"),
    ],
)
def test_balanced_refuses_what_perlin_refuses(kw, match):
    with pytest.raises(ValueError, match=match):
        balanced_perturbations(1, channels=CH, latitude=LAT, longitude=LON, seed=0, **kw)
    with pytest.raises(ValueError, match=match):  # the same check, the same message
        perlin_perturbations(1, shape=(8, 16), seed=0, **kw)


def test_balanced_zero_std_and_amplitude_are_accepted():
    p = balanced_perturbations(
        1, channels=CH, latitude=LAT, longitude=LON, std=[500.0, 10, 10, 0.0], seed=0
    )
    assert torch.isfinite(p).all() and (p[:, 3] == 0).all()
    p = balanced_perturbations(
        1, channels=CH, latitude=LAT, longitude=LON, std=[500.0, 10, 10, 1], amplitude=0.0
    )
    assert (p == 0).all()


def _noise(ds: xr.Dataset, **kw) -> xr.Dataset:
    std = ds.std([d for d in ds.dims if d != "level"])  # fixed, whatever the order
    return perlin_ensemble(ds, n=2, std=std, seed=3, **kw) - ds


def _canonical(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.assign_coords(longitude=ds.longitude % 360)
    return ds.sortby("longitude").sortby("latitude").sortby("level")


def test_perlin_ensemble_of_a_canonical_state_is_the_documented_draw():
    # the normal path: channels in ds's order (levels ascending), the grid as given
    ds = tiny.dataset(n_time=1)
    std = ds.std([d for d in ds.dims if d != "level"])
    got = perlin_ensemble(ds, n=2, std=std, seed=3, amplitude=0.1) - ds
    stds = [float(std["temperature"].sel(level=lv)) for lv in ds.level.values]
    stds.append(float(std["passive_tracer"]))
    want = perlin_perturbations(
        2, std=stds, shape=(8, 16), amplitude=0.1, seed=3, dtype=torch.float64
    ).numpy()
    np.testing.assert_allclose(got["temperature"].isel(time=0).values, want[:, :2], atol=1e-9)
    np.testing.assert_allclose(got["passive_tracer"].isel(time=0).values, want[:, 2], atol=1e-9)


@pytest.mark.parametrize("flip", ["latitude", "longitude", "level", "all"])
def test_perlin_ensemble_noise_does_not_depend_on_grid_order(flip):
    ds = tiny.dataset(n_time=1)
    other = tiny.reoriented(ds, flip)
    kept = other.copy(deep=True)
    a = _noise(ds)
    b = _canonical(_noise(other))
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].transpose(*a[v].dims).values)
    xr.testing.assert_identical(other, kept)  # the input is not modified


def test_perlin_ensemble_amplitude_per_channel_follows_its_channel():
    ds = tiny.dataset(n_time=1)
    flipped = ds.isel(level=slice(None, None, -1))  # channels 850, 500, tracer
    a = _noise(ds, amplitude=np.array([0.1, 0.0, 0.2]))  # 500, 850, tracer
    b = _noise(flipped, amplitude=np.array([0.0, 0.1, 0.2]))
    assert (a["temperature"].sel(level=850) == 0).all()
    np.testing.assert_array_equal(a["temperature"].values, b["temperature"].sortby("level").values)


@pytest.mark.parametrize("dim", ["number", "member", "realization"])
def test_perlin_ensemble_refuses_an_input_ensemble_naming_its_dim(dim):
    # ds + noise aligned the input's members with the new ones by label: 3 members and
    # n_members=2 gave 2, number=[10, 11] none; a member dim was kept beside number
    from xfuxi.data.schema import SchemaError

    ds = tiny.dataset(2)
    for labels in ([0, 1, 2], [10, 11]):
        with pytest.raises(
            SchemaError,
            match=rf"ensemble dim '{dim}' \({len(labels)} members\)"
            rf".*ds\.isel\({dim}=0\).*ds\.mean\('{dim}'\)",
        ):
            perlin_ensemble(ds.expand_dims({dim: labels}), n=2, seed=0)
    # other dims are perturbed as before
    assert perlin_ensemble(ds, n=2, seed=0).sizes["number"] == 2


def test_perlin_ensemble_std_forms_get_clear_errors():
    ds = tiny.dataset(4)
    # a field (the std over time only) is not a std per variable and level
    with pytest.raises(
        ValueError,
        match=r"std\['temperature'\] at level 500 must be one value "
        r"per variable \(and level\).*got dims \{'latitude': 8, 'longitude': 16\}",
    ):
        perlin_ensemble(ds, n=2, seed=0, std=ds.std("time"))
    # a table that lacks a level of ds: pandas' KeyError before
    short = xr.Dataset(
        {"temperature": ("level", [1.0]), "passive_tracer": 1.0}, coords={"level": [500]}
    )
    with pytest.raises(
        ValueError,
        match=r"std\['temperature'\] lacks level 850; it has levels "
        r"\[500\]",
    ):
        perlin_ensemble(ds, n=2, seed=0, std=short)
    # the documented forms still work: per variable, and per level
    table = xr.Dataset(
        {"temperature": ("level", [1.0, 2.0]), "passive_tracer": 1.0},
        coords={"level": ds["level"].values},
    )
    for std in (table, xr.Dataset({"temperature": 1.0, "passive_tracer": 1.0})):
        assert perlin_ensemble(ds, n=2, seed=0, std=std).sizes["number"] == 2


def test_perlin_ensemble_of_float16_data_takes_the_std_in_single_precision():
    # ds.std of float16 data overflowed: "std must be finite and non-negative, got [inf...]"
    ds = tiny.dataset(4)
    half = ds.astype("float16")
    out = perlin_ensemble(half, n=2, seed=0)
    assert all(out[v].dtype == np.float16 for v in out.data_vars)
    assert all(np.isfinite(out[v].values).all() for v in out.data_vars)
    # the noise of the float32 std, in float16
    ref = perlin_ensemble(half.astype("float32"), n=2, seed=0)
    for v in out.data_vars:
        np.testing.assert_allclose(out[v].values.astype("float32"), ref[v].values, rtol=2e-3)
    # float32 and float64 data: the std is taken as before, in their own precision
    for dt in ("float32", "float64"):
        d = ds.astype(dt)
        std = d.std([x for x in d.dims if x != "level"])
        xr.testing.assert_identical(
            perlin_ensemble(d, n=2, seed=0),
            perlin_ensemble(d, n=2, seed=0, std=std),
        )


@pytest.mark.parametrize("seed", [2**32 + 5, -1, 3.7, "3", True])
def test_seeds_of_torch_generators_are_integers_below_2_to_the_32(seed):
    """torch keeps 32 bits of a seed: 2**32 + 5 drew the stream of 5 (Perlin noise, the
    En4DVar members, a cycle's run); -1, 3.7 (taken as 3), "3" and True were accepted."""
    from xfuxi.assimilation.config import BackgroundError
    from xfuxi.assimilation.cycle_config import CycleConfig

    ds = tiny.dataset(n_time=1)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
        perlin_ensemble(ds, n=2, seed=seed)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
        BackgroundError(seed=seed)
    with pytest.raises(ValueError, match=r"CycleConfig.seed must be an integer in \[0, 2\*\*32\)"):
        CycleConfig(n_cycles=1, seed=seed)
    # the largest seed is taken, and gives its own stream
    top = perlin_ensemble(ds, n=2, seed=2**32 - 1)
    assert not top.identical(perlin_ensemble(ds, n=2, seed=0))
