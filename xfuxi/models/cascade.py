"""FuXi's cascade: several forecast models, each used over its own range of lead times.

FuXi (Chen et al. 2023) is not one network but three: FuXi-Short (0–5 days), FuXi-Medium
(5–10 days) and FuXi-Long (10–15 days). Each later stage is the earlier one fine-tuned, by
autoregressive training, on the earlier stage's own forecasts at the switch lead (see
``lead_model`` / ``lead_steps`` of :func:`xfuxi.training.train_forecast`), which reduces the
accumulation of error over long rollouts. A :class:`Cascade` is accepted by
:func:`xfuxi.forecast`, :func:`xfuxi.forecast_iter`, :func:`xfuxi.ensemble` and
:func:`xfuxi.ensemble_iter` wherever a model is; 4DVar and the B calibration need a single
one-step model (e.g. ``cascade.stages[0]``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import is_integer, summary_html
from .base import ForecastModel
from .checkpoint import load_checkpoint

__all__ = ["Cascade", "reject_cascade"]


class Cascade:
    """Forecast models applied one after another over consecutive ranges of steps.

    Parameters
    ----------
    stages : sequence of ForecastModel or str or path
        The models in order of lead time (shipped names or checkpoint directories are loaded
        with :func:`xfuxi.load_model`). All must have the same channels, grid and time step.
    switch_steps : sequence of int
        ``len(stages) - 1`` strictly increasing step counts: stage ``i + 1`` makes the
        forecast steps after ``switch_steps[i]`` (FuXi: 20 and 40 six-hour steps, i.e. 5 and
        10 days). Its two input times are the previous stage's last two forecasts.
    name : str, optional
        Recorded in forecasts; default the stage names joined by ``"+"``.

    Examples
    --------
    >>> import torch, xfuxi
    >>> class Add(torch.nn.Module):
    ...     def __init__(self, c):
    ...         super().__init__()
    ...         self.c = c
    ...     def forward(self, x):
    ...         return x[:, 1] + self.c
    >>> grid = dict(channels=[("temperature", 500.0)], latitude=[-45.0, 45.0],
    ...             longitude=[0.0, 90.0, 180.0, 270.0])
    >>> c = Cascade([xfuxi.wrap_model(Add(1.0), **grid), xfuxi.wrap_model(Add(10.0), **grid)],
    ...             switch_steps=[2])
    >>> [c.stage_index(k) for k in range(1, 5)]
    [0, 0, 1, 1]
    """

    def __init__(
        self,
        stages: Sequence[ForecastModel | str | os.PathLike[str]],
        switch_steps: Sequence[int],
        *,
        name: str | None = None,
    ) -> None:
        stages = list(stages)
        if len(stages) < 2:
            raise ValueError(f"a cascade needs at least 2 stages; got {len(stages)}")
        models = []
        for i, m in enumerate(stages):
            if isinstance(m, (str, os.PathLike)):
                m = load_checkpoint(m)
            if not isinstance(m, ForecastModel):
                raise TypeError(
                    f"cascade stage {i} must be a ForecastModel or a checkpoint name; "
                    f"got {type(m).__name__}"
                )
            models.append(m)
        switch = list(switch_steps)
        if len(switch) != len(models) - 1:
            raise ValueError(
                f"{len(models)} stages need {len(models) - 1} switch step(s); got {switch}"
            )
        for s in switch:
            if not is_integer(s) or s < 1:
                raise ValueError(f"switch_steps must be integers >= 1; got {switch}")
        if any(b <= a for a, b in zip(switch, switch[1:])):
            raise ValueError(f"switch_steps must increase strictly; got {switch}")
        first = models[0]
        for m in models[1:]:
            first.check_same_layout(m, f"cascade stages {first.name!r} and {m.name!r}")
        self.stages: tuple[ForecastModel, ...] = tuple(models)
        self.switch_steps: tuple[int, ...] = tuple(int(s) for s in switch)
        self.name = name or "+".join(m.name for m in models)

    # --- what forecast() reads from a model ---
    @property
    def channels(self):
        return self.stages[0].channels

    @property
    def latitude(self) -> np.ndarray:
        return self.stages[0].latitude

    @property
    def longitude(self) -> np.ndarray:
        return self.stages[0].longitude

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.stages[0].grid_shape

    @property
    def timestep(self) -> np.timedelta64:
        return self.stages[0].timestep

    @property
    def timestep_hours(self) -> float:
        return self.stages[0].timestep_hours

    @property
    def stats(self):
        """The first stage's normalization statistics (the scale of ensemble perturbations)."""
        return self.stages[0].stats

    @property
    def config(self) -> dict[str, Any]:
        return {
            "sha256": "+".join(str(m.config.get("sha256", "none")) for m in self.stages),
            "cascade": {
                "stages": [m.name for m in self.stages],
                "switch_steps": list(self.switch_steps),
            },
        }

    def check_dataset(self, ds) -> None:
        """Raise a clear error if ``ds`` does not match the cascade's channels or grid.

        All stages have the same channels and grid, so this is the first stage's
        :meth:`ForecastModel.check_dataset`; the error names the cascade (and that stage).

        Parameters
        ----------
        ds : xarray.Dataset
            Canonical data (states, increments or error samples).

        Raises
        ------
        SchemaError
            A missing variable, level or dimension, or a grid other than the model's.
        """
        first = self.stages[0]
        first._check_layout(ds, f"model {self.name!r} (its first stage {first.name!r})")

    def stage_index(self, step: int) -> int:
        """Index of the stage that makes forecast step ``step`` (1 = the first 6 h)."""
        if step < 1:
            raise ValueError(f"step must be >= 1; got {step}")
        return int(np.searchsorted(self.switch_steps, step, side="left"))

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{m.name!r} to step {s}" for m, s in zip(self.stages, (*self.switch_steps, "end"))
        )
        return f"Cascade({parts})"

    def _repr_html_(self) -> str:
        """Jupyter's view: the stages and the steps each makes."""
        starts = (1, *(s + 1 for s in self.switch_steps))
        ends = (*self.switch_steps, "end")
        rows = [
            (f"stage {i + 1}", f"{m.name!r}: steps {a} to {b}")
            for i, (m, a, b) in enumerate(zip(self.stages, starts, ends))
        ]
        return summary_html("Cascade", rows + self.stages[0].summary_rows()[:3])


def reject_cascade(model: Any) -> None:
    """Raise a clear TypeError where a single one-step model is needed and got a Cascade."""
    if isinstance(model, Cascade):
        raise TypeError(
            f"a Cascade ({model.name!r}) runs forecasts and ensembles only; 4DVar and its B "
            f"need one single-step model, e.g. its first stage cascade.stages[0] "
            f"({model.stages[0].name!r})"
        )
