"""Model channels: (variable, level) pairs stacked in a fixed, recorded order.

A channel is ``(variable, level)`` with ``level`` a pressure in hPa, or ``None`` for a
single-level variable. Arrays stacked by :func:`stack` have the channel axis right before
``latitude, longitude``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from .schema import SchemaError, canonical_order

__all__ = [
    "WIND_COMPONENTS",
    "Channel",
    "channel_name",
    "channels_of",
    "parse_channel_name",
    "stack",
    "unstack",
]

Channel = tuple[str, "float | None"]

#: (u, v) variable names of the horizontal wind components, by level kind
WIND_COMPONENTS = (
    ("u_component_of_wind", "v_component_of_wind"),
    ("10m_u_component_of_wind", "10m_v_component_of_wind"),
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

    Raises :class:`SchemaError` naming any channel that ``ds`` lacks.
    """
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
    other = [d for d in out.dims if d not in ("channel", "latitude", "longitude")]
    return out.transpose(*other, "channel", "latitude", "longitude")


def unstack(array: xr.DataArray, channels: Sequence[Channel] | None = None) -> xr.Dataset:
    """Inverse of :func:`stack`: a DataArray with a ``channel`` dim back to a Dataset.

    Channels of one variable with levels are gathered along ``level`` (hPa).
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
    data_vars = {}
    for var, items in by_var.items():
        if items[0][0] is None:
            data_vars[var] = arr.isel(channel=items[0][1], drop=True)
        else:
            levels = [float(lv) for lv, _ in items]
            da = arr.isel(channel=[i for _, i in items]).rename(channel="level")
            da = da.assign_coords(level=("level", levels, {"units": "hPa"}))
            data_vars[var] = da
    ds = xr.Dataset(data_vars)

    return ds.transpose(*canonical_order(ds.dims))
