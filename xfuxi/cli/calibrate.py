"""FuXi-ENS calibration commands (issue 6): ``xfuxi calibrate-ens``, ``calibrate-ens-early``
and ``calibrate-ens-stage``; each tunes a perturbation module on the world's validation
split and saves the calibrated module with a record of the scores."""

from __future__ import annotations

import json

from ..config import from_arguments
from ..data.channels import channel_name, parse_channel_name
from .common import (
    arg,
    command,
    config_args,
    function_args,
    function_kwargs,
    load_model,
    output_args,
    output_path,
    spaced_init_times,
    usage_error,
    world_split,
)

__all__: list[str] = []

#: the parameters of each command's tune function that are its own flags
SPREAD_GROWTH_FLAGS = ("initial_gains", "step_factors", "weighting")
EARLY_GAIN_FLAGS = ("channels", "score_channels", "gains", "steps_options")
MODEL_GAIN_FLAGS = ("channels", "gains", "stage")


def _channel_list(text: str) -> list:
    """Comma-separated channel names (``temperature@850``, ``surface_pressure``) as pairs."""
    return [parse_channel_name(c.strip()) for c in text.split(",")]


def _ens_calibration_args(
    target: str, own: tuple[str, ...], model: str = "fuxi-hs-t21", run_helps=None, **kw
):
    """The flags of a calibration command: those of the parameters ``own`` of its tune
    function ``target`` (``kw`` as for :func:`function_args`), those of
    :class:`~xfuxi.training.calibration.TuningRun` (``run_helps``: the command's own help
    of some, as ``config_args``'s ``helps``), and those every calibration command shares;
    ``model`` is the default of ``--model``."""

    def deco(run):
        run = output_args("output directory of the calibrated module", flag="--out")(run)
        for a, k in reversed([
            (("--model",), dict(default=model, help="deterministic model (shipped name or "
                                f"checkpoint; default {model})")),
            (("--perturbation",), dict(default="fuxi-ens-hs-t21",
                                       help="module to calibrate (name or directory; default "
                                            "fuxi-ens-hs-t21)")),
            (("--inits",), dict(type=int, default=4,
                                help="validation initial times (default 4)")),
            (("--validation-days",), dict(type=int, default=60,
                                          help="days of the world's validation split "
                                               "(default 60)")),
        ]):  # fmt: skip
            run = arg(*a, **k)(run)
        # the run every tune function takes (members, steps, seed, band, ...): TuningRun's
        # flags; the commands draw with seed 1 (TuningRun's default is 0), as they always have;
        run = config_args(
            "training.calibration:TuningRun",
            aliases={"n": ("-n", "--members")},
            # members and steps: the gain tunings' defaults, fixed here because the
            # validation initial times are chosen for the steps before the tuning runs
            defaults={"seed": 1, "n": 16, "steps": 40},
            comma=("band",),
            helps=run_helps,
        )(run)
        return function_args(target, only=own, **kw)(run)

    return deco


def _refused(args, command: str) -> int | None:
    """A usage error (exit status 2) for a count or gain out of range, else ``None``; an
    unusable ``--out`` raises. Checked before the model, the module and the world are read
    and the tuning runs (they were found only then, or at the save after the tuning)."""
    counts = (("--inits", "inits", 1), ("--validation-days", "validation_days", 1),
              ("--members", "n", 2), ("--steps", "steps", 1))  # fmt: skip
    for flag, name, low in counts:
        value = getattr(args, name, None)
        if value is not None and value < low:
            return usage_error(command, f"{flag} must be at least {low}; got {value}")
    band = getattr(args, "band", None)
    if band is not None and (len(band) != 2 or not 0 < band[0] < 1 < band[1]):
        shown = ",".join(map(str, band))
        return usage_error(command, f"--band must be LOW,HIGH with 0 < LOW < 1 < HIGH; got {shown}")
    for flag, name in (("--gains", "initial_gains"), ("--factors", "step_factors"),
                       ("--gains", "gains")):  # fmt: skip
        values = getattr(args, name, None)
        if values is not None and not all(float(v) > 0 for v in values):
            return usage_error(command, f"{flag} must be positive; got {list(values)}")
    output_path(args.out, [args.perturbation, args.model], kind="perturbation",
                overwrite=args.overwrite)  # fmt: skip
    return None


def _setup(args, check_model=None):
    """``(model, module, validation split, TuningRun)`` of a calibration command;
    ``check_model(model)`` may refuse the model before the world is read."""
    # torch-backed modules are imported when a command runs (the CLI starts without torch)
    from ..models.ens import load_perturbation
    from ..training.calibration import TuningRun

    model = load_model(args.model)
    if check_model is not None:
        check_model(model)
    vae = load_perturbation(args.perturbation)
    validation = world_split("validation", args.validation_days)
    times = spaced_init_times(validation, model, args.steps, args.inits)
    return model, vae, validation, from_arguments(TuningRun, args, init_times=tuple(times))


def _record(args, run, scores) -> dict:
    """What every calibration's record holds besides its choice: the run and its scores."""
    return {
        "members": run.n, "steps": run.steps,
        "init_times": [str(t)[:16] for t in run.init_times],
        "scores": scores.to_dataframe().reset_index().to_dict(orient="list"),
    }  # fmt: skip


def _save(vae, args, meta: dict, table, chosen: str) -> int:
    """Save the calibrated module with ``meta`` and print the score table and the choice."""
    from ..models.ens import save_perturbation

    save_perturbation(vae, args.out, metadata=meta, overwrite=args.overwrite)
    print(table)
    print(chosen)
    print(f"calibrated module saved in {args.out}")
    return 0


@_ens_calibration_args(
    "training.gains:tune_spread_growth",
    SPREAD_GROWTH_FLAGS,
    flags={"initial_gains": ("--gains",), "step_factors": ("--factors",)},
    defaults={"initial_gains": (1, 1.6, 2.5, 4, 6), "step_factors": (0.5, 0.6, 0.7, 0.85, 1)},
)
@command("calibrate-ens", "calibrate a FuXi-ENS module's initial and per-step perturbations")
def _cmd_calibrate_ens(args) -> int:
    from ..training.gains import apply_spread_growth, tune_spread_growth

    if (refused := _refused(args, "calibrate-ens")) is not None:
        return refused
    model, vae, validation, run = _setup(args)
    best, scores = tune_spread_growth(
        validation, model=model, perturbation=vae, run=run,
        **function_kwargs(args, SPREAD_GROWTH_FLAGS),
    )  # fmt: skip
    apply_spread_growth(vae, best)
    table = scores.drop_vars(["crps_by_lead", "prediction_timedelta"])
    chosen = {channel_name(ch): list(p) for ch, p in best.items()}
    meta = dict(getattr(vae, "metadata", {}))
    if "spread_growth" in meta:  # an earlier calibration's record is kept (it was replaced:
        # its factors stay in the module, multiplied, with nothing saying so)
        meta["spread_growth_history"] = [*meta.get("spread_growth_history", []),
                                         meta["spread_growth"]]  # fmt: skip
    meta["spread_growth"] = {
        "chosen": chosen, "band": list(run.band), "weighting": args.weighting,
        **_record(args, run, table),
    }  # fmt: skip
    return _save(vae, args, meta, table.to_dataframe().round(3).to_string(),
                 "chosen (initial gain, step factor): " + json.dumps(chosen))  # fmt: skip


@_ens_calibration_args(
    "training.gains:tune_early_gain",
    EARLY_GAIN_FLAGS,
    flags={"steps_options": ("--early-steps",)},
    defaults={"channels": "temperature@850", "gains": (2, 3, 4), "steps_options": (8, 12)},
    types={"channels": _channel_list, "score_channels": str},
    notes={
        "channels": "Comma-separated names.",
        "score_channels": "Comma-separated names, or 'all'.",
    },
)
@command("calibrate-ens-early", "tune a FuXi-ENS module's gain on its first steps' perturbations")
def _cmd_calibrate_ens_early(args) -> int:
    from ..training.gains import apply_early_gain, tune_early_gain

    if (refused := _refused(args, "calibrate-ens-early")) is not None:
        return refused
    model, vae, validation, run = _setup(args)
    options = function_kwargs(args, EARLY_GAIN_FLAGS)
    chans = options["channels"] = list(args.channels)
    scored = args.score_channels
    options["score_channels"] = (
        None if scored is None
        else list(vae.channels) if scored.strip() == "all"
        else _channel_list(scored)
    )  # fmt: skip
    (gain, k), scores = tune_early_gain(
        validation, model=model, perturbation=vae, run=run, **options
    )
    apply_early_gain(vae, chans, gain, k)
    meta = dict(getattr(vae, "metadata", {}))
    earlier = meta.get("early_gain", [])  # one record per call, in order
    meta["early_gain"] = [*([earlier] if isinstance(earlier, dict) else earlier), {
        "channels": [channel_name(c) for c in chans], "chosen": [gain, k],
        "score_channels": scores.attrs["score_channels"], "model": model.name,
        **_record(args, run, scores),
    }]  # fmt: skip
    chosen = f"chosen: gain {gain:g} on steps 1-{k}" if k else "chosen: no early gain"
    return _save(vae, args, meta, scores.to_dataframe().round(4).to_string(), chosen)


@_ens_calibration_args(
    "training.gains:tune_model_gain",
    MODEL_GAIN_FLAGS,
    model="fuxi-hs-t21-cascade",
    defaults={"gains": (1.4, 1.8, 2.2, 2.6), "stage": 1},  # the cascade's later stage
    # the default --stage 1 refuses --after-hours: no default to show but --stage 0's
    run_helps={
        "after_hours": "--stage 0 only: leads at or before this many hours are not "
        "held to the band (default 24 there); a later stage is held to the band over "
        "the leads it makes, from the cascade's switch on"
    },
    types={"channels": _channel_list},
    notes={"channels": "Comma-separated names."},
)
@command(
    "calibrate-ens-stage",
    "tune a FuXi-ENS module's gain before the steps of a cascade's later stage",
)
def _cmd_calibrate_ens_stage(args) -> int:
    from ..training.gains import apply_model_gain, tune_model_gain

    if args.after_hours is not None and args.stage != 0:  # it was accepted and ignored
        return usage_error(
            "calibrate-ens-stage",
            "--after-hours applies to --stage 0 only: a later stage is held to the band over "
            "the leads it makes, from the cascade's switch on",
        )
    if (refused := _refused(args, "calibrate-ens-stage")) is not None:
        return refused

    def check_stage(model) -> None:
        stages = getattr(model, "stages", None)
        if stages is None:
            raise ValueError(f"calibrate-ens-stage needs a cascade model; {args.model} is not one")
        if not 0 <= args.stage < len(stages):
            raise ValueError(
                f"--stage {args.stage} is not a stage of the cascade {args.model} "
                f"({len(stages)} stages: 0..{len(stages) - 1})"
            )

    model, vae, validation, run = _setup(args, check_model=check_stage)
    options = function_kwargs(args, MODEL_GAIN_FLAGS)
    chans = options["channels"] = None if args.channels is None else list(args.channels)
    gain, scores = tune_model_gain(validation, model=model, perturbation=vae, run=run, **options)
    name = vae.model_gain_key(model.stages[args.stage].name)  # where the factors are kept
    apply_model_gain(vae, name, gain, chans)
    meta = dict(getattr(vae, "metadata", {}))
    records = dict(meta.get("model_gain", {}))  # per stage name, one record per call
    records[name] = [*records.get(name, []), {
        "channels": "all" if chans is None else [channel_name(c) for c in chans],
        "chosen": gain, "cascade": model.name, **_record(args, run, scores),
    }]  # fmt: skip
    meta["model_gain"] = records
    return _save(vae, args, meta, scores.to_dataframe().round(4).to_string(),
                 f"chosen: gain {gain:g} before the steps of {name}")  # fmt: skip
