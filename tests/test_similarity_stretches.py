"""The cheaper paths of session 10 give the answers of the paths they replaced.

The index now bounds the pool stretch by stretch (8,192 items, 16,384, then the rest of
each block), oldest first, and verifies each stretch's survivors before the next; it ranks
survivors by slack (bound less need) instead of by bound; the ``"rouge"`` tokenizer splits
with ``bytes.translate`` instead of a regex. Each test here compares the new path with the
old rule or with a full scan, on pools large enough to cross the stretch boundaries.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfinstruct_async.similarity import RougeTokenizer, SimilarityIndex, rouge_l_f
from selfinstruct_async.similarity.bounds import NEVER, need_by_length
from selfinstruct_async.similarity.buckets import TokenBuckets
from selfinstruct_async.similarity.index import _rank

_REGEX_RULE = re.compile(r"[a-z0-9]+")  # the rule the tokenizer had, rouge-score's runs

# Characters whose lower() is ASCII (Kelvin sign), or grows (dotted I), surrogates,
# astral characters, every ASCII separator: where a byte-level rule could go wrong.
awkward = st.text(
    alphabet=st.one_of(
        st.sampled_from([*"aZ09 _-.,:;!?'\"\t\n\r\x0b\x0c\x00\x7f", "\u212a", "\u0130"]),
        st.sampled_from(["\u00df", "\u0131", "\ud800", "\udfff", "\U0001f600", "\u3000"]),
        st.characters(),
    ),
    max_size=50,
)


@given(st.one_of(st.text(max_size=80), awkward))
@settings(max_examples=1000)
def test_the_translate_tokenizer_cuts_exactly_the_regex_runs(text: str) -> None:
    assert RougeTokenizer().tokenize(text) == _REGEX_RULE.findall(text.lower())


def _stream(rng: random.Random, count: int) -> list[str]:
    """Templated texts over a small vocabulary: many near-duplicates, some far apart."""
    nouns = [f"n{k}" for k in range(60)]
    verbs = ["write", "list", "explain", "rewrite", "summarize", "compare"]
    texts = []
    for _ in range(count):
        words = [rng.choice(verbs), "a", *rng.choices(nouns, k=rng.randint(2, 14))]
        texts.append(" ".join(words))
    return texts


@pytest.mark.parametrize(
    ("block", "stretches", "expected"),
    [
        (1 << 16, True, 3),  # 8,192 + 16,384 + the other 5,424 items
        (1 << 16, False, 1),  # one pass
        (16_384, True, 2),  # blocks of 16,384 items are too small to split
    ],
)
def test_chunks_cover_every_item_once_across_stretches_and_blocks(
    block: int, stretches: bool, expected: int
) -> None:
    rng = random.Random(4)
    pool = [[rng.randrange(900) for _ in range(rng.randint(0, 20))] for _ in range(30_000)]
    buckets = TokenBuckets(block)
    for ids in pool:
        buckets.add(ids)
    for query in (pool[3], pool[9_000], pool[29_999], [1, 2, 3]):
        rows = {t % 256 for t in query}
        sums = np.array([sum(t % 256 in rows for t in ids) for ids in pool])
        chunks = list(buckets.chunks(query, 900, 4, stretches=stretches))
        assert sum(covered for covered, _, _ in chunks) == len(pool)
        assert len(chunks) == expected
        items = np.concatenate([i for _, i, _ in chunks])
        bounds = np.concatenate([b for _, _, b in chunks])
        assert items.tolist() == np.flatnonzero(sums >= 4).tolist()
        assert bounds.tolist() == sums[sums >= 4].tolist()


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9])
@pytest.mark.parametrize("hit_share", [0.0, 1.0])  # in one pass, and stretch by stretch
def test_first_above_over_many_stretches_decides_like_a_full_scan(
    threshold: float, hit_share: float
) -> None:
    rng = random.Random(int(threshold * 10))
    pool = _stream(rng, 26_000)  # three stretches of the first block
    index = SimilarityIndex(threshold=threshold, on_empty="ignore")
    index.extend(pool)
    index._hit_share = hit_share
    tok = RougeTokenizer()
    # near-duplicates of items in each stretch, and fresh texts (mostly misses)
    sources = [pool[k] for k in (5, 8_000, 8_300, 20_000, 25_999)]
    candidates = [f"{s} n{rng.randrange(60)}" for s in sources] + _stream(rng, 40)
    decided = {True: 0, False: 0}
    for candidate in candidates:
        scores = index.scores(candidate)
        hit = index.first_above(candidate)
        assert (hit is not None) == bool((scores > threshold).any())
        if hit is not None:
            item, f = hit
            assert f == scores[item] > threshold
            assert f == rouge_l_f(tok.tokenize(pool[item]), tok.tokenize(candidate))
        decided[hit is not None] += 1
    assert decided[True] >= 5 and decided[False] >= 5


def test_once_hits_are_common_a_hit_in_an_old_stretch_ends_the_search_early() -> None:
    rng = random.Random(8)
    pool = _stream(rng, 30_000)
    index = SimilarityIndex(on_empty="ignore")
    index.extend(pool)

    def bounded_by(text: str) -> int:
        before = index.stats.bounded
        index.first_above(text)
        return index.stats.bounded - before

    # few hits so far: one pass over the pool, even for a hit in the oldest items
    assert bounded_by(pool[10]) == len(pool)
    for text in pool[:40]:  # a run of queries with hits (their own texts: F = 1)
        assert index.first_above(text) is not None
    assert bounded_by(pool[10]) == 8_192  # found in the first stretch: the rest skipped
    assert bounded_by("zzz unseen words only") == len(pool)  # a miss bounds every stretch


@given(
    st.lists(st.tuples(st.integers(0, 255), st.integers(1, 60)), min_size=1, max_size=40),
    st.integers(1, 60),
    st.sampled_from([0.0, 0.5, 0.7, 0.9, 1.0]),
)
@settings(max_examples=300, deadline=None)
def test_rank_keeps_items_reaching_their_need_by_slack_then_id(
    rows: list[tuple[int, int]], m: int, t: float
) -> None:
    needs = need_by_length(m, t, 60)
    lens = np.array([n for _, n in rows], dtype=np.int32)
    near = np.arange(len(rows), dtype=np.int64)
    bounds = np.array([min(b, 255) for b, _ in rows], dtype=np.uint8)
    kept = [(needs.of(n) - b, k) for k, (b, n) in enumerate(rows) if b >= needs.of(n)]
    expected = [k for _, k in sorted(kept)]
    items, least = _rank(near, bounds, lens, needs)
    assert items == expected
    assert least == min((needs.of(rows[k][1]) for k in expected), default=NEVER)
