"""FuXi-DA ablations: networks trained the same way with one input or loss term changed.

Every variant is trained with ``xfuxi train-da`` at the same budget (``--train-days`` of the
world's train split, ``--steps`` AdamW steps of 4 samples, 6-hour backgrounds, one
satellite at 105° E, frames at −2, 0 and +2 h, seed 0), then scored by
``examples/fuxi_da_experiments.py`` on ``--split`` against the CORR network of the same
budget (``--times`` analysis times, forecasts to ``--forecast-steps`` 6-hour steps):

* ``ASSI``: radiances, mask, zenith angle, position and time, and the departures from the
  background through the nominal operator (``--departure-input``);
* ``no departures``: the paper's inputs (radiances without the departures);
* ``no zenith``: without the zenith angle;
* ``no zenith or position``: without the zenith angle, the position or the time;
* ``clear only``: cloudy pixels (the truth's flag) dropped in training and at analysis;
* ``K = 1``: the loss with one 6-hour forecast step through the frozen model.

A variant whose network exists in ``--runs`` is not trained again (an interrupted training
resumes). ``--variants`` picks some (comma-separated); two processes can share the work: a
variant another process is training (its ``.lock`` file, holding that process's id) is
waited for; a lock left by a process that died is taken over. Writes each
variant's scores to ``RUNS/NAME-SPLIT.json`` and the table to ``--out``::

    python examples/fuxi_da_ablations.py --split validation \\
        --out benchmarks/results/fuxi_da_ablations_validation.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from xfuxi.files import atomic_write_json

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "CORR": ["--no-observations"],
    "ASSI": ["--departure-input"],
    "no departures": [],
    "no zenith": ["--departure-input", "--no-zenith-input"],
    "no zenith or position": ["--departure-input", "--no-zenith-input", "--no-position-input"],
    "clear only": ["--departure-input", "--clear-only"],
    "K = 1": ["--departure-input", "--forecast-steps", "1"],
}
CHANNELS = [
    "geopotential@500", "temperature@500", "temperature@850", "passive_tracer@500",
    "passive_tracer@700", "u_component_of_wind@250",
]  # fmt: skip


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def train(name: str, runs: Path, a: argparse.Namespace) -> Path:
    out = runs / slug(name)
    lock = runs / f"{slug(name)}.lock"
    while not (out / "model").is_dir():
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:  # another process trains it, unless it died holding the lock
            if not _holder_alive(lock):
                lock.unlink(missing_ok=True)
            else:
                time.sleep(10)
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        try:
            _train(name, out, a)
        finally:
            lock.unlink()
    return out / "model"


def _holder_alive(lock: Path) -> bool:
    """Whether the process whose pid ``lock`` holds is still running (an empty or unreadable
    lock file counts as held: its writer may not have written the pid yet)."""
    try:
        pid = int(lock.read_text() or "0")
    except (OSError, ValueError):
        return True
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _train(name: str, out: Path, a: argparse.Namespace) -> None:
    cmd = [
        sys.executable, "-m", "xfuxi.cli", "--no-progress", "train-da",
        "--model", "fuxi-hs-t21", "--train-days", str(a.train_days), "--validation-days", "0",
        "--steps", str(a.steps), "--batch-size", "4", "--lr", "2e-3", "--leads", "1",
        "--forecast-steps", "0", "--width", "24", "--scales", "3", "--satellites", "105",
        "--frames", "-2", "0", "2", "--checkpoint-every", "250", "--log-every", "500",
        "--seed", "0", "--name", slug(name), "--out", str(out), *VARIANTS[name],
    ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"trained {name!r} in {time.perf_counter() - t0:.0f} s", flush=True)


def score(name: str, model: Path, corr: Path, runs: Path, a: argparse.Namespace) -> dict:
    out = runs / f"{slug(name)}-{a.split}.json"
    if not out.exists():
        cmd = [
            sys.executable, str(HERE / "fuxi_da_experiments.py"), "--split", a.split,
            "--assi", str(model), "--corr", str(corr), "--times", str(a.times),
            "--forecast-steps", str(a.forecast_steps), "--out", str(out),
        ]  # fmt: skip
        if name == "clear only":
            cmd.append("--clear-only")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", default="validation", choices=("validation", "test"))
    p.add_argument("--runs", default="runs/fuxi-da-ablations")
    p.add_argument(
        "--variants",
        default=",".join(v for v in VARIANTS if v != "K = 1"),
        help="comma-separated names (default: all but 'K = 1', whose training costs about "
        "three times as much)",
    )
    p.add_argument("--train-days", type=int, default=160)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--times", type=int, default=24)
    p.add_argument("--forecast-steps", type=int, default=4)
    p.add_argument("--out", default=None, help="the table (JSON); default: print only")
    a = p.parse_args()
    names = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    runs = Path(a.runs)
    runs.mkdir(parents=True, exist_ok=True)
    corr = train("CORR", runs, a)
    rows = []
    for name in names:
        if name == "CORR":
            continue
        res = score(name, train(name, runs, a), corr, runs, a)
        for lead in ("0h", f"{6 * a.forecast_steps}h"):
            for region in ("inside", "outside", "global"):
                row = {"variant": name, "lead": lead, "region": region}
                for ch in CHANNELS:
                    g = res["gains"].get(f"ASSI/CORR|{region}|{ch}|{lead}")
                    row[f"{ch} vs CORR %"] = None if g is None else round(100 * g["gain"], 2)
                rows.append(row)
                print(json.dumps(row), flush=True)
    if a.out:
        atomic_write_json(a.out, {
            "settings": {k: v for k, v in vars(a).items() if k != "out"},
            "variants": {n: VARIANTS[n] for n in names},
            "rows": rows,
        })  # fmt: skip
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
