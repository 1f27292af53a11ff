"""The demo: its output folder never replaces what xfuxi did not write; its FuXi-DA stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xfuxi
from tests import tiny_da
from tests.models.test_fuxi_da import tiny_da_model
from xfuxi.demo import DemoResult, run_demo, stage_fuxi_da
from xfuxi.files import OutputExistsError, replace_directory


def test_demo_refuses_a_foreign_folder_before_any_work(tmp_path):
    out = tmp_path / "demo_output"
    out.mkdir()
    (out / "thesis.txt").write_text("precious")
    with pytest.raises(OutputExistsError, match="not an xfuxi output"):
        run_demo(out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["thesis.txt"]


def test_demo_refuses_an_earlier_demo_without_overwrite(tmp_path):
    out = replace_directory(tmp_path / "d", lambda d: None, kind="demo")
    with pytest.raises(OutputExistsError, match="overwrite"):
        run_demo(out)


def test_fuxi_da_stage_scores_ctrl_corr_and_assi_and_maps_the_increment(tmp_path):

    truth = tiny_da.truth(12)
    assi, corr = tiny_da_model(), tiny_da_model(observations=False)
    with torch.no_grad():  # trained-looking heads: non-zero increments
        assi.net.head.weight.normal_(0, 0.05)
        corr.net.head.weight.normal_(0, 0.05)
    result = DemoResult(output_dir=tmp_path)
    # the first initial time lacks the truth 12 h before; the last, 6 h after: left out
    init = truth["time"].values[[1, 3, 5, 7, 11]]
    out = stage_fuxi_da(
        result, {"truth": truth, "init_times": init}, tiny_da.forecast_model(), n_times=2,
        satellite=90.0, da_model=assi, corr_model=corr,
    )  # fmt: skip
    np.testing.assert_array_equal(out["background"]["time"].values, init[[1, 2]])
    table = result.tables["fuxi_da_rmse"]
    assert set(table.index.get_level_values("region")) == {"inside the disc", "global"}
    assert list(table.index.get_level_values("variable").unique()) == [
        "temperature",
        "passive_tracer",
    ]
    # the table's CTRL is the 6-hour background's area-weighted RMSE, ASSI the analysis's
    target = truth.sel(time=init[[1, 2]])
    dims = ["time", "latitude", "longitude"]
    ctrl = xfuxi.rmse(out["background"], target, dim=dims)["passive_tracer"].sel(level=500.0)
    row = table.loc[("global", "passive_tracer", 500.0)]
    assert row["rmse_CTRL"] == float(ctrl)
    inside = out["radiances"]["zenith_angle"].notnull()
    assi_in = xfuxi.rmse(out["result"].analysis, target, dim=dims, region=inside)
    inside_row = table.loc[("inside the disc", "passive_tracer", 500.0)]
    assert inside_row["rmse_ASSI"] == float(assi_in["passive_tracer"].sel(level=500.0))
    assert inside_row["rmse_ASSI"] != inside_row["rmse_CORR"] != inside_row["rmse_CTRL"]
    gain = 100 * (1 - inside_row["rmse_ASSI"] / inside_row["rmse_CORR"])
    assert inside_row["ASSI_vs_CORR_%"] == gain
    radiances = result.tables["fuxi_da_radiances"]
    assert {"rms_omb", "rms_oma", "count"} <= set(radiances.columns)
    assert set(radiances.index.get_level_values("group")) == {"all", "clear", "cloudy"}
    # pooled over the times: every pixel counted once, the RMS between the times' RMS
    per_time = out["result"].diagnostics.sel(group="all", sensor_channel="wv6.2")
    row = radiances.loc[("wv6.2", "all")]
    assert row["count"] == int(per_time["count"].sum()) > 0
    rms = per_time["rms_omb"].values
    assert rms.min() <= row["rms_omb"] <= rms.max() and rms.min() < rms.max()
    expected = np.sqrt((rms**2 * per_time["count"].values).sum() / per_time["count"].sum())
    assert row["rms_omb"] == pytest.approx(float(expected))
    assert result.figures["fuxi_da_increment"].is_file()
    assert result.figures["fuxi_da_radiances_increment"].is_file()


def test_fuxi_da_stage_needs_times_with_the_truth_around_them(tmp_path):

    truth = tiny_da.truth(4)
    with pytest.raises(ValueError, match="12 hours before and 6 hours after"):
        stage_fuxi_da(
            DemoResult(output_dir=tmp_path),
            {"truth": truth, "init_times": truth.time.values[[0, 1, 3]]},
            tiny_da.forecast_model(), n_times=2, satellite=90.0, da_model=tiny_da_model(),
            corr_model=tiny_da_model(observations=False),
        )  # fmt: skip
    assert not list(tmp_path.iterdir())
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n_times must be a positive integer"):
            stage_fuxi_da(
                DemoResult(output_dir=tmp_path), {"truth": truth, "init_times": truth.time.values},
                tiny_da.forecast_model(), n_times=bad,
            )  # fmt: skip


def test_demo_refuses_a_negative_number_of_fuxi_da_times(tmp_path):
    with pytest.raises(ValueError, match="n_times_da must be an integer >= 0"):
        run_demo(tmp_path / "out", n_times_da=-1)
    assert not (tmp_path / "out").exists()


def test_headline_score_panels_name_the_scores_units():
    """The demo's RMSE panels said "RMSE" only; the scores carry their units now."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    from xfuxi.demo import HEADLINE, _plot_headline_scores

    leads = pd.to_timedelta([6, 12], "h")
    levels = sorted({lv for _, lv in HEADLINE})
    units = {"geopotential": "m**2 s**-2", "temperature": "K"}
    score = xr.Dataset(
        {
            v: (("prediction_timedelta", "level"), np.ones((2, len(levels))),
                {"units": units.get(v, "m s**-1")})
            for v, _ in HEADLINE
        },
        coords={"prediction_timedelta": leads, "level": levels},
    )  # fmt: skip
    fig = _plot_headline_scores({"a": score}, "RMSE", "t")
    labels = [ax.get_ylabel() for ax in fig.axes[:4]]
    assert labels[0] == "RMSE (m² s⁻²)" and labels[1] == "RMSE (K)", labels
    dimensionless = score.assign({v: score[v].assign_attrs(units="1") for v in score})
    fig = _plot_headline_scores({"a": dimensionless}, "ACC", "t")
    assert fig.axes[0].get_ylabel() == "ACC"
