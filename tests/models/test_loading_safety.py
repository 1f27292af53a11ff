"""Loading checkpoints from untrusted directories: what a manifest or config may not do.

A checkpoint is verified against its ``manifest.json``, but anyone can rewrite a manifest with
matching sha256s: the names it lists, the config's sizes and types and the weights' values are
checked as well (docs/safety.md, "Checkpoints").
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest
import torch

from tests import tiny
from xfuxi.models.base import ForecastModel
from xfuxi.models.checkpoint import (
    CheckpointError,
    read_checkpoint,
    safetensors_bytes,
    save_model,
    tensors_from_bytes,
    write_checkpoint,
)
from xfuxi.models.ens import PerturbationVAE, load_perturbation, save_perturbation
from xfuxi.models.fuxi import FuXiNet, build_fuxi
from xfuxi.models.registry import load_model

CHANNELS = [("temperature", 850.0), ("temperature", 500.0)]


def _saved(tmp_path, name="m"):
    torch.manual_seed(0)
    net = build_fuxi("tiny", in_channels=2, grid=(8, 16))
    model = ForecastModel(net, channels=CHANNELS, latitude=tiny.LAT, longitude=tiny.LON)
    return save_model(model, tmp_path / name)


def _files(d):
    files = {p.name: p.read_bytes() for p in d.iterdir() if not p.name.startswith(".")}
    files.pop("manifest.json")
    return files


def _copy(d, tmp_path, name, kind="forecast-model", config=None, weights=None):
    """A copy of checkpoint ``d`` with a changed config (``config(c)`` edits it in place) or
    weights (``weights(state)`` edits them in place), its manifest consistent with them."""
    files = _files(d)
    if config is not None:
        c = json.loads(files["config.json"])
        config(c)
        files["config.json"] = json.dumps(c).encode()
    if weights is not None:
        wname = next(n for n in files if n.endswith(".safetensors"))
        state = tensors_from_bytes(files[wname], wname)
        weights(state)
        files[wname] = safetensors_bytes(state)
    return write_checkpoint(tmp_path / name, files, kind=kind)


def _list_in_manifest(d, name, sha):
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["files"][name] = sha
    (d / "manifest.json").write_text(json.dumps(manifest))


# -- 1. the manifest names files of the checkpoint only ---------------------------------------


def test_a_manifest_listing_files_outside_the_checkpoint_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("a colleague's private data\n")
    sha = hashlib.sha256(secret.read_bytes()).hexdigest()
    for i, (name, digest) in enumerate(
        [("../secret.txt", sha), (str(secret), "0" * 64), ("sub/../../secret.txt", sha)]
    ):
        d = _saved(tmp_path, f"m{i}")
        _list_in_manifest(d, name, digest)
        with pytest.raises(CheckpointError, match="not a plain file name") as err:
            read_checkpoint(d)
        assert repr(name) in str(err.value) and sha[:16] not in str(err.value)
        with pytest.raises(CheckpointError, match="not a plain file name"):
            load_model(d)


def test_a_manifest_entry_that_is_a_link_is_not_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("a colleague's private data\n")
    d = _saved(tmp_path)
    (d / "notes.txt").symlink_to(secret)
    _list_in_manifest(d, "notes.txt", hashlib.sha256(secret.read_bytes()).hexdigest())
    with pytest.raises(CheckpointError, match=r"notes\.txt.* is a link"):
        read_checkpoint(d)
    d2 = _saved(tmp_path, "m2")  # the weights themselves replaced by a link
    target = tmp_path / "elsewhere.safetensors"
    (d2 / "model.safetensors").rename(target)
    (d2 / "model.safetensors").symlink_to(target)
    with pytest.raises(CheckpointError, match=r"model\.safetensors.* is a link"):
        load_model(d2)


# -- 2. non-finite weights ---------------------------------------------------------------------


def _poison(key_part, value):
    def edit(state):
        key = next(k for k in sorted(state) if key_part in k and state[k].is_floating_point())
        state[key].view(-1)[0] = value

    return edit


def test_non_finite_weights_are_refused_naming_the_file_and_tensor(tmp_path):
    d = _copy(_saved(tmp_path), tmp_path, "nan", weights=_poison("head", float("nan")))
    with pytest.raises(
        CheckpointError, match=r"nan/model\.safetensors: tensor 'head\.\w+' holds NaN"
    ):
        load_model(d)
    vae = PerturbationVAE(CHANNELS, (8, 16), hidden=4, latent=2)
    v = save_perturbation(vae, tmp_path / "v")
    bad = _copy(v, tmp_path, "vinf", kind="perturbation", weights=_poison("decoder", float("inf")))
    with pytest.raises(CheckpointError, match=r"vinf/weights\.safetensors: tensor 'decoder"):
        load_perturbation(bad)


def test_non_finite_weights_of_a_da_model_are_refused(tmp_path):
    from tests.models.test_fuxi_da import tiny_da_model
    from xfuxi.models.fuxi_da import load_da_model, save_da_model

    d = save_da_model(tiny_da_model(), tmp_path / "da")
    bad = _copy(d, tmp_path, "dnan", kind="da-model", weights=_poison("fusion", float("-inf")))
    with pytest.raises(CheckpointError, match=r"dnan/model\.safetensors: tensor 'fusion"):
        load_da_model(bad)


def test_onnx_initializers_that_are_not_finite_are_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from xfuxi.models.onnx import _onnx2torch, import_onnx

    try:
        _onnx2torch()
    except ImportError:
        pytest.skip("onnx2torch is not installed")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 2, 2, 8, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 2, 8, 16])
    w = numpy_helper.from_array(np.array([1.0, np.nan], dtype=np.float32).reshape(2, 1, 1), "w")
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=0),
        helper.make_node("Mul", ["m", "w"], ["y"]),
    ]
    proto = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 13)]
    )
    onnx.save(proto, tmp_path / "nan.onnx")
    with pytest.raises(CheckpointError, match=r"nan\.onnx: initializer 'w' holds NaN"):
        import_onnx(tmp_path / "nan.onnx", channels=CHANNELS, latitude=tiny.LAT,
                    longitude=tiny.LON)  # fmt: skip


# -- 3. sizes in a config are compared with the weights before anything is built ---------------


def _net(key, value, groups=False):
    def edit(c):
        c["net"][key] = value
        if groups:
            c["net"]["num_groups"] = 1

    return edit


@pytest.mark.parametrize(
    "key, value",
    [("embed_dim", 10**9), ("embed_dim", 4096), ("depth", 10**6), ("num_heads", 8)],
)
def test_a_config_declaring_huge_sizes_fails_fast(tmp_path, key, value):
    d = _copy(_saved(tmp_path), tmp_path, "big", config=_net(key, value, key == "embed_dim"))
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"big(/config\.json)?: "):
        load_model(d)
    assert time.perf_counter() - start < 2.0


def test_a_perturbation_or_da_config_declaring_huge_sizes_fails_fast(tmp_path):
    from tests.models.test_fuxi_da import tiny_da_model
    from xfuxi.models.fuxi_da import load_da_model, save_da_model

    v = save_perturbation(PerturbationVAE(CHANNELS, (8, 16), hidden=4, latent=2), tmp_path / "v")
    d = save_da_model(tiny_da_model(), tmp_path / "da")
    cases = [
        (v, "perturbation", lambda c: c.update(hidden=10**9), load_perturbation),
        (v, "perturbation", lambda c: c.update(hidden=6000), load_perturbation),
        (d, "da-model", lambda c: c["net"].update(width=10**9), load_da_model),
        (d, "da-model", lambda c: c["net"].update(scales=10**6), load_da_model),
    ]
    for i, (src, kind, edit, load) in enumerate(cases):
        bad = _copy(src, tmp_path, f"big{i}", kind=kind, config=edit)
        start = time.perf_counter()
        with pytest.raises(CheckpointError, match=rf"big{i}(/config\.json)?: "):
            load(bad)
        assert time.perf_counter() - start < 2.0, i


def test_weights_that_fit_are_loaded_as_before(tmp_path):
    torch.manual_seed(0)
    net = build_fuxi("tiny", in_channels=2, grid=(8, 16))
    model = ForecastModel(net, channels=CHANNELS, latitude=tiny.LAT, longitude=tiny.LON).eval()
    back = load_model(save_model(model, tmp_path / "m"), device="cpu", dtype="float32")
    x = torch.randn(1, 2, 2, 8, 16)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


# -- 4. types of the network's arguments ------------------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [
        ("embed_dim", 16.7),
        ("embed_dim", "16"),
        ("depth", True),
        ("mlp_ratio", "2.0"),
        ("window_size", "22"),
        ("patch_size", [2.0, 2]),
        ("num_groups", 0),
    ],
)
def test_wrong_types_in_the_net_config_name_the_file_and_entry(tmp_path, key, value):
    d = _copy(_saved(tmp_path), tmp_path, "typ", config=_net(key, value))
    with pytest.raises(CheckpointError, match=rf"typ/config\.json: .*{key}") as err:
        load_model(d)
    assert "newer xfuxi" not in str(err.value)


def test_fuxinet_checks_its_arguments():
    with pytest.raises(TypeError, match="window_size"):
        FuXiNet(2, (8, 16), embed_dim=16, num_groups=1, window_size="22")
    with pytest.raises(TypeError, match="embed_dim"):
        FuXiNet(2, (8, 16), embed_dim=16.0, num_groups=1)
    net = FuXiNet(2, (8, 16), embed_dim=16, num_groups=1, depth=1, num_heads=2, window_size=2)
    assert net.window_size == (2, 2)


def test_an_option_of_a_newer_xfuxi_is_named(tmp_path):
    d = _copy(_saved(tmp_path), tmp_path, "new", config=_net("new_option", 1))
    with pytest.raises(CheckpointError, match=r"no options \['new_option'\].*newer xfuxi"):
        load_model(d)


# -- 5. booleans are JSON booleans -------------------------------------------------------------


def test_false_as_a_string_is_refused(tmp_path):
    d = _copy(_saved(tmp_path), tmp_path, "gc", config=_net("grad_checkpointing", "false"))
    with pytest.raises(CheckpointError, match=r"gc/config\.json: .*grad_checkpointing"):
        load_model(d)
    v = save_perturbation(PerturbationVAE(CHANNELS, (8, 16), hidden=4, latent=2), tmp_path / "v")
    for value in ("false", 0):
        bad = _copy(v, tmp_path, f"c{value}", kind="perturbation",
                    config=lambda c, value=value: c.update(centered=value))  # fmt: skip
        with pytest.raises(CheckpointError, match=rf"c{value}/config\.json: .*'centered'"):
            load_perturbation(bad)
    ok = _copy(
        v, tmp_path, "cfalse2", kind="perturbation", config=lambda c: c.update(centered=False)
    )
    assert load_perturbation(ok).config["centered"] is False
    with pytest.raises(TypeError, match="centered"):
        PerturbationVAE(CHANNELS, (8, 16), hidden=4, latent=2, centered="false")


# -- 6. channels are unique --------------------------------------------------------------------


def test_duplicated_channels_are_refused(tmp_path):
    net = build_fuxi("tiny", in_channels=2, grid=(8, 16))
    with pytest.raises(ValueError, match=r"unique.*temperature@850"):
        ForecastModel(net, channels=[CHANNELS[0]] * 2, latitude=tiny.LAT, longitude=tiny.LON)
    twice = ["temperature@850", "temperature@850"]
    d = _copy(_saved(tmp_path), tmp_path, "dup", config=lambda c: c.update(channels=twice))
    with pytest.raises(CheckpointError, match=r"dup/config\.json: channels must be unique"):
        load_model(d)


# -- 7. unknown entries warn; a shipped name shadows a local directory, with a warning ---------


def test_unknown_config_entries_are_named_in_a_warning(tmp_path, recwarn):
    d = _saved(tmp_path)
    load_model(d)  # a config this xfuxi wrote: no warning
    load_perturbation(save_perturbation(PerturbationVAE(CHANNELS, (8, 16), hidden=4, latent=2),
                                        tmp_path / "v"))  # fmt: skip
    load_model("fuxi-hs-t21")
    load_perturbation("fuxi-ens-hs-t21")
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    newer = _copy(d, tmp_path, "newer", config=lambda c: c.update(output_scale=0.5))
    with pytest.warns(UserWarning, match=r"newer/config\.json: unknown entry 'output_scale'"):
        load_model(newer)
    v = _copy(tmp_path / "v", tmp_path, "vnew", kind="perturbation",
              config=lambda c: c.update(new_option=1))  # fmt: skip
    with pytest.warns(UserWarning, match=r"vnew/config\.json: unknown entry 'new_option'"):
        load_perturbation(v)


def test_a_shipped_name_loads_the_shipped_model_and_warns_of_a_local_directory(
    tmp_path, monkeypatch
):
    import warnings

    from xfuxi.models.checkpoint import PRETRAINED_DIR

    monkeypatch.chdir(tmp_path)
    _saved(tmp_path, "fuxi-hs-t21")  # a user's own model, named like the shipped one
    with pytest.warns(UserWarning, match=r"'fuxi-hs-t21' is a shipped name .*fuxi-hs-t21'\)"):
        model = load_model("fuxi-hs-t21")
    assert model.config["source"] == str(PRETRAINED_DIR / "fuxi-hs-t21")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model("fuxi-hs-t21")  # warned once
    assert load_model("./fuxi-hs-t21").config["source"] == "fuxi-hs-t21"


def test_a_load_does_not_count_the_parameters_other_threads_make(tmp_path):
    """The meta-device build counts parameters with a process-wide hook: parameters made by
    another thread meanwhile were counted (the load refused as "far more parameters") and
    that thread got the private exception from a plain nn.Linear."""
    import threading

    from safetensors.torch import save

    from xfuxi.models.checkpoint import build_for_weights

    data = save({k: v.contiguous() for k, v in torch.nn.Linear(2, 2).state_dict().items()})
    errors = []

    def elsewhere():
        try:
            for _ in range(200):
                torch.nn.Linear(2, 2)
        except BaseException as err:  # noqa: BLE001 (what the other thread got)
            errors.append(err)

    def build():
        other = threading.Thread(target=elsewhere)
        other.start()
        other.join()
        return torch.nn.Linear(2, 2)

    net = build_for_weights(build, data, tmp_path / "model.safetensors")
    assert isinstance(net, torch.nn.Linear) and errors == []


def test_networks_build_without_torch_get_default_device(monkeypatch):
    """torch.get_default_device is torch >= 2.3; xfuxi allows torch >= 2.2."""
    from xfuxi.models.fuxi import build_fuxi

    monkeypatch.delattr(torch, "get_default_device", raising=False)
    net = build_fuxi("tiny", in_channels=3, grid=(8, 16))
    assert all(b.device.type == "cpu" for b in net.buffers())
    meta = build_fuxi("tiny", in_channels=3, grid=(8, 16), device="meta")
    assert all(b.device.type == "meta" for b in meta.buffers())


def test_da_switches_must_be_json_booleans(tmp_path):
    """'false' read as true: a FuXi-DA network's input switches were bool() of the entry."""
    from tests.models.test_fuxi_da import tiny_da_model
    from xfuxi.models.fuxi_da import load_da_model, save_da_model

    d = save_da_model(tiny_da_model(), tmp_path / "da")
    bad = _copy(
        d, tmp_path, "flag", kind="da-model", config=lambda c: c.update(zenith_input="false")
    )
    with pytest.raises(CheckpointError, match="'zenith_input' must be true or false"):
        load_da_model(bad)
    assert load_da_model(d).zenith_input in (True, False)


def test_unknown_da_config_entries_are_named_in_a_warning(tmp_path, recwarn):
    from tests.models.test_fuxi_da import tiny_da_model
    from xfuxi.models.fuxi_da import load_da_model, save_da_model, shipped_da_models

    d = save_da_model(tiny_da_model(), tmp_path / "da")
    load_da_model(d)  # a config this xfuxi wrote: no warning
    for name in shipped_da_models():
        load_da_model(name)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    newer = _copy(d, tmp_path, "dnew", kind="da-model",
                  config=lambda c: c.update(cloud_input=True))  # fmt: skip
    with pytest.warns(UserWarning, match=r"dnew/config\.json: unknown entry 'cloud_input'"):
        load_da_model(newer)


def test_latitudes_written_as_strings_are_refused(tmp_path):
    """'-78.75' was converted to a number silently; a config lists numbers."""
    from tests.models.test_fuxi_da import tiny_da_model
    from xfuxi.models.fuxi_da import load_da_model, save_da_model

    d = _saved(tmp_path)
    text = _copy(
        d, tmp_path, "slat", config=lambda c: c.update(latitude=[str(v) for v in c["latitude"]])
    )
    with pytest.raises(CheckpointError, match=r"slat/config\.json: entry 'latitude' must be"):
        load_model(text)
    da = save_da_model(tiny_da_model(), tmp_path / "da")
    bad = _copy(da, tmp_path, "dlon", kind="da-model",
                config=lambda c: c.update(longitude=[True] * len(c["longitude"])))  # fmt: skip
    with pytest.raises(CheckpointError, match=r"dlon/config\.json: entry 'longitude' must be"):
        load_da_model(bad)
    for unset in ("latitude", "longitude"):
        gone = _copy(da, tmp_path, f"no{unset}", kind="da-model",
                     config=lambda c, unset=unset: c.pop(unset))  # fmt: skip
        with pytest.raises(CheckpointError, match=rf"lacks the entry '{unset}'"):
            load_da_model(gone)


def test_the_known_da_entries_are_those_a_da_model_writes():
    """DA_ENTRIES is written by hand: an entry added to config_dict must be added there,
    or every load of a new checkpoint would warn of it."""
    from tests.models.test_fuxi_da import tiny_da_model
    from xfuxi.models.fuxi_da import DA_ENTRIES

    model = tiny_da_model()
    model.linear_update = True  # the one entry written only when set
    assert set(model.config_dict()) == set(DA_ENTRIES)
