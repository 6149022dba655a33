"""Answer readers that behave like the original Self-Instruct code, for ``parser = "paper"``.

They reproduce its rules (learned from its behaviour, written anew here) so a run can
make the paper's dataset: an instruction answer is cut on ``"\\n<number>. "``, and a
response stopped by the token limit is dropped whole; an input-first instance answer is
cut on ``Example <n>`` and read as the text before and after ``Output:``; an output-first
answer is cut on ``Class label:``, the first line of each piece being the label and the
rest, whatever field names it holds, the input. Nothing here copes with chat habits
(preambles, markdown, renumbering): :mod:`selfinstruct_async.parsing` does.

Two adaptations to this project's prompts, which change nothing on the original's answers:
the prompts write ``Input: <none>`` for a task without input (the original wrote no input
line), so the empty-input marker reads as ``""``; and the output-first prompt writes each
input of a label on its own ``Input:`` line (the original showed one input per label, under
its field name), so there each ``Input:`` line starts an input of the label, without the
``Input:``. Labels come from the prompt templates, so a reworded template is still read.
"""

from __future__ import annotations

import re

from .parsing import OnTruncated
from .prompts import DEFAULT_TEMPLATES, PromptTemplates, one_line
from .records import Instance

__all__ = ["parse_instances_paper", "parse_instructions_paper"]

_ITEM_SEPARATOR = re.compile(r"\n\d+\s?\. ")


def parse_instructions_paper(
    text: str,
    finish_reason: str | None,
    *,
    on_truncated: OnTruncated = "drop_response",
    capitalize: bool = True,
) -> list[str]:
    """The instructions in an answer, split on ``"\\n<number>. "`` as the original does.

    The answer continues a prompt ending in ``"N."``, so the text before the first
    separator is the first instruction. Each item has its whitespace collapsed and, with
    ``capitalize`` (the original's), :meth:`str.capitalize` applied; empty items are
    skipped. No item limit: the prompt's stop sequences end the list. A response stopped
    by the token limit gives nothing (``"drop_response"``) or loses its last item
    (``"drop_last"``).
    """
    if finish_reason == "length" and on_truncated == "drop_response":
        return []
    items = []
    for piece in _ITEM_SEPARATOR.split(text):
        item = one_line(piece)
        if capitalize:
            item = item.capitalize()
        if item:
            items.append(item)
    if finish_reason == "length" and items:
        items.pop()
    return items


def parse_instances_paper(
    text: str,
    is_classification: bool,
    finish_reason: str | None,
    *,
    templates: PromptTemplates = DEFAULT_TEMPLATES,
) -> list[Instance]:
    """The instances in an answer, read as the original reads them; no limit on their number.

    With ``finish_reason == "length"`` the last instance is dropped.
    """
    if is_classification:
        instances = _output_first(text, templates)
    else:
        instances = _input_first(text, templates)
    if finish_reason == "length":
        instances = instances[:-1]
    return instances


def _input_first(text: str, templates: PromptTemplates) -> list[Instance]:
    text = text.strip()
    example = re.compile(re.escape(templates.example_label) + r"\s?\d*\.?")
    # Possessive: the original's matches, without its quadratic time on runs of spaces.
    output = re.compile(re.escape(templates.output_label) + r"\s*+\d*+\s*+:")
    if example.search(text):
        pieces = [piece.strip() for piece in example.split(text)]
        pieces = [piece for piece in pieces if piece]
    elif output.search(text):
        pieces = [text]  # one pair
    else:
        return []
    return [_pair(piece, output, templates) for piece in pieces]


def _pair(piece: str, output: re.Pattern[str], templates: PromptTemplates) -> Instance:
    """Input before the first ``Output:``, output up to the next ``Output:`` or ``Input:``."""
    input_label = re.compile(re.escape(templates.input_label) + r"\s*+\d*+\s*+:")
    parts = output.split(piece)
    if len(parts) > 1:
        given, answer = parts[0].strip(), parts[1].strip()
    else:
        given, answer = "", piece.strip()
    answer = input_label.split(answer)[0].strip()
    given = _strip_leading(input_label, given)
    return Instance(_empty_marker(given, templates), answer)


def _output_first(text: str, templates: PromptTemplates) -> list[Instance]:
    marker = f"{templates.class_label}:"
    if marker not in text:
        return []
    input_line = re.compile(r"^[ \t]*" + re.escape(templates.input_label) + r"\s*+\d*+\s*+:", re.M)
    instances = []
    for piece in text.split(marker)[1:]:
        label, _, rest = piece.strip().partition("\n")
        # The original's prompt wrote one input per label, under its field name; this
        # project's writes each input of a label on an "Input:" line.
        inputs = [given.strip() for given in input_line.split(rest.strip())]
        for given in [given for given in inputs if given] or [""]:
            instances.append(Instance(_empty_marker(given, templates), label.strip()))
    return instances


def _strip_leading(label: re.Pattern[str], text: str) -> str:
    match = label.match(text)
    return text[match.end() :].strip() if match else text.strip()


def _empty_marker(given: str, templates: PromptTemplates) -> str:
    return "" if given == templates.empty_input else given
