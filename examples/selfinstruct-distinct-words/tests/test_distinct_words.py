"""The plugin registered in-process, next to the built-in filters, the way a run loads it."""

from __future__ import annotations

from collections.abc import Iterator

import pluggy
import pytest
from selfinstruct_async import Instance, InstanceContext, Rejection, Task
from selfinstruct_async.errors import ConfigError
from selfinstruct_async.plugins import Plugins, make_plugin_manager
from selfinstruct_async.records import RejectionRecord

from selfinstruct_distinct_words import DistinctWordsPlugin


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def plugin() -> DistinctWordsPlugin:
    return DistinctWordsPlugin()


@pytest.fixture
def pm(plugin: DistinctWordsPlugin) -> Iterator[pluggy.PluginManager]:
    # Leave out the installed copy (if any) so only the fresh object below is registered.
    pm = make_plugin_manager(disabled=["distinct_words"])
    pm.register(plugin)
    try:
        yield pm
    finally:
        pm.unregister(plugin)


@pytest.mark.anyio
async def test_repetitive_instructions_are_rejected_after_the_length_filter(
    pm: pluggy.PluginManager,
) -> None:
    chain = Plugins(pm).build_filter_chain({"distinct_words": {"min_distinct": 5}})
    names = [f.name for f in chain.instruction_filters]
    assert names.index("word_count") < names.index("distinct_words") < names.index("blacklist")

    assert await chain.check_instruction("Write write write a short poem poem.") == Rejection(
        "4 distinct words, needs at least 5", "distinct_words"
    )
    # Case is ignored by default: "Tea" and "tea" are one word.
    rejection = await chain.check_instruction("Tea tea TEA, describe tea tea tea.")
    assert rejection is not None and rejection.filter == "distinct_words"
    assert await chain.check_instruction("Write a short poem about winter mornings.") is None


@pytest.mark.anyio
async def test_case_can_count(pm: pluggy.PluginManager) -> None:
    settings = {"distinct_words": {"min_distinct": 4, "ignore_case": False}}
    chain = Plugins(pm).build_filter_chain(settings)
    assert await chain.check_instruction("Say Hello hello HELLO now.") is None
    strict = Plugins(pm).build_filter_chain({"distinct_words": {"min_distinct": 4}})
    assert await strict.check_instruction("Say Hello hello HELLO now.") is not None


@pytest.mark.anyio
async def test_an_output_repeating_the_instruction_is_rejected(pm: pluggy.PluginManager) -> None:
    chain = Plugins(pm).build_filter_chain({})
    instruction = "Name a fruit that is   yellow."
    echoing = Instance("", "Name a fruit that is yellow: a banana.")
    fine = Instance("", "A banana.")
    context = InstanceContext(instruction, False, (echoing, fine), 0)
    assert await chain.check_instance(echoing, context) == Rejection(
        "output repeats the instruction", "echoed_instruction"
    )
    assert await chain.check_instance(fine, InstanceContext(instruction, False, (fine,))) is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"min_words": 3}, r"filters\.distinct_words\.min_words: unknown key"),
        ({"min_distinct": "four"}, r"filters\.distinct_words\.min_distinct: expected int"),
        ({"min_distinct": 0}, r"filters\.distinct_words\.min_distinct: must be >= 1"),
    ],
)
def test_settings_are_validated(
    pm: pluggy.PluginManager, table: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Plugins(pm).build_filter_chain({"distinct_words": table})


def test_observers_count_accepted_tasks_and_own_rejections(
    pm: pluggy.PluginManager, plugin: DistinctWordsPlugin
) -> None:
    plugins = Plugins(pm)
    plugins.task_accepted(Task("si-1-0", "Explain tides simply.", False, (Instance("", "x"),)))
    plugins.candidate_rejected(RejectionRecord("instruction", "distinct_words", "3", "a a a b"))
    plugins.candidate_rejected(RejectionRecord("instruction", "word_count", "2 words", "Do it"))
    assert plugin.accepted == 1
    assert plugin.rejected == {"distinct_words": 1}
