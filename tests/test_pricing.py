"""client/pricing: cached prompt tokens at their own price, batch requests at the batch rate."""

from __future__ import annotations

import pytest

from selfinstruct_async.client.pricing import request_cost
from selfinstruct_async.client.protocol import Usage
from selfinstruct_async.config import EndpointConfig

SMALL_MODEL = EndpointConfig(prompt_price=0.15, cached_prompt_price=0.075, completion_price=0.60)


def test_cached_prompt_tokens_cost_the_cached_price_and_the_rest_the_prompt_price() -> None:
    usage = Usage(
        prompt_tokens=2_000_000, completion_tokens=1_000_000, cached_prompt_tokens=1_000_000
    )
    assert request_cost(SMALL_MODEL, usage) == pytest.approx(0.15 + 0.075 + 0.60)


def test_without_a_cached_price_cached_tokens_cost_the_prompt_price() -> None:
    config = EndpointConfig(prompt_price=0.15, completion_price=0.60)
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=0, cached_prompt_tokens=500_000)
    assert request_cost(config, usage) == pytest.approx(0.15)


def test_a_batch_request_costs_the_batch_multiplier_of_the_streaming_price() -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, cached_prompt_tokens=0)
    assert request_cost(SMALL_MODEL, usage, batch=True) == pytest.approx(0.75 / 2)
