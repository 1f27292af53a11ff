"""Forecast commands: ``xfuxi forecast`` (deterministic FuXi, issue 3) and ``xfuxi ensemble``
(FuXi-ENS, Perlin or Gaussian perturbations, issue 6)."""

from __future__ import annotations

import dataclasses
import re

from ..forecasting.deterministic import forecast
from ..forecasting.ensemble import PerlinNoise, ensemble, perturbation_for
from .common import (
    arg,
    check_inputs_exist,
    command,
    config_args,
    function_args,
    function_kwargs,
    load_model,
    open_data,
    output_args,
    output_path,
    positive_int,
    usage_error,
    write_directory,
    zarr_writer,
)

__all__: list[str] = []


def _write_forecast(out, fc, args, *, kind: str) -> int:
    """Write the forecast ``fc`` of a command to ``out`` (its checked ``--output``)."""
    write_directory(out, zarr_writer(fc), args, kind=kind)
    print(f"wrote {dict(fc.sizes)} to {out}")
    return 0


#: the parameters of :func:`xfuxi.forecast` that are flags of ``xfuxi forecast``
FORECAST_FLAGS = ("model", "steps", "batch_size", "device")


@arg("data", help="zarr/netCDF file with the initial states (analysis layout)")
@function_args(
    forecast,
    only=FORECAST_FLAGS,
    types={"device": str, "steps": positive_int, "batch_size": positive_int},
)
@output_args("output zarr store (WeatherBench2 forecast layout)")
@command("forecast", "run a deterministic FuXi forecast from a file of initial states")
def _cmd_forecast(args) -> int:
    check_inputs_exist(args.data)
    out = output_path(args.output, [args.data], kind="forecast", overwrite=args.overwrite)
    options = function_kwargs(args, FORECAST_FLAGS)
    options["model"] = load_model(args.model, device=args.device)
    return _write_forecast(out, forecast(open_data(args.data), **options), args, kind="forecast")


def _flag_message(message: str) -> str:
    """An API's message about a parameter (``PerlinNoise.octaves must ...``,
    ``ensemble.amplitude must ...``) as the command line names it (``--octaves must ...``)."""
    return re.sub(r"^\w+\.(\w+) ", lambda m: f"--{m.group(1).replace('_', '-')} ", message)


#: the Perlin options with flags of their own (the std fraction is ``--amplitude``)
_PERLIN_SKIP = ("std_fraction",)
#: the parameters of :func:`xfuxi.ensemble` that are flags of ``xfuxi ensemble``
ENSEMBLE_FLAGS = ("model", "n", "steps", "seed", "chunk_size", "device")


@arg("data", help="zarr/netCDF file with the initial states (analysis layout)")
@function_args(
    ensemble,
    only=ENSEMBLE_FLAGS,
    flags={"n": ("-n", "--members")},
    defaults={"n": 48},  # the function has none: FuXi-ENS's 48 members
    types={"device": str, **{k: positive_int for k in ("n", "steps", "chunk_size")}},
)
@arg("--method", choices=["vae", "perlin", "gaussian"], default="vae",
     help="vae: FuXi-ENS; perlin / gaussian: noise added to the initial pair "
          "(default vae)")  # fmt: skip
@arg("--perturbation", default=None, help="perturbation module (default: the shipped one)")
@arg("--amplitude", type=float, default=None,
     help="vae: inflation of the learned perturbations (default 1); perlin / gaussian: noise "
     "std as a fraction of each channel's std (default 0.05)")  # fmt: skip
@config_args(PerlinNoise, skip=_PERLIN_SKIP)
@output_args("output zarr store (WeatherBench2 layout plus 'number')")
@command("ensemble", "run an ensemble forecast (FuXi-ENS, Perlin or Gaussian perturbations)")
def _cmd_ensemble(args) -> int:
    noise = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(PerlinNoise)
        if f.name not in _PERLIN_SKIP and getattr(args, f.name) is not None
    }
    # named by their flags, not the API keyword; Gaussian noise takes its std too
    allowed = {"perlin": set(noise), "gaussian": {"perturbation_std"}}.get(args.method, set())
    bad = sorted(set(noise) - allowed)
    if bad:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in bad)
        where = "perlin or gaussian" if bad == ["perturbation_std"] else "perlin"
        return usage_error("ensemble", f"{flags} only apply to --method {where}")
    if not 0 <= args.seed < 2**63:  # found by the ensemble's run, after the model and data
        return usage_error("ensemble", f"--seed must be in [0, 2**63); got {args.seed}")
    try:  # a bad --amplitude or Perlin option is a usage error, found before any work
        spec = perturbation_for(
            args.method, module=args.perturbation, amplitude=args.amplitude, noise_options=noise
        )
    except ValueError as err:
        return usage_error("ensemble", _flag_message(str(err)))
    check_inputs_exist(args.data)
    out = output_path(args.output, [args.data], kind="ensemble", overwrite=args.overwrite)
    options = function_kwargs(args, ENSEMBLE_FLAGS)
    options["model"] = load_model(args.model, device=args.device)
    fc = ensemble(open_data(args.data), perturbation=spec, **options)
    return _write_forecast(out, fc, args, kind="ensemble")
