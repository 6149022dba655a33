"""SIGKILL a ``selfinstruct run --mode batch`` at random moments, resume each time, audit.

    .venv/bin/python bench/batch_chaos.py [--kills 12] [--target 200] [--seed 1]

The provider is the simulator in its own process, with batches that take a while, lines
that fail (``--batch-error-rate``) and batches that expire before they finish
(``--batch-window`` shorter than ``--batch-seconds``), so kills land while requests are
committed, files uploaded, batches created, polled and collected. The audit reads the
simulator's own records (``GET /_simulator/batches``) and the run's checkpoint:

- requests bought twice (answered twice by the provider): must be 0;
- needless resubmissions (a custom_id sent again with no unanswered line before): 0;
- batches the provider holds that the checkpoint does not know: must be 0;
- answers of collected batches missing from the ledger (lost): must be 0.

and prints the run's own counters: batches submitted, found on resume, polled, ended
by status, requests resubmitted, generation answers replayed. Counters ride along with
the checkpoint's commits, so a killed session's last few are missing from them; the
provider's records and the checkpoint's ``batches`` table are exact.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from selfinstruct_async import counters as names
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.client.batch import LOCAL_ID
from selfinstruct_async.simulator.process import simulator_process

ROOT = Path(__file__).resolve().parent.parent


def audit(base_url: str) -> dict[str, Any]:
    root = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/_simulator/batches", timeout=30) as response:
        seen: dict[str, Any] = json.load(response)
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--target", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-delay", type=float, default=0.5)
    parser.add_argument("--max-delay", type=float, default=3.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    env = {
        **os.environ,
        "SELFINSTRUCT_BATCH_POLL_SECONDS": "0.05",
        "SELFINSTRUCT_BATCH_QUIET_SECONDS": "0.1",
        "SELFINSTRUCT_RUN_RETRY_FAILED_AFTER": "0",
    }
    simulator = (
        "--batch-seconds", "0.6", "--batch-window", "0.5", "--batch-error-rate", "0.03",
        "--seed", str(args.seed),
    )  # fmt: skip
    started = time.monotonic()
    exit_codes: list[int] = []
    with tempfile.TemporaryDirectory() as tmp, simulator_process(*simulator) as base_url:
        out = Path(tmp) / "run"
        command = [
            sys.executable, "-m", "selfinstruct_async", "run", "--out", str(out),
            "--base-url", base_url, "--model", "sim", "--target", str(args.target),
            "--mode", "batch", "--no-progress", "--seed", str(args.seed),
        ]  # fmt: skip
        log = Path(tmp) / "runs.log"
        with open(log, "a") as sink:
            for _ in range(args.kills):
                process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env, cwd=ROOT)
                try:
                    process.wait(timeout=rng.uniform(args.min_delay, args.max_delay))
                except subprocess.TimeoutExpired:
                    process.kill()  # SIGKILL
                    process.wait()
                exit_codes.append(process.returncode)
            final = subprocess.run(command, stdout=sink, stderr=sink, env=env, cwd=ROOT)
        seen = audit(base_url)
        with Store(out, read_only=True) as store:
            counters = store.counters()
            ledger = {row[0] for row in store.db.execute("SELECT key FROM ledger")}
            known = {
                local: (batch_id, state)
                for local, batch_id, state in store.db.execute(
                    "SELECT local_id, batch_id, state FROM batches"
                )
            }
            accepted = store.count_by_status()["accepted"]
            states = dict(store.db.execute("SELECT state, COUNT(*) FROM batches GROUP BY 1"))
        unknown = lost = 0
        for job_id, job in seen["jobs"].items():
            batch_id, state = known.get(job["metadata"].get(LOCAL_ID, ""), (None, None))
            if batch_id != job_id:
                unknown += 1
            elif state == "collected":
                lost += len(set(job["answered"]) - ledger)
        lines = (out / "tasks.jsonl").read_text().splitlines()
        instructions = [json.loads(line)["instruction"] for line in lines]
        errors = [line for line in log.read_text().splitlines() if "error" in line.lower()]
        if final.returncode != 0 or errors:
            print("\n".join(errors[-10:]) or log.read_text()[-3000:])
    killed = sum(1 for code in exit_codes if code == -9)
    rows = [
        ("kills (SIGKILL mid-run)", killed),
        ("runs that ended before their kill (exit codes)", f"{len(exit_codes) - killed} "
         f"{sorted(set(exit_codes) - {-9})}"),
        ("final run exit code", final.returncode),
        ("accepted tasks / target", f"{accepted} / {args.target}"),
        ("duplicate instructions in tasks.jsonl", len(instructions) - len(set(instructions))),
        ("batches created at the provider", seen["batches"]),
        ("  by the run (batch.batches_submitted)", int(counters.get(names.BATCHES_SUBMITTED, 0))),
        ("  found on resume instead of created", int(counters.get(names.BATCHES_FOUND, 0))),
        ("input files uploaded at the provider", seen["uploads"]),
        ("  found on resume instead of uploaded", int(counters.get(names.BATCH_FILES_FOUND, 0))),
        ("status polls (batch.polls)", int(counters.get(names.BATCH_POLLS, 0))),
        ("batches by status at the provider", json.dumps(seen["statuses"], sort_keys=True)),
        ("request lines submitted at the provider", sum(seen["submitted"].values())),
        ("  answered", sum(seen["answered"].values())),
        ("  sent again after an unanswered line", sum(seen["submitted"].values())
         - len(seen["submitted"])),
        ("requests submitted (run)", int(counters.get(names.BATCH_REQUESTS_SUBMITTED, 0))),
        ("requests resubmitted", int(counters.get(names.BATCH_RESUBMITTED, 0))),
        ("generation answers replayed on resume", int(counters.get(names.BATCH_REPLAYED, 0))),
        ("REQUESTS BOUGHT TWICE (provider)", len(seen["answered_twice"])),
        ("  run counter", int(counters.get(names.BATCH_BOUGHT_TWICE, 0))),
        ("NEEDLESS RESUBMISSIONS (provider)", len(seen["needless_resubmissions"])),
        ("INPUT FILES UPLOADED TWICE (provider)", len(seen["files_uploaded_twice"])),
        ("batches in the checkpoint by state", json.dumps(states, sort_keys=True)),
        ("BATCHES UNKNOWN TO THE CHECKPOINT", unknown),
        ("ANSWERS LOST (collected, not in ledger)", lost),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"{time.monotonic() - started:.0f}s")
    bad = len(seen["answered_twice"]) + len(seen["needless_resubmissions"]) + unknown + lost
    bad += len(seen["files_uploaded_twice"])
    return 0 if bad == 0 and final.returncode == 0 and accepted >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
