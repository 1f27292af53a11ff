"""Ready-made data sets: the Held–Suarez world that stands in for ERA5.

See the documentation, docs/design.md (Embedded world).

``xfuxi.datasets.held_suarez(...)`` generates (or reads from the cache) a Held–Suarez world
on pressure levels; ``xfuxi.datasets.held_suarez_split("train" | "validation" | "test")``
returns the documented train / validation / test periods, independent runs with fixed seeds
(see :mod:`xfuxi.world.simulator`).

Examples
--------
>>> import xfuxi
>>> {name: split["start"] for name, split in xfuxi.datasets.SPLITS.items()}
{'train': '2000-01-01', 'validation': '2010-01-01', 'test': '2020-01-01'}

The world itself (generated once, then read from the cache)::

    test = xfuxi.datasets.held_suarez_split("test", days=20)
    fc = test.isel(time=slice(0, 2)).fuxi.forecast()
"""

from __future__ import annotations

from .world.simulator import SPLITS, cache_directory, held_suarez, held_suarez_split

__all__ = ["SPLITS", "cache_directory", "held_suarez", "held_suarez_split"]
