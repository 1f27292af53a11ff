"""xfuxi: the FuXi family of machine-learning weather systems, end to end on xarray.

The public names are listed once in :mod:`xfuxi.api` and loaded lazily, so ``import xfuxi``
and all of verification work without importing torch. Importing this package registers
the ``.fuxi`` accessor on ``xarray.Dataset`` and ``xarray.DataArray``.
"""

from __future__ import annotations

from typing import Any

from . import accessor as _accessor  # noqa: F401  (registers ds.fuxi / da.fuxi)
from ._version import __version__
from .api import PUBLIC, resolve
from .options import get_options, set_options

_TARGETS: dict[str, str] = {e.name: e.target for e in PUBLIC}


def __getattr__(name: str) -> Any:
    target = _TARGETS.get(name)
    if target is None:
        raise AttributeError(f"module 'xfuxi' has no attribute {name!r}")
    value = resolve(target)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_TARGETS))


__all__ = ["__version__", "get_options", "set_options", *_TARGETS]
