"""Instance filters in the original's order, and the cap on instances per task after them.

The original judges a task's instances in phases (invalid ones out, then "same input,
different outputs" over the survivors, then exact duplicates), then keeps a random sample
of at most 5. The chain runs each filter over what the filters before it kept; the stage
caps what is left.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import anyio
import pluggy
import pytest

from selfinstruct_async import BaseFilter, Instance, InstanceContext, Rejection, hookimpl
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.client.protocol import Completion, CompletionRequest
from selfinstruct_async.client.usage import UsageMeter
from selfinstruct_async.config import Config, load_config
from selfinstruct_async.filters import FilterChain, InstanceFilter
from selfinstruct_async.plugins import Plugins
from selfinstruct_async.records import PendingTask
from selfinstruct_async.run.runner import check_inputs, open_context
from selfinstruct_async.stages.filter_instances import (
    INSTANCES_OVER_CAP,
    cap_instances,
    filter_instances,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def chain(pm: pluggy.PluginManager) -> FilterChain:
    return Plugins(pm).build_filter_chain({})


def pairs(instances: tuple[Instance, ...]) -> list[tuple[str, str]]:
    return [(i.input, i.output) for i in instances]


async def test_an_instance_rejected_as_invalid_does_not_make_its_siblings_conflict(
    chain: FilterChain,
) -> None:
    # Judged over all parsed instances, "x" would have two outputs and both would go.
    verdicts = await chain.check_instances(
        "Answer the question.",
        False,
        [Instance("x", "A"), Instance("x", ""), Instance("x", "Here are the steps:")],
    )
    assert pairs(verdicts.kept) == [("x", "A")]
    assert [(i.output, r.filter) for i, r in verdicts.rejected] == [
        ("", "empty_output"),
        ("Here are the steps:", "colon_ending"),
    ]


async def test_conflicting_survivors_drop_every_instance_of_the_task(chain: FilterChain) -> None:
    verdicts = await chain.check_instances(
        "Answer the question.",
        False,
        [Instance("x", "A"), Instance("y", "C"), Instance("x", "B"), Instance("", "D")],
    )
    assert verdicts.kept == ()
    assert [r.filter for _, r in verdicts.rejected] == ["conflicting_outputs"] * 4


async def test_exact_duplicates_go_after_the_conflict_rule_and_one_copy_stays(
    chain: FilterChain,
) -> None:
    verdicts = await chain.check_instances(
        "Answer the question.",
        False,
        [Instance("x", "A"), Instance("x", "A"), Instance("", "B"), Instance("", "B")],
    )
    assert pairs(verdicts.kept) == [("x", "A"), ("", "B")]
    assert [(i.output, r.filter) for i, r in verdicts.rejected] == [
        ("A", "duplicate_instance"),
        ("B", "duplicate_instance"),
    ]


async def test_rejections_come_back_in_generated_order_with_their_filter(
    chain: FilterChain,
) -> None:
    verdicts = await chain.check_instances(
        "Answer the question.",
        False,
        [
            Instance("a", "ok"),
            Instance("a", "ok"),  # duplicate: the last phase
            Instance("same", "same"),  # input_equals_output: an early phase
            Instance("b", ""),  # empty_output: the first phase
        ],
    )
    assert [(i.input, r.filter) for i, r in verdicts.rejected] == [
        ("a", "duplicate_instance"),
        ("same", "input_equals_output"),
        ("b", "empty_output"),
    ]


class _DropFirst(BaseFilter):
    name = "drop_first"
    order = 1

    def check(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        return Rejection("first") if task.index == 0 else None


class _Recorder(BaseFilter):
    name = "recorder"
    order = 200
    seen: ClassVar[list[tuple[tuple[str, ...], int, tuple[str, ...]]]] = []

    def check(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        outputs = tuple(i.output for i in task.instances)
        self.seen.append((outputs, task.index, tuple(i.output for i in task.earlier)))
        return None


class _Plugin:
    @hookimpl
    def register_instance_filters(self, register: Callable[[type[InstanceFilter]], None]) -> None:
        register(_DropFirst)
        register(_Recorder)


@pytest.fixture
def extra_filters(pm: pluggy.PluginManager) -> Iterator[FilterChain]:
    plugin = _Plugin()
    pm.register(plugin)
    _Recorder.seen.clear()
    try:
        yield Plugins(pm).build_filter_chain({})
    finally:
        pm.unregister(plugin)


async def test_a_third_party_filter_sees_only_survivors_with_index_among_them(
    extra_filters: FilterChain,
) -> None:
    verdicts = await extra_filters.check_instances(
        "Answer the question.",
        False,
        [Instance("a", "1"), Instance("b", "2"), Instance("c", ""), Instance("d", "4")],
    )
    assert [i.output for i in verdicts.kept] == ["2", "4"]
    assert [r.filter for _, r in verdicts.rejected] == ["drop_first", "empty_output"]
    # "1" (dropped by the first filter) and "" (by empty_output) never reach the recorder.
    assert _Recorder.seen == [(("2", "4"), 0, ()), (("2", "4"), 1, ("2",))]


def eight() -> list[Instance]:
    return [Instance(f"input {n}", f"output {n}") for n in range(8)]


def test_first_cap_keeps_the_first_survivors() -> None:
    kept = cap_instances(eight(), 5, "first", seed=0, task_id="si-1-0")
    assert [i.input for i in kept] == [f"input {n}" for n in range(5)]


def test_sample_cap_is_a_seeded_sample_kept_in_generated_order() -> None:
    picks = {
        tuple(i.input for i in cap_instances(eight(), 5, "sample", seed, "si-1-0"))
        for seed in range(20)
    }
    assert len(picks) > 1  # the seed decides which 5
    for pick in picks:
        assert len(pick) == 5 and list(pick) == sorted(pick)
    again = cap_instances(eight(), 5, "sample", seed=3, task_id="si-1-0")
    assert again == cap_instances(eight(), 5, "sample", seed=3, task_id="si-1-0")
    other_tasks = {
        cap_instances(eight(), 5, "sample", seed=3, task_id=f"si-{n}-0") for n in range(20)
    }
    assert len(other_tasks) > 1  # ...and so does the task


def test_a_task_within_the_cap_keeps_everything() -> None:
    assert cap_instances(eight()[:3], 5, "sample", 0, "t") == tuple(eight()[:3])


# ---------------------------------------------------------------- through the stage


class _NoModel:
    """The stage under test sends no request."""

    async def complete(self, request: CompletionRequest) -> Completion:
        raise AssertionError("filter_instances must not send requests")

    async def aclose(self) -> None:
        return None


# Eight parsed instances: one with an empty output, one ending in ':', six valid ones; the
# valid "x" and the rejected "x" would conflict if the rejected one were still looked at.
PARSED = (
    Instance("x", "first"),
    Instance("x", ""),
    Instance("b", "second"),
    Instance("c", "Steps:"),
    Instance("d", "third"),
    Instance("e", "fourth"),
    Instance("f", "fifth"),
    Instance("g", "sixth"),
)
VALID_OUTPUTS = ["first", "second", "third", "fourth", "fifth", "sixth"]


def stage_config(out: Path, seed: int, cap: str) -> Config:
    return load_config(
        overrides={
            "run": {"out": str(out), "target": 0, "seed": seed},
            "instances": {"cap": cap, "max_instances": 5},
        }
    )


async def run_stage(config: Config, pm: pluggy.PluginManager) -> tuple[list[str], dict[str, float]]:
    """One task through filter_instances on a real checkpoint: kept outputs, counters."""
    out = Path(config.run.out)
    inputs = check_inputs(config, pm, None)
    task = PendingTask("si-1-0", "Write a short sentence for each letter.", False)
    with Store(out) as store:
        store.add_pending(task, 1)
        ctx, _ = await open_context(config, inputs, store, _NoModel(), UsageMeter())
        send, receive = anyio.create_memory_object_stream[tuple[PendingTask, tuple[Instance, ...]]](
            1
        )
        async with send:
            await send.send((task, PARSED))
        await filter_instances(ctx, receive)
        counters = store.counters()
    [line] = (out / "tasks.jsonl").read_text(encoding="utf-8").splitlines()
    return [i["output"] for i in json.loads(line)["instances"]], counters


async def test_the_stage_caps_after_filtering_with_a_sample_the_seed_decides(
    tmp_path: Path, pm: pluggy.PluginManager
) -> None:
    outputs: dict[int, list[str]] = {}
    for seed in range(6):
        kept, counters = await run_stage(stage_config(tmp_path / f"s{seed}", seed, "sample"), pm)
        assert len(kept) == 5 and set(kept) <= set(VALID_OUTPUTS)
        assert kept == [o for o in VALID_OUTPUTS if o in kept]  # generated order
        assert counters["rejected.instance.empty_output"] == 1
        assert counters["rejected.instance.colon_ending"] == 1
        assert "rejected.instance.conflicting_outputs" not in counters
        assert counters[INSTANCES_OVER_CAP] == 1  # not a filter's rejection
        assert counters["instances.accepted"] == 5 and counters["tasks.accepted"] == 1
        outputs[seed] = kept
    assert len({tuple(kept) for kept in outputs.values()}) > 1
    again, _ = await run_stage(stage_config(tmp_path / "again", 2, "sample"), pm)
    assert again == outputs[2]


async def test_the_first_cap_keeps_the_first_five_survivors(
    tmp_path: Path, pm: pluggy.PluginManager
) -> None:
    kept, counters = await run_stage(stage_config(tmp_path / "run", 7, "first"), pm)
    assert kept == VALID_OUTPUTS[:5]
    assert counters[INSTANCES_OVER_CAP] == 1


async def test_no_over_cap_counter_when_the_survivors_fit(
    tmp_path: Path, pm: pluggy.PluginManager
) -> None:
    config = stage_config(tmp_path / "run", 0, "sample")
    config = replace(config, instances=replace(config.instances, max_instances=6))
    kept, counters = await run_stage(config, pm)
    assert kept == VALID_OUTPUTS
    assert INSTANCES_OVER_CAP not in counters
