"""Token-level rollouts: ``rollouts/step_{step:06d}.parquet``, one row per sampled response, list columns.

Schema (docs/ARCHITECTURE.md, "Rollout schema"): ``step, prompt_id, sample_id, stage, reward, advantage, token_ids,
tokens, logp, entropy, covariance, low_entropy, high_cov, beta``. Floats are float32 (a cpu run recording every
10 steps x 64 responses x ~70 tokens stays in the tens of MB). Files are written atomically; a file of a step is
complete or absent. Parquet metadata key ``sent`` holds ``{"method", "seed", "run", "config"}``.

This module holds the schema, its validation and the writer; the reader is :func:`sent.artifacts.read_rollouts`
(which imports this module, never the other way round).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa


logger = logging.getLogger(__name__)

SCHEMA = pa.schema([
    ("step", pa.int64()), ("prompt_id", pa.string()), ("sample_id", pa.int32()), ("stage", pa.int32()),
    ("reward", pa.float32()), ("advantage", pa.float32()), ("token_ids", pa.list_(pa.int32())),
    ("tokens", pa.list_(pa.string())), ("logp", pa.list_(pa.float32())), ("entropy", pa.list_(pa.float32())),
    ("covariance", pa.list_(pa.float32())), ("low_entropy", pa.list_(pa.bool_())), ("high_cov", pa.list_(pa.bool_())),
    ("beta", pa.list_(pa.float32())),
])
REQUIRED = ("step", "prompt_id", "sample_id", "reward", "advantage", "tokens", "logp", "entropy")
TOKEN_COLUMNS = ("token_ids", "tokens", "logp", "entropy", "covariance", "low_entropy", "high_cov", "beta")
#: Token columns that must hold a number for every token (no NaN).
FINITE_COLUMNS = ("logp", "entropy")
#: File name of a recorded step; group 1 is the step.
ROLLOUT_FILE = re.compile(r"^step_(\d{6,})\.parquet$")


def rollout_file_name(step: int) -> str:
    """``step_{step:06d}.parquet``, the file of one recorded step."""
    return f"step_{int(step):06d}.parquet"


class RolloutSchemaError(ValueError):
    """A rollout table misses a required column or has a wrong type / ragged token lists."""


class RolloutRecorder:
    """Writes one parquet file per recorded step under ``directory`` (at most ``max_rows`` responses each)."""

    def __init__(self, directory: str | Path, metadata: dict | None = None, max_rows: int = 256):
        if max_rows < 1:
            raise ValueError(f"max_rows={max_rows} must be >= 1")
        self.directory = Path(directory)
        self.metadata = metadata or {}
        self.max_rows = max_rows

    def path(self, step: int) -> Path:
        return self.directory / rollout_file_name(step)

    def write_step(self, step: int, rows: list[dict]) -> Path:
        """Write ``rows`` (dicts with the schema's columns) as the file of ``step``; returns its path."""
        import json

        import pyarrow.parquet as pq

        from sent.io import atomic_path

        rows = rows[: self.max_rows]
        columns = {name: [row.get(name) for row in rows] for name in SCHEMA.names}
        table = pa.table(columns, schema=SCHEMA)
        meta = {b"sent": json.dumps(self.metadata, default=str).encode()}
        table = table.replace_schema_metadata(meta)
        path = self.path(step)
        with atomic_path(path, suffix=".parquet") as tmp:
            pq.write_table(table, tmp)
        return path

    def drop_after(self, step: int) -> list[Path]:
        """Delete files of steps greater than ``step`` (resume from a checkpoint at ``step``)."""
        dropped = []
        for path in sorted(self.directory.glob("step_*.parquet")):
            match = ROLLOUT_FILE.match(path.name)
            if match and int(match.group(1)) > step:
                path.unlink()
                dropped.append(path)
        if dropped:
            logger.info("dropped %d rollout files after step %d", len(dropped), step)
        return dropped


def validate_rollouts(df):
    """Return ``df``; raise :class:`RolloutSchemaError` naming a missing required column, a non-integer ``step`` /
    ``sample_id``, a non-numeric ``reward`` / ``advantage``, token lists of unequal lengths or a NaN ``logp`` /
    ``entropy``."""
    import pandas as pd

    missing = [name for name in REQUIRED if name not in df.columns]
    if missing:
        raise RolloutSchemaError(f"rollouts miss required column(s) {missing}; required: {list(REQUIRED)}")
    for name in ("step", "sample_id"):
        if not str(df[name].dtype).startswith(("int", "Int")):
            raise RolloutSchemaError(f"column {name!r} must be integer, got {df[name].dtype}")
    for name in ("reward", "advantage"):
        if not pd.api.types.is_numeric_dtype(df[name]):
            raise RolloutSchemaError(f"rollout column {name!r} must be numeric, got dtype {df[name].dtype}")
    present = [c for c in TOKEN_COLUMNS if c in df.columns]
    if len(df) == 0:
        return df
    lengths = df["tokens"].map(len)
    for name in present:
        col_len = df[name].map(lambda x: len(x) if x is not None else -1)
        bad = (col_len != lengths).to_numpy().nonzero()[0]
        if len(bad):
            raise RolloutSchemaError(f"column {name!r} has token lists of a different length than 'tokens' in "
                                     f"{len(bad)} row(s), first row {int(bad[0])}")
    for name in FINITE_COLUMNS:
        bad = df[name].map(lambda x: bool(np.isnan(np.asarray(x, dtype=np.float64)).any()) if x is not None else True)
        if bad.any():
            first = int(bad.to_numpy().nonzero()[0][0])
            raise RolloutSchemaError(f"column {name!r} has NaN (or missing) values in {int(bad.sum())} row(s), first "
                                     f"row {first} (step {df['step'].iloc[first]}); every sampled token has a "
                                     f"log-probability and an entropy")
    return df


def explode_tokens(df):
    """Long format: one row per token with the per-response columns repeated and ``position`` (0-based)."""
    validate_rollouts(df)
    present = [c for c in TOKEN_COLUMNS if c in df.columns]
    long = df.copy()
    long["position"] = long["tokens"].map(lambda toks: list(range(len(toks))))
    long = long.explode([*present, "position"], ignore_index=True)
    long = long[long["position"].notna()].reset_index(drop=True)
    long["position"] = long["position"].astype("int64")
    casts = {"logp": "float32", "entropy": "float32", "covariance": "float32", "beta": "float32",
             "token_ids": "int64", "low_entropy": "bool", "high_cov": "bool", "tokens": "str"}
    return long.astype({k: v for k, v in casts.items() if k in present})
