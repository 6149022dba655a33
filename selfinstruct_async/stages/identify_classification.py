"""Stage 2: a few-shot yes/no question, is this a classification task with finite labels?

Only an answer decides: a failed request leaves the task pending for another try, and
so does an answer that says neither yes nor no. The next try asks with the
demonstrations in another order (a different prompt, so neither the request ledger nor
a deterministic model hands back the same unreadable answer); after ``MAX_TRIES``
unreadable answers the task is rejected, naming the last one.

Where the backend gives probabilities (``classification.scoring``, see
:mod:`.classifier`), the first task to arrive calibrates a threshold on the seeds (or
finds it in the checkpoint) and every task is decided by its score; an answer that comes
back without probabilities is read as text.
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace

from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import counters as names
from ..answer_formats import YES_NO, usable_format
from ..classification_scoring import answer_score, likelihood_scores
from ..client.prompt_scoring import NoPromptLogprobs, ScoringRequestFailed
from ..client.protocol import Completion
from ..parsing import parse_classification
from ..prompts import build_classification_prompt
from ..records import PendingTask
from ..run.answer_guard import quote_sample
from ..run.context import RunContext
from ..run.failures import REQUEST_REFUSED, RequestFailed
from ..run.hand_off import Received, hand_over
from ..run.retry_queue import RetryQueue
from .classifier import make_classifier, scored_request

STAGE = names.IDENTIFY_CLASSIFICATION
UNREADABLE = "unreadable_classification"
MAX_TRIES = 3
PAPER_YES = frozenset({"Yes", "yes", "YES"})

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
        async for task in Received(receive):
            if task.is_classification is None:
                answer = await decide(ctx, task, retry)
                if answer is None:
                    continue  # deferred or rejected: nothing to pass on now
                await ctx.db.light(ctx.store.set_classification, task.id, answer)
                # Counted once stored: a run cancelled in between must not count a lost label.
                ctx.count(names.classification(answer))
                task = replace(task, is_classification=answer)
            await hand_over(send, task)


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


async def decide(ctx: RunContext, task: PendingTask, retry: RetryQueue[PendingTask]) -> bool | None:
    """The task's label by the run's classifier, or ``None`` when deferred or rejected."""
    classifier = await ctx.classifier.get(lambda: make_classifier(ctx))
    if classifier.calibration is None:
        return await _classify(ctx, task, retry)
    if classifier.method != "likelihood":
        return await _classify(ctx, task, retry, threshold=classifier.calibration.threshold)
    assert classifier.scorer is not None and classifier.likelihood is not None
    if not classifier.scorer_counts:
        ctx.count(names.requests(STAGE))
    try:
        (score,) = await likelihood_scores(
            classifier.scorer, classifier.likelihood.main, [task.instruction]
        )
    except ScoringRequestFailed as error:
        failure = error.failure
        if isinstance(failure, RequestFailed) and failure.permanent:
            await ctx.reject_task(task, REQUEST_REFUSED, failure.reason())
        else:
            ctx.defer(retry, task)
        return None
    except NoPromptLogprobs:
        # The endpoint stopped giving prompt logprobs (another server behind the URL).
        return await _classify(ctx, task, retry)
    ctx.answered(STAGE, True, f"{score:.3f}")
    return score > classifier.calibration.threshold


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
    request = prompt.request(
        STAGE, ctx.config.classification, answer_format=usable_format(YES_NO, ctx.templates)
    )
    if threshold is not None:
        request = scored_request(ctx, request)
    result = await ctx.complete(request)
    if isinstance(result, RequestFailed):
        if result.permanent:
            await ctx.reject_task(task, REQUEST_REFUSED, result.reason())
        else:
            ctx.defer(retry, task)
        return None
    answer = _decide(result, ctx, threshold)
    ctx.answered(STAGE, answer is not None, result.text, replayed=result.replayed)
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
