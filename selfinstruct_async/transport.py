"""The transport seam: send one POST, get status, headers and body back.

Like httpx's transports, this is the only layer that touches sockets. The HTTP client owns
retries, pacing and parsing; a :class:`Transport` only delivers bytes and maps network
failures onto :class:`~selfinstruct_async.errors.TransportTimeout` and
:class:`~selfinstruct_async.errors.TransportConnectionError`. Unit tests plug in a
:class:`MockTransport` with a handler function instead of a server.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from .errors import TransportConnectionError, TransportTimeout


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@dataclass(frozen=True, slots=True)
class TransportRequest:
    """One POST. ``headers`` carry the API key, so they are left out of ``repr``."""

    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 120.0

    def json(self) -> Any:
        """The body decoded as JSON (for handlers in tests)."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class TransportResponse:
    """Status, headers (keys lower-cased) and the complete body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def from_json(
        cls, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> TransportResponse:
        """A response whose body is ``payload`` encoded as JSON."""
        merged = {"content-type": "application/json", **_lower(headers or {})}
        return cls(status, merged, json.dumps(payload).encode())


class Transport(Protocol):
    """Delivers requests; raises ``TransportError`` subclasses for network failures."""

    async def send(self, request: TransportRequest) -> TransportResponse:
        """POST ``request`` and return the whole answer."""
        ...

    async def aclose(self) -> None:
        """Close connections."""
        ...


Handler = Callable[[TransportRequest], "TransportResponse | Awaitable[TransportResponse]"]


class MockTransport:
    """Answers every request by calling ``handler`` (sync or async); for tests.

    The handler may raise ``TransportTimeout``/``TransportConnectionError`` to simulate
    network failures. Requests are kept in :attr:`requests` for assertions.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[TransportRequest] = []
        self.closed = False

    async def send(self, request: TransportRequest) -> TransportResponse:
        self.requests.append(request)
        result = self._handler(request)
        if inspect.isawaitable(result):
            return await result
        return result

    async def aclose(self) -> None:
        self.closed = True


class AiohttpTransport:
    """One ``aiohttp.ClientSession`` with an explicitly sized connection pool.

    The session is created on first use because aiohttp binds it to the running loop.
    ``limit`` should equal the caller's concurrency cap: a smaller pool would queue
    requests inside aiohttp, out of sight of the pacer that timed them.
    """

    def __init__(self, *, limit: int, keepalive_timeout: float = 30.0) -> None:
        if limit < 1:
            raise ValueError(f"connection limit must be at least 1, got {limit}")
        self.limit = limit
        self._keepalive = keepalive_timeout
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise TransportConnectionError("transport is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.limit,
                limit_per_host=self.limit,
                keepalive_timeout=self._keepalive,
            )
            # raise_for_status stays off: statuses are the client's to classify.
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def send(self, request: TransportRequest) -> TransportResponse:
        session = self._get_session()
        timeout = aiohttp.ClientTimeout(total=request.timeout)
        try:
            async with session.post(
                request.url, data=request.body, headers=dict(request.headers), timeout=timeout
            ) as resp:
                body = await resp.read()
                headers = {k.lower(): v for k, v in resp.headers.items()}
                return TransportResponse(resp.status, headers, body)
        except TimeoutError as exc:
            raise TransportTimeout(f"no answer within {request.timeout:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            # The exception text names only host and port, never headers.
            raise TransportConnectionError(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
