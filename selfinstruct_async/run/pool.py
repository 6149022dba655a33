"""The task pool prompts sample from, and the count that tells generators when to pause.

Human seeds and accepted machine tasks are kept apart because every generation prompt
mixes them in a fixed ratio (the paper's 6 + 2). Generators pause while the work already
under way could cover the target (accepted and pending tasks, candidates not yet
filtered, generation requests in flight) and wake when a rejection frees a place; the
wait is an event, never a polling loop. Overshoot is bounded by one response per
generation worker.

A task whose request failed stays pending (it still counts towards the work under way)
and waits for another try; while ``max_deferred`` tasks wait, generators pause as well,
so an outage with no target (or a far one) cannot pile up waiting tasks without bound.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

import anyio

from ..records import SeedTask


class Pool:
    """Instructions available as demonstrations, plus progress towards the target."""

    def __init__(
        self,
        seeds: Sequence[SeedTask],
        accepted: Sequence[str],
        *,
        target: int,
        filtered: Sequence[str] = (),
        machine_pool: Literal["filtered", "accepted"] = "accepted",
        pending: int = 0,
        undecided: int = 0,
        classification_only: bool = False,
        max_deferred: int = 64,
    ) -> None:
        human = [s for s in seeds if s.is_classification or not classification_only]
        self.human = [s.instruction for s in human] or [s.instruction for s in seeds]
        # The paper's bootstrap samples machine demonstrations from every instruction that
        # passed the instruction filters (instances came later, in another script).
        self.machine_pool = machine_pool
        self.machine = list(filtered if machine_pool == "filtered" else accepted)
        self._accepted = len(accepted)
        self.target = target
        self.pending = pending
        self.undecided = undecided
        self.generating = 0
        self.deferred = 0
        self.max_deferred = max_deferred
        # Made by the first waiter and dropped by the next change: most changes have no one
        # waiting, and an event made for each cost more than the count it guards.
        self._changed: anyio.Event | None = None

    @property
    def accepted(self) -> int:
        return self._accepted

    @property
    def done(self) -> bool:
        return self.target > 0 and self.accepted >= self.target

    def wants_more(self) -> bool:
        if self.deferred >= self.max_deferred:
            return False
        if self.target <= 0:
            return True
        under_way = self.pending + self.undecided + self.generating
        return self.accepted + under_way < self.target

    async def wait_until_done(self) -> None:
        while not self.done:
            await self._change()

    async def wait_until_wanted(self) -> None:
        while not self.wants_more():
            await self._change()

    async def _change(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def sample_demonstrations(self, rng: random.Random, total: int, machine: int) -> list[str]:
        """``machine`` accepted instructions (fewer while the pool is small), the rest human."""
        from_machine = rng.sample(self.machine, min(machine, len(self.machine)))
        from_human = rng.sample(self.human, min(total - len(from_machine), len(self.human)))
        demonstrations = from_human + from_machine
        rng.shuffle(demonstrations)
        return demonstrations

    def start_generation(self) -> None:
        self.generating += 1

    def end_generation(self, candidates: int) -> None:
        """A generation request returned ``candidates`` instructions, not yet filtered."""
        self.generating -= 1
        self.undecided += candidates
        self._notify()

    def decided(self, accepted: bool, instruction: str = "") -> None:
        """A candidate passed (it is now a pending task) or failed the instruction filters."""
        self.undecided -= 1
        if accepted:
            self.pending += 1
            if self.machine_pool == "filtered":
                self.machine.append(instruction)
        else:
            self._notify()

    def defer(self) -> None:
        """A pending task's request failed; it waits for another try and stays pending."""
        self.deferred += 1

    def undefer(self) -> None:
        """A waiting task went back to its stage."""
        self.deferred -= 1
        self._notify()

    def finish(self, instruction: str | None) -> None:
        """A pending task ended: accepted with its ``instruction``, or rejected (``None``)."""
        self.pending -= 1
        if instruction is not None:
            self._accepted += 1
            if self.machine_pool == "accepted":
                self.machine.append(instruction)
        self._notify()
