"""Commits the checkpoint's open group of writes ``run.commit_interval`` after it opens.

With grouping on (:mod:`selfinstruct_async.checkpoint.transactions`), the stages' writes
join one open transaction; :class:`GroupCommitter` commits it a fixed time after the first
of them, so a killed run loses at most that much work and readers (``status``, the
monitor) see the checkpoint that much late. It sleeps only while a group is open: woken by
the store calls that open one, never on a timer of its own.
"""

from __future__ import annotations

import anyio

from ..checkpoint.store import Store
from ..config import Config
from .store_calls import StoreCalls


def groups_commits(config: Config) -> bool:
    """Whether a run groups its commits: streaming runs with a ``commit_interval``.

    Batch mode commits each write: its batch tables commit right before uploads and must
    not find a group open, and its rate is far below where a commit's cost shows.
    """
    return config.run.mode == "stream" and config.run.commit_interval > 0


class GroupCommitter:
    """Commits the store's open group ``interval`` seconds after a store call opened it."""

    def __init__(self, store: Store, calls: StoreCalls, interval: float) -> None:
        self._store = store
        self._calls = calls
        self._interval = interval
        self._opened = anyio.Event()

    def wake(self) -> None:
        """After a store call: start the countdown if the call left a group open."""
        if self._store.group_open and not self._opened.is_set():
            self._opened.set()

    async def run(self) -> None:
        """Commit each group as its time is up; cancelled with the pipeline it serves.

        The run's end commits what is still open (``Store.flush``), under a shield.
        """
        self._calls.after = self.wake
        self._store.group_writes()
        try:
            while True:
                await self._opened.wait()
                await anyio.sleep(self._interval)
                # Units written from here on start the next countdown.
                self._opened = anyio.Event()
                await self._calls(self._store.commit_group)
        finally:
            self._calls.after = None
            self._store.group_writes(False)
