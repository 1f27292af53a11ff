# ruff: noqa: F841  (the assignments show the types that mypy must accept)
"""Documented usage (docs/getting-started.md, docs/user-guide/*.md) through ``xfuxi.<name>``.

Never run: tests/test_typing.py has mypy check it, which must accept every call. The calls are
inside functions so that importing this file (pytest's doctest collection) runs nothing.
"""

import numpy as np
import torch
import xarray as xr

import xfuxi


class Persist(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 1]


def documented_usage() -> None:
    # getting-started.md
    truth = xfuxi.datasets.held_suarez_split("test", days=20)
    init = truth.isel(time=slice(0, 2))
    fc = xfuxi.forecast(init, steps=20)
    rm = xfuxi.rmse(fc, truth, dim=["time", "latitude", "longitude"])
    ax = xfuxi.plot_scores(rm["geopotential"].sel(level=500))

    # forecasts.md
    model = xfuxi.load_model("fuxi-hs-t21-cascade")
    fc = xfuxi.forecast(truth, model=model, steps=40, init_times=truth.time.values[1:80:8])
    fc = xfuxi.forecast(truth, model=model, steps=4, init_times=["2020-01-01T06", "2020-01-01T12"])
    fc_b = xfuxi.forecast(truth, model=model, steps=4, init_times=truth.time[1:3])
    for i, lead in enumerate(xfuxi.forecast_iter(init, model=model, steps=60), start=1):
        lead.to_netcdf(f"lead_{i:03d}.nc")
    short = xfuxi.load_model("fuxi-hs-t21")
    medium = xfuxi.load_model("fuxi-hs-t21-medium")
    cascade = xfuxi.Cascade([short, medium], switch_steps=[20])

    mine = xfuxi.wrap_model(
        Persist(),
        channels=[("temperature", 500.0), ("geopotential", 500.0)],
        latitude=truth.latitude.values,
        longitude=truth.longitude.values,
        residual=False,
        name="persistence",
    )
    leads = fc.prediction_timedelta.values
    persistence = xfuxi.persistence_forecast(truth, leads=leads, init_times=fc.time.values)
    clim = xfuxi.climatology(xfuxi.datasets.held_suarez_split("validation", days=90))
    climatological = xfuxi.climatology_forecast(clim, init_times=fc.time.values, leads=leads)
    scores: dict[str, xr.Dataset] = {
        name: xfuxi.rmse(f, truth, dim=["time", "latitude", "longitude"])
        for name, f in [("FuXi", fc), ("persistence", persistence), ("climatology", climatological)]
    }
    xfuxi.plot_scores({k: v["geopotential"].sel(level=500) for k, v in scores.items()})
    r_acc = xfuxi.acc(fc, truth, clim, dim=["time", "latitude", "longitude"], region=["tropics"])
    r_box = xfuxi.rmse(fc, truth, region={"latitude": (20, 90), "longitude": (0, 360)})
    r_reg = xfuxi.rmse(fc, truth, region=xfuxi.Region("box", latitude=(-20, 20)))
    m = xfuxi.mse(fc, truth, dim=["time"])
    b: xr.DataArray = xfuxi.bias(fc["temperature"], truth["temperature"])
    e: xr.Dataset = xfuxi.mae(fc, truth)

    # ensembles.md
    ens = xfuxi.ensemble(init, n=48, steps=40)
    ens_b = xfuxi.ensemble(truth, n=4, steps=4, init_times=truth.time[1:3])
    ens_c = xfuxi.ensemble(truth, n=4, steps=4, init_times=truth.time.values[1:3])
    c = xfuxi.crps(ens, truth, dim=["time", "latitude", "longitude"])
    ssr = xfuxi.spread_skill_ratio(
        ens, truth, dim=["time", "latitude", "longitude"], correction=True
    )
    perlin = xfuxi.ensemble(
        init,
        n=48,
        steps=40,
        perturbation=xfuxi.PerlinNoise(
            std_fraction=0.1, wavelength=8.0, octaves=3, persistence=0.5
        ),
    )
    gauss = xfuxi.ensemble(
        init, n=48, steps=40, perturbation=xfuxi.GaussianNoise(std_fraction=0.05)
    )
    pe = xfuxi.perlin_ensemble(init, n=48)
    for lead in xfuxi.ensemble_iter(init, n=48, steps=60):
        xfuxi.crps(lead, truth, dim=["time", "latitude", "longitude"])
    ign: xr.Dataset = xfuxi.ensemble_ignorance(ens, truth)
    dmse: xr.Dataset = xfuxi.debiased_ensemble_mean_mse(ens, truth, member_dim="number")
    gcrps: xr.Dataset = xfuxi.gaussian_crps(ens.mean("number"), truth, std=ens.std("number"))
    gign: xr.Dataset = xfuxi.gaussian_ignorance(ens.mean("number"), truth, std=ens.std("number"))

    # assimilation.md
    t0 = truth.time.values[40]
    obs = xfuxi.radiosonde_observations(
        truth,
        n_sites=100,
        variables=["temperature", "u_component_of_wind", "v_component_of_wind"],
        error={"temperature": 1.0, "u_component_of_wind": 2.0, "v_component_of_wind": 2.0},
        times=[t0, t0 + np.timedelta64(6, "h")],
        seed=0,
    )
    model_da = xfuxi.load_model("fuxi-hs-t21-da")
    background = xfuxi.world_background(truth, model=model_da, time=t0, lead_steps=4)
    res = xfuxi.assimilate_4dvar(background, obs, model=model_da)
    res.save("analysis/")
    analysis, trajectory, increment, diagnostics = res
    xfuxi.plot_convergence(res.diagnostics["cost"])
    xfuxi.plot_increment(
        res.analysis,
        background.isel(time=[-1]),
        variable="geopotential",
        level=500,
        observations=obs,
    )
    xfuxi.balance_summary(res.analysis, background.isel(time=[-1]))
    spread = xfuxi.background_error_std(truth, model=model_da, lead_steps=4, by_latitude=True)
    static = xfuxi.forecast_error_samples(truth, model=model_da, lead_steps=4, n_samples=100)
    res2 = xfuxi.assimilate_4dvar(
        background,
        obs,
        model=model_da,
        error_data=xfuxi.BackgroundErrorData(spread=spread, static_b=static),
        background_error=xfuxi.BackgroundError(hybrid_weight=0.25),
        localization=xfuxi.LocalizationOptions(length_scale=None),
        window=xfuxi.Window(n_slots=2, time=t0),
        minimiser=xfuxi.Minimiser(max_iter=20),
    )
    stats = xfuxi.innovation_statistics(obs, truth)

    # plotting.md
    state = truth.isel(time=40)
    xfuxi.plot_map(state, variable="geopotential", level=500, wind=True)
    xfuxi.plot_map(
        state,
        variable="temperature",
        level=850,
        contour="geopotential",
        style=xfuxi.MapStyle(cmap="RdBu_r", vmin=250, vmax=300),
    )
    xfuxi.plot_spread_skill(ens.sel(level=500), truth.sel(level=500), variable="geopotential")
    xfuxi.plot_rank_histogram(ens.sel(level=500), truth.sel(level=500), variable="temperature")
    card_a = xfuxi.scorecard(persistence, truth)
    card_b = xfuxi.scorecard(fc, truth)
    xfuxi.plot_scorecard(card_b, card_a, names=("persistence", "FuXi"))

    # cycling.md
    truth13 = xfuxi.datasets.held_suarez_split("test", days=13)
    run = xfuxi.cycle(
        truth13,
        xfuxi.RadiosondeNetwork(n_sites=300),
        method=xfuxi.LETKFMethod(options=xfuxi.LETKFOptions(n_members=40, rtps=0.8)),
        config=xfuxi.CycleConfig(days=10, start=np.datetime64("2000-01-03T00")),
        store="letkf.zarr",
    )
    run.plot(["geopotential@500"])
    xfuxi.plot_cycle(run.scores, channel="geopotential@500")
    opened = xfuxi.open_cycle("letkf.zarr")
    xfuxi.save_model(xfuxi.with_single_time_input(xfuxi.load_model("fuxi-hs-t21-cycling")), "m")
    filtered = xfuxi.with_spectral_filter(xfuxi.load_model("fuxi-hs-t21"), 21)

    # training.md
    train = xfuxi.datasets.held_suarez_split("train", days=365)
    validation = xfuxi.datasets.held_suarez_split("validation", days=30)
    config = xfuxi.TrainConfig(
        preset="small", steps=2500, batch_size=16, lr=2e-3, loss="l1", seed=0
    )
    trained = xfuxi.train_forecast(
        train, config=config.replace(checkpoint_dir="runs/s1"), validation=validation
    )
    xfuxi.save_model(trained, "models/my-fuxi")
    medium2 = xfuxi.train_forecast(
        train,
        model=short,
        lead_model=short,
        config=xfuxi.TrainConfig(lead_steps=20, rollout_steps=8, loss="amse", steps=400),
    )
    cascade2 = xfuxi.Cascade([short, medium2], switch_steps=[20])
    vae, history = xfuxi.train_perturbation(
        short,
        train,
        validation=validation,
        config=xfuxi.PerturbationTrainConfig(members=4, rollout=8),
    )
    net, hist = xfuxi.train_da(
        train, xfuxi.load_model("fuxi-hs-t21"), config=xfuxi.DAConfig(steps=500, forecast_steps=2)
    )

    # verification.md
    clim61 = xfuxi.climatology(train, window=61)
    card = xfuxi.scorecard(train, validation, climatology=clim61)
    xfuxi.save_stats(clim61, "clim.nc")
    xfuxi.write_netcdf(clim61, "clim2.nc")
    xfuxi.campaign_scorecard("store.zarr", validation, climatology=clim61)
    p = xfuxi.persistence_forecast(validation, leads=[6], init_times=None)
    xfuxi.write_netcdf(p, "p.nc")

    # data.md: validate and regrid give back what they are given
    canonical: xr.Dataset = xfuxi.validate(validation)
    coarse: xr.Dataset = xfuxi.regrid(validation, "T21")
    field: xr.DataArray = xfuxi.regrid(validation["temperature"], "T21")

    # options.md
    with xfuxi.set_options(progress=False, dtype="float32"):
        progress = xfuxi.get_options()["progress"]
