"""The public surface: lazy API, accessor delegation, options, import cost."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import xfuxi
from xfuxi.accessor import FuxiDataArrayAccessor, FuxiDatasetAccessor, method_signature
from xfuxi.api import PUBLIC, resolve

ACCESSOR = {e.name: e for e in PUBLIC if e.accessor}


def test_import_does_not_import_torch():
    code = (
        "import sys, xfuxi, xfuxi.verify\n"
        "import xarray as xr, numpy as np\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", sorted(ACCESSOR))
def test_accessor_repeats_signature_and_summary(name):
    target, applies = ACCESSOR[name].target, ACCESSOR[name].accessor
    func = resolve(target)
    expected = list(method_signature(func).parameters.values())
    names = [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]
    assert [(p.name, p.kind, p.default) for p in expected] == names[1:]
    owners = {
        "both": [FuxiDatasetAccessor, FuxiDataArrayAccessor],
        "dataset": [FuxiDatasetAccessor],
        "dataarray": [FuxiDataArrayAccessor],
    }[applies]
    obj = {FuxiDatasetAccessor: xr.Dataset(), FuxiDataArrayAccessor: xr.DataArray(np.zeros(1))}
    for owner in owners:
        method = getattr(obj[owner].fuxi, name)
        assert list(inspect.signature(method).parameters.values()) == expected
        assert inspect.getdoc(method).splitlines()[0] == inspect.getdoc(func).splitlines()[0]
        # on the class (help(ds.fuxi), pydoc): self in place of the data argument
        unbound = list(inspect.signature(getattr(owner, name)).parameters.values())
        assert unbound[0].name == "self"
        assert unbound[1:] == expected


def test_help_of_the_accessor_shows_methods_without_the_data_argument():
    import pydoc

    text = pydoc.render_doc(xr.Dataset().fuxi, renderer=pydoc.plaintext)
    assert "forecast(self, *, model" in text
    assert "rmse(self, truth" in text
    heads = [line.strip(" |") for line in text.splitlines()]
    assert not [h for h in heads if h.startswith(("forecast(ds", "rmse(forecast"))]
    ds = xr.Dataset({"temperature": (("lat", "lon"), np.arange(6.0).reshape(2, 3) + 250.0)},
                    coords={"lat": [10.0, -10.0], "lon": [0.0, 120.0, 240.0]})  # fmt: skip
    xr.testing.assert_identical(FuxiDatasetAccessor.validate(ds.fuxi), ds.fuxi.validate())


@pytest.mark.parametrize("name", sorted(e.name for e in PUBLIC))
def test_lazy_names_resolve(name):
    assert getattr(xfuxi, name) is not None


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        xfuxi.nope  # noqa: B018


def test_accessor_delegates_without_mutating():
    ds = xr.Dataset({"temperature": (("lat", "lon"), np.arange(6.0).reshape(2, 3))},
                    coords={"lat": [10.0, -10.0], "lon": [0.0, 120.0, 240.0]})  # fmt: skip
    before = ds.copy(deep=True)
    out = ds.fuxi.validate()
    xr.testing.assert_identical(out, xfuxi.validate(ds))
    xr.testing.assert_identical(ds, before)


def test_options_validate_and_restore():
    with pytest.raises(ValueError, match="not a valid xfuxi option"):
        xfuxi.set_options(colour="red")
    with pytest.raises(ValueError, match="invalid value 'yes'.*expected True or False"):
        xfuxi.set_options(progress="yes")
    import torch

    with pytest.raises(ValueError, match="expected one of 'float32'.*not a torch.dtype"):
        xfuxi.set_options(dtype=torch.float64)
    old = xfuxi.get_options()["device"]
    with xfuxi.set_options(device="cuda"):
        assert xfuxi.get_options()["device"] == "cuda"
    assert xfuxi.get_options()["device"] == old
    for bad in ("gpu", "", torch.device("cpu")):  # names torch does not know failed at loading
        with pytest.raises(ValueError, match="expected a torch device name"):
            xfuxi.set_options(device=bad)
    assert xfuxi.get_options()["device"] == old
