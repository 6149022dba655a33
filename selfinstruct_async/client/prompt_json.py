"""JSON text of requests whose prompts share a long prefix, without escaping it every time.

Nearly every classification prompt of a run is the same ~5 KB of demonstrations followed
by one task, and instance prompts share their demonstrations too. Every request is
serialised twice (its ledger key and its HTTP body), and escaping those kilobytes of
prompt was the largest part of both. :class:`PromptEncoder` learns the prefixes that
prompts share (the common part of a prompt and one of the last few, cut after a newline,
when at least ``min_prefix`` characters long), keeps each one's escaped form, and escapes
only the rest of a prompt that starts with one.

The text is the same, byte for byte, as ``json.dumps`` gives: JSON escapes a string one
code point at a time, so the escaped prefix followed by the escaped rest is the escaped
whole. :func:`dumps` serialises the object with a placeholder where the prompt is and puts
the prompt's JSON in its place, falling back to plain ``json.dumps`` if the placeholder
is not found exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

__all__ = ["MARKER", "PLACEHOLDER", "PromptEncoder", "dumps"]

# No prompt field holds it: two NULs around a name (escaped "\u0000...\u0000" in JSON).
PLACEHOLDER = "\x00selfinstruct-prompt\x00"
MARKER = json.dumps(PLACEHOLDER)  # the same with or without ensure_ascii
_RECENT = 4  # prompts a new one is compared with (about one per stage)


class PromptEncoder:
    """The JSON string literal of prompts, with learnt prefixes escaped once."""

    def __init__(self, *, ensure_ascii: bool, min_prefix: int = 512, keep: int = 8) -> None:
        self.ensure_ascii = ensure_ascii
        self._encode: Callable[[str], str] = (
            encode_basestring_ascii if ensure_ascii else encode_basestring
        )
        self._min_prefix = min_prefix
        self._keep = keep
        self._known: list[tuple[str, str]] = []  # (prefix, its escaped text without quotes)
        self._opened: dict[str, str] = {}  # escaped prefix -> '"' + it, made once
        # The last prompts, each with its first ``min_prefix`` characters: stages take turns,
        # so the prompt sharing a prefix with this one is seldom the one just before it.
        self._recent: list[tuple[str, str]] = []

    def __call__(self, text: str) -> str:
        """``json.dumps(text, ensure_ascii=...)``."""
        found = self.known(text)
        return self._encode(text) if found is None else found

    def split(self, text: str) -> tuple[str, str]:
        """``json.dumps(text, ...)`` in two parts: the learnt prefix's escaped text after the
        opening quote (``'"'`` alone when none applies; the same object for every prompt
        with that prefix), and the rest (``text`` is learnt from when no prefix applies)."""
        for prefix, escaped in self._known:
            if text.startswith(prefix):
                return self._opened[escaped], self._encode(text[len(prefix) :])[1:]
        self._learn(text)
        return '"', self._encode(text)[1:]

    def known(self, text: str) -> str | None:
        """``json.dumps(text, ...)`` when ``text`` starts with a learnt prefix, else None
        (and ``text`` is learnt from)."""
        for prefix, escaped in self._known:
            if text.startswith(prefix):
                return '"' + escaped + self._encode(text[len(prefix) :])[1:]
        self._learn(text)
        return None

    def _learn(self, text: str) -> None:
        least = self._min_prefix
        if len(text) < least:
            return
        head = text[:least]
        for other_head, other in self._recent:
            if other_head == head:  # the usual miss is told by this one comparison
                same = _common_length(text, other)
                cut = text.rfind("\n", 0, same) + 1  # after a newline: where a task starts
                if cut >= least:
                    prefix = text[:cut]
                    escaped = self._encode(prefix)[1:-1]
                    self._known.insert(0, (prefix, escaped))
                    del self._known[self._keep :]
                    self._opened = {e: self._opened.get(e) or '"' + e for _, e in self._known}
                break
        self._recent.insert(0, (head, text))
        del self._recent[_RECENT:]


def _common_length(a: str, b: str) -> int:
    """The length of the longest common prefix of ``a`` and ``b`` (binary search)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a.startswith(b[:mid]):
            low = mid
        else:
            high = mid - 1
    return low


def dumps(obj: Any, prompt: str, encoder: PromptEncoder, **kwargs: Any) -> str:
    """``json.dumps(obj, **kwargs)`` where ``obj`` holds ``prompt`` at one place.

    ``obj`` must be a list or dict whose one member is the prompt itself (the same
    object), directly or as the ``content`` of a chat message in ``obj["messages"]``;
    ``kwargs`` must give the encoder's ``ensure_ascii``.
    """
    escaped = encoder.known(prompt)
    placed = None if escaped is None else _with_placeholder(obj, prompt)
    if escaped is None or placed is None:
        return json.dumps(obj, **kwargs)
    text = json.dumps(placed, **kwargs)
    if text.count(MARKER) != 1:
        return json.dumps(obj, **kwargs)
    return text.replace(MARKER, escaped)


def _with_placeholder(obj: Any, prompt: str) -> Any:
    """A shallow copy of ``obj`` with the placeholder where ``prompt`` is, or None."""
    if isinstance(obj, list):
        for i, value in enumerate(obj):
            inner = _with_placeholder(value, prompt) if isinstance(value, dict) else None
            if value is prompt or inner is not None:
                copy = list(obj)
                copy[i] = PLACEHOLDER if value is prompt else inner
                return copy
        return None
    if not isinstance(obj, dict):
        return None
    if obj.get("prompt") is prompt:
        return obj | {"prompt": PLACEHOLDER}
    messages = obj.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if isinstance(message, dict) and message.get("content") is prompt:
                copy = list(messages)
                copy[i] = message | {"content": PLACEHOLDER}
                return obj | {"messages": copy}
    return None
