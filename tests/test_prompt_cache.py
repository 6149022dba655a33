"""The simulated prompt cache, and cached tokens from the provider's answer to the usage meter.

The cache follows OpenAI's published rules (a prefix of at least 1,024 tokens, counted in
128-token steps, forgotten minutes after its last use); the HTTP tests send real requests
to a simulator on loopback through the real client, which counts and prices what the
answer says was cached.
"""

from __future__ import annotations

import pytest

from selfinstruct_async.client.http import build_http_client
from selfinstruct_async.client.protocol import CompletionRequest
from selfinstruct_async.client.tokens import count_tokens
from selfinstruct_async.client.usage import UsageMeter
from selfinstruct_async.config import EndpointConfig
from selfinstruct_async.simulator.__main__ import _parser, settings_from_args
from selfinstruct_async.simulator.prompt_cache import PromptCache
from tests.fixtures.simulator import MakeSimulator


def tokens(n: int, start: int = 0) -> list[int]:
    return list(range(start, start + n))


def test_a_prompt_below_1024_tokens_is_never_cached() -> None:
    cache = PromptCache()
    short = tokens(1023)
    assert cache.lookup_and_store(short, now=0.0) == 0
    assert cache.lookup_and_store(short, now=1.0) == 0
    assert len(cache) == 0


def test_a_repeated_prefix_is_cached_in_128_token_steps_from_1024() -> None:
    cache = PromptCache()
    first = tokens(1300)
    assert cache.lookup_and_store(first, now=0.0) == 0  # nothing seen yet
    assert cache.lookup_and_store(first, now=1.0) == 1280  # 1024 + 2 * 128 <= 1300
    # Another prompt sharing the first 1,200 tokens: 1,152 is the longest full step.
    second = tokens(1200) + tokens(400, start=50_000)
    assert cache.lookup_and_store(second, now=2.0) == 1152
    # Sharing fewer than 1,024 tokens is sharing nothing a provider caches.
    third = tokens(1000) + tokens(500, start=90_000)
    assert cache.lookup_and_store(third, now=3.0) == 0


def test_a_prefix_is_forgotten_ttl_seconds_after_its_last_use() -> None:
    cache = PromptCache(ttl=10.0)
    prompt = tokens(1100)
    cache.lookup_and_store(prompt, now=0.0)
    assert cache.lookup_and_store(prompt, now=9.0) == 1024
    assert cache.lookup_and_store(prompt, now=18.0) == 1024  # last used at 9
    assert cache.lookup_and_store(prompt, now=40.0) == 0  # 22 s unused: gone


def test_the_cache_keeps_at_most_max_entries_and_forgets_the_least_recently_used() -> None:
    cache = PromptCache(max_entries=40)
    prompts = [tokens(1100, start=10_000 * i) for i in range(100)]  # one entry each
    for number, prompt in enumerate(prompts):
        cache.lookup_and_store(prompt, now=float(number))
        assert len(cache) <= 40
    assert cache.lookup_and_store(prompts[0], now=200.0) == 0
    assert cache.lookup_and_store(prompts[-1], now=201.0) == 1024


def test_the_simulator_options_switch_the_cache_off_and_set_its_ttl() -> None:
    settings = settings_from_args(_parser().parse_args(["--no-prompt-cache"]))
    assert settings.prompt_cache is False
    settings = settings_from_args(_parser().parse_args(["--prompt-cache-ttl", "300"]))
    assert (settings.prompt_cache, settings.prompt_cache_ttl) == (True, 300.0)
    with pytest.raises(ValueError, match="prompt_cache_ttl"):
        settings_from_args(_parser().parse_args(["--prompt-cache-ttl", "0"]))


def long_prompt(ending: str) -> str:
    shared = " ".join(f"Rule {n}: keep answers short and exact." for n in range(150))
    return f"{shared}\nTask: {ending}"


def expected_cached() -> int:
    """What OpenAI would report for a prompt whose long shared part was seen before."""
    common = count_tokens(long_prompt("")) - 2  # the tail may merge with the last tokens
    return 1024 + (common - 1024) // 128 * 128


@pytest.mark.anyio
async def test_cached_tokens_reach_the_usage_meter_and_cost_the_cached_price(
    make_simulator: MakeSimulator,
) -> None:
    sim = await make_simulator()
    config = EndpointConfig(
        base_url=sim.base_url,
        model="sim-model",
        prompt_price=0.15,
        cached_prompt_price=0.075,
        completion_price=0.60,
    )
    usage = UsageMeter()
    first = CompletionRequest(stage="label", prompt=long_prompt("Is it spam?"), max_tokens=5)
    second = CompletionRequest(stage="label", prompt=long_prompt("Is it ham?"), max_tokens=5)
    async with build_http_client([config], usage) as client:
        await client.complete(first)
        cold = usage.stage("label")
        await client.complete(second)
    warm = usage.stage("label")
    assert count_tokens(second.prompt) > 1100
    assert cold.cached_prompt_tokens == 0
    cached = warm.cached_prompt_tokens
    assert cached == expected_cached()
    assert sim.stats.cached_prompt_tokens == cached
    prompt = warm.prompt_tokens - cold.prompt_tokens
    completion = warm.completion_tokens - cold.completion_tokens
    paid = ((prompt - cached) * 0.15 + cached * 0.075 + completion * 0.60) / 1e6
    assert warm.cost_usd - cold.cost_usd == pytest.approx(paid)


@pytest.mark.anyio
async def test_a_simulator_without_a_prompt_cache_reports_nothing_cached(
    make_simulator: MakeSimulator,
) -> None:
    sim = await make_simulator(prompt_cache=False)
    usage = UsageMeter()
    request = CompletionRequest(stage="label", prompt=long_prompt("Is it spam?"), max_tokens=5)
    config = EndpointConfig(base_url=sim.base_url, model="sim-model")
    async with build_http_client([config], usage) as client:
        await client.complete(request)
        await client.complete(request)
    assert usage.stage("label").cached_prompt_tokens == 0
    assert usage.stage("label").prompt_tokens == 2 * count_tokens(request.prompt)
