"""Tiny grids, data and models shared by the tests (fixtures for them are in conftest.py).

Two tiny worlds:

* the *ensemble* world: an 8 × 16 grid with temperature at 500 and 850 hPa and a passive
  tracer, a small convolutional step model, a perturbation VAE and a saved FuXi checkpoint;
* the *En4DVar* world: a 3 × 4 grid with temperature and geopotential at 500 hPa and a
  slightly nonlinear float64 step model, small enough for closed-form checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from xfuxi.models.base import ForecastModel, NormStats

# --- the ensemble world (8 x 16) ---
LAT = np.linspace(-78.75, 78.75, 8)
LON = np.arange(16) * 22.5
CHANNELS = [("temperature", 500.0), ("temperature", 850.0), ("passive_tracer", None)]
STD = np.array([5.0, 8.0, 0.1])
MEAN = np.array([250.0, 270.0, 0.5])


class TinyNet(torch.nn.Module):
    """A small convolution of both input times, scaled to give small residual steps."""

    def __init__(self, c: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(2 * c, c, 3, padding=1)

    def forward(self, x):
        return 0.1 * torch.tanh(self.conv(x.flatten(1, 2)))


def stats() -> NormStats:
    """Normalization statistics of the ensemble world's channels."""
    return NormStats(MEAN.copy(), STD.copy(), STD / 4)


def model(
    net: torch.nn.Module | None = None, residual: bool = True, name: str = "tiny"
) -> ForecastModel:
    """A ForecastModel on the ensemble world (default: :class:`TinyNet`, residual)."""
    return ForecastModel(
        net if net is not None else TinyNet(len(CHANNELS)),
        channels=CHANNELS,
        latitude=LAT,
        longitude=LON,
        stats=stats(),
        residual=residual,
        name=name,
    )


def dataset(n_time: int = 4, seed: int = 0) -> xr.Dataset:
    """Random 6-hourly states of the ensemble world around the channels' means."""
    rng = np.random.default_rng(seed)
    shape = (n_time, LAT.size, LON.size)
    t = (
        rng.normal(size=(n_time, 2, LAT.size, LON.size)) * STD[:2, None, None]
        + MEAN[:2, None, None]
    )
    q = rng.normal(size=shape) * STD[2] + MEAN[2]
    return xr.Dataset(
        {
            "temperature": (("time", "level", "latitude", "longitude"), t),
            "passive_tracer": (("time", "latitude", "longitude"), q),
        },
        coords={
            "time": pd.date_range("2001-03-01", periods=n_time, freq="6h"),
            "level": [500, 850],
            "latitude": LAT,
            "longitude": LON,
        },
    )


def vae(forecast_model: ForecastModel, seed: int = 1):
    """A small FuXi-ENS perturbation module for ``forecast_model``."""
    from xfuxi.models.ens import PerturbationVAE

    torch.manual_seed(seed)
    return PerturbationVAE(
        forecast_model.channels,
        forecast_model.grid_shape,
        stats=forecast_model.stats,
        hidden=6,
        latent=2,
        init_scale=0.2,
    )


def fuxi_model(
    channels=CHANNELS, *, stats: NormStats | None = None, seed: int = 0, **kwargs
) -> ForecastModel:
    """A tiny FuXi U-Transformer (``torch.manual_seed(seed)``) on the 8 × 16 grid.

    ``channels`` default to the ensemble world's, ``stats`` to its statistics (with the
    default channels); ``kwargs`` go to :class:`ForecastModel` (default name "tiny-fuxi").
    """
    from xfuxi.models.fuxi import build_fuxi

    if stats is None and channels is CHANNELS:
        stats = globals()["stats"]()
    torch.manual_seed(seed)
    net = build_fuxi("tiny", in_channels=len(channels), grid=(LAT.size, LON.size))
    kwargs = {"name": "tiny-fuxi", **kwargs}
    return ForecastModel(net, channels=channels, latitude=LAT, longitude=LON, stats=stats, **kwargs)


def fuxi_checkpoint(directory: Path) -> tuple[Path, ForecastModel]:
    """A tiny FuXi U-Transformer on the ensemble world, saved under ``directory/model``."""
    from xfuxi.models.checkpoint import save_model

    fm = fuxi_model()
    return save_model(fm, Path(directory) / "model"), fm


# --- the En4DVar world (3 x 4) ---
DA_LAT = np.array([-50.0, 0.0, 50.0])
DA_LON = np.arange(4) * 90.0
DA_CHANNELS = [("temperature", 500.0), ("geopotential", 500.0)]


class TinyNonlinear(torch.nn.Module):
    """Persistence plus a small tanh of a convolution of both input times (float64)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(4, 2, 3, padding=1).double()

    def forward(self, x):
        z = torch.cat([x[:, 0], x[:, 1]], 1)
        return x[:, 1] + 0.5 * torch.tanh(self.conv(z))


def da_model(net: torch.nn.Module) -> ForecastModel:
    """A ForecastModel on the En4DVar world (no normalization, not residual)."""
    return ForecastModel(
        net,
        channels=DA_CHANNELS,
        latitude=DA_LAT,
        longitude=DA_LON,
        residual=False,
        name=type(net).__name__,
    )


def da_background() -> xr.Dataset:
    """Three 6-hourly background states of the En4DVar world (t0 − 12 h, t0 − 6 h, t0)."""
    times = pd.date_range("2001-01-01", periods=3, freq="6h")
    rng = np.random.default_rng(0)
    h, w = DA_LAT.size, DA_LON.size
    dims = ("time", "level", "latitude", "longitude")
    return xr.Dataset(
        {
            "temperature": (dims, 250 + rng.normal(size=(3, 1, h, w))),
            "geopotential": (dims, 5.5e4 + 50 * rng.normal(size=(3, 1, h, w))),
        },
        coords={"time": times, "level": [500.0], "latitude": DA_LAT, "longitude": DA_LON},
    )


def check_saved_result(result, directory: Path, *, kind: str) -> None:
    """``result.save`` writes one marked netCDF per Dataset of ``result.datasets()``, each
    read back identical, and :func:`xfuxi.open_result` gives back the same result;
    ``save`` refuses to replace it without ``overwrite``, replaces it with it, and never
    writes into a directory xfuxi did not make."""
    import pytest

    import xfuxi
    from xfuxi.files import OutputExistsError, read_marker

    out = result.save(directory / "saved")
    datasets = result.datasets()
    assert sorted(p.name for p in out.glob("*.nc")) == sorted(f"{n}.nc" for n in datasets)
    assert read_marker(out)["kind"] == kind
    for name, ds in datasets.items():
        with xr.open_dataset(out / f"{name}.nc") as back:
            xr.testing.assert_identical(back.load(), ds)
    opened = xfuxi.open_result(out)
    assert type(opened) is type(result) and repr(opened) == repr(result)
    for name, ds in opened.datasets().items():
        xr.testing.assert_identical(ds, datasets[name])
    with pytest.raises(OutputExistsError, match="overwrite"):
        result.save(out)
    assert result.save(out, overwrite=True) == out
    (directory / "mine").mkdir()
    (directory / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(OutputExistsError):
        result.save(directory / "mine", overwrite=True)
    assert (directory / "mine" / "notes.txt").read_text() == "keep"


def reoriented(ds: xr.Dataset, flip: str) -> xr.Dataset:
    """``ds`` in another orientation: ``flip`` "latitude" (north to south), "level"
    (descending), "longitude" (−180..180) or "all" of them."""
    out = ds
    if flip in ("latitude", "all"):
        out = out.isel(latitude=slice(None, None, -1))
    if flip in ("level", "all"):
        out = out.isel(level=slice(None, None, -1))
    if flip in ("longitude", "all"):
        out = out.assign_coords(longitude=((out.longitude + 180) % 360) - 180)
        out = out.sortby("longitude")
    return out
