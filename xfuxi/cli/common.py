"""What every ``xfuxi`` subcommand shares: the registration decorators and the outputs on disk.

A command group module (``xfuxi.cli.forecast``, ``xfuxi.cli.train``, ...) registers its
subcommands with :func:`command`, :func:`arg`, :func:`config_args` (the flags of a
configuration dataclass) and :func:`function_args` (the flags of the parameters of the
function a command calls); ``xfuxi.cli`` imports every group module, so that registration
happens before :func:`xfuxi.cli.main` builds the parser.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from .._version import __version__
from ..config import add_arguments
from ..datasets import held_suarez_split
from ..files import (
    OutputExistsError,
    check_output_folder,
    check_replaceable,
    replace_directory,
)

__all__ = [
    "COMMANDS",
    "FunctionArgs",
    "OVERWRITE",
    "arg",
    "check_inputs_exist",
    "check_output_outside",
    "check_writable",
    "command",
    "config_args",
    "float_list",
    "function_args",
    "function_kwargs",
    "output_args",
    "load_model",
    "local_paths",
    "open_data",
    "output_path",
    "spaced_init_times",
    "usage_error",
    "world_split",
    "write_directory",
    "zarr_writer",
]

#: subcommand name -> (function adding its arguments, function running it); one entry each
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {}


def command(name: str, help: str):  # noqa: A002
    """Register a subcommand: decorate ``run(args) -> int``; its ``.arguments`` adds options."""

    def deco(run: Callable[..., int]) -> Callable[..., int]:
        def add(p: argparse.ArgumentParser) -> None:
            for args, kwargs in getattr(run, "_arguments", []):
                if len(args) == 1 and callable(args[0]):  # a group of flags (config_args)
                    args[0](p)
                else:
                    p.add_argument(*args, **kwargs)

        run.help = help  # type: ignore[attr-defined]
        COMMANDS[name] = (add, run)
        return run

    return deco


def arg(*args, **kwargs):
    """Declare one argparse argument of a subcommand (stack above ``@command``)."""

    def deco(run):
        run._arguments = [(args, kwargs), *getattr(run, "_arguments", [])]
        return run

    return deco


def config_args(
    cls,
    *,
    skip: tuple[str, ...] = (),
    aliases: Mapping[str, Sequence[str]] | None = None,
    defaults: Mapping[str, Any] | None = None,
    comma: Sequence[str] = (),
    helps: Mapping[str, str] | None = None,
):
    """Declare the flags of a configuration dataclass's fields (stack above ``@command``;
    :func:`xfuxi.config.add_arguments`, read back with :func:`xfuxi.config.from_arguments`).

    ``cls`` may be a ``"module:attribute"`` target relative to ``xfuxi``, for a class in a
    torch-backed module (imported only when the command's parser is built). ``aliases``
    maps a field to more spellings of its flag (an older name that still works);
    ``defaults`` maps a field to the command's own default, where it differs from the
    dataclass's (shown by ``--help``); the tuple fields named in ``comma`` take one
    comma-separated value (``--band 0.8,1.2``) instead of several, and show their default
    so; ``helps`` maps a field to the command's own help text (its default, if any, is for
    the text to say).
    """
    aliases, defaults, comma = dict(aliases or {}), dict(defaults or {}), tuple(comma)
    helps = dict(helps or {})

    def add(parser: argparse.ArgumentParser) -> None:
        config = _resolve(cls)
        fields = {f.name: f for f in dataclasses.fields(config)}
        unknown = sorted((set(aliases) | set(defaults) | set(comma) | set(helps)) - set(fields))
        if unknown:
            raise TypeError(f"{config.__name__} has no field(s) {unknown}")
        add_arguments(Edited(parser, fields), config, skip=skip)  # type: ignore[arg-type]

    class Edited:
        """The parser, as :func:`add_arguments` sees it: aliases and defaults applied."""

        def __init__(self, parser: argparse.ArgumentParser, fields: dict) -> None:
            self.parser, self.fields = parser, fields

        def add_argument(self, flag: str, **kwargs: Any) -> argparse.Action:
            dest = kwargs["dest"]
            if dest in comma:
                if kwargs.pop("nargs", None) != "+":
                    raise TypeError(f"{dest} is not a tuple field: it cannot be comma-separated")
                kwargs["type"] = _comma_separated(kwargs.get("type") or str)
            action = self.parser.add_argument(flag, *aliases.get(dest, ()), **kwargs)
            # the text's own "(default: ...)" gives way to the default the command line uses
            text = re.sub(_DEFAULT_NOTE, "", action.help or "")
            default = self.fields[dest].default if dest in self.fields else None
            if dest in defaults:
                action.default = default = defaults[dest]
            if dest in helps:
                action.help = helps[dest]
            elif dest in defaults or (dest in comma and default not in (None, dataclasses.MISSING)):
                action.help = f"{text} (default {_shown(default)})".strip()
            return action

    return arg(add)


#: a help text's closing "(default ...)" or "(default: ...)" (a tuple default in it too)
_DEFAULT_NOTE = r"\s*\(default[: ][^()]*(?:\([^()]*\))?[^()]*\)$"


def _resolve(target: Any) -> Any:
    """``target`` itself, or the object of a ``"module:attribute"`` target relative to xfuxi
    (a torch-backed module is imported only when a command's parser is built)."""
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(f"xfuxi.{module}"), name)


@dataclasses.dataclass(frozen=True)
class FunctionArgs:
    """The flags of some parameters of a function (see :func:`function_args`)."""

    target: Callable[..., Any] | str
    only: tuple[str, ...]
    flags: Mapping[str, tuple[str, ...]]
    defaults: Mapping[str, Any]
    types: Mapping[str, Callable[[str], Any]]
    notes: Mapping[str, str]

    def __call__(self, parser: argparse.ArgumentParser) -> None:
        fn = _resolve(self.target)
        params = inspect.signature(fn).parameters
        docs = _parameter_docs(fn)
        for name in self.only:
            if name not in params:
                raise TypeError(f"{_qualname(fn)} has no parameter {name!r}")
            p = params[name]
            has_default = name in self.defaults or p.default is not inspect.Parameter.empty
            default = self.defaults.get(name, p.default if has_default else None)
            kind, choices, many = _flag_type(p.annotation, default, docs.get(name, ("", ""))[0])
            kind = self.types.get(name, kind)
            if kind is None:
                raise TypeError(
                    f"the type of {_qualname(fn)}'s parameter {name!r} ({p.annotation}) has no "
                    "flag type: give one in types="
                )
            text = _summary(docs.get(name, ("", ""))[1], explain_none=default is None)
            text = " ".join(t for t in (text, self.notes.get(name)) if t)
            said = ["comma-separated"] if many and name not in self.types else []
            if default is not None and has_default:
                said.append(f"default {_shown(default)}")
            if said:
                text += f" ({'; '.join(said)})"
            flags = self.flags.get(name, ("--" + name.replace("_", "-"),))
            kwargs: dict[str, Any] = {"dest": name, "help": text.replace("%", "%%").strip()}
            if kind is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs["type"] = kind
                if choices:
                    kwargs["choices"] = choices
                else:  # named after the flag, not the parameter
                    kwargs["metavar"] = flags[-1].lstrip("-").replace("-", "_").upper()
            if has_default:
                kwargs["default"] = list(default) if isinstance(default, tuple) else default
            else:
                kwargs["required"] = True
            parser.add_argument(*flags, **kwargs)


def function_args(
    target: Callable[..., Any] | str,
    *,
    only: Sequence[str],
    flags: Mapping[str, Sequence[str]] | None = None,
    defaults: Mapping[str, Any] | None = None,
    types: Mapping[str, Callable[[str], Any]] | None = None,
    notes: Mapping[str, str] | None = None,
):
    """Declare flags for the parameters ``only`` of the function a command calls (stack
    above ``@command``); read them back with :func:`function_kwargs`.

    Each flag takes its type from the parameter's annotation (or default), its default from
    the signature, its help from the docstring's description of the parameter, and its
    choices from a numpydoc type such as ``{"lead", "none"}``; a sequence is given
    comma-separated. So the command line cannot drift from the Python API.

    Parameters
    ----------
    target : callable or str
        The function, or ``"module:attribute"`` relative to ``xfuxi`` for one in a
        torch-backed module (imported only when the command's parser is built).
    only : sequence of str
        The parameters that get a flag.
    flags : mapping, optional
        Parameter → its flag spellings (default ``--name-with-dashes``).
    defaults : mapping, optional
        Parameter → the command's own default, where the function has none or the
        command deliberately differs.
    types : mapping, optional
        Parameter → the function that parses its flag's text, where the annotation gives
        none.
    notes : mapping, optional
        Parameter → what the command line adds to the description.
    """
    return arg(
        FunctionArgs(
            target, tuple(only), {k: tuple(v) for k, v in (flags or {}).items()},
            dict(defaults or {}), dict(types or {}), dict(notes or {}),
        )
    )  # fmt: skip


def function_kwargs(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The values of the flags of :func:`function_args` as keyword arguments (a list as
    given on the command line becomes a tuple, as the signatures' defaults are)."""
    values = {n: getattr(args, n) for n in names}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)}"


def _shown(value: Any) -> str:
    """A default as the command line spells it (a sequence comma-separated)."""
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


_ELEMENT = {"int": int, "float": float, "str": str, "bool": bool}


def _flag_type(
    annotation: Any, default: Any, doc_type: str
) -> tuple[Callable[[str], Any] | None, list[str] | None, bool]:
    """(the flag's type, its choices, whether it is a comma-separated sequence)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    text = re.sub(r"\s*\|\s*None$|^None\s*\|\s*", "", text.strip())
    text = re.sub(r"^Optional\[(.*)\]$", r"\1", text)
    choices = re.fullmatch(r"\{(.*)\}.*", doc_type.strip())
    if choices:
        values = [c.strip().strip("'\"") for c in choices.group(1).split(",")]
        return str, values, False
    seq = re.fullmatch(r"(?:Sequence|tuple|list)\[(\w+)(?:, (?:\w+|\.\.\.))*\]", text)
    if seq and seq.group(1) in ("int", "float"):
        return _comma_separated(_ELEMENT[seq.group(1)]), None, True
    if text in _ELEMENT:
        return _ELEMENT[text], None, False
    if isinstance(default, (bool, int, float, str)):
        return type(default), None, False
    return None, None, False


def int_at_least(minimum: int, name: str) -> Callable[[str], int]:
    """The parser of a count flag: an integer of at least ``minimum``, refused by argparse
    (exit status 2, before any work) otherwise; ``name`` is how argparse names the type."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}; got {value}")
        return value

    parse.__name__ = name
    return parse


#: the parser of a count flag (``--steps``, ``--members``): an integer of at least 1
positive_int = int_at_least(1, "positive int")


def _comma_separated(element: type) -> Callable[[str], list]:
    """The parser of a comma-separated flag of ``element`` items (blank items skipped)."""

    def parse(text: str) -> list:
        return [element(x) for x in text.split(",") if x.strip()]

    parse.__name__ = f"comma-separated {element.__name__}"
    return parse


def _parameter_docs(fn: Callable[..., Any]) -> dict[str, tuple[str, str]]:
    """Parameter → (its numpydoc type, its description as plain text) from ``fn``'s docstring.

    A description that only refers on (``As for :func:`xfuxi.x`.``) is the referred
    function's description of that parameter.
    """
    doc = inspect.getdoc(fn) or ""
    match = re.search(r"^Parameters\n-+\n(.*?)(?:^\S[^\n]*\n-{3,}\n|\Z)", doc, re.M | re.S)
    out: dict[str, tuple[str, str]] = {}
    if match is None:
        return out
    entries = re.findall(r"^(\S[^\n]*)\n((?:[ \t]+\S[^\n]*\n?|\n)*)", match.group(1), re.M)
    for head, body in entries:
        names, _, doc_type = head.partition(" : ")
        text = _plain_text(" ".join(body.split()))
        for name in names.split(","):
            out[name.strip().lstrip("*")] = (doc_type.strip(), text)
    for name, (doc_type, text) in out.items():
        ref = re.fullmatch(r"As for ([\w.]*\w)\.?", text)
        if ref:
            target = _dotted(ref.group(1))
            out[name] = (doc_type, _parameter_docs(target).get(name, ("", ""))[1] if target else "")
    return out


def _summary(text: str, *, explain_none: bool) -> str:
    """The first sentence of a parameter's description, for ``--help``; with
    ``explain_none``, also the first later one that says what the default is."""
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)
    later = [s for s in sentences[1:] if "default" in s.lower()][:1] if explain_none else []
    return " ".join(sentences[:1] + later)


def _plain_text(text: str) -> str:
    """reST markup (roles, literals) as plain text."""
    text = re.sub(r":\w+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", text)
    return text.replace("``", "")


def _dotted(path: str) -> Any:
    """The object of a dotted path (``xfuxi.training.calibration.tune_amplitude``)."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part, None)
        return obj
    return None


OVERWRITE = dict(
    action="store_true",
    help="replace an earlier xfuxi output of this kind at --output (never anything else)",
)


def output_args(help: str, *, flag: str = "--output"):  # noqa: A002
    """Declare the required output flag of a command (with ``help``) and ``--overwrite``;
    ``--output`` and ``--out`` are both accepted (the trainers' flag is ``--out``)."""
    other = "--out" if flag == "--output" else "--output"

    def deco(run):
        out = arg(flag, other, dest=flag[2:], required=True, help=help)
        return out(arg("--overwrite", **OVERWRITE)(run))

    return deco


def output_path(
    output: str, inputs: Sequence[str | None], *, kind: str, overwrite: bool, flag: str = "--output"
) -> Path:
    """The absolute ``--output`` directory, checked before any work is done.

    It must not be, hold, or lie inside one of the ``inputs``, every existing folder above
    it must be a folder, and it must be new, an empty directory, or (with ``overwrite``) an
    earlier xfuxi output of ``kind``; otherwise :class:`xfuxi.files.OutputExistsError`
    says why. A leading ``~`` is the home folder, in ``output`` and ``inputs`` alike (the
    shell does not expand a quoted ``'~/fc.zarr'`` or ``--output=~/fc.zarr``). ``flag`` names
    the output in the messages (``--out``, ``--store``).
    """
    out = check_output_outside(output, inputs, flag=flag)
    if out.suffix.lower() in FILE_SUFFIXES:
        raise ValueError(
            f"{flag} {output}: this command writes a folder (a zarr store or a directory of "
            f"files), which a name ending in {out.suffix} would disguise as a single file that "
            "netCDF or GRIB readers cannot open; name it e.g. "
            f"{out.with_suffix('.zarr').name} (xfuxi.write_netcdf writes netCDF from Python)"
        )
    check_replaceable(out, kind=kind, overwrite=overwrite)
    return out


#: name endings of single-file formats, refused for the folders the commands write
FILE_SUFFIXES: frozenset[str] = frozenset(
    {".nc", ".nc4", ".netcdf", ".cdf", ".grib", ".grib2", ".grb", ".grb2", ".h5", ".hdf5"}
)


def check_output_outside(
    output: str, inputs: Sequence[str | None], *, flag: str = "--output"
) -> Path:
    """The absolute ``--output`` path (a leading ``~`` expanded), checked before any work:
    it must not be, hold, or lie inside one of the ``inputs`` (``~`` expanded too), and
    every existing folder above it must be a folder; otherwise
    :class:`xfuxi.files.OutputExistsError` says why. What lies at the path itself is for
    the caller to check (:func:`xfuxi.files.check_replaceable` for a directory,
    :func:`xfuxi.files.check_file_replaceable` for a file). ``flag`` names the output in
    the messages (``--out``, ``--store``)."""
    out = Path(os.path.abspath(os.path.expanduser(output)))
    real = Path(os.path.realpath(out))
    for item in inputs:
        if item is None:
            continue
        src = Path(os.path.realpath(os.path.expanduser(item)))
        if src == real or real in src.parents:
            raise OutputExistsError(
                f"{flag} {output} is or holds the input {item}; choose another output path"
            )
        if src in real.parents:  # e.g. in.zarr/fc.zarr: a new entry in the input store
            raise OutputExistsError(
                f"{flag} {output} lies inside the input {item}; xfuxi does not write into "
                "what it reads: choose another output path"
            )
    for parent in real.parents:  # found after the work, when the folder could not be made
        if parent.exists() and not parent.is_dir():
            raise OutputExistsError(
                f"{flag} {output} would lie inside {parent}, which is a file, not a folder"
            )
    check_writable(out, output, flag=flag)
    return out


def check_writable(out: Path, output: str, *, flag: str = "--output") -> None:
    """Raise :class:`PermissionError` naming ``flag`` unless xfuxi can write where ``out``
    goes (:func:`xfuxi.files.check_output_folder`: the nearest existing folder above it,
    by its permission bits and a probe file), before any work rather than after it."""
    try:
        check_output_folder(out)
    except PermissionError as err:
        raise PermissionError(f"{flag} {output} cannot be written: {err}") from None


def local_paths(*specs: str | None) -> list[str]:
    """The ``specs`` that name something on disk: the inputs among a command's model flags
    (a checkpoint directory is one, a shipped name such as ``fuxi-hs-t21`` is not), for
    :func:`check_output_outside`."""
    return [s for s in specs if s is not None and os.path.exists(os.path.expanduser(s))]


def check_inputs_exist(*paths: str | None) -> None:
    """Raise :class:`FileNotFoundError` (exit status 1, one line, as every command's missing
    input) for the first of ``paths`` that does not exist, before any work is done."""
    for path in paths:
        if path is not None and not os.path.exists(os.path.expanduser(path)):
            raise FileNotFoundError(f"no such file or directory: '{path}'")


def _metadata(args: argparse.Namespace) -> dict[str, Any]:
    """What the marker of a command's output records: the command, its arguments, version."""

    def plain(v: Any) -> bool:
        return v is None or isinstance(v, (str, int, float, bool, list))

    arguments = {k: v for k, v in vars(args).items() if plain(v) and k != "command"}
    return {"command": f"xfuxi {args.command}", "arguments": arguments, "xfuxi": __version__}


def write_directory(out: Path, write: Callable[[Path], None], args, *, kind: str) -> None:
    """Write the output directory ``out`` of a command atomically, marked as xfuxi's."""
    replace_directory(out, write, kind=kind, overwrite=args.overwrite, metadata=_metadata(args))


def zarr_writer(ds) -> Callable[[Path], None]:
    """Write ``ds`` as a zarr store into a directory, in zarr's format 2 with consolidated
    metadata: the layout of WeatherBench2's stores, and the one the other writers of xfuxi
    (:func:`xfuxi.write_weatherbench2`, the cycling store, the world's cache) write, which
    zarr 2 and zarr 3 both read. Encodings read from the input (a codec, chunks) are
    dropped, so any input gives the same store."""

    def write(store: Path) -> None:
        ds.drop_encoding().to_zarr(store, mode="w", consolidated=True, zarr_format=2)

    return write


def open_data(path: str) -> xr.Dataset:
    """Open what ``path`` holds, recognised by content (:func:`xfuxi.data.readers.file_kind`),
    not by name: a zarr store, a netCDF file, or ERA5 as the CDS delivers it (GRIB, or a
    zip of netCDF files: read by :func:`xfuxi.from_era5`)."""
    from ..data.readers import file_kind, from_era5

    kind = file_kind(path)
    if kind == "zarr":
        return xr.open_zarr(path)
    if kind == "netcdf":
        return xr.open_dataset(path)
    if kind in ("grib", "zip"):
        return from_era5(path)
    raise ValueError(
        f"{path} is not a zarr store, a netCDF file, GRIB or a zip of netCDF files "
        f"({'a directory without zarr metadata' if kind == 'directory' else 'unknown content'})"
    )


def world_split(split: str, days: int | None) -> xr.Dataset:
    """The Held–Suarez world's ``split`` (``days`` of it; all when ``None``)."""
    return held_suarez_split(split, days=days)


def spaced_init_times(data, model, steps: int, count: int):
    """``count`` initial times spread over ``data`` that can be verified ``steps`` steps on."""
    # torch is imported by the training package: deferred so that the CLI starts without it
    from ..training.calibration import verifiable_init_times

    if count < 1:
        raise ValueError(f"the number of initial times must be >= 1; got {count}")
    times = verifiable_init_times(data, model=model, steps=steps)
    return times[:: max(1, len(times) // count)][:count]


def load_model(name: str, *, device: str | None = None):
    """:func:`xfuxi.load_model`, imported when a command runs (the CLI starts without torch)."""
    from ..models.registry import load_model as load

    return load(name, device=device)


float_list = _comma_separated(float)
float_list.__doc__ = (
    """Comma-separated numbers (``"0.5,1,2"``) as floats; blank items are skipped."""
)


#: the running command's options: destination -> its flag (``n_members`` -> ``--n-members``)
_FLAGS: dict[str, str] = {}


def set_command_flags(parser: argparse.ArgumentParser | None) -> None:
    """Remember the flags of the command about to run, for :func:`flag_names`."""
    _FLAGS.clear()
    for action in parser._actions if parser is not None else ():
        longs = [s for s in action.option_strings if s.startswith("--")]
        if longs and action.dest not in ("help", argparse.SUPPRESS):
            _FLAGS.setdefault(action.dest, longs[0])


def flag_names(message: str) -> str:
    """``message`` with the Python names of the running command's options written as its
    flags: a configuration's field (``CycleConfig.days``) and a snake_case name that is an
    option's destination (``n_members``). Other words are left as they are.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> _ = p.add_argument("--n-members", type=int)
    >>> _ = p.add_argument("--days", type=float)
    >>> set_command_flags(p)
    >>> flag_names("n_members must be >= 2; CycleConfig.days must be > 0; days in a year")
    '--n-members must be >= 2; --days must be > 0; days in a year'
    >>> flag_names("days must be > 0")
    '--days must be > 0'
    >>> flag_names("pass CycleConfig(n_members=2) or Dataset.days")  # code and other names
    'pass CycleConfig(n_members=2) or Dataset.days'
    >>> set_command_flags(None)
    """
    if not _FLAGS:
        return message
    message = re.sub(  # a configuration's field, not code to write: not "Config(x=...)"
        r"(?<![\w.(,=])[A-Z]\w*(?:Config|Options)\.([a-z_]\w*)\b(?!\s*[=(])",
        lambda m: _FLAGS.get(m.group(1), m.group(0)),
        message,
    )
    message = re.sub(  # a one-word name where a sentence starts with it: "rtps must be"
        r"(^|[;:] )([a-z][a-z0-9]*)(?= must\b)",
        lambda m: m.group(1) + _FLAGS.get(m.group(2), m.group(2)),
        message,
    )
    return re.sub(  # (not a keyword in code shown: "QualityControl(qc_threshold=...)")
        r"(?<![\w.(,=-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b(?!\s*[=(])",
        lambda m: _FLAGS.get(m.group(0), m.group(0)),
        message,
    )


def usage_error(command: str, message: str) -> int:
    """Report a bad argument of ``command`` on stderr; the exit status 2, as argparse's.

    The options' Python names in ``message`` are written as the command's flags
    (:func:`flag_names`)."""
    print(f"xfuxi {command}: error: {flag_names(message)}", file=sys.stderr)
    return 2
