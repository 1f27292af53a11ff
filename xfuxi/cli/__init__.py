"""The ``xfuxi`` command line: ``xfuxi demo``, ``xfuxi world``, ``xfuxi train``, ...

Each subcommand is a small function that parses its arguments and calls the public API.
An error ends the command with a one-line message on stderr and a non-zero exit status (the
traceback too with ``--debug`` or ``XFUXI_DEBUG=1``). Output stores and directories are
written atomically and never replace anything that xfuxi did not write: an existing
``--output`` must be empty, or an earlier xfuxi output of the same kind and ``--overwrite``
given (see the data-safety policy, docs/safety.md).

One module per command group registers its subcommands with the decorators of
:mod:`xfuxi.cli.common` (``@command``, ``@arg``, ``@config_args``, ``@function_args``);
importing it here is what adds its commands to ``xfuxi``. A new command goes into the module
of its group (or a new group module imported below). Flags that restate a configuration's
fields or a function's parameters are built from them, never written again by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from .._version import __version__
from ..options import set_options

# the command groups, in the order of ``xfuxi --help``; importing one registers its commands
from . import train, forecast, calibrate, assimilate, world, campaign, demo  # noqa: F401, I001  isort: skip
from .common import (
    COMMANDS,
    arg,
    command,
    config_args,
    function_args,
    set_command_flags,
)

__all__ = ["arg", "command", "config_args", "function_args", "main"]


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xfuxi`` command line; returns the exit status.

    A runtime error gives a one-line message on stderr and status 1 (130 when interrupted);
    with ``--debug`` or ``XFUXI_DEBUG=1`` the exception propagates with its traceback.
    """
    # the docstring's first line, its reST literals as plain text
    parser = argparse.ArgumentParser(
        prog="xfuxi", description=__doc__.splitlines()[0].replace("``", "")
    )
    parser.add_argument("--version", action="version", version=f"xfuxi {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error (or XFUXI_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    argv = sys.argv[1:] if argv is None else list(argv)
    # only the named command's flags are built: some come from the signature of a function
    # in a torch-backed module, imported then (the CLI starts without torch)
    named = next((a for a in argv if not a.startswith("-")), None)
    command = None
    for name, (add, run) in COMMANDS.items():
        p = sub.add_parser(name, help=run.help, description=run.help)
        if name == named:
            add(p)
            command = p
    args = parser.parse_args(argv)
    set_command_flags(command)  # its argument errors name its flags, not the Python names
    debug = args.debug or os.environ.get("XFUXI_DEBUG", "").strip() not in ("", "0")
    # the logging and options of the command are undone when it ends: main() called in a
    # Python session (a notebook, a test) leaves that session's settings as they were
    options = {"progress": False} if args.no_progress else {}
    with _command_logging(args.verbose), set_options(**options):
        try:
            return int(COMMANDS[args.command][1](args) or 0)
        except KeyboardInterrupt:
            if debug:
                raise
            print(f"xfuxi {args.command}: interrupted", file=sys.stderr)
            return 130
        except Exception as err:  # noqa: BLE001 - every error becomes one line, as promised
            if debug:
                raise
            print(f"xfuxi {args.command}: error: {_one_line(err)}", file=sys.stderr)
            return 1
        finally:
            set_command_flags(None)


_LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


@contextlib.contextmanager
def _command_logging(verbose: int) -> Iterator[None]:
    """What ``logging.basicConfig`` did for the command, undone when it ends.

    Unless the root logger has a handler already (a caller's logging is left alone, as
    ``basicConfig`` leaves it), a stderr handler goes on the root logger, and the level of
    the ``xfuxi`` logger is set to INFO (DEBUG with ``-v``) for the command; both are taken
    off again afterwards. The root logger keeps its level (WARNING): other libraries' INFO
    lines (jax's backends, numba) do not show, xfuxi's own do.
    """
    root = logging.getLogger()
    if root.handlers:
        yield
        return
    handler = logging.StreamHandler()  # sys.stderr, as basicConfig's
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    ours = logging.getLogger("xfuxi")
    level = ours.level
    root.addHandler(handler)
    ours.setLevel(logging.WARNING - 10 * min(verbose + 1, 2))
    try:
        yield
    finally:
        root.removeHandler(handler)
        ours.setLevel(level)
        handler.close()
