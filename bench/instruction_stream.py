"""A deterministic synthetic instruction stream for the similarity benchmark.

Fresh instructions of 10-30 tokens composed from templates and word lists written here
(no external data), with a Zipf-like long tail of pseudo-words, and a share of
near-duplicates (one to three word edits of an earlier instruction).
"""

from __future__ import annotations

import itertools
import random
import re
import string

from stream_vocabulary import ADJECTIVES, NOUNS
from stream_words import (
    ACTIVITIES,
    AUDIENCES,
    CLOSERS,
    CODE_TASKS,
    CRITERIA,
    DOCS,
    ENTITIES,
    FIELDS,
    FORMS,
    ISSUES,
    LANGS,
    MATERIALS,
    MODIFIERS,
    MORE_TASKS,
    OPENERS,
    PARTS,
    PEOPLE,
    PLANGS,
    PRODUCTS,
    STATS,
    SYNONYMS,
    TASKS,
    THINGS,
    TONES,
    UNITS,
)


def _long_tail(size: int = 30_000) -> list[str]:
    """Pseudo-words standing in for the long tail of a real vocabulary (names, jargon)."""
    rng = random.Random(12345)
    onsets = [*"bcdfghjklmnprstvwz", "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st"]
    onsets += ["th", "tr"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou"]
    codas = ["", "", "n", "r", "s", "l", "m", "x", "nd", "st"]
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.choice([2, 2, 3, 3, 4])
        words.add(
            "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(syllables))
            + rng.choice(codas)
        )
    return sorted(words)


TAIL = _long_tail()
# Zipf-like weights (flattened at the head): the k-th word is drawn with weight 1/(k + 100).
TAIL_WEIGHTS = list(itertools.accumulate(1 / (k + 100) for k in range(len(TAIL))))
ALL_TASKS = TASKS + MORE_TASKS


def _tail_word(rng: random.Random) -> str:
    return rng.choices(TAIL, cum_weights=TAIL_WEIGHTS)[0]


def _noun(rng: random.Random) -> str:
    return rng.choice(NOUNS) if rng.random() < 0.5 else _tail_word(rng)


LINKS = ["of", "in", "from", "near", "for", "at", "under", "with", "by", "around"]


def _topic(rng: random.Random) -> str:
    # Real topics are specific: an adjective, a noun, often a qualifier from the long tail.
    adjective = rng.choice(ADJECTIVES)
    if rng.random() < 0.3:
        return f"{adjective} {_noun(rng)}"
    return f"{adjective} {_noun(rng)} {rng.choice(LINKS)} {_tail_word(rng)}"


_SLOTS = {
    "form": FORMS,
    "doc": DOCS,
    "audience": AUDIENCES,
    "field": FIELDS,
    "field2": FIELDS,
    "lang": LANGS,
    "lang2": LANGS,
    "tone": TONES,
    "stat": STATS,
    "things": THINGS,
    "criterion": CRITERIA,
    "product": PRODUCTS,
    "plang": PLANGS,
    "code_task": CODE_TASKS,
    "part": PARTS,
    "unit": UNITS,
    "unit2": UNITS,
    "person": PEOPLE,
    "person2": PEOPLE,
    "issue": ISSUES,
    "entity": ENTITIES,
    "material": MATERIALS,
    "activity": ACTIVITIES,
}
_NUMS = ["2", "3", "4", "5", "6", "7", "8", "10", "12", "15", "20", "50", "100"]


def _fill(template: str, rng: random.Random) -> str:
    return _fill_counted(template, rng)[0]


def _fill_counted(template: str, rng: random.Random) -> tuple[str, int]:
    """The filled template and how many specific words (adjectives, nouns, tail) it got."""
    # Draw only the slots the template uses: cheaper, and the same for every template.
    values: dict[str, str] = {}
    specific = 0
    for name in _slot_names(template):
        if name in _SLOTS:
            values[name] = rng.choice(_SLOTS[name])
        elif name in ("topic", "topic2"):
            values[name] = _topic(rng)
            specific += 2 if values[name].count(" ") == 1 else 3
        elif name in ("w1", "w2", "w3"):
            values[name] = _noun(rng)
            specific += 1
        elif name == "num":
            values[name] = rng.choice(_NUMS)
        elif name == "form_plural":
            values[name] = rng.choice(FORMS) + "s"
        elif name == "audience_single":
            values[name] = rng.choice(AUDIENCES).rstrip("s")
    return template.format(**values), specific


_SLOT_CACHE: dict[str, list[str]] = {}


def _slot_names(template: str) -> list[str]:
    names = _SLOT_CACHE.get(template)
    if names is None:
        names = [field for _, field, _, _ in string.Formatter().parse(template) if field]
        _SLOT_CACHE[template] = names
    return names


def _fresh(rng: random.Random) -> str:
    """A new instruction of 10 to 30 tokens, at least 30% of them specific words.

    Real instructions differ mostly in what they are about; a stream whose instructions are
    mostly template words would saturate (most fresh candidates scoring above 0.7 with an
    earlier one) long before 200K, unlike real data.
    """
    while True:
        text, specific = _fresh_any(rng)
        n = len(_TOKEN.findall(text.lower()))
        if 10 <= n <= 30 and specific >= 0.3 * n:
            return text


def _fresh_any(rng: random.Random) -> tuple[str, int]:
    task_template = rng.choice(ALL_TASKS)
    task, specific = _fill_counted(task_template, rng)
    verb, _, rest = task.partition(" ")
    if verb in SYNONYMS:
        task = f"{rng.choice(SYNONYMS[verb])} {rest}"
    parts = [rng.choice(OPENERS), task]
    for _ in range(rng.choice([0, 1, 1, 2])):
        modifier, count = _fill_counted(rng.choice(MODIFIERS), rng)
        parts.append(modifier)
        specific += count
    text = " ".join(p for p in parts if p).strip()
    text = text[0].upper() + text[1:] + "."
    if rng.random() < 0.4:
        closer, count = _fill_counted(rng.choice(CLOSERS), rng)
        text = f"{text} {closer}".strip()
        specific += count
    return text, specific


def _mutate(text: str, rng: random.Random) -> str:
    """A near-duplicate: replace, drop, insert or swap one to three words."""
    words = text.split()
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        op = rng.random()
        i = rng.randrange(len(words))
        if op < 0.4:
            words[i] = rng.choice(NOUNS + ADJECTIVES)
        elif op < 0.6 and len(words) > 6:
            del words[i]
        elif op < 0.85:
            words.insert(i, rng.choice(["really", "please", "also", "carefully", "new"]))
        else:
            j = rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
    return " ".join(words)


_TOKEN = re.compile(r"[a-z0-9]+")


class InstructionStream:
    """A deterministic stream of instructions: fresh ones and near-duplicates of earlier ones.

    ``next_fresh()`` draws a new instruction; ``next()`` is a near-duplicate (an edit of any
    earlier fresh instruction) with probability ``near_duplicates``, else a fresh one.
    """

    def __init__(self, seed: int = 0, near_duplicates: float = 0.15) -> None:
        self.rng = random.Random(seed)
        self.near_duplicates = near_duplicates
        self.history: list[str] = []

    def next_fresh(self) -> str:
        text = _fresh(self.rng)
        self.history.append(text)
        return text

    def next(self) -> tuple[str, bool]:
        """A candidate and whether it is a near-duplicate."""
        if self.history and self.rng.random() < self.near_duplicates:
            return _mutate(self.rng.choice(self.history), self.rng), True
        return self.next_fresh(), False
