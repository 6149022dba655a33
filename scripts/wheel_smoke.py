"""What a user gets from the wheel: run with an installed (non-editable) selfinstruct-async.

    VENV/bin/python scripts/wheel_smoke.py WORK_DIR

Checks, from outside the source tree, that the installed package lists every built-in
filter, ships the default seeds, and completes a small run against the simulator (started
from the installed package too). Exits non-zero with the reason on the first failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BUILT_IN_FILTERS = {
    "leading_character", "word_count", "blacklist", "non_text_modality", "write_a_program",
    "rouge_similarity", "empty_output", "colon_ending", "input_equals_output",
    "conflicting_outputs", "duplicate_instance",
}  # fmt: skip
TARGET = 5


def fail(message: str) -> None:
    print(f"wheel smoke: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def selfinstruct(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "selfinstruct"
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, check=False)


def main() -> None:
    work = Path(sys.argv[1]).resolve()
    work.mkdir(parents=True, exist_ok=True)
    import selfinstruct_async
    from selfinstruct_async.seeds import DEFAULT_SEEDS, builtin_seed_path, load_seed_tasks
    from selfinstruct_async.simulator.process import simulator_process

    location = Path(selfinstruct_async.__file__).resolve()
    if "site-packages" not in location.parts:
        fail(f"selfinstruct_async imported from {location}, not from an installed wheel")
    if len(load_seed_tasks(DEFAULT_SEEDS)) != 175 or not load_seed_tasks(builtin_seed_path("zh")):
        fail("the shipped seed sets are missing or incomplete")

    listing = selfinstruct("plugins", "--json", cwd=work)
    if listing.returncode != 0:
        fail(f"selfinstruct plugins exited {listing.returncode}: {listing.stderr.strip()}")
    found = {name for plugin in json.loads(listing.stdout) for name in plugin["filters"]}
    if missing := BUILT_IN_FILTERS - found:
        fail(f"selfinstruct plugins does not list {sorted(missing)}")

    with simulator_process() as base_url:
        run = selfinstruct(
            "run", "--out", "run", "--target", str(TARGET), "--base-url", base_url,
            "--model", "sim-model", "--no-progress", cwd=work,
        )  # fmt: skip
    if run.returncode != 0:
        fail(f"selfinstruct run exited {run.returncode}: {run.stderr.strip()[-2000:]}")
    tasks = (work / "run" / "tasks.jsonl").read_text().splitlines()
    if len(tasks) != TARGET:
        fail(f"tasks.jsonl holds {len(tasks)} tasks, expected {TARGET}")
    print(
        f"wheel smoke: ok: {location.parent} lists {len(found)} filters, "
        f"ran {TARGET} tasks from the shipped seeds (pid {os.getpid()})"
    )


if __name__ == "__main__":
    main()
