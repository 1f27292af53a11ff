"""``region=`` on every score (issue 24 item 1): named bands, boxes, masks, several at once."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from xfuxi.verify import (
    acc,
    area_weights,
    bias,
    brier_score,
    crps,
    ensemble_mean_rmse,
    mae,
    mse,
    rank_histogram,
    rmse,
    spread,
    spread_skill_ratio,
)
from xfuxi.verify.regions import REGIONS, Region

LAT = np.linspace(-78.75, 78.75, 8)
LON = np.arange(0.0, 360.0, 30.0)


def ens(m=5, seed=0):
    rng = np.random.default_rng(seed)
    coords = {"latitude": LAT, "longitude": LON}
    fc = xr.DataArray(rng.normal(size=(2, m, LAT.size, LON.size)), coords=coords,
                      dims=("time", "number", "latitude", "longitude"), name="t")  # fmt: skip
    truth = xr.DataArray(rng.normal(size=(2, LAT.size, LON.size)), coords=coords,
                         dims=("time", "latitude", "longitude"), name="t")  # fmt: skip
    return fc, truth


SCORES = {
    "rmse": lambda f, t, **k: rmse(f.isel(number=0), t, **k),
    "mse": lambda f, t, **k: mse(f.isel(number=0), t, **k),
    "mae": lambda f, t, **k: mae(f.isel(number=0), t, **k),
    "bias": lambda f, t, **k: bias(f.isel(number=0), t, **k),
    "acc": lambda f, t, **k: acc(f.isel(number=0), t, t.isel(time=0, drop=True) * 0.3, **k),
    "crps": crps,
    "spread": lambda f, t, **k: spread(f, **k),
    "ensemble_mean_rmse": ensemble_mean_rmse,
    "spread_skill_ratio": spread_skill_ratio,
    "brier_score": lambda f, t, **k: brier_score(f, t, threshold=0.3, **k),
}


@pytest.mark.parametrize("name", sorted(SCORES))
def test_region_equals_score_of_the_subset(name):
    score = SCORES[name]
    fc, truth = ens()
    inside = fc.latitude.where(np.abs(fc.latitude) >= 20, drop=True).values
    # the area weights of the whole grid at the points kept (those of a subset grid differ)
    area = area_weights(fc.latitude)
    sub = score(fc.sel(latitude=inside), truth.sel(latitude=inside),
                weights=area.sel(latitude=inside))  # fmt: skip
    got = score(fc, truth, region="extra-tropics")
    assert float(got) == pytest.approx(float(sub), rel=1e-12)
    # a box crossing 0°, as a mapping and as a Region
    box = {"latitude": (-40, 60), "longitude": (300, 60)}
    lons = [x for x in LON if x >= 300 or x <= 60]
    lats = [x for x in LAT if -40 <= x <= 60]
    sub = score(fc.sel(latitude=lats, longitude=lons), truth.sel(latitude=lats, longitude=lons),
                weights=area.sel(latitude=lats))  # fmt: skip
    assert float(score(fc, truth, region=box)) == pytest.approx(float(sub), rel=1e-12)
    assert float(score(fc, truth, region=Region("b", **box))) == pytest.approx(float(sub))
    # several regions give a region dim, each equal to the region alone
    many = score(fc, truth, region=["global", "tropics", box])
    assert list(many.region.values) == ["global", "tropics", "box2"]
    for label, r in zip(many.region.values, ["global", "tropics", box], strict=True):
        assert float(many.sel(region=label)) == pytest.approx(float(score(fc, truth, region=r)))
    assert float(many.sel(region="global")) == pytest.approx(float(score(fc, truth)), rel=1e-12)


def test_masks_boolean_and_weights_and_nan_outside():
    fc, truth = ens()
    f = fc.isel(number=0)
    mask = xr.DataArray(np.abs(LAT) < 50, dims="latitude", coords={"latitude": LAT})
    kept = LAT[np.abs(LAT) < 50]
    area = area_weights(f.latitude)
    ref = rmse(f.sel(latitude=kept), truth.sel(latitude=kept), weights=area.sel(latitude=kept))
    assert float(rmse(f, truth, region=mask)) == pytest.approx(float(ref), rel=1e-12)
    # a weight mask (e.g. a land fraction) multiplies the area weights
    frac = xr.DataArray(np.linspace(0, 1, LON.size), dims="longitude", coords={"longitude": LON})
    w = area.values[:, None] * frac.values[None, :]
    err = ((f - truth) ** 2).values
    expect = np.sqrt(np.mean([(e * w).sum() / w.sum() for e in err]))
    assert float(rmse(f, truth, region=frac)) == pytest.approx(expect, rel=1e-12)
    # NaN outside the region (or at zero weight) does not make the score NaN
    holey = f.where(np.abs(f.latitude) >= 20)
    assert np.isfinite(float(rmse(holey, truth, region="extra-tropics")))
    assert np.isnan(float(rmse(holey, truth)))
    zero = xr.DataArray((np.abs(LAT) >= 20) * 1.0, dims="latitude", coords={"latitude": LAT})
    assert float(rmse(holey, truth, weights=zero)) == pytest.approx(
        float(rmse(f, truth, weights=zero)), rel=1e-12
    )
    fcn = fc.where(np.abs(fc.latitude) >= 20)
    assert np.isfinite(float(crps(fcn, truth, region="extra-tropics")))


def test_region_errors():
    fc, truth = ens()
    f = fc.isel(number=0)
    with pytest.raises(ValueError, match="unknown region 'mars'; named regions are"):
        rmse(f, truth, region="mars")
    with pytest.raises(ValueError, match="'extratropics' \\(did you mean 'extra-tropics'\\?\\)"):
        rmse(f, truth, region="extratropics")
    with pytest.raises(ValueError, match="does not reduce"):
        rmse(f, truth, dim=["time", "longitude"], region="tropics")
    with pytest.raises(ValueError, match="no grid point"):
        rmse(f, truth, region={"latitude": (85, 89)})
    with pytest.raises(ValueError, match="labels repeat"):
        rmse(f, truth, region=["tropics", "tropics"])
    bad = xr.DataArray(np.ones(3), dims="latitude", coords={"latitude": [0.0, 1.0, 2.0]})
    with pytest.raises(ValueError, match="coordinate 'latitude' differs"):
        rmse(f, truth, region=bad)
    with pytest.raises(ValueError, match=">= 0"):
        rmse(f, truth, region=xr.DataArray(-np.ones(LAT.size), dims="latitude",
                                           coords={"latitude": LAT}))  # fmt: skip
    with pytest.raises(ValueError, match="low <= high"):
        Region("x", latitude=(10, -10))


def test_named_regions_follow_weatherbench2():
    lat = xr.Dataset(coords={"latitude": np.array([-90.0, -20.0, 0.0, 20.0, 60.0, 90.0])})
    assert REGIONS["tropics"].mask(lat).values.tolist() == [0, 1, 1, 1, 0, 0]
    assert REGIONS["extra-tropics"].mask(lat).values.tolist() == [1, 1, 0, 1, 1, 1]
    assert REGIONS["arctic"].mask(lat).values.tolist() == [0, 0, 0, 0, 1, 1]
    grid = xr.Dataset(coords={"latitude": [50.0, 80.0],
                              "longitude": np.array([-10.0, 0.0, 40.0, 45.0, 350.0])})  # fmt: skip
    eu = REGIONS["europe"].mask(grid).transpose("latitude", "longitude")
    assert eu.values.tolist() == [[1, 1, 1, 0, 1], [0, 0, 0, 0, 0]]


def test_rank_histogram_region_and_bins():
    fc, truth = ens(m=5)
    inside = LAT[np.abs(LAT) <= 20]
    ref = rank_histogram(fc.sel(latitude=inside), truth.sel(latitude=inside))
    got = rank_histogram(fc, truth, region="tropics")
    np.testing.assert_array_equal(got.values, ref.values)
    many = rank_histogram(fc, truth, region=["global", "tropics"])
    np.testing.assert_array_equal(many.sel(region="tropics").values, ref.values)
    full = rank_histogram(fc, truth)
    three = rank_histogram(fc, truth, bins=3)  # 6 ranks, 2 per bin
    np.testing.assert_array_equal(three.values, full.values.reshape(3, 2).sum(1))
    assert three.attrs["bins"] == 3
    with pytest.raises(ValueError, match="bins must be between 1 and M"):
        rank_histogram(fc, truth, bins=7)


def test_rank_histogram_skipna_ranks_among_valid_members():
    fc, truth = ens(m=5)
    fc = fc.copy()
    fc[0, 0, 0, 0] = np.nan
    assert int(rank_histogram(fc, truth).sum()) == truth.size - 1
    got = rank_histogram(fc, truth, skipna=True, dim=[])
    x = np.delete(fc.values[0, :, 0, 0], 0)
    r = int((x < truth.values[0, 0, 0]).sum())  # rank among 4 valid members: bin r*6//5
    assert int(got.values[:, 0, 0, 0].argmax()) == r * 6 // 5
    assert int(got.sum()) == truth.size


def test_region_stays_lazy_with_dask():
    fc, truth = ens()
    fcd = fc.copy(data=da.from_array(fc.values, chunks=(1, 5, 4, 6)))
    lazy = crps(fcd, truth, region=["tropics", "extra-tropics"])
    assert isinstance(lazy.data, da.Array)
    xr.testing.assert_allclose(lazy.compute(), crps(fc, truth, region=["tropics", "extra-tropics"]))
