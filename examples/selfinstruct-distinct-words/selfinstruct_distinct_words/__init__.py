"""An example selfinstruct-async plugin: rejects repetitive instructions and echoing instances.

It adds two filters and two observers:

- ``distinct_words`` (instruction filter): an instruction needs at least ``min_distinct``
  different words. "Write write write a poem poem." has enough words for the paper's length
  filter but only four distinct ones. Configured in the run's TOML as
  ``[filters.distinct_words]``.
- ``echoed_instruction`` (instance filter): an instance whose output repeats the task's
  instruction verbatim is usually the model restating the task instead of doing it.
- observers that count accepted tasks and this plugin's rejections, for logging.

selfinstruct-async finds the plugin through the ``selfinstruct_async`` entry point declared
in ``pyproject.toml``, which points at :data:`plugin`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from selfinstruct_async import BaseFilter, Instance, InstanceContext, Rejection, Task, hookimpl
from selfinstruct_async.records import RejectionRecord

__all__ = [
    "DistinctWords",
    "DistinctWordsPlugin",
    "DistinctWordsSettings",
    "EchoedInstruction",
    "plugin",
]
__version__ = "0.1.0"

log = logging.getLogger("selfinstruct_distinct_words")

# Words with inner apostrophes or hyphens ("don't", "well-known") count as one word.
_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class DistinctWordsSettings:
    """``[filters.distinct_words]``; ``metadata`` bounds are checked by selfinstruct-async."""

    min_distinct: int = field(default=4, metadata={"min": 1})
    ignore_case: bool = True


class DistinctWords(BaseFilter):
    """Rejects instructions with fewer than ``min_distinct`` different words."""

    name = "distinct_words"
    # Cheap (one regex pass), so it runs early: after word_count (10), before the keyword
    # filters (20-22) and long before the ROUGE-L similarity filter.
    order = 12
    Settings = DistinctWordsSettings

    def __init__(self, settings: DistinctWordsSettings | None = None) -> None:
        super().__init__(settings or DistinctWordsSettings())
        self.min_distinct = self.settings.min_distinct
        self.ignore_case = self.settings.ignore_case

    def check(self, instruction: str) -> Rejection | None:
        words = _WORD.findall(instruction)
        if self.ignore_case:
            words = [w.casefold() for w in words]
        distinct = len(set(words))
        if distinct < self.min_distinct:
            return Rejection(f"{distinct} distinct words, needs at least {self.min_distinct}")
        return None


def _normalise(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


class EchoedInstruction(BaseFilter):
    """Rejects instances whose output contains the task's instruction word for word."""

    name = "echoed_instruction"
    order = 35  # after the built-in emptiness and copy checks, which are cheaper still

    def check(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        # Trailing punctuation is dropped so "Name a fruit." is found in "Name a fruit: apple".
        instruction = _normalise(task.instruction).rstrip(".!?:; ")
        if instruction and instruction in _normalise(instance.output):
            return Rejection("output repeats the instruction")
        return None


class DistinctWordsPlugin:
    """The plugin object: its ``@hookimpl`` methods are what selfinstruct-async calls.

    A class rather than module-level functions so that the observers' counts belong to one
    plugin manager; tests register a fresh instance and unregister it afterwards.
    """

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected: Counter[str] = Counter()

    @hookimpl
    def register_instruction_filters(self, register: Callable[[type[BaseFilter]], None]) -> None:
        register(DistinctWords)

    @hookimpl
    def register_instance_filters(self, register: Callable[[type[BaseFilter]], None]) -> None:
        register(EchoedInstruction)

    # Observers run on the event loop for every task and rejection: keep them this cheap.

    @hookimpl
    def task_accepted(self, task: Task) -> None:
        self.accepted += 1
        log.debug("accepted task %s (%d so far)", task.id, self.accepted)

    @hookimpl
    def candidate_rejected(self, rejection: RejectionRecord) -> None:
        if rejection.filter in (DistinctWords.name, EchoedInstruction.name):
            self.rejected[rejection.filter] += 1


plugin = DistinctWordsPlugin()
"""The instance the ``selfinstruct_async`` entry point names."""
