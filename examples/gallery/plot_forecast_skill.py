"""
Forecast skill against persistence and climatology
===================================================

Run the shipped FuXi model from two initial times of the embedded world's test period,
score it with WeatherBench2's area-weighted RMSE, and compare it with the two baselines
every forecast must beat: persistence (the initial state, unchanged) and climatology.
"""

# %%
# The data: 20 days of the test period of the embedded Held–Suarez world (generated once,
# then read from the cache), and a climatology from the training period's statistics.
import matplotlib.pyplot as plt

import xfuxi

xfuxi.set_options(progress=False)
truth = xfuxi.datasets.held_suarez_split("test", days=20)
init = truth.isel(time=slice(1, 12, 8))  # initial times 06 UTC day 1 and day 3
init_times = init.time.values
history = truth.sel(time=slice(None, init_times[-1]))  # the initial states and the step before

# %%
# The forecast: the shipped one-step FuXi model, 16 steps of 6 hours (4 days). Forecasts
# come out in WeatherBench2's layout: ``time`` is the initial time and
# ``prediction_timedelta`` the lead.
model = xfuxi.load_model("fuxi-hs-t21")
fc = history.fuxi.forecast(model=model, steps=16, init_times=init_times)
fc

# %%
# The baselines at the same initial times and leads. The climatology is the test period's
# own mean here (a stand-in: the shipped models' statistics come from the training period).
leads = fc.prediction_timedelta.values
persistence = truth.fuxi.persistence_forecast(leads=leads, init_times=init_times)
clim = truth.mean("time")
climatology = clim.expand_dims(time=init_times, prediction_timedelta=leads)

# %%
# RMSE by lead, averaged over the initial times (the area weights and the order of the
# reductions are WeatherBench2's).
dims = ["time", "latitude", "longitude"]
scores = {
    "FuXi": fc.fuxi.rmse(truth, dim=dims),
    "persistence": persistence.fuxi.rmse(truth, dim=dims),
    "climatology": climatology.fuxi.rmse(truth, dim=dims),
}
scores["FuXi"]["geopotential"].sel(level=500).to_series()

# %%
# Skill curves of z500 and t850: each ``plot_scores`` call returns the matplotlib Axes it
# drew on, so curves can be added to one figure.
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, (var, level) in zip(axes, [("geopotential", 500), ("temperature", 850)]):
    for name, score in scores.items():
        score[var].sel(level=level).fuxi.plot_scores(ax=ax, label=name)
    ax.set_title(f"{var} {level} hPa RMSE")
    ax.legend()
fig.tight_layout()
