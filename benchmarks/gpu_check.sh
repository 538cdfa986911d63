#!/usr/bin/env bash
# One pass over the CUDA path on a GPU machine, most important first, each step
# under its own time limit so that a slow step cannot hide the others. The default
# steps (1-3) fit in about 8 minutes (limits 150 + 270 + 60 s, plus start-up):
#   1. benchmark sections 3-4 at the paper's network and batch, and section 5 (one
#      paper-profile run, float32: images/s, model FLOP utilisation, projected grid
#      one run at a time);
#   2. benchmark section 6: the quick profile's cells under `full` (every method, 3
#      orders) grouped vs one at a time, then paper-profile Fashion-MNIST groups of
#      1, 4, 11 and 22 runs (one epoch per task, to fit the budget) and the paper
#      grids projected by sweep.estimate at the best group size;
#   3. `sweep --profile paper --dry-run`: the sweep's own projection of the grid.
# Optional steps (minutes each; name them in STEPS):
#   4. every method under every regime at the smoke profile, 3 orders per group;
#   5. the paper profile's six methods on Fashion-MNIST under `full`, order 0;
#   6. 8 paper-profile runs (`full`, finetune): one group of 8, then groups of 2
#      in 4 processes (--group-size 2 --jobs 4).
# Usage: OUT=folder [PY=python3] [DEVICE=cuda] [STEPS="1 2 3"] benchmarks/gpu_check.sh
# For a rehearsal on a CPU (DEVICE=cpu: the benchmark's CUDA-only parts run with
# --rehearse), SCALE ("--set k=v ...") shrinks the paper runs, STEP_SET the
# benchmark's sections 3-4 (default: the paper's network and batch) and QUICK_SET
# section 6's quick cells (default: none).
set -uo pipefail
OUT=${OUT:-benchmarks/gpu-results}
PY=${PY:-python3}
SCALE=${SCALE:-}
STEP_SET=${STEP_SET:---set width=64 --set image_size=32 --set batch_size=256}
QUICK_SET=${QUICK_SET:-}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-1 2 3}
REHEARSE=$([[ $DEVICE == cuda* ]] || echo --rehearse)
RESULTS=$(mktemp -d)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}

step() {  # step NUMBER SECONDS NAME COMMAND...: if asked for, run with a limit, log its time
    local number=$1 limit=$2 name=$3 start=$SECONDS
    shift 3
    [[ " $STEPS " == *" $number "* ]] || return 0
    echo "=== $name"
    timeout "$limit" "$@"
    echo "=== $name: rc=$? after $((SECONDS - start)) s"
}
paper_set() {  # SCALE's "--set k=v" pairs as benchmark.py's "--paper-set k=v"
    echo "${SCALE//--set/--paper-set}"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
    $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    # shellcheck disable=SC2046,SC2086
    step 1 150 "benchmark sections 3-5" $PY benchmarks/benchmark.py --device "$DEVICE" \
        --sections 3 4 5 $REHEARSE $STEP_SET $(paper_set) --output "$OUT/benchmark.json"
    # shellcheck disable=SC2046,SC2086
    step 2 270 "benchmark section 6" $PY benchmarks/benchmark.py --device "$DEVICE" \
        --sections 6 $REHEARSE $QUICK_SET --group-regimes full --run-repeats 1 \
        --group-sizes 1 4 11 22 --group-set epochs=1 $(paper_set) --output "$OUT/group.json"
    # shellcheck disable=SC2086
    step 3 60 "paper dry run" $PY -m cl_regimes sweep --profile paper --device "$DEVICE" \
        --dry-run --results "$RESULTS" $SCALE
    step 4 180 "smoke grid, 3 orders per group" $PY -m cl_regimes sweep --profile smoke \
        --device "$DEVICE" --orders 0 1 2 --results "$RESULTS"
    # shellcheck disable=SC2086
    step 5 240 "paper methods" $PY -m cl_regimes sweep --profile paper --device "$DEVICE" \
        --datasets fashion_mnist --regimes full --orders 0 --results "$RESULTS" $SCALE
    # shellcheck disable=SC2086
    step 6 200 "8 runs, one group" $PY -m cl_regimes sweep --profile paper \
        --device "$DEVICE" --datasets fashion_mnist --regimes full --methods finetune \
        --orders 1 2 3 4 5 6 7 8 --results "$RESULTS/group8" $SCALE
    # shellcheck disable=SC2086
    step 6 200 "8 runs, groups of 2 in 4 processes" $PY -m cl_regimes sweep --profile paper \
        --device "$DEVICE" --datasets fashion_mnist --regimes full --methods finetune \
        --orders 1 2 3 4 5 6 7 8 --group-size 2 --jobs 4 --results "$RESULTS/jobs4" $SCALE
} 2>&1 | tee "$OUT/log.txt"
tar -czf "$OUT/records.tar.gz" -C "$RESULTS" .
