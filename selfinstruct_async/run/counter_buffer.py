"""The run's counters in memory, and the increments not yet written to the checkpoint.

Increments ride along with the next store commit (:meth:`CounterBuffer.take`), so a
counter and the work it counts are committed together; a commit that does not happen
gives them back (:meth:`CounterBuffer.give_back`) for the final flush, except those that
count what that very commit decided (a task accepted, a candidate rejected): a decision
that was never committed was never made. Names come from :mod:`selfinstruct_async.counters`.
"""

from __future__ import annotations

from collections.abc import Mapping


class TakenCounters(dict[str, float]):
    """Counter increments on their way into a store commit; ``decision`` is the part of
    them that counts what the commit itself decides."""

    def __init__(self, increments: Mapping[str, float], decision: Mapping[str, float]) -> None:
        super().__init__(increments)
        self.decision = dict(decision)


class CounterBuffer:
    """Totals of this session, plus the part of them the checkpoint does not hold yet."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._unflushed: dict[str, float] = {}

    def count(self, name: str, n: float = 1) -> None:
        self.totals[name] = self.totals.get(name, 0) + n
        self._unflushed[name] = self._unflushed.get(name, 0) + n

    def take(self, decision: Mapping[str, float] | None = None) -> TakenCounters:
        """The increments not yet written, plus ``decision``: what the commit they go
        with decides, counted now and written only with that commit."""
        decision = decision or {}
        increments = dict(self._unflushed)
        for name, n in decision.items():
            self.totals[name] = self.totals.get(name, 0) + n
            increments[name] = increments.get(name, 0) + n
        self._unflushed.clear()
        return TakenCounters(increments, decision)

    def give_back(self, taken: TakenCounters) -> None:
        """Increments whose commit did not happen: the next commit takes them again, but
        for its own decision, which did not happen either."""
        for name, n in taken.items():
            n -= taken.decision.get(name, 0)
            self.totals[name] -= taken.decision.get(name, 0)
            if n:
                self._unflushed[name] = self._unflushed.get(name, 0) + n
