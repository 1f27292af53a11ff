"""Zonal energy spectra (xfuxi.verify.spectra): WeatherBench2's definition, checked against a
direct DFT, Parseval's relation, known waves, other layouts of the same grid, dask, and the
latitude-band mean against its definition written out."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xfuxi
from xfuxi.constants import EARTH_RADIUS
from xfuxi.verify.spectra import zonal_energy_spectrum

LAT = np.array([-60.0, -30.0, 0.0, 30.0, 45.0, 60.0])


def _field(n_lon: int = 16, seed: int = 0, lat: np.ndarray = LAT) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    lon = np.arange(n_lon) * 360.0 / n_lon
    return xr.DataArray(
        rng.normal(size=(2, lat.size, n_lon)),
        dims=("time", "latitude", "longitude"),
        coords={"time": [0, 1], "latitude": lat, "longitude": lon},
        name="temperature",
        attrs={"units": "K", "long_name": "temperature"},
    )


def _circumference(lat: np.ndarray) -> np.ndarray:
    return 2 * np.pi * EARTH_RADIUS * np.cos(np.deg2rad(lat))


@pytest.mark.parametrize("n_lon", [15, 16])
def test_against_a_direct_dft(n_lon):
    f = _field(n_lon)
    s = zonal_energy_spectrum(f)
    x = f.values
    l = np.arange(n_lon)
    for k in range(n_lon // 2 + 1):
        fk = (x * np.exp(-2j * np.pi * k * l / n_lon)).sum(-1) / n_lon
        want = (1 if k == 0 else 2) * np.abs(fk) ** 2 * _circumference(LAT)
        np.testing.assert_allclose(s.sel(zonal_wavenumber=k).values, want, rtol=1e-12, atol=1e-6)
    assert s.dims == ("time", "latitude", "zonal_wavenumber")


def test_parseval_for_an_odd_number_of_longitudes():
    f = _field(15)
    s = zonal_energy_spectrum(f)
    integral = (f**2).sum("longitude") * _circumference(LAT) / 15
    np.testing.assert_allclose(s.sum("zonal_wavenumber"), integral, rtol=1e-12)


def test_a_wave_puts_its_energy_at_its_wavenumber():
    lon = np.arange(0.0, 360.0, 10.0)
    f = xr.DataArray(
        2.0 * np.cos(5 * np.deg2rad(lon) + 0.3)[None] + 1.0,
        dims=("latitude", "longitude"),
        coords={"latitude": [45.0], "longitude": lon},
    )
    s = zonal_energy_spectrum(f).isel(latitude=0)
    c = _circumference(np.array([45.0]))[0]
    np.testing.assert_allclose(s.sel(zonal_wavenumber=0), c * 1.0, rtol=1e-12)
    np.testing.assert_allclose(s.sel(zonal_wavenumber=5), c * 2.0**2 / 2, rtol=1e-12)
    others = s.drop_sel(zonal_wavenumber=[0, 5])
    assert float(abs(others).max()) < 1e-9 * c
    np.testing.assert_allclose(s["wavelength"].sel(zonal_wavenumber=5), c / 5, rtol=1e-12)
    np.testing.assert_allclose(s["frequency"].sel(zonal_wavenumber=5), 5 / c, rtol=1e-12)
    assert np.isinf(s["wavelength"].sel(zonal_wavenumber=0))


@pytest.mark.parametrize("layout", ["rolled", "minus180", "descending"])
def test_the_same_circle_in_another_layout(layout):
    f = _field(16)
    other = {
        "rolled": f.roll(longitude=5, roll_coords=True),
        "minus180": f.assign_coords(longitude=((f["longitude"] + 180) % 360) - 180).sortby(
            "longitude"
        ),
        "descending": f.isel(longitude=slice(None, None, -1)),
    }[layout]
    xr.testing.assert_allclose(zonal_energy_spectrum(other), zonal_energy_spectrum(f))


def test_dataset_dask_and_attributes():
    f = _field(16)
    ds = xr.Dataset({"temperature": f, "u": (f * 2).assign_attrs(units="m s**-1")})
    ds.attrs = {"title": "a world", "history": "not kept"}
    before = ds.copy(deep=True)
    out = zonal_energy_spectrum(ds)
    xr.testing.assert_identical(ds, before)  # not mutated
    assert out.attrs == {"title": "a world"}
    assert out["temperature"].attrs["units"] == "m (K)**2"
    assert out["u"].attrs["units"] == "m (m s**-1)**2"
    np.testing.assert_allclose(out["u"], 4 * out["temperature"], rtol=1e-12)
    lazy = zonal_energy_spectrum(ds.chunk({"time": 1, "longitude": 4}))
    assert lazy["temperature"].chunks is not None  # still lazy
    xr.testing.assert_allclose(lazy.compute(), out)
    banded = zonal_energy_spectrum(ds.chunk({"latitude": 2}), latitude_band=(30, 60))
    assert banded["temperature"].chunks is not None
    xr.testing.assert_allclose(banded.compute(), zonal_energy_spectrum(ds, latitude_band=(30, 60)))
    xr.testing.assert_allclose(ds.fuxi.zonal_energy_spectrum(), out)
    xr.testing.assert_allclose(xfuxi.zonal_energy_spectrum(f), out["temperature"])


def test_a_missing_value_spoils_its_own_circle_only():
    f = _field(16).copy()
    f[0, 1, 3] = np.nan
    s = zonal_energy_spectrum(f)
    assert s.isel(time=0, latitude=1).isnull().all()
    assert s.isel(time=0).drop_isel(latitude=1).notnull().all()
    assert s.isel(time=1).notnull().all()


def test_band_mean_is_the_weighted_mean_of_interpolated_spectra():
    f = _field(16)
    s = zonal_energy_spectrum(f)
    band = zonal_energy_spectrum(f, latitude_band=(30, 60))
    rows = [-60.0, -30.0, 30.0, 45.0, 60.0]  # |latitude| in [30, 60]: the equator left out
    c = _circumference(np.array(rows))
    freq = np.linspace(0, 8 / c.max(), 9)
    np.testing.assert_allclose(band["frequency"], freq, rtol=1e-12)
    want, total = 0.0, 0.0
    for lat, ci in zip(rows, c, strict=True):
        one = s.sel(latitude=lat)
        # the spectrum at fractional wavenumber freq * C, linearly between wavenumbers
        at = np.stack([np.interp(freq * ci, np.arange(9), one.isel(time=t)) for t in range(2)])
        # a wave longer than this circle (0 < k < 1) is not in this latitude's spectrum
        inside = (freq * ci >= 1 - 1e-9) | (freq == 0)
        want = want + np.where(inside, np.cos(np.deg2rad(lat)) * at, 0.0)
        total = total + np.where(inside, np.cos(np.deg2rad(lat)), 0.0)
    want = want / total
    # the longest wave of the band (k = 1 at 30°) is shorter than the circle at 60° only
    assert (freq[1] * c < 1 - 1e-9).any() and total[1] < total[2]
    np.testing.assert_allclose(band.values, want, rtol=1e-12)
    assert band.dims == ("time", "frequency")
    assert band.attrs["latitude_band"] == [30.0, 60.0]
    np.testing.assert_allclose(band["wavelength"][1:], 1 / freq[1:], rtol=1e-12)


def test_the_zonal_mean_does_not_leak_into_the_band_mean():
    lon = np.arange(0.0, 360.0, 22.5)
    lat = np.array([30.0, 60.0])
    wave = np.cos(2 * np.deg2rad(lon))  # wavenumber 2 on both circles
    f = xr.DataArray(np.stack([wave, wave]), dims=("latitude", "longitude"),
                     coords={"latitude": lat, "longitude": lon})  # fmt: skip
    plain = zonal_energy_spectrum(f, latitude_band=(30, 60))
    shifted = zonal_energy_spectrum(f + 300.0, latitude_band=(30, 60))  # a zonal mean of 300
    # only the zonal mean (frequency 0) changes; the longest waves are not raised by it
    np.testing.assert_allclose(shifted[1:], plain[1:], rtol=1e-9, atol=1e-6 * float(plain.max()))
    assert float(shifted[0]) > 1e3 * float(plain.max())


def test_band_of_one_latitude_is_its_spectrum():
    f = _field(16)
    band = zonal_energy_spectrum(f, latitude_band=(44, 46))
    one = zonal_energy_spectrum(f).sel(latitude=45.0)
    np.testing.assert_allclose(band.values, one.values, rtol=1e-12)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: f.isel(longitude=slice(0, 8)), "whole circle"),
        (lambda f: f.isel(longitude=[0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]), "whole"),
        (lambda f: f.rename(latitude="lat"), "no 'latitude' dimension"),
        (lambda f: f.drop_vars("longitude"), "no 'longitude' coordinate"),
        (lambda f: f.assign_coords(latitude=f["latitude"].assign_attrs(units="radians")), "radian"),
        (lambda f: f.assign_coords(latitude=f["latitude"] * 2), "within"),
        (lambda f: xr.Dataset({"t": f, "flat": f.isel(longitude=0)}), "flat"),
        (lambda f: xr.Dataset(), "no 'latitude'"),
    ],
)
def test_refusals(change, message):
    with pytest.raises(ValueError, match=message):
        zonal_energy_spectrum(change(_field(16)))


@pytest.mark.parametrize("band", [(60, 30), (-10, 30), (0, 100), "30", (30,), (0, 20)])
def test_bad_bands(band):
    f = _field(16, lat=np.array([30.0, 45.0, 60.0]))
    with pytest.raises(ValueError, match="latitude_band"):
        zonal_energy_spectrum(f, latitude_band=band)


def test_type_refusals():
    with pytest.raises(TypeError, match="xarray"):
        zonal_energy_spectrum(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="complex"):
        zonal_energy_spectrum(_field(16) * 1j)
    with pytest.raises(TypeError):
        zonal_energy_spectrum(_field(16).astype(str))


def test_plot_spectra_draws_each_curve_in_wavelength_order():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    f = _field(16).isel(time=0)
    band = zonal_energy_spectrum(f, latitude_band=(30, 60))
    one = zonal_energy_spectrum(f).sel(latitude=45.0)
    try:
        ax = xfuxi.plot_spectra({"band": band, "45N": one}, title="t")
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["band", "45N"]
        x, y = ax.lines[0].get_data()
        keep = np.isfinite(band["wavelength"].values)  # the zonal mean is not drawn
        assert np.all(np.diff(x) > 0) and x.size == keep.sum()
        np.testing.assert_allclose(np.sort(x), np.sort(band["wavelength"].values[keep] / 1e3))
        assert ax.xaxis_inverted() and ax.get_yscale() == "log"
        assert ax.get_ylabel() == "energy [m (K)²]" and ax.get_title() == "t"
        for bad, error, message in [
            ({}, ValueError, "empty"),
            (zonal_energy_spectrum(f), ValueError, "one curve has one dim"),
            (f, ValueError, "wavelength"),
            ({"a": band, "b": band.assign_attrs(units="m (m s**-1)**2")}, ValueError, "units"),
            ({"a": band.values}, TypeError, "DataArray"),
            (band * 0, ValueError, "no finite positive"),
        ]:
            with pytest.raises(error, match=message):
                xfuxi.plot_spectra(bad)
    finally:
        plt.close("all")
