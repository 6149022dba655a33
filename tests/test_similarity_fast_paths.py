"""The index's shortcuts change how much work a query does, never its answer.

Each item carries an offset byte (what its length lets it off the least LCS it needs), so
one comparison of the summed bucket bytes prunes by every item's own length; survivors are
verified one call each before batches. These tests pin the arithmetic the offsets rest on
and compare the shortcut with the plain bound item for item.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfinstruct_async.similarity import RougeTokenizer, SimilarityIndex, rouge_l_f
from selfinstruct_async.similarity.bounds import LANE, NEVER, credits, need, need_by_length
from selfinstruct_async.similarity.buckets import MAX_ITEM, TokenBuckets

THRESHOLDS = [0.0, 1e-9, 0.3, 0.5, 0.7, 0.7000000000000001, 0.85, 0.9999999995, 1.0]


@pytest.mark.parametrize("t", THRESHOLDS)
def test_credits_never_exceed_what_any_reachable_length_needs(t: float) -> None:
    credit = credits(t)
    assert len(credit) == LANE + 1 and credit[0] == 0
    assert all(a <= b for a, b in itertools.pairwise(credit))
    # an item's offset plus any sum of its own counts stays inside its byte
    assert all(credit[LANE] - credit[n] + n <= LANE for n in range(LANE + 1))
    for m in [*range(1, 300), 1000]:
        needs = need_by_length(m, t, max(m, LANE + 40))
        reachable = [
            n for n in range(1, LANE + 1) if need(m, n, t) <= min(m, n) and n < len(needs.listed)
        ]
        if not reachable:
            assert needs.rest == NEVER
            continue
        assert all(credit[n] + needs.rest <= need(m, n, t) for n in reachable)
        # and the rule is tight: some reachable length needs exactly that much
        assert min(need(m, n, t) - credit[n] for n in reachable) == needs.rest


token_ids = st.lists(st.integers(0, 700), max_size=40)


@given(
    st.lists(st.tuples(token_ids, st.integers(0, 255)), max_size=60),
    token_ids,
    st.integers(1, 300),
    st.sampled_from([8, 16, 1024]),
    st.integers(0, 701),
)
@settings(max_examples=300, deadline=None)
def test_over_with_offsets_compares_offset_plus_sum_and_returns_the_plain_sum(
    pool: list[tuple[list[int], int]], query: list[int], least: int, block: int, vocabulary: int
) -> None:
    buckets = TokenBuckets(block)
    offsets = []
    for ids, wanted in pool:
        offset = min(wanted, MAX_ITEM - len(ids))
        buckets.add(ids, offset)
        offsets.append(offset)
    items, bounds = buckets.over(query, vocabulary, least, offsets=True)
    rows = {t % 256 for t in query if t < vocabulary}
    sums = [sum(1 for t in ids if t % 256 in rows) for ids, _ in pool]
    expected = [i for i, s in enumerate(sums) if rows and s + offsets[i] >= least]
    assert items.tolist() == expected
    assert bounds.tolist() == [sums[i] for i in expected]


def test_an_offset_that_could_carry_out_of_its_byte_is_refused() -> None:
    buckets = TokenBuckets(block=8)
    with pytest.raises(ValueError, match="overflow"):
        buckets.add([1] * 200, 56)
    with pytest.raises(ValueError, match="overflow"):
        buckets.add([1], -1)
    buckets.add([1] * 200, 55)
    assert len(buckets) == 1  # the refused items left nothing behind


words = st.sampled_from(["a", "the", "write", "poem", "list", "of", "sum", "story", "sea", "2"])
texts = st.lists(words, max_size=16).map(" ".join)


@given(
    st.lists(texts, max_size=60),
    st.lists(texts, min_size=1, max_size=12),
    st.sampled_from(THRESHOLDS),
    st.sampled_from([8, 1 << 16]),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_the_offset_bound_finds_the_same_item_and_score_as_the_plain_bound(
    pool: list[str], candidates: list[str], threshold: float, block: int
) -> None:
    fast = SimilarityIndex(threshold=threshold, on_empty="ignore", scan_below=0, block=block)
    plain = SimilarityIndex(threshold=threshold, on_empty="ignore", scan_below=0, block=block)
    plain._offsets_at = math.nan  # equal to no threshold: every query takes the plain bound
    fast.extend(pool)
    plain.extend(pool)
    for candidate in candidates:
        assert fast.first_above(candidate) == plain.first_above(candidate)
    assert fast.stats.lcs_computed == plain.stats.lcs_computed


def test_a_hit_ranked_after_the_one_by_one_checks_is_found_in_a_batch() -> None:
    # Shuffles of the query have the largest bound (every token) but a short LCS: they are
    # verified first, and the one real near-duplicate comes after them.
    rng = random.Random(3)
    query = [f"w{k}" for k in range(12)]
    decoys: list[str] = []
    while len(decoys) < 40:
        shuffled = rng.sample(query, len(query))
        if rouge_l_f(shuffled, query) <= 0.7:
            decoys.append(" ".join(shuffled))
    near = " ".join([*query[:-1], "other"])
    index = SimilarityIndex(scan_below=0)
    index.extend([*decoys, near])
    hit = index.first_above(" ".join(query))
    assert hit == (40, rouge_l_f(RougeTokenizer().tokenize(near), query))
    assert index.stats.lcs_computed == 41


def test_queries_at_another_threshold_than_the_index_stay_exact() -> None:
    rng = random.Random(9)
    vocab = [f"v{k}" for k in range(30)]
    pool = [" ".join(rng.choices(vocab, k=rng.randint(3, 20))) for _ in range(400)]
    index = SimilarityIndex(threshold=0.7, scan_below=0)
    index.extend(pool)
    tok = RougeTokenizer()
    for candidate in pool[::7] + [" ".join(rng.choices(vocab, k=12)) for _ in range(40)]:
        tokens = tok.tokenize(candidate)
        scores = [rouge_l_f(tok.tokenize(p), tokens) for p in pool]
        for t in (0.4, 0.7, 0.9):
            hit = index.first_above(candidate, t)
            assert (hit is not None) == any(s > t for s in scores)
            if hit is not None:
                assert hit[1] == scores[hit[0]] > t


def test_part_c_like_stream_keeps_every_decision_of_the_full_scan() -> None:
    # Templated instructions over a small vocabulary, as the simulator writes them: most
    # candidates collide with a pool item, the few others must still be told apart.
    rng = random.Random(21)
    nouns = [f"noun{k}" for k in range(40)]
    adjectives = [f"adj{k}" for k in range(25)]
    forms = ["Write a short poem", "Give three tips", "Summarize the story", "Describe a day"]

    def topic() -> str:
        return f"{rng.choice(adjectives)} {rng.choice(nouns)}"

    def text() -> str:
        tail = f" and the {topic()}" if rng.random() < 0.5 else ""
        return f"{rng.choice(forms)} about the {topic()}{tail}."

    indexed = SimilarityIndex(scan_below=0, block=16)  # the pool spans several blocks
    scanned = SimilarityIndex(scan_below=10**9)
    decisions: Counter[bool] = Counter()
    for _ in range(3000):
        candidate = text()
        a, b = indexed.first_above(candidate), scanned.first_above(candidate)
        assert (a is None) == (b is None)
        if a is not None:
            assert a[1] == rouge_l_f(
                RougeTokenizer().tokenize(indexed.text(a[0])), RougeTokenizer().tokenize(candidate)
            )
        decisions[a is None] += 1
        if a is None:
            indexed.add(candidate)
            scanned.add(candidate)
    assert decisions[True] > 50 and decisions[False] > 1000
    assert indexed.stats.lcs_computed < scanned.stats.lcs_computed / 5
