"""Balanced perturbations: Perlin geopotential with its geostrophic winds and hydrostatic
temperature, for the FuXi-En4DVar background ensemble.

The balance kernels are those of :mod:`xfuxi.physics` (the one geostrophic wind of xfuxi,
also used by the balance diagnostics), with the Earth's constants of :mod:`xfuxi.constants`.
This module imports torch at top level; :mod:`xfuxi` reaches it lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import physics
from ..constants import R_DRY
from ..data.channels import channel_name
from .perlin import check_amplitude, check_std, make_generator, perlin_noise
from .scales import PerlinScales, perlin_scales

__all__ = ["balanced_perturbations"]

#: members whose winds and temperature are computed at a time (temporaries of a few members)
_MEMBER_BLOCK = 4


def balanced_perturbations(
    n: int,
    *,
    channels: Sequence[tuple[str, float | None]],
    latitude: Any,
    longitude: Any,
    std: Any,
    amplitude: float | Any = 0.05,
    scales: PerlinScales | None = None,
    equator_band: float = 15.0,
    vertical_correlation: float = 0.5,
    polar_filter: float | None = 60.0,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    **legacy: Any,
) -> torch.Tensor:
    """Perlin perturbations in geostrophic and hydrostatic balance (multivariate).

    Per member, ``Φ′`` at each geopotential level is ``amplitude × std`` of that level times
    ``ρ N₀ + √(1 − ρ²) N_l`` — a Perlin field ``N₀`` shared by all levels (an
    equivalent-barotropic part) plus one of each level's own, ``ρ`` the
    ``vertical_correlation`` — so the ensemble can correct levels separately; the winds are
    its geostrophic wind (:func:`xfuxi.physics.geostrophic_wind`: ``|f|`` held at its value
    at ``equator_band`` degrees nearer the equator, and the winds tapered linearly to zero
    at the equator), temperature the hydrostatic ``T′ = −(1/R) ∂Φ′/∂ln p``
    (:func:`xfuxi.physics.hydrostatic_temperature`), surface pressure ``ρ Φ′`` at the
    lowest level (``ρ = p/(R·280 K)``); every other channel (e.g. a tracer) gets independent
    Perlin noise of ``amplitude × std``.

    Parameters
    ----------
    n : int
    channels : sequence of (variable, level)
        Needs ``geopotential`` on at least one level; winds/temperature are balanced on the
        levels where geopotential is given.
    latitude, longitude : array-like
        Grid (latitude strictly monotonic, at least 3 rows; longitude evenly spaced and
        covering the globe).
    std : array-like (C,)
        Climatological std per channel (finite and non-negative).
    amplitude, scales
        As for :func:`~xfuxi.perturbations.perlin.perlin_perturbations`: ``amplitude`` a
        float or one per channel; the balanced channels (the winds and temperature of a
        level with geopotential, surface pressure) follow the geopotential of their level
        (the lowest for surface pressure), so their entries must equal its. The old
        keywords ``wavelength``, ``octaves`` and ``persistence`` still work, with a
        ``DeprecationWarning``.
    equator_band : float, default 15
    vertical_correlation : float, default 0.5
        Correlation ``ρ`` of the geopotential perturbation between levels (1: one pattern
        for all levels).
    polar_filter : float or None, default 60
        Latitude (degrees) poleward of which ``Φ′`` is filtered in longitude (before the
        winds, the temperature and the surface pressure are made from it): a row at
        latitude ``φ`` keeps the zonal wavenumbers up to ``cos φ / cos(polar_filter)`` of
        the most the grid resolves (a pole row only its zonal mean). The noise is drawn on
        the grid, so near the poles its zonal scale shrinks with ``cos φ`` and the
        geostrophic ``v``, with its ``1/cos φ``, grew without bound toward a pole (next to
        it, 7× its spread at 60° on the T21 grid, 17× on the 1.5° grid, 100× on a 0.25°
        grid); filtered, 3.6×, 1.6× and 0.95×. The filter lowers the spread of ``Φ′``
        itself toward the poles (on the 1.5° grid about half at 88.5°, an eighth on the
        pole row), which a rescaling by the model's statistics per latitude row restores.
        The standard polar filter of latitude–longitude models. None turns it off.
    generator, seed, dtype
        As for :func:`~xfuxi.perturbations.perlin.perlin_noise`.

    Returns
    -------
    torch.Tensor (n, C, H, W)

    Raises
    ------
    ValueError
        If there is no geopotential channel, ``std`` or ``amplitude`` has the wrong shape or
        a non-finite or negative value, a balanced channel's amplitude differs from its
        geopotential's, or the grid is not as described.
    TypeError
        An unknown keyword argument.

    Notes
    -----
    Geostrophic wind on the sphere, ``f = 2Ω sin φ``; hydrostatic relation
    ``∂Φ/∂ln p = −R T``. Balanced initial perturbations keep the one-step ensemble (and so
    the En4DVar background covariance) close to the balance of the forecast model. See the
    definitions in the documentation (docs/design.md).

    Examples
    --------
    >>> ch = [("geopotential", 500.0), ("u_component_of_wind", 500.0),
    ...       ("v_component_of_wind", 500.0), ("passive_tracer", 500.0)]
    >>> p = balanced_perturbations(2, channels=ch, latitude=np.linspace(-80, 80, 9),
    ...                            longitude=np.arange(16) * 22.5, std=[500.0, 10, 10, 1],
    ...                            seed=0)
    >>> tuple(p.shape)
    (2, 4, 9, 16)
    """
    scales = perlin_scales(scales, legacy, "balanced_perturbations")
    chans = [(str(v), None if lv is None else float(lv)) for v, lv in channels]
    std_arr = np.asarray(std, dtype="float64")
    if std_arr.shape != (len(chans),):
        raise ValueError(f"std has shape {std_arr.shape}; expected ({len(chans)},)")
    std_arr = check_std(std_arr)  # finite and non-negative, as perlin_perturbations wants
    z_levels = sorted(lv for v, lv in chans if v == "geopotential" and lv is not None)
    if not z_levels:
        raise ValueError("balanced perturbations need a geopotential channel")
    lat = np.asarray(latitude, dtype="float64")
    lon = np.asarray(longitude, dtype="float64")
    h, w = lat.size, lon.size
    noise_kw = dict(**scales.to_dict(), dtype=torch.float64)
    g = make_generator(seed, generator)
    base = perlin_noise(n, (h, w), generator=g, **noise_kw).numpy()
    if not 0.0 <= vertical_correlation <= 1.0:
        raise ValueError(f"vertical_correlation must be in [0, 1], got {vertical_correlation}")
    rho = float(vertical_correlation)
    amp = _channel_amplitudes(amplitude, chans, z_levels)
    z_std = {lv: std_arr[chans.index(("geopotential", lv))] for lv in z_levels}
    z_amp = {lv: amp[chans.index(("geopotential", lv))] for lv in z_levels}
    # written into the result as they are made (no second copy of the balanced channels):
    # Φ′ first (the draws of all levels, then those of the other channels, as always)
    out = np.empty((int(n), len(chans), h, w))
    z_channels = {
        lv: [c for c, ch in enumerate(chans) if ch == ("geopotential", lv)] for lv in z_levels
    }
    for lv in z_levels:  # (n, H, W) each
        own = perlin_noise(n, (h, w), generator=g, **noise_kw).numpy()
        for c in z_channels[lv]:
            out[:, c] = z_amp[lv] * z_std[lv] * (rho * base + np.sqrt(1 - rho**2) * own)
    del base, own
    if polar_filter is not None:
        keep = _polar_wavenumbers(lat, w, polar_filter)
        for lv in z_levels:
            for c in z_channels[lv]:
                _filter_rows(out[:, c], keep)
    phi = {lv: out[:, z_channels[lv][0]] for lv in z_levels}  # views of the result
    winds = ("u_component_of_wind", "v_component_of_wind")
    wind_levels = [lv for lv in phi if any(v in winds and x == lv for v, x in chans)]
    for i in range(0, int(n), _MEMBER_BLOCK):  # the kernels act member by member
        rows = slice(i, i + _MEMBER_BLOCK)
        wind = {
            lv: physics.geostrophic_wind(p[rows], lat, lon, equator_band=equator_band)
            for lv, p in phi.items()
            if lv in wind_levels
        }
        temperature = {}
        if len(z_levels) > 1:
            z = np.stack([p[rows] for p in phi.values()])
            temperature = dict(zip(z_levels, physics.hydrostatic_temperature(z, z_levels)))
        for c, (var, lv) in enumerate(chans):
            if var in winds and lv in phi:
                out[rows, c] = wind[lv][0 if var.startswith("u") else 1]
            elif var == "temperature" and lv in temperature:
                out[rows, c] = temperature[lv]
    for c, (var, lv) in enumerate(chans):
        if lv in phi and (
            var in ("geopotential", *winds) or (var == "temperature" and len(z_levels) > 1)
        ):
            continue  # written above
        if var == "surface_pressure":
            low = z_levels[-1]
            out[:, c] = phi[low] * 100.0 * low / (R_DRY * 280.0)
        else:
            noise = perlin_noise(n, (h, w), generator=g, **noise_kw).numpy()
            out[:, c] = amp[c] * std_arr[c] * noise
    return torch.as_tensor(out, dtype=dtype)


def _polar_wavenumbers(lat: np.ndarray, w: int, cutoff: float) -> np.ndarray:
    """For each latitude row, the largest zonal wavenumber the polar filter keeps (``w // 2``,
    every one, equatorward of ``cutoff``)."""
    if not (np.isfinite(cutoff) and 0.0 <= cutoff < 90.0):
        raise ValueError(
            f"polar_filter must be a latitude in [0, 90) degrees or None; got {cutoff}"
        )
    ratio = np.clip(np.cos(np.deg2rad(lat)), 0.0, None) / np.cos(np.deg2rad(cutoff))
    return np.where(np.abs(lat) > cutoff, np.floor(ratio * (w // 2)), w // 2).astype(int)


def _filter_rows(field: np.ndarray, keep: np.ndarray) -> None:
    """Zero, in place, the zonal wavenumbers of each row of ``field (..., H, W)`` above
    ``keep`` (rows that keep every one are not touched, so they stay bit for bit)."""
    w = field.shape[-1]
    for i in np.nonzero(keep < w // 2)[0]:
        spectrum = np.fft.rfft(field[..., i, :], axis=-1)
        spectrum[..., keep[i] + 1 :] = 0.0
        field[..., i, :] = np.fft.irfft(spectrum, n=w, axis=-1)


def _channel_amplitudes(
    amplitude: Any, chans: list[tuple[str, float | None]], z_levels: list[float]
) -> list[float]:
    """One amplitude per channel; a balanced channel's must be its geopotential's."""
    values = np.asarray(amplitude, dtype="float64")
    if values.ndim not in (0, 1) or (values.ndim == 1 and values.shape != (len(chans),)):
        raise ValueError(
            f"amplitude has shape {values.shape}; expected a float or ({len(chans)},), one "
            "per channel"
        )
    # finite and non-negative, a float included (as perlin_perturbations checks it)
    values = check_amplitude(values, len(chans))
    if values.ndim == 0:
        return [float(values)] * len(chans)
    amp = [float(a) for a in values]
    z_amp = {lv: amp[chans.index(("geopotential", lv))] for lv in z_levels}
    winds = ("u_component_of_wind", "v_component_of_wind")
    for c, (var, lv) in enumerate(chans):
        if var == "surface_pressure":
            follows: float | None = z_levels[-1]
        elif lv in z_amp and (var in winds or (var == "temperature" and len(z_levels) > 1)):
            follows = lv
        else:
            follows = None  # its own Perlin noise, its own amplitude
        if follows is not None and amp[c] != z_amp[follows]:
            raise ValueError(
                f"amplitude of {channel_name((var, lv))} is {amp[c]:g}, but balanced it follows "
                f"the geopotential at {follows:g} hPa (amplitude {z_amp[follows]:g}): give "
                "both the same amplitude, or balance='none' for independent channels"
            )
    return amp
