"""FuXi-ENS: a learned (VAE) perturbation module and the ensemble rollout built on it.

FuXi-ENS (Zhong et al., 2024, arXiv:2405.05925) learns its perturbations instead of adding
random noise. A :class:`PerturbationVAE` sits in front of *any* :class:`ForecastModel`:

* a small convolutional **encoder** turns the normalised input pair ``(t − Δ, t)`` into
  latent features on a coarse grid (``downsample`` times coarser than the model grid);
* the **prior** network maps those features to a diagonal Gaussian ``(μ, log σ)`` over a
  latent perturbation ``z`` (``latent`` channels on the coarse grid), so the distribution
  of perturbations depends on the flow;
* the **posterior** network (training only) also sees the next state ``t + Δ``;
* the **decoder** maps a sample ``z`` (with the features and the current state) to a
  perturbation field in normalised units, which is added to the current state before each
  model step, the initial step included.

A sample therefore perturbs the initial condition and every forecast step (initial-condition
and model-tendency errors; see the definitions in the documentation, docs/design.md). The
noise ``ε`` that makes a member is drawn outside this module (``z = μ + σ ε``), so the caller
controls reproducibility: the ensemble functions of :mod:`xfuxi.forecasting.ensemble` give
each member its own generator, so that chunking does not change a member's noise (what it
may change, the rounding of batched kernels, is in the Notes of
:func:`xfuxi.forecasting.ensemble.ensemble`).

Checkpoints are a directory with ``config.json`` (construction config, channels and
normalization statistics), ``weights.safetensors`` (no pickle) and ``manifest.json`` (the
sha256 of both), written and read by the one checkpoint store,
:mod:`xfuxi.models.checkpoint`.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from ..config import is_integer
from ..data.channels import Channel, channel_name, parse_channel_name
from .base import ForecastModel, NormStats, isolated_rng
from .checkpoint import (
    CONFIG,
    build_for_weights,
    config_entries,
    fill_doc,
    json_bytes,
    json_of_format,
    load_weights,
    open_checkpoint,
    safetensors_bytes,
    shipped_names,
    warn_unknown_entries,
    write_checkpoint,
)
from .rollout import advance_pair, perturb_current

__all__ = [
    "PERTURBATION_FORMAT",
    "PERTURBATION_WEIGHTS",
    "PerturbationVAE",
    "ensemble_rollout",
    "load_perturbation",
    "member_generators",
    "perturbation_files",
    "perturbation_from_files",
    "save_perturbation",
    "shipped_perturbations",
]

log = logging.getLogger(__name__)

#: format tag written into every perturbation checkpoint's config.json
PERTURBATION_FORMAT = "xfuxi-perturbation-vae/1"

#: the weights file of a perturbation checkpoint
PERTURBATION_WEIGHTS = "weights.safetensors"
#: the entries of a perturbation config.json that this xfuxi reads ("weights_sha256": the
#: record of modules converted from before manifests, see scripts/convert_checkpoints.py)
PERTURBATION_ENTRIES = frozenset({
    "format", "name", "channels", "grid_shape", "stats", "hidden", "latent", "downsample",
    "init_scale", "centered", "initial_gain", "early_gain", "early_steps", "model_gain",
    "metadata", "weights_sha256",
})  # fmt: skip

_LOG_SIGMA_RANGE = (-8.0, 4.0)


class _PeriodicConv(nn.Module):
    """3×3 (or k×k) convolution, periodic in longitude and edge-replicated in latitude."""

    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv2d(cin, cout, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_periodic_pad(x, self.pad))


def _periodic_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """Pad ``p`` cells of ``(B, C, H, W)``: periodic in longitude, edge-replicated in latitude.

    The result is written once into a channels-last buffer (the interior, the wrapped
    longitude columns, then the replicated latitude rows), the layout of the module's
    convolutions, so oneDNN needs no reorder of the padded input. On a channels-last input
    of 48 members × 24 channels this takes 0.8 ms against 2.7 ms for ``F.pad`` (whose
    result is NCHW) and 1.2 ms for ``cat`` of permuted copies (two threads). The values
    are those of ``F.pad`` (circular, then replicate)."""
    if not p:
        return x
    b, c, h, w = x.shape
    if p > w:
        raise ValueError(f"periodic pad of {p} needs at least {p} longitudes; got {w}")
    out = torch.empty(
        (b, c, h + 2 * p, w + 2 * p), dtype=x.dtype, device=x.device,
        memory_format=torch.channels_last,
    )  # fmt: skip
    mid = out[:, :, p : h + p]
    mid[..., p : w + p].copy_(x)
    mid[..., :p].copy_(x[..., w - p :])
    mid[..., w + p :].copy_(x[..., :p])
    out[:, :, :p].copy_(mid[:, :, :1].expand(-1, -1, p, -1))
    out[:, :, h + p :].copy_(mid[:, :, h - 1 :].expand(-1, -1, p, -1))
    return out


def _periodic_upsample(x: torch.Tensor, size: tuple[int, int], pad: int = 0) -> torch.Tensor:
    """Bilinear upsampling to ``size`` that wraps around in longitude (last axis).

    Bilinear interpolation is separable: ``A @ x @ Bᵀ`` with the latitude matrix ``A`` and
    the periodic longitude matrix ``B`` (:func:`_upsample_matrices`), which is the same
    as interpolating (to rounding) and about 20x faster on CPU than interpolating a
    wrapped copy and cropping it.

    With ``pad > 0`` the result is also padded as by :func:`_periodic_pad` (the pad only
    repeats rows of ``A`` and ``B``, so it is folded into them) and comes out channels-last,
    computed as ``A_p @ (x @ B_pᵀ)`` with the channels innermost: no separate pad, and no
    NCHW → NHWC copy of the fine field before the next convolution (at 96 × 24 channels
    on the T21 grid that copy alone took 9 ms)."""
    h, w = x.shape[-2:]
    fine_h, fine_w = int(size[0]), int(size[1])
    if not pad:
        a, b = _upsample_matrices(h, w, fine_h, fine_w)
        return a.to(x) @ x @ b.to(x).T
    if pad > fine_w:
        raise ValueError(f"periodic pad of {pad} needs at least {pad} longitudes; got {fine_w}")
    a, b = _upsample_matrices(h, w, fine_h, fine_w)
    rows = torch.arange(-pad, fine_h + pad).clamp(0, fine_h - 1)  # replicated at the poles
    cols = torch.arange(-pad, fine_w + pad) % fine_w  # wrapped in longitude
    a, b = a[rows].to(x), b[cols].to(x)
    n, c = x.shape[:2]
    t = (x @ b.T).permute(0, 2, 3, 1).reshape(n, h, -1)  # (n, h, W' c): channels innermost
    out = (a @ t).view(n, a.shape[0], b.shape[0], c)
    return out.permute(0, 3, 1, 2)


def _interpolate_periodic(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Reference bilinear upsampling, periodic in longitude: interpolate a wrapped copy."""
    h, w = size
    cw = x.shape[-1]
    if cw == 1:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    pad = -(-w // cw)  # fine cells per coarse cell, rounded up
    wide = F.pad(x, (1, 1, 0, 0), mode="circular")
    up = F.interpolate(wide, size=(h, w + 2 * pad), mode="bilinear", align_corners=False)
    return up[..., pad : pad + w]


@functools.lru_cache(maxsize=32)
def _upsample_matrices(
    h: int, w: int, fine_h: int, fine_w: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, B)``, ``(fine_h, h)`` and ``(fine_w, w)`` in float64, with
    ``_interpolate_periodic(x) = A @ x @ Bᵀ``: its responses to unit inputs."""
    size = (fine_h, fine_w)
    rows = torch.eye(h, dtype=torch.float64).view(1, h, h, 1).expand(1, h, h, w).contiguous()
    cols = torch.eye(w, dtype=torch.float64).view(1, w, 1, w).expand(1, w, h, w).contiguous()
    a = _interpolate_periodic(rows, size)[0, :, :, 0].T.contiguous()
    b = _interpolate_periodic(cols, size)[0, :, 0, :].T.contiguous()
    return a, b


def _initial_gain(
    gain: Sequence[float], n_channels: int, label: str = "initial_gain"
) -> np.ndarray:
    """``gain`` as a float array, checked: one positive factor per channel."""
    g = np.asarray(gain, dtype=float)
    if g.shape != (n_channels,) or not np.all(g > 0):
        raise ValueError(f"{label} must be {n_channels} positive numbers; got {gain}")
    return g


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(_PeriodicConv(cin, cout), nn.GELU(), _PeriodicConv(cout, cout), nn.GELU())


def _brief_names(names: Sequence[str], limit: int = 6) -> str:
    """At most ``limit`` names, then how many more."""
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


class PerturbationVAE(nn.Module):
    """The FuXi-ENS perturbation module: a conditional VAE over flow-dependent perturbations.

    Parameters
    ----------
    channels : sequence of (variable, level)
        The channels of the forecast model it perturbs (same order).
    grid_shape : (int, int)
        ``(H, W)`` of the model grid (latitude, longitude).
    stats : NormStats, optional
        Normalization statistics (physical ↔ normalised); identity if omitted. Take them
        from the forecast model: ``stats=model.stats``.
    hidden : int, default 32
        Width of the convolutional layers.
    latent : int, default 8
        Latent channels per coarse grid point.
    downsample : int, default 4
        Coarsening factor of the latent grid in each direction.
    init_scale : float, default 0.05
        Initial per-channel scale of the decoded perturbation, in units of the channel's
        std (the scales are learned).
    centered : bool, default True
        Decode antithetically, ``δ = ½ [decode(μ + σε) − decode(μ − σε)]``: ``δ`` is odd in
        ``ε``, so its mean over the latent distribution is exactly zero and the perturbation
        carries uncertainty only, never a systematic correction that would accumulate over
        a long rollout (a drift). ``False`` decodes ``z = μ + σε`` directly.
    initial_gain : sequence of float, optional
        Per-channel factor on the perturbation of the *initial* state only (the first of the
        rollout's perturbations; default 1): initial-condition and model-tendency
        uncertainty calibrated apart (see :func:`xfuxi.training.gains.tune_spread_growth`).
    early_gain : sequence of float, optional
        Per-channel factor on the perturbations of steps ``1 … early_steps`` (default 1): more
        model-tendency uncertainty in the first days, where a forecast model less active
        than the truth leaves the ensemble short of spread.
    early_steps : int, default 0
        How many steps after the initial one ``early_gain`` applies to.
    model_gain : dict of str to sequence of float, optional
        Per forecast-model name, per-channel factors on the perturbations before the steps
        that model makes (on top of the other gains). A cascade's later stage damps eddies
        more than the stage the module was trained with; its perturbations need scaling
        (see :func:`xfuxi.training.gains.tune_model_gain`). A model wrapped by
        :func:`xfuxi.with_spectral_filter` or :func:`xfuxi.with_single_time_input` (its
        name suffixed ``+T21``, ``+1t``) takes the factors of the model it wraps unless it
        has its own.
    name : str, default "perturbation"
        Name recorded in forecast provenance.

    Notes
    -----
    ``perturb(x, eps)`` returns ``δ`` in physical units for a physical input pair ``x``
    of shape ``(B, 2, C, H, W)`` and standard-normal noise ``eps`` of shape
    ``(B, *latent_shape)``: ``z = μ_prior + σ_prior ε``, ``δ = decode(z) · std`` (antithetic
    when ``centered``, see :meth:`sample`). During training, :meth:`posterior` gives
    ``(μ, log σ)`` from the pair and the next state and
    :func:`xfuxi.training.losses.gaussian_kl` compares it with the prior (FuXi-ENS; see the
    definitions in the documentation, docs/design.md).

    Examples
    --------
    >>> import torch
    >>> vae = PerturbationVAE([("temperature", 500.0), ("geopotential", 500.0)], (8, 16),
    ...                       hidden=4, latent=2)
    >>> vae.latent_shape
    (2, 2, 4)
    >>> x = torch.randn(3, 2, 2, 8, 16)
    >>> vae.perturb(x, torch.randn(3, *vae.latent_shape)).shape
    torch.Size([3, 2, 8, 16])
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        grid_shape: tuple[int, int],
        *,
        stats: NormStats | None = None,
        hidden: int = 32,
        latent: int = 8,
        downsample: int = 4,
        init_scale: float = 0.05,
        centered: bool = True,
        initial_gain: Sequence[float] | None = None,
        early_gain: Sequence[float] | None = None,
        early_steps: int = 0,
        model_gain: dict[str, Sequence[float]] | None = None,
        name: str = "perturbation",
    ) -> None:
        super().__init__()
        self.channels: tuple[Channel, ...] = tuple(
            (str(v), None if lv is None else float(lv)) for v, lv in channels
        )
        c = len(self.channels)
        if c == 0:
            raise ValueError("PerturbationVAE needs at least one channel")
        h, w = (int(s) for s in grid_shape)
        if h < 1 or w < 1:
            raise ValueError(f"grid_shape must be positive; got {grid_shape}")
        for label, value in (("hidden", hidden), ("latent", latent), ("downsample", downsample)):
            if int(value) < 1:
                raise ValueError(f"{label} must be a positive integer; got {value}")
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive; got {init_scale}")
        if not isinstance(centered, (bool, np.bool_)):  # bool("false") is True
            raise TypeError(f"centered must be true or false; got {centered!r}")
        self.grid_shape = (h, w)
        self.coarse_shape = (max(1, h // downsample), max(1, w // downsample))
        self.name = name
        gain = _initial_gain(np.ones(c) if initial_gain is None else initial_gain, c)
        early = _initial_gain(np.ones(c) if early_gain is None else early_gain, c, "early_gain")
        if int(early_steps) < 0:
            raise ValueError(f"early_steps must be >= 0; got {early_steps}")
        self.config: dict[str, Any] = {
            "hidden": int(hidden),
            "latent": int(latent),
            "downsample": int(downsample),
            "init_scale": float(init_scale),
            "centered": bool(centered),
            "initial_gain": gain.tolist(),
            "early_gain": early.tolist(),
            "early_steps": int(early_steps),
            "model_gain": {
                str(k): _initial_gain(v, c, f"model_gain[{k!r}]").tolist()
                for k, v in (model_gain or {}).items()
            },
        }
        self.stats = stats if stats is not None else NormStats.identity(c)
        for key in ("mean", "std"):
            arr = np.asarray(getattr(self.stats, key), dtype="float32")
            if arr.shape != (c,):
                raise ValueError(f"stats.{key} has shape {arr.shape}; expected ({c},)")
            self.register_buffer(
                f"_{key}", torch.from_numpy(arr).view(1, -1, 1, 1), persistent=False
            )
        for key, value in (("_initial_gain", gain), ("_early_gain", early)):
            self.register_buffer(
                key, torch.tensor(value, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
            )
        f, z = int(hidden), int(latent)
        self.encoder_fine = _block(2 * c, f)
        self.encoder_coarse = _block(f, f)
        self.prior_head = nn.Sequential(_PeriodicConv(f, f), nn.GELU(), _PeriodicConv(f, 2 * z, 1))
        self.posterior_fine = _block(2 * c, f)
        self.posterior_head = nn.Sequential(
            _PeriodicConv(2 * f, f), nn.GELU(), _PeriodicConv(f, 2 * z, 1)
        )
        self.decoder_coarse = _block(z + f, f)
        self.decoder_skip = _PeriodicConv(c, f)
        self.decoder_out = nn.Sequential(_PeriodicConv(2 * f, f), nn.GELU(), _PeriodicConv(f, c, 1))
        self.log_scale = nn.Parameter(torch.full((1, c, 1, 1), float(np.log(init_scale))))
        self._channels_last()
        if self.log_scale.device.type != "meta":  # a shape-only module has no values to scale
            self._unit_init()

    @torch.no_grad()
    def _channels_last(self) -> None:
        """Keep the convolution weights channels-last (NHWC): oneDNN's convolutions then run
        in NHWC, about 1.3x faster for this module on CPU at 48 members (and 1.1x for one)
        than in NCHW. Values are unchanged; ``.to``, ``deepcopy`` and ``load_state_dict``
        preserve the layout, and checkpoints are written contiguous."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.data = module.weight.data.contiguous(
                    memory_format=torch.channels_last
                )

    @torch.no_grad()
    def _unit_init(self) -> None:
        """Rescale the last decoder layer so that, on standard-normal normalised states, the
        decoded field has unit std before ``exp(log_scale)``: ``init_scale`` then is the
        initial perturbation std in units of each channel's std."""
        g = torch.Generator().manual_seed(0)
        xn = torch.randn(4, 2, self.n_channels, *self.grid_shape, generator=g)
        feats = self.features(xn)
        mu, log_sigma = self.prior(feats)
        eps = torch.randn(mu.shape, generator=g)
        raw = self.sample(mu, log_sigma, eps, feats, xn[:, 1]) / self.log_scale.exp()
        std = raw.std(dim=(0, 2, 3)).clamp_min(1e-6)
        last = self.decoder_out[-1].conv
        last.weight.div_(std.view(-1, 1, 1, 1))
        last.bias.div_(std)

    # -- shapes and units ---------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """Shape of one member's latent noise ``(latent, h, w)``."""
        return (self.config["latent"], *self.coarse_shape)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Physical → normalised (channel axis third from the end)."""
        return (x - self._mean) / self._std

    def check_model(self, model: ForecastModel, *, hint: str = "") -> None:
        """Raise ``ValueError`` unless ``model`` has the same channels and grid.

        A channel mismatch is told by its differences (at most six names each way, then how
        many more), not as two whole lists, followed by ``hint`` (what to do instead)."""
        if tuple(model.channels) != self.channels:
            mine = [channel_name(c) for c in self.channels]
            theirs = [channel_name(c) for c in model.channels]
            only_module = [c for c in mine if c not in theirs]
            only_model = [c for c in theirs if c not in mine]
            found = [
                f"{len(names)} channel(s) of the {a} not in the {b} ({_brief_names(names)})"
                for names, a, b in (
                    (only_model, "model", "module"),
                    (only_module, "module", "model"),
                )
                if names
            ] or ["the same channels in another order"]
            raise ValueError(
                f"perturbation module {self.name!r} was built for channels other than model "
                f"{model.name!r}'s ({len(mine)} channels against {len(theirs)}): "
                + "; ".join(found)
                + (f"; {hint}" if hint else "")
            )
        if tuple(model.grid_shape) != self.grid_shape:
            raise ValueError(
                f"perturbation module {self.name!r} was built for grid {self.grid_shape}; "
                f"model {model.name!r} has {model.grid_shape}"
            )

    # -- networks -----------------------------------------------------------------------------
    def _check_pair(self, x: torch.Tensor) -> None:
        c, (h, w) = self.n_channels, self.grid_shape
        if x.ndim != 5 or x.shape[1] != 2 or tuple(x.shape[2:]) != (c, h, w):
            raise ValueError(f"expected input pair (B, 2, {c}, {h}, {w}); got {tuple(x.shape)}")

    def features(self, xn: torch.Tensor) -> torch.Tensor:
        """Latent features ``(B, hidden, h, w)`` of a normalised input pair ``(B, 2, C, H, W)``."""
        fine = self.encoder_fine(xn.flatten(1, 2))
        return self.encoder_coarse(F.adaptive_avg_pool2d(fine, self.coarse_shape))

    @staticmethod
    def _split(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_sigma = out.chunk(2, dim=1)
        return mu, log_sigma.clamp(*_LOG_SIGMA_RANGE)

    def prior(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior ``(μ, log σ)`` over the latent perturbation, from the current features."""
        return self._split(self.prior_head(feats))

    def posterior(
        self, feats: torch.Tensor, curr_n: torch.Tensor, next_n: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(μ, log σ)`` from the features, the current and the next normalised state."""
        fine = self.posterior_fine(torch.cat([next_n, next_n - curr_n], dim=1))
        coarse = F.adaptive_avg_pool2d(fine, self.coarse_shape)
        return self._split(self.posterior_head(torch.cat([feats, coarse], dim=1)))

    def decode(self, z: torch.Tensor, feats: torch.Tensor, curr_n: torch.Tensor) -> torch.Tensor:
        """Perturbation ``(B, C, H, W)`` in normalised units from a latent sample ``z``."""
        coarse = self.decoder_coarse(torch.cat([z, feats], dim=1))
        up = _periodic_upsample(coarse, self.grid_shape)
        out = self.decoder_out(torch.cat([up, self.decoder_skip(curr_n)], dim=1))
        return out * self.log_scale.exp()

    def sample(
        self,
        mu: torch.Tensor,
        log_sigma: torch.Tensor,
        eps: torch.Tensor,
        feats: torch.Tensor,
        curr_n: torch.Tensor,
    ) -> torch.Tensor:
        """Normalised perturbation ``(B, C, H, W)`` for latent ``(μ, log σ)`` and noise ``ε``.

        ``decode(μ + σε)``, or with ``centered`` the antithetic
        ``½ [decode(μ + σε) − decode(μ − σε)]`` (zero mean over ``ε``).
        """
        sigma = log_sigma.exp()
        if not self.config["centered"]:
            return self.decode(mu + sigma * eps, feats, curr_n)
        b = mu.shape[0]
        z = torch.cat([mu + sigma * eps, mu - sigma * eps])
        coarse = self.decoder_coarse(torch.cat([z, torch.cat([feats, feats])], dim=1))
        # decoder_out's first convolution is linear in its concatenated input: the skip half,
        # the same for both signs, is computed once (exactly decode(z±) otherwise)
        first = self.decoder_out[0]
        up = _periodic_upsample(coarse, self.grid_shape, pad=first.pad)
        w, f = first.conv.weight, up.shape[1]
        skip = _periodic_pad(self.decoder_skip(curr_n), first.pad)
        hidden = F.conv2d(up, w[:, :f])
        # added in place, broadcast over the two signs (a convolution's backward does not
        # need its output, so autograd allows it)
        hidden.unflatten(0, (2, b)).add_(F.conv2d(skip, w[:, f:], first.conv.bias))
        out = self.decoder_out[2](self.decoder_out[1](hidden))
        return (0.5 * self.log_scale.exp()) * (out[:b] - out[b:])

    def set_initial_gain(self, gain: Sequence[float]) -> None:
        """Replace the per-channel factors on the initial perturbation (in place)."""
        g = _initial_gain(gain, self.n_channels)
        self.config["initial_gain"] = g.tolist()
        self._initial_gain.copy_(
            torch.as_tensor(g, dtype=self._initial_gain.dtype).view(1, -1, 1, 1)
        )

    def set_early_gain(self, gain: Sequence[float], steps: int) -> None:
        """Replace the per-channel factors on the perturbations of steps ``1 … steps``."""
        g = _initial_gain(gain, self.n_channels, "early_gain")
        if int(steps) < 0:
            raise ValueError(f"early_steps must be >= 0; got {steps}")
        self.config["early_gain"] = g.tolist()
        self.config["early_steps"] = int(steps)
        self._early_gain.copy_(torch.as_tensor(g, dtype=self._early_gain.dtype).view(1, -1, 1, 1))

    def set_model_gain(self, model: str, gain: Sequence[float] | None) -> None:
        """Set (``None``: remove) the per-channel factors before the steps ``model`` makes."""
        if gain is None:
            self.config["model_gain"].pop(str(model), None)
        else:
            self.config["model_gain"][str(model)] = _initial_gain(
                gain, self.n_channels, f"model_gain[{str(model)!r}]"
            ).tolist()

    def perturb(
        self,
        x: torch.Tensor,
        eps: torch.Tensor,
        *,
        initial: bool = False,
        step: int | None = None,
        model: str | None = None,
    ) -> torch.Tensor:
        """Perturbation in physical units for input pair ``x`` and standard-normal ``eps``.

        Parameters
        ----------
        x : Tensor (B, 2, C, H, W)
            Physical input pair ``(t − Δ, t)``.
        eps : Tensor (B, latent, h, w)
            Standard-normal noise (one draw per member); ``z = μ + σ ε`` under the prior.
        initial : bool, default False
            The perturbation of the initial state: multiplied by ``initial_gain``.
        step : int, optional
            The rollout step the perturbation is for (0: the initial state, as
            ``initial=True``; ``1 … early_steps``: multiplied by ``early_gain``).
        model : str, optional
            Name of the forecast model that makes the next step: multiplied by its
            ``model_gain``, if the module has one for it.

        Returns
        -------
        Tensor (B, C, H, W)
            The perturbation to add to the state at ``t``.
        """
        self._check_pair(x)
        if tuple(eps.shape) != (x.shape[0], *self.latent_shape):
            raise ValueError(
                f"expected noise ({x.shape[0]}, {', '.join(map(str, self.latent_shape))}); "
                f"got {tuple(eps.shape)}"
            )
        xn = self.normalize(x)
        feats = self.features(xn)
        mu, log_sigma = self.prior(feats)
        out = self.sample(mu, log_sigma, eps, feats, xn[:, 1]) * self._std
        if initial or step == 0:
            out = out * self._initial_gain
        elif step is not None and 1 <= step <= self.config["early_steps"]:
            out = out * self._early_gain
        per_model = self.model_gain_for(model)
        if per_model is not None:
            out = out * torch.as_tensor(per_model, dtype=out.dtype, device=out.device).view(
                1, -1, 1, 1
            )
        return out

    forward = perturb

    def model_gain_for(self, model: str | None) -> list[float] | None:
        """The ``model_gain`` factors for the forecast model named ``model``, or None.

        Its own, else those of the model it wraps: the name without the suffixes that
        :func:`xfuxi.with_spectral_filter` and :func:`xfuxi.with_single_time_input` add
        (a filtered cascade's stages lost their factors: the medium stage's spread fell
        2.6 times).

        >>> vae = PerturbationVAE([("x", None)], (4, 8), model_gain={"fuxi-m": [2.0]})
        >>> vae.model_gain_for("fuxi-m+T21"), vae.model_gain_for("other")
        ([2.0], None)
        """
        if model is None:
            return None
        key = self.model_gain_key(model)
        gains = self.config["model_gain"]
        return list(gains[key]) if key in gains else None

    def model_gain_key(self, model: str) -> str:
        """The name under which the factors for ``model`` are kept: its own, or that of the
        model it wraps when only that one has factors (:meth:`model_gain_for`); ``model``
        when neither has. Tuning a wrapped stage changes the factors it uses there.

        >>> vae = PerturbationVAE([("x", None)], (4, 8), model_gain={"fuxi-m": [2.0]})
        >>> vae.model_gain_key("fuxi-m+T21"), vae.model_gain_key("other+T21")
        ('fuxi-m', 'other+T21')
        """
        gains = self.config["model_gain"]
        name = str(model)
        while name not in gains:
            base = re.sub(r"\+(T\d+|1t)$", "", name)
            if base == name:
                return str(model)
            name = base
        return name

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, channels={self.n_channels}, grid={self.grid_shape}, "
            f"latent={self.latent_shape}"
        )


# -----------------------------------------------------------------------------------------------
# checkpoints
# -----------------------------------------------------------------------------------------------


def perturbation_files(
    vae: PerturbationVAE, *, metadata: dict[str, Any] | None = None
) -> dict[str, bytes]:
    """The files of a perturbation checkpoint (``config.json``, ``weights.safetensors``)."""
    if not isinstance(vae, PerturbationVAE):
        raise TypeError(f"expected a PerturbationVAE; got {type(vae).__name__}")
    config = {
        "format": PERTURBATION_FORMAT,
        "name": vae.name,
        "channels": [channel_name(c) for c in vae.channels],
        "grid_shape": list(vae.grid_shape),
        "stats": vae.stats.to_dict(),
        **vae.config,
        # merged over the module's own (a loaded module re-saved lost its base model, which
        # resuming its training checks), as save_model merges a model's
        "metadata": {**dict(getattr(vae, "metadata", None) or {}), **dict(metadata or {})},
    }
    weights = safetensors_bytes(vae.state_dict())
    return {PERTURBATION_WEIGHTS: weights, CONFIG: json_bytes(config)}


@fill_doc
def save_perturbation(
    vae: PerturbationVAE,
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Save a perturbation module as a checkpoint directory (no pickle).

    The directory holds ``config.json``, ``weights.safetensors`` and ``manifest.json`` (the
    sha256 of both, checked on every load), written as one unit
    (:func:`xfuxi.models.checkpoint.write_checkpoint`).

    Parameters
    ----------
    vae : PerturbationVAE
    path : path-like
        The directory: new, empty, or (with ``overwrite``) an earlier perturbation checkpoint.
    metadata : dict, optional
        JSON-serialisable extra information (training settings, base model, scores),
        merged over the module's own (that of the checkpoint it was loaded from).
    overwrite : bool, default False
        Replace an earlier xfuxi perturbation checkpoint at ``path``.

    {{save_returns}}

    Examples
    --------
    >>> import tempfile
    >>> vae = PerturbationVAE([("temperature", 500.0)], (8, 16), hidden=4, latent=2)
    >>> path = save_perturbation(vae, tempfile.mkdtemp(), metadata={"note": "untrained"})
    >>> sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    ['config.json', 'manifest.json', 'weights.safetensors']
    """
    files = perturbation_files(vae, metadata=metadata)
    return write_checkpoint(path, files, kind="perturbation", overwrite=overwrite)


def perturbation_from_files(files: dict[str, bytes], path: Path) -> PerturbationVAE:
    """Rebuild a module from the verified files of its checkpoint at ``path`` (CPU, eval)."""

    config = json_of_format(
        files[CONFIG], path / CONFIG, fmt=PERTURBATION_FORMAT, what="a perturbation checkpoint",
        where=path,
    )  # fmt: skip
    warn_unknown_entries(config, PERTURBATION_ENTRIES, path / CONFIG)
    with config_entries(path / CONFIG, errors=(TypeError, ValueError)):
        channels = [parse_channel_name(c) for c in config["channels"]]
        grid_shape = tuple(config["grid_shape"])
        stats = NormStats.from_dict(config["stats"], channels=config["channels"])
        for key in ("hidden", "latent", "downsample", "early_steps"):
            value = config.get(key, 0)
            if not is_integer(value):  # 24.5, "24"
                raise TypeError(f"entry {key!r} must be an integer; got {value!r}")
        kwargs = {
            "stats": stats,
            "hidden": config["hidden"],
            "latent": config["latent"],
            "downsample": config["downsample"],
            "init_scale": config["init_scale"],
            # modules saved before the option existed decoded directly
            "centered": config.get("centered", False),
            "initial_gain": config.get("initial_gain"),
            "early_gain": config.get("early_gain"),
            "early_steps": config.get("early_steps", 0),
            "model_gain": config.get("model_gain"),
            "name": config.get("name", path.name),
        }
        if not isinstance(kwargs["centered"], bool):  # bool("false") is True
            raise TypeError(f"entry 'centered' must be true or false; got {kwargs['centered']!r}")
    with isolated_rng():  # the caller's stream is not consumed
        # built only once its shapes are known to be the weights file's (an absurd "hidden"
        # is refused before anything is allocated)
        vae = build_for_weights(
            lambda: PerturbationVAE(channels, grid_shape, **kwargs),
            files[PERTURBATION_WEIGHTS],
            path / PERTURBATION_WEIGHTS,
            what="the perturbation module",
            config=path / CONFIG,
        )
    load_weights(vae, files, path, PERTURBATION_WEIGHTS)
    vae.metadata = config.get("metadata", {})  # type: ignore[attr-defined]
    return vae.eval()


def load_perturbation(
    name_or_path: str | os.PathLike[str], *, device: str | torch.device | None = None
) -> PerturbationVAE:
    """Load a perturbation module by shipped name (``"fuxi-ens-hs-t21"``) or directory.

    Parameters
    ----------
    name_or_path : str or path-like
        A directory written by :func:`save_perturbation` (or a perturbation training
        checkpoint), or the name of a shipped module (its files checked against the sha256
        in the registry); either is checked against its manifest.
    device : str or torch.device, optional

    Returns
    -------
    PerturbationVAE
        In eval mode.

    Raises
    ------
    FileNotFoundError
        Neither a directory nor a shipped name.
    xfuxi.models.checkpoint.ChecksumError
        A file does not match the sha256 recorded for it.
    xfuxi.models.checkpoint.CheckpointError
        A ValueError: no manifest, a missing, truncated or corrupt file, invalid JSON, or
        not a perturbation checkpoint (the path is named).

    Examples
    --------
    >>> import tempfile
    >>> vae = PerturbationVAE([("temperature", 500.0)], (8, 16), hidden=4, latent=2)
    >>> back = load_perturbation(save_perturbation(vae, tempfile.mkdtemp()))
    >>> back.latent_shape == vae.latent_shape, back.training
    (True, False)

    The shipped module: ``load_perturbation("fuxi-ens-hs-t21")``.
    """
    path, files = open_checkpoint(
        name_or_path, kind="perturbation", require=(CONFIG, PERTURBATION_WEIGHTS)
    )
    return perturbation_from_files(files, path).to(device or "cpu")


def shipped_perturbations() -> list[str]:
    """Names of the perturbation modules shipped with xfuxi (in the model registry).

    Examples
    --------
    >>> "fuxi-ens-hs-t21" in shipped_perturbations()
    True
    """
    return shipped_names("perturbation")


# -----------------------------------------------------------------------------------------------
# ensemble rollout (tensors)
# -----------------------------------------------------------------------------------------------


def member_generators(seed: int, keys: Sequence[Sequence[int]]) -> list[torch.Generator]:
    """One independent CPU generator per ensemble row, seeded from ``(seed, *key)``.

    Each row (e.g. ``key = (initial time in seconds, member index)``) gets its own stream,
    derived with :class:`numpy.random.SeedSequence`, so a member's noise does not depend on
    which other members share its batch: chunking cannot change the noise. torch's CPU
    generator keeps 32 bits of a seed, so there are 2³² streams: two of ``n`` rows share one
    with a probability of about n² / 2³³ (see docs/user-guide/ensembles.md).

    Examples
    --------
    >>> g1, g2 = member_generators(0, [(0, 1), (0, 2)])
    >>> a = torch.randn(3, generator=g1)
    >>> b = torch.randn(3, generator=member_generators(0, [(0, 1)])[0])
    >>> bool(torch.equal(a, b)), bool(torch.equal(a, torch.randn(3, generator=g2)))
    (True, False)
    """
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed}")
    gens = []
    for key in keys:
        ints = [int(seed), *(int(k) + (1 << 63) for k in key)]
        state = np.random.SeedSequence(ints).generate_state(1, dtype=np.uint64)[0]
        gens.append(torch.Generator().manual_seed(int(state) >> 1))
    return gens


def _draw(
    gens: Sequence[torch.Generator], shape: Sequence[int], like: torch.Tensor
) -> torch.Tensor:
    """Stack one standard-normal draw of ``shape`` per generator (drawn on CPU, float32)."""
    out = torch.stack([torch.randn(tuple(shape), generator=g) for g in gens])
    return out.to(device=like.device, dtype=like.dtype)


#: initial-state noise: (generators, (C, H, W), like) -> (B, C, H, W) in physical units
InitialNoise = Callable[
    [Sequence[torch.Generator], tuple[int, int, int], torch.Tensor], torch.Tensor
]


def ensemble_rollout(
    model: ForecastModel | Any,
    x: torch.Tensor,
    *,
    steps: int,
    generators: Sequence[torch.Generator],
    perturbation: PerturbationVAE | None = None,
    initial_noise: InitialNoise | None = None,
    amplitude: float = 1.0,
) -> Iterator[torch.Tensor]:
    """Roll an ensemble forward, yielding the state at each lead ``(B, C, H, W)``.

    Parameters
    ----------
    model : ForecastModel or Cascade
        With a :class:`~xfuxi.models.cascade.Cascade`, step ``k`` (1-based) is made by
        ``model.stages[model.stage_index(k)]``, and the perturbation before it takes the
        module's ``model_gain`` for that stage's name, if any.
    x : Tensor (B, 2, C, H, W)
        Physical input pairs, one row per (initial time, member).
    steps : int
        Number of 6-hour steps.
    generators : sequence of torch.Generator
        One per row (see :func:`member_generators`); all noise of a row comes from it.
    perturbation : PerturbationVAE, optional
        FuXi-ENS: before each step ``k`` (the initial one included) the current state is
        perturbed by ``amplitude · vae.perturb(pair, ε_k, step=k, model=name)`` (at ``k = 0``
        with the module's ``initial_gain``, at ``1 … early_steps`` with its ``early_gain``,
        and with its ``model_gain`` of the model making the step); the perturbed state is
        kept as the earlier input of the next step.
    initial_noise : callable, optional
        Initial-state methods (Perlin, Gaussian): ``initial_noise(generators, (C, H, W), x)``
        gives ``δ`` (B, C, H, W), added to both input states once; then the deterministic
        model runs unperturbed.
    amplitude : float, default 1
        Multiplies the VAE perturbation (inflation; 1 = as trained).

    Yields
    ------
    Tensor (B, C, H, W)
        Forecast at lead ``k Δ``, ``k = 1..steps`` (the model output, before the next
        perturbation).
    """
    if len(generators) != x.shape[0]:
        raise ValueError(f"need one generator per row: {len(generators)} for {x.shape[0]} rows")
    if perturbation is not None and initial_noise is not None:
        raise ValueError("give either perturbation (VAE) or initial_noise, not both")
    stages = getattr(model, "stages", None)
    if initial_noise is not None:
        delta = initial_noise(generators, tuple(x.shape[2:]), x)  # type: ignore[arg-type]
        x = x + delta[:, None]
    for k in range(int(steps)):
        run = model if stages is None else stages[model.stage_index(k + 1)]
        if perturbation is not None:
            eps = _draw(generators, perturbation.latent_shape, x)
            delta = perturbation.perturb(x, eps, step=k, model=getattr(run, "name", None))
            x = perturb_current(x, amplitude * delta)
        y = run(x)
        yield y
        x = advance_pair(x, y)
