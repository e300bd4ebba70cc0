"""``sent report``: one run at a glance: entropy, reward, completion length, gate shares, a token heat map and word
clouds of one run folder.

    sent report artifacts/cpu/runs/sent/seed0
    sent report my_runs/qwen-sent/seed0 --out reports/qwen --tokenizer Qwen/Qwen2.5-Math-1.5B --step 200

RUN_DIR is any folder in the run layout of docs/ARCHITECTURE.md (``metrics.jsonl``, ``config.yaml``,
``rollouts/``), whichever model trained it; what it lacks is said on the figures. Writes
``<out>/figures/one_run_<run>_seed<k>_{curves,heatmap,wordclouds}.{png,pdf}`` and
``<out>/tables/one_run_<run>_seed<k>_status.json`` (``one_run_<folder name>_*`` for a folder outside
``<root>/runs/``; default ``--out``: ``<RUN_DIR>/report``). The same figures in a
notebook: ``notebooks/one_run.ipynb``. See :mod:`sent.report_run`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sent report", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="run folder: <root>/runs/<run>/seed<k>, or any folder with metrics.jsonl and/or "
                                   "rollouts/")
    p.add_argument("--out", default=None, help="output folder for figures/ and tables/ (default: <RUN_DIR>/report)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer folder or local hub id whose special tokens are left out of the token figures "
                        "(default: the run's final/, else the model it started from, else their spelling)")
    p.add_argument("--step", type=int, default=None, help="recorded step of the heat map (default: the last one)")
    p.add_argument("--sample-index", type=int, default=None,
                   help="response of that step, in (prompt_id, sample_id) order (default: the one with the most "
                        "high-covariance tokens)")
    p.add_argument("--smooth", type=int, default=1,
                   help="rolling mean over this many generation batches (default: 1, no smoothing)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.smooth < 1:
        raise ValueError(f"--smooth {args.smooth}: use 1 (no smoothing) or more generation batches")
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a folder (a run folder: <root>/runs/<run>/seed<k>)")
    import matplotlib

    matplotlib.use("Agg")
    from sent.report_run import write_report

    out = Path(args.out) if args.out else run_dir / "report"
    paths = write_report(run_dir, out, tokenizer=args.tokenizer, step=args.step, sample_index=args.sample_index,
                         smooth=args.smooth)
    logger.info("sent report: %d figures of %s in %s", len(paths), run_dir, out / "figures")
    return 0
