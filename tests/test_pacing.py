"""The pacer on virtual time: spacing, no start-up burst, FIFO, retries first, AIMD.

The bucket's own behaviour is tested with ``lock_slices=False``; what the slice lock adds
(a careful start, then one request per lattice point) is in ``test_quantized_limits.py``.
"""

from __future__ import annotations

from typing import TypeVar

import anyio
import pytest

from selfinstruct_async.client.pacing import Pacer
from selfinstruct_async.client.rate_limit import TokenBucket
from selfinstruct_async.errors import RequestTooLarge
from selfinstruct_async.testing import ManualClock
from tests.fixtures.clock import on_virtual_time

T = TypeVar("T")


# -- the bucket -------------------------------------------------------------------------


def test_bucket_waits_for_the_missing_amount_at_its_rate() -> None:
    bucket = TokenBucket(rate=10.0, capacity=10.0, now=0.0)
    assert bucket.ready_at(5, now=0.0) == pytest.approx(0.5)
    bucket.take(5, now=0.5)
    assert bucket.level == pytest.approx(0.0)
    assert bucket.ready_at(1, now=0.5) == pytest.approx(0.6)


def test_bucket_never_holds_more_than_its_capacity() -> None:
    bucket = TokenBucket(rate=10.0, capacity=10.0, now=0.0)
    bucket.refill(100.0)
    assert bucket.level == 10.0


def test_cost_above_capacity_waits_for_a_full_bucket_then_runs_into_debt() -> None:
    bucket = TokenBucket(rate=10.0, capacity=10.0, now=0.0)
    assert bucket.ready_at(25, now=0.0) == pytest.approx(1.0)
    bucket.take(25, now=1.0)
    assert bucket.level == pytest.approx(-15.0)
    # The debt is paid back at the bucket's rate before anything else goes.
    assert bucket.ready_at(1, now=1.0) == pytest.approx(2.6)


# -- request pacing ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_requests_are_spaced_at_the_rate_without_a_start_up_burst() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=600, concurrency=100, clock=clock, lock_slices=False)

    async def body() -> list[float]:
        times = []
        for _ in range(20):
            times.append(await pacer.acquire())
            pacer.release()
        return times

    times = await on_virtual_time(clock, body)
    assert times == pytest.approx([i * 0.1 for i in range(20)])


@pytest.mark.anyio
async def test_concurrent_waiters_are_granted_in_arrival_order_at_the_rate() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=1200, concurrency=1000, clock=clock, lock_slices=False)
    grants: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        grants.append((i, await pacer.acquire()))

    async def body() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(one, i)
                await anyio.lowlevel.checkpoint()  # arrive in order

    await on_virtual_time(clock, body)
    assert [i for i, _ in grants] == list(range(40))
    assert [t for _, t in grants] == pytest.approx([i * 0.05 for i in range(40)])


@pytest.mark.anyio
async def test_after_idling_the_burst_is_at_most_one_second_of_capacity() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=600, concurrency=1000, clock=clock, lock_slices=False)
    clock.advance(30.0)  # idle: a naive bucket would now hold half a minute of requests

    async def body() -> list[float]:
        times = []
        for _ in range(25):
            times.append(await pacer.acquire())
        return times

    times = await on_virtual_time(clock, body)
    immediate = sum(1 for t in times if t == 30.0)
    assert immediate == 10  # one second at 10 requests/s
    gaps = [b - a for a, b in zip(times[immediate:], times[immediate + 1 :], strict=False)]
    assert gaps == pytest.approx([0.1] * len(gaps))


@pytest.mark.anyio
async def test_token_rate_starts_empty_and_paces_by_request_size() -> None:
    clock = ManualClock()
    pacer = Pacer(tpm=6000, concurrency=1000, clock=clock)  # 100 tokens/s

    async def body() -> list[float]:
        return [await pacer.acquire(50) for _ in range(4)]

    times = await on_virtual_time(clock, body)
    assert times == pytest.approx([0.5, 1.0, 1.5, 2.0])


@pytest.mark.anyio
async def test_a_retry_goes_to_the_front_of_the_queue() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=60, concurrency=1000, clock=clock)  # one per second
    order: list[str] = []

    async def one(name: str, front: bool) -> None:
        await pacer.acquire(front=front)
        order.append(name)

    async with anyio.create_task_group() as tg:
        for name in ("a", "b", "c", "d"):
            tg.start_soon(one, name, False)
            await anyio.lowlevel.checkpoint()
        await ManualClock.settle()  # "a" is granted, "b" sleeps at the head until t=1
        tg.start_soon(one, "retry", True)
        await ManualClock.settle()
        while clock.jump():
            await ManualClock.settle()
    # "a" went at t=0 before the retry arrived; the retry overtakes everyone still queued.
    assert order == ["a", "retry", "b", "c", "d"]


@pytest.mark.anyio
async def test_concurrency_cap_holds_requests_until_a_slot_is_released() -> None:
    clock = ManualClock()
    pacer = Pacer(concurrency=2, clock=clock)
    granted: list[int] = []

    async def one(i: int) -> None:
        await pacer.acquire()
        granted.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(one, i)
        await ManualClock.settle()
        assert granted == [0, 1]
        pacer.release()
        await ManualClock.settle()
        assert granted == [0, 1, 2]
        pacer.release()
    assert granted == [0, 1, 2, 3]
    assert pacer.inflight == 4 - 2


@pytest.mark.anyio
async def test_a_cancelled_waiter_leaves_the_queue_and_the_next_one_is_served() -> None:
    pacer = Pacer(concurrency=1, clock=ManualClock())
    await pacer.acquire()  # occupy the only slot
    got: list[str] = []
    scopes: list[anyio.CancelScope] = []

    async def waiter(name: str) -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await pacer.acquire()
            got.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter, "first")
        await ManualClock.settle()
        tg.start_soon(waiter, "second")
        await ManualClock.settle()
        assert pacer.queued == 2
        scopes[0].cancel()
        await ManualClock.settle()
        assert pacer.queued == 1
        pacer.release()
    assert got == ["second"]


def test_request_larger_than_a_minute_of_tokens_is_refused_at_once() -> None:
    pacer = Pacer(tpm=1000, clock=ManualClock())
    pacer.check_size(1000)
    with pytest.raises(RequestTooLarge, match="1001 tokens"):
        pacer.check_size(1001)


@pytest.mark.anyio
async def test_reconciling_returns_unused_tokens_to_the_bucket() -> None:
    clock = ManualClock()
    pacer = Pacer(tpm=60_000, clock=clock)  # 1000 tokens/s, capacity 1000
    await on_virtual_time(clock, lambda: pacer.acquire(800))
    bucket = pacer.tokens.bucket
    assert bucket is not None
    assert bucket.level == pytest.approx(0.0)
    pacer.reconcile(reserved=800, actual=300)
    assert bucket.level == pytest.approx(500.0)
    pacer.reconcile(reserved=100, actual=400)  # the server used more than we held
    assert bucket.level == pytest.approx(200.0)


@pytest.mark.anyio
async def test_hold_until_delays_the_next_grant() -> None:
    clock = ManualClock()
    pacer = Pacer(clock=clock)
    pacer.hold_until(5.0)
    assert await on_virtual_time(clock, pacer.acquire) == pytest.approx(5.0)


# -- adaptation -------------------------------------------------------------------------


def test_a_429_cuts_the_rate_once_per_congestion_episode() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=1000, clock=clock)
    clock.advance(1.0)
    assert pacer.on_throttled("requests", sent_at=0.9)
    assert pacer.rpm == pytest.approx(700)
    # Answers to requests sent before the cut describe the same congestion.
    assert not pacer.on_throttled("requests", sent_at=0.95)
    assert pacer.rpm == pytest.approx(700)
    clock.advance(1.0)
    assert pacer.on_throttled(None, sent_at=1.5)  # unknown type cuts the request rate
    assert pacer.rpm == pytest.approx(490)


def test_token_429_cuts_the_token_rate_only() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=1000, tpm=100_000, clock=clock)
    pacer.on_throttled("tokens", sent_at=0.0)
    assert pacer.tpm == pytest.approx(70_000)
    assert pacer.rpm == pytest.approx(1000)


def test_rate_recovers_additively_up_to_the_configured_limit() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=1000, clock=clock, recovery_per_second=0.02)
    pacer.on_throttled("requests", sent_at=0.0)
    assert pacer.rpm == pytest.approx(700)
    clock.advance(1.0)
    pacer.on_success()
    # Far below the rate that last worked (1000): recovery is 4x the base step of 20/s.
    assert pacer.rpm == pytest.approx(780)
    clock.advance(1.0)
    pacer.on_success()
    assert pacer.rpm == pytest.approx(860)
    clock.advance(1.0)
    pacer.on_success()  # >= 0.85 x 1000: base step again
    assert pacer.rpm == pytest.approx(880)
    clock.advance(100.0)
    pacer.on_success()
    assert pacer.rpm == pytest.approx(1000)  # never above the configured limit


def test_no_recovery_while_the_server_reports_nothing_remaining() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=1000, clock=clock)
    pacer.on_throttled("requests", sent_at=0.0)
    clock.advance(5.0)
    pacer.on_success(remaining_requests=0)
    assert pacer.rpm == pytest.approx(700)


def test_announced_limit_lowers_the_ceiling_below_the_configured_rate() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=6000, clock=clock)
    pacer.on_success(limit_requests=3000, remaining_requests=40)
    assert pacer.rpm == pytest.approx(3000)
    clock.advance(60.0)
    pacer.on_success(limit_requests=3000, remaining_requests=40)
    assert pacer.rpm == pytest.approx(3000)


@pytest.mark.anyio
async def test_an_unlimited_endpoint_that_throttles_gets_a_rate_from_what_it_was_sent() -> None:
    clock = ManualClock()
    pacer = Pacer(concurrency=100, clock=clock)
    assert pacer.rpm is None
    for _ in range(50):
        await pacer.acquire()
    clock.advance(1.0)
    pacer.on_throttled("requests", sent_at=0.5)
    assert pacer.rpm == pytest.approx(50 * 60 * 0.7)


def test_a_429_under_an_announced_limit_at_our_pace_keeps_the_rate() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=3000, clock=clock)
    # The server's limit is what we send: a burst met a busy window, the rate is right.
    assert not pacer.on_throttled("requests", sent_at=0.0, announced=3000)
    assert pacer.rpm == pytest.approx(3000)
    # An announced limit below our pace is adopted at once.
    pacer.on_throttled("requests", sent_at=0.0, announced=1000)
    assert pacer.rpm == pytest.approx(1000)
