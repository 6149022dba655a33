"""The pool that ROUGE-L compares against and that prompts sample from, live and resumed.

The paper's bootstrap keeps every instruction that passed the instruction filters in its
pool, whatever later becomes of its instances; a resumed run must see that same pool.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pluggy
import pytest

from selfinstruct_async import BaseFilter, Instance, InstanceContext, Rejection, hookimpl
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.config import load_config
from selfinstruct_async.records import PendingTask, Task
from selfinstruct_async.run.pool import Pool
from selfinstruct_async.run.runner import run
from selfinstruct_async.seeds import DEFAULT_SEEDS, load_seed_tasks
from selfinstruct_async.simulator.server import SimulatorHandle
from tests.fixtures.simulator import MakeSimulator

pytestmark = pytest.mark.anyio


def _doomed(instruction: str) -> bool:
    """About a third of the tasks lose all their instances, decided by the text alone."""
    return hashlib.sha256(instruction.encode()).digest()[0] % 3 == 0


class RememberRecorder(BaseFilter):
    """Lets everything through and writes down what the chain tells it is in the pool."""

    name = "remember_recorder"
    order = 1
    remembered: ClassVar[list[str]] = []

    def check(self, instruction: str) -> Rejection | None:
        return None

    def remember(self, instruction: str) -> None:
        RememberRecorder.remembered.append(instruction)


class RejectSomeTasks(BaseFilter):
    """Rejects every instance of a doomed task, so the task ends rejected after joining the pool."""

    name = "reject_some_tasks"
    order = 1

    def check(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        return Rejection("doomed task") if _doomed(task.instruction) else None


class PoolProbe:
    @hookimpl
    def register_instruction_filters(self, register: Callable[[type[BaseFilter]], None]) -> None:
        register(RememberRecorder)

    @hookimpl
    def register_instance_filters(self, register: Callable[[type[BaseFilter]], None]) -> None:
        register(RejectSomeTasks)


@pytest.fixture
async def provider(make_simulator: MakeSimulator) -> SimulatorHandle:
    return await make_simulator(responder=None)


async def test_similarity_pool_is_the_same_live_and_after_a_resume(
    provider: SimulatorHandle, tmp_path: Path, pm: pluggy.PluginManager
) -> None:
    out = tmp_path / "run"
    config = load_config(
        overrides={
            "run": {"out": str(out), "target": 8},
            "endpoint": {"base_url": provider.base_url, "model": "sim"},
        }
    )
    probe = PoolProbe()
    pm.register(probe)
    try:
        RememberRecorder.remembered.clear()
        await run(config, pm=pm)
        live = list(RememberRecorder.remembered)
        RememberRecorder.remembered.clear()
        await run(config, pm=pm)  # the target is met: the resume only reads the pool back
        resumed = list(RememberRecorder.remembered)
    finally:
        pm.unregister(probe)
    with Store(out, read_only=True) as store:
        statuses = store.count_by_status()
        lost = {t.instruction for t in store.pending_tasks()}
        rejected = (
            set(store.pooled_instructions())
            - lost
            - {t.instruction for t in store.accepted_tasks()}
        )
    assert statuses["rejected"] >= 1, "no task lost its instances; the case is not exercised"
    assert rejected and rejected <= set(live) and rejected <= set(resumed)
    # A run stopped at its target may commit a last candidate while being cancelled: the
    # resume reads it back (it is pending); nothing else may differ.
    assert set(live) <= set(resumed)
    assert set(resumed) - set(live) <= lost
    assert len(resumed) == len(set(resumed))


def test_a_task_that_lost_its_instances_stays_in_the_stored_pool(tmp_path: Path) -> None:
    with Store(tmp_path / "run") as store:
        for number, text in enumerate(["Name a river.", "Name a mountain."]):
            store.add_pending(PendingTask(id=f"t{number}", instruction=text), request_no=1)
        store.finish_task("t0", None)
        kept = Task("t1", "Name a mountain.", False, (Instance("", "Everest"),))
        store.finish_task("t1", kept)
        assert store.pooled_instructions() == ["Name a river.", "Name a mountain."]


@pytest.mark.parametrize("machine_pool", ["filtered", "accepted"])
def test_machine_demonstrations_come_from_the_configured_pool(machine_pool: str) -> None:
    pool = Pool([], [], target=0, machine_pool=machine_pool)  # type: ignore[arg-type]
    pool.undecided = 2
    pool.decided(True, "Name a river.")
    pool.decided(True, "Name a mountain.")
    pool.finish(None)  # the river task lost its instances
    pool.finish("Name a mountain.")
    drawn = pool.sample_demonstrations(random.Random(0), total=2, machine=2)
    expected = {
        "filtered": {"Name a river.", "Name a mountain."},
        "accepted": {"Name a mountain."},
    }[machine_pool]
    assert set(drawn) == expected
    assert pool.accepted == 1


async def test_classification_only_runs_compare_with_classification_seeds_only(
    provider: SimulatorHandle, tmp_path: Path, pm: pluggy.PluginManager
) -> None:
    seeds = load_seed_tasks(DEFAULT_SEEDS)
    config = load_config(
        overrides={
            "run": {"out": str(tmp_path / "run"), "target": 2},
            "endpoint": {"base_url": provider.base_url, "model": "sim"},
            "generation": {"classification_only": True},
        }
    )
    probe = PoolProbe()
    pm.register(probe)
    try:
        RememberRecorder.remembered.clear()
        await run(config, pm=pm)
        remembered = set(RememberRecorder.remembered)
    finally:
        pm.unregister(probe)
    seeds_seen = {s.instruction for s in seeds} & remembered
    assert seeds_seen == {s.instruction for s in seeds if s.is_classification}
