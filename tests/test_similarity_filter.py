"""The rouge_similarity plugin filter, instantiated and registered like any plugin."""

from __future__ import annotations

from pathlib import Path

import pluggy
import pytest
from selfinstruct_plugins import similarity as plugin
from selfinstruct_plugins.similarity import RougeSimilarity, Settings

from selfinstruct_async import Rejection
from selfinstruct_async import hookspecs as hookspecs_module
from selfinstruct_async.errors import EmptyTokensError
from selfinstruct_async.filters import FilterChain, InstructionFilter
from selfinstruct_async.similarity import SimilarityIndex, SimilaritySettings
from tests.test_faults import assert_one_line_error, selfinstruct

SEEDS = [
    "Write a short poem about the ocean at night.",
    "Give three reasons why people should learn a second language.",
]


def test_near_duplicate_of_a_remembered_instruction_is_rejected_with_score_and_text() -> None:
    f = RougeSimilarity()
    for seed in SEEDS:
        f.remember(seed)
    verdict = f.check("Write a short poem about the ocean at night, please.")
    assert isinstance(verdict, Rejection)
    assert verdict.reason.startswith("ROUGE-L 0.9")
    assert verdict.reason.endswith(f"> 0.7 with pool instruction: {SEEDS[0]!r}")
    assert f.check("Summarize the following article in three sentences.") is None


def test_only_remembered_instructions_count() -> None:
    f = RougeSimilarity()
    candidate = "Summarize the following article in three sentences."
    assert f.check(candidate) is None
    assert f.check(candidate) is None  # checking does not add to the pool
    f.remember(candidate)
    assert f.check(candidate) is not None


def test_threshold_setting_moves_the_boundary() -> None:
    candidate = "Write a poem about the ocean."
    pool = "Write a short poem about the ocean at night."  # F = 0.8
    strict, lenient = RougeSimilarity(Settings(threshold=0.5)), RougeSimilarity(Settings(0.9))
    for f in (strict, lenient):
        f.remember(pool)
    assert strict.check(candidate) is not None
    assert lenient.check(candidate) is None
    with pytest.raises(ValueError, match="between 0 and 1"):
        Settings(threshold=70)


def test_unicode_tokenizer_setting_rejects_chinese_near_duplicates() -> None:
    f = RougeSimilarity(Settings(tokenizer="unicode"))
    f.remember("请写一首关于秋天的诗")
    assert f.check("请写一首关于秋天的短诗") is not None
    assert f.check("把这句话翻译成英文") is None


def test_metadata_lists_most_similar_pool_instructions() -> None:
    f = RougeSimilarity()
    for seed in SEEDS:
        f.remember(seed)
    meta = f.metadata("Write a poem about the ocean.", k=1)
    assert meta.most_similar[0][0] == SEEDS[0] and meta.most_similar[0][1] > 0.7
    assert 0 < meta.mean < meta.most_similar[0][1]


def test_hook_registers_the_filter_class_through_pluggy() -> None:
    pm = pluggy.PluginManager(hookspecs_module.PROJECT_NAME)
    pm.add_hookspecs(hookspecs_module)
    registered: list[type[InstructionFilter]] = []
    pm.register(plugin)
    try:
        pm.hook.register_instruction_filters(register=registered.append)
    finally:
        pm.unregister(plugin)
    assert registered == [RougeSimilarity]
    assert RougeSimilarity.name == "rouge_similarity" and RougeSimilarity.cpu_bound
    assert isinstance(RougeSimilarity(), InstructionFilter)


@pytest.mark.anyio
async def test_chain_runs_it_off_the_event_loop_and_labels_rejections() -> None:
    f = RougeSimilarity()
    chain = FilterChain([f])
    chain.remember(SEEDS[0])
    rejection = await chain.check_instruction("Write a short poem about the ocean at night!")
    assert rejection is not None and rejection.filter == "rouge_similarity"
    assert await chain.check_instruction("Translate this sentence into French.") is None


@pytest.mark.anyio
async def test_wrong_tokenizer_for_the_language_is_reported_not_silently_accepted() -> None:
    chain = FilterChain([RougeSimilarity()], on_error="stop")
    chain.remember("Write a poem.")
    with pytest.raises(Exception, match="unicode") as caught:
        for k in range(60):
            await chain.check_instruction("请写一首关于秋天的诗" + "。" * k)
    error = caught.value
    assert isinstance(error, EmptyTokensError) or isinstance(error.__cause__, EmptyTokensError)


# ---------------------------------------------------------------- one rule for the settings
# (issue 13, item 5): the plugin's table, dedup's flags and the index check values alike.

BAD_SETTINGS = [
    ("threshold", 1.5, "threshold must be between 0 and 1, not 1.5"),
    ("threshold", float("nan"), "threshold must be between 0 and 1, not nan"),
    ("tokenizer", "bogus", "tokenizer must be one of 'rouge', 'unicode', not 'bogus'"),
    (
        "on_empty_tokens",
        "maybe",
        "on_empty_tokens must be 'error', 'warn' or 'ignore', not 'maybe'",
    ),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_SETTINGS)
def test_the_plugin_and_the_index_refuse_the_same_settings_with_the_same_words(
    key: str, value: object, message: str
) -> None:
    assert Settings is SimilaritySettings  # the plugin's table is the shared rule
    with pytest.raises(ValueError) as raised:
        SimilaritySettings(**{key: value})  # type: ignore[arg-type]
    assert str(raised.value) == message
    # The index's keyword for on_empty_tokens is on_empty; its message names that.
    index_key = "on_empty" if key == "on_empty_tokens" else key
    with pytest.raises(ValueError) as raised:
        SimilarityIndex(**{index_key: value})  # type: ignore[arg-type]
    assert str(raised.value) == message.replace(key, index_key)


@pytest.mark.parametrize(("key", "value", "message"), BAD_SETTINGS[::2])
def test_a_bad_setting_in_the_config_is_one_line_naming_the_table(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    config = tmp_path / "run.toml"
    shown = f'"{value}"' if isinstance(value, str) else value
    config.write_text(f"[filters.rouge_similarity]\n{key} = {shown}\n", encoding="utf-8")
    result = selfinstruct("plugins", "--config", str(config))
    assert_one_line_error(result, f"filters.rouge_similarity: {message}")


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--threshold", "1.5", "argument --threshold: must be between 0 and 1, not 1.5"),
        ("--threshold", "nan", "argument --threshold: must be between 0 and 1, not nan"),
        ("--tokenizer", "bogus", "argument --tokenizer: invalid choice: 'bogus'"),
        ("--on-empty", "maybe", "argument --on-empty: invalid choice: 'maybe'"),
    ],
)
def test_dedup_refuses_the_same_values_naming_the_flag(
    tmp_path: Path, flag: str, value: str, message: str
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("Write a poem.\n", encoding="utf-8")
    result = selfinstruct("dedup", str(source), "--out", str(tmp_path / "out.txt"), flag, value)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.txt").exists()
