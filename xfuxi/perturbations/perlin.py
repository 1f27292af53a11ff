"""Perlin (multi-octave gradient) noise on model grids, periodic in longitude.

FuXi-En4DVar builds its background ensemble by adding Perlin noise to the background
6 h before the analysis time and running every member one model step (see the
definitions in the documentation, docs/design.md).
The noise is also a stand-alone ensemble perturbation method (:func:`perlin_ensemble`).

The noise of one octave is classic gradient noise (Perlin 1985; "improved" fade curve of
Perlin 2002): random unit gradients on a lattice whose spacing is the octave's wavelength
in grid points; inside each lattice cell the dot products of the gradients with the offsets
to the cell's corners are blended with the fade ``6t⁵ − 15t⁴ + 10t³``. A periodic axis gets
an integer number of lattice cells whose last corner wraps onto the first, so the field is
exactly periodic. Every field gets a random sub-cell offset, so that grid points are not
pinned to the lattice nodes (where gradient noise vanishes). Octave ``o`` has wavelength
``wavelength / 2**o`` and weight ``persistence**o``; an octave whose wavelength is at most
one grid point is white (independent standard normal) noise. The sum is scaled to unit
standard deviation over all returned values. Perturbations in geostrophic and hydrostatic
balance are in :mod:`xfuxi.perturbations.balanced`.

This module imports torch at top level; :mod:`xfuxi` reaches it lazily.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..config import check_seed, is_integer, user_stacklevel
from ..data.channels import channels_of, stack, unstack
from ..data.schema import canonical_order, check_state_dims, require_dataset
from .scales import PerlinScales, perlin_scales

__all__ = ["perlin_ensemble", "perlin_noise", "perlin_perturbations"]

log = logging.getLogger(__name__)


def check_std(std: Any) -> np.ndarray:
    """``std`` as a float64 array (C,), refused unless 1-D, finite and non-negative (a NaN
    std would give NaN perturbations, a negative one flip their sign unnoticed)."""
    std_arr = np.asarray(std, dtype="float64")
    if std_arr.ndim != 1:
        raise ValueError(f"std must be 1-D (one value per channel), got shape {std_arr.shape}")
    if not np.all(np.isfinite(std_arr)) or np.any(std_arr < 0):
        raise ValueError(f"std must be finite and non-negative, got {std_arr.tolist()}")
    return std_arr


def check_amplitude(amplitude: Any, c: int) -> np.ndarray:
    """``amplitude`` as a float64 scalar or (C,) array, refused unless finite and
    non-negative."""
    amp = np.asarray(amplitude, dtype="float64")
    if amp.ndim == 1 and amp.size != c:
        raise ValueError(f"amplitude has {amp.size} values for {c} channels")
    if amp.ndim > 1 or not np.all(np.isfinite(amp)) or np.any(amp < 0):
        raise ValueError(f"amplitude must be a non-negative float or (C,) array, got {amplitude}")
    return amp


def make_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    """The torch generator to draw from: ``generator``, or a new one seeded with ``seed``."""
    if generator is not None and seed is not None:
        raise ValueError("give either seed or generator, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return generator
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(check_seed(seed))
    return g


def _fade(t: torch.Tensor) -> torch.Tensor:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def _axis_lattice(
    size: int, wavelength: float, periodic: bool, offset: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Lattice indices of the two corners and the fraction along one axis.

    ``offset`` has shape (n,) (sub-cell shift in lattice units). Returns ``i0, i1`` (n, size)
    long, ``frac`` (n, size) and the number of lattice nodes along the axis.
    """
    if periodic:
        cells = max(1, int(round(size / wavelength)))
        spacing = size / cells
        nodes = cells
    else:
        spacing = wavelength
        cells = int(math.floor((size - 1) / spacing + 1.0)) + 1
        nodes = cells + 1
    pos = torch.arange(size, dtype=torch.float64) / spacing
    pos = pos[None, :] + offset[:, None]
    i0 = torch.floor(pos)
    frac = pos - i0
    i0 = i0.long()
    i1 = i0 + 1
    if periodic:
        i0 = i0 % nodes
        i1 = i1 % nodes
    return i0, i1, frac, nodes


def _octave_1d(n: int, size: int, wavelength: float, periodic: bool, g: torch.Generator):
    offset = torch.rand(n, generator=g, dtype=torch.float64)
    i0, i1, f, nodes = _axis_lattice(size, wavelength, periodic, offset)
    grads = torch.rand(n, nodes, generator=g, dtype=torch.float64) * 2.0 - 1.0
    g0 = torch.gather(grads, 1, i0)
    g1 = torch.gather(grads, 1, i1)
    s = _fade(f)
    return (1 - s) * g0 * f + s * g1 * (f - 1.0)


def _octave_2d(
    n: int, shape: tuple[int, int], wavelength: float, periodic: tuple[bool, bool], g
) -> torch.Tensor:
    h, w = shape
    oy = torch.rand(n, generator=g, dtype=torch.float64)
    ox = torch.rand(n, generator=g, dtype=torch.float64)
    y0, y1, fy, ny = _axis_lattice(h, wavelength, periodic[0], oy)
    x0, x1, fx, nx = _axis_lattice(w, wavelength, periodic[1], ox)
    angle = torch.rand(n, ny, nx, generator=g, dtype=torch.float64) * (2 * math.pi)
    gy, gx = torch.sin(angle), torch.cos(angle)
    rows = torch.arange(n)[:, None, None]

    def corner(iy: torch.Tensor, ix: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor):
        sel_y = iy[:, :, None].expand(n, h, w)
        sel_x = ix[:, None, :].expand(n, h, w)
        return gy[rows, sel_y, sel_x] * dy + gx[rows, sel_y, sel_x] * dx

    dy0 = fy[:, :, None].expand(n, h, w)
    dx0 = fx[:, None, :].expand(n, h, w)
    n00 = corner(y0, x0, dy0, dx0)
    n01 = corner(y0, x1, dy0, dx0 - 1)
    n10 = corner(y1, x0, dy0 - 1, dx0)
    n11 = corner(y1, x1, dy0 - 1, dx0 - 1)
    sy, sx = _fade(dy0), _fade(dx0)
    top = n00 + sx * (n01 - n00)
    bottom = n10 + sx * (n11 - n10)
    return top + sy * (bottom - top)


def _count(n: Any, what: str) -> int:
    """``n`` as a positive int (2.7 was 2, True 1, "3" a NumPy error), else a ValueError."""
    if not is_integer(n) or n < 1:
        raise ValueError(f"n must be a positive integer number of {what}, got {n!r}")
    return int(n)


def perlin_noise(
    n: int,
    shape: Sequence[int],
    *,
    wavelength: float,
    octaves: int = 3,
    persistence: float = 0.5,
    periodic: bool | Sequence[bool] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    device: Any = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Draw ``n`` independent fields of multi-octave Perlin noise with unit standard deviation.

    Parameters
    ----------
    n : int
        Number of fields.
    shape : tuple of int
        ``(H, W)`` (latitude, longitude; periodic in W by default) or ``(K,)`` (a 1-D
        grid, periodic by default).
    wavelength : float
        Lattice spacing of the coarsest octave in grid points. ``wavelength <= 1`` gives
        white noise.
    octaves : int, default 3
        Number of octaves; octave ``o`` has wavelength ``wavelength / 2**o``.
    persistence : float, default 0.5
        Amplitude ratio of successive octaves.
    periodic : bool or sequence of bool, optional
        Periodicity per axis; default ``(False, True)`` for 2-D, ``(True,)`` for 1-D.
    seed : int, optional
        Seed of a fresh generator (reproducible draws).
    generator : torch.Generator, optional
        Generator to draw from (instead of ``seed``).
    device, dtype
        Of the returned tensor.

    Returns
    -------
    torch.Tensor, shape ``(n, *shape)``
        Noise scaled to unit standard deviation over all its values.

    Raises
    ------
    ValueError
        Non-positive ``n`` / ``octaves`` / ``wavelength``, a shape of neither 1 nor 2
        dimensions, or both ``seed`` and ``generator``.

    Notes
    -----
    Gradient noise (Perlin 1985) with the quintic fade curve (Perlin 2002), summed over
    octaves (fractal Brownian motion); periodic axes hold an integer number of lattice cells.

    References
    ----------
    Perlin, K. (2002). Improving noise. ACM Trans. Graphics 21, 681–682.

    Examples
    --------
    >>> z = perlin_noise(4, (8, 16), wavelength=8, seed=0)
    >>> tuple(z.shape), round(float(z.std()), 3)
    ((4, 8, 16), 1.0)
    >>> z1 = perlin_noise(2, (40,), wavelength=1, seed=1)  # white noise
    >>> tuple(z1.shape)
    (2, 40)
    """
    n = _count(n, "fields")
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (1, 2) or any(s < 1 for s in shape):
        raise ValueError(f"shape must be (H, W) or (K,) with positive sizes, got {shape}")
    if not (wavelength > 0 and math.isfinite(wavelength)):
        raise ValueError(f"wavelength must be a positive number of grid points, got {wavelength}")
    if int(octaves) < 1:
        raise ValueError(f"octaves must be >= 1, got {octaves}")
    if periodic is None:
        per = (False, True) if len(shape) == 2 else (True,)
    elif isinstance(periodic, bool):
        per = (periodic,) * len(shape)
    else:
        per = tuple(bool(p) for p in periodic)
        if len(per) != len(shape):
            raise ValueError(f"periodic has {len(per)} entries for a {len(shape)}-D shape")
    g = make_generator(seed, generator)
    total = torch.zeros((n, *shape), dtype=torch.float64)
    for o in range(int(octaves)):
        lam = float(wavelength) / 2**o
        weight = float(persistence) ** o
        if lam <= 1.0:
            field = torch.randn((n, *shape), generator=g, dtype=torch.float64)
        elif len(shape) == 1:
            field = _octave_1d(n, shape[0], lam, per[0], g)
        else:
            field = _octave_2d(n, shape, lam, per, g)  # type: ignore[arg-type]
        field = field / field.std().clamp_min(1e-12)
        total += weight * field
    total = total / total.std().clamp_min(1e-12) if total.numel() > 1 else total
    return total.to(device=device, dtype=dtype)


def perlin_perturbations(
    n: int,
    *,
    std: Any,
    shape: Sequence[int],
    amplitude: float | Any = 0.05,
    scales: PerlinScales | None = None,
    periodic: bool | Sequence[bool] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    **legacy: Any,
) -> torch.Tensor:
    """Perlin perturbations of ``C`` channels: ``amplitude × std[c] × noise``.

    Parameters
    ----------
    n : int
        Number of perturbations (members).
    std : array-like, shape (C,)
        Physical (climatological) standard deviation of each channel.
    shape : tuple of int
        Spatial shape, ``(H, W)`` or ``(K,)``.
    amplitude : float or array-like (C,), default 0.05
        Perturbation std as a fraction of ``std`` per channel (variable and level).
    scales : PerlinScales, optional
        Wavelength and octaves of the noise (default ``PerlinScales()``); every channel gets
        its own independent noise. The old keywords ``wavelength``, ``octaves`` and
        ``persistence`` still work, with a ``DeprecationWarning``.
    periodic, seed, generator, dtype
        As for :func:`perlin_noise`. The noise is drawn on the CPU (move the result with
        ``.to(device)``; the old keyword ``device`` still works, with a
        ``DeprecationWarning``).

    Returns
    -------
    torch.Tensor, shape ``(n, C, *shape)``

    Raises
    ------
    ValueError
        ``std`` not 1-D, or non-finite / negative ``std`` or ``amplitude``, or an
        ``amplitude`` array whose length is not C.
    TypeError
        An unknown keyword argument.

    Notes
    -----
    The FuXi-En4DVar background ensemble (docs/design.md) perturbs the background with this
    noise before running each member one model step.

    Examples
    --------
    >>> p = perlin_perturbations(3, std=[1.0, 10.0], shape=(8, 16), amplitude=0.1, seed=0)
    >>> tuple(p.shape)
    (3, 2, 8, 16)
    >>> round(float((p / torch.tensor([1.0, 10.0]).view(1, 2, 1, 1)).std()), 3)
    0.1
    """
    if "device" in legacy:
        warnings.warn(
            "perlin_perturbations(device=...) is deprecated; move the result with .to(device)",
            DeprecationWarning,
            stacklevel=user_stacklevel(),
        )
    device = legacy.pop("device", None)
    n = _count(n, "members")
    scales = perlin_scales(scales, legacy, "perlin_perturbations")
    std_arr = check_std(std)
    c = std_arr.size
    amp = check_amplitude(amplitude, c)
    noise = perlin_noise(
        int(n) * c,
        shape,
        **scales.to_dict(),
        periodic=periodic,
        seed=seed,
        generator=generator,
        dtype=torch.float64,
    ).reshape(int(n), c, *tuple(int(s) for s in shape))
    scale = torch.as_tensor(np.broadcast_to(amp * std_arr, (c,)).copy(), dtype=torch.float64)
    out = noise * scale.view(1, c, *([1] * len(tuple(shape))))
    return out.to(device=device, dtype=dtype)


def perlin_ensemble(
    ds: xr.Dataset,
    *,
    n: int | None = None,
    amplitude: float = 0.05,
    scales: PerlinScales | None = None,
    std: xr.Dataset | None = None,
    seed: int | None = None,
    **legacy: Any,
) -> xr.Dataset:
    """Perturb a state with Perlin noise: an ensemble with dim ``number``.

    All ``n`` members are drawn from one generator (seeded by ``seed``) and the noise is
    scaled to unit standard deviation over all of them before ``amplitude × std``: member
    ``m`` depends on ``n`` (the first two members of ``n=5`` are not those of ``n=2``).
    These are not the perturbed initial states of
    ``ensemble(perturbation=PerlinNoise(...))``, which draws member ``m`` of initial time
    ``t`` on its own from the generator keyed by ``(seed, t, m)``, scaled by the model's
    normalisation std (``model.stats.std``); docs/user-guide/ensembles.md shows how to draw
    those again.

    Parameters
    ----------
    ds : xarray.Dataset
        Canonical data with ``latitude`` and ``longitude`` dims (and optionally ``level``,
        ``time``). Every time gets the same perturbation per member (a perturbation of the
        state, consistent across the input pair of a model).
    n : int
        Number of members (required; the name :func:`xfuxi.ensemble` uses; the old keyword
        ``n_members`` still works, with a ``DeprecationWarning``).
    amplitude : float, default 0.05
        Perturbation std as a fraction of each variable's (and level's) std.
    scales : PerlinScales, optional
        Wavelength (grid points of the coarsest octave) and octaves of the noise (default
        ``PerlinScales()``; the old keywords ``wavelength``, ``octaves`` and ``persistence``
        still work, with a ``DeprecationWarning``).
    std : xarray.Dataset, optional
        Climatological std per variable (and level): one value per variable, or per level
        (a ``level`` dim holding every level of ``ds``). Default: the std of ``ds`` over
        all dims but ``level`` (computed in at least single precision, on the canonical
        grid below, so that it does not depend on the order of the grid either).
    seed : int, optional
        Seed for reproducible draws. The noise is drawn channel by channel in the order of
        ``ds``'s data variables (each one's levels ascending): the same seed with the
        variables in another order, or with a variable (or level) added or removed, gives
        other noise for every variable (select the variables, or compare with the same
        ones). The order of the levels, latitudes
        and longitudes does not matter: the noise is drawn on the canonical grid (latitude
        ascending, longitude ascending within 0..360) and put back in ``ds``'s order, so a
        north-to-south or −180..180 copy of a state gets the same noise at the same places.

    Returns
    -------
    xarray.Dataset
        ``ds`` plus noise, with a leading ``number`` dim of size ``n``.

    Raises
    ------
    ValueError
        If ``ds`` lacks latitude/longitude, or a std is missing (a variable, or a level of
        ``ds``), not one value per variable and level (a field), non-finite or negative.
    SchemaError
        If ``ds`` is already an ensemble (a ``number``, ``member`` or ``realization`` dim):
        its members would be matched with the new ones by label, and members lost.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"temperature": (("latitude", "longitude"), np.zeros((4, 8)))},
    ...                 coords={"latitude": np.linspace(-60, 60, 4),
    ...                         "longitude": np.arange(8) * 45.0})
    >>> ens = perlin_ensemble(ds, n=5, std=xr.Dataset({"temperature": 2.0}), seed=0)
    >>> ens["temperature"].dims
    ('number', 'latitude', 'longitude')
    >>> ds.fuxi.perlin_ensemble(n=3, std=xr.Dataset({"temperature": 2.0}),
    ...                         seed=0).sizes["number"]  # through the accessor
    3
    """
    require_dataset(ds, "the states to perturb")
    if "n_members" in legacy:
        if n is not None:
            raise TypeError("perlin_ensemble: give n (the number of members), not n and n_members")
        warnings.warn(
            "perlin_ensemble(n_members=...) is deprecated; pass n=... (as for ensemble)",
            DeprecationWarning,
            stacklevel=user_stacklevel(),
        )
        n = legacy.pop("n_members")
    if n is None:
        raise TypeError("perlin_ensemble needs n, the number of members (e.g. n=20)")
    n = _count(n, "members")
    scales = perlin_scales(scales, legacy, "perlin_ensemble")
    for dim in ("latitude", "longitude"):
        if dim not in ds.dims:
            raise ValueError(f"dataset lacks dim {dim!r} needed for Perlin noise")
    not_float = [str(v) for v in ds.data_vars if ds[v].dtype.kind != "f"]
    if not_float:  # noise cast to an integer or boolean mask is lost or turns it to 0/1
        raise ValueError(
            f"perlin_ensemble perturbs every data variable; {not_float} are not floating "
            "point (masks or flags?): drop them first (ds.drop_vars([...]))"
        )
    # ds + noise aligns the members by their labels: an input ensemble lost members
    check_state_dims(
        ds,
        "the states to perturb",
        "perlin_ensemble makes a new ensemble from one state per time: select a member "
        "(ds.isel(number=0)) or pass the ensemble mean (ds.mean('number'))",
        ensemble_only=True,
    )
    chans = channels_of(ds)
    lat_order = np.argsort(np.asarray(ds["latitude"].values, dtype="float64"), kind="stable")
    lon_order = np.argsort(
        np.asarray(ds["longitude"].values, dtype="float64") % 360.0, kind="stable"
    )
    if std is None:
        # reduced on the canonical grid (latitude ascending, longitude ascending within
        # 0..360, levels ascending): a reordered copy of ds gets the same std to the bit, not
        # one summed in another order (canonical ds is reduced as it is)
        order = {"latitude": lat_order, "longitude": lon_order}
        if "level" in ds.dims:
            order["level"] = np.argsort(np.asarray(ds["level"].values), kind="stable")
        if any((o != np.arange(o.size)).any() for o in order.values()):
            canonical = ds.isel(order)
        else:
            canonical = ds
        # in at least single precision: a float16 sum of squares overflows to inf (float32
        # and float64 data are reduced as they are)
        wide = canonical.assign(
            {
                str(v): canonical[v].astype("float32")
                for v in canonical.data_vars
                if canonical[v].dtype.itemsize < 4
            }
        )
        std_ds = wide.std([d for d in ds.dims if d != "level"])
    else:
        std_ds = std
    stds = []
    for var, level in chans:
        if var not in std_ds:
            raise ValueError(f"std lacks variable {var!r}")
        s = std_ds[var]
        if level is not None and "level" in s.dims:
            if not np.isin(level, s["level"].values):
                raise ValueError(
                    f"std[{var!r}] lacks level {level:g}; it has levels "
                    f"{np.asarray(s['level'].values).tolist()} (one value per level of ds)"
                )
            s = s.sel(level=level)
        if s.size != 1:
            where = f"std[{var!r}]" + (f" at level {level:g}" if level is not None else "")
            raise ValueError(
                f"{where} must be one value per variable (and level), a climatological std, "
                f"not a field; got dims {dict(s.sizes)}"
            )
        stds.append(float(s))
    shape = (ds.sizes["latitude"], ds.sizes["longitude"])
    # drawn in a canonical order (levels ascending within each variable, latitude south to
    # north, longitude ascending within 0..360) and put back in ds's order, so the noise of a
    # point does not depend on how ds is sorted; for canonical ds every order is the identity
    var_of = {str(v): k for k, v in enumerate(ds.data_vars)}
    draw = sorted(
        range(len(chans)),
        key=lambda i: (var_of[chans[i][0]], -np.inf if chans[i][1] is None else chans[i][1]),
    )
    amp = np.asarray(amplitude, dtype="float64")
    pert = perlin_perturbations(
        n,
        std=np.asarray(stds)[draw],
        shape=shape,
        # one per channel (in ds's order) goes with its channel; any other is checked there
        amplitude=amp[draw] if amp.shape == (len(chans),) else amplitude,
        scales=scales,
        seed=seed,
        dtype=torch.float64,
    ).numpy()
    pert = pert[:, np.argsort(draw)][:, :, np.argsort(lat_order)][..., np.argsort(lon_order)]
    names = stack(ds, chans)
    da = xr.DataArray(
        pert,
        dims=("number", "channel", "latitude", "longitude"),
        coords={
            "number": np.arange(n),
            "channel": names["channel"].values,
            "latitude": ds["latitude"].values,
            "longitude": ds["longitude"].values,
        },
    )
    noise = unstack(da, chans)
    # each variable's noise in its own precision (the first variable's was used for all)
    out = ds + noise.assign({str(v): noise[v].astype(ds[v].dtype) for v in noise.data_vars})
    out.attrs = dict(ds.attrs)
    out.attrs.update(
        perturbation="perlin", perlin_amplitude=amplitude, perlin_wavelength=scales.wavelength
    )

    return out.transpose(*canonical_order(out.dims))
