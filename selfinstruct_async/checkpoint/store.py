"""The run directory: an SQLite checkpoint (WAL) plus ``tasks.jsonl`` appended as tasks finish.

:class:`Store` is the one object the pipeline writes a run through. SQLite is the source
of truth: a task is committed there first and appended to ``tasks.jsonl`` second, and
opening the store reconciles the file with the checkpoint by task id. The parts it puts
together each live in their own module:

* :mod:`.schema`: the tables, the schema version, the in-place upgrade of older ones;
* :mod:`.tasks_file`: the ``tasks.jsonl`` line format, appending, the repair on open;
* :mod:`.sessions_table`: which ``selfinstruct run`` made which tasks (provenance);
* :mod:`.run_files`: the names of a run directory's files.

One process at a time owns a run directory (an ``flock`` on ``RUN_DIR/.lock``); any
number of read-only stores may read it meanwhile (``status``, ``stats``).

The class is synchronous and not thread-safe: the pipeline calls it from one thread at a
time, a worker thread when commits wait for the disk (``durability = "power"``), the event
loop's own thread when they do not (``"process"``, see :data:`DURABILITY`).

Some writes wait for the next commit instead of making one: request-ledger answers
(:meth:`Store.ledger_put_later`), classification labels and parsed generation responses.
Every commit the store makes first writes those waiting, in the order they were made and
in the same transaction, so whatever is committed later (a task accepted, a candidate
rejected) is never in the checkpoint without what it was made from. A crash can lose only
writes nothing committed depends on: answers a resume asks for again (from the ledger when
it holds them), labels it asks for again, responses whose request it makes again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from ..errors import CheckpointError
from ..records import Instance, PendingTask, RejectionRecord, Task
from . import schema, sessions_table
from .run_files import CHECKPOINT, LOCK, TASKS
from .tasks_file import TasksWriter

REQUEST_BLOCK = 64
Durability = Literal["process", "power"]
#: What a commit survives. ``"process"``: the process being killed (``kill -9``, OOM, a
#: crash) at any point; SQLite's WAL with ``synchronous=NORMAL``, so a commit is a write
#: to the WAL file without waiting for the disk. ``"power"``: also power loss and OS
#: crashes; ``synchronous=FULL``, an fsync per commit.
DURABILITY: Final[tuple[Durability, ...]] = ("process", "power")
_SYNCHRONOUS: Final[dict[str, str]] = {"process": "NORMAL", "power": "FULL"}
# SQLite result codes that mean the disk (not the file) is the problem.
_DISK_ERRORS = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY}
)


def _instances_json(instances: Iterable[Instance]) -> str:
    return json.dumps([asdict(i) for i in instances], ensure_ascii=False)


class _KeyPrefixes:
    """Which ledger keys (hex SHA-256) may be stored, in 8 bytes a key.

    Keys read at open are a sorted array of their first 64 bits; keys added since are a
    set of the same. A prefix shared by chance only costs a query, so "may hold" is
    exact enough, and 200,000 requests take 1.6 MB instead of some 30 MB of strings.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        prefixes = np.fromiter((_prefix(k) for k in keys), dtype=np.uint64)
        self._sorted = np.unique(prefixes)
        self._added: set[int] = set()

    def add(self, key: str) -> None:
        self._added.add(_prefix(key))

    def __contains__(self, key: str) -> bool:
        prefix = _prefix(key)
        if prefix in self._added:
            return True
        at = int(np.searchsorted(self._sorted, np.uint64(prefix)))
        return at < len(self._sorted) and int(self._sorted[at]) == prefix


def _prefix(key: str) -> int:
    try:
        return int(key[:16], 16)
    except ValueError:  # not a hex digest (a hand-made key): any fixed prefix will do
        return int.from_bytes(key.encode("utf-8")[:8].ljust(8, b"\0"), "big")


class _UnsyncedTasksWriter(TasksWriter):
    """``tasks.jsonl`` appends that leave the flush to disk to the OS (``"process"``).

    A killed process loses nothing it wrote; after a power loss the checkpoint, the source
    of truth, repairs the file when the store next opens (``TasksWriter.reconcile``).
    """

    def _append_lines(self, lines: Iterable[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                except OSError:
                    # As TasksWriter: a partial line would be buried by the next append.
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)
                    raise
            finally:
                os.close(fd)
        except OSError as e:
            raise CheckpointError(
                f"{self.path}: cannot append ({e.strerror or e}); the task is committed "
                "in the checkpoint and is written here when the run resumes"
            ) from None


class Store:
    """Checkpoint and outputs of one run directory."""

    def __init__(
        self, run_dir: Path, *, read_only: bool = False, durability: Durability = "power"
    ) -> None:
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be 'process' or 'power', not {durability!r}")
        self.run_dir = run_dir
        self.read_only = read_only
        self.durability: Durability = durability
        # Ledger answers waiting for the next commit, by key (see ledger_put_later), and
        # the keys the ledger table may hold (read when a writable store opens): a request
        # never bought before costs no SQL query.
        self._ledger_waiting: dict[str, tuple[str, str, str, float]] = {}
        self._ledger_keys: _KeyPrefixes | None = None
        # Answers are put from the event loop while a worker thread may be committing
        # ("power"): the lock makes taking the waiting ones and adding one never overlap.
        self._ledger_lock = threading.Lock()
        # Other writes waiting for the next commit, in order (store calls only).
        self._writes_waiting: list[tuple[str, tuple[Any, ...]]] = []
        self.db_path = run_dir / CHECKPOINT
        self.tasks_path = run_dir / TASKS
        writer = TasksWriter if durability == "power" else _UnsyncedTasksWriter
        self.tasks_file = writer(self.tasks_path)
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
                self.db.execute(f"PRAGMA synchronous={_SYNCHRONOUS[durability]}")
            except sqlite3.Error as e:
                self.close()
                raise self._open_error(e) from None
        # Checked before anything is created, so a newer checkpoint is left exactly as it was.
        found = self._check_schema()
        if not read_only:
            try:
                self._create_or_upgrade(found)
                self._next_request = self._reserved_until = int(self.get_meta("next_request_no", 0))
                self._ledger_keys = _KeyPrefixes(
                    row[0] for row in self.db.execute("SELECT key FROM ledger")
                )
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
            found = schema.stored_version(self.db)
        except sqlite3.Error as e:
            self.close()
            raise self._open_error(e) from None
        if found is None:
            return None
        try:
            return schema.readable_version(found, self.db_path)
        except CheckpointError:
            self.close()
            raise

    def _create_or_upgrade(self, found: int | None) -> None:
        """Create missing tables; an older schema gains its new tables and keeps every row."""
        schema.create_tables(self.db)
        if found == schema.SCHEMA_VERSION:
            return
        with self._transaction():
            schema.record_version(self.db, found)
        if found is not None:
            schema.log_upgrade(self.db_path, found)

    def _repair_tasks_jsonl(self) -> None:
        """Make ``tasks.jsonl`` hold every committed task exactly once (see ``reconcile``)."""
        committed = dict(
            self.db.execute("SELECT id, accept_no FROM instructions WHERE status = 'accepted'")
        )
        self.tasks_file.reconcile(committed, self._tasks_by_id)

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

    @property
    def waits_for_disk(self) -> bool:
        """Whether a commit waits for the disk (fsync): then keep it off the event loop."""
        return self.durability == "power"

    def close(self) -> None:
        if (self._ledger_waiting or self._writes_waiting) and not self.read_only:
            # Writes of a run that ends without another commit (a drained stop).
            with contextlib.suppress(Exception):
                self.flush()
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
        # Taken whole (one attribute swap) so that answers put meanwhile, from the event
        # loop while this runs on a worker thread, wait for the next commit.
        with self._ledger_lock:
            waiting, self._ledger_waiting = self._ledger_waiting, {}
        writes, self._writes_waiting = self._writes_waiting, []
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if waiting:
                    self._insert_ledger(waiting.values())
                for sql, params in writes:
                    self.db.execute(sql, params)
                yield
                self.db.execute("COMMIT")
                waiting, writes = {}, []
            except BaseException:
                # SQLITE_FULL and some I/O errors have already rolled back: a second ROLLBACK
                # would raise "no transaction is active" and hide the cause.
                if self.db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise self._write_error("write the checkpoint", e) from None
        finally:
            if waiting:  # not committed: they go with the next commit
                with self._ledger_lock:
                    for key, row in waiting.items():
                        self._ledger_waiting.setdefault(key, row)
            if writes:
                self._writes_waiting[:0] = writes

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> None:
        """A single write outside :meth:`_transaction`, with the same clear error.

        With ledger answers waiting, it is a transaction that commits them first.
        """
        if (self._ledger_waiting or self._writes_waiting) and not self.db.in_transaction:
            with self._transaction():
                self.db.execute(sql, tuple(params))
            return
        try:
            self.db.execute(sql, tuple(params))
        except sqlite3.Error as e:
            raise self._write_error("write the checkpoint", e) from None

    def add_pending(
        self, task: PendingTask, request_no: int, counters: Mapping[str, float] | None = None
    ) -> None:
        """Record an instruction that passed the instruction filters, with its counters."""
        self.add_decisions((), task, request_no, counters)

    def add_decisions(
        self,
        rejections: Iterable[RejectionRecord],
        pending: PendingTask | None,
        request_no: int,
        counters: Mapping[str, float] | None = None,
        processed: bool = False,
    ) -> None:
        """Instruction-filter decisions on candidates of generation ``request_no``, in one commit.

        The rejected candidates, at most one that passed (``pending``), their counters and,
        with ``processed``, the response's end, are all committed or none is: one commit per
        passing candidate and per response instead of one per rejection.
        """
        with self._transaction():
            if pending is not None:
                self.db.execute(
                    "INSERT INTO instructions (id, instruction, status, request_no, created) "
                    "VALUES (?, ?, 'pending', ?, ?)",
                    (pending.id, pending.instruction, request_no, time.time()),
                )
            self._add_rejections(rejections)
            self._add_counters(counters or {})
            if processed:
                self.db.execute(
                    "UPDATE generations SET processed = 1 WHERE request_no = ?", (request_no,)
                )

    def set_classification(self, task_id: str, is_classification: bool) -> None:
        """Record a task's label with the next commit (the task's outcome at the latest).

        Lost in a crash before that commit, it is asked for again on resume, from the
        ledger when the answer made it there.
        """
        self._later(
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
        rejections = list(rejections)
        if not rejections:
            return
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
            self.tasks_file.append([accepted])

    # ------------------------------------------------------------ request ledger

    def ledger_get(self, key: str) -> str | None:
        """A completion bought earlier for the request with this content hash."""
        waiting = self._ledger_waiting.get(key)
        if waiting is not None:
            return waiting[2]
        if not self.ledger_known(key):
            return None
        row = self.db.execute("SELECT completion FROM ledger WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def ledger_known(self, key: str) -> bool:
        """Whether the ledger may hold ``key``: False means :meth:`ledger_get` is None.

        Reads no table (the keys were read when the store opened; a read-only store always
        says True), so it is safe to call from the event loop while a worker thread commits.
        """
        if key in self._ledger_waiting:
            return True
        return self._ledger_keys is None or key in self._ledger_keys

    def ledger_put(self, key: str, stage: str, completion: str) -> None:
        """Record a completion now (durable on return), with any answers waiting."""
        self.ledger_put_later(key, stage, completion)
        self.flush_ledger()

    def ledger_put_later(self, key: str, stage: str, completion: str) -> None:
        """Record a completion with the store's next commit, whichever method makes it.

        Every write of the store commits the answers waiting before its own change, in the
        same transaction: a stage that commits what it made of an answer commits the
        answer too. Touches no table, so it may be called from the event loop while a
        worker thread commits. The first answer for a key is the one kept.
        """
        if self._ledger_keys is not None:
            self._ledger_keys.add(key)  # "may hold" first: a rolled-back one costs a query
        with self._ledger_lock:
            if key not in self._ledger_waiting:
                self._ledger_waiting[key] = (key, stage, completion, time.time())

    def flush_ledger(self) -> None:
        """Commit the ledger answers (and other writes) waiting for a commit, if any."""
        self.flush()

    def flush(self) -> None:
        """Commit every write waiting for a commit, if any."""
        if self._ledger_waiting or self._writes_waiting:
            with self._transaction():
                pass

    def _later(self, sql: str, params: tuple[Any, ...]) -> None:
        """A write made with the next commit, before that commit's own changes."""
        if self.read_only:
            raise CheckpointError(f"{self.db_path}: opened read-only")
        self._writes_waiting.append((sql, params))

    def _insert_ledger(self, rows: Iterable[tuple[str, str, str, float]]) -> None:
        self.db.executemany(
            "INSERT OR IGNORE INTO ledger (key, stage, completion, created) VALUES (?, ?, ?, ?)",
            list(rows),
        )

    def add_generation(self, request_no: int, items: list[str]) -> None:
        """Parsed instructions of one generation request, kept until all are filtered.

        Written with the next commit, which the first decision on its candidates makes at
        the latest; lost in a crash before it, nothing was decided from them yet.
        """
        self._later(
            "INSERT OR IGNORE INTO generations (request_no, items, processed) VALUES (?, ?, ?)",
            (request_no, json.dumps(items, ensure_ascii=False), int(not items)),
        )

    def mark_generation_processed(self, request_no: int) -> None:
        self._execute("UPDATE generations SET processed = 1 WHERE request_no = ?", (request_no,))

    def unprocessed_generations(self) -> list[tuple[int, list[str]]]:
        self.flush()
        rows = self.db.execute(
            "SELECT request_no, items FROM generations WHERE processed = 0 ORDER BY request_no"
        )
        return [(number, json.loads(items)) for number, items in rows]

    def is_decided(self, candidate_id: str) -> bool:
        """Whether a candidate already joined the pool or was rejected (resume de-duplication)."""
        self.flush()
        row = self.db.execute(
            "SELECT 1 FROM instructions WHERE id = ? UNION ALL "
            "SELECT 1 FROM rejections WHERE task_id = ? AND level = 'instruction' LIMIT 1",
            (candidate_id, candidate_id),
        ).fetchone()
        return row is not None

    # ------------------------------------------------------------ sessions

    def progress_mark(self) -> int:
        """A number that grows with everything a session adds (instructions, rejections...)."""
        return sessions_table.progress_mark(self.db)

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
            return sessions_table.insert_session(
                self.db, config, provenance, from_start=from_start, started=started
            )

    def sessions(self) -> list[dict[str, Any]]:
        """Every recorded session, oldest first, for provenance (``status --json``).

        See :func:`.sessions_table.list_sessions` for the fields of each.
        """
        return sessions_table.list_sessions(self.db, self.count_by_status()["accepted"])

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
        self.flush()
        rows = self.db.execute(
            "SELECT id, instruction, is_classification FROM instructions "
            "WHERE status = 'pending' ORDER BY seq"
        )
        return [
            PendingTask(id=i, instruction=text, is_classification=None if c is None else bool(c))
            for i, text, c in rows
        ]

    def pooled_instructions(self) -> list[str]:
        """Every instruction that passed the instruction filters, whatever became of its task.

        The similarity pool keeps an instruction once it passed, even if its task later lost
        all its instances (the paper's bootstrap pool), so a resumed run sees the same pool
        as the live run did.
        """
        rows = self.db.execute("SELECT instruction FROM instructions ORDER BY seq")
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
