"""
Reading a WeatherBench2-layout store
====================================

WeatherBench2 publishes ERA5 and forecasts as zarr stores with long variable names and dims
``time``, ``level``, ``latitude``, ``longitude`` (forecasts add ``prediction_timedelta``).
``xfuxi.from_weatherbench2`` reads such a store lazily into xfuxi's canonical layout. Here a
small store in that layout is written first (no download), then read back and verified.
"""

# %%
import tempfile
from pathlib import Path

import xfuxi

xfuxi.set_options(progress=False)
truth = xfuxi.datasets.held_suarez_split("test", days=20)

# %%
# A store as WeatherBench2 writes it: latitude descending (north to south), one chunk per
# time step, float32.
store = Path(tempfile.mkdtemp()) / "era5_like.zarr"
wb2 = truth.isel(time=slice(0, 12), latitude=slice(None, None, -1)).load()
for var in wb2.variables.values():
    var.encoding = {}  # the cache store's own chunking does not carry over
wb2.chunk({"time": 1}).to_zarr(store, mode="w")

# %%
# Read back: checked, put in the canonical order (latitude ascending) and loaded lazily.
ds = xfuxi.from_weatherbench2(store)
ds

# %%
# The data are the same, and the scores work on the store's data at once.
print("latitude ascending:", bool((ds.latitude.diff("latitude") > 0).all()))
persistence = ds.fuxi.persistence_forecast(
    leads=["6h", "12h", "24h"], init_times=ds.time.values[:4]
)
persistence.fuxi.rmse(ds, dim=["time", "latitude", "longitude"])["temperature"]

# %%
ds.isel(time=0).fuxi.plot_map(variable="temperature", level=850)
