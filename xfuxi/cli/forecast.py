"""Forecast commands: ``xfuxi forecast`` (deterministic FuXi, issue 3) and ``xfuxi ensemble``
(FuXi-ENS, Perlin or Gaussian perturbations, issue 6)."""

from __future__ import annotations

import dataclasses

from ..forecasting.deterministic import forecast
from ..forecasting.ensemble import PerlinNoise, ensemble, perturbation_for
from .common import (
    OVERWRITE,
    arg,
    command,
    config_args,
    load_model,
    open_data,
    output_path,
    write_directory,
    zarr_writer,
)

__all__: list[str] = []


@arg("data", help="zarr/netCDF file with the initial states (analysis layout)")
@arg("--model", default="fuxi-hs-t21", help="shipped model name or checkpoint directory")
@arg("--steps", type=int, required=True, help="number of 6-hour steps")
@arg("--batch-size", type=int, default=None)
@arg("--device", default=None)
@arg("--output", required=True, help="output zarr store (WeatherBench2 forecast layout)")
@arg("--overwrite", **OVERWRITE)
@command("forecast", "run a deterministic FuXi forecast from a file of initial states")
def _cmd_forecast(args) -> int:
    out = output_path(args.output, [args.data], kind="forecast", overwrite=args.overwrite)
    model = load_model(args.model, device=args.device)
    fc = forecast(open_data(args.data), model=model, steps=args.steps, batch_size=args.batch_size)
    write_directory(out, zarr_writer(fc), args, kind="forecast")
    print(f"wrote {dict(fc.sizes)} to {out}")
    return 0


#: the Perlin options with flags of their own (the std fraction is ``--amplitude``)
_PERLIN_SKIP = ("std_fraction",)


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
@config_args(PerlinNoise, skip=_PERLIN_SKIP)
@arg("--chunk-size", type=int, default=None)
@arg("--device", default=None)
@arg("--output", required=True, help="output zarr store (WeatherBench2 layout plus 'number')")
@arg("--overwrite", **OVERWRITE)
@command("ensemble", "run an ensemble forecast (FuXi-ENS, Perlin or Gaussian perturbations)")
def _cmd_ensemble(args) -> int:
    noise = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(PerlinNoise)
        if f.name not in _PERLIN_SKIP and getattr(args, f.name) is not None
    }
    spec = perturbation_for(
        args.method, module=args.perturbation, amplitude=args.amplitude, noise_options=noise
    )
    out = output_path(args.output, [args.data], kind="ensemble", overwrite=args.overwrite)
    fc = ensemble(
        open_data(args.data), model=load_model(args.model, device=args.device),
        n=args.members, steps=args.steps, perturbation=spec, seed=args.seed,
        chunk_size=args.chunk_size, device=args.device,
    )  # fmt: skip
    write_directory(out, zarr_writer(fc), args, kind="ensemble")
    print(f"wrote {dict(fc.sizes)} to {out}")
    return 0
