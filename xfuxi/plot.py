"""Plots for forecasts, analyses and scores (matplotlib; cartopy for maps of the Earth).

Every function returns the matplotlib ``Axes`` it drew on (a cartopy ``GeoAxes`` for maps
with a projection) and accepts ``ax=`` to draw into an existing one. matplotlib and
cartopy are imported on first use. Maps of the Held–Suarez world (no land) use plain
latitude/longitude axes; other data get a cartopy map with Natural Earth 110 m coastlines
shipped with xfuxi (public domain), so no network is needed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .config import (
    Config,
    check_flag,
    check_number,
    config_with_legacy,
    field,
    require_package,
)
from .data.schema import PROVENANCE_KEYS
from .docstrings import docstring_parts
from .grid import wide_longitude_gaps
from .observations.interpolation import covered_region
from .verify.probabilistic import ensemble_mean_rmse, rank_histogram, spread
from .verify.weights import ensemble_dim, prepare_pair, score_units

__all__ = [
    "MapStyle",
    "plot_convergence",
    "plot_cycle",
    "plot_increment",
    "plot_map",
    "plot_rank_histogram",
    "plot_scores",
    "plot_spread_skill",
]

#: folder laid out as cartopy's data dir, holding the Natural Earth 110 m coastlines
NATURAL_EARTH_DIR = Path(__file__).parent / "_data" / "naturalearth"
_COASTLINE = Path("shapefiles", "natural_earth", "physical", "ne_110m_coastline.shp")
_FIGSIZE = (6.0, 3.2)

#: the parameters the plots share, each described once
_doc = docstring_parts({
    "variable": "variable : str, optional\n    Variable of a Dataset to plot.",
    "member_dim": "member_dim : str, optional\n    Ensemble dimension.",
    "ax": "ax : matplotlib Axes, optional\n    Axes to draw into.",
    "title_ax": "title : str, optional\n    Axes title.\nax : matplotlib Axes, optional\n"
    "    Axes to draw into.",
})  # fmt: skip


@dataclasses.dataclass(frozen=True)
class MapStyle(Config):
    """How a map looks: projection, coastlines, colours, colour bar, title, wind arrows.

    One object for :func:`plot_map` and :func:`plot_increment` (``style=``), so that several
    maps can share their look. Each field's default is the plot's own.

    Attributes
    ----------
    projection : cartopy CRS or "plain", optional
        Map projection. Default: plain latitude/longitude axes for the Held–Suarez world
        (attrs ``source``/``title`` mention Held–Suarez), else cartopy ``PlateCarree``.
    coastlines : bool, default True
        Draw the shipped Natural Earth 110 m coastlines on cartopy maps.
    cmap : str, optional
        Colour map; default ``"viridis"`` for :func:`plot_map`, ``"RdBu_r"`` for
        :func:`plot_increment`.
    vmin, vmax : float, optional
        Colour limits; default the data's range (:func:`plot_map`) or ±max|increment|
        (:func:`plot_increment`).
    colorbar : bool, default True
        Add a colour bar labelled with the ``long_name`` (else the name) and units.
    title : str, optional
        Axes title. Default: what the map cannot show, the single values selected: the
        level, the time (the initial time, lead and valid time of a forecast), the member,
        and any other (a channel, say), e.g. ``"500 hPa, 2020-01-01 00:00 + 24 h (valid
        2020-01-02 00:00)"``. ``""`` draws none.
    wind_stride : int, default 2
        Draw every n-th wind vector in each direction (a whole number, at least 1).
    wind_scale : float, optional
        Wind speed (in the wind's units) drawn as an arrow as long as the spacing of the
        drawn arrows. Default: the largest speed drawn over 1.5, so that the longest arrow
        spans one and a half spacings whatever the field (a wind or a small, local
        increment of one). Give the same value to maps that should be compared by eye. A
        reference arrow with its speed is drawn below the map's right corner.

    Raises
    ------
    ValueError
        If ``wind_stride`` is not an integer of at least 1 or ``wind_scale`` is not a
        positive number.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import xfuxi
    >>> style = xfuxi.MapStyle(cmap="magma", vmin=0.0, vmax=2.0, title="t")
    >>> da = xr.DataArray(np.ones((3, 4)), dims=("latitude", "longitude"), name="t",
    ...                   coords={"latitude": [-45.0, 0.0, 45.0], "longitude": [0, 90, 180, 270]},
    ...                   attrs={"source": "Held-Suarez world"})
    >>> ax = xfuxi.plot_map(da, style=style)
    >>> ax.get_title(), ax.collections[0].get_clim()
    ('t', (0.0, 2.0))
    >>> style.replace(title=None).title is None  # a copy with one field changed
    True
    """

    projection: Any = field(None, help="map projection (cartopy CRS or 'plain')", cli=False)
    coastlines: bool = field(True, help="draw coastlines on cartopy maps")
    cmap: str | None = field(None, help="colour map (default: the plot's own)")
    vmin: float | None = field(None, help="lower colour limit")
    vmax: float | None = field(None, help="upper colour limit")
    colorbar: bool = field(True, help="add a colour bar")
    title: str | None = field(None, help="axes title")
    wind_stride: int = field(2, help="draw every n-th wind vector in each direction")
    wind_scale: float | None = field(
        None, help="wind speed drawn as an arrow as long as the spacing of the arrows"
    )

    def __post_init__(self) -> None:
        stride = self.wind_stride
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)):
            # a float (1.5) or a string failed only when arrows were drawn, as a slice error
            raise ValueError(f"MapStyle.wind_stride must be an integer >= 1; got {stride!r}")
        if stride < 1:
            raise ValueError(f"MapStyle.wind_stride must be >= 1; got {stride}")
        check_number(self, "wind_scale", above=True, optional=True)


def _map_style(style: MapStyle | dict | None, legacy: dict[str, Any], function: str) -> MapStyle:
    """``style`` (default :class:`MapStyle`) with the old styling keywords of ``function``
    applied, each with a ``DeprecationWarning`` naming ``style=MapStyle(...)``."""
    return config_with_legacy(MapStyle, style, legacy, function, parameter="style")


def _plt():
    return require_package("matplotlib.pyplot", extra="viz", what="xfuxi's plots")


def _cartopy(module: str) -> Any:
    """``cartopy`` or one of its modules, or an ImportError naming the extra and the maps
    that need none."""
    return require_package(
        module, extra="viz", what="a map on a projection",
        hint=", or draw on plain axes: style=xfuxi.MapStyle(projection='plain')",
    )  # fmt: skip


def _use_shipped_coastlines() -> None:
    """Point cartopy at the shipped Natural Earth files unless it already has them."""
    cartopy = _cartopy("cartopy")

    current = cartopy.config.get("pre_existing_data_dir")
    if current and (Path(current) / _COASTLINE).exists():
        return
    if not (NATURAL_EARTH_DIR / _COASTLINE).exists():  # pragma: no cover - broken install
        raise FileNotFoundError(f"shipped coastlines missing: {NATURAL_EARTH_DIR / _COASTLINE}")
    cartopy.config["pre_existing_data_dir"] = str(NATURAL_EARTH_DIR)


def _is_held_suarez(obj: xr.Dataset | xr.DataArray) -> bool:
    # the data's own title or source, or those of what a forecast or analysis started from
    text = " ".join(str(obj.attrs.get(k, "")) for k in PROVENANCE_KEYS).lower()
    text = text.replace("–", "-").replace("_", "-").replace(" ", "-")
    return "held-suarez" in text


def _one_variable(data: xr.Dataset, variable: str | None) -> str:
    """The name of the variable of ``data`` to plot: ``variable``, or the only one."""
    if variable is None:
        if len(data.data_vars) != 1:
            raise ValueError(
                f"the Dataset has variables {list(data.data_vars)}; pass variable= to choose"
            )
        return str(next(iter(data.data_vars)))
    if variable not in data.data_vars:
        raise ValueError(f"variable {variable!r} not in the Dataset ({list(data.data_vars)})")
    return variable


def _check_variable(da: xr.DataArray, variable: str | None) -> None:
    """Refuse a ``variable`` that is not the name of the DataArray ``da`` (it was ignored)."""
    if variable is not None and variable != da.name:
        raise ValueError(
            f"variable={variable!r} chooses a variable of a Dataset, but the data is a "
            f"DataArray named {da.name!r}: pass the Dataset, or leave variable out"
        )


def _one_pair(
    forecast: xr.Dataset | xr.DataArray,
    truth: xr.Dataset | xr.DataArray,
    variable: str | None,
    names: tuple[str, str] = ("forecast", "truth"),
) -> tuple[xr.DataArray, xr.DataArray]:
    """Forecast and truth of the one variable to plot (:func:`_one_variable`) of a Dataset."""
    if isinstance(forecast, xr.Dataset) != isinstance(truth, xr.Dataset):
        raise TypeError(
            f"{names[0]} and {names[1]} must both be Datasets or both DataArrays; got "
            f"{type(forecast).__name__} and {type(truth).__name__}"
        )
    if isinstance(forecast, xr.Dataset):
        variable = _one_variable(forecast, variable)
        if variable not in truth.data_vars:
            raise ValueError(
                f"variable {variable!r} not in the {names[1]} ({list(truth.data_vars)})"
            )
        return forecast[variable], truth[variable]
    _check_variable(forecast, variable)
    return forecast, truth


def _selection(level: Any, time: Any, sel: Mapping[Hashable, Any] | None) -> dict:
    """``level=`` and ``time=`` with ``sel``, refusing ``sel`` repeating one with another
    value (it overrode it)."""
    selection: dict[Hashable, Any] = {"level": level, "time": time}
    for k, v in dict(sel or {}).items():
        if k in ("level", "time") and selection[k] is not None and v is not None:
            try:
                same = bool(np.all(np.asarray(selection[k]) == np.asarray(v)))
            except Exception:  # noqa: BLE001 - values that do not compare differ
                same = False
            if not same:
                raise ValueError(
                    f"{k}={selection[k]!r} and sel={{{k!r}: {v!r}}} select different {k} "
                    "values: give it once"
                )
        selection[k] = v
    return selection


def _sorted_grid(da: xr.DataArray) -> xr.DataArray:
    """``da`` with latitudes out of order and longitudes not ascending sorted (a copy; the
    map is drawn by coordinates), refusing repeated values. Latitudes may stay descending
    (north to south); longitudes are always made ascending, so that the periodic seam and
    the gaps of a regional box are found (:func:`_longitude_cells`)."""
    for d in ("latitude", "longitude"):
        if d not in da.coords:
            raise ValueError(f"{da.name!r} has a {d!r} dimension but no {d!r} coordinate")
        values = np.asarray(da[d].values)
        if np.unique(values).size != values.size:
            raise ValueError(f"{da.name!r} has repeated {d!r} values: {values.tolist()}")
        step = np.diff(values.astype("float64"))
        ordered = np.all(step > 0) or (d == "latitude" and np.all(step < 0))
        if not ordered:
            da = da.sortby(d)
    return da


def _longitude_cells(
    lon: np.ndarray, *arrays: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Cell edges for ``pcolormesh`` of the ascending longitudes ``lon``, the centres (for
    ``contour``) and ``arrays`` (2-D, longitude last) with their columns to match.

    Cells meet halfway between neighbouring longitudes. A grid round the whole circle has
    its periodic seam closed (the first column repeated 360° on), so that the map covers
    0–360°. A gap wider than 1.5 grid spacings (:func:`xfuxi.grid.wide_longitude_gaps`:
    the outside of a regional box, missing columns) is not bridged: the cells on either
    side end half a spacing from their longitude and the gap gets a NaN cell, drawn as
    nothing (``shading="nearest"`` stretched the edge cells halfway across the gap, over
    the whole map for a box across 0° in 0–360° coordinates).

    >>> edges, centres, (v,) = _longitude_cells(np.array([0.0, 10, 20, 300, 310]),
    ...                                         np.arange(5.0)[None, :])
    >>> edges.tolist()
    [-5.0, 5.0, 15.0, 25.0, 295.0, 305.0, 315.0]
    >>> v.tolist()
    [[0.0, 1.0, 2.0, nan, 3.0, 4.0]]
    """
    lon = np.asarray(lon, dtype="float64")
    arrays_out = [np.asarray(a) for a in arrays]
    if lon.size < 2:  # degenerate, as matplotlib's "nearest"
        return np.repeat(lon, 2), lon, arrays_out
    wide, spacing = wide_longitude_gaps(lon)
    # round the circle, unless the gap across the seam is wide (or none: 0 and 360 both)
    seam = lon.size - 1 not in wide and lon[0] + 360.0 - lon[-1] > 1e-9
    x = lon
    if seam:  # close the periodic seam so the map covers 0..360
        x = np.append(lon, lon[0] + 360.0)
        arrays_out = [np.concatenate([a, a[:, :1]], axis=1) for a in arrays_out]
    gaps = np.diff(x)
    is_wide = gaps > 1.5 * spacing + 1e-9
    half = np.where(is_wide, spacing / 2.0, gaps / 2.0)
    if not is_wide.any():
        edges = np.concatenate([[x[0] - half[0]], x[:-1] + half, [x[-1] + half[-1]]])
        return edges, x, arrays_out
    edges, centres, columns = [x[0] - half[0]], [], []
    for j in range(x.size):
        centres.append(x[j])
        columns.append(j)
        if j == x.size - 1:
            edges.append(x[j] + half[-1])
        elif is_wide[j]:  # this cell ends, a NaN cell fills the gap, the next one starts
            edges += [x[j] + half[j], x[j + 1] - half[j]]
            centres.append((x[j] + x[j + 1]) / 2.0)
            columns.append(-1)
        else:
            edges.append(x[j] + half[j])
    index = np.asarray(columns)
    filled = []
    for a in arrays_out:
        out = a[:, np.maximum(index, 0)].astype(np.result_type(a.dtype, np.float32))
        out[:, index < 0] = np.nan
        filled.append(out)
    return np.asarray(edges), np.asarray(centres), filled


def _regional_box(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float, float, float] | None:
    """The extent ``(west, east, south, north)`` of a regional grid's cells (degrees, west <
    east, both within -180..540), or None for a grid that covers the sphere, as the
    observation operator sees it (:func:`~xfuxi.observations.interpolation.covered_region`);
    a band that goes all the way round is limited in latitude only."""
    lat = np.asarray(lat, dtype="float64")
    lon = np.asarray(lon, dtype="float64")
    if lat.size < 2 or lon.size < 2:
        return None
    south, north, west, width = covered_region(lat, lon)
    if (south, north, width) == (-90.0, 90.0, 360.0):
        return None
    edges = _latitude_edges(np.sort(lat))
    s = -90.0 if south == -90.0 else max(-90.0, float(edges[0]))
    n = 90.0 if north == 90.0 else min(90.0, float(edges[-1]))
    if width >= 360.0:
        return -180.0, 180.0, s, n
    step = wide_longitude_gaps(np.sort(lon % 360.0))[1]  # (as _longitude_cells's)
    west = west - step / 2.0
    if west > 180.0:
        west -= 360.0
    return west, west + width + step, s, n


def _latitude_edges(lat: np.ndarray) -> np.ndarray:
    """Cell edges of the latitudes ``lat`` (in order), halfway between neighbours, as
    matplotlib's ``shading="nearest"``."""
    lat = np.asarray(lat, dtype="float64")
    if lat.size < 2:
        return np.repeat(lat, 2)
    half = np.diff(lat) / 2.0
    return np.concatenate([[lat[0] - half[0]], lat[:-1] + half, [lat[-1] + half[-1]]])


def _on_grid(other: xr.DataArray, field: xr.DataArray, what: str) -> xr.DataArray:
    """``other`` (2-D) on the grid of ``field``, matched by coordinates: longitudes wrapped
    to the field's convention, then each row and column put where the field has it."""
    index = {}
    for d in ("latitude", "longitude"):
        want = np.asarray(field[d].values, dtype="float64")
        have = np.asarray(other[d].values, dtype="float64")
        if d == "longitude" and want.size:
            west = float(np.nanmin(want))
            have = (have - west) % 360.0 + west
            have = np.where(have >= west + 360.0, west, have)  # -1e-14 % 360 is 360
        order = np.argsort(have)
        at = np.searchsorted(have[order], want)
        pos = order[np.clip(at, 0, have.size - 1)]
        near = order[np.clip(at - 1, 0, have.size - 1)]
        pos = np.where(np.abs(have[near] - want) < np.abs(have[pos] - want), near, pos)
        # a fraction of the spacing: float32 coordinates of the same grid still match
        tol = 1e-3 * float(np.abs(np.diff(want)).min()) if want.size > 1 else 1e-6
        matched = np.abs(have[pos] - want) <= max(tol, 1e-6)
        if have.size == want.size and matched.all():
            index[d] = pos
            continue
        lacking = want[~matched].tolist()
        raise ValueError(
            f"the {what} field is on other {d!r} values than the map ({have.size} values, "
            f"the map {want.size})"
            + (f", and lacks the map's {lacking[:5]}{' ...' if len(lacking) > 5 else ''}"
               if lacking else "")
            + "; give it on the map's grid"
        )  # fmt: skip
    out = other.isel(latitude=index["latitude"], longitude=index["longitude"])
    return out.assign_coords(latitude=field["latitude"], longitude=field["longitude"])


def _select_2d(
    data: xr.Dataset | xr.DataArray,
    variable: str | None,
    selection: Mapping[Hashable, Any],
    *,
    keep_scalars: bool = False,
) -> xr.DataArray:
    """The 2-D field (latitude × longitude) of ``variable`` at ``selection``; with
    ``keep_scalars`` its single-valued coordinates (level, time, lead, member ...) stay, for
    the title (:func:`_map_title`)."""
    if isinstance(data, xr.Dataset):
        da = data[_one_variable(data, variable)]
    else:
        _check_variable(data, variable)
        da = data
    sel = {k: v for k, v in selection.items() if v is not None}
    for k in sel:
        if k not in da.dims:
            raise ValueError(f"cannot select {k!r}: not a dimension of {da.name!r} ({da.dims})")
    for k, v in sel.items():
        try:
            da = da.sel({k: v})
        except KeyError:
            raise ValueError(
                f"{k}={v!r} is not in {da.name!r}; available {k} values: {da[k].values.tolist()}"
            ) from None
    for d in ("latitude", "longitude"):
        if d not in da.dims:
            raise ValueError(f"{da.name!r} has no {d!r} dimension to map")
    extra = [d for d in da.dims if d not in ("latitude", "longitude")]
    extra = [d for d in extra if da.sizes[d] > 1]
    if extra:
        raise ValueError(
            f"{da.name!r} still has dims {extra} after selection; choose one value of each "
            "(level=, time=, or sel={...})"
        )
    # only the other dims: a map of one latitude row (or longitude) keeps it
    others = [d for d in da.dims if d not in ("latitude", "longitude")]
    return _sorted_grid(
        da.squeeze(others, drop=not keep_scalars).transpose("latitude", "longitude")
    )


def _without_scalars(da: xr.DataArray) -> xr.DataArray:
    return da.drop_vars([c for c in da.coords if da[c].ndim == 0])


def _value_text(name: Hashable, value: Any, units: Any = None) -> str:
    """One value of a coordinate for a title: a time as ``2020-01-01 06:00``, a timedelta
    in hours, a number with its units."""
    value = np.asarray(value)
    if value.dtype.kind == "M":
        return str(np.datetime_as_string(value, unit="m")).replace("T", " ")
    if value.dtype.kind == "m":
        return f"{float(value / _HOUR):g} h"
    if value.dtype.kind in "fiu":
        text = f"{float(value):g}"
        if name == "level":
            units = units or "hPa"
        return f"{text} {_units_label(units)}".strip()
    return str(value.item() if value.ndim == 0 else value)


def _check_overlay(observations: Any) -> None:
    """Refuse observations a map cannot mark, before any figure is made."""
    if observations is None:
        return
    if not isinstance(observations, (xr.Dataset, xr.DataArray)):
        raise TypeError(
            "observations must be a Dataset or DataArray with latitude and longitude "
            f"coordinates; got {type(observations).__name__}"
        )
    for c in ("latitude", "longitude"):
        if c not in observations.coords:
            raise ValueError(f"observations need a {c!r} coordinate to be plotted")


def _map_title(field: xr.DataArray) -> str:
    """What a map cannot show of ``field``: its single-valued coordinates (level, initial
    time, lead and valid time, member, channel, ...), e.g. ``"500 hPa, 2020-01-01 00:00 +
    24 h (valid 2020-01-02 00:00)"``; empty when there are none."""
    from .options import get_options

    scalars = {c: field[c] for c in field.coords if field[c].ndim == 0}
    members = set(get_options()["ensemble_dims"])
    parts = []
    if "level" in scalars:
        parts.append(_value_text("level", scalars.pop("level").values,
                                 field["level"].attrs.get("units")))  # fmt: skip
    init = scalars.pop("time", None)
    lead = scalars.pop("prediction_timedelta", None)
    valid = scalars.pop("valid_time", None)
    if init is not None and lead is not None:
        vt = valid.values if valid is not None else init.values + lead.values
        parts.append(f"{_value_text('time', init.values)} + {_value_text('lead', lead.values)}"
                     f" (valid {_value_text('time', vt)})")  # fmt: skip
    elif init is not None:
        parts.append(_value_text("time", init.values))
    elif lead is not None:
        parts.append(f"lead {_value_text('lead', lead.values)}")
        if valid is not None:
            parts.append(f"valid {_value_text('time', valid.values)}")
    elif valid is not None:
        parts.append(f"valid {_value_text('time', valid.values)}")
    for name, c in scalars.items():
        word = "member" if name in members else str(name).replace("_", " ")
        parts.append(f"{word} {_value_text(name, c.values, c.attrs.get('units'))}")
    return ", ".join(parts)


def _new_axes(ax, projection):
    """``ax``, or the axes of a new figure with constrained layout (its labels, title and
    colour bar fit inside it when saved); a figure the caller passed is left as it is."""
    plt = _plt()
    if ax is not None:
        return ax
    fig = plt.figure(figsize=_FIGSIZE, layout="constrained")
    if projection is None:
        return fig.add_subplot(1, 1, 1)
    return fig.add_subplot(1, 1, 1, projection=projection)


def _refuse_all_nan(arrays: Sequence[Any], what: str) -> None:
    """Refuse to draw an empty plot: ``arrays`` (what would be drawn) all NaN."""
    if not any(np.isfinite(np.asarray(a, dtype="float64")).any() for a in arrays):
        raise ValueError(f"{what} are NaN everywhere: there is nothing to plot")


def _refuse_empty_field(field: xr.DataArray, what: str) -> None:
    """Refuse to map a field with no finite value (a blank map with a made-up colour bar)."""
    if not np.isfinite(np.asarray(field.values, dtype="float64")).any():
        raise ValueError(
            f"{what} {field.name!r} has no finite values (NaN everywhere"
            + (f", {field.shape[0]}×{field.shape[1]} points" if field.ndim == 2 else "")
            + "): there is nothing to map"
        )


def _refuse_levels(
    forecast: xr.DataArray, truth: xr.DataArray, keep: str | None, function: str, pooled: str
) -> None:
    """Refuse several ``level`` values unless ``level`` is the kept dim ``keep``: pooling
    the levels would mix fields of very different sizes (the variance of a 50 hPa and of an
    850 hPa geopotential), the largest drowning the others. A truth with the levels of a
    forecast of one level (a ``level`` coordinate) is left to the scores, which match it."""
    pairs = [("forecast", forecast)]
    if "level" not in forecast.coords:
        pairs.append(("truth", truth))
    for name, da in pairs:
        if keep != "level" and "level" in da.dims and da.sizes["level"] > 1:
            values = f" {da['level'].values.tolist()}" if "level" in da.coords else ""
            raise ValueError(
                f"the {name} has {da.sizes['level']} levels{values}; {function} pools "
                f"{pooled}, not levels: select one level (e.g. .sel(level=500)) first"
            )


def _titled(ax: Any, title: str | None) -> Any:
    """The finished ``ax`` of a plot, with ``title`` when one is given."""
    if title is not None:
        ax.set_title(title)
    return ax


def _map(
    field: xr.DataArray,
    source: xr.Dataset | xr.DataArray,
    style: MapStyle,
    ax: Any,
    *,
    contour: xr.DataArray | None = None,
    wind: tuple[xr.DataArray, xr.DataArray] | None = None,
    observations: xr.Dataset | xr.DataArray | None = None,
):
    """Draw ``field`` (2-D, latitude × longitude) as ``style`` says, with the overlays."""
    _check_overlay(observations)  # before the axes: a refused map leaves no empty figure
    projection = style.projection
    plateau = projection is None and _is_held_suarez(source)
    box = _regional_box(field["latitude"].values, field["longitude"].values)
    ours = projection is None and not plateau  # the default map, zoomed to a regional box
    if ours:
        ccrs = _cartopy("cartopy.crs")

        # centred on a regional box (one across the map's 0°/360° seam stays whole)
        centre = 180.0 if box is None else (box[0] + box[1]) / 2.0
        projection = ccrs.PlateCarree(central_longitude=centre)
    if projection == "plain":
        projection = None
    transform = {}
    if projection is not None:
        ccrs = _cartopy("cartopy.crs")

        transform = {"transform": ccrs.PlateCarree()}
    ax = _new_axes(ax, projection)
    lon = field["longitude"].values
    lat = field["latitude"].values
    # plain axes: the data's own longitudes, 0..360 or -180..180
    west = -180.0 if float(np.nanmin(lon)) < 0.0 else 0.0
    # the seam of a global grid closed, the gaps round a regional box left empty
    arrays = [field.values] if contour is None else [field.values, contour.values]
    if contour is not None and contour.shape != field.shape:  # pragma: no cover - _on_grid
        raise ValueError(f"contour field has shape {contour.shape}; expected {field.shape}")
    lon_edges, lon_c, arrays = _longitude_cells(lon, *arrays)
    mesh = ax.pcolormesh(lon_edges, _latitude_edges(lat), arrays[0], cmap=style.cmap,
                         vmin=style.vmin, vmax=style.vmax, shading="flat",
                         **transform)  # fmt: skip
    if contour is not None:
        cs = ax.contour(lon_c, lat, arrays[1], colors="k", linewidths=0.6, **transform)
        ax.clabel(cs, fontsize=6, fmt="%g")
    if wind is not None:
        _wind_arrows(ax, field, wind, style, transform)
    if observations is not None:
        olon = np.asarray(observations["longitude"], dtype="float64").ravel()
        if projection is None:  # no transform: wrapped to the map's longitudes
            olon = (olon - west) % 360.0 + west
        ax.scatter(olon, np.asarray(observations["latitude"]).ravel(), s=6, marker="o",
                   facecolors="none", edgecolors="m", linewidths=0.6, label="observations",
                   **transform)  # fmt: skip
    if projection is not None:
        if style.coastlines:
            _use_shipped_coastlines()
            ax.coastlines(resolution="110m", linewidth=0.5)
        if ours and box is not None:
            ax.set_extent(list(box), crs=ccrs.PlateCarree())
        else:
            ax.set_global()
    else:  # the data's own longitudes: 0..360, or -180..180
        x0, x1, y0, y1 = west, west + 360.0, -90.0, 90.0
        if box is not None:
            y0, y1 = box[2], box[3]
            start = (box[0] - west) % 360.0 + west  # in the data's own convention
            if start + (box[1] - box[0]) <= west + 360.0:  # (a box across the seam: all)
                x0, x1 = start, start + (box[1] - box[0])
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel("longitude (°E)")
        ax.set_ylabel("latitude (°N)")
        ax.set_aspect("equal")
    if style.colorbar:
        units = _units_label(field.attrs.get("units", ""))
        name = field.attrs.get("long_name") or field.name or ""
        label = f"{name} ({units})" if units else str(name)
        ax.figure.colorbar(mesh, ax=ax, shrink=0.8, label=label)
    return _titled(ax, style.title)


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _units_label(units: Any) -> str:
    """CF-style units for a label: ``"m**2 s**-2"`` and ``"m2 s-2"`` as ``"m² s⁻²"``.

    >>> _units_label("m**2 s**-2"), _units_label("m s-1"), _units_label("(m s-1)**2")
    ('m² s⁻²', 'm s⁻¹', '(m s⁻¹)²')
    >>> _units_label("K"), _units_label("1"), _units_label(None)
    ('K', '1', '')
    """
    if not units:
        return ""

    def sup(match: re.Match) -> str:
        return match.group(1).translate(_SUPERSCRIPT)

    text = re.sub(r"\*\*(-?\d+)", sup, str(units))  # m**2, (m s-1)**2
    return re.sub(r"(?<=[A-Za-z])(-?\d+)\b", sup, text)  # m2 s-2


def _nice_speed(speed: float) -> float:
    """The largest of 1, 2 and 5 times a power of ten not above ``speed`` (> 0)."""
    power = 10.0 ** np.floor(np.log10(speed))
    return float(max(m * power for m in (1.0, 2.0, 5.0) if m * power <= speed * (1 + 1e-9)))


def _wind_arrows(ax, field, wind, style, transform) -> None:
    """Wind vectors every ``style.wind_stride`` points, scaled to the spacing of the arrows
    (not matplotlib's autoscale, which follows the mean speed: a local increment's arrows
    would run across the map), with a reference arrow."""
    u, v = wind
    for name, comp in (("u", u), ("v", v)):
        if comp.shape != field.shape:
            raise ValueError(
                f"wind component {comp.name or name!r} has shape {comp.shape}; expected "
                f"{field.shape}, the shaded field's"
            )
    s = slice(None, None, style.wind_stride)
    lon, lat = field["longitude"].values, field["latitude"].values
    uu, vv = np.asarray(u.values, float)[s, s], np.asarray(v.values, float)[s, s]
    speed = np.hypot(uu, vv)
    top = float(np.nanmax(speed)) if np.isfinite(speed).any() else 0.0
    scale = style.wind_scale if style.wind_scale is not None else top / 1.5
    if not scale > 0:  # no wind anywhere: nothing to draw
        return
    # the arrows' spacing as a fraction of the map's width (360 degrees of longitude)
    dlon = float(np.abs(np.diff(lon)).min()) if lon.size > 1 else 360.0
    spacing = min(style.wind_stride * dlon, 360.0) / 360.0
    # minlength=0: an arrow too short to see is not drawn (matplotlib draws a dot)
    arrows = ax.quiver(lon[s], lat[s], uu, vv, scale=scale / spacing, scale_units="width",
                       width=0.003, minlength=0.0, **transform)  # fmt: skip
    reference = _nice_speed(scale)
    label = f"{reference:g} {_units_label(u.attrs.get('units', ''))}".strip()
    # the reference arrow below the map's right corner (below the tick labels of plain axes),
    # clear of the title and of the x label
    below = -0.07 if transform else -0.2
    ax.quiverkey(arrows, 1.0, below, reference, label, labelpos="W", coordinates="axes",
                 fontproperties={"size": 7})  # fmt: skip


def _wind_pair(data, wind, selection):
    if wind is None or wind is False:
        return None
    if wind is True:
        names = ("u_component_of_wind", "v_component_of_wind")
    elif isinstance(wind, str) or not isinstance(wind, Sequence) or len(wind) != 2:
        # a string was taken letter by letter, a 1-tuple failed to unpack
        raise ValueError(f"wind= must be True or a pair of variable names (u, v); got {wind!r}")
    else:
        names = tuple(wind)
    if not isinstance(data, xr.Dataset):
        raise ValueError("wind vectors need a Dataset holding the wind components")
    return tuple(_select_2d(data, n, selection) for n in names)


def _contour_field(data, contour, selection):
    if contour is None:
        return None
    if isinstance(contour, xr.DataArray):
        return _select_2d(contour, None, selection)  # put on the map's grid by plot_map
    if not isinstance(data, xr.Dataset):
        raise ValueError("contour= by name needs a Dataset; pass a DataArray instead")
    return _select_2d(data, contour, selection)


def plot_map(
    data: xr.Dataset | xr.DataArray,
    /,
    *,
    variable: str | None = None,
    level: float | None = None,
    time: Any = None,
    sel: Mapping[Hashable, Any] | None = None,
    contour: str | xr.DataArray | None = None,
    wind: bool | Sequence[str] | None = None,
    observations: xr.Dataset | xr.DataArray | None = None,
    style: MapStyle | None = None,
    ax: Any = None,
    **legacy: Any,
) -> Any:
    """Map one field, with optional contours, wind vectors and observation locations.

    Parameters
    ----------
    data : Dataset or DataArray
        Data on ``latitude``/``longitude``.
    variable : str, optional
        Variable to shade (required for a Dataset with several variables).
    level, time : optional
        Values of ``level`` and ``time`` to select; ``sel`` selects any other dims (it may
        repeat ``level`` or ``time`` only with the same value).
    sel : mapping, optional
        Further selections, e.g. ``{"prediction_timedelta": np.timedelta64(24, "h")}``.
    contour : str or DataArray, optional
        Field drawn as black contours (a variable name of ``data`` or a DataArray on the
        same grid, matched by coordinates).
    wind : bool or (str, str), optional
        Draw wind vectors: ``True`` for ``u_component_of_wind``/``v_component_of_wind``,
        or a pair of variable names (of a Dataset ``data``).
    observations : Dataset or DataArray, optional
        Anything with ``latitude`` and ``longitude`` coordinates; drawn as open circles.
    style : MapStyle, optional
        Projection, coastlines, colour map and limits, colour bar, title and wind-vector
        stride (:class:`MapStyle`; default ``MapStyle()``, colour map ``"viridis"``; the
        default title names the level, time, lead, member and other single values
        selected, which the map cannot show, and ``title=""`` draws none). The
        former keywords ``projection``, ``coastlines``, ``cmap``, ``vmin``, ``vmax``,
        ``colorbar``, ``title`` and ``wind_stride`` still work, with a
        ``DeprecationWarning``.
    ax : matplotlib Axes, optional
        Axes to draw into (a GeoAxes when a projection is used).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on (cartopy ``GeoAxes`` for projected maps).

    Raises
    ------
    ValueError
        If the field is not 2-D after selection, a variable, dimension or latitude/longitude
        coordinate is missing or has repeated values, ``variable`` is given with a DataArray
        of another name, ``sel`` repeats ``level`` or ``time`` with another value, ``wind``
        is neither ``True`` nor a pair of names, a contour field is on another grid than
        the shaded one (the message names the coordinate), or the field has no finite
        value (NaN everywhere: nothing to map).

    Notes
    -----
    A ``contour`` DataArray is matched to the shaded field by its coordinates (its
    longitudes wrapped to the field's convention, 0–360° or −180–180°, latitudes in either
    order), not by array position. Latitudes out of order and longitudes not ascending
    (descending, or relabelled to −180–180° without ``sortby``) are drawn sorted, on a
    copy. On plain axes the observations' longitudes are wrapped to the map's. The periodic
    longitude seam of a global grid is closed so that the map covers 0–360°; a regional
    box, one across 0° or 180° included, is drawn over its own longitudes only: a gap wider
    than 1.5 grid spacings (the outside of the box, missing columns) is left empty, not
    bridged by the cells beside it. Coastlines come
    from ``xfuxi/_data/naturalearth`` (cartopy's ``pre_existing_data_dir`` is pointed there
    when it does not already hold them), so no download is attempted.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> da = xr.DataArray(np.zeros((3, 4)), dims=("latitude", "longitude"), name="t",
    ...                   coords={"latitude": [-45.0, 0.0, 45.0], "longitude": [0, 90, 180, 270]},
    ...                   attrs={"source": "Held-Suarez world"})
    >>> ax = plot_map(da, style=MapStyle(title="t = 0"))
    >>> [float(x) for x in ax.get_xlim()], ax.get_title()
    ([0.0, 360.0], 't = 0')
    >>> ax = da.fuxi.plot_map()  # the same through the accessor
    >>> [float(x) for x in ax.get_xlim()]
    [0.0, 360.0]
    """
    style = _map_style(style, legacy, "plot_map")
    selection = _selection(level, time, sel)
    field = _select_2d(data, variable, selection, keep_scalars=True)
    if style.title is None:
        style = style.replace(title=_map_title(field))
    field = _without_scalars(field)
    _refuse_empty_field(field, "the field")
    cfield = _contour_field(data, contour, selection)
    if cfield is not None:
        cfield = _on_grid(cfield, field, "contour")
    wpair = _wind_pair(data, wind, selection)
    style = style if style.cmap is not None else style.replace(cmap="viridis")
    return _map(field, data, style, ax, contour=cfield, wind=wpair, observations=observations)


def plot_increment(
    analysis: xr.Dataset | xr.DataArray,
    /,
    background: xr.Dataset | xr.DataArray,
    *,
    variable: str | None = None,
    level: float | None = None,
    time: Any = None,
    sel: Mapping[Hashable, Any] | None = None,
    wind: bool | Sequence[str] | None = None,
    observations: xr.Dataset | xr.DataArray | None = None,
    style: MapStyle | None = None,
    ax: Any = None,
    **legacy: Any,
) -> Any:
    """Map an analysis increment (analysis − background) with a symmetric diverging scale.

    Parameters
    ----------
    analysis, background : Dataset or DataArray
        Analysis and background on the same grid.
    variable : str, optional
        Variable to map (required for a Dataset with several variables).
    level, time, sel : optional
        Selections as in :func:`plot_map`.
    wind : bool or (str, str), optional
        Draw the increment of the wind as arrows (the components as in :func:`plot_map`),
        scaled to its own size unless ``style.wind_scale`` is given.
    observations : Dataset or DataArray, optional
        Observation locations to overlay.
    style : MapStyle, optional
        As in :func:`plot_map`, but the colour map defaults to ``"RdBu_r"`` and the colour
        limits to ±max|increment|. The former keywords ``projection``, ``coastlines``,
        ``cmap`` and ``title`` still work, with a ``DeprecationWarning``.
    ax : matplotlib Axes, optional
        Axes to draw into.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    ValueError
        As :func:`plot_map`, or if the grids of analysis and background differ.
    TypeError
        If one of analysis and background is a Dataset and the other a DataArray.

    Notes
    -----
    Colour limits are ±max|increment| so that zero is white.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> bg = xr.DataArray(np.zeros((3, 4)), dims=("latitude", "longitude"), name="t",
    ...                   coords={"latitude": [-45.0, 0.0, 45.0], "longitude": [0, 90, 180, 270]},
    ...                   attrs={"source": "held_suarez"})
    >>> ax = plot_increment(bg + 1.0, bg)
    >>> ax.collections[0].get_clim()
    (-1.0, 1.0)
    >>> ax = (bg + 2.0).fuxi.plot_increment(bg)  # analysis.fuxi.plot_increment(background)
    >>> ax.collections[0].get_clim()
    (-2.0, 2.0)
    """
    style = _map_style(style, legacy, "plot_increment")
    if isinstance(analysis, xr.DataArray) and isinstance(background, xr.DataArray):
        _check_variable(analysis, variable)
        variable = None  # the increment of two DataArrays may have lost the name
    selection = _selection(level, time, sel)
    a, b = prepare_pair(analysis, background, names=("analysis", "background"))
    inc = a - b
    inc.attrs = dict(analysis.attrs)
    if isinstance(inc, xr.Dataset):
        for v in inc.data_vars:
            inc[v].attrs = dict(analysis[v].attrs)
    field = _select_2d(inc, variable, selection, keep_scalars=True)
    if style.title is None:
        style = style.replace(title=_map_title(field))
    field = _without_scalars(field)
    wpair = _wind_pair(inc, wind, selection)
    field.name = f"{field.name or 'field'} increment"
    if field.attrs.get("long_name"):
        field.attrs = {**field.attrs, "long_name": f"{field.attrs['long_name']} increment"}
    _refuse_empty_field(field, "the increment (analysis − background)")
    lim = float(np.nanmax(np.abs(field.values))) or 1.0  # finite: checked above
    style = style.replace(
        cmap="RdBu_r" if style.cmap is None else style.cmap,
        vmin=-lim if style.vmin is None else style.vmin,
        vmax=lim if style.vmax is None else style.vmax,
    )
    return _map(field, analysis, style, ax, wind=wpair, observations=observations)


_HOUR = np.timedelta64(1, "h")


def _refuse_repeated_leads(values: np.ndarray, what: str, dim: str) -> None:
    """Refuse a lead given twice (a line jumping back at it, two columns of one lead)."""
    values = np.asarray(values)
    unique, counts = np.unique(values, return_counts=True)
    if unique.size != values.size:
        raise ValueError(
            f"{what} repeats the {dim} value(s) {_lead_text(unique[counts > 1])}: give each "
            "lead once (e.g. drop the duplicates with .drop_duplicates(...))"
        )


def _lead_text(values: np.ndarray) -> str:
    """Leads as hours where they are timedeltas: "[6, 12, 18] h"."""
    if np.issubdtype(values.dtype, np.timedelta64):
        return f"{(values / _HOUR).astype(float).tolist()} h"
    return str(values.tolist())


def _in_days(*leads: np.ndarray) -> bool:
    """Whether timedelta ``leads`` are shown in days: where they reach 72 hours and every
    lead is a whole number of quarter days (6 h), so that each lead reads as at most two
    decimals of a day (1.25, 2.5); sub-day leads such as 1 h or 2.5 h stay in hours (in
    days they read 0.0416667, 0.104167).

    >>> h = lambda *x: np.array(x, dtype="timedelta64[h]")
    >>> _in_days(h(12, 24, 96)), _in_days(h(1, 7, 100)), _in_days(h(6, 12, 48))
    (True, False, False)
    """
    times = [v for v in leads if np.issubdtype(v.dtype, np.timedelta64) and v.size]
    hours = [np.asarray(v / _HOUR, dtype="float64") for v in times]
    hours = [h[np.isfinite(h)] for h in hours]
    if not any(h.size and h.max() >= 72 for h in hours):
        return False
    quarter = [np.asarray(v[~np.isnat(v)], dtype="timedelta64[ns]").astype("int64") for v in times]
    step = int(np.timedelta64(6, "h") / np.timedelta64(1, "ns"))
    return all(bool(np.all(q % step == 0)) for q in quarter)


def _lead_axis(values: np.ndarray, *, days: bool | None = None) -> tuple[np.ndarray, str]:
    """Leads in hours, or in days (``days``; default: :func:`_in_days`, where they reach 72
    hours and are whole quarter days)."""
    if np.issubdtype(values.dtype, np.timedelta64):
        hours = values / _HOUR
        if days is None:
            days = _in_days(values)
        if days:
            return hours / 24.0, "lead time (days)"
        return hours, "lead time (hours)"
    return values, ""


def _score_label(s: xr.DataArray) -> tuple[str, Any]:
    """The metric and units of a score: a row of a scorecard (a scalar ``score``
    coordinate) is its score in the units the score gives the variable's
    ``variable_units``; any other score says them in its ``metric`` and ``units``."""
    if "score" in s.coords and s["score"].ndim == 0 and "metric" not in s.attrs:
        metric = str(s["score"].values)
        own = {"units": s.attrs["variable_units"]} if "variable_units" in s.attrs else {}
        return metric, score_units(own, metric).get("units")
    return str(s.attrs.get("metric", "")), s.attrs.get("units")


@_doc
def plot_scores(
    scores: xr.DataArray | xr.Dataset | Mapping[str, xr.DataArray],
    /,
    *,
    variable: str | None = None,
    dim: str = "prediction_timedelta",
    system_dim: str = "system",
    label: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """Plot a score against lead time for one or several systems on one axes.

    Parameters
    ----------
    scores : DataArray, Dataset or mapping of name to DataArray
        1-D scores along ``dim``; a DataArray may have a ``system_dim`` with one line per
        system; a mapping gives one line per entry.
    {{variable}}
    dim : str, default "prediction_timedelta"
        The lead dimension (timedelta leads are shown in hours, or in days where they
        reach 3 days and are all whole quarter days, 6 h, 12 h, ...; sub-day leads such as
        1 h or 2.5 h stay in hours, to read).
    system_dim : str, default "system"
        Dimension that separates systems in a single DataArray.
    label : str, optional
        Legend label for a single line (default: the ``system``/name).
    ylabel, title : str, optional
        Axis label (default: the ``metric`` attribute and units; for a row of a
        scorecard, its ``score`` and that score's units) and title.
    {{ax}}

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on, with a legend when there are several lines.

    Raises
    ------
    ValueError
        If a series is not 1-D along ``dim`` or repeats a lead, lines have different lead
        dims, every score is NaN (nothing to draw), or ``variable`` is given with a
        DataArray of another name.
    TypeError
        If ``scores`` or an entry of a mapping is not a DataArray (or, for ``scores``, a
        Dataset or mapping).

    Notes
    -----
    Draws what it is given, in lead order (leads out of order are sorted; a lead repeated
    within a line is refused); compute the scores first, e.g.
    ``fc.fuxi.rmse(truth, dim=["time", "latitude", "longitude"])``.

    The y axis is labelled with the metric and units only when every line shares them.
    Lines of different units or metrics (z500 and t850 RMSE, RMSE and MSE) share an axis
    labelled with the common metric (or ``"score"`` where the metrics differ), and each
    legend entry names its own units (and metric): ``"z500 (m² s⁻²)"``, ``"t850 (K)"``
    under ``rmse``; ``"a: rmse (K)"``, ``"b: mse (K²)"`` under ``score`` (a name that
    already ends in its units in parentheses is kept as it is).
    Their scales still differ: draw them on separate axes to compare their sizes.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import pandas as pd
    >>> lead = pd.to_timedelta([6, 12, 18], "h")
    >>> a = xr.DataArray([1.0, 2.0, 3.0], dims="prediction_timedelta",
    ...                  coords={"prediction_timedelta": lead})
    >>> ax = plot_scores({"FuXi": a, "persistence": a * 2})
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['FuXi', 'persistence']
    >>> ax = a.fuxi.plot_scores(label="FuXi")  # one line, through the accessor
    >>> [line.get_label() for line in ax.get_lines()]
    ['FuXi']
    """
    if isinstance(scores, xr.Dataset):
        scores = scores[_one_variable(scores, variable)]
    elif isinstance(scores, xr.DataArray):
        _check_variable(scores, variable)
    if isinstance(scores, xr.DataArray):
        if system_dim in scores.dims:
            series = {str(s): scores.sel({system_dim: s}) for s in scores[system_dim].values}
        else:
            series = {label or str(scores.attrs.get("system", scores.name or "")): scores}
    elif isinstance(scores, Mapping):
        series = dict(scores)
        for name, s in series.items():
            if not isinstance(s, xr.DataArray):
                raise TypeError(f"scores[{name!r}] must be a DataArray; got {type(s).__name__}")
    else:
        raise TypeError(f"scores must be a DataArray, Dataset or mapping; got {type(scores)}")
    xlabel = dim
    first = None
    lines = []
    for name, s in series.items():
        if s.ndim > 1:  # other dims of length one go; the lead stays, even of length one
            s = s.squeeze([d for d in s.dims if d != dim and s.sizes[d] == 1], drop=True)
        if s.dims != (dim,):
            other = [d for d in s.dims if d != dim]
            hint = (
                f"; select one value of {other} (e.g. .sel({other[0]}=...)), or draw one line "
                f"per {other[0]} with system_dim={other[0]!r}"
                if other and dim in s.dims
                else ""
            )
            raise ValueError(f"score {name!r} has dims {s.dims}; expected 1-D along {dim!r}{hint}")
        if dim in s.coords:  # drawn in lead order, not the data's (a zig-zag)
            s = s.sortby(dim)
            _refuse_repeated_leads(s[dim].values, f"score {name!r}" if name else "the score", dim)
        lines.append((name, s))
        first = first if first is not None else s
    _refuse_all_nan([s.values for _, s in lines], "the scores " + ", ".join(map(repr, series)))
    ax = _new_axes(ax, None)  # after the checks: a refused call leaves no empty figure
    # one unit for the whole axis (days where _in_days says so for all lines), not one per line
    leads = [s[dim].values for _, s in lines if dim in s.coords]
    in_days = _in_days(*leads)
    # one y label where every line has the same metric and units; else each line's own in
    # its legend entry (z500 and t850 RMSE, or RMSE and MSE, on one axes)
    raw = [_score_label(s) for _, s in lines]
    kinds = [(m, _units_label(u)) for m, u in raw]
    metrics = {m for m, _ in kinds}
    shared = len(set(kinds)) == 1
    for (name, s), (metric, units), (_, given) in zip(lines, kinds, raw):
        x, xl = _lead_axis(s[dim].values, days=in_days) if dim in s.coords else (
            np.arange(s.size), "")  # fmt: skip
        xlabel = xl or dim
        # the line's own units (and metric, where the metrics differ), unless its name
        # already gives the units
        name = "" if name is None else str(name)  # a mapping's keys may be numbers
        named = units and any(f"({u})" in name for u in (units, str(given)))
        if not shared and not named:
            own = f"({units})" if units else ""
            if len(metrics) > 1:
                own = f"{metric} {own}".strip()
            sep = ": " if len(metrics) > 1 else " "
            name = f"{name}{sep}{own}" if own and name else (name or own)
        ax.plot(x, s.values, marker="o", markersize=3, label=name)
    if first is not None:
        metric, units = kinds[0]
        if shared:
            default = f"{metric} ({units})" if units else metric
        else:
            default = next(iter(metrics)) if len(metrics) == 1 else "score"
        ax.set_ylabel(ylabel or default)
    ax.set_xlabel(xlabel)
    ax.grid(True, alpha=0.3)
    if len(series) > 1 or label:
        ax.legend()
    return _titled(ax, title)


@_doc
def plot_spread_skill(
    forecast: xr.Dataset | xr.DataArray,
    /,
    truth: xr.Dataset | xr.DataArray,
    *,
    variable: str | None = None,
    dim: str = "prediction_timedelta",
    member_dim: str | None = None,
    correction: bool = False,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """Plot ensemble spread and ensemble-mean RMSE against lead time, with their ratio.

    Parameters
    ----------
    forecast : Dataset or DataArray
        Ensemble forecast with a lead dimension ``dim``.
    truth : Dataset or DataArray
        Verifying truth (matched by valid time as in :func:`~xfuxi.rmse`).
    {{variable}}
    dim : str, default "prediction_timedelta"
        The dimension kept (x axis, in order); all others but ``level`` are reduced.
    {{member_dim}}
    correction : bool, default False
        Scale the spread by ``√((M+1)/M)`` (see :func:`~xfuxi.spread_skill_ratio`).
    {{title_ax}}

    Returns
    -------
    matplotlib.axes.Axes
        The axes with spread and RMSE; the ratio is on a twin axis (``ax.right_ax``).

    Raises
    ------
    ValueError
        As :func:`~xfuxi.spread_skill_ratio`, or if ``dim`` or ``variable`` is missing,
        ``variable`` is given with a DataArray of another name, the data have several
        levels (``level`` not being ``dim``: select one), or the RMSE or the spread is NaN
        everywhere.
    TypeError
        If one of forecast and truth is a Dataset and the other a DataArray.

    Notes
    -----
    Spread and RMSE as defined in docs/design.md (:func:`~xfuxi.spread`,
    :func:`~xfuxi.ensemble_mean_rmse`), reduced over every dim except ``dim`` and the
    members (time, latitude, longitude, ...). Several levels are refused rather than pooled:
    the level of the largest variance would dominate.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> rng = np.random.default_rng(0)
    >>> fc = xr.DataArray(rng.normal(size=(3, 4, 5)), dims=("prediction_timedelta", "number", "x"))
    >>> ax = plot_spread_skill(fc, xr.DataArray(rng.normal(size=(3, 5)),
    ...                                         dims=("prediction_timedelta", "x")))
    >>> len(ax.lines), len(ax.right_ax.lines)
    (2, 2)
    >>> ax = fc.fuxi.plot_spread_skill(xr.DataArray(rng.normal(size=(3, 5)),
    ...                                             dims=("prediction_timedelta", "x")))
    >>> len(ax.lines), len(ax.right_ax.lines)  # the same through the accessor
    (2, 2)
    """
    forecast, truth = _one_pair(forecast, truth, variable)
    if dim not in forecast.dims:
        raise ValueError(f"forecast has no {dim!r} dimension to plot against")
    _refuse_levels(forecast, truth, dim, "plot_spread_skill",
                   f"every dim but {dim!r} and the members")  # fmt: skip
    if dim in forecast.coords:  # drawn in lead order, not the data's (a zig-zag)
        forecast = forecast.sortby(dim)
    mdim = ensemble_dim(forecast, member_dim)
    m = forecast.sizes[mdim]
    reduce = [d for d in forecast.dims if d not in (dim, mdim)]
    s = spread(forecast, dim=reduce, member_dim=mdim)
    if check_flag(correction, "correction"):
        s = s * np.sqrt((m + 1.0) / m)
    e = ensemble_mean_rmse(forecast, truth, dim=reduce, member_dim=mdim)
    _refuse_all_nan([e.values], "the ensemble-mean RMSE (forecast or truth)")
    _refuse_all_nan([s.values], "the spread (forecast)")
    ax = _new_axes(ax, None)
    x, xl = _lead_axis(s[dim].values) if dim in s.coords else (np.arange(s.sizes[dim]), dim)
    ax.plot(x, e.values, marker="o", markersize=3, label="ensemble-mean RMSE")
    ax.plot(
        x,
        s.values,
        marker="s",
        markersize=3,
        label="spread" + (" (corrected)" if correction else ""),
    )
    units = _units_label(forecast.attrs.get("units"))
    ax.set_ylabel(f"{forecast.name or ''} ({units})" if units else str(forecast.name or ""))
    ax.set_xlabel(xl or dim)
    ax.grid(True, alpha=0.3)
    right = ax.twinx()
    # with markers: a single lead, or one between NaN leads, is a point, not nothing
    right.plot(x, (s / e).values, color="k", linestyle="--", linewidth=1, marker="^",
               markersize=3, label="ratio")  # fmt: skip
    right.axhline(1.0, color="0.5", linewidth=0.8, linestyle=":")
    right.set_ylabel("spread / RMSE")
    ax.right_ax = right
    lines = ax.get_lines() + right.get_lines()[:1]
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=7)
    return _titled(ax, title)


@_doc
def plot_rank_histogram(
    forecast: xr.Dataset | xr.DataArray,
    /,
    truth: xr.Dataset | xr.DataArray,
    *,
    variable: str | None = None,
    member_dim: str | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """Plot the rank histogram (relative frequency of the truth's rank among members).

    Parameters
    ----------
    forecast : Dataset or DataArray
        Ensemble forecast with M members.
    truth : Dataset or DataArray
        Verifying truth.
    {{variable}}
    {{member_dim}}
    title : str, optional
        Axes title; default ``"rank histogram of <variable>"`` with ``", all leads"``
        (several leads pooled) or the lead (a single one).
    ax : matplotlib Axes, optional
        Axes to draw into.

    Returns
    -------
    matplotlib.axes.Axes
        Bars for ranks 0..M (ticks at whole ranks) and a dashed line at the flat value
        1/(M+1).

    Raises
    ------
    ValueError
        As :func:`~xfuxi.rank_histogram`, or if ``variable`` is missing, or is given with a
        DataArray of another name, the data have several levels (select one), or no point
        has a finite truth and finite members (all NaN).
    TypeError
        If one of forecast and truth is a Dataset and the other a DataArray.

    Notes
    -----
    Counts from :func:`~xfuxi.rank_histogram` over all points (every dim but the members:
    leads, times, latitudes, longitudes), normalised to frequencies; a flat histogram means
    a statistically consistent ensemble (Hamill 2001). Several levels are refused rather
    than pooled.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> rng = np.random.default_rng(0)
    >>> fc = xr.DataArray(rng.normal(size=(100, 4)), dims=("x", "number"))
    >>> ax = plot_rank_histogram(fc, xr.DataArray(rng.normal(size=100), dims="x"))
    >>> len(ax.patches)
    5
    >>> ax = fc.fuxi.plot_rank_histogram(xr.DataArray(rng.normal(size=100), dims="x"))
    >>> len(ax.patches)  # the same through the accessor
    5
    """
    forecast, truth = _one_pair(forecast, truth, variable)
    _refuse_levels(forecast, truth, None, "plot_rank_histogram", "every dim but the members")
    h = rank_histogram(forecast, truth, member_dim=member_dim)
    if not float(h.sum()) > 0:
        raise ValueError(
            "the forecast or the truth are NaN everywhere (no point has a finite truth and "
            "finite members): there is nothing to plot"
        )
    freq = h / h.sum()
    ax = _new_axes(ax, None)
    ax.bar(h["rank"].values, freq.values, width=0.9, color="C0")
    ax.axhline(1.0 / h.sizes["rank"], color="k", linestyle="--", linewidth=0.8)
    ax.set_xlabel("rank of the truth among members")
    ax.set_ylabel("relative frequency")
    _integer_ticks(ax.xaxis)
    if title is None:
        title = f"rank histogram of {forecast.name}" if forecast.name else "rank histogram"
        lead = "prediction_timedelta"
        if lead in forecast.coords and forecast[lead].size == 1:
            title += f", lead {_value_text(lead, forecast[lead].values.ravel()[0])}"
        elif lead in forecast.dims:
            title += ", all leads"
    return _titled(ax, title)


def _integer_ticks(axis: Any) -> None:
    """Ticks of ``axis`` at whole numbers only (ranks, iterations)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


@_doc
def plot_spectra(
    spectra: xr.DataArray | Mapping[str, xr.DataArray],
    /,
    *,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """Plot zonal energy spectra against wavelength (log–log, the large scales on the left).

    Parameters
    ----------
    spectra : DataArray or mapping of label to DataArray
        Spectra from :func:`~xfuxi.zonal_energy_spectrum`, each one curve: a latitude
        band's mean (dim ``frequency``) or one latitude's spectrum (dim
        ``zonal_wavenumber``), with its ``wavelength`` coordinate; every other dim
        selected or reduced first (a time mean, one lead, one level). A mapping gives one
        line per entry, labelled by its key.
    {{title_ax}}

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on; wavelength in km on the x axis (decreasing to the right), the
        energy (the spectra's units) on the y axis. The zonal mean (an infinite
        wavelength) is not drawn.

    Raises
    ------
    ValueError
        An empty mapping, a spectrum without a ``wavelength`` coordinate or with more
        than one dim, spectra of other units, or none with a finite positive value.
    TypeError
        A spectrum that is not a DataArray.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> from xfuxi.verify.spectra import zonal_energy_spectrum
    >>> lon = np.arange(0.0, 360.0, 10.0)
    >>> rng = np.random.default_rng(0)
    >>> f = xr.DataArray(rng.normal(size=(3, 36)), dims=("latitude", "longitude"),
    ...                  coords={"latitude": [40.0, 45.0, 50.0], "longitude": lon},
    ...                  attrs={"units": "K"})
    >>> band = dict(latitude_band=(40, 50))
    >>> smooth = f.rolling(longitude=3, center=True).mean().fillna(0.0)
    >>> ax = plot_spectra({"field": zonal_energy_spectrum(f, **band),
    ...                    "smoothed": zonal_energy_spectrum(smooth, **band)})
    >>> len(ax.lines), ax.get_xscale(), ax.get_ylabel()
    (2, 'log', 'energy [m (K)²]')
    """
    curves = dict(spectra) if isinstance(spectra, Mapping) else {None: spectra}
    if not curves:
        raise ValueError("spectra is an empty mapping: give at least one spectrum")
    units = set()
    lines = []
    for label, spec in curves.items():
        name = "spectra" if label is None else f"spectrum {label!r}"
        if not isinstance(spec, xr.DataArray):
            raise TypeError(f"{name} must be a DataArray; got {type(spec).__name__}")
        if "wavelength" not in spec.coords:
            raise ValueError(
                f"{name} has no 'wavelength' coordinate: give the result of "
                "xfuxi.zonal_energy_spectrum"
            )
        if spec.ndim != 1 or spec["wavelength"].ndim != 1:
            raise ValueError(
                f"{name} has dims {list(spec.dims)}; one curve has one dim (frequency or "
                "zonal_wavenumber): select or reduce the others first (e.g. .mean('time'), "
                ".sel(latitude=45), or latitude_band=)"
            )
        units.add(spec.attrs.get("units"))
        km = np.asarray(spec["wavelength"].values, dtype="float64") / 1e3
        y = np.asarray(spec.values, dtype="float64")
        keep = np.isfinite(km) & (km > 0) & np.isfinite(y) & (y > 0)
        lines.append((label, km[keep], y[keep]))
    if len(units) > 1:
        raise ValueError(f"the spectra have other units: {sorted(map(str, units))}")
    if not any(x.size for _, x, _ in lines):
        raise ValueError("the spectra have no finite positive value: there is nothing to plot")
    ax = _new_axes(ax, None)
    for label, x, y in lines:
        order = np.argsort(x)
        ax.plot(x[order], y[order], label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    if not ax.xaxis_inverted():
        ax.invert_xaxis()
    ax.set_xlabel("wavelength [km]")
    unit = _units_label(units.pop())
    ax.set_ylabel(f"energy [{unit}]" if unit else "energy")
    if any(label is not None for label, _, _ in lines):
        ax.legend()
    return _titled(ax, title)


@_doc
def plot_convergence(
    costs: xr.Dataset | xr.DataArray | Sequence[float] | Mapping[str, Any],
    /,
    *,
    variable: str | None = None,
    dim: str = "iteration",
    normalize: bool = False,
    log: bool = True,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """Plot cost-function convergence (e.g. the En4DVar cost J per L-BFGS iteration).

    Parameters
    ----------
    costs : DataArray, Dataset, sequence or mapping of name to those
        Cost values along ``dim`` (iteration 0 = start). A Dataset plots ``variable``, or
        its ``cost`` variable (as in En4DVar diagnostics), or every 1-D variable along
        ``dim``. A mapping gives one line per entry.
    {{variable}}
    dim : str, default "iteration"
        Iteration dimension.
    normalize : bool, default False
        Divide each curve by its first value.
    log : bool, default True
        Logarithmic y axis (needs positive values).
    {{title_ax}}

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    ValueError
        If a curve is not 1-D, is empty, or has non-positive values on a log axis, every
        curve is NaN throughout, a curve starts at NaN or 0 with ``normalize=True``, or
        ``variable`` is not a variable of the Dataset.

    Notes
    -----
    For En4DVar the cost is ``J(w) = ½wᵀw + ½ Σ_k ‖y_k − H_k(M_k(x))‖²_R`` (defined in
    docs/design.md). A DataArray with a coordinate along ``dim`` is drawn in its order, at
    its values (iterations 0, 10, 20 as such); other curves at 0, 1, 2, ...

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> ax = plot_convergence({"J": [10.0, 4.0, 2.0, 1.9]})
    >>> ax.get_yscale()
    'log'
    >>> cost = xr.DataArray([10.0, 4.0, 2.0, 1.9], dims="iteration", name="cost")
    >>> ax = cost.fuxi.plot_convergence(normalize=True)  # through the accessor
    >>> [float(y) for y in ax.get_lines()[0].get_ydata()]
    [1.0, 0.4, 0.2, 0.19]
    """
    check_flag(normalize, "normalize")
    check_flag(log, "log")
    if isinstance(costs, xr.Dataset):
        if variable is not None:
            if variable not in costs.data_vars:
                raise ValueError(
                    f"variable {variable!r} not in the Dataset ({list(costs.data_vars)})"
                )
            curves = {variable: costs[variable]}
        elif "cost" in costs.data_vars:
            curves = {"cost": costs["cost"]}
        else:
            curves = {str(k): v for k, v in costs.data_vars.items() if v.dims == (dim,)}
    elif isinstance(costs, Mapping):
        curves = dict(costs)
    else:
        name = getattr(costs, "name", None) or "cost"
        curves = {str(name): costs}
    if not curves:
        raise ValueError(f"no 1-D cost curve along {dim!r} to plot")
    arrays, xs = {}, {}
    for name, c in curves.items():
        x = None
        if isinstance(c, xr.DataArray) and c.ndim == 1 and c.dims[0] in c.coords:
            c = c.sortby(c.dims[0])  # drawn in iteration order, not the data's
            x = np.asarray(c[c.dims[0]].values)  # at its iterations, not 0..n-1
        values = np.asarray(c, dtype="float64")
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"cost curve {name!r} must be non-empty and 1-D; got {values.shape}")
        arrays[name], xs[name] = values, np.arange(values.size) if x is None else x
    _refuse_all_nan(list(arrays.values()), "the cost curves " + ", ".join(map(repr, arrays)))
    if normalize:
        for name, values in arrays.items():
            if not (np.isfinite(values[0]) and values[0] != 0):
                raise ValueError(
                    f"cost curve {name!r} starts at {values[0]}: normalize=True divides by the "
                    "first value, which must be finite and non-zero (the curve would have no "
                    "finite values); use normalize=False or drop that iteration"
                )
            arrays[name] = values / values[0]
    ax = _new_axes(ax, None)
    for name, values in arrays.items():
        if log and np.any(values <= 0):
            raise ValueError(f"cost curve {name!r} has values <= 0; use log=False")
        ax.plot(xs[name], values, marker="o", markersize=3, label=name)
    if log:
        ax.set_yscale("log")
    _integer_ticks(ax.xaxis)  # whole iterations
    ax.set_xlabel(dim)
    ax.set_ylabel("cost / initial cost" if normalize else "cost")
    ax.grid(True, alpha=0.3, which="both")
    if len(curves) > 1:
        ax.legend()
    return _titled(ax, title)


#: the colour of a scorecard cell without a value (drawn hatched too)
_MISSING_CELL = "0.8"


def plot_scorecard(
    card: xr.Dataset,
    /,
    reference: xr.Dataset,
    *,
    region: Hashable = "global",
    lead_dim: str = "prediction_timedelta",
    names: tuple[str, str] = ("A", "B"),
    vmax: float = 20.0,
    annotate: bool | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """Headline scorecard: system B (``card``) against system A (``reference``), by lead.

    Parameters
    ----------
    card : Dataset
        Scorecard of system B (:func:`xfuxi.verify.scorecard.scorecard`).
    reference : Dataset
        Scorecard of system A, with the same scores, variables, levels and leads (a
        difference is refused, not left out).
    region : str, default "global"
        Region (label on the ``region`` dim) to show.
    lead_dim : str, default "prediction_timedelta"
        The lead dim (columns). One lead selected as a scalar (``card.isel(lead_dim=1)``)
        gives a card of one column. Leads are shown in hours, or in days where they reach
        3 days and are whole quarter days.
    names : (str, str), default ("A", "B")
        Names of the systems in the colour bar label.
    vmax : float, default 20
        Colour range ±``vmax`` per cent.
    annotate : bool, optional
        Write each cell's value (rounded to whole per cent, in white on dark cells and
        black on light ones); default when there are at most 24 leads.
    title : str, optional
        Axes title.
    ax : matplotlib Axes, optional
        Axes to draw into.

    Returns
    -------
    matplotlib.axes.Axes
        One row per score × variable (× level), one column per lead, coloured by the
        relative difference of B from A in per cent: blue where B is better. A cell
        without a value (a NaN score, or A perfect) is grey and hatched, with a "no
        value" key above the colour bar, so that it is not taken for a 0 % (white)
        cell.

    Raises
    ------
    ValueError
        If the two cards share no score with a perfect value, or lack ``region``, or differ
        in their variables, their scores with a perfect value, their levels or their leads,
        repeat a lead, have no ``lead_dim``, or have dims other than ``score``, ``region``,
        ``lead_dim`` and ``level``.

    Notes
    -----
    The relative difference is ``100 (|b − p| − |a − p|) / |a − p|`` with ``p`` the
    score's perfect value (the card's ``perfect_value`` coordinate: 0 for errors, 1 for
    ACC and the spread–skill ratio), so a negative value (blue) means B is closer to
    perfect. Scores without a perfect value (spread) are left out. The columns are in lead
    order, whatever the order of the cards' leads.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> lead = np.array([6, 12], dtype="timedelta64[h]")
    >>> a = xr.Dataset({"t": (("score", "prediction_timedelta", "region"), [[[1.0], [2.0]]])},
    ...                coords={"score": ["rmse"], "prediction_timedelta": lead,
    ...                        "region": ["global"], "perfect_value": ("score", [0.0])})
    >>> ax = plot_scorecard(a * 0.9, a)
    >>> ax.get_yticklabels()[0].get_text()
    'rmse t'
    >>> ax = (a * 0.9).fuxi.plot_scorecard(a)  # the same through the accessor
    >>> ax.get_yticklabels()[0].get_text()
    'rmse t'
    """
    for label, c in (("card", card), ("reference", reference)):
        if "region" not in c.dims or region not in c["region"].values:
            raise ValueError(f"the {label} has no region {region!r}")
    b, a = card.sel(region=region), reference.sel(region=region)
    # one lead selected as a scalar (card.isel(lead=1)): a card of one column
    a, b = (c.expand_dims(lead_dim) if lead_dim in c.coords and c[lead_dim].ndim == 0
            and lead_dim not in c.dims else c for c in (a, b))  # fmt: skip
    for label, c in (("card", b), ("reference", a)):
        if lead_dim not in c.dims:
            raise ValueError(
                f"the {label} has no {lead_dim!r} dimension (the columns): "
                "pass lead_dim= naming the lead dim"
            )
    # columns in lead order, not the data's
    a, b = (c.sortby(lead_dim) if lead_dim in c.coords and lead_dim in c.dims else c
            for c in (a, b))  # fmt: skip
    if lead_dim in a.dims or lead_dim in b.dims:  # cells are drawn by position: same leads
        la = a[lead_dim].values if lead_dim in a.dims else np.array([])
        lb = b[lead_dim].values if lead_dim in b.dims else np.array([])
        _refuse_repeated_leads(lb, "the card", lead_dim)
        _refuse_repeated_leads(la, "the reference", lead_dim)
        if la.shape != lb.shape or not np.array_equal(la, lb):
            raise ValueError(
                f"the card and the reference must have the same leads ({lead_dim}); the "
                f"card has {_lead_text(lb)}, the reference {_lead_text(la)}: select the "
                "common ones in both"
            )
    _same_cards(b, a, lead_dim)
    perfect = a["perfect_value"] if "perfect_value" in a.coords else None
    rows, labels = [], []
    for score in a["score"].values:
        p = float(perfect.sel(score=score)) if perfect is not None else np.nan
        if not np.isfinite(p):
            continue
        for var in a.data_vars:
            va, vb = a[var].sel(score=score), b[var].sel(score=score)
            if bool(va.isnull().all()):
                continue
            levels = va["level"].values if "level" in va.dims else [None]
            for lev in levels:
                sa = va if lev is None else va.sel(level=lev)
                sb = vb if lev is None else vb.sel(level=lev)
                da_, db_ = np.abs(sa - p), np.abs(sb - p)
                rel = 100.0 * (db_ - da_) / da_.where(da_ > 0)
                rows.append(np.asarray(rel.transpose(lead_dim).values, dtype=float))
                labels.append(f"{score} {var}" + ("" if lev is None else f" {lev:g}"))
    if not rows:
        raise ValueError("the cards share no score with a perfect value to compare")
    leads, lead_label = _lead_axis(a[lead_dim].values)
    grid = np.vstack(rows)
    cbar_label = f"{names[1]} vs {names[0]}:\n% change of distance to perfect"
    plt = _plt()
    if ax is None:
        # wide enough for the row labels (about 0.6 em a character) and the colour bar,
        # which the constrained layout keeps inside the figure
        size = float(
            plt.rcParams["ytick.labelsize"]
            if isinstance(plt.rcParams["ytick.labelsize"], (int, float))
            else plt.rcParams["font.size"]
        )
        label_width = 0.6 * size / 72.0 * max(len(x) for x in labels)
        # tall enough for the colour bar's label (two lines, about 0.55 em a character,
        # the longer line), which was clipped for cards of few rows
        longest = max(len(x) for x in cbar_label.split("\n"))
        label_height = 0.55 * float(plt.rcParams["font.size"]) / 72.0 * longest + 0.5
        _, ax = plt.subplots(
            figsize=(max(4.0, 0.45 * grid.shape[1] + 1.8 + label_width),
                     max(0.35 * len(rows) + 1.5, label_height)),
            layout="constrained",
        )  # fmt: skip
    from matplotlib.patches import Patch, Rectangle

    cmap = plt.get_cmap("RdBu_r").with_extremes(bad=_MISSING_CELL)
    im = ax.imshow(grid, cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
    missing = ~np.isfinite(grid)
    for i, j in zip(*np.nonzero(missing)):  # grey and hatched: not a 0 % (white) cell
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1.0, 1.0, facecolor="none",
                               edgecolor="0.45", hatch="///", linewidth=0.0))  # fmt: skip
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xticks(range(len(leads)), [f"{x:g}" for x in leads])
    ax.set_xlabel(lead_label)
    cbar = ax.figure.colorbar(im, ax=ax)
    cbar.set_label(cbar_label)
    if missing.any():  # a key above the colour bar, clear of the title
        cbar.ax.legend(handles=[Patch(facecolor=_MISSING_CELL, edgecolor="0.45", hatch="///",
                                      label="no value")], loc="lower center",
                       bbox_to_anchor=(0.5, 1.01), fontsize=7, frameon=False,
                       borderaxespad=0.1, handlelength=1.2)  # fmt: skip
    if (
        check_flag(annotate, "annotate", allow_none=True)
        if annotate is not None
        else (grid.shape[1] <= 24)
    ):
        # white on dark cells, black on light ones (by the cell's own colour), as
        # seaborn's heatmap does: black numbers on saturated red or blue are unreadable
        colours = _text_colours_on(im.cmap(im.norm(grid)))
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color=colours[i, j])
    return _titled(ax, title)


__all__ += ["plot_scorecard"]  # appended with the function (issue 24)
__all__ += ["plot_spectra"]


def _text_colours_on(rgba: np.ndarray) -> np.ndarray:
    """Text colour, ``"white"`` or ``"black"``, for each cell of colours ``rgba`` (..., 4):
    the one of higher contrast (WCAG 2), i.e. white where the cell's relative luminance is
    below about 0.18."""
    rgb = np.asarray(rgba, dtype=float)[..., :3]
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    lum = linear @ np.array([0.2126, 0.7152, 0.0722])
    # contrast with white (1.05 / (L + 0.05)) beats that with black ((L + 0.05) / 0.05)
    return np.where((lum + 0.05) ** 2 < 1.05 * 0.05, "white", "black")


def _perfect_scores(card: xr.Dataset) -> list:
    """The scores of ``card`` with a finite perfect value (those drawn)."""
    if "score" not in card.dims or "perfect_value" not in card.coords:
        return []
    p = np.asarray(card["perfect_value"].values, dtype="float64")
    return [s for s, v in zip(card["score"].values.tolist(), np.atleast_1d(p)) if np.isfinite(v)]


def _same_cards(card: xr.Dataset, reference: xr.Dataset, lead_dim: str) -> None:
    """Refuse cards (at one region) whose variables, drawn scores or levels differ, or
    with dims a scorecard cell cannot show: nothing is left out without a word."""

    def differ(what: str, b: list, a: list) -> None:
        lacks_b = [x for x in a if x not in b]
        lacks_a = [x for x in b if x not in a]
        if lacks_b or lacks_a:
            parts = [f"the card lacks {what} {lacks_b} of the reference"] if lacks_b else []
            parts += [f"the reference lacks {what} {lacks_a} of the card"] if lacks_a else []
            raise ValueError(
                f"{'; '.join(parts)}: plot_scorecard compares the same {what} in both "
                "(select the common ones)"
            )

    differ("variable(s)", list(card.data_vars), list(reference.data_vars))
    differ("score(s)", _perfect_scores(card), _perfect_scores(reference))
    for label, c in (("card", card), ("reference", reference)):
        extra = sorted(
            {str(d) for v in c.data_vars.values() for d in v.dims} - {"score", lead_dim, "level"}
        )
        if extra:
            raise ValueError(
                f"the {label} has dims {extra} besides score, {lead_dim} and level: select "
                "one value of each (e.g. .sel(...) or .mean(...)) first"
            )
    la = reference["level"].values.tolist() if "level" in reference.dims else []
    lb = card["level"].values.tolist() if "level" in card.dims else []
    if la != lb and sorted(la) != sorted(lb):
        raise ValueError(
            f"the card and the reference must have the same levels; the card has {lb}, the "
            f"reference {la}: select the common ones in both"
        )


def plot_cycle(
    scores: xr.Dataset,
    *,
    channel: str | None = None,
    channels: Sequence[str] | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Error and ensemble spread of a cycled assimilation against time.

    Parameters
    ----------
    scores : xarray.Dataset
        :func:`xfuxi.cycle`'s ``scores`` (or :func:`~xfuxi.assimilation.cycle.open_cycle`):
        ``analysis_error``, ``background_error``, ``free_error`` and ``spread`` on dims
        ``time`` and ``channel``.
    channel : str, optional
        The channel to draw (default: that of ``channels``, else the first).
    channels : str or sequence of one str, optional
        The same, for the ``plot`` method of what :func:`xfuxi.cycle` returns. One channel
        is drawn: several are refused (call once per channel, each on its own ``ax``), and
        so is a ``channels`` naming another channel than ``channel``.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        ``scores`` lack one of the four variables, ``channel`` is not in them, the four
        are NaN throughout for that channel (nothing to draw), or ``channels`` names
        several channels or another than ``channel``.

    Notes
    -----
    Drawn in time order. A spread that is NaN throughout (a method without members) is
    not drawn; cycles without observations (``no_observations``) are marked by a vertical
    line; a run of one cycle is drawn with markers.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.date_range("2000-01-01", periods=4, freq="6h")
    >>> s = xr.Dataset({k: (("time", "channel"), np.ones((4, 1)))
    ...                 for k in ("analysis_error", "background_error", "free_error", "spread")},
    ...                coords={"time": t, "channel": ["x"]})
    >>> ax = plot_cycle(s)
    >>> [line.get_label() for line in ax.get_lines()]
    ['analysis', 'background', 'free run', 'spread']
    >>> ax = s.fuxi.plot_cycle()  # the same through the accessor
    >>> len(ax.get_lines())
    4
    """
    need = ["analysis_error", "background_error", "free_error", "spread"]
    missing = [v for v in need if v not in scores]
    if missing:
        raise ValueError(f"scores lack {missing}; give the scores of xfuxi.cycle")
    for dim in ("time", "channel"):  # (one selected: "iteration over a 0-d array" before)
        if dim not in scores.dims:
            raise ValueError(
                f"scores have no {dim!r} dim (dims {list(scores.dims)}): give them whole, "
                "with channel= to pick the channel drawn"
            )
    times = scores.indexes["time"] if "time" in scores.indexes else None
    if times is not None and not times.is_unique:  # two runs' scores joined: a zig-zag
        twice = [str(t)[:19] for t in times[times.duplicated()].unique()[:3]]
        raise ValueError(f"the scores hold the times {twice} more than once")
    names = [str(c) for c in scores["channel"].values]
    if isinstance(channels, str):  # one name, not its characters
        channels = [channels]
    if channels is not None and len(channels) > 1:  # the first alone was drawn, silently
        raise ValueError(
            f"plot_cycle draws one channel; got {list(channels)}: call it once per channel"
        )
    if channel is not None and channels and str(channels[0]) != str(channel):
        raise ValueError(
            f"plot_cycle got channel={channel!r} and channels={list(channels)}: give one of "
            "them (they name the same thing)"
        )
    if channel is None:
        channel = channels[0] if channels else names[0]
    if channel not in names:
        raise ValueError(f"channel {channel!r} is not in the scores; they have {names}")
    s = scores.sel(channel=channel).sortby("time")  # drawn in time order, not the data's
    _refuse_all_nan([s[v].values for v in need],
                    f"the scores ({', '.join(need)}) of channel {channel!r}")  # fmt: skip
    ax = _new_axes(ax, None)
    t = s["time"].values
    styles = {
        "analysis_error": ("analysis", "-"),
        "background_error": ("background", "--"),
        "free_error": ("free run", ":"),
        "spread": ("spread", "-."),
    }
    marker = "o" if t.size < 2 else None  # one cycle: a line of one point is not seen
    for var, (label, style) in styles.items():
        values = np.asarray(s[var], dtype="float64")
        if var == "spread" and not np.isfinite(values).any():
            continue  # a method without members
        ax.plot(t, values, style, marker=marker, label=label)
    if "no_observations" in scores:
        empty = t[np.asarray(s["no_observations"], dtype=bool)]
        for k, when in enumerate(empty):
            ax.axvline(when, color="0.6", lw=0.8, label="no observations" if k == 0 else None)
    if t.size == 1:
        ax.set_xlim(t[0] - np.timedelta64(6, "h"), t[0] + np.timedelta64(6, "h"))
    ax.set_xlabel("time")
    units = _units_label(s["channel_units"].values.item()) if "channel_units" in s.coords else ""
    ax.set_ylabel(f"{channel}: RMSE / spread" + (f" ({units})" if units else ""))
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title if title is not None else f"cycled assimilation, {channel}")
    # the dates slanted as autofmt_xdate does, without its subplots_adjust (which a
    # constrained layout refuses with a warning, and which moved a caller's axes)
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")
    return ax
