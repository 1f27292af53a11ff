"""The main job: the whole FuXi loop on the embedded Held–Suarez world, in one call.

``xfuxi demo`` (or :func:`run_demo`) generates (or reads from the cache) the test period of
the world and a climatology, scores persistence and climatology baselines, forecasts 10 days
with the pretrained FuXi model, runs a 48-member FuXi-ENS ensemble, assimilates synthetic
radiosondes with FuXi-En4DVar and a synthetic geostationary imager's radiances with FuXi-DA,
and writes every table and figure into one output folder.
Each stage returns its tables, so the same steps can be run one by one in a notebook.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import xfuxi

from .assimilation.da import resolve_da_model
from .config import is_integer
from .files import atomic_write_bytes, replace_directory
from .models.cascade import Cascade

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
    """Write a figure as PNG atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def _save_table(df: pd.DataFrame, path: Path) -> None:
    atomic_write_bytes(path, df.to_csv().encode())


def stage_baselines(result: DemoResult, *, test_days: int, lead_days: int, n_init: int) -> dict:
    """World, climatology, persistence and climatology baselines, and a map."""

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
    title = f"Held–Suarez world: Z500 and 500 hPa wind, {str(truth.time.values[0])[:16]}"
    ax = xfuxi.plot_map(truth.isel(time=0), variable="geopotential", level=500.0, wind=True,
                        style=xfuxi.MapStyle(title=title))  # fmt: skip
    result.figures["map"] = _save_figure(ax.figure, result.output_dir / "map_z500.png")
    return {"truth": truth, "clim": clim, "init_times": init_times, "leads": leads,
            "systems": systems, "rmse": rmse, "acc": acc, "reference": reference}  # fmt: skip


def _plot_headline_scores(scores: dict[str, xr.Dataset], ylabel: str, title: str) -> Any:
    """2 × 2 panels (one per headline channel) of a score against lead time, one line a
    system; the axis labelled with the score's units where it has them."""
    import matplotlib.pyplot as plt

    from .plot import _units_label

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    for ax, (var, level) in zip(axes.ravel(), HEADLINE):
        series = {k: v[var].sel(level=level) for k, v in scores.items()}
        units = _units_label(next(iter(series.values())).attrs.get("units"))
        label = f"{ylabel} ({units})" if units and units != "1" else ylabel
        xfuxi.plot_scores(series, ylabel=label, title=f"{var} {level:g} hPa", ax=ax)
    fig.suptitle(title)
    return fig


def stage_forecast(result: DemoResult, base: dict, *, model_name: str) -> dict:
    """Load the pretrained FuXi model, forecast from every initial time, score, plot.

    Returns the loaded model (the ensemble stage runs it too), the forecast, and
    ``"step_model"``: the single one-step model 4DVar runs (a cascade's first stage,
    FuXi-Short).
    """

    model = xfuxi.load_model(model_name)
    truth, clim, init_times = base["truth"], base["clim"], base["init_times"]
    steps = len(base["leads"]) - 1
    fc = xfuxi.forecast(truth, model=model, steps=steps, init_times=init_times)
    dims = ["time", "latitude", "longitude"]
    # the baselines are scored from lead 0; the model's first lead is one step
    rmse = {"fuxi": xfuxi.rmse(fc, truth, dim=dims)}
    acc = {"fuxi": xfuxi.acc(fc, truth, clim, dim=dims)}
    rmse.update({k: v.isel(prediction_timedelta=slice(1, None)) for k, v in base["rmse"].items()})
    acc["persistence"] = base["acc"]["persistence"].isel(prediction_timedelta=slice(1, None))
    result.tables["forecast_rmse"] = pd.concat([_headline(v, k) for k, v in rmse.items()], axis=1)
    result.tables["forecast_acc"] = pd.concat([_headline(v, k) for k, v in acc.items()], axis=1)
    fig = _plot_headline_scores(
        rmse, "RMSE", f"{model_name} vs baselines on the test period ({len(init_times)} starts)"
    )
    result.figures["forecast_rmse"] = _save_figure(fig, result.output_dir / "forecast_rmse.png")
    fig = _plot_headline_scores(acc, "ACC", f"{model_name}: anomaly correlation")
    result.figures["forecast_acc"] = _save_figure(fig, result.output_dir / "forecast_acc.png")
    step_model = model.stages[0] if isinstance(model, Cascade) else model
    return {"model": model, "step_model": step_model, "forecast": fc}


def stage_ensemble(
    result: DemoResult, base: dict, model: Any, *, n_members: int, n_init: int
) -> dict:
    """A FuXi-ENS ensemble from a few initial times: fair CRPS and spread–skill by lead."""

    truth = base["truth"]
    init_times = base["init_times"][:: max(1, len(base["init_times"]) // n_init)][:n_init]
    steps = len(base["leads"]) - 1
    ens = xfuxi.ensemble(truth, model=model, n=n_members, steps=steps, init_times=init_times,
                         seed=0)  # fmt: skip
    dims = ["time", "latitude", "longitude"]
    crps = xfuxi.crps(ens, truth, dim=dims)
    ssr = xfuxi.spread_skill_ratio(ens, truth, dim=dims)
    result.tables["ensemble_crps"] = _headline(crps, "crps")
    result.tables["ensemble_spread_skill"] = _headline(ssr, "ssr")
    title = f"FuXi-ENS, {n_members} members, {len(init_times)} starts"
    fig = _plot_headline_scores({"fuxi-ens crps": crps}, "fair CRPS", title)
    result.figures["ensemble_crps"] = _save_figure(fig, result.output_dir / "ensemble_crps.png")
    return {"ensemble": ens}


def stage_assimilation(
    result: DemoResult, base: dict, model: Any, *, n_sites: int, n_members: int
) -> dict:
    """One FuXi-En4DVar analysis with synthetic radiosondes (both window slots)."""

    truth = base["truth"]
    step = np.timedelta64(6, "h")
    t0 = _analysis_time(truth["time"].values, base["init_times"])
    # background: a 1.5-day FuXi forecast from the truth, valid at t0 - 12 h, t0 - 6 h, t0
    start = t0 - 6 * step
    bg_fc = xfuxi.forecast(truth, model=model, steps=6, init_times=[start])
    background = (
        bg_fc.isel(time=0, drop=True)
        .sel(prediction_timedelta=[4 * step, 5 * step, 6 * step])
        .assign_coords(time=("prediction_timedelta", [t0 - 2 * step, t0 - step, t0]))
        .swap_dims(prediction_timedelta="time")
        .drop_vars("prediction_timedelta")
    )
    errors = {"geopotential": 30.0, "temperature": 0.5, "u_component_of_wind": 1.0,
              "v_component_of_wind": 1.0, "passive_tracer": 0.01}  # fmt: skip
    obs = xfuxi.radiosonde_observations(
        truth.sel(time=[t0, t0 + step]), error=errors, n_sites=n_sites,
        variables=list(errors), seed=0,
    )  # fmt: skip
    # B variances from forecast-minus-truth statistics of the validation run (an independent
    # period) at the background's lead; the ensemble gives the correlations
    spread = xfuxi.background_error_std(
        base["reference"].isel(time=slice(0, 120)), model=model, lead_steps=6, n_samples=24
    )
    # horizontal Gaspari-Cohn localization, and vertical in ln p: radiosondes observe every
    # level, and the vertical localization raised the temperature analysis' gain at every level
    localization = xfuxi.LocalizationOptions(length_scale=1500.0, vertical_length_scale=1.0)
    res = xfuxi.assimilate_4dvar(
        background, obs, model=model, localization=localization,
        background_error=xfuxi.BackgroundError(n_members=n_members),
        error_data=xfuxi.BackgroundErrorData(spread=spread),
    )  # fmt: skip
    diag = res.diagnostics
    bg0 = background.sel(time=[t0])
    dims = ["time", "latitude", "longitude"]
    rmse_b = xfuxi.rmse(bg0, truth.sel(time=[t0]), dim=dims)
    rmse_a = xfuxi.rmse(res.analysis, truth.sel(time=[t0]), dim=dims)
    rows = []
    for var in rmse_b.data_vars:
        for level in rmse_b["level"].values if "level" in rmse_b[var].dims else [np.nan]:
            sel = {} if np.isnan(level) else {"level": level}
            b = float(rmse_b[var].sel(sel))
            a = float(rmse_a[var].sel(sel))
            rows.append({"variable": var, "level": level, "rmse_background": b,
                         "rmse_analysis": a, "gain_%": 100 * (1 - a / b)})  # fmt: skip
    result.tables["en4dvar_rmse"] = pd.DataFrame(rows).set_index(["variable", "level"])
    result.tables["en4dvar_innovations"] = _innovation_table(diag)
    ax = xfuxi.plot_increment(
        res.analysis, bg0, variable="geopotential", level=500.0, wind=True,
        observations=obs,  # the Held–Suarez world has no land: no coastlines
        style=xfuxi.MapStyle(coastlines=False,
                             title=f"En4DVar increment, Z500 and wind, {str(t0)[:16]}"),
    )  # fmt: skip
    result.figures["increment"] = _save_figure(ax.figure, result.output_dir / "increment_z500.png")
    ax = xfuxi.plot_convergence(diag)
    result.figures["convergence"] = _save_figure(ax.figure, result.output_dir / "convergence.png")
    return {"result": res, "observations": obs}


def _analysis_time(times: np.ndarray, init_times: np.ndarray) -> np.datetime64:
    """The En4DVar stage's analysis time: the middle initial time, or (where the truth does
    not hold the 42 hours before it that the background's 36-hour forecast starts from, its
    two input times, nor the 6 hours after it of the window's second slot: with one initial
    time, the period's second) the truth time nearest to it that does."""
    step = np.timedelta64(6, "h")
    t0 = init_times[len(init_times) // 2]
    usable = times[(times - 7 * step >= times[0]) & (times + step <= times[-1])]
    if not usable.size:
        raise ValueError(
            "the test period is too short for the En4DVar stage: its analysis needs the truth "
            "42 hours before it and 6 hours after it"
        )
    if t0 in usable:
        return t0
    return usable[np.argmin(np.abs(usable - t0))]


def _fuxi_da_times(times: np.ndarray, init_times: np.ndarray) -> np.ndarray:
    """The initial times with the truth 12 hours before (a 6-hour background) and 6 hours
    after them (the imager's frames): those the FuXi-DA stage may analyse."""
    step = np.timedelta64(6, "h")
    return init_times[(init_times - 2 * step >= times[0]) & (init_times + step <= times[-1])]


def stage_fuxi_da(
    result: DemoResult,
    base: dict,
    model: Any,
    *,
    n_times: int,
    satellite: float = 105.0,
    da_model: Any = "fuxi-da-hs-t21",
    corr_model: Any = "fuxi-da-hs-t21-corr",
) -> dict:
    """FuXi-DA analyses of a synthetic geostationary imager's radiances.

    At ``n_times`` of the initial times, the background is the 6-hour forecast of ``model``
    from the truth (as FuXi-DA was trained); one satellite at ``satellite`` °E sees the
    truth (clouds, biases, noise; the frames the network takes). The background (CTRL), the learned
    correction without radiances (CORR, ``corr_model``) and the analysis (ASSI,
    ``da_model``) are scored against the truth inside the satellite's disc and globally;
    the radiances' O − B and O − A by channel; maps of the temperature increment at 850 hPa
    and of ASSI − CORR there (what the radiances add).
    """
    if not is_integer(n_times) or n_times < 1:
        raise ValueError(f"n_times must be a positive integer; got {n_times!r}")
    truth = base["truth"]
    step = np.timedelta64(6, "h")
    # a 6-hour background needs the truth 12 hours before; the imager's frames, 6 hours after
    usable = _fuxi_da_times(truth["time"].values, base["init_times"])
    if not usable.size:
        raise ValueError(
            "no initial time has the truth 12 hours before and 6 hours after it, as the "
            "FuXi-DA stage needs (a 6-hour background, the imager's frames)"
        )
    times = usable[:: max(1, len(usable) // n_times)][:n_times]
    fc = xfuxi.forecast(truth, model=model, steps=1, init_times=times - step)
    background = fc.isel(prediction_timedelta=-1, drop=True).assign_coords(time=times)
    background = background.transpose("time", ...)  # the init time becomes the valid time
    net = resolve_da_model(da_model)  # the imager draws the channels and frames it takes
    radiances = xfuxi.imager_observations(
        truth, satellites=[satellite], channels=net.sensor_channels, frames=net.frames,
        times=times, seed=0,
    )  # fmt: skip
    assi = xfuxi.assimilate_da(background, radiances, model=net)
    corr = xfuxi.assimilate_da(background, model=corr_model)
    target = truth.sel(time=times)
    regions = {"inside the disc": radiances["zenith_angle"].notnull(), "global": None}
    states = {"CTRL": background, "CORR": corr.analysis, "ASSI": assi.analysis}
    rows = []
    for region, mask in regions.items():
        scores = {
            k: xfuxi.rmse(x, target, dim=["time", "latitude", "longitude"], region=mask)
            for k, x in states.items()
        }
        for var, level in (*HEADLINE, ("passive_tracer", 500.0)):
            if var not in scores["CTRL"] or level not in scores["CTRL"]["level"]:
                continue  # a model without this channel
            row: dict[str, Any] = {"region": region, "variable": var, "level": level}
            for k, sc in scores.items():
                row[f"rmse_{k}"] = float(sc[var].sel(level=level))
            row["ASSI_vs_CORR_%"] = 100 * (1 - row["rmse_ASSI"] / row["rmse_CORR"])
            rows.append(row)
    result.tables["fuxi_da_rmse"] = pd.DataFrame(rows).set_index(["region", "variable", "level"])
    # O − B and O − A pooled over the times: the RMS of every pixel's departure, its count
    diag = assi.diagnostics[["rms_omb", "rms_oma", "count"]].sel(group=["all", "clear", "cloudy"])
    n = diag["count"].sum("time")
    pooled = xr.Dataset(
        {
            k: np.sqrt((diag[k].fillna(0.0) ** 2 * diag["count"]).sum("time") / n.where(n > 0))
            for k in ("rms_omb", "rms_oma")
        }
    )
    pooled["count"] = n
    result.tables["fuxi_da_radiances"] = pooled.to_dataframe()
    first = times[0]
    ax = xfuxi.plot_increment(
        assi.analysis.sel(time=[first]), background.sel(time=[first]),
        variable="temperature", level=850.0,
        style=xfuxi.MapStyle(coastlines=False,
                             title=f"FuXi-DA increment, T850, {str(first)[:16]}"),
    )  # fmt: skip
    result.figures["fuxi_da_increment"] = _save_figure(
        ax.figure, result.output_dir / "fuxi_da_increment_t850.png"
    )
    # what the radiances add: ASSI − CORR (CORR corrects the background everywhere)
    ax = xfuxi.plot_increment(
        assi.analysis.sel(time=[first]), corr.analysis.sel(time=[first]),
        variable="temperature", level=850.0,
        style=xfuxi.MapStyle(coastlines=False, title=f"FuXi-DA: ASSI − CORR, T850, "
                             f"{str(first)[:16]} (satellite at {satellite:g}° E)"),
    )  # fmt: skip
    result.figures["fuxi_da_radiances_increment"] = _save_figure(
        ax.figure, result.output_dir / "fuxi_da_assi_minus_corr_t850.png"
    )
    return {"result": assi, "corr": corr, "radiances": radiances, "background": background}


def _innovation_table(diag: xr.Dataset) -> pd.DataFrame:
    """OMB and OMA RMS per variable and level from the En4DVar diagnostics."""
    keys = [k for k in diag.data_vars if str(k).startswith(("omb_", "oma_"))]
    frame = diag[keys].to_dataframe()
    return frame[[c for c in frame.columns if c.endswith(("rms", "count"))]]


def run_demo(
    output_dir: str | os.PathLike = "demo_output",
    *,
    test_days: int = 60,
    lead_days: int = 10,
    n_init: int = 20,
    model: str = "fuxi-hs-t21-cascade",
    n_members: int = 48,
    n_init_ensemble: int = 2,
    n_sites: int = 200,
    n_members_4dvar: int = 200,
    n_times_da: int = 8,
    overwrite: bool = False,
) -> DemoResult:
    """Run the whole loop on the embedded world and write tables and figures.

    Parameters
    ----------
    output_dir : path, default "demo_output"
        Folder for figures (PNG) and tables (CSV). It is written as a whole into a
        temporary folder beside it and moved into place at the end, so a failed run leaves
        no partial output. An existing folder is replaced only if it is an earlier demo
        output of xfuxi's and ``overwrite`` is true (see the data-safety policy,
        docs/safety.md); anything else there is never touched.
    test_days : int, default 60
        Length of the test period generated (or read from the cache).
    lead_days : int, default 10
        Forecast length in days.
    n_init : int, default 20
        Number of initial times scored.
    model : str, default "fuxi-hs-t21-cascade"
        Pretrained model or cascade name (or checkpoint directory). The ensemble and 4DVar
        stages run a cascade's first stage.
    n_members : int, default 48
        FuXi-ENS ensemble size.
    n_init_ensemble : int, default 2
        Initial times of the ensemble forecast.
    n_sites : int, default 200
        Radiosonde sites for the En4DVar analysis.
    n_members_4dvar : int, default 200
        Ensemble size of the En4DVar background error.
    n_times_da : int, default 8
        Analysis times of the FuXi-DA stage (0: skip it).
    overwrite : bool, default False
        Replace an earlier demo output in ``output_dir``.

    Returns
    -------
    DemoResult
        The tables and figure paths.

    Raises
    ------
    xfuxi.files.OutputExistsError
        ``output_dir`` exists and is not an earlier demo output that may be replaced.
    """
    if not is_integer(n_times_da) or n_times_da < 0:
        raise ValueError(f"n_times_da must be an integer >= 0; got {n_times_da!r}")
    out = Path(output_dir)
    settings = {"test_days": test_days, "lead_days": lead_days, "n_init": n_init, "model": model,
                "n_members": n_members, "n_init_ensemble": n_init_ensemble, "n_sites": n_sites,
                "n_members_4dvar": n_members_4dvar, "n_times_da": n_times_da,
                "xfuxi_version": xfuxi.__version__}  # fmt: skip
    result = DemoResult(output_dir=out)

    def write(tmp: Path) -> None:
        result.output_dir = tmp
        log.info("stage 1: world, climatology, baselines")
        base = stage_baselines(result, test_days=test_days, lead_days=lead_days, n_init=n_init)
        # the later stages' times, checked now: not after the forecasts and the ensemble
        times = base["truth"]["time"].values
        _analysis_time(times, base["init_times"])
        if n_times_da and not _fuxi_da_times(times, base["init_times"]).size:
            raise ValueError(
                f"no initial time of the {n_init} scored has the truth 12 hours before and 6 "
                "hours after it, as the FuXi-DA stage needs (n_init=1 starts at the test "
                "period's second time): raise n_init (--n-init), or skip the stage with "
                "n_times_da=0 (--da-times 0)"
            )
        log.info("stage 2: FuXi forecasts")
        fc = stage_forecast(result, base, model_name=model)
        log.info("stage 3: FuXi-ENS ensemble")
        stage_ensemble(result, base, fc["model"], n_members=n_members, n_init=n_init_ensemble)
        log.info("stage 4: FuXi-En4DVar analysis")
        stage_assimilation(
            result, base, fc["step_model"], n_sites=n_sites, n_members=n_members_4dvar
        )
        if n_times_da:
            log.info("stage 5: FuXi-DA analyses of imager radiances")
            stage_fuxi_da(result, base, fc["step_model"], n_times=n_times_da)
        for name, df in result.tables.items():
            _save_table(df, tmp / f"{name}.csv")

    replace_directory(out, write, kind="demo", overwrite=overwrite, metadata={"settings": settings})
    result.output_dir = out
    result.figures = {k: out / p.name for k, p in result.figures.items()}
    return result
