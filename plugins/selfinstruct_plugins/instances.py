"""The paper's instance filters (incomplete, trivial, duplicate and contradictory instances),
and two of this project's: control characters, and the prompt's labels leaked into a field.

The chain runs them one after the other over a task's instances, each over what the ones
before it kept, which is the original's order: invalid instances (empty output, control
characters, a trailing colon, output copying the input) go first, then the contradiction
rule judges the survivors, then exact duplicates go. The cap on instances per task comes
after all of them, in the stage (``instances.max_instances``, ``instances.cap``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from selfinstruct_async import BaseFilter, Instance, InstanceContext, Rejection, hookimpl


class EmptyOutput(BaseFilter):
    """Rejects instances whose output is empty or only whitespace."""

    name = "empty_output"
    order = 10

    def check(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        return None if instance.output.strip() else Rejection("empty output")


# C0 controls except tab, newline and carriage return (CRLF text is still text), DEL, and
# the C1 controls U+0080-U+009F.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class InstanceControlCharacters(BaseFilter):
    """Rejects instances whose input or output holds control characters (escape codes, NUL...).

    Tab, newline and carriage return are text; an ``ESC[...`` sequence kept in a dataset
    acts on the terminal of whoever prints it, and trains a model to emit it.
    """

    name = "instance_control_characters"
    order = 15

    def check(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        # Two searches written out: this runs on every instance, and a loop over
        # (field, text) pairs cost more than the searches themselves.
        found = _CONTROL.search(instance.input)
        if found is not None:
            return _control_rejection("input", found)
        found = _CONTROL.search(instance.output)
        if found is not None:
            return _control_rejection("output", found)
        return None


def _control_rejection(field: str, found: re.Match[str]) -> Rejection:
    char, index = found.group(), found.start()
    return Rejection(f"{field} holds control character {char!r} at position {index}")


# The prompt's own field labels at a line start: an answer that got away from its format
# (a second example, the next task) glued onto this field. Code fences are not exempt: a
# dataset line that still says "Output:" teaches the format, not the task.
_LEAKED = re.compile(
    r"^[ \t>#-]*(?:\*\*|__)?\s*(?:(?:input|output|class label|task)\s*(?:\*\*|__)?\s*:"
    r"|example\s*\d+\s*(?:\*\*|__)?\s*(?:[:.)]|$))",
    re.IGNORECASE | re.MULTILINE,
)


class LeakedMarkers(BaseFilter):
    """Rejects instances whose input or output holds a line opening with a prompt label.

    ``Input:``, ``Output:``, ``Class label:``, ``Task:`` or ``Example n`` at a line start
    mean the model wrote more than one field into this one; the parser avoids creating
    them, and this filter keeps any that slip through (a plugin's parser, the paper
    parser) out of the dataset, counted by name.
    """

    name = "leaked_markers"
    order = 16

    def check(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        for field, text in (("input", instance.input), ("output", instance.output)):
            found = _LEAKED.search(text) if _may_leak(text) else None
            if found is not None:
                line = found.group().strip()
                return Rejection(f"{field} holds the prompt's label {line!r} at a line start")
        return None


def _may_leak(text: str) -> bool:
    """False when ``_LEAKED`` cannot match: an ASCII text naming none of its labels.

    Substring tests on the lowered text are much cheaper than the line-start search. Only
    for ASCII: IGNORECASE also matches letters that ``lower()`` keeps apart ("\u017f").
    """
    if not text.isascii():
        return True
    low = text.lower()
    return "input" in low or "output" in low or "label" in low or "task" in low or "example" in low


class ColonEnding(BaseFilter):
    """Rejects instances whose input or output ends with a colon: usually a cut-off generation."""

    name = "colon_ending"
    order = 20

    def check(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        if instance.output.strip().endswith(":"):
            return Rejection("output ends with ':'")
        if instance.input.strip().endswith(":"):
            return Rejection("input ends with ':'")
        return None


class InputEqualsOutput(BaseFilter):
    """Rejects instances that copy the input into the output."""

    name = "input_equals_output"
    order = 30

    def check(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        if instance.input.strip() == instance.output.strip():
            return Rejection("output is the same as the input")
        return None


class ConflictingOutputs(BaseFilter):
    """The paper's rule: if one non-empty input appears with different outputs, drop them all.

    Only instances that passed the filters ordered before this one are compared, so an
    instance already rejected (an empty output, say) cannot sink its siblings.
    """

    name = "conflicting_outputs"
    order = 40

    def __init__(self, settings: object = None) -> None:
        super().__init__(settings)
        # The verdict depends on the task's instances only, and the chain hands every
        # instance of a task the same tuple: it is judged once per tuple, not per instance.
        # One attribute holds the tuple with its verdict, so that the pair is read and
        # replaced at once; holding the tuple keeps its id from being reused meanwhile.
        self._judged: tuple[tuple[Instance, ...], Rejection | None] | None = None

    def check(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        judged = self._judged
        if judged is not None and judged[0] is task.instances:
            return judged[1]
        verdict = _conflict(tuple(task.instances))
        if type(task.instances) is tuple:  # a list could change under the cache
            self._judged = (task.instances, verdict)
        return verdict


def _conflict(instances: tuple[Instance, ...]) -> Rejection | None:
    outputs: dict[str, set[str]] = {}
    for other in instances:
        given = other.input.strip()
        if given:
            outputs.setdefault(given, set()).add(other.output.strip())
    conflicting = [i for i, outs in outputs.items() if len(outs) > 1]
    if conflicting:
        first = conflicting[0][:60]
        return Rejection(f"{len(conflicting)} input(s) with different outputs, e.g. {first!r}")
    return None


class DuplicateInstance(BaseFilter):
    """Rejects an instance identical to a surviving one generated before it for the same task."""

    name = "duplicate_instance"
    order = 50

    def __init__(self, settings: object = None) -> None:
        super().__init__(settings)
        # Per task tuple, held as ConflictingOutputs holds it: where each (input, output)
        # first occurs. An instance has an identical earlier one exactly when its first
        # occurrence comes before its own position.
        self._indexed: tuple[tuple[Instance, ...], dict[tuple[str, str], int]] | None = None

    def check(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        indexed = self._indexed
        if indexed is not None and indexed[0] is task.instances:
            first = indexed[1]
        else:
            first = {}
            for position, other in enumerate(task.instances):
                first.setdefault((other.input.strip(), other.output.strip()), position)
            if type(task.instances) is tuple:  # a list could change under the cache
                self._indexed = (task.instances, first)
        key = (instance.input.strip(), instance.output.strip())
        # len(task.earlier), without building the slice (a negative index slices too).
        index = task.index if task.index >= 0 else max(len(task.instances) + task.index, 0)
        if first.get(key, index) < index:
            return Rejection("duplicate of an earlier instance")
        return None


@hookimpl
def register_instance_filters(register: Callable[[type[BaseFilter]], None]) -> None:
    for cls in (
        EmptyOutput,
        InstanceControlCharacters,
        LeakedMarkers,
        ColonEnding,
        InputEqualsOutput,
        ConflictingOutputs,
        DuplicateInstance,
    ):
        register(cls)
