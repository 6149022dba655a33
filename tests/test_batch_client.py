"""The batch client against the simulator: splitting, pricing, expiry and failed lines.

Each test drives :class:`BatchClient` with a real checkpoint (a run directory in
``tmp_path``) and the simulated provider over loopback, and checks the provider's own
records: what was submitted, how often, and what was answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from selfinstruct_async import counters as names
from selfinstruct_async.checkpoint import batches_table as table
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.client.batch import BatchClient
from selfinstruct_async.client.batch_files import request_fields
from selfinstruct_async.client.pricing import request_cost
from selfinstruct_async.client.protocol import Completion, CompletionRequest
from selfinstruct_async.client.recording import load_completion
from selfinstruct_async.client.usage import UsageMeter
from selfinstruct_async.config import BatchConfig, EndpointConfig
from selfinstruct_async.errors import BudgetExhausted, LLMError, RetriesExhausted
from selfinstruct_async.run.counter_buffer import CounterBuffer
from selfinstruct_async.run.store_calls import StoreCalls
from selfinstruct_async.simulator.batch_api import BATCH
from selfinstruct_async.simulator.server import SimulatorHandle
from tests.fixtures.simulator import MakeSimulator

pytestmark = pytest.mark.anyio

FAST = BatchConfig(poll_seconds=0.02, quiet_seconds=0.05)
PRICED = EndpointConfig(
    model="sim", prompt_price=0.15, cached_prompt_price=0.075, completion_price=0.6
)


def requests(n: int, stage: str = "identify_classification") -> list[CompletionRequest]:
    return [CompletionRequest(stage, f"Task: item number {i}\nIs it?", 5) for i in range(n)]


@asynccontextmanager
async def batch_client(
    handle: SimulatorHandle, run_dir: Path, settings: BatchConfig = FAST
) -> AsyncIterator[tuple[BatchClient, Store, CounterBuffer]]:
    """A client serving in the background, attached to a checkpoint in ``run_dir``."""
    usage = UsageMeter()
    endpoint = replace(PRICED, base_url=handle.base_url)
    client = BatchClient(endpoint, settings, usage, namespace="sim@completions")
    counters = CounterBuffer()
    with Store(run_dir) as store:
        db = StoreCalls(counters)
        await client.recover(store, db, counters)
        async with anyio.create_task_group() as tg:
            await tg.start(client.serve)
            try:
                yield client, store, counters
            finally:
                tg.cancel_scope.cancel()
                await client.aclose()


async def gather(
    complete: Callable[[CompletionRequest], Awaitable[Completion]],
    batch: list[CompletionRequest],
) -> list[Completion | LLMError]:
    results: list[Completion | LLMError] = [LLMError("unset")] * len(batch)

    async def one(i: int) -> None:
        try:
            results[i] = await complete(batch[i])
        except LLMError as error:
            results[i] = error

    with anyio.fail_after(60):  # a hang guard
        async with anyio.create_task_group() as tg:
            for i in range(len(batch)):
                tg.start_soon(one, i)
    return results


def audit(handle: SimulatorHandle) -> dict[str, Any]:
    return handle.app[BATCH].audit()


async def test_requests_waiting_together_go_out_split_at_the_request_limit(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(batch_seconds=0.05)
    asked = requests(10)
    async with batch_client(handle, tmp_path, replace(FAST, max_requests=4)) as (client, store, c):
        results = await gather(client.complete, asked)
        ledger = dict(store.db.execute("SELECT key, completion FROM ledger"))
        batches = store.db.execute("SELECT requests, state FROM batches ORDER BY seq").fetchall()
    assert all(isinstance(r, Completion) for r in results)
    assert batches == [(4, "collected"), (4, "collected"), (2, "collected")]
    seen = audit(handle)
    assert seen["batches"] == 3 and seen["submitted_twice"] == []
    # Every answer is in the ledger under its custom_id before the caller got it.
    assert sorted(ledger) == sorted(seen["answered"]) == sorted(client.key(r) for r in asked)
    for request, result in zip(asked, results, strict=True):
        assert load_completion(ledger[client.key(request)]) == result
    assert c.totals[names.BATCHES_SUBMITTED] == 3
    assert c.totals[names.BATCH_REQUESTS_ANSWERED] == 10


async def test_the_file_size_limit_splits_batches_the_provider_would_refuse(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(batch_seconds=0.0, batch_max_file_bytes=2048)
    settings = replace(FAST, max_file_bytes=2048)
    async with batch_client(handle, tmp_path, settings) as (client, store, _):
        results = await gather(client.complete, requests(30))
        sizes = [row[0] for row in store.db.execute("SELECT bytes FROM batches")]
    assert all(isinstance(r, Completion) for r in results)
    assert len(sizes) > 1 and max(sizes) <= 2048
    assert audit(handle)["uploads"] == len(sizes)


async def test_answers_are_priced_at_the_batch_rate(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(batch_seconds=0.0)
    async with batch_client(handle, tmp_path) as (client, _, _):
        results = await gather(client.complete, requests(6))
        totals = client.usage.totals()
    answers = [r for r in results if isinstance(r, Completion)]
    full = sum(request_cost(client.endpoint, a.usage) for a in answers)
    assert len(answers) == 6 and full > 0
    assert totals.cost_usd == pytest.approx(full * 0.5)
    assert totals.batch_requests == 6
    assert totals.prompt_tokens == sum(a.usage.prompt_tokens for a in answers)


async def test_an_expired_batch_gives_its_answers_and_sends_the_rest_again_once(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(batch_seconds=1.0)
    handle.app[BATCH].windows.append(0.5)  # the first batch expires half done
    asked = requests(20)
    async with batch_client(handle, tmp_path) as (client, _, counters):
        results = await gather(client.complete, asked)
    seen = audit(handle)
    assert seen["statuses"] == {"expired": 1, "completed": 1}
    again = [k for k, n in seen["submitted"].items() if n == 2]
    # Partial results were used: only the never-run requests went out again, once.
    assert 0 < len(again) < 20 and max(seen["submitted"].values()) == 2
    assert seen["answered_twice"] == []
    assert all(isinstance(r, Completion) for r in results)
    assert counters.totals[names.BATCH_RESUBMITTED] == len(again)
    assert counters.totals[names.BATCH_REQUESTS_UNFINISHED] == len(again)
    assert counters.totals[names.batch_status("expired")] == 1


async def test_failed_lines_are_sent_once_more_then_fail_like_exhausted_retries(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(batch_seconds=0.0, batch_error_rate=0.4, seed=5)
    asked = requests(40)
    async with batch_client(handle, tmp_path) as (client, store, counters):
        results = await gather(client.complete, asked)
        outcomes = dict(
            store.db.execute("SELECT key, outcome FROM batch_requests WHERE attempt = 2").fetchall()
        )
    seen = audit(handle)
    by_key = {client.key(r): result for r, result in zip(asked, results, strict=True)}
    failed_twice = [k for k, r in by_key.items() if isinstance(r, RetriesExhausted)]
    assert failed_twice and len(failed_twice) < len(asked)
    for key, result in by_key.items():
        answered = seen["answered"].get(key, 0)
        assert answered == (1 if isinstance(result, Completion) else 0)
        # Sent again only after a failure, and at most once.
        assert seen["submitted"][key] == (2 if key in outcomes else 1)
    assert sorted(failed_twice) == sorted(k for k, o in outcomes.items() if o == table.FAILED)
    assert all("no answer after 2 batches" in str(by_key[k]) for k in failed_twice)
    assert counters.totals[names.BATCH_RESUBMITTED] == len(outcomes)


async def test_a_request_already_in_an_open_batch_waits_for_it_instead_of_going_again(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(batch_seconds=0.2)
    same = requests(1) * 3
    async with batch_client(handle, tmp_path) as (client, _, _):
        results = await gather(client.complete, same)
    assert all(isinstance(r, Completion) for r in results)
    assert audit(handle)["submitted"] == {client.key(same[0]): 1}


async def test_a_resume_sends_once_more_what_an_expired_batch_left_and_replays_generations(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    """The checkpoint as a session killed right after collecting an expired batch left it:
    two requests never run, their resubmission not yet recorded."""
    handle = await make_simulator(batch_seconds=0.0)
    asked = requests(2, stage=names.GENERATE_INSTRUCTIONS) + requests(1)
    probe = BatchClient(PRICED, FAST, UsageMeter(), namespace="sim@completions")
    keys = [probe.key(r) for r in asked]
    with Store(tmp_path) as store:
        rows = [(k, r.stage, request_fields(r), "{}", 1) for k, r in zip(keys, asked, strict=True)]
        table.record_batch(store.db, "old-000001", 1, "/v1/completions", rows, 10)
        outcomes = [(keys[0], table.UNFINISHED, False), (keys[1], table.ANSWERED, False)]
        outcomes.append((keys[2], table.UNFINISHED, False))
        answer = '{"choices": [{"text": "1. Old answer", "finish_reason": "stop"}], "usage": {}}'
        table.collect(
            store.db, "old-000001", "expired", outcomes, [(keys[1], asked[1].stage, answer)]
        )
    async with batch_client(handle, tmp_path) as (client, store, counters):
        replay = client.unclaimed(names.GENERATE_INSTRUCTIONS)
        # The two generation requests nobody took: one answered, one to be sent again.
        assert sorted(client.key(r) for r in replay) == sorted(keys[:2])
        results = await gather(client.complete, [asked[0], asked[2]])
    assert all(isinstance(r, Completion) for r in results)
    # Only the never-run requests went out, each once; the answered one was not bought.
    assert audit(handle)["submitted"] == {keys[0]: 1, keys[2]: 1}
    assert counters.totals[names.BATCH_RESUBMITTED] == 2


async def test_a_cost_budget_stops_requests_before_a_batch_could_overspend_it(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(batch_seconds=0.0)
    async with batch_client(handle, tmp_path) as (client, _, _):
        # Room for one request at the batch rate, not for two waiting together.
        one = requests(1)[0]
        client.usage.set_budget(max_cost=0.6 * 5 / 1e6 * 1.5)
        first = await gather(client.complete, [one])
        client.usage.set_budget(max_cost=client.usage.totals().cost_usd + 1e-12)
        later = await gather(client.complete, requests(3)[1:])
    assert isinstance(first[0], Completion)
    assert all(isinstance(r, BudgetExhausted) for r in later)
    assert audit(handle)["submitted"] == {client.key(one): 1}
