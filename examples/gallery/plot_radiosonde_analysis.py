"""
A radiosonde analysis: O−B and O−A
==================================

A network of radiosondes observes temperature and wind at every level at t0 and 6 hours
later. FuXi-En4DVar fits the trajectory of the model to them over the window; the fit is
measured in observation space: the innovations O−B (observation minus background) and the
residuals O−A (observation minus analysis), whose RMS must drop.
"""

# %%
import matplotlib.pyplot as plt
import pandas as pd

import xfuxi

xfuxi.set_options(progress=False)
truth = xfuxi.datasets.held_suarez_split("test", days=20)
model = xfuxi.load_model("fuxi-hs-t21")
t0 = pd.Timestamp(truth.time.values[40])
background = truth.fuxi.world_background(model=model, time=t0, lead_steps=4)

# %%
# 60 sites drawn at random on land and sea alike, observing the truth with noise.
obs = truth.fuxi.radiosonde_observations(
    n_sites=60,
    error={"temperature": 1.0, "u_component_of_wind": 2.0, "v_component_of_wind": 2.0},
    variables=["temperature", "u_component_of_wind", "v_component_of_wind"],
    times=[t0, t0 + pd.Timedelta("6h")],
    seed=0,
)
obs

# %%
res = background.fuxi.assimilate_4dvar(
    obs,
    model=model,
    background_error=xfuxi.BackgroundError(n_members=32),
    minimiser=xfuxi.Minimiser(max_iter=10),
)
res

# %%
# The RMS of O−B and O−A by variable and level, from the result's diagnostics.
diag = res.diagnostics
table = diag[["omb_rms", "oma_rms", "n_used"]].to_dataframe()
table

# %%
fig, ax = plt.subplots(figsize=(8, 3.5))
x = range(diag.sizes["group"])
ax.bar([i - 0.2 for i in x], diag["omb_rms"], width=0.4, label="O−B")
ax.bar([i + 0.2 for i in x], diag["oma_rms"], width=0.4, label="O−A")
ax.set_xticks(list(x), diag["group"].values, rotation=45, ha="right")
ax.set_ylabel("RMS")
ax.legend()
fig.tight_layout()
