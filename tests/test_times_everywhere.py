"""Every function and command that takes times reads them one way (docs/data.md):
:func:`xfuxi.data.schema.parse_times` for the times users give, and
:func:`xfuxi.data.schema.states_at_valid_times` for states taken from a forecast at one lead.
The places that did it by hand: ``xfuxi assimilate-da --lead`` / ``--times``, ``xfuxi
imager --times``, ``xfuxi fit-radiance-bias``, ``CampaignConfig.init_times``,
``Window.time``, and the observations' 400-year-shift message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from xfuxi.assimilation.config import Window
from xfuxi.campaigns import CampaignConfig
from xfuxi.cli import assimilate as cli_assimilate
from xfuxi.cli import main
from xfuxi.cli.common import open_data
from xfuxi.observations.sets import ObservationError, validate_observations

ZONED = "2020-01-02T11:00+05:00"  # 06 UTC: was converted silently


def _forecast(n_time: int = 2) -> xr.Dataset:
    """A tiny forecast of leads 6 h and 12 h on xfuxi's grid."""
    t = pd.date_range("2020-01-02", periods=n_time, freq="6h")
    lead = pd.to_timedelta([6, 12], "h")
    lat, lon = [-45.0, 45.0], [0.0, 180.0]
    values = 250.0 + np.arange(n_time * 2 * 2 * 2, dtype="float64").reshape(n_time, 2, 2, 2)
    return xr.Dataset(
        {"2m_temperature": (("time", "prediction_timedelta", "latitude", "longitude"), values)},
        coords={"time": t, "prediction_timedelta": lead, "latitude": lat, "longitude": lon},
    )


# --- xfuxi assimilate-da --lead: the states of a forecast written by write_netcdf -----------


def test_background_at_lead_of_a_written_forecast_drops_its_valid_time(tmp_path):
    """write_netcdf adds ``valid_time`` (time, lead): the background at --lead kept it
    beside the relabelled ``time``, which validate refused ("data has both 'valid_time'
    and 'time'")."""
    fc = _forecast()
    path = tmp_path / "fc.nc"
    xfuxi.write_netcdf(fc, path)
    with open_data(str(path)) as ds:
        assert "valid_time" in ds.coords  # as the writer stores it
        before = ds.copy()
        bg = cli_assimilate._background_at_lead(ds, 12).load()
        xr.testing.assert_identical(ds, before)  # not modified
    assert "valid_time" not in bg.coords and "prediction_timedelta" not in bg.coords
    expected = fc["time"].values + np.timedelta64(12, "h")
    np.testing.assert_array_equal(bg["time"].values, expected)
    np.testing.assert_array_equal(
        bg["2m_temperature"].values, fc["2m_temperature"].isel(prediction_timedelta=1).values
    )
    xfuxi.validate(bg)  # the analysis-layout background assimilate_da reads


# --- --times of assimilate-da and imager: parse_times --------------------------------------


def test_assimilate_da_times_refuse_a_time_zone():
    t = pd.date_range("2020-01-02T00", periods=3, freq="6h")
    bg = xr.Dataset({"x": ("time", np.arange(3.0))}, coords={"time": t})
    with pytest.raises(ValueError, match="time zone.*ISO times"):
        cli_assimilate._select_analysis_times(bg, None, ZONED)
    with pytest.raises(ValueError, match="ISO times"):
        cli_assimilate._select_analysis_times(bg, None, "soon")
    # ISO times of any precision, spaces after the commas, a time given twice: once
    got = cli_assimilate._select_analysis_times(bg, None, "2020-01-02T06, 2020-01-02T12:00,"
                                                "2020-01-02T06:00:00")  # fmt: skip
    np.testing.assert_array_equal(got["time"].values, t.values[1:])


def test_imager_times_refuse_a_time_zone(monkeypatch, capsys, tmp_path):
    import xfuxi.observations.imager as imager

    seen = []

    def fake_imager(truth, **kw):
        seen.append(kw["times"])
        raise imager.ImagerError("the imager ran")

    monkeypatch.setattr(imager, "imager_observations", fake_imager)
    monkeypatch.setattr(cli_assimilate, "open_data", lambda path: xr.Dataset())
    base = ["--no-progress", "imager", "truth.nc", "--output", str(tmp_path / "rad")]
    assert main([*base, "--times", ZONED]) != 0
    err = capsys.readouterr().err
    assert "--times" in err and "time zone" in err and not seen
    assert main([*base, "--times", "2020-01-02T06, 2020-01-02T12:00"]) != 0
    assert "the imager ran" in capsys.readouterr().err
    assert list(seen[0]) == list(pd.to_datetime(["2020-01-02T06", "2020-01-02T12"]))


# --- CampaignConfig.init_times and Window.time: parse_times ---------------------------------


def test_campaign_init_times_are_read_by_parse_times():
    with pytest.raises(ValueError, match="init_times.*number 5"):
        CampaignConfig(init_times=[5])  # was 1970-01-01
    with pytest.raises(ValueError, match="init_times.*time zone"):
        CampaignConfig(init_times=["2020-01-01T00+05:00"])  # was converted to UTC
    with pytest.raises(ValueError, match="init_times.*sequence"):
        CampaignConfig(init_times=5)
    given = ["2020-01-01T06", "2020-01-01T12:00"]
    cfg = CampaignConfig(init_times=given)
    assert cfg.init_times == ("2020-01-01T06:00:00", "2020-01-01T12:00:00")
    assert given == ["2020-01-01T06", "2020-01-01T12:00"]  # not modified
    assert CampaignConfig.from_dict(cfg.to_dict()) == cfg


def test_window_time_is_read_by_parse_times():
    with pytest.raises(ValueError, match="time.*time zone"):
        Window(time="2020-01-01T00:00+05:00")  # was kept with its offset
    with pytest.raises(ValueError, match="number 123"):
        Window(time=123)
    with pytest.raises(ValueError, match="one date and time"):
        Window(time=["2020-01-01", "2020-01-02"])
    assert Window(time="2020-01-01T06").time == "2020-01-01 06:00:00"
    assert Window(time=np.datetime64("2020-01-01T06")).time == "2020-01-01 06:00:00"


# --- xfuxi fit-radiance-bias: the forecasts on their valid times ---------------------------


def test_fit_radiance_bias_labels_the_forecasts_by_their_valid_times(monkeypatch, capsys):
    """The forecasts were relabelled with the fitted truth times, so with a truth 3-hourly
    (the model's step 6 h) the 6-hour forecasts from 3 h earlier were called states at the
    fitted times; they are now on their valid times, and a mismatch is refused."""
    import torch

    import xfuxi.assimilation.radiances as radiances
    from xfuxi.models.base import NormStats

    class Last(torch.nn.Module):
        def forward(self, x):
            return x[:, 1]

    levels, lat, lon = [250.0, 500.0, 850.0], [-60.0, -20.0, 20.0, 60.0], list(np.arange(8) * 45.0)
    channels = [(v, lv) for v in ("temperature", "passive_tracer") for lv in levels]
    channels.append(("surface_pressure", None))
    stats = NormStats(
        np.array([220.0, 250.0, 280.0, 0.05, 0.2, 0.5, 1e5]),
        np.array([1.0] * 3 + [0.03] * 3 + [100.0]),
        np.array([1.0] * 3 + [0.03] * 3 + [100.0]),
    )
    model = xfuxi.wrap_model(Last(), channels=channels, latitude=lat, longitude=lon, stats=stats)
    assert "timestep=6h" in repr(model)  # the model step of the 3-hourly truth below

    def truth(freq: str) -> xr.Dataset:
        n_t, dims = 10, ("time", "level", "latitude", "longitude")
        rng = np.random.default_rng(0)
        return xr.Dataset(
            {
                "temperature": (dims, np.array([220.0, 250.0, 280.0])[None, :, None, None]
                                + rng.normal(0, 0.1, (n_t, 3, 4, 8))),
                "passive_tracer": (dims, np.array([0.05, 0.2, 0.5])[None, :, None, None]
                                   + np.zeros((n_t, 3, 4, 8))),
                "surface_pressure": (("time", "latitude", "longitude"),
                                     np.full((n_t, 4, 8), 1e5)),
            },
            coords={"time": pd.date_range("2000-01-01", periods=n_t, freq=freq),
                    "level": levels, "latitude": lat, "longitude": lon},
        )  # fmt: skip

    seen = {}

    def fake_fit(background, radiances, **kw):
        seen["background"] = background
        raise ValueError("fitted")

    monkeypatch.setattr(radiances, "offline_bias_fit", fake_fit)
    monkeypatch.setattr(cli_assimilate, "load_model", lambda name: model)
    cmd = ["fit-radiance-bias", "truth.zarr", "--output", "unused", "--times", "2",
           "--first", "4", "--satellites", "90"]  # fmt: skip
    # 6-hourly truth: the 6-hour forecasts are valid at the fitted times
    six = truth("6h")
    monkeypatch.setattr(cli_assimilate, "open_data", lambda path: six)
    assert main(cmd) != 0 and "fitted" in capsys.readouterr().err
    bg = seen.pop("background")
    np.testing.assert_array_equal(bg["time"].values, six["time"].values[4:6])
    assert not {"prediction_timedelta", "valid_time"} & set(bg.coords)
    # 3-hourly truth: the forecasts from 3 h earlier are valid 3 h after: refused
    three = truth("3h")
    monkeypatch.setattr(cli_assimilate, "open_data", lambda path: three)
    assert main(cmd) != 0
    err = capsys.readouterr().err
    assert "not the model's step apart" in err and "background" not in seen


# --- the observations' 400-year shift: schema's, with its sign -----------------------------


@pytest.mark.parametrize(("year", "sign"), [("2300", "-"), ("1500", "+")])
def test_observation_times_beyond_ns_are_shifted_the_right_way(year, sign):
    obs = xfuxi.make_observations(
        [250.0], error=1.0, time="2001-01-01T06", latitude=10.0, longitude=0.0,
        variable="temperature", level=500,
    )  # fmt: skip
    far = obs.assign_coords(time=("obs", np.array([f"{year}-01-01"], "datetime64[s]")))
    if far["time"].dtype != np.dtype("datetime64[s]"):
        pytest.skip("this xarray converts datetime64[s] to ns")
    with pytest.raises(ObservationError) as err:
        validate_observations(far)
    message = str(err.value)
    assert message.startswith("observations' coordinate 'time' holds times outside")
    assert f"obs.assign_coords(time=obs['time'] {sign} np.timedelta64(146097, 'D'))" in message


def test_world_background_time_is_read_by_parse_times():
    """A number was read as 1970 (and then reported as missing from the truth)."""
    from xfuxi.assimilation.cycling import world_background

    with pytest.raises(ValueError, match="time must be a date and time.*the number 5"):
        world_background(None, model="fuxi-hs-t21", time=5)
