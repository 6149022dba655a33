"""Which failed requests a run survives, and when failures in a row end it (an outage).

A request that got no answer decides nothing about its task: the stage leaves the task
pending for another try or, when the endpoint refused that very prompt for good, rejects
the task saying so. Other errors (a bad key, an exhausted budget) end the run at once,
and so do :data:`MAX_CONSECUTIVE_FAILURES` survivable failures with no answer between them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import LLMError, PermanentHTTPError, PromptRejected, RetriesExhausted

log = logging.getLogger("selfinstruct_async")

# Statuses that say "this prompt" is wrong (too long for the context, say) rather than
# "this endpoint or key" is: skip the item and go on.
PER_REQUEST_STATUSES = frozenset({400, 413, 422})

# Failures in a row that end the run: past this, the endpoint is down, not one prompt bad.
MAX_CONSECUTIVE_FAILURES = 20

# The task-level rejection for a prompt the endpoint can never serve.
REQUEST_REFUSED = "request_refused"

# The errors a run may survive (see :meth:`FailurePolicy.survivable`).
SURVIVABLE = (RetriesExhausted, PromptRejected, PermanentHTTPError)


@dataclass(frozen=True)
class RequestFailed:
    """A request that got no answer. It decides nothing about its task.

    ``permanent`` when the endpoint refused this very prompt (too long, invalid): sending
    it again cannot help. Otherwise the failure was transient (retries exhausted during
    an outage) and the task waits for another try.
    """

    stage: str
    error: LLMError
    permanent: bool

    def reason(self) -> str:
        return f"permanent: the endpoint refused the {self.stage} request ({self.error})"


class FailurePolicy:
    """Counts failures in a row; says whether the run goes on after each one."""

    def __init__(self, limit: int = MAX_CONSECUTIVE_FAILURES) -> None:
        self.limit = limit
        self.consecutive = 0

    @staticmethod
    def survivable(error: LLMError) -> bool:
        """Whether the run may go on without an answer to this one request."""
        if isinstance(error, PermanentHTTPError):
            return error.status in PER_REQUEST_STATUSES
        return isinstance(error, RetriesExhausted | PromptRejected)

    def succeeded(self) -> None:
        self.consecutive = 0

    def failed(self, stage: str, error: LLMError) -> RequestFailed:
        """Record a survivable failure; raises :class:`LLMError` once ``limit`` are in a row."""
        self.consecutive += 1
        permanent = not isinstance(error, RetriesExhausted)
        if permanent:
            log.warning("%s request refused for good: %s", stage, error)
        else:
            log.warning("%s request failed, nothing decided: %s", stage, error)
        if self.consecutive >= self.limit:
            raise LLMError(f"{self.consecutive} requests failed in a row; last: {error}") from error
        return RequestFailed(stage, error, permanent)
