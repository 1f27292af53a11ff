"""Data-assimilation commands: ``xfuxi assimilate`` (one FuXi-En4DVar analysis),
``xfuxi imager`` (synthetic imager radiances of a truth run), ``xfuxi assimilate-da`` (one
FuXi-DA analysis of them), ``xfuxi cycle`` (cycled assimilation on a truth run,
docs/cycling.md) and ``xfuxi fit-radiance-bias`` (an offline fit of the imager radiances'
bias, docs/fuxi_da.md)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..assimilation import config as da
from ..assimilation.cycle_config import CycleConfig
from ..config import from_arguments
from ..data.schema import SchemaError, parse_times, states_at_valid_times
from .common import (
    COMMANDS,
    _comma_separated,
    arg,
    check_inputs_exist,
    check_output_outside,
    command,
    config_args,
    function_args,
    function_kwargs,
    load_model,
    local_paths,
    open_data,
    output_args,
    output_path,
    usage_error,
    write_directory,
)

__all__: list[str] = []


@arg("background", help="zarr/netCDF background with times t0 - 12 h, t0 - 6 h and t0")
@arg("observations", help="zarr/netCDF observation Dataset (dim 'obs'; xfuxi.make_observations)")
@arg("--model", default="fuxi-hs-t21",
     help="shipped model name or checkpoint directory (default fuxi-hs-t21)")  # fmt: skip
@arg("--localization", default=None, dest="length_scale",
     help="Gaspari-Cohn half-width in km, or 'none' (default 1500)")  # fmt: skip
@arg("-n", "--members", type=int, default=None, dest="n_members", help="same as --n-members")
@arg("--slots", type=int, default=None, dest="n_slots", help="same as --n-slots")
@arg("--vertical-localization", type=float, default=None, dest="vertical_length_scale",
     help="same as --vertical-length-scale")  # fmt: skip
@arg("--amplitude", type=float, default=None,
     help="Perlin perturbation std / climatological std (default 0.05)")  # fmt: skip
@arg("--spread", default=None,
     help="netCDF/zarr of background-error std per variable and level "
          "(xfuxi.background_error_std): B variances are rescaled to it")  # fmt: skip
@arg("--static-b", default=None,
     help="netCDF/zarr of static background-error samples (dim 'sample'; "
          "xfuxi.forecast_error_samples): hybrid B")  # fmt: skip
@output_args("output directory: analysis.nc, increment.nc, trajectory.nc, diagnostics.nc")
# the command line cannot give None (the API's fresh seed): it always seeds, 0 by default
@config_args(da.BackgroundError, skip=("amplitude", "perturbation_std"),
             helps={"seed": "seed of the perturbations, recorded in the result's provenance "
                    "(default 0: a rerun gives the same analysis)"})  # fmt: skip
@config_args(da.LocalizationOptions, skip=("length_scale",))
@config_args(da.Window)
@config_args(da.Minimiser)
@config_args(da.QualityControl)
@command("assimilate", "one FuXi-En4DVar analysis from a background and observations")
def _cmd_assimilate(args) -> int:
    # torch-backed modules are imported when the command runs (the CLI starts without torch)
    from ..assimilation.en4dvar import DEFAULT_LOCALIZATION, assimilate_4dvar
    from ..assimilation.result import write_datasets

    loc_arg = (args.length_scale or str(DEFAULT_LOCALIZATION.length_scale)).strip().lower()
    try:
        length_scale = None if loc_arg in ("none", "off", "0") else float(loc_arg)
    except ValueError:
        return usage_error(
            "assimilate",
            f"--localization must be a number of km or 'none'; got {args.length_scale!r}",
        )
    try:
        options = {
            "background_error": from_arguments(da.BackgroundError, args),
            "localization": from_arguments(da.LocalizationOptions, args, length_scale=length_scale),
            "window": from_arguments(da.Window, args),
            "minimiser": from_arguments(da.Minimiser, args),
            "quality_control": from_arguments(da.QualityControl, args),
        }
    except ValueError as err:
        return usage_error("assimilate", str(err))
    if args.static_b is None and args.hybrid_weight is not None:
        return usage_error(  # it weighs the static part of B, which needs the samples
            "assimilate", "--hybrid-weight weighs a static B: it needs --static-b"
        )
    inputs = [args.background, args.observations, args.spread, args.static_b]
    out = output_path(args.output, inputs, kind="assimilation", overwrite=args.overwrite)
    spread = open_data(args.spread).load() if args.spread else None
    static_b = open_data(args.static_b).load() if args.static_b else None
    res = assimilate_4dvar(
        open_data(args.background), open_data(args.observations).load(),
        model=load_model(args.model),
        error_data=da.BackgroundErrorData(spread=spread, static_b=static_b), **options,
    )  # fmt: skip

    write_directory(out, lambda d: write_datasets(res.datasets(), d), args, kind="assimilation")
    d = res.diagnostics
    print(
        f"{d.attrs['iterations']} iterations, J {float(d['cost'][0]):.4g} -> "
        f"{float(d['cost'][-1]):.4g}; observations used {d.attrs['n_observations_used']}; "
        f"rejected {dict(zip(d['reason'].values.tolist(), d['n_rejected'].values.tolist()))}"
    )
    print(f"wrote analysis, increment, trajectory and diagnostics to {out}")  # fmt: skip
    return 0


def _floats(text: str, flag: str) -> tuple[float, ...]:
    """A comma-separated list of numbers (``flag`` names it in the error)."""
    try:
        return tuple(_comma_separated(float)(text))
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated numbers; got {text!r}") from None


def _longitudes(text: str, flag: str) -> tuple[float, ...]:
    """Comma-separated sub-satellite longitudes, each in [-180, 360) degrees east (a value
    beyond is refused, not wrapped: 400 is a typo as often as it is 40)."""
    values = _floats(text, flag)
    bad = [v for v in values if not -180.0 <= v < 360.0]
    if bad:
        shown = ",".join(f"{v:g}" for v in bad)
        raise ValueError(f"{flag} must be longitudes in [-180, 360) degrees east; got {shown}")
    return values


@arg("truth", help="zarr/netCDF truth run (temperature and passive_tracer on levels, "
     "surface_pressure; 6-hourly, as the world)")  # fmt: skip
@arg("--satellites", default="105",
     help="comma-separated sub-satellite longitudes, degrees east (default 105)")  # fmt: skip
@arg("--frames", default="-2,0,2",
     help="comma-separated frame offsets from each analysis time, hours; with a leading "
          "minus write --frames=-3,0,3 (default -2,0,2)")  # fmt: skip
@arg("--channels", default=None,
     help="comma-separated imager channels (default all eight)")  # fmt: skip
@arg("--times", default=None,
     help="comma-separated analysis times, e.g. 2020-01-02T06 (default every truth time "
          "whose frames lie within the truth)")  # fmt: skip
@arg("--max-zenith", type=float, default=70.0,
     help="no data beyond this satellite zenith angle, degrees (default 70)")  # fmt: skip
@arg("--seed", type=int, default=0, help="the imager's seed (cloud texture, noise) (default 0)")
@config_args("observations.imager:ImagerErrors")
@output_args("output directory: radiances.nc (xfuxi.imager_observations' Dataset)")
@command("imager", "synthetic geostationary imager radiances of a truth run (docs/fuxi_da.md)")
def _cmd_imager(args) -> int:
    # torch-backed: imported when the command runs (the CLI starts without torch)
    from ..observations.imager import ImagerError, ImagerErrors, imager_observations

    cmd = "imager"
    try:
        errors = from_arguments(ImagerErrors, args)
        satellites = _longitudes(args.satellites, "--satellites")
        frames = _floats(args.frames, "--frames")
        times = None
        if args.times:  # read as every time xfuxi is given (parse_times)
            given = [t.strip() for t in args.times.split(",") if t.strip()]
            times = parse_times(given, "--times", error=ValueError)
    except (ValueError, TypeError) as err:
        return usage_error(cmd, str(err))
    if not satellites or not frames:
        return usage_error(cmd, "--satellites and --frames need at least one value each")
    channels = None
    if args.channels:
        channels = tuple(c.strip() for c in args.channels.split(",") if c.strip())
    out = output_path(args.output, [args.truth], kind="radiances", overwrite=args.overwrite)
    options = {} if channels is None else {"channels": channels}
    try:
        with open_data(args.truth) as truth:
            radiances = imager_observations(
                truth, satellites=satellites, frames=frames, times=times,
                max_zenith=args.max_zenith, errors=errors, seed=args.seed, **options,
            ).load()  # fmt: skip
    except ImagerError as err:
        return usage_error(cmd, str(err))

    def write(directory: Path) -> None:
        radiances.drop_encoding().to_netcdf(directory / "radiances.nc")

    write_directory(out, write, args, kind="radiances")
    seen = float(radiances["zenith_angle"].notnull().mean())
    print(
        f"{radiances.sizes['time']} analysis times x {radiances.sizes['frame']} frames x "
        f"{radiances.sizes['sensor_channel']} channels; {100 * seen:.0f} % of the grid seen"
    )
    print(f"wrote {out / 'radiances.nc'}")
    return 0


def _background_at_lead(ds, lead_hours: float | None):
    """The states of a forecast (``prediction_timedelta``) at ``lead_hours`` (or at its only
    lead), on their valid times; an analysis-layout background as it is (``lead_hours`` must
    then be None)."""
    import numpy as np

    if "prediction_timedelta" not in ds.dims:
        if lead_hours is not None:
            raise ValueError(
                "--lead is for a forecast background (a prediction_timedelta dim); "
                f"{list(ds.dims)} has none"
            )
        return ds
    leads = ds["prediction_timedelta"].values
    if lead_hours is None and leads.size == 1:  # the forecast's only lead
        lead_hours = float(leads[0] / np.timedelta64(1, "h"))
    if lead_hours is None:
        raise ValueError(
            f"the background is a forecast of {leads.size} leads: give --lead HOURS, the lead "
            "whose states to analyse"
        )
    lead = np.timedelta64(int(round(lead_hours * 3600)), "s").astype(leads.dtype)
    if lead not in leads:
        hours = [float(x / np.timedelta64(1, "h")) for x in leads]
        raise ValueError(f"the forecast has no lead {lead_hours:g} h; its leads: {hours} h")
    # on their valid times, without the lead and the forecast's valid_time (write_netcdf's)
    return states_at_valid_times(
        ds.sel(prediction_timedelta=lead), "the background", error=ValueError
    )


def _select_analysis_times(background, radiances, times: str | None):
    """The background at ``--times``: ``None`` every time, ``"radiances"`` the times the
    radiances have, else a comma-separated list of times (each must be in the background)."""
    import numpy as np
    import pandas as pd

    if times is None:
        return background
    have = background["time"].values.astype("datetime64[ns]")
    if times == "radiances":
        if radiances is None or "time" not in radiances.dims:
            raise ValueError("--times radiances needs radiances with a time dim")
        wanted = np.intersect1d(have, radiances["time"].values.astype("datetime64[ns]"))
        if not wanted.size:
            raise ValueError("no time of the background has radiances")
    else:
        try:  # read as every time xfuxi is given: a time zone or a number refused by name
            given = [t.strip() for t in times.split(",")]
            wanted = np.unique(parse_times(given, "--times", error=ValueError).values)
        except ValueError as err:
            raise ValueError(
                f"{err}; --times takes 'radiances' or comma-separated ISO times "
                "(2020-01-02T06,2020-01-02T12)"
            ) from None
        absent = [str(pd.Timestamp(t)) for t in wanted if t not in have]
        if absent:
            raise ValueError(f"--times: the background has no time {absent}")
    print(f"analysing {wanted.size} of the background's {have.size} times")
    return background.sel(time=wanted)


#: the parameters of :func:`xfuxi.assimilate_da` that are flags of ``xfuxi assimilate-da``
ASSIMILATE_DA_FLAGS = (
    "allow_missing_channels", "allow_new_satellites", "batch_size", "precision", "diagnostics",
)  # fmt: skip


@arg("background", help="zarr/netCDF background at the analysis times (the model's grid), "
     "or a forecast store of xfuxi forecast with --lead")  # fmt: skip
@arg("--lead", type=float, default=None,
     help="the background is a forecast (WeatherBench2 layout): take its states at this lead, "
          "hours, valid at initial time + lead (e.g. 6; default: its only lead)")  # fmt: skip
@arg("radiances", nargs="?", default=None,
     help="zarr/netCDF radiances (xfuxi imager, or radiances.nc of its output); not for a "
          "CORR network")  # fmt: skip
@arg("--times", default=None,
     help="analyse only these times of the background: 'radiances' (those the "
          "radiances have) or comma-separated ISO times (2020-01-02T06,2020-01-02T12); "
          "default all")  # fmt: skip
@arg("--model", default="fuxi-da-hs-t21",
     help="FuXi-DA network: a shipped name or a checkpoint directory "
          "(default fuxi-da-hs-t21)")  # fmt: skip
@function_args("assimilation.da:assimilate_da", only=ASSIMILATE_DA_FLAGS,
               types={"precision": str})  # fmt: skip
@output_args("output directory: analysis.nc, increment.nc, diagnostics.nc")
@command("assimilate-da", "one FuXi-DA analysis of imager radiances into a background")
def _cmd_assimilate_da(args) -> int:
    # torch-backed: imported when the command runs (the CLI starts without torch)
    from ..assimilation.da import assimilate_da
    from ..assimilation.result import write_datasets
    from ..observations.imager import ImagerError

    cmd = "assimilate-da"
    radiances_path = args.radiances
    if (
        radiances_path
        and Path(radiances_path).is_dir()
        and not radiances_path.rstrip("/").endswith(".zarr")
    ):  # the output directory of `xfuxi imager`
        radiances_path = str(Path(radiances_path) / "radiances.nc")
    check_inputs_exist(args.background, radiances_path)  # exit status 1, as every command's
    out = output_path(
        args.output, [args.background, radiances_path], kind="fuxi-da-analysis",
        overwrite=args.overwrite,
    )  # fmt: skip
    try:
        radiances = None
        if radiances_path:
            with open_data(radiances_path) as ds:
                radiances = ds.load()
        with open_data(args.background) as ds:
            background = _background_at_lead(ds, args.lead).load()
        background = _select_analysis_times(background, radiances, args.times)
        res = assimilate_da(
            background, radiances, model=args.model, **function_kwargs(args, ASSIMILATE_DA_FLAGS)
        )
    except (ImagerError, ValueError) as err:
        message = str(err)
        if "no analysis time" in message:
            message += "; on the command line, --times radiances"
        return usage_error(cmd, message)

    write_directory(out, lambda d: write_datasets(res.datasets(), d), args, kind="fuxi-da-analysis")
    d = res.diagnostics
    if "rms_omb" in d:
        omb = d["rms_omb"].sel(group="all").mean("time")
        oma = d["rms_oma"].sel(group="all").mean("time")
        for c in d["sensor_channel"].values.astype(str):
            print(f"{c:>10}  rms O-B {float(omb.sel(sensor_channel=c)):6.3f} K  "
                  f"O-A {float(oma.sel(sensor_channel=c)):6.3f} K")  # fmt: skip
    print(f"{res.analysis.sizes['time']} analyses in {float(d['analysis_seconds']):.3f} s "
          f"({d.attrs['model']}); wrote analysis, increment and diagnostics to {out}")  # fmt: skip
    return 0


@arg("truth", help="truth run (a .nc file or a zarr store) with the model's channels and grid")
@arg("--store", required=True, help="zarr store written one cycle at a time (resumed if it exists)")
@arg("--method",
     choices=["letkf", "hybrid-gain", "en4dvar", "cycled-en4dvar", "fuxi-da", "en4dvar-radiances"],
     default="letkf",
     help="LETKF, hybrid-gain LETKF (needs --static-b), Perlin En4DVar, En4DVar with a cycled "
          "ensemble, FuXi-DA with imager radiances, or Perlin En4DVar with imager radiances "
          "(clear-sky) and radiosondes (default letkf)")  # fmt: skip
@arg("--static-b", default=None,
     help="netCDF/zarr of static background-error samples (dim 'sample'; "
          "xfuxi.forecast_error_samples): the 3D-Var B of --method hybrid-gain; with "
          "en4dvar or cycled-en4dvar, a static part of B of weight --hybrid-weight")  # fmt: skip
@arg(
    "--static-localization",
    type=float,
    default=2000.0,
    help="--method hybrid-gain: Gaspari-Cohn half-width of the static B, km (default 2000)",
)
@arg(
    "--gain-weight",
    type=float,
    default=1.0,
    help="--method hybrid-gain: weight of the 3D-Var analysis of the LETKF mean (default 1)",
)
@arg(
    "--adaptive-static",
    type=float,
    default=0.0,
    help="--method hybrid-gain: gain of an adaptive variance factor of the static B, "
    "estimated from the innovations each cycle (0: off, the default)",
)
@arg(
    "--ensemble-variances",
    action="store_true",
    help="--method hybrid-gain: give the static B the spatial pattern of the members' spread",
)
@arg(
    "--no-update-previous",
    action="store_true",
    help="letkf, hybrid-gain: the LETKF analyses t0 only; the earlier time of each input pair "
    "keeps the previous analysis (as after a variational analysis)",
)
@arg(
    "--increment-previous",
    action="store_true",
    help="hybrid-gain, en4dvar, cycled-en4dvar, en4dvar-radiances: add each variational "
    "increment to the earlier time of the model's input pair too (its difference, the "
    "tendency the model reads, stays the background's)",
)
@arg(
    "--hybrid-weight",
    type=float,
    default=0.25,
    help="En4DVar with --static-b: weight of the static part of B (default 0.25)",
)
@arg("--model", default="fuxi-hs-t21-cycling-v6",
     help="forecast model name or checkpoint (default fuxi-hs-t21-cycling-v6: fine-tuned so "
          "that its climate does not drift over weeks; it carries the T21 filter)")  # fmt: skip
@arg("--truncation", type=int, default=None,
     help="keep only spherical harmonics up to this total wavenumber at every model step "
          "(xfuxi.with_spectral_filter; 21 for the embedded T21 world; default: the model's "
          "own filter, if it has one)")  # fmt: skip
@arg("--bias-rate", type=float, default=0.0,
     help="correct the model's bias online: the fraction of each analysis increment added "
          "to the estimate added to every step (0: off; docs/cycling.md)")  # fmt: skip
@arg("--bias-truncation", type=int, default=10,
     help="--bias-rate: keep the increments' spherical harmonics l <= this (-1: the whole "
          "field; default 10)")  # fmt: skip
@arg(
    "--bias-spinup",
    type=int,
    default=8,
    help="--bias-rate: analyses before the estimate starts (default 8, two days)",
)
@arg("--blend", default=None,
     help="blend each analysis with the climatology band by band, by the factors of this "
          "JSON file (channels, bands, factors; xfuxi.fit_climatology_blend; docs/cycling.md); "
          "needs --climatology")  # fmt: skip
@arg(
    "--climatology",
    default=None,
    help="--blend: a Dataset of states whose time mean is the climatology (or one state)",
)
@arg("--sites", type=int, default=300,
     help="radiosonde sites (default 300; --method en4dvar-radiances: 0 for radiances "
          "only)")  # fmt: skip
@arg("--da-precision", default="float32", choices=["float32", "bfloat16"],
     help="--method fuxi-da: the network's precision (xfuxi assimilate-da --precision; "
          "default float32)")  # fmt: skip
@arg("--da-model", default="fuxi-da-hs-t21",
     help="--method fuxi-da: the FuXi-DA network, a shipped name or checkpoint (default "
          "fuxi-da-hs-t21; CORR: fuxi-da-hs-t21-corr)")  # fmt: skip
@arg("--satellites", default="105",
     help="--method fuxi-da or en4dvar-radiances: comma-separated sub-satellite longitudes, "
          "degrees east (default 105; others than the network's training ones are "
          "allowed)")  # fmt: skip
@arg("--varbc", action="store_true",
     help="--method en4dvar-radiances: variational bias correction of the radiances, the "
          "coefficients cycled from one analysis to the next (from zeros); default: "
          "none")  # fmt: skip
@arg("--radiance-bias", default=None,
     help="--method en4dvar-radiances: an offline bias fit (the output directory of xfuxi "
          "fit-radiance-bias, or its bias.json): subtracted every cycle, or with --varbc the "
          "first prior of the cycled coefficients; its clear-sky errors are the radiance "
          "errors unless --radiance-error is given")  # fmt: skip
@arg("--cycled-ensemble", action="store_true",
     help="--method en4dvar-radiances: B from members carried from cycle to cycle (updated "
          "by the LETKF with the same observations, recentred on the analysis) instead of "
          "fresh Perlin members")  # fmt: skip
@arg("--varbc-std", type=float, default=None,
     help="--varbc: prior std of the coefficients, K per unit predictor (default 1; from a "
          "fitted prior a cycle wants about the bias' change in one cycle: 0.02 was chosen "
          "on the world, docs/fuxi_da.md)")  # fmt: skip
@arg("--radiance-error", type=float, default=None,
     help="--method en4dvar-radiances: clear-sky radiance error std, K (default: the "
          "--radiance-bias fit's per-channel errors, or 1)")  # fmt: skip
@arg("--screen-threshold", type=float, default=3.0,
     help="--method en4dvar-radiances: cloud screening, drop pixels whose window-channel "
          "O-B is below minus this, K (default 3)")  # fmt: skip
@arg("--localization", type=float, default=1500.0,
     help="Gaspari-Cohn half-width, km (default 1500)")  # fmt: skip
@arg("--vertical-localization", type=float, default=None,
     help="vertical Gaspari-Cohn half-width, ln p (default: 1.0 with radiosondes, whose "
          "observations span levels, as the examples chose; none without; 0: off)")  # fmt: skip
# the LETKF's options (the En4DVar methods take their members from --n-members too); the
# command relaxes to the prior spread by half unless told otherwise
@config_args(
    "assimilation.letkf:LETKFOptions",
    aliases={"n_members": ("--members",)},
    defaults={"rtps": 0.5},
    # the command line cannot give None (the API's "off"): the check is always on here
    helps={
        "qc_threshold": "background check: |y - Hx| > k sqrt(so^2 + sb^2) rejects an "
        "observation (default 5; always on: a large k keeps nearly every one)"
    },
)
@config_args("observations.imager:ImagerErrors")
@config_args(CycleConfig)
@command("cycle", "cycle an assimilation method on a truth run, writing a resumable store")
def _cmd_cycle(args) -> int:
    # torch-backed: imported when the command runs (the CLI starts without torch)
    from ..assimilation.cycle import (
        En4DVarMethod,
        HybridGainMethod,
        LETKFMethod,
        RadiosondeNetwork,
        cycle,
        static_var,
    )
    from ..assimilation.da_cycle import FuXiDAMethod, ImagerNetwork
    from ..assimilation.letkf import LETKFOptions
    from ..assimilation.model_bias import BiasCorrectedMethod
    from ..assimilation.radiance_cycle import ImagerSondeNetwork, RadianceEn4DVarMethod
    from ..observations.imager import ImagerErrors

    try:
        # one day of cycles unless --days or --n-cycles says otherwise
        length = {} if args.days is not None or args.n_cycles is not None else {"days": 1.0}
        config = from_arguments(CycleConfig, args, **length)
        letkf = from_arguments(LETKFOptions, args)
        vertical = args.vertical_localization
        if vertical is None and args.sites > 0 and args.method != "fuxi-da":
            from ..assimilation.en4dvar import DEFAULT_VERTICAL_LENGTH_SCALE

            vertical = DEFAULT_VERTICAL_LENGTH_SCALE
        loc = da.LocalizationOptions(
            length_scale=args.localization, vertical_length_scale=vertical or None
        )
        errors = from_arguments(ImagerErrors, args)
        satellites = _longitudes(args.satellites, "--satellites")
        LETKF_DEFAULTS = LETKFOptions(rtps=0.5)  # noqa: N806 (the command's own defaults)
    except ValueError as err:
        return usage_error("cycle", str(err))
    if not 0 <= args.bias_rate <= 1:
        return usage_error("cycle", f"--bias-rate must be in [0, 1]; got {args.bias_rate}")
    if args.bias_truncation < -1:
        return usage_error(
            "cycle", f"--bias-truncation must be >= 0, or -1; got {args.bias_truncation}"
        )
    if args.bias_spinup < 0:
        return usage_error("cycle", f"--bias-spinup must be >= 0; got {args.bias_spinup}")
    if args.method == "hybrid-gain" and args.static_b is None:
        return usage_error("cycle", "--method hybrid-gain needs --static-b (error samples)")
    if (args.blend is None) != (args.climatology is None):
        return usage_error("cycle", "--blend and --climatology go together")
    if args.method != "hybrid-gain" and (args.adaptive_static or args.ensemble_variances):
        return usage_error(
            "cycle", "--adaptive-static and --ensemble-variances need --method hybrid-gain"
        )
    if args.no_update_previous and args.method not in ("letkf", "hybrid-gain"):
        return usage_error("cycle", f"--no-update-previous is not used by --method {args.method}")
    if args.increment_previous and args.method in ("letkf", "fuxi-da"):
        return usage_error("cycle", f"--increment-previous is not used by --method {args.method}")
    if args.static_b is not None and args.method in ("fuxi-da", "letkf"):
        return usage_error("cycle", f"--static-b is not used by --method {args.method}")
    # options a method does not read are refused, not dropped (given away from their default)
    if args.method != "hybrid-gain":
        for flag, value, default in (
            ("--gain-weight", args.gain_weight, 1.0),
            ("--static-localization", args.static_localization, 2000.0),
        ):
            if value != default:
                return usage_error("cycle", f"{flag} needs --method hybrid-gain")
    if args.hybrid_weight != 0.25 and (
        args.static_b is None or args.method in ("letkf", "hybrid-gain", "fuxi-da")
    ):
        return usage_error(
            "cycle", "--hybrid-weight weighs the static part of an En4DVar B: it needs "
            "--static-b and --method en4dvar, cycled-en4dvar or en4dvar-radiances",
        )  # fmt: skip
    if args.method in ("en4dvar", "fuxi-da") or (
        args.method == "en4dvar-radiances" and not args.cycled_ensemble
    ):
        unused = [
            f"--{name.replace('_', '-')}"
            for name in ("inflation", "rtps", "adaptive_inflation", "adaptive_gain")
            if hasattr(args, name) and getattr(letkf, name) != getattr(LETKF_DEFAULTS, name)
        ]
        if unused:
            return usage_error(
                "cycle", f"{', '.join(unused)}: the members' inflation is not used by "
                f"--method {args.method} (no members are carried between cycles)",
            )  # fmt: skip
    if args.method != "en4dvar-radiances" and args.varbc:
        return usage_error("cycle", "--varbc needs --method en4dvar-radiances")
    if args.method != "en4dvar-radiances" and args.radiance_bias is not None:
        return usage_error("cycle", "--radiance-bias needs --method en4dvar-radiances")
    if args.cycled_ensemble and args.method != "en4dvar-radiances":
        return usage_error(
            "cycle", "--cycled-ensemble needs --method en4dvar-radiances (with radiosondes "
            "alone: --method cycled-en4dvar)",
        )  # fmt: skip
    if args.varbc_std is not None and not args.varbc:
        return usage_error("cycle", "--varbc-std needs --varbc")
    unread = _cycle_flags_not_read(args)
    if unread:
        return usage_error("cycle", unread)
    # the store is written cycle by cycle: never into (or over) what the command reads
    check_output_outside(
        args.store,
        [args.truth, args.static_b, args.climatology, args.blend, args.radiance_bias,
         *local_paths(args.model, args.da_model)],
        flag="--store",
    )  # fmt: skip
    radiance_fit = None
    if args.radiance_bias is not None:
        try:
            radiance_fit = read_radiance_bias(args.radiance_bias)
        except (OSError, ValueError) as err:
            return usage_error("cycle", f"--radiance-bias: {err}")
    if args.method in ("fuxi-da", "en4dvar-radiances") and not satellites:
        return usage_error("cycle", f"--satellites needs longitudes; got {args.satellites!r}")
    model = load_model(args.model)
    if args.truncation is not None:
        from ..models.spectral import with_spectral_filter

        try:
            model = with_spectral_filter(model, args.truncation)
        except ValueError as err:
            return usage_error("cycle", f"--truncation: {err}")
    static = None
    if args.static_b is not None:
        from ..assimilation.inputs import states_tensor

        try:
            static = states_tensor(open_data(args.static_b).load(), model, dim="sample",
                                   name="--static-b")  # fmt: skip
        except (ValueError, SchemaError) as err:
            return usage_error("cycle", str(err))
    blend = None
    if args.blend is not None:
        from ..assimilation.climatology_blend import climatology_tensor, read_blend_factors

        try:
            factors, bands = read_blend_factors(args.blend, model)
            clim = climatology_tensor(open_data(args.climatology).load(), model)
        except (OSError, ValueError, TypeError) as err:
            return usage_error("cycle", f"--blend: {err}")
        blend = {"climatology": clim, "factors": factors, "bands": bands}
    method: Any
    # the radiosondes (made below) unless the method's branch sets another network
    network: RadiosondeNetwork | ImagerNetwork | ImagerSondeNetwork | None = None
    if args.method == "fuxi-da":
        # the imager's radiances; satellites other than the network's training ones allowed
        method = FuXiDAMethod(args.da_model, allow_new_satellites=True, precision=args.da_precision)
        network = ImagerNetwork(  # the frames the network takes
            satellites=satellites, frames=method.model.frames, errors=errors, seed=config.seed
        )
    elif args.method in ("letkf", "hybrid-gain"):
        method = LETKFMethod(
            options=letkf, localization=loc, update_previous=not args.no_update_previous
        )
        if args.method == "hybrid-gain":
            try:
                method = HybridGainMethod(
                    letkf=method,
                    variational=static_var(
                        static,
                        localization=da.LocalizationOptions(length_scale=args.static_localization),
                        adaptive_static=args.adaptive_static,
                    ),
                    weight=args.gain_weight,
                    ensemble_variances=args.ensemble_variances,
                    increment_previous=args.increment_previous,
                )
            except ValueError as err:
                return usage_error("cycle", f"--gain-weight / --adaptive-static: {err}")
    elif args.method == "en4dvar-radiances":
        hybrid = {} if static is None else {"hybrid_weight": args.hybrid_weight}
        try:
            error = da.BackgroundError(n_members=letkf.n_members, seed=config.seed, **hybrid)
            correction, fit_error = radiance_fit or (None, {})
            rad: dict[str, Any] = {
                "radiance_error": args.radiance_error
                if args.radiance_error is not None
                else (fit_error or 1.0),
                # with --varbc the fit (or zeros) is the first prior; else subtracted
                "varbc": (correction or True) if args.varbc else False,
                "bias": None if args.varbc else correction,
            }
            if args.varbc_std is not None:
                rad["varbc_std"] = args.varbc_std
            method = RadianceEn4DVarMethod(
                background_error=error,
                localization=loc,
                static=static,
                screen_threshold=args.screen_threshold,
                members="cycled" if args.cycled_ensemble else "perlin",
                letkf=letkf,
                increment_previous=args.increment_previous,
                **rad,
            )
        except ValueError as err:
            return usage_error("cycle", str(err))
        # the analysis-time frame only: the one En4DVar assimilates
        imager = ImagerNetwork(
            satellites=satellites, frames=(0.0,), errors=errors, seed=config.seed
        )
        sondes = RadiosondeNetwork(n_sites=args.sites, seed=config.seed) if args.sites else None
        network = ImagerSondeNetwork(imager, sondes)
    else:
        hybrid = {} if static is None else {"hybrid_weight": args.hybrid_weight}
        try:
            error = da.BackgroundError(n_members=letkf.n_members, seed=config.seed, **hybrid)
        except ValueError as err:
            return usage_error("cycle", f"--hybrid-weight: {err}")
        method = En4DVarMethod(
            background_error=error,
            localization=loc,
            members="perlin" if args.method == "en4dvar" else "cycled",
            letkf=letkf,
            static=static,
            increment_previous=args.increment_previous,
        )
    if args.bias_rate > 0:
        trunc = None if args.bias_truncation < 0 else args.bias_truncation
        method = BiasCorrectedMethod(
            method, rate=args.bias_rate, truncation=trunc, spinup=args.bias_spinup
        )
    if blend is not None:
        from ..assimilation.climatology_blend import ClimatologyBlendMethod

        try:
            method = ClimatologyBlendMethod(method, **blend)
        except ValueError as err:
            return usage_error("cycle", f"--blend: {err}")
    if network is None:
        try:
            network = RadiosondeNetwork(n_sites=args.sites, seed=config.seed)
        except ValueError as err:
            return usage_error("cycle", f"--sites: {err}")
    run = cycle(
        open_data(args.truth),
        network,
        method=method,
        model=model,
        config=config,
        store=args.store,
    )
    print(repr(run))
    return 0


#: ``xfuxi cycle``'s methods
_CYCLE_METHODS = ("letkf", "hybrid-gain", "en4dvar", "cycled-en4dvar", "fuxi-da",
                  "en4dvar-radiances")  # fmt: skip
_WITH_RADIOSONDES = tuple(m for m in _CYCLE_METHODS if m != "fuxi-da")
_WITH_IMAGER = ("fuxi-da", "en4dvar-radiances")
#: the methods whose members are carried from cycle to cycle (updated by the LETKF)
_WITH_MEMBERS = ("letkf", "hybrid-gain", "cycled-en4dvar", "en4dvar-radiances --cycled-ensemble")
#: the flags of ``xfuxi cycle`` that some methods do not read (by dest), and the methods
#: that do; the flags of other dests are read by every method, or checked on their own
_CYCLE_FLAG_READERS: dict[str, tuple[str, ...]] = {
    "da_model": ("fuxi-da",),
    "da_precision": ("fuxi-da",),
    "satellites": _WITH_IMAGER,
    "radiance_error": ("en4dvar-radiances",),
    "screen_threshold": ("en4dvar-radiances",),
    "sites": _WITH_RADIOSONDES,
    "localization": _WITH_RADIOSONDES,
    "vertical_localization": _WITH_RADIOSONDES,
    "n_members": _WITH_RADIOSONDES,  # the LETKF's members, or En4DVar's Perlin members
    # the imager's errors (observations.imager.ImagerErrors)
    **dict.fromkeys(
        ("clouds", "cloud_threshold", "bias", "noise", "spectroscopy", "drift"), _WITH_IMAGER
    ),
    # the LETKF of the carried members (its inflation options have a message of their own)
    **dict.fromkeys(
        ("inflation_max", "qc_threshold", "point_chunk", "member_chunk"), _WITH_MEMBERS
    ),
}


def _cycle_flags_not_read(args: Any) -> str:
    """The usage error for the first flag of ``xfuxi cycle`` given away from its default that
    ``args.method`` does not read ("" if none): such a flag is refused, not dropped."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    COMMANDS["cycle"][0](parser)  # the command's own flags and defaults
    method = args.method
    if method == "en4dvar-radiances" and args.cycled_ensemble:
        method = "en4dvar-radiances --cycled-ensemble"
    for action in parser._actions:
        dest, flag = action.dest, "/".join(action.option_strings)
        if not flag or getattr(args, dest, action.default) == action.default:
            continue
        if dest in ("bias_truncation", "bias_spinup") and not args.bias_rate > 0:
            return f"{flag} needs --bias-rate (the model-bias correction it sets is off)"
        readers = _CYCLE_FLAG_READERS.get(dest)
        if readers is not None and method not in readers and args.method not in readers:
            return (
                f"{flag} was given away from its default, and it is not read by --method "
                f"{args.method} (only by --method {', '.join(readers)}): leave it out"
            )
    return ""


def read_radiance_bias(path: str) -> tuple[Any, dict[str, float]]:
    """``(RadianceBiasCorrection, clear-sky error per channel)`` from the output directory of
    ``xfuxi fit-radiance-bias`` or a JSON file: that command's ``bias.json``
    (``OfflineBiasFit.to_dict()``) or a bare ``RadianceBiasCorrection.to_dict()`` (no
    errors then)."""
    from ..assimilation.radiances import RadianceBiasCorrection

    file = Path(path)
    if file.is_dir():
        file = file / "bias.json"
    if not file.is_file():
        raise ValueError(f"no such file: {file}")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{file} is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected a JSON object")
    if "coefficients" in data:
        error = data.get("error") or {}
        if not isinstance(error, dict) or not all(
            isinstance(v, (int, float)) and v > 0 for v in error.values()
        ):
            raise ValueError(f"{file}: 'error' must map channels to positive numbers (K)")
        return RadianceBiasCorrection.from_dict(data["coefficients"]), {
            str(k): float(v) for k, v in error.items()
        }
    return RadianceBiasCorrection.from_dict(data), {}


@arg("truth", help="truth run (a .nc file or a zarr store) with the model's channels and grid")
@arg("--model", default="fuxi-hs-t21",
     help="forecast model of the backgrounds: a shipped name or checkpoint (default "
          "fuxi-hs-t21)")  # fmt: skip
@arg(
    "--times",
    type=int,
    default=16,
    help="analysis times fitted, from the --first-th time of the truth on (default 16)",
)
@arg(
    "--first",
    type=int,
    default=5,
    help="index of the first fitted time in the truth (default 5; at least --lead-steps + 1)",
)
@arg(
    "--lead-steps",
    type=int,
    default=1,
    help="the backgrounds' forecast length in model steps from the truth (default 1: 6 h)",
)
@arg(
    "--satellites",
    default="105",
    help="comma-separated sub-satellite longitudes, degrees east (default 105)",
)
@arg("--screen-threshold", type=float, default=4.0,
     help="clear-sky screening: drop pixels whose window-channel O-B is below minus this, K "
          "(default 4)")  # fmt: skip
@arg("--seed", type=int, default=0, help="the imager's seed (clouds, noise) (default 0)")
@output_args("output directory: bias.json (coefficients, clear-sky errors, counts)")
@config_args("observations.imager:ImagerErrors")
@command("fit-radiance-bias",
         "fit the imager radiances' bias offline, from forecasts of a truth run")  # fmt: skip
def _cmd_fit_radiance_bias(args) -> int:
    # torch-backed: imported when the command runs (the CLI starts without torch)
    import numpy as np
    import pandas as pd

    from ..assimilation.radiances import offline_bias_fit
    from ..files import atomic_write_json
    from ..forecasting.deterministic import forecast
    from ..observations.imager import ImagerError, ImagerErrors, imager_observations

    cmd = "fit-radiance-bias"
    try:
        errors = from_arguments(ImagerErrors, args)
        satellites = _longitudes(args.satellites, "--satellites")
    except ValueError as err:
        return usage_error(cmd, str(err))
    if not satellites:
        return usage_error(cmd, f"--satellites needs longitudes; got {args.satellites!r}")
    if args.lead_steps < 1:
        return usage_error(cmd, f"--lead-steps must be >= 1; got {args.lead_steps}")
    if args.times < 1:
        return usage_error(cmd, f"--times must be >= 1; got {args.times}")
    if args.first < args.lead_steps + 1:
        return usage_error(
            cmd, f"--first must be >= --lead-steps + 1 = {args.lead_steps + 1} (the forecasts "
            f"start from two earlier truth times); got {args.first}",
        )  # fmt: skip
    truth = open_data(args.truth)
    n_time = truth.sizes.get("time", 0)
    if args.first + args.times > n_time:
        return usage_error(
            cmd, f"the truth has {n_time} times; --first {args.first} + --times {args.times} "
            "needs more",
        )  # fmt: skip
    out = output_path(args.output, [args.truth], kind="radiance-bias", overwrite=args.overwrite)
    model = load_model(args.model)
    idx = list(range(args.first, args.first + args.times))
    times = truth["time"].values[idx]
    init = truth["time"].values[[i - args.lead_steps for i in idx]]
    fc = forecast(truth, model=model, steps=args.lead_steps, init_times=init, progress=False)
    # the forecasts at their last lead, on the times they are valid at (init + lead)
    background = states_at_valid_times(fc.isel(prediction_timedelta=-1), "the forecasts")
    valid = background["time"].values
    if not np.array_equal(valid, times.astype(valid.dtype)):
        return usage_error(
            cmd, f"the forecasts of {args.lead_steps} model step(s) from the truth's times "
            f"{[str(t) for t in init[:2]]} are valid at {[str(t) for t in valid[:2]]}, not "
            f"at the fitted truth times {[str(t) for t in times[:2]]}: the truth's times are "
            "not the model's step apart (--lead-steps counts both)",
        )  # fmt: skip
    try:
        radiances = imager_observations(
            truth, satellites=satellites, times=times, errors=errors, seed=args.seed
        )
        fit = offline_bias_fit(
            background, radiances, model=model, screen_threshold=args.screen_threshold
        )
    except (ImagerError, ValueError) as err:
        return usage_error(cmd, str(err))
    record = {
        **fit.to_dict(),
        "settings": {
            "model": model.name, "times": [str(pd.Timestamp(t)) for t in times],
            "lead_steps": args.lead_steps, "satellites": list(satellites),
            "screen_threshold": args.screen_threshold, "seed": args.seed,
            "errors": dataclasses.asdict(errors),
        },
    }  # fmt: skip
    write_directory(
        out, lambda d: atomic_write_json(d / "bias.json", record), args, kind="radiance-bias"
    )
    print(f"{'channel':>10} {'rows':>6} {'rms O-B':>8} {'error':>6}  coefficients "
          "(constant, sec-1, bt)")  # fmt: skip
    for c, beta in sorted(fit.correction.coefficients.items()):
        print(f"{c:>10} {fit.n_clear[c]:6d} {fit.rms_departure[c]:8.3f} {fit.error[c]:6.3f}  "
              + ", ".join(f"{b:+.3f}" for b in beta))  # fmt: skip
    print(f"wrote {out / 'bias.json'}")
    return 0
