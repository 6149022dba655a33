"""The task pool prompts sample from, and the count that tells generators when to pause.

Human seeds and accepted machine tasks are kept apart because every generation prompt
mixes them in a fixed ratio (the paper's 6 + 2). Generators pause while accepted plus
in-flight tasks already cover the target and wake when a rejection frees a place; the
wait is an event, never a polling loop.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import anyio

from .records import SeedTask


class Pool:
    """Instructions available as demonstrations, plus progress towards the target."""

    def __init__(
        self,
        seeds: Sequence[SeedTask],
        machine: Sequence[str],
        *,
        target: int,
        pending: int = 0,
        classification_only: bool = False,
    ) -> None:
        human = [s for s in seeds if s.is_classification or not classification_only]
        self.human = [s.instruction for s in human] or [s.instruction for s in seeds]
        self.machine = list(machine)
        self.target = target
        self.pending = pending
        self._changed = anyio.Event()

    @property
    def accepted(self) -> int:
        return len(self.machine)

    @property
    def done(self) -> bool:
        return self.accepted >= self.target

    def wants_more(self) -> bool:
        return self.accepted + self.pending < self.target

    async def wait_until_done(self) -> None:
        while not self.done:
            await self._changed.wait()

    async def wait_until_wanted(self) -> None:
        while not self.wants_more():
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def sample_demonstrations(self, rng: random.Random, total: int, machine: int) -> list[str]:
        """``machine`` accepted instructions (fewer while the pool is small), the rest human."""
        from_machine = rng.sample(self.machine, min(machine, len(self.machine)))
        from_human = rng.sample(self.human, min(total - len(from_machine), len(self.human)))
        demonstrations = from_human + from_machine
        rng.shuffle(demonstrations)
        return demonstrations

    def add_pending(self) -> None:
        self.pending += 1

    def finish(self, instruction: str | None) -> None:
        """A pending task ended: accepted with its ``instruction``, or rejected (``None``)."""
        self.pending -= 1
        if instruction is not None:
            self.machine.append(instruction)
        self._notify()
