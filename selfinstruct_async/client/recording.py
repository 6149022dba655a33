"""A client wrapper that records every completion before anyone processes it.

Requests are keyed by a hash of their content (model, API, prompt, sampling parameters).
A resumed run that asks the same question again (classification and instance prompts
are deterministic per task) gets the stored answer instead of buying it twice.

An answer goes into the ledger with the store's next commit (``Store.ledger_put_later``),
in the same transaction as, or before, whatever a stage commits about it; a request never
bought before is known without a query (``Store.ledger_known``). So a fresh request costs
no store call of its own, and nothing processed is ever missing from the ledger.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import fields, replace
from typing import Any

from .. import counters as names
from ..checkpoint.store import Store
from . import prompt_json
from .protocol import Choice, Completion, CompletionRequest, LLMClient, Usage

DB = Callable[..., Awaitable[Any]]


def request_key(
    request: CompletionRequest, namespace: str = "", *, answer_formats: bool = True
) -> str:
    """Content hash of a request; ``namespace`` separates models and endpoint kinds.

    ``answer_formats``: whether the backend constrains answers to
    :attr:`~.protocol.CompletionRequest.answer_format`; where it does not, the format
    changes nothing about the answer and is left out of the key.
    """
    fields = request.key_fields()
    if not answer_formats:
        fields.pop("answer_format", None)
    body = prompt_json.dumps(
        [namespace, fields], request.prompt, _KEY_PROMPTS, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


# Keys of every client in the process: a prompt prefix learnt once serves them all.
_KEY_PROMPTS = prompt_json.PromptEncoder(ensure_ascii=False)


def _fields(record: Any) -> dict[str, Any]:
    """A record's fields by name, one level deep (``asdict`` recurses and deep-copies)."""
    return {name: getattr(record, name) for name in _FIELD_NAMES[type(record)]}


# ``replayed`` says where an answer came from, not what it says: it is never stored.
_FIELD_NAMES = {
    cls: tuple(f.name for f in fields(cls) if f.name != "replayed")
    for cls in (Completion, Choice, Usage)
}


def dump_completion(completion: Completion) -> str:
    """The ledger's JSON of a completion: the same text as ``json.dumps(asdict(...))``."""
    body = _fields(completion)
    body["choices"] = [_fields(choice) for choice in completion.choices]
    body["usage"] = _fields(completion.usage)
    return json.dumps(body, ensure_ascii=False)


def load_completion(text: str) -> Completion:
    data = json.loads(text)
    return Completion(
        choices=tuple(
            Choice(
                **(
                    c
                    | {
                        "top_logprobs": tuple(c.get("top_logprobs", ())),
                        "token_logprobs": tuple(
                            (int(o), lp) for o, lp in c.get("token_logprobs", ())
                        ),
                    }
                )
            )
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
        *,
        answer_formats: bool = True,
    ) -> None:
        self.inner = inner
        self.answer_formats = answer_formats
        self.store = store
        self._db = db
        self._count = count
        self.namespace = namespace

    async def complete(self, request: CompletionRequest) -> Completion:
        key = request_key(request, self.namespace, answer_formats=self.answer_formats)
        if self.store.ledger_known(key):
            stored = await self._db(self.store.ledger_get, key)
            if stored is not None:
                self._count(names.ledger_reused(request.stage))
                return replace(load_completion(stored), replayed=True)
        completion = await self.inner.complete(request)
        self.store.ledger_put_later(key, request.stage, dump_completion(completion))
        return completion

    async def aclose(self) -> None:
        await self.inner.aclose()
