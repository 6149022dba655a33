"""Tolerant readers for the answers to the prompts built in :mod:`selfinstruct_async.prompts`.

Completion models continue the prompt; chat models answer it, with the habits that come
with that: a friendly preamble, markdown numbering and bold labels, renumbering from 1,
code fences, a closing offer of more help. The parsers accept both, never raise on
garbage (they return what they could read, possibly nothing) and apply no content
filters: judging instructions and instances is the filter plugins' job.

One module a prompt: :mod:`.instructions`, :mod:`.classification`, :mod:`.instances`;
:mod:`.markup` holds the chat-style markup they all see through.
"""

from __future__ import annotations

from .classification import parse_classification
from .instances import parse_instances
from .instructions import OnTruncated, parse_instructions

__all__ = ["OnTruncated", "parse_classification", "parse_instances", "parse_instructions"]
