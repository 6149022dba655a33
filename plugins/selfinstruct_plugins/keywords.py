"""Keyword filters: the paper's blacklist and its "Write a program" rule.

``blacklist`` is the paper's filter: any instruction holding one of its words, as a whole
word in any case, is dropped, whatever the word means there. Its default list is the
paper's (image, images, graph, graphs, picture, pictures, file, files, map, maps, draw, plot,
go to); ``lists = ["alpaca"]`` adds Stanford Alpaca's video, audio, music, flowchart and
diagram, and ``words`` adds a user's own words to the named lists.

The project's ``non_text_modality`` filter, which judges what a task needs rather than
which words it uses, lives in :mod:`selfinstruct_plugins.modality`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from selfinstruct_async import BaseFilter, Rejection, hookimpl

# ---------------------------------------------------------------------------- blacklist

PAPER_BLACKLIST = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
    "map", "maps", "draw", "plot", "go to",
)  # fmt: skip
ALPACA_EXTRA = ("video", "audio", "music", "flowchart", "diagram")
# Named word lists for [filters.blacklist] lists; "alpaca" is Stanford Alpaca's whole list.
BLACKLISTS: dict[str, tuple[str, ...]] = {
    "paper": PAPER_BLACKLIST,
    "alpaca": PAPER_BLACKLIST + ALPACA_EXTRA,
}
BlacklistName = Literal["paper", "alpaca"]


def _word_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    # Whole words only, so "mapping" or "profile" are not caught by "map" or "file".
    alternatives = "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class BlacklistSettings:
    """``[filters.blacklist]``: the named ``lists`` joined, plus the user's own ``words``."""

    lists: tuple[BlacklistName, ...] = ("paper",)
    words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The config loader checks the names against the Literal first; this catches a
        # plugin or test that builds the settings in code.
        for i, name in enumerate(self.lists):
            if name not in BLACKLISTS:
                known = ", ".join(sorted(BLACKLISTS))
                raise ValueError(f"lists[{i}]: unknown list {name!r} (known: {known})")
        for i, word in enumerate(self.words):
            if not word.strip():
                # An empty alternative matches everywhere and would reject every instruction.
                raise ValueError(f"words[{i}]: must not be empty")

    @property
    def all_words(self) -> tuple[str, ...]:
        """Every word of the chosen lists, then the user's words, each once, in order."""
        chosen = [w for name in self.lists for w in BLACKLISTS[name]] + list(self.words)
        return tuple(dict.fromkeys(w.strip() for w in chosen))


class Blacklist(BaseFilter):
    """Rejects instructions that mention a blacklisted word or phrase (whole words, any case)."""

    name = "blacklist"
    order = 20
    Settings = BlacklistSettings

    def __init__(self, settings: BlacklistSettings | None = None) -> None:
        super().__init__(settings or BlacklistSettings())
        self.words = self.settings.all_words
        self.pattern = _word_pattern(self.words)
        # Most instructions hold none of the words anywhere: substring tests on the lowered
        # text say so for much less than the pattern's search. Only with ASCII words (and
        # texts): IGNORECASE also folds letters that lower() keeps apart ("\u017f" is "s").
        ascii_words = all(word.isascii() for word in self.words)
        self._plain = tuple(word.lower() for word in self.words) if ascii_words else None

    def check(self, instruction: str) -> Rejection | None:
        if self._plain is not None and instruction.isascii():
            lowered = instruction.lower()
            for word in self._plain:
                if word in lowered:
                    break
            else:
                return None  # the pattern, which needs one of the words, cannot match
        match = self.pattern.search(instruction) if self.pattern else None
        if match:
            return Rejection(f"contains blacklisted word {match.group(0).lower()!r}")
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
    register(WriteAProgram)
