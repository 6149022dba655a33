"""Answers of a hundred megabytes, end to end: real runs against the simulator's process.

Issue 18 item 9: a 100 MB answer made a run ignore SIGTERM. Here every answer the simulated
provider sends is 100 MiB. Trickled at 64 KiB a second, one answer outlasts the test: a
first SIGTERM must still end the run once ``run.drain_seconds`` is over, a second one at
once, each with exit 0, the summary printed and the checkpoint usable. Sent at full speed
to a run whose ``max_response_bytes`` is 64 KiB, no answer may be buffered whole: every
attempt fails at the cap, the run ends on its failed-requests rule with one line naming
the cap, and the run's peak memory, measured by a wrapper process of its own, stays far
below what holding one answer would take.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.simulator.process import simulator_process, stats
from tests.test_faults import ROOT, assert_one_line_error, env, run_args, selfinstruct
from tests.test_signals import wait_for_line

# Real runs and a simulator process moving hundreds of megabytes: left out by `make test-fast`.
pytestmark = pytest.mark.slow

HUGE = 100 << 20
CAP = 65536
# Every answer 100 MiB at full speed: read whole, one blocked the run for good (the fault).
FULL_SPEED = ("--fault-huge", "1", "--huge-bytes", str(HUGE), "--latency", "0")
# Every answer 100 MiB, 64 KiB a second: even the default 16 MiB cap is minutes away.
TRICKLED = ("--fault-huge", "1", "--huge-bytes", str(HUGE), "--huge-chunked",
            "--huge-chunk-delay", "1", "--latency", "0")  # fmt: skip
# Generous for a loaded 2-core machine; the checks are on outcomes, never on durations.
STOP_WITHIN = 120.0
# Kills a run still alive after this, so a blocking read of its stderr ends at EOF and the
# test fails with what the run said instead of hanging until pytest-timeout.
WATCHDOG = 240.0
# Runs the command in argv[2:] for at most argv[1] seconds (killing it then); prints its
# exit (None if killed), output and peak RSS (KiB) as JSON. Measured in a process of its
# own: RUSAGE_CHILDREN in pytest would include the simulator and every earlier child.
PEAK_RSS_WRAPPER = """
import json, resource, subprocess, sys
try:
    done = subprocess.run(sys.argv[2:], capture_output=True, text=True,
                          timeout=float(sys.argv[1]))
    seen = {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
except subprocess.TimeoutExpired as killed:  # its output so far comes as bytes
    seen = {"returncode": None, "stdout": "",
            "stderr": (killed.stderr or b"").decode(errors="replace")}
seen["peak_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps(seen))
"""


def run_env(drain_seconds: float | None) -> dict[str, str]:
    environ = env()
    environ.pop("SELFINSTRUCT_RUN_DRAIN_SECONDS", None)
    if drain_seconds is not None:
        environ["SELFINSTRUCT_RUN_DRAIN_SECONDS"] = str(drain_seconds)
    return environ


@contextmanager
def started_run(
    out: Path, base_url: str, *, drain_seconds: float | None
) -> Iterator[subprocess.Popen[str]]:
    """``selfinstruct run`` in the background; killed on the way out if still running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "selfinstruct_async",
         *run_args(out, base_url, target=5), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=run_env(drain_seconds), cwd=ROOT,
    )  # fmt: skip
    watchdog = threading.Timer(WATCHDOG, process.kill)
    watchdog.start()
    try:
        yield process
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
        process.communicate()


def wait_until_answering(base_url: str, process: subprocess.Popen[str]) -> int:
    """Wait until the simulator has begun a huge answer to the run; how many it has begun.

    The simulator counts each huge answer as it starts sending it; between looks the wait
    is on the run itself, whose early end is a failure worth its stderr.
    """
    deadline = time.monotonic() + STOP_WITHIN
    while time.monotonic() < deadline:
        begun = int(stats(base_url)["faults"].get("huge", 0))
        if begun:
            return begun
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.2)
            _, stderr = process.communicate()
            raise AssertionError(f"the run ended (exit {process.returncode}) first: {stderr}")
    raise AssertionError(f"no answer began within {STOP_WITHIN:g} s")


def stop_output(process: subprocess.Popen[str], signals: str) -> tuple[str, str]:
    """The run's stdout and stderr once it exits, or a failure saying it ignored ``signals``."""
    try:
        return process.communicate(timeout=STOP_WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError(
            f"the run did not stop within {STOP_WITHIN:g} s of {signals}: {stderr[-2000:]}"
        ) from None


def assert_checkpoint_intact(out: Path) -> None:
    """``status`` reads the run, and the checkpoint opens (its lock was released)."""
    status = selfinstruct("status", str(out))
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"{out}: 0 accepted")
    with Store(out) as store:
        assert store.count_by_status()["accepted"] == 0


@pytest.mark.parametrize("sent", [FULL_SPEED, TRICKLED], ids=["full-speed", "trickled"])
def test_sigterm_ends_a_run_in_the_middle_of_100_mb_answers_after_the_drain(
    tmp_path: Path, sent: tuple[str, ...]
) -> None:
    out = tmp_path / "run"
    # Default settings but a short drain: the default max_response_bytes applies.
    with (
        simulator_process(*sent) as base_url,
        started_run(out, base_url, drain_seconds=2) as process,
    ):
        wait_until_answering(base_url, process)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = stop_output(process, "SIGTERM")
        seen = stats(base_url)
    assert process.returncode == 0, stderr[-2000:]
    # Ended by the first signal alone, with answers still arriving.
    assert re.search(r"SIGTERM: no new requests; waiting up to 2s for [1-9]\d* in flight", stderr)
    assert "second SIGTERM" not in stderr
    assert "Traceback" not in stderr
    assert stdout.startswith("stopped by SIGTERM\n")
    assert f"0/5 tasks in {out / 'tasks.jsonl'}" in stdout
    assert seen["faults"]["huge"] >= 1
    assert seen["ok"] == 0
    assert_checkpoint_intact(out)


def test_a_second_sigterm_ends_a_run_in_the_middle_of_100_mb_answers_at_once(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    # The default drain of 30 s: only the second signal can end the run before it is over.
    with (
        simulator_process(*TRICKLED) as base_url,
        started_run(out, base_url, drain_seconds=None) as process,
    ):
        wait_until_answering(base_url, process)
        process.send_signal(signal.SIGTERM)
        wait_for_line(process, r"SIGTERM: no new requests; waiting up to \d+s for [1-9]\d* in")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = stop_output(process, "two SIGTERMs")
    assert process.returncode == 0, stderr[-2000:]
    assert "second SIGTERM: stopping now" in stderr
    assert "Traceback" not in stderr
    assert stdout.startswith("stopped by SIGTERM\n")
    assert f"0/5 tasks in {out / 'tasks.jsonl'}" in stdout
    assert_checkpoint_intact(out)


def run_measuring_peak_rss(
    out: Path, base_url: str, *extra: str, environ: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``selfinstruct`` to its end; its result and its peak resident memory in bytes."""
    command = [sys.executable, "-m", "selfinstruct_async", *run_args(out, base_url, target=5),
               "--no-progress", *extra]  # fmt: skip
    wrapper = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_WRAPPER, str(STOP_WITHIN), *command],
        capture_output=True, text=True, env=environ, cwd=ROOT, timeout=WATCHDOG,
    )  # fmt: skip
    assert wrapper.returncode == 0, wrapper.stderr[-2000:]
    seen = json.loads(wrapper.stdout)
    peak_mib = int(seen["peak_kib"]) >> 10
    assert seen["returncode"] is not None, (
        f"the run did not end within {STOP_WITHIN:g} s (peak RSS {peak_mib} MiB): "
        f"{seen['stderr'][-2000:]}"
    )
    result = subprocess.CompletedProcess(
        command, seen["returncode"], seen["stdout"], seen["stderr"]
    )
    return result, int(seen["peak_kib"]) * 1024


# Sets the cap for a run: extra command-line arguments and the environment.
CapSetting = Callable[[Path], tuple[list[str], dict[str, str]]]


def cap_by_config_file(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    config = tmp_path / "selfinstruct.toml"
    config.write_text(f"[[endpoints]]\nmax_response_bytes = {CAP}\nmax_attempts = 2\n")
    return ["--config", str(config)], run_env(None)


def cap_by_environment(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    environ = run_env(None)
    environ["SELFINSTRUCT_ENDPOINT_MAX_RESPONSE_BYTES"] = str(CAP)
    environ["SELFINSTRUCT_ENDPOINT_MAX_ATTEMPTS"] = "2"
    return [], environ


@pytest.mark.parametrize(
    ("capped", "body"),
    [
        (cap_by_config_file, ("--huge-chunked",)),  # the size shows only while reading
        (cap_by_environment, ()),  # Content-Length announces it
    ],
    ids=["config-file-chunked", "env-var-content-length"],
)
def test_answers_over_max_response_bytes_fail_without_being_buffered_and_end_the_run(
    tmp_path: Path, capped: CapSetting, body: tuple[str, ...]
) -> None:
    extra, environ = capped(tmp_path)
    out = tmp_path / "run"
    # Full speed: without the cap the run would hold 100 MiB answers within a second.
    with simulator_process(*FULL_SPEED, *body) as base_url:
        result, peak = run_measuring_peak_rss(out, base_url, *extra, environ=environ)
        seen = stats(base_url)
    # Every request fails, so the consecutive-failure rule ends the run with one line.
    assert_one_line_error(result, f"answer larger than {CAP} bytes")
    assert "requests failed in a row" in result.stderr
    assert seen["faults"]["huge"] >= 2  # both attempts of a request were made
    assert seen["ok"] == 0
    # A run alone takes ~60 MB; one answer held whole would add 100 MiB, and its copies more.
    assert peak < 250 << 20, f"peak RSS {peak >> 20} MiB"
    assert_checkpoint_intact(out)
