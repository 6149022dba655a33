"""Cheaper ways to the ``non_text_modality`` filter's matches: the same matches, less scanning.

Imperatives: the filter tries ``_ACTION`` (:mod:`.modality_verbs`: a lead such as "please",
then one of about a hundred alternatives in six groups) at every clause start, and nearly
every try fails. Almost every alternative begins with a fixed word ("draw", "compose",
"e-mail"...), read off the pattern's parse tree by :func:`literal_prefixes`, so the word a
clause starts with rules most of them out. Without a lead, ``_ACTION`` at a position is an
ordered choice, so trying the remaining alternatives in order, each compiled alone, finds
its match and the group that names the need. The chore alternative (any verb before a
household thing) has no first word; it is tried when the text holds a household word.
Clauses opening with a lead word, and non-ASCII texts (``lower()`` may shift positions,
and IGNORECASE folds letters ``lower()`` keeps), take the whole pattern.

Scans: the noun patterns and ``_MENTION_SCOPE`` start every match at a word and with one
of their prefixes, so a guard in front (:func:`word_start_guarded`) fails most positions at
once, and the clause-boundary scan starts where the first boundary can
(:func:`boundaries_from`). The guard's prefixes run to two words ("in the", not "in"), so
"in" alone, "inside" or "information" fail it. A text's words come from one
``bytes.translate`` (:func:`letter_runs`). ``tests/test_modality_quick.py`` compares each
with the pattern it stands for; ``tests/test_modality_identity.py`` compares the verdicts
with the old code.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import cast

from .modality_nouns import _POINTING, _THE_MEDIA, _spellings
from .modality_verbs import (
    _ACTION,
    _ACTION_GROUPS,
    _CHORE,
    _DRAW_VERBS,
    _HOUSEHOLD,
    _LEAD,
    _MENTION_SCOPE,
)

# A prefix holds only these; a clause's first word is their longest run at its start.
_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz'.-")
_TOKEN = re.compile(r"[a-z'.\-]*")
_MAX_PREFIXES = 4096  # past this many spellings a pattern's prefixes stop growing

_State = frozenset[tuple[str, bool]]  # (prefix so far, may it still grow)


def literal_prefixes(
    pattern: str, flags: int = re.IGNORECASE, *, spaces: bool = False
) -> frozenset[str]:
    """Lower-cased texts one of which starts every match of ``pattern`` (ASCII text).

    Read off the parse tree: literal letters (and ``'``, ``.``, ``-``) and small letter
    classes extend the prefixes, an optional item forks them, lookarounds and ``\\b`` are
    passed over, and anything else (``\\w+``, ``[^.]``...) ends them. With ``spaces``, a
    ``\\s+`` extends them by one space, which stands for white space of any length (so
    such a prefix is for :func:`first_words`, not for ``str.startswith``); without, it ends
    them. An empty prefix means any text may start a match, so nothing is ruled out.
    """
    state = _sequence(sre_parse.parse(pattern, flags), frozenset({("", True)}), spaces)
    return frozenset(prefix for prefix, _ in state)


def _sequence(items: list[tuple[object, object]], state: _State, spaces: bool) -> _State:
    for op, av in items:
        if not any(grows for _, grows in state):
            break
        state = _item(op, av, state, spaces)
        if len(state) > _MAX_PREFIXES:
            state = _stop(state)
    return state


def _stop(state: _State) -> _State:
    return frozenset((prefix, False) for prefix, _ in state)


def _extend(state: _State, chars: set[str]) -> _State:
    return frozenset(
        (prefix + c, True) if grows else (prefix, False)
        for prefix, grows in state
        for c in (chars if grows else ("",))
    )


_SPACE = [(sre.IN, [(sre.CATEGORY, sre.CATEGORY_SPACE)])]  # how \s parses


def _item(op: object, av: object, state: _State, spaces: bool) -> _State:
    if op is sre.LITERAL:
        char = chr(av).lower()  # type: ignore[arg-type]
        return _extend(state, {char}) if char in _PREFIX_CHARS else _stop(state)
    if op is sre.IN:
        chars = set()
        for member_op, member in av:  # type: ignore[attr-defined]
            char = chr(member).lower() if member_op is sre.LITERAL else ""
            if char not in _PREFIX_CHARS:
                return _stop(state)  # a range, a category, a negation...
            chars.add(char)
        return _extend(state, chars)
    if op is sre.SUBPATTERN:
        return _sequence(av[3], state, spaces)  # type: ignore[index]
    if op is sre.BRANCH:
        alts = av[1]  # type: ignore[index]
        return frozenset().union(*(_sequence(alt, state, spaces) for alt in alts))
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        low, high, inner = cast("tuple[int, int, list[tuple[object, object]]]", av)
        if spaces and low == 1 and list(inner) == _SPACE:
            # Two words at most: enough to tell "in the" from "in", and the guard stays small.
            return frozenset(
                (prefix + " ", True) if grows and " " not in prefix else (prefix, False)
                for prefix, grows in state
            )
        if (low, high) == (0, 1):
            return state | _sequence(inner, state, spaces)
    if op in (sre.ASSERT, sre.ASSERT_NOT, sre.AT):
        return state  # takes no text: what follows starts the match
    return _stop(state)


def alternatives(pattern: str) -> tuple[str, ...]:
    """The top-level alternatives of ``pattern``, a ``(?:a|b|c)`` group or a bare ``a|b|c``."""
    if pattern.startswith("(?:") and _closing(pattern, 0) == len(pattern) - 1:
        pattern = pattern[3:-1]
    parts, start = [], 0
    for at, char, depth in _structure(pattern, 0):
        if char == "|" and depth == 0:
            parts.append(pattern[start:at])
            start = at + 1
    return (*parts, pattern[start:])


def _closing(pattern: str, at: int) -> int:
    """Where the group opening at ``at`` closes."""
    for end, char, depth in _structure(pattern, at):
        if char == ")" and depth == 0:
            return end
    raise ValueError(f"unbalanced group at {at} in {pattern!r}")


def _structure(pattern: str, at: int) -> Iterator[tuple[int, str, int]]:
    """Each position from ``at`` outside escapes and classes, its character and the group
    depth after it (so a ``)`` closing the outermost group reports 0)."""
    depth = 0
    while at < len(pattern):
        char = pattern[at]
        if char == "\\":
            at += 1
        elif char == "[":
            at = _class_end(pattern, at)
        else:
            depth += (char == "(") - (char == ")")
            yield at, char, depth
        at += 1


def _class_end(pattern: str, at: int) -> int:
    """The ``]`` closing the class opening at ``at`` (a ``]`` first in it is a member)."""
    at += 2 if pattern.startswith("[^", at) else 1
    at += pattern[at] == "]"
    while pattern[at] != "]":
        at += 2 if pattern[at] == "\\" else 1
    return at


# The groups of _ACTION in its order, each alternative with the prefixes that start it.
_GROUPS: tuple[tuple[str, tuple[tuple[str, frozenset[str]], ...]], ...] = tuple(
    (group, tuple((alt, literal_prefixes(alt)) for alt in alternatives(verbs)))
    for group, verbs in [("draw", _DRAW_VERBS)]
    + [(g, verbs) for g, (_, verbs) in _ACTION_GROUPS.items() if g != "chore"]
)
if not _LEAD.endswith(")*"):
    raise ValueError("modality_verbs._LEAD is no longer '(...)*': update modality_quick")
_LEAD_ONCE = re.compile(_LEAD[:-1], re.IGNORECASE)
# A chore names a household thing, whose first word is then a word of the text.
_HOUSEHOLD_WORDS = frozenset(
    word for spelling in _spellings(_HOUSEHOLD) for word in re.findall(r"[a-z]+", spelling)
)
_CHORE_ALONE = re.compile(_CHORE, re.IGNORECASE)

Action = tuple[str, int, int]  # the group of _ACTION that matched, and its span


_HOUSEHOLD_BYTES = frozenset(word.encode() for word in _HOUSEHOLD_WORDS)
# Every byte but a-z to a space: then ``split()`` gives the ``[a-z]+`` runs, as findall
# would, for a third of the cost.
_LETTERS_ONLY = bytes(c if 97 <= c <= 122 else 32 for c in range(256))


def letter_runs(lowered: str) -> list[bytes]:
    """``_WORD.findall(lowered)`` as bytes, for an ASCII ``lowered``."""
    return lowered.encode("ascii").translate(_LETTERS_ONLY).split()


def household_named(runs: list[bytes]) -> bool:
    """Whether an ASCII text whose :func:`letter_runs` are ``runs`` may be a chore."""
    return not _HOUSEHOLD_BYTES.isdisjoint(runs)


def action_span(m: re.Match[str] | None) -> Action | None:
    """The group of a match of ``_ACTION`` (or ``_ACTION_BUT_DRAW``) and its span."""
    if m is None or m.lastgroup is None:
        return None
    return m.lastgroup, m.start(m.lastgroup), m.end(m.lastgroup)


def action_at(text: str, lowered: str | None, start: int, chore: bool) -> Action | None:
    """``action_span(_ACTION.match(text, start))``; ``lowered`` is ``text.lower()`` if ASCII.

    ``chore`` says whether the chore alternative may match (see :func:`household_named`).
    Without a lead, ``_ACTION`` is an ordered choice at ``start``: its first alternative
    that matches there is its match, so trying the possible ones in order finds it.
    """
    if lowered is None or _LEAD_ONCE.match(text, start):
        return action_span(_ACTION.match(text, start))
    found = _TOKEN.match(lowered, start)
    for group, pattern in _for_word(found.group() if found else ""):
        m = pattern.match(text, start)
        if m:
            return group, start, m.end()
    if chore:
        m = _CHORE_ALONE.match(text, start)
        if m:
            return "chore", start, m.end()
    return None


@functools.lru_cache(maxsize=4096)
def _for_word(word: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """The alternatives of ``_ACTION`` a clause starting with ``word`` may match, in order."""
    return tuple(
        (group, _compiled(alt))
        for group, alts in _GROUPS
        for alt, prefixes in alts
        if any(map(word.startswith, prefixes))
    )


@functools.cache  # one per alternative: a few hundred at most
def _compiled(alternative: str) -> re.Pattern[str]:
    return re.compile(alternative, re.IGNORECASE)


def first_words(prefixes: frozenset[str]) -> str:
    """A pattern matching one of ``prefixes`` (a trie: one test per letter, not per word)."""
    if "" in prefixes:
        return ""
    heads: dict[str, set[str]] = {}
    for prefix in prefixes:
        heads.setdefault(prefix[0], set()).add(prefix[1:])
    branches = [
        (r"\s+" if head == " " else re.escape(head)) + first_words(frozenset(tails))
        for head, tails in heads.items()
    ]
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(sorted(branches)) + ")"


def word_start_guarded(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """``pattern`` behind a cheap test of where a match can start: the same matches.

    Every alternative of ``pattern`` must open with ``(?<![\\w-])`` or ``\\b`` before a
    letter, so a match starts at a word, and with one of its :func:`literal_prefixes`. A
    search tries the pattern at every position; most fail the guard at once instead of
    after trying every alternative.
    """
    for alt in alternatives(pattern.pattern):
        # "\\b" before a letter has no word character behind it; before "-" it would.
        first_letters = alt.startswith("\\b") and all(
            prefix[:1].isalpha() for prefix in literal_prefixes(alt, pattern.flags)
        )
        if not (alt.startswith("(?<![\\w-])") or first_letters):
            raise ValueError(f"an alternative does not start at a word: {alt[:40]!r}")
    guard = first_words(literal_prefixes(pattern.pattern, pattern.flags, spaces=True))
    return re.compile(rf"(?<!\w)(?={guard})(?:{pattern.pattern})", pattern.flags)


# What _pointed_at scans for, with the same matches in the same order.
POINTING = word_start_guarded(_POINTING)
THE_MEDIA = word_start_guarded(_THE_MEDIA)
MENTION_SCOPE = word_start_guarded(_MENTION_SCOPE)


def boundaries_from(text: str, first: int) -> int:
    """Where the first match of ``_BOUNDARY`` can start, given that of ``_MAY_BOUNDARY``.

    Every match of ``_BOUNDARY`` holds one of ``_MAY_BOUNDARY``, after at most a comma and
    white space, so none starts before the white space (and comma) in front of ``first``.
    """
    at = first
    while at and text[at - 1].isspace():  # what \s matches: both use Py_UNICODE_ISSPACE
        at -= 1
    if at and text[at - 1] == ",":
        at -= 1
    return at
