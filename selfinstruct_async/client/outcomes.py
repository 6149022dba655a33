"""What one attempt's outcome changes: endpoint health, pacing, usage, cool-downs.

:class:`~selfinstruct_async.client.http.HTTPClient` sends; after each attempt it books the
outcome here. An answer resets the endpoint's failure streak, reconciles the tokens the
pacer held with what the server reported (estimating them when it reported none) and
feeds announced rate limits to the pacer. A failure charges what the server may have
spent, slows the pacer on a 429, and cools down an endpoint that failed several times in
a row while another one can take its traffic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .endpoint import Endpoint
from .pricing import request_cost
from .protocol import Completion, CompletionRequest, Usage
from .retry import Failure, FailureKind, rate_limit_info
from .tokens import Reservation, estimate_tokens, prompt_tokens
from .transport import TransportResponse
from .usage import UsageMeter

logger = logging.getLogger("selfinstruct_async.client.http")

# Failures that say something about the endpoint's health (a 429 says it is busy, and a
# 4xx says the request is wrong; neither is a reason to cool the endpoint down).
HEALTH_FAILURES = frozenset(
    {
        FailureKind.SERVER_ERROR,
        FailureKind.TIMEOUT,
        FailureKind.CONNECTION,
        FailureKind.MALFORMED,
        FailureKind.EMPTY,
        FailureKind.TOO_LARGE,
    }
)


@dataclass(frozen=True)
class Cooldown:
    """After ``after`` health failures in a row, pause the endpoint ``base`` seconds,
    doubling with each further cool-down up to ``longest``."""

    after: int = 3
    base: float = 2.0
    longest: float = 60.0


class FailureContext(Protocol):
    """What booking a failure needs from the client."""

    usage: UsageMeter
    cooldown: Cooldown

    @property
    def endpoint_count(self) -> int: ...

    def now(self) -> float: ...

    def redact(self, text: str) -> str: ...


def record_success(
    usage_meter: UsageMeter,
    request: CompletionRequest,
    endpoint: Endpoint,
    held: Reservation,
    response: TransportResponse,
    completion: Completion,
) -> Completion:
    """Book an answer: the endpoint's health, the pacer's tokens and limits, the usage.

    Returns ``completion``, with estimated usage when the server reported none.
    """
    endpoint.count("succeeded")
    endpoint.consecutive_failures = 0
    endpoint.cooldowns = 0
    endpoint.wait_capped = False
    usage = completion.usage
    if usage.total_tokens == 0:
        # The server did not say: estimate, so budgets and pacing still see the spend.
        usage = Usage(
            prompt_tokens(request.prompt, request.system, chat=endpoint.chat),
            sum(estimate_tokens(c.text) for c in completion.choices),
        )
        completion = Completion(completion.choices, usage, completion.model)
    endpoint.pacer.reconcile(held.total, usage.total_tokens)
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
    usage_meter.record_answer(request.stage, usage, cost_usd=request_cost(endpoint.config, usage))
    return completion


def record_failure(
    client: FailureContext,
    request: CompletionRequest,
    endpoint: Endpoint,
    held: Reservation,
    sent_at: float,
    failure: Failure,
    headers: Mapping[str, str],
) -> None:
    """Book a failed attempt: the pacer (a 429 slows it), the usage, and a cool-down of
    an endpoint that failed ``cooldown.after`` times in a row while others can serve."""
    endpoint.count(failure.kind.value)
    if failure.kind is FailureKind.RATE_LIMITED:
        # Refused before any work: the server charged nothing, neither do we.
        endpoint.pacer.reconcile(held.total, 0)
        client.usage.record(request.stage, rate_limited=1)
        info = rate_limit_info(headers)
        announced = info.limit_tokens if failure.limit_type == "tokens" else info.limit_requests
        endpoint.pacer.on_throttled(failure.limit_type, sent_at, announced)
        return
    # The server read the prompt but generated nothing we got: only the prompt counts.
    endpoint.pacer.reconcile(held.total, held.prompt)
    if failure.kind not in HEALTH_FAILURES or client.endpoint_count < 2:
        # With one endpoint a cool-down would freeze all traffic; per-request backoff
        # is the better answer there.
        return
    endpoint.consecutive_failures += 1
    if endpoint.consecutive_failures >= client.cooldown.after:
        pause = min(client.cooldown.longest, client.cooldown.base * 2.0**endpoint.cooldowns)
        endpoint.cooldowns += 1
        endpoint.consecutive_failures = 0
        endpoint.count("cooldowns")
        endpoint.pacer.hold_until(client.now() + pause)
        logger.warning(
            "%s",
            client.redact(
                f"endpoint {endpoint.shown_base_url} failed {client.cooldown.after} times "
                f"in a row ({failure.kind.value}); cooling down for {pause:g} s"
            ),
        )
