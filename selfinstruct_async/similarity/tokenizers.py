"""Tokenizers for ROUGE-L: rouge-score's own rule, and a Unicode rule for other scripts.

``"rouge"`` reproduces ``rouge_score.tokenize.tokenize(text, None)`` exactly (the
tokenizer behind ``RougeScorer(["rougeL"], use_stemmer=False)``): lower-case, keep runs of
``[a-z0-9]``, drop everything else. It therefore sees nothing in Chinese, Japanese,
Russian... text, which is why ``"unicode"`` exists: NFKC-normalised and case-folded, Han,
Hiragana, Katakana and Hangul characters are one token each, and any other run of letters,
digits and combining marks is one word.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache
from typing import Protocol, runtime_checkable

__all__ = [
    "RougeTokenizer",
    "Tokenizer",
    "UnicodeTokenizer",
    "get_tokenizer",
    "tokenizer_names",
]


@runtime_checkable
class Tokenizer(Protocol):
    """Turns a text into the token sequence ROUGE-L compares."""

    name: str

    def tokenize(self, text: str) -> list[str]: ...


# rouge-score lower-cases, replaces runs of [^a-z0-9] by a space, splits on whitespace and
# keeps tokens matching ^[a-z0-9]+$: that is exactly the [a-z0-9] runs of the lower-cased
# text (lower() can turn a non-ASCII letter into ASCII, e.g. KELVIN SIGN -> "k"). Those
# runs are cut here without a regex (``[a-z0-9]+`` with findall took 5x the time): every
# code point that is not ASCII becomes one "?" and every byte that is not [a-z0-9] a
# space, so split() cuts exactly where the runs end (tests/test_similarity_stretches.py
# compares the two rules).
_SEPARATE = bytes(c if c in b"0123456789abcdefghijklmnopqrstuvwxyz" else 32 for c in range(256))


class RougeTokenizer:
    """rouge-score's default tokenizer without stemming, token for token."""

    name = "rouge"

    def tokenize(self, text: str) -> list[str]:
        ascii_text = text.lower().encode("ascii", "replace")
        return ascii_text.translate(_SEPARATE).decode("ascii").split()


# Scripts written without spaces between words, compared character by character.
_CJK_RANGES = (
    "\u1100-\u11ff"  # Hangul Jamo
    "\u2e80-\u2fdf"  # CJK radicals, Kangxi radicals
    "\u3005\u3007\u3021-\u3029\u3038-\u303b"  # ideographic iteration mark, numerals
    "\u3040-\u309f"  # Hiragana
    "\u30a0-\u30ff"  # Katakana
    "\u3130-\u318f"  # Hangul compatibility Jamo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\ua960-\ua97f"  # Hangul Jamo extended A
    "\uac00-\ud7ff"  # Hangul syllables, Jamo extended B
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff66-\uff9f"  # half-width Katakana (NFKC maps most of them away)
    "\U00020000-\U0003134f"  # CJK extensions B-G, compatibility supplement
)


@lru_cache(maxsize=1)
def _mark_class() -> str:
    """A regex class body for every combining mark (Mn, Mc, Me).

    Python's ``\\w`` leaves out combining marks, which would cut Devanagari, Thai or
    decomposed Latin words apart; built once, on first use of the Unicode tokenizer.
    """
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)) in ("Mn", "Mc", "Me"):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )


@lru_cache(maxsize=1)
def _unicode_pattern() -> re.Pattern[str]:
    marks = _mark_class()
    # A CJK character alone, or a run of (letters/digits that are not CJK, or marks).
    # [^\W_...] is "a word character that is not '_' and not CJK".
    return re.compile(f"[{_CJK_RANGES}]|(?:[^\\W_{_CJK_RANGES}]|[{marks}])+")


class UnicodeTokenizer:
    """CJK (Han, Hiragana, Katakana, Hangul) by character, other scripts by word, case-folded.

    Text is NFKC-normalised first so that full-width Latin letters and digits, ligatures
    and composed/decomposed accents compare equal; ``_`` and punctuation separate words.
    """

    name = "unicode"

    def __init__(self) -> None:
        self._pattern = _unicode_pattern()

    def tokenize(self, text: str) -> list[str]:
        return self._pattern.findall(unicodedata.normalize("NFKC", text).casefold())


_TOKENIZERS: dict[str, type[RougeTokenizer] | type[UnicodeTokenizer]] = {
    "rouge": RougeTokenizer,
    "unicode": UnicodeTokenizer,
}


def tokenizer_names() -> list[str]:
    """The names ``get_tokenizer`` accepts."""
    return sorted(_TOKENIZERS)


def check_tokenizer(name: str, key: str = "tokenizer") -> str:
    """``name`` when :func:`get_tokenizer` knows it; else ``ValueError`` naming ``key``.

    The rule :class:`~.settings.SimilaritySettings` and ``dedup --tokenizer`` share.
    """
    if name not in _TOKENIZERS:
        choices = ", ".join(repr(n) for n in tokenizer_names())
        problem = f"must be one of {choices}, not {name!r}"
        raise ValueError(f"{key} {problem}" if key else problem)
    return name


def get_tokenizer(tokenizer: str | Tokenizer) -> Tokenizer:
    """Resolve a tokenizer name (``"rouge"``, ``"unicode"``) or pass a Tokenizer through."""
    if isinstance(tokenizer, str):
        return _TOKENIZERS[check_tokenizer(tokenizer)]()
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"{tokenizer!r} has no 'name' and 'tokenize(text)'; not a Tokenizer")
    return tokenizer
