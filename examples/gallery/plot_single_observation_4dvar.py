"""
A single-observation 4DVar and its balanced increment
=====================================================

One 500 hPa geopotential observation, three observation errors above the background, is
assimilated with FuXi-En4DVar: ensemble 4DVar through the differentiable FuXi model, with a
background error covariance B built from Perlin-perturbed members run one step. In the
northern mid-latitudes the increment is a height high with clockwise winds around it, in
geostrophic balance, although nothing but the members' dynamics imposes it.
"""

# %%
import numpy as np

import xfuxi

xfuxi.set_options(progress=False)
truth = xfuxi.datasets.held_suarez_split("test", days=20)
model = xfuxi.load_model("fuxi-hs-t21")
t0 = truth.time.values[40]

# %%
# The background: a 24-hour forecast valid at t0 (with the two states before it, which the
# 4DVar window needs).
background = truth.fuxi.world_background(model=model, time=t0, lead_steps=4)

# %%
# The observation: the background's value at 47° N, 180° E plus three observation errors.
error = 100.0  # m² s⁻²
obs = background.fuxi.single_observation(
    variable="geopotential",
    level=500.0,
    latitude=47.0,
    longitude=180.0,
    time=t0,
    error=error,
    noise=False,
)
obs["value"] = obs["value"] + 3 * error

# %%
# The analysis, with a small B (32 members) and a few iterations to stay quick. The result
# prints as a summary (and as an HTML table in a notebook).
res = background.fuxi.assimilate_4dvar(
    obs,
    model=model,
    background_error=xfuxi.BackgroundError(n_members=32),
    minimiser=xfuxi.Minimiser(max_iter=10),
    localization=xfuxi.LocalizationOptions(length_scale=1500.0),
)
res

# %%
# The increment of z500: a high centred near the observation, with the increment of the
# 500 hPa wind blowing clockwise around it.
ax = res.analysis.fuxi.plot_increment(
    background.sel(time=[t0]),
    variable="geopotential",
    level=500.0,
    wind=True,
    observations=obs,
    style=xfuxi.MapStyle(title="z500 and wind increments (m² s⁻², m s⁻¹)"),
)
inc = res.increment.isel(time=0)["geopotential"].sel(level=500.0)
print(
    f"largest z500 increment {float(inc.max()):.0f} m² s⁻² "
    f"at {float(inc.latitude[int(np.argmax(inc.max('longitude').values))]):.1f}° N"
)
