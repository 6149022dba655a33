"""Tolerant readers for the answers to the prompts built in :mod:`selfinstruct_async.prompts`.

Completion models continue the prompt; chat models answer it, with the habits that come
with that: a friendly preamble, markdown numbering and bold labels, renumbering from 1,
code fences, a closing offer of more help. The parsers accept both, never raise on
garbage (they return what they could read, possibly nothing) and apply no content
filters: judging instructions and instances is the filter plugins' job.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from .prompts import DEFAULT_TEMPLATES, PromptTemplates, one_line
from .records import Instance

__all__ = ["OnTruncated", "parse_classification", "parse_instances", "parse_instructions"]

# What to do with an answer cut off by the token limit: drop all of it (the paper) or only
# its last, possibly cut, item (Alpaca).
OnTruncated = Literal["drop_response", "drop_last"]

_NEWLINES = re.compile(r"\r\n?")
_MARKUP = r"(?:\*\*|__|\*|_)?"
# "10. x", "10) x", "(10) x", "**10.** x", "### 10. x", "Task 10: x", "#10 - x".
_NUMBERED = re.compile(
    r"^(?:[#>]\s*)*(?:[-*+]\s+)?" + _MARKUP + r"\s*(?:(?:task|instruction|item)\s*#?\s*|#\s*)?"
    r"\(?(\d{1,3})\s*(?:[.):]|\s-)" + _MARKUP + r"(?:\s+|$|(?=(?-i:[A-Z])))(.*)$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^(?:>\s*)?[-*+\u2022]\s+(.*)$")
_HEADING = re.compile(r"^(?:#{1,6}\s|(?:-{3,}|\*{3,}|_{3,}|={3,})\s*$)")
_FENCE = re.compile(r"^\s*(?:```|~~~)")
_BOLD_TITLE = re.compile(r"^(?:\*\*|__)([^*_]{1,80}?)(?:\*\*|__)\s*[:\-\u2013\u2014]\s*(.+)$")
_INLINE_BOLD = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_LABEL_PREFIX = re.compile(r"^(?:instruction|task|new task)\s*:\s*", re.IGNORECASE)
_CLOSERS = re.compile(
    r"^(?:let me know|i hope|hope (?:this|these)|feel free|these tasks|these examples|"
    r"these instructions|would you like|if you(?:'d| would)? like|if you need|i can (?:also )?|"
    r"note:|enjoy|happy to|do you want|want me to)",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(
    r"^(?:(?:sure|certainly|of course|okay|ok|absolutely|great|alright)\b\s*[!,.]|"
    r"here(?:'s| is| are) (?:some|more|a few|another|additional|my|\d+\b|"
    r"the (?:rest|continuation|next|following))|"
    r"below (?:are|is)\b)",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "\u201c": "\u201d", "'": "'", "`": "`"}


def _lines(text: str) -> list[str]:
    return _NEWLINES.sub("\n", text).split("\n")


def _strip_outer_markup(text: str) -> str:
    """Drop emphasis or quotes wrapping the whole item, and chat-style bold titles."""
    text = text.strip()
    for _ in range(3):
        before = text
        match = _BOLD_TITLE.match(text)
        if match and len(match.group(1).split()) <= 6:
            text = match.group(2).strip()
        for mark in ("**", "__", "*", "_"):
            if len(text) > 2 * len(mark) and text.startswith(mark) and text.endswith(mark):
                inner = text[len(mark) : -len(mark)]
                if mark not in inner:
                    text = inner.strip()
        close = _QUOTES.get(text[:1])
        if close and len(text) > 2 and text.endswith(close) and close not in text[1:-1]:
            text = text[1:-1].strip()
        text = _LABEL_PREFIX.sub("", text)
        text = _INLINE_BOLD.sub(r"\1", text)
        if text == before:
            break
    return text


@dataclass(slots=True)
class _Item:
    number: int | None
    parts: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Listing:
    """An instruction answer split into its unnumbered opening and its list items."""

    lead: list[str] = field(default_factory=list)
    items: list[_Item] = field(default_factory=list)
    ended_early: bool = False  # a closing remark ended the list before the text did


def parse_instructions(
    text: str,
    first_number: int,
    finish_reason: str | None,
    max_number: int = 16,
    *,
    known: Sequence[str] = (),
    on_truncated: OnTruncated = "drop_response",
    capitalize: bool = False,
) -> list[str]:
    """The new instructions in an answer to an instruction prompt ending in ``first_number.``.

    Items numbered ``max_number`` or above are not read, nor more than
    ``max_number - first_number`` items in all. An answer cut off by the token limit
    (``finish_reason == "length"``) gives nothing with ``on_truncated="drop_response"`` (the
    paper's rule); with ``"drop_last"`` (Alpaca's) only its last item is dropped, unless
    another item followed it. Items equal to one of ``known`` (the demonstrations, which chat
    models sometimes repeat) are skipped. ``capitalize`` applies :meth:`str.capitalize`, as
    the original does, lower-casing the rest of each item.
    """
    if on_truncated not in ("drop_response", "drop_last"):
        raise ValueError(
            f"on_truncated must be 'drop_response' or 'drop_last', not {on_truncated!r}"
        )
    if max_number - first_number <= 0:
        return []
    if finish_reason == "length" and on_truncated == "drop_response":
        return []
    listing = _read_listing(text)
    _number_the_lead(listing, first_number)
    items = _new_instructions(listing, first_number, finish_reason, max_number, known)
    return [item.capitalize() for item in items] if capitalize else items


def _read_listing(text: str) -> _Listing:
    """Split an answer into items: numbered lines, bullets and the lines continuing them."""
    listing = _Listing()
    lead, items = listing.lead, listing.items
    blank_before = False
    for raw in _lines(text):
        line = raw.strip()
        if not line:
            blank_before = True
            continue
        numbered = _NUMBERED.match(line)
        bullet = None if numbered else _BULLET.match(line)
        if numbered:
            items.append(_Item(int(numbered.group(1)), [numbered.group(2)]))
        elif _FENCE.match(line) or _HEADING.match(line):
            blank_before = True
            continue
        elif bullet and not (items and items[0].number is not None):
            items.append(_Item(None, [bullet.group(1)]))
        elif (items or lead) and _CLOSERS.match(_strip_outer_markup(line)):
            listing.ended_early = True
            break
        elif items:
            # Sub-bullets and wrapped lines belong to the item above; a paragraph after a
            # blank line is commentary between items.
            if bullet or not blank_before:
                items[-1].parts.append(bullet.group(1) if bullet else line)
        elif not blank_before or not lead:
            lead.append(line)
        blank_before = False
    return listing


def _number_the_lead(listing: _Listing, first_number: int) -> None:
    """Make the unnumbered opening item ``first_number`` when it continues the prompt.

    A completion continues right after "N.", so its first item carries no number; a chat
    answer's unnumbered opening is a preamble instead.
    """
    lead, items = listing.lead, listing.items
    if not lead:
        return
    lead_text = " ".join(lead)
    stripped = _strip_outer_markup(lead_text).rstrip()
    if _PREAMBLE.match(stripped):
        return
    next_number = items[0].number if items else None
    if stripped.endswith(":"):
        # Instructions such as "Translate the sentence into French:" end in a colon too;
        # one is an item exactly when the list goes on with the number after it.
        is_item = next_number == first_number + 1 or not items
    else:
        is_item = next_number in (None, first_number + 1)  # None: bullets follow
    if is_item:
        items.insert(0, _Item(first_number, [lead_text]))


def _new_instructions(
    listing: _Listing,
    first_number: int,
    finish_reason: str | None,
    max_number: int,
    known: Sequence[str],
) -> list[str]:
    """The items' texts within the limits, minus repeated demonstrations and a cut-off tail."""
    items = listing.items
    limit = max_number - first_number
    renumbered = bool(items) and items[0].number is not None and items[0].number < first_number
    known_keys = {one_line(k).rstrip(":").casefold() for k in known}
    result: list[str] = []
    followed = listing.ended_early
    tail_kept = False  # whether the last item read made it into the result
    expected = first_number
    for item in items:
        if len(result) >= limit:
            followed = True
            break
        number = item.number if item.number is not None else expected
        if not renumbered and number >= max_number:
            followed = True
            break
        expected = number + 1
        instruction = one_line(_strip_outer_markup(one_line(" ".join(item.parts))))
        tail_kept = bool(instruction.strip("*_`~#> ")) and (
            instruction.rstrip(":").casefold() not in known_keys
        )
        if tail_kept:
            result.append(instruction)
    if finish_reason == "length" and tail_kept and not followed:
        result.pop()
    return result


_YES_NO_START = re.compile(r"^(yes|no)\b", re.IGNORECASE)
_ANSWER_LABEL = re.compile(
    r"^(?:(?:final\s+)?answer|a|output|label|classification|response|result)\s*[:\-]\s*",
    re.IGNORECASE,
)
_ANSWER_IS = re.compile(
    r"\banswer\s*(?:is|would be|:)\s*[:\-]?\s*[*_\"'`]*\s*(yes|no)\b", re.IGNORECASE
)
_WORD_YES = re.compile(r"\byes\b", re.IGNORECASE)
_WORD_NO = re.compile(r"\bno\b", re.IGNORECASE)
_DECORATION = re.compile(r"[*_`#>\"'\u201c\u201d\u2018\u2019\[\]()]+")


def parse_classification(text: str) -> bool | None:
    """``True`` for a Yes, ``False`` for a No, ``None`` when the answer says neither.

    Reads the first line that has words on it ("Yes", "**No**", "Answer: yes."), then an
    explicit "the answer is ..." anywhere, then a lone yes or no in the text.
    """
    text = text[:20000]
    for raw in _lines(text):
        line = _DECORATION.sub(" ", raw).strip()
        if not line:
            continue
        line = _ANSWER_LABEL.sub("", line).strip()
        start = _YES_NO_START.match(line)
        if start:
            return start.group(1).lower() == "yes"
        break
    answers = _ANSWER_IS.findall(_DECORATION.sub(" ", text))
    if answers:
        return bool(answers[-1].lower() == "yes")
    has_yes = _WORD_YES.search(text) is not None
    has_no = _WORD_NO.search(text) is not None
    if has_yes != has_no:
        return has_yes
    return None


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
            self.label = one_line(_strip_outer_markup(one_line(" ".join(current.lines))))
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

    @classmethod
    def of(cls, templates: PromptTemplates) -> _Markers:
        outputs = (templates.output_label, "output")
        inputs = (templates.input_label, "input")
        return cls(
            label=_label_regex((templates.class_label, "class label", "label")),
            output=_label_regex(outputs),
            input=_label_regex(inputs),
            task=_label_regex((templates.task_label, "task")),
            example=_example_regex(templates.example_label),
            inline=_inline_regex(
                _label_spellings(*inputs, *outputs, templates.class_label, "class label")
            ),
        )

    def opens_with_label(self, text: str) -> bool:
        return any(
            pattern.match(text)
            for pattern in (self.example, self.task, self.label, self.input, self.output)
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
    lines = _lines(text)
    markers = _Markers.of(templates)
    has_labels = any(markers.label.match(line.strip()) for line in lines)
    has_outputs = any(markers.output.match(line.strip()) for line in lines)
    reader = _Reader(
        output_first=is_classification and (has_labels or not has_outputs),
        max_instances=max_instances,
    )
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


def _read_fields(lines: list[str], reader: _Reader, markers: _Markers) -> bool:
    """Feed an answer's lines to ``reader``; True if something other than its end stopped it."""
    in_fence = False
    blank_before = False
    for raw in lines:
        line = raw.rstrip()
        stripped = line.strip()
        if in_fence or _FENCE.match(stripped):
            # Inside code nothing is a label: "Output:" may well be part of a program.
            if _FENCE.match(stripped):
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
    while line.strip():
        stripped = line.strip()
        rest = ""
        if match := markers.example.match(stripped):
            reader.start_example()
            rest = match.group(1)
        elif markers.task.match(stripped):
            if reader.instances or reader.current is not None or reader.label:
                return True  # the model went on to invent another task
        elif match := markers.label.match(stripped):
            if reader.output_first:
                label, rest = _split_at(match.group(2), markers)
                reader.start("label", label)
            else:
                reader.start("skip", "")  # not an output-first answer: read past it
        elif match := markers.input.match(stripped):
            value, rest = _split_at(match.group(2), markers)
            reader.start("input", value)
        elif match := markers.output.match(stripped):
            # An output may say "Input:" mid-line; only a label opening it is cut off.
            value, rest = _split_at(match.group(2), markers, inline=False)
            reader.start("output", value)
        elif blank_before and _CLOSERS.match(_strip_outer_markup(stripped)):
            return True
        elif blank_before and _HEADING.match(stripped):
            reader.close_field()
        else:
            ended, rest = _read_text(line, reader, markers)
            if ended:
                return True
        line, blank_before = rest, False
    return False


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
        if named is None or _PREAMBLE.match(stripped) or _CLOSERS.match(stripped):
            return False, ""
    elif named is None and _CLOSERS.match(_strip_outer_markup(stripped)):
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
    match = markers.inline.search(value) if inline else None
    if match is None:
        return value, ""
    return value[: match.start()].rstrip(" \t,;|"), value[match.start() :].strip()


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
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    body = lines[start:end]
    if (
        len(body) >= 2
        and _FENCE.match(body[0].strip())
        and body[-1].strip() in ("```", "~~~")
        and not any(_FENCE.match(x.strip()) for x in body[1:-1])
    ):
        return "\n".join(body[1:-1]).strip("\n")
    value = "\n".join(body).strip()
    key = value.strip("<>()[]*_`'\". ").casefold()
    if output:
        # "None" can be a real answer; only a marker such as "<none>" means empty.
        bracketed = value[:1] in "<([" and value[-1:] in ">)]"
        return "" if bracketed and key in _OUTPUT_EMPTY else value
    return "" if key in _INPUT_EMPTY else value
