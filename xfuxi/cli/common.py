"""What every ``xfuxi`` subcommand shares: the registration decorators and the outputs on disk.

A command group module (``xfuxi.cli.forecast``, ``xfuxi.cli.train``, ...) registers its
subcommands with :func:`command`, :func:`arg` and :func:`config_args`; ``xfuxi.cli`` imports
every group module, so that registration happens before :func:`xfuxi.cli.main` builds the
parser.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from .._version import __version__
from ..config import add_arguments
from ..datasets import held_suarez_split
from ..files import OutputExistsError, check_replaceable, replace_directory

__all__ = [
    "COMMANDS",
    "OVERWRITE",
    "arg",
    "command",
    "config_args",
    "float_list",
    "load_model",
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


def config_args(cls, *, skip: tuple[str, ...] = ()):
    """Declare the flags of a configuration dataclass's fields (stack above ``@command``;
    :func:`xfuxi.config.add_arguments`, read back with :func:`xfuxi.config.from_arguments`)."""
    return arg(functools.partial(add_arguments, cls=cls, skip=skip))


OVERWRITE = dict(
    action="store_true",
    help="replace an earlier xfuxi output of this kind at --output (never anything else)",
)


def output_path(output: str, inputs: Sequence[str | None], *, kind: str, overwrite: bool) -> Path:
    """The absolute ``--output`` directory, checked before any work is done.

    It must not be, or hold, one of the ``inputs``, and must be new, an empty directory, or
    (with ``overwrite``) an earlier xfuxi output of ``kind``; otherwise
    :class:`xfuxi.files.OutputExistsError` says why.
    """
    out = Path(os.path.abspath(output))
    real = Path(os.path.realpath(out))
    for item in inputs:
        if item is None:
            continue
        src = Path(os.path.realpath(item))
        if src == real or real in src.parents:
            raise OutputExistsError(
                f"--output {output} is or holds the input {item}; choose another output path"
            )
    check_replaceable(out, kind=kind, overwrite=overwrite)
    return out


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
    """Write ``ds`` as a zarr store into a directory; encodings read from the input (a zarr-v2
    codec, chunks) are dropped, so any input gives a store of the current format."""
    return lambda store: ds.drop_encoding().to_zarr(store, mode="w")


def open_data(path: str) -> xr.Dataset:
    """Open a zarr store (a path ending in ``.zarr``) or a netCDF file."""
    if path.rstrip("/").endswith(".zarr"):
        return xr.open_zarr(path)
    return xr.open_dataset(path)


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


def float_list(text: str) -> list[float]:
    """Comma-separated numbers (``"0.5,1,2"``) as floats; blank items are skipped."""
    return [float(x) for x in text.split(",") if x.strip()]


def usage_error(command: str, message: str) -> int:
    """Report a bad argument of ``command`` on stderr; the exit status 2, as argparse's."""
    print(f"xfuxi {command}: error: {message}", file=sys.stderr)
    return 2
