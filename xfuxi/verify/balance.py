"""Geostrophic balance diagnostics: geostrophic and ageostrophic wind, balance summaries.

Works on any Dataset with ``geopotential``, ``u_component_of_wind`` and
``v_component_of_wind`` on a regular latitude/longitude grid (longitude periodic), on
pressure levels or not. Output names follow WeatherBench2's derived variables
(``u_component_of_geostrophic_wind``, ``geostrophic_wind_speed``,
``ageostrophic_wind_speed``, ...). Every output keeps the input's provenance attributes
(``title``, ``source``, ``initial_conditions``, ``background_source``), so that a map of
it knows which world it is of; each variable has its own ``units`` and ``long_name``
(``"1"`` for the dimensionless correlation and ratio).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import xarray as xr

from .. import physics
from ..constants import GRAVITY
from ..data.schema import PROVENANCE_KEYS
from .weights import area_weights

__all__ = ["ageostrophic_wind", "balance_summary", "geostrophic_wind"]

DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "southern_extratropics": (-90.0, -20.0),
    "tropics": (-20.0, 20.0),
    "northern_extratropics": (20.0, 90.0),
}


def _require(ds: xr.Dataset, names: Sequence[str]) -> None:
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"expected an xarray Dataset; got {type(ds).__name__}")
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise ValueError(f"dataset lacks variable(s) {missing} needed for balance diagnostics")
    for d in ("latitude", "longitude"):
        if d not in ds.dims:
            raise ValueError(f"dataset has no {d!r} dimension")
        if d not in ds.coords:  # its positions 0..n-1 would be read as degrees
            raise ValueError(
                f"dataset has a {d!r} dimension but no {d!r} coordinate: the balance "
                f"diagnostics need the {d} of each grid point in degrees"
            )


def _provenance(ds: xr.Dataset) -> dict:
    """The attributes of ``ds`` that say what the data came from (:data:`PROVENANCE_KEYS`:
    ``title``, ``source``, ``initial_conditions``, ``background_source``): kept by every
    output, so that, for example, a map of a diagnostic of the Held–Suarez world still knows
    that world has no continents."""
    return {k: ds.attrs[k] for k in PROVENANCE_KEYS if k in ds.attrs}


_WIND = {"units": "m s**-1"}
_LONG_NAMES = {
    "u_component_of_geostrophic_wind": "eastward geostrophic wind",
    "v_component_of_geostrophic_wind": "northward geostrophic wind",
    "geostrophic_wind_speed": "geostrophic wind speed",
    "u_component_of_ageostrophic_wind": "eastward ageostrophic wind",
    "v_component_of_ageostrophic_wind": "northward ageostrophic wind",
    "ageostrophic_wind_speed": "ageostrophic wind speed",
    "wind_speed": "wind speed",
}


def _wind_attrs(name: str) -> dict:
    return {**_WIND, "long_name": _LONG_NAMES[name]}


def _standard_height(pressure_hpa: float) -> float:
    """Geopotential height (m) of a pressure level in the ICAO standard atmosphere.

    >>> round(_standard_height(500.0))
    5574
    """
    if pressure_hpa >= 226.32:  # troposphere, 6.5 K/km from 288.15 K at 1013.25 hPa
        return 44330.8 * (1.0 - (pressure_hpa / 1013.25) ** 0.190263)
    return 11000.0 + 6341.6 * np.log(226.32 / pressure_hpa)  # isothermal at 216.65 K


def _check_geopotential_units(z: xr.DataArray) -> None:
    """Refuse geopotential in other units than m² s⁻².

    Without a ``units`` attribute the values decide where a pressure level between 100 and
    850 hPa shows them: a mean within half of the standard atmosphere's geopotential
    *height* of that level is geopotential height in metres (9.8 times too small). The
    level may be a dimension or a scalar coordinate (``ds.sel(level=500)``), in hPa (the
    default) or in Pa (``units`` "Pa", or, without units, every level above 1100). Of
    dask-backed data the first field of that level is looked at first (one chunk read):
    the whole level only where that field is all NaN or looks like heights.
    """
    if "units" in z.attrs:
        units = str(z.attrs["units"])
        if units.replace(" ", "") not in (
            "m**2s**-2", "m2s-2", "m^2s^-2", "m^2/s^2", "m**2/s**2"
        ):  # fmt: skip
            raise ValueError(
                f"geopotential has units {units!r}; expected m**2 s**-2 (multiply heights by g)"
            )
        return
    if "level" not in z.coords or z["level"].ndim > 1:
        return
    coord = z["level"]
    if coord.ndim == 1 and "level" not in z.dims:  # a level coordinate on another dim
        return
    if coord.dtype.kind not in "iuf":  # not pressures: nothing to tell by
        return
    values = np.atleast_1d(np.asarray(coord.values, dtype="float64"))
    if "units" in coord.attrs:
        level_units = str(coord.attrs["units"]).strip()
        if level_units in ("Pa", "pascal", "pascals"):
            scale = 0.01
        elif level_units in ("hPa", "mbar", "millibar", "millibars", "mb"):
            scale = 1.0
        else:
            return
    else:  # hPa, unless every level is above any pressure in hPa (then Pa)
        scale = 0.01 if values.size and bool(np.all(values > 1100.0)) else 1.0
    levels = [(float(p) * scale, float(p)) for p in values if 100.0 <= float(p) * scale <= 850.0]
    if not levels:
        return
    level, raw = min(levels, key=lambda p: abs(p[0] - 500.0))
    field = z.sel(level=raw) if coord.ndim == 1 else z
    height = _standard_height(level)
    others = [d for d in field.dims if d not in ("latitude", "longitude")]
    if field.chunks is not None and all(field.sizes[d] for d in others):
        # dask: one field (the first time, lead, member ...) tells metres from m² s⁻², and
        # reads one chunk, not the whole record, while the lazy result is only built. Where
        # it is all NaN or looks like heights, the whole level decides, as in memory (so
        # nothing is refused that the mean over every time lets through)
        mean = float(field.isel(dict.fromkeys(others, 0)).mean())
        if np.isnan(mean) or abs(mean - height) < 0.5 * height:
            mean = float(field.mean())
    else:
        mean = float(field.mean())
    if abs(mean - height) < 0.5 * height:
        raise ValueError(
            f"geopotential has no units attribute and its mean at {level:g} hPa is {mean:.0f}, "
            f"a geopotential height in m (the standard atmosphere's is {height:.0f} m; its "
            f"geopotential {height * GRAVITY:.0f} m**2 s**-2): multiply heights by g "
            f"({GRAVITY}) or set units to 'm**2 s**-2'"
        )


_WIND_UNITS = ("ms**-1", "ms-1", "m/s", "ms^-1", "meter/second", "meterspersecond", "m.s-1")


def _check_wind_units(ds: xr.Dataset) -> None:
    for name in ("u_component_of_wind", "v_component_of_wind"):
        units = str(ds[name].attrs.get("units", "m s**-1"))
        if units.replace(" ", "").lower() not in _WIND_UNITS:
            raise ValueError(
                f"{name} has units {units!r}; expected m s**-1 (the geostrophic wind's): "
                "convert it first"
            )


def geostrophic_wind(
    ds: xr.Dataset,
    /,
    *,
    equator_band: float = 10.0,
) -> xr.Dataset:
    """Geostrophic wind from geopotential on the sphere, masked near the equator.

    Parameters
    ----------
    ds : Dataset
        Data with ``geopotential`` (m² s⁻²) on ``latitude``/``longitude`` (degrees; longitude
        covering the globe, periodic: a whole circle of equally spaced longitudes in any
        order or convention, 0..360, −180..180, rolled or descending; the result is on the
        input's longitudes, in its order).
    equator_band : float, default 10.0
        Half-width in degrees of the band around the equator where ``f → 0`` and the
        result is set to NaN (``|latitude| < equator_band``; with 0, a latitude on the
        equator is still NaN); below 90.

    Returns
    -------
    Dataset
        ``u_component_of_geostrophic_wind``, ``v_component_of_geostrophic_wind`` and
        ``geostrophic_wind_speed`` (m s⁻¹) on the dims of ``geopotential``.

    Raises
    ------
    ValueError
        If ``geopotential`` or a horizontal dimension or its coordinate is missing, or its
        units are not m² s⁻² (without a ``units`` attribute: its values at a pressure level,
        a dimension or a scalar coordinate in hPa or Pa, are those of geopotential height in
        metres), or ``equator_band`` is negative.
    TypeError
        If ``ds`` is not a Dataset.

    Notes
    -----
    The kernel :func:`xfuxi.physics.geostrophic_wind` (the one geostrophic wind of xfuxi,
    also used by the balanced perturbations): ``u_g = −(1/f) ∂Φ/∂y``, ``v_g = (1/f) ∂Φ/∂x``
    with ``f = 2Ω sin φ``, ``∂/∂y = (1/a) ∂/∂φ`` and ``∂/∂x = 1/(a cos φ) ∂/∂λ`` on a sphere
    of radius ``a = 6371008.7714 m`` (:mod:`xfuxi.constants`; Holton, *An Introduction to
    Dynamic Meteorology*, §3.2; MetPy's ``geostrophic_wind``). Derivatives are
    second-order centred differences, periodic in longitude and on the (possibly
    non-uniform) latitude grid, one-sided second order at the outermost rows. Inside the
    equatorial band, where the kernel holds ``|f|`` and tapers the wind to zero, this
    diagnostic reports NaN. See the definitions in the documentation (docs/design.md).

    Examples
    --------
    >>> lat = np.array([30.0, 40.0, 50.0]); lon = np.arange(0.0, 360.0, 90.0)
    >>> z = xr.DataArray(np.broadcast_to(-1e4 * np.deg2rad(lat)[:, None], (3, 4)).copy(),
    ...                  dims=("latitude", "longitude"), coords={"latitude": lat, "longitude": lon},
    ...                  attrs={"units": "m**2 s**-2"})
    >>> ug = geostrophic_wind(xr.Dataset({"geopotential": z}))["u_component_of_geostrophic_wind"]
    >>> round(float(ug.sel(latitude=40.0, longitude=0.0)), 3)  # 1e4 / (a f), f at 40°N
    16.743
    >>> g = xr.Dataset({"geopotential": z}).fuxi.geostrophic_wind()  # through the accessor
    >>> round(float(g["u_component_of_geostrophic_wind"].sel(latitude=40.0, longitude=0.0)), 3)
    16.743
    """
    _require(ds, ["geopotential"])
    if not 0 <= equator_band < 90:  # 90 or more: every latitude masked, all NaN
        raise ValueError(f"equator_band must be in [0, 90) degrees; got {equator_band}")
    z = ds["geopotential"]
    _check_geopotential_units(z)
    lat = z["latitude"].values.astype("float64")
    lon = z["longitude"].values.astype("float64")
    # physics.geostrophic_wind regularises the band; equator_band=0 with a latitude on the
    # equator is masked here (as in the band) rather than refused
    band = max(float(equator_band), 1e-9) if np.any(lat == 0) else float(equator_band)

    def kernel(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return physics.geostrophic_wind(a, lat, lon, equator_band=band)

    # block by block, each field whole (the derivatives need every latitude and longitude):
    # the kernel on a dask array itself gave uneven longitude chunks (1, 62, 1) that zarr
    # cannot store; the result is chunked as the input below
    lazy = z.chunks is not None
    dtypes = [a.dtype for a in kernel(np.zeros((lat.size, lon.size), z.dtype))] if lazy else None
    ug, vg = xr.apply_ufunc(
        kernel,
        z,
        input_core_dims=[["latitude", "longitude"]],
        output_core_dims=[["latitude", "longitude"], ["latitude", "longitude"]],
        dask="parallelized",
        output_dtypes=dtypes,
        dask_gufunc_kwargs={"allow_rechunk": True},
        keep_attrs=False,
    )
    # no geostrophic wind is diagnosed inside the band, where the kernel only tapers it, nor
    # on a pole row, where the kernel copies the next row's v
    keep = (np.abs(lat) >= band) & (np.abs(lat) <= 90.0 - 1e-6)
    outside = xr.DataArray(keep, dims="latitude", coords={"latitude": z["latitude"]})
    ug, vg = ug.where(outside), vg.where(outside)
    out = xr.Dataset(
        {
            "u_component_of_geostrophic_wind": ug.transpose(*z.dims),
            "v_component_of_geostrophic_wind": vg.transpose(*z.dims),
        }
    )
    out["geostrophic_wind_speed"] = np.hypot(
        out["u_component_of_geostrophic_wind"], out["v_component_of_geostrophic_wind"]
    )
    if lazy:
        out = out.chunk(z.chunksizes)
    for name in out.data_vars:
        out[name].attrs = _wind_attrs(str(name))
    _coordinate_attrs(out, z)
    out.attrs = {**_provenance(ds), "equator_band": float(equator_band)}
    return out


def _coordinate_attrs(out: xr.Dataset, source: xr.Dataset | xr.DataArray) -> None:
    """Give the coordinates of ``out`` the attributes of the source's (units of latitude,
    longitude and level ...), which the kernel dropped."""
    for name in out.coords:
        if name in source.coords:
            out[name].attrs = dict(source[name].attrs)


def ageostrophic_wind(ds: xr.Dataset, /, *, equator_band: float = 10.0) -> xr.Dataset:
    """Ageostrophic wind: the wind minus the geostrophic wind of the geopotential.

    Parameters
    ----------
    ds : Dataset
        Data with ``geopotential``, ``u_component_of_wind`` and ``v_component_of_wind``.
    equator_band : float, default 10.0
        Half-width (degrees) of the equatorial band set to NaN.

    Returns
    -------
    Dataset
        ``u_component_of_ageostrophic_wind``, ``v_component_of_ageostrophic_wind`` and
        ``ageostrophic_wind_speed`` (m s⁻¹).

    Raises
    ------
    ValueError
        As :func:`geostrophic_wind`, or if a wind component is missing or its units are
        not m s⁻¹ (a missing ``units`` attribute is taken to be m s⁻¹).

    Notes
    -----
    ``V_a = V − V_g`` with ``V_g`` from :func:`geostrophic_wind`.

    Examples
    --------
    >>> lat = np.array([30.0, 40.0, 50.0]); lon = np.arange(0.0, 360.0, 90.0)
    >>> zero = xr.DataArray(np.zeros((3, 4)), dims=("latitude", "longitude"),
    ...                     coords={"latitude": lat, "longitude": lon})
    >>> ds = xr.Dataset({"geopotential": zero, "u_component_of_wind": zero + 3.0,
    ...                  "v_component_of_wind": zero + 4.0})
    >>> float(ageostrophic_wind(ds)["ageostrophic_wind_speed"].max())
    5.0
    >>> float(ds.fuxi.ageostrophic_wind()["ageostrophic_wind_speed"].max())  # accessor
    5.0
    """
    _require(ds, ["geopotential", "u_component_of_wind", "v_component_of_wind"])
    _check_wind_units(ds)
    g = geostrophic_wind(ds, equator_band=equator_band)
    ua = ds["u_component_of_wind"] - g["u_component_of_geostrophic_wind"]
    va = ds["v_component_of_wind"] - g["v_component_of_geostrophic_wind"]
    out = xr.Dataset(
        {
            "u_component_of_ageostrophic_wind": ua,
            "v_component_of_ageostrophic_wind": va,
            "ageostrophic_wind_speed": np.hypot(ua, va),
        }
    )
    for name in out.data_vars:
        out[name].attrs = _wind_attrs(str(name))
    _coordinate_attrs(out, ds)
    out.attrs = {**_provenance(ds), "equator_band": float(equator_band)}
    return out


def balance_summary(
    ds: xr.Dataset,
    /,
    background: xr.Dataset | None = None,
    *,
    bands: Mapping[str, tuple[float, float]] | None = None,
    keep: Sequence[Hashable] = ("level",),
    equator_band: float = 10.0,
) -> xr.Dataset:
    """Summarise geostrophic balance of a field or an analysis increment by level and band.

    Parameters
    ----------
    ds : Dataset
        Field (or analysis, when ``background`` is given) with ``geopotential``,
        ``u_component_of_wind`` and ``v_component_of_wind``.
    background : Dataset, optional
        When given, the summary is of the increment ``ds − background`` (the geostrophic
        relation is linear, so the increment's balance is well defined).
    bands : mapping of name to (lat_min, lat_max), optional
        Latitude bands (degrees, inclusive); by default southern extratropics
        (−90, −20), tropics (−20, 20), northern extratropics (20, 90).
    keep : str or sequence of str, default ("level",)
        Dimensions not reduced (those present); everything else in a band is reduced. A
        single name is one dimension.
    equator_band : float, default 10.0
        Half-width (degrees) of the equatorial band excluded from the statistics. A band
        that lies wholly inside it is refused (its statistics would all be NaN; with the
        default bands that is the tropics once ``equator_band`` ≥ 20).

    Returns
    -------
    Dataset
        On dims ``band`` (plus ``keep``): ``correlation`` (wind with geostrophic wind),
        ``ageostrophic_ratio`` (RMS ageostrophic over RMS total wind), and the area-weighted
        RMS ``wind_speed``, ``geostrophic_wind_speed`` and ``ageostrophic_wind_speed``.

    Raises
    ------
    ValueError
        If a variable, or the ``latitude`` or ``longitude`` coordinate, is missing, a band
        is empty or malformed, grids differ, or the geopotential or the winds of ``ds`` or
        ``background`` are not in m² s⁻² and m s⁻¹ (each checked before the increment is
        taken).
    TypeError
        If ``ds`` or ``background`` is not a Dataset.

    Notes
    -----
    With ``V = (u, v)`` and ``V_g = (u_g, v_g)`` from :func:`geostrophic_wind`, over the grid
    points of a band (area-weighted with :func:`xfuxi.grid.area_weights` as in the
    documentation, docs/design.md; NaN points of the equatorial
    mask left out): ``correlation`` is the Pearson correlation of the stacked components
    ``[u, v]`` and ``[u_g, v_g]`` and ``ageostrophic_ratio = √(⟨|V − V_g|²⟩ / ⟨|V|²⟩)``.
    A balanced mid-latitude flow has correlation near 1 and a ratio well below 1.

    Examples
    --------
    >>> lat = np.array([30.0, 40.0, 50.0]); lon = np.arange(0.0, 360.0, 90.0)
    >>> z = xr.DataArray(np.broadcast_to(-1e4 * np.deg2rad(lat)[:, None], (3, 4)).copy(),
    ...                  dims=("latitude", "longitude"), coords={"latitude": lat, "longitude": lon})
    >>> ds = xr.Dataset({"geopotential": z})
    >>> g = geostrophic_wind(ds)
    >>> ds["u_component_of_wind"] = g["u_component_of_geostrophic_wind"] * 1.1
    >>> ds["v_component_of_wind"] = g["v_component_of_geostrophic_wind"]
    >>> s = balance_summary(ds, bands={"mid": (30.0, 50.0)})
    >>> round(float(s["ageostrophic_ratio"].item()), 4)
    0.0909
    >>> s = ds.fuxi.balance_summary(bands={"mid": (30.0, 50.0)})  # through the accessor
    >>> round(float(s["ageostrophic_ratio"].item()), 4)
    0.0909
    """
    names = ["geopotential", "u_component_of_wind", "v_component_of_wind"]
    _require(ds, names)
    provenance = _provenance(ds)
    _check_wind_units(ds)
    if isinstance(keep, str):  # one name, not its characters
        keep = (keep,)
    if background is not None:
        _require(background, names)
        # an increment needs both in the same units: each is checked before the
        # subtraction (the increment's values no longer tell heights from geopotential)
        _check_geopotential_units(ds["geopotential"])
        _check_geopotential_units(background["geopotential"])
        _check_wind_units(background)
        from .weights import prepare_pair

        a, b = prepare_pair(ds[names], background[names], names=("analysis", "background"))
        ds = a - b
        ds["geopotential"].attrs = dict(a["geopotential"].attrs)
    bands = DEFAULT_BANDS if bands is None else dict(bands)
    if not bands:  # (xarray's "must supply at least one object to concatenate" otherwise)
        raise ValueError("bands is empty: give at least one (lat_min, lat_max), or None")
    g = geostrophic_wind(ds, equator_band=equator_band)
    u, v = ds["u_component_of_wind"], ds["v_component_of_wind"]
    ug, vg = g["u_component_of_geostrophic_wind"], g["v_component_of_geostrophic_wind"]
    valid = ug.notnull() & vg.notnull() & u.notnull() & v.notnull()
    comp = xr.Dataset({"w": xr.concat([u, v], "component"), "g": xr.concat([ug, vg], "component")})
    comp = comp.where(valid)
    lat = ds["latitude"]
    w_all = area_weights(lat)
    results = []
    for name, rng in bands.items():
        if len(rng) != 2 or rng[0] >= rng[1]:
            raise ValueError(f"band {name!r} must be (lat_min, lat_max) with lat_min < lat_max")
        inside = (lat >= rng[0]) & (lat <= rng[1])
        if not bool(inside.any()):
            raise ValueError(f"band {name!r} {rng} contains no grid latitude")
        if not bool((inside & (abs(lat) >= equator_band)).any()):
            # every row of it is in the equatorial band masked above: all NaN, silently
            raise ValueError(
                f"band {name!r} {rng} lies inside the equatorial band (|latitude| < "
                f"{equator_band:g}) whose geostrophic wind is not defined; give a smaller "
                "equator_band or bands outside it"
            )
        sub = comp.sel(latitude=inside)
        w = w_all.sel(latitude=inside)
        dims = [d for d in sub["w"].dims if d not in keep]

        def wm(x: xr.DataArray, w=w, dims=dims) -> xr.DataArray:
            return x.weighted(w).mean(dims, skipna=True)

        x, y = sub["w"], sub["g"]
        # one pass over the data: the correlation from the weighted raw moments, in float64.
        # The centred form wm((x - wm(x)) * (y - wm(y))) needed the means over every time
        # before any chunk could be centred, so dask held the whole record in memory
        x64, y64 = x.astype("float64"), y.astype("float64")
        xm, ym = wm(x64), wm(y64)
        cov = wm(x64 * y64) - xm * ym
        corr = cov / np.sqrt((wm(x64**2) - xm**2) * (wm(y64**2) - ym**2))
        # mean over components is half the squared vector norm; the factor cancels in ratios
        ms_total, ms_geo, ms_ageo = wm(x**2) * 2, wm(y**2) * 2, wm((x - y) ** 2) * 2
        results.append(
            xr.Dataset(
                {
                    "correlation": corr,
                    "ageostrophic_ratio": np.sqrt(ms_ageo / ms_total),
                    "wind_speed": np.sqrt(ms_total),
                    "geostrophic_wind_speed": np.sqrt(ms_geo),
                    "ageostrophic_wind_speed": np.sqrt(ms_ageo),
                }
            )
        )
    out = xr.concat(results, dim="band").assign_coords(
        band=list(bands),
        lat_min=("band", [float(b[0]) for b in bands.values()]),
        lat_max=("band", [float(b[1]) for b in bands.values()]),
    )
    # arithmetic carried the wind's units to the ratios: each output gets its own
    for v in ("wind_speed", "geostrophic_wind_speed", "ageostrophic_wind_speed"):
        out[v].attrs = {**_wind_attrs(v), "description": "area-weighted RMS"}
    out["correlation"].attrs = {
        "units": "1",
        "long_name": "correlation of the wind with the geostrophic wind",
    }
    out["ageostrophic_ratio"].attrs = {
        "units": "1",
        "long_name": "RMS ageostrophic wind over RMS wind",
    }
    out.attrs = {**provenance, "diagnostic": "geostrophic balance",
                 "of": "increment" if background is not None else "field",
                 "equator_band": float(equator_band)}  # fmt: skip
    return out
