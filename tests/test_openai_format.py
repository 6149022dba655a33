"""client/openai_format: the one mapping of requests to OpenAI bodies and of answers back."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from typing import Any

import aiohttp
import pytest

from selfinstruct_async.client.openai_format import (
    generation_fields,
    parse_completion,
    parse_payload,
    request_body,
)
from selfinstruct_async.client.protocol import SAMPLING_PARAMETERS, Completion, CompletionRequest
from selfinstruct_async.client.recording import request_key
from selfinstruct_async.client.retry import Failure, FailureKind
from selfinstruct_async.client.tokens import count_tokens, prompt_tokens
from selfinstruct_async.simulator.server import SimulatorHandle

REQUEST = CompletionRequest(
    stage="generate_instructions",
    prompt="1. Name a colour.\n2.",
    system="Continue the list.",
    max_tokens=64,
    temperature=0.7,
    top_p=0.5,
    presence_penalty=2.0,
    frequency_penalty=-0.25,
    stop=("\n\n", "\n3."),
    chat_stop=("\n3.",),
    n=2,
)


def test_a_completions_body_carries_the_prompt_sampling_n_and_the_completion_stops() -> None:
    body = request_body(REQUEST, "m-1", chat=False)

    assert body["model"] == "m-1" and body["prompt"] == REQUEST.prompt
    assert "messages" not in body and "system" not in json.dumps(body)
    assert body["max_tokens"] == REQUEST.max_tokens and body["n"] == REQUEST.n
    assert {name: body[name] for name in SAMPLING_PARAMETERS} == REQUEST.sampling()
    assert body["stop"] == list(REQUEST.stop)


def test_a_chat_body_sends_the_system_message_first_and_the_chat_stops() -> None:
    body = request_body(REQUEST, "m-1", chat=True)

    assert body["messages"] == [
        {"role": "system", "content": REQUEST.system},
        {"role": "user", "content": REQUEST.prompt},
    ]
    assert "prompt" not in body
    assert body["stop"] == list(REQUEST.chat_stop or ())
    assert {name: body[name] for name in SAMPLING_PARAMETERS} == REQUEST.sampling()


def test_a_request_without_stops_or_system_sends_neither() -> None:
    bare = replace(REQUEST, system="", stop=(), chat_stop=None)

    assert "stop" not in request_body(bare, "m", chat=False)
    chat = request_body(bare, "m", chat=True)
    assert "stop" not in chat
    assert chat["messages"] == [{"role": "user", "content": bare.prompt}]


@pytest.mark.parametrize("name", SAMPLING_PARAMETERS)
def test_each_sampling_parameter_reaches_both_backends_fields(name: str) -> None:
    change: dict[str, Any] = {name: 0.125}
    changed = replace(REQUEST, **change)

    # The HTTP body and the llama.cpp options are built from the same fields.
    assert generation_fields(changed)[name] == 0.125
    assert request_body(changed, "m", chat=False)[name] == 0.125
    assert generation_fields(REQUEST)[name] != 0.125


def test_usage_the_answer_misstates_is_left_at_zero_and_a_non_string_model_is_empty() -> None:
    choice = {"text": "red", "finish_reason": "stop"}
    for usage in (None, {"prompt_tokens": -1, "completion_tokens": 3}, {"prompt_tokens": "9"}):
        parsed = parse_payload({"choices": [choice], "usage": usage, "model": 7}, chat=False)
        assert isinstance(parsed, Completion)
        assert parsed.usage.total_tokens == 0 and parsed.model == ""
    stated = {"prompt_tokens": 11, "completion_tokens": 4}
    parsed = parse_payload({"choices": [choice], "usage": stated, "model": "m"}, chat=False)
    assert isinstance(parsed, Completion)
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens, parsed.model) == (
        11,
        4,
        "m",
    )


def test_a_chat_answer_read_as_completions_has_no_text_and_the_reverse_too() -> None:
    chat_choice: dict[str, Any] = {"message": {"content": "red"}, "finish_reason": "stop"}
    text_choice: dict[str, Any] = {"text": "red", "finish_reason": "stop"}

    for choice, chat in ((chat_choice, True), (text_choice, False)):
        right = parse_payload({"choices": [choice]}, chat=chat)
        wrong = parse_payload({"choices": [choice]}, chat=not chat)
        assert isinstance(right, Completion) and right.text == "red"
        assert isinstance(wrong, Completion) and wrong.text == ""


def test_malformed_and_empty_answers_are_failures_not_exceptions() -> None:
    assert isinstance(parse_completion(b"\xff\xfe", chat=False), Failure)
    empty = parse_payload({"choices": []}, chat=True)
    assert isinstance(empty, Failure) and empty.kind is FailureKind.EMPTY
    bad = parse_payload({"choices": [{"message": {"content": 3}}]}, chat=True)
    assert isinstance(bad, Failure) and bad.kind is FailureKind.MALFORMED


@pytest.mark.anyio
@pytest.mark.parametrize("chat", [False, True])
async def test_bodies_built_here_are_answered_by_a_provider_and_parse_back(
    simulator: SimulatorHandle, chat: bool
) -> None:
    path = "chat/completions" if chat else "completions"
    body = request_body(REQUEST, "sim-model", chat=chat)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{simulator.base_url}/{path}", json=body) as response,
    ):
        assert response.status == 200
        raw = await response.read()

    parsed = parse_completion(raw, chat=chat)

    assert isinstance(parsed, Completion)
    assert len(parsed.choices) == REQUEST.n and parsed.model == "sim-model"
    assert all(choice.text for choice in parsed.choices)
    expected_prompt = prompt_tokens(REQUEST.prompt, REQUEST.system if chat else "", chat=chat)
    assert parsed.usage.prompt_tokens == expected_prompt == simulator.stats.prompt_tokens
    assert parsed.usage.completion_tokens == sum(count_tokens(c.text) for c in parsed.choices)


def test_a_huge_answer_is_estimated_from_a_bounded_prefix_close_to_the_exact_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Counting megabytes on the event loop kept a run deaf to SIGTERM for seconds.
    from selfinstruct_async.client import tokens

    text = "Rewrite the sentence in the passive voice, keeping its tense. " * 4096
    exact = tokens.count_tokens(text)
    counted: list[int] = []
    real = tokens.count_tokens

    def counting(part: str) -> int:
        counted.append(len(part))
        return real(part)

    monkeypatch.setattr(tokens, "count_tokens", counting)
    estimate = tokens.estimate_tokens(text)
    assert counted and max(counted) <= tokens.EXACT_COUNT_LIMIT < len(text)
    assert abs(estimate - exact) <= 0.02 * exact
    counted.clear()
    assert tokens.estimate_tokens("a short answer") == real("a short answer")


def test_logprobs_are_asked_for_in_each_apis_spelling_and_omitted_by_default() -> None:
    assert "logprobs" not in request_body(REQUEST, "m", chat=False)
    asking = replace(REQUEST, logprobs=5)
    assert request_body(asking, "m", chat=False)["logprobs"] == 5
    chat = request_body(asking, "m", chat=True)
    assert (chat["logprobs"], chat["top_logprobs"]) == (True, 5)


def test_top_logprobs_are_read_from_completions_and_chat_answers() -> None:
    completions = {
        "choices": [{"text": "Yes", "logprobs": {"top_logprobs": [{"Yes": -0.1, " No": -2.5}]}}]
    }
    parsed = parse_payload(completions, chat=False)
    assert isinstance(parsed, Completion)
    assert parsed.choices[0].top_logprobs == ({"Yes": -0.1, " No": -2.5},)
    chat = {
        "choices": [
            {
                "message": {"content": "No"},
                "logprobs": {
                    "content": [
                        {
                            "token": "No",
                            "top_logprobs": [
                                {"token": "No", "logprob": -0.2},
                                {"token": "Yes", "logprob": -1.9},
                                {"token": 7, "logprob": -3.0},
                            ],
                        }
                    ]
                },
            }
        ]
    }
    parsed = parse_payload(chat, chat=True)
    assert isinstance(parsed, Completion)
    assert parsed.choices[0].top_logprobs == ({"No": -0.2, "Yes": -1.9},)


@pytest.mark.parametrize(
    ("details", "cached"),
    [({"cached_tokens": 1024}, 1024), ({"cached_tokens": 99999}, 0), ({}, 0), (None, 0)],
)
def test_cached_prompt_tokens_are_read_from_usage_details_when_plausible(
    details: Any, cached: int
) -> None:
    usage = {"prompt_tokens": 2000, "completion_tokens": 10, "prompt_tokens_details": details}
    parsed = parse_payload({"choices": [{"text": "x"}], "usage": usage}, chat=False)
    assert isinstance(parsed, Completion)
    assert parsed.usage.cached_prompt_tokens == cached


def test_new_request_options_at_their_defaults_keep_the_ledger_key_of_older_checkpoints() -> None:
    old_style = json.dumps(
        [
            "ns",
            {
                k: v
                for k, v in asdict(REQUEST).items()
                if k not in ("logprobs", "answer_format", "echo")
            },
        ],
        sort_keys=True,
        ensure_ascii=False,
    )
    assert request_key(REQUEST, "ns") == hashlib.sha256(old_style.encode()).hexdigest()
    assert request_key(replace(REQUEST, logprobs=5), "ns") != request_key(REQUEST, "ns")
    assert request_key(replace(REQUEST, echo=True), "ns") != request_key(REQUEST, "ns")


def test_an_answer_format_is_part_of_the_key_only_where_the_backend_applies_it() -> None:
    formatted = replace(REQUEST, answer_format="yes_no")
    assert request_key(formatted, "ns") != request_key(REQUEST, "ns")
    # A backend without grammars answers the same question: checkpoints written before
    # requests named formats keep their answers.
    assert request_key(formatted, "ns", answer_formats=False) == request_key(REQUEST, "ns")


def test_echo_goes_out_on_completions_only() -> None:
    echoed = replace(REQUEST, echo=True, logprobs=1)
    assert request_body(echoed, "m", chat=False)["echo"] is True
    assert "echo" not in request_body(echoed, "m", chat=True)
    assert "echo" not in request_body(REQUEST, "m", chat=False)


def test_echoed_prompt_logprobs_are_read_with_their_text_offsets() -> None:
    logprobs = {
        "tokens": ["List", ":", " apple", "\n"],
        "token_logprobs": [None, -0.5, -2.25, -0.125],
        "text_offset": [0, 4, 5, 11],
        "top_logprobs": [None, {":": -0.5}, {" apple": -2.25}, {"\n": -0.125}],
    }
    choice = {"text": "List: apple\n", "logprobs": logprobs}
    parsed = parse_payload({"choices": [choice]}, chat=False)
    assert isinstance(parsed, Completion)
    assert parsed.choices[0].token_logprobs == ((0, None), (4, -0.5), (5, -2.25), (11, -0.125))


@pytest.mark.parametrize(
    "logprobs",
    [
        {"token_logprobs": [-1.0, -2.0], "text_offset": [0]},  # lengths differ
        {"token_logprobs": [-1.0, "x"], "text_offset": [0, 1]},
        {"token_logprobs": [-1.0], "text_offset": [True]},
        {"token_logprobs": [-1.0]},
        None,
    ],
)
def test_prompt_logprobs_that_do_not_add_up_are_left_out(logprobs: Any) -> None:
    parsed = parse_payload({"choices": [{"text": "x", "logprobs": logprobs}]}, chat=False)
    assert isinstance(parsed, Completion)
    assert parsed.choices[0].token_logprobs == ()
