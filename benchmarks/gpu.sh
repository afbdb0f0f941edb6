#!/usr/bin/env bash
# bgmm benchmarks on a CUDA GPU: parts 3 and 4 of benchmarks/run.py at N = 10^7, D = 16,
# K = 16 in float32, and HMC draws per second (4 vectorised chains, synthetic data,
# N = 10^6 and 10^7). See docs/benchmarks.md.
#
#   pip install ".[cuda]"            # jax with CUDA 12
#   benchmarks/gpu.sh [--quick] [more run.py options]
#
# --quick: N up to 10^6 and a short HMC run (a few minutes). Results: the tables on stdout and
# benchmarks/results-gpu.json (results-gpu-quick.json with --quick).
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
