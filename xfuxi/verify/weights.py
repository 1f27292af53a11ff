"""Area weights, dimension handling and alignment shared by all xfuxi scores.

Nothing here imports torch or numba. The definitions are those of WeatherBench2, written out
in the documentation, docs/design.md (Verification). Every input that goes with the data
(truth, weights, climatology, thresholds) passes :func:`conform`: it must cover the grid of
the data exactly, so that no score silently covers only part of it.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from ..config import user_stacklevel
from ..data.schema import (
    DIM_ALIASES,
    add_lead,
    canonical_unit,
    check_unpacked,
    native_byte_order,
    same_unit,
    time_dtype_problem,
    unit_hint,
)
from ..data.stats import own_attrs
from ..grid import area_weights
from ..options import get_options

__all__ = ["align_valid_time", "area_weights", "valid_time"]

XarrayObj = xr.Dataset | xr.DataArray
#: dims along which the truth (or a climatology) may hold more values than the forecast:
#: it is taken at the forecast's values; every other shared dim must match exactly
TIME_DIMS: tuple[str, ...] = ("time",)
#: the dims of a forecast's initial time and lead, along which the truth on ``time`` is
#: taken at valid times (:func:`align_valid_time`)
LEAD_DIMS: tuple[str, ...] = ("time", "prediction_timedelta")
#: tolerance for numeric coordinates to count as the same point (hPa, ...)
COORD_ATOL = 1e-6
#: tolerance for latitude and longitude (degrees), as the model's grid check: it covers
#: degrees stored in float32 (85.76° is off by 3e-6 there), and is far below any grid step
GRID_ATOL = 1e-4
#: the dims matched to within :data:`GRID_ATOL`
GRID_DIMS: tuple[str, ...] = ("latitude", "longitude")
#: ``"area"`` (default): area weights over ``latitude``; ``None``: unweighted; or a DataArray
Weights = Literal["area"] | xr.DataArray | None


def reduced_dims(obj: XarrayObj, dim: str | Iterable[Hashable] | None) -> list[Hashable]:
    """Dims to reduce: ``None`` means all dims of ``obj``; each must exist."""
    if dim is None:
        return list(obj.dims)
    dims = [dim] if isinstance(dim, str) else list(dim)
    missing = [d for d in dims if d not in obj.dims]
    if missing:
        raise ValueError(
            f"cannot reduce over {missing}: not a dimension of the data (dims: {list(obj.dims)})"
        )
    return dims


def _show(value: Any) -> str:
    """One value for messages; a timedelta as pandas writes it (``0 days 06:00:00``)."""
    if np.asarray(value).dtype.kind == "m":
        return str(pd.Timedelta(value))
    return str(value)


def _brief(a: np.ndarray) -> str:
    """A short list of values for messages: ``[a, b, c]`` or ``[a, b, ..., z]``."""
    shown = [_show(v) for v in (a if a.size <= 4 else [a[0], a[1], a[-1]])]
    return "[" + ", ".join(shown if a.size <= 4 else [*shown[:2], "...", shown[-1]]) + "]"


def coord_atol(d: Hashable, *values: np.ndarray) -> float:
    """Tolerance for two numbers of the coordinate ``d`` to count as the same point.

    :data:`GRID_ATOL` for latitude and longitude, :data:`COORD_ATOL` for other dims; and,
    where ``values`` include an array stored in float32 (or narrower), at least four units
    in the last place of float32 at their largest magnitude, so that coordinates rounded to
    float32 (as netCDF files often store them) still match their float64 values.

    Examples
    --------
    >>> coord_atol("latitude"), coord_atol("level")
    (0.0001, 1e-06)
    >>> coord_atol("x", np.array([100.5], dtype="float32"))  # 4 float32 ulps at 100.5
    3.0517578125e-05
    """
    atol = GRID_ATOL if d in GRID_DIMS else COORD_ATOL
    narrow = [np.abs(v[np.isfinite(v)]) for v in values if v.dtype.kind == "f" and v.itemsize < 8]
    top = max((float(v.max()) for v in narrow if v.size), default=None)
    if top is not None:
        atol = max(atol, 4.0 * float(np.spacing(np.float32(top))))
    return atol


def _same_values(a: np.ndarray, b: np.ndarray, atol: float = COORD_ATOL) -> bool:
    """Same values in the same order (numbers to within ``atol``)."""
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fiu" and b.dtype.kind in "fiu":
        return bool(np.allclose(a, b, rtol=0, atol=atol))
    return bool(np.array_equal(a, b))


def _positions(have: np.ndarray, want: np.ndarray, atol: float = COORD_ATOL) -> np.ndarray:
    """Index into ``have`` (unique values) of each value of ``want`` (the nearest, for
    numbers, to within ``atol``); -1 where absent."""
    if have.dtype.kind in "fiu" and want.dtype.kind in "fiu":
        if have.size == 0:
            return np.full(want.shape, -1)
        order = np.argsort(have, kind="stable")
        s, w = have[order].astype("float64"), want.astype("float64")
        i = np.searchsorted(s, w)
        lo, hi = np.clip(i - 1, 0, s.size - 1), np.clip(i, 0, s.size - 1)
        k = np.where(np.abs(s[hi] - w) <= np.abs(s[lo] - w), hi, lo)
        return np.where(np.abs(s[k] - w) <= atol, order[k], -1)
    return pd.Index(have).get_indexer(want)


def _float32_hint(
    d: Hashable, missing: np.ndarray, extra: np.ndarray, name: str, reference_name: str
) -> str:
    """A hint for a refusal where the values of ``d`` missing from ``name`` and those it has
    in excess differ only by float32 rounding (values rounded to float32 and stored in
    float64 again, beyond :func:`coord_atol`); empty otherwise."""
    if missing.dtype.kind != "f" and extra.dtype.kind != "f":
        return ""
    if not (missing.size and missing.size == extra.size):
        return ""
    near = _positions(extra, missing, coord_atol(d, missing.astype("float32")))
    if (near < 0).any() or np.unique(near).size != near.size:
        return ""
    gap = float(np.abs(extra[near].astype("float64") - missing.astype("float64")).max())
    return (
        f" (they differ only by float32 rounding, at most {gap:.2g}: store the {name}'s {d} "
        f"in float64, or give it the {reference_name}'s values, "
        f"{name}.assign_coords({d}={reference_name}.{d}))"
    )


def _wrapped(values: np.ndarray, atol: float) -> np.ndarray:
    """Longitudes modulo 360 in [-atol, 360 - atol): 359.99999 and 0 are one point."""
    wrapped = np.mod(values.astype("float64"), 360.0)
    return np.where(wrapped >= 360.0 - atol, wrapped - 360.0, wrapped)


def _longitude_convention_hint(
    d: Hashable,
    want: np.ndarray,
    have: np.ndarray,
    name: str,
    reference_name: str,
    atol: float,
) -> str:
    """A hint for a refusal where the longitudes of ``name`` and ``reference_name`` are the
    same points modulo 360, written in different conventions (−180..180 and 0..360); empty
    otherwise. Nothing is matched across conventions: the hint says how to make them one."""
    if d != "longitude" or want.dtype.kind not in "fiu" or have.dtype.kind not in "fiu":
        return ""
    if want.size != have.size or not (np.isfinite(want).all() and np.isfinite(have).all()):
        return ""
    pos = _positions(_wrapped(have, atol), _wrapped(want, atol), atol)
    if (pos < 0).any() or np.unique(pos).size != pos.size:
        return ""
    odd = [n for n, v in ((name, have), (reference_name, want)) if v.min() < 0 or v.max() >= 360]
    if not odd:
        return ""
    conventions = {
        n: "-180..180" if v.min() < 0 else "0..360"
        for n, v in ((reference_name, want), (name, have))
    }
    fix = " and ".join(f"xfuxi.validate({n})" for n in odd)
    return (
        f" (they are the same points modulo 360, in another convention: the "
        f"{reference_name}'s longitudes are in {conventions[reference_name]}, the {name}'s "
        f"in {conventions[name]}; {fix} put{'s' if len(odd) == 1 else ''} them in 0..360, "
        "as forecasts return them)"
    )


def check_unique(obj: XarrayObj, name: str, dims: Iterable[Hashable] | None = None) -> None:
    """Raise if a dim coordinate of ``obj`` (of ``dims``, default all its dims) holds a value
    twice: it would be scored twice (a repeated initial time, lead or grid point), or could
    not be selected by (a truth's repeated time).

    Raises
    ------
    ValueError
        Naming the coordinate, ``name`` and the values held twice (the first five).

    Examples
    --------
    >>> check_unique(xr.DataArray([1.0, 2.0], dims="x", coords={"x": [0, 0]}), "truth")
    Traceback (most recent call last):
    ...
    ValueError: coordinate 'x' of the truth has duplicated values: ['0']; each may appear only once
    """
    for d in obj.dims if dims is None else dims:
        if d not in obj.dims or d not in obj.coords or obj[d].ndim != 1:
            continue
        index = obj.indexes[d] if d in obj.indexes else pd.Index(obj[d].values)
        if index.is_unique:  # cached by pandas: no cost on a score's repeated checks
            continue
        twice = index[index.duplicated()].unique()
        shown = [str(pd.Timestamp(v)) if twice.dtype.kind == "M" else _show(v) for v in twice[:5]]
        raise ValueError(
            f"coordinate {d!r} of the {name} has duplicated values: {shown}"
            + (f" (and {twice.size - 5} more)" if twice.size > 5 else "")
            + "; each may appear only once"
        )


def check_variable_keys(mapping: Any, forecast: xr.Dataset, what: str) -> None:
    """Raise unless every key of ``mapping`` (a per-variable argument, such as the
    thresholds of :func:`~xfuxi.brier_score`) names a variable of ``forecast``: a misspelled
    name would be ignored silently.

    Raises
    ------
    ValueError
        Listing the unknown keys, the variables without a key (if any) and the forecast's
        variables.

    Examples
    --------
    >>> fc = xr.Dataset({"temperature": ("x", [1.0])})
    >>> check_variable_keys({"temperature": 1.0}, fc, "threshold")
    >>> check_variable_keys({"temperature": 1.0, "temprature": 2.0}, fc, "threshold")
    Traceback (most recent call last):
    ...
    ValueError: threshold given for variable(s) ['temprature'] that the forecast lacks; its variables are ['temperature']
    """  # noqa: E501
    unknown = [k for k in mapping if k not in forecast.data_vars]
    if unknown:
        missing = [v for v in forecast.data_vars if v not in mapping]
        also = f" (and no {what} given for variable(s) {missing})" if missing else ""
        raise ValueError(
            f"{what} given for variable(s) {unknown} that the forecast lacks{also}; its "
            f"variables are {list(forecast.data_vars)}"
        )


def conform(
    obj: XarrayObj,
    reference: XarrayObj,
    /,
    *,
    name: str,
    reference_name: str = "forecast",
    new_dims: bool = False,
) -> XarrayObj:
    """Return ``obj`` on exactly the coordinates of ``reference`` along every shared dim.

    The one check behind every input that must cover the grid of the data it goes with
    (truth, weights, climatology, thresholds): xarray would otherwise inner-join and score
    only the overlap, silently.

    Parameters
    ----------
    obj : Dataset or DataArray
        The input to check (the truth, weights, a climatology, a threshold).
    reference : Dataset or DataArray
        The data whose grid ``obj`` must cover (the forecast, or the data scored).
    name, reference_name : str
        How the two are called in error messages.
    new_dims : bool, default False
        Allow ``obj`` dims that ``reference`` lacks (they broadcast); otherwise they raise.

    Returns
    -------
    Dataset or DataArray
        ``obj`` reordered (and, along the time dims of ``TIME_DIMS``, selected) to the order
        of ``reference``, carrying ``reference``'s coordinate values. Not a copy when nothing
        changes.

    Raises
    ------
    ValueError
        If, along a shared dim other than ``time``, ``obj`` lacks some of the reference's
        values or holds others (the message names the dim and how many are missing and
        extra); if ``obj`` lacks some of the reference's times; if a shared dim without
        coordinates differs in size; if ``obj`` has a dim that ``reference`` holds as a
        single (scalar) coordinate, or, without ``new_dims``, any dim ``reference`` lacks;
        if ``obj`` holds as a single (scalar) coordinate a dim along which ``reference``
        has several values, or another value; if a coordinate is scalar on both and its
        values differ; if either holds a value twice along a shared dim
        (:func:`check_unique`); if two values of the reference match the same value of
        ``obj`` (closer to each other than the tolerance).

    Notes
    -----
    Spatial and other dims must hold the same values (numbers to within 1e-6; latitude and
    longitude to within 1e-4 degrees, and values stored in float32 to within their float32
    precision: :func:`coord_atol`), in any order: a different order is undone by an
    explicit reindex, and the values matched take the reference's coordinate values. Along
    ``time``, ``obj`` may hold more values than ``reference`` (a longer truth series): it is
    taken at the reference's times, and a missing one raises. Nothing is ever intersected:
    a score always covers the whole forecast. Longitudes are not matched modulo 360: where
    the two hold the same points in different conventions (−180..180 and 0..360), the error
    says so and names the fix (:func:`xfuxi.validate` puts longitudes in 0..360, as
    forecasts return them). A single value held as a scalar coordinate
    (``truth.sel(level=850)``) is never broadcast along a dim of ``reference``: it is
    accepted only where ``reference`` has that one value (a dim of size one, or a scalar
    coordinate, equal to it), and dropped then (the reference's coordinate is kept). The
    rules are in the documentation, docs/design.md (Verification).
    """
    # big-endian coordinates (h5py, np.fromfile) fail pandas' first lookup
    obj, reference = native_byte_order(obj), native_byte_order(reference)
    for d in obj.dims:
        if d in reference.dims:
            continue
        if d in reference.coords:
            raise ValueError(
                f"{name} has dimension {d!r} but the {reference_name} holds the single {d} "
                f"{reference[d].values}; select it from the {name} first"
            )
        if not new_dims:
            raise ValueError(
                f"{name} has dimension {d!r} that the {reference_name} lacks "
                f"(dims of the {reference_name}: {list(reference.dims)})"
            )
    obj = _conform_scalars(obj, reference, name, reference_name)
    shared = [d for d in reference.dims if d in obj.dims]
    check_unique(reference, reference_name, shared)
    check_unique(obj, name, shared)
    for d in shared:
        if d not in obj.coords or d not in reference.coords:
            if obj.sizes[d] != reference.sizes[d]:
                raise ValueError(
                    f"dimension {d!r} has size {reference.sizes[d]} in the {reference_name} "
                    f"but {obj.sizes[d]} in the {name}"
                )
            continue
        want, have = reference[d].values, obj[d].values
        atol = coord_atol(d, want, have)
        if _same_values(want, have, atol):
            if not np.array_equal(want, have):
                obj = obj.assign_coords({d: reference[d].variable})
            continue
        pos = _positions(have, want, atol)
        matched = pos[pos >= 0]
        if np.unique(matched).size != matched.size:
            held, count = np.unique(matched, return_counts=True)
            twice = want[np.isin(pos, held[count > 1])]
            raise ValueError(
                f"coordinate {d!r}: the {reference_name}'s values {_brief(twice)} are closer "
                f"to each other than the tolerance {atol:g} and match the same {d} of the "
                f"{name}; the two cannot be matched point by point"
            )
        missing = want[pos < 0]
        extra = np.delete(have, matched) if d not in TIME_DIMS else have[:0]
        if missing.size or extra.size:
            rule = (
                f"the {name} must hold every {d} of the {reference_name}"
                if d in TIME_DIMS
                else f"the {name} must hold exactly the {reference_name}'s {d} values (in any "
                "order), so that the score covers the whole grid and nothing else"
            )
            found = [
                f"{missing.size} of the {want.size} {d} values of the {reference_name} are "
                f"missing from the {name} {_brief(missing)}" if missing.size else "",
                f"{extra.size} {d} values of the {name} are not in the {reference_name} "
                f"{_brief(extra)}" if extra.size else "",
            ]  # fmt: skip
            raise ValueError(
                f"coordinate {d!r} differs between {reference_name} and {name}: "
                + ", and ".join(f for f in found if f)
                + _float32_hint(d, missing, extra, name, reference_name)
                + _longitude_convention_hint(d, want, have, name, reference_name, atol)
                + f"; {rule}"
            )
        obj = obj.isel({d: pos}).assign_coords({d: reference[d].variable})
    return obj


def _scalar(obj: XarrayObj, name: Hashable) -> bool:
    """Whether ``obj`` holds the coordinate ``name`` as a single (0-d) value."""
    return name in obj.coords and obj[name].ndim == 0


def _same_scalar(a: np.ndarray, b: np.ndarray, d: Hashable = None) -> bool:
    """Whether two single values of the coordinate ``d`` are the same (numbers to within
    :func:`coord_atol`; two missing values count as the same)."""
    a, b = np.asarray(a).reshape(1), np.asarray(b).reshape(1)
    if bool(pd.isna(a[0])) or bool(pd.isna(b[0])):
        return bool(pd.isna(a[0])) and bool(pd.isna(b[0]))
    try:
        return _same_values(a, b, coord_atol(d, a, b))
    except TypeError:  # values that cannot be compared (mixed types): not the same
        return False


def _lead_hint(d: Hashable) -> str:
    """What to do when a single lead is found against several (``prediction_timedelta``)."""
    if d != "prediction_timedelta":
        return ""
    return (
        "; only an input on time without a lead, or with the single lead 0 (an analysis), is "
        "taken at the valid times time + prediction_timedelta; one at another single lead is a "
        "forecast at that lead"
    )


def _conform_scalars(
    obj: XarrayObj, reference: XarrayObj, name: str, reference_name: str
) -> XarrayObj:
    """Check the coordinates that ``obj`` holds as single (scalar) values against
    ``reference`` (:func:`conform`): along a dim of ``reference`` the one value must be the
    reference's only value (it is then dropped, the reference's coordinate kept); a
    coordinate that is scalar on both must hold the same value on both."""
    drop = []
    for d in reference.dims:
        if d in obj.dims or not _scalar(obj, d):
            continue
        value = _show(obj[d].values)
        if d in reference.coords:
            want = reference[d].values
            if want.size == 1 and _same_scalar(obj[d].values, want, d):
                drop.append(d)
                continue
            raise ValueError(
                f"the {name} holds the single {d} {value} (a scalar coordinate) but the "
                f"{reference_name} has dimension {d!r} with the {want.size} value(s) "
                f"{_brief(want)}: it would be broadcast along {d!r}, and compared at "
                f"values of {d} it was not taken at; give the {name} the {reference_name}'s "
                f"{d} values along a dimension, or select the {reference_name} at {d}={value}"
                + _lead_hint(d)
            )
        if reference.sizes[d] != 1:
            raise ValueError(
                f"the {name} holds the single {d} {value} (a scalar coordinate) but the "
                f"{reference_name} has dimension {d!r} of size {reference.sizes[d]} (without "
                f"coordinate values): it would be broadcast along {d!r}; give the {name} that "
                "dimension" + _lead_hint(d)
            )
        drop.append(d)
    for c in obj.coords:
        if c in drop or not _scalar(obj, c) or not _scalar(reference, c):
            continue
        value, want = obj[c].values, reference[c].values
        if not _same_scalar(value, want, c):
            raise ValueError(
                f"coordinate {c!r} differs between {reference_name} and {name}: the "
                f"{reference_name} is at {c}={_show(want)} and the {name} at "
                f"{c}={_show(value)}; select both at the same value" + _lead_hint(c)
            )
        if not np.array_equal(value, want):  # the same to within coord_atol
            obj = obj.assign_coords({c: reference[c].variable})
    return obj.drop_vars(drop) if drop else obj


#: other names of ``latitude`` and ``longitude`` that :func:`xfuxi.validate` renames (the
#: schema's alias table): a reduced dim of such a name gets no area weights, so it is refused
LATITUDE_ALIASES: tuple[str, ...] = tuple(k for k, v in DIM_ALIASES.items() if v == "latitude")
LONGITUDE_ALIASES: tuple[str, ...] = tuple(k for k, v in DIM_ALIASES.items() if v == "longitude")
LEAD_ALIASES: tuple[str, ...] = tuple(
    k for k, v in DIM_ALIASES.items() if v == "prediction_timedelta"
)


def check_lead_name(obj: XarrayObj, name: str) -> None:
    """Raise if ``obj`` holds a lead under another name than ``prediction_timedelta``.

    Scores take the truth at a forecast's valid times only along ``prediction_timedelta``;
    a lead dimension named ``lead_time`` or ``step`` (:data:`LEAD_ALIASES`, the names
    :func:`xfuxi.validate` renames) would be an ordinary dimension, and a persistence
    forecast would be scored against its own initial state. A single lead held as a scalar
    coordinate of that name counts too, unless it is 0 (cfgrib's analyses carry ``step``
    = 0).

    Examples
    --------
    >>> import pandas as pd
    >>> fc = xr.DataArray([[1.0]], dims=("time", "lead_time"),
    ...                   coords={"time": pd.to_datetime(["2020-01-01"]),
    ...                           "lead_time": pd.to_timedelta(["6h"])})
    >>> check_lead_name(fc, "forecast")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: forecast holds its lead as 'lead_time': scores match the truth to valid ...
    """
    for alias in LEAD_ALIASES:
        if alias in obj.dims:
            held = True
        elif alias in obj.coords and obj[alias].ndim == 0:
            value = obj[alias].values
            held = not (np.issubdtype(value.dtype, np.timedelta64) and value == np.timedelta64(0))
        else:
            held = False
        if held:
            raise ValueError(
                f"{name} holds its lead as {alias!r}: scores match the truth to valid times "
                "only along 'prediction_timedelta' (WeatherBench2's name); rename it "
                f"(obj.rename({alias}='prediction_timedelta')) or pass the data through "
                "xfuxi.validate"
            )


def _refuse_latitude_alias(dims: Sequence[Hashable]) -> None:
    """Raise if a reduced dim is another name of ``latitude`` (``lat``): the default area
    weights are over ``latitude`` only, so the score would silently be unweighted."""
    alias = next((d for d in dims if d in LATITUDE_ALIASES), None)
    if alias is None:
        return
    lon = next((d for d in dims if d in LONGITUDE_ALIASES), None)
    rename = f'{alias}="latitude"' + (f', {lon}="longitude"' if lon is not None else "")
    raise ValueError(
        f"weights='area' (the default) are over a dim named 'latitude', but the data's "
        f"latitude dim is named {alias!r}: the score would silently be unweighted. Bring the "
        f"data to xfuxi's names with xfuxi.validate(ds), or .rename({rename}) (forecast and "
        "truth alike); or pass weights=None for an unweighted score, or your own weights "
        "as a DataArray"
    )


def weights_for(obj: XarrayObj, dims: Sequence[Hashable], weights: Weights) -> xr.DataArray | None:
    """Resolve ``weights`` to a DataArray (or None) on the grid of ``obj`` over ``dims``.

    Raises
    ------
    ValueError
        If the weights have a dim not reduced, are not finite or negative, are all zero, or
        do not cover the grid of ``obj`` exactly (:func:`conform`); or if ``"area"`` weights
        are asked for a ``latitude`` without coordinate values, or over a dim named as
        :func:`xfuxi.validate` renames to ``latitude`` (``lat``: :data:`LATITUDE_ALIASES`),
        which would silently get no weights.
    """
    if weights is None:
        return None
    if isinstance(weights, str):
        if weights != "area":
            raise ValueError(f"weights must be 'area', None or a DataArray; got {weights!r}")
        if "latitude" not in dims:
            _refuse_latitude_alias(dims)
            return None
        if "latitude" not in obj.coords:
            raise ValueError(
                "weights='area' needs latitude coordinate values (degrees); the data has a "
                "'latitude' dimension without them: assign them, or pass weights=None"
            )
        return area_weights(obj["latitude"])
    if not isinstance(weights, xr.DataArray):
        raise TypeError(f"weights must be 'area', None or a DataArray; got {type(weights)}")
    extra = [d for d in weights.dims if d not in dims]
    timed = [d for d in extra if d in TIME_DIMS]
    if timed:
        raise ValueError(
            f"weights vary along {timed}: a score is the plain mean over time of weighted "
            "means at each time (WeatherBench2's order), so weights may vary over the other "
            "reduced dims only"
        )
    if extra:
        raise ValueError(f"weights have dims {extra} that are not reduced (dim={list(dims)})")
    if weights.dtype.kind not in "fiub":
        raise TypeError(f"weights must be numbers; got dtype {weights.dtype}")
    if weights.isnull().any():
        raise ValueError("weights contain NaN")
    if np.isinf(weights).any():
        raise ValueError("weights contain infinite values; weights must be finite")
    if (weights < 0).any():
        raise ValueError(
            f"weights contain negative values (min {float(weights.min())}); weights must be >= 0"
        )
    if not weights.any():
        raise ValueError("weights are all zero; at least one point must have a positive weight")
    return conform(weights, obj, name="weights")


def region_weights(
    obj: XarrayObj, dims: Sequence[Hashable], weights: Weights, region: Any
) -> xr.DataArray | None:
    """:func:`weights_for`, times the mask of ``region`` (``None``: no region).

    A list of regions gives weights with a ``region`` dim (and so scores with one).

    Raises
    ------
    ValueError
        As :func:`weights_for`; also if the region is defined over a dim not reduced, a
        mask is not finite, negative or does not cover the grid, or a region holds no
        point with a positive weight.
    """
    w = weights_for(obj, dims, weights)
    if region is None:
        return w
    from .regions import region_masks

    mask, _ = region_masks(region, obj)
    extra = [d for d in mask.dims if d != "region" and d not in dims]
    if extra:
        raise ValueError(
            f"the region is defined over {extra}, which the score does not reduce "
            f"(reduced dims: {list(dims)}); reduce them too, or leave region=None"
        )
    if mask.isnull().any() or np.isinf(mask).any() or (mask < 0).any():
        raise ValueError("a region mask must be finite and >= 0 (boolean or weights)")
    mask = conform(mask, obj, name="region mask", new_dims=True)
    w = mask if w is None else w * mask
    empty = w.sum([d for d in w.dims if d != "region"]) == 0
    if empty.any():
        labels = list(empty["region"].values[empty.values]) if "region" in empty.dims else []
        raise ValueError(
            f"region {labels or region!r} holds no grid point of the data with a positive "
            "weight; check its bounds against the data's latitude/longitude"
        )
    return w


def weighted_mean(
    x: XarrayObj, dims: Sequence[Hashable], weights: xr.DataArray | None, skipna: bool
) -> XarrayObj:
    """Weighted mean over ``dims``; with skipna the weights of missing values are dropped.

    Points of zero weight do not count, even where ``x`` is NaN there (a region's outside).
    A Dataset's variables are each reduced over the dims of ``dims`` they have (xarray's
    rule: surface pressure has no ``level``), with the weights summed over the reduced dims
    a variable lacks (the same mean as the variable broadcast along them).
    """
    if isinstance(x, xr.Dataset) and any(
        d not in v.dims for v in x.data_vars.values() for d in dims
    ):
        out = {}
        for name, v in x.data_vars.items():
            own = [d for d in dims if d in v.dims]
            w = weights
            if w is not None:
                w = w.sum([d for d in w.dims if d in dims and d not in v.dims])
            out[name] = weighted_mean(v, own, w, skipna)
        return xr.Dataset(out, attrs=x.attrs)
    if not dims:
        if weights is not None and "region" in weights.dims:
            # regions over no reduced dim are scalar masks: the same value for each
            return x.expand_dims(region=weights["region"].values)
        return x
    if weights is None:
        return x.mean(dims, skipna=skipna)
    if bool((weights == 0).any()):
        x = x.where(weights != 0, 0.0)
    return x.weighted(weights).mean(dims, skipna=skipna)


def time_split(dims: Sequence[Hashable]) -> tuple[list[Hashable], list[Hashable]]:
    """Split reduced dims into (inner spatial/other dims, outer ``time`` dim)."""
    inner = [d for d in dims if d != "time"]
    outer = [d for d in dims if d == "time"]
    return inner, outer


def reduce_score(
    x: XarrayObj,
    dim: str | Iterable[Hashable] | None,
    weights: Weights,
    skipna: bool,
    region: Any = None,
) -> XarrayObj:
    """Reduce point-wise scores over ``dim``: the weighted mean over every reduced dim but
    ``time`` (per time) first, then the mean over ``time`` (WeatherBench2's order); within
    ``region`` (:func:`region_weights`)."""
    inner, outer = time_split(reduced_dims(x, dim))
    out = weighted_mean(x, inner, region_weights(x, inner, weights, region), skipna)
    if outer:
        out = out.mean(outer, skipna=skipna)
    return out


#: (perfect value, higher is better) of an error-like score: 0 is perfect, lower is better
_ERROR_LIKE = (0.0, False)
#: metric -> (perfect value, higher is better); recorded in the attrs of every score
METRIC_INFO: dict[str, tuple[float, bool]] = {
    **dict.fromkeys(("rmse", "mse", "mae"), _ERROR_LIKE),
    "acc": (1.0, True),
    **dict.fromkeys(
        ("crps", "ensemble_mean_rmse", "brier_score", "wind_vector_rmse", "gaussian_crps",
         "gaussian_brier_score", "energy_score", "ranked_probability_score",
         "debiased_ensemble_mean_mse"),
        _ERROR_LIKE,
    ),
}  # fmt: skip


#: metrics whose values are in the data's units squared, and those without the data's units
#: (dimensionless, or nats): with ``keep_attrs`` their ``units`` are changed accordingly
SQUARED_METRICS = frozenset({"mse", "debiased_ensemble_mean_mse", "gaussian_variance"})
UNITLESS_METRICS = {
    **dict.fromkeys(
        ("acc", "brier_score", "gaussian_brier_score", "spread_skill_ratio",
         "ranked_probability_score", "central_reliability", "rank_histogram"),
        None,
    ),
    **dict.fromkeys(("gaussian_ignorance", "ensemble_ignorance"), "nat"),
}  # fmt: skip


def score_units(attrs: dict[str, Any], metric: str) -> dict[str, Any]:
    """``attrs`` with the ``units`` of the data turned into those of ``metric``'s values.

    >>> score_units({"units": "K"}, "mse"), score_units({"units": "m s**-1"}, "mse")
    ({'units': 'K**2'}, {'units': '(m s**-1)**2'})
    >>> score_units({"units": "K"}, "acc"), score_units({"units": "K"}, "crps")
    ({}, {'units': 'K'})
    """
    if "units" not in attrs:
        return attrs
    out = dict(attrs)
    if metric in SQUARED_METRICS:
        units = str(out["units"]).strip()
        plain = units.replace("_", "").isalnum()
        out["units"] = f"{units}**2" if plain else f"({units})**2"
    elif metric in UNITLESS_METRICS:
        out.pop("units")
        if UNITLESS_METRICS[metric] is not None:
            out["units"] = UNITLESS_METRICS[metric]
    return out


#: the attributes of a score that each of its variables carries too (with its units)
SCORE_VARIABLE_KEYS = ("metric", "perfect_value", "higher_is_better")


def finish_score(result: XarrayObj, source: XarrayObj, keep_attrs: bool, attrs: dict[str, Any]):
    """Set the attributes of a score: ``attrs`` (with the metric's perfect value and
    direction). Each variable of a Dataset score carries the ``metric``, perfect value and
    direction too, and every score (each variable) the ``units`` of its values, as
    :func:`score_units` derives them from the source's (squared for the squared metrics,
    none for the dimensionless ones, nats for the ignorance), so that a variable taken out
    of the score still says what it is. ``keep_attrs`` adds the source's other attributes.
    Every attribute of the score (of its variables and coordinates too) is its own deep
    copy: a list or dict in them is never the input's.

    >>> src = xr.Dataset({"t": ("x", [1.0], {"units": "K", "long_name": "temperature"})})
    >>> finish_score(src.sum("x"), src, False, {"metric": "mse"})["t"].attrs
    {'units': 'K**2', 'metric': 'mse', 'perfect_value': 0.0, 'higher_is_better': 0}
    >>> finish_score(src.sum("x"), src, True, {"metric": "acc"})["t"].attrs
    {'long_name': 'temperature', 'metric': 'acc', 'perfect_value': 1.0, 'higher_is_better': 1}

    A CF ``standard_name`` of the source is not kept, even with ``keep_attrs``: it names
    the field itself, which its score is not.
    """
    result = own_attrs(result)
    metric = str(attrs.get("metric"))
    info = METRIC_INFO.get(metric)
    if info is not None:
        attrs = {**attrs, "perfect_value": info[0], "higher_is_better": int(info[1])}

    def kept(own: dict[str, Any]) -> dict[str, Any]:
        """The source's attributes that the score keeps: all with ``keep_attrs``, else its
        units; in the units of the score."""
        own = dict(own) if keep_attrs else {k: v for k, v in own.items() if k == "units"}
        # a CF standard_name names the field itself (air_temperature), which a score of it
        # is not (an ACC or an MSE of temperature kept it, with other units or none)
        own.pop("standard_name", None)
        return score_units(copy.deepcopy(own), metric)

    if isinstance(result, xr.Dataset):
        each = {k: attrs[k] for k in SCORE_VARIABLE_KEYS if k in attrs}
        for name in result.data_vars:
            own = source[name].attrs if name in source.variables else {}
            result[name].attrs = {**kept(own), **copy.deepcopy(each)}
        dataset_own = dict(source.attrs) if keep_attrs else {}
        result.attrs = copy.deepcopy({**score_units(dataset_own, metric), **attrs})
    else:
        result.attrs = {**kept(source.attrs), **copy.deepcopy(attrs)}
    return result


def valid_time(forecast: XarrayObj) -> xr.DataArray:
    """Return the valid time ``time + prediction_timedelta`` of a forecast.

    Parameters
    ----------
    forecast : Dataset or DataArray
        A forecast with a ``time`` (initial time) coordinate and, optionally, a
        ``prediction_timedelta`` coordinate (WeatherBench2 layout).

    Returns
    -------
    xarray.DataArray
        Valid times, with dims ``time`` and ``prediction_timedelta`` where present.

    Raises
    ------
    ValueError
        If ``forecast`` has no ``time`` coordinate, or a valid time lies beyond
        ``datetime64[ns]`` (past 2262-04-11).
    TypeError
        If its ``prediction_timedelta`` is not timedelta64 (leads given as plain numbers,
        whose unit is unknown), or its ``time`` holds cftime dates or carries a time zone
        (:func:`check_times`: the message names the conversion).

    Examples
    --------
    >>> import pandas as pd
    >>> fc = xr.Dataset(coords={"time": pd.to_datetime(["2020-01-01"]),
    ...                         "prediction_timedelta": pd.to_timedelta([0, 6], "h")})
    >>> [str(t)[:16] for t in valid_time(fc).values.ravel()]
    ['2020-01-01T00:00', '2020-01-01T06:00']
    """
    if "time" not in forecast.coords:
        raise ValueError("forecast has no 'time' coordinate; cannot compute its valid time")
    check_times(forecast, "forecast")
    if "prediction_timedelta" in forecast.coords:
        lead = forecast["prediction_timedelta"]
        if lead.dtype.kind != "m":
            raise TypeError(
                f"prediction_timedelta has dtype {lead.dtype} (values {_brief(lead.values.ravel())}"
                "); leads must be timedelta64, so that time + prediction_timedelta is the valid "
                "time: convert them, e.g. fc.assign_coords(prediction_timedelta="
                "pd.to_timedelta(fc.prediction_timedelta.values, 'h')) for hours"
            )
        out = forecast["time"] + lead
        # time + lead past 2262-04-11 wrapped to 1677 without a word
        add_lead(*(v.values for v in xr.broadcast(forecast["time"], lead)),
                 "forecast: a valid time (time + prediction_timedelta)", ValueError)  # fmt: skip
        return out
    if "prediction_timedelta" in forecast.dims:
        raise ValueError(
            "forecast has a 'prediction_timedelta' dimension without coordinate values; give "
            "it the leads (timedelta64) to compute its valid time"
        )
    return forecast["time"]


def is_lazy(obj: XarrayObj) -> bool:
    """Whether ``obj`` (a DataArray, or a data variable of a Dataset) is dask-backed."""
    arrays = obj.data_vars.values() if isinstance(obj, xr.Dataset) else [obj]
    return any(a.chunks is not None for a in arrays)


def chunk_like_lazy(obj: XarrayObj, like: XarrayObj, dims: Sequence[Hashable]) -> XarrayObj:
    """``obj`` with its in-memory data variables chunked one value per chunk along those of
    ``dims`` they have, where ``like`` is dask-backed (:func:`is_lazy`); else ``obj``.

    A vectorised selection (at valid times, by hour and day of year) of data in memory
    makes an array of the selection's full size at once: for a lazy forecast, the forecast's
    size, built before anything is computed. From one value per chunk, each value selected
    is a chunk of its own (a field, as a forecast's chunk), read from ``obj`` when computed;
    the values are the same. Dask-backed variables, data variables without those dims and
    coordinates are left as they are; ``obj`` is not changed (dask keeps a copy of the
    data it chunks: select the span needed first, a view, to copy no more).

    Examples
    --------
    >>> x = xr.DataArray(np.zeros((3, 2)), dims=("time", "x"))
    >>> chunk_like_lazy(x, x.chunk(), ["time"]).chunks
    ((1, 1, 1), (2,))
    >>> chunk_like_lazy(x, x, ["time"]) is x
    True
    """
    if not is_lazy(like):
        return obj

    def chunked(var: xr.Variable) -> xr.Variable | None:
        along = {d: 1 for d in dims if d in var.dims}
        return var.chunk(along) if along and var.chunks is None else None

    if isinstance(obj, xr.DataArray):
        var = chunked(obj.variable)
        return obj if var is None else obj.copy(deep=False, data=var.data)
    new = {v: var for v, da in obj.data_vars.items() if (var := chunked(da.variable)) is not None}
    return obj.assign(new) if new else obj


def align_valid_time(forecast: XarrayObj, truth: XarrayObj, *, name: str = "truth") -> XarrayObj:
    """Select ``truth`` at the valid times of a WeatherBench2-layout ``forecast``.

    Parameters
    ----------
    forecast : Dataset or DataArray
        Forecast with ``time`` (initial time) and ``prediction_timedelta`` dims, or with
        one lead selected (``prediction_timedelta`` a scalar coordinate).
    truth : Dataset or DataArray
        Analysis or reanalysis on ``time`` (valid time), without ``prediction_timedelta``, or
        with the single lead 0 as a scalar coordinate (an analysis taken from a forecast
        store, ``fc.sel(prediction_timedelta=0)``; that lead is dropped).
    name : str, default "truth"
        What ``truth`` is, for the error messages (``"climatology"`` where a climatology
        on ``time`` is taken at the valid times, ``"threshold"`` for a threshold).

    Returns
    -------
    Dataset or DataArray
        ``truth`` with dims ``time`` (initial time) and ``prediction_timedelta`` replacing its
        ``time``, so that it lines up element by element with ``forecast``; a ``valid_time``
        coordinate records the time it was taken at.

    Raises
    ------
    ValueError
        If the forecast lacks ``prediction_timedelta`` or ``time``, if the truth has no ``time``,
        if the truth has a lead of its own (a ``prediction_timedelta`` dimension, or a single
        lead other than 0), if some valid time is not in the truth, or if the forecast's
        ``time`` or ``prediction_timedelta``, or the truth's ``time``, holds a value twice
        (:func:`check_unique`).
    TypeError
        If the forecast's ``prediction_timedelta`` is not timedelta64 (:func:`valid_time`),
        or the ``time`` of either holds cftime dates or carries a time zone
        (:func:`check_times`).

    Notes
    -----
    The valid time of a forecast is ``time + prediction_timedelta`` (WeatherBench2 layout;
    the data conventions are in the documentation, docs/design.md). Scores call this
    automatically when the forecast has ``prediction_timedelta`` and the truth has only
    ``time``. The truth may hold more times; a missing one raises (never intersected).
    Against a dask-backed forecast, a truth held in memory is taken lazily, one valid time
    per chunk (:func:`chunk_like_lazy`): the result is dask-backed, with the same values.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.date_range("2020-01-01", periods=4, freq="6h")
    >>> truth = xr.DataArray(np.arange(4.0), coords={"time": t}, dims="time")
    >>> lead = pd.to_timedelta([6, 12], "h")
    >>> fc = xr.DataArray(np.zeros((2, 2)), dims=("time", "prediction_timedelta"),
    ...                   coords={"time": t[:2], "prediction_timedelta": lead})
    >>> align_valid_time(fc, truth).values.tolist()
    [[1.0, 2.0], [2.0, 3.0]]
    >>> fc.fuxi.align_valid_time(truth).values.tolist()  # the same through the accessor
    [[1.0, 2.0], [2.0, 3.0]]
    """
    scalar = has_scalar_lead(forecast)
    if "prediction_timedelta" not in forecast.dims and not scalar:
        raise ValueError("forecast has no 'prediction_timedelta' dimension; nothing to align")
    if "time" not in truth.dims:
        raise ValueError(f"{name} has no 'time' dimension; cannot select it at valid times")
    truth = _drop_analysis_lead(truth)
    check_times(truth, name)
    check_unique(forecast, "forecast", [d for d in LEAD_DIMS if d in forecast.dims])
    check_unique(truth, name, ["time"])
    vt = valid_time(forecast)
    wanted = np.unique(vt.values.ravel())
    have = truth["time"].values
    missing = np.setdiff1d(wanted, have)
    if missing.size:  # (a threshold or a climatology short of times was named the truth)
        raise ValueError(
            f"{name} lacks {missing.size} valid time(s) of the forecast, first {missing[0]}; "
            f"the {name} must cover time + prediction_timedelta of every forecast"
            + ("" if name == "truth" else " (it is taken at the valid times, as the truth)")
        )
    indexer = xr.DataArray(vt.values, dims=vt.dims)
    # a truth in memory against a lazy forecast: taken lazily, one valid time per chunk
    # (selected in memory it was an array of the forecast's full size, at build time)
    if is_lazy(forecast) and wanted.size:  # (the times needed: a view; dask copies it)
        at = np.flatnonzero(np.isin(have, wanted))
        truth = chunk_like_lazy(truth.isel(time=slice(at[0], at[-1] + 1)), forecast, ("time",))
    out = truth.sel(time=indexer).drop_vars("time", errors="ignore")
    # the forecast's index values alone (``.variable``): a DataArray would bring the
    # forecast's other coordinates along, a scalar ``level`` overwriting the truth's own
    coords = {d: forecast[d].variable for d in vt.dims if d in forecast.coords}
    if scalar:  # one lead selected: it stays a scalar coordinate, as on the forecast
        coords["prediction_timedelta"] = forecast["prediction_timedelta"].variable
        if "time" not in vt.dims:  # one initial time too
            coords["time"] = forecast["time"].variable
    out = out.assign_coords(coords).assign_coords(valid_time=(vt.dims, vt.values))
    return own_attrs(out)  # the truth's attrs (lists, dicts) are not shared with the output


def _zero_lead(value: Any) -> bool:
    """Whether ``value`` is the lead 0 (a timedelta64 of zero)."""
    value = np.asarray(value)
    return value.dtype.kind == "m" and bool(value == np.timedelta64(0, "ns"))


def _drop_analysis_lead(truth: XarrayObj) -> XarrayObj:
    """``truth`` without its single lead of 0 (an analysis); raise if it has another lead."""
    if "prediction_timedelta" in truth.dims:
        raise ValueError(
            "truth has a 'prediction_timedelta' dimension: it is a forecast, not a truth on "
            "time; select its lead 0 (an analysis) first, or compare the two forecasts as they "
            "are"
        )
    if "prediction_timedelta" not in truth.coords:
        return truth
    value = truth["prediction_timedelta"].values
    if truth["prediction_timedelta"].ndim != 0 or not _zero_lead(value):
        raise ValueError(
            f"truth holds the lead (prediction_timedelta) {_brief(np.ravel(value))}: a truth "
            "at a nonzero lead is a forecast, not an analysis on time, and cannot be taken at "
            "valid times; only a single lead of 0 (an analysis) is"
        )
    return truth.drop_vars("prediction_timedelta")


def _is_analysis_lead(forecast: XarrayObj, other: XarrayObj) -> bool:
    """Whether ``other`` holds the single lead 0 as a scalar coordinate (an analysis taken
    from a forecast store) while the forecast has another lead, or several: then ``other``
    is an analysis, to be taken at the forecast's valid times. A forecast whose only lead is
    0 is compared with it as it is (the same thing)."""
    if not _has_lead(forecast) or not _scalar(other, "prediction_timedelta"):
        return False
    value = other["prediction_timedelta"].values
    if not _zero_lead(value):
        return False  # a forecast at that lead: conform accepts it at that lead only
    if "prediction_timedelta" in forecast.coords:
        leads = np.asarray(forecast["prediction_timedelta"].values).ravel()
        if leads.size == 1 and _same_scalar(leads[0], value):
            return False
    return True


def has_scalar_lead(obj: XarrayObj) -> bool:
    """Whether ``obj`` is a forecast at one lead selected (a 0-d ``prediction_timedelta``
    coordinate, as ``fc.sel(prediction_timedelta=...)`` leaves it) with a ``time``.

    Examples
    --------
    >>> import pandas as pd
    >>> fc = xr.DataArray(np.zeros((1, 2)), dims=("time", "prediction_timedelta"),
    ...                   coords={"time": pd.to_datetime(["2020-01-01"]),
    ...                           "prediction_timedelta": pd.to_timedelta([6, 12], "h")})
    >>> has_scalar_lead(fc), has_scalar_lead(fc.isel(prediction_timedelta=1))
    (False, True)
    """
    return (
        "prediction_timedelta" in obj.coords
        and obj["prediction_timedelta"].ndim == 0
        and "time" in obj.coords
    )


def needs_valid_time(forecast: XarrayObj, other: XarrayObj) -> bool:
    """Whether ``other`` (a truth or a climatology on ``time``) must be taken at the valid
    times of ``forecast``: the forecast has a lead (a dim, or one lead selected) and
    ``other`` has none, or only the single lead 0 (an analysis, ``fc.sel(
    prediction_timedelta=0)``; unless that is the forecast's only lead). Two forecasts at
    the same leads are compared as they are; a single other lead is checked by
    :func:`conform` (accepted only where it is the forecast's only lead).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.date_range("2020-01-01", periods=3, freq="6h")
    >>> fc = xr.DataArray(np.zeros((1, 1)), dims=("time", "prediction_timedelta"),
    ...                   coords={"time": t[:1], "prediction_timedelta": pd.to_timedelta([6], "h")})
    >>> truth = xr.DataArray(np.zeros(3), dims="time", coords={"time": t})
    >>> needs_valid_time(fc, truth), needs_valid_time(fc, fc)
    (True, False)
    """
    return (
        _has_lead(forecast)
        and "time" in other.dims
        and (not _has_lead(other) or _is_analysis_lead(forecast, other))
    )


def _has_lead(obj: XarrayObj) -> bool:
    """Whether ``obj`` has a lead of its own: a ``prediction_timedelta`` dim (with or without
    values) or a scalar one (one lead selected)."""
    return "prediction_timedelta" in obj.dims or "prediction_timedelta" in obj.coords


def prepare_pair(
    forecast: XarrayObj, truth: XarrayObj, /, *, names: tuple[str, str] = ("forecast", "truth")
) -> tuple[XarrayObj, XarrayObj]:
    """Align the truth to the forecast's valid times when needed, and to its grid exactly.

    The truth is taken at the forecast's times (it may hold more); on every other shared dim
    it must hold exactly the forecast's values, in any order (:func:`conform`). A truth with
    the single lead 0 as a scalar coordinate (an analysis from a forecast store) is taken at
    the valid times, as one without a lead (:func:`needs_valid_time`); one at another single
    lead is accepted only against a forecast at that one lead.

    Raises
    ------
    ValueError
        As :func:`conform` and :func:`align_valid_time` (a truth with a dim the forecast
        lacks, such as a time dim named otherwise or a level the forecast has dropped, is
        refused: it would be broadcast, every forecast value scored against each of its
        values); also if the truth lacks a variable of the forecast, or if either holds a
        value twice along a dim they share, or along ``time`` or ``prediction_timedelta``
        (:func:`check_unique`: a repeated initial time or lead would be scored twice), or
        holds a lead named ``lead_time`` or ``step`` (:func:`check_lead_name`), or a
        variable still packed (attributes ``scale_factor``, ``add_offset``, ``_Unsigned``:
        :func:`~xfuxi.data.schema.check_unpacked`).
    TypeError
        If one is a Dataset and the other a DataArray; if either holds complex data or
        data that are not numbers (:func:`as_float`); if the ``time`` of one holds cftime
        dates or carries a time zone and that of the other does not hold the same kind, or
        valid times are needed
        (:func:`check_times`).

    Notes
    -----
    Both are returned as :func:`as_float` gives them: integer, boolean, float16 and
    bfloat16 data as float64, float32 and float64 as they are.
    """
    if isinstance(forecast, xr.Dataset) != isinstance(truth, xr.Dataset):
        raise TypeError(
            f"{names[0]} and {names[1]} must both be Datasets or both DataArrays; got "
            f"{type(forecast).__name__} and {type(truth).__name__}"
        )
    # big-endian coordinates (h5py, np.fromfile) fail pandas' first lookup
    forecast, truth = native_byte_order(forecast), native_byte_order(truth)
    for obj, name in zip((forecast, truth), names, strict=True):
        check_lead_name(obj, name)
        check_unpacked(obj)  # stored int16 counts would be scored as values
    _check_pair_times(forecast, truth, names)
    check_same_units(forecast, truth, names)
    # along the dims matched (the time and lead a truth on time is taken at, too), a value
    # held twice would be scored twice, or could not be selected by
    check_unique(
        forecast, names[0], [d for d in forecast.dims if d in truth.dims or d in LEAD_DIMS]
    )
    check_unique(truth, names[1], [d for d in truth.dims if d in forecast.dims or d == "time"])
    if _has_lead(forecast) and (not _has_lead(truth) or _is_analysis_lead(forecast, truth)):
        truth = align_valid_time(forecast, truth)  # a truth without time: an error
        # the values alone: the DataArray would bring the truth's scalar coordinates along
        forecast = forecast.assign_coords(valid_time=truth["valid_time"].variable)
    if isinstance(forecast, xr.Dataset):
        missing = [v for v in forecast.data_vars if v not in truth.data_vars]
        if missing:
            raise ValueError(f"{names[1]} lacks variable(s) {missing} of the {names[0]}")
        truth = truth[list(forecast.data_vars)]
    truth = conform(truth, forecast, name=names[1], reference_name=names[0], new_dims=False)
    return as_float(forecast, names[0]), as_float(truth, names[1])


def _narrow_float(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is a float narrower than float32: float16, or one of ml_dtypes'
    (bfloat16, float8), which NumPy holds as kind ``"V"`` castable to float64."""
    if dtype.kind == "f":
        return dtype.itemsize < 4
    return (
        dtype.kind == "V"
        and dtype.fields is None
        and dtype.itemsize < 4
        and bool(np.can_cast(dtype, np.float64))
    )


def as_float(obj: XarrayObj, name: str = "forecast") -> XarrayObj:
    """The data of ``obj`` as the scores compute with them.

    Integer and boolean data, and floats narrower than float32 (float16, bfloat16), as
    float64: differences and squares then neither wrap nor overflow (an int16 error of 200
    squared; a float16 error of 300 squared, beyond float16's 65504), and sums keep their
    digits. float32 and float64 data as they are (float32 is not doubled in memory).
    Not a copy when nothing changes.

    Raises
    ------
    TypeError
        If a data variable is complex (naming it and ``name``): a score of complex numbers
        is not defined, and the imaginary part would be dropped or kept silently; or holds
        no numbers (objects, strings, dates, durations), which a Dataset's reductions would
        leave out of the scores silently.

    Examples
    --------
    >>> as_float(xr.DataArray(np.ones(2, dtype="float16"), dims="x")).dtype
    dtype('float64')
    >>> as_float(xr.DataArray(np.ones(2, dtype="float32"), dims="x")).dtype
    dtype('float32')
    """
    arrays = obj.data_vars.items() if isinstance(obj, xr.Dataset) else [(obj.name, obj)]
    complex_ = [f"{str(v)!r}: {da.dtype}" for v, da in arrays if da.dtype.kind == "c"]
    if complex_:
        raise TypeError(
            f"the {name} holds complex data ({', '.join(complex_)}); scores need real "
            "numbers: score the real part (.real), the modulus (abs) or each component as a "
            "variable of its own"
        )
    # objects, strings, dates: xarray's reductions skip such a variable of a Dataset (it
    # would be left out of the scores silently) and fail raw on a DataArray
    other = [
        f"{str(v)!r}: {da.dtype}"
        for v, da in arrays
        if da.dtype.kind not in "fiub" and not _narrow_float(da.dtype)
    ]
    if other:
        raise TypeError(
            f"the {name} holds data that are not numbers ({', '.join(other)}); scores need "
            "real numbers: convert numbers held as objects with .astype('float64')"
        )

    def wide(da: xr.DataArray) -> bool:
        return da.dtype.kind in "iub" or _narrow_float(da.dtype)

    def cast(da: xr.DataArray) -> xr.DataArray:
        return da.astype(np.float64) if wide(da) else da

    if isinstance(obj, xr.Dataset):
        if not any(wide(obj[v]) for v in obj.data_vars):
            return obj
        return obj.map(cast, keep_attrs=True)
    return cast(obj)


def check_same_units(a: XarrayObj, b: XarrayObj, names: tuple[str, str]) -> None:
    """Raise if a variable of ``a`` and the same variable of ``b`` both carry a ``units``
    attribute that name different units (a forecast in K scored against a truth in °C gave
    an RMSE of 272.8 "K"). Spellings of one unit are one (:func:`xfuxi.data.schema.
    canonical_unit`: ``"m/s"`` and ``"m s**-1"``, ``"1"`` and ``"(0 - 1)"``, a mass ratio
    ``"kg kg**-1"`` and ``"1"``); two units of which one is not known to xfuxi are scored
    as given, with a ``UserWarning`` where their spellings differ. Where either lacks the
    attribute nothing is checked.

    Raises
    ------
    ValueError
        Naming each variable, its two units and, for a known mistake, the conversion.
    """
    if isinstance(a, xr.Dataset) and isinstance(b, xr.Dataset):
        pairs = [(str(v), a[v].attrs.get("units"), b[v].attrs.get("units"))
                 for v in a.data_vars if v in b.data_vars]  # fmt: skip
    else:
        pairs = [(str(a.name), a.attrs.get("units"), b.attrs.get("units"))]
    differ, unknown = [], []
    for v, x, y in pairs:
        if x is None or y is None or str(x).strip() == str(y).strip():
            continue
        cx, cy = canonical_unit(str(x)), canonical_unit(str(y))
        if cx is None or cy is None:
            unknown.append(f"{v!r} in {x!r} and {y!r}")
        elif cx != cy and not (same_unit(cx, str(y)) or same_unit(cy, str(x))):
            differ.append(f"{v!r} in {x!r} and {y!r}{unit_hint(cx, str(y))}")
    if differ:
        raise ValueError(
            f"the {names[0]} and the {names[1]} are in different units ({'; '.join(differ)}): "
            "convert one to the other's units (and set its 'units' attribute)"
        )
    if unknown:
        warnings.warn(
            f"the {names[0]} and the {names[1]} give units xfuxi cannot compare "
            f"({'; '.join(unknown)}); scored as given: make sure they are one unit",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def check_times(obj: XarrayObj, name: str) -> None:
    """Raise unless the ``time`` coordinate of ``obj`` (if any) is usable by the scores:
    cftime dates and times with a time zone can neither be added to leads nor compared with
    datetime64 times.

    Raises
    ------
    TypeError
        Naming ``name``, the problem and the conversion
        (:func:`xfuxi.data.schema.time_dtype_problem`).
    """
    if "time" in obj.coords:
        problem = time_dtype_problem(obj["time"])
        if problem is not None:
            raise TypeError(f"the {name}'s {problem}")


def _check_pair_times(forecast: XarrayObj, truth: XarrayObj, names: tuple[str, str]) -> None:
    """Raise (:func:`check_times`) where the ``time`` of one of a pair holds cftime dates or
    carries a time zone and that of the other does not hold the same kind: they could not be
    matched. Two inputs on the same cftime calendar (or time zone) are compared as they are,
    unless valid times are needed (:func:`valid_time` refuses them then)."""
    if "time" not in forecast.coords or "time" not in truth.coords:
        return
    problems = [time_dtype_problem(obj["time"]) for obj in (forecast, truth)]
    if problems[0] != problems[1]:
        for obj, name in zip((forecast, truth), names, strict=True):
            check_times(obj, name)


def ensemble_dim(obj: XarrayObj, member_dim: str | None) -> str:
    """Find the ensemble dimension: the one named, else the first of the accepted names.

    An ensemble dimension without members (size 0) is refused: the scores would be NaN, a
    raw reshape error, or "perfectly reliable" (central reliability of no members).
    """
    if member_dim is not None:
        if isinstance(member_dim, (list, tuple, set)):  # (unhashable: a raw TypeError)
            raise TypeError(
                f"member_dim must be one dimension name; got {type(member_dim).__name__} "
                f"{list(member_dim)!r}"
            )
        if member_dim not in obj.dims:
            raise ValueError(
                f"ensemble dimension {member_dim!r} not found; the forecast has dims "
                f"{list(obj.dims)}"
            )
        return _with_members(obj, member_dim)
    for name in get_options()["ensemble_dims"]:
        if name in obj.dims:
            return _with_members(obj, name)
    raise ValueError(
        "the forecast has no ensemble dimension: expected one of "
        f"{list(get_options()['ensemble_dims'])}, got dims {list(obj.dims)}"
    )


def _with_members(obj: XarrayObj, name: str) -> str:
    """``name``, an ensemble dimension of ``obj`` that holds at least one member."""
    if obj.sizes[name] == 0:
        raise ValueError(f"the forecast has no members: its ensemble dimension {name!r} is empty")
    return name
