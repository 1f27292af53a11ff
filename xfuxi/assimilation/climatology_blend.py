"""Scale-by-scale blending of a cycle's analyses with the climatology.

Between sparse observing sites a cycled analysis is a forecast of the model, and a model that
drifts towards a more energetic climate than the atmosphere's leaves analyses whose anomalies
(from the climatology) are too large at the scales the observations do not hold: there the
analysis regressed on the truth has a slope below one (docs/cycling.md). The least-squares
remedy is to shrink the analysis anomaly towards the climatology, band of total wavenumber by
band and channel by channel, by the slope ``β`` of that regression,

    x_a ← c + Σ_b β_{k,b} P_b (x_a − c)          (channel k; bands b of spherical harmonics)

with ``c`` the climatology and ``P_b`` the projection on band ``b`` (wavenumbers above the
last band are left as they are). The factors are estimated once, from a cycle's analyses
and the truth of a training period (:func:`fit_climatology_blend`), as a forecast centre
calibrates a post-processing with a reanalysis; in the cycle nothing but the analyses is
used. :class:`ClimatologyBlendMethod` wraps any cycling method and blends its analysis
pair after each analysis; the members keep their perturbations about the blended mean.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..data.channels import channel_name
from .cycle import (
    CycleMethod,
    _area_rms,
    _follow_inner_method,
    _grid_weights,
    _tensor_fingerprint,
)

__all__ = [
    "ClimatologyBlendMethod",
    "climatology_tensor",
    "fit_climatology_blend",
    "read_blend_factors",
]

#: the default bands: planetary (l ≤ 5), synoptic (6–10) and the smallest scales of T21
DEFAULT_BANDS = (5, 10, 21)


def _check_bands(bands: Any) -> tuple[int, ...]:
    try:
        out = tuple(int(b) for b in bands)
    except TypeError as exc:
        raise TypeError(f"bands must be a sequence of integers; got {bands!r}") from exc
    if not out or any(b < 0 for b in out) or any(b2 <= b1 for b1, b2 in zip(out, out[1:])):
        raise ValueError(
            f"bands must be increasing total wavenumbers >= 0 (the top of each band); got {bands!r}"
        )
    return out


class _BandSplit:
    """Split fields ``(..., H, W)`` into bands of total wavenumber (float64)."""

    def __init__(self, latitude: Any, longitude: Any, bands: tuple[int, ...]) -> None:
        from ..models.spectral import SpectralFilter

        self.filters = [SpectralFilter(latitude, longitude, b) for b in bands]

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, below = [], torch.zeros_like(x, dtype=torch.float64)
        for f in self.filters:
            upto = f(x)
            out.append(upto - below)
            below = upto
        return out


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    arr = np.asarray(x, dtype="float64")
    # contiguous (a copy only where needed): torch refuses a flipped NumPy view's negative
    # strides; a 0-d array stays 0-d (np.ascontiguousarray would make it 1-d)
    t = torch.as_tensor(np.ascontiguousarray(arr) if arr.ndim else arr)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} has NaN or infinite values")
    return t


def _match_coords(have: Any, want: Any, coord: str, name: str) -> np.ndarray:
    """Indices into ``have`` (a labelled input's ``coord`` values) of each of ``want`` (the
    grid's), to 1e-6 degrees (longitudes modulo 360); an error names a grid value that
    ``have`` lacks or holds twice."""
    have = np.asarray(have, dtype="float64").ravel()
    want = np.asarray(want, dtype="float64").ravel()
    diff = want[:, None] - have[None, :]
    if coord == "longitude":
        diff = (diff + 180.0) % 360.0 - 180.0
    close = np.abs(diff) < 1e-6
    count = close.sum(axis=1)
    if (count == 0).any() or have.size != want.size:
        lack = want[count == 0][:3].tolist()
        raise ValueError(
            f"{name}'s {coord} ({have.size} values, {have[:3].tolist()}...) is not the grid's "
            f"({want.size} values, {want[:3].tolist()}...)"
            + (f": it lacks {lack}" if lack else "")
            + "; give it on the model's grid"
        )
    if (count > 1).any():
        raise ValueError(f"{name} holds {coord} {want[count > 1][:3].tolist()} more than once")
    return np.argmax(close, axis=1)


def _labelled_values(
    x: Any, name: str, dims: tuple[str, ...], latitude: Any = None, longitude: Any = None
) -> Any:
    """``x`` as it is where it is not xarray; a DataArray's values on ``dims`` (matched by
    name; where the names differ, the dims other than ``latitude`` and ``longitude`` are
    taken in their order, and a DataArray without those two is read by position, as an
    array), its rows and columns put in the order of ``latitude`` and ``longitude`` by its
    coordinates (where given: a climatology stored north to south is used the right way
    up); a Dataset is refused."""
    if isinstance(x, xr.Dataset):
        raise TypeError(
            f"{name} must be an array or a DataArray, not a Dataset: make a climatology of a "
            "Dataset in the model's channels with climatology_tensor(ds, model)"
        )
    if not isinstance(x, xr.DataArray):
        return x
    if x.ndim != len(dims):
        raise ValueError(f"{name} must have dims {dims} (in any order); got {x.dims}")
    if set(x.dims) != set(dims):
        grid = [d for d in ("latitude", "longitude") if d in dims]
        if not all(d in x.dims for d in grid):  # no grid names: by position, as an array
            return x.values
        others = [d for d in x.dims if d not in grid]
        wanted = [d for d in dims if d not in grid]
        temporary = [f"__dim{i}" for i in range(len(others))]  # (a name may move along)
        x = x.rename(dict(zip(others, temporary, strict=True)))
        x = x.rename(dict(zip(temporary, wanted, strict=True)))
    x = x.transpose(*dims)
    for coord, grid in (("latitude", latitude), ("longitude", longitude)):
        if coord in x.coords and grid is not None:
            x = x.isel({coord: _match_coords(x[coord].values, grid, coord, name)})
    return x.values


def climatology_tensor(data: Any, model: Any) -> torch.Tensor:
    """The time mean of a Dataset of states in ``model``'s channels: ``(channel, lat, lon)``.

    ``data`` has a ``time`` dim of at least two states (e.g. the training data), or is one
    state without it (a climatology computed elsewhere).
    """
    from .inputs import states_tensor

    if not isinstance(data, xr.Dataset):
        raise TypeError(f"the climatology must come from a Dataset; got {type(data).__name__}")
    if "time" not in data.dims:  # one state, twice (without a time label held twice)
        one = data.drop_vars("time", errors="ignore")
        data = xr.concat([one, one], dim="time")
    states = states_tensor(data.rename(time="sample"), model, dim="sample", name="climatology")
    return states.mean(0)


def read_blend_factors(path: Any, model: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(factors, bands)`` from a JSON file of fitted factors, checked against ``model``.

    The file has ``channels`` (names such as ``"temperature@850"``, in the model's order),
    ``bands`` and ``factors`` (channel × band), as ``benchmarks/fit_climatology_blend.py``
    writes it.
    """
    try:
        fit = json.loads(Path(path).read_text())
        channels, bands, factors = fit["channels"], fit["bands"], fit["factors"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path} is not a file of blend factors (JSON with channels, bands, factors): {err}"
        ) from err
    names = [channel_name(c) for c in model.channels]
    if list(channels) != names:
        raise ValueError(f"{path} was fitted for other channels than the model's: {channels}")
    return np.asarray(factors, dtype="float64"), _check_bands(bands)


def fit_climatology_blend(
    analyses: Any,
    truth: Any,
    climatology: Any,
    *,
    latitude: Any,
    longitude: Any,
    weights: Any,
    bands: Any = DEFAULT_BANDS,
) -> np.ndarray:
    """The least-squares factors ``β`` (channel, band) of :class:`ClimatologyBlendMethod`.

    For each channel ``k`` and band ``b``, ``β = ⟨a, t⟩ / ⟨a, a⟩`` with ``a`` and ``t`` the
    band's part of the analyses' and the truth's anomalies from the climatology and ⟨·,·⟩
    the area-weighted inner product summed over the times: the slope of the regression of
    the truth on the analysis, the factor that minimises the blended analysis's error.

    Parameters
    ----------
    analyses, truth : array-like (time, channel, latitude, longitude)
        A cycle's analyses and the truth at the same times (a training or validation
        period: never the period the blend is scored on).
    climatology : array-like (channel, latitude, longitude)
    latitude, longitude : array-like
        The grid (degrees; longitudes over the whole circle).
    weights : array-like (latitude,)
        Area weights of the rows.

    A DataArray among ``analyses``, ``truth``, ``climatology`` and ``weights`` is taken by
    its labels: its dims by name (in any order), its rows and columns matched to
    ``latitude`` and ``longitude`` by its coordinates (stored north to south, or with
    longitudes −180..180, it is reordered), and the truth's times to the analyses' where
    both carry ``time``.
    bands : sequence of int, default (5, 10, 21)
        The top total wavenumber of each band.

    Returns
    -------
    numpy.ndarray (channel, band)

    Raises
    ------
    ValueError
        Inputs of mismatched shapes, with NaN or infinite values, ``bands`` that do not
        increase, or analyses without anomaly in a band of some channel; a DataArray
        without the dims above, or whose latitudes or longitudes are not the grid's, or
        a truth whose times are not the analyses'.
    TypeError
        ``bands`` is not a sequence of integers; an input is a Dataset.

    Examples
    --------
    Analyses that are the truth's anomaly doubled give β = ½ in every band:

    >>> lat = np.linspace(-87.5, 87.5, 36); lon = np.arange(72) * 5.0
    >>> t = np.random.default_rng(0).normal(size=(4, 2, 36, 72))
    >>> beta = fit_climatology_blend(2 * t, t, np.zeros((2, 36, 72)), latitude=lat,
    ...                              longitude=lon, weights=np.cos(np.deg2rad(lat)),
    ...                              bands=(5, 10))
    >>> beta.round(6).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    bands = _check_bands(bands)
    if (
        isinstance(analyses, xr.DataArray)
        and isinstance(truth, xr.DataArray)
        and "time" in analyses.coords
        and "time" in truth.coords
        and "time" in truth.dims
    ):  # the truth at the analyses' times, in their order
        want = analyses["time"].values
        if truth.sizes["time"] != want.size or not np.isin(want, truth["time"].values).all():
            raise ValueError("truth must hold the analyses' times, each once")
        truth = truth.sel(time=want)
    grid = {"latitude": latitude, "longitude": longitude}
    four = ("time", "channel", "latitude", "longitude")
    a = _as_tensor(_labelled_values(analyses, "analyses", four, **grid), "analyses")
    t = _as_tensor(_labelled_values(truth, "truth", four, **grid), "truth")
    clim = _labelled_values(climatology, "climatology", four[1:], **grid)
    c = _as_tensor(clim, "climatology")
    weights = _labelled_values(weights, "weights", ("latitude",), latitude=latitude)
    if a.ndim != 4 or a.shape != t.shape:
        raise ValueError(
            "analyses and truth must have the same shape (time, channel, latitude, longitude); "
            f"got {tuple(a.shape)} and {tuple(t.shape)}"
        )
    if c.shape != a.shape[1:]:
        raise ValueError(
            f"climatology must be (channel, latitude, longitude) = {tuple(a.shape[1:])}; "
            f"got {tuple(c.shape)}"
        )
    w = _as_tensor(weights, "weights")
    if w.shape != (a.shape[-2],):
        raise ValueError(f"weights must have one value per latitude ({a.shape[-2]})")
    split = _BandSplit(latitude, longitude, bands)
    ab, tb = split(a - c), split(t - c)
    beta = np.empty((a.shape[1], len(bands)))
    for j, (x, y) in enumerate(zip(ab, tb, strict=True)):
        xy = (x * y * w[:, None]).sum(dim=(0, 2, 3))
        xx = (x * x * w[:, None]).sum(dim=(0, 2, 3))
        if (xx <= 0).any():
            raise ValueError(f"the analyses have no anomaly in band {j} of some channel")
        beta[:, j] = (xy / xx).numpy()
    return beta


@dataclass
class ClimatologyBlendMethod(CycleMethod):
    """A cycling method whose analyses are blended, band by band, with the climatology.

    After each analysis of ``method`` the analysed pair (both input times) becomes
    ``c + Σ_b β_{k,b} P_b (x − c)`` (module docstring); the members are shifted by the
    mean's change, so they keep their perturbations (and the ensemble its spread).

    Parameters
    ----------
    method : CycleMethod
        The assimilation; it sees blended backgrounds and knows nothing of the blend.
    climatology : array-like (channel, latitude, longitude)
        The climatology ``c`` in the model's channels and grid (e.g. the time mean of the
        training data, :func:`climatology_tensor`). A DataArray is taken by its labels: its
        dims by name, its rows and columns matched to the model's grid by its
        ``latitude`` and ``longitude`` (stored north to south, as ERA5, or with longitudes
        −180..180, it is reordered; on another grid it is refused when used).
    factors : array-like (channel, band)
        ``β``, e.g. from :func:`fit_climatology_blend` on a validation period; each in
        ``[0, 1.5]``.
    bands : sequence of int, default (5, 10, 21)
        The top total wavenumber of each band; scales above the last are left unchanged.
    name : str, optional
        Name written in the store, the settings and the scores' ``attrs["method"]``;
        default (``""``): ``method``'s name followed by ``" + climatology blend"``.

    Notes
    -----
    The per-cycle scores get ``climatology_blend_change`` (channel): the area-weighted RMS
    of what the blend changed in the analysis at t0. O−B and O−A are those of ``method``'s
    analysis, before the blend. Its effect on the world's cycles: docs/cycling.md.

    Examples
    --------
    Keep the planetary scales (``l ≤ 5``) of an anomaly and halve the rest:

    >>> from xfuxi.assimilation.cycle import LETKFMethod
    >>> lat = np.linspace(-87.5, 87.5, 36); lon = np.arange(72) * 5.0
    >>> grid = type("Grid", (), {"latitude": lat, "longitude": lon})
    >>> method = ClimatologyBlendMethod(LETKFMethod(), climatology=np.zeros((1, 36, 72)),
    ...                                 factors=[[1.0, 0.5]], bands=(5, 35))
    >>> method.name
    'LETKF + climatology blend'
    >>> c = np.cos(np.deg2rad(lat))[:, None]
    >>> planetary = torch.as_tensor(c * np.cos(np.deg2rad(lon)))[None]  # l = 1
    >>> small = torch.as_tensor(c**10 * np.cos(np.deg2rad(10 * lon)))[None]  # l = 10
    >>> [round(float(method.blend(x, grid).abs().max() / x.abs().max()), 3)
    ...  for x in (planetary, small)]
    [1.0, 0.5]
    """

    method: CycleMethod
    climatology: Any = None
    factors: Any = None
    bands: Any = DEFAULT_BANDS
    name: str = ""
    # the band projections of the last grid: (key, _BandSplit), keyed on the grid and bands
    _split: Any = field(default=None, init=False, repr=False, compare=False)
    # a labelled climatology's grid: (its tensor, latitudes, longitudes), rows ascending
    _clim_grid: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        """Check the fields (and make ``climatology`` and ``factors`` float64 tensors): at
        construction and at each use, so that a field changed after construction is
        checked as well."""
        if not isinstance(self.method, CycleMethod):
            raise TypeError(f"method must be a CycleMethod; got {type(self.method).__name__}")
        if self._name is not None and not isinstance(self._name, str):
            raise TypeError(f"name must be a string; got {type(self._name).__name__}")
        self.bands = _check_bands(self.bands)
        if self.climatology is None or self.factors is None:
            raise ValueError("climatology and factors are required")
        if isinstance(self.climatology, (xr.DataArray, xr.Dataset)):
            self._set_labelled_climatology(self.climatology)
        elif self._clim_grid is not None and self.climatology is not self._clim_grid[0]:
            self._clim_grid = None  # replaced by an array after construction
        self.climatology = _as_tensor(self.climatology, "climatology")
        if self._clim_grid is not None and self._clim_grid[0] is not self.climatology:
            self._clim_grid = (self.climatology, *self._clim_grid[1:])
        self.factors = _as_tensor(self.factors, "factors")
        if self.climatology.ndim != 3:
            raise ValueError(
                "climatology must be (channel, latitude, longitude); "
                f"got shape {tuple(self.climatology.shape)}"
            )
        n = self.climatology.shape[0]
        if self.factors.shape != (n, len(self.bands)):
            raise ValueError(
                f"factors must be (channel, band) = ({n}, {len(self.bands)}); "
                f"got {tuple(self.factors.shape)}"
            )
        if ((self.factors < 0) | (self.factors > 1.5)).any():
            raise ValueError("factors must lie in [0, 1.5]")

    def _set_labelled_climatology(self, clim: Any) -> None:
        """A DataArray climatology: its values on (channel, latitude, longitude), rows by
        ascending latitude and columns by ascending longitude (modulo 360), with those
        coordinates kept to match the model's grid by (:meth:`_climatology_on`)."""
        dims = ("channel", "latitude", "longitude")
        values = _labelled_values(clim, "climatology", dims)
        lat = np.arange(values.shape[1], dtype="float64")
        lon = np.arange(values.shape[2], dtype="float64")
        labelled = "latitude" in clim.coords or "longitude" in clim.coords
        if "latitude" in clim.coords:
            lat = np.asarray(clim["latitude"].values, dtype="float64")
        if "longitude" in clim.coords:
            lon = np.asarray(clim["longitude"].values, dtype="float64") % 360.0
        ilat, ilon = np.argsort(lat, kind="stable"), np.argsort(lon, kind="stable")
        self.climatology = np.asarray(values, dtype="float64")[:, ilat][:, :, ilon]
        grid = (
            lat[ilat] if "latitude" in clim.coords else None,
            lon[ilon] if "longitude" in clim.coords else None,
        )
        self._clim_grid = (None, *grid) if labelled else None

    def _climatology_on(self, model: Any) -> torch.Tensor:
        """The climatology on ``model``'s grid: a labelled one's rows and columns matched
        to ``model.latitude`` and ``model.longitude`` by its coordinates."""
        if self._clim_grid is None:
            return self.climatology
        c, lat, lon = self._clim_grid
        if lat is not None:
            ilat = _match_coords(lat, model.latitude, "latitude", "the climatology")
            if not np.array_equal(ilat, np.arange(ilat.size)):
                c = c[:, torch.as_tensor(ilat)]
        if lon is not None:
            ilon = _match_coords(lon, model.longitude, "longitude", "the climatology")
            if not np.array_equal(ilon, np.arange(ilon.size)):
                c = c[:, :, torch.as_tensor(ilon)]
        return c

    def settings(self) -> dict[str, Any]:
        self._check()
        return {
            "method": self.name,
            "inner": self.method.settings(),
            "blend_bands": list(self.bands),
            "blend_factors": [[round(float(v), 12) for v in row] for row in self.factors],
            "blend_climatology_sum": float(self.climatology.sum()),
        }

    def fingerprints(self) -> dict[str, str]:
        """The climatology's digest (the settings hold its sum alone), and the inner
        method's fingerprints."""
        self._check()
        return {**super().fingerprints(), "climatology": _tensor_fingerprint(self.climatology)}

    def _chunk(self) -> int:
        return self.method._chunk()

    def start(self, background, *, model, generator):
        self._check()
        if background.shape[-3:] != self.climatology.shape:
            raise ValueError(
                f"the climatology is {tuple(self.climatology.shape)} (channel, latitude, "
                f"longitude); the model's states are {tuple(background.shape[-3:])}"
            )
        self._climatology_on(model)  # a labelled one on another grid: refused here
        return self.method.start(background, model=model, generator=generator)

    def observe(self, network, truth, times, *, cycle, model):
        return self.method.observe(network, truth, times, cycle=cycle, model=model)

    def forecast(self, state, *, model):
        return self.method.forecast(state, model=model)

    def no_observations(self, state):
        return self.method.no_observations(state)

    def blend(self, x: torch.Tensor, model: Any) -> torch.Tensor:
        """Blend states ``(..., channel, latitude, longitude)`` with the climatology."""
        self._check()
        if x.shape[-3:] != self.climatology.shape:
            raise ValueError(
                f"states must end in {tuple(self.climatology.shape)}; got {tuple(x.shape)}"
            )
        anomaly = x.double() - self._climatology_on(model)
        out = x.double().clone()
        for j, part in enumerate(self._band_split(model)(anomaly)):
            out += (self.factors[:, j, None, None] - 1.0) * part
        return out.to(x.dtype)

    def _band_split(self, model: Any) -> _BandSplit:
        """The band projections on ``model``'s grid, built once and rebuilt when the grid
        or the bands differ from those they were built for (a reused method on another
        grid, or with other ``bands``)."""
        key = (
            tuple(np.asarray(model.latitude, dtype="float64").ravel().tolist()),
            tuple(np.asarray(model.longitude, dtype="float64").ravel().tolist()),
            tuple(int(b) for b in self.bands),
        )
        if self._split is None or self._split[0] != key:
            self._split = (key, _BandSplit(model.latitude, model.longitude, key[2]))
        return self._split[1]

    def analyse(self, state, slots, *, model, generator):
        res = self.method.analyse(state, slots, model=model, generator=generator)
        pair = res.state["pair"]
        blended = self.blend(pair, model)
        new = dict(res.state)
        new["pair"] = blended
        if "members" in new:
            new["members"] = new["members"] + (blended - pair).to(new["members"].dtype)[None]
        change = blended[1] - pair[1]
        res.analysis = blended[1]
        res.state = new
        rms = _area_rms(change, _grid_weights(model))
        extra = xr.Dataset({"climatology_blend_change": (("channel",), rms)})
        res.extra = extra if res.extra is None else res.extra.merge(extra)
        return res


# ``name`` and ``n_slots`` follow the current inner method
_follow_inner_method(ClimatologyBlendMethod, "climatology blend")
