#!/usr/bin/env bash
# One pass over the CUDA path on a GPU machine, most important first, each step
# under its own time limit so that a slow step cannot hide the others:
#   1. benchmark sections 3-4 at paper scale and section 5 (one paper-profile run:
#      images/s, model FLOP utilisation, projected grid);
#   2. the paper profile's six methods on Fashion-MNIST under `full`, order 0;
#   3. `sweep --profile paper --dry-run`: the calibrated estimate of the grid;
#   4. every method under every regime at the smoke profile, 4 runs packed on the GPU;
#   5. packing: 8 paper-profile runs (`full`, finetune) with --jobs 1, then --jobs 4.
# Usage: OUT=folder [PY=python3] [DEVICE=cuda] [STEPS="1 5"] benchmarks/gpu_check.sh
# For a rehearsal on a CPU, SCALE ("--set k=v ...") shrinks the paper runs and
# STEP_SET the benchmark's sections 3-4 (default: the paper's network and batch).
set -uo pipefail
OUT=${OUT:-benchmarks/gpu-results}
PY=${PY:-python3}
SCALE=${SCALE:-}
STEP_SET=${STEP_SET:---set width=64 --set image_size=32 --set batch_size=256}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-1 2 3 4 5}
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
    # shellcheck disable=SC2046
    step 1 200 benchmark $PY benchmarks/benchmark.py --device "$DEVICE" --sections 3 4 \
        --paper-run $STEP_SET $(paper_set) --output "$OUT/benchmark.json"
    # shellcheck disable=SC2086
    step 2 240 "paper methods" $PY -m cl_regimes sweep --profile paper --device "$DEVICE" \
        --datasets fashion_mnist --regimes full --orders 0 --results "$RESULTS" $SCALE
    # shellcheck disable=SC2086
    step 3 60 "paper dry run" $PY -m cl_regimes sweep --profile paper --device "$DEVICE" --dry-run
    step 4 120 "smoke grid, 4 jobs" $PY -m cl_regimes sweep --profile smoke --device "$DEVICE" \
        --jobs 4 --results "$RESULTS"
    for jobs in 1 4; do
        # shellcheck disable=SC2086
        step 5 200 "packing, --jobs $jobs" $PY -m cl_regimes sweep --profile paper \
            --device "$DEVICE" --datasets fashion_mnist --regimes full --methods finetune \
            --orders 1 2 3 4 5 6 7 8 --jobs $jobs --results "$RESULTS/jobs$jobs" $SCALE
    done
} 2>&1 | tee "$OUT/log.txt"
tar -czf "$OUT/records.tar.gz" -C "$RESULTS" .
