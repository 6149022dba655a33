"""The example plugin package, pip-installed where only this module's subprocesses see it.

``examples/selfinstruct-distinct-words`` is a separate distribution, so it is installed the
way a user would install it (a wheel built by pip, offline: no dependencies, no isolated
build) and found only through its ``selfinstruct_async`` entry point. It goes into a
``--target`` directory of its own that only the ``selfinstruct`` processes started here
put on their ``PYTHONPATH``: the interpreter running the tests and the shared ``.venv``
never see it, so no other test module (nor a concurrent run) depends on whether, or how
far, this module has got.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import anyio
import pytest

from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.prompts import DEFAULT_TEMPLATES
from selfinstruct_async.simulator.responder import respond
from tests.fixtures.simulator import MakeSimulator

# A wheel build and a dozen selfinstruct processes: about 15 s, left out by `make test-fast`.
pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "selfinstruct-distinct-words"
DIST = "selfinstruct-distinct-words"
PACKAGE = "selfinstruct_distinct_words"
WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")
CLI = [sys.executable, "-m", "selfinstruct_async"]
# Runs the command line in-process and then writes what the installed plugin object's
# observer hooks counted to argv[1]: the counts live in that process only.
RUN_AND_COUNT = """
import json, sys
from selfinstruct_async.cli import main
code = main(sys.argv[2:])
import selfinstruct_distinct_words as example
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump({"accepted": example.plugin.accepted, "rejected": example.plugin.rejected}, out)
sys.exit(code)
"""


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        hint = ""
        if "bdist_wheel" in done.stderr + done.stdout:
            hint = "\n(the venv needs setuptools>=70.1, or the 'wheel' package, to build it)"
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}{hint}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the example distribution is installed into, for PYTHONPATH only."""
    work = tmp_path_factory.mktemp("example-plugin")
    # pip builds in the source tree (build/, *.egg-info): build a copy, not the checkout.
    source = shutil.copytree(
        EXAMPLE, work / "source", ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    target = work / "site"
    _pip("install", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(source))  # fmt: skip
    return target


def environ(installed: Path | None) -> dict[str, str]:
    """This environment, without the developer's settings, plus the plugin's directory."""
    # The developer's shell must not decide which plugins these tests see.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFINSTRUCT_")}
    env.pop("PYTHONPATH", None)
    if installed is not None:
        env["PYTHONPATH"] = str(installed)
    return env


def selfinstruct(
    installed: Path | None, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = environ(installed) | (extra_env or {})
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def listed_plugins(installed: Path | None, *args: str) -> dict[str, dict[str, object]]:
    done = selfinstruct(installed, "plugins", "--json", *args)
    assert done.returncode == 0, done.stderr
    return {p["name"]: p for p in json.loads(done.stdout)}


def distinct(text: str) -> int:
    return len({w.casefold() for w in WORD.findall(text)})


def test_the_install_reaches_neither_this_interpreter_nor_its_environment(
    installed: Path,
) -> None:
    assert (installed / PACKAGE / "__init__.py").is_file()
    entry_points = next(installed.glob("*.dist-info")) / "entry_points.txt"
    assert "distinct_words = selfinstruct_distinct_words:plugin" in entry_points.read_text()

    assert importlib.util.find_spec(PACKAGE) is None
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution(DIST)
    for site_dir in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        assert not list(Path(site_dir).glob(f"*{PACKAGE}*")), site_dir
    # A selfinstruct without the directory on its path does not find the plugin either.
    assert "distinct_words" not in listed_plugins(None)


def test_entry_point_makes_it_a_loaded_plugin(installed: Path) -> None:
    plugins = listed_plugins(installed)
    info = plugins["distinct_words"]
    assert info["version"] == f"{DIST} 0.1.0"
    assert info["hooks"] == [
        "candidate_rejected", "register_instance_filters", "register_instruction_filters",
        "task_accepted",
    ]  # fmt: skip
    assert info["filters"] == ["distinct_words", "echoed_instruction"]
    assert {"length", "keywords", "instances"} <= set(plugins)  # the built-ins are still there


@pytest.mark.parametrize("disabled_by", ["config", "environment"])
def test_it_can_be_disabled_from_the_config_or_the_environment(
    installed: Path, tmp_path: Path, disabled_by: str
) -> None:
    toml = tmp_path / "run.toml"
    settings = tmp_path / "settings.toml"
    extra_env = {}
    if disabled_by == "config":
        toml.write_text('[plugins]\ndisabled = ["distinct_words"]\n', encoding="utf-8")
    else:
        toml.write_text("", encoding="utf-8")
        extra_env = {"SELFINSTRUCT_PLUGINS_DISABLED": "keywords,distinct_words"}
    settings.write_text(
        toml.read_text(encoding="utf-8") + "[filters.distinct_words]\nmin_distinct = 5\n",
        encoding="utf-8",
    )

    listed = selfinstruct(installed, "plugins", "--json", "--config", str(toml),
                          extra_env=extra_env)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "distinct_words" not in {p["name"] for p in json.loads(listed.stdout)}
    configured = selfinstruct(installed, "plugins", "--config", str(settings),
                              extra_env=extra_env)  # fmt: skip
    assert configured.returncode == 1
    assert "filters.distinct_words: no such filter" in configured.stderr


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"min_distinc": 5}, "filters.distinct_words.min_distinc: unknown key"),
        ({"min_distinct": "5"}, "filters.distinct_words.min_distinct: expected int, got '5'"),
        ({"min_distinct": 0}, "filters.distinct_words.min_distinct: must be >= 1, got 0"),
        ({"ignore_case": "no"}, "filters.distinct_words.ignore_case: expected bool"),
    ],
)
def test_its_settings_are_validated_by_the_framework(
    installed: Path, tmp_path: Path, table: dict[str, object], message: str
) -> None:
    toml = tmp_path / "run.toml"
    lines = [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    toml.write_text("[filters.distinct_words]\n" + "\n".join(lines) + "\n", encoding="utf-8")
    done = selfinstruct(installed, "plugins", "--config", str(toml))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert message in done.stderr


def test_bad_settings_in_the_config_file_fail_the_plugins_command(
    installed: Path, tmp_path: Path
) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text("[filters.distinct_words]\nmin_words = 5\n", encoding="utf-8")
    done = selfinstruct(installed, "plugins", "--config", str(toml))
    assert done.returncode == 1
    assert "filters.distinct_words.min_words: unknown key" in done.stderr
    assert "known keys: ignore_case, min_distinct" in done.stderr


def test_the_plugins_command_lists_it_with_its_filters_in_order(installed: Path) -> None:
    done = selfinstruct(installed, "plugins")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"distinct_words {DIST} 0.1.0\n" in out
    assert "  filters: distinct_words, echoed_instruction\n" in out
    instruction_part, instance_part = out.split("instruction filters, in order:\n")[1].split(
        "instance filters, in order:\n"
    )
    listed = [line.split()[1] for line in instruction_part.splitlines()]
    assert listed.index("word_count") < listed.index("distinct_words") < listed.index("blacklist")
    assert "  12 distinct_words" in instruction_part
    assert "  35 echoed_instruction" in instance_part


def test_the_plugins_command_lists_it_as_json(installed: Path) -> None:
    listed = listed_plugins(installed)
    assert listed["distinct_words"]["version"] == f"{DIST} 0.1.0"
    assert listed["distinct_words"]["filters"] == ["distinct_words", "echoed_instruction"]


def echoing_respond(
    prompt: str, system: str, *, chat: bool, max_tokens: int, seed: int = 0
) -> tuple[str, str]:
    """The simulator's usual answers, except that each task's first example echoes its task."""
    text, finish = respond(prompt, system, chat=chat, max_tokens=max_tokens, seed=seed)
    if DEFAULT_TEMPLATES.instance_input_first_header not in prompt:
        return text, finish
    marker = f"{DEFAULT_TEMPLATES.task_label}: "
    instruction = prompt[prompt.rfind(marker) + len(marker) :].split("\n", 1)[0].strip()
    label = f"{DEFAULT_TEMPLATES.output_label}:"
    return text.replace(label, f"{label} {instruction}", 1), finish


@pytest.mark.anyio
async def test_a_full_run_applies_both_filters_and_calls_its_observers(
    installed: Path, make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(responder=echoing_respond)
    run_dir = tmp_path / "run"
    toml = tmp_path / "run.toml"
    # The simulator's instructions have 5 to 25 distinct words: 12 rejects about a third of
    # them, where the default (4) rejects none.
    toml.write_text("[filters.distinct_words]\nmin_distinct = 12\n", encoding="utf-8")
    counts = tmp_path / "counts.json"
    args = ["run", "--config", str(toml), "--out", str(run_dir), "--target", "8",
            "--base-url", handle.base_url, "--model", "sim", "--no-progress"]  # fmt: skip

    # Not subprocess.run: the simulator answers from this process's event loop.
    done = await anyio.run_process(
        [sys.executable, "-c", RUN_AND_COUNT, str(counts), *args],
        env=environ(installed),
        check=False,
    )

    assert done.returncode == 0, done.stderr.decode()
    with Store(run_dir, read_only=True) as store:
        rejections = store.rejection_summary()
        tasks = store.accepted_tasks()
    assert rejections["instruction/distinct_words"]["count"] > 0
    for example in rejections["instruction/distinct_words"]["examples"]:
        assert distinct(example["text"]) < 12
        assert example["reason"].endswith("distinct words, needs at least 12")
    assert rejections["instance/echoed_instruction"]["count"] > 0
    assert len(tasks) >= 8
    for task in tasks:
        assert distinct(task.instruction) >= 12
        for instance in task.instances:
            assert task.instruction.casefold().rstrip(".") not in instance.output.casefold()

    # The installed plugin object saw the same run through its observer hooks.
    observed = json.loads(counts.read_text(encoding="utf-8"))
    assert observed["accepted"] == len(tasks)
    for name in ("distinct_words", "echoed_instruction"):
        level = "instruction" if name == "distinct_words" else "instance"
        assert observed["rejected"].get(name, 0) == rejections[f"{level}/{name}"]["count"]
