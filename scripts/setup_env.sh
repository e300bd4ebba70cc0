#!/usr/bin/env bash
# Create .venv with the pinned stack, once. Reruns are no-ops when requirements.txt is unchanged.
# torch is installed first with its exact pin: a bare `torch` would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.sent-installed
want=$(sha256sum requirements.txt pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
echo "[setup] creating .venv (about 2 minutes on first run)" >&2
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q -r requirements.txt
python -m pip install -q --no-deps -e .
python -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "$want" > "$stamp"
