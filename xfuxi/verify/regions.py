"""Regions for scores: latitude bands, latitude–longitude boxes and masks.

Every score takes ``region=``: a name of :data:`REGIONS` (WeatherBench2's usual regions),
a :class:`Region` (a latitude band and/or longitude range), a mapping
``{"latitude": (south, north), "longitude": (west, east)}``, or a DataArray mask (boolean,
or non-negative weights such as a land fraction) over the reduced dims. A list or tuple of
those scores every region at once along a new ``region`` dimension. The region multiplies
the score's weights (area weights by default): its mean is the weighted mean over the
points inside it, as WeatherBench2's ``SliceRegion`` and ``ExtraTropicalRegion`` give.
Points outside a region never make it NaN. See docs/verification.md.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

__all__ = ["REGIONS", "Region", "RegionLike", "region_masks"]


@dataclass(frozen=True)
class Region:
    """A latitude band and/or longitude range (bounds inclusive, degrees).

    Attributes
    ----------
    name : str
        Label on the ``region`` dimension.
    latitude : (float, float) or None
        ``(south, north)`` bounds; ``None``: all latitudes.
    longitude : (float, float) or None
        ``(west, east)`` bounds in degrees east (any longitude convention; compared modulo
        360); ``west > east`` crosses the 0° meridian, e.g. ``(347.5, 42.5)``.
    abs_latitude : (float, float) or None
        Bounds on ``|latitude|`` (both hemispheres, e.g. the extra-tropics ``(20, 90)``).

    Examples
    --------
    >>> lat = xr.DataArray([-30.0, 0.0, 30.0], dims="latitude")
    >>> lat = xr.Dataset(coords={"latitude": lat})
    >>> REGIONS["extra-tropics"].mask(lat).values.tolist()
    [1.0, 0.0, 1.0]
    """

    name: str
    latitude: tuple[float, float] | None = None
    longitude: tuple[float, float] | None = None
    abs_latitude: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for field in ("latitude", "abs_latitude"):
            bounds = getattr(self, field)
            if bounds is not None and not (len(bounds) == 2 and bounds[0] <= bounds[1]):
                raise ValueError(
                    f"region {self.name!r}: {field} must be (low, high) with low <= high; "
                    f"got {bounds!r}"
                )
        if self.longitude is not None and len(self.longitude) != 2:
            raise ValueError(
                f"region {self.name!r}: longitude must be (west, east); got {self.longitude!r}"
            )

    def mask(self, obj: xr.Dataset | xr.DataArray) -> xr.DataArray:
        """1.0 inside the region, 0.0 outside, over ``obj``'s latitude and/or longitude.

        Raises
        ------
        ValueError
            If the region bounds a coordinate that ``obj`` lacks.
        """
        out = xr.DataArray(1.0)
        for coord, bounds, fn in (
            ("latitude", self.latitude, None),
            ("latitude", self.abs_latitude, np.abs),
            ("longitude", self.longitude, None),
        ):
            if bounds is None:
                continue
            if coord not in obj.coords:
                raise ValueError(
                    f"region {self.name!r} bounds {coord} but the data has no {coord!r} "
                    f"coordinate (dims: {list(obj.dims)})"
                )
            c = obj[coord].variable.to_base_variable()
            c = xr.DataArray(c, coords={coord: obj[coord].values} if coord in obj.dims else {})
            if coord == "longitude":
                lon, (w, e) = c % 360.0, (bounds[0] % 360.0, bounds[1] % 360.0)
                if bounds[1] - bounds[0] >= 360.0:
                    inside = lon >= 0
                elif w <= e:
                    inside = (lon >= w - 1e-9) & (lon <= e + 1e-9)
                else:
                    inside = (lon >= w - 1e-9) | (lon <= e + 1e-9)
            else:
                v = fn(c) if fn is not None else c
                inside = (v >= bounds[0] - 1e-9) & (v <= bounds[1] + 1e-9)
            out = out * inside.astype(float)
        return out


#: WeatherBench2's predefined regions (``scripts/evaluate.py``), with its names and bounds:
#: its "northern-hemisphere" and "southern-hemisphere" are the extra-tropical halves
#: (|latitude| >= 20), also available as "northern-extra-tropics" and
#: "southern-extra-tropics".
REGIONS: dict[str, Region] = {
    r.name: r
    for r in (
        Region("global"),
        Region("tropics", latitude=(-20.0, 20.0)),
        Region("extra-tropics", abs_latitude=(20.0, 90.0)),
        Region("northern-hemisphere", latitude=(20.0, 90.0)),
        Region("southern-hemisphere", latitude=(-90.0, -20.0)),
        Region("northern-extra-tropics", latitude=(20.0, 90.0)),
        Region("southern-extra-tropics", latitude=(-90.0, -20.0)),
        Region("arctic", latitude=(60.0, 90.0)),
        Region("antarctic", latitude=(-90.0, -60.0)),
        Region("europe", latitude=(35.0, 75.0), longitude=(347.5, 42.5)),
        Region("north-america", latitude=(25.0, 60.0), longitude=(240.0, 285.0)),
        Region("north-atlantic", latitude=(25.0, 65.0), longitude=(290.0, 350.0)),
        Region("north-pacific", latitude=(25.0, 60.0), longitude=(145.0, 230.0)),
        Region("east-asia", latitude=(25.0, 60.0), longitude=(102.5, 150.0)),
        Region("ausnz", latitude=(-45.0, -12.5), longitude=(120.0, 175.0)),
    )
}

#: what ``region=`` accepts
RegionLike = str | Region | Mapping[str, tuple[float, float]] | xr.DataArray


def _one(region: RegionLike, obj: xr.Dataset | xr.DataArray, i: int) -> tuple[str, xr.DataArray]:
    """(label, mask) of one region; a DataArray mask is returned as given (checked later)."""
    if isinstance(region, str):
        if region not in REGIONS:
            import difflib

            close = difflib.get_close_matches(region, list(REGIONS), n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown region {region!r}{hint}; named regions are {sorted(REGIONS)}"
            )
        region = REGIONS[region]
    if isinstance(region, Mapping):
        unknown = [k for k in region if k not in ("latitude", "longitude", "name")]
        if unknown:
            raise ValueError(
                f"a region box takes the keys 'latitude', 'longitude' (and 'name'); got {unknown}"
            )
        box = {k: tuple(v) for k, v in region.items() if k != "name"}
        region = Region(str(region.get("name", f"box{i}")), **box)  # type: ignore[arg-type]
    if isinstance(region, Region):
        return region.name, region.mask(obj)
    if isinstance(region, xr.DataArray):
        name = str(region.name) if region.name is not None else f"mask{i}"
        if region.dtype.kind not in "fiub":
            raise TypeError(f"a region mask must be boolean or numbers; got dtype {region.dtype}")
        if "region" in region.dims:
            raise ValueError("a region mask must not have a 'region' dim; pass a list instead")
        return name, region.astype(float)
    raise TypeError(
        "region must be a name, a Region, a {'latitude': ..., 'longitude': ...} box, a "
        f"DataArray mask or a list of those; got {type(region).__name__}"
    )


def region_masks(
    region: RegionLike | Sequence[RegionLike], obj: xr.Dataset | xr.DataArray
) -> tuple[xr.DataArray, bool]:
    """The mask of ``region`` on ``obj``'s grid, and whether it has a ``region`` dim.

    A list or tuple of regions gives masks stacked along ``region`` (labelled by the region
    names); a single region gives its mask alone. DataArray masks are not yet checked
    against the grid (the caller does that).

    Raises
    ------
    ValueError
        If a name is unknown, two regions share a label, or a box is malformed.
    """
    if isinstance(region, Sequence) and not isinstance(region, str):
        if not region:
            raise ValueError("region is an empty list; give at least one region")
        pairs = [_one(r, obj, i) for i, r in enumerate(region)]
        labels: list[Hashable] = [p[0] for p in pairs]
        if len(set(labels)) != len(labels):
            raise ValueError(f"region labels repeat: {labels}; name each region uniquely")
        masks = xr.concat(
            list(xr.broadcast(*[p[1] for p in pairs])), dim="region", coords="minimal",
            compat="override", join="outer",
        )  # fmt: skip
        return masks.assign_coords(region=labels), True
    return _one(region, obj, 0)[1], False
