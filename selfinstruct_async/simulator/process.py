"""The simulator in a process of its own, for benchmarks and tests that kill or time things."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def simulator_process(*args: str) -> Iterator[str]:
    """Run ``python -m selfinstruct_async.simulator`` on a free port; yield its base URL.

    Its stderr goes to a temporary file, not a pipe: a pipe nobody reads fills up after a
    few dozen logged lines and freezes the simulator, and every client with it.
    """
    with tempfile.TemporaryFile(mode="w+") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "selfinstruct_async.simulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            assert process.stdout is not None
            ready = process.stdout.readline()  # "listening on URL" once it accepts requests
            if not ready.startswith("listening on "):
                process.kill()
                process.wait()
                errors.seek(0)
                raise RuntimeError(f"simulator did not start: {ready}{errors.read()[-500:]}")
            yield ready.removeprefix("listening on ").strip()
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stats(base_url: str) -> dict[str, Any]:
    """What the simulator at ``base_url`` has seen (its stats endpoint)."""
    root = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/_simulator/stats", timeout=5) as response:
        seen: dict[str, Any] = json.load(response)
    return seen


def served(base_url: str) -> int:
    """Successful answers the simulator sent (its stats endpoint)."""
    return int(stats(base_url)["ok"])


def set_outage(base_url: str, *, active: bool = True, seconds: float | None = None) -> bool:
    """Start (for ``seconds``, or until ended) or end an outage; whether one is on now."""
    root = base_url.removesuffix("/v1")
    body = json.dumps({"active": active, "seconds": seconds}).encode()
    request = urllib.request.Request(
        f"{root}/_simulator/outage",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        state: dict[str, Any] = json.load(response)
    return bool(state["active"])
