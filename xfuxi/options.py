"""Global options for xfuxi, in the manner of ``xarray.set_options``."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["OPTIONS", "get_options", "progress_bar", "progress_enabled", "set_options"]

OPTIONS: dict[str, Any] = {
    # names of the ensemble dimension accepted on input; the first is the canonical output name
    "ensemble_dims": ("number", "member", "realization"),
    # torch device and dtype used when a call does not say ("cpu", "cuda", "cuda:1", ...)
    "device": "cpu",
    "dtype": "float32",
    # show tqdm progress bars for long work (training, ensembles, minimisation, generation)
    "progress": True,
    # cache directory for generated worlds (None: $XFUXI_CACHE or ~/.cache/xfuxi)
    "cache_dir": None,
}


def _is_device(value: Any) -> bool:
    """Whether ``value`` names a torch device (``"cpu"``, ``"cuda:1"``; checked by torch
    itself, imported only here: a bad name failed when a model was loaded)."""
    if not isinstance(value, str) or not value:
        return False
    import torch

    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        return False
    return True


_VALIDATORS = {
    "ensemble_dims": lambda v: isinstance(v, tuple) and all(isinstance(x, str) for x in v) and v,
    "device": _is_device,
    "dtype": lambda v: v in ("float32", "float64", "bfloat16"),
    "progress": lambda v: isinstance(v, bool),
    "cache_dir": lambda v: (
        v is None or (isinstance(v, (str, os.PathLike)) and isinstance(os.fspath(v), str))
    ),
}

# what each option takes, for the error message
_EXPECTED = {
    "ensemble_dims": "a non-empty tuple of dimension names, e.g. ('number', 'member')",
    "device": "a torch device name such as 'cpu', 'cuda' or 'cuda:1'",
    "dtype": (
        "one of 'float32', 'float64', 'bfloat16' (a name, not a torch.dtype; float16 cannot "
        "hold the physical states: its largest value is 65504)"
    ),
    "progress": "True or False",
    "cache_dir": "a path or None",
}

# values stored in a normal form (what get_options returns)
_NORMALISE = {"cache_dir": lambda v: v if v is None else os.fspath(v)}


def get_options() -> dict[str, Any]:
    """Return a copy of the current global options.

    Returns
    -------
    dict of str to Any
        ``ensemble_dims`` (tuple of str), ``device`` (str), ``dtype`` (str), ``progress``
        (bool) and ``cache_dir`` (str or None); changing it does not change the options
        (use :class:`set_options`).

    Examples
    --------
    >>> import xfuxi
    >>> sorted(xfuxi.get_options())
    ['cache_dir', 'device', 'dtype', 'ensemble_dims', 'progress']
    >>> with xfuxi.set_options(dtype="float64"):
    ...     xfuxi.get_options()["dtype"]
    'float64'
    """
    return dict(OPTIONS)


class set_options:  # noqa: N801 - named like xarray.set_options
    """Set global options, for the whole session or inside a ``with`` block.

    Parameters
    ----------
    **kwargs
        ``ensemble_dims`` (tuple of str), ``device`` (str), ``dtype`` (str),
        ``progress`` (bool), ``cache_dir`` (str, path-like or None; stored as str).

    Examples
    --------
    >>> import xfuxi
    >>> with xfuxi.set_options(progress=False):
    ...     xfuxi.get_options()["progress"]
    False
    """

    def __init__(self, **kwargs: Any) -> None:
        self.old: dict[str, Any] = {}
        new: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key not in OPTIONS:
                raise ValueError(
                    f"{key!r} is not a valid xfuxi option; valid options are {sorted(OPTIONS)}"
                )
            if not _VALIDATORS[key](value):
                raise ValueError(
                    f"invalid value {value!r} for xfuxi option {key!r}; expected {_EXPECTED[key]}"
                )
            new[key] = _NORMALISE.get(key, lambda v: v)(value)
        # all are checked before any is set: a bad value leaves the options as they were
        for key in new:
            self.old[key] = OPTIONS[key]
        OPTIONS.update(new)

    def __enter__(self) -> set_options:
        return self

    def __exit__(self, *exc: object) -> None:
        OPTIONS.update(self.old)


def progress_enabled(progress: bool | None) -> bool:
    """Whether to show progress bars: ``progress`` if given, else the global option.

    A ``progress`` that is neither a bool nor None (``"no"``, truthy: it showed the bars)
    is a TypeError."""
    if progress is None:
        return bool(OPTIONS["progress"])
    numpy_bool = getattr(getattr(progress, "dtype", None), "kind", "") == "b" and (
        getattr(progress, "ndim", None) == 0
    )  # NumPy's True and False (NumPy is not imported here: ``import xfuxi`` stays light)
    if not isinstance(progress, bool) and not numpy_bool:
        raise TypeError(f"progress must be True, False or None; got {progress!r}")
    return bool(progress)


def progress_bar(total: int, progress: bool | None, desc: str) -> Any:
    """A tqdm bar for ``total`` steps, disabled unless :func:`progress_enabled`."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress_enabled(progress), leave=False)
