"""The run directory: an SQLite checkpoint (WAL) plus ``tasks.jsonl`` appended as tasks finish.

SQLite is the source of truth. A task is committed there first and appended to
``tasks.jsonl`` second, so after a crash the JSONL can only lag behind: opening the
store drops a torn last line and appends whatever the checkpoint holds beyond it.
One process at a time owns a run directory (an ``flock`` on ``RUN_DIR/.lock``).

The class is synchronous and not thread-safe; the pipeline calls it from one worker
thread at a time so that disk waits never stall the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .errors import CheckpointError
from .records import Instance, PendingTask, RejectionRecord, Task

SCHEMA_VERSION = 1
# Every task line starts with its id (task_line); reading just that keeps reopening fast.
_LINE_ID = re.compile(rb'^\{"id": ("(?:[^"\\]|\\.)*")')
REQUEST_BLOCK = 64

_SCHEMA = """
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
"""


def _instances_json(instances: Iterable[Instance]) -> str:
    return json.dumps([asdict(i) for i in instances], ensure_ascii=False)


def task_line(task: Task) -> str:
    """The ``tasks.jsonl`` form of a task (documented in the README)."""
    return json.dumps(
        {
            "id": task.id,
            "instruction": task.instruction,
            "is_classification": task.is_classification,
            "instances": [asdict(i) for i in task.instances],
        },
        ensure_ascii=False,
    )


class Store:
    """Checkpoint and outputs of one run directory."""

    def __init__(self, run_dir: Path, *, read_only: bool = False) -> None:
        self.run_dir = run_dir
        self.read_only = read_only
        self.db_path = run_dir / "checkpoint.sqlite"
        self.tasks_path = run_dir / "tasks.jsonl"
        self._lock_fd: int | None = None
        self._next_request = 0
        self._reserved_until = 0
        if read_only:
            if not self.db_path.exists():
                raise CheckpointError(
                    f"{run_dir}: no checkpoint here (missing {self.db_path.name})"
                )
            uri = f"file:{self.db_path}?mode=ro"
            if not os.access(run_dir, os.W_OK):
                # Read-only media: nobody can be writing, and WAL's -shm cannot be created.
                uri += "&immutable=1"
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self._prepare_dir()
            self._refuse_lost_checkpoint()
            self.db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
                self.db.executescript(_SCHEMA)
            except sqlite3.DatabaseError as e:
                self.close()
                raise CheckpointError(f"{self.db_path}: not a usable checkpoint ({e})") from None
        self._check_schema()
        if not read_only:
            try:
                self._next_request = self._reserved_until = int(self.get_meta("next_request_no", 0))
                self._repair_tasks_jsonl()
            except (OSError, sqlite3.Error) as e:
                self.close()
                raise self._write_error("open the run directory", e) from None

    # ------------------------------------------------------------ opening

    def _prepare_dir(self) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CheckpointError(
                f"{self.run_dir}: cannot create run directory ({e.strerror})"
            ) from None
        if not os.access(self.run_dir, os.W_OK):
            raise CheckpointError(f"{self.run_dir}: run directory is not writable")
        fd = os.open(self.run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CheckpointError(
                f"{self.run_dir}: used by another running selfinstruct process"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _refuse_lost_checkpoint(self) -> None:
        """Tasks without a checkpoint: starting afresh would reuse their ids. Touch nothing."""

        def size(path: Path) -> int:
            return path.stat().st_size if path.exists() else 0

        wal = self.db_path.with_name(self.db_path.name + "-wal")
        if size(self.db_path) == 0 and size(wal) == 0 and size(self.tasks_path) > 0:
            self.close()
            raise CheckpointError(
                f"{self.tasks_path} holds tasks but {self.db_path.name} is missing or empty: "
                "the checkpoint was lost; restore it, or move tasks.jsonl away to start afresh"
            )

    def _write_error(self, doing: str, error: BaseException) -> CheckpointError:
        """One clear line for a failed write: disk full, file too large, I/O error..."""
        if isinstance(error, OSError):
            where = error.filename or self.run_dir
            why = error.strerror or str(error)
        else:
            where, why = self.db_path, str(error)
        return CheckpointError(
            f"{where}: cannot {doing} ({why}); everything committed before is kept, "
            "run again once there is room"
        )

    def _check_schema(self) -> None:
        try:
            found = self.get_meta("schema_version", None)
        except sqlite3.DatabaseError as e:
            self.close()
            raise CheckpointError(f"{self.db_path}: not a usable checkpoint ({e})") from None
        if found is None:
            if not self.read_only:
                self.set_meta("schema_version", SCHEMA_VERSION)
            return
        if int(found) != SCHEMA_VERSION:
            self.close()
            newer = "a newer" if int(found) > SCHEMA_VERSION else "an older"
            raise CheckpointError(
                f"{self.db_path}: checkpoint schema version {found} is from {newer} "
                f"selfinstruct-async (this one reads version {SCHEMA_VERSION}); "
                "use the matching version, nothing was changed"
            )

    def _repair_tasks_jsonl(self) -> None:
        """Drop a torn last line and append committed tasks the file does not have yet.

        Lines are appended in commit order, which ``accept_no`` numbers, so the file is
        always a prefix of that order: only its last complete line needs reading.
        """
        last_id = None
        if self.tasks_path.exists():
            with open(self.tasks_path, "rb+") as f:
                size = f.seek(0, os.SEEK_END)
                start = max(0, size - (1 << 20))
                f.seek(start)
                tail = f.read()
                keep = tail.rfind(b"\n") + 1
                if start + keep < size:
                    f.truncate(start + keep)
                lines = tail[:keep].splitlines()
                found = _LINE_ID.match(lines[-1]) if lines else None
                if found:
                    last_id = json.loads(found.group(1))
        after = 0
        if last_id is not None:
            row = self.db.execute(
                "SELECT accept_no FROM instructions WHERE id = ?", (last_id,)
            ).fetchone()
            after = row[0] if row and row[0] is not None else 0
        missing = [
            self._task_from_row(r)
            for r in self.db.execute(
                "SELECT id, instruction, is_classification, instances FROM instructions "
                "WHERE status = 'accepted' AND accept_no > ? ORDER BY accept_no",
                (after,),
            )
        ]
        if missing:
            self._append_lines(task_line(t) for t in missing)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ meta, counters

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self._execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def add_counters(self, deltas: Mapping[str, float]) -> None:
        if not deltas:
            return
        with self._transaction():
            self._add_counters(deltas)

    def _add_counters(self, deltas: Mapping[str, float]) -> None:
        self.db.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            list(deltas.items()),
        )

    def counters(self) -> dict[str, float]:
        return {name: value for name, value in self.db.execute("SELECT name, value FROM counters")}

    def next_request_no(self) -> int:
        """Number requests across resumes; blocks are reserved so numbers never repeat."""
        if self._next_request >= self._reserved_until:
            self._reserved_until = self._next_request + REQUEST_BLOCK
            self.set_meta("next_request_no", self._reserved_until)
        number = self._next_request
        self._next_request += 1
        return number

    # ------------------------------------------------------------ tasks

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.db.execute("COMMIT")
            except BaseException:
                # SQLITE_FULL and some I/O errors have already rolled back: a second ROLLBACK
                # would raise "no transaction is active" and hide the cause.
                if self.db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise self._write_error("write the checkpoint", e) from None

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> None:
        """A single write outside :meth:`_transaction`, with the same clear error."""
        try:
            self.db.execute(sql, tuple(params))
        except sqlite3.Error as e:
            raise self._write_error("write the checkpoint", e) from None

    def add_pending(self, task: PendingTask, request_no: int) -> None:
        """Record an instruction that passed the instruction filters."""
        with self._transaction():
            self.db.execute(
                "INSERT INTO instructions (id, instruction, status, request_no, created) "
                "VALUES (?, ?, 'pending', ?, ?)",
                (task.id, task.instruction, request_no, time.time()),
            )

    def set_classification(self, task_id: str, is_classification: bool) -> None:
        self._execute(
            "UPDATE instructions SET is_classification = ? WHERE id = ?",
            (int(is_classification), task_id),
        )

    def add_rejections(
        self, rejections: Iterable[RejectionRecord], counters: Mapping[str, float] | None = None
    ) -> None:
        with self._transaction():
            self._add_rejections(rejections)
            self._add_counters(counters or {})

    def _add_rejections(self, rejections: Iterable[RejectionRecord]) -> None:
        now = time.time()
        self.db.executemany(
            "INSERT INTO rejections (level, filter, reason, text, task_id, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(r.level, r.filter, r.reason, r.text, r.task_id, now) for r in rejections],
        )

    def finish_task(
        self,
        task_id: str,
        accepted: Task | None,
        rejections: Iterable[RejectionRecord] = (),
        counters: Mapping[str, float] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Commit a task's outcome, then append it to ``tasks.jsonl`` when it was accepted."""
        with self._transaction():
            for key, value in (meta or {}).items():
                self.set_meta(key, value)
            if accepted is not None:
                self.db.execute(
                    "UPDATE instructions SET status = 'accepted', is_classification = ?, "
                    "instances = ?, finished = ?, accept_no = "
                    "(SELECT COALESCE(MAX(accept_no), 0) + 1 FROM instructions) WHERE id = ?",
                    (
                        int(accepted.is_classification),
                        _instances_json(accepted.instances),
                        time.time(),
                        task_id,
                    ),
                )
            else:
                self.db.execute(
                    "UPDATE instructions SET status = 'rejected', finished = ? WHERE id = ?",
                    (time.time(), task_id),
                )
            self._add_rejections(rejections)
            self._add_counters(counters or {})
        if accepted is not None:
            self._append_lines([task_line(accepted)])

    def _append_lines(self, lines: Iterable[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        try:
            # Unbuffered, so that after a failed write no buffer is flushed again on close.
            fd = os.open(self.tasks_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                except OSError:
                    # Drop the partial line now: a later successful append would bury it
                    # where the repair on open (last line only) cannot see it.
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)
                    raise
            finally:
                os.close(fd)
        except OSError as e:
            raise CheckpointError(
                f"{self.tasks_path}: cannot append ({e.strerror or e}); the task is committed "
                "in the checkpoint and is written here when the run resumes"
            ) from None

    # ------------------------------------------------------------ request ledger

    def ledger_get(self, key: str) -> str | None:
        """A completion bought earlier for the request with this content hash."""
        row = self.db.execute("SELECT completion FROM ledger WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def ledger_put(self, key: str, stage: str, completion: str) -> None:
        """Record a completion before anything processes it (durable on return)."""
        self._execute(
            "INSERT OR IGNORE INTO ledger (key, stage, completion, created) VALUES (?, ?, ?, ?)",
            (key, stage, completion, time.time()),
        )

    def add_generation(self, request_no: int, items: list[str]) -> None:
        """Parsed instructions of one generation request, kept until all are filtered."""
        self._execute(
            "INSERT OR IGNORE INTO generations (request_no, items, processed) VALUES (?, ?, ?)",
            (request_no, json.dumps(items, ensure_ascii=False), int(not items)),
        )

    def mark_generation_processed(self, request_no: int) -> None:
        self._execute("UPDATE generations SET processed = 1 WHERE request_no = ?", (request_no,))

    def unprocessed_generations(self) -> list[tuple[int, list[str]]]:
        rows = self.db.execute(
            "SELECT request_no, items FROM generations WHERE processed = 0 ORDER BY request_no"
        )
        return [(number, json.loads(items)) for number, items in rows]

    def is_decided(self, candidate_id: str) -> bool:
        """Whether a candidate already joined the pool or was rejected (resume de-duplication)."""
        row = self.db.execute(
            "SELECT 1 FROM instructions WHERE id = ? UNION ALL "
            "SELECT 1 FROM rejections WHERE task_id = ? AND level = 'instruction' LIMIT 1",
            (candidate_id, candidate_id),
        ).fetchone()
        return row is not None

    # ------------------------------------------------------------ reading back

    @staticmethod
    def _task_from_row(row: tuple[Any, ...]) -> Task:
        task_id, instruction, is_clf, instances = row
        return Task(
            id=task_id,
            instruction=instruction,
            is_classification=bool(is_clf),
            instances=tuple(Instance(**i) for i in json.loads(instances or "[]")),
        )

    def accepted_tasks(self) -> list[Task]:
        rows = self.db.execute(
            "SELECT id, instruction, is_classification, instances FROM instructions "
            "WHERE status = 'accepted' ORDER BY accept_no"
        )
        return [self._task_from_row(r) for r in rows]

    def pending_tasks(self) -> list[PendingTask]:
        rows = self.db.execute(
            "SELECT id, instruction, is_classification FROM instructions "
            "WHERE status = 'pending' ORDER BY seq"
        )
        return [
            PendingTask(id=i, instruction=text, is_classification=None if c is None else bool(c))
            for i, text, c in rows
        ]

    def pooled_instructions(self) -> list[str]:
        """Every instruction that passed the instruction filters (pending or accepted)."""
        rows = self.db.execute(
            "SELECT instruction FROM instructions WHERE status != 'rejected' ORDER BY seq"
        )
        return [r[0] for r in rows]

    def count_by_status(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) FROM instructions GROUP BY status")
        counts = {"pending": 0, "accepted": 0, "rejected": 0}
        counts.update({status: n for status, n in rows})
        return counts

    def rejection_summary(self, examples: int = 3) -> dict[str, dict[str, Any]]:
        """Rejections by ``level/filter``: count and a few recent examples."""
        summary: dict[str, dict[str, Any]] = {}
        for level, name, count in self.db.execute(
            "SELECT level, filter, COUNT(*) FROM rejections GROUP BY level, filter ORDER BY 3 DESC"
        ):
            recent = self.db.execute(
                "SELECT reason, text FROM rejections WHERE level = ? AND filter = ? "
                "ORDER BY seq DESC LIMIT ?",
                (level, name, examples),
            ).fetchall()
            summary[f"{level}/{name}"] = {
                "count": count,
                "examples": [{"reason": r, "text": t} for r, t in recent],
            }
        return summary
