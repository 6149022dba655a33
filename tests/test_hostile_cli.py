"""The command line against a careless or hostile user: secrets in URLs, readers that go away,
impossible values, misspelt names. Each ends in one clear line (or none) and nothing lost.

Real processes (``python -m selfinstruct_async``), real pipes whose reader has left, a real
terminal that closed, the simulator in its own process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async.simulator.process import simulator_process
from tests.test_faults import ROOT, assert_one_line_error, env, run_args, selfinstruct

PASSWORD = "hunter2hunter2"  # does not look like a key: only the URL's shape gives it away
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell shows for a command killed by SIGPIPE


def selfinstruct_env(
    extra: dict[str, str], *args: str, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``selfinstruct ARGS`` with ``extra`` environment variables."""
    return subprocess.run(
        [sys.executable, "-m", "selfinstruct_async", *args],
        capture_output=True, text=True, env={**env(), **extra}, cwd=ROOT, timeout=120, **kwargs,
    )  # fmt: skip


def with_dead_stdout(*args: str) -> subprocess.CompletedProcess[str]:
    """``selfinstruct ARGS | head -0``: stdout is a pipe whose reader has already left."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "selfinstruct_async", *args],
            stdout=write_end, stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT,
            timeout=120,
        )  # fmt: skip
    finally:
        os.close(write_end)


def task_lines(out: Path) -> list[str]:
    return (out / "tasks.jsonl").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def simulator_url() -> Iterator[str]:
    with simulator_process() as url:
        yield url


@pytest.fixture(scope="module")
def finished_run(simulator_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "run"
    done = selfinstruct(*run_args(out, simulator_url, target=3), "--no-progress")
    assert done.returncode == 0, done.stderr
    return out


# ------------------------------------------------------------ credentials in base_url


def test_credentials_in_the_base_url_are_refused_and_never_printed_or_saved(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    url = f"http://user:{PASSWORD}@127.0.0.1:9/v1"
    for extra in ([], ["-v"], ["--log-json"]):
        done = selfinstruct(
            *extra, "run", "--out", str(out), "--base-url", url, "--model", "sim", "--target", "2"
        )
        assert_one_line_error(
            done,
            "endpoints[0].base_url: holds credentials (user:password@); remove them and put "
            "the key in the environment variable named by endpoints[0].api_key_env "
            "(OPENAI_API_KEY)",
        )
        assert PASSWORD not in done.stderr + done.stdout
    assert not out.exists()  # refused before the run directory, so no config.json holds it


def test_a_url_with_credentials_in_an_error_line_is_redacted(tmp_path: Path) -> None:
    # Pasted into the wrong setting, the URL reaches the error text itself.
    url = f"https://user:{PASSWORD}@api.example.com/v1"
    done = selfinstruct_env({"SELFINSTRUCT_RUN_TARGET": url}, *run_args(tmp_path / "run"))
    assert_one_line_error(
        done, "SELFINSTRUCT_RUN_TARGET: run.target: expected int, got 'https://[redacted]@api"
    )
    assert PASSWORD not in done.stderr + done.stdout


# ------------------------------------------------------------ readers that go away


@pytest.mark.slow
def test_a_run_reaches_its_target_when_the_reader_of_its_log_goes_away(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # Every request takes 2 s, and a task needs three in a row (instruction, class,
    # instances): the run outlives the 5 s progress interval, so the display writes again
    # after the reader has gone, as `selfinstruct run ... 2>&1 >out | head -1` does.
    with simulator_process("--latency", "2", "--latency-sigma", "0") as url:
        read_end, write_end = os.pipe()
        process = subprocess.Popen(
            [sys.executable, "-m", "selfinstruct_async", *run_args(out, url, target=3)],
            stdout=subprocess.PIPE, stderr=write_end, text=True, env=env(), cwd=ROOT,
        )  # fmt: skip
        os.close(write_end)
        try:
            first = b""
            while not first.endswith(b"\n"):
                chunk = os.read(read_end, 1)  # the first line, like `head -1`
                assert chunk, "the run wrote no line to stderr"
                first += chunk
        finally:
            os.close(read_end)
        stdout, _ = process.communicate(timeout=300)
    assert process.returncode == 0, stdout
    assert "3/3 tasks" in stdout
    assert len(task_lines(out)) == 3


def test_a_run_whose_output_reader_left_keeps_its_exit_code_and_says_nothing(
    simulator_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    done = with_dead_stdout(*run_args(out, simulator_url, target=3))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert "Exception ignored" not in done.stderr
    assert len(task_lines(out)) == 3


@pytest.mark.parametrize(
    "command",
    [["status"], ["status", "--json"], ["stats"], ["stats", "--json"], ["plugins"],
     ["plugins", "--json"]],
)  # fmt: skip
def test_output_piped_into_a_reader_that_left_exits_141_without_a_word(
    finished_run: Path, command: list[str]
) -> None:
    args = [*command, str(finished_run)] if command[0] != "plugins" else command
    done = with_dead_stdout(*args)
    assert done.returncode == EXIT_BROKEN_PIPE
    assert done.stderr == ""  # no traceback, no "Exception ignored ... BrokenPipeError"


# ------------------------------------------------------------ one line, not a traceback


@pytest.mark.parametrize("command", ["run", "plugins"])
def test_a_config_path_that_is_a_directory_is_one_line_naming_it(
    tmp_path: Path, command: str
) -> None:
    folder = tmp_path / "conf.d"
    folder.mkdir()
    args = [*run_args(tmp_path / "run"), "--config", str(folder)] if command == "run" else [
        "plugins", "--config", str(folder)]  # fmt: skip
    assert_one_line_error(selfinstruct(*args), f"{folder}: is a directory, not a config file")
    from_env = selfinstruct_env({"SELFINSTRUCT_CONFIG": str(folder)}, *run_args(tmp_path / "run"))
    assert_one_line_error(from_env, f"{folder}: is a directory")
    assert not (tmp_path / "run").exists()


def test_an_unreadable_config_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("[run]\ntarget = 2\n", encoding="utf-8")
    path.chmod(0)
    command = [sys.executable, "-m", "selfinstruct_async", "plugins", "--config", str(path)]
    if os.geteuid() == 0:
        # root reads any file; without these two capabilities it obeys the mode bits.
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv is not installed")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env(), cwd=ROOT, timeout=120)
    assert_one_line_error(done, f"{path}: cannot read config file (Permission denied)")


@pytest.mark.parametrize("value", ["99999", "-1", "65536", "garbage", "host:", "::1:8080", ""])
def test_a_bad_monitor_address_is_bad_usage_before_the_run_directory_exists(
    tmp_path: Path, value: str
) -> None:
    out = tmp_path / "run"
    done = selfinstruct(*run_args(out), f"--monitor={value}")
    assert done.returncode == 2, done.stderr
    assert "argument --monitor: " in done.stderr and repr(value) in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "toml", "message"),
    [
        (["--rpm", "nan"], "", "endpoints[0].rpm: must be a finite number, got nan"),
        (["--tpm", "inf"], "", "endpoints[0].tpm: must be a finite number, got inf"),
        ([], "[[endpoints]]\nrpm = inf\n", "endpoints[0].rpm: must be a finite number, got inf"),
        ([], "[generation]\ntemperature = nan\n", "generation.temperature: must be a finite"),
        (
            [], "[generation]\ndemonstrations = 2\nmachine_demonstrations = 3\n",
            "generation: machine_demonstrations (3) must be <= demonstrations (2)",
        ),
        (["--model", ""], "", "endpoints[0].model: must not be empty when base_url is set"),
        ([], "[plugins]\ndisabled = ['write_a_progam']\n",
         "plugins.disabled: 'write_a_progam' is neither an installed plugin nor a filter "
         "(plugins: "),
    ],
)  # fmt: skip
def test_impossible_values_are_one_line_naming_the_key(
    tmp_path: Path, flags: list[str], toml: str, message: str
) -> None:
    out = tmp_path / "run"
    config = tmp_path / "run.toml"
    config.write_text(toml, encoding="utf-8")
    done = selfinstruct(*run_args(out), "--config", str(config), *flags)
    assert_one_line_error(done, message)
    assert not out.exists()


# ------------------------------------------------------------ no longer accepted silently


def test_a_misspelt_environment_variable_is_one_line_naming_it(tmp_path: Path) -> None:
    done = selfinstruct_env({"SELFINSTRUCT_GENRATION_TOP_P": "0.9"}, *run_args(tmp_path / "run"))
    assert_one_line_error(
        done,
        "SELFINSTRUCT_GENRATION_TOP_P: no such setting: unknown section 'genration' "
        "(sections: batch, classification, endpoint, filters, generation, instances, local, "
        "plugins, run",
    )
    done = selfinstruct_env({"SELFINSTRUCT_GENERATION_TOPP": "0.9"}, "plugins")
    assert_one_line_error(done, "SELFINSTRUCT_GENERATION_TOPP: no such setting: [generation]")


def test_disabling_filters_by_name_removes_exactly_those_filters() -> None:
    # The README's own example, which used to leave both filters in the chain.
    listed = selfinstruct_env({"SELFINSTRUCT_PLUGINS_DISABLED": "write_a_program,blacklist"},
                              "plugins")  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    chain = listed.stdout.split("instruction filters, in order:\n")[1]
    names = [line.split()[1] for line in chain.splitlines() if line.startswith(" ")]
    assert "write_a_program" not in names and "blacklist" not in names
    assert {"word_count", "non_text_modality", "leading_character"} <= set(names)
    assert "filters left out by plugins.disabled: blacklist, write_a_program" in listed.stdout


def monitor_run(out: Path, url: str, address: str) -> subprocess.CompletedProcess[str]:
    return selfinstruct(*run_args(out, url, target=2), "--no-progress", "--monitor", address)


def monitor_warnings(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if "WARNING monitor:" in line]


def test_a_monitor_reachable_from_other_machines_is_a_warning(
    simulator_url: str, tmp_path: Path
) -> None:
    exposed = monitor_run(tmp_path / "a", simulator_url, "0.0.0.0:0")
    assert exposed.returncode == 0, exposed.stderr
    (warning,) = monitor_warnings(exposed)
    assert "monitor: listening on http://0.0.0.0:" in warning
    assert "without authentication" in warning
    local = monitor_run(tmp_path / "b", simulator_url, "127.0.0.1:0")
    assert local.returncode == 0, local.stderr
    assert monitor_warnings(local) == [] and "monitor on http://127.0.0.1:" in local.stderr
