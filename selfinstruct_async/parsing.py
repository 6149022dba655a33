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

from .prompts import DEFAULT_TEMPLATES, PromptTemplates, one_line
from .records import Instance

__all__ = ["parse_classification", "parse_instances", "parse_instructions"]

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
    r"here(?:'s| is| are) (?:some|more|a few|another|additional|the (?:rest|continuation|next))|"
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
) -> list[str]:
    """The new instructions in an answer to an instruction prompt ending in ``first_number.``.

    Items numbered ``max_number`` or above are not read, nor more than
    ``max_number - first_number`` items in all. With ``finish_reason == "length"`` the last
    item is dropped unless another item followed it, since it may be cut off. Items equal to
    one of ``known`` (the demonstrations, which chat models sometimes repeat) are skipped.
    """
    if max_number - first_number <= 0:
        return []
    listing = _read_listing(text)
    _number_the_lead(listing, first_number)
    return _new_instructions(listing, first_number, finish_reason, max_number, known)


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
    lead_text = " ".join(lead)
    if lead and not _looks_like_preamble(lead_text):
        next_number = items[0].number if items else None
        if next_number is None and items:
            next_number = first_number + 1  # bullets after a bare first line
        if next_number in (None, first_number + 1):
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


def _looks_like_preamble(text: str) -> bool:
    stripped = _strip_outer_markup(text).rstrip()
    return stripped.endswith(":") or bool(_PREAMBLE.match(stripped))


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
        r"^(?:[#>]\s*)*(?:[-*+]\s+|\d{1,2}[.)]\s+)?(?:\*\*|__)?\s*(" + alternatives + r")"
        r"(?:\s*\d{1,3})?\s*(?:\*\*|__)?\s*[:\uff1a]\s*(?:\*\*|__)?[ \t]*(.*)$",
        re.IGNORECASE,
    )


@functools.lru_cache(maxsize=16)
def _example_regex(name: str) -> re.Pattern[str]:
    return re.compile(
        r"^(?:[#>]\s*)*(?:\*\*|__)?\s*(?:" + re.escape(name) + r"|example|instance)"
        r"\s*#?\s*\d{1,3}\s*[:.)]?\s*(?:\*\*|__)?\s*[:.]?\s*$",
        re.IGNORECASE,
    )


@dataclass(slots=True)
class _Field:
    kind: str  # "input", "output" or "label"
    lines: list[str]


@dataclass(slots=True)
class _Reader:
    """What :func:`parse_instances` has read so far, and the field it is reading."""

    output_first: bool
    max_instances: int
    instances: list[Instance] = field(default_factory=list)
    current: _Field | None = None
    pending_input: str | None = None  # input-first: an input still waiting for its output
    label: str | None = None  # output-first: the class label of the inputs that follow
    label_used: bool = False
    overflow: bool = False  # an instance came after the last one we keep

    def add(self, instance: Instance) -> None:
        if len(self.instances) >= self.max_instances:
            self.overflow = True
        else:
            self.instances.append(instance)

    def start(self, kind: str, first_line: str) -> None:
        self.close_field()
        if kind == "input" and not self.output_first:
            self.pending_input = None  # an input without an output is dropped
        self.current = _Field(kind, [first_line] if first_line.strip() else [])

    def start_example(self) -> None:
        self.close_field()
        self.pending_input = None

    def close_field(self) -> None:
        current, self.current = self.current, None
        if current is None:
            return
        if current.kind == "input":
            value = _clean(current.lines, output=False)
            if self.output_first:
                self.add(Instance(value, self.label or ""))
                self.label_used = True
            else:
                self.pending_input = value
        elif current.kind == "output":
            self.add(Instance(self.pending_input or "", _clean(current.lines, output=True)))
            self.pending_input = None
        else:
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

    @classmethod
    def of(cls, templates: PromptTemplates) -> _Markers:
        return cls(
            label=_label_regex((templates.class_label, "class label", "label")),
            output=_label_regex((templates.output_label, "output")),
            input=_label_regex((templates.input_label, "input")),
            task=_label_regex((templates.task_label, "task")),
            example=_example_regex(templates.example_label),
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
    line has input ``""``); output-first answers give a ``Class label:`` followed by the
    inputs that carry it, and a label with no inputs is an instance without input. A
    classification answer written input-first anyway is read input-first. Markers such as
    ``<none>`` become ``""``; a fence around a whole field is removed, keeping the code in
    it verbatim. With ``finish_reason == "length"`` an instance the text ends in is dropped.
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
        if reader.overflow:
            return True
        if markers.example.match(stripped):
            reader.start_example()
        elif markers.task.match(stripped):
            if reader.instances or reader.current is not None or reader.label:
                return True  # the model went on to invent another task
        elif reader.output_first and (match := markers.label.match(stripped)):
            reader.start("label", match.group(2))
        elif match := markers.input.match(stripped):
            reader.start("input", match.group(2))
        elif not reader.output_first and (match := markers.output.match(stripped)):
            reader.start("output", match.group(2))
        elif blank_before and _CLOSERS.match(_strip_outer_markup(stripped)):
            return True
        elif blank_before and _HEADING.match(stripped):
            reader.close_field()
        elif reader.current is not None:
            reader.current.lines.append(line)
        blank_before = False
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
