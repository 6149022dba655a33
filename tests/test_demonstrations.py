"""Instance demonstrations: the shipped set, the three sources, and what the prompts show."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async.client.protocol import Completion, CompletionRequest, LLMClient
from selfinstruct_async.config import InstancesConfig, load_config
from selfinstruct_async.demonstrations import (
    InstanceDemonstrations,
    builtin_demonstrations_path,
    load_instance_demonstrations,
)
from selfinstruct_async.errors import ConfigError, SeedFileError
from selfinstruct_async.parsing import parse_instances
from selfinstruct_async.prompts import DEFAULT_TEMPLATES, build_instance_prompt
from selfinstruct_async.records import Instance, SeedTask
from selfinstruct_async.run.backends import build_client
from selfinstruct_async.run.runner import run
from selfinstruct_async.seeds import DEFAULT_SEEDS, builtin_seed_path, load_seed_tasks
from selfinstruct_async.simulator.server import SimulatorHandle
from tests.fixtures.simulator import MakeSimulator

ZH_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "zh.toml"
SEEDS = load_seed_tasks(DEFAULT_SEEDS)
BUILTIN = load_seed_tasks(builtin_demonstrations_path())


def demonstrations(**settings: Any) -> InstanceDemonstrations:
    return load_instance_demonstrations(InstancesConfig(**settings), SEEDS, DEFAULT_SEEDS)


def prompt_for(
    demos: InstanceDemonstrations, instruction: str, is_classification: bool, task_id: str
) -> str:
    rng = random.Random(f"0:{task_id}")
    return build_instance_prompt(
        instruction, is_classification, demos.pick(is_classification, rng)
    ).text


def task_blocks(text: str) -> list[list[str]]:
    """The lines of each demonstration block of an instance prompt (the new task left out)."""
    blocks = re.split(r"^Task: ", text, flags=re.MULTILINE)[1:-1]
    return [block.strip("\n").splitlines()[1:] for block in blocks]


def seed_line(task_id: str, clf: bool, instances: list[tuple[str, str]]) -> str:
    return json.dumps(
        {
            "id": task_id,
            "instruction": f"Instruction of {task_id}.",
            "instances": [{"input": i, "output": o} for i, o in instances],
            "is_classification": clf,
        }
    )


# ------------------------------------------------------------------ the shipped set


def test_builtin_classification_demonstrations_show_several_labels_or_a_bare_answer() -> None:
    clf = [t for t in BUILTIN if t.is_classification]

    assert 6 <= len(clf) <= 8
    with_input = [t for t in clf if all(i.input for i in t.instances)]
    without_input = [t for t in clf if not any(i.input for i in t.instances)]
    assert len(with_input) + len(without_input) == len(clf)
    assert all(2 <= len({i.output for i in t.instances}) <= 4 for t in with_input)
    # A task that needs no input has one right answer: its label alone is the instance.
    assert without_input and all(len(t.instances) == 1 for t in without_input)


def test_builtin_generation_demonstrations_show_several_examples_some_without_input() -> None:
    gen = [t for t in BUILTIN if not t.is_classification]

    assert 7 <= len(gen) <= 10
    assert all(2 <= len(t.instances) <= 4 for t in gen)
    assert sum(not any(i.input for i in t.instances) for t in gen) >= 2
    assert sum(all(i.input for i in t.instances) for t in gen) >= 4


@pytest.mark.parametrize("task", BUILTIN, ids=lambda t: t.name)
def test_builtin_demonstrations_read_back_as_the_instances_they_show(task: SeedTask) -> None:
    # What a model copies from a demonstration must parse: the prompt's own blocks do.
    text = build_instance_prompt("Next.", task.is_classification, [task]).text
    block = text.split(f"Task: {task.instruction}\n", 1)[1].rsplit("\nTask: Next.", 1)[0]

    parsed = parse_instances(block, task.is_classification, "stop", max_instances=5)

    assert sorted(parsed, key=repr) == sorted(task.instances, key=repr)


def test_builtin_demonstrations_share_no_instruction_with_the_seeds() -> None:
    seeds = {t.instruction for t in SEEDS}
    assert not any(t.instruction in seeds for t in BUILTIN)


# ------------------------------------------------------------------ what prompts show


def test_output_first_prompt_shows_two_or_more_labels_per_demonstration_task() -> None:
    text = prompt_for(demonstrations(), "Is the email spam or not spam?", True, "t1")

    blocks = task_blocks(text)
    assert len(blocks) == InstancesConfig().demonstrations
    for lines in blocks:
        labels = [line for line in lines if line.startswith("Class label: ")]
        inputs = [line for line in lines if line.startswith("Input: ")]
        if inputs:
            assert len(set(labels)) >= 2
            assert len(inputs) >= len(labels)
        else:
            assert len(labels) == 1  # a task without input: the label alone
    assert any(not any(line.startswith("Input: ") for line in lines) for lines in blocks)
    assert "<none>" not in text


def test_input_first_prompt_shows_tasks_with_several_examples_and_one_without_input() -> None:
    text = prompt_for(demonstrations(), "Write a haiku about the sea.", False, "t1")

    blocks = task_blocks(text)
    assert len(blocks) == InstancesConfig().demonstrations
    examples = [sum(line.startswith("Example ") for line in lines) for lines in blocks]
    assert all(n >= 2 for n in examples)
    assert max(n for n in examples) >= 3
    without_input = [
        lines
        for lines in blocks
        if all(line == "Input: <none>" for line in lines if "Input" in line)
    ]
    assert len(without_input) >= 1
    assert len(without_input) < len(blocks)


@pytest.mark.parametrize("is_classification", [True, False])
def test_builtin_demonstrations_give_every_prompt_the_same_prefix(is_classification: bool) -> None:
    demos = demonstrations()
    prefixes = {
        prompt_for(demos, f"New task number {n}.", is_classification, f"t{n}").rsplit("Task: ", 1)[
            0
        ]
        for n in range(30)
    }

    assert len(prefixes) == 1
    first = [t.instruction for t in BUILTIN if t.is_classification == is_classification][:4]
    assert [b for b in re.findall(r"^Task: (.*)$", prefixes.pop(), re.MULTILINE)] == first


def test_seeds_source_samples_demonstrations_per_task_from_the_seeds() -> None:
    demos = demonstrations(demonstrations_from="seeds")
    seeds = {t.instruction for t in SEEDS}

    drawn = set()
    for n in range(20):
        text = prompt_for(demos, f"New task number {n}.", False, f"t{n}")
        shown = re.findall(r"^Task: (.*)$", text, re.MULTILINE)[:-1]
        assert len(shown) == 4 and all(s in seeds for s in shown)
        drawn.add(tuple(shown))

    assert not demos.fixed
    assert len(drawn) > 10


def test_a_file_source_shows_the_first_tasks_of_each_kind_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "demos.jsonl"
    lines = [
        seed_line("g1", False, [("", "a")]),
        seed_line("c1", True, [("x", "Yes"), ("y", "No")]),
        seed_line("g2", False, [("in", "b"), ("in2", "c")]),
        seed_line("c2", True, [("", "7")]),
        seed_line("g3", False, [("", "d")]),
        seed_line("c3", True, [("z", "Up"), ("w", "Down")]),
    ]
    path.write_text("\n".join(lines) + "\n")

    demos = demonstrations(demonstrations_from=str(path), demonstrations=2)

    assert demos.fixed
    assert [t.id for t in demos.pick(True, random.Random(1))] == ["c1", "c2"]
    assert [t.id for t in demos.pick(False, random.Random(2))] == ["g1", "g2"]


def test_fewer_demonstrations_than_asked_shows_all_of_them(tmp_path: Path) -> None:
    demos = demonstrations(demonstrations=50)

    assert len(demos.pick(True, random.Random(0))) == sum(t.is_classification for t in BUILTIN)
    assert len(demos.pick(False, random.Random(0))) == sum(not t.is_classification for t in BUILTIN)


# ------------------------------------------------------------------ bad sources


def test_a_bad_demonstrations_file_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "demos.jsonl"
    path.write_text(
        seed_line("c1", True, [("x", "Yes")])
        + "\n"
        + '{"id": "g1", "instruction": "Do it.", "instances": [{"input": ""}], '
        '"is_classification": false}\n'
    )

    with pytest.raises(SeedFileError, match=r"demos\.jsonl:2: field 'instances\[0\]\.output'"):
        demonstrations(demonstrations_from=str(path))


def test_a_demonstrations_path_that_is_no_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"instances\.demonstrations_from: 'bultin' is not a file"
    ):
        demonstrations(demonstrations_from="bultin")
    with pytest.raises(ConfigError, match=r"instances\.demonstrations_from: .* is not a file"):
        demonstrations(demonstrations_from=str(tmp_path))


@pytest.mark.parametrize("clf", [True, False])
def test_a_source_without_one_kind_of_task_is_a_config_error(tmp_path: Path, clf: bool) -> None:
    path = tmp_path / "demos.jsonl"
    path.write_text(seed_line("only", clf, [("x", "Yes"), ("y", "No")]) + "\n")
    missing = "non-classification" if clf else "classification"

    with pytest.raises(
        ConfigError,
        match=rf"instances\.demonstrations_from: .*demos\.jsonl holds no {missing} task",
    ):
        demonstrations(demonstrations_from=str(path))


def test_seeds_without_classification_tasks_cannot_demonstrate_them() -> None:
    seeds = [t for t in SEEDS if not t.is_classification]

    with pytest.raises(
        ConfigError, match=r"instances\.demonstrations_from: the seeds in .* no classification"
    ):
        load_instance_demonstrations(
            InstancesConfig(demonstrations_from="seeds"), seeds, DEFAULT_SEEDS
        )


def test_a_task_whose_outputs_are_all_empty_is_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "demos.jsonl"
    path.write_text(
        "\n".join(
            [
                seed_line("empty", False, [("x", " ")]),
                seed_line("g1", False, [("x", "y")]),
                seed_line("c1", True, [("x", "Yes")]),
            ]
        )
        + "\n"
    )

    demos = demonstrations(demonstrations_from=str(path))

    assert [t.id for t in demos.pick(False, random.Random(0))] == ["g1"]


def test_no_demonstrations_wanted_needs_no_task_of_either_kind(tmp_path: Path) -> None:
    path = tmp_path / "demos.jsonl"
    path.write_text(seed_line("only", True, [("x", "Yes")]) + "\n")

    demos = demonstrations(demonstrations_from=str(path), demonstrations=0)

    assert demos.pick(False, random.Random(0)) == []


def test_chinese_config_keeps_demonstrations_from_the_chinese_seeds() -> None:
    config = load_config(ZH_CONFIG)
    zh_file = builtin_seed_path("zh")
    zh = load_seed_tasks(zh_file)

    demos = load_instance_demonstrations(config.instances, zh, zh_file)

    assert config.instances.demonstrations_from == "seeds" and not demos.fixed
    assert {t.id for t in demos.pick(True, random.Random(0))} <= {t.id for t in zh}


def test_output_first_block_writes_a_label_without_input_alone() -> None:
    task = SeedTask("c", "c", "Is 7 prime?", (Instance("", "Yes"),), True)

    text = build_instance_prompt("Next?", True, [task])

    assert "Task: Is 7 prime?\nClass label: Yes\n\nTask: Next?\n" in text.text
    assert text.text.startswith(DEFAULT_TEMPLATES.instance_output_first_header)


# ------------------------------------------------------------------ through a run


class Recorder:
    """Keeps every request a run sends, then passes it on."""

    def __init__(self, inner: LLMClient) -> None:
        self.inner = inner
        self.requests: list[CompletionRequest] = []

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.anyio
async def test_a_run_sends_the_builtin_demonstrations_as_one_prefix_per_kind(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    provider: SimulatorHandle = await make_simulator(responder=None)
    config = load_config(
        overrides={
            "run": {"out": str(tmp_path / "run"), "target": 8},
            "endpoint": {"base_url": provider.base_url, "model": "sim"},
        }
    )
    client = Recorder(build_client(config))
    try:
        summary = await run(config, client=client)
    finally:
        await client.aclose()

    prompts = [r.prompt for r in client.requests if r.stage == "generate_instances"]
    prefixes = {p.rsplit("Task: ", 1)[0] for p in prompts}
    kinds = {p.startswith(DEFAULT_TEMPLATES.instance_output_first_header) for p in prompts}
    assert summary.reached_target and len(prompts) >= 8
    assert len(prefixes) == len(kinds)  # one shared prefix per kind of prompt
    seeds = {t.instruction for t in SEEDS}
    assert not any(
        line[6:] in seeds for p in prefixes for line in p.splitlines() if line[:6] == "Task: "
    )


@pytest.mark.anyio
async def test_a_bad_demonstrations_file_stops_the_run_before_any_request(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    provider: SimulatorHandle = await make_simulator(responder=None)
    bad = tmp_path / "demos.jsonl"
    bad.write_text('{"id": "x"}\n')
    config = load_config(
        overrides={
            "run": {"out": str(tmp_path / "run")},
            "endpoint": {"base_url": provider.base_url, "model": "sim"},
            "instances": {"demonstrations_from": str(bad)},
        }
    )

    with pytest.raises(SeedFileError, match=r"demos\.jsonl:1: field 'instruction'"):
        await run(config)
    assert provider.stats.requests == 0
    assert not (tmp_path / "run").exists()
