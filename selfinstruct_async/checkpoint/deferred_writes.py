"""The checkpoint writes that wait for the store's next commit, and the ledger's known keys.

Some writes need not be durable on their own: request-ledger answers, classification
labels, parsed generation responses. :class:`DeferredWrites` holds them until the
:class:`~selfinstruct_async.checkpoint.store.Store` next commits, which writes them in the
same transaction (the answers right before its ``COMMIT``, the other writes at the start
of its next unit, before the unit's own statements), so nothing committed later is ever
in the checkpoint without what it was made from. :class:`KeyPrefixes` says which ledger
keys the table may hold, so a request never bought before costs no SQL query.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

LedgerRow = tuple[str, str, str, float]  # key, stage, completion, created
Write = tuple[str, tuple[Any, ...]]  # sql, parameters


class KeyPrefixes:
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
        if not len(self._sorted):  # a fresh run: numpy's call costs more than the answer
            return False
        at = int(np.searchsorted(self._sorted, np.uint64(prefix)))
        return at < len(self._sorted) and int(self._sorted[at]) == prefix


def _prefix(key: str) -> int:
    try:
        return int(key[:16], 16)
    except ValueError:  # not a hex digest (a hand-made key): any fixed prefix will do
        return int.from_bytes(key.encode("utf-8")[:8].ljust(8, b"\0"), "big")


class DeferredWrites:
    """Ledger answers (by key, the first one kept) and other writes, in the order made.

    Answers are put from the event loop while a worker thread may be committing
    (``durability = "power"``): a lock makes taking the waiting ones and adding one never
    overlap. Other writes come from store calls only, one thread at a time.
    """

    def __init__(self) -> None:
        self._answers: dict[str, LedgerRow] = {}
        self._lock = threading.Lock()
        self._writes: list[Write] = []

    def __bool__(self) -> bool:
        return bool(self._answers or self._writes)

    def put_answer(self, key: str, stage: str, completion: str) -> None:
        with self._lock:
            if key not in self._answers:
                self._answers[key] = (key, stage, completion, time.time())

    def answer(self, key: str) -> str | None:
        """The completion waiting for ``key``, if any."""
        row = self._answers.get(key)
        return None if row is None else row[2]

    def add(self, sql: str, params: tuple[Any, ...]) -> None:
        self._writes.append((sql, params))

    def take_writes(self) -> list[Write]:
        """The writes other than answers, leaving none: a unit writes them before its own."""
        writes, self._writes = self._writes, []
        return writes

    def give_back_writes(self, writes: list[Write]) -> None:
        """Writes taken by a unit that failed: they go with the next one, first."""
        if writes:
            self._writes[:0] = writes

    def take_answers(self) -> dict[str, LedgerRow]:
        """The answers waiting, leaving none: what is put meanwhile waits for the next commit."""
        if not self._answers:
            return {}
        # Taken whole (one attribute swap), so an answer put from the event loop while a
        # worker thread commits goes either in this commit or in the next, never lost.
        with self._lock:
            answers, self._answers = self._answers, {}
        return answers

    def give_back_answers(self, answers: dict[str, LedgerRow]) -> None:
        """Answers taken for a commit that failed: they go with the next one."""
        if answers:
            with self._lock:
                for key, row in answers.items():
                    self._answers.setdefault(key, row)

    @staticmethod
    def write_answers(db: sqlite3.Connection, answers: dict[str, LedgerRow]) -> None:
        """Write the answers taken, inside the caller's transaction (the one committing).

        A few multi-row statements instead of one per answer (:func:`_chunks`): the same
        rows, less per-statement work in SQLite and its trace.
        """
        rows = list(answers.values())
        start = 0
        for n in _chunks(len(rows)):
            values = [v for row in rows[start : start + n] for v in row]
            db.execute(_LEDGER_SQL + ", ".join(("(?, ?, ?, ?)",) * n), values)
            start += n


_LEDGER_SQL = "INSERT OR IGNORE INTO ledger (key, stage, completion, created) VALUES "
#: Rows one ledger statement inserts at most: 256 parameters, far below SQLite's limit.
_CHUNK = 64


def _chunks(total: int) -> list[int]:
    """Statement sizes covering ``total`` rows: full chunks, then the rest in powers of two.

    So only a handful of distinct statements ever exist (64, 32, ..., 1 rows), all kept
    in the connection's statement cache.
    """
    sizes = [_CHUNK] * (total // _CHUNK)
    rest = total % _CHUNK
    n = _CHUNK
    while rest:
        n //= 2
        if rest >= n:
            sizes.append(n)
            rest -= n
    return sizes
