"""The checkpoint's ``batches`` and ``batch_requests`` tables: Batch API work, before it is sent.

Batch mode writes a batch's requests (custom_id = the request-ledger key, the stage, the
request and its JSON body) and the batch's local id here and commits BEFORE the input
file is uploaded. Each later step is recorded as soon as it is known: the provider's
file id (``uploaded``), its batch id (``submitted``), then the answers, written to the
request ledger in the same transaction that marks the batch ``collected``. A run killed
between two steps finds on resume what it already did by listing the provider's files
and batches for the local id (the file name and the batch metadata carry it), so nothing
is uploaded, created or paid for twice.

``claimed`` marks answers a stage of a live session took; generation answers that no
session claimed (their requester died) are replayed on resume, since generation prompts
are sampled and a new prompt would never meet the old answer in the ledger.

Functions take the store's connection; callers run them through the run's serialised
store calls (one writer, as for every other checkpoint write).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import CheckpointError

# prepared: requests committed, nothing sent; uploaded: the provider holds the input
# file; submitted: the batch exists; collected: its answers are in the ledger.
STATES = ("prepared", "uploaded", "submitted", "collected")
# What became of one request in a collected batch (NULL while its batch is open).
ANSWERED, FAILED, UNFINISHED = "answered", "failed", "unfinished"

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    local_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    endpoint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('prepared', 'uploaded', 'submitted', 'collected')),
    file_id TEXT,
    batch_id TEXT,
    status TEXT,
    requests INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_requests (
    local_id TEXT NOT NULL,
    key TEXT NOT NULL,
    stage TEXT NOT NULL,
    request TEXT NOT NULL,
    body TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT,
    claimed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (local_id, key)
);
CREATE INDEX IF NOT EXISTS batch_requests_key ON batch_requests (key);
"""

_TOKEN_KEY = "batch_run_token"


@dataclass(frozen=True)
class BatchRow:
    """One batch as the checkpoint knows it."""

    local_id: str
    seq: int
    endpoint: str
    state: str
    file_id: str | None
    batch_id: str | None
    status: str | None
    requests: int


@dataclass(frozen=True)
class RequestRow:
    """One request of a batch: ``request`` holds the fields of its ``CompletionRequest``."""

    local_id: str
    key: str
    stage: str
    request: str
    body: str
    attempt: int
    outcome: str | None
    claimed: bool


def _request_row(row: tuple[Any, ...]) -> RequestRow:
    local_id, key, stage, request, body, attempt, outcome, claimed = row
    return RequestRow(local_id, key, stage, request, body, attempt, outcome, bool(claimed))


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """A transaction that is on the disk when it returns, whatever the store's durability.

    Each of these commits comes right before something the provider charges for or
    remembers (an upload, a batch), so it must survive a power loss too: the commit is
    made with ``synchronous=FULL`` (an fsync of the WAL, which also makes every earlier
    commit durable), and the connection's own setting is restored after.
    """
    try:
        (before,) = db.execute("PRAGMA synchronous").fetchone()
        db.execute("PRAGMA synchronous=FULL")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
        finally:
            db.execute(f"PRAGMA synchronous={int(before)}")
    except sqlite3.Error as e:
        raise CheckpointError(f"cannot write the batch tables of the checkpoint ({e})") from None


def _add_counters(db: sqlite3.Connection, counters: Mapping[str, float] | None) -> None:
    """Counter increments riding along with a batch commit (as the store's commits do)."""
    if counters:
        db.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            list(counters.items()),
        )


def create(db: sqlite3.Connection) -> None:
    """Create the tables when missing (an older checkpoint gains them, rows untouched)."""
    db.executescript(SCHEMA)


def run_token(db: sqlite3.Connection) -> str:
    """This run directory's token, made once: local batch ids start with it, so two runs
    sharing one provider account never mistake each other's files and batches."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (_TOKEN_KEY,)).fetchone()
    if row is not None:
        return str(json.loads(row[0]))
    token = secrets.token_hex(6)
    with _transaction(db):
        db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (_TOKEN_KEY, json.dumps(token))
        )
    row = db.execute("SELECT value FROM meta WHERE key = ?", (_TOKEN_KEY,)).fetchone()
    return str(json.loads(row[0]))


def next_seq(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM batches").fetchone()
    return int(row[0])


def record_batch(
    db: sqlite3.Connection,
    local_id: str,
    seq: int,
    endpoint: str,
    rows: Sequence[tuple[str, str, str, str, int]],
    size: int,
    counters: Mapping[str, float] | None = None,
) -> None:
    """Commit a batch and its requests ``(key, stage, request, body, attempt)``, unsent."""
    now = time.time()
    with _transaction(db):
        _add_counters(db, counters)
        db.execute(
            "INSERT INTO batches (local_id, seq, endpoint, state, requests, bytes, created, "
            "updated) VALUES (?, ?, ?, 'prepared', ?, ?, ?, ?)",
            (local_id, seq, endpoint, len(rows), size, now, now),
        )
        db.executemany(
            "INSERT INTO batch_requests (local_id, key, stage, request, body, attempt) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(local_id, *row) for row in rows],
        )


def set_uploaded(
    db: sqlite3.Connection,
    local_id: str,
    file_id: str,
    counters: Mapping[str, float] | None = None,
) -> None:
    with _transaction(db):
        _add_counters(db, counters)
        db.execute(
            "UPDATE batches SET state = 'uploaded', file_id = ?, updated = ? WHERE local_id = ?",
            (file_id, time.time(), local_id),
        )


def set_submitted(
    db: sqlite3.Connection,
    local_id: str,
    batch_id: str,
    status: str,
    counters: Mapping[str, float] | None = None,
) -> None:
    with _transaction(db):
        _add_counters(db, counters)
        db.execute(
            "UPDATE batches SET state = 'submitted', batch_id = ?, status = ?, updated = ? "
            "WHERE local_id = ?",
            (batch_id, status, time.time(), local_id),
        )


def collect(
    db: sqlite3.Connection,
    local_id: str,
    status: str,
    outcomes: Iterable[tuple[str, str, bool]],
    ledger: Sequence[tuple[str, str, str]],
    counters: Mapping[str, float] | None = None,
    usage: Mapping[str, Any] | None = None,
) -> int:
    """In one transaction: the answers into the ledger ``(key, stage, completion)``, each
    request's ``(key, outcome, claimed)``, the batch marked ``collected``, ``counters``
    added and the run's ``usage`` snapshot (what was paid) stored.

    Returns how many of these answers the ledger held already: requests bought twice.
    """
    now = time.time()
    twice = 0
    with _transaction(db):
        _add_counters(db, counters)
        if usage is not None:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('usage', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (json.dumps(usage),),
            )
        for start in range(0, len(ledger), 500):
            keys = [key for key, _, _ in ledger[start : start + 500]]
            row = db.execute(
                f"SELECT COUNT(*) FROM ledger WHERE key IN ({','.join('?' * len(keys))})", keys
            ).fetchone()
            twice += int(row[0])
        db.executemany(
            "INSERT OR IGNORE INTO ledger (key, stage, completion, created) VALUES (?, ?, ?, ?)",
            [(key, stage, completion, now) for key, stage, completion in ledger],
        )
        db.executemany(
            "UPDATE batch_requests SET outcome = ?, claimed = ? WHERE local_id = ? AND key = ?",
            [(outcome, int(claimed), local_id, key) for key, outcome, claimed in outcomes],
        )
        db.execute(
            "UPDATE batches SET state = 'collected', status = ?, updated = ? WHERE local_id = ?",
            (status, now, local_id),
        )
    return twice


def mark_claimed(db: sqlite3.Connection, keys: Sequence[str]) -> None:
    with _transaction(db):
        db.executemany("UPDATE batch_requests SET claimed = 1 WHERE key = ?", [(k,) for k in keys])


def open_batches(db: sqlite3.Connection) -> list[BatchRow]:
    """Batches not collected yet, oldest first; none in a checkpoint older than the table
    (read-only readers such as ``selfinstruct status`` do not upgrade it)."""
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'batches'")
    if found.fetchone() is None:
        return []
    rows = db.execute(
        "SELECT local_id, seq, endpoint, state, file_id, batch_id, status, requests "
        "FROM batches WHERE state != 'collected' ORDER BY seq"
    )
    return [BatchRow(*row) for row in rows]


def requests_of(db: sqlite3.Connection, local_id: str) -> list[RequestRow]:
    rows = db.execute(
        "SELECT local_id, key, stage, request, body, attempt, outcome, claimed "
        "FROM batch_requests WHERE local_id = ? ORDER BY rowid",
        (local_id,),
    )
    return [_request_row(row) for row in rows]


def latest_requests(db: sqlite3.Connection) -> list[RequestRow]:
    """The newest row of every request key (its latest attempt), in submission order."""
    rows = db.execute(
        "SELECT r.local_id, r.key, r.stage, r.request, r.body, r.attempt, r.outcome, "
        "(SELECT MAX(claimed) FROM batch_requests c WHERE c.key = r.key) "
        "FROM batch_requests r JOIN batches b ON b.local_id = r.local_id "
        "WHERE b.seq = (SELECT MAX(b2.seq) FROM batch_requests r2 "
        "JOIN batches b2 ON b2.local_id = r2.local_id WHERE r2.key = r.key) "
        "ORDER BY b.seq, r.rowid"
    )
    return [_request_row(row) for row in rows]


def summary(db: sqlite3.Connection) -> dict[str, int]:
    """Batches by state and provider status, for ``status`` and audits."""
    out: dict[str, int] = {}
    for state, status, count in db.execute(
        "SELECT state, COALESCE(status, ''), COUNT(*) FROM batches GROUP BY 1, 2"
    ):
        out[f"{state}:{status}" if status else state] = int(count)
    return out
