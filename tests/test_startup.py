"""``import xfuxi`` is light (issue 27 item 6): no xarray, NumPy or torch until needed."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_import_xfuxi_imports_neither_xarray_numpy_nor_torch_and_the_accessor_follows():
    _run(
        "import sys, xfuxi\n"
        "heavy = [m for m in ('xarray', 'numpy', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from xfuxi.api import PUBLIC\n"
        "assert {e.name for e in PUBLIC} <= set(xfuxi.__all__) <= set(dir(xfuxi))\n"
        "own_imports = {'sys', 'Any', 'ModuleType', 'ModuleSpec', 'importlib', 'annotations'}\n"
        "assert not own_imports & set(dir(xfuxi)), own_imports & set(dir(xfuxi))\n"
        "assert 'options' in dir(xfuxi)  # a submodule, for tab completion\n"
        "import xarray as xr\n"
        "assert 'xfuxi.accessor' in sys.modules\n"
        "ds = xr.Dataset({'a': ('x', [1.0, 2.0])})\n"
        "assert type(ds.fuxi).__name__ == 'FuxiDatasetAccessor'\n"
        "assert type(ds.a.fuxi).__name__ == 'FuxiDataArrayAccessor'\n"
        "assert type(xr.__spec__.loader).__module__ != 'xfuxi'  # the hook left no trace\n"
        "assert not [f for f in sys.meta_path if type(f).__module__ == 'xfuxi']\n"
    )


def test_accessor_registered_when_xarray_came_first_and_through_lazy_names():
    _run(
        "import xarray as xr, xfuxi\n"
        "assert hasattr(xr.Dataset, 'fuxi') and hasattr(xr.DataArray, 'fuxi')\n"
    )
    _run(
        "import sys, xfuxi\n"
        "xfuxi.rmse  # loads verification, which imports xarray\n"
        "import xarray as xr\n"
        "assert hasattr(xr.Dataset, 'fuxi')\n"
        "assert 'torch' not in sys.modules\n"
    )
