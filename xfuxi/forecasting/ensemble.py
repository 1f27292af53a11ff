"""Ensemble forecasts: FuXi-ENS (the perturbation VAE), Perlin or Gaussian initial noise.

xarray in, xarray out: the result has the WeatherBench2 ``number`` dim. The tensor work
lives in :mod:`xfuxi.models.ens`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ..options import progress_bar
from .deterministic import forecast_attrs
from .edge import forecast_dataset, initial_conditions

if TYPE_CHECKING:
    from ..models.base import ForecastModel

__all__ = ["ensemble", "ensemble_iter"]

log = logging.getLogger(__name__)

#: default rows per batch of :func:`ensemble` on CPU and on accelerators (see its docs)
_DEFAULT_CHUNK_CPU = 16
_DEFAULT_CHUNK_ACCELERATOR = 64


_ENSEMBLE_METHODS = ("vae", "perlin", "gaussian")
_DEFAULT_AMPLITUDE = {"vae": 1.0, "perlin": 0.05, "gaussian": 0.05}
_DEFAULT_PERTURBATION = "fuxi-ens-hs-t21"


def _ensemble_setup(
    ds: xr.Dataset,
    model: Any,
    n: int,
    steps: int,
    method: str,
    perturbation: Any,
    seed: int,
    chunk_size: int | None,
    amplitude: float | None,
    init_times: Sequence[Any] | None,
    device: Any,
    noise_kwargs: dict[str, Any] | None,
) -> dict[str, Any]:
    """Check arguments and build everything the ensemble loop needs."""
    import os

    import torch

    from ..models.ens import PerturbationVAE, load_perturbation
    from ..models.registry import resolve_model
    from ..models.rollout import model_on

    if method not in _ENSEMBLE_METHODS:
        raise ValueError(f"method must be one of {_ENSEMBLE_METHODS}; got {method!r}")
    for label, value, low in (("n", n, 1), ("steps", steps, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{label} must be an integer >= {low}; got {value!r}")
    if chunk_size is not None and (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, (int, np.integer))
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive integer or None; got {chunk_size!r}")
    amp = _DEFAULT_AMPLITUDE[method] if amplitude is None else float(amplitude)
    if not np.isfinite(amp) or amp < 0:
        raise ValueError(f"amplitude must be a finite number >= 0; got {amplitude!r}")
    if method != "perlin" and noise_kwargs:
        raise ValueError(f"noise_kwargs only apply to method='perlin'; got {sorted(noise_kwargs)}")
    model = resolve_model(model, allow_cascade=True)
    vae = None
    if method == "vae":
        vae = perturbation if perturbation is not None else _DEFAULT_PERTURBATION
        if isinstance(vae, (str, os.PathLike)):
            vae = load_perturbation(vae)
        if not isinstance(vae, PerturbationVAE):
            raise TypeError(
                "perturbation must be a PerturbationVAE or the name / directory of a saved "
                f"one; got {type(vae).__name__}"
            )
        vae.check_model(model)
    elif perturbation is not None:
        raise ValueError(f"perturbation is only used by method='vae' (got method={method!r})")
    x, t0 = initial_conditions(ds, model, init_times=init_times)
    run = model_on(model, device, None)
    param = next(iter(getattr(run, "stages", (run,))[0].parameters()), None)
    dev = param.device if param is not None else torch.device(device or "cpu")
    dtype = param.dtype if param is not None else torch.float32
    if vae is not None:
        vae = _vae_on(vae, dev, dtype)
    rows = x.shape[0] * int(n)
    default = _DEFAULT_CHUNK_CPU if dev.type == "cpu" else _DEFAULT_CHUNK_ACCELERATOR
    size = min(rows, default) if chunk_size is None else min(int(chunk_size), rows)
    return {
        "model": model,
        "run": run,
        "dtype": dtype,
        "vae": vae,
        "x": x,
        "init_times": t0,
        "device": dev,
        "chunk": size,
        "amplitude": amp,
        "leads": np.arange(1, int(steps) + 1) * model.timestep,
    }


def _vae_on(vae: Any, device: Any, dtype: Any) -> Any:
    """The perturbation module on ``device`` / ``dtype``: itself if there already, else a copy."""
    import copy

    param = next(iter(vae.parameters()))
    if param.device == device and param.dtype == dtype:
        return vae
    return copy.deepcopy(vae).to(device=device, dtype=dtype)


def _initial_noise(method: str, model: ForecastModel, amplitude: float, kwargs: dict[str, Any]):
    """The initial-state noise function of the Perlin and Gaussian methods."""
    import torch

    std = np.asarray(model.stats.std, dtype="float32")

    if method == "gaussian":

        def gaussian(gens, shape, like):
            scale = torch.as_tensor(std, device=like.device).view(1, -1, 1, 1) * amplitude
            noise = torch.stack([torch.randn(tuple(shape), generator=g) for g in gens])
            return noise.to(like.device, like.dtype) * scale

        return gaussian

    from ..perturbations.perlin import perlin_perturbations

    def perlin(gens, shape, like):
        fields = [
            perlin_perturbations(
                1, std=std, shape=tuple(shape[1:]), amplitude=amplitude, generator=g, **kwargs
            )
            for g in gens
        ]
        return torch.cat(fields).to(like.device, like.dtype)

    return perlin


def _ensemble_arrays(setup: dict[str, Any], n: int, method: str, seed: int, progress, kwargs):
    """Yield ``(lead index, states (T, n, C, H, W) numpy)`` one lead at a time."""
    import torch

    from ..models.ens import ensemble_rollout, member_generators

    model, vae, dev = setup["run"], setup["vae"], setup["device"]
    x, t0, size = setup["x"], setup["init_times"], setup["chunk"]
    n_t = x.shape[0]
    # rows ordered (initial time, member); the key of a row is (initial time in s, member)
    t_sec = t0.astype("datetime64[s]").astype("int64")
    keys = [(int(t_sec[i]), m) for i in range(n_t) for m in range(n)]
    rows = np.repeat(np.arange(n_t), n)
    noise = None if method == "vae" else _initial_noise(method, model, setup["amplitude"], kwargs)
    modules = [*getattr(model, "stages", (model,)), *([vae] if vae is not None else [])]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.inference_mode():
            rollouts = []
            for start in range(0, len(keys), size):
                sl = slice(start, start + size)
                xb = torch.from_numpy(x[rows[sl]]).to(device=dev, dtype=setup["dtype"])
                rollouts.append(
                    ensemble_rollout(
                        model,
                        xb,
                        steps=len(setup["leads"]),
                        generators=member_generators(seed, keys[sl]),
                        perturbation=vae,
                        initial_noise=noise,
                        amplitude=setup["amplitude"] if method == "vae" else 1.0,
                    )
                )
            bar = progress_bar(len(setup["leads"]), progress, f"ensemble ({method}, n={n})")
            for k in range(len(setup["leads"])):
                out = torch.cat([next(r) for r in rollouts]).float().cpu().numpy()
                bar.update(1)
                yield k, out.reshape(n_t, n, *out.shape[1:])
            bar.close()
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def _ensemble_attrs(setup: dict[str, Any], n: int, method: str, seed: int) -> dict[str, Any]:
    vae = setup["vae"]
    attrs = forecast_attrs(setup["model"], len(setup["leads"]))
    return {
        **attrs,
        "ensemble_method": method,
        "ensemble_size": int(n),
        "seed": int(seed),
        "amplitude": setup["amplitude"],
        "model": setup["model"].name,
        "perturbation_model": vae.name if vae is not None else "none",
        "source": "xfuxi.ensemble (FuXi-ENS)" if method == "vae" else "xfuxi.ensemble",
    }


def ensemble_iter(
    ds: xr.Dataset,
    *,
    model: Any,
    n: int,
    steps: int,
    method: str = "vae",
    perturbation: Any = None,
    seed: int = 0,
    chunk_size: int | None = None,
    amplitude: float | None = None,
    init_times: Sequence[Any] | None = None,
    device: Any = None,
    noise_kwargs: dict[str, Any] | None = None,
    progress: bool | None = None,
):
    """Ensemble forecast one lead at a time: a generator for long rollouts.

    Same arguments and members as :func:`ensemble`; each item is the Dataset of one lead
    (``prediction_timedelta`` of length 1), so only the current states of the members are
    held in memory. ``xr.concat(list(ensemble_iter(...)), "prediction_timedelta")`` equals
    :func:`ensemble`'s result.

    Yields
    ------
    xarray.Dataset
        Dims ``time``, ``prediction_timedelta`` (1), ``number``, ``level``, ``latitude``,
        ``longitude``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, torch, xarray as xr, xfuxi
    >>> class Persist(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x[:, 1]
    >>> model = xfuxi.wrap_model(Persist(), channels=[("temperature", 500.0)],
    ...                          latitude=[-45.0, 45.0], longitude=[0.0, 90.0, 180.0, 270.0])
    >>> ds = xr.Dataset({"temperature": (("time", "level", "latitude", "longitude"),
    ...                                  np.full((2, 1, 2, 4), 250.0))},
    ...                 coords={"time": pd.date_range("2000-01-01", periods=2, freq="6h"),
    ...                         "level": [500], "latitude": [-45.0, 45.0],
    ...                         "longitude": [0.0, 90.0, 180.0, 270.0]})
    >>> leads = [f.sizes["number"] for f in ensemble_iter(ds, model=model, n=3, steps=2,
    ...                                                   method="gaussian", progress=False)]
    >>> leads
    [3, 3]
    """
    setup = _ensemble_setup(
        ds, model, n, steps, method, perturbation, seed, chunk_size, amplitude, init_times,
        device, noise_kwargs,
    )  # fmt: skip
    attrs = _ensemble_attrs(setup, n, method, seed)
    for k, states in _ensemble_arrays(setup, int(n), method, seed, progress, noise_kwargs or {}):
        yield forecast_dataset(
            states[:, :, None],
            model=setup["model"],
            init_times=setup["init_times"],
            leads=setup["leads"][k : k + 1],
            member_dim="number",
            attrs=attrs,
        )


def ensemble(
    ds: xr.Dataset,
    *,
    model: Any,
    n: int,
    steps: int,
    method: str = "vae",
    perturbation: Any = None,
    seed: int = 0,
    chunk_size: int | None = None,
    amplitude: float | None = None,
    init_times: Sequence[Any] | None = None,
    device: Any = None,
    noise_kwargs: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Ensemble forecast: FuXi-ENS learned perturbations, or a perturbed-initial-state baseline.

    Parameters
    ----------
    ds : xarray.Dataset
        Analysis-layout data holding, for each initial time ``t``, also ``t − 6 h``.
    model : ForecastModel or Cascade or str
        The deterministic forecast model (or a name for :func:`xfuxi.load_model`). With a
        :class:`~xfuxi.models.cascade.Cascade` (e.g. ``"fuxi-hs-t21-cascade"``) each stage
        makes its own range of steps, as in :func:`forecast`; the members' noise is drawn as
        with a single model, and a VAE module's ``model_gain`` scales its perturbations
        before the steps of the stage it names (the shipped module has one for
        ``"fuxi-hs-t21-medium"``).
    n : int
        Ensemble size (members per initial time).
    steps : int
        Number of 6-hour steps (leads ``6 h .. steps · 6 h``).
    method : {"vae", "perlin", "gaussian"}, default "vae"
        ``"vae"``: FuXi-ENS, the learned perturbation module perturbs the initial state and
        every step. ``"perlin"``: multi-octave Perlin noise
        (:func:`xfuxi.perturbations.perlin.perlin_perturbations`) of ``amplitude × std[c]``
        added to the initial pair. ``"gaussian"``: i.i.d. Gaussian noise of
        ``amplitude × std[c]`` added to the initial pair. The last two run the
        deterministic model unperturbed afterwards.
    perturbation : PerturbationVAE or str, optional
        The perturbation module (or a shipped name / checkpoint directory) for
        ``method="vae"``; default the shipped ``"fuxi-ens-hs-t21"``.
    seed : int, default 0
        Member ``m`` of initial time ``t`` draws all its noise from a generator seeded by
        ``(seed, t, m)``: same seed → same members, whatever ``chunk_size``.
    chunk_size : int, optional
        Rows (initial time × member) run together in one batch; bounds memory. Default
        16 on CPU, 64 on an accelerator (at most the number of rows). On CPU a batch of 16
        keeps the activations of the memory-bound layers in cache: 48 members at T21 on
        two cores ran at a median 184 member-steps/s in batches of 16 against 151 in one
        batch of 48 (``benchmarks/bench_ensemble_speed.py``).
    amplitude : float, optional
        VAE: inflation factor of the learned perturbations (default 1). Perlin / Gaussian:
        noise std as a fraction of each channel's climatological std (default 0.05).
    init_times : sequence of datetime-like, optional
        Initial times (default: every time whose predecessor is in ``ds``).
    device : str or torch.device, optional
        Default ``xfuxi.get_options()["device"]``.
    noise_kwargs : dict, optional
        Extra arguments of the Perlin generator (``wavelength``, ``octaves``, ...).
    progress : bool, optional
        Progress bar (default: the ``progress`` option).

    Returns
    -------
    xarray.Dataset
        WeatherBench2 forecast layout plus ``number``: dims ``time`` (initial time),
        ``prediction_timedelta``, ``number``, ``level``, ``latitude``, ``longitude``; attrs
        record the method, size, seed, amplitude and models.

    Raises
    ------
    ValueError
        Unknown method, bad ``n``/``steps``/``seed``/``chunk_size``/``amplitude``, or a
        perturbation module built for other channels or another grid.
    SchemaError
        The data does not match the model (see :func:`initial_conditions`).

    Notes
    -----
    FuXi-ENS (Zhong et al. 2024; DESIGN.md §4): at every step ``k`` (the initial one
    included) the current state is perturbed by a sample of the learned flow-dependent
    prior, ``x_k ← x_k + amplitude · D(μ_k + σ_k ε_k)``, and the model steps from the
    perturbed pair.

    Examples
    --------
    >>> import numpy as np, pandas as pd, torch, xarray as xr, xfuxi
    >>> class Persist(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x[:, 1]
    >>> model = xfuxi.wrap_model(Persist(), channels=[("temperature", 500.0)],
    ...                          latitude=[-45.0, 45.0], longitude=[0.0, 90.0, 180.0, 270.0])
    >>> ds = xr.Dataset({"temperature": (("time", "level", "latitude", "longitude"),
    ...                                  np.full((2, 1, 2, 4), 250.0))},
    ...                 coords={"time": pd.date_range("2000-01-01", periods=2, freq="6h"),
    ...                         "level": [500], "latitude": [-45.0, 45.0],
    ...                         "longitude": [0.0, 90.0, 180.0, 270.0]})
    >>> fc = ensemble(ds, model=model, n=4, steps=3, method="gaussian", amplitude=0.1,
    ...               progress=False)
    >>> fc.temperature.dims
    ('time', 'prediction_timedelta', 'number', 'level', 'latitude', 'longitude')
    >>> bool((fc.temperature.std("number") > 0).all())
    True
    """
    setup = _ensemble_setup(
        ds, model, n, steps, method, perturbation, seed, chunk_size, amplitude, init_times,
        device, noise_kwargs,
    )  # fmt: skip
    x = setup["x"]
    out = np.empty((x.shape[0], int(n), len(setup["leads"]), *x.shape[2:]), dtype="float32")
    for k, states in _ensemble_arrays(setup, int(n), method, seed, progress, noise_kwargs or {}):
        out[:, :, k] = states
    return forecast_dataset(
        out,
        model=setup["model"],
        init_times=setup["init_times"],
        leads=setup["leads"],
        member_dim="number",
        attrs=_ensemble_attrs(setup, n, method, seed),
    )
