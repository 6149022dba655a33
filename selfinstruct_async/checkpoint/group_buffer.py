"""Counter increments and ``meta`` values of the store's units, held until the commit taking them.

Every unit of work (:mod:`.transactions`) adds to the run's counters and many replace a
``meta`` value (a finished task carries the token-usage snapshot). Written by each unit,
that is an upsert per counter name and per key per unit: in a group of fifty units, three
times as many statements as the units' own rows. :class:`GroupBuffer` sums the increments
and keeps the last value of each key instead, in memory, and writes them once, in the
transaction, right before the ``COMMIT`` that takes them: one ``executemany`` for the
counters, one statement per key.

A finished task's ``meta`` values (:meth:`GroupBuffer.keep_meta`) are kept as given and
turned into JSON only at the commit, once per key: every task replaces the token-usage
snapshot, and encoding it per task was a sixth of the store's CPU per task. A value
that is not JSON fails that commit like a full disk would (the group is lost); one changed
by its caller after the store call would be written as changed, so callers pass a fresh
value (``UsageMeter.snapshot`` builds one per call).

The guarantees are those of writing them in the unit. A unit's values join the group only
when the unit succeeds; a failed unit's are dropped with its rollback. They are written
inside the transaction they are committed with, so a group commits its units' counters and
values or none of them, and a lost group loses them too (:meth:`GroupBuffer.clear`): a
kill never leaves counters ahead of or behind the rows they count. Reads in the process
see them at once (:meth:`GroupBuffer.counters`, :meth:`GroupBuffer.meta`), as they saw
the open transaction's rows before.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any, Final

from ..errors import CheckpointError

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


class _Kept:
    """A meta value kept as given, to be encoded as JSON by the commit that writes it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def json(self, key: str) -> str:
        try:
            return json.dumps(self.value)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"meta value {key!r} cannot be stored as JSON ({e})") from None


def _json(key: str, value: str | _Kept) -> str:
    return value.json(key) if isinstance(value, _Kept) else value


class GroupBuffer:
    """The open group's counter increments (summed) and meta values (JSON, last one kept),
    plus those of the unit running, which join them only if it succeeds."""

    def __init__(self) -> None:
        self._counters: dict[str, float] = {}
        self._meta: dict[str, str | _Kept] = {}
        # The running unit's: the increments as given (summed into the group's only if
        # the unit succeeds; the caller's mappings are not kept past its store call).
        self._unit_counters: list[Mapping[str, float]] = []
        self._unit_meta: dict[str, str | _Kept] = {}
        self._in_unit = False

    def __bool__(self) -> bool:
        """Whether values of finished units wait for a commit."""
        return bool(self._counters or self._meta)

    @property
    def in_unit(self) -> bool:
        return self._in_unit

    def open_unit(self) -> None:
        self._in_unit = True

    def end_unit(self, *, succeeded: bool) -> None:
        """The unit is over: its values join the group's if it succeeded, else they are gone."""
        if self._unit_counters:
            if succeeded:
                for deltas in self._unit_counters:
                    _add(self._counters, deltas)
            self._unit_counters.clear()
        if self._unit_meta:
            if succeeded:
                self._meta.update(self._unit_meta)
            self._unit_meta.clear()
        self._in_unit = False

    def add_counters(self, deltas: Mapping[str, float]) -> None:
        """Add to the running unit's counters."""
        if not self._in_unit:
            raise RuntimeError("counters are added inside a unit of work")
        if deltas:
            self._unit_counters.append(deltas)

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

    def keep_meta(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` in the running unit, encoded only if a commit writes it."""
        if not self._in_unit:
            raise RuntimeError("values are kept inside a unit of work")
        self._unit_meta[key] = _Kept(value)

    def write(self, db: sqlite3.Connection) -> None:
        """Write what the group holds into ``db``'s open transaction, right before its commit.

        The buffer keeps it until :meth:`clear`: a commit that fails loses it with the group.
        """
        if self._counters:
            db.executemany(COUNTERS_SQL, list(self._counters.items()))
        for key, value in self._meta.items():
            db.execute(META_SQL, (key, _json(key, value)))

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
        value = self._meta.get(key)
        return None if value is None else _json(key, value)
