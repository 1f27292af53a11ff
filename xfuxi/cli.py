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


def _spaced_init_times(data, model, steps: int, count: int):
    """``count`` initial times spread over ``data`` that can be verified ``steps`` steps on."""
    from .training.ens import verifiable_init_times

    if count < 1:
        raise ValueError(f"the number of initial times must be >= 1; got {count}")
    times = verifiable_init_times(data, model=model, steps=steps)
    return times[:: max(1, len(times) // count)][:count]


@arg("--train", default="world", help="training data: a zarr/netCDF path, or 'world' (default)")
@arg("--validation", default="world", help="validation data: path, 'world' or 'none'")
@arg("--train-days", type=int, default=None, help="days of the world's train split to use")
@arg("--validation-days", type=int, default=30, help="days of the world's validation split")
@arg("--from-model", default=None, help="fine-tune this model (shipped name or checkpoint)")
@arg("--preset", default="small", help="architecture preset of a new model (default small)")
@arg("--set", action="append", default=[], metavar="KEY=VALUE",
     help="override a preset argument (e.g. embed_dim=128); repeatable")  # fmt: skip
@arg("--name", default="fuxi", help="model name recorded in forecasts")
@arg("--steps", type=int, default=1000, help="optimizer steps")
@arg("--batch-size", type=int, default=16, help="global batch size")
@arg("--lr", type=float, default=1e-3, help="peak learning rate")
@arg("--weight-decay", type=float, default=0.01)
@arg("--warmup-steps", type=int, default=100)
@arg("--rollout-steps", type=int, default=1, help="autoregressive steps per sample")
@arg(
    "--lead-steps",
    type=int,
    default=0,
    help="start each sample from the lead model's forecast this many steps on (cascade)",
)
@arg(
    "--lead-model",
    default=None,
    help="frozen model that makes those forecasts (default: the --from-model)",
)
@arg(
    "--loss",
    choices=("l1", "amse"),
    default="l1",
    help="l1: FuXi's; amse: adjusted MSE that keeps eddy amplitude (Subich et al. 2025)",
)
@arg(
    "--tracer-anomalies",
    type=int,
    default=0,
    metavar="DAYS",
    help="add one-step samples of tracer anomalies carried by the world's flow, from a run "
    "of this many days (xfuxi.world.tracer_anomalies; 0: none)",
)
@arg("--anomaly-batch-size", type=int, default=8, help="tracer-anomaly samples per step")
@arg("--anomaly-weight", type=float, default=1.0, help="weight of their loss")
@arg("--grad-checkpointing", action="store_true", help="recompute transformer blocks")
@arg("--val-every", type=int, default=200)
@arg("--log-every", type=int, default=50, help="steps between logged losses")
@arg("--checkpoint-every", type=int, default=200)
@arg("--seed", type=int, default=0)
@arg("--device", default=None, help="torch device (default: the 'device' option)")
@arg("--out", required=True, help="checkpoint directory (resumed if it holds a matching run)")
@arg("--no-resume", action="store_true", help="start afresh even if --out holds a run")
@command("train", "train or fine-tune a FuXi forecast model (runs under torchrun too)")
def _cmd_train(args) -> int:
    import json

    from .training.forecast import train_forecast

    def load(spec: str, split: str, days: int | None):
        if spec == "none":
            return None
        return _world_split(split, days) if spec == "world" else _open_data(spec)

    train = load(args.train, "train", args.train_days)
    validation = load(args.validation, "validation", args.validation_days)
    preset = args.preset
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
    model = train_forecast(
        train,
        validation=validation,
        model=args.from_model,
        preset=preset,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        rollout_steps=args.rollout_steps,
        lead_model=args.lead_model,
        lead_steps=args.lead_steps,
        loss=args.loss,
        tracer_anomalies=anomalies,
        anomaly_batch_size=args.anomaly_batch_size,
        anomaly_weight=args.anomaly_weight,
        grad_checkpointing=args.grad_checkpointing,
        val_every=args.val_every,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        checkpoint_dir=args.out,
        resume=not args.no_resume,
        seed=args.seed,
        name=args.name,
        device=args.device,
    )
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
@arg("--iterations", type=int, default=1000, help="optimizer steps (default 1000)")
@arg("--minutes", type=float, default=None, help="stop training after this wall time")
@arg("--members", type=int, default=4, help="members per sequence in the fair CRPS")
@arg("--rollout", type=int, default=1, help="steps per training sequence")
@arg("--batch-size", type=int, default=2)
@arg("--lr", type=float, default=2e-3)
@arg("--kl-weight", type=float, default=1e-3, help="lambda of the KL term")
@arg("--sample", choices=["posterior", "prior"], default="prior",
     help="latents of the training members: from the prior (as at inference; default) or "
          "the posterior (FuXi-ENS)")  # fmt: skip
@arg("--hidden", type=int, default=32)
@arg("--latent", type=int, default=8)
@arg("--centered", action=argparse.BooleanOptionalAction, default=True,
     help="antithetic, zero-mean perturbations (--no-centered decodes z directly)")  # fmt: skip
@arg("--calibrate", default="0.5,0.7,1,1.4,2",
     help="inflation candidates tuned on validation data and baked in ('' to skip)")  # fmt: skip
@arg("--calibrate-variables", default="0.7,1.4",
     help="per-variable inflation candidates tuned after the global one ('' to skip)")  # fmt: skip
@arg("--calibrate-steps", type=int, default=40, help="forecast steps used to calibrate")
@arg("--seed", type=int, default=0)
@arg("--device", default=None)
@arg("--name", default="fuxi-ens-hs-t21", help="name of the module")
@arg("--out", required=True, help="output directory of the perturbation module")
@command("train-ens", "train the FuXi-ENS perturbation module for a deterministic model")
def _cmd_train_ens(args) -> int:
    import json
    import math
    import tempfile

    import torch

    from .models.ens import PerturbationVAE, save_perturbation
    from .models.registry import load_model
    from .training.ens import (
        apply_variable_inflation,
        train_perturbation,
        tune_amplitude,
        tune_variable_inflation,
    )

    torch.manual_seed(args.seed)
    model = load_model(args.model, device=args.device)
    train = _world_split("train", args.train_days)
    validation = _world_split("validation", args.validation_days)
    vae = PerturbationVAE(
        model.channels, model.grid_shape, stats=model.stats, hidden=args.hidden,
        latent=args.latent, centered=args.centered, name=args.name,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as ckpt:
        vae, history = train_perturbation(
            model, train, perturbation=vae, validation=validation, members=args.members,
            rollout=args.rollout, kl_weight=args.kl_weight, sample=args.sample,
            iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
            max_minutes=args.minutes, seed=args.seed, checkpoint_dir=ckpt, device=args.device,
        )  # fmt: skip
    meta = {
        "base_model": model.name,
        "base_model_sha256": model.config.get("sha256"),
        "iterations": history["iteration"][-1] if history["iteration"] else 0,
        "members": args.members, "rollout": args.rollout, "kl_weight": args.kl_weight,
        "sample": args.sample, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "val_crps": list(zip(history["val_iteration"], history["val_crps"])),
    }  # fmt: skip
    # both calibrations score 8 members from 4 validation starts over --calibrate-steps
    times = _spaced_init_times(validation, model, args.calibrate_steps, 4)
    cands = [float(x) for x in args.calibrate.split(",") if x.strip()]
    if cands:
        best, score = tune_amplitude(
            validation, model=model, method="vae", perturbation=vae, amplitudes=cands, n=8,
            steps=args.calibrate_steps, init_times=times, seed=args.seed + 1,
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
            steps=args.calibrate_steps, init_times=times, seed=args.seed + 1,
        )  # fmt: skip
        apply_variable_inflation(vae, best_var)
        meta["variable_inflation"] = best_var
        meta["variable_inflation_scores"] = {
            str(v): dict(zip(map(str, vscore["factor"].values.tolist()), row.tolist()))
            for v, row in zip(vscore["variable"].values, vscore.values)
        }  # fmt: skip
        print(f"per-variable inflation baked in: {best_var}")
    save_perturbation(vae, args.out, metadata=meta)
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
    from .training.ens import apply_spread_growth, tune_spread_growth

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
    save_perturbation(vae, args.out, metadata=meta)
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
    from .training.ens import apply_early_gain, tune_early_gain

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
    save_perturbation(vae, args.out, metadata=meta)
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
    from .training.ens import apply_model_gain, tune_model_gain

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
    save_perturbation(vae, args.out, metadata=meta)
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
@arg("--method", choices=["vae", "perlin", "gaussian"], default="vae")
@arg("--perturbation", default=None, help="perturbation module (default: the shipped one)")
@arg("-n", "--members", type=int, default=48)
@arg("--steps", type=int, required=True, help="number of 6-hour steps")
@arg("--seed", type=int, default=0)
@arg("--amplitude", type=float, default=None)
@arg("--chunk-size", type=int, default=None)
@arg("--device", default=None)
@arg("--output", required=True, help="output zarr store (WeatherBench2 layout plus 'number')")
@arg("--overwrite", **_OVERWRITE)
@command("ensemble", "run an ensemble forecast (FuXi-ENS, Perlin or Gaussian perturbations)")
def _cmd_ensemble(args) -> int:
    from .forecasting.ensemble import ensemble
    from .models.registry import load_model

    out = _output_path(args.output, [args.data], kind="ensemble", overwrite=args.overwrite)
    fc = ensemble(
        _open_data(args.data), model=load_model(args.model, device=args.device),
        n=args.members, steps=args.steps, method=args.method, perturbation=args.perturbation,
        seed=args.seed, amplitude=args.amplitude, chunk_size=args.chunk_size, device=args.device,
    )  # fmt: skip
    _write_directory(out, _zarr_writer(fc), args, kind="ensemble")
    print(f"wrote {dict(fc.sizes)} to {out}")
    return 0


# --- FuXi-En4DVar (issue 5): xfuxi assimilate ---


@arg("background", help="zarr/netCDF background with times t0 - 12 h, t0 - 6 h and t0")
@arg("observations", help="zarr/netCDF observation Dataset (dim 'obs'; xfuxi.make_observations)")
@arg("--model", default="fuxi-hs-t21", help="shipped model name or checkpoint directory")
@arg("--time", default=None, help="analysis time t0 (default: the background's last time)")
@arg("-n", "--members", type=int, default=200, help="ensemble members for B (default 200)")
@arg("--localization", default="2000",
     help="Gaspari-Cohn half-width in km, or 'none' (default 2000)")  # fmt: skip
@arg("--vertical-localization", type=float, default=None,
     help="vertical Gaspari-Cohn half-width in ln p (1.0: about a scale height; "
          "default none)")  # fmt: skip
@arg("--cross-variable", type=float, default=1.0,
     help="correlation factor between different variables in [0, 1] (default 1: none)")  # fmt: skip
@arg("--slots", type=int, default=2, help="6-hourly observation slots from t0 (default 2)")
@arg("--amplitude", type=float, default=0.05,
     help="Perlin perturbation std as a fraction of the climatological std")  # fmt: skip
@arg("--wavelength", type=float, default=8.0, help="Perlin wavelength in grid points")
@arg("--spread", default=None,
     help="netCDF/zarr of background-error std per variable and level "
          "(xfuxi.background_error_std): B variances are rescaled to it")  # fmt: skip
@arg("--static-b", default=None,
     help="netCDF/zarr of static background-error samples (dim 'sample'; "
          "xfuxi.forecast_error_samples): hybrid B")  # fmt: skip
@arg("--hybrid-weight", type=float, default=0.25,
     help="weight of the static B with --static-b (default 0.25)")  # fmt: skip
@arg("--max-iter", type=int, default=50)
@arg("--seed", type=int, default=0)
@arg("--strict", action="store_true", help="raise on bad observations instead of rejecting them")
@arg("--output", required=True,
     help="output directory: analysis.nc, increment.nc, trajectory.nc, diagnostics.nc")  # fmt: skip
@arg("--overwrite", **_OVERWRITE)
@command("assimilate", "one FuXi-En4DVar analysis from a background and observations")
def _cmd_assimilate(args) -> int:
    from .assimilation.en4dvar import assimilate_4dvar
    from .models.registry import load_model

    loc_arg = args.localization.strip().lower()
    if loc_arg in ("none", "off", "0"):
        localization = None
    else:
        try:
            localization = float(loc_arg)
        except ValueError:
            return _usage_error("assimilate", "--localization must be a number of km or "
                                f"'none'; got {args.localization!r}")  # fmt: skip
    if args.vertical_localization is not None or args.cross_variable != 1.0:
        if localization is None:
            return _usage_error("assimilate", "--vertical-localization and --cross-variable "
                                "need a horizontal --localization")  # fmt: skip
        localization = {"length_scale": localization, "cross_variable": args.cross_variable,
                        "vertical_length_scale": args.vertical_localization}  # fmt: skip
    inputs = [args.background, args.observations, args.spread, args.static_b]
    out = _output_path(args.output, inputs, kind="assimilation", overwrite=args.overwrite)
    spread = _open_data(args.spread).load() if args.spread else None
    static_b = _open_data(args.static_b).load() if args.static_b else None
    res = assimilate_4dvar(
        _open_data(args.background), _open_data(args.observations).load(),
        model=load_model(args.model), n_members=args.members, localization=localization,
        n_slots=args.slots, time=args.time, amplitude=args.amplitude,
        wavelength=args.wavelength, spread=spread, static_b=static_b,
        hybrid_weight=args.hybrid_weight, max_iter=args.max_iter, seed=args.seed,
        strict=args.strict,
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
