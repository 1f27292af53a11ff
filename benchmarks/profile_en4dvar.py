"""Where the En4DVar analysis spends its time: cProfile around ``bench_en4dvar.py``.

Usage::

    python benchmarks/profile_en4dvar.py        # prints and writes results/en4dvar_profile.txt

The benchmark runs as usual (its own figures go to a temporary file, not to
``results/en4dvar.json``, since profiling slows it down); the 25 functions with the most own
time are printed and written next to the other results.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import runpy
import sys
import tempfile
from pathlib import Path

from xfuxi.files import atomic_write_bytes

HERE = Path(__file__).resolve().parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sys.argv = ["bench_en4dvar.py", "--threads", "2", "--out", str(Path(tmp) / "r.json")]
        profile = cProfile.Profile()
        profile.enable()
        runpy.run_path(str(HERE / "bench_en4dvar.py"), run_name="__main__")
        profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
    print(text.getvalue())
    out = HERE / "results" / "en4dvar_profile.txt"
    atomic_write_bytes(out, text.getvalue().encode())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
