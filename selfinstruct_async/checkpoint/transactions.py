"""The store's transactions: one commit per unit of work, or many units per commit.

Every write of the :class:`~.store.Store` is a *unit*: the statements of one decision (a
task's outcome, a response's rejected candidates, a counter flush), preceded by the
writes waiting for a commit (:mod:`.deferred_writes`). A unit is all or nothing.

Without grouping each unit is its own transaction, committed before the store call
returns. With grouping (``run.commit_interval``, streaming runs) a unit joins the open
transaction and the run commits the group a moment later (:meth:`Transactions.commit`,
from ``run/commit_groups.py``): a commit costs about ten times a unit's own statements, so
a group of fifty costs a fifth as much per unit. The guarantees stay those of a crash at a
commit boundary: a unit is never half written, nothing is committed without the answers it
was made from (they are in the same transaction), and ``tasks.jsonl`` only gets a task
after its commit. A killed process loses at most the group still open, which a resume
redoes, asking the model again.

A unit that fails must leave the group as it was before it. Instead of a savepoint per
unit (two more statements per unit, and every page it touches copied to a sub-journal for
a rollback that almost never comes), the group keeps the statements of its finished units
in memory (:class:`_Log`, their SQL and bound values). When a unit fails, the whole
transaction is rolled back and the log is run again: the same statements on the same
rows from the same start give the same rows (every value, times included, is bound from
Python; AUTOINCREMENT's sequence rolls back with the rows), so the group is exactly what
a rollback to a savepoint would have left. The store runs every grouped unit's statements
through the log; should anything else have changed a row in the open transaction (SQLite's
``total_changes`` says so), the log no longer covers the group and its remaining units
use a savepoint each, as before.

A group that fails to commit (a full disk, an I/O error) takes every unit in it, and the
store then refuses further units: the stages built on the lost ones (a task's outcome on
its pending row), and the run must stop and resume from what was committed. So does a
group whose rollback or redo fails.

Counter increments and ``meta`` values are not written by the unit that makes them: they
wait in memory (:mod:`.group_buffer`), join the group when the unit succeeds, and are
written once, summed, right before the commit that takes them (the unit's own in a
non-grouped unit, the group's otherwise), in the same transaction and with the same
guarantees. Ledger answers waiting (:mod:`.deferred_writes`) are written there too, one
``executemany`` per commit: nothing in the transaction reads them, and a commit takes
them or nothing.

Anything that must be durable on return (a ledger answer put with ``ledger_put``,
``flush``, a non-grouped write) commits the open group with it, so nothing waits behind it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Final

from ..errors import CheckpointError
from .deferred_writes import DeferredWrites, Write
from .group_buffer import GroupBuffer
from .tasks_file import TasksWriter

#: Units one group holds at most before a grouped write commits it itself: it bounds what a
#: crash can lose, how far the write-ahead log grows between commits and the redo log.
MAX_GROUP: Final = 1000

_LOST: Final = (
    "earlier writes of this session were lost with a failed commit; the run must stop and resume"
)


class _Log:
    """The statements of the open transaction's finished units, to run again after a rollback."""

    __slots__ = ("changes", "entries", "valid")

    def __init__(self) -> None:
        #: (sql, parameters, executemany) in the order run.
        self.entries: list[tuple[str, Any, bool]] = []
        #: Whether the entries are every row change of the transaction since our BEGIN.
        self.valid = False
        #: ``total_changes`` after the last logged statement: anything else moves it.
        self.changes = 0

    def reset(self, db: sqlite3.Connection | None) -> None:
        """A transaction of ours begins (``db``), or none is open (None)."""
        self.entries.clear()
        self.valid = db is not None
        self.changes = 0 if db is None else db.total_changes

    def redo(self, db: sqlite3.Connection, upto: int) -> None:
        """Roll the transaction back and run its first ``upto`` statements again."""
        del self.entries[upto:]
        db.execute("ROLLBACK")
        db.execute("BEGIN IMMEDIATE")
        for sql, params, many in self.entries:
            if many:
                db.executemany(sql, params)
            else:
                db.execute(sql, params)
        self.changes = db.total_changes


class Transactions:
    """Opens, groups and commits the store's units of work on one connection.

    ``with transactions.unit(db, grouped=...):`` runs one unit; its statements go through
    :meth:`execute` and :meth:`executemany`. Units do not nest. ``error`` turns an
    ``sqlite3.Error`` into the store's clear :class:`CheckpointError`.
    """

    def __init__(
        self,
        deferred: DeferredWrites,
        tasks_file: TasksWriter,
        error: Callable[[sqlite3.Error], CheckpointError],
    ) -> None:
        self._deferred = deferred
        self._tasks_file = tasks_file
        self._error = error
        self._units = 0
        self._appends: list[str] = []  # tasks.jsonl lines of accepted tasks, after the commit
        self._broken = False  # a group of earlier units was lost: refuse further units
        self._log = _Log()
        #: Counter increments and meta values waiting for the commit that takes them.
        self.pending = GroupBuffer()
        #: Whether grouped units join an open transaction instead of committing each.
        self.grouping = False
        # The unit running (set by unit() and __enter__, read by __exit__).
        self._db: sqlite3.Connection | None = None
        self._grouped = False
        self._joined = False
        self._savepoint = False
        self._writes: list[Write] = []
        self._appended = 0
        self._mark = 0

    @property
    def units_waiting(self) -> int:
        """Units in the open group, not yet committed."""
        return self._units

    def append_after_commit(self, line: str) -> None:
        """Append ``line`` to ``tasks.jsonl`` once the unit it was accepted in commits."""
        self._appends.append(line)

    # ------------------------------------------------------------ statements of a unit

    def execute(self, db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        """Run one statement of the running unit."""
        cursor = db.execute(sql, params)
        self._log.entries.append((sql, params, False))
        return cursor

    def executemany(self, db: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row of ``rows`` (a list: the log keeps it) in the running unit."""
        db.executemany(sql, rows)
        self._log.entries.append((sql, rows, True))

    # ------------------------------------------------------------ units

    def unit(self, db: sqlite3.Connection, *, grouped: bool) -> Transactions:
        """One unit of work; committed on exit unless ``grouped`` and grouping is on.

        Raises :class:`CheckpointError` for any ``sqlite3.Error``.
        """
        if self.pending.in_unit:
            raise RuntimeError("units of work do not nest")
        self._db = db
        self._grouped = grouped
        return self

    def __enter__(self) -> None:
        db = self._db
        assert db is not None
        joined = db.in_transaction  # a group is open: this unit goes in it
        if not joined and (self._units or self._appends or self.pending):
            self._lost()  # a group ended without a commit of ours (rolled back by SQLite)
        if self._broken:
            # Later units build on the lost ones (a task's outcome on its pending row): a
            # commit of theirs would put in the checkpoint what was made from nothing.
            self._db = None
            self._raise(sqlite3.OperationalError(_LOST))
        log = self._log
        if joined and log.valid and db.total_changes != log.changes:
            log.valid = False  # rows changed outside our units: the log cannot redo them
        self._joined = joined
        self._savepoint = joined and not log.valid
        self._writes = self._deferred.take_writes()
        self._appended = len(self._appends)
        self._mark = len(log.entries)
        self.pending.open_unit()
        try:
            if not joined:
                db.execute("BEGIN IMMEDIATE")
                log.reset(db)
            elif self._savepoint:
                db.execute("SAVEPOINT unit")
            for sql, params in self._writes:
                self.execute(db, sql, params)
        except BaseException as e:
            self._db = None
            self._fail(db)
            self._raise(e)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        db = self._db
        assert db is not None
        self._db = None
        if error is None:
            try:
                committing = self._end(db)
            except BaseException as e:
                error = e
            else:
                if committing:
                    self._append_committed()
                return
        self._fail(db)
        self._raise(error)

    def _end(self, db: sqlite3.Connection) -> bool:
        """The unit succeeded: into the group, or committed; whether it was committed."""
        if self._savepoint:
            db.execute("RELEASE unit")
        self.pending.end_unit(succeeded=True)
        if self._grouped and self.grouping and self._units < MAX_GROUP:
            self._units += 1
            self._log.changes = db.total_changes
            self._writes = []  # written: in the group they are lost only with it, as in a crash
            return False
        self._commit(db)  # when it fails, _fail gives them back for the next commit
        self._writes = []
        return True

    def _raise(self, error: BaseException) -> None:
        """Raise ``error`` as it comes, an ``sqlite3.Error`` as the store's clear error."""
        if isinstance(error, sqlite3.Error):
            raise self._error(error) from None
        raise error

    def _fail(self, db: sqlite3.Connection) -> None:
        """The running unit failed: take it back and leave the group as it was before it."""
        self.pending.end_unit(succeeded=False)  # rolled back with the unit's rows
        del self._appends[self._appended :]
        self._deferred.give_back_writes(self._writes)  # not written: with the next commit
        self._writes = []
        if not db.in_transaction:
            # SQLITE_FULL and some I/O errors roll the whole transaction back themselves (a
            # second ROLLBACK would raise and hide the cause): the group went with this unit.
            if self._joined:
                self._lost()
            self._log.reset(None)
            return
        if not self._joined:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self._log.reset(None)
            return
        try:
            if self._savepoint:
                db.execute("ROLLBACK TO unit")
                db.execute("RELEASE unit")
            else:
                self._log.redo(db, self._mark)
        except sqlite3.Error:
            # The rollback or the redo failed: what is left of the group is not the group.
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            self._lost()

    def commit(self, db: sqlite3.Connection) -> None:
        """Commit the open group (if any), then append its accepted tasks to ``tasks.jsonl``.

        Raises :class:`CheckpointError` for any ``sqlite3.Error``.
        """
        if db.in_transaction:
            try:
                self._commit(db)
            except sqlite3.Error as e:
                raise self._error(e) from None
            self._append_committed()

    def _commit(self, db: sqlite3.Connection) -> None:
        answers = self._deferred.take_answers()
        try:
            # In the transaction it commits: its units' counters go with their rows or not
            # at all, and the answers they were made from with them.
            self._deferred.write_answers(db, answers)
            self.pending.write(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            self._deferred.give_back_answers(answers)  # not committed: with the next commit
            self._lost()
            raise
        self._units = 0
        self.pending.clear()
        self._log.reset(None)

    def _append_committed(self) -> None:
        appends, self._appends = self._appends, []
        if appends:
            self._tasks_file.append_lines(appends)

    def statement_failed(self, db: sqlite3.Connection, was_open: bool) -> None:
        """A single statement failed; if it took the open group with it, say the group is lost."""
        if was_open and not db.in_transaction:
            self._lost()

    def _lost(self) -> None:
        if self._units:
            self._broken = True
        self._units = 0
        self._appends.clear()
        self.pending.clear()  # their counters and values went with the group's rows
        self._log.reset(None)
