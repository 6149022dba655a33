"""The plugin manager: in-process plugins, misspelt hooks, disabled plugins, observers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pluggy
import pytest

from selfinstruct_async import BaseFilter, Rejection, hookimpl
from selfinstruct_async.errors import ConfigError, FilterError, PluginError
from selfinstruct_async.plugins import Plugins, make_plugin_manager
from selfinstruct_async.prompts import DEFAULT_TEMPLATES, PromptTemplates
from selfinstruct_async.records import Instance, RejectionRecord, Task

BUILTIN_INSTRUCTION_FILTERS = {
    "control_characters", "leading_character", "word_count", "blacklist", "non_text_modality",
    "write_a_program", "rouge_similarity",
}  # fmt: skip


class NoQuestions(BaseFilter):
    name = "no_questions"
    order = 1

    def check(self, instruction: str) -> Rejection | None:
        return Rejection("is a question") if instruction.endswith("?") else None


class Exploding(BaseFilter):
    name = "exploding"
    order = 0

    def check(self, instruction: str) -> Rejection | None:
        raise RuntimeError("boom")


class AsyncFilter(BaseFilter):
    name = "async_filter"
    order = 2

    async def check(self, instruction: str) -> Rejection | None:
        return Rejection("mentions moderation") if "moderation" in instruction else None


def plugin_registering(*classes: type[BaseFilter]) -> object:
    @hookimpl
    def register_instruction_filters(register: Callable[[type[BaseFilter]], None]) -> None:
        for cls in classes:
            register(cls)

    return SimpleNamespace(register_instruction_filters=register_instruction_filters)


def test_builtin_filters_are_found_through_entry_points(pm: pluggy.PluginManager) -> None:
    names = {cls.name for cls in Plugins(pm).instruction_filter_classes()}
    assert names == BUILTIN_INSTRUCTION_FILTERS


@pytest.mark.anyio
async def test_in_process_plugin_filters_in_its_declared_order(pm: pluggy.PluginManager) -> None:
    plugin = plugin_registering(NoQuestions, AsyncFilter)
    pm.register(plugin, name="test-plugin")
    try:
        chain = Plugins(pm).build_filter_chain({})
        assert [f.name for f in chain.instruction_filters][:4] == [
            "no_questions", "async_filter", "control_characters", "leading_character",
        ]  # fmt: skip
        rejection = await chain.check_instruction("Can you list three kinds of clouds?")
        assert rejection == Rejection("is a question", "no_questions")
        rejection = await chain.check_instruction("Explain what content moderation is for.")
        assert rejection == Rejection("mentions moderation", "async_filter")
    finally:
        pm.unregister(plugin)
    assert "no_questions" not in {c.name for c in Plugins(pm).instruction_filter_classes()}


@pytest.mark.anyio
async def test_a_filter_that_raises_rejects_and_is_named(pm: pluggy.PluginManager) -> None:
    plugin = plugin_registering(Exploding)
    pm.register(plugin)
    try:
        chain = Plugins(pm).build_filter_chain({})
        rejection = await chain.check_instruction("Explain how tides work in simple words.")
        assert rejection is not None and rejection.filter == "exploding"
        assert "RuntimeError: boom" in rejection.reason
        stopping = Plugins(pm).build_filter_chain({}, on_error="stop")
        with pytest.raises(FilterError, match="filter 'exploding' raised RuntimeError: boom"):
            await stopping.check_instruction("Explain how tides work in simple words.")
    finally:
        pm.unregister(plugin)


def test_misspelt_hook_is_caught_at_start_up() -> None:
    class Misspelt:
        @hookimpl
        def register_instruction_filter(self, register: object) -> None: ...

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(Misspelt())
    with pytest.raises(pluggy.PluginValidationError):
        pm.check_pending()


def test_disabled_plugins_are_not_loaded() -> None:
    pm = make_plugin_manager(disabled=["keywords", "modality", "similarity"])
    names = {cls.name for cls in Plugins(pm).instruction_filter_classes()}
    assert names == BUILTIN_INSTRUCTION_FILTERS - {
        "blacklist", "non_text_modality", "write_a_program", "rouge_similarity",
    }  # fmt: skip


def test_filters_disabled_by_name_leave_the_rest_of_their_plugin() -> None:
    # The README's example: SELFINSTRUCT_PLUGINS_DISABLED=write_a_program,blacklist.
    pm = make_plugin_manager(disabled=["write_a_program", "blacklist", "empty_output"])
    chain = Plugins(pm).build_filter_chain({})
    assert {f.name for f in chain.instruction_filters} == BUILTIN_INSTRUCTION_FILTERS - {
        "write_a_program", "blacklist",
    }  # fmt: skip
    assert "empty_output" not in {f.name for f in chain.instance_filters}
    assert "colon_ending" in {f.name for f in chain.instance_filters}
    assert "keywords" in {info.name for info in Plugins(pm).describe()}  # still loaded
    with pytest.raises(ConfigError, match=r"filters\.blacklist: no such filter is loaded"):
        Plugins(pm).build_filter_chain({"blacklist": {"words": ["tea"]}})


def test_an_unknown_disabled_name_is_an_error_listing_plugins_and_filters() -> None:
    pm = make_plugin_manager(disabled=["write_a_progam"])
    with pytest.raises(PluginError) as raised:
        Plugins(pm).build_filter_chain({})
    message = str(raised.value)
    assert message.startswith(
        "plugins.disabled: 'write_a_progam' is neither an installed plugin nor a filter "
        "(plugins: form, instances, keywords, length, modality, similarity; filters: blacklist, "
    )
    assert "write_a_program" in message and "empty_output" in message


def test_a_filter_of_a_plugin_disabled_too_is_not_an_unknown_name() -> None:
    pm = make_plugin_manager(disabled=["keywords", "blacklist"])
    names = {f.name for f in Plugins(pm).build_filter_chain({}).instruction_filters}
    assert names == BUILTIN_INSTRUCTION_FILTERS - {"blacklist", "write_a_program"}


def test_a_disabled_name_an_in_process_plugin_supplies_is_accepted() -> None:
    # Disabling the installed copy of a plugin and registering a fresh object (as the
    # example package's tests do) must work whether or not that copy is installed.
    pm = make_plugin_manager(disabled=["no_questions"])
    plugin = plugin_registering(NoQuestions)
    pm.register(plugin)
    try:
        chain = Plugins(pm).build_filter_chain({})
        assert "no_questions" in {f.name for f in chain.instruction_filters}
    finally:
        pm.unregister(plugin)
    with pytest.raises(PluginError, match="'no_questions' is neither"):
        Plugins(pm).build_filter_chain({})


def test_two_filters_with_one_name_are_refused(pm: pluggy.PluginManager) -> None:
    class Impostor(NoQuestions):
        name = "word_count"

    plugin = plugin_registering(Impostor)
    pm.register(plugin)
    try:
        with pytest.raises(PluginError, match="two filters are named 'word_count'"):
            Plugins(pm).instruction_filter_classes()
    finally:
        pm.unregister(plugin)


def test_observers_see_accepted_tasks_and_rejections(pm: pluggy.PluginManager) -> None:
    seen: list[object] = []

    class Observer:
        @hookimpl
        def task_accepted(self, task: Task) -> None:
            seen.append(task)

        @hookimpl
        def candidate_rejected(self, rejection: RejectionRecord) -> None:
            seen.append(rejection)

    observer = Observer()
    pm.register(observer)
    try:
        plugins = Plugins(pm)
        task = Task("t", "Do it well.", False, (Instance("", "done"),))
        record = RejectionRecord("instruction", "word_count", "2 words", "Do it")
        plugins.task_accepted(task)
        plugins.candidate_rejected(record)
        assert seen == [task, record]
    finally:
        pm.unregister(observer)


def test_describe_lists_builtin_plugins_with_their_filters(pm: pluggy.PluginManager) -> None:
    infos = {info.name: info for info in Plugins(pm).describe()}
    assert infos["length"].filters == ("word_count",)
    assert infos["length"].version == "selfinstruct-async 0.1.0"
    assert "register_instance_filters" in infos["instances"].hooks


def test_prompt_templates_hook_replaces_the_wording(pm: pluggy.PluginManager) -> None:
    class Wording:
        @hookimpl
        def prompt_templates(self, templates: PromptTemplates) -> PromptTemplates:
            return replace(templates, task_label="Job")

    plugin = Wording()
    pm.register(plugin)
    try:
        assert Plugins(pm).prompt_templates(DEFAULT_TEMPLATES).task_label == "Job"
    finally:
        pm.unregister(plugin)
    assert Plugins(pm).prompt_templates(DEFAULT_TEMPLATES) is DEFAULT_TEMPLATES


def test_prompt_templates_of_the_wrong_type_are_refused(pm: pluggy.PluginManager) -> None:
    class Broken:
        @hookimpl
        def prompt_templates(self, templates: PromptTemplates) -> object:
            return {"task_label": "Job"}

    plugin = Broken()
    pm.register(plugin)
    try:
        with pytest.raises(PluginError, match="prompt_templates returned dict"):
            Plugins(pm).prompt_templates(DEFAULT_TEMPLATES)
    finally:
        pm.unregister(plugin)


def test_a_chain_without_instruction_filters_is_refused_unless_asked_for() -> None:
    disabled = ["form", "length", "keywords", "modality", "similarity"]
    plugins = Plugins(make_plugin_manager(disabled=disabled))
    with pytest.raises(ConfigError, match=r"no instruction filter is loaded.*allow_unfiltered"):
        plugins.build_filter_chain({}, allow_unfiltered=False)
    chain = plugins.build_filter_chain({}, allow_unfiltered=True)
    assert chain.instruction_filters == [] and chain.instance_filters


def test_a_run_with_no_instruction_filter_fails_before_opening_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from selfinstruct_async.cli import main

    monkeypatch.setenv("SELFINSTRUCT_PLUGINS_DISABLED", "form,length,keywords,modality,similarity")
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
    assert main([*argv, "--target", "1", "--no-progress"]) == 1
    assert "no instruction filter is loaded" in capsys.readouterr().err
    assert not out.exists()  # refused before the run directory, and before any request
