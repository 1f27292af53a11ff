"""FuXi-ENS calibration commands (issue 6): ``xfuxi calibrate-ens``, ``calibrate-ens-early``
and ``calibrate-ens-stage``; each tunes a perturbation module on the world's validation
split and saves the calibrated module with a record of the scores."""

from __future__ import annotations

import json

from ..data.channels import channel_name, parse_channel_name
from .common import OVERWRITE, arg, command, load_model, spaced_init_times, world_split

__all__: list[str] = []


def _ens_calibration_args(model: str = "fuxi-hs-t21"):
    """The options every FuXi-ENS calibration command shares (stack under its own);
    ``model`` is the default of ``--model``."""

    def deco(run):
        for a, kw in reversed([
            (("--model",), dict(default=model,
                                help="deterministic model (shipped name or checkpoint)")),
            (("--perturbation",), dict(default="fuxi-ens-hs-t21",
                                       help="module to calibrate (name or directory)")),
            (("--band",), dict(default="0.8,1.2", help="spread-skill band held after day 1")),
            (("-n", "--members"), dict(type=int, default=16)),
            (("--steps",), dict(type=int, default=40,
                                help="forecast steps scored (default 10 days)")),
            (("--inits",), dict(type=int, default=4, help="validation initial times")),
            (("--validation-days",), dict(type=int, default=60,
                                          help="days of the world's validation split")),
            (("--seed",), dict(type=int, default=1)),
            (("--out",), dict(required=True, help="output directory of the calibrated module")),
            (("--overwrite",), OVERWRITE),
        ]):  # fmt: skip
            run = arg(*a, **kw)(run)
        return run

    return deco


def _channel_list(text: str) -> list:
    """Comma-separated channel names (``temperature@850``, ``surface_pressure``) as pairs."""
    return [parse_channel_name(c.strip()) for c in text.split(",")]


def _numbers(text: str, kind: type = float) -> list:
    """Comma-separated candidates (every item must be a number)."""
    return [kind(x) for x in text.split(",")]


def _setup(args):
    """``(model, module, validation split, TuningRun)`` of a calibration command."""
    # torch-backed modules are imported when a command runs (the CLI starts without torch)
    from ..models.ens import load_perturbation
    from ..training.calibration import TuningRun

    model = load_model(args.model)
    vae = load_perturbation(args.perturbation)
    validation = world_split("validation", args.validation_days)
    times = spaced_init_times(validation, model, args.steps, args.inits)
    band = tuple(float(x) for x in args.band.split(","))
    run = TuningRun(n=args.members, steps=args.steps, init_times=times, band=band, seed=args.seed)
    return model, vae, validation, run


def _record(args, run, scores) -> dict:
    """What every calibration's record holds besides its choice: the run and its scores."""
    return {
        "members": args.members, "steps": args.steps,
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
    from ..training.gains import apply_spread_growth, tune_spread_growth

    model, vae, validation, run = _setup(args)
    best, scores = tune_spread_growth(
        validation, model=model, perturbation=vae, initial_gains=_numbers(args.gains),
        step_factors=_numbers(args.factors), weighting=args.weighting,
        run=run,
    )  # fmt: skip
    apply_spread_growth(vae, best)
    table = scores.drop_vars(["crps_by_lead", "prediction_timedelta"])
    chosen = {channel_name(ch): list(p) for ch, p in best.items()}
    meta = dict(getattr(vae, "metadata", {}))
    meta["spread_growth"] = {
        "chosen": chosen, "band": list(run.band), "weighting": args.weighting,
        **_record(args, run, table),
    }  # fmt: skip
    return _save(vae, args, meta, table.to_dataframe().round(3).to_string(),
                 "chosen (initial gain, step factor): " + json.dumps(chosen))  # fmt: skip


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
    from ..training.gains import apply_early_gain, tune_early_gain

    model, vae, validation, run = _setup(args)
    chans = _channel_list(args.channels)
    scored = (
        None if args.score_channels is None
        else list(vae.channels) if args.score_channels.strip() == "all"
        else _channel_list(args.score_channels)
    )  # fmt: skip
    (gain, k), scores = tune_early_gain(
        validation, model=model, perturbation=vae, channels=chans, score_channels=scored,
        gains=_numbers(args.gains), steps_options=_numbers(args.early_steps, int),
        run=run,
    )  # fmt: skip
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


@arg("--channels", default=None, help="channels to tune, comma-separated (default all)")
@arg("--gains", default="1.4,1.8,2.2,2.6", help="gain candidates")
@arg("--stage", type=int, default=1, help="cascade stage: 0 = the first, 1 = the second")
@_ens_calibration_args("fuxi-hs-t21-cascade")
@command(
    "calibrate-ens-stage",
    "tune a FuXi-ENS module's gain before the steps of a cascade's later stage",
)
def _cmd_calibrate_ens_stage(args) -> int:
    from ..training.gains import apply_model_gain, tune_model_gain

    model, vae, validation, run = _setup(args)
    chans = None if args.channels is None else _channel_list(args.channels)
    gain, scores = tune_model_gain(
        validation, model=model, perturbation=vae, stage=args.stage,
        gains=_numbers(args.gains), channels=chans,
        run=run,
    )  # fmt: skip
    name = model.stages[args.stage].name
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
