"""xfuxi.config: frozen configurations, their JSON round trip and their CLI flags."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Literal

import pytest

from xfuxi.config import (
    Config,
    add_arguments,
    check_integers,
    check_number,
    field,
    from_arguments,
)


@dataclasses.dataclass(frozen=True)
class Inner(Config):
    a: int = field(1, help="an integer")


@dataclasses.dataclass(frozen=True)
class Outer(Config):
    x: float = field(0.5, help="a float")
    kind: Literal["gc", "gauss"] = field("gc", help="a choice")
    levels: tuple[float, ...] | None = field(None, help="several values")
    flag: bool = field(False, help="a switch")
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self):
        if self.x < 0:
            raise ValueError(f"x must be >= 0; got {self.x}")


def test_json_round_trip_with_nested_and_tuples():
    o = Outer(levels=(1.0, 2.0), inner=Inner(a=3))
    assert o.to_dict() == {"x": 0.5, "kind": "gc", "levels": [1.0, 2.0], "flag": False,
                           "inner": {"a": 3}}  # fmt: skip
    assert Outer.from_dict(o.to_dict()) == o
    assert Outer.from_dict(None) == Outer()


def test_numpy_scalars_are_written_as_python_numbers():
    """A numpy integer or float passes the checks (they take any integer) and must then go
    to JSON: an analysis's provenance failed at its end on ``np.int64`` (after the work)."""
    import json

    import numpy as np

    from xfuxi.assimilation.config import BackgroundError, Minimiser, Window

    o = Outer(x=np.float32(0.25), levels=(np.float64(1.0), 2.0), inner=Inner(a=np.int64(3)))
    assert json.loads(o.to_json()) == {"x": 0.25, "kind": "gc", "levels": [1.0, 2.0],
                                       "flag": False, "inner": {"a": 3}}  # fmt: skip
    assert type(o.to_dict()["inner"]["a"]) is int
    for cfg in (Minimiser(max_iter=np.int64(20)), BackgroundError(n_members=np.int64(5)),
                Window(n_slots=np.int64(2))):  # fmt: skip
        assert type(cfg).from_dict(json.loads(cfg.to_json())) == cfg


def test_unknown_key_and_bad_value_raise_naming_them():
    with pytest.raises(ValueError, match=r"unknown Outer option\(s\) \['y'\]"):
        Outer.from_dict({"y": 1})
    with pytest.raises(ValueError, match="x must be >= 0"):
        Outer.from_dict({"x": -1.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        Outer().x = 2.0  # type: ignore[misc]


def test_cli_flags_from_fields_keep_dataclass_defaults():
    p = argparse.ArgumentParser()
    add_arguments(p, Outer)
    assert from_arguments(Outer, p.parse_args([])) == Outer()
    ns = p.parse_args(["--x", "2", "--kind", "gauss", "--levels", "3", "4", "--flag"])
    assert from_arguments(Outer, ns) == Outer(x=2.0, kind="gauss", levels=(3.0, 4.0), flag=True)
    with pytest.raises(SystemExit):
        p.parse_args(["--kind", "other"])


@dataclasses.dataclass(frozen=True)
class Checked(Config):
    count: int = field(1, help="an integer >= 1")
    rate: float = field(0.1, help="a finite number > 0")
    limit: float | None = field(None, help="None or a number >= 0, infinity allowed")

    def __post_init__(self):
        check_integers(self, {"count": 1})
        check_number(self, "rate", above=True)
        check_number(self, "limit", finite=False, optional=True)


def test_shared_validators_name_the_class_and_field():
    """check_integers / check_number: one wording for every configuration's bad values."""
    import numpy as np

    assert Checked(count=np.int64(2), rate=np.float32(0.5), limit=float("inf")).count == 2
    for bad, match in (
        ({"count": 0}, r"Checked\.count must be an integer >= 1; got 0"),
        ({"count": True}, r"Checked\.count must be an integer >= 1; got True"),
        ({"count": 1.0}, r"Checked\.count must be an integer"),
        ({"rate": 0.0}, r"Checked\.rate must be a finite number > 0; got 0\.0"),
        ({"rate": float("inf")}, r"Checked\.rate must be a finite number > 0"),
        ({"rate": float("nan")}, r"Checked\.rate must be a finite number > 0"),
        ({"rate": "1"}, r"Checked\.rate must be a finite number > 0; got '1'"),
        ({"limit": -1.0}, r"Checked\.limit must be a number >= 0; got -1\.0"),
        ({"limit": False}, r"Checked\.limit must be a number >= 0; got False"),
    ):
        with pytest.raises(ValueError, match=match):
            Checked(**bad)
