"""Docstring templates and shared signatures (xfuxi.docstrings; issue 19: one description
of a parameter, one signature for a pair of functions)."""

from __future__ import annotations

import inspect

import pytest

import xfuxi
from xfuxi.docstrings import docstring_parts, with_signature_of


def test_parts_are_indented_and_an_unknown_part_fails_at_definition():
    doc = docstring_parts({"ax": "ax : Axes, optional\n    Axes to draw into."})

    @doc
    def f():
        """Parameters
        ----------
        {{ax}}
        """

    assert "        ax : Axes, optional\n            Axes to draw into." in f.__doc__
    with pytest.raises(KeyError, match="nope"):

        @doc
        def g():
            """{{nope}}"""


def test_iter_and_plain_functions_share_one_signature():
    def _impl(data, *, steps: int = 1, seed: int = 0): ...

    @with_signature_of(_impl)
    def run(data, /, **options) -> list: ...

    assert list(inspect.signature(run).parameters) == ["data", "steps", "seed"]
    assert inspect.signature(run).return_annotation == "list"
    # the forecast pair: one signature, shown on both (and on the accessor)
    for a, b in [(xfuxi.forecast, xfuxi.forecast_iter), (xfuxi.ensemble, xfuxi.ensemble_iter)]:
        assert inspect.signature(a).parameters == inspect.signature(b).parameters


def test_score_docstrings_fill_through_the_one_template_helper():
    # issue 19 (one implementation per concept): the scores' fill_doc is docstring_parts
    # over verify's DOC_PARTS, so an unknown part names the known ones, like every other table
    from xfuxi.verify._docs import DOC_PARTS, fill_doc

    with pytest.raises(KeyError, match="names no part; known: .*'keep_attrs'"):

        @fill_doc
        def g():
            """{{nope}}"""

    @fill_doc
    def f():
        """Parameters
        ----------
        {{keep_attrs}}
        """

    assert DOC_PARTS["keep_attrs"].splitlines()[0] in f.__doc__
