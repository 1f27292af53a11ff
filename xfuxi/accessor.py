"""The ``.fuxi`` accessor on xarray objects: one-line delegation to the public functions.

Each method has the signature and docstring of the function it calls (the rows of
:mod:`xfuxi.api`), minus the first (data) argument, with its annotations evaluated (not the
strings that ``from __future__ import annotations`` leaves), so Jupyter's ``?``, ``help`` and
the completion of method names (``ds.fuxi.fo<TAB>``) show the real thing. Keywords inside an
accessor call (``ds.fuxi.forecast(st<TAB>``) complete only where IPython evaluates the
expression before the parenthesis, which its default policy does not do for ``ds.fuxi`` (nor
for xarray's own ``ds.isel(dro<TAB>`` without Jedi): ``%config IPCompleter.evaluation =
"unsafe"`` turns it on; the functions (``xfuxi.forecast(ds, st<TAB>``) complete by default.
The accessor holds no state and imports nothing heavy until a method is called. A Dataset's
method asked of a DataArray says how to make a Dataset of it.

All of this holds at run time only. Static type checkers (mypy, pyright) and the IDEs built on
them see ``ds.fuxi`` as ``Any`` (xarray types accessors through ``__getattr__``, and the
methods are attached when this module is imported): calls through the accessor are not
checked. Call the functions (``xfuxi.forecast(ds, ...)``) where static checks matter; they
carry full annotations.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import xarray as xr

from .api import accessor_entries, resolve

__all__ = ["FuxiDataArrayAccessor", "FuxiDatasetAccessor", "method_signature"]


class _Delegate:
    """Descriptor: ``obj.fuxi.name(*args, **kw)`` calls ``function(obj, *args, **kw)``."""

    def __init__(self, name: str, target: str) -> None:
        self.name = name
        self.target = target

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, accessor: Any, owner: type | None = None) -> Any:
        func = resolve(self.target)
        if accessor is None:  # on the class (help(ds.fuxi), pydoc): a method taking self
            return _unbound(func)

        @functools.wraps(func)
        def method(*args: Any, **kwargs: Any) -> Any:
            return func(accessor._obj, *args, **kwargs)

        method.__signature__ = method_signature(func)  # type: ignore[attr-defined]
        return method


@functools.cache
def _unbound(func: Any) -> Any:
    """``func`` as the accessor class holds it: ``self`` in place of the data argument."""

    @functools.wraps(func)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return func(self._obj, *args, **kwargs)

    sig = method_signature(func)
    rest = list(sig.parameters.values())
    only = bool(rest) and rest[0].kind is inspect.Parameter.POSITIONAL_ONLY
    kind = inspect.Parameter.POSITIONAL_ONLY if only else inspect.Parameter.POSITIONAL_OR_KEYWORD
    this = inspect.Parameter("self", kind)
    method.__signature__ = sig.replace(parameters=[this, *rest])  # type: ignore[attr-defined]
    return method


def method_signature(func: Any) -> inspect.Signature:
    """The signature of ``func`` without its first (data) parameter, annotations evaluated.

    A function whose annotations cannot be evaluated (a name imported only for type
    checking) keeps them as the strings they are.

    Examples
    --------
    >>> from xfuxi.verify.deterministic import rmse
    >>> method_signature(rmse).parameters["skipna"].annotation
    <class 'bool'>
    """
    sig = inspect.signature(func)
    namespace = getattr(inspect.unwrap(func), "__globals__", {})

    def evaluate(annotation: Any) -> Any:
        if not isinstance(annotation, str):
            return annotation
        try:
            return eval(annotation, dict(namespace))  # noqa: S307 - the module's own annotation
        except Exception:  # noqa: BLE001 - a name imported only for type checking: keep it
            return annotation

    params = [p.replace(annotation=evaluate(p.annotation)) for p in sig.parameters.values()]
    sig = sig.replace(parameters=params, return_annotation=evaluate(sig.return_annotation))
    return sig.replace(parameters=list(sig.parameters.values())[1:])


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

    def __getattr__(self, name: str) -> Any:
        # only for names the class lacks: a Dataset method says how to get a Dataset
        if name in _DATASET_ONLY:
            raise AttributeError(
                f"'{name}' is a method of Dataset.fuxi, not of DataArray.fuxi: it needs a "
                f"Dataset of variables; use da.to_dataset(name=...).fuxi.{name}(...)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


_DATASET_ONLY: frozenset[str] = frozenset(
    {e.name for e in accessor_entries("dataset")} - {e.name for e in accessor_entries("dataarray")}
)


def _install() -> None:
    for cls, kind in ((FuxiDatasetAccessor, "dataset"), (FuxiDataArrayAccessor, "dataarray")):
        for entry in accessor_entries(kind):
            setattr(cls, entry.name, _Delegate(entry.name, entry.target))


_install()
