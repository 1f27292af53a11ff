"""The main job: the whole FuXi loop on the embedded Held–Suarez world, in one call.

``xfuxi demo`` (or :func:`run_demo`) generates (or reads from the cache) the test period of
the world and a climatology, scores persistence and climatology baselines, forecasts 10 days
with the pretrained FuXi model, runs a 48-member FuXi-ENS ensemble, assimilates synthetic
radiosondes with FuXi-En4DVar, and writes every table and figure into one output folder.
Each stage returns its tables, so the same steps can be run one by one in a notebook.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["DemoResult", "run_demo"]

log = logging.getLogger(__name__)

#: the headline channels scored everywhere in the demo (variable, level)
HEADLINE = (
    ("geopotential", 500.0),
    ("temperature", 850.0),
    ("u_component_of_wind", 250.0),
    ("v_component_of_wind", 250.0),
)


@dataclass
class DemoResult:
    """Tables (pandas DataFrames) and figure paths produced by :func:`run_demo`."""

    output_dir: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)


def _headline(scores: xr.Dataset, name: str) -> pd.DataFrame:
    """One column per headline channel, one row per lead time (hours)."""
    cols = {}
    for var, level in HEADLINE:
        if var in scores:
            da = scores[var]
            if "level" in da.dims:
                da = da.sel(level=level)
            cols[f"{name}:{var}@{level:g}"] = da.to_series()
    df = pd.DataFrame(cols)
    df.index = (df.index / pd.Timedelta(hours=1)).astype(int)
    df.index.name = "lead_h"
    return df


def _save_figure(fig: Any, path: Path) -> Path:
    """Write a figure atomically (temp file beside the target, then rename)."""
    import matplotlib.pyplot as plt

    fd, tmp = tempfile.mkstemp(suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        plt.close(fig)
    return path


def _save_table(df: pd.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".csv", dir=path.parent)
    os.close(fd)
    df.to_csv(tmp)
    os.replace(tmp, path)


def stage_baselines(result: DemoResult, *, test_days: int, lead_days: int, n_init: int) -> dict:
    """World, climatology, persistence and climatology baselines, and a map."""
    import xfuxi

    truth = xfuxi.held_suarez_split("test", days=test_days).load()
    reference = xfuxi.held_suarez_split("validation")
    clim = xfuxi.climatology(reference).load()
    steps = lead_days * 4
    last_init = truth.time.values[-1] - np.timedelta64(lead_days, "D")
    candidates = truth.time.values[1:][truth.time.values[1:] <= last_init]
    if candidates.size < n_init:
        raise ValueError(
            f"test period of {test_days} days is too short for {n_init} initial times with "
            f"{lead_days}-day forecasts"
        )
    init_times = candidates[np.linspace(0, candidates.size - 1, n_init).round().astype(int)]
    leads = pd.timedelta_range("0h", periods=steps + 1, freq="6h")
    dims = ["time", "latitude", "longitude"]
    systems = {
        "persistence": xfuxi.persistence_forecast(truth, init_times=init_times, leads=leads),
        "climatology": xfuxi.climatology_forecast(clim, init_times=init_times, leads=leads),
    }
    rmse = {k: xfuxi.rmse(fc, truth, dim=dims) for k, fc in systems.items()}
    acc = {k: xfuxi.acc(fc, truth, clim, dim=dims) for k, fc in systems.items()}
    result.tables["baseline_rmse"] = pd.concat([_headline(v, k) for k, v in rmse.items()], axis=1)
    result.tables["baseline_acc"] = pd.concat([_headline(v, k) for k, v in acc.items()], axis=1)
    ax = xfuxi.plot_map(
        truth.isel(time=0), variable="geopotential", level=500.0, wind=True,
        title=f"Held–Suarez world: Z500 and 500 hPa wind, {str(truth.time.values[0])[:16]}",
    )  # fmt: skip
    result.figures["map"] = _save_figure(ax.figure, result.output_dir / "map_z500.png")
    return {"truth": truth, "clim": clim, "init_times": init_times, "leads": leads,
            "systems": systems, "rmse": rmse, "acc": acc}  # fmt: skip


def run_demo(
    output_dir: str | os.PathLike = "demo_output",
    *,
    test_days: int = 60,
    lead_days: int = 10,
    n_init: int = 20,
) -> DemoResult:
    """Run the whole loop on the embedded world and write tables and figures.

    Parameters
    ----------
    output_dir : path, default "demo_output"
        Folder for figures (PNG) and tables (CSV); created if needed.
    test_days : int, default 60
        Length of the test period generated (or read from the cache).
    lead_days : int, default 10
        Forecast length in days.
    n_init : int, default 20
        Number of initial times scored.

    Returns
    -------
    DemoResult
        The tables and figure paths.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(output_dir=out)
    log.info("stage 1: world, climatology, baselines")
    stage_baselines(result, test_days=test_days, lead_days=lead_days, n_init=n_init)
    for name, df in result.tables.items():
        _save_table(df, out / f"{name}.csv")
    return result
