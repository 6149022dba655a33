"""Each stage's answer format as a grammar: compiled by llama.cpp, sent in the field each
server reads, and never forced on prompts whose labels a plugin renamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from selfinstruct_async.answer_formats import (
    ANSWER_FORMATS,
    INPUT_FIRST,
    NUMBERED_LIST,
    OUTPUT_FIRST,
    YES_NO,
    constraint_fields,
    grammar_for,
    usable_format,
)
from selfinstruct_async.client.http import build_http_client
from selfinstruct_async.client.protocol import CompletionRequest
from selfinstruct_async.client.usage import UsageMeter
from selfinstruct_async.config import load_config
from selfinstruct_async.prompts import DEFAULT_TEMPLATES
from tests.fixtures.loopback import serving_completions


def test_every_stage_format_has_a_grammar_llama_cpp_compiles() -> None:
    grammar_module = pytest.importorskip("llama_cpp.llama_grammar")
    assert set(ANSWER_FORMATS) == {NUMBERED_LIST, YES_NO, INPUT_FIRST, OUTPUT_FIRST}
    for text in ANSWER_FORMATS.values():
        grammar_module.LlamaGrammar.from_string(text, verbose=False)


def test_endpoints_get_the_grammar_in_their_own_field_and_nothing_when_off() -> None:
    assert constraint_fields(INPUT_FIRST, "off") == {}
    assert constraint_fields(INPUT_FIRST, "llama.cpp") == {"grammar": grammar_for(INPUT_FIRST)}
    assert constraint_fields(YES_NO, "vllm") == {"guided_grammar": grammar_for(YES_NO)}
    assert constraint_fields("", "llama.cpp") == {}  # free text
    assert constraint_fields("no_such_format", "llama.cpp") == {}
    assert load_config().endpoints == () or load_config().endpoints[0].constrained_decoding == "off"
    config = load_config(
        overrides={"endpoint": {"base_url": "http://127.0.0.1:1/v1", "model": "m"}}
    )
    assert config.endpoints[0].constrained_decoding == "off"  # hosted APIs refuse unknown fields


def test_renamed_labels_turn_the_grammar_off() -> None:
    assert usable_format(INPUT_FIRST, DEFAULT_TEMPLATES) == INPUT_FIRST
    renamed = replace(DEFAULT_TEMPLATES, input_label="Question")
    assert usable_format(INPUT_FIRST, renamed) == ""


def test_the_paper_preset_turns_the_local_grammar_off() -> None:
    assert load_config().local.constrain_formats is True
    assert load_config(preset="paper").local.constrain_formats is False


@asynccontextmanager
async def body_recorder(bodies: list[dict[str, Any]]) -> AsyncIterator[str]:
    """A completions endpoint on loopback that keeps every request body it gets."""

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        choice = {"index": 0, "text": " Yes", "finish_reason": "stop"}
        return web.json_response({"choices": [choice], "model": "m"})

    async with serving_completions(handle) as url:
        yield url


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("constrained", "field"), [("vllm", "guided_grammar"), ("llama.cpp", "grammar"), ("off", None)]
)
async def test_the_grammar_goes_over_the_wire_in_the_servers_own_field(
    constrained: str, field: str | None
) -> None:
    bodies: list[dict[str, Any]] = []
    async with body_recorder(bodies) as url:
        endpoint = {"base_url": url, "model": "m", "constrained_decoding": constrained}
        config = load_config(overrides={"endpoint": endpoint})
        async with build_http_client(config.endpoints, UsageMeter()) as client:
            request = CompletionRequest("s", "Is it a classification task?", 3)
            await client.complete(replace(request, answer_format=YES_NO))
            await client.complete(request)  # free text: no grammar
    fields = {"grammar", "guided_grammar"}
    assert [sorted(fields & set(b)) for b in bodies] == [[field] if field else [], []]
    if field:
        assert bodies[0][field] == grammar_for(YES_NO)
