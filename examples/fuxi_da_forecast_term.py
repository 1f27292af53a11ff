"""The forecast term of FuXi-DA's loss: fine-tune the shipped ASSI model with K = 0 and K = 1.

Each run continues ``fuxi-da-hs-t21`` for 80 AdamW steps (batch 4, lr 5e-4, seed 1, 30 days of
the world's train split, 6-hour backgrounds), with ``forecast_steps`` K = 0 or K = 1, and
saves the network; score both with ``examples/fuxi_da_experiments.py --assi <dir>`` on the
same test times and compare their ASSI rows (benchmarks/results/fuxi_da_forecast_term.json).

    python examples/fuxi_da_forecast_term.py 0 runs/fuxi-da-k0
    python examples/fuxi_da_forecast_term.py 1 runs/fuxi-da-k1
"""

from __future__ import annotations

import sys
import time

from xfuxi.datasets import held_suarez_split
from xfuxi.models.fuxi_da import load_da_model, save_da_model
from xfuxi.models.registry import load_model
from xfuxi.training.da import DAConfig, train_da


def main() -> None:
    k, out = int(sys.argv[1]), sys.argv[2]
    t = time.time()
    truth = held_suarez_split("train", days=30)
    model = load_model("fuxi-hs-t21")
    net = load_da_model("fuxi-da-hs-t21")
    cfg = DAConfig(steps=80, batch_size=4, lr=5e-4, leads=(1,), forecast_steps=k, seed=1,
                   max_minutes=7.0, log_every=10, name=f"fuxi-da-k{k}")  # fmt: skip
    net, hist = train_da(truth, model, config=cfg, network=net, progress=False)
    save_da_model(net, out, overwrite=True)
    print(f"K={k}: {hist['step'][-1]} steps in {time.time() - t:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
