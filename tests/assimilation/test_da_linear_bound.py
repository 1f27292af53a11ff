"""The linear estimate of examples/fuxi_da_linear_bound.py: its regressors and ridge fit.

The figures it reports (docs/fuxi_da.md, "What the radiances can tell") come from these
functions, so they are checked here on a case with a known answer.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def lb():
    sys.path.insert(0, str(EXAMPLES))  # the script imports its sibling examples
    try:
        return runpy.run_path(str(EXAMPLES / "fuxi_da_linear_bound.py"))
    finally:
        sys.path.remove(str(EXAMPLES))


def _samples(rng, err, seen, dep, cloudy, zenith):
    """The example's sample dict: a random background ``base`` (its own and CORR's) whose
    truth is off by ``err``, the departures the estimate sees (``seen``) and the exact
    analysis-time ones."""
    base = rng.normal(0.0, 1.0, err.shape)
    return {
        "truth": base + err, "corr": base, "base": base, "dep": seen, "cloudy": cloudy,
        "exact": dep[:, 0], "zenith": zenith, "lat": np.linspace(-50, 50, err.shape[-2]),
        "channels": ["wv6.2", "ir10.8"],
    }  # fmt: skip


def test_shift_is_periodic_in_longitude_and_missing_beyond_the_poles(lb):
    a = np.arange(12.0).reshape(3, 4)
    s = lb["shift"](a, 1, -1)  # a[i + 1, j - 1]
    np.testing.assert_array_equal(s[:2], [[7, 4, 5, 6], [11, 8, 9, 10]])
    assert np.isnan(s[2]).all()
    np.testing.assert_array_equal(lb["shift"](a, 0, 1), np.roll(a, -1, axis=-1))


def test_the_ridge_fit_recovers_a_linear_error_from_neighbouring_departures(lb):
    """The error of the background is a known linear function of the departures of the
    pixel and its eastern neighbour; pixels are missing at random and cloudy ones are
    screened out. The fitted estimate removes it where the pixels are seen, and leaves the
    background alone outside the disc."""
    rng = np.random.default_rng(0)
    t, f, s, c, h, w = 60, 1, 2, 3, 6, 8
    dep = rng.normal(0.0, 1.0, (t, f, s, h, w))
    zenith = np.full((h, w), 30.0)
    zenith[:, -2:] = np.nan  # outside the disc: no pixels
    dep[..., -2:] = np.nan
    east = lb["shift"](dep, 0, 1)
    err = np.zeros((t, c, h, w))
    err[:, 0] = 0.5 * np.nan_to_num(dep[:, 0, 0]) - 0.2 * np.nan_to_num(east[:, 0, 1])
    err[:, 1] = 0.3 * np.nan_to_num(dep[:, 0, 1])
    cloudy = np.zeros((t, f, h, w), bool)
    cloudy[rng.random(cloudy.shape) < 0.2] = True
    dep_seen = dep.copy()
    dep_seen[:, :, 1] = np.where(cloudy, -10.0, dep[:, :, 1])  # a cold window: screened
    # the error does not depend on cloudy pixels' departures (they are not the column's)
    err[:, 0] -= np.where(cloudy[:, 0], 0.5 * dep[:, 0, 0], 0.0)
    err[:, 0] += 0.2 * np.where(lb["shift"](cloudy, 0, 1)[:, 0], np.nan_to_num(east[:, 0, 1]), 0.0)
    err[:, 1] -= np.where(cloudy[:, 0], 0.3 * dep[:, 0, 1], 0.0)
    err[:, :, :, -2:] = 0.0
    d = _samples(rng, err, dep_seen, dep, cloudy, zenith)
    edges = np.array([0.0])
    coefs, scale, chosen = lb["fit"](d, "screened", half=1, edges=edges)
    assert set(coefs) == {0, 1} and all(len(v) == c for v in chosen.values())
    analysis = lb["predict"](d, "screened", coefs, scale, half=1, edges=edges)
    inside = np.isfinite(zenith)
    before = np.sqrt((err[:, :2][..., inside] ** 2).mean())
    after = np.sqrt(((analysis - d["truth"])[:, :2][..., inside] ** 2).mean())
    assert after < 0.05 * before
    np.testing.assert_array_equal(analysis[..., ~inside], d["base"][..., ~inside])
    # all-sky, the cold departures of the cloudy pixels enter the regression and spoil it
    coefs_a, scale_a, _ = lb["fit"](d, "all-sky", half=1, edges=edges)
    all_sky = lb["predict"](d, "all-sky", coefs_a, scale_a, half=1, edges=edges)
    assert np.sqrt(((all_sky - d["truth"])[:, :2][..., inside] ** 2).mean()) > 3 * after


def test_the_imager_errors_option_switches_the_named_errors_and_refuses_others(lb):
    errors = lb["imager_errors"]("noise=false,bias=False,drift=0.5")
    assert (errors.noise, errors.bias, errors.clouds, errors.spectroscopy) == (
        False,
        False,
        True,
        True,
    )
    assert errors.drift == 0.5
    assert lb["imager_errors"]("") == lb["ImagerErrors"]()
    for bad in ("noise", "noise=maybe", "wind=false"):
        with pytest.raises(SystemExit, match="--errors"):
            lb["imager_errors"](bad)


def test_the_frame_mean_averages_the_frames_that_see_a_pixel_after_screening(lb):
    # 1 time, 3 frames, 2 channels (ir10.8 second), 1 x 3 pixels
    dep = np.zeros((1, 3, 2, 1, 3))
    dep[0, :, 0, 0, 0] = [1.0, 2.0, 6.0]  # pixel 0: frame 2 cloudy (cold window)
    dep[0, 2, 1, 0, 0] = -10.0
    dep[0, :, 0, 0, 1] = [np.nan, 3.0, 5.0]  # pixel 1: frame 0 missing
    dep[0, :, 1, 0, 1] = [np.nan, 0.0, 0.0]
    dep[0, :, :, 0, 2] = np.nan  # pixel 2: never seen
    d = {"dep": dep, "channels": ["wv6.2", "ir10.8"]}
    mean = lb["seen_departures"](d, "screened-mean")
    assert mean.shape == (1, 1, 2, 1, 3)
    np.testing.assert_allclose(mean[0, 0, 0, 0, :2], [1.5, 4.0])
    np.testing.assert_allclose(mean[0, 0, 1, 0, :2], [0.0, 0.0])
    assert np.isnan(mean[0, 0, :, 0, 2]).all()


def test_cloudy_pixels_as_regressors_of_their_own_recover_what_the_clouds_tell(lb):
    """Under a cloud the error of the tracer-like channel follows the cloud top (the cold
    window's departure), which the screened estimate cannot read (it drops the cloudy
    pixels' values; that a pixel is missing it does see) and the screened + cloudy one
    reads from its cloudy block; where no cloud is, both recover the clear part."""
    rng = np.random.default_rng(1)
    t, f, s, c, h, w = 80, 1, 2, 2, 4, 8
    dep = rng.normal(0.0, 1.0, (t, f, s, h, w))
    cloudy = rng.random((t, f, h, w)) < 0.3
    dep[:, :, 1] = np.where(cloudy, -10.0 + rng.normal(0.0, 1.0, cloudy.shape), dep[:, :, 1])
    zenith = np.full((h, w), 30.0)
    err = np.zeros((t, c, h, w))
    err[:, 0] = np.where(cloudy[:, 0], 0.5 * (dep[:, 0, 1] + 10.0), 0.4 * dep[:, 0, 0])
    d = _samples(rng, err, dep, dep, cloudy, zenith)
    seen = lb["seen_departures"](d, "screened-cloudy")
    assert seen.shape == (t, f, 2 * s, h, w)
    np.testing.assert_array_equal(np.isfinite(seen[:, 0, 2]), cloudy[:, 0])  # cloudy block
    np.testing.assert_array_equal(np.isfinite(seen[:, 0, 0]), ~cloudy[:, 0])  # clear block
    edges = np.array([0.0])

    def rmse(variant):
        coefs, scale, _ = lb["fit"](d, variant, half=0, edges=edges)
        x = lb["predict"](d, variant, coefs, scale, half=0, edges=edges)
        return np.sqrt(((x - d["truth"])[:, 0] ** 2).mean())

    before = np.sqrt((err[:, 0] ** 2).mean())
    assert rmse("screened-cloudy") < 0.05 * before
    assert rmse("screened") > 0.3 * before
