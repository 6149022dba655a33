"""The bucket bound never undercounts an overlap, and long texts stay exact without it."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfinstruct_async.similarity import RougeTokenizer, SimilarityIndex, rouge_l_f
from selfinstruct_async.similarity.buckets import MAX_ITEM, TokenBuckets

# Ids up to 700 put several tokens in most buckets (id & 255), so collisions are exercised.
token_ids = st.lists(st.integers(0, 700), max_size=40)
# Runs of one token push a single byte lane towards its limit.
repeated = st.tuples(st.integers(0, 700), st.integers(1, MAX_ITEM)).map(lambda r: [r[0]] * r[1])


def bucket_sum(item: list[int], query: list[int], vocabulary: int) -> int:
    rows = {t % 256 for t in query if t < vocabulary}
    return sum(1 for t in item if t % 256 in rows)


def overlap(item: list[int], query: list[int], vocabulary: int) -> int:
    have = Counter(item)
    return sum(min(c, have[t]) for t, c in Counter(query).items() if t < vocabulary)


@given(
    st.lists(st.one_of(token_ids, repeated), max_size=60),
    token_ids,
    st.integers(1, 30),
    st.sampled_from([8, 16, 1024]),
    st.integers(0, 701),
)
@settings(max_examples=300, deadline=None)
def test_over_returns_exactly_the_items_whose_bucket_sum_reaches_least(
    pool: list[list[int]], query: list[int], least: int, block: int, vocabulary: int
) -> None:
    buckets = TokenBuckets(block)
    for item in pool:
        buckets.add(item)
    items, bounds = buckets.over(query, vocabulary, least)
    sums = [bucket_sum(item, query, vocabulary) for item in pool]
    assert items.tolist() == [i for i, s in enumerate(sums) if s >= least]
    assert bounds.tolist() == [sums[i] for i in items.tolist()]
    for i, item in enumerate(pool):  # the bound is never below the true overlap
        assert sums[i] >= overlap(item, query, vocabulary)


def test_full_byte_lanes_do_not_carry_into_their_neighbours() -> None:
    buckets = TokenBuckets(block=8)
    pool = [[0] * MAX_ITEM, [256] * 200 + [512] * 55, [1], [0] * 3, [7] * MAX_ITEM]
    for item in pool:
        buckets.add(item)
    items, bounds = buckets.over([0], vocabulary=1000, least=1)
    assert items.tolist() == [0, 1, 3]
    assert bounds.tolist() == [255, 255, 3]


def test_items_longer_than_a_byte_lane_are_listed_not_bounded() -> None:
    buckets = TokenBuckets(block=8)
    buckets.add([1] * (MAX_ITEM + 1))
    buckets.add([1, 2])
    assert buckets.long_items == [0]
    assert buckets.over([1], vocabulary=10, least=1)[0].tolist() == [1]


def test_block_must_hold_whole_words_of_items() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        TokenBuckets(block=12)


def test_long_texts_and_long_queries_are_decided_exactly() -> None:
    rng = random.Random(5)
    words = [f"w{k}" for k in range(400)]

    def text(length: int) -> str:
        return " ".join(rng.choice(words) for _ in range(length))

    def edit(source: str, changes: int) -> str:
        tokens = source.split()
        for _ in range(changes):
            tokens[rng.randrange(len(tokens))] = rng.choice(words)
        return " ".join(tokens)

    pool = [text(rng.choice([12, 20, 300, 600])) for _ in range(60)]
    index = SimilarityIndex(threshold=0.7, scan_below=0, block=16)
    index.extend(pool)
    tok = RougeTokenizer()
    pool_tokens = [tok.tokenize(p) for p in pool]
    candidates = [edit(p, rng.choice([1, 10, 120])) for p in pool] + [text(500), text(15)]
    for candidate in candidates:
        tokens = tok.tokenize(candidate)
        expected = [rouge_l_f(p, tokens) for p in pool_tokens]
        hit = index.first_above(candidate)
        assert (hit is not None) == any(f > 0.7 for f in expected)
        if hit is not None:
            assert hit[1] == expected[hit[0]] > 0.7
    assert index.stats.hits > 0 and index.stats.pruned > 0


def test_a_growing_block_keeps_every_earlier_count() -> None:
    rng = random.Random(2)
    buckets = TokenBuckets(block=4096)
    pool = [[rng.randrange(5000) for _ in range(rng.randint(0, 30))] for _ in range(5000)]
    for item in pool:
        buckets.add(item)
    # 1024 -> 2048 -> 4096 items, then a second block: 256 counts and an offset an item
    assert len(buckets) == 5000 and buckets.nbytes == 257 * (4096 + 1024)
    for query in pool[::500]:
        items, _ = buckets.over(query, vocabulary=5000, least=len(query) or 1)
        assert pool.index(query) in items.tolist() or not query
        assert items.tolist() == [
            i for i, item in enumerate(pool) if bucket_sum(item, query, 5000) >= (len(query) or 1)
        ]
