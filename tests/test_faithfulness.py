"""Rows of docs/faithfulness.md not covered by a stage's own tests: each feeds the case.

The paper's behaviour is the default; where the project deliberately differs, the
setting that restores the original is tested here next to the default.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from selfinstruct_async.config import load_config
from selfinstruct_async.prompts import build_instance_prompt, build_instruction_prompt
from selfinstruct_async.records import Instance, SeedTask
from selfinstruct_async.run.pool import Pool
from selfinstruct_async.run.runner import run
from selfinstruct_async.seeds import DEFAULT_SEEDS, load_seed_tasks
from selfinstruct_async.simulator.server import SimulatorHandle
from selfinstruct_async.stages.generate_instances import STAGE as INSTANCES
from selfinstruct_async.stages.generate_instructions import STAGE as GENERATION
from selfinstruct_async.stages.identify_classification import STAGE as CLASSIFICATION
from tests.fixtures.simulator import MakeSimulator


def first_stop(text: str, stops: tuple[str, ...]) -> str:
    """What a server returns for ``text`` under ``stops``: the text up to the first one."""
    cut = min((text.find(s) for s in stops if s in text), default=len(text))
    return text[:cut]


def test_sampling_parameters_default_to_the_papers() -> None:
    config = load_config()
    generation = build_instruction_prompt(["a b c d"] * 8).request(GENERATION, config.generation)
    assert (generation.temperature, generation.top_p) == (0.7, 0.5)
    assert (generation.presence_penalty, generation.frequency_penalty) == (2.0, 0.0)
    assert generation.max_tokens == 1024
    assert (config.classification.temperature, config.classification.max_tokens) == (0.0, 3)
    seed = SeedTask("s", "fruit", "Name a fruit.", (Instance("", "Apple"),), False)
    instances = build_instance_prompt("Name a tree.", False, [seed]).request(
        INSTANCES, config.instances
    )
    assert (instances.temperature, instances.top_p, instances.presence_penalty) == (0.0, 0.0, 1.5)
    assert instances.max_tokens == 350
    assert CLASSIFICATION == "identify_classification"


def test_prompts_mix_six_human_and_two_machine_demonstrations_in_random_order() -> None:
    seeds = load_seed_tasks(DEFAULT_SEEDS)
    machine = [f"Machine task number {n} for the pool." for n in range(20)]
    pool = Pool(seeds, machine, target=0, machine_pool="accepted")
    config = load_config().generation
    drawn = pool.sample_demonstrations(
        random.Random(3), config.demonstrations, config.machine_demonstrations
    )
    assert len(drawn) == 8
    assert sum(d in machine for d in drawn) == 2
    positions = {
        tuple(d in machine for d in pool.sample_demonstrations(random.Random(n), 8, 2))
        for n in range(30)
    }
    assert len(positions) > 5, "machine demonstrations always sit in the same places"


def test_instruction_stops_are_anchored_by_default_and_unanchored_in_paper_mode() -> None:
    answer = " Run 16.5 km and log your pace.\n10. Name three rivers.\n16. cut here"
    anchored = build_instruction_prompt(["x y z w"] * 8).stop
    paper = build_instruction_prompt(["x y z w"] * 8, stops="paper").stop
    assert first_stop(answer, anchored) == " Run 16.5 km and log your pace.\n10. Name three rivers."
    # The original's "16." stop cuts the first item in the middle of a number.
    assert first_stop(answer, paper) == " Run "
    assert load_config(preset="paper").generation.stops == "paper"


def test_instance_stops_are_anchored_by_default_and_unanchored_in_paper_mode() -> None:
    answer = "Example 1\nInput: Task: sort the list 3 1 2\nOutput: 1 2 3\nExample 6\nInput: x"
    demo = SeedTask("s", "sort", "Sort numbers.", (Instance("2 1", "1 2"),), False)
    anchored = build_instance_prompt("Sort a list.", False, [demo]).stop
    paper = build_instance_prompt("Sort a list.", False, [demo], stops="paper").stop
    assert (
        first_stop(answer, anchored)
        == "Example 1\nInput: Task: sort the list 3 1 2\nOutput: 1 2 3\n"
    )
    assert first_stop(answer, paper) == "Example 1\nInput: "
    assert load_config(preset="paper").instances.stops == "paper"


@pytest.fixture
async def provider(make_simulator: MakeSimulator) -> SimulatorHandle:
    return await make_simulator(responder=None)


@pytest.mark.anyio
async def test_the_paper_preset_runs_the_whole_pipeline_to_its_target(
    provider: SimulatorHandle, tmp_path: Path
) -> None:
    config = load_config(
        overrides={
            "run": {"out": str(tmp_path / "run"), "target": 6},
            "endpoint": {"base_url": provider.base_url, "model": "sim"},
        },
        preset="paper",
    )
    summary = await run(config)
    assert summary.accepted == 6
    assert config.preset == "paper"
    lines = (tmp_path / "run" / "tasks.jsonl").read_text().splitlines()
    assert len(lines) == 6


def test_every_row_of_the_faithfulness_table_names_tests_that_exist() -> None:
    """docs/faithfulness.md cites tests as `file.py::name` (or `::name` for the file before)."""
    import re

    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "faithfulness.md").read_text(encoding="utf-8")
    rows = [line for line in doc.splitlines() if re.match(r"^\| \d+b? \|", line)]
    assert len(rows) >= 32
    for row in rows:
        test_cell = row.rstrip(" |").rsplit("|", 1)[-1]
        cited = re.findall(r"`(?:(test_\w+\.py))?::(test_\w+)`", test_cell)
        assert cited, f"row without a test: {row[:60]}"
        current = None
        for file_name, test_name in cited:
            current = file_name or current
            assert current is not None
            source = (root / "tests" / current).read_text(encoding="utf-8")
            assert re.search(rf"def {test_name}\(", source), f"{current}::{test_name} not found"
