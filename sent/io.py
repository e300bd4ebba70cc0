"""Atomic artifact writes and small artifact helpers.

Every artifact is written to a temporary file in the destination folder and moved into place with
``os.replace``, so a killed job never leaves a half-written file under the final name; a folder (a model, a
checkpoint) is built under a partial name and renamed the same way (:func:`atomic_folder`). Partial names start with
:data:`PARTIAL_PREFIX`; what a kill leaves under them is deleted by the next run (:func:`remove_partial`). The
final file gets the mode a plain ``open(path, "w")`` would give it (``0o666`` less the umask), not ``mkstemp``'s
``0o600``; so do the files of a folder written with :func:`atomic_folder` and of a checkpoint. A full disk while writing raises :class:`DiskFullError`, whose one-line message names the path (the
partial file or folder is deleted, so a rerun resumes once space is freed). Where artifacts live and how each one
is read: :mod:`sent.artifacts`.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
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


#: Name prefix of a file or folder under construction (renamed to its final name when complete).
PARTIAL_PREFIX = ".tmp-"
#: Below this many free bytes, an I/O error without an errno (torch.save's) is taken for a full disk.
LOW_SPACE_BYTES = 64 * 2**20
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_TEXT = ("No space left on device", "StorageFull", "Disk quota exceeded")  # OS, safetensors (Rust)
_WRITE_FAILED_TEXT = ("file write failed", "unexpected pos")  # torch.save's zip writer drops the OS error


class DiskFullError(OSError):
    """The disk filled up while writing ``path``; nothing partial is left under its name, so rerunning the same
    command once space is freed resumes where it stopped."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = None if path is None else Path(path)
        where = f" while writing {self.path}" if self.path is not None else ""
        super().__init__(errno.ENOSPC, f"no space left on device{where}; free some space and rerun the same command "
                                       "(it resumes where it stopped)")

    def __str__(self) -> str:
        return self.strerror


def is_disk_full(err: BaseException, path: str | os.PathLike | None = None) -> bool:
    """Whether ``err`` (or an error it was raised from) means the disk is full: ``ENOSPC`` / ``EDQUOT``, the text of
    one (safetensors' Rust errors carry only that), or torch.save's errno-less write failure while ``path``'s disk has
    less than :data:`LOW_SPACE_BYTES` free."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DiskFullError) or (isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS):
            return True
        text = str(err)
        if any(t in text for t in _DISK_FULL_TEXT):
            return True
        if path is not None and any(t in text for t in _WRITE_FAILED_TEXT) and _free_bytes(path) < LOW_SPACE_BYTES:
            return True
        err = err.__cause__ or err.__context__
    return False


def _free_bytes(path: str | os.PathLike) -> int:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return LOW_SPACE_BYTES  # unknown: do not call it a full disk


@contextmanager
def disk_full_names(path: str | os.PathLike) -> Iterator[None]:
    """Re-raise a full-disk error of the block as :class:`DiskFullError` naming ``path``; other errors unchanged."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as err:
        if is_disk_full(err, path):
            raise DiskFullError(path) from err
        raise


def default_file_mode() -> int:
    """The mode a newly created file gets from ``open(path, "w")``: ``0o666`` less the process umask."""
    return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask sets it, racing with other threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it gets the default file mode and is renamed onto
    ``path``. A full disk raises :class:`DiskFullError` naming ``path``."""
    dest = Path(path)
    with disk_full_names(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{PARTIAL_PREFIX}{dest.name}.", suffix=suffix or ".tmp", dir=dest.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            os.chmod(tmp_path, default_file_mode())  # mkstemp creates 0600
            os.replace(tmp_path, dest)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


def partial_folder(path: str | os.PathLike) -> Path:
    """The partial name :func:`atomic_folder` builds ``path`` under: ``.tmp-<name>-<pid>`` next to it."""
    dest = Path(path)
    return dest.with_name(f"{PARTIAL_PREFIX}{dest.name}-{os.getpid()}")


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder next to ``path`` (:func:`partial_folder`); when the block succeeds its files get the
    default file mode (:func:`set_default_modes`) and it replaces ``path`` (:func:`replace_folder`), when it fails it
    is deleted. ``path`` is never seen half-written. A full disk raises :class:`DiskFullError` naming ``path``."""
    dest = Path(path)
    tmp = partial_folder(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with disk_full_names(dest):
            tmp.mkdir(parents=True)
            yield tmp
            set_default_modes(tmp)
            replace_folder(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def set_default_modes(folder: str | os.PathLike) -> None:
    """Give every regular file under ``folder`` the default file mode (:func:`default_file_mode`): libraries that
    write through their own temp files (safetensors' ``model.safetensors``) leave ``0o600``."""
    mode = default_file_mode()
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, mode)


def replace_folder(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Rename the complete folder ``src`` to ``dest``. An existing ``dest`` is first renamed to a partial name and
    deleted afterwards, so ``dest`` is at every moment the old folder, absent or the new one, never a mix."""
    src, dest = Path(src), Path(dest)
    old = None
    if dest.exists():
        old = dest.with_name(f"{PARTIAL_PREFIX}old-{dest.name}-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(dest, old)
    os.rename(src, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Hard-link ``src`` to ``dst`` (no copy of a large model file), or copy it where links are not possible."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def remove_partial(folder: str | os.PathLike, names: Iterable[str] | None = None) -> list[Path]:
    """Delete what killed writers left in ``folder`` (entries named ``.tmp-*``, not in subfolders); returns them.
    With ``names``, only the partial writes of those files (``.tmp-<name>.*``), for a folder that several writers
    share, each with its own files and lock (the SE folder). Call it only as the writer of what it deletes."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    prefixes = (PARTIAL_PREFIX,) if names is None else tuple(f"{PARTIAL_PREFIX}{n}." for n in names)
    removed = sorted(p for p in folder.iterdir() if p.name.startswith(prefixes))
    for p in removed:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return removed


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
