"""The ``xfuxi`` command line: ``xfuxi demo``, ``xfuxi world``, ``xfuxi train``, ...

Each subcommand is a small function that parses its arguments and calls the public API.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]

log = logging.getLogger("xfuxi")

# subcommand name -> (function adding its arguments, function running it); one entry per command
_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {}


def command(name: str, help: str):  # noqa: A002
    """Register a subcommand: decorate ``run(args) -> int``; its ``.arguments`` adds options."""

    def deco(run: Callable[..., int]) -> Callable[..., int]:
        def add(p: argparse.ArgumentParser) -> None:
            for args, kwargs in getattr(run, "_arguments", []):
                p.add_argument(*args, **kwargs)

        run.help = help  # type: ignore[attr-defined]
        _COMMANDS[name] = (add, run)
        return run

    return deco


def arg(*args, **kwargs):
    """Declare one argparse argument of a subcommand (stack above ``@command``)."""

    def deco(run):
        run._arguments = [(args, kwargs), *getattr(run, "_arguments", [])]
        return run

    return deco


# ---------------------------------------------------------------------------------------------
# subcommands (each group owned by its subsystem)
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xfuxi", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add, run) in _COMMANDS.items():
        p = sub.add_parser(name, help=run.help, description=run.help)
        add(p)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose + 1, 2),
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    from .options import set_options

    if args.no_progress:
        set_options(progress=False)
    return int(_COMMANDS[args.command][1](args) or 0)


if __name__ == "__main__":
    sys.exit(main())
