#!/usr/bin/env bash
# GPU benchmarks of xfuxi in one run (< 5 minutes on one GPU); skips cleanly without a GPU.
#
#   bash benchmarks/gpu.sh            # results in benchmarks/results/gpu-*.json
#
# 1. FLOP efficiency (FLOPs by torch.utils.flop_counter and by hand, against an 8192² matmul
#    measured in the same run) of the shipped model, a wider preset and the paper preset at
#    the paper's 0.25° grid (720 x 1440, batch 1, random weights), forward and
#    forward+backward (the 4DVar gradient: dJ/dx through the model), float32 and bfloat16,
#    with the peak GPU memory of each;
# 2. 48-member ensemble steps per second (shipped model, batched members);
# 3. the benchmark prints everything; nothing here asserts a timing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null
then
    echo "gpu.sh: no CUDA GPU visible to torch; skipped (nothing run)"
    exit 0
fi
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
mkdir -p benchmarks/results
for dtype in float32 bfloat16; do
    "$PY" benchmarks/bench_efficiency.py --device cuda --dtype "$dtype" --repeat 5 --matmul-size 8192 \
        --cases shipped,wide --batches 1,48 --out "benchmarks/results/gpu-efficiency-$dtype.json"
    "$PY" benchmarks/bench_efficiency.py --device cuda --dtype "$dtype" --repeat 3 --matmul-size 8192 \
        --cases paper --grid 720,1440 --batches 1 --checkpoint \
        --out "benchmarks/results/gpu-efficiency-paper-$dtype.json"
done
"$PY" - <<'PYEOF'
import statistics, time, torch
import xfuxi
from xfuxi.files import atomic_write_json

model = xfuxi.load_model("fuxi-hs-t21", device="cuda").eval()
c, (h, w) = model.n_channels, model.grid_shape
mean = torch.as_tensor(model.stats.mean, dtype=torch.float32, device="cuda").view(1, 1, -1, 1, 1)
x = mean + torch.randn(48, 2, c, h, w, device="cuda")
rates = []
with torch.inference_mode():
    model(x)
    for _ in range(5):
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(10):  # 10 steps of 48 members, the pair shifted as a rollout does
            y = model(x)
            x = torch.stack([x[:, 1], y], dim=1)
        torch.cuda.synchronize()
        rates.append(48 * 10 / (time.perf_counter() - t))
out = {"member_steps_per_s": statistics.median(rates), "spread": [min(rates), max(rates)],
       "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30}
print(f"48-member ensemble (fuxi-hs-t21): {out['member_steps_per_s']:.0f} member-steps/s")
atomic_write_json("benchmarks/results/gpu-ensemble.json", out)
PYEOF
echo "gpu.sh: done; results in benchmarks/results/gpu-*.json"
