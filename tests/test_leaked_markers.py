"""The leaked_markers instance filter: the prompt's own labels must not reach the dataset."""

from __future__ import annotations

import pluggy
import pytest

from selfinstruct_async.filters import FilterChain
from selfinstruct_async.plugins import Plugins
from selfinstruct_async.records import Instance

pytestmark = pytest.mark.anyio


@pytest.fixture
def chain(pm: pluggy.PluginManager) -> FilterChain:
    return Plugins(pm).build_filter_chain({})


@pytest.mark.parametrize(
    ("instance", "field"),
    [
        (Instance("10, 20, 30, ... 100\nOutput: 10", "Ten"), "input"),
        (Instance("The item is a car.", "Vehicle\nInput: The item is a bus."), "output"),
        (Instance("", "Positive\nClass label: Negative"), "output"),
        (Instance("A sentence.", "Fine.\n\nTask: Write a poem."), "output"),
        (Instance("A sentence.", "Fine.\nExample 2\nMore."), "output"),
        (Instance("**Input:** x\nmore", "y"), "input"),
    ],
)
async def test_fields_holding_a_prompt_label_at_a_line_start_are_rejected(
    chain: FilterChain, instance: Instance, field: str
) -> None:
    verdicts = await chain.check_instances("Classify the item.", False, [instance])
    assert not verdicts.kept
    ((_instance, rejection),) = verdicts.rejected
    assert rejection.filter == "leaked_markers"
    assert rejection.reason.startswith(field)


@pytest.mark.parametrize(
    "instance",
    [
        Instance("What does the input field of a form do?", "It takes what the user types."),
        Instance("", "The output: a list of three rivers."),
        Instance("Give an example.", "For example 2 + 2 = 4."),
        Instance("Rewrite: the task is done.", "The task has been completed."),
    ],
)
async def test_labels_mentioned_inside_a_line_pass(chain: FilterChain, instance: Instance) -> None:
    verdicts = await chain.check_instances("Answer the question.", False, [instance])
    assert verdicts.kept == (instance,)


def test_the_paper_preset_turns_it_off() -> None:
    from selfinstruct_async.config import load_config

    assert "leaked_markers" in load_config(preset="paper").plugins.disabled
