"""xfuxi: the FuXi family of machine-learning weather systems, end to end on xarray.

The public names are listed once in :mod:`xfuxi.api` and loaded lazily, so ``import xfuxi``
and all of verification work without importing torch. ``import xfuxi`` imports neither
xarray nor NumPy either (it takes a few tens of milliseconds): the ``.fuxi`` accessor is
registered on ``xarray.Dataset`` and ``xarray.DataArray`` at once if xarray is already
imported, else as soon as xarray is (by whoever imports it).
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

from ._version import __version__
from .api import PUBLIC, resolve
from .options import get_options, set_options  # noqa: F401  (eager: also in PUBLIC)

_TARGETS: dict[str, str] = {e.name: e.target for e in PUBLIC}


def __getattr__(name: str) -> Any:
    target = _TARGETS.get(name)
    if target is None:
        raise AttributeError(f"module 'xfuxi' has no attribute {name!r}")
    value = resolve(target)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # the public names and the package's submodules (for tab completion), not the names
    # this module imports for its own use (``sys``, ``Any``, ...)
    subpackages = {
        k for k, v in globals().items()
        if isinstance(v, ModuleType) and v.__name__.startswith(__name__ + ".")
    }  # fmt: skip
    return sorted(set(__all__) | subpackages)


def _register_accessor() -> None:
    """Register ``ds.fuxi`` / ``da.fuxi`` (imports :mod:`xfuxi.accessor`, hence xarray)."""
    from . import accessor  # noqa: F401


class _AccessorOnXarrayImport:
    """Import hook: when xarray is imported, finish its import, then register the accessor.

    It takes part in the one import of the top-level ``xarray`` module only, and removes
    itself from :data:`sys.meta_path` as it does (other modules are left to the other
    finders). It is a finder and a loader by protocol (not subclassing ``importlib.abc``,
    whose import costs more than the rest of ``import xfuxi``).
    """

    def __init__(self) -> None:
        self._loader: Any = None

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name != "xarray":
            return None
        self.remove()
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        _register_accessor()

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


if "xarray" in sys.modules:
    _register_accessor()
elif not any(isinstance(f, _AccessorOnXarrayImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _AccessorOnXarrayImport())

__all__ = ["__version__", *_TARGETS]
