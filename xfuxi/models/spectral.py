"""A spectral truncation of model output on a latitude–longitude grid.

Machine-learned forecast models are not spectral: each step can put energy at scales finer
than those the atmosphere they learned has at that resolution, and over many steps (a long
rollout, a cycle of analyses and forecasts) that grid-scale noise accumulates, because
nothing removes it. Spectral dynamical cores remove it by construction (they carry only the
retained wavenumbers, and filter the highest). :class:`SpectralFilter` does the same to a
field on a regular latitude–longitude grid: it keeps the spherical harmonics of total
wavenumber ``l ≤ truncation`` and removes the rest, and :func:`with_spectral_filter` applies
it to every step of a forecast model. See the documentation, docs/cycling.md (Stability of
the forecast model).

Per zonal wavenumber ``m`` (a Fourier transform in longitude), the latitudinal profile is
projected, by area-weighted least squares, onto the normalized associated Legendre functions
``P̄_l^m(sin φ)``, ``m ≤ l ≤ truncation``; ``m > truncation`` is removed. A field that is a
sum of retained harmonics is returned unchanged (to rounding). On a Gaussian grid the
weights are the Gaussian quadrature weights and the projection is the exact spectral
truncation (the shipped T21 grid is Gaussian). On other grids (cos-latitude weights) the
retained harmonics are still returned unchanged, but a removed harmonic leaves a residue
that depends on how many latitudes resolve the truncation: at T21 with 64 longitudes, the
worst area-weighted RMS residue of a harmonic of ``22 ≤ l ≤ 30`` is 8.6 % of it
(``Y_29^0``) on a regular grid of 32 latitudes and 1.4 % on one of 64 latitudes.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ..config import is_integer

__all__ = ["SpectralFilter", "with_spectral_filter"]


def _legendre(latitude: np.ndarray, truncation: int) -> list[np.ndarray]:
    """Per ``m``: the normalized associated Legendre functions ``(nlat, truncation − m + 1)``."""
    from scipy.special import sph_harm_y

    colat = np.deg2rad(90.0 - np.asarray(latitude, dtype="float64"))
    out = []
    for m in range(truncation + 1):
        ls = np.arange(m, truncation + 1)
        out.append(np.stack([sph_harm_y(int(ell), m, colat, 0.0).real for ell in ls], axis=1))
    return out


def _quadrature_weights(latitude: np.ndarray) -> np.ndarray:
    """Gaussian quadrature weights on a Gaussian grid (exact truncation), else cos(lat)."""
    mu, wq = np.polynomial.legendre.leggauss(latitude.size)
    s = np.sin(np.deg2rad(latitude))
    order = np.argsort(s)
    if np.allclose(s[order], mu, atol=1e-9):
        out = np.empty_like(wq)
        out[order] = wq
        return out
    w = np.cos(np.deg2rad(latitude))
    return np.where(w > 0, w, 0.0) + 1e-12


class SpectralFilter(torch.nn.Module):
    """Keep the spherical harmonics ``l ≤ truncation`` of fields on a lat–lon grid.

    Parameters
    ----------
    latitude, longitude : array-like
        The grid (degrees); longitudes regularly spaced over the whole circle.
    truncation : int
        The highest total wavenumber kept (e.g. 21 for a T21 world).
    weights : array-like of ``truncation + 1`` floats, optional
        A factor for each total wavenumber ``l = 0 .. truncation`` applied to the kept
        harmonics (a hyperdiffusion-like damping, for instance); default 1 (plain truncation).

    Examples
    --------
    A field of degree 2 passes unchanged; grid-scale noise is removed:

    >>> lat = np.linspace(-87.5, 87.5, 36); lon = np.arange(72) * 5.0
    >>> f = SpectralFilter(lat, lon, truncation=10)
    >>> smooth = torch.as_tensor(np.sin(np.deg2rad(lat))[:, None] ** 2 + 0 * lon)
    >>> bool(torch.allclose(f(smooth), smooth, atol=1e-8))
    True
    >>> noise = torch.randn(36, 72, generator=torch.Generator().manual_seed(0),
    ...                     dtype=torch.float64)
    >>> bool(f(noise).std() < 0.5 * noise.std())
    True

    Weights by wavenumber scale each degree: halving ``l = 2`` halves a pure ``P_2`` field.

    >>> p2 = (3 * smooth - 1) / 2
    >>> half = SpectralFilter(lat, lon, truncation=10, weights=[1, 1, 0.5] + [1] * 8)
    >>> bool(torch.allclose(half(p2), 0.5 * p2, atol=1e-3))
    True
    """

    def __init__(
        self, latitude: Any, longitude: Any, truncation: int, *, weights: Any = None
    ) -> None:
        super().__init__()
        lat = np.asarray(latitude, dtype="float64")
        lon = np.asarray(longitude, dtype="float64")
        if not is_integer(truncation) or truncation < 0:
            raise ValueError(f"truncation must be an integer >= 0; got {truncation!r}")
        nlon = lon.size
        if nlon < 2 or not np.allclose(np.diff(lon) % 360.0, 360.0 / nlon):
            raise ValueError("longitudes must be regularly spaced over the whole circle")
        if truncation > nlon // 2 - 1:
            raise ValueError(
                f"truncation {truncation} needs more than {nlon} longitudes "
                f"(at most {nlon // 2 - 1})"
            )
        if truncation + 1 > lat.size:
            raise ValueError(f"truncation {truncation} needs at least {truncation + 1} latitudes")
        per_l = np.ones(truncation + 1)
        if weights is not None:
            per_l = np.asarray(weights, dtype="float64")
            if per_l.shape != (truncation + 1,) or not np.all(np.isfinite(per_l)):
                raise ValueError(
                    f"weights must be {truncation + 1} finite numbers (l = 0 .. {truncation}); "
                    f"got shape {per_l.shape}"
                )
        w = _quadrature_weights(lat)
        proj = np.zeros((truncation + 1, lat.size, lat.size))
        for m, a in enumerate(_legendre(lat, truncation)):
            aw = a * w[:, None]
            # area-weighted least squares, each degree l = m .. truncation scaled by its weight
            proj[m] = (a * per_l[m:]) @ np.linalg.solve(a.T @ aw, aw.T)
        self.truncation = int(truncation)
        #: the factor of each total wavenumber (None: a plain truncation), kept for checkpoints
        self.weights = None if weights is None else [float(v) for v in per_l]
        self.n_longitude = int(nlon)
        # float64 and not a buffer: a model moved to float32 keeps an exact projection
        self._projection = torch.as_tensor(proj)
        self._on: dict[torch.device, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The truncated field, same shape and dtype; latitude and longitude last."""
        n_lat = self._projection.shape[-1]
        if x.shape[-1] != self.n_longitude or x.shape[-2] != n_lat:
            raise ValueError(
                f"fields must end in (latitude, longitude) = ({n_lat}, {self.n_longitude}); "
                f"got {tuple(x.shape)}"
            )
        t = self.truncation
        if x.device not in self._on:
            self._on[x.device] = self._projection.to(x.device)
        proj = self._on[x.device]
        coef = torch.fft.rfft(x.double(), dim=-1)[..., : t + 1]  # (..., H, T+1)
        kept = torch.complex(
            torch.einsum("mij,...jm->...im", proj, coef.real),
            torch.einsum("mij,...jm->...im", proj, coef.imag),
        )
        return torch.fft.irfft(kept, n=self.n_longitude, dim=-1).to(x.dtype)


def with_spectral_filter(model: Any, truncation: int) -> Any:
    """A copy of ``model`` whose every step's output is spectrally truncated.

    Parameters
    ----------
    model : ForecastModel or Cascade
        The model is not changed; the copy shares nothing mutable with it. A cascade gets
        each of its stages filtered.
    truncation : int
        Highest total wavenumber kept (the resolution of the data the model learned: 21 for
        the embedded T21 world; about a third of the number of longitudes for data on a
        linear grid).

    Returns
    -------
    ForecastModel
        Same channels, grid, statistics and time step; ``name`` gets ``"+T{truncation}"``
        and ``config["output_filter"]`` records the filter (it is saved with the checkpoint
        and restored by :func:`~xfuxi.models.registry.load_model`).

    Raises
    ------
    TypeError
        ``model`` is neither a ForecastModel nor a Cascade.
    ValueError
        A bad ``truncation`` (see :class:`SpectralFilter`), or the model (a stage of the
        cascade) has an output filter already, e.g. one made by this function or a shipped
        ``fuxi-hs-t21-cycling*`` model: a model has one filter, which a second would
        replace, so it is refused rather than silently swapped.

    Examples
    --------
    The shipped model with its output kept to the T21 world's wavenumbers, as the cycling
    experiments run it (docs/cycling.md):

    >>> import xfuxi
    >>> model = xfuxi.load_model("fuxi-hs-t21")
    >>> filtered = xfuxi.with_spectral_filter(model, truncation=21)
    >>> filtered.name, model.name, filtered.output_filter.truncation
    ('fuxi-hs-t21+T21', 'fuxi-hs-t21', 21)
    """
    from .base import ForecastModel

    # a Cascade (not imported: the checkpoint loader, which cascades use, imports this
    # module): each stage filtered, the switch steps kept
    if hasattr(model, "stages") and hasattr(model, "switch_steps"):
        stages = [with_spectral_filter(m, truncation) for m in model.stages]
        name = f"{model.name}+T{int(truncation)}"
        return type(model)(stages, model.switch_steps, name=name)
    if not isinstance(model, ForecastModel):
        raise TypeError(f"expected a ForecastModel or Cascade; got {type(model).__name__}")
    current = getattr(model, "output_filter", None)
    if current is not None:
        # a model has one output filter: the new one replaced it, and the name then
        # listed both ("+T2+T6") while only the last applied
        raise ValueError(
            f"model {model.name!r} already has an output filter (truncation "
            f"{getattr(current, 'truncation', '?')}); a second one would replace it, not add "
            "to it: filter the model without a filter (e.g. the checkpoint it was made from)"
        )
    filt = SpectralFilter(model.latitude, model.longitude, truncation)
    out = copy.deepcopy(model)
    out.output_filter = filt  # ForecastModel.forward applies it; saved with the checkpoint
    out.name = f"{model.name}+T{int(truncation)}"
    out.config = dict(out.config)
    out.config["output_filter"] = {"kind": "spectral", "truncation": int(truncation)}
    return out
