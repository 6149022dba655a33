"""Reading tasks and rejections back out of the checkpoint's tables (no writes).

The queries behind :class:`~selfinstruct_async.checkpoint.store.Store`'s reading methods:
accepted tasks in acceptance order, pending ones in the order they joined the pool, the
pool's instructions, counts by status and rejections by filter. Each takes the store's
connection; the store flushes its waiting writes first where a read must see them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from ..records import Instance, PendingTask, Task

_TASK_COLUMNS = "SELECT id, instruction, is_classification, instances FROM instructions "


def task_from_row(row: tuple[Any, ...]) -> Task:
    task_id, instruction, is_clf, instances = row
    return Task(
        id=task_id,
        instruction=instruction,
        is_classification=bool(is_clf),
        instances=tuple(Instance(**i) for i in json.loads(instances or "[]")),
    )


def tasks_by_id(db: sqlite3.Connection, ids: list[str]) -> Iterator[Task]:
    """Accepted tasks with these ids, in the order given."""
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = db.execute(_TASK_COLUMNS + f"WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        by_id = {row[0]: task_from_row(row) for row in rows}
        yield from (by_id[i] for i in chunk)


def accepted_tasks(db: sqlite3.Connection) -> list[Task]:
    rows = db.execute(_TASK_COLUMNS + "WHERE status = 'accepted' ORDER BY accept_no")
    return [task_from_row(r) for r in rows]


def pending_tasks(db: sqlite3.Connection) -> list[PendingTask]:
    rows = db.execute(
        "SELECT id, instruction, is_classification FROM instructions "
        "WHERE status = 'pending' ORDER BY seq"
    )
    return [
        PendingTask(id=i, instruction=text, is_classification=None if c is None else bool(c))
        for i, text, c in rows
    ]


def pooled_instructions(db: sqlite3.Connection) -> list[str]:
    rows = db.execute("SELECT instruction FROM instructions ORDER BY seq")
    return [r[0] for r in rows]


def count_by_status(db: sqlite3.Connection) -> dict[str, int]:
    rows = db.execute("SELECT status, COUNT(*) FROM instructions GROUP BY status")
    counts = {"pending": 0, "accepted": 0, "rejected": 0}
    counts.update({status: n for status, n in rows})
    return counts


def rejection_summary(db: sqlite3.Connection, examples: int) -> dict[str, dict[str, Any]]:
    """Rejections by ``level/filter``: count and a few recent examples."""
    summary: dict[str, dict[str, Any]] = {}
    for level, name, count in db.execute(
        "SELECT level, filter, COUNT(*) FROM rejections GROUP BY level, filter ORDER BY 3 DESC"
    ):
        recent = db.execute(
            "SELECT reason, text FROM rejections WHERE level = ? AND filter = ? "
            "ORDER BY seq DESC LIMIT ?",
            (level, name, examples),
        ).fetchall()
        summary[f"{level}/{name}"] = {
            "count": count,
            "examples": [{"reason": r, "text": t} for r, t in recent],
        }
    return summary
