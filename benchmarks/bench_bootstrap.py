"""Benchmark: 1,000 bootstrap replicates over ~1M recorded tokens (20 steps x 400 responses x 125 tokens).

Goal: <= 30 s on 2 CPU cores. Baseline: the plain per-replicate loop
(:func:`analysis.covariance_bootstrap.reference_replicate`, materialises each resampled batch), timed
on a few replicates of one step and extrapolated linearly to 1,000 replicates x 20 steps (printed as
such). Run: ``python benchmarks/bench_bootstrap.py [--threads 2]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sent_analysis.covariance_bootstrap import (
    bootstrap_rollouts,
    group_advantages,
    reference_replicate,
    resample_counts,
    step_arrays,
    synthetic_rollouts,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--B", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--loop-replicates", type=int, default=5)
    ap.add_argument("--top-k-ratio", type=float, nargs="+", default=[0.0002])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    df = synthetic_rollouts(n_steps=args.steps, n_prompts=50, group_size=8, n_tokens=125, seed=0)
    n_tok = int(df["tokens"].map(len).sum())
    print(f"rollouts: {args.steps} steps x {len(df) // args.steps} responses, {n_tok:,} tokens; B={args.B}")

    t0 = time.perf_counter()
    res = bootstrap_rollouts(df, B=args.B, top_k_ratios=tuple(args.top_k_ratio), progress=False)
    t_vec = time.perf_counter() - t0
    print(f"vectorised: {t_vec:.1f} s for {args.B} replicates x {args.steps} steps x top-k ratios {args.top_k_ratio} "
          f"(goal <= 30 s) -> {'OK' if t_vec <= 30 else 'OVER'}")
    print(f"  median tau CV {res['tau_cv'].median():.3f}, median Jaccard {res['jaccard_full_mean'].median():.3f}")

    a = step_arrays(df[df["step"] == 0])
    counts = resample_counts(a.group, args.loop_replicates, "responses", np.random.default_rng(0))
    adv = group_advantages(a.reward, a.group, counts)
    t0 = time.perf_counter()
    for r in range(args.loop_replicates):
        for ratio in args.top_k_ratio:
            reference_replicate(a, counts[r], adv[r], top_k_ratio=ratio)
    per_rep = (time.perf_counter() - t0) / args.loop_replicates
    t_loop = per_rep * args.B * args.steps
    print(f"plain per-replicate loop: {per_rep * 1e3:.1f} ms/replicate (measured on {args.loop_replicates} "
          f"replicates of one step), EXTRAPOLATED to {args.B} x {args.steps}: {t_loop:.0f} s "
          "(statistics only, no CV/Jaccard/rank bookkeeping)")
    print(f"speed-up vectorised vs loop: {t_loop / t_vec:.1f}x")


if __name__ == "__main__":
    main()
