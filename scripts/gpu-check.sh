#!/usr/bin/env bash
# The checks that need a GPU, as one run: the CUDA tests (tests/test_cuda.py), then the
# engine and fused-training benchmarks on the GPU (docs/benchmarks.md, (a) and (c)).
#   bash scripts/gpu-check.sh [OUT_DIR]        # PYTHON=... to pick the interpreter
# Needs torch with CUDA and the project's dependencies; no database server (the runner
# test runs on SQLite only here).
set -euo pipefail
PY=${PYTHON:-python3}
out=${1:-gpu-check}
mkdir -p "$out"
nvidia-smi -L | tee "$out/gpus.txt"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; \
print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0))" | tee -a "$out/gpus.txt"
"$PY" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py -k "not postgres" 2>&1 \
  | tee "$out/tests.txt"
"$PY" bench/run.py --only a,c --device cuda 2>&1 | tee "$out/bench.txt"
