"""The ``.fuxi`` accessor on xarray objects: one-line delegation to the public functions.

Each method has the signature and docstring of the function it calls (the rows of
:mod:`xfuxi.api`), minus the first (data) argument, so Jupyter's ``?`` and tab completion
show the real thing. The accessor holds no state and imports nothing heavy until a method
is called.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import xarray as xr

from .api import accessor_entries, resolve

__all__ = ["FuxiDataArrayAccessor", "FuxiDatasetAccessor"]


class _Delegate:
    """Descriptor: ``obj.fuxi.name(*args, **kw)`` calls ``function(obj, *args, **kw)``."""

    def __init__(self, name: str, target: str) -> None:
        self.name = name
        self.target = target

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, accessor: Any, owner: type | None = None) -> Any:
        func = resolve(self.target)
        if accessor is None:
            return func

        @functools.wraps(func)
        def method(*args: Any, **kwargs: Any) -> Any:
            return func(accessor._obj, *args, **kwargs)

        sig = inspect.signature(func)
        params = list(sig.parameters.values())[1:]
        method.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        return method


class _FuxiAccessor:
    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()))


@xr.register_dataset_accessor("fuxi")
class FuxiDatasetAccessor(_FuxiAccessor):
    """xfuxi methods on ``xarray.Dataset`` (``ds.fuxi.<name>``)."""


@xr.register_dataarray_accessor("fuxi")
class FuxiDataArrayAccessor(_FuxiAccessor):
    """xfuxi methods on ``xarray.DataArray`` (``da.fuxi.<name>``)."""


def _install() -> None:
    for cls, kind in ((FuxiDatasetAccessor, "dataset"), (FuxiDataArrayAccessor, "dataarray")):
        for entry in accessor_entries(kind):
            setattr(cls, entry.name, _Delegate(entry.name, entry.target))


_install()
