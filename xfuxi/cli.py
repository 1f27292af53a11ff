"""The ``xfuxi`` command line: ``xfuxi demo``, ``xfuxi world``, ``xfuxi train``, ...

Each subcommand is a small function that parses its arguments and calls the public API.
An error ends the command with a one-line message on stderr and a non-zero exit status (the
traceback too with ``--debug`` or ``XFUXI_DEBUG=1``). Output stores and directories are
written atomically and never replace anything that xfuxi did not write: an existing
``--output`` must be empty, or an earlier xfuxi output of the same kind and ``--overwrite``
given (see the data-safety policy, docs/safety.md).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

log = logging.getLogger("xfuxi")

# subcommand name -> (function adding its arguments, function running it); one entry per command
_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {}


def command(name: str, help: str):  # noqa: A002
    """Register a subcommand: decorate ``run(args) -> int``; its ``.arguments`` adds options."""

    def deco(run: Callable[..., int]) -> Callable[..., int]:
        def add(p: argparse.ArgumentParser) -> None:
            for args, kwargs in getattr(run, "_arguments", []):
                if len(args) == 1 and callable(args[0]):  # a group of flags (config_args)
                    args[0](p)
                else:
                    p.add_argument(*args, **kwargs)

        run.help = help  # type: ignore[attr-defined]
        _COMMANDS[name] = (add, run)
        return run

    return deco


def arg(*args, **kwargs):
    """Declare one argparse argument of a subcommand (stack above ``@command``)."""

    def deco(run):
        run._arguments = [(args, kwargs), *getattr(run, "_arguments", [])]
        return run

    return deco


def config_args(cls, *, skip: tuple[str, ...] = ()):
    """Declare the flags of a configuration dataclass's fields (stack above ``@command``;
    :func:`xfuxi.config.add_arguments`, read back with :func:`xfuxi.config.from_arguments`)."""
    from .config import add_arguments

    return arg(functools.partial(add_arguments, cls=cls, skip=skip))


# ---------------------------------------------------------------------------------------------
# outputs on disk
# ---------------------------------------------------------------------------------------------


def _output_path(output: str, inputs: Sequence[str | None], *, kind: str, overwrite: bool) -> Path:
    """The absolute ``--output`` directory, checked before any work is done.

    It must not be, or hold, one of the ``inputs``, and must be new, an empty directory, or
    (with ``overwrite``) an earlier xfuxi output of ``kind``; otherwise
    :class:`xfuxi.files.OutputExistsError` says why.
    """
    from .files import OutputExistsError, check_replaceable

    out = Path(os.path.abspath(output))
    real = Path(os.path.realpath(out))
    for item in inputs:
        if item is None:
            continue
        src = Path(os.path.realpath(item))
        if src == real or real in src.parents:
            raise OutputExistsError(
                f"--output {output} is or holds the input {item}; choose another output path"
            )
    check_replaceable(out, kind=kind, overwrite=overwrite)
    return out


def _metadata(args: argparse.Namespace) -> dict[str, Any]:
    """What the marker of a command's output records: the command, its arguments, version."""
    from ._version import __version__

    def plain(v: Any) -> bool:
        return v is None or isinstance(v, (str, int, float, bool, list))

    arguments = {k: v for k, v in vars(args).items() if plain(v) and k != "command"}
    return {"command": f"xfuxi {args.command}", "arguments": arguments, "xfuxi": __version__}


def _write_directory(out: Path, write: Callable[[Path], None], args, *, kind: str) -> None:
    """Write the output directory ``out`` of a command atomically, marked as xfuxi's."""
    from .files import replace_directory

    replace_directory(out, write, kind=kind, overwrite=args.overwrite, metadata=_metadata(args))


def _zarr_writer(ds) -> Callable[[Path], None]:
    """Write ``ds`` as a zarr store into a directory; encodings read from the input (a zarr-v2
    codec, chunks) are dropped, so any input gives a store of the current format."""
    return lambda store: ds.drop_encoding().to_zarr(store, mode="w")


_OVERWRITE = dict(
    action="store_true",
    help="replace an earlier xfuxi output of this kind at --output (never anything else)",
)

# ---------------------------------------------------------------------------------------------
# subcommands (each group owned by its subsystem)
# ---------------------------------------------------------------------------------------------


# --- FuXi forecast (issue 3): xfuxi train, xfuxi forecast ---


def _open_data(path: str):
    import xarray as xr

    if path.endswith(".zarr") or path.rstrip("/").endswith(".zarr"):
        return xr.open_zarr(path)
    return xr.open_dataset(path)


def _world_split(split: str, days: int | None):
    from .datasets import held_suarez_split

    return held_suarez_split(split, days=days)


def _train_config():
    """:class:`xfuxi.training.config.TrainConfig` (imported without torch)."""
    from .training.config import TrainConfig

    return TrainConfig


@functools.cache
def _train_ens_config():
    """:class:`~xfuxi.training.config.PerturbationTrainConfig` with the defaults of
    ``xfuxi train-ens`` (the shipped module's recipe: more iterations, smaller batches, a
    larger learning rate, the shipped name); the Python function keeps the class's."""
    import dataclasses

    from .config import field
    from .training.config import PerturbationTrainConfig

    fields = {f.name: f for f in dataclasses.fields(PerturbationTrainConfig)}
    recipe = {"iterations": 1000, "batch_size": 2, "lr": 2e-3, "name": "fuxi-ens-hs-t21"}
    return dataclasses.make_dataclass(
        "TrainEnsConfig",
        [(k, fields[k].type, field(v, help=fields[k].metadata["help"])) for k, v in recipe.items()],
        bases=(PerturbationTrainConfig,),
        frozen=True,
    )


def _spaced_init_times(data, model, steps: int, count: int):
    """``count`` initial times spread over ``data`` that can be verified ``steps`` steps on."""
    from .training.calibration import verifiable_init_times

    if count < 1:
        raise ValueError(f"the number of initial times must be >= 1; got {count}")
    times = verifiable_init_times(data, model=model, steps=steps)
    return times[:: max(1, len(times) // count)][:count]


@arg("--train", default="world", help="training data: a zarr/netCDF path, or 'world' (default)")
@arg("--validation", default="world", help="validation data: path, 'world' or 'none'")
@arg("--train-days", type=int, default=None, help="days of the world's train split to use")
@arg("--validation-days", type=int, default=30, help="days of the world's validation split")
@arg("--from-model", default=None, help="fine-tune this model (shipped name or checkpoint)")
@arg("--set", action="append", default=[], metavar="KEY=VALUE",
     help="override a preset argument (e.g. embed_dim=128); repeatable")  # fmt: skip
@arg(
    "--lead-model",
    default=None,
    help="frozen model that makes those forecasts (default: the --from-model)",
)
@arg(
    "--tracer-anomalies",
    type=int,
    default=0,
    metavar="DAYS",
    help="add one-step samples of tracer anomalies carried by the world's flow, from a run "
    "of this many days (xfuxi.world.tracer_anomalies; 0: none)",
)
@config_args(_train_config())
@arg("--device", default=None, help="torch device (default: the 'device' option)")
@arg("--out", required=True, help="checkpoint directory (resumed if it holds a matching run)")
@command("train", "train or fine-tune a FuXi forecast model (runs under torchrun too)")
def _cmd_train(args) -> int:
    import json

    from .config import from_arguments
    from .training.forecast import train_forecast

    def load(spec: str, split: str, days: int | None):
        if spec == "none":
            return None
        return _world_split(split, days) if spec == "world" else _open_data(spec)

    train = load(args.train, "train", args.train_days)
    validation = load(args.validation, "validation", args.validation_days)
    preset = args.preset if args.preset is not None else _train_config()().preset
    if args.set:
        from .models.fuxi import PRESETS

        if preset not in PRESETS:
            raise SystemExit(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
        preset = dict(PRESETS[preset])
        for item in args.set:
            key, _, value = item.partition("=")
            if key not in preset:
                raise SystemExit(f"--set {item}: {key!r} is not an argument of the preset")
            preset[key] = json.loads(value)
    anomalies = None
    if args.tracer_anomalies < 0:
        raise SystemExit(f"--tracer-anomalies must be >= 0; got {args.tracer_anomalies}")
    if args.tracer_anomalies:
        from .world.tracer_anomalies import held_suarez_tracer_anomalies

        anomalies = held_suarez_tracer_anomalies(days=args.tracer_anomalies)
    config = from_arguments(_train_config(), args, preset=preset)
    model = train_forecast(
        train, config=config, validation=validation, model=args.from_model,
        lead_model=args.lead_model, tracer_anomalies=anomalies, checkpoint_dir=args.out,
        device=args.device,
    )  # fmt: skip
    for entry in model.config["metadata"]["history"][-3:]:
        print(json.dumps(entry))
    print(f"model saved in {args.out}")
    return 0


@arg("data", help="zarr/netCDF file with the initial states (analysis layout)")
@arg("--model", default="fuxi-hs-t21", help="shipped model name or checkpoint directory")
@arg("--steps", type=int, required=True, help="number of 6-hour steps")
@arg("--batch-size", type=int, default=None)
@arg("--device", default=None)
@arg("--output", required=True, help="output zarr store (WeatherBench2 forecast layout)")
@arg("--overwrite", **_OVERWRITE)
@command("forecast", "run a deterministic FuXi forecast from a file of initial states")
def _cmd_forecast(args) -> int:
    from .forecasting.deterministic import forecast
    from .models.registry import load_model

    out = _output_path(args.output, [args.data], kind="forecast", overwrite=args.overwrite)
    model = load_model(args.model, device=args.device)
    fc = forecast(_open_data(args.data), model=model, steps=args.steps, batch_size=args.batch_size)
    _write_directory(out, _zarr_writer(fc), args, kind="forecast")
    print(f"wrote {dict(fc.sizes)} to {out}")
    return 0


# --- FuXi-ENS (issue 6): xfuxi train-ens, xfuxi ensemble ---


@arg("--model", default="fuxi-hs-t21", help="deterministic model (shipped name or checkpoint)")
@arg("--train-days", type=int, default=None, help="days of the world's train split to use")
@arg("--validation-days", type=int, default=60, help="days of the world's validation split")
@arg("--minutes", dest="max_minutes", type=float, default=None, help="as --max-minutes")
@config_args(_train_ens_config(), skip=("resume",))
@arg("--calibrate", default="0.5,0.7,1,1.4,2",
     help="inflation candidates tuned on validation data and baked in ('' to skip)")  # fmt: skip
@arg("--calibrate-variables", default="0.7,1.4",
     help="per-variable inflation candidates tuned after the global one ('' to skip)")  # fmt: skip
@arg("--calibrate-steps", type=int, default=40, help="forecast steps used to calibrate")
@arg("--device", default=None)
@arg("--out", required=True, help="output directory of the perturbation module")
@arg("--overwrite", **_OVERWRITE)
@command("train-ens", "train the FuXi-ENS perturbation module for a deterministic model")
def _cmd_train_ens(args) -> int:
    import json
    import math
    import tempfile

    import torch

    from .config import from_arguments
    from .models.ens import PerturbationVAE, save_perturbation
    from .models.registry import load_model
    from .training.calibration import (
        apply_variable_inflation,
        tune_amplitude,
        tune_variable_inflation,
    )
    from .training.ens import train_perturbation

    cfg = from_arguments(_train_ens_config(), args)
    torch.manual_seed(cfg.seed)
    model = load_model(args.model, device=args.device)
    train = _world_split("train", args.train_days)
    validation = _world_split("validation", args.validation_days)
    vae = PerturbationVAE(
        model.channels, model.grid_shape, stats=model.stats, **cfg.module_options()
    )
    with tempfile.TemporaryDirectory() as ckpt:
        vae, history = train_perturbation(
            model, train, config=cfg, perturbation=vae, validation=validation,
            checkpoint_dir=ckpt, device=args.device,
        )  # fmt: skip
    meta = {
        "base_model": model.name,
        "base_model_sha256": model.config.get("sha256"),
        "iterations": history["iteration"][-1] if history["iteration"] else 0,
        "members": cfg.members, "rollout": cfg.rollout, "kl_weight": cfg.kl_weight,
        "sample": cfg.sample, "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed,
        "train_config": cfg.to_dict(),
        "val_crps": list(zip(history["val_iteration"], history["val_crps"])),
    }  # fmt: skip
    # both calibrations score 8 members from 4 validation starts over --calibrate-steps
    times = _spaced_init_times(validation, model, args.calibrate_steps, 4)
    cands = [float(x) for x in args.calibrate.split(",") if x.strip()]
    if cands:
        best, score = tune_amplitude(
            validation, model=model, method="vae", perturbation=vae, amplitudes=cands, n=8,
            steps=args.calibrate_steps, init_times=times, seed=cfg.seed + 1,
        )  # fmt: skip
        with torch.no_grad():
            vae.log_scale.add_(math.log(best))
        meta["inflation"] = best
        meta["inflation_scores"] = dict(zip(map(str, cands), score.values.tolist()))
        print(f"inflation {best:g} baked in; mean normalised CRPS by candidate: "
              f"{meta['inflation_scores']}")  # fmt: skip
    var_cands = [float(x) for x in args.calibrate_variables.split(",") if x.strip()]
    if var_cands:
        best_var, vscore = tune_variable_inflation(
            validation, model=model, perturbation=vae, factors=var_cands, n=8,
            steps=args.calibrate_steps, init_times=times, seed=cfg.seed + 1,
        )  # fmt: skip
        apply_variable_inflation(vae, best_var)
        meta["variable_inflation"] = best_var
        meta["variable_inflation_scores"] = {
            str(v): dict(zip(map(str, vscore["factor"].values.tolist()), row.tolist()))
            for v, row in zip(vscore["variable"].values, vscore.values)
        }  # fmt: skip
        print(f"per-variable inflation baked in: {best_var}")
    save_perturbation(vae, args.out, metadata=meta, overwrite=args.overwrite)
    print(json.dumps({k: meta[k] for k in ("iterations", "val_crps")})[:2000])
    print(f"perturbation module saved in {args.out}")
    return 0


def _ens_calibration_args(model: str = "fuxi-hs-t21"):
    """The options every FuXi-ENS calibration command shares (stack under its own);
    ``model`` is the default of ``--model``."""
    return functools.partial(_add_ens_calibration_args, model=model)


def _add_ens_calibration_args(run, *, model: str):
    for a, kw in reversed([
        (("--model",), dict(default=model,
                            help="deterministic model (shipped name or checkpoint)")),
        (("--perturbation",), dict(default="fuxi-ens-hs-t21",
                                   help="module to calibrate (name or directory)")),
        (("--band",), dict(default="0.8,1.2", help="spread-skill band held after day 1")),
        (("-n", "--members"), dict(type=int, default=16)),
        (("--steps",), dict(type=int, default=40, help="forecast steps scored (default 10 days)")),
        (("--inits",), dict(type=int, default=4, help="validation initial times")),
        (("--validation-days",), dict(type=int, default=60,
                                      help="days of the world's validation split")),
        (("--seed",), dict(type=int, default=1)),
        (("--out",), dict(required=True, help="output directory of the calibrated module")),
        (("--overwrite",), _OVERWRITE),
    ]):  # fmt: skip
        run = arg(*a, **kw)(run)
    return run


def _channel_list(text: str) -> list:
    """Comma-separated channel names (``temperature@850``, ``surface_pressure``) as pairs."""
    from .data.channels import parse_channel_name

    return [parse_channel_name(c.strip()) for c in text.split(",")]


def _ens_calibration_setup(args):
    """``(model, module, validation split, initial times, band)`` of a calibration command."""
    from .models.ens import load_perturbation
    from .models.registry import load_model

    model = load_model(args.model)
    vae = load_perturbation(args.perturbation)
    validation = _world_split("validation", args.validation_days)
    times = _spaced_init_times(validation, model, args.steps, args.inits)
    band = tuple(float(x) for x in args.band.split(","))
    return model, vae, validation, times, band


@arg("--gains", default="1,1.6,2.5,4,6", help="initial-perturbation gain candidates")
@arg("--factors", default="0.5,0.6,0.7,0.85,1", help="step-perturbation factor candidates")
@arg(
    "--weighting",
    choices=("lead", "none"),
    default="lead",
    help="lead: every lead's CRPS counts alike (relative to the uncalibrated module); "
    "none: the mean CRPS over leads",
)
@_ens_calibration_args()
@command("calibrate-ens", "calibrate a FuXi-ENS module's initial and per-step perturbations")
def _cmd_calibrate_ens(args) -> int:
    import json

    from .data.channels import channel_name
    from .models.ens import save_perturbation
    from .training.calibration import apply_spread_growth, tune_spread_growth

    model, vae, validation, times, band = _ens_calibration_setup(args)
    best, scores = tune_spread_growth(
        validation, model=model, perturbation=vae,
        initial_gains=[float(x) for x in args.gains.split(",")],
        step_factors=[float(x) for x in args.factors.split(",")], n=args.members,
        steps=args.steps, init_times=times, band=band, weighting=args.weighting, seed=args.seed,
    )  # fmt: skip
    apply_spread_growth(vae, best)
    table = scores.drop_vars(["crps_by_lead", "prediction_timedelta"])
    chosen = {channel_name(ch): list(p) for ch, p in best.items()}
    meta = dict(getattr(vae, "metadata", {}))
    meta["spread_growth"] = {
        "chosen": chosen, "band": list(band), "members": args.members, "steps": args.steps,
        "weighting": args.weighting, "init_times": [str(t)[:16] for t in times],
        "scores": table.to_dataframe().reset_index().to_dict(orient="list"),
    }  # fmt: skip
    save_perturbation(vae, args.out, metadata=meta, overwrite=args.overwrite)
    print(table.to_dataframe().round(3).to_string())
    print("chosen (initial gain, step factor): " + json.dumps(chosen))
    print(f"calibrated module saved in {args.out}")
    return 0


@arg("--channels", default="temperature@850", help="channels to tune, comma-separated")
@arg(
    "--score-channels",
    default=None,
    help="channels scored, comma-separated, or 'all' (default: the tuned channels)",
)
@arg("--gains", default="2,3,4", help="early-step gain candidates")
@arg("--early-steps", default="8,12", help="candidates for the number of early steps")
@_ens_calibration_args()
@command("calibrate-ens-early", "tune a FuXi-ENS module's gain on its first steps' perturbations")
def _cmd_calibrate_ens_early(args) -> int:
    from .data.channels import channel_name
    from .models.ens import save_perturbation
    from .training.calibration import apply_early_gain, tune_early_gain

    model, vae, validation, times, band = _ens_calibration_setup(args)
    chans = _channel_list(args.channels)
    scored = (
        None if args.score_channels is None
        else list(vae.channels) if args.score_channels.strip() == "all"
        else _channel_list(args.score_channels)
    )  # fmt: skip
    (gain, k), scores = tune_early_gain(
        validation, model=model, perturbation=vae, channels=chans, score_channels=scored,
        gains=[float(x) for x in args.gains.split(",")],
        steps_options=[int(x) for x in args.early_steps.split(",")], n=args.members,
        steps=args.steps, init_times=times, band=band, seed=args.seed,
    )  # fmt: skip
    apply_early_gain(vae, chans, gain, k)
    meta = dict(getattr(vae, "metadata", {}))
    earlier = meta.get("early_gain", [])  # one record per call, in order
    meta["early_gain"] = [*([earlier] if isinstance(earlier, dict) else earlier), {
        "channels": [channel_name(c) for c in chans], "chosen": [gain, k],
        "score_channels": scores.attrs["score_channels"], "model": model.name,
        "members": args.members, "steps": args.steps,
        "init_times": [str(t)[:16] for t in times],
        "scores": scores.to_dataframe().reset_index().to_dict(orient="list"),
    }]  # fmt: skip
    save_perturbation(vae, args.out, metadata=meta, overwrite=args.overwrite)
    print(scores.to_dataframe().round(4).to_string())
    print(f"chosen: gain {gain:g} on steps 1-{k}" if k else "chosen: no early gain")
    print(f"calibrated module saved in {args.out}")
    return 0


@arg("--channels", default=None, help="channels to tune, comma-separated (default all)")
@arg("--gains", default="1.4,1.8,2.2,2.6", help="gain candidates")
@arg("--stage", type=int, default=1, help="cascade stage: 0 = the first, 1 = the second")
@_ens_calibration_args("fuxi-hs-t21-cascade")
@command(
    "calibrate-ens-stage",
    "tune a FuXi-ENS module's gain before the steps of a cascade's later stage",
)
def _cmd_calibrate_ens_stage(args) -> int:
    from .data.channels import channel_name
    from .models.ens import save_perturbation
    from .training.calibration import apply_model_gain, tune_model_gain

    model, vae, validation, times, band = _ens_calibration_setup(args)
    chans = None if args.channels is None else _channel_list(args.channels)
    gain, scores = tune_model_gain(
        validation, model=model, perturbation=vae, stage=args.stage,
        gains=[float(x) for x in args.gains.split(",")], channels=chans, n=args.members,
        steps=args.steps, init_times=times, band=band, seed=args.seed,
    )  # fmt: skip
    name = model.stages[args.stage].name
    apply_model_gain(vae, name, gain, chans)
    meta = dict(getattr(vae, "metadata", {}))
    records = dict(meta.get("model_gain", {}))  # per stage name, one record per call
    records[name] = [*records.get(name, []), {
        "channels": "all" if chans is None else [channel_name(c) for c in chans],
        "chosen": gain, "cascade": model.name, "members": args.members, "steps": args.steps,
        "init_times": [str(t)[:16] for t in times],
        "scores": scores.to_dataframe().reset_index().to_dict(orient="list"),
    }]  # fmt: skip
    meta["model_gain"] = records
    save_perturbation(vae, args.out, metadata=meta, overwrite=args.overwrite)
    print(scores.to_dataframe().round(4).to_string())
    print(f"chosen: gain {gain:g} before the steps of {name}")
    print(f"calibrated module saved in {args.out}")
    return 0


@arg("data", help="zarr/netCDF file with the initial states (analysis layout)")
@arg(
    "--model",
    default="fuxi-hs-t21-cascade",
    help="deterministic model or cascade (shipped name or checkpoint; default the FuXi "
    "cascade, whose later stage the shipped perturbation module is calibrated for)",
)
@arg("--method", choices=["vae", "perlin", "gaussian"], default="vae",
     help="vae: FuXi-ENS; perlin / gaussian: noise added to the initial pair")  # fmt: skip
@arg("--perturbation", default=None, help="perturbation module (default: the shipped one)")
@arg("-n", "--members", type=int, default=48)
@arg("--steps", type=int, default=40, help="number of 6-hour steps (default 40: 10 days)")
@arg("--seed", type=int, default=0)
@arg("--amplitude", type=float, default=None,
     help="vae: inflation of the learned perturbations (default 1); perlin / gaussian: noise "
     "std as a fraction of each channel's std (default 0.05)")  # fmt: skip
@arg("--chunk-size", type=int, default=None)
@arg("--device", default=None)
@arg("--output", required=True, help="output zarr store (WeatherBench2 layout plus 'number')")
@arg("--overwrite", **_OVERWRITE)
@command("ensemble", "run an ensemble forecast (FuXi-ENS, Perlin or Gaussian perturbations)")
def _cmd_ensemble(args) -> int:
    from .forecasting.ensemble import ensemble, perturbation_for
    from .models.registry import load_model

    spec = perturbation_for(args.method, module=args.perturbation, amplitude=args.amplitude)
    out = _output_path(args.output, [args.data], kind="ensemble", overwrite=args.overwrite)
    fc = ensemble(
        _open_data(args.data), model=load_model(args.model, device=args.device),
        n=args.members, steps=args.steps, perturbation=spec, seed=args.seed,
        chunk_size=args.chunk_size, device=args.device,
    )  # fmt: skip
    _write_directory(out, _zarr_writer(fc), args, kind="ensemble")
    print(f"wrote {dict(fc.sizes)} to {out}")
    return 0


# --- FuXi-En4DVar (issue 5): xfuxi assimilate ---


@arg("background", help="zarr/netCDF background with times t0 - 12 h, t0 - 6 h and t0")
@arg("observations", help="zarr/netCDF observation Dataset (dim 'obs'; xfuxi.make_observations)")
@arg("--model", default="fuxi-hs-t21", help="shipped model name or checkpoint directory")
@arg("--localization", default=None, dest="length_scale",
     help="Gaspari-Cohn half-width in km, or 'none' (default 2000)")  # fmt: skip
@arg("-n", "--members", type=int, default=None, dest="n_members", help="same as --n-members")
@arg("--slots", type=int, default=None, dest="n_slots", help="same as --n-slots")
@arg("--vertical-localization", type=float, default=None, dest="vertical_length_scale",
     help="same as --vertical-length-scale")  # fmt: skip
@arg("--amplitude", type=float, default=None,
     help="Perlin perturbation std / climatological std (default 0.05)")  # fmt: skip
@arg("--spread", default=None,
     help="netCDF/zarr of background-error std per variable and level "
          "(xfuxi.background_error_std): B variances are rescaled to it")  # fmt: skip
@arg("--static-b", default=None,
     help="netCDF/zarr of static background-error samples (dim 'sample'; "
          "xfuxi.forecast_error_samples): hybrid B")  # fmt: skip
@arg("--output", required=True,
     help="output directory: analysis.nc, increment.nc, trajectory.nc, diagnostics.nc")  # fmt: skip
@arg("--overwrite", **_OVERWRITE)
@command("assimilate", "one FuXi-En4DVar analysis from a background and observations")
def _cmd_assimilate(args) -> int:
    from .assimilation import config as da
    from .assimilation.en4dvar import assimilate_4dvar
    from .config import from_arguments
    from .models.registry import load_model

    loc_arg = (args.length_scale or "2000").strip().lower()
    try:
        length_scale = None if loc_arg in ("none", "off", "0") else float(loc_arg)
    except ValueError:
        return _usage_error(
            "assimilate",
            f"--localization must be a number of km or 'none'; got {args.length_scale!r}",
        )
    try:
        options = {
            "background_error": from_arguments(da.BackgroundError, args),
            "localization": from_arguments(da.LocalizationOptions, args, length_scale=length_scale),
            "window": from_arguments(da.Window, args),
            "minimiser": from_arguments(da.Minimiser, args),
            "quality_control": from_arguments(da.QualityControl, args),
        }
    except ValueError as err:
        return _usage_error("assimilate", str(err))
    inputs = [args.background, args.observations, args.spread, args.static_b]
    out = _output_path(args.output, inputs, kind="assimilation", overwrite=args.overwrite)
    spread = _open_data(args.spread).load() if args.spread else None
    static_b = _open_data(args.static_b).load() if args.static_b else None
    res = assimilate_4dvar(
        _open_data(args.background), _open_data(args.observations).load(),
        model=load_model(args.model), spread=spread, static_b=static_b, **options,
    )  # fmt: skip

    def write(directory: Path) -> None:
        # encodings read from the inputs (an observation file's chunk layout) do not apply
        for name in ("analysis", "increment", "trajectory", "diagnostics"):
            getattr(res, name).drop_encoding().to_netcdf(directory / f"{name}.nc")

    _write_directory(out, write, args, kind="assimilation")
    d = res.diagnostics
    print(
        f"{d.attrs['iterations']} iterations, J {float(d['cost'][0]):.4g} -> "
        f"{float(d['cost'][-1]):.4g}; observations used {d.attrs['n_observations_used']}; "
        f"rejected {dict(zip(d['reason'].values.tolist(), d['n_rejected'].values.tolist()))}"
    )
    print(f"wrote analysis, increment, trajectory and diagnostics to {out}")  # fmt: skip
    return 0


def _assimilate_arguments(p: argparse.ArgumentParser) -> None:
    """``xfuxi assimilate``'s flags: its own, then one per option of the En4DVar configurations."""
    from .assimilation import config as da
    from .config import add_arguments

    for args, kwargs in _cmd_assimilate._arguments:  # type: ignore[attr-defined]
        p.add_argument(*args, **kwargs)
    add_arguments(p, da.BackgroundError, skip=("amplitude", "perturbation_std"))
    add_arguments(p, da.LocalizationOptions, skip=("length_scale",))
    add_arguments(p, da.Window)
    add_arguments(p, da.Minimiser)
    add_arguments(p, da.QualityControl)


_COMMANDS["assimilate"] = (_assimilate_arguments, _cmd_assimilate)


# --- the Held-Suarez world (issue 2): xfuxi world ---


@arg("--split", choices=["train", "validation", "test"], default=None,
     help="a documented split (fixed seed and start date); overrides --seed/--start")  # fmt: skip
@arg("--days", type=int, default=None, help="days of output (default 365, or the split's)")
@arg("--start", default="2000-01-01", help="date of the first output (default 2000-01-01)")
@arg("--seed", type=int, default=0, help="seed of the initial perturbation (default 0)")
@arg("--resolution", choices=["T21", "T42"], default="T21")
@arg("--levels", default="250,500,700,850", help="pressure levels in hPa, comma-separated")
@arg("--spinup-days", type=int, default=100, help="spin-up days before output (default 100)")
@arg("--n-sigma-levels", type=int, default=8, help="model sigma levels (default 8)")
@arg("--output-hours", type=int, default=6, help="output interval in hours (default 6)")
@arg("--cache-dir", default=None, help="cache directory (default $XFUXI_CACHE or ~/.cache/xfuxi)")
@arg("--output", default=None, help="also write a copy here (a .nc file, else a zarr store)")
@arg("--overwrite", **_OVERWRITE)
@command("world", "generate (or read from the cache) a Held-Suarez world on pressure levels")
def _cmd_world(args) -> int:
    from .world.simulator import (
        SPLITS,
        cache_directory,
        held_suarez,
        held_suarez_split,
        world_cache_path,
        world_config,
    )

    try:
        levels = tuple(float(x) for x in args.levels.split(",") if x.strip())
    except ValueError:
        return _usage_error("world", f"--levels must be comma-separated numbers; got "
                            f"{args.levels!r}")  # fmt: skip
    # the configuration is checked before the (long) run: levels, days, output path
    world_config(
        days=1 if args.days is None else args.days,
        resolution=args.resolution,
        levels=levels,
        spinup_days=args.spinup_days,
        n_sigma_levels=args.n_sigma_levels,
        output_hours=args.output_hours,
    )
    out = None
    if args.output and args.output.endswith(".nc"):
        out = _world_netcdf_path(args.output, overwrite=args.overwrite)
    elif args.output:
        cache = str(cache_directory(args.cache_dir))
        out = _output_path(args.output, [cache], kind="world", overwrite=args.overwrite)
    kw = dict(
        resolution=args.resolution,
        levels=levels,
        spinup_days=args.spinup_days,
        n_sigma_levels=args.n_sigma_levels,
        output_hours=args.output_hours,
        cache_dir=args.cache_dir,
    )
    if args.split is not None:
        ds = held_suarez_split(args.split, days=args.days, **kw)
    else:
        days = 365 if args.days is None else args.days
        ds = held_suarez(days=days, start=args.start, seed=args.seed, **kw)
    config = json.loads(ds.attrs["config"])
    cfg = {k: v for k, v in config.items() if k in world_config.__kwdefaults__}
    print(f"Held-Suarez world {dict(ds.sizes)}, {ds.time.values[0]} .. {ds.time.values[-1]}")
    path = world_cache_path(world_config(**cfg), args.cache_dir)
    if not path.exists() and args.split is not None:  # sliced from the cached full split
        full = world_config(**{**cfg, "days": SPLITS[args.split]["days"]})
        path = world_cache_path(full, args.cache_dir)
    print(f"cache: {path}")
    if out is not None and out.suffix == ".nc":
        from .files import atomic_write_file

        atomic_write_file(out, lambda tmp: ds.to_netcdf(tmp))
        print(f"wrote {out}")
    elif out is not None:
        _write_directory(out, _zarr_writer(ds), args, kind="world")
        print(f"wrote {out}")
    return 0


def _world_netcdf_path(output: str, *, overwrite: bool) -> Path:
    """The absolute ``--output`` netCDF file of ``xfuxi world``: new, or (with
    ``overwrite``) a world file that xfuxi wrote (its attrs say so)."""
    from .files import OutputExistsError

    out = Path(os.path.abspath(output))
    if not os.path.lexists(out):
        return out
    if not overwrite:
        raise OutputExistsError(
            f"{out} exists; pass --overwrite to replace a world file xfuxi wrote"
        )
    own = False
    if out.is_file() and not out.is_symlink():
        import xarray as xr

        try:
            with xr.open_dataset(out) as old:
                own = "xfuxi_version" in old.attrs and "config" in old.attrs
        except Exception:  # noqa: BLE001 - anything unreadable is not xfuxi's world
            own = False
    if not own:
        raise OutputExistsError(
            f"{out} exists and is not a world file that xfuxi wrote; xfuxi never replaces "
            "files it did not create: choose another output path"
        )
    return out


@arg("--output", default="demo_output", help="folder for figures and tables")
@arg("--test-days", type=int, default=60, help="length of the test period (days)")
@arg("--lead-days", type=int, default=10, help="forecast length (days)")
@arg("--n-init", type=int, default=20, help="number of initial times scored")
@arg(
    "--model",
    default="fuxi-hs-t21-cascade",
    help="pretrained model or cascade name, or checkpoint directory",
)
@arg("--members", type=int, default=48, help="FuXi-ENS ensemble size")
@arg("--overwrite", **_OVERWRITE)
@command("demo", "run the whole FuXi loop on the embedded Held–Suarez world")
def _demo(args: argparse.Namespace) -> int:
    import pandas as pd

    from .demo import run_demo

    result = run_demo(
        args.output,
        test_days=args.test_days,
        lead_days=args.lead_days,
        n_init=args.n_init,
        model=args.model,
        n_members=args.members,
        overwrite=args.overwrite,
    )
    with pd.option_context("display.width", 160, "display.max_columns", 20,
                           "display.precision", 3):  # fmt: skip
        for name, table in result.tables.items():
            if table.index.name == "lead_h":
                # columns "system:channel": one block per channel, systems side by side
                step = max(1, len(table) // 12)
                channels = dict.fromkeys(str(c).split(":", 1)[1] for c in table.columns)
                for channel in channels:
                    block = table[[c for c in table.columns if str(c).endswith(":" + channel)]]
                    block = block.rename(columns=lambda c: str(c).split(":", 1)[0])
                    print(f"\n== {name}: {channel} ==")
                    print(block.iloc[::step].to_string())
            else:
                print(f"\n== {name} ==")
                print(table.to_string())
    for name, path in result.figures.items():
        print(f"figure {name}: {path}")
    return 0


def _usage_error(command: str, message: str) -> int:
    """Report a bad argument of ``command`` on stderr; the exit status 2, as argparse's."""
    print(f"xfuxi {command}: error: {message}", file=sys.stderr)
    return 2


# --- FuXi-DA (issue 21): xfuxi train-da ---


def _da_config():
    """:class:`xfuxi.training.da_config.DAConfig` (imported without torch)."""
    from .training.da_config import DAConfig

    return DAConfig


@arg("--model", default="fuxi-hs-t21", help="frozen forecast model (shipped name or checkpoint)")
@arg("--train-days", type=int, default=60, help="days of the world's train split to use")
@arg("--validation-days", type=int, default=10, help="days of the world's validation split")
@config_args(_da_config())
@arg("--out", required=True,
     help="training directory: OUT/latest (resumable state), OUT/model (the network)")  # fmt: skip
@command("train-da", "train a FuXi-DA network (or its CORR variant) on the embedded world")
def _cmd_train_da(args) -> int:
    from .config import from_arguments
    from .models.fuxi_da import save_da_model
    from .models.registry import load_model
    from .training.da import train_da

    cfg = from_arguments(_da_config(), args)
    model = load_model(args.model)
    train = _world_split("train", args.train_days)
    validation = _world_split("validation", args.validation_days) if args.validation_days else None
    net, history = train_da(
        train, model, config=cfg, validation=validation, checkpoint_dir=args.out
    )
    path = save_da_model(net, Path(args.out) / "model", overwrite=True)
    last = history["val_l0"][-1] if history["val_l0"] else float("nan")
    print(f"wrote {path} ({history['step'][-1] if history['step'] else 0} steps, "
          f"validation analysis L1 {last:.4f})")  # fmt: skip
    return 0


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xfuxi`` command line; returns the exit status.

    A runtime error gives a one-line message on stderr and status 1 (130 when interrupted);
    with ``--debug`` or ``XFUXI_DEBUG=1`` the exception propagates with its traceback.
    """
    parser = argparse.ArgumentParser(prog="xfuxi", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error (or XFUXI_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add, run) in _COMMANDS.items():
        p = sub.add_parser(name, help=run.help, description=run.help)
        add(p)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose + 1, 2),
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    from .options import set_options

    if args.no_progress:
        set_options(progress=False)
    debug = args.debug or os.environ.get("XFUXI_DEBUG", "").strip() not in ("", "0")
    try:
        return int(_COMMANDS[args.command][1](args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"xfuxi {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every error becomes one line, as promised
        if debug:
            raise
        print(f"xfuxi {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
