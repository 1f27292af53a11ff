"""The numbers on a scorecard's cells are readable: white on dark cells, black on light."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

import xfuxi  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _card(values):
    """A card of one rmse row of ``t`` with one lead per value."""
    lead = np.arange(6, 6 * (len(values) + 1), 6).astype("timedelta64[h]")
    return xr.Dataset(
        {"t": (("score", "prediction_timedelta", "region"), [[[v] for v in values]])},
        coords={"score": ["rmse"], "prediction_timedelta": lead, "region": ["global"],
                "perfect_value": ("score", [0.0])},
    )  # fmt: skip


def _luminance(colour):
    return float(np.dot(to_rgb(colour), [0.299, 0.587, 0.114]))


def test_cell_numbers_are_white_on_dark_cells_and_black_on_light_ones():
    ref = _card([1.0] * 6)
    # B against A: +50 % (strongly red), -50 % (strongly blue), about 0 (near white),
    # +3 % and -3 % (light), and a NaN cell (no value, no number)
    card = _card([1.5, 0.5, 1.001, 1.03, 0.97, np.nan])
    ax = xfuxi.plot_scorecard(card, ref, vmax=20.0)
    texts = {round(t.get_position()[0]): t for t in ax.texts}
    assert sorted(texts) == [0, 1, 2, 3, 4]  # no number on the NaN cell
    assert [texts[j].get_text() for j in range(5)] == ["50", "-50", "0", "3", "-3"]
    for j in (0, 1):  # saturated red and blue cells
        assert _luminance(texts[j].get_color()) > 0.9, texts[j].get_color()
    for j in (2, 3, 4):  # white and pale cells
        assert _luminance(texts[j].get_color()) < 0.1, texts[j].get_color()
    # the text contrasts with its own cell's colour
    im = ax.images[0]
    rgba = im.cmap(im.norm(im.get_array()))[0]
    for j, t in texts.items():
        cell, text = _luminance(rgba[j]), _luminance(t.get_color())
        assert abs(cell - text) > 0.4, (j, cell, text)
