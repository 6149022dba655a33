"""A client wrapper that records every completion before anyone processes it.

Requests are keyed by a hash of their content (model, API, prompt, sampling parameters).
A resumed run that asks the same question again (classification and instance prompts
are deterministic per task) gets the stored answer instead of buying it twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from .. import counters as names
from ..checkpoint.store import Store
from .protocol import Choice, Completion, CompletionRequest, LLMClient, Usage

DB = Callable[..., Awaitable[Any]]


def request_key(request: CompletionRequest, namespace: str = "") -> str:
    """Content hash of a request; ``namespace`` separates models and endpoint kinds."""
    body = json.dumps([namespace, request.key_fields()], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def dump_completion(completion: Completion) -> str:
    return json.dumps(asdict(completion), ensure_ascii=False)


def load_completion(text: str) -> Completion:
    data = json.loads(text)
    return Completion(
        choices=tuple(
            Choice(**(c | {"top_logprobs": tuple(c.get("top_logprobs", ()))}))
            for c in data["choices"]
        ),
        usage=Usage(**data["usage"]),
        model=data.get("model", ""),
    )


class LedgerClient:
    """Wraps an :class:`LLMClient`; answers from the ledger when the request was bought before."""

    def __init__(
        self,
        inner: LLMClient,
        store: Store,
        db: DB,
        count: Callable[[str], None],
        namespace: str = "",
    ) -> None:
        self.inner = inner
        self.store = store
        self._db = db
        self._count = count
        self.namespace = namespace

    async def complete(self, request: CompletionRequest) -> Completion:
        key = request_key(request, self.namespace)
        stored = await self._db(self.store.ledger_get, key)
        if stored is not None:
            self._count(names.ledger_reused(request.stage))
            return load_completion(stored)
        completion = await self.inner.complete(request)
        await self._db(self.store.ledger_put, key, request.stage, dump_completion(completion))
        return completion

    async def aclose(self) -> None:
        await self.inner.aclose()
