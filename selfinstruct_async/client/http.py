"""The :class:`~selfinstruct_async.client.protocol.LLMClient` for OpenAI-compatible HTTP endpoints.

Every stage shares one :class:`HTTPClient`. Per request it charges the token estimate
against the budget, picks the endpoint that can send soonest, waits for that endpoint's
:class:`~selfinstruct_async.client.pacing.Pacer`, sends through a
:class:`~selfinstruct_async.client.transport.Transport`, classifies the answer, and either
returns the parsed :class:`~selfinstruct_async.client.protocol.Completion` or waits (on its own, the
other requests carry on) and queues the retry at the front of the paced queue.

API keys are read once, from the environment variable each endpoint names, go only into
the ``Authorization`` header, and are scrubbed from every message this module produces;
endpoint URLs are shown through :func:`~selfinstruct_async.client.transport.display_url`, so a
``user:password@`` written into a ``base_url`` is never shown either.

What a server says is bounded: a requested wait (``Retry-After`` and kin) longer than the
endpoint's ``max_retry_wait`` is cut to it, with a warning once per endpoint until it next
answers, and any wait over :data:`LONG_WAIT` seconds is logged; an answer larger than
``max_response_bytes`` is a failed attempt, read no further than the cap.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from ..config import EndpointConfig
from ..errors import (
    ConfigError,
    LLMError,
    PermanentHTTPError,
    RequestTooLarge,
    RetriesExhausted,
    TransportError,
)
from .pacing import AnyioClock, Clock, Pacer
from .protocol import Choice, Completion, CompletionRequest, Usage
from .retry import (
    Failure,
    FailureKind,
    RetryPolicy,
    classify_exception,
    failure_from_response,
    rate_limit_info,
)
from .tokens import count_tokens, prompt_tokens
from .transport import (
    AiohttpTransport,
    Transport,
    TransportRequest,
    TransportResponse,
    display_url,
    strip_userinfo,
)
from .usage import UsageMeter

logger = logging.getLogger(__name__)

_REDACTED = "[redacted]"
# Waits longer than this are logged: a pause of minutes must never look like a hang.
LONG_WAIT = 30.0
# Shorter passwords found in a URL are not replaced in free text (it would garble it);
# URLs themselves are always shown without credentials.
_MIN_SECRET = 4
# Failures that say something about the endpoint's health (a 429 says it is busy, and a
# 4xx says the request is wrong; neither is a reason to cool the endpoint down).
_HEALTH_FAILURES = frozenset(
    {
        FailureKind.SERVER_ERROR,
        FailureKind.TIMEOUT,
        FailureKind.CONNECTION,
        FailureKind.MALFORMED,
        FailureKind.EMPTY,
        FailureKind.TOO_LARGE,
    }
)


def pool_size(config: EndpointConfig) -> int:
    """Connections (and in-flight requests) for an endpoint: rate x latency, with headroom.

    Twice the Little's-law estimate absorbs latency tails; never above ``concurrency``.
    """
    if config.rpm is None:
        return config.concurrency
    needed = math.ceil(config.rpm / 60.0 * max(config.expected_latency, 0.0) * 2) + 8
    return max(1, min(config.concurrency, needed))


@dataclass
class Endpoint:
    """One endpoint as the client drives it: config, transport, pacer and health."""

    config: EndpointConfig
    transport: Transport
    pacer: Pacer
    api_key: str | None = field(default=None, repr=False)
    consecutive_failures: int = 0
    cooldowns: int = 0
    # Whether the cap on a server-requested wait was announced since the last success.
    wait_capped: bool = False
    stats: dict[str, int] = field(default_factory=dict)
    _headers: dict[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def chat(self) -> bool:
        return self.config.api == "chat"

    @property
    def url(self) -> str:
        path = "chat/completions" if self.chat else "completions"
        return f"{self.config.base_url.rstrip('/')}/{path}"

    @property
    def shown_url(self) -> str:
        """:attr:`url` for messages: without credentials."""
        return display_url(self.url)

    @property
    def shown_base_url(self) -> str:
        """The configured ``base_url`` for messages: without credentials."""
        return display_url(self.config.base_url)

    def headers(self) -> dict[str, str]:
        """Request headers, including ``Authorization`` when there is a key."""
        if self._headers is None:
            self._headers = self._build_headers()
        return self._headers

    def _build_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1


def request_body(request: CompletionRequest, model: str, *, chat: bool) -> dict[str, Any]:
    """The JSON body of an OpenAI-style completions or chat request."""
    body: dict[str, Any] = {"model": model}
    if chat:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages.append({"role": "user", "content": request.prompt})
        body["messages"] = messages
    else:
        body["prompt"] = request.prompt
    body.update(
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        n=request.n,
    )
    stop = request.stop_for("chat" if chat else "completions")
    if stop:
        body["stop"] = list(stop)
    return body


def parse_completion(body: bytes, *, chat: bool) -> Completion | Failure:
    """Parse a 2xx body; malformed JSON and empty ``choices`` come back as a Failure."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return Failure(FailureKind.MALFORMED, f"malformed JSON body: {exc}", 200)
    if not isinstance(payload, dict):
        return Failure(FailureKind.MALFORMED, "JSON body is not an object", 200)
    raw_choices = payload.get("choices")
    if not isinstance(raw_choices, list):
        return Failure(FailureKind.MALFORMED, "JSON body has no 'choices' list", 200)
    if not raw_choices:
        return Failure(FailureKind.EMPTY, "answer has no choices", 200)
    ordered: list[tuple[int, Choice]] = []
    for position, raw in enumerate(raw_choices):
        if not isinstance(raw, dict):
            return Failure(FailureKind.MALFORMED, "a choice is not an object", 200)
        if chat:
            message = raw.get("message")
            text = message.get("content") if isinstance(message, dict) else None
        else:
            text = raw.get("text")
        if text is None:
            text = ""
        finish = raw.get("finish_reason")
        if not isinstance(text, str) or not (finish is None or isinstance(finish, str)):
            return Failure(FailureKind.MALFORMED, "a choice has a non-string field", 200)
        index = raw.get("index")
        ordered.append((index if isinstance(index, int) else position, Choice(text, finish)))
    ordered.sort(key=lambda pair: pair[0])
    usage = Usage()
    raw_usage = payload.get("usage")
    if isinstance(raw_usage, dict):
        p, c = raw_usage.get("prompt_tokens"), raw_usage.get("completion_tokens")
        if isinstance(p, int) and isinstance(c, int) and p >= 0 and c >= 0:
            usage = Usage(p, c)
    model = payload.get("model")
    return Completion(tuple(c for _, c in ordered), usage, model if isinstance(model, str) else "")


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
    ) -> None:
        if not endpoints:
            raise ConfigError("endpoints: at least one endpoint is required")
        self.endpoints = list(endpoints)
        self.usage = usage
        attempts = max(e.config.max_attempts for e in self.endpoints)
        self.policy = policy if policy is not None else RetryPolicy(max_attempts=attempts)
        self._clock: Clock = clock if clock is not None else AnyioClock()
        self._rng = rng if rng is not None else random.Random()
        self._cooldown_after = cooldown_after
        self._cooldown_base = cooldown_base
        self._cooldown_max = cooldown_max
        self._secrets = [e.api_key for e in self.endpoints if e.api_key]
        self._secrets += [p for e in self.endpoints for p in _url_secrets(e.config.base_url)]
        self._apis = {e.config.api for e in self.endpoints}
        self._next = 0
        self._closed = False

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
        """``text`` with every API key and URL credential this client holds replaced."""
        text = strip_userinfo(text)
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        return text

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
        reserved: dict[str, int] = {
            api: prompt_tokens(request.prompt, request.system, chat=api == "chat")
            + max(request.max_tokens, 0) * max(request.n, 1)
            if counted
            else 0
            for api in self._apis
        }
        candidates: list[Endpoint] = []
        too_large: RequestTooLarge | None = None
        for endpoint in self.endpoints:
            try:
                endpoint.pacer.check_size(reserved[endpoint.config.api])
            except RequestTooLarge as exc:
                too_large = exc
            else:
                candidates.append(endpoint)
        if not candidates:
            assert too_large is not None
            raise too_large
        completion_part = max(request.max_tokens, 0) * max(request.n, 1) if counted else 0
        hold_tokens = max(reserved[e.config.api] for e in candidates)
        hold_cost = max(
            self._cost(e.config, reserved[e.config.api] - completion_part, completion_part)
            for e in candidates
        )
        if not counted:
            return await self._attempts(request, candidates, reserved)
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
        reserved: Mapping[str, int],
    ) -> Completion:
        bodies: dict[int, bytes] = {}
        avoid: Endpoint | None = None
        attempt = 0
        while True:
            attempt += 1
            endpoint = self._choose(candidates, reserved[candidates[0].config.api], avoid)
            tokens = reserved[endpoint.config.api]
            key = id(endpoint)
            if key not in bodies:
                payload = request_body(request, endpoint.config.model, chat=endpoint.chat)
                bodies[key] = json.dumps(payload).encode()
            sent_at = await endpoint.pacer.acquire(tokens, front=attempt > 1)
            endpoint.count("attempts")
            outcome: Completion | Failure
            try:
                response: TransportResponse = await endpoint.transport.send(
                    TransportRequest(
                        endpoint.url,
                        bodies[key],
                        endpoint.headers(),
                        endpoint.config.timeout,
                        endpoint.config.max_response_bytes,
                    )
                )
            except TransportError as exc:
                outcome = classify_exception(exc)
                response = TransportResponse(0)
            else:
                outcome = self._classify(endpoint, response)
            finally:
                endpoint.pacer.release()

            if isinstance(outcome, Completion):
                return self._succeeded(request, endpoint, tokens, response, outcome)
            failure = outcome
            self._failed(request, endpoint, tokens, sent_at, failure, response.headers)
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
            delay = self._retry_delay(request, endpoint, attempt, failure)
            self.usage.record(request.stage, retries=1)
            avoid = endpoint
            await self._clock.sleep_until(self._clock.now() + delay)

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

    def _succeeded(
        self,
        request: CompletionRequest,
        endpoint: Endpoint,
        tokens: int,
        response: TransportResponse,
        completion: Completion,
    ) -> Completion:
        endpoint.count("succeeded")
        endpoint.consecutive_failures = 0
        endpoint.cooldowns = 0
        endpoint.wait_capped = False
        usage = completion.usage
        if usage.total_tokens == 0:
            # The server did not say: estimate, so budgets and pacing still see the spend.
            usage = Usage(
                prompt_tokens(request.prompt, request.system, chat=endpoint.chat),
                sum(count_tokens(c.text) for c in completion.choices),
            )
            completion = Completion(completion.choices, usage, completion.model)
        endpoint.pacer.reconcile(tokens, usage.total_tokens)
        headers = response.headers
        announced = "x-ratelimit-limit-requests" in headers or "x-ratelimit-limit-tokens" in headers
        pacer = endpoint.pacer
        if announced or pacer.rpm is not None or pacer.tpm is not None:
            info = rate_limit_info(headers)
            pacer.on_success(
                limit_requests=info.limit_requests,
                limit_tokens=info.limit_tokens,
                remaining_requests=info.remaining_requests,
                remaining_tokens=info.remaining_tokens,
            )
        self.usage.record(
            request.stage,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            requests=1,
            cost_usd=self._cost(endpoint.config, usage.prompt_tokens, usage.completion_tokens),
        )
        return completion

    def _failed(
        self,
        request: CompletionRequest,
        endpoint: Endpoint,
        tokens: int,
        sent_at: float,
        failure: Failure,
        headers: Mapping[str, str],
    ) -> None:
        endpoint.count(failure.kind.value)
        completion_part = min(tokens, max(request.max_tokens, 0) * max(request.n, 1))
        if failure.kind is FailureKind.RATE_LIMITED:
            # Refused before any work: the server charged nothing, neither do we.
            endpoint.pacer.reconcile(tokens, 0)
            self.usage.record(request.stage, rate_limited=1)
            info = rate_limit_info(headers)
            announced = info.limit_tokens if failure.limit_type == "tokens" else info.limit_requests
            endpoint.pacer.on_throttled(failure.limit_type, sent_at, announced)
            return
        endpoint.pacer.reconcile(tokens, tokens - completion_part)
        if failure.kind not in _HEALTH_FAILURES or len(self.endpoints) < 2:
            # With one endpoint a cool-down would freeze all traffic; per-request backoff
            # is the better answer there.
            return
        endpoint.consecutive_failures += 1
        if endpoint.consecutive_failures >= self._cooldown_after:
            pause = min(self._cooldown_max, self._cooldown_base * 2.0**endpoint.cooldowns)
            endpoint.cooldowns += 1
            endpoint.consecutive_failures = 0
            endpoint.count("cooldowns")
            endpoint.pacer.hold_until(self._clock.now() + pause)
            logger.warning(
                "%s",
                self.redact(
                    f"endpoint {endpoint.shown_base_url} failed {self._cooldown_after} times "
                    f"in a row ({failure.kind.value}); cooling down for {pause:g} s"
                ),
            )


def _url_secrets(url: str) -> list[str]:
    """The credentials written into ``url`` (``user:password@``), long enough to scrub."""
    userinfo, at, _ = url.partition("://")[2].partition("/")[0].rpartition("@")
    if not at or not userinfo:
        return []
    password = userinfo.partition(":")[2]
    # Clients send the percent-decoded form (Basic auth), so messages may quote either.
    forms = {userinfo, password, unquote(userinfo), unquote(password)}
    return sorted((f for f in forms if len(f) >= _MIN_SECRET), key=len, reverse=True)


def build_http_client(
    endpoints: Sequence[EndpointConfig],
    usage: UsageMeter,
    *,
    max_tokens_budget: int | None = None,
    max_cost_budget: float | None = None,
    environ: Mapping[str, str] = os.environ,
    clock: Clock | None = None,
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
    return HTTPClient(built, usage, clock=clock)
