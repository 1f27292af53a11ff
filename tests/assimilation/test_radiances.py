"""En4DVar with imager radiances: the offline bias fit, the cloud screening, the analysis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests import tiny_da
from tests.training.test_da import forecast_model
from xfuxi.assimilation.config import BackgroundError
from xfuxi.assimilation.radiances import (
    PixelRadianceOperator,
    RadianceBiasCorrection,
    background_radiances,
    bias_predictors,
    cloud_screen,
    fit_radiance_bias,
    radiance_analysis,
)
from xfuxi.data.channels import stack
from xfuxi.observations.imager import (
    CHANNELS,
    ImagerError,
    ImagerErrors,
    imager_observations,
    radiance_operator,
    radiance_table,
)

CH = ["wv6.9", "wv7.4", "ir10.8"]


def _radiances(truth, **errors):
    """The imager's radiances of ``truth``; ``errors`` are :class:`ImagerErrors` fields."""
    return imager_observations(
        truth, satellites=[90.0], channels=CH, frames=(0.0,), seed=3,
        errors=ImagerErrors(**errors),
    )  # fmt: skip


def test_bias_fit_recovers_the_imagers_bias_model():
    # no clouds, noise or spectroscopy error and the truth as background: O - H(x_b) is the
    # imager's bias b0 + b_zenith (sec θ - 1) + b_scene (BT - 250) / 50, exactly
    truth = tiny_da.truth(3)
    rad = _radiances(truth, clouds=False, noise=False, spectroscopy=False)
    table = radiance_table(rad, error=0.5)
    hxb = background_radiances(table, truth, channels=tiny_da.MODEL_CHANNELS)
    names = table["sensor_channel"].values.astype(str)
    bc = fit_radiance_bias(
        table["value"].values - hxb, sensor_channel=names,
        zenith_angle=table["zenith_angle"].values, background_bt=hxb,
    )  # fmt: skip
    for c in CH:
        np.testing.assert_allclose(bc.coefficients[c], CHANNELS[c].bias, atol=1e-6)
    corrected = table["value"].values - bc.predict(names, table["zenith_angle"].values, hxb)
    np.testing.assert_allclose(corrected, hxb, atol=1e-6)
    assert (
        set(bc.to_dict()) == set(CH)
        and bc.to_dict()["ir10.8"]["n_rows"] == (names == "ir10.8").sum()
    )


def test_bias_fit_with_noise_and_errors():
    rng = np.random.default_rng(0)
    zen = rng.uniform(0, 65, 400)
    bt = rng.uniform(220, 290, 400)
    names = np.array(["a", "b"])[rng.integers(0, 2, 400)]
    beta = {"a": (1.0, -0.5, 0.3), "b": (-0.7, 0.2, 0.0)}
    p = bias_predictors(zen, bt)
    d = np.array([p[i] @ beta[n] for i, n in enumerate(names)]) + 0.1 * rng.standard_normal(400)
    bc = fit_radiance_bias(d, sensor_channel=names, zenith_angle=zen, background_bt=bt)
    for n in beta:
        np.testing.assert_allclose(bc.coefficients[n], beta[n], atol=0.05)
    with pytest.raises(ImagerError, match="fewer than"):
        fit_radiance_bias(d[:5], sensor_channel=names[:5], zenith_angle=zen[:5],
                          background_bt=bt[:5])  # fmt: skip
    with pytest.raises(ImagerError, match="do not vary"):
        fit_radiance_bias(d, sensor_channel=names, zenith_angle=np.zeros(400), background_bt=bt)
    with pytest.raises(ImagerError, match="no bias coefficients"):
        bc.predict(["c"], [0.0], [250.0])
    with pytest.raises(ValueError, match="below 90"):
        bias_predictors([95.0], [250.0])
    with pytest.raises(ValueError, match="NaN"):
        fit_radiance_bias(np.full(400, np.nan), sensor_channel=names, zenith_angle=zen,
                          background_bt=bt)  # fmt: skip


def test_cloud_screen_finds_the_clouds_without_the_truths_flag():
    truth = tiny_da.truth(3)
    rad = _radiances(truth, noise=False)
    table = radiance_table(rad, error=0.5)
    hxb = background_radiances(table, truth, channels=tiny_da.MODEL_CHANNELS)
    flag = cloud_screen(table.drop_vars("cloudy"), hxb, threshold=3.0)
    cloudy = table["cloudy"].values.astype(bool)
    win = table["sensor_channel"].values == "ir10.8"
    cold = (table["value"].values - hxb)[win] < -3.0
    assert cloudy.any() and (~cloudy).any()
    assert not flag[~cloudy].any()  # the clear pixels' window departure is the bias only
    assert flag[cloudy].mean() > 0.5  # most clouds are opaque enough
    assert (flag[win] == cold).all()
    # every channel of a pixel gets the pixel's flag
    pix = {}
    where = zip(table["time"].values, table["latitude"].values, table["longitude"].values)
    for f, key in zip(flag, where):
        pix.setdefault(key, set()).add(bool(f))
    assert all(len(v) == 1 for v in pix.values())
    with pytest.raises(ValueError, match="one value per row"):
        cloud_screen(table, hxb[:-1])
    with pytest.raises(ImagerError, match="unknown window channel"):
        cloud_screen(table, hxb, window_channel="ir99")


def test_pixel_operator_is_the_row_operator():
    truth = tiny_da.truth(2)
    table = radiance_table(_radiances(truth), error=1.0)
    grid = dict(channels=tiny_da.MODEL_CHANNELS, latitude=tiny_da.LAT, longitude=tiny_da.LON)
    rows = radiance_operator(table, **grid)
    pix = PixelRadianceOperator.of(rows)
    # every pixel has every channel at both times (one column per pixel for both)
    assert pix.pixel_lat.numel() * len(CH) * 2 == rows.n_obs
    x = torch.as_tensor(
        stack(truth, tiny_da.MODEL_CHANNELS)
        .transpose("time", "channel", "latitude", "longitude")
        .values
    )
    torch.testing.assert_close(pix(x), rows(x))
    keep = np.arange(rows.n_obs) % 3 == 0
    torch.testing.assert_close(pix.subset(keep)(x[0]), rows.subset(keep)(x[0]))
    xg = x[0].clone().requires_grad_(True)
    (pix(xg) ** 2).sum().backward()
    g1 = xg.grad.clone()
    xg.grad = None
    (rows(xg) ** 2).sum().backward()
    torch.testing.assert_close(g1, xg.grad)
    with pytest.raises(ValueError, match="expected states"):
        pix(x[..., :-1, :, :])


def test_radiance_analysis_clear_sky_and_all_sky():
    truth = tiny_da.truth(4)
    rad = _radiances(truth.isel(time=[3]), noise=False, spectroscopy=False)
    table = radiance_table(rad, error=0.3)
    model = forecast_model()
    bg = truth.isel(time=[1, 2, 3]).copy(deep=True)
    bg["temperature"][-1] = bg["temperature"][-1] + 1.0  # a large-scale background error
    hxb = background_radiances(table, bg.isel(time=[-1]), channels=tiny_da.MODEL_CHANNELS)
    names = table["sensor_channel"].values.astype(str)
    exact = RadianceBiasCorrection(
        {c: CHANNELS[c].bias for c in CH}, n_rows={c: 1 for c in CH}
    )  # the truth's bias model (its scene term read at H(x_b) instead of H(x_t))
    b = BackgroundError(n_members=32, amplitude=0.2)  # a spread of about 1 K
    kw = dict(model=model, bias=exact, localization=None, background_error=b)
    clear = radiance_analysis(bg, table, screen_threshold=3.0, **kw)
    allsky = radiance_analysis(bg, table, screen_threshold=3.0, cloudy_error=20.0, **kw)
    d = clear.diagnostics
    assert d["n_radiances"] == table.sizes["obs"] and d["n_cloudy_looking"] > 0
    assert d["n_radiances_used"] <= d["n_radiances"] - d["n_cloudy_looking"]
    assert allsky.diagnostics["n_radiances_used"] > d["n_radiances_used"]
    for c in CH:
        assert d["rms_oma"][c] < d["rms_omb"][c]
    err_b = float(np.sqrt(((bg["temperature"][-1] - truth["temperature"][3]) ** 2).mean()))
    err_a = float(np.sqrt(((clear.analysis["temperature"] - truth["temperature"][3]) ** 2).mean()))
    assert err_a < 0.95 * err_b
    inc = clear.increment["temperature"]
    np.testing.assert_allclose(inc, clear.analysis["temperature"] - bg["temperature"][-1])
    assert np.isfinite(hxb).all() and len(set(names)) == 3
    with pytest.raises(ValueError, match="needs screen_threshold"):
        radiance_analysis(bg, table, screen_threshold=None, cloudy_error=5.0, **kw)
    # a zero or negative cloudy error was clamped to 0: an analysis that did nothing
    for bad in (0.0, -5.0, float("nan")):
        with pytest.raises(ValueError, match="cloudy_error must be a finite error > 0"):
            radiance_analysis(bg, table, screen_threshold=3.0, cloudy_error=bad, **kw)
    # without the window channel every pixel looked cloudy: nothing was ever assimilated
    no_window = table.isel(obs=np.flatnonzero(names != "ir10.8"))
    with pytest.raises(ImagerError, match="no 'ir10.8' rows to screen clouds with"):
        radiance_analysis(bg, no_window, screen_threshold=3.0, **kw)
    with pytest.raises(ValueError, match="nothing to assimilate"):
        radiance_analysis(bg, None, **kw)


def test_conventional_only_is_assimilate_4dvar():
    from xfuxi.assimilation.en4dvar import assimilate_4dvar
    from xfuxi.observations.sets import radiosonde_observations

    truth = tiny_da.truth(4)
    bg = truth.isel(time=[1, 2, 3]).copy(deep=True)
    bg["temperature"][-1] = bg["temperature"][-1] + 1.0
    obs = radiosonde_observations(
        truth.isel(time=[3]), n_sites=6, error={"temperature": 0.5, "passive_tracer": 0.02},
        seed=0,
    )  # fmt: skip
    b = BackgroundError(n_members=16, amplitude=0.2)
    ours = radiance_analysis(bg, None, conventional=obs, model=forecast_model(), background_error=b)
    ref = assimilate_4dvar(bg, obs, model=forecast_model(), background_error=b, progress=False)
    np.testing.assert_allclose(
        ours.analysis["temperature"].values, ref.analysis["temperature"].isel(time=0).values
    )
    assert ours.diagnostics["n_conventional"] == int(ref.diagnostics["n_used"].sum())
    assert float(np.abs(ours.increment["temperature"]).max()) > 0.05


def test_two_satellites_rows_at_one_pixel_keep_their_own_zenith_and_screening():
    """Two satellites' tables joined (xr.concat): rows at a grid point both see were given
    the first row's zenith (15 K off) and screened by the first satellite's window channel;
    results depended on the order of the rows."""
    import xarray as xr

    truth = tiny_da.truth(2)
    nominal = ImagerErrors(clouds=False, bias=False, noise=False, spectroscopy=False)
    kw = dict(channels=["wv6.9", "ir10.8"], frames=(0.0,), errors=nominal,
              times=truth.time.values[1:])  # fmt: skip
    a, b = (radiance_table(imager_observations(truth, satellites=[s], **kw), error=1.0)
            for s in (0.0, 60.0))  # fmt: skip
    x = torch.as_tensor(np.asarray(stack(truth.isel(time=1), tiny_da.MODEL_CHANNELS).transpose(
        "channel", "latitude", "longitude").values, dtype="float64"))  # fmt: skip
    for both in (xr.concat([a, b], "obs"), xr.concat([b, a], "obs")):
        op = radiance_operator(both, channels=tiny_da.MODEL_CHANNELS, latitude=tiny_da.LAT,
                               longitude=tiny_da.LON)  # fmt: skip
        torch.testing.assert_close(PixelRadianceOperator.of(op)(x), op(x))
    # satellite B's window channel 10 K colder: its rows, and only its, look cloudy
    both = xr.concat([a, b], "obs")
    colder = both["value"].values.copy()
    of_b = np.arange(both.sizes["obs"]) >= a.sizes["obs"]
    colder[of_b & (both["sensor_channel"].values.astype(str) == "ir10.8")] -= 10.0
    both = both.assign(value=("obs", colder))
    hxb = background_radiances(both, truth, channels=tiny_da.MODEL_CHANNELS)
    flag = cloud_screen(both, hxb, threshold=3.0)
    assert flag[of_b].all() and not flag[~of_b].any()
