"""The scripts of ``examples/`` and ``benchmarks/`` still start: each answers ``--help`` with
its usage and does no work (one of them ran its whole profile on ``--help`` and rewrote a
results file). The scripts themselves are run by hand (their commands are in the docs);
this keeps them from rotting against the package between those runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: every script of the two folders but their helper modules (``_*.py``)
SCRIPTS = sorted(
    p.relative_to(ROOT).as_posix()
    for folder in ("examples", "benchmarks")
    for p in (ROOT / folder).glob("*.py")
    if not p.name.startswith("_")
)

# one interpreter for all of them: the imports are shared, so the whole check takes seconds
_DRIVER = r"""
import contextlib, io, json, os, runpy, sys
out = {}
for path in json.loads(sys.argv[1]):
    sys.argv = [path, "--help"]
    sys.path[0] = os.path.dirname(os.path.abspath(path))  # as `python path` has it (siblings)
    text = io.StringIO()
    try:
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            runpy.run_path(path, run_name="__main__")
        code = "returned without exiting"
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:  # noqa: BLE001 - reported per script
        code = f"{type(exc).__name__}: {exc}"
    out[path] = [code, text.getvalue()[:300]]
print(json.dumps(out))
"""


def test_every_script_answers_help_with_its_usage_and_does_no_work(tmp_path):
    assert len(SCRIPTS) > 30  # the folders were found
    before = {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").iterdir()}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps(SCRIPTS)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    results = json.loads(run.stdout.strip().splitlines()[-1])
    bad = {p: r for p, r in results.items() if r[0] not in (0, None) or "usage:" not in r[1]}
    assert not bad, bad
    after = {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").iterdir()}
    assert after == before  # nothing was written
