"""The run directory: an SQLite checkpoint (WAL) plus ``tasks.jsonl`` appended as tasks finish.

SQLite is the source of truth. A task is committed there first and appended to
``tasks.jsonl`` second, so after a crash the JSONL can only lag behind. Opening the store
reconciles the file with the checkpoint by task id, whatever has been done to the file
since (blank lines, another JSON spacing, lines added by hand): it drops a torn last line,
removes blank lines and lines that repeat a committed task, keeps (and warns about) every
line that is not a committed task, appends the committed tasks the file lacks, and logs
what it did.
One process at a time owns a run directory (an ``flock`` on ``RUN_DIR/.lock``).

Each ``selfinstruct run`` on the directory records a session (its configuration, seed
file hash, endpoints or local model) in the ``sessions`` table, so the provenance of
every task survives resumes; schema version 1 checkpoints are upgraded in place.

The class is synchronous and not thread-safe; the pipeline calls it from one worker
thread at a time so that disk waits never stall the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..outputs.export import task_identity
from ..records import Instance, PendingTask, RejectionRecord, Task
from .run_files import CHECKPOINT, LOCK, TASKS

SCHEMA_VERSION = 2
# Older versions this one upgrades in place when it opens them for writing (and reads).
UPGRADABLE_VERSIONS = (1,)
REQUEST_BLOCK = 64
# Line numbers named in a repair warning, per kind; the rest are counted.
_SHOWN_LINES = 5
# SQLite result codes that mean the disk (not the file) is the problem.
_DISK_ERRORS = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY}
)

log = logging.getLogger("selfinstruct_async.checkpoint.store")

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
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    accepted_before INTEGER NOT NULL,
    progress_before INTEGER NOT NULL,
    config TEXT NOT NULL,
    provenance TEXT NOT NULL
);
"""


@dataclass
class _TasksFileScan:
    """What one pass over ``tasks.jsonl`` found; line numbers start at 1."""

    ids: dict[str, int] = field(default_factory=dict)  # committed id -> hash of its first line
    blank: list[int] = field(default_factory=list)  # carry nothing: removed
    foreign: list[int] = field(default_factory=list)  # not a task at all
    unknown: list[int] = field(default_factory=list)  # a task the checkpoint has not accepted
    duplicates: list[int] = field(default_factory=list)  # an earlier line has this task: removed
    conflicting: list[int] = field(default_factory=list)  # an id again, other content: kept
    complete_size: int = 0  # bytes up to the end of the last line kept
    torn: int = 0  # bytes of an unterminated last line that is not a task: dropped
    unterminated: bool = False  # the last line is a whole task without its newline

    def describe(self, appended: int, *, missing_file: bool) -> str:
        """What was found and done, for the warning; empty when the file was in order."""
        if missing_file:
            return f"the file was missing; wrote the {appended} committed tasks" if appended else ""
        parts = []
        if self.torn:
            parts.append(f"dropped an incomplete last line ({self.torn} bytes)")
        if self.unterminated:
            parts.append("ended the last line, which had no newline")
        if self.blank:
            what = _count(self.blank, "blank line", "blank lines")
            parts.append(f"removed {what} ({_lines(self.blank)})")
        if self.unknown:
            what = _count(self.unknown, "line not in the checkpoint", "lines not in the checkpoint")
            parts.append(f"{what} ({_lines(self.unknown)}, kept)")
        if self.foreign:
            what = _count(self.foreign, "line that is not a task", "lines that are not tasks")
            parts.append(f"{what} ({_lines(self.foreign)}, kept)")
        if self.conflicting:
            what = _count(
                self.conflicting,
                "line repeating a task id with other content",
                "lines repeating a task id with other content",
            )
            parts.append(f"{what} ({_lines(self.conflicting)}, kept)")
        if self.duplicates:
            what = _count(self.duplicates, "duplicate line", "duplicate lines")
            parts.append(f"removed {what} of committed tasks ({_lines(self.duplicates)})")
        if appended:
            tasks = "task that was" if appended == 1 else "tasks that were"
            parts.append(f"appended {appended} committed {tasks} missing")
        return ", ".join(parts)


def _count(numbers: list[int], one: str, many: str) -> str:
    return f"{len(numbers)} {one if len(numbers) == 1 else many}"


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_SHOWN_LINES])
    more = f" and {len(numbers) - _SHOWN_LINES} more" if len(numbers) > _SHOWN_LINES else ""
    return f"{'line' if len(numbers) == 1 else 'lines'} {shown}{more}"


_DECODER = json.JSONDecoder()


def _task_identity(raw: bytes) -> tuple[str, int] | None:
    try:
        # The decoder itself: json.loads would sniff the encoding of every line first.
        return task_identity(_DECODER.decode(raw.decode("utf-8")))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def _scan_tasks_file(path: Path, committed: Collection[str]) -> _TasksFileScan:
    """Classify every line of ``path`` against the ids of the committed tasks."""
    scan = _TasksFileScan()
    if not path.exists():
        return scan
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            found = _task_identity(raw) if raw.strip() else None
            if not raw.endswith(b"\n"):
                if found is None:  # a write cut short by a crash (or a stray fragment)
                    scan.torn = len(raw)
                    break
                scan.unterminated = True
            scan.complete_size += len(raw)
            if not raw.strip():
                scan.blank.append(number)
            elif found is None:
                scan.foreign.append(number)
            elif found[0] not in committed:
                scan.unknown.append(number)
            elif found[0] not in scan.ids:
                scan.ids[found[0]] = found[1]
            elif scan.ids[found[0]] == found[1]:
                scan.duplicates.append(number)
            else:
                scan.conflicting.append(number)
    return scan


def _rewrite_without(path: Path, scan: _TasksFileScan) -> None:
    """Replace ``path`` by a copy without its blank and duplicate lines (and torn tail)."""
    target = path.resolve()
    drop = set(scan.duplicates) | set(scan.blank)
    tmp = target.with_name(f".{target.name}.repair.tmp")
    try:
        with open(target, "rb") as src, open(tmp, "wb") as dst:
            os.fchmod(dst.fileno(), stat.S_IMODE(os.fstat(src.fileno()).st_mode))
            for number, raw in enumerate(src, start=1):
                if number in drop:
                    continue
                if not raw.endswith(b"\n"):
                    if scan.torn:
                        break
                    raw += b"\n"
                dst.write(raw)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


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
        self.db_path = run_dir / CHECKPOINT
        self.tasks_path = run_dir / TASKS
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
            except sqlite3.Error as e:
                self.close()
                raise self._open_error(e) from None
        # Checked before anything is created, so a newer checkpoint is left exactly as it was.
        found = self._check_schema()
        if not read_only:
            try:
                self._create_or_upgrade(found)
                self._next_request = self._reserved_until = int(self.get_meta("next_request_no", 0))
                self._repair_tasks_jsonl()
            except CheckpointError:
                self.close()
                raise
            except sqlite3.Error as e:
                self.close()
                raise self._open_error(e) from None
            except OSError as e:
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
        lock = self.run_dir / LOCK
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
            raise CheckpointError(
                f"{self.run_dir}: used by another running selfinstruct process"
            ) from None
        # The pid is for people looking at the directory; a full disk must not stop here.
        with contextlib.suppress(OSError):
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

    def _open_error(self, error: sqlite3.Error) -> CheckpointError:
        """A full or failing disk says so; anything else means the file is not a checkpoint."""
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF
        if code in _DISK_ERRORS:
            if self.read_only:
                return CheckpointError(f"{self.db_path}: cannot read the checkpoint ({error})")
            return self._write_error("open the checkpoint", error)
        return CheckpointError(f"{self.db_path}: not a usable checkpoint ({error})")

    def _check_schema(self) -> int | None:
        """The checkpoint's schema version (None when new); refuses versions it cannot read."""
        try:
            has_meta = self.db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            found = self.get_meta("schema_version", None) if has_meta else None
        except sqlite3.Error as e:
            self.close()
            raise self._open_error(e) from None
        if found is None:
            return None
        try:
            version = int(found)
        except (TypeError, ValueError):
            self.close()
            raise CheckpointError(
                f"{self.db_path}: not a usable checkpoint (schema version {found!r})"
            ) from None
        if version == SCHEMA_VERSION or version in UPGRADABLE_VERSIONS:
            return version
        self.close()
        newer = "a newer" if version > SCHEMA_VERSION else "an older"
        raise CheckpointError(
            f"{self.db_path}: checkpoint schema version {found} is from {newer} "
            f"selfinstruct-async (this one reads version {SCHEMA_VERSION}); "
            "use the matching version, nothing was changed"
        )

    def _create_or_upgrade(self, found: int | None) -> None:
        """Create missing tables; an older schema gains its new tables and keeps every row."""
        self.db.executescript(_SCHEMA)
        if found == SCHEMA_VERSION:
            return
        with self._transaction():
            self.set_meta("schema_version", SCHEMA_VERSION)
            if found is not None:
                self.set_meta("upgraded_from_schema", found)
        if found is not None:
            log.info(
                "%s: checkpoint upgraded from schema version %d to %d",
                self.db_path,
                found,
                SCHEMA_VERSION,
            )

    def _repair_tasks_jsonl(self) -> None:
        """Make ``tasks.jsonl`` hold every committed task exactly once; log what was repaired.

        Reconciled by id, not by position: the file may have been reformatted or added to
        by hand since the last run. Lines that are not committed tasks are kept.
        """
        committed = dict(
            self.db.execute("SELECT id, accept_no FROM instructions WHERE status = 'accepted'")
        )
        existed = self.tasks_path.exists()
        if existed:
            # Fail now, not after paying for the first task, if the file cannot be appended to.
            os.close(os.open(self.tasks_path, os.O_WRONLY | os.O_APPEND))
        scan = _scan_tasks_file(self.tasks_path, committed.keys())
        if scan.duplicates or scan.blank:
            _rewrite_without(self.tasks_path, scan)
        elif scan.torn:
            with open(self.tasks_path, "rb+") as f:
                f.truncate(scan.complete_size)
                os.fsync(f.fileno())
        elif scan.unterminated:
            self._append_lines([""])
        missing = sorted(committed.keys() - scan.ids.keys(), key=committed.__getitem__)
        if missing:
            self._append_lines(task_line(t) for t in self._tasks_by_id(missing))
        repaired = scan.describe(len(missing), missing_file=not existed)
        if repaired:
            log.warning("%s: %s", self.tasks_path, repaired)

    def _tasks_by_id(self, ids: list[str]) -> Iterator[Task]:
        """Accepted tasks with these ids, in the order given."""
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self.db.execute(
                "SELECT id, instruction, is_classification, instances FROM instructions "
                f"WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            by_id = {row[0]: self._task_from_row(row) for row in rows}
            yield from (by_id[i] for i in chunk)

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
                    # mid-file, a damaged line the repair on open could only keep and warn of.
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

    # ------------------------------------------------------------ sessions

    def progress_mark(self) -> int:
        """A number that grows with everything a session adds (instructions, rejections...)."""
        row = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM instructions) + (SELECT COUNT(*) FROM rejections) "
            "+ (SELECT COUNT(*) FROM generations)"
        ).fetchone()
        return int(row[0])

    def add_session(
        self,
        config: Mapping[str, Any],
        provenance: Mapping[str, Any],
        *,
        from_start: bool = False,
        started: float | None = None,
    ) -> int:
        """Record the start of a ``selfinstruct run`` session (no secrets); return its number.

        ``from_start`` records a session that made everything already in the checkpoint
        (one recovered from the ``config.json`` of a run older than the sessions table).
        """
        with self._transaction():
            accepted = self.db.execute(
                "SELECT COUNT(*) FROM instructions WHERE status = 'accepted'"
            ).fetchone()[0]
            cursor = self.db.execute(
                "INSERT INTO sessions (started, accepted_before, progress_before, config, "
                "provenance) VALUES (?, ?, ?, ?, ?)",
                (
                    time.time() if started is None else started,
                    0 if from_start else accepted,
                    0 if from_start else self.progress_mark(),
                    json.dumps(config, sort_keys=True),
                    json.dumps(provenance, sort_keys=True),
                ),
            )
        return int(cursor.lastrowid or 0)

    def sessions(self) -> list[dict[str, Any]]:
        """Every recorded session, oldest first, for provenance (``status --json``).

        Each: ``session`` (number), ``started`` (ISO 8601, UTC), ``accepted_before`` and
        ``tasks_added`` (so a task's ``accept_no`` places it in its session),
        ``progress_before``, ``config`` (``Config.to_dict()``) and ``provenance`` (seed
        file and its sha256, endpoints' model, api and base_url, or the local model file).
        A checkpoint from before sessions were recorded has none.
        """
        has_table = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sessions'"
        ).fetchone()
        if not has_table:
            return []
        rows = self.db.execute(
            "SELECT id, started, accepted_before, progress_before, config, provenance "
            "FROM sessions ORDER BY id"
        ).fetchall()
        accepted_now = self.count_by_status()["accepted"]
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
