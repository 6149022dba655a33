"""SIGKILL a real ``selfinstruct run`` at 20+ random moments, resume each time, audit the result.

    .venv/bin/python bench/chaos.py [--kills 24] [--target 300] [--seed 1]

The provider is the simulator in its own process with faults (5xx, resets, malformed
bodies), so kills land during requests, retries and commits. Prints the audit table:
duplicates and torn records must be 0, and answers lost in flight bound what a kill costs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from selfinstruct_async.simulator.chaos import chaos_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--target", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        report = chaos_run(
            Path(tmp) / "run",
            kills=args.kills,
            target=args.target,
            seed=args.seed,
            min_delay=1.0,
            max_delay=4.0,
            simulator_args=(
                "--latency",
                "0.1",
                "--latency-sigma",
                "0.5",
                "--fault-5xx",
                "0.05",
                "--fault-reset",
                "0.02",
                "--fault-malformed",
                "0.01",
            ),
        )
    print(report.table())
    print(f"final run exit code {report.final_exit_code}; {time.monotonic() - started:.0f}s")
    for note in report.notes:
        print("note:", note)
    return 0 if report.consistent and report.final_exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
