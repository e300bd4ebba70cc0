"""Build a small artifact root in the docs/ARCHITECTURE.md schema, for testing notebook plumbing ONLY.

Everything here is synthetic TEST DATA from a seeded generator: numbers have no meaning and must never
appear in a figure presented as a result (real figures come from `reproduce/run_all.sh`). Every
parquet file carries ``{"fixture": "tests/_artifacts.py"}`` in its ``sent`` metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sent.io import atomic_write_json, atomic_write_parquet, atomic_write_text


FIXTURE_META = {"fixture": "tests/_artifacts.py", "note": "synthetic test data, not a result"}
DEFAULT_RUNS = (
    "grpo", "entropy_bonus", "entropy_adv", "clip_cov", "kl_cov", "high_entropy", "sent", "sent_release",
    "abl_curriculum_only", "abl_lowkl_only", "abl_lowkl_highcov_nocurr", "abl_stages_1", "abl_stages_3",
    "abl_ratio_0.7", "abl_ratio_0.9", "sent_content",
)
SUITES = ("toy-aime", "toy-math")
WORDS = ("so", "the", "answer", "is", "we", "add", "then", "3", "7", "=", "+", "first", "next", "12", ".")


def _metrics(rng: np.random.Generator, n_steps: int, stage_switch: int) -> list[dict]:
    rows, ent = [], 0.4
    for step in range(1, n_steps + 1):
        ent = max(0.02, ent * (0.97 + 0.02 * rng.random()))
        rows.append({
            "step": step, "epoch": step / n_steps, "stage": 1 if step < stage_switch else 2,
            "loss": float(rng.normal()), "grad_norm": float(rng.random()), "learning_rate": 3e-4,
            "reward": float(np.tanh(step / n_steps) + 0.1 * rng.normal()), "reward_std": 0.5,
            "entropy/all": ent, "entropy/low": ent / 4, "entropy/high_cov": ent / 8,
            "share/low": 0.8, "share/high_cov": 0.01, "beta/mean": 0.01, "beta/mean_low": 0.02,
            "kl/ref": float(rng.random() * 0.01), "kl/old": 0.0, "cov/mean": 0.0, "cov/std": 0.1,
            "cov/max": 0.5, "length/mean": float(20 + step + rng.integers(0, 5)), "step_time": 1.0,
        })
    return rows


def _rollouts(rng: np.random.Generator, step: int, run: str, seed: int, n_prompts: int = 2, G: int = 4):
    rows = []
    for p in range(n_prompts):
        rewards = rng.choice([-1.0, 1.0], size=G)
        adv = (rewards - rewards.mean()) / (rewards.std() + 1e-6)
        for g in range(G):
            T = int(rng.integers(8, 16))
            ids = rng.integers(0, len(WORDS), size=T)
            ent = rng.gamma(0.5, 0.4, size=T).astype(np.float32)
            low = ent <= np.quantile(ent, 0.8)
            cov = np.where(low, rng.normal(0, 0.1, size=T), 0.0).astype(np.float32)
            high = low & (cov >= np.max(cov[low]))
            rows.append({
                "step": step, "prompt_id": f"toy-train-{p:03d}", "sample_id": g, "stage": 1,
                "reward": np.float32(rewards[g]), "advantage": np.float32(adv[g]),
                "token_ids": ids.astype(np.int32).tolist(),
                "tokens": [(" " if i else "") + WORDS[t] for i, t in enumerate(ids)],
                "logp": (-ent * 0.8).tolist(), "entropy": ent.tolist(), "covariance": cov.tolist(),
                "low_entropy": low.tolist(), "high_cov": high.tolist(),
                "beta": np.where(high, 0.2, np.where(low, 0.05, 0.0)).astype(np.float32).tolist(),
            })
    df = pd.DataFrame(rows).astype({"sample_id": "int32", "stage": "int32"})
    return df, {"method": run, "seed": seed, "run": run, "config": {}, **FIXTURE_META}


def _eval(rng: np.random.Generator, suite: str, skill: float, n_problems: int, n: int) -> pd.DataFrame:
    rows = []
    for p in range(n_problems):
        p_correct = np.clip(skill + 0.3 * np.sin(p), 0.0, 1.0)
        correct = rng.random(n) < p_correct
        for s in range(n):
            rows.append({"prompt_id": f"{suite}-{p:03d}", "suite": suite, "sample_id": s,
                         "completion": "so the answer is 7", "answer": "7" if correct[s] else "3",
                         "gold": "7", "correct": bool(correct[s]), "length": int(rng.integers(5, 40))})
    return pd.DataFrame(rows)


def build_artifacts(root: str | Path, runs=DEFAULT_RUNS, seeds=(0,), n_steps: int = 12, n_samples: int = 32,
                    n_problems: int = 4, seed: int = 0) -> Path:
    """Write a complete synthetic artifact root (se, curriculum, runs, eval) and return it."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    # semantic entropy + a 2-stage curriculum
    levels = np.repeat([1, 2, 3, 4], 6)
    se = pd.DataFrame({
        "prompt_id": [f"toy-train-{i:03d}" for i in range(len(levels))], "problem": "x+1=?", "answer": "2",
        "level": levels, "domain": "math", "se": np.round(levels * 0.3 + rng.random(len(levels)) * 0.4, 4),
        "se_weighted": np.nan, "n_clusters": levels, "n_samples": 8, "n_correct": 8 - levels,
        "accuracy": (8 - levels) / 8, "n_unparsable": 0,
    })
    atomic_write_parquet(root / "se" / "math.parquet", se, {"equivalence": "math", "M": 8, **FIXTURE_META})
    ordered = se.sort_values("se", ignore_index=True)
    stages = []
    for i, part in enumerate(np.array_split(np.arange(len(ordered)), 2), start=1):
        path = root / "curriculum" / "se2" / f"stage_{i}.parquet"
        atomic_write_parquet(path, ordered.iloc[part], FIXTURE_META)
        stages.append({"index": i, "path": str(path), "size": len(part),
                       "se_min": float(ordered.se.iloc[part].min()), "se_max": float(ordered.se.iloc[part].max())})
    atomic_write_json(root / "curriculum" / "se2" / "manifest.json",
                      {"method": "equal", "n_stages": 2, "seed": 0, "source": "se/math.parquet",
                       "source_sha256": "fixture", "stages": stages})
    # runs: metrics, rollouts, eval
    for r_i, run in enumerate(runs):
        for s in seeds:
            d = root / "runs" / run / f"seed{s}"
            metrics = _metrics(rng, n_steps, stage_switch=n_steps // 2 + 1)
            atomic_write_text(d / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics))
            atomic_write_text(d / "config.yaml", f"method: {run}\nseed: {s}\nfixture: true\n")
            for step in (n_steps // 2, n_steps):
                df, meta = _rollouts(rng, step, run, s)
                atomic_write_parquet(d / "rollouts" / f"step_{step:06d}.parquet", df, meta)
            for suite in SUITES:
                ev = _eval(rng, suite, 0.2 + 0.03 * r_i, n_problems, n_samples)
                atomic_write_parquet(d / "eval" / f"{suite}.parquet", ev,
                                     {"k": n_samples, "temperature": 1.0, "seed": s, **FIXTURE_META})
    for suite in SUITES:
        atomic_write_parquet(root / "eval" / "base" / f"{suite}.parquet", _eval(rng, suite, 0.15, n_problems, n_samples),
                             {"k": n_samples, "temperature": 1.0, "seed": 0, **FIXTURE_META})
    return root
