"""``selfinstruct stats``: Table 1, acceptance, tokens and cost of a run directory.

The run directories are built through :class:`Store` exactly as the pipeline writes them;
``make_tasks`` and ``build_run`` are shared with the report and export tests.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from selfinstruct_async import counters as names
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.cli import main as cli_main
from selfinstruct_async.errors import SelfInstructError, StatsError
from selfinstruct_async.outputs import stats
from selfinstruct_async.outputs.prices import load_prices
from selfinstruct_async.records import Instance, PendingTask, RejectionRecord, Task

VERBS = ["Write", "Generate", "Classify", "Explain", "Summarize", "Translate", "List", "Create"]
ADJECTIVES = ["short", "formal", "funny", "detailed", ""]
OBJECTS = ["story", "poem", "sentence", "email", "question", "recipe", "review", "headline"]
TOPICS = ["the ocean", "a lost cat", "tax law", "mountain weather", "jazz", "a new phone"]
VOCAB = [
    "the",
    "a",
    "of",
    "river",
    "stone",
    "quick",
    "light",
    "data",
    "paper",
    "model",
    "answer",
    "blue",
    "market",
    "seven",
]


def make_tasks(n: int, seed: int = 0, prefix: str = "si") -> list[Task]:
    """Varied, realistic-looking tasks: empty and non-empty inputs, 1-4 instances."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        adjective = rng.choice(ADJECTIVES)
        words = [rng.choice(VERBS), "a", adjective, rng.choice(OBJECTS), "about"]
        instruction = " ".join(w for w in words if w) + f" {rng.choice(TOPICS)}."
        if rng.random() < 0.3:
            instruction += " " + " ".join(rng.choices(VOCAB, k=rng.randint(1, 12)))
        instances = []
        for _ in range(rng.randint(1, 4)):
            text = "" if rng.random() < 0.4 else " ".join(rng.choices(VOCAB, k=rng.randint(1, 30)))
            out = " ".join(rng.choices(VOCAB, k=rng.randint(1, 60)))
            instances.append(Instance(input=text, output=out))
        tasks.append(
            Task(
                id=f"{prefix}-{i}-{rng.randint(0, 15)}",
                instruction=instruction,
                is_classification=rng.random() < 0.25,
                instances=tuple(instances),
            )
        )
    return tasks


def build_run(
    run_dir: Path,
    tasks: Sequence[Task],
    *,
    counters: Mapping[str, float] | None = None,
    rejections: Sequence[RejectionRecord] = (),
    usage: Any = None,
    config: Any = None,
) -> Path:
    """A run directory holding ``tasks`` as accepted, written through the real Store."""
    # Durability is not under test here: skip the per-task fsyncs so big runs build quickly.
    with Store(run_dir) as store, mock.patch("os.fsync"):
        store.db.execute("PRAGMA synchronous=OFF")
        for number, task in enumerate(tasks):
            store.add_pending(PendingTask(task.id, task.instruction), request_no=number)
            store.set_classification(task.id, task.is_classification)
            store.finish_task(task.id, task)
        if rejections:
            store.add_rejections(rejections)
        if counters:
            store.add_counters(counters)
        if usage is not None:
            store.set_meta("usage", usage)
    if config is not None:
        (run_dir / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return run_dir


def words(text: str) -> int:
    return len(text.split())


COUNTERS = {
    "instructions.generated": 120,
    "instructions.accepted": 40,
    "rejected.instruction.rouge_similarity": 50,
    "rejected.instruction.blacklist": 20,
    "rejected.instruction.word_count": 10,
    "classification.yes": 10,
    "classification.no": 29,
    "classification.unparseable": 1,
    "instances.generated": 150,
    "instances.accepted": 100,
    "rejected.instance.empty_output": 30,
    "rejected.instance.input_equals_output": 20,
    "tasks.accepted": 30,
    "rejected.task.no_valid_instances": 10,
    "requests.generate_instructions": 12,
    "failed.generate_instructions": 3,
    "requests.generate_instances": 40,
}
USAGE = {
    "version": 1,
    "stages": {
        "generate_instructions": {
            "prompt_tokens": 2_000_000,
            "completion_tokens": 500_000,
            "requests": 12,
            "retries": 4,
            "rate_limited": 3,
            "failures": 3,
            "cost_usd": 1.25,
            "some_future_counter": 9,
        },
        "generate_instances": {
            "prompt_tokens": 1_000_000,
            "completion_tokens": 250_000,
            "requests": 40,
            "retries": 0,
            "rate_limited": 0,
        },
    },
}


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, list[Task]]:
    tasks = make_tasks(30, seed=1)
    rejections = [
        RejectionRecord("instruction", "rouge_similarity", "ROUGE-L 0.81", "Write a poem.")
    ] * 3 + [RejectionRecord("instruction", "leading_character", "starts with '('", "(x) y z")]
    build_run(
        tmp_path / "run",
        tasks,
        counters=COUNTERS,
        rejections=rejections,
        usage=USAGE,
        config={"endpoints": [{"prompt_price": 0.5, "completion_price": 2.0}]},
    )
    return tmp_path / "run", tasks


def test_table1_matches_the_tasks_in_the_run(run: tuple[Path, list[Task]]) -> None:
    run_dir, tasks = run
    d = stats.compute_stats(run_dir).to_json()["dataset"]
    instances = [i for t in tasks for i in t.instances]
    nonempty = [i for i in instances if i.input]
    assert d["instructions"] == 30
    assert d["classification"] == sum(t.is_classification for t in tasks)
    assert d["classification"] + d["non_classification"] == 30
    assert d["instances"] == len(instances)
    assert d["instances_empty_input"] == len(instances) - len(nonempty)
    assert d["avg_instruction_words"] == pytest.approx(
        sum(words(t.instruction) for t in tasks) / 30
    )
    assert d["avg_nonempty_input_words"] == pytest.approx(
        sum(words(i.input) for i in nonempty) / len(nonempty)
    )
    assert d["avg_output_words"] == pytest.approx(
        sum(words(i.output) for i in instances) / len(instances)
    )


def test_acceptance_rates_per_stage_and_filter_come_from_counters(
    run: tuple[Path, list[Task]],
) -> None:
    acc = stats.compute_stats(run[0]).to_json()["acceptance"]
    assert acc["instruction"]["received"] == 120
    # Issue 13: accepted over decided (40 + 50 + 20 + 10 counted + 1 only in the rejections
    # table), the formula /status uses; it was 40 / 120 (over received) before.
    assert acc["instruction"]["decided"] == 121
    assert acc["instruction"]["acceptance_rate"] == pytest.approx(40 / 121)
    filters = acc["instruction"]["filters"]
    assert list(filters)[:3] == ["rouge_similarity", "blacklist", "word_count"]
    assert filters["rouge_similarity"]["rejected"] == 50  # the counter, not the 3 table rows
    assert filters["blacklist"]["rejected_share"] == pytest.approx(20 / 121)
    assert acc["instance"]["acceptance_rate"] == pytest.approx(100 / 150)
    assert acc["instance"]["filters"]["empty_output"]["rejected_share"] == pytest.approx(0.2)
    assert acc["task"]["received"] == 40
    assert acc["task"]["acceptance_rate"] == pytest.approx(30 / 40)
    assert acc["task"]["filters"]["no_valid_instances"]["rejected"] == 10
    assert acc["classification"] == {"yes": 10, "no": 29, "unparseable": 1}


def test_filter_known_only_from_the_rejections_table_is_counted_from_it(
    run: tuple[Path, list[Task]],
) -> None:
    filters = stats.compute_stats(run[0]).to_json()["acceptance"]["instruction"]["filters"]
    assert filters["leading_character"]["rejected"] == 1


def test_requests_and_failures_per_stage(run: tuple[Path, list[Task]]) -> None:
    requests = stats.compute_stats(run[0]).to_json()["requests"]
    assert requests["generate_instructions"] == {
        "requests": 12,
        "failed": 3,
        "failure_rate": pytest.approx(0.25),
    }
    assert requests["generate_instances"]["failed"] == 0


def test_tokens_per_stage_and_per_accepted_instruction(run: tuple[Path, list[Task]]) -> None:
    usage = stats.compute_stats(run[0]).to_json()["usage"]
    gen = usage["stages"]["generate_instructions"]
    assert (gen["prompt_tokens"], gen["completion_tokens"]) == (2_000_000, 500_000)
    assert gen["throttled"] == 3  # the meter's "rate_limited"
    assert gen["recorded_cost_usd"] == 1.25
    assert "some_future_counter" not in gen
    assert usage["total"]["total_tokens"] == 3_750_000
    per = usage["per_accepted_instruction"]
    assert per["total_tokens"] == pytest.approx(3_750_000 / 30)
    assert usage["per_accepted_instruction_by_stage"]["generate_instances"] == pytest.approx(
        1_250_000 / 30
    )


def test_cost_uses_the_endpoint_prices_saved_with_the_run(run: tuple[Path, list[Task]]) -> None:
    result = stats.compute_stats(run[0]).to_json()
    usage = result["usage"]
    # 2M prompt at $0.5/M + 0.5M completion at $2/M
    assert usage["stages"]["generate_instructions"]["cost_usd"] == pytest.approx(2.0)
    assert usage["total"]["cost_usd"] == pytest.approx(3.0)
    assert usage["per_accepted_instruction"]["cost_usd"] == pytest.approx(3.0 / 30)
    assert result["prices"]["source"].endswith("config.json endpoints")


def test_price_file_with_stage_prices_overrides_the_run_config(
    run: tuple[Path, list[Task]], tmp_path: Path
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(
        "prompt_price = 1.0\ncompletion_price = 4.0\n"
        "[stages.generate_instances]\ncompletion_price = 0.0\n"
    )
    usage = stats.compute_stats(run[0], load_prices(prices)).to_json()["usage"]
    assert usage["stages"]["generate_instructions"]["cost_usd"] == pytest.approx(2.0 + 2.0)
    assert usage["stages"]["generate_instances"]["cost_usd"] == pytest.approx(1.0)


def test_run_config_toml_works_as_a_price_file_averaging_endpoints(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        '[run]\ntarget = 5\n[[endpoints]]\nbase_url = "http://a"\nprompt_price = 1.0\n'
        'completion_price = 2.0\n[[endpoints]]\nbase_url = "http://b"\nprompt_price = 3.0\n'
    )
    table = load_prices(path)
    assert (table.default.prompt, table.default.completion) == (2.0, 1.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prompt_price = 'cheap'\n", "prompt_price: expected a number, got str"),
        ("[prices]\ncompletion_price = -1\n", "prices.completion_price: must be a non-negative"),
        ("[stages.x]\nprompt_price = true\n", "stages.x.prompt_price: expected a number"),
        ("prompt_price = 1\nprompt_prise = 2\n", "prompt_prise: unknown key"),
        ("[run]\ntarget = 3\n", "no prices found"),
    ],
)
def test_bad_price_file_error_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(StatsError) as raised:
        load_prices(path)
    assert str(raised.value).startswith(str(path))
    assert message in str(raised.value)


def test_missing_or_bare_usage_snapshot_is_tolerated(tmp_path: Path) -> None:
    tasks = make_tasks(4)
    bare = {"generate_instructions": {"prompt_tokens": 10, "completion_tokens": 5, "x": "y"}}
    build_run(tmp_path / "bare", tasks, usage=bare)
    build_run(tmp_path / "none", tasks)
    got = stats.compute_stats(tmp_path / "bare").to_json()["usage"]
    assert got["stages"]["generate_instructions"]["total_tokens"] == 15
    none = stats.compute_stats(tmp_path / "none")
    assert none.to_json()["usage"]["available"] is False
    assert none.to_json()["prices"] is None
    assert "usage: not recorded" in stats.render_text(none)


def test_stats_read_a_run_that_a_writer_holds_open_with_a_torn_last_line(tmp_path: Path) -> None:
    tasks = make_tasks(6)
    run_dir = build_run(tmp_path / "run", tasks[:5])
    with Store(run_dir) as writer:  # the daemon: holds the lock and keeps writing
        writer.add_pending(PendingTask(tasks[5].id, tasks[5].instruction), request_no=99)
        writer.add_counters({"instructions.generated": 7})
        with open(run_dir / "tasks.jsonl", "a", encoding="utf-8") as f:
            f.write('{"id": "si-99-0", "instruction": "Half a li')
        result = stats.compute_stats(run_dir).to_json()
    assert result["dataset"]["instructions"] == 5
    assert result["checkpoint"]["tasks"]["pending"] == 1
    assert result["acceptance"]["instruction"]["received"] == 7
    assert any("incomplete last line" in note for note in result["notes"])


def test_run_dir_without_tasks_jsonl_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SelfInstructError, match=r"empty: no tasks\.jsonl here"):
        stats.compute_stats(tmp_path / "empty")


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    stats.add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_json_and_text_show_the_same_numbers(
    run: tuple[Path, list[Task]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["stats", str(run[0]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dataset"]["instructions"] == 30
    assert _cli(["stats", str(run[0])]) == 0
    text = capsys.readouterr().out
    d = data["dataset"]
    assert f"{d['instances']:,}" in text
    assert f"{d['avg_output_words']:.1f}" in text
    assert "rouge_similarity" in text and "41.3%" in text  # 50 of 121 decided (was of 120)
    assert "$3.0000" in text


def test_stats_rates_are_the_counters_acceptance_formula_that_status_shows(
    tmp_path: Path,
) -> None:
    # Undecided work (a task in flight, candidates in a queue) is in no denominator.
    counters = {**COUNTERS, "instructions.generated": 500, "instances.generated": 900}
    run_dir = build_run(tmp_path / "run", make_tasks(30, seed=1), counters=counters)
    levels = stats.compute_stats(run_dir).acceptance.levels
    expected = names.acceptance(counters)
    assert [s.level for s in levels] == list(expected)
    for s in levels:
        figures = expected[s.level]
        assert (s.accepted, s.decided) == (figures.accepted, figures.decided)
        assert s.acceptance_rate == pytest.approx(figures.rate)
        shares = sum(f.rejected_share or 0 for f in s.filters)
        assert shares + (s.acceptance_rate or 0) == pytest.approx(1.0)
    assert levels[0].received == 500  # what entered the level is still shown


def test_json_output_is_the_typed_stats_to_json(
    run: tuple[Path, list[Task]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["stats", str(run[0]), "--json"]) == 0
    printed = capsys.readouterr().out
    typed = stats.compute_stats(run[0])
    assert printed == json.dumps(typed.to_json(), indent=2, sort_keys=True) + "\n"
    data = json.loads(printed)
    keys = ["acceptance", "checkpoint", "classifier", "cost", "dataset", "notes", "prices"]
    assert sorted(data) == [*keys, "requests", "run_dir", "usage"]
    counts = {"pending": 0, "accepted": 30, "rejected": 0}
    assert data["checkpoint"] == {"available": True, "tasks": counts}
    # The documented shape, key by key (``decided`` is new with issue 13; nothing removed).
    assert sorted(data["dataset"]) == sorted(
        ["instructions", "classification", "non_classification", "instances",
         "instances_empty_input", "avg_instruction_words", "avg_nonempty_input_words",
         "avg_output_words"]
    )  # fmt: skip
    assert sorted(data["acceptance"]) == ["classification", "instance", "instruction", "task"]
    level = ["acceptance_rate", "accepted", "decided", "filters", "received"]
    assert all(sorted(data["acceptance"][lv]) == level for lv in ("instruction", "task"))
    assert sorted(data["acceptance"]["instance"]) == sorted([*level, "over_cap"])
    assert sorted(data["requests"]["generate_instructions"]) == [
        "failed",
        "failure_rate",
        "requests",
    ]
    assert sorted(data["usage"]) == [
        "available", "per_accepted_instruction", "per_accepted_instruction_by_stage", "stages",
        "total",
    ]  # fmt: skip
    # Cached prompt tokens and the Batch API's share are new with issue 17.
    assert sorted(data["usage"]["stages"]["generate_instructions"]) == sorted(
        ["prompt_tokens", "completion_tokens", "requests", "retries", "failures", "throttled",
         "recorded_cost_usd", "total_tokens", "cost_usd", "cached_prompt_tokens", "cached_share",
         "batch_requests", "batch_prompt_tokens", "batch_cached_prompt_tokens",
         "batch_completion_tokens"]
    )  # fmt: skip
    assert sorted(data["usage"]["per_accepted_instruction"]) == sorted(
        ["prompt_tokens", "cached_prompt_tokens", "completion_tokens", "total_tokens", "cost_usd"]
    )
    assert sorted(data["prices"]) == [
        "batch_price_multiplier", "cached_prompt_price", "completion_price", "models",
        "prompt_price", "source", "stages",
    ]  # fmt: skip
    assert sorted(data["cost"]) == [
        "accepted_tasks", "allocation", "basis", "by_stage", "per_1000_accepted", "rejected",
        "tokens_per_accepted", "total_usd", "unit_costs",
    ]  # fmt: skip
    task = typed.acceptance.level("task")
    assert data["acceptance"]["task"]["filters"] == {
        f.name: {"rejected": f.rejected, "rejected_share": f.rejected_share} for f in task.filters
    }
    total = typed.usage.total
    assert total is not None and data["usage"]["total"]["total_tokens"] == total.total_tokens


def test_instances_beyond_the_cap_are_shown_apart_from_the_filters() -> None:
    counters = {
        names.INSTANCES_GENERATED: 12,
        names.INSTANCES_ACCEPTED: 5,
        names.rejected("instance", "empty_output"): 2,
        names.INSTANCES_OVER_CAP: 5,
    }
    acceptance = stats.acceptance_of(counters, {})
    instance = acceptance.level("instance")
    assert (instance.received, instance.decided, instance.accepted) == (12, 7, 5)
    assert acceptance.to_json()["instance"]["over_cap"] == 5
    text = "\n".join(stats._acceptance_lines(acceptance))
    assert "beyond max_instances (not a filter)" in text
    assert "rejected by beyond" not in text
    quiet = stats.acceptance_of({names.INSTANCES_GENERATED: 3, names.INSTANCES_ACCEPTED: 3}, {})
    assert "beyond max_instances" not in "\n".join(stats._acceptance_lines(quiet))


# -- cost per 1,000 accepted tasks, cached and batch tokens, model prices (issue 17) ------


def test_cost_per_1000_accepted_tasks_includes_what_each_filters_rejects_cost(
    run: tuple[Path, list[Task]],
) -> None:
    cost = stats.compute_stats(run[0]).to_json()["cost"]
    # $2 of instruction generation and $1 of instance generation for 30 accepted tasks.
    assert cost["basis"] == "priced"
    assert cost["per_1000_accepted"] == pytest.approx(1000 * 3.0 / 30)
    assert cost["by_stage"]["generate_instances"]["per_1000_accepted"] == pytest.approx(
        1000 * 1.0 / 30
    )
    # Average per candidate: 120 instruction candidates, 150 instances, 40 answers.
    per_instruction, per_instance = 2.0 / 120, 1.0 / 150
    assert cost["unit_costs"]["instruction_candidate"] == pytest.approx(per_instruction)
    assert cost["unit_costs"]["instance"] == pytest.approx(per_instance)
    by_filter = cost["rejected"]["by_filter"]
    assert by_filter["instruction"]["rouge_similarity"]["cost_usd"] == pytest.approx(
        50 * per_instruction
    )
    assert by_filter["instruction"]["leading_character"]["rejected"] == 1
    assert by_filter["instance"]["empty_output"]["cost_usd"] == pytest.approx(30 * per_instance)
    # A task rejected whole cost its instruction and a classification answer (none priced
    # here); its instances are already counted under the instance filters.
    assert by_filter["task"]["no_valid_instances"]["cost_usd"] == pytest.approx(
        10 * per_instruction
    )
    rejected = (50 + 20 + 10 + 1 + 10) * per_instruction + (30 + 20) * per_instance
    assert cost["rejected"]["cost_usd"] == pytest.approx(rejected)
    assert cost["rejected"]["cost_usd"] < 3.0
    assert cost["tokens_per_accepted"]["prompt_tokens"] == pytest.approx(3_000_000 / 30)


def test_without_prices_the_cost_is_what_the_run_recorded(tmp_path: Path) -> None:
    run_dir = build_run(tmp_path / "run", make_tasks(10), counters=COUNTERS, usage=USAGE)
    cost = stats.compute_stats(run_dir).to_json()["cost"]
    assert cost["basis"] == "recorded"
    assert cost["per_1000_accepted"] == pytest.approx(1000 * 1.25 / 10)


CACHED_USAGE = {
    "version": 1,
    "stages": {
        "identify_classification": {
            "prompt_tokens": 3_000_000,
            "cached_prompt_tokens": 2_000_000,
            "completion_tokens": 100_000,
            "requests": 2500,
            "batch_requests": 1000,
            "batch_prompt_tokens": 1_200_000,
            "batch_cached_prompt_tokens": 1_000_000,
            "batch_completion_tokens": 40_000,
            "cost_usd": 0.5,
        }
    },
}


def test_cached_and_batch_tokens_are_priced_at_their_own_rates(tmp_path: Path) -> None:
    run_dir = build_run(tmp_path / "run", make_tasks(10), usage=CACHED_USAGE)
    prices = tmp_path / "prices.toml"
    prices.write_text(
        "prompt_price = 0.15\ncached_prompt_price = 0.075\ncompletion_price = 0.60\n"
        "batch_price_multiplier = 0.5\n"
    )
    result = stats.compute_stats(run_dir, load_prices(prices))
    row = result.to_json()["usage"]["stages"]["identify_classification"]
    # Streamed: 1.8M prompt of which 1M cached, 60K completion; batch: the rest, halved.
    streamed = (0.8 * 0.15 + 1.0 * 0.075 + 0.06 * 0.60) / 1
    batch = (0.2 * 0.15 + 1.0 * 0.075 + 0.04 * 0.60) / 2
    assert row["cost_usd"] == pytest.approx(streamed + batch)
    assert row["cached_share"] == pytest.approx(2 / 3)
    assert row["batch_requests"] == 1000
    text = stats.render_text(result)
    assert "66.7%" in text  # the cached share of the stage's prompt tokens
    assert "cost per 1,000 accepted tasks" in text


def test_a_models_table_is_picked_by_the_runs_model(tmp_path: Path) -> None:
    config = {"endpoints": [{"model": "small-1", "prompt_price": 9.0, "completion_price": 9.0}]}
    run_dir = build_run(tmp_path / "run", make_tasks(10), usage=USAGE, config=config)
    prices = tmp_path / "prices.toml"
    prices.write_text(
        '[models."small-1"]\nprompt_price = 1.0\ncompletion_price = 2.0\n'
        'cached_prompt_price = 0.5\n[models."big-2"]\nprompt_price = 10.0\n'
        "completion_price = 30.0\n[stages.generate_instances]\ncompletion_price = 0.0\n"
    )
    result = stats.compute_stats(run_dir, load_prices(prices)).to_json()
    assert result["prices"]["source"].endswith("[models.small-1]")
    usage = result["usage"]["stages"]
    assert usage["generate_instructions"]["cost_usd"] == pytest.approx(2.0 + 1.0)
    # A stage table changes only the prices it gives, on top of the model's.
    assert usage["generate_instances"]["cost_usd"] == pytest.approx(1.0)


def test_a_run_whose_model_no_table_prices_is_an_error_naming_file_and_key(
    tmp_path: Path,
) -> None:
    config = {"endpoints": [{"model": "other-3"}]}
    run_dir = build_run(tmp_path / "run", make_tasks(3), usage=USAGE, config=config)
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."small-1"]\nprompt_price = 1.0\n')
    with pytest.raises(StatsError) as raised:
        stats.compute_stats(run_dir, load_prices(prices))
    message = str(raised.value)
    assert message.startswith(f"{prices}: models:")
    assert "'other-3'" in message and "small-1" in message
    # With default prices as well, the default serves a model the file does not name.
    prices.write_text('prompt_price = 2.0\n[models."small-1"]\nprompt_price = 1.0\n')
    result = stats.compute_stats(run_dir, load_prices(prices)).to_json()
    assert result["prices"]["prompt_price"] == 2.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[models."m"]\nprompt_prise = 1\n', "models.m.prompt_prise: unknown key"),
        ("[models]\nm = 3\n", "models.m: expected a table"),
        ("batch_price_multiplier = 2\n", "batch_price_multiplier: must be between 0 and 1"),
        ("[stages.x]\ncached_prompt_price = -1\n", "stages.x.cached_prompt_price: must be"),
    ],
)
def test_bad_model_and_cache_prices_name_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(StatsError) as raised:
        load_prices(path)
    assert str(raised.value).startswith(str(path))
    assert message in str(raised.value)


def test_status_shows_cost_per_1000_accepted_tasks_and_the_cached_share(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"endpoints": [{"model": "small-1"}]}
    run_dir = build_run(tmp_path / "run", make_tasks(10), usage=CACHED_USAGE, config=config)
    assert cli_main(["status", str(run_dir), "--json"]) == 0
    recorded = json.loads(capsys.readouterr().out)["cost"]
    assert recorded["basis"] == "recorded"
    assert recorded["per_1000_accepted"] == pytest.approx(1000 * 0.5 / 10)
    assert recorded["stages"]["identify_classification"]["cached_share"] == pytest.approx(2 / 3)
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."small-1"]\nprompt_price = 1.0\n')
    assert cli_main(["status", str(run_dir), "--prices", str(prices)]) == 0
    text = capsys.readouterr().out
    # 1M uncached prompt tokens streamed at $1, 2M cached at $1 too (no cached price), 1.2M
    # of the 3M in batch at half: (1.8M + 0.6M) * $1 = $2.40 for 10 tasks.
    assert "cost per 1,000 accepted tasks: $240.0000 (priced)" in text
    assert "cached prompt tokens 66.7%" in text
