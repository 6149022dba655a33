"""Kill-and-resume harness: SIGKILL ``selfinstruct run`` at random moments, then audit the run.

Used by ``bench/chaos.py`` (20+ kills) and by the test suite (3 kills). The provider is
the simulator in its own process, with faults switched on, so that kills land while
requests are in flight, retries are pending and commits are being written.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import counters
from ..checkpoint.store import Store
from ..similarity import SimilarityIndex
from .process import served, simulator_process


@dataclass
class ChaosReport:
    """What a chaos run did and what the audit found."""

    kills: int = 0
    records: int = 0
    duplicate_ids: int = 0
    duplicate_instructions: int = 0
    torn_records: int = 0
    jsonl_mismatch: int = 0
    similar_pairs: int = 0
    answers_served: int = 0
    answers_recorded: int = 0
    answers_reused: int = 0
    final_exit_code: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def lost_in_flight(self) -> int:
        """Answers the provider sent that no process lived to record (in flight at a kill)."""
        return max(0, self.answers_served - self.answers_recorded)

    @property
    def consistent(self) -> bool:
        return not (
            self.duplicate_ids
            or self.duplicate_instructions
            or self.torn_records
            or self.jsonl_mismatch
            or self.similar_pairs
        )

    def table(self) -> str:
        rows = [
            ("kills survived", self.kills),
            ("records in tasks.jsonl", self.records),
            ("duplicate ids", self.duplicate_ids),
            ("duplicate instructions", self.duplicate_instructions),
            ("torn records", self.torn_records),
            ("jsonl lines not matching the checkpoint", self.jsonl_mismatch),
            ("accepted pairs above the ROUGE-L threshold", self.similar_pairs),
            ("answers served by the provider", self.answers_served),
            ("answers recorded in the ledger", self.answers_recorded),
            ("answers lost in flight at a kill (re-bought)", self.lost_in_flight),
            ("answers reused from the ledger on resume", self.answers_reused),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value:>8}" for name, value in rows)


def run_command(base_url: str, out: Path, target: int, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "selfinstruct_async", "run", "--out", str(out),
        "--base-url", base_url, "--model", "sim", "--target", str(target), *extra,
    ]  # fmt: skip


def chaos_run(
    out: Path,
    *,
    kills: int,
    target: int,
    seed: int = 0,
    min_delay: float = 0.3,
    max_delay: float = 2.5,
    simulator_args: tuple[str, ...] = (),
    run_args: tuple[str, ...] = (),
    timeout: float = 600.0,
) -> ChaosReport:
    """Kill a run ``kills`` times at random moments, let it finish, and audit the result.

    The killed runs have no target (``--target 0``), so every kill lands mid-run; the
    last run resumes and stops at ``target`` (or at once if the pool already holds it).
    """
    rng = random.Random(seed)
    report = ChaosReport()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with simulator_process(*simulator_args) as base_url:
        forever = run_command(base_url, out, 0, list(run_args))
        for _ in range(kills):
            process = subprocess.Popen(
                forever, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
            )
            # The moment is the experiment, not a synchronisation: any instant must be safe.
            try:
                _, errors = process.communicate(timeout=rng.uniform(min_delay, max_delay))
                report.notes.append(f"a run ended before its kill: {errors.decode()[-500:]}")
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.communicate()
                report.kills += 1
        command = run_command(base_url, out, target, list(run_args))
        final = subprocess.run(command, capture_output=True, env=env, timeout=timeout)
        report.final_exit_code = final.returncode
        if final.returncode != 0:
            report.notes.append(final.stderr.decode()[-1000:])
        report.answers_served = served(base_url)
    audit(out, report)
    return report


def audit(out: Path, report: ChaosReport, threshold: float = 0.7) -> None:
    """Check the run directory for duplicates, torn lines and pool consistency."""
    ids: list[str] = []
    instructions: list[str] = []
    for line in (out / "tasks.jsonl").read_bytes().splitlines():
        try:
            task = json.loads(line)
            ids.append(task["id"])
            instructions.append(task["instruction"])
        except (ValueError, KeyError, TypeError):
            report.torn_records += 1
    report.records = len(ids)
    report.duplicate_ids = len(ids) - len(set(ids))
    report.duplicate_instructions = len(instructions) - len(set(instructions))
    with Store(out, read_only=True) as store:
        committed = [t.id for t in store.accepted_tasks()]
        pooled = store.pooled_instructions()
        report.answers_recorded = int(store.db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])
        report.answers_reused = int(counters.ledger_reused_total(store.counters()))
    report.jsonl_mismatch = sum(a != b for a, b in zip(ids, committed, strict=False)) + abs(
        len(ids) - len(committed)
    )
    index = SimilarityIndex(tokenizer="rouge", threshold=threshold)
    for text in pooled:
        if index.first_above(text, threshold) is not None:
            report.similar_pairs += 1
        index.add(text)
