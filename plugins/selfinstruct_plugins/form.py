"""The paper's form filter: instructions must start with an ASCII letter or digit."""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass

from selfinstruct_async import BaseFilter, Rejection, hookimpl


@dataclass(frozen=True)
class LeadingCharacterSettings:
    # Set true for seed sets in other languages (e.g. seeds/zh), where the first character
    # is legitimately outside ASCII.
    allow_non_ascii: bool = False


class LeadingCharacter(BaseFilter):
    """Rejects instructions that start with punctuation or, by default, a non-ASCII character."""

    name = "leading_character"
    order = 5
    Settings = LeadingCharacterSettings

    def __init__(self, settings: LeadingCharacterSettings | None = None) -> None:
        super().__init__(settings or LeadingCharacterSettings())

    def check(self, instruction: str) -> Rejection | None:
        if not instruction:
            return Rejection("empty instruction")
        first = instruction[0]
        if first in string.punctuation or (not first.isalnum() and first.isascii()):
            return Rejection(f"starts with punctuation {first!r}")
        if not first.isascii() and not self.settings.allow_non_ascii:
            return Rejection(f"starts with non-ASCII character {first!r}")
        if not first.isalnum():
            return Rejection(f"starts with symbol {first!r}")
        return None


@hookimpl
def register_instruction_filters(register: Callable[[type[BaseFilter]], None]) -> None:
    register(LeadingCharacter)
