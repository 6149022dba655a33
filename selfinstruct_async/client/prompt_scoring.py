"""How likely a text is after a prefix, from an OpenAI-style ``/v1/completions`` endpoint.

The embedded model scores texts itself (:meth:`~.local.LocalClient.score_texts`). Over
HTTP the same figure comes from the completions API's ``echo``: the server returns the
prompt's own tokens with their log probabilities, and the tokens that start at or after
the prefix's end are the text's. llama.cpp's Python server (``llama_cpp.server``,
``logits_all`` on by default), vLLM and OpenAI's legacy completions models answer it; chat
endpoints have no echo, and a server that ignores it answers without prompt logprobs,
which :class:`NoPromptLogprobs` reports so the caller can fall back to another method.

Echoed logprobs must belong to the tokens they stand beside. llama-cpp-python's server
(0.3.x) returns, for each prompt token, its probability under the *next* position's
distribution, which is noise (and computes them in Python, seconds per request).
:meth:`CompletionScorer.check_alignment` scores a counting sequence every model
continues with near certainty (SmolLM2-135M: -0.08 a token, aligned); misaligned
logprobs score it around -10 a token and raise :class:`MisalignedPromptLogprobs`.

Each text is one request (``max_tokens`` 1: a server may read 0 as "up to the context"),
sent through the run's own request path, so pacing, retries, the failure policy and the
request ledger apply: a resumed run does not pay for its calibration twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio

from .. import counters as names
from .protocol import Completion, CompletionRequest, TextScore

#: The run's request path: a completion, or a value saying why this one request failed.
Complete = Callable[[CompletionRequest], Awaitable[object]]


class NoPromptLogprobs(Exception):
    """The endpoint answered without log probabilities for the prompt's tokens."""


class MisalignedPromptLogprobs(NoPromptLogprobs):
    """The endpoint's echoed logprobs do not score the tokens they stand beside."""


class ScoringRequestFailed(Exception):
    """A scoring request failed (the run's failure policy let the run go on)."""

    def __init__(self, failure: object) -> None:
        super().__init__(str(failure))
        self.failure = failure


#: A prefix and continuation any language model finds near certain, and the least mean
#: logprob per token that still counts as aligned.
ALIGNMENT_PROBE = ("1, 2, 3, 4, 5, 6, 7,", " 8, 9, 10, 11, 12,")
MIN_ALIGNED_LOGPROB = -2.0


def text_logprobs(completion: Completion, start: int, end: int) -> TextScore | None:
    """The summed log probability of the tokens that start within ``[start, end)``."""
    if not completion.choices or not completion.choices[0].token_logprobs:
        return None
    picked = [lp for offset, lp in completion.choices[0].token_logprobs if start <= offset < end]
    if not picked or any(lp is None for lp in picked):
        return None
    return TextScore(sum(lp for lp in picked if lp is not None), len(picked))


class CompletionScorer:
    """A :class:`~selfinstruct_async.classification_scoring.TextScorer` over ``complete``.

    ``workers`` bounds the scoring requests in flight. llama.cpp answers one at a time and
    keeps the longest prompt prefix it has seen, so a few at once lose nothing there and
    let a remote endpoint work in parallel.
    """

    def __init__(self, complete: Complete, *, workers: int = 4) -> None:
        self._complete = complete
        self._workers = max(1, workers)

    async def score_texts(self, prefix: str, texts: Sequence[str]) -> list[TextScore]:
        """Each of ``texts``' score after ``prefix``; raises when an answer has none."""
        scores: list[TextScore | None] = [None] * len(texts)
        limiter = anyio.CapacityLimiter(self._workers)
        # The first error ends the call as itself, not wrapped in the task group's group.
        errors: list[NoPromptLogprobs | ScoringRequestFailed] = []

        async def score(i: int) -> None:
            async with limiter:
                try:
                    scores[i] = await self._score(prefix, texts[i])
                except (NoPromptLogprobs, ScoringRequestFailed) as error:
                    errors.append(error)
                    group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            for i in range(len(texts)):
                group.start_soon(score, i)
        if errors:
            raise errors[0]
        return [s for s in scores if s is not None]

    async def check_alignment(self) -> None:
        """Raise unless the endpoint echoes prompt logprobs that score their own tokens."""
        prefix, text = ALIGNMENT_PROBE
        score = await self._score(prefix, text)
        mean = score.logprob / max(1, score.tokens)
        if mean < MIN_ALIGNED_LOGPROB:
            raise MisalignedPromptLogprobs(
                f"the endpoint's echoed prompt logprobs score a counting sequence at {mean:.2f} "
                "a token: they are not the probabilities of the tokens they come with"
            )

    async def _score(self, prefix: str, text: str) -> TextScore:
        request = CompletionRequest(
            stage=names.IDENTIFY_CLASSIFICATION,
            prompt=prefix + text,
            max_tokens=1,
            logprobs=1,
            echo=True,
        )
        answer = await self._complete(request)
        if not isinstance(answer, Completion):
            raise ScoringRequestFailed(answer)
        # With echo the answer's text starts with the prompt, so offsets count from there.
        score = text_logprobs(answer, len(prefix), len(prefix) + len(text))
        if score is None:
            raise NoPromptLogprobs("the endpoint gave no log probabilities for the prompt")
        return score
