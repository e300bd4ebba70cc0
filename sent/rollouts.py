"""Token-level rollouts: ``rollouts/step_{step:06d}.parquet``, one row per sampled response, list columns.

Schema (docs/ARCHITECTURE.md, "Rollout schema"): ``step, prompt_id, sample_id, stage, reward, advantage, token_ids,
tokens, logp, entropy, covariance, low_entropy, high_cov, beta``. Floats are float32 (a cpu run recording every
10 steps x 64 responses x ~70 tokens stays in the tens of MB). Files are written atomically; a file of a step is
complete or absent. Parquet metadata key ``sent`` holds ``{"method", "seed", "run", "config"}`` (plus ``import``, the
provenance, in files ``sent rollouts import`` wrote). Readers accept ``step_<any digits>.parquet``.

:func:`validate_rollouts` refuses bad data with one line naming the file, the row and the column (nulls, NaN / inf,
``logp > 0``, negative entropy, wrong types, ragged token lists). This module holds the schema, its validation and
the writer; the reader is :func:`sent.artifacts.read_rollouts`
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
#: Token columns that must hold a finite number for every token (no null, NaN or inf).
FINITE_COLUMNS = ("logp", "entropy")
#: File name of a recorded step; group 1 is the step.
ROLLOUT_FILE = re.compile(r"^step_(\d+)\.parquet$")


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

    def write_step(self, step: int, rows: list[dict], metadata: dict | None = None) -> Path:
        """Write ``rows`` (dicts with the schema's columns; optional columns no row has are left out) as the file of
        ``step``; ``metadata`` (default: the recorder's) goes under the file's ``sent`` key. Returns its path."""
        import json

        import pyarrow.parquet as pq

        from sent.io import atomic_path

        rows = rows[: self.max_rows]
        names = [name for name in SCHEMA.names if name in REQUIRED or any(name in row for row in rows)]
        columns = {name: [row.get(name) for row in rows] for name in names}
        table = pa.table(columns, schema=pa.schema([SCHEMA.field(name) for name in names]))
        meta = {b"sent": json.dumps(self.metadata if metadata is None else metadata, default=str).encode()}
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


#: Scalar columns that must hold a finite number in every row.
NUMERIC_COLUMNS = ("reward", "advantage")
#: Rounding allowed by the checks ``logp <= 0`` and ``entropy >= 0``: fused kernels compute the entropy as
#: ``logsumexp - E[z]``, which cancels to small negative values on peaked distributions.
LOGP_TOLERANCE = 1e-4
ENTROPY_TOLERANCE = 1e-3


def _where(source, row: int, df) -> str:
    """``<file>: row R (step S)``, the place of a bad value (row: 0-based within the file or frame)."""
    step = df["step"].iloc[row] if "step" in df.columns else None
    place = f"row {row}" + (f" (step {step})" if step is not None and not _is_null(step) else "")
    return f"{source}: {place}" if source is not None else place


def _is_null(x) -> bool:
    if x is None:
        return True
    try:
        return bool(np.isnan(x))
    except (TypeError, ValueError):
        return False


def _fail(source, df, rows, name: str, what: str, hint: str = "") -> None:
    rows = np.asarray(rows)
    first = int(rows[0])
    more = f" ({len(rows)} rows in all)" if len(rows) > 1 else ""
    raise RolloutSchemaError(f"{_where(source, first, df)}, column {name!r} {what}{more}{hint}")


def _token_values(df, name: str, source) -> tuple[np.ndarray, np.ndarray]:
    """The values of list column ``name`` flattened to float64 (a null element becomes NaN), and the row of each;
    a list of strings, booleans or other objects raises naming the first such row."""
    arrays = [np.asarray(x) for x in df[name].tolist()]
    for i, a in enumerate(arrays):
        if a.dtype.kind in "fiu" or a.size == 0:
            continue
        if a.dtype.kind == "O" and all(v is None or (isinstance(v, (int, float, np.number)) and not isinstance(v, bool))
                                       for v in a.ravel()):
            continue
        kind = type(next(iter(a.ravel()), None)).__name__
        _fail(source, df, [i], name, f"holds non-numeric values ({kind}); it must be a list of floats")
    rows = np.repeat(np.arange(len(arrays)), [a.size for a in arrays])
    flat = [a.astype(np.float64).reshape(-1) for a in arrays]
    return (np.concatenate(flat) if flat else np.zeros(0)), rows


def validate_rollouts(df, source=None):
    """Return ``df``; raise :class:`RolloutSchemaError` (one line naming ``source``, the row and the column) for a
    missing required column, a null or non-integer ``step`` / ``sample_id``, a null ``prompt_id``, a null,
    non-numeric, NaN or infinite ``reward`` / ``advantage``, a null token list, token lists of unequal lengths,
    non-numeric / NaN / infinite ``logp`` / ``entropy`` values, a ``logp`` above 0 (+ :data:`LOGP_TOLERANCE`) or an
    entropy below 0 (- :data:`ENTROPY_TOLERANCE`). ``source`` (a file) prefixes the message; rows are 0-based within
    ``df``. An optional token column that is null in every row is dropped (a writer that did not record it)."""
    import pandas as pd

    missing = [name for name in REQUIRED if name not in df.columns]
    if missing:
        prefix = f"{source}: " if source is not None else ""
        raise RolloutSchemaError(f"{prefix}rollouts miss required column(s) {missing}; required: {list(REQUIRED)}")
    for name in ("step", "sample_id", "prompt_id", *NUMERIC_COLUMNS):
        null = df[name].isna().to_numpy()
        if null.any():
            _fail(source, df, null.nonzero()[0], name, "is null (NaN)" if name in NUMERIC_COLUMNS else "is null")
    for name in ("step", "sample_id"):
        if not str(df[name].dtype).startswith(("int", "Int", "uint", "UInt")):
            prefix = f"{source}: " if source is not None else ""
            raise RolloutSchemaError(f"{prefix}column {name!r} must be integer, got {df[name].dtype}")
    for name in NUMERIC_COLUMNS:
        if not pd.api.types.is_numeric_dtype(df[name]) or pd.api.types.is_bool_dtype(df[name]):
            prefix = f"{source}: " if source is not None else ""
            raise RolloutSchemaError(f"{prefix}rollout column {name!r} must be numeric, got dtype {df[name].dtype}")
        bad = ~np.isfinite(df[name].to_numpy(np.float64))
        if bad.any():
            _fail(source, df, bad.nonzero()[0], name, "is infinite")
    optional = [c for c in TOKEN_COLUMNS if c in df.columns and c not in REQUIRED]
    empty = [c for c in optional if len(df) and df[c].isna().all()]
    if empty:
        df = df.drop(columns=empty)
    present = [c for c in TOKEN_COLUMNS if c in df.columns]
    if len(df) == 0:
        return df
    for name in present:
        null = df[name].map(lambda x: x is None or (np.isscalar(x) and _is_null(x))).to_numpy()
        if null.any():
            _fail(source, df, null.nonzero()[0], name, "is null (a token list is required in every row)")
    lengths = df["tokens"].map(len).to_numpy()
    for name in present:
        bad = (df[name].map(len).to_numpy() != lengths).nonzero()[0]
        if len(bad):
            _fail(source, df, bad, name, "has token lists of a different length than 'tokens'")
    for name in FINITE_COLUMNS:
        values, rows = _token_values(df, name, source)
        bad = ~np.isfinite(values)
        if bad.any():
            what = "has NaN" if np.isnan(values[bad]).any() else "has infinite"
            _fail(source, df, np.unique(rows[bad]), name, f"{what} values",
                  "; every sampled token has a log-probability and an entropy")
        if name == "logp" and (values > LOGP_TOLERANCE).any():
            _fail(source, df, np.unique(rows[values > LOGP_TOLERANCE]), name,
                  f"has positive values (max {values.max():.3g}); a log-probability is <= 0")
        if name == "entropy" and (values < -ENTROPY_TOLERANCE).any():
            _fail(source, df, np.unique(rows[values < -ENTROPY_TOLERANCE]), name,
                  f"has negative values (min {values.min():.3g}); an entropy is >= 0")
    return df


def explode_tokens(df):
    """Long format: one row per token with the per-response columns repeated and ``position`` (0-based)."""
    df = validate_rollouts(df)
    present = [c for c in TOKEN_COLUMNS if c in df.columns]
    long = df.copy()
    long["position"] = long["tokens"].map(lambda toks: list(range(len(toks))))
    long = long.explode([*present, "position"], ignore_index=True)
    long = long[long["position"].notna()].reset_index(drop=True)
    long["position"] = long["position"].astype("int64")
    casts = {"logp": "float32", "entropy": "float32", "covariance": "float32", "beta": "float32",
             "token_ids": "int64", "low_entropy": "bool", "high_cov": "bool", "tokens": "str"}
    return long.astype({k: v for k, v in casts.items() if k in present})
