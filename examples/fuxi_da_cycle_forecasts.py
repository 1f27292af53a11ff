"""Forecasts from a FuXi-DA cycle: the cycling network's analyses against a forecast network's.

``fuxi-da-hs-t21-screened-5frames-k10`` (ten forecast steps in its loss) gives better
forecasts from single analyses than the network it was trained from, but worse analyses,
and it does not hold a cycle (docs/fuxi_da.md). Can the two be used together — one network
cycles, the other only starts the forecasts? This script runs :func:`xfuxi.cycle` with
``--cycling`` (one satellite at 105° E, the imager drawing the network's frames, seed
``12345 + cycle`` as in ``fuxi_da_cycling.py``) and, each cycle, also analyses the same
background and radiances with ``--forecasting``; that analysis is not carried on. From
both analyses of every cycle after ``--skip-days`` (the earlier input: the cycle's previous
analysis) it runs ``--lead-hours`` of forecasts of ``--model`` and scores them against the
truth (area-weighted RMSE of z500, t850, u250 and tracer500, inside the disc and
globally), with the gain of the forecasting network's forecasts over the cycling
network's and its 95 % block-bootstrap interval over the cycles (blocks of 4).

    python examples/fuxi_da_cycle_forecasts.py [--split validation] [--days 11]

Writes ``--out`` (JSON, atomically) and prints the table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from fuxi_da_cycling import SCORED, load_forecast_model, network_for, region_rmse, scoring
from fuxi_da_experiments import block_bootstrap_gain
from fuxi_da_variants import write_table

import xfuxi
from xfuxi.assimilation.da_cycle import FuXiDAMethod
from xfuxi.data.channels import channel_name, stack
from xfuxi.datasets import held_suarez_split
from xfuxi.models.rollout import advance_pair


class TwoNetworks(FuXiDAMethod):
    """Cycles with one network; each cycle also keeps the pair another network's analysis of
    the same background and radiances would start a forecast from (not carried on)."""

    def __init__(self, cycling, forecasting) -> None:
        super().__init__(cycling)
        self.other = FuXiDAMethod(forecasting)
        if tuple(self.other.model.frames) != tuple(self.model.frames):
            raise SystemExit(
                f"the networks take different frames: {list(self.model.frames)} and "
                f"{list(self.other.model.frames)}"
            )
        self.pairs: dict[pd.Timestamp, tuple[torch.Tensor, torch.Tensor]] = {}

    def analyse(self, state, slots, *, model, generator):
        res = super().analyse(state, slots, model=model, generator=generator)
        other = self.other.analyse(state, slots, model=model, generator=generator)
        t = pd.Timestamp(slots[0]["time"].values[0])
        self.pairs[t] = (res.state["pair"].clone(), other.state["pair"].clone())
        return res


def rollout(model, pair: torch.Tensor, steps: int) -> torch.Tensor:
    """States ``(steps, B, C, H, W)`` of forecasts from pairs ``(B, 2, C, H, W)``."""
    out = []
    with torch.no_grad():
        for _ in range(steps):
            nxt = model(pair)
            out.append(nxt)
            pair = advance_pair(pair, nxt)
    return torch.stack(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fuxi-hs-t21")
    p.add_argument("--cycling", default="fuxi-da-hs-t21-screened-5frames")
    p.add_argument("--forecasting", default="fuxi-da-hs-t21-screened-5frames-k10")
    p.add_argument("--split", default="validation", choices=("test", "validation"),
                   help="validation: for choices; test: to report")  # fmt: skip
    p.add_argument("--days", type=float, default=11.0, help="days of cycling")
    p.add_argument("--skip-days", type=float, default=2.0, help="cycles not scored at first")
    p.add_argument("--lead-hours", type=int, nargs="+", default=[0, 24, 48, 72])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/fuxi_da_cycle_forecasts_validation.json")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if any(h < 0 or h % 6 for h in a.lead_hours):
        p.error(f"--lead-hours must be multiples of 6 h, >= 0; got {a.lead_hours}")
    xfuxi.set_options(progress=False)
    tic = time.perf_counter()
    model = load_forecast_model(a.model, None)
    method = TwoNetworks(a.cycling, a.forecasting)
    n_cycles = int(round(a.days * 4))
    steps = max(a.lead_hours) // 6
    truth = held_suarez_split(a.split, days=int(np.ceil(a.days + steps / 4)) + 2).load()
    xfuxi.cycle(
        truth,
        network_for((105.0,), False, method.model.frames),
        method=method,
        model=model,
        config=xfuxi.CycleConfig(n_cycles=n_cycles, lead_steps=2),
        progress=False,
    )
    t_cycle = time.perf_counter() - tic
    times = pd.DatetimeIndex(truth["time"].values)
    step = pd.Timedelta(model.timestep)
    cycle_times = pd.date_range(times[0] + 3 * step, periods=n_cycles, freq=step)
    first = int(round(a.skip_days * 4))
    scored = [  # cycles analysed (not left without radiances) whose forecasts the truth covers
        c
        for c in range(first, n_cycles)
        if cycle_times[c] in method.pairs and cycle_times[c] + steps * step <= times[-1]
    ]
    if not scored:
        raise SystemExit(
            f"no cycle to score: the run has {n_cycles} cycles, --skip-days {a.skip_days:g} "
            f"leaves out the first {first}, and a forecast of {steps} steps must end within "
            "the truth: give more --days or a smaller --skip-days"
        )
    data = stack(truth, model.channels).transpose("time", "channel", "latitude", "longitude")
    data = np.asarray(data.values, dtype="float64")
    index = {t: i for i, t in enumerate(times)}
    idx, weights, regions = scoring(truth, model)
    labels = {"cycling": a.cycling, "forecasting": a.forecasting}
    mse = {k: {} for k in labels}  # label -> (lead, region) -> (cycles, scored channels)
    for k, which in zip(labels, (0, 1), strict=True):
        pairs = torch.stack([method.pairs[cycle_times[c]][which] for c in scored]).float()
        states = torch.cat([pairs[None, :, 1], rollout(model, pairs, steps)]).double().numpy()
        for h in a.lead_hours:
            j = h // 6
            ver = np.stack([data[index[cycle_times[c] + j * step]] for c in scored])
            for region, mask in regions.items():
                err = region_rmse(states[j] - ver, weights, mask)[:, idx]
                mse[k][(h, region)] = err**2
    rows = []
    for h in a.lead_hours:
        for region in regions:
            for n, c in enumerate(SCORED):
                m_c, m_f = mse["cycling"][(h, region)][:, n], mse["forecasting"][(h, region)][:, n]
                g, lo, hi = block_bootstrap_gain(m_f, m_c)
                rows.append({
                    "lead": f"{h}h", "region": region, "channel": channel_name(c),
                    "cycling network": float(f"{np.sqrt(m_c.mean()):.4g}"),
                    "forecasting network": float(f"{np.sqrt(m_f.mean()):.4g}"),
                    "forecasting vs cycling [95% CI]":
                        f"{100 * g:+.1f}% [{100 * lo:+.1f}, {100 * hi:+.1f}]",
                })  # fmt: skip
    result = {
        "settings": vars(a),
        "networks": labels,
        "cycles": n_cycles,
        "scored_cycles": len(scored),
        "first_scored": str(cycle_times[scored[0]]),
        "wall_time_s": {"cycle": t_cycle, "total": time.perf_counter() - tic},
        "rows": rows,
    }
    write_table(a.out, result)


if __name__ == "__main__":
    main()
