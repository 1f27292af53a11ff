"""The end-to-end demonstration: ``xfuxi demo``."""

from __future__ import annotations

import argparse

import pandas as pd

from .common import OVERWRITE, arg, check_output_outside, command, int_at_least, positive_int

__all__: list[str] = []


#: the parser of ``--da-times``: an integer >= 0 (0 skips the stage)
_count = int_at_least(0, "count")


@arg("--output", "--out", dest="output", default="demo_output",
     help="folder for figures and tables (default demo_output)")  # fmt: skip
@arg("--test-days", type=positive_int, default=60,
     help="length of the test period, days (default 60)")  # fmt: skip
@arg("--lead-days", type=positive_int, default=10, help="forecast length, days (default 10)")
@arg("--n-init", type=positive_int, default=20,
     help="number of initial times scored (default 20)")  # fmt: skip
@arg(
    "--model",
    default="fuxi-hs-t21-cascade",
    help="pretrained model or cascade name, or checkpoint directory (default fuxi-hs-t21-cascade)",
)
@arg("--members", type=positive_int, default=48, help="FuXi-ENS ensemble size (default 48)")
@arg("--da-times", type=_count, default=8,
     help="analysis times of the FuXi-DA stage (0: skip it; default 8)")  # fmt: skip
@arg("--overwrite", **OVERWRITE)
@command("demo", "run the whole FuXi loop on the embedded Held–Suarez world")
def _demo(args: argparse.Namespace) -> int:
    # torch-backed: imported when the command runs (the CLI starts without torch)
    from ..demo import run_demo

    check_output_outside(args.output, [])  # a read-only place: refused before any work
    result = run_demo(
        args.output,
        test_days=args.test_days,
        lead_days=args.lead_days,
        n_init=args.n_init,
        model=args.model,
        n_members=args.members,
        n_times_da=args.da_times,
        overwrite=args.overwrite,
    )
    with pd.option_context("display.width", 160, "display.max_columns", 20,
                           "display.precision", 3):  # fmt: skip
        for name, table in result.tables.items():
            if table.index.name == "lead_h":
                # columns "system:channel": one block per channel, systems side by side
                step = max(1, len(table) // 12)
                channels = dict.fromkeys(str(c).split(":", 1)[1] for c in table.columns)
                for channel in channels:
                    block = table[[c for c in table.columns if str(c).endswith(":" + channel)]]
                    block = block.rename(columns=lambda c: str(c).split(":", 1)[0])
                    print(f"\n== {name}: {channel} ==")
                    print(block.iloc[::step].to_string())
            else:
                print(f"\n== {name} ==")
                print(table.to_string())
    for name, path in result.figures.items():
        print(f"figure {name}: {path}")
    return 0
