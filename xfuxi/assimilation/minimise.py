"""L-BFGS minimisation of the En4DVar cost, with gradients from autodiff, and its history."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..config import user_stacklevel
from ..options import progress_enabled
from .config import Minimiser, legacy_options
from .cost import En4DVarProblem

__all__ = ["History", "IterationRecord", "minimize_cost"]

# cost evaluations a torch L-BFGS line search may make (SciPy L-BFGS-B's maxls default)
_LINE_SEARCH_EVALUATIONS = 20


@dataclass
class IterationRecord:
    """The cost, its parts (background, observations per slot) and the gradient norm."""

    cost: float
    cost_background: float
    cost_observation: list[float]
    gradient_norm: float


@dataclass
class History:
    """Records per iteration (0 = the start), evaluations, convergence and the stop reason."""

    records: list[IterationRecord] = field(default_factory=list)
    n_evaluations: int = 0
    converged: bool = False
    message: str = ""


def minimize_cost(
    problem: En4DVarProblem,
    *,
    minimiser: Minimiser | None = None,
    progress: bool | None = None,
    initial: torch.Tensor | None = None,
    **deprecated: Any,
) -> tuple[torch.Tensor, History]:
    """Minimise the En4DVar cost with L-BFGS; gradients by autodiff.

    Parameters
    ----------
    problem : En4DVarProblem
    minimiser : Minimiser, optional
        ``max_iter`` (iteration cap; 0 evaluates the cost at the start and returns it
        unchanged), ``gtol`` (stop when ``‖∇J‖ ≤ gtol · ‖∇J(w₀)‖``), ``optimizer`` (SciPy's
        L-BFGS-B or ``torch.optim.LBFGS`` with strong-Wolfe line search) and ``history``
        (correction pairs kept).
    progress : bool, optional
        Progress bar over iterations (default: the global option).
    initial : Tensor, optional
        Starting control (default zero, i.e. the background).
    **deprecated
        ``max_iter``, ``gtol``, ``optimizer``: mapped onto ``minimiser`` with a
        ``DeprecationWarning``.

    Returns
    -------
    control : Tensor (n_control,) float64
    history : record of J, Jb, Jo per slot and gradient norm per iteration (0 = start)

    Raises
    ------
    ValueError
        The cost at the start is NaN or infinite, or a slot's observations have no autograd
        path to the analysis state (a model or observation operator that detaches or
        computes in NumPy; :meth:`En4DVarProblem.check_differentiable` names which).

    Warns
    -----
    UserWarning
        The gradient is exactly zero at the start while the observations' cost is not:
        the starting state is returned, since nothing moves it.
    """
    opts = legacy_options(
        "minimize_cost",
        {"minimiser": minimiser},
        deprecated,
        allowed=("max_iter", "gtol", "optimizer"),
    )["minimiser"]
    max_iter, gtol, optimizer = opts.max_iter, opts.gtol, opts.optimizer
    n = problem.n_control
    v0 = torch.zeros(n, dtype=torch.float64) if initial is None else initial.double().clone()
    hist = History()
    last: dict[str, Any] = {}

    def evaluate(v: torch.Tensor) -> tuple[float, torch.Tensor]:
        v = v.detach().clone().requires_grad_(True)
        total, jb, jo = problem.cost(v)
        (grad,) = torch.autograd.grad(total, v)
        hist.n_evaluations += 1
        last["v"] = v.detach()
        last["rec"] = IterationRecord(
            float(total.detach()),
            float(jb.detach()),
            [float(j.detach()) for j in jo],
            float(grad.norm()),
        )
        return float(total.detach()), grad

    bar = tqdm(total=max_iter, desc="4DVar L-BFGS", disable=not progress_enabled(progress))
    try:
        # every slot's observations must reach the state through autograd: a detached
        # model or operator gave them a zero gradient, and the background came back as a
        # converged analysis
        check = getattr(problem, "check_differentiable", None)
        if check is not None and max_iter > 0:  # (max_iter=0 uses no gradient)
            check()
        j0, g0 = evaluate(v0)
        if not math.isfinite(j0):  # L-BFGS stopped 'ABNORMAL' and the start came back
            rec = last["rec"]
            raise ValueError(
                f"the cost at the start of the minimisation is {j0} (Jb "
                f"{rec.cost_background}, Jo per slot {rec.cost_observation}): the model or "
                "an observation operator gives NaN or infinite values there"
            )
        hist.records.append(last["rec"])
        g0n = max(float(g0.norm()), 1e-300)
        if float(g0.norm()) == 0.0:
            jo0 = sum(last["rec"].cost_observation)
            if jo0 > 0.0:  # Jo = 0 (a perfect background) is a true minimum
                warnings.warn(
                    f"the gradient of the 4DVar cost is zero at the start although the "
                    f"observations' cost Jo is {jo0:.6g}: they do not constrain the control "
                    "(B has no spread where they are, or the model or an observation operator "
                    "has a zero derivative there); the analysis is the starting state",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )
            hist.converged, hist.message = True, "zero gradient at the background"
            bar.close()
            return v0, hist
        if max_iter == 0:  # the background's cost and departures only
            hist.message = "max_iter=0: not minimised"
            bar.close()
            return v0, hist

        def record(v: torch.Tensor) -> bool:
            if "v" not in last or not torch.equal(last["v"], v):
                evaluate(v)
            hist.records.append(last["rec"])
            bar.update(1)
            bar.set_postfix(J=f"{last['rec'].cost:.4g}", g=f"{last['rec'].gradient_norm / g0n:.2e}")
            return last["rec"].gradient_norm <= gtol * g0n

        if optimizer == "scipy":

            def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
                j, g = evaluate(torch.from_numpy(x))
                return j, g.numpy()

            def callback(intermediate_result: Any) -> None:
                if record(torch.from_numpy(np.asarray(intermediate_result.x, dtype="float64"))):
                    hist.converged = True
                    raise StopIteration

            # L-BFGS-B's vector operations run on OpenBLAS, whose threads and torch's OpenMP
            # threads (the cost and its gradient) then fight over the cores: with one BLAS thread
            # the minimisation took a third of the time on two cores (docs/benchmarks.md, the
            # En4DVar table); torch's own threads are left as they are
            with threadpool_limits(limits=1, user_api="blas"):
                res = minimize(
                    fun,
                    v0.numpy(),
                    jac=True,
                    method="L-BFGS-B",
                    callback=callback,
                    options={
                        "maxiter": int(max_iter),
                        "gtol": 0.0,
                        "ftol": 1e-15,
                        "maxcor": opts.history,
                    },
                )
            v = torch.from_numpy(np.asarray(res.x, dtype="float64"))
            hist.message = (
                "relative gradient tolerance reached" if hist.converged else str(res.message)
            )
        else:
            v = v0.clone().requires_grad_(True)
            opt = torch.optim.LBFGS(
                [v],
                lr=1.0,
                max_iter=1,
                # one iteration a step: without max_eval torch allows it max_iter * 5 // 4 = 1
                # evaluation, which leaves the strong-Wolfe line search none of its own, so a
                # first trial step that raises J is never shortened and v stops moving
                max_eval=1 + _LINE_SEARCH_EVALUATIONS,
                history_size=opts.history,
                line_search_fn="strong_wolfe",
                tolerance_grad=0.0,
                tolerance_change=0.0,
            )

            def closure() -> torch.Tensor:
                opt.zero_grad()
                j, g = evaluate(v)
                v.grad = g.clone()
                return torch.tensor(j, dtype=torch.float64)

            stalled = False
            for _ in range(int(max_iter)):
                before = v.detach().clone()
                opt.step(closure)
                if record(v.detach()):
                    hist.converged = True
                    break
                if torch.equal(v.detach(), before):  # the line search found no lower J
                    stalled = True
                    break
            v = v.detach()
            hist.message = (
                "relative gradient tolerance reached"
                if hist.converged
                else "the line search found no decrease of J (stopped)"
                if stalled
                else "iteration cap reached"
            )
    finally:
        bar.close()
    if not hist.converged and len(hist.records) - 1 >= max_iter:
        hist.message = "iteration cap reached"
    return v.detach(), hist
