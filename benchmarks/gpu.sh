#!/usr/bin/env bash
# bgmm benchmarks on a CUDA GPU: parts 3 and 4 of benchmarks/run.py at N = 10^7, D = 16,
# K = 16 in float32, and HMC draws per second (4 vectorised chains, synthetic data,
# N = 10^6 and 10^7). With several GPUs, also the sampler's value and gradient with the
# rows split over 1, 2, 4, ... of them (D = 8, K = 8, 4 chains, float64; N = 10^7 and
# 10^8), the figures that docs/scaling.md projects. See docs/benchmarks.md.
#
#   pip install ".[cuda]"            # jax with CUDA 12
#   benchmarks/gpu.sh [--quick] [more run.py options]
#
# --quick: N up to 10^6 and a short HMC run (a few minutes). Results: the tables on stdout and
# benchmarks/results-gpu.json (results-gpu-quick.json with --quick); the split rows, one JSON
# record per line, in benchmarks/results-gpu-split.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
extra=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) extra+=("$arg") ;;
  esac
done

# Allocate device memory as needed (JAX grabs 75% up front by default), so that the
# reported device memory peaks are the programs' own.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

if ! python -c 'import sys, jax; sys.exit(0 if jax.default_backend() == "gpu" else 1)'; then
  echo "error: jax sees no GPU here (jax.default_backend() is not 'gpu'); install the CUDA" \
       "extra: pip install '.[cuda]'" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

common=(--parts 3,4,gpu --scale-d 16 --scale-k 16 --dtypes float32
        --curve-d 16 --curve-k 16 --curve-dtypes float32 --mem-limit-gb 40)
if [ "$quick" = 1 ]; then
  python benchmarks/run.py --quick "${common[@]}" --scale-n 1000000 \
    --curve-n 1000,100000,1000000 --gpu-n 1000000 \
    --json benchmarks/results-gpu-quick.json ${extra[@]+"${extra[@]}"}
else
  python benchmarks/run.py "${common[@]}" --scale-n 10000000 \
    --curve-n 1000,10000,100000,1000000,10000000 --gpu-n 1000000,10000000 \
    --json benchmarks/results-gpu.json ${extra[@]+"${extra[@]}"}
fi

# Rows split over the GPUs of this machine (benchmarks/split_rows_driver.py, one process).
num_gpus=$(python -c 'import jax; print(jax.device_count())')
if [ "$num_gpus" -gt 1 ]; then
  sizes=(10000000 100000000)
  [ "$quick" = 1 ] && sizes=(1000000)
  out=benchmarks/results-gpu-split.jsonl
  : > "$out"
  for n in "${sizes[@]}"; do
    g=1
    while [ "$g" -le "$num_gpus" ]; do
      visible=$(seq -s, 0 $((g - 1)))
      CUDA_VISIBLE_DEVICES="$visible" python benchmarks/split_rows_driver.py \
        /tmp/bgmm-split.json "$n" 8 8 4 20
      cat /tmp/bgmm-split.json >> "$out" && echo >> "$out"
      echo "N = $n, $g GPUs: $(cat /tmp/bgmm-split.json)"
      g=$((g * 2))
    done
  done
fi
