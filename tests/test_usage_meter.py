"""The usage meter's cached prompt tokens and Batch API share, and old snapshots restoring."""

from __future__ import annotations

import json

from selfinstruct_async.client.usage import USAGE_FIELDS, UsageMeter


def test_cached_tokens_are_a_part_of_the_prompt_tokens_never_more() -> None:
    usage = UsageMeter()
    usage.record("label", prompt_tokens=1200, cached_prompt_tokens=1024, requests=1)
    usage.record("label", prompt_tokens=100, cached_prompt_tokens=5000, requests=1)
    label = usage.stage("label")
    assert (label.prompt_tokens, label.cached_prompt_tokens) == (1300, 1124)
    assert usage.totals().cached_prompt_tokens == 1124


def test_batch_answers_are_counted_apart_from_streamed_ones() -> None:
    usage = UsageMeter()
    usage.record("gen", prompt_tokens=100, completion_tokens=40, requests=1, cost_usd=0.2)
    usage.record(
        "gen",
        prompt_tokens=1100,
        cached_prompt_tokens=1024,
        completion_tokens=10,
        requests=1,
        cost_usd=0.1,
        batch=True,
    )
    usage.record("gen", failures=1, batch=True)  # a failed batch line adds no token
    gen = usage.stage("gen")
    assert (gen.requests, gen.prompt_tokens, gen.completion_tokens) == (2, 1200, 50)
    assert (gen.batch_requests, gen.batch_prompt_tokens) == (1, 1100)
    assert (gen.batch_cached_prompt_tokens, gen.batch_completion_tokens) == (1024, 10)
    assert gen.failures == 1


def test_a_snapshot_from_before_cached_and_batch_counters_restores_with_zeros() -> None:
    old = {
        "version": 1,
        "stages": {
            "generate_instructions": {
                "prompt_tokens": 500,
                "completion_tokens": 200,
                "requests": 3,
                "retries": 1,
                "rate_limited": 0,
                "failures": 0,
                "cost_usd": 0.25,
            }
        },
    }
    usage = UsageMeter()
    usage.restore(old)
    gen = usage.stage("generate_instructions")
    assert (gen.prompt_tokens, gen.cost_usd) == (500, 0.25)
    assert gen.cached_prompt_tokens == gen.batch_requests == gen.batch_prompt_tokens == 0
    # Counting goes on from there, and the new snapshot round-trips every field.
    usage.record("generate_instructions", prompt_tokens=1100, cached_prompt_tokens=1024, batch=True)
    again = UsageMeter()
    again.restore(json.loads(json.dumps(usage.snapshot())))
    assert again.snapshot() == usage.snapshot()
    assert set(usage.snapshot()["stages"]["generate_instructions"]) == set(USAGE_FIELDS)
