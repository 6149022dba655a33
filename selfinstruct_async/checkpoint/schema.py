"""The checkpoint's SQLite schema, its version, and the in-place upgrade of older ones.

A checkpoint records its schema version in the ``meta`` table. Opening one checks the
version before anything is created or written, so a checkpoint from a newer
selfinstruct-async is refused and left exactly as it was; versions in
:data:`UPGRADABLE_VERSIONS` gain their new tables (every row kept) when opened for writing.
Version 1 had no ``sessions`` table.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .batches_table import SCHEMA as BATCH_SCHEMA

SCHEMA_VERSION = 2
# Older versions this one upgrades in place when it opens them for writing (and reads).
UPGRADABLE_VERSIONS = (1,)

log = logging.getLogger("selfinstruct_async.checkpoint.schema")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instructions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    instruction TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
    is_classification INTEGER,
    instances TEXT,
    request_no INTEGER,
    created REAL NOT NULL,
    finished REAL,
    accept_no INTEGER UNIQUE
);
CREATE INDEX IF NOT EXISTS instructions_status ON instructions (status, seq);
CREATE TABLE IF NOT EXISTS rejections (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    level TEXT NOT NULL,
    filter TEXT NOT NULL,
    reason TEXT NOT NULL,
    text TEXT NOT NULL,
    task_id TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rejections_task ON rejections (task_id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
    key TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    completion TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS generations (
    request_no INTEGER PRIMARY KEY,
    items TEXT NOT NULL,
    processed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    accepted_before INTEGER NOT NULL,
    progress_before INTEGER NOT NULL,
    config TEXT NOT NULL,
    provenance TEXT NOT NULL
);
"""


def has_table(db: sqlite3.Connection, name: str) -> bool:
    """Whether the checkpoint has table ``name`` (an older schema may lack it)."""
    row = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def stored_version(db: sqlite3.Connection) -> Any:
    """The ``schema_version`` the checkpoint records, as stored; None for a new file.

    Raises ``sqlite3.Error`` when the file is not a database at all.
    """
    if not has_table(db, "meta"):
        return None
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else json.loads(row[0])


def readable_version(found: Any, db_path: Path) -> int:
    """``found`` as a version this code reads; :class:`CheckpointError` for any other."""
    try:
        version = int(found)
    except (TypeError, ValueError):
        raise CheckpointError(
            f"{db_path}: not a usable checkpoint (schema version {found!r})"
        ) from None
    if version == SCHEMA_VERSION or version in UPGRADABLE_VERSIONS:
        return version
    newer = "a newer" if version > SCHEMA_VERSION else "an older"
    raise CheckpointError(
        f"{db_path}: checkpoint schema version {found} is from {newer} "
        f"selfinstruct-async (this one reads version {SCHEMA_VERSION}); "
        "use the matching version, nothing was changed"
    )


def create_tables(db: sqlite3.Connection) -> None:
    """Create whatever tables and indexes are missing; existing rows are untouched."""
    db.executescript(SCHEMA)
    db.executescript(BATCH_SCHEMA)  # batch mode's tables (checkpoint.batches_table)


def record_version(db: sqlite3.Connection, found: int | None) -> None:
    """Record :data:`SCHEMA_VERSION` (and the version upgraded from); call in a transaction."""
    meta = [("schema_version", SCHEMA_VERSION)]
    if found is not None:
        meta.append(("upgraded_from_schema", found))
    db.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [(key, json.dumps(value)) for key, value in meta],
    )


def log_upgrade(db_path: Path, found: int) -> None:
    """Say, once, that the checkpoint at ``db_path`` was upgraded from version ``found``."""
    log.info("%s: checkpoint upgraded from schema version %d to %d", db_path, found, SCHEMA_VERSION)
