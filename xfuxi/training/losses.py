"""The training losses: FuXi's weighted L1, the adjusted MSE, the fair CRPS and the KL term.

* :func:`forecast_loss`: the loss of a deterministic forecast, latitude-weighted L1 (FuXi,
  Chen et al. 2023, eq. 1) or :func:`amse_loss` of the normalised fields;
* :func:`fair_crps` and :func:`gaussian_kl`, and :func:`ensemble_loss` built on them: the
  FuXi-ENS objective (fair CRPS over sampled members + λ·KL).

See the definitions in the documentation (docs/design.md).
"""

from __future__ import annotations

import torch

from ..models.base import ForecastModel
from ..models.ens import PerturbationVAE
from ..models.rollout import advance_pair, perturb_current

__all__ = [
    "amse_loss",
    "ensemble_loss",
    "fair_crps",
    "forecast_loss",
    "gaussian_kl",
    "zonal_octave_power",
]


def forecast_loss(
    model: ForecastModel,
    pred: torch.Tensor,
    truth: torch.Tensor,
    w: torch.Tensor,
    kind: str = "l1",
) -> torch.Tensor:
    """Latitude-weighted loss of the normalised fields (weights of mean 1 over latitude).

    ``kind`` is ``"l1"`` (FuXi's) or ``"amse"`` (:func:`amse_loss`); ``w`` broadcasts to
    ``(..., lat, 1)``. The normalised fields are ``(x − μ)/σ`` with the model's
    normalization statistics: the mean cancels in the L1 of a difference, not in AMSE.
    """
    if kind == "amse":
        return amse_loss(model.normalize(pred), model.normalize(truth), w)
    diff = (pred - truth) / model._std
    return (diff.abs() * w).mean()


def _zonal_octaves(
    n_lon: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per zonal wavenumber of a real FFT of ``n_lon`` points: Parseval weight and octave.

    The weight counts the mean and (``n_lon`` even) the Nyquist mode once, the others twice;
    the octaves are 0 | 1 | 2–3 | 4–7 | ...
    """
    n = n_lon // 2 + 1
    c = torch.full((n,), 2.0, dtype=dtype, device=device)
    c[0] = 1.0
    if n_lon % 2 == 0:
        c[-1] = 1.0
    m = torch.arange(n, device=device)
    octave = torch.where(m > 0, torch.floor(torch.log2(m.clamp(min=1).double())).long() + 1, 0)
    return c, octave


def amse_loss(
    pred: torch.Tensor, truth: torch.Tensor, weights: torch.Tensor, eps: float = 1e-12
) -> torch.Tensor:
    """Adjusted MSE (Subich et al. 2025) over octave bands of zonal wavenumber.

    Over a group of spectral coefficients with power ``P_f``, ``P_y`` and cross power ``X``,
    MSE splits into an amplitude and a decorrelation term,
    ``(√P_f − √P_y)² + 2√(P_f P_y)(1 − ρ)`` with the coherence ``ρ = X / √(P_f P_y)``;
    where the phases are not predictable (``ρ`` near 0), MSE is lowest for a forecast that
    damps the coefficients: the "double penalty" that blurs long forecasts toward
    climatology. AMSE weighs the decorrelation term with ``max(P_f, P_y)`` instead, so that
    damping no longer pays. Subich et al. group the coefficients by spherical-harmonic
    degree; here (any latitude–longitude grid, no spherical transform) the groups are
    octaves of zonal wavenumber (``m`` = 0, 1, 2–3, 4–7, ...; ``rfft`` along longitude,
    the last axis) over all latitude rows, which are weighted by the area ``weights``
    (broadcast to ``(..., lat, 1)``, mean 1), per sample and channel. A group must hold
    many coefficients: the chance fluctuations of a small group's power make ``max``
    reward damping again. Measured on the T21 world, 8-step fine-tuning from 5-day
    forecasts kept 49% of the 250 hPa meridional wind's spatial std 2 days on with one
    coefficient per group, 71% with a group per wavenumber over all rows, 80% with these
    octaves. Powers are scaled like Parseval's sum, so AMSE equals the area-weighted MSE
    for a forecast with the right phases, and is never below it. The result is summed over
    the groups and averaged over the leading axes (samples, channels).

    Give it fields of comparable size centred on the climate (xfuxi's trainers give it
    ``(x − μ)/σ``, with the model's normalization statistics): AMSE is not shift-invariant
    in the zonal-mean group ``m = 0``, where a large mean makes ``P_f`` and ``P_y``
    nearly equal, so that the group acts as MSE and damping a zonal-mean anomaly pays
    again (and float32 loses the group's digits). ``μ`` is one number per channel, so the
    meridional profile of the climate stays in that group, which is closer to MSE than the
    others. The trainers gave it ``x/σ`` before 2026-12-07: the shipped
    ``fuxi-hs-t21-medium`` and the figures above were made so.

    Subich, Husain, Separovic & Yang (2025), "Fixing the double penalty in data-driven
    weather forecasting through a modified spherical harmonic loss function", ICML.
    """
    n_lat, n_lon = pred.shape[-2], pred.shape[-1]
    fa = torch.fft.rfft(pred, dim=-1)
    fb = torch.fft.rfft(truth, dim=-1)
    c, octave = _zonal_octaves(n_lon, pred.dtype, pred.device)
    scale = weights * c / (n_lat * n_lon**2)  # (..., lat, m)

    def power(x: torch.Tensor) -> torch.Tensor:  # sum over latitude rows -> (..., m)
        return (x * scale).sum(-2)

    n_groups = int(octave.max()) + 1

    def grouped(x: torch.Tensor) -> torch.Tensor:  # (..., m) -> (..., groups)
        out = x.new_zeros((*x.shape[:-1], n_groups))
        return out.index_add(-1, octave, x)

    pa = grouped(power(fa.real**2 + fa.imag**2))
    pb = grouped(power(fb.real**2 + fb.imag**2))
    cross = grouped(power(fa.real * fb.real + fa.imag * fb.imag))
    root = torch.sqrt(pa * pb + eps**2)
    term = (torch.sqrt(pa + eps**2) - torch.sqrt(pb + eps**2)) ** 2 + 2.0 * torch.maximum(
        pa, pb
    ) * (1.0 - cross / root)
    return term.sum(-1).mean()


def zonal_octave_power(x: torch.Tensor, *, nyquist: bool = True) -> torch.Tensor:
    """Power of each latitude row by zonal-wavenumber octave: ``(..., lat, lon) → (..., lat, g)``.

    The groups are those of :func:`amse_loss` (``m`` = 0, 1, 2–3, 4–7, ...), the powers
    scaled as there (Parseval: over the groups they sum to the row's mean square).
    ``nyquist=False`` leaves out the Nyquist wavenumber of an even number of longitudes
    (whose phase a grid cannot resolve; a spectral model's output has none).

    Examples
    --------
    >>> import torch
    >>> x = torch.cos(2 * torch.pi * 3 * torch.arange(16) / 16).view(1, 16)
    >>> zonal_octave_power(x + 1.0).round(decimals=3)  # mean 1; wavenumber 3 of variance 1/2
    tensor([[1.0000, 0.0000, 0.5000, 0.0000, 0.0000]])
    """
    n_lon = x.shape[-1]
    f = torch.fft.rfft(x, dim=-1)
    c, octave = _zonal_octaves(n_lon, x.dtype, x.device)
    if n_lon % 2 == 0 and not nyquist:
        f, c, octave = f[..., :-1], c[:-1], octave[:-1]
    p = (f.real**2 + f.imag**2) * c / n_lon**2
    out = p.new_zeros((*p.shape[:-1], int(octave.max()) + 1))
    return out.index_add(-1, octave, p)


def fair_crps(ensemble: torch.Tensor, target: torch.Tensor, *, fair: bool = True) -> torch.Tensor:
    """Differentiable CRPS of an ensemble, pointwise: ``E|X − y| − ½ E|X − X′|``.

    Parameters
    ----------
    ensemble : Tensor (M, ...)
        Members along the first axis.
    target : Tensor (...)
        Verifying values (broadcast against one member).
    fair : bool, default True
        Unbiased ("fair") spread term ``Σ_{i≠j}|x_i − x_j| / (2 M (M − 1))``; else the
        standard ``/ (2 M²)``.

    Returns
    -------
    Tensor (...)
        CRPS at each point.

    Notes
    -----
    See the definitions in the documentation (docs/design.md; WeatherBench2, Ferro 2014).
    The pairwise sum is computed in ``O(M log M)`` from the sorted members,
    ``Σ_{i,j}|x_i − x_j| = 2 Σ_i (2i − M − 1) x_(i)``; torch's sort is differentiable. One
    member gives the absolute error (the fair spread term is then taken as 0).

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[0.0], [1.0]])
    >>> y = torch.tensor([0.0])
    >>> fair_crps(x, y)  # 0.5 - 1 / (2 * 2 * 1)
    tensor([0.])
    >>> fair_crps(x, y, fair=False)  # 0.5 - 2 / (2 * 4)
    tensor([0.2500])
    """
    m = ensemble.shape[0]
    if m < 1:
        raise ValueError("ensemble needs at least one member (axis 0)")
    skill = (ensemble - target.unsqueeze(0)).abs().mean(0)
    if m == 1:
        return skill
    xs = ensemble.sort(dim=0).values
    rank = torch.arange(1, m + 1, dtype=xs.dtype, device=xs.device)
    coef = (2 * rank - m - 1).view(-1, *([1] * (xs.ndim - 1)))
    pair_sum = 2 * (coef * xs).sum(0)  # Σ_{i,j} |x_i − x_j|
    denom = 2 * m * (m - 1) if fair else 2 * m * m
    return skill - pair_sum / denom


def gaussian_kl(
    mu_q: torch.Tensor,
    log_sigma_q: torch.Tensor,
    mu_p: torch.Tensor,
    log_sigma_p: torch.Tensor,
) -> torch.Tensor:
    """Elementwise ``KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²))`` of diagonal Gaussians.

    Notes
    -----
    ``log σ_p − log σ_q + (σ_q² + (μ_q − μ_p)²) / (2 σ_p²) − ½`` (Kingma & Welling 2014).

    Examples
    --------
    >>> import torch
    >>> z = torch.zeros(2)
    >>> gaussian_kl(z, z, z, z)
    tensor([0., 0.])
    >>> round(float(gaussian_kl(torch.tensor(1.0), z[0], z[0], z[0])), 6)
    0.5
    """
    var_ratio = torch.exp(2 * (log_sigma_q - log_sigma_p))
    mean_term = (mu_q - mu_p) ** 2 * torch.exp(-2 * log_sigma_p)
    return log_sigma_p - log_sigma_q + 0.5 * (var_ratio + mean_term) - 0.5


def ensemble_loss(
    vae: PerturbationVAE,
    model: ForecastModel,
    seq: torch.Tensor,
    *,
    members: int,
    kl_weight: float,
    weights: torch.Tensor,
    generator: torch.Generator | None = None,
    sample: str = "posterior",
    rows: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """FuXi-ENS training loss on a batch of sequences.

    Parameters
    ----------
    vae : PerturbationVAE
    model : ForecastModel
        Deterministic model (its parameters may be frozen; gradients flow through it).
    seq : Tensor (B, 2 + K, C, H, W)
        Physical states at ``t − Δ, t, t + Δ, …, t + KΔ`` (``K`` rollout steps).
    members : int
        Members ``M ≥ 2`` sampled per sequence.
    kl_weight : float
        λ.
    weights : Tensor (H,)
        Latitude area weights (mean 1).
    generator : torch.Generator, optional
        Source of the latent noise.
    sample : {"posterior", "prior"}
        Which distribution the members' latents come from during training. FuXi-ENS
        samples the posterior and relies on the KL term to tie it to the prior used at
        inference; ``"prior"`` scores exactly the ensemble that inference makes (the KL
        term then only trains the posterior and regularises the prior).
    rows : (int, int), optional
        ``(start, total)``: ``seq`` holds sequences ``start .. start + B`` of a global batch
        of ``total`` split over distributed processes. The latent noise is drawn for the
        whole batch and this part's rows are used, so the processes together draw exactly
        the noise of one process running the global batch.

    Returns
    -------
    loss : Tensor (scalar)
        Mean over steps of (area-weighted fair CRPS averaged over channels and batch
        + λ · KL averaged over latent elements and members).
    parts : dict
        ``{"crps": …, "kl": …}`` as floats.
    """
    if members < 2:
        raise ValueError(f"members must be >= 2 for the fair CRPS; got {members}")
    if sample not in ("posterior", "prior"):
        raise ValueError(f"sample must be 'posterior' or 'prior'; got {sample!r}")
    if seq.ndim != 5 or seq.shape[1] < 3:
        raise ValueError(f"seq must be (B, 2 + K, C, H, W) with K >= 1; got {tuple(seq.shape)}")
    b, steps = seq.shape[0], seq.shape[1] - 2
    x = seq[:, :2].repeat_interleave(members, dim=0)  # rows (batch, member)
    w = (weights / weights.mean()).view(1, -1, 1).to(seq)
    crps_total = seq.new_zeros(())
    kl_total = seq.new_zeros(())
    for k in range(steps):
        truth = seq[:, 2 + k]
        xn = vae.normalize(x)
        feats = vae.features(xn)
        mu_p, ls_p = vae.prior(feats)
        truth_n = vae.normalize(truth).repeat_interleave(members, dim=0)
        mu_q, ls_q = vae.posterior(feats, xn[:, 1], truth_n)
        mu, ls = (mu_q, ls_q) if sample == "posterior" else (mu_p, ls_p)
        if rows is None:
            eps = torch.randn(mu.shape, generator=generator).to(mu)
        else:
            start, total = rows
            eps = torch.randn((total * members, *mu.shape[1:]), generator=generator)
            eps = eps[start * members : (start + b) * members].to(mu)
        delta = vae.sample(mu, ls, eps, feats, xn[:, 1]) * vae._std
        x = perturb_current(x, delta)
        y = model(x)
        pred_n = vae.normalize(y).view(b, members, *y.shape[1:]).transpose(0, 1)
        crps = fair_crps(pred_n, vae.normalize(truth))  # (B, C, H, W)
        crps_total = crps_total + (crps * w).mean()
        kl_total = kl_total + gaussian_kl(mu_q, ls_q, mu_p, ls_p).mean()
        x = advance_pair(x, y)
    crps_mean, kl_mean = crps_total / steps, kl_total / steps
    loss = crps_mean + kl_weight * kl_mean
    return loss, {"crps": float(crps_mean.detach()), "kl": float(kl_mean.detach())}
