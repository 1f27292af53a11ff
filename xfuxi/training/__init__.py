"""Training loops for xfuxi's models (``xfuxi train`` on the command line).

:func:`train_forecast` trains the FuXi forecast model. The modules import torch, so this
package imports them lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["train_forecast"]

_LAZY = {"train_forecast": "forecast:train_forecast"}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'xfuxi.training' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(f".{module_name}", __name__), attr)
