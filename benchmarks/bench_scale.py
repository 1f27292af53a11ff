"""Memory and time of the parts of xfuxi whose cost grows with the grid, on realistic grids.

Each case runs in a fresh process of its own (so that one case's freed memory does not
hide another's peak) and reports its wall time and the peak resident set size above the
RSS just before the call (sampled every 2 ms: a lower bound of the true peak), against the
size of its input:

* ``letkf_localization``: the LETKF's observation localization (Gaspari–Cohn, 1500 km)
  of 500 observations on the 1.5° grid (121 × 240), each interpolated from 4 grid points;
* ``en4dvar_ensemble``: En4DVar's background ensemble (Perlin members run one step, their
  anomalies rescaled per channel: ``background_anomalies``) of 32 members on the 1.5°
  grid with 69 channels (5 variables on 13 levels and 4 surface fields), through a
  randomly initialised FuXi network of the ``small`` preset (no shipped model has this
  grid; the cost does not depend on the weights);
* ``brier_score`` and ``crps``: an 8-member float32 ensemble on the 0.25° grid (721 ×
  1440), 2 initial times × 4 leads;
* ``regrid_conservative``: 2 times × 13 levels of float32 temperature from 0.25° to 1.5°;
* ``imager_observations``: the synthetic imager's radiances (8 channels, 3 frames, one
  analysis time, clouds and every error on) of 2 satellites on the 0.7° grid (257 × 512),
  from a random 4-level truth;
* ``screen_observations``: screening 1 million random observations (temperature and wind
  on levels, surface pressure; some outside the window) on the 1.5° grid, 3 slots.

Results go to benchmarks/results/scale.json (``rows``). ``--quick`` runs every case on a
coarser grid (a check that the script works, not a measurement). To measure an earlier
release, put its package first on the path (the cases use only public or long-standing
functions): ``PYTHONPATH=/tmp/old python benchmarks/bench_scale.py --out FILE``.

    python benchmarks/bench_scale.py [--threads 1] [--quick] [--cases NAME ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "scale.json"
CASES = (
    "letkf_localization",
    "en4dvar_ensemble",
    "brier_score",
    "crps",
    "regrid_conservative",
    "imager_observations",
    "screen_observations",
)
LEVELS13 = [50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000]


def rss_mb() -> float:
    """Resident set size of this process (MB), from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(fn):
    """(wall seconds, peak RSS above the start in MB) of one call of ``fn``."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed memory back first
    except (OSError, AttributeError):
        pass
    start = rss_mb()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.002)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    tic = time.perf_counter()
    fn()
    wall = time.perf_counter() - tic
    done.set()
    th.join()
    return wall, max(peak[0], rss_mb()) - start


def case_letkf_localization(quick: bool) -> dict:
    import numpy as np

    from xfuxi.assimilation.config import LocalizationOptions
    from xfuxi.assimilation.letkf import observation_localization

    nlat, nlon = (61, 120) if quick else (121, 240)
    lat, lon = np.linspace(-90, 90, nlat), np.arange(nlon) * 360.0 / nlon
    rng = np.random.default_rng(0)
    index = rng.integers(0, nlat * nlon, size=(500, 4))
    weights = np.full((500, 4), 0.25)
    options = LocalizationOptions(length_scale=1500.0)
    wall, peak = measure(
        lambda: observation_localization(
            index,
            weights,
            state_shape=(1, nlat, nlon),
            localization=options,
            latitude=lat,
            longitude=lon,
        )  # fmt: skip
    )
    grid_square = (nlat * nlon) ** 2 * 8 / 2**20  # what a grid-by-grid float64 matrix takes
    return {"grid": f"{nlat}x{nlon}", "size": "500 observations", "input_mb": 0.0,
            "seconds": wall, "peak_mb": peak, "note": f"a {nlat * nlon}² float64 matrix "
            f"would be {grid_square:.0f} MB"}  # fmt: skip


def _random_model(nlat: int, nlon: int):
    import numpy as np
    import torch

    from xfuxi.models.base import ForecastModel, NormStats
    from xfuxi.models.fuxi import build_fuxi

    upper = ["geopotential", "temperature", "u_component_of_wind", "v_component_of_wind",
             "specific_humidity"]  # fmt: skip
    surface = ["2m_temperature", "10m_u_component_of_wind", "10m_v_component_of_wind",
               "mean_sea_level_pressure"]  # fmt: skip
    channels = [(v, float(level)) for v in upper for level in LEVELS13] + [
        (v, None) for v in surface
    ]
    mean = {"geopotential": 5e4, "temperature": 250.0, "specific_humidity": 3e-3,
            "2m_temperature": 280.0, "mean_sea_level_pressure": 1.01e5}  # fmt: skip
    std = {"geopotential": 3e3, "temperature": 15.0, "specific_humidity": 3e-3,
           "2m_temperature": 20.0, "mean_sea_level_pressure": 1e3}  # fmt: skip
    mu = np.array([mean.get(v, 0.0) for v, _ in channels])
    sigma = np.array([std.get(v, 8.0) for v, _ in channels])
    torch.manual_seed(0)
    net = build_fuxi("small", in_channels=len(channels), grid=(nlat, nlon))
    lat, lon = np.linspace(-90, 90, nlat), np.arange(nlon) * 360.0 / nlon
    stats = NormStats(mu, sigma, sigma / 4)
    model = ForecastModel(net, channels=channels, latitude=lat, longitude=lon, stats=stats,
                          name="random small")  # fmt: skip
    return model, mu


def case_en4dvar_ensemble(quick: bool) -> dict:
    import numpy as np
    import torch

    from xfuxi.assimilation.config import BackgroundError
    from xfuxi.assimilation.members import background_anomalies

    nlat, nlon = (61, 120) if quick else (121, 240)
    n = 32
    model, mu = _random_model(nlat, nlon)
    c = len(model.channels)
    state = torch.as_tensor(np.broadcast_to(mu[:, None, None], (c, nlat, nlon)).copy())
    background = torch.stack([state, state, state])
    stds = tuple(float(s) for s in model.stats.std)
    options = BackgroundError(n_members=n, member_chunk=25, perturbation_std=stds)
    wall, peak = measure(
        lambda: background_anomalies(
            model,
            background,
            background_error=options,
            spread=np.ones(c),
            generator=torch.Generator().manual_seed(0),
            progress=False,
        )  # fmt: skip
    )
    one = c * nlat * nlon * 8 / 2**20
    return {"grid": f"{nlat}x{nlon}", "size": f"{n} members, {c} channels",
            "input_mb": 3 * one, "seconds": wall, "peak_mb": peak,
            "note": f"the {n} anomalies (float64) are {n * one:.0f} MB; the rest is a chunk of "
            "25 members through the network"}  # fmt: skip


def _ensemble_case(quick: bool):
    import numpy as np
    import pandas as pd
    import xarray as xr

    nlat, nlon = (181, 360) if quick else (721, 1440)
    rng = np.random.default_rng(0)
    coords = {
        "time": pd.date_range("2020-01-01", periods=2, freq="12h"),
        "prediction_timedelta": np.arange(1, 5) * np.timedelta64(24, "h"),
        "latitude": np.linspace(-90, 90, nlat), "longitude": np.arange(nlon) * 360.0 / nlon,
    }  # fmt: skip
    shape = (8, 2, 4, nlat, nlon)
    fc = xr.DataArray(rng.standard_normal(shape, dtype=np.float32), coords=coords,
                      dims=("number", *coords))  # fmt: skip
    truth = fc.isel(number=0, drop=True) * 0 + rng.standard_normal(shape[1:], dtype=np.float32)
    return fc, truth, f"{nlat}x{nlon}"


def case_brier_score(quick: bool) -> dict:
    import xfuxi

    fc, truth, grid = _ensemble_case(quick)
    wall, peak = measure(lambda: xfuxi.brier_score(fc, truth, threshold=0.5))
    return {"grid": grid, "size": "8 members, 2 times x 4 leads, float32",
            "input_mb": (fc.nbytes + truth.nbytes) / 2**20, "seconds": wall,
            "peak_mb": peak, "note": ""}  # fmt: skip


def case_crps(quick: bool) -> dict:
    import xfuxi

    fc, truth, grid = _ensemble_case(quick)
    wall, peak = measure(lambda: xfuxi.crps(fc, truth))
    return {"grid": grid, "size": "8 members, 2 times x 4 leads, float32",
            "input_mb": (fc.nbytes + truth.nbytes) / 2**20, "seconds": wall,
            "peak_mb": peak, "note": ""}  # fmt: skip


def case_regrid_conservative(quick: bool) -> dict:
    import numpy as np
    import pandas as pd
    import xarray as xr

    import xfuxi

    nlat, nlon = (181, 360) if quick else (721, 1440)
    rng = np.random.default_rng(0)
    data = 250.0 + rng.standard_normal((2, 13, nlat, nlon), dtype=np.float32)
    ds = xr.Dataset(
        {"temperature": (("time", "level", "latitude", "longitude"), data, {"units": "K"})},
        coords={"time": pd.date_range("2020-01-01", periods=2, freq="6h"),
                "level": np.array(LEVELS13, float), "latitude": np.linspace(90, -90, nlat),
                "longitude": np.arange(nlon) * 360.0 / nlon},
    )  # fmt: skip
    target = {"latitude": np.linspace(-90, 90, 121), "longitude": np.arange(240) * 1.5}
    wall, peak = measure(lambda: xfuxi.regrid(ds, target, method="conservative"))
    return {"grid": f"{nlat}x{nlon} to 121x240", "size": "2 times x 13 levels, float32",
            "input_mb": ds.nbytes / 2**20, "seconds": wall, "peak_mb": peak,
            "note": "north-to-south input (reordered by validation: one copy)"}  # fmt: skip


def case_imager_observations(quick: bool) -> dict:
    import numpy as np
    import pandas as pd
    import xarray as xr

    import xfuxi

    nlat, nlon = (121, 240) if quick else (257, 512)
    rng = np.random.default_rng(0)
    lat, lon = np.linspace(-89.0, 89.0, nlat), np.arange(nlon) * 360.0 / nlon
    levels = np.array([250.0, 500.0, 700.0, 850.0])
    shape = (3, levels.size, nlat, nlon)
    moist = np.exp(-((lat / 30.0) ** 2))[None, None, :, None]
    t_mean = np.array([220.0, 252.0, 270.0, 280.0])[None, :, None, None]
    q_mean = np.array([0.05, 0.15, 0.3, 0.4])[None, :, None, None]
    dims = ("time", "level", "latitude", "longitude")
    truth = xr.Dataset(
        {"temperature": (dims, t_mean + 5.0 * rng.standard_normal(shape)),
         "passive_tracer": (dims, (q_mean * moist * (1 + 0.3 * rng.standard_normal(shape)))
                            .clip(0, None)),
         "surface_pressure": (("time", "latitude", "longitude"),
                              1.0e5 + 800.0 * rng.standard_normal((3, nlat, nlon)))},
        coords={"time": pd.date_range("2001-01-01", periods=3, freq="6h"), "level": levels,
                "latitude": lat, "longitude": lon},
    )  # fmt: skip
    when = truth["time"].values[1:2]
    out = []
    wall, peak = measure(
        lambda: out.append(xfuxi.imager_observations(truth, satellites=[105.0, 225.0], times=when))
    )
    radiances = out[0]["brightness_temperature"].nbytes / 2**20
    return {"grid": f"{nlat}x{nlon}", "size": "2 satellites, 8 channels, 3 frames",
            "input_mb": truth.nbytes / 2**20, "seconds": wall, "peak_mb": peak,
            "note": f"the radiances are {radiances:.0f} MB"}  # fmt: skip


def case_screen_observations(quick: bool) -> dict:
    import numpy as np

    from xfuxi.observations.sets import make_observations, screen_observations

    m = 100_000 if quick else 1_000_000
    rng = np.random.default_rng(0)
    levels = [250.0, 500.0, 700.0, 850.0]
    channels = [(v, lv) for v in ("temperature", "u_component_of_wind") for lv in levels]
    channels.append(("surface_pressure", None))
    variable = rng.choice(["temperature", "u_component_of_wind", "surface_pressure"], m)
    t0 = np.datetime64("2020-01-01T00", "ns")
    obs = make_observations(
        rng.standard_normal(m), error=1.0,
        time=t0 + rng.integers(-4, 10, m) * np.timedelta64(1, "h"),
        latitude=rng.uniform(-90, 90, m), longitude=rng.uniform(0, 360, m), variable=variable,
        level=np.where(variable == "surface_pressure", np.nan, rng.uniform(200, 900, m)),
    )  # fmt: skip
    slots = t0 + np.arange(3) * np.timedelta64(3, "h")
    lat, lon = np.linspace(-90, 90, 121), np.arange(240) * 1.5
    wall, peak = measure(
        lambda: screen_observations(
            obs, channels=channels, latitude=lat, longitude=lon, slot_times=slots
        )
    )
    return {"grid": "121x240", "size": f"{m} observations", "input_mb": obs.nbytes / 2**20,
            "seconds": wall, "peak_mb": peak, "note": "about 40% rejected"}  # fmt: skip


def run_case(name: str, quick: bool, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    row = globals()[f"case_{name}"](quick)
    return {"case": name, **row}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--quick", action="store_true", help="coarser grids: a smoke test")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file (JSON)")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # one, in a child
    args = parser.parse_args(argv)
    if args.case:  # the child: one case, its row as JSON on the last line of stdout
        print(json.dumps(run_case(args.case, args.quick, args.threads)))
        return 0
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
           "MKL_NUM_THREADS": threads}  # fmt: skip
    rows = []
    header = f"{'case':22s} {'grid':20s} {'input MB':>9s} {'seconds':>8s} {'peak MB':>8s}"
    print(header)
    for name in args.cases:
        cmd = [sys.executable, __file__, "--case", name, "--threads", str(args.threads)]
        done = subprocess.run(cmd + (["--quick"] if args.quick else []), env=env,
                              capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            return done.returncode
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{name:22s} {row['grid']:20s} {row['input_mb']:9.0f} {row['seconds']:8.2f} "
              f"{row['peak_mb']:8.0f}")  # fmt: skip
    if args.quick:
        print("--quick: not written")
        return 0
    for row in rows:
        row["seconds"] = round(row["seconds"], 2)
        row["input_mb"] = round(row["input_mb"], 1)
        row["peak_mb"] = round(row["peak_mb"], 1)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "threads": args.threads, "python": platform.python_version()},
        "command": " ".join(["python", "benchmarks/bench_scale.py", *sys.argv[1:]]),
        # another xfuxi than this checkout's (an earlier release, to compare with), if any
        "pythonpath": os.environ.get("PYTHONPATH", ""),
        "rows": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
