#!/usr/bin/env bash
# One prepared GPU check (device machine: CUDA torch preinstalled, no network): install the pinned pure-Python
# stack from a carried wheelhouse (.wheelhouse, made with `pip download --no-deps --python-version 3.12
# --only-binary=:all: trl==1.16.0 transformers==5.24.0 datasets==5.2.0 math-verify==0.9.0 ...`), then run the
# step-time and loss benchmarks on CUDA. Outputs to $OUT (or ./gpu_out).
set -u
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
python3 -m venv --system-site-packages /tmp/sentv && . /tmp/sentv/bin/activate
pip install -q --no-deps --no-index .wheelhouse/*.whl 2>&1 | tail -2
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c "import torch, transformers, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)"
  python -c "import vllm; print('vllm', vllm.__version__)" 2>&1 | tail -1
} | tee "$OUT/env.txt"
timeout 120 python benchmarks/bench_loss.py --device cuda --repeats 30 2>&1 | tail -6 | tee "$OUT/bench_loss_gpu.txt"
timeout 330 python benchmarks/bench_step.py --device cuda --hidden 1024 --layers 12 --completion-length 256 --steps 6 --repeats 1 2>&1 | tail -6 | tee "$OUT/bench_step_gpu.txt"
