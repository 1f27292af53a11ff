"""Fixes made by the lead of session 65 beside the helpers' (their tests are in the other
tests/test_audit65_*.py files): an analysis time marked UTC, and the threshold named in the
errors of a score's threshold on time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.assimilation.inputs import background_tensor
from xfuxi.data.schema import SchemaError


def test_an_analysis_time_marked_utc_is_read_as_utc():
    bg = tiny.da_background()
    model = tiny.da_model(tiny.TinyNonlinear())
    t0 = pd.Timestamp(bg["time"].values[-1])
    _, naive, tensor = background_tensor(bg, model, time=t0)
    for marked in (t0.isoformat() + "Z", t0.tz_localize("UTC")):
        _, got, again = background_tensor(bg, model, time=marked)
        assert got == naive and bool((again == tensor).all())
    with pytest.raises(SchemaError, match="time zone"):
        background_tensor(bg, model, time=t0.isoformat() + "+05:00")


def test_a_threshold_on_time_that_misses_a_valid_time_is_named():
    time = pd.date_range("2000-01-01", periods=4, freq="6h")
    lead = pd.to_timedelta([6, 12], "h")
    rng = np.random.default_rng(0)
    fc = xr.DataArray(rng.normal(size=(2, 2, 3, 5)),
                      dims=("time", "prediction_timedelta", "number", "x"),
                      coords={"time": time[:2], "prediction_timedelta": lead})  # fmt: skip
    truth = xr.DataArray(rng.normal(size=(4, 5)), dims=("time", "x"), coords={"time": time})
    threshold = xr.DataArray(np.zeros(2), dims="time", coords={"time": time[:2]})
    with pytest.raises(ValueError, match="threshold lacks") as err:
        xfuxi.brier_score(fc, truth, threshold=threshold)
    assert "truth" not in str(err.value).split("lacks")[0]
    mean, std = fc.mean("number"), fc.std("number") + 0.1
    with pytest.raises(ValueError, match="threshold lacks"):
        xfuxi.gaussian_brier_score(mean, truth, std=std, threshold=threshold)


def test_a_forecast_whose_first_step_is_nan_everywhere_is_refused():
    import torch

    class AllNaN(torch.nn.Module):
        def forward(self, x):
            return x[:, 1] * float("nan")

    bg = tiny.da_background()
    model = tiny.da_model(AllNaN())
    with pytest.raises(ValueError, match="returned NaN everywhere at its first step"):
        xfuxi.forecast(bg, model=model, steps=2, progress=False)
    with pytest.raises(ValueError, match="returned NaN everywhere at its first step"):
        list(xfuxi.forecast_iter(bg, model=model, steps=2, progress=False))


def test_statistics_the_user_gave_are_statistics_even_of_mean_0_and_std_1():
    import torch

    from xfuxi.models.base import NormStats, channels_without_statistics

    class Last(torch.nn.Module):
        def forward(self, x):
            return x[:, 1]

    kw = dict(channels=[("temperature", 500.0)], latitude=[0.0, 30.0], longitude=[0.0, 180.0])
    anomalies = xfuxi.wrap_model(Last(), stats=NormStats(np.zeros(1), np.ones(1), np.ones(1)),
                                 **kw)  # fmt: skip
    assert channels_without_statistics(anomalies) == []  # a model of anomalies in K
    assert channels_without_statistics(xfuxi.wrap_model(Last(), **kw)) == ["temperature@500"]
    ds = xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"), np.zeros((2, 1, 2, 2)))},
        coords={"time": pd.date_range("2000", periods=2, freq="6h"), "level": [500.0],
                "latitude": [0.0, 30.0], "longitude": [0.0, 180.0]},
    )  # fmt: skip
    ens = xfuxi.ensemble(ds, model=anomalies, n=2, steps=1, progress=False,
                         perturbation=xfuxi.GaussianNoise(std_fraction=0.1), seed=0)  # fmt: skip
    assert float(ens["temperature"].std("number").mean()) > 0
    with pytest.raises(ValueError, match="no normalization statistics"):
        xfuxi.ensemble(ds, model=xfuxi.wrap_model(Last(), **kw), n=2, steps=1, progress=False,
                       perturbation=xfuxi.GaussianNoise(std_fraction=0.1), seed=0)  # fmt: skip


def test_score_difference_of_scores_chunked_along_the_series():
    rng = np.random.default_rng(2)
    a = xr.DataArray(rng.normal(size=(12, 3)), dims=("time", "x"))
    b = a + 0.2 + 0.1 * rng.normal(size=(12, 3))
    eager = xfuxi.score_difference(a, b)
    lazy = xfuxi.score_difference(a.chunk({"time": 1}), b.chunk({"time": 1}))
    assert lazy.chunks is not None
    xr.testing.assert_allclose(lazy.compute(), eager)


def test_other_names_of_utc_are_utc():
    from xfuxi.data.schema import is_utc

    for tz in ("GMT", "Etc/GMT", "UTC"):
        assert is_utc(pd.Timestamp("2001-03-01T06", tz=tz).tz), tz
    assert not is_utc(pd.Timestamp("2001-01-01T06", tz="Europe/London").tz)  # offset 0 in winter


def test_climatology_blend_fit_takes_arrays_with_other_dim_names():
    from xfuxi.assimilation.climatology_blend import fit_climatology_blend

    rng = np.random.default_rng(0)
    lat, lon = np.linspace(-60, 60, 4), np.arange(8) * 45.0
    a = xr.DataArray(
        rng.normal(size=(5, 2, 4, 8)), dims=("time", "variable", "latitude", "longitude")
    )
    t = a + 0.1 * rng.normal(size=a.shape)
    c = xr.DataArray(np.zeros((2, 4, 8)), dims=("variable", "latitude", "longitude"))
    w = np.cos(np.deg2rad(lat))
    kw = dict(latitude=lat, longitude=lon, weights=w, bands=(1, 2))
    np.testing.assert_allclose(
        fit_climatology_blend(a, t, c, **kw),
        fit_climatology_blend(a.values, t.values, c.values, **kw),
    )


def test_spectrum_of_an_unnamed_field_is_not_of_none():
    lon = np.arange(0.0, 360.0, 45.0)
    f = xr.DataArray(np.ones((1, 8)), dims=("latitude", "longitude"),
                     coords={"latitude": [10.0], "longitude": lon})  # fmt: skip
    assert xfuxi.zonal_energy_spectrum(f).attrs["long_name"] == "zonal energy spectrum"


def test_the_expver_note_names_only_the_times_the_later_expver_fills():
    from xfuxi.data.readers import _combine_expver

    t = pd.date_range("2024-01-01", periods=3, freq="6h")
    v = np.ones((2, 3, 2, 2))  # both expvers hold every time but ERA5 the last
    v[0, 2] = np.nan
    ds = xr.Dataset({"t2m": (("expver", "time", "latitude", "longitude"), v)},
                    coords={"expver": ["0001", "0005"], "time": t, "latitude": [0.0, 1.0],
                            "longitude": [0.0, 1.0]})  # fmt: skip
    note = _combine_expver(ds, "file.nc").attrs["expver"]
    assert "used at 1 time: 2024-01-01T12:00" in note, note


def test_gaussian_noise_takes_its_std_from_the_command_line_too(tmp_path, capsys):
    from xfuxi.cli import main
    from xfuxi.forecasting.ensemble import perturbation_for

    spec = perturbation_for("gaussian", noise_options={"perturbation_std": (1.0, 2.0)})
    assert spec.perturbation_std == (1.0, 2.0)
    with pytest.raises(ValueError, match="only apply to method='perlin'"):
        perturbation_for("gaussian", noise_options={"octaves": 2})
    out = ["--output", str(tmp_path / "o.zarr")]
    rc = main(["ensemble", str(tmp_path / "none.zarr"), "--method", "gaussian",
               "--perturbation-std", "1", "2", *out])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "no such file" in err  # the flag taken: the missing data named next
    rc = main(["ensemble", str(tmp_path / "none.zarr"), "--method", "vae",
               "--perturbation-std", "1", *out])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "--perturbation-std only apply to --method perlin or gaussian" in err
