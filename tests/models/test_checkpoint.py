"""Tests of forecast-model checkpoints and the pretrained registry (xfuxi.models.checkpoint)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xfuxi
from xfuxi.data.schema import SchemaError
from xfuxi.models import checkpoint as ckpt
from xfuxi.models.base import ForecastModel, NormStats, wrap_model
from xfuxi.models.checkpoint import ChecksumError, save_model
from xfuxi.models.fuxi import build_fuxi
from xfuxi.models.registry import load_model, register_pretrained

LAT = np.linspace(-78.75, 78.75, 8)
LON = np.arange(16) * 22.5
CHANNELS = [("temperature", 850.0), ("geopotential", 500.0), ("surface_pressure", None)]


def _model(seed: int = 0) -> ForecastModel:
    torch.manual_seed(seed)
    net = build_fuxi("tiny", in_channels=3, grid=(8, 16))
    for p in net.parameters():  # move away from the init so that a wrong load would show
        p.data += 0.01 * torch.randn_like(p)
    rng = np.random.default_rng(seed)
    stats = NormStats(rng.normal(size=3), 1 + rng.random(3), 0.1 + rng.random(3))
    return ForecastModel(net, channels=CHANNELS, latitude=LAT, longitude=LON, stats=stats,
                         name="t", config={"preset": "tiny"})  # fmt: skip


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
    assert loaded.config["sha256"] == ckpt._sha256(d / "model.safetensors")
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.safetensors"]


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
    with pytest.raises(SchemaError, match="level 850"):
        xfuxi.forecast(ds, model=model, steps=1)
    ds = xr.concat([ds, ds.assign_coords(level=[850])], "level", data_vars="minimal")
    ds = ds.assign_coords(level=[500, 850])
    assert xfuxi.forecast(ds, model=model, steps=1, progress=False).sizes["level"] == 2
    with pytest.raises(SchemaError, match="latitude"):
        xfuxi.forecast(ds.isel(latitude=slice(0, 4)), model=model, steps=1)
    with pytest.raises(SchemaError, match="longitude"):
        xfuxi.forecast(ds.assign_coords(longitude=LON + 1.0), model=model, steps=1)


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a shipped name"):
        load_model(tmp_path / "nothing")
    d = save_model(_model(), tmp_path / "m")
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "format": "pickle"}))
    with pytest.raises(ValueError, match="not a forecast-model checkpoint"):
        load_model(d)
    config["net"]["embed_dim"] = 32
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="weights do not fit"):
        load_model(d)
    with pytest.raises(TypeError, match="cannot save"):
        save_model(wrap_model(torch.nn.Identity(), channels=CHANNELS, latitude=LAT,
                              longitude=LON), tmp_path / "w")  # fmt: skip


def test_registry_checks_sha256(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "PRETRAINED_DIR", tmp_path)
    src = save_model(_model(), tmp_path / "src")
    entry = register_pretrained("demo", source=src, description="test")
    assert set(entry["sha256"]) == {"model.safetensors", "config.json"}
    assert xfuxi.pretrained_models() == ["demo"]
    model = load_model("demo")
    assert model.name == "demo" and model.config["sha256"] == entry["sha256"]["model.safetensors"]
    weights = tmp_path / "demo" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="model.safetensors"):
        load_model("demo")


def test_shipped_model_is_registered_small_and_loads():
    assert "fuxi-hs-t21" in xfuxi.pretrained_models()
    d = ckpt.PRETRAINED_DIR / "fuxi-hs-t21"
    assert (d / "model.safetensors").stat().st_size < 20e6
    model = xfuxi.load_model("fuxi-hs-t21")
    assert isinstance(model, ForecastModel) and not model.training
    assert model.grid_shape == (32, 64)
    assert ("geopotential", 500.0) in model.channels and ("temperature", 850.0) in model.channels
    assert model.residual and model.timestep_hours == 6.0
