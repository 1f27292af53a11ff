"""Lorenz-96 as a differentiable torch forecast model (a test bed for En4DVar).

``dX_j/dt = (X_{j+1} − X_{j−2}) X_{j−1} − X_j + F`` on a periodic ring of ``K`` variables
(Lorenz 1996), integrated with classical RK4. One model *step* is one assimilation
interval (default ``dt = 0.05`` time units, which Lorenz equates with 6 hours).

The model follows the :class:`~xfuxi.models.base.ForecastModel` contract: the state is one
channel (``("x", None)``) on a 1 × K "grid" (latitude ``[0]``, longitude ``360 j / K``), the
input is the pair ``(B, 2, 1, 1, K)`` and only its latest state is used (Lorenz-96 is a
first-order system). Computation runs in the dtype of the input.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import ForecastModel

__all__ = ["Lorenz96", "lorenz96_model", "lorenz96_tendency"]


def lorenz96_tendency(x: torch.Tensor, forcing: float = 8.0) -> torch.Tensor:
    """Right-hand side of Lorenz-96 along the last axis (periodic).

    Examples
    --------
    >>> x = torch.full((1, 40), 8.0)  # the fixed point X = F
    >>> float(lorenz96_tendency(x).abs().max())
    0.0
    """
    return (torch.roll(x, -1, -1) - torch.roll(x, 2, -1)) * torch.roll(x, 1, -1) - x + forcing


class Lorenz96(torch.nn.Module):
    """RK4 integration of Lorenz-96 over one step of ``n_substeps × dt_sub`` time units.

    Parameters
    ----------
    forcing : float, default 8
    dt : float, default 0.05
        Length of one model step (time units).
    n_substeps : int, default 1
        RK4 sub-steps per model step.

    Examples
    --------
    >>> m = Lorenz96()
    >>> x = torch.full((2, 2, 1, 1, 40), 8.0, dtype=torch.float64)
    >>> tuple(m(x).shape)
    (2, 1, 1, 40)
    """

    def __init__(self, forcing: float = 8.0, dt: float = 0.05, n_substeps: int = 1) -> None:
        super().__init__()
        if dt <= 0 or n_substeps < 1:
            raise ValueError(f"need dt > 0 and n_substeps >= 1, got {dt}, {n_substeps}")
        self.forcing = float(forcing)
        self.dt = float(dt)
        self.n_substeps = int(n_substeps)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Advance states ``(..., K)`` by one model step."""
        h = self.dt / self.n_substeps
        f = self.forcing
        for _ in range(self.n_substeps):
            k1 = lorenz96_tendency(x, f)
            k2 = lorenz96_tendency(x + 0.5 * h * k1, f)
            k3 = lorenz96_tendency(x + 0.5 * h * k2, f)
            k4 = lorenz96_tendency(x + h * k3, f)
            x = x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 2:
            raise ValueError(f"expected input (B, 2, C, H, W); got {tuple(x.shape)}")
        return self.step(x[:, 1])

    def extra_repr(self) -> str:
        return f"forcing={self.forcing:g}, dt={self.dt:g}, n_substeps={self.n_substeps}"


class _L96ForecastModel(ForecastModel):
    def normalize(self, x: torch.Tensor) -> torch.Tensor:  # identity: keep float64
        return x

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x


def lorenz96_model(
    *, n_variables: int = 40, forcing: float = 8.0, dt: float = 0.05, n_substeps: int = 1
) -> ForecastModel:
    """Lorenz-96 as a :class:`~xfuxi.models.base.ForecastModel` on a 1 × K grid.

    Parameters
    ----------
    n_variables : int, default 40
    forcing : float, default 8
    dt : float, default 0.05
        One model step (the assimilation interval; "6 hours").
    n_substeps : int, default 1
        RK4 sub-steps per step.

    Returns
    -------
    ForecastModel
        Channel ``("x", None)``, latitude ``[0]``, longitude ``360 j / K``; runs in the
        dtype of its input (use float64 for assimilation experiments).

    Raises
    ------
    ValueError
        ``n_variables`` below 4, ``dt`` not positive or ``n_substeps`` below 1.

    Notes
    -----
    Lorenz, E. N. (1996). Predictability: a problem partly solved. ECMWF Seminar.

    Examples
    --------
    >>> m = lorenz96_model()
    >>> x = torch.full((1, 2, 1, 1, 40), 8.0, dtype=torch.float64)
    >>> x[..., 19] += 0.01
    >>> y = m(x)
    >>> y.dtype, bool(y[..., 19] < 8.01)
    (torch.float64, True)
    """
    if n_variables < 4:
        raise ValueError(f"Lorenz-96 needs at least 4 variables, got {n_variables}")
    core = Lorenz96(forcing=forcing, dt=dt, n_substeps=n_substeps)
    return _L96ForecastModel(
        core,
        channels=[("x", None)],
        latitude=[0.0],
        longitude=np.arange(n_variables) * 360.0 / n_variables,
        residual=False,
        timestep_hours=6.0,
        name="lorenz96",
        config={
            "n_variables": n_variables,
            "forcing": forcing,
            "dt": dt,
            "n_substeps": n_substeps,
        },
    )
