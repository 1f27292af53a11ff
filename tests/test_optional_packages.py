"""Without an optional package, the call that needs it says which one and which extra of
xfuxi installs it (a bare ModuleNotFoundError from deep inside said neither)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import xarray as xr

import xfuxi


def _without(monkeypatch, *modules):
    """Import of each of ``modules`` (and its submodules) fails, as if not installed."""
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in modules):
            monkeypatch.delitem(sys.modules, name)
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)  # import m: ModuleNotFoundError


def _field():
    return xr.DataArray(
        np.zeros((4, 8)), dims=("latitude", "longitude"),
        coords={"latitude": [-60.0, -20.0, 20.0, 60.0], "longitude": np.arange(8) * 45.0},
        name="temperature", attrs={"units": "K"},
    )  # fmt: skip


def test_plots_without_matplotlib_name_the_viz_extra(monkeypatch):
    _without(monkeypatch, "matplotlib")
    with pytest.raises(ImportError, match=r"plots needs matplotlib.*pip install 'xfuxi\[viz\]'"):
        xfuxi.plot_map(_field())


def test_a_map_without_cartopy_names_the_extra_and_plain_axes(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _without(monkeypatch, "cartopy")
    with pytest.raises(ImportError, match=r"needs cartopy.*xfuxi\[viz\].*projection='plain'"):
        xfuxi.plot_map(_field())
    ax = xfuxi.plot_map(_field(), style=xfuxi.MapStyle(projection="plain"))  # the way out
    plt.close(ax.figure)


def test_the_world_without_dinosaur_names_the_world_extra(monkeypatch):
    from xfuxi.world.simulator import package_versions

    _without(monkeypatch, "dinosaur")
    with pytest.raises(ImportError, match=r"needs dinosaur.*pip install 'xfuxi\[world\]'"):
        package_versions()


def test_a_campaign_without_dask_names_the_dask_extra(monkeypatch):
    from xfuxi.campaigns import _template

    _without(monkeypatch, "dask")
    with pytest.raises(ImportError, match=r"campaign needs dask.*pip install 'xfuxi\[dask\]'"):
        _template(None, np.array([], dtype="M8[ns]"), 1, None, {})


def test_a_broken_package_keeps_its_own_error(monkeypatch, tmp_path):
    """An optional package that is installed but fails to import something of its own is
    not reported as missing: its own error goes through."""
    from xfuxi.config import require_package

    (tmp_path / "fake_optional_pkg").mkdir()
    (tmp_path / "fake_optional_pkg" / "__init__.py").write_text("import no_such_dep_of_it\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dep_of_it") as caught:
        require_package("fake_optional_pkg", extra="viz", what="x")
    assert "pip install" not in str(caught.value)
    with pytest.raises(ImportError, match=r"x needs absent_pkg_xyz, which is not installed"):
        require_package("absent_pkg_xyz.sub", extra="viz", what="x")
