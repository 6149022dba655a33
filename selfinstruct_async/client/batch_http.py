"""The OpenAI Batch API's REST calls: files and batches, over one aiohttp session.

Each call is retried on what a provider does when busy or briefly down (a connection
error, a timeout, 429, 5xx), waiting ``Retry-After`` when given and a doubling backoff
otherwise, up to the endpoint's ``max_attempts``; other statuses raise
:class:`~selfinstruct_async.errors.PermanentHTTPError`. The API key goes only into the
``Authorization`` header (as :class:`~.endpoint.Endpoint` builds it) and URLs are shown
without credentials, so no message carries a secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio

from ..config import EndpointConfig
from ..errors import PermanentHTTPError, RetriesExhausted
from .retry import parse_duration
from .transport import display_url

log = logging.getLogger(__name__)

_TRANSIENT = frozenset({408, 409, 429, 500, 502, 503, 504})


class BatchAPI:
    """Files and batches at one endpoint's ``base_url``."""

    def __init__(self, config: EndpointConfig, api_key: str | None) -> None:
        self.config = config
        self.base = config.base_url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        form: dict[str, Any] | None = None,
        raw: bool = False,
    ) -> Any:
        """One call, retried while the failure is transient; JSON (or bytes if ``raw``)."""
        url = f"{self.base}{path}"
        shown = display_url(url)
        attempts = self.config.max_attempts
        delay = 0.5
        last = ""
        for attempt in range(1, attempts + 1):
            data: aiohttp.FormData | None = None
            if form is not None:
                data = aiohttp.FormData()
                for name, value in form.items():
                    if isinstance(value, tuple):
                        filename, content = value
                        data.add_field(
                            name, content, filename=filename, content_type="application/jsonl"
                        )
                    else:
                        data.add_field(name, value)
            timeout = aiohttp.ClientTimeout(total=self.config.timeout)
            wait = delay
            try:
                async with self._get_session().request(
                    method, url, params=params, json=json_body, data=data, timeout=timeout
                ) as response:
                    body = await response.read()
                    if response.status < 300:
                        return body if raw else json.loads(body)
                    text = body[:500].decode("utf-8", "replace")
                    if response.status not in _TRANSIENT:
                        raise PermanentHTTPError(response.status, f"{method} {shown}: {text}")
                    last = f"status {response.status}: {text}"
                    header = response.headers.get("retry-after")
                    asked = parse_duration(header) if header else None
                    if asked is not None:
                        wait = min(asked, self.config.max_retry_wait)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            except ValueError as exc:  # a 2xx body that is not JSON
                last = f"unreadable answer: {exc}"
            if attempt < attempts:
                log.debug("%s %s failed (%s); retrying in %.1f s", method, shown, last, wait)
                await anyio.sleep(wait)
                delay = min(delay * 2, 60.0)
        raise RetriesExhausted(
            f"{method} {shown}: no answer after {attempts} attempts ({last})",
            attempts=attempts,
            last_failure=last,
        )

    # -- files ----------------------------------------------------------------------------

    async def upload(self, filename: str, content: bytes) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "POST", "/files", form={"purpose": "batch", "file": (filename, content)}
        )
        return result

    async def files(self) -> AsyncIterator[dict[str, Any]]:
        """Every batch input file the account holds, page by page."""
        async for item in self._pages("/files", {"purpose": "batch", "limit": "10000"}):
            yield item

    async def content(self, file_id: str) -> bytes:
        body: bytes = await self._call("GET", f"/files/{file_id}/content", raw=True)
        return body

    # -- batches --------------------------------------------------------------------------

    async def create(self, file_id: str, endpoint: str, metadata: dict[str, str]) -> dict[str, Any]:
        body = {
            "input_file_id": file_id,
            "endpoint": endpoint,
            "completion_window": "24h",
            "metadata": metadata,
        }
        result: dict[str, Any] = await self._call("POST", "/batches", json_body=body)
        return result

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/batches/{batch_id}")
        return result

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/batches/{batch_id}/cancel")
        return result

    async def batches(self) -> AsyncIterator[dict[str, Any]]:
        """Every batch of the account, page by page."""
        async for item in self._pages("/batches", {"limit": "100"}):
            yield item

    async def _pages(self, path: str, params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        after: str | None = None
        while True:
            query = dict(params, **({"after": after} if after else {}))
            page = await self._call("GET", path, params=query)
            data = page.get("data") if isinstance(page, dict) else None
            for item in data if isinstance(data, list) else ():
                if isinstance(item, dict):
                    yield item
            if not (isinstance(page, dict) and page.get("has_more") and data):
                return
            after = str(data[-1].get("id"))
