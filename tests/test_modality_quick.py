"""The ``non_text_modality`` filter's quick paths find exactly what their patterns find.

:mod:`selfinstruct_plugins.modality_quick` tries the imperative pattern's alternatives by a
clause's first word, puts a first-word guard in front of the noun scans and starts the
boundary scan late. Each is compared here with the plain pattern, match by match, on the
parse corpus (instructions and instance answers) and on generated text;
``tests/test_modality_identity.py`` compares whole verdicts with the old code.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selfinstruct_plugins import modality_quick as quick
from selfinstruct_plugins.modality import _clause_starts
from selfinstruct_plugins.modality_nouns import _POINTING, _THE_MEDIA, _WORD, _spellings
from selfinstruct_plugins.modality_verbs import (
    _ACTION,
    _BOUNDARY,
    _DRAW_VERBS,
    _HOUSEHOLD,
    _MAY_BOUNDARY,
    _MENTION_SCOPE,
)

from tests.fixtures.parse_corpus import answers, instructions

GUARDED = (
    (_POINTING, quick.POINTING),
    (_THE_MEDIA, quick.THE_MEDIA),
    (_MENTION_SCOPE, quick.MENTION_SCOPE),
)


def _texts() -> tuple[str, ...]:
    texts = instructions()
    texts += tuple(f"{a}, and then {b}" for a, b in zip(texts[::5], texts[2::5], strict=False))
    texts += tuple(f"Please, {a}" for a in texts[1::7])
    return texts + tuple(dict.fromkeys(answer.text for answer in answers()))


def _action_both_ways(text: str) -> list[tuple[object, object]]:
    """(quick, plain) for every clause start of ``text``, with the chore test the rule uses."""
    lowered = text.lower() if text.isascii() else None
    chore = lowered is None or quick.household_named(quick.letter_runs(lowered))
    return [
        (
            quick.action_at(text, lowered, start, chore),
            quick.action_span(_ACTION.match(text, start)),
        )
        for start in _clause_starts(text)
    ]


def _matches(
    pattern: re.Pattern[str], text: str
) -> list[tuple[tuple[int, int], dict[str, object]]]:
    return [(m.span(), m.groupdict()) for m in pattern.finditer(text)]


def test_literal_prefixes_fork_at_options_and_stop_at_what_is_not_a_letter() -> None:
    prefixes = quick.literal_prefixes(
        r"draw(?!\s+up)s?\b|e-?mail|sketch(?=\s)|(?:re)?send\s+it|an[sz]wer\w+|x"
    )
    assert prefixes == {
        "draw", "draws", "e-mail", "email", "sketch", "resend", "send", "answer", "anzwer",
        "x",
    }  # fmt: skip
    assert quick.literal_prefixes(r"ab+c") == {"a"}
    assert quick.literal_prefixes(r"(?:a|\w+)b") == {"ab", ""}  # "" rules nothing out
    assert quick.literal_prefixes(r"[^a]bc|[a-z]d|\d") == {""}


def test_alternatives_split_only_at_the_top_level() -> None:
    assert quick.alternatives(r"(?:a|(?:b|c)|[|)]|\||d)") == ("a", "(?:b|c)", "[|)]", r"\|", "d")
    assert quick.alternatives(r"(?:a)|b") == ("(?:a)", "b")
    for group, alts in quick._GROUPS:
        assert len(alts) > 1, group
    assert "(?:" + "|".join(alt for alt, _ in quick._GROUPS[0][1]) + ")" == _DRAW_VERBS


def test_household_words_are_the_words_of_every_spelling() -> None:
    pattern = re.compile(_HOUSEHOLD)
    for spelling in _spellings(_HOUSEHOLD):
        assert pattern.fullmatch(spelling), spelling
    assert {"oven", "neighbour", "washing", "mail", "mailman"} <= quick._HOUSEHOLD_WORDS


def test_letter_runs_are_the_word_runs_of_an_ascii_text() -> None:
    texts = [text for text in _texts() if text.isascii()]
    texts += ["", "  ", "x", "a1b_c-d'e\tf\ng\x0bh\x1ci\x7fj", "Don't STOP-now!!"]
    for text in texts:
        lowered = text.lower()
        assert quick.letter_runs(lowered) == [w.encode() for w in _WORD.findall(lowered)]


def test_a_guard_needs_every_alternative_to_start_at_a_word() -> None:
    with pytest.raises(ValueError, match="does not start at a word"):
        quick.word_start_guarded(re.compile(r"\bthe\s+image|in\s+the\s+image"))
    with pytest.raises(ValueError, match="does not start at a word"):
        quick.word_start_guarded(re.compile(r"\b-image"))  # "x-image": a word char behind
    guarded = quick.word_start_guarded(re.compile(r"\bin\s+the\s+image|(?<![\w-])fig\.", re.I))
    assert [m.span() for m in guarded.finditer("In  the image; info: fig. in the im")] == [
        (0, 13),
        (21, 25),
    ]


def test_the_imperatives_found_by_first_word_are_the_whole_patterns_on_the_corpus() -> None:
    seen: dict[str, int] = {}
    for text in _texts():
        for fast, plain in _action_both_ways(text):
            assert fast == plain, text
            if isinstance(plain, tuple):
                seen[plain[0]] = seen.get(plain[0], 0) + 1
    # Every group is found, often: the comparison is not between two Nones.
    assert set(seen) == {"draw", "sound", "open", "web", "world", "chore"}, seen
    assert sum(seen.values()) > 300, seen


def test_guarded_scans_and_the_late_boundary_scan_match_the_patterns_on_the_corpus() -> None:
    found = 0
    for text in _texts():
        for plain, guarded in GUARDED:
            expected = _matches(plain, text)
            assert _matches(guarded, text) == expected, text
            found += len(expected)
        first = _MAY_BOUNDARY.search(text)
        if first is not None:
            late = _BOUNDARY.finditer(text, quick.boundaries_from(text, first.start()))
            assert [m.span() for m in late] == [m.span() for m in _BOUNDARY.finditer(text)]
    assert found > 1000


_PIECES = st.sampled_from(
    ["draw", "Draw", "drawing", "e-mail", "Email", "emailed", "call", "my", "mom", "the",
     "oven", "Check", "knock", "on", "door", "please", "Please", "can you", "could you please",
     "let", "let's", "us", "go", "ahead", "and", "then", "first", "of all", "photo", "image",
     "below", "this", "these", "in", "describe", "Describe", "how", "why", "steps to", "I",
     "want", "you", "to", "sing", "a", "song", "compose", "melody", "create", "chart", "show",
     "me", "what", "looks like", "log", "login", "in to", "turn", "off", "lights", "water",
     "plants", "watch", "tv", "buy", "pay", "attention", "figure", "fig.", "2", "shows",
     "here is", "given", "an", "x-ray", "scan", "brain", ",", ".", "!", "?", ";", ":", "\n",
     " ", "  ", "\t", "\u2003", "\u00a0", "\u017f", "\u212a", "'", "\u2019", "-", "(see"]
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(_PIECES, max_size=14).map(" ".join), st.lists(_PIECES, max_size=14).map("".join))
def test_quick_paths_match_the_patterns_on_generated_text(spaced: str, glued: str) -> None:
    for text in (spaced, glued, spaced.capitalize()):
        for fast, plain in _action_both_ways(text):
            assert fast == plain, text
        for plain, guarded in GUARDED:
            assert _matches(guarded, text) == _matches(plain, text), text
        first = _MAY_BOUNDARY.search(text)
        if first is not None:
            late = _BOUNDARY.finditer(text, quick.boundaries_from(text, first.start()))
            assert [m.span() for m in late] == [m.span() for m in _BOUNDARY.finditer(text)]
