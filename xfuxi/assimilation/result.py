"""The results of En4DVar and FuXi-DA analyses as xarray (analysis, increment, diagnostics;
En4DVar's trajectory too), saved and read back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..config import summary_html
from ..data.channels import unstack
from ..data.schema import canonical_order
from ..files import replace_directory
from ..forecasting.edge import forecast_dataset
from ..observations.operator import REJECT_REASONS

__all__ = [
    "DAResult",
    "En4DVarResult",
    "open_result",
    "result_datasets",
    "save_datasets",
    "write_datasets",
]

#: what each saved analysis's directory holds, by the kind in its marker
RESULT_FILES = {
    "assimilation": ("analysis", "increment", "trajectory", "diagnostics"),
    "fuxi-da-analysis": ("analysis", "increment", "diagnostics"),
}
#: what reads the other outputs xfuxi writes (named when one is given to open_result)
_OTHER_READERS = {
    "cycle-run": "xfuxi.open_cycle(path)",
    "forecast": "xarray.open_dataset(path) (or xarray.open_zarr(path) for a zarr store)",
    "forecast-model": "xfuxi.load_model(path)",
    "perturbation": "xfuxi.load_perturbation(path)",
    "da-model": "xfuxi.load_da_model(path)",
    "weatherbench2-zarr": "xarray.open_zarr(path)",
}


def save_datasets(
    datasets: dict[str, xr.Dataset], directory: str | os.PathLike[str], *, kind: str,
    overwrite: bool = False, metadata: dict[str, Any] | None = None,
) -> Path:  # fmt: skip
    """Write each Dataset as ``NAME.nc`` into ``directory``, atomically, marked as an xfuxi
    output of ``kind`` (the layout the command line writes).

    ``directory`` must be new, an empty directory, or (with ``overwrite``) an earlier xfuxi
    output of the same ``kind``: xfuxi never replaces what it did not write
    (:func:`xfuxi.files.replace_directory`). Encodings read from inputs are dropped.
    Returns the absolute path of the directory.
    """

    def write(tmp: Path) -> None:
        write_datasets(datasets, tmp)

    return replace_directory(directory, write, kind=kind, overwrite=overwrite, metadata=metadata)


def write_datasets(datasets: dict[str, xr.Dataset], directory: Path) -> None:
    """Each Dataset as ``directory/NAME.nc`` (the encodings read from inputs dropped: an
    observation file's chunk layout does not apply to them). float16 variables, which
    netCDF cannot hold, are written as float32 (which holds them exactly)."""
    for name, ds in datasets.items():
        out = ds.drop_encoding()
        half = [k for k, v in out.variables.items() if v.dtype == np.float16]
        if half:  # a raw netCDF4 TypeError otherwise
            coords = [k for k in half if k in out.coords]
            out = out.assign_coords({k: out[k].astype("float32") for k in coords})
            out = out.assign({k: out[k].astype("float32") for k in half if k not in coords})
        out.to_netcdf(Path(directory) / f"{name}.nc")


class En4DVarResult(NamedTuple):
    """Result of :func:`assimilate_4dvar`.

    Attributes
    ----------
    analysis : xarray.Dataset
        Analysis at t0 (``time`` of length 1), canonical layout.
    trajectory : xarray.Dataset
        Analysis trajectory over the window (``time`` = t0, ``prediction_timedelta``).
    increment : xarray.Dataset
        Analysis minus background at t0.
    diagnostics : xarray.Dataset
        Cost per iteration, OMB/OMA, observations used and rejected, timings.
    """

    analysis: xr.Dataset
    trajectory: xr.Dataset
    increment: xr.Dataset
    diagnostics: xr.Dataset

    def save(self, directory: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write ``analysis.nc``, ``increment.nc``, ``trajectory.nc`` and ``diagnostics.nc``
        into ``directory`` (atomically; what ``xfuxi assimilate --output`` writes).

        ``directory`` must be new or empty; an earlier analysis written by xfuxi is replaced
        only with ``overwrite=True``, and nothing else ever. Returns its absolute path.
        Read a file back with ``xr.open_dataset(path / "analysis.nc")``.
        """
        return save_datasets(self.datasets(), directory, kind="assimilation", overwrite=overwrite)

    def datasets(self) -> dict[str, xr.Dataset]:
        """The four Datasets by name, as :meth:`save` writes them."""
        return {n: getattr(self, n) for n in RESULT_FILES["assimilation"]}

    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        d = self.diagnostics
        a = d.attrs
        cost = d["cost"].values if "cost" in d else np.array([np.nan])
        cost = cost if cost.size else np.array([np.nan])  # an empty history: shown as nan
        rejected = {
            str(r): int(n)
            for r, n in zip(d["reason"].values, d["n_rejected"].values)
            if int(n) > 0
        } if "n_rejected" in d else {}  # fmt: skip
        leads = ", ".join(_lead_str(x) for x in self.trajectory["prediction_timedelta"].values)
        title = (
            f"En4DVarResult: {a.get('method', 'En4DVar')} analysis at "
            f"{str(self.analysis['time'].values[0])[:16]} with {a.get('model', '?')}"
        )
        rows = [
            ("analysis, increment", ", ".join(map(str, self.analysis.data_vars))),
            ("trajectory", f"leads {leads}"),
            ("B", f"{a.get('background_error', '?')}, {a.get('n_members', '?')} members; "
                  f"localization: {a.get('localization', 'none')}"),
            ("minimisation", f"{a.get('iterations', '?')} iterations, J {cost[0]:.5g} -> "
                             f"{cost[-1]:.5g} ({a.get('message', '')})"),
            ("observations", f"{a.get('n_observations_used', '?')} used, rejected "
                             f"{rejected or 'none'}"),
            ("attributes", "analysis, trajectory, increment, diagnostics; .save(directory)"),
        ]  # fmt: skip
        return title, rows

    def __repr__(self) -> str:
        """A summary (the four Datasets are the attributes; print them one at a time)."""
        title, rows = self._summary()
        return "\n".join([title, *(f"  {k}: {v}" for k, v in rows)])

    def _repr_html_(self) -> str:
        """Jupyter's view: the summary of :meth:`__repr__` as a table."""
        title, rows = self._summary()
        return summary_html(title, rows)


def open_result(directory: str | os.PathLike[str]) -> Any:
    """Read back an analysis that ``res.save(directory)`` (or the command line's
    ``--output``) wrote: the :class:`En4DVarResult` of :func:`xfuxi.assimilate_4dvar` or
    the ``DAResult`` of :func:`xfuxi.assimilate_da`, as it was saved.

    The kind is read from the directory's xfuxi marker, not guessed from its files. The
    Datasets are loaded into memory and their files closed (the directory may be moved or
    replaced afterwards). What netCDF changes on the way is not undone: float16 variables
    come back as float32.

    Parameters
    ----------
    directory : path-like
        A directory written by ``En4DVarResult.save``, ``DAResult.save``, ``xfuxi
        assimilate --output`` or ``xfuxi assimilate-da --output``.

    Returns
    -------
    En4DVarResult or DAResult
        With its ``repr``, ``datasets()`` and ``save`` as before.

    Raises
    ------
    FileNotFoundError
        If ``directory`` does not exist or lacks one of the files its kind holds.
    ValueError
        If ``directory`` is not an xfuxi output, or is another kind of output (the error
        names the function that reads it).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from xfuxi.assimilation.result import En4DVarResult
    >>> ds = xr.Dataset({"x": ("time", [1.0])}, coords={"time": [np.datetime64("2000-01-01")]})
    >>> res = En4DVarResult(ds, ds, ds, ds)
    >>> path = res.save(pathlib.Path(tempfile.mkdtemp()) / "analysis")
    >>> back = open_result(path)
    >>> type(back).__name__, back.analysis["x"].values.tolist()
    ('En4DVarResult', [1.0])
    """
    from ..files import MARKER, read_marker

    path = Path(directory).expanduser()
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise FileNotFoundError(f"{path} {what}: give the directory an analysis was saved to")
    marker = read_marker(path)
    if marker is None:
        raise ValueError(
            f"{path} is not an analysis saved by xfuxi (no readable {MARKER} inside): give "
            "the directory that res.save(directory) or `xfuxi assimilate --output` wrote"
        )
    kind = str(marker["kind"])
    names = RESULT_FILES.get(kind)
    if names is None:
        reader = _OTHER_READERS.get(kind)
        hint = f"; read it with {reader}" if reader else ""
        raise ValueError(
            f"{path} holds an xfuxi output of kind {kind!r}, not a saved analysis (kinds "
            f"{sorted(RESULT_FILES)}){hint}"
        )
    missing = [f"{n}.nc" for n in names if not (path / f"{n}.nc").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{path} is a saved analysis ({kind!r}) without {', '.join(missing)}: it was "
            "changed after xfuxi wrote it; save the analysis again"
        )
    datasets = {n: xr.load_dataset(path / f"{n}.nc") for n in names}
    if kind == "assimilation":
        return En4DVarResult(**datasets)
    return DAResult(**datasets)


class DAResult(NamedTuple):
    """Result of :func:`assimilate_da`.

    Attributes
    ----------
    analysis : xarray.Dataset
        Analysis at each background time (canonical layout, the background's variables).
    increment : xarray.Dataset
        Analysis minus background.
    diagnostics : xarray.Dataset
        O−B and O−A statistics by channel, zenith-angle bin and sky (clear / cloudy), the
        number of pixels used, and the timing.
    """

    analysis: xr.Dataset
    increment: xr.Dataset
    diagnostics: xr.Dataset

    def __repr__(self) -> str:
        d = self.diagnostics
        a = d.attrs
        lines = [
            f"DAResult: {a.get('method', 'FuXi-DA')} analysis at {d.sizes.get('time', 0)} "
            f"time(s) with {a.get('model', '?')}",
            f"  analysis, increment: {', '.join(map(str, self.analysis.data_vars))}",
        ]
        if "rms_omb" in d:
            omb = d["rms_omb"].sel(group="all").mean("time").values
            oma = d["rms_oma"].sel(group="all").mean("time").values
            for c, b, o in zip(d["sensor_channel"].values, omb, oma):
                lines.append(f"  {c:>9}: RMS O-B {b:6.3f} K, O-A {o:6.3f} K")
        lines.append("  attributes: analysis, increment, diagnostics; .save(directory)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Jupyter's view: the summary of :meth:`__repr__` as a table."""
        title, *rest = repr(self).splitlines()
        return summary_html(title, [r.strip().partition(": ")[::2] for r in rest])

    def save(self, directory: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write ``analysis.nc``, ``increment.nc`` and ``diagnostics.nc`` into ``directory``
        (atomically; what ``xfuxi assimilate-da --output`` writes).

        ``directory`` must be new or empty; an earlier FuXi-DA analysis written by xfuxi is
        replaced only with ``overwrite=True``, and nothing else ever. Returns its absolute
        path. Read a file back with ``xr.open_dataset(path / "analysis.nc")``.
        """
        return save_datasets(
            self.datasets(), directory, kind="fuxi-da-analysis", overwrite=overwrite
        )

    def datasets(self) -> dict[str, xr.Dataset]:
        """The three Datasets by name, as :meth:`save` writes them."""
        return {n: getattr(self, n) for n in RESULT_FILES["fuxi-da-analysis"]}


def _lead_str(td: Any) -> str:
    hours = pd.Timedelta(td) / pd.Timedelta("1h")
    return f"+{hours:g} h"


def result_datasets(
    res: Any,
    *,
    model: Any,
    background: xr.Dataset,
    t0: pd.Timestamp,
    slot_times: np.ndarray,
    observations: dict[str, Any],
    attrs: dict[str, Any],
) -> En4DVarResult:
    """Turn a :class:`~xfuxi.assimilation.en4dvar.TensorAnalysis` into an :class:`En4DVarResult`.

    ``observations`` holds the screened observations (``used``), their operator (``op``),
    their slot indices per occupied slot (``order``), the occupied slots (``steps``), the
    rejection counts (``counts``) and the number given (``n_given``). ``attrs`` go to every
    Dataset (provenance).
    """
    used, op, order, counts = (
        observations["used"], observations["op"], observations["order"], observations["counts"]
    )  # fmt: skip
    n_slots = len(slot_times)
    step = pd.Timedelta(model.timestep)
    t0_64 = np.array([t0], dtype="M8[ns]")
    traj = forecast_dataset(
        res.trajectory[None],
        model=model,
        init_times=t0_64,
        leads=np.array([k * step for k in range(res.trajectory.shape[0])], dtype="m8[ns]"),
        attrs=attrs,
    )
    analysis = traj.isel(prediction_timedelta=0, drop=True)
    inc_da = xr.DataArray(
        res.increment.numpy()[None],
        dims=("time", "channel", "latitude", "longitude"),
        # the analysis's latitude and longitude, with their attributes (units ...)
        coords={"time": t0_64, "latitude": analysis["latitude"].variable.copy(),
                "longitude": analysis["longitude"].variable.copy()},
    )  # fmt: skip
    increment = unstack(inc_da, model.channels)
    increment = increment.transpose(*canonical_order(increment.dims))
    increment.attrs = dict(attrs, description="analysis minus background at t0")
    for ds in (traj, analysis, increment):  # the background's spelling of every unit
        for v in ds.data_vars:
            if "units" in background[v].attrs:
                ds[v].attrs["units"] = background[v].attrs["units"]
        for c in ("latitude", "longitude", "level"):  # and its coordinates' attributes
            if c in ds.coords and c in background.coords:
                ds[c].attrs = {**ds[c].attrs, **background[c].attrs}
    # diagnostics
    slot_of = used["slot"].values
    qc_flags = np.zeros(used.sizes["obs"], dtype=bool)
    for idx, bad in zip(order, res.qc_rejected):
        qc_flags[idx] = bad
    counts["background_check"] = int(qc_flags.sum())
    keep_final = np.nonzero(~qc_flags)[0]
    final = used.isel(obs=keep_final)
    with torch.no_grad():
        hb = op(res.background_trajectory).numpy()  # (K, m_used)
        ha = op(res.trajectory).numpy()
    cols = np.arange(used.sizes["obs"])
    omb = (used["value"].values - hb[slot_of, cols])[keep_final]
    oma = (used["value"].values - ha[slot_of, cols])[keep_final]
    obs_part = final.rename(
        {"value": "observation", "error": "observation_error", "slot": "obs_slot"}
    )
    obs_part["omb"] = ("obs", omb)
    obs_part["oma"] = ("obs", oma)
    groups = [
        f"{v}" if np.isnan(lv) else f"{v}@{lv:g}"
        for v, lv in zip(final["variable"].values, final["level"].values)
    ]
    names = sorted(set(groups))
    gidx = np.array([names.index(g) for g in groups], dtype=int)
    n_used = np.bincount(gidx, minlength=len(names))

    def group_stat(x: np.ndarray, f: Any) -> np.ndarray:
        return np.array([f(x[gidx == i]) for i in range(len(names))])

    hist = res.history
    jo = np.zeros((len(hist.records), n_slots))
    for i, r in enumerate(hist.records):
        for s, val in zip(observations["steps"], r.cost_observation):
            jo[i, s] = val
    diag = xr.Dataset(
        {
            "cost": ("iteration", [r.cost for r in hist.records]),
            "cost_background": ("iteration", [r.cost_background for r in hist.records]),
            "cost_observation": (("iteration", "slot"), jo),
            "gradient_norm": ("iteration", [r.gradient_norm for r in hist.records]),
            "omb_rms": ("group", group_stat(omb, lambda a: np.sqrt(np.mean(a**2)))),
            "oma_rms": ("group", group_stat(oma, lambda a: np.sqrt(np.mean(a**2)))),
            "omb_mean": ("group", group_stat(omb, np.mean)),
            "oma_mean": ("group", group_stat(oma, np.mean)),
            "n_used": ("group", n_used),
            "n_rejected": ("reason", [counts[r] for r in REJECT_REASONS]),
        },
        coords={
            "iteration": np.arange(len(hist.records)),
            "slot": ("slot", list(range(n_slots))),
            "slot_time": ("slot", slot_times),
            "group": names,
            "reason": list(REJECT_REASONS),
        },
    )
    for name in ("omb_rms", "oma_rms", "omb_mean", "oma_mean"):  # each group in its own units
        stat = "RMS" if name.endswith("rms") else "mean"
        diff = "O-B" if name.startswith("omb") else "O-A"
        diag[name].attrs["long_name"] = f"{stat} of {diff} by group, in its variable's units"
    diag = xr.merge([diag, obs_part], compat="override")
    diag.attrs.update(
        attrs,
        analysis_time=str(t0),
        iterations=len(hist.records) - 1,
        n_evaluations=hist.n_evaluations,
        converged=int(hist.converged),
        message=hist.message,
        member_time_s=res.timings["members_s"],
        minimisation_time_s=res.timings["minimisation_s"],
        n_observations=int(observations["n_given"]),
        n_observations_used=int(final.sizes["obs"]),
    )
    return En4DVarResult(analysis, traj, increment, diag)
