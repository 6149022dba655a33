"""The paper's length filter: instructions of at most 3 or more than 150 words are dropped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from selfinstruct_async import BaseFilter, Rejection, hookimpl
from selfinstruct_async.similarity import get_tokenizer


@dataclass(frozen=True)
class WordCountSettings:
    min_words: int = 3
    max_words: int = 150
    # "whitespace" is the paper's count; "unicode" counts each CJK character as a word,
    # which is what makes the limits meaningful for Chinese or Japanese seeds.
    count: Literal["whitespace", "unicode"] = "whitespace"


class WordCount(BaseFilter):
    """Rejects instructions with ``<= min_words`` or ``> max_words`` words."""

    name = "word_count"
    order = 10
    Settings = WordCountSettings

    def __init__(self, settings: WordCountSettings | None = None) -> None:
        super().__init__(settings or WordCountSettings())
        self.min_words = self.settings.min_words
        self.max_words = self.settings.max_words
        self._split: Callable[[str], list[str]] = str.split
        if self.settings.count == "unicode":
            self._split = get_tokenizer("unicode").tokenize

    def check(self, instruction: str) -> Rejection | None:
        words = len(self._split(instruction))
        if words <= self.min_words:
            return Rejection(f"{words} words, needs more than {self.min_words}")
        if words > self.max_words:
            return Rejection(f"{words} words, at most {self.max_words} allowed")
        return None


@hookimpl
def register_instruction_filters(register: Callable[[type[BaseFilter]], None]) -> None:
    register(WordCount)
