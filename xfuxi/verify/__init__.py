"""Verification: deterministic and probabilistic scores, observation-space statistics and
balance diagnostics, defined in the documentation, docs/design.md (Verification). Works
without torch; numba is used when installed.

Examples
--------
Every score is a function here and a method of the ``.fuxi`` accessor:

>>> import xarray as xr, xfuxi.verify
>>> fc = xr.DataArray([[0.0, 2.0], [1.0, 3.0]], dims=("x", "number"))
>>> truth = xr.DataArray([3.0, 3.0], dims="x")
>>> float(xfuxi.verify.crps(fc, truth)), float(fc.fuxi.crps(truth))
(0.5, 0.5)
"""

from __future__ import annotations

from . import (
    balance,
    deterministic,
    gaussian,
    observation_space,
    probabilistic,
    regions,
    significance,
    spectra,
    weights,
)
from .balance import *  # noqa: F403
from .deterministic import *  # noqa: F403
from .gaussian import *  # noqa: F403
from .observation_space import *  # noqa: F403
from .probabilistic import *  # noqa: F403
from .regions import *  # noqa: F403
from .scorecard import scorecard as scorecard  # the function, not the module
from .significance import *  # noqa: F403
from .spectra import *  # noqa: F403
from .weights import *  # noqa: F403

#: building blocks the modules share that this package imports but does not list
_BUILDING_BLOCKS = {"RegionLike", "gaussian_log_score", "member_variance", "region_masks"}
#: each module lists its public names once (its ``__all__``); this package lists them all
__all__ = sorted(
    {
        *balance.__all__, *deterministic.__all__, *gaussian.__all__, *observation_space.__all__,
        *probabilistic.__all__, *regions.__all__, *significance.__all__, *spectra.__all__,
        *weights.__all__, "scorecard",
    } - _BUILDING_BLOCKS
)  # fmt: skip
