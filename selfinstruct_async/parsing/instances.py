"""Reading the instances (input/output pairs, or labels with their inputs) of an answer.

The fields are named by the prompt's templates (``Input:``, ``Output:``, ``Class label:``,
``Example 1``); answers written without them, or under each field's own name, are read too.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from ..prompts import DEFAULT_TEMPLATES, PromptTemplates, one_line
from ..records import Instance
from .markup import CLOSERS, FENCE, HEADING, PREAMBLE, split_lines, strip_outer_markup


@functools.lru_cache(maxsize=64)
def _label_regex(names: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(sorted({re.escape(n) for n in names}, key=len, reverse=True))
    return re.compile(
        r"^(?:[#>]\s*+)*+(?:[-*+]\s++|\d{1,2}[.)]\s++)?(?:\*\*|__)?\s*+(" + alternatives + r")"
        r"(?:\s*+\d{1,3})?\s*+(?:\*\*|__)?\s*+[:\uff1a]\s*(?:\*\*|__)?[ \t]*(.*)$",
        re.IGNORECASE,
    )


@functools.lru_cache(maxsize=64)
def _inline_regex(names: tuple[str, ...]) -> re.Pattern[str]:
    """A label in the middle of a line, as in ``Input: x  **Output:** y``.

    Matched with its case, capitalised as a label is: "the input: field" in a sentence is
    prose, not a label.
    """
    alternatives = "|".join(sorted({re.escape(n) for n in names}, key=len, reverse=True))
    return re.compile(
        r"(?<=\S)\s++(?:(?:\*\*|__)\s*+)?(?:" + alternatives + r")(?:\s*+\d{1,3})?\s*+"
        r"(?:\*\*|__)?\s*+[:\uff1a]"
    )


def _label_spellings(*names: str) -> tuple[str, ...]:
    return tuple({form for name in names for form in (name, name.capitalize(), name.title())})


@functools.lru_cache(maxsize=16)
def _example_regex(name: str) -> re.Pattern[str]:
    """``Example 3`` on its own line, or followed by a title or the example's first field."""
    return re.compile(
        r"^(?:[#>]\s*+)*+(?:\*\*|__)?\s*+(?:" + re.escape(name) + r"|example|instance)"
        r"\s*+#?\s*+\d{1,3}(?!\d)\s*+(?:\*\*|__)?\s*+[:.)\-\u2013\u2014]?\s*+(?:\*\*|__)?"
        r"\s*+[:.]?\s*+(.*)$",
        re.IGNORECASE,
    )


# An input written under its own field name, as the paper's demonstrations write them:
# "Sentence: ...", "**Dialogue:**", "2. Sentence 1: ...". The name is kept with the input.
_FIELD = re.compile(
    r"^(?:\d{1,2}[.)]\s++)?(?:\*\*|__)?\s*+"
    r"([^\W\d_][\w'\u2019()/&-]*+(?:[ \t]++[\w'\u2019()/&-]++){0,3}?)"
    r"\s*+(?:\*\*|__)?\s*+[:\uff1a](?:\*\*|__)?(?:\s++(.*))?$"
)
_TRAILING_NUMBER = re.compile(r"\s*\d+$")
_FENCE_MARKS = ("```", "~~~")


def _field_line(line: str) -> tuple[str, str] | None:
    """``(name, text)`` for a line that opens a named field, ``text`` without markup."""
    match = _FIELD.match(line)
    if match is None or len(match.group(1)) > 40:
        return None
    name, value = match.group(1), (match.group(2) or "").strip()
    return name, f"{name}: {value}" if value else f"{name}:"


def _base_name(name: str) -> str:
    """The kind of a field name: "Sentence 2" and "sentence" are the same kind."""
    return _TRAILING_NUMBER.sub("", name).casefold()


@dataclass(slots=True)
class _Field:
    kind: str  # "input", "output", "label", or "skip" (read past, kept nowhere)
    lines: list[str]
    name: str | None = None  # the field name an input was written under, if any


@dataclass(slots=True)
class _Reader:
    """What :func:`parse_instances` has read so far, and the field it is reading."""

    output_first: bool
    max_instances: int
    instances: list[Instance] = field(default_factory=list)
    current: _Field | None = None
    pending_input: str | None = None  # an input still waiting for its output
    label: str | None = None  # output-first: the class label of the inputs that follow
    label_used: bool = False
    input_names: set[str] = field(default_factory=set)  # field names that opened inputs
    after_example: bool = False  # an "Example n" line came and no field since
    overflow: bool = False  # an instance came after the last one we keep

    def add(self, instance: Instance) -> None:
        if len(self.instances) >= self.max_instances:
            self.overflow = True
        else:
            self.instances.append(instance)

    def start(self, kind: str, first_line: str, name: str | None = None) -> None:
        self.close_field()
        self.after_example = False
        if kind == "input":
            self.pending_input = None  # an input without an output is dropped
            if name:
                self.input_names.add(_base_name(name))
        elif kind == "output" and self.output_first and self.label is not None:
            # The class label is the output; an extra "Output:" line only repeats or
            # explains it, and must not end up inside the input.
            kind = "skip"
        self.current = _Field(kind, [first_line] if first_line.strip() else [], name)

    def start_example(self) -> None:
        self.close_field()
        self.pending_input = None
        self.after_example = True

    def close_field(self) -> None:
        current, self.current = self.current, None
        if current is None:
            return
        if current.kind == "input":
            value = _clean(current.lines, output=False)
            if self.output_first and self.label is not None:
                self.add(Instance(value, self.label))
                self.label_used = True
            else:
                self.pending_input = value
        elif current.kind == "output":
            self.add(Instance(self.pending_input or "", _clean(current.lines, output=True)))
            self.pending_input = None
        elif current.kind == "label":
            self.close_label()
            self.label = one_line(strip_outer_markup(one_line(" ".join(current.lines))))
            self.label_used = False

    def close_label(self) -> None:
        """A label without inputs is an instance of a task that needs no input."""
        if self.label and not self.label_used:
            self.add(Instance("", self.label))
            self.label_used = True


@dataclass(frozen=True, slots=True)
class _Markers:
    """The line patterns of an instance answer, in the wording of the prompt's templates."""

    label: re.Pattern[str]
    output: re.Pattern[str]
    input: re.Pattern[str]
    task: re.Pattern[str]
    example: re.Pattern[str]
    inline: re.Pattern[str]  # Input:, Output: or Class label: in the middle of a line
    # The spellings ``inline`` looks for (it matches with case): a value holding none of
    # them is not searched, which most values are.
    inline_names: tuple[str, ...]
    # example, task, label, input and output as one alternation, tried in that order: one
    # match call per line instead of five. ``kinds`` maps the group that closed last (an
    # alternative's own outer group) to its marker kind and first inner group.
    any_label: re.Pattern[str]
    kinds: dict[int, tuple[str, int]]
    # The class label's names alone, case folded as ``label`` folds them: a text where this
    # finds nothing has no line that ``label`` matches, and need not be scanned line by line.
    label_names: re.Pattern[str]

    @classmethod
    def of(cls, templates: PromptTemplates) -> _Markers:
        return _markers_of(templates)

    def opens_with_label(self, text: str) -> bool:
        return self.any_label.match(text) is not None


@functools.lru_cache(maxsize=16)
def _markers_of(templates: PromptTemplates) -> _Markers:
    """The markers of ``templates``, built once: every answer of a run uses the same ones."""
    outputs = (templates.output_label, "output")
    inputs = (templates.input_label, "input")
    labels = (templates.class_label, "class label", "label")
    spellings = _label_spellings(*inputs, *outputs, templates.class_label, "class label")
    named = {
        "example": _example_regex(templates.example_label),
        "task": _label_regex((templates.task_label, "task")),
        "label": _label_regex(labels),
        "input": _label_regex(inputs),
        "output": _label_regex(outputs),
    }
    parts: list[str] = []
    kinds: dict[int, tuple[str, int]] = {}
    group = 1
    for kind, pattern in named.items():
        assert pattern.flags == re.IGNORECASE | re.UNICODE
        parts.append(f"({pattern.pattern})")
        kinds[group] = (kind, group + 1)
        group += 1 + pattern.groups
    return _Markers(
        label=named["label"],
        output=named["output"],
        input=named["input"],
        task=named["task"],
        example=named["example"],
        inline=_inline_regex(spellings),
        inline_names=spellings,
        any_label=re.compile("|".join(parts), re.IGNORECASE),
        kinds=kinds,
        label_names=re.compile("|".join(re.escape(n) for n in labels), re.IGNORECASE),
    )


def parse_instances(
    text: str,
    is_classification: bool,
    finish_reason: str | None,
    max_instances: int = 5,
    *,
    templates: PromptTemplates = DEFAULT_TEMPLATES,
) -> list[Instance]:
    """The instances in an answer to an instance prompt, at most ``max_instances``.

    Input-first answers give ``Input:``/``Output:`` pairs (an ``Output:`` without an input
    has input ``""``); output-first answers give a ``Class label:`` line followed by the
    inputs that carry it, and a label with no inputs is an instance without input. An input
    may be written under its own field name (``Sentence: ...``, ``Dialogue:`` and lines
    under it, several fields such as ``Sentence 1:``/``Sentence 2:``); the names are kept
    in the input, as the original keeps them. A classification answer written input-first
    anyway is read input-first. No field ever holds a line opening with a marker
    (``Input:``, ``Output:``, ``Class label:``, ``Example n``, ``Task:``) outside a code
    fence: such a line ends the field. Markers such as ``<none>`` become ``""``; a fence
    around a whole field is removed, keeping the code in it verbatim. With
    ``finish_reason == "length"`` an instance the text ends in is dropped.
    """
    if max_instances <= 0:
        return []
    lines = split_lines(text)
    markers = _Markers.of(templates)
    # Only a classification answer can be output-first: the lines are scanned for it alone.
    output_first = is_classification and (
        (markers.label_names.search(text) is not None and _any_line(markers.label, lines))
        or not _any_line(markers.output, lines)
    )
    reader = _Reader(output_first=output_first, max_instances=max_instances)
    ended_early = _read_fields(lines, reader, markers)
    complete = len(reader.instances)
    reader.close_field()
    if reader.output_first:
        reader.close_label()
    if (
        finish_reason == "length"
        and not ended_early
        and not reader.overflow
        and len(reader.instances) > complete
    ):
        reader.instances.pop()  # the text was cut off inside this one
    return reader.instances


def _any_line(pattern: re.Pattern[str], lines: list[str]) -> bool:
    match = pattern.match
    return any(match(line.strip()) for line in lines)


def _read_fields(lines: list[str], reader: _Reader, markers: _Markers) -> bool:
    """Feed an answer's lines to ``reader``; True if something other than its end stopped it."""
    in_fence = False
    blank_before = False
    for raw in lines:
        line = raw.rstrip()
        stripped = line.strip()
        # FENCE.match on a stripped line: its leading \s* has nothing left to match.
        fence = stripped.startswith(_FENCE_MARKS)
        if in_fence or fence:
            # Inside code nothing is a label: "Output:" may well be part of a program.
            if fence:
                in_fence = not in_fence
            if reader.current is not None:
                reader.current.lines.append(line)
            continue
        if not stripped:
            blank_before = True
            if reader.current is not None:
                reader.current.lines.append("")
            continue
        if reader.overflow or _read_line(line, reader, markers, blank_before):
            return True
        blank_before = False
    return False


def _read_line(line: str, reader: _Reader, markers: _Markers, blank_before: bool) -> bool:
    """Read one line, and what follows a marker on it; True when the answer ended there."""
    stripped = line.strip()
    while stripped:
        rest = ""
        match = markers.any_label.match(stripped)
        kind, group = markers.kinds[match.lastindex or 0] if match else ("", 0)
        if kind == "example":
            reader.start_example()
            rest = match.group(group) if match else ""
        elif kind == "task":
            if reader.instances or reader.current is not None or reader.label:
                return True  # the model went on to invent another task
        elif kind == "label":
            if reader.output_first:
                label, rest = _split_at(_value(match, group), markers)
                reader.start("label", label)
            else:
                reader.start("skip", "")  # not an output-first answer: read past it
        elif kind == "input":
            value, rest = _split_at(_value(match, group), markers)
            reader.start("input", value)
        elif kind == "output":
            # An output may say "Input:" mid-line; only a label opening it is cut off.
            value, rest = _split_at(_value(match, group), markers, inline=False)
            reader.start("output", value)
        elif blank_before and CLOSERS.match(strip_outer_markup(stripped)):
            return True
        elif blank_before and HEADING.match(stripped):
            reader.close_field()
        else:
            ended, rest = _read_text(line, reader, markers)
            if ended:
                return True
        line, blank_before = rest, False
        stripped = line.strip()
    return False


def _value(match: re.Match[str] | None, group: int) -> str:
    """A label's text: the second group of a :func:`_label_regex` alternative."""
    assert match is not None
    return match.group(group + 1)


def _read_text(line: str, reader: _Reader, markers: _Markers) -> tuple[bool, str]:
    """A line without a marker: part of the current field, or the start of an input.

    Returns whether the answer ended (a closing remark), and a part of the line still to be
    read (``Sentence: x  Output: y``).
    """
    stripped = line.strip()
    current = reader.current
    named = _field_line(stripped)
    if current is not None and current.kind == "label" and not any(current.lines):
        current.lines.append(stripped)  # "Class label:" with the label on the next line
        return False, ""
    if current is not None and current.kind == "input":
        if named is None or current.name is None or named[0].casefold() != current.name.casefold():
            current.lines.append(line)
            return False, ""
    elif current is not None and current.kind in ("output", "skip"):
        if named is None or _base_name(named[0]) not in reader.input_names:
            if current.kind == "output":
                current.lines.append(line)
            return False, ""
    elif current is None and not reader.after_example:
        # Before any marker only a named field opens an input: other text is a preamble.
        if named is None or PREAMBLE.match(stripped) or CLOSERS.match(stripped):
            return False, ""
    elif named is None and CLOSERS.match(strip_outer_markup(stripped)):
        return True, ""
    # A new input: after "Example n" or a class label, or a field name that began one before.
    text = named[1] if named else stripped
    value, rest = _split_at(text, markers)
    reader.start("input", value, named[0] if named else None)
    return False, rest


def _split_at(value: str, markers: _Markers, *, inline: bool = True) -> tuple[str, str]:
    """``value`` up to a label in it, and the rest from that label on.

    A field's text that opens with a label ("Output: Input: x") is no text at all: the
    label is read as the next line, so that no field starts with one.
    """
    value = value.strip()
    if markers.opens_with_label(value):
        return "", value
    match = markers.inline.search(value) if inline and _names_one(value, markers) else None
    if match is None:
        return value, ""
    return value[: match.start()].rstrip(" \t,;|"), value[match.start() :].strip()


def _names_one(value: str, markers: _Markers) -> bool:
    # A loop, not any() over a generator: twice as fast, and it runs for most fields.
    for name in markers.inline_names:  # noqa: SIM110
        if name in value:
            return True
    return False


_INPUT_EMPTY = frozenset(
    {
        "",
        "none",
        "n/a",
        "na",
        "nil",
        "null",
        "no input",
        "noinput",
        "not applicable",
        "empty",
        "-",
        "\u2014",
        "\u2013",
    }
)
_OUTPUT_EMPTY = frozenset({"", "none", "no input", "noinput", "empty", "no output", "nothing"})


def _clean(lines: list[str], *, output: bool) -> str:
    """Trim a field, unwrap a fence around all of it, and turn empty markers into ""."""
    if len(lines) == 1:  # most fields are one line: no blank edges, no fence around it
        return _empty_marker(lines[0].strip(), output=output)
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    body = lines[start:end]
    if (
        len(body) >= 2
        and FENCE.match(body[0].strip())
        and body[-1].strip() in ("```", "~~~")
        and not any(FENCE.match(x.strip()) for x in body[1:-1])
    ):
        return "\n".join(body[1:-1]).strip("\n")
    return _empty_marker("\n".join(body).strip(), output=output)


def _empty_marker(value: str, *, output: bool) -> str:
    """``value``, or "" when it only says that there is nothing (``<none>``, ``N/A``)."""
    key = value.strip("<>()[]*_`'\". ").casefold()
    if output:
        # "None" can be a real answer; only a marker such as "<none>" means empty.
        bracketed = value[:1] in "<([" and value[-1:] in ">)]"
        return "" if bracketed and key in _OUTPUT_EMPTY else value
    return "" if key in _INPUT_EMPTY else value
