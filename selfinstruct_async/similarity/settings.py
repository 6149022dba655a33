"""The similarity filter's settings and the one rule that validates them.

Three places take these settings: ``[filters.rouge_similarity]`` (the built-in plugin,
:mod:`selfinstruct_plugins.similarity`), ``selfinstruct dedup``'s ``--threshold``,
``--tokenizer`` and ``--on-empty`` flags, and :class:`~.index.SimilarityIndex` itself. All
of them check values with the functions here, so a value one accepts the others accept,
and every message names what was wrong the same way (``threshold must be between 0 and
1, not 1.5``); the caller puts the key or flag in front (``filters.rouge_similarity:``,
``argument --threshold:``). Tokenizer names are checked where the tokenizers are
(:func:`.tokenizers.check_tokenizer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, cast

from .tokenizers import check_tokenizer

__all__ = [
    "ON_EMPTY_CHOICES",
    "OnEmpty",
    "SimilaritySettings",
    "check_on_empty",
    "check_threshold",
    "check_tokenizer",
]

OnEmpty = Literal["error", "warn", "ignore"]
# What to do when over 20% of recent candidates have no tokens (see :mod:`.empty_tokens`).
ON_EMPTY_CHOICES: Final[tuple[OnEmpty, ...]] = ("error", "warn", "ignore")


def _named(key: str, problem: str) -> str:
    return f"{key} {problem}" if key else problem


def check_threshold(value: float, key: str = "threshold") -> float:
    """``value`` as a float in [0, 1]; else ``ValueError`` naming ``key`` (NaN is refused)."""
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(_named(key, f"must be between 0 and 1, not {value!r}"))
    return number


def check_on_empty(value: str, key: str = "on_empty_tokens") -> OnEmpty:
    """``value`` when it is one of :data:`ON_EMPTY_CHOICES`."""
    if value not in ON_EMPTY_CHOICES:
        raise ValueError(_named(key, f"must be 'error', 'warn' or 'ignore', not {value!r}"))
    return value


@dataclass(frozen=True)
class SimilaritySettings:
    """``[filters.rouge_similarity]``, and the ``dedup`` flags of the same names.

    ``threshold``: reject above this ROUGE-L F; ``tokenizer``: ``"rouge"`` (rouge-score's
    ASCII-only rule) or ``"unicode"`` (Chinese, Japanese, Russian...); ``on_empty_tokens``:
    ``"error"``, ``"warn"`` or ``"ignore"`` when over 20% of recent candidates have no tokens.
    Field types stay plain ``float`` and ``str`` so the config loader's messages name them.
    """

    threshold: float = 0.7
    tokenizer: str = "rouge"
    on_empty_tokens: str = "error"

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        check_tokenizer(self.tokenizer)
        check_on_empty(self.on_empty_tokens)

    @property
    def on_empty(self) -> OnEmpty:
        """``on_empty_tokens``, typed for :class:`~.index.SimilarityIndex`."""
        return cast(OnEmpty, self.on_empty_tokens)
