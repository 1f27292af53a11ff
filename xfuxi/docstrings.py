"""Docstring templates: describe a parameter once, use the description in many docstrings.

A docstring line holding only ``{{name}}`` (indented) is replaced by the part ``name`` of a
table of parts, indented the same way. A module makes its decorator once from its table
(``_doc = docstring_parts({...})``) and decorates the functions that share parameters.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar

__all__ = ["docstring_parts", "unexpected_keywords", "with_signature_of"]

F = TypeVar("F", bound=Callable)
P = ParamSpec("P")
R = TypeVar("R")

_PLACEHOLDER = re.compile(r"^([ \t]*)\{\{(\w+)\}\}[ \t]*$", re.MULTILINE)


def docstring_parts(parts: Mapping[str, str]) -> Callable[[F], F]:
    """A decorator that replaces the ``{{name}}`` lines of a docstring by ``parts[name]``.

    Parameters
    ----------
    parts : mapping of str to str
        Name → text (numpydoc lines, unindented).

    Returns
    -------
    callable
        The decorator; it raises ``KeyError`` naming a placeholder without a part, at import
        time, so a typo cannot go unnoticed.

    Examples
    --------
    >>> doc = docstring_parts({"ax": "ax : matplotlib Axes, optional\\n    Axes to draw into."})
    >>> @doc
    ... def f():
    ...     '''Parameters
    ...     ----------
    ...     {{ax}}
    ...     '''
    >>> print(f.__doc__.splitlines()[3].strip())
    Axes to draw into.
    """
    table = dict(parts)

    def indent(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in table:
            raise KeyError(
                f"docstring placeholder {{{{{name}}}}} names no part; known: {sorted(table)}"
            )
        pad = match.group(1)
        return "\n".join(pad + line if line else line for line in table[name].split("\n"))

    def deco(func: F) -> F:
        if func.__doc__:
            func.__doc__ = _PLACEHOLDER.sub(indent, func.__doc__)
        return func

    return deco


def unexpected_keywords(
    function: str,
    unknown: Iterable[str],
    known: Iterable[str],
    aliases: Mapping[str, str] | None = None,
) -> TypeError:
    """The ``TypeError`` for keywords that ``function`` does not take, proposing the closest
    known name for each misspelt one (or the one ``aliases`` gives for a name of another
    library's, ``{"members": "n"}``).

    Examples
    --------
    >>> raise unexpected_keywords("forecast", ["n_steps"], ["model", "steps", "init_times"])
    Traceback (most recent call last):
    ...
    TypeError: forecast() got an unexpected keyword argument 'n_steps' (did you mean 'steps'?)
    """
    unknown, known = sorted(unknown), list(known)
    hints = []
    for name in unknown:
        close = [aliases[name]] if aliases and name in aliases else []
        close = close or difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if not close:  # n_members for n, lead_steps for steps: a name that holds the other
            close = [k for k in known if k in name.split("_")]
        hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    what = "an unexpected keyword argument" if len(unknown) == 1 else "unexpected keyword arguments"
    return TypeError(f"{function}() got {what} {', '.join(hints)}")


def with_signature_of(
    source: Callable[P, Any],
    *,
    legacy: Iterable[str] = (),
    aliases: Mapping[str, str] | None = None,
) -> Callable[[Callable[..., R]], Callable[P, R]]:
    """A decorator giving ``func(data, /, **options)`` the signature of ``source``.

    Pairs such as ``forecast`` / ``forecast_iter`` take the same arguments: they are written
    once, in the private function both call, and ``help()``, IDEs and the ``.fuxi``
    accessor show them on both (with the decorated function's return annotation), and so
    do type checkers (``source``'s parameters, ``func``'s return type). A keyword that
    ``source`` does not take is refused in ``func``'s name, with the closest name it does
    take (not by the private function, whose name the user never wrote). A ``source`` that
    takes ``**kwargs`` accepts anything, unless ``legacy`` names the old
    keywords those are for; ``aliases`` maps other libraries' names to the proposed one.

    Examples
    --------
    >>> def _run(data, *, steps: int = 1): ...
    >>> @with_signature_of(_run)
    ... def run(data, /, **options) -> int: ...
    >>> list(inspect.signature(run).parameters)
    ['data', 'steps']
    >>> run(None, step=2)
    Traceback (most recent call last):
    ...
    TypeError: run() got an unexpected keyword argument 'step' (did you mean 'steps'?)
    """
    sig = inspect.signature(source)
    params = sig.parameters.values()
    legacy = tuple(legacy)
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params) and not legacy
    names = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def deco(func: Callable[..., R]) -> Callable[P, R]:
        ret = inspect.signature(func).return_annotation

        @functools.wraps(func)
        def checked(*args, **kwargs):
            unknown = [] if open_ended else [k for k in kwargs if k not in names + list(legacy)]
            if unknown:
                raise unexpected_keywords(func.__name__, unknown, names, aliases)
            return func(*args, **kwargs)

        checked.__signature__ = sig.replace(return_annotation=ret)  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return deco
