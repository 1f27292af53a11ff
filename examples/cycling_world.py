"""Cycled assimilation on the Held–Suarez world: every method through one driver, one table.

The free run, Perlin En4DVar, static-B 3D-Var, the LETKF and the cycled-ensemble En4DVar,
each cycled every 6 h with the same radiosonde network (``--sites`` columns of every
variable and level plus surface pressure) through :func:`xfuxi.cycle`, scored against the
truth of ``--split`` (required: validation for choices, test only to report; the recorded
runs of docs/cycling.md without ``--split`` in their commands ran on the test split, the
default of earlier releases). The model is the shipped ``fuxi-hs-t21-cycling-v6``
(``--model``; the figures recorded before it ran ``fuxi-hs-t21-cycling`` or
``fuxi-hs-t21-cycling-v2`` to ``-v5``, named in their commands): the shipped
``fuxi-hs-t21`` with its every step truncated to the world's T21 wavenumbers
(:func:`xfuxi.with_spectral_filter`), fine-tuned from perturbed inputs so that its climate
does not drift over weeks (a model without a filter of its own gets ``--truncation`` 21), the
localization Gaspari–Cohn ``--length-scale`` 1000 km with vertical localization 1.0 (ln p):
the settings chosen on the validation split (docs/cycling.md). Prints the issue-22 table
(analysis error over days 2–10 and over the last third, their ratio, spread/error) for
z500, t850, u250, tracer500 and surface pressure, and writes it to
``benchmarks/results/cycling_world.json`` after each method (``--out``).

    python examples/cycling_world.py --split test --days 30
    python examples/cycling_world.py --split test --days 2 --methods letkf,cycled   # a quick look
    # one process per method and core, resumable, then one table from the stores:
    python examples/cycling_world.py --split test --days 30 --methods letkf --threads 1 --store run
    python examples/cycling_world.py --split test --days 30 --methods letkf,cycled --store run \\
        --table-only
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

CHANNELS = [
    "geopotential@500",
    "temperature@850",
    "u_component_of_wind@250",
    "passive_tracer@500",
    "surface_pressure",
]
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _table(scores, days: float) -> dict:
    """Per channel: mean analysis error over days 2–10 and the last third, spread/error."""
    import pandas as pd

    t = pd.DatetimeIndex(scores["time"].values)
    age = (t - t[0]) / pd.Timedelta("1D")
    early = (age >= 2) & (age <= 10)
    late = age >= (2.0 / 3.0) * days
    after2 = age >= 2
    out = {}
    for ch in CHANNELS:
        if ch not in scores["channel"].values:
            continue
        s = scores.sel(channel=ch)
        a = s["analysis_error"].values
        row = {
            "analysis_days_2_10": float(np.mean(a[early])) if early.any() else float("nan"),
            "analysis_last_third": float(np.mean(a[late])) if late.any() else float("nan"),
            "free_last_third": float(np.mean(s["free_error"].values[late]))
            if late.any()
            else float("nan"),
            "spread_over_error_after_day_2": float(
                np.nanmean(s["spread"].values[after2]) / np.mean(a[after2])
            )
            if after2.any()
            else float("nan"),
        }
        row["steady_ratio"] = row["analysis_last_third"] / row["analysis_days_2_10"]
        # over all cycles (what a short run can say)
        for var in ("analysis_error", "background_error", "free_error", "spread"):
            row[f"{var}_all_cycles"] = float(np.nanmean(s[var].values))
        out[ch] = row
    return out


def run_world(
    *,
    days: float,
    sites: int = 300,
    members: int = 40,
    methods: str = "letkf,cycled,perlin,3dvar",
    store: str | None = None,
    out_path: Path | None = None,
    threads: int = 2,
    truncation: int | None | str = "auto",
    length_scale: float = 1000.0,
    split: str = "test",
    model_name: str = "fuxi-hs-t21-cycling-v6",
    additive: float = 0.0,
    rtps: float = 0.8,
    inflation: float = 1.0,
    hybrid: float = 0.0,
    hybrid_lead: int | None = None,
    gain_weight: float = 1.0,
    bias_rate: float = 0.0,
    bias_truncation: int | None = 10,
    bias_spinup: int = 8,
    static_length_scale: float = 2000.0,
    adaptive_static: float = 0.0,
    static_inflation: float = 1.0,
    ensemble_variances: bool = False,
    increment_previous: bool = False,
    blend: str | None = None,
    blend_strength: float = 1.0,
    keep_members: bool = True,
    update_previous: bool = True,
) -> dict:
    """Run the comparison; returns ``{"table": ..., "runs": ...}`` (also written as JSON)."""
    import torch

    import xfuxi
    from xfuxi.assimilation.climatology_blend import (
        ClimatologyBlendMethod,
        climatology_tensor,
        read_blend_factors,
    )
    from xfuxi.assimilation.config import BackgroundError, LocalizationOptions
    from xfuxi.assimilation.cycle import (
        CycleConfig,
        En4DVarMethod,
        HybridGainMethod,
        LETKFMethod,
        RadiosondeNetwork,
        cycle,
        static_var,
    )
    from xfuxi.assimilation.inputs import states_tensor
    from xfuxi.assimilation.letkf import LETKFOptions
    from xfuxi.assimilation.model_bias import BiasCorrectedMethod
    from xfuxi.files import atomic_write_json

    torch.set_num_threads(threads)
    xfuxi.set_options(progress=False)
    model = xfuxi.load_model(model_name)
    if truncation == "auto":  # the world's T21, unless the model carries a filter already
        truncation = None if getattr(model, "output_filter", None) is not None else 21
    if truncation is not None:  # the model's grid-scale noise removed at every step
        from xfuxi.models.spectral import with_spectral_filter

        model = with_spectral_filter(model, truncation)
    truth = xfuxi.held_suarez_split(split, days=int(np.ceil(days)) + 4).load()
    network = RadiosondeNetwork(n_sites=sites)
    loc = LocalizationOptions(length_scale=length_scale, vertical_length_scale=1.0)
    letkf = LETKFOptions(n_members=members, rtps=rtps, inflation=inflation, qc_threshold=5.0)
    ens = {"update_previous": update_previous}  # the LETKF's earlier input time

    def error_samples(lead_steps: int):
        """The model's forecast errors at this lead, from the train split (independent of
        the period assimilated), computed on one thread so that a resumed run with other
        ``--threads`` has the same samples."""
        torch.set_num_threads(1)
        errors = xfuxi.forecast_error_samples(
            xfuxi.held_suarez_split("train", days=200), model=model, lead_steps=lead_steps,
            n_samples=200,
        )  # fmt: skip
        torch.set_num_threads(threads)
        return states_tensor(errors, model, dim="sample", name="samples")

    # additive inflation: the model's own 6-hour errors
    extra = {"additive": error_samples(1), "additive_scale": additive} if additive > 0 else {}
    # a static B (hybrid En4DVar, hybrid-gain LETKF): the model's forecast errors at a lead
    # chosen on the validation split (docs/cycling.md): 48 hours for the static part of the
    # cycled En4DVar, 24 hours for the hybrid gain's 3D-Var (leads 12 h to 10 days tried)
    leads = {"cycled": 8, "hgain": 4} if hybrid_lead is None else {}
    samples: dict = {}

    def static_samples(method: str):
        lead = leads.get(method, hybrid_lead)
        if lead not in samples:
            samples[lead] = error_samples(lead)
        return samples[lead]

    builders = {
        "letkf": lambda: LETKFMethod(options=letkf, localization=loc, **ens, **extra),
        "cycled": lambda: En4DVarMethod(
            background_error=BackgroundError(n_members=members, hybrid_weight=hybrid or 0.25),
            static=static_samples("cycled") if hybrid > 0 else None,
            localization=loc,
            members="cycled",
            letkf=letkf,
            name="cycled-ensemble En4DVar",
            **extra,
        ),
        "perlin": lambda: En4DVarMethod(
            background_error=BackgroundError(n_members=100), localization=loc, name="Perlin En4DVar"
        ),
        "hgain": lambda: HybridGainMethod(
            letkf=LETKFMethod(options=letkf, localization=loc, **ens, **extra),
            variational=static_var(
                static_samples("hgain"),
                localization=LocalizationOptions(length_scale=static_length_scale),
                adaptive_static=adaptive_static,
                static_inflation=static_inflation,
            ),
            weight=gain_weight,
            ensemble_variances=ensemble_variances,
            increment_previous=increment_previous,
        ),
        "3dvar": lambda: static_var(
            xfuxi.forecast_error_samples(
                xfuxi.held_suarez_split("validation", days=60),
                model=model,
                lead_steps=4,
                n_samples=100,
            ),
            model=model,
            localization=LocalizationOptions(length_scale=2000.0),
        ),
    }
    out: dict = {
        "days": days, "sites": sites, "members": members, "model": model.name, "split": split,
        "length_scale_km": length_scale, "additive": additive, "rtps": rtps,
        "inflation": inflation, "hybrid": hybrid, "hybrid_lead": hybrid_lead or leads,
        "gain_weight": gain_weight, "bias_rate": bias_rate, "bias_truncation": bias_truncation,
        "bias_spinup": bias_spinup, "static_length_scale_km": static_length_scale,
        "adaptive_static": adaptive_static, "static_inflation": static_inflation,
        "ensemble_variances": ensemble_variances,
        "increment_previous": increment_previous, "update_previous": update_previous,
        "table": {}, "runs": {},
    }  # fmt: skip
    blend_args: dict = {}
    if blend is not None:  # the analyses blended with the climatology, band by band
        fit = json.loads(Path(blend).read_text())
        if fit.get("split") == split:
            if split == "test":  # the test split only reports: nothing is fitted on it
                raise SystemExit(
                    f"{blend} was fitted on the test split itself; a blend applied to the "
                    "test split must be fitted on another split (train or validation)"
                )
            print(f"note: {blend} was fitted on the {split} split itself", flush=True)
        factors, bands = read_blend_factors(blend, model)
        source = fit["climatology"]
        clim = climatology_tensor(
            xfuxi.held_suarez_split(source["split"], days=source["days"]), model
        )
        factors = 1.0 + blend_strength * (factors - 1.0)
        blend_args = {"climatology": clim, "factors": factors, "bands": bands}
        out["blend"], out["blend_strength"] = blend, blend_strength
    for key in methods.split(","):
        method = builders[key]()
        if bias_rate > 0:  # the model's bias estimated online from the increments
            method = BiasCorrectedMethod(
                method, rate=bias_rate, truncation=bias_truncation, spinup=bias_spinup
            )
        if blend_args:
            method = ClimatologyBlendMethod(method, **blend_args)
        tic = time.perf_counter()
        run = cycle(
            truth,
            network,
            method=method,
            model=model,
            config=CycleConfig(days=days, keep_members=keep_members),
            store=None if store is None else f"{store}-{key}.zarr",
        )
        wall = time.perf_counter() - tic
        print(repr(run), flush=True)
        out["table"][method.name] = _table(run.scores, days)
        if "free run" not in out["table"]:
            free = run.scores.copy()
            free["analysis_error"] = free["free_error"]
            out["table"]["free run"] = _table(free, days)
        out["runs"][method.name] = {"wall_time_s": wall, "n_cycles": run.scores.sizes["time"]}
        target = RESULTS / "cycling_world.json" if out_path is None else Path(out_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(target, out)
    return out


def table_from_stores(prefix: str, methods: str, days: float) -> dict:
    """The table from the per-method stores of a run (complete cycles only, e.g. a partial run)."""
    from xfuxi.assimilation.cycle import open_cycle

    out: dict = {"table": {}, "cycles": {}}
    for key in methods.split(","):
        try:
            scores = open_cycle(f"{prefix}-{key}.zarr")
        except ValueError:
            continue
        name = key
        out["table"][name] = _table(scores, days)
        out["cycles"][name] = int(scores.sizes["time"])
        free = scores.copy()
        free["analysis_error"] = free["free_error"]
        out["table"].setdefault("free run", _table(free, days))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=float, default=30.0)
    p.add_argument("--sites", type=int, default=300)
    p.add_argument("--members", type=int, default=40)
    p.add_argument("--methods", default="letkf,cycled,perlin,3dvar")
    p.add_argument("--store", default=None, help="prefix of per-method stores (resumable)")
    p.add_argument(
        "--truncation",
        type=int,
        default=None,
        help="spectral truncation of every model step (-1: none; default: 21, or the "
        "model's own filter if it carries one)",
    )
    p.add_argument(
        "--length-scale", type=float, default=1000.0, help="horizontal localization half-width (km)"
    )
    p.add_argument(
        "--split",
        required=True,
        choices=["train", "validation", "test"],
        help="validation for choices, test only to report",
    )
    p.add_argument(
        "--model", default="fuxi-hs-t21-cycling-v6", help="forecast model (name or directory)"
    )
    p.add_argument(
        "--additive",
        type=float,
        default=0.0,
        help="additive inflation: this x the model's own 6-hour errors (0: none)",
    )
    p.add_argument("--rtps", type=float, default=0.8, help="relaxation to prior spread")
    p.add_argument("--inflation", type=float, default=1.0, help="multiplicative prior inflation")
    p.add_argument(
        "--hybrid",
        type=float,
        default=0.0,
        help="cycled En4DVar: weight of a static B of forecast errors (0: none)",
    )
    p.add_argument(
        "--gain-weight",
        type=float,
        default=1.0,
        help="hgain: weight of the static-B 3D-Var in the hybrid-gain LETKF",
    )
    p.add_argument(
        "--hybrid-lead",
        type=int,
        default=None,
        help="lead (6-hour steps) of the static B's forecast errors (default: 8 for the "
        "cycled En4DVar's static part, 4 for the hybrid gain's)",
    )
    p.add_argument(
        "--bias-rate",
        type=float,
        default=0.0,
        help="online model-bias correction: fraction of each increment added to the "
        "estimate (0: none)",
    )
    p.add_argument(
        "--bias-truncation",
        type=int,
        default=10,
        help="bias correction: keep the increments' harmonics l <= this (-1: whole field)",
    )
    p.add_argument(
        "--static-length-scale",
        type=float,
        default=2000.0,
        help="hgain: localization half-width of the static B (km)",
    )
    p.add_argument(
        "--adaptive-static",
        type=float,
        default=0.0,
        help="hgain: gain of the static B's adaptive variance factor (0: fixed at 1)",
    )
    p.add_argument(
        "--static-inflation",
        type=float,
        default=1.0,
        help="hgain: variance factor of the static B (with --adaptive-static its start)",
    )
    p.add_argument(
        "--ensemble-variances",
        action="store_true",
        help="hgain: the static B takes the spatial pattern of the members' spread",
    )
    p.add_argument(
        "--increment-previous",
        action="store_true",
        help="add each analysis increment to the earlier time of the pair too (hgain: the "
        "static part's)",
    )
    p.add_argument(
        "--no-update-previous",
        action="store_true",
        help="letkf, hgain: the LETKF analyses t0 only; the earlier input time keeps the "
        "previous analysis",
    )
    p.add_argument(
        "--no-keep-members",
        action="store_true",
        help="keep the members of the last complete cycle only in the stores (smaller; "
        "the run stays resumable)",
    )
    p.add_argument(
        "--blend",
        default=None,
        help="blend each analysis with the climatology by the factors of this file "
        "(benchmarks/fit_climatology_blend.py)",
    )
    p.add_argument(
        "--blend-strength",
        type=float,
        default=1.0,
        help="--blend: factors 1 + s (beta - 1) (1: the fitted ones)",
    )
    p.add_argument(
        "--bias-spinup", type=int, default=8, help="bias correction: analyses before it starts"
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads (one run per core: 1)")
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/...)")
    p.add_argument(
        "--table-only", action="store_true", help="only tabulate the complete cycles of --store"
    )
    a = p.parse_args()
    if a.table_only:
        table = table_from_stores(a.store, a.methods, a.days)
        if a.out is not None:
            from xfuxi.files import atomic_write_json

            atomic_write_json(Path(a.out), {"days": a.days, "sites": a.sites, **table})
        print(json.dumps(table, indent=1))
        return
    out = run_world(
        days=a.days,
        sites=a.sites,
        members=a.members,
        methods=a.methods,
        store=a.store,
        out_path=a.out,
        threads=a.threads,
        truncation="auto" if a.truncation is None else (None if a.truncation < 0 else a.truncation),
        length_scale=a.length_scale,
        split=a.split,
        model_name=a.model,
        additive=a.additive,
        rtps=a.rtps,
        inflation=a.inflation,
        hybrid=a.hybrid,
        hybrid_lead=a.hybrid_lead,
        gain_weight=a.gain_weight,
        bias_rate=a.bias_rate,
        bias_truncation=None if a.bias_truncation < 0 else a.bias_truncation,
        bias_spinup=a.bias_spinup,
        static_length_scale=a.static_length_scale,
        adaptive_static=a.adaptive_static,
        static_inflation=a.static_inflation,
        ensemble_variances=a.ensemble_variances,
        increment_previous=a.increment_previous,
        blend=a.blend,
        blend_strength=a.blend_strength,
        keep_members=not a.no_keep_members,
        update_previous=not a.no_update_previous,
    )
    print(json.dumps(out["table"], indent=1))


if __name__ == "__main__":
    main()
