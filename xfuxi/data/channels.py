"""Model channels: (variable, level) pairs stacked in a fixed, recorded order.

A channel is ``(variable, level)`` with ``level`` a pressure in hPa, or ``None`` for a
single-level variable. Arrays stacked by :func:`stack` have the channel axis right before
``latitude, longitude``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from .schema import SchemaError, canonical_order

__all__ = [
    "VECTOR_COMPONENTS",
    "WIND_COMPONENTS",
    "Channel",
    "channel_name",
    "channels_of",
    "parse_channel_name",
    "stack",
    "stack_values",
    "unstack",
]

Channel = tuple[str, "float | None"]

#: (u, v) variable names of the horizontal wind components, by level kind
WIND_COMPONENTS = (
    ("u_component_of_wind", "v_component_of_wind"),
    ("10m_u_component_of_wind", "10m_v_component_of_wind"),
)

#: variables whose sign flips when interpolating across a pole (components in a local frame)
VECTOR_COMPONENTS: frozenset[str] = frozenset(
    {name for pair in WIND_COMPONENTS for name in pair}
    | {"100m_u_component_of_wind", "100m_v_component_of_wind"}
)


def channel_name(channel: Channel) -> str:
    """Return the string name of a channel: ``"geopotential@500"`` or ``"surface_pressure"``.

    Examples
    --------
    >>> channel_name(("geopotential", 500.0)), channel_name(("surface_pressure", None))
    ('geopotential@500', 'surface_pressure')
    """
    var, level = channel
    return var if level is None else f"{var}@{float(level):g}"


def parse_channel_name(name: str) -> Channel:
    """Inverse of :func:`channel_name`.

    Examples
    --------
    >>> parse_channel_name("temperature@850")
    ('temperature', 850.0)
    """
    if "@" in name:
        var, level = name.rsplit("@", 1)
        return (var, float(level))
    return (name, None)


def channels_of(ds: xr.Dataset, variables: Sequence[str] | None = None) -> list[Channel]:
    """List the channels of ``ds``: each variable's levels in order, single levels as ``None``.

    Parameters
    ----------
    ds : xarray.Dataset
        Canonical data.
    variables : sequence of str, optional
        Variables in the order wanted; default: the data variables in ``ds`` order.
    """
    names = list(ds.data_vars) if variables is None else list(variables)
    out: list[Channel] = []
    for v in names:
        if v not in ds.data_vars:
            raise SchemaError(f"missing variable {v!r}")
        if "level" in ds[v].dims:
            out.extend((str(v), float(lv)) for lv in ds["level"].values)
        else:
            out.append((str(v), None))
    return out


def stack(ds: xr.Dataset, channels: Sequence[Channel]) -> xr.DataArray:
    """Stack ``channels`` of ``ds`` into one DataArray with a ``channel`` dim before lat/lon.

    The array is named after the variable where every channel is of one variable (unnamed
    otherwise) and its attributes are those every stacked variable shares (same name and
    value): a stack of temperature and surface pressure claims no ``units``, as neither
    one's holds for the other's channels. It keeps the coordinates of ``ds`` that fit its
    dimensions: the dimension coordinates, and scalar ones or those along its other dims
    (``number``, a ``valid_time`` along ``time``); those along ``level`` (other than
    ``level`` itself, which the channels replace) have no place on it and are left out.

    Raises :class:`SchemaError` naming any channel that ``ds`` lacks.
    """
    fast = _stack_in_memory(ds, channels)
    if fast is not None:
        return fast
    pieces = []
    for var, level in channels:
        if var not in ds.data_vars:
            raise SchemaError(f"missing variable {var!r} needed for channel {(var, level)}")
        da = ds[var]
        if level is None:
            if "level" in da.dims:
                raise SchemaError(f"variable {var!r} has levels; channel needs a level")
        else:
            if "level" not in da.dims:
                raise SchemaError(f"variable {var!r} has no 'level' dim; channel asks {level} hPa")
            lev = ds["level"].values
            idx = np.nonzero(np.isclose(lev, level))[0]
            if idx.size == 0:
                raise SchemaError(
                    f"level {level} hPa of {var!r} is missing; the data has {lev.tolist()}"
                )
            da = da.isel(level=int(idx[0]), drop=True)
        pieces.append(da.drop_vars([c for c in da.coords if c not in da.dims]))
    names = [channel_name(c) for c in channels]
    out = xr.concat(pieces, dim="channel", coords="minimal", compat="override", join="exact")
    out = out.assign_coords(channel=names)
    out = out.assign_coords(_kept_coords(ds, out.dims))
    other = [d for d in out.dims if d not in ("channel", "latitude", "longitude")]
    out = out.transpose(*other, "channel", "latitude", "longitude").rename(_stack_name(channels))
    out = out.copy(deep=False)  # concat gave it the first variable's attrs: its own dict
    out.attrs = _shared_attrs(ds, channels)
    return out


def _stack_name(channels: Sequence[Channel]) -> str | None:
    """The name of a stack: its variable's where all channels are of one, else none."""
    variables = {var for var, _ in channels}
    return next(iter(variables)) if len(variables) == 1 else None


def _shared_attrs(ds: xr.Dataset, channels: Sequence[Channel]) -> dict[str, Any]:
    """The attributes every stacked variable has, with the same value: what holds for each
    channel (the first variable's ``units`` would mislabel the others' channels)."""
    variables = list(dict.fromkeys(var for var, _ in channels))
    shared = dict(ds[variables[0]].attrs)
    for var in variables[1:]:
        attrs = ds[var].attrs
        shared = {k: v for k, v in shared.items() if k in attrs and _same(attrs[k], v)}
    return shared


def _same(a: Any, b: Any) -> bool:
    """Whether two attribute values are equal (arrays element by element)."""
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return False


def _kept_coords(ds: xr.Dataset, dims: Sequence[Any]) -> dict[Any, xr.Variable]:
    """The non-index coordinates of ``ds`` that fit a stack with ``dims``: scalar ones and
    those along its dims but ``channel``."""
    fit = set(dims) - {"channel"}
    return {
        c: ds.coords[c].variable
        for c in ds.coords
        if c not in ds.dims and set(ds.coords[c].dims) <= fit
    }


def stack_values(ds: xr.Dataset, channels: Sequence[Channel], lead: str = "time") -> np.ndarray:
    """The values of :func:`stack` as an array ``(lead, channel, latitude, longitude)``.

    The same numbers as ``stack(ds, channels).transpose(lead, "channel", "latitude",
    "longitude").values``, without building the DataArray where the data are in memory.
    """
    fast = _stack_in_memory(ds, channels, values_only=True)
    if fast is not None and fast[1] == (lead,):
        return fast[0]
    return stack(ds, channels).transpose(lead, "channel", "latitude", "longitude").values


def _stack_in_memory(ds: xr.Dataset, channels: Sequence[Channel], values_only: bool = False) -> Any:
    """:func:`stack` with one NumPy concatenation, for in-memory data whose variables share
    their other dimensions in the same order; ``None`` where that does not hold (dask-backed
    data, differing dimensions, a channel ``ds`` lacks: :func:`stack` then goes the general
    way, which also names what is missing). The same result, name, attributes and
    coordinates as the general way; with ``values_only`` its values and the dims before
    ``channel``."""
    if not channels:
        return None
    variables = ds.variables  # Variables, not DataArrays: no coordinates built per channel
    levels = ds["level"].values if "level" in ds.variables else None
    where: dict[float, int | None] = {}  # level (hPa) -> its index in ds.level
    first = None
    blocks: list[np.ndarray] = []
    for var, level in channels:
        if var not in ds.data_vars:
            return None
        v = variables[var]
        if not isinstance(v.data, np.ndarray):  # dask (the general way keeps it lazy), ...
            return None
        dims = tuple(d for d in v.dims if d != "level")
        if ("level" in v.dims) == (level is None):
            return None
        if first is None:
            first, other = var, dims
        elif dims != other:
            return None
        values = v.data
        if level is not None:
            if level not in where:
                idx = np.nonzero(np.isclose(levels, level))[0]
                where[level] = int(idx[0]) if idx.size else None
            if where[level] is None:
                return None
            values = np.take(values, where[level], axis=v.dims.index("level"))
        blocks.append(values)
    if other[-2:] != ("latitude", "longitude"):
        return None
    lead = other[:-2]
    data = np.stack(blocks, axis=len(lead))
    if values_only:
        return data, lead
    first_da = ds[first]
    dims = (*lead, "channel", "latitude", "longitude")
    coords = {d: first_da.coords[d].variable for d in other if d in first_da.coords}
    coords.update(_kept_coords(ds, dims))
    coords["channel"] = ("channel", [channel_name(c) for c in channels])
    return xr.DataArray(
        data, dims=dims, coords=coords,
        name=_stack_name(channels), attrs=_shared_attrs(ds, channels),
    )  # fmt: skip


def unstack(
    array: xr.DataArray, channels: Sequence[Channel] | None = None, *, copy: bool = True
) -> xr.Dataset:
    """Inverse of :func:`stack`: a DataArray with a ``channel`` dim back to a Dataset.

    Channels of one variable with levels are gathered along ``level`` (hPa). With
    ``copy=False`` an in-memory array whose variables hold consecutive channels (the
    models' layout) gives variables that are views of it, not copies: for a buffer the
    caller owns and hands over (a forecast's output), which then takes no second copy.

    The array's attributes go to its variable where all channels are of one variable;
    otherwise they describe the stack as a whole and go to the Dataset, its variables
    having none: one set of attributes (``units``) cannot hold for every variable of a
    mixed stack, and the variables' own are not in the array (set them from a Dataset
    that has them, as :func:`xfuxi.forecasting.edge.forecast_dataset` sets the units).
    The array's coordinates other than ``channel`` are kept.
    """
    if channels is None:
        channels = [parse_channel_name(str(c)) for c in array["channel"].values]
    if array.sizes["channel"] != len(channels):
        raise SchemaError(
            f"array has {array.sizes['channel']} channels but {len(channels)} were given"
        )
    arr = array.drop_vars("channel") if "channel" in array.coords else array
    by_var: dict[str, list[tuple[float | None, int]]] = {}
    for i, (var, level) in enumerate(channels):
        by_var.setdefault(var, []).append((level, i))
    level_sets = {
        tuple(lv for lv, _ in items) for items in by_var.values() if items[0][0] is not None
    }
    # the array's attributes hold for each variable only where there is one variable
    var_attrs, ds_attrs = (dict(arr.attrs), {}) if len(by_var) == 1 else ({}, dict(arr.attrs))
    if arr.chunks is None and len(level_sets) <= 1:  # in memory, one set of levels
        out = _unstack_in_memory(arr, by_var, var_attrs, copy=copy)
        out.attrs = ds_attrs
        return out
    arr = arr.copy(deep=False)  # its own attrs: the caller's array is not changed
    arr.attrs = var_attrs
    data_vars = {}
    for var, items in by_var.items():
        if items[0][0] is None:
            data_vars[var] = arr.isel(channel=items[0][1], drop=True)
        else:
            levels = [float(lv) for lv, _ in items]
            index: list[int] | slice = [i for _, i in items]
            if not copy and index == list(range(index[0], index[0] + len(index))):
                index = slice(index[0], index[0] + len(index))  # a view
            da = arr.isel(channel=index).rename(channel="level")
            da = da.assign_coords(level=("level", levels, {"units": "hPa"}))
            data_vars[var] = da
    ds = xr.Dataset(data_vars, attrs=ds_attrs)

    return ds.transpose(*canonical_order(ds.dims))


def _unstack_in_memory(
    arr: xr.DataArray,
    by_var: dict[str, list[tuple[float | None, int]]],
    attrs: dict[str, Any],
    *,
    copy: bool = True,
) -> xr.Dataset:
    """:func:`unstack` of an in-memory array (no ``channel`` coordinate) whose variables with
    levels share them, by NumPy indexing: the same Dataset as the general way, without
    aligning a DataArray per variable (views of it where ``copy`` is False and the
    channels of a variable are consecutive); each variable's attributes are ``attrs``."""
    axis = arr.dims.index("channel")
    values = arr.values
    coords = {k: v.variable for k, v in arr.coords.items()}
    before = (slice(None),) * axis

    def pick(index: int | list[int]) -> np.ndarray:
        if not copy and isinstance(index, int):
            return values[(*before, index)]
        if not copy and list(index) == list(range(index[0], index[0] + len(index))):
            return values[(*before, slice(index[0], index[0] + len(index)))]
        return np.take(values, index, axis=axis)

    data_vars = {}
    for var, items in by_var.items():
        if items[0][0] is None:
            dims = arr.dims[:axis] + arr.dims[axis + 1 :]
            data_vars[var] = xr.Variable(dims, pick(items[0][1]), dict(attrs))
        else:
            dims = arr.dims[:axis] + ("level",) + arr.dims[axis + 1 :]
            picked = pick([i for _, i in items])
            data_vars[var] = xr.Variable(dims, picked, dict(attrs))
            coords["level"] = xr.Variable("level", [float(lv) for lv, _ in items], {"units": "hPa"})
    ds = xr.Dataset(data_vars, coords=coords)
    return ds.transpose(*canonical_order(ds.dims))
