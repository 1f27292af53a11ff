"""Jupyter's view of the cycling layer's configuration-like objects (methods, observation
networks, BackgroundErrorData): a small escaped table of their fields, as a Config's, that
never dumps the data of a Dataset, an array or a tensor they hold."""

from __future__ import annotations

import dataclasses
import html.parser

import numpy as np
import pytest
import torch
import xarray as xr

from xfuxi.assimilation.config import BackgroundError, BackgroundErrorData
from xfuxi.assimilation.cycle import (
    En4DVarMethod,
    HybridGainMethod,
    LETKFMethod,
    RadiosondeNetwork,
)
from xfuxi.assimilation.da_cycle import FuXiDAMethod, ImagerNetwork
from xfuxi.assimilation.radiance_cycle import ImagerSondeNetwork, RadianceEn4DVarMethod
from xfuxi.models.base import NormStats
from xfuxi.models.fuxi_da import FuXiDA, FuXiDANet

#: a string that must come out escaped
NASTY = "a<b & c>d"
#: no summary is longer than this, whatever data a field holds
LIMIT = 5000


def _tiny_da(name: str = "tiny-corr") -> FuXiDA:
    """An untrained CORR network (it reads no radiance) on a 2 × 4 grid of one channel."""
    torch.manual_seed(0)
    return FuXiDA(
        FuXiDANet(1, 0, width=2, scales=1),
        channels=[("temperature", 500.0)],
        latitude=[-45.0, 45.0],
        longitude=[0.0, 90.0, 180.0, 270.0],
        stats=NormStats(np.array([250.0]), np.array([5.0]), np.array([0.2])),
        name=name,
    )


def _big() -> tuple[np.ndarray, torch.Tensor, xr.Dataset]:
    array = np.random.default_rng(0).normal(size=(100, 100))
    dataset = xr.Dataset(
        {
            "temperature": (("latitude", "longitude"), array),
            "wind": (("latitude", "longitude"), array),
        }
    )
    return array, torch.randn(3, 2, 100, 100, dtype=torch.float64), dataset


def _cases() -> list[tuple[str, object, list[str]]]:
    """(id, object with a string field holding NASTY and a field holding big data where it
    has one, its public fields)."""
    array, tensor, dataset = _big()
    out = [
        ("LETKFMethod", LETKFMethod(name=NASTY, additive=tensor)),
        (
            "En4DVarMethod",
            En4DVarMethod(
                name=NASTY,
                static=tensor.float(),
                spread=array,
                background_error=BackgroundError(hybrid_weight=0.5),
            ),
        ),
        (
            "HybridGainMethod",
            HybridGainMethod(
                name=NASTY,
                variational=En4DVarMethod(
                    n_slots=1,
                    static=tensor.float(),
                    background_error=BackgroundError(hybrid_weight=0.5),
                ),
            ),
        ),
        ("RadianceEn4DVarMethod", RadianceEn4DVarMethod(name=NASTY, spread=dataset)),
        ("RadiosondeNetwork", RadiosondeNetwork(variables=(NASTY,))),
        ("ImagerNetwork", ImagerNetwork(channels=(NASTY,))),
        (
            "ImagerSondeNetwork",
            ImagerSondeNetwork(radiosondes=RadiosondeNetwork(variables=(NASTY,))),
        ),
        (
            "BackgroundErrorData",
            BackgroundErrorData(  # the string: a DataArray's name
                spread=dataset["temperature"].rename(NASTY), members=dataset, static_b=dataset
            ),
        ),
    ]
    cases = [(k, obj, [f.name for f in dataclasses.fields(obj)]) for k, obj in out]
    da = FuXiDAMethod(_tiny_da(NASTY), precision="bfloat16")
    cases.append(
        (
            "FuXiDAMethod",
            da,
            ["model", "allow_missing_channels", "allow_new_satellites", "precision", "name"],
        )
    )
    return cases


CASES = _cases()


class _Checker(html.parser.HTMLParser):
    """Records the text and checks that every tag opened is closed, in order."""

    VOID = {"br", "hr", "img", "input", "meta", "link", "col", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.errors: list[str] = []
        self.headers: list[str] = []
        self._in_th = False

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
        self._in_th = tag == "th"

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()
        self._in_th = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_th:
            self.headers.append(data)


def _parse(out: str) -> _Checker:
    checker = _Checker()
    checker.feed(out)
    checker.close()
    return checker


@pytest.mark.parametrize("key, obj, names", CASES, ids=[c[0] for c in CASES])
def test_html_is_a_short_well_formed_escaped_table_of_every_field(key, obj, names):
    out = obj._repr_html_()
    assert isinstance(out, str) and out.startswith('<div class="xfuxi-summary"><table>')
    assert len(out) < LIMIT, f"{key}: {len(out)} characters"
    checker = _parse(out)
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    # one row per public field, named in its header cell
    assert checker.headers == names
    assert out.count("<tr>") == len(names)
    # the string value comes out escaped, and reads back as it was
    assert NASTY not in out and "a&lt;b &amp; c&gt;d" in out
    assert NASTY in "".join(checker.text)
    # the class is named
    assert type(obj).__name__ in "".join(checker.text)


@pytest.mark.parametrize("key, obj, names", CASES, ids=[c[0] for c in CASES])
def test_html_never_dumps_data(key, obj, names):
    out = obj._repr_html_()
    # no numbers of a 100 × 100 array (its repr would show many of them, or "...")
    assert "..." not in out and "array(" not in out and "tensor(" not in out
    assert "Conv2d" not in out  # a network by its name and size, not its module tree


def test_values_are_summarised_by_type_and_shape():
    array, tensor, dataset = _big()
    out = BackgroundErrorData(spread=array, members=dataset)._repr_html_()
    assert "ndarray (shape (100, 100), float64)" in out
    assert "Dataset (latitude: 100, longitude: 100)" in out and "temperature" in out
    out = LETKFMethod(additive=tensor)._repr_html_()
    assert "Tensor (shape (3, 2, 100, 100), torch.float64)" in out
    out = FuXiDAMethod(_tiny_da())._repr_html_()
    assert "<b>FuXiDAMethod(&#x27;tiny-corr&#x27;)</b>" in out  # as its repr
    assert "FuXiDA &#x27;tiny-corr&#x27;" in out and "parameters)" in out


def test_changed_fields_are_bold_and_nested_options_show_their_changes():
    out = LETKFMethod()._repr_html_()
    assert '<td style="text-align:left"><b>' not in out  # all defaults: nothing in bold
    out = En4DVarMethod(n_slots=3, background_error=BackgroundError(n_members=20))._repr_html_()
    assert "<b>3</b>" in out and "<b>BackgroundError(n_members=20)</b>" in out
    assert "Minimiser()" in out  # a nested configuration at its defaults
    hybrid = HybridGainMethod(
        letkf=LETKFMethod(additive_scale=2.0), variational=En4DVarMethod(n_slots=1)
    )
    out = hybrid._repr_html_()
    assert "<b>LETKFMethod(additive_scale=2.0)</b>" in out
    assert "<b>En4DVarMethod(n_slots=1)</b>" in out
    out = FuXiDAMethod(_tiny_da(), allow_new_satellites=True)._repr_html_()
    assert "<b>True</b>" in out and "<b>False</b>" not in out


def test_text_reprs_are_unchanged():
    assert repr(FuXiDAMethod(_tiny_da())) == "FuXiDAMethod('tiny-corr')"
    assert repr(RadiosondeNetwork()) == (
        "RadiosondeNetwork(n_sites=300, variables=None, error_fraction=0.1, seed=0)"
    )
    assert repr(BackgroundErrorData(spread=np.zeros(3))) == (
        "BackgroundErrorData(spread=ndarray, members=None, static_b=None)"
    )
