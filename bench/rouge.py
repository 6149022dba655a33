"""Benchmark: the exact ROUGE-L index against rouge-score on a synthetic instruction stream.

Run ``.venv/bin/python bench/rouge.py`` (one command, about 3 minutes on 2 cores). The
stream is deterministic, built from templates and word lists written here (no external
data): fresh instructions of 10-30 tokens, at least 30% of them specific words (adjectives,
nouns, a Zipf-distributed long tail of pseudo-words), and 15% near-duplicates (one to three
word edits of an earlier instruction). It goes through:

(a) rouge-score, as the original Self-Instruct scripts use it (``scorer.score`` of the
    candidate against every pool instruction), and our index, on the first 600 candidates,
    every decision compared: once from the 175 seed tasks of ``seeds/`` (a run's pool
    starts with them; our time includes indexing them), once from an empty pool (the
    smallest pools, where fixed costs weigh most). Our index runs the whole prefix after
    every tenth of rouge-score's run and its median time is the one compared, so that a
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
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from instruction_stream import InstructionStream

from selfinstruct_async.seeds import load_seed_tasks
from selfinstruct_async.similarity import SimilarityIndex

SEEDS = Path(__file__).resolve().parent.parent / "seeds" / "selfinstruct_seeds" / "seed_tasks.jsonl"


class Prefix(NamedTuple):
    """What one prefix comparison measured."""

    ratio: float  # rouge-score's time over our median time
    mismatches: int
    per_pair: float  # rouge-score's seconds per pair


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
    stream: list[str], threshold: float, seeds: list[str], between: Callable[[], None]
) -> tuple[list[bool], float, int]:
    """rouge-score on a prefix of the stream, the pool starting with ``seeds``.

    ``between`` runs (untimed here) after every tenth of the prefix: our index is timed
    there, so that both engines are measured over the same minutes of this machine.
    """
    scorer = _scorer()
    pool = list(seeds)
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


def run_index(stream: list[str], threshold: float, seeds: list[str]) -> tuple[list[bool], float]:
    """Our filter on the same candidates, as the pipeline calls it (indexing seeds timed)."""
    start = time.perf_counter()
    index = SimilarityIndex("rouge", threshold)
    index.extend(seeds)
    decisions = []
    for candidate in stream:
        accept = index.first_above(candidate) is None
        decisions.append(accept)
        if accept:
            index.add(candidate)
    return decisions, time.perf_counter() - start


def compare_prefix(prefix: list[str], seeds: list[str], t: float, label: str) -> Prefix:
    """rouge-score and our index on the same candidates, each decision compared."""
    ours, _ = run_index(prefix, t, seeds)  # the first run warms up (lazy imports, caches)
    times: list[float] = []

    def time_ours() -> None:
        decisions, seconds = run_index(prefix, t, seeds)
        assert decisions == ours
        times.append(seconds)

    ref, ref_time, pairs = run_rouge_score(prefix, t, seeds, time_ours)
    ours_time = statistics.median(times)
    mismatches = sum(a != b for a, b in zip(ref, ours, strict=True))
    result = Prefix(ref_time / ours_time, mismatches, ref_time / max(pairs, 1))
    print(
        f"    {label} (pool {len(seeds)} -> {len(seeds) + sum(ref)}): rouge-score "
        f"{ref_time:.1f} s ({pairs} pairs, {result.per_pair * 1e6:.0f} us/pair); index "
        f"{ours_time * 1e3:.1f} ms ({ours_time / len(prefix) * 1e6:.0f} us/candidate; median "
        f"of {len(times)} runs, best {min(times) * 1e3:.1f} ms); speed-up "
        f"{result.ratio:,.0f}x; decisions identical {len(prefix) - mismatches}/{len(prefix)}",
        flush=True,
    )
    return result


class Tally:
    """Decisions compared and different so far, and rouge-score's latest time per pair."""

    def __init__(self, per_pair: float, compared: int, mismatches: int) -> None:
        self.per_pair = per_pair  # extrapolates rouge-score where a pool is too big to sample
        self.compared = compared
        self.mismatches = mismatches


class Window(NamedTuple):
    """Our index on one window of candidates at one pool size."""

    per_candidate: float  # seconds
    seen: list[tuple[str, int, bool]]  # candidate, pool size it saw, accepted
    rejected: list[int]  # fresh, near-duplicates


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    if args.prefix < 1:
        parser.error("--prefix must be at least 1")
    return args


def describe_stream(seed: int) -> None:
    """Print the stream's share of near-duplicates and its instructions' lengths."""
    probe = InstructionStream(seed)
    sample = [probe.next()[0] for _ in range(5000)]
    tok = SimilarityIndex("rouge").tokenizer
    lengths = sorted(len(tok.tokenize(s)) for s in sample)
    print(
        f"stream: seed {seed}, {probe.near_duplicates:.0%} near-duplicates; tokens per "
        f"instruction: min {lengths[0]}, median {lengths[len(lengths) // 2]}, 90th pct "
        f"{lengths[int(0.9 * len(lengths))]}, max {lengths[-1]}; e.g. {sample[0]!r}"
    )


def compare_prefixes(args: argparse.Namespace) -> tuple[Prefix, Prefix, Tally]:
    """(a) rouge-score and our index on a prefix: from the seeds, as a run starts, and empty."""
    prefix_stream = InstructionStream(args.seed)
    prefix = [prefix_stream.next()[0] for _ in range(args.prefix)]
    seeds = [task.instruction for task in load_seed_tasks(SEEDS)]
    print(
        f"\n(a) the first {len(prefix)} candidates; our index runs the whole prefix after every "
        f"tenth of rouge-score's run\n    and the median of those runs is compared:"
    )
    t = args.threshold
    seeded = compare_prefix(prefix, seeds, t, f"from the {len(seeds)} seed tasks")
    empty = compare_prefix(prefix, [], t, "from an empty pool")
    tally = Tally(seeded.per_pair, 2 * len(prefix), seeded.mismatches + empty.mismatches)
    return seeded, empty, tally


def time_window(index: SimilarityIndex, window: list[tuple[str, bool]]) -> Window:
    """Our index on a window of candidates, timed through first_above + add."""
    seen: list[tuple[str, int, bool]] = []
    rejected = [0, 0]
    start = time.perf_counter()
    for candidate, near in window:
        before = len(index)
        accept = index.first_above(candidate) is None
        if accept:
            index.add(candidate)
        else:
            rejected[near] += 1
        seen.append((candidate, before, accept))
    return Window((time.perf_counter() - start) / len(window), seen, rejected)


def check_sample(
    args: argparse.Namespace,
    size: int,
    index: SimilarityIndex,
    scorer: Any,
    seen: list[tuple[str, int, bool]],
    tally: Tally,
) -> tuple[float, str, str]:
    """rouge-score's seconds per candidate on a sample of the window, decisions compared.

    Where the sample is empty, the time is extrapolated from the last measured time per pair.
    """
    count = min(args.window, args.rouge_pairs // size)
    if not count:
        return tally.per_pair * len(index), "extrap./pair", "-"
    step = args.window // count
    chosen = [seen[k * step] for k in range(count)]
    texts = index._texts  # append-only: its first `before` items are that pool
    start = time.perf_counter()
    same = sum(
        rouge_score_accepts(scorer, texts[:before], cand, args.threshold) == accept
        for cand, before, accept in chosen
    )
    rouge_per = (time.perf_counter() - start) / count
    tally.per_pair = rouge_per / (sum(b for _, b, _ in chosen) / count)
    tally.mismatches += count - same
    tally.compared += count
    return rouge_per, f"{count} sampled", f"{same}/{count}"


def compare_pool_sizes(args: argparse.Namespace, tally: Tally) -> list[tuple[int, float, float]]:
    """(b) pool sizes: build the pool in bulk (untimed), then time a window of candidates."""
    sizes = [s for s in (1_000, 10_000, 50_000, 200_000) if s <= args.pool]
    index = SimilarityIndex("rouge", args.threshold)
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
        timed = time_window(index, [stream.next() for _ in range(args.window)])
        rouge_per, on, same_text = check_sample(args, size, index, scorer, timed.seen, tally)
        per_candidate, rejected = timed.per_candidate, timed.rejected
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
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wall = time.perf_counter()
    describe_stream(args.seed)
    seeded, empty, tally = compare_prefixes(args)
    rows = compare_pool_sizes(args, tally)
    print(
        f"\ntargets: speed-up {seeded.ratio:,.0f}x on the prefix from the seeds "
        f"({empty.ratio:,.0f}x from an empty pool), "
        + ", ".join(f"{r / c:,.0f}x at {z // 1000}K" for z, c, r in rows)
        + " (>= 1000x); "
        + ", ".join(f"{c * 1e3:.2f} ms at {z // 1000}K" for z, c, _ in rows)
        + " (<= 5 ms)"
    )
    print(
        f"decisions compared: {tally.compared}, different: {tally.mismatches}; "
        f"wall time {time.perf_counter() - wall:.0f} s"
    )
    return 0 if not tally.mismatches else 1


if __name__ == "__main__":
    raise SystemExit(main())
