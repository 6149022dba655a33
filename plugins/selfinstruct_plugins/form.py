"""Form filters: the paper's rule that instructions start with an ASCII letter or digit,
and no control characters (terminal escape codes, NUL, DEL...) anywhere in them.
"""

from __future__ import annotations

import re
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


# C0 controls except tab and newline (carriage return included: an instruction is one item
# of a numbered list, never CRLF text), DEL, and the C1 controls U+0080-U+009F.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class ControlCharacters(BaseFilter):
    """Rejects instructions holding control characters other than tab and newline.

    A model can emit terminal escape codes (``ESC[2J``), NUL or DEL: kept, they would reach
    the pool, later prompts and whoever prints the dataset on a terminal.
    """

    name = "control_characters"
    order = 3  # before leading_character, so an escape code is named as such wherever it is

    def check(self, instruction: str) -> Rejection | None:
        found = _CONTROL.search(instruction)
        if found is None:
            return None
        return Rejection(f"control character {found.group()!r} at position {found.start()}")


@hookimpl
def register_instruction_filters(register: Callable[[type[BaseFilter]], None]) -> None:
    register(ControlCharacters)
    register(LeadingCharacter)
