"""Stage 2 scored instead of parsed: a yes/no threshold calibrated on the seed tasks' labels.

A small model answers "Yes" to every "is this a classification task?" question, so a
parsed answer is right only as often as the question's answer is yes (about 15% of the
seeds). Where the backend gives probabilities, a score replaces the parsed word and a
threshold, chosen on the seeds' own labels, turns the score into yes or no:

``answer``
    log P(yes) - log P(no) for the first answer token, summed over the spellings
    (" Yes", "yes", ...) among the backend's top logprobs; the stage's own few-shot
    prompt, demonstrations fixed and the question last (llama.cpp reuses the prefix).
``likelihood``
    (the embedded model only) the mean log probability of the instruction's tokens after
    a numbered list of classification seeds, minus the same after a list of other seeds:
    which list the instruction reads as the next item of. SmolLM2-135M ranks the seeds by
    this nearly perfectly where its yes/no answer ranks them at chance.

Leave-one-out, twice over: a seed is never scored by a prompt that shows it (seeds shown
in the main demonstration set are scored with a second, disjoint set), and the accuracy
reported for a seed uses a threshold chosen without it. The run's threshold is the one
that maximises balanced accuracy over all seeds. The calibration is kept in the
checkpoint's ``meta`` table keyed by model, method and prompts, so a resumed run does not
calibrate again and a different model does. :func:`classifier_summary` reads it back for
``selfinstruct stats``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .checkpoint.store import Store
from .client.protocol import Completion
from .prompts import PromptTemplates, one_line
from .records import SeedTask

log = logging.getLogger(__name__)

#: The checkpoint ``meta`` key holding calibrations (by key) and the one last used.
META_KEY = "classification_calibration"

# Headers of the two lists the likelihood method continues. Plain, so that a small model
# reads the list items, not the header, as what makes the kinds differ.
LIKELIHOOD_HEADERS = (
    "Below is a numbered list of classification tasks: each sorts its input into one of "
    "a few fixed labels.\n",
    "Below is a numbered list of tasks whose answers are free text: writing, explaining, "
    "computing, listing.\n",
)


@dataclass(frozen=True, slots=True)
class Calibration:
    """A method's threshold and how well it labels the seeds (leave-one-out estimates)."""

    key: str
    model: str
    method: str
    threshold: float
    seeds: int
    seed_yes_share: float  # the labels' own share of classification tasks
    accuracy: float
    balanced_accuracy: float
    yes_share: float  # the share of seeds the classifier calls classification tasks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(**{name: data[name] for name in cls.__slots__})


# ---------------------------------------------------------------- thresholds


def _balanced(tp: int, positives: int, tn: int, negatives: int) -> float:
    recall_yes = tp / positives if positives else 1.0
    recall_no = tn / negatives if negatives else 1.0
    return (recall_yes + recall_no) / 2


def best_threshold(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """The threshold (yes when score > threshold) with the best balanced accuracy.

    Candidates are the midpoints between neighbouring distinct scores and one below
    the lowest; among equally good ones the middle one is taken, away from both edges.
    """
    if not scores:
        return 0.0
    pairs = sorted(zip(scores, labels, strict=True))
    positives = sum(labels)
    negatives = len(labels) - positives
    # Everything above the threshold is yes: start with all yes, move it up one score at a time.
    tp, tn = positives, 0
    best: list[float] = []
    best_value = -1.0
    candidates: list[tuple[float, float]] = [
        (pairs[0][0] - 1.0, _balanced(tp, positives, tn, negatives))
    ]
    for i, (score, label) in enumerate(pairs):
        if label:
            tp -= 1
        else:
            tn += 1
        following = pairs[i + 1][0] if i + 1 < len(pairs) else score + 1.0
        if following != score:  # the threshold sits between two distinct scores
            candidates.append(((score + following) / 2, _balanced(tp, positives, tn, negatives)))
    for threshold, value in candidates:
        if value > best_value + 1e-12:
            best_value, best = value, [threshold]
        elif abs(value - best_value) <= 1e-12:
            best.append(threshold)
    return best[len(best) // 2]


def leave_one_out(scores: Sequence[float], labels: Sequence[bool]) -> list[bool]:
    """Each seed's label from a threshold chosen on all the other seeds."""
    predictions = []
    for i, score in enumerate(scores):
        others = [s for j, s in enumerate(scores) if j != i]
        other_labels = [x for j, x in enumerate(labels) if j != i]
        predictions.append(score > best_threshold(others, other_labels))
    return predictions


def calibrate(
    scores: Sequence[float], labels: Sequence[bool], *, key: str, model: str, method: str
) -> Calibration:
    """The run's threshold (all seeds) with its leave-one-out accuracy and yes share."""
    predicted = leave_one_out(scores, labels)
    n = len(labels)
    positives = sum(labels)
    tp = sum(p and x for p, x in zip(predicted, labels, strict=True))
    tn = sum(not p and not x for p, x in zip(predicted, labels, strict=True))
    return Calibration(
        key=key,
        model=model,
        method=method,
        threshold=best_threshold(scores, labels),
        seeds=n,
        seed_yes_share=positives / n if n else 0.0,
        accuracy=(tp + tn) / n if n else 0.0,
        balanced_accuracy=_balanced(tp, positives, tn, n - positives),
        yes_share=sum(predicted) / n if n else 0.0,
    )


# ---------------------------------------------------------------- answer scores


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def answer_score(completion: Completion, templates: PromptTemplates | None = None) -> float | None:
    """log P(yes) - log P(no) at the first answer position; ``None`` without logprobs.

    Every spelling of the answer words counts ("Yes", " yes", "YES"). When one answer is
    missing from the top tokens it is given half the least likely listed one's
    probability: the most it could have had, halved; when both are missing, ``None``.
    """
    if not completion.choices or not completion.choices[0].top_logprobs:
        return None
    yes_word = (templates.answer_yes if templates else "Yes").strip().lower()
    no_word = (templates.answer_no if templates else "No").strip().lower()
    first = completion.choices[0].top_logprobs[0]
    if not first:
        return None
    yes = [lp for token, lp in first.items() if token.strip().lower() == yes_word]
    no = [lp for token, lp in first.items() if token.strip().lower() == no_word]
    if not yes and not no:
        return None
    floor = min(first.values()) - math.log(2)
    return (_logsumexp(yes) if yes else floor) - (_logsumexp(no) if no else floor)


def leave_out(
    demonstrations: Sequence[tuple[str, bool]], instruction: str, seeds: Sequence[SeedTask]
) -> list[tuple[str, bool]]:
    """``demonstrations`` with ``instruction`` swapped for another seed of the same label."""
    shown = {text for text, _ in demonstrations}
    if instruction not in shown:
        return list(demonstrations)
    label = next(is_clf for text, is_clf in demonstrations if text == instruction)
    spare = next(
        (
            s.instruction
            for s in seeds
            if s.is_classification == label and s.instruction not in shown
        ),
        None,
    )
    return [
        (spare, is_clf) if text == instruction and spare is not None else (text, is_clf)
        for text, is_clf in demonstrations
        if spare is not None or text != instruction
    ]


# ---------------------------------------------------------------- likelihood scores


@runtime_checkable
class TextScorer(Protocol):
    """A backend that can say how likely texts are after a prefix (the embedded model)."""

    async def score_texts(self, prefix: str, texts: Sequence[str]) -> Sequence[Any]:
        """Per text, an object with ``logprob`` (summed) and ``tokens`` (its length)."""
        ...


def _spread(items: Sequence[str], count: int, offset: float = 0.0) -> list[str]:
    """``count`` items spread evenly over ``items``, starting ``offset`` of a step in."""
    if count <= 0 or not items:
        return []
    step = len(items) / count
    return [items[int((i + offset) * step) % len(items)] for i in range(count)]


def _numbered(header: str, items: Sequence[str]) -> str:
    lines = [header] + [f"{n}. {one_line(text)}\n" for n, text in enumerate(items, start=1)]
    return "".join(lines) + f"{len(items) + 1}."


@dataclass(frozen=True, slots=True)
class LikelihoodPrompts:
    """The two list prefixes, in a main set and a disjoint spare set for the seeds shown."""

    main: tuple[str, str]  # (classification list, other list)
    spare: tuple[str, str]
    shown: frozenset[str]  # instructions the main set shows

    @classmethod
    def from_seeds(cls, seeds: Sequence[SeedTask], k: int) -> LikelihoodPrompts:
        yes = [s.instruction for s in seeds if s.is_classification]
        no = [s.instruction for s in seeds if not s.is_classification]
        k_yes, k_no = min(k, len(yes) // 2), min(k, len(no) // 2)
        main_yes, main_no = _spread(yes, k_yes), _spread(no, k_no)
        rest_yes = [t for t in yes if t not in main_yes]
        rest_no = [t for t in no if t not in main_no]
        spare_yes, spare_no = _spread(rest_yes, k_yes), _spread(rest_no, k_no)
        return cls(
            main=(
                _numbered(LIKELIHOOD_HEADERS[0], main_yes),
                _numbered(LIKELIHOOD_HEADERS[1], main_no),
            ),
            spare=(
                _numbered(LIKELIHOOD_HEADERS[0], spare_yes),
                _numbered(LIKELIHOOD_HEADERS[1], spare_no),
            ),
            shown=frozenset(main_yes + main_no),
        )


def _item(instruction: str) -> str:
    return f" {one_line(instruction)}\n"


async def likelihood_scores(
    scorer: TextScorer, prefixes: tuple[str, str], instructions: Sequence[str]
) -> list[float]:
    """Mean token log probability after the classification list minus after the other."""
    items = [_item(text) for text in instructions]
    yes = await scorer.score_texts(prefixes[0], items)
    no = await scorer.score_texts(prefixes[1], items)
    return [
        y.logprob / max(1, y.tokens) - n.logprob / max(1, n.tokens)
        for y, n in zip(yes, no, strict=True)
    ]


async def likelihood_seed_scores(
    scorer: TextScorer, prompts: LikelihoodPrompts, seeds: Sequence[SeedTask]
) -> list[float]:
    """Every seed's score, each from a prompt that does not show it."""
    unseen = [i for i, s in enumerate(seeds) if s.instruction not in prompts.shown]
    shown = [i for i, s in enumerate(seeds) if s.instruction in prompts.shown]
    scores: dict[int, float] = {}
    for indices, prefixes in ((unseen, prompts.main), (shown, prompts.spare)):
        if indices:
            values = await likelihood_scores(
                scorer, prefixes, [seeds[i].instruction for i in indices]
            )
            scores.update(zip(indices, values, strict=True))
    return [scores[i] for i in range(len(seeds))]


# ---------------------------------------------------------------- the cache


def calibration_key(method: str, model: str, prompt_material: Sequence[str]) -> str:
    """What a calibration depends on: method, model and every prompt text it used."""
    body = json.dumps([method, model, list(prompt_material)], ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


def stored_calibration(store: Store, key: str) -> Calibration | None:
    saved = store.get_meta(META_KEY, {}) or {}
    found = (saved.get("calibrations") or {}).get(key)
    return Calibration.from_dict(found) if isinstance(found, dict) else None


def save_calibration(store: Store, calibration: Calibration) -> None:
    """Keep ``calibration`` by its key and mark it as the run's current one."""
    saved = store.get_meta(META_KEY, {}) or {}
    calibrations = dict(saved.get("calibrations") or {})
    calibrations[calibration.key] = calibration.to_dict()
    store.set_meta(META_KEY, {"current": calibration.key, "calibrations": calibrations})


# ---------------------------------------------------------------- stats


def classifier_summary(run: Path | str | Store) -> dict[str, Any]:
    """How stage 2 labels the seed tasks for the run's model: the current calibration.

    ``{"scored": False, "method": "text"}`` when the run parsed answers (no calibration).
    Accuracy, balanced accuracy and yes share are leave-one-out estimates on the seeds.
    """
    if isinstance(run, Store):
        saved = run.get_meta(META_KEY, {}) or {}
    else:
        with Store(Path(run), read_only=True) as store:
            saved = store.get_meta(META_KEY, {}) or {}
    current = (saved.get("calibrations") or {}).get(saved.get("current"))
    if not isinstance(current, dict):
        return {"scored": False, "method": "text"}
    calibration = Calibration.from_dict(current)
    return {"scored": True} | calibration.to_dict()


def classifier_lines(summary: dict[str, Any]) -> list[str]:
    """The summary as ``selfinstruct stats`` text lines."""
    if not summary.get("scored"):
        return ["classifier: answers parsed as text (no probabilities to score)"]
    return [
        f"classifier: scored by {summary['method']} for {summary['model']}, "
        f"threshold {summary['threshold']:.3f}",
        f"  on {summary['seeds']} seed tasks (leave-one-out): accuracy "
        f"{summary['accuracy']:.3f}, balanced accuracy {summary['balanced_accuracy']:.3f}, "
        f"yes share {summary['yes_share']:.3f} (labels: {summary['seed_yes_share']:.3f})",
    ]
