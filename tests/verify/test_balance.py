"""Balance diagnostics against MetPy and constructed flows."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from xfuxi.constants import EARTH_RADIUS
from xfuxi.verify.balance import ageostrophic_wind, balance_summary, geostrophic_wind

LAT = np.linspace(-84.0, 84.0, 29)
LON = np.arange(0.0, 360.0, 6.0)


def height_field(seed=0, levels=(500.0, 850.0)):
    rng = np.random.default_rng(seed)
    la, lo = np.meshgrid(np.deg2rad(LAT), np.deg2rad(LON), indexing="ij")
    fields = []
    for k, _ in enumerate(levels):
        a, b = rng.uniform(500, 1500, size=2)
        fields.append(5e4 - 1e4 * k + 3000 * np.cos(2 * la)
                      + a * np.sin(3 * lo + b) * np.cos(la) ** 2 * np.sin(la))  # fmt: skip
    z = xr.DataArray(
        np.stack(fields),
        dims=("level", "latitude", "longitude"),
        coords={"level": list(levels), "latitude": LAT, "longitude": LON},
        attrs={"units": "m**2 s**-2"},
    )
    return xr.Dataset({"geopotential": z})


def test_geostrophic_wind_matches_metpy_on_sphere():
    mpcalc = pytest.importorskip("metpy.calc")
    ds = height_field()
    ours = geostrophic_wind(ds)
    for k, lev in enumerate(ds.level.values):
        z = ds["geopotential"].sel(level=lev, drop=True)
        crs = {"grid_mapping_name": "latitude_longitude", "earth_radius": EARTH_RADIUS}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # MetPy divides by f = 0
            ug, vg = mpcalc.geostrophic_wind(z.metpy.assign_crs(crs).metpy.quantify())
        # MetPy differences one-sidedly at the first and last longitude (not periodic)
        inner = {"longitude": slice(1, -1)}
        mask = np.abs(LAT) >= 10
        for ours_c, ref in (("u", ug), ("v", vg)):
            got = ours[f"{ours_c}_component_of_geostrophic_wind"].isel(level=k).isel(inner)
            ref = ref.metpy.dequantify().isel(inner)
            np.testing.assert_allclose(got.values[mask], ref.values[mask], rtol=1e-8, atol=1e-8)
    speed = np.hypot(
        ours["u_component_of_geostrophic_wind"], ours["v_component_of_geostrophic_wind"]
    )
    xr.testing.assert_allclose(ours["geostrophic_wind_speed"], speed)


def test_equator_band_is_masked():
    g = geostrophic_wind(height_field(), equator_band=15.0)
    band = np.abs(g.latitude) < 15.0
    assert g["geostrophic_wind_speed"].sel(latitude=band).isnull().all()
    assert g["geostrophic_wind_speed"].sel(latitude=~band).notnull().all()
    assert g["geostrophic_wind_speed"].attrs["units"] == "m s**-1"


def test_bad_inputs():
    ds = height_field()
    with pytest.raises(ValueError, match="lacks variable"):
        geostrophic_wind(ds.rename(geopotential="z"))
    bad = ds.copy()
    bad["geopotential"].attrs["units"] = "m"
    with pytest.raises(ValueError, match="units 'm'"):
        geostrophic_wind(bad)
    with pytest.raises(ValueError, match="cover the globe"):
        geostrophic_wind(ds.isel(longitude=slice(0, 30)))
    with pytest.raises(ValueError, match="u_component_of_wind"):
        ageostrophic_wind(ds)
    with pytest.raises(ValueError, match="equator_band"):
        geostrophic_wind(ds, equator_band=-1)


def _with_wind(ds, noise=0.0, seed=1):
    g = geostrophic_wind(ds, equator_band=0.5)
    rng = np.random.default_rng(seed)
    out = ds.copy()
    shape = g["u_component_of_geostrophic_wind"].shape
    out["u_component_of_wind"] = g["u_component_of_geostrophic_wind"].fillna(
        0
    ) + noise * rng.normal(size=shape)
    out["v_component_of_wind"] = g["v_component_of_geostrophic_wind"].fillna(
        0
    ) + noise * rng.normal(size=shape)
    return out


def test_balanced_flow_summary():
    ds = _with_wind(height_field())
    s = balance_summary(ds)
    assert s.sizes == {"band": 3, "level": 2}
    np.testing.assert_allclose(s["correlation"].values, 1.0, rtol=1e-12)
    np.testing.assert_allclose(s["ageostrophic_ratio"].values, 0.0, atol=1e-12)
    a = ageostrophic_wind(ds)
    assert float(a["ageostrophic_wind_speed"].max()) < 1e-9


def test_noisy_flow_summary_against_hand_computation():
    ds = _with_wind(height_field(), noise=3.0)
    band = (20.0, 90.0)
    s = balance_summary(ds, bands={"nh": band}).sel(band="nh", level=500.0)
    g = geostrophic_wind(ds).sel(level=500.0)
    sel = {"latitude": slice(band[0], band[1])}
    u, v = (
        ds["u_component_of_wind"].sel(level=500.0).sel(sel),
        ds["v_component_of_wind"].sel(level=500.0).sel(sel),
    )
    ug, vg = (
        g["u_component_of_geostrophic_wind"].sel(sel),
        g["v_component_of_geostrophic_wind"].sel(sel),
    )
    lat = u.latitude.values
    full = np.concatenate([[-90.0], (LAT[1:] + LAT[:-1]) / 2, [90.0]])
    area = np.diff(np.sin(np.deg2rad(full)))
    w = (area / area.mean())[np.isin(LAT, lat)][:, None] * np.ones(LON.size)
    x = np.concatenate([u.values.ravel(), v.values.ravel()])
    y = np.concatenate([ug.values.ravel(), vg.values.ravel()])
    ww = np.concatenate([w.ravel(), w.ravel()])
    xm, ym = np.average(x, weights=ww), np.average(y, weights=ww)
    corr = np.average((x - xm) * (y - ym), weights=ww) / np.sqrt(
        np.average((x - xm) ** 2, weights=ww) * np.average((y - ym) ** 2, weights=ww)
    )
    ratio = np.sqrt(np.average((x - y) ** 2, weights=ww) / np.average(x**2, weights=ww))
    assert float(s["correlation"]) == pytest.approx(corr, rel=1e-10)
    assert float(s["ageostrophic_ratio"]) == pytest.approx(ratio, rel=1e-10)
    assert 0.0 < ratio < 1.0


def test_increment_summary_equals_summary_of_difference():
    a = _with_wind(height_field(0), noise=1.0, seed=2)
    b = _with_wind(height_field(3), noise=1.0, seed=4)
    inc = balance_summary(a, b)
    diff = a - b
    diff["geopotential"].attrs["units"] = "m**2 s**-2"
    xr.testing.assert_allclose(inc.drop_attrs(), balance_summary(diff).drop_attrs())
    assert inc.attrs["of"] == "increment"
    with pytest.raises(ValueError, match="contains no grid latitude"):
        balance_summary(a, bands={"gap": (1.0, 2.0)})


def test_accessor_and_no_mutation():
    ds = _with_wind(height_field(), noise=1.0)
    before = ds.copy(deep=True)
    xr.testing.assert_identical(ds.fuxi.balance_summary(), balance_summary(ds))
    xr.testing.assert_identical(ds, before)


def test_equator_band_zero_masks_only_the_equator():
    # the one kernel (xfuxi.physics) refuses f = 0; the diagnostic reports NaN there (was inf)
    g = geostrophic_wind(height_field(), equator_band=0.0)
    speed = g["geostrophic_wind_speed"]
    assert speed.sel(latitude=0.0).isnull().all()
    assert np.isfinite(speed.sel(latitude=LAT[LAT != 0])).all()


def test_units_of_winds_and_background_are_checked_and_pole_rows_left_out():
    ds = height_field()
    g = geostrophic_wind(ds)
    ds["u_component_of_wind"] = g["u_component_of_geostrophic_wind"].fillna(0.0)
    ds["v_component_of_wind"] = g["v_component_of_geostrophic_wind"].fillna(0.0)
    knots = ds.copy()
    knots["u_component_of_wind"] = (ds["u_component_of_wind"] / 0.514444).assign_attrs(
        units="knots"
    )
    with pytest.raises(ValueError, match="u_component_of_wind has units 'knots'"):
        ageostrophic_wind(knots)
    heights = ds.copy()
    heights["geopotential"] = (ds["geopotential"] / 9.80665).assign_attrs(units="m")
    with pytest.raises(ValueError, match="geopotential has units 'm'"):
        balance_summary(ds, heights)  # the background was not checked
    # a grid with pole rows: no geostrophic wind is diagnosed there
    lat = np.linspace(-90.0, 90.0, 13)
    noise = np.random.default_rng(0).normal(size=(13, 12))
    zp = xr.DataArray(noise, dims=("latitude", "longitude"),
                      coords={"latitude": lat, "longitude": np.arange(12) * 30.0},
                      attrs={"units": "m**2 s**-2"})  # fmt: skip
    gp = geostrophic_wind(xr.Dataset({"geopotential": zp}))["v_component_of_geostrophic_wind"]
    assert gp.sel(latitude=[-90.0, 90.0]).isnull().all()
    assert gp.sel(latitude=[-75.0, 75.0]).notnull().all()


def test_geopotential_without_units_is_read_from_its_values():
    ds = height_field(levels=(300.0, 500.0, 850.0))
    bare = ds.copy()
    bare["geopotential"] = bare["geopotential"].copy()
    bare["geopotential"].attrs = {}
    # geopotential in m**2 s**-2 without the attribute gives the same wind
    xr.testing.assert_identical(geostrophic_wind(bare), geostrophic_wind(ds))
    # heights in metres without the attribute (9.8 times too small a wind) are refused
    standard = xr.DataArray([9164.0, 5574.0, 1457.0], dims="level")  # ICAO heights (m)
    pattern = ds["geopotential"] - ds["geopotential"].mean(("latitude", "longitude"))
    heights = (standard + pattern / 9.80665).drop_attrs().to_dataset(name="geopotential")
    with pytest.raises(ValueError, match="no units attribute.*500 hPa.*geopotential height"):
        geostrophic_wind(heights)
    with pytest.raises(ValueError, match="no units attribute"):
        balance_summary(_with_wind(heights))
    # no pressure level between 100 and 850 hPa: nothing to tell by (levels in Pa are read
    # as hPa: test_heights_are_refused_on_a_scalar_level_and_on_levels_in_pa)
    geostrophic_wind(heights.sel(level=[500.0]).assign_coords(level=[925.0]))


def _heights(levels=(300.0, 500.0, 850.0)):
    """Geopotential height in metres without a units attribute (9.8 times too small)."""
    ds = height_field(levels=levels)
    standard = xr.DataArray([9164.0, 5574.0, 1457.0][: len(levels)], dims="level")  # ICAO (m)
    pattern = ds["geopotential"] - ds["geopotential"].mean(("latitude", "longitude"))
    return (standard + pattern / 9.80665).drop_attrs().to_dataset(name="geopotential")


def test_heights_are_refused_on_a_scalar_level_and_on_levels_in_pa():
    heights = _heights()
    with pytest.raises(ValueError, match="no units attribute.*500 hPa.*geopotential height"):
        geostrophic_wind(heights.sel(level=500.0))  # the level a scalar coordinate
    winds = _with_wind(height_field(levels=(300.0, 500.0, 850.0)))
    with pytest.raises(ValueError, match="no units attribute.*500 hPa"):
        balance_summary(winds.assign(geopotential=heights.geopotential).sel(level=500.0))
    pa = heights.assign_coords(level=("level", heights.level.values * 100.0, {"units": "Pa"}))
    with pytest.raises(ValueError, match="no units attribute.*500 hPa"):
        geostrophic_wind(pa)
    with pytest.raises(ValueError, match="no units attribute.*500 hPa"):
        geostrophic_wind(heights.assign_coords(level=heights.level * 100.0))  # Pa, no units
    # geopotential without the attribute still passes on a scalar level and on levels in Pa
    ds = height_field(levels=(300.0, 500.0, 850.0))
    bare = ds.assign(geopotential=ds.geopotential.drop_attrs())
    xr.testing.assert_identical(geostrophic_wind(bare.sel(level=500.0)),
                                geostrophic_wind(ds.sel(level=500.0)))  # fmt: skip
    geostrophic_wind(bare.assign_coords(level=bare.level * 100.0))


def test_the_analysis_units_are_checked_before_the_increment():
    bg = _with_wind(height_field(0), noise=1.0, seed=2)
    an = bg.copy()
    an["geopotential"] = (bg["geopotential"] * 1.05 / 9.80665).drop_attrs()  # heights, no units
    with pytest.raises(ValueError, match="no units attribute.*geopotential height"):
        balance_summary(an, bg)
    with pytest.raises(ValueError, match="geopotential has units 'm'"):
        balance_summary(an.assign(geopotential=an.geopotential.assign_attrs(units="m")), bg)


def test_latitude_and_longitude_must_be_coordinates():
    ds = _with_wind(height_field())
    for name in ("latitude", "longitude"):
        bare = ds.drop_vars(name)
        with pytest.raises(ValueError, match=f"no {name!r} coordinate"):
            geostrophic_wind(bare)
        with pytest.raises(ValueError, match=f"no {name!r} coordinate"):
            balance_summary(bare)


def test_keep_may_be_one_name():
    ds = _with_wind(height_field()).expand_dims(
        prediction_timedelta=np.array([6, 12], "timedelta64[h]"), time=2
    )
    one = balance_summary(ds, keep="prediction_timedelta")
    assert one["correlation"].dims == ("band", "prediction_timedelta")  # 'time' kept too
    xr.testing.assert_identical(one, balance_summary(ds, keep=("prediction_timedelta",)))


def test_increment_messages_speak_of_analysis_and_background():
    a = _with_wind(height_field()).expand_dims(time=np.array(["2000-01-01", "2000-01-02"],
                                                             "datetime64[ns]"))  # fmt: skip
    with pytest.raises(ValueError, match="between analysis and background.*of the analysis"):
        balance_summary(a, a.isel(time=[0]))


def _world_with_wind(seed=0):
    ds = height_field(seed)
    g = geostrophic_wind(ds)
    ds["u_component_of_wind"] = g["u_component_of_geostrophic_wind"].fillna(0.0) * 1.1
    ds["v_component_of_wind"] = g["v_component_of_geostrophic_wind"].fillna(0.0)
    for c in ("u_component_of_wind", "v_component_of_wind"):
        ds[c].attrs = {"units": "m s**-1"}
    return ds.assign_attrs(title="Held-Suarez world (T21)", source="xfuxi.datasets",
                           history="made by a test")  # fmt: skip


def test_outputs_keep_the_provenance_of_the_input():
    # a map of a diagnostic of the Held–Suarez world must still know that world (plot_map
    # reads title/source/initial_conditions/background_source); other attrs are not kept
    ds = _world_with_wind()
    for out in (geostrophic_wind(ds), ageostrophic_wind(ds), balance_summary(ds),
                balance_summary(ds, ds * 0.5)):  # fmt: skip
        assert out.attrs["title"] == "Held-Suarez world (T21)"
        assert out.attrs["source"] == "xfuxi.datasets"
        assert "history" not in out.attrs
    from xfuxi.plot import _is_held_suarez

    assert _is_held_suarez(geostrophic_wind(ds))
    assert _is_held_suarez(balance_summary(ds))


def test_outputs_have_their_own_units_and_long_names():
    # the ratios were given the wind's units through arithmetic
    ds = _world_with_wind()
    s = balance_summary(ds)
    for v in ("correlation", "ageostrophic_ratio"):
        assert s[v].attrs["units"] == "1" and s[v].attrs["long_name"]
    for v in ("wind_speed", "geostrophic_wind_speed", "ageostrophic_wind_speed"):
        assert s[v].attrs["units"] == "m s**-1" and s[v].attrs["long_name"]
    for out in (geostrophic_wind(ds), ageostrophic_wind(ds)):
        for v in out.data_vars:
            assert out[v].attrs["units"] == "m s**-1" and "wind" in out[v].attrs["long_name"]


def test_a_band_inside_the_equatorial_mask_is_refused():
    """Its statistics were all NaN, silently (the tropics with equator_band=25)."""
    ds = _with_wind(height_field())
    with pytest.raises(ValueError, match=r"band 'eq' \(-5.0, 5.0\) lies inside the equatorial"):
        balance_summary(ds, bands={"eq": (-5.0, 5.0)})
    with pytest.raises(ValueError, match=r"band 'tropics' .* \(\|latitude\| < 25\)"):
        balance_summary(ds, equator_band=25.0)
    edge = balance_summary(ds, bands={"edge": (-12.0, 12.0)})  # rows ±12 are outside
    assert np.isfinite(edge["correlation"]).all()
