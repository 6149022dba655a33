"""Keyword filters: tasks a text-only model cannot do (the paper's blacklist), program requests."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from selfinstruct_async import BaseFilter, Rejection, hookimpl

PAPER_BLACKLIST = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
    "map", "maps", "draw", "plot", "go to",
)  # fmt: skip
EXTRA_BLACKLIST = ("video", "audio", "music", "flowchart", "diagram")


def _word_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    # Whole words only, so "mapping" or "profile" are not caught by "map" or "file".
    alternatives = "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class BlacklistSettings:
    words: tuple[str, ...] = PAPER_BLACKLIST + EXTRA_BLACKLIST


class Blacklist(BaseFilter):
    """Rejects instructions that mention a blacklisted word or phrase (whole words, any case)."""

    name = "blacklist"
    order = 20
    Settings = BlacklistSettings

    def __init__(self, settings: BlacklistSettings | None = None) -> None:
        super().__init__(settings or BlacklistSettings())
        self.pattern = _word_pattern(self.settings.words)

    def check(self, instruction: str) -> Rejection | None:
        match = self.pattern.search(instruction) if self.pattern else None
        if match:
            return Rejection(f"contains blacklisted word {match.group(0).lower()!r}")
        return None


# Phrases that point at an attachment or a visual the model was never given; the word
# blacklist is configurable, this rule keeps the paper's "image/graph" exclusion on.
_NON_TEXT = re.compile(
    r"(?<!\w)(?:images?|graphs?|pictures?|photos?(?:graphs?)?|screenshots?|charts?"
    r"|(?:the|this|these|attached|following|given) (?:figure|drawing|sketch|logo|illustration)s?)"
    r"(?!\w)",
    re.IGNORECASE,
)


class NonTextModality(BaseFilter):
    """Rejects tasks about images, graphs, photos, charts or figures: not doable in text."""

    name = "non_text_modality"
    order = 21

    def check(self, instruction: str) -> Rejection | None:
        match = _NON_TEXT.search(instruction)
        if match:
            return Rejection(f"needs a non-text modality ({match.group(0).lower()!r})")
        return None


class WriteAProgram(BaseFilter):
    """Rejects "Write a program ..." instructions, which the paper found rarely come with tests."""

    name = "write_a_program"
    order = 22

    def check(self, instruction: str) -> Rejection | None:
        if instruction.lower().startswith("write a program"):
            return Rejection("starts with 'Write a program'")
        return None


@hookimpl
def register_instruction_filters(register: Callable[[type[BaseFilter]], None]) -> None:
    register(Blacklist)
    register(NonTextModality)
    register(WriteAProgram)
