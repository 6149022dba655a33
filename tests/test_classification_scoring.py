"""Stage 2 scored: thresholds, leave-one-out, answer scores, prompts that never show the
seed they score, and the calibration kept in the checkpoint and read back for stats."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.classification_scoring import (
    LIKELIHOOD_HEADERS,
    Calibration,
    LikelihoodPrompts,
    answer_score,
    best_threshold,
    calibrate,
    classifier_lines,
    classifier_summary,
    leave_one_out,
    leave_out,
    likelihood_seed_scores,
    save_calibration,
    stored_calibration,
)
from selfinstruct_async.client.protocol import Choice, Completion, TextScore
from selfinstruct_async.records import Instance, SeedTask


def seed(text: str, is_classification: bool) -> SeedTask:
    return SeedTask(
        id=text[:10],
        name=text[:10],
        instruction=text,
        is_classification=is_classification,
        instances=(Instance("", "x"),),
    )


def test_the_threshold_maximises_balanced_accuracy_not_plain_accuracy() -> None:
    # 2 yes among 10: "always no" is 80% accurate but only 0.5 balanced.
    scores = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9, 0.7, 1.0]
    labels = [False] * 7 + [True, False, True]
    threshold = best_threshold(scores, labels)
    predicted = [s > threshold for s in scores]
    assert predicted[7] and predicted[9]  # both yes found
    assert sum(predicted) <= 3  # at most the one no that scores between them


def test_a_seed_is_judged_by_a_threshold_chosen_without_it() -> None:
    # Seed 0 (yes, 3.0) alone pulls the all-seeds threshold below it; without it the
    # threshold moves above 3.5 and seed 0 is called no: the estimate is honest.
    scores = [3.0, 4.0, 5.0, 0.0, 1.0, 2.0, 3.5]
    labels = [True, True, True, False, False, False, False]
    assert scores[0] > best_threshold(scores, labels)
    assert leave_one_out(scores, labels)[0] is False
    calibration = calibrate(scores, labels, key="k", model="m", method="answer")
    assert calibration.balanced_accuracy < 0.875  # the in-sample figure
    assert calibration.seeds == 7 and calibration.seed_yes_share == pytest.approx(3 / 7)


def test_answer_scores_sum_every_spelling_and_bound_a_missing_answer() -> None:
    def completion(tops: dict[str, float]) -> Completion:
        return Completion((Choice(" Yes", "length", (tops,)),))

    both = answer_score(
        completion({" Yes": math.log(0.3), "yes": math.log(0.1), " No": math.log(0.2)})
    )
    assert both == pytest.approx(math.log(0.4) - math.log(0.2))
    # "No" is not among the top tokens: it had less than the least likely one listed.
    only_yes = answer_score(completion({" Yes": math.log(0.6), " The": math.log(0.1)}))
    assert only_yes == pytest.approx(math.log(0.6) - (math.log(0.1) - math.log(2)))
    assert answer_score(completion({" The": -1.0, " A": -2.0})) is None
    assert answer_score(Completion((Choice(" Yes", "stop"),))) is None  # no logprobs at all


def test_leave_out_swaps_a_shown_seed_for_an_unshown_one_of_its_label() -> None:
    seeds = [seed(f"task {i}", i % 2 == 0) for i in range(8)]
    shown = [("task 0", True), ("task 1", False), ("task 2", True), ("task 3", False)]
    swapped = leave_out(shown, "task 2", seeds)
    assert "task 2" not in [t for t, _ in swapped]
    assert [label for _, label in swapped] == [label for _, label in shown]
    assert leave_out(shown, "task 7", seeds) == shown  # not shown: unchanged


@dataclass
class RecordingScorer:
    """Scores an item by its label's keyword and records every prefix it was given."""

    calls: list[tuple[str, list[str]]] = field(default_factory=list)

    async def score_texts(self, prefix: str, texts: Sequence[str]) -> list[TextScore]:
        self.calls.append((prefix, list(texts)))
        yes_list = prefix.startswith(LIKELIHOOD_HEADERS[0])
        return [TextScore(-1.0 if ("Classify" in text) == yes_list else -3.0, 2) for text in texts]


@pytest.mark.anyio
async def test_no_seed_is_scored_by_a_prompt_that_shows_it() -> None:
    seeds = [seed(f"Classify item {i} by colour", True) for i in range(12)]
    seeds += [seed(f"Write a poem about thing {i}", False) for i in range(30)]
    prompts = LikelihoodPrompts.from_seeds(seeds, 4)
    def items(prefix: str) -> set[str]:
        return {line.split(". ", 1)[1] for line in prefix.splitlines() if ". " in line[:4]}

    for main, spare in zip(prompts.main, prompts.spare, strict=True):
        assert items(main) and items(spare) and not items(main) & items(spare)
    scorer = RecordingScorer()
    scores = await likelihood_seed_scores(scorer, prompts, seeds)
    scored = 0
    for prefix, texts in scorer.calls:
        for text in texts:
            assert f". {text.strip()}\n" not in prefix
            scored += 1
    assert scored == 2 * len(seeds)  # each seed after both lists
    assert all((s > 0) == task.is_classification for s, task in zip(scores, seeds, strict=True))


def test_calibrations_are_kept_per_key_and_the_current_one_is_summarised(tmp_path: Path) -> None:
    first = Calibration("a", "m1.gguf", "likelihood", 0.4, 175, 0.154, 0.96, 0.961, 0.183)
    second = Calibration("b", "m2.gguf", "answer", -0.2, 175, 0.154, 0.7, 0.72, 0.4)
    with Store(tmp_path) as store:
        assert classifier_summary(store) == {"scored": False, "method": "text"}
        save_calibration(store, first)
        save_calibration(store, second)
        assert stored_calibration(store, "a") == first
        assert stored_calibration(store, "c") is None
    summary = classifier_summary(tmp_path)  # read back from the run directory
    assert summary["scored"] and summary["model"] == "m2.gguf" and summary["method"] == "answer"
    assert summary["balanced_accuracy"] == 0.72 and summary["yes_share"] == 0.4
    lines = classifier_lines(summary)
    assert "scored by answer for m2.gguf" in lines[0]
    assert "balanced accuracy 0.720" in lines[1] and "yes share 0.400" in lines[1]
    assert "parsed as text" in classifier_lines({"scored": False, "method": "text"})[0]
