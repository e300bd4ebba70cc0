#!/usr/bin/env bash
# Regenerate every figure and table of the SENT paper for one profile.
#
#   bash reproduce/run_all.sh                       # embedded CPU default (profile cpu), one seed
#   bash reproduce/run_all.sh --profile smoke       # minutes; what CI exercises
#   bash reproduce/run_all.sh --seeds 3             # >= 3 seeds before claiming one method beats another
#   bash reproduce/run_all.sh --only notebooks      # rerun a step (base se curriculum train eval notebooks analysis summary)
#   bash reproduce/run_all.sh --profile paper-1.5b  # GPUs, real models and data (downloads from the hub)
#
# Sets up .venv on first use. Finished steps are skipped and half-done ones resume, so after a kill
# just run the same command again. Outputs: reproduce/out/<profile>/{figures,tables,notebooks}.
set -euo pipefail
cd "$(dirname "$0")/.."
for a in "$@"; do
  if [ "$a" = "-h" ] || [ "$a" = "--help" ]; then
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exec python3 reproduce/pipeline.py --help 2>/dev/null || exit 0
  fi
done
bash scripts/setup_env.sh
. .venv/bin/activate
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
exec python reproduce/pipeline.py "$@"
