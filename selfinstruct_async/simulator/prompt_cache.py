"""The simulated provider's prompt cache: how many prompt tokens an answer reports as cached.

Hosted providers cache prompt prefixes on their own and bill the cached part at a lower
price; OpenAI reports it as ``usage.prompt_tokens_details.cached_tokens``. Its rules, which
this module follows:

- only a prompt of at least :data:`MIN_PREFIX` (1,024) tokens can hit the cache;
- the cached part is the longest prefix already seen in an earlier request, counted in
  steps of :data:`STEP` (128) tokens from 1,024 on (1,024, 1,152, 1,280, ...);
- a prefix is forgotten some minutes after its last use (``ttl``; providers say 5 to 10
  minutes of inactivity).

A request's prefixes are remembered once it is answered, so requests sent at the same
moment all miss, as they do at a provider. Each remembered prefix is one hash of its
tokens; the cache holds at most ``max_entries`` of them and forgets the least recently used
first, so a long run's memory stays bounded whatever its prompts. The clock is passed in,
so tests decide what time it is instead of waiting.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Callable

MIN_PREFIX = 1024
STEP = 128
DEFAULT_TTL = 600.0  # seconds after the last use
DEFAULT_MAX_ENTRIES = 100_000  # prefix hashes, about 100 bytes each


@functools.cache
def _encoder() -> Callable[[str], list[int]]:
    """Token ids with the tokenizer the simulator counts with, or 3-character pieces."""
    from ..client.tokens import ENCODING_NAME

    try:
        import tiktoken

        return tiktoken.get_encoding(ENCODING_NAME).encode_ordinary
    except Exception:  # the token counter has already warned about the missing encoding
        # The token counter's fallback counts one token per 3 characters: so do we.
        return lambda text: [
            zlib.crc32(text[i : i + 3].encode("utf-8")) for i in range(0, len(text), 3)
        ]


def prompt_token_ids(prompt: str, system: str = "", *, chat: bool = False) -> list[int]:
    """The token sequence a cache matches on: the system message first, as providers order it."""
    encode = _encoder()
    if chat and system:
        # A separator no text encodes to keeps "system + user" apart from other splits.
        return [*encode(system), 0xFFFFFFFF, *encode(prompt)]
    return encode(prompt)


class PromptCache:
    """Prefix hashes of recent prompts, each with the time it was last used."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        min_prefix: int = MIN_PREFIX,
        step: int = STEP,
    ) -> None:
        if ttl <= 0 or max_entries < 1 or min_prefix < 1 or step < 1:
            raise ValueError("ttl, max_entries, min_prefix and step must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self.min_prefix = min_prefix
        self.step = step
        self._last_used: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._last_used)

    def _prefix_keys(self, tokens: list[int]) -> list[tuple[int, bytes]]:
        """(length, hash) of every cacheable prefix of ``tokens``, shortest first."""
        keys: list[tuple[int, bytes]] = []
        if len(tokens) < self.min_prefix:
            return keys
        digest = hashlib.blake2b(digest_size=16)
        done = 0
        for length in range(self.min_prefix, len(tokens) + 1, self.step):
            # One running hash over the whole prompt: each prefix costs only its new tokens.
            digest.update(array("I", tokens[done:length]).tobytes())
            done = length
            keys.append((length, digest.copy().digest()))
        return keys

    def lookup_and_store(self, tokens: list[int], now: float) -> int:
        """Cached tokens for a prompt answered at ``now``; its prefixes are then remembered."""
        keys = self._prefix_keys(tokens)
        cached = 0
        for length, key in keys:
            used = self._last_used.get(key)
            if used is None or now - used > self.ttl:
                break  # a longer prefix cannot be cached when this one is not
            cached = length
        for _, key in keys:
            self._last_used[key] = now
            self._last_used.move_to_end(key)
        # Oldest use first: drop what has expired, then what is over the bound.
        while self._last_used:
            oldest, used = next(iter(self._last_used.items()))
            if now - used <= self.ttl and len(self._last_used) <= self.max_entries:
                break
            del self._last_used[oldest]
        return cached
