#!/usr/bin/env bash
# One prepared GPU check (device machine: CUDA torch preinstalled in /opt/torch/.venv, no network): put the pinned
# pure-Python stack from a carried wheelhouse (.wheelhouse, made with `pip download --no-deps --python-version 3.12
# --only-binary=:all: trl==1.16.0 transformers==5.24.0 datasets==5.2.0 math-verify==0.9.0 ...`) first on
# PYTHONPATH, then run the step-time and loss benchmarks on CUDA. Outputs to $OUT (or ./gpu_out).
set -u
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
PY=${PY:-/opt/torch/.venv/bin/python3}
rm -rf /tmp/sitepk && $PY -m pip install -q --no-deps --no-index --target /tmp/sitepk .wheelhouse/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/sitepk:$PWD HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch, transformers, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)"
  $PY -c "import vllm; print('vllm', vllm.__version__)" 2>&1 | tail -1
} | tee "$OUT/env.txt"
timeout 60 $PY benchmarks/bench_loss.py --device cuda --repeats 30 2>&1 | tail -6 | tee "$OUT/bench_loss_gpu.txt"
timeout 200 $PY benchmarks/bench_step.py --device cuda --hidden 1024 --layers 12 --completion-length 128 --steps 5 --repeats 1 2>&1 | tail -8 | tee "$OUT/bench_step_gpu.txt"
