"""The simulator's Batch API over real HTTP: files, the lifecycle, failures, expiry, limits."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anyio
import pytest

from selfinstruct_async.client.batch_files import read_result_lines
from selfinstruct_async.client.batch_http import BatchAPI
from selfinstruct_async.config import EndpointConfig
from selfinstruct_async.errors import PermanentHTTPError
from selfinstruct_async.simulator.batch_api import BATCH
from selfinstruct_async.simulator.server import SimulatorHandle
from tests.fixtures.simulator import MakeSimulator

pytestmark = pytest.mark.anyio

ORDER = ["validating", "in_progress", "finalizing", "completed"]


def lines(n: int, *, url: str = "/v1/completions") -> bytes:
    rows = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": url,
            "body": {"model": "sim", "prompt": f"say {i} things about batches", "max_tokens": 8},
        }
        for i in range(n)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def api_for(handle: SimulatorHandle, **fields: Any) -> BatchAPI:
    return BatchAPI(EndpointConfig(base_url=handle.base_url, model="sim", **fields), None)


async def until_done(api: BatchAPI, batch_id: str) -> tuple[dict[str, Any], list[str]]:
    """Poll as a client must (the API has no push); the statuses seen, in order."""
    seen: list[str] = []
    with anyio.fail_after(30):  # a hang guard, not a synchronisation
        while True:
            batch = await api.retrieve(batch_id)
            if not seen or seen[-1] != batch["status"]:
                seen.append(batch["status"])
            if batch["status"] in ("completed", "failed", "expired", "cancelled"):
                return batch, seen
            await anyio.sleep(0.02)


async def test_a_batch_moves_through_its_statuses_and_answers_every_line(
    make_simulator: MakeSimulator,
) -> None:
    handle = await make_simulator(batch_seconds=0.4)
    api = api_for(handle)
    try:
        uploaded = await api.upload("in.jsonl", lines(12))
        assert uploaded["purpose"] == "batch" and uploaded["bytes"] == len(lines(12))
        created = await api.create(uploaded["id"], "/v1/completions", {"local": "x1"})
        assert created["status"] == "validating"
        assert created["request_counts"] == {"total": 12, "completed": 0, "failed": 0}
        batch, seen = await until_done(api, created["id"])
        output = await api.content(batch["output_file_id"])
    finally:
        await api.aclose()
    # Statuses only move forward, ending in completed.
    assert seen == sorted(seen, key=ORDER.index) and seen[-1] == "completed"
    assert batch["metadata"] == {"local": "x1"}
    assert batch["request_counts"] == {"total": 12, "completed": 12, "failed": 0}
    assert batch["error_file_id"] is None
    results = read_result_lines(output, chat=False, source="output")
    assert sorted(r.custom_id for r in results) == sorted(f"req-{i}" for i in range(12))
    assert all(r.completion is not None for r in results)
    assert handle.app[BATCH].audit()["submitted_twice"] == []


async def test_batch_answers_are_the_streaming_endpoints_answers(
    make_simulator: MakeSimulator,
) -> None:
    handle = await make_simulator(batch_seconds=0.0)
    api = api_for(handle)
    body = {"model": "sim", "prompt": "say 3 things about batches", "max_tokens": 8}
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{handle.base_url}/completions", json=body) as response,
        ):
            streamed = await response.json()
        line = {"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": body}
        uploaded = await api.upload("one.jsonl", (json.dumps(line) + "\n").encode())
        created = await api.create(uploaded["id"], "/v1/completions", {})
        batch, _ = await until_done(api, created["id"])
        output = json.loads(await api.content(batch["output_file_id"]))
    finally:
        await api.aclose()
    answer = output["response"]["body"]
    assert output["custom_id"] == "a" and output["response"]["status_code"] == 200
    assert output["error"] is None
    # Same responder, same token counting: the same text and usage as the streamed answer.
    assert answer["choices"] == streamed["choices"]
    assert answer["usage"] == streamed["usage"]


async def test_failed_lines_go_to_the_error_file_with_their_status(
    make_simulator: MakeSimulator,
) -> None:
    handle = await make_simulator(batch_seconds=0.0, batch_error_rate=0.5, seed=3)
    api = api_for(handle)
    try:
        uploaded = await api.upload("in.jsonl", lines(40))
        created = await api.create(uploaded["id"], "/v1/completions", {})
        batch, _ = await until_done(api, created["id"])
        output = await api.content(batch["output_file_id"])
        errors = await api.content(batch["error_file_id"])
    finally:
        await api.aclose()
    answered = read_result_lines(output, chat=False, source="output")
    failed = read_result_lines(errors, chat=False, source="error")
    counts = batch["request_counts"]
    assert batch["status"] == "completed"
    assert counts["failed"] == len(failed) > 0 and counts["completed"] == len(answered) > 0
    assert len(answered) + len(failed) == 40
    assert all(r.completion is None and "status 500" in r.problem for r in failed)
    assert not any(r.not_run for r in failed)


async def test_an_unfinished_batch_expires_with_partial_results(
    make_simulator: MakeSimulator,
) -> None:
    handle = await make_simulator(batch_seconds=1.0, batch_window=0.5)
    api = api_for(handle)
    try:
        uploaded = await api.upload("in.jsonl", lines(20))
        created = await api.create(uploaded["id"], "/v1/completions", {})
        batch, seen = await until_done(api, created["id"])
        output = await api.content(batch["output_file_id"])
        errors = await api.content(batch["error_file_id"])
    finally:
        await api.aclose()
    assert seen[-1] == "expired"
    answered = read_result_lines(output, chat=False, source="output")
    never_run = read_result_lines(errors, chat=False, source="error")
    # Half the working time had passed at the window's end: about half were answered.
    assert 0 < len(answered) < 20 and len(answered) + len(never_run) == 20
    assert all(r.not_run and "not run" in r.problem for r in never_run)


async def test_a_cancelled_batch_keeps_what_was_answered(make_simulator: MakeSimulator) -> None:
    handle = await make_simulator(batch_seconds=1.0)
    api = api_for(handle)
    try:
        uploaded = await api.upload("in.jsonl", lines(10))
        created = await api.create(uploaded["id"], "/v1/completions", {})
        cancelling = await api.cancel(created["id"])
        batch, seen = await until_done(api, created["id"])
        errors = await api.content(batch["error_file_id"])
        with pytest.raises(PermanentHTTPError) as refused:
            await api.cancel(created["id"])
    finally:
        await api.aclose()
    assert cancelling["status"] == "cancelling" and seen[-1] == "cancelled"
    assert batch["output_file_id"] is None  # cancelled while validating: nothing was run
    assert len(read_result_lines(errors, chat=False, source="error")) == 10
    assert refused.value.status == 400


async def test_the_request_and_file_size_limits_refuse_with_openai_errors(
    make_simulator: MakeSimulator,
) -> None:
    handle = await make_simulator(batch_max_requests=5, batch_max_file_bytes=1500)
    api = api_for(handle)
    try:
        with pytest.raises(PermanentHTTPError) as too_large:
            await api.upload("big.jsonl", lines(20))
        uploaded = await api.upload("six.jsonl", lines(6))
        with pytest.raises(PermanentHTTPError) as too_many:
            await api.create(uploaded["id"], "/v1/completions", {})
    finally:
        await api.aclose()
    assert too_large.value.status == 400 and "file_too_large" in too_large.value.body
    assert too_many.value.status == 400
    assert "too_many_requests_in_batch" in too_many.value.body
    assert "limit is 5" in too_many.value.body
    assert handle.app[BATCH].audit()["batches"] == 0


async def test_invalid_lines_fail_the_batch_at_validation(make_simulator: MakeSimulator) -> None:
    handle = await make_simulator(batch_seconds=0.0)
    api = api_for(handle)
    try:
        uploaded = await api.upload("chat.jsonl", lines(3, url="/v1/chat/completions"))
        created = await api.create(uploaded["id"], "/v1/completions", {})
    finally:
        await api.aclose()
    assert created["status"] == "failed"
    assert "line 1" in created["errors"]["data"][0]["message"]


async def test_files_and_batches_are_listed_across_pages(make_simulator: MakeSimulator) -> None:
    handle = await make_simulator(batch_seconds=0.0)
    api = api_for(handle)
    try:
        for i in range(3):
            uploaded = await api.upload(f"in-{i}.jsonl", lines(1))
            await api.create(uploaded["id"], "/v1/completions", {"n": str(i)})
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{handle.base_url}/batches", params={"limit": "1"}) as r,
        ):
            first_page = await r.json()
        batches = [b async for b in api.batches()]
        files = [f["filename"] async for f in api.files()]
    finally:
        await api.aclose()
    assert first_page["has_more"] is True and len(first_page["data"]) == 1
    assert sorted(b["metadata"]["n"] for b in batches) == ["0", "1", "2"]
    assert sorted(files) == ["in-0.jsonl", "in-1.jsonl", "in-2.jsonl"]


async def test_a_key_is_required_when_the_simulator_has_one(make_simulator: MakeSimulator) -> None:
    handle = await make_simulator(api_key="sk-secret")
    anonymous = api_for(handle)
    keyed = BatchAPI(EndpointConfig(base_url=handle.base_url, model="sim"), "sk-secret")
    try:
        with pytest.raises(PermanentHTTPError) as refused:
            await anonymous.upload("in.jsonl", lines(1))
        uploaded = await keyed.upload("in.jsonl", lines(1))
    finally:
        await anonymous.aclose()
        await keyed.aclose()
    assert refused.value.status == 401 and "sk-secret" not in str(refused.value)
    assert uploaded["filename"] == "in.jsonl"


def test_the_simulator_command_line_sets_the_batch_api_options() -> None:
    from selfinstruct_async.simulator.__main__ import _parser, settings_from_args

    args = _parser().parse_args(
        [
            "--batch-seconds", "0.3", "--batch-window", "0.2", "--batch-error-rate", "0.1",
            "--batch-max-requests", "10", "--batch-max-file-bytes", "4096",
        ]
    )  # fmt: skip
    settings = settings_from_args(args)
    assert (settings.batch_seconds, settings.batch_window, settings.batch_error_rate) == (
        0.3,
        0.2,
        0.1,
    )
    assert (settings.batch_max_requests, settings.batch_max_file_bytes) == (10, 4096)
    with pytest.raises(ValueError, match="batch_error_rate"):
        settings_from_args(_parser().parse_args(["--batch-error-rate", "2"]))
