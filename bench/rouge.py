"""Benchmark: the exact ROUGE-L index against rouge-score on a synthetic instruction stream.

Run ``.venv/bin/python bench/rouge.py`` (one command, about 3-4 minutes on 2 cores). The
stream is deterministic, built from templates and word lists written here (no external
data): fresh instructions of 10-30 tokens, at least 30% of them specific words (adjectives,
nouns, a Zipf-distributed long tail of pseudo-words), and 15% near-duplicates (one to three
word edits of an earlier instruction). It goes through:

(a) rouge-score, as the original Self-Instruct scripts use it (``scorer.score`` of the
    candidate against every pool instruction), and our index, on the first 600 candidates
    from an empty pool, every decision compared; our index runs the whole prefix after
    every tenth of rouge-score's run, and its median time is the one compared, so that a
    burst of load on a shared machine cannot favour either side;
(b) for pool sizes 1K, 10K, 50K and 200K: the pool is filled with fresh instructions by
    ``SimilarityIndex.extend`` (not filtered, not timed), then a window of 2,000 candidates
    is timed through ``first_above`` + ``add``; rouge-score scores a sample of that window
    (``--rouge-pairs`` // pool candidates) against the whole pool each one saw, decisions
    compared; where the sample is empty (200K) rouge-score's time is extrapolated from its
    per-pair time.

The run fails (exit status 1) on any different decision.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from instruction_stream import InstructionStream

from selfinstruct_async.similarity import SimilarityIndex


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_score_accepts(scorer: Any, pool: Sequence[str], candidate: str, t: float) -> bool:
    """The original scripts' rule: score the candidate against every pool instruction."""
    scores = [scorer.score(inst, candidate)["rougeL"].fmeasure for inst in pool]
    return not scores or max(scores) <= t


def run_rouge_score(
    stream: list[str], threshold: float, between: Callable[[], None]
) -> tuple[list[bool], float, int]:
    """rouge-score from an empty pool on a prefix of the stream.

    ``between`` runs (untimed here) after every tenth of the prefix: our index is timed
    there, so that both engines are measured over the same minutes of this machine.
    """
    scorer = _scorer()
    pool: list[str] = []
    decisions = []
    pairs = 0
    elapsed = 0.0
    tenth = max(1, len(stream) // 10)
    for k, candidate in enumerate(stream, 1):
        start = time.perf_counter()
        pairs += len(pool)
        accept = rouge_score_accepts(scorer, pool, candidate, threshold)
        decisions.append(accept)
        if accept:
            pool.append(candidate)
        elapsed += time.perf_counter() - start
        if k % tenth == 0:
            between()
    return decisions, elapsed, pairs


def run_index(stream: list[str], threshold: float) -> tuple[list[bool], float]:
    """Our filter on the same candidates from an empty pool, as the pipeline calls it."""
    index = SimilarityIndex("rouge", threshold)
    decisions = []
    start = time.perf_counter()
    for candidate in stream:
        accept = index.first_above(candidate) is None
        decisions.append(accept)
        if accept:
            index.add(candidate)
    return decisions, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prefix", type=int, default=600, help="candidates for rouge-score")
    parser.add_argument("--pool", type=int, default=200_000, help="largest pool size")
    parser.add_argument("--window", type=int, default=2000, help="candidates timed per size")
    parser.add_argument(
        "--rouge-pairs",
        type=int,
        default=50_000,
        help="rouge-score pairs per pool size: window candidates sampled = this // pool",
    )
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t = args.threshold
    wall = time.perf_counter()

    probe = InstructionStream(args.seed)
    sample = [probe.next()[0] for _ in range(5000)]
    tok = SimilarityIndex("rouge").tokenizer
    lengths = sorted(len(tok.tokenize(s)) for s in sample)
    print(
        f"stream: seed {args.seed}, {probe.near_duplicates:.0%} near-duplicates; tokens per "
        f"instruction: min {lengths[0]}, median {lengths[len(lengths) // 2]}, 90th pct "
        f"{lengths[int(0.9 * len(lengths))]}, max {lengths[-1]}; e.g. {sample[0]!r}"
    )

    # (a) rouge-score on a prefix from an empty pool, and our index on the same prefix.
    prefix_stream = InstructionStream(args.seed)
    prefix = [prefix_stream.next()[0] for _ in range(args.prefix)]
    ours, _ = run_index(prefix, t)  # the first run warms up (lazy imports, caches)
    times: list[float] = []

    def time_ours() -> None:
        decisions, seconds = run_index(prefix, t)
        assert decisions == ours
        times.append(seconds)

    ref, ref_time, pairs = run_rouge_score(prefix, t, time_ours)
    ours_time = statistics.median(times)
    mismatches = sum(a != b for a, b in zip(ref, ours, strict=True))
    compared = len(prefix)
    per_pair = ref_time / max(pairs, 1)
    prefix_ratio = ref_time / ours_time
    print(
        f"\n(a) first {len(prefix)} candidates from an empty pool (pool grows to {sum(ref)}):\n"
        f"    rouge-score {ref_time:.1f} s ({pairs} pairs, {per_pair * 1e6:.0f} us/pair); "
        f"index {ours_time * 1e3:.1f} ms ({ours_time / len(prefix) * 1e6:.0f} us/candidate; "
        f"median of {len(times)} runs spread over rouge-score's, best "
        f"{min(times) * 1e3:.1f} ms); speed-up {prefix_ratio:,.0f}x; decisions identical "
        f"{len(prefix) - mismatches}/{len(prefix)}",
        flush=True,
    )

    # (b) pool sizes: build the pool in bulk (untimed), then time a window of candidates.
    sizes = [s for s in (1_000, 10_000, 50_000, 200_000) if s <= args.pool]
    index = SimilarityIndex("rouge", t)
    scorer = _scorer()
    rss_before = _rss_mb()
    stream = InstructionStream(args.seed + 1)
    build_time = gen_time = 0.0
    print(
        f"\n(b) at each pool size: the pool is filled with fresh instructions of the stream by "
        f"extend() (not filtered, not timed),\n    then {args.window} candidates of the stream "
        f"({stream.near_duplicates:.0%} near-duplicates of earlier instructions) are timed "
        f"through first_above + add;\n    rouge-score scores a sample of those candidates "
        f"against the whole pool they saw (every pair), decisions compared.\n"
        f"    {'pool':>7} {'index ms/cand':>13} {'cand/s':>7} {'rejected':>13} "
        f"{'rouge-score ms/cand':>19} {'(on)':>14} {'speed-up':>9} {'same':>7}",
        flush=True,
    )
    rows = []
    for size in sizes:
        start = time.perf_counter()
        fresh = [stream.next_fresh() for _ in range(size - len(index))]
        gen_time += time.perf_counter() - start
        start = time.perf_counter()
        index.extend(fresh)
        build_time += time.perf_counter() - start
        window = [stream.next() for _ in range(args.window)]
        seen: list[tuple[str, int, bool]] = []  # candidate, pool size it saw, accepted
        rejected = [0, 0]  # fresh, near-duplicates
        start = time.perf_counter()
        for candidate, near in window:
            before = len(index)
            accept = index.first_above(candidate) is None
            if accept:
                index.add(candidate)
            else:
                rejected[near] += 1
            seen.append((candidate, before, accept))
        per_candidate = (time.perf_counter() - start) / args.window
        count = min(args.window, args.rouge_pairs // size)
        if count:
            step = args.window // count
            chosen = [seen[k * step] for k in range(count)]
            texts = index._texts  # append-only: its first `before` items are that pool
            start = time.perf_counter()
            same = sum(
                rouge_score_accepts(scorer, texts[:before], cand, t) == accept
                for cand, before, accept in chosen
            )
            rouge_per = (time.perf_counter() - start) / count
            per_pair = rouge_per / (sum(b for _, b, _ in chosen) / count)
            mismatches += count - same
            compared += count
            on, same_text = f"{count} sampled", f"{same}/{count}"
        else:
            rouge_per = per_pair * len(index)
            on, same_text = "extrap./pair", "-"
        rows.append((size, per_candidate, rouge_per))
        print(
            f"    {size:>7} {per_candidate * 1e3:>13.3f} {1 / per_candidate:>7,.0f} "
            f"{f'{rejected[0] + rejected[1]} ({rejected[1]} nd)':>13} {rouge_per * 1e3:>19,.0f} "
            f"{on:>14} {rouge_per / per_candidate:>8,.0f}x {same_text:>7}",
            flush=True,
        )
    s = index.stats
    print(
        f"    'rejected': of the {args.window} timed candidates (nd: near-duplicates; about "
        f"{stream.near_duplicates:.0%} of them are near-duplicates)\n"
        f"    pool built by extend: {len(index)} items in {build_time:.1f} s (stream generation "
        f"{gen_time:.1f} s); index work over all queries: {s.queries} queries, {s.bounded} "
        f"items bounded, {s.pruned} ruled out by the bound, {s.lcs_computed} LCS "
        f"({s.lcs_computed / max(s.queries, 1):.1f} per query)\n"
        f"    peak RSS: {_rss_mb():.0f} MB (before the index: {rss_before:.0f} MB)"
    )
    print(
        f"\ntargets: speed-up {prefix_ratio:,.0f}x on the prefix, "
        + ", ".join(f"{r / c:,.0f}x at {z // 1000}K" for z, c, r in rows)
        + " (>= 1000x); "
        + ", ".join(f"{c * 1e3:.2f} ms at {z // 1000}K" for z, c, _ in rows)
        + " (<= 5 ms)"
    )
    print(
        f"decisions compared: {compared}, different: {mismatches}; "
        f"wall time {time.perf_counter() - wall:.0f} s"
    )
    return 0 if not mismatches else 1


if __name__ == "__main__":
    raise SystemExit(main())
