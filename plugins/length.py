"""The paper's length filter: instructions of at most 3 or more than 150 words are dropped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from selfinstruct_async import BaseFilter, Rejection, hookimpl


@dataclass(frozen=True)
class WordCountSettings:
    min_words: int = 3
    max_words: int = 150


class WordCount(BaseFilter):
    """Rejects instructions with ``<= min_words`` or ``> max_words`` whitespace-separated words."""

    name = "word_count"
    order = 10
    Settings = WordCountSettings

    def __init__(self, settings: WordCountSettings | None = None) -> None:
        super().__init__(settings or WordCountSettings())
        self.min_words = self.settings.min_words
        self.max_words = self.settings.max_words

    def check(self, instruction: str) -> Rejection | None:
        words = len(instruction.split())
        if words <= self.min_words:
            return Rejection(f"{words} words, needs more than {self.min_words}")
        if words > self.max_words:
            return Rejection(f"{words} words, at most {self.max_words} allowed")
        return None


@hookimpl
def register_instruction_filters(register: Callable[[type[BaseFilter]], None]) -> None:
    register(WordCount)
