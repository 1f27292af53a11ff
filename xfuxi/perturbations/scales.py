"""The options of Perlin noise that every Perlin perturbation shares (no torch here).

:class:`PerlinScales` is taken by the functions of :mod:`xfuxi.perturbations.perlin` and
:mod:`xfuxi.perturbations.balanced`; :func:`check_perlin_scales` also checks the same three
fields of the ensemble's :class:`~xfuxi.forecasting.ensemble.PerlinNoise`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..config import Config, config_with_legacy, field, is_integer

__all__ = ["PerlinScales", "check_perlin_scales", "perlin_scales"]


def check_perlin_scales(owner: str, wavelength: Any, octaves: Any, persistence: Any) -> None:
    """Raise ``ValueError`` naming ``owner``'s field unless ``wavelength`` and ``persistence``
    are positive finite numbers and ``octaves`` an integer of at least 1."""
    if not (np.isfinite(wavelength) and wavelength > 0):
        raise ValueError(f"{owner}.wavelength must be positive; got {wavelength!r}")
    if not is_integer(octaves) or octaves < 1:
        raise ValueError(f"{owner}.octaves must be an integer >= 1; got {octaves!r}")
    if not (np.isfinite(persistence) and persistence > 0):
        raise ValueError(f"{owner}.persistence must be positive; got {persistence!r}")


@dataclasses.dataclass(frozen=True)
class PerlinScales(Config):
    """The spatial scales of Perlin noise: its coarsest wavelength and its octaves.

    One set of options for every function that draws Perlin noise from a climatological std
    (:func:`perlin_perturbations`, :func:`perlin_ensemble`,
    :func:`~xfuxi.perturbations.balanced.balanced_perturbations`); the ensemble's
    :class:`~xfuxi.forecasting.ensemble.PerlinNoise` and 4DVar's
    :class:`~xfuxi.assimilation.config.BackgroundError` hold the same three fields.

    Parameters
    ----------
    wavelength : float, default 8
        Lattice spacing of the coarsest octave in grid points (at most 1: white noise).
    octaves : int, default 3
        Number of octaves; octave ``o`` has wavelength ``wavelength / 2**o`` and weight
        ``persistence**o``.
    persistence : float, default 0.5
        Amplitude ratio of successive octaves.

    Raises
    ------
    ValueError
        A non-positive or non-finite ``wavelength`` or ``persistence``, or ``octaves`` not an
        integer of at least 1.

    Examples
    --------
    >>> import xfuxi
    >>> scales = xfuxi.PerlinScales(wavelength=4, octaves=2)
    >>> scales
    PerlinScales(wavelength=4, octaves=2, persistence=0.5)
    >>> scales.to_dict()
    {'wavelength': 4, 'octaves': 2, 'persistence': 0.5}
    >>> xfuxi.PerlinScales(octaves=0)
    Traceback (most recent call last):
    ...
    ValueError: PerlinScales.octaves must be an integer >= 1; got 0
    """

    wavelength: float = field(8.0, help="wavelength of the first octave, in grid points")
    octaves: int = field(3, help="number of octaves")
    persistence: float = field(0.5, help="amplitude ratio of successive octaves")

    def __post_init__(self) -> None:
        if not (np.isfinite(self.wavelength) and self.wavelength > 0):
            raise ValueError(f"PerlinScales.wavelength must be positive; got {self.wavelength!r}")
        if not is_integer(self.octaves) or self.octaves < 1:
            raise ValueError(f"PerlinScales.octaves must be an integer >= 1; got {self.octaves!r}")
        if not (np.isfinite(self.persistence) and self.persistence > 0):
            raise ValueError(f"PerlinScales.persistence must be positive; got {self.persistence!r}")


def perlin_scales(
    scales: PerlinScales | dict | None, legacy: dict[str, Any], function: str
) -> PerlinScales:
    """``scales`` (default :class:`PerlinScales`) with the old ``wavelength`` / ``octaves`` /
    ``persistence`` keywords of ``function`` applied (each with a ``DeprecationWarning``)."""
    return config_with_legacy(PerlinScales, scales, legacy, function, parameter="scales")
