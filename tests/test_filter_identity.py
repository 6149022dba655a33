"""The built-in instance filters and the prompt builder decide exactly as before issue 15's
cheaper versions (per-task caches, no throwaway tuples, a substring test before a search).

The ``old_*`` functions are the checks as they stood before (commit d98daa0), kept here as
the oracle and only here. Every instance the parser reads from the realistic corpus
(``tests/fixtures/parse_corpus.py``), and instances hypothesis writes, go through old and
new, in the chain's own way (one context per instance, sharing the task's tuple).
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from selfinstruct_plugins.instances import (
    ConflictingOutputs,
    DuplicateInstance,
    InstanceControlCharacters,
    LeakedMarkers,
)
from selfinstruct_plugins.keywords import Blacklist, BlacklistSettings

from selfinstruct_async import InstanceContext, Rejection
from selfinstruct_async.parsing import parse_instances
from selfinstruct_async.prompts import DEFAULT_TEMPLATES, build_instance_prompt
from selfinstruct_async.records import Instance, SeedTask
from tests.fixtures.parse_corpus import answers, instructions

# ------------------------------------------------------------------ the oracle (d98daa0)

_OLD_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_OLD_LEAKED = re.compile(
    r"^[ \t>#-]*(?:\*\*|__)?\s*(?:(?:input|output|class label|task)\s*(?:\*\*|__)?\s*:"
    r"|example\s*\d+\s*(?:\*\*|__)?\s*(?:[:.)]|$))",
    re.IGNORECASE | re.MULTILINE,
)


def old_control(instance: Instance, task: InstanceContext) -> Rejection | None:
    for field, text in (("input", instance.input), ("output", instance.output)):
        found = _OLD_CONTROL.search(text)
        if found is not None:
            char, index = found.group(), found.start()
            return Rejection(f"{field} holds control character {char!r} at position {index}")
    return None


def old_leaked(instance: Instance, task: InstanceContext) -> Rejection | None:
    for field, text in (("input", instance.input), ("output", instance.output)):
        found = _OLD_LEAKED.search(text)
        if found is not None:
            line = found.group().strip()
            return Rejection(f"{field} holds the prompt's label {line!r} at a line start")
    return None


def old_conflicting(instance: Instance, task: InstanceContext) -> Rejection | None:
    outputs: dict[str, set[str]] = {}
    for other in task.instances:
        if other.input.strip():
            outputs.setdefault(other.input.strip(), set()).add(other.output.strip())
    conflicting = [i for i, outs in outputs.items() if len(outs) > 1]
    if conflicting:
        first = conflicting[0][:60]
        return Rejection(f"{len(conflicting)} input(s) with different outputs, e.g. {first!r}")
    return None


def old_duplicate(instance: Instance, task: InstanceContext) -> Rejection | None:
    key = (instance.input.strip(), instance.output.strip())
    if any((i.input.strip(), i.output.strip()) == key for i in task.earlier):
        return Rejection("duplicate of an earlier instance")
    return None


def old_blacklist(pattern: re.Pattern[str] | None, instruction: str) -> Rejection | None:
    match = pattern.search(instruction) if pattern else None
    if match:
        return Rejection(f"contains blacklisted word {match.group(0).lower()!r}")
    return None


# ----------------------------------------------------------------------------- the tests

_PAIRS = (
    (InstanceControlCharacters, old_control),
    (LeakedMarkers, old_leaked),
    (ConflictingOutputs, old_conflicting),
    (DuplicateInstance, old_duplicate),
)


Verdicts = list[tuple[Rejection | None, Rejection | None]]


def _verdicts(tasks: list[tuple[Instance, ...]]) -> dict[str, Verdicts]:
    """Each filter's verdicts, new and old, over every instance of every task."""
    out: dict[str, Verdicts] = {}
    filters = [(cls(), old) for cls, old in _PAIRS]
    for found in tasks:
        contexts = [InstanceContext("task", False, found, i) for i in range(len(found))]
        for new, old in filters:
            for context in contexts:
                instance = found[context.index]
                verdicts = (new.check(instance, context), old(instance, context))
                out.setdefault(new.name, []).append(verdicts)
    return out


def test_the_corpus_gets_the_same_verdicts_as_before() -> None:
    tasks = [tuple(parse_instances(a.text, a.is_classification, "stop", 50)) for a in answers()]
    tasks = [found for found in tasks if found]
    # Whole tasks, and the same instances regrouped so that siblings collide.
    flat = [instance for found in tasks for instance in found]
    tasks += [tuple(flat[i : i + 7]) for i in range(0, len(flat), 7)]
    tasks += [tuple(flat[i : i + 3]) * 2 for i in range(0, 600, 3)]
    # What a model rarely writes: terminal codes, NUL, DEL, C1 controls, CRLF.
    for number, char in enumerate("\x00\x1b\x7f\x85\x9f\x0b\r"):
        tasks.append((flat[number], Instance(flat[number].input + char, "x"), flat[number + 1]))
        tasks.append((Instance("a", f"ok{char}then"), Instance(f"{char}in", "out")))
    rejected: dict[str, int] = {}
    for name, verdicts in _verdicts(tasks).items():
        assert [new for new, _ in verdicts] == [old for _, old in verdicts], name
        rejected[name] = sum(new is not None for new, _ in verdicts)
    # Every filter rejects something in the corpus: the comparison covers both outcomes.
    assert all(count > 0 for count in rejected.values()), rejected


_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["", " ", "a", "b", "Input: x", "x\nOutput: y", "\x1b[2J", "Example 2.", "**Task**:",
         "\u017fask: s", "ta\u017fk: x", "Tas\u212a:", "TASK:", "label", "a\u0085b",
         "\ttab\r\n", "example 10", "> - input:"]
    ),
)  # fmt: skip
_INSTANCE = st.builds(Instance, _TEXT, _TEXT)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_INSTANCE, max_size=6), max_size=4), st.integers(-3, 8))
def test_written_instances_get_the_same_verdicts_as_before(
    tasks: list[list[Instance]], index: int
) -> None:
    assert all(
        new == old for verdicts in _verdicts([tuple(t) for t in tasks]).values()
        for new, old in verdicts
    )  # fmt: skip
    # A fixed context with any instance and any index, as ``FilterChain.check_instance``
    # and third-party callers use them, and a list where a tuple is expected.
    for found in tasks:
        for context in (
            InstanceContext("task", True, tuple(found), index),
            InstanceContext("task", True, found, index),  # type: ignore[arg-type]
        ):
            for cls, old in _PAIRS:
                new = cls()
                for instance in [*found, Instance("a", "b")]:
                    assert new.check(instance, context) == old(instance, context)


def test_a_list_of_instances_changed_in_place_is_judged_again() -> None:
    found = [Instance("a", "1"), Instance("a", "1")]
    context = InstanceContext("task", False, found, 1)  # type: ignore[arg-type]
    conflicting, duplicate = ConflictingOutputs(), DuplicateInstance()
    assert conflicting.check(found[1], context) is None
    assert duplicate.check(found[1], context) is not None
    found[1] = Instance("a", "2")
    assert conflicting.check(found[1], context) is not None
    assert duplicate.check(found[1], context) is None


def _demo(number: int) -> SeedTask:
    shown = (Instance("", f"out {number}"),)
    return SeedTask(f"d{number}", f"d{number}", f"Demonstration {number}.", shown, False)


def test_instance_prompts_render_each_demonstration_as_it_is_now() -> None:
    """Blocks are remembered by identity: a new task that reuses a freed id is not confused."""
    for number in range(3000):  # more than the blocks remembered, ids freed and reused
        text = build_instance_prompt("Do it.", False, [_demo(number)]).text
        empty = DEFAULT_TEMPLATES.empty_input
        assert f"Demonstration {number}.\nExample 1\nInput: {empty}\n" in text
        assert f"Output: out {number}\n" in text
    demo = _demo(1)
    assert (
        build_instance_prompt("Do it.", False, [demo]).text
        == build_instance_prompt("Do it.", False, [_demo(1)]).text
    )


_BLACKLISTS = (
    BlacklistSettings(),
    BlacklistSettings(lists=("paper", "alpaca")),
    BlacklistSettings(words=("Sk\u00e9tch", "task")),  # a non-ASCII word: no shortcut
    # Long s and the Kelvin sign match "s" and "k" under IGNORECASE, not under lower().
    BlacklistSettings(lists=(), words=("\u017fketch", "\u212aink")),
    BlacklistSettings(lists=(), words=("GO TO", "ink", "sketch")),
    BlacklistSettings(lists=()),
)
_SPELLINGS = [
    "image", "IMAGES", "Go To", "go  to", "maps", "mapping", "\u017fketch", "sk\u00e9tch",
    "Sk\u00c9tch", "file.", "profile", "pictures!", "TASK", "inks", "Ink", "\u212aink",
    "sketch", "SKETCH",
]  # fmt: skip


def test_the_blacklist_rejects_what_it_rejected_before() -> None:
    texts = list(instructions())
    texts += [f"Please {word} this {other}" for word in _SPELLINGS for other in _SPELLINGS]
    for settings_ in _BLACKLISTS:
        new = Blacklist(settings_)
        rejected = 0
        for text in texts:
            verdict = new.check(text)
            assert verdict == old_blacklist(new.pattern, text), (settings_, text)
            rejected += verdict is not None
        assert rejected > 0 or not new.words


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_SPELLINGS), st.text(max_size=6)), max_size=8))
def test_written_instructions_meet_the_blacklist_as_before(words: list[str]) -> None:
    text = " ".join(words)
    for settings_ in _BLACKLISTS:
        new = Blacklist(settings_)
        assert new.check(text) == old_blacklist(new.pattern, text)
