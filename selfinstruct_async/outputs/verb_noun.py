"""Leading verb and its direct object, a parser-free stand-in for the paper's verb-noun chart.

The paper parsed each instruction with Berkeley's neural parser and kept the verb closest
to the root with its first direct noun object. Instructions are overwhelmingly imperative
("Write a short poem about..."), so a few rules recover most of those pairs without a
model download:

1. lower-case and split into words and punctuation;
2. drop polite or framing prefixes ("please", "can you", "your task is to", ...);
3. skip a leading subordinate phrase up to its comma ("Given a list of numbers, find...");
4. the first word is the verb, unless it is a question word, auxiliary, pronoun,
   determiner, number or preposition, or the second word is "is"/"are"/"has"... (a subject
   then: the instruction is a question or a statement with no verb-object pair);
5. the object is the head of the noun phrase after the verb: skip determiners, pronouns,
   number words, common adjectives, ``-ly`` adverbs and verb particles ("out", "up"),
   then take the last word of the run of words that follows, which ends at a
   preposition, conjunction, ``wh``-word, punctuation, a later ``-ed``/``-ing`` word or
   after four words ("a Python function that..." gives "function"). A preposition or
   ``wh``-word right after the verb means there is no direct object ("Explain how...").

It is an approximation: "Sort the numbers" and "Book a flight" come out right, but a verb
that is also a noun ("Plan", "List") is still taken as the verb, and a noun used as a verb
after the object's head ("Sort the names alphabetically" is fine, "List the cities
visit counts" is not) stretches the phrase.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

_TOKEN = re.compile(r"[a-z]+(?:['-][a-z]+)*|[^\sa-z]")
_MAX_PHRASE = 4

_PREFIXES: tuple[tuple[str, ...], ...] = tuple(
    tuple(p.split())
    for p in (
        "i would like you to",
        "i'd like you to",
        "i want you to",
        "i need you to",
        "your task is to",
        "you are asked to",
        "you need to",
        "you should",
        "you must",
        "can you please",
        "could you please",
        "would you please",
        "can you",
        "could you",
        "would you",
        "will you",
        "please",
        "kindly",
        "now",
        "help me",
        "let's",
        "try to",
        "also",
    )
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_SUBORDINATE = _words(
    "given for if using based in from after with according suppose assuming when "
    "imagine considering as"
)
_NOT_VERBS = _words(
    "what how why who whom whose which where when is are was were am be do does did can could "
    "would will should shall may might must has have had the a an this that these those it "
    "its i you he she we they my your our their there here yes no not if whether one two three "
    "four five six seven eight nine ten by to of about on at than"
)
_SKIP = _words(
    # determiners, pronouns, quantities
    "a an the this that these those some any each every all both either another other "
    "such my your his her its our their me us him them it one two three four five six seven "
    "eight nine ten few several many much more most single only same "
    # common adjectives in instructions
    "short long brief new simple good great best better short creative detailed funny "
    "possible correct appropriate main random original concise suitable catchy different "
    "given following interesting unique similar specific potential fictional persuasive "
    "formal informal clear complete basic brief quick small large full whole little "
    "positive negative real famous popular common key important relevant plausible realistic "
    "missing historical greatest largest smallest regular proper likely "
    # particles of phrasal verbs ("work out the answer", "sum up the text")
    "out up down off over back"
)
_COPULAS = _words("is are was were has have had will would can")
_STOP = _words(
    "to of about in on for with from into by at as and or but if whether how what why who "
    "which where when that than so because while whose whom between among across through "
    "within without against per via like unlike"
)


def tokens(text: str) -> list[str]:
    """Lower-cased words and punctuation marks."""
    return _TOKEN.findall(text.lower())


def _strip_prefixes(words: list[str]) -> list[str]:
    changed = True
    while changed and words:
        changed = False
        for prefix in _PREFIXES:
            if tuple(words[: len(prefix)]) == prefix:
                words = words[len(prefix) :]
                while words and words[0] in {",", ":"}:
                    words = words[1:]
                changed = True
                break
    return words


def verb_object(instruction: str) -> tuple[str, str | None] | None:
    """The instruction's leading verb and its object (``None`` if none), or ``None``."""
    words = _strip_prefixes(tokens(instruction))
    if words and words[0] in _SUBORDINATE and "," in words:
        words = _strip_prefixes(words[words.index(",") + 1 :])
    if not words or not words[0].isalpha() or words[0] in _NOT_VERBS:
        return None
    if len(words) > 1 and words[1] in _COPULAS:  # "Maria is three times as old..."
        return None
    verb = words[0]
    rest = words[1:]
    while rest and (rest[0] in _SKIP or rest[0].endswith("ly")):
        rest = rest[1:]
    phrase: list[str] = []
    for word in rest:
        ends_phrase = not word[0].isalpha() or word in _STOP or word in _SKIP
        participle = bool(phrase) and word.endswith(("ed", "ing"))
        if ends_phrase or participle or len(phrase) == _MAX_PHRASE:
            break
        phrase.append(word)
    return verb, (phrase[-1] if phrase else None)


@dataclass(frozen=True)
class VerbCount:
    """A verb, how many instructions lead with it, and its most common objects."""

    verb: str
    count: int
    objects: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class VerbSummary:
    """The chart's data: the top verbs and how many instructions the rules could read."""

    instructions: int
    with_verb: int
    with_object: int
    verbs: tuple[VerbCount, ...]


def verb_object_counts(
    instructions: Iterable[str], top_verbs: int = 20, top_objects: int = 4
) -> VerbSummary:
    """Count leading verbs and their objects; ties are broken alphabetically."""
    verbs: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    total = with_object = 0
    for text in instructions:
        total += 1
        found = verb_object(text)
        if found is None:
            continue
        verbs[found[0]] += 1
        if found[1] is not None:
            pairs[found[0], found[1]] += 1
            with_object += 1
    by_verb: dict[str, list[tuple[str, int]]] = {}
    for (verb, obj), n in pairs.items():
        by_verb.setdefault(verb, []).append((obj, n))
    top = sorted(verbs.items(), key=lambda vn: (-vn[1], vn[0]))[:top_verbs]
    return VerbSummary(
        instructions=total,
        with_verb=sum(verbs.values()),
        with_object=with_object,
        verbs=tuple(
            VerbCount(
                verb,
                n,
                tuple(sorted(by_verb.get(verb, []), key=lambda on: (-on[1], on[0]))[:top_objects]),
            )
            for verb, n in top
        ),
    )
