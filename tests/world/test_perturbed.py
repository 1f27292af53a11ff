"""Tests of xfuxi.world.perturbed: the world re-run from balanced perturbations."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dinosaur")

WORLD = {"spinup_days": 2, "progress": False}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("xfuxi-cache")


def test_perturbed_runs_start_from_scaled_differences_of_world_states(cache):
    from xfuxi.world.perturbed import world_perturbed_runs
    from xfuxi.world.simulator import held_suarez_split

    split = held_suarez_split("test", days=3, cache_dir=cache, **WORLD).load()
    t = split["time"].values[5]
    runs = world_perturbed_runs("test", t, n_members=2, steps=1, reference_days=2, seed=3,
                                **WORLD)  # fmt: skip
    six = np.timedelta64(6, "h")
    assert list(runs["prediction_timedelta"].values) == [-six, 0 * six, six]
    # the re-run is the split's world bit for bit where it starts (a separately compiled
    # step rounded differently, which the world amplified into other weather after weeks)
    for var in split.data_vars:
        np.testing.assert_array_equal(
            runs[f"{var}_unperturbed"].isel(prediction_timedelta=0).values,
            split[var].sel(time=t - np.timedelta64(6, "h")).values, err_msg=var,
        )  # fmt: skip
    # the unperturbed runs are the split's own world
    for k, lead in enumerate(runs["prediction_timedelta"].values):
        np.testing.assert_allclose(
            runs["temperature_unperturbed"].isel(prediction_timedelta=k).values,
            split["temperature"].sel(time=t + lead).values, atol=2e-3,
        )  # fmt: skip
    # at -6 h each member is the world plus scale × (x(t_a) − x(t_b)), to interpolation error
    first = runs.isel(prediction_timedelta=0)
    for m in range(2):
        a = split.sel(time=runs["reference_time_a"].values[m])
        b = split.sel(time=runs["reference_time_b"].values[m])
        assert runs["reference_time_a"].values[m] != runs["reference_time_b"].values[m]
        for var in ("geopotential", "temperature", "surface_pressure"):
            got = first[var].isel(member=m) - first[f"{var}_unperturbed"]
            want = 0.2 * (a[var] - b[var])
            err = float(np.sqrt(((got - want) ** 2).mean()))
            assert err < 0.1 * float(np.sqrt((want**2).mean())), var
    # the perturbations differ between members, stay finite and persist over the step
    d = runs["geopotential"] - runs["geopotential_unperturbed"]
    assert float(abs(d.isel(member=0) - d.isel(member=1)).max()) > 0
    assert bool(np.isfinite(d).all())
    rms = np.sqrt((d**2).mean(("member", "level", "latitude", "longitude"))).values
    assert 0.5 < rms[-1] / rms[0] < 2.0
    # the same seed gives the same runs
    again = world_perturbed_runs("test", t, n_members=2, steps=1, reference_days=2, seed=3,
                                 **WORLD)  # fmt: skip
    np.testing.assert_array_equal(again["temperature"].values, runs["temperature"].values)


def test_perturbed_runs_refuse_bad_input():
    from xfuxi.world.perturbed import world_perturbed_runs

    with pytest.raises(ValueError, match="split"):
        world_perturbed_runs("later", "2020-01-02")
    with pytest.raises(ValueError, match="after its first output"):
        world_perturbed_runs("test", "2020-01-01")
    with pytest.raises(ValueError, match="not a"):
        world_perturbed_runs("test", "2020-01-02T01:00")
    with pytest.raises(ValueError, match="n_members"):
        world_perturbed_runs("test", "2020-01-02", n_members=0)
    with pytest.raises(TypeError, match=r"\['days', 'start'\] are the split's own"):
        world_perturbed_runs("test", "2020-01-02", days=3, start="2020-01-01")
    with pytest.raises(ValueError, match="scale"):
        world_perturbed_runs("test", "2020-01-02", scale=-1.0)
    with pytest.raises(ValueError, match="steps"):
        world_perturbed_runs("test", "2020-01-02", steps=True)
