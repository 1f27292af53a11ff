"""Training commands: ``xfuxi train`` (a FuXi forecast model), ``xfuxi train-ens`` (the
FuXi-ENS perturbation module) and ``xfuxi train-da`` (a FuXi-DA network)."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import sys
import warnings
from pathlib import Path

from ..config import field, from_arguments
from ..training.config import PerturbationTrainConfig, TrainConfig
from ..training.da_config import DAConfig
from ..world.tracer_anomalies import held_suarez_tracer_anomalies
from .common import (
    OVERWRITE,
    arg,
    check_output_outside,
    command,
    config_args,
    float_list,
    load_model,
    local_paths,
    open_data,
    output_path,
    positive_int,
    spaced_init_times,
    usage_error,
    world_split,
)

__all__: list[str] = []


def _flag_message(message: str) -> str:
    """A configuration's message about a field (``TrainConfig.steps must be ...``) as the
    command line names it (``--steps must be ...``)."""
    return re.sub(r"^\w+\.(\w+) ", lambda m: f"--{m.group(1).replace('_', '-')} ", message)


@functools.cache
def _train_ens_config():
    """:class:`~xfuxi.training.config.PerturbationTrainConfig` with the defaults of
    ``xfuxi train-ens`` (the shipped module's recipe: more iterations, smaller batches, a
    larger learning rate, the shipped name); the Python function keeps the class's."""
    fields = {f.name: f for f in dataclasses.fields(PerturbationTrainConfig)}
    recipe = {"iterations": 1000, "batch_size": 2, "lr": 2e-3, "name": "fuxi-ens-hs-t21"}
    return dataclasses.make_dataclass(
        "TrainEnsConfig",
        [(k, fields[k].type, field(v, help=fields[k].metadata["help"])) for k, v in recipe.items()],
        bases=(PerturbationTrainConfig,),
        frozen=True,
    )


def _cycled_args(use: str):
    """The flags that name cycling stores to train on (``use``: what their states do)."""

    def decorate(fn):
        for flag in reversed([
            arg("--cycled-states", nargs="+", default=None, metavar="STORE",
                help=f"cycling stores (xfuxi cycle on the train period) {use}"),
            arg("--cycled-members", type=int, default=None,
                help="members per cycle to use (default all)"),
            arg("--cycled-skip-days", type=float, default=2.0,
                help="leave out each store's first days (default 2)"),
        ]):  # fmt: skip
            fn = flag(fn)
        return fn

    return decorate


def _cycling_stores(args) -> list[str]:
    """The ``--cycled-states`` paths that are cycling stores (their marker says so; nothing
    else is read): inputs the output must not lie in. Any other path is refused, before it
    is read, by :func:`_cycled_states` ("not a cycling store")."""
    from ..assimilation.cycle import _cycling_store

    stores = []
    for path in args.cycled_states or ():
        try:
            _cycling_store(path)
        except ValueError:
            continue
        stores.append(path)
    return stores


def _cycled_states(args):
    """The analysed pairs of ``--cycled-states`` (xarray), or None; a bad store exits."""
    if not args.cycled_states:
        return None
    import xarray as xr

    from ..assimilation.cycle import open_cycle_states

    try:
        parts = [
            open_cycle_states(p, members=args.cycled_members, skip_days=args.cycled_skip_days)
            for p in args.cycled_states
        ]
    except ValueError as err:
        raise SystemExit(f"--cycled-states: {err}") from None
    n = min(p.sizes["member"] for p in parts)
    return xr.concat([p.isel(member=slice(0, n)) for p in parts], dim="time")


@arg("--train", default="world", help="training data: a zarr/netCDF path, or 'world' (default)")
@arg(
    "--validation",
    default=None,
    help="validation data: path, 'world' or 'none' (default: 'world' with --train world, "
    "'none' when --train is a path)",
)
@arg("--train-days", type=int, default=None,
     help="days of the world's train split to use (default all)")  # fmt: skip
@arg("--validation-days", type=int, default=30,
     help="days of the world's validation split (default 30)")  # fmt: skip
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
@_cycled_args("whose analysed member pairs start a share --cycled-fraction of each batch")
@config_args(TrainConfig)
@arg(
    "--out",
    "--output",
    dest="out",
    required=True,
    help="checkpoint directory (resumed if it holds a matching run)",
)
@command("train", "train or fine-tune a FuXi forecast model (runs under torchrun too)")
def _cmd_train(args) -> int:
    # torch-backed modules are imported when the command runs (the CLI starts without torch)
    from ..models.fuxi import PRESETS
    from ..training.forecast import train_forecast

    def load(spec: str, split: str, days: int | None):
        if spec == "none":
            return None
        return world_split(split, days) if spec == "world" else open_data(spec)

    # every value and the output are checked before the data are read and the training runs
    cmd = "train"
    preset = args.preset if args.preset is not None else TrainConfig().preset
    if preset not in PRESETS:
        return usage_error(cmd, f"--preset {preset!r} is not a preset; known: {sorted(PRESETS)}")
    if args.set:
        preset = dict(PRESETS[preset])
        for item in args.set:
            key, eq, value = item.partition("=")
            if not eq or not key:
                return usage_error(cmd, f"--set takes KEY=VALUE (e.g. embed_dim=128); got {item!r}")
            if key not in preset:
                return usage_error(
                    cmd, f"--set {item}: {key!r} is not an argument of the preset; its "
                    f"arguments: {sorted(preset)}",
                )  # fmt: skip
            try:
                preset[key] = json.loads(value)
            except ValueError:
                return usage_error(
                    cmd, f"--set {item}: {value!r} is not a JSON value (a string is quoted: "
                    f"{key}='\"text\"')",
                )  # fmt: skip
    if args.tracer_anomalies < 0:
        return usage_error(cmd, f"--tracer-anomalies must be >= 0; got {args.tracer_anomalies}")
    for flag, days in (("--train-days", args.train_days),
                       ("--validation-days", args.validation_days)):  # fmt: skip
        if days is not None and days < 1:
            return usage_error(cmd, f"{flag} must be at least 1; got {days}")
    try:  # the configuration's warnings (warm-up longer than the run) as one clean line
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            config = from_arguments(TrainConfig, args, preset=preset, checkpoint_dir=args.out)
    except ValueError as err:
        return usage_error(cmd, _flag_message(str(err)))
    for warning in caught:
        text = _flag_message(str(warning.message))
        text = text.replace("exceeds steps", "exceeds --steps").replace(
            "set warmup_steps <= steps", "set --warmup-steps <= --steps"
        )
        print(f"xfuxi {cmd}: warning: {text}", file=sys.stderr)
    # data of one's own are not validated on the world (another grid) unless asked for
    spec = args.validation or ("world" if args.train == "world" else "none")
    inputs = [s for s in (args.train, spec) if s not in ("world", "none")]
    # the checkpoints are written as the run goes: never into (or over) what it reads
    check_output_outside(
        args.out,
        [*inputs, *_cycling_stores(args), *local_paths(args.from_model, args.lead_model)],
        flag="--out",
    )  # fmt: skip
    cycled = _cycled_states(args)  # read first: a bad store is refused before the data are
    train = load(args.train, "train", args.train_days)
    validation = load(spec, "validation", args.validation_days)
    anomalies = None
    if args.tracer_anomalies:
        anomalies = held_suarez_tracer_anomalies(days=args.tracer_anomalies)
    model = train_forecast(
        train, config=config, validation=validation, model=args.from_model,
        lead_model=args.lead_model, tracer_anomalies=anomalies, cycled_states=cycled,
    )  # fmt: skip
    for entry in model.config["metadata"]["history"][-3:]:
        print(json.dumps(entry))
    print(f"model saved in {args.out}")
    return 0


def training_directory(out: Path) -> Path:
    """Where ``xfuxi train-ens`` keeps the training checkpoints of output ``out``:
    ``OUT.training`` beside it (the trainer refuses it unless new, empty or its own)."""
    out = out.expanduser().resolve()
    return out.with_name(out.name + ".training")


@arg("--model", default="fuxi-hs-t21",
     help="deterministic model (shipped name or checkpoint; default fuxi-hs-t21)")  # fmt: skip
@arg("--train-days", type=int, default=None,
     help="days of the world's train split to use (default all)")  # fmt: skip
@arg("--validation-days", type=int, default=60,
     help="days of the world's validation split (default 60)")  # fmt: skip
@arg("--minutes", dest="max_minutes", type=float, default=None, help="as --max-minutes")
@config_args(_train_ens_config(), skip=("resume",))
@arg("--calibrate", default="0.5,0.7,1,1.4,2",
     help="inflation candidates tuned on validation data and baked in, comma-separated ('' "
          "to skip; default 0.5,0.7,1,1.4,2)")  # fmt: skip
@arg("--calibrate-variables", default="0.7,1.4",
     help="per-variable inflation candidates tuned after the global one, comma-separated "
          "('' to skip; default 0.7,1.4)")  # fmt: skip
@arg("--calibrate-steps", type=positive_int, default=40,
     help="forecast steps used to calibrate (default 40)")  # fmt: skip
@arg(
    "--out",
    "--output",
    dest="out",
    required=True,
    help="output directory of the perturbation module; the training checkpoints go to "
    "OUT.training beside it (resumed by a run with the same settings)",
)
@arg("--overwrite", **OVERWRITE)
@command("train-ens", "train the FuXi-ENS perturbation module for a deterministic model")
def _cmd_train_ens(args) -> int:
    # torch-backed modules are imported when the command runs (the CLI starts without torch)
    import torch

    from ..models.ens import save_perturbation
    from ..training.calibration import (
        TuningRun,
        apply_variable_inflation,
        tune_amplitude,
        tune_variable_inflation,
    )
    from ..training.ens import train_perturbation

    cmd = "train-ens"
    try:
        cfg = from_arguments(_train_ens_config(), args)
    except ValueError as err:
        return usage_error(cmd, _flag_message(str(err)))
    # the calibration's candidates are read before the training, not after it
    candidates = {}
    for flag, text in (("--calibrate", args.calibrate),
                       ("--calibrate-variables", args.calibrate_variables)):  # fmt: skip
        try:
            values = float_list(text)
        except ValueError:
            return usage_error(
                cmd, f"{flag} must be comma-separated numbers ('' to skip); got {text!r}"
            )
        if not all(math.isfinite(v) and v > 0 for v in values):
            return usage_error(cmd, f"{flag} must be positive numbers; got {values}")
        candidates[flag] = values
    cands, var_cands = candidates["--calibrate"], candidates["--calibrate-variables"]
    for flag, days in (("--train-days", args.train_days),
                       ("--validation-days", args.validation_days)):  # fmt: skip
        if days is not None and days < 1:
            return usage_error(cmd, f"{flag} must be at least 1; got {days}")
    # the output (and the training directory beside it) is checked before the training and
    # the calibration, not after them
    model_paths = local_paths(args.model)
    output_path(args.out, model_paths, kind="perturbation", overwrite=args.overwrite,
                flag="--out")  # fmt: skip
    check_output_outside(str(training_directory(Path(args.out))), model_paths, flag="--out")
    model = load_model(args.model, device=cfg.device)
    train = world_split("train", args.train_days)
    validation = world_split("validation", args.validation_days)
    times = None
    if cands or var_cands:  # (validation times are needed only to calibrate)
        try:  # before the training, not after it (it then failed, and a rerun with more
            # --validation-days was refused as a training of other settings)
            times = spaced_init_times(validation, model, args.calibrate_steps, 4)
        except ValueError as err:
            return usage_error(
                cmd,
                f"--validation-days {args.validation_days} is too short to calibrate over "
                f"--calibrate-steps {args.calibrate_steps} ({err}): give more days, fewer "
                "steps, or no calibration (--calibrate '' --calibrate-variables '')",
            )
    # beside the output (which is written at the end, as one unit): a killed run resumes;
    # the module's initial weights are a function of --seed (built by the trainer)
    ckpt = training_directory(Path(args.out))
    vae, history = train_perturbation(
        model, train, config=cfg.replace(checkpoint_dir=str(ckpt)), validation=validation,
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
    if cands or var_cands:
        run = TuningRun(n=8, steps=args.calibrate_steps, init_times=times, seed=cfg.seed + 1)
    if cands:
        best, score = tune_amplitude(
            validation, model=model, method="vae", perturbation=vae, amplitudes=cands, run=run,
        )  # fmt: skip
        with torch.no_grad():
            vae.log_scale.add_(math.log(best))
        meta["inflation"] = best
        meta["inflation_scores"] = dict(zip(map(str, cands), score.values.tolist()))
        print(f"inflation {best:g} baked in; mean normalised CRPS by candidate: "
              f"{meta['inflation_scores']}")  # fmt: skip
    if var_cands:
        best_var, vscore = tune_variable_inflation(
            validation, model=model, perturbation=vae, factors=var_cands, run=run,
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


@arg("--model", default="fuxi-hs-t21",
     help="frozen forecast model (shipped name or checkpoint; default fuxi-hs-t21)")  # fmt: skip
@arg("--train-days", type=int, default=60,
     help="days of the world's train split to use (default 60)")  # fmt: skip
@arg("--validation-days", type=int, default=10,
     help="days of the world's validation split (0: no validation; default 10)")  # fmt: skip
@_cycled_args(
    "whose analysed pairs, run 6 hours, are backgrounds of a share --cycled-fraction of each batch"
)
@config_args(DAConfig)
@arg("--out", "--output", dest="out", required=True,
     help="training directory: OUT/latest (resumable state), OUT/model (the network)")  # fmt: skip
@command("train-da", "train a FuXi-DA network or its CORR variant (runs under torchrun too)")
def _cmd_train_da(args) -> int:
    # torch-backed: imported when the command runs (the CLI starts without torch)
    from ..models.fuxi_da import DA_KIND, save_da_model
    from ..models.training_state import check_run_directory, hold_checkpoint_directory
    from ..training.da import _STATE_KIND as DA_STATE_KIND
    from ..training.da import train_da
    from ..training.forecast import dist_info

    cmd = "train-da"
    try:
        cfg = from_arguments(DAConfig, args, checkpoint_dir=args.out)
    except ValueError as err:
        return usage_error(cmd, _flag_message(str(err)))
    if cfg.steps < 1:  # the Python API's steps=0 saves the initial network; no use here
        return usage_error(cmd, f"--steps must be at least 1; got {cfg.steps}")
    if args.train_days is not None and args.train_days < 1:
        return usage_error(cmd, f"--train-days must be at least 1; got {args.train_days}")
    if args.validation_days < 0:
        return usage_error(cmd, f"--validation-days must be >= 0; got {args.validation_days}")
    # the training directory is written as the run goes: never into what it reads
    check_output_outside(args.out, [*_cycling_stores(args), *local_paths(args.model)],
                         flag="--out")  # fmt: skip
    # and never into a folder of the user's: refused before the world is generated, as
    # train and train-ens refuse it (train_da checks it again, for the Python API)
    check_run_directory(Path(args.out).expanduser(), kind=DA_STATE_KIND,
                        outputs={"model": DA_KIND})  # fmt: skip
    cycled = _cycled_states(args)  # read first: a bad store is refused before the data are
    model = load_model(args.model)
    train = world_split("train", args.train_days)
    validation = world_split("validation", args.validation_days) if args.validation_days else None
    net, history = train_da(train, model, config=cfg, validation=validation, cycled_states=cycled)
    if dist_info()[0] != 0:  # under torchrun the first process writes the network
        return 0
    # the training's lock again, for the network it writes beside its checkpoints (a run
    # started on the same --out meanwhile holds it: refused, not replaced)
    with hold_checkpoint_directory(args.out):
        path = save_da_model(net, Path(args.out) / "model", overwrite=True)
    last = history["val_l0"][-1] if history["val_l0"] else float("nan")
    steps = history["step"][-1] if history["step"] else 0
    print(f"wrote {path} ({steps} steps, validation analysis L1 {last:.4f})")
    return 0
