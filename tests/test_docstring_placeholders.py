"""Every public function's docstring is filled in: no ``{{name}}`` placeholder of the shared
docstring parts is left (a decorator put on the wrong function leaves one)."""

from __future__ import annotations

import re

import xfuxi
from xfuxi.api import PUBLIC, resolve


def test_no_public_docstring_keeps_a_placeholder():
    left = {}
    for entry in PUBLIC:
        obj = resolve(entry.target)
        found = re.findall(r"\{\{\w+\}\}", getattr(obj, "__doc__", None) or "")
        if found:
            left[entry.name] = sorted(set(found))
    assert not left, left
    assert xfuxi.radiosonde_observations.__doc__.count("truth :") == 1
