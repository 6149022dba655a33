"""Stage 2: a few-shot yes/no question, is this a classification task with finite labels?

Only an answer decides: a failed request leaves the task pending for another try, and
so does an answer that says neither yes nor no. The next try asks with the
demonstrations in another order (a different prompt, so neither the request ledger nor
a deterministic model hands back the same unreadable answer); after ``MAX_TRIES``
unreadable answers the task is rejected, naming the last one.

Where the backend gives probabilities (``classification.scoring``, see
:mod:`selfinstruct_async.classification_scoring`), the first task to arrive calibrates a
threshold on the seeds (or finds it in the checkpoint) and every task is decided by its
score; an answer that comes back without probabilities is read as text.
"""

from __future__ import annotations

import logging
import random
import weakref
from dataclasses import dataclass, field, replace

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import counters as names
from ..answer_formats import YES_NO, usable_format
from ..classification_scoring import (
    Calibration,
    LikelihoodPrompts,
    TextScorer,
    answer_score,
    calibrate,
    calibration_key,
    leave_out,
    likelihood_scores,
    likelihood_seed_scores,
    save_calibration,
    stored_calibration,
)
from ..client.protocol import Completion, CompletionRequest
from ..parsing import parse_classification
from ..prompts import build_classification_prompt
from ..records import PendingTask
from ..run.answer_guard import quote_sample
from ..run.context import RunContext
from ..run.failures import REQUEST_REFUSED, RequestFailed
from ..run.retry_queue import RetryQueue

STAGE = names.IDENTIFY_CLASSIFICATION
UNREADABLE = "unreadable_classification"
MAX_TRIES = 3
PAPER_YES = frozenset({"Yes", "yes", "YES"})
# Seed scores needed to calibrate: fewer (failed requests) and the stage parses text.
MIN_CALIBRATION_SEEDS = 10

log = logging.getLogger(__name__)


async def identify_classification(
    ctx: RunContext,
    receive: MemoryObjectReceiveStream[PendingTask],
    send: MemoryObjectSendStream[PendingTask],
    retry: RetryQueue[PendingTask],
) -> None:
    """Label each pending task from the model's yes or no; pass on only labelled tasks.

    A task whose request failed, or whose answer was unreadable, goes to ``retry``.
    """
    async with receive, send:
        async for task in receive:
            if task.is_classification is None:
                classifier = await classifier_for(ctx)
                answer = await classifier.classify(ctx, task, retry)
                if answer is None:
                    continue  # deferred or rejected: nothing to pass on now
                await ctx.db(ctx.store.set_classification, task.id, answer)
                # Counted once stored: a run cancelled in between must not count a lost label.
                ctx.count(names.classification(answer))
                task = replace(task, is_classification=answer)
            await send.send(task)


def read_answer(text: str, parser: str) -> bool | None:
    """The label an answer gives; ``None`` when the tolerant parser finds neither yes nor no.

    The paper's reading is exact: "Yes" in one of three spellings is yes, anything else
    (an unreadable answer included) is no.
    """
    if parser == "paper":
        return text.strip() in PAPER_YES
    return parse_classification(text)


def demonstrations_for(ctx: RunContext, task: PendingTask, tries: int) -> list[tuple[str, bool]]:
    """The run's demonstrations; reordered per task for each try after an unreadable answer."""
    demonstrations = list(ctx.classification_demonstrations)
    if tries:
        random.Random(f"{ctx.config.run.seed}:{task.id}:{tries}").shuffle(demonstrations)
    return demonstrations


@dataclass
class Classifier:
    """How this run decides yes or no: ``method`` and, when scored, its calibration."""

    method: str = "text"
    calibration: Calibration | None = None
    scorer: TextScorer | None = None
    likelihood: LikelihoodPrompts | None = None

    async def classify(
        self, ctx: RunContext, task: PendingTask, retry: RetryQueue[PendingTask]
    ) -> bool | None:
        """The task's label, or ``None`` when it was deferred or rejected instead."""
        if self.calibration is None:
            return await _classify(ctx, task, retry)
        if self.method == "likelihood":
            assert self.scorer is not None and self.likelihood is not None
            ctx.count(names.requests(STAGE))
            (score,) = await likelihood_scores(
                self.scorer, self.likelihood.main, [task.instruction]
            )
            ctx.answered(STAGE, True, f"{score:.3f}")
            return score > self.calibration.threshold
        return await _classify(ctx, task, retry, threshold=self.calibration.threshold)


@dataclass
class _Slot:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    classifier: Classifier | None = None


# One classifier per run, made by the first worker to need it; keyed by the context's id
# (it is not hashable) and dropped with the context.
_SLOTS: dict[int, _Slot] = {}


async def classifier_for(ctx: RunContext) -> Classifier:
    """The run's classifier, calibrated (or read from the checkpoint) on first use."""
    slot = _SLOTS.get(id(ctx))
    if slot is None:
        slot = _SLOTS[id(ctx)] = _Slot()
        weakref.finalize(ctx, _SLOTS.pop, id(ctx), None)
    async with slot.lock:
        if slot.classifier is None:
            slot.classifier = await _make_classifier(ctx)
        return slot.classifier


def _inner_client(ctx: RunContext) -> object:
    # The ledger wraps the backend; scoring by likelihood talks to the backend itself.
    return getattr(ctx.client, "inner", ctx.client)


def _model_identity(ctx: RunContext, backend: object) -> str:
    model_path = getattr(backend, "model_path", None)
    if model_path is not None:
        size = model_path.stat().st_size if model_path.is_file() else 0
        return f"{model_path.name}:{size}@{ctx.config.local.api}"
    return "|".join(f"{e.model}@{e.api}" for e in ctx.config.endpoints) or "unknown"


async def _make_classifier(ctx: RunContext) -> Classifier:
    scoring = ctx.config.classification.scoring
    if scoring == "text":
        return Classifier()
    backend = _inner_client(ctx)
    model = _model_identity(ctx, backend)
    if scoring in ("auto", "likelihood") and isinstance(backend, TextScorer):
        prompts = LikelihoodPrompts.from_seeds(
            ctx.seeds, ctx.config.classification.likelihood_demonstrations
        )
        key = calibration_key("likelihood", model, [*prompts.main, *prompts.spare])
        calibration = await ctx.db(stored_calibration, ctx.store, key)
        if calibration is None:
            log.info("calibrating the classifier on %d seed tasks (likelihood)", len(ctx.seeds))
            scores = await likelihood_seed_scores(backend, prompts, ctx.seeds)
            labels = [s.is_classification for s in ctx.seeds]
            calibration = calibrate(scores, labels, key=key, model=model, method="likelihood")
        await ctx.db(save_calibration, ctx.store, calibration)
        _log_calibration(calibration)
        return Classifier("likelihood", calibration, backend, prompts)
    if scoring == "auto":
        # An endpoint may or may not return logprobs, and asking costs a request that a
        # provider's quirks could turn into a rejected task: endpoints opt in ("answer").
        return Classifier()
    if scoring == "likelihood":
        log.warning(
            "classification.scoring = 'likelihood' needs the embedded model; "
            "scoring the yes and no answers instead"
        )
    return await _answer_classifier(ctx, model)


async def _answer_classifier(ctx: RunContext, model: str) -> Classifier:
    demonstrations = ctx.classification_demonstrations
    prompts = [
        build_classification_prompt(
            s.instruction, leave_out(demonstrations, s.instruction, ctx.seeds), ctx.templates
        ).text
        for s in ctx.seeds
    ]
    key = calibration_key("answer", model, [*prompts, str(ctx.config.classification.top_logprobs)])
    calibration = await ctx.db(stored_calibration, ctx.store, key)
    if calibration is None:
        log.info("calibrating the classifier on %d seed tasks (answer logprobs)", len(ctx.seeds))
        scores: dict[int, float] = {}
        missing = 0
        limiter = anyio.CapacityLimiter(ctx.config.classification.workers)

        async def score(i: int) -> None:
            nonlocal missing
            async with limiter:
                seed = ctx.seeds[i]
                prompt = build_classification_prompt(
                    seed.instruction,
                    leave_out(demonstrations, seed.instruction, ctx.seeds),
                    ctx.templates,
                )
                result = await ctx.complete(
                    _scored_request(ctx, prompt.request(STAGE, ctx.config.classification))
                )
            value = (
                None if isinstance(result, RequestFailed) else answer_score(result, ctx.templates)
            )
            if value is None:
                missing += 1
            else:
                scores[i] = value

        # One seed first: a backend that gives no probabilities costs one request, not 175.
        await score(0)
        if not scores:
            log.info("the classifier parses answers as text: the backend gave no logprobs")
            return Classifier()
        async with anyio.create_task_group() as group:
            for i in range(1, len(ctx.seeds)):
                group.start_soon(score, i)
        kept = sorted(scores)
        labels = [ctx.seeds[i].is_classification for i in kept]
        if len(kept) < MIN_CALIBRATION_SEEDS or all(labels) or not any(labels):
            log.info(
                "the classifier parses answers as text: %d of %d seed answers came back "
                "without yes/no probabilities",
                missing,
                len(ctx.seeds),
            )
            return Classifier()
        calibration = calibrate(
            [scores[i] for i in kept], labels, key=key, model=model, method="answer"
        )
    await ctx.db(save_calibration, ctx.store, calibration)
    _log_calibration(calibration)
    return Classifier("answer", calibration)


def _log_calibration(calibration: Calibration) -> None:
    log.info(
        "classifier (%s) on %d seeds, leave-one-out: balanced accuracy %.3f, yes share %.3f",
        calibration.method,
        calibration.seeds,
        calibration.balanced_accuracy,
        calibration.yes_share,
    )


def _scored_request(ctx: RunContext, request: CompletionRequest) -> CompletionRequest:
    """One token with its top logprobs: the first answer token is all the score reads."""
    return replace(
        request, max_tokens=1, logprobs=ctx.config.classification.top_logprobs, answer_format=""
    )


def _decide(completion: Completion, ctx: RunContext, threshold: float | None) -> bool | None:
    if threshold is not None:
        score = answer_score(completion, ctx.templates)
        if score is not None:
            return score > threshold
    return read_answer(completion.text, ctx.config.classification.parser)


async def _classify(
    ctx: RunContext,
    task: PendingTask,
    retry: RetryQueue[PendingTask],
    *,
    threshold: float | None = None,
) -> bool | None:
    """The model's label, or ``None`` when the task was deferred or rejected instead.

    With a ``threshold`` the answer is scored; an answer without probabilities is read.
    """
    tries = ctx.useless_tries.get(task.id, 0)
    prompt = build_classification_prompt(
        task.instruction, demonstrations_for(ctx, task, tries), ctx.templates
    )
    request = replace(
        prompt.request(STAGE, ctx.config.classification),
        answer_format=usable_format(YES_NO, ctx.templates),
    )
    if threshold is not None:
        request = _scored_request(ctx, request)
    result = await ctx.complete(request)
    if isinstance(result, RequestFailed):
        if result.permanent:
            await ctx.reject_task(task, REQUEST_REFUSED, result.reason())
        else:
            ctx.defer(retry, task)
        return None
    answer = _decide(result, ctx, threshold)
    ctx.answered(STAGE, answer is not None, result.text)
    if answer is not None:
        ctx.useless_tries.pop(task.id, None)
        return answer
    ctx.count(names.classification(None))
    tries += 1
    if tries >= MAX_TRIES:
        reason = (
            f"{tries} answers to the classification question said neither yes nor no; "
            f"last: {quote_sample(result.text)}"
        )
        await ctx.reject_task(task, UNREADABLE, reason)
    else:
        ctx.useless_tries[task.id] = tries
        ctx.defer(retry, task, failed=False)
    return None
