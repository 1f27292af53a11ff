"""``xfuxi campaign``: forecasts, ensembles or analyses for many initial times on dask.

The campaign runs on a dask.distributed cluster (a local one by default) and writes one zarr
store, resumable after an interruption (:func:`xfuxi.campaign`, docs/scaling.md).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from ..campaigns import CampaignConfig, campaign, completed
from ..config import from_arguments
from .common import (
    arg,
    check_inputs_exist,
    check_writable,
    command,
    config_args,
    usage_error,
)


def _flag_message(message: str) -> str:
    """CampaignConfig's message about a field as the command line names it: ``steps must``
    is ``--steps must``, ``kind='ensemble' needs members`` says ``--kind ensemble needs
    --members``."""
    message = message.removeprefix("CampaignConfig.").replace(" or None;", ";")
    message = re.sub(r"kind='(\w+)'", r"--kind \1", message)
    message = re.sub(r"needs members", "needs --members", message)
    message = re.sub(r"takes no members", "takes no --members", message)
    return re.sub(r"^(\w+) must", lambda m: f"--{m.group(1).replace('_', '-')} must", message)


@arg("data", help="zarr/netCDF file with the initial states (analysis layout; read by workers)")
@arg("--store", required=True, help="campaign zarr store (resumed if it holds this campaign)")
@config_args(CampaignConfig)
@arg("--model", default="fuxi-hs-t21-cascade",
     help="shipped model name or checkpoint (default fuxi-hs-t21-cascade)")  # fmt: skip
@arg("--method", choices=["vae", "perlin", "gaussian"], default=None,
     help="ensemble perturbation (default vae; only with an ensemble)")  # fmt: skip
@arg("--perturbation", default=None,
     help="FuXi-ENS module (shipped name or directory; only with an ensemble)")  # fmt: skip
@arg("--amplitude", type=float, default=None,
     help="VAE inflation or noise std fraction (only with an ensemble; default: the "
          "method's own)")  # fmt: skip
@arg("--init-times", default=None, help="comma-separated initial times (default: all)")
@arg("--observations", default=None, help="observations file (kind assimilate)")
@arg("--scheduler", default=None,
     help="dask scheduler address (default: a local cluster for the run)")  # fmt: skip
@command("campaign", "run forecasts/ensembles for many initial times on dask into one zarr store")
def _cmd_campaign(args: argparse.Namespace) -> int:
    times = None
    if args.init_times:
        times = tuple(t.strip() for t in args.init_times.split(",") if t.strip())
    try:  # --steps 0, --kind ensemble without --members: refused before any work
        config = from_arguments(CampaignConfig, args, init_times=times)
    except ValueError as err:
        return usage_error("campaign", _flag_message(str(err)))
    perturbation = None
    if config.kind == "ensemble" or (config.kind == "assimilate" and config.members):
        # torch-backed: imported when the command runs (the CLI starts without torch)
        from ..forecasting.ensemble import perturbation_for

        try:  # a bad --amplitude: a usage error, before the campaign starts
            perturbation = perturbation_for(
                args.method or "vae", module=args.perturbation, amplitude=args.amplitude
            )
        except ValueError as err:
            return usage_error("campaign", re.sub(r"^\w+\.amplitude", "--amplitude", str(err)))
    else:  # they were silently ignored
        flags = {"--method": args.method, "--perturbation": args.perturbation,
                 "--amplitude": args.amplitude}  # fmt: skip
        given = [flag for flag, value in flags.items() if value is not None]
        if given:
            return usage_error(
                "campaign",
                f"{', '.join(given)} only apply to an ensemble (--kind ensemble, or --kind "
                f"assimilate with --members); --kind {config.kind} without --members makes "
                "no ensemble",
            )
    check_inputs_exist(args.data, args.observations)  # as every command's: exit status 1
    store = Path(os.path.abspath(os.path.expanduser(args.store)))
    check_writable(store, args.store, flag="--store")  # before the cluster starts
    ds = campaign(
        args.data, args.store, config=config, model=args.model, perturbation=perturbation,
        observations=args.observations, client=args.scheduler,
    )  # fmt: skip
    print(f"campaign complete: {completed(args.store).size} initial times in {args.store}")
    print(f"dims {dict(ds.sizes)}")
    return 0
