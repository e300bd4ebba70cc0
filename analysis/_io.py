"""Artifact readers shared by the analyses (rollouts, metrics.jsonl, eval parquet).

Rollout reading and validation are ``sent.rollouts``'s (docs/ARCHITECTURE.md, "Rollout schema");
this module adds the run-folder conventions the analyses share.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sent.io import MissingArtifactError
from sent.metrics import pass_at_k
from sent.rollouts import REQUIRED as REQUIRED_COLUMNS
from sent.rollouts import RolloutSchemaError
from sent.rollouts import read_rollouts as _read_rollouts
from sent.rollouts import validate_rollouts as _validate_shared


__all__ = ["REQUIRED_COLUMNS", "RolloutSchemaError", "read_rollouts", "validate_rollouts", "read_metrics", "eval_pass_at_k"]


def validate_rollouts(df: pd.DataFrame) -> pd.DataFrame:
    """``sent.rollouts.validate_rollouts`` plus numeric ``reward`` / ``advantage``; returns ``df``.

    Raises :class:`sent.rollouts.RolloutSchemaError` (a ValueError) naming the offending column.
    """
    _validate_shared(df)
    for col in ("reward", "advantage"):
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise RolloutSchemaError(f"rollout column {col!r} must be numeric, got dtype {df[col].dtype}")
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
    return validate_rollouts(_read_rollouts(rollouts_dir(path), steps=steps)).reset_index(drop=True)


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


def eval_pass_at_k(run_dir: str | Path, ks: tuple[int, ...] = (1, 4, 8, 16)) -> pd.DataFrame:
    """Pass@k per suite from ``<run_dir>/eval/*.parquet``; empty frame when there is none."""
    rows = []
    for f in sorted((Path(run_dir) / "eval").glob("*.parquet")):
        ev = pd.read_parquet(f, columns=["prompt_id", "correct"])
        per = ev.groupby("prompt_id")["correct"].agg(["size", "sum"])
        for k in ks:
            if k > per["size"].min():
                continue
            vals = pass_at_k(per["size"].to_numpy(), per["sum"].to_numpy(), k)
            rows.append({"suite": f.stem, "k": k, "pass_at_k": float(np.mean(vals)), "n_prompts": len(per)})
    return pd.DataFrame(rows, columns=["suite", "k", "pass_at_k", "n_prompts"])


def save_figure(fig, path_stem) -> list:
    """Save ``fig`` as ``<path_stem>.png`` and ``.pdf`` (folders made), close it, return the two paths."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = [Path(f"{path_stem}.png"), Path(f"{path_stem}.pdf")]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=130)
    plt.close(fig)
    return paths
