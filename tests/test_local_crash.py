"""A native crash in the embedded model ends the run with one line, and the run resumes.

Real processes and real signals: ``selfinstruct run`` drives the real llama.cpp worker,
the test sends that worker SIGILL (what a CPU without a build's instructions does) or
hands it a corrupt GGUF, and then reads the exit code, stderr and the run directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from selfinstruct_async.client.local import default_model_path, describe_death

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"
)

CLI = [sys.executable, "-m", "selfinstruct_async"]
DEMO = Path(__file__).resolve().parent.parent / "configs" / "local-demo.toml"


def selfinstruct(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_a_corrupt_gguf_fails_with_one_line_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + os.urandom(4096))
    run_dir = tmp_path / "run"
    result = selfinstruct(
        "run", "--out", str(run_dir), "--target", "2", "--model-path", str(bad), "--no-progress"
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("selfinstruct: error: ") and str(bad) in last
    assert selfinstruct("status", str(run_dir)).returncode == 0  # the run directory is intact


@pytest.mark.slow
def test_sigill_in_the_model_worker_is_a_one_line_error_and_the_run_resumes(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    args = ["run", "--config", str(DEMO), "--out", str(run_dir), "--no-progress"]
    process = subprocess.Popen([*CLI, *args, "--target", "0"], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    lines = []
    worker = None
    for line in process.stderr:  # the client logs the worker's pid once the model is loaded
        lines.append(line)
        if found := re.search(r"embedded model loaded: .* \(worker pid (\d+)\)", line):
            worker = int(found.group(1))
            break
    assert worker is not None, "".join(lines)
    os.kill(worker, signal.SIGILL)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 1, rest
    assert "Traceback" not in rest
    last = rest.strip().splitlines()[-1]
    assert last.startswith("selfinstruct: error: the embedded model crashed: ")
    assert "SIGILL (illegal instruction)" in last and "make llama-rebuild" in last
    assert str(default_model_path()) in last

    status = selfinstruct("status", str(run_dir), "--json")
    assert status.returncode == 0, status.stderr
    accepted = int(json.loads(status.stdout)["tasks"]["accepted"])
    resumed = selfinstruct(*args, "--target", str(accepted + 1))
    assert resumed.returncode == 0, resumed.stderr
    assert len((run_dir / "tasks.jsonl").read_text().splitlines()) == accepted + 1


@pytest.mark.parametrize(
    ("returncode", "expected"),
    [
        (-signal.SIGKILL, "SIGKILL (killed, most often by the kernel when memory runs out)"),
        (-signal.SIGSEGV, "SIGSEGV (segmentation fault)"),
        (3, "exited with status 3"),
    ],
)
def test_each_kind_of_death_is_described_with_the_model_and_a_remedy(
    returncode: int, expected: str
) -> None:
    message = describe_death(returncode, Path("/models/m.gguf"), "ggml_abort: oops")
    assert expected in message and "/models/m.gguf" in message
    assert "'ggml_abort: oops'" in message and "resume" in message
