"""The example plugin package, pip-installed into this venv: discovered, validated and applied.

``examples/selfinstruct-distinct-words`` is a separate distribution, so it is installed the
way a user would install it (``pip install -e``, offline: no dependencies, no isolated build)
and found only through its ``selfinstruct_async`` entry point. It is uninstalled when this
module's tests are done, because other test modules assert the exact set of built-in
filters.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import site
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.cli import main
from selfinstruct_async.config import load_config
from selfinstruct_async.errors import ConfigError
from selfinstruct_async.plugins import Plugins, make_plugin_manager
from selfinstruct_async.prompts import DEFAULT_TEMPLATES
from selfinstruct_async.run.runner import run
from selfinstruct_async.simulator.responder import respond
from tests.fixtures.simulator import MakeSimulator

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "selfinstruct-distinct-words"
DIST = "selfinstruct-distinct-words"
PACKAGE = "selfinstruct_distinct_words"
WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        hint = ""
        if "bdist_wheel" in done.stderr + done.stdout:
            hint = "\n(the venv needs setuptools>=70.1, or the 'wheel' package, to build it)"
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}{hint}")


def _installed() -> bool:
    try:
        importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _site_dirs() -> list[Path]:
    paths = sysconfig.get_paths()
    return sorted({Path(paths["purelib"]), Path(paths["platlib"])})


@pytest.fixture(scope="module")
def example_plugin() -> Iterator[ModuleType]:
    """The example distribution, installed into the running interpreter's environment.

    Module-scoped rather than session-scoped so that no other test module runs while the
    plugin is installed. An installation found already in place is left as it was found.
    """
    if _installed():
        yield importlib.import_module(PACKAGE)
        return
    before = {pth for d in _site_dirs() for pth in d.glob("*.pth")}
    saved = (list(sys.path), list(sys.meta_path), list(sys.path_hooks))
    try:
        _pip("install", "--no-deps", "--no-build-isolation", "-e", str(EXAMPLE))
        # An editable install works through a .pth file, which Python only reads at start-up.
        for pth in sorted({p for d in _site_dirs() for p in d.glob("*.pth")} - before):
            site.addpackage(str(pth.parent), pth.name, None)
        importlib.invalidate_caches()
        yield importlib.import_module(PACKAGE)
    finally:
        try:
            _pip("uninstall", "--yes", DIST)
        finally:
            sys.path[:], sys.meta_path[:], sys.path_hooks[:] = saved
            finder = f"__editable___{PACKAGE}_"  # the module the editable .pth imports
            for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE or finder in m]:
                del sys.modules[name]
            importlib.invalidate_caches()


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's shell must not decide which plugins these tests see.
    monkeypatch.delenv("SELFINSTRUCT_PLUGINS_DISABLED", raising=False)
    monkeypatch.delenv("SELFINSTRUCT_CONFIG", raising=False)


def distinct(text: str) -> int:
    return len({w.casefold() for w in WORD.findall(text)})


def test_entry_point_makes_it_a_loaded_plugin(example_plugin: ModuleType) -> None:
    infos = {info.name: info for info in Plugins(make_plugin_manager()).describe()}
    info = infos["distinct_words"]
    assert info.version == f"{DIST} 0.1.0"
    assert info.hooks == (
        "candidate_rejected", "register_instance_filters", "register_instruction_filters",
        "task_accepted",
    )  # fmt: skip
    assert info.filters == ("distinct_words", "echoed_instruction")
    assert {"length", "keywords", "instances"} <= set(infos)  # the built-ins are still there

    chain = Plugins(make_plugin_manager()).build_filter_chain({})
    order = [f.name for f in chain.instruction_filters]
    assert order.index("word_count") < order.index("distinct_words") < order.index("blacklist")
    assert "echoed_instruction" in [f.name for f in chain.instance_filters]


def test_it_can_be_disabled_from_the_config_or_the_environment(
    example_plugin: ModuleType, tmp_path: Path
) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text('[plugins]\ndisabled = ["distinct_words"]\n', encoding="utf-8")
    environ = {"SELFINSTRUCT_PLUGINS_DISABLED": "keywords,distinct_words"}
    for config in (load_config(toml), load_config(environ=environ)):
        pm = make_plugin_manager(config.plugins.disabled)
        assert "distinct_words" not in {info.name for info in Plugins(pm).describe()}
        with pytest.raises(ConfigError, match=r"filters\.distinct_words: no such filter"):
            Plugins(pm).build_filter_chain({"distinct_words": {"min_distinct": 5}})


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
    example_plugin: ModuleType, table: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Plugins(make_plugin_manager()).build_filter_chain({"distinct_words": table})


def test_bad_settings_in_the_config_file_fail_the_plugins_command(
    example_plugin: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text("[filters.distinct_words]\nmin_words = 5\n", encoding="utf-8")
    assert main(["plugins", "--config", str(toml)]) == 1
    error = capsys.readouterr().err
    assert "filters.distinct_words.min_words: unknown key" in error
    assert "known keys: ignore_case, min_distinct" in error


def test_the_plugins_command_lists_it_with_its_filters_in_order(
    example_plugin: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert f"distinct_words {DIST} 0.1.0\n" in out
    assert "  filters: distinct_words, echoed_instruction\n" in out
    instruction_part, instance_part = out.split("instruction filters, in order:\n")[1].split(
        "instance filters, in order:\n"
    )
    listed = [line.split()[1] for line in instruction_part.splitlines()]
    assert listed.index("word_count") < listed.index("distinct_words") < listed.index("blacklist")
    assert "  12 distinct_words" in instruction_part
    assert "  35 echoed_instruction" in instance_part


def test_the_plugins_command_lists_it_as_json(
    example_plugin: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
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
    example_plugin: ModuleType, make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(responder=echoing_respond)
    run_dir = tmp_path / "run"
    config = load_config(
        overrides={
            "run": {"out": str(run_dir), "target": 8},
            "endpoint": {"base_url": handle.base_url, "model": "sim"},
            # The simulator's instructions have 5 to 25 distinct words: 12 rejects about a
            # third of them, where the default (4) rejects none.
            "filters": {"distinct_words": {"min_distinct": 12}},
        }
    )
    observer = example_plugin.plugin
    accepted_before, rejected_before = observer.accepted, dict(observer.rejected)

    summary = await run(config)

    assert summary.reached_target
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
    assert observer.accepted - accepted_before == len(tasks)
    for name in ("distinct_words", "echoed_instruction"):
        level = "instruction" if name == "distinct_words" else "instance"
        seen = observer.rejected[name] - rejected_before.get(name, 0)
        assert seen == rejections[f"{level}/{name}"]["count"]
