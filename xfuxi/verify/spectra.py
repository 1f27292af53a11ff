"""Zonal energy spectra: how much variance a field has at each scale along latitude circles.

A forecast model trained on a mean-squared error smooths its forecasts more with every step
(the small scales it cannot predict are damped towards their mean): its RMSE improves while
its fields lose the energy of the small scales, which the RMSE does not show. The zonal
energy spectrum shows it, scale by scale, and is one of WeatherBench2's diagnostics. The
definition is WeatherBench2's (``ZonalEnergySpectrum`` and the average over a latitude
band of its spectra page); it is written out in the documentation, docs/verification.md
(Zonal energy spectra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import xarray as xr

from ..constants import EARTH_RADIUS
from ..data.schema import PROVENANCE_KEYS, SchemaError, _degrees
from ..grid import is_whole_circle
from .weights import as_float

__all__ = ["zonal_energy_spectrum"]

T = TypeVar("T", xr.Dataset, xr.DataArray)


def _check(data: Any) -> None:
    if not isinstance(data, (xr.Dataset, xr.DataArray)):
        raise TypeError(f"expected an xarray Dataset or DataArray; got {type(data).__name__}")
    for name in ("latitude", "longitude"):
        if name not in data.dims:
            raise ValueError(
                f"the data have no {name!r} dimension (dims {list(data.dims)}); the zonal "
                "spectrum is taken along each latitude circle of a latitude/longitude grid"
            )
        if name not in data.coords:  # positions 0..n-1 would be read as degrees
            raise ValueError(f"the data have a {name!r} dimension but no {name!r} coordinate")
        try:
            _degrees(data.coords.to_dataset(), name)
        except SchemaError as err:
            raise ValueError(str(err)) from None
        if data[name].ndim != 1:
            raise ValueError(f"the {name!r} coordinate must be one-dimensional")
    if isinstance(data, xr.Dataset):
        if not data.data_vars:
            raise ValueError("the Dataset has no data variables")
        flat = [str(v) for v in data.data_vars if "longitude" not in data[v].dims]
        flat += [str(v) for v in data.data_vars if "latitude" not in data[v].dims]
        if flat:  # they would fail inside the transform, or be dropped silently
            raise ValueError(
                f"variable(s) {sorted(set(flat))} lack a latitude or longitude dim: select "
                "the variables on the grid (ds[[...]]) first"
            )
    lat = np.asarray(data["latitude"].values, dtype="float64")
    if lat.size == 0 or not np.all(np.isfinite(lat)) or np.abs(lat).max() > 90.0:
        raise ValueError(f"latitudes must be finite degrees within [-90, 90]; got {lat}")
    lon = np.asarray(data["longitude"].values, dtype="float64")
    if not is_whole_circle(lon):
        raise ValueError(
            f"the zonal spectrum needs longitudes evenly spaced round the whole circle (any "
            f"origin, order or convention); got {lon.size} longitude(s) "
            f"{lon.min() if lon.size else ''}..{lon.max() if lon.size else ''}: a regional "
            "grid or a gap would be read as periodic"
        )


def _band(latitude_band: Any) -> tuple[float, float] | None:
    if latitude_band is None:
        return None
    try:
        lo, hi = (float(b) for b in latitude_band)
    except (TypeError, ValueError):
        raise ValueError(
            f"latitude_band must be two numbers of degrees (low, high) of |latitude|, such as "
            f"(30, 60); got {latitude_band!r}"
        ) from None
    if isinstance(latitude_band, str) or not (0.0 <= lo < hi <= 90.0):
        raise ValueError(
            f"latitude_band must be (low, high) with 0 <= low < high <= 90 degrees of "
            f"|latitude|; got {latitude_band!r}"
        )
    return lo, hi


def _power(x: np.ndarray) -> np.ndarray:
    """``w_k |F_k|²`` along the last axis, ``F`` the DFT divided by the number of points,
    ``w_0 = 1`` and ``w_k = 2`` for ``k > 0`` (positive and negative wavenumbers)."""
    f = np.fft.rfft(np.asarray(x, dtype="float64"), axis=-1, norm="forward")
    p = f.real**2 + f.imag**2
    p[..., 1:] *= 2.0
    return p


def _units(da: xr.DataArray) -> str:
    units = da.attrs.get("units")
    return f"m ({units})**2" if units not in (None, "") else "m (data units)**2"


def zonal_energy_spectrum(data: T, /, *, latitude_band: Sequence[float] | None = None) -> T:
    """The zonal energy spectrum of each latitude circle, or its mean over a latitude band.

    Parameters
    ----------
    data : Dataset or DataArray
        Fields on ``latitude`` and ``longitude`` (degrees; the longitudes evenly spaced
        round the whole circle, in any origin, order or convention), with any other dims
        (time, lead, level, member), which are kept. Every variable of a Dataset must be
        on the grid. Dask-backed data stay lazy.
    latitude_band : (low, high), optional
        Average the spectra of the latitudes with ``low <= |latitude| <= high`` (both
        hemispheres), weighted by ``cos(latitude)``, after interpolating each to common
        frequencies (as WeatherBench2's spectra: the same wavenumber is a shorter wave at a
        higher latitude; a wave longer than a latitude's circle is left out of that
        latitude's share, where WeatherBench2 interpolates it from the zonal mean).
        Default: the spectrum of every latitude circle.

    Returns
    -------
    Dataset or DataArray
        The type of ``data``, each variable's ``longitude`` dim replaced by
        ``zonal_wavenumber`` (``0 .. n // 2`` for ``n`` longitudes), with the coordinates
        ``frequency`` (m⁻¹) and ``wavelength`` (m, infinite at wavenumber 0) on
        ``latitude`` and ``zonal_wavenumber``. With ``latitude_band``, the dims
        ``latitude`` and ``zonal_wavenumber`` are replaced by ``frequency`` (``n // 2 + 1``
        frequencies from 0 to the highest that every latitude of the band resolves) with
        the coordinate ``wavelength``. Units: metres times the data's units squared
        (``attrs["units"]``). A circle with a missing value gives NaN at every wavenumber
        (and NaN for its band).

    Raises
    ------
    TypeError
        ``data`` is not an xarray object, or holds complex or non-numeric data.
    ValueError
        No ``latitude`` or ``longitude`` dim or coordinate, latitudes beyond ±90 or in
        radians, longitudes that are not evenly spaced round the whole circle (a regional
        grid), a Dataset variable off the grid, or a ``latitude_band`` that is not
        ``0 <= low < high <= 90`` or holds no latitude of the grid.

    Notes
    -----
    For the ``n`` values ``f_l`` round a circle of circumference ``C = 2π a cos φ``
    (``a = 6371008.7714 m``, :mod:`xfuxi.constants`), ``F_k = (1/n) Σ_l f_l e^{−2πikl/n}``
    and ``S_k = C |F_k|²`` for ``k = 0`` and ``S_k = 2 C |F_k|²`` for ``0 < k <= n // 2``
    (WeatherBench2's ``ZonalEnergySpectrum``, which also doubles the Nyquist wavenumber of
    an even ``n``). Then ``Σ_k S_k`` is the integral of ``f²`` round the circle, ``(C/n)
    Σ_l f_l²``, up to the Nyquist term. Wavenumber ``k`` has the frequency ``k / C`` and
    the wavelength ``C / k``. See the documentation, docs/verification.md (Zonal energy
    spectra).

    Examples
    --------
    One wave of wavenumber 3 on the equator: all its energy at ``k = 3``, and the sum is
    the integral of ``f²`` round the circle (``C / 2`` for a unit sine):

    >>> lon = np.arange(0.0, 360.0, 30.0)
    >>> f = xr.DataArray(np.sin(3 * np.deg2rad(lon))[None], dims=("latitude", "longitude"),
    ...                  coords={"latitude": [0.0], "longitude": lon}, attrs={"units": "K"})
    >>> s = zonal_energy_spectrum(f)
    >>> s = s.isel(latitude=0)
    >>> int(s.argmax("zonal_wavenumber")), round(float(s.sum() / (np.pi * 6371008.7714)), 6)
    (3, 1.0)
    >>> s.attrs["units"], round(float(s["wavelength"].sel(zonal_wavenumber=3)) / 1e3)  # km
    ('m (K)**2', 13343)
    >>> f.fuxi.zonal_energy_spectrum().isel(latitude=0).equals(s)  # through the accessor
    True
    """
    _check(data)
    band = _band(latitude_band)
    data = as_float(data, "data")
    lon = np.mod(np.asarray(data["longitude"].values, dtype="float64"), 360.0)
    # the energy at a wavenumber does not depend on where the circle starts or which way
    # round it goes; sorted, the wavenumber counts waves round the circle in any layout
    ordered = data.isel(longitude=np.argsort(lon, kind="stable"))
    n = lon.size
    n_k = n // 2 + 1
    lat = data["latitude"]
    circumference = (
        2.0 * np.pi * EARTH_RADIUS * np.clip(np.cos(np.deg2rad(lat.astype("float64"))), 0.0, None)
    )
    wavenumber = np.arange(n_k)

    def transform(da: xr.DataArray) -> xr.DataArray:
        out = xr.apply_ufunc(
            _power,
            da,
            input_core_dims=[["longitude"]],
            output_core_dims=[["zonal_wavenumber"]],
            dask="parallelized",
            output_dtypes=["float64"],
            dask_gufunc_kwargs={"output_sizes": {"zonal_wavenumber": n_k}, "allow_rechunk": True},
            keep_attrs=False,
        )
        return (out * circumference).assign_coords(zonal_wavenumber=wavenumber)

    def finish(spec: xr.DataArray, source: xr.DataArray) -> xr.DataArray:
        spec = spec.transpose(*[d if d != "longitude" else "zonal_wavenumber" for d in source.dims])
        if band is not None:
            spec = _band_mean(spec, band)
        else:
            k = xr.DataArray(wavenumber, dims="zonal_wavenumber")
            frequency = (k / circumference).astype("float64")
            with np.errstate(divide="ignore"):
                wavelength = (circumference / k).astype("float64")
            spec = spec.assign_coords(
                frequency=frequency.assign_attrs(units="m**-1"),
                wavelength=wavelength.assign_attrs(units="m"),
            )
            spec["zonal_wavenumber"].attrs = {"long_name": "zonal wavenumber", "units": "1"}
        spec.attrs = {
            "units": _units(source),
            "long_name": "zonal energy spectrum"
            + (f" of {what}" if (what := source.attrs.get("long_name", source.name)) else ""),
        }
        spec.name = source.name
        return spec

    if isinstance(ordered, xr.DataArray):
        out_da = finish(transform(ordered), ordered)
        out_da.attrs.update(_provenance(data, band))
        return out_da
    out = xr.Dataset({v: finish(transform(ordered[v]), ordered[v]) for v in ordered.data_vars})
    out.attrs = _provenance(data, band)
    return out


def _provenance(data: xr.Dataset | xr.DataArray, band: tuple[float, float] | None) -> dict:
    attrs: dict[str, Any] = {k: data.attrs[k] for k in PROVENANCE_KEYS if k in data.attrs}
    if band is not None:
        attrs["latitude_band"] = list(band)
    return attrs


def _band_mean(spec: xr.DataArray, band: tuple[float, float]) -> xr.DataArray:
    """The cos-latitude weighted mean over the band's latitudes of their spectra, each
    interpolated linearly to common frequencies: ``n_k`` from 0 to the highest frequency
    every latitude resolves (that of the circle nearest the equator); at a frequency below
    a latitude's wavenumber 1, over the other latitudes."""
    lat = np.asarray(spec["latitude"].values, dtype="float64")
    inside = (np.abs(lat) >= band[0]) & (np.abs(lat) <= band[1])
    if not inside.any():
        raise ValueError(
            f"latitude_band {list(band)} holds no latitude of the grid (|latitude| "
            f"{np.abs(lat).min():g}..{np.abs(lat).max():g})"
        )
    spec = spec.isel(latitude=np.flatnonzero(inside))
    lat = lat[inside]
    circ = 2.0 * np.pi * EARTH_RADIUS * np.clip(np.cos(np.deg2rad(lat)), 0.0, None)
    n_k = spec.sizes["zonal_wavenumber"]
    top = n_k - 1
    if circ.max() <= 0.0:
        raise ValueError(f"latitude_band {list(band)} holds only the poles, circles of length 0")
    frequency = np.linspace(0.0, top / circ.max(), n_k)
    # the (fractional) wavenumber of each common frequency on each latitude circle
    k = np.clip(frequency[None, :] * circ[:, None], 0.0, top)
    below = np.minimum(np.floor(k).astype(int), max(top - 1, 0))
    above = np.minimum(below + 1, top)
    frac = k - below
    # a wavelength longer than a latitude's circle (0 < k < 1) is not in its spectrum:
    # interpolated there, the zonal mean's energy (k = 0) would leak into the planetary
    # scales, so that latitude sits out that frequency (the nearest the equator never does)
    weights = np.cos(np.deg2rad(lat))[:, None] * ((k >= 1.0 - 1e-9) | (frequency[None, :] == 0))
    weights = weights / weights.sum(0, keepdims=True)

    def mean(s: np.ndarray) -> np.ndarray:  # s (..., latitude, zonal_wavenumber)
        lo = np.take_along_axis(s, np.broadcast_to(below, s.shape[:-1] + below.shape[-1:]), -1)
        hi = np.take_along_axis(s, np.broadcast_to(above, s.shape[:-1] + above.shape[-1:]), -1)
        at = lo * (1.0 - frac) + hi * frac
        return np.einsum("...lf,lf->...f", at, weights)

    out = xr.apply_ufunc(
        mean,
        spec,
        input_core_dims=[["latitude", "zonal_wavenumber"]],
        output_core_dims=[["frequency"]],
        dask="parallelized",
        output_dtypes=["float64"],
        dask_gufunc_kwargs={"output_sizes": {"frequency": n_k}, "allow_rechunk": True},
        keep_attrs=False,
    )
    with np.errstate(divide="ignore"):
        wavelength = 1.0 / frequency
    return out.assign_coords(
        frequency=("frequency", frequency, {"units": "m**-1"}),
        wavelength=("frequency", wavelength, {"units": "m"}),
    )
