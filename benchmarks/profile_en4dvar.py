"""Where the En4DVar analysis spends its time: cProfile around ``bench_en4dvar.py``.

Usage::

    python benchmarks/profile_en4dvar.py        # prints and writes results/en4dvar_profile.txt
    python benchmarks/profile_en4dvar.py --threads 1 --top 40 --out /tmp/profile.txt

The benchmark runs as usual (its own figures go to a temporary file, not to
``results/en4dvar.json``, since profiling slows it down); the 25 functions with the most own
time are printed and written next to the other results.
"""

from __future__ import annotations

import argparse
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--top", type=int, default=25,
                        help="functions listed, by own time (default 25)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE / "results" / "en4dvar_profile.txt",
                        help="its file (default results/en4dvar_profile.txt)")  # fmt: skip
    args = parser.parse_args()
    if args.threads < 1 or args.top < 1:
        parser.error("--threads and --top must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        sys.argv = ["bench_en4dvar.py", "--threads", str(args.threads),
                    "--out", str(Path(tmp) / "r.json")]  # fmt: skip
        profile = cProfile.Profile()
        profile.enable()
        runpy.run_path(str(HERE / "bench_en4dvar.py"), run_name="__main__")
        profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(args.top)
    print(text.getvalue())
    atomic_write_bytes(args.out, text.getvalue().encode())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
