"""Start-up costs: ``import xfuxi`` and the first forecast's overhead (model load, sha256).

Each import is timed in a fresh interpreter (``python -c``), interleaved with the bare
interpreter and with ``import xarray`` / ``import torch`` for scale, ``--repeat`` times
(median and spread). Then, in this process: loading the shipped model the first time (files
read, sha256 of every file checked against the registry, safetensors, network built) and
again (cached), the sha256 check alone, and the first ``ds.fuxi.forecast()`` call against
the second one on the same data. Results go to ``benchmarks/results/startup.json``.

Usage::

    python benchmarks/bench_startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_SNIPPETS = {
    "python": "pass",
    "import xfuxi": "import xfuxi",
    "import xarray": "import xarray",
    "import torch": "import torch",
    "import xfuxi, xarray (accessor)": "import xfuxi, xarray; xarray.Dataset.fuxi",
}


def _time_import(code: str) -> float:
    probe = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env
    )
    return float(out.stdout.strip().splitlines()[-1])


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--out", default=str(HERE / "results" / "startup.json"))
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    results: dict = {"load_1min_start": os.getloadavg()[0]}
    times: dict[str, list[float]] = {k: [] for k in _SNIPPETS}
    for _ in range(args.repeat):
        for name, code in _SNIPPETS.items():
            times[name].append(_time_import(code))
    results["imports_s"] = {k: _stats(v) for k, v in times.items()}
    print(f"{'in a fresh interpreter':34s} {'median s':>9s} {'min':>7s} {'max':>7s}")
    for k, v in results["imports_s"].items():
        print(f"{k:34s} {v['median']:9.3f} {v['min']:7.3f} {v['max']:7.3f}")

    t = time.perf_counter()
    import xfuxi
    from xfuxi.files import atomic_write_json
    from xfuxi.models.registry import load_model

    xfuxi.set_options(progress=False)
    t_import = time.perf_counter() - t
    t = time.perf_counter()
    load_model("fuxi-hs-t21")
    first_load = time.perf_counter() - t
    t = time.perf_counter()
    load_model("fuxi-hs-t21")
    second_load = time.perf_counter() - t
    folder = ROOT / "xfuxi" / "_data" / "models" / "fuxi-hs-t21"
    t = time.perf_counter()
    size = 0
    for f in sorted(folder.iterdir()):
        if f.is_file():
            data = f.read_bytes()
            size += len(data)
            hashlib.sha256(data).hexdigest()
    sha = time.perf_counter() - t

    truth = xfuxi.held_suarez_split("test", days=3).load()
    init = truth.time.values[[4]]
    t = time.perf_counter()
    truth.fuxi.forecast(model="fuxi-hs-t21", steps=1, init_times=init)
    first_fc = time.perf_counter() - t
    t = time.perf_counter()
    truth.fuxi.forecast(model="fuxi-hs-t21", steps=1, init_times=init)
    second_fc = time.perf_counter() - t
    results.update(
        {
            "in_process_import_xfuxi_s": t_import,
            "load_model_first_s": first_load,
            "load_model_again_s": second_load,
            "sha256_model_files_s": sha,
            "model_files_bytes": size,
            "first_forecast_s": first_fc,
            "second_forecast_s": second_fc,
            "first_forecast_overhead_s": first_fc - second_fc,
            "load_1min_end": os.getloadavg()[0],
        }
    )
    print(
        f"load_model first {first_load:.3f} s, again {second_load:.3f} s; sha256 of the "
        f"{size / 1e6:.1f} MB of model files {sha:.3f} s\n"
        f"ds.fuxi.forecast(steps=1): first call {first_fc:.3f} s, second {second_fc:.3f} s "
        f"(first-call overhead {first_fc - second_fc:.3f} s)"
    )
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
