"""The paper's filters, loaded through the entry points exactly like a third-party plugin."""

from __future__ import annotations

import pluggy
import pytest

from selfinstruct_async.errors import ConfigError
from selfinstruct_async.filters import FilterChain, InstanceContext
from selfinstruct_async.plugins import Plugins
from selfinstruct_async.records import Instance


@pytest.fixture
def chain(pm: pluggy.PluginManager) -> FilterChain:
    return Plugins(pm).build_filter_chain({})


@pytest.mark.parametrize(
    ("instruction", "rejected_by"),
    [
        ("Summarize the following paragraph in two sentences.", None),
        ("Say hi.", "word_count"),
        ("Reply now please", "word_count"),
        (" ".join(["word"] * 151), "word_count"),
        ("Describe the image below in detail for the reader.", "blacklist"),
        ("Create a flowchart for making a cup of tea at home.", "blacklist"),
        ("Explain how to GO TO the nearest station from downtown.", "blacklist"),
        ("Give a caption for this photo of a sunset at the beach.", "non_text_modality"),
        ("Write a program that sorts a list of numbers in Python.", "write_a_program"),
        ("- Explain the causes of inflation in simple terms.", "leading_character"),
        ("¿Cuál es la capital de Francia y por qué es famosa?", "leading_character"),
        ("Explain the mapping between keys and values in a dictionary.", None),
        ("Update the profile description of a software engineer.", None),
    ],
)
@pytest.mark.anyio
async def test_instruction_filters(
    chain: FilterChain, instruction: str, rejected_by: str | None
) -> None:
    rejection = await chain.check_instruction(instruction)
    assert (rejection.filter if rejection else None) == rejected_by
    if rejection:
        assert rejection.reason


@pytest.mark.anyio
async def test_similar_instruction_is_rejected_once_the_first_is_remembered(
    chain: FilterChain,
) -> None:
    first = "Suggest three names for a new coffee shop in a small town."
    assert await chain.check_instruction(first) is None
    chain.remember(first)
    rejection = await chain.check_instruction(
        "Suggest three names for a new coffee shop in a big town."
    )
    assert rejection is not None and rejection.filter == "rouge_similarity"


async def instance_verdicts(chain: FilterChain, instances: list[Instance]) -> list[str | None]:
    verdicts = []
    for index, instance in enumerate(instances):
        context = InstanceContext("Do the task.", False, tuple(instances), index)
        rejection = await chain.check_instance(instance, context)
        verdicts.append(rejection.filter if rejection else None)
    return verdicts


@pytest.mark.anyio
async def test_instance_filters_drop_empty_colon_copied_and_duplicate(chain: FilterChain) -> None:
    verdicts = await instance_verdicts(
        chain,
        [
            Instance("a", "fine answer"),
            Instance("b", "  "),
            Instance("c", "Here is the list:"),
            Instance("Steps:", "one two"),
            Instance("same", "same"),
            Instance("a", "fine answer"),
        ],
    )
    assert verdicts == [
        None, "empty_output", "colon_ending", "colon_ending", "input_equals_output",
        "duplicate_instance",
    ]  # fmt: skip


@pytest.mark.anyio
async def test_same_input_with_different_outputs_drops_every_instance(chain: FilterChain) -> None:
    verdicts = await instance_verdicts(
        chain, [Instance("x", "one"), Instance("y", "two"), Instance("x", "three")]
    )
    assert verdicts == ["conflicting_outputs"] * 3


@pytest.mark.anyio
async def test_empty_inputs_with_different_outputs_are_not_a_conflict(chain: FilterChain) -> None:
    verdicts = await instance_verdicts(chain, [Instance("", "one"), Instance("", "two")])
    assert verdicts == [None, None]


@pytest.mark.anyio
async def test_filter_settings_come_from_the_config_tables(pm: pluggy.PluginManager) -> None:
    chain = Plugins(pm).build_filter_chain(
        {"word_count": {"min_words": 1}, "blacklist": {"words": ["tea"]}}
    )
    assert await chain.check_instruction("Say hi.") is None
    assert await chain.check_instruction("Describe the image below in detail, please.") is not None
    rejection = await chain.check_instruction("Recommend a tea for a cold evening.")
    assert rejection is not None and rejection.filter == "blacklist"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"word_count": {"min": 1}}, "filters.word_count.min: unknown key"),
        ({"word_count": {"min_words": "one"}}, "filters.word_count.min_words: expected int"),
        ({"no_such_filter": {}}, "filters.no_such_filter: no such filter is loaded"),
        ({"write_a_program": {"x": 1}}, "filters.write_a_program: this filter takes no settings"),
    ],
)
def test_bad_filter_settings_name_the_key(
    pm: pluggy.PluginManager, settings: dict, message: str
) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        Plugins(pm).build_filter_chain(settings)
