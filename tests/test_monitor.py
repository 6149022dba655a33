"""The monitor over real loopback HTTP: health, status figures, Prometheus metrics, cleanup."""

from __future__ import annotations

import copy
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import aiohttp
import anyio
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from selfinstruct_async import counters as names
from selfinstruct_async.errors import ConfigError
from selfinstruct_async.observe.monitor import RateHistory, Sample, serve_monitor, summarize

pytestmark = pytest.mark.anyio

STARTED = 1_000_000.0


def snapshot(**changes: Any) -> dict[str, Any]:
    """A status snapshot shaped like ``RunContext.status()``."""
    status: dict[str, Any] = {
        "run_dir": "runs/x",
        "started": STARTED,
        "target": 100,
        "accepted": 40,
        "pending": 7,
        "undecided": 12,
        "generating": 2,
        "in_flight": 5,
        "stopping": False,
        "queues": {"candidates": 3, "pending": 1, "labelled": 0, "generated": 4},
        "counters": {
            names.requests(names.GENERATE_INSTRUCTIONS): 20,
            names.requests(names.IDENTIFY_CLASSIFICATION): 50,
            names.requests(names.GENERATE_INSTANCES): 45,
            names.failed(names.GENERATE_INSTANCES): 1,
            names.INSTRUCTIONS_GENERATED: 200,
            names.INSTRUCTIONS_ACCEPTED: 60,
            names.rejected("instruction", "rouge_similarity"): 90,
            names.rejected("instruction", "blacklist"): 30,
            names.rejected("instruction", "word_count"): 20,
            names.classification(True): 20,
            names.classification(False): 38,
            names.INSTANCES_GENERATED: 170,
            names.INSTANCES_ACCEPTED: 150,
            names.rejected("instance", "empty_output"): 20,
            names.TASKS_ACCEPTED: 40,
            names.rejected("task", "no_valid_instances"): 4,
        },
        "usage": {
            "version": 1,
            "stages": {
                "generate_instructions": {
                    "prompt_tokens": 6000,
                    "completion_tokens": 4000,
                    "requests": 20,
                    "retries": 2,
                    "rate_limited": 1,
                    "failures": 0,
                    "cost_usd": 0.5,
                },
                "generate_instances": {
                    "prompt_tokens": 3000,
                    "cached_prompt_tokens": 1024,
                    "completion_tokens": 1000,
                    "requests": 45,
                    "retries": 0,
                    "rate_limited": 0,
                    "failures": 1,
                    "cost_usd": 0.25,
                },
            },
        },
    }
    status.update(changes)
    return status


class FakeRun:
    """A status function over a snapshot the test changes, and a clock the test moves."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status
        self.now = STARTED + 100.0

    def __call__(self) -> dict[str, Any]:
        return copy.deepcopy(self.status)

    def clock(self) -> float:
        return self.now

    def spend(self, stage: str, requests: int, tokens: int, accepted: int) -> None:
        counters = self.status["usage"]["stages"][stage]
        counters["requests"] += requests
        counters["completion_tokens"] += tokens
        self.status["accepted"] += accepted


@asynccontextmanager
async def monitor(
    status: Callable[[], dict[str, Any]], clock: Callable[[], float] | None = None
) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    async with anyio.create_task_group() as tg:
        kwargs: dict[str, Any] = {"sample_interval": 3600.0}
        if clock is not None:
            kwargs["clock"] = clock
        url = await tg.start(partial(serve_monitor, status, **kwargs))
        async with aiohttp.ClientSession() as session:
            yield url, session
        tg.cancel_scope.cancel()


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def metrics(
    session: aiohttp.ClientSession, url: str
) -> dict[tuple[str, tuple[Any, ...]], float]:
    status, text = await fetch(session, f"{url}/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_healthz_is_ok_while_running_and_503_while_stopping() -> None:
    run = FakeRun(snapshot())
    async with monitor(run) as (url, session):
        assert url.startswith("http://127.0.0.1:")
        assert await fetch(session, f"{url}/healthz") == (200, "ok\n")
        run.status["stopping"] = True
        status, text = await fetch(session, f"{url}/healthz")
        assert (status, text) == (503, "stopping\n")


async def test_healthz_is_503_when_the_snapshot_cannot_be_taken() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("pool is gone")

    async with monitor(broken) as (url, session):
        status, text = await fetch(session, f"{url}/healthz")
        assert status == 503
        assert "pool is gone" in text


async def test_status_reports_stages_acceptance_by_filter_queues_and_tokens() -> None:
    run = FakeRun(snapshot())
    async with monitor(run, run.clock) as (url, session), session.get(f"{url}/status") as response:
        assert response.status == 200
        body = await response.json()
    assert body["accepted"] == 40 and body["target"] == 100 and body["in_flight"] == 5
    assert body["queues"] == {"candidates": 3, "pending": 1, "labelled": 0, "generated": 4}
    instruction = body["acceptance"]["instruction"]
    assert instruction["accepted"] == 60 and instruction["rejected"] == 140
    assert instruction["rate"] == pytest.approx(60 / 200)
    assert list(instruction["rejected_by_filter"]) == [
        "rouge_similarity",
        "blacklist",
        "word_count",
    ]
    assert body["acceptance"]["instance"]["rate"] == pytest.approx(150 / 170)
    assert body["acceptance"]["task"]["rate"] == pytest.approx(40 / 44)
    assert body["stages"]["generate_instructions"] == {"requests": 20, "failed": 0, "items": 200}
    assert body["stages"]["identify_classification"]["items"] == 58
    assert body["stages"]["filter_instances"] == {"items": 44, "accepted": 40}
    assert body["tokens"] == {
        "prompt": 9000,
        "cached_prompt": 1024,
        "completion": 5000,
        "total": 14000,
    }
    # One sample only: no window rate yet, but the session average gives an ETA.
    assert body["rates"]["requests_per_minute"] is None
    assert body["rates"]["accepted_per_second"] == pytest.approx(40 / 100)
    assert body["eta_seconds"] == pytest.approx(60 / (40 / 100))


async def test_status_measures_rpm_tpm_and_eta_between_samples() -> None:
    run = FakeRun(snapshot())
    async with monitor(run, run.clock) as (url, session):
        await fetch(session, f"{url}/status")
        run.now += 30.0
        run.spend("generate_instances", requests=30, tokens=6000, accepted=6)
        async with session.get(f"{url}/status") as response:
            body = await response.json()
    assert body["rates"]["requests_per_minute"] == pytest.approx(60.0)
    assert body["rates"]["tokens_per_minute"] == pytest.approx(12000.0)
    assert body["rates"]["accepted_per_second"] == pytest.approx(0.2)
    assert body["eta_seconds"] == pytest.approx((100 - 46) / 0.2)


async def test_metrics_are_prometheus_text_with_the_snapshot_values() -> None:
    run = FakeRun(snapshot())
    async with monitor(run, run.clock) as (url, session):
        async with session.get(f"{url}/metrics") as response:
            assert response.headers["Content-Type"].startswith("text/plain")
        run.now += 60.0
        run.spend("generate_instructions", requests=12, tokens=3000, accepted=10)
        values = await metrics(session, url)
    assert values[("selfinstruct_tasks", (("state", "accepted"),))] == 50
    assert values[("selfinstruct_tasks", (("state", "pending"),))] == 7
    assert values[("selfinstruct_target_tasks", ())] == 100
    assert values[("selfinstruct_in_flight_requests", ())] == 5
    assert values[("selfinstruct_stopping", ())] == 0
    assert values[("selfinstruct_queue_depth", (("queue", "generated"),))] == 4
    key = ("selfinstruct_rejections_total", (("filter", "blacklist"), ("level", "instruction")))
    assert values[key] == 30
    assert values[("selfinstruct_acceptance_ratio", (("level", "task"),))] == pytest.approx(40 / 44)
    assert values[("selfinstruct_events_total", (("name", names.INSTRUCTIONS_GENERATED),))] == 200
    stage = (("stage", "generate_instructions"),)
    assert values[("selfinstruct_prompt_tokens_total", stage)] == 6000
    assert values[("selfinstruct_completion_tokens_total", stage)] == 7000
    assert values[("selfinstruct_requests_total", stage)] == 32
    assert values[("selfinstruct_rate_limited_total", stage)] == 1
    assert values[("selfinstruct_cost_usd_total", stage)] == 0.5
    assert values[("selfinstruct_requests_per_minute", ())] == pytest.approx(12.0)
    assert values[("selfinstruct_tokens_per_minute", ())] == pytest.approx(3000.0)
    assert values[("selfinstruct_eta_seconds", ())] == pytest.approx(50 / (10 / 60))


async def test_cached_share_and_cost_per_1000_accepted_tasks_in_status_and_metrics() -> None:
    # generate_instructions has no cached_prompt_tokens key: a snapshot from before the
    # prompt cache was counted reads as nothing cached.
    run = FakeRun(snapshot())
    async with monitor(run, run.clock) as (url, session):
        async with session.get(f"{url}/status") as response:
            body = await response.json()
        values = await metrics(session, url)
    assert body["cached_share_by_stage"] == {
        "generate_instructions": 0.0,
        "generate_instances": pytest.approx(1024 / 3000),
    }
    # $0.75 spent for 40 accepted tasks, whatever the rejected candidates were.
    assert body["cost"]["per_1000_accepted"] == pytest.approx(1000 * 0.75 / 40)
    assert body["cost"]["by_stage_per_1000_accepted"]["generate_instances"] == pytest.approx(
        1000 * 0.25 / 40
    )
    instances = (("stage", "generate_instances"),)
    assert values[("selfinstruct_cached_prompt_share", instances)] == pytest.approx(1024 / 3000)
    assert values[("selfinstruct_cached_prompt_tokens_total", instances)] == 1024
    total = (("stage", "total"),)
    assert values[("selfinstruct_cost_per_1000_accepted_usd", total)] == pytest.approx(18.75)


def test_cost_per_1000_accepted_is_unknown_before_the_first_accepted_task() -> None:
    summary = summarize(snapshot(accepted=0))
    assert summary["cost"]["per_1000_accepted"] is None
    assert summary["cost"]["usd"] == pytest.approx(0.75)


async def test_each_server_has_its_own_registry_and_none_is_global() -> None:
    first, second = FakeRun(snapshot(accepted=1)), FakeRun(snapshot(accepted=2))
    async with monitor(first) as (url_a, session_a), monitor(second) as (url_b, session_b):
        a = await metrics(session_a, url_a)
        b = await metrics(session_b, url_b)
    assert a[("selfinstruct_tasks", (("state", "accepted"),))] == 1
    assert b[("selfinstruct_tasks", (("state", "accepted"),))] == 2
    assert REGISTRY.get_sample_value("selfinstruct_tasks", {"state": "accepted"}) is None


async def test_a_port_in_use_is_a_clear_error_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"monitor: cannot listen on 127.0.0.1:{port}"):
            await serve_monitor(snapshot, port=port)


async def test_cancelling_the_monitor_closes_its_port() -> None:
    async with anyio.create_task_group() as tg:
        url = await tg.start(serve_monitor, snapshot)
        async with aiohttp.ClientSession() as session:
            assert (await fetch(session, f"{url}/healthz"))[0] == 200
        tg.cancel_scope.cancel()
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        await anyio.connect_tcp("127.0.0.1", port)


def test_summary_without_a_target_has_no_eta_and_a_reached_target_has_eta_zero() -> None:
    assert summarize(snapshot(target=0))["eta_seconds"] is None
    assert summarize(snapshot(target=0))["progress"] is None
    assert summarize(snapshot(target=40))["eta_seconds"] == 0.0


def test_summary_has_no_rate_and_no_eta_before_anything_was_accepted() -> None:
    status = snapshot(accepted=0, counters={}, usage={})
    history = [Sample(STARTED + 10, 0, 0, 0), Sample(STARTED + 20, 0, 0, 0)]
    summary = summarize(status, history)
    assert summary["eta_seconds"] is None
    assert summary["rates"]["requests_per_minute"] == 0.0
    assert summary["acceptance"]["instruction"]["rate"] is None
    assert summary["tokens"]["total"] == 0


def test_rate_history_keeps_one_window_and_one_sample_before_it() -> None:
    history = RateHistory(window=60.0)
    status = snapshot()
    for second in range(0, 300, 10):
        status["usage"]["stages"]["generate_instructions"]["requests"] = second  # 1 per second
        history.observe(status, now=STARTED + second)
    samples = list(history)
    assert samples[0].time <= samples[-1].time - 60.0 < samples[1].time
    assert len(samples) == 7
    rates = summarize(status, history, window=60.0)["rates"]
    # The other stage's 45 requests are constant, so only the growing stage shows in RPM.
    assert rates["requests_per_minute"] == pytest.approx(60.0)


def test_rate_history_restarts_when_the_clock_goes_back() -> None:
    history = RateHistory()
    history.observe(snapshot(), now=STARTED + 500)
    history.observe(snapshot(), now=STARTED + 100)
    assert [s.time for s in history] == [STARTED + 100]
