"""Store CPU per task in grouped commits: the checkpoint writes of a streaming run, alone.

    .venv/bin/python bench/store_units.py                     # 20,000 tasks, 5 rounds
    PYTHONPATH=/tmp/old .venv/bin/python bench/store_units.py # the same against another tree

Replays through :class:`~selfinstruct_async.checkpoint.store.Store` what part b of
``bench/pipeline.py`` writes per task, in the proportions its SQL trace shows: two ledger
answers waiting for the next commit, the instruction's decision unit (a pending row, a
rejected sibling every other task, four counters), the task's outcome unit (the accepted
row, six counters, the token-usage snapshot as ``meta``), with a group committed every 80
units (about ``run.commit_interval`` = 0.1 s at part b's rate). Only the store's CPU is
measured, so the figure is not lost in the pipeline's noise on a shared machine.

Printed: SQL statements per task, from a separate traced round (an ``executemany``
counts once per row, as SQLite's trace callback sees it); CPU microseconds per task of
each untraced round, and their median. The API used is the one the store had before the
counters were grouped (issue 15), so ``PYTHONPATH`` can point it at an older tree.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.records import Instance, PendingTask, RejectionRecord, Task

GROUP_UNITS = 80
STAGES = ("generate_instructions", "identify_classification", "generate_instances")
FIELDS = ("requests", "prompt_tokens", "cached_prompt_tokens", "completion_tokens", "retries")


def usage(n: int) -> dict[str, Any]:
    """A usage snapshot shaped like ``UsageMeter.snapshot``'s, different for every task."""
    return {
        "version": 1,
        "stages": {s: {f: n * 37 + i for i, f in enumerate(FIELDS)} for s in STAGES},
    }


def one_task(store: Store, n: int) -> int:
    """The writes of one task; returns the units it made."""
    store.ledger_put_later(f"{n:016x}a", "identify_classification", '{"text": "No"}')
    store.ledger_put_later(f"{n:016x}b", "generate_instances", '{"text": "Output: x"}')
    task_id = f"t{n}"
    rejected = []
    if n % 2:
        rejected = [RejectionRecord("instruction", "rouge", "0.8", f"Similar {n}.", f"r{n}")]
    store.add_decisions(
        rejected,
        PendingTask(task_id, f"Write poem number {n}."),
        n,
        {"requests.generate_instructions": 1, "instructions.generated": 7,
         "rejected.instruction.rouge": len(rejected), "instructions.accepted": 1},
    )  # fmt: skip
    task = Task(task_id, f"Write poem number {n}.", False, (Instance("", f"Poem {n}."),) * 3)
    store.finish_task(
        task_id, task, (),
        {"requests.identify_classification": 1, "requests.generate_instances": 1,
         "classification.no": 1, "instances.generated": 3, "instances.accepted": 3,
         "tasks.accepted": 1},
        {"usage": usage(n)},
    )  # fmt: skip
    return 2


def round_(tasks: int, *, traced: bool = False) -> tuple[float, float]:
    """CPU microseconds and statements per task (counted when ``traced``, else 0) for one
    fresh run directory; the trace callback's own cost is only in a traced round's CPU."""
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp), durability="process") as store:
        seen = [0]

        def trace(_: str) -> None:
            seen[0] += 1

        store.group_writes()
        if traced:
            store.db.set_trace_callback(trace)
        units = 0
        started = time.process_time()
        for n in range(tasks):
            units += one_task(store, n)
            if units >= GROUP_UNITS:
                store.commit_group()
                units = 0
        store.flush()
        cpu = time.process_time() - started
        store.db.set_trace_callback(None)
        return cpu / tasks * 1e6, seen[0] / tasks


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    _, statements = round_(2000, traced=True)
    print(f"{statements:.2f} SQL statements per task (traced round of 2,000 tasks)")
    results = []
    for i in range(args.rounds):
        cpu, _ = round_(args.tasks)
        results.append(cpu)
        print(f"round {i + 1}: {cpu:7.1f} CPU us/task")
    print(f"median of {args.rounds}: {statistics.median(results):.1f} CPU us/task")


if __name__ == "__main__":
    main()
