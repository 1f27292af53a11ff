"""The En4DVar cost ``J(w)`` as a differentiable function of the control vector.

::

    J(w) = ½ wᵀw + ½ Σ_k (y_k − H_k(M_k(x)))ᵀ R_k⁻¹ (y_k − H_k(M_k(x))),
    x = x_b + X_b w                           (no localization; w has N entries)
    x = x_b + Σ_i X_b,i ∘ (L α_i),  C = L Lᵀ  (localization; one α_i per member)

``M_k`` is the model rolled ``k`` steps from the analysis (its earlier input, at t0 − 6 h,
taken from the background), ``H_k`` the (linear, differentiable) observation operators of
slot ``k`` and ``R_k`` diagonal. See the definitions in the documentation (docs/design.md,
section En4DVar).

Variational bias correction (VarBC; Derber & Wu 1998, Dee 2005): a slot may carry a
:class:`SlotBias` — predictors ``P_k`` and prior coefficients ``β_b ± σ_β`` per group of
rows (e.g. per channel). Its coefficients join the control vector, preconditioned as
``β = β_b + σ_β ⊙ u``, and the cost becomes::

    J(w, u) = ½ wᵀw + ½ uᵀu + ½ Σ_k (y_k − H_k(M_k(x)) − P_k β)ᵀ R_k⁻¹ (…)

The flat control vector is ``[w, u_1, u_2, …]``: the state part first, then the ``u`` of
each slot with a bias, in slot order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..models.rollout import model_device, model_dtype
from .localization import Localization

__all__ = ["En4DVarProblem", "ObsSlot", "SlotBias"]


@dataclass(frozen=True)
class SlotBias:
    """The bias model of a slot's observations, for variational bias correction (VarBC).

    The bias of row ``j`` is ``P_j · β_g(j)``: its predictors times the coefficients of its
    group (e.g. its channel). The coefficients are estimated in the minimisation with a
    Gaussian prior of mean ``prior`` and std ``prior_std`` (independent coefficients).

    Parameters
    ----------
    predictors : Tensor (m, P)
        The predictors of each row (e.g. ``1``, ``sec θ − 1``, the background's brightness
        temperature), finite; fixed during the minimisation.
    group : LongTensor (m,)
        The group (row of ``prior``) of each row, in ``0 … G − 1``.
    prior : Tensor (G, P)
        Prior coefficients ``β_b`` (e.g. the previous cycle's, an offline fit, zeros).
    prior_std : Tensor (G, P)
        Their std ``σ_β`` (> 0), in units of the observations per unit of the predictor.

    Raises
    ------
    ValueError
        Shapes that do not match, a group out of range, non-finite values or a
        ``prior_std`` not positive.

    Examples
    --------
    >>> b = SlotBias(torch.tensor([[1.0, 0.0], [1.0, 2.0], [1.0, 1.0]]),
    ...              torch.tensor([0, 0, 1]), prior=torch.tensor([[0.5, 1.0], [0.0, 0.0]]),
    ...              prior_std=torch.ones(2, 2))
    >>> b.n_control, b.correction(b.prior).tolist()
    (4, [0.5, 2.5, 0.0])
    >>> b.coefficients(torch.tensor([0.0, 0.0, 1.0, -1.0])).tolist()
    [[0.5, 1.0], [1.0, -1.0]]
    """

    predictors: torch.Tensor
    group: torch.Tensor
    prior: torch.Tensor
    prior_std: torch.Tensor

    def __post_init__(self) -> None:
        p = torch.as_tensor(self.predictors, dtype=torch.float64)
        g = torch.as_tensor(self.group)
        prior = torch.as_tensor(self.prior, dtype=torch.float64)
        std = torch.as_tensor(self.prior_std, dtype=torch.float64)
        if p.ndim != 2:
            raise ValueError(f"SlotBias: predictors must be (m, P); got {tuple(p.shape)}")
        if prior.ndim != 2 or prior.shape[1] != p.shape[1]:
            raise ValueError(
                f"SlotBias: prior must be (G, P) with P = {p.shape[1]} predictors; got "
                f"{tuple(prior.shape)}"
            )
        if tuple(std.shape) != tuple(prior.shape):
            raise ValueError(
                f"SlotBias: prior_std {tuple(std.shape)} does not match prior {tuple(prior.shape)}"
            )
        if g.shape != (p.shape[0],) or g.is_floating_point() or g.dtype == torch.bool:
            raise ValueError(
                f"SlotBias: group must be an integer tensor of one entry per row "
                f"({p.shape[0]},); got {tuple(g.shape)} {g.dtype}"
            )
        if g.numel() and (int(g.min()) < 0 or int(g.max()) >= prior.shape[0]):
            raise ValueError(
                f"SlotBias: group must be in 0 … {prior.shape[0] - 1} (rows of prior); got "
                f"{int(g.min())} … {int(g.max())}"
            )
        for name, t in (("predictors", p), ("prior", prior), ("prior_std", std)):
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"SlotBias: {name} has NaN or infinite values")
        if not bool((std > 0).all()):
            raise ValueError("SlotBias: prior_std must be positive")
        object.__setattr__(self, "predictors", p)
        object.__setattr__(self, "group", g.long())
        object.__setattr__(self, "prior", prior)
        object.__setattr__(self, "prior_std", std)

    @property
    def n_rows(self) -> int:
        return int(self.predictors.shape[0])

    @property
    def n_control(self) -> int:
        """The number of coefficients, ``G · P`` (entries of ``u`` in the control vector)."""
        return int(self.prior.numel())

    def coefficients(self, u: torch.Tensor) -> torch.Tensor:
        """``β = β_b + σ_β ⊙ u`` (G, P) of the preconditioned control ``u`` (G · P,)."""
        return self.prior + self.prior_std * u.reshape(self.prior.shape)

    def correction(self, beta: torch.Tensor) -> torch.Tensor:
        """The bias ``P_j · β_g(j)`` of each row (m,) for coefficients ``beta`` (G, P)."""
        return (self.predictors * beta[self.group]).sum(-1)

    def subset(self, keep: Any) -> SlotBias:
        """The same bias model for the rows ``keep`` (indices or a bool mask)."""
        k = np.asarray(keep)
        if k.dtype == bool:
            k = np.flatnonzero(k)
        k = torch.as_tensor(k.astype(np.int64).reshape(-1))
        return SlotBias(self.predictors[k], self.group[k], self.prior, self.prior_std)


@dataclass
class ObsSlot:
    """Observations of one slot: ``k`` model steps after the analysis time.

    ``value`` and ``error`` (std) are ``(m,)`` tensors. ``bias`` (optional): the slot's
    VarBC bias model (:class:`SlotBias`, one predictor row per observation); None: no bias
    correction.

    ``operator``, the observation operator, is any object with (the contract; the
    analyses check it up front and name what is missing):

    - ``operator(x)``: states ``(..., C, H, W)`` (the model's channels, latitude
      ascending, longitude in 0..360) to values ``(..., m)``, one per observation in the
      order of ``value``. Leading dims are kept: it is applied to one state and to members
      ``(N, C, H, W)`` alike (``(N, m)``). Its values must be finite at the background and
      at its members (NaN is refused, naming the observations). For En4DVar it must be
      differentiable torch code, since the gradient is taken by autodiff through it (no
      ``detach``, no NumPy: refused, naming the slot); it may be nonlinear.
    - ``subset(keep)``: the operator of the rows ``keep`` (an integer index array), for the
      observations that pass the background check (En4DVar with a ``qc_threshold``; the
      LETKF, for O−A).
    - ``weights()``: an :class:`~xfuxi.observations.interpolation.ObservationWeights` whose
      ``index`` and ``weight`` ``(m, k)`` give the grid values each row reads, where the
      LETKF places the observation for the localization (En4DVar does not use it).

    :class:`~xfuxi.observations.operator.ObservationOperator` (from
    :func:`~xfuxi.observations.operator.build_operator`) has all three.
    """

    step: int
    operator: Any
    value: torch.Tensor
    error: torch.Tensor
    bias: SlotBias | None = None

    def __post_init__(self) -> None:
        value, error = torch.as_tensor(self.value), torch.as_tensor(self.error)
        if value.ndim != 1 or tuple(error.shape) != tuple(value.shape):
            raise ValueError(
                f"ObsSlot (step {self.step}): value and error must be (m,) tensors of one "
                f"length; got shapes {tuple(value.shape)} and {tuple(error.shape)}"
            )
        # a NaN value passed the LETKF's background check (NaN > bound is False) and made
        # the analysis NaN far beyond its localization; a zero error broke its eigensolver
        if not bool(torch.isfinite(value).all()):
            raise ValueError(
                f"ObsSlot (step {self.step}): {int((~torch.isfinite(value)).sum())} value(s) "
                "are NaN or infinite; screen them out first (screen_observations does)"
            )
        if not bool((torch.isfinite(error) & (error > 0)).all()):
            raise ValueError(
                f"ObsSlot (step {self.step}): observation errors must be finite and > 0; got "
                f"{int((~(torch.isfinite(error) & (error > 0))).sum())} that are not"
            )
        if self.bias is not None:
            if not isinstance(self.bias, SlotBias):
                raise TypeError(f"ObsSlot.bias must be a SlotBias or None; got {self.bias!r}")
            if self.bias.n_rows != self.value.shape[0]:
                raise ValueError(
                    f"ObsSlot (step {self.step}): bias has {self.bias.n_rows} predictor rows "
                    f"for {self.value.shape[0]} observations"
                )


class En4DVarProblem:
    """The En4DVar cost as a function of the (flat) control vector.

    Parameters
    ----------
    model : ForecastModel
    previous : Tensor (C, H, W)
        Background at t0 − Δ (the earlier input of the first step from the analysis).
    background : Tensor (C, H, W)
        Background ``x_b`` at t0.
    anomalies : Tensor (N, C, H, W)
        ``X_b = (members − mean) / √(N − 1)``.
    slots : list of ObsSlot
        A slot with a ``bias`` (:class:`SlotBias`) adds its coefficients to the control
        vector (VarBC); the flat control is ``[state part, u of each bias slot]``.
    localization : Localization, optional
    dtype : torch.dtype, optional
        Dtype in which the model runs (the cost is accumulated in float64).
    increment_previous : bool, default False
        Also add the increment to the earlier input ``previous`` when rolling the model from
        an analysis state (the increment changes the state, not its 6-hour tendency).
        False: the earlier input is the background (docs/design.md, section En4DVar).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        previous: torch.Tensor,
        background: torch.Tensor,
        anomalies: torch.Tensor,
        slots: Sequence[ObsSlot],
        *,
        localization: Localization | None = None,
        dtype: torch.dtype | None = None,
        increment_previous: bool = False,
    ) -> None:
        self.model = model
        self.increment_previous = bool(increment_previous)
        self.mdtype = model_dtype(model, dtype)
        self.device = model_device(model)
        self.previous = previous.double()
        self.background = background.double()
        self.anomalies = anomalies.double()
        if self.anomalies.shape[1:] != self.background.shape:
            raise ValueError(
                f"anomalies {tuple(anomalies.shape)} do not match the state "
                f"{tuple(background.shape)}"
            )
        self.slots = list(slots)
        self.n_steps = max((s.step for s in self.slots), default=0)
        n, c, h, w = self.anomalies.shape
        if n < 1:
            raise ValueError("anomalies hold no member: B has no direction to correct")
        if not bool(torch.isfinite(self.anomalies).all()):  # NaN analysis, no error, else
            raise ValueError(
                "anomalies hold NaN or infinite values (members with NaN, or one member: "
                "(x - mean) / sqrt(N - 1) is 0 / 0)"
            )
        self.n_members = n
        self.localization = localization
        if localization is None:
            self.control_shape: tuple[int, ...] = (n,)
        else:
            if localization.spatial.shape[0] != h * w:
                raise ValueError(
                    f"localization has {localization.spatial.shape[0]} points; grid has {h * w}"
                )
            if localization.channel is not None and localization.channel.shape[0] != c:
                raise ValueError(
                    f"channel localization has {localization.channel.shape[0]} channels; "
                    f"state has {c}"
                )
            self._lh = torch.as_tensor(localization.spatial, dtype=torch.float64)
            self._lc = (
                None
                if localization.channel is None
                else torch.as_tensor(localization.channel, dtype=torch.float64)
            )
            self.control_shape = (n, *localization.control_shape)
            self._xb_flat = self.anomalies.reshape(n, c, h * w)
        # the bias coefficients' part of the control: one block per slot with a bias
        self.n_state = int(np.prod(self.control_shape))
        self._bias_blocks: list[tuple[int, int] | None] = []
        start = self.n_state
        for s in self.slots:
            if s.bias is None:
                self._bias_blocks.append(None)
                continue
            if s.bias.n_rows != s.value.shape[0]:
                raise ValueError(
                    f"slot at step {s.step}: bias has {s.bias.n_rows} predictor rows for "
                    f"{s.value.shape[0]} observations"
                )
            self._bias_blocks.append((start, start + s.bias.n_control))
            start += s.bias.n_control
        self.n_bias = start - self.n_state

    @property
    def n_control(self) -> int:
        """Entries of the flat control vector: the state part plus the bias coefficients."""
        return self.n_state + self.n_bias

    @property
    def has_bias(self) -> bool:
        """Whether some slot carries a bias model (VarBC)."""
        return any(b is not None for b in self._bias_blocks)

    def _check_control(self, v: torch.Tensor) -> None:
        if v.ndim != 1 or v.shape[0] != self.n_control:
            raise ValueError(
                f"control vector must be flat with {self.n_control} entries "
                f"({self.n_state} state + {self.n_bias} bias); got {tuple(v.shape)}"
            )

    def bias_coefficients(self, v: torch.Tensor) -> list[torch.Tensor | None]:
        """The coefficients ``β = β_b + σ_β ⊙ u`` (G, P) of each slot (None: no bias)."""
        self._check_control(v)
        return [
            None if s.bias is None or blk is None else s.bias.coefficients(v[blk[0] : blk[1]])
            for s, blk in zip(self.slots, self._bias_blocks)
        ]

    def increment(self, v: torch.Tensor) -> torch.Tensor:
        """Increment ``δx`` (C, H, W) of a flat control vector ``v``.

        ``v`` is the full control (its bias part is not used) or its state part alone.
        """
        if v.ndim != 1 or v.shape[0] not in (self.n_state, self.n_control):
            raise ValueError(
                f"control vector must be flat with {self.n_control} entries (or its "
                f"{self.n_state} state entries); got {tuple(v.shape)}"
            )
        v = v[: self.n_state].reshape(self.control_shape)
        n, c, h, w = self.anomalies.shape
        if self.localization is None:
            return (v.view(n, 1, 1, 1) * self.anomalies).sum(0)
        # δx[c, p] = Σ_n f[n, c, p] X_b[n, c, p] with the localized weights f, one channel
        # at a time: no (N, C, P) temporary, whose writing and reading took most of the time
        # (forward and backward half the time without vertical localization, three fifths
        # with it; docs/benchmarks.md, the En4DVar table)
        xb = self._xb_flat
        if self._lc is None:
            f = v @ self._lh.T  # (N, P)
            rows = [(f * xb[:, k]).sum(0) for k in range(c)]
        else:
            g = v @ self._lh.T  # (N, S, P): the weights of each vertical mode
            rows = [((self._lc[k][:, None] * g).sum(1) * xb[:, k]).sum(0) for k in range(c)]
        return torch.stack(rows).reshape(c, h, w)

    def trajectory(self, x0: torch.Tensor, n_steps: int | None = None) -> list[torch.Tensor]:
        """States at t0, t0 + Δ, ... (``n_steps`` steps; default the last slot's)."""
        n_steps = self.n_steps if n_steps is None else n_steps
        states = [x0]
        prev, cur = self.previous, x0
        if self.increment_previous:
            prev = self.previous + (x0 - self.background)
        for _ in range(n_steps):
            x = torch.stack([prev, cur])[None].to(device=self.device, dtype=self.mdtype)
            nxt = self.model(x)[0].to(device="cpu", dtype=torch.float64)
            prev, cur = cur, nxt
            states.append(nxt)
        return states

    def departures(
        self, states: Sequence[torch.Tensor], v: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Normalised departures ``(y − H M_k x − P_k β) / σ`` per slot.

        ``β`` is the slot's coefficients at the control ``v`` (None: the prior ``β_b``);
        slots without a bias have ``(y − H M_k x) / σ``.
        """
        betas = (
            [None if s.bias is None else s.bias.prior for s in self.slots]
            if v is None
            else self.bias_coefficients(v)
        )
        out = []
        for s, beta in zip(self.slots, betas):
            d = s.value - s.operator(states[s.step])
            if s.bias is not None:
                d = d - s.bias.correction(beta)
            out.append(d / s.error)
        return out

    def cost(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``J, Jb, [Jo_k]`` at the flat control ``v`` (differentiable).

        ``Jb = ½ vᵀv`` holds the state's ``½ wᵀw`` and the bias coefficients' ``½ uᵀu``.
        """
        self._check_control(v)
        jb = 0.5 * (v * v).sum()
        states = self.trajectory(self.background + self.increment(v))
        jo = [0.5 * (d * d).sum() for d in self.departures(states, v)]
        total = jb + sum(jo, torch.zeros((), dtype=torch.float64))
        return total, jb, jo

    def check_differentiable(self) -> None:
        """Refuse a slot whose observations have no autograd path to the analysis state.

        A model or observation operator that detaches or computes outside torch (NumPy)
        gives its observations a zero gradient: the minimisation would ignore them and
        return the background as converged. One run of the model through the window from
        the background (no backward pass); the graph is searched, so a true zero gradient
        (a perfect background) is not refused.

        Raises
        ------
        ValueError
            Naming the slot and whether the model or its operator breaks the path.
        """
        with torch.enable_grad():
            leaf = self.background.detach().clone().requires_grad_(True)
            x0 = leaf + 0.0  # a node of the graph to look for
            states = self.trajectory(x0)
            for s in self.slots:
                if int(s.value.shape[0]) == 0:
                    continue
                hx = s.operator(states[s.step])
                if isinstance(hx, torch.Tensor) and _reaches(hx, x0):
                    continue
                if s.step > 0 and not _reaches(states[s.step], x0):
                    net = getattr(self.model, "net", self.model)
                    name = getattr(self.model, "name", None) or type(self.model).__name__
                    culprit = (
                        f"the model {name!r} (module {type(net).__name__}) is not "
                        f"differentiable: its forecast {s.step} step(s) after the analysis "
                        "has no autograd path to the analysis state (does the module detach, "
                        "or compute in NumPy?)"
                    )
                else:
                    culprit = (
                        f"its observation operator ({type(s.operator).__name__}) is not "
                        "differentiable: its output has no autograd path to the state it "
                        "was given (does it detach, or compute in NumPy?)"
                    )
                raise ValueError(
                    f"the {int(s.value.shape[0])} observation(s) of the slot at step {s.step} "
                    f"cannot constrain the analysis: {culprit}. 4DVar takes the gradient of "
                    "the cost by autodiff through the model and the observation operators, "
                    "so both must be differentiable torch code"
                )


def _reaches(t: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether ``target`` (a non-leaf tensor) is on ``t``'s autograd graph."""
    goal, start = target.grad_fn, t.grad_fn
    if goal is None or start is None:
        return False
    # the nodes are kept in ``seen``: their Python objects stay alive, so ids are not reused
    seen: dict[int, Any] = {id(start): start}
    stack = [start]
    while stack:
        node = stack.pop()
        if node is goal:
            return True
        for nxt, _ in node.next_functions:
            if nxt is not None and id(nxt) not in seen:
                seen[id(nxt)] = nxt
                stack.append(nxt)
    return False
