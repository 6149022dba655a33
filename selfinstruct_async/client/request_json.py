"""JSON text of requests, built around the prompt: the ledger key's text and the HTTP body.

Every request is serialised twice (its ledger key, its HTTP body), and apart from the
prompt the two texts are the same for every request of a stage: the same sampling
fields, stops, model and namespace. :class:`Frames` keeps, per such *shape*, the JSON text
before and after the prompt (its frame), so a request costs the prompt's escaping
(:class:`~.prompt_json.PromptEncoder`, which escapes a shared prefix once) and two string
joins instead of a ``json.dumps`` of the whole object.

The text is the same, byte for byte, as ``json.dumps`` of the object gives. JSON writes an
object's members one after another, so the text of an object with a placeholder where the
prompt is, cut at the placeholder, is the text before and after the prompt's. Two requests
share a frame only when their :func:`shape` is equal, and equal shapes serialise alike:
the shape holds every field but the prompt with its type (``1``, ``1.0`` and ``True`` are
equal in Python and differ in JSON), the types inside the stop tuples, and the sign of
each sampling number (``0.0 == -0.0``, written ``0.0`` and ``-0.0``). A request whose shape
cannot be taken (a field of an unexpected kind) is serialised the plain way.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Callable, Hashable
from typing import Any

from . import prompt_json
from .protocol import CompletionRequest

__all__ = ["Frames", "shape"]

_OTHER_FIELDS = tuple(name for name in CompletionRequest.__slots__ if name != "prompt")
_others = operator.attrgetter(*_OTHER_FIELDS)
_UNFRAMED = ("", "")  # a frame that cannot be cut: this shape is serialised the plain way


def shape(request: CompletionRequest) -> Hashable | None:
    """What, besides the prompt, decides the JSON text of ``request``; ``None`` if unknown."""
    values = _others(request)
    try:
        signs = (
            math.copysign(1.0, request.temperature),
            math.copysign(1.0, request.top_p),
            math.copysign(1.0, request.presence_penalty),
            math.copysign(1.0, request.frequency_penalty),
        )
        stop_types = tuple(map(type, request.stop))
        chat_stop_types = tuple(map(type, request.chat_stop or ()))
    except (TypeError, ValueError, OverflowError):  # not a number, or not a float's size
        return None
    return values, tuple(map(type, values)), signs, stop_types, chat_stop_types


class Frames:
    """JSON texts of objects that differ only in their prompt, from a cache of frames.

    ``kwargs`` are ``json.dumps``'s, and must give the encoder's ``ensure_ascii``. At most
    ``keep`` frames are kept (a run has a handful of shapes; the bound is for callers
    that make a new one per request).
    """

    def __init__(
        self, encoder: prompt_json.PromptEncoder, *, keep: int = 256, **kwargs: Any
    ) -> None:
        if kwargs.get("ensure_ascii", True) != encoder.ensure_ascii:
            raise ValueError("the encoder's ensure_ascii must be json.dumps's")
        self.encoder = encoder
        self._kwargs = kwargs
        self._keep = keep
        self._frames: dict[Hashable, tuple[str, str]] = {}
        # (frame key, escaped prompt prefix) -> the hash of the text up to the prefix's end
        self._states: dict[tuple[Hashable, str], Any] = {}

    def dumps(self, key: Hashable | None, build: Callable[[str], Any], prompt: str) -> str:
        """``json.dumps(build(prompt), **kwargs)``.

        ``build(text)`` is the object with ``text`` where the prompt goes, and nothing else
        of it depends on the prompt; equal ``key`` means equal objects around the prompt.
        ``key=None``: no frame, the plain way.
        """
        frame = self._frame(key, build)
        if frame is None:
            return prompt_json.dumps(build(prompt), prompt, self.encoder, **self._kwargs)
        return frame[0] + self.encoder(prompt) + frame[1]

    def sha256(self, key: Hashable | None, build: Callable[[str], Any], prompt: str) -> str:
        """The SHA-256 hex digest of :meth:`dumps`'s text in UTF-8.

        The hash of the text up to the end of a learnt prompt prefix is kept per frame and
        prefix, so a request hashes only the rest of its prompt and the frame's tail.
        """
        frame = self._frame(key, build)
        if frame is None:
            text = prompt_json.dumps(build(prompt), prompt, self.encoder, **self._kwargs)
            return hashlib.sha256(text.encode("utf-8")).hexdigest()
        opened, rest = self.encoder.split(prompt)
        try:
            state = self._states.get((key, opened))
        except TypeError:
            state = None
        if state is None:
            state = hashlib.sha256((frame[0] + opened).encode("utf-8"))
            if len(self._states) >= self._keep:
                self._states.clear()
            self._states[key, opened] = state
        digest = state.copy()
        digest.update((rest + frame[1]).encode("utf-8"))
        return digest.hexdigest()

    def _frame(self, key: Hashable | None, build: Callable[[str], Any]) -> tuple[str, str] | None:
        """The frame for ``key`` (cut now if new), or None: serialise the plain way."""
        try:
            frame = None if key is None else self._frames.get(key)
        except TypeError:  # unhashable: a list where a tuple belongs, say
            return None
        if key is None:
            return None
        if frame is None:
            frame = self._cut(build(prompt_json.PLACEHOLDER))
            if len(self._frames) >= self._keep:
                self._frames.clear()
                self._states.clear()
            self._frames[key] = frame
        return None if frame is _UNFRAMED else frame

    def _cut(self, placed: Any) -> tuple[str, str]:
        # Built around the placeholder, not found by identity: another field may be the
        # very same string object as a prompt ("" is), and a frame serves other prompts.
        parts = json.dumps(placed, **self._kwargs).split(prompt_json.MARKER)
        if len(parts) != 2:
            return _UNFRAMED  # the placeholder's text elsewhere too: never a wrong cut
        return parts[0], parts[1]
