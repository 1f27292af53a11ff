"""model_on's dtype of a model without parameters,
register_cascade's checks, a second spectral filter, checkpoint config entries and the
spectral filter's documented residue on non-Gaussian grids."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests import tiny
from xfuxi.models import checkpoint as ckpt
from xfuxi.models import spectral
from xfuxi.models.cascade import Cascade
from xfuxi.models.checkpoint import CheckpointError, save_model, write_checkpoint
from xfuxi.models.lorenz96 import lorenz96_model
from xfuxi.models.registry import load_model, register_cascade, register_pretrained
from xfuxi.models.rollout import model_dtype, model_on
from xfuxi.models.spectral import SpectralFilter, with_spectral_filter

# --- model_on: the dtype of a model with buffers but no parameters ---


def test_model_on_reads_the_dtype_of_a_parameterless_model_from_its_buffers():
    # Lorenz-96 has no parameters: its dtype was taken as float32 whatever its buffers, so
    # a float64 model asked for float32 came back unchanged (float64)
    m64 = lorenz96_model(n_variables=8).double()
    run = model_on(m64, None, torch.float32)
    assert run is not m64 and model_dtype(run) == torch.float32
    assert model_dtype(m64) == torch.float64  # the model passed in is unchanged
    assert model_on(m64, None, None) is m64  # the default: the model's own dtype
    assert model_on(m64, None, torch.float64) is m64
    m32 = lorenz96_model(n_variables=8)
    assert model_on(m32, None, None) is m32
    run = model_on(m32, None, torch.float64)
    assert run is not m32 and model_dtype(run) == torch.float64


# --- register_cascade ---


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A temporary models folder with two single models ("a", "b") and a perturbation "p"."""
    monkeypatch.setattr(ckpt, "PRETRAINED_DIR", tmp_path)
    src = save_model(tiny.fuxi_model(), tmp_path / "src")
    register_pretrained("a", source=src)
    register_pretrained("b", source=src)
    path = tmp_path / "registry.json"
    reg = json.loads(path.read_text())
    reg["p"] = {"kind": "perturbation", "directory": "p", "sha256": {}}
    path.write_text(json.dumps(reg))
    return path


def test_register_cascade_refuses_the_name_of_an_entry_of_another_kind(registry):
    # register_cascade("fuxi-hs-t21", ...) replaced the single model's entry: load_model
    # of the name then failed (register_pretrained already refused the reverse)
    before = registry.read_bytes()
    for name, kind in (("a", "forecast-model"), ("p", "perturbation")):
        with pytest.raises(ValueError, match=f"'{name}' is a shipped {kind}; a cascade cannot"):
            register_cascade(name, ["a", "b"], [2])
    assert registry.read_bytes() == before
    assert load_model("a").name == "a"
    # a cascade may replace a cascade
    register_cascade("c", ["a", "b"], [2])
    entry = register_cascade("c", ["b", "a"], [3], description="again")
    assert entry["cascade"] == {"stages": ["b", "a"], "switch_steps": [3]}
    c = load_model("c")
    assert isinstance(c, Cascade) and c.switch_steps == (3,)


@pytest.mark.parametrize(
    ("stages", "switch", "match"),
    [
        (["a", "b"], [0], "integers >= 1"),
        (["a", "b"], [2.7], "integers >= 1"),  # was recorded as 2
        (["a", "b"], [True], "integers >= 1"),
        (["a", "b", "a"], [5, 3], "increase strictly"),
        (["a", "b", "a"], [3, 3], "increase strictly"),
        (["a", "b"], [1, 2], "2 stages need 1 switch step"),
        (["a", "b"], 2, "a list of integers"),
        (["a"], [], "at least 2 stages"),
        ("ab", [1], "list of shipped model names"),
        (["a", "p"], [1], "'p' is not a shipped single model"),
    ],
)
def test_register_cascade_checks_switch_steps_before_writing(registry, stages, switch, match):
    before = registry.read_bytes()
    with pytest.raises(ValueError, match=match):
        register_cascade("c", stages, switch)
    assert registry.read_bytes() == before  # nothing written


# --- with_spectral_filter on a filtered model ---


def test_with_spectral_filter_refuses_a_model_that_has_a_filter(tmp_path):
    # the second filter replaced the first while the name said "+T2+T6"
    f2 = with_spectral_filter(tiny.fuxi_model(), 2)
    with pytest.raises(ValueError, match=r"'tiny-fuxi\+T2' already has an output filter "
                                         r"\(truncation 2\)"):  # fmt: skip
        with_spectral_filter(f2, 6)
    assert f2.output_filter.truncation == 2 and f2.name == "tiny-fuxi+T2"
    loaded = load_model(save_model(f2, tmp_path / "f2"))  # a checkpoint keeps its filter
    with pytest.raises(ValueError, match="already has an output filter"):
        with_spectral_filter(loaded, 2)
    cascade = Cascade([f2, tiny.fuxi_model(seed=1)], [1], name="c")
    with pytest.raises(ValueError, match="already has an output filter"):
        with_spectral_filter(cascade, 3)


# --- checkpoint config entries ---


def _variant(d, tmp_path, name, **entries):
    """A copy of checkpoint ``d`` whose config has ``entries`` set."""
    files = {p.name: p.read_bytes() for p in d.iterdir() if not p.name.startswith(".")}
    files.pop("manifest.json")
    config = json.loads(files["config.json"])
    config.update(entries)
    files["config.json"] = json.dumps(config).encode()
    return write_checkpoint(tmp_path / name, files, kind="forecast-model")


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ({"latitude": None}, "entry 'latitude' must be a list of degrees; got None"),
        ({"longitude": 5}, "entry 'longitude' must be a list of degrees; got 5"),
        ({"timestep_hours": None}, "timestep_hours must be a positive number of hours"),
        ({"timestep_hours": "6"}, "timestep_hours must be a positive number of hours"),
        ({"residual": "false"}, "entry 'residual' must be true or false; got 'false'"),
        ({"residual": 1}, "entry 'residual' must be true or false; got 1"),
        ({"residual": None}, "entry 'residual' must be true or false; got None"),
    ],
)
def test_bad_config_entries_are_checkpoint_errors_naming_the_file(tmp_path, entries, match):
    d, _ = tiny.fuxi_checkpoint(tmp_path)
    bad = _variant(d, tmp_path, "bad", **entries)
    with pytest.raises(CheckpointError, match=match) as err:
        load_model(bad)
    assert str(bad / "config.json") in str(err.value)


def test_config_residual_false_loads_as_false(tmp_path):
    d, _ = tiny.fuxi_checkpoint(tmp_path)
    assert load_model(d).residual is True
    assert load_model(_variant(d, tmp_path, "r", residual=False)).residual is False
    assert load_model(_variant(d, tmp_path, "t", timestep_hours=12)).timestep_hours == 12.0


# --- the spectral filter's residue on non-Gaussian grids, as documented ---


def _worst_removed_residue(n_lat: int, truncation: int = 21, n_lon: int = 64):
    """Worst area-weighted RMS residue (relative) of a real harmonic ``truncation < l ≤ 30``
    filtered on a regular grid of ``n_lat`` latitudes (offset half a spacing from the poles)."""
    from scipy.special import sph_harm_y

    half = 90.0 / n_lat
    lat = np.linspace(-90 + half, 90 - half, n_lat)
    lon = np.arange(n_lon) * 360.0 / n_lon
    f = SpectralFilter(lat, lon, truncation)
    colat = np.deg2rad(90 - lat)[:, None]
    w = np.cos(np.deg2rad(lat))[:, None]
    worst = (0.0, None)
    for l in range(truncation + 1, 31):  # noqa: E741 (the wavenumber's usual name)
        for m in range(0, min(l, n_lon // 2 - 1) + 1):
            y = sph_harm_y(l, m, colat, np.deg2rad(lon)[None, :]).real
            if np.abs(y).max() < 1e-12:
                continue
            r = f(torch.as_tensor(y)).numpy()
            rms = np.sqrt((w * r**2).sum() / (w * y**2).sum())
            if rms > worst[0]:
                worst = (rms, (l, m))
    return worst


def test_documented_residue_of_a_non_gaussian_grid():
    # the docstring said "of the order of a percent": 8.6 % on 32 latitudes at T21
    r32, lm32 = _worst_removed_residue(32)
    r64, _ = _worst_removed_residue(64)
    assert lm32 == (29, 0) and round(100 * r32, 1) == 8.6 and round(100 * r64, 1) == 1.4
    doc = " ".join(spectral.__doc__.split())
    assert "8.6 %" in doc and "1.4 %" in doc and "Y_29^0" in doc


def test_pretrained_models_lists_each_kind():
    from xfuxi.models.registry import pretrained_models

    forecast = pretrained_models()
    assert "fuxi-hs-t21-cascade" in forecast and "fuxi-ens-hs-t21" not in forecast
    assert pretrained_models("perturbation") == ["fuxi-ens-hs-t21"]
    da = pretrained_models("assimilation")
    assert "fuxi-da-hs-t21" in da and "fuxi-hs-t21" not in da
    assert pretrained_models("all") == sorted(forecast + da + ["fuxi-ens-hs-t21"])
    with pytest.raises(ValueError, match="kind must be one of"):
        pretrained_models("da")
