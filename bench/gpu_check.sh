#!/usr/bin/env bash
# The GPU measurements of issues #12 and #13 that the 2-core CPU machine cannot make, as one prepared run.
#
#   OUT=gpu_out bash bench/gpu_check.sh [MINUTES]
#
# Run in the repository root of a machine with one CUDA GPU (the project's device machine: python3 there has
# torch 2.11 with CUDA, numpy, scipy, pyyaml, tqdm, pillow; nothing else of requirements.txt is needed for these
# steps). MINUTES (default 9) bounds the whole run; each step gets what is left, and a step cut short by the
# budget still leaves the rows it finished (rerun with the same DATA and OUT: `--reuse` skips finished runs).
#   1. training throughput, seed-style loop vs the trainer, on the GPU (bench/train_throughput.py);
#   2. one full-scale simulated subject (eegdecode simulate --preset full, then prepare), about 4 min of CPU;
#   3. the recipes that need a GPU at full scale (single-trial deep encoders), one seed, epochs capped, plus
#      multiblur, into OUT/recipes (bench/recipes_table.py; table.md / table.json copied to OUT).
# Nothing is claimed until it has run: the output of each step is its own log under OUT.
set -uo pipefail
OUT=${OUT:-gpu_out}
MINUTES=${1:-9}
PY=${PYTHON:-python3}
DATA=${DATA:-/tmp/eegdecode_full1}
PRESET=${PRESET:-full}  # PRESET=tiny DEVICE=cpu: a smoke run of this script on a CPU
DEVICE=${DEVICE:-cuda}
CAPS=${CAPS:-"nervformer_v2=10 atm_s=10 nice=30 multiblur=60"}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
mkdir -p "$OUT"
start=$(date +%s)
left() { echo $((MINUTES * 60 - ($(date +%s) - start))); }

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '-')"
    git rev-parse HEAD 2>/dev/null || true
} >"$OUT/machine.txt" 2>&1

# 1. throughput (a few minutes: it simulates its own subject first)
timeout 240 $PY bench/train_throughput.py --device "$DEVICE" --model NervformerV2 ATMS_50 \
    --steps 8 --batch-size 1024 --repeats 3 --json "$OUT/throughput.json" >"$OUT/throughput.log" 2>&1
echo "throughput: exit $? ($(left) s left)" >>"$OUT/machine.txt"

# 2. one full-scale subject
if [ ! -e "$DATA/simulation.json" ]; then
    timeout $(($(left) - 60)) $PY -m eegdecode simulate --preset "$PRESET" --subjects 1 --no-images --dtype float32 \
        --out "$DATA" >"$OUT/data.log" 2>&1 &&
        timeout $(($(left) - 60)) $PY -m eegdecode prepare --data-root "$DATA" >>"$OUT/data.log" 2>&1
    echo "data: exit $? ($(left) s left)" >>"$OUT/machine.txt"
fi

# 3. the GPU-bound recipes at full scale, one seed, until the budget is spent
if [ "$(left)" -gt 90 ]; then
    timeout $(($(left) - 30)) $PY bench/recipes_table.py --data-root "$DATA" --preset "$PRESET" --subjects 1 \
        --recipes nervformer_v2 atm_s nice multiblur --seeds 0 --epochs-cap 200 --cap-for $CAPS \
        --device "$DEVICE" --reuse --drop-checkpoints --out "$OUT/recipes" >"$OUT/recipes.log" 2>&1
    echo "recipes: exit $? ($(left) s left)" >>"$OUT/machine.txt"
    $PY bench/recipes_table.py --data-root "$DATA" --preset "$PRESET" --subjects 1 \
        --recipes nervformer_v2 atm_s nice multiblur --seeds 0 --epochs-cap 200 --cap-for $CAPS --table-only --out "$OUT/recipes" \
        >>"$OUT/recipes.log" 2>&1
    cp "$OUT/recipes/table.md" "$OUT/recipes/table.json" "$OUT/" 2>/dev/null
fi
cat "$OUT/machine.txt"
