"""Per-minute limits enforced in fixed slices (issue 15 item 3): the simulator and the pacer.

Hosted providers quantize a per-minute limit into fixed slices aligned to their clock: 600
requests/min as 10 per 1 s slice, or 1 per 100 ms slice. The simulator does so with
``limit_slice``; the pacer's slice lock learns the boundaries from the reset headers and
sends midway between them. The pacer runs here against the simulator's own limits on
virtual time: a request granted at ``t`` reaches the provider a jittery few milliseconds
later and is admitted or refused there, as over HTTP.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

import aiohttp
import anyio
import pytest

from selfinstruct_async.client.pacing import Pacer
from selfinstruct_async.client.retry import parse_duration
from selfinstruct_async.client.slice_lock import SliceLock
from selfinstruct_async.client.slice_windows import SliceWindows
from selfinstruct_async.simulator.__main__ import _parser, settings_from_args
from selfinstruct_async.simulator.limits import ProviderLimits
from selfinstruct_async.simulator.settings import SimulatorSettings
from selfinstruct_async.testing import ManualClock
from tests.fixtures.clock import on_virtual_time
from tests.fixtures.simulator import MakeSimulator

# Boundaries 7 ms after each 100 ms of the pacer's clock (wall = loop time - 0.007): a pacer
# sending at 0, 0.1, 0.2 ... with 0-40 ms of delay straddles every one of them.
BAD_PHASE = -0.007


def limits(rpm: float, limit_slice: float | None, wall: float = BAD_PHASE) -> ProviderLimits:
    settings = SimulatorSettings(rpm=rpm, limit_slice=limit_slice)
    return ProviderLimits(settings, now=0.0, wall=wall)


def refused_for(provider: ProviderLimits, now: float, kind: str = "requests") -> float:
    """The wait a request refused at ``now`` by the ``kind`` limit is asked for."""
    refused = provider.admit(1, now)
    assert refused is not None and refused[0] == kind, f"{refused} at {now}"
    return refused[1]


# -- the simulator's slices -------------------------------------------------------------


def test_one_second_slices_admit_ten_then_refuse_until_the_next_wall_clock_second() -> None:
    provider = limits(600, 1.0, wall=100.3)  # loop time 0 is wall 100.3: a slice ends at 0.7
    for i in range(10):
        assert provider.admit(1, now=0.01 * i) is None
    assert refused_for(provider, 0.5) == pytest.approx(0.2)
    assert provider.admit(1, now=0.69) is not None
    for i in range(10):  # the next slice, from 0.7 to 1.7, has its own ten
        assert provider.admit(1, now=0.7 + 0.01 * i) is None
    assert refused_for(provider, 1.69) == pytest.approx(0.01)


def test_hundred_ms_slices_admit_one_request_each() -> None:
    provider = limits(600, 0.1, wall=0.0)
    assert provider.admit(1, now=0.0) is None
    assert refused_for(provider, 0.099) == pytest.approx(0.001)
    assert provider.admit(1, now=0.1) is None
    assert provider.admit(1, now=0.35) is None  # an empty slice (0.2-0.3) is not saved up
    assert provider.admit(1, now=0.36) is not None


def test_slice_headers_say_what_is_left_and_when_the_slice_ends() -> None:
    provider = limits(600, 1.0, wall=0.0)
    assert provider.admit(1, now=0.25) is None
    headers = provider.headers(0.25)
    assert headers["x-ratelimit-limit-requests"] == "600"  # per minute, as providers say
    assert headers["x-ratelimit-remaining-requests"] == "9"
    assert headers["x-ratelimit-reset-requests"] == "0.750s"
    assert provider.headers(1.0)["x-ratelimit-remaining-requests"] == "10"


def test_a_token_cost_above_a_slice_goes_into_an_empty_slice_and_is_paid_off_later() -> None:
    provider = ProviderLimits(SimulatorSettings(tpm=600, limit_slice=1.0), now=0.0, wall=0.0)
    assert provider.admit(25, now=0.0) is None  # 10 tokens per slice; 15 carried as debt
    assert refused_for(provider, 1.0, "tokens") == pytest.approx(1.0)
    assert provider.headers(1.0)["x-ratelimit-reset-tokens"] == "2.000s"
    assert provider.admit(1, now=2.0) is None  # debt paid off at the end of slice 2


def test_limit_slice_must_be_within_a_minute_and_is_a_command_line_option() -> None:
    for bad in (0.0, -1.0, 61.0, math.nan):
        with pytest.raises(ValueError, match="limit_slice"):
            SimulatorSettings(limit_slice=bad)
    args = _parser().parse_args(["--rpm", "600", "--limit-slice", "0.1"])
    assert settings_from_args(args).limit_slice == 0.1
    assert settings_from_args(_parser().parse_args([])).limit_slice is None


@pytest.mark.anyio
async def test_simulator_refuses_within_its_slice_with_consistent_headers(
    make_simulator: MakeSimulator,
) -> None:
    sim = await make_simulator(rpm=1, limit_slice=60.0)  # one request per wall-clock minute
    body = {"model": "sim-model", "prompt": "one two three", "max_tokens": 3}
    statuses: list[int] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(3):  # a minute boundary may pass once between two requests
            async with session.post(f"{sim.base_url}/completions", json=body) as resp:
                await resp.read()
                statuses.append(resp.status)
                headers = {k.lower(): v for k, v in resp.headers.items()}
            if resp.status == 429:
                break
    assert statuses[-1] == 429 and statuses.count(200) in (1, 2)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    reset = parse_duration(headers["x-ratelimit-reset-requests"])
    assert reset is not None and 0 < reset <= 60
    # Retry-After names the same moment: the start of the next slice.
    assert abs(int(headers["retry-after-ms"]) - reset * 1000) <= 1
    assert int(headers["retry-after"]) == math.ceil(int(headers["retry-after-ms"]) / 1000)


# -- the pacer against them --------------------------------------------------------------


@dataclass
class Outcome:
    admitted: list[float]  # provider times of the requests it served
    refused: int
    lock: SliceLock | None
    refused_at: list[float] = field(default_factory=list)  # provider times of the 429s

    def refused_in(self, start: float, seconds: float) -> int:
        return sum(1 for t in self.refused_at if start <= t < start + seconds)

    def ratio(self, rpm: float, start: float, seconds: float) -> float:
        served = sum(1 for t in self.admitted if start <= t < start + seconds)
        return served / (rpm / 60.0 * seconds)


class LateClock:
    """A ManualClock whose sleeps end up to ``late`` seconds after their deadline.

    A real event loop wakes a timer late: epoll counts in milliseconds, and a loop busy with
    a pipeline's other tasks gets to the timer when the running step ends.
    """

    def __init__(self, clock: ManualClock, late: float, seed: int = 5) -> None:
        self.clock = clock
        self.late = late
        self._rng = random.Random(seed)

    def now(self) -> float:
        return self.clock.now()

    async def sleep_until(self, deadline: float, wake: anyio.Event | None = None) -> None:
        await self.clock.sleep_until(deadline + self._rng.uniform(0.0, self.late), wake)


@dataclass(frozen=True)
class Stalls:
    """An event loop held up for ``length`` seconds every ``every`` seconds (a garbage
    collector's full pass, a long step): nothing it holds moves until the stall ends."""

    every: float
    length: float

    def end(self, t: float) -> float:
        """``t``, or the end of the stall that holds it."""
        start = math.floor(t / self.every) * self.every
        return start + self.length if start > 0 and t < start + self.length else t


class StalledClock:
    """A clock whose sleeps cannot end inside one of ``stalls``."""

    def __init__(self, clock: LateClock | ManualClock, stalls: Stalls) -> None:
        self.clock = clock
        self.stalls = stalls

    def now(self) -> float:
        return self.clock.now()

    async def sleep_until(self, deadline: float, wake: anyio.Event | None = None) -> None:
        await self.clock.sleep_until(self.stalls.end(deadline), wake)


async def steady_load(
    provider: ProviderLimits,
    pacer: Pacer,
    clock: ManualClock,
    *,
    seconds: float = 63.0,
    delay: tuple[float, float] = (0.0, 0.04),
    latency: float = 0.5,
    seed: int = 1,
    workers: int = 64,
    stalls: Stalls | None = None,
) -> Outcome:
    """``workers`` keep requests queued at the pacer for ``seconds`` of virtual time.

    A grant reaches the provider ``delay`` later (uniform), or when a stall that holds it
    ends, is admitted or refused there, and its answer comes back after a lognormal
    ``latency``; the answer's reset header goes to the pacer first, then the success or
    the 429, as the HTTP client does.
    """
    rng = random.Random(seed)
    rpm = provider.rpm
    assert rpm is not None
    outcome = Outcome([], 0, None)

    async def worker() -> None:
        while clock.now() < seconds:
            sent = await pacer.acquire()
            sends = sent + rng.uniform(*delay)
            await clock.sleep_until(stalls.end(sends) if stalls else sends)
            arrived = clock.now()
            refused = provider.admit(1, arrived)
            headers = provider.headers(arrived)
            answered = arrived + latency * math.exp(rng.gauss(0.0, 0.5))
            await clock.sleep_until(stalls.end(answered) if stalls else answered)
            pacer.release()
            pacer.observe_reset(sent, parse_duration(headers["x-ratelimit-reset-requests"]))
            if refused is not None:
                outcome.refused += 1
                outcome.refused_at.append(arrived)
                pacer.on_throttled("requests", sent, announced=rpm)
            else:
                outcome.admitted.append(arrived)
                remaining = float(headers["x-ratelimit-remaining-requests"])
                pacer.on_success(limit_requests=rpm, remaining_requests=remaining)

    async def body() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)

    await on_virtual_time(clock, body)
    outcome.lock = pacer.slice_lock
    return outcome


@pytest.mark.anyio
@pytest.mark.parametrize("limit_slice", [1.0, 0.1])
async def test_paced_at_the_limit_a_steady_minute_has_no_429s_against_slices(
    limit_slice: float,
) -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=600, concurrency=1000, clock=clock)
    outcome = await steady_load(limits(600, limit_slice), pacer, clock)
    assert outcome.refused == 0  # the careful start included
    assert outcome.ratio(600, start=3.0, seconds=60.0) >= 0.98
    assert outcome.lock is not None and outcome.lock.verified


@pytest.mark.anyio
@pytest.mark.parametrize("limit_slice", [1.0, 0.1])
async def test_at_a_high_limit_late_wake_ups_still_get_the_full_rate_without_429s(
    limit_slice: float,
) -> None:
    # 30,000 RPM is one request per 2 ms: a lattice point per request cannot be met by a
    # loop whose timers fire up to 1.5 ms late (that pacer kept 0.39 of the limit), so the
    # pacer learns the slices' length and fills each slice's interior instead, carefully
    # until it knows them (the lattice sent 8 too many at 0.2 s). Delays as on loopback,
    # where the lock engages.
    clock = ManualClock()
    pacer = Pacer(rpm=30_000, concurrency=1000, clock=LateClock(clock, late=0.0015))
    provider = limits(30_000, limit_slice)
    outcome = await steady_load(
        provider, pacer, clock, seconds=12.0, delay=(0.0, 0.0005), workers=400
    )
    assert outcome.refused == 0  # the start included
    assert outcome.ratio(30_000, start=6.0, seconds=6.0) >= 0.98
    windows = pacer.slice_windows
    assert windows is not None and windows.slice == pytest.approx(limit_slice, rel=1e-3)
    assert windows.share == round(limit_slice * 500)


@pytest.mark.anyio
@pytest.mark.parametrize("length", [0.045, 0.06])
async def test_requests_held_up_by_a_stalled_loop_do_not_spill_into_the_next_slice(
    length: float,
) -> None:
    # A busy client's garbage collector holds its loop for 40-55 ms every few seconds
    # (measured: bench/pipeline_at_limit.py, 30,000 RPM), so the requests granted just
    # before reach the provider that much later. One granted late in a slice then lands in
    # the next, which gets its share and one more: a 429. The slices' far ends are kept
    # clear by as much as such holds have recently lasted.
    # A hold longer than half a slice also puts the held requests' boundaries on the far
    # side of the circle: taken for the least delayed ones, they moved the slices 40 ms.
    clock = ManualClock()
    stalls = Stalls(every=2.345, length=length)  # each at another place in a slice
    pacer = Pacer(rpm=30_000, concurrency=1000, clock=StalledClock(clock, stalls))
    provider = limits(30_000, 0.1)
    outcome = await steady_load(
        provider, pacer, clock, seconds=24.0, delay=(0.0, 0.005), workers=400, stalls=stalls
    )
    assert outcome.refused_in(start=4.0, seconds=20.0) == 0
    assert outcome.ratio(30_000, start=4.0, seconds=20.0) >= 0.98


@pytest.mark.anyio
@pytest.mark.parametrize("limit_slice", [1.0, 0.1])
async def test_without_the_slice_lock_the_same_minute_straddles_boundaries(
    limit_slice: float,
) -> None:
    # The pacer as it was: even spacing at the limit, wherever the boundaries fall.
    clock = ManualClock()
    pacer = Pacer(rpm=600, concurrency=1000, clock=clock, lock_slices=False)
    outcome = await steady_load(limits(600, limit_slice), pacer, clock)
    assert outcome.refused > 0


@pytest.mark.anyio
@pytest.mark.parametrize("rpm", [600.0, 3000.0])
async def test_a_sliding_bucket_provider_still_gets_the_full_rate_without_429s(
    rpm: float,
) -> None:
    # Whether the lock engages or not (at 3,000 RPM the 40 ms of jitter spans two
    # intervals), a bucket does not care where in time its requests fall.
    clock = ManualClock()
    pacer = Pacer(rpm=rpm, concurrency=1000, clock=clock)
    outcome = await steady_load(limits(rpm, None), pacer, clock)
    assert outcome.refused == 0
    assert outcome.ratio(rpm, start=3.0, seconds=60.0) >= 0.99


@pytest.mark.anyio
async def test_careful_start_spaces_requests_a_quarter_wider_until_an_answer() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=600, concurrency=100, clock=clock)

    async def body() -> list[float]:
        return [await pacer.acquire() for _ in range(4)]

    assert await on_virtual_time(clock, body) == pytest.approx([0.0, 0.125, 0.25, 0.375])


@pytest.mark.anyio
async def test_an_answer_without_a_reset_header_ends_the_careful_start() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=600, concurrency=100, clock=clock)

    async def body() -> list[float]:
        first = await pacer.acquire()
        pacer.on_success(limit_requests=600)  # an answer, and no reset header came with it
        return [first] + [await pacer.acquire() for _ in range(4)]

    times = await on_virtual_time(clock, body)
    assert pacer.slice_lock is None
    # The first request's wider interval was spent; from then on, the plain rate.
    assert times == pytest.approx([0.0, 0.125, 0.225, 0.325, 0.425])


def test_the_lock_sends_midway_between_boundaries_one_per_interval() -> None:
    lock = SliceLock(period=0.1)
    # Answers to sends every 100 ms: each boundary 30 ms past a tenth of a second.
    for k in range(6):
        sent = 0.01 + 0.1 * k
        lock.granted(sent)
        assert lock.observe(sent, reset=0.02, now=sent + 0.5) is (k == 5)
    assert lock.phase == pytest.approx(0.03)
    assert lock.slot(now=0.52) == pytest.approx(0.68)  # an interval after the last send
    lock.granted(0.68)
    assert lock.slot(now=0.70) == pytest.approx(0.78)
    # A late wake-up (a quarter interval at most) still sends in its slot, and the next
    # one keeps the lattice rather than the late time.
    lock.granted(0.78)
    assert lock.slot(now=0.90) == pytest.approx(0.88)
    assert lock.slot(now=0.95) == pytest.approx(0.98)


def test_boundaries_that_follow_the_sends_are_a_bucket_and_the_lock_gives_up() -> None:
    lock = SliceLock(period=0.1)
    sent = 0.0
    # A full bucket: its reset is one interval after each send, wherever the send falls.
    for _ in range(200):
        if lock.off:
            break
        sent = lock.slot(sent) if lock.locked else sent + 0.1
        lock.granted(sent)
        lock.observe(sent, reset=0.1, now=sent)
    assert lock.off and not lock.locked


def _answered_slices(
    windows: SliceWindows,
    slice_: float,
    phase: float,
    seconds: float,
    start: float = 0.0,
    held: float = 0.0,
    least: float = 0.0,
) -> None:
    """Answers to sends one interval apart from ``start``, ``least`` plus 0-5 ms on the way
    (the first two ``held`` longer, or with ``least`` 0: quicker), from slices ``slice_``
    long ending at ``phase`` plus whole slices."""
    rng = random.Random(4)
    sent = start
    while sent < start + seconds:
        first = sent < start + 0.003
        arrived = sent + rng.uniform(0.0, 0.005) + (held if first else 0.0)
        arrived += 0.0 if first and least else least
        end = phase + math.floor((arrived - phase) / slice_ + 1) * slice_
        windows.granted(sent)
        windows.observe(sent, round(end - arrived, 3))  # headers carry milliseconds
        sent += windows.period


def test_slice_windows_learn_the_length_the_boundaries_and_the_delays_spread() -> None:
    windows = SliceWindows(period=0.002)  # 30,000 RPM
    _answered_slices(windows, slice_=0.1, phase=0.0137, seconds=2.0)
    assert windows.ready and windows.share == 50
    assert windows.slice == pytest.approx(0.1)
    # The least delayed answers name the boundary itself, less the header's rounding.
    assert _offset(windows.boundary - 0.0137, 0.1) == pytest.approx(0.0, abs=0.0015)
    # The delays vary by 5 ms: the end is kept clear of that and more, the start less.
    assert 1.5 * 0.004 <= windows.tail <= 1.5 * 0.0065
    assert windows.head == pytest.approx(0.005)


def test_a_held_request_keeps_the_slices_ends_clear_for_a_while_and_moves_no_boundary() -> None:
    windows = SliceWindows(period=0.002)
    _answered_slices(windows, slice_=0.1, phase=0.0137, seconds=2.0)
    steady = windows.tail
    # Two requests held 60 ms (a stalled loop): their boundaries lie 60 ms early, on the
    # far side of the circle from the others', nearer the next boundary than this one.
    _answered_slices(windows, slice_=0.1, phase=0.0137, seconds=0.5, start=2.0, held=0.06)
    assert _offset(windows.boundary - 0.0137, 0.1) == pytest.approx(0.0, abs=0.0015)
    assert windows.tail == pytest.approx(0.04)  # the hold, up to 0.4 of a slice
    # Remembered for a while (a collector's next full pass comes seconds later), then not.
    _answered_slices(windows, slice_=0.1, phase=0.0137, seconds=30.0, start=2.5)
    assert windows.tail == pytest.approx(0.04)
    _answered_slices(windows, slice_=0.1, phase=0.0137, seconds=150.0, start=32.5)
    assert windows.tail < 0.02 and windows.tail >= steady


def test_a_few_quicker_answers_are_not_taken_for_held_ones() -> None:
    # The two quickest answers 4 ms ahead of the rest: beyond the arc's edge, but not held.
    windows = SliceWindows(period=0.002)
    _answered_slices(windows, slice_=0.1, phase=0.0137, seconds=0.6, least=0.004)
    assert windows.tail <= 1.5 * 0.0065


def test_slice_windows_keep_requests_inside_a_slice_and_within_its_share() -> None:
    windows = SliceWindows(period=0.002)
    _answered_slices(windows, slice_=0.1, phase=0.0137, seconds=2.0)
    start = windows.boundary + 30 * 0.1  # a slice later on
    head, tail = windows.head, windows.tail
    assert windows.window_at(start - tail / 2) == pytest.approx(start + head)
    assert windows.window_at(start + 0.05) == pytest.approx(start + 0.05)
    for k in range(windows.share):  # the slice's share, all at its middle
        windows.granted(start + 0.05 + k * 1e-6)
    assert windows.window_at(start + 0.06) == pytest.approx(start + 0.1 + head)


def test_a_bucket_teaches_no_slices() -> None:
    full = SliceWindows(period=0.002)  # a full bucket: "full again" an interval on
    drawn = SliceWindows(period=0.002)  # drawn down: each request a bit further off
    for k in range(2000):
        sent = k * 0.002
        full.observe(sent, 0.002)
        drawn.observe(sent, 0.002 + 0.0007 * k % 1.0)
    assert not full.ready and not drawn.ready


@pytest.mark.anyio
async def test_after_a_cut_below_the_limit_the_lattice_is_left() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=600, concurrency=100, clock=clock)
    outcome = await steady_load(limits(600, 0.1), pacer, clock, seconds=5.0)
    assert outcome.lock is not None and outcome.lock.locked
    assert pacer.on_throttled("requests", sent_at=clock.now())  # no limit announced: a cut
    assert pacer.rpm == pytest.approx(420)

    async def body() -> list[float]:
        return [await pacer.acquire() for _ in range(12)]

    times = await on_virtual_time(clock, body)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # What the bucket saved up goes first; then its spacing at the cut rate, off the lattice.
    assert gaps[-4:] == pytest.approx([60 / 420] * 4)


@pytest.mark.anyio
async def test_a_hold_does_not_push_a_request_off_its_lattice_point() -> None:
    clock = ManualClock()
    pacer = Pacer(rpm=600, concurrency=100, clock=clock)
    await steady_load(limits(600, 0.1), pacer, clock, seconds=5.0)
    lock = pacer.slice_lock
    assert lock is not None and lock.phase is not None
    clock.advance(1.0)
    point = lock.phase + 0.05  # midway between boundaries, modulo the interval
    pacer.hold_until(clock.now() + (point - clock.now() + 0.03) % 0.1)  # 30 ms past a point
    granted = await on_virtual_time(clock, pacer.acquire)
    assert _offset(granted - point, 0.1) == pytest.approx(0.0, abs=1e-9)
    assert granted >= pacer.held_until


def _offset(x: float, period: float) -> float:
    return (x + period / 2) % period - period / 2


# -- through the HTTP client (needs http.py to pass the reset header to the pacer) -------


@pytest.mark.anyio
@pytest.mark.parametrize("limit_slice", [1.0, 0.1])
async def test_the_http_client_at_the_limit_has_no_429s_against_slices(
    limit_slice: float,
) -> None:
    from selfinstruct_async.client.endpoint import Endpoint
    from selfinstruct_async.client.http import HTTPClient
    from selfinstruct_async.client.protocol import CompletionRequest
    from selfinstruct_async.client.transport import (
        MockTransport,
        TransportRequest,
        TransportResponse,
    )
    from selfinstruct_async.client.usage import UsageMeter
    from selfinstruct_async.config import EndpointConfig

    clock = ManualClock()
    provider = limits(600, limit_slice)
    rng = random.Random(3)
    served: list[float] = []

    async def provide(request: TransportRequest) -> TransportResponse:
        await clock.sleep_until(clock.now() + rng.uniform(0.0, 0.04))  # on the way there
        arrived = clock.now()
        refused = provider.admit(1, arrived)
        headers = provider.headers(arrived)
        await clock.sleep_until(arrived + 0.5 * math.exp(rng.gauss(0.0, 0.5)))
        if refused is not None:
            headers["retry-after-ms"] = str(math.ceil(refused[1] * 1000))
            body = {"error": {"message": "slow down", "type": "requests"}}
            return TransportResponse.from_json(429, body, headers)
        served.append(arrived)
        choice = {"index": 0, "text": "ok", "finish_reason": "stop"}
        payload = {"choices": [choice], "usage": {"prompt_tokens": 5, "completion_tokens": 1}}
        return TransportResponse.from_json(200, payload, headers)

    config = EndpointConfig(base_url="http://sliced.test/v1", model="m", rpm=600)
    pacer = Pacer(rpm=600, concurrency=1000, clock=clock)
    usage = UsageMeter()
    client = HTTPClient([Endpoint(config, MockTransport(provide), pacer)], usage, clock=clock)
    request = CompletionRequest(stage="gen", prompt="Say ok.", max_tokens=5)

    async def worker() -> None:
        while clock.now() < 63.0:
            await client.complete(request)

    async def body() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(64):
                tg.start_soon(worker)

    await on_virtual_time(clock, body)
    assert usage.stage("gen").rate_limited == 0
    assert sum(1 for t in served if 3.0 <= t < 63.0) >= 0.98 * 600
    assert pacer.slice_lock is not None and pacer.slice_lock.verified
