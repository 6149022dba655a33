"""The checkpoint's ``sessions`` table: which ``selfinstruct run`` made which tasks.

Each ``selfinstruct run`` on a run directory records a session: when it started, its
configuration (no secrets: ``Config.to_dict()``) and its provenance (seed file and its
sha256, endpoints' model, api and base_url, or the local model file). ``accepted_before``
and ``progress_before`` place the session in the checkpoint's history, so the provenance
of every task survives resumes: a task's ``accept_no`` falls in exactly one session.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .schema import has_table


def progress_mark(db: sqlite3.Connection) -> int:
    """A number that grows with everything a session adds (instructions, rejections...)."""
    row = db.execute(
        "SELECT (SELECT COUNT(*) FROM instructions) + (SELECT COUNT(*) FROM rejections) "
        "+ (SELECT COUNT(*) FROM generations)"
    ).fetchone()
    return int(row[0])


def insert_session(
    db: sqlite3.Connection,
    config: Mapping[str, Any],
    provenance: Mapping[str, Any],
    *,
    from_start: bool = False,
    started: float | None = None,
) -> int:
    """Add one session row and return its number; call inside a transaction.

    ``from_start`` records a session that made everything already in the checkpoint
    (one recovered from the ``config.json`` of a run older than the sessions table).
    """
    row = db.execute("SELECT COUNT(*) FROM instructions WHERE status = 'accepted'").fetchone()
    accepted = row[0]
    cursor = db.execute(
        "INSERT INTO sessions (started, accepted_before, progress_before, config, "
        "provenance) VALUES (?, ?, ?, ?, ?)",
        (
            time.time() if started is None else started,
            0 if from_start else accepted,
            0 if from_start else progress_mark(db),
            json.dumps(config, sort_keys=True),
            json.dumps(provenance, sort_keys=True),
        ),
    )
    return int(cursor.lastrowid or 0)


def list_sessions(db: sqlite3.Connection, accepted_now: int) -> list[dict[str, Any]]:
    """Every recorded session, oldest first (``status --json`` shows them as they are).

    Each: ``session`` (number), ``started`` (ISO 8601, UTC), ``accepted_before`` and
    ``tasks_added`` (up to the next session, or to ``accepted_now`` for the last),
    ``progress_before``, ``config`` and ``provenance``. A checkpoint from before sessions
    were recorded has none.
    """
    if not has_table(db, "sessions"):
        return []
    rows = db.execute(
        "SELECT id, started, accepted_before, progress_before, config, provenance "
        "FROM sessions ORDER BY id"
    ).fetchall()
    result = []
    for i, (number, started, before, progress, config, provenance) in enumerate(rows):
        after = rows[i + 1][2] if i + 1 < len(rows) else accepted_now
        result.append(
            {
                "session": number,
                "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
                "accepted_before": before,
                "tasks_added": after - before,
                "progress_before": progress,
                "config": json.loads(config),
                "provenance": json.loads(provenance),
            }
        )
    return result
