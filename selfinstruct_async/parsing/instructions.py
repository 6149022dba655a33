"""Reading the numbered list of new instructions a model writes after an instruction prompt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..prompts import one_line
from .markup import (
    BULLET,
    CLOSERS,
    FENCE,
    HEADING,
    NUMBERED,
    PREAMBLE,
    split_lines,
    strip_outer_markup,
)

# What to do with an answer cut off by the token limit: drop all of it (the paper) or only
# its last, possibly cut, item (Alpaca).
OnTruncated = Literal["drop_response", "drop_last"]


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
    for raw in split_lines(text):
        line = raw.strip()
        if not line:
            blank_before = True
            continue
        numbered = NUMBERED.match(line)
        bullet = None if numbered else BULLET.match(line)
        if numbered:
            items.append(_Item(int(numbered.group(1)), [numbered.group(2)]))
        elif FENCE.match(line) or HEADING.match(line):
            blank_before = True
            continue
        elif bullet and not (items and items[0].number is not None):
            items.append(_Item(None, [bullet.group(1)]))
        elif (items or lead) and CLOSERS.match(strip_outer_markup(line)):
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
    stripped = strip_outer_markup(lead_text).rstrip()
    if PREAMBLE.match(stripped):
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
        instruction = one_line(strip_outer_markup(one_line(" ".join(item.parts))))
        tail_kept = bool(instruction.strip("*_`~#> ")) and (
            instruction.rstrip(":").casefold() not in known_keys
        )
        if tail_kept:
            result.append(instruction)
    if finish_reason == "length" and tail_kept and not followed:
        result.pop()
    return result
