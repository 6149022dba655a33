"""Answers that arrive but yield nothing usable stop the run instead of looping forever.

Issue 18, item 3. A provider that echoes the prompt or answers ``"text": null`` returns
200s that parse to nothing; before, the run bought tens of thousands of them with nothing
logged. Whole runs over real HTTP on loopback (the simulator with the echo responder, a
scripted provider answering null), the CLI in a subprocess, and the guard on its own.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from selfinstruct_async import counters as names
from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.config import Config, load_config
from selfinstruct_async.errors import UselessAnswers
from selfinstruct_async.parsing import parse_classification
from selfinstruct_async.prompts import DEFAULT_TEMPLATES as T
from selfinstruct_async.run.answer_guard import AnswerGuard, quote_sample
from selfinstruct_async.run.runner import run
from selfinstruct_async.simulator.responder import respond
from selfinstruct_async.simulator.server import echo_respond
from selfinstruct_async.stages.generate_instructions import STAGE as GENERATE
from selfinstruct_async.stages.identify_classification import MAX_TRIES
from selfinstruct_async.stages.identify_classification import STAGE as CLASSIFY
from tests.fixtures.simulator import MakeSimulator
from tests.test_failed_requests import (
    ScriptedProvider,
    find_error,
    serving,
    task_of,
    task_rejections,
    task_rows,
)
from tests.test_faults import assert_one_line_error, env

pytestmark = pytest.mark.anyio

HINT = "check the model and --api (completions vs chat)"
# Without the guard these runs would never end; a token budget stops them instead, so a
# regression fails (stopped by the budget, thousands of requests) rather than hangs.
BUDGET = 400_000


def config(base_url: str, out: Path, target: int = 10, **run_fields: object) -> Config:
    return load_config(
        overrides={
            "run": {"out": str(out), "target": target, **run_fields},
            "endpoint": {"base_url": base_url, "model": "sim"},
        }
    )


async def stopped_by_useless_answers(config: Config) -> UselessAnswers:
    with pytest.raises(BaseException) as raised:
        await run(config)
    error = find_error(raised.value)
    assert isinstance(error, UselessAnswers), raised.value
    return error


# -- the guard on its own --------------------------------------------------------------


def test_the_streak_stops_at_its_limit_and_quotes_the_last_answer_on_one_line() -> None:
    guard = AnswerGuard(max_streak=3, max_share=1.0, window=100)
    guard.record("generate_instructions", False, "first")
    guard.record("generate_instructions", False, "second")
    with pytest.raises(UselessAnswers) as raised:
        guard.record("generate_instructions", False, "1. echo\n\x1b[31mred\t" + "x" * 300)
    message = str(raised.value)
    assert message.startswith(
        "3 answers in a row from generate_instructions yielded nothing usable; "
        "last answer: '1. echo\\n\\x1b[31mred\\t"
    )
    assert message.endswith(f"'...; {HINT}")
    assert "\n" not in message and "\x1b" not in message and len(message) < 300


def test_a_usable_answer_ends_the_streak_and_stages_count_apart() -> None:
    guard = AnswerGuard(max_streak=3, max_share=1.0, window=100)
    for _ in range(10):
        guard.record("generate_instructions", False, "")
        guard.record("identify_classification", False, "")
        guard.record("generate_instructions", True, "1. ok")
        guard.record("identify_classification", True, "Yes")
    assert guard.streak("generate_instructions") == 0


def test_useless_answers_replayed_from_the_ledger_neither_extend_nor_reset_a_streak() -> None:
    # A resume asks its pending tasks again: the first ask of each replays the useless
    # answer the earlier session already judged. Many such tasks must not stop the run.
    guard = AnswerGuard(max_streak=3, max_share=0.5, window=10)
    guard.record("identify_classification", False, "maybe")
    for _ in range(50):
        guard.record("identify_classification", False, "maybe", replayed=True)
    assert guard.streak("identify_classification") == 1
    guard.record("identify_classification", False, "maybe")
    with pytest.raises(UselessAnswers):
        guard.record("identify_classification", False, "maybe")  # fresh answers still count


def test_the_share_counts_only_once_the_window_is_full() -> None:
    guard = AnswerGuard(max_streak=1000, max_share=0.5, window=10)
    pattern = [False, False, True]  # two useless answers of every three, never many in a row
    for n in range(9):
        guard.record("generate_instances", pattern[n % 3], "")
    with pytest.raises(UselessAnswers, match=r"^7 of the last 10 answers from generate_instances"):
        guard.record("generate_instances", pattern[9 % 3], "")


def test_the_first_useless_answer_of_a_streak_is_logged_with_its_sample(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = AnswerGuard(max_streak=100, max_share=1.0, window=100)
    with caplog.at_level(logging.WARNING, logger="selfinstruct_async"):
        for text in ("echo one", "echo two", "echo three"):
            guard.record("generate_instructions", False, text)
        guard.record("generate_instructions", True, "1. fine")
        guard.record("generate_instructions", False, "echo four")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "an answer from generate_instructions yielded nothing usable: 'echo one'",
        "an answer from generate_instructions yielded nothing usable: 'echo four'",
    ]


def test_samples_escape_control_characters_and_say_when_they_are_cut() -> None:
    assert quote_sample("") == "''"
    assert quote_sample("it's\r\n\x00\u2028") == "'it\\'s\\r\\n\\x00\\u2028'"
    assert quote_sample("é" * 200) == "'" + "é" * 120 + "'..."


# -- whole runs --------------------------------------------------------------------------


async def test_an_echoing_provider_stops_the_run_after_the_streak(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(responder=echo_respond)
    out = tmp_path / "run"
    error = await stopped_by_useless_answers(
        config(handle.base_url, out, max_useless_streak=20, max_tokens_budget=BUDGET)
    )

    assert error.stage == GENERATE
    assert str(error).startswith(
        "20 answers in a row from generate_instructions yielded nothing usable; "
        "last answer: 'Below is a numbered list"
    )
    # Bounded: the streak, plus at most one answer in flight per generation worker.
    workers = config(handle.base_url, out).generation.workers
    assert 20 <= handle.stats.requests <= 20 + workers
    with Store(out, read_only=True) as store:
        counters = store.counters()
    assert counters[names.useless(GENERATE)] >= 20


async def test_a_provider_answering_null_text_stops_the_run(tmp_path: Path) -> None:
    provider = ScriptedProvider(null_text=True)
    async with serving(provider) as base_url:
        error = await stopped_by_useless_answers(
            config(base_url, tmp_path / "run", max_useless_streak=15, max_tokens_budget=BUDGET)
        )
    assert str(error) == (
        f"15 answers in a row from generate_instructions yielded nothing usable; "
        f"last answer: ''; {HINT}"
    )
    assert 15 <= len(provider.exchanges) <= 15 + 4


async def test_a_mostly_useless_provider_is_stopped_by_the_share_over_the_window(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    answers = Counter[str]()

    def useful_one_time_in_four(
        prompt: str, system: str, *, chat: bool, max_tokens: int, seed: int = 0
    ) -> tuple[str, str]:
        if T.instruction_header in prompt:
            answers["generation"] += 1
            if answers["generation"] % 4:
                return echo_respond(prompt, system, chat=chat, max_tokens=max_tokens)
        return respond(prompt, system, chat=chat, max_tokens=max_tokens, seed=seed)

    handle = await make_simulator(responder=useful_one_time_in_four)
    run_config = config(
        handle.base_url, tmp_path / "run", target=500, useless_window=24, max_useless_share=0.5
    )
    error = await stopped_by_useless_answers(run_config)
    assert re.match(
        r"\d+ of the last 24 answers from generate_instructions yielded nothing usable "
        r"\(more than 50%\); last answer: 'Below is a numbered list",
        str(error),
    )
    assert 24 <= answers["generation"] <= 24 + run_config.generation.workers


class FirstAnswerUnsure:
    """The simulator's answers, but every task's first classification answer is "Maybe",
    and the first task asked about never gets another answer."""

    def __init__(self) -> None:
        self.asked = Counter[str]()
        self.hopeless: str | None = None
        self.labels: dict[str, bool | None] = {}

    def __call__(
        self, prompt: str, system: str, *, chat: bool, max_tokens: int, seed: int = 0
    ) -> tuple[str, str]:
        if T.classification_header not in prompt:
            return respond(prompt, system, chat=chat, max_tokens=max_tokens, seed=seed)
        task = task_of(prompt)
        self.hopeless = self.hopeless or task
        self.asked[task] += 1
        if self.asked[task] == 1 or task == self.hopeless:
            return " Maybe", "stop"
        text, finish = respond(prompt, system, chat=chat, max_tokens=max_tokens, seed=seed)
        self.labels[task] = parse_classification(text)
        return text, finish


async def test_an_unreadable_classification_answer_is_asked_again_never_taken_as_no(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    model = FirstAnswerUnsure()
    handle = await make_simulator(responder=model)
    out = tmp_path / "run"
    summary = await run(config(handle.base_url, out, target=10, retry_failed_after=0))

    assert summary.reached_target
    labelled = [row for row in task_rows(out) if row["is_classification"] is not None]
    assert len(labelled) >= 10
    for row in labelled:
        assert model.asked[row["instruction"]] >= 2
        assert model.labels[row["instruction"]] == bool(row["is_classification"])
    # The task whose answers never say yes or no is rejected after a few tries, saying why.
    assert model.hopeless is not None and model.asked[model.hopeless] == MAX_TRIES
    [hopeless] = [r for r in task_rejections(out) if r["text"] == model.hopeless]
    assert hopeless["filter"] == "unreadable_classification"
    assert hopeless["reason"] == (
        f"{MAX_TRIES} answers to the classification question said neither yes nor no; "
        "last: ' Maybe'"
    )
    with Store(out, read_only=True) as store:
        counters = store.counters()
    # Every unreadable answer was counted as useless; none became a label.
    assert counters[names.useless(CLASSIFY)] == counters[names.classification(None)]
    assert counters[names.useless(CLASSIFY)] >= len(labelled) + MAX_TRIES
    labels = counters.get(names.classification(True), 0)
    labels += counters.get(names.classification(False), 0)
    assert labels == len(labelled)


async def test_the_cli_stops_an_echoing_provider_with_one_line_and_exit_1(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(responder=echo_respond)
    command = [
        sys.executable, "-m", "selfinstruct_async", "run", "--out", str(tmp_path / "run"),
        "--base-url", handle.base_url, "--model", "sim", "--target", "5",
    ]  # fmt: skip
    environ = {**env(), "SELFINSTRUCT_RUN_MAX_TOKENS_BUDGET": str(BUDGET)}
    done = await anyio.run_process(command, check=False, env=environ)
    result = subprocess.CompletedProcess(
        command, done.returncode, done.stdout.decode(), done.stderr.decode()
    )
    assert_one_line_error(
        result,
        "selfinstruct: error: 50 answers in a row from generate_instructions yielded nothing "
        "usable; last answer: 'Below is a numbered list of varied things",
    )
    assert result.stderr.rstrip().endswith(HINT)
    # Warned while it happened, so a user tailing the log sees it before the stop.
    assert "an answer from generate_instructions yielded nothing usable: 'Below" in result.stderr
    assert 50 <= handle.stats.requests <= 54
