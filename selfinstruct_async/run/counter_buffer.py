"""The run's counters in memory, and the increments not yet written to the checkpoint.

Increments ride along with the next store commit (:meth:`CounterBuffer.take`), so a
counter and the work it counts are committed together; a commit that does not happen
gives them back (:meth:`CounterBuffer.give_back`) for the final flush. Names come from
:mod:`selfinstruct_async.counters`.
"""

from __future__ import annotations


class TakenCounters(dict[str, float]):
    """Counter increments on their way into a store commit."""


class CounterBuffer:
    """Totals of this session, plus the part of them the checkpoint does not hold yet."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._unflushed: dict[str, float] = {}

    def count(self, name: str, n: float = 1) -> None:
        self.totals[name] = self.totals.get(name, 0) + n
        self._unflushed[name] = self._unflushed.get(name, 0) + n

    def take(self) -> TakenCounters:
        """The increments not yet written; pass them to the next store commit."""
        taken = TakenCounters(self._unflushed)
        self._unflushed.clear()
        return taken

    def give_back(self, taken: TakenCounters) -> None:
        """Increments whose commit did not happen: the next commit takes them again."""
        for name, n in taken.items():
            self._unflushed[name] = self._unflushed.get(name, 0) + n
