"""
An ensemble: CRPS, spread–skill and rank histogram
==================================================

FuXi-ENS perturbs the initial state and every 6-hour step of the FuXi forecast with
flow-dependent samples of a learned VAE. Here a small ensemble (8 members, 2 days) from two
initial times is scored with the fair CRPS, the spread–skill ratio and the rank histogram.
"""

# %%
import matplotlib.pyplot as plt

import xfuxi

xfuxi.set_options(progress=False)
truth = xfuxi.datasets.held_suarez_split("test", days=20)
init_times = truth.time.values[[1, 9]]
history = truth.sel(time=slice(None, init_times[-1]))

# %%
# The ensemble: the shipped perturbation module on the shipped FuXi model; members are
# along ``number`` (WeatherBench2's name).
ens = history.fuxi.ensemble(n=8, steps=8, init_times=init_times, model="fuxi-hs-t21", seed=0)
ens

# %%
# The fair CRPS and the spread–skill ratio by lead, averaged over space and the initial
# times. A ratio near 1 means the spread tells how large the error is.
dims = ["time", "latitude", "longitude"]
z500 = ens["geopotential"].sel(level=500)
crps = z500.fuxi.crps(truth["geopotential"].sel(level=500), dim=dims)
ratio = z500.fuxi.spread_skill_ratio(truth["geopotential"].sel(level=500), dim=dims)
crps.to_series()

# %%
# Spread against the ensemble-mean error, and where the truth falls among the sorted
# members (a flat histogram for a reliable ensemble). Both plotting functions return their
# matplotlib Axes.
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
z500_truth = truth["geopotential"].sel(level=500)
z500.fuxi.plot_spread_skill(z500_truth, ax=axes[0], title="z500 spread and skill")
z500.fuxi.plot_rank_histogram(z500_truth, ax=axes[1], title="z500 rank histogram")
fig.tight_layout()
