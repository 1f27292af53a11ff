"""The start time of a cycled run: a start in another time zone than UTC is refused where
the run is configured (it failed with a raw pandas TypeError when compared with the truth's
times); one marked UTC is read as UTC."""

import pandas as pd
import pytest

from xfuxi.assimilation.cycle_config import CycleConfig


@pytest.mark.parametrize(
    "start",
    ["2000-01-02T00:00:00+00:00", "2000-01-02T00:00:00Z", pd.Timestamp("2000-01-02", tz="UTC")],
)
def test_a_start_marked_utc_is_read_as_utc(start):
    assert CycleConfig(n_cycles=2, start=start).start == "2000-01-02 00:00:00"


@pytest.mark.parametrize("start", ["2000-01-02T05:00+05:00", pd.Timestamp("2000-01-02", tz="CET")])
def test_time_zone_aware_start_is_refused_with_the_fix(start):
    with pytest.raises(ValueError, match=r"CycleConfig.start carries a time zone") as err:
        CycleConfig(n_cycles=2, start=start)
    assert "give it as UTC without one" in str(err.value)


def test_naive_start_is_kept_as_a_time():
    assert CycleConfig(start="2000-01-02T06").start == "2000-01-02 06:00:00"
    with pytest.raises(ValueError, match="CycleConfig.start must be a date and time.*'soon'"):
        CycleConfig(start="soon")
    # a number was read as nanoseconds after 1970
    with pytest.raises(ValueError, match="got the number 5, which would be read as nano"):
        CycleConfig(start=5)
