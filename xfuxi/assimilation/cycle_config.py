"""The run options of a cycled twin experiment (:func:`xfuxi.assimilation.cycle.cycle`).

A module of its own, without torch, so that ``xfuxi cycle`` builds its flags from
:class:`CycleConfig` before torch is imported.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np

from ..config import Config, check_integers, check_number, check_seed
from ..config import field as config_field
from ..data.schema import parse_time

__all__ = ["CycleConfig"]


@dataclass(frozen=True)
class CycleConfig(Config):
    """The run options of a cycled twin experiment (see :func:`xfuxi.cycle`).

    The truth, the observation network, the method, the model and the store are arguments
    of :func:`xfuxi.cycle`; the length, start and seeding of the run are here. Every field
    is also a flag of ``xfuxi cycle`` (``n_cycles`` → ``--n-cycles``). Invalid values raise
    ``ValueError`` naming the field.

    Examples
    --------
    >>> cfg = CycleConfig(n_cycles=4, lead_steps=2)
    >>> cfg.seed, cfg.divergence_factor
    (0, 5.0)
    >>> import math  # no divergence bound (only NaN stops the run)
    >>> CycleConfig.from_dict(cfg.replace(divergence_factor=math.inf).to_dict()).divergence_factor
    inf
    >>> CycleConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> import pandas as pd
    >>> CycleConfig(start=pd.Timestamp("2000-01-02T06")).start
    '2000-01-02 06:00:00'
    >>> CycleConfig(days=1, n_cycles=4)
    Traceback (most recent call last):
    ...
    ValueError: give exactly one of days and n_cycles; got CycleConfig(days=1, n_cycles=4)
    """

    days: float | None = config_field(
        None,
        help="length of the run in days of cycles (24 h / model step a day, a whole number "
        "of cycles: 0.3 days of 6-hour cycles is refused; xfuxi cycle: 1 unless --n-cycles "
        "is given)",
    )
    n_cycles: int | None = config_field(None, help="length of the run in cycles")
    start: str | np.datetime64 | datetime.datetime | None = config_field(
        None,
        help="first analysis time, UTC without a time zone (default: as early as the truth allows)",
    )
    lead_steps: int = config_field(
        8, help="the first background (and the free run) is a forecast of this many steps"
    )
    seed: int = config_field(0, help="seeds the run's generator (perturbations)")
    divergence_factor: float = config_field(
        5.0,
        help="stop when an analysis error exceeds this many climatological stds (the model's "
        "normalization std; inf: no bound, only NaN stops the run, as a model without "
        "statistics needs)",
    )
    initial_error: float = config_field(
        0.0,
        help="white noise on the first background, as a fraction of the model's std (a "
        "model without statistics needs 0)",
    )
    save_states: bool = config_field(
        True, help="write the analysis, background and spread fields of each cycle"
    )
    keep_members: bool = config_field(
        True,
        help="keep every cycle's ensemble members in the store (false: only the last complete "
        "cycle's, which a resumed run needs)",
    )

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if self.days is not None and self.n_cycles is not None:
            raise ValueError(
                f"give exactly one of days and n_cycles; got {owner}(days={self.days!r}, "
                f"n_cycles={self.n_cycles!r})"
            )
        check_number(self, "days", above=True, optional=True)
        check_integers(self, {"n_cycles": 1} if self.n_cycles is not None else {})
        check_integers(self, {"lead_steps": 2})
        check_seed(self.seed, f"{owner}.seed")
        check_number(self, "divergence_factor", above=True, finite=False)  # inf: no bound
        check_number(self, "initial_error")
        for flag in ("save_states", "keep_members"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise ValueError(
                    f"{owner}.{flag} must be True or False; got {getattr(self, flag)!r}"
                )
        if self.start is not None:
            # one reading of times (a number was 1970; a time zone, compared with the
            # truth's naive times, failed raw)
            stamp = parse_time(self.start, f"{owner}.start", error=ValueError)
            object.__setattr__(self, "start", str(stamp))
