"""Typed configurations: small frozen dataclasses, saved as JSON, turned into CLI flags.

Options that travel together (the background-error options of 4DVar, a training run, an
ensemble's perturbations) are one frozen dataclass deriving from :class:`Config`. One
schema serves three uses:

* provenance: :meth:`Config.to_dict` / :meth:`Config.to_json` are saved with every
  checkpoint and written result, and :meth:`Config.from_dict` reads them back (unknown keys
  are an error, so a typo never passes silently);
* validation: a subclass checks its values in ``__post_init__`` and raises ``ValueError``
  naming the field (:func:`check_integers` and :func:`check_number` say it alike for every
  configuration);
* the command line: :func:`add_arguments` builds ``--flags`` from the fields (their types,
  defaults and the ``help`` in the field metadata) and :func:`from_arguments` builds the
  dataclass back from the parsed namespace.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import html
import json
import os
import sys
import types
import typing
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, get_args, get_origin, get_type_hints

import numpy as np

__all__ = [
    "Config",
    "FlagError",
    "add_arguments",
    "check_flag",
    "check_integers",
    "check_number",
    "check_run_place",
    "check_seed",
    "config_with_legacy",
    "field",
    "from_arguments",
    "is_integer",
    "require_package",
    "summary_html",
]

C = TypeVar("C", bound="Config")


def field(default: Any = dataclasses.MISSING, *, help: str = "", cli: bool = True, **kw: Any):
    """A dataclass field with a help text (shown by ``--help``) and a CLI switch."""
    return dataclasses.field(default=default, metadata={"help": help, "cli": cli}, **kw)


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of xfuxi's configuration dataclasses (frozen, JSON round trip, CLI flags).

    Every field annotated ``bool`` (or ``bool | None``) is checked to be a bool before the
    subclass's own ``__post_init__`` checks run: ``adaptive_inflation="False"`` (a truthy
    string) switched the option on.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is None or getattr(own, "_checks_flags", False):
            return

        @functools.wraps(own)
        def __post_init__(self: Config) -> None:
            self._check_flags()
            own(self)

        __post_init__._checks_flags = True  # type: ignore[attr-defined]
        cls.__post_init__ = __post_init__  # type: ignore[attr-defined]

    def __post_init__(self) -> None:
        self._check_flags()

    #: the error a subclass raises for a bad switch, where it has its own (else FlagError)
    _flag_error: ClassVar[type[Exception] | None] = None

    def _check_flags(self) -> None:
        for name, allow_none in _flag_fields(type(self)):
            try:
                check_flag(getattr(self, name), f"{type(self).__name__}.{name}",
                           allow_none=allow_none)  # fmt: skip
            except FlagError as err:
                if self._flag_error is None:
                    raise
                raise self._flag_error(str(err)) from None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (nested configurations as dicts, tuples as lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any] | None) -> C:
        """Build from a dict as written by :meth:`to_dict`; unknown keys raise ``ValueError``."""
        if data is None:
            return cls()
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__} takes a dict or a {cls.__name__}; got {type(data)}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} option(s) {unknown}; valid options are {sorted(names)}"
            )
        hints = get_type_hints(cls)
        kwargs = {}
        for key, value in data.items():
            kwargs[key] = _from_plain(hints[key], value)
        return cls(**kwargs)

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def _repr_html_(self) -> str:
        """Jupyter's view: the fields and their values, the changed ones in bold."""
        rows = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else None
            rows.append((f.name, _shown(value), value is not default and value != default))
        return summary_html(
            type(self).__name__,
            [(k, v) for k, v, _ in rows],
            bold=[k for k, _, changed in rows if changed],
        )


@functools.cache
def _flag_fields(cls: type) -> tuple[tuple[str, bool], ...]:
    """``(name, None allowed)`` of the fields of ``cls`` that are switches: annotated
    ``bool`` or an optional bool, however spelt (``bool | None``, ``Optional[bool]``, as
    a string or not)."""
    try:
        hints = get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a name only a type checker sees: read the strings
        hints = {}
    kinds = ((f.name, switch_kind(hints.get(f.name, f.type))) for f in dataclasses.fields(cls))
    return tuple((name, kind) for name, kind in kinds if kind is not None)


def switch_kind(hint: Any) -> bool | None:
    """Whether the annotation ``hint`` is a switch: ``None`` if not, ``False`` for ``bool``,
    ``True`` for an optional bool (``None`` allowed), however spelt (``bool | None``,
    ``Optional[bool]``, a string of either, quoted or not). The one rule of what
    :func:`check_flag` is applied to, in the configurations and the scores.

    Examples
    --------
    >>> switch_kind("bool"), switch_kind("bool | None"), switch_kind(int), switch_kind(bool)
    (False, True, None, False)
    """
    if isinstance(hint, str):
        spelt = hint.replace(" ", "").strip("'\"")  # (a quoted annotation, quoted again)
        if spelt == "bool":
            return False
        if spelt in ("bool|None", "None|bool", "Optional[bool]", "typing.Optional[bool]"):
            return True
        return None
    if hint is bool:
        return False
    optional = get_origin(hint) in (typing.Union, types.UnionType)
    return True if optional and set(get_args(hint)) == {bool, type(None)} else None


def _shown(value: Any) -> str:
    """A field's value for a summary: its repr, or for a network (a torch module, whose repr
    is its whole layer tree) its class and size."""
    if callable(getattr(value, "state_dict", None)) and callable(
        getattr(value, "parameters", None)
    ):
        n = sum(int(p.numel()) for p in value.parameters())
        return f"{type(value).__name__} ({n:,} parameters)"
    return repr(value)


#: xfuxi's package folder: frames of files inside it are xfuxi's own
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` made by the function that calls this one
    that attributes the warning to the first frame outside xfuxi: the user's line, whether
    the function was called directly, through another xfuxi function or through the
    ``.fuxi`` accessor (a fixed level pointed inside xfuxi through the accessor, and Python
    hides a ``DeprecationWarning`` attributed there). The ``__init__`` that
    :mod:`dataclasses` generates for a configuration (file ``<string>``) counts as xfuxi's,
    so that a warning of ``__post_init__`` names the line that built the configuration.

    Examples
    --------
    >>> user_stacklevel() >= 1
    True
    """
    frame = sys._getframe(1)  # the function that warns: stacklevel 1
    level = 1
    while frame.f_back is not None and _inside_xfuxi(frame.f_code):
        frame = frame.f_back
        level += 1
    return level


def _inside_xfuxi(code: types.CodeType) -> bool:
    """Whether a frame's code is xfuxi's: a file of the package, or the ``__init__`` that
    :mod:`dataclasses` generates (file ``<string>``) for one of its classes."""
    if code.co_filename == "<string>":
        return code.co_name == "__init__"
    return os.path.abspath(code.co_filename).startswith(_PACKAGE_DIR)


def config_with_legacy(
    cls: type[C],
    config: C | dict | None,
    legacy: dict[str, Any],
    function: str,
    *,
    parameter: str = "config",
    stacklevel: int | None = None,
) -> C:
    """``config`` (default ``cls()``) with the old keyword arguments of ``function`` applied.

    Each old keyword names a field of ``cls``; it still works, with a ``DeprecationWarning``
    that names the field and the ``parameter`` that now takes the configuration. Any other
    keyword raises ``TypeError`` as Python would.

    Parameters
    ----------
    cls : type of Config
    config : Config, dict or None
        The configuration given (a dict as written by :meth:`Config.to_dict`).
    legacy : dict
        The old keyword arguments given (``**legacy`` of ``function``).
    function : str
        The public function's name, for the messages.
    parameter : str, default "config"
        The keyword that takes the configuration now.
    stacklevel : int, optional
        Of the warning; default: the first frame outside xfuxi (:func:`user_stacklevel`),
        the user's call of ``function`` or of its accessor method.

    Returns
    -------
    Config
        An instance of ``cls`` (validated again when keywords were applied).

    Raises
    ------
    TypeError
        If ``legacy`` holds a keyword that is no field of ``cls``.
    """
    base = cls.from_dict(config) if not isinstance(config, cls) else config
    if not legacy:
        return base
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(legacy) - names)
    if unknown:  # each with the closest name, of a field or of the function's own parameters
        candidates = sorted(names | _parameters_of_caller(function))
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
            hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
        raise TypeError(f"{function}() got unexpected keyword argument(s) {', '.join(hints)}")
    keys = ", ".join(f"{k}=..." for k in legacy)
    warnings.warn(
        f"{function}({keys}) is deprecated; pass {parameter}={cls.__name__}({keys})",
        DeprecationWarning,
        stacklevel=user_stacklevel() if stacklevel is None else stacklevel,
    )
    return base.replace(**legacy)


def _parameters_of_caller(function: str, depth: int = 8) -> set[str]:
    """The named parameters of the nearest calling frame of a function called ``function``
    (the public function whose ``**legacy`` is checked; empty if none is found), for the
    "did you mean" of a misspelt keyword (``plot_map(levle=500)``: ``level``)."""
    frame = sys._getframe(1)
    for _ in range(depth):
        frame = frame.f_back
        if frame is None:
            break
        code = frame.f_code
        if code.co_name == function:
            # the parameters a keyword can name (not the positional-only ones)
            first, last = code.co_posonlyargcount, code.co_argcount + code.co_kwonlyargcount
            return set(code.co_varnames[first:last])
    return set()


def require_package(module: str, *, extra: str, what: str, hint: str = "") -> types.ModuleType:
    """Import the optional ``module``, or raise an ImportError that says what needs it and
    which extra of xfuxi installs it (a bare ``ModuleNotFoundError`` from deep inside said
    neither).

    Examples
    --------
    >>> require_package("json", extra="viz", what="this").__name__
    'json'
    >>> require_package("no_such_module_xyz", extra="viz", what="plot_map")
    Traceback (most recent call last):
    ...
    ImportError: plot_map needs no_such_module_xyz, which is not installed: pip install 'xfuxi[viz]'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.partition(".")[0]
        if err.name is not None and err.name.partition(".")[0] != top:
            raise  # the package is there; something it imports is broken: its own error
        raise ImportError(
            f"{what} needs {top}, which is not installed: pip install 'xfuxi[{extra}]'{hint}"
        ) from err


class FlagError(TypeError, ValueError):
    """A switch that is not True or False: a wrong type, caught as TypeError, and (as the
    checks of some options raised before there was one check for all) as ValueError."""


def check_flag(value: Any, name: str, *, allow_none: bool = False) -> bool | None:
    """``value`` as a bool, or a TypeError naming ``name``: a switch is True or False
    (``None`` too where ``allow_none``: the default it stands for). A string such as
    ``"False"`` or ``"no"`` is truthy, and was taken as True.

    Examples
    --------
    >>> check_flag(np.bool_(False), "fair")
    False
    >>> check_flag("False", "fair")
    Traceback (most recent call last):
    ...
    xfuxi.config.FlagError: fair must be True or False; got 'False'
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    either = "True, False or None" if allow_none else "True or False"
    raise FlagError(f"{name} must be {either}; got {value!r}")


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an integer for a count or a seed: a Python or NumPy integer, not a
    bool and not a ``numpy.timedelta64`` (which NumPy makes an integer subclass, so that a
    lead given as ``np.timedelta64(12, "h")`` would otherwise pass for 12 steps).

    Examples
    --------
    >>> import numpy as np
    >>> is_integer(3), is_integer(np.int32(3)), is_integer(True), is_integer(3.0)
    (True, True, False, False)
    >>> is_integer(np.timedelta64(12, "h"))
    False
    """
    return isinstance(value, (int, np.integer)) and not isinstance(
        value, (bool, np.bool_, np.timedelta64)
    )


#: seeds of torch's CPU generator must be below this: it keeps 32 bits of a seed, so a larger
#: one would silently draw the stream of another (``2**32 + 5`` that of ``5``)
TORCH_SEED_LIMIT = 2**32


def check_seed(value: Any, name: str = "seed") -> int:
    """Check a seed that seeds torch's CPU generator: an integer in ``[0, 2**32)``.

    torch keeps 32 bits of a seed, so two seeds that differ by a multiple of 2³² would draw
    the same numbers; a negative one, a float (``3.7`` was taken as 3), a string or a bool
    is refused as well.

    Raises
    ------
    ValueError
        Naming ``name`` and the value.

    Examples
    --------
    >>> check_seed(7)
    7
    >>> check_seed(2**32 + 7, "BackgroundError.seed")
    Traceback (most recent call last):
    ...
    ValueError: BackgroundError.seed must be an integer in [0, 2**32) (torch's generator keeps 32 bits of a seed); got 4294967303
    """  # noqa: E501
    if not is_integer(value) or not 0 <= value < TORCH_SEED_LIMIT:
        raise ValueError(
            f"{name} must be an integer in [0, 2**32) (torch's generator keeps 32 bits of a "
            f"seed); got {value!r}"
        )
    return int(value)


def check_integers(config: Config, lows: Mapping[str, int]) -> None:
    """Check that each named field of ``config`` is an integer at least its bound.

    Booleans are not integers here. The ``ValueError`` names the configuration class and
    the field, as every configuration's validation does.

    Parameters
    ----------
    config : Config
        The configuration being validated (in its ``__post_init__``).
    lows : mapping of str to int
        Field name → smallest allowed value.

    Raises
    ------
    ValueError
        ``"<Class>.<field> must be an integer >= <low>; got <value>"``.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class Run(Config):
    ...     steps: int = 10
    ...     def __post_init__(self):
    ...         check_integers(self, {"steps": 1})
    >>> Run(steps=0)
    Traceback (most recent call last):
    ...
    ValueError: Run.steps must be an integer >= 1; got 0
    """
    owner = type(config).__name__
    for label, low in lows.items():
        value = getattr(config, label)
        if not is_integer(value) or value < low:
            raise ValueError(f"{owner}.{label} must be an integer >= {low}; got {value!r}")


def check_number(
    config: Config,
    label: str,
    *,
    low: float = 0.0,
    above: bool = False,
    finite: bool = True,
    optional: bool = False,
) -> None:
    """Check that field ``label`` of ``config`` is a real number ``>= low`` (``> low``).

    Parameters
    ----------
    config : Config
        The configuration being validated (in its ``__post_init__``).
    label : str
        The field's name.
    low : float, default 0
        The bound.
    above : bool, default False
        The value must exceed ``low`` (not merely reach it).
    finite : bool, default True
        Infinity is refused too (NaN always is).
    optional : bool, default False
        ``None`` passes.

    Raises
    ------
    ValueError
        ``"<Class>.<field> must be a finite number > 0; got <value>"`` (``a number`` when
        infinity is allowed). Booleans are not numbers here.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class Rate(Config):
    ...     lr: float = 1e-3
    ...     def __post_init__(self):
    ...         check_number(self, "lr", above=True)
    >>> Rate(lr=0.0)
    Traceback (most recent call last):
    ...
    ValueError: Rate.lr must be a finite number > 0; got 0.0
    """
    value = getattr(config, label)
    if optional and value is None:
        return
    real = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if (
        not real
        or (finite and not np.isfinite(value))
        or not (value > low if above else value >= low)
    ):
        what = "a finite number" if finite else "a number"
        raise ValueError(
            f"{type(config).__name__}.{label} must be {what} {'>' if above else '>='} {low:g}; "
            f"got {value!r}"
        )


def check_run_place(config: Config) -> None:
    """Check a trainer configuration's ``checkpoint_dir`` and ``device`` (if it has one).

    Either may be ``None``. A path is kept as a string and a ``torch.device`` by its name,
    so that the configuration stays JSON.

    Raises
    ------
    ValueError
        Naming the field, for anything else.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class Run(Config):
    ...     checkpoint_dir: str | None = None
    ...     def __post_init__(self):
    ...         check_run_place(self)
    >>> import pathlib
    >>> Run(checkpoint_dir=pathlib.Path("runs") / "a").checkpoint_dir
    'runs/a'
    >>> Run(checkpoint_dir=3)
    Traceback (most recent call last):
    ...
    ValueError: Run.checkpoint_dir must be a path or None; got 3
    """
    owner = type(config).__name__
    path = config.checkpoint_dir
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"{owner}.checkpoint_dir must be a path or None; got {path!r}")
        object.__setattr__(config, "checkpoint_dir", os.fspath(path))
    device = getattr(config, "device", None)
    if device is not None:  # a torch.device (or its name): kept by its name
        if not isinstance(device, str) and not hasattr(device, "type"):
            raise ValueError(f"{owner}.device must be a torch device or None; got {device!r}")
        object.__setattr__(config, "device", str(device))


def summary_html(
    title: str, rows: typing.Sequence[tuple[str, str]], *, bold: typing.Sequence[str] = ()
) -> str:
    """A small HTML table (title, then one row per label and value) for ``_repr_html_``.

    The values are escaped; labels listed in ``bold`` are set in bold.

    Examples
    --------
    >>> print(summary_html("Window", [("n_slots", "2")]))
    <div class="xfuxi-summary"><table><caption style="text-align:left"><b>Window</b></caption><tr><th style="text-align:left">n_slots</th><td style="text-align:left">2</td></tr></table></div>
    """  # noqa: E501
    cells = []
    for label, value in rows:
        text = html.escape(str(value))
        if label in bold:
            text = f"<b>{text}</b>"
        cells.append(
            f'<tr><th style="text-align:left">{html.escape(str(label))}</th>'
            f'<td style="text-align:left">{text}</td></tr>'
        )
    return (
        '<div class="xfuxi-summary"><table><caption style="text-align:left">'
        f"<b>{html.escape(title)}</b></caption>{''.join(cells)}</table></div>"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):  # np.int64(5), np.float32(0.1): JSON takes Python's
        return value.item()
    return value


def _config_type(tp: Any) -> type[Config] | None:
    for candidate in (tp, *get_args(tp)):
        if isinstance(candidate, type) and issubclass(candidate, Config):
            return candidate
    return None


def _from_plain(tp: Any, value: Any) -> Any:
    sub = _config_type(tp)
    if sub is not None and isinstance(value, dict):
        return sub.from_dict(value)
    if isinstance(value, list) and any(get_origin(t) is tuple for t in (tp, *get_args(tp))):
        return tuple(value)
    return value


def _scalar_type(tp: Any) -> tuple[Any, bool]:
    """(the scalar type of a field for argparse, whether it takes several values)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _scalar_type(args[0])
        return str, False
    if origin is tuple:
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return (args[0] if args else str), True
    if origin is typing.Literal:
        return type(get_args(tp)[0]), False
    return tp, False


def add_arguments(
    parser: argparse.ArgumentParser, cls: type[Config], *, prefix: str = "", skip: tuple = ()
) -> None:
    """Add a ``--flag`` for each field of ``cls`` (fields with ``cli=False`` are left out).

    Booleans become ``--name`` / ``--no-name``; tuples take several values; ``Literal``
    fields get ``choices``. Defaults are not set on the parser: a flag that is not given
    leaves the dataclass default (so the default lives in one place).
    """
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True) or _config_type(hints[f.name]):
            continue
        flag = "--" + (prefix + f.name).replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f.metadata.get("help", "")
        if default is not None and default is not dataclasses.MISSING:
            help_text = f"{help_text} (default {default})".strip()
        scalar, many = _scalar_type(hints[f.name])
        dest = prefix + f.name
        if scalar is bool and not many:
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)  # fmt: skip
            continue
        kwargs: dict[str, Any] = {"dest": dest, "default": None, "help": help_text}
        if get_origin(hints[f.name]) is typing.Literal or any(
            get_origin(a) is typing.Literal for a in get_args(hints[f.name])
        ):
            lits = get_args(hints[f.name])
            if get_origin(hints[f.name]) is not typing.Literal:
                lits = next(get_args(a) for a in lits if get_origin(a) is typing.Literal)
            kwargs["choices"] = list(lits)
        if scalar in (int, float, str):
            kwargs["type"] = scalar
        if many:
            kwargs["nargs"] = "+"
        parser.add_argument(flag, **kwargs)


def from_arguments(
    cls: type[C], namespace: argparse.Namespace, *, prefix: str = "", **fixed: Any
) -> C:
    """Build ``cls`` from a namespace filled by :func:`add_arguments` (plus ``fixed`` values)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = getattr(namespace, prefix + f.name, None)
        if value is not None:
            values[f.name] = tuple(value) if isinstance(value, list) else value
    values.update(fixed)
    return cls(**values)
