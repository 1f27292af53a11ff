"""Bring your own model from ONNX: import it as a differentiable torch module.

:func:`import_onnx` converts an ONNX graph into a ``torch.nn.Module`` with ``onnx2torch`` and
wraps it into the xfuxi call contract (:func:`~xfuxi.models.base.wrap_model`), so forecast,
ensembles and 4DVar (which differentiates through the model) can use it. :func:`export_onnx`
writes the network of a :class:`~xfuxi.models.base.ForecastModel` to ONNX (normalised tensors
in and out), e.g. to run it elsewhere or to round-trip it.

Install the optional pieces with ``pip install onnx`` and ``pip install --no-deps onnx2torch``
(without ``--no-deps`` pip would replace the installed torch). ``onnx2torch`` imports
``torchvision`` for two detection operators (NonMaxSuppression, RoiAlign); where torchvision
is absent they are replaced by stand-ins that raise a clear error if such a graph is
converted, so every other operator still works.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import is_integer
from ..files import atomic_write_file, check_file_replaceable
from .base import ForecastModel, _positive_hours, wrap_model

__all__ = ["export_onnx", "import_onnx"]


def _missing_torchvision(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError(
        "this ONNX graph uses a detection operator (NonMaxSuppression / RoiAlign) that "
        "onnx2torch implements with torchvision, which is not installed"
    )


def _onnx() -> Any:
    """Import onnx (all that :func:`export_onnx` needs), with a clear error without it."""
    try:
        import onnx
    except ImportError as err:
        raise ImportError("ONNX support needs the 'onnx' package: pip install onnx") from err
    return onnx


def _onnx2torch() -> Any:
    """Import onnx2torch, standing in for torchvision if it is not installed."""
    _onnx()
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    if importlib.util.find_spec("onnx2torch") is None:
        raise ImportError(
            "ONNX import needs onnx2torch: pip install --no-deps onnx2torch "
            "(--no-deps keeps the installed torch)"
        )
    stub = None
    if importlib.util.find_spec("torchvision") is None:
        stub = types.ModuleType("torchvision")
        ops = types.ModuleType("torchvision.ops")
        ops.nms = ops.box_convert = ops.roi_align = _missing_torchvision  # type: ignore[attr-defined]
        stub.ops = ops  # type: ignore[attr-defined]
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = stub, ops
    try:
        import onnx2torch
    finally:
        if stub is not None:  # do not leave the stand-in visible to other code
            sys.modules.pop("torchvision", None)
            sys.modules.pop("torchvision.ops", None)
    return onnx2torch


def export_onnx(
    model: ForecastModel,
    path: str | os.PathLike[str],
    *,
    batch_size: int = 1,
    opset: int = 16,
    overwrite: bool = False,
) -> Path:
    """Write a model's network (normalised ``(B, 2, C, H, W) → (B, C, H, W)``) to ONNX.

    Parameters
    ----------
    model : ForecastModel
    path : path-like
        Output ``.onnx`` file (written atomically).
    batch_size : int, default 1
        Batch size of the traced example (the batch axis is exported as dynamic).
    opset : int, default 16
        ONNX opset. 16 writes layer norms as elementary operators, which onnx2torch
        converts for any batch size (its converter of opset 17's LayerNormalization needs
        static shapes).
    overwrite : bool, default False
        Replace an earlier file of ``export_onnx`` at ``path`` (it records itself in the
        model's properties); any other file is never replaced, not even with ``overwrite``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TypeError
        ``model`` is not a ForecastModel.
    ValueError
        The model does more than its network: an output filter
        (:func:`xfuxi.with_spectral_filter`) or one input time
        (:func:`xfuxi.with_single_time_input`), which the exported network would not do
        and :func:`import_onnx` cannot restore; or ``batch_size`` is not a positive
        integer, or ``opset`` not an integer opset that torch exports.
    FileNotFoundError
        The folder of ``path`` does not exist.
    ImportError
        ``onnx`` is not installed (``onnx2torch`` is needed by :func:`import_onnx` only).

    Notes
    -----
    Only the network is exported, on normalised tensors: it maps the normalised inputs to
    the normalised tendency (``residual=True``, the default of FuXi models) or to the
    normalised next state (``residual=False``), and the normalization statistics stay in
    xfuxi's checkpoint (pass them as ``stats`` to :func:`import_onnx`). The layout (channels,
    latitude, longitude, ``residual`` and the time step) is recorded in the ONNX model's
    properties (``metadata_props``, key ``xfuxi_layout``, JSON): :func:`import_onnx` takes
    ``residual`` and the time step from it and refuses a channel list or grid that
    contradicts it. A graph imported with the wrong ``residual`` forecasts wrongly, without
    any error, so pass ``residual`` to :func:`import_onnx` for files of other exporters.
    """
    if not isinstance(model, ForecastModel):
        raise TypeError(f"expected a ForecastModel; got {type(model).__name__}")
    if not is_integer(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    low, high = _opsets()
    if not is_integer(opset) or opset < low or (high is not None and opset > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"opset must be an integer ONNX opset ({span}); got {opset!r}")
    extra = [
        what
        for what, present in (
            ("an output filter (with_spectral_filter)", getattr(model, "output_filter", None)),
            ("one input time (with_single_time_input)", model.input_times != 2),
        )
        if present
    ]
    if extra:  # an imported network forecast otherwise (24 K off with a T5 filter)
        raise ValueError(
            f"model {model.name!r} has {' and '.join(extra)}, which only its network would "
            "be exported without; export the model it wraps, or keep xfuxi's checkpoint"
        )
    onnx = _onnx()
    net = model.net
    # the example's device and dtype: those of the network's first floating parameter or
    # buffer; a network without any (persistence, advection) traces on float32 on the CPU
    # (a bare StopIteration before)
    first = next(
        (t for t in itertools.chain(net.parameters(), net.buffers()) if t.is_floating_point()),
        None,
    )
    dtype = torch.float32 if first is None else first.dtype
    device = torch.device("cpu") if first is None else first.device
    x = torch.zeros(int(batch_size), 2, model.n_channels, *model.grid_shape, dtype=dtype)
    out = Path(path).expanduser()
    replacing = check_file_replaceable(
        out, overwrite=overwrite, writer=ONNX_WRITER, ours=_written_by_us
    )
    if not out.parent.is_dir():  # said before the export, not as its temporary's error
        raise FileNotFoundError(f"the directory of {str(out)!r} does not exist")
    layout = {
        "channels": [list(c) for c in model.channels],
        "latitude": model.latitude.tolist(),
        "longitude": model.longitude.tolist(),
        "residual": bool(model.residual),
        "timestep_hours": float(model.timestep_hours),
    }

    def write(tmp: Path) -> None:
        torch.onnx.export(
            net,
            (x.to(device),),
            str(tmp),
            dynamo=False,
            opset_version=int(opset),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
        graph = onnx.load(str(tmp))  # mark the file as this function's, for overwrite=True
        onnx.helper.set_model_props(
            graph, {"xfuxi_writer": ONNX_WRITER, LAYOUT_KEY: json.dumps(layout)}
        )
        onnx.save(graph, str(tmp))

    was_training = net.training
    try:
        net.eval()
        atomic_write_file(out, write, replacing=replacing)
    finally:
        net.train(was_training)
    return out


#: what export_onnx records in its files (a model property), so that it replaces only its own
ONNX_WRITER = "xfuxi.export_onnx"
#: the model property holding the exported model's layout (JSON)
LAYOUT_KEY = "xfuxi_layout"


def _opsets() -> tuple[int, int | None]:
    """The ONNX opsets torch's exporter writes: (lowest, highest or None if unknown)."""
    try:
        from torch.onnx import _constants

        return int(_constants.ONNX_MIN_OPSET), int(_constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    except (ImportError, AttributeError):  # a private module: its names may change
        return 7, None


def _static_dims(value_info: Any) -> list[int | None] | None:
    """The dimensions of a graph input or output (None where dynamic), or None if unknown."""
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]


def _check_input_shape(value_info: Any, layout: dict[str, Any]) -> None:
    """Refuse a graph whose static input shape contradicts ``(B, 2, C, H, W)`` of ``layout``."""
    dims = _static_dims(value_info)
    if dims is None:
        return
    if len(dims) != 5:
        raise ValueError(
            f"the ONNX graph's input {value_info.name!r} has rank {len(dims)} (shape "
            f"{dims}); xfuxi models take rank 5 (batch, 2 input times, channels, latitude, "
            "longitude)"
        )
    if dims[1] is not None and dims[1] != 2:
        raise ValueError(
            f"the ONNX graph's input {value_info.name!r} takes {dims[1]} input times (shape "
            f"{dims}); xfuxi models take 2 input times (batch, 2, channels, latitude, "
            "longitude)"
        )
    for dim, key, what in ((dims[2], "channels", "channels"), (dims[3], "latitude", "latitudes"),
                           (dims[4], "longitude", "longitudes")):  # fmt: skip
        if dim is None or key not in layout:
            continue
        try:
            n = len(layout[key])
        except TypeError:
            continue  # not a sequence: wrap_model names what is wrong with it
        if n != dim:
            raise ValueError(
                f"{key} gives {n} {what}, but the ONNX graph takes {dim} (its input "
                f"{value_info.name!r} has shape {dims}); give the layout the model was "
                "exported with"
            )


def _stored_layout(proto: Any) -> dict[str, Any] | None:
    """The layout :func:`export_onnx` recorded in the model's properties, if any."""
    for prop in proto.metadata_props:
        if prop.key == LAYOUT_KEY:
            try:
                value = json.loads(prop.value)
            except ValueError as err:
                raise ValueError(
                    f"the ONNX model's property {LAYOUT_KEY!r} is not valid JSON ({err})"
                ) from err
            if not isinstance(value, dict):
                return None
            kinds = {"channels": list, "latitude": list, "longitude": list}
            wrong = [
                k for k, kind in kinds.items() if k in value and not isinstance(value[k], kind)
            ]
            if wrong or not all(
                isinstance(c, list) and len(c) == 2 for c in value.get("channels", [])
            ):
                raise ValueError(
                    f"the ONNX model's property {LAYOUT_KEY!r} is malformed ({wrong or 'channels'} "
                    "not lists of the layout export_onnx writes): give the layout explicitly "
                    "and re-export the file"
                )
            return value
    return None


def _check_stored_layout(stored: dict[str, Any], layout: dict[str, Any]) -> dict[str, Any]:
    """``layout`` with ``residual`` taken from ``stored`` where not given; refuse channels,
    a grid or a ``residual`` that contradict what the exported model had."""
    import numpy as np

    out = dict(layout)
    if "residual" in stored:
        if "residual" not in out:
            out["residual"] = bool(stored["residual"])
        elif bool(out["residual"]) != bool(stored["residual"]):
            raise ValueError(
                f"residual={out['residual']!r} contradicts the ONNX file, exported from a "
                f"model with residual={bool(stored['residual'])!r} (its property "
                f"{LAYOUT_KEY!r}); pass residual={bool(stored['residual'])!r} or leave it out"
            )
    if "channels" in stored and "channels" in out:
        try:
            given = [(str(v), None if lv is None else float(lv)) for v, lv in out["channels"]]
        except (TypeError, ValueError):
            given = None  # malformed: wrap_model names what is wrong with it
        saved = [(str(v), None if lv is None else float(lv)) for v, lv in stored["channels"]]
        if given is not None and given != saved:
            raise ValueError(
                f"channels {given} contradict the ONNX file, exported with the channels "
                f"{saved} (its property {LAYOUT_KEY!r})"
            )
    for key in ("latitude", "longitude"):
        if key in stored and key in out:
            try:
                given = np.asarray(out[key], dtype="float64")
            except (TypeError, ValueError):
                continue
            saved = np.asarray(stored[key], dtype="float64")
            if given.shape != saved.shape or not np.allclose(given, saved, rtol=0, atol=1e-6):
                raise ValueError(
                    f"{key} {given.tolist()} contradicts the ONNX file, exported on the "
                    f"{key} {saved.tolist()} (its property {LAYOUT_KEY!r})"
                )
    return out


def _written_by_us(path: Path) -> bool:
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False)
        return any(p.key == "xfuxi_writer" and p.value == ONNX_WRITER
                   for p in graph.metadata_props)  # fmt: skip
    except Exception:  # noqa: BLE001 - anything unreadable is not ours
        return False


def _check_finite_initializers(proto: Any, where: Any) -> None:
    """Refuse weights (initializers) holding NaN or infinity, naming ``where`` and the first
    such initializer: the imported model would forecast NaN."""
    from onnx import TensorProto, numpy_helper

    from .checkpoint import CheckpointError

    for init in proto.graph.initializer:
        if init.data_location == TensorProto.EXTERNAL:  # not loaded: nothing read here
            continue
        arr = numpy_helper.to_array(init)
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            raise CheckpointError(
                f"{where}: initializer {init.name!r} holds NaN or infinite values; the "
                "weights are corrupt"
            )


def import_onnx(
    source: str | os.PathLike[str] | Any, *, name: str | None = None, **layout: Any
) -> ForecastModel:
    """Import an ONNX model as a differentiable :class:`ForecastModel`.

    The graph, converted to a torch module, is wrapped by
    :func:`~xfuxi.models.base.wrap_model`, which takes ``layout``.

    Parameters
    ----------
    source : path-like or onnx.ModelProto
        The ONNX file or loaded model. Its graph must map one input ``(B, 2, C, H, W)`` to
        one output ``(B, C, H, W)``.
    name : str, optional
        Model name (default: the file's stem, or ``"onnx"``).
    **layout
        ``channels``, ``latitude`` and ``longitude`` (required), ``stats`` and
        ``residual``: the keywords of :func:`~xfuxi.models.base.wrap_model` (the graph
        works on tensors normalised by ``stats``; identity if omitted, i.e. physical
        units). ``residual`` defaults to the one recorded by :func:`export_onnx`, else
        False (a graph that gives the next state).

    Returns
    -------
    ForecastModel
        Wrapping the converted ``torch.fx.GraphModule``; gradients flow through it. Its
        time step is the one recorded by :func:`export_onnx` (6 hours otherwise).

    Raises
    ------
    ImportError
        ``onnx`` or ``onnx2torch`` missing.
    ValueError
        The graph does not have exactly one input and one output; its input has a static
        shape that is not ``(B, 2, C, H, W)`` with ``C``, ``H``, ``W`` the numbers of
        ``channels``, ``latitude`` and ``longitude``; or the layout contradicts the one
        recorded by :func:`export_onnx` (channels, grid or ``residual``, named).
    TypeError
        ``source`` is not a path or an ``onnx.ModelProto`` (a ForecastModel, say); a
        required keyword of ``layout`` is missing, or one is not a keyword of
        :func:`~xfuxi.models.base.wrap_model` (named by the message).

    Notes
    -----
    Files written by :func:`export_onnx` record their model's layout (see its Notes);
    files of other exporters carry none, and their ``residual`` must be given when the
    graph predicts a tendency: a wrong ``residual`` forecasts wrongly without any error.
    """
    onnx = _onnx()
    if isinstance(source, (str, os.PathLike)):
        proto = None
    elif isinstance(source, onnx.ModelProto):
        proto = source
    else:
        hint = (
            "; a ForecastModel is used as it is (export_onnx writes one to a file)"
            if isinstance(source, ForecastModel)
            else ""
        )
        raise TypeError(
            f"source must be an ONNX file path or an onnx.ModelProto; got "
            f"{type(source).__name__}{hint}"
        )
    o2t = _onnx2torch()
    proto_given = proto
    if proto is None:
        if not Path(source).expanduser().is_file():
            raise FileNotFoundError(f"no ONNX file at {source}")
        try:
            proto = onnx.load(str(Path(source).expanduser()))
        except Exception as err:  # protobuf's DecodeError and kin: a truncated or other file
            raise ValueError(
                f"{source} is not a readable ONNX model (truncated or not ONNX: "
                f"{type(err).__name__}: {err})"
            ) from None
    n_in = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    if len(n_in) != 1 or len(proto.graph.output) != 1:
        raise ValueError(
            f"the ONNX graph must have one input and one output; it has {len(n_in)} inputs "
            f"and {len(proto.graph.output)} outputs"
        )
    _check_input_shape(n_in[0], layout)
    _check_finite_initializers(proto, source if proto_given is None else "the ONNX model")
    stored = _stored_layout(proto)
    if stored is not None:
        layout = _check_stored_layout(stored, layout)
    proto = onnx.shape_inference.infer_shapes(proto)  # converters read static shapes
    module = o2t.convert(proto)
    default = Path(source).stem if isinstance(source, (str, os.PathLike)) else "onnx"
    model = wrap_model(module, name=name or default, **layout)
    if stored is not None and "timestep_hours" in stored:
        # wrap_model takes no time step: set it, with the ForecastModel's own check
        model.timestep_hours = _positive_hours(stored["timestep_hours"])
    return model
