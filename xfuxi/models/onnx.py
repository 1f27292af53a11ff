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
import os
import sys
import types
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_write_file, check_file_replaceable
from .base import ForecastModel, wrap_model

__all__ = ["export_onnx", "import_onnx"]


def _missing_torchvision(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError(
        "this ONNX graph uses a detection operator (NonMaxSuppression / RoiAlign) that "
        "onnx2torch implements with torchvision, which is not installed"
    )


def _onnx2torch() -> Any:
    """Import onnx2torch, standing in for torchvision if it is not installed."""
    try:
        import onnx  # noqa: F401
    except ImportError as err:
        raise ImportError("ONNX support needs the 'onnx' package: pip install onnx") from err
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
        and :func:`import_onnx` cannot restore.
    ImportError
        ``onnx`` is not installed.

    Notes
    -----
    Only the network is exported; channels, grid and normalization statistics stay in
    xfuxi's checkpoint (pass them to :func:`import_onnx`).
    """
    if not isinstance(model, ForecastModel):
        raise TypeError(f"expected a ForecastModel; got {type(model).__name__}")
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
    _onnx2torch()
    net = model.net
    p = next(net.parameters())
    x = torch.zeros(batch_size, 2, model.n_channels, *model.grid_shape, dtype=p.dtype)
    out = Path(path).expanduser()
    check_file_replaceable(out, overwrite=overwrite, writer=ONNX_WRITER, ours=_written_by_us)
    import onnx

    def write(tmp: Path) -> None:
        torch.onnx.export(
            net,
            (x.to(p.device),),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
        graph = onnx.load(str(tmp))  # mark the file as this function's, for overwrite=True
        onnx.helper.set_model_props(graph, {"xfuxi_writer": ONNX_WRITER})
        onnx.save(graph, str(tmp))

    was_training = net.training
    try:
        net.eval()
        atomic_write_file(out, write)
    finally:
        net.train(was_training)
    return out


#: what export_onnx records in its files (a model property), so that it replaces only its own
ONNX_WRITER = "xfuxi.export_onnx"


def _written_by_us(path: Path) -> bool:
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False)
        return any(p.key == "xfuxi_writer" and p.value == ONNX_WRITER
                   for p in graph.metadata_props)  # fmt: skip
    except Exception:  # noqa: BLE001 - anything unreadable is not ours
        return False


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
        units).

    Returns
    -------
    ForecastModel
        Wrapping the converted ``torch.fx.GraphModule``; gradients flow through it.

    Raises
    ------
    ImportError
        ``onnx`` or ``onnx2torch`` missing.
    ValueError
        The graph does not have exactly one input and one output.
    TypeError
        A required keyword of ``layout`` is missing, or one is not a keyword of
        :func:`~xfuxi.models.base.wrap_model` (named by the message).
    """
    import onnx

    o2t = _onnx2torch()
    proto = onnx.load(str(source)) if isinstance(source, (str, os.PathLike)) else source
    n_in = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    if len(n_in) != 1 or len(proto.graph.output) != 1:
        raise ValueError(
            f"the ONNX graph must have one input and one output; it has {len(n_in)} inputs "
            f"and {len(proto.graph.output)} outputs"
        )
    proto = onnx.shape_inference.infer_shapes(proto)  # converters read static shapes
    module = o2t.convert(proto)
    default = Path(source).stem if isinstance(source, (str, os.PathLike)) else "onnx"
    return wrap_model(module, name=name or default, **layout)
