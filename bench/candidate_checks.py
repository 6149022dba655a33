"""Benchmark: the CPU of the per-candidate checks of ``bench/pipeline.py`` part c, replayed.

    .venv/bin/python bench/candidate_checks.py --record calls.jsonl   # ~30 s: run part c
    .venv/bin/python bench/candidate_checks.py --replay calls.jsonl   # ~1 min: time them

``--record`` runs ``bench/pipeline.py``'s part c (a checkpoint grown to ``--pool`` tasks,
resumed for ``--grow-tasks`` more, against the simulator) and writes, in call order, every
text the run's largest similarity index was given (``add``) or asked about
(``first_above``, with whether it found an item above the threshold) and every text the
``non_text_modality`` filter checked (with its verdict). ``--replay`` rebuilds that index
from the texts added before the first query (not timed), then replays the rest ``--runs``
times, timing the ``first_above``, ``add`` and ``non_text_need`` calls in thread CPU time,
and prints the median microseconds per call over the runs. Every verdict is compared with
the recorded one: a different verdict fails the run (exit status 1), so a file recorded
before a change checks the change. Replays of the same file with two versions of the code
(alternated, since this machine is shared) give their per-check costs at part c's pool.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))

from selfinstruct_plugins import modality  # noqa: E402

from selfinstruct_async.similarity import SimilarityIndex  # noqa: E402
from selfinstruct_async.similarity import index as index_module  # noqa: E402

Call = tuple[str, str, bool]  # "add" | "query" | "modality", the text, the verdict


def record(path: Path, argv: list[str]) -> int:
    """Run pipeline.py's part c with the index and the modality filter recorded."""
    sys.path.insert(0, str(ROOT / "bench"))
    import pipeline

    calls: dict[int, list[Call]] = {}
    checked: list[Call] = []
    first_above = index_module.SimilarityIndex.first_above
    add = index_module.SimilarityIndex.add
    check = modality.NonTextModality.check

    def recorded_first_above(
        self: SimilarityIndex, text: str, threshold: float | None = None
    ) -> tuple[int, float] | None:
        hit = first_above(self, text, threshold)
        calls.setdefault(id(self), []).append(("query", text, hit is not None))
        return hit

    def recorded_add(self: SimilarityIndex, text: str) -> int:
        calls.setdefault(id(self), []).append(("add", text, False))
        return add(self, text)

    def recorded_check(self: modality.NonTextModality, instruction: str) -> Any:
        rejection = check(self, instruction)
        checked.append(("modality", instruction, rejection is not None))
        return rejection

    setattr(index_module.SimilarityIndex, "first_above", recorded_first_above)  # noqa: B010
    setattr(index_module.SimilarityIndex, "add", recorded_add)  # noqa: B010
    setattr(modality.NonTextModality, "check", recorded_check)  # noqa: B010
    pipeline.main(["--tasks", "100", *argv])  # its targets are not this script's business
    largest = max(calls.values(), key=len)
    with path.open("w", encoding="utf-8") as out:
        for op, text, verdict in largest + checked:
            out.write(json.dumps({"op": op, "text": text, "verdict": verdict}) + "\n")
    print(f"recorded {len(largest)} index calls and {len(checked)} modality checks in {path}")
    return 0


def load(path: Path) -> list[Call]:
    calls = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            calls.append((str(row["op"]), str(row["text"]), bool(row["verdict"])))
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"{path}:{number}: not a recorded call ({e!r})") from None
    return calls


def _clock_cost(clock: Callable[[], float]) -> float:
    """Seconds one reading of ``clock`` costs, taken off every timed group of calls."""
    start = clock()
    for _ in range(1000):
        clock()
    return (clock() - start) / 1001


def replay_index(calls: list[Call]) -> tuple[float, float, int]:
    """Microseconds per first_above and per add after the build, and different verdicts.

    Timed in thread CPU time (other processes on a shared machine do not count), one
    reading per run of consecutive calls of one kind, less the cost of a reading.
    """
    indexed = [c for c in calls if c[0] != "modality"]
    first = next((k for k, c in enumerate(indexed) if c[0] == "query"), len(indexed))
    index = SimilarityIndex("rouge")
    index.extend(text for _, text, _ in indexed[:first])
    clock = time.thread_time
    reading = _clock_cost(clock)
    spent = {"query": 0.0, "add": 0.0}
    done = {"query": 0, "add": 0}
    wrong = 0
    rest = indexed[first:]
    k = 0
    while k < len(rest):
        op = rest[k][0]
        end = k
        while end < len(rest) and rest[end][0] == op:
            end += 1
        group = rest[k:end]
        if op == "query":
            start = clock()
            hits = [index.first_above(text) for _, text, _ in group]
            spent[op] += clock() - start - reading
            wrong += sum((h is not None) != c[2] for h, c in zip(hits, group, strict=True))
        else:
            start = clock()
            for _, text, _ in group:
                index.add(text)
            spent[op] += clock() - start - reading
        done[op] += len(group)
        k = end
    per = {op: spent[op] / max(done[op], 1) * 1e6 for op in spent}
    return per["query"], per["add"], wrong


def replay_modality(calls: list[Call]) -> tuple[float, int]:
    """Microseconds per non_text_need call (thread CPU time), and different verdicts."""
    texts = [(text, verdict) for op, text, verdict in calls if op == "modality"]
    need: Callable[[str], Any] = modality.non_text_need
    clock = time.thread_time
    start = clock()
    found = [need(text) for text, _ in texts]
    elapsed = clock() - start
    wrong = sum((f is not None) != v for f, (_, v) in zip(found, texts, strict=True))
    return elapsed / max(len(texts), 1) * 1e6, wrong


def replay(path: Path, runs: int) -> int:
    calls = load(path)
    counts = {op: sum(c[0] == op for c in calls) for op in ("add", "query", "modality")}
    hits = sum(c[2] for c in calls if c[0] == "query")
    print(
        f"{path}: {counts['add']} adds, {counts['query']} queries ({hits} above the "
        f"threshold), {counts['modality']} modality checks"
    )
    rows: list[tuple[float, float, float]] = []
    wrong = 0
    for _ in range(runs):
        query_us, add_us, wrong_index = replay_index(calls)
        modality_us, wrong_modality = replay_modality(calls)
        wrong += wrong_index + wrong_modality
        rows.append((query_us, add_us, modality_us))
        print(
            f"  run: first_above {query_us:.1f} us, add {add_us:.1f} us, "
            f"non_text_need {modality_us:.1f} us",
            flush=True,
        )
    medians = [statistics.median(r[k] for r in rows) for k in range(3)]
    print(
        f"median of {runs} runs: first_above {medians[0]:.1f} us, add {medians[1]:.1f} us, "
        f"non_text_need {medians[2]:.1f} us; verdicts different from the recording: {wrong}"
    )
    return 1 if wrong else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", type=Path, metavar="FILE", help="run part c, write the calls")
    mode.add_argument("--replay", type=Path, metavar="FILE", help="time the recorded calls")
    parser.add_argument("--runs", type=int, default=5, help="replays (median printed)")
    parser.add_argument("--pool", type=int, default=50_000)
    parser.add_argument("--grow-tasks", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.record:
        pool_args = ["--pool", str(args.pool), "--grow-tasks", str(args.grow_tasks)]
        return record(args.record, pool_args)
    return replay(args.replay, max(1, args.runs))


if __name__ == "__main__":
    raise SystemExit(main())
