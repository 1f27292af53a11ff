"""Plots render offline to PNG; the map and the score plot match baseline images.

Regenerate baselines (after an intended change) with
``XFUXI_GENERATE_BASELINE=1 python -m pytest tests/test_plot.py``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.testing.compare import compare_images  # noqa: E402

import xfuxi  # noqa: E402
from xfuxi import plot as xplot  # noqa: E402

BASELINE = Path(__file__).parent / "plot_baseline"
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "figure.dpi": 60,
    "savefig.dpi": 60,
    "text.hinting": "none",
    "axes.unicode_minus": False,
    "path.simplify": False,
}
LAT = np.linspace(-87.5, 87.5, 16)
LON = np.arange(0.0, 360.0, 11.25)


@pytest.fixture(autouse=True)
def _offline_and_styled(monkeypatch, tmp_path):
    cartopy = pytest.importorskip("cartopy")

    def refuse(*args, **kwargs):
        raise OSError("network access attempted during a plot test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    # empty cartopy caches, so only the shipped coastlines can be found
    monkeypatch.setitem(cartopy.config, "data_dir", str(tmp_path / "cartopy"))
    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", "")
    with mpl.rc_context(STYLE):
        yield
    plt.close("all")


def field(seed=0, source="synthetic"):
    la, lo = np.meshgrid(np.deg2rad(LAT), np.deg2rad(LON), indexing="ij")
    z = 5e4 + 2000 * np.cos(2 * la) + 600 * np.sin(3 * lo + seed) * np.cos(la) ** 2
    return xr.Dataset(
        {
            "geopotential": (("latitude", "longitude"), z, {"units": "m**2 s**-2"}),
            "temperature": (("latitude", "longitude"), 250 + 30 * np.cos(la) ** 2, {"units": "K"}),
            "u_component_of_wind": (("latitude", "longitude"), 20 * np.cos(la) ** 2),
            "v_component_of_wind": (("latitude", "longitude"), 5 * np.sin(3 * lo) * np.cos(la)),
        },
        coords={"latitude": LAT, "longitude": LON},
        attrs={"source": source},
    )


def check_image(fig, name, tmp_path, tol=2.0):
    actual = tmp_path / name
    fig.savefig(actual)
    expected = BASELINE / name
    if os.environ.get("XFUXI_GENERATE_BASELINE") == "1":
        fig.savefig(expected)
        pytest.skip(f"baseline {name} written")
    assert expected.exists(), f"baseline image {expected} missing"
    err = compare_images(str(expected), str(actual), tol=tol)
    assert err is None, err


def test_map_against_baseline(tmp_path):
    ds = field()
    obs = xr.Dataset(coords={"latitude": ("obs", [40.0, -10.0, 60.0]),
                             "longitude": ("obs", [10.0, 200.0, 300.0])})  # fmt: skip
    ax = ds.fuxi.plot_map(variable="temperature", contour="geopotential", wind=True,
                          observations=obs,
                          style=xfuxi.MapStyle(wind_stride=3, title="temperature"))  # fmt: skip
    import cartopy.mpl.geoaxes as geoaxes

    assert isinstance(ax, geoaxes.GeoAxes)
    check_image(ax.figure, "map.png", tmp_path)
    # the coastlines were read from the shipped files
    import cartopy

    assert Path(cartopy.config["pre_existing_data_dir"]) == xplot.NATURAL_EARTH_DIR


def test_scores_against_baseline(tmp_path):
    lead = pd.to_timedelta(np.arange(1, 11) * 12, "h")
    base = xr.DataArray(
        np.sqrt(np.arange(1, 11.0)) * 50,
        dims="prediction_timedelta",
        coords={"prediction_timedelta": lead},
        attrs={"metric": "rmse", "units": "m**2 s**-2"},
    )
    scores = xr.concat([base, base * 1.3, base * 0.8 + 20], dim="system")
    scores = scores.assign_coords(system=["FuXi", "persistence", "FuXi-En4DVar"])
    ax = scores.fuxi.plot_scores(title="Z500 RMSE")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "FuXi",
        "persistence",
        "FuXi-En4DVar",
    ]
    assert ax.get_xlabel() == "lead time (days)"
    np.testing.assert_allclose(ax.lines[1].get_ydata(), base.values * 1.3)
    check_image(ax.figure, "scores.png", tmp_path)


def test_held_suarez_world_uses_plain_axes(tmp_path):
    ds = field(source="dinosaur dry primitive equations with Held-Suarez (1994) forcing")
    ax = ds.fuxi.plot_map(variable="temperature")
    assert type(ax).__name__ == "Axes" and ax.get_xlabel() == "longitude (°E)"
    # the closed seam covers the whole globe
    assert [float(x) for x in ax.get_xlim()] == [0.0, 360.0]
    ax.figure.savefig(tmp_path / "hs.png")
    ax2 = ds.fuxi.plot_map(variable="temperature", style=xfuxi.MapStyle(projection="plain"))
    assert type(ax2).__name__ == "Axes"
    # a forecast or an analysis of the world says what it started from: no Earth coastlines
    # on its maps either (a forecast's own "source" is xfuxi.forecast)
    for key in ("initial_conditions", "background_source"):
        derived = ds.assign_attrs(source="xfuxi.forecast", **{key: "Held-Suarez world (T21)"})
        assert type(derived.fuxi.plot_map(variable="temperature")).__name__ == "Axes"
    other = ds.assign_attrs(source="xfuxi.forecast", initial_conditions="ERA5")
    assert type(other.fuxi.plot_map(variable="temperature")).__name__ == "GeoAxes"


def test_every_plot_renders(tmp_path):
    rng = np.random.default_rng(0)
    bg = field(0)
    an = bg.copy()
    an["temperature"] = bg["temperature"] + rng.normal(size=bg["temperature"].shape)
    ax = xfuxi.plot_increment(an, bg, variable="temperature")
    lo, hi = ax.collections[0].get_clim()
    assert lo == -hi and hi == pytest.approx(float(np.abs(an - bg)["temperature"].max()))
    lead = pd.to_timedelta([6, 12, 24], "h")
    fc = xr.DataArray(rng.normal(size=(3, 8, 2, 40)), name="temperature", attrs={"units": "K"},
                      dims=("prediction_timedelta", "number", "time", "x"),
                      coords={"prediction_timedelta": lead})  # fmt: skip
    truth = xr.DataArray(rng.normal(size=(3, 2, 40)), dims=("prediction_timedelta", "time", "x"),
                         coords={"prediction_timedelta": lead})  # fmt: skip
    ax2 = fc.fuxi.plot_spread_skill(truth)
    np.testing.assert_allclose(
        ax2.lines[1].get_ydata(), xfuxi.spread(fc, dim=["time", "x"], weights=None).values
    )
    ax3 = fc.fuxi.plot_rank_histogram(truth)
    assert len(ax3.patches) == 9
    assert sum(p.get_height() for p in ax3.patches) == pytest.approx(1.0)
    diag = xr.Dataset({"cost": ("iteration", [100.0, 20.0, 5.0, 4.9])})
    ax4 = diag.fuxi.plot_convergence(normalize=True)
    np.testing.assert_allclose(ax4.lines[0].get_ydata(), [1.0, 0.2, 0.05, 0.049])
    for i, a in enumerate([ax, ax2, ax3, ax4]):
        path = tmp_path / f"plot{i}.png"
        a.figure.savefig(path)
        assert path.stat().st_size > 1000


def test_bad_plot_input():
    ds = field()
    with pytest.raises(ValueError, match="pass variable="):
        xfuxi.plot_map(ds)
    three = ds.expand_dims(level=[500, 850])
    with pytest.raises(ValueError, match=r"still has dims \['level'\]"):
        xfuxi.plot_map(three, variable="temperature")
    with pytest.raises(ValueError, match=r"level=300 is not in 'temperature'.*\[500, 850\]"):
        xfuxi.plot_map(three, variable="temperature", level=300)
    with pytest.raises(ValueError, match="values <= 0"):
        xfuxi.plot_convergence([1.0, 0.0])
    with pytest.raises(ValueError, match="expected 1-D along"):
        xfuxi.plot_scores(ds["temperature"])
    lead = pd.to_timedelta([6, 12], "h")
    by_level = xr.DataArray([[1.0, 2.0], [3.0, 4.0]], dims=("prediction_timedelta", "level"),
                            coords={"prediction_timedelta": lead, "level": [500, 850]})  # fmt: skip
    with pytest.raises(ValueError, match="one line per level with system_dim='level'"):
        xfuxi.plot_scores(by_level)
    ax = xfuxi.plot_scores(by_level, system_dim="level")  # what the message proposes
    assert [line.get_label() for line in ax.get_lines()] == ["500", "850"]


def test_map_style_replaces_the_styling_keywords():
    ds = field(source="Held-Suarez world")
    style = xfuxi.MapStyle(cmap="magma", vmin=250.0, vmax=300.0, colorbar=False, title="T")
    ax = xfuxi.plot_map(ds, variable="temperature", style=style)
    mesh = ax.collections[0]
    assert (mesh.get_cmap().name, mesh.get_clim(), ax.get_title()) == ("magma", (250.0, 300.0), "T")
    assert len(ax.figure.axes) == 1  # no colour bar
    # the former keywords give the same map, with a warning naming the new spelling
    with pytest.warns(DeprecationWarning, match=r"pass style=MapStyle\(cmap=..., vmin=..."):
        old = xfuxi.plot_map(ds, variable="temperature", cmap="magma", vmin=250.0, vmax=300.0,
                             colorbar=False, title="T")  # fmt: skip
    assert old.collections[0].get_clim() == mesh.get_clim() and old.get_title() == "T"
    np.testing.assert_array_equal(old.collections[0].get_array(), mesh.get_array())
    with pytest.raises(TypeError, match=r"plot_map\(\) got unexpected keyword.*'colour'"):
        xfuxi.plot_map(ds, variable="temperature", colour="red")
    with pytest.raises(ValueError, match="MapStyle.wind_stride must be >= 1; got 0"):
        xfuxi.MapStyle(wind_stride=0)
    for bad in (0.0, -1.0, float("nan"), "5", True):
        with pytest.raises(ValueError, match=r"MapStyle.wind_scale must be a finite number > 0"):
            xfuxi.MapStyle(wind_scale=bad)


def _arrows(ax):
    (quiver,) = [c for c in ax.collections if type(c).__name__ == "Quiver"]
    return quiver


def test_wind_arrows_scale_to_their_spacing():
    # a local increment: one strong vortex and a near-calm elsewhere. matplotlib's autoscale
    # follows the mean speed and drew its arrows across the map; the longest arrow must span
    # 1.5 arrow spacings whatever the field's size
    ds = field(source="Held-Suarez world")
    la, lo = np.meshgrid(LAT, LON, indexing="ij")
    bump = np.exp(-((la - 45.0) ** 2 + (lo - 180.0) ** 2) / 200.0)
    for size in (0.01, 30.0):
        inc = ds.assign(
            u_component_of_wind=(("latitude", "longitude"), size * bump + 1e-6, {"units": "m s-1"}),
            v_component_of_wind=(("latitude", "longitude"), -size * bump),
        )
        stride = 2
        ax = inc.fuxi.plot_map(variable="temperature", wind=True,
                               style=xfuxi.MapStyle(wind_stride=stride))  # fmt: skip
        quiver = _arrows(ax)
        assert quiver.scale_units == "width"
        drawn = np.hypot(inc.u_component_of_wind.values[::stride, ::stride],
                         inc.v_component_of_wind.values[::stride, ::stride])  # fmt: skip
        spacing = stride * (LON[1] - LON[0]) / 360.0
        longest = drawn.max() / quiver.scale  # in widths of the map
        assert longest == pytest.approx(1.5 * spacing)
        # the reference arrow names a round speed at or below the scale, with the units
        (key,) = [a for a in ax.artists if type(a).__name__ == "QuiverKey"]
        assert key.U <= drawn.max() / 1.5 and key.text.get_text().endswith("m s⁻¹")
        assert key.U in {m * 10.0**e for m in (1, 2, 5) for e in range(-4, 3)}
    # a fixed scale is kept, so that maps compare by eye
    ax = inc.fuxi.plot_map(variable="temperature", wind=True,
                           style=xfuxi.MapStyle(wind_stride=stride, wind_scale=10.0))  # fmt: skip
    assert _arrows(ax).scale == pytest.approx(10.0 / spacing)
    # an increment map draws the increment of the wind, not the wind
    an = inc.assign(u_component_of_wind=inc.u_component_of_wind + 2.0 * bump)
    ax = an.fuxi.plot_increment(inc, variable="temperature", wind=True,
                                style=xfuxi.MapStyle(wind_stride=stride))  # fmt: skip
    quiver = _arrows(ax)
    np.testing.assert_allclose(quiver.U.ravel(), (2.0 * bump)[::stride, ::stride].ravel(),
                               atol=1e-9)  # fmt: skip
    np.testing.assert_allclose(quiver.V.ravel(), 0.0, atol=1e-9)
    # no wind at all: no arrows, no error
    calm = ds.assign(u_component_of_wind=ds.u_component_of_wind * 0,
                     v_component_of_wind=ds.v_component_of_wind * 0)  # fmt: skip
    ax = calm.fuxi.plot_map(variable="temperature", wind=True)
    assert not [c for c in ax.collections if type(c).__name__ == "Quiver"]


def test_increment_style_defaults_and_old_keywords():
    bg = field(0, source="Held-Suarez world")
    an = bg + 2.0
    ax = xfuxi.plot_increment(an, bg, variable="temperature")
    assert ax.collections[0].get_cmap().name == "RdBu_r"
    assert ax.collections[0].get_clim() == pytest.approx((-2.0, 2.0))
    # a style's own limits and colour map win over the increment's defaults
    ax = xfuxi.plot_increment(an, bg, variable="temperature",
                              style=xfuxi.MapStyle(cmap="PuOr", vmax=5.0, title="inc"))  # fmt: skip
    assert ax.collections[0].get_cmap().name == "PuOr" and ax.get_title() == "inc"
    assert ax.collections[0].get_clim() == pytest.approx((-2.0, 5.0))
    with pytest.warns(DeprecationWarning, match=r"plot_increment\(cmap=..., title=...\)"):
        old = xfuxi.plot_increment(an, bg, variable="temperature", cmap="PuOr", title="inc")
    assert old.collections[0].get_cmap().name == "PuOr" and old.get_title() == "inc"
    assert old.collections[0].get_clim() == pytest.approx((-2.0, 2.0))


def test_scores_share_one_lead_unit_and_a_single_lead_is_drawn():
    lead = pd.to_timedelta(np.arange(1, 11) * 24, "h")
    long = xr.DataArray(np.arange(1.0, 11.0), dims="prediction_timedelta",
                        coords={"prediction_timedelta": lead})  # fmt: skip
    short = long.isel(prediction_timedelta=slice(0, 2))
    short = short.assign_coords(prediction_timedelta=pd.to_timedelta([24, 48], "h"))
    ax = xfuxi.plot_scores({"ten days": long, "two days": short})
    assert ax.get_xlabel() == "lead time (days)"
    assert ax.lines[1].get_xdata().tolist() == [1.0, 2.0]  # in days too, not 24 and 48
    one = long.isel(prediction_timedelta=[0]).expand_dims(level=[500])
    ax = xfuxi.plot_scores(one)
    assert ax.lines[0].get_xdata().tolist() == [24.0]
    mse = xfuxi.mse(long.assign_attrs(units="K") + 1.0, long.assign_attrs(units="K"),
                    dim=[], keep_attrs=True)  # fmt: skip
    assert mse.attrs["units"] == "K**2"


def test_plain_map_follows_longitudes_west_of_greenwich(tmp_path):
    ds = field(source="dinosaur dry primitive equations with Held-Suarez (1994) forcing")
    west = ds.assign_coords(longitude=((ds["longitude"] + 180.0) % 360.0) - 180.0).sortby(
        "longitude"
    )
    ax = west.fuxi.plot_map(variable="temperature")
    assert [float(x) for x in ax.get_xlim()] == [-180.0, 180.0]


def _hs_grid(values, lat, lon, name="f"):
    return xr.DataArray(values, dims=("latitude", "longitude"), name=name,
                        coords={"latitude": lat, "longitude": lon},
                        attrs={"source": "Held-Suarez world"})  # fmt: skip


def _contour_values(ax):
    """The Z array handed to ``contour`` (the ContourSet keeps its levels and segments)."""
    (cs,) = [c for c in ax.collections if hasattr(c, "levels")]
    return cs


def test_contour_is_matched_to_the_map_by_coordinates(monkeypatch):
    lat, lon = np.arange(-75.0, 76, 15), np.arange(0.0, 360, 30)
    by_lat = _hs_grid(np.broadcast_to(lat[:, None], (lat.size, lon.size)).copy(), lat, lon)
    by_lon = _hs_grid(np.broadcast_to(lon[None, :], (lat.size, lon.size)).astype(float), lat, lon)
    seen = []
    original = mpl.axes.Axes.contour

    def spy(self, x, y, z, *args, **kwargs):
        seen.append((np.asarray(x), np.asarray(y), np.asarray(z)))
        return original(self, x, y, z, *args, **kwargs)

    monkeypatch.setattr(mpl.axes.Axes, "contour", spy)
    # north-to-south (ERA5 order) over south-to-north: was drawn mirrored
    xfuxi.plot_map(by_lat, contour=by_lat.isel(latitude=slice(None, None, -1)))
    x, y, z = seen[-1]
    np.testing.assert_array_equal(z, np.broadcast_to(y[:, None], z.shape))
    # -180..180 over 0..360: was 180 degrees off
    west = by_lon.assign_coords(longitude=((by_lon.longitude + 180) % 360) - 180)
    xfuxi.plot_map(by_lon, contour=west.sortby("longitude"))
    x, y, z = seen[-1]
    np.testing.assert_array_equal(z[:, :-1], np.broadcast_to(x[:-1] % 360, z[:, :-1].shape))
    # another grid is refused, naming the coordinate
    with pytest.raises(ValueError, match="contour.*'latitude'"):
        xfuxi.plot_map(by_lat, contour=by_lat.assign_coords(latitude=lat + 1.0))
    with pytest.raises(ValueError, match="contour.*'longitude'"):
        xfuxi.plot_map(by_lat, contour=by_lat.isel(longitude=slice(0, 6)))


def test_unsorted_longitudes_are_drawn_in_order():
    lat, lon = np.arange(-80.0, 81, 20), np.arange(0.0, 360, 20)
    f = _hs_grid(np.broadcast_to(lon[None, :], (lat.size, lon.size)).astype(float), lat, lon)
    g = f.assign_coords(longitude=((f.longitude + 180) % 360) - 180)  # relabelled, not sorted
    before = g.copy(deep=True)
    ax = xfuxi.plot_map(g)
    mesh = ax.collections[0]
    edges = mesh.get_coordinates()[0, :, 0]
    assert np.all(np.diff(edges) > 0)  # were overlapping cells, one 380 degrees wide
    np.testing.assert_array_equal(  # each value at its own longitude
        np.asarray(mesh.get_array()).reshape(lat.size, -1)[0],
        xfuxi.plot_map(g.sortby("longitude")).collections[0].get_array().reshape(lat.size, -1)[0],
    )
    xr.testing.assert_identical(g, before)
    with pytest.raises(ValueError, match="repeated.*'longitude'"):
        xfuxi.plot_map(f.assign_coords(longitude=np.r_[lon[:-1], lon[0]]))


def test_variable_must_name_a_dataarray():
    lat, lon = np.arange(-80.0, 81, 20), np.arange(0.0, 360, 20)
    z = _hs_grid(np.zeros((lat.size, lon.size)), lat, lon, name="geopotential")
    with pytest.raises(ValueError, match="variable='temperature'.*'geopotential'"):
        xfuxi.plot_map(z, variable="temperature")
    with pytest.raises(ValueError, match="variable='temperature'.*'geopotential'"):
        xfuxi.plot_increment(z, z, variable="temperature")
    xfuxi.plot_map(z, variable="geopotential")  # its own name is fine
    rng = np.random.default_rng(0)
    fc = xr.DataArray(rng.normal(size=(3, 4, 5)), dims=("prediction_timedelta", "number", "x"),
                      name="t")  # fmt: skip
    tr = xr.DataArray(rng.normal(size=(3, 5)), dims=("prediction_timedelta", "x"), name="t")
    with pytest.raises(ValueError, match="variable='z'.*'t'"):
        xfuxi.plot_spread_skill(fc, tr, variable="z")
    with pytest.raises(ValueError, match="variable='z'.*'t'"):
        xfuxi.plot_rank_histogram(fc, tr, variable="z")
    with pytest.raises(ValueError, match="variable='z'.*'t'"):
        xfuxi.plot_scores(tr.isel(x=0), variable="z")


def test_level_and_time_are_not_overridden_by_sel():
    lat, lon = np.arange(-80.0, 81, 20), np.arange(0.0, 360, 20)
    da = xr.DataArray(np.ones((2, lat.size, lon.size)) * np.array([500.0, 850.0])[:, None, None],
                      dims=("level", "latitude", "longitude"), name="v",
                      coords={"level": [500, 850], "latitude": lat, "longitude": lon},
                      attrs={"source": "Held-Suarez world"})  # fmt: skip
    with pytest.raises(ValueError, match=r"level=500.*sel.*850"):
        da.fuxi.plot_map(level=500, sel={"level": 850})
    with pytest.raises(ValueError, match=r"level=500.*sel.*850"):
        da.fuxi.plot_increment(da * 0, level=500, sel={"level": 850})
    ax = da.fuxi.plot_map(level=500, sel={"level": 500})  # the same value twice is fine
    assert np.unique(ax.collections[0].get_array()).tolist() == [500.0]


def test_observations_follow_the_plain_maps_longitudes():
    lat, lon = np.arange(-80.0, 81, 20), np.arange(0.0, 360, 20)
    da = _hs_grid(np.zeros((lat.size, lon.size)), lat, lon, name="t")
    obs = xr.Dataset(coords={"latitude": ("obs", [10.0, 20.0, 30.0]),
                             "longitude": ("obs", [-90.0, -10.0, 90.0])})  # fmt: skip
    ax = da.fuxi.plot_map(observations=obs)
    assert ax.collections[-1].get_offsets()[:, 0].tolist() == [270.0, 350.0, 90.0]
    ax = da.assign_coords(longitude=lon - 180).fuxi.plot_map(
        observations=obs.assign_coords(longitude=("obs", [270.0, 350.0, 90.0]))
    )
    assert ax.collections[-1].get_offsets()[:, 0].tolist() == [-90.0, -10.0, 90.0]
    assert obs.longitude.values.tolist() == [-90.0, -10.0, 90.0]  # not mutated


def _card(variables=("t", "z"), score="rmse"):
    lead = np.array([6, 12], dtype="timedelta64[h]")
    return xr.Dataset(
        {v: (("score", "prediction_timedelta", "region"), [[[1.0], [2.0]]]) for v in variables},
        coords={"score": [score], "prediction_timedelta": lead, "region": ["global"],
                "perfect_value": ("score", [0.0])},
    )  # fmt: skip


def test_scorecard_refuses_cards_that_do_not_match():
    a = _card()
    with pytest.raises(ValueError, match=r"card lacks.*\['z'\]"):
        xfuxi.plot_scorecard((a * 0.9)[["t"]], a)
    with pytest.raises(ValueError, match=r"reference lacks.*\['z'\]"):
        xfuxi.plot_scorecard(a, a[["t"]])
    with pytest.raises(ValueError, match=r"score.*\['rmse'\]"):
        xfuxi.plot_scorecard(_card(score="mae"), a)
    with pytest.raises(ValueError, match=r"level.*\[500\].*\[850\]"):
        xfuxi.plot_scorecard(a.expand_dims(level=[500]), a.expand_dims(level=[850]))
    with pytest.raises(ValueError, match=r"\['number'\]"):
        xfuxi.plot_scorecard(a.expand_dims(number=2), a.expand_dims(number=2))


def test_plot_messages_name_what_is_wrong():
    lat, lon = np.arange(-80.0, 81, 20), np.arange(0.0, 360, 20)
    d = _hs_grid(np.ones((lat.size, lon.size)), lat, lon)
    ds = xr.Dataset({"t": d, "u_component_of_wind": d, "v_component_of_wind": d},
                    attrs={"source": "Held-Suarez world"})  # fmt: skip
    for wind in ("u_component_of_wind", ("u_component_of_wind",)):
        with pytest.raises(ValueError, match="wind= must be True or a pair"):
            ds.fuxi.plot_map(variable="t", wind=wind)
    for bad in (1.5, "2", True):
        with pytest.raises(ValueError, match="MapStyle.wind_stride must be an integer >= 1"):
            xfuxi.MapStyle(wind_stride=bad)
    assert xfuxi.MapStyle(wind_stride=np.int64(3)).wind_stride == 3
    with pytest.raises(ValueError, match="background lacks.*of the analysis"):
        ds.fuxi.plot_increment(ds[["t"]], variable="t")
    with pytest.raises(TypeError, match="analysis and background must both be"):
        ds.fuxi.plot_increment(ds["t"], variable="t")
    fc = ds.expand_dims(number=2, prediction_timedelta=1)
    with pytest.raises(TypeError, match="forecast and truth must both be Datasets"):
        xfuxi.plot_spread_skill(fc, ds["t"], variable="t")
    with pytest.raises(ValueError, match=r"variable 'J' not in the Dataset \(\['cost'\]\)"):
        xfuxi.plot_convergence(xr.Dataset({"cost": ("iteration", [3.0, 2.0])}), variable="J")
    with pytest.raises(TypeError, match="scores\\['a'\\] must be a DataArray; got list"):
        xfuxi.plot_scores({"a": [1.0, 2.0]})


# --- the look of a saved figure: nothing clipped, titles, ticks, labels --------------------


def _ensemble(rng, units="m**2 s**-2"):
    lead = pd.to_timedelta([6, 12, 24], "h")
    fc = xr.DataArray(rng.normal(size=(3, 8, 2, 40)), name="geopotential",
                      attrs={"units": units}, dims=("prediction_timedelta", "number", "time", "x"),
                      coords={"prediction_timedelta": lead})  # fmt: skip
    truth = xr.DataArray(rng.normal(size=(3, 2, 40)), dims=("prediction_timedelta", "time", "x"),
                         coords={"prediction_timedelta": lead}, name="geopotential")  # fmt: skip
    return fc, truth


def _cycle_scores():
    t = pd.date_range("2000-01-01", periods=6, freq="6h")
    return xr.Dataset(
        {k: (("time", "channel"), np.linspace(1.0, 2.0, 6)[:, None] * 100)
         for k in ("analysis_error", "background_error", "free_error", "spread")},
        coords={"time": t, "channel": ["geopotential@500"],
                "channel_units": ("channel", ["m**2 s**-2"])},
    )  # fmt: skip


def _two_cards():
    lead = np.array([6, 12, 24], dtype="timedelta64[h]")
    a = xr.Dataset(
        {"geopotential": (("score", "prediction_timedelta", "region", "level"),
                          np.ones((1, 3, 1, 2)))},
        coords={"score": ["rmse"], "prediction_timedelta": lead, "region": ["global"],
                "level": [500, 850], "perfect_value": ("score", [0.0])},
    )  # fmt: skip
    return a * 0.9, a


def _labels(ax):
    axes = [ax, *([ax.right_ax] if hasattr(ax, "right_ax") else [])]
    texts = [a.xaxis.label for a in axes] + [a.yaxis.label for a in axes]
    texts += [a.title for a in axes]
    for axis in [a.xaxis for a in axes] + [a.yaxis for a in axes]:
        lo, hi = sorted(axis.get_view_interval())  # the tick labels drawn
        texts += [t.label1 for t in axis.get_major_ticks() if lo <= t.get_loc() <= hi]
    return [t for t in texts if t.get_text() and t.get_visible()]


def test_saved_figures_are_not_clipped():
    # the fixed figure size without a layout engine cut off the x label of the score plots,
    # both labels of plot_convergence, the y label of plot_cycle, the scorecard's rows
    rng = np.random.default_rng(0)
    fc, truth = _ensemble(rng)
    score = xr.DataArray([1.0, 2.0, 3.0], dims="prediction_timedelta",
                         coords={"prediction_timedelta": fc.prediction_timedelta.values},
                         attrs={"metric": "rmse", "units": "m**2 s**-2"})  # fmt: skip
    card, ref = _two_cards()
    axes = {
        "plot_scores": score.fuxi.plot_scores(),
        "plot_spread_skill": fc.fuxi.plot_spread_skill(truth),
        "plot_rank_histogram": fc.fuxi.plot_rank_histogram(truth),
        "plot_convergence": xfuxi.plot_convergence({"J": [10.0, 4.0, 2.0, 1.9]}),
        "plot_cycle": xplot.plot_cycle(_cycle_scores()),
        "plot_scorecard": xplot.plot_scorecard(card, ref),
        "plot_map": field().fuxi.plot_map(variable="temperature"),
    }
    for name, ax in axes.items():
        fig = ax.figure
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        box = fig.bbox
        for text in _labels(ax):
            ext = text.get_window_extent(renderer)
            inside = (ext.x0 >= box.x0 - 0.5 and ext.y0 >= box.y0 - 0.5
                      and ext.x1 <= box.x1 + 0.5 and ext.y1 <= box.y1 + 0.5)  # fmt: skip
            assert inside, f"{name}: {text.get_text()!r} at {ext} outside the figure {box}"


def test_figures_passed_in_keep_their_layout():
    fig, ax = plt.subplots()
    assert fig.get_layout_engine() is None
    xfuxi.plot_convergence([3.0, 2.0, 1.0], ax=ax)
    xplot.plot_cycle(_cycle_scores(), ax=ax)
    assert fig.get_layout_engine() is None


def test_maps_have_a_title_naming_what_they_cannot_show():
    ds = field(source="Held-Suarez world").expand_dims(
        time=pd.to_datetime(["2020-01-01T00", "2020-01-01T06"]),
        prediction_timedelta=pd.to_timedelta([24], "h"),
        level=[500, 850],
        number=[0, 1],
    )
    ds["level"].attrs["units"] = "hPa"
    ax = ds.fuxi.plot_map(variable="geopotential", level=500, time="2020-01-01T06",
                          sel={"number": 1})  # fmt: skip
    assert ax.get_title() == "500 hPa, 2020-01-01 06:00 + 24 h (valid 2020-01-02 06:00), member 1"
    # the caller's title wins; "" draws none
    ax = ds.fuxi.plot_map(variable="geopotential", level=500, time="2020-01-01T06",
                          sel={"number": 1}, style=xfuxi.MapStyle(title="mine"))  # fmt: skip
    assert ax.get_title() == "mine"
    ax = ds.fuxi.plot_map(variable="geopotential", level=500, time="2020-01-01T06",
                          sel={"number": 1}, style=xfuxi.MapStyle(title=""))  # fmt: skip
    assert ax.get_title() == ""
    an = ds + 1.0
    ax = an.fuxi.plot_increment(ds, variable="temperature", level=850, time="2020-01-01T00",
                                sel={"number": 0})  # fmt: skip
    assert ax.get_title() == "850 hPa, 2020-01-01 00:00 + 24 h (valid 2020-01-02 00:00), member 0"
    # a field without single values selected (a 2-D analysis): no title to give
    assert field().fuxi.plot_map(variable="temperature").get_title() == ""


def test_map_colour_bar_uses_the_long_name():
    ds = field(source="Held-Suarez world")
    ds["temperature"].attrs["long_name"] = "air temperature"
    ax = ds.fuxi.plot_map(variable="temperature")
    assert ax.figure.axes[-1].get_ylabel() == "air temperature (K)"
    ax = (ds + 1.0).fuxi.plot_increment(ds, variable="temperature")
    assert ax.figure.axes[-1].get_ylabel() == "air temperature increment (K)"
    ax = ds.fuxi.plot_map(variable="geopotential")  # no long_name: the name
    assert ax.figure.axes[-1].get_ylabel() == "geopotential (m² s⁻²)"


def test_rank_histogram_and_convergence_titles_and_integer_ticks():
    rng = np.random.default_rng(0)
    fc, truth = _ensemble(rng)
    ax = fc.fuxi.plot_rank_histogram(truth)
    assert ax.get_title() == "rank histogram of geopotential, all leads"
    ax.figure.canvas.draw()
    ticks = ax.get_xticks()
    assert np.allclose(ticks, np.round(ticks))
    one = fc.isel(prediction_timedelta=2)
    ax = one.fuxi.plot_rank_histogram(truth.isel(prediction_timedelta=2))
    assert ax.get_title() == "rank histogram of geopotential, lead 24 h"
    assert fc.fuxi.plot_rank_histogram(truth, title="t").get_title() == "t"
    ax = xfuxi.plot_convergence({"J": [10.0, 4.0, 2.0, 1.9]})
    ax.figure.canvas.draw()
    ticks = ax.get_xticks()
    assert np.allclose(ticks, np.round(ticks))


def test_cycle_and_score_labels_format_units():
    ax = xplot.plot_cycle(_cycle_scores())
    assert ax.get_ylabel() == "geopotential@500: RMSE / spread (m² s⁻²)"
    rng = np.random.default_rng(0)
    fc, truth = _ensemble(rng)
    ax = fc.fuxi.plot_spread_skill(truth)
    assert ax.get_ylabel() == "geopotential (m² s⁻²)"
    # a variable of a Dataset score says its metric and units (they were on the Dataset)
    score = xfuxi.ensemble_mean_rmse(fc.to_dataset(), truth.to_dataset(),
                                     dim=["time", "x"], weights=None)  # fmt: skip
    ax = score["geopotential"].fuxi.plot_scores()
    assert ax.get_ylabel() == "ensemble_mean_rmse (m² s⁻²)"


def _lon_field(lon, source="Held-Suarez world"):
    """A field whose value is its longitude (0..360), so a value shows its column."""
    lat = np.arange(-60.0, 61, 30)
    values = np.broadcast_to(np.asarray(lon, float) % 360.0, (lat.size, len(lon))).copy()
    return xr.DataArray(values, dims=("latitude", "longitude"), name="f",
                        coords={"latitude": lat, "longitude": lon},
                        attrs={"source": source})  # fmt: skip


def _mesh_cells(ax, nlat):
    """Longitude edges of the shaded mesh and its first row of values (masked where NaN)."""
    mesh = ax.collections[0]
    edges = np.asarray(mesh.get_coordinates()[0, :, 0], dtype=float)
    values = np.ma.masked_invalid(np.ma.asarray(mesh.get_array()).reshape(nlat, -1)[0])
    return edges, values


@pytest.mark.parametrize("source", ["Held-Suarez world", "synthetic"])  # plain, cartopy
def test_descending_longitudes_are_drawn_sorted(source):
    import warnings

    lon = np.arange(0.0, 360.0, 30.0)
    f = _lon_field(lon, source)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "not monotonic" was the only sign
        ax = xfuxi.plot_map(f.isel(longitude=slice(None, None, -1)))
    edges, values = _mesh_cells(ax, f.sizes["latitude"])
    # was one meridian over the whole map: a cell 714 degrees wide, edges running back
    np.testing.assert_allclose(np.diff(edges), 30.0)
    np.testing.assert_allclose(edges[[0, -1]], [-15.0, 375.0])  # the seam closed
    np.testing.assert_array_equal(values, np.r_[lon, 0.0])  # each value at its longitude


def _box_checks(ax, f, spacing):
    """Drawn cells only inside the box: ascending edges, every cell wider than 1.5
    spacings (the gap outside the box) empty, each value at its own longitude."""
    edges, values = _mesh_cells(ax, f.sizes["latitude"])
    assert np.all(np.diff(edges) > 0)
    width = np.diff(edges)
    drawn = ~np.ma.getmaskarray(values)
    assert np.all(width[drawn] <= 1.5 * spacing + 1e-9)  # were cells 126 degrees wide
    centres = (edges[:-1] + edges[1:]) / 2.0
    np.testing.assert_allclose(values[drawn], centres[drawn] % 360.0)
    box = set(np.asarray(f.longitude.values % 360.0).tolist())
    assert set((centres[drawn] % 360.0).tolist()) == box  # every column drawn, no other
    return edges, values


@pytest.mark.parametrize("source", ["Held-Suarez world", "synthetic"])  # plain, cartopy
def test_a_regional_box_across_the_seam_is_drawn_inside_the_box(source, monkeypatch):
    lon = np.arange(0.0, 360.0, 10.0)
    glob = _lon_field(lon, source)
    box = glob.sel(longitude=(glob.longitude >= 300) | (glob.longitude <= 60))  # 300..60E
    ax = xfuxi.plot_map(box)
    edges, values = _box_checks(ax, box, 10.0)
    gap = np.diff(edges).argmax()
    np.testing.assert_allclose(edges[gap : gap + 2], [65.0, 295.0])  # the gap left empty
    # an increment of the box, and a box across 180 in -180..180 coordinates
    ax = xfuxi.plot_increment(box + box, box)
    _box_checks(ax, box, 10.0)
    west = glob.assign_coords(longitude=((glob.longitude + 180) % 360) - 180).sortby("longitude")
    pacific = west.sel(longitude=(west.longitude >= 150) | (west.longitude <= -160))
    _box_checks(xfuxi.plot_map(pacific), pacific, 10.0)
    # a box that does not wrap, and a global grid, are drawn as before: no gap, no NaN
    for f in (glob.sel(longitude=slice(0, 90)), glob):
        edges, values = _box_checks(xfuxi.plot_map(f), f, 10.0)
        assert not np.ma.getmaskarray(values).any()
    # contours are not drawn across the gap either
    seen = []
    original = mpl.axes.Axes.contour

    def spy(self, x, y, z, *args, **kwargs):
        seen.append((np.asarray(x), np.asarray(z)))
        return original(self, x, y, z, *args, **kwargs)

    monkeypatch.setattr(mpl.axes.Axes, "contour", spy)
    xfuxi.plot_map(box.assign_attrs(source="Held-Suarez world"), contour=box)
    x, z = seen[-1]
    assert np.all(np.diff(x) > 0)
    assert np.isnan(z[:, (x > 60) & (x < 300)]).all()
    assert np.isfinite(z[:, (x <= 60) | (x >= 300)]).all()


def _xdata(line):
    return np.asarray(line.get_xdata(), dtype=float)


def test_lines_are_drawn_in_lead_order():
    lead = pd.to_timedelta([18, 6, 24, 12], "h")
    s = xr.DataArray([3.0, 1.0, 4.0, 2.0], dims="prediction_timedelta",
                     coords={"prediction_timedelta": lead}, name="rmse")  # fmt: skip
    ax = xfuxi.plot_scores({"a": s, "b": 2 * s})
    for k, line in enumerate(ax.get_lines()):  # were zig-zags in the data's order
        assert _xdata(line).tolist() == [6.0, 12.0, 18.0, 24.0]
        assert np.asarray(line.get_ydata()).tolist() == [(k + 1) * v for v in (1, 2, 3, 4)]


def test_spread_skill_is_drawn_in_lead_order():
    rng = np.random.default_rng(0)
    fc, truth = _ensemble(rng)
    order = [2, 0, 1]
    ax = xfuxi.plot_spread_skill(fc.isel(prediction_timedelta=order), truth)
    ref = xfuxi.plot_spread_skill(fc, truth)
    for line, want in zip(ax.get_lines() + ax.right_ax.get_lines()[:1],
                          ref.get_lines() + ref.right_ax.get_lines()[:1]):  # fmt: skip
        assert _xdata(line).tolist() == [6.0, 12.0, 24.0]
        np.testing.assert_allclose(line.get_ydata(), want.get_ydata())


def test_convergence_and_cycle_are_drawn_in_order():
    cost = xr.DataArray([4.0, 10.0, 1.0, 2.0], dims="iteration",
                        coords={"iteration": [1, 0, 3, 2]}, name="cost")  # fmt: skip
    ax = xfuxi.plot_convergence(cost, normalize=True)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1.0, 0.4, 0.2, 0.1])
    scores = _cycle_scores()
    scores["no_observations"] = ("time", [False, True, False, False, False, False])
    shuffled = scores.isel(time=[3, 0, 5, 1, 4, 2])
    ax = xplot.plot_cycle(shuffled)
    ref = xplot.plot_cycle(scores)
    for line, want in zip(ax.get_lines(), ref.get_lines()):
        np.testing.assert_array_equal(line.get_xdata(), want.get_xdata())
        np.testing.assert_array_equal(line.get_ydata(), want.get_ydata())


def test_scorecard_columns_are_in_lead_order():
    # the cards' leads in either order (was refused), the columns in lead order
    a = _card()
    ax = xfuxi.plot_scorecard(a.isel(prediction_timedelta=[1, 0]) * 0.9, a)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["6", "12"]
    np.testing.assert_allclose(ax.images[0].get_array()[0], [-10.0, -10.0])


def test_spread_skill_and_rank_histogram_refuse_several_levels():
    rng = np.random.default_rng(0)
    fc, truth = _ensemble(rng)
    fc2 = xr.concat([fc, 100 * fc], pd.Index([500, 850], name="level"))
    truth2 = xr.concat([truth, 100 * truth], pd.Index([500, 850], name="level"))
    # were pooled, the 850 hPa level's variance drowning the 500 hPa one's
    with pytest.raises(ValueError, match=r"forecast has 2 levels \[500, 850\].*select one level"):
        xfuxi.plot_spread_skill(fc2, truth2)
    with pytest.raises(ValueError, match=r"forecast has 2 levels.*select one level"):
        xfuxi.plot_rank_histogram(fc2, truth2)
    with pytest.raises(ValueError, match=r"truth has 2 levels.*select one level"):
        xfuxi.plot_rank_histogram(fc2.sel(level=500, drop=True), truth2)
    # one level, and the other dims (time, x), are pooled as documented
    ax = xfuxi.plot_spread_skill(fc2.sel(level=[500]), truth2.sel(level=[500]))
    ref = xfuxi.plot_spread_skill(fc, truth)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), ref.get_lines()[0].get_ydata())
    assert len(xfuxi.plot_rank_histogram(fc2.sel(level=500), truth2.sel(level=500)).patches) == 9
    # levels on the x axis are not pooled
    lead = {"prediction_timedelta": 0}
    ax = xfuxi.plot_spread_skill(fc2.isel(lead), truth2.isel(lead), dim="level")
    assert _xdata(ax.get_lines()[0]).tolist() == [500.0, 850.0]


def test_scores_refuse_data_that_are_all_nan():
    lead = pd.to_timedelta([6, 12], "h")
    s = xr.DataArray([np.nan, np.nan], dims="prediction_timedelta",
                     coords={"prediction_timedelta": lead}, name="rmse")  # fmt: skip
    with pytest.raises(ValueError, match="NaN everywhere"):  # was an empty figure
        xfuxi.plot_scores(s)
    with pytest.raises(ValueError, match="NaN everywhere"):
        xfuxi.plot_scores({"a": s, "b": s})
    xfuxi.plot_scores({"a": s, "b": s.fillna(1.0)})  # one line to draw is enough


def test_ensemble_plots_and_convergence_refuse_data_that_are_all_nan():
    rng = np.random.default_rng(0)
    fc, truth = _ensemble(rng)
    with pytest.raises(ValueError, match="NaN everywhere"):
        xfuxi.plot_rank_histogram(fc, truth * np.nan)
    with pytest.raises(ValueError, match="RMSE.*NaN everywhere"):
        xfuxi.plot_spread_skill(fc, truth * np.nan)
    with pytest.raises(ValueError, match="NaN everywhere"):
        xfuxi.plot_convergence([np.nan, np.nan])


def test_refused_scores_leave_no_empty_figure():
    import matplotlib.pyplot as plt

    from xfuxi.plot import plot_scores

    lead = np.arange(1, 4) * np.timedelta64(6, "h")
    nan = xr.DataArray([np.nan] * 3, dims="prediction_timedelta",
                       coords={"prediction_timedelta": lead})  # fmt: skip
    before = plt.get_fignums()
    with pytest.raises(ValueError, match="NaN everywhere"):
        plot_scores(nan)
    assert plt.get_fignums() == before


@pytest.mark.parametrize("one", [{"latitude": [5]}, {"longitude": [5]}])
def test_a_map_of_one_row_or_column(one):
    """squeeze() also removed the one latitude (or longitude) left, and the map failed with
    a raw xarray error."""
    da = field()["temperature"].isel(one)
    ax = xfuxi.plot_map(da)
    assert ax is not None
    plt.close("all")
