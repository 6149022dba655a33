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

import json
from collections.abc import Awaitable, Callable
from dataclasses import fields, replace
from json.encoder import encode_basestring
from typing import Any

from .. import counters as names
from ..checkpoint.store import Store
from . import prompt_json, request_json
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

    def build(prompt: str) -> list[Any]:
        fields = request.key_fields()
        if not answer_formats:
            fields.pop("answer_format", None)
        fields["prompt"] = prompt
        return [namespace, fields]

    found = request_json.shape(request)
    frame = None if found is None else (namespace, answer_formats, found)
    return _KEY_FRAMES.sha256(frame, build, request.prompt)


# Keys of every client in the process: a prompt prefix or frame learnt once serves them all.
_KEY_FRAMES = request_json.Frames(
    prompt_json.PromptEncoder(ensure_ascii=False), sort_keys=True, ensure_ascii=False
)


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
    plain = _dump_plain(completion) if _PLAIN_FIELDS else None
    if plain is not None:
        return plain
    body = _fields(completion)
    body["choices"] = [_fields(choice) for choice in completion.choices]
    body["usage"] = _fields(completion.usage)
    return json.dumps(body, ensure_ascii=False)


# The fields the plain writer below spells out; if the records change, json.dumps does it all.
_PLAIN_FIELDS = {
    Completion: ("choices", "usage", "model"),
    Choice: ("text", "finish_reason", "top_logprobs", "token_logprobs"),
    Usage: ("prompt_tokens", "completion_tokens", "cached_prompt_tokens"),
} == _FIELD_NAMES
_string = encode_basestring  # what json.dumps(..., ensure_ascii=False) writes a str with
_INTS = (int, int, int)


def _dump_plain(completion: Completion) -> str | None:
    """:func:`dump_completion`'s text for the usual answer (strings, exact ints, no log
    probabilities), written without building dicts for ``json.dumps``; ``None`` otherwise.

    The ledger stores one per request, and this is the same text at a fraction of the cost:
    the separators are ``json.dumps``'s defaults (``", "`` and ``": "``), strings go through
    its own encoder, ints through ``int.__repr__`` as in ``json.dumps``.
    """
    usage = completion.usage
    counts = (usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens)
    if type(completion.model) is not str or tuple(map(type, counts)) != _INTS:
        return None
    choices: list[str] = []
    for choice in completion.choices:
        finish = choice.finish_reason
        if (
            type(choice.text) is not str
            or choice.top_logprobs != ()
            or choice.token_logprobs != ()
            or not (finish is None or type(finish) is str)
        ):
            return None
        choices.append(
            f'{{"text": {_string(choice.text)}, '
            f'"finish_reason": {"null" if finish is None else _string(finish)}, '
            '"top_logprobs": [], "token_logprobs": []}'
        )
    return (
        f'{{"choices": [{", ".join(choices)}], "usage": {{"prompt_tokens": {counts[0]}, '
        f'"completion_tokens": {counts[1]}, "cached_prompt_tokens": {counts[2]}}}, '
        f'"model": {_string(completion.model)}}}'
    )


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
