"""The pipeline's per-request shortcuts produce exactly what the plain code did.

Issue 15 made the work done per request cheaper: prompt prefixes rendered once, request
JSON that escapes a shared prompt prefix once, plain filter checks called without an await.
Each shortcut must give the same bytes, keys and decisions as the straightforward code,
which these tests spell out next to it.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfinstruct_async.client.endpoint import Endpoint
from selfinstruct_async.client.http import HTTPClient
from selfinstruct_async.client.openai_format import request_body
from selfinstruct_async.client.pacing import Pacer
from selfinstruct_async.client.prompt_json import PromptEncoder, dumps
from selfinstruct_async.client.protocol import CompletionRequest
from selfinstruct_async.client.recording import request_key
from selfinstruct_async.client.transport import MockTransport, TransportRequest, TransportResponse
from selfinstruct_async.client.usage import UsageMeter
from selfinstruct_async.config import EndpointConfig
from selfinstruct_async.errors import FilterError
from selfinstruct_async.filters import BaseFilter, FilterChain
from selfinstruct_async.prompts import (
    DEFAULT_TEMPLATES,
    build_classification_prompt,
    build_instance_prompt,
    one_line,
)
from selfinstruct_async.records import Instance, Rejection, SeedTask
from selfinstruct_async.testing import ManualClock

# Text with what JSON escapes: quotes, backslashes, control characters, non-ASCII, emoji.
TEXT = st.lists(
    st.sampled_from([*'ab \n\t"\\/\x00\x1fé✓😀\u2028', "Task: ", "Yes\n"]), max_size=30
).map("".join)


def _old_key(request: CompletionRequest, namespace: str) -> str:
    body = json.dumps([namespace, request.key_fields()], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@settings(max_examples=200, deadline=None)
@given(prefix=TEXT, tails=st.lists(TEXT, min_size=1, max_size=6), ascii_only=st.booleans())
def test_prompt_encoder_gives_json_dumps_text_for_prompts_sharing_a_prefix(
    prefix: str, tails: list[str], ascii_only: bool
) -> None:
    encoder = PromptEncoder(ensure_ascii=ascii_only, min_prefix=4)
    shared = prefix * 3 + "\n"
    for tail in tails + tails:  # the second round starts with learnt prefixes
        text = shared + tail
        assert encoder(text) == json.dumps(text, ensure_ascii=ascii_only)
        assert encoder(tail) == json.dumps(tail, ensure_ascii=ascii_only)


def test_the_encoder_learns_the_shared_part_up_to_a_newline() -> None:
    encoder = PromptEncoder(ensure_ascii=True, min_prefix=8)
    encoder("header line\nTask: one")
    encoder("header line\nTask: two")
    # Learnt up to the newline, not into "Task: ", which the next prompt need not share.
    assert [prefix for prefix, _ in encoder._known] == ["header line\n"]
    assert encoder("header line\nOther") == json.dumps("header line\nOther")


def test_the_encoder_learns_prefixes_of_prompts_that_take_turns() -> None:
    # Stages take turns: a classification prompt seldom follows another one directly.
    encoder = PromptEncoder(ensure_ascii=False, min_prefix=8)
    for text in ("ask yes or no\nTask: a", "write examples\nTask: b", "ask yes or no\nTask: c"):
        assert encoder(text) == json.dumps(text, ensure_ascii=False)
    assert [prefix for prefix, _ in encoder._known] == ["ask yes or no\n"]


def test_dumps_leaves_a_body_without_the_prompt_to_json() -> None:
    encoder = PromptEncoder(ensure_ascii=True)
    payload = {"prompt": "a copy", "n": 1}
    assert dumps(payload, "a " + "copy", encoder) == json.dumps(payload)
    # The placeholder's text inside another field: plain json.dumps, never a wrong splice.
    prompt = "p" * 600
    sneaky = {"stop": ["\x00selfinstruct-prompt\x00"], "prompt": prompt}
    assert dumps(sneaky, prompt, encoder) == json.dumps(sneaky)


def _classification_requests(n: int) -> list[CompletionRequest]:
    demos = [(f'Demonstration task {i}: sort the "items" by size.', i % 3 == 0) for i in range(40)]
    rng = random.Random(4)
    tasks = [f"Task {rng.random()} — classify tweet #{i} as 😀 or ☹" for i in range(n)]
    return [
        build_classification_prompt(task, demos).request("identify_classification", _Sampling())
        for task in tasks
    ]


class _Sampling:
    max_tokens = 3
    temperature = 0.0


def test_request_keys_are_the_sha256_of_the_same_json_as_before() -> None:
    requests = _classification_requests(30)
    for namespace in ("", "completions:sim", "chat:m"):
        for request in requests:
            assert request_key(request, namespace) == _old_key(request, namespace)
    with_format = replace(requests[0], answer_format="yes_no")
    assert request_key(with_format, "ns") == _old_key(with_format, "ns")


@pytest.mark.anyio
@pytest.mark.parametrize("chat", [False, True])
async def test_http_bodies_are_the_json_dumps_of_the_request_body(chat: bool) -> None:
    sent: list[TransportRequest] = []

    def handler(request: TransportRequest) -> TransportResponse:
        sent.append(request)
        choice: dict[str, Any] = (
            {"index": 0, "message": {"role": "assistant", "content": "Yes"}}
            if chat
            else {"index": 0, "text": "Yes"}
        )
        payload = {"choices": [choice | {"finish_reason": "stop"}], "usage": {}}
        return TransportResponse.from_json(200, payload)

    config = EndpointConfig(
        base_url="http://ep.test/v1", model="m", api="chat" if chat else "completions"
    )
    clock = ManualClock()
    endpoint = Endpoint(config, MockTransport(handler), Pacer(concurrency=4, clock=clock), None)
    client = HTTPClient([endpoint], UsageMeter(), clock=clock)
    requests = _classification_requests(12)
    for request in requests:
        await client.complete(request)
    assert len(sent) == len(requests)
    for request, wire in zip(requests, sent, strict=True):
        assert wire.body == json.dumps(request_body(request, "m", chat=chat)).encode()


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("ab \t\n\r\x0b\x0c\x1c\x85\xa0\u2003\u3000é")), max_size=40
    )
)
def test_one_line_collapses_exactly_what_the_whitespace_pattern_did(text: str) -> None:
    assert one_line(text) == re.sub(r"\s+", " ", text).strip()


def _plain_classification_prompt(instruction: str, demonstrations: list[tuple[str, bool]]) -> str:
    t = DEFAULT_TEMPLATES
    blocks = [t.classification_header]
    for demo, yes in demonstrations:
        answer = t.answer_yes if yes else t.answer_no
        blocks.append(f"{t.task_label}: {one_line(demo)}\n{t.classification_question} {answer}\n")
    blocks.append(f"{t.task_label}: {one_line(instruction)}\n{t.classification_question}")
    return "\n".join(blocks)


def test_cached_classification_prefix_renders_what_the_blocks_did() -> None:
    demos = [("Is this  spam?\n", True), ("Write a poem.", False)]
    for order in (demos, demos[::-1], demos):
        prompt = build_classification_prompt("Sort  these\nwords.", order)
        assert prompt.text == _plain_classification_prompt("Sort  these\nwords.", order)


def test_cached_instance_blocks_follow_the_demonstrations_given() -> None:
    one = SeedTask("a", "a", "Name a colour.", (Instance("", "Red"),), False)
    two = SeedTask("b", "b", "Add  two numbers.", (Instance("2, 3", "5"),), False)
    first = build_instance_prompt("Spell a word.", False, [one, two]).text
    swapped = build_instance_prompt("Spell a word.", False, [two, one]).text
    assert first.index("Name a colour.") < first.index("Add two numbers.")
    assert swapped.index("Add two numbers.") < swapped.index("Name a colour.")
    assert sorted(first.splitlines()) == sorted(swapped.splitlines())


class _ReturnsAwaitable(BaseFilter):
    """A plain ``check`` that hands back a coroutine: awaited, and called once."""

    name = "returns_awaitable"

    def __init__(self, settings: object = None) -> None:
        super().__init__(settings)
        self.calls = 0

    def check(self, instruction: str) -> Awaitable[Rejection | None]:
        self.calls += 1

        async def later() -> Rejection | None:
            return Rejection("said no") if "bad" in instruction else None

        return later()


class _Raises(BaseFilter):
    name = "raises"

    def check(self, instruction: str) -> Rejection | None:
        raise ValueError("a plugin bug")


@pytest.mark.anyio
async def test_the_chain_awaits_what_a_plain_check_returns_and_calls_it_once() -> None:
    returns = _ReturnsAwaitable()
    chain = FilterChain([returns])
    assert await chain.check_instruction("fine") is None
    rejection = await chain.check_instruction("bad one")
    assert rejection is not None and rejection.filter == "returns_awaitable"
    assert returns.calls == 2


@pytest.mark.anyio
async def test_a_plain_check_that_raises_rejects_the_candidate_or_stops_the_run() -> None:
    rejection = await FilterChain([_Raises()]).check_instruction("anything")
    assert rejection is not None and rejection.filter == "raises"
    assert "ValueError: a plugin bug" in rejection.reason
    with pytest.raises(FilterError):
        await FilterChain([_Raises()], on_error="stop").check_instruction("anything")
