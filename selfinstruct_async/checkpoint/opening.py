"""Opening a run directory: the owner's lock, the SQLite connection, and clear open errors.

One process at a time owns a run directory (an ``flock`` on ``RUN_DIR/.lock``); any number
of read-only connections may read it meanwhile (``status``, ``stats``). Every failure
becomes one :class:`~selfinstruct_async.errors.CheckpointError` line naming the file and
saying whether the disk or the file is the problem.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path
from typing import Final

from ..errors import CheckpointError
from .run_files import LOCK

#: ``PRAGMA synchronous`` for each durability (see ``store.DURABILITY``).
SYNCHRONOUS: Final[dict[str, str]] = {"process": "NORMAL", "power": "FULL"}
# SQLite result codes that mean the disk (not the file) is the problem.
_DISK_ERRORS = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY}
)


def lock_run_dir(run_dir: Path) -> int:
    """Create ``run_dir`` if needed and take its lock; return the lock's descriptor."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"{run_dir}: cannot create run directory ({e.strerror})") from None
    if not os.access(run_dir, os.W_OK):
        raise CheckpointError(f"{run_dir}: run directory is not writable")
    lock = run_dir / LOCK
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise CheckpointError(
            f"{lock}: cannot open the run's lock file ({e.strerror or e}); it must be a "
            "regular file (selfinstruct creates it when it is missing)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CheckpointError(f"{run_dir}: used by another running selfinstruct process") from None
    # The pid is for people looking at the directory; a full disk must not stop here.
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    return fd


def lost_checkpoint(db_path: Path, tasks_path: Path) -> CheckpointError | None:
    """Tasks without a checkpoint: starting afresh would reuse their ids, so refuse."""

    def size(path: Path) -> int:
        return path.stat().st_size if path.exists() else 0

    wal = db_path.with_name(db_path.name + "-wal")
    if size(db_path) == 0 and size(wal) == 0 and size(tasks_path) > 0:
        return CheckpointError(
            f"{tasks_path} holds tasks but {db_path.name} is missing or empty: "
            "the checkpoint was lost; restore it, or move tasks.jsonl away to start afresh"
        )
    return None


def connect_read_only(db_path: Path) -> sqlite3.Connection:
    run_dir = db_path.parent
    if not db_path.exists():
        raise CheckpointError(f"{run_dir}: no checkpoint here (missing {db_path.name})")
    uri = f"file:{db_path}?mode=ro"
    if not os.access(run_dir, os.W_OK):
        # Read-only media: nobody can be writing, and WAL's -shm cannot be created.
        uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


def connect_writable(db_path: Path, durability: str) -> sqlite3.Connection:
    """A connection in autocommit mode (the store opens its own transactions), WAL."""
    db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={SYNCHRONOUS[durability]}")
    except sqlite3.Error as e:
        db.close()
        raise open_error(e, db_path, read_only=False) from None
    return db


def write_error(doing: str, error: BaseException, db_path: Path) -> CheckpointError:
    """One clear line for a failed write: disk full, file too large, I/O error..."""
    if isinstance(error, OSError):
        where = error.filename or db_path.parent
        why = error.strerror or str(error)
    else:
        where, why = db_path, str(error)
    return CheckpointError(
        f"{where}: cannot {doing} ({why}); everything committed before is kept, "
        "run again once there is room"
    )


def open_error(error: sqlite3.Error, db_path: Path, *, read_only: bool) -> CheckpointError:
    """A full or failing disk says so; anything else means the file is not a checkpoint."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code in _DISK_ERRORS:
        if read_only:
            return CheckpointError(f"{db_path}: cannot read the checkpoint ({error})")
        return write_error("open the checkpoint", error, db_path)
    return CheckpointError(f"{db_path}: not a usable checkpoint ({error})")
