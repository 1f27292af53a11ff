"""Docstring templates: describe a parameter once, use the description in many docstrings.

A docstring line holding only ``{{name}}`` (indented) is replaced by the part ``name`` of a
table of parts, indented the same way. A module makes its decorator once from its table
(``_doc = docstring_parts({...})``) and decorates the functions that share parameters.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import TypeVar

__all__ = ["docstring_parts", "with_signature_of"]

F = TypeVar("F", bound=Callable)

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


def with_signature_of(source: Callable) -> Callable[[F], F]:
    """A decorator giving ``func(data, /, **options)`` the signature of ``source``.

    Pairs such as ``forecast`` / ``forecast_iter`` take the same arguments: they are written
    once, in the private function both call, and ``help()``, IDEs and the ``.fuxi``
    accessor show them on both (with the decorated function's return annotation).

    Examples
    --------
    >>> def _run(data, *, steps: int = 1): ...
    >>> @with_signature_of(_run)
    ... def run(data, /, **options) -> int: ...
    >>> list(inspect.signature(run).parameters)
    ['data', 'steps']
    """
    sig = inspect.signature(source)

    def deco(func: F) -> F:
        ret = inspect.signature(func).return_annotation
        func.__signature__ = sig.replace(return_annotation=ret)  # type: ignore[attr-defined]
        return func

    return deco
