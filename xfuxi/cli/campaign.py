"""``xfuxi campaign``: forecasts, ensembles or analyses for many initial times on dask.

The campaign runs on a dask.distributed cluster (a local one by default) and writes one zarr
store, resumable after an interruption (:func:`xfuxi.campaign`, docs/scaling.md).
"""

from __future__ import annotations

import argparse

from ..campaigns import campaign, completed
from .common import arg, command


@arg("data", help="zarr/netCDF file with the initial states (analysis layout; read by workers)")
@arg("--store", required=True, help="campaign zarr store (resumed if it holds this campaign)")
@arg("--kind", choices=["forecast", "ensemble", "assimilate"], default="forecast")
@arg("--model", default="fuxi-hs-t21-cascade", help="shipped model name or checkpoint")
@arg("--steps", type=int, default=40, help="number of 6-hour steps")
@arg("--members", type=int, default=None, help="ensemble size (ensemble, assimilate)")
@arg("--seed", type=int, default=0, help="member noise seed (with the time and member)")
@arg("--method", choices=["vae", "perlin", "gaussian"], default="vae",
     help="ensemble perturbation")  # fmt: skip
@arg("--perturbation", default=None, help="FuXi-ENS module (shipped name or directory)")
@arg("--amplitude", type=float, default=None, help="VAE inflation or noise std fraction")
@arg("--init-times", default=None, help="comma-separated initial times (default: all)")
@arg("--observations", default=None, help="observations file (kind assimilate)")
@arg("--scheduler", default=None,
     help="dask scheduler address (default: a local cluster for the run)")  # fmt: skip
@arg("--n-workers", type=int, default=None, help="workers of the local cluster")
@arg("--device", default=None)
@arg("--dtype", default=None)
@command("campaign", "run forecasts/ensembles for many initial times on dask into one zarr store")
def _cmd_campaign(args: argparse.Namespace) -> int:
    perturbation = None
    if args.kind == "ensemble" or (args.kind == "assimilate" and args.members):
        # torch-backed: imported when the command runs (the CLI starts without torch)
        from ..forecasting.ensemble import perturbation_for

        perturbation = perturbation_for(
            args.method, module=args.perturbation, amplitude=args.amplitude
        )
    times = None
    if args.init_times:
        times = [t.strip() for t in args.init_times.split(",") if t.strip()]
    ds = campaign(
        args.data, args.store, kind=args.kind, model=args.model, steps=args.steps,
        members=args.members, seed=args.seed, perturbation=perturbation, init_times=times,
        observations=args.observations, client=args.scheduler, n_workers=args.n_workers,
        device=args.device, dtype=args.dtype,
    )  # fmt: skip
    print(f"campaign complete: {completed(args.store).size} initial times in {args.store}")
    print(f"dims {dict(ds.sizes)}")
    return 0
