"""A screening warning reaches the user once: as a warning, not also as a log line (which,
where logging is not configured, logging's last resort printed to stderr a second time)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from xfuxi.observations.sets import make_observations, screen_observations

TIME = np.datetime64("2000-01-01T00")


def test_repeated_observations_are_warned_once(caplog):
    obs = make_observations(
        np.array([1.0, 2.0, 2.0, 3.0, 3.5]),
        error=1.0,
        time=np.full(5, TIME),
        latitude=np.array([10.0, 20.0, 20.0, 30.0, 30.0]),
        longitude=np.array([5.0, 6.0, 6.0, 7.0, 7.0]),
        variable=np.full(5, "temperature"),
        level=np.full(5, 500.0),
    )  # a copy (index 2) and a second report at one position (index 4)
    kw = dict(
        channels=[("temperature", 500.0)],
        latitude=np.linspace(-90, 90, 19),
        longitude=np.arange(36) * 10.0,
        slot_times=np.array([TIME]),
        duplicates="first",
    )
    with caplog.at_level(logging.DEBUG, logger="xfuxi"), pytest.warns(UserWarning) as caught:
        screen_observations(obs, **kw)
    messages = [str(w.message) for w in caught]
    assert sum("copies of an earlier one" in m for m in messages) == 1
    assert sum("share variable, level, time and position" in m for m in messages) == 1
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not any("copies" in m or "share variable" in m for m in logged), logged
