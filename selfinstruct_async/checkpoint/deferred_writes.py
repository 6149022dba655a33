"""The checkpoint writes that wait for the store's next commit, and the ledger's known keys.

Some writes need not be durable on their own: request-ledger answers, classification
labels, parsed generation responses. :class:`DeferredWrites` holds them until the
:class:`~selfinstruct_async.checkpoint.store.Store` next commits, which writes them first
and in the same transaction, so nothing committed later is ever in the checkpoint without
what it was made from. :class:`KeyPrefixes` says which ledger keys the table may hold, so
a request never bought before costs no SQL query.
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

    def take(self) -> tuple[dict[str, LedgerRow], list[Write]]:
        """Everything waiting, leaving nothing: what is put meanwhile waits for the next commit."""
        # Taken whole (one attribute swap each), so an answer put from the event loop while
        # a worker thread commits goes either in this commit or in the next, never lost.
        with self._lock:
            answers, self._answers = self._answers, {}
        writes, self._writes = self._writes, []
        return answers, writes

    def give_back(self, answers: dict[str, LedgerRow], writes: list[Write]) -> None:
        """Writes taken for a commit that failed: they go with the next one, first."""
        if answers:
            with self._lock:
                for key, row in answers.items():
                    self._answers.setdefault(key, row)
        if writes:
            self._writes[:0] = writes

    @staticmethod
    def execute(db: sqlite3.Connection, answers: dict[str, LedgerRow], writes: list[Write]) -> None:
        """Write what was taken, inside the caller's transaction."""
        if answers:
            db.executemany(
                "INSERT OR IGNORE INTO ledger (key, stage, completion, created) "
                "VALUES (?, ?, ?, ?)",
                list(answers.values()),
            )
        for sql, params in writes:
            db.execute(sql, params)
