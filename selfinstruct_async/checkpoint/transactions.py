"""The store's transactions: one commit per unit of work, or many units per commit.

Every write of the :class:`~.store.Store` is a *unit*: the statements of one decision (a
task's outcome, a response's rejected candidates, a counter flush), preceded by the
writes waiting for a commit (:mod:`.deferred_writes`). A unit is all or nothing.

Without grouping each unit is its own transaction, committed before the store call
returns. With grouping (``run.commit_interval``, streaming runs) a unit joins the open
transaction under a savepoint and the run commits the group a moment later
(:meth:`Transactions.commit`, from ``run/commit_groups.py``): a commit costs about ten
times a unit's own statements, so a group of fifty costs a fifth as much per unit. The
guarantees stay those of a crash at a commit boundary: a unit is never half written,
nothing is committed without the answers it was made from (they are in the same
transaction), and ``tasks.jsonl`` only gets a task after its commit. A killed process loses
at most the group still open, which a resume redoes, asking the model again.

A group that fails to commit (a full disk, an I/O error) takes every unit in it, and the
store then refuses further units: the stages built on the lost ones (a task's outcome on
its pending row), and the run must stop and resume from what was committed.

Counter increments and ``meta`` values are not written by the unit that makes them: they
wait in memory (:mod:`.group_buffer`), join the group when the unit succeeds, and are
written once, summed, right before the commit that takes them (the unit's own in a
non-grouped unit, the group's otherwise), in the same transaction and with the same
guarantees.

Anything that must be durable on return (a ledger answer put with ``ledger_put``,
``flush``, a non-grouped write) commits the open group with it, so nothing waits behind it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Final

from ..records import Task
from .deferred_writes import DeferredWrites
from .group_buffer import GroupBuffer
from .tasks_file import TasksWriter

#: Units one group holds at most before a grouped write commits it itself: it bounds what a
#: crash can lose and how far the write-ahead log grows between commits.
MAX_GROUP: Final = 1000


class Transactions:
    """Opens, groups and commits the store's units of work on one connection."""

    def __init__(self, deferred: DeferredWrites, tasks_file: TasksWriter) -> None:
        self._deferred = deferred
        self._tasks_file = tasks_file
        self._units = 0
        self._appends: list[Task] = []
        self._broken = False  # a group of earlier units was lost: refuse further units
        #: Counter increments and meta values waiting for the commit that takes them.
        self.pending = GroupBuffer()
        #: Whether grouped units join an open transaction instead of committing each.
        self.grouping = False

    @property
    def units_waiting(self) -> int:
        """Units in the open group, not yet committed."""
        return self._units

    def append_after_commit(self, task: Task) -> None:
        """Append ``task`` to ``tasks.jsonl`` once the unit it was accepted in commits."""
        self._appends.append(task)

    @contextlib.contextmanager
    def unit(self, db: sqlite3.Connection, *, grouped: bool) -> Iterator[None]:
        """One unit of work; committed on exit unless ``grouped`` and grouping is on.

        Raises ``sqlite3.Error`` as it comes; the store turns it into a clear error.
        """
        joined = db.in_transaction  # a group is open: this unit goes in it
        if not joined and (self._units or self._appends or self.pending):
            self._lost()  # a group ended without a commit of ours (rolled back by SQLite)
        if self._broken:
            # Later units build on the lost ones (a task's outcome on its pending row): a
            # commit of theirs would put in the checkpoint what was made from nothing.
            raise sqlite3.OperationalError(
                "earlier writes of this session were lost with a failed commit; "
                "the run must stop and resume"
            )
        waiting, writes = self._deferred.take()
        appended = len(self._appends)
        try:
            db.execute("SAVEPOINT unit" if joined else "BEGIN IMMEDIATE")
            self.pending.open_unit()
            try:
                self._deferred.execute(db, waiting, writes)
                yield
                if joined:
                    db.execute("RELEASE unit")
            except BaseException:
                self.pending.end_unit(succeeded=False)  # rolled back with the unit's rows
                del self._appends[appended:]
                self._undo(db, joined)
                raise
            self.pending.end_unit(succeeded=True)
            committing = not (grouped and self.grouping and self._units < MAX_GROUP)
            if committing:
                self._commit(db)
            else:
                self._units += 1
            # Written: in the group they are lost only with it, as a crash would lose them.
            waiting, writes = {}, []
        finally:
            self._deferred.give_back(waiting, writes)  # not written: with the next commit
        if committing:
            self._append_committed()

    def commit(self, db: sqlite3.Connection) -> None:
        """Commit the open group (if any), then append its accepted tasks to ``tasks.jsonl``."""
        if db.in_transaction:
            self._commit(db)
            self._append_committed()

    def _commit(self, db: sqlite3.Connection) -> None:
        try:
            # In the transaction it commits: its units' counters go with their rows or not at all.
            self.pending.write(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            self._lost()
            raise
        self._units = 0
        self.pending.clear()

    def _append_committed(self) -> None:
        appends, self._appends = self._appends, []
        if appends:
            self._tasks_file.append(appends)

    def statement_failed(self, db: sqlite3.Connection, was_open: bool) -> None:
        """A single statement failed; if it took the open group with it, say the group is lost."""
        if was_open and not db.in_transaction:
            self._lost()

    def _undo(self, db: sqlite3.Connection, joined: bool) -> None:
        if not db.in_transaction:
            # SQLITE_FULL and some I/O errors roll the whole transaction back themselves (a
            # second ROLLBACK would raise and hide the cause): the group went with this unit.
            if joined:
                self._lost()
            return
        with contextlib.suppress(sqlite3.Error):
            if joined:
                db.execute("ROLLBACK TO unit")
                db.execute("RELEASE unit")
            else:
                db.execute("ROLLBACK")
        if joined and not db.in_transaction:  # the rollback failed and took the group
            self._lost()

    def _lost(self) -> None:
        if self._units:
            self._broken = True
        self._units = 0
        self._appends.clear()
        self.pending.clear()  # their counters and values went with the group's rows
