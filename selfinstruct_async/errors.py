"""Every exception the package raises on purpose, in one tree.

SelfInstructError
├── ConfigError            bad TOML, flag or environment value (names the key)
│   ├── EmptyTokensError   the similarity tokenizer sees nothing in too many candidates
│   └── UnknownFilterError ``--only`` or ``--disable`` names no instruction filter
├── SeedFileError          malformed seed file (names file, line and field)
├── CheckpointError        run directory unusable: locked, corrupt, other schema,
│                          ``tasks.jsonl`` missing or unreadable
├── OutputError            an output command (stats, report, export, dedup) failed
│   ├── StatsError         a run's statistics or a price table cannot be read
│   ├── ReportError        a report cannot be drawn or written (no matplotlib, say)
│   ├── ExportError        a run cannot be exported, or an option is out of range
│   ├── DedupInputError    dedup's input is not JSONL, Alpaca JSON or text (file, line)
│   └── FilterInputError   ``selfinstruct filter``'s input is not instructions (file, line)
├── PluginError            a plugin failed to load, is misspelt or misconfigured
│   └── FilterError        a filter raised while checking a candidate
└── LLMError               a request could not be completed
    ├── PromptRejected     this one prompt cannot be served (e.g. exceeds the context)
    │   └── ContextLengthExceeded  no ``max_tokens`` down to the floor fits the context
    ├── RequestTooLarge    larger than the endpoint's per-minute budget
    ├── PermanentHTTPError a 4xx other than 429: retrying cannot help
    ├── RetriesExhausted   transient failures outlasted ``max_attempts``
    ├── BudgetExhausted    the run's token or cost budget is spent
    ├── BackendCrashed     the embedded model's process died; the run cannot go on
    ├── UselessAnswers     answers keep arriving but none yields anything usable
    └── TransportError     a request was not delivered or its answer not read
        ├── TransportTimeout          no answer within the attempt's timeout
        ├── TransportConnectionError  refused, reset or closed connection
        └── ResponseTooLarge          the answer passed ``max_response_bytes``; not read on
"""

from __future__ import annotations


class SelfInstructError(Exception):
    """Base class of every error the package raises on purpose."""


class ConfigError(SelfInstructError):
    """A configuration value is missing, unknown, mistyped or out of range."""


class SeedFileError(SelfInstructError):
    """A seed file cannot be used; the message names file, line and field."""

    def __init__(self, path: str, line: int | None, field: str | None, problem: str) -> None:
        self.path, self.line, self.field, self.problem = path, line, field, problem
        where = path if line is None else f"{path}:{line}"
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{problem}")


class EmptyTokensError(ConfigError, ValueError):
    """Too many candidates tokenize to nothing: the similarity filter cannot see them.

    A configuration error found in the data: the ``tokenizer`` setting (``--tokenizer``
    for ``dedup``) does not fit the language; the message says which one to use. Raised
    by :class:`~selfinstruct_async.similarity.empty_tokens.EmptyTokensMonitor`; also a
    ``ValueError``, as it was before it joined this tree.
    """


class CheckpointError(SelfInstructError):
    """The run directory cannot be used as a checkpoint."""


class OutputError(SelfInstructError):
    """An output command cannot read its input or write its output; the message names it."""


class StatsError(OutputError):
    """A run directory or price table cannot be read."""


class ReportError(OutputError):
    """A report cannot be produced (missing matplotlib, unwritable destination)."""


class ExportError(OutputError):
    """A run directory cannot be exported, or an option is out of range."""


class DedupInputError(OutputError):
    """The input cannot be read as JSONL, Alpaca JSON or text; names file, line, field."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path, self.line, self.problem = path, line, problem
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {problem}")


class FilterInputError(OutputError):
    """The input file cannot be read as instructions; names file, line and field."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path, self.line, self.problem = path, line, problem
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {problem}")


class UnknownFilterError(ConfigError):
    """``--only`` or ``--disable`` names no instruction filter of the chain."""


class PluginError(SelfInstructError):
    """A plugin could not be loaded, validated or configured."""


class FilterError(PluginError):
    """A filter raised an exception instead of returning a verdict."""

    def __init__(self, filter_name: str, error: BaseException) -> None:
        self.filter_name = filter_name
        super().__init__(f"filter '{filter_name}' raised {type(error).__name__}: {error}")


class LLMError(SelfInstructError):
    """A completion request could not be completed."""


class PromptRejected(LLMError):
    """The backend cannot serve this particular prompt; other prompts may still work."""


class ContextLengthExceeded(PromptRejected):
    """Prompt plus ``max_tokens`` overflow the model's context, and no smaller ``max_tokens``
    down to the client's floor fits (or the prompt alone is too long).

    ``status`` and ``body`` are the endpoint's last refusal; ``max_tokens`` is what that
    attempt asked for. The message starts ``HTTP <status>:`` like a
    :class:`PermanentHTTPError`'s, so rejection reasons read the same.
    """

    def __init__(self, status: int, body: str, *, max_tokens: int, floor: int) -> None:
        self.status, self.body, self.max_tokens, self.floor = status, body, max_tokens, floor
        super().__init__(
            f"HTTP {status}: prompt does not fit the context with max_tokens >= {floor} "
            f"(last tried {max_tokens}): {body[:300]}"
        )


class RequestTooLarge(LLMError):
    """The request needs more tokens than the endpoint's per-minute budget allows."""


class PermanentHTTPError(LLMError):
    """The endpoint answered with a status that retrying cannot fix."""

    def __init__(self, status: int, body: str) -> None:
        self.status, self.body = status, body
        super().__init__(f"HTTP {status}: {body[:300]}")


class RetriesExhausted(LLMError):
    """Every attempt failed with a transient error."""

    def __init__(self, message: str, *, attempts: int = 0, last_failure: str = "") -> None:
        self.attempts, self.last_failure = attempts, last_failure
        super().__init__(message)


class BudgetExhausted(LLMError):
    """The run's token or cost budget is spent."""


class BackendCrashed(LLMError):
    """The embedded model's worker process died (illegal instruction, OOM kill, bad GGUF)."""


class UselessAnswers(LLMError):
    """Answers arrive but none can be parsed (echoed prompts, empty text): stop, do not loop."""

    def __init__(self, stage: str, message: str) -> None:
        self.stage = stage
        super().__init__(message)


class TransportError(LLMError):
    """A transport failed to deliver a request or to read its answer; retryable.

    Raised by :class:`~selfinstruct_async.client.transport.Transport` implementations; the HTTP
    client retries these and reports :class:`RetriesExhausted` when they persist.
    """


class TransportTimeout(TransportError):
    """The attempt got no complete answer within its timeout."""


class TransportConnectionError(TransportError):
    """The connection was refused, reset or closed before the answer was complete."""


class ResponseTooLarge(TransportError):
    """The answer's body passed the endpoint's ``max_response_bytes``; reading stopped there.

    ``bytes_read`` is what was read before giving up (0 when ``Content-Length`` already
    said too much), so memory held for one answer stays near ``limit``.
    """

    def __init__(
        self, limit: int, url: str, *, bytes_read: int = 0, announced: int | None = None
    ) -> None:
        self.limit, self.url, self.bytes_read, self.announced = limit, url, bytes_read, announced
        said = f" (Content-Length {announced})" if announced is not None else ""
        super().__init__(f"answer larger than {limit} bytes from {url}{said}")
