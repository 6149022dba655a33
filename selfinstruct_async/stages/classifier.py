"""Stage 2's decider for one run: parse the answer, or score it against a calibrated threshold.

``classification.scoring`` picks the method (see
:mod:`selfinstruct_async.classification_scoring` for what each score is):

- ``text``: the paper's reading of the answer;
- ``auto``: the likelihood score on the embedded model, text on an endpoint (scoring an
  endpoint costs requests a provider may bill or refuse, so endpoints opt in);
- ``likelihood``: the embedded model's own scores, or on a completions endpoint the
  prompt logprobs it echoes (:mod:`~selfinstruct_async.client.prompt_scoring`); an
  endpoint that gives none falls back to ``answer``;
- ``answer``: the yes/no answer token's logprobs, probed with one seed first.

Calibration happens once per run directory and model: the result is kept in the
checkpoint (``meta``) and read back on resume. Anything a method needs that the backend
does not give ends in the text reading, logged once, never in a failed run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import anyio

from .. import counters as names
from ..classification_scoring import (
    Calibration,
    LikelihoodPrompts,
    TextScorer,
    answer_score,
    calibrate,
    calibration_key,
    leave_out,
    likelihood_seed_scores,
    save_calibration,
    stored_calibration,
)
from ..client.prompt_scoring import CompletionScorer, NoPromptLogprobs, ScoringRequestFailed
from ..client.protocol import CompletionRequest
from ..prompts import build_classification_prompt
from ..run.context import RunContext
from ..run.failures import RequestFailed

STAGE = names.IDENTIFY_CLASSIFICATION
# Seed scores needed to calibrate: fewer (failed requests) and the stage parses text.
MIN_CALIBRATION_SEEDS = 10

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Classifier:
    """How this run decides yes or no: ``method`` and, when scored, its calibration."""

    method: str = "text"
    calibration: Calibration | None = None
    scorer: TextScorer | None = None
    likelihood: LikelihoodPrompts | None = None

    @property
    def scorer_counts(self) -> bool:
        """Whether the scorer's requests go through the run's request path, which counts
        them (the embedded model's scores do not)."""
        return isinstance(self.scorer, CompletionScorer)


def scored_request(ctx: RunContext, request: CompletionRequest) -> CompletionRequest:
    """One token with its top logprobs: the first answer token is all the score reads."""
    return replace(
        request, max_tokens=1, logprobs=ctx.config.classification.top_logprobs, answer_format=""
    )


async def make_classifier(ctx: RunContext) -> Classifier:
    """The run's classifier, calibrated now or read from the checkpoint."""
    scoring = ctx.config.classification.scoring
    if scoring == "text":
        return Classifier()
    backend = _inner_client(ctx)
    model = _model_identity(ctx, backend)
    if scoring in ("auto", "likelihood") and isinstance(backend, TextScorer):
        return await _likelihood_classifier(ctx, backend, model)
    if scoring == "auto":
        return Classifier()
    if scoring == "likelihood":
        if _completions_endpoints(ctx):
            scorer = CompletionScorer(ctx.complete, workers=ctx.config.classification.workers)
            try:
                return await _likelihood_classifier(ctx, scorer, model)
            except NoPromptLogprobs as error:
                log.warning("%s; scoring the yes and no answers instead", error)
            except ScoringRequestFailed as error:
                log.warning("calibrating the classifier failed (%s): answers read as text", error)
                return Classifier()
        else:
            log.warning(
                "classification.scoring = 'likelihood' needs the embedded model or a "
                "completions endpoint; scoring the yes and no answers instead"
            )
    return await _answer_classifier(ctx, model)


def _inner_client(ctx: RunContext) -> object:
    # The ledger wraps the backend; the embedded model's scores come from the backend itself.
    return getattr(ctx.client, "inner", ctx.client)


def _completions_endpoints(ctx: RunContext) -> bool:
    endpoints = [e for e in ctx.config.endpoints if e.base_url]
    return bool(endpoints) and all(e.api == "completions" for e in endpoints)


def _model_identity(ctx: RunContext, backend: object) -> str:
    model_path = getattr(backend, "model_path", None)
    if model_path is not None:
        size = model_path.stat().st_size if model_path.is_file() else 0
        return f"{model_path.name}:{size}@{ctx.config.local.api}"
    return "|".join(f"{e.model}@{e.api}" for e in ctx.config.endpoints) or "unknown"


async def _likelihood_classifier(ctx: RunContext, scorer: TextScorer, model: str) -> Classifier:
    prompts = LikelihoodPrompts.from_seeds(
        ctx.seeds, ctx.config.classification.likelihood_demonstrations
    )
    key = calibration_key("likelihood", model, [*prompts.main, *prompts.spare])
    calibration = await ctx.db(stored_calibration, ctx.store, key)
    if calibration is None:
        log.info("calibrating the classifier on %d seed tasks (likelihood)", len(ctx.seeds))
        if isinstance(scorer, CompletionScorer):
            # One request first: an endpoint whose echo is missing or wrong costs no more.
            await scorer.check_alignment()
        scores = await likelihood_seed_scores(scorer, prompts, ctx.seeds)
        labels = [s.is_classification for s in ctx.seeds]
        calibration = calibrate(scores, labels, key=key, model=model, method="likelihood")
    await ctx.db(save_calibration, ctx.store, calibration)
    _log_calibration(calibration)
    return Classifier("likelihood", calibration, scorer, prompts)


async def _answer_classifier(ctx: RunContext, model: str) -> Classifier:
    demonstrations = ctx.classification_demonstrations
    prompts = [
        build_classification_prompt(
            s.instruction, leave_out(demonstrations, s.instruction, ctx.seeds), ctx.templates
        )
        for s in ctx.seeds
    ]
    material = [p.text for p in prompts] + [str(ctx.config.classification.top_logprobs)]
    key = calibration_key("answer", model, material)
    calibration = await ctx.db(stored_calibration, ctx.store, key)
    if calibration is None:
        log.info("calibrating the classifier on %d seed tasks (answer logprobs)", len(ctx.seeds))
        settings = ctx.config.classification
        requests = [scored_request(ctx, p.request(STAGE, settings)) for p in prompts]
        scores = await _answer_seed_scores(ctx, requests)
        kept = sorted(scores)
        labels = [ctx.seeds[i].is_classification for i in kept]
        if len(kept) < MIN_CALIBRATION_SEEDS or all(labels) or not any(labels):
            log.info(
                "the classifier parses answers as text: %d of %d seed answers came back "
                "with yes/no probabilities",
                len(kept),
                len(ctx.seeds),
            )
            return Classifier()
        calibration = calibrate(
            [scores[i] for i in kept], labels, key=key, model=model, method="answer"
        )
    await ctx.db(save_calibration, ctx.store, calibration)
    _log_calibration(calibration)
    return Classifier("answer", calibration)


async def _answer_seed_scores(
    ctx: RunContext, requests: list[CompletionRequest]
) -> dict[int, float]:
    """Each seed's answer score, by index; seeds whose answer had no probabilities left out."""
    scores: dict[int, float] = {}
    limiter = anyio.CapacityLimiter(ctx.config.classification.workers)

    async def score(i: int) -> None:
        async with limiter:
            result = await ctx.complete(requests[i])
        value = None if isinstance(result, RequestFailed) else answer_score(result, ctx.templates)
        if value is not None:
            scores[i] = value

    # One seed first: a backend that gives no probabilities costs one request, not 175.
    await score(0)
    if not scores:
        return scores
    async with anyio.create_task_group() as group:
        for i in range(1, len(requests)):
            group.start_soon(score, i)
    return scores


def _log_calibration(calibration: Calibration) -> None:
    log.info(
        "classifier (%s) on %d seeds, leave-one-out: balanced accuracy %.3f, yes share %.3f",
        calibration.method,
        calibration.seeds,
        calibration.balanced_accuracy,
        calibration.yes_share,
    )
