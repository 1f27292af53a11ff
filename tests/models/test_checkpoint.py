"""Tests of forecast-model checkpoints and the pretrained registry (xfuxi.models.checkpoint)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from tests import tiny
from xfuxi.data.schema import SchemaError
from xfuxi.files import sha256_of
from xfuxi.models import checkpoint as ckpt
from xfuxi.models.base import ForecastModel, NormStats, wrap_model
from xfuxi.models.checkpoint import CheckpointError, ChecksumError, save_model, write_checkpoint
from xfuxi.models.registry import load_model, register_pretrained

LAT, LON = tiny.LAT, tiny.LON
CHANNELS = [("temperature", 850.0), ("geopotential", 500.0), ("surface_pressure", None)]


def _model(seed: int = 0) -> ForecastModel:
    rng = np.random.default_rng(seed)
    stats = NormStats(rng.normal(size=3), 1 + rng.random(3), 0.1 + rng.random(3))
    model = tiny.fuxi_model(CHANNELS, stats=stats, seed=seed, name="t", config={"preset": "tiny"})
    for p in model.net.parameters():  # move away from the init so that a wrong load would show
        p.data += 0.01 * torch.randn_like(p)
    return model


def test_round_trip_identical_outputs_channels_grid(tmp_path):
    model = _model().eval()
    d = save_model(model, tmp_path / "m", metadata={"note": "x"})
    loaded = load_model(d, device="cpu")
    assert not loaded.training
    assert loaded.channels == model.channels  # order survives
    np.testing.assert_array_equal(loaded.latitude, LAT)
    np.testing.assert_array_equal(loaded.longitude, LON)
    for k in ("mean", "std", "diff_std"):
        np.testing.assert_array_equal(getattr(loaded.stats, k), getattr(model.stats, k))
    x = torch.randn(2, 2, 3, 8, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    config = json.loads((d / "config.json").read_text())
    assert config["channels"] == ["temperature@850", "geopotential@500", "surface_pressure"]
    assert config["preset"] == "tiny" and config["metadata"]["note"] == "x"
    assert loaded.config["sha256"] == sha256_of(d / "model.safetensors")
    assert sorted(p.name for p in d.iterdir()) == [
        ".xfuxi-output.json", "config.json", "manifest.json", "model.safetensors"
    ]  # fmt: skip


def test_load_dtype_and_forecast_through_loaded(tmp_path):
    d = save_model(_model(), tmp_path / "m")
    m64 = load_model(d, dtype="float64")
    assert next(m64.parameters()).dtype == torch.float64
    assert m64._mean.dtype == torch.float64


def test_loaded_model_rejects_other_channels_or_grid(tmp_path):
    d = save_model(_model(), tmp_path / "m")
    model = load_model(d)
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {
            "temperature": (("time", "level", "latitude", "longitude"), rng.random((2, 1, 8, 16))),
            "geopotential": (("time", "level", "latitude", "longitude"), rng.random((2, 1, 8, 16))),
        },
        coords={"time": pd.date_range("2000-01-01", periods=2, freq="6h"), "level": [700],
                "latitude": LAT, "longitude": LON},
    )  # fmt: skip
    with pytest.raises(SchemaError, match="surface_pressure"):
        xfuxi.forecast(ds, model=model, steps=1)
    ds["surface_pressure"] = ds.temperature.isel(level=0, drop=True)
    with pytest.raises(SchemaError, match="at 850 hPa"):
        xfuxi.forecast(ds, model=model, steps=1)
    ds = xr.concat([ds, ds.assign_coords(level=[850])], "level", data_vars="minimal")
    ds = ds.assign_coords(level=[500, 850])
    assert xfuxi.forecast(ds, model=model, steps=1, progress=False).sizes["level"] == 2
    with pytest.raises(SchemaError, match="latitude"):
        xfuxi.forecast(ds.isel(latitude=slice(0, 4)), model=model, steps=1)
    with pytest.raises(SchemaError, match="longitude"):
        xfuxi.forecast(ds.assign_coords(longitude=LON + 1.0), model=model, steps=1)


def _rewrite(d, tmp_path, name, **replace):
    """A copy of checkpoint ``d`` with files replaced, its manifest consistent with them."""
    files = {p.name: p.read_bytes() for p in d.iterdir() if not p.name.startswith(".")}
    files.pop("manifest.json")
    files.update(replace)
    return write_checkpoint(tmp_path / name, files, kind="forecast-model")


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a shipped name"):
        load_model(tmp_path / "nothing")
    d = save_model(_model(), tmp_path / "m")
    config = json.loads((d / "config.json").read_text())
    bad = _rewrite(
        d, tmp_path, "fmt", **{"config.json": json.dumps({**config, "format": "pickle"}).encode()}
    )
    with pytest.raises(CheckpointError, match="not a forecast-model checkpoint"):
        load_model(bad)
    config["net"]["embed_dim"] = 32
    bad = _rewrite(d, tmp_path, "net", **{"config.json": json.dumps(config).encode()})
    with pytest.raises(ValueError, match="weights do not fit"):
        load_model(bad)
    with pytest.raises(TypeError, match="cannot save"):
        save_model(wrap_model(torch.nn.Identity(), channels=CHANNELS, latitude=LAT,
                              longitude=LON), tmp_path / "w")  # fmt: skip


def test_registry_checks_sha256(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "PRETRAINED_DIR", tmp_path)
    src = save_model(_model(), tmp_path / "src")
    entry = register_pretrained("demo", source=src, description="test")
    assert set(entry["sha256"]) == {"model.safetensors", "config.json", "manifest.json"}
    assert xfuxi.pretrained_models() == ["demo"]
    model = load_model("demo")
    assert model.name == "demo" and model.config["sha256"] == entry["sha256"]["model.safetensors"]
    weights = tmp_path / "demo" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="model.safetensors"):
        load_model("demo")
    # a name is a plain folder name: a path wrote outside the models folder, over the
    # user's own checkpoint at that path
    outside = save_model(_model(), tmp_path.parent / f"{tmp_path.name}-mine")
    before = (outside / "config.json").read_bytes()
    for name in (str(outside), f"../{outside.name}", ".hidden", ""):
        with pytest.raises(ValueError, match="plain folder name"):
            register_pretrained(name, source=src)
    assert (outside / "config.json").read_bytes() == before


def test_shipped_model_is_registered_small_and_loads():
    assert "fuxi-hs-t21" in xfuxi.pretrained_models()
    d = ckpt.PRETRAINED_DIR / "fuxi-hs-t21"
    assert (d / "model.safetensors").stat().st_size < 20e6
    model = xfuxi.load_model("fuxi-hs-t21")
    assert isinstance(model, ForecastModel) and not model.training
    assert model.grid_shape == (32, 64)
    assert ("geopotential", 500.0) in model.channels and ("temperature", 850.0) in model.channels
    assert model.residual and model.timestep_hours == 6.0


def test_cycling_default_model_is_shipped_with_its_statistics_and_filter():
    from xfuxi.assimilation.calibration import model_background_error
    from xfuxi.assimilation.cycle import CYCLING_MODEL

    assert CYCLING_MODEL == "fuxi-hs-t21-cycling-v6"
    # the earlier versions stay shipped: the docs' recorded commands name them
    earlier = ["fuxi-hs-t21-cycling", "fuxi-hs-t21-cycling-v3", "fuxi-hs-t21-cycling-v5"]
    assert {CYCLING_MODEL, *earlier} <= set(xfuxi.pretrained_models())
    new = xfuxi.load_model(CYCLING_MODEL)
    assert new.config["name"] == CYCLING_MODEL and new.input_times == 2
    std_new = model_background_error(new)
    assert std_new is not None and std_new.attrs["split"] == "train"
    p_new = dict(new.net.named_parameters())
    for name in earlier:
        old = xfuxi.load_model(name)
        truncation = [m.config["output_filter"]["truncation"] for m in (old, new)]
        assert truncation == [21, 21]
        # its own background-error statistics (not an earlier version's): a default B
        std_old = model_background_error(old)
        assert not np.allclose(std_old["temperature"].values, std_new["temperature"].values)
        # different weights, the same architecture
        p_old = dict(old.net.named_parameters())
        assert p_old.keys() == p_new.keys()
        assert any(not torch.equal(p_old[k], p_new[k]) for k in p_old)


# ------------------------------------------------------------------ the one checkpoint store


def _tamper(path, how="flip"):
    raw = bytearray(path.read_bytes())
    if how == "flip":
        raw[-1] ^= 0xFF
    else:  # truncate
        raw = raw[: len(raw) // 2]
    path.write_bytes(bytes(raw))


def test_model_loaded_by_path_is_verified(tmp_path):
    """Issue 20 item 6: a tampered model.safetensors loaded by path is refused, not used."""
    d = save_model(_model(), tmp_path / "m")
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["files"]["model.safetensors"] == sha256_of(d / "model.safetensors")
    assert manifest["files"]["config.json"] == sha256_of(d / "config.json")
    _tamper(d / "model.safetensors")
    with pytest.raises(ChecksumError, match=r"m/model\.safetensors .*corrupt or was modified"):
        load_model(d)
    d2 = save_model(_model(), tmp_path / "m2")
    config = json.loads((d2 / "config.json").read_text())
    config["stats"]["mean"][0] += 2.3  # a plausible edit: the forecast would be 2.3 K off
    (d2 / "config.json").write_text(json.dumps(config))
    with pytest.raises(ChecksumError, match=r"m2/config\.json"):
        load_model(d2)


def _with_config(d, tmp_path, name, kind, change):
    """A copy of checkpoint ``d`` of ``kind`` whose config.json is ``change(config)``."""
    files = {p.name: p.read_bytes() for p in d.iterdir() if not p.name.startswith(".")}
    files.pop("manifest.json")
    files["config.json"] = json.dumps(change(json.loads(files["config.json"]))).encode()
    return write_checkpoint(tmp_path / name, files, kind=kind)


def test_configs_that_cannot_rebuild_the_object_name_the_file(tmp_path):
    """Every kind: a missing entry, a bad value, weights that do not fit (CheckpointError)."""
    from xfuxi.models.ens import PerturbationVAE, load_perturbation, save_perturbation

    d = save_model(_model(), tmp_path / "m")
    drop_stats = _with_config(d, tmp_path, "m1", "forecast-model",
                              lambda c: {k: v for k, v in c.items() if k != "stats"})  # fmt: skip
    with pytest.raises(CheckpointError, match=r"m1/config\.json lacks the entry 'stats'"):
        load_model(drop_stats)
    bad_std = {**json.loads((d / "config.json").read_text())["stats"], "std": [-1.0] * 3}
    negative = _with_config(d, tmp_path, "m2", "forecast-model", lambda c: {**c, "stats": bad_std})
    with pytest.raises(CheckpointError, match=r"m2/config\.json: normalization statistic 'std'"):
        load_model(negative)
    three = _with_config(d, tmp_path, "m3", "forecast-model", lambda c: {**c, "input_times": 3})
    with pytest.raises(CheckpointError, match=r"m3/config\.json: .*input_times.* 1 or 2; got 3"):
        load_model(three)
    v = save_perturbation(PerturbationVAE(CHANNELS, (8, 16), hidden=4, latent=2), tmp_path / "v")
    no_hidden = _with_config(v, tmp_path, "v1", "perturbation",
                             lambda c: {k: x for k, x in c.items() if k != "hidden"})  # fmt: skip
    with pytest.raises(CheckpointError, match=r"v1/config\.json lacks the entry 'hidden'"):
        load_perturbation(no_hidden)
    wider = _with_config(v, tmp_path, "v2", "perturbation", lambda c: {**c, "hidden": 8})
    with pytest.raises(CheckpointError, match=r"v2: weights do not fit the config"):
        load_perturbation(wider)


def test_truncated_missing_or_unreadable_files_name_the_path(tmp_path):
    """Issue 20 (weak): truncated/corrupt safetensors and invalid JSON name the file."""
    d = save_model(_model(), tmp_path / "m")
    _tamper(d / "model.safetensors", "truncate")
    with pytest.raises(ChecksumError, match=r"m/model\.safetensors .*truncated"):
        load_model(d)
    d = save_model(_model(), tmp_path / "m2")
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"m2 lacks config\.json"):
        load_model(d)
    d = save_model(_model(), tmp_path / "m3")
    (d / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"m3 has no manifest\.json.*seal_checkpoint"):
        load_model(d)
    d = save_model(_model(), tmp_path / "m4")
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"m4/manifest\.json is not valid JSON"):
        load_model(d)
    (d / "manifest.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"m4/manifest\.json is not an xfuxi checkpoint"):
        load_model(d)
    # files that match their manifest but cannot be parsed (a writer's fault)
    src = save_model(_model(), tmp_path / "src")
    weights = (src / "model.safetensors").read_bytes()
    bad = _rewrite(src, tmp_path, "cut", **{"model.safetensors": weights[: len(weights) // 2]})
    with pytest.raises(CheckpointError, match=r"cut/model\.safetensors is not a readable safe"):
        load_model(bad)
    bad = _rewrite(src, tmp_path, "json", **{"config.json": b'{"format": '})
    with pytest.raises(CheckpointError, match=r"json/config\.json is not valid JSON"):
        load_model(bad)
    # a checkpoint of another kind
    from xfuxi.models.ens import PerturbationVAE, load_perturbation, save_perturbation

    vae = save_perturbation(PerturbationVAE(CHANNELS, (8, 16), hidden=4, latent=2), tmp_path / "v")
    with pytest.raises(CheckpointError, match="'perturbation' checkpoint without"):
        load_model(vae)
    with pytest.raises(CheckpointError, match="'forecast-model' checkpoint without"):
        load_perturbation(src)


def test_saving_is_one_unit_and_never_replaces_what_xfuxi_did_not_write(tmp_path, monkeypatch):
    import os

    from xfuxi.files import OutputExistsError

    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.txt").write_text("precious")
    with pytest.raises(OutputExistsError, match="not an xfuxi output"):
        save_model(_model(), user)
    assert (user / "thesis.txt").read_text() == "precious"
    d = save_model(_model(0), tmp_path / "m")
    with pytest.raises(OutputExistsError, match="overwrite"):
        save_model(_model(1), d)
    x = torch.randn(1, 2, 3, 8, 16)
    with torch.no_grad():
        before = load_model(d)(x)

    # a writer killed anywhere while writing the new checkpoint leaves the old one whole
    class Killed(BaseException):
        pass

    # each step publishes a file by a rename, or a new file by a hard link
    real = {"replace": os.replace, "link": os.link}
    for n in range(1, 5):  # manifest, marker, old aside, new in
        calls = []

        def dying(a, b, calls=calls, n=n, how="replace"):
            calls.append(a)
            if len(calls) == n:
                raise Killed
            return real[how](a, b)

        monkeypatch.setattr(os, "replace", dying)
        monkeypatch.setattr(os, "link", lambda a, b, d=dying: d(a, b, how="link"))
        with pytest.raises(Killed):
            save_model(_model(1), d, overwrite=True)
        monkeypatch.setattr(os, "replace", real["replace"])
        monkeypatch.setattr(os, "link", real["link"])
        with torch.no_grad():
            assert torch.equal(load_model(d)(x), before)
    save_model(_model(1), d, overwrite=True)
    with torch.no_grad():
        assert torch.equal(load_model(d)(x), _model(1).eval()(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "user"]  # no debris


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_normalization_stats_are_checked_wherever_they_enter(tmp_path, bad):
    """Issue 20 item 7: a zero (negative, NaN, inf) std is an error naming the channel."""
    good = dict(mean=np.zeros(3), std=np.ones(3), diff_std=np.ones(3))
    for key in ("std", "diff_std"):
        with pytest.raises(ValueError, match=rf"'{key}' of channel 1 .*positive and finite"):
            NormStats(**{**good, key: np.array([1.0, bad, 1.0])})
    if not np.isfinite(bad):
        with pytest.raises(ValueError, match="'mean' of channel 2 .*finite"):
            NormStats(**{**good, "mean": np.array([0.0, 0.0, bad])})
    # a checkpoint's statistics (the path that read them unchecked before)
    src = save_model(_model(), tmp_path / "src")
    config = json.loads((src / "config.json").read_text())
    config["stats"]["std"][1] = bad
    text = json.dumps(config).encode()
    d = _rewrite(src, tmp_path, "zero", **{"config.json": text})
    with pytest.raises(CheckpointError, match=r"zero/config\.json.*'std' of 'geopotential@500'"):
        load_model(d)
    with pytest.raises(ValueError, match="one length"):
        NormStats(np.zeros(3), np.ones(2), np.ones(3))


# ------------------------------------------------------------------- shipped checkpoints

#: the sha256 the registry recorded before the conversion to the verified store
#: (scripts/convert_checkpoints.py must have left every weights and config file unchanged)
BEFORE_CONVERSION = {
    "fuxi-hs-t21": ("b500d934b1d18f64", "5e31f1c002d4d300"),
    "fuxi-hs-t21-medium": ("a5e2bcb9c41ef91a", "a0398f67b787ee40"),
    "fuxi-hs-t21-da": ("143f0cbf78a7b7f8", "f4f8dc995fc1c222"),
}


def test_shipped_checkpoints_converted_byte_for_byte_and_verified():
    registry = ckpt.read_registry()
    for name, (weights, config) in BEFORE_CONVERSION.items():
        d = ckpt.PRETRAINED_DIR / name
        assert sha256_of(d / "model.safetensors").startswith(weights)
        assert sha256_of(d / "config.json").startswith(config)
        manifest = json.loads((d / "manifest.json").read_text())
        assert manifest["kind"] == "forecast-model"
        assert manifest["files"] == {
            k: v for k, v in registry[name]["sha256"].items() if k != "manifest.json"
        }
        assert registry[name]["sha256"]["manifest.json"] == sha256_of(d / "manifest.json")
        by_name, by_path = load_model(name), load_model(d)
        assert (
            by_name.config["sha256"]
            == by_path.config["sha256"]
            == sha256_of(d / "model.safetensors")
        )
    d = ckpt.PRETRAINED_DIR / "fuxi-ens-hs-t21"
    config = json.loads((d / "config.json").read_text())
    assert sha256_of(d / "weights.safetensors") == config["weights_sha256"]  # unchanged
    assert registry["fuxi-ens-hs-t21"]["kind"] == "perturbation"
    assert "fuxi-ens-hs-t21" not in xfuxi.pretrained_models()
    with pytest.raises(CheckpointError, match="shipped perturbation.*load_perturbation"):
        load_model("fuxi-ens-hs-t21")


def _convert_script():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "convert_checkpoints.py"
    spec = importlib.util.spec_from_file_location("convert_checkpoints", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conversion_of_a_legacy_checkpoint_is_exact(tmp_path):
    """The conversion adds a manifest to a checkpoint written without one, changing no file:
    the converted model forecasts bit-identically to the weights read from the old files."""
    from safetensors.torch import load_file

    model = _model().eval()
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name, data in ckpt.model_files(model).items():  # the old layout: two files
        (legacy / name).write_bytes(data)
    with pytest.raises(CheckpointError, match="no manifest"):
        load_model(legacy)
    before = {p.name: p.read_bytes() for p in legacy.iterdir()}
    expected = {name: sha256_of(legacy / name) for name in before}
    convert = _convert_script().convert
    with pytest.raises(CheckpointError, match="not converted"):
        convert(legacy, kind="forecast-model", expected={**expected, "config.json": "0" * 64})
    assert not (legacy / "manifest.json").exists()
    convert(legacy, kind="forecast-model", expected=expected)
    assert all((legacy / n).read_bytes() == b for n, b in before.items())
    loaded = load_model(legacy, device="cpu")
    old = _model()
    old.net.load_state_dict(load_file(str(legacy / "model.safetensors")))
    x = torch.randn(2, 2, 3, 8, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), old.eval()(x))
        assert torch.equal(loaded(x), model(x))


def test_single_time_input_ignores_the_earlier_time_and_survives_a_checkpoint(tmp_path):
    from xfuxi.models.base import with_single_time_input

    model = tiny.fuxi_model()
    one = with_single_time_input(model)
    assert model.input_times == 2 and "input_times" not in model.config  # unchanged
    assert one.input_times == 1 and one.name == "tiny-fuxi+1t"
    assert with_single_time_input(one).name == "tiny-fuxi+1t"  # once
    g = torch.Generator().manual_seed(0)
    x = model.denormalize(torch.randn(2, 2, len(tiny.CHANNELS), 8, 16, generator=g))
    other = x.clone()
    other[:, 0] = model.denormalize(torch.randn(2, len(tiny.CHANNELS), 8, 16, generator=g))
    same = torch.stack([x[:, 1], x[:, 1]], 1)
    with torch.no_grad():
        out = one(x)
        torch.testing.assert_close(one(other), out, rtol=0, atol=0)
        torch.testing.assert_close(model(same), out, rtol=0, atol=0)  # the net sees (t0, t0)
        assert not torch.allclose(model(x), out)  # the two-time model reads the earlier time
    back = load_model(save_model(one, tmp_path / "m"))
    assert back.input_times == 1
    with torch.no_grad():
        torch.testing.assert_close(back(other), out)
    assert "1 (t0 alone)" in back._repr_html_()
    two = load_model(save_model(model, tmp_path / "two"))  # a two-time checkpoint: no key
    assert two.input_times == 2
    assert "input_times" not in json.loads((tmp_path / "two" / "config.json").read_text())
    for bad in (3, True, "1"):
        with pytest.raises(ValueError, match=r"input_times.*must be 1 or 2; got"):
            ForecastModel(model.net, channels=model.channels, latitude=model.latitude,
                          longitude=model.longitude, config={"input_times": bad})  # fmt: skip
    with pytest.raises(TypeError, match="expected a ForecastModel"):
        with_single_time_input(torch.nn.Identity())


def test_check_plausible_names_a_missing_channel():
    """A missing level or variable raised a raw IndexError / KeyError."""
    from tests import tiny
    from xfuxi.data.schema import SchemaError
    from xfuxi.models.base import check_plausible

    model, ds = tiny.fuxi_model(), tiny.dataset()
    check_plausible(ds, model)
    with pytest.raises(SchemaError, match="lack level 850 hPa of 'temperature'"):
        check_plausible(ds.sel(level=[500]), model)
    with pytest.raises(SchemaError, match="lack the model's variable 'passive_tracer'"):
        check_plausible(ds.drop_vars("passive_tracer"), model)


@pytest.mark.parametrize(
    "lat, lon, match",
    [([60.0, 20.0, -20.0, -60.0], np.arange(8) * 45.0, "latitude .*60..-60.*south to north"),
     ([-60.0, 20.0, 20.0, 60.0], np.arange(8) * 45.0, "latitude .*south to north"),
     ([-60.0, -20.0, 20.0, 60.0], np.arange(8) * 45.0 - 180.0, r"longitude .*\[0, 360\)")],
)  # fmt: skip
def test_a_model_grid_must_run_south_to_north_with_longitudes_in_0_360(lat, lon, match):
    # a north-to-south latitude was accepted, and then every forecast failed
    with pytest.raises(ValueError, match=match):
        wrap_model(torch.nn.Identity(), channels=[("temperature", 500.0)], latitude=lat,
                   longitude=lon)  # fmt: skip
    with pytest.raises(ValueError, match=match):
        ForecastModel(torch.nn.Identity(), channels=[("temperature", 500.0)], latitude=lat,
                      longitude=lon)  # fmt: skip
