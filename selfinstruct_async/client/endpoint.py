"""One endpoint as the HTTP client drives it: its config, transport, pacer, key and health.

:class:`~selfinstruct_async.client.http.HTTPClient` holds one :class:`Endpoint` per
configured ``[[endpoints]]`` entry and chooses among them per attempt; the endpoint knows its
URL (and how to show it without credentials), its headers and its failure counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import EndpointConfig
from .pacing import Pacer
from .transport import Transport, display_url


def pool_size(config: EndpointConfig) -> int:
    """Connections (and in-flight requests) for an endpoint: rate x latency, with headroom.

    Twice the Little's-law estimate absorbs latency tails; never above ``concurrency``.
    """
    if config.rpm is None:
        return config.concurrency
    needed = math.ceil(config.rpm / 60.0 * max(config.expected_latency, 0.0) * 2) + 8
    return max(1, min(config.concurrency, needed))


@dataclass
class Endpoint:
    """One endpoint as the client drives it: config, transport, pacer and health."""

    config: EndpointConfig
    transport: Transport
    pacer: Pacer
    api_key: str | None = field(default=None, repr=False)
    consecutive_failures: int = 0
    cooldowns: int = 0
    # Whether the cap on a server-requested wait was announced since the last success.
    wait_capped: bool = False
    stats: dict[str, int] = field(default_factory=dict)
    _headers: dict[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def chat(self) -> bool:
        return self.config.api == "chat"

    @property
    def url(self) -> str:
        path = "chat/completions" if self.chat else "completions"
        return f"{self.config.base_url.rstrip('/')}/{path}"

    @property
    def shown_url(self) -> str:
        """:attr:`url` for messages: without credentials."""
        return display_url(self.url)

    @property
    def shown_base_url(self) -> str:
        """The configured ``base_url`` for messages: without credentials."""
        return display_url(self.config.base_url)

    def headers(self) -> dict[str, str]:
        """Request headers, including ``Authorization`` when there is a key."""
        if self._headers is None:
            self._headers = self._build_headers()
        return self._headers

    def _build_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1
