"""xfuxi: the FuXi family of machine-learning weather systems, end to end on xarray.

The public API is flat and loaded lazily, so ``import xfuxi`` and all of verification
work without importing torch. Importing this package registers the ``.fuxi`` accessor
on ``xarray.Dataset`` and ``xarray.DataArray``.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import accessor as _accessor  # noqa: F401  (registers ds.fuxi / da.fuxi)
from .options import get_options, set_options

__version__ = "0.1.0"

# public name -> "module:attribute" (module relative to this package); loaded on first use.
# Each subsystem lists its public functions here; keep the groups.
_LAZY: dict[str, str] = {
    # data
    "validate": "data.schema:validate",
    "from_era5": "data.schema:from_era5",
    "from_weatherbench2": "data.schema:from_weatherbench2",
    "datasets": "datasets:",
    # models
    "ForecastModel": "models.base:ForecastModel",
    "wrap_model": "models.base:wrap_model",
}


def _register(mapping: dict[str, str]) -> None:
    _LAZY.update(mapping)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'xfuxi' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(f".{module_name}", __name__)
    value = getattr(module, attr) if attr else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["__version__", "get_options", "set_options", *_LAZY]
