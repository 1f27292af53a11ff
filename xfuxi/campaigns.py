"""Campaigns: forecasts, ensembles or assimilation-and-forecast for many initial times.

A campaign runs on :mod:`dask.distributed` (a ``Client`` the caller passes, a scheduler
address, or a ``LocalCluster`` made for the call) and streams its results into one zarr
store in the WeatherBench2 forecast layout (``time`` = initial time,
``prediction_timedelta``, [``number``], ``level``, ``latitude``, ``longitude``). Each worker
loads the model once (a worker plugin); each task is one initial time and writes its own
chunk (``to_zarr(region=...)``), then marks the initial time ``done``. A campaign that was
interrupted is completed by running it again with the same settings. See the user guide
in the documentation (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from ._version import __version__
from .config import Config, config_with_legacy, field, is_integer, require_package, user_stacklevel
from .data.schema import parse_times
from .files import OutputExistsError, read_marker, temporary_path
from .options import progress_bar

__all__ = [
    "CONFIG_ATTR",
    "CampaignConfig",
    "CampaignError",
    "KINDS",
    "SETTINGS_ATTR",
    "campaign",
    "campaign_scorecard",
    "completed",
]

log = logging.getLogger(__name__)

#: the kinds of campaign
KINDS = ("forecast", "ensemble", "assimilate")
#: the store attribute holding the campaign's settings (JSON)
SETTINGS_ATTR = "xfuxi_campaign"
#: the store attribute holding the :class:`CampaignConfig` of the call that made it (JSON)
CONFIG_ATTR = "xfuxi_campaign_config"
#: the settings that must match for a store to be resumed (in this order in messages)
_MATCHED = ("kind", "model", "model_sha256", "steps", "members", "seed", "perturbation",
            "assimilation", "variables", "init_times")  # fmt: skip
#: settings compared where the store records them (stores of earlier releases did not)
_MATCHED_IF_RECORDED = ("chunk_size", "dtype", "assimilation_model")
#: the data a store was started from: a rerun with other data is warned about, not refused
#: (a rerun that fixes the data of a failed initial time is how a campaign is completed)
_DATA_RECORDED = ("source_sha256", "observations_sha256")


class CampaignError(RuntimeError):
    """Some initial times of a campaign failed; the others are complete in the store.

    Attributes
    ----------
    failures : dict
        ``{initial time (ISO string): error message}``.

    Examples
    --------
    >>> try:
    ...     raise CampaignError("1 initial time failed", {"2000-01-01T06:00": "NaN in the input"})
    ... except RuntimeError as err:
    ...     print(err, err.failures)
    1 initial time failed {'2000-01-01T06:00': 'NaN in the input'}

    :func:`campaign` raises it after every other initial time has been written.
    """

    def __init__(self, message: str, failures: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.failures = dict(failures or {})

    def __reduce__(self):  # picklable across dask workers
        return (type(self), (self.args[0], self.failures))


# --- the configuration --------------------------------------------------------------------


def _check_int(label: str, value: Any, low: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not is_integer(value) or value < low:
        extra = " or None" if optional else ""
        raise ValueError(
            f"CampaignConfig.{label} must be an integer >= {low}{extra}; got {value!r}"
        )


@dataclasses.dataclass(frozen=True)
class CampaignConfig(Config):
    """The run options of a campaign (see :func:`campaign`), one schema for Python and CLI.

    The data, the store, the models, the perturbation, the observations and the cluster are
    arguments of :func:`campaign`; everything else is here. Every field is also a flag of
    ``xfuxi campaign`` (``chunk_size`` → ``--chunk-size``; ``--init-times`` takes a
    comma-separated list). The configuration is saved with the store (its attribute
    ``xfuxi_campaign_config``, with the initial times that the store holds). Invalid values
    raise ``ValueError`` naming the field, before any store is made: ``dtype`` must name a
    floating torch dtype and ``device`` a torch device (its availability is the workers'
    to check), ``init_times`` must be a non-empty sequence of times (no ``None`` / NaT).

    Examples
    --------
    >>> cfg = CampaignConfig(kind="ensemble", members=4, steps=8)
    >>> cfg.seed, cfg.torch_threads
    (0, 1)
    >>> CampaignConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> CampaignConfig(init_times=[np.datetime64("2000-01-01T06")]).init_times
    ('2000-01-01T06:00:00',)
    >>> CampaignConfig(kind="ensemble")
    Traceback (most recent call last):
    ...
    ValueError: CampaignConfig.kind='ensemble' needs members (the ensemble size)
    """

    kind: Literal["forecast", "ensemble", "assimilate"] = field(
        "forecast",
        help="forecast, ensemble (needs members) or assimilate (En4DVar analysis, then a "
        "forecast; an ensemble when members is given)",
    )
    steps: int = field(40, help="number of 6-hour steps")
    members: int | None = field(None, help="ensemble size (ensemble; optional for assimilate)")
    seed: int = field(0, help="member noise seed (with the initial time and the member)")
    init_times: tuple[str, ...] | None = field(
        None,
        help="initial times, kept as ISO strings (default: every time of the source whose "
        "predecessors it holds)",
        cli=False,
    )
    chunk_size: int | None = field(
        None,
        help="members run together (default as xfuxi.ensemble: 16 on CPU, 64 on an accelerator)",
    )
    device: str | None = field(None, help="torch device of the workers' runs")
    dtype: str | None = field(
        None, help="torch dtype of the workers' runs, e.g. float32 (default: the model's)"
    )
    torch_threads: int = field(1, help="torch threads per worker process")
    n_workers: int | None = field(
        None, help="workers of the local cluster made for the run (default: the CPUs)"
    )
    connect_timeout: float = field(10.0, help="seconds to wait for a scheduler at an address")

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}")
        for label, low in (("steps", 1), ("seed", 0), ("torch_threads", 1)):
            _check_int(label, getattr(self, label), low)
        for label in ("members", "chunk_size", "n_workers"):
            _check_int(label, getattr(self, label), 1, optional=True)
        if self.kind == "ensemble" and self.members is None:
            raise ValueError("CampaignConfig.kind='ensemble' needs members (the ensemble size)")
        if self.kind == "forecast" and self.members is not None:
            raise ValueError("CampaignConfig.kind='forecast' takes no members; use kind='ensemble'")
        timeout = self.connect_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(
                f"CampaignConfig.connect_timeout must be a number > 0; got {timeout!r}"
            )
        # a torch.device / torch.dtype given in Python is kept as its name (JSON, the CLI)
        if self.device is not None and not isinstance(self.device, str):
            object.__setattr__(self, "device", str(self.device))
        if self.dtype is not None and not isinstance(self.dtype, str):
            object.__setattr__(self, "dtype", str(self.dtype).removeprefix("torch."))
        # checked here, not on the workers: a bad value made a store whose every task failed
        if self.dtype is not None:
            from .models.checkpoint import as_dtype  # torch: only when a dtype is given

            try:
                as_dtype(self.dtype)
            except ValueError as err:
                raise ValueError(f"CampaignConfig.dtype: {err}") from None
        if self.device is not None:
            import torch

            try:
                torch.device(self.device)
            except (RuntimeError, TypeError, ValueError) as err:
                raise ValueError(
                    f"CampaignConfig.device must be a torch device (e.g. 'cpu', 'cuda:0'); "
                    f"got {self.device!r} ({err})"
                ) from None
        if self.init_times is not None:
            if isinstance(self.init_times, str):
                raise ValueError(
                    "CampaignConfig.init_times must be a sequence of times, not the string "
                    f"{self.init_times!r}"
                )
            try:
                given = list(self.init_times)  # a generator is read once
            except TypeError:
                raise ValueError(
                    "CampaignConfig.init_times must be a sequence of times; got "
                    f"{type(self.init_times).__name__} {self.init_times!r}"
                ) from None
            # the one way xfuxi reads times: numbers, time zones, cftime refused by name
            index = parse_times(
                given, "CampaignConfig.init_times", error=ValueError, allow_missing=True
            )
            if not len(index):
                raise ValueError(
                    "CampaignConfig.init_times is empty; give at least one initial time, or "
                    "None for every time of the source whose predecessors it holds"
                )
            if index.hasnans:
                bad = given[int(np.flatnonzero(index.isna())[0])]
                raise ValueError(
                    f"CampaignConfig.init_times holds {bad!r}, which is not a time (NaT)"
                )
            times = tuple(_iso(t) for t in index)
            dup = sorted({t for t in times if times.count(t) > 1})
            if dup:
                raise ValueError(f"init_times lists {dup} more than once")
            object.__setattr__(self, "init_times", times)


# --- settings -----------------------------------------------------------------------------


def _model_fingerprint(model: Any) -> str:
    """The checkpoint's sha256, or a sha256 of the parameters of an in-memory model."""
    sha = str(getattr(model, "config", {}).get("sha256", "") or "")
    if sha and sha != "none":
        return sha
    digest = hashlib.sha256()
    for stage in getattr(model, "stages", (model,)):
        for name, tensor in sorted(stage.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _describe_perturbation(spec: Any) -> str | None:
    if spec is None:
        return None
    module = getattr(spec, "module", None)
    if module is not None and not isinstance(module, (str, os.PathLike)):
        data = json.loads(spec.to_json())
        data["module"] = (
            f"{getattr(module, 'name', type(module).__name__)}:" + (_model_fingerprint(module)[:16])
        )
        return json.dumps(data, sort_keys=True)
    data = json.loads(spec.to_json())
    if isinstance(module, (str, os.PathLike)):  # by name or path: its weights, as a model's
        from .models.ens import load_perturbation

        data["module_sha256"] = _model_fingerprint(load_perturbation(module))[:16]
    return json.dumps(data, sort_keys=True)


#: bytes (as float64) of each piece of a variable hashed by :func:`_data_fingerprint`
_FINGERPRINT_BATCH_BYTES = 32 * 2**20


def _data_fingerprint(ds: xr.Dataset, times: Any = None) -> str:
    """A short sha256 of a Dataset's variables (at ``times``), to refuse resuming a store
    from other data (another run of the world, other observations).

    The digest is that of each variable's name then its values at ``times`` as one
    C-ordered float64 array (text for times and strings), variables by name; the values
    are read and hashed in pieces along the leading dimension (:func:`_hash_values`), so
    memory stays bounded however many initial times there are, and the digest is the one
    that hashing the whole array at once gives (recorded in existing campaign stores)."""
    positions = None
    if times is not None:  # what ds.sel(time=times) picks, as positions (nothing loaded)
        if "time" not in ds.dims:
            ds.sel(time=times)  # the error ds.sel gives (no time dimension)
        else:
            index = xr.DataArray(np.arange(ds.sizes["time"]), dims="time",
                                 coords={"time": ds["time"]})  # fmt: skip
            positions = index.sel(time=times)
    digest = hashlib.sha256()
    text_started = [False]
    for name in sorted(map(str, ds.data_vars)):
        var = ds[name].variable
        at = None
        if positions is not None and "time" in var.dims:
            at = positions.values
            if at.ndim == 0:  # a scalar time drops the dim, as sel does (one step: small)
                var, at = var.isel(time=int(at)), None
        digest.update(name.encode())
        text_started[0] = False
        _hash_values(digest, var, at, text_started)
    return digest.hexdigest()[:16]


def _hash_values(
    digest: Any, var: xr.Variable, at: np.ndarray | None, text_started: list[bool]
) -> None:
    """Feed ``var``'s values (at time positions ``at``, where given) to ``digest`` as one
    C-ordered float64 array (numbers) or their text joined by NUL (anything else), reading
    at most about :data:`_FINGERPRINT_BATCH_BYTES` at a time: pieces along the leading
    dimension (the positions themselves where it is time), whose C-ordered bytes (and
    texts) follow each other as the whole's do. Nothing is selected ahead of its piece."""
    shape = [len(at) if (at is not None and d == "time") else n
             for d, n in zip(var.dims, var.shape)]  # fmt: skip
    size = int(np.prod(shape, dtype="int64"))
    if var.ndim == 0 or 8 * size <= _FINGERPRINT_BATCH_BYTES or size == 0:
        values = np.asarray((var if at is None else var.isel(time=at)).values)
        if values.dtype.kind in "biuf":
            digest.update(np.ascontiguousarray(values, dtype="float64").tobytes())
        elif values.size:  # times, strings: their text
            if text_started[0]:
                digest.update(b"\x00")
            digest.update("\x00".join(map(str, values.ravel())).encode())
            text_started[0] = True
        return
    n, dim = shape[0], var.dims[0]
    row = size // n  # elements per index of the leading dim
    lead_is_time = at is not None and dim == "time"
    if 8 * row > _FINGERPRINT_BATCH_BYTES:  # one index is too big: each in pieces of its own
        for i in range(n):
            one = var.isel({dim: int(at[i]) if lead_is_time else i})
            _hash_values(digest, one, None if lead_is_time else at, text_started)
        return
    per = _FINGERPRINT_BATCH_BYTES // (8 * row)
    for start in range(0, n, per):
        if lead_is_time:
            _hash_values(digest, var.isel(time=at[start : start + per]), None, text_started)
        else:
            _hash_values(digest, var.isel({dim: slice(start, start + per)}), at, text_started)


def _iso(t: Any) -> str:
    return str(np.datetime64(pd.Timestamp(t).to_datetime64(), "s"))


def _check_settings(store: Path, settings: dict[str, Any]) -> None:
    """Refuse a store made by another campaign (naming each setting that differs).

    A campaign store is recognised by its settings attribute (it carries no marker file,
    docs/safety.md); a directory with xfuxi's marker is another xfuxi output, refused by
    its kind."""
    marker = read_marker(store)
    if marker is not None:
        raise OutputExistsError(
            f"store {str(store)!r} holds an xfuxi {marker.get('kind')!r} output, not a "
            "campaign store; choose a new path (xfuxi never overwrites what it did not create)"
        )
    try:
        old_ds = xr.open_zarr(store, consolidated=False)
    except Exception as err:  # not a zarr store at all
        raise FileExistsError(
            f"store {str(store)!r} exists and is not an xfuxi campaign store ({err}); "
            "choose a new path (xfuxi never overwrites what it did not create)"
        ) from err
    with old_ds:
        raw = old_ds.attrs.get(SETTINGS_ATTR)
    if raw is None:
        raise FileExistsError(
            f"store {str(store)!r} exists and is not an xfuxi campaign store (no "
            f"{SETTINGS_ATTR!r} attribute); choose a new path"
        )
    old = json.loads(raw)
    differ = [k for k in _MATCHED if old.get(k) != settings.get(k)]
    differ += [k for k in _MATCHED_IF_RECORDED if k in old and old[k] != settings.get(k)]
    other_data = [k.replace("_sha256", "") for k in _DATA_RECORDED
                  if k in old and old[k] != settings.get(k)]  # fmt: skip
    if other_data and not differ:
        warnings.warn(
            f"store {str(store)!r} was started from other {' and '.join(other_data)} than "
            "this call's: its complete initial times keep the forecasts made from those; only "
            "the missing ones are made from these (a new store keeps them apart)",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    if differ:
        lines = []
        for k in differ:
            a, b = old.get(k), settings.get(k)
            if k == "init_times":  # the times that differ, not the counts (often equal)
                only_store = sorted(set(a or []) - set(b or []))
                only_call = sorted(set(b or []) - set(a or []))
                lines.append(
                    f"init_times: the store holds {len(a or [])}, this call asks for "
                    f"{len(b or [])}; only in the store: {_few_times(only_store)}, only in "
                    f"this call: {_few_times(only_call)}"
                )
                continue
            lines.append(f"{k}: store has {a!r}, this call {b!r}")
        raise ValueError(
            f"store {str(store)!r} holds a campaign with other settings ("
            + "; ".join(lines)
            + "); it is never mixed with another: use a new store or the same settings"
        )


def _few_times(times: list[str], limit: int = 3) -> str:
    """The first ``limit`` of ``times`` (a list's repr), and how many more there are."""
    more = f" and {len(times) - limit} more" if len(times) > limit else ""
    return f"{times[:limit]!r}{more}"


def _check_not_an_input(store: Path, inputs: Sequence[Any]) -> None:
    """Refuse a store that is, holds, or lies inside one of the ``inputs`` (paths, or None).

    As the ``--output`` check of the commands (``xfuxi.cli.common.output_path``), without
    its replace rule: an existing store is a campaign to resume."""
    real = Path(os.path.realpath(store))
    for item in inputs:
        if item is None:
            continue
        src = Path(os.path.realpath(Path(item).expanduser()))
        if src == real or real in src.parents:
            raise OutputExistsError(
                f"store {str(store)!r} is or holds the input {str(item)!r}; choose another "
                "store path"
            )
        if src in real.parents:  # e.g. in.zarr/fc.zarr: a new entry in the input store
            raise OutputExistsError(
                f"store {str(store)!r} lies inside the input {str(item)!r}; xfuxi does not "
                "write into what it reads: choose another store path"
            )


def _input_paths(*candidates: Any) -> list[str]:
    """The paths among a campaign's inputs (sources, checkpoints; a perturbation's module)."""
    out = []
    for value in candidates:
        module = getattr(value, "module", None)  # a VAEPerturbation given its module's path
        for item in (value, module):
            if isinstance(item, (str, os.PathLike)) and os.path.exists(Path(item).expanduser()):
                out.append(os.fspath(item))
    return out


# --- the source of initial states ---------------------------------------------------------


def _open_path(path: str | os.PathLike[str]) -> xr.Dataset:
    p = Path(path).expanduser()
    if p.is_dir() or str(path).rstrip("/").endswith(".zarr"):
        return xr.open_zarr(p)
    return xr.open_dataset(p)


def _needed_times(kind: str, t: np.datetime64, step: np.timedelta64) -> list[np.datetime64]:
    """The analysis times a task reads: (t − Δ, t), and t − 2Δ too for 4DVar."""
    back = 3 if kind == "assimilate" else 2
    return [t - k * step for k in range(back - 1, -1, -1)]


def _slice_of(source: xr.Dataset, times: list[np.datetime64], t: Any) -> xr.Dataset:
    have = pd.DatetimeIndex(source["time"].values)
    missing = [str(x) for x in times if pd.Timestamp(x) not in have]
    if missing:
        raise KeyError(
            f"initial time {_iso(t)}: the source lacks the times {missing} that it needs"
        )
    return source.sel(time=np.asarray(times, dtype="datetime64[ns]")).load()


def _observations_for(obs: xr.Dataset, t: np.datetime64, slots: int, step: np.timedelta64):
    """The observations of the 4DVar window of ``t`` (slots t, t + Δ, ... ± Δ/2)."""
    times = obs["time"].values.astype("datetime64[ns]")
    start = t - step / 2
    end = t + (slots - 1) * step + step / 2
    keep = (times >= start) & (times <= end)
    return obs.isel(obs=np.flatnonzero(keep)).load()


#: options of :func:`xfuxi.assimilate_4dvar` that the campaign sets itself
_CAMPAIGN_SETS = {
    "model": "give assimilation_model= to campaign",
    "window": "give 'slots' (the window's observation slots)",
    "progress": "the campaign shows its own progress",
}


def _check_assimilation(assimilation: Any) -> None:
    """Refuse bad ``assimilation`` options before any work (the store is not made).

    Names against :func:`xfuxi.assimilate_4dvar`'s (with the closest name for a misspelt
    one), ``slots`` an integer >= 1 and the configurations of the right type.
    """
    import inspect

    from .assimilation.config import _CLASSES, LEGACY_KEYWORDS, legacy_options
    from .assimilation.en4dvar import assimilate_4dvar
    from .docstrings import unexpected_keywords

    if assimilation is None:
        return
    if not isinstance(assimilation, dict):
        raise TypeError(
            "assimilation must be a dict of options of xfuxi.assimilate_4dvar; got "
            f"{type(assimilation).__name__}"
        )
    params = inspect.signature(assimilate_4dvar).parameters
    explicit = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    fixed = [k for k in assimilation if k in _CAMPAIGN_SETS]
    if fixed:
        raise ValueError(
            "assimilation: the campaign sets "
            + "; ".join(f"{k!r} ({_CAMPAIGN_SETS[k]})" for k in fixed)
        )
    known = [n for n in explicit if n not in _CAMPAIGN_SETS]
    known += ["slots", *LEGACY_KEYWORDS, "spread", "members", "static_b"]
    unknown = [k for k in assimilation if k not in known]
    if unknown:
        raise unexpected_keywords("assimilate_4dvar", [str(k) for k in unknown], known)
    slots = assimilation.get("slots", 2)
    if not is_integer(slots) or slots < 1:
        raise ValueError(
            f"assimilation: slots (the window's observation slots) must be an integer >= 1; "
            f"got {slots!r}"
        )
    configs = {k: assimilation.get(k) for k in _CLASSES if k != "window"}
    legacy = {k: v for k, v in assimilation.items() if k in LEGACY_KEYWORDS}
    with warnings.catch_warnings():  # assimilate_4dvar warns of the old keywords itself
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy_options(
            "assimilate_4dvar", {**configs, "window": None}, legacy,
            allowed=tuple(LEGACY_KEYWORDS),
        )  # fmt: skip


def _check_observations(observations: Any) -> None:
    """Refuse observations the tasks cannot split into windows (before the store is made)."""
    if not isinstance(observations, xr.Dataset):
        raise TypeError(
            "observations must be an xarray.Dataset or a zarr/netCDF path; got "
            f"{type(observations).__name__}"
        )
    if "obs" not in observations.dims or "time" not in observations.variables:
        raise ValueError(
            "observations must have a dim 'obs' and a 'time' of each observation (the "
            "tasks take those of each window); got dims "
            f"{dict(observations.sizes)} and variables {sorted(map(str, observations.variables))}"
        )


# --- the worker side ----------------------------------------------------------------------


def _resolve_perturbation(perturbation: Any) -> Any:
    """A spec whose VAE module is loaded (so that a worker loads it once)."""
    if perturbation is None:
        return None
    from .forecasting.ensemble import VAEPerturbation
    from .models.ens import PerturbationVAE, load_perturbation

    if isinstance(perturbation, (str, os.PathLike, PerturbationVAE)):
        perturbation = VAEPerturbation(perturbation)
    if isinstance(perturbation, VAEPerturbation) and isinstance(
        perturbation.module, (str, os.PathLike)
    ):
        perturbation = dataclasses.replace(
            perturbation, module=load_perturbation(perturbation.module)
        )
    return perturbation


class _Models:
    """What a worker keeps between tasks: the loaded model(s) and the opened sources."""

    def __init__(self, job: dict[str, Any]) -> None:
        import torch

        from .models.registry import resolve_model

        if (socket.gethostname(), os.getpid()) != tuple(job["client_process"]):
            # a worker process of its own (not threads in the caller's process)
            torch.set_num_threads(int(job["torch_threads"]))
        self.model = resolve_model(job["model"], allow_cascade=True)
        da_model = job.get("assimilation_model")
        self.da_model = None
        if job["kind"] == "assimilate":
            self.da_model = (
                resolve_model(da_model) if da_model is not None else resolve_model(job["model"])
            )
        self.perturbation = _resolve_perturbation(job["perturbation"])
        self.source = (
            _open_path(job["source"]) if isinstance(job["source"], (str, os.PathLike)) else None
        )
        obs = job.get("observations")
        self.observations = _open_path(obs) if isinstance(obs, (str, os.PathLike)) else None


try:  # the plugin needs distributed; the rest of the module does not
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # pragma: no cover - without the dask extra
    WorkerPlugin = object  # type: ignore[misc,assignment]


class CampaignPlugin(WorkerPlugin):
    """A worker plugin that loads a campaign's model once per worker and keeps it.

    Parameters
    ----------
    job : dict
        The campaign's job description (model, perturbation, sources, threads).
    name : str
        The plugin's name on the workers.
    """

    def __init__(self, job: dict[str, Any], name: str) -> None:
        self.job = job
        self.name = name
        self.models: _Models | None = None

    def setup(self, worker: Any) -> None:
        """Load the model(s) on ``worker`` (also on a worker started after a crash)."""
        self.models = _Models(self.job)


_LOCAL: dict[str, _Models] = {}


def _worker_models(plugin_name: str, job: dict[str, Any]) -> _Models:
    """The models of this worker: from its plugin, else loaded once and cached by name."""
    try:
        from distributed import get_worker

        plugin = get_worker().plugins.get(plugin_name)
        if plugin is not None and plugin.models is not None:
            return plugin.models
    except (ImportError, ValueError):
        pass
    if plugin_name not in _LOCAL:
        _LOCAL[plugin_name] = _Models(job)
    return _LOCAL[plugin_name]


def _compute(job: dict[str, Any], models: _Models, t: np.datetime64, inputs: Any) -> xr.Dataset:
    """The forecast / ensemble / analysis-and-forecast of one initial time."""
    from .forecasting.deterministic import forecast
    from .forecasting.ensemble import ensemble

    step = np.timedelta64(models.model.timestep).astype("timedelta64[ns]")
    # what the task does not carry (a source or observations given as a path) the worker
    # reads from its own opened copy: each of the four Dataset / path combinations works
    inputs = dict(inputs or {})
    if "source" not in inputs:
        if models.source is None:
            raise ValueError("the task carries no source and the job names no source path")
        inputs["source"] = _slice_of(models.source, _needed_times(job["kind"], t, step), t)
    if job["kind"] == "assimilate" and "observations" not in inputs:
        if models.observations is None:
            raise ValueError(
                "the task carries no observations and the job names no observations path"
            )
        inputs["observations"] = _observations_for(
            models.observations, t, int(job["assimilation"].get("slots", 2)), step
        )
    state = inputs["source"]
    if job["kind"] == "assimilate":
        from .assimilation.config import Window
        from .assimilation.en4dvar import assimilate_4dvar

        options = {k: v for k, v in job["assimilation"].items() if k != "slots"}
        window = Window(n_slots=int(job["assimilation"].get("slots", 2)))
        result = assimilate_4dvar(
            state, inputs["observations"], model=models.da_model, window=window,
            progress=False, **options,
        )  # fmt: skip
        analysis = result.analysis[list(state.data_vars)]
        state = xr.concat([state.isel(time=[1]), analysis.astype(state.dtypes)], "time")
    common = {"model": models.model, "steps": job["steps"], "init_times": [t], "progress": False,
              "device": job["device"]}  # fmt: skip
    if job["members"] is None:
        return forecast(state, dtype=job["dtype"], **common)
    return ensemble(
        state, n=job["members"], perturbation=models.perturbation, seed=job["seed"],
        chunk_size=job["chunk_size"], **common,
    )  # fmt: skip


def _write_region(ds: xr.Dataset, store: str, index: int) -> None:
    """Write the variables of one initial time into its own chunk of the store."""
    keep = [v for v in ds.variables if "time" in ds[v].dims]
    out = ds[[v for v in keep if v in ds.data_vars]]
    out = out.drop_vars([c for c in out.coords if "time" not in out[c].dims])
    out.attrs = {}
    for v in out.variables:
        out[v].encoding = {}
    out.to_zarr(store, region={"time": slice(index, index + 1)}, mode="r+", consolidated=False)


def run_init_time(
    store: str,
    *,
    index: int,
    init_time: Any,
    job: dict[str, Any],
    plugin: str,
    inputs: Any = None,
) -> str:
    """Run one initial time of a campaign and write it into its chunk; then mark it done.

    The task that each dask worker runs (public so that other schedulers can run it too).

    Parameters
    ----------
    store : str
        The campaign's zarr store (its metadata already written).
    index : int
        Position of ``init_time`` along the store's ``time``.
    init_time : datetime-like
    job : dict
        The campaign's job description.
    plugin : str
        Name of the worker plugin holding the loaded models.
    inputs : dict, optional
        ``{"source": Dataset[, "observations": Dataset]}`` when the source is in memory;
        otherwise the worker reads its slice of the source store.

    Returns
    -------
    str
        The initial time (ISO).

    Raises
    ------
    CampaignError
        Naming the initial time, with the cause chained.
    """
    t = np.datetime64(pd.Timestamp(init_time).to_datetime64(), "ns")
    try:
        models = _worker_models(plugin, job)
        result = _compute(job, models, t, inputs)
        _write_region(result, store, index)
        done = xr.Dataset({"done": ("time", np.array([True]))}, coords={"time": [t]})
        _write_region(done, store, index)
    except Exception as err:
        raise CampaignError(f"initial time {_iso(t)} failed: {type(err).__name__}: {err}") from err
    return _iso(t)


# --- the client side ----------------------------------------------------------------------


def _template(
    model: Any, init_times: np.ndarray, steps: int, members: int | None, attrs: dict[str, Any]
) -> xr.Dataset:
    """The store's layout: full coordinates, lazy empty arrays chunked one initial time each."""
    da = require_package("dask.array", extra="dask", what="xfuxi.campaign")

    from .forecasting.edge import forecast_dataset

    leads = model.timestep * np.arange(1, int(steps) + 1)
    c, (h, w) = len(model.channels), model.grid_shape
    shape = (1, *(() if members is None else (members,)), len(leads), c, h, w)
    one = forecast_dataset(
        np.zeros(shape, "float32"), model=model, init_times=init_times[:1], leads=leads,
        member_dim=None if members is None else "number",
    )  # fmt: skip
    out = xr.Dataset(coords={k: v for k, v in one.coords.items() if k != "time"})
    out = out.assign_coords(time=np.asarray(init_times, dtype="datetime64[ns]"))
    for name, var in one.data_vars.items():
        full = (len(init_times), *var.shape[1:])
        out[name] = (var.dims, da.zeros(full, chunks=(1, *var.shape[1:]), dtype="float32"),
                     var.attrs)  # fmt: skip
        out[name].encoding = {"chunks": (1, *var.shape[1:])}
    out["done"] = ("time", da.zeros(len(init_times), chunks=1, dtype=bool),
                   {"long_name": "initial time complete (its data are written)"})  # fmt: skip
    out["done"].encoding = {"chunks": (1,)}
    out["time"].encoding = {"units": "hours since 1970-01-01", "dtype": "int64"}
    out.attrs = attrs
    return out


def _weatherbench2(template: xr.Dataset) -> xr.Dataset:
    """The template in WeatherBench2's layout (names, dim order, coordinate attributes)."""
    from .data.writers import to_weatherbench2_layout

    done = template["done"]
    out = to_weatherbench2_layout(template.drop_vars("done"))
    # the marker's own coordinates (without the layout's attributes) would replace those
    # of ``time``: it takes the layout's coordinates instead
    out["done"] = (done.dims, done.data, done.attrs)
    return out


class _ProcessState:
    """What starting a LocalCluster changes in the caller's process, to put back after it.

    dask.distributed's nannies set ``OMP_NUM_THREADS=1`` (and MKL's, OpenBLAS's,
    ``MALLOC_TRIM_THRESHOLD_``, ``PYTHONHASHSEED``, ...) in ``os.environ`` for the worker
    processes they spawn, and each scheduler adds a handler to the ``distributed`` loggers.
    Left in place, every later subprocess of a notebook (``!xfuxi ...``, ``torchrun``) would
    run on one thread, and each campaign would add one more handler.
    """

    def __init__(self) -> None:
        self.environ = dict(os.environ)
        self.handlers = {name: list(logger.handlers) for name, logger in self._loggers()}

    @staticmethod
    def _loggers() -> list[tuple[str, logging.Logger]]:
        manager = logging.Logger.manager
        names = [
            n for n in manager.loggerDict if n == "distributed" or n.startswith("distributed.")
        ]
        return [(n, logging.getLogger(n)) for n in names]

    def restore(self) -> None:
        for key in [k for k in os.environ if k not in self.environ]:
            del os.environ[key]
        for key, value in self.environ.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        for name, logger in self._loggers():
            before = self.handlers.get(name, [])
            for handler in [h for h in logger.handlers if h not in before]:
                logger.removeHandler(handler)


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """SIGINT ignored while the ``with`` block starts the local cluster's worker processes,
    which inherit that: a Ctrl-C then interrupts this process alone, whose clean-up closes
    the cluster (each worker printed a multi-screen KeyboardInterrupt traceback before).
    Nothing is changed outside the main thread, where Python does not let signals be set."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)


def _connect(client: Any, n_workers: int | None, connect_timeout: float):
    """``(client, owned)``: the given Client, one connected to an address, or a LocalCluster."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - without the dask extra
        raise ImportError(
            "xfuxi.campaign needs dask.distributed: pip install 'xfuxi[dask]'"
        ) from err
    if client is None:
        with _interrupts_ignored():  # by the worker processes started now (inherited)
            cluster = LocalCluster(
                n_workers=int(n_workers or os.cpu_count() or 1), threads_per_worker=1,
                processes=True, dashboard_address=":0",
            )  # fmt: skip
        return Client(cluster), True
    if isinstance(client, str):
        try:
            return Client(client, timeout=f"{connect_timeout}s"), True
        except (OSError, TimeoutError) as err:
            raise ConnectionError(
                f"no dask scheduler answered at client={client!r} within {connect_timeout:g} s "
                f"({type(err).__name__}: {err}); check the address (e.g. 'tcp://host:8786') "
                "and that the scheduler is running"
            ) from err
    if not hasattr(client, "submit") or not hasattr(client, "register_plugin"):
        raise TypeError(
            f"client must be a distributed.Client, a scheduler address or None; "
            f"got {type(client).__name__}"
        )
    return client, False


def completed(store: str | os.PathLike[str]) -> np.ndarray:
    """The initial times of a campaign store that are complete (marked ``done``).

    Parameters
    ----------
    store : path
        A store written by :func:`campaign` (``~`` is expanded).

    Returns
    -------
    numpy.ndarray of datetime64[ns]
    """
    with xr.open_zarr(Path(store).expanduser(), consolidated=False) as ds:
        done = ds["done"].values.astype(bool)
        return ds["time"].values[done]


def campaign(
    init_times_source: xr.Dataset | str | os.PathLike[str],
    store: str | os.PathLike[str],
    *,
    config: CampaignConfig | dict | None = None,
    model: Any = None,
    perturbation: Any = None,
    observations: xr.Dataset | str | os.PathLike[str] | None = None,
    assimilation: dict[str, Any] | None = None,
    assimilation_model: Any = None,
    client: Any = None,
    progress: bool | None = None,
    **legacy: Any,
) -> xr.Dataset:
    """Run forecasts, ensembles or 4DVar-and-forecasts for many initial times into one store.

    Parameters
    ----------
    init_times_source : xarray.Dataset or path
        Analysis-layout states (canonical names; a zarr or netCDF path is opened lazily by
        every worker, a Dataset is sliced here and each task gets its slice). For each
        initial time ``t`` it must hold ``t − 6 h`` too (and ``t − 12 h`` for
        ``kind="assimilate"``, where it is the background).
    store : path
        The zarr store to write (WeatherBench2 forecast layout, one chunk per initial time,
        plus a ``done`` flag per initial time; ``~`` is expanded). If it exists and was made
        by a campaign with the same settings, only the initial times not yet ``done`` are
        run. It must not be, hold or lie inside an input (the source, the observations, a
        model or perturbation checkpoint given by path).
    config : CampaignConfig or dict, optional
        The run options (default ``CampaignConfig()``): ``kind`` (``"forecast"``,
        ``"ensemble"`` (needs ``members``) or ``"assimilate"``: En4DVar analyses of
        ``observations`` at each initial time followed by a forecast, an ensemble when
        ``members`` is given), ``steps`` (6-hour steps, default 40), ``members``, ``seed``
        (member ``m`` of initial time ``t`` draws its noise from a generator seeded by
        ``(seed, t, m)``, so the members do not depend on the number of workers or on the
        order of the tasks), ``init_times`` (default: every time of the source whose
        predecessors it holds), ``chunk_size`` (members run together, as
        :func:`xfuxi.ensemble`; fixed per task, so the same on every worker), ``device`` and
        ``dtype`` of the workers' runs, ``torch_threads`` per worker process (workers that
        are threads of the calling process leave its setting alone), ``n_workers`` of the
        LocalCluster made when ``client`` is None (default: the number of CPUs) and
        ``connect_timeout`` (seconds to wait for a scheduler at an address). It is saved
        with the store (attribute ``xfuxi_campaign_config``, with the initial times that the
        store holds).
    model : ForecastModel, Cascade, str or path, optional
        The forecast model, or a shipped name / checkpoint directory (loaded once per
        worker). None (default): the shipped ``"fuxi-hs-t21-cascade"``.
    perturbation : optional
        The ensemble's perturbation (as :func:`xfuxi.ensemble`; default the shipped FuXi-ENS
        module).
    observations : xarray.Dataset or path, optional
        Observations (dim ``obs``) for ``kind="assimilate"``.
    assimilation : dict, optional
        Options of :func:`xfuxi.assimilate_4dvar` (``background_error``, ``minimiser``, ...)
        plus ``slots`` (observation slots of the window, default 2).
    assimilation_model : ForecastModel, str or path, optional
        The one-step model of the 4DVar (default ``model``, which must then be one model).
    client : distributed.Client or str, optional
        The cluster: a Client, a scheduler address (``"tcp://host:8786"``), or None for a
        ``LocalCluster`` of ``config.n_workers`` single-threaded worker processes made (and
        closed) for the call.
    progress : bool, optional
        Progress bar over initial times (default: the ``progress`` option).
    **legacy
        The old keyword arguments (``kind=``, ``steps=``, ``members=``, ``seed=``,
        ``init_times=``, ``n_workers=``, ``chunk_size=``, ``device=``, ``dtype=``,
        ``torch_threads=``, ``connect_timeout=``: each a field of :class:`CampaignConfig`)
        still work, with a ``DeprecationWarning``.

    Returns
    -------
    xarray.Dataset
        The store, opened lazily.

    Raises
    ------
    ValueError
        Bad settings (a ``dtype`` with ``members``: an ensemble runs in the model's own
        precision), or a store made with other settings (each differing setting named;
        other initial times by the first few that only the store or only the call has).
    FileExistsError
        ``store`` exists and is not a campaign store (an
        :class:`xfuxi.files.OutputExistsError` names an xfuxi output of another kind), or
        it is, holds or lies inside one of the inputs (refused before any work).
    ConnectionError
        No scheduler at the address ``client``.
    CampaignError
        Some initial times failed (each named, with its error); all others are in the store.

    Notes
    -----
    The store's metadata (every coordinate, empty arrays) are written first. A finished
    initial time is marked ``done`` only after its data are written, so an interrupted
    campaign (a killed worker or client, a failed write) leaves only complete initial
    times marked; running the campaign again completes the others, and the store then
    equals the one an uninterrupted run writes (on the same hardware, torch threads and
    ``chunk_size``). Readers should use :func:`completed` or the ``done`` variable.

    Two clients that start the same new campaign at once each write the metadata into a
    temporary store; the first rename wins, and the other client discards its copy, checks
    the winner's settings and resumes the store (both then run the missing initial times;
    a time written twice holds the same data). A campaign store carries no
    ``.xfuxi-output.json`` marker (zarr warns of a foreign object at every unconsolidated
    open of a store that holds one); it is recognised by its settings attribute
    ``xfuxi_campaign``.

    Examples
    --------
    Two initial times of a tiny (untrained) model on one in-process worker:

    >>> import pathlib, tempfile, distributed, numpy as np, pandas as pd, xarray as xr, xfuxi
    >>> from xfuxi.models.fuxi import build_fuxi
    >>> lat, lon = np.linspace(-78.75, 78.75, 8), np.arange(16) * 22.5
    >>> model = xfuxi.ForecastModel(build_fuxi("tiny", in_channels=1, grid=(8, 16)),
    ...                             channels=[("temperature", 850.0)], latitude=lat,
    ...                             longitude=lon, name="tiny")
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> path = xfuxi.save_model(model, tmp / "model")  # workers load it by path
    >>> ds = xr.Dataset(
    ...     {"temperature": (("time", "level", "latitude", "longitude"),
    ...                      np.full((3, 1, 8, 16), 250.0))},
    ...     coords={"time": pd.date_range("2000-01-01", periods=3, freq="6h"), "level": [850],
    ...             "latitude": lat, "longitude": lon})
    >>> cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
    ...                                    dashboard_address=None)
    >>> with distributed.Client(cluster) as client:
    ...     out = campaign(ds, tmp / "fc.zarr", config=CampaignConfig(steps=2),
    ...                    model=str(path), client=client, progress=False)
    >>> cluster.close()
    >>> out["temperature"].dims, out["done"].values.tolist()  # initial times 06 and 12 UTC
    (('time', 'prediction_timedelta', 'level', 'latitude', 'longitude'), [True, True])
    >>> import json
    >>> CampaignConfig.from_dict(json.loads(out.attrs["xfuxi_campaign_config"])).steps
    2
    """
    from .data.schema import validate
    from .forecasting.deterministic import DEFAULT_MODEL
    from .models.registry import resolve_model

    cfg = config_with_legacy(CampaignConfig, config, legacy, "campaign")
    kind, steps, members, seed = cfg.kind, cfg.steps, cfg.members, cfg.seed
    init_times, chunk_size, device, dtype = cfg.init_times, cfg.chunk_size, cfg.device, cfg.dtype
    torch_threads, n_workers, connect_timeout = (
        cfg.torch_threads, cfg.n_workers, cfg.connect_timeout
    )  # fmt: skip
    if kind == "forecast" and (members is not None or perturbation is not None):
        raise ValueError("kind='forecast' takes no members or perturbation; use kind='ensemble'")
    if kind == "assimilate" and observations is None:
        raise ValueError("kind='assimilate' needs observations")
    if kind != "assimilate" and (observations is not None or assimilation):
        raise ValueError("observations and assimilation only apply to kind='assimilate'")
    if kind == "assimilate":
        _check_assimilation(assimilation)
    if members is not None and dtype is not None:  # kind="assimilate" dropped it silently
        raise ValueError(
            "dtype applies to kind='forecast' (xfuxi.forecast) and to kind='assimilate' "
            "without members; an ensemble campaign runs in the model's own precision: leave "
            "dtype unset"
        )
    model = DEFAULT_MODEL if model is None else model
    store_path = Path(store).expanduser()
    # before any work: a store inside what the campaign reads (the source store, a model's
    # checkpoint folder) would change its inputs
    _check_not_an_input(
        store_path,
        _input_paths(init_times_source, observations, model, assimilation_model, perturbation),
    )
    loaded = resolve_model(model, allow_cascade=True)
    if kind == "assimilate" and assimilation_model is None:
        from .models.cascade import reject_cascade

        # the 4DVar needs one single-step model: refused here, before the store is made (the
        # workers refused it after, and a rerun with another model was then refused as a
        # campaign of other settings)
        reject_cascade(loaded)
    if members is not None:
        from .forecasting.ensemble import DEFAULT_PERTURBATION, VAEPerturbation

        perturbation = (
            perturbation if perturbation is not None else VAEPerturbation(DEFAULT_PERTURBATION)
        )
        from .models.ens import PerturbationVAE

        if isinstance(perturbation, (str, os.PathLike, PerturbationVAE)):
            perturbation = VAEPerturbation(perturbation)

    # the initial times and the source
    if isinstance(init_times_source, (str, os.PathLike)):
        source_path: str | None = str(Path(init_times_source).expanduser())
        source = validate(_open_path(init_times_source))
    elif isinstance(init_times_source, xr.Dataset):
        source_path = None
        source = validate(init_times_source)
    else:
        raise TypeError(
            "init_times_source must be an xarray.Dataset or a zarr/netCDF path; got "
            f"{type(init_times_source).__name__}"
        )
    step = np.timedelta64(loaded.timestep).astype("timedelta64[ns]")
    have = pd.DatetimeIndex(source["time"].values)
    if init_times is None:
        back = 2 if kind == "assimilate" else 1
        times = [t for t in have if all(t - k * pd.Timedelta(step) in have
                                        for k in range(1, back + 1))]  # fmt: skip
    else:
        times = [pd.Timestamp(t) for t in init_times]  # distinct (CampaignConfig checks)
    if not times:
        raise ValueError("init_times: the source holds no initial time with its predecessors")
    t0 = np.sort(np.asarray([t.to_datetime64() for t in times], dtype="datetime64[ns]"))
    for t in t0:
        missing = [str(x)[:19] for x in _needed_times(kind, t, step) if pd.Timestamp(x) not in have]
        if missing:
            raise ValueError(
                f"init_times: initial time {_iso(t)} needs the source times {missing}, "
                "which it lacks"
            )
    variables = sorted({str(v) for v, _ in loaded.channels})
    settings = {
        "kind": kind,
        "model": str(getattr(loaded, "name", model)),
        "model_sha256": _model_fingerprint(loaded),
        "steps": int(steps),
        "members": None if members is None else int(members),
        "seed": int(seed) if members is not None else None,
        "perturbation": _describe_perturbation(perturbation) if members is not None else None,
        "assimilation": (
            json.dumps(_plain(assimilation or {}), sort_keys=True) if kind == "assimilate" else None
        ),  # fmt: skip
        "variables": variables,
        "init_times": [_iso(t) for t in t0],
        "chunk_size": chunk_size,
        "dtype": None if dtype is None else str(dtype),
        # the states the forecasts start from (another run on the same times was mixed in)
        "source_sha256": _data_fingerprint(source[[str(v) for v in variables
                                                    if v in source.data_vars]], t0),
    }  # fmt: skip
    if kind == "assimilate":
        obs_data = observations
        if isinstance(observations, (str, os.PathLike)):
            obs_data = _open_path(observations)
        _check_observations(obs_data)  # before the store is made: nothing written for them
        settings["observations_sha256"] = _data_fingerprint(obs_data)
        settings["assimilation_model"] = (
            None if assimilation_model is None
            else str(getattr(assimilation_model, "name", assimilation_model))
            + ":" + _model_fingerprint(resolve_model(assimilation_model))[:16]
        )  # fmt: skip
    attrs = {
        SETTINGS_ATTR: json.dumps(settings, sort_keys=True),
        # the initial times resolved (sorted): the store's own, whichever way they were given
        CONFIG_ATTR: cfg.replace(init_times=tuple(settings["init_times"])).to_json(),
        "source": f"xfuxi.campaign ({kind})",
        "model": settings["model"],
        "steps": int(steps),
        "timestep_hours": float(loaded.timestep_hours),
        "xfuxi_version": __version__,
    }
    if members is not None:
        attrs.update(ensemble_size=int(members), seed=int(seed))

    if os.path.lexists(store_path):
        _check_settings(store_path, settings)
    else:
        # the metadata into a temporary store renamed into place: a campaign killed while
        # writing them leaves no half-made store (its settings were written first: a rerun
        # then met a store it could never finish). No marker file (xfuxi.files.MARKER): zarr
        # warns of a foreign object at every unconsolidated open of the store (docs/safety.md)
        template = _weatherbench2(_template(loaded, t0, steps, members, attrs))
        store_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(store_path)
        lost = False
        try:
            # zarr's format 2 (WeatherBench2's, as every store xfuxi writes), with
            # consolidated metadata (xr.open_zarr then reads the store without its fallback
            # warning): written here, in the temporary store, and renamed into place with the
            # rest; the workers write chunks only, never metadata, so it stays true
            template.to_zarr(tmp, compute=False, mode="w-", consolidated=True, zarr_format=2)
            try:
                os.rename(tmp, store_path)
            except OSError as err:
                # another client created the store first (its rename won): resume it
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                lost = True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if lost:
            log.info("campaign store %s was created by another client; resuming it", store_path)
            _check_settings(store_path, settings)
        else:
            log.info("campaign store %s: metadata written (%d initial times)", store_path,
                     t0.size)  # fmt: skip
    done = set(completed(store_path).astype("datetime64[ns]").tolist())
    pending = [(i, t) for i, t in enumerate(t0) if t.astype("datetime64[ns]").tolist() not in done]
    if not pending:
        log.info("campaign store %s is complete", store_path)
        return xr.open_zarr(store_path, consolidated=False)

    job = {
        "kind": kind, "model": model, "steps": int(steps), "members": members,
        "seed": int(seed), "perturbation": perturbation, "source": source_path,
        "observations": (str(Path(observations).expanduser())
                         if isinstance(observations, (str, os.PathLike)) else None),
        "assimilation": dict(assimilation or {}), "assimilation_model": assimilation_model,
        "chunk_size": chunk_size, "device": device, "dtype": dtype,
        "torch_threads": int(torch_threads),
        "client_process": (socket.gethostname(), os.getpid()),
    }  # fmt: skip
    obs_ds = observations if isinstance(observations, xr.Dataset) else None
    state = _ProcessState() if client is None else None
    try:
        cl, owned = _connect(client, n_workers, connect_timeout)
    except BaseException:
        if state is not None:
            state.restore()
        raise
    plugin_name = f"xfuxi-campaign-{uuid.uuid4().hex[:12]}"
    failures: dict[str, str] = {}
    try:
        cl.register_plugin(CampaignPlugin(job, plugin_name), name=plugin_name)
        link = getattr(cl, "dashboard_link", None)
        if link:
            log.info("xfuxi campaign: dask dashboard at %s", link)
        futures = {}
        for i, t in pending:
            inputs = None
            if source_path is None:
                inputs = {"source": _slice_of(source, _needed_times(kind, t, step), t)}
                if kind == "assimilate" and obs_ds is not None:
                    slots = int((assimilation or {}).get("slots", 2))
                    inputs["observations"] = _observations_for(obs_ds, t, slots, step)
            elif kind == "assimilate" and obs_ds is not None:
                slots = int((assimilation or {}).get("slots", 2))
                inputs = {
                    "source": _slice_of(source, _needed_times(kind, t, step), t),
                    "observations": _observations_for(obs_ds, t, slots, step),
                }
            fut = cl.submit(
                run_init_time, str(store_path), index=int(i), init_time=t, job=job,
                plugin=plugin_name, inputs=inputs, key=f"{plugin_name}-{i}", pure=False,
            )  # fmt: skip
            futures[fut] = t
        from distributed import as_completed

        bar = progress_bar(len(futures), progress, f"campaign {kind} ({len(futures)} init times)")
        try:
            for fut in as_completed(list(futures)):
                if fut.status == "error":
                    err = fut.exception()
                    failures[_iso(futures[fut])] = str(err)
                    log.error("%s", err)
                bar.update(1)
                fut.release()
        finally:
            bar.close()
    finally:
        try:
            cl.unregister_worker_plugin(plugin_name)
        except Exception:  # noqa: BLE001 - the cluster may be gone; nothing to undo then
            pass
        if owned:
            cluster = getattr(cl, "cluster", None)
            try:
                cl.close()
                if cluster is not None:
                    cluster.close()
            finally:
                if state is not None:  # the LocalCluster this call started
                    state.restore()
    if failures:
        names = ", ".join(sorted(failures))
        first = failures[sorted(failures)[0]]
        rest = (
            f"the others are complete in {str(store_path)!r}"
            if len(failures) < len(pending)
            else f"none was written in {str(store_path)!r}"
        )
        raise CampaignError(
            f"{len(failures)} of {len(pending)} initial times failed ({names}); {rest} (run the "
            f"campaign again to retry). First error: {first}",
            failures,
        )
    return xr.open_zarr(store_path, consolidated=False)


def _plain(value: Any) -> Any:
    """JSON-able form of an options dict (Config objects through their JSON)."""
    if hasattr(value, "to_json"):
        return json.loads(value.to_json())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


# --- verification of stored campaigns -----------------------------------------------------


def campaign_scorecard(
    store: str | os.PathLike[str] | xr.Dataset,
    truth: xr.Dataset | str | os.PathLike[str],
    *,
    climatology: xr.Dataset | None = None,
    variables: Sequence[str] | None = None,
    client: Any = None,
    out: str | os.PathLike[str] | None = None,
    plot: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> xr.Dataset:
    """Scores of a stored campaign against a truth, by lead time and variable.

    Parameters
    ----------
    store : path or xarray.Dataset
        A campaign store (opened lazily; only the initial times marked ``done`` count).
    truth : xarray.Dataset or path
        Verifying analyses on ``time`` (opened lazily from a path), matched by valid time.
    climatology : xarray.Dataset, optional
        For the ACC (see :func:`xfuxi.acc`); without it the ACC is left out.
    variables : sequence of str, optional
        Variables to score (default all of the campaign's).
    client : distributed.Client or str, optional
        Where to compute (default: the current dask scheduler).
    out : path, optional
        Write the scorecard here (netCDF, atomically).
    plot : path, optional
        Save a figure of the scores by lead here (PNG).
    overwrite : bool, default False
        Replace an earlier scorecard or figure of this function at ``out`` / ``plot``. Any
        other file there is never replaced (both are checked before the scores are
        computed; the data-safety policy, docs/safety.md).

    Returns
    -------
    xarray.Dataset
        Variables ``<score>_<variable>`` (``rmse``, ``acc``; for ensembles ``rmse`` is the
        ensemble mean's, and ``crps`` and ``ssr`` are added) with dims
        ``prediction_timedelta`` [and ``level``], area-weighted over the globe and averaged
        over the initial times, each with the truth's ``units`` where the score has them.
        Attrs give the campaign and the number of initial times scored.

    Raises
    ------
    FileNotFoundError
        The directory of ``out`` or ``plot`` does not exist.
    xfuxi.files.OutputExistsError
        Something is at ``out`` or ``plot`` that may not be replaced (see ``overwrite``).
    ValueError
        ``store`` is not a campaign store (no ``done`` variable) or has no complete initial
        time; ``variables`` is empty or names a variable the campaign or the truth lacks.

    Examples
    --------
    A store in the campaign layout (here written by hand: two initial times of two 6-hour
    leads, one of them marked done) scored against a truth that is 1 K colder:

    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=5, freq="6h")
    >>> grid = {"latitude": [-45.0, 45.0], "longitude": [0.0, 90.0, 180.0, 270.0]}
    >>> fc = xr.Dataset(
    ...     {"temperature": (("time", "prediction_timedelta", "latitude", "longitude"),
    ...                      np.full((2, 2, 2, 4), 251.0)),
    ...      "done": ("time", [True, False])},
    ...     coords={"time": t[:2], "prediction_timedelta": pd.to_timedelta([6, 12], "h"), **grid})
    >>> truth = xr.Dataset({"temperature": (("time", "latitude", "longitude"),
    ...                                     np.full((5, 2, 4), 250.0))}, coords={"time": t, **grid})
    >>> card = campaign_scorecard(fc, truth)
    >>> card["rmse_temperature"].values.tolist()
    [1.0, 1.0]
    """
    from .files import atomic_write_netcdf, check_file_replaceable, netcdf_written_by
    from .verify import acc, crps, ensemble_mean_rmse, rmse, spread_skill_ratio
    from .verify.weights import score_units

    if out is not None:
        out = Path(out).expanduser()
        check_file_replaceable(out, overwrite=overwrite, writer=SCORECARD_WRITER,
                               ours=lambda p: netcdf_written_by(p, SCORECARD_WRITER))  # fmt: skip
    if plot is not None:
        plot = Path(plot).expanduser()
        check_file_replaceable(plot, overwrite=overwrite, writer=SCORECARD_WRITER,
                               ours=lambda p: _png_written_by(p, SCORECARD_WRITER))  # fmt: skip
    for path in (out, plot):  # before the scores are computed, not after
        if path is not None and not path.parent.is_dir():
            raise FileNotFoundError(f"the directory of {str(path)!r} does not exist")
    if isinstance(store, xr.Dataset):
        ds = store
    else:
        ds = xr.open_zarr(Path(store).expanduser(), consolidated=False)
    if "done" not in ds:
        raise ValueError("store has no 'done' variable: not a campaign store")
    done = ds["done"].values.astype(bool)
    if not done.any():
        raise ValueError("store holds no complete initial time (none is marked done)")
    fc = ds.isel(time=np.flatnonzero(done)).drop_vars("done")
    names = list(variables) if variables is not None else list(fc.data_vars)
    if not names:
        raise ValueError("variables is empty; give at least one variable of the campaign")
    unknown = sorted(set(names) - set(fc.data_vars))
    if unknown:
        raise ValueError(f"variables {unknown} are not in the campaign ({list(fc.data_vars)})")
    fc = fc[names]
    tr = _open_path(truth) if isinstance(truth, (str, os.PathLike)) else truth
    lacking = [n for n in names if n not in tr.data_vars]
    if lacking:
        raise ValueError(f"the truth lacks the campaign's variable(s) {lacking}")
    tr = tr[names]
    dims = ["time", "latitude", "longitude"]
    owned = False
    cl = None
    if client is not None:
        cl, owned = _connect(client, None, 10.0)
    try:
        parts: dict[str, xr.Dataset] = {}
        ensemble_run = "number" in fc.dims
        if ensemble_run:
            parts["crps"] = crps(fc, tr, dim=dims)
            parts["ssr"] = spread_skill_ratio(fc, tr, dim=dims)
            parts["rmse"] = ensemble_mean_rmse(fc, tr, dim=dims)
        else:
            parts["rmse"] = rmse(fc, tr, dim=dims)
        if climatology is not None:
            mean = fc.mean("number") if ensemble_run else fc
            parts["acc"] = acc(mean, tr, climatology, dim=dims)
        card = xr.Dataset()
        for score, value in parts.items():
            value = value.compute()
            for name in names:
                # the truth's units, as the score's values carry them (none for ratios)
                units = score_units(dict(tr[name].attrs), value.attrs["metric"]).get("units")
                card[f"{score}_{name}"] = (
                    value[name]
                    .astype("float64")
                    .assign_attrs({} if units is None else {"units": str(units)})
                )
    finally:
        if owned and cl is not None:
            cl.close()
    card.attrs = {
        "campaign": ds.attrs.get(SETTINGS_ATTR, ""),
        "init_times_scored": int(done.sum()),
        "init_times_total": int(done.size),
        "scores": ",".join(parts),
    }
    # checked again: a file may have appeared there while the scores were computed
    if out is not None:
        replacing = check_file_replaceable(
            out, overwrite=overwrite, writer=SCORECARD_WRITER,
            ours=lambda p: netcdf_written_by(p, SCORECARD_WRITER),
        )  # fmt: skip
        atomic_write_netcdf(card, out, writer=SCORECARD_WRITER, replacing=replacing)
    if plot is not None:
        replacing = check_file_replaceable(
            plot, overwrite=overwrite, writer=SCORECARD_WRITER,
            ours=lambda p: _png_written_by(p, SCORECARD_WRITER),
        )  # fmt: skip
        _plot_scorecard(card, plot, replacing=replacing)
    return card


#: what campaign_scorecard records in its files (netCDF ``xfuxi_writer``, PNG ``Software``)
SCORECARD_WRITER = "xfuxi.campaign_scorecard"


def _png_written_by(path: Path, writer: str) -> bool:
    """Whether the PNG file ``path`` records ``Software = writer`` in its text chunks."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return getattr(image, "text", {}).get("Software") == writer
    except Exception:  # noqa: BLE001 - anything unreadable is not ours
        return False


def _plot_scorecard(
    card: xr.Dataset, path: str | os.PathLike[str], *, replacing: bool | None = None
) -> None:
    """One panel per score, one line per variable (and level), through ``plot_scores``.

    The figure is built without pyplot (a bare ``Figure`` on an Agg canvas): the caller's
    backend and pyplot's figures are left as they were."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .files import atomic_write_file
    from .plot import plot_scores

    scores = card.attrs["scores"].split(",")
    fig = Figure(figsize=(4 * len(scores), 3.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(scores), squeeze=False)
    for ax, score in zip(axes[0], scores):
        lines: dict[str, xr.DataArray] = {}
        names = [n for n in card.data_vars if str(n).startswith(score + "_")]
        units = {str(card[n].attrs.get("units", "")) for n in names}
        for name in names:
            da, label = card[name], str(name)[len(score) + 1 :]
            if len(units) > 1 and da.attrs.get("units"):  # units by line where they differ
                label = f"{label} ({da.attrs['units']})"
            if "level" in da.dims:
                for lev in da["level"].values:
                    lines[f"{label} {lev:g}"] = da.sel(level=lev, drop=True)
            else:
                lines[label] = da
        shared = next(iter(units)) if len(units) == 1 else ""
        ylabel = f"{score.upper()} ({shared})" if shared else score.upper()
        # a line with no finite value (the ACC of a constant field) is left out; a panel
        # with none says so (plot_scores refuses scores that are all NaN)
        lines = {k: v for k, v in lines.items() if bool(np.isfinite(v.values).any())}
        if not lines:
            ax.set_title(score.upper())
            ax.text(0.5, 0.5, "no finite value", ha="center", va="center",
                    transform=ax.transAxes)  # fmt: skip
            continue
        plot_scores(lines, ylabel=ylabel, title=score.upper(), ax=ax)
    fig.tight_layout()
    mark = {"Software": SCORECARD_WRITER}
    atomic_write_file(
        path, lambda p: fig.savefig(p, format="png", dpi=100, metadata=mark), replacing=replacing
    )
