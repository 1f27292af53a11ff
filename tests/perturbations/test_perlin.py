"""Perlin noise: shape, scale, periodicity, spatial scale, seeding, perturbation amplitudes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from xfuxi.perturbations.perlin import perlin_ensemble, perlin_noise, perlin_perturbations


def _lag_corr(z: torch.Tensor, lag: int, dim: int = -1) -> float:
    z = z - z.mean()
    return float((z * torch.roll(z, lag, dim)).mean() / (z * z).mean())


def test_shape_dtype_unit_std():
    z = perlin_noise(16, (12, 24), wavelength=6, seed=1, dtype=torch.float64)
    assert z.shape == (16, 12, 24) and z.dtype == torch.float64
    assert z.std().item() == pytest.approx(1.0, abs=1e-9)
    assert abs(z.mean().item()) < 0.15


def test_seed_reproducible_and_generator_equivalent():
    a = perlin_noise(3, (8, 16), wavelength=4, seed=7)
    b = perlin_noise(3, (8, 16), wavelength=4, seed=7)
    c = perlin_noise(3, (8, 16), wavelength=4, generator=torch.Generator().manual_seed(7))
    d = perlin_noise(3, (8, 16), wavelength=4, seed=8)
    assert torch.equal(a, b) and torch.equal(a, c) and not torch.equal(a, d)


def test_periodic_in_longitude_not_in_latitude():
    # the jump across the wrap (last -> first column) is as small as neighbouring jumps,
    # while across the (non-periodic) latitude ends it is not
    z = perlin_noise(200, (32, 64), wavelength=16, octaves=1, seed=0, dtype=torch.float64)
    step = (z[..., 1:] - z[..., :-1]).abs().mean()
    wrap = (z[..., 0] - z[..., -1]).abs().mean()
    lat_wrap = (z[:, 0] - z[:, -1]).abs().mean()
    assert wrap < 1.3 * step
    assert lat_wrap > 5 * step


def test_wavelength_controls_spatial_scale_and_white_limit():
    smooth = perlin_noise(100, (40,), wavelength=10, octaves=1, seed=0, dtype=torch.float64)
    white = perlin_noise(100, (40,), wavelength=1, octaves=1, seed=0, dtype=torch.float64)
    assert _lag_corr(smooth, 1) > 0.8
    assert abs(_lag_corr(white, 1)) < 0.05


def test_one_dimensional_is_periodic():
    z = perlin_noise(300, (40,), wavelength=8, octaves=1, seed=3, dtype=torch.float64)
    step = (z[:, 1:] - z[:, :-1]).abs().mean()
    assert (z[:, 0] - z[:, -1]).abs().mean() < 1.3 * step


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 4),
    h=st.integers(1, 9),
    w=st.integers(2, 17),
    wl=st.floats(0.5, 20.0),
    octaves=st.integers(1, 4),
)
def test_property_finite_unit_std(n, h, w, wl, octaves):
    z = perlin_noise(n, (h, w), wavelength=wl, octaves=octaves, seed=0, dtype=torch.float64)
    assert z.shape == (n, h, w)
    assert torch.isfinite(z).all()
    if z.numel() > 1:
        assert z.std().item() == pytest.approx(1.0, rel=1e-6)


def test_perturbation_amplitude_per_channel():
    std = np.array([2.0, 50.0, 0.5])
    amp = np.array([0.1, 0.02, 0.3])
    p = perlin_perturbations(
        400, std=std, shape=(8, 16), amplitude=amp, seed=0, dtype=torch.float64
    )
    got = p.std(dim=(0, 2, 3)).numpy()
    np.testing.assert_allclose(got, amp * std, rtol=0.05)
    # channels are independent
    c = np.corrcoef(p[:, 0].reshape(-1).numpy(), p[:, 1].reshape(-1).numpy())[0, 1]
    assert abs(c) < 0.05


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0, "shape": (4, 4), "wavelength": 2}, "positive"),
        ({"n": 1, "shape": (2, 2, 2), "wavelength": 2}, "shape"),
        ({"n": 1, "shape": (4, 4), "wavelength": -1}, "wavelength"),
        ({"n": 1, "shape": (4, 4), "wavelength": 2, "octaves": 0}, "octaves"),
        (
            {"n": 1, "shape": (4, 4), "wavelength": 2, "seed": 1, "generator": torch.Generator()},
            "either",
        ),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    n = kwargs.pop("n")
    shape = kwargs.pop("shape")
    with pytest.raises(ValueError, match=match):
        perlin_noise(n, shape, **kwargs)


def test_perturbations_bad_std_and_amplitude():
    with pytest.raises(ValueError, match="1-D"):
        perlin_perturbations(2, std=[[1.0]], shape=(4, 4))
    with pytest.raises(ValueError, match="channels"):
        perlin_perturbations(2, std=[1.0, 2.0], shape=(4, 4), amplitude=[0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="finite"):
        perlin_perturbations(2, std=[np.nan], shape=(4, 4))


def test_perlin_ensemble_dataset_does_not_mutate():
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {
            "temperature": (("level", "latitude", "longitude"), rng.normal(250, 5, (2, 6, 12))),
            "surface_pressure": (("latitude", "longitude"), rng.normal(1e5, 500, (6, 12))),
        },
        coords={
            "level": [500.0, 850.0],
            "latitude": np.linspace(-75, 75, 6),
            "longitude": np.arange(12) * 30.0,
        },
    )
    before = ds.copy(deep=True)
    std = xr.Dataset(
        {"temperature": ("level", [4.0, 8.0]), "surface_pressure": 1000.0},
        coords={"level": [500.0, 850.0]},
    )
    ens = perlin_ensemble(ds, n=300, amplitude=0.1, std=std, seed=0)
    xr.testing.assert_identical(ds, before)
    assert ens["temperature"].dims == ("number", "level", "latitude", "longitude")
    d = ens - ds
    np.testing.assert_allclose(
        d["temperature"].std(["number", "latitude", "longitude"]), [0.4, 0.8], rtol=0.05
    )
    assert float(d["surface_pressure"].std()) == pytest.approx(100.0, rel=0.05)
    # each variable keeps its own precision; the first variable's was used for all (a
    # float16 first variable rounded the surface pressure's noise away)
    mixed = ds.assign(temperature=ds.temperature.astype("float16"))
    ens = perlin_ensemble(mixed, n=300, amplitude=0.1, std=std, seed=0)
    assert ens["temperature"].dtype == np.float16 and ens["surface_pressure"].dtype == np.float64
    d = ens - mixed
    assert float(d["surface_pressure"].std()) == pytest.approx(100.0, rel=0.05)
    # a mask lost its noise or turned to 0/1 (by variable order): refused, named
    with pytest.raises(ValueError, match=r"\['mask'\] are not floating point"):
        perlin_ensemble(ds.assign(mask=ds.surface_pressure > 1e5), n=2, std=std)


def test_perlin_ensemble_takes_n_as_ensemble_does_and_refuses_other_counts():
    ds = xr.Dataset(
        {"temperature": (("latitude", "longitude"), np.zeros((4, 8)))},
        coords={"latitude": np.linspace(-60, 60, 4), "longitude": np.arange(8) * 45.0},
    )
    std = xr.Dataset({"temperature": 2.0})
    new = perlin_ensemble(ds, n=2, std=std, seed=4)
    with pytest.warns(DeprecationWarning, match=r"n_members=\.\.\.\) is deprecated; pass n="):
        old = perlin_ensemble(ds, n_members=2, std=std, seed=4)
    xr.testing.assert_identical(old, new)
    with pytest.raises(TypeError, match="not n and n_members"):
        perlin_ensemble(ds, n=2, n_members=2, std=std)
    with pytest.raises(TypeError, match="needs n, the number of members"):
        perlin_ensemble(ds, std=std)
    # 2.7 gave a coordinate error, True one member, "3" a NumPy error, 2.0 two members
    for bad in (2.7, True, "3", 2.0, 0):
        with pytest.raises(ValueError, match=f"positive integer number of members, got {bad!r}"):
            perlin_ensemble(ds, n=bad, std=std)
        with pytest.raises(ValueError, match="positive integer number of members"):
            perlin_perturbations(bad, std=[1.0], shape=(4, 8))
        with pytest.raises(ValueError, match="positive integer number of fields"):
            perlin_noise(bad, (4, 8), wavelength=4)
    assert perlin_ensemble(ds, n=np.int64(3), std=std).sizes["number"] == 3


def test_balanced_perturbations_are_geostrophic_and_hydrostatic():
    import xfuxi
    from xfuxi.perturbations.balanced import balanced_perturbations

    lat = np.linspace(-84.0, 84.0, 29)
    lon = np.arange(48) * 7.5
    levels = [300.0, 500.0, 850.0]
    ch = (
        [("geopotential", lv) for lv in levels]
        + [("u_component_of_wind", lv) for lv in levels]
        + [("v_component_of_wind", lv) for lv in levels]
        + [("temperature", 500.0), ("passive_tracer", 500.0)]
    )
    std = np.array([900.0, 600.0, 400.0] + [10.0] * 6 + [3.0, 0.1])
    p = balanced_perturbations(
        3,
        channels=ch,
        latitude=lat,
        longitude=lon,
        std=std,
        amplitude=0.1,
        seed=0,
        dtype=torch.float64,
    ).numpy()
    z = xr.DataArray(
        p[:, :3],
        dims=("number", "level", "latitude", "longitude"),
        coords={"level": levels, "latitude": lat, "longitude": lon},
        attrs={"units": "m**2 s**-2"},
    )
    geo = xfuxi.geostrophic_wind(xr.Dataset({"geopotential": z}), equator_band=20.0)
    ug = geo["u_component_of_geostrophic_wind"].values
    vg = geo["v_component_of_geostrophic_wind"].values
    ok = np.isfinite(ug)
    a = np.concatenate([p[:, 3:6][ok], p[:, 6:9][ok]])
    b = np.concatenate([ug[ok], vg[ok]])
    # issue 19: one geostrophic wind (xfuxi.physics, constants of xfuxi.constants): outside
    # both equatorial bands the perturbation's winds are exactly the diagnostic's, at every
    # row including the outermost ones (they differed by 1.7e-5 relative from the constants,
    # and by a first-order one-sided difference at the outermost rows)
    assert ok.sum() == 3 * 3 * 22 * 48
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())
    # hydrostatic: T' = -(1/R) dPhi'/dln p (centred difference at 500 hPa)
    dphi = (p[:, 2] - p[:, 0]) / (np.log(850.0) - np.log(300.0))
    np.testing.assert_allclose(p[:, 9], -dphi / 287.04, rtol=1e-10)
    # the taper: winds vanish on the equator and grow linearly to the band's edge (15 deg)
    assert np.abs(p[:, 3:9, 14]).max() == 0.0  # latitude 0
    assert np.isfinite(p).all()
    # the tracer is independent noise of the requested amplitude
    assert p[:, 10].std() == pytest.approx(0.01, rel=0.1)
    assert abs(np.corrcoef(p[:, 10].ravel(), p[:, 1].ravel())[0, 1]) < 0.1
    with pytest.raises(ValueError, match="geopotential"):
        balanced_perturbations(
            1, channels=[("temperature", 500.0)], latitude=lat, longitude=lon, std=[1.0]
        )
    # one amplitude per channel: the geopotential levels and the tracer each their own, the
    # balanced channels following their geopotential; the same draws as one for all
    kw = dict(channels=ch, latitude=lat, longitude=lon, std=std, seed=0, dtype=torch.float64)
    amp = np.array([0.1, 0.2, 0.1] + [0.1, 0.2, 0.1] * 2 + [0.2, 0.0])
    q = balanced_perturbations(3, amplitude=amp, **kw).numpy()
    for c in (0, 2, 3, 5, 6, 8):
        np.testing.assert_array_equal(q[:, c], p[:, c])
    np.testing.assert_allclose(q[:, [1, 4, 7]], 2 * p[:, [1, 4, 7]], rtol=1e-12)
    assert np.abs(q[:, 10]).max() == 0.0
    with pytest.raises(ValueError, match="u_component_of_wind@500 is 0.1, but balanced it follows"):
        balanced_perturbations(3, amplitude=np.where(np.arange(11) == 1, 0.2, 0.1), **kw)
    with pytest.raises(ValueError, match=r"amplitude has shape \(2,\)"):
        balanced_perturbations(3, amplitude=[0.1, 0.2], **kw)


def test_perlin_scales_are_one_option_object_and_the_old_keywords_still_work():
    # issue 19 (typed configuration): the Perlin wavelength / octaves / persistence travel as
    # one PerlinScales instead of three keywords repeated in every signature; the old
    # keywords give the same draws, with a DeprecationWarning naming the new parameter
    from xfuxi.perturbations.balanced import balanced_perturbations
    from xfuxi.perturbations.scales import PerlinScales

    scales = PerlinScales(wavelength=4.0, octaves=2, persistence=0.7)
    kw = dict(std=[1.0, 3.0], shape=(6, 12), amplitude=0.2, seed=5, dtype=torch.float64)
    new = perlin_perturbations(3, scales=scales, **kw)
    with pytest.warns(DeprecationWarning, match=r"pass scales=PerlinScales\(wavelength=\.\.\."):
        old = perlin_perturbations(3, wavelength=4.0, octaves=2, persistence=0.7, **kw)
    torch.testing.assert_close(new, old, rtol=0, atol=0)
    assert not torch.equal(new, perlin_perturbations(3, **kw))  # the default scales differ
    ch = [("geopotential", 500.0), ("u_component_of_wind", 500.0), ("passive_tracer", None)]
    grid = dict(channels=ch, latitude=np.linspace(-80, 80, 9), longitude=np.arange(16) * 22.5)
    bal = balanced_perturbations(2, **grid, std=[500.0, 10.0, 1.0], scales=scales, seed=0)
    with pytest.warns(DeprecationWarning, match="balanced_perturbations"):
        bal_old = balanced_perturbations(2, **grid, std=[500.0, 10.0, 1.0], wavelength=4.0,
                                         octaves=2, persistence=0.7, seed=0)  # fmt: skip
    torch.testing.assert_close(bal, bal_old, rtol=0, atol=0)
    with pytest.raises(TypeError, match="wavelenght"):
        perlin_perturbations(1, std=[1.0], shape=(4, 4), wavelenght=4.0)
    with pytest.raises(ValueError, match="PerlinScales.octaves"):
        PerlinScales(octaves=0)
    assert PerlinScales.from_dict(scales.to_dict()) == scales


def test_perturbations_device_keyword_is_deprecated_and_gives_the_same_draws():
    kw = dict(std=[1.0, 3.0], shape=(6, 12), amplitude=0.2, seed=5, dtype=torch.float64)
    new = perlin_perturbations(2, **kw).to("cpu")
    with pytest.warns(DeprecationWarning, match=r"device=\.\.\.\) is deprecated; move the result"):
        old = perlin_perturbations(2, device="cpu", **kw)
    torch.testing.assert_close(new, old, rtol=0, atol=0)
    assert old.device.type == "cpu"
    with pytest.raises(TypeError, match="devise"):
        perlin_perturbations(2, devise="cpu", **kw)


@pytest.mark.parametrize("flip", ["latitude", "longitude", "level", "all"])
def test_perlin_ensemble_default_std_does_not_depend_on_grid_order(flip):
    """The default std (of ``ds``) is reduced on the canonical grid: a north-to-south,
    −180..180 or levels-descending copy of a state gets the same noise to the bit (its std
    was summed in another order, 1 ulp off), and a canonical state's std is the one given."""
    from tests import tiny

    ds = tiny.dataset(4)
    other = tiny.reoriented(ds, flip)
    a = perlin_ensemble(ds, n=2, seed=5) - ds
    b = perlin_ensemble(other, n=2, seed=5) - other
    b = b.assign_coords(longitude=b.longitude % 360).sortby(["longitude", "latitude", "level"])
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].transpose(*a[v].dims).values)
    std = ds.std([d for d in ds.dims if d != "level"])  # canonical: reduced as it is
    assert perlin_ensemble(ds, n=2, seed=5).identical(perlin_ensemble(ds, n=2, seed=5, std=std))
