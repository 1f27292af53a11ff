"""
Geostrophic balance of a forecast
=================================

In mid-latitudes the wind is close to the geostrophic wind of the height field. A forecast
model that keeps this balance keeps the atmosphere's dynamics; one that loses it makes
gravity-wave noise. ``balance_summary`` measures it by latitude band.
"""

# %%
import xfuxi

xfuxi.set_options(progress=False)
truth = xfuxi.datasets.held_suarez_split("test", days=20)
state = truth.isel(time=[40])

# %%
# The geostrophic wind of the geopotential, and the ageostrophic rest.
geo = state.fuxi.geostrophic_wind()
ageo = state.fuxi.ageostrophic_wind()
geo

# %%
# The balance summary of the truth: correlation of the wind with its geostrophic part, and
# the ageostrophic fraction, by latitude band and level.
state.fuxi.balance_summary()

# %%
# The same for a 2-day forecast of the shipped model, valid at the same time.
fc = truth.fuxi.forecast(model="fuxi-hs-t21", steps=8, init_times=truth.time.values[[32]])
valid = fc.isel(prediction_timedelta=-1).assign_coords(time=state.time.values)
valid.fuxi.balance_summary()

# %%
# The 500 hPa wind (arrows) over the geopotential of the truth.
ax = state.fuxi.plot_map(variable="geopotential", level=500, wind=True)
