"""The :class:`~selfinstruct_async.client.protocol.LLMClient` for OpenAI-compatible HTTP endpoints.

Every stage shares one :class:`HTTPClient`. Per request it charges the token estimate
against the budget, picks the endpoint that can send soonest, waits for that endpoint's
:class:`~selfinstruct_async.client.pacing.Pacer`, sends through a
:class:`~selfinstruct_async.client.transport.Transport`, classifies the answer, books the
outcome (:mod:`~selfinstruct_async.client.outcomes`), and either returns the parsed
:class:`~selfinstruct_async.client.protocol.Completion` or waits (on its own, the other
requests carry on) and queues the retry at the front of the paced queue.

API keys are read once, from the environment variable each endpoint names, go only into
the ``Authorization`` header, and are scrubbed from every message this module produces by
the same :class:`~selfinstruct_async.observe.logs.Redactor` rules as log lines; endpoint
URLs are shown through :func:`~selfinstruct_async.client.transport.display_url`, so a
``user:password@`` written into a ``base_url`` is never shown either.

What a server says is bounded: a requested wait (``Retry-After`` and kin) longer than the
endpoint's ``max_retry_wait`` is cut to it, with a warning once per endpoint until it next
answers, and any wait over :data:`LONG_WAIT` seconds is logged; an answer larger than
``max_response_bytes`` is a failed attempt, read no further than the cap.

A refusal saying that prompt plus ``max_tokens`` overflow the model's context is retried
at once with a smaller ``max_tokens``: what the refusal's numbers say fits, else 0.8 of
the last try (:func:`~selfinstruct_async.client.retry.next_max_tokens`). Each shrink is
counted (``retries.context_length``, through the callback given to :meth:`HTTPClient.count_to`)
and does not use up the request's ``max_attempts``, which are for transient failures;
below ``min_max_tokens`` (or when the prompt alone is too long) the request ends in
:class:`~selfinstruct_async.errors.ContextLengthExceeded`, a refusal of this one prompt
that the run survives.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any

from .. import counters as names
from ..answer_formats import constraint_fields
from ..config import EndpointConfig
from ..errors import (
    ConfigError,
    ContextLengthExceeded,
    LLMError,
    PermanentHTTPError,
    RequestTooLarge,
    RetriesExhausted,
    TransportError,
)
from ..observe.logs import Redactor, url_secrets
from . import prompt_json, request_json
from .endpoint import Endpoint, pool_size
from .openai_format import parse_completion, request_body
from .outcomes import Cooldown, record_failure, record_success
from .pacing import AnyioClock, Clock, Pacer
from .protocol import Completion, CompletionRequest
from .retry import (
    MIN_MAX_TOKENS,
    Failure,
    FailureKind,
    RetryPolicy,
    classify_exception,
    failure_from_response,
    next_max_tokens,
    parse_duration,
)
from .tokens import NOTHING_RESERVED, Reservation, reservation
from .transport import (
    AiohttpTransport,
    TransportRequest,
    TransportResponse,
    display_url,
)
from .usage import UsageMeter

logger = logging.getLogger(__name__)

# Waits longer than this are logged: a pause of minutes must never look like a hang.
LONG_WAIT = 30.0


class HTTPClient:
    """Paced, retrying requests over one or more endpoints; implements ``LLMClient``."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        usage: UsageMeter,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        cooldown_after: int = 3,
        cooldown_base: float = 2.0,
        cooldown_max: float = 60.0,
        min_max_tokens: int = MIN_MAX_TOKENS,
    ) -> None:
        if not endpoints:
            raise ConfigError("endpoints: at least one endpoint is required")
        if min_max_tokens < 1:
            raise ConfigError(f"min_max_tokens: must be at least 1, got {min_max_tokens}")
        self.endpoints = list(endpoints)
        self.usage = usage
        attempts = max(e.config.max_attempts for e in self.endpoints)
        self.policy = policy if policy is not None else RetryPolicy(max_attempts=attempts)
        self._clock: Clock = clock if clock is not None else AnyioClock()
        self._rng = rng if rng is not None else random.Random()
        self.cooldown = Cooldown(cooldown_after, cooldown_base, cooldown_max)
        self._redactor = Redactor(
            [e.api_key for e in self.endpoints if e.api_key]
            + [s for e in self.endpoints for s in url_secrets(e.config.base_url)]
        )
        self._apis = {e.config.api for e in self.endpoints}
        self._next = 0
        self._closed = False
        self.min_max_tokens = min_max_tokens
        self._count: Callable[[str], None] | None = None
        self._context_warned: set[int] = set()  # endpoints (by id) already warned about
        self._bodies = request_json.Frames(prompt_json.PromptEncoder(ensure_ascii=True))

    def count_to(self, count: Callable[[str], None] | None) -> None:
        """Send the client's run counters (``retries.context_length``) to ``count``.

        The run's counter buffer is built after the client, so it is attached here.
        """
        self._count = count

    async def __aenter__(self) -> HTTPClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every endpoint's transport."""
        self._closed = True
        for endpoint in self.endpoints:
            await endpoint.transport.aclose()

    def redact(self, text: str) -> str:
        """``text`` scrubbed as a log line is, also of this client's keys and URL credentials."""
        return self._redactor(text)

    # -- the request ----------------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> Completion:
        """Send ``request``; raise an :class:`~selfinstruct_async.errors.LLMError` if it fails.

        ``RequestTooLarge`` and ``BudgetExhausted`` are raised before anything is sent.
        """
        if self._closed:
            raise LLMError("the HTTP client is closed")
        # Counting tokens costs CPU; only token limits and budgets need it before sending.
        counted = self.usage.has_budget or any(
            e.pacer.tokens.current is not None for e in self.endpoints
        )
        reserved: dict[str, Reservation] = {
            api: reservation(request, chat=api == "chat") if counted else NOTHING_RESERVED
            for api in self._apis
        }
        candidates: list[Endpoint] = []
        too_large: RequestTooLarge | None = None
        for endpoint in self.endpoints:
            try:
                endpoint.pacer.check_size(reserved[endpoint.config.api].total)
            except RequestTooLarge as exc:
                too_large = exc
            else:
                candidates.append(endpoint)
        if not candidates:
            assert too_large is not None
            raise too_large
        if not counted:
            return await self._attempts(request, candidates, reserved)
        held = [reserved[e.config.api] for e in candidates]
        hold_tokens = max(r.total for r in held)
        hold_cost = max(
            self._cost(e.config, r.prompt, r.completion)
            for e, r in zip(candidates, held, strict=True)
        )
        self.usage.reserve(hold_tokens, hold_cost)
        try:
            return await self._attempts(request, candidates, reserved)
        finally:
            self.usage.release(hold_tokens, hold_cost)

    @staticmethod
    def _cost(config: EndpointConfig, prompt: int, completion: int) -> float:
        return (prompt * config.prompt_price + completion * config.completion_price) / 1e6

    def _choose(
        self, candidates: Sequence[Endpoint], tokens: int, avoid: Endpoint | None
    ) -> Endpoint:
        if len(candidates) == 1:
            return candidates[0]
        best: Endpoint | None = None
        best_delay = math.inf
        start = self._next
        self._next += 1
        for i in range(len(candidates)):
            endpoint = candidates[(start + i) % len(candidates)]
            delay = endpoint.pacer.expected_delay(tokens)
            if endpoint is avoid:
                delay += max(1.0, endpoint.config.expected_latency)
            if delay < best_delay:
                best, best_delay = endpoint, delay
        assert best is not None
        return best

    async def _attempts(
        self,
        request: CompletionRequest,
        candidates: Sequence[Endpoint],
        reserved: Mapping[str, Reservation],
    ) -> Completion:
        bodies: dict[int, bytes] = {}
        avoid: Endpoint | None = None
        # ``attempt`` counts against max_attempts; a context-length shrink does not, since
        # it changes the request and its number is bounded by the floor.
        attempt = 0
        sent = request
        while True:
            attempt += 1
            endpoint = self._choose(candidates, reserved[candidates[0].config.api].total, avoid)
            held = reserved[endpoint.config.api]
            key = id(endpoint)
            if key not in bodies:
                bodies[key] = self._body(sent, endpoint)
            retrying = attempt > 1 or sent is not request
            sent_at = await endpoint.pacer.acquire(held.total, front=retrying)
            outcome, response = await self._send(endpoint, bodies[key])
            reset = response.headers.get("x-ratelimit-reset-requests")
            if reset is not None:
                # Where the provider's request window ends, seen from the send: its slices.
                endpoint.pacer.observe_reset(sent_at, parse_duration(reset))
            if isinstance(outcome, Completion):
                return record_success(self.usage, request, endpoint, held, response, outcome)
            record_failure(self, request, endpoint, held, sent_at, outcome, response.headers)
            if outcome.kind is FailureKind.CONTEXT_LENGTH:
                sent = self._shrunk(sent, endpoint, outcome, response)
                bodies.clear()
                attempt -= 1
                self.usage.record(request.stage, retries=1)
                continue
            self._raise_if_final(request, endpoint, attempt, outcome, response)
            delay = self._retry_delay(request, endpoint, attempt, outcome)
            self.usage.record(request.stage, retries=1)
            avoid = endpoint
            await self._clock.sleep_until(self._clock.now() + delay)

    def _body(self, sent: CompletionRequest, endpoint: Endpoint) -> bytes:
        """The JSON body of ``sent`` for ``endpoint``, from the frame of its shape."""
        config = endpoint.config

        def build(prompt: str) -> dict[str, Any]:
            with_prompt = sent if prompt is sent.prompt else replace(sent, prompt=prompt)
            payload = request_body(with_prompt, config.model, chat=endpoint.chat)
            # The server's own field for constrained decoding, when the endpoint has one.
            return payload | constraint_fields(sent.answer_format, config.constrained_decoding)

        found = request_json.shape(sent)
        frame = (config.model, endpoint.chat, config.constrained_decoding, found)
        return self._bodies.dumps(None if found is None else frame, build, sent.prompt).encode()

    async def _send(
        self, endpoint: Endpoint, body: bytes
    ) -> tuple[Completion | Failure, TransportResponse]:
        """One attempt: the answer (or the failure it is) and the response it came in."""
        endpoint.count("attempts")
        try:
            response = await endpoint.transport.send(
                TransportRequest(
                    endpoint.url,
                    body,
                    endpoint.headers(),
                    endpoint.config.timeout,
                    endpoint.config.max_response_bytes,
                )
            )
        except TransportError as exc:
            return classify_exception(exc), TransportResponse(0)
        else:
            return self._classify(endpoint, response), response
        finally:
            endpoint.pacer.release()

    def _shrunk(
        self,
        sent: CompletionRequest,
        endpoint: Endpoint,
        failure: Failure,
        response: TransportResponse,
    ) -> CompletionRequest:
        """``sent`` with the next ``max_tokens`` to try; raises if none down to the floor fits."""
        assert failure.overflow is not None
        smaller = next_max_tokens(sent.max_tokens, failure.overflow, floor=self.min_max_tokens)
        if smaller is None:
            self.usage.record(sent.stage, failures=1)
            raise ContextLengthExceeded(
                failure.status or 0,
                self.redact(response.body.decode("utf-8", "replace")),
                max_tokens=sent.max_tokens,
                floor=self.min_max_tokens,
            )
        if self._count is not None:
            self._count(names.RETRIES_CONTEXT_LENGTH)
        # Once per endpoint: the setting is too large for the model, and every long prompt
        # of the run would say so again.
        level = logging.DEBUG if id(endpoint) in self._context_warned else logging.WARNING
        self._context_warned.add(id(endpoint))
        logger.log(
            level,
            "%s",
            self.redact(
                f"{sent.stage}: {endpoint.shown_base_url} refused max_tokens={sent.max_tokens} "
                f"as over the model's context; retrying with {smaller} (such retries are "
                f"counted in {names.RETRIES_CONTEXT_LENGTH})"
            ),
        )
        return replace(sent, max_tokens=smaller)

    def _raise_if_final(
        self,
        request: CompletionRequest,
        endpoint: Endpoint,
        attempt: int,
        failure: Failure,
        response: TransportResponse,
    ) -> None:
        """Raise the request's error if ``failure`` ends it: permanent, or the last attempt."""
        if not failure.retryable:
            self.usage.record(request.stage, failures=1)
            raise PermanentHTTPError(
                failure.status or 0,
                self.redact(response.body.decode("utf-8", "replace")),
            )
        if not self.policy.should_retry(attempt, failure):
            self.usage.record(request.stage, failures=1)
            raise RetriesExhausted(
                self.redact(
                    f"{request.stage}: {attempt} attempt(s) failed; last at "
                    f"{endpoint.shown_url}: {failure.kind.value}: {failure.message}"
                ),
                attempts=attempt,
                last_failure=failure.kind.value,
            )

    def _classify(self, endpoint: Endpoint, response: TransportResponse) -> Completion | Failure:
        """The answer as a completion, or the failure it is."""
        # Transports other than aiohttp's may not stop at the cap; the rule is the same.
        limit = endpoint.config.max_response_bytes
        if len(response.body) > limit:
            return Failure(
                FailureKind.TOO_LARGE,
                f"answer larger than {limit} bytes from {endpoint.shown_url}",
                response.status,
            )
        failure = failure_from_response(response.status, response.headers, response.body)
        if failure is not None:
            return failure
        return parse_completion(response.body, chat=endpoint.chat)

    def _retry_delay(
        self, request: CompletionRequest, endpoint: Endpoint, attempt: int, failure: Failure
    ) -> float:
        """The wait before the next attempt, the server's request capped, long ones logged."""
        cap = endpoint.config.max_retry_wait
        delay = self.policy.delay(attempt, failure, self._rng, cap=cap)
        requested = failure.retry_after
        if requested is not None and requested > min(cap, LONG_WAIT):
            asked = (
                f"endpoint {endpoint.shown_base_url} asked to wait {requested:g}s "
                f"({failure.wait_source or 'Retry-After'})"
            )
            if requested > cap:
                where = f"endpoints[{self.endpoints.index(endpoint)}].max_retry_wait"
                message = f"{asked}; waiting {cap:g}s at most ({where})"
                # Once per episode (until the endpoint next answers): every request of a
                # throttled run would say the same. Later long waits still show at INFO.
                if not endpoint.wait_capped:
                    level = logging.WARNING
                else:
                    level = logging.INFO if delay > LONG_WAIT else logging.DEBUG
                endpoint.wait_capped = True
            else:
                message, level = f"{asked}; waiting {delay:.0f}s", logging.INFO
            logger.log(level, "%s", self.redact(message))
        elif delay > LONG_WAIT:
            logger.info(
                "%s",
                self.redact(
                    f"{request.stage}: waiting {delay:.0f}s before retrying at "
                    f"{endpoint.shown_base_url}"
                ),
            )
        logger.debug(
            "%s",
            self.redact(
                f"{request.stage}: attempt {attempt} at {endpoint.shown_url} failed "
                f"({failure.kind.value}: {failure.message[:200]}); retry in {delay:.3f} s"
            ),
        )
        return delay

    def now(self) -> float:
        """The client clock's time (cool-downs are timed with it)."""
        return self._clock.now()

    @property
    def endpoint_count(self) -> int:
        return len(self.endpoints)


def build_http_client(
    endpoints: Sequence[EndpointConfig],
    usage: UsageMeter,
    *,
    max_tokens_budget: int | None = None,
    max_cost_budget: float | None = None,
    environ: Mapping[str, str] = os.environ,
    clock: Clock | None = None,
    min_max_tokens: int = MIN_MAX_TOKENS,
) -> HTTPClient:
    """The client for ``endpoints``: one aiohttp session and pacer per endpoint.

    Keys are read from ``environ[config.api_key_env]`` now; a missing variable means no
    ``Authorization`` header (local servers such as vLLM or llama.cpp need none).
    """
    if not endpoints:
        raise ConfigError("endpoints: at least one endpoint is required")
    built: list[Endpoint] = []
    for i, config in enumerate(endpoints):
        if not config.base_url:
            raise ConfigError(f"endpoints[{i}].base_url: required")
        if not config.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"endpoints[{i}].base_url: must start with http:// or https://, "
                f"got {display_url(config.base_url)!r}"
            )
        key = environ.get(config.api_key_env) if config.api_key_env else None
        size = pool_size(config)
        pacer = Pacer(
            rpm=config.rpm,
            tpm=config.tpm,
            concurrency=size,
            clock=clock,
            expected_latency=config.expected_latency,
        )
        built.append(Endpoint(config, AiohttpTransport(limit=size), pacer, key or None))
    if max_tokens_budget is not None or max_cost_budget is not None:
        usage.set_budget(max_tokens=max_tokens_budget, max_cost=max_cost_budget)
    return HTTPClient(built, usage, clock=clock, min_max_tokens=min_max_tokens)
