"""What one answer cost: its usage priced at an endpoint's rates, streaming or batch.

The one place that turns token counts into dollars for the clients, so the HTTP client,
the Batch API client and the budget gate agree on what a request costs.
"""

from __future__ import annotations

from ..config import EndpointConfig
from .protocol import Usage


def request_cost(config: EndpointConfig, usage: Usage, *, batch: bool = False) -> float:
    """USD for ``usage`` at ``config``'s prices; cached prompt tokens at the cached price."""
    cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
    cached_price = (
        config.prompt_price if config.cached_prompt_price is None else (config.cached_prompt_price)
    )
    cost = (
        (usage.prompt_tokens - cached) * config.prompt_price
        + cached * cached_price
        + usage.completion_tokens * config.completion_price
    ) / 1e6
    return cost * config.batch_price_multiplier if batch else cost
