"""Round trip of a small xfuxi model through ONNX (xfuxi.models.onnx)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from tests import tiny
from xfuxi.forecasting.deterministic import forecast
from xfuxi.models.base import ForecastModel, NormStats
from xfuxi.models.onnx import _onnx2torch, export_onnx, import_onnx

try:
    _onnx2torch()
except ImportError as err:  # optional extra: onnx + onnx2torch (installed with --no-deps)
    pytest.skip(f"ONNX support not installed: {err}", allow_module_level=True)

LAT, LON = tiny.LAT, tiny.LON
CHANNELS = [("temperature", 500.0), ("temperature", 850.0)]


@pytest.fixture(scope="module")
def original() -> ForecastModel:
    stats = NormStats(np.array([250.0, 270.0]), np.array([5.0, 6.0]), np.array([1.0, 1.5]))
    return tiny.fuxi_model(CHANNELS, stats=stats, name="model").eval()


def test_round_trip_same_outputs_and_differentiable(original, tmp_path):
    path = export_onnx(original, tmp_path / "fuxi.onnx")
    model = import_onnx(path, channels=CHANNELS, latitude=LAT, longitude=LON,
                        stats=original.stats, residual=True)  # fmt: skip
    assert model.name == "fuxi"
    x = (torch.randn(3, 2, 2, 8, 16) * 5 + 260).requires_grad_(True)
    with torch.no_grad():
        ref = original(x)
    y = model(x)
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-3)
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_imported_model_forecasts_like_the_original(original, tmp_path):
    path = export_onnx(original, tmp_path / "m.onnx")
    model = import_onnx(path, channels=CHANNELS, latitude=LAT, longitude=LON,
                        stats=original.stats, residual=True)  # fmt: skip
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"),
                         260 + 5 * rng.standard_normal((2, 2, 8, 16)))},
        coords={"time": pd.date_range("2000-01-01", periods=2, freq="6h"), "level": [500, 850],
                "latitude": LAT, "longitude": LON},
    )  # fmt: skip
    a = forecast(ds, model=original, steps=3, progress=False)
    b = forecast(ds, model=model, steps=3, progress=False)
    xr.testing.assert_allclose(a.drop_attrs(), b.drop_attrs(), rtol=1e-4, atol=1e-2)


def test_bad_graph_is_a_clear_error(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["c"])], "g", [a, b], [c])
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ValueError, match="one input"):
        import_onnx(path, channels=CHANNELS, latitude=LAT, longitude=LON)


def test_layout_keywords_are_those_of_wrap_model(original, tmp_path):
    path = export_onnx(original, tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="channels"):
        import_onnx(path, latitude=LAT, longitude=LON)
    with pytest.raises(TypeError, match="timestep"):
        import_onnx(path, channels=CHANNELS, latitude=LAT, longitude=LON, timestep=3)
    model = import_onnx(path, name="mine", channels=CHANNELS, latitude=LAT, longitude=LON)
    # residual is the exported model's (recorded in the file), no longer False by default
    assert (model.name, model.residual, model.channels) == ("mine", True, tuple(CHANNELS))


def test_export_never_replaces_a_file_it_did_not_write(original, tmp_path):
    target = tmp_path / "mine.onnx"
    target.write_text("precious")
    for overwrite in (False, True):  # a user's file: not even with overwrite=True
        with pytest.raises(FileExistsError, match="not written by xfuxi.export_onnx"):
            export_onnx(original, target, overwrite=overwrite)
    assert target.read_text() == "precious"
    own = export_onnx(original, tmp_path / "own.onnx")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_onnx(original, own)
    export_onnx(original, own, overwrite=True)  # its own earlier export: replaced
    assert own.stat().st_size > 100


def test_a_model_that_does_more_than_its_network_is_refused(original, tmp_path):
    """The output filter and a single input time were lost silently (24 K off with a T5
    filter, 3.2 with one input time)."""
    from xfuxi.models.base import with_single_time_input
    from xfuxi.models.spectral import with_spectral_filter

    for wrapped, match in ((with_spectral_filter(original, 3), "an output filter"),
                           (with_single_time_input(original), "one input time")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            export_onnx(wrapped, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


# --- audit 46 ----------------------------------------------------------------------------


def _without_metadata(path):
    """The exported graph as a file of another exporter (no xfuxi properties)."""
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    return proto


def test_layout_is_checked_against_the_graphs_input_shape(original, tmp_path):
    """Channels and grid were not compared with the graph's static input shape."""
    from onnx import TensorProto, helper

    proto = _without_metadata(export_onnx(original, tmp_path / "m.onnx"))
    three = CHANNELS + [("temperature", 250.0)]
    for kw, match in (({"channels": three}, r"3 channels.*graph takes 2"),
                      ({"latitude": LAT[:-1]}, r"7 latitudes.*graph takes 8"),
                      ({"longitude": LON[:-2]}, r"14 longitudes.*graph takes 16")):  # fmt: skip
        layout = {"channels": CHANNELS, "latitude": LAT, "longitude": LON, **kw}
        with pytest.raises(ValueError, match=match):
            import_onnx(proto, **layout)
    # a graph of another rank, or of one input time
    for shape, match in (([1, 2, 8, 16], "rank 5"), (["b", 1, 2, 8, 16], "2 input times")):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
        with pytest.raises(ValueError, match=match):
            import_onnx(helper.make_model(graph), channels=CHANNELS, latitude=LAT, longitude=LON)
    # dynamic dimensions are not checked
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 2, "c", "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model = import_onnx(proto, channels=three, latitude=LAT, longitude=LON)
    assert model.n_channels == 3


def test_bad_export_and_import_arguments_are_named(original, tmp_path):
    for kw, match in (({"batch_size": 0}, "batch_size"), ({"batch_size": 2.5}, "batch_size"),
                      ({"batch_size": True}, "batch_size"), ({"opset": "x"}, "opset"),
                      ({"opset": 3}, "opset")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            export_onnx(original, tmp_path / "m.onnx", **kw)
    with pytest.raises(FileNotFoundError, match=r"directory of .*missing.* does not exist"):
        export_onnx(original, tmp_path / "missing" / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with pytest.raises(TypeError, match="ForecastModel"):
        import_onnx(original, channels=CHANNELS, latitude=LAT, longitude=LON)


def test_export_needs_onnx_only(original, tmp_path, monkeypatch):
    """export_onnx required onnx2torch, which only import_onnx uses."""
    import xfuxi.models.onnx as module

    def missing():
        raise ImportError("no onnx2torch here")

    monkeypatch.setattr(module, "_onnx2torch", missing)
    assert export_onnx(original, tmp_path / "m.onnx").stat().st_size > 100


def test_the_layout_travels_with_the_file(original, tmp_path):
    """A residual model imported without residual=True forecast wrongly, silently."""
    from xfuxi.models.base import ForecastModel as FM

    twelve = FM(original.net, channels=CHANNELS, latitude=LAT, longitude=LON,
                stats=original.stats, timestep_hours=12.0, name="m12").eval()  # fmt: skip
    path = export_onnx(twelve, tmp_path / "m.onnx")
    model = import_onnx(path, channels=CHANNELS, latitude=LAT, longitude=LON,
                        stats=original.stats)  # fmt: skip
    assert model.residual and model.timestep_hours == 12.0
    x = torch.randn(2, 2, 2, 8, 16) * 5 + 260
    with torch.no_grad():
        torch.testing.assert_close(model(x), twelve(x), rtol=1e-4, atol=1e-3)
    for kw, match in (({"residual": False}, "residual=True"),
                      ({"channels": CHANNELS[::-1]}, "channels"),
                      ({"longitude": LON + 1.0}, "longitude")):  # fmt: skip
        layout = {"channels": CHANNELS, "latitude": LAT, "longitude": LON, **kw}
        with pytest.raises(ValueError, match=match):
            import_onnx(path, **layout)
    # a file without the metadata (another exporter) imports as before
    bare = import_onnx(_without_metadata(path), channels=CHANNELS, latitude=LAT,
                       longitude=LON)  # fmt: skip
    assert not bare.residual and bare.timestep_hours == 6.0


def test_unreadable_files_and_malformed_layouts_are_named(original, tmp_path):
    """A truncated file gave protobuf's raw DecodeError (no path), a layout property of the
    wrong types a raw TypeError."""
    import onnx

    path = export_onnx(original, tmp_path / "m.onnx")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cut\.onnx is not a readable ONNX model"):
        import_onnx(cut, channels=CHANNELS, latitude=LAT, longitude=LON)
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        import_onnx(tmp_path / "none.onnx", channels=CHANNELS, latitude=LAT, longitude=LON)
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {"xfuxi_layout": json.dumps({"channels": 3})})
    with pytest.raises(ValueError, match="'xfuxi_layout' is malformed"):
        import_onnx(proto, channels=CHANNELS, latitude=LAT, longitude=LON)
