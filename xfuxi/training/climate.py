"""Free runs carried through training: the model's own long forecasts, and a climate term.

A forecast model trained on rollouts of a day or two from the truth never sees the states
its own forecasts reach after weeks. On the embedded world the shipped model keeps the
world's variance for about ten days and then drifts to a more energetic climate (measured
in docs/cycling.md, "Why the cycles still grow"), and a cycle, which feeds the model its
own forecasts over and over, drifts with it. :class:`FreeRunPool` keeps a few free runs of
the model being trained going, one or more steps further at every optimizer step (without
gradient, with the current weights), each restarted from a true state when it is
``max_steps`` old; :meth:`FreeRunPool.objective` then scores a short rollout with gradient
from the members that are at least ``min_steps`` old. Once a forecast has lost the phase
of the weather, no particular pattern can be asked of it, only the right amplitude at each
scale. Two scores do that:

* ``"spectrum"`` (default): the squared log ratio of the runs' mean power, per channel,
  latitude row and octave of zonal wavenumber, to the training data's;
* ``"amse"``: the adjusted MSE against the truth at the same valid times
  (:func:`~xfuxi.training.losses.amse_loss`): its amplitude term and its decorrelation
  term, weighted by the larger of the two powers.

Measured on the embedded world (docs/cycling.md, A forecast model that does not drift),
neither term, at the weights tried, lessened the shipped model's drift: the gradients
through a short rollout from decorrelated states are noisy and swamp the forecast loss.
The shipped cycling model was made with perturbed inputs instead
(``TrainConfig.input_perturbation``). The terms are kept as options for research.

The pool is part of the training state (saved with each checkpoint), so an interrupted run
resumes bit for bit. See docs/cycling.md (A forecast model that does not drift).
"""

from __future__ import annotations

import numpy as np
import torch

from .config import CLIMATE_LOSSES
from .losses import amse_loss, zonal_octave_power

__all__ = ["CLIMATE_LOSSES", "FreeRunPool"]


class FreeRunPool:
    """Free runs of the trained model, advanced at every optimizer step.

    Parameters
    ----------
    data : torch.Tensor
        The training data ``(time, channel, lat, lon)``.
    starts : numpy.ndarray
        Indices ``i`` of the data from which ``max_steps + rollout_steps`` steps follow
        without a gap (the pair ``i − 1, i`` starts a run).
    size : int
        Free runs kept.
    min_steps, max_steps : int
        Runs enter the objective once they are ``min_steps`` steps old and are restarted
        from the truth after ``max_steps``.
    rollout_steps : int
        Steps with gradient in the objective.
    advance : int
        Steps each run is advanced per optimizer step.
    seed, rank : int
        Seed the start times (reproducibly per process).
    scale : torch.Tensor
        Each channel's normalising standard deviation ``(channel, 1, 1)``.
    offset : torch.Tensor, optional
        Each channel's normalising mean ``(channel, 1, 1)``, taken from the fields of the
        ``"amse"`` score (AMSE is not shift-invariant in the zonal mean, m = 0); default
        none. The ``"spectrum"`` score matches the power of the fields as they are, their
        mean included.
    loss : {"spectrum", "amse"}
        ``"spectrum"``: the squared log ratio of the runs' mean power, per channel, latitude
        row and octave of zonal wavenumber (:func:`~xfuxi.training.losses.zonal_octave_power`,
        the Nyquist wavenumber left out), to the training data's (area-weighted over the
        rows; a floor of a tenth of each group's mean power over the rows is added to
        both); ``"amse"``: the adjusted MSE of each run against the truth at its valid time.
    """

    def __init__(
        self,
        data: torch.Tensor,
        starts: np.ndarray,
        *,
        size: int,
        min_steps: int,
        max_steps: int,
        rollout_steps: int,
        advance: int,
        seed: int,
        scale: torch.Tensor,
        rank: int = 0,
        loss: str = "spectrum",
        offset: torch.Tensor | None = None,
    ) -> None:
        if loss not in CLIMATE_LOSSES:
            raise ValueError(f"the climate loss must be one of {CLIMATE_LOSSES}; got {loss!r}")
        if not 0 <= min_steps < max_steps:
            raise ValueError(
                f"the free runs need 0 <= min_steps < max_steps; got {min_steps}, {max_steps}"
            )
        if starts.size == 0:
            raise ValueError(
                f"the training data hold no run of {max_steps + rollout_steps + 2} consecutive "
                "states for the free runs; use fewer climate_max_steps or longer data"
            )
        self.data, self.starts = data, np.asarray(starts)
        self.size, self.min_steps, self.max_steps = int(size), int(min_steps), int(max_steps)
        self.rollout_steps, self.advance = int(rollout_steps), int(advance)
        self.seed, self.rank = int(seed), int(rank)
        self.scale, self.loss = scale.to(data.device), loss
        self.offset = torch.zeros_like(self.scale) if offset is None else offset.to(data.device)
        self.log_power = self.floor = None
        if loss == "spectrum":  # the training data's mean power, from up to 512 states
            pick = np.unique(np.linspace(0, data.shape[0] - 1, 512).round().astype(int))
            with torch.no_grad():
                mean = (
                    sum(
                        zonal_octave_power(
                            data[torch.as_tensor(c)] / self.scale, nyquist=False
                        ).sum(0)
                        for c in np.array_split(pick, max(1, pick.size // 64))
                    )
                    / pick.size
                )  # (channel, lat, group)
            # a floor of 10% of each channel's and group's mean over the rows keeps the log
            # finite where a group holds almost nothing (the zonal mean of u near its zero)
            self.floor = 0.1 * mean.mean(-2, keepdim=True)
            self.log_power = torch.log(mean + self.floor)
        n, dev = self.size, data.device
        self.index = torch.zeros(n, dtype=torch.long, device=dev)  # valid time of ``curr``
        self.age = torch.zeros(n, dtype=torch.long, device=dev)
        self.prev = torch.zeros((n, *data.shape[1:]), dtype=data.dtype, device=dev)
        self.curr = torch.zeros_like(self.prev)
        self._initialised = False

    # ---- state --------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The pool as tensors (saved with the training checkpoint)."""
        return {
            "climate.index": self.index.cpu(),
            "climate.age": self.age.cpu(),
            "climate.prev": self.prev.cpu(),
            "climate.curr": self.curr.cpu(),
        }

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore the pool of a checkpoint; raise if it holds none of this shape."""
        keys = ("climate.index", "climate.age", "climate.prev", "climate.curr")
        missing = [k for k in keys if k not in tensors]
        if missing:
            raise ValueError(f"the checkpoint holds no free-run pool ({missing} missing)")
        if tuple(tensors["climate.curr"].shape) != tuple(self.curr.shape):
            raise ValueError(
                f"the checkpoint's free-run pool has shape {tuple(tensors['climate.curr'].shape)}"
                f"; this run's is {tuple(self.curr.shape)}"
            )
        dev = self.data.device
        self.index = tensors["climate.index"].to(dev)
        self.age = tensors["climate.age"].to(dev)
        self.prev = tensors["climate.prev"].to(dev, self.data.dtype)
        self.curr = tensors["climate.curr"].to(dev, self.data.dtype)
        self._initialised = True

    def _restart(self, which: torch.Tensor, draw: int) -> None:
        g = np.random.default_rng([self.seed, draw, self.rank, 41])
        for j in which.tolist():
            i = int(self.starts[g.integers(0, self.starts.size)])
            self.index[j], self.age[j] = i, 0
            self.prev[j], self.curr[j] = self.data[i - 1], self.data[i]

    @torch.no_grad()
    def _advance(self, model: torch.nn.Module, rows: torch.Tensor, steps: int) -> None:
        for _ in range(steps):
            nxt = model(torch.stack([self.prev[rows], self.curr[rows]], dim=1)).to(self.curr.dtype)
            self.prev[rows], self.curr[rows] = self.curr[rows], nxt
            self.index[rows] += 1
            self.age[rows] += 1

    def initialise(self, model: torch.nn.Module) -> None:
        """Start the runs from the truth, staggered in age over ``0 .. max_steps``."""
        was = model.training
        model.eval()
        self._restart(torch.arange(self.size), draw=0)
        ages = [round(j * self.max_steps / self.size) for j in range(self.size)]
        for s in range(max(ages, default=0)):
            rows = torch.as_tensor([j for j, a in enumerate(ages) if a > s], dtype=torch.long)
            self._advance(model, rows.to(self.curr.device), 1)
        model.train(was)
        self._initialised = True

    def step(self, model: torch.nn.Module, step: int) -> None:
        """Advance every run ``advance`` steps; restart those past ``max_steps``."""
        if not self._initialised:
            self.initialise(model)
        was = model.training
        model.eval()
        self._advance(model, torch.arange(self.size, device=self.curr.device), self.advance)
        model.train(was)
        old = torch.nonzero(self.age > self.max_steps).flatten()
        if old.numel():
            self._restart(old.cpu(), draw=step + 1)

    def objective(self, model: torch.nn.Module, w: torch.Tensor) -> torch.Tensor | None:
        """The climate score of a rollout with gradient from the runs old enough.

        ``None`` while no run is ``min_steps`` old.
        """
        rows = torch.nonzero(self.age >= self.min_steps).flatten()
        if rows.numel() == 0:
            return None
        prev, curr, idx = self.prev[rows], self.curr[rows], self.index[rows]
        total = 0.0
        for s in range(self.rollout_steps):
            pred = model(torch.stack([prev, curr], dim=1))
            if self.loss == "amse":
                truth = self.data[idx + 1 + s]
                total = total + amse_loss(
                    (pred - self.offset) / self.scale, (truth - self.offset) / self.scale, w
                )
            else:
                # mean power of the runs, (channel, lat, group)
                power = zonal_octave_power(pred / self.scale, nyquist=False).mean(0)
                diff = torch.log(power + self.floor) - self.log_power
                total = total + (diff**2 * w.view(-1, 1)).mean()
            prev, curr = curr, pred
        return total / self.rollout_steps

    def mean_age(self) -> float:
        return float(self.age.float().mean())
