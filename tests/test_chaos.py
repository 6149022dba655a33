"""Kill -9 at random moments, resume, and find no duplicate, torn or inconsistent record."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfinstruct_async.simulator.chaos import chaos_run

FAULTS = (
    "--latency",
    "0.05",
    "--fault-5xx",
    "0.03",
    "--fault-reset",
    "0.01",
    "--fault-malformed",
    "0.01",
)


@pytest.mark.slow
def test_three_sigkills_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    report = chaos_run(
        tmp_path / "run",
        kills=3,
        target=40,
        seed=7,
        min_delay=1.5,
        max_delay=3.0,
        simulator_args=FAULTS,
    )
    assert report.final_exit_code == 0, report.notes
    assert report.kills == 3, report.notes
    assert report.records >= 40
    assert report.consistent, report.table()
    # Everything the provider answered was recorded, except what was in flight at a kill.
    assert report.answers_recorded <= report.answers_served
