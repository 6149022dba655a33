"""The similarity index agrees with rouge-score bit for bit, and says so when it cannot see."""

from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer
from rouge_score import tokenize as rouge_tokenize

from selfinstruct_async.similarity import (
    EmptyTokensError,
    EmptyTokensWarning,
    RougeTokenizer,
    SimilarityIndex,
    UnicodeTokenizer,
    f_from_lcs,
    get_tokenizer,
    rouge_l_f,
)

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
CORPUS = Path(__file__).parent / "data" / "rouge_corpus.jsonl"
WORDS = ["a", "the", "write", "poem", "list", "of", "Numbers", "sum", "story", "ocean", "2"]


def reference(target: str, prediction: str) -> float:
    return float(SCORER.score(target, prediction)["rougeL"].fmeasure)


tricky_text = st.text(
    alphabet=st.sampled_from(
        [*"aAzZ09 .,;-_\t\n'!?", "\u212a", "\u0130", "\u00e9", "\u00df", "\u8bf7", "\u0416"]
    ),
    max_size=40,
)
small_vocab_text = st.lists(
    st.sampled_from([*WORDS, "", "!!", "Poem,"]), min_size=0, max_size=14
).map(" ".join)


@given(st.one_of(st.text(max_size=60), tricky_text))
@settings(max_examples=400)
def test_rouge_tokenizer_matches_rouge_score_tokenize(text: str) -> None:
    assert RougeTokenizer().tokenize(text) == rouge_tokenize.tokenize(text, None)


@given(small_vocab_text, small_vocab_text)
@settings(max_examples=400)
def test_rouge_l_f_is_rouge_scores_fmeasure_bit_for_bit(a: str, b: str) -> None:
    tok = RougeTokenizer()
    expected = reference(a, b)
    got = rouge_l_f(tok.tokenize(a), tok.tokenize(b))
    assert got == expected and math.copysign(1, got) == math.copysign(1, expected)
    # F is symmetric in float too, so the original scripts' argument order does not matter.
    assert reference(b, a) == expected


def test_vectorised_f_matches_scalar_rouge_arithmetic() -> None:
    from selfinstruct_async.similarity.bounds import f_vector

    rows = [(lcs, n, m) for m in range(1, 40) for n in range(1, 40) for lcs in range(min(m, n) + 1)]
    lcs = np.array([r[0] for r in rows])
    lens = np.array([r[1] for r in rows])
    for m in range(1, 40):
        sel = np.array([r[2] == m for r in rows])
        vector = f_vector(lcs[sel], lens[sel], m)
        scalar = [f_from_lcs(int(x), int(n), m) for x, n in zip(lcs[sel], lens[sel], strict=True)]
        assert vector.tolist() == scalar


def test_need_table_matches_need_and_stays_short_beside_huge_items() -> None:
    from selfinstruct_async.similarity.bounds import NEVER, need, need_by_length

    for t in (0.3, 0.5, 0.7, 0.7000000000000001, 0.9, 1.0):
        for m in range(1, 41):
            for cap in (m, 100, 10**6):
                needs = need_by_length(m, t, cap)
                assert len(needs.listed) <= 2 * m / t + 3  # not 10**6 entries
                lengths = np.arange(0, 300)
                expected = [
                    need(m, n, t) if 0 < n <= cap and need(m, n, t) <= min(m, n) else NEVER
                    for n in lengths.tolist()
                ]
                assert [needs.of(n) for n in lengths.tolist()][: cap + 1] == expected[: cap + 1]
                assert needs.of_lengths(lengths).tolist()[: cap + 1] == expected[: cap + 1]
                assert needs.least == min(expected)


def brute_force(pool: list[str], candidate: str) -> list[float]:
    return [reference(p, candidate) for p in pool]


@given(
    st.lists(small_vocab_text, min_size=0, max_size=40),
    st.lists(small_vocab_text, min_size=1, max_size=10),
    st.sampled_from([0.0, 0.3, 0.5, 0.7, 0.7000000000000001, 0.9, 1.0]),
    st.sampled_from([None, 0.0, 0.5, 0.7, 0.8]),
    st.sampled_from([8, 1 << 16]),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_first_above_decides_like_rouge_score_against_the_whole_pool(
    pool: list[str],
    candidates: list[str],
    threshold: float,
    query_threshold: float | None,
    block: int,
) -> None:
    # scan_below=0: the bucket bound answers from the first item; block=8 spans many blocks
    index = SimilarityIndex(threshold=threshold, on_empty="ignore", scan_below=0, block=block)
    index.extend(pool)
    t = threshold if query_threshold is None else query_threshold
    for candidate in candidates:
        scores = brute_force(pool, candidate)
        hit = index.first_above(candidate, query_threshold)
        assert (hit is not None) == any(s > t for s in scores)
        if hit is not None:
            assert hit[1] == scores[hit[0]] > t


def test_first_above_is_exact_from_scan_to_buckets_across_blocks() -> None:
    rng = random.Random(7)
    vocab = [f"w{k}" for k in range(60)]

    def text() -> str:
        return " ".join(rng.choice(vocab[: rng.choice([8, 60])]) for _ in range(rng.randint(3, 16)))

    index = SimilarityIndex(threshold=0.7, scan_below=300, block=256)
    pool_tokens: list[list[str]] = []
    tok = RougeTokenizer()
    decisions = []
    for _ in range(1500):  # scans up to 300 items, then bounds them in blocks of 256
        candidate = text()
        tokens = tok.tokenize(candidate)
        expected = any(rouge_l_f(p, tokens) > 0.7 for p in pool_tokens)
        hit = index.first_above(candidate)
        assert (hit is not None) == expected
        decisions.append(expected)
        if hit is None:
            index.add(candidate)
            pool_tokens.append(tokens)
    assert len(index) > 512 and index.stats.bounded > 0 and index.stats.pruned > 0
    assert 0 < sum(decisions) < len(decisions)


def test_index_and_full_scan_agree_on_a_templated_stream() -> None:
    rng = random.Random(11)
    subjects = [f"topic{k}" for k in range(300)]
    templates = [
        "write a short poem about {a} and {b}",
        "give three reasons why {a} matters for {b} in daily life",
        "summarize the following article about {a} in two sentences for {b}",
        "explain how {a} works to a child who likes {b} and {c}",
    ]

    def text() -> str:
        words = (
            rng.choice(templates)
            .format(a=rng.choice(subjects), b=rng.choice(subjects), c=rng.choice(subjects))
            .split()
        )
        if rng.random() < 0.3:
            del words[rng.randrange(len(words))]
        return " ".join(words)

    stream = [text() for _ in range(3000)]
    indexed = SimilarityIndex(scan_below=0)
    scanned = SimilarityIndex(scan_below=10**9)
    for candidate in stream:
        a, b = indexed.first_above(candidate), scanned.first_above(candidate)
        assert (a is None) == (b is None)
        if a is None:
            indexed.add(candidate)
            scanned.add(candidate)
    assert indexed.stats.bounded > 0 and indexed.stats.pruned > 0 and scanned.stats.bounded == 0
    assert indexed.stats.lcs_computed < scanned.stats.lcs_computed / 10
    assert 0 < indexed.stats.hits < len(stream)


def boundary_pairs() -> list[tuple[str, str, float]]:
    """Pairs whose real F is exactly 0.7: float rounding lands on either side of it."""
    pairs = []
    for m in range(7, 41):
        for n in range(7, 41):
            if (7 * (m + n)) % 20:
                continue
            lcs = 7 * (m + n) // 20
            if lcs > min(m, n):
                continue
            a = " ".join([f"s{k}" for k in range(lcs)] + [f"a{k}" for k in range(m - lcs)])
            b = " ".join([f"s{k}" for k in range(lcs)] + [f"b{k}" for k in range(n - lcs)])
            pairs.append((a, b, reference(a, b)))
    return pairs


def test_boundary_at_0_7_follows_rouge_scores_float_arithmetic() -> None:
    pairs = boundary_pairs()
    above = [p for p in pairs if p[2] > 0.7]
    assert above and len(above) < len(pairs)  # both sides of the boundary are exercised
    for target, prediction, expected in pairs:
        index = SimilarityIndex(threshold=0.7, scan_below=0)
        index.add(target)
        hit = index.first_above(prediction)
        assert (hit is not None) == (expected > 0.7)
        assert index.scores(prediction).tolist() == [expected]


def test_recorded_corpus_scores_and_decisions_are_exact() -> None:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 200
    tok = RougeTokenizer()
    for row_number, row in enumerate(rows):
        target, prediction, expected = row["target"], row["prediction"], row["fmeasure"]
        assert rouge_l_f(tok.tokenize(target), tok.tokenize(prediction)) == expected
        index = SimilarityIndex(on_empty="ignore", scan_below=row_number % 2)
        index.add(target)
        assert index.first_above(prediction, threshold=expected) is None
        if expected > 0:
            below = math.nextafter(expected, 0.0)
            assert index.first_above(prediction, threshold=below) == (0, expected)
        assert index.scores(prediction).tolist() == [expected]


def test_texts_without_tokens_score_zero_and_are_never_rejected() -> None:
    index = SimilarityIndex(threshold=0.0, on_empty="ignore")
    index.add("!!! ???")
    index.add("write a poem")
    assert index.first_above("...") is None
    assert index.scores("...").tolist() == [0.0, 0.0]
    assert index.first_above("poem") == (1, reference("write a poem", "poem"))


def test_most_similar_and_mean_match_the_original_metadata() -> None:
    rng = random.Random(3)
    pool = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 10))) for _ in range(300)]
    index = SimilarityIndex(on_empty="ignore")
    index.extend(pool)
    candidate = "write a poem about the ocean"
    scores = brute_force(pool, candidate)
    top = index.most_similar(candidate, k=10)
    assert [s for _, s in top] == sorted(scores, reverse=True)[:10]
    assert all(scores[pool.index(text)] == s for text, s in top)
    assert index.mean_similarity(candidate) == float(np.mean(scores))
    assert SimilarityIndex().metadata("anything").mean == 0.0


def test_unicode_tokenizer_splits_cjk_by_character_and_other_scripts_by_word() -> None:
    tok = UnicodeTokenizer()
    assert tok.tokenize("请写一首诗") == ["请", "写", "一", "首", "诗"]
    assert tok.tokenize("日本語のテキスト") == list("日本語のテキスト")
    assert tok.tokenize("한국어 문장") == ["한", "국", "어", "문", "장"]
    assert tok.tokenize("Напишите СТИХ, please!") == ["напишите", "стих", "please"]
    assert tok.tokenize("हिन्दी में") == ["हिन्दी", "में"]  # combining marks stay in words
    assert tok.tokenize("\uff21\uff22\uff23 Straße 2023年") == ["abc", "strasse", "2023", "年"]


def test_unicode_tokenizer_catches_chinese_duplicates_that_rouge_cannot_see() -> None:
    pool = "请写一首关于秋天的诗"
    candidate = "请写一首关于秋天的短诗"
    unicode_index = SimilarityIndex("unicode")
    unicode_index.add(pool)
    hit = unicode_index.first_above(candidate)
    assert hit is not None and hit[1] > 0.9
    rouge_index = SimilarityIndex("rouge", on_empty="ignore")
    rouge_index.add(pool)
    assert rouge_index.first_above(candidate) is None


def test_too_many_empty_candidates_raise_with_a_hint_to_use_unicode() -> None:
    index = SimilarityIndex("rouge", empty_window=50)
    index.add("write a poem")
    for k in range(39):
        index.first_above(f"write poem number {k}")
    with pytest.raises(EmptyTokensError, match='tokenizer = "unicode"'):
        for _ in range(11):
            index.first_above("请写一首关于秋天的诗")
    assert index.monitor.total_empty == 11


def test_a_few_empty_candidates_are_tolerated_and_warn_mode_warns_once() -> None:
    index = SimilarityIndex("rouge", empty_window=50)
    for k in range(100):
        index.first_above("!!!" if k % 10 == 0 else f"task {k}")  # 10%: fine
    warn_index = SimilarityIndex("rouge", empty_window=50, on_empty="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(60):
            warn_index.first_above("Напишите стих")
    assert [w.category for w in caught] == [EmptyTokensWarning]


def test_tokenizer_by_name_or_object_and_clear_errors() -> None:
    assert get_tokenizer("unicode").name == "unicode"
    custom = RougeTokenizer()
    assert get_tokenizer(custom) is custom
    with pytest.raises(ValueError, match="'rouge', 'unicode'"):
        get_tokenizer("whitespace")
    with pytest.raises(ValueError, match="between 0 and 1"):
        SimilarityIndex(threshold=1.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        SimilarityIndex().first_above("x", threshold=float("nan"))


def test_add_returns_sequential_ids_and_keeps_texts() -> None:
    index = SimilarityIndex()
    assert [index.add(t) for t in ("one", "two two", "")] == [0, 1, 2]
    assert len(index) == 3 and index.text(1) == "two two"
