"""One writer per output: a lock file in each output folder while a command writes it.

A command that writes an output folder (``sent train``: the run folder; ``sent eval``: its ``--out``; ``sent
semantic-entropy``: the domain's SE tables; ``sent curriculum``: the curriculum folder) holds :func:`writer_lock` for
the whole of its work. The lock is a small JSON file ``{"pid", "host", "command", "started", "pid_start"}`` created
with ``O_CREAT | O_EXCL`` (so two writers cannot both create it) and removed when the command ends, also on an
exception (context manager, and ``atexit`` as a second net).

A second writer gets :class:`LockHeldError`, whose one-line message names the holder::

    runs/grpo/seed0 is being written by pid 1234 on host h (sent train --config ..., since 12:01); wait for it or
    stop it

A lock left by a killed command (same host, its process gone, or its PID now used by another process) is stale: it is
taken over with a logged warning. A lock from another host is never taken over automatically (its process cannot
be checked from here); the message says which file to delete once no job runs there.

Under several processes (``accelerate launch``) only the main process takes the lock (:func:`is_main_process`):
the other ranks write nothing that a second job could tear and must not fail on the main process's lock.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path


logger = logging.getLogger(__name__)

#: File name of the lock inside an output folder.
LOCK = ".lock"
#: An unreadable (empty or torn) lock file older than this is left by a writer killed while creating it.
TORN_AFTER_S = 30.0
#: Lock files this process holds (released at exit if a caller did not).
_HELD: set[Path] = set()


class LockHeldError(RuntimeError):
    """Another live process writes the same output; the message names it (pid, host, command, start time)."""


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a multi-process launch (``RANK``, else ``LOCAL_RANK``, as set by
    ``accelerate launch`` / ``torchrun``)."""
    rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))
    try:
        return int(rank) == 0
    except ValueError:
        return True


def command_line(prog: str, argv: list[str] | None = None, limit: int = 120) -> str:
    """``prog`` and its arguments as one shell line (``sys.argv[1:]`` when ``argv`` is None), cut to ``limit``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None and args and args[0] == prog.split()[-1]:  # `sent <command> ...`: the name is in prog already
        args = args[1:]
    line = shlex.join([*prog.split(), *map(str, args)])
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux ``/proc``), or None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the command name in (...) may contain spaces


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_lock(path: str | os.PathLike) -> dict | None:
    """The holder recorded in a lock file, ``{}`` when it is unreadable (being written, or torn), None when absent."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _since(started: str | None) -> str:
    try:
        when = datetime.fromisoformat(str(started))
    except ValueError:
        return "an unknown time"
    return when.strftime("%H:%M" if when.date() == datetime.now().date() else "%Y-%m-%d %H:%M")


def holder_text(holder: dict) -> str:
    """``pid 1234 on host h (sent train ..., since 12:01)``."""
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
            f"({holder.get('command', '?')}, since {_since(holder.get('started'))})")


def is_stale(holder: dict) -> bool:
    """True when the holder is a process of this host that no longer runs (or whose PID another process reuses)."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        pid = int(holder["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if pid == os.getpid():
        return True  # a lock of this very process that it does not hold: left by an earlier call that died
    if not _alive(pid):
        return True
    recorded, now = holder.get("pid_start"), _process_start(pid)
    return recorded is not None and now is not None and str(recorded) != now


def _unlink_if_same(lock: Path, inode: int) -> None:
    """Remove the stale lock file that was read, not one another writer created since (two takers of one stale
    lock: the second finds a new file and re-reads it)."""
    try:
        if lock.stat().st_ino == inode:
            lock.unlink()
    except FileNotFoundError:
        pass


def acquire(path: str | os.PathLike, command: str, target: str | os.PathLike | None = None) -> Path:
    """Create the lock file ``path`` for ``command``; raise :class:`LockHeldError` when a live writer holds it.

    ``target`` (default: the lock's folder) is what the message says is being written. A stale lock is replaced
    with a warning; a lock from another host never is."""
    lock = Path(path)
    what = str(target if target is not None else lock.parent)
    lock.parent.mkdir(parents=True, exist_ok=True)
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
              "started": datetime.now().isoformat(timespec="seconds"), "pid_start": _process_start(os.getpid())}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            fd = None
        if fd is None:
            try:
                st = lock.stat()
            except FileNotFoundError:
                continue  # released meanwhile: try again
            inode, age = st.st_ino, time.time() - st.st_mtime
            holder = read_lock(lock)
            if holder is None:
                continue
            if not holder and age < TORN_AFTER_S:
                raise LockHeldError(f"{what} has a lock file {lock} that cannot be read (another writer may be "
                                    f"creating it); if no job writes {what}, delete {lock}")
            if not holder:  # a writer killed between creating and filling it
                logger.warning("%s: taking over the unreadable lock file %s (%.0f s old)", what, lock, age)
                _unlink_if_same(lock, inode)
                continue
            if lock.resolve() in _HELD and holder.get("pid") == os.getpid():
                raise LockHeldError(f"{what} is already being written by this process ({holder_text(holder)})")
            if holder.get("host") != socket.gethostname():
                raise LockHeldError(f"{what} is being written by {holder_text(holder)}; wait for it or stop it (the "
                                    f"lock of another host is never taken over: if no job runs there, delete {lock})")
            if not is_stale(holder):
                raise LockHeldError(f"{what} is being written by {holder_text(holder)}; wait for it or stop it")
            logger.warning("%s: taking over the stale lock of %s (that process is gone)", what, holder_text(holder))
            _unlink_if_same(lock, inode)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(record) + "\n")
        _HELD.add(lock.resolve())
        return lock
    raise LockHeldError(f"{what}: could not take the lock {lock} (other writers keep taking it); try again")


def release(path: str | os.PathLike) -> None:
    """Remove the lock file ``path`` if this process holds it (a lock another process took over is left alone)."""
    lock = Path(path)
    key = lock.resolve()
    if key not in _HELD:
        return
    _HELD.discard(key)
    holder = read_lock(lock)
    if holder is not None and holder.get("pid") == os.getpid():
        lock.unlink(missing_ok=True)


@contextmanager
def writer_lock(folder: str | os.PathLike, command: str, *, lock_file: str | os.PathLike | None = None,
                target: str | os.PathLike | None = None, enabled: bool | None = None) -> Iterator[Path | None]:
    """Hold the lock of output ``folder`` (file ``<folder>/.lock``, or ``lock_file``) while the block runs.

    ``enabled=None`` takes it on the main process only (:func:`is_main_process`); the other ranks get None."""
    if enabled is None:
        enabled = is_main_process()
    if not enabled:
        yield None
        return
    path = Path(lock_file) if lock_file is not None else Path(folder) / LOCK
    acquire(path, command, target=target if target is not None else folder)
    try:
        yield path
    finally:
        release(path)


@atexit.register
def _release_all() -> None:
    for key in list(_HELD):
        release(key)
