"""Scores of data in the dtypes and time encodings a user meets: float16 (and bfloat16)
data, a float32 ensemble with a float64 truth, latitudes stored in float32, cftime and
time-zone-aware times, and complex data. Each was scored wrongly or refused with a raw
error before (each test fails on that code)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
import xfuxi.verify as V
from xfuxi.verify import _kernels
from xfuxi.verify.weights import align_valid_time

LAT = np.linspace(-85.7605871204438, 85.7605871204438, 8)  # Gaussian-like: not float32-exact
LON = np.arange(16) * 22.5
DIMS = ["time", "latitude", "longitude"]


def field(seed=0, nt=4, loc=250.0, scale=30.0):
    rng = np.random.default_rng(seed)
    return xr.DataArray(
        rng.uniform(loc - scale, loc + scale, (nt, LAT.size, LON.size)),
        dims=DIMS,
        coords={"time": pd.date_range("2020-01-01", periods=nt, freq="6h"), "latitude": LAT,
                "longitude": LON},
        name="temperature",
    )  # fmt: skip


def wb2_pair(nt=2, leads=(6, 12)):
    """A forecast with leads and a truth on valid times covering them."""
    truth = field(nt=nt + 3)
    lead = pd.to_timedelta(list(leads), "h")
    fc = xr.concat([truth.isel(time=slice(0, nt)) + 1.0] * len(lead), "prediction_timedelta")
    fc = fc.assign_coords(prediction_timedelta=lead).transpose("time", "prediction_timedelta", ...)
    return fc, truth


# --- float16 data: computed in float64 ----------------------------------------------------


@pytest.mark.parametrize("weights", ["area", None])
@pytest.mark.parametrize("dim", [None, "time", ["latitude", "longitude"]])
def test_float16_scores_are_computed_and_returned_in_float64(weights, dim):
    truth = field()
    fc = truth + 300.0  # an error of 300: its square overflows float16 (max 65504)
    f16, t16 = fc.astype("float16"), truth.astype("float16")
    ref = V.mse(f16.astype("float64"), t16.astype("float64"), dim=dim, weights=weights)
    got = V.mse(f16, t16, dim=dim, weights=weights)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.values, ref.values, rtol=1e-12)
    assert np.isfinite(got.values).all()
    r = V.rmse(f16, t16, dim=dim, weights=weights)
    assert r.dtype == np.float64 and np.isfinite(r.values).all()
    b = V.bias(f16, t16, dim=dim, weights=weights)
    assert b.dtype == np.float64


def test_float16_acc_is_not_zero():
    truth = field()
    rng = np.random.default_rng(1)
    fc = truth + rng.normal(0.3, 1.7, truth.shape)
    clim = truth.mean("time") * 0 + 250.0
    ref = V.acc(fc, truth, clim, weights=None)
    got = V.acc(fc.astype("float16"), truth.astype("float16"), clim.astype("float16"),
                weights=None)  # fmt: skip
    assert got.dtype == np.float64
    assert float(got) == pytest.approx(float(ref), abs=1e-4)  # was 0.0: den overflowed


def test_float16_ensemble_spread_in_float64():
    truth = field()
    ens = xr.concat([truth + 300.0, truth - 300.0], "number").astype("float16")
    got = V.spread(ens, weights=None)
    assert got.dtype == np.float64
    assert float(got) == pytest.approx(float(np.sqrt(2 * 300.0**2)), rel=1e-3)


def test_bfloat16_scores_in_float64():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    truth = field()
    fc = truth + 300.0
    bf, tb = fc.astype(ml_dtypes.bfloat16), truth.astype(ml_dtypes.bfloat16)
    got = V.rmse(bf, tb, weights=None)
    assert got.dtype == np.float64
    ref = V.rmse(bf.astype("float64"), tb.astype("float64"), weights=None)
    assert float(got) == pytest.approx(float(ref), rel=1e-12)


def test_float32_scores_keep_float32_unless_float64_weights_enter():
    """The documented behaviour of float32 data: computed as they are (not doubled in
    memory); area weights (float64) make the spatial means float64."""
    truth = field().astype("float32")
    fc = truth + 1
    assert V.rmse(fc, truth, weights=None).dtype == np.float32
    assert V.rmse(fc, truth, dim="time").dtype == np.float32
    assert V.rmse(fc, truth).dtype == np.float64


# --- an ensemble and a truth of different float types -----------------------------------


@pytest.mark.parametrize("use_numba", [True, False])
@pytest.mark.parametrize("skipna", [False, True])
def test_crps_of_float32_ensemble_keeps_a_float64_truth(use_numba, skipna, monkeypatch):
    if use_numba:
        pytest.importorskip("numba")
    else:
        monkeypatch.setenv("XFUXI_DISABLE_NUMBA", "1")
    assert _kernels.have_numba() == use_numba
    rng = np.random.default_rng(4)
    truth = field(loc=7.5e4, scale=2.5e4) + rng.uniform(0, 1e-3, (4, LAT.size, LON.size))
    ens = xr.concat([truth + rng.normal(10, 30, truth.shape) for _ in range(8)], "number")
    ens32 = ens.astype("float32")
    ref = V.crps(ens32.astype("float64"), truth, dim=[], skipna=skipna)
    got = V.crps(ens32, truth, dim=[], skipna=skipna)
    assert got.dtype == np.float64
    # rounding the truth to float32 moved each point by up to 4e-3
    np.testing.assert_allclose(got.values, ref.values, rtol=1e-12, atol=1e-9)
    # a float32 truth with a float32 ensemble stays float32
    assert V.crps(ens32, truth.astype("float32"), dim=[]).dtype == np.float32


# --- float32 coordinates ------------------------------------------------------------------


def test_truth_and_climatology_with_float32_latitudes_are_matched():
    truth = field()
    fc = truth + 1.0
    tr32 = truth.assign_coords(latitude=truth.latitude.astype("float32"))
    assert not np.allclose(tr32.latitude.values, LAT, rtol=0, atol=1e-6)
    # reversed, so that the matched values must be reordered onto the forecast's grid
    tr32 = tr32.isel(latitude=slice(None, None, -1))
    expected = V.rmse(fc, truth, dim=["time", "longitude"])
    got = V.rmse(fc, tr32, dim=["time", "longitude"])
    np.testing.assert_allclose(got.values, expected.values, rtol=1e-12)
    np.testing.assert_array_equal(got.latitude.values, LAT)  # the forecast's coordinates
    clim = truth.mean("time").assign_coords(latitude=LAT.astype("float32"))
    a = V.acc(fc, truth, clim, dim=["time", "longitude"])
    ref = V.acc(fc, truth, truth.mean("time"), dim=["time", "longitude"])
    np.testing.assert_allclose(a.values, ref.values, rtol=1e-12)


def test_a_truth_on_another_grid_is_still_refused():
    truth = field()
    fc = truth + 1.0
    shifted = truth.assign_coords(latitude=LAT + 1e-3)  # 0.001°: another grid, not rounding
    with pytest.raises(ValueError, match="coordinate 'latitude' differs"):
        V.rmse(fc, shifted)


def test_forecast_values_closer_than_the_tolerance_are_not_matched_twice():
    lat = np.array([0.0, 3e-5, 10.0])
    fc = xr.DataArray(np.zeros(3), dims="latitude", coords={"latitude": lat})
    truth = xr.DataArray(np.zeros(3), dims="latitude", coords={"latitude": [0.0, 5.0, 10.0]})
    with pytest.raises(ValueError, match="match the same latitude"):
        V.rmse(fc, truth, weights=None)


def test_float32_rounding_of_another_coordinate_is_matched_or_named():
    x = np.array([100.123456789, 200.987654321])
    fc = xr.DataArray(np.zeros(2), dims="x", coords={"x": x})
    tr32 = xr.DataArray(np.ones(2), dims="x", coords={"x": x.astype("float32")})
    assert float(V.mse(fc, tr32, weights=None)) == 1.0
    # float32-rounded values stored in float64 again: refused, the message says why
    tr = tr32.assign_coords(x=x.astype("float32").astype("float64"))
    with pytest.raises(ValueError, match="differ only by float32 rounding"):
        V.mse(fc, tr, weights=None)


# --- cftime and time-zone-aware times -----------------------------------------------------


def test_cftime_times_are_refused_with_the_conversion():
    pytest.importorskip("cftime")
    fc, truth = wb2_pair()
    tc = xr.date_range("2020-01-01", periods=truth.sizes["time"], freq="6h", calendar="noleap",
                       use_cftime=True)  # fmt: skip
    truth_c = truth.assign_coords(time=tc)
    for f, t in ((fc, truth_c), (fc.assign_coords(time=tc[:2]), truth_c)):
        with pytest.raises(TypeError, match=r"cftime dates \(noleap calendar\).*convert_calendar"):
            V.rmse(f, t)
        with pytest.raises(TypeError, match="cftime"):
            align_valid_time(f, t)
    with pytest.raises(TypeError, match=r"forecast's coordinate 'time' holds cftime"):
        V.rmse(fc.assign_coords(time=tc[:2]), truth)
    # without leads: a cftime truth against datetime64 forecast times
    with pytest.raises(TypeError, match="truth's coordinate 'time' holds cftime"):
        V.rmse(truth, truth_c)


def test_time_zone_aware_times_are_refused_with_the_conversion():
    fc, truth = wb2_pair()
    tz = truth.assign_coords(time=truth.indexes["time"].tz_localize("UTC"))
    with pytest.raises(TypeError, match=r"truth's coordinate 'time' carries a time zone"):
        V.rmse(fc, tz)
    with pytest.raises(TypeError, match="tz_localize"):
        V.rmse(truth, tz)
    # the conversion the message gives works
    fixed = tz.assign_coords(time=tz.indexes["time"].tz_convert("UTC").tz_localize(None))
    assert float(V.rmse(fc, fixed)) == float(V.rmse(fc, truth))


# --- complex data -------------------------------------------------------------------------


def test_complex_data_are_refused_by_the_scores():
    truth = field()
    fc = (truth + 1.0).astype("complex128")
    with pytest.raises(TypeError, match="complex data.*real part"):
        V.rmse(fc, truth)
    with pytest.raises(TypeError, match="truth holds complex"):
        V.mae(truth, fc)
    ds = xr.Dataset({"temperature": fc})
    with pytest.raises(TypeError, match="'temperature': complex128"):
        V.bias(ds, truth.to_dataset())
    with pytest.raises(TypeError, match="climatology holds complex"):
        V.acc(truth + 1.0, truth, truth.mean("time").astype("complex128"))
    with pytest.raises(TypeError, match="complex"):
        V.crps(xr.concat([fc, fc], "number"), truth)
    with pytest.raises(TypeError, match="complex"):
        V.spread(xr.concat([fc, fc], "number"))


def test_gaussian_scores_take_float16_std_in_float64_and_refuse_complex():
    lat = np.array([-30.0, 30.0])
    coords = {"latitude": lat, "longitude": [0.0, 180.0]}
    mean = xr.DataArray(np.zeros((2, 2)), dims=("latitude", "longitude"), coords=coords)
    std = xr.full_like(mean, 300.0).astype("float16")
    # sigma squared is 90000, beyond float16's 65504: it was inf
    var = xfuxi.gaussian_variance(mean.astype("float16"), std=std)
    assert var.dtype == np.float64 and float(var) == pytest.approx(90000.0)
    crps = xfuxi.gaussian_crps(mean, mean + 1.0, std=std)
    assert np.isfinite(float(crps))
    with pytest.raises(TypeError, match="the std holds complex data"):
        xfuxi.gaussian_variance(mean, std=std.astype("complex64"))


# --- big-endian coordinates (h5py, np.fromfile, undecoded reads): the same scores --------


def _big_endian(obj, names):
    return obj.assign_coords({n: obj[n].values.astype(obj[n].dtype.newbyteorder(">"))
                              for n in names})  # fmt: skip


def test_big_endian_coordinates_score_as_native_ones():
    """pandas' index of a big-endian coordinate fails at its first lookup: scores raised
    "Big-endian buffer not supported on little-endian compiler"."""
    truth = field(1)
    fc = field(2)
    ens = xr.concat([fc, fc + 1.0], "number")
    be = _big_endian(truth, ["latitude", "longitude"])
    assert not be["latitude"].dtype.isnative
    xr.testing.assert_allclose(V.rmse(fc, be), V.rmse(fc, truth))
    xr.testing.assert_allclose(V.rmse(_big_endian(fc, ["latitude"]), be), V.rmse(fc, truth))
    xr.testing.assert_allclose(V.crps(ens, be), V.crps(ens, truth))
    clim = truth.mean("time")
    xr.testing.assert_allclose(
        V.acc(fc, truth, _big_endian(clim, ["longitude"])), V.acc(fc, truth, clim)
    )
    assert not be["latitude"].dtype.isnative  # the input is not changed


def test_regrid_of_big_endian_coordinates():
    src = field(3).to_dataset()
    target = {"latitude": np.linspace(-80.0, 80.0, 5), "longitude": np.arange(8) * 45.0}
    got = xfuxi.regrid(_big_endian(src, ["latitude", "longitude"]), target)
    xr.testing.assert_allclose(got, xfuxi.regrid(src, target))
