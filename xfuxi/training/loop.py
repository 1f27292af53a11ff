"""The optimizer loop of the resumable trainers of a module beside a frozen model.

:func:`~xfuxi.training.ens.train_perturbation` (FuXi-ENS) and
:func:`~xfuxi.training.da.train_da` (FuXi-DA) train a small network through a frozen forecast
model in the same way: a validation before the first step of a fresh run, then, each step,
the loss (which must be finite), its gradient clipped, an optimizer and a scheduler step, the
values recorded in the history and shown on the progress bar, a log line, a validation and
a checkpoint at their intervals, a stop after ``max_minutes``; at the end a last validation
(unless the last step had one) and checkpoint. What each trainer computes (its loss, its
validation, its checkpoint, its log line) it passes in; the loop is here once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from ..options import get_options

__all__ = [
    "LoopPlan",
    "average_gradients",
    "freeze",
    "gradient_step",
    "module_digest",
    "process_share",
    "run_loop",
]


@dataclasses.dataclass(frozen=True)
class LoopPlan:
    """The counts and intervals of a training loop.

    Parameters
    ----------
    unit : str
        The counter's name (``"step"``, ``"iteration"``): its history key (with
        ``"val_" + unit`` for the validations) and its word in the messages.
    total : int
        The run ends after this many optimizer steps (counted from the start of the run,
        a resumed run included).
    log_every, validate_every, checkpoint_every : int
        Intervals in steps.
    max_minutes : float or None
        Stop after this wall time (checked after each step).
    postfix : mapping of str to str
        Recorded values shown on the progress bar, with their format
        (``{"l0": ".4f"}``).

    Examples
    --------
    >>> LoopPlan("step", 10, 5, 5, 10, None, {"loss": ".4f"}).unit
    'step'
    """

    unit: str
    total: int
    log_every: int
    validate_every: int
    checkpoint_every: int
    max_minutes: float | None
    postfix: Mapping[str, str]


def freeze(model: torch.nn.Module) -> Callable[[], None]:
    """Put ``model`` in eval mode with no gradients for its weights; returns the undo.

    The undo puts back each submodule's own mode (a network left in eval mode inside a
    model in train mode stays so) and each weight's ``requires_grad``.

    Examples
    --------
    >>> lin = torch.nn.Linear(2, 2)
    >>> restore = freeze(lin)
    >>> lin.training, lin.weight.requires_grad
    (False, False)
    >>> restore()
    >>> lin.training, lin.weight.requires_grad
    (True, True)
    """
    modes = [(m, m.training) for m in model.modules()]
    req = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    def restore() -> None:
        for m, mode in modes:  # not model.train(mode): that sets every submodule alike
            m.training = mode
        for p, r in zip(model.parameters(), req):
            p.requires_grad_(r)

    return restore


def module_digest(module: torch.nn.Module) -> str:
    """A short sha256 of every tensor of ``module`` (weights and buffers, with their names)
    and of the classes of its submodules: a frozen model with the same name but other
    weights or another network differs here.

    Examples
    --------
    >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    >>> module_digest(a) == module_digest(a), module_digest(a) == module_digest(b)
    (True, False)
    """
    import hashlib

    h = hashlib.sha256(" ".join(type(m).__qualname__ for m in module.modules()).encode())
    for key, value in sorted(module.state_dict().items()):
        h.update(f"{key} {value.dtype} {tuple(value.shape)}".encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:16]


def process_share(
    batch_size: int, device: str | None, rank_world: tuple[int, int]
) -> tuple[int, int, int, torch.device]:
    """``(rank, world, local batch, device)`` of this process in a (distributed) run.

    ``rank_world`` is :func:`xfuxi.training.forecast.dist_info`'s; the global
    ``batch_size`` must divide by the processes; ``device`` defaults to the ``device``
    option, and a CUDA device becomes the process's ``LOCAL_RANK`` GPU under ``torchrun``.

    Examples
    --------
    >>> process_share(8, "cpu", (1, 2))
    (1, 2, 4, device(type='cpu'))
    >>> process_share(4, "cpu", (0, 3))
    Traceback (most recent call last):
    ...
    ValueError: batch_size 4 is not divisible by 3 processes
    """
    rank, world = rank_world
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} is not divisible by {world} processes")
    dev = torch.device(device if device is not None else get_options()["device"])
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return rank, world, batch_size // world, dev


def average_gradients(module: torch.nn.Module, world: int) -> None:
    """All-reduce the gradients of ``module`` over the ``world`` processes and divide by it.

    Each process's loss is the mean over its equal share of the global batch, so the result
    is the gradient of the global batch's mean, as DistributedDataParallel averages; a
    trainable parameter without a gradient takes part with zeros (every process must
    all-reduce the same tensors in the same order).
    """
    import torch.distributed as dist

    for p in module.parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world


def gradient_step(
    loss: torch.Tensor,
    parameters: Iterable[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    *,
    grad_clip: float,
    where: str,
    before_clip: Callable[[], None] | None = None,
) -> None:
    """One optimizer step on ``loss``: ``FloatingPointError`` (naming ``where``) if it is not
    finite, else backward, ``before_clip()``, the gradient norm clipped to ``grad_clip``, the
    optimizer's and the scheduler's step.

    Examples
    --------
    >>> lin = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    >>> sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
    >>> gradient_step(lin(torch.ones(1, 2)).sum() * float("nan"), lin.parameters(), opt, sched,
    ...               grad_clip=1.0, where="step 0")
    Traceback (most recent call last):
    ...
    FloatingPointError: non-finite loss at step 0
    """
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss at {where}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if before_clip is not None:
        before_clip()
    torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimizer.step()
    scheduler.step()


def run_loop(
    plan: LoopPlan,
    start: int,
    history: dict[str, list],
    *,
    advance: Callable[[int], Mapping[str, float]],
    validate: Callable[[int], None],
    save: Callable[[int], None],
    report: Callable[[int, float], None],
    bar: Any,
    logger: logging.Logger,
) -> int:
    """Run steps ``start + 1 … plan.total`` (fewer if ``plan.max_minutes`` runs out).

    Validates at step 0, every ``plan.validate_every`` steps and at the end of a complete
    run; saves every ``plan.checkpoint_every`` steps and when it stops.

    Parameters
    ----------
    plan : LoopPlan
    start : int
        Steps already done (a resumed run's).
    history : dict of lists
        Appended to: ``plan.unit`` with the step count, and each value ``advance`` returns.
    advance : callable
        ``advance(done)`` makes one optimizer step (steps ``done`` made before it) and
        returns the values to record under their history keys.
    validate, save : callable
        ``validate(done)``, ``save(done)``: a validation, a checkpoint after ``done`` steps.
    report : callable
        ``report(done, seconds_per_step)``: the log line every ``plan.log_every`` steps.
    bar : tqdm
        Progress bar, advanced one per step (not closed here).
    logger : logging.Logger
        Says why the run stopped early.

    Returns
    -------
    int
        The steps done.

    Raises
    ------
    ValueError
        ``start`` is past ``plan.total`` (a checkpoint of a longer run: it is not shortened).

    Examples
    --------
    >>> history = {"step": [], "loss": [], "val_step": []}
    >>> plan = LoopPlan("step", 3, 1, 2, 3, None, {"loss": ".2f"})
    >>> bar = __import__("tqdm").tqdm(total=3, disable=True)
    >>> run_loop(plan, 0, history, advance=lambda done: {"loss": 1.0 / (done + 1)},
    ...          validate=history["val_step"].append, save=lambda done: None,
    ...          report=lambda done, rate: None, bar=bar, logger=logging.getLogger())
    3
    >>> history["step"], history["val_step"]
    ([1, 2, 3], [0, 2, 3])
    """
    if start > plan.total:
        raise ValueError(
            f"{start} {plan.unit}s are done already, more than this run's {plan.total}: a "
            "checkpoint of a longer run is not shortened"
        )
    t_start = time.monotonic()
    done = start
    if start == 0:
        validate(0)
    while done < plan.total:
        record = advance(done)
        done += 1
        history[plan.unit].append(done)
        for key, value in record.items():
            history[key].append(value)
        bar.update(1)
        bar.set_postfix(**{key: format(record[key], fmt) for key, fmt in plan.postfix.items()})
        if done % plan.log_every == 0:
            report(done, (time.monotonic() - t_start) / max(1, done - start))
        if done % plan.validate_every == 0:
            validate(done)
        if done % plan.checkpoint_every == 0:
            save(done)
        if plan.max_minutes is not None and time.monotonic() - t_start > 60 * plan.max_minutes:
            logger.info("stopping after %.1f min at %s %d", plan.max_minutes, plan.unit, done)
            break
    validated = history["val_" + plan.unit]
    # a complete run ends validated; one stopped by max_minutes only saved, so that its
    # resumed run's history is the uninterrupted run's (no extra validation in between)
    if done == plan.total and (not validated or validated[-1] != done):
        validate(done)
    save(done)
    return done
