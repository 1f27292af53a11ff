"""FuXi-DA analyses on the tiny world: outputs, diagnostics, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import xfuxi
from tests import tiny_da
from tests.models.test_fuxi_da import tiny_da_model
from xfuxi.assimilation import da as da_module
from xfuxi.assimilation.da import DAMethod, assimilate_da
from xfuxi.observations.imager import ImagerError, imager_observations

C_MODEL = len(tiny_da.MODEL_CHANNELS)


@pytest.fixture
def case(fuxi_da_case):
    return fuxi_da_case


def test_analysis_increment_and_diagnostics(case):
    background, radiances, model = case
    res = assimilate_da(background, radiances, model=model)
    xr.testing.assert_allclose(res.analysis - background, res.increment)
    assert set(res.analysis.data_vars) == {"temperature", "passive_tracer", "surface_pressure"}
    d = res.diagnostics
    assert d.sizes["time"] == background.sizes["time"]
    assert "zenith 0-20" in d["group"].values.tolist() and "cloudy" in d["group"].values
    # every observed pixel counted once in "all", split into clear + cloudy
    np.testing.assert_array_equal(
        d["count"].sel(group="all"), d["count"].sel(group="clear") + d["count"].sel(group="cloudy")
    )
    assert float(d["rms_omb"].sel(group="all").min()) > 0
    assert "FuXi-DA" in repr(res)
    assert "<table>" in res._repr_html_() and "RMS O-B" in res._repr_html_()  # Jupyter's view
    # the accessor and the method object give the same analysis
    xr.testing.assert_identical(background.fuxi.assimilate_da(radiances, model=model).analysis,
                                res.analysis)  # fmt: skip
    xr.testing.assert_identical(DAMethod(model)(background, radiances), res.analysis)


def test_increment_dataset_by_slices_equals_the_unstacked_way(case):
    """The increment Dataset built from NumPy slices is the one the general way builds, for
    backgrounds with extra coordinates, another layout or float32 values."""
    background, _, model = case
    inc = np.random.default_rng(1).normal(size=(background.sizes["time"], C_MODEL, 8, 16))
    extra = background.assign_coords(
        lead=np.timedelta64(6, "h"),  # scalar
        valid=("time", background["time"].values),  # along time
        pair=(("latitude", "longitude"), np.zeros((8, 16))),  # 2-D: not carried
    )
    extra.attrs["title"] = "not carried"
    extra["temperature"].attrs["units"] = "K"
    cases = {
        "as is": background,
        "extra coordinates": extra,
        "longitude first": background.transpose("longitude", ...),
        "float32": background.astype("float32"),
    }
    for label, bg in cases.items():
        fast = da_module._increment_in_memory(bg, inc, model.channels)
        assert fast is not None, label
        xr.testing.assert_identical(fast, da_module._increment_unstacked(bg, inc, model.channels))
        assert fast["temperature"].dims == ("time", "level", "latitude", "longitude"), label
    # a background with other levels than the model's goes the general way
    more = xr.concat([background, background.isel(level=[0]).assign_coords(level=[100.0])],
                     "level", data_vars="minimal").sortby("level")  # fmt: skip
    assert da_module._increment_in_memory(more, inc, model.channels) is None


def test_lazy_and_reordered_backgrounds_give_the_same_analysis(case):
    """A dask-backed background (as read lazily from a store) and one in another layout go
    the general ways (stacking, increments); the analysis and increment are the same."""
    background, radiances, model = case
    res = assimilate_da(background, radiances, model=model)
    lazy = assimilate_da(background.chunk({"time": 1}), radiances, model=model)
    xr.testing.assert_identical(lazy.analysis.compute(), res.analysis)
    xr.testing.assert_identical(lazy.increment, res.increment)
    moved = background.transpose("longitude", "latitude", "level", "time")
    other = assimilate_da(moved, radiances, model=model)
    xr.testing.assert_identical(other.increment, res.increment)
    xr.testing.assert_allclose(
        other.analysis.transpose(*res.analysis["temperature"].dims, ...), res.analysis
    )


def test_departure_input_is_radiances_minus_the_background_through_the_nominal_operator(case):
    from xfuxi.assimilation.da import da_inputs
    from xfuxi.observations.imager import NominalImager

    background, radiances, _ = case
    model = tiny_da_model(departures=True)
    xb, obs = da_inputs(background, radiances, model)
    plain_xb, plain = da_inputs(background, radiances, tiny_da_model())
    torch.testing.assert_close(xb, plain_xb)
    per, s = 3 * 2 + 5, 2  # per frame: radiances, masks, departures, extras
    op = NominalImager(
        model.channels, radiances["zenith_angle"].values, channels=model.sensor_channels
    )
    seen = op(xb.double()).numpy()
    for f, frame in enumerate(model.frames):
        block = obs[:, f * per : (f + 1) * per].numpy()
        rad = radiances["brightness_temperature"].sel(frame=np.timedelta64(int(frame), "h"))
        bt = rad.transpose("time", "sensor_channel", "latitude", "longitude").values
        ok = np.isfinite(bt) & np.isfinite(seen)
        assert ok.any() and (~ok).any()
        np.testing.assert_allclose(block[:, 2 * s : 3 * s][ok], ((bt - seen) / 10.0)[ok], atol=1e-5)
        assert np.all(block[:, 2 * s : 3 * s][~ok] == 0)
        # the radiances, masks and extras are those of the plain model
        other = plain[:, f * (per - s) : (f + 1) * (per - s)].numpy()
        np.testing.assert_array_equal(block[:, : 2 * s], other[:, : 2 * s])
        np.testing.assert_array_equal(block[:, 3 * s :], other[:, 2 * s :])
    # a warmer background lowers the departures of the window channel where it is seen
    warmer = background.copy(deep=True)
    warmer["temperature"] = warmer["temperature"] + 2.0
    _, obs2 = da_inputs(warmer, radiances, model)
    k = model.sensor_channels.index("ir10.8")
    d1, d2 = obs[:, per - 5 - s + k], obs2[:, per - 5 - s + k]
    seen_px = obs[:, 2 + k] > 0  # the mask of frame 0
    assert bool((d2[seen_px] < d1[seen_px]).all())
    res = assimilate_da(background, radiances, model=model)
    xr.testing.assert_allclose(res.analysis - background, res.increment)


def test_corr_without_radiances(case):
    background, _, _ = case
    res = assimilate_da(background, model=tiny_da_model(observations=False))
    # the background's values; the attrs are the analysis' provenance, not the background's
    xr.testing.assert_equal(res.analysis, background[list(res.analysis.data_vars)])
    assert res.analysis.attrs["method"] == "FuXi-DA CORR"


def test_bfloat16_and_no_diagnostics(case, monkeypatch):
    import xfuxi.observations.imager as imager

    background, radiances, model = case
    full = assimilate_da(background, radiances, model=model)
    # without diagnostics: the same analysis, no radiance statistics
    bare = assimilate_da(background, radiances, model=model, diagnostics=False)
    xr.testing.assert_identical(bare.analysis, full.analysis)
    assert "rms_omb" not in bare.diagnostics and float(bare.diagnostics["analysis_seconds"]) > 0
    # bfloat16: the convolutions in bfloat16 (close to float32, not equal)
    dtypes = []
    conv = torch.nn.functional.conv2d

    def spy(x, *args, **kwargs):
        out = conv(x, *args, **kwargs)
        dtypes.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.functional, "conv2d", spy)
    half = assimilate_da(background, radiances, model=model, precision="bfloat16")
    monkeypatch.undo()
    assert dtypes and set(dtypes) == {torch.bfloat16}
    inc, inc16 = full.increment["temperature"], half.increment["temperature"]
    rel = float(np.sqrt(((inc16 - inc) ** 2).mean() / (inc**2).mean()))
    assert 0 < rel < 0.05, rel
    assert half.analysis["temperature"].dtype == full.analysis["temperature"].dtype
    # the departures' operator in float32 there, in float64 otherwise
    seen = []
    operator = imager.NominalImager.forward

    def spy_op(self, x):
        seen.append(x.dtype)
        return operator(self, x)

    monkeypatch.setattr(imager.NominalImager, "forward", spy_op)
    dep = tiny_da_model(departures=True)
    assimilate_da(background, radiances, model=dep, diagnostics=False)
    assimilate_da(background, radiances, model=dep, precision="bfloat16", diagnostics=False)
    assert seen == [torch.float64, torch.float32]
    with pytest.raises(ValueError, match="precision must be one of"):
        assimilate_da(background, radiances, model=model, precision="float16x")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        assimilate_da(background, radiances, model=model, batch_size=0)


def test_the_result_is_saved_as_the_command_line_writes_it(case, tmp_path):
    from tests.tiny import check_saved_result

    background, radiances, model = case
    res = assimilate_da(background, radiances, model=model)
    check_saved_result(res, tmp_path, kind="fuxi-da-analysis")  # the kind the CLI writes
    assert list(res.datasets()) == ["analysis", "increment", "diagnostics"]
    assert "save(directory)" in repr(res)


def test_inputs_not_mutated(case):
    background, radiances, model = case
    b0, r0 = background.copy(deep=True), radiances.copy(deep=True)
    assimilate_da(background, radiances, model=model)
    xr.testing.assert_identical(background, b0)
    xr.testing.assert_identical(radiances, r0)
    # the outputs' attributes are their own: a list in them was the background's
    background["temperature"].attrs["history"] = ["made"]
    res = assimilate_da(background, radiances, model=model)
    res.analysis["temperature"].attrs["history"].append("edited")
    assert "history" not in res.increment["temperature"].attrs  # its units only
    assert background["temperature"].attrs["history"] == ["made"]
    assert res.analysis.attrs["xfuxi_version"] == xfuxi.__version__


def test_bad_input(case):
    background, radiances, model = case
    bad = background.copy(deep=True)
    bad["temperature"][0, 1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="temperature.*NaN"):
        assimilate_da(bad, radiances, model=model)
    other = radiances.isel(latitude=slice(0, 6))
    with pytest.raises(ImagerError, match="another grid"):
        assimilate_da(background, other, model=model)
    # the variables beside the radiances, named (raw transpose or broadcast errors before)
    member = radiances.assign(zenith_angle=radiances["zenith_angle"].expand_dims(member=2))
    with pytest.raises(ImagerError, match=r"zenith_angle has dim\(s\) \['member'\]"):
        assimilate_da(background, member, model=model)
    moving = radiances.assign(
        zenith_angle=radiances["zenith_angle"].expand_dims(time=radiances["time"].values)
    )
    with pytest.raises(ImagerError, match=r"zenith_angle has dim\(s\) \['time'\].*fixed"):
        assimilate_da(background, moving, model=model)
    cloud = radiances.assign(cloudy=radiances["cloudy"].expand_dims(member=2))
    with pytest.raises(ImagerError, match=r"cloudy has dim\(s\) \['member'\]"):
        assimilate_da(background, cloud, model=model)
    renamed = radiances.assign_coords(sensor_channel=["wv6.2", "ir99"])
    with pytest.raises(ImagerError, match="unknown imager channel.*ir99"):
        assimilate_da(background, renamed, model=model)
    empty = radiances.assign(brightness_temperature=radiances["brightness_temperature"] * np.nan)
    with pytest.raises(ImagerError, match="every pixel"):
        assimilate_da(background, empty, model=model)
    one = radiances.sel(sensor_channel=["wv6.2"])
    with pytest.raises(ImagerError, match=r"trained for imager channels.*lack \['ir10.8'\]"):
        assimilate_da(background, one, model=model)
    assimilate_da(background, one, model=model, allow_missing_channels=True)
    first = radiances.isel(frame=[0])  # a frame the model takes is absent
    with pytest.raises(ImagerError, match=r"takes frames at .*; the radiances have frames at"):
        assimilate_da(background, first, model=model)
    moved = radiances.assign_attrs(satellite_longitudes=[np.float64(140.0)])
    with pytest.raises(ImagerError, match=r"trained with satellites at .*come from \[140.0\]"):
        assimilate_da(background, moved, model=model)
    with pytest.raises(ValueError, match="assimilates radiances"):
        assimilate_da(background, model=model)
    with pytest.raises(ImagerError, match="no analysis time .* select the background's times"):
        assimilate_da(background.assign_coords(time=background["time"] + np.timedelta64(1, "h")),
                      radiances, model=model)  # fmt: skip


def test_radiances_in_another_orientation_give_the_same_analysis(case):
    # latitudes north to south and longitudes in -180..180 are the model's grid in another
    # order: put in xfuxi's order on a copy (as validate does for states), not refused
    background, radiances, model = case
    expected = assimilate_da(background, radiances, model=model)
    lon = ((radiances["longitude"] + 180.0) % 360.0) - 180.0
    turned = radiances.assign_coords(longitude=lon).sortby("longitude")
    turned = turned.isel(latitude=slice(None, None, -1))
    kept = turned.copy(deep=True)
    got = assimilate_da(background, turned, model=model)
    xr.testing.assert_allclose(got.analysis, expected.analysis, rtol=0, atol=1e-12)
    xr.testing.assert_identical(turned, kept)  # the user's radiances are not reordered
    repeated = radiances.isel(longitude=[0, 0, *range(2, radiances.sizes["longitude"])])
    with pytest.raises(ImagerError, match="longitude has repeated values"):
        assimilate_da(background, repeated, model=model)


def test_a_single_time_or_frame_is_read_from_its_scalar_coordinate(case):
    # radiances of one time stored without a time dim carry their time as a scalar: they
    # are refused for another background time (they were used for every time)
    background, radiances, model = case
    first = radiances.isel(time=0)
    with pytest.raises(ImagerError, match="no analysis time"):
        assimilate_da(background.isel(time=[1]), first, model=model)
    same = assimilate_da(background.isel(time=[0]), first, model=model)
    expected = assimilate_da(background.isel(time=[0]), radiances.isel(time=[0]), model=model)
    xr.testing.assert_identical(same.analysis, expected.analysis)
    with pytest.raises(ImagerError, match="no time coordinate"):
        assimilate_da(background, radiances.drop_vars("time"), model=model)
    # a single frame as a scalar is that frame, not the analysis time's
    with pytest.raises(ImagerError, match=r"takes frames at \[-2.0, 0.0\] h.*frames at \[-2.0\]"):
        assimilate_da(background, radiances.isel(frame=0), model=model)
    hours = radiances.assign_coords(frame=[-2.0, 0.0])
    with pytest.raises(ImagerError, match="frame coordinate must hold .* timedelta"):
        assimilate_da(background, hours, model=model)


def test_radiance_variables_are_read_by_dim_name(case):
    background, radiances, model = case
    expected = assimilate_da(background, radiances, model=model)
    turned = radiances.transpose("longitude", "latitude", "sensor_channel", "frame", "time")
    got = assimilate_da(background, turned, model=model)
    xr.testing.assert_identical(got.analysis, expected.analysis)
    xr.testing.assert_identical(got.diagnostics.drop_vars("analysis_seconds"),
                                expected.diagnostics.drop_vars("analysis_seconds"))  # fmt: skip
    with pytest.raises(ImagerError, match=r"dim\(s\) \['member'\]"):
        assimilate_da(background, radiances.expand_dims(member=2), model=model)


def test_satellites_checked_by_geometry_and_modulo_360(case):
    background, radiances, model = case  # trained with a satellite at 90 E
    same = radiances.assign_attrs(satellite_longitudes=[-270.0])  # 90 E again
    assimilate_da(background, same, model=model)
    bare = radiances.copy()
    bare.attrs = {k: v for k, v in radiances.attrs.items() if k != "satellite_longitudes"}
    assimilate_da(background, bare, model=model)  # its zenith angles are the model's
    truth = tiny_da.truth(4)
    far = imager_observations(truth, satellites=[270.0], channels=["wv6.2", "ir10.8"],
                              frames=(-2.0, 0.0))  # fmt: skip
    far.attrs = {k: v for k, v in far.attrs.items() if k != "satellite_longitudes"}
    with pytest.raises(ImagerError, match="zenith angles of .* not those of the satellites"):
        assimilate_da(background, far, model=model)
    assimilate_da(background, far, model=model, allow_new_satellites=True)


def test_zenith_angles_in_radians_are_refused(case):
    # zenith angles in radians (below 1.6) were read as degrees: every pixel near nadir,
    # O-B of wv6.2 six times larger and a wrong increment, without a word
    background, radiances, model = case
    radians = radiances.assign(zenith_angle=np.radians(radiances["zenith_angle"]))
    assert radians["zenith_angle"].attrs["units"] == "degree"  # wrongly labelled
    for kw in ({}, {"allow_new_satellites": True}):  # with the satellite_longitudes attribute
        with pytest.raises(ImagerError, match="zenith angles of .* look like radians"):
            assimilate_da(background, radians, model=model, **kw)
    bare = radians.copy()
    bare.attrs = {k: v for k, v in radians.attrs.items() if k != "satellite_longitudes"}
    with pytest.raises(ImagerError, match="no 'satellite_longitudes'.*look like radians"):
        assimilate_da(background, bare, model=model)
    labelled = radians.assign(zenith_angle=radians["zenith_angle"].assign_attrs(units="radian"))
    with pytest.raises(ImagerError, match="zenith_angle is in 'radian'"):
        assimilate_da(background, labelled, model=model)
    shifted = radiances.assign(zenith_angle=radiances["zenith_angle"] + 5.0)  # not radians
    with pytest.raises(ImagerError, match=r"not those of the satellites of their .*\[90.0\]"):
        assimilate_da(background, shifted, model=model)
    assimilate_da(background, radiances, model=model, allow_new_satellites=True)


def test_non_finite_values_and_flags_refused(case):
    background, radiances, model = case
    bad = background.copy(deep=True)
    bad["surface_pressure"][0, 1, 2] = np.inf
    with pytest.raises(ValueError, match="surface_pressure.*non-finite"):
        assimilate_da(bad, radiances, model=model)
    hot = radiances.copy(deep=True)
    hot["brightness_temperature"][0, 0, 0, 4, 4] = np.inf
    with pytest.raises(ImagerError, match="1 infinite value"):
        assimilate_da(background, hot, model=model)
    for flag in ("allow_missing_channels", "allow_new_satellites", "diagnostics"):
        with pytest.raises(TypeError, match=f"{flag} must be True or False"):
            assimilate_da(background, radiances, model=model, **{flag: "no"})
    with pytest.raises(ValueError, match="no time"):
        assimilate_da(background.isel(time=[]), radiances, model=model)
    # (a north-to-south background is put in order: tests/test_fuxi_da_orientation.py)


def test_a_background_with_levels_the_model_does_not_read(case):
    background, radiances, model = case
    expected = assimilate_da(background, radiances, model=model)
    top = background.isel(level=[0]).assign_coords(level=[100.0])
    top["temperature"] = top["temperature"] * np.nan  # not read: no error
    more = xr.concat([background, top], "level", data_vars="minimal").sortby("level")
    got = assimilate_da(more, radiances, model=model)
    xr.testing.assert_allclose(got.analysis, expected.analysis, rtol=0, atol=1e-12)
    xr.testing.assert_allclose(got.diagnostics.drop_vars("analysis_seconds"),
                               expected.diagnostics.drop_vars("analysis_seconds"))  # fmt: skip


def test_levels_in_any_order_give_the_same_analysis(case):
    """A background whose levels descend (as ERA5 stores them) or come in no order is
    analysed level by level as the same background in order: the analysis and the increment
    in xfuxi's canonical order (levels ascending), the input not changed. (Each level's
    increment went to the mirrored level; levels in no order got pandas' raw error.)"""
    background, radiances, model = case
    expected = assimilate_da(background, radiances, model=model)
    diagnostics = expected.diagnostics.drop_vars("analysis_seconds")
    for label, order in {"descending": [3, 2, 1, 0], "no order": [1, 0, 3, 2]}.items():
        other = background.isel(level=order)
        kept = other.copy(deep=True)
        got = assimilate_da(other, radiances, model=model)
        for name in ("analysis", "increment"):  # level by level, by label
            mine, theirs = getattr(got, name), getattr(expected, name)
            xr.testing.assert_equal(mine.sel(level=theirs["level"]), theirs)
        xr.testing.assert_identical(got.analysis, expected.analysis)
        xr.testing.assert_identical(got.increment, expected.increment)
        xr.testing.assert_identical(got.diagnostics.drop_vars("analysis_seconds"), diagnostics)
        xr.testing.assert_identical(other, kept)  # not sorted in place
        xr.testing.assert_identical(DAMethod(model)(other, radiances), expected.analysis)
        assert got.analysis["level"].values.tolist() == [250.0, 500.0, 700.0, 850.0], label
    # with a level the model does not read, top-down
    top = background.isel(level=[0]).assign_coords(level=[100.0])
    more = xr.concat([background, top], "level", data_vars="minimal")
    got = assimilate_da(more.sortby("level", ascending=False), radiances, model=model)
    xr.testing.assert_allclose(got.analysis, expected.analysis, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"repeated level\(s\) \[250.0\]"):
        assimilate_da(background.isel(level=[0, 0, 1, 2, 3]), radiances, model=model)


def test_increments_are_labelled_by_level_never_by_position(case):
    """increment_dataset and analysis_dataset match levels by value: a background with the
    model's levels top-down, or a model whose channels go top-down, gets each level's
    increment on that level (the background's level labels were put on by position)."""
    background, _, model = case
    inc = np.random.default_rng(2).normal(size=(background.sizes["time"], C_MODEL, 8, 16))
    expected = da_module.increment_dataset(background, inc, model.channels)
    names = list(expected.data_vars)
    top_down = background.isel(level=slice(None, None, -1))
    got = da_module.increment_dataset(top_down, inc, model.channels)
    assert got["level"].values.tolist() == [250.0, 500.0, 700.0, 850.0]
    xr.testing.assert_allclose(got, expected, rtol=0, atol=0)
    analysis, same = da_module.analysis_dataset(top_down, got)
    assert not same
    xr.testing.assert_allclose(analysis, background[names] + expected, rtol=0, atol=1e-12)
    in_no_order = background.isel(level=[1, 0, 3, 2])
    analysis, _ = da_module.analysis_dataset(in_no_order, got)
    xr.testing.assert_allclose(analysis, background[names] + expected, rtol=0, atol=1e-12)
    # a model whose channels of each variable go from 850 up to 250 hPa
    order = [3, 2, 1, 0, 7, 6, 5, 4, 8]
    channels = [model.channels[i] for i in order]
    got = da_module.increment_dataset(background, inc[:, order], channels)
    xr.testing.assert_identical(got, expected)


def test_cloud_groups_leave_out_pixels_without_a_window_value(case):
    background, radiances, model = case
    plain = radiances.drop_vars("cloudy")  # the flag comes from the window channel's O−B
    bt = plain["brightness_temperature"]
    gone = (bt["sensor_channel"] == "ir10.8") & (bt["longitude"] >= 90.0)
    half = plain.assign(brightness_temperature=bt.where(~gone))
    d = assimilate_da(background, half, model=model).diagnostics
    counts = d["count"].sel(group=["clear", "cloudy"]).sum("group")
    # every channel's clear + cloudy pixels are those with an ir10.8 value
    np.testing.assert_array_equal(counts.sel(sensor_channel="wv6.2"),
                                  d["count"].sel(sensor_channel="ir10.8", group="all"))  # fmt: skip
    assert (counts.sel(sensor_channel="wv6.2")
            < d["count"].sel(sensor_channel="wv6.2", group="all")).all()  # fmt: skip


def test_zenith_bins_hold_what_their_names_say():
    zen = np.array([[10.0, 30.0, 50.0, 60.0, 70.0, 80.0]])
    channels = list(tiny_da.MODEL_CHANNELS)
    state = np.zeros((len(channels), 1, 6))
    for i, (v, _) in enumerate(channels):
        state[i] = {"temperature": 250.0, "passive_tracer": 0.1}.get(v, 1.0e5)
    obs = np.full((1, 1, 6), 250.0)
    d = da_module.radiance_diagnostics(state, state, obs, zen, model_channels=channels,
                                       sensor_channels=["wv6.2"])  # fmt: skip
    counts = d["count"].sel(sensor_channel="wv6.2").to_series()
    assert counts["zenith 55-70"] == 2  # 60 and 70; 80 only in "all"
    assert counts["all"] == 6 and counts["zenith 0-20"] == 1


def test_without_a_window_channel_or_a_cloud_flag_no_pixel_is_clear_or_cloudy():
    # a model reading wv6.2 only, radiances without the truth's cloud flag: nothing tells
    # clear from cloudy pixels, so both groups are empty (not every pixel "clear")
    truth = tiny_da.truth(4)
    model = _one_model(sensors=("wv6.2",), frames=(0.0,))
    radiances = imager_observations(truth, satellites=[90.0], channels=["wv6.2"], frames=(0.0,))
    background = truth.sel(time=radiances["time"].values) + 0.0
    d = assimilate_da(background, radiances.drop_vars("cloudy"), model=model).diagnostics
    assert d.attrs["cloud_flag"] == "none"
    assert int(d["count"].sel(group="all").min()) > 0
    assert int(d["count"].sel(group=["clear", "cloudy"]).max()) == 0
    assert bool(d["rms_omb"].sel(group=["clear", "cloudy"]).isnull().all())


def _one_model(sensors=("wv6.2", "ir10.8"), frames=(0.0,)):
    from xfuxi.models.base import NormStats
    from xfuxi.models.fuxi_da import FuXiDA, FuXiDANet, n_observation_inputs

    torch.manual_seed(0)
    return FuXiDA(
        FuXiDANet(C_MODEL, n_observation_inputs(len(frames), len(sensors)), width=4, scales=2),
        channels=tiny_da.MODEL_CHANNELS, latitude=tiny_da.LAT, longitude=tiny_da.LON,
        stats=NormStats(np.full(C_MODEL, 100.0), np.full(C_MODEL, 50.0), np.full(C_MODEL, 2.0)),
        sensor_channels=sensors, frames=frames, satellites=(90.0,), name="one",
    )  # fmt: skip


def test_diagnostics_record_the_frame_they_use(case):
    background, radiances, model = case
    d = assimilate_da(background, radiances, model=model).diagnostics
    assert d.attrs["diagnostics_frame_hours"] == 0.0
    # a model without a 0 h frame: the frame nearest the analysis time, and it is said
    truth = tiny_da.truth(4)
    early = _one_model(frames=(-2.0,))
    rad = imager_observations(truth, satellites=[90.0], channels=["wv6.2", "ir10.8"],
                              frames=(-2.0, 2.0))  # fmt: skip
    bg = truth.sel(time=rad["time"].values) + 0.0
    d = assimilate_da(bg, rad, model=early).diagnostics
    assert d.attrs["diagnostics_frame_hours"] == -2.0
    alone = assimilate_da(bg, rad.sel(frame=[np.timedelta64(-2, "h")]), model=early).diagnostics
    xr.testing.assert_identical(d.drop_vars("analysis_seconds"),
                                alone.drop_vars("analysis_seconds"))  # fmt: skip
    scalar = assimilate_da(bg, rad.isel(frame=0), model=early).diagnostics
    assert scalar.attrs["diagnostics_frame_hours"] == -2.0


def test_an_analysis_time_without_any_pixel_is_refused(case):
    background, radiances, model = case
    bt = radiances["brightness_temperature"].copy()
    bt[0] = np.nan  # the first time: every pixel of every frame missing
    gone = radiances.assign(brightness_temperature=bt)
    with pytest.raises(ImagerError, match="every pixel .* missing .* 2001-01-01 06:00"):
        assimilate_da(background.isel(time=[0]), gone, model=model)
    with pytest.raises(ImagerError, match="every pixel .* missing .* 2001-01-01 06:00"):
        assimilate_da(background, gone, model=model)
    # a frame the model does not read keeps its pixels: still nothing for the model
    later = _one_model(frames=(0.0,))
    zero = radiances.copy(deep=True)
    zero["brightness_temperature"][0, 1] = np.nan  # the 0 h frame of the first time
    with pytest.raises(ImagerError, match="every pixel .* missing .* 2001-01-01 06:00"):
        assimilate_da(background, zero, model=later)
    assimilate_da(background.isel(time=[1, 2]), zero, model=later)  # the other times: fine


def test_radiances_without_frames_for_a_model_of_several_frames(case):
    background, radiances, model = case  # the model takes frames at -2 and 0 h
    bare = radiances.isel(frame=1, drop=True)
    with pytest.raises(ImagerError, match=r"takes frames at \[-2.0, 0.0\] h.*no frame coordinate"):
        assimilate_da(background, bare, model=model)
    # a model of the analysis-time frame alone reads them as that frame
    one = _one_model(frames=(0.0,))
    got = assimilate_da(background, bare, model=one)
    expected = assimilate_da(background, radiances.isel(frame=[1]), model=one)
    xr.testing.assert_identical(got.analysis, expected.analysis)


def test_a_background_with_an_extra_dim_is_refused(case):
    background, radiances, model = case
    with pytest.raises(ValueError, match=r"background\['.*'\] has dim\(s\) \['member'\]"):
        assimilate_da(background.expand_dims(member=2), radiances, model=model)


def test_a_forecast_of_one_lead_is_analysed_at_its_valid_times(case):
    """fc.isel(prediction_timedelta=0), as the error advised, was analysed at its initial
    times with the radiances of those times: 6 hours off, silently."""
    background, radiances, model = case
    lead = np.timedelta64(6, "h")
    fc = background.assign_coords(time=background["time"].values - lead)  # initial times
    fc = fc.expand_dims(prediction_timedelta=[lead])
    fc = fc.assign_coords(valid_time=fc["time"] + fc["prediction_timedelta"])
    want = assimilate_da(background, radiances, model=model).analysis
    for given in (fc, fc.isel(prediction_timedelta=0)):  # a dim of one lead, or a scalar
        got = assimilate_da(given, radiances, model=model).analysis
        np.testing.assert_array_equal(got["time"].values, background["time"].values)
        xr.testing.assert_allclose(got, want)
    with pytest.raises(ValueError, match=r"forecast of 2 leads; .*isel\(prediction_timedelta=0\)"):
        assimilate_da(xr.concat([fc, fc], "prediction_timedelta"), radiances, model=model)
    # a lead per time (a coordinate along time) likewise; a number is no time span (6 ns)
    along = fc.isel(prediction_timedelta=0).assign_coords(
        prediction_timedelta=("time", np.full(fc.sizes["time"], lead))
    )
    xr.testing.assert_allclose(assimilate_da(along, radiances, model=model).analysis, want)
    with pytest.raises(TypeError, match="prediction_timedelta must be a time span"):
        assimilate_da(fc.assign_coords(prediction_timedelta=[6]), radiances, model=model)


def test_increment_and_diagnostics_metadata(case):
    """The increment carried the background's names (long_name "air temperature", the CF
    standard_name), labelling a difference as the field; O−B and O−A had no units."""
    background, radiances, model = case
    background = background.copy()
    background["temperature"].attrs = {
        "units": "K", "long_name": "air temperature", "standard_name": "air_temperature",
    }  # fmt: skip
    res = assimilate_da(background, radiances, model=model)
    assert res.increment["temperature"].attrs == {"units": "K"}
    assert res.analysis["temperature"].attrs["standard_name"] == "air_temperature"
    for name in ("mean_omb", "rms_omb", "mean_oma", "rms_oma"):
        assert res.diagnostics[name].attrs["units"] == "K"
    assert "units" not in res.diagnostics["count"].attrs
