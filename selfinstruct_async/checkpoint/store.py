"""The run directory: an SQLite checkpoint (WAL) plus ``tasks.jsonl`` appended as tasks finish.

:class:`Store` is the one object the pipeline writes a run through. SQLite is the source
of truth: a task is committed there first and appended to ``tasks.jsonl`` second, and
opening the store reconciles the file with the checkpoint by task id. The parts it puts
together each live in their own module:

* :mod:`.schema`: the tables, the schema version, the in-place upgrade of older ones;
* :mod:`.tasks_file`: the ``tasks.jsonl`` line format, appending, the repair on open;
* :mod:`.sessions_table`: which ``selfinstruct run`` made which tasks (provenance);
* :mod:`.run_files`: the names of a run directory's files;
* :mod:`.opening`: the run directory's lock, the connection, clear open errors;
* :mod:`.deferred_writes`: the writes waiting for the next commit, the ledger's keys;
* :mod:`.task_rows`: the queries that read tasks and rejections back.

One process at a time owns a run directory (an ``flock`` on ``RUN_DIR/.lock``); any
number of read-only stores may read it meanwhile (``status``, ``stats``).

The class is synchronous and not thread-safe: the pipeline calls it from one thread at a
time, a worker thread when commits wait for the disk (``durability = "power"``), the event
loop's own thread when they do not (``"process"``, see :data:`DURABILITY`).

Some writes wait for the next commit instead of making one: request-ledger answers
(:meth:`Store.ledger_put_later`), classification labels and parsed generation responses.
Every commit the store makes writes those waiting in the same transaction (labels and
responses before the next unit's own statements, in the order they were made; answers
right before the ``COMMIT``), so whatever is committed later (a task accepted, a candidate
rejected) is never in the checkpoint without what it was made from. A crash can lose only
writes nothing committed depends on: answers a resume asks for again (from the ledger when
it holds them), labels it asks for again, responses whose request it makes again.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from ..errors import CheckpointError
from ..records import PendingTask, RejectionRecord, Task
from . import opening, schema, sessions_table, task_rows
from .deferred_writes import DeferredWrites, KeyPrefixes
from .group_buffer import META_SQL
from .run_files import CHECKPOINT, TASKS
from .tasks_file import TasksWriter, instances_json, task_line
from .transactions import Transactions

REQUEST_BLOCK = 64
Durability = Literal["process", "power"]
#: What a commit survives. ``"process"``: the process being killed (``kill -9``, OOM, a
#: crash) at any point; SQLite's WAL with ``synchronous=NORMAL``, so a commit is a write
#: to the WAL file without waiting for the disk. ``"power"``: also power loss and OS
#: crashes; ``synchronous=FULL``, an fsync per commit.
DURABILITY: Final[tuple[Durability, ...]] = ("process", "power")
_T = TypeVar("_T")

_PENDING_SQL: Final = (
    "INSERT INTO instructions (id, instruction, status, request_no, created) "
    "VALUES (?, ?, 'pending', ?, ?)"
)
_PROCESSED_SQL: Final = "UPDATE generations SET processed = 1 WHERE request_no = ?"
_ACCEPTED_SQL: Final = (
    "UPDATE instructions SET status = 'accepted', is_classification = ?, "
    "instances = ?, finished = ?, accept_no = "
    "(SELECT COALESCE(MAX(accept_no), 0) + 1 FROM instructions) WHERE id = ?"
)
_REJECTED_SQL: Final = "UPDATE instructions SET status = 'rejected', finished = ? WHERE id = ?"
_REJECTION_SQL: Final = (
    "INSERT INTO rejections (level, filter, reason, text, task_id, created) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


class Store:
    """Checkpoint and outputs of one run directory."""

    def __init__(
        self, run_dir: Path, *, read_only: bool = False, durability: Durability = "power"
    ) -> None:
        if durability not in DURABILITY:
            raise ValueError(f"durability must be 'process' or 'power', not {durability!r}")
        self.run_dir = run_dir
        self.read_only = read_only
        self.durability: Durability = durability
        # Ledger answers and other writes waiting for the next commit, and the keys the
        # ledger table may hold (read when a writable store opens): a request never
        # bought before costs no SQL query.
        self._deferred = DeferredWrites()
        self._ledger_keys: KeyPrefixes | None = None
        self.db_path = run_dir / CHECKPOINT
        self.tasks_path = run_dir / TASKS
        self.tasks_file = TasksWriter(self.tasks_path, sync=durability == "power")
        self._tx = Transactions(
            self._deferred,
            self.tasks_file,
            lambda e: self._write_error("write the checkpoint", e),
        )
        self._lock_fd: int | None = None
        self._next_request = 0
        self._reserved_until = 0
        if read_only:
            self.db = opening.connect_read_only(self.db_path)
        else:
            self._lock_fd = opening.lock_run_dir(run_dir)
            self._guarded(self._connect_writable)
        # Checked before anything is created, so a newer checkpoint is left exactly as it was.
        found = self._guarded(self._check_schema)
        if not read_only:
            self._guarded(lambda: self._prepare(found))

    # ------------------------------------------------------------ opening

    def _connect_writable(self) -> None:
        lost = opening.lost_checkpoint(self.db_path, self.tasks_path)
        if lost is not None:  # touch nothing
            raise lost
        self.db = opening.connect_writable(self.db_path, self.durability)

    def _guarded(self, step: Callable[[], _T]) -> _T:
        """One step of opening: on any failure, close what is open, then one clear error."""
        try:
            return step()
        except CheckpointError:
            self.close()
            raise
        except sqlite3.Error as e:
            self.close()
            raise opening.open_error(e, self.db_path, read_only=self.read_only) from None
        except OSError as e:
            self.close()
            raise self._write_error("open the run directory", e) from None

    def _prepare(self, found: int | None) -> None:
        self._create_or_upgrade(found)
        self._next_request = self._reserved_until = int(self.get_meta("next_request_no", 0))
        self._ledger_keys = KeyPrefixes(row[0] for row in self.db.execute("SELECT key FROM ledger"))
        self._repair_tasks_jsonl()

    def _write_error(self, doing: str, error: BaseException) -> CheckpointError:
        return opening.write_error(doing, error, self.db_path)

    def _check_schema(self) -> int | None:
        """The checkpoint's schema version (None when new); refuses versions it cannot read."""
        found = schema.stored_version(self.db)
        return None if found is None else schema.readable_version(found, self.db_path)

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
        self.tasks_file.reconcile(committed, lambda ids: task_rows.tasks_by_id(self.db, ids))

    @property
    def waits_for_disk(self) -> bool:
        """Whether a commit waits for the disk (fsync): then keep it off the event loop."""
        return self.durability == "power"

    def close(self) -> None:
        if (self._deferred or self.group_open) and not self.read_only:
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
        """``key``'s value, the one waiting for the open group's commit if there is one."""
        waiting = self._tx.pending.meta(key)
        if waiting is not None:
            return json.loads(waiting)
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Set ``key``: with the unit's commit inside one, with the open group's if any, or now."""
        value_json = json.dumps(value)
        if not self._tx.pending.set_meta(key, value_json, group_open=self.group_open):
            self._execute(META_SQL, (key, value_json))

    def add_counters(self, deltas: Mapping[str, float]) -> None:
        """Add to counters, as every unit may: written, summed, by the commit that takes it."""
        if not deltas:
            return
        with self._transaction(grouped=True):
            self._tx.pending.add_counters(deltas)

    def counters(self) -> dict[str, float]:
        """Every counter, with the increments waiting for the open group's commit."""
        return self._tx.pending.counters(dict(self.db.execute("SELECT name, value FROM counters")))

    def next_request_no(self) -> int:
        """Number requests across resumes; blocks are reserved so numbers never repeat."""
        if self._next_request >= self._reserved_until:
            self._reserved_until = self._next_request + REQUEST_BLOCK
            with self._transaction():  # committed before any number of the block is used
                self.set_meta("next_request_no", self._reserved_until)
        number = self._next_request
        self._next_request += 1
        return number

    # ------------------------------------------------------------ tasks

    def group_writes(self, on: bool = True) -> None:
        """Grouped writes join an open transaction until :meth:`commit_group` (.transactions)."""
        self._tx.grouping = on

    @property
    def group_open(self) -> bool:
        """Whether written units wait for :meth:`commit_group`."""
        db = getattr(self, "db", None)
        return db is not None and db.in_transaction

    def commit_group(self) -> None:
        """Commit the units waiting in the open group, if any."""
        self._tx.commit(self.db)

    def _transaction(self, *, grouped: bool = False) -> Transactions:
        """A unit of work (:mod:`.transactions`): ``with self._transaction(): ...``.

        Statements of a grouped unit go through ``self._tx.execute``, so that a failing
        unit after it can be taken out of the group; a non-grouped one commits on exit.
        """
        return self._tx.unit(self.db, grouped=grouped)

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> None:
        """A single write outside :meth:`_transaction`, with the same clear error.

        With ledger answers waiting, it is a transaction that commits them first.
        """
        if self._deferred and not self.db.in_transaction:
            with self._transaction():
                self.db.execute(sql, tuple(params))
            return
        was_open = self.db.in_transaction
        try:
            self.db.execute(sql, tuple(params))
        except sqlite3.Error as e:
            self._tx.statement_failed(self.db, was_open)
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
        tx, db = self._tx, self.db
        with tx.unit(db, grouped=True):
            if pending is not None:
                params = (pending.id, pending.instruction, request_no, time.time())
                tx.execute(db, _PENDING_SQL, params)
            if rejections:
                self._add_rejections(rejections)
            if counters:
                tx.pending.add_counters(counters)
            if processed:
                tx.execute(db, _PROCESSED_SQL, (request_no,))

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
        with self._tx.unit(self.db, grouped=True):
            self._add_rejections(rejections)
            if counters:
                self._tx.pending.add_counters(counters)

    def _add_rejections(self, rejections: Iterable[RejectionRecord]) -> None:
        now = time.time()
        rows = [(r.level, r.filter, r.reason, r.text, r.task_id, now) for r in rejections]
        if rows:
            self._tx.executemany(self.db, _REJECTION_SQL, rows)

    def finish_task(
        self,
        task_id: str,
        accepted: Task | None,
        rejections: Iterable[RejectionRecord] = (),
        counters: Mapping[str, float] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Commit a task's outcome (grouped), then append it to ``tasks.jsonl`` if accepted.

        ``meta`` values (the usage snapshot) are encoded as JSON by the commit that writes
        them, the last one per key (:mod:`.group_buffer`): pass values nothing changes later.
        """
        tx, db = self._tx, self.db
        with tx.unit(db, grouped=True):
            if meta:
                for key, value in meta.items():
                    tx.pending.keep_meta(key, value)
            if accepted is not None:
                instances = instances_json(accepted.instances)
                params = (int(accepted.is_classification), instances, time.time(), task_id)
                if tx.execute(db, _ACCEPTED_SQL, params).rowcount != 1:
                    # Its pending row was lost: the file must not get it either.
                    raise CheckpointError(f"{self.db_path}: task {task_id} is not in it")
                tx.append_after_commit(task_line(accepted, instances))
            else:
                tx.execute(db, _REJECTED_SQL, (time.time(), task_id))
            if rejections:
                self._add_rejections(rejections)
            if counters:
                tx.pending.add_counters(counters)

    # ------------------------------------------------------------ request ledger

    def ledger_get(self, key: str) -> str | None:
        """A completion bought earlier for the request with this content hash."""
        waiting = self._deferred.answer(key)
        if waiting is not None:
            return waiting
        if not self.ledger_known(key):
            return None
        row = self.db.execute("SELECT completion FROM ledger WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def ledger_known(self, key: str) -> bool:
        """Whether the ledger may hold ``key``: False means :meth:`ledger_get` is None.

        Reads no table (the keys were read when the store opened; a read-only store always
        says True), so it is safe to call from the event loop while a worker thread commits.
        """
        if self._deferred.answer(key) is not None:
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
        self._deferred.put_answer(key, stage, completion)

    def flush_ledger(self) -> None:
        """Commit the ledger answers (and other writes) waiting for a commit, if any."""
        self.flush()

    def flush(self) -> None:
        """Commit every write waiting for a commit and the open group, if any."""
        if self._deferred or self.group_open:
            with self._transaction():
                pass

    def _later(self, sql: str, params: tuple[Any, ...]) -> None:
        """A write made with the next commit, before that commit's own changes."""
        if self.read_only:
            raise CheckpointError(f"{self.db_path}: opened read-only")
        self._deferred.add(sql, params)

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
        with self._tx.unit(self.db, grouped=True):
            self._tx.execute(self.db, _PROCESSED_SQL, (request_no,))

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

        See :func:`.sessions_table.insert_session` (``from_start``, ``started``).
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

    def accepted_tasks(self) -> list[Task]:
        return task_rows.accepted_tasks(self.db)

    def pending_tasks(self) -> list[PendingTask]:
        self.flush()
        return task_rows.pending_tasks(self.db)

    def pooled_instructions(self) -> list[str]:
        """Every instruction that passed the instruction filters, whatever became of its task.

        The similarity pool keeps an instruction once it passed, even if its task later lost
        all its instances (the paper's bootstrap pool), so a resumed run sees the same pool
        as the live run did.
        """
        return task_rows.pooled_instructions(self.db)

    def count_by_status(self) -> dict[str, int]:
        return task_rows.count_by_status(self.db)

    def rejection_summary(self, examples: int = 3) -> dict[str, dict[str, Any]]:
        """Rejections by ``level/filter``: count and a few recent examples."""
        return task_rows.rejection_summary(self.db, examples)
