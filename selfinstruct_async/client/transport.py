"""The transport seam: send one POST, get status, headers and body back.

Like httpx's transports, this is the only layer that touches sockets. The HTTP client owns
retries, pacing and parsing; a :class:`Transport` only delivers bytes and maps network
failures onto :class:`~selfinstruct_async.errors.TransportTimeout` and
:class:`~selfinstruct_async.errors.TransportConnectionError`. Unit tests plug in a
:class:`MockTransport` with a handler function instead of a server.

Answers are read chunk by chunk up to the request's ``max_bytes``
(:class:`~selfinstruct_async.errors.ResponseTooLarge` beyond it), so one runaway answer
can neither fill memory nor keep a cancelled request busy. URLs are shown through
:func:`display_url`, which drops any ``user:password@`` part.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ..errors import ResponseTooLarge, TransportConnectionError, TransportTimeout

# Bytes asked of the socket per read: small enough that memory stays near the cap and
# cancellation is checked often, large enough to cost nothing on normal answers.
READ_CHUNK = 64 * 1024
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#]*@")


def strip_userinfo(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URL in it removed."""
    return _USERINFO.sub(r"\1", text)


def display_url(url: str) -> str:
    """``url`` fit for messages and logs: without ``user:password@``, query or fragment.

    Credentials in a URL are secrets like an API key; a query may carry a key too
    (``?api-key=...``), so it is shown only as ``?...``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return strip_userinfo(url)
    host = parts.netloc.rpartition("@")[2]
    query = "..." if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@dataclass(frozen=True, slots=True)
class TransportRequest:
    """One POST. ``headers`` carry the API key, so they are left out of ``repr``."""

    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 120.0
    max_bytes: int | None = None  # larger answers raise ResponseTooLarge

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
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise TransportConnectionError("transport is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.limit,
                limit_per_host=self.limit,
                keepalive_timeout=self._keepalive,
            )
            # raise_for_status stays off: statuses are the client's to classify. No cookie
            # jar: an API is called with its key, and a provider's cookies (a CDN's, on
            # every answer) would cost a parse per answer and a lookup per request.
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def send(self, request: TransportRequest) -> TransportResponse:
        session = self._get_session()
        timeout = self._timeouts.get(request.timeout)
        if timeout is None:  # one per endpoint setting: not built again for every request
            timeout = self._timeouts[request.timeout] = aiohttp.ClientTimeout(total=request.timeout)
        try:
            async with session.post(
                request.url, data=request.body, headers=request.headers, timeout=timeout
            ) as resp:
                body = await _read_body(resp, request)
                headers = {k.lower(): v for k, v in resp.headers.items()}
                return TransportResponse(resp.status, headers, body)
        except TimeoutError as exc:
            raise TransportTimeout(f"no answer within {request.timeout:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            # The exception text names host and port, never headers; some aiohttp errors
            # quote the URL, so credentials written into it are cut out.
            raise TransportConnectionError(strip_userinfo(f"{type(exc).__name__}: {exc}")) from exc

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


async def _read_body(resp: aiohttp.ClientResponse, request: TransportRequest) -> bytes:
    """The body, read a chunk at a time (each read is a cancellation point) up to the cap.

    Beyond ``request.max_bytes`` the connection is closed, not drained: draining a
    runaway answer is exactly the cost the cap exists to avoid.
    """
    limit = request.max_bytes
    if limit is None:
        return await resp.read()
    announced = resp.content_length
    if announced is not None and announced > limit:
        resp.close()
        raise ResponseTooLarge(limit, display_url(request.url), announced=announced)
    if announced is not None and resp.headers.get("Content-Encoding") is None:
        # The usual answer: its length is known and within the cap, and aiohttp stops at
        # Content-Length, so one read costs less than a loop of chunks.
        return await resp.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            resp.close()
            raise ResponseTooLarge(limit, display_url(request.url), bytes_read=size)
        chunks.append(chunk)
    return b"".join(chunks)
