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
        for field, text in (("input", instance.input), ("output", instance.output)):
            found = _CONTROL.search(text)
            if found is not None:
                char, index = found.group(), found.start()
                return Rejection(f"{field} holds control character {char!r} at position {index}")
        return None


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
            found = _LEAKED.search(text)
            if found is not None:
                line = found.group().strip()
                return Rejection(f"{field} holds the prompt's label {line!r} at a line start")
        return None


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

    def check(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        outputs: dict[str, set[str]] = {}
        for other in task.instances:
            if other.input.strip():
                outputs.setdefault(other.input.strip(), set()).add(other.output.strip())
        conflicting = [i for i, outs in outputs.items() if len(outs) > 1]
        if conflicting:
            first = conflicting[0][:60]
            return Rejection(f"{len(conflicting)} input(s) with different outputs, e.g. {first!r}")
        return None


class DuplicateInstance(BaseFilter):
    """Rejects an instance identical to a surviving one generated before it for the same task."""

    name = "duplicate_instance"
    order = 50

    def check(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        key = (instance.input.strip(), instance.output.strip())
        if any((i.input.strip(), i.output.strip()) == key for i in task.earlier):
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
