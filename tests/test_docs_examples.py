"""Every public name documents itself with a runnable example (issue 23, item 3).

The API reference pages are built from the docstrings of :data:`xfuxi.api.PUBLIC`; the
doctests themselves run in the suite (``--doctest-modules``). These tests make sure that the
examples exist: an accessor method's page shows the ``.fuxi`` form, and no public function
or class is left without an example that runs (one skipped with ``+SKIP`` does not count).
"""

from __future__ import annotations

import doctest
import inspect
import re

import pytest

from xfuxi.api import PUBLIC, resolve

ACCESSOR = sorted(e.name for e in PUBLIC if e.accessor)
TARGETS = {e.name: e.target for e in PUBLIC}
# Public names that are not functions or classes (a module, a mapping of regions): their
# pages are the module docstring or a table, not a call.
NOT_CALLABLE = sorted(
    e.name for e in PUBLIC if not (inspect.isfunction(o := resolve(e.target)) or inspect.isclass(o))
)
CALLABLE = sorted(set(TARGETS) - set(NOT_CALLABLE))

_SECTION = re.compile(r"^Examples\n-{8,}\n", re.MULTILINE)
_NEXT_SECTION = re.compile(r"^\S[^\n]*\n-{3,}\n", re.MULTILINE)


def examples_section(doc: str) -> str | None:
    """The text of a numpydoc docstring's Examples section, or None if it has none."""
    match = _SECTION.search(doc)
    if match is None:
        return None
    rest = doc[match.end() :]
    end = _NEXT_SECTION.search(rest)
    return rest if end is None else rest[: end.start()]


def runnable_examples(name: str) -> list[doctest.Example]:
    """The doctest examples of ``name``'s Examples section that are not skipped."""
    doc = inspect.getdoc(resolve(TARGETS[name])) or ""
    section = examples_section(doc)
    if section is None:
        return []
    examples = doctest.DocTestParser().get_examples(section, name)
    return [e for e in examples if not e.options.get(doctest.SKIP, False)]


def test_the_section_parser():
    doc = "Summary.\n\nExamples\n--------\n>>> 1 + 1\n2\n\nNotes\n-----\n>>> 3\n3\n"
    assert examples_section(doc) == ">>> 1 + 1\n2\n\n"
    assert examples_section("Summary.\n\n>>> x.fuxi.rmse(y)\n") is None
    skipped = "Examples\n--------\n>>> 1  # doctest: +SKIP\n1\n"
    examples = doctest.DocTestParser().get_examples(examples_section(skipped))
    assert [e for e in examples if not e.options.get(doctest.SKIP, False)] == []


@pytest.mark.parametrize("name", ACCESSOR)
def test_accessor_docstring_shows_the_accessor_form(name):
    calls = [e.source for e in runnable_examples(name) if f".fuxi.{name}(" in e.source]
    assert calls, (
        f"the Examples section of xfuxi.{name} (an accessor method) has no runnable "
        f"`.fuxi.{name}(...)` call; add one (obj.fuxi.{name}(...) is xfuxi.{name}(obj, ...))"
    )


@pytest.mark.parametrize("name", CALLABLE)
def test_public_name_has_a_runnable_example(name):
    assert runnable_examples(name), (
        f"xfuxi.{name} has no Examples section with a runnable (not skipped) example"
    )


def test_the_non_callable_public_names_are_known():
    # a new public name that is neither a function nor a class must be looked at here
    assert NOT_CALLABLE == ["REGIONS", "datasets", "verify"]
