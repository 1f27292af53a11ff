"""Ready-made data sets: the Held–Suarez world that stands in for ERA5.

See the documentation, docs/design.md (Embedded world).

``xfuxi.datasets.held_suarez(...)`` generates (or reads from the cache) a Held–Suarez world
on pressure levels; ``xfuxi.datasets.held_suarez_split("train" | "validation" | "test")``
returns the documented train / validation / test periods, independent runs with fixed seeds
(see :mod:`xfuxi.world.simulator`).
"""

from __future__ import annotations

from .world.simulator import SPLITS, cache_directory, held_suarez, held_suarez_split

__all__ = ["SPLITS", "cache_directory", "held_suarez", "held_suarez_split"]
