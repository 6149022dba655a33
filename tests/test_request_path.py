"""The request path's shortcuts give exactly what the plain code gave (issue 15, item 1).

Per request the client writes a ledger key's JSON and an HTTP body from cached frames
around the prompt, writes the stored completion without building dicts for ``json.dumps``,
and decodes the answer with orjson when it is installed. Keys and stored completions must
stay byte-identical, or the ledger of older checkpoints stops matching; decoded answers must
be what ``json.loads`` gives, errors included. Each test spells out the plain code.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Literal

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from selfinstruct_async.answer_formats import constraint_fields
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.client import fast_json, request_json
from selfinstruct_async.client.endpoint import Endpoint
from selfinstruct_async.client.http import HTTPClient
from selfinstruct_async.client.openai_format import parse_completion, request_body
from selfinstruct_async.client.pacing import Pacer
from selfinstruct_async.client.prompt_json import PromptEncoder
from selfinstruct_async.client.protocol import Choice, Completion, CompletionRequest, Usage
from selfinstruct_async.client.recording import LedgerClient, dump_completion, request_key
from selfinstruct_async.client.transport import (
    AiohttpTransport,
    MockTransport,
    TransportRequest,
    TransportResponse,
)
from selfinstruct_async.client.usage import UsageMeter
from selfinstruct_async.config import EndpointConfig
from selfinstruct_async.errors import LLMError
from selfinstruct_async.testing import ManualClock
from tests.fixtures.loopback import serving_completions

# What JSON escapes: quotes, backslashes, control characters, non-ASCII, emoji, U+2028.
TEXT = st.lists(
    st.sampled_from([*'ab \n\t"\\/\x00\x1fé✓😀\u2028', "Task: ", "Yes\n"]), max_size=12
).map("".join)
PREFIX = 'Shared demonstrations: "quoted", é and 😀.\n' * 20  # a learnt prefix

# Values that are equal in Python and written differently in JSON: the frames must not mix
# them up (1 == 1.0 == True, 0.0 == -0.0).
NUMBERS = st.sampled_from([0, 0.0, -0.0, 1, 1.0, True, False, 0.5, 2.0, -0.25])
STOPS = st.lists(st.sampled_from(["\n\n", "\n16.", "Task:", "é"]), max_size=3).map(tuple)


@st.composite
def requests(draw: st.DrawFn) -> CompletionRequest:
    prompt = draw(st.sampled_from(["", PREFIX])) + draw(TEXT)
    return CompletionRequest(
        stage=draw(st.sampled_from(["generate_instances", "identify_classification"])),
        prompt=prompt,
        max_tokens=draw(st.sampled_from([3, 350, True])),
        system=draw(st.sampled_from(["", "Answer in the same format.", "é"])),
        temperature=draw(NUMBERS),
        top_p=draw(NUMBERS),
        presence_penalty=draw(NUMBERS),
        frequency_penalty=draw(NUMBERS),
        stop=draw(STOPS),
        chat_stop=draw(st.none() | STOPS),
        n=draw(st.sampled_from([1, 2])),
        logprobs=draw(st.sampled_from([0, 5])),
        answer_format=draw(st.sampled_from(["", "yes_no", "instances_input_first"])),
        echo=draw(st.booleans()),
    )


def _plain_key(request: CompletionRequest, namespace: str, answer_formats: bool = True) -> str:
    fields = {name: getattr(request, name) for name in request.__slots__}
    for name, default in (("logprobs", 0), ("answer_format", ""), ("echo", False)):
        if fields[name] == default and type(fields[name]) is type(default):
            del fields[name]
    if not answer_formats:
        fields.pop("answer_format", None)
    text = json.dumps([namespace, fields], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@settings(max_examples=200, deadline=None)
@given(st.lists(requests(), min_size=1, max_size=8), st.sampled_from(["", "completions:m"]))
def test_ledger_keys_from_frames_are_the_plain_keys(
    batch: list[CompletionRequest], namespace: str
) -> None:
    # Twice over: the second round takes every frame and prompt prefix from the cache.
    for request in batch + batch:
        assert request_key(request, namespace) == _plain_key(request, namespace)
        assert request_key(request, namespace, answer_formats=False) == _plain_key(
            request, namespace, answer_formats=False
        )


def test_requests_equal_in_python_but_not_in_json_get_their_own_keys() -> None:
    base = CompletionRequest("identify_classification", PREFIX + "Task: x", 3, temperature=0.0)
    twins = [
        base,
        replace(base, temperature=-0.0),
        replace(base, temperature=0),
        replace(base, temperature=False),
        replace(base, max_tokens=True, n=True),
    ]
    for request in twins + twins:
        assert request_key(request, "ns") == _plain_key(request, "ns")
    assert len({request_key(r, "ns") for r in twins}) == len(twins)


def test_fields_of_an_unexpected_kind_are_keyed_the_plain_way() -> None:
    # A list where a tuple belongs cannot be a frame's key; a text temperature has no sign.
    odd = [
        CompletionRequest("s", PREFIX + "a", 3, stop=["\n"]),  # type: ignore[arg-type]
        CompletionRequest("s", PREFIX + "b", 3, temperature="hot"),  # type: ignore[arg-type]
        CompletionRequest("s", PREFIX + "c", 3, top_p=10**400),
    ]
    for request in odd:
        assert request_json.shape(request) is None or isinstance(request.stop, list)
        assert request_key(request, "ns") == _plain_key(request, "ns")


def test_a_frame_is_never_cut_where_another_field_holds_the_placeholder_text() -> None:
    frames = request_json.Frames(PromptEncoder(ensure_ascii=True))

    def sneaky(prompt: str) -> dict[str, Any]:
        return {"stop": ["\x00selfinstruct-prompt\x00"], "prompt": prompt}

    for tail in ("a", "b", "a"):
        assert frames.dumps("k", sneaky, PREFIX + tail) == json.dumps(sneaky(PREFIX + tail))


def test_a_field_that_is_the_prompt_itself_stays_where_it_is() -> None:
    # "" is one object in CPython: a namespace "" and a prompt "" are the same string.
    frames = request_json.Frames(PromptEncoder(ensure_ascii=False), ensure_ascii=False)
    for prompt in ("", PREFIX, "other", ""):
        text = frames.dumps("k", lambda p: ["", {"prompt": p}], prompt)
        assert text == json.dumps(["", {"prompt": prompt}], ensure_ascii=False)


def test_frames_keep_a_bounded_number_of_shapes() -> None:
    frames = request_json.Frames(PromptEncoder(ensure_ascii=True), keep=4)
    for i in range(10):

        def build(prompt: str, i: int = i) -> dict[str, Any]:
            return {"n": i, "prompt": prompt}

        assert frames.dumps(("n", i), build, f"p{i}") == json.dumps(build(f"p{i}"))
    assert len(frames._frames) <= 4


@pytest.mark.anyio
@pytest.mark.parametrize("chat", [False, True])
@pytest.mark.parametrize("constrained", ["off", "llama.cpp"])
async def test_http_bodies_from_frames_are_the_json_dumps_of_the_body(
    chat: bool, constrained: Literal["off", "llama.cpp"]
) -> None:
    sent: list[TransportRequest] = []

    def handler(request: TransportRequest) -> TransportResponse:
        sent.append(request)
        choice = {"message": {"content": "Yes"}} if chat else {"text": "Yes"}
        return TransportResponse.from_json(200, {"choices": [choice]})

    config = EndpointConfig(
        base_url="http://ep.test/v1",
        model="m",
        api="chat" if chat else "completions",
        constrained_decoding=constrained,
    )
    clock = ManualClock()
    endpoint = Endpoint(config, MockTransport(handler), Pacer(concurrency=4, clock=clock), None)
    client = HTTPClient([endpoint], UsageMeter(), clock=clock)
    base = CompletionRequest("generate_instances", PREFIX + "Task: é", 350, answer_format="")
    batch = [
        base,
        replace(base, prompt=PREFIX + 'Task: "other" 😀', temperature=-0.0),
        replace(base, prompt=PREFIX + "Task: third", temperature=0),
        replace(base, prompt="short", answer_format="yes_no", system="Be brief."),
        replace(base, prompt=PREFIX + "Task: fourth", answer_format="yes_no", stop=("\n",)),
    ]
    for request in batch + batch:
        await client.complete(request)
    for request, wire in zip(batch + batch, sent, strict=True):
        payload = request_body(request, "m", chat=chat)
        payload |= constraint_fields(request.answer_format, constrained)
        assert wire.body == json.dumps(payload).encode()


def _plain_completion_json(completion: Completion) -> str:
    body = asdict(completion)
    del body["replayed"]
    return json.dumps(body, ensure_ascii=False)


COUNTS = st.integers(min_value=0, max_value=10**20) | st.sampled_from([True, False])


@st.composite
def completions(draw: st.DrawFn) -> Completion:
    def choice() -> Choice:
        tops = draw(st.sampled_from([(), ({"Yes": -0.1, "é": -2.5},)]))
        offsets = draw(st.sampled_from([(), ((0, None), (3, -1.25))]))
        finish = draw(st.none() | st.sampled_from(["stop", "length", "é\n"]))
        return Choice(draw(TEXT), finish, tops, offsets)

    usage = Usage(draw(COUNTS), draw(COUNTS), draw(COUNTS))
    choices = tuple(choice() for _ in range(draw(st.integers(0, 3))))
    return Completion(choices, usage, draw(TEXT), replayed=draw(st.booleans()))


@settings(max_examples=200, deadline=None)
@given(completions())
def test_stored_completions_are_the_plain_json_byte_for_byte(completion: Completion) -> None:
    assert dump_completion(completion) == _plain_completion_json(completion)


@pytest.mark.anyio
async def test_a_ledger_written_by_the_plain_code_answers_the_new_code(tmp_path: Path) -> None:
    """An older checkpoint's ledger (plain keys, plain JSON) replays, nothing is bought."""
    batch = [
        CompletionRequest("identify_classification", PREFIX + f"Task: {i} é", 3, stop=("\n",))
        for i in range(4)
    ]
    answers = [Completion((Choice(f"Yes {i} 😀", "stop"),), Usage(700, 1), "m") for i in range(4)]
    with Store(tmp_path / "run") as store:
        for request, answer in zip(batch, answers, strict=True):
            key = _plain_key(request, "completions:m")
            store.ledger_put(key, request.stage, _plain_completion_json(answer))

    class Unreachable:
        async def complete(self, request: CompletionRequest) -> Completion:
            raise LLMError("bought again: the ledger did not match")

        async def aclose(self) -> None:
            pass

    async def inline(fn: Any, *args: Any) -> Any:
        return fn(*args)

    counted: list[str] = []
    with Store(tmp_path / "run") as store:
        ledger = LedgerClient(Unreachable(), store, inline, counted.append, "completions:m")
        for request, answer in zip(batch, answers, strict=True):
            assert await ledger.complete(request) == replace(answer, replayed=True)
    assert len(counted) == len(batch)


BODIES = [
    b'{"choices": [{"text": "Yes", "finish_reason": "stop"}], "usage": {"prompt_tokens": 5}}',
    b'{"a": 1, "a": 2}',
    b"NaN",
    b"[Infinity, -Infinity]",
    b"[1e999]",
    b"123456789012345678901234567890",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"9223372036854775807",
    b'{"usage": {"prompt_tokens": 99999999999999999999}}',
    b"[0.1000000000000000055511151231257827, 5e-324, -0.0, -0]",
    b'"\\ud800"',
    b'"\\ud83d\\ude00 \xc3\xa9"',
    b"\xef\xbb\xbf{}",
    '{"é": 1}'.encode("utf-16"),
    b'"\xff"',
    b'"a\x01b"',
    b"[1,]",
    b"",
    b"   ",
    b"{} extra",
    b"[" * 5000 + b"]" * 5000,
]


def _outcome(body: bytes) -> tuple[str, Any]:
    try:
        value = json.loads(body) if fast_json.orjson is None else fast_json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return "error", (type(exc), str(exc))
    return "value", _typed(value)


def _typed(value: Any) -> Any:
    """``value`` with the type of every member, so 1 and 1.0 (and NaN and NaN) tell apart.

    Without recursion: Python 3.13's ``json.loads`` reads nestings deeper than the
    interpreter's recursion limit.
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        item, parent, key = stack.pop()
        if isinstance(item, dict):
            members: dict[str, Any] = {}
            parent[key] = members
            stack.extend((v, members, k) for k, v in item.items())
        elif isinstance(item, list):
            elements: list[Any] = [None] * len(item)
            parent[key] = elements
            stack.extend((v, elements, i) for i, v in enumerate(item))
        elif isinstance(item, float):
            parent[key] = (float, repr(item), math.copysign(1.0, item))
        else:
            parent[key] = (type(item), item)
    return root[0]


@pytest.fixture
def without_orjson(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(fast_json, "orjson", None)
    yield


@pytest.mark.parametrize("body", BODIES)
def test_answers_decode_as_json_loads_decodes_them_errors_included(body: bytes) -> None:
    expected: tuple[str, Any]
    try:
        expected = ("value", _typed(json.loads(body)))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        expected = ("error", (type(exc), str(exc)))
    assert _outcome(body) == expected


@pytest.mark.parametrize("body", BODIES)
def test_without_orjson_answers_decode_with_json_loads(without_orjson: None, body: bytes) -> None:
    try:
        expected: Any = _typed(json.loads(body))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        with pytest.raises(type(exc)):
            fast_json.loads(body)
    else:
        assert _typed(fast_json.loads(body)) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**25), max_value=10**25)
        | st.floats(allow_nan=False, allow_infinity=False)
        | TEXT,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
        max_leaves=12,
    )
)
def test_any_json_value_decodes_to_what_json_loads_gives(value: Any) -> None:
    body = json.dumps(value, ensure_ascii=False).encode()
    assert _typed(fast_json.loads(body)) == _typed(json.loads(body))


def test_a_completion_parses_the_same_with_and_without_orjson(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = json.dumps(
        {
            "model": "m",
            "choices": [
                {"index": 1, "text": "second é", "finish_reason": "length", "logprobs": None},
                {"index": 0, "text": "first", "finish_reason": "stop"},
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3},
        }
    ).encode()
    fast = parse_completion(body, chat=False)
    monkeypatch.setattr(fast_json, "orjson", None)
    assert parse_completion(body, chat=False) == fast
    assert isinstance(fast, Completion) and [c.text for c in fast.choices] == ["first", "second é"]


@pytest.mark.anyio
async def test_a_providers_cookies_are_neither_kept_nor_sent_back() -> None:
    seen: list[str | None] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Cookie"))
        response = web.json_response({"choices": [{"text": "Yes", "finish_reason": "stop"}]})
        response.set_cookie("__cf_bm", "tracking", path="/")
        return response

    async with serving_completions(handle) as base_url:
        # By name: aiohttp's default jar keeps no cookies of a bare IP address anyway.
        base_url = base_url.replace("127.0.0.1", "localhost")
        transport = AiohttpTransport(limit=2)
        try:
            for _ in range(3):
                body = json.dumps({"model": "m", "prompt": "p"}).encode()
                response = await transport.send(
                    TransportRequest(f"{base_url}/completions", body, {}, 5.0, 1 << 20)
                )
                assert response.status == 200 and "set-cookie" in response.headers
        finally:
            await transport.aclose()
    assert seen == [None, None, None]


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=3), st.booleans())
def test_a_prompt_split_at_its_learnt_prefix_joins_to_its_json(
    tails: list[str], ascii_only: bool
) -> None:
    encoder = PromptEncoder(ensure_ascii=ascii_only, min_prefix=16)
    rounds = []
    for _ in range(4):  # the first two learn the shared prefix, the last two use it
        heads = []
        for tail in tails:
            text = PREFIX + tail
            head, rest = encoder.split(text)
            assert head + rest == json.dumps(text, ensure_ascii=ascii_only)
            heads.append(head)
        rounds.append(heads)
    # A learnt prefix is one escaped object, shared by every prompt it starts.
    assert all(len(head) > len(PREFIX) for head in rounds[2])
    assert all(a is b for a, b in zip(rounds[2], rounds[3], strict=True))
