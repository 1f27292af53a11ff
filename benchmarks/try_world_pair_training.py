"""Teach the forecast model to move an error that sits on both input times (issue 22; tried).

``benchmarks/diagnose_error_persistence.py`` found that a perturbation put on both input
times of the model's pair — as a cycle's consecutive analyses share their error — stays
where it is in the model's forecasts (pattern correlation with itself 0.85–0.94 after 24
h), while the world carries it with the flow (0.23–0.56). The model infers motion from the
difference of its two inputs, and that difference holds no trace of the error.

This experiment fine-tunes the cycling model (``fuxi-hs-t21-cycling``) with samples that
show it what the world does with such an error:

1. ``generate``: on the train split, at ``--starts`` times (days 5–55) the world's state
   at t0 gets ``--members`` balanced perturbations ``δ = scale · (x(t_a) − x(t_b))`` (two
   other states of the first 30 days, as :func:`xfuxi.world.perturbed.world_perturbed_runs`
   draws them), and the world runs 8 steps (48 h) from each. A sample's input pair is
   ``(x(t0 − 6 h) + δ_p, x(t0) + δ_p)`` (``δ_p`` the perturbation on the pressure levels,
   the same on both times), its targets the perturbed world's states at +6 … +48 h.
2. ``finetune``: 300 steps (batch 8, 8-step rollouts, AdamW, learning rate 5·10⁻⁵ with 10
   warm-up steps and a cosine decay) from ``fuxi-hs-t21-cycling``, its own objective on the
   train split's truth (inputs perturbed on both times by 0.15 (x_a − x_b), the true states
   as targets) for half of each batch and these samples for the other half (``--share``);
   ``--share 0`` is the control: the same steps with the shipped objective alone.

Then, on the validation split, ``diagnose_error_persistence.py --model DIR`` (how each model
carries the perturbations), ``tune_drift_model.py --models`` (skill and drift) and a cycle::

    python benchmarks/try_world_pair_training.py generate --out runs/pairs/samples.npz
    python benchmarks/try_world_pair_training.py finetune --samples runs/pairs/samples.npz \\
        --share 0.5 --out runs/pairs/world
    python benchmarks/try_world_pair_training.py finetune --samples runs/pairs/samples.npz \\
        --share 0 --out runs/pairs/control
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

import xfuxi
from xfuxi.data.channels import stack
from xfuxi.files import atomic_write_json
from xfuxi.models.checkpoint import save_model
from xfuxi.training.forecast import _rollout_loss, _sample_starts, input_perturbations
from xfuxi.training.losses import forecast_loss
from xfuxi.training.samples import stacked_states
from xfuxi.verify.weights import area_weights
from xfuxi.world.dynamics import get_model
from xfuxi.world.perturbed import states_at
from xfuxi.world.simulator import SPLITS, pressure_dataset, world_config

BASE = "fuxi-hs-t21-cycling"
STEPS_AHEAD = 8


def generate(a: argparse.Namespace) -> None:
    import jax
    from dinosaur import time_integration

    t_start = time.time()
    spec = SPLITS["train"]
    config = world_config(days=spec["days"], seed=spec["seed"], start=spec["start"])
    per_day = 24 // config["output_hours"]
    rng = np.random.default_rng(a.seed)
    offsets = np.linspace(5 * per_day, 55 * per_day, a.starts).astype(int)
    pool = 30 * per_day
    refs = [[rng.choice(pool, size=2, replace=False) for _ in range(a.members)] for _ in offsets]
    wanted = sorted({int(o) for o in offsets} | {int(o) - 1 for o in offsets}
                    | {int(r) for rr in refs for ab in rr for r in ab})  # fmt: skip
    states = states_at(config, wanted, False)
    model = get_model(config)
    traj = jax.jit(time_integration.trajectory_from_step(
        model.step, outer_steps=STEPS_AHEAD, inner_steps=model.inner_steps,
        post_process_fn=model.post))  # fmt: skip
    fm = xfuxi.load_model(BASE)
    levels = np.asarray(config["levels"], "f8")
    times = np.arange(STEPS_AHEAD + 2).astype("datetime64[ns]")  # labels only

    def channels(arrays: dict) -> np.ndarray:
        ds = pressure_dataset(arrays, times[: len(next(iter(arrays.values())))], levels,
                              model.latitude, model.longitude)  # fmt: skip
        arr = stack(ds, fm.channels).transpose("time", "channel", "latitude", "longitude")
        return np.asarray(arr.values, "f4")

    inputs, targets = [], []
    for o, rr in zip(offsets, refs, strict=True):
        earlier = channels({k: np.asarray(v)[None] for k, v in model.post(states[o - 1]).items()})
        plain = channels({k: np.asarray(v)[None] for k, v in model.post(states[o]).items()})
        for ra, rb in rr:
            delta = jax.tree.map(lambda x, y: a.scale * (x - y), states[int(ra)], states[int(rb)])
            start = jax.tree.map(lambda x, d: x + d, states[o], delta)
            first = {k: np.asarray(v)[None] for k, v in model.post(start).items()}
            _, rest = traj(start)
            run = channels({k: np.concatenate([first[k], np.asarray(rest[k])]) for k in first})
            dp = run[0] - plain[0]
            inputs.append(np.stack([earlier[0] + dp, run[0]]))
            targets.append(run[1:])
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, inputs=np.stack(inputs), targets=np.stack(targets), offsets=offsets)
    tmp.replace(out)
    print(f"{len(inputs)} samples in {time.time() - t_start:.0f} s: {out}")


def finetune(a: argparse.Namespace) -> None:
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xfuxi.set_options(progress=False)
    fm = xfuxi.load_model(BASE)
    fm.train()
    train = xfuxi.held_suarez_split("train", days=a.train_days)
    data_np, coords = stacked_states(train, fm.channels, "training")
    data = torch.from_numpy(data_np)
    starts = _sample_starts(coords["time"].values, fm.timestep, STEPS_AHEAD)
    w = torch.as_tensor(np.asarray(area_weights(coords["latitude"].values), "f4")).view(1, 1, -1, 1)
    n_world = int(round(a.share * a.batch_size))
    if n_world:
        s = np.load(a.samples)
        inputs = torch.from_numpy(s["inputs"])
        targets = torch.from_numpy(s["targets"])
    opt = torch.optim.AdamW(fm.net.parameters(), lr=a.lr, weight_decay=0.01)
    rng = np.random.default_rng(a.seed)
    history, running, running_world, t0 = [], [], [], time.time()
    for step in range(a.steps):
        warm = min(1.0, (step + 1) / 10)
        cos = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / a.steps))
        for g in opt.param_groups:
            g["lr"] = a.lr * warm * cos
        rows = rng.choice(starts, size=a.batch_size - n_world, replace=False)
        pert = input_perturbations(data, rows.size, 0.15, a.seed, step)
        loss = _rollout_loss(fm, fm, data, rows, STEPS_AHEAD, w, None, 0, "l1", pert)
        loss = loss * (rows.size / a.batch_size)
        if n_world:
            pick = torch.as_tensor(rng.choice(len(inputs), size=n_world, replace=False))
            prev, curr = inputs[pick, 0], inputs[pick, 1]
            part = 0.0
            for k in range(STEPS_AHEAD):
                pred = fm(torch.stack([prev, curr], 1))
                part = part + forecast_loss(fm, pred, targets[pick, k], w)
                prev, curr = curr, pred
            running_world.append(float(part.detach()) / STEPS_AHEAD)
            loss = loss + part / STEPS_AHEAD * (n_world / a.batch_size)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(fm.net.parameters(), 1.0)
        opt.step()
        running.append(float(loss.detach()))
        if (step + 1) % 25 == 0:
            history.append({"step": step + 1, "loss": float(np.mean(running)),
                            "seconds": round(time.time() - t0, 1)})  # fmt: skip
            if running_world:  # the world samples' part alone
                history[-1]["world_loss"] = float(np.mean(running_world))
            print(history[-1], flush=True)
            running, running_world = [], []
    fm.eval()
    meta = {"base": BASE, "share": a.share, "steps": a.steps, "lr": a.lr, "seed": a.seed,
            "batch_size": a.batch_size, "train_days": a.train_days,
            "samples": str(a.samples) if n_world else None,
            "command": "python benchmarks/try_world_pair_training.py finetune"}  # fmt: skip
    save_model(fm, a.out, metadata={"try_world_pair_training": json.dumps(meta)})
    atomic_write_json(Path(a.out) / "history.json", {"settings": meta, "history": history})
    print(f"saved {a.out} after {time.time() - t0:.0f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--starts", type=int, default=40)
    g.add_argument("--members", type=int, default=4)
    g.add_argument("--scale", type=float, default=0.15)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True)
    f = sub.add_parser("finetune")
    f.add_argument("--samples", default=None)
    f.add_argument("--share", type=float, default=0.5)
    f.add_argument("--steps", type=int, default=300)
    f.add_argument("--batch-size", type=int, default=8)
    f.add_argument("--lr", type=float, default=5e-5)
    f.add_argument("--seed", type=int, default=41)
    f.add_argument("--train-days", type=int, default=None, help="of the train split (all)")
    f.add_argument("--threads", type=int, default=1)
    f.add_argument("--out", required=True)
    a = p.parse_args()
    if a.cmd == "finetune" and a.share > 0 and not a.samples:
        p.error("--share > 0 needs --samples")
    generate(a) if a.cmd == "generate" else finetune(a)


if __name__ == "__main__":
    main()
