"""Plots refuse, or draw readably, the awkward inputs an audit found (audit61, F01–F12):
fields and scores without a finite value, mixed units on one axes, repeated leads,
missing scorecard cells, a scalar lead, sub-day leads, an isolated spread–skill ratio, the
iteration coordinate of a cost curve and the scorecard's colour-bar label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

import xfuxi  # noqa: E402
from xfuxi import plot as xplot  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _field(values=None):
    lat, lon = [-45.0, 0.0, 45.0], [0.0, 90.0, 180.0, 270.0]
    data = np.arange(12.0).reshape(3, 4) if values is None else values
    return xr.DataArray(data, dims=("latitude", "longitude"), name="t",
                        coords={"latitude": lat, "longitude": lon},
                        attrs={"units": "K", "source": "Held-Suarez world"})  # fmt: skip


def _score(values, hours, metric="rmse", units="K"):
    lead = pd.to_timedelta(hours, "h")
    return xr.DataArray(np.asarray(values, dtype=float), dims="prediction_timedelta",
                        coords={"prediction_timedelta": lead},
                        attrs={"metric": metric, "units": units})  # fmt: skip


def _cards(hours=(6, 12, 24, 36)):
    lead = pd.to_timedelta(list(hours), "h").values
    values = np.linspace(1.0, 2.0, len(hours)).reshape(1, -1, 1)
    a = xr.Dataset({"t": (("score", "prediction_timedelta", "region"), values)},
                   coords={"score": ["rmse"], "prediction_timedelta": lead,
                           "region": ["global"], "perfect_value": ("score", [0.0])})  # fmt: skip
    return a * 0.9, a


def _cycle(values):
    t = pd.date_range("2000-01-01", periods=4, freq="6h")
    names = ("analysis_error", "background_error", "free_error", "spread")
    return xr.Dataset({k: (("time", "channel"), np.full((4, 1), values)) for k in names},
                      coords={"time": t, "channel": ["x"]})  # fmt: skip


# F01, F02, F09, F11: nothing silently empty


def test_map_of_a_field_without_finite_values_is_refused():
    with pytest.raises(ValueError, match=r"field 't' has no finite values"):
        xfuxi.plot_map(_field() * np.nan)
    assert not plt.get_fignums()  # refused before a figure was made
    # one finite value is enough
    one = _field(np.full((3, 4), np.nan))
    one[1, 1] = 2.0
    lo, hi = xfuxi.plot_map(one).collections[0].get_clim()
    assert lo < 2.0 < hi


def test_increment_without_finite_values_is_refused():
    bg = _field()
    with pytest.raises(ValueError, match=r"increment .*has no finite values"):
        xfuxi.plot_increment(bg * np.nan, bg)
    # a zero increment keeps its ±1 scale
    assert xfuxi.plot_increment(bg, bg).collections[0].get_clim() == (-1.0, 1.0)


def test_cycle_with_every_score_nan_is_refused():
    with pytest.raises(ValueError, match=r"analysis_error.*channel 'x' are NaN everywhere"):
        xfuxi.plot_cycle(_cycle(np.nan))
    assert len(xfuxi.plot_cycle(_cycle(1.0)).get_lines()) == 4


@pytest.mark.parametrize("first", [np.nan, 0.0])
def test_normalised_convergence_from_nan_or_zero_is_refused(first):
    with pytest.raises(ValueError, match=r"cost curve 'J' starts at (nan|0\.0).*normalize"):
        xfuxi.plot_convergence({"J": [first, 4.0, 2.0, 1.9]}, normalize=True, log=False)
    ax = xfuxi.plot_convergence({"J": [first, 4.0, 2.0, 1.9]}, log=False)  # not normalised
    np.testing.assert_array_equal(ax.lines[0].get_ydata()[1:], [4.0, 2.0, 1.9])


# F03: one y label only for lines that share it


def test_scores_of_different_units_are_not_labelled_with_the_first():
    z = _score([100.0, 200.0, 400.0], [6, 12, 24], units="m**2 s**-2")
    t = _score([0.5, 1.0, 2.0], [6, 12, 24], units="K")
    ax = xfuxi.plot_scores({"z500": z, "t850": t})
    assert ax.get_ylabel() == "rmse"  # the metric they share, no units
    assert [x.get_text() for x in ax.get_legend().get_texts()] == ["z500 (m² s⁻²)", "t850 (K)"]
    # names that already give their units are not given them twice
    ax = xfuxi.plot_scores({"z500 (m**2 s**-2)": z, "t850 (K)": t}, ylabel="RMSE")
    assert [x.get_text() for x in ax.get_legend().get_texts()] == ["z500 (m**2 s**-2)", "t850 (K)"]
    assert ax.get_ylabel() == "RMSE"


def test_scores_keyed_by_numbers_get_their_units_too():
    """A mapping keyed by numbers failed with "argument of type 'int' is not iterable"."""
    z = _score([100.0, 200.0, 400.0], [6, 12, 24], units="m**2 s**-2")
    t = _score([0.5, 1.0, 2.0], [6, 12, 24], units="K")
    ax = xfuxi.plot_scores({500: z, 850: t})
    assert [x.get_text() for x in ax.get_legend().get_texts()] == ["500 (m² s⁻²)", "850 (K)"]
    plt.close("all")


def test_scores_of_different_metrics_get_a_neutral_label():
    z = _score([100.0, 200.0, 400.0], [6, 12, 24], units="m**2 s**-2")
    mse = (z**2).assign_attrs(metric="mse", units="(m**2 s**-2)**2")
    ax = xfuxi.plot_scores({"a": z, "b": mse})
    assert ax.get_ylabel() == "score"
    assert [x.get_text() for x in ax.get_legend().get_texts()] == [
        "a: rmse (m² s⁻²)",
        "b: mse ((m² s⁻²)²)",
    ]


def test_scores_sharing_metric_and_units_keep_one_label():
    t = _score([0.5, 1.0, 2.0], [6, 12, 24])
    ax = xfuxi.plot_scores({"A": t, "B": t * 2})
    assert ax.get_ylabel() == "rmse (K)"
    assert [x.get_text() for x in ax.get_legend().get_texts()] == ["A", "B"]
    assert xfuxi.plot_scores({"a": t, "b": t}, ylabel="mine").get_ylabel() == "mine"


# F04: repeated leads


def test_scores_with_a_repeated_lead_are_refused():
    s = _score([1.0, 2.0, 3.0, 4.0], [6, 12, 12, 36])
    with pytest.raises(ValueError, match=r"repeats the prediction_timedelta .*\[12\.0\] h"):
        xfuxi.plot_scores(s)


def test_scorecard_with_a_repeated_lead_is_refused():
    b, a = _cards()
    lead = a["prediction_timedelta"].values[[0, 1, 1, 3]]
    b, a = (c.assign_coords(prediction_timedelta=lead) for c in (b, a))
    with pytest.raises(ValueError, match=r"card repeats .*\[12\.0\] h"):
        xfuxi.plot_scorecard(b, a)


# F05: a missing cell is not white


def test_scorecard_draws_a_missing_cell_grey_and_hatched():
    b, a = _cards()
    b["t"][0, 1, 0] = np.nan  # lead 12 h missing
    b["t"][0, 2, 0] = a["t"][0, 2, 0]  # lead 24 h: 0 %
    ax = xfuxi.plot_scorecard(b, a, annotate=False)
    im = ax.images[0]
    cells = np.ma.filled(im.get_array()[0].astype(float), np.nan)
    missing = im.cmap(im.norm(cells[1]))  # NaN: the colour map's "bad" colour
    zero = im.cmap(im.norm(cells[2]))
    assert np.allclose(missing, to_rgba(xplot._MISSING_CELL))
    assert missing[3] == 1.0  # opaque, not transparent (white)
    assert np.abs(np.subtract(missing[:3], zero[:3])).max() > 0.1
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert [(p.get_x(), p.get_y()) for p in hatched] == [(0.5, -0.5)]
    key = ax.figure.axes[-1].get_legend()  # above the colour bar
    assert [x.get_text() for x in key.get_texts()] == ["no value"]
    assert key.legend_handles[0].get_hatch() and ax.get_legend() is None


# F06: one lead as a scalar


def test_scorecard_of_one_scalar_lead_has_one_column():
    b, a = _cards()
    ax = xfuxi.plot_scorecard(b.isel(prediction_timedelta=1), a.isel(prediction_timedelta=1))
    assert ax.images[0].get_array().shape == (1, 1)
    assert [x.get_text() for x in ax.get_xticklabels()] == ["12"]
    np.testing.assert_allclose(ax.images[0].get_array(), [[-10.0]])


def test_scorecard_without_the_lead_dim_is_refused_clearly():
    b, a = _cards()
    with pytest.raises(ValueError, match=r"no 'lead' dimension"):
        xfuxi.plot_scorecard(b, a, lead_dim="lead")


# F07: sub-day leads stay in hours


def test_sub_day_leads_stay_in_hours():
    b, a = _cards()
    lead = pd.to_timedelta([60, 150, 420, 6000], "min").values  # 1, 2.5, 7, 100 h
    b, a = (c.assign_coords(prediction_timedelta=lead) for c in (b, a))
    ax = xfuxi.plot_scorecard(b, a)
    assert ax.get_xlabel() == "lead time (hours)"
    assert [x.get_text() for x in ax.get_xticklabels()] == ["1", "2.5", "7", "100"]
    ax = xfuxi.plot_scores(_score([1.0, 2.0, 3.0, 4.0], [1, 2.5, 7, 100]))
    assert ax.get_xlabel() == "lead time (hours)"
    assert ax.lines[0].get_xdata().tolist() == [1.0, 2.5, 7.0, 100.0]


def test_whole_quarter_day_leads_reaching_three_days_are_in_days():
    b, a = _cards((12, 24, 72, 120))
    ax = xfuxi.plot_scorecard(b, a)
    assert ax.get_xlabel() == "lead time (days)"
    assert [x.get_text() for x in ax.get_xticklabels()] == ["0.5", "1", "3", "5"]


# F08: the ratio at an isolated lead is seen


def test_spread_skill_ratio_has_markers():
    rng = np.random.default_rng(0)
    lead = pd.to_timedelta([6, 12, 24], "h")
    dims = ("prediction_timedelta", "number", "x")
    fc = xr.DataArray(rng.normal(size=(3, 5, 50)), dims=dims, name="t",
                      coords={"prediction_timedelta": lead}, attrs={"units": "K"})  # fmt: skip
    tr = xr.DataArray(rng.normal(size=(3, 50)), dims=("prediction_timedelta", "x"),
                      coords={"prediction_timedelta": lead})  # fmt: skip
    ax = xfuxi.plot_spread_skill(
        fc.isel(prediction_timedelta=[1]), tr.isel(prediction_timedelta=[1])
    )
    ratio = ax.right_ax.lines[0]
    assert ratio.get_label() == "ratio"
    assert ratio.get_marker() not in (None, "None", "", " ")
    assert ratio.get_xdata().tolist() == [12.0]


# F10: the iteration coordinate


def test_convergence_is_drawn_at_the_iteration_coordinate():
    c = xr.DataArray([10.0, 4.0, 2.0, 1.9], dims="iteration",
                     coords={"iteration": [0, 10, 20, 30]}, name="cost")  # fmt: skip
    ax = xfuxi.plot_convergence(c)
    assert ax.lines[0].get_xdata().tolist() == [0, 10, 20, 30]
    ax = xfuxi.plot_convergence(c.isel(iteration=[2, 0, 3, 1]), normalize=True)  # sorted
    assert ax.lines[0].get_xdata().tolist() == [0, 10, 20, 30]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1.0, 0.4, 0.2, 0.19])
    ax = xfuxi.plot_convergence({"J": [10.0, 4.0, 2.0]})  # no coordinate: 0, 1, 2
    assert ax.lines[0].get_xdata().tolist() == [0, 1, 2]


# F12: the colour-bar label fits the figure


@pytest.mark.parametrize("rows", [1, 2, 8])
def test_scorecard_colour_bar_label_fits_the_figure(rows):
    b, a = _cards()
    names = [f"v{k}" for k in range(rows)]
    a = xr.Dataset({n: a["t"] for n in names})
    b = xr.Dataset({n: b["t"] for n in names})
    ax = xfuxi.plot_scorecard(b, a)
    fig = ax.figure
    fig.canvas.draw()
    label = fig.axes[-1].yaxis.label
    assert "perfect" in label.get_text()
    box = label.get_window_extent(fig.canvas.get_renderer())
    assert box.y0 >= 0.0 and box.y1 <= fig.bbox.height
