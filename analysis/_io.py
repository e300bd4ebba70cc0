"""Artifact readers shared by the analyses (rollouts, metrics.jsonl, eval parquet).

Rollout reading goes through ``sent.rollouts`` when that module is importable; the private
fallback below implements the same contract (docs/ARCHITECTURE.md, "Rollout schema") so the
analyses also run on a checkout or on a user's own files without the trainer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from sent.io import MissingArtifactError


#: Columns every analysis needs (docs/ARCHITECTURE.md); the rest are optional.
REQUIRED_COLUMNS = ("step", "prompt_id", "sample_id", "reward", "advantage", "tokens", "logp", "entropy")
_LIST_COLUMNS = ("tokens", "logp", "entropy")
_SCALAR_NUMERIC = ("step", "sample_id", "reward", "advantage")


try:  # the shared reader, once it exists
    from sent.rollouts import RolloutSchemaError
except ImportError:  # pragma: no cover - depends on which modules have landed

    class RolloutSchemaError(ValueError):
        """A rollout table misses a required column or has one of the wrong type."""


def validate_rollouts(df: pd.DataFrame) -> pd.DataFrame:
    """Check ``df`` against the rollout schema; raise :class:`RolloutSchemaError` naming the column.

    Checks: required columns present, scalar columns numeric, list columns of equal length per row.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise RolloutSchemaError(
            f"rollouts miss required column(s) {missing}; the schema (docs/ARCHITECTURE.md) needs {list(REQUIRED_COLUMNS)}"
        )
    for col in _SCALAR_NUMERIC:
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise RolloutSchemaError(f"rollout column {col!r} must be numeric, got dtype {df[col].dtype}")
    lengths = None
    for col in _LIST_COLUMNS + tuple(c for c in ("low_entropy", "high_cov", "covariance") if c in df.columns):
        try:
            lens = df[col].map(len).to_numpy()
        except TypeError as err:
            raise RolloutSchemaError(f"rollout column {col!r} must hold one list per response") from err
        if lengths is None:
            lengths = lens
        elif not np.array_equal(lens, lengths):
            bad = int(np.flatnonzero(lens != lengths)[0])
            raise RolloutSchemaError(
                f"rollout column {col!r} has {lens[bad]} entries in row {bad} but 'tokens' has {lengths[bad]}; "
                "every token-level list must have one entry per completion token"
            )
    return df


def rollouts_dir(path: str | Path) -> Path:
    """Accept a run folder (``runs/<run>/seed<k>``) or its ``rollouts/`` folder; return the latter."""
    p = Path(path)
    if (p / "rollouts").is_dir():
        p = p / "rollouts"
    if not p.is_dir() or not any(p.glob("step_*.parquet")):
        raise MissingArtifactError(
            p / "step_*.parquet", "sent train --config <recipe.yaml> (rollout recording on), or write your own in the rollout schema"
        )
    return p


def read_rollouts(path: str | Path, steps: list[int] | None = None) -> pd.DataFrame:
    """Read ``step_*.parquet`` under ``path`` (a run folder or its rollouts/), validated."""
    folder = rollouts_dir(path)
    try:
        from sent.rollouts import read_rollouts as _shared
    except ImportError:
        _shared = None
    if _shared is not None:
        df = _shared(folder)
    else:
        files = sorted(folder.glob("step_*.parquet"))
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    df = validate_rollouts(df)
    if steps is not None:
        df = df[df["step"].isin(steps)]
    return df.reset_index(drop=True)


def run_dir_of(path: str | Path) -> Path:
    """The run folder holding metrics.jsonl / eval/ for ``path`` (a run folder or its rollouts/)."""
    p = Path(path)
    return p.parent if p.name == "rollouts" else p


def read_metrics(run_dir: str | Path) -> pd.DataFrame | None:
    """``metrics.jsonl`` of a run as a DataFrame, or None when the run has none."""
    f = Path(run_dir) / "metrics.jsonl"
    if not f.exists():
        return None
    rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return pd.DataFrame(rows)


def _pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    try:
        from sent.metrics import pass_at_k
    except ImportError:
        pass_at_k = None
    if pass_at_k is not None:
        return float(pass_at_k(n, c, k))
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def eval_pass_at_k(run_dir: str | Path, ks: tuple[int, ...] = (1, 4, 8, 16)) -> pd.DataFrame:
    """Pass@k per suite from ``<run_dir>/eval/*.parquet``; empty frame when there is none."""
    rows = []
    for f in sorted((Path(run_dir) / "eval").glob("*.parquet")):
        ev = pd.read_parquet(f, columns=["prompt_id", "correct"])
        per = ev.groupby("prompt_id")["correct"].agg(["size", "sum"])
        for k in ks:
            if k > per["size"].min():
                continue
            vals = [_pass_at_k(int(n), int(c), k) for n, c in zip(per["size"], per["sum"])]
            rows.append({"suite": f.stem, "k": k, "pass_at_k": float(np.mean(vals)), "n_prompts": len(per)})
    return pd.DataFrame(rows, columns=["suite", "k", "pass_at_k", "n_prompts"])
