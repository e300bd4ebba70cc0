"""Atomic artifact writes and small artifact helpers.

Every artifact is written to a temporary file in the destination folder and moved into place with
``os.replace``, so a killed job never leaves a half-written file under the final name. Where artifacts live and
how each one is read: :mod:`sent.artifacts`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class MissingArtifactError(FileNotFoundError):
    """An artifact a step needs does not exist; the message names the command that makes it."""

    def __init__(self, path: str | os.PathLike, command: str):
        self.path = Path(path)
        self.command = command
        super().__init__(f"missing artifact {self.path}: create it with `{command}`")


def require_artifact(path: str | os.PathLike, command: str) -> Path:
    """Return ``path`` if it exists, else raise :class:`MissingArtifactError` naming ``command``."""
    p = Path(path)
    if not p.exists():
        raise MissingArtifactError(p, command)
    return p


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix or ".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_parquet(path: str | os.PathLike, df, metadata: dict | None = None) -> None:
    """Write a pandas DataFrame to parquet atomically; ``metadata`` is stored as JSON under key ``sent``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata is not None:
        meta = dict(table.schema.metadata or {})
        meta[b"sent"] = json.dumps(metadata, default=str).encode()
        table = table.replace_schema_metadata(meta)
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)


def read_parquet_metadata(path: str | os.PathLike) -> dict:
    """Return the ``sent`` metadata dict stored by :func:`atomic_write_parquet` (empty if none)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"sent")
    return json.loads(raw) if raw else {}
