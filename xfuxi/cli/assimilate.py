"""Data-assimilation commands: ``xfuxi assimilate`` (one FuXi-En4DVar analysis) and
``xfuxi cycle`` (cycled assimilation on a truth run, docs/cycling.md)."""

from __future__ import annotations

from pathlib import Path

from ..assimilation import config as da
from ..assimilation.cycle_config import CycleConfig
from ..config import from_arguments
from ..data.schema import SchemaError
from .common import (
    arg,
    command,
    config_args,
    load_model,
    open_data,
    output_args,
    output_path,
    usage_error,
    write_directory,
)

__all__: list[str] = []


@arg("background", help="zarr/netCDF background with times t0 - 12 h, t0 - 6 h and t0")
@arg("observations", help="zarr/netCDF observation Dataset (dim 'obs'; xfuxi.make_observations)")
@arg("--model", default="fuxi-hs-t21", help="shipped model name or checkpoint directory")
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
@config_args(da.BackgroundError, skip=("amplitude", "perturbation_std"))
@config_args(da.LocalizationOptions, skip=("length_scale",))
@config_args(da.Window)
@config_args(da.Minimiser)
@config_args(da.QualityControl)
@command("assimilate", "one FuXi-En4DVar analysis from a background and observations")
def _cmd_assimilate(args) -> int:
    # torch-backed modules are imported when the command runs (the CLI starts without torch)
    from ..assimilation.en4dvar import DEFAULT_LOCALIZATION, assimilate_4dvar

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
    inputs = [args.background, args.observations, args.spread, args.static_b]
    out = output_path(args.output, inputs, kind="assimilation", overwrite=args.overwrite)
    spread = open_data(args.spread).load() if args.spread else None
    static_b = open_data(args.static_b).load() if args.static_b else None
    res = assimilate_4dvar(
        open_data(args.background), open_data(args.observations).load(),
        model=load_model(args.model),
        error_data=da.BackgroundErrorData(spread=spread, static_b=static_b), **options,
    )  # fmt: skip

    def write(directory: Path) -> None:
        # encodings read from the inputs (an observation file's chunk layout) do not apply
        for name in ("analysis", "increment", "trajectory", "diagnostics"):
            getattr(res, name).drop_encoding().to_netcdf(directory / f"{name}.nc")

    write_directory(out, write, args, kind="assimilation")
    d = res.diagnostics
    print(
        f"{d.attrs['iterations']} iterations, J {float(d['cost'][0]):.4g} -> "
        f"{float(d['cost'][-1]):.4g}; observations used {d.attrs['n_observations_used']}; "
        f"rejected {dict(zip(d['reason'].values.tolist(), d['n_rejected'].values.tolist()))}"
    )
    print(f"wrote analysis, increment, trajectory and diagnostics to {out}")  # fmt: skip
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
    "--hybrid-weight",
    type=float,
    default=0.25,
    help="En4DVar with --static-b: weight of the static part of B (default 0.25)",
)
@arg("--model", default="fuxi-hs-t21-cycling",
     help="forecast model name or checkpoint (default fuxi-hs-t21-cycling: fine-tuned so that "
          "its climate does not drift over weeks; it carries the T21 filter)")  # fmt: skip
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
@arg("--sites", type=int, default=300,
     help="radiosonde sites (default 300; --method en4dvar-radiances: 0 for radiances "
          "only)")  # fmt: skip
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
@arg("--radiance-error", type=float, default=1.0,
     help="--method en4dvar-radiances: clear-sky radiance error std, K (default 1)")  # fmt: skip
@arg("--screen-threshold", type=float, default=3.0,
     help="--method en4dvar-radiances: cloud screening, drop pixels whose window-channel "
          "O-B is below minus this, K (default 3)")  # fmt: skip
@arg("--localization", type=float, default=1500.0, help="Gaspari-Cohn half-width, km")
# the LETKF's options (the En4DVar methods take their members from --n-members too); the
# command relaxes to the prior spread by half unless told otherwise
@config_args(
    "assimilation.letkf:LETKFOptions", aliases={"n_members": ("--members",)}, defaults={"rtps": 0.5}
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
        loc = da.LocalizationOptions(length_scale=args.localization)
        errors = from_arguments(ImagerErrors, args)
        satellites = tuple(float(x) for x in args.satellites.split(",") if x.strip())
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
    if args.static_b is not None and args.method == "fuxi-da":
        return usage_error("cycle", f"--static-b is not used by --method {args.method}")
    if args.method != "en4dvar-radiances" and args.varbc:
        return usage_error("cycle", "--varbc needs --method en4dvar-radiances")
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
    method: LETKFMethod | HybridGainMethod | En4DVarMethod | FuXiDAMethod | BiasCorrectedMethod
    network: RadiosondeNetwork | ImagerNetwork | ImagerSondeNetwork
    network = RadiosondeNetwork(n_sites=args.sites, seed=config.seed)
    if args.method == "fuxi-da":
        # the imager's radiances; satellites other than the network's training ones allowed
        method = FuXiDAMethod(args.da_model, allow_new_satellites=True)
        network = ImagerNetwork(satellites=satellites, errors=errors, seed=config.seed)
    elif args.method in ("letkf", "hybrid-gain"):
        method = LETKFMethod(options=letkf, localization=loc)
        if args.method == "hybrid-gain":
            try:
                method = HybridGainMethod(
                    letkf=method,
                    variational=static_var(
                        static,
                        localization=da.LocalizationOptions(length_scale=args.static_localization),
                    ),
                    weight=args.gain_weight,
                )
            except ValueError as err:
                return usage_error("cycle", f"--gain-weight: {err}")
    elif args.method == "en4dvar-radiances":
        hybrid = {} if static is None else {"hybrid_weight": args.hybrid_weight}
        try:
            error = da.BackgroundError(n_members=letkf.n_members, seed=config.seed, **hybrid)
            method = RadianceEn4DVarMethod(
                background_error=error,
                localization=loc,
                static=static,
                radiance_error=args.radiance_error,
                varbc=args.varbc,
                screen_threshold=args.screen_threshold,
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
        )
    if args.bias_rate > 0:
        trunc = None if args.bias_truncation < 0 else args.bias_truncation
        method = BiasCorrectedMethod(
            method, rate=args.bias_rate, truncation=trunc, spinup=args.bias_spinup
        )
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
