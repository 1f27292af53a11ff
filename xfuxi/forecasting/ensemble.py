"""Ensemble forecasts: FuXi-ENS (the perturbation VAE), Perlin or Gaussian initial noise.

xarray in, xarray out: the result has the WeatherBench2 ``number`` dim. The tensor work
lives in :mod:`xfuxi.models.ens`. How the members are perturbed is one typed spec:
:class:`VAEPerturbation` (FuXi-ENS, the default), :class:`PerlinNoise` or
:class:`GaussianNoise`.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from ..config import Config, field, is_integer, user_stacklevel
from ..data.schema import require_dataset
from ..docstrings import unexpected_keywords, with_signature_of
from ..options import progress_bar
from ..perturbations.scales import PerlinScales, check_perlin_scales
from .deterministic import DEFAULT_MODEL, forecast_attrs
from .edge import forecast_dataset, initial_conditions

__all__ = [
    "GaussianNoise",
    "PerlinNoise",
    "VAEPerturbation",
    "ensemble",
    "ensemble_iter",
    "perturbation_for",
]

log = logging.getLogger(__name__)

#: default rows per batch of :func:`ensemble` on CPU and on accelerators (see its docs)
_DEFAULT_CHUNK_CPU = 16
_DEFAULT_CHUNK_ACCELERATOR = 64

#: the shipped FuXi-ENS module (run on the shipped cascade by default)
DEFAULT_PERTURBATION = "fuxi-ens-hs-t21"


def _check_fraction(owner: str, label: str, value: Any) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or not np.isfinite(value) or value < 0:
        raise ValueError(f"{owner}.{label} must be a finite number >= 0; got {value!r}")


def _check_perturbation_std(owner: str, value: Any) -> tuple[float, ...] | None:
    """``value`` (an explicit std per channel, or None) as a tuple of floats, refused unless
    a flat non-empty sequence of finite numbers >= 0."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, dict)) or np.ndim(value) == 0:
        raise ValueError(
            f"{owner}.perturbation_std must be one std per channel of the model (a sequence "
            f"in its channel order, physical units); got {value!r}"
        )
    try:
        std = np.asarray(value, dtype="float64")
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner}.perturbation_std must be numbers (one std per channel); got {value!r}"
        ) from None
    if std.ndim != 1 or std.size == 0:
        raise ValueError(
            f"{owner}.perturbation_std must be a flat sequence of one std per channel; got "
            f"shape {std.shape}"
        )
    if not np.isfinite(std).all() or (std < 0).any():
        raise ValueError(f"{owner}.perturbation_std must be finite values >= 0; got {std.tolist()}")
    return tuple(float(v) for v in std)


@dataclasses.dataclass(frozen=True)
class _Spec(Config):
    """What the perturbation specs share: one field scales the perturbations."""

    #: the name of the field that scales the perturbations (a finite number >= 0)
    _scale_field: ClassVar[str]

    def __post_init__(self) -> None:
        _check_fraction(type(self).__name__, self._scale_field, getattr(self, self._scale_field))

    @property
    def amplitude(self) -> float:
        """The number that scales the perturbations (the inflation or the std fraction)."""
        return float(getattr(self, self._scale_field))


@dataclasses.dataclass(frozen=True)
class VAEPerturbation(_Spec):
    """FuXi-ENS: a learned perturbation of the initial state and of every step.

    Before each step (the initial one included) the current state is perturbed by
    ``inflation · D(μ + σ ε)``, a sample of the module's flow-dependent prior decoded to
    physical units (see :func:`xfuxi.models.ens.ensemble_rollout`).

    Parameters
    ----------
    module : str, path or PerturbationVAE, default "fuxi-ens-hs-t21"
        The perturbation module: a shipped name, a checkpoint directory
        (:func:`xfuxi.models.ens.save_perturbation`) or a module.
    inflation : float, default 1
        Factor on the learned perturbations (1: as trained and calibrated).

    Examples
    --------
    >>> VAEPerturbation(inflation=1.2).to_dict()
    {'module': 'fuxi-ens-hs-t21', 'inflation': 1.2}
    """

    method: ClassVar[str] = "vae"
    _scale_field: ClassVar[str] = "inflation"

    module: Any = field(DEFAULT_PERTURBATION, help="perturbation module (name or directory)")
    inflation: float = field(1.0, help="factor on the learned perturbations (1: as trained)")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (a module object by its ``name``)."""
        module = self.module
        if not isinstance(module, (str, os.PathLike)):
            module = getattr(module, "name", type(module).__name__)
        return {"module": os.fspath(module), "inflation": self.inflation}


#: the help of the noise specs' ``perturbation_std``
_STD_HELP = (
    "climatological std per channel in physical units, in the model's channel order "
    "(default: the model's normalization std)"
)


@dataclasses.dataclass(frozen=True)
class _NoiseSpec(_Spec):
    """What the initial-noise specs share: ``std_fraction`` of each channel's std, that std
    the model's (``model.stats.std``) or an explicit ``perturbation_std``."""

    _scale_field: ClassVar[str] = "std_fraction"

    def __post_init__(self) -> None:
        super().__post_init__()
        std = _check_perturbation_std(type(self).__name__, self.perturbation_std)
        object.__setattr__(self, "perturbation_std", std)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``perturbation_std`` only where given)."""
        out = super().to_dict()
        if out.get("perturbation_std") is None:
            out.pop("perturbation_std", None)
        return out


@dataclasses.dataclass(frozen=True)
class GaussianNoise(_NoiseSpec):
    """I.i.d. Gaussian noise added to the initial pair; the model then runs unperturbed.

    Parameters
    ----------
    std_fraction : float, default 0.05
        Noise std as a fraction of each channel's climatological std.
    perturbation_std : sequence of float, optional
        That climatological std, one value per channel of the model in its channel order
        and in physical units. Default: the model's normalization std (``model.stats.std``).
        Needed for a model without statistics (wrapped without ``stats``, see
        :func:`xfuxi.wrap_model`), whose std of 1 is no physical scale: the ensemble refuses
        to scale the noise by it.

    Raises
    ------
    ValueError
        A negative or non-finite ``std_fraction``, or a ``perturbation_std`` that is not a
        flat sequence of finite numbers >= 0.

    Examples
    --------
    >>> GaussianNoise(std_fraction=0.1).to_dict()
    {'std_fraction': 0.1}
    >>> GaussianNoise(perturbation_std=[2.0, 400.0]).perturbation_std
    (2.0, 400.0)

    Passed as ``perturbation=`` to :func:`xfuxi.ensemble` (``ds.fuxi.ensemble``).
    """

    method: ClassVar[str] = "gaussian"

    std_fraction: float = field(0.05, help="noise std as a fraction of each channel's std")
    perturbation_std: tuple[float, ...] | None = field(None, help=_STD_HELP)


@dataclasses.dataclass(frozen=True)
class PerlinNoise(_NoiseSpec):
    """Multi-octave Perlin noise added to the initial pair; the model then runs unperturbed.

    The noise of :func:`xfuxi.perturbations.perlin.perlin_perturbations`, each channel its
    own field.

    Parameters
    ----------
    std_fraction : float, default 0.05
        Noise std as a fraction of each channel's climatological std.
    wavelength : float, default 8
        Wavelength of the first octave, in grid points.
    octaves : int, default 3
        Octave ``o`` has wavelength ``wavelength / 2**o`` and weight ``persistence**o``.
    persistence : float, default 0.5
    perturbation_std : sequence of float, optional
        The climatological std of ``std_fraction``, one value per channel of the model in
        its channel order and in physical units. Default: the model's normalization std
        (``model.stats.std``). Needed for a model without statistics (wrapped without
        ``stats``, see :func:`xfuxi.wrap_model`), whose std of 1 is no physical scale: the
        ensemble refuses to scale the noise by it.

    Raises
    ------
    ValueError
        A negative or non-finite ``std_fraction``, bad ``wavelength`` / ``octaves`` /
        ``persistence``, or a ``perturbation_std`` that is not a flat sequence of finite
        numbers >= 0.

    Examples
    --------
    >>> PerlinNoise(std_fraction=0.1, octaves=2).to_dict()
    {'std_fraction': 0.1, 'wavelength': 8.0, 'octaves': 2, 'persistence': 0.5}
    >>> PerlinNoise(perturbation_std=(2.0, 400.0)).to_dict()["perturbation_std"]
    [2.0, 400.0]
    """

    method: ClassVar[str] = "perlin"

    std_fraction: float = field(0.05, help="noise std as a fraction of each channel's std")
    wavelength: float = field(8.0, help="wavelength of the first octave, in grid points")
    octaves: int = field(3, help="number of octaves")
    persistence: float = field(0.5, help="weight ratio of successive octaves")
    perturbation_std: tuple[float, ...] | None = field(None, help=_STD_HELP)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_perlin_scales(type(self).__name__, self.wavelength, self.octaves, self.persistence)

    @property
    def scales(self) -> PerlinScales:
        """The wavelength and octaves of the noise."""
        return PerlinScales(self.wavelength, self.octaves, self.persistence)


#: the perturbation specs, by the name of their method
PERTURBATIONS: dict[str, type[Config]] = {
    c.method: c for c in (VAEPerturbation, PerlinNoise, GaussianNoise)
}
_SPECS = tuple(PERTURBATIONS.values())


#: the old keywords of ``ensemble`` (each still accepted, with a ``DeprecationWarning``)
_LEGACY_KEYWORDS = ("method", "amplitude", "noise_kwargs")
#: other libraries' names of ``ensemble``'s keywords, proposed when given
_ALIASES = {"members": "n", "n_members": "n", "n_ensemble": "n", "ensemble_size": "n", "size": "n"}


def _perturbation_spec(perturbation: Any, legacy: dict[str, Any]) -> Any:
    """The perturbation spec from ``perturbation`` and the old ``method`` / ``amplitude`` /
    ``noise_kwargs`` keywords (each still accepted, with a ``DeprecationWarning``)."""
    unknown = sorted(set(legacy) - set(_LEGACY_KEYWORDS))
    if unknown:  # the closest of ensemble()'s own keywords proposed (n_members: n)
        known = [p for p in inspect.signature(_prepare).parameters if p not in ("ds", "legacy")]
        raise unexpected_keywords("ensemble", unknown, known, _ALIASES)
    if isinstance(perturbation, _SPECS):
        if legacy:
            raise ValueError(
                f"give the perturbation as a spec or with method / amplitude / noise_kwargs, "
                f"not both (got {sorted(legacy)} with {type(perturbation).__name__})"
            )
        return perturbation
    if not legacy:
        return VAEPerturbation() if perturbation is None else VAEPerturbation(perturbation)
    warnings.warn(
        f"ensemble({', '.join(f'{k}=...' for k in legacy)}) is deprecated; pass "
        "perturbation=VAEPerturbation(module, inflation=...), PerlinNoise(std_fraction=..., "
        "wavelength=..., octaves=..., persistence=...) or GaussianNoise(std_fraction=...)",
        DeprecationWarning,
        stacklevel=user_stacklevel(),
    )
    return perturbation_for(
        legacy.get("method", "vae"),
        module=perturbation,
        amplitude=legacy.get("amplitude"),
        noise_options=legacy.get("noise_kwargs"),
    )


def perturbation_for(
    method: str,
    *,
    module: Any = None,
    amplitude: float | None = None,
    noise_options: dict[str, Any] | None = None,
) -> VAEPerturbation | PerlinNoise | GaussianNoise:
    """The perturbation spec of a method named by a string, with one ``amplitude``.

    Parameters
    ----------
    method : {"vae", "perlin", "gaussian"}
    module : PerturbationVAE or str, optional
        The VAE's module (default the shipped one); only for ``"vae"``.
    amplitude : float, optional
        The VAE's ``inflation``, or the noise's ``std_fraction`` (default: the spec's).
    noise_options : dict, optional
        ``wavelength``, ``octaves``, ``persistence`` and ``perturbation_std`` of
        :class:`PerlinNoise`; ``perturbation_std`` of :class:`GaussianNoise`.

    Examples
    --------
    >>> perturbation_for("perlin", amplitude=0.1, noise_options={"octaves": 2})
    PerlinNoise(std_fraction=0.1, wavelength=8.0, octaves=2, persistence=0.5, perturbation_std=None)
    >>> perturbation_for("vae", amplitude=1.5).inflation
    1.5
    """
    if method not in PERTURBATIONS:
        raise ValueError(f"method must be one of {tuple(PERTURBATIONS)}; got {method!r}")
    if amplitude is not None:
        _check_fraction("ensemble", "amplitude", amplitude)
    noise_options = dict(noise_options or {})
    if method == "gaussian" and set(noise_options) - {"perturbation_std"}:
        raise ValueError(
            f"noise_kwargs other than perturbation_std only apply to method='perlin'; got "
            f"{sorted(noise_options)}"
        )
    if method == "vae" and noise_options:
        raise ValueError(f"noise_kwargs only apply to method='perlin'; got {sorted(noise_options)}")
    if method != "vae" and module is not None:
        raise ValueError(f"perturbation is only used by method='vae' (got method={method!r})")
    if method == "vae":
        options = {} if amplitude is None else {"inflation": amplitude}
        return VAEPerturbation(DEFAULT_PERTURBATION if module is None else module, **options)
    options = {} if amplitude is None else {"std_fraction": amplitude}
    if method == "gaussian":
        return GaussianNoise(**options, **noise_options)
    unknown = sorted(
        set(noise_options) - {"wavelength", "octaves", "persistence", "perturbation_std"}
    )
    if unknown:
        raise ValueError(f"noise_kwargs {unknown} are not options of PerlinNoise")
    return PerlinNoise(**options, **noise_options)


def _ensemble_setup(
    ds: xr.Dataset,
    model: Any,
    n: int,
    steps: int,
    spec: Any,
    seed: int,
    chunk_size: int | None,
    init_times: Sequence[Any] | np.ndarray | xr.DataArray | None,
    device: Any,
) -> dict[str, Any]:
    """Check arguments and build everything the ensemble loop needs."""
    import torch

    from ..models.ens import PerturbationVAE, load_perturbation
    from ..models.registry import resolve_model
    from ..models.rollout import model_device, model_dtype, model_on

    if model is None:
        model = DEFAULT_MODEL
    if steps is None:  # as forecast(): 10 days of the model's steps
        from .deterministic import _default_steps

        steps = _default_steps(resolve_model(model, allow_cascade=True))
    for label, value, low in (("n", n, 1), ("steps", steps, 1), ("seed", seed, 0)):
        if not is_integer(value) or value < low:
            raise ValueError(f"{label} must be an integer >= {low}; got {value!r}")
    if seed > 2**63 - 1:  # a larger one cannot be stored in a netCDF attribute
        raise ValueError(f"seed must be below 2**63; got {seed!r}")
    if chunk_size is not None and (not is_integer(chunk_size) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None; got {chunk_size!r}")
    model = resolve_model(model, allow_cascade=True)
    # the noise's std per channel: refused before any work for a model without statistics
    noise_std = None if isinstance(spec, VAEPerturbation) else _noise_std(spec, model)
    vae = None
    if isinstance(spec, VAEPerturbation):
        vae = spec.module
        if isinstance(vae, str):
            _refuse_method_word(vae)
        if isinstance(vae, (str, os.PathLike)):
            vae = load_perturbation(vae)
        if not isinstance(vae, PerturbationVAE):
            raise TypeError(
                "perturbation must be a PerturbationVAE or the name / directory of a saved "
                f"one, or a perturbation spec; got {type(vae).__name__}"
            )
        default = _is_default_module(spec.module)
        vae.check_model(
            model,
            hint=(
                f"the default perturbation, the shipped FuXi-ENS module "
                f"{DEFAULT_PERTURBATION!r}, was trained for the channels of the shipped "
                "Held–Suarez world models; for this model pass " + _ALTERNATIVES
                if default
                else "pass " + _ALTERNATIVES
            ),
        )
    run = model_on(model, device, None)
    # the run's device and dtype from its parameters or, without any (Lorenz-96), its
    # buffers: read from the parameters alone, a float64 Lorenz-96 model ran in float32
    first = getattr(run, "stages", (run,))[0]
    dev, dtype = model_device(first), model_dtype(first)
    # float64 runs start from the data's float64 values, not their float32 rounding
    x, t0 = initial_conditions(
        ds, model, init_times=init_times, dtype="float64" if dtype == torch.float64 else "float32"
    )
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
        "spec": spec,
        "noise_std": noise_std,
        "x": x,
        "init_times": t0,
        "device": dev,
        "chunk": size,
        "amplitude": spec.amplitude,
        "leads": np.arange(1, int(steps) + 1) * model.timestep,
    }


#: the ways to perturb the members of any model's ensemble, as the errors name them
_ALTERNATIVES = (
    "perturbation=xfuxi.PerlinNoise(std_fraction=0.05) or xfuxi.GaussianNoise(std_fraction=0.05) "
    "(noise on the initial state, for any model; with perturbation_std=(...), one "
    "climatological std per channel, for a model without normalization statistics), or a "
    "FuXi-ENS module trained for the model (xfuxi.train_perturbation)"
)


def _refuse_method_word(name: str) -> None:
    """A method's word (``"gaussian"``, ``"perlin"``, ``"vae"``: the CLI's ``--method``)
    given as ``perturbation=`` names no module: say which object to pass instead (a directory
    of that name is still read as a module)."""
    word = name.strip().lower()
    if word not in PERTURBATIONS or os.path.exists(name):
        return
    spec = {
        "gaussian": "xfuxi.GaussianNoise(std_fraction=0.05)",
        "perlin": "xfuxi.PerlinNoise(std_fraction=0.05)",
        "vae": f"xfuxi.VAEPerturbation() (the shipped module {DEFAULT_PERTURBATION!r}, also "
        "the default: leave perturbation out)",
    }[word]
    raise ValueError(
        f"perturbation={name!r} names no perturbation module: a string is a module's shipped "
        f"name or checkpoint directory, not a method; for the {word} method pass the spec "
        f"perturbation={spec}"
    )


def _is_default_module(module: Any) -> bool:
    """Whether ``module`` is the shipped FuXi-ENS module (by name or loaded)."""
    name = module if isinstance(module, str) else getattr(module, "name", None)
    return name == DEFAULT_PERTURBATION


def _vae_on(vae: Any, device: Any, dtype: Any) -> Any:
    """The perturbation module on ``device`` / ``dtype``: itself if there already, else a copy."""
    import copy

    param = next(iter(vae.parameters()))
    if param.device == device and param.dtype == dtype:
        return vae
    return copy.deepcopy(vae).to(device=device, dtype=dtype)


def _noise_std(spec: PerlinNoise | GaussianNoise, model: Any) -> np.ndarray:
    """The climatological std per channel (float32, the model's channel order) that the
    Perlin and Gaussian noise is ``std_fraction`` of: the spec's ``perturbation_std``, else
    the model's normalization std.

    Raises
    ------
    ValueError
        ``perturbation_std`` does not hold one value per channel of the model; or it is not
        given, ``std_fraction`` is positive and the model has channels without statistics
        (:func:`~xfuxi.models.base.channels_without_statistics`) of a variable with
        physical units: their std of 1 would make the noise ``std_fraction`` in every
        channel's own units, 0.05 K and 0.05 m² s⁻² alike. A variable xfuxi has no units
        for, such as Lorenz-96's dimensionless ``x``, keeps 1 as its scale.
    """
    from ..data.channels import channel_name
    from ..models.base import channels_without_statistics

    kind = type(spec).__name__
    names = [channel_name(c) for c in model.channels]
    if spec.perturbation_std is not None:
        if len(spec.perturbation_std) != len(names):
            raise ValueError(
                f"{kind}.perturbation_std has {len(spec.perturbation_std)} values for the "
                f"{len(names)} channels of model {model.name!r}; give one std per channel, "
                f"in the model's channel order {names}"
            )
        return np.asarray(spec.perturbation_std, dtype="float32")
    missing = channels_without_statistics(model)  # (variables with physical units only)
    if missing and spec.std_fraction > 0:
        f = spec.std_fraction
        raise ValueError(
            f"{kind}(std_fraction={f:g}) draws noise of std_fraction × each channel's "
            f"climatological std, and model {model.name!r} has no normalization statistics "
            f"for {missing} (mean 0 and std 1: it was wrapped without stats), so these "
            f"channels would be perturbed by {f:g} in their own units ({f:g} K and {f:g} "
            f"m² s⁻² alike); give each channel's climatological std in physical units, in "
            f"the model's channel order {names}: "
            f"{kind}(std_fraction={f:g}, perturbation_std=(...)), or wrap the model with "
            "stats=xfuxi.models.base.NormStats(mean, std, diff_std) (its network then works "
            "on normalised values)"
        )
    return np.asarray(model.stats.std, dtype="float32")


def _initial_noise(spec: PerlinNoise | GaussianNoise, std: np.ndarray):
    """The initial-state noise function of the Perlin and Gaussian methods, of
    ``spec.std_fraction × std`` (:func:`_noise_std`)."""
    import torch

    amplitude = spec.std_fraction

    if isinstance(spec, GaussianNoise):

        def gaussian(gens, shape, like):
            scale = torch.as_tensor(std, device=like.device).view(1, -1, 1, 1) * amplitude
            noise = torch.stack([torch.randn(tuple(shape), generator=g) for g in gens])
            return noise.to(like.device, like.dtype) * scale

        return gaussian

    from ..perturbations.perlin import perlin_perturbations

    scales = spec.scales

    def perlin(gens, shape, like):
        fields = [
            perlin_perturbations(
                1, std=std, shape=tuple(shape[1:]), amplitude=amplitude, scales=scales,
                generator=g,
            )
            for g in gens
        ]  # fmt: skip
        return torch.cat(fields).to(like.device, like.dtype)

    return perlin


def _ensemble_arrays(setup: dict[str, Any], n: int, seed: int, progress):
    """Yield ``(lead index, states (T, n, C, H, W) numpy)`` one lead at a time."""
    import torch

    from ..models.base import check_first_step
    from ..models.ens import ensemble_rollout, member_generators

    model, vae, dev = setup["run"], setup["vae"], setup["device"]
    x, t0, size = setup["x"], setup["init_times"], setup["chunk"]
    n_t = x.shape[0]
    # rows ordered (initial time, member); the key of a row is (initial time in s, member)
    t_sec = t0.astype("datetime64[s]").astype("int64")
    keys = [(int(t_sec[i]), m) for i in range(n_t) for m in range(n)]
    rows = np.repeat(np.arange(n_t), n)
    spec = setup["spec"]
    method = spec.method
    noise = None if method == "vae" else _initial_noise(spec, setup["noise_std"])
    modules = [*getattr(model, "stages", (model,)), *([vae] if vae is not None else [])]
    modes = [m.training for m in modules]

    def restore() -> None:
        for m, mode in zip(modules, modes):
            m.train(mode)

    # inference and evaluation mode only while xfuxi computes a lead: between the leads the
    # caller's code runs with torch's state and the modules' modes as it left them
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
        )  # lazy: each rollout computes a lead at its next()
    bar = progress_bar(len(setup["leads"]), progress, f"ensemble ({method}, n={n})")
    try:
        for k in range(len(setup["leads"])):
            for m in modules:
                m.eval()
            try:
                with torch.inference_mode():
                    out = torch.cat([next(r) for r in rollouts]).float().cpu().numpy()
            finally:
                restore()
            if k == 0:  # a broken network (NaN everywhere), not a forecast
                check_first_step(out, setup["model"].name)
            bar.update(1)
            yield k, out.reshape(n_t, n, *out.shape[1:])
    finally:
        bar.close()


def _perturbation_digest(vae: Any) -> str:
    """The module's tensors (its gains are buffers that are not persistent) and config."""
    from ..models.checkpoint import tensor_digest

    return tensor_digest(vae, extra=getattr(vae, "config", {}))


def _ensemble_attrs(setup: dict[str, Any], n: int, seed: int, initial: Any) -> dict[str, Any]:
    vae, spec = setup["vae"], setup["spec"]
    attrs = forecast_attrs(setup["model"], len(setup["leads"]), initial)
    return {
        **attrs,
        "ensemble_method": spec.method,
        "ensemble_size": int(n),
        "seed": int(seed),
        "amplitude": setup["amplitude"],
        "perturbation": spec.to_json(),
        "model": setup["model"].name,
        "perturbation_model": vae.name if vae is not None else "none",
        # which module exactly: two modules of one name (a recalibrated copy) differ here
        **({"perturbation_sha256": _perturbation_digest(vae)} if vae is not None else {}),
        "source": "xfuxi.ensemble (FuXi-ENS)" if spec.method == "vae" else "xfuxi.ensemble",
    }


def _prepare(
    ds: xr.Dataset,
    *,
    model: Any = DEFAULT_MODEL,
    n: Any = None,
    steps: int | None = None,
    perturbation: Any = None,
    seed: int = 0,
    init_times: Sequence[Any] | np.ndarray | xr.DataArray | None = None,
    chunk_size: int | None = None,
    device: Any = None,
    progress: bool | None = None,
    **legacy: Any,
) -> tuple[dict[str, Any], Any]:
    """The one signature of :func:`ensemble` and :func:`ensemble_iter`: check the arguments
    and return ``(setup, generator of (lead index, states))``."""
    spec = _perturbation_spec(perturbation, legacy)  # an unknown keyword named first
    require_dataset(ds, "initial conditions")  # before the perturbation's channel check
    if n is None:  # (required: a default of its own named _prepare, not ensemble, when absent)
        raise TypeError("ensemble() missing the ensemble size n (members per initial time)")
    setup = _ensemble_setup(ds, model, n, steps, spec, seed, chunk_size, init_times, device)
    setup["attrs"] = _ensemble_attrs(setup, n, seed, ds.attrs)
    return setup, _ensemble_arrays(setup, int(n), seed, progress)


@with_signature_of(_prepare, legacy=_LEGACY_KEYWORDS, aliases=_ALIASES)
def ensemble_iter(ds: xr.Dataset, /, **options: Any) -> Iterator[xr.Dataset]:
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
    >>> lat, lon = [-30.0, 30.0], [0.0, 120.0, 240.0]
    >>> temperature = xr.DataArray(
    ...     np.full((2, 1, 2, 3), 260.0), dims=("time", "level", "latitude", "longitude"),
    ...     coords={"time": pd.date_range("2000-01-01", periods=2, freq="6h"),
    ...             "level": [850], "latitude": lat, "longitude": lon})
    >>> Last = type("Last", (torch.nn.Module,), {"forward": lambda self, x: x[:, 1]})
    >>> last = xfuxi.wrap_model(Last(), channels=[("temperature", 850.0)], latitude=lat,
    ...                         longitude=lon)
    >>> noise = GaussianNoise(perturbation_std=[10.0])  # 'last' has no statistics: 10 K
    >>> sizes = [f.sizes["number"] for f in ensemble_iter(
    ...     temperature.to_dataset(name="temperature"), model=last, n=3, steps=2,
    ...     perturbation=noise, progress=False)]
    >>> sizes
    [3, 3]
    >>> ds = temperature.to_dataset(name="temperature")
    >>> [f.sizes["number"] for f in ds.fuxi.ensemble_iter(  # through the accessor
    ...     model=last, n=2, steps=2, perturbation=noise, progress=False)]
    [2, 2]
    """
    setup, arrays = _prepare(ds, **options)
    for k, states in arrays:
        yield forecast_dataset(
            states[:, :, None],
            model=setup["model"],
            init_times=setup["init_times"],
            leads=setup["leads"][k : k + 1],
            member_dim="number",
            attrs=setup["attrs"],
        )


@with_signature_of(_prepare, legacy=_LEGACY_KEYWORDS, aliases=_ALIASES)
def ensemble(ds: xr.Dataset, /, **options: Any) -> xr.Dataset:
    """Ensemble forecast: FuXi-ENS learned perturbations, or a perturbed-initial-state baseline.

    ``ds.fuxi.ensemble(n=48)`` runs FuXi-ENS (the shipped perturbation module) on the
    shipped FuXi cascade for 10 days; explicit arguments win.

    Parameters
    ----------
    ds : xarray.Dataset
        Analysis-layout data holding, for each initial time ``t``, also ``t − 6 h``.
    model : ForecastModel or Cascade or str, default "fuxi-hs-t21-cascade"
        The deterministic forecast model (or a name for :func:`xfuxi.load_model`). With a
        :class:`~xfuxi.models.cascade.Cascade` (the default, the shipped FuXi cascade)
        each stage makes its own range of steps, as in :func:`forecast`; the members' noise
        is drawn as with a single model, and a VAE module's ``model_gain`` scales its
        perturbations before the steps of the stage it names (the shipped module has one
        for ``"fuxi-hs-t21-medium"``).
    n : int, required
        Ensemble size (members per initial time). Required: it has no default (the ``None``
        in the signature stands for a missing ``n``, which raises ``TypeError``).
    steps : int, optional
        Number of the model's steps (leads ``Δ .. steps · Δ``); default: those that make 10
        days (40 of a 6-hour model), as for :func:`~xfuxi.forecasting.deterministic.forecast`.
    perturbation : VAEPerturbation, PerlinNoise, GaussianNoise, PerturbationVAE or str, optional
        How the members are perturbed. :class:`VAEPerturbation` (default: the shipped
        ``"fuxi-ens-hs-t21"`` module, inflation 1): FuXi-ENS, the learned module perturbs
        the initial state and every step. :class:`PerlinNoise`: multi-octave Perlin noise
        (:func:`xfuxi.perturbations.perlin.perlin_perturbations`) of ``std_fraction ×
        std[c]`` added to the initial pair. :class:`GaussianNoise`: i.i.d. Gaussian noise of
        ``std_fraction × std[c]`` added to the initial pair. The last two run the
        deterministic model unperturbed afterwards; ``std[c]`` is the model's normalization
        std, or the spec's ``perturbation_std`` (required for a model without statistics).
        A module, a shipped name or a checkpoint directory stands for
        ``VAEPerturbation(module)``.
    seed : int, default 0
        Member ``m`` of initial time ``t`` draws all its noise from a generator seeded by
        ``(seed, t, m)``: same seed → same noise, whatever the batching (see Notes for what
        ``chunk_size`` may change).
    init_times : sequence of datetime-like, optional
        Initial times (default: every time whose predecessor is in ``ds``).
    chunk_size : int, optional
        Rows (initial time × member) run together in one batch; bounds memory. Default
        16 on CPU, 64 on an accelerator (at most the number of rows). On CPU a batch of 16
        keeps the activations of the memory-bound layers in cache: 48 members at T21 on
        two cores ran at a median 184 member-steps/s in batches of 16 against 151 in one
        batch of 48 (``benchmarks/bench_ensemble_speed.py``).
    device : str or torch.device, optional
        Where to run (a copy of the model is moved there). Default: where the model is (a
        model given by name is loaded on ``xfuxi.get_options()["device"]``). The run's
        dtype is the model's (that of its parameters, or of its buffers for a model without
        parameters such as Lorenz-96); a float64 model starts from the data's values, not
        from their float32 rounding. The result is float32.
    progress : bool, optional
        Progress bar (default: the ``progress`` option).
    **legacy
        ``method`` ("vae", "perlin", "gaussian"), ``amplitude`` (the VAE's inflation or the
        noise's std fraction) and ``noise_kwargs`` (Perlin ``wavelength``, ``octaves``,
        ``persistence``) still work, with a ``DeprecationWarning``.

    Returns
    -------
    xarray.Dataset
        WeatherBench2 forecast layout plus ``number``: dims ``time`` (initial time),
        ``prediction_timedelta``, ``number``, ``level``, ``latitude``, ``longitude``; attrs
        record the method, size, seed, amplitude, the perturbation spec (JSON) and models.

    Raises
    ------
    ValueError
        Bad ``n``/``steps``/``seed``/``chunk_size`` or spec values, or a perturbation
        module built for other channels or another grid. Perlin or Gaussian noise for a
        model with channels without normalization statistics (wrapped without ``stats``:
        mean 0 and std 1, no physical scale) unless the spec gives ``perturbation_std``, or
        a ``perturbation_std`` without one value per channel. A model whose network's
        first step is NaN everywhere (a broken model).
    SchemaError
        The data does not match the model (see :func:`initial_conditions`).

    Notes
    -----
    FuXi-ENS (Zhong et al. 2024; see the definitions in the documentation,
    docs/design.md): at every step ``k`` (the initial one included) the current state is
    perturbed by a sample of the learned flow-dependent prior,
    ``x_k ← x_k + inflation · D(μ_k + σ_k ε_k)``, and the model steps from the perturbed
    pair.

    What is reproducible. With the same arguments (``chunk_size`` included) on the same
    hardware, thread count and torch version, the members are bit-identical. Each member
    draws its noise from its own generator, so its noise is the same whatever
    ``chunk_size``, ``n`` or the other initial times. The arithmetic is not: CPU kernels
    (convolutions, matrix products) may round differently for a batch of another size, so
    with another ``chunk_size`` (or another ``n`` or other initial times, which change the
    batches) the members agree to float32 rounding only. Measured on the shipped cascade
    and module (T21, 8 members, chunks of 1 or 5 against 16): one step differs by at most
    3 float32 ulps of the field's largest value for the forecast model alone and 23 with
    the FuXi-ENS perturbation; like any rounding difference this grows along the rollout,
    to about 430 ulps (3e-5 of the field's largest value) after 40 steps. Exact equality
    across batch sizes would mean running the members one at a time, 3.5x slower on CPU.

    Examples
    --------
    >>> import numpy as np, pandas as pd, torch, xarray as xr, xfuxi
    >>> lat, lon = [-60.0, 0.0, 60.0], [0.0, 180.0]
    >>> Last = type("Last", (torch.nn.Module,), {"forward": lambda self, x: x[:, 1]})
    >>> last = xfuxi.wrap_model(Last(), channels=[("geopotential", 500.0)], latitude=lat,
    ...                         longitude=lon)
    >>> z500 = xr.DataArray(
    ...     np.full((3, 1, 3, 2), 5.5e4), dims=("time", "level", "latitude", "longitude"),
    ...     coords={"time": pd.date_range("2000-01-01", periods=3, freq="6h"),
    ...             "level": [500], "latitude": lat, "longitude": lon})
    >>> noise = GaussianNoise(std_fraction=0.1, perturbation_std=[400.0])  # in m² s⁻²
    >>> fc = ensemble(z500.to_dataset(name="geopotential"), model=last, n=4, steps=3,
    ...               perturbation=noise, progress=False)
    >>> fc.geopotential.dims
    ('time', 'prediction_timedelta', 'number', 'level', 'latitude', 'longitude')
    >>> bool((fc.geopotential.std("number") > 0).all())
    True

    The same through the accessor:

    >>> ds = z500.to_dataset(name="geopotential")
    >>> fc = ds.fuxi.ensemble(model=last, n=2, steps=1, perturbation=noise, progress=False)
    >>> dict(fc.geopotential.sizes)
    {'time': 2, 'prediction_timedelta': 1, 'number': 2, 'level': 1, 'latitude': 3, 'longitude': 2}
    """
    setup, arrays = _prepare(ds, **options)
    x = setup["x"]
    n = setup["attrs"]["ensemble_size"]
    out = np.empty((x.shape[0], n, len(setup["leads"]), *x.shape[2:]), dtype="float32")
    for k, states in arrays:
        out[:, :, k] = states
    return forecast_dataset(
        out,
        model=setup["model"],
        init_times=setup["init_times"],
        leads=setup["leads"],
        member_dim="number",
        attrs=setup["attrs"],
        copy=False,  # ``out`` is ours: its variables are views of it, not a second copy
    )
