"""A request that fails decides nothing: its task stays pending, is retried, and resumes.

Issue 18, item 1. Every test is a whole run over real HTTP on loopback: the simulated
provider with a 5xx storm, or a small scripted provider of our own (the simulator's
model-like answers, failing exactly when the script says) whose log of what it answered
is compared with what the checkpoint decided.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from selfinstruct_async import counters as names
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.config import Config, load_config
from selfinstruct_async.errors import (
    BudgetExhausted,
    LLMError,
    PermanentHTTPError,
    RetriesExhausted,
    SelfInstructError,
)
from selfinstruct_async.parsing import parse_classification
from selfinstruct_async.prompts import DEFAULT_TEMPLATES as T
from selfinstruct_async.run.failures import PER_REQUEST_STATUSES, FailurePolicy
from selfinstruct_async.run.pool import Pool
from selfinstruct_async.run.runner import RunSummary, run
from selfinstruct_async.simulator.responder import respond
from selfinstruct_async.simulator.server import SimulatorHandle
from selfinstruct_async.stages.generate_instances import STAGE as INSTANCES
from selfinstruct_async.stages.generate_instructions import STAGE as GENERATE
from selfinstruct_async.stages.identify_classification import STAGE as CLASSIFY
from tests.fixtures.loopback import serving_completions
from tests.fixtures.simulator import MakeSimulator

pytestmark = pytest.mark.anyio

# (stage, prompt, how many times this prompt was asked before) -> a status to fail with.
Script = Callable[[str, str, int], int | None]


def stage_of(prompt: str) -> str:
    if T.classification_header in prompt:
        return CLASSIFY
    if T.instance_input_first_header in prompt or T.instance_output_first_header in prompt:
        return INSTANCES
    return GENERATE


def task_of(prompt: str) -> str:
    """The instruction a classification or instance prompt asks about (its last task)."""
    marker = f"{T.task_label}: "
    return prompt[prompt.rfind(marker) + len(marker) :].split("\n", 1)[0].strip()


@dataclass(frozen=True)
class Exchange:
    stage: str
    task: str
    status: int
    text: str | None = None


@dataclass
class ScriptedProvider:
    """``/v1/completions`` answering like the simulator, except when ``script`` says fail.

    ``null_text`` answers every request with ``"text": null`` instead.
    """

    script: Script = lambda stage, prompt, seen: None
    null_text: bool = False
    exchanges: list[Exchange] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)

    def answered(self, stage: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.stage == stage and e.status == 200]

    def failed(self, stage: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.stage == stage and e.status != 200]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        prompt, stage = body["prompt"], stage_of(body["prompt"])
        seen = self.seen[prompt]
        self.seen[prompt] += 1
        status = self.script(stage, prompt, seen)
        if status is not None:
            self.exchanges.append(Exchange(stage, task_of(prompt), status))
            error = {"message": f"scripted failure {status}", "type": "server_error"}
            return web.json_response({"error": error}, status=status)
        text: str | None = None
        finish = "stop"
        if not self.null_text:
            text, finish = respond(prompt, "", chat=False, max_tokens=body["max_tokens"])
        self.exchanges.append(Exchange(stage, task_of(prompt), 200, text))
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        return web.json_response(
            {"id": "cmpl-1", "object": "text_completion", "model": "scripted", "choices": [choice]}
        )


@asynccontextmanager
async def serving(provider: ScriptedProvider) -> AsyncIterator[str]:
    """Serve ``provider`` on a free loopback port; yield its base URL."""
    async with serving_completions(provider.handle) as url:
        yield url


def one_attempt_config(base_url: str, out: Path, target: int, **run_fields: Any) -> Config:
    """One attempt per request, so that every scripted failure is a failed request."""
    return load_config(
        overrides={
            "run": {"out": str(out), "target": target, "retry_failed_after": 0, **run_fields},
            "endpoint": {"base_url": base_url, "model": "sim", "max_attempts": 1},
        }
    )


def task_rows(out: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{out / 'checkpoint.sqlite'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT id, instruction, status, is_classification FROM instructions")
        return [dict(row) for row in rows]


def task_rejections(out: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{out / 'checkpoint.sqlite'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT filter, reason, text FROM rejections WHERE level = 'task'")
        return [dict(row) for row in rows]


async def test_a_5xx_storm_with_one_attempt_decides_nothing_and_still_reaches_the_target(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle: SimulatorHandle = await make_simulator(responder=None, fault_5xx=0.3, seed=18)
    out = tmp_path / "run"
    summary = await run(one_attempt_config(handle.base_url, out, target=20))

    assert summary.reached_target and summary.accepted == 20
    with Store(out, read_only=True) as store:
        counters = store.counters()
    config = one_attempt_config(handle.base_url, out, target=20)
    in_flight = config.classification.workers  # requests abandoned once the target is met
    failed = {s: counters.get(names.failed(s), 0) for s in (CLASSIFY, INSTANCES, GENERATE)}
    # Every 5xx the server sent is one failed request (one attempt each), bar those whose
    # answer was still on its way when the run stopped.
    server_errors = sum(n for status, n in handle.stats.by_status.items() if status >= 500)
    assert 0 <= server_errors - sum(failed.values()) <= 3 * in_flight
    assert failed[CLASSIFY] > 0 and failed[INSTANCES] > 0
    # A failed request left its task pending for another try instead of deciding it.
    for stage in (CLASSIFY, INSTANCES):
        assert counters.get(names.deferred(stage), 0) == failed[stage]
    # Labels only come from answers: yes + no + unreadable <= classification answers.
    answered = counters[names.requests(CLASSIFY)] - failed[CLASSIFY]
    labels = counters.get(names.classification(True), 0)
    labels += counters.get(names.classification(False), 0)
    decided = labels + counters.get(names.classification(None), 0)
    assert answered - in_flight <= decided <= answered
    # "No instance could be parsed" only ever follows an answer that had none in it.
    unparsed = [
        r for r in task_rejections(out) if r["reason"].startswith("no instance could be parsed")
    ]
    assert len(unparsed) <= counters.get(names.useless(INSTANCES), 0)


async def test_each_label_comes_from_an_answer_when_every_first_attempt_fails(
    tmp_path: Path,
) -> None:
    def first_attempt_fails(stage: str, prompt: str, seen: int) -> int | None:
        return 503 if stage != GENERATE and seen == 0 else None

    provider = ScriptedProvider(first_attempt_fails)
    out = tmp_path / "run"
    async with serving(provider) as base_url:
        summary = await run(one_attempt_config(base_url, out, target=12))

    assert summary.reached_target
    answers: dict[str, str] = {e.task: e.text or "" for e in provider.answered(CLASSIFY)}
    labelled = [row for row in task_rows(out) if row["is_classification"] is not None]
    assert len(labelled) >= 12
    for row in labelled:
        # The label is the one the model gave, never one made up for the failed attempt.
        assert parse_classification(answers[row["instruction"]]) == bool(row["is_classification"])
    instance_answers = {e.task for e in provider.answered(INSTANCES)}
    for rejection in task_rejections(out):
        if rejection["filter"] == "no_valid_instances":
            assert rejection["text"] in instance_answers, rejection
    with Store(out, read_only=True) as store:
        counters = store.counters()
    for stage in (CLASSIFY, INSTANCES):
        failures = len(provider.failed(stage))  # bar a few in flight when the run stopped
        failed = counters[names.failed(stage)]
        assert failed == counters[names.deferred(stage)] > 0
        assert failed <= failures <= failed + 8


async def test_a_run_stopped_by_an_outage_keeps_its_tasks_pending_and_a_resume_finishes_them(
    tmp_path: Path,
) -> None:
    outage = True

    def classification_down(stage: str, prompt: str, seen: int) -> int | None:
        return 503 if outage and stage == CLASSIFY else None

    provider = ScriptedProvider(classification_down)
    out = tmp_path / "run"
    async with serving(provider) as base_url:
        config = one_attempt_config(base_url, out, target=8)
        with pytest.raises(BaseException) as raised:
            await run(config)
        error = find_error(raised.value)
        assert isinstance(error, LLMError) and "requests failed in a row" in str(error)

        stopped = task_rows(out)
        assert stopped and {row["status"] for row in stopped} == {"pending"}
        assert all(row["is_classification"] is None for row in stopped)
        assert task_rejections(out) == []
        with Store(out, read_only=True) as store:
            counters = store.counters()
        assert names.classification(False) not in counters
        assert names.classification(True) not in counters
        # A failed classification defers its task (bar the one that stopped the run); a
        # task still queued for classification when the run stopped was never asked, and
        # stays pending all the same.
        failed = counters[names.failed(CLASSIFY)]
        assert 0 < failed - 1 <= counters[names.deferred(CLASSIFY)] <= failed
        assert failed <= len(provider.failed(CLASSIFY))

        outage = False
        before = len(provider.exchanges)
        summary: RunSummary = await run(config)

    assert summary.reached_target
    asked = {e.task for e in provider.exchanges[before:] if e.stage == CLASSIFY}
    assert {row["instruction"] for row in stopped} <= asked
    now = {row["id"]: row for row in task_rows(out)}
    for row in stopped:
        resumed = now[row["id"]]
        assert resumed["is_classification"] is not None or resumed["status"] != "pending"


async def test_a_prompt_the_endpoint_refuses_rejects_its_task_as_permanent(
    tmp_path: Path,
) -> None:
    refused: list[str] = []

    def refuse_two_instance_prompts(stage: str, prompt: str, seen: int) -> int | None:
        if stage == INSTANCES and (prompt in refused or len(refused) < 2):
            if prompt not in refused:
                refused.append(prompt)
            return 400
        return None

    provider = ScriptedProvider(refuse_two_instance_prompts)
    out = tmp_path / "run"
    async with serving(provider) as base_url:
        summary = await run(one_attempt_config(base_url, out, target=8))

    assert summary.reached_target
    rejections = [r for r in task_rejections(out) if r["filter"] == "request_refused"]
    assert sorted(r["text"] for r in rejections) == sorted(task_of(p) for p in refused)
    for rejection in rejections:
        assert rejection["reason"].startswith(
            f"permanent: the endpoint refused the {INSTANCES} request (HTTP 400"
        )
    # Refused once, never sent again: a prompt that cannot be served is not retried.
    assert len(provider.failed(INSTANCES)) == 2


def test_generators_pause_while_too_many_tasks_wait_for_another_try() -> None:
    pool = Pool([], [], target=0, max_deferred=2)
    assert pool.wants_more()
    pool.defer()
    pool.defer()
    assert not pool.wants_more()
    pool.undefer()
    assert pool.wants_more()


def test_failure_policy_survives_refused_prompts_and_ends_the_run_after_the_limit_in_a_row() -> (
    None
):
    policy = FailurePolicy(limit=3)
    for status in PER_REQUEST_STATUSES:
        assert policy.survivable(PermanentHTTPError(status, "prompt too long"))
    assert not policy.survivable(PermanentHTTPError(401, "bad key"))
    assert not policy.survivable(BudgetExhausted("budget spent"))
    transient = policy.failed(CLASSIFY, RetriesExhausted("5 attempts"))
    refused = policy.failed(INSTANCES, PermanentHTTPError(413, "too long"))
    assert (transient.permanent, refused.permanent) == (False, True)
    policy.succeeded()  # an answer in between: the count starts again
    policy.failed(CLASSIFY, RetriesExhausted("5 attempts"))
    policy.failed(CLASSIFY, RetriesExhausted("5 attempts"))
    with pytest.raises(LLMError, match=r"^3 requests failed in a row; last: HTTP 422"):
        policy.failed(CLASSIFY, PermanentHTTPError(422, "invalid"))


def find_error(raised: BaseException) -> SelfInstructError | None:
    """Our own error inside (possibly nested) task-group exception groups."""
    if isinstance(raised, SelfInstructError):
        return raised
    if isinstance(raised, BaseExceptionGroup):
        for inner in raised.exceptions:
            found = find_error(inner)
            if found is not None:
                return found
    return None


async def test_scripted_provider_answers_like_the_simulator(tmp_path: Path) -> None:
    """The helper itself: a plain run against it reaches its target with no failure."""
    provider = ScriptedProvider()
    async with serving(provider) as base_url:
        summary = await run(one_attempt_config(base_url, tmp_path / "run", target=3))
    assert summary.reached_target
    assert all(e.status == 200 for e in provider.exchanges)
