"""The Held–Suarez world (issue 2): ``xfuxi world``."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

from ..config import from_arguments
from ..files import atomic_write_netcdf, check_file_replaceable, netcdf_written_by
from ..world.simulator import (
    SPLITS,
    WorldConfig,
    cache_directory,
    held_suarez,
    held_suarez_split,
    world_cache_path,
    world_config,
)
from .common import (
    OVERWRITE,
    arg,
    check_output_outside,
    command,
    config_args,
    output_path,
    positive_int,
    usage_error,
    write_directory,
    zarr_writer,
)

__all__: list[str] = []


def _flag_message(message: str) -> str:
    """WorldConfig's message about a field (``days must be ...``, ``n_sigma_levels must
    be ...``) as the command line names it (``--days must be ...``)."""
    message = message.removeprefix("WorldConfig.")
    return re.sub(r"^(\w+) (must|has|are)", lambda m: f"--{m.group(1).replace('_', '-')} "
                  f"{m.group(2)}", message)  # fmt: skip


@arg("--split", choices=["train", "validation", "test"], default=None,
     help="a documented split (its own seed and start date: --seed and --start are "
          "refused with it)")  # fmt: skip
@arg("--days", type=positive_int, default=None,
     help="days of output (default 365, or the split's)")  # fmt: skip
@config_args(WorldConfig, skip=("days",))
@arg("--levels", default="250,500,700,850",
     help="pressure levels in hPa, comma-separated (default 250,500,700,850)")  # fmt: skip
@arg("--cache-dir", default=None, help="cache directory (default $XFUXI_CACHE or ~/.cache/xfuxi)")
@arg(
    "--output",
    "--out",
    dest="output",
    default=None,
    help="also write a copy here (a .nc file, else a zarr store)",
)
@arg("--overwrite", **OVERWRITE)
@command("world", "generate (or read from the cache) a Held-Suarez world on pressure levels")
def _cmd_world(args) -> int:
    try:
        levels = tuple(float(x) for x in args.levels.split(",") if x.strip())
    except ValueError:
        return usage_error("world", f"--levels must be comma-separated numbers; got "
                            f"{args.levels!r}")  # fmt: skip
    # the configuration is checked before the (long) run: levels, days, output path
    days = 365 if args.days is None else args.days
    try:
        world = from_arguments(WorldConfig, args, levels=levels, days=days)
    except ValueError as err:  # a bad value of a flag: a usage error, before the run
        return usage_error("world", _flag_message(str(err)))
    if args.split is not None:  # the split fixes them: refused, not silently dropped
        fixed = [f"--{name}" for name in ("seed", "start") if getattr(args, name) is not None]
        if fixed:
            spec = SPLITS[args.split]
            return usage_error(
                "world", f"{', '.join(fixed)}: --split {args.split} fixes the seed "
                f"({spec['seed']}) and the start ({spec['start']}); leave "
                f"{'them' if len(fixed) > 1 else 'it'} out, or drop --split for a world of "
                "your own",
            )  # fmt: skip
    out = None
    cache = str(cache_directory(args.cache_dir))
    replacing = False  # whether the checked netCDF output is an earlier one, replaced
    if args.output and args.output.lower().endswith(NETCDF_SUFFIXES):
        out = _world_netcdf_path(args.output, overwrite=args.overwrite, cache=cache)
        replacing = os.path.lexists(out)  # (a file appearing during the run is not replaced)
    elif args.output:
        out = output_path(args.output, [cache], kind="world", overwrite=args.overwrite)
    if args.split is not None:
        ds = held_suarez_split(args.split, days=args.days, config=world, cache_dir=args.cache_dir)
    else:
        ds = held_suarez(config=world, cache_dir=args.cache_dir)
    config = json.loads(ds.attrs["config"])
    # the fields (__dataclass_fields__ holds the base's class variables too)
    cfg = {f.name: config[f.name] for f in dataclasses.fields(WorldConfig)}
    print(f"Held-Suarez world {dict(ds.sizes)}, {ds.time.values[0]} .. {ds.time.values[-1]}")
    path = world_cache_path(world_config(**cfg), args.cache_dir)
    if not path.exists() and args.split is not None:  # sliced from the cached full split
        full = world_config(**{**cfg, "days": SPLITS[args.split]["days"]})
        path = world_cache_path(full, args.cache_dir)
    print(f"cache: {path}")
    if out is not None and out.suffix.lower() in NETCDF_SUFFIXES:
        out.parent.mkdir(parents=True, exist_ok=True)  # as write_netcdf and the zarr branch
        atomic_write_netcdf(ds, out, writer=WORLD_WRITER, replacing=replacing)
        print(f"wrote {out}")
    elif out is not None:
        write_directory(out, zarr_writer(ds), args, kind="world")
        print(f"wrote {out}")
    return 0


def _world_netcdf_path(output: str, *, overwrite: bool, cache: str | None = None) -> Path:
    """The absolute ``--output`` netCDF file of ``xfuxi world``, checked before the (long)
    run as the zarr branch's :func:`~xfuxi.cli.common.output_path` is: not in the world
    ``cache`` (xfuxi does not write into what it reads), no file where a folder above it
    should be (a missing folder is made when the file is written), and new or (with
    ``overwrite``) a world file that xfuxi wrote (its attrs say so). ``cache`` defaults
    to the cache the world is read from without ``--cache-dir``."""
    cache = str(cache_directory(None)) if cache is None else cache
    out = check_output_outside(output, [cache])
    check_file_replaceable(out, overwrite=overwrite, writer="xfuxi world", ours=_is_world_file,
                           flag="--overwrite")  # fmt: skip
    return out


#: ``--output`` endings written as one netCDF file (any case); others are zarr stores
NETCDF_SUFFIXES: tuple[str, ...] = (".nc", ".nc4")

#: the ``xfuxi_writer`` of the netCDF files ``xfuxi world`` writes
WORLD_WRITER = "xfuxi world"


def _is_world_file(path: Path) -> bool:
    """A world file this command wrote at ``path`` (any file with the world's attributes
    passed: a user's subset of one, saved by xarray, carries them too)."""
    return netcdf_written_by(path, WORLD_WRITER)
