"""Typed options of FuXi-En4DVar: small frozen configurations (JSON round trip, CLI flags).

* :class:`BackgroundError` — the ensemble behind B: members, Perlin perturbations, hybrid
  weight of a static B, seed;
* :class:`BackgroundErrorData` — the data behind B besides those settings: a calibrated
  spread, a ready ensemble, static-B samples (Datasets, so not saved as JSON);
* :class:`LocalizationOptions` — horizontal, vertical and cross-variable localization;
* :class:`Window` — the assimilation window: analysis time, observation slots;
* :class:`Minimiser` — L-BFGS settings;
* :class:`QualityControl` — background check, strict mode, duplicated observations.

Each checks its values when built and raises ``ValueError`` naming the option. The
configuration an analysis used is saved as JSON in its result's ``attrs["config"]``
(provenance). See the definitions in the documentation (docs/design.md, section En4DVar).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..config import (
    Config,
    _shown,
    check_seed,
    field,
    is_integer,
    summary_html,
    user_stacklevel,
)
from .localization import Localization

__all__ = [
    "DEFAULT_LOCALIZATION",
    "BackgroundError",
    "BackgroundErrorData",
    "LocalizationOptions",
    "Minimiser",
    "QualityControl",
    "Window",
    "legacy_options",
    "localization_options",
]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not is_integer(value):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")


def _check_float(name: str, value: Any, *, low: float, strict: bool = False) -> None:
    if not _is_number(value) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if float(value) < low or (strict and float(value) == low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low:g}; got {value!r}")


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


#: longest value text in a configuration-like object's HTML summary
_SHORT_LIMIT = 200


def _differs(value: Any, default: Any) -> bool:
    """Whether a field's value differs from its default (arrays and the like: they do)."""
    if value is default:
        return False
    try:
        return bool(value != default)
    except Exception:  # an array's elementwise comparison, or a failing __eq__
        return True


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        try:
            return f.default_factory()
        except Exception:
            return dataclasses.MISSING
    return dataclasses.MISSING


def _public_fields(
    obj: Any, defaults: Mapping[str, Any] | None = None
) -> list[tuple[str, Any, bool]]:
    """(name, value, changed) of an object's public fields: a dataclass's fields (changed:
    not its default), otherwise its public instance attributes (changed: not its value in
    ``defaults``; one not there is never marked)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = []
        for f in dataclasses.fields(obj):
            if f.name.startswith("_"):
                continue
            value, default = getattr(obj, f.name), _field_default(f)
            out.append((f.name, value, default is dataclasses.MISSING or _differs(value, default)))
        return out
    defaults = defaults or {}
    return [
        (k, v, k in defaults and _differs(v, defaults[k]))
        for k, v in vars(obj).items()
        if not k.startswith("_")
    ]


def _clip(text: str, limit: int = _SHORT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: Any, depth: int = 0) -> str:
    """A field's value for an HTML summary, short: a Dataset, array or tensor by its type,
    dims or shape and dtype (never its data), a network by its name and size, a nested
    configuration or method by its class and changed fields, anything else by its repr
    (clipped)."""
    kind = type(value).__name__
    if value is None or isinstance(value, (bool, int, float, str, np.number)):
        return _clip(repr(value))
    if callable(getattr(value, "parameters", None)) and callable(
        getattr(value, "state_dict", None)
    ):  # a torch module (a forecast model, a FuXi-DA network): as a Config shows it, named
        name = getattr(value, "name", None)
        text = _shown(value)
        return _clip(text.replace(kind, f"{kind} {name!r}", 1) if isinstance(name, str) else text)
    sizes = getattr(value, "sizes", None)
    if hasattr(value, "dims") and isinstance(sizes, Mapping) and hasattr(value, "coords"):
        dims = ", ".join(f"{k}: {v}" for k, v in sizes.items())  # xarray Dataset or DataArray
        if hasattr(value, "data_vars"):
            names = list(value.data_vars)
            shown = ", ".join(map(str, names[:5])) + (", …" if len(names) > 5 else "")
            return _clip(f"{kind} ({dims}) with {len(names)} variable(s): {shown}")
        name = getattr(value, "name", None)
        head = f"{kind} {name!r}" if name is not None else kind
        return _clip(f"{head} ({dims}) {getattr(value, 'dtype', '')}".rstrip())
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # NumPy array, torch tensor
        try:
            shape = tuple(int(n) for n in value.shape)
        except Exception:
            shape = value.shape
        return _clip(f"{kind} (shape {shape}, {value.dtype})")
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and depth < 2:
        changed = [f"{k}={_short(v, depth + 1)}" for k, v, c in _public_fields(value) if c]
        return _clip(f"{kind}({', '.join(changed)})")
    if isinstance(value, (tuple, list)) and depth < 2:
        items = [_short(v, depth + 1) for v in value[:10]]
        if len(value) > 10:
            items.append(f"… {len(value)} in all")
        text = ", ".join(items)
        return _clip(
            f"({text}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{text}]"
        )
    if isinstance(value, Mapping) and depth < 2:
        items = [f"{k!r}: {_short(v, depth + 1)}" for k, v in list(value.items())[:10]]
        if len(value) > 10:
            items.append(f"… {len(value)} in all")
        return _clip("{" + ", ".join(items) + "}")
    try:
        text = repr(value)
    except Exception:
        text = f"<{kind}>"
    return _clip(text)


def _fields_html(
    obj: Any, *, title: str | None = None, defaults: Mapping[str, Any] | None = None
) -> str:
    """Jupyter's view of a configuration-like object that is not a :class:`Config` (a
    cycling method, an observation network, :class:`BackgroundErrorData`): as
    :meth:`Config._repr_html_`, a table of its public fields, values shortened (no data
    dumped), those changed from their defaults in bold. An object that is not a dataclass
    shows its public instance attributes; ``defaults`` gives the defaults of those that have
    one.

    Examples
    --------
    >>> out = _fields_html(BackgroundErrorData(spread=np.zeros((100, 100))))
    >>> "ndarray (shape (100, 100), float64)" in out and len(out) < 1000
    True
    """
    rows = _public_fields(obj, defaults)
    return summary_html(
        title or type(obj).__name__,
        [(k, _short(v)) for k, v, _ in rows],
        bold=[k for k, _, changed in rows if changed],
    )


@dataclass(frozen=True)
class BackgroundError(Config):
    """The ensemble behind the background-error covariance B.

    Members are the background at t0 − 6 h plus Perlin noise, run one model step to t0
    (:func:`~xfuxi.assimilation.members.ensemble_members`); with static samples, B is the
    hybrid ``(1 − β) B_ens + β B_static``.

    Examples
    --------
    >>> BackgroundError(n_members=50, amplitude=0.1).n_members
    50
    >>> BackgroundError(amplitude=-0.1)
    Traceback (most recent call last):
    ...
    ValueError: amplitude must be >= 0; got -0.1
    """

    n_members: int = field(200, help="ensemble members for B")
    amplitude: float | tuple[float, ...] = field(
        0.05, help="Perlin perturbation std as a fraction of perturbation_std (per channel)"
    )
    wavelength: float = field(8.0, help="Perlin wavelength in grid points (<= 1: white noise)")
    octaves: int = field(3, help="Perlin octaves")
    persistence: float = field(0.5, help="Perlin amplitude ratio of successive octaves")
    balance: Literal["auto", "geostrophic", "none"] = field(
        "auto",
        help="perturbation structure: geostrophic/hydrostatic balance, independent per "
        "channel ('none'), or 'auto' (balanced when the model has geopotential and winds)",
    )
    perturbation_std: tuple[float, ...] | None = field(
        None, help="climatological std per channel (default: the model's normalization std)"
    )
    hybrid_weight: float = field(
        0.25, help="weight beta of a static B (used only with static samples); 1: static only"
    )
    member_chunk: int = field(25, help="members per model call")
    seed: int | None = field(
        0,
        help="seed of the perturbations; None draws a fresh one (recorded in the result's "
        "provenance; not reproducible otherwise)",
    )

    def __post_init__(self) -> None:
        _check_int("n_members", self.n_members, 2)
        amp = self.amplitude
        if isinstance(amp, (list, tuple, np.ndarray)):
            amp = tuple(float(a) if _is_number(a) else a for a in np.asarray(amp).ravel())
            if not amp:
                raise ValueError("amplitude must not be empty")
            _set(self, "amplitude", amp)
            values = amp
        else:
            if _is_number(amp):
                _set(self, "amplitude", float(amp))
            values = (amp,)
        for a in values:
            _check_float("amplitude", a, low=0.0)
        _check_float("wavelength", self.wavelength, low=0.0, strict=True)
        _check_int("octaves", self.octaves, 1)
        _check_float("persistence", self.persistence, low=0.0, strict=True)
        if self.balance is None:
            _set(self, "balance", "none")
        if self.balance not in ("auto", "geostrophic", "none"):
            raise ValueError(
                f"balance must be 'auto', 'geostrophic' or 'none' (None); got {self.balance!r}"
            )
        if self.perturbation_std is not None:
            std = np.asarray(self.perturbation_std, dtype="float64")
            if std.ndim > 1:  # one std per channel: a table would be read flattened
                raise ValueError(
                    "perturbation_std must be one value per channel (a flat sequence); got an "
                    f"array of shape {std.shape}"
                )
            std = std.ravel()
            if std.size == 0 or not bool(np.isfinite(std).all()) or bool((std < 0).any()):
                raise ValueError(
                    f"perturbation_std must be finite values >= 0; got {self.perturbation_std!r}"
                )
            _set(self, "perturbation_std", tuple(float(s) for s in std))
        _check_float("hybrid_weight", self.hybrid_weight, low=0.0, strict=True)
        if float(self.hybrid_weight) > 1.0:
            raise ValueError(f"hybrid_weight must be in (0, 1]; got {self.hybrid_weight!r}")
        _check_int("member_chunk", self.member_chunk, 1)
        if self.seed is not None:
            check_seed(self.seed, "seed")

    @property
    def balance_option(self) -> str | None:
        """``balance`` as the perturbation functions take it (None for ``"none"``)."""
        return None if self.balance == "none" else self.balance


@dataclass(frozen=True)
class BackgroundErrorData:
    """The data behind B that is not a setting: a calibrated spread, ready members, static B.

    Passed to :func:`xfuxi.assimilate_4dvar` as ``error_data``; every field defaults to
    None (Perlin members, the model's own background-error std when it carries one).

    Attributes
    ----------
    spread : xarray.Dataset, array (C,) or (C, H), "innovations" or "ensemble", optional
        Background-error std per variable and level: the ensemble anomalies of each channel
        are rescaled to it (``"innovations"``: estimated from the analysis' own t0
        innovations; ``"ensemble"``: the ensemble's own spread).
    members : xarray.Dataset, optional
        A ready ensemble valid at t0 with a ``number`` dim, instead of Perlin members.
    static_b : xarray.Dataset, optional
        Samples of a static background error (``sample`` dim) for hybrid En4DVar.

    Examples
    --------
    >>> data = BackgroundErrorData(spread="innovations")
    >>> data.spread, data.members is None
    ('innovations', True)
    >>> data.replace(spread="ensemble").spread
    'ensemble'
    >>> BackgroundErrorData(spread="calibrated")
    Traceback (most recent call last):
    ...
    ValueError: spread must be a Dataset, an array, 'innovations' or 'ensemble'; got 'calibrated'
    """

    spread: Any = None
    members: Any = None
    static_b: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.spread, str) and self.spread not in ("innovations", "ensemble"):
            raise ValueError(
                "spread must be a Dataset, an array, 'innovations' or 'ensemble'; "
                f"got {self.spread!r}"
            )

    @classmethod
    def from_dict(cls, data: BackgroundErrorData | dict | None) -> BackgroundErrorData:
        """From a dict of fields (None: all defaults); an instance is returned as it is."""
        if data is None:
            return cls()
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise TypeError(
                f"error_data must be a BackgroundErrorData or a dict; got {type(data).__name__}"
            )
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(
                f"unknown BackgroundErrorData field(s) {unknown}; valid: spread, members, static_b"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> BackgroundErrorData:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = repr(value) if value is None or isinstance(value, str) else type(value).__name__
            parts.append(f"{f.name}={shown}")
        return f"BackgroundErrorData({', '.join(parts)})"

    def _repr_html_(self) -> str:
        """Jupyter's view: the fields, a Dataset or array by its dims or shape (no data)."""
        return _fields_html(self)


@dataclass(frozen=True)
class LocalizationOptions(Config):
    """Localization of the ensemble covariance (a Gaspari–Cohn or Gaussian correlation).

    ``length_scale`` None: no localization (the control has one entry per member).
    ``vertical_length_scale`` 0 turns the vertical localization off; left unset (None),
    :func:`~xfuxi.assimilation.en4dvar.assimilate_4dvar` uses
    :data:`~xfuxi.assimilation.en4dvar.DEFAULT_VERTICAL_LENGTH_SCALE` (1.0) when the
    observations span more than one pressure level and none otherwise (elsewhere unset
    means none). Built into a :class:`~xfuxi.assimilation.localization.Localization` by
    :func:`~xfuxi.assimilation.inputs.build_localization`.

    Examples
    --------
    >>> LocalizationOptions(length_scale=1500.0, vertical_length_scale=1.0).cross_variable
    1.0
    >>> LocalizationOptions(vertical_length_scale=0.0).vertical_scale is None  # explicit off
    True
    >>> LocalizationOptions.coerce(True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: localization must be None, a length scale in km, ...; got bool True
    """

    length_scale: float | None = field(
        1500.0, help="horizontal half-width in km (grid points on a 1-D grid); None: none"
    )
    vertical_length_scale: float | None = field(
        None,
        help="vertical Gaspari-Cohn half-width in ln p (1.0: about a scale height); 0: none; "
        "unset: assimilate_4dvar uses 1.0 when the observations span levels",
    )
    cross_variable: float = field(
        1.0, help="correlation factor between different variables in [0, 1] (1: none)"
    )
    kind: Literal["gaspari_cohn", "gaussian"] = field("gaspari_cohn", help="correlation function")
    variance: float = field(0.99, help="fraction of the correlation's trace kept")
    n_points: int | None = field(
        None, cli=False, help="a periodic 1-D grid of this many points (Lorenz-96)"
    )

    def __post_init__(self) -> None:
        if self.length_scale is not None:
            _check_float("localization length_scale", self.length_scale, low=0.0, strict=True)
        elif bool(self.vertical_length_scale) or self.cross_variable != 1.0:
            raise ValueError(
                "vertical_length_scale and cross_variable need a horizontal length_scale"
            )
        if self.vertical_length_scale is not None:
            _check_float("vertical_length_scale", self.vertical_length_scale, low=0.0)
            _set(self, "vertical_length_scale", float(self.vertical_length_scale))
        _check_float("cross_variable", self.cross_variable, low=0.0)
        if float(self.cross_variable) > 1.0:
            raise ValueError(f"cross_variable must be in [0, 1]; got {self.cross_variable!r}")
        if self.kind not in ("gaspari_cohn", "gaussian"):
            raise ValueError(f"kind must be 'gaspari_cohn' or 'gaussian'; got {self.kind!r}")
        _check_float("variance", self.variance, low=0.0, strict=True)
        if float(self.variance) > 1.0:
            raise ValueError(f"variance must be in (0, 1]; got {self.variance!r}")
        if self.n_points is not None:
            _check_int("n_points", self.n_points, 1)

    @property
    def enabled(self) -> bool:
        """Whether any localization is applied."""
        return self.length_scale is not None

    @property
    def vertical_scale(self) -> float | None:
        """The vertical half-width applied: None when unset or 0 (off)."""
        return self.vertical_length_scale or None

    @property
    def vertical_unset(self) -> bool:
        """Whether ``vertical_length_scale`` was left unset (None; 0 is an explicit off)."""
        return self.vertical_length_scale is None

    @classmethod
    def coerce(cls, value: Any) -> Any:
        """A :class:`LocalizationOptions` from the accepted shorthands.

        None (no localization), a length scale in km, a dict of these options (the older
        ``localization()`` argument names), or an instance; a ready
        :class:`~xfuxi.assimilation.localization.Localization` is returned as it is.
        Anything else (``True`` included) raises ``TypeError``.
        """
        if isinstance(value, (cls, Localization)):
            return value
        if value is None:
            return cls(length_scale=None)
        if _is_number(value):
            return cls(length_scale=float(value))
        if isinstance(value, dict):
            return cls.from_dict(dict(value))
        raise TypeError(
            "localization must be None, a length scale in km, a dict of LocalizationOptions, "
            f"a LocalizationOptions or a Localization; got {type(value).__name__} {value!r}"
        )


#: the localization :func:`~xfuxi.assimilation.en4dvar.assimilate_4dvar` uses when none is
#: given: Gaspari–Cohn with a 1500 km half-width (the tuned examples' value; it did better
#: than 2000 km on the validation split, see the assimilation page of the documentation,
#: docs/user-guide/assimilation.md); vertical localization by the observations' levels
#: (:data:`~xfuxi.assimilation.en4dvar.DEFAULT_VERTICAL_LENGTH_SCALE`)
DEFAULT_LOCALIZATION = LocalizationOptions()


def localization_options(value: Any) -> Any:
    """A ``localization`` argument as options, as the analyses read it
    (:func:`~xfuxi.assimilation.en4dvar.assimilate_4dvar`, the radiance analysis,
    :func:`~xfuxi.assimilation.inputs.build_localization`): as
    :meth:`LocalizationOptions.coerce`, except that a dict changes fields of
    :data:`DEFAULT_LOCALIZATION` (``{"vertical_length_scale": 0.5}`` keeps its 1500 km,
    the dataclass's own default too since it is the same).

    Examples
    --------
    >>> localization_options({"vertical_length_scale": 0.5}).length_scale
    1500.0
    >>> localization_options({"length_scale": 800.0}).length_scale
    800.0
    """
    if isinstance(value, dict) and "length_scale" not in value:
        value = {"length_scale": DEFAULT_LOCALIZATION.length_scale, **value}
    return LocalizationOptions.coerce(value)


@dataclass(frozen=True)
class Window(Config):
    """The assimilation window: analysis time and 6-hourly observation slots.

    Examples
    --------
    >>> Window(n_slots=3).n_slots
    3
    """

    n_slots: int = field(2, help="observation slots at t0, t0 + 6 h, ...")
    time: str | np.datetime64 | datetime.datetime | None = field(
        None, help="analysis time t0 (default: the background's last)"
    )
    increment_previous: bool = field(
        False,
        help="roll the model from (background at t0 - 6 h + increment, analysis) instead of "
        "(background at t0 - 6 h, analysis)",
    )

    def __post_init__(self) -> None:
        _check_int("n_slots", self.n_slots, 1)
        if self.time is not None:
            from ..data.schema import parse_time  # pandas: when a time is given

            # the one way xfuxi reads times: numbers, time zones, NaT refused by name
            _set(self, "time", str(parse_time(self.time, "time", error=ValueError)))
        if not isinstance(self.increment_previous, (bool, np.bool_)):
            raise ValueError(
                f"increment_previous must be True or False; got {self.increment_previous!r}"
            )
        _set(self, "increment_previous", bool(self.increment_previous))


@dataclass(frozen=True)
class Minimiser(Config):
    """L-BFGS minimisation of the cost (gradients by autodiff).

    Examples
    --------
    >>> Minimiser(max_iter=0).max_iter
    0
    """

    max_iter: int = field(50, help="L-BFGS iteration cap; 0 evaluates the background only")
    gtol: float = field(1e-3, help="stop when the gradient norm falls by this factor")
    optimizer: Literal["scipy", "torch"] = field(
        "scipy", help="SciPy's L-BFGS-B or torch.optim.LBFGS (strong Wolfe)"
    )
    history: int = field(20, help="L-BFGS correction pairs kept")

    def __post_init__(self) -> None:
        _check_int("max_iter", self.max_iter, 0)
        _check_float("gtol", self.gtol, low=0.0)
        if self.optimizer not in ("scipy", "torch"):
            raise ValueError(f"optimizer must be 'scipy' or 'torch'; got {self.optimizer!r}")
        _check_int("history", self.history, 1)


@dataclass(frozen=True)
class QualityControl(Config):
    """Observation quality control.

    ``qc_threshold`` ``k``: the background check rejects ``|y − H x_b| > k √(σo² + σb²)``
    (None: no check). ``strict``: raise instead of rejecting malformed observations.
    ``duplicates``: a repeated observation (the same variable, level, latitude, longitude,
    time, value and error) would be used as independent ones (its weight multiplied):
    ``"refuse"`` raises naming them; ``"first"`` keeps the first of each group with a
    warning. Observations at one place and time with different values are independent.

    Examples
    --------
    >>> QualityControl(qc_threshold=-1.0)
    Traceback (most recent call last):
    ...
    ValueError: qc_threshold must be >= 0; got -1.0
    """

    qc_threshold: float | None = field(
        5.0, help="background check factor k (reject |y - H x_b| > k sqrt(so^2 + sb^2))"
    )
    strict: bool = field(False, help="raise on bad observations instead of rejecting them")
    duplicates: Literal["refuse", "first"] = field(
        "refuse", help="observations repeated at the same place and time: refuse or keep the first"
    )

    def __post_init__(self) -> None:
        if self.qc_threshold is not None:
            _check_float("qc_threshold", self.qc_threshold, low=0.0)
        if not isinstance(self.strict, (bool, np.bool_)):
            raise ValueError(f"strict must be True or False; got {self.strict!r}")
        if self.duplicates not in ("refuse", "first"):
            raise ValueError(f"duplicates must be 'refuse' or 'first'; got {self.duplicates!r}")


#: old flat keyword -> (configuration argument, field) for the deprecated keywords; each old
#: keyword is the name of the field that took its place
LEGACY_KEYWORDS: dict[str, tuple[str, str]] = {
    name: (argument, name)
    for argument, names in (
        ("background_error", ("n_members", "amplitude", "wavelength", "octaves", "persistence",
                              "balance", "perturbation_std", "hybrid_weight", "member_chunk",
                              "seed")),
        ("window", ("n_slots", "time", "increment_previous")),
        ("minimiser", ("max_iter", "gtol", "optimizer")),
        ("quality_control", ("qc_threshold", "strict")),
    )
    for name in names
}  # fmt: skip

_CLASSES: dict[str, type[Config]] = {
    "background_error": BackgroundError,
    "window": Window,
    "minimiser": Minimiser,
    "quality_control": QualityControl,
}


def legacy_options(
    where: str, configs: dict[str, Any], legacy: dict[str, Any], *, allowed: tuple[str, ...]
) -> dict[str, Any]:
    """Fold deprecated flat keywords into the configurations, with a ``DeprecationWarning``.

    Parameters
    ----------
    where : str
        The function's name (for the messages).
    configs : dict
        Configuration argument name -> the value given (None: the default).
    legacy : dict
        The extra keywords the function received.
    allowed : tuple of str
        Old keywords this function accepts.

    Returns
    -------
    dict
        ``configs`` with every entry a configuration instance.

    Raises
    ------
    TypeError
        An unknown keyword, or a configuration of the wrong type.
    """
    out = {}
    for name, value in configs.items():
        cls = _CLASSES[name]
        if value is None:
            value = cls()
        elif isinstance(value, dict):
            value = cls.from_dict(value)
        elif not isinstance(value, cls):
            raise TypeError(f"{where}: {name} must be a {cls.__name__}; got {type(value).__name__}")
        out[name] = value
    changes: dict[str, dict[str, Any]] = {}
    for key, value in legacy.items():
        if key not in allowed or key not in LEGACY_KEYWORDS:
            raise TypeError(f"{where}() got an unexpected keyword argument {key!r}")
        target, fld = LEGACY_KEYWORDS[key]
        cls = _CLASSES[target]
        warnings.warn(
            f"{where}({key}=...) is deprecated; use {target}={cls.__name__}({fld}=...)",
            DeprecationWarning,
            stacklevel=user_stacklevel(),
        )
        if fld in ("amplitude", "perturbation_std") and value is not None and not _is_number(value):
            value = tuple(np.asarray(value, dtype="float64").ravel().tolist())
        if fld == "time" and value is not None:
            value = str(value)
        changes.setdefault(target, {})[fld] = value
    for target, fields in changes.items():
        out[target] = out[target].replace(**fields)
    return out
