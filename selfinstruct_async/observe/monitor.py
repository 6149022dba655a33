"""Live monitoring of a running generation: ``/healthz``, ``/status`` and ``/metrics`` over HTTP.

The endpoint is optional and bound to loopback unless told otherwise (any other address
is logged as a warning: the endpoint has no authentication); it only reads
:meth:`RunContext.status` snapshots, so it can neither slow down nor change the run.
Rates (requests and tokens per minute, tasks accepted per second) are not in a snapshot:
they come from successive snapshots kept in a bounded :class:`RateHistory`, sampled on
every request and at a fixed refresh rate. :func:`summarize` turns a snapshot plus that
history into the figures ``/status``, ``/metrics`` and the progress display all show.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import counters as names
from ..client.usage import USAGE_FIELDS
from ..errors import ConfigError

log = logging.getLogger(__name__)

StatusFn = Callable[[], dict[str, Any]]
Clock = Callable[[], float]

RATE_WINDOW = 60.0  # seconds over which RPM, TPM and the acceptance rate are measured
SAMPLE_INTERVAL = 5.0  # refresh rate of the sampler; requests sample as well
# Help text of the per-stage usage metrics, ``selfinstruct_<field>`` for each usage field.
_USAGE_HELP = {
    "prompt_tokens": "Prompt tokens.",
    "completion_tokens": "Completion tokens.",
    "requests": "Completed requests.",
    "retries": "Attempts after the first.",
    "rate_limited": "429 answers.",
    "failures": "Requests that ended in an error.",
    "cost_usd": "Cost in USD.",
    "cached_prompt_tokens": "Prompt tokens served from the provider's prompt cache.",
    "batch_requests": "Completed requests sent through a Batch API.",
    "batch_prompt_tokens": "Prompt tokens of Batch API requests.",
    "batch_cached_prompt_tokens": "Cached prompt tokens of Batch API requests.",
    "batch_completion_tokens": "Completion tokens of Batch API requests.",
}


@dataclass(frozen=True)
class Sample:
    """Cumulative totals at one moment (wall-clock seconds, like ``status()["started"]``)."""

    time: float
    requests: float
    tokens: float
    accepted: float


def usage_totals(status: Mapping[str, Any]) -> dict[str, float]:
    """The usage counters of a snapshot summed over stages (zeros when there is no usage)."""
    totals = dict.fromkeys(USAGE_FIELDS, 0.0)
    stages = (status.get("usage") or {}).get("stages") or {}
    for counters in stages.values():
        for name in USAGE_FIELDS:
            totals[name] += float(counters.get(name, 0) or 0)
    return totals


class RateHistory:
    """A bounded record of recent :class:`Sample` s, from which rates are computed."""

    def __init__(
        self, window: float = RATE_WINDOW, maxlen: int = 1024, clock: Clock = time.time
    ) -> None:
        self.window = window
        self.clock = clock
        self._samples: deque[Sample] = deque(maxlen=maxlen)

    def observe(self, status: Mapping[str, Any], now: float | None = None) -> Sample:
        """Record the totals of ``status`` at ``now`` (default: the current time)."""
        totals = usage_totals(status)
        sample = Sample(
            time=self.clock() if now is None else now,
            requests=totals["requests"],
            tokens=totals["prompt_tokens"] + totals["completion_tokens"],
            accepted=float(status.get("accepted", 0) or 0),
        )
        if self._samples and sample.time < self._samples[-1].time:
            self._samples.clear()  # the clock went back: old samples would give nonsense rates
        self._samples.append(sample)
        # Keep one sample at or beyond the window's start, so the rate spans a whole window.
        while len(self._samples) > 2 and self._samples[1].time <= sample.time - self.window:
            self._samples.popleft()
        return sample

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)

    def __len__(self) -> int:
        return len(self._samples)


def _rates(history: Sequence[Sample], window: float) -> tuple[float | None, ...]:
    """Requests/min, tokens/min and accepted/s between the oldest and newest useful samples."""
    if len(history) < 2:
        return None, None, None
    last = history[-1]
    first = next((s for s in reversed(history) if s.time <= last.time - window), history[0])
    span = last.time - first.time
    if span <= 0:
        return None, None, None
    return (
        max(0.0, last.requests - first.requests) / span * 60.0,
        max(0.0, last.tokens - first.tokens) / span * 60.0,
        max(0.0, last.accepted - first.accepted) / span,
    )


def _eta(target: int, accepted: int, per_second: float | None) -> float | None:
    """Seconds to the target at ``per_second``; 0 once met, ``None`` without a target or rate."""
    if target <= 0:
        return None
    remaining = max(0, target - accepted)
    if remaining == 0:
        return 0.0
    return remaining / per_second if per_second else None


def acceptance_figures(counters: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    """Per level, :func:`selfinstruct_async.counters.acceptance` as JSON: accepted,
    rejected, rate (accepted / decided) and rejections by filter, most frequent first."""
    return {
        level: {
            "accepted": figures.accepted,
            "rejected": figures.rejected,
            "rate": figures.rate,
            "rejected_by_filter": dict(figures.rejected_by_filter),
        }
        for level, figures in names.acceptance(counters).items()
    }


def stage_figures(
    counters: Mapping[str, float], acceptance: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, float]]:
    """Requests, failures and items of each stage, in pipeline order."""

    def requested(stage: str, items: float) -> dict[str, float]:
        return {
            "requests": names.value(counters, names.requests(stage)),
            "failed": names.value(counters, names.failed(stage)),
            "items": items,
        }

    def filtered(level: str) -> dict[str, float]:
        decided = acceptance[level]["accepted"] + acceptance[level]["rejected"]
        return {"items": decided, "accepted": acceptance[level]["accepted"]}

    return {
        names.GENERATE_INSTRUCTIONS: requested(
            names.GENERATE_INSTRUCTIONS, names.value(counters, names.INSTRUCTIONS_GENERATED)
        ),
        names.FILTER_INSTRUCTIONS: filtered("instruction"),
        names.IDENTIFY_CLASSIFICATION: requested(
            names.IDENTIFY_CLASSIFICATION, sum(names.classified(counters).values())
        ),
        names.GENERATE_INSTANCES: requested(
            names.GENERATE_INSTANCES, names.value(counters, names.INSTANCES_GENERATED)
        ),
        names.FILTER_INSTANCES: filtered("task"),
    }


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def cost_figures(status: Mapping[str, Any]) -> dict[str, Any]:
    """What the run spent (at its endpoints' prices, as the client recorded it) per 1,000
    accepted tasks, in total and by stage. Rejected candidates are included: every request
    is, and only accepted tasks divide. ``None`` before the first accepted task."""
    stages = (status.get("usage") or {}).get("stages") or {}
    accepted = int(status.get("accepted", 0) or 0)

    def per_1000(usd: float) -> float | None:
        return 1000 * usd / accepted if accepted else None

    by_stage = {name: float(c.get("cost_usd", 0) or 0) for name, c in stages.items()}
    total = sum(by_stage.values())
    return {
        "usd": total,
        "per_1000_accepted": per_1000(total),
        "by_stage_per_1000_accepted": {name: per_1000(usd) for name, usd in by_stage.items()},
    }


def _usage_figures(status: Mapping[str, Any]) -> dict[str, Any]:
    """Tokens, usage totals, usage by stage and the cached share of a snapshot."""
    usage = usage_totals(status)
    stages = dict((status.get("usage") or {}).get("stages") or {})
    return {
        "tokens": {
            "prompt": usage["prompt_tokens"],
            "cached_prompt": usage["cached_prompt_tokens"],
            "completion": usage["completion_tokens"],
            "total": usage["prompt_tokens"] + usage["completion_tokens"],
        },
        "usage": usage,
        "usage_by_stage": stages,
        # Of each stage's prompt tokens, the share the provider served from its cache.
        "cached_share_by_stage": {
            name: _share(
                float(c.get("cached_prompt_tokens", 0) or 0),
                float(c.get("prompt_tokens", 0) or 0),
            )
            for name, c in stages.items()
        },
        "cost": cost_figures(status),
    }


def summarize(
    status: Mapping[str, Any],
    history: Iterable[Sample] = (),
    *,
    now: float | None = None,
    window: float = RATE_WINDOW,
) -> dict[str, Any]:
    """Progress figures from a status snapshot and recent samples; JSON-able and pure.

    ``now`` defaults to the newest sample's time (take a sample just before calling), or
    the snapshot's start when there is none. Rates are ``None`` until two samples exist;
    the acceptance rate then falls back to the session average, so an ETA shows early.
    """
    samples = list(history)
    counters: Mapping[str, Any] = status.get("counters") or {}
    started = float(status.get("started", 0) or 0)
    if now is None:
        now = samples[-1].time if samples else started
    target = int(status.get("target", 0) or 0)
    accepted = int(status.get("accepted", 0) or 0)
    rpm, tpm, per_second = _rates(samples, window)
    elapsed = max(0.0, now - started)
    if not per_second:
        session = names.value(counters, names.TASKS_ACCEPTED)
        per_second = session / elapsed if elapsed > 0 and session > 0 else per_second
    acceptance = acceptance_figures(counters)
    return {
        "run_dir": status.get("run_dir"),
        "target": target,
        "accepted": accepted,
        "progress": accepted / target if target > 0 else None,
        "pending": int(status.get("pending", 0) or 0),
        "undecided": int(status.get("undecided", 0) or 0),
        "generating": int(status.get("generating", 0) or 0),
        "in_flight": int(status.get("in_flight", 0) or 0),
        "stopping": bool(status.get("stopping", False)),
        "queues": dict(status.get("queues") or {}),
        "stages": stage_figures(counters, acceptance),
        "acceptance": acceptance,
        "rates": {
            "requests_per_minute": rpm,
            "tokens_per_minute": tpm,
            "accepted_per_second": per_second,
            "window_seconds": window,
        },
        **_usage_figures(status),
        "started": started,
        "elapsed_seconds": elapsed,
        "eta_seconds": _eta(target, accepted, per_second),
        "counters": dict(counters),
    }


class StatusCollector(Collector):
    """Prometheus metrics read from a fresh snapshot at every scrape."""

    def __init__(self, status: StatusFn, history: RateHistory) -> None:
        self._status = status
        self._history = history

    def collect(self) -> Iterator[Metric]:
        snapshot = self._status()
        self._history.observe(snapshot)
        yield from metric_families(summarize(snapshot, self._history, window=self._history.window))


def _gauge(name: str, doc: str, value: float | None) -> Iterator[Metric]:
    if value is not None and math.isfinite(value):
        yield GaugeMetricFamily(name, doc, value=value)


def metric_families(summary: Mapping[str, Any]) -> Iterator[Metric]:
    """The metrics of a :func:`summarize` result (documented in ``docs/daemon.md``)."""
    yield from _progress_metrics(summary)
    yield from _acceptance_metrics(summary["acceptance"])
    events = CounterMetricFamily(
        "selfinstruct_events", "Pipeline counters this session.", labels=["name"]
    )
    for name, value in sorted(summary["counters"].items()):
        if not names.is_rejection(name):  # those are selfinstruct_rejections
            events.add_metric([name], float(value))
    yield events
    yield from _usage_metrics(summary["usage_by_stage"])
    yield from _cost_metrics(summary)


def _cost_metrics(summary: Mapping[str, Any]) -> Iterator[Metric]:
    shares = GaugeMetricFamily(
        "selfinstruct_cached_prompt_share",
        "Share of prompt tokens served from the provider's prompt cache, by stage.",
        labels=["stage"],
    )
    for stage, share in sorted(summary["cached_share_by_stage"].items()):
        if share is not None:
            shares.add_metric([stage], share)
    yield shares
    cost = summary["cost"]
    per_stage = GaugeMetricFamily(
        "selfinstruct_cost_per_1000_accepted_usd",
        "USD spent per 1,000 accepted tasks, rejected candidates included, by stage and "
        'in total (stage="total").',
        labels=["stage"],
    )
    for stage, value in sorted(cost["by_stage_per_1000_accepted"].items()):
        if value is not None:
            per_stage.add_metric([stage], value)
    if cost["per_1000_accepted"] is not None:
        per_stage.add_metric(["total"], cost["per_1000_accepted"])
    yield per_stage


def _progress_metrics(summary: Mapping[str, Any]) -> Iterator[Metric]:
    tasks = GaugeMetricFamily("selfinstruct_tasks", "Tasks by state.", labels=["state"])
    for state in ("accepted", "pending", "undecided"):
        tasks.add_metric([state], summary[state])
    yield tasks
    yield from _gauge("selfinstruct_target_tasks", "Target (0: unlimited).", summary["target"])
    yield from _gauge(
        "selfinstruct_generating_requests", "Generation requests under way.", summary["generating"]
    )
    yield from _gauge(
        "selfinstruct_in_flight_requests", "Requests awaiting an answer.", summary["in_flight"]
    )
    yield from _gauge("selfinstruct_stopping", "1 while draining.", float(summary["stopping"]))
    yield from _gauge(
        "selfinstruct_started_timestamp_seconds", "Start of this session.", summary["started"]
    )
    queues = GaugeMetricFamily("selfinstruct_queue_depth", "Items waiting.", labels=["queue"])
    for name, depth in sorted(summary["queues"].items()):
        queues.add_metric([name], depth)
    yield queues
    rates = summary["rates"]
    yield from _gauge(
        "selfinstruct_requests_per_minute", "Completions per minute, last window.",
        rates["requests_per_minute"],
    )  # fmt: skip
    yield from _gauge(
        "selfinstruct_tokens_per_minute", "Tokens per minute, last window.",
        rates["tokens_per_minute"],
    )  # fmt: skip
    yield from _gauge("selfinstruct_eta_seconds", "Seconds to the target.", summary["eta_seconds"])


def _acceptance_metrics(acceptance: Mapping[str, Mapping[str, Any]]) -> Iterator[Metric]:
    ratio = GaugeMetricFamily(
        "selfinstruct_acceptance_ratio", "Share passing the filters.", labels=["level"]
    )
    rejections = CounterMetricFamily(
        "selfinstruct_rejections", "Rejections this session.", labels=["level", "filter"]
    )
    for level, info in sorted(acceptance.items()):
        if info["rate"] is not None:
            ratio.add_metric([level], info["rate"])
        for name, count in sorted(info["rejected_by_filter"].items()):
            rejections.add_metric([level, name], count)
    yield ratio
    yield rejections


def _usage_metrics(usage_by_stage: Mapping[str, Mapping[str, Any]]) -> Iterator[Metric]:
    for key in USAGE_FIELDS:
        family = CounterMetricFamily(
            f"selfinstruct_{key}",
            f"{_USAGE_HELP.get(key, key)} Whole run, by stage.",
            labels=["stage"],
        )
        for stage, counters in sorted(usage_by_stage.items()):
            family.add_metric([stage], float(counters.get(key, 0) or 0))
        yield family


def make_app(status: StatusFn, history: RateHistory) -> web.Application:
    """The aiohttp application; a dedicated registry so two servers never share metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status, history))

    async def healthz(request: web.Request) -> web.Response:
        try:
            stopping = bool(status().get("stopping", False))
        except Exception as error:  # a broken snapshot means an unhealthy run, not a 500
            return web.Response(status=503, text=f"error: {error}\n")
        if stopping:
            return web.Response(status=503, text="stopping\n")
        return web.Response(text="ok\n")

    async def status_json(request: web.Request) -> web.Response:
        snapshot = status()
        history.observe(snapshot)
        summary = summarize(snapshot, history, window=history.window)
        return web.json_response(summary)

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status_json)
    app.router.add_get("/metrics", metrics)
    return app


async def _sample(status: StatusFn, history: RateHistory, interval: float) -> None:
    # A refresh rate so that rates exist however rarely anyone asks; not a wait for a condition.
    while True:
        try:
            history.observe(status())
        except Exception:  # the monitor must never take the run down; /healthz reports it
            log.debug("monitor: status snapshot failed", exc_info=True)
        await anyio.sleep(interval)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine; unsure means no."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


async def serve_monitor(
    status: StatusFn,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sample_interval: float = SAMPLE_INTERVAL,
    clock: Clock = time.time,
    task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the monitor until cancelled; ``task_status.started(url)`` once it listens.

    ``port=0`` picks a free port (the URL says which). A port that cannot be bound is a
    :class:`ConfigError` naming the address. ``clock`` gives wall-clock seconds for the
    rate samples (tests pass a fake one).
    """
    history = RateHistory(clock=clock)
    # A short shutdown timeout: a scraper's idle keep-alive must not hold up the run's exit.
    runner = web.AppRunner(
        make_app(status, history), handle_signals=False, access_log=None, shutdown_timeout=1.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as error:
            raise ConfigError(
                f"monitor: cannot listen on {host}:{port} ({error.strerror or error})"
            ) from None
        bound = runner.addresses[0]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound[1]}"
        if not is_loopback(host):
            log.warning(
                "monitor: listening on %s, reachable from other machines, without "
                "authentication: anyone who can connect can read the run's status and "
                "metrics (bind to 127.0.0.1, or put it behind a proxy that authenticates)",
                url,
            )
        async with anyio.create_task_group() as tg:
            tg.start_soon(_sample, status, history, sample_interval)
            task_status.started(url)
            await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
