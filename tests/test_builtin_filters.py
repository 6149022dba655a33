"""The paper's filters, loaded through the entry points exactly like a third-party plugin."""

from __future__ import annotations

import re
from pathlib import Path

import pluggy
import pytest
from selfinstruct_plugins.keywords import (
    ALPACA_EXTRA,
    PAPER_BLACKLIST,
    Blacklist,
    BlacklistSettings,
)

from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.config import load_config
from selfinstruct_async.errors import ConfigError
from selfinstruct_async.filters import FilterChain, InstanceContext
from selfinstruct_async.plugins import Plugins
from selfinstruct_async.prompts import DEFAULT_TEMPLATES
from selfinstruct_async.records import Instance
from selfinstruct_async.run.runner import run
from selfinstruct_async.simulator.responder import respond
from tests.fixtures.simulator import MakeSimulator


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
        # "flowchart" is on Alpaca's list, not the paper's: the project's own filter takes it.
        ("Create a flowchart for making a cup of tea at home.", "non_text_modality"),
        ("Summarize the video in three bullet points for me.", "non_text_modality"),
        ("Explain how pie charts can mislead readers.", None),
        ("Describe the steps to take a screenshot on a laptop.", None),
        ("Explain how to GO TO the nearest station from downtown.", "blacklist"),
        ("Give a caption for this photo of a sunset at the beach.", "non_text_modality"),
        ("Write a program that sorts a list of numbers in Python.", "write_a_program"),
        ("- Explain the causes of inflation in simple terms.", "leading_character"),
        ("¿Cuál es la capital de Francia y por qué es famosa?", "leading_character"),
        ("Explain the mapping between keys and values in a dictionary.", None),
        ("Update the profile description of a software engineer.", None),
        ("Explain the \x1b[31mcauses\x1b[0m of inflation in simple terms.", "control_characters"),
        ("\x1b[2JExplain the causes of inflation in simple terms.", "control_characters"),
        ("Summarize the following\x00 paragraph in two sentences.", "control_characters"),
        ("Summarize the following paragraph\x7f in two sentences.", "control_characters"),
        ("Summarize the following paragraph\x85 in two sentences.", "control_characters"),
        ("Summarize the following paragraph.\r Use two sentences.", "control_characters"),
        ("Summarize the following\tparagraph in two sentences.\nKeep it short.", None),
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


@pytest.mark.anyio
async def test_non_text_modality_judges_only_what_the_papers_filters_keep(
    chain: FilterChain,
) -> None:
    names = [f.name for f in chain.instruction_filters]
    assert names.index("non_text_modality") > names.index("rouge_similarity")
    pool = "Give a caption for this photo of a sunset at the beach."
    chain.remember(pool)
    # Too similar to the pool and a picture task: the paper's ROUGE-L filter names it, as
    # the paper's code would have.
    repeat = await chain.check_instruction(
        "Give a caption for this photo of a sunrise at the beach."
    )
    assert repeat is not None and repeat.filter == "rouge_similarity"
    fresh = await chain.check_instruction("Describe what is happening in this photo of a crowd.")
    assert fresh is not None and fresh.filter == "non_text_modality"


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
async def test_instances_holding_control_characters_are_dropped(chain: FilterChain) -> None:
    verdicts = await instance_verdicts(
        chain,
        [
            Instance("a", "fine \x1b[2J answer"),
            Instance("\x07ring", "a bell"),
            Instance("b", "null\x00 byte"),
            Instance("line one\r\nline two", "tab\tand\nnewline are text"),
        ],
    )
    assert verdicts == ["instance_control_characters"] * 3 + [None]


@pytest.mark.anyio
async def test_a_control_character_rejection_names_it_without_carrying_it(
    chain: FilterChain,
) -> None:
    rejection = await chain.check_instruction("Explain the \x1b[31mcauses of inflation today.")
    assert rejection is not None
    assert rejection.reason == "control character '\\x1b' at position 12"
    assert "\x1b" not in rejection.reason  # what `selfinstruct status` prints is inert text
    context = InstanceContext("Do the task.", False, (Instance("in", "out\x9b2J"),), 0)
    rejection = await chain.check_instance(Instance("in", "out\x9b2J"), context)
    assert rejection is not None
    assert rejection.reason == "output holds control character '\\x9b' at position 3"


def escape_coding_respond(
    prompt: str, system: str, *, chat: bool, max_tokens: int, seed: int = 0
) -> tuple[str, str]:
    """The simulator's model, with terminal escape codes in its instructions and outputs."""
    text, finish = respond(prompt, system, chat=chat, max_tokens=max_tokens, seed=seed)
    if DEFAULT_TEMPLATES.instruction_header in prompt:
        return text.replace(" the ", " \x1b[31mthe\x1b[0m ", 1), finish
    for label in (f"{DEFAULT_TEMPLATES.output_label}: ", f"{DEFAULT_TEMPLATES.class_label}: "):
        text = text.replace(label, f"{label}\x1b[2J", 1)
    return text, finish


@pytest.mark.anyio
async def test_a_run_keeps_escape_codes_out_of_the_dataset_and_counts_them(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(responder=escape_coding_respond)
    out = tmp_path / "run"
    config = load_config(
        overrides={
            "run": {"out": str(out), "target": 6},
            "endpoint": {"base_url": handle.base_url, "model": "sim"},
        }
    )
    assert (await run(config)).reached_target
    text = (out / "tasks.jsonl").read_text(encoding="utf-8")
    assert len(text.splitlines()) >= 6
    assert "\x1b" not in text and "\\u001b" not in text
    with Store(out, read_only=True) as store:
        rejections = store.rejection_summary()
        counters = store.counters()
    instruction = rejections["instruction/control_characters"]
    instance = rejections["instance/instance_control_characters"]
    assert instruction["count"] == counters["rejected.instruction.control_characters"] > 0
    assert instance["count"] == counters["rejected.instance.instance_control_characters"] > 0
    assert all("\x1b[31m" in e["text"] for e in instruction["examples"])
    assert all("\\u001b[2J" in e["text"] for e in instance["examples"])  # stored as JSON


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


def test_the_default_blacklist_is_the_papers_and_alpacas_words_pass_it() -> None:
    blacklist = Blacklist()
    assert blacklist.words == PAPER_BLACKLIST
    for word in ALPACA_EXTRA:
        assert blacklist.check(f"Write a short essay about {word} in the modern world.") is None
    assert blacklist.check("Write a short essay about maps in the modern world.") is not None


@pytest.mark.anyio
async def test_the_alpaca_list_is_a_setting(pm: pluggy.PluginManager) -> None:
    chain = Plugins(pm).build_filter_chain({"blacklist": {"lists": ["alpaca"]}})
    for word in ("video", "audio", "music", "flowchart", "diagram", "image", "go to"):
        rejection = await chain.check_instruction(f"Write a short essay about {word} today.")
        assert rejection is not None and rejection.filter == "blacklist", word
        assert rejection.reason == f"contains blacklisted word {word!r}"


@pytest.mark.anyio
async def test_blacklist_words_are_added_to_the_lists_not_instead(
    pm: pluggy.PluginManager,
) -> None:
    chain = Plugins(pm).build_filter_chain({"blacklist": {"words": ["tea", "coffee break"]}})
    for text in (
        "Recommend a tea for a cold evening.",
        "Plan a Coffee Break for ten people.",
        "Explain what a graph database is for.",  # the paper's words are still there
    ):
        rejection = await chain.check_instruction(text)
        assert rejection is not None and rejection.filter == "blacklist", text


def test_an_empty_blacklist_rejects_nothing() -> None:
    blacklist = Blacklist(BlacklistSettings(lists=()))
    assert blacklist.words == ()
    assert blacklist.check("Draw a map of the files in the image.") is None


def test_the_blacklist_settings_come_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[filters.blacklist]\nlists = ["paper", "alpaca"]\nwords = ["tea"]\n')
    config = load_config(path)
    assert config.filters.settings["blacklist"] == {"lists": ["paper", "alpaca"], "words": ["tea"]}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"blacklist": {"lists": ["paper", "vicuna"]}},
            "filters.blacklist.lists[1]: expected 'paper' or 'alpaca', got 'vicuna'",
        ),
        ({"blacklist": {"lists": "alpaca"}}, "filters.blacklist.lists: expected a list"),
        ({"blacklist": {"words": ["tea", " "]}}, "filters.blacklist: words[1]: must not be empty"),
        ({"blacklist": {"list": ["alpaca"]}}, "filters.blacklist.list: unknown key"),
        ({"word_count": {"min": 1}}, "filters.word_count.min: unknown key"),
        ({"word_count": {"min_words": "one"}}, "filters.word_count.min_words: expected int"),
        ({"no_such_filter": {}}, "filters.no_such_filter: no such filter is loaded"),
        ({"write_a_program": {"x": 1}}, "filters.write_a_program: this filter takes no settings"),
    ],
)
def test_bad_filter_settings_name_the_key(
    pm: pluggy.PluginManager, settings: dict[str, dict[str, object]], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Plugins(pm).build_filter_chain(settings)
