"""Counter increments and ``meta`` values of the store's units, held until the commit taking them.

Every unit of work (:mod:`.transactions`) adds to the run's counters and many replace a
``meta`` value (a finished task carries the token-usage snapshot). Written by each unit,
that is an upsert per counter name and per key per unit: in a group of fifty units, three
times as many statements as the units' own rows. :class:`GroupBuffer` sums the increments
and keeps the last value of each key instead, in memory, and writes them once, in the
transaction, right before the ``COMMIT`` that takes them: one ``executemany`` for the
counters, one statement per key.

The guarantees are those of writing them in the unit. A unit's values join the group only
when the unit succeeds (its savepoint is released); a failed unit's are dropped with its
rollback. They are written inside the transaction they are committed with, so a group
commits its units' counters and values or none of them, and a lost group loses them too
(:meth:`GroupBuffer.clear`): a kill never leaves counters ahead of or behind the rows they
count. Reads in the process see them at once (:meth:`GroupBuffer.counters`,
:meth:`GroupBuffer.meta`), as they saw the open transaction's rows before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Final

COUNTERS_SQL: Final = (
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"
)
META_SQL: Final = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
)


def _add(into: dict[str, float], deltas: Mapping[str, float]) -> None:
    for name, n in deltas.items():
        into[name] = into.get(name, 0) + n


class GroupBuffer:
    """The open group's counter increments (summed) and meta values (JSON, last one kept),
    plus those of the unit running, which join them only if it succeeds."""

    def __init__(self) -> None:
        self._counters: dict[str, float] = {}
        self._meta: dict[str, str] = {}
        self._unit_counters: dict[str, float] = {}
        self._unit_meta: dict[str, str] = {}
        self._in_unit = False

    def __bool__(self) -> bool:
        """Whether values of finished units wait for a commit."""
        return bool(self._counters or self._meta)

    @property
    def in_unit(self) -> bool:
        return self._in_unit

    def open_unit(self) -> None:
        self._unit_counters, self._unit_meta = {}, {}
        self._in_unit = True

    def end_unit(self, *, succeeded: bool) -> None:
        """The unit is over: its values join the group's if it succeeded, else they are gone."""
        if succeeded:
            _add(self._counters, self._unit_counters)
            self._meta.update(self._unit_meta)
        self._unit_counters, self._unit_meta = {}, {}
        self._in_unit = False

    def add_counters(self, deltas: Mapping[str, float]) -> None:
        """Add to the running unit's counters."""
        if not self._in_unit:
            raise RuntimeError("counters are added inside a unit of work")
        _add(self._unit_counters, deltas)

    def set_meta(self, key: str, value_json: str, *, group_open: bool) -> bool:
        """Keep ``key``'s value for the commit; False when nothing would take it (write it now).

        Outside a unit with a group open, the value joins the group as the direct write
        of it would have: committed with the group, lost with it.
        """
        if self._in_unit:
            self._unit_meta[key] = value_json
        elif group_open:
            self._meta[key] = value_json
        else:
            return False
        return True

    def write(self, db: sqlite3.Connection) -> None:
        """Write what the group holds into ``db``'s open transaction, right before its commit.

        The buffer keeps it until :meth:`clear`: a commit that fails loses it with the group.
        """
        if self._counters:
            db.executemany(COUNTERS_SQL, list(self._counters.items()))
        for key, value in self._meta.items():
            db.execute(META_SQL, (key, value))

    def clear(self) -> None:
        """The group is committed, or lost: either way its values are no longer waiting."""
        self._counters.clear()
        self._meta.clear()

    def counters(self, committed: Mapping[str, float]) -> dict[str, float]:
        """``committed`` (the table's counters) with the group's increments added."""
        merged = dict(committed)
        _add(merged, self._counters)
        return {name: float(n) for name, n in merged.items()}  # as the REAL column reads

    def meta(self, key: str) -> str | None:
        """The JSON value waiting for ``key``, if any."""
        return self._meta.get(key)
