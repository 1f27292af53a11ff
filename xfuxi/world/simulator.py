"""The Held–Suarez world: a synthetic, eddying atmosphere standing in for ERA5.

See the documentation, docs/design.md (Embedded world).

The world is the dry primitive-equation core of ``dinosaur`` (the spectral core of NeuralGCM)
on sigma levels, forced as Held & Suarez (1994) prescribe: Newtonian relaxation of temperature
toward a zonally symmetric radiative equilibrium and Rayleigh drag in the boundary layer. Its
climate is stationary (no seasons, no diurnal cycle) and, after about 100 days of spin-up,
full of baroclinic eddies in geostrophic balance. Output is on pressure levels every 6 hours,
in SI units and in xfuxi's canonical layout, so that everything that takes ERA5 or
WeatherBench2 data takes the world too.

Variables
---------
``geopotential`` (m² s⁻²), ``temperature`` (K), ``u_component_of_wind``,
``v_component_of_wind`` (m s⁻¹) and ``passive_tracer`` (1) on pressure levels, and
``surface_pressure`` (Pa). The world is dry, so a passive tracer stands in for moisture: it is
advected by the model winds and relaxed toward an equilibrium profile
``q_eq = exp(-(φ / 30°)²) · σ²`` (high in the tropics and near the surface, low toward the
poles and aloft) on a timescale of 5 days, which keeps sharp, eddy-stirred gradients. It is
*not* humidity and has no effect on the dynamics.

Train / validation / test convention
------------------------------------
The Held–Suarez climate is stationary, so independent runs that differ only in the seed of
the initial perturbation are independent samples of the same climate. :data:`SPLITS` fixes one
seed, start date and default length per split, with date ranges that never overlap, so a test
period can be made without generating the training years:

=========== ====== ============ =========================================
split       seed   start        default length
=========== ====== ============ =========================================
train       1      2000-01-01   4 × 365 days (one continuous run)
validation  2      2010-01-01   365 days
test        3      2020-01-01   365 days
=========== ====== ============ =========================================

Caching
-------
Generated worlds are written as zarr stores under the cache directory — ``$XFUXI_CACHE``,
else ``xfuxi.get_options()["cache_dir"]``, else ``~/.cache/xfuxi`` — in a folder named by a
hash of the full configuration and of the xfuxi and dinosaur versions. The store is written
into a temporary folder beside the target and moved into place with :func:`os.replace`
(:func:`xfuxi.files.replace_directory`), so a killed run never leaves a half-written world
behind; a completeness marker holding the size and sha256 of every file of the store is
written into it last. The next call with the same configuration checks the store against its
marker and opens it instead of running the model.

A cached store that fails the check (a file missing, truncated or changed) or that has no
marker (written by an older xfuxi) is xfuxi's own and deterministic, so it is generated again,
with a warning in the log naming the store and what was wrong; the new store replaces it
atomically. A directory at a cache path that is neither (no marker, and not the store of that
configuration) is never deleted: an error names it. Temporary folders that killed writers left
in the cache directory are removed once their writer's process is gone (or, where that cannot
be told, after an hour without change). See the data-safety policy (docs/safety.md).

References
----------
Held, I. M. and Suarez, M. J. (1994): A proposal for the intercomparison of the dynamical
cores of atmospheric general circulation models. *Bull. Amer. Meteor. Soc.*, 75, 1825–1830.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import logging
import os
import platform
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from .._version import __version__
from ..config import Config, field, is_integer, require_package, user_stacklevel
from ..data.schema import ERA5_PRESSURE_LEVELS, VARIABLES, validate
from ..docstrings import unexpected_keywords
from ..files import (
    CorruptedOutputError,
    OutputExistsError,
    read_marker,
    remove_stale_temporaries,
    replace_directory,
    verify_directory,
)
from ..options import get_options, progress_enabled
from .dynamics import TRACER_TAU_DAYS, WorldModel, get_model  # noqa: F401  (kept importable)

__all__ = [
    "GENERATOR_VERSION",
    "SPLITS",
    "WorldConfig",
    "cache_directory",
    "held_suarez",
    "held_suarez_split",
    "world_cache_path",
    "world_config",
]

log = logging.getLogger(__name__)

#: bump when the generator changes in a way that changes its output (invalidates caches)
GENERATOR_VERSION = 1

#: split -> (seed, start date, default length in days); see the module docstring
SPLITS: dict[str, dict[str, Any]] = {
    "train": {"seed": 1, "start": "2000-01-01", "days": 4 * 365},
    "validation": {"seed": 2, "start": "2010-01-01", "days": 365},
    "test": {"seed": 3, "start": "2020-01-01", "days": 365},
}

_RESOLUTIONS = {"T21": "T21", "T42": "T42"}
#: time step (minutes) per resolution; T21 is stable at 30 min, T42 needs a shorter one
_TIME_STEP_MIN = {"T21": 30.0, "T42": 15.0}
PRESSURE_VARS = (
    "geopotential",
    "temperature",
    "u_component_of_wind",
    "v_component_of_wind",
    "passive_tracer",
)

#: the kind recorded in the marker of a cached store (:mod:`xfuxi.files`)
CACHE_KIND = "world-cache"
#: how the stores that xfuxi keeps in the cache directory are named
CACHE_PREFIXES = ("held_suarez-", "tracer_anomalies-")


# ---------------------------------------------------------------------------------------------
# configuration and cache
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WorldConfig(Config):
    """A Held–Suarez world: its period, its seed and the model that runs it.

    One schema for :func:`held_suarez` (its keywords are these fields), the splits
    (:func:`held_suarez_split` fixes ``seed`` and ``start``) and ``xfuxi world`` (its flags).
    Checked on creation; :meth:`normalized` is the form that names the cache store.

    Parameters
    ----------
    days : int, default 365
        Length of the output period after spin-up, in days.
    start : str, default "2000-01-01"
        Valid time of the first output, one output interval (6 hours) after the end of the
        spin-up.
    seed : int, default 0
        Seeds the perturbation that breaks the zonal symmetry of the initial state (a
        surface-pressure bump at a random place and white vorticity noise of 10⁻⁶ s⁻¹).
        The same configuration gives the same world.
    resolution : {"T21", "T42"}, default "T21"
        Spectral truncation: T21 is a 64 × 32 Gaussian grid (5.625°, 30 min step), T42 a
        128 × 64 grid (2.8125°, 15 min step).
    levels : sequence of float, default (250, 500, 700, 850)
        Output pressure levels in hPa (up to 13, inside the model's sigma levels).
    spinup_days : int, default 100
        Whole days run from the isothermal rest state before output starts; about 100 days
        are needed for saturated eddies.
    n_sigma_levels : int, default 8
        Equidistant sigma levels of the model.
    output_hours : int, default 6
        Output interval in hours.

    Raises
    ------
    ValueError
        For any out-of-range or ill-typed value, naming it.

    Examples
    --------
    >>> import xfuxi
    >>> config = xfuxi.WorldConfig(days=30, levels=(850, 500))
    >>> normal = config.normalized()  # levels sorted, start as ISO time: names the cache
    >>> normal["levels"], normal["start"], normal["resolution"]
    ([500, 850], '2000-01-01T00:00:00', 'T21')
    >>> xfuxi.WorldConfig(days=0)
    Traceback (most recent call last):
    ...
    ValueError: days must be a positive integer; got 0

    ``xfuxi.datasets.held_suarez(config=config)`` generates (or reads from the cache) this
    world.
    """

    days: int = field(365, help="days of output after spin-up")
    start: str = field("2000-01-01", help="date of the first output")
    seed: int = field(0, help="seed of the initial perturbation")
    resolution: Literal["T21", "T42"] = field("T21", help="spectral truncation")
    levels: tuple[float, ...] = field(
        (250, 500, 700, 850), help="output pressure levels in hPa", cli=False
    )
    spinup_days: int = field(100, help="spin-up days before output")
    n_sigma_levels: int = field(8, help="model sigma levels")
    output_hours: int = field(6, help="output interval in hours")

    def __post_init__(self) -> None:
        self.normalized()

    def normalized(self) -> dict[str, Any]:
        """The configuration in normalised, hashable form (levels sorted, start as ISO
        string, time step, tracer and generator versions): what names the cache store."""
        days, start, seed, resolution = self.days, self.start, self.seed, self.resolution
        levels, spinup_days = self.levels, self.spinup_days
        n_sigma_levels, output_hours = self.n_sigma_levels, self.output_hours
        if not is_integer(days) or days < 1:
            raise ValueError(f"days must be a positive integer; got {days!r}")
        if not is_integer(seed) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
        if resolution not in _RESOLUTIONS:
            raise ValueError(
                f"resolution must be one of {sorted(_RESOLUTIONS)}; got {resolution!r}"
            )
        try:
            start_ts = pd.Timestamp(start)
        except (ValueError, TypeError) as err:
            raise ValueError(f"start must be a date such as '2000-01-01'; got {start!r}") from err
        if start_ts.tzinfo is not None:
            raise ValueError(f"start must be a naive (UTC) date; got {start!r}")
        if (
            isinstance(spinup_days, bool)
            or not np.isfinite(spinup_days)
            or spinup_days < 0
            or float(spinup_days) != int(spinup_days)
        ):
            raise ValueError(
                f"spinup_days must be a whole number of days >= 0; got {spinup_days!r}"
            )
        if isinstance(n_sigma_levels, bool) or not 4 <= int(n_sigma_levels) <= 64:
            raise ValueError(f"n_sigma_levels must be an integer in 4..64; got {n_sigma_levels!r}")
        if output_hours not in (1, 2, 3, 6, 12, 24):
            raise ValueError(
                f"output_hours must divide 24 (1, 2, 3, 6, 12, 24); got {output_hours!r}"
            )
        step_min = _TIME_STEP_MIN[resolution]
        if (output_hours * 60) % step_min:
            raise ValueError(f"output_hours={output_hours} is not a multiple of the time step")
        lev = [float(x) for x in np.atleast_1d(np.asarray(levels, dtype="float64"))]
        if not lev:
            raise ValueError("levels must name at least one pressure level (hPa)")
        if len(set(lev)) != len(lev):
            raise ValueError(f"levels has duplicates: {list(levels)}")
        if len(lev) > 13:
            raise ValueError(f"at most 13 pressure levels are supported; got {len(lev)}")
        unknown = [p for p in lev if p not in ERA5_PRESSURE_LEVELS]
        if unknown:
            raise ValueError(
                f"levels {[int(p) if p.is_integer() else p for p in unknown]} hPa are not standard "
                f"pressure levels; choose levels among the ERA5 levels {list(ERA5_PRESSURE_LEVELS)}"
            )
        sigma_top = 1.0 / (2 * int(n_sigma_levels))
        for p in lev:
            # levels above the top sigma level or below the lowest one would be extrapolated
            if not (1000 * sigma_top <= p <= 1000 * (1 - sigma_top)):
                raise ValueError(
                    f"level {p:g} hPa lies outside the model's sigma levels (about "
                    f"{1000 * sigma_top:g}..{1000 * (1 - sigma_top):g} hPa for "
                    f"n_sigma_levels={n_sigma_levels}); choose levels inside that range"
                )
        lev = sorted(lev)
        return {
            "days": int(days),
            "start": start_ts.isoformat(),
            "seed": int(seed),
            "resolution": resolution,
            "levels": [int(p) if p.is_integer() else p for p in lev],
            "spinup_days": float(spinup_days),
            "n_sigma_levels": int(n_sigma_levels),
            "output_hours": int(output_hours),
            "time_step_minutes": step_min,
            "tracer_relaxation_days": TRACER_TAU_DAYS,
            "generator_version": GENERATOR_VERSION,
        }


def world_config(**options: Any) -> dict[str, Any]:
    """Check a Held–Suarez configuration and return it in normalised, hashable form.

    Parameters
    ----------
    **options
        Fields of :class:`WorldConfig` (``days``, ``start``, ``seed``, ``resolution``,
        ``levels``, ``spinup_days``, ``n_sigma_levels``, ``output_hours``).

    Returns
    -------
    dict
        JSON-serialisable configuration (levels sorted, start as ISO string, time step).

    Raises
    ------
    ValueError
        As :class:`WorldConfig`.
    TypeError
        For a keyword that is no field of :class:`WorldConfig`.

    Examples
    --------
    >>> world_config(days=2, levels=(850, 250))["levels"]
    [250, 850]
    """
    return WorldConfig(**options).normalized()


def package_versions() -> dict[str, str]:
    dinosaur = require_package(
        "dinosaur",
        extra="world",
        what="the embedded world (simulated by dinosaur, cached by its version)",
    )

    return {"xfuxi": __version__, "dinosaur": str(getattr(dinosaur, "__version__", "unknown"))}


def cache_directory(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the directory where generated worlds are cached.

    Parameters
    ----------
    cache_dir : path, optional
        Explicit directory; wins over everything else.

    Returns
    -------
    pathlib.Path
        ``cache_dir``, else ``$XFUXI_CACHE``, else ``xfuxi.get_options()["cache_dir"]``,
        else ``~/.cache/xfuxi``.

    Examples
    --------
    >>> str(cache_directory("/tmp/somewhere"))
    '/tmp/somewhere'
    """

    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("XFUXI_CACHE")
    if env:
        return Path(env).expanduser()
    opt = get_options().get("cache_dir")
    if opt:
        return Path(opt).expanduser()
    return Path("~/.cache/xfuxi").expanduser()


def world_cache_path(config: dict[str, Any], cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the zarr store path for a configuration (from :func:`world_config`).

    The name is ``held_suarez-<resolution>-<hash>.zarr`` where the hash covers the full
    configuration and the xfuxi and dinosaur versions.

    Examples
    --------
    >>> p = world_cache_path(world_config(days=1), "/tmp/c")
    >>> p.name.startswith("held_suarez-T21-") and p.suffix == ".zarr"
    True
    """
    key = json.dumps({"config": config, "versions": package_versions()}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_directory(cache_dir) / f"held_suarez-{config['resolution']}-{digest}.zarr"


# ---------------------------------------------------------------------------------------------
# running the model (xfuxi.world.dynamics) and writing its output
# ---------------------------------------------------------------------------------------------


_CONFIG_KEYS = ("resolution", "levels", "spinup_days", "n_sigma_levels", "output_hours")


def _chunks(config: dict[str, Any], progress: bool) -> Iterator[xr.Dataset]:
    """Run the world of ``config`` and yield its output in consecutive time chunks."""
    from tqdm.auto import tqdm

    model = get_model(config)
    state = model.initial_state(config["seed"])
    n_spin = int(config["spinup_days"])
    days = config["days"]
    bar = tqdm(
        total=n_spin + days,
        unit="day",
        desc=f"Held-Suarez {config['resolution']} seed={config['seed']}",
        disable=not progress,
    )
    log.info(
        "generating a Held-Suarez world: %d spin-up days + %d days (%s)",
        n_spin,
        days,
        config["resolution"],
    )
    start = np.datetime64(pd.Timestamp(config["start"]).to_datetime64(), "ns")
    step = np.timedelta64(config["output_hours"], "h")
    levels = np.asarray(config["levels"], dtype="float64")
    n_out = days * model.outputs_per_day
    with bar:
        for _ in range(n_spin):
            state = model.spin_day(state)
            bar.update(1)
        done = 0
        pending = model.run_chunk(state) if n_out > 0 else None
        while done < n_out:
            state, out = pending
            take = min(model.chunk, n_out - done)
            if done + take < n_out:
                # jax dispatches asynchronously: the next chunk is integrated while this one
                # is checked, converted and written (no jax operation on ``out`` below, so
                # nothing waits for the next chunk)
                pending = model.run_chunk(state)
            arrays = {k: np.asarray(v)[:take] for k, v in out.items()}
            bad = [k for k, a in arrays.items() if not np.all(np.isfinite(a))]
            if bad:
                raise FloatingPointError(
                    f"the Held-Suarez model blew up (non-finite {bad}) between "
                    f"{start + done * step} and {start + (done + take) * step}"
                )
            times = start + np.arange(done, done + take) * step
            yield pressure_dataset(arrays, times, levels, model.latitude, model.longitude)
            done += take
            bar.update(take / model.outputs_per_day)


def pressure_dataset(
    arrays: dict[str, np.ndarray],
    times: np.ndarray,
    levels: np.ndarray,
    latitude: np.ndarray,
    longitude: np.ndarray,
) -> xr.Dataset:
    data_vars = {}
    for name in PRESSURE_VARS:
        data_vars[name] = (("time", "level", "latitude", "longitude"), arrays[name])
    data_vars["surface_pressure"] = (("time", "latitude", "longitude"), arrays["surface_pressure"])
    ds = xr.Dataset(
        data_vars,
        coords={
            "time": ("time", times.astype("datetime64[ns]")),
            "level": ("level", levels, {"units": "hPa", "long_name": "pressure level"}),
            "latitude": ("latitude", latitude, {"units": "degrees_north"}),
            "longitude": ("longitude", longitude, {"units": "degrees_east"}),
        },
    )
    for name in ds.data_vars:
        units, description = VARIABLES[str(name)]
        ds[name].attrs = {"units": units, "long_name": description}
    ds["passive_tracer"].attrs.update(
        description=(
            "passive tracer standing in for moisture in the dry Held-Suarez world; it is NOT "
            "humidity. Advected by the model winds and relaxed toward "
            "exp(-(lat/30deg)**2) * sigma**2 with a "
            f"{TRACER_TAU_DAYS:g}-day timescale."
        ),
        passive_tracer="true",
    )
    return ds


def _jax_version() -> str:
    try:
        import jax
        import jaxlib

        return f"jax {jax.__version__}, jaxlib {jaxlib.__version__}"
    except ImportError:  # pragma: no cover - the world needs jax
        return "unknown"


def world_attrs(config: dict[str, Any]) -> dict[str, Any]:
    versions = package_versions()
    return {
        "title": f"Held-Suarez world ({config['resolution']}, seed {config['seed']})",
        "source": (
            f"dinosaur {versions['dinosaur']} dry primitive equations on "
            f"{config['n_sigma_levels']} sigma levels with Held-Suarez (1994) forcing, "
            f"generated by xfuxi {versions['xfuxi']}"
        ),
        "references": "Held and Suarez (1994), Bull. Amer. Meteor. Soc. 75, 1825-1830",
        "seasonal_cycle": "none",
        "diurnal_cycle": "none",
        "dinosaur_version": versions["dinosaur"],
        "xfuxi_version": versions["xfuxi"],
        # the run is chaotic: another jax/jaxlib or CPU gives another (equally valid) world
        "jax_version": _jax_version(),
        "machine": platform.machine(),
        "config": json.dumps(config, sort_keys=True),
        **{f"config_{k}": (json.dumps(v) if isinstance(v, list) else v) for k, v in config.items()},
    }


def _own_unmarked_store(path: Path, config: dict[str, Any]) -> bool:
    """Whether ``path`` is the cache store of ``config`` written by an xfuxi older than the
    completeness marker: named as xfuxi names its stores, with ``config`` in its attrs."""
    if not path.name.startswith(CACHE_PREFIXES) or path.suffix != ".zarr":
        return False
    try:
        attrs = json.loads((path / ".zattrs").read_text())
        return json.loads(attrs["config"]) == config
    except (OSError, ValueError, KeyError, TypeError):
        return False


def cached_store_is_valid(target: Path, config: dict[str, Any]) -> bool:
    """Whether the cache store ``target`` of ``config`` is complete and intact.

    Stale temporary folders of killed writers are removed from the cache directory first.
    False if ``target`` does not exist or must be generated again: it fails the check
    against its marker, or has none and was written by an older xfuxi (both logged as
    warnings naming the store). See the module docstring.

    Raises
    ------
    xfuxi.files.OutputExistsError
        ``target`` exists but is not xfuxi's: no marker, and not the store of ``config``.
    """
    remove_stale_temporaries(target.parent, prefixes=CACHE_PREFIXES)
    if not os.path.lexists(target):
        return False
    if read_marker(target) is None:
        if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
            return False
        if _own_unmarked_store(target, config):
            _say_regenerated(
                f"{target} was written by an older xfuxi, without a completeness marker, and "
                "cannot be verified; generating it again"
            )
            return False
        raise OutputExistsError(
            f"{target} is at a path of xfuxi's cache but is not an xfuxi cache store (no "
            "completeness marker, other contents); xfuxi never deletes what it did not write: "
            "move it away or use another cache directory"
        )
    try:
        verify_directory(target, kind=CACHE_KIND, remember=True)  # hashed once a process
    except CorruptedOutputError as err:
        _say_regenerated(f"{err}; it is xfuxi's own cache, so it is generated again")
        return False
    return True


def _say_regenerated(message: str) -> None:
    """Tell the user that a cache store is generated again: a warning (only: a log line as
    well printed it twice where logging is not configured, through logging's last resort)."""
    warnings.warn(message, UserWarning, stacklevel=user_stacklevel())


def write_cached_store(target: Path, write: Callable[[Path], None], config: dict[str, Any]) -> None:
    """Write the cache store of ``config`` atomically, with its completeness marker.

    ``write(store)`` fills a temporary folder beside ``target``; a store of ``config`` that
    is there already (damaged, or unmarked from an older xfuxi) is replaced; one that another
    process put there meanwhile is kept.
    """
    replace_directory(
        target,
        write,
        kind=CACHE_KIND,
        overwrite=True,
        keep_existing=True,
        checksums=True,
        metadata={"config": config},
        adopt=lambda path: _own_unmarked_store(path, config),
    )


def _write_store(
    chunks: Iterator[xr.Dataset], target: Path, attrs: dict[str, Any], config: dict[str, Any]
) -> None:
    """Write chunks into a temporary zarr store beside ``target``, then move it into place.

    The first chunk (and the spin-up before it) is computed before the temporary store is
    made, so that a temporary store always changes as its writer goes on (see
    :func:`xfuxi.files.remove_stale_temporaries`).
    """
    chunks = iter(chunks)
    head = next(chunks, None)
    if head is None:
        raise ValueError(f"no output to write to {target}")

    def write(store: Path) -> None:
        first = True
        for ds in itertools.chain([head], chunks):
            # every write carries the attrs: appending replaces the store's attrs
            ds = ds.assign_attrs(attrs)
            if first:
                encoding = {
                    k: {"chunks": (ds.sizes["time"], *ds[k].shape[1:])} for k in ds.data_vars
                }
                ds.to_zarr(store, mode="w", encoding=encoding, consolidated=True, zarr_format=2)
                first = False
            else:
                ds.to_zarr(store, append_dim="time", consolidated=True, zarr_format=2)

    write_cached_store(target, write, config)


def held_suarez(
    *,
    config: WorldConfig | dict | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool | None = None,
    **options: Any,
) -> xr.Dataset:
    """Generate (or load from the cache) a Held–Suarez world on pressure levels.

    Parameters
    ----------
    config : WorldConfig or dict, optional
        The world: period, seed, resolution, levels, spin-up, sigma levels, output interval
        (default ``WorldConfig()``: 365 days from 2000-01-01, seed 0, T21, 250/500/700/850
        hPa, 100 days of spin-up).
    cache_dir : path, optional
        Cache directory (default: $XFUXI_CACHE, ``xfuxi.get_options()["cache_dir"]`` or
        ``~/.cache/xfuxi``).
    use_cache : bool, default True
        Read the world from the cache if it is there and intact (checked against the
        checksums recorded when it was written), and write it there if not; a damaged
        store, or one written by an older xfuxi without checksums, is generated again (see
        the module docstring). If False, the world is computed and returned in memory and
        the cache is not touched.
    progress : bool, optional
        Show a progress bar (default: ``xfuxi.get_options()["progress"]``).
    **options
        Fields of :class:`WorldConfig` as keywords (``days=2``, ``seed=4``, ...), applied on
        top of ``config``.

    Returns
    -------
    xarray.Dataset
        Canonical dims ``time, level, latitude, longitude`` (latitude ascending, longitude
        0..360), float32 variables ``geopotential``, ``temperature``,
        ``u_component_of_wind``, ``v_component_of_wind``, ``passive_tracer`` (on levels) and
        ``surface_pressure``, with units attrs; dataset attrs hold the full configuration,
        the dinosaur version, ``title`` and ``source``. Loaded lazily (dask) from the cache.

    Raises
    ------
    ValueError
        For an invalid configuration (see :class:`WorldConfig`).
    TypeError
        For a keyword that is no field of :class:`WorldConfig`.
    FloatingPointError
        If the model blows up.
    xfuxi.files.OutputExistsError
        If the cache path holds a directory that is not an xfuxi cache store.

    Notes
    -----
    Held & Suarez (1994) forcing on dinosaur's sigma-coordinate primitive equations, time
    stepping by the IMEX SIL3 Runge–Kutta scheme with an exponential spectral filter.
    Geopotential is integrated hydrostatically on sigma levels from a flat surface
    (surface geopotential 0) and, like the other fields, interpolated linearly in sigma to
    the pressure levels; geopotential varies like ln p, so this puts it up to about 2 % too
    high between sigma levels (docs/explanation/world.md). See the module docstring for the
    passive tracer, the train/validation/test convention and the cache.

    Examples
    --------
    >>> import tempfile
    >>> ds = held_suarez(days=1, spinup_days=0, cache_dir=tempfile.mkdtemp(), progress=False)
    >>> dict(ds.sizes)
    {'time': 4, 'level': 4, 'latitude': 32, 'longitude': 64}
    >>> str(ds.time.values[1])[:19], ds.temperature.attrs["units"]
    ('2000-01-01T06:00:00', 'K')
    """

    fields = [f.name for f in dataclasses.fields(WorldConfig)]
    unknown = set(options) - set(fields)
    if unknown:  # (named as held_suarez's, not as WorldConfig.__init__'s)
        known = [*inspect.signature(held_suarez).parameters, *fields]
        raise unexpected_keywords("held_suarez", unknown, known)
    config = WorldConfig.from_dict(config).replace(**options).normalized()
    show = progress_enabled(progress)
    attrs = world_attrs(config)
    if not use_cache:
        ds = xr.concat(list(_chunks(config, show)), dim="time")
        return validate(ds.assign_attrs(attrs))
    target = world_cache_path(config, cache_dir)
    if cached_store_is_valid(target, config):
        log.info("reading the Held-Suarez world from the cache: %s", target)
    else:
        log.info("Held-Suarez world not in the cache; generating %s", target)
        _write_store(_chunks(config, show), target, attrs, config)
    # attrs are re-applied so that stores written by an older xfuxi carry current metadata;
    # the cache's storage encoding (zarr v2 codecs, chunks) is its own, not the data's: kept,
    # it would make ``ds.to_zarr(...)`` in zarr's current format fail
    return validate(xr.open_zarr(target)).drop_encoding().assign_attrs(attrs)


def held_suarez_split(split: str, *, days: int | None = None, **kwargs: Any) -> xr.Dataset:
    """Return the train, validation or test period of the Held–Suarez world.

    Parameters
    ----------
    split : {"train", "validation", "test"}
        Which period; each maps to a fixed seed, start date and default length
        (:data:`SPLITS`): train = one continuous 4 × 365-day run from 2000-01-01 (seed 1),
        validation = 365 days from 2010-01-01 (seed 2), test = 365 days from 2020-01-01
        (seed 3).
    days : int, optional
        Override the split's default length (a positive integer; the period must end by
        the next split's start, so that the splits never overlap). A shorter period is the
        start of the full split (the world is deterministic); it is sliced from the full
        split when that is in the cache, and generated on its own otherwise.
    **kwargs
        Other arguments of :func:`held_suarez` (``resolution``, ``levels``, ``cache_dir``,
        ``config``, ...); ``seed`` and ``start`` are fixed by the split (those of a
        ``config`` are not used, nor is its ``days``).

    Returns
    -------
    xarray.Dataset
        As :func:`held_suarez`, with attr ``split``.

    Raises
    ------
    ValueError
        Unknown split, ``seed`` / ``start`` passed, ``days`` not a positive integer, or a
        ``days`` that would run the split into the next split's dates (more days than
        lie between the split's start and the next split's start: 3653 for train, 3652
        for validation; the test split is the last).

    Notes
    -----
    The Held–Suarez climate is stationary, so runs from independent initial perturbations
    sample the same climate; the splits are such runs, with non-overlapping dates.

    Examples
    --------
    >>> import tempfile
    >>> ds = held_suarez_split("test", days=1, spinup_days=0, cache_dir=tempfile.mkdtemp(),
    ...                        progress=False)
    >>> ds.attrs["split"], ds.attrs["config_seed"], str(ds.time.values[0])[:10]
    ('test', 3, '2020-01-01')
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}; got {split!r}")
    fixed = [k for k in ("seed", "start") if k in kwargs]
    if fixed:
        raise ValueError(f"{fixed} are fixed by the split {split!r}; use held_suarez() instead")
    spec = SPLITS[split]
    if days is not None and (not is_integer(days) or days < 1):  # before any comparison
        raise ValueError(f"days must be a positive integer; got {days!r}")
    n_days = spec["days"] if days is None else int(days)
    start = pd.Timestamp(spec["start"])
    later = sorted(
        (pd.Timestamp(s["start"]), name)
        for name, s in SPLITS.items()
        if pd.Timestamp(s["start"]) > start
    )
    if later and start + pd.Timedelta(days=n_days) > later[0][0]:
        end = start + pd.Timedelta(days=n_days)
        raise ValueError(
            f"days={n_days} would run the {split!r} split from {start:%Y-%m-%d} to "
            f"{end:%Y-%m-%d}, into the {later[0][1]!r} split, which starts on "
            f"{later[0][0]:%Y-%m-%d}; the splits must not overlap: at most "
            f"{(later[0][0] - start).days} days (use held_suarez() for a longer run)"
        )
    if kwargs.get("config") is not None:  # its model options, under the keywords given
        base = WorldConfig.from_dict(kwargs.pop("config")).to_dict()
        kwargs = {**{k: base[k] for k in _CONFIG_KEYS}, **kwargs}
    model_kw = {k: kwargs[k] for k in _CONFIG_KEYS if k in kwargs}
    if n_days < spec["days"] and kwargs.get("use_cache", True):
        # the world is deterministic, so the first days of the full split are exactly the
        # shorter run: read them from the cached full split when it is there
        full = world_config(days=spec["days"], seed=spec["seed"], start=spec["start"], **model_kw)
        if read_marker(world_cache_path(full, kwargs.get("cache_dir"))) is not None:
            log.info("taking the first %d days of the cached %s split", n_days, split)
            ds = held_suarez(days=spec["days"], seed=spec["seed"], start=spec["start"], **kwargs)
            short = world_config(days=n_days, seed=spec["seed"], start=spec["start"], **model_kw)
            n_out = n_days * (24 // short["output_hours"])
            attrs = world_attrs(short)
            for key in ("jax_version", "machine"):  # of the run that made the store
                attrs[key] = ds.attrs.get(key, "unknown")
            return ds.isel(time=slice(0, n_out)).assign_attrs(attrs, split=split)
    ds = held_suarez(days=n_days, seed=spec["seed"], start=spec["start"], **kwargs)
    return ds.assign_attrs(split=split)
